// qmatmul kernels with AVX2 + FMA (built with -mavx2 -mfma -mf16c; called only after a CPU check).
#include "kernels/cpu/qmatmul_simd.h"

namespace tandem::cpu::avx2 {

namespace {

// K-quant blocks, 4 (row, token) pairs at a time: per block, per pair, 8 chunks of 32 codes times 32
// activations (16-bit pair sums, times the 16-bit scales, summed to 32 bits), then the exact per-pair sums
// to float in one vector.
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
        __m256i s1 = _mm256_setzero_si256(), s2 = _mm256_setzero_si256();
        for (int c = 0; c < 8; ++c) {
          const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb.q + 32 * c));
          const __m256i sc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kb.scale_lanes + 16 * c));
          const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg.q + 32 * c));
          const __m256i x2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xg.q2 + 32 * c));
          s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(q, x1), sc));
          s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(_mm256_maddubs_epi16(q, x2), sc));
        }
        is1[p] = s1;
        is2[p] = s2;
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

}  // namespace

const QmatmulKernels kQmatmulKernels{simd::quantize_q8, simd::decode_k, simd::decode_legacy, dot_k, simd::dot_legacy,
                                     simd::dot_float_avx2};

}  // namespace tandem::cpu::avx2
