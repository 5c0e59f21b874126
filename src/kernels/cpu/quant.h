// CPU kernels for GGUF tensor types: dequantize, dot products, quantize.
//
// Every function takes rows of n values, n a multiple of the type's block size (ggml_type_info), laid out
// exactly as in GGUF files. Each has a scalar reference and SIMD paths (AVX2, later AVX512/AMX); the
// `Isa` overloads pick one explicitly (tests compare them), the plain ones use the best the CPU supports,
// detected once at run time. Results are deterministic for a given ISA: the reduction order of a dot
// product depends only on n, never on threads or batch, which the engine's batch invariance relies on.
// Dequantized values are bit-identical across ISAs, and dot_row equals dot_f32 over the row dequantized
// with the same ISA bit for bit; dot products of different ISAs agree within float rounding.
//
// Errors: std::invalid_argument for a type that is not computable, n < 0 or not a whole number of blocks,
// or an Isa the CPU lacks (isa_supported) or Tandem has no kernels for (Avx512 for now).
#pragma once

#include <cstdint>

#include "gguf/ggml_type.h"

namespace tandem::cpu {

enum class Isa { Scalar, Avx2, Avx512 };

Isa best_isa();  // highest ISA this CPU runs and Tandem has kernels for
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);  // the CPU can run it

// Is `type` one the kernels below accept? (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K)
bool is_computable(GgmlType type);

// dst[0..n) = the values stored in `src` (a row of `type`).
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);
void dequantize_row(Isa isa, GgmlType type, const void* src, float* dst, int64_t n);

// sum_i a[i] * b[i] in float32, fixed reduction order.
float dot_f32(const float* a, const float* b, int64_t n);
float dot_f32(Isa isa, const float* a, const float* b, int64_t n);

// sum_i row[i] * x[i], where row is a row of `type`; computed in float32 on the dequantized values.
float dot_row(GgmlType type, const void* row, const float* x, int64_t n);
float dot_row(Isa isa, GgmlType type, const void* row, const float* x, int64_t n);

// Encodes n floats as a row of `type` (reference quantizer: round-to-nearest with the scale search of the
// format; used to write models and in tests). dst must hold ggml_row_size(type, n) bytes.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Scalar conversions used across the engine.
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t b);
uint16_t fp32_to_bf16(float f);  // round to nearest even, NaN preserved

}  // namespace tandem::cpu
