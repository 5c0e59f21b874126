// The reference kernels of qmatmul.h: plain C++ that defines every result the SIMD kernels must reproduce
// bit for bit (integer sums, then the float operations of the header, in its order).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/qmatmul_internal.h"

namespace tandem::cpu::scalar {

namespace {

float half(uint16_t h) { return fp16_to_fp32(h); }

void quantize_q8(const float* x, int64_t n, Q8Group* dst) {
  for (int64_t g = 0; g * 256 < n; ++g) {
    Q8Group& out = dst[g];
    const float* v = x + g * 256;
    const int m = static_cast<int>(std::min<int64_t>(256, n - g * 256));
    float amax = 0.0f;
    for (int i = 0; i < m; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const float id2 = id * 254.0f;
    out.d = amax / 127.0f;
    out.d2 = out.d / 254.0f;
    for (int i = 0; i < 256; ++i) {
      if (i >= m) {
        out.q[i] = out.q2[i] = 0;
        continue;
      }
      const float q = std::nearbyint(v[i] * id);
      const float residual = v[i] - out.d * q;
      out.q[i] = static_cast<int8_t>(q);
      out.q2[i] = static_cast<int8_t>(std::clamp(std::nearbyint(residual * id2), -127.0f, 127.0f));
    }
    for (int k = 0; k < 16; ++k) {
      int s = 0, s2 = 0;
      for (int i = 0; i < 16; ++i) {
        s += out.q[16 * k + i];
        s2 += out.q2[16 * k + i];
      }
      out.bsum[k] = static_cast<int16_t>(s);
      out.bsum2[k] = static_cast<int16_t>(s2);
    }
  }
}

// Fills scale_lanes / min from per-16-value scales and mins.
void set_scales16(KBlock& kb, const int scale16[16], const int min16[16]) {
  for (int i = 0; i < 128; ++i) kb.scale_lanes[i] = static_cast<int16_t>(scale16[i / 8]);
  for (int k = 0; k < 16; ++k) kb.min[k] = static_cast<int16_t>(min16[k]);
}

}  // namespace

void decode_k(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    KBlock& kb = dst[b];
    int scale16[16], min16[16];
    switch (type) {
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: {
        const bool five = type == GgmlType::Q5_K;
        const uint8_t* blk = row + static_cast<size_t>(b) * (five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
        uint16_t d, dmin;
        std::memcpy(&d, blk, 2);
        std::memcpy(&dmin, blk + 2, 2);
        uint8_t sc[8], mn[8];
        unpack_k4_scales(blk + 4, sc, mn);
        const uint8_t* qh = five ? blk + 16 : nullptr;
        const uint8_t* qs = blk + (five ? 48 : 16);
        for (int e = 0; e < 256; ++e) {
          const int j = e / 64, l = e % 64;
          int q = l < 32 ? qs[32 * j + l] & 0x0F : qs[32 * j + l - 32] >> 4;
          if (five) q |= ((qh[e % 32] >> (e / 32)) & 1) << 4;
          kb.q[e] = static_cast<uint8_t>(q);
        }
        for (int k = 0; k < 16; ++k) {
          scale16[k] = sc[k / 2];
          min16[k] = mn[k / 2];
        }
        kb.d = half(d);
        kb.dmin = half(dmin);
        break;
      }
      case GgmlType::Q6_K: {
        const auto* blk = reinterpret_cast<const BlockQ6_K*>(row) + b;
        for (int e = 0; e < 256; ++e) {
          const int h = e / 128, k = (e % 128) / 32, l = e % 32;
          const uint8_t lo_byte = blk->ql[64 * h + 32 * (k & 1) + l];
          const int lo = k < 2 ? lo_byte & 0x0F : lo_byte >> 4;
          const int hi = (blk->qh[32 * h + l] >> (2 * k)) & 3;
          kb.q[e] = static_cast<uint8_t>(lo | (hi << 4));  // q - 32 is the signed code
        }
        for (int k = 0; k < 16; ++k) {
          scale16[k] = blk->scales[k];
          min16[k] = 32 * blk->scales[k];
        }
        kb.d = half(blk->d);
        kb.dmin = kb.d;
        break;
      }
      case GgmlType::Q3_K: {
        const auto* blk = reinterpret_cast<const BlockQ3_K*>(row) + b;
        int8_t sc[16];
        unpack_q3_k_scales(blk->scales, sc);
        for (int e = 0; e < 256; ++e) {
          const int h = e / 128, k = (e % 128) / 32, l = e % 32;
          const int lo = (blk->qs[32 * h + l] >> (2 * k)) & 3;
          const int hi = (blk->hmask[l] >> (4 * h + k)) & 1;
          kb.q[e] = static_cast<uint8_t>(lo + 4 * hi);  // q - 4 is the signed code
        }
        for (int k = 0; k < 16; ++k) {
          scale16[k] = sc[k];
          min16[k] = 4 * sc[k];
        }
        kb.d = half(blk->d);
        kb.dmin = kb.d;
        break;
      }
      case GgmlType::Q2_K: {
        const auto* blk = reinterpret_cast<const BlockQ2_K*>(row) + b;
        for (int e = 0; e < 256; ++e) {
          const int h = e / 128, k = (e % 128) / 32, l = e % 32;
          kb.q[e] = static_cast<uint8_t>((blk->qs[32 * h + l] >> (2 * k)) & 3);
        }
        for (int k = 0; k < 16; ++k) {
          scale16[k] = blk->scales[k] & 0x0F;
          min16[k] = blk->scales[k] >> 4;
        }
        kb.d = half(blk->d);
        kb.dmin = half(blk->dmin);
        break;
      }
      default:
        return;
    }
    set_scales16(kb, scale16, min16);
  }
}

void decode_legacy(GgmlType type, const uint8_t* row, int64_t n, LBlock* dst) {
  for (int64_t b = 0; b < n / kQK; ++b) {
    LBlock& lb = dst[b];
    switch (type) {
      case GgmlType::Q8_0: {
        const auto* blk = reinterpret_cast<const BlockQ8_0*>(row) + b;
        std::memcpy(lb.q, blk->qs, 32);
        lb.d = half(blk->d);
        lb.m = 0.0f;
        break;
      }
      case GgmlType::Q4_0:
      case GgmlType::Q4_1: {
        const bool one = type == GgmlType::Q4_1;
        const uint8_t* blk = row + static_cast<size_t>(b) * (one ? sizeof(BlockQ4_1) : sizeof(BlockQ4_0));
        uint16_t d, m = 0;
        std::memcpy(&d, blk, 2);
        if (one) std::memcpy(&m, blk + 2, 2);
        const uint8_t* qs = blk + (one ? 4 : 2);
        for (int j = 0; j < 16; ++j) {
          lb.q[j] = qs[j] & 0x0F;
          lb.q[j + 16] = qs[j] >> 4;
        }
        lb.d = half(d);
        lb.m = one ? half(m) : -8.0f * lb.d;
        break;
      }
      case GgmlType::Q5_0:
      case GgmlType::Q5_1: {
        const bool one = type == GgmlType::Q5_1;
        const uint8_t* blk = row + static_cast<size_t>(b) * (one ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0));
        uint16_t d, m = 0;
        std::memcpy(&d, blk, 2);
        if (one) std::memcpy(&m, blk + 2, 2);
        const uint32_t qh = load_u32_le(blk + (one ? 4 : 2));
        const uint8_t* qs = blk + (one ? 8 : 6);
        for (int j = 0; j < 16; ++j) {
          lb.q[j] = static_cast<uint8_t>((qs[j] & 0x0F) | (((qh >> j) & 1) << 4));
          lb.q[j + 16] = static_cast<uint8_t>((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
        }
        lb.d = half(d);
        lb.m = one ? half(m) : -16.0f * lb.d;
        break;
      }
      default:
        return;
    }
  }
}

namespace {

void dot_k(const KBlock* rows, int64_t row_stride, int n_rows, const Q8Group* x, int64_t x_stride, int64_t n_tok,
           int64_t n_blocks, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t t = 0; t < n_tok; ++t) {
      float acc = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        const KBlock& kb = rows[r * row_stride + b];
        const Q8Group& xg = x[t * x_stride + b];
        for (int level = 0; level < 2; ++level) {
          const int8_t* xq = level == 0 ? xg.q : xg.q2;
          const int16_t* bsum = level == 0 ? xg.bsum : xg.bsum2;
          const float dx = level == 0 ? xg.d : xg.d2;
          int32_t isum = 0, msum = 0;
          for (int i = 0; i < 128; ++i) {
            isum += kb.scale_lanes[i] * (kb.q[2 * i] * xq[2 * i] + kb.q[2 * i + 1] * xq[2 * i + 1]);
          }
          for (int k = 0; k < 16; ++k) msum += kb.min[k] * bsum[k];
          acc = std::fma(kb.d * dx, static_cast<float>(isum), acc);
          acc = std::fma(-(kb.dmin * dx), static_cast<float>(msum), acc);
        }
      }
      y[t * ldy + r] = acc;
    }
  }
}

void dot_legacy(bool signed_q8_0, const LBlock* rows, int64_t row_stride, int n_rows, const Q8Group* x,
                int64_t x_stride, int64_t n_tok, int64_t n_blocks, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t t = 0; t < n_tok; ++t) {
      float acc = 0.0f;
      for (int64_t b = 0; b < n_blocks; ++b) {
        const LBlock& lb = rows[r * row_stride + b];
        const Q8Group& xg = x[t * x_stride + b / 8];
        const int sub = static_cast<int>(b % 8);
        for (int level = 0; level < 2; ++level) {
          const int8_t* xq = (level == 0 ? xg.q : xg.q2) + 32 * sub;
          const int16_t* bsum = level == 0 ? xg.bsum : xg.bsum2;
          const float dx = level == 0 ? xg.d : xg.d2;
          int32_t isum = 0;
          for (int i = 0; i < 32; ++i) isum += (signed_q8_0 ? static_cast<int8_t>(lb.q[i]) : lb.q[i]) * xq[i];
          acc = std::fma(lb.d * dx, static_cast<float>(isum), acc);
          if (!signed_q8_0) acc = std::fma(lb.m * dx, static_cast<float>(bsum[2 * sub] + bsum[2 * sub + 1]), acc);
        }
      }
      y[t * ldy + r] = acc;
    }
  }
}

float weight_value(GgmlType type, const uint8_t* row, int64_t i) {
  if (type == GgmlType::F32) {
    float v;
    std::memcpy(&v, row + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, row + 2 * i, 2);
  return type == GgmlType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

void dot_float(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx, int64_t n_tok,
               int64_t n, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * w_stride;
    for (int64_t t = 0; t < n_tok; ++t) {
      float lanes[16] = {};
      for (int64_t i = 0; i < n; ++i) lanes[i % 16] = std::fma(weight_value(type, row, i), x[t * ldx + i], lanes[i % 16]);
      y[t * ldy + r] = reduce16(lanes);
    }
  }
}

}  // namespace

const QmatmulKernels kQmatmulKernels{quantize_q8, decode_k, decode_legacy, dot_k, dot_legacy, dot_float};

}  // namespace tandem::cpu::scalar
