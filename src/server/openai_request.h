// Parsing and validating OpenAI-style request bodies (/v1/chat/completions, /v1/completions).
//
// parse_*() accept exactly what the OpenAI API accepts for the fields Tandem supports and ignore unknown
// fields, as OpenAI does. A wrong type, an out-of-range value, a missing required field or n != 1 yields
// an ApiError naming the parameter (HTTP 400). Defaults that depend on the server (max tokens) are left
// unset here and filled in by the server. RequestLimits bound what a prompt may cost before it is rendered
// or tokenized: more messages than max_messages is a 400, more text (message contents and tools, or a
// completions prompt string) than max_content_bytes is a 413; both are checked before any per-message work.
// response_format {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}
// is compiled here (grammar.h); a schema keyword outside the supported subset is a 400 naming it, with param
// "response_format".
#pragma once

#include <cstdint>
#include <cstddef>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampler.h"
#include "grammar/grammar.h"

namespace tandem::server {

struct ApiError {
  int status = 400;
  std::string message{};
  std::string type = "invalid_request_error";
  std::string param{};  // the offending field, if any
  std::string code{};
  nlohmann::json to_json() const;
};

struct RequestLimits {
  size_t max_messages = 2048;             // OpenAI's own limit on the messages array
  size_t max_content_bytes = 2u << 20;    // text of all messages (+ tools), or of a prompt string
};

struct CommonOptions {
  std::string model;
  std::optional<int64_t> max_tokens;
  SamplingParams sampling;          // seed defaults to a random value when absent
  bool has_seed = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;       // stream_options.include_usage
  bool logprobs = false;
  int top_logprobs = 0;
  // "tandem_test_forced_output": text (special-token spellings parsed) the model is made to write first; a test
  // hook the server accepts only when started with --test-hooks.
  std::optional<std::string> test_forced_output;
  // response_format json_object / json_schema: the compiled grammar the output must follow (null: free text).
  grammar::GrammarPtr grammar;
};

// tool_choice: "auto" (the model may call), "none" (it must not), "required" / a named function (it must call, once:
// constrained decoding over the model's call syntax, server/forced_tool_call.h).
enum class ToolChoice { kAuto, kNone, kRequired, kFunction };

// Tool-related validation (400 naming the field): `tools` entries are {"type": "function", "function": {"name",
// "description"?, "parameters"? (an object), "strict"?}} with names of 1-64 letters, digits, '_', '-', '.', no
// duplicates; an assistant message's `tool_calls` entries need an `id`, type "function" (or none) and a
// `function` with a non-empty `name` (no control characters) and `arguments` as a string; a `tool` message needs
// a `tool_call_id` naming a call of the assistant message it follows (only tool messages between them).
struct ChatRequest {
  CommonOptions options;
  // Normalized: every content a string, except an assistant message with tool_calls and no text, whose content
  // is null; tool_calls entries hold exactly {id, type, function: {name, arguments}}.
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;     // null when absent
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string tool_choice_function;  // the name, for ToolChoice::kFunction
  bool parallel_tool_calls = true;
  nlohmann::ordered_json template_kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
};

struct CompletionRequest {
  CommonOptions options;
  std::variant<std::string, std::vector<int32_t>> prompt;
  bool echo = false;
  bool parse_special = true;  // special-token text in a string prompt becomes special tokens (raw prompt)
};

std::variant<ChatRequest, ApiError> parse_chat_request(const std::string& body, const RequestLimits& limits = {});
std::variant<CompletionRequest, ApiError> parse_completion_request(const std::string& body,
                                                                   const RequestLimits& limits = {});
// The member `name` of a JSON object body with its objects' keys in the order the client wrote them (the
// parsers above see sorted keys); null when absent or when the body is not an object. For what a chat template
// prints (tools).
nlohmann::ordered_json ordered_member(const std::string& body, const char* name);

// Parses a JSON object body (for /tokenize, /detokenize, the Ollama routes); ApiError when not an object, and,
// before anything is built, when a root "messages" array has more than max_messages entries.
std::variant<nlohmann::json, ApiError> parse_json_object(const std::string& body, size_t max_messages = SIZE_MAX);

}  // namespace tandem::server
