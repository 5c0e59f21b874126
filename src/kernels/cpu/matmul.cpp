#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/quant.h"

namespace tandem::cpu {

void AlignedBuffer::Free::operator()(uint8_t* p) const { std::free(p); }

void AlignedBuffer::reserve(size_t bytes) {
  if (bytes <= size_) return;
  const size_t rounded = (bytes + 63) / 64 * 64;
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded);
  data_.reset(p);
  size_ = rounded;
}

void ThreadScratch::reserve(int n_threads, size_t bytes) {
  bytes = std::max((bytes + 63) / 64 * 64, stride_);
  const size_t needed = bytes * static_cast<size_t>(n_threads);
  if (bytes == stride_ && buffer_.size() >= needed) return;
  buffer_.reserve(needed);
  stride_ = bytes;
}

size_t matmul_thread_scratch_bytes(int64_t cols) {
  // The fallback dequantizes kRowBlock float rows; qmatmul decodes tiles; a q8 row for matmul_rows' own use.
  return std::max(static_cast<size_t>(kRowBlock * cols) * sizeof(float), qmatmul_scratch_bytes(cols)) +
         max_prepared_row_bytes(cols) * static_cast<size_t>(kRowBlock) + 64;
}

void MatmulScratch::reserve(int n_threads, int64_t max_tokens, int64_t max_cols, int64_t max_width) {
  per_thread.reserve(n_threads, matmul_thread_scratch_bytes(max_cols));
  // Heads of 128 values take a whole group of 256 each: twice the bytes of the same values in one row.
  const size_t per_token = std::max(max_prepared_row_bytes(max_cols), 2 * max_prepared_row_bytes(max_width));
  activations.reserve(per_token * static_cast<size_t>(std::max<int64_t>(max_tokens, 1)));
}

namespace {

// Dequantize kRowBlock rows at a time and multiply them with every token in float32.
void fallback_rows(const Tensor& w, int64_t mat, int64_t row_begin, int64_t row_end, const float* x, int64_t ldx,
                   int64_t n, float* y, int64_t ldy, float* scratch) {
  const int64_t cols = w.cols();
  for (int64_t r = row_begin; r < row_end; r += kRowBlock) {
    const int64_t count = std::min(kRowBlock, row_end - r);
    for (int64_t i = 0; i < count; ++i) dequantize_row(w.type, w.row(r + i, mat), scratch + i * cols, cols);
    gemm_f32(scratch, cols, count, x, ldx, n, cols, y + r, ldy);
  }
}

}  // namespace

void prepare_activations(ThreadPool& pool, GgmlType type, const float* x, int64_t ldx, int64_t n, int64_t cols,
                         uint8_t* dst) {
  const ActivationPrecision precision = selected_activation_precision();
  if (!has_fast_matmul(type) || !needs_prepared_activations(type, precision)) return;
  const MatmulIsa isa = selected_matmul_isa();
  const size_t row_bytes = prepared_row_bytes(type, precision, cols);
  if (n < 16) {
    prepare_activation_rows(isa, type, precision, x, ldx, n, cols, dst);
    return;
  }
  Status s = pool.parallel_for(n, [&](int64_t begin, int64_t end) {
    prepare_activation_rows(isa, type, precision, x + begin * ldx, ldx, end - begin, cols,
                            dst + static_cast<size_t>(begin) * row_bytes);
  });
  if (!s) throw std::runtime_error(s.message());
}

void matmul_prepared(ThreadPool& pool, ThreadScratch& scratch, const Tensor& w, int64_t mat, const uint8_t* prepared,
                     const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy) {
  if (!has_fast_matmul(w.type)) throw std::invalid_argument("matmul_prepared: no kernel for this weight type");
  if (scratch.bytes_per_thread() < qmatmul_scratch_bytes(w.cols())) {
    throw std::invalid_argument("cpu matmul: scratch memory not reserved for rows of this width");
  }
  const MatmulIsa isa = selected_matmul_isa();
  const int64_t tiles = (w.rows() + kTileRows - 1) / kTileRows;
  Status s = pool.parallel_for(tiles, [&](int64_t begin, int64_t end, int thread) {
    qmatmul_rows(isa, selected_activation_precision(), w, mat, begin * kTileRows, std::min(w.rows(), end * kTileRows),
                 prepared, x, ldx, n, y, ldy, scratch.get(thread));
  });
  if (!s) throw std::runtime_error(s.message());
}

void matmul(ThreadPool& pool, MatmulScratch& scratch, const Tensor& w, int64_t mat, const float* x, int64_t ldx,
            int64_t n, float* y, int64_t ldy) {
  if (scratch.per_thread.bytes_per_thread() < matmul_thread_scratch_bytes(w.cols())) {
    throw std::invalid_argument("cpu matmul: scratch memory not reserved for rows of this width");
  }
  if (has_fast_matmul(w.type)) {
    const uint8_t* prepared = nullptr;
    if (needs_prepared_activations(w.type, selected_activation_precision())) {
      if (scratch.activations.size() < max_prepared_row_bytes(w.cols()) * static_cast<size_t>(n)) {
        throw std::invalid_argument("cpu matmul: activation scratch not reserved for this many tokens");
      }
      prepare_activations(pool, w.type, x, ldx, n, w.cols(), scratch.activations.data());
      prepared = scratch.activations.data();
    }
    matmul_prepared(pool, scratch.per_thread, w, mat, prepared, x, ldx, n, y, ldy);
    return;
  }
  Status s = pool.parallel_for(w.rows(), [&](int64_t begin, int64_t end, int thread) {
    fallback_rows(w, mat, begin, end, x, ldx, n, y, ldy, scratch.per_thread.floats(thread));
  });
  if (!s) throw std::runtime_error(s.message());
}

void matmul_rows(const Tensor& w, int64_t mat, int64_t row_begin, int64_t row_end, const float* x, int64_t ldx,
                 int64_t n, float* y, int64_t ldy, uint8_t* scratch) {
  if (!has_fast_matmul(w.type)) {
    fallback_rows(w, mat, row_begin, row_end, x, ldx, n, y, ldy, reinterpret_cast<float*>(scratch));
    return;
  }
  const MatmulIsa isa = selected_matmul_isa();
  const ActivationPrecision precision = selected_activation_precision();
  if (!needs_prepared_activations(w.type, precision)) {
    qmatmul_rows(isa, precision, w, mat, row_begin, row_end, nullptr, x, ldx, n, y, ldy, scratch);
    return;
  }
  // Few tokens (the per-head products of attention): prepare them here, after the decode tile.
  const size_t tile = qmatmul_scratch_bytes(w.cols());
  for (int64_t t0 = 0; t0 < n; t0 += kRowBlock) {
    const int64_t count = std::min(kRowBlock, n - t0);
    uint8_t* prepared = scratch + tile;
    prepare_activation_rows(isa, w.type, precision, x + t0 * ldx, ldx, count, w.cols(), prepared);
    qmatmul_rows(isa, precision, w, mat, row_begin, row_end, prepared, x + t0 * ldx, ldx, count, y + t0 * ldy, ldy,
                 scratch);
  }
}

}  // namespace tandem::cpu
