// PagePool: the KV cache's pages as a shared, reference-counted resource with a prefix index.
//
// A page is free, referenced (by one or more requests' page tables), or cached (unreferenced but holding
// a registered full page of tokens that a later request with the same prefix can reuse). A full page is
// registered under a hash of all tokens from the start of the sequence up to and including the page, so
// two requests share a page only when their whole prefixes match (the page's own tokens are also stored
// and compared, so a hash collision cannot alias). Cached pages are evicted least-recently-used when a
// page is needed and none is free. Nothing here knows tensors: pages are just ids.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace tandem {

class PagePool {
 public:
  PagePool(int n_pages, int page_size);

  int n_pages() const { return static_cast<int>(pages_.size()); }
  int page_size() const { return page_size_; }
  int n_free() const { return static_cast<int>(free_.size()); }
  int n_cached() const { return static_cast<int>(lru_.size()); }
  int n_referenced() const { return n_pages() - n_free() - n_cached(); }
  // Pages an allocation can take now: free plus evictable cached ones.
  int n_available() const { return n_free() + n_cached(); }

  // A page for exclusive use (reference count 1), evicting the least recently used cached page if no
  // page is free; nullopt when every page is referenced.
  std::optional<int32_t> allocate();
  // Drops one reference; an unreferenced page becomes cached if registered, else free.
  void release(int32_t page);

  // Hash of a full page given the hash of everything before it (0 for the first page).
  static uint64_t chain_hash(uint64_t parent, std::span<const int32_t> page_tokens);
  // Looks up a registered page holding exactly `page_tokens` after a prefix hashed to `parent`; on a hit
  // takes a reference to it and returns it.
  std::optional<int32_t> acquire_cached(uint64_t parent, std::span<const int32_t> page_tokens);
  // Makes a full, referenced page reusable by later requests. A no-op when an identical page is already
  // registered (the existing one stays the shared copy).
  void register_full(int32_t page, uint64_t parent, std::span<const int32_t> page_tokens);

  int ref_count(int32_t page) const { return pages_[static_cast<size_t>(page)].refs; }

 private:
  struct Page {
    int refs = 0;
    bool registered = false;
    uint64_t hash = 0;
    std::vector<int32_t> tokens;             // the page's tokens, when registered
    std::list<int32_t>::iterator lru_pos;    // valid while cached
  };
  void unregister(int32_t page);

  int page_size_;
  std::vector<Page> pages_;
  std::vector<int32_t> free_;                        // descending: back() is the lowest id
  std::list<int32_t> lru_;                           // cached pages, least recently used first
  std::unordered_multimap<uint64_t, int32_t> index_; // hash -> registered page
};

}  // namespace tandem
