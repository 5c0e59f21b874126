// qmatmul kernels with AVX512 F/BW/VL/VNNI (built with those flags; called only after a CPU check).
// Decoders and activation quantization are the AVX2 ones (qmatmul_simd.h); the 16 lanes of a pair are one
// 512-bit vector and the int16 products go through vpdpwssd.
#include "kernels/cpu/qmatmul_simd.h"

namespace tandem::cpu::avx512 {

namespace {

struct Acc {
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
  struct Block {
    __m512i lanes[NT];
    Block() {
      for (auto& l : lanes) l = _mm512_setzero_si512();
    }
    TANDEM_INLINE void chunk512(int c, __m512i w, const Q16Group* const* x) {
      for (int t = 0; t < NT; ++t) lanes[t] = _mm512_dpwssd_epi32(lanes[t], w, _mm512_loadu_si512(x[t]->q + 32 * c));
    }
    TANDEM_INLINE void chunk(int c, __m256i wa, __m256i wb, const Q16Group* const* x) {
      chunk512(c, _mm512_inserti64x4(_mm512_castsi256_si512(wa), wb, 1), x);
    }
    TANDEM_INLINE void chunk_mem(int c, const int16_t* w, const Q16Group* const* x) { chunk512(c, _mm512_loadu_si512(w + 32 * c), x); }
    TANDEM_INLINE void finish(float d, const float* mneg, const Q16Group* const* x, Pair* pairs) {
      for (int t = 0; t < NT; ++t) {
        pairs[t].acc = _mm512_fmadd_ps(_mm512_set1_ps(d * x[t]->d), _mm512_cvtepi32_ps(lanes[t]), pairs[t].acc);
      }
      if (mneg) add_min(mneg, x, pairs);
    }
    TANDEM_INLINE void add_min(const float* m16, const Q16Group* const* x, Pair* pairs) {
      const __m512 m = _mm512_loadu_ps(m16);
      for (int t = 0; t < NT; ++t) pairs[t].accm = _mm512_fmadd_ps(m, _mm512_loadu_ps(x[t]->bsumf), pairs[t].accm);
    }
    TANDEM_INLINE void legacy_block(int j, const int16_t* w, float d, const Q16Group* const* x, Pair* pairs) {
      const __m512i wv = _mm512_loadu_si512(w + 32 * j);
      for (int t = 0; t < NT; ++t) {
        const __m512i l = _mm512_dpwssd_epi32(_mm512_setzero_si512(), wv, _mm512_loadu_si512(x[t]->q + 32 * j));
        pairs[t].acc = _mm512_fmadd_ps(_mm512_set1_ps(d * x[t]->d), _mm512_cvtepi32_ps(l), pairs[t].acc);
      }
    }
  };
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

void dot_k(const KBlock* rows, int64_t row_stride, int n_rows, const Q16Group* x, int64_t x_stride, int64_t n_tok,
           int64_t n_blocks, float* y, int64_t ldy) {
  simd::dot_k_loop<Acc>(rows, row_stride, n_rows, x, x_stride, n_tok, n_blocks, y, ldy);
}
void dot_legacy(const LGroup* rows, int64_t row_stride, int n_rows, const Q16Group* x, int64_t x_stride, int64_t n_tok,
                int64_t n_values, float* y, int64_t ldy) {
  simd::dot_legacy_loop<Acc>(rows, row_stride, n_rows, x, x_stride, n_tok, n_values, y, ldy);
}
void dot_direct(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const Q16Group* x, int64_t x_stride,
                int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  simd::dot_direct_loop<Acc>(type, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
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

const QmatmulKernels kQmatmulKernels{simd::quantize, simd::decode_k, simd::decode_legacy, dot_k, dot_legacy, dot_direct,
                                     dot_float, simd::f32_xsum, f32_decode, f32_dot_decoded, f32_dot_direct};

}  // namespace tandem::cpu::avx512
