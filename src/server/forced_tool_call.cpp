#include "server/forced_tool_call.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "tokenizer/tokenizer.h"

namespace tandem::server {

namespace {

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

}  // namespace

std::variant<ForcedToolCall, ApiError> forced_tool_call_grammar(const ToolCallSyntax& syntax, const Tokenizer& tokenizer,
                                                                const grammar::VocabTrie& vocab,
                                                                const nlohmann::ordered_json& tools,
                                                                const std::optional<std::string>& name) {
  if (!syntax.enabled()) {
    return ApiError{400, "this model's tool-call format is not known to this server, so a call cannot be forced "
                         "(use tool_choice 'auto')", "invalid_request_error", "tool_choice"};
  }
  ForcedToolCall out;
  // Markers that are one token outside the trie: that token, through a byte of its own.
  std::vector<std::pair<std::string, std::string>> placeholders;
  for (const std::string* marker : {&syntax.section_begin, &syntax.section_end, &syntax.call_begin, &syntax.call_end,
                                    &syntax.separator}) {
    if (marker->empty()) continue;
    if (std::any_of(placeholders.begin(), placeholders.end(), [&](const auto& p) { return p.first == *marker; })) continue;
    const auto id = tokenizer.token_to_id(*marker);
    if (!id || vocab.in_trie(*id)) continue;
    const auto byte = static_cast<uint8_t>(grammar::GrammarConstraint::kSpecialByteBase + out.special_tokens.size());
    out.special_tokens.push_back({*id, byte});
    placeholders.emplace_back(*marker, std::string(1, static_cast<char>(byte)));
  }
  std::sort(placeholders.begin(), placeholders.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  const auto encode = [&](std::string s) {
    for (const auto& [from, to] : placeholders) replace_all(s, from, to);
    return s;
  };

  struct Alternative {
    std::string prefix, suffix;
    grammar::GrammarPiece arguments;
  };
  std::vector<Alternative> alts;
  for (size_t i = 0; i < tools.size(); ++i) {
    const auto& function = tools[i]["function"];
    const std::string tool_name = function["name"].get<std::string>();
    if (name && tool_name != *name) continue;
    const std::string field = fmt::format("tools[{}].function.parameters", i);
    grammar::GrammarPiece arguments = grammar::GrammarPiece::any_object();
    if (auto it = function.find("parameters"); it != function.end() && !it->is_null() && !it->empty()) {
      const nlohmann::json schema = *it;  // ordered_json to json
      auto compiled = grammar::compile_json_schema(schema);
      if (const auto* e = std::get_if<grammar::SchemaError>(&compiled)) {
        return ApiError{400, fmt::format("{} of tool '{}' cannot be enforced for tool_choice: {}", field, tool_name,
                                         e->message), "invalid_request_error", field};
      }
      arguments = grammar::GrammarPiece::json(schema);
    }
    const ToolCallSyntax::Frame frame = syntax.call_frame(tool_name);
    alts.push_back({encode(frame.prefix), encode(frame.suffix), std::move(arguments)});
  }
  if (alts.empty()) {  // not reached: the request parser checks the name
    return ApiError{400, "tool_choice names no tool of 'tools'", "invalid_request_error", "tool_choice"};
  }
  if (alts.size() > grammar::kMaxAlternatives) {
    return ApiError{400, fmt::format("tool_choice 'required' is supported with at most {} tools ({} given): name one "
                                     "function instead", grammar::kMaxAlternatives, alts.size()),
                    "invalid_request_error", "tool_choice"};
  }
  std::vector<grammar::GrammarPiece> pieces;
  if (alts.size() == 1) {
    pieces = {grammar::GrammarPiece::text(alts[0].prefix), alts[0].arguments, grammar::GrammarPiece::text(alts[0].suffix)};
  } else {
    // The frames' common start before the choice, so the alternatives are followed apart from their first byte on.
    size_t common = alts[0].prefix.size();
    for (const Alternative& a : alts) {
      common = std::min(common, a.prefix.size());
      common = static_cast<size_t>(std::mismatch(a.prefix.begin(), a.prefix.begin() + static_cast<std::ptrdiff_t>(common),
                                                  alts[0].prefix.begin()).first - a.prefix.begin());
    }
    std::vector<std::vector<grammar::GrammarPiece>> choice;
    for (Alternative& a : alts) {
      choice.push_back({grammar::GrammarPiece::text(a.prefix.substr(common)), std::move(a.arguments),
                        grammar::GrammarPiece::text(a.suffix)});
    }
    pieces = {grammar::GrammarPiece::text(alts[0].prefix.substr(0, common)), grammar::GrammarPiece::choice(std::move(choice))};
  }
  auto compiled = grammar::compile_sequence(pieces);
  if (const auto* e = std::get_if<grammar::SchemaError>(&compiled)) {
    return ApiError{400, "cannot force a tool call: " + e->message, "invalid_request_error", "tool_choice"};
  }
  out.grammar = std::get<grammar::GrammarPtr>(std::move(compiled));
  return out;
}

}  // namespace tandem::server
