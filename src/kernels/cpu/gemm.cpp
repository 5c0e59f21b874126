#include "kernels/cpu/gemm.h"

#include <cmath>

#include "kernels/cpu/quant.h"

namespace tandem::cpu {

namespace scalar {

void gemm_f32(const float* w, int64_t ldw, int64_t n_rows, const float* x, int64_t ldx, int64_t n_tokens, int64_t k,
              float* y, int64_t ldy) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = 0; r < n_rows; ++r) {
      const float* a = w + r * ldw;
      const float* b = x + t * ldx;
      float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (int64_t i = 0; i < k; ++i) lane[i % 8] = std::fma(a[i], b[i], lane[i % 8]);
      y[t * ldy + r] = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
    }
  }
}

void axpy_rows(const float* w, int64_t ldw, int64_t n_rows, const float* a, float* y, int64_t n) {
  for (int64_t r = 0; r < n_rows; ++r) {
    for (int64_t c = 0; c < n; ++c) y[c] = std::fma(a[r], w[r * ldw + c], y[c]);
  }
}

}  // namespace scalar

void axpy_rows(const float* w, int64_t ldw, int64_t n_rows, const float* a, float* y, int64_t n) {
  static const bool use_avx2 = isa_supported(Isa::Avx2);
  if (use_avx2) {
    avx2::axpy_rows(w, ldw, n_rows, a, y, n);
  } else {
    scalar::axpy_rows(w, ldw, n_rows, a, y, n);
  }
}

void gemm_f32(const float* w, int64_t ldw, int64_t n_rows, const float* x, int64_t ldx, int64_t n_tokens, int64_t k,
              float* y, int64_t ldy) {
  static const bool use_avx2 = isa_supported(Isa::Avx2);
  if (use_avx2) {
    avx2::gemm_f32(w, ldw, n_rows, x, ldx, n_tokens, k, y, ldy);
  } else {
    scalar::gemm_f32(w, ldw, n_rows, x, ldx, n_tokens, k, y, ldy);
  }
}

}  // namespace tandem::cpu
