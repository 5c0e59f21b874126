#include "kernels/cpu/cpu_expert_runner.h"

#include <chrono>
#include <exception>

#include <fmt/format.h>

#include "kernels/cpu/quant.h"

namespace tandem {

CpuExpertRunner::CpuExpertRunner(int n_threads) : pool_(n_threads) {
  error_.reserve(512);
  dispatcher_ = std::thread([this] { dispatch_loop(); });
}

CpuExpertRunner::~CpuExpertRunner() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  dispatcher_.join();
}

std::string CpuExpertRunner::describe() const {
  return fmt::format("cpu experts ({} threads, {} kernels)", pool_.size(), cpu::isa_name(cpu::best_isa()));
}

Status CpuExpertRunner::prepare(const ExpertLimits& limits) {
  std::lock_guard lock(mutex_);
  if (has_job_) return Status::error("cpu expert runner: prepare() while a job runs");
  try {
    scratch_.reserve(limits, pool_.size());
  } catch (const std::bad_alloc&) {
    return Status::error("cpu expert runner: out of memory for scratch buffers");
  }
  return Status::ok();
}

void CpuExpertRunner::submit(const ExpertJob& job) {
  {
    std::lock_guard lock(mutex_);
    if (has_job_) {  // a caller bug; report it on wait() rather than lose the running job
      if (!failed_) error_ = "cpu expert runner: submit() while a job is in flight";
      failed_ = true;
      return;
    }
    job_ = job;
    has_job_ = true;
    failed_ = false;
  }
  changed_.notify_all();
}

Status CpuExpertRunner::wait() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return !has_job_; });
  if (!failed_) return Status::ok();
  failed_ = false;
  return Status::error(error_);
}

double CpuExpertRunner::busy_seconds() const {
  std::lock_guard lock(mutex_);
  return busy_seconds_;
}

void CpuExpertRunner::dispatch_loop() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || has_job_; });
      if (stopping_) return;
    }
    const auto started = std::chrono::steady_clock::now();
    const char* failure = nullptr;
    try {
      cpu::run_experts(pool_, scratch_, job_);
    } catch (const std::exception& e) {
      failure = e.what();
      std::lock_guard lock(mutex_);
      error_.assign("cpu expert runner: ");
      error_.append(failure);
    } catch (...) {
      failure = "unknown error";
      std::lock_guard lock(mutex_);
      error_.assign("cpu expert runner: unknown error");
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    {
      std::lock_guard lock(mutex_);
      busy_seconds_ += seconds;
      failed_ = failure != nullptr;
      has_job_ = false;
    }
    changed_.notify_all();
  }
}

}  // namespace tandem
