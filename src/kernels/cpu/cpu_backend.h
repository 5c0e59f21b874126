// CpuBackend: the Backend on host memory, with the kernels of this folder for each tensor type.
//
// Weights are copied to huge-page memory at load (host_weights.h), or used in place (the mapped GGUF) when
// asked; alloc() returns 64-byte aligned, zero-filled host memory.
// Operations run at once on the calling thread and the backend's pool: matmul splits output rows over the
// threads (matmul.h), attention splits (token, head) pairs, so no reduction is ever split and every result
// is independent of the step's other tokens. Operations and prepare() are not thread-safe: one engine
// thread drives a backend. With TANDEM_PROFILE_OPS=1 in the environment the backend times every
// operation (matmuls by weight shape and type) and prints the table to stderr when destroyed.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/host_weights.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/moe.h"

namespace tandem {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads);  // <= 0: all cores
  ~CpuBackend() override;

  Device device() const override { return Device::cpu(); }
  std::string describe() const override;
  int threads() const { return pool_.size(); }
  ThreadPool& pool() { return pool_; }  // for a CpuExpertRunner that takes turns with this backend
  // Keep weights in the caller's memory (the mapped file) instead of copying them to huge pages.
  void keep_weights_in_place(bool in_place) { weights_in_place_ = in_place; }

  Result<Tensor> alloc(GgmlType type, std::array<int64_t, 3> ne, const char* name) override;
  Result<Tensor> alloc_host(GgmlType type, std::array<int64_t, 3> ne, const char* name) override {
    return alloc(type, ne, name);
  }
  Result<Tensor> load_weight(const Tensor& host) override;
  Status prepare(const StepLimits& limits) override;
  size_t allocated_bytes() const override { return allocated_bytes_ + weights_.bytes(); }

  void upload(const void* host, const Tensor& dst) override;
  void download(const Tensor& src, void* host) override;

  void embed(const Tensor& table, const Tensor& ids, const Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) override;
  void matmul(const Tensor& w, int64_t mat, const Tensor& x, const Tensor& y) override;
  void matmul_heads(const Tensor& w, const Tensor& x, const Tensor& y) override;
  void matmul_heads_transposed(const Tensor& w, const Tensor& x, const Tensor& y) override;
  void add(const Tensor& a, const Tensor& b, const Tensor& out) override;
  void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) override;
  void rope(const Tensor& x, const Tensor& positions, const RopeSpec& spec) override;
  void store_kv(const Tensor& src, const Tensor& cache, int64_t col_offset, const PagedBatch& batch) override;
  void attention(const Tensor& q, const Tensor& cache, const KvLayout& layout, const PagedBatch& batch, float scale,
                 const Tensor& out) override;
  void route(const Tensor& logits, const Tensor& bias, const RouterConfig& config, const Tensor& ids,
             const Tensor& weights) override;
  void moe(const ExpertWeights& experts, const Tensor& x, const Tensor& ids, const Tensor& weights,
           const Tensor& out) override;
  Status sync() override;

 private:
  // Runs op unless an earlier one failed; an exception it throws becomes the recorded error.
  template <typename Op>
  void guarded(const char* name, Op&& op);
  void fail(const char* op, const std::string& message);

  // Time per operation kind, kept without allocating (a fixed table; kinds past its end are dropped).
  struct OpTime {
    const char* op = nullptr;
    std::array<int64_t, 2> shape{};  // matmul: weight rows and columns
    GgmlType type = GgmlType::F32;   // matmul: weight type
    double seconds = 0;
    int64_t calls = 0;
  };
  void record(const char* op, std::array<int64_t, 2> shape, GgmlType type, double seconds);
  void print_profile() const;
  bool profiling_ = false;
  std::array<OpTime, 64> profile_{};
  std::array<int64_t, 2> profile_shape_{};  // set by the operation being run, for record()
  GgmlType profile_type_ = GgmlType::F32;

  ThreadPool pool_;
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> buffers_;
  size_t allocated_bytes_ = 0;
  int64_t max_weight_cols_ = 0;
  StepLimits limits_;
  cpu::MatmulScratch matmul_scratch_;     // decoded weight tiles, quantized activations
  cpu::ThreadScratch attention_scratch_;  // scores over the attention span
  cpu::MoeScratch moe_scratch_;
  cpu::HostWeights weights_;
  bool weights_in_place_ = false;
  std::string error_;                     // first failure since the last sync()
};

}  // namespace tandem
