// spin_until: busy-waits for a condition for a bounded time, for threads that expect it within
// microseconds and own a core (waking a sleeping thread costs tens of microseconds).
#pragma once

#include <chrono>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tandem {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Calls done() until it returns true (then returns true) or `spin` has passed (then returns done()).
template <typename Done>
bool spin_until(std::chrono::microseconds spin, Done&& done) {
  const auto deadline = std::chrono::steady_clock::now() + spin;
  for (int i = 0;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return done();
  }
}

}  // namespace tandem
