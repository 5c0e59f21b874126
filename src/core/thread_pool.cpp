#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include "core/spin_wait.h"

namespace tandem {

namespace {
// The slice [begin, end) of n items that thread `index` of `count` owns.
std::pair<int64_t, int64_t> slice(int64_t n, int index, int count) {
  const int64_t base = n / count, extra = n % count;
  const int64_t begin = index * base + std::min<int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

}  // namespace

ThreadPool::ThreadPool(int n_threads, int spin_microseconds)
    : n_threads_(n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
      spin_(std::max(0, spin_microseconds)) {
  error_.reserve(256);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_slice(int index, int count) {
  auto [b, e] = slice(job_size_, index, count);
  if (b >= e) return;
  try {
    (*job_)(b, e, index);
  } catch (const std::exception& ex) {
    std::lock_guard lock(error_mutex_);
    if (!failed_) error_.assign(ex.what(), std::min<size_t>(std::char_traits<char>::length(ex.what()), error_.capacity()));
    failed_ = true;
  } catch (...) {
    std::lock_guard lock(error_mutex_);
    if (!failed_) error_.assign("unknown exception in a parallel loop");
    failed_ = true;
  }
}

Status ThreadPool::parallel_for(int64_t n, Body fn) {
  if (n <= 0) return Status::ok();
  std::lock_guard call_lock(call_mutex_);
  job_ = &fn;
  job_size_ = n;
  failed_ = false;
  if (n_threads_ > 1 && n > 1) {
    pending_.store(n_threads_ - 1);
    generation_.fetch_add(1);  // publishes job_ and job_size_ to the workers
    if (sleeping_workers_.load() > 0) {
      std::lock_guard lock(mutex_);
      work_ready_.notify_all();
    }
    run_slice(0, n_threads_);
    if (!spin_until(spin_, [this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock lock(mutex_);
      caller_sleeping_ = true;
      work_done_.wait(lock, [this] { return pending_.load() == 0; });
      caller_sleeping_ = false;
    }
  } else {
    run_slice(0, 1);  // one thread (or one item): the whole range here, as thread 0
  }
  job_ = nullptr;
  if (failed_) {
    std::lock_guard lock(error_mutex_);
    return Status::error(error_);
  }
  return Status::ok();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    if (!spin_until(spin_, [&] { return stopping_.load() || generation_.load(std::memory_order_acquire) != seen; })) {
      std::unique_lock lock(mutex_);
      ++sleeping_workers_;
      work_ready_.wait(lock, [&] { return stopping_.load() || generation_.load() != seen; });
      --sleeping_workers_;
    }
    if (stopping_) return;
    seen = generation_.load();
    run_slice(index, n_threads_);
    if (pending_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      std::lock_guard lock(mutex_);
      work_done_.notify_one();
    }
  }
}

}  // namespace tandem
