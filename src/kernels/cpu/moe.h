// The routed-expert block on the CPU, shared by CpuBackend::moe and CpuExpertRunner.
//
// The job's (token, slot) pairs are grouped by expert (a counting sort that keeps slot order), so each
// expert's weights are read once for all the tokens that chose it; gate and up products, SwiGLU, down
// product per expert; then each token's slot outputs are summed in slot order, so a token's result does
// not depend on the other tokens of the job. All memory comes from MoeScratch, sized once.
#pragma once

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/matmul.h"
#include "kernels/expert_runner.h"

namespace tandem::cpu {

class MoeScratch {
 public:
  // Grows the buffers for jobs up to `limits` on a pool of n_threads.
  void reserve(const ExpertLimits& limits, int n_threads);
  const ExpertLimits& limits() const { return limits_; }

 private:
  friend void run_experts(ThreadPool& pool, MoeScratch& scratch, const ExpertJob& job);
  ExpertLimits limits_;
  std::vector<int32_t> expert_start;  // [max_experts + 1]
  std::vector<int32_t> slot_order;    // [max_tokens * k]: slots grouped by expert
  std::vector<float> x_in;            // [max_tokens, n_embd]
  std::vector<float> gate, up;        // [max_tokens, max_ff]
  std::vector<float> down;            // [max_tokens, n_embd]
  std::vector<float> slot_out;        // [max_tokens * k, n_embd]
  MatmulScratch matmul_scratch;
};

// Computes `job` (host tensors) on `pool`. Throws std::invalid_argument for shapes beyond the reserved
// limits or expert ids out of range.
void run_experts(ThreadPool& pool, MoeScratch& scratch, const ExpertJob& job);

// Checks the shapes of a job; empty when they agree.
std::string check_expert_job(const ExpertJob& job);

}  // namespace tandem::cpu
