// OpenAI response bodies: chat completions, text completions, their streaming chunks, and usage.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/generation.h"

namespace tandem::server {

enum class ApiKind { Chat, Completion };

struct ResponseHeader {
  ApiKind kind;
  std::string id;       // chatcmpl-... / cmpl-...
  int64_t created = 0;  // unix seconds
  std::string model;
};

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);

// logprobs object of one choice from the accumulated token infos (chat and legacy formats differ).
nlohmann::json logprobs_json(ApiKind kind, const std::vector<TokenLogprobInfo>& tokens, size_t text_offset_start = 0);

// A complete (non-streaming) response.
// With tool calls, message.tool_calls lists them and an empty content is null.
nlohmann::json full_response(const ResponseHeader& h, const std::string& reasoning, const std::string& content,
                             const std::string& finish_reason, const nlohmann::json& logprobs, int64_t prompt_tokens,
                             int64_t completion_tokens, const std::vector<ToolCall>& tool_calls = {});

// OpenAI's tool_calls entries: {id, type: "function", function: {name, arguments}}.
nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls);
// delta.tool_calls entries for streamed fragments: {index, id, type, function: {name, arguments}} for a call's
// first, {index, function: {arguments}} after; consecutive fragments of one call merged; empty ones left out.
nlohmann::json tool_call_deltas_json(const std::vector<ToolCallFragment>& fragments);

// One streaming chunk. `delta_*` may be empty; `first` adds the assistant role (chat); finish_reason
// empty means null.
nlohmann::json chunk(const ResponseHeader& h, bool first, const std::string& reasoning, const std::string& content,
                     const std::string& finish_reason, const nlohmann::json& logprobs,
                     const std::vector<ToolCallFragment>& tool_calls = {});
// The final usage-only chunk (stream_options.include_usage).
nlohmann::json usage_chunk(const ResponseHeader& h, int64_t prompt_tokens, int64_t completion_tokens);

// "data: <json>\n\n", invalid UTF-8 replaced.
std::string sse_event(const nlohmann::json& j);
std::string dump(const nlohmann::json& j);
std::string new_response_id(ApiKind kind);

}  // namespace tandem::server
