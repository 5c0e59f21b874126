// qmatmul kernels with AVX2 + FMA (built with -mavx2 -mfma -mf16c; called only after a CPU check).
// Lanes 0..7 and 8..15 of a pair are two 8-lane vectors.
#include "kernels/cpu/qmatmul_simd.h"

namespace tandem::cpu::avx2 {

namespace {

__m256i ld(const int16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

struct Acc {
  struct Pair {
    __m256 acc[2], accm[2];
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
  struct Block {
    __m256i lanes[NT][2];
    Block() {
      for (auto& l : lanes) l[0] = l[1] = _mm256_setzero_si256();
    }
    TANDEM_INLINE void chunk(int c, __m256i wa, __m256i wb, const Q16Group* const* x) {
      for (int t = 0; t < NT; ++t) {
        lanes[t][0] = _mm256_add_epi32(lanes[t][0], _mm256_madd_epi16(wa, ld(x[t]->q + 32 * c)));
        lanes[t][1] = _mm256_add_epi32(lanes[t][1], _mm256_madd_epi16(wb, ld(x[t]->q + 32 * c + 16)));
      }
    }
    TANDEM_INLINE void chunk_mem(int c, const int16_t* w, const Q16Group* const* x) { chunk(c, ld(w + 32 * c), ld(w + 32 * c + 16), x); }
    TANDEM_INLINE void finish(float d, const float* mneg, const Q16Group* const* x, Pair* pairs) {
      for (int t = 0; t < NT; ++t) {
        const __m256 dd = _mm256_set1_ps(d * x[t]->d);
        pairs[t].acc[0] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(lanes[t][0]), pairs[t].acc[0]);
        pairs[t].acc[1] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(lanes[t][1]), pairs[t].acc[1]);
      }
      if (mneg) add_min(mneg, x, pairs);
    }
    TANDEM_INLINE void add_min(const float* m16, const Q16Group* const* x, Pair* pairs) {
      const __m256 m0 = _mm256_loadu_ps(m16), m1 = _mm256_loadu_ps(m16 + 8);
      for (int t = 0; t < NT; ++t) {
        pairs[t].accm[0] = _mm256_fmadd_ps(m0, _mm256_loadu_ps(x[t]->bsumf), pairs[t].accm[0]);
        pairs[t].accm[1] = _mm256_fmadd_ps(m1, _mm256_loadu_ps(x[t]->bsumf + 8), pairs[t].accm[1]);
      }
    }
    TANDEM_INLINE void legacy_block(int j, const int16_t* w, float d, const Q16Group* const* x, Pair* pairs) {
      const __m256i w0 = ld(w + 32 * j), w1 = ld(w + 32 * j + 16);
      for (int t = 0; t < NT; ++t) {
        const __m256 dd = _mm256_set1_ps(d * x[t]->d);
        const __m256i l0 = _mm256_madd_epi16(w0, ld(x[t]->q + 32 * j));
        const __m256i l1 = _mm256_madd_epi16(w1, ld(x[t]->q + 32 * j + 16));
        pairs[t].acc[0] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(l0), pairs[t].acc[0]);
        pairs[t].acc[1] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(l1), pairs[t].acc[1]);
      }
    }
  };
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

}  // namespace

const QmatmulKernels kQmatmulKernels{simd::quantize, simd::decode_k, simd::decode_legacy, dot_k, dot_legacy, dot_direct,
                                     simd::dot_float_avx2, simd::f32_xsum, f32_decode, f32_dot_decoded, f32_dot_direct};

}  // namespace tandem::cpu::avx2
