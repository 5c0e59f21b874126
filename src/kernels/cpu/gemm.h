// Float32 matrix products for the matmul of the CPU backend: several weight rows times several tokens.
//
// y[t * ldy + r] = sum_i w[r * ldw + i] * x[t * ldx + i], i < k, for r < n_rows, t < n_tokens.
// Every output uses the same reduction, whatever the tile it is computed in: term i is fused-multiply-
// added into lane i % 8 of one accumulator, in increasing i, and the 8 lanes are summed as
// ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)). So an output does not depend on how many rows or
// tokens share the call (batch invariance). The AVX2 path computes tiles of 4 rows x 2 tokens to reuse
// each load; the scalar path computes the same values with std::fma.
#pragma once

#include <cstdint>

namespace tandem::cpu {

void gemm_f32(const float* w, int64_t ldw, int64_t n_rows, const float* x, int64_t ldx, int64_t n_tokens, int64_t k,
              float* y, int64_t ldy);

// The transposed product, row by row: y[c] = fma(a[r], w[r * ldw + c], y[c]) for r = 0 .. n_rows - 1 in
// that order, c < n. Each output is its own chain of fused multiply-adds, so every path gives the same
// bits and an output does not depend on the other tokens of a call.
void axpy_rows(const float* w, int64_t ldw, int64_t n_rows, const float* a, float* y, int64_t n);

namespace scalar {
void axpy_rows(const float* w, int64_t ldw, int64_t n_rows, const float* a, float* y, int64_t n);
void gemm_f32(const float* w, int64_t ldw, int64_t n_rows, const float* x, int64_t ldx, int64_t n_tokens, int64_t k,
              float* y, int64_t ldy);
}
namespace avx2 {
void axpy_rows(const float* w, int64_t ldw, int64_t n_rows, const float* a, float* y, int64_t n);
void gemm_f32(const float* w, int64_t ldw, int64_t n_rows, const float* x, int64_t ldx, int64_t n_tokens, int64_t k,
              float* y, int64_t ldy);
}

}  // namespace tandem::cpu
