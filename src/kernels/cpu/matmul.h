// Matrix products of the CPU backend over weights in host memory, any computable GGUF type.
//
// Weight types with a qmatmul kernel (qmatmul.h: every type Tandem loads) multiply int8-quantized
// activations (or float32 ones for F32/F16/BF16 weights) tile by tile: output rows are split over the
// pool's threads, each thread decodes a few weight rows at a time into its scratch and multiplies them with
// every token of the call, so each weight is read once per call; results are bit-identical across ISAs and
// independent of the other tokens (batch invariance). Other types fall back to dequantizing kRowBlock rows
// to float32 and the f32 GEMM tiles (gemm.h). Scratch memory is sized once (MatmulScratch::reserve); the
// products allocate nothing.
#pragma once

#include <cstdint>
#include <memory>

#include "core/thread_pool.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/tensor.h"

namespace tandem::cpu {

inline constexpr int64_t kRowBlock = 4;  // weight rows dequantized together by the fallback path

// A 64-byte aligned byte buffer that only grows.
class AlignedBuffer {
 public:
  void reserve(size_t bytes);
  uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

// One aligned buffer per pool thread.
class ThreadScratch {
 public:
  // Grows (never shrinks) to n_threads buffers of `bytes` each.
  void reserve(int n_threads, size_t bytes);
  uint8_t* get(int thread) const { return buffer_.data() + static_cast<size_t>(thread) * stride_; }
  float* floats(int thread) const { return reinterpret_cast<float*>(get(thread)); }
  size_t bytes_per_thread() const { return stride_; }

 private:
  AlignedBuffer buffer_;
  size_t stride_ = 0;
};

// What the products of one pool need: per-thread decode buffers and the call's quantized activations.
struct MatmulScratch {
  ThreadScratch per_thread;
  AlignedBuffer activations;  // [tokens] prepared rows (or [heads][tokens] for per-head products)
  // Room for calls of up to max_tokens tokens times weights of up to max_cols columns, and for per-head
  // products over activations of up to max_width values per token (heads of at least 128 values).
  void reserve(int n_threads, int64_t max_tokens, int64_t max_cols, int64_t max_width = 0);
};

// y[t * ldy + r] = sum_c W[mat][r][c] x[t * ldx + c] for r < w.rows(), t < n. w: host weight {cols, rows, mats}.
// Throws std::invalid_argument for a type the kernels cannot compute or scratch memory too small.
void matmul(ThreadPool& pool, MatmulScratch& scratch, const Tensor& w, int64_t mat, const float* x, int64_t ldx,
            int64_t n, float* y, int64_t ldy);

// The same with the activations already prepared for w's type (prepare_activations) at `prepared`.
void matmul_prepared(ThreadPool& pool, ThreadScratch& scratch, const Tensor& w, int64_t mat, const uint8_t* prepared,
                     const float* x, int64_t ldx, int64_t n, float* y, int64_t ldy);

// Prepares n rows of x for `type`'s kernels into dst (qmatmul.h; nothing when the type needs nothing),
// splitting rows over the pool.
void prepare_activations(ThreadPool& pool, GgmlType type, const float* x, int64_t ldx, int64_t n, int64_t cols,
                         uint8_t* dst);

// The rows [row_begin, row_end) of the product, on the calling thread with `scratch` (the per-thread
// buffer of MatmulScratch), for any type: dequantized float32 rows when there is no qmatmul kernel.
void matmul_rows(const Tensor& w, int64_t mat, int64_t row_begin, int64_t row_end, const float* x, int64_t ldx,
                 int64_t n, float* y, int64_t ldy, uint8_t* scratch);

// Bytes of per-thread scratch for weights of `cols` columns.
size_t matmul_thread_scratch_bytes(int64_t cols);

}  // namespace tandem::cpu
