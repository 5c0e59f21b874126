#include "kvcache/paged_kv_cache.h"

#include <gtest/gtest.h>

namespace tandem {

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
