// Forced tool calls (tool_choice "required" or {"type": "function", "function": {"name"}}): the grammar that makes
// the model write exactly one call in its own syntax, for constrained decoding (src/grammar).
//
// The call is ToolCallSyntax::call_frame(name): literal text with the function name, the arguments as one JSON
// value matching that tool's `parameters` schema (the subset of grammar.h; absent or {} parameters: any JSON
// object), literal text after. For several allowed tools the common start of their frames comes first, then a
// choice between the tools (at most grammar::kMaxAlternatives). Markers that are single tokens outside the
// vocabulary trie (DeepSeek-V3's control tokens, Qwen's user-defined <tool_call>) are written as those tokens: in
// the grammar each stands as a byte 0xF8+k that only its token can produce (GrammarConstraint's special tokens),
// so the parser sees real markers. The end-of-sequence token is allowed once the call is complete.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "grammar/grammar_constraint.h"
#include "server/openai_request.h"
#include "server/tool_calls.h"

namespace tandem {
class Tokenizer;
}

namespace tandem::server {

struct ForcedToolCall {
  grammar::GrammarPtr grammar;
  std::vector<grammar::GrammarConstraint::SpecialToken> special_tokens;
};

// `tools`: the request's validated tools; `name`: the function a named tool_choice asks for (nullopt: "required",
// any of the tools). A 400 names the field: `tools[i].function.parameters` (with the keyword and the tool) for a
// schema outside the subset, `tool_choice` when the syntax is unknown or there are too many tools.
std::variant<ForcedToolCall, ApiError> forced_tool_call_grammar(const ToolCallSyntax& syntax, const Tokenizer& tokenizer,
                                                                const grammar::VocabTrie& vocab,
                                                                const nlohmann::ordered_json& tools,
                                                                const std::optional<std::string>& name);

}  // namespace tandem::server
