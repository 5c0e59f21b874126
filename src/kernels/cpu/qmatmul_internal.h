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

// One group of (up to) 256 activation values quantized to int16: x = d * q with d = max|x| / 32767, and
// bsumf[k] = d * (sum of q[16 k .. 16 k + 15]) for the "min" terms of the weights. A short last group is
// zero-padded. The q16 row is an array of these.
struct alignas(64) Q16Group {
  int16_t q[256];
  float bsumf[16];
  float d;
  uint8_t pad[60];
};
static_assert(sizeof(Q16Group) == 640);

// A k-quant super-block decoded: w[e] = d * wq[e] + mneg-term, where wq = scale * code is exact in int16
// (Q6_K and Q3_K codes centred, so they have no min term) and mneg[k] = -(dmin * min[k]) applies to the
// 16 values of sub-block k (has_min = 0 when the type has no mins).
struct alignas(64) KBlock {
  int16_t wq[256];
  float mneg[16];
  float d;
  int32_t has_min;
  uint8_t pad[56];
};
static_assert(sizeof(KBlock) == 640);

// 256 values of a legacy type (8 blocks of 32) decoded: w[e] = d[e / 32] * wq[e] + m[e / 32] (codes of
// Q4_0 / Q5_0 centred and Q8_0 signed, so only Q4_1 / Q5_1 have m). m16[k] = m of the block holding
// values 16 k .. 16 k + 15. A short last group holds fewer blocks (zero codes and scales after them).
struct alignas(64) LGroup {
  int16_t wq[256];
  float d[8];
  float m16[16];
  int32_t has_min;
  uint8_t pad[28];
};
static_assert(sizeof(LGroup) == 640);

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

// Float-activation mode: a quantized row decoded to its codes (as floats, exact) and, per 16 values, the
// scale dsc16 = d * scale (legacy: the block's d) and the min coefficient mneg16 = -(dmin * min) (legacy
// Q4_1 / Q5_1: the block's m; 0 for types without mins). Row r of a decoded tile is at offset r * stride
// values (codes) and r * stride / 16 (the other two).
struct F32Row {
  float* code;
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
  void (*quantize)(const float* x, int64_t n, Q16Group* dst);
  // Decodes one row (n values) into n / 256 KBlocks or ceil(n / 256) LGroups.
  void (*decode_k)(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst);
  void (*decode_legacy)(GgmlType type, const uint8_t* row, int64_t n, LGroup* dst);
  // Decoded rows (row r at rows + r * row_stride) times any number of tokens.
  void (*dot_k)(const KBlock* rows, int64_t row_stride, int n_rows, const Q16Group* x, int64_t x_stride, int64_t n_tok,
                int64_t n_blocks, float* y, int64_t ldy);
  void (*dot_legacy)(const LGroup* rows, int64_t row_stride, int n_rows, const Q16Group* x, int64_t x_stride,
                     int64_t n_tok, int64_t n_values, float* y, int64_t ldy);
  // Quantized rows straight from the file, at most kDirectTokens tokens.
  void (*dot_direct)(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const Q16Group* x, int64_t x_stride,
                     int64_t n_tok, int64_t n, float* y, int64_t ldy);
  // Float weights (F32 / F16 / BF16) times float activations.
  void (*dot_float)(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                    int64_t n_tok, int64_t n, float* y, int64_t ldy);
  // Float-activation mode (qmatmul.h): the sums of each 16 activations, a row decoded to float codes with
  // the scale and min of each 16 values, decoded rows times tokens, and the decode fused with the product
  // for at most kDirectTokens tokens.
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
