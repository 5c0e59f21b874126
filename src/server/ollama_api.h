// The Ollama API (/api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version): request
// translation and response bodies. http_server.cpp only registers the routes and runs the generation.
//
// Contract: parse_ollama_*() turn an Ollama body into the server's own ChatRequest / CompletionRequest, through
// the same validation and RequestLimits as the OpenAI endpoints (parse_chat_request / parse_completion_request),
// or an ApiError whose message is what Ollama clients get as {"error": message}. Nothing a request asks for is
// dropped when it would change the output: `format` ("json", or a JSON schema object) becomes the OpenAI
// response_format (a schema outside the supported subset is refused naming the keyword); `tools` go through the
// OpenAI validation, messages' tool_calls (no ids in Ollama: ids are made up here) and tool messages (matched to
// the calls before them, by `tool_name` when given, else in order) are translated; `images`, `template`,
// `context`, `suffix` and options the engine cannot honour are refused (400) naming the field; options without
// effect on the output (num_ctx, num_thread, num_gpu, ... see kIgnoredOptions in the .cpp) are accepted and
// ignored. `stream` defaults to true (NDJSON). Response helpers build Ollama's objects: partial ones with
// done: false, the last with done: true, done_reason and durations in nanoseconds. No exception leaves these
// functions.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/openai_request.h"
#include "server/tool_calls.h"

namespace tandem {
class GgufModel;
}

namespace tandem::server {

// What /api/tags, /api/show and /api/ps tell about the served model (read once from the GGUF).
struct OllamaModelInfo {
  std::string family;              // general.architecture
  std::string parameter_size;      // e.g. "671B", "1.2M"
  std::string quantization_level;  // the most common tensor type by bytes, e.g. "BF16", "Q4_K"
  int64_t size_bytes = 0;          // tensor bytes
  std::string modified_at;         // RFC 3339 (file modification time)
  std::string digest;              // 64 hex digits identifying the file (name, size, mtime; not a content hash)
  std::string template_text;       // the chat template source ("" without one)
  nlohmann::ordered_json model_info = nlohmann::ordered_json::object();  // scalar GGUF metadata (no tokenizer arrays)
};

// Never throws; fields it cannot read stay empty.
OllamaModelInfo describe_gguf(const GgufModel& gguf, const std::string& path);

struct OllamaRequest {
  bool generate = false;      // /api/generate (answers `response`) rather than /api/chat (answers `message`)
  bool load_only = false;     // no prompt / no messages: Ollama's "load the model" request, answered done at once
  bool raw = false;           // /api/generate raw: the prompt goes to the model without the template
  bool stream = true;         // NDJSON (Ollama's default) or one object
  std::string model;          // as requested (":latest" stripped)
  std::variant<ChatRequest, CompletionRequest> request;
};

std::variant<OllamaRequest, ApiError> parse_ollama_chat(const std::string& body, const RequestLimits& limits);
std::variant<OllamaRequest, ApiError> parse_ollama_generate(const std::string& body, const RequestLimits& limits);

// The model name of an /api/show body ("model", or the older "name").
std::variant<std::string, ApiError> parse_ollama_show(const std::string& body);

// "model 'x' not found" (Ollama's wording).
ApiError ollama_model_not_found(const std::string& requested);

struct OllamaTimings {
  int64_t total_ns = 0, prompt_eval_ns = 0, eval_ns = 0;
  int64_t prompt_tokens = 0, eval_tokens = 0;
};

std::string ollama_now();  // RFC 3339 UTC, for created_at
nlohmann::json ollama_error(const std::string& message);
// Ollama's message.tool_calls: [{"function": {"name", "arguments": object}}]; arguments that are not valid JSON
// are passed on as the string the model wrote.
nlohmann::json ollama_tool_calls(const std::vector<ToolCall>& calls);
// A partial object (done: false) with the text produced since the last one (and tool calls completed since:
// an array, or null for none).
nlohmann::json ollama_partial(bool generate, const std::string& model, const std::string& thinking,
                              const std::string& content, const nlohmann::json& tool_calls = nullptr);
// The last object (done: true); `thinking`/`content` carry the whole text for stream: false, "" when streaming.
// done_reason "tool_calls" is reported as "stop", as Ollama does.
nlohmann::json ollama_final(bool generate, const std::string& model, const std::string& thinking,
                            const std::string& content, const std::string& done_reason, const OllamaTimings& t,
                            const nlohmann::json& tool_calls = nullptr);
std::string ndjson_line(const nlohmann::json& j);  // one line, invalid UTF-8 replaced

nlohmann::json ollama_tags(const std::vector<std::string>& names, const OllamaModelInfo& info);
nlohmann::json ollama_ps(const std::vector<std::string>& names, const OllamaModelInfo& info, int64_t context_tokens);
nlohmann::json ollama_show(const OllamaModelInfo& info, int64_t context_tokens);

}  // namespace tandem::server
