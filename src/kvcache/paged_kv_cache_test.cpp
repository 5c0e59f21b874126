#include "kvcache/paged_kv_cache.h"

#include <gtest/gtest.h>

#include <numeric>

#include "kernels/cpu/cpu_backend.h"

namespace tandem {

TEST(PagedKvCache, LayersAreSeparateTensorsOfTheConfiguredShape) {
  CpuBackend backend(1);
  auto cache = PagedKvCache::create(backend, {.n_layers = 2, .slot_width = 3, .page_size = 4, .n_pages = 5});
  ASSERT_TRUE(cache) << cache.status().message();
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ((*cache)->layer(l).cols(), 3);
    EXPECT_EQ((*cache)->layer(l).rows(), 20);
  }
  EXPECT_NE((*cache)->layer(0).data, (*cache)->layer(1).data);
  EXPECT_EQ((*cache)->bytes(), 2u * 3 * 20 * sizeof(float));
}

TEST(PagedKvCache, StoresGoToThePageTablesSlots) {
  CpuBackend backend(1);
  auto made = PagedKvCache::create(backend, {.n_layers = 1, .slot_width = 2, .page_size = 4, .n_pages = 4});
  ASSERT_TRUE(made);
  PagedKvCache& cache = *made.value();
  // Two sequences: s0 has pages {2, 0}, s1 has {1, 3}; one token each at position 5.
  std::vector<int32_t> positions{5, 5}, seq{0, 1}, start{0, 2, 4}, table{2, 0, 1, 3};
  auto tensor = [](std::vector<int32_t>& v) {
    return Tensor::contiguous(v.data(), GgmlType::I32, Device::cpu(), {static_cast<int64_t>(v.size()), 1, 1});
  };
  PagedBatch b{tensor(positions), tensor(seq), tensor(start), tensor(table), 4, 2, 2, 5};
  std::vector<float> rows{1, 2, 3, 4};
  backend.store_kv(Tensor::contiguous(rows.data(), GgmlType::F32, Device::cpu(), {2, 2, 1}), cache.layer(0), 0, b);
  ASSERT_TRUE(backend.sync());
  const float* slots = cache.layer(0).as<const float>();
  EXPECT_EQ(slots[(0 * 4 + 1) * 2], 1.0f);  // s0 position 5: page 0, slot 1
  EXPECT_EQ(slots[(3 * 4 + 1) * 2 + 1], 4.0f);  // s1 position 5: page 3, slot 1
  // A position beyond the page table is an error, not a write.
  positions[1] = 9;
  backend.store_kv(Tensor::contiguous(rows.data(), GgmlType::F32, Device::cpu(), {2, 2, 1}), cache.layer(0), 0, b);
  EXPECT_FALSE(backend.sync());
}

TEST(PagedKvCache, CheckPageTable) {
  CpuBackend backend(1);
  auto cache = PagedKvCache::create(backend, {.n_layers = 1, .slot_width = 2, .page_size = 4, .n_pages = 4});
  ASSERT_TRUE(cache);
  const std::vector<int32_t> ok{3, 1}, bad{0, 4};
  EXPECT_TRUE((*cache)->check_page_table(ok, 8));
  EXPECT_FALSE((*cache)->check_page_table(ok, 9));
  EXPECT_FALSE((*cache)->check_page_table(bad, 5));
  EXPECT_TRUE((*cache)->check_page_table(bad, 4));
  EXPECT_FALSE(PagedKvCache::create(backend, {.n_layers = 1, .slot_width = 0, .page_size = 4, .n_pages = 4}));
}

}  // namespace tandem
