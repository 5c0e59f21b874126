#include "grammar/grammar_constraint.h"

#include <algorithm>
#include <numeric>

#include <spdlog/spdlog.h>

#include "grammar/grammar_internal.h"
#include "tokenizer/tokenizer.h"

namespace tandem::grammar {

namespace {

// Code points of `s` when it is well-formed UTF-8 without '"', '\\' or control bytes (what a JSON string takes
// unescaped, matcher.cpp's S_CONTENT rules); -1 otherwise.
int64_t plain_length(const std::string& s) {
  int64_t chars = 0;
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x20 || c == '"' || c == '\\' || (c >= 0x80 && c < 0xC2) || c >= 0xF5) return -1;
    if (c >= 0xC2 && c < 0xE0) need = 1;
    if (c >= 0xE0 && c < 0xF0) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    }
    if (c >= 0xF0) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    }
    for (size_t k = 1; k <= need; ++k) {
      if (i + k >= s.size()) return -1;
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return -1;
    }
    i += need + 1;
    ++chars;
  }
  return chars;
}

// Sorted (bytes, id) pairs visit a trie in preorder: each token adds the nodes past its common prefix with the
// previous one.
VocabTrie::Trie preorder_trie(const std::vector<int32_t>& sorted_ids, const Tokenizer& tok) {
  VocabTrie::Trie trie;
  const std::string* prev = nullptr;
  for (int32_t id : sorted_ids) {
    const std::string& s = tok.token_piece(id);
    size_t common = 0;
    if (prev) {
      while (common < s.size() && common < prev->size() && s[common] == (*prev)[common]) ++common;
    }
    for (size_t d = common; d < s.size(); ++d) {
      trie.nodes.push_back({0, static_cast<uint32_t>(trie.token_ids.size()), static_cast<uint16_t>(d + 1),
                            static_cast<uint8_t>(s[d])});
    }
    trie.token_ids.push_back(id);
    prev = &s;
  }
  std::vector<uint32_t> open;
  for (uint32_t i = 0; i < trie.nodes.size(); ++i) {
    while (!open.empty() && trie.nodes[open.back()].depth >= trie.nodes[i].depth) {
      trie.nodes[open.back()].end = i;
      open.pop_back();
    }
    open.push_back(i);
  }
  for (uint32_t i : open) trie.nodes[i].end = static_cast<uint32_t>(trie.nodes.size());
  return trie;
}

}  // namespace

std::shared_ptr<const VocabTrie> VocabTrie::build(std::shared_ptr<const Tokenizer> tokenizer) {
  auto trie = std::make_shared<VocabTrie>();
  const Tokenizer& tok = *tokenizer;
  const int32_t n = tok.vocab_size();
  trie->vocab_size_ = n;
  trie->in_trie_.assign(static_cast<size_t>(n), 0);
  trie->plain_bits_.assign((static_cast<size_t>(n) + 63) / 64, 0);
  std::vector<int32_t> ids, not_plain;
  bool single[256] = {};
  for (int32_t id = 0; id < n; ++id) {
    const TokenType type = tok.token_type(id);
    const std::string& s = tok.token_piece(id);
    if ((type != TokenType::kNormal && type != TokenType::kByte) || s.empty()) continue;
    ids.push_back(id);
    trie->in_trie_[static_cast<size_t>(id)] = 1;
    trie->max_depth_ = std::max(trie->max_depth_, s.size());
    if (s.size() == 1) single[static_cast<unsigned char>(s[0])] = true;
    const int64_t chars = plain_length(s);
    if (chars < 0) continue;
    trie->plain_bits_[static_cast<size_t>(id) / 64] |= uint64_t{1} << (id % 64);
    trie->plain_by_length_.emplace_back(static_cast<uint32_t>(chars), id);
    trie->max_plain_length_ = std::max(trie->max_plain_length_, static_cast<uint32_t>(chars));
  }
  std::sort(trie->plain_by_length_.begin(), trie->plain_by_length_.end());
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return tok.token_piece(a) < tok.token_piece(b); });
  for (int32_t id : ids) {
    if (!((trie->plain_bits_[static_cast<size_t>(id) / 64] >> (id % 64)) & 1)) not_plain.push_back(id);
  }
  trie->all_ = preorder_trie(ids, tok);
  trie->not_plain_ = preorder_trie(not_plain, tok);
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
                                     std::vector<int32_t> end_tokens, std::vector<SpecialToken> special_tokens)
    : grammar_(std::move(grammar)),
      vocab_(std::move(vocab)),
      end_tokens_(std::move(end_tokens)),
      special_tokens_(std::move(special_tokens)),
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
    states_.resize(std::max<size_t>(vocab_->max_depth() + 1, 2));
  }
  const bool complete = matcher_.is_complete();
  if (complete) {
    for (int32_t t : end_tokens_) set(t);
  }
  // A complete document that nothing can extend takes only the end token. Otherwise a token must leave room for
  // the shortest completion after it, one token per byte, and the end token.
  const int64_t limit = remaining_tokens - 2;
  if (limit >= 0 && !(complete && !matcher_.can_continue())) {
    const auto budget = static_cast<uint64_t>(limit);
    states_[0] = matcher_.state();
    uint64_t room = 0;
    if (stepper_->in_plain_string(states_[0], room) && stepper_->distance(states_[0]) <= budget) {
      // Inside a string: the plain tokens that fit (they keep the string open and the completion no longer), and
      // the others by walking their trie.
      if (room >= vocab_->max_plain_length()) {
        const auto& plain = vocab_->plain_bits();
        for (size_t w = 0; w < plain.size() && w < allowed.size(); ++w) allowed[w] |= plain[w];
      } else {
        for (const auto& [chars, t] : vocab_->plain_by_length()) {
          if (chars > room) break;
          set(t);
        }
      }
      walk(vocab_->not_plain(), allowed, budget);
    } else {
      walk(vocab_->all(), allowed, budget);
    }
    for (const SpecialToken& sp : special_tokens_) {
      MatchState& next = states_[1];
      if (stepper_->step(states_[0], sp.byte, next) && stepper_->distance(next) <= budget) set(sp.id);
    }
  }
  if (std::all_of(allowed.begin(), allowed.end(), [](uint64_t w) { return w == 0; })) {
    // Not reachable for a grammar whose shortest document fits the budget; never leave the sampler nothing.
    spdlog::error("constrained decoding: no token can continue the document; allowing the end token");
    for (int32_t t : end_tokens_) set(t);
    gave_up_ = true;
  }
}

void GrammarConstraint::walk(const VocabTrie::Trie& trie, std::span<uint64_t> allowed, uint64_t budget) {
  const size_t n_bits = allowed.size() * 64;
  const auto& nodes = trie.nodes;
  for (uint32_t i = 0; i < nodes.size();) {
    const VocabTrie::Node& node = nodes[i];
    MatchState& here = states_[node.depth];
    if ((!special_tokens_.empty() && node.byte >= kSpecialByteBase) || !stepper_->step(states_[node.depth - 1], node.byte, here)) {
      i = node.end;
      continue;
    }
    const uint32_t last = trie.tokens_end(i);
    if (node.tokens != last && stepper_->distance(here) <= budget) {
      for (uint32_t k = node.tokens; k < last; ++k) {
        const auto t = static_cast<size_t>(trie.token_ids[k]);
        if (t < n_bits) allowed[t / 64] |= uint64_t{1} << (t % 64);
      }
    }
    ++i;
  }
}

bool GrammarConstraint::accept(int32_t token) {
  if (ended_) return false;
  if (std::find(end_tokens_.begin(), end_tokens_.end(), token) != end_tokens_.end()) {
    if (!gave_up_ && !matcher_.is_complete()) return false;
    ended_ = true;
    return true;
  }
  for (const SpecialToken& sp : special_tokens_) {
    if (sp.id == token) return matcher_.advance(sp.byte);
  }
  const std::string& bytes = vocab_->bytes(token);
  if (bytes.empty()) return false;
  if (!special_tokens_.empty() && std::any_of(bytes.begin(), bytes.end(), [](char c) {
        return static_cast<uint8_t>(c) >= kSpecialByteBase;
      })) {
    return false;
  }
  return matcher_.advance(bytes);
}

}  // namespace tandem::grammar
