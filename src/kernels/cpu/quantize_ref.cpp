// Reference quantizers (float rows -> GGUF blocks, layouts in quant_blocks.h).
//
// Each sub-block gets a scale (and for the affine types a min) from a small search: a handful of candidate
// scales around the one that maps the extreme value onto the end of the integer range, each refined by a
// least-squares fit for its rounded levels, keeping the smallest squared error. The k-quants then quantize
// those scales against a per-super-block fp16 scale, and every value is rounded again against the exact
// scale the decoder will use. Deterministic; not tuned for speed.
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_kernels.h"

namespace tandem::cpu::scalar {
namespace {

// Round to nearest (ties away from zero), clamped to [lo, hi]; NaN gives lo.
int round_clamp(float v, int lo, int hi) {
  if (!(v >= static_cast<float>(lo))) return lo;
  if (v >= static_cast<float>(hi)) return hi;
  return static_cast<int>(std::lround(v));
}

// Stores a scale as fp16 and returns the value the decoder will read back.
float store_half(float v, uint16_t* field) {
  *field = fp32_to_fp16(v);
  return fp16_to_fp32(*field);
}

// x[i] ~= scale * q[i] with q[i] in [qmin, qmax]; returns scale (either sign), q filled.
float fit_symmetric(const float* x, int n, int qmin, int qmax, int* q) {
  float amax = 0.0f;
  float extreme = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      extreme = x[i];
    }
  }
  for (int i = 0; i < n; ++i) q[i] = 0;
  if (amax == 0.0f) return 0.0f;
  float best_gain = -1.0f;  // sum(xq)^2 / sum(q^2): the error reduction of the least-squares scale
  float best_scale = 0.0f;
  int trial[kQK];
  for (const int end : {qmin, qmax}) {
    for (int step = -10; step <= 10; ++step) {
      const float target = static_cast<float>(end) + 0.1f * static_cast<float>(step);
      if (std::fabs(target) < 0.5f) continue;
      const float inverse = target / extreme;
      float sum_xq = 0.0f;
      float sum_qq = 0.0f;
      for (int i = 0; i < n; ++i) {
        trial[i] = round_clamp(x[i] * inverse, qmin, qmax);
        sum_xq += x[i] * static_cast<float>(trial[i]);
        sum_qq += static_cast<float>(trial[i] * trial[i]);
      }
      if (sum_qq == 0.0f) continue;
      const float gain = sum_xq * sum_xq / sum_qq;
      if (gain > best_gain) {
        best_gain = gain;
        best_scale = sum_xq / sum_qq;
        for (int i = 0; i < n; ++i) q[i] = trial[i];
      }
    }
  }
  return best_scale;
}

// x[i] ~= scale * q[i] - min with q[i] in [0, qmax], scale >= 0, min >= 0; returns scale, sets *min.
float fit_affine(const float* x, int n, int qmax, float* min) {
  float lo = x[0];
  float hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::fmin(lo, x[i]);
    hi = std::fmax(hi, x[i]);
  }
  lo = std::fmin(lo, 0.0f);
  if (!(hi > lo)) {
    *min = -lo;
    return 0.0f;
  }
  float best_scale = (hi - lo) / static_cast<float>(qmax);
  float best_offset = lo;
  float best_error = INFINITY;
  int q[kQK];
  for (int step = -10; step <= 10; ++step) {
    const float inverse = (static_cast<float>(qmax) + 0.1f * static_cast<float>(step)) / (hi - lo);
    float sum_q = 0.0f, sum_qq = 0.0f, sum_x = 0.0f, sum_xq = 0.0f;
    for (int i = 0; i < n; ++i) {
      q[i] = round_clamp((x[i] - lo) * inverse, 0, qmax);
      const float qf = static_cast<float>(q[i]);
      sum_q += qf;
      sum_qq += qf * qf;
      sum_x += x[i];
      sum_xq += x[i] * qf;
    }
    // Least squares for x ~= scale * q + offset, with offset <= 0.
    const float det = static_cast<float>(n) * sum_qq - sum_q * sum_q;
    if (!(det > 0.0f)) continue;
    float scale = (static_cast<float>(n) * sum_xq - sum_q * sum_x) / det;
    float offset = (sum_qq * sum_x - sum_q * sum_xq) / det;
    if (offset > 0.0f) {
      offset = 0.0f;
      scale = sum_xq / sum_qq;
    }
    if (!(scale > 0.0f)) continue;
    float error = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float diff = scale * static_cast<float>(q[i]) + offset - x[i];
      error += diff * diff;
    }
    if (error < best_error) {
      best_error = error;
      best_scale = scale;
      best_offset = offset;
    }
  }
  *min = -best_offset;
  return best_scale;
}

// Quantizes a sub-block scale against the super-block scale d: round(s / d) in [lo, hi] (0 when d is 0).
int quantize_scale(float s, float d, int lo, int hi) { return d != 0.0f ? round_clamp(s / d, lo, hi) : 0; }

void quantize_q8_0(const float* x, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK) {
    float amax = 0.0f;
    for (int e = 0; e < 32; ++e) amax = std::fmax(amax, std::fabs(x[e]));
    const float d = store_half(amax / 127.0f, &b->d);
    for (int e = 0; e < 32; ++e) b->qs[e] = static_cast<int8_t>(d != 0.0f ? round_clamp(x[e] / d, -128, 127) : 0);
  }
}

// Q4_0 / Q5_0: symmetric, q stored with an offset of 2^(bits-1).
template <class Block, int kBits>
void quantize_symmetric_legacy(const float* x, Block* b, int64_t nb) {
  constexpr int kOffset = 1 << (kBits - 1);
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK) {
    int q[kQK];
    const float d = store_half(fit_symmetric(x, kQK, -kOffset, kOffset - 1, q), &b->d);
    for (int e = 0; e < 32; ++e) q[e] = (d != 0.0f ? round_clamp(x[e] / d, -kOffset, kOffset - 1) : 0) + kOffset;
    for (int j = 0; j < 16; ++j) b->qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    if constexpr (kBits == 5) {
      uint32_t qh = 0;
      for (int e = 0; e < 32; ++e) qh |= static_cast<uint32_t>(q[e] >> 4) << e;
      std::memcpy(b->qh, &qh, sizeof qh);
    }
  }
}

// Q4_1 / Q5_1: x = d * q + m.
template <class Block, int kBits>
void quantize_affine_legacy(const float* x, Block* b, int64_t nb) {
  constexpr int kMax = (1 << kBits) - 1;
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK) {
    float min = 0.0f;
    const float d = store_half(fit_affine(x, kQK, kMax, &min), &b->d);
    const float m = store_half(-min, &b->m);
    int q[kQK];
    for (int e = 0; e < 32; ++e) q[e] = d != 0.0f ? round_clamp((x[e] - m) / d, 0, kMax) : 0;
    for (int j = 0; j < 16; ++j) b->qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
    if constexpr (kBits == 5) {
      uint32_t qh = 0;
      for (int e = 0; e < 32; ++e) qh |= static_cast<uint32_t>(q[e] >> 4) << e;
      std::memcpy(b->qh, &qh, sizeof qh);
    }
  }
}

// Q2_K / Q4_K / Q5_K: per sub-block (scale, min) fits, quantized to kScaleBits against fp16 d and dmin.
// Fills q[0..256) with levels in [0, kMax] and returns the quantized scales and mins.
template <int kSub, int kMax, int kScaleBits>
void quantize_affine_super(const float* x, uint16_t* d_field, uint16_t* dmin_field, uint8_t* scale, uint8_t* min,
                           int* q) {
  constexpr int kCount = kQK_K / kSub;
  constexpr int kScaleMax = (1 << kScaleBits) - 1;
  float scales[kCount], mins[kCount];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int s = 0; s < kCount; ++s) {
    scales[s] = fit_affine(x + kSub * s, kSub, kMax, &mins[s]);
    max_scale = std::fmax(max_scale, scales[s]);
    max_min = std::fmax(max_min, mins[s]);
  }
  const float d = store_half(max_scale / kScaleMax, d_field);
  const float dmin = store_half(max_min / kScaleMax, dmin_field);
  for (int s = 0; s < kCount; ++s) {
    scale[s] = static_cast<uint8_t>(quantize_scale(scales[s], d, 0, kScaleMax));
    min[s] = static_cast<uint8_t>(quantize_scale(mins[s], dmin, 0, kScaleMax));
    const float dl = d * static_cast<float>(scale[s]);
    const float ml = dmin * static_cast<float>(min[s]);
    for (int l = 0; l < kSub; ++l) {
      const int e = kSub * s + l;
      q[e] = dl != 0.0f ? round_clamp((x[e] + ml) / dl, 0, kMax) : 0;
    }
  }
}

// Q3_K / Q6_K: per sub-block symmetric fits, scales quantized to [scale_lo, scale_hi] against fp16 d.
// Fills q[0..256) with signed levels in [qmin, qmax].
template <int kQMin, int kQMax>
void quantize_symmetric_super(const float* x, uint16_t* d_field, int scale_lo, int scale_hi, int8_t* scale, int* q) {
  constexpr int kCount = kQK_K / 16;
  float scales[kCount];
  float extreme = 0.0f;
  for (int s = 0; s < kCount; ++s) {
    scales[s] = fit_symmetric(x + 16 * s, 16, kQMin, kQMax, q + 16 * s);
    if (std::fabs(scales[s]) > std::fabs(extreme)) extreme = scales[s];
  }
  const float d = store_half(extreme / static_cast<float>(scale_lo), d_field);
  for (int s = 0; s < kCount; ++s) {
    scale[s] = static_cast<int8_t>(quantize_scale(scales[s], d, scale_lo, scale_hi));
    const float dl = d * static_cast<float>(scale[s]);
    for (int l = 0; l < 16; ++l) {
      const int e = 16 * s + l;
      q[e] = dl != 0.0f ? round_clamp(x[e] / dl, kQMin, kQMax) : 0;
    }
  }
}

void quantize_q2_k(const float* x, BlockQ2_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK_K) {
    uint8_t scale[16], min[16];
    int q[kQK_K];
    quantize_affine_super<16, 3, 4>(x, &b->d, &b->dmin, scale, min, q);
    for (int s = 0; s < 16; ++s) b->scales[s] = static_cast<uint8_t>(scale[s] | (min[s] << 4));
    std::memset(b->qs, 0, sizeof b->qs);
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e / 128, k = (e / 32) % 4, l = e % 32;
      b->qs[32 * h + l] = static_cast<uint8_t>(b->qs[32 * h + l] | (q[e] << (2 * k)));
    }
  }
}

void quantize_q3_k(const float* x, BlockQ3_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK_K) {
    int8_t scale[16];
    int q[kQK_K];
    quantize_symmetric_super<-4, 3>(x, &b->d, -32, 31, scale, q);
    pack_q3_k_scales(scale, b->scales);
    std::memset(b->qs, 0, sizeof b->qs);
    std::memset(b->hmask, 0, sizeof b->hmask);
    for (int e = 0; e < kQK_K; ++e) {
      const int u = q[e] + 4;
      const int h = e / 128, k = (e / 32) % 4, l = e % 32;
      b->qs[32 * h + l] = static_cast<uint8_t>(b->qs[32 * h + l] | ((u & 3) << (2 * k)));
      b->hmask[l] = static_cast<uint8_t>(b->hmask[l] | ((u >> 2) << (4 * h + k)));
    }
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK_K) {
    uint8_t scale[8], min[8];
    int q[kQK_K];
    quantize_affine_super<32, 15, 6>(x, &b->d, &b->dmin, scale, min, q);
    pack_k4_scales(scale, min, b->scales);
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) b->qs[32 * j + l] = static_cast<uint8_t>(q[64 * j + l] | (q[64 * j + 32 + l] << 4));
    }
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK_K) {
    uint8_t scale[8], min[8];
    int q[kQK_K];
    quantize_affine_super<32, 31, 6>(x, &b->d, &b->dmin, scale, min, q);
    pack_k4_scales(scale, min, b->scales);
    std::memset(b->qh, 0, sizeof b->qh);
    for (int j = 0; j < 4; ++j) {
      for (int l = 0; l < 32; ++l) {
        const int lo = q[64 * j + l], hi = q[64 * j + 32 + l];
        b->qs[32 * j + l] = static_cast<uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
        b->qh[l] = static_cast<uint8_t>(b->qh[l] | ((lo >> 4) << (2 * j)) | ((hi >> 4) << (2 * j + 1)));
      }
    }
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, x += kQK_K) {
    int q[kQK_K];
    quantize_symmetric_super<-32, 31>(x, &b->d, -128, 127, b->scales, q);
    std::memset(b->ql, 0, sizeof b->ql);
    std::memset(b->qh, 0, sizeof b->qh);
    for (int e = 0; e < kQK_K; ++e) {
      const int u = q[e] + 32;
      const int h = e / 128, k = (e / 32) % 4, l = e % 32;
      uint8_t& low = b->ql[64 * h + 32 * (k & 1) + l];
      low = static_cast<uint8_t>(low | ((u & 0x0F) << (k < 2 ? 0 : 4)));
      b->qh[32 * h + l] = static_cast<uint8_t>(b->qh[32 * h + l] | ((u >> 4) << (2 * k)));
    }
  }
}

}  // namespace

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
      return;
    }
    case GgmlType::BF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_bf16(src[i]);
      return;
    }
    case GgmlType::Q8_0:
      return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n / kQK);
    case GgmlType::Q4_0:
      return quantize_symmetric_legacy<BlockQ4_0, 4>(src, static_cast<BlockQ4_0*>(dst), n / kQK);
    case GgmlType::Q5_0:
      return quantize_symmetric_legacy<BlockQ5_0, 5>(src, static_cast<BlockQ5_0*>(dst), n / kQK);
    case GgmlType::Q4_1:
      return quantize_affine_legacy<BlockQ4_1, 4>(src, static_cast<BlockQ4_1*>(dst), n / kQK);
    case GgmlType::Q5_1:
      return quantize_affine_legacy<BlockQ5_1, 5>(src, static_cast<BlockQ5_1*>(dst), n / kQK);
    case GgmlType::Q2_K:
      return quantize_q2_k(src, static_cast<BlockQ2_K*>(dst), n / kQK_K);
    case GgmlType::Q3_K:
      return quantize_q3_k(src, static_cast<BlockQ3_K*>(dst), n / kQK_K);
    case GgmlType::Q4_K:
      return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), n / kQK_K);
    case GgmlType::Q5_K:
      return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), n / kQK_K);
    case GgmlType::Q6_K:
      return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), n / kQK_K);
    default:
      return;  // rejected by the dispatcher
  }
}

}  // namespace tandem::cpu::scalar
