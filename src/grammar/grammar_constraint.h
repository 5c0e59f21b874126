// Token-level enforcement of a Grammar: the vocabulary as a byte trie (VocabTrie, built once per model and shared)
// and GrammarConstraint, the per-request TokenConstraint (core/token_constraint.h) the sampler applies.
//
// VocabTrie holds every token that decodes to text (normal and byte tokens with a non-empty piece); control,
// user-defined, unused and unknown tokens are never part of a constrained document. It is laid out in DFS preorder
// so that a subtree is a contiguous range.
//
// GrammarConstraint::allowed() walks the trie with matcher states (one per depth), skipping the subtree of any
// byte the matcher refuses, so a token is allowed iff its whole byte string is accepted from the current state.
// End tokens (the model's EOS / end-of-turn ids) are allowed only when the document is complete; once it is
// complete and nothing can extend it, only they are. Budget-aware closing: with R tokens left (this one
// included) a token is allowed only if the shortest completion after it is at most R - 2 bytes, which leaves one
// token per byte plus the end token; since every byte is a token of its own in byte-level vocabularies
// (VocabTrie::covers_all_bytes), a document whose shortest form fits the budget at the start (min_bytes + 1 <=
// max_tokens) is always finished within it. Per-request state: the matcher state and scratch; the trie is shared.
//
// Special tokens (control tokens outside the trie, e.g. DeepSeek's tool-call markers) can be part of a document:
// each is given a byte from 0xF8-0xFF (kSpecialByteBase + k, never in UTF-8) that stands for it in the grammar's
// literal text; the token is allowed where the matcher accepts its byte, and accepting it advances by that byte.
// With special tokens given, no text token reaches those bytes (a lone byte token cannot stand in for a marker).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/token_constraint.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"

namespace tandem {
class Tokenizer;
}

namespace tandem::grammar {

class VocabTrie {
 public:
  static std::shared_ptr<const VocabTrie> build(std::shared_ptr<const Tokenizer> tokenizer);

  struct Node {
    uint32_t end;        // one past the last node of this node's subtree
    uint32_t tokens;     // first index into Trie::token_ids of the tokens spelled by the path to this node
    uint16_t depth;      // bytes from the root (1 for the first byte)
    uint8_t byte;
  };
  struct Trie {
    std::vector<Node> nodes;
    std::vector<int32_t> token_ids;
    // Tokens of node i: token_ids[nodes[i].tokens .. (i + 1 < nodes.size() ? nodes[i + 1].tokens : token_ids.size())]
    uint32_t tokens_end(size_t i) const {
      return i + 1 < nodes.size() ? nodes[i + 1].tokens : static_cast<uint32_t>(token_ids.size());
    }
  };
  // Every text token.
  const Trie& all() const { return all_; }
  const std::vector<Node>& nodes() const { return all_.nodes; }
  const std::vector<int32_t>& token_ids() const { return all_.token_ids; }
  // Plain string text: tokens of well-formed UTF-8 without '"', '\\' or control bytes, which a JSON string takes as
  // they are (as a bitset, and by their length in code points), and the trie of the other text tokens. Inside a
  // string the mask is the plain tokens that fit plus a walk of the (much smaller) other trie.
  const std::vector<uint64_t>& plain_bits() const { return plain_bits_; }
  const std::vector<std::pair<uint32_t, int32_t>>& plain_by_length() const { return plain_by_length_; }  // sorted
  uint32_t max_plain_length() const { return max_plain_length_; }
  const Trie& not_plain() const { return not_plain_; }

  size_t max_depth() const { return max_depth_; }
  // The bytes of a token in the trie; empty for tokens outside it (special or empty).
  const std::string& bytes(int32_t token) const;
  bool in_trie(int32_t token) const;
  int32_t vocab_size() const { return vocab_size_; }
  bool covers_all_bytes() const { return covers_all_bytes_; }  // every byte 0-255 is a token of its own

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
  Trie all_, not_plain_;
  std::vector<uint64_t> plain_bits_;
  std::vector<std::pair<uint32_t, int32_t>> plain_by_length_;  // (code points, token)
  uint32_t max_plain_length_ = 0;
  std::vector<uint8_t> in_trie_;
  size_t max_depth_ = 0;
  int32_t vocab_size_ = 0;
  bool covers_all_bytes_ = false;
};

class GrammarConstraint final : public TokenConstraint {
 public:
  static constexpr uint8_t kSpecialByteBase = 0xF8;  // up to 8 special tokens: 0xF8 .. 0xFF
  struct SpecialToken {
    int32_t id;
    uint8_t byte;  // kSpecialByteBase + k
  };
  GrammarConstraint(GrammarPtr grammar, std::shared_ptr<const VocabTrie> vocab, std::vector<int32_t> end_tokens,
                    std::vector<SpecialToken> special_tokens = {});

  void allowed(std::span<uint64_t> allowed, int64_t remaining_tokens) override;
  bool accept(int32_t token) override;
  bool is_complete() const override;

  const Matcher& matcher() const { return matcher_; }

 private:
  GrammarPtr grammar_;
  std::shared_ptr<const VocabTrie> vocab_;
  std::vector<int32_t> end_tokens_;
  std::vector<SpecialToken> special_tokens_;
  Matcher matcher_;
  bool ended_ = false;                // an end token was accepted
  bool gave_up_ = false;              // allowed() found nothing but the end token (never for a valid budget)
  std::unique_ptr<Stepper> stepper_;  // scratch for allowed()
  std::vector<MatchState> states_;    // per trie depth
  void walk(const VocabTrie::Trie& trie, std::span<uint64_t> allowed, uint64_t budget);
};

}  // namespace tandem::grammar
