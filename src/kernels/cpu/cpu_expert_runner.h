// CpuExpertRunner: the ExpertRunner on the CPU, with its own thread pool.
//
// With its own pool (CpuExpertRunner(n_threads)), a dispatcher thread takes each submitted job and computes
// it (moe.h) with that pool (the dispatcher takes part as one of its threads), so the submitting thread is
// free until wait(): give the runner cores of its own for that overlap (shared experts or GPU work beside
// the routed experts). Jobs come once per MoE layer, a GPU layer apart (a few hundred microseconds in a
// decode step), so the dispatcher and the pool's workers spin for kSpinMicroseconds between jobs before
// they sleep: waking sleeping threads would add tens of microseconds to every layer. Sharing a pool (CpuExpertRunner(pool), for a CPU-only engine whose backend and
// experts take turns on the same cores) computes each job at once on the submitting thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/thread_pool.h"
#include "kernels/cpu/host_weights.h"
#include "kernels/cpu/moe.h"
#include "kernels/expert_runner.h"

namespace tandem {

class CpuExpertRunner final : public ExpertRunner {
 public:
  static constexpr int kSpinMicroseconds = 2000;

  explicit CpuExpertRunner(int n_threads);  // its own pool and dispatcher; n_threads <= 0: all cores
  explicit CpuExpertRunner(ThreadPool& shared_pool);  // jobs run inline on `shared_pool` (must outlive the runner)
  ~CpuExpertRunner() override;

  std::string describe() const override;
  int threads() const { return pool_->size(); }
  bool inline_jobs() const { return !own_pool_; }
  Result<Tensor> load_weight(const Tensor& host) override;
  Status prepare(const ExpertLimits& limits) override;
  // Keep weights in the caller's memory (the mapped file) instead of copying them to huge pages.
  void keep_weights_in_place(bool in_place) { weights_in_place_ = in_place; }
  void submit(const ExpertJob& job) override;
  Status wait() override;
  double busy_seconds() const override;
  int64_t jobs_done() const override;
  int64_t experts_read() const override;

 private:
  void dispatch_loop();
  // Computes job_ on the calling thread; records the outcome. Returns seconds spent.
  double compute();

  std::unique_ptr<ThreadPool> own_pool_;
  ThreadPool* pool_;
  cpu::MoeScratch scratch_;
  cpu::HostWeights weights_;
  bool weights_in_place_ = false;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  ExpertJob job_;
  std::atomic<bool> has_job_{false};  // submitted, not yet finished (written under mutex_; wait() spins on it)
  std::atomic<bool> job_waiting_{false};  // submitted, not yet taken by the dispatcher (read while spinning)
  std::atomic<bool> stopping_{false};
  // wait() spins this long for the job before it sleeps: a layer's experts take hundreds of microseconds
  // at decode, and waking the sleeping caller (the GPU's host thread) would add tens to every layer.
  int wait_spin_microseconds_ = 0;
  std::string error_;      // the finished job's error (capacity reserved)
  bool failed_ = false;
  double busy_seconds_ = 0;
  int64_t jobs_done_ = 0, experts_read_ = 0;
  std::thread dispatcher_;
};

}  // namespace tandem
