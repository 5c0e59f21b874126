// AVX2-level building blocks of the qmatmul kernels (activation quantization, weight decoders), and the
// loops shared by the AVX2 and AVX512 kernels, which differ only in their accumulators (the `IAcc` and
// `FAcc` policies). Included by those two translation units only; each compiles it with its own flags.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

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

// Integer activations (qmatmul.h) with the scalar reference's arithmetic: XMAX / amax, x * id rounded to
// nearest even, the digits (int8: X itself in digit[0], in lane order in digit[1]), dx * (exact sum of 16).
template <int kDigits>
static inline void int_quantize_digits(const float* x, int64_t n, IntGroup* dst) {
  static_assert(kDigits == 1 || kDigits == 3);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i c128 = _mm256_set1_epi32(128), c255 = _mm256_set1_epi32(255);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  const auto xmax = static_cast<float>(kDigits == 1 ? kInt8Max : kInt22Max);
  for (int64_t g = 0; g * 256 < n; ++g) {
    IntGroup& out = dst[g];
    const float* v = x + g * 256;
    const int m = static_cast<int>(std::min<int64_t>(256, n - g * 256));  // a multiple of 32
    __m256 mx = _mm256_setzero_ps();
    for (int i = 0; i < m; i += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(v + i)));
    const float amax = hmax256(mx);
    std::memset(&out, 0, sizeof out);
    if (amax == 0.0f) continue;
    const __m256 id = _mm256_set1_ps(xmax / amax);
    out.dx = amax / xmax;
    for (int i = 0; i < m; i += 32) {
      __m256i digit[kDigits][4];
      __m256i sum16 = _mm256_setzero_si256();
      for (int j = 0; j < 4; ++j) {
        const __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(v + i + 8 * j), id));
        sum16 = _mm256_add_epi32(sum16, q);
        if (j % 2 == 1) {
          out.xsum[(i + 8 * j) / 16] = out.dx * static_cast<float>(hsum256_epi32(sum16));
          sum16 = _mm256_setzero_si256();
        }
        if constexpr (kDigits == 1) {
          digit[0][j] = q;
        } else {
          const __m256i a0 = _mm256_sub_epi32(_mm256_and_si256(_mm256_add_epi32(q, c128), c255), c128);
          const __m256i x1 = _mm256_srai_epi32(_mm256_sub_epi32(q, a0), 8);
          const __m256i a1 = _mm256_sub_epi32(_mm256_and_si256(_mm256_add_epi32(x1, c128), c255), c128);
          digit[0][j] = a0;
          digit[1][j] = a1;
          digit[2][j] = _mm256_srai_epi32(_mm256_sub_epi32(x1, a1), 8);
        }
      }
      for (int k = 0; k < kDigits; ++k) {
        // packs works per 128-bit lane: the bytes come out in the order 0 4 1 5 2 6 3 7 (groups of four).
        const __m256i w01 = _mm256_packs_epi32(digit[k][0], digit[k][1]), w23 = _mm256_packs_epi32(digit[k][2], digit[k][3]);
        const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w01, w23), order);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.digit[k] + i), bytes);
      }
    }
    if constexpr (kDigits == 1) {  // the lane order (qmatmul_internal.h): 4 values at a time
      for (int l = 0; l < 16; ++l) {
        for (int q = 0; q < 4; ++q) std::memcpy(out.digit[1] + 64 * q + 4 * l, out.digit[0] + 16 * l + 4 * q, 4);
      }
    }
  }
}

static inline void int_quantize(int digits, const float* x, int64_t n, IntGroup* dst) {
  if (digits == 1) return int_quantize_digits<1>(x, n, dst);
  int_quantize_digits<3>(x, n, dst);
}

// fn(std::integral_constant<int, D>{}) with D = digits (1 or 3), for the integer-mode products.
template <typename Fn>
static TANDEM_INLINE void with_digits(int digits, Fn&& fn) {
  if (digits == 1) return fn(std::integral_constant<int, 1>{});
  return fn(std::integral_constant<int, 3>{});
}

static TANDEM_INLINE __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// The 8 (scale, min) pairs of a Q4_K / Q5_K block (unpack_k4_scales): bytes 0..7 the scales, 8..15 the mins.
static TANDEM_INLINE __m128i k4_scales(const uint8_t* s) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));  // 12 bytes used (within the block)
  const __m128i lo = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  // pairs 0..3: low 6 bits of bytes 0..3 / 4..7; pairs 4..7: a nibble of bytes 8..11 ...
  const __m128i low = _mm_and_si128(_mm_blend_epi32(lo, _mm_srli_epi16(lo, 4), 8),
                                    _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
  // ... and, as bits 4..5, the top 2 bits of bytes 0..3 / 4..7.
  const __m128i top = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  return _mm_or_si128(low, _mm_and_si128(_mm_srli_epi16(top, 2), _mm_set1_epi8(0x30)));
}

// The 8 sub-block scales d * scale[s] and min coefficients (-dmin) * min[s] of a Q4_K / Q5_K block, as the
// generic decoder computes them (visit_group; mneg16 holds each twice).
struct K4BlockScales {
  __m256 scales, mneg;
};
static TANDEM_INLINE K4BlockScales k4_block_scales(const uint8_t* blk) {
  const __m128i bytes = k4_scales(blk + 4);
  return {_mm256_mul_ps(_mm256_set1_ps(half(blk)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes))),
          _mm256_mul_ps(_mm256_set1_ps(-half(blk + 2)), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))))};
}

// fn(std::integral_constant<int, NT>{}) with NT = n_tok, for the direct kernels' 1 .. kDirectTokens tokens.
template <typename Fn>
static TANDEM_INLINE void with_token_count(int64_t n_tok, Fn&& fn) {
  static_assert(kDirectTokens == 8);
  switch (n_tok) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    case 5: return fn(std::integral_constant<int, 5>{});
    case 6: return fn(std::integral_constant<int, 6>{});
    case 7: return fn(std::integral_constant<int, 7>{});
    case 8: return fn(std::integral_constant<int, 8>{});
    default: return;
  }
}

// --- decoders shared by both modes -----------------------------------------------------------------------
// visit_group<kUnsigned>(type, row, g, n, sink, dsc16, mneg16) fills the group's per-16 scales and
// min/offset coefficients (as the scalar reference computes them) and calls sink(c, codes) for each
// 32-value chunk c of group g: codes are 32 bytes in natural order. With kUnsigned (int22 mode) every
// type's codes are unsigned and centring offsets go into mneg16; otherwise (f32 mode) codes are signed
// (centred) or unsigned as f32_codes_signed(type) says and mneg16 holds only real mins. Returns the number
// of values in the group.
static inline bool f32_codes_signed(GgmlType t) {
  return !(t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q2_K || t == GgmlType::Q4_1 || t == GgmlType::Q5_1);
}

// out[2k] = out[2k + 1] = scale * (float)v[k] for the 8 unsigned bytes of v (one per 32-value sub-block).
static TANDEM_INLINE void scaled_pairs8(__m128i v, float scale, float* out) {
  const __m128i pairs = _mm_unpacklo_epi8(v, v);
  const __m256 s = _mm256_set1_ps(scale);
  _mm256_storeu_ps(out, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(pairs))));
  _mm256_storeu_ps(out + 8, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(pairs, 8)))));
}
// out[k] = scale * (float)v[k] for 16 signed bytes.
static TANDEM_INLINE void scaled16_i8(const int8_t* v, float scale, float* out) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v));
  const __m256 s = _mm256_set1_ps(scale);
  _mm256_storeu_ps(out, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b))));
  _mm256_storeu_ps(out + 8, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b, 8)))));
}
// out[k] = in[k] * factor for 16 floats (a power of two: exact).
static TANDEM_INLINE void times16(const float* in, float factor, float* out) {
  const __m256 f = _mm256_set1_ps(factor);
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_loadu_ps(in), f));
  _mm256_storeu_ps(out + 8, _mm256_mul_ps(_mm256_loadu_ps(in + 8), f));
}

template <bool kUnsigned, typename Sink>
static TANDEM_INLINE int visit_group(GgmlType type, const uint8_t* row, int64_t g, int64_t n, Sink&& sink, float* dsc16,
                                     float* mneg16, size_t block_bytes) {
  const uint8_t* blk = row + static_cast<size_t>(g) * block_bytes;
  switch (type) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool five = type == GgmlType::Q5_K;
      const __m128i scales = k4_scales(blk + 4);
      scaled_pairs8(scales, half(blk), dsc16);
      scaled_pairs8(_mm_srli_si128(scales, 8), -half(blk + 2), mneg16);  // (-dmin) * min == -(dmin * min), exactly
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
        sink(2 * j, lo);
        sink(2 * j + 1, hi);
      }
      return 256;
    }
    case GgmlType::Q6_K: {
      const auto& b = *reinterpret_cast<const BlockQ6_K*>(blk);
      scaled16_i8(b.scales, half(reinterpret_cast<const uint8_t*>(&b.d)), dsc16);
      if (kUnsigned) times16(dsc16, -32.0f, mneg16);
      const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
      const __m256i off = _mm256_set1_epi8(kUnsigned ? 0 : 32);
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
      if (kUnsigned) times16(dsc16, -4.0f, mneg16);
      const __m256i hm = load32(b.hmask);
      const __m256i one = _mm256_set1_epi8(1), three = _mm256_set1_epi8(3), off = _mm256_set1_epi8(kUnsigned ? 0 : 4);
      for (int h = 0; h < 2; ++h) {
        const __m256i v = load32(b.qs + 32 * h);
        for (int k = 0; k < 4; ++k) {
          const __m256i lo = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), three);
          const __m256i hi = _mm256_and_si256(_mm256_srl_epi16(hm, _mm_cvtsi32_si128(4 * h + k)), one);
          sink(4 * h + k, _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 2)), off));
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
      // Legacy blocks of 32: the group is 8 of them (fewer at the end of a row). Their d (and m) are
      // gathered and converted at once, and the scales stored as whole vectors (so that the kernels' vector
      // loads of them are forwarded from the stores).
      const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
      const uint8_t* first = row + static_cast<size_t>(g) * 8 * block_bytes;
      const bool one = type == GgmlType::Q4_1 || type == GgmlType::Q5_1;
      const bool five = type == GgmlType::Q5_0 || type == GgmlType::Q5_1;
      const int offset = type == GgmlType::Q8_0 ? 128 : one ? 0 : five ? 16 : 8;
      // The first 4 bytes of each block (d, and m for Q4_1 / Q5_1), zero for blocks past the row's end.
      // (One gather: a vector load of scalar stores would stall on store forwarding.)
      const __m256i lanes8 = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i present = _mm256_cmpgt_epi32(_mm256_set1_epi32(blocks), lanes8);
      const __m256i heads = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), reinterpret_cast<const int*>(first),
                                                        _mm256_mullo_epi32(lanes8, _mm256_set1_epi32(static_cast<int>(block_bytes))),
                                                        present, 1);
      // bytes 0-1 of each head are d, 2-3 are m (Q4_1 / Q5_1): [d0..3 m0..3 | d4..7 m4..7] -> [d0..7 m0..7]
      const __m256i halves = _mm256_permute4x64_epi64(
          _mm256_shuffle_epi8(heads, _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9,
                                                      12, 13, 2, 3, 6, 7, 10, 11, 14, 15)),
          0xD8);
      const __m256 d8 = _mm256_cvtph_ps(_mm256_castsi256_si128(halves));
      const __m256 m8 = one ? _mm256_cvtph_ps(_mm256_extracti128_si256(halves, 1))
                            : kUnsigned ? _mm256_mul_ps(d8, _mm256_set1_ps(-static_cast<float>(offset))) : _mm256_setzero_ps();
      auto store_pairs = [](__m256 v, float* out) __attribute__((always_inline)) {  // out[2j] = out[2j + 1] = v[j]
        const __m256 lo = _mm256_unpacklo_ps(v, v), hi = _mm256_unpackhi_ps(v, v);
        _mm256_storeu_ps(out, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(out + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
      };
      store_pairs(d8, dsc16);
      store_pairs(m8, mneg16);
      const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3,
                                              3, 3, 3, 3, 3, 3);
      const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
      const __m128i m4 = _mm_set1_epi8(0x0F);
      auto block = [&](int j) __attribute__((always_inline)) {
        const uint8_t* b = first + static_cast<size_t>(j) * block_bytes;
        if (type == GgmlType::Q8_0) {
          const __m256i q = load32(b + 2);
          sink(j, kUnsigned ? _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80))) : q);  // q + 128
          return;
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
        if (!one && !kUnsigned) codes = _mm256_sub_epi8(codes, _mm256_set1_epi8(static_cast<char>(offset)));
        sink(j, codes);
      };
      if (blocks == 8) {
        for (int j = 0; j < 8; ++j) block(j);  // unrolled: the sinks see constant chunk numbers
      } else {
        for (int j = 0; j < blocks; ++j) block(j);
      }
      return 32 * blocks;
    }
  }
}

// A row decoded to unsigned byte codes (int22 mode); a short last group is zero-padded to 256 values.
static inline void u8_decode_row(GgmlType type, const uint8_t* row, int64_t n, U8Row dst) {
  const size_t block_bytes = ggml_type_info(type).type_size;
  for (int64_t g = 0; 256 * g < n; ++g) {
    uint8_t* code = dst.code + 256 * g;
    const int values = visit_group<true>(type, row, g, n, [&](int c, __m256i codes) __attribute__((always_inline)) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(code + 32 * c), codes);
    }, dst.dsc16 + 16 * g, dst.mneg16 + 16 * g, block_bytes);
    if (values < 256) std::memset(code + values, 0, static_cast<size_t>(256 - values));
  }
}

// IAcc (per ISA) provides: kTileRows, kTileTokens; struct Lanes (16 float lanes); zero(Lanes&); add_min(const
// float* mneg16, const float* xsum, Lanes& accm); result(const Lanes& acc, const Lanes& accm). For int22:
// template <int NT> static void chunk(const uint8_t* code (64 codes), const float* dsc16 (the group's 16), int q,
// const IntGroup* const* x (the group, per token), Lanes* g (per token)): the 16 lane sums of chunk q with the
// scale fma; end_group(float dx, const Lanes& g, Lanes& acc). For int8 (qmatmul.h's per-16 sums): zero_codes(),
// load_lanes(const float*), int8_lane_order(Codes c[4]) (a group's 4 chunks of natural-order codes into the
// order its int8_products reads the activations in) and int8_products(const Codes c[4], const Lanes& dsc16,
// const IntGroup& x, Lanes& acc) (acc[k] = fma(dx, dsc16[k] * (float)T_k, acc[k])). D (1 or 3) picks the mode.
template <typename IAcc, int D, int RT, int NT>
static inline void int_tile(const U8Row* rows, const IntGroup* const* x, int64_t n, float* y, int64_t ldy) {
  typename IAcc::Lanes acc[RT][NT];
  for (auto& row : acc) for (auto& a : row) IAcc::zero(a);
  for (int64_t g = 0; 256 * g < n; ++g) {
    const int64_t chunks = (std::min<int64_t>(256, n - 256 * g) + 63) / 64;
    const IntGroup* xg[NT];
    for (int t = 0; t < NT; ++t) xg[t] = x[t] + g;
    if constexpr (D == 1) {  // decoded rows are zero-padded to whole groups, with zero scales past their end
      for (int r = 0; r < RT; ++r) {
        typename IAcc::Codes c[4];
        for (int q = 0; q < 4; ++q) c[q] = IAcc::load_codes(rows[r].code + 256 * g + 64 * q);
        IAcc::int8_lane_order(c);
        const typename IAcc::Lanes dsc16 = IAcc::load_lanes(rows[r].dsc16 + 16 * g);
        for (int t = 0; t < NT; ++t) IAcc::int8_products(c, dsc16, *xg[t], acc[r][t]);
      }
      continue;
    }
    typename IAcc::Lanes lanes[RT][NT];
    for (auto& row : lanes) for (auto& l : row) IAcc::zero(l);
    for (int64_t q = 0; q < chunks; ++q) {
      for (int r = 0; r < RT; ++r) {
        IAcc::template chunk<NT>(IAcc::load_codes(rows[r].code + 256 * g + 64 * q), IAcc::load_scales(rows[r].dsc16 + 16 * g),
                                 static_cast<int>(q), xg, lanes[r]);
      }
    }
    for (int r = 0; r < RT; ++r) {
      for (int t = 0; t < NT; ++t) IAcc::end_group(xg[t]->dx, lanes[r][t], acc[r][t]);
    }
  }
  for (int r = 0; r < RT; ++r) {
    for (int t = 0; t < NT; ++t) {
      typename IAcc::Lanes accm;
      IAcc::zero(accm);
      for (int64_t g = 0; 256 * g < n; ++g) IAcc::add_min(rows[r].mneg16 + 16 * g, x[t][g].xsum, accm);
      y[t * ldy + r] = IAcc::result(acc[r][t], accm);
    }
  }
}

// Tokens outer, rows inner: a group of tokens' activations stays in L1 while the decoded rows pass.
template <typename IAcc, int D>
static inline void int_dot_decoded_digits(U8Row rows, int64_t row_stride, int n_rows, const IntGroup* x, int64_t x_stride,
                                          int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  constexpr int RT = IAcc::kTileRows, NT = IAcc::kTileTokens;
  auto row_at = [&](int r) {
    return U8Row{rows.code + r * row_stride, rows.dsc16 + r * row_stride / 16, rows.mneg16 + r * row_stride / 16};
  };
  for (int64_t t0 = 0; t0 < n_tok; t0 += NT) {
    const int nt = static_cast<int>(std::min<int64_t>(NT, n_tok - t0));
    const IntGroup* xt[4];
    static_assert(NT <= 4);
    for (int t = 0; t < 4; ++t) xt[t] = x + (t0 + std::min(t, nt - 1)) * x_stride;
    for (int r0 = 0; r0 < n_rows; r0 += RT) {
      U8Row tile[RT];
      const int nr = std::min(RT, n_rows - r0);
      for (int r = 0; r < RT; ++r) tile[r] = row_at(r0 + std::min(r, nr - 1));
      float* yt = y + t0 * ldy + r0;
      if (nt == NT && nr == RT) {
        int_tile<IAcc, D, RT, NT>(tile, xt, n, yt, ldy);
        continue;
      }
      for (int r = 0; r < nr; ++r) {
        switch (nt) {
          case 4: int_tile<IAcc, D, 1, 4>(&tile[r], xt, n, yt + r, ldy); break;
          case 3: int_tile<IAcc, D, 1, 3>(&tile[r], xt, n, yt + r, ldy); break;
          case 2: int_tile<IAcc, D, 1, 2>(&tile[r], xt, n, yt + r, ldy); break;
          default: int_tile<IAcc, D, 1, 1>(&tile[r], xt, n, yt + r, ldy); break;
        }
      }
    }
  }
}

template <typename IAcc>
static inline void int_dot_decoded_loop(int digits, U8Row rows, int64_t row_stride, int n_rows, const IntGroup* x,
                                        int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  with_digits(digits, [&](auto d) { int_dot_decoded_digits<IAcc, d>(rows, row_stride, n_rows, x, x_stride, n_tok, n, y, ldy); });
}

// Few tokens: each group of a quantized row decoded into L1 and used at once for every token.
// Rows are requested this far ahead of their use: few tokens do little work per byte, and the hardware
// prefetchers, which stop at page boundaries and restart slowly, leave the loads of the next blocks
// waiting on memory (most of a decode step's time otherwise). Four rows, not two: where several tokens share
// the rows (int8, a decode step of users routed to the same experts) a row's products take about as long as
// its reads, and with two rows in flight the reads and the products took turns instead of overlapping (H200
// box, int8, hybrid decode at concurrency 4 with one prompt: +10-17%, concurrency 1: +6-9%; 8 rows no better).
inline constexpr int kPrefetchRows = 4;
static TANDEM_INLINE void prefetch_row(const uint8_t* p, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 64) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
}

// Few tokens: each group of a quantized row decoded in registers and used at once for every token.
template <typename IAcc, int D, int NT>
static inline void int_direct_rows(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const IntGroup* x,
                                   int64_t x_stride, int64_t n, float* y, int64_t ldy) {
  const size_t block_bytes = ggml_type_info(type).type_size;
  alignas(64) float dsc16[16] = {}, mneg16[16] = {};
  const size_t row_bytes = ggml_row_size(type, n);
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * w_stride;
    if (r + kPrefetchRows < n_rows) prefetch_row(row + kPrefetchRows * w_stride, row_bytes);
    typename IAcc::Lanes acc[NT], accm[NT];
    for (int t = 0; t < NT; ++t) {
      IAcc::zero(acc[t]);
      IAcc::zero(accm[t]);
    }
    for (int64_t g = 0; 256 * g < n; ++g) {
      const IntGroup* xg[NT];
      for (int t = 0; t < NT; ++t) xg[t] = x + t * x_stride + g;
      // The decoder sets the scales before the codes that use them (legacy blocks: just before).
      __m256i pending = _mm256_setzero_si256();
      if constexpr (D == 1) {
        typename IAcc::Codes c[4] = {IAcc::zero_codes(), IAcc::zero_codes(), IAcc::zero_codes(), IAcc::zero_codes()};
        const int values = visit_group<true>(type, row, g, n, [&](int cc, __m256i codes) __attribute__((always_inline)) {
          if (cc % 2 == 0) {
            pending = codes;
          } else {
            c[cc / 2] = IAcc::join(pending, codes);
          }
        }, dsc16, mneg16, block_bytes);
        if (values % 64 != 0) c[values / 64] = IAcc::join(pending, _mm256_setzero_si256());
        IAcc::int8_lane_order(c);
        // Past a short group's end the scales are zero (legacy) or the previous group's: finite, times zero codes.
        const typename IAcc::Lanes scale16 = IAcc::load_lanes(dsc16);
        for (int t = 0; t < NT; ++t) {
          IAcc::int8_products(c, scale16, *xg[t], acc[t]);
          IAcc::add_min(mneg16, xg[t]->xsum, accm[t]);
        }
        continue;
      }
      typename IAcc::Lanes lanes[NT];
      for (auto& l : lanes) IAcc::zero(l);
      const int values = visit_group<true>(type, row, g, n, [&](int c, __m256i codes) __attribute__((always_inline)) {
        if (c % 2 == 0) {
          pending = codes;
          return;
        }
        IAcc::template chunk<NT>(IAcc::join(pending, codes), IAcc::load_scales(dsc16), c / 2, xg, lanes);
      }, dsc16, mneg16, block_bytes);
      if (values % 64 != 0) {  // a short legacy group ending in half a chunk: zero codes after it
        IAcc::template chunk<NT>(IAcc::join(pending, _mm256_setzero_si256()), IAcc::load_scales(dsc16), values / 64, xg, lanes);
      }
      for (int t = 0; t < NT; ++t) {
        IAcc::end_group(xg[t]->dx, lanes[t], acc[t]);
        IAcc::add_min(mneg16, xg[t]->xsum, accm[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = IAcc::result(acc[t], accm[t]);
  }
}

template <typename IAcc>
static inline void int_dot_direct_loop(int digits, GgmlType type, const uint8_t* w, size_t w_stride, int n_rows,
                                       const IntGroup* x, int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  with_digits(digits, [&](auto d) {
    with_token_count(n_tok, [&](auto nt) { int_direct_rows<IAcc, d, nt>(type, w, w_stride, n_rows, x, x_stride, n, y, ldy); });
  });
}

// Few-token products with a decoder per weight type (qmatmul_avx2.cpp, qmatmul_avx512.cpp): the generic loop
// above decodes every type through one visitor that stores the per-16 scales and reloads them per 64 codes; at
// one token that decode, not the three digit products, is most of the instructions. A Decoder keeps a group's
// scales in registers and makes each 64-code chunk from one or two loads; the products, group ends and results
// are its Acc's own (the generic loop's operations in its order): the same bits. A Decoder provides Acc,
// kBlockBytes and kBlockValues (one weight block) and
//   Acc::GroupScales group(const uint8_t* row, int64_t g, int64_t n, Emit emit) const
// which calls emit(q, codes, scale) for each chunk q of group g that has values (Acc::Codes: its 64 unsigned
// codes; Acc::Lanes: lane l's dsc16[4 q + l / 4]) and returns the group's dsc16 and mneg16 (as Lanes). For int8
// a Decoder may also provide group_lanes(row, g, n, Codes c[4]), which makes the chunks in Acc's lane order. A decoder is made once per
// call: its members are the index and shift vectors, kept out of the group loop.
template <typename Decoder, int D, int NT>
static inline void int_decoder_rows(const uint8_t* w, size_t w_stride, int n_rows, const IntGroup* x, int64_t x_stride,
                                    int64_t n, float* y, int64_t ldy) {
  using Acc = typename Decoder::Acc;
  using Lanes = typename Acc::Lanes;
  const size_t row_bytes = static_cast<size_t>(n / Decoder::kBlockValues) * Decoder::kBlockBytes;
  const Decoder decoder;
  for (int r = 0; r < n_rows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * w_stride;
    if (r + kPrefetchRows < n_rows) prefetch_row(row + kPrefetchRows * w_stride, row_bytes);
    Lanes acc[NT], accm[NT];
    for (int t = 0; t < NT; ++t) {
      Acc::zero(acc[t]);
      Acc::zero(accm[t]);
    }
    for (int64_t g = 0; 256 * g < n; ++g) {
      if constexpr (D == 1) {  // the group's codes in registers, put in lane order once for every token
        typename Acc::Codes c[4] = {Acc::zero_codes(), Acc::zero_codes(), Acc::zero_codes(), Acc::zero_codes()};
        typename Acc::GroupScales scales;
        if constexpr (requires { decoder.group_lanes(row, g, n, c); }) {  // a decoder that makes the lane order itself
          scales = decoder.group_lanes(row, g, n, c);
        } else {
          scales = decoder.group(row, g, n,
              [&](int q, const typename Acc::Codes& u, const Lanes&) __attribute__((always_inline)) { c[q] = u; });
          Acc::int8_lane_order(c);
        }
        for (int t = 0; t < NT; ++t) {
          const IntGroup& xg = x[t * x_stride + g];
          Acc::int8_products(c, scales.dsc16, xg, acc[t]);
          Acc::add_min(scales.mneg16, xg.xsum, accm[t]);
        }
        continue;
      }
      Lanes lanes[NT];
      for (auto& l : lanes) Acc::zero(l);
      const typename Acc::GroupScales scales = decoder.group(row, g, n,
                                                      [&](int q, const typename Acc::Codes& u, const Lanes& scale) __attribute__((always_inline)) {
        for (int t = 0; t < NT; ++t) Acc::scaled_products(u, scale, &x[t * x_stride + g].digit[0][64 * q], lanes[t]);
      });
      for (int t = 0; t < NT; ++t) {
        const IntGroup& xg = x[t * x_stride + g];
        Acc::end_group(xg.dx, lanes[t], acc[t]);
        Acc::add_min(scales.mneg16, xg.xsum, accm[t]);
      }
    }
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = Acc::result(acc[t], accm[t]);
  }
}

template <typename Decoder>
static inline void int_decoder_direct(int digits, const uint8_t* w, size_t w_stride, int n_rows, const IntGroup* x,
                                      int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  with_digits(digits, [&](auto d) {
    with_token_count(n_tok, [&](auto nt) { int_decoder_rows<Decoder, d, nt>(w, w_stride, n_rows, x, x_stride, n, y, ldy); });
  });
}

// --- float-activation mode -------------------------------------------------------------------------------
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
      visit_group<false>(type, row, g, n, [&](int c, __m256i codes) __attribute__((always_inline)) {
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
  with_token_count(n_tok, [&](auto nt) {
    f32_direct_rows<FAcc, nt>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n, y, ldy);
  });
}

template <typename FAcc>
static inline void f32_decode_row(GgmlType type, const uint8_t* row, int64_t n, F32Row dst) {
  const bool is_signed = f32_codes_signed(type);
  const size_t block_bytes = ggml_type_info(type).type_size;
  alignas(32) float dsc16[16], mneg16[16] = {};
  for (int64_t g = 0; 256 * g < n; ++g) {
    const int values = visit_group<false>(type, row, g, n, [&](int c, __m256i codes) __attribute__((always_inline)) {
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
