// PagedKvCache: the KV memory of all sequences, in fixed-size pages of tokens.
//
// The cache holds `n_pages` pages of `page_size` token slots for each of `n_layers` layers; a slot stores
// `floats_per_token` float32 values (for MLA the compressed latent + rope key; for GQA K then V). Which
// pages belong to which sequence is not known here: a sequence is described by its page table (page ids
// in position order), owned by whoever allocates pages (the scheduler's PagePool). Position p
// of a sequence lives in page table[p / page_size], slot p % page_size.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace tandem {

struct KvCacheConfig {
  int n_layers = 0;
  int64_t floats_per_token = 0;  // per layer
  int page_size = 16;            // tokens per page
  int n_pages = 0;
};

class PagedKvCache {
 public:
  explicit PagedKvCache(const KvCacheConfig& config);

  const KvCacheConfig& config() const { return config_; }
  // The slot of position `pos` of a sequence with page table `pages` in layer `layer`.
  // Requires pos / page_size < pages.size().
  float* slot(int layer, std::span<const int32_t> pages, int64_t pos) {
    return layer_data_[static_cast<size_t>(layer)].data() + slot_offset(pages, pos);
  }
  const float* slot(int layer, std::span<const int32_t> pages, int64_t pos) const {
    return layer_data_[static_cast<size_t>(layer)].data() + slot_offset(pages, pos);
  }
  size_t bytes() const;
  // Calls fn(first_pos, slots, count) for positions [0, n_positions) of a sequence, one call per run of
  // positions stored contiguously (one page): slot j of the run is slots + j * floats_per_token.
  template <typename Fn>
  void for_each_run(int layer, std::span<const int32_t> pages, int64_t n_positions, Fn&& fn) const {
    for (int64_t first = 0; first < n_positions; first += config_.page_size) {
      const int64_t count = std::min<int64_t>(config_.page_size, n_positions - first);
      fn(first, slot(layer, pages, first), count);
    }
  }

 private:
  size_t slot_offset(std::span<const int32_t> pages, int64_t pos) const {
    const int64_t page = pages[static_cast<size_t>(pos / config_.page_size)];
    return static_cast<size_t>((page * config_.page_size + pos % config_.page_size) * config_.floats_per_token);
  }

  KvCacheConfig config_;
  std::vector<std::vector<float>> layer_data_;  // [n_layers][n_pages * page_size * floats_per_token]
};

}  // namespace tandem
