#include "kvcache/paged_kv_cache.h"

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

}  // namespace tandem
