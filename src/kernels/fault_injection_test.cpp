#include "kernels/fault_injection.h"

#include <gtest/gtest.h>

#include "kernels/cpu/cpu_backend.h"

namespace tandem {

TEST(FaultInjection, ParsesPlans) {
  auto p = parse_fault_plan("matmul:5");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->op, "matmul");
  EXPECT_EQ(p->nth, 5);
  EXPECT_EQ(p->period, 0);
  p = parse_fault_plan("any:2:10");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->period, 10);
  for (const char* bad : {"", "matmul", ":3", "matmul:0", "matmul:x", "matmul:3:", "matmul:3:-1"}) {
    EXPECT_FALSE(parse_fault_plan(bad)) << bad;
  }
}

TEST(FaultInjection, TheChosenCallFailsAtSyncAndLaterCallsWork) {
  auto backend = inject_faults(std::make_unique<CpuBackend>(1), {"add", 2, 3});
  auto a = backend->alloc(GgmlType::F32, {4, 1, 1}, "a");
  ASSERT_TRUE(a);
  const std::vector<float> ones(4, 1.0f);
  backend->upload(ones.data(), a.value());
  std::vector<bool> failed;
  for (int call = 1; call <= 6; ++call) {
    backend->add(a.value(), a.value(), a.value());
    failed.push_back(!backend->sync());
  }
  // Calls 2 and 5 (2, then every 3rd) fail; the others double the values.
  EXPECT_EQ(failed, (std::vector<bool>{false, true, false, false, true, false}));
  std::vector<float> out(4);
  backend->download(a.value(), out.data());
  EXPECT_EQ(out[0], 16.0f);
}

}  // namespace tandem
