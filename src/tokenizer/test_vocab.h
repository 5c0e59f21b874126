// Test helper: a small byte-level BPE vocabulary (the 256 byte symbols, then merged tokens, then added tokens).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer.h"

namespace tandem::testing {

// `merges` are pairs of raw-byte strings, highest priority first; each adds the merged token to the vocabulary.
// `added` are (text, type) pairs. Token ids: byte b is id b, then merges in order, then added tokens.
inline TokenizerSpec small_spec(const std::string& pre, const std::vector<std::pair<std::string, std::string>>& merges,
                                const std::vector<std::pair<std::string, TokenType>>& added = {}) {
  TokenizerSpec spec;
  spec.pre = pre;
  for (int b = 0; b < 256; ++b) {
    spec.tokens.emplace_back(byte_level::spell(static_cast<uint8_t>(b)));
    spec.types.push_back(TokenType::kNormal);
  }
  for (const auto& [left, right] : merges) {
    spec.merges.push_back(byte_level::encode(left) + " " + byte_level::encode(right));
    spec.tokens.push_back(byte_level::encode(left + right));
    spec.types.push_back(TokenType::kNormal);
  }
  for (const auto& [text, type] : added) {
    spec.tokens.push_back(text);
    spec.types.push_back(type);
  }
  return spec;
}

}  // namespace tandem::testing
