// qmatmul kernels with AVX512 F/BW/VL/VNNI (built with those flags; called only after a CPU check).
// Decoders and activation quantization are the AVX2 ones (qmatmul_simd.h); the 16 lanes of a pair are one
// 512-bit vector.
#include "kernels/cpu/qmatmul_simd.h"

namespace tandem::cpu::avx512 {

namespace {

// int22: the 16 lanes of a chunk are one vector; the three digit products go through vpdpbusd.
struct IAcc {
  static constexpr int kTileRows = 2, kTileTokens = 4;
  using Lanes = __m512;
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
  static TANDEM_INLINE void chunk(const Codes& u, const Scales& dsc16, int q, const Q22Group* const* x, Lanes* g) {
    // lane l takes the scale of values 64 q + 4 l: dsc16[4 q + l / 4]
    const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(4 * q),
                                           _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    const __m512 scale = _mm512_permutexvar_ps(index, dsc16);
    for (int t = 0; t < NT; ++t) {
      const int8_t* d = &x[t]->digit[0][64 * q];
      __m512i lanes = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(d + 512));
      lanes = _mm512_dpbusd_epi32(_mm512_slli_epi32(lanes, 8), u, _mm512_loadu_si512(d + 256));
      lanes = _mm512_dpbusd_epi32(_mm512_slli_epi32(lanes, 8), u, _mm512_loadu_si512(d));
      g[t] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(lanes), g[t]);
    }
  }
  static TANDEM_INLINE void end_group(float dx, const Lanes& g, Lanes& acc) { acc = _mm512_fmadd_ps(_mm512_set1_ps(dx), g, acc); }
  static TANDEM_INLINE void add_min(const float* mneg16, const float* xsum, Lanes& accm) {
    accm = _mm512_fmadd_ps(load16(mneg16), _mm512_loadu_ps(xsum), accm);
  }
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

void i22_dot_direct(GgmlType type, const uint8_t* w, size_t w_stride, int n_rows, const Q22Group* x, int64_t x_stride,
                    int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  simd::i22_dot_direct_loop<IAcc>(type, w, w_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
}
void u8_decode(GgmlType type, const uint8_t* row, int64_t n, U8Row dst) { simd::u8_decode_row(type, row, n, dst); }
void i22_dot_decoded(GgmlType, U8Row rows, int64_t row_stride, int n_rows, const Q22Group* x, int64_t x_stride,
                     int64_t n_tok, int64_t n, float* y, int64_t ldy) {
  simd::i22_dot_decoded_loop<IAcc>(rows, row_stride, n_rows, x, x_stride, n_tok, n, y, ldy);
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

const QmatmulKernels kQmatmulKernels{dot_float,      simd::i22_quantize, u8_decode,       i22_dot_decoded, i22_dot_direct,
                                     simd::f32_xsum, f32_decode,         f32_dot_decoded, f32_dot_direct};

}  // namespace tandem::cpu::avx512
