#include "kvcache/paged_kv_cache.h"

#include <fmt/format.h>

namespace tandem {

Result<std::unique_ptr<PagedKvCache>> PagedKvCache::create(Backend& backend, const KvCacheConfig& config) {
  if (config.n_layers <= 0 || config.slot_width <= 0 || config.page_size <= 0 || config.n_pages <= 0) {
    return Status::error("KV cache: every size in the config must be positive");
  }
  std::unique_ptr<PagedKvCache> cache(new PagedKvCache(config));
  const int64_t slots = int64_t{config.n_pages} * config.page_size;
  for (int l = 0; l < config.n_layers; ++l) {
    auto t = backend.alloc(GgmlType::F32, {config.slot_width, slots, 1}, "kv_cache");
    if (!t) return Status::error(fmt::format("KV cache layer {}: {}", l, t.status().message()));
    cache->layers_.push_back(t.value());
  }
  return cache;
}

size_t PagedKvCache::bytes() const {
  size_t total = 0;
  for (const Tensor& t : layers_) total += t.bytes();
  return total;
}

Status PagedKvCache::check_page_table(std::span<const int32_t> pages, int64_t n_positions) const {
  const int64_t needed = (n_positions + config_.page_size - 1) / config_.page_size;
  if (static_cast<int64_t>(pages.size()) < needed) {
    return Status::error(fmt::format("page table of {} pages cannot hold {} positions", pages.size(), n_positions));
  }
  for (int64_t i = 0; i < needed; ++i) {
    const int32_t p = pages[static_cast<size_t>(i)];
    if (p < 0 || p >= config_.n_pages) {
      return Status::error(fmt::format("page table names page {} of a cache of {} pages", p, config_.n_pages));
    }
  }
  return Status::ok();
}

}  // namespace tandem
