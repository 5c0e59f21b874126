// Parser and validator of one GGUF image (see gguf_file.h for the rules it enforces).
//
// Every read goes through Reader, which checks the bytes left before touching them; every size computed
// from file fields uses checked arithmetic. Counts are bounded by the bytes left before anything is
// allocated, so memory stays proportional to the input size.
#include <bit>
#include <cstring>
#include <unordered_set>

#include "gguf/gguf_internal.h"

namespace tandem::gguf_detail {
namespace {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

constexpr size_t kMinKvSize = 8 + 4 + 1;                  // key length, value type, smallest value
constexpr size_t kMinTensorInfoSize = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, one dim, type, offset

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, const std::string& name) : data_(data), size_(size), name_(name) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  // What is being parsed, prefixed to messages (e.g. "metadata key 'general.name'").
  void set_context(std::string context) { context_ = std::move(context); }

  [[noreturn]] void fail_at(const std::string& problem, uint64_t offset) const {
    std::string msg = name_ + ": ";
    if (!context_.empty()) msg += context_ + ": ";
    msg += problem + " (at offset " + std::to_string(offset) + ")";
    throw GgufError(msg);
  }
  [[noreturn]] void fail(const std::string& problem) const { fail_at(problem, pos_); }

  template <typename T>
  T read(const char* what) {
    if (sizeof(T) > left()) {
      fail("truncated: " + std::string(what) + " needs " + std::to_string(sizeof(T)) + " bytes, only " +
           std::to_string(left()) + " left");
    }
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // A GGUF string: uint64 length, then that many bytes (not NUL-terminated, UTF-8 not checked).
  std::string_view read_string(const char* what) {
    const size_t at = pos_;
    const auto len = read<uint64_t>(what);
    if (len > left()) {
      fail_at("truncated or corrupt: " + std::string(what) + " length " + std::to_string(len) + " exceeds the " +
                  std::to_string(left()) + " bytes left",
              at);
    }
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& name_;
  std::string context_;
};

GgufValue read_value(Reader& r, GgufValueType type, int depth);

GgufValue read_array(Reader& r, int depth) {
  if (depth > kMaxArrayDepth) r.fail("arrays nested more than " + std::to_string(kMaxArrayDepth) + " levels deep");
  const auto elem_id = r.read<uint32_t>("array element type");
  const auto elem = value_type_from_id(elem_id);
  if (!elem) r.fail("unknown array element type " + std::to_string(elem_id));
  const size_t at = r.pos();
  const auto count = r.read<uint64_t>("array count");
  const size_t min_size = min_encoded_size(*elem);
  if (count > r.left() / min_size) {
    r.fail_at("truncated or corrupt: array of " + std::to_string(count) + " " + std::string(value_type_name(*elem)) +
                  " values cannot fit in the " + std::to_string(r.left()) + " bytes left",
              at);
  }
  auto arr = std::make_shared<GgufArray>();
  arr->element_type = *elem;
  arr->values.reserve(static_cast<size_t>(count));
  for (uint64_t i = 0; i < count; ++i) arr->values.push_back(read_value(r, *elem, depth));
  return GgufValue{GgufValueType::ARRAY, std::move(arr)};
}

GgufValue read_value(Reader& r, GgufValueType type, int depth) {
  using T = GgufValueType;
  switch (type) {
    case T::UINT8:
      return {type, uint64_t{r.read<uint8_t>("uint8 value")}};
    case T::INT8:
      return {type, int64_t{r.read<int8_t>("int8 value")}};
    case T::UINT16:
      return {type, uint64_t{r.read<uint16_t>("uint16 value")}};
    case T::INT16:
      return {type, int64_t{r.read<int16_t>("int16 value")}};
    case T::UINT32:
      return {type, uint64_t{r.read<uint32_t>("uint32 value")}};
    case T::INT32:
      return {type, int64_t{r.read<int32_t>("int32 value")}};
    case T::UINT64:
      return {type, r.read<uint64_t>("uint64 value")};
    case T::INT64:
      return {type, r.read<int64_t>("int64 value")};
    case T::FLOAT32:
      return {type, double{r.read<float>("float32 value")}};
    case T::FLOAT64:
      return {type, r.read<double>("float64 value")};
    case T::BOOL: {
      const auto b = r.read<uint8_t>("bool value");
      if (b > 1) r.fail_at("bool value " + std::to_string(b) + " is neither 0 nor 1", r.pos() - 1);
      return {type, b == 1};
    }
    case T::STRING:
      return {type, std::string(r.read_string("string value"))};
    case T::ARRAY:
      return read_array(r, depth + 1);
  }
  r.fail("unknown value type " + std::to_string(static_cast<uint32_t>(type)));
}

void check_version(Reader& r, uint32_t version) {
  if (version == 2 || version == 3) return;
  if (version == 1) {
    r.fail_at("GGUF version 1 is not supported (only versions 2 and 3); re-convert the model with a current llama.cpp",
              4);
  }
  const uint32_t swapped = __builtin_bswap32(version);
  if (swapped == 2 || swapped == 3) r.fail_at("big-endian GGUF files are not supported", 4);
  r.fail_at("unsupported GGUF version " + std::to_string(version) + " (only versions 2 and 3)", 4);
}

uint64_t read_alignment(Reader& r, const std::vector<std::pair<std::string, GgufValue>>& metadata) {
  for (const auto& [key, value] : metadata) {
    if (key != "general.alignment") continue;
    if (const auto a = valid_alignment(value)) return *a;
    r.set_context("metadata key 'general.alignment'");
    r.fail("must be an integer power of two in 1..2^30, not " + std::string(value_type_name(value.type)) + " " +
           value.to_display_string());
  }
  return kDefaultAlignment;
}

// Reads one tensor info (everything but the data offset check, which needs the data section start).
GgufTensorInfo read_tensor_info(Reader& r, uint64_t index, std::unordered_set<std::string_view>& names,
                                int file_index) {
  r.set_context("tensor info #" + std::to_string(index));
  const std::string_view name = r.read_string("tensor name");
  if (name.empty()) r.fail("empty tensor name");
  r.set_context("tensor '" + std::string(name) + "'");
  if (!names.insert(name).second) r.fail("duplicate tensor name");

  GgufTensorInfo t{};
  t.name = std::string(name);
  t.file_index = file_index;
  const auto n_dims = r.read<uint32_t>("n_dims");
  if (n_dims == 0 || n_dims > kMaxDims) {
    r.fail_at("n_dims " + std::to_string(n_dims) + " is out of range (GGUF allows 1..4)", r.pos() - 4);
  }
  t.dims.resize(n_dims);
  int64_t n_elements = 1;
  for (uint32_t j = 0; j < n_dims; ++j) {
    t.dims[j] = r.read<int64_t>("dimension");
    if (t.dims[j] <= 0) {
      r.fail_at("dimension " + std::to_string(j) + " is " + std::to_string(t.dims[j]) + " (must be positive)",
                r.pos() - 8);
    }
    if (__builtin_mul_overflow(n_elements, t.dims[j], &n_elements)) r.fail("element count overflows int64");
  }
  t.n_elements = n_elements;

  const auto type_id = r.read<uint32_t>("tensor type");
  const auto info = ggml_type_info(type_id);
  if (!info) r.fail_at("unknown tensor type id " + std::to_string(type_id), r.pos() - 4);
  t.type = info->type;
  if (t.dims[0] % info->block_size != 0) {
    r.fail("row length dims[0] = " + std::to_string(t.dims[0]) + " is not a multiple of the " +
           std::string(info->name) + " block size " + std::to_string(info->block_size));
  }
  size_t n_bytes = 0;
  bool overflow =
      __builtin_mul_overflow(static_cast<uint64_t>(t.dims[0] / info->block_size), info->type_size, &n_bytes);
  for (uint32_t j = 1; j < n_dims && !overflow; ++j) {
    overflow = __builtin_mul_overflow(n_bytes, static_cast<uint64_t>(t.dims[j]), &n_bytes);
  }
  if (overflow) r.fail("byte size overflows size_t");
  t.n_bytes = n_bytes;
  t.file_offset = r.read<uint64_t>("tensor data offset");  // relative until the data section is known
  return t;
}

}  // namespace

ParsedImage parse_image(const uint8_t* bytes, size_t size, const std::string& name, int file_index) {
  Reader r(bytes, size, name);
  ParsedImage img;
  if (size < 4) r.fail("truncated: " + std::to_string(size) + " bytes is too short to be a GGUF file");
  const auto magic = r.read<uint32_t>("magic");
  if (magic != kMagic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%02x %02x %02x %02x", bytes[0], bytes[1], bytes[2], bytes[3]);
    r.fail_at(std::string("not a GGUF file: bad magic bytes ") + hex + " (expected \"GGUF\")", 0);
  }
  img.version = r.read<uint32_t>("version");
  check_version(r, img.version);
  const auto n_tensors = r.read<uint64_t>("tensor count");
  const auto n_kv = r.read<uint64_t>("metadata count");
  if (n_kv > r.left() / kMinKvSize) {
    r.fail_at("truncated or corrupt: " + std::to_string(n_kv) + " metadata entries cannot fit in the " +
                  std::to_string(r.left()) + " bytes left",
              16);
  }
  if (n_tensors > r.left() / kMinTensorInfoSize) {
    r.fail_at("truncated or corrupt: " + std::to_string(n_tensors) + " tensor infos cannot fit in the " +
                  std::to_string(r.left()) + " bytes left",
              8);
  }

  img.metadata.reserve(static_cast<size_t>(n_kv));
  std::unordered_set<std::string_view> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    r.set_context("metadata entry #" + std::to_string(i));
    const std::string_view key = r.read_string("key");
    if (key.empty()) r.fail("empty metadata key");
    r.set_context("metadata key '" + std::string(key) + "'");
    if (!keys.insert(key).second) r.fail("duplicate metadata key");
    const auto type_id = r.read<uint32_t>("value type");
    const auto type = value_type_from_id(type_id);
    if (!type) r.fail_at("unknown metadata value type " + std::to_string(type_id), r.pos() - 4);
    GgufValue value = read_value(r, *type, 0);
    img.metadata.emplace_back(std::string(key), std::move(value));
  }
  img.alignment = read_alignment(r, img.metadata);

  r.set_context("");
  if (n_tensors > r.left() / kMinTensorInfoSize) {
    r.fail("truncated or corrupt: " + std::to_string(n_tensors) + " tensor infos cannot fit in the " +
           std::to_string(r.left()) + " bytes left");
  }
  img.tensors.reserve(static_cast<size_t>(n_tensors));
  std::unordered_set<std::string_view> names;
  for (uint64_t i = 0; i < n_tensors; ++i) img.tensors.push_back(read_tensor_info(r, i, names, file_index));

  // The data section starts at the first multiple of the alignment after the tensor infos.
  img.data_offset = (static_cast<uint64_t>(r.pos()) + img.alignment - 1) / img.alignment * img.alignment;
  for (GgufTensorInfo& t : img.tensors) {
    r.set_context("tensor '" + t.name + "'");
    const uint64_t rel = t.file_offset;
    if (rel % img.alignment != 0) {
      r.fail_at(
          "data offset " + std::to_string(rel) + " is not a multiple of the alignment " + std::to_string(img.alignment),
          img.data_offset);
    }
    uint64_t begin = 0;
    uint64_t end = 0;
    if (__builtin_add_overflow(img.data_offset, rel, &begin) || __builtin_add_overflow(begin, t.n_bytes, &end) ||
        end > size) {
      r.fail_at("data (" + std::to_string(t.n_bytes) + " bytes at data offset " + std::to_string(rel) +
                    ") extends past the end of the file (" + std::to_string(size) + " bytes)",
                img.data_offset);
    }
    t.file_offset = begin;
    t.data = bytes + begin;
  }
  return img;
}

}  // namespace tandem::gguf_detail
