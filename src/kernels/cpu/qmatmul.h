// Integer matrix products of the CPU backend: weights stay quantized, activations are quantized once per
// call, and every weight block is decoded once per tile and used for every token of the call.
//
// Activations (q16 rows): per group of 256 values (the last group of a row may be shorter, a multiple of
// 32), d = max|x| / 32767 and the int16 codes round(x / d): x is kept to max|x| / 65534 of its group. (One
// int8 level, as other engines use, moves small models' routing decisions and logits far past the
// fixtures' tolerance; int16 codes cost the same multiply-adds per instruction as int8 with scales.)
// Weights are decoded to int16 codes scaled by their sub-block scale (exact: |scale * code| <= 4096),
// with a float d per super-block (k-quants) or block (legacy types) and the float "min" terms.
//
// Exactness and order. Lane l (0..15) of a (row, token) pair sums, per block, the products of values
// 2l and 2l + 1 of each 32 (k-quants: 16 products over 256 values, at most 16 * 4096 * 32767 < 2^31;
// legacy types: per 32-value block); those integer sums are exact. Then, per block in increasing order:
//   acc[l] = fma(d * dx, (float)lane[l], acc[l])
// and per group with mins (16 sub-blocks of 16 values):
//   accm[k] = fma(-(dmin * min[k]), dx * bsum[k], accm[k])        (k-quants; legacy: m[k] instead)
// The result is reduce16(acc) + reduce16(accm), where reduce16 sums 16 lanes as
//   s8[i] = l[i] + l[i+8], s4[i] = s8[i] + s8[i+4], s2[i] = s4[i] + s4[i+2], s2[0] + s2[1].
// Float weights (F32, F16, BF16) use float32 activations: 16 running sums by position mod 16, one fma per
// value in increasing position, combined by reduce16.
//
// Activation precision. The default multiplies quantized weights with float32 activations. Per sub-block
// of S values (S = 32 for Q4_K, Q5_K and the legacy types, 16 for Q2_K, Q3_K, Q6_K) with float codes c
// (centred where the type has no mins) and float activations x:
//   p[l] = c[s + l] * x[s + l];  if S == 32: p[l] = fma(c[s + 16 + l], x[s + 16 + l], p[l])     (l < 16)
//   acc[l] = fma(d * scale, p[l], acc[l])                      (legacy: the block's d)
// and per 16 values k of a type with mins: accm[k % 16] = fma(-(dmin * min), xsum_k, accm[k % 16])
// (legacy Q4_1 / Q5_1: m instead), where xsum_k is reduce16 of those 16 activations; the result is
// reduce16(acc) + reduce16(accm). Int16 activations (TANDEM_ACTIVATIONS=int16) run fewer instructions per
// weight, but their 1e-4 relative error flips near-tied expert routing decisions now and then (one greedy
// continuation of the Q4_K_M fixture diverges), so they are opt-in.
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

enum class ActivationPrecision { Float32, Int16 };
const char* activation_precision_name(ActivationPrecision precision);
// TANDEM_ACTIVATIONS=f32 (default) or int16.
ActivationPrecision selected_activation_precision();

// Weight types with an integer (or direct float) kernel; others are dequantized to float32 first.
bool has_fast_matmul(GgmlType type);
// Whether the kernels of `type` need the activations prepared once per call: quantized to int16 (int16
// mode), or the sums of each 16 values (float mode, types with mins). Prepared rows are
// prepared_row_bytes(type, precision, n) bytes apart.
bool needs_prepared_activations(GgmlType type, ActivationPrecision precision);
size_t prepared_row_bytes(GgmlType type, ActivationPrecision precision, int64_t n);
size_t max_prepared_row_bytes(int64_t n);  // over every type and precision (for sizing buffers)
// Prepares n_rows rows of n values (x row r at x + r * ldx) into dst (n a multiple of 32).
void prepare_activation_rows(MatmulIsa isa, GgmlType type, ActivationPrecision precision, const float* x, int64_t ldx,
                             int64_t n_rows, int64_t n, uint8_t* dst);

// Scratch bytes a thread needs to decode a tile of weight rows of n values.
size_t qmatmul_scratch_bytes(int64_t n);
// Rows per tile: the kernels decode and multiply this many rows at a time.
inline constexpr int64_t kTileRows = 4;

// y[t * ldy + r] = sum_c W[mat][r][c] x_t[c] for rows r in [r0, r1) and tokens t < n_tokens: x_t is
// x + t * ldx, with its prepared row at prepared + t * prepared_row_bytes(...) when the type needs one.
// `scratch` holds qmatmul_scratch_bytes(cols) bytes, 64-byte aligned. Requires has_fast_matmul(w.type).
void qmatmul_rows(MatmulIsa isa, ActivationPrecision precision, const Tensor& w, int64_t mat, int64_t r0, int64_t r1,
                  const uint8_t* prepared, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
                  uint8_t* scratch);

}  // namespace tandem::cpu
