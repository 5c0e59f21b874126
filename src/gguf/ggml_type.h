// Tensor element types as numbered in GGUF files (the ggml type ids), with their block layout.
//
// Every quantized type stores `block_size` consecutive values of a row in `type_size` bytes; a row of
// n values (n a multiple of block_size) takes n / block_size * type_size bytes. The table covers every
// type id published GGUF files use, including ones Tandem cannot compute with, so that the reader can
// size and skip any tensor; `computable` says whether kernels exist for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace tandem {

enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;
  int64_t block_size;   // values per block
  size_t type_size;     // bytes per block
  bool computable;      // Tandem has dequantize/dot kernels for it
};

// Layout of a type id read from a file; nullopt for ids no known ggml version defines.
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t type_id);
// Same for a known enum value (always present).
const GgmlTypeInfo& ggml_type_info(GgmlType type);
std::string_view ggml_type_name(GgmlType type);

// Bytes of a row of n values; requires n % block_size == 0 (checked by callers that read files).
inline size_t ggml_row_size(GgmlType type, int64_t n) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  return static_cast<size_t>(n / info.block_size) * info.type_size;
}

}  // namespace tandem
