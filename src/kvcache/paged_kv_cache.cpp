#include "kvcache/paged_kv_cache.h"

#include <algorithm>
#include <stdexcept>

namespace tandem {

PagedKvCache::PagedKvCache(const KvCacheConfig& config) : config_(config) {
  if (config.n_layers <= 0 || config.floats_per_token <= 0 || config.page_size <= 0 || config.n_pages <= 0) {
    throw std::invalid_argument("PagedKvCache: every size in the config must be positive");
  }
  const size_t per_layer =
      static_cast<size_t>(config.n_pages) * static_cast<size_t>(config.page_size) *
      static_cast<size_t>(config.floats_per_token);
  layer_data_.assign(static_cast<size_t>(config.n_layers), std::vector<float>(per_layer, 0.0f));
}

size_t PagedKvCache::bytes() const {
  size_t total = 0;
  for (const auto& layer : layer_data_) total += layer.size() * sizeof(float);
  return total;
}

PageAllocator::PageAllocator(int n_pages) : n_pages_(n_pages) {
  free_.reserve(static_cast<size_t>(n_pages));
  for (int p = n_pages - 1; p >= 0; --p) free_.push_back(p);
}

bool PageAllocator::grow(std::vector<int32_t>& table, int64_t n_tokens, int page_size) {
  const int64_t needed = (n_tokens + page_size - 1) / page_size - static_cast<int64_t>(table.size());
  if (needed <= 0) return true;
  if (needed > static_cast<int64_t>(free_.size())) return false;
  for (int64_t i = 0; i < needed; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void PageAllocator::release_page(int32_t page) {
  if (page < 0 || page >= n_pages_) throw std::out_of_range("PageAllocator: page id out of range");
  // Insert keeping descending order, so allocation stays lowest-id-first and deterministic.
  free_.insert(std::lower_bound(free_.begin(), free_.end(), page, std::greater<>()), page);
}

void PageAllocator::release(std::vector<int32_t>& table) {
  for (int32_t page : table) release_page(page);
  table.clear();
}

}  // namespace tandem
