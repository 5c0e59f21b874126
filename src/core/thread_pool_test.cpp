#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tandem {

TEST(ThreadPool, CoversEveryIndexExactlyOnce) {
  for (int threads : {1, 2, 3, 7}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 2, 5, 64, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, ManyRoundsDoNotDeadlock) {
  ThreadPool pool(4);
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 2000; ++round) {
    pool.parallel_for(10, [&](int64_t b, int64_t e) { sum += e - b; });
  }
  EXPECT_EQ(sum.load(), 20000);
}

TEST(ThreadPool, CallersOnSeveralThreadsAreSerialized) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  auto caller = [&] {
    for (int round = 0; round < 500; ++round) {
      ASSERT_TRUE(pool.parallel_for(7, [&](int64_t b, int64_t e) { sum += e - b; }));
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(sum.load(), 2 * 500 * 7);
}

TEST(ThreadPool, AnExceptionOnAWorkerBecomesTheCallsStatus) {
  ThreadPool pool(3);
  const Status s = pool.parallel_for(9, [&](int64_t b, int64_t, int thread) {
    if (thread == 2) throw std::runtime_error("boom in " + std::to_string(b));
  });
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("boom"), std::string::npos);
  // The pool keeps working.
  EXPECT_TRUE(pool.parallel_for(9, [](int64_t, int64_t) {}));
}

TEST(ThreadPool, WorkersThatFellAsleepWakeForTheNextLoop) {
  ThreadPool pool(2);
  std::atomic<int> ran{0};
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(3 * ThreadPool::kSpinMicroseconds));
    ASSERT_TRUE(pool.parallel_for(2, [&](int64_t, int64_t, int) { ++ran; }));
  }
  EXPECT_EQ(ran.load(), 6);
}

}  // namespace tandem
