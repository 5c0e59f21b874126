// qmatmul kernels with AVX512 F/BW/VL/VNNI (built with those flags; called only after a CPU check).
// Decoders, activation quantization and the legacy kernels are the AVX2 ones (qmatmul_simd.h); the k-quant
// and float dot products use 512-bit registers and vpdpwssd.
#include "kernels/cpu/qmatmul_simd.h"

namespace tandem::cpu::avx512 {

namespace {

__m256i fold512(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }

void dot_k(const KBlock* rows, int64_t row_stride, int n_rows, const Q8Group* x, int64_t x_stride, int64_t n_tok,
           int64_t n_blocks, float* y, int64_t ldy) {
  const int64_t n_pairs = static_cast<int64_t>(n_rows) * n_tok;
  for (int64_t first = 0; first < n_pairs; first += 4) {
    const int np = static_cast<int>(std::min<int64_t>(4, n_pairs - first));
    const KBlock* prow[4];
    const Q8Group* px[4];
    float* py[4];
    for (int p = 0; p < 4; ++p) {
      const int64_t pair = first + std::min(p, np - 1);
      const int64_t r = n_tok >= 4 ? pair / n_tok : pair % n_rows, t = n_tok >= 4 ? pair % n_tok : pair / n_rows;
      prow[p] = rows + r * row_stride;
      px[p] = x + t * x_stride;
      py[p] = y + t * ldy + r;
    }
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
      __m256i is1[4], is2[4], ms1[4], ms2[4];
      alignas(16) float dd1[4], dm1[4], dd2[4], dm2[4];
      for (int p = 0; p < 4; ++p) {
        const KBlock& kb = prow[p][b];
        const Q8Group& xg = px[p][b];
        __m512i s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512();
        for (int c = 0; c < 4; ++c) {
          const __m512i q = _mm512_loadu_si512(kb.q + 64 * c);
          const __m512i sc = _mm512_loadu_si512(kb.scale_lanes + 32 * c);
          s1 = _mm512_dpwssd_epi32(s1, _mm512_maddubs_epi16(q, _mm512_loadu_si512(xg.q + 64 * c)), sc);
          s2 = _mm512_dpwssd_epi32(s2, _mm512_maddubs_epi16(q, _mm512_loadu_si512(xg.q2 + 64 * c)), sc);
        }
        is1[p] = fold512(s1);
        is2[p] = fold512(s2);
        const __m256i mins = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb.min));
        ms1[p] = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg.bsum)), mins);
        ms2[p] = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg.bsum2)), mins);
        dd1[p] = kb.d * xg.d;
        dm1[p] = kb.dmin * xg.d;
        dd2[p] = kb.d * xg.d2;
        dm2[p] = kb.dmin * xg.d2;
      }
      acc = _mm_fmadd_ps(_mm_load_ps(dd1), _mm_cvtepi32_ps(simd::reduce4(is1[0], is1[1], is1[2], is1[3])), acc);
      acc = _mm_fnmadd_ps(_mm_load_ps(dm1), _mm_cvtepi32_ps(simd::reduce4(ms1[0], ms1[1], ms1[2], ms1[3])), acc);
      acc = _mm_fmadd_ps(_mm_load_ps(dd2), _mm_cvtepi32_ps(simd::reduce4(is2[0], is2[1], is2[2], is2[3])), acc);
      acc = _mm_fnmadd_ps(_mm_load_ps(dm2), _mm_cvtepi32_ps(simd::reduce4(ms2[0], ms2[1], ms2[2], ms2[3])), acc);
    }
    alignas(16) float out[4];
    _mm_store_ps(out, acc);
    for (int p = 0; p < np; ++p) *py[p] = out[p];
  }
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

const QmatmulKernels kQmatmulKernels{simd::quantize_q8, simd::decode_k, simd::decode_legacy, dot_k, simd::dot_legacy,
                                     dot_float};

}  // namespace tandem::cpu::avx512
