// AVX2 + FMA + F16C kernels: dequantize and dot products for every computable type.
//
// One decoder per type turns a row into runs of 32 floats (four __m256, in value order) and hands each run
// to a sink: StoreSink writes them out (dequantize_row), DotSink multiplies them with x into four FMA
// accumulators (dot_row, dot_f32). Because both use the same decoder, dot_row equals dot_f32 over the
// dequantized row exactly; the accumulation order is the one documented in quant_kernels.h. Values are
// computed with the same float operations as the scalar kernels (no contraction: -ffp-contract=off), so
// dequantized rows match them bit for bit.
//
// Everything except the exported entry points has internal linkage and no std templates are instantiated
// here, so no AVX2-compiled inline code can be picked by the linker for other translation units.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/cpu/quant_kernels.h"

#define TANDEM_AVX2_INLINE [[gnu::always_inline]] inline

namespace tandem::cpu::avx2 {
namespace {

// 32 consecutive values of a row.
struct Floats32 {
  __m256 v0, v1, v2, v3;
};

// ---- Integers to floats. Where the quantized bytes are usable as stored, they are widened straight from
// memory (vpmovzxbd/vpmovsxbd m64), which spares the shuffle units that widening a register needs.

// 32 signed bytes -> 32 floats, in order.
TANDEM_AVX2_INLINE Floats32 to_floats(__m256i q) {
  const __m128i lo = _mm256_castsi256_si128(q);
  const __m128i hi = _mm256_extracti128_si256(q, 1);
  return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(lo, lo))),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(hi, hi)))};
}

// 8 signed bytes in memory -> 8 floats.
TANDEM_AVX2_INLINE __m256 bytes8_to_floats(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// 32 signed bytes in memory -> 32 floats.
TANDEM_AVX2_INLINE Floats32 bytes_to_floats(const int8_t* p) {
  return {bytes8_to_floats(p), bytes8_to_floats(p + 8), bytes8_to_floats(p + 16), bytes8_to_floats(p + 24)};
}

// Low or high nibbles (kShift 0 or 4) of 8 bytes in memory, minus kOffset -> 8 floats.
template <int kShift, int kOffset>
TANDEM_AVX2_INLINE __m256 nibbles8_to_floats(const uint8_t* p) {
  const __m256i wide = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  __m256i q = _mm256_and_si256(_mm256_srli_epi32(wide, kShift), _mm256_set1_epi32(0x0F));
  if constexpr (kOffset != 0) q = _mm256_sub_epi32(q, _mm256_set1_epi32(kOffset));
  return _mm256_cvtepi32_ps(q);
}

// The 32 values of a Q4_0 / Q4_1 block (low nibbles of qs[0..16), then high nibbles), minus kOffset.
template <int kOffset>
TANDEM_AVX2_INLINE Floats32 legacy_nibbles_to_floats(const uint8_t* qs) {
  return {nibbles8_to_floats<0, kOffset>(qs), nibbles8_to_floats<0, kOffset>(qs + 8),
          nibbles8_to_floats<4, kOffset>(qs), nibbles8_to_floats<4, kOffset>(qs + 8)};
}

// Low or high nibbles of 32 bytes in memory -> 32 floats (a Q4_K sub-block).
template <int kShift>
TANDEM_AVX2_INLINE Floats32 nibbles_to_floats(const uint8_t* p) {
  return {nibbles8_to_floats<kShift, 0>(p), nibbles8_to_floats<kShift, 0>(p + 8), nibbles8_to_floats<kShift, 0>(p + 16),
          nibbles8_to_floats<kShift, 0>(p + 24)};
}

// Q5_0 / Q5_1 values 8m..8m+7 (nibbles as Q4_0, bit 4 from bit e of qh), minus kOffset -> 8 floats.
template <int kM, int kOffset>
TANDEM_AVX2_INLINE __m256 q5_values8(const uint8_t* qs, __m256i qh) {
  const __m256i wide = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(qs + 8 * (kM % 2))));
  const __m256i low = _mm256_and_si256(_mm256_srli_epi32(wide, kM < 2 ? 0 : 4), _mm256_set1_epi32(0x0F));
  const __m256i shift =
      _mm256_setr_epi32(8 * kM, 8 * kM + 1, 8 * kM + 2, 8 * kM + 3, 8 * kM + 4, 8 * kM + 5, 8 * kM + 6, 8 * kM + 7);
  const __m256i high = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(qh, shift), _mm256_set1_epi32(1)), 4);
  __m256i q = _mm256_or_si256(low, high);
  if constexpr (kOffset != 0) q = _mm256_sub_epi32(q, _mm256_set1_epi32(kOffset));
  return _mm256_cvtepi32_ps(q);
}

template <int kOffset>
TANDEM_AVX2_INLINE Floats32 q5_values(const uint8_t* qs, const uint8_t* qh_bytes) {
  const __m256i qh = _mm256_set1_epi32(static_cast<int>(load_u32_le(qh_bytes)));
  return {q5_values8<0, kOffset>(qs, qh), q5_values8<1, kOffset>(qs, qh), q5_values8<2, kOffset>(qs, qh),
          q5_values8<3, kOffset>(qs, qh)};
}

// ---- Scales.

// f * d (one scale for the run, or d0 for the first 16 values and d1 for the last 16).
TANDEM_AVX2_INLINE Floats32 scaled(Floats32 f, __m256 d0, __m256 d1) {
  return {_mm256_mul_ps(f.v0, d0), _mm256_mul_ps(f.v1, d0), _mm256_mul_ps(f.v2, d1), _mm256_mul_ps(f.v3, d1)};
}

// f * d - m, per 16 values as above.
TANDEM_AVX2_INLINE Floats32 scaled_minus(Floats32 f, __m256 d0, __m256 m0, __m256 d1, __m256 m1) {
  return {_mm256_sub_ps(_mm256_mul_ps(f.v0, d0), m0), _mm256_sub_ps(_mm256_mul_ps(f.v1, d0), m0),
          _mm256_sub_ps(_mm256_mul_ps(f.v2, d1), m1), _mm256_sub_ps(_mm256_mul_ps(f.v3, d1), m1)};
}

// f * d + m.
TANDEM_AVX2_INLINE Floats32 scaled_plus(Floats32 f, __m256 d, __m256 m) {
  return {_mm256_add_ps(_mm256_mul_ps(f.v0, d), m), _mm256_add_ps(_mm256_mul_ps(f.v1, d), m),
          _mm256_add_ps(_mm256_mul_ps(f.v2, d), m), _mm256_add_ps(_mm256_mul_ps(f.v3, d), m)};
}

TANDEM_AVX2_INLINE __m256 half_scale(uint16_t h) { return _mm256_set1_ps(_cvtsh_ss(h)); }

// Lanes [0, count - 8 * k) of the k-th group of 8 (count < 32).
TANDEM_AVX2_INLINE __m256i tail_mask(int64_t count, int k) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count) - 8 * k), lane);
}

// ---- Sinks.

// Writes decoded values to dst.
class StoreSink {
 public:
  explicit StoreSink(float* dst) : dst_(dst) {}

  TANDEM_AVX2_INLINE void put(int64_t i, const Floats32& f) {
    _mm256_storeu_ps(dst_ + i, f.v0);
    _mm256_storeu_ps(dst_ + i + 8, f.v1);
    _mm256_storeu_ps(dst_ + i + 16, f.v2);
    _mm256_storeu_ps(dst_ + i + 24, f.v3);
  }

  // The last count (< 32) values of a row of block size 1.
  void put_tail(int64_t i, const float* values, int64_t count) {
    std::memcpy(dst_ + i, values, static_cast<size_t>(count) * sizeof(float));
  }

 private:
  float* dst_;
};

// Accumulates sum values[i] * x[i]: value i goes to lane i % 8 of accumulator (i / 8) % 4.
class DotSink {
 public:
  explicit DotSink(const float* x) : x_(x) {}

  TANDEM_AVX2_INLINE void put(int64_t i, const Floats32& f) {
    acc0_ = _mm256_fmadd_ps(f.v0, _mm256_loadu_ps(x_ + i), acc0_);
    acc1_ = _mm256_fmadd_ps(f.v1, _mm256_loadu_ps(x_ + i + 8), acc1_);
    acc2_ = _mm256_fmadd_ps(f.v2, _mm256_loadu_ps(x_ + i + 16), acc2_);
    acc3_ = _mm256_fmadd_ps(f.v3, _mm256_loadu_ps(x_ + i + 24), acc3_);
  }

  // The last count (< 32) values: masked loads, so lanes past the end add 0 * 0.
  void put_tail(int64_t i, const float* values, int64_t count) {
    const __m256i m0 = tail_mask(count, 0), m1 = tail_mask(count, 1);
    const __m256i m2 = tail_mask(count, 2), m3 = tail_mask(count, 3);
    acc0_ = _mm256_fmadd_ps(_mm256_maskload_ps(values, m0), _mm256_maskload_ps(x_ + i, m0), acc0_);
    acc1_ = _mm256_fmadd_ps(_mm256_maskload_ps(values + 8, m1), _mm256_maskload_ps(x_ + i + 8, m1), acc1_);
    acc2_ = _mm256_fmadd_ps(_mm256_maskload_ps(values + 16, m2), _mm256_maskload_ps(x_ + i + 16, m2), acc2_);
    acc3_ = _mm256_fmadd_ps(_mm256_maskload_ps(values + 24, m3), _mm256_maskload_ps(x_ + i + 24, m3), acc3_);
  }

  TANDEM_AVX2_INLINE float total() const {
    const __m256 s = _mm256_add_ps(_mm256_add_ps(acc0_, acc1_), _mm256_add_ps(acc2_, acc3_));
    const __m128 t = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    const __m128 u = _mm_add_ps(t, _mm_movehl_ps(t, t));
    return _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps(u, u, 1)));
  }

 private:
  const float* x_;
  __m256 acc0_ = _mm256_setzero_ps();
  __m256 acc1_ = _mm256_setzero_ps();
  __m256 acc2_ = _mm256_setzero_ps();
  __m256 acc3_ = _mm256_setzero_ps();
};

// ---- Decoders: decode_<type>(src, n, sink) -------------------------------------------------------------

template <class Sink>
TANDEM_AVX2_INLINE void decode_f32(const float* src, int64_t n, Sink& sink) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    sink.put(i, {_mm256_loadu_ps(src + i), _mm256_loadu_ps(src + i + 8), _mm256_loadu_ps(src + i + 16),
                 _mm256_loadu_ps(src + i + 24)});
  }
  if (i < n) sink.put_tail(i, src + i, n - i);
}

TANDEM_AVX2_INLINE __m256 f16x8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_f16(const uint16_t* src, int64_t n, Sink& sink) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    sink.put(i, {f16x8(src + i), f16x8(src + i + 8), f16x8(src + i + 16), f16x8(src + i + 24)});
  if (i < n) {
    float tail[32];
    for (int64_t j = 0; j < n - i; ++j) tail[j] = _cvtsh_ss(src[i + j]);
    sink.put_tail(i, tail, n - i);
  }
}

TANDEM_AVX2_INLINE __m256 bf16x8(const uint16_t* p) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_bf16(const uint16_t* src, int64_t n, Sink& sink) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    sink.put(i, {bf16x8(src + i), bf16x8(src + i + 8), bf16x8(src + i + 16), bf16x8(src + i + 24)});
  }
  if (i < n) {
    float tail[32];
    for (int64_t j = 0; j < n - i; ++j) {
      const uint32_t bits = static_cast<uint32_t>(src[i + j]) << 16;
      std::memcpy(&tail[j], &bits, sizeof bits);
    }
    sink.put_tail(i, tail, n - i);
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q8_0(const BlockQ8_0* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const __m256 d = half_scale(b->d);
    sink.put(kQK * i, scaled(bytes_to_floats(b->qs), d, d));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q4_0(const BlockQ4_0* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const __m256 d = half_scale(b->d);
    sink.put(kQK * i, scaled(legacy_nibbles_to_floats<8>(b->qs), d, d));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q4_1(const BlockQ4_1* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    sink.put(kQK * i, scaled_plus(legacy_nibbles_to_floats<0>(b->qs), half_scale(b->d), half_scale(b->m)));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q5_0(const BlockQ5_0* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const __m256 d = half_scale(b->d);
    sink.put(kQK * i, scaled(q5_values<16>(b->qs, b->qh), d, d));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q5_1(const BlockQ5_1* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    sink.put(kQK * i, scaled_plus(q5_values<0>(b->qs, b->qh), half_scale(b->d), half_scale(b->m)));
  }
}

// out[i] = d_lo * s[i] for i < 8 and d_hi * s[i] for i >= 8 (16 signed bytes): the per-sub-block
// scales of a k-quant block, each later broadcast from memory.
TANDEM_AVX2_INLINE void scale_products(__m128i s, float d_lo, float d_hi, float* out) {
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_set1_ps(d_lo), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s))));
  _mm256_storeu_ps(
      out + 8, _mm256_mul_ps(_mm256_set1_ps(d_hi), _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(s, s)))));
}

TANDEM_AVX2_INLINE __m128i load16(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
TANDEM_AVX2_INLINE __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

template <class Sink>
TANDEM_AVX2_INLINE void decode_q2_k(const BlockQ2_K* b, int64_t nb, Sink& sink) {
  const __m256i three = _mm256_set1_epi8(3);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = _cvtsh_ss(b->d);
    const float dmin = _cvtsh_ss(b->dmin);
    const __m128i packed = load16(b->scales);
    float dl[16], ml[16];
    scale_products(_mm_and_si128(packed, low4), d, d, dl);
    scale_products(_mm_and_si128(_mm_srli_epi16(packed, 4), low4), dmin, dmin, ml);
    for (int h = 0; h < 2; ++h) {
      __m256i bits = load32(b->qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k, bits = _mm256_srli_epi16(bits, 2)) {
        const int s = 8 * h + 2 * k;
        sink.put(kQK_K * i + 128 * h + 32 * k,
                 scaled_minus(to_floats(_mm256_and_si256(bits, three)), _mm256_broadcast_ss(dl + s),
                              _mm256_broadcast_ss(ml + s), _mm256_broadcast_ss(dl + s + 1),
                              _mm256_broadcast_ss(ml + s + 1)));
      }
    }
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q3_k(const BlockQ3_K* b, int64_t nb, Sink& sink) {
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i one = _mm256_set1_epi8(1);
  const __m256i four = _mm256_set1_epi8(4);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    int8_t scales[16];
    unpack_q3_k_scales(b->scales, scales);
    float dl[16];
    const float d = _cvtsh_ss(b->d);
    scale_products(load16(scales), d, d, dl);
    // Bit 4h + k of hmask[l] is the high bit of run (h, k): shifted down by one per run.
    __m256i high = load32(b->hmask);
    for (int h = 0; h < 2; ++h) {
      __m256i bits = load32(b->qs + 32 * h);
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k, bits = _mm256_srli_epi16(bits, 2), high = _mm256_srli_epi16(high, 1)) {
        // q = low + 4 * high - 4
        const __m256i q = _mm256_sub_epi8(
            _mm256_or_si256(_mm256_and_si256(bits, three), _mm256_slli_epi16(_mm256_and_si256(high, one), 2)), four);
        const int s = 8 * h + 2 * k;
        sink.put(kQK_K * i + 128 * h + 32 * k,
                 scaled(to_floats(q), _mm256_broadcast_ss(dl + s), _mm256_broadcast_ss(dl + s + 1)));
      }
    }
  }
}

// Q4_K / Q5_K sub-block scales and mins: dl[s] = d * scale[s], dl[8 + s] = dmin * min[s].
TANDEM_AVX2_INLINE void k4_scale_products(const uint8_t* packed, float d, float dmin, float* dl) {
  uint8_t bytes[16];
  unpack_k4_scales(packed, bytes, bytes + 8);
  scale_products(load16(bytes), d, dmin, dl);
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q4_k(const BlockQ4_K* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    float dl[16];
    k4_scale_products(b->scales, _cvtsh_ss(b->d), _cvtsh_ss(b->dmin), dl);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m256 d0 = _mm256_broadcast_ss(dl + 2 * j), m0 = _mm256_broadcast_ss(dl + 8 + 2 * j);
      const __m256 d1 = _mm256_broadcast_ss(dl + 2 * j + 1), m1 = _mm256_broadcast_ss(dl + 9 + 2 * j);
      sink.put(kQK_K * i + 64 * j, scaled_minus(nibbles_to_floats<0>(b->qs + 32 * j), d0, m0, d0, m0));
      sink.put(kQK_K * i + 64 * j + 32, scaled_minus(nibbles_to_floats<4>(b->qs + 32 * j), d1, m1, d1, m1));
    }
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q5_k(const BlockQ5_K* b, int64_t nb, Sink& sink) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    float dl[16];
    k4_scale_products(b->scales, _cvtsh_ss(b->d), _cvtsh_ss(b->dmin), dl);
    // Bits 2j and 2j+1 of qh[l] are the high bits of sub-blocks 2j and 2j+1; shifted down by 2 per j.
    __m256i high = load32(b->qh);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j, high = _mm256_srli_epi16(high, 2)) {
      const __m256i raw = load32(b->qs + 32 * j);
      const __m256i lo =
          _mm256_or_si256(_mm256_and_si256(raw, low4), _mm256_and_si256(_mm256_slli_epi16(high, 4), bit4));
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4),
                                         _mm256_and_si256(_mm256_slli_epi16(high, 3), bit4));
      const __m256 d0 = _mm256_broadcast_ss(dl + 2 * j), m0 = _mm256_broadcast_ss(dl + 8 + 2 * j);
      const __m256 d1 = _mm256_broadcast_ss(dl + 2 * j + 1), m1 = _mm256_broadcast_ss(dl + 9 + 2 * j);
      sink.put(kQK_K * i + 64 * j, scaled_minus(to_floats(lo), d0, m0, d0, m0));
      sink.put(kQK_K * i + 64 * j + 32, scaled_minus(to_floats(hi), d1, m1, d1, m1));
    }
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q6_k(const BlockQ6_K* b, int64_t nb, Sink& sink) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i bits45 = _mm256_set1_epi8(0x30);
  const __m256i offset = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = _cvtsh_ss(b->d);
    float dl[16];
    scale_products(load16(b->scales), d, d, dl);
    for (int h = 0; h < 2; ++h) {
      const __m256i a = load32(b->ql + 64 * h);
      const __m256i c = load32(b->ql + 64 * h + 32);
      const __m256i top = load32(b->qh + 32 * h);
      const int64_t at = kQK_K * i + 128 * h;
      const float* sc = dl + 8 * h;
      // Runs k = 0..3 of 32 values: low nibbles of a, c, then high nibbles; top bits 2k..2k+1 of qh.
      const __m256i q0 =
          _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_and_si256(_mm256_slli_epi16(top, 4), bits45));
      const __m256i q1 =
          _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_and_si256(_mm256_slli_epi16(top, 2), bits45));
      const __m256i q2 =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(top, bits45));
      const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4),
                                         _mm256_and_si256(_mm256_srli_epi16(top, 2), bits45));
      const auto put_run = [&](int k, __m256i q) {
        sink.put(at + 32 * k, scaled(to_floats(_mm256_sub_epi8(q, offset)), _mm256_broadcast_ss(sc + 2 * k),
                                     _mm256_broadcast_ss(sc + 2 * k + 1)));
      };
      put_run(0, q0);
      put_run(1, q1);
      put_run(2, q2);
      put_run(3, q3);
    }
  }
}

template <class Sink>
void decode(GgmlType type, const void* src, int64_t n, Sink& sink) {
  switch (type) {
    case GgmlType::F32:
      return decode_f32(static_cast<const float*>(src), n, sink);
    case GgmlType::F16:
      return decode_f16(static_cast<const uint16_t*>(src), n, sink);
    case GgmlType::BF16:
      return decode_bf16(static_cast<const uint16_t*>(src), n, sink);
    case GgmlType::Q8_0:
      return decode_q8_0(static_cast<const BlockQ8_0*>(src), n / kQK, sink);
    case GgmlType::Q4_0:
      return decode_q4_0(static_cast<const BlockQ4_0*>(src), n / kQK, sink);
    case GgmlType::Q4_1:
      return decode_q4_1(static_cast<const BlockQ4_1*>(src), n / kQK, sink);
    case GgmlType::Q5_0:
      return decode_q5_0(static_cast<const BlockQ5_0*>(src), n / kQK, sink);
    case GgmlType::Q5_1:
      return decode_q5_1(static_cast<const BlockQ5_1*>(src), n / kQK, sink);
    case GgmlType::Q2_K:
      return decode_q2_k(static_cast<const BlockQ2_K*>(src), n / kQK_K, sink);
    case GgmlType::Q3_K:
      return decode_q3_k(static_cast<const BlockQ3_K*>(src), n / kQK_K, sink);
    case GgmlType::Q4_K:
      return decode_q4_k(static_cast<const BlockQ4_K*>(src), n / kQK_K, sink);
    case GgmlType::Q5_K:
      return decode_q5_k(static_cast<const BlockQ5_K*>(src), n / kQK_K, sink);
    case GgmlType::Q6_K:
      return decode_q6_k(static_cast<const BlockQ6_K*>(src), n / kQK_K, sink);
    default:
      return;  // rejected by the dispatcher
  }
}

}  // namespace

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  if (type == GgmlType::F32) {
    if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  StoreSink sink(dst);
  decode(type, src, n, sink);
}

float dot_f32(const float* a, const float* b, int64_t n) {
  DotSink sink(b);
  decode_f32(a, n, sink);
  return sink.total();
}

float dot_row(GgmlType type, const void* row, const float* x, int64_t n) {
  DotSink sink(x);
  decode(type, row, n, sink);
  return sink.total();
}

}  // namespace tandem::cpu::avx2
