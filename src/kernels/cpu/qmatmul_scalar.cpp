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

// The codes of one k-quant super-block (centred where the type has no mins), the scale and min of each 16
// values, d and dmin.
void k_codes(GgmlType type, const uint8_t* blk, int code[256], int scale16[16], int min16[16], float& d, float& dmin) {
  std::fill(min16, min16 + 16, 0);
  dmin = 0.0f;
  switch (type) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool five = type == GgmlType::Q5_K;
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
      d = half(blk);
      dmin = half(blk + 2);
      return;
    }
    case GgmlType::Q6_K: {
      const auto* b = reinterpret_cast<const BlockQ6_K*>(blk);
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const uint8_t lo_byte = b->ql[64 * h + 32 * (k & 1) + l];
        const int lo = k < 2 ? lo_byte & 0x0F : lo_byte >> 4;
        const int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
        code[e] = (lo | (hi << 4)) - 32;
      }
      for (int k = 0; k < 16; ++k) scale16[k] = b->scales[k];
      d = half(reinterpret_cast<const uint8_t*>(&b->d));
      return;
    }
    case GgmlType::Q3_K: {
      const auto* b = reinterpret_cast<const BlockQ3_K*>(blk);
      int8_t sc[16];
      unpack_q3_k_scales(b->scales, sc);
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const int lo = (b->qs[32 * h + l] >> (2 * k)) & 3;
        const int hi = (b->hmask[l] >> (4 * h + k)) & 1;
        code[e] = lo + 4 * hi - 4;
      }
      for (int k = 0; k < 16; ++k) scale16[k] = sc[k];
      d = half(reinterpret_cast<const uint8_t*>(&b->d));
      return;
    }
    case GgmlType::Q2_K: {
      const auto* b = reinterpret_cast<const BlockQ2_K*>(blk);
      for (int e = 0; e < 256; ++e) {
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        code[e] = (b->qs[32 * h + l] >> (2 * k)) & 3;
      }
      for (int k = 0; k < 16; ++k) {
        scale16[k] = b->scales[k] & 0x0F;
        min16[k] = b->scales[k] >> 4;
      }
      d = half(reinterpret_cast<const uint8_t*>(&b->d));
      dmin = half(reinterpret_cast<const uint8_t*>(&b->dmin));
      return;
    }
    default:
      std::fill(code, code + 256, 0);
      std::fill(scale16, scale16 + 16, 0);
      d = 0.0f;
      return;
  }
}

void decode_k(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst) {
  const size_t block_bytes = ggml_type_info(type).type_size;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    KBlock& kb = dst[b];
    int code[256], scale16[16], min16[16];
    float dmin = 0.0f;
    k_codes(type, row + static_cast<size_t>(b) * block_bytes, code, scale16, min16, kb.d, dmin);
    kb.has_min = f32_has_min(type) ? 1 : 0;
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

// One 256-value group of a row for the float-activation mode.
struct RawGroup {
  int code[256];
  float dsc16[16];
  float mneg16[16];
  int values;  // 256, or fewer in a short legacy group
};

void raw_group(GgmlType type, const uint8_t* row, int64_t g, int64_t n, RawGroup& out) {
  std::memset(&out, 0, sizeof out);
  const size_t block_bytes = ggml_type_info(type).type_size;
  if (family_of(type) == WeightFamily::KQuant) {
    int scale16[16], min16[16];
    float d = 0.0f, dmin = 0.0f;
    k_codes(type, row + static_cast<size_t>(g) * block_bytes, out.code, scale16, min16, d, dmin);
    out.values = 256;
    const bool mins = f32_has_min(type);
    for (int k = 0; k < 16; ++k) {
      out.dsc16[k] = d * static_cast<float>(scale16[k]);
      out.mneg16[k] = mins ? -(dmin * static_cast<float>(min16[k])) : 0.0f;
    }
    return;
  }
  const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
  LGroup lg;
  decode_legacy(type, row + static_cast<size_t>(g) * 8 * block_bytes, 32 * blocks, &lg);
  out.values = 32 * blocks;
  for (int e = 0; e < out.values; ++e) out.code[e] = lg.wq[e];
  for (int k = 0; k < 2 * blocks; ++k) {
    out.dsc16[k] = lg.d[k / 2];
    out.mneg16[k] = lg.m16[k];
  }
}

void f32_xsum(const float* x, int64_t n, float* xsum) {
  for (int64_t k = 0; k < n / 16; ++k) xsum[k] = reduce16(x + 16 * k);
}

void f32_decode(GgmlType type, const uint8_t* row, int64_t n, F32Row dst) {
  RawGroup raw;
  for (int64_t g = 0; 256 * g < n; ++g) {
    raw_group(type, row, g, n, raw);
    for (int e = 0; e < raw.values; ++e) dst.code[256 * g + e] = static_cast<float>(raw.code[e]);
    for (int k = 0; k < raw.values / 16; ++k) {
      dst.dsc16[16 * g + k] = raw.dsc16[k];
      dst.mneg16[16 * g + k] = raw.mneg16[k];
    }
  }
}

// The header's accumulation for one (row, token) pair over a decoded row.
float f32_pair(GgmlType type, const float* code, const float* dsc16, const float* mneg16, const float* x,
               const float* xsum, int64_t n) {
  const int sub = f32_sub_size(type);
  const bool mins = f32_has_min(type);
  float acc[16] = {}, accm[16] = {};
  for (int64_t g = 0; 256 * g < n; ++g) {
    const int64_t values = std::min<int64_t>(256, n - 256 * g);
    for (int64_t s = 256 * g; s < 256 * g + values; s += sub) {
      float p[16];
      for (int l = 0; l < 16; ++l) p[l] = code[s + l] * x[s + l];
      if (sub == 32) {
        for (int l = 0; l < 16; ++l) p[l] = std::fma(code[s + 16 + l], x[s + 16 + l], p[l]);
      }
      for (int l = 0; l < 16; ++l) acc[l] = std::fma(dsc16[s / 16], p[l], acc[l]);
    }
    if (mins) {
      for (int64_t k = 0; k < values / 16; ++k) accm[k] = std::fma(mneg16[16 * g + k], xsum[16 * g + k], accm[k]);
    }
  }
  return reduce16(acc) + reduce16(accm);
}

void f32_dot_decoded(GgmlType type, F32Row rows, int64_t row_stride, int n_rows, const float* x, int64_t ldx,
                     const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t t = 0; t < n_tok; ++t) {
      y[t * ldy + r] = f32_pair(type, rows.code + r * row_stride, rows.dsc16 + r * row_stride / 16,
                                rows.mneg16 + r * row_stride / 16, x + t * ldx, xsum + t * xsum_stride, n);
    }
  }
}

void f32_dot_direct(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                    const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  std::vector<float> code(static_cast<size_t>(n)), dsc(static_cast<size_t>(n / 16)), mneg(static_cast<size_t>(n / 16));
  for (int r = 0; r < n_rows; ++r) {
    f32_decode(type, w + static_cast<size_t>(r) * w_stride, n, F32Row{code.data(), dsc.data(), mneg.data()});
    f32_dot_decoded(type, F32Row{code.data(), dsc.data(), mneg.data()}, n, 1, x, ldx, xsum, xsum_stride, n_tok, n, y + r,
                    ldy);
  }
}

}  // namespace

const QmatmulKernels kQmatmulKernels{quantize,   decode_k,        decode_legacy,  dot_k,
                                     dot_legacy, dot_direct,      dot_float,      f32_xsum,
                                     f32_decode, f32_dot_decoded, f32_dot_direct};

}  // namespace tandem::cpu::scalar
