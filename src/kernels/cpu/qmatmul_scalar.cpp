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

// Either integer mode (int8: with XMAX = 127 the digit split leaves X in digit[0]; digit[1] is X in lane order).
void int_quantize(int digits, const float* x, int64_t n, IntGroup* dst) {
  const auto xmax = static_cast<float>(digits == 1 ? kInt8Max : kInt22Max);
  for (int64_t g = 0; g * 256 < n; ++g) {
    IntGroup& out = dst[g];
    std::memset(&out, 0, sizeof out);
    const float* v = x + g * 256;
    const int m = static_cast<int>(std::min<int64_t>(256, n - g * 256));
    float amax = 0.0f;
    for (int i = 0; i < m; ++i) amax = std::max(amax, std::fabs(v[i]));
    if (amax == 0.0f) continue;
    const float id = xmax / amax;
    out.dx = amax / xmax;
    int32_t q[256] = {};
    for (int i = 0; i < m; ++i) q[i] = static_cast<int32_t>(std::nearbyint(v[i] * id));
    for (int i = 0; i < 256; ++i) {
      const int32_t a0 = ((q[i] + 128) & 255) - 128;
      const int32_t x1 = (q[i] - a0) / 256;
      const int32_t a1 = ((x1 + 128) & 255) - 128;
      out.digit[0][i] = static_cast<int8_t>(a0);
      out.digit[1][i] = static_cast<int8_t>(a1);
      out.digit[2][i] = static_cast<int8_t>((x1 - a1) / 256);
    }
    if (digits == 1) {
      for (int e = 0; e < 256; ++e) out.digit[1][int8_lane_index(e)] = static_cast<int8_t>(q[e]);
    }
    for (int k = 0; k < 16; ++k) {
      int32_t s = 0;
      for (int i = 0; i < 16; ++i) s += q[16 * k + i];
      out.xsum[k] = out.dx * static_cast<float>(s);
    }
  }
}

// The unsigned codes of one k-quant super-block, the scale and min of each 16 values, d, dmin, and the
// offset that centres the codes of the types without mins (value = d * scale * (code - offset)).
void k_codes(GgmlType type, const uint8_t* blk, int code[256], int scale16[16], int min16[16], float& d, float& dmin,
             int& offset) {
  std::fill(min16, min16 + 16, 0);
  dmin = 0.0f;
  offset = 0;
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
        code[e] = lo | (hi << 4);
      }
      offset = 32;
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
        code[e] = lo + 4 * hi;
      }
      offset = 4;
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

// The unsigned codes of legacy block b of a row, its d, m (Q4_1 / Q5_1) and centring offset.
void legacy_codes(GgmlType type, const uint8_t* row, int64_t b, int code[32], float& d, float& m, int& offset) {
  const bool one = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
  d = m = 0.0f;
  offset = 0;
  switch (type) {
    case GgmlType::Q8_0: {
      const auto* blk = reinterpret_cast<const BlockQ8_0*>(row) + b;
      for (int i = 0; i < 32; ++i) code[i] = blk->qs[i] + 128;
      d = half(reinterpret_cast<const uint8_t*>(&blk->d));
      offset = 128;
      return;
    }
    case GgmlType::Q4_0:
    case GgmlType::Q4_1: {
      const uint8_t* blk = row + static_cast<size_t>(b) * (one ? sizeof(BlockQ4_1) : sizeof(BlockQ4_0));
      const uint8_t* qs = blk + (one ? 4 : 2);
      for (int i = 0; i < 16; ++i) {
        code[i] = qs[i] & 0x0F;
        code[i + 16] = qs[i] >> 4;
      }
      d = half(blk);
      if (one) m = half(blk + 2);
      offset = one ? 0 : 8;
      return;
    }
    case GgmlType::Q5_0:
    case GgmlType::Q5_1: {
      const uint8_t* blk = row + static_cast<size_t>(b) * (one ? sizeof(BlockQ5_1) : sizeof(BlockQ5_0));
      const uint32_t qh = load_u32_le(blk + (one ? 4 : 2));
      const uint8_t* qs = blk + (one ? 8 : 6);
      for (int i = 0; i < 16; ++i) {
        code[i] = (qs[i] & 0x0F) | (((qh >> i) & 1) << 4);
        code[i + 16] = (qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4);
      }
      d = half(blk);
      if (one) m = half(blk + 2);
      offset = one ? 0 : 16;
      return;
    }
    default:
      std::fill(code, code + 32, 0);
      return;
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

// One 256-value group of a row: codes, and per 16 values dsc16 and mneg16 (qmatmul.h). With
// `unsigned_codes` (integer modes) the codes are unsigned and a centring offset goes into mneg16; otherwise
// (f32 mode) they are centred and mneg16 holds only real mins.
struct RawGroup {
  int code[256];
  float dsc16[16];
  float mneg16[16];
  int values;  // 256, or fewer in a short legacy group
};

void raw_group(GgmlType type, const uint8_t* row, int64_t g, int64_t n, bool unsigned_codes, RawGroup& out) {
  std::memset(&out, 0, sizeof out);
  const size_t block_bytes = ggml_type_info(type).type_size;
  if (family_of(type) == WeightFamily::KQuant) {
    int scale16[16], min16[16], offset = 0;
    float d = 0.0f, dmin = 0.0f;
    k_codes(type, row + static_cast<size_t>(g) * block_bytes, out.code, scale16, min16, d, dmin, offset);
    out.values = 256;
    const bool mins = f32_has_min(type);
    for (int k = 0; k < 16; ++k) {
      out.dsc16[k] = d * static_cast<float>(scale16[k]);
      if (mins) out.mneg16[k] = -(dmin * static_cast<float>(min16[k]));
      else if (unsigned_codes) out.mneg16[k] = out.dsc16[k] * -static_cast<float>(offset);
    }
    if (!unsigned_codes) {
      for (int& c : out.code) c -= offset;
    }
    return;
  }
  const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
  out.values = 32 * blocks;
  for (int j = 0; j < blocks; ++j) {
    float d = 0.0f, m = 0.0f;
    int offset = 0;
    legacy_codes(type, row, 8 * g + j, out.code + 32 * j, d, m, offset);
    if (!unsigned_codes) {
      for (int i = 0; i < 32; ++i) out.code[32 * j + i] -= offset;
    }
    const float coefficient = offset != 0 ? (unsigned_codes ? d * -static_cast<float>(offset) : 0.0f) : m;
    out.dsc16[2 * j] = out.dsc16[2 * j + 1] = d;
    out.mneg16[2 * j] = out.mneg16[2 * j + 1] = coefficient;
  }
}

void u8_decode(GgmlType type, const uint8_t* row, int64_t n, U8Row dst) {
  RawGroup raw;
  for (int64_t g = 0; 256 * g < n; ++g) {
    raw_group(type, row, g, n, true, raw);
    for (int e = 0; e < raw.values; ++e) dst.code[256 * g + e] = static_cast<uint8_t>(raw.code[e]);
    for (int k = 0; k < raw.values / 16; ++k) {
      dst.dsc16[16 * g + k] = raw.dsc16[k];
      dst.mneg16[16 * g + k] = raw.mneg16[k];
    }
  }
}

// The header's int8 accumulation for one (row, token) pair over a decoded row.
float int8_pair(const uint8_t* code, const float* dsc16, const float* mneg16, const IntGroup* x, int64_t n) {
  float acc[16] = {}, accm[16] = {};
  for (int64_t g = 0; 256 * g < n; ++g) {
    const IntGroup& xg = x[g];
    const int64_t values = std::min<int64_t>(256, n - 256 * g);
    for (int64_t k = 0; k < values / 16; ++k) {
      int32_t t = 0;
      for (int64_t e = 16 * k; e < 16 * k + 16; ++e) t += static_cast<int32_t>(code[256 * g + e]) * xg.digit[0][e];
      acc[k] = std::fma(xg.dx, dsc16[16 * g + k] * static_cast<float>(t), acc[k]);
      accm[k] = std::fma(mneg16[16 * g + k], xg.xsum[k], accm[k]);
    }
  }
  return reduce16(acc) + reduce16(accm);
}

// The header's int22 accumulation for one (row, token) pair over a decoded row.
float int22_pair(const uint8_t* code, const float* dsc16, const float* mneg16, const IntGroup* x, int64_t n) {
  float acc[16] = {}, accm[16] = {};
  for (int64_t g = 0; 256 * g < n; ++g) {
    const IntGroup& xg = x[g];
    const int64_t values = std::min<int64_t>(256, n - 256 * g);
    float lanes[16] = {};
    for (int64_t q = 0; 64 * q < values; ++q) {
      for (int l = 0; l < 16; ++l) {
        int64_t t = 0;
        for (int i = 0; i < 4; ++i) {
          const int64_t e = 64 * q + 4 * l + i;
          if (e >= values) break;
          const int32_t xq = 65536 * xg.digit[2][e] + 256 * xg.digit[1][e] + xg.digit[0][e];
          t += static_cast<int64_t>(code[256 * g + e]) * xq;
        }
        const int64_t k = 4 * q + l / 4;
        const float scale = 16 * k < values ? dsc16[16 * g + k] : 0.0f;
        lanes[l] = std::fma(scale, static_cast<float>(static_cast<int32_t>(t)), lanes[l]);
      }
    }
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(xg.dx, lanes[l], acc[l]);
    for (int64_t k = 0; k < values / 16; ++k) accm[k] = std::fma(mneg16[16 * g + k], xg.xsum[k], accm[k]);
  }
  return reduce16(acc) + reduce16(accm);
}

void int_dot_decoded(int digits, GgmlType, U8Row rows, int64_t row_stride, int n_rows, const IntGroup* x, int64_t x_stride,
                     int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    for (int64_t t = 0; t < n_tok; ++t) {
      y[t * ldy + r] = (digits == 1 ? int8_pair : int22_pair)(rows.code + r * row_stride, rows.dsc16 + r * row_stride / 16,
                                rows.mneg16 + r * row_stride / 16, x + t * x_stride, n);
    }
  }
}

void int_dot_direct(int digits, GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const IntGroup* x, int64_t x_stride,
                    int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  const int64_t padded = (n + 255) / 256 * 256;
  std::vector<uint8_t> code(static_cast<size_t>(padded));
  std::vector<float> dsc(static_cast<size_t>(padded / 16)), mneg(static_cast<size_t>(padded / 16));
  for (int r = 0; r < n_rows; ++r) {
    u8_decode(type, w + static_cast<size_t>(r) * w_stride, n, U8Row{code.data(), dsc.data(), mneg.data()});
    int_dot_decoded(digits, type, U8Row{code.data(), dsc.data(), mneg.data()}, padded, 1, x, x_stride, n_tok, n, y + r, ldy);
  }
}

void f32_xsum(const float* x, int64_t n, float* xsum) {
  for (int64_t k = 0; k < n / 16; ++k) xsum[k] = reduce16(x + 16 * k);
}

void f32_decode(GgmlType type, const uint8_t* row, int64_t n, F32Row dst) {
  RawGroup raw;
  for (int64_t g = 0; 256 * g < n; ++g) {
    raw_group(type, row, g, n, false, raw);
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

const QmatmulKernels kQmatmulKernels{dot_float,  int_quantize,    u8_decode,     int_dot_decoded, int_dot_direct,
                                     f32_xsum,   f32_decode,      f32_dot_decoded, f32_dot_direct};

}  // namespace tandem::cpu::scalar
