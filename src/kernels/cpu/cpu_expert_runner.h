// CpuExpertRunner: the ExpertRunner on the CPU, with its own thread pool.
//
// A dispatcher thread takes each submitted job and computes it (moe.h) with the runner's pool (the
// dispatcher takes part as one of its threads), so the submitting thread is free until wait(). Give the
// runner and the engine's backend separate cores when both have work at once (shared experts or GPU work
// overlapping the routed experts); on a few cores they may share them.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "core/thread_pool.h"
#include "kernels/cpu/moe.h"
#include "kernels/expert_runner.h"

namespace tandem {

class CpuExpertRunner final : public ExpertRunner {
 public:
  explicit CpuExpertRunner(int n_threads);  // <= 0: all cores
  ~CpuExpertRunner() override;

  std::string describe() const override;
  int threads() const { return pool_.size(); }
  Status prepare(const ExpertLimits& limits) override;
  void submit(const ExpertJob& job) override;
  Status wait() override;
  double busy_seconds() const override;

 private:
  void dispatch_loop();

  ThreadPool pool_;
  cpu::MoeScratch scratch_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  ExpertJob job_;
  bool has_job_ = false;   // submitted, not yet finished
  bool stopping_ = false;
  std::string error_;      // the finished job's error (capacity reserved)
  bool failed_ = false;
  double busy_seconds_ = 0;
  std::thread dispatcher_;
};

}  // namespace tandem
