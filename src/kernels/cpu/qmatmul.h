// Integer matrix products of the CPU backend: weights stay quantized, activations are quantized once per
// call to int8, and every weight block is decoded once per tile and used for every token of the call.
//
// Activations (q8 rows): per group of 256 values (the last group of a row may be shorter, a multiple of
// 32), two levels of int8 codes: q = round(x / d) with d = max|x| / 127, and q2 = round((x - d q) / d2) with
// d2 = d / 254, plus the sums of each 16 codes of each level. x is kept to within max|x| / 64516 (about 16
// bits): one int8 level (as other engines use) moves small models' routing decisions and their logits by
// far more than the fixtures' tolerance; the second level doubles the integer work but not the weight
// bytes read, which is what bounds decoding.
// Weights of every supported quantized type are decoded per row tile into a canonical form, then one
// dot-product kernel per ISA serves all types:
//   k-quants (Q2_K..Q6_K): per 256 values u8 codes q >= 0, a 16-bit scale and a 16-bit "min" per 16 values,
//     float d and dmin: w = d * scale * q - dmin * min (Q6_K and Q3_K map their offsets to the min term);
//   legacy types (Q4_0, Q4_1, Q5_0, Q5_1): per 32 values u8 codes, float d and m: w = d * q + m;
//   Q8_0: per 32 values the int8 codes and d.
// Float weights (F32, F16, BF16) multiply float32 activations directly.
//
// Exactness and order. Each block's integer sums are exact; a (row, token) result is then accumulated in
// float32 block by block, in increasing order, with one fused multiply-add per term:
//   k-quants:   per level (dx, qx): acc = fma(d * dx, isum, acc); acc = fma(-(dmin * dx), msum, acc)
//               (isum = sum scale * q * qx, msum = sum min * bsum16), first level then second
//   legacy:     per level: acc = fma(d * dx, isum, acc); acc = fma(m * dx, bsum32, acc)  (per 32 values)
//   Q8_0:       per level: acc = fma(d * dx, isum, acc)                                  (per 32 values)
//   float:      16 running sums by position mod 16, fma in increasing position, combined as
//               s8[i] = l[i] + l[i+8], s4[i] = s8[i] + s8[i+4], s2[i] = s4[i] + s4[i+2], s2[0] + s2[1].
// Every ISA computes exactly these operations, so scalar, AVX2 and AVX512 results are bit-identical, and a
// result never depends on the other rows or tokens of the call (batch invariance).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf/ggml_type.h"
#include "kernels/tensor.h"

namespace tandem::cpu {

enum class MatmulIsa { Scalar, Avx2, Avx512 };  // Avx512: F, BW, VL, VNNI

const char* matmul_isa_name(MatmulIsa isa);
bool matmul_isa_supported(MatmulIsa isa);
// The ISA the CPU backend uses: the best supported, unless the environment variable TANDEM_CPU_ISA
// (scalar, avx2, avx512) asks for another; an unsupported request falls back to the best (and says so on
// stderr once).
MatmulIsa selected_matmul_isa();
// Parses "scalar" / "avx2" / "avx512"; false for anything else.
bool parse_matmul_isa(const char* text, MatmulIsa& isa);

// Weight types with an integer (or direct float) kernel; others are dequantized to float32 first.
bool has_fast_matmul(GgmlType type);
// Whether `type` multiplies q8 rows (quantized types) rather than float32 rows (F32, F16, BF16).
bool uses_q8_activations(GgmlType type);

// Bytes of one q8 activation row of n values (n a multiple of 32).
size_t q8_row_bytes(int64_t n);
// Quantizes n_rows rows of n values (x row r at x + r * ldx) into q8 rows at dst + r * q8_row_bytes(n).
void quantize_q8_rows(MatmulIsa isa, const float* x, int64_t ldx, int64_t n_rows, int64_t n, uint8_t* dst);

// Scratch bytes a thread needs to decode a tile of weight rows of n values.
size_t qmatmul_scratch_bytes(int64_t n);
// Rows per tile: the kernels decode and multiply this many rows at a time.
inline constexpr int64_t kTileRows = 4;

// y[t * ldy + r] = sum_c W[mat][r][c] x_t[c] for rows r in [r0, r1) and tokens t < n_tokens.
// For q8 types x_t is q8 row t at xq + t * q8_row_bytes(cols); for float types it is x + t * ldx.
// `scratch` holds qmatmul_scratch_bytes(cols) bytes, 64-byte aligned. Requires has_fast_matmul(w.type).
void qmatmul_rows(MatmulIsa isa, const Tensor& w, int64_t mat, int64_t r0, int64_t r1, const uint8_t* xq,
                  const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy, uint8_t* scratch);

}  // namespace tandem::cpu
