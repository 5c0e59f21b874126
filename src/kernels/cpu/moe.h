// The routed-expert block on the CPU, shared by CpuBackend::moe and CpuExpertRunner.
//
// The job's (token, slot) pairs are sorted by expert (a counting sort that keeps slot order) and their
// inputs gathered, so each expert's weights are read once for all the tokens that chose it. Then two
// parallel phases over (expert, row tile) tasks, taken dynamically by the pool's threads: gate and up
// products with SwiGLU for a tile of the expert's hidden rows, then the down product for a tile of output
// rows. Finally each token's slot outputs are summed in slot order, so a token's result does not depend on
// the other tokens of the job (or on which thread computed which tile). All memory comes from MoeScratch,
// sized once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
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
  struct Task {
    int32_t expert;
    int32_t row_begin, row_end;
  };
  ExpertLimits limits_;
  std::vector<int32_t> expert_start;   // [max_experts + 1]: sorted slots of expert e start here
  std::vector<int32_t> slot_order;     // [max_tokens * k]: sorted position -> slot (t * k + j)
  std::vector<int32_t> slot_position;  // [max_tokens * k]: slot -> sorted position
  std::vector<float> x_sorted;         // [max_tokens * k, n_embd]
  std::vector<float> act, up;          // [max_tokens * k, max_ff]
  std::vector<float> down;             // [max_tokens * k, n_embd]
  AlignedBuffer x_quantized, act_quantized;  // x_sorted and act rows prepared for the kernels
  std::vector<Task> tasks;             // gate/up tasks, then down tasks
  std::atomic<int64_t> next_task{0};
  // Per expert: its gate/up tasks not yet done, then kExpertReady once its down activations are prepared.
  static constexpr int32_t kExpertReady = -1;
  std::unique_ptr<std::atomic<int32_t>[]> gate_up_left;  // [max_experts]
  std::atomic<bool> failed{false};     // a gate/up task threw: the down tasks stop waiting
  ThreadScratch decode;                // per-thread decode tiles
};

// Computes `job` (host tensors) on `pool`. Throws std::invalid_argument for shapes beyond the reserved
// limits or expert ids out of range.
void run_experts(ThreadPool& pool, MoeScratch& scratch, const ExpertJob& job);

// Checks the shapes of a job; empty when they agree.
std::string check_expert_job(const ExpertJob& job);

}  // namespace tandem::cpu
