#include "grammar/grammar_constraint.h"

#include <algorithm>
#include <numeric>

#include <spdlog/spdlog.h>

#include "grammar/grammar_internal.h"
#include "tokenizer/tokenizer.h"

namespace tandem::grammar {

std::shared_ptr<const VocabTrie> VocabTrie::build(std::shared_ptr<const Tokenizer> tokenizer) {
  auto trie = std::make_shared<VocabTrie>();
  const int32_t n = tokenizer->vocab_size();
  trie->vocab_size_ = n;
  trie->in_trie_.assign(static_cast<size_t>(n), 0);
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < n; ++id) {
    const TokenType type = tokenizer->token_type(id);
    if ((type == TokenType::kNormal || type == TokenType::kByte) && !tokenizer->token_piece(id).empty()) {
      ids.push_back(id);
      trie->in_trie_[static_cast<size_t>(id)] = 1;
    }
  }
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return tokenizer->token_piece(a) < tokenizer->token_piece(b);
  });
  // Sorted strings visit the trie in preorder: each token adds the nodes past its common prefix with the previous.
  std::vector<uint32_t> path;  // path[d]: node at depth d + 1 on the current branch
  const std::string* prev = nullptr;
  bool single[256] = {};
  for (int32_t id : ids) {
    const std::string& s = tokenizer->token_piece(id);
    if (s.size() == 1) single[static_cast<unsigned char>(s[0])] = true;
    size_t common = 0;
    if (prev) {
      while (common < s.size() && common < prev->size() && s[common] == (*prev)[common]) ++common;
    }
    path.resize(common);
    for (size_t d = common; d < s.size(); ++d) {
      path.push_back(static_cast<uint32_t>(trie->nodes_.size()));
      trie->nodes_.push_back({0, static_cast<uint32_t>(trie->token_ids_.size()), static_cast<uint16_t>(d + 1),
                              static_cast<uint8_t>(s[d])});
    }
    trie->token_ids_.push_back(id);
    trie->max_depth_ = std::max(trie->max_depth_, s.size());
    prev = &s;
  }
  std::vector<uint32_t> open;
  for (uint32_t i = 0; i < trie->nodes_.size(); ++i) {
    while (!open.empty() && trie->nodes_[open.back()].depth >= trie->nodes_[i].depth) {
      trie->nodes_[open.back()].end = i;
      open.pop_back();
    }
    open.push_back(i);
  }
  for (uint32_t i : open) trie->nodes_[i].end = static_cast<uint32_t>(trie->nodes_.size());
  trie->covers_all_bytes_ = std::all_of(std::begin(single), std::end(single), [](bool b) { return b; });
  trie->tokenizer_ = std::move(tokenizer);
  return trie;
}

const std::string& VocabTrie::bytes(int32_t token) const {
  static const std::string kNone;
  return in_trie(token) ? tokenizer_->token_piece(token) : kNone;
}

bool VocabTrie::in_trie(int32_t token) const {
  return token >= 0 && token < vocab_size_ && in_trie_[static_cast<size_t>(token)] != 0;
}

GrammarConstraint::GrammarConstraint(GrammarPtr grammar, std::shared_ptr<const VocabTrie> vocab,
                                     std::vector<int32_t> end_tokens)
    : grammar_(std::move(grammar)),
      vocab_(std::move(vocab)),
      end_tokens_(std::move(end_tokens)),
      matcher_(grammar_) {}

bool GrammarConstraint::is_complete() const { return matcher_.is_complete(); }

void GrammarConstraint::allowed(std::span<uint64_t> allowed, int64_t remaining_tokens) {
  std::fill(allowed.begin(), allowed.end(), 0);
  const size_t n_bits = allowed.size() * 64;
  auto set = [&](int32_t t) {
    if (t >= 0 && static_cast<size_t>(t) < n_bits) allowed[static_cast<size_t>(t) / 64] |= uint64_t{1} << (t % 64);
  };
  if (ended_ || remaining_tokens < 1) return;
  if (!stepper_) {
    stepper_ = std::make_unique<Stepper>(*grammar_);
    states_.resize(vocab_->max_depth() + 1);
  }
  const bool complete = matcher_.is_complete();
  if (complete) {
    for (int32_t t : end_tokens_) set(t);
  }
  // A complete document that nothing can extend takes only the end token. Otherwise a token must leave room for
  // the shortest completion after it, one token per byte, and the end token.
  const int64_t limit = remaining_tokens - 2;
  if (limit >= 0 && !(complete && !matcher_.can_continue())) {
    const auto& nodes = vocab_->nodes();
    const auto& ids = vocab_->token_ids();
    states_[0] = matcher_.state();
    const auto budget = static_cast<uint64_t>(limit);
    for (uint32_t i = 0; i < nodes.size();) {
      const VocabTrie::Node& node = nodes[i];
      MatchState& here = states_[node.depth];
      if (!stepper_->step(states_[node.depth - 1], node.byte, here)) {
        i = node.end;
        continue;
      }
      const uint32_t last = i + 1 < nodes.size() ? nodes[i + 1].tokens : static_cast<uint32_t>(ids.size());
      if (node.tokens != last && stepper_->distance(here) <= budget) {
        for (uint32_t k = node.tokens; k < last; ++k) set(ids[k]);
      }
      ++i;
    }
  }
  if (std::all_of(allowed.begin(), allowed.end(), [](uint64_t w) { return w == 0; })) {
    // Not reachable for a grammar whose shortest document fits the budget; never leave the sampler nothing.
    spdlog::error("constrained decoding: no token can continue the document; allowing the end token");
    for (int32_t t : end_tokens_) set(t);
    gave_up_ = true;
  }
}

bool GrammarConstraint::accept(int32_t token) {
  if (ended_) return false;
  if (std::find(end_tokens_.begin(), end_tokens_.end(), token) != end_tokens_.end()) {
    if (!gave_up_ && !matcher_.is_complete()) return false;
    ended_ = true;
    return true;
  }
  const std::string& bytes = vocab_->bytes(token);
  if (bytes.empty()) return false;
  return matcher_.advance(bytes);
}

}  // namespace tandem::grammar
