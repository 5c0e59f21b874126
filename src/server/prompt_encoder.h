// PromptEncoder: chat prompt text -> token ids such that only the chat template's own markup can become
// special tokens.
//
// Message contents, and every other string a request hands to the template (names, tool calls, tools,
// template kwargs), are text. neutralize() puts a marker (U+FDD0, a Unicode noncharacter) after the first
// character of every added-token spelling inside them (control tokens such as <｜end▁of▁sentence｜>,
// user-defined ones such as role markers), so the tokenizer cannot match them; the template then renders as
// usual, and encode_rendered() tokenizes its output with the added tokens it still spells parsed and the text
// between them, markers removed, as plain text. Text without added-token spellings is tokenized exactly as
// before; a neutralized spelling becomes the plain-text tokens of its characters, as with parse_special off.
// A U+FDD0 sent by the client is replaced by U+FFFD. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace tandem::server {

class PromptEncoder {
 public:
  explicit PromptEncoder(std::shared_ptr<const Tokenizer> tokenizer) : tokenizer_(std::move(tokenizer)) {}

  std::string neutralized(std::string_view text) const;
  // Neutralizes every string value and object key in `value`, recursively.
  void neutralize(nlohmann::ordered_json& value) const;
  std::vector<int32_t> encode_rendered(std::string_view rendered) const;
  // The rendered text as a person reads it: the markers removed.
  static std::string readable(std::string_view rendered);

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;
};

}  // namespace tandem::server
