// PagedKvCache: the KV memory of all sequences, in fixed-size pages of tokens, on a backend's device.
//
// The cache holds n_pages pages of page_size token slots for each of n_layers layers; a slot stores
// slot_width float32 values (MLA: the compressed latent + rope key; GQA: K then V of every KV head). Layer
// l is one backend tensor {slot_width, n_pages * page_size}: slot s of page p is row p * page_size + s.
// Which pages belong to which sequence is not known here: a sequence is described by its page table (page
// ids in position order), owned by whoever allocates pages (the scheduler's PagePool). Position p of a
// sequence lives in page table[p / page_size], slot p % page_size. The backend's store_kv / attention
// operations read and write the slots; check_page_table() validates a table before a step uses it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/status.h"
#include "kernels/backend.h"

namespace tandem {

struct KvCacheConfig {
  int n_layers = 0;
  int64_t slot_width = 0;  // floats per token per layer
  int page_size = 16;      // tokens per page
  int n_pages = 0;
};

class PagedKvCache {
 public:
  // Allocates every layer on `backend` (zero-filled). Fails with a message for a non-positive size or
  // when the device is out of memory.
  static Result<std::unique_ptr<PagedKvCache>> create(Backend& backend, const KvCacheConfig& config);

  const KvCacheConfig& config() const { return config_; }
  const Tensor& layer(int layer) const { return layers_[static_cast<size_t>(layer)]; }
  size_t bytes() const;
  // Ok when `pages` covers positions [0, n_positions) and names only pages of this cache.
  Status check_page_table(std::span<const int32_t> pages, int64_t n_positions) const;

 private:
  explicit PagedKvCache(const KvCacheConfig& config) : config_(config) {}
  KvCacheConfig config_;
  std::vector<Tensor> layers_;  // [n_layers], each {slot_width, n_pages * page_size}
};

}  // namespace tandem
