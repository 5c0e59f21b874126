// qmatmul kernels with AVX512 F/BW/VL/VNNI (built with those flags; called only after a CPU check).
// Decoders and activation quantization are the AVX2 ones (qmatmul_simd.h); the 16 lanes of a pair are one
// 512-bit vector. The few-token products of Q4_K, Q5_K, Q6_K, Q8_0, Q5_0 and Q4_0 (a decode step's experts and
// most of its other weights) have decoders of their own that keep a group's scales and codes in 512-bit
// registers: at one token the decode, not the three VNNI products, is most of the instructions.
#include "kernels/cpu/qmatmul_simd.h"

namespace tandem::cpu::avx512 {

namespace {

// int22: the 16 lanes of a chunk are one vector; the three digit products go through vpdpbusd.
struct IAcc {
  static constexpr int kTileRows = 2, kTileTokens = 4;
  using Lanes = __m512;
  struct GroupScales {  // what a Decoder's group() returns
    __m512 dsc16, mneg16;
  };
  static TANDEM_INLINE void zero(Lanes& l) { l = _mm512_setzero_ps(); }
  using Codes = __m512i;  // 64 codes
  static TANDEM_INLINE Codes load_codes(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static TANDEM_INLINE Codes join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
  // 16 floats written as two halves just before (two loads, so that each is forwarded from its store).
  static TANDEM_INLINE __m512 load16(const float* p) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm256_loadu_ps(p + 8), 1);
  }
  using Scales = __m512;  // the group's dsc16
  static TANDEM_INLINE Scales load_scales(const float* dsc16) { return load16(dsc16); }
  template <int NT>
  static TANDEM_INLINE void chunk(const Codes& u, const Scales& dsc16, int q, const IntGroup* const* x, Lanes* g) {
    // lane l takes the scale of values 64 q + 4 l: dsc16[4 q + l / 4]
    const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(4 * q),
                                           _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    const __m512 scale = _mm512_permutexvar_ps(index, dsc16);
    for (int t = 0; t < NT; ++t) scaled_products(u, scale, &x[t]->digit[0][64 * q], g[t]);
  }
  // g = fma(scale, (float)T, g) for the 16 exact lane sums T of 64 codes u times one token's int22 values, whose
  // three digits are at d, d + 256 and d + 512.
  static TANDEM_INLINE void scaled_products(const Codes& u, __m512 scale, const int8_t* d, Lanes& g) {
    __m512i lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(d + 512));
    lanes = _mm512_dpbusd_epi32(_mm512_slli_epi32(lanes, 8), u, _mm512_loadu_si512(d + 256));
    lanes = _mm512_dpbusd_epi32(_mm512_slli_epi32(lanes, 8), u, _mm512_loadu_si512(d));
    g = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(lanes), g);
  }
  static TANDEM_INLINE void end_group(float dx, const Lanes& g, Lanes& acc) { acc = _mm512_fmadd_ps(_mm512_set1_ps(dx), g, acc); }
  // int8: chunk q of the lane order holds in lane l the codes 16 l + 4 q .. + 3, i.e. lane 4 (l % 4) + q of
  // natural chunk l / 4: a 4 x 4 transpose of 4-lane blocks (two rounds of two-source permutes).
  static TANDEM_INLINE Codes zero_codes() { return _mm512_setzero_si512(); }
  static TANDEM_INLINE Lanes load_lanes(const float* p) { return _mm512_loadu_ps(p); }
  static TANDEM_INLINE void int8_lane_order(Codes c[4]) {
    const __m512i even = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i odd = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    // t01: lanes q = 0 then 1 of chunks 0, 1; t23: q = 2, 3 (s01, s23: the same of chunks 2, 3)
    const __m512i t01 = _mm512_permutex2var_epi32(c[0], even, c[1]), t23 = _mm512_permutex2var_epi32(c[0], odd, c[1]);
    const __m512i s01 = _mm512_permutex2var_epi32(c[2], even, c[3]), s23 = _mm512_permutex2var_epi32(c[2], odd, c[3]);
    c[0] = _mm512_shuffle_i64x2(t01, s01, 0x44);  // 128-bit blocks 0, 1 of each
    c[1] = _mm512_shuffle_i64x2(t01, s01, 0xEE);  // blocks 2, 3
    c[2] = _mm512_shuffle_i64x2(t23, s23, 0x44);
    c[3] = _mm512_shuffle_i64x2(t23, s23, 0xEE);
  }
  // acc[k] = fma(dx, dsc16[k] * (float)T_k, acc[k]) for lane-order codes and digit[1] (two dependency chains).
  static TANDEM_INLINE void int8_products(const Codes c[4], __m512 dsc16, const IntGroup& x, Lanes& acc) {
    const int8_t* d = x.digit[1];
    const __m512i t01 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), c[0], _mm512_loadu_si512(d)), c[1],
                                            _mm512_loadu_si512(d + 64));
    const __m512i t23 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), c[2], _mm512_loadu_si512(d + 128)), c[3],
                                            _mm512_loadu_si512(d + 192));
    const __m512 t = _mm512_cvtepi32_ps(_mm512_add_epi32(t01, t23));
    acc = _mm512_fmadd_ps(_mm512_set1_ps(x.dx), _mm512_mul_ps(dsc16, t), acc);
  }
  static TANDEM_INLINE void add_min(__m512 mneg16, const float* xsum, Lanes& accm) {
    accm = _mm512_fmadd_ps(mneg16, _mm512_loadu_ps(xsum), accm);
  }
  static TANDEM_INLINE void add_min(const float* mneg16, const float* xsum, Lanes& accm) { add_min(load16(mneg16), xsum, accm); }
  static TANDEM_INLINE float result(const Lanes& acc, const Lanes& accm) {
    float a[16], m[16];
    _mm512_storeu_ps(a, acc);
    _mm512_storeu_ps(m, accm);
    return reduce16(a) + reduce16(m);
  }
};

struct FAcc {
  static constexpr int kTileRows = 2, kTileTokens = 4;  // decoded rows x tokens per register tile
  struct Chunk {
    __m512 a, b;  // values 0..15 and 16..31 of the chunk
  };
  static TANDEM_INLINE Chunk from_codes(__m256i codes, bool is_signed) {
    const __m128i lo = _mm256_castsi256_si128(codes), hi = _mm256_extracti128_si256(codes, 1);
    if (is_signed) return {_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo)), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))};
    return {_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi))};
  }
  static TANDEM_INLINE Chunk load(const float* p) { return {_mm512_loadu_ps(p), _mm512_loadu_ps(p + 16)}; }
  static TANDEM_INLINE void store(const Chunk& c, float* p) {
    _mm512_storeu_ps(p, c.a);
    _mm512_storeu_ps(p + 16, c.b);
  }
  struct Pair {
    __m512 acc, accm;
  };
  static TANDEM_INLINE void init(Pair& p) { p.acc = p.accm = _mm512_setzero_ps(); }
  static TANDEM_INLINE float result(const Pair& p) {
    float a[16], m[16];
    _mm512_storeu_ps(a, p.acc);
    _mm512_storeu_ps(m, p.accm);
    return reduce16(a) + reduce16(m);
  }
  template <int NT>
  static TANDEM_INLINE void add(const Chunk& c, int sub, const float* dsc2, const float* const* x, Pair* pairs) {
    if (sub == 32) {
      const __m512 d = _mm512_set1_ps(dsc2[0]);
      for (int t = 0; t < NT; ++t) {
        const __m512 p = _mm512_fmadd_ps(c.b, _mm512_loadu_ps(x[t] + 16), _mm512_mul_ps(c.a, _mm512_loadu_ps(x[t])));
        pairs[t].acc = _mm512_fmadd_ps(d, p, pairs[t].acc);
      }
      return;
    }
    const __m512 d0 = _mm512_set1_ps(dsc2[0]), d1 = _mm512_set1_ps(dsc2[1]);
    for (int t = 0; t < NT; ++t) {
      pairs[t].acc = _mm512_fmadd_ps(d0, _mm512_mul_ps(c.a, _mm512_loadu_ps(x[t])), pairs[t].acc);
      pairs[t].acc = _mm512_fmadd_ps(d1, _mm512_mul_ps(c.b, _mm512_loadu_ps(x[t] + 16)), pairs[t].acc);
    }
  }
  template <int NT>
  static TANDEM_INLINE void add_min(const float* mneg16, const float* const* xsum, Pair* pairs) {
    const __m512 m = _mm512_loadu_ps(mneg16);
    for (int t = 0; t < NT; ++t) pairs[t].accm = _mm512_fmadd_ps(m, _mm512_loadu_ps(xsum[t]), pairs[t].accm);
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

// Few-token decoders (simd::int_decoder_rows says what a Decoder provides): 64 codes and 16 lanes are one vector.

// Types with one scale and min per 32 values: lane l of chunk q takes the scale of sub-block 2 q + l / 8, and
// mneg16 is the 8 mins in pairs.
struct HalfChunkScales {
  __m512i index[4] = {_mm512_mask_set1_epi32(_mm512_set1_epi32(0), 0xFF00, 1), _mm512_mask_set1_epi32(_mm512_set1_epi32(2), 0xFF00, 3),
                      _mm512_mask_set1_epi32(_mm512_set1_epi32(4), 0xFF00, 5), _mm512_mask_set1_epi32(_mm512_set1_epi32(6), 0xFF00, 7)};
  __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  TANDEM_INLINE __m512 of_chunk(int q, __m512 scales8) const { return _mm512_permutexvar_ps(index[q], scales8); }
  // The 8 values of v8 each twice: the group's mneg16 from its 8 mins, its dsc16 from its 8 scales.
  TANDEM_INLINE __m512 in_pairs(__m256 v8) const { return _mm512_permutexvar_ps(pairs, _mm512_zextps256_ps512(v8)); }
};

// Q4_K and Q5_K: chunk q holds the low nibbles of qs[32 q .. 32 q + 31] (sub-block 2 q) and their high nibbles
// (sub-block 2 q + 1); Q5_K's fifth bit of value 32 s + l is bit s of qh[l].
template <bool kFive>
struct K4Decoder {
  using Acc = IAcc;
  static constexpr size_t kBlockBytes = kFive ? 176 : 144;
  static constexpr int64_t kBlockValues = 256;
  HalfChunkScales chunk_scales;
  __m512i half_shift = _mm512_maskz_set1_epi16(0xFFFF0000u, 4);  // high half: the high nibbles
  template <typename Emit>
  TANDEM_INLINE IAcc::GroupScales group(const uint8_t* row, int64_t g, int64_t, Emit&& emit) const {
    const uint8_t* blk = row + static_cast<size_t>(g) * kBlockBytes;
    const simd::K4BlockScales block = simd::k4_block_scales(blk);
    const __m512 scales = _mm512_zextps256_ps512(block.scales);
    const uint8_t* qs = blk + (kFive ? 48 : 16);
    __m512i qh = _mm512_setzero_si512();
    if constexpr (kFive) qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
    for (int q = 0; q < 4; ++q) {
      const __m512i bytes = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * q)));
      __m512i u = _mm512_and_si512(_mm512_srlv_epi16(bytes, half_shift), _mm512_set1_epi8(0x0F));
      if constexpr (kFive) {
        const __m512i bit = _mm512_mask_set1_epi8(_mm512_set1_epi8(static_cast<char>(1 << (2 * q))), 0xFFFFFFFF00000000ull,
                                                  static_cast<char>(1 << (2 * q + 1)));
        u = _mm512_or_si512(u, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(qh, bit), _mm512_set1_epi8(0x10)));
      }
      emit(q, u, chunk_scales.of_chunk(q, scales));
    }
    return {chunk_scales.in_pairs(block.scales), chunk_scales.in_pairs(block.mneg)};
  }
  // int8: the group's chunks made in lane order (IAcc::int8_lane_order) with one permute each. Lane l = 4 j + 2 n +
  // h (16-value group l: sub-block s = 2 j + n, its half h) of chunk q holds codes 16 l + 4 q .. + 3: nibble n of
  // qs bytes 32 j + 16 h + 4 q .. + 3, i.e. of qs dword 8 j + 4 h + q; Q5_K's fifth bits are bit s of qh dword
  // 4 h + q.
  __m512i lane_dword[4] = {_mm512_setr_epi32(0, 4, 0, 4, 8, 12, 8, 12, 16, 20, 16, 20, 24, 28, 24, 28),
                           _mm512_setr_epi32(1, 5, 1, 5, 9, 13, 9, 13, 17, 21, 17, 21, 25, 29, 25, 29),
                           _mm512_setr_epi32(2, 6, 2, 6, 10, 14, 10, 14, 18, 22, 18, 22, 26, 30, 26, 30),
                           _mm512_setr_epi32(3, 7, 3, 7, 11, 15, 11, 15, 19, 23, 19, 23, 27, 31, 27, 31)};
  __m512i lane_nibble_shift = _mm512_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4, 0, 0, 4, 4);
  __m512i lane_qh_dword = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
  __m512i lane_sub_block = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  TANDEM_INLINE IAcc::GroupScales group_lanes(const uint8_t* row, int64_t g, int64_t, IAcc::Codes c[4]) const {
    const uint8_t* blk = row + static_cast<size_t>(g) * kBlockBytes;
    const simd::K4BlockScales block = simd::k4_block_scales(blk);
    const uint8_t* qs = blk + (kFive ? 48 : 16);
    const __m512i qs_low = _mm512_loadu_si512(qs), qs_high = _mm512_loadu_si512(qs + 64);
    __m512i qh = _mm512_setzero_si512();
    if constexpr (kFive) qh = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16)));
    for (int q = 0; q < 4; ++q) {
      const __m512i q4 = _mm512_set1_epi32(q);
      const __m512i dwords = _mm512_permutex2var_epi32(qs_low, lane_dword[q], qs_high);
      __m512i u = _mm512_and_si512(_mm512_srlv_epi32(dwords, lane_nibble_shift), _mm512_set1_epi8(0x0F));
      if constexpr (kFive) {
        const __m512i bits = _mm512_srlv_epi32(_mm512_permutexvar_epi32(_mm512_add_epi32(lane_qh_dword, q4), qh), lane_sub_block);
        u = _mm512_or_si512(u, _mm512_and_si512(_mm512_slli_epi32(bits, 4), _mm512_set1_epi8(0x10)));
      }
      c[q] = u;
    }
    return {chunk_scales.in_pairs(block.scales), chunk_scales.in_pairs(block.mneg)};
  }
};

// Q6_K: chunk q holds the low nibbles of ql[64 h .. 64 h + 63] for q = 2 h, their high nibbles for q = 2 h + 1,
// each with two bits of qh[32 h .. 32 h + 31] as bits 4..5 (bits 0, 2 / 4, 6 for the low / high half).
struct Q6KDecoder {
  using Acc = IAcc;
  static constexpr size_t kBlockBytes = 210;
  static constexpr int64_t kBlockValues = 256;
  __m512i qh_shift[2] = {_mm512_maskz_set1_epi16(0xFFFF0000u, 2), _mm512_mask_set1_epi16(_mm512_set1_epi16(4), 0xFFFF0000u, 6)};
  __m512i chunk_scale_index[4] = {_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                  _mm512_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7),
                                  _mm512_setr_epi32(8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11),
                                  _mm512_setr_epi32(12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15)};
  template <typename Emit>
  TANDEM_INLINE IAcc::GroupScales group(const uint8_t* row, int64_t g, int64_t, Emit&& emit) const {
    const uint8_t* blk = row + static_cast<size_t>(g) * kBlockBytes;
    const __m512 dsc16 = _mm512_mul_ps(_mm512_set1_ps(simd::half(blk + 208)),
        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 192)))));
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk + 64 * h);
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h)));
      for (int odd = 0; odd < 2; ++odd) {
        const int q = 2 * h + odd;
        const __m512i low = _mm512_and_si512(odd ? _mm512_srli_epi16(ql, 4) : ql, _mm512_set1_epi8(0x0F));
        const __m512i high = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, qh_shift[odd]), _mm512_set1_epi8(0x03)), 4);
        emit(q, _mm512_or_si512(low, high), _mm512_permutexvar_ps(chunk_scale_index[q], dsc16));  // dsc16[4 q + l / 4]
      }
    }
    return {dsc16, _mm512_mul_ps(dsc16, _mm512_set1_ps(-32.0f))};
  }
};

// Legacy blocks of 32 (Q8_0: q + 128; Q5_0, Q4_0: the nibbles, Q5_0 with its fifth bits). A group is 8 blocks,
// fewer at a row's end: chunks past the last block are skipped, a chunk with one block has zero codes in its
// high half, absent blocks have d = 0 (as in the generic decoder). Chunk q holds blocks 2 q and 2 q + 1.
template <GgmlType kType>
struct LegacyDecoder {
  using Acc = IAcc;
  static constexpr size_t kBlockBytes = kType == GgmlType::Q8_0 ? 34 : kType == GgmlType::Q5_0 ? 22 : 18;
  static constexpr int64_t kBlockValues = 32;
  static constexpr float kOffset = kType == GgmlType::Q8_0 ? 128.0f : kType == GgmlType::Q5_0 ? 16.0f : 8.0f;
  HalfChunkScales chunk_scales;
  static TANDEM_INLINE __m256i codes(const uint8_t* b) {
    if constexpr (kType == GgmlType::Q8_0) {
      return _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), _mm256_set1_epi8(static_cast<char>(0x80)));
    } else {
      constexpr bool kFive = kType == GgmlType::Q5_0;
      const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + (kFive ? 6 : 2)));
      const __m128i m4 = _mm_set1_epi8(0x0F);
      __m256i c = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), _mm_and_si128(qs, m4));
      if constexpr (kFive) c = _mm256_mask_add_epi8(c, load_u32_le(b + 2), c, _mm256_set1_epi8(0x10));  // bit i of qh
      return c;
    }
  }
  template <typename Emit>
  TANDEM_INLINE IAcc::GroupScales group(const uint8_t* row, int64_t g, int64_t n, Emit&& emit) const {
    const uint8_t* first = row + static_cast<size_t>(g) * 8 * kBlockBytes;
    const int blocks = static_cast<int>(std::min<int64_t>(8, (n - 256 * g) / 32));
    // The blocks' d (f16) gathered through two scalar words (a vector load of scalar stores would wait on
    // store forwarding), zero past the row's end.
    uint64_t heads[2] = {0, 0};
    auto add_head = [&](int j) __attribute__((always_inline)) {
      uint16_t h;
      std::memcpy(&h, first + static_cast<size_t>(j) * kBlockBytes, 2);
      heads[j / 4] |= static_cast<uint64_t>(h) << (16 * (j % 4));
    };
    auto chunk = [&](int q, bool with_high) __attribute__((always_inline)) {
      const uint8_t* b = first + static_cast<size_t>(2 * q) * kBlockBytes;
      const __m256i high = with_high ? codes(b + kBlockBytes) : _mm256_setzero_si256();
      return _mm512_inserti64x4(_mm512_zextsi256_si512(codes(b)), high, 1);
    };
    if (blocks == 8) {
      for (int j = 0; j < 8; ++j) add_head(j);  // unrolled
    } else {
      for (int j = 0; j < blocks; ++j) add_head(j);
    }
    const __m256 d8 = _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(heads[1]), static_cast<int64_t>(heads[0])));
    const __m512 scales = _mm512_zextps256_ps512(d8);
    if (blocks == 8) {
      for (int q = 0; q < 4; ++q) emit(q, chunk(q, true), chunk_scales.of_chunk(q, scales));
    } else {
      for (int q = 0; 2 * q < blocks; ++q) {
        emit(q, chunk(q, 2 * q + 1 < blocks), chunk_scales.of_chunk(q, scales));
      }
    }
    return {chunk_scales.in_pairs(d8), chunk_scales.in_pairs(_mm256_mul_ps(d8, _mm256_set1_ps(-kOffset)))};
  }
  // int8, Q5_0 and Q4_0: a full group's chunks made in lane order from its 8 blocks' qs packed into two vectors
  // (Q8_0's 32 code bytes per block leave nothing to save over the transpose). Lane l = 2 j + h (block j, half
  // h) of chunk q holds codes 16 h + 4 q .. + 3 of block j: nibble h of its qs dword q, i.e. dword 4 j + q of the
  // packed pair; Q5_0's fifth bits are bits 16 h + 4 q .. + 3 of the block's qh: byte 2 h + q / 2 of it, bits
  // 4 (q % 2) .. + 3, spread to the lane's four bytes by one byte shuffle and tested bit by bit. A short group
  // (a row's end) takes the natural chunks and the transpose.
  __m512i lane_dword[4] = {_mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28),
                           _mm512_setr_epi32(1, 1, 5, 5, 9, 9, 13, 13, 17, 17, 21, 21, 25, 25, 29, 29),
                           _mm512_setr_epi32(2, 2, 6, 6, 10, 10, 14, 14, 18, 18, 22, 22, 26, 26, 30, 30),
                           _mm512_setr_epi32(3, 3, 7, 7, 11, 11, 15, 15, 19, 19, 23, 23, 27, 27, 31, 31)};
  __m512i lane_nibble_shift = _mm512_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
  // qh byte 2 h + q / 2 of each lane (h = lane % 2) to the lane's 4 bytes, for q / 2 = 0 and 1; the bit of byte b
  // for q % 2 = 0 and 1.
  __m512i qh_byte[2] = {_mm512_maskz_broadcast_i32x4(0xFFFF, _mm_setr_epi8(0, 0, 0, 0, 6, 6, 6, 6, 8, 8, 8, 8, 14, 14, 14, 14)),
                        _mm512_maskz_broadcast_i32x4(0xFFFF, _mm_setr_epi8(1, 1, 1, 1, 7, 7, 7, 7, 9, 9, 9, 9, 15, 15, 15, 15))};
  __m512i qh_bit[2] = {_mm512_set1_epi32(0x08040201), _mm512_set1_epi32(static_cast<int>(0x80402010u))};
  TANDEM_INLINE IAcc::GroupScales group_lanes(const uint8_t* row, int64_t g, int64_t n, IAcc::Codes c[4]) const
    requires(kType != GgmlType::Q8_0)
  {
    const uint8_t* first = row + static_cast<size_t>(g) * 8 * kBlockBytes;
    if (n - 256 * g < 256) {
      const IAcc::GroupScales scales = group(row, g, n, [&](int q, const IAcc::Codes& u, const IAcc::Lanes&) __attribute__((always_inline)) { c[q] = u; });
      IAcc::int8_lane_order(c);
      return scales;
    }
    constexpr bool kFive = kType == GgmlType::Q5_0;
    constexpr size_t kQs = kFive ? 6 : 2;
    auto qs = [&](int j) __attribute__((always_inline)) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(first + static_cast<size_t>(j) * kBlockBytes + kQs));
    };
    __m512i packed_low = _mm512_zextsi128_si512(qs(0)), packed_high = _mm512_zextsi128_si512(qs(4));
    for (int j = 1; j < 4; ++j) {  // unrolled (the insert's lane is an immediate)
      packed_low = _mm512_inserti32x4(packed_low, qs(j), j);
      packed_high = _mm512_inserti32x4(packed_high, qs(4 + j), j);
    }
    // The blocks' d and (Q5_0) qh through scalar words (see group()).
    uint64_t heads[2] = {0, 0}, qh[4] = {0, 0, 0, 0};
    for (int j = 0; j < 8; ++j) {
      const uint8_t* b = first + static_cast<size_t>(j) * kBlockBytes;
      uint16_t h;
      std::memcpy(&h, b, 2);
      heads[j / 4] |= static_cast<uint64_t>(h) << (16 * (j % 4));
      if constexpr (kFive) qh[j / 2] |= static_cast<uint64_t>(load_u32_le(b + 2)) << (32 * (j % 2));
    }
    __m512i qh_lanes = _mm512_setzero_si512();  // lane l: qh of block l / 2
    if constexpr (kFive) {
      const __m256i qh8 = _mm256_set_epi64x(static_cast<int64_t>(qh[3]), static_cast<int64_t>(qh[2]), static_cast<int64_t>(qh[1]),
                                            static_cast<int64_t>(qh[0]));
      qh_lanes = _mm512_permutexvar_epi32(chunk_scales.pairs, _mm512_zextsi256_si512(qh8));
    }
    for (int q = 0; q < 4; ++q) {
      const __m512i dwords = _mm512_permutex2var_epi32(packed_low, lane_dword[q], packed_high);
      __m512i u = _mm512_and_si512(_mm512_srlv_epi32(dwords, lane_nibble_shift), _mm512_set1_epi8(0x0F));
      if constexpr (kFive) {
        const __mmask64 fifth = _mm512_test_epi8_mask(_mm512_shuffle_epi8(qh_lanes, qh_byte[q / 2]), qh_bit[q % 2]);
        u = _mm512_mask_add_epi8(u, fifth, u, _mm512_set1_epi8(0x10));
      }
      c[q] = u;
    }
    const __m256 d8 = _mm256_cvtph_ps(_mm_set_epi64x(static_cast<int64_t>(heads[1]), static_cast<int64_t>(heads[0])));
    return {chunk_scales.in_pairs(d8), chunk_scales.in_pairs(_mm256_mul_ps(d8, _mm256_set1_ps(-kOffset)))};
  }
};

void int_dot_direct(int digits, GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const IntGroup* x,
                    int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  switch (type) {
    case GgmlType::Q4_K: return simd::int_decoder_direct<K4Decoder<false>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
    case GgmlType::Q5_K: return simd::int_decoder_direct<K4Decoder<true>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
    case GgmlType::Q6_K: return simd::int_decoder_direct<Q6KDecoder>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
    case GgmlType::Q8_0: return simd::int_decoder_direct<LegacyDecoder<GgmlType::Q8_0>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
    case GgmlType::Q5_0: return simd::int_decoder_direct<LegacyDecoder<GgmlType::Q5_0>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
    case GgmlType::Q4_0: return simd::int_decoder_direct<LegacyDecoder<GgmlType::Q4_0>>(digits, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
    default: return simd::int_dot_direct_loop<IAcc>(digits, type, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
  }
}
void u8_decode(GgmlType type, const uint8_t* row, int64_t n, U8Row dst) { simd::u8_decode_row(type, row, n, dst); }
void int_dot_decoded(int digits, GgmlType, U8Row rows, int64_t row_stride, int n_rows, const IntGroup* x,
                     int64_t x_stride, int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  simd::int_dot_decoded_loop<IAcc>(digits, rows, row_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
}

__m512 load_weights16(GgmlType type, const uint8_t* row, int64_t i) {
  if (type == GgmlType::F32) return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + i);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i));
  if (type == GgmlType::F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// Float weights, 4 rows x 4 tokens at a time, one 16-lane accumulator per pair (positions mod 16).
void dot_float(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const float* x, int64_t ldx, int64_t n_tok,
               int64_t n, float* y, int64_t ldy) {
  const int64_t full = n / 16 * 16;
  for (int r0 = 0; r0 < n_rows; r0 += 4) {
    const int nr = std::min(4, n_rows - r0);
    for (int64_t t0 = 0; t0 < n_tok; t0 += 4) {
      const int nt = static_cast<int>(std::min<int64_t>(4, n_tok - t0));
      __m512 acc[4][4];
      for (auto& a : acc) for (auto& b : a) b = _mm512_setzero_ps();
      const uint8_t* wr[4];
      const float* xt[4];
      for (int r = 0; r < 4; ++r) wr[r] = w + static_cast<size_t>(r0 + std::min(r, nr - 1)) * w_stride;
      for (int t = 0; t < 4; ++t) xt[t] = x + (t0 + std::min(t, nt - 1)) * ldx;
      for (int64_t i = 0; i < full; i += 16) {
        __m512 xv[4];
        for (int t = 0; t < 4; ++t) xv[t] = _mm512_loadu_ps(xt[t] + i);
        for (int r = 0; r < 4; ++r) {
          const __m512 wv = load_weights16(type, wr[r], i);
          for (int t = 0; t < 4; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
      }
      for (int r = 0; r < nr; ++r) {
        for (int t = 0; t < nt; ++t) {
          float lanes[16];
          _mm512_storeu_ps(lanes, acc[r][t]);
          for (int64_t i = full; i < n; ++i) lanes[i % 16] = std::fma(simd::weight_at(type, wr[r], i), xt[t][i], lanes[i % 16]);
          y[(t0 + t) * ldy + r0 + r] = reduce16(lanes);
        }
      }
    }
  }
}

}  // namespace

const QmatmulKernels kQmatmulKernels{dot_float,      simd::int_quantize, u8_decode,       int_dot_decoded, int_dot_direct,
                                     simd::f32_xsum, f32_decode,         f32_dot_decoded, f32_dot_direct};

}  // namespace tandem::cpu::avx512
