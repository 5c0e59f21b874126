#include "scheduler/page_pool.h"

#include <algorithm>
#include <stdexcept>

namespace tandem {

PagePool::PagePool(int n_pages, int page_size) : page_size_(page_size), pages_(static_cast<size_t>(n_pages)) {
  if (n_pages <= 0 || page_size <= 0) throw std::invalid_argument("PagePool: sizes must be positive");
  for (int p = n_pages - 1; p >= 0; --p) free_.push_back(p);
}

std::optional<int32_t> PagePool::allocate() {
  int32_t page;
  if (!free_.empty()) {
    page = free_.back();
    free_.pop_back();
  } else if (!lru_.empty()) {
    page = lru_.front();
    lru_.pop_front();
    unregister(page);
  } else {
    return std::nullopt;
  }
  pages_[static_cast<size_t>(page)].refs = 1;
  return page;
}

void PagePool::release(int32_t page) {
  Page& p = pages_.at(static_cast<size_t>(page));
  if (p.refs <= 0) throw std::logic_error("PagePool: release of an unreferenced page");
  if (--p.refs > 0) return;
  if (p.registered) {
    p.lru_pos = lru_.insert(lru_.end(), page);
  } else {
    free_.insert(std::lower_bound(free_.begin(), free_.end(), page, std::greater<>()), page);
  }
}

uint64_t PagePool::chain_hash(uint64_t parent, std::span<const int32_t> page_tokens) {
  // FNV-1a over the parent hash and the tokens, then a final avalanche (splitmix64).
  uint64_t h = 1469598103934665603ull ^ parent;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xff;
      h *= 1099511628211ull;
    }
  };
  mix(parent);
  for (int32_t t : page_tokens) mix(static_cast<uint32_t>(t));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

std::optional<int32_t> PagePool::acquire_cached(uint64_t parent, std::span<const int32_t> page_tokens) {
  const uint64_t h = chain_hash(parent, page_tokens);
  auto [begin, end] = index_.equal_range(h);
  for (auto it = begin; it != end; ++it) {
    Page& p = pages_[static_cast<size_t>(it->second)];
    if (!std::equal(p.tokens.begin(), p.tokens.end(), page_tokens.begin(), page_tokens.end())) continue;
    if (p.refs == 0) lru_.erase(p.lru_pos);
    ++p.refs;
    return it->second;
  }
  return std::nullopt;
}

void PagePool::register_full(int32_t page, uint64_t parent, std::span<const int32_t> page_tokens) {
  Page& p = pages_.at(static_cast<size_t>(page));
  if (p.registered) return;
  const uint64_t h = chain_hash(parent, page_tokens);
  auto [begin, end] = index_.equal_range(h);
  for (auto it = begin; it != end; ++it) {
    const Page& other = pages_[static_cast<size_t>(it->second)];
    if (std::equal(other.tokens.begin(), other.tokens.end(), page_tokens.begin(), page_tokens.end())) return;
  }
  p.registered = true;
  p.hash = h;
  p.tokens.assign(page_tokens.begin(), page_tokens.end());
  index_.emplace(h, page);
}

void PagePool::unregister(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  if (!p.registered) return;
  auto [begin, end] = index_.equal_range(p.hash);
  for (auto it = begin; it != end; ++it) {
    if (it->second == page) {
      index_.erase(it);
      break;
    }
  }
  p.registered = false;
  p.tokens.clear();
}

}  // namespace tandem
