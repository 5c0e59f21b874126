#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "server/access_policy.h"
#include "server/forced_tool_call.h"
#include "server/generation.h"
#include "server/http_transport.h"
#include "server/metrics.h"
#include "server/model_catalog.h"
#include "server/ollama_api.h"
#include "server/openai_request.h"
#include "server/prompt_encoder.h"
#include "server/responses.h"
#include "server/tool_calls.h"
#include "server/tool_prompt.h"

namespace tandem::server {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(100);
constexpr auto kKeepAliveAfter = std::chrono::seconds(1);
// The Ollama API level /api/version reports (what clients check features against).
constexpr const char* kOllamaApiVersion = "0.12.0";

// An OpenAI error object, or Ollama's {"error": "message"} on the Ollama routes.
void send_error(httplib::Response& res, const ApiError& e, bool ollama = false) {
  res.status = e.status;
  res.set_content(dump(ollama ? ollama_error(e.message) : e.to_json()), "application/json");
}

// What a request cut by shutdown gets: a 503 (non-streaming) or an error event (streaming).
ApiError shutdown_cut_error() {
  return ApiError{503, "the server shut down before this request finished: its output was cut; retry later",
                  "server_error", "", "server_shutdown"};
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// What a generation endpoint needs once the request is parsed: the prompt tokens and the options.
struct Prepared {
  ApiKind kind;
  std::string model;  // the served name answering
  CommonOptions options;
  std::vector<int32_t> prompt;
  bool split_reasoning = false;
  bool starts_in_reasoning = false;
  std::string echo;              // legacy completions' echo: the prompt's text, sent before the completion
  std::optional<ToolCallSyntax> tool_syntax;  // parse tool calls in the output
  size_t max_tool_calls = SIZE_MAX;
  bool forced_tool_call = false;  // options.grammar is a tool call's (tool_choice required / named)
  std::vector<grammar::GrammarConstraint::SpecialToken> grammar_specials;  // tokens the grammar's 0xF8+ bytes stand for
  bool ollama = false;           // answer in Ollama's format (NDJSON, {"error": ...})
  bool ollama_generate = false;  // /api/generate's `response` rather than /api/chat's `message`
};

}  // namespace

struct HttpServer::Impl {
  ServerConfig config;
  ModelResources model;
  GuardedHttpServer http;
  AccessPolicy access;
  ModelCatalog catalog;
  PromptEncoder prompt_encoder;
  ToolCallSyntax tool_syntax;          // how the model writes tool calls (kNone: not known)
  TemplateToolSupport tool_support;    // what its chat template does with tools
  ServerMetrics metrics;
  std::thread listener;
  std::atomic<bool> draining{false};
  int bound_port = 0;
  std::mutex sessions_mutex;
  std::set<std::shared_ptr<GenerationSession>> sessions;  // in flight, for shutdown

  Impl(ServerConfig c, ModelResources m)
      : config(std::move(c)),
        model(std::move(m)),
        http(config.connections),
        access(config.api_key, config.allowed_origins),
        catalog(config.served_model_names, config.model_aliases),
        prompt_encoder(model.tokenizer) {
    if (!model.vocab) model.vocab = grammar::VocabTrie::build(model.tokenizer);
    if (model.chat_template) {
      tool_syntax = detect_tool_syntax(*model.tokenizer, model.chat_template->source());
      tool_support = probe_tool_support(*model.chat_template, model.bos_text, model.eos_text);
    }
    spdlog::info("tool calls: syntax {}; the chat template {} tools{}", tool_syntax.name(),
                 tool_support.renders_tools ? "renders" : "has no section for (a system prompt describes them)",
                 tool_support.renders_tool_calls ? ", renders assistant tool calls" : "");
  }

  void routes();
  bool authorized(const httplib::Request& req, httplib::Response& res, bool ollama = false);
  // A POST body must be JSON (415 otherwise); checked before anything else is done with it.
  bool json_body(const httplib::Request& req, httplib::Response& res, bool ollama = false);
  std::optional<ApiError> resolve_model(const std::string& requested, Prepared& p) const;
  // The chat prompt text the template (and the server's tools section) makes of a request.
  std::optional<ApiError> render_chat(const ChatRequest& r, std::string& prompt) const;
  std::optional<ApiError> prepare_chat(const ChatRequest& r, Prepared& p);
  std::optional<ApiError> prepare_completion(const CompletionRequest& r, Prepared& p);
  void generate(Prepared p, const httplib::Request& req, httplib::Response& res);
  void stream_ollama(std::shared_ptr<GenerationSession> session, std::string model, bool generate_api,
                     Clock::time_point started, httplib::Response& res);
  void ollama_routes();
  void ollama_generation(const httplib::Request& req, httplib::Response& res, bool generate_api);
  OllamaTimings ollama_timings(const GenerationSession& s, Clock::time_point started) const {
    const auto ns = [](double seconds) { return static_cast<int64_t>(seconds * 1e9); };
    OllamaTimings t;
    t.total_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count();
    t.prompt_eval_ns = s.seconds_to_first_token() >= 0 ? ns(s.seconds_to_first_token()) : t.total_ns;
    t.eval_ns = std::max<int64_t>(0, t.total_ns - t.prompt_eval_ns);
    t.prompt_tokens = s.prompt_tokens();
    t.eval_tokens = s.completion_tokens();
    return t;
  }
  nlohmann::json model_object(const std::string& id) const {
    return {{"id", id}, {"object", "model"}, {"created", unix_now()}, {"owned_by", "tandem"},
            {"max_model_len", config.context_tokens}};
  }
  void track(const std::shared_ptr<GenerationSession>& s, bool add) {
    std::lock_guard lock(sessions_mutex);
    if (add) sessions.insert(s); else sessions.erase(s);
  }
  // A generation request's end, whatever its outcome: no longer tracked nor in flight.
  void release(const std::shared_ptr<GenerationSession>& session) {
    track(session, false);
    metrics.in_flight--;
  }
  // A stream's end (its content provider released): a stream that neither failed (counted when its error was
  // sent) nor completed lost its client, so its generation is cancelled.
  void stream_released(const std::shared_ptr<GenerationSession>& session, bool failed, bool completed, bool success) {
    if (!failed) {
      if (!success || !completed) {
        session->cancel();
        metrics.requests_disconnected++;
      } else {
        metrics.requests_ok++;
      }
    }
    release(session);
  }
  void finish_metrics(const GenerationSession& s, Clock::time_point started) {
    const double total = std::chrono::duration<double>(Clock::now() - started).count();
    metrics.request_duration.observe(total);
    if (s.seconds_to_first_token() >= 0) metrics.time_to_first_token.observe(s.seconds_to_first_token());
    if (s.completion_tokens() > 1) {
      metrics.time_per_output_token.observe((total - s.seconds_to_first_token()) / static_cast<double>(s.completion_tokens() - 1));
    }
  }
};

bool HttpServer::Impl::authorized(const httplib::Request& req, httplib::Response& res, bool ollama) {
  if (access.authorized(req.get_header_value("Authorization"))) return true;
  metrics.requests_client_error++;
  send_error(res, ApiError{401, "invalid or missing API key (send 'Authorization: Bearer <key>')", "authentication_error",
                           "", "invalid_api_key"}, ollama);
  return false;
}

bool HttpServer::Impl::json_body(const httplib::Request& req, httplib::Response& res, bool ollama) {
  if (AccessPolicy::is_json(req.get_header_value("Content-Type"))) return true;
  metrics.requests_client_error++;
  send_error(res, ApiError{415, "the request body must be JSON: send 'Content-Type: application/json'",
                           "invalid_request_error", "", "unsupported_media_type"}, ollama);
  return false;
}

std::optional<ApiError> HttpServer::Impl::resolve_model(const std::string& requested, Prepared& p) const {
  if (auto name = catalog.resolve(requested)) {
    p.model = *name;
    return std::nullopt;
  }
  return ApiError{404, fmt::format("the model '{}' does not exist on this server (it serves '{}')", requested,
                                   catalog.primary()), "invalid_request_error", "model", "model_not_found"};
}

std::optional<ApiError> HttpServer::Impl::render_chat(const ChatRequest& r, std::string& prompt) const {
  if (!model.chat_template) return ApiError{400, "this model has no chat template: use /v1/completions"};
  const bool has_tools = r.tools.is_array() && !r.tools.empty();
  const bool tools_on = has_tools && r.tool_choice != ToolChoice::kNone;
  const bool history_has_calls = std::any_of(r.messages.begin(), r.messages.end(),
                                             [](const auto& m) { return m.contains("tool_calls"); });
  if (tools_on && !tool_syntax.enabled() && !tool_support.renders_tools) {
    return ApiError{400, "this model's chat template has no place for tools and its tool-call format is not known to "
                         "this server", "invalid_request_error", "tools"};
  }
  if (history_has_calls && !tool_support.renders_tool_calls && !tool_syntax.enabled()) {
    return ApiError{400, "this model's chat template does not render assistant tool_calls and its tool-call format is "
                         "not known to this server", "invalid_request_error", "messages"};
  }
  // Everything the request hands to the template is text: added-token spellings in it must stay text. The markup
  // the server adds (tool-call syntax, the tools section) is added after, so its special tokens stay special.
  nlohmann::ordered_json messages = r.messages;
  shape_tool_history(messages, tool_support);
  prompt_encoder.neutralize(messages);
  if (history_has_calls && !tool_support.renders_tool_calls) calls_as_text(messages, tool_syntax);
  nlohmann::ordered_json extra = r.template_kwargs;
  prompt_encoder.neutralize(extra);
  if (tools_on) {
    nlohmann::ordered_json tools = r.tools;
    prompt_encoder.neutralize(tools);
    if (tool_support.renders_tools) {
      extra["tools"] = std::move(tools);
    } else {
      add_system_text(messages, tool_system_prompt(tool_syntax, tools, !r.parallel_tool_calls));
    }
  }
  auto rendered = model.chat_template->render_chat(messages, true, model.bos_text, model.eos_text, extra);
  if (!rendered) return ApiError{400, "cannot apply the chat template: " + rendered.status().message()};
  prompt = std::move(rendered.value());
  if (config.force_think && !prompt.ends_with("<think>\n")) prompt += "<think>\n";
  return std::nullopt;
}

std::optional<ApiError> HttpServer::Impl::prepare_chat(const ChatRequest& r, Prepared& p) {
  if (auto e = resolve_model(r.options.model, p)) return e;
  std::string prompt;
  if (auto e = render_chat(r, prompt)) return e;
  const bool has_tools = r.tools.is_array() && !r.tools.empty();
  const bool tools_on = has_tools && r.tool_choice != ToolChoice::kNone;
  p.kind = ApiKind::Chat;
  p.options = r.options;
  const bool forced = r.tool_choice == ToolChoice::kRequired || r.tool_choice == ToolChoice::kFunction;
  if (forced) {
    if (p.options.grammar) {
      return ApiError{400, "a forced tool_choice ('required' or a named function) cannot be combined with a JSON "
                           "response_format", "invalid_request_error", "tool_choice"};
    }
    auto call = forced_tool_call_grammar(tool_syntax, *model.tokenizer, *model.vocab, r.tools,
                                         r.tool_choice == ToolChoice::kFunction
                                             ? std::optional<std::string>(r.tool_choice_function)
                                             : std::nullopt);
    if (auto* e = std::get_if<ApiError>(&call)) return std::move(*e);
    auto& forced_call = std::get<ForcedToolCall>(call);
    p.options.grammar = std::move(forced_call.grammar);
    p.grammar_specials = std::move(forced_call.special_tokens);
    p.forced_tool_call = true;
  }
  std::string_view tail(prompt);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.remove_suffix(1);
  p.starts_in_reasoning = tail.ends_with("<think>");
  p.split_reasoning = true;
  if (p.options.grammar) {
    // The answer is the JSON document (or the forced call) alone: an opened thinking block is closed (empty)
    // before it.
    if (p.starts_in_reasoning) prompt += "</think>\n\n";
    p.starts_in_reasoning = false;
    p.split_reasoning = false;
  }
  p.prompt = prompt_encoder.encode_rendered(prompt);
  if (tools_on && tool_syntax.enabled()) {
    p.tool_syntax = tool_syntax;
    p.max_tool_calls = r.parallel_tool_calls && !forced ? SIZE_MAX : 1;
  }
  if (has_tools && r.tool_choice == ToolChoice::kNone) {
    // "none": the model must not call. The tools are not in the prompt, and the tokens opening a call are banned.
    for (int32_t id : tool_syntax.opener_ids) p.options.sampling.logit_bias.emplace_back(id, -1e9f);
  }
  return std::nullopt;
}

std::optional<ApiError> HttpServer::Impl::prepare_completion(const CompletionRequest& r, Prepared& p) {
  if (auto e = resolve_model(r.options.model, p)) return e;
  p.kind = ApiKind::Completion;
  p.options = r.options;
  if (const auto* text = std::get_if<std::string>(&r.prompt)) {
    // A raw prompt is model input, as in llama.cpp and vLLM: special-token text in it is parsed unless the
    // request says "parse_special": false.
    p.prompt = model.tokenizer->encode(*text, /*add_special=*/true, r.parse_special);
  } else {
    p.prompt = std::get<std::vector<int32_t>>(r.prompt);
    for (int32_t id : p.prompt) {
      if (id >= model.tokenizer->vocab_size()) {
        return ApiError{400, fmt::format("token id {} is outside the vocabulary of {} tokens", id, model.tokenizer->vocab_size()),
                        "invalid_request_error", "prompt"};
      }
    }
  }
  if (p.prompt.empty()) return ApiError{400, "the prompt is empty", "invalid_request_error", "prompt"};
  if (r.echo) {
    const auto* text = std::get_if<std::string>(&r.prompt);
    p.echo = text ? *text : model.tokenizer->decode(p.prompt);
  }
  return std::nullopt;
}

void HttpServer::Impl::generate(Prepared p, const httplib::Request& req, httplib::Response& res) {
  const auto started = Clock::now();
  const bool ollama = p.ollama, ollama_generate = p.ollama_generate;
  const auto fail = [ollama](httplib::Response& r, const ApiError& e) { send_error(r, e, ollama); };
  const auto n_prompt = static_cast<int64_t>(p.prompt.size());
  const int64_t room = config.context_tokens - n_prompt;
  if (room < 1) {
    metrics.requests_client_error++;
    return fail(res, ApiError{400, fmt::format("the prompt has {} tokens; this server's context allows at most {} "
                                               "tokens including at least one generated token",
                                               n_prompt, config.context_tokens), "invalid_request_error", "messages",
                              "context_length_exceeded"});
  }
  int64_t max_tokens = std::min(p.options.max_tokens.value_or(config.max_new_tokens), config.max_new_tokens);
  if (p.options.max_tokens && max_tokens > room) {
    metrics.requests_client_error++;
    return fail(res, ApiError{400, fmt::format("the context allows {} tokens: the prompt has {} and max_tokens asks for {}",
                                               config.context_tokens, n_prompt, max_tokens),
                              "invalid_request_error", "max_tokens", "context_length_exceeded"});
  }
  max_tokens = std::min(max_tokens, room);
  if (p.options.test_forced_output) {
    if (!config.test_hooks) {
      metrics.requests_client_error++;
      return fail(res, ApiError{400, "'tandem_test_forced_output' is a test hook: start the server with --test-hooks",
                                "invalid_request_error", "tandem_test_forced_output"});
    }
    p.options.sampling.forced_prefix = model.tokenizer->encode(*p.options.test_forced_output, false, true);
  }
  for (const auto& [token, bias] : p.options.sampling.logit_bias) {
    if (token >= model.tokenizer->vocab_size()) {
      metrics.requests_client_error++;
      return fail(res, ApiError{400, fmt::format("logit_bias: token id {} is outside the vocabulary of {} tokens",
                                                 token, model.tokenizer->vocab_size()),
                                "invalid_request_error", "logit_bias"});
    }
  }
  std::shared_ptr<TokenConstraint> constraint;
  if (p.options.grammar) {
    if (model.stop_token_ids.empty()) {
      metrics.requests_client_error++;
      return fail(res, ApiError{400, "this model has no end-of-sequence token, which constrained decoding needs",
                                "invalid_request_error", "response_format"});
    }
    // Budget-aware closing needs a token per byte of the shortest document and one for the end token.
    const uint64_t shortest = p.options.grammar->min_bytes();
    if (shortest + 1 > static_cast<uint64_t>(max_tokens)) {
      metrics.requests_client_error++;
      const char* what = p.forced_tool_call ? "the forced tool call: its shortest call" : "the response format: its "
                                                                                         "shortest document";
      return fail(res, ApiError{400, fmt::format("max_tokens {} is too small for {} takes {} bytes, so at least {} "
                                                 "tokens are needed", max_tokens, what, shortest, shortest + 1),
                                "invalid_request_error",
                                p.options.max_tokens ? "max_tokens" : p.forced_tool_call ? "tool_choice" : "response_format"});
    }
    constraint = std::make_shared<grammar::GrammarConstraint>(p.options.grammar, model.vocab, model.stop_token_ids,
                                                               p.grammar_specials);
  }
  if (draining) {
    res.set_header("Retry-After", "5");
    return fail(res, ApiError{503, "the server is shutting down", "server_error"});
  }
  if (metrics.in_flight.fetch_add(1) >= config.max_batch_size + config.max_queue) {
    metrics.in_flight--;
    metrics.requests_rejected_busy++;
    res.set_header("Retry-After", "1");
    return fail(res, ApiError{503, "the request queue is full; retry later", "server_error"});
  }

  SessionOptions so;
  so.request.prompt = std::move(p.prompt);
  so.request.sampling = p.options.sampling;
  if (!p.options.has_seed) so.request.sampling.seed = std::random_device{}();
  so.request.max_new_tokens = max_tokens;
  so.request.stop_token_ids = model.stop_token_ids;
  so.request.top_logprobs = p.options.top_logprobs;
  so.request.constraint = std::move(constraint);
  so.stop_strings = p.options.stop;
  so.split_reasoning = p.split_reasoning;
  so.starts_in_reasoning = p.starts_in_reasoning;
  so.logprobs = p.options.logprobs;
  so.tool_syntax = p.tool_syntax;
  so.max_tool_calls = p.max_tool_calls;
  auto session_or = GenerationSession::start(*model.engine, model.tokenizer, std::move(so));
  if (!session_or) {
    metrics.in_flight--;
    metrics.requests_client_error++;
    return fail(res, ApiError{400, session_or.status().message()});
  }
  std::shared_ptr<GenerationSession> session = session_or.value();
  track(session, true);
  const ResponseHeader header{p.kind, new_response_id(p.kind), unix_now(), p.model};

  if (!p.options.stream) {
    std::string reasoning, content, finish, error;
    bool cut_by_shutdown = false, client_gone = false;
    std::vector<TokenLogprobInfo> logprobs;
    std::vector<ToolCall> tool_calls;
    for (;;) {
      if (!client_gone && !http.peer_connected(req)) {
        session->cancel();  // nobody is waiting for the answer: free the slot and its pages now
        client_gone = true;
      }
      GenerationDelta d = session->next(kPollInterval);
      reasoning += d.reasoning;
      content += d.content;
      logprobs.insert(logprobs.end(), d.logprobs.begin(), d.logprobs.end());
      apply_fragments(tool_calls, d.tool_calls);  // as a streaming client assembles them: the same calls
      if (d.finished) {
        finish = d.finish_reason;
        error = d.error;
        cut_by_shutdown = d.cut_by_shutdown;
        break;
      }
    }
    if (client_gone) {
      metrics.requests_disconnected++;
      release(session);
      return;
    }
    if (cut_by_shutdown) {
      res.set_header("Retry-After", "5");
      fail(res, shutdown_cut_error());
      metrics.requests_server_error++;
      release(session);
      return;
    }
    if (!error.empty()) {
      spdlog::error("request {} failed: {}", header.id, error);
      fail(res, ApiError{500, "generation failed: " + error, "server_error"});
      metrics.requests_server_error++;
      release(session);
      return;
    }
    if (ollama) {
      res.set_content(dump(ollama_final(ollama_generate, p.model, reasoning, content, finish,
                                        ollama_timings(*session, started), ollama_tool_calls(tool_calls))),
                      "application/json");
    } else {
      const nlohmann::json lp = p.options.logprobs ? logprobs_json(p.kind, logprobs) : nlohmann::json(nullptr);
      res.set_content(dump(full_response(header, reasoning, p.echo + content, finish, lp, session->prompt_tokens(),
                                         session->completion_tokens(), tool_calls)),
                      "application/json");
    }
    finish_metrics(*session, started);
    metrics.requests_ok++;
    release(session);
    return;
  }

  if (ollama) return stream_ollama(session, p.model, ollama_generate, started, res);

  struct StreamState {
    std::string echo;  // sent with the first chunk
    bool sent_first = false, done = false, completed = false, failed = false;
    size_t text_offset = 0;
    Clock::time_point last_write = Clock::now();
  };
  auto state = std::make_shared<StreamState>();
  state->echo = std::move(p.echo);
  const bool include_usage = p.options.include_usage, want_logprobs = p.options.logprobs;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, session, state, header, include_usage, want_logprobs, started](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) {
          state->last_write = Clock::now();
          return sink.write(s.data(), s.size());
        };
        if (state->done) {
          sink.done();
          return true;
        }
        GenerationDelta d = session->next(kPollInterval);
        const bool has_text = !d.reasoning.empty() || !d.content.empty() || !d.logprobs.empty() ||
                              !tool_call_deltas_json(d.tool_calls).empty();
        if (!state->sent_first || has_text) {
          nlohmann::json lp = nullptr;
          if (want_logprobs && !d.logprobs.empty()) {
            lp = logprobs_json(header.kind, d.logprobs, state->text_offset);
          }
          state->text_offset += d.content.size();
          const std::string content = state->sent_first ? std::move(d.content) : state->echo + d.content;
          if (!write(sse_event(chunk(header, !state->sent_first, d.reasoning, content, "", lp, d.tool_calls)))) return false;
          state->sent_first = true;
        } else if (Clock::now() - state->last_write > kKeepAliveAfter) {
          if (!write(": keep-alive\n\n")) return false;  // also how a vanished client is noticed while queued
        }
        if (d.finished && !d.error.empty()) {
          // Generation failed mid-stream: an OpenAI-style error event, so clients do not take the cut for a stop.
          spdlog::error("request {} failed: {}", header.id, d.error);
          const ApiError e{500, "generation failed: " + d.error, "server_error"};
          if (!write(sse_event(nlohmann::json{{"error", e.to_json()["error"]}}) + "data: [DONE]\n\n")) return false;
          metrics.requests_server_error++;
          state->failed = true;
          state->done = true;
          sink.done();
          return true;
        }
        if (d.finished && d.cut_by_shutdown) {
          // Cut by shutdown: an error event rather than a finish_reason, so the client knows it is incomplete.
          const nlohmann::json e = shutdown_cut_error().to_json();
          if (!write(sse_event(nlohmann::json{{"error", e["error"]}}) + "data: [DONE]\n\n")) return false;
          metrics.requests_server_error++;
          state->failed = true;
          state->done = true;
          sink.done();
          return true;
        }
        if (d.finished) {
          std::string tail = sse_event(chunk(header, false, "", "", d.finish_reason, nullptr));
          if (include_usage) tail += sse_event(usage_chunk(header, session->prompt_tokens(), session->completion_tokens()));
          tail += "data: [DONE]\n\n";
          if (!write(tail)) return false;
          finish_metrics(*session, started);
          state->completed = true;
          state->done = true;
          sink.done();
        }
        return true;
      },
      [this, session, state](bool success) { stream_released(session, state->failed, state->completed, success); });
}

void HttpServer::Impl::stream_ollama(std::shared_ptr<GenerationSession> session, std::string model, bool generate_api,
                                     Clock::time_point started, httplib::Response& res) {
  struct StreamState {
    bool done = false, completed = false, failed = false;
    Clock::time_point last_write = Clock::now();
    std::vector<ToolCall> calls;  // tool calls so far; Ollama gets each whole, once it has ended
    size_t calls_sent = 0, calls_ended = 0;
  };
  auto state = std::make_shared<StreamState>();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "application/x-ndjson",
      [this, session, state, model, generate_api, started](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) {
          state->last_write = Clock::now();
          return sink.write(s.data(), s.size());
        };
        if (state->done) {
          sink.done();
          return true;
        }
        GenerationDelta d = session->next(kPollInterval);
        apply_fragments(state->calls, d.tool_calls);
        for (const ToolCallFragment& f : d.tool_calls) {
          if (f.end) state->calls_ended = std::max(state->calls_ended, f.index + 1);
        }
        nlohmann::json ended_calls = nullptr;
        if (state->calls_ended > state->calls_sent) {
          ended_calls = ollama_tool_calls({state->calls.begin() + static_cast<std::ptrdiff_t>(state->calls_sent),
                                           state->calls.begin() + static_cast<std::ptrdiff_t>(state->calls_ended)});
          state->calls_sent = state->calls_ended;
        }
        if (!d.reasoning.empty() || !d.content.empty() || !ended_calls.is_null()) {
          if (!write(ndjson_line(ollama_partial(generate_api, model, d.reasoning, d.content, ended_calls)))) return false;
        } else if (!d.finished && Clock::now() - state->last_write > kKeepAliveAfter) {
          // NDJSON has no comments: an empty partial keeps the line alive and notices a vanished client.
          if (!write(ndjson_line(ollama_partial(generate_api, model, "", "")))) return false;
        }
        if (d.finished && (!d.error.empty() || d.cut_by_shutdown)) {
          // A last line {"error": ...}, so the client does not take the cut for a normal end.
          if (!d.error.empty()) spdlog::error("ollama request failed: {}", d.error);
          const std::string message = d.cut_by_shutdown ? shutdown_cut_error().message : "generation failed: " + d.error;
          if (!write(ndjson_line(ollama_error(message)))) return false;
          metrics.requests_server_error++;
          state->failed = true;
          state->done = true;
          sink.done();
          return true;
        }
        if (d.finished) {
          if (!write(ndjson_line(ollama_final(generate_api, model, "", "", d.finish_reason,
                                              ollama_timings(*session, started))))) {
            return false;
          }
          finish_metrics(*session, started);
          state->completed = true;
          state->done = true;
          sink.done();
        }
        return true;
      },
      [this, session, state](bool success) { stream_released(session, state->failed, state->completed, success); });
}

void HttpServer::Impl::ollama_generation(const httplib::Request& req, httplib::Response& res, bool generate_api) {
  if (!authorized(req, res, true) || !json_body(req, res, true)) return;
  auto parsed = generate_api ? parse_ollama_generate(req.body, config.limits) : parse_ollama_chat(req.body, config.limits);
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    metrics.requests_client_error++;
    return send_error(res, *e, true);
  }
  OllamaRequest& r = std::get<OllamaRequest>(parsed);
  const std::optional<std::string> name = catalog.resolve(r.model);
  if (!name) {
    metrics.requests_client_error++;
    return send_error(res, ollama_model_not_found(r.model), true);
  }
  if (r.load_only) {
    // Ollama's "load the model" request (no prompt, no messages): the model is always loaded here.
    nlohmann::json j = ollama_partial(generate_api, *name, "", "");
    j["done"] = true;
    j["done_reason"] = "load";
    res.set_content(ndjson_line(j), r.stream ? "application/x-ndjson" : "application/json");
    return;
  }
  Prepared p;
  std::optional<ApiError> error;
  if (auto* chat = std::get_if<ChatRequest>(&r.request)) {
    error = prepare_chat(*chat, p);
  } else {
    error = prepare_completion(std::get<CompletionRequest>(r.request), p);
  }
  if (error) {
    metrics.requests_client_error++;
    return send_error(res, error->status == 404 ? ollama_model_not_found(r.model) : *error, true);
  }
  p.ollama = true;
  p.ollama_generate = generate_api;
  generate(std::move(p), req, res);
}

void HttpServer::Impl::ollama_routes() {
  http.Post("/api/chat", [this](const httplib::Request& req, httplib::Response& res) { ollama_generation(req, res, false); });
  http.Post("/api/generate", [this](const httplib::Request& req, httplib::Response& res) { ollama_generation(req, res, true); });
  http.Get("/api/version", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res, true)) return;
    res.set_content(dump({{"version", kOllamaApiVersion}}), "application/json");
  });
  http.Get("/api/tags", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res, true)) return;
    res.set_content(dump(ollama_tags(catalog.served(), model.ollama_info)), "application/json");
  });
  http.Get("/api/ps", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res, true)) return;
    res.set_content(dump(ollama_ps(catalog.served(), model.ollama_info, config.context_tokens)), "application/json");
  });
  http.Post("/api/show", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res, true) || !json_body(req, res, true)) return;
    auto parsed = parse_ollama_show(req.body);
    std::optional<ApiError> error;
    if (auto* e = std::get_if<ApiError>(&parsed)) {
      error = *e;
    } else if (!catalog.resolve(std::get<std::string>(parsed))) {
      error = ollama_model_not_found(std::get<std::string>(parsed));
    }
    if (error) {
      metrics.requests_client_error++;
      return send_error(res, *error, true);
    }
    res.set_content(dump(ollama_show(model.ollama_info, config.context_tokens)), "application/json");
  });
}

void HttpServer::Impl::routes() {
  http.set_payload_max_length(8 << 20);
  http.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("request failed: {}", what);
    send_error(res, ApiError{500, what, "server_error"});
  });
  http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const bool ollama = req.path.starts_with("/api/");
    if (res.status == 404) {
      send_error(res, ApiError{404, fmt::format("no route for {} {}", req.method, req.path), "invalid_request_error", "",
                               "not_found"}, ollama);
    } else if (res.status == 413) {
      send_error(res, ApiError{413, "the request body is too large"}, ollama);
    } else if (res.status >= 400 && res.status < 500) {
      send_error(res, ApiError{res.status, "malformed request"}, ollama);
    }
    if (res.status >= 400 && res.status < 500) metrics.requests_client_error++;
  });

  // CORS: allowed origins get their headers on every answer; preflights are answered here.
  http.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const std::string origin = req.get_header_value("Origin");
    if (!access.origin_allowed(origin)) return;
    res.set_header("Access-Control-Allow-Origin", origin);
    res.set_header("Vary", "Origin");
  });
  http.Options(R"(.*)", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && !access.origin_allowed(origin)) {
      metrics.requests_client_error++;
      return send_error(res, ApiError{403, fmt::format("the origin '{}' is not allowed (see --allowed-origins)", origin),
                                      "invalid_request_error", "", "origin_not_allowed"});
    }
    res.status = 204;
    res.set_header("Allow", "GET, POST, OPTIONS");
    if (origin.empty()) return;
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    const std::string asked = req.get_header_value("Access-Control-Request-Headers");
    res.set_header("Access-Control-Allow-Headers", asked.empty() ? "Authorization, Content-Type" : asked);
    res.set_header("Access-Control-Max-Age", "600");
  });

  // Parse, turn into prompt tokens, generate: the same for both generation endpoints.
  auto endpoint = [this](auto parse, auto prepare) {
    return [this, parse, prepare](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res) || !json_body(req, res)) return;
      auto parsed = parse(req.body, config.limits);
      Prepared p;
      std::optional<ApiError> error;
      if (auto* e = std::get_if<ApiError>(&parsed)) {
        error = *e;
      } else {
        error = (this->*prepare)(std::get<0>(parsed), p);
      }
      if (error) {
        metrics.requests_client_error++;
        return send_error(res, *error);
      }
      generate(std::move(p), req, res);
    };
  };
  const auto chat = endpoint(parse_chat_request, &Impl::prepare_chat);
  const auto completion = endpoint(parse_completion_request, &Impl::prepare_completion);
  http.Post("/v1/chat/completions", chat);
  http.Post("/chat/completions", chat);
  http.Post("/v1/completions", completion);
  http.Post("/completions", completion);
  ollama_routes();

  http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    nlohmann::json data = nlohmann::json::array();
    for (const std::string& name : catalog.served()) data.push_back(model_object(name));
    res.set_content(dump({{"object", "list"}, {"data", data}}), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    Prepared p;
    if (auto e = resolve_model(req.matches[1].str(), p)) {
      metrics.requests_client_error++;
      return send_error(res, *e);
    }
    res.set_content(dump(model_object(p.model)), "application/json");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining) {
      res.status = 503;
      res.set_content(R"({"status":"shutting down"})", "application/json");
      return;
    }
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    if (!config.metrics_public && !authorized(req, res)) return;
    res.set_content(metrics.render(model.engine->metrics()), "text/plain; version=0.0.4");
  });
  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res) || !json_body(req, res)) return;
    auto parsed = parse_json_object(req.body);
    if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const nlohmann::json& body = std::get<nlohmann::json>(parsed);
    const auto text = body.contains("content") ? body["content"] : body.value("prompt", nlohmann::json());
    if (!text.is_string()) return send_error(res, ApiError{400, "'content' must be a string", "invalid_request_error", "content"});
    const nlohmann::json add = body.value("add_special", nlohmann::json(false));
    if (!add.is_boolean()) return send_error(res, ApiError{400, "'add_special' must be a boolean", "invalid_request_error", "add_special"});
    const nlohmann::json parse_special = body.value("parse_special", nlohmann::json(true));
    if (!parse_special.is_boolean()) {
      return send_error(res, ApiError{400, "'parse_special' must be a boolean", "invalid_request_error", "parse_special"});
    }
    const auto ids = model.tokenizer->encode(text.get<std::string>(), add.get<bool>(), parse_special.get<bool>());
    res.set_content(dump({{"tokens", ids}}), "application/json");
  });
  // llama.cpp's /apply-template: the prompt a chat request becomes (a chat completion body in, {"prompt"} out).
  http.Post("/apply-template", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res) || !json_body(req, res)) return;
    auto parsed = parse_chat_request(req.body, config.limits);
    std::string prompt;
    std::optional<ApiError> error;
    Prepared p;
    if (auto* e = std::get_if<ApiError>(&parsed)) {
      error = *e;
    } else if (!(error = resolve_model(std::get<ChatRequest>(parsed).options.model, p))) {
      error = render_chat(std::get<ChatRequest>(parsed), prompt);
    }
    if (error) {
      metrics.requests_client_error++;
      return send_error(res, *error);
    }
    res.set_content(dump({{"prompt", prompt_encoder.readable(prompt)}}), "application/json");
  });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res) || !json_body(req, res)) return;
    auto parsed = parse_json_object(req.body);
    if (auto* e = std::get_if<ApiError>(&parsed)) return send_error(res, *e);
    const nlohmann::json& body = std::get<nlohmann::json>(parsed);
    const auto tokens = body.value("tokens", nlohmann::json());
    if (!tokens.is_array()) return send_error(res, ApiError{400, "'tokens' must be an array of token ids", "invalid_request_error", "tokens"});
    std::vector<int32_t> ids;
    for (const auto& t : tokens) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() >= model.tokenizer->vocab_size()) {
        return send_error(res, ApiError{400, "'tokens' must hold ids of the vocabulary", "invalid_request_error", "tokens"});
      }
      ids.push_back(t.get<int32_t>());
    }
    res.set_content(dump({{"content", model.tokenizer->decode(ids)}}), "application/json");
  });
}

HttpServer::HttpServer(ServerConfig config, ModelResources resources)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(resources))) {
  // A thread per connection: one for every generation request the server holds, as many as one client address
  // may hold on top, and some to spare, so that one client's slow or idle connections never take them all.
  const ServerConfig& c = impl_->config;
  const int per_client = c.connections.max_connections_per_client > 0 ? c.connections.max_connections_per_client : 64;
  const size_t threads = static_cast<size_t>(c.max_batch_size + c.max_queue + per_client + 16);
  impl_->http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl_->routes();
}

HttpServer::~HttpServer() {
  impl_->http.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

Status HttpServer::start() {
  Impl& m = *impl_;
  if (m.config.ssl_certfile.empty() != m.config.ssl_keyfile.empty()) {
    return Status::error("TLS needs both --ssl_certfile and --ssl_keyfile");
  }
  if (!m.config.ssl_certfile.empty()) {
    if (Status s = m.http.use_tls(m.config.ssl_certfile, m.config.ssl_keyfile); !s) return s;
  }
  auto port = m.http.bind_and_listen(m.config.host, m.config.port);
  if (!port) return port.status();
  m.bound_port = port.value();
  m.listener = std::thread([&m] { m.http.listen_after_bind(); });
  return Status::ok();
}

int HttpServer::port() const { return impl_->bound_port; }

void HttpServer::shutdown(std::chrono::milliseconds grace) {
  Impl& m = *impl_;
  m.draining = true;
  const auto deadline = Clock::now() + grace;
  while (m.metrics.in_flight.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  {
    std::lock_guard lock(m.sessions_mutex);
    for (const auto& s : m.sessions) s->cancel(CancelReason::Shutdown);
  }
  const auto cancel_deadline = Clock::now() + std::chrono::seconds(5);
  while (m.metrics.in_flight.load() > 0 && Clock::now() < cancel_deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  m.http.stop();
}

void HttpServer::wait() {
  if (impl_->listener.joinable()) impl_->listener.join();
}

}  // namespace tandem::server
