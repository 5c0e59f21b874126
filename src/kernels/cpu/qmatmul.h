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
// Activation precision. The default multiplies quantized weights with float32 activations: each weight
// value is decoded to float32 as w = fma(d, scale * code, -(dmin * min)) (legacy: fma(d, code, m)) and the
// product is the float one above. Int16 activations (TANDEM_ACTIVATIONS=int16) run twice the multiply-adds
// per instruction in prefill, but their 1e-4 relative error flips near-tied expert routing decisions now
// and then (one greedy continuation of the Q4_K_M fixture diverges), so they are opt-in.
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

enum class ActivationPrecision { Float32, Int16 };
const char* activation_precision_name(ActivationPrecision precision);
// TANDEM_ACTIVATIONS=f32 (default) or int16.
ActivationPrecision selected_activation_precision();

// Weight types with an integer (or direct float) kernel; others are dequantized to float32 first.
bool has_fast_matmul(GgmlType type);
// Whether `type` multiplies quantized activation rows (quantized types in int16 mode) rather than float32 rows.
bool uses_q8_activations(GgmlType type, ActivationPrecision precision);

// Bytes of one quantized activation row of n values (n a multiple of 32).
size_t q8_row_bytes(int64_t n);
// Quantizes n_rows rows of n values (x row r at x + r * ldx) into rows at dst + r * q8_row_bytes(n).
void quantize_q8_rows(MatmulIsa isa, const float* x, int64_t ldx, int64_t n_rows, int64_t n, uint8_t* dst);

// Scratch bytes a thread needs to decode a tile of weight rows of n values.
size_t qmatmul_scratch_bytes(int64_t n);
// Rows per tile: the kernels decode and multiply this many rows at a time.
inline constexpr int64_t kTileRows = 4;

// y[t * ldy + r] = sum_c W[mat][r][c] x_t[c] for rows r in [r0, r1) and tokens t < n_tokens.
// For quantized types x_t is row t at xq + t * q8_row_bytes(cols); for float types it is x + t * ldx.
// `scratch` holds qmatmul_scratch_bytes(cols) bytes, 64-byte aligned. Requires has_fast_matmul(w.type).
void qmatmul_rows(MatmulIsa isa, ActivationPrecision precision, const Tensor& w, int64_t mat, int64_t r0, int64_t r1,
                  const uint8_t* xq, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
                  uint8_t* scratch);

}  // namespace tandem::cpu
