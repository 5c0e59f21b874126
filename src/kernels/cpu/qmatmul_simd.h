// AVX2-level building blocks of the qmatmul kernels, shared by the AVX2 and the AVX512 translation units
// (each compiles them with its own flags). Internal to src/kernels/cpu; include only from those two files.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/qmatmul_internal.h"

namespace tandem::cpu::simd {

static inline float hmax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// Packs 32 int32 (4 vectors of 8) to 32 int8 in order.
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
  // packs works within 128-bit lanes: the result is ordered a0 b0 c0 d0 a1 b1 c1 d1 (4 values each).
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// The sums of each 16 of 32 int8 codes, stored at bsum[0] and bsum[1].
static inline void store_bsums(__m256i codes, int16_t* bsum) {
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), codes);
  const __m256i quads = _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  const __m256i h1 = _mm256_hadd_epi32(quads, quads);
  const __m256i h2 = _mm256_hadd_epi32(h1, h1);
  bsum[0] = static_cast<int16_t>(_mm256_extract_epi32(h2, 0));
  bsum[1] = static_cast<int16_t>(_mm256_extract_epi32(h2, 4));
}

// Activation quantization: the scalar reference's arithmetic (127 / amax, x * id rounded to nearest even,
// the residual x - d * q, its codes clamped to +-127).
static inline void quantize_q8(const float* x, int64_t n, Q8Group* dst) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (int64_t g = 0; g * 256 < n; ++g) {
    Q8Group& out = dst[g];
    const float* v = x + g * 256;
    const int m = static_cast<int>(std::min<int64_t>(256, n - g * 256));  // a multiple of 32
    __m256 mx = _mm256_setzero_ps();
    for (int i = 0; i < m; i += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + i)));
    const float amax = hmax256(mx);
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const float id2 = id * 254.0f;
    out.d = amax / 127.0f;
    out.d2 = out.d / 254.0f;
    const __m256 mul = _mm256_set1_ps(id), mul2 = _mm256_set1_ps(id2), dv = _mm256_set1_ps(out.d);
    for (int i = 0; i < 256; i += 32) {
      __m256i q1 = _mm256_setzero_si256(), q2 = _mm256_setzero_si256();
      if (i < m) {
        __m256i a[4], r[4];
        for (int k = 0; k < 4; ++k) {
          const __m256 xv = _mm256_loadu_ps(v + i + 8 * k);
          a[k] = _mm256_cvtps_epi32(_mm256_mul_ps(xv, mul));
          const __m256 residual = _mm256_sub_ps(xv, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(a[k])));
          r[k] = _mm256_min_epi32(hi, _mm256_max_epi32(lo, _mm256_cvtps_epi32(_mm256_mul_ps(residual, mul2))));
        }
        q1 = pack32(a[0], a[1], a[2], a[3]);
        q2 = pack32(r[0], r[1], r[2], r[3]);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.q + i), q1);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.q2 + i), q2);
      store_bsums(q1, out.bsum + i / 16);
      store_bsums(q2, out.bsum2 + i / 16);
    }
  }
}

// scale_lanes for 16 per-16-value scales: lanes 8k .. 8k + 7 hold scale k.
static inline void store_scale_lanes16(int16_t* lanes, const int16_t scale[16]) {
  for (int k = 0; k < 16; k += 2) {
    const __m256i v = _mm256_set_m128i(_mm_set1_epi16(scale[k + 1]), _mm_set1_epi16(scale[k]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes + 8 * k), v);
  }
}

static inline __m256i low_bits(__m256i v, int shift, int mask) {
  return _mm256_and_si256(_mm256_srli_epi16(v, shift), _mm256_set1_epi8(static_cast<char>(mask)));
}

template <int Shift>
static inline __m256i bits(__m256i v, int mask) {
  return _mm256_and_si256(_mm256_srli_epi16(v, Shift), _mm256_set1_epi8(static_cast<char>(mask)));
}

static inline void store32(uint8_t* dst, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v); }
static inline __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

static inline void decode_q4_k_block(const uint8_t* blk, bool five, KBlock& kb) {
  uint16_t d, dmin;
  std::memcpy(&d, blk, 2);
  std::memcpy(&dmin, blk + 2, 2);
  uint8_t sc[8], mn[8];
  unpack_k4_scales(blk + 4, sc, mn);
  const uint8_t* qs = blk + (five ? 48 : 16);
  const __m256i qh = five ? load32(blk + 16) : _mm256_setzero_si256();
  const __m256i bit = _mm256_set1_epi8(1);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = load32(qs + 32 * j);
    __m256i lo = _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
    __m256i hi = bits<4>(v, 0x0F);
    if (five) {  // bit 4 of value 32 s + l is bit s of qh[l]
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), bit), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + 1)), bit), 4));
    }
    store32(kb.q + 64 * j, lo);
    store32(kb.q + 64 * j + 32, hi);
  }
  int16_t s16[16], m16[16];
  for (int k = 0; k < 16; ++k) {
    s16[k] = sc[k / 2];
    m16[k] = mn[k / 2];
  }
  store_scale_lanes16(kb.scale_lanes, s16);
  std::memcpy(kb.min, m16, sizeof m16);
  kb.d = fp16_to_fp32(d);
  kb.dmin = fp16_to_fp32(dmin);
}

static inline void decode_q6_k_block(const BlockQ6_K& blk, KBlock& kb) {
  for (int h = 0; h < 2; ++h) {
    const __m256i ql0 = load32(blk.ql + 64 * h), ql1 = load32(blk.ql + 64 * h + 32), qh = load32(blk.qh + 32 * h);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    store32(kb.q + 128 * h + 0, _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(bits<0>(qh, 3), 4)));
    store32(kb.q + 128 * h + 32, _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(bits<2>(qh, 3), 4)));
    store32(kb.q + 128 * h + 64, _mm256_or_si256(bits<4>(ql0, 0x0F), _mm256_slli_epi16(bits<4>(qh, 3), 4)));
    store32(kb.q + 128 * h + 96, _mm256_or_si256(bits<4>(ql1, 0x0F), _mm256_slli_epi16(bits<6>(qh, 3), 4)));
  }
  int16_t s16[16];
  for (int k = 0; k < 16; ++k) s16[k] = blk.scales[k];
  store_scale_lanes16(kb.scale_lanes, s16);
  const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(kb.min), _mm256_slli_epi16(sc, 5));  // 32 * scale
  kb.d = fp16_to_fp32(blk.d);
  kb.dmin = kb.d;
}

static inline void decode_q3_k_block(const BlockQ3_K& blk, KBlock& kb) {
  const __m256i hm = load32(blk.hmask);
  const __m256i one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load32(blk.qs + 32 * h);
    for (int k = 0; k < 4; ++k) {
      const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), three);
      const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + k)), one);
      store32(kb.q + 128 * h + 32 * k, _mm256_or_si256(lo, _mm256_slli_epi16(hi, 2)));
    }
  }
  int8_t sc[16];
  unpack_q3_k_scales(blk.scales, sc);
  int16_t s16[16], m16[16];
  for (int k = 0; k < 16; ++k) {
    s16[k] = sc[k];
    m16[k] = static_cast<int16_t>(4 * sc[k]);
  }
  store_scale_lanes16(kb.scale_lanes, s16);
  std::memcpy(kb.min, m16, sizeof m16);
  kb.d = fp16_to_fp32(blk.d);
  kb.dmin = kb.d;
}

static inline void decode_q2_k_block(const BlockQ2_K& blk, KBlock& kb) {
  const __m256i three = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load32(blk.qs + 32 * h);
    for (int k = 0; k < 4; ++k) {
      store32(kb.q + 128 * h + 32 * k, _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), three));
    }
  }
  int16_t s16[16], m16[16];
  for (int k = 0; k < 16; ++k) {
    s16[k] = blk.scales[k] & 0x0F;
    m16[k] = blk.scales[k] >> 4;
  }
  store_scale_lanes16(kb.scale_lanes, s16);
  std::memcpy(kb.min, m16, sizeof m16);
  kb.d = fp16_to_fp32(blk.d);
  kb.dmin = fp16_to_fp32(blk.dmin);
}

static inline void decode_k(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst) {
  const int64_t blocks = n / 256;
  switch (type) {
    case GgmlType::Q4_K:
      for (int64_t b = 0; b < blocks; ++b) decode_q4_k_block(row + b * sizeof(BlockQ4_K), false, dst[b]);
      return;
    case GgmlType::Q5_K:
      for (int64_t b = 0; b < blocks; ++b) decode_q4_k_block(row + b * sizeof(BlockQ5_K), true, dst[b]);
      return;
    case GgmlType::Q6_K:
      for (int64_t b = 0; b < blocks; ++b) decode_q6_k_block(reinterpret_cast<const BlockQ6_K*>(row)[b], dst[b]);
      return;
    case GgmlType::Q3_K:
      for (int64_t b = 0; b < blocks; ++b) decode_q3_k_block(reinterpret_cast<const BlockQ3_K*>(row)[b], dst[b]);
      return;
    case GgmlType::Q2_K:
      for (int64_t b = 0; b < blocks; ++b) decode_q2_k_block(reinterpret_cast<const BlockQ2_K*>(row)[b], dst[b]);
      return;
    default:
      return;
  }
}

// Legacy 32-value blocks: the nibble split of 16 bytes (value j low, j + 16 high) and the 5th bits.
static inline void decode_legacy(GgmlType type, const uint8_t* row, int64_t n, LBlock* dst) {
  const int64_t blocks = n / 32;
  if (type == GgmlType::Q8_0) {
    for (int64_t b = 0; b < blocks; ++b) {
      const auto& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].q), load32(reinterpret_cast<const uint8_t*>(blk.qs)));
      dst[b].d = fp16_to_fp32(blk.d);
      dst[b].m = 0.0f;
    }
    return;
  }
  const bool one = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
  const bool five = type == GgmlType::Q5_0 || type == GgmlType::Q5_1;
  const size_t block_bytes = type == GgmlType::Q4_0 ? sizeof(BlockQ4_0) : type == GgmlType::Q4_1 ? sizeof(BlockQ4_1)
                             : type == GgmlType::Q5_0 ? sizeof(BlockQ5_0) : sizeof(BlockQ5_1);
  // Spreads bit j of a 32-bit word to byte j (as 0 or 0x10).
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                          3, 3, 3, 3, 3);
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = row + static_cast<size_t>(b) * block_bytes;
    uint16_t d, m = 0;
    std::memcpy(&d, blk, 2);
    if (one) std::memcpy(&m, blk + 2, 2);
    const uint8_t* qs = blk + (one ? 4 : 2) + (five ? 4 : 0);
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
    if (five) {
      const uint32_t qh = load_u32_le(blk + (one ? 4 : 2));
      const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), spread);
      const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
      q = _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst[b].q), q);
    dst[b].d = fp16_to_fp32(d);
    dst[b].m = one ? fp16_to_fp32(m) : (five ? -16.0f : -8.0f) * dst[b].d;
  }
}

// Sums of each of four vectors of 8 int32, as the 4 lanes of the result (exact).
static inline __m128i reduce4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
  const __m256i abcd = _mm256_hadd_epi32(ab, cd);
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

// Legacy and Q8_0 blocks, 4 (row, token) pairs at a time; works with AVX2 instructions only.
static inline void dot_legacy(bool signed_q8_0, const LBlock* rows, int64_t row_stride, int n_rows, const Q8Group* x,
                              int64_t x_stride, int64_t n_tok, int64_t n_blocks, float* y, int64_t ldy) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  const int64_t n_pairs = static_cast<int64_t>(n_rows) * n_tok;
  for (int64_t first = 0; first < n_pairs; first += 4) {
    const int np = static_cast<int>(std::min<int64_t>(4, n_pairs - first));
    const LBlock* prow[4];
    const Q8Group* px[4];
    float* py[4];
    for (int p = 0; p < 4; ++p) {
      const int64_t pair = first + std::min(p, np - 1);
      // Many tokens: a row's pairs are consecutive tokens; few: consecutive rows of one token.
      const int64_t r = n_tok >= 4 ? pair / n_tok : pair % n_rows, t = n_tok >= 4 ? pair % n_tok : pair / n_rows;
      prow[p] = rows + r * row_stride;
      px[p] = x + t * x_stride;
      py[p] = y + t * ldy + r;
    }
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int sub = static_cast<int>(b % 8);
      for (int level = 0; level < 2; ++level) {
        __m256i is[4];
        alignas(16) float dd[4], mm[4];
        alignas(16) int32_t bs[4];
        for (int p = 0; p < 4; ++p) {
          const LBlock& lb = prow[p][b];
          const Q8Group& xg = px[p][b / 8];
          const int8_t* xq = (level == 0 ? xg.q : xg.q2) + 32 * sub;
          const int16_t* bsum = level == 0 ? xg.bsum : xg.bsum2;
          const float dx = level == 0 ? xg.d : xg.d2;
          const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lb.q));
          const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
          const __m256i prod = signed_q8_0 ? _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(xv, q))
                                           : _mm256_maddubs_epi16(q, xv);
          is[p] = _mm256_madd_epi16(prod, ones16);
          dd[p] = lb.d * dx;
          mm[p] = lb.m * dx;
          bs[p] = bsum[2 * sub] + bsum[2 * sub + 1];
        }
        acc = _mm_fmadd_ps(_mm_load_ps(dd), _mm_cvtepi32_ps(reduce4(is[0], is[1], is[2], is[3])), acc);
        if (!signed_q8_0) {
          acc = _mm_fmadd_ps(_mm_load_ps(mm), _mm_cvtepi32_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(bs))), acc);
        }
      }
    }
    alignas(16) float out[4];
    _mm_store_ps(out, acc);
    for (int p = 0; p < np; ++p) *py[p] = out[p];
  }
}

// A float weight's 8 values at position i as float32.
static inline __m256 load_weights8(GgmlType type, const uint8_t* row, int64_t i) {
  if (type == GgmlType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
  if (type == GgmlType::F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float weight_at(GgmlType type, const uint8_t* row, int64_t i) {
  if (type == GgmlType::F32) {
    float v;
    std::memcpy(&v, row + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, row + 2 * i, 2);
  return type == GgmlType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

// Float weights, 2 rows x 2 tokens at a time, two 8-lane accumulators per pair (positions mod 16).
static inline void dot_float_avx2(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x,
                                  int64_t ldx, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  const int64_t full = n / 16 * 16;
  for (int r0 = 0; r0 < n_rows; r0 += 2) {
    const int nr = std::min(2, n_rows - r0);
    for (int64_t t0 = 0; t0 < n_tok; t0 += 2) {
      const int nt = static_cast<int>(std::min<int64_t>(2, n_tok - t0));
      __m256 acc[2][2][2];
      for (auto& a : acc) for (auto& b : a) b[0] = b[1] = _mm256_setzero_ps();
      const uint8_t* wr[2] = {w + static_cast<size_t>(r0) * w_stride, w + static_cast<size_t>(r0 + nr - 1) * w_stride};
      const float* xt[2] = {x + t0 * ldx, x + (t0 + nt - 1) * ldx};
      for (int64_t i = 0; i < full; i += 16) {
        for (int r = 0; r < 2; ++r) {
          const __m256 w0 = load_weights8(type, wr[r], i), w1 = load_weights8(type, wr[r], i + 8);
          for (int t = 0; t < 2; ++t) {
            acc[r][t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt[t] + i), acc[r][t][0]);
            acc[r][t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt[t] + i + 8), acc[r][t][1]);
          }
        }
      }
      for (int r = 0; r < nr; ++r) {
        for (int t = 0; t < nt; ++t) {
          float lanes[16];
          _mm256_storeu_ps(lanes, acc[r][t][0]);
          _mm256_storeu_ps(lanes + 8, acc[r][t][1]);
          for (int64_t i = full; i < n; ++i) lanes[i % 16] = std::fma(weight_at(type, wr[r], i), xt[t][i], lanes[i % 16]);
          y[(t0 + t) * ldy + r0 + r] = reduce16(lanes);
        }
      }
    }
  }
}

}  // namespace tandem::cpu::simd
