// Matrix products of the CPU backend over weights in host memory, any computable GGUF type.
//
// Output rows are split over the pool's threads; each thread dequantizes kRowBlock weight rows at a time
// into its scratch buffer and multiplies them with every token (gemm.h), so each weight is read once per
// call and every output keeps the fixed reduction order of gemm_f32 (batch invariance). Scratch memory is
// sized once (ThreadScratch::reserve); the products allocate nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/tensor.h"

namespace tandem::cpu {

inline constexpr int64_t kRowBlock = 4;  // weight rows dequantized together

// One float buffer per pool thread.
class ThreadScratch {
 public:
  // Grows (never shrinks) to n_threads buffers of `floats` each.
  void reserve(int n_threads, size_t floats);
  float* get(int thread) { return data_.data() + static_cast<size_t>(thread) * stride_; }
  size_t floats_per_thread() const { return stride_; }

 private:
  std::vector<float> data_;
  size_t stride_ = 0;
};

// Floats of scratch a thread needs to multiply weights with rows of `cols` values.
inline size_t matmul_scratch_floats(int64_t cols) { return static_cast<size_t>(kRowBlock * cols); }

// y[t * ldy + r] = sum_c W[mat][r][c] x[t * ldx + c] for r < w.rows(), t < n. w: host weight {cols, rows, mats}.
// Throws std::invalid_argument for a type the kernels cannot compute or a scratch buffer too small.
void matmul(ThreadPool& pool, ThreadScratch& scratch, const Tensor& w, int64_t mat, const float* x, int64_t ldx,
            int64_t n, float* y, int64_t ldy);

// The rows [row_begin, row_end) of the product above, on the calling thread with `scratch`.
void matmul_rows(const Tensor& w, int64_t mat, int64_t row_begin, int64_t row_end, const float* x, int64_t ldx,
                 int64_t n, float* y, int64_t ldy, float* scratch);

}  // namespace tandem::cpu
