#include "kvcache/paged_kv_cache.h"

#include <gtest/gtest.h>

namespace tandem {

TEST(PageAllocator, GrowsByWholePagesAndReleases) {
  PageAllocator alloc(4);
  std::vector<int32_t> a, b;
  EXPECT_TRUE(alloc.grow(a, 17, 16));  // 2 pages
  EXPECT_EQ(a, (std::vector<int32_t>{0, 1}));
  EXPECT_TRUE(alloc.grow(a, 32, 16));  // still 2
  EXPECT_EQ(a.size(), 2u);
  EXPECT_FALSE(alloc.grow(b, 49, 16));  // needs 4, only 2 free: no change
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(alloc.n_free(), 2);
  alloc.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(alloc.n_free(), 4);
  EXPECT_TRUE(alloc.grow(b, 64, 16));
  EXPECT_EQ(b, (std::vector<int32_t>{0, 1, 2, 3}));
}

TEST(PagedKvCache, SlotsOfDifferentSequencesDoNotAlias) {
  PagedKvCache cache({.n_layers = 2, .floats_per_token = 3, .page_size = 4, .n_pages = 4});
  std::vector<int32_t> s0{2, 0}, s1{1, 3};
  for (int64_t pos = 0; pos < 8; ++pos) {
    cache.slot(1, s0, pos)[0] = static_cast<float>(100 + pos);
    cache.slot(1, s1, pos)[0] = static_cast<float>(200 + pos);
  }
  for (int64_t pos = 0; pos < 8; ++pos) {
    EXPECT_EQ(cache.slot(1, s0, pos)[0], static_cast<float>(100 + pos));
    EXPECT_EQ(cache.slot(1, s1, pos)[0], static_cast<float>(200 + pos));
    EXPECT_EQ(cache.slot(0, s0, pos)[0], 0.0f);  // layers are separate
  }
  // Position 5 of s0 is page 0 slot 1.
  EXPECT_EQ(cache.slot(1, s0, 5), cache.slot(1, std::vector<int32_t>{0}, 1));
}

}  // namespace tandem
