// CpuBackend: the Backend on host memory, using the kernels of kernels/cpu for each tensor type.
//
// Each matmul output row is computed entirely by one thread: the row is dequantized once into a
// per-thread float buffer and dotted with every token (weights read once per call, fixed reduction
// order per row). The MoE block groups the call's tokens by expert so each expert is read once.
#pragma once

#include <memory>

#include "core/thread_pool.h"
#include "kernels/backend.h"

namespace tandem {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads);
  ~CpuBackend() override;

  Device device() const override { return Device::Cpu; }
  std::string describe() const override;
  void matmul(const WeightTensor& w, int64_t mat, const float* x, int64_t n_tokens, float* y) override;
  void get_rows(const WeightTensor& w, const int32_t* ids, int64_t n, float* out) override;
  void moe(const ExpertWeights& experts, const float* x, int64_t n_tokens, int k, const int32_t* ids,
           const float* weights, float* out) override;
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) override;
  double expert_seconds() const override { return expert_seconds_; }

 private:
  ThreadPool pool_;
  double expert_seconds_ = 0.0;
};

}  // namespace tandem
