// qmatmul kernels with AVX2 + FMA (built with -mavx2 -mfma -mf16c; called only after a CPU check).
// Lanes 0..7 and 8..15 of a pair are two 8-lane vectors.
#include "kernels/cpu/qmatmul_simd.h"

namespace tandem::cpu::avx2 {

namespace {

// int22: lanes 0..7 and 8..15 of a chunk are two vectors (values 0..31 and 32..63); each digit product is
// maddubs (pairs of byte products, exact in int16 for codes below 128) then madd with ones (sums of 4).
// Q8_0's offset codes reach 255, so their products are split into the high and low nibble of the code.
struct Lanes {
  __m256 v[2];
};
struct Codes {
  __m256i v[2];  // values 0..31 and 32..63
};
struct GroupScales {  // what a Decoder's group() returns
  Lanes dsc16, mneg16;
};

template <bool kWide>
struct IAcc {
  static constexpr int kTileRows = 1, kTileTokens = 2;
  using Lanes = avx2::Lanes;
  using GroupScales = avx2::GroupScales;
  static TANDEM_INLINE void zero(Lanes& l) { l.v[0] = l.v[1] = _mm256_setzero_ps(); }
  static TANDEM_INLINE __m256i dot4(__m256i u, __m256i d) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, d), _mm256_set1_epi16(1));
  }
  static TANDEM_INLINE __m256i dot(__m256i u, __m256i d) {
    if (!kWide) return dot4(u, d);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    return _mm256_add_epi32(_mm256_slli_epi32(dot4(_mm256_and_si256(_mm256_srli_epi16(u, 4), m4), d), 4),
                            dot4(_mm256_and_si256(u, m4), d));
  }
  using Codes = avx2::Codes;
  static TANDEM_INLINE Codes load_codes(const uint8_t* p) {
    return {{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))}};
  }
  static TANDEM_INLINE Codes join(__m256i lo, __m256i hi) { return {{lo, hi}}; }
  using Scales = const float*;  // the group's dsc16
  static TANDEM_INLINE Scales load_scales(const float* dsc16) { return dsc16; }
  template <int NT>
  static TANDEM_INLINE void chunk(const Codes& codes, Scales dsc16, int q, const IntGroup* const* x, Lanes* g) {
    // lane l takes the scale of values 64 q + 4 l: dsc16[4 q + l / 4]
    const __m256 four = _mm256_castps128_ps256(_mm_loadu_ps(dsc16 + 4 * q));
    const Lanes scale{{_mm256_permutevar8x32_ps(four, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)),
                       _mm256_permutevar8x32_ps(four, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3))}};
    for (int t = 0; t < NT; ++t) scaled_products(codes, scale, &x[t]->digit[0][64 * q], g[t]);
  }
  // Both halves of a chunk: codes 32 h .. 32 h + 31 against the digits at d + 32 h, into lanes 8 h .. 8 h + 7.
  static TANDEM_INLINE void scaled_products(const Codes& u, const Lanes& scale, const int8_t* d, Lanes& g) {
    for (int h = 0; h < 2; ++h) scaled_products(u.v[h], scale.v[h], d + 32 * h, g.v[h]);
  }
  // g = fma(scale, (float)T, g) for the 8 exact lane sums T of 32 codes u times one token's int22 values, whose
  // three digits are at d, d + 256 and d + 512.
  static TANDEM_INLINE void scaled_products(__m256i u, __m256 scale, const int8_t* d, __m256& g) {
    auto ld = [](const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
    __m256i lanes = _mm256_slli_epi32(dot(u, ld(d + 512)), 8);
    lanes = _mm256_slli_epi32(_mm256_add_epi32(lanes, dot(u, ld(d + 256))), 8);
    lanes = _mm256_add_epi32(lanes, dot(u, ld(d)));
    g = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(lanes), g);
  }
  // int8: natural-order codes; the 4-value sums of each half chunk are added pairwise twice (hadd), which
  // leaves the 16-value sums of chunks 0, 1 (and 2, 3) in the order 0 2 4 6 1 3 5 7.
  static TANDEM_INLINE Codes zero_codes() { return {{_mm256_setzero_si256(), _mm256_setzero_si256()}}; }
  static TANDEM_INLINE Lanes load_lanes(const float* p) { return {{_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}}; }
  static TANDEM_INLINE void int8_lane_order(Codes*) {}
  static TANDEM_INLINE void int8_products(const Codes c[4], const Lanes& dsc16, const IntGroup& x, Lanes& acc) {
    auto ld = [](const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
    const int8_t* d = x.digit[0];
    __m256i eighths[4];  // chunk q: [4q: 2 sums of 8, 4q + 2: 2 | 4q + 1: 2, 4q + 3: 2]
    for (int q = 0; q < 4; ++q) eighths[q] = _mm256_hadd_epi32(dot(c[q].v[0], ld(d + 64 * q)), dot(c[q].v[1], ld(d + 64 * q + 32)));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256 dx = _mm256_set1_ps(x.dx);
    for (int h = 0; h < 2; ++h) {
      const __m256i sums = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(eighths[2 * h], eighths[2 * h + 1]), order);
      acc.v[h] = _mm256_fmadd_ps(dx, _mm256_mul_ps(dsc16.v[h], _mm256_cvtepi32_ps(sums)), acc.v[h]);
    }
  }
  static TANDEM_INLINE void end_group(float dx, const Lanes& g, Lanes& acc) {
    const __m256 d = _mm256_set1_ps(dx);
    acc.v[0] = _mm256_fmadd_ps(d, g.v[0], acc.v[0]);
    acc.v[1] = _mm256_fmadd_ps(d, g.v[1], acc.v[1]);
  }
  static TANDEM_INLINE void add_min(const Lanes& mneg16, const float* xsum, Lanes& accm) {
    accm.v[0] = _mm256_fmadd_ps(mneg16.v[0], _mm256_loadu_ps(xsum), accm.v[0]);
    accm.v[1] = _mm256_fmadd_ps(mneg16.v[1], _mm256_loadu_ps(xsum + 8), accm.v[1]);
  }
  static TANDEM_INLINE void add_min(const float* mneg16, const float* xsum, Lanes& accm) {
    add_min(Lanes{{_mm256_loadu_ps(mneg16), _mm256_loadu_ps(mneg16 + 8)}}, xsum, accm);
  }
  static TANDEM_INLINE float result(const Lanes& acc, const Lanes& accm) {
    float a[16], m[16];
    _mm256_storeu_ps(a, acc.v[0]);
    _mm256_storeu_ps(a + 8, acc.v[1]);
    _mm256_storeu_ps(m, accm.v[0]);
    _mm256_storeu_ps(m + 8, accm.v[1]);
    return reduce16(a) + reduce16(m);
  }
};

struct FAcc {
  static constexpr int kTileRows = 1, kTileTokens = 4;  // decoded rows x tokens per register tile
  struct Chunk {
    __m256 v[4];  // values 0..7, 8..15, 16..23, 24..31 of the chunk
  };
  static TANDEM_INLINE __m256 cvt8(__m128i bytes, bool is_signed) {
    return _mm256_cvtepi32_ps(is_signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes));
  }
  static TANDEM_INLINE Chunk from_codes(__m256i codes, bool is_signed) {
    const __m128i lo = _mm256_castsi256_si128(codes), hi = _mm256_extracti128_si256(codes, 1);
    return {{cvt8(lo, is_signed), cvt8(_mm_srli_si128(lo, 8), is_signed), cvt8(hi, is_signed),
             cvt8(_mm_srli_si128(hi, 8), is_signed)}};
  }
  static TANDEM_INLINE Chunk load(const float* p) {
    return {{_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _mm256_loadu_ps(p + 16), _mm256_loadu_ps(p + 24)}};
  }
  static TANDEM_INLINE void store(const Chunk& c, float* p) {
    for (int i = 0; i < 4; ++i) _mm256_storeu_ps(p + 8 * i, c.v[i]);
  }
  struct Pair {
    __m256 acc[2], accm[2];  // lanes 0..7 and 8..15
  };
  static TANDEM_INLINE void init(Pair& p) { p.acc[0] = p.acc[1] = p.accm[0] = p.accm[1] = _mm256_setzero_ps(); }
  static TANDEM_INLINE float result(const Pair& p) {
    float a[16], m[16];
    _mm256_storeu_ps(a, p.acc[0]);
    _mm256_storeu_ps(a + 8, p.acc[1]);
    _mm256_storeu_ps(m, p.accm[0]);
    _mm256_storeu_ps(m + 8, p.accm[1]);
    return reduce16(a) + reduce16(m);
  }
  template <int NT>
  static TANDEM_INLINE void add(const Chunk& c, int sub, const float* dsc2, const float* const* x, Pair* pairs) {
    if (sub == 32) {
      const __m256 d = _mm256_set1_ps(dsc2[0]);
      for (int t = 0; t < NT; ++t) {
        const __m256 p0 = _mm256_fmadd_ps(c.v[2], _mm256_loadu_ps(x[t] + 16), _mm256_mul_ps(c.v[0], _mm256_loadu_ps(x[t])));
        const __m256 p1 = _mm256_fmadd_ps(c.v[3], _mm256_loadu_ps(x[t] + 24), _mm256_mul_ps(c.v[1], _mm256_loadu_ps(x[t] + 8)));
        pairs[t].acc[0] = _mm256_fmadd_ps(d, p0, pairs[t].acc[0]);
        pairs[t].acc[1] = _mm256_fmadd_ps(d, p1, pairs[t].acc[1]);
      }
      return;
    }
    const __m256 d0 = _mm256_set1_ps(dsc2[0]), d1 = _mm256_set1_ps(dsc2[1]);
    for (int t = 0; t < NT; ++t) {
      pairs[t].acc[0] = _mm256_fmadd_ps(d0, _mm256_mul_ps(c.v[0], _mm256_loadu_ps(x[t])), pairs[t].acc[0]);
      pairs[t].acc[1] = _mm256_fmadd_ps(d0, _mm256_mul_ps(c.v[1], _mm256_loadu_ps(x[t] + 8)), pairs[t].acc[1]);
      pairs[t].acc[0] = _mm256_fmadd_ps(d1, _mm256_mul_ps(c.v[2], _mm256_loadu_ps(x[t] + 16)), pairs[t].acc[0]);
      pairs[t].acc[1] = _mm256_fmadd_ps(d1, _mm256_mul_ps(c.v[3], _mm256_loadu_ps(x[t] + 24)), pairs[t].acc[1]);
    }
  }
  template <int NT>
  static TANDEM_INLINE void add_min(const float* mneg16, const float* const* xsum, Pair* pairs) {
    const __m256 m0 = _mm256_loadu_ps(mneg16), m1 = _mm256_loadu_ps(mneg16 + 8);
    for (int t = 0; t < NT; ++t) {
      pairs[t].accm[0] = _mm256_fmadd_ps(m0, _mm256_loadu_ps(xsum[t]), pairs[t].accm[0]);
      pairs[t].accm[1] = _mm256_fmadd_ps(m1, _mm256_loadu_ps(xsum[t] + 8), pairs[t].accm[1]);
    }
  }
};

void f32_decode(GgmlType type, const uint8_t* row, int64_t n, F32Row dst) { simd::f32_decode_row<FAcc>(type, row, n, dst); }
void f32_dot_decoded(GgmlType type, F32Row rows, int64_t row_stride, int n_rows, const float* x, int64_t ldx,
                     const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  simd::f32_dot_decoded_loop<FAcc>(type, rows, row_stride, n_rows, x, ldx, xsum, xsum_stride, n_tok, n, y, ldy);
}
void f32_dot_direct(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx,
                    const float* xsum, int64_t xsum_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  simd::f32_dot_direct_loop<FAcc>(type, w, w_stride, n_rows, x, ldx, xsum, xsum_stride, n_tok, n, y, ldy);
}

// Few-token decoders (simd::int_decoder_rows says what a Decoder provides): 64 codes and 16 lanes are two
// vectors each.

// Types with one scale and min per 32 values: the low half of chunk q takes the scale of sub-block 2 q, the high
// half that of 2 q + 1, and mneg16 is the 8 mins in pairs.
struct HalfChunkScales {
  __m256i low_pairs = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), high_pairs = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
  static TANDEM_INLINE Lanes of_chunk(int q, __m256 scales8) {
    return {{_mm256_permutevar8x32_ps(scales8, _mm256_set1_epi32(2 * q)), _mm256_permutevar8x32_ps(scales8, _mm256_set1_epi32(2 * q + 1))}};
  }
  // The 8 values of v8 each twice: the group's mneg16 from its 8 mins, its dsc16 from its 8 scales.
  TANDEM_INLINE Lanes in_pairs(__m256 v8) const {
    return {{_mm256_permutevar8x32_ps(v8, low_pairs), _mm256_permutevar8x32_ps(v8, high_pairs)}};
  }
};

// Q4_K: chunk q's low half is the low nibbles of qs[32 q .. 32 q + 31] (sub-block 2 q), its high half their high
// nibbles (sub-block 2 q + 1).
struct K4Decoder {
  using Acc = IAcc<false>;
  static constexpr size_t kBlockBytes = 144;
  static constexpr int64_t kBlockValues = 256;
  HalfChunkScales chunk_scales;
  __m256i nibble = _mm256_set1_epi8(0x0F);
  template <typename Emit>
  TANDEM_INLINE GroupScales group(const uint8_t* row, int64_t g, int64_t, Emit&& emit) const {
    const uint8_t* blk = row + static_cast<size_t>(g) * kBlockBytes;
    const simd::K4BlockScales block = simd::k4_block_scales(blk);
    for (int q = 0; q < 4; ++q) {
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16 + 32 * q));
      emit(q, Codes{{_mm256_and_si256(bytes, nibble), _mm256_and_si256(_mm256_srli_epi16(bytes, 4), nibble)}},
           chunk_scales.of_chunk(q, block.scales));
    }
    return {chunk_scales.in_pairs(block.scales), chunk_scales.in_pairs(block.mneg)};
  }
};

// Q6_K: chunk q holds the low nibbles of ql[64 h .. 64 h + 63] for q = 2 h, their high nibbles for q = 2 h + 1,
// each with two bits of qh[32 h .. 32 h + 31] as bits 4..5 (bits 0 / 2 of qh for the chunk's low / high half
// when q is even, 4 / 6 when it is odd); codes are q + 32, so mneg16 = -32 dsc16.
struct Q6KDecoder {
  using Acc = IAcc<false>;
  static constexpr size_t kBlockBytes = 210;
  static constexpr int64_t kBlockValues = 256;
  __m256i nibble = _mm256_set1_epi8(0x0F), two_bits = _mm256_set1_epi8(0x03);
  __m256i first = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), second = _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3);
  template <typename Emit>
  TANDEM_INLINE GroupScales group(const uint8_t* row, int64_t g, int64_t, Emit&& emit) const {
    const uint8_t* blk = row + static_cast<size_t>(g) * kBlockBytes;
    const __m256 d = _mm256_set1_ps(simd::half(blk + 208));
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192));
    const Lanes dsc16{{_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc))),
                       _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))))}};
    for (int h = 0; h < 2; ++h) {
      const __m256i ql[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h)),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32))};
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
      // Chunks 2 h and 2 h + 1 take dsc16[8 h .. 8 h + 3] and [8 h + 4 .. 8 h + 7], each value over 4 lanes.
      for (int odd = 0; odd < 2; ++odd) {
        Codes u;
        for (int half = 0; half < 2; ++half) {
          const __m256i low = _mm256_and_si256(odd ? _mm256_srli_epi16(ql[half], 4) : ql[half], nibble);
          const __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 4 * odd + 2 * half), two_bits);
          u.v[half] = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
        }
        const __m256i base = _mm256_set1_epi32(4 * odd);
        emit(2 * h + odd, u, Lanes{{_mm256_permutevar8x32_ps(dsc16.v[h], _mm256_add_epi32(base, first)),
                                    _mm256_permutevar8x32_ps(dsc16.v[h], _mm256_add_epi32(base, second))}});
      }
    }
    const __m256 minus32 = _mm256_set1_ps(-32.0f);
    return {dsc16, Lanes{{_mm256_mul_ps(dsc16.v[0], minus32), _mm256_mul_ps(dsc16.v[1], minus32)}}};
  }
};

// Legacy blocks of 32 (Q8_0: q + 128; Q5_0, Q4_0: the nibbles, Q5_0 with its fifth bits). A group is 8 blocks,
// fewer at a row's end: chunks past the last block are skipped, a chunk with one block has zero codes in its
// high half, absent blocks have d = 0 (as in the generic decoder). Chunk q holds blocks 2 q and 2 q + 1.
template <GgmlType kType>
struct LegacyDecoder {
  using Acc = IAcc<kType == GgmlType::Q8_0>;  // Q8_0's codes reach 255
  static constexpr size_t kBlockBytes = kType == GgmlType::Q8_0 ? 34 : kType == GgmlType::Q5_0 ? 22 : 18;
  static constexpr int64_t kBlockValues = 32;
  static constexpr float kOffset = kType == GgmlType::Q8_0 ? 128.0f : kType == GgmlType::Q5_0 ? 16.0f : 8.0f;
  HalfChunkScales chunk_scales;
  // Q5_0's fifth bits: byte i of a vector takes byte i / 8 of qh, then its bit i % 8.
  __m256i qh_bytes = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  __m256i qh_bits = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ull));
  TANDEM_INLINE __m256i codes(const uint8_t* b) const {
    if constexpr (kType == GgmlType::Q8_0) {
      return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), _mm256_set1_epi8(static_cast<char>(0x80)));
    } else {
      constexpr bool kFive = kType == GgmlType::Q5_0;
      const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + (kFive ? 6 : 2)));
      const __m128i m4 = _mm_set1_epi8(0x0F);
      __m256i c = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), _mm_and_si128(qs, m4));
      if constexpr (kFive) {
        // _mm256_shuffle_epi8 indexes within each 128-bit half: the high half's indices 2, 3 are relative to it,
        // so qh is broadcast to every 32-bit word and the halves pick bytes 0-1 and 2-3 of their own copy.
        const __m256i qh = _mm256_set1_epi32(static_cast<int32_t>(load_u32_le(b + 2)));
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(qh, qh_bytes), qh_bits), qh_bits);
        c = _mm256_or_si256(c, _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
      }
      return c;
    }
  }
  template <typename Emit>
  TANDEM_INLINE GroupScales group(const uint8_t* row, int64_t g, int64_t n, Emit&& emit) const {
    const uint8_t* first = row + static_cast<size_t>(g) * 8 * kBlockBytes;
    const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
    // The blocks' d (f16) gathered through two scalar words, zero past the row's end.
    uint64_t heads[2] = {0, 0};
    for (int j = 0; j < blocks; ++j) {
      uint16_t h;
      std::memcpy(&h, first + static_cast<size_t>(j) * kBlockBytes, 2);
      heads[j / 4] |= static_cast<uint64_t>(h) << (16 * (j % 4));
    }
    const __m256 d8 = _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(heads[1]), static_cast<int64_t>(heads[0])));
    for (int q = 0; 2 * q < blocks; ++q) {
      const uint8_t* b = first + static_cast<size_t>(2 * q) * kBlockBytes;
      emit(q, Codes{{codes(b), 2 * q + 1 < blocks ? codes(b + kBlockBytes) : _mm256_setzero_si256()}},
           chunk_scales.of_chunk(q, d8));
    }
    return {chunk_scales.in_pairs(d8), chunk_scales.in_pairs(_mm256_mul_ps(d8, _mm256_set1_ps(-kOffset)))};
  }
};

void int_dot_direct(int digits, GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const IntGroup* x,
                    int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  if (type == GgmlType::Q4_K) return simd::int_decoder_direct<K4Decoder>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  if (type == GgmlType::Q6_K) return simd::int_decoder_direct<Q6KDecoder>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  if (type == GgmlType::Q8_0) return simd::int_decoder_direct<LegacyDecoder<GgmlType::Q8_0>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  if (type == GgmlType::Q5_0) return simd::int_decoder_direct<LegacyDecoder<GgmlType::Q5_0>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  if (type == GgmlType::Q4_0) return simd::int_decoder_direct<LegacyDecoder<GgmlType::Q4_0>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  simd::int_dot_direct_loop<IAcc<false>>(digits, type, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
}
void u8_decode(GgmlType type, const uint8_t* row, int64_t n, U8Row dst) { simd::u8_decode_row(type, row, n, dst); }
void int_dot_decoded(int digits, GgmlType type, U8Row rows, int64_t row_stride, int n_rows, const IntGroup* x,
                     int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  if (type == GgmlType::Q8_0) {
    simd::int_dot_decoded_loop<IAcc<true>>(digits, rows, row_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  } else {
    simd::int_dot_decoded_loop<IAcc<false>>(digits, rows, row_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  }
}

}  // namespace

const QmatmulKernels kQmatmulKernels{simd::dot_float_avx2, simd::int_quantize, u8_decode,       int_dot_decoded, int_dot_direct,
                                     simd::f32_xsum,       f32_decode,         f32_dot_decoded, f32_dot_direct};

}  // namespace tandem::cpu::avx2
