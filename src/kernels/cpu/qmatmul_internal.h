// Internal layouts and per-ISA entry points of qmatmul.h. Internal to src/kernels/cpu.
//
// Helpers are `static inline` (see quant_blocks.h): this header is included by translation units built
// for different ISAs.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cpu/qmatmul.h"

namespace tandem::cpu {

// One group of (up to) 256 activation values, quantized in two int8 levels: x = d * q + d2 * q2, where q2
// encodes the rounding residual of the first level (d2 = d / 254), so x is kept to amax / 64516. The q8
// row is an array of these. A short last group is zero-padded.
struct alignas(64) Q8Group {
  int8_t q[256];      // first-level codes
  int8_t q2[256];     // residual codes
  int16_t bsum[16];   // sums of q[16 i .. 16 i + 15]
  int16_t bsum2[16];  // sums of q2[16 i .. 16 i + 15]
  float d;
  float d2;
  uint8_t pad[56];
};
static_assert(sizeof(Q8Group) == 640);

// A k-quant super-block decoded to the canonical form: w[e] = d * scale[e / 16] * q[e] - dmin * min[e / 16].
// scale_lanes[i] is the scale of values 2i and 2i + 1 (so a vector of 16-bit pair sums multiplies by a load).
struct alignas(64) KBlock {
  uint8_t q[256];
  int16_t scale_lanes[128];
  int16_t min[16];
  float d;
  float dmin;
  uint8_t pad[24];
};
static_assert(sizeof(KBlock) == 576);

// A legacy 32-value block decoded: w[e] = d * q[e] + m (Q4_0, Q4_1, Q5_0, Q5_1: q unsigned), or, for Q8_0,
// w[e] = d * int8(q[e]) with m = 0.
struct LBlock {
  uint8_t q[32];
  float d;
  float m;
};
static_assert(sizeof(LBlock) == 40);

enum class WeightFamily { KQuant, Legacy, Q8_0, Float };
static inline WeightFamily family_of(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return WeightFamily::KQuant;
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
      return WeightFamily::Legacy;
    case GgmlType::Q8_0:
      return WeightFamily::Q8_0;
    default:
      return WeightFamily::Float;
  }
}

// Decoded tile: rows decoded in one pass (more rows amortize activation reads when there are many tokens).
inline constexpr int64_t kDecodeRows = 16;

// The kernels of one ISA.
struct QmatmulKernels {
  // One activation row.
  void (*quantize_q8)(const float* x, int64_t n, Q8Group* dst);
  // Decode a k-quant / legacy row (n values) into n / 256 KBlocks / n / 32 LBlocks.
  void (*decode_k)(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst);
  void (*decode_legacy)(GgmlType type, const uint8_t* row, int64_t n, LBlock* dst);
  // y[t * ldy + r] for rows r < n_rows (decoded row r at rows + r * row_stride blocks) and tokens t < n_tok
  // (activation row t at x + t * x_stride groups).
  void (*dot_k)(const KBlock* rows, int64_t row_stride, int n_rows, const Q8Group* x, int64_t x_stride, int64_t n_tok,
                int64_t n_blocks, float* y, int64_t ldy);
  void (*dot_legacy)(bool signed_q8_0, const LBlock* rows, int64_t row_stride, int n_rows, const Q8Group* x,
                     int64_t x_stride, int64_t n_tok, int64_t n_blocks, float* y, int64_t ldy);
  // Float weights (row r at w + r * w_stride bytes, `type` F32 / F16 / BF16) times float activations.
  void (*dot_float)(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                    int64_t n_tok, int64_t n, float* y, int64_t ldy);
};

namespace scalar {
extern const QmatmulKernels kQmatmulKernels;
// The reference decoders, also used by the SIMD paths for the types they do not specialize.
void decode_k(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst);
void decode_legacy(GgmlType type, const uint8_t* row, int64_t n, LBlock* dst);
}  // namespace scalar
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
