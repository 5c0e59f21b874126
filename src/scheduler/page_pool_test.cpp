#include "scheduler/page_pool.h"

#include <gtest/gtest.h>

namespace tandem {

TEST(PagePool, AllocatesLowestFirstAndReleasesToFree) {
  PagePool pool(3, 4);
  EXPECT_EQ(pool.allocate(), 0);
  EXPECT_EQ(pool.allocate(), 1);
  EXPECT_EQ(pool.n_free(), 1);
  pool.release(0);
  EXPECT_EQ(pool.n_free(), 2);
  EXPECT_EQ(pool.allocate(), 0);
}

TEST(PagePool, RegisteredPagesAreCachedThenReusedByIdenticalPrefixes) {
  PagePool pool(2, 2);
  const std::vector<int32_t> a{1, 2}, b{3, 4};
  const int32_t p0 = *pool.allocate();
  pool.register_full(p0, 0, a);
  pool.release(p0);
  EXPECT_EQ(pool.n_cached(), 1);
  EXPECT_EQ(pool.n_available(), 2);
  // Same tokens but a different parent prefix: no hit.
  EXPECT_FALSE(pool.acquire_cached(PagePool::chain_hash(0, b), a));
  auto hit = pool.acquire_cached(0, a);
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, p0);
  EXPECT_EQ(pool.ref_count(p0), 1);
  EXPECT_EQ(pool.n_cached(), 0);
  auto again = pool.acquire_cached(0, a);  // shared by a second request
  EXPECT_EQ(again, p0);
  EXPECT_EQ(pool.ref_count(p0), 2);
}

TEST(PagePool, EvictsLeastRecentlyUsedCachedPageWhenFull) {
  PagePool pool(2, 1);
  const std::vector<int32_t> x{7}, y{8};
  const int32_t px = *pool.allocate(), py = *pool.allocate();
  pool.register_full(px, 0, x);
  pool.register_full(py, 0, y);
  pool.release(px);  // cached first: least recently used
  pool.release(py);
  EXPECT_EQ(pool.allocate(), px);
  EXPECT_FALSE(pool.acquire_cached(0, x));  // evicted
  EXPECT_TRUE(pool.acquire_cached(0, y));
  EXPECT_FALSE(pool.allocate());  // all referenced
}

TEST(PagePool, DuplicateRegistrationKeepsTheFirstCopy) {
  PagePool pool(2, 1);
  const std::vector<int32_t> x{5};
  const int32_t a = *pool.allocate(), b = *pool.allocate();
  pool.register_full(a, 0, x);
  pool.register_full(b, 0, x);
  pool.release(b);
  EXPECT_EQ(pool.n_free(), 1);  // b was not registered: it is free, not cached
  EXPECT_EQ(pool.acquire_cached(0, x), a);
}

}  // namespace tandem
