// Scalar reference kernels: dequantize and dot products for every computable type (layouts: quant_blocks.h).
//
// Each value is computed with the same float operations, in the same order, as in the SIMD kernels
// (e.g. (d * scale) * q - dmin * min), so dequantized rows are bit-identical across ISAs.
#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_kernels.h"

namespace tandem::cpu::scalar {
namespace {

void dequantize_q8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    for (int e = 0; e < 32; ++e) y[e] = static_cast<float>(b->qs[e]) * d;
  }
}

void dequantize_q4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((b->qs[j] & 0x0F) - 8) * d;
      y[j + 16] = static_cast<float>((b->qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    const float m = fp16_to_fp32(b->m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(b->qs[j] & 0x0F) * d + m;
      y[j + 16] = static_cast<float>(b->qs[j] >> 4) * d + m;
    }
  }
}

// The 5-bit value e of a Q5_0 / Q5_1 block.
inline int q5_value(const uint8_t* qs, uint32_t qh, int e) {
  const int low = e < 16 ? (qs[e] & 0x0F) : (qs[e - 16] >> 4);
  return low | static_cast<int>(((qh >> e) & 1) << 4);
}

void dequantize_q5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    const uint32_t qh = load_u32_le(b->qh);
    for (int e = 0; e < 32; ++e) y[e] = static_cast<float>(q5_value(b->qs, qh, e) - 16) * d;
  }
}

void dequantize_q5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b, y += kQK) {
    const float d = fp16_to_fp32(b->d);
    const float m = fp16_to_fp32(b->m);
    const uint32_t qh = load_u32_le(b->qh);
    for (int e = 0; e < 32; ++e) y[e] = static_cast<float>(q5_value(b->qs, qh, e)) * d + m;
  }
}

void dequantize_q2_k(const BlockQ2_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = fp16_to_fp32(b->d);
    const float dmin = fp16_to_fp32(b->dmin);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (int half = 0; half < 2; ++half) {  // two sub-blocks of 16 per run of 32 values
          const uint8_t sc = b->scales[8 * h + 2 * k + half];
          const float dl = d * static_cast<float>(sc & 0x0F);
          const float ml = dmin * static_cast<float>(sc >> 4);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int q = (b->qs[32 * h + l] >> (2 * k)) & 3;
            *y++ = dl * static_cast<float>(q) - ml;
          }
        }
      }
    }
  }
}

void dequantize_q3_k(const BlockQ3_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = fp16_to_fp32(b->d);
    int8_t scales[16];
    unpack_q3_k_scales(b->scales, scales);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d * static_cast<float>(scales[8 * h + 2 * k + half]);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int low = (b->qs[32 * h + l] >> (2 * k)) & 3;
            const int high = (b->hmask[l] >> (4 * h + k)) & 1;
            *y++ = dl * static_cast<float>(low + 4 * high - 4);
          }
        }
      }
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = fp16_to_fp32(b->d);
    const float dmin = fp16_to_fp32(b->dmin);
    uint8_t scale[8], min[8];
    unpack_k4_scales(b->scales, scale, min);
    for (int s = 0; s < 8; ++s) {
      const float dl = d * static_cast<float>(scale[s]);
      const float ml = dmin * static_cast<float>(min[s]);
      const uint8_t* qs = b->qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      for (int l = 0; l < 32; ++l) *y++ = dl * static_cast<float>((qs[l] >> shift) & 0x0F) - ml;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = fp16_to_fp32(b->d);
    const float dmin = fp16_to_fp32(b->dmin);
    uint8_t scale[8], min[8];
    unpack_k4_scales(b->scales, scale, min);
    for (int s = 0; s < 8; ++s) {
      const float dl = d * static_cast<float>(scale[s]);
      const float ml = dmin * static_cast<float>(min[s]);
      const uint8_t* qs = b->qs + 32 * (s / 2);
      const int shift = 4 * (s % 2);
      for (int l = 0; l < 32; ++l) {
        const int q = ((qs[l] >> shift) & 0x0F) | (((b->qh[l] >> s) & 1) << 4);
        *y++ = dl * static_cast<float>(q) - ml;
      }
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = fp16_to_fp32(b->d);
    for (int h = 0; h < 2; ++h) {
      for (int k = 0; k < 4; ++k) {
        const uint8_t* ql = b->ql + 64 * h + 32 * (k & 1);
        const int shift = k < 2 ? 0 : 4;
        for (int half = 0; half < 2; ++half) {
          const float dl = d * static_cast<float>(b->scales[8 * h + 2 * k + half]);
          for (int l = 16 * half; l < 16 * half + 16; ++l) {
            const int q = ((ql[l] >> shift) & 0x0F) | (((b->qh[32 * h + l] >> (2 * k)) & 3) << 4);
            *y++ = dl * static_cast<float>(q - 32);
          }
        }
      }
    }
  }
}

// 32 running sums in the order documented in quant_kernels.h. `add` must be called with value indices
// that continue where the previous call stopped, starting at a multiple of 32.
class LaneSums {
 public:
  void add(const float* a, const float* b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      const float product = a[i] * b[i];
      lane_[i & 31] += product;
    }
  }

  float total() const {
    float s[8];
    for (int l = 0; l < 8; ++l) s[l] = (lane_[l] + lane_[8 + l]) + (lane_[16 + l] + lane_[24 + l]);
    float t[4];
    for (int l = 0; l < 4; ++l) t[l] = s[l] + s[l + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
  }

 private:
  float lane_[32] = {};
};

}  // namespace

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case GgmlType::F32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(h[i]);
      return;
    }
    case GgmlType::BF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(h[i]);
      return;
    }
    case GgmlType::Q8_0:
      return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, n / kQK);
    case GgmlType::Q4_0:
      return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, n / kQK);
    case GgmlType::Q4_1:
      return dequantize_q4_1(static_cast<const BlockQ4_1*>(src), dst, n / kQK);
    case GgmlType::Q5_0:
      return dequantize_q5_0(static_cast<const BlockQ5_0*>(src), dst, n / kQK);
    case GgmlType::Q5_1:
      return dequantize_q5_1(static_cast<const BlockQ5_1*>(src), dst, n / kQK);
    case GgmlType::Q2_K:
      return dequantize_q2_k(static_cast<const BlockQ2_K*>(src), dst, n / kQK_K);
    case GgmlType::Q3_K:
      return dequantize_q3_k(static_cast<const BlockQ3_K*>(src), dst, n / kQK_K);
    case GgmlType::Q4_K:
      return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, n / kQK_K);
    case GgmlType::Q5_K:
      return dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, n / kQK_K);
    case GgmlType::Q6_K:
      return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, n / kQK_K);
    default:
      return;  // rejected by the dispatcher
  }
}

float dot_f32(const float* a, const float* b, int64_t n) {
  LaneSums sums;
  sums.add(a, b, n);
  return sums.total();
}

float dot_row(GgmlType type, const void* row, const float* x, int64_t n) {
  if (type == GgmlType::F32) return dot_f32(static_cast<const float*>(row), x, n);
  // Dequantize a chunk at a time (a whole number of blocks of every type, and of 32 lanes).
  constexpr int64_t kChunk = 256;
  const size_t chunk_bytes = ggml_row_size(type, kChunk);
  const auto* src = static_cast<const uint8_t*>(row);
  float values[kChunk];
  LaneSums sums;
  for (int64_t i = 0; i < n; i += kChunk, src += chunk_bytes) {
    const int64_t count = n - i < kChunk ? n - i : kChunk;
    dequantize_row(type, src, values, count);
    sums.add(values, x + i, count);
  }
  return sums.total();
}

}  // namespace tandem::cpu::scalar
