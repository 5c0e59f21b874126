#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/quant.h"

namespace tandem::cpu {

void ThreadScratch::reserve(int n_threads, size_t floats) {
  floats = std::max(floats, stride_);
  const size_t needed = floats * static_cast<size_t>(n_threads);
  if (floats == stride_ && data_.size() >= needed) return;
  stride_ = floats;
  data_.assign(needed, 0.0f);
}

void matmul_rows(const Tensor& w, int64_t mat, int64_t row_begin, int64_t row_end, const float* x, int64_t ldx,
                 int64_t n, float* y, int64_t ldy, float* scratch) {
  const int64_t cols = w.cols();
  for (int64_t r = row_begin; r < row_end; r += kRowBlock) {
    const int64_t count = std::min(kRowBlock, row_end - r);
    const float* block;
    int64_t ldw = cols;
    if (w.type == GgmlType::F32) {
      block = w.row<const float>(r, mat);
      ldw = static_cast<int64_t>(w.nb[1] / sizeof(float));
    } else {
      for (int64_t i = 0; i < count; ++i) dequantize_row(w.type, w.row(r + i, mat), scratch + i * cols, cols);
      block = scratch;
    }
    gemm_f32(block, ldw, count, x, ldx, n, cols, y + r, ldy);
  }
}

void matmul(ThreadPool& pool, ThreadScratch& scratch, const Tensor& w, int64_t mat, const float* x, int64_t ldx,
            int64_t n, float* y, int64_t ldy) {
  if (w.type != GgmlType::F32 && scratch.floats_per_thread() < matmul_scratch_floats(w.cols())) {
    throw std::invalid_argument("cpu matmul: scratch memory not reserved for rows of this width");
  }
  Status s = pool.parallel_for(w.rows(), [&](int64_t begin, int64_t end, int thread) {
    matmul_rows(w, mat, begin, end, x, ldx, n, y, ldy, scratch.get(thread));
  });
  if (!s) throw std::runtime_error(s.message());
}

}  // namespace tandem::cpu
