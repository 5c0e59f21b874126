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

// 32 signed bytes -> 32 floats, in order.
TANDEM_AVX2_INLINE Floats32 to_floats(__m256i q) {
  const __m128i lo = _mm256_castsi256_si128(q);
  const __m128i hi = _mm256_extracti128_si256(q, 1);
  return {_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(lo, lo))),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
          _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(hi, hi)))};
}

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
  for (; i + 32 <= n; i += 32) sink.put(i, {f16x8(src + i), f16x8(src + i + 8), f16x8(src + i + 16), f16x8(src + i + 24)});
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
    for (int64_t j = 0; j < n - i; ++j) tail[j] = bf16_to_fp32(src[i + j]);
    sink.put_tail(i, tail, n - i);
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q8_0(const BlockQ8_0* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const __m256 d = half_scale(b->d);
    const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs));
    sink.put(kQK * i, scaled(to_floats(q), d, d));
  }
}

// The 32 nibbles of a legacy block in value order: low nibbles (values 0..15), then high nibbles.
TANDEM_AVX2_INLINE __m256i legacy_nibbles(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), mask), _mm_and_si128(raw, mask));
}

// Byte e = 0x10 where bit e of bits is set (bit 4 of the Q5_0 / Q5_1 values).
TANDEM_AVX2_INLINE __m256i legacy_high_bits(const uint8_t* qh) {
  const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(load_u32_le(qh))), spread);
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit), _mm256_set1_epi8(0x10));
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q4_0(const BlockQ4_0* b, int64_t nb, Sink& sink) {
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const __m256 d = half_scale(b->d);
    const __m256i q = _mm256_sub_epi8(legacy_nibbles(b->qs), eight);
    sink.put(kQK * i, scaled(to_floats(q), d, d));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q4_1(const BlockQ4_1* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    sink.put(kQK * i, scaled_plus(to_floats(legacy_nibbles(b->qs)), half_scale(b->d), half_scale(b->m)));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q5_0(const BlockQ5_0* b, int64_t nb, Sink& sink) {
  const __m256i sixteen = _mm256_set1_epi8(16);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const __m256 d = half_scale(b->d);
    const __m256i q = _mm256_or_si256(legacy_nibbles(b->qs), legacy_high_bits(b->qh));
    sink.put(kQK * i, scaled(to_floats(_mm256_sub_epi8(q, sixteen)), d, d));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q5_1(const BlockQ5_1* b, int64_t nb, Sink& sink) {
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const __m256i q = _mm256_or_si256(legacy_nibbles(b->qs), legacy_high_bits(b->qh));
    sink.put(kQK * i, scaled_plus(to_floats(q), half_scale(b->d), half_scale(b->m)));
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q2_k(const BlockQ2_K* b, int64_t nb, Sink& sink) {
  const __m256i three = _mm256_set1_epi8(3);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = _cvtsh_ss(b->d);
    const float dmin = _cvtsh_ss(b->dmin);
    for (int h = 0; h < 2; ++h) {
      __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * h));
      for (int k = 0; k < 4; ++k, bits = _mm256_srli_epi16(bits, 2)) {
        const uint8_t s0 = b->scales[8 * h + 2 * k];
        const uint8_t s1 = b->scales[8 * h + 2 * k + 1];
        const Floats32 f = to_floats(_mm256_and_si256(bits, three));
        sink.put(kQK_K * i + 128 * h + 32 * k,
                 scaled_minus(f, _mm256_set1_ps(d * static_cast<float>(s0 & 0x0F)),
                              _mm256_set1_ps(dmin * static_cast<float>(s0 >> 4)),
                              _mm256_set1_ps(d * static_cast<float>(s1 & 0x0F)),
                              _mm256_set1_ps(dmin * static_cast<float>(s1 >> 4))));
      }
    }
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q3_k(const BlockQ3_K* b, int64_t nb, Sink& sink) {
  const __m256i three = _mm256_set1_epi8(3);
  const __m256i four = _mm256_set1_epi8(4);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = _cvtsh_ss(b->d);
    int8_t scales[16];
    unpack_q3_k_scales(b->scales, scales);
    const __m256i hmask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->hmask));
    for (int h = 0; h < 2; ++h) {
      __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * h));
      for (int k = 0; k < 4; ++k, bits = _mm256_srli_epi16(bits, 2)) {
        const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << (4 * h + k)));
        const __m256i high = _mm256_cmpeq_epi8(_mm256_and_si256(hmask, bit), bit);
        // q = low - 4 where the high bit is clear, low where it is set.
        const __m256i q = _mm256_sub_epi8(_mm256_and_si256(bits, three), _mm256_andnot_si256(high, four));
        sink.put(kQK_K * i + 128 * h + 32 * k,
                 scaled(to_floats(q), _mm256_set1_ps(d * static_cast<float>(scales[8 * h + 2 * k])),
                        _mm256_set1_ps(d * static_cast<float>(scales[8 * h + 2 * k + 1]))));
      }
    }
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q4_k(const BlockQ4_K* b, int64_t nb, Sink& sink) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = _cvtsh_ss(b->d);
    const float dmin = _cvtsh_ss(b->dmin);
    uint8_t scale[8], min[8];
    unpack_k4_scales(b->scales, scale, min);
    for (int j = 0; j < 4; ++j) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * j));
      const __m256 d0 = _mm256_set1_ps(d * static_cast<float>(scale[2 * j]));
      const __m256 m0 = _mm256_set1_ps(dmin * static_cast<float>(min[2 * j]));
      const __m256 d1 = _mm256_set1_ps(d * static_cast<float>(scale[2 * j + 1]));
      const __m256 m1 = _mm256_set1_ps(dmin * static_cast<float>(min[2 * j + 1]));
      sink.put(kQK_K * i + 64 * j, scaled_minus(to_floats(_mm256_and_si256(raw, low4)), d0, m0, d0, m0));
      sink.put(kQK_K * i + 64 * j + 32,
               scaled_minus(to_floats(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4)), d1, m1, d1, m1));
    }
  }
}

template <class Sink>
TANDEM_AVX2_INLINE void decode_q5_k(const BlockQ5_K* b, int64_t nb, Sink& sink) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i bit4 = _mm256_set1_epi8(0x10);
  for (int64_t i = 0; i < nb; ++i, ++b) {
    const float d = _cvtsh_ss(b->d);
    const float dmin = _cvtsh_ss(b->dmin);
    uint8_t scale[8], min[8];
    unpack_k4_scales(b->scales, scale, min);
    // Bits 2j and 2j+1 of qh[l] are the high bits of sub-blocks 2j and 2j+1; shifted down by 2 per j.
    __m256i high = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh));
    for (int j = 0; j < 4; ++j, high = _mm256_srli_epi16(high, 2)) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qs + 32 * j));
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, low4), _mm256_and_si256(_mm256_slli_epi16(high, 4), bit4));
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4),
                                         _mm256_and_si256(_mm256_slli_epi16(high, 3), bit4));
      const __m256 d0 = _mm256_set1_ps(d * static_cast<float>(scale[2 * j]));
      const __m256 m0 = _mm256_set1_ps(dmin * static_cast<float>(min[2 * j]));
      const __m256 d1 = _mm256_set1_ps(d * static_cast<float>(scale[2 * j + 1]));
      const __m256 m1 = _mm256_set1_ps(dmin * static_cast<float>(min[2 * j + 1]));
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
    for (int h = 0; h < 2; ++h) {
      const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * h));
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->ql + 64 * h + 32));
      const __m256i top = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b->qh + 32 * h));
      // Runs k = 0..3 of 32 values: low nibbles of a, c, then high nibbles; top bits 2k..2k+1 of qh.
      const __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(a, low4), _mm256_and_si256(_mm256_slli_epi16(top, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(c, low4), _mm256_and_si256(_mm256_slli_epi16(top, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low4), _mm256_and_si256(top, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(top, 2), bits45))};
      for (int k = 0; k < 4; ++k) {
        const int8_t* sc = b->scales + 8 * h + 2 * k;
        sink.put(kQK_K * i + 128 * h + 32 * k,
                 scaled(to_floats(_mm256_sub_epi8(q[k], offset)), _mm256_set1_ps(d * static_cast<float>(sc[0])),
                        _mm256_set1_ps(d * static_cast<float>(sc[1]))));
      }
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
