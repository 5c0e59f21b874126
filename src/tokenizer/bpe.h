// Byte-level BPE merge model: turns one pre-tokenized piece (raw bytes) into token ids.
//
// The piece's bytes start as the 256 byte symbols of the vocabulary; then, as in Hugging Face tokenizers, the
// adjacent pair with the lowest merge rank is merged (the leftmost one among equal ranks), until no pair has a
// merge. Results for short pieces are kept in a bounded cache (guarded by a mutex; encode_word is thread-safe).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace tandem {

// Hash for std::string keys that also accepts std::string_view (heterogeneous lookup).
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // `token_ids` maps vocabulary text to id; `merges` are "LEFT RIGHT" lines, highest priority first. Merges whose
  // parts or result are not in the vocabulary are ignored. Fails when a byte symbol is missing from the vocabulary.
  // With `ignore_merges`, a piece whose spelling is itself a token becomes that token directly.
  static Result<std::unique_ptr<BpeModel>> create(const TokenIdMap& token_ids, const std::vector<std::string>& merges,
                                                  bool ignore_merges);

  // Appends the ids of `piece` (raw bytes) to `out`.
  void encode_word(std::string_view piece, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  std::optional<Merge> find_merge(int32_t left, int32_t right) const;
  void merge_symbols(std::string_view piece, std::vector<int32_t>& out) const;

  BpeModel() = default;
  const TokenIdMap* token_ids_ = nullptr;  // owned by the Tokenizer, which owns this model
  bool ignore_merges_ = false;
  int32_t byte_ids_[256] = {};
  std::unordered_map<uint64_t, Merge> merges_;

  static constexpr size_t kMaxCachedPieceBytes = 64;
  static constexpr size_t kMaxCacheEntries = 1 << 16;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace tandem
