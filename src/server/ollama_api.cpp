#include "server/ollama_api.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <set>

#include <sys/stat.h>

#include <fmt/format.h>

#include "gguf/ggml_type.h"
#include "gguf/gguf_file.h"
#include "grammar/grammar.h"
#include "server/responses.h"

namespace tandem::server {

namespace {

// Options that cannot change the output here (memory, threads, context size within the server's own): accepted
// and ignored.
const std::set<std::string> kIgnoredOptions = {
    "num_ctx", "num_thread", "num_gpu", "main_gpu", "num_batch", "num_keep", "use_mmap", "use_mlock",
    "numa", "low_vram", "f16_kv", "vocab_only", "logits_all", "embedding_only"};

struct Refusal {
  std::string message;
};

[[noreturn]] void refuse(const std::string& message) { throw Refusal{message}; }

bool present(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && !it->is_null();
}

// Copies Ollama's `options` onto an OpenAI-shaped body (validated again by the OpenAI parser).
void map_options(const nlohmann::json& body, nlohmann::json& out) {
  if (!present(body, "options")) return;
  const nlohmann::json& o = body["options"];
  if (!o.is_object()) refuse("'options' must be an object");
  const auto num = [&](const char* k) {
    if (!o[k].is_number()) refuse(fmt::format("options.{} must be a number", k));
    return o[k].get<double>();
  };
  const double repeat_penalty = present(o, "repeat_penalty") ? num("repeat_penalty") : 1.0;
  for (const auto& [key, value] : o.items()) {
    if (value.is_null()) continue;
    const char* k = key.c_str();
    if (key == "num_predict") {
      if (!value.is_number_integer()) refuse("options.num_predict must be an integer");
      const int64_t n = value.get<int64_t>();
      if (n == -1 || n == -2) continue;  // unlimited / fill the context: the server's cap applies
      if (n < 1) refuse("options.num_predict must be -1, -2 or at least 1");
      out["max_tokens"] = n;
    } else if (key == "temperature" || key == "top_p" || key == "min_p" || key == "presence_penalty" ||
               key == "frequency_penalty") {
      num(k);
      out[key] = value;
    } else if (key == "top_k") {
      if (!value.is_number_integer()) refuse("options.top_k must be an integer");
      out["top_k"] = value.get<int64_t>() <= 0 ? 0 : value.get<int64_t>();  // <= 0: disabled, as in Ollama
    } else if (key == "repeat_penalty") {
      num(k);
      out["repetition_penalty"] = value;
    } else if (key == "repeat_last_n") {
      // The engine's repetition penalty covers the whole context (-1); another window is refused unless no
      // penalty applies.
      if (!value.is_number_integer()) refuse("options.repeat_last_n must be an integer");
      if (value.get<int64_t>() != -1 && repeat_penalty != 1.0) {
        refuse("options.repeat_last_n: only -1 (the whole context) is supported with a repeat_penalty");
      }
    } else if (key == "seed") {
      if (!value.is_number_integer()) refuse("options.seed must be an integer");
      out["seed"] = value;
    } else if (key == "stop") {
      if (!value.is_array() && !value.is_string()) refuse("options.stop must be an array of strings");
      out["stop"] = value;
    } else if (key == "typical_p" || key == "tfs_z") {
      if (num(k) != 1.0) refuse(fmt::format("options.{} is not supported (only 1.0, which disables it)", key));
    } else if (key == "mirostat") {
      if (num(k) != 0) refuse("options.mirostat is not supported (only 0, which disables it)");
    } else if (key == "mirostat_tau" || key == "mirostat_eta") {
      num(k);  // without effect unless mirostat is on, which is refused
    } else if (key == "penalize_newline") {
      if (!value.is_boolean()) refuse("options.penalize_newline must be a boolean");
      if (value.get<bool>()) refuse("options.penalize_newline is not supported");
    } else if (kIgnoredOptions.contains(key)) {
      // no effect on the output
    } else {
      refuse(fmt::format("options.{} is not supported by this server", key));
    }
  }
}

// What both endpoints refuse or check the same way; also copies model, stream, options.
nlohmann::json common(const nlohmann::json& body, OllamaRequest& r) {
  nlohmann::json response_format;  // `format`: "json" (any object) or a JSON schema, as OpenAI's response_format
  if (present(body, "format")) {
    const auto& f = body["format"];
    if (f.is_string() && f.get<std::string>() == "json") {
      response_format = {{"type", "json_object"}};
    } else if (f.is_object()) {
      if (auto compiled = grammar::compile_json_schema(f); auto* e = std::get_if<grammar::SchemaError>(&compiled)) {
        refuse("'format': " + e->message);
      }
      response_format = {{"type", "json_schema"}, {"json_schema", {{"name", "format"}, {"schema", f}}}};
    } else if (!(f.is_string() && f.get<std::string>().empty())) {
      refuse("'format' must be \"json\" or a JSON schema object");
    }
  }
  if (present(body, "keep_alive") && !body["keep_alive"].is_string() && !body["keep_alive"].is_number()) {
    refuse("'keep_alive' must be a duration string or a number of seconds");
  }
  nlohmann::json out = nlohmann::json::object();
  if (present(body, "model")) {
    if (!body["model"].is_string()) refuse("'model' must be a string");
    r.model = body["model"].get<std::string>();
    if (r.model.ends_with(":latest")) r.model.resize(r.model.size() - 7);
  }
  out["model"] = r.model;
  if (!response_format.is_null()) out["response_format"] = std::move(response_format);
  bool stream = true;
  if (present(body, "stream")) {
    if (!body["stream"].is_boolean()) refuse("'stream' must be a boolean");
    stream = body["stream"].get<bool>();
  }
  out["stream"] = stream;
  r.stream = stream;
  // The server's test hook (refused unless it runs with --test-hooks), for the same tests as on /v1.
  if (present(body, "tandem_test_forced_output")) out["tandem_test_forced_output"] = body["tandem_test_forced_output"];
  map_options(body, out);
  return out;
}

// `think`: true/absent: reasoning goes to `thinking`; false: the template is asked not to think
// (enable_thinking: false), and any reasoning still goes to `thinking`. Only where reasoning is split (templated).
void apply_think(const nlohmann::json& body, nlohmann::json& out, bool splits) {
  if (!present(body, "think")) return;
  const auto& t = body["think"];
  if (!t.is_boolean()) refuse("'think' must be a boolean (reasoning effort levels are not supported)");
  if (!splits && t.get<bool>()) refuse("'think' needs the chat template: it is not supported with 'raw': true");
  if (!t.get<bool>()) out["chat_template_kwargs"] = {{"enable_thinking", false}};
}

template <typename T>
std::variant<T, ApiError> openai_parse(std::variant<T, ApiError> parsed) {
  if (auto* e = std::get_if<ApiError>(&parsed)) {
    ApiError err = *e;
    if (!err.param.empty() && err.message.find(err.param) == std::string::npos) err.message += " (" + err.param + ")";
    return err;
  }
  return parsed;
}

template <typename Fn>
std::variant<OllamaRequest, ApiError> translate(const std::string& body, size_t max_messages, Fn&& fn) {
  auto parsed = parse_json_object(body, max_messages);  // too many messages: refused before a document is built
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  try {
    return fn(std::get<nlohmann::json>(parsed));
  } catch (const Refusal& r) {
    return ApiError{400, r.message};
  } catch (const std::exception& e) {
    return ApiError{400, fmt::format("invalid request: {}", e.what())};
  }
}

std::string hex64(uint64_t a, uint64_t b) { return fmt::format("{:016x}{:016x}{:016x}{:016x}", a, b, a ^ b, a * 31 + b); }

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string rfc3339(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string human_count(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.1f}B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f}M", n / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", n / 1e3);
  return std::to_string(n);
}

nlohmann::json details(const OllamaModelInfo& info) {
  return {{"parent_model", ""}, {"format", "gguf"}, {"family", info.family},
          {"families", info.family.empty() ? nlohmann::json(nullptr) : nlohmann::json::array({info.family})},
          {"parameter_size", info.parameter_size}, {"quantization_level", info.quantization_level}};
}

}  // namespace

OllamaModelInfo describe_gguf(const GgufModel& gguf, const std::string& path) {
  OllamaModelInfo info;
  try {
    info.family = gguf.get_string("general.architecture").value_or("");
    info.template_text = gguf.get_string("tokenizer.chat_template").value_or("");
    int64_t params = 0;
    std::map<std::string, uint64_t> bytes_by_type;
    for (const GgufTensorInfo& t : gguf.tensors()) {
      params += t.n_elements;
      bytes_by_type[std::string(ggml_type_name(t.type))] += t.n_bytes;
    }
    info.parameter_size = human_count(params);
    uint64_t most = 0;
    for (const auto& [name, b] : bytes_by_type) {
      if (b > most) {
        most = b;
        info.quantization_level = name;
      }
    }
    for (char& c : info.quantization_level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    info.size_bytes = static_cast<int64_t>(gguf.total_tensor_bytes());
    info.model_info["general.parameter_count"] = params;
    for (const auto& [key, value] : gguf.metadata()) {
      if (key.starts_with("tokenizer.")) continue;  // vocabularies and the template (shown as `template`)
      if (value.as_array()) continue;
      if (auto s = value.as_string()) {
        info.model_info[key] = *s;
      } else if (auto b = value.as_bool()) {
        info.model_info[key] = *b;
      } else if (auto i = value.as_int()) {
        info.model_info[key] = *i;
      } else if (auto f = value.as_float()) {
        info.model_info[key] = *f;
      }
    }
    std::time_t t = std::time(nullptr);
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) t = st.st_mtime;
    info.modified_at = rfc3339(t);
    info.digest = hex64(fnv1a(path), fnv1a(std::to_string(info.size_bytes) + "/" + std::to_string(t)));
  } catch (const std::exception&) {
    // keep what was read
  }
  return info;
}

std::variant<OllamaRequest, ApiError> parse_ollama_chat(const std::string& body, const RequestLimits& limits) {
  return translate(body, limits.max_messages, [&](const nlohmann::json& j) -> std::variant<OllamaRequest, ApiError> {
    OllamaRequest r;
    nlohmann::json out = common(j, r);
    apply_think(j, out, true);
    if (!present(j, "messages") || (j["messages"].is_array() && j["messages"].empty())) {
      r.load_only = true;
      r.request = ChatRequest{};
      return r;
    }
    const auto& messages = j["messages"];
    if (!messages.is_array()) refuse("'messages' must be an array");
    if (messages.size() > limits.max_messages) {
      refuse(fmt::format("'messages' has {} entries; this server accepts at most {}", messages.size(), limits.max_messages));
    }
    nlohmann::json msgs = nlohmann::json::array();
    // Ollama's tool calls have no ids: each gets one here, and a tool message answers the first call not yet
    // answered of the assistant message before it (the first with its tool_name, when it gives one).
    std::vector<std::pair<std::string, std::string>> pending;  // (id, name) of calls not answered yet
    for (size_t i = 0; i < messages.size(); ++i) {
      const auto& m = messages[i];
      if (!m.is_object()) refuse(fmt::format("messages[{}] must be an object", i));
      if (present(m, "images") && !(m["images"].is_array() && m["images"].empty())) {
        refuse(fmt::format("messages[{}].images is not supported by this server", i));
      }
      nlohmann::json msg = {{"role", m.value("role", nlohmann::json(nullptr))}, {"content", m.value("content", nlohmann::json(""))}};
      if (present(m, "thinking")) {
        if (!m["thinking"].is_string()) refuse(fmt::format("messages[{}].thinking must be a string", i));
        msg["reasoning_content"] = m["thinking"];
      }
      if (msg["role"] != "tool") pending.clear();
      if (present(m, "tool_calls")) {
        const auto& calls = m["tool_calls"];
        if (!calls.is_array()) refuse(fmt::format("messages[{}].tool_calls must be an array", i));
        nlohmann::json converted = nlohmann::json::array();
        for (size_t k = 0; k < calls.size(); ++k) {
          const auto& c = calls[k];
          const nlohmann::json* function = c.is_object() && present(c, "function") ? &c["function"] : nullptr;
          if (!function || !function->is_object() || !present(*function, "name") || !(*function)["name"].is_string()) {
            refuse(fmt::format("messages[{}].tool_calls[{}].function must be an object with a string 'name'", i, k));
          }
          const nlohmann::json args = function->value("arguments", nlohmann::json::object());
          const std::string id = fmt::format("call_{}_{}", i, k);
          const std::string name = (*function)["name"].get<std::string>();
          converted.push_back({{"id", id}, {"type", "function"},
                               {"function", {{"name", name}, {"arguments", args.is_string() ? args.get<std::string>() : args.dump()}}}});
          pending.emplace_back(id, name);
        }
        if (!converted.empty()) msg["tool_calls"] = std::move(converted);
      }
      if (msg["role"] == "tool") {
        std::string name;
        if (present(m, "tool_name")) {
          if (!m["tool_name"].is_string()) refuse(fmt::format("messages[{}].tool_name must be a string", i));
          name = m["tool_name"].get<std::string>();
        }
        auto it = std::find_if(pending.begin(), pending.end(), [&](const auto& c) { return name.empty() || c.second == name; });
        if (it == pending.end()) {
          refuse(name.empty() ? fmt::format("messages[{}] has role 'tool' but answers no tool call of the assistant "
                                            "message before it", i)
                              : fmt::format("messages[{}]: tool_name '{}' answers no tool call of the assistant message "
                                            "before it", i, name));
        }
        msg["tool_call_id"] = it->first;
        pending.erase(it);
      } else if (present(m, "tool_name")) {
        refuse(fmt::format("messages[{}].tool_name is only for tool messages", i));
      }
      msgs.push_back(std::move(msg));
    }
    if (present(j, "tools")) out["tools"] = j["tools"];
    out["messages"] = std::move(msgs);
    auto parsed = openai_parse(parse_chat_request(out.dump(), limits));
    if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
    r.request = std::move(std::get<ChatRequest>(parsed));
    ChatRequest& chat = std::get<ChatRequest>(r.request);
    if (chat.tools.is_array() && !chat.tools.empty()) chat.tools = ordered_member(body, "tools");  // the client's key order
    return r;
  });
}

std::variant<OllamaRequest, ApiError> parse_ollama_generate(const std::string& body, const RequestLimits& limits) {
  return translate(body, SIZE_MAX, [&](const nlohmann::json& j) -> std::variant<OllamaRequest, ApiError> {
    OllamaRequest r;
    r.generate = true;
    if (present(j, "tools") && !(j["tools"].is_array() && j["tools"].empty())) {
      refuse("'tools' is not supported on /api/generate: use /api/chat");
    }
    for (const char* field : {"template", "context", "suffix", "images"}) {
      if (present(j, field) && !(j[field].is_array() && j[field].empty()) &&
          !(j[field].is_string() && j[field].get<std::string>().empty())) {
        refuse(fmt::format("'{}' is not supported by this server", field));
      }
    }
    nlohmann::json out = common(j, r);
    if (present(j, "raw")) {
      if (!j["raw"].is_boolean()) refuse("'raw' must be a boolean");
      r.raw = j["raw"].get<bool>();
    }
    apply_think(j, out, !r.raw);
    std::string prompt;
    if (present(j, "prompt")) {
      if (!j["prompt"].is_string()) refuse("'prompt' must be a string");
      prompt = j["prompt"].get<std::string>();
    }
    std::string system;
    if (present(j, "system")) {
      if (!j["system"].is_string()) refuse("'system' must be a string");
      system = j["system"].get<std::string>();
    }
    if (prompt.empty()) {
      r.load_only = true;
      r.request = CompletionRequest{};
      return r;
    }
    if (r.raw) {
      if (!system.empty()) refuse("'system' needs the template: it is not supported with 'raw': true");
      out["prompt"] = prompt;
      auto parsed = openai_parse(parse_completion_request(out.dump(), limits));
      if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
      r.request = std::move(std::get<CompletionRequest>(parsed));
      return r;
    }
    nlohmann::json msgs = nlohmann::json::array();
    if (!system.empty()) msgs.push_back({{"role", "system"}, {"content", system}});
    msgs.push_back({{"role", "user"}, {"content", prompt}});
    out["messages"] = std::move(msgs);
    auto parsed = openai_parse(parse_chat_request(out.dump(), limits));
    if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
    r.request = std::move(std::get<ChatRequest>(parsed));
    return r;
  });
}

std::variant<std::string, ApiError> parse_ollama_show(const std::string& body) {
  auto parsed = parse_json_object(body);
  if (auto* e = std::get_if<ApiError>(&parsed)) return *e;
  const nlohmann::json& j = std::get<nlohmann::json>(parsed);
  for (const char* key : {"model", "name"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string()) return ApiError{400, fmt::format("'{}' must be a string", key)};
    std::string name = it->get<std::string>();
    if (name.ends_with(":latest")) name.resize(name.size() - 7);
    return name;
  }
  return ApiError{400, "'model' is required"};
}

ApiError ollama_model_not_found(const std::string& requested) {
  return ApiError{404, fmt::format("model '{}' not found", requested)};
}

std::string ollama_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::string s = rfc3339(std::chrono::system_clock::to_time_t(now));
  s.pop_back();  // 'Z'
  return fmt::format("{}.{:03d}Z", s, ms);
}

nlohmann::json ollama_error(const std::string& message) { return {{"error", message}}; }

nlohmann::json ollama_tool_calls(const std::vector<ToolCall>& calls) {
  nlohmann::json out = nlohmann::json::array();
  for (const ToolCall& c : calls) {
    nlohmann::json args = nlohmann::json::parse(c.arguments, nullptr, /*allow_exceptions=*/false);
    if (args.is_discarded()) args = c.arguments;
    out.push_back({{"function", {{"name", c.name}, {"arguments", std::move(args)}}}});
  }
  return out;
}

nlohmann::json ollama_partial(bool generate, const std::string& model, const std::string& thinking,
                              const std::string& content, const nlohmann::json& tool_calls) {
  nlohmann::json j = {{"model", model}, {"created_at", ollama_now()}};
  if (generate) {
    j["response"] = content;
    if (!thinking.empty()) j["thinking"] = thinking;
  } else {
    j["message"] = {{"role", "assistant"}, {"content", content}};
    if (!thinking.empty()) j["message"]["thinking"] = thinking;
    if (tool_calls.is_array() && !tool_calls.empty()) j["message"]["tool_calls"] = tool_calls;
  }
  j["done"] = false;
  return j;
}

nlohmann::json ollama_final(bool generate, const std::string& model, const std::string& thinking,
                            const std::string& content, const std::string& done_reason, const OllamaTimings& t,
                            const nlohmann::json& tool_calls) {
  nlohmann::json j = ollama_partial(generate, model, thinking, content, tool_calls);
  j["done"] = true;
  j["done_reason"] = done_reason == "tool_calls" ? "stop" : done_reason;
  j["total_duration"] = t.total_ns;
  j["load_duration"] = 0;
  j["prompt_eval_count"] = t.prompt_tokens;
  j["prompt_eval_duration"] = t.prompt_eval_ns;
  j["eval_count"] = t.eval_tokens;
  j["eval_duration"] = t.eval_ns;
  return j;
}

std::string ndjson_line(const nlohmann::json& j) { return dump(j) + "\n"; }

nlohmann::json ollama_tags(const std::vector<std::string>& names, const OllamaModelInfo& info) {
  nlohmann::json models = nlohmann::json::array();
  for (const std::string& name : names) {
    models.push_back({{"name", name}, {"model", name}, {"modified_at", info.modified_at}, {"size", info.size_bytes},
                      {"digest", info.digest}, {"details", details(info)}});
  }
  return {{"models", models}};
}

nlohmann::json ollama_ps(const std::vector<std::string>& names, const OllamaModelInfo& info, int64_t context_tokens) {
  nlohmann::json models = nlohmann::json::array();
  for (const std::string& name : names) {
    models.push_back({{"name", name}, {"model", name}, {"size", info.size_bytes}, {"digest", info.digest},
                      {"details", details(info)}, {"expires_at", "2318-01-01T00:00:00Z"},  // never unloaded
                      {"size_vram", 0}, {"context_length", context_tokens}});
  }
  return {{"models", models}};
}

nlohmann::json ollama_show(const OllamaModelInfo& info, int64_t context_tokens) {
  // GGUF strings need not be UTF-8: replaced, never thrown on.
  const std::string model_info = info.model_info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  nlohmann::json j = {{"license", ""}, {"modelfile", ""}, {"parameters", fmt::format("num_ctx {}", context_tokens)},
                      {"template", info.template_text}, {"details", details(info)},
                      {"model_info", nlohmann::json::parse(model_info)},
                      {"capabilities", info.template_text.empty() ? nlohmann::json::array({"completion"})
                                                                  : nlohmann::json::array({"completion", "chat"})},
                      {"modified_at", info.modified_at}};
  return j;
}

}  // namespace tandem::server
