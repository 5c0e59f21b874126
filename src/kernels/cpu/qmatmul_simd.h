// AVX2-level building blocks of the qmatmul kernels (activation quantization, weight decoders), and the
// loops shared by the AVX2 and AVX512 kernels, which differ only in their accumulator (the `Acc` policy
// below). Included by those two translation units only; each compiles it with its own flags.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/qmatmul_internal.h"

namespace tandem::cpu::simd {

static TANDEM_INLINE float half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

static inline float hmax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

static inline int32_t hsum256_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// The scalar reference's arithmetic: 32767 / amax, x * id rounded to nearest even, d * (exact sum).
static inline void quantize(const float* x, int64_t n, Q16Group* dst) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t g = 0; g * 256 < n; ++g) {
    Q16Group& out = dst[g];
    const float* v = x + g * 256;
    const int m = static_cast<int>(std::min<int64_t>(256, n - g * 256));  // a multiple of 32
    __m256 mx = _mm256_setzero_ps();
    for (int i = 0; i < m; i += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + i)));
    const float amax = hmax256(mx);
    const float id = amax > 0.0f ? 32767.0f / amax : 0.0f;
    out.d = amax / 32767.0f;
    const __m256 mul = _mm256_set1_ps(id);
    for (int k = 0; k < 16; ++k) {
      __m256i codes = _mm256_setzero_si256();
      int32_t sum = 0;
      if (16 * k < m) {
        const __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 16 * k), mul));
        const __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + 16 * k + 8), mul));
        codes = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);  // packs works per 128-bit lane
        sum = hsum256_epi32(_mm256_add_epi32(a, b));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.q + 16 * k), codes);
      out.bsumf[k] = out.d * static_cast<float>(sum);
    }
  }
}

static TANDEM_INLINE __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
static inline void store16(int16_t* dst, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v); }

// 32 one-byte codes (unsigned or signed) times the scales of their two sub-blocks of 16, to 32 int16.
static inline void store_scaled_u8(int16_t* dst, __m256i codes, int16_t scale_lo, int16_t scale_hi) {
  store16(dst, _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(codes)), _mm256_set1_epi16(scale_lo)));
  store16(dst + 16, _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(codes, 1)), _mm256_set1_epi16(scale_hi)));
}
static inline void store_scaled_i8(int16_t* dst, __m256i codes, int16_t scale_lo, int16_t scale_hi) {
  store16(dst, _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(codes)), _mm256_set1_epi16(scale_lo)));
  store16(dst + 16, _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(codes, 1)), _mm256_set1_epi16(scale_hi)));
}

static inline void store_mneg(KBlock& kb, float dmin, const int16_t min16[16]) {
  const __m256 dm = _mm256_set1_ps(-dmin);
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(min16));
  _mm256_storeu_ps(kb.mneg, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(m)))));
  _mm256_storeu_ps(kb.mneg + 8, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(m, 1)))));
}

static inline void decode_q4_k(const uint8_t* blk, bool five, KBlock& kb) {
  uint8_t sc[8], mn[8];
  unpack_k4_scales(blk + 4, sc, mn);
  const uint8_t* qs = blk + (five ? 48 : 16);
  const __m256i qh = five ? load32(blk + 16) : _mm256_setzero_si256();
  const __m256i m4 = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(1);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = load32(qs + 32 * j);
    __m256i lo = _mm256_and_si256(v, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (five) {  // bit 4 of value 32 s + l is bit s of qh[l]
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), bit), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + 1)), bit), 4));
    }
    store_scaled_u8(kb.wq + 64 * j, lo, sc[2 * j], sc[2 * j]);
    store_scaled_u8(kb.wq + 64 * j + 32, hi, sc[2 * j + 1], sc[2 * j + 1]);
  }
  int16_t m16[16];
  for (int k = 0; k < 16; ++k) m16[k] = mn[k / 2];
  kb.d = half(blk);
  kb.has_min = 1;
  store_mneg(kb, half(blk + 2), m16);
}

static inline void decode_q6_k(const BlockQ6_K& blk, KBlock& kb) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
  const int8_t* s = blk.scales;
  for (int h = 0; h < 2; ++h) {
    const __m256i ql0 = load32(blk.ql + 64 * h), ql1 = load32(blk.ql + 64 * h + 32), qh = load32(blk.qh + 32 * h);
    const __m256i c0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
    const __m256i c1 = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
    const __m256i c2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
    const __m256i c3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
    const int b = 8 * h;  // sub-block index of value 128 h
    store_scaled_i8(kb.wq + 128 * h + 0, _mm256_sub_epi8(c0, off), s[b + 0], s[b + 1]);
    store_scaled_i8(kb.wq + 128 * h + 32, _mm256_sub_epi8(c1, off), s[b + 2], s[b + 3]);
    store_scaled_i8(kb.wq + 128 * h + 64, _mm256_sub_epi8(c2, off), s[b + 4], s[b + 5]);
    store_scaled_i8(kb.wq + 128 * h + 96, _mm256_sub_epi8(c3, off), s[b + 6], s[b + 7]);
  }
  kb.d = half(reinterpret_cast<const uint8_t*>(&blk.d));
  kb.has_min = 0;
  std::memset(kb.mneg, 0, sizeof kb.mneg);
}

static inline void decode_q3_k(const BlockQ3_K& blk, KBlock& kb) {
  int8_t sc[16];
  unpack_q3_k_scales(blk.scales, sc);
  const __m256i hm = load32(blk.hmask);
  const __m256i one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load32(blk.qs + 32 * h);
    for (int k = 0; k < 4; ++k) {
      const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), three);
      const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + k)), one);
      const __m256i code = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 2)), four);
      const int b = 8 * h + 2 * k;
      store_scaled_i8(kb.wq + 128 * h + 32 * k, code, sc[b], sc[b + 1]);
    }
  }
  kb.d = half(reinterpret_cast<const uint8_t*>(&blk.d));
  kb.has_min = 0;
  std::memset(kb.mneg, 0, sizeof kb.mneg);
}

static inline void decode_q2_k(const BlockQ2_K& blk, KBlock& kb) {
  const __m256i three = _mm256_set1_epi8(3);
  for (int h = 0; h < 2; ++h) {
    const __m256i v = load32(blk.qs + 32 * h);
    for (int k = 0; k < 4; ++k) {
      const __m256i code = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), three);
      const int b = 8 * h + 2 * k;
      store_scaled_u8(kb.wq + 128 * h + 32 * k, code, blk.scales[b] & 0x0F, blk.scales[b + 1] & 0x0F);
    }
  }
  int16_t m16[16];
  for (int k = 0; k < 16; ++k) m16[k] = blk.scales[k] >> 4;
  kb.d = half(reinterpret_cast<const uint8_t*>(&blk.d));
  kb.has_min = 1;
  store_mneg(kb, half(reinterpret_cast<const uint8_t*>(&blk.dmin)), m16);
}

static TANDEM_INLINE void decode_k_block(GgmlType type, const uint8_t* blk, KBlock& kb) {
  switch (type) {
    case GgmlType::Q4_K: return decode_q4_k(blk, false, kb);
    case GgmlType::Q5_K: return decode_q4_k(blk, true, kb);
    case GgmlType::Q6_K: return decode_q6_k(*reinterpret_cast<const BlockQ6_K*>(blk), kb);
    case GgmlType::Q3_K: return decode_q3_k(*reinterpret_cast<const BlockQ3_K*>(blk), kb);
    case GgmlType::Q2_K: return decode_q2_k(*reinterpret_cast<const BlockQ2_K*>(blk), kb);
    default: return;
  }
}

static inline void decode_k(GgmlType type, const uint8_t* row, int64_t n, KBlock* dst) {
  const size_t bytes = ggml_type_info(type).type_size;
  for (int64_t b = 0; b < n / 256; ++b) decode_k_block(type, row + static_cast<size_t>(b) * bytes, dst[b]);
}

// One legacy group (up to 8 blocks of 32 values).
static inline void decode_legacy_group(GgmlType type, const uint8_t* blk0, int blocks, LGroup& lg) {
  const bool one = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
  const bool five = type == GgmlType::Q5_0 || type == GgmlType::Q5_1;
  const size_t block_bytes = ggml_type_info(type).type_size;
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                          3, 3, 3, 3, 3);
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  const __m128i m4 = _mm_set1_epi8(0x0F);
  lg.has_min = one ? 1 : 0;
  for (int j = 0; j < 8; ++j) {
    int16_t* dst = lg.wq + 32 * j;
    if (j >= blocks) {
      store16(dst, _mm256_setzero_si256());
      store16(dst + 16, _mm256_setzero_si256());
      lg.d[j] = 0.0f;
      lg.m16[2 * j] = lg.m16[2 * j + 1] = 0.0f;
      continue;
    }
    const uint8_t* blk = blk0 + static_cast<size_t>(j) * block_bytes;
    float m = 0.0f;
    __m256i codes;  // 32 int8 codes
    if (type == GgmlType::Q8_0) {
      codes = load32(blk + 2);
    } else {
      const uint8_t* qs = blk + (one ? 4 : 2) + (five ? 4 : 0);
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
      codes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
      if (five) {
        const uint32_t qh = load_u32_le(blk + (one ? 4 : 2));
        const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), spread);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
        codes = _mm256_or_si256(codes, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
      }
      if (!one) codes = _mm256_sub_epi8(codes, _mm256_set1_epi8(five ? 16 : 8));
      if (one) m = half(blk + 2);
    }
    if (one) {
      store16(dst, _mm256_cvtepu8_epi16(_mm256_castsi256_si128(codes)));
      store16(dst + 16, _mm256_cvtepu8_epi16(_mm256_extracti128_si256(codes, 1)));
    } else {
      store16(dst, _mm256_cvtepi8_epi16(_mm256_castsi256_si128(codes)));
      store16(dst + 16, _mm256_cvtepi8_epi16(_mm256_extracti128_si256(codes, 1)));
    }
    lg.d[j] = half(blk);
    lg.m16[2 * j] = lg.m16[2 * j + 1] = m;
  }
}

static inline void decode_legacy(GgmlType type, const uint8_t* row, int64_t n, LGroup* dst) {
  const int64_t blocks = n / 32;
  const size_t block_bytes = ggml_type_info(type).type_size;
  for (int64_t g = 0; g * 8 < blocks; ++g) {
    decode_legacy_group(type, row + static_cast<size_t>(g) * 8 * block_bytes,
                        static_cast<int>(std::min<int64_t>(8, blocks - 8 * g)), dst[g]);
  }
}

// --- fused decoders: a block's scaled int16 codes, 32 values (one "chunk") at a time, straight to a sink ----
// sink(c, wa, wb): chunk c (values 32 c .. 32 c + 31) as two vectors of 16 int16 (values 32 c + 0..15 and
// 32 c + 16..31), each equal to the KBlock::wq the decoders above would store.

template <typename Sink>
static TANDEM_INLINE void q4k_chunks(const uint8_t* blk, bool five, Sink&& sink, float mneg[16]) {
  uint8_t sc[8], mn[8];
  unpack_k4_scales(blk + 4, sc, mn);
  // mneg[k] = -(dmin * min of the 32-value sub-block k / 2), ready before the chunks.
  const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn));
  const __m128i m16 = _mm_unpacklo_epi8(m8, m8);
  const __m256 dm = _mm256_set1_ps(-half(blk + 2));
  _mm256_storeu_ps(mneg, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(m16))));
  _mm256_storeu_ps(mneg + 8, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(m16, 8)))));
  const uint8_t* qs = blk + (five ? 48 : 16);
  const __m256i qh = five ? load32(blk + 16) : _mm256_setzero_si256();
  const __m256i m4 = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(1);
  for (int j = 0; j < 4; ++j) {
    const __m256i v = load32(qs + 32 * j);
    __m256i lo = _mm256_and_si256(v, m4);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    if (five) {
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), bit), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + 1)), bit), 4));
    }
    const __m256i slo = _mm256_set1_epi16(sc[2 * j]), shi = _mm256_set1_epi16(sc[2 * j + 1]);
    sink(2 * j, _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(lo)), slo),
         _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(lo, 1)), slo));
    sink(2 * j + 1, _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_castsi256_si128(hi)), shi),
         _mm256_mullo_epi16(_mm256_cvtepu8_epi16(_mm256_extracti128_si256(hi, 1)), shi));
  }
}

template <typename Sink>
static TANDEM_INLINE void q6k_chunks(const BlockQ6_K& blk, Sink&& sink) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
  const int8_t* s = blk.scales;
  for (int h = 0; h < 2; ++h) {
    const __m256i ql0 = load32(blk.ql + 64 * h), ql1 = load32(blk.ql + 64 * h + 32), qh = load32(blk.qh + 32 * h);
    __m256i c[4];
    c[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
    c[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
    c[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
    c[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
    for (int k = 0; k < 4; ++k) {
      const __m256i code = _mm256_sub_epi8(c[k], off);
      const int b = 8 * h + 2 * k;
      sink(4 * h + k, _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(code)), _mm256_set1_epi16(s[b])),
           _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(code, 1)), _mm256_set1_epi16(s[b + 1])));
    }
  }
}

// --- loops shared by the AVX2 and AVX512 kernels ---------------------------------------------------------
// Acc provides struct Pair (the accumulators of a (row, token) pair: 16 float lanes and 16 min lanes),
// init(Pair&), result(const Pair&), and template <int NT> struct Block with:
//   chunk(c, wa, wb, x)        add chunk c of scaled codes (two vectors of 16 int16) times NT tokens
//   chunk_mem(c, w, x)         the same from memory (w = the block's wq)
//   finish(d, mneg, x, pairs)  lanes to the float accumulators (mneg null: no min term)
//   legacy_block(j, w, d, x, pairs) one 32-value legacy block (its own scale) from memory

template <typename Acc, int NT>
static inline void add_kblock(const KBlock& kb, const Q16Group* const* x, typename Acc::Pair* pairs) {
  typename Acc::template Block<NT> b;
  for (int c = 0; c < 8; ++c) b.chunk_mem(c, kb.wq, x);
  b.finish(kb.d, kb.has_min ? kb.mneg : nullptr, x, pairs);
}

template <typename Acc, int NT>
static inline void add_lgroup(const LGroup& lg, const Q16Group* const* x, int blocks, typename Acc::Pair* pairs) {
  typename Acc::template Block<NT> b;
  for (int j = 0; j < blocks; ++j) b.legacy_block(j, lg.wq, lg.d[j], x, pairs);
  if (lg.has_min) b.add_min(lg.m16, x, pairs);
}

template <typename Acc, int NT>
static inline void dot_k_group(const KBlock* row, const Q16Group* x, int64_t x_stride, int64_t t0, int64_t n_blocks,
                               float* y, int64_t ldy, int64_t r) {
  typename Acc::Pair pairs[NT];
  for (auto& p : pairs) Acc::init(p);
  const Q16Group* xs[NT];
  for (int64_t b = 0; b < n_blocks; ++b) {
    for (int t = 0; t < NT; ++t) xs[t] = x + (t0 + t) * x_stride + b;
    add_kblock<Acc, NT>(row[b], xs, pairs);
  }
  for (int t = 0; t < NT; ++t) y[(t0 + t) * ldy + r] = Acc::result(pairs[t]);
}

template <typename Acc, int NT>
static inline void dot_legacy_group(const LGroup* row, const Q16Group* x, int64_t x_stride, int64_t t0, int64_t n_values,
                                    float* y, int64_t ldy, int64_t r) {
  typename Acc::Pair pairs[NT];
  for (auto& p : pairs) Acc::init(p);
  const Q16Group* xs[NT];
  for (int64_t g = 0; g * 256 < n_values; ++g) {
    for (int t = 0; t < NT; ++t) xs[t] = x + (t0 + t) * x_stride + g;
    add_lgroup<Acc, NT>(row[g], xs, static_cast<int>(std::min<int64_t>(8, (n_values - 256 * g) / 32)), pairs);
  }
  for (int t = 0; t < NT; ++t) y[(t0 + t) * ldy + r] = Acc::result(pairs[t]);
}

template <typename Acc>
static inline void dot_k_loop(const KBlock* rows, int64_t row_stride, int n_rows, const Q16Group* x, int64_t x_stride,
                              int64_t n_tok, int64_t n_blocks, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    const KBlock* row = rows + r * row_stride;
    int64_t t0 = 0;
    for (; t0 + 4 <= n_tok; t0 += 4) dot_k_group<Acc, 4>(row, x, x_stride, t0, n_blocks, y, ldy, r);
    switch (n_tok - t0) {
      case 3: dot_k_group<Acc, 3>(row, x, x_stride, t0, n_blocks, y, ldy, r); break;
      case 2: dot_k_group<Acc, 2>(row, x, x_stride, t0, n_blocks, y, ldy, r); break;
      case 1: dot_k_group<Acc, 1>(row, x, x_stride, t0, n_blocks, y, ldy, r); break;
      default: break;
    }
  }
}

template <typename Acc>
static inline void dot_legacy_loop(const LGroup* rows, int64_t row_stride, int n_rows, const Q16Group* x,
                                   int64_t x_stride, int64_t n_tok, int64_t n_values, float* y, int64_t ldy) {
  for (int r = 0; r < n_rows; ++r) {
    const LGroup* row = rows + r * row_stride;
    int64_t t0 = 0;
    for (; t0 + 4 <= n_tok; t0 += 4) dot_legacy_group<Acc, 4>(row, x, x_stride, t0, n_values, y, ldy, r);
    switch (n_tok - t0) {
      case 3: dot_legacy_group<Acc, 3>(row, x, x_stride, t0, n_values, y, ldy, r); break;
      case 2: dot_legacy_group<Acc, 2>(row, x, x_stride, t0, n_values, y, ldy, r); break;
      case 1: dot_legacy_group<Acc, 1>(row, x, x_stride, t0, n_values, y, ldy, r); break;
      default: break;
    }
  }
}

// Few tokens: quantized rows straight from the file, each block decoded in registers (Q4_K, Q5_K, Q6_K)
// or into L1 (the others) and used at once for every token.
template <typename Acc, int NT>
static inline void dot_direct_rows(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const Q16Group* x,
                                   int64_t x_stride, int64_t n, float* y, int64_t ldy) {
  const int64_t groups = (n + 255) / 256;
  const size_t block_bytes = ggml_type_info(type).type_size;
  alignas(64) KBlock kb;
  alignas(64) LGroup lg;
  alignas(32) float mneg[16];
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * w_stride;
    typename Acc::Pair pairs[NT];
    for (auto& p : pairs) Acc::init(p);
    const Q16Group* xs[NT];
    for (int64_t g = 0; g < groups; ++g) {
      for (int t = 0; t < NT; ++t) xs[t] = x + t * x_stride + g;
      const uint8_t* blk = row + static_cast<size_t>(g) * block_bytes;
      switch (type) {
        case GgmlType::Q4_K:
        case GgmlType::Q5_K: {
          typename Acc::template Block<NT> b;
          q4k_chunks(blk, type == GgmlType::Q5_K, [&](int c, __m256i wa, __m256i wb) __attribute__((always_inline)) { b.chunk(c, wa, wb, xs); }, mneg);
          b.finish(half(blk), mneg, xs, pairs);
          break;
        }
        case GgmlType::Q6_K: {
          typename Acc::template Block<NT> b;
          const auto& q6 = *reinterpret_cast<const BlockQ6_K*>(blk);
          q6k_chunks(q6, [&](int c, __m256i wa, __m256i wb) __attribute__((always_inline)) { b.chunk(c, wa, wb, xs); });
          b.finish(half(reinterpret_cast<const uint8_t*>(&q6.d)), nullptr, xs, pairs);
          break;
        }
        case GgmlType::Q2_K:
        case GgmlType::Q3_K:
          decode_k_block(type, blk, kb);
          add_kblock<Acc, NT>(kb, xs, pairs);
          break;
        default: {
          const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
          decode_legacy_group(type, row + static_cast<size_t>(g) * 8 * block_bytes, blocks, lg);
          add_lgroup<Acc, NT>(lg, xs, blocks, pairs);
          break;
        }
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = Acc::result(pairs[t]);
  }
}

template <typename Acc>
static inline void dot_direct_loop(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const Q16Group* x,
                                   int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  switch (n_tok) {
    case 1: return dot_direct_rows<Acc, 1>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    case 2: return dot_direct_rows<Acc, 2>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    case 3: return dot_direct_rows<Acc, 3>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    case 4: return dot_direct_rows<Acc, 4>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    case 5: return dot_direct_rows<Acc, 5>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    case 6: return dot_direct_rows<Acc, 6>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    case 7: return dot_direct_rows<Acc, 7>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    case 8: return dot_direct_rows<Acc, 8>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy);
    default: return;
  }
}

// --- float-activation mode -----------------------------------------------------------------------------
// visit_f32_group(type, row, g, n, sink, dsc16, mneg16) fills the group's per-16 scales and mins (as the
// scalar reference computes them) and calls sink(c, codes) for each 32-value chunk c of group g: codes are
// 32 int8 in natural order, signed (centred) or unsigned as f32_codes_signed(type) says. Returns the number
// of values in the group.
static inline bool f32_codes_signed(GgmlType t) {
  return !(t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q2_K || t == GgmlType::Q4_1 || t == GgmlType::Q5_1);
}

// out[k] = scale * (float)v[k] for 8 unsigned bytes, each stored twice (for the two 16-value halves of
// a 32-value sub-block): out[2k] = out[2k + 1].
static TANDEM_INLINE void scaled_pairs8(const uint8_t* v, float scale, float* out) {
  const __m256 f = _mm256_mul_ps(_mm256_set1_ps(scale),
                                 _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v)))));
  const __m256 lo = _mm256_unpacklo_ps(f, f), hi = _mm256_unpackhi_ps(f, f);  // per 128-bit lane
  _mm256_storeu_ps(out, _mm256_permute2f128_ps(lo, hi, 0x20));
  _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
}
// out[k] = scale * (float)v[k] for 16 signed bytes.
static TANDEM_INLINE void scaled16_i8(const int8_t* v, float scale, float* out) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v));
  const __m256 s = _mm256_set1_ps(scale);
  _mm256_storeu_ps(out, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))));
  _mm256_storeu_ps(out + 8, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)))));
}

template <typename Sink>
static TANDEM_INLINE int visit_f32_group(GgmlType type, const uint8_t* row, int64_t g, int64_t n, Sink&& sink, float* dsc16,
                                  float* mneg16, size_t block_bytes) {
  const uint8_t* blk = row + static_cast<size_t>(g) * block_bytes;
  switch (type) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool five = type == GgmlType::Q5_K;
      alignas(8) uint8_t sc[8], mn[8];
      unpack_k4_scales(blk + 4, sc, mn);
      scaled_pairs8(sc, half(blk), dsc16);
      scaled_pairs8(mn, -half(blk + 2), mneg16);  // (-dmin) * min == -(dmin * min), exactly
      const uint8_t* qs = blk + (five ? 48 : 16);
      const __m256i qh = five ? load32(blk + 16) : _mm256_setzero_si256();
      const __m256i m4 = _mm256_set1_epi8(0x0F), bit = _mm256_set1_epi8(1);
      for (int j = 0; j < 4; ++j) {
        const __m256i v = load32(qs + 32 * j);
        __m256i lo = _mm256_and_si256(v, m4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        if (five) {
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j)), bit), 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j + 1)), bit), 4));
        }
        sink(2 * j, lo);
        sink(2 * j + 1, hi);
      }
      return 256;
    }
    case GgmlType::Q6_K: {
      const auto& b = *reinterpret_cast<const BlockQ6_K*>(blk);
      scaled16_i8(b.scales, half(reinterpret_cast<const uint8_t*>(&b.d)), dsc16);
      const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = load32(b.ql + 64 * h), ql1 = load32(b.ql + 64 * h + 32), qh = load32(b.qh + 32 * h);
        sink(4 * h + 0, _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)), off));
        sink(4 * h + 1, _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(ql1, m4),
                                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)), off));
        sink(4 * h + 2, _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)), off));
        sink(4 * h + 3, _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4)), off));
      }
      return 256;
    }
    case GgmlType::Q3_K: {
      const auto& b = *reinterpret_cast<const BlockQ3_K*>(blk);
      int8_t sc[16];
      unpack_q3_k_scales(b.scales, sc);
      scaled16_i8(sc, half(reinterpret_cast<const uint8_t*>(&b.d)), dsc16);
      const __m256i hm = load32(b.hmask);
      const __m256i one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
      for (int h = 0; h < 2; ++h) {
        const __m256i v = load32(b.qs + 32 * h);
        for (int k = 0; k < 4; ++k) {
          const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), three);
          const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + k)), one);
          sink(4 * h + k, _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 2)), four));
        }
      }
      return 256;
    }
    case GgmlType::Q2_K: {
      const auto& b = *reinterpret_cast<const BlockQ2_K*>(blk);
      const float d = half(reinterpret_cast<const uint8_t*>(&b.d)), dmin = half(reinterpret_cast<const uint8_t*>(&b.dmin));
      for (int k = 0; k < 16; ++k) {
        dsc16[k] = d * static_cast<float>(b.scales[k] & 0x0F);
        mneg16[k] = -(dmin * static_cast<float>(b.scales[k] >> 4));
      }
      const __m256i three = _mm256_set1_epi8(3);
      for (int h = 0; h < 2; ++h) {
        const __m256i v = load32(b.qs + 32 * h);
        for (int k = 0; k < 4; ++k) sink(4 * h + k, _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), three));
      }
      return 256;
    }
    default: {
      // Legacy blocks of 32: the group is 8 of them (fewer at the end of a row).
      const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
      const uint8_t* first = row + static_cast<size_t>(g) * 8 * block_bytes;
      const bool one = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
      const bool five = type == GgmlType::Q5_0 || type == GgmlType::Q5_1;
      const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                              3, 3, 3, 3, 3, 3);
      const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
      const __m128i m4 = _mm_set1_epi8(0x0F);
      for (int j = 0; j < blocks; ++j) {
        const uint8_t* b = first + static_cast<size_t>(j) * block_bytes;
        const float d = half(b);
        dsc16[2 * j] = dsc16[2 * j + 1] = d;
        mneg16[2 * j] = mneg16[2 * j + 1] = one ? half(b + 2) : 0.0f;
        if (type == GgmlType::Q8_0) {
          sink(j, load32(b + 2));
          continue;
        }
        const uint8_t* qs = b + (one ? 4 : 2) + (five ? 4 : 0);
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
        __m256i codes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
        if (five) {
          const uint32_t qh = load_u32_le(b + (one ? 4 : 2));
          const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(qh)), spread);
          const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, select), select);
          codes = _mm256_or_si256(codes, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
        }
        if (!one) codes = _mm256_sub_epi8(codes, _mm256_set1_epi8(five ? 16 : 8));
        sink(j, codes);
      }
      for (int k = 2 * blocks; k < 16; ++k) dsc16[k] = mneg16[k] = 0.0f;
      return 32 * blocks;
    }
  }
}

// The canonical sum of 16 floats (reduce16), vectorized.
static inline float reduce16_ps(__m256 lo, __m256 hi) {
  const __m256 s8 = _mm256_add_ps(lo, hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

static inline void f32_xsum(const float* x, int64_t n, float* xsum) {
  for (int64_t k = 0; k < n / 16; ++k) xsum[k] = reduce16_ps(_mm256_loadu_ps(x + 16 * k), _mm256_loadu_ps(x + 16 * k + 8));
}

// FAcc (per ISA) provides: struct Chunk (32 float codes), static Chunk from_codes(__m256i, bool is_signed),
// static Chunk load(const float*), static void store(const Chunk&, float*), struct Pair (16 acc and 16 accm
// lanes), init, result, and template <int NT> static void add(const Chunk&, int sub, const float* dsc2
// (the chunk's two per-16 scales), const float* const* x (at the chunk), Pair*), template <int NT> static
// void add_min(const float* mneg16, const float* const* xsum (at the group), Pair*).

template <typename FAcc, int NT>
static inline void f32_direct_rows(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                                   const float* xsum, int64_t xsum_stride, int64_t n, float* y, int64_t ldy) {
  const int sub = f32_sub_size(type);
  const bool is_signed = f32_codes_signed(type), mins = f32_has_min(type);
  const size_t block_bytes = ggml_type_info(type).type_size;
  alignas(32) float dsc16[16], mneg16[16] = {};
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * w_stride;
    typename FAcc::Pair pairs[NT];
    for (auto& p : pairs) FAcc::init(p);
    for (int64_t g = 0; 256 * g < n; ++g) {
      const float* xs[NT];
      const float* ss[NT];
      visit_f32_group(type, row, g, n, [&](int c, __m256i codes) __attribute__((always_inline)) {
        for (int t = 0; t < NT; ++t) xs[t] = x + t * ldx + 256 * g + 32 * c;
        FAcc::template add<NT>(FAcc::from_codes(codes, is_signed), sub, dsc16 + 2 * c, xs, pairs);
      }, dsc16, mneg16, block_bytes);
      if (mins) {
        for (int t = 0; t < NT; ++t) ss[t] = xsum + t * xsum_stride + 16 * g;
        FAcc::template add_min<NT>(mneg16, ss, pairs);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = FAcc::result(pairs[t]);
  }
}

template <typename FAcc>
static inline void f32_dot_direct_loop(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x,
                                       int64_t ldx, const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n,
                                       float* y, int64_t ldy) {
  switch (n_tok) {
    case 1: return f32_direct_rows<FAcc, 1>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    case 2: return f32_direct_rows<FAcc, 2>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    case 3: return f32_direct_rows<FAcc, 3>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    case 4: return f32_direct_rows<FAcc, 4>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    case 5: return f32_direct_rows<FAcc, 5>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    case 6: return f32_direct_rows<FAcc, 6>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    case 7: return f32_direct_rows<FAcc, 7>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    case 8: return f32_direct_rows<FAcc, 8>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
    default: return;
  }
}

template <typename FAcc>
static inline void f32_decode_row(GgmlType type, const uint8_t* row, int64_t n, F32Row dst) {
  const bool is_signed = f32_codes_signed(type);
  const size_t block_bytes = ggml_type_info(type).type_size;
  alignas(32) float dsc16[16], mneg16[16] = {};
  for (int64_t g = 0; 256 * g < n; ++g) {
    const int values = visit_f32_group(type, row, g, n, [&](int c, __m256i codes) __attribute__((always_inline)) {
      FAcc::store(FAcc::from_codes(codes, is_signed), dst.code + 256 * g + 32 * c);
    }, dsc16, mneg16, block_bytes);
    std::copy(dsc16, dsc16 + values / 16, dst.dsc16 + 16 * g);  // a short last group has fewer
    std::copy(mneg16, mneg16 + values / 16, dst.mneg16 + 16 * g);
  }
}

// RT decoded rows x NT tokens: each chunk of codes is loaded once for the NT tokens, each activation once
// for the RT rows.
template <typename FAcc, int RT, int NT>
static inline void f32_decoded_tile(GgmlType type, const F32Row* rows, const float* x, int64_t ldx, const float* xsum,
                                    int64_t xsum_stride, int64_t n, float* y, int64_t ldy) {
  const int sub = f32_sub_size(type);
  const bool mins = f32_has_min(type);
  typename FAcc::Pair pairs[RT][NT];
  for (auto& row : pairs) for (auto& p : row) FAcc::init(p);
  for (int64_t g = 0; 256 * g < n; ++g) {
    const int64_t chunks = std::min<int64_t>(256, n - 256 * g) / 32;
    const float* xs[NT];
    for (int64_t c = 0; c < chunks; ++c) {
      for (int t = 0; t < NT; ++t) xs[t] = x + t * ldx + 256 * g + 32 * c;
      for (int r = 0; r < RT; ++r) {
        FAcc::template add<NT>(FAcc::load(rows[r].code + 256 * g + 32 * c), sub, rows[r].dsc16 + 16 * g + 2 * c, xs, pairs[r]);
      }
    }
    if (mins) {
      const float* ss[NT];
      for (int t = 0; t < NT; ++t) ss[t] = xsum + t * xsum_stride + 16 * g;
      for (int r = 0; r < RT; ++r) {
        alignas(32) float mneg16[16] = {};  // a short last group stores fewer than 16
        std::copy(rows[r].mneg16 + 16 * g, rows[r].mneg16 + 16 * g + 2 * chunks, mneg16);
        FAcc::template add_min<NT>(mneg16, ss, pairs[r]);
      }
    }
  }
  for (int r = 0; r < RT; ++r) {
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = FAcc::result(pairs[r][t]);
  }
}

// Tokens outer, rows inner: a group of tokens' activations stays in L1 while the decoded rows (in L2) pass.
template <typename FAcc>
static inline void f32_dot_decoded_loop(GgmlType type, F32Row rows, int64_t row_stride, int n_rows, const float* x,
                                        int64_t ldx, const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n,
                                        float* y, int64_t ldy) {
  constexpr int RT = FAcc::kTileRows, NT = FAcc::kTileTokens;
  auto row_at = [&](int r) {
    return F32Row{rows.code + r * row_stride, rows.dsc16 + r * row_stride / 16, rows.mneg16 + r * row_stride / 16};
  };
  for (int64_t t0 = 0; t0 < n_tok; t0 += NT) {
    const int nt = static_cast<int>(std::min<int64_t>(NT, n_tok - t0));
    const float* xt = x + t0 * ldx;
    const float* st = xsum + t0 * xsum_stride;
    for (int r0 = 0; r0 < n_rows; r0 += RT) {
      F32Row tile[RT];
      const int nr = std::min(RT, n_rows - r0);
      for (int r = 0; r < RT; ++r) tile[r] = row_at(r0 + std::min(r, nr - 1));
      if (nt == NT && nr == RT) {
        f32_decoded_tile<FAcc, RT, NT>(type, tile, xt, ldx, st, xsum_stride, n, y + t0 * ldy + r0, ldy);
        continue;
      }
      for (int r = 0; r < nr; ++r) {
        float* yr = y + t0 * ldy + r0 + r;
        switch (nt) {
          case 4: f32_decoded_tile<FAcc, 1, 4>(type, &tile[r], xt, ldx, st, xsum_stride, n, yr, ldy); break;
          case 3: f32_decoded_tile<FAcc, 1, 3>(type, &tile[r], xt, ldx, st, xsum_stride, n, yr, ldy); break;
          case 2: f32_decoded_tile<FAcc, 1, 2>(type, &tile[r], xt, ldx, st, xsum_stride, n, yr, ldy); break;
          default: f32_decoded_tile<FAcc, 1, 1>(type, &tile[r], xt, ldx, st, xsum_stride, n, yr, ldy); break;
        }
      }
    }
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
  return type == GgmlType::F16 ? _cvtsh_ss(h) : bf16_to_fp32(h);
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
