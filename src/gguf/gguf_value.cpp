// GgufValue conversions and display, and the value-type tables shared by the reader and the writer.
#include <array>
#include <charconv>
#include <cstdio>
#include <limits>

#include "gguf/gguf_file.h"
#include "gguf/gguf_internal.h"

namespace tandem {
namespace gguf_detail {

namespace {

struct ValueTypeInfo {
  std::string_view name;
  size_t scalar_size;  // 0 for variable-size types
};

// Indexed by the GGUF type id.
constexpr std::array<ValueTypeInfo, 13> kValueTypes = {{
    {"uint8", 1},
    {"int8", 1},
    {"uint16", 2},
    {"int16", 2},
    {"uint32", 4},
    {"int32", 4},
    {"float32", 4},
    {"bool", 1},
    {"string", 0},
    {"array", 0},
    {"uint64", 8},
    {"int64", 8},
    {"float64", 8},
}};

}  // namespace

std::string_view value_type_name(GgufValueType type) {
  const auto id = static_cast<uint32_t>(type);
  return id < kValueTypes.size() ? kValueTypes[id].name : std::string_view("type#?");
}

std::optional<GgufValueType> value_type_from_id(uint32_t id) {
  if (id >= kValueTypes.size()) return std::nullopt;
  return static_cast<GgufValueType>(id);
}

size_t scalar_size(GgufValueType type) {
  const auto id = static_cast<uint32_t>(type);
  return id < kValueTypes.size() ? kValueTypes[id].scalar_size : 0;
}

size_t min_encoded_size(GgufValueType type) {
  if (type == GgufValueType::STRING) return 8;  // uint64 length
  if (type == GgufValueType::ARRAY) return 12;  // uint32 element type + uint64 count
  return scalar_size(type);
}

std::optional<uint64_t> valid_alignment(const GgufValue& value) {
  const auto a = value.as_int();
  if (!a || value.type == GgufValueType::BOOL || *a <= 0) return std::nullopt;
  const auto u = static_cast<uint64_t>(*a);
  if ((u & (u - 1)) != 0 || u > kMaxAlignment) return std::nullopt;
  return u;
}

}  // namespace gguf_detail

namespace {

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::UINT8 || t == GgufValueType::UINT16 || t == GgufValueType::UINT32 ||
         t == GgufValueType::UINT64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::INT8 || t == GgufValueType::INT16 || t == GgufValueType::INT32 ||
         t == GgufValueType::INT64;
}
bool is_float(GgufValueType t) { return t == GgufValueType::FLOAT32 || t == GgufValueType::FLOAT64; }

constexpr size_t kMaxDisplayString = 96;       // bytes of a top-level string shown before the ellipsis
constexpr size_t kMaxDisplayArrayString = 32;  // same, for strings inside arrays

// Appends `s` quoted, control characters escaped, cut after about `max_bytes` at a UTF-8 boundary.
void append_quoted(std::string& out, const std::string& s, size_t max_bytes) {
  size_t n = s.size();
  if (n > max_bytes) {
    n = max_bytes;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;  // don't split a UTF-8 char
  }
  out += '"';
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  if (n < s.size()) {
    out += "\xE2\x80\xA6\" (";  // U+2026 HORIZONTAL ELLIPSIS
    out += std::to_string(s.size());
    out += " bytes)";
  } else {
    out += '"';
  }
}

template <typename F>
void append_number(std::string& out, F v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, res.ptr);
}

void append_display(std::string& out, const GgufValue& v, size_t max_items, size_t max_string) {
  if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&v.value)) {
    const GgufArray* arr = a->get();
    const size_t count = arr ? arr->values.size() : 0;
    out += gguf_detail::value_type_name(arr ? arr->element_type : GgufValueType::ARRAY);
    out += '[';
    out += std::to_string(count);
    out += "] [";
    for (size_t i = 0; i < count && i < max_items; ++i) {
      if (i > 0) out += ", ";
      append_display(out, arr->values[i], max_items, kMaxDisplayArrayString);
    }
    if (count > max_items) out += max_items > 0 ? ", ..." : "...";
    out += ']';
  } else if (const auto* s = std::get_if<std::string>(&v.value)) {
    append_quoted(out, *s, max_string);
  } else if (const auto* b = std::get_if<bool>(&v.value)) {
    out += *b ? "true" : "false";
  } else if (const auto* d = std::get_if<double>(&v.value)) {
    if (v.type == GgufValueType::FLOAT32) {
      append_number(out, static_cast<float>(*d));
    } else {
      append_number(out, *d);
    }
  } else if (const auto* u = std::get_if<uint64_t>(&v.value)) {
    append_number(out, *u);
  } else if (const auto* i = std::get_if<int64_t>(&v.value)) {
    append_number(out, *i);
  }
}

}  // namespace

std::optional<int64_t> GgufValue::as_int() const {
  if (const auto* b = std::get_if<bool>(&value); b && type == GgufValueType::BOOL) return *b ? 1 : 0;
  if (const auto* u = std::get_if<uint64_t>(&value); u && is_unsigned(type)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&value); i && is_signed(type)) return *i;
  return std::nullopt;
}

std::optional<double> GgufValue::as_float() const {
  if (const auto* d = std::get_if<double>(&value); d && is_float(type)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&value); u && is_unsigned(type)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&value); i && is_signed(type)) return static_cast<double>(*i);
  return std::nullopt;
}

std::optional<bool> GgufValue::as_bool() const {
  if (const auto* b = std::get_if<bool>(&value); b && type == GgufValueType::BOOL) return *b;
  return std::nullopt;
}

std::optional<std::string> GgufValue::as_string() const {
  if (const auto* s = std::get_if<std::string>(&value); s && type == GgufValueType::STRING) return *s;
  return std::nullopt;
}

const GgufArray* GgufValue::as_array() const {
  if (const auto* a = std::get_if<std::shared_ptr<GgufArray>>(&value); a && type == GgufValueType::ARRAY) {
    return a->get();
  }
  return nullptr;
}

// Scalars print plainly (strings quoted and escaped, cut with an ellipsis past ~96 bytes); arrays as
// `TYPE[COUNT] [first max_array_items items, ...]`, e.g. `string[151936] ["!", "\"", ...]`.
std::string GgufValue::to_display_string(size_t max_array_items) const {
  std::string out;
  append_display(out, *this, max_array_items, kMaxDisplayString);
  return out;
}

}  // namespace tandem
