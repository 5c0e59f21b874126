// `tandem serve`: the OpenAI-compatible server, with the flags of KTransformers' balance_serve backend.
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "app/runtime.h"
#include "chat/gguf_chat.h"
#include "engine/engine.h"
#include "server/http_server.h"
#include "tokenizer/tokenizer.h"

namespace tandem::app {

namespace {

struct ServeOptions {
  RuntimeOptions runtime;
  std::string backend_type = "balance_serve";
  server::ServerConfig server;
  double shutdown_grace_seconds = 10;
  double header_timeout_seconds = 10, body_timeout_seconds = 30;
};

std::chrono::milliseconds to_ms(double seconds) { return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)); }

// Token ids that end a generation: the EOS token and the end-of-turn tokens of known chat formats.
std::vector<int32_t> stop_tokens(const Tokenizer& tok) {
  std::vector<int32_t> ids;
  if (tok.eos_id() >= 0) ids.push_back(tok.eos_id());
  for (const char* text : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<｜end▁of▁sentence｜>"}) {
    if (auto id = tok.token_to_id(text); id && std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
  }
  return ids;
}

int run_serve(ServeOptions& o) {
  // Signals go to one waiting thread (below), never to the worker threads created from here on.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the server

  if (o.backend_type != "balance_serve") {
    spdlog::warn("--backend_type {}: Tandem implements the balance_serve design only; using it", o.backend_type);
  }
  SchedulerConfig& scheduler = o.runtime.scheduler;
  if (scheduler.cache_tokens <= int64_t{scheduler.max_batch_size} * o.server.max_new_tokens) {
    spdlog::warn("cache_lens {} <= max_batch_size {} x max_new_tokens {}: pages are allocated as requests grow, so this "
                 "works, but when all requests grow long at once some are preempted and recomputed",
                 scheduler.cache_tokens, scheduler.max_batch_size, o.server.max_new_tokens);
  }
  o.runtime.prefetch = true;
  auto runtime = build_runtime(o.runtime);
  if (!runtime) {
    fmt::print(stderr, "error: {}\n", runtime.status().message());
    return 1;
  }
  auto tokenizer = Tokenizer::from_gguf(*runtime->gguf);
  if (!tokenizer) {
    fmt::print(stderr, "error: {}: {}\n", o.runtime.gguf_path, tokenizer.status().message());
    return 1;
  }
  server::ModelResources resources;
  resources.tokenizer = tokenizer.value();
  resources.stop_token_ids = stop_tokens(*tokenizer.value());
  resources.ollama_info = server::describe_gguf(*runtime->gguf, o.runtime.gguf_path);
  if (auto chat = chat::read_gguf_chat_info(*runtime->gguf)) {
    auto tpl = chat::ChatTemplate::parse(chat->chat_template);
    if (tpl) {
      resources.chat_template = std::move(tpl.value());
    } else {
      spdlog::warn("the chat template does not parse ({}); /v1/chat/completions is disabled", tpl.status().message());
    }
    resources.bos_text = chat->bos_token;
    resources.eos_text = chat->eos_token;
  } else {
    spdlog::warn("{}; /v1/chat/completions is disabled", chat.status().message());
  }

  const ModelConfig& mc = runtime->model->config();
  scheduler.max_context = mc.context_length;
  auto engine_or = runtime->make_engine(scheduler);
  if (!engine_or) {
    fmt::print(stderr, "error: {}\n", engine_or.status().message());
    return 1;
  }
  Engine& engine = *engine_or.value();
  resources.engine = &engine;
  o.server.max_batch_size = scheduler.max_batch_size;
  o.server.context_tokens = std::min<int64_t>(mc.context_length, scheduler.cache_tokens);
  if (o.server.served_model_names.empty()) o.server.served_model_names.push_back(mc.name);
  // Also accepted as `model`: the GGUF's general.name and the file (or folder) name, with and without .gguf.
  const std::filesystem::path file = std::filesystem::path(o.runtime.gguf_path).lexically_normal();
  const std::filesystem::path base = file.has_filename() ? file.filename() : file.parent_path().filename();
  o.server.model_aliases = {mc.name, base.string(), base.stem().string()};
  o.server.connections.header_timeout = to_ms(o.header_timeout_seconds);
  o.server.connections.body_timeout = to_ms(o.body_timeout_seconds);
  server::HttpServer http(o.server, std::move(resources));
  if (Status s = http.start(); !s) {
    fmt::print(stderr, "error: {}\n", s.message());
    return 1;
  }
  engine.start();
  spdlog::info("backend {}; max_batch_size {}, chunk_size {}, cache_lens {} ({} pages of {}), max_new_tokens {}",
               runtime->describe(), scheduler.max_batch_size, scheduler.chunk_size, scheduler.cache_tokens,
               scheduler.page_count(), scheduler.page_size, o.server.max_new_tokens);
  spdlog::info("serving '{}' on {}://{}:{} (OpenAI API under /v1, Ollama API under /api)",
               o.server.served_model_names.front(), o.server.ssl_certfile.empty() ? "http" : "https", o.server.host,
               http.port());

  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("{} received: finishing in-flight requests (up to {:.0f} s), then stopping", strsignal(received),
               o.shutdown_grace_seconds);
  http.shutdown(std::chrono::milliseconds(static_cast<int64_t>(o.shutdown_grace_seconds * 1000)));
  http.wait();
  engine.stop();
  const EngineMetrics m = engine.metrics();
  spdlog::info("stopped: {} tokens generated, {} pages still referenced", m.scheduler.generated_tokens, m.scheduler.pages_used);
  return 0;
}

}  // namespace

void register_serve_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (KTransformers balance_serve flags)");
  auto o = std::make_shared<ServeOptions>();
  add_runtime_options(*cmd, o->runtime);
  cmd->add_option("--port", o->server.port, "Port")->capture_default_str();
  cmd->add_option("--host", o->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--max_new_tokens,--max-new-tokens", o->server.max_new_tokens, "Default and cap of max_tokens")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--backend_type,--backend-type", o->backend_type, "Only balance_serve")->capture_default_str();
  cmd->add_flag("--force_think,--force-think", o->server.force_think, "Start every answer with <think>\\n");
  cmd->add_option("--api-key,--api_key", o->server.api_key, "Require 'Authorization: Bearer KEY' (all but /health)");
  cmd->add_flag("--metrics-public,--metrics_public", o->server.metrics_public, "Serve /metrics without the API key");
  cmd->add_option("--allowed-origins,--allowed_origins", o->server.allowed_origins,
                  "CORS: origins web pages may call the API from (comma-separated, or *); default none")
      ->delimiter(',');
  cmd->add_option("--served-model-name,--served_model_name,--model_name", o->server.served_model_names,
                  "Model name(s) in the API, the first the default (default: the GGUF's general.name); the GGUF's "
                  "general.name and file name are accepted too");
  cmd->add_option("--max-messages,--max_messages", o->server.limits.max_messages, "Messages a chat request may have")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-content-bytes,--max_content_bytes", o->server.limits.max_content_bytes,
                  "Bytes of message text (and tools) or of a prompt string a request may have")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--header-timeout,--header_timeout", o->header_timeout_seconds,
                  "Seconds a client has to send a request's head once it starts")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--body-timeout,--body_timeout", o->body_timeout_seconds,
                  "Seconds a client has to send a request's body after its head")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-connections-per-client,--max_connections_per_client",
                  o->server.connections.max_connections_per_client,
                  "Connections one client address may have open (0: no limit; raise it behind a proxy)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--ssl_certfile,--ssl-certfile", o->server.ssl_certfile,
                  "Serve HTTPS: the certificate chain (PEM); needs --ssl_keyfile");
  cmd->add_option("--ssl_keyfile,--ssl-keyfile", o->server.ssl_keyfile, "Serve HTTPS: the private key (PEM)");
  cmd->add_option("--listen-backlog,--listen_backlog", o->server.connections.listen_backlog,
                  "Pending connections the kernel may queue")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--max-queue,--max_queue", o->server.max_queue, "Requests allowed to wait beyond max_batch_size")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_flag("--test-hooks", o->server.test_hooks,
                "Tests only: accept 'tandem_test_forced_output' (text the model is made to write first)")
      ->group("");  // hidden from --help
  cmd->add_option("--shutdown-grace", o->shutdown_grace_seconds, "Seconds in-flight requests get on SIGINT/SIGTERM")
      ->capture_default_str();
  cmd->callback([o, &exit_code] { exit_code = run_serve(*o); });
}

}  // namespace tandem::app
