// ThreadPool: a fixed set of worker threads running data-parallel loops.
//
// parallel_for(n, fn) calls fn(begin, end, thread) over a static partition of [0, n) into contiguous ranges,
// one per thread (the caller's thread takes part as thread 0), and returns when all ranges are done. The
// partition depends only on n and the thread count, never on timing, so results that depend on which
// thread computed what are reproducible; `thread` (< size()) lets fn use per-thread scratch memory.
//
// A forward pass runs hundreds of loops a step, so waking sleeping threads each time would cost more than
// many of the loops: after a loop, workers spin for a while (spin_microseconds, kSpinMicroseconds unless
// given) watching for the next one before they sleep, and the caller spins likewise while waiting for the
// workers. Give a pool as many threads as it has cores to itself.
//
// Safe to call from several threads at once: calls are serialized. Not re-entrant: fn must not call
// parallel_for on the same pool. An exception thrown by fn on any thread is caught there and returned as
// the call's Status (the first one); it never crosses a thread. Nothing is allocated per call.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/function_ref.h"
#include "core/status.h"

namespace tandem {

class ThreadPool {
 public:
  using Body = FunctionRef<void(int64_t begin, int64_t end, int thread)>;
  static constexpr int kSpinMicroseconds = 100;

  // n_threads <= 0: hardware concurrency.
  explicit ThreadPool(int n_threads, int spin_microseconds = kSpinMicroseconds);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  Status parallel_for(int64_t n, Body fn);
  // The same with a body that does not need the thread index.
  template <typename F>
    requires std::is_invocable_v<F&, int64_t, int64_t>
  Status parallel_for(int64_t n, F&& fn) {
    auto body = [&fn](int64_t begin, int64_t end, int) { fn(begin, end); };
    return parallel_for(n, Body(body));
  }

 private:
  void worker_loop(int index);
  void run_slice(int index, int count);

  int n_threads_;
  std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time
  std::mutex mutex_;       // sleeping and waking
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const Body* job_ = nullptr;
  int64_t job_size_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleeping_workers_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::string error_;  // capacity reserved at construction: recording an error does not allocate
};

}  // namespace tandem
