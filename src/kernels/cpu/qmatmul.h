// Matrix products of the CPU backend over quantized weights: weights stay quantized in memory, activations
// are prepared once per call, and every weight block is decoded once per tile and used for every token of
// the call. Three activation precisions, each with one canonical order of float operations that every ISA
// (scalar reference, AVX2, AVX512-VNNI) reproduces bit for bit, whatever the number of tokens in a call.
//
// int22 (the default). Per group of 256 activations (a short last group: its values, a multiple of 32),
// dx = amax / XMAX and X = round(x * (XMAX / amax)) with XMAX = 2^21 - 2^14, held as three int8 digits
// X = 65536 a2 + 256 a1 + a0, and xsum[k] = dx * (sum of X over values 16 k .. 16 k + 15). Weights are
// unsigned codes u (types with signed codes are stored offset: Q6_K u = q + 32, Q8_0 u = q + 128, ...) with
// a float scale dsc16 per 16 values (d * sub-block scale; the block's d for legacy types) and a float
// coefficient mneg16 per 16 values for the min or offset term (-(dmin * min); -(32 * dsc16) for Q6_K, ...).
// Lane l (0..15) of each 64 values q of a group sums the 4 products u * X of values 64 q + 4 l .. + 3 as an
// exact int32 T (|T| <= 4 * 255 * XMAX < 2^31: three VNNI dot products with shifts), then
//   G[l] = fma(dsc16[4 q + l / 4], (float)T[l], G[l])     (G = 0 at each group's start)
//   acc[l] = fma(dx, G[l], acc[l])                          (at each group's end)
//   accm[k] = fma(mneg16[k], xsum[k], accm[k])              (per group, k = 0..15)
// and the result is reduce16(acc) + reduce16(accm), where reduce16 sums 16 lanes as
//   s8[i] = l[i] + l[i+8], s4[i] = s8[i] + s8[i+4], s2[i] = s4[i] + s4[i+2], s2[0] + s2[1].
// Why 22 bits: with one int8 level per group, as other engines use, the rounding of the activations moves
// near-tied expert routing decisions of small models (and the fixture logits) far past the reference; 16
// bits still flip one greedy continuation; 20 bits and more stay within float32's own error. Three int8
// digits cost three VNNI instructions per 64 products, about half the work of converting codes to float.
//
// int8 (TANDEM_ACTIVATIONS=int8): one int8 level per group of 256, the activation precision of llama.cpp's
// and ik_llama.cpp's CPU products: dx = amax / 127, X = round(x * (127 / amax)) in [-127, 127], xsum as above.
// Each 16 values k of a group (one dsc16) sum exactly, T_k = sum of u * X (|T_k| <= 16 * 255 * 127 < 2^24, so
// (float)T_k is exact), then
//   acc[k] = fma(dx, dsc16[k] * (float)T_k, acc[k])       (the product rounded, then the fma; k = 0..15)
//   accm[k] = fma(mneg16[k], xsum[k], accm[k])
// and the result is reduce16(acc) + reduce16(accm). One VNNI instruction per 64 products and one conversion
// per 256 instead of three and four: where several tokens share a weight block (a decode step of users whose
// routing picks the same experts) the products are compute-bound and this mode is ~2x faster than int22; the
// cost is the rounding the paragraph above describes, so it is opt-in.
//
// f32 (TANDEM_ACTIVATIONS=f32): float32 activations, codes converted to float (centred where the type has
// no mins). Per sub-block of S values (S = 32 for Q4_K, Q5_K and the legacy types, 16 for Q2_K, Q3_K, Q6_K):
//   p[l] = c[s + l] * x[s + l];  if S == 32: p[l] = fma(c[s + 16 + l], x[s + 16 + l], p[l])     (l < 16)
//   acc[l] = fma(dsc16, p[l], acc[l])
// and per 16 values k of a type with mins: accm[k % 16] = fma(mneg16, xsum_k, accm[k % 16]) with xsum_k the
// reduce16 of those 16 activations; the result is reduce16(acc) + reduce16(accm).
//
// Float weights (F32, F16, BF16) use float32 activations in both modes: 16 running sums by position mod 16,
// one fma per value in increasing position, combined by reduce16.
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

enum class ActivationPrecision { Int22, Int8, Float32 };
const char* activation_precision_name(ActivationPrecision precision);
// TANDEM_ACTIVATIONS=int22 (default), int8 or f32.
ActivationPrecision selected_activation_precision();

// Weight types with an integer (or direct float) kernel; others are dequantized to float32 first.
bool has_fast_matmul(GgmlType type);
// Whether the kernels of `type` need the activations prepared once per call: quantized (int22, int8), or
// the sums of each 16 values (f32 mode, types with mins). Prepared rows are
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
