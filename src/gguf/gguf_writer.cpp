#include "gguf/gguf_writer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <unordered_set>

#include "gguf/gguf_internal.h"

namespace tandem {

using gguf_detail::GgufError;

GgufValue gguf_u8(uint8_t v) { return {GgufValueType::UINT8, uint64_t{v}}; }
GgufValue gguf_i8(int8_t v) { return {GgufValueType::INT8, int64_t{v}}; }
GgufValue gguf_u16(uint16_t v) { return {GgufValueType::UINT16, uint64_t{v}}; }
GgufValue gguf_i16(int16_t v) { return {GgufValueType::INT16, int64_t{v}}; }
GgufValue gguf_u32(uint32_t v) { return {GgufValueType::UINT32, uint64_t{v}}; }
GgufValue gguf_i32(int32_t v) { return {GgufValueType::INT32, int64_t{v}}; }
GgufValue gguf_u64(uint64_t v) { return {GgufValueType::UINT64, v}; }
GgufValue gguf_i64(int64_t v) { return {GgufValueType::INT64, v}; }
GgufValue gguf_f32(float v) { return {GgufValueType::FLOAT32, double{v}}; }
GgufValue gguf_f64(double v) { return {GgufValueType::FLOAT64, v}; }
GgufValue gguf_bool(bool v) { return {GgufValueType::BOOL, v}; }
GgufValue gguf_str(std::string v) { return {GgufValueType::STRING, std::move(v)}; }

GgufValue gguf_array(GgufValueType element_type, std::vector<GgufValue> values) {
  auto arr = std::make_shared<GgufArray>();
  arr->element_type = element_type;
  arr->values = std::move(values);
  return {GgufValueType::ARRAY, std::move(arr)};
}

GgufValue gguf_str_array(const std::vector<std::string>& values) {
  std::vector<GgufValue> v;
  v.reserve(values.size());
  for (const std::string& s : values) v.push_back(gguf_str(s));
  return gguf_array(GgufValueType::STRING, std::move(v));
}

namespace {

class Out {
 public:
  explicit Out(std::vector<uint8_t>& bytes) : bytes_(bytes) {}
  template <typename T>
  void put(T v) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }

 private:
  std::vector<uint8_t>& bytes_;
};

[[noreturn]] void fail(const std::string& what, const std::string& problem) { throw GgufError(what + ": " + problem); }

// Throws unless an unsigned value fits `bits`; returns it.
uint64_t checked_unsigned(const GgufValue& v, int bits, const std::string& what) {
  const auto* u = std::get_if<uint64_t>(&v.value);
  if (!u) fail(what, std::string(gguf_detail::value_type_name(v.type)) + " value must hold a uint64_t");
  if (bits < 64 && *u >> bits) fail(what, std::to_string(*u) + " does not fit " + std::to_string(bits) + " bits");
  return *u;
}

int64_t checked_signed(const GgufValue& v, int bits, const std::string& what) {
  const auto* i = std::get_if<int64_t>(&v.value);
  if (!i) fail(what, std::string(gguf_detail::value_type_name(v.type)) + " value must hold an int64_t");
  const int64_t lim = bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1;
  if (*i > lim || *i < -lim - 1) fail(what, std::to_string(*i) + " does not fit " + std::to_string(bits) + " bits");
  return *i;
}

// Writes the payload of `v` (no type tag), validating it against its declared type.
void put_value(Out& out, const GgufValue& v, const std::string& what, int depth) {
  using T = GgufValueType;
  switch (v.type) {
    case T::UINT8:
      out.put(static_cast<uint8_t>(checked_unsigned(v, 8, what)));
      return;
    case T::UINT16:
      out.put(static_cast<uint16_t>(checked_unsigned(v, 16, what)));
      return;
    case T::UINT32:
      out.put(static_cast<uint32_t>(checked_unsigned(v, 32, what)));
      return;
    case T::UINT64:
      out.put(checked_unsigned(v, 64, what));
      return;
    case T::INT8:
      out.put(static_cast<int8_t>(checked_signed(v, 8, what)));
      return;
    case T::INT16:
      out.put(static_cast<int16_t>(checked_signed(v, 16, what)));
      return;
    case T::INT32:
      out.put(static_cast<int32_t>(checked_signed(v, 32, what)));
      return;
    case T::INT64:
      out.put(checked_signed(v, 64, what));
      return;
    case T::FLOAT32:
    case T::FLOAT64: {
      const auto* d = std::get_if<double>(&v.value);
      if (!d) fail(what, "float value must hold a double");
      if (v.type == T::FLOAT32) {
        out.put(static_cast<float>(*d));
      } else {
        out.put(*d);
      }
      return;
    }
    case T::BOOL: {
      const auto* b = std::get_if<bool>(&v.value);
      if (!b) fail(what, "bool value must hold a bool");
      out.put<uint8_t>(*b ? 1 : 0);
      return;
    }
    case T::STRING: {
      const auto* s = std::get_if<std::string>(&v.value);
      if (!s) fail(what, "string value must hold a std::string");
      out.put_string(*s);
      return;
    }
    case T::ARRAY: {
      const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value);
      if (!a || !*a) fail(what, "array value must hold a non-null GgufArray");
      if (depth >= gguf_detail::kMaxArrayDepth) fail(what, "arrays nested too deep");
      if (!gguf_detail::value_type_from_id(static_cast<uint32_t>((*a)->element_type))) fail(what, "bad element type");
      out.put(static_cast<uint32_t>((*a)->element_type));
      out.put<uint64_t>((*a)->values.size());
      for (const GgufValue& e : (*a)->values) {
        if (e.type != (*a)->element_type) {
          fail(what, "array of " + std::string(gguf_detail::value_type_name((*a)->element_type)) + " holds a " +
                         std::string(gguf_detail::value_type_name(e.type)));
        }
        put_value(out, e, what, depth + 1);
      }
      return;
    }
  }
  fail(what, "unknown value type " + std::to_string(static_cast<uint32_t>(v.type)));
}

uint64_t align_up(uint64_t n, uint64_t alignment) { return (n + alignment - 1) / alignment * alignment; }

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, std::vector<uint8_t> data) {
  tensors_.push_back(Tensor{std::move(name), type, std::move(dims), std::move(data)});
}

Result<std::vector<uint8_t>> GgufWriter::header_bytes(uint64_t& alignment) const {
  try {
    if (version_ != 2 && version_ != 3) fail("GgufWriter", "version must be 2 or 3");
    alignment = gguf_detail::kDefaultAlignment;
    std::vector<uint8_t> bytes;
    Out out(bytes);
    out.put(gguf_detail::kMagic);
    out.put(version_);
    out.put<uint64_t>(tensors_.size());
    out.put<uint64_t>(metadata_.size());
    for (const auto& [key, value] : metadata_) {
      const std::string what = "metadata key '" + key + "'";
      if (key.empty()) fail("metadata", "empty key");
      out.put_string(key);
      out.put(static_cast<uint32_t>(value.type));
      put_value(out, value, what, 0);
      if (key == "general.alignment") {
        const auto a = gguf_detail::valid_alignment(value);
        if (!a) fail(what, "must be an integer power of two in 1..2^30");
        alignment = *a;
      }
    }
    std::unordered_set<std::string> names;
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      const std::string what = "tensor '" + t.name + "'";
      if (t.name.empty()) fail("tensor", "empty name");
      if (!names.insert(t.name).second) fail(what, "duplicate tensor name");
      if (t.dims.empty() || t.dims.size() > gguf_detail::kMaxDims) fail(what, "needs 1..4 dims");
      const auto type_info = ggml_type_info(static_cast<uint32_t>(t.type));
      if (!type_info) fail(what, "unknown tensor type id " + std::to_string(static_cast<uint32_t>(t.type)));
      const GgmlTypeInfo& info = *type_info;
      size_t n_bytes = 0;
      for (size_t j = 0; j < t.dims.size(); ++j) {
        if (t.dims[j] <= 0) fail(what, "dims must be positive");
        const auto d = static_cast<uint64_t>(j == 0 ? t.dims[0] / info.block_size : t.dims[j]);
        if (__builtin_mul_overflow(j == 0 ? info.type_size : n_bytes, d, &n_bytes)) fail(what, "size overflows");
      }
      if (t.dims[0] % info.block_size != 0) fail(what, "dims[0] is not a multiple of the block size");
      if (t.data.size() != n_bytes) {
        fail(what, "has " + std::to_string(t.data.size()) + " bytes of data, expected " + std::to_string(n_bytes));
      }
      out.put_string(t.name);
      out.put(static_cast<uint32_t>(t.dims.size()));
      for (int64_t d : t.dims) out.put(d);
      out.put(static_cast<uint32_t>(t.type));
      out.put(offset);
      offset = align_up(offset + n_bytes, alignment);
    }
    bytes.resize(align_up(bytes.size(), alignment), 0);
    return bytes;
  } catch (const GgufError& e) {
    return Status::error(std::string("GgufWriter: ") + e.what());
  }
}

Status GgufWriter::emit(const std::function<void(const uint8_t*, size_t)>& sink) const {
  uint64_t alignment = 0;
  auto header = header_bytes(alignment);
  if (!header) return header.status();
  sink(header->data(), header->size());
  static constexpr uint8_t kZeros[4096] = {};
  for (const Tensor& t : tensors_) {
    sink(t.data.data(), t.data.size());
    for (uint64_t pad = align_up(t.data.size(), alignment) - t.data.size(); pad > 0;) {
      const size_t n = std::min<uint64_t>(pad, sizeof kZeros);
      sink(kZeros, n);
      pad -= n;
    }
  }
  return Status::ok();
}

Result<std::vector<uint8_t>> GgufWriter::to_bytes() const {
  std::vector<uint8_t> bytes;
  Status st = emit([&](const uint8_t* p, size_t n) { bytes.insert(bytes.end(), p, p + n); });
  if (!st) return st;
  return bytes;
}

Status GgufWriter::write_file(const std::string& path) const {
  std::ofstream f;  // opened at the first write, so that an invalid model leaves no file behind
  Status st = emit([&](const uint8_t* p, size_t n) {
    if (!f.is_open()) f.open(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n));
  });
  if (!st) return st;
  f.close();
  if (!f) return Status::error(path + ": cannot write: " + std::strerror(errno));
  return Status::ok();
}

}  // namespace tandem
