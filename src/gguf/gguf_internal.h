// Internals shared by the GGUF reader (gguf_parse.cpp, gguf_file.cpp), gguf_value.cpp and the writer.
// Not part of the public interface.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gguf/gguf_file.h"

namespace tandem::gguf_detail {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian uint32
inline constexpr uint64_t kDefaultAlignment = 32;
inline constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;
inline constexpr int kMaxArrayDepth = 8;  // arrays nested deeper than this are rejected
inline constexpr uint32_t kMaxDims = 4;

// Thrown inside the module for malformed input; converted to a Status at the public boundary.
class GgufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "uint32", "string", ...; "type#N" for values outside the enum.
std::string_view value_type_name(GgufValueType type);
// The enum value for a type id read from a file; nullopt when no GGUF version defines it.
std::optional<GgufValueType> value_type_from_id(uint32_t id);
// Fewest bytes one value of `type` takes in a file (a string's length field, an array's header).
size_t min_encoded_size(GgufValueType type);
// Bytes of a fixed-size scalar type; 0 for STRING and ARRAY.
size_t scalar_size(GgufValueType type);
// A general.alignment value when valid (an integer type, a power of two in 1..kMaxAlignment), else nullopt.
std::optional<uint64_t> valid_alignment(const GgufValue& value);

// One parsed GGUF image (a file or a buffer). Tensor `data` pointers point into the image.
struct ParsedImage {
  uint32_t version = 0;
  uint64_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;  // start of the tensor data section
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<GgufTensorInfo> tensors;
};

// Parses and validates a whole image; throws GgufError("<name>: <problem> ...") on any defect.
ParsedImage parse_image(const uint8_t* bytes, size_t size, const std::string& name, int file_index);

}  // namespace tandem::gguf_detail
