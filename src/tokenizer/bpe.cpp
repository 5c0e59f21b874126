#include "tokenizer/bpe.h"

#include <queue>

#include "tokenizer/byte_level.h"

namespace tandem {

Result<std::unique_ptr<BpeModel>> BpeModel::create(const TokenIdMap& token_ids, const std::vector<std::string>& merges,
                                                   bool ignore_merges) {
  std::unique_ptr<BpeModel> model(new BpeModel());
  model->token_ids_ = &token_ids;
  model->ignore_merges_ = ignore_merges;
  for (int b = 0; b < 256; ++b) {
    auto it = token_ids.find(byte_level::spell(static_cast<uint8_t>(b)));
    if (it == token_ids.end()) {
      return Status::error("tokenizer: byte-level vocabulary lacks the symbol for byte " + std::to_string(b));
    }
    model->byte_ids_[b] = it->second;
  }
  model->merges_.reserve(merges.size());
  std::string joined;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& line = merges[rank];
    const size_t space = line.find(' ', 1);
    if (space == std::string::npos) continue;
    const std::string_view left(line.data(), space);
    const std::string_view right(line.data() + space + 1, line.size() - space - 1);
    auto l = token_ids.find(left);
    auto r = token_ids.find(right);
    joined.assign(left);
    joined.append(right);
    auto m = token_ids.find(joined);
    if (l == token_ids.end() || r == token_ids.end() || m == token_ids.end()) continue;
    model->merges_.try_emplace(pair_key(l->second, r->second), Merge{static_cast<int32_t>(rank), m->second});
  }
  return model;
}

std::optional<BpeModel::Merge> BpeModel::find_merge(int32_t left, int32_t right) const {
  auto it = merges_.find(pair_key(left, right));
  if (it == merges_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::encode_word(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    out.push_back(byte_ids_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const bool cacheable = piece.size() <= kMaxCachedPieceBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t first = out.size();
  merge_symbols(piece, out);
  if (cacheable) {
    std::vector<int32_t> ids(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.try_emplace(std::string(piece), std::move(ids));
  }
}

void BpeModel::merge_symbols(std::string_view piece, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    auto it = token_ids_->find(byte_level::encode(piece));
    if (it != token_ids_->end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Symbols form a doubly linked list over positions; merged-away symbols get id -1.
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  const auto n = static_cast<int32_t>(piece.size());
  std::vector<Symbol> symbols(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    symbols[i] = {byte_ids_[static_cast<uint8_t>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  struct Candidate {
    int32_t rank;
    int32_t left;  // position of the left symbol
    int32_t left_id;
    int32_t right_id;
    int32_t result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push_pair = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    if (auto m = find_merge(symbols[left].id, symbols[right].id)) {
      queue.push({m->rank, left, symbols[left].id, symbols[right].id, m->result});
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    if (left.id != c.left_id || left.next < 0) continue;  // stale: the left symbol changed
    Symbol& right = symbols[left.next];
    if (right.id != c.right_id) continue;  // stale: the right neighbour changed
    left.id = c.result;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    push_pair(left.prev);
    push_pair(c.left);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace tandem
