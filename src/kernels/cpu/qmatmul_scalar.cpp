// The reference kernels of qmatmul.h: plain C++ that defines every result the SIMD kernels must reproduce
// bit for bit (exact integer lanes, then the float operations of the header, in its order).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/qmatmul_internal.h"

namespace tandem::cpu::scalar {

namespace {

float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_fp32(h);
}

void quantize(const float* x, int64_t n, Q16Group* dst) {
  for (int64_t g = 0; g * 256 < n; ++g) {
    Q16Group& out = dst[g];
    const float* v = x + g * 256;
    const int m = static_cast<int>(std::min<int64_t>(256, n - g * 256));
    float amax = 0.0f;
    for (int i = 0; i < m; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float id = amax > 0.0f ? 32767.0f / amax : 0.0f;
    out.d = amax / 32767.0f;
    for (int i = 0; i < 256; ++i) out.q[i] = i < m ? static_cast<int16_t>(std::nearbyint(v[i] * id)) : 0;
    for (int k = 0; k < 16; ++k) {
      int32_t s = 0;
      for (int i = 0; i < 16; ++i) s += out.q[16 * k + i];
      out.bsumf[k] = out.d * static_cast<float>(s);
    }
  }
}

void decode_k(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst) {
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    KBlock& kb = dst[b];
    int code[256] = {}, scale16[16] = {}, min16[16] = {};
    float dmin = 0.0f;
    kb.has_min = 1;
    switch (type) {
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: {
        const bool five = type == GgmlType::Q5_K;
        const uint8_t* blk = row + static_cast<size_t>(b) * (five ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K));
        uint8_t sc[8], mn[8];
        unpack_k4_scales(blk + 4, sc, mn);
        const uint8_t* qh = blk + 16;
        const uint8_t* qs = blk + (five ? 48 : 16);
        for (int e = 0; e < 256; ++e) {
          const int j = e / 64, l = e % 64;
          code[e] = l < 32 ? qs[32 * j + l] & 0x0F : qs[32 * j + l - 32] >> 4;
          if (five) code[e] |= ((qh[e % 32] >> (e / 32)) & 1) << 4;
        }
        for (int k = 0; k < 16; ++k) {
          scale16[k] = sc[k / 2];
          min16[k] = mn[k / 2];
        }
        kb.d = half(blk);
        dmin = half(blk + 2);
        break;
      }
      case GgmlType::Q6_K: {
        const auto* blk = reinterpret_cast<const BlockQ6_K*>(row) + b;
        for (int e = 0; e < 256; ++e) {
          const int h = e / 128, k = (e % 128) / 32, l = e % 32;
          const uint8_t lo_byte = blk->ql[64 * h + 32 * (k & 1) + l];
          const int lo = k < 2 ? lo_byte & 0x0F : lo_byte >> 4;
          const int hi = (blk->qh[32 * h + l] >> (2 * k)) & 3;
          code[e] = (lo | (hi << 4)) - 32;
        }
        for (int k = 0; k < 16; ++k) scale16[k] = blk->scales[k];
        kb.d = half(reinterpret_cast<const uint8_t*>(&blk->d));
        kb.has_min = 0;
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
          code[e] = lo + 4 * hi - 4;
        }
        for (int k = 0; k < 16; ++k) scale16[k] = sc[k];
        kb.d = half(reinterpret_cast<const uint8_t*>(&blk->d));
        kb.has_min = 0;
        break;
      }
      case GgmlType::Q2_K: {
        const auto* blk = reinterpret_cast<const BlockQ2_K*>(row) + b;
        for (int e = 0; e < 256; ++e) {
          const int h = e / 128, k = (e % 128) / 32, l = e % 32;
          code[e] = (blk->qs[32 * h + l] >> (2 * k)) & 3;
        }
        for (int k = 0; k < 16; ++k) {
          scale16[k] = blk->scales[k] & 0x0F;
          min16[k] = blk->scales[k] >> 4;
        }
        kb.d = half(reinterpret_cast<const uint8_t*>(&blk->d));
        dmin = half(reinterpret_cast<const uint8_t*>(&blk->dmin));
        break;
      }
      default:
        return;
    }
    for (int e = 0; e < 256; ++e) kb.wq[e] = static_cast<int16_t>(scale16[e / 16] * code[e]);
    for (int k = 0; k < 16; ++k) kb.mneg[k] = kb.has_min ? -(dmin * static_cast<float>(min16[k])) : 0.0f;
  }
}

void decode_legacy(GgmlType type, const uint8_t* row, int64_t n, LGroup* dst) {
  const int64_t blocks = n / kQK;
  const bool one = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
  for (int64_t g = 0; g * 8 < blocks; ++g) {
    LGroup& lg = dst[g];
    std::memset(&lg, 0, sizeof lg);
    lg.has_min = one ? 1 : 0;
    for (int j = 0; j < 8 && g * 8 + j < blocks; ++j) {
      const int64_t b = g * 8 + j;
      int code[32];
      float d = 0.0f, m = 0.0f;
      switch (type) {
        case GgmlType::Q8_0: {
          const auto* blk = reinterpret_cast<const BlockQ8_0*>(row) + b;
          for (int i = 0; i < 32; ++i) code[i] = blk->qs[i];
          d = half(reinterpret_cast<const uint8_t*>(&blk->d));
          break;
        }
        case GgmlType::Q4_0:
        case GgmlType::Q4_1: {
          const uint8_t* blk = row + static_cast<size_t>(b) * (one ? sizeof(BlockQ4_1) : sizeof(BlockQ4_0));
          const uint8_t* qs = blk + (one ? 4 : 2);
          for (int i = 0; i < 16; ++i) {
            code[i] = (qs[i] & 0x0F) - (one ? 0 : 8);
            code[i + 16] = (qs[i] >> 4) - (one ? 0 : 8);
          }
          d = half(blk);
          if (one) m = half(blk + 2);
          break;
        }
        case GgmlType::Q5_0:
        case GgmlType::Q5_1: {
          const uint8_t* blk = row + static_cast<size_t>(b) * (one ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0));
          const uint32_t qh = load_u32_le(blk + (one ? 4 : 2));
          const uint8_t* qs = blk + (one ? 8 : 6);
          for (int i = 0; i < 16; ++i) {
            code[i] = ((qs[i] & 0x0F) | (((qh >> i) & 1) << 4)) - (one ? 0 : 16);
            code[i + 16] = ((qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4)) - (one ? 0 : 16);
          }
          d = half(blk);
          if (one) m = half(blk + 2);
          break;
        }
        default:
          return;
      }
      for (int i = 0; i < 32; ++i) lg.wq[32 * j + i] = static_cast<int16_t>(code[i]);
      lg.d[j] = d;
      lg.m16[2 * j] = lg.m16[2 * j + 1] = m;
    }
  }
}

// The per-pair state of the header's accumulation.
struct PairAcc {
  float acc[16] = {};
  float accm[16] = {};
  float result() const { return reduce16(acc) + reduce16(accm); }
};

void accumulate_k(const KBlock& kb, const Q16Group& xg, PairAcc& a) {
  int32_t lane[16] = {};
  for (int c = 0; c < 8; ++c) {
    for (int l = 0; l < 16; ++l) {
      const int e = 32 * c + 2 * l;
      lane[l] += kb.wq[e] * xg.q[e] + kb.wq[e + 1] * xg.q[e + 1];
    }
  }
  const float dd = kb.d * xg.d;
  for (int l = 0; l < 16; ++l) a.acc[l] = std::fma(dd, static_cast<float>(lane[l]), a.acc[l]);
  if (kb.has_min) {
    for (int k = 0; k < 16; ++k) a.accm[k] = std::fma(kb.mneg[k], xg.bsumf[k], a.accm[k]);
  }
}

void accumulate_legacy(const LGroup& lg, const Q16Group& xg, int blocks, PairAcc& a) {
  for (int j = 0; j < blocks; ++j) {
    int32_t lane[16];
    for (int l = 0; l < 16; ++l) {
      const int e = 32 * j + 2 * l;
      lane[l] = lg.wq[e] * xg.q[e] + lg.wq[e + 1] * xg.q[e + 1];
    }
    const float dd = lg.d[j] * xg.d;
    for (int l = 0; l < 16; ++l) a.acc[l] = std::fma(dd, static_cast<float>(lane[l]), a.acc[l]);
  }
  if (lg.has_min) {
    for (int k = 0; k < 2 * blocks; ++k) a.accm[k] = std::fma(lg.m16[k], xg.bsumf[k], a.accm[k]);
  }
}

void dot_k(const KBlock* rows, int64_t row_stride, int n_rows, const Q16Group* x, int64_t x_stride, int64_t n_tok,
           int64_t n_blocks, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t t = 0; t < n_tok; ++t) {
      PairAcc a;
      for (int64_t b = 0; b < n_blocks; ++b) accumulate_k(rows[r * row_stride + b], x[t * x_stride + b], a);
      y[t * ldy + r] = a.result();
    }
  }
}

void dot_legacy(const LGroup* rows, int64_t row_stride, int n_rows, const Q16Group* x, int64_t x_stride,
                int64_t n_tok, int64_t n_values, float* y, int64_t ldy) {
  const int64_t groups = (n_values + 255) / 256;
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t t = 0; t < n_tok; ++t) {
      PairAcc a;
      for (int64_t g = 0; g < groups; ++g) {
        const int blocks = static_cast<int>(std::min<int64_t>(8, (n_values - 256 * g) / 32));
        accumulate_legacy(rows[r * row_stride + g], x[t * x_stride + g], blocks, a);
      }
      y[t * ldy + r] = a.result();
    }
  }
}

void dot_direct(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const Q16Group* x, int64_t x_stride,
                int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  const bool k_quant = family_of(type) == WeightFamily::KQuant;
  const int64_t groups = (n + 255) / 256;
  const size_t block_bytes = ggml_type_info(type).type_size;
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * w_stride;
    PairAcc a[kDirectTokens];
    for (int64_t g = 0; g < groups; ++g) {
      if (k_quant) {
        KBlock kb;
        decode_k(type, row + static_cast<size_t>(g) * block_bytes, 256, &kb);
        for (int64_t t = 0; t < n_tok; ++t) accumulate_k(kb, x[t * x_stride + g], a[t]);
      } else {
        LGroup lg;
        const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
        decode_legacy(type, row + static_cast<size_t>(g) * 8 * block_bytes, 32 * blocks, &lg);
        for (int64_t t = 0; t < n_tok; ++t) accumulate_legacy(lg, x[t * x_stride + g], blocks, a[t]);
      }
    }
    for (int64_t t = 0; t < n_tok; ++t) y[t * ldy + r] = a[t].result();
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

void decode_f32(GgmlType type, const uint8_t* row, int64_t n, float* dst) {
  if (family_of(type) == WeightFamily::KQuant) {
    const size_t block_bytes = ggml_type_info(type).type_size;
    for (int64_t b = 0; b < n / 256; ++b) {
      KBlock kb;
      decode_k(type, row + static_cast<size_t>(b) * block_bytes, 256, &kb);
      for (int e = 0; e < 256; ++e) dst[256 * b + e] = std::fma(kb.d, static_cast<float>(kb.wq[e]), kb.mneg[e / 16]);
    }
    return;
  }
  const size_t block_bytes = ggml_type_info(type).type_size;
  for (int64_t g = 0; 256 * g < n; ++g) {
    const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
    LGroup lg;
    decode_legacy(type, row + static_cast<size_t>(g) * 8 * block_bytes, 32 * blocks, &lg);
    for (int e = 0; e < 32 * blocks; ++e) {
      dst[256 * g + e] = std::fma(lg.d[e / 32], static_cast<float>(lg.wq[e]), lg.m16[e / 16]);
    }
  }
}

void dot_direct_f32(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                    int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  std::vector<float> row(static_cast<size_t>(n));
  for (int r = 0; r < n_rows; ++r) {
    decode_f32(type, w + static_cast<size_t>(r) * w_stride, n, row.data());
    dot_float(GgmlType::F32, reinterpret_cast<const uint8_t*>(row.data()), 0, 1, x, ldx, n_tok, n, y + r, ldy);
  }
}

}  // namespace

const QmatmulKernels kQmatmulKernels{quantize, decode_k, decode_legacy, dot_k, dot_legacy, dot_direct, dot_float,
                                     decode_f32, dot_direct_f32};

}  // namespace tandem::cpu::scalar
