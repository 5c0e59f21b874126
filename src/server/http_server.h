// HttpServer: the OpenAI-compatible HTTP API over one Engine.
//
// Endpoints: POST /v1/chat/completions, POST /v1/completions (stream or not), GET /v1/models, GET
// /v1/models/{id}, GET /health, GET /metrics (Prometheus), POST /tokenize, POST /detokenize, POST /apply-template
// (llama.cpp's: the prompt text a chat request renders to, tools included), OPTIONS (CORS
// preflights), and the Ollama API (ollama_api.h: POST /api/chat, /api/generate, /api/show, GET /api/tags,
// /api/ps, /api/version), whose errors are {"error": "message"} with the same statuses. Errors use OpenAI's error object with the HTTP status that fits: 400 for bad requests
// (including prompts over the context and too many messages), 401 for a wrong API key (every route but
// /health, and /metrics unless metrics_public), 403 for a preflight from an origin not allowed, 404 for
// unknown paths and models (code model_not_found), 413 for oversized bodies and prompts, 415 for a POST that
// is not application/json, 429 for too many connections from one address, 503 with Retry-After when the queue
// is full or the server is shutting down. Chat message contents are text: only the chat template's markup
// becomes special tokens (prompt_encoder.h). A client that goes away, streaming or not, has its request
// cancelled within a step (pages freed). shutdown() stops taking generation requests, lets in-flight ones
// finish for a grace period, then cuts the rest (503, or an error event in a stream), and stops the listener.
// Constrained decoding (response_format json_object / json_schema, Ollama `format`): the output is the JSON
// document only (a prompt that opened a <think> block gets it closed first), finished within max_tokens (400 when
// max_tokens cannot hold the shortest document the schema allows), ending with "stop".
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.h"
#include "core/status.h"
#include "engine/engine.h"
#include "grammar/grammar_constraint.h"
#include "server/connection_policy.h"
#include "server/ollama_api.h"
#include "server/openai_request.h"
#include "tokenizer/tokenizer.h"

namespace tandem::server {

struct ServerConfig {
  std::string host = "0.0.0.0";
  int port = 10002;
  std::string api_key;              // empty: no authentication
  bool metrics_public = false;      // /metrics without the API key
  std::vector<std::string> allowed_origins;  // CORS: origins allowed to call the API ("*": any)
  std::vector<std::string> served_model_names;  // the model's ids (the first is the default); see model_catalog.h
  std::vector<std::string> model_aliases;       // other names accepted (general.name, the file name)
  int64_t max_new_tokens = 1024;    // default and upper bound of max_tokens
  int64_t context_tokens = 4096;    // prompt + completion limit (model context and KV pool)
  int max_batch_size = 4;
  int max_queue = 64;               // generation requests allowed beyond max_batch_size
  bool force_think = false;         // start the assistant turn with "<think>\n"
  bool test_hooks = false;          // accept the request field tandem_test_forced_output (tests only)
  RequestLimits limits;             // messages and text per request, checked before rendering
  ConnectionPolicy connections;     // timeouts, connections per client, listen backlog
  std::string ssl_certfile, ssl_keyfile;  // both set: HTTPS with this certificate chain and key (PEM)
};

struct ModelResources {
  Engine* engine = nullptr;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::optional<chat::ChatTemplate> chat_template;  // nullopt: /v1/chat/completions answers 400
  std::optional<std::string> bos_text, eos_text;
  std::vector<int32_t> stop_token_ids;               // end-of-generation tokens (EOS, <|im_end|>, ...)
  OllamaModelInfo ollama_info;                       // what /api/tags, /api/show and /api/ps report
  // The tokenizer's vocabulary as a byte trie for constrained decoding (response_format, Ollama format); built
  // from `tokenizer` when the server starts if not given.
  std::shared_ptr<const grammar::VocabTrie> vocab;
};

class HttpServer {
 public:
  HttpServer(ServerConfig config, ModelResources resources);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds (port 0: any free port) and serves on background threads.
  Status start();
  int port() const;
  void shutdown(std::chrono::milliseconds grace);
  void wait();  // returns after shutdown()

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::server
