// Steady-state forward passes allocate nothing on the heap: the step buffers, KV cache and backend scratch
// are sized when the engine is set up. Every heap allocation of the process (any thread: the backend's
// pool, the expert runner) is counted by interposing malloc and friends, so operator new, std::string,
// std::function and fmt are all caught.
#include <gtest/gtest.h>

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <numeric>

#include "model/model.h"
#include "testing/fixtures.h"
#include "testing/model_harness.h"

extern "C" {
void* __libc_malloc(size_t size);
void* __libc_calloc(size_t n, size_t size);
void* __libc_realloc(void* p, size_t size);
void* __libc_memalign(size_t alignment, size_t size);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_allocations{0};
void count() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t size) {
  count();
  return __libc_malloc(size);
}
void* calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t size) {
  count();
  return __libc_realloc(p, size);
}
void* aligned_alloc(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}
void* memalign(size_t alignment, size_t size) {
  count();
  return __libc_memalign(alignment, size);
}
int posix_memalign(void** out, size_t alignment, size_t size) {
  count();
  *out = __libc_memalign(alignment, size);
  return *out ? 0 : ENOMEM;
}
}

namespace tandem {

namespace {

class CountAllocations {
 public:
  CountAllocations() {
    g_allocations = 0;
    g_counting = true;
  }
  ~CountAllocations() { g_counting = false; }
  int64_t count() const { return g_allocations.load(); }
};

ForwardBatch make_batch(const std::vector<std::pair<int, std::vector<int64_t>>>& tokens_by_sequence,
                        const std::vector<std::vector<int32_t>>& tables) {
  ForwardBatch b;
  for (const auto& table : tables) b.page_tables.emplace_back(table);
  for (const auto& [seq, positions] : tokens_by_sequence) {
    for (int64_t p : positions) {
      b.tokens.push_back(static_cast<int32_t>(100 + 37 * p + seq));
      b.positions.push_back(p);
      b.seq_index.push_back(seq);
    }
    b.output_tokens.push_back(static_cast<int32_t>(b.tokens.size() - 1));
  }
  return b;
}

std::vector<int64_t> range(int64_t first, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

class NoAllocation : public ::testing::TestWithParam<std::string> {};

TEST_P(NoAllocation, SteadyStatePrefillAndDecodeStepsAllocateNothing) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir(GetParam());
  auto loaded = testing::load_model(dir / "model.gguf", dir, 2, testing::ExpertPath::Runner);
  ASSERT_TRUE(loaded) << loaded.status().message();
  Model& model = *loaded->model;
  testing::ForwardHarness harness(model, 4, 32, 64, 4);
  const std::vector<std::vector<int32_t>> tables{{0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11, 12, 13, 14, 15}};

  // Warm-up: a prefill chunk and a decode, so that one-time initialization (CPU feature checks) is done.
  std::vector<ForwardBatch> steps;
  steps.push_back(make_batch({{0, range(0, 10)}}, tables));
  steps.push_back(make_batch({{0, {10}}}, tables));
  // Measured: a mixed step (sequence 1's prefill chunk with sequence 0's decode), then decodes, then
  // another prefill chunk: every shape a serving engine runs.
  steps.push_back(make_batch({{0, {11}}, {1, range(0, 13)}}, tables));
  for (int64_t p = 12; p < 20; ++p) steps.push_back(make_batch({{0, {p}}, {1, {p + 1}}}, tables));
  steps.push_back(make_batch({{1, range(21, 7)}}, tables));
  ASSERT_TRUE(harness.run(steps[0]));
  ASSERT_TRUE(harness.run(steps[1]));
  for (size_t i = 2; i < steps.size(); ++i) {
    ForwardStats stats;
    int64_t allocations = 0;
    {
      CountAllocations counter;
      const Status s = harness.run(steps[i], &stats);
      allocations = counter.count();
      ASSERT_TRUE(s) << s.message();
    }
    EXPECT_EQ(allocations, 0) << GetParam() << ": step " << i << " (" << steps[i].size() << " tokens) allocated";
  }
}

TEST(NoAllocationCounter, SeesAllocationsOnOtherThreads) {
  // The counter itself works: an allocation on another thread is seen.
  CountAllocations counter;
  std::thread([] {
    void* p = std::malloc(64);
    std::free(p);
  }).join();
  EXPECT_GE(counter.count(), 1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, NoAllocation,
                         ::testing::Values("tiny-dsv3-bf16", "tiny-dsv3-q4km", "tiny-qwen3moe-bf16"));

}  // namespace

}  // namespace tandem
