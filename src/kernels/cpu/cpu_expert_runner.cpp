#include "kernels/cpu/cpu_expert_runner.h"

#include <algorithm>
#include <bitset>
#include <chrono>
#include <exception>

#include <fmt/format.h>

#include "core/spin_wait.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/routing.h"

namespace tandem {

CpuExpertRunner::CpuExpertRunner(int n_threads)
    : own_pool_(std::make_unique<ThreadPool>(n_threads, kSpinMicroseconds)), pool_(own_pool_.get()) {
  error_.reserve(512);
  // The waiting thread spins only where it has a core beside the pool's: spinning on one of the pool's
  // cores would slow the job it waits for.
  const unsigned cores = std::thread::hardware_concurrency();
  if (cores > 0 && static_cast<unsigned>(pool_->size()) < cores) wait_spin_microseconds_ = kSpinMicroseconds;
  dispatcher_ = std::thread([this] { dispatch_loop(); });
}

CpuExpertRunner::CpuExpertRunner(ThreadPool& shared_pool) : pool_(&shared_pool) { error_.reserve(512); }

CpuExpertRunner::~CpuExpertRunner() {
  if (!dispatcher_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  dispatcher_.join();
}

std::string CpuExpertRunner::describe() const {
  return fmt::format("cpu experts ({} threads{}, {} kernels, {} activations)", pool_->size(),
                     own_pool_ ? "" : " shared with the backend", cpu::matmul_isa_name(cpu::selected_matmul_isa()),
                     cpu::activation_precision_name(cpu::selected_activation_precision()));
}

Result<Tensor> CpuExpertRunner::load_weight(const Tensor& host) {
  if (!host.device.is_cpu()) return Status::error(fmt::format("cpu expert runner: {} is not in host memory", host.name));
  if (!cpu::has_fast_matmul(host.type)) {
    return Status::error(fmt::format("cpu expert runner: no kernel for type {} ({})", ggml_type_name(host.type), host.name));
  }
  if (weights_in_place_) return host;
  return weights_.copy(host, *pool_);
}

Status CpuExpertRunner::prepare(const ExpertLimits& limits) {
  std::lock_guard lock(mutex_);
  if (has_job_) return Status::error("cpu expert runner: prepare() while a job runs");
  try {
    scratch_.reserve(limits, pool_->size());
  } catch (const std::bad_alloc&) {
    return Status::error("cpu expert runner: out of memory for scratch buffers");
  }
  return Status::ok();
}

void CpuExpertRunner::submit(const ExpertJob& job) {
  if (!own_pool_) {  // inline: compute now; wait() reports
    job_ = job;
    has_job_ = true;
    const double seconds = compute();
    std::lock_guard lock(mutex_);
    busy_seconds_ += seconds;
    has_job_ = false;
    return;
  }
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
    job_waiting_.store(true, std::memory_order_release);
  }
  changed_.notify_all();
}

Status CpuExpertRunner::wait() {
  spin_until(std::chrono::microseconds(wait_spin_microseconds_),
             [this] { return !has_job_.load(std::memory_order_acquire); });
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

int64_t CpuExpertRunner::jobs_done() const {
  std::lock_guard lock(mutex_);
  return jobs_done_;
}

int64_t CpuExpertRunner::experts_read() const {
  std::lock_guard lock(mutex_);
  return experts_read_;
}

namespace {
// Distinct valid expert ids of a job (no allocation: a bitset over the largest supported expert count).
int64_t distinct_experts(const ExpertJob& job) {
  std::bitset<kMaxExperts> seen;
  const int64_t n_experts = std::min<int64_t>(job.experts.gate.slices(), kMaxExperts);
  for (int64_t t = 0; t < job.ids.rows(); ++t) {
    const int32_t* ids = job.ids.row<const int32_t>(t);
    for (int64_t j = 0; j < job.ids.cols(); ++j) {
      if (ids[j] >= 0 && ids[j] < n_experts) seen.set(static_cast<size_t>(ids[j]));
    }
  }
  return static_cast<int64_t>(seen.count());
}
}  // namespace

double CpuExpertRunner::compute() {
  const auto started = std::chrono::steady_clock::now();
  bool failure = false;
  try {
    cpu::run_experts(*pool_, scratch_, job_);
  } catch (const std::exception& e) {
    failure = true;
    std::lock_guard lock(mutex_);
    error_.assign("cpu expert runner: ");
    error_.append(e.what());
  } catch (...) {
    failure = true;
    std::lock_guard lock(mutex_);
    error_.assign("cpu expert runner: unknown error");
  }
  const int64_t distinct = distinct_experts(job_);
  std::lock_guard lock(mutex_);
  failed_ = failure;
  ++jobs_done_;
  experts_read_ += distinct;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

void CpuExpertRunner::dispatch_loop() {
  for (;;) {
    spin_until(std::chrono::microseconds(kSpinMicroseconds),
               [this] { return job_waiting_.load(std::memory_order_acquire) || stopping_.load(); });
    {
      std::unique_lock lock(mutex_);
      changed_.wait(lock, [this] { return stopping_ || has_job_; });
      if (stopping_) return;
      job_waiting_.store(false, std::memory_order_relaxed);
    }
    const double seconds = compute();
    {
      std::lock_guard lock(mutex_);
      busy_seconds_ += seconds;
      has_job_ = false;
    }
    changed_.notify_all();
  }
}

}  // namespace tandem
