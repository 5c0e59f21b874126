// AVX2 tiles of gemm_f32 (see gemm.h for the reduction every output follows).
#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/gemm.h"

namespace tandem::cpu::avx2 {

namespace {

inline float lane_sum(__m256 acc) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));  // l0+l4 .. l3+l7
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));  // (l0+l4)+(l2+l6), (l1+l5)+(l3+l7)
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// Lanes of the tail (k % 8 terms) with the same per-lane order as the vector loop.
inline __m256 tail_fma(const float* a, const float* b, int64_t begin, int64_t k, __m256 acc) {
  alignas(32) float lane[8];
  _mm256_store_ps(lane, acc);
  for (int64_t i = begin; i < k; ++i) lane[i % 8] = std::fma(a[i], b[i], lane[i % 8]);
  return _mm256_load_ps(lane);
}

// R rows x T tokens: R*T accumulators, each weight and activation load reused T or R times.
template <int R, int T>
void tile(const float* w, int64_t ldw, const float* x, int64_t ldx, int64_t k, float* y, int64_t ldy) {
  // The loops over R and T must be fully unrolled so the accumulators live in registers.
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  const int64_t k8 = k - k % 8;
  for (int64_t i = 0; i < k8; i += 8) {
    __m256 xv[T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * ldx + i);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = _mm256_loadu_ps(w + r * ldw + i);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      if (k8 < k) acc[r][t] = tail_fma(w + r * ldw, x + t * ldx, k8, k, acc[r][t]);
      y[t * ldy + r] = lane_sum(acc[r][t]);
    }
  }
}

template <int R>
void rows_by_tokens(const float* w, int64_t ldw, const float* x, int64_t ldx, int64_t n_tokens, int64_t k, float* y,
                    int64_t ldy) {
  int64_t t = 0;
  for (; t + 2 <= n_tokens; t += 2) tile<R, 2>(w, ldw, x + t * ldx, ldx, k, y + t * ldy, ldy);
  if (t < n_tokens) tile<R, 1>(w, ldw, x + t * ldx, ldx, k, y + t * ldy, ldy);
}

}  // namespace

void axpy_rows(const float* w, int64_t ldw, int64_t n_rows, const float* a, float* y, int64_t n) {
  int64_t c = 0;
  for (; c + 16 <= n; c += 16) {  // two vectors of outputs stay in registers across the rows
    __m256 y0 = _mm256_loadu_ps(y + c), y1 = _mm256_loadu_ps(y + c + 8);
    for (int64_t r = 0; r < n_rows; ++r) {
      const __m256 ar = _mm256_set1_ps(a[r]);
      y0 = _mm256_fmadd_ps(ar, _mm256_loadu_ps(w + r * ldw + c), y0);
      y1 = _mm256_fmadd_ps(ar, _mm256_loadu_ps(w + r * ldw + c + 8), y1);
    }
    _mm256_storeu_ps(y + c, y0);
    _mm256_storeu_ps(y + c + 8, y1);
  }
  for (; c < n; ++c) {
    for (int64_t r = 0; r < n_rows; ++r) y[c] = std::fma(a[r], w[r * ldw + c], y[c]);
  }
}

void gemm_f32(const float* w, int64_t ldw, int64_t n_rows, const float* x, int64_t ldx, int64_t n_tokens, int64_t k,
              float* y, int64_t ldy) {
  int64_t r = 0;
  for (; r + 4 <= n_rows; r += 4) rows_by_tokens<4>(w + r * ldw, ldw, x, ldx, n_tokens, k, y + r, ldy);
  for (; r < n_rows; ++r) rows_by_tokens<1>(w + r * ldw, ldw, x, ldx, n_tokens, k, y + r, ldy);
}

}  // namespace tandem::cpu::avx2
