// GGUF writer: builds GGUF images (version 3 by default, or 2) that GgufModel reads back.
//
// Metadata keeps insertion order; set() on an existing key replaces its value in place. Tensors keep
// insertion order; each tensor's data starts at the next multiple of the alignment (general.alignment if
// set, else 32) in the data section, and the data section is padded to the alignment, as llama.cpp does.
// to_bytes()/write_file() validate everything first and return an error naming the key or tensor:
// value types consistent with their variant (integers in range, arrays homogeneous and of the declared
// element type), alignment a power of two, tensor names unique and non-empty, 1..4 positive dims with
// dims[0] a multiple of the type's block size, and data exactly the tensor's byte size.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf_file.h"

namespace tandem {

// Value builders for GgufWriter::set.
GgufValue gguf_u8(uint8_t v);
GgufValue gguf_i8(int8_t v);
GgufValue gguf_u16(uint16_t v);
GgufValue gguf_i16(int16_t v);
GgufValue gguf_u32(uint32_t v);
GgufValue gguf_i32(int32_t v);
GgufValue gguf_u64(uint64_t v);
GgufValue gguf_i64(int64_t v);
GgufValue gguf_f32(float v);
GgufValue gguf_f64(double v);
GgufValue gguf_bool(bool v);
GgufValue gguf_str(std::string v);
GgufValue gguf_array(GgufValueType element_type, std::vector<GgufValue> values);
GgufValue gguf_str_array(const std::vector<std::string>& values);

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  void set(const std::string& key, GgufValue value);
  // `data`: the tensor's bytes in ggml layout (rows of dims[0] values, ne[0] contiguous).
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims, std::vector<uint8_t> data);

  Result<std::vector<uint8_t>> to_bytes() const;
  // Writes the image to `path` (replacing it), streaming tensor data without building it in memory.
  Status write_file(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> data;
  };
  // Validates and serializes everything before the data section (header, metadata, tensor infos,
  // padding); sets `alignment`.
  Result<std::vector<uint8_t>> header_bytes(uint64_t& alignment) const;
  // Validates, then passes the whole image to `sink` in pieces.
  Status emit(const std::function<void(const uint8_t*, size_t)>& sink) const;

  uint32_t version_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace tandem
