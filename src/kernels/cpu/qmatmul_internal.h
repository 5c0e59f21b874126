// Internal layouts and per-ISA entry points of qmatmul.h. Internal to src/kernels/cpu.
//
// Helpers are `static inline` (see quant_blocks.h): this header is included by translation units built
// for different ISAs.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/qmatmul.h"

// The kernels are written as small functions and lambdas handed to visitors; the compiler must inline all
// of them into the per-block loops (it does not always decide to on its own, and a call per 32 values
// halves the speed).
#define TANDEM_INLINE inline __attribute__((always_inline))

namespace tandem::cpu {

// One group of (up to) 256 activations in an integer mode (qmatmul.h), x ~= dx * X, xsum[k] = dx * (sum of
// X[16 k .. 16 k + 15]); a short last group is zero-padded. int22: X = 65536 digit[2] + 256 digit[1] +
// digit[0] (each digit in [-128, 127]). int8: X = digit[0][e] and, for the AVX512 kernels, the same values in
// lane order: digit[1][64 q + 4 l + i] = X[16 l + 4 q + i] (the 16 lanes of a 64-byte chunk q each hold 4
// values of one 16-value group l, so that summing a lane over the group's 4 chunks gives T_l); digit[2] is
// zero. A prepared row is an array of these.
inline constexpr int32_t kInt22Max = (1 << 21) - (1 << 14);
inline constexpr int32_t kInt8Max = 127;
// Digits per activation value: 3 (int22) or 1 (int8); the kernels' `digits` argument says which contract.
static inline int activation_digits(ActivationPrecision precision) { return precision == ActivationPrecision::Int8 ? 1 : 3; }
// Where value e of an int8 group sits in lane order (digit[1]).
static inline int int8_lane_index(int e) { return 64 * ((e % 16) / 4) + 4 * (e / 16) + e % 4; }
struct alignas(64) IntGroup {
  int8_t digit[3][256];
  float xsum[16];
  float dx;
  uint8_t pad[60];
};
static_assert(sizeof(IntGroup) == 896);

enum class WeightFamily { KQuant, Legacy, Float };
static inline WeightFamily family_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return WeightFamily::KQuant;
    case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
      return WeightFamily::Legacy;
    default:
      return WeightFamily::Float;
  }
}

// A quantized row decoded, for either mode: its codes (f32 mode: floats, centred where the type has no
// mins; integer modes: unsigned bytes), and per 16 values the scale dsc16 = d * scale (legacy: the block's d)
// and the coefficient mneg16 of the min or offset term (qmatmul.h). Row r of a decoded tile is at offset
// r * stride values (codes) and r * stride / 16 (the other two).
struct F32Row {
  float* code;
  float* dsc16;
  float* mneg16;
};
struct U8Row {
  uint8_t* code;
  float* dsc16;
  float* mneg16;
};
// Values per sub-block (one scale): 32 for Q4_K, Q5_K and the legacy types, 16 for Q2_K, Q3_K, Q6_K.
static inline int f32_sub_size(GgmlType t) {
  return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q6_K ? 16 : 32;
}
static inline bool f32_has_min(GgmlType t) {
  return t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q2_K || t == GgmlType::Q4_1 || t == GgmlType::Q5_1;
}

// Rows decoded in one pass when there are many tokens (more rows amortize the activation reads).
inline constexpr int64_t kDecodeRows = 16;
// Up to this many tokens the kernels decode block by block into L1 and use each block for every token.
inline constexpr int64_t kDirectTokens = 8;

// The kernels of one ISA. Rows are `w` + r * w_stride bytes (the GGUF layout); activation row t is at
// x + t * x_stride groups; y[t * ldy + r].
struct QmatmulKernels {
  // Float weights (F32 / F16 / BF16) times float activations; rows are w + r * w_stride bytes.
  void (*dot_float)(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                    int64_t n_tok, int64_t n, float* y, int64_t ldy);
  // Integer modes (`digits`: activation_digits): the activations of one row quantized into ceil(n / 256)
  // groups, a quantized row decoded, and decoded rows (row r at offset r * row_stride) times n_tok tokens
  // (token t's groups at x + t * x_stride), y[t * ldy + r].
  void (*int_quantize)(int digits, const float* x, int64_t n, IntGroup* dst);
  void (*u8_decode)(GgmlType type, const uint8_t* row, int64_t n, U8Row dst);
  void (*int_dot_decoded)(int digits, GgmlType type, U8Row rows, int64_t row_stride, int n_rows, const IntGroup* x,
                          int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy);
  // The same straight from quantized rows (row r at w + r * w_stride bytes), at most kDirectTokens tokens.
  void (*int_dot_direct)(int digits, GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const IntGroup* x,
                         int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy);
  // f32 mode: the sums of each 16 activations, a row decoded to float codes with the scale and min of each
  // 16 values, decoded rows times tokens, and the decode fused with the product for at most kDirectTokens
  // tokens.
  void (*f32_xsum)(const float* x, int64_t n, float* xsum);
  void (*f32_decode)(GgmlType type, const uint8_t* row, int64_t n, F32Row dst);
  void (*f32_dot_decoded)(GgmlType type, F32Row rows, int64_t row_stride, int n_rows, const float* x, int64_t ldx,
                          const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy);
  void (*f32_dot_direct)(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                         const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy);
};

namespace scalar {
extern const QmatmulKernels kQmatmulKernels;
}
namespace avx2 {
extern const QmatmulKernels kQmatmulKernels;
}
namespace avx512 {
extern const QmatmulKernels kQmatmulKernels;
}

// The canonical float reduction of 16 lane sums (qmatmul.h).
static inline float reduce16(const float* l) {
  float s8[8], s4[4], s2[2];
  for (int i = 0; i < 8; ++i) s8[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  for (int i = 0; i < 2; ++i) s2[i] = s4[i] + s4[i + 2];
  return s2[0] + s2[1];
}

}  // namespace tandem::cpu
