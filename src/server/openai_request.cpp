#include "server/openai_request.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace tandem::server {

nlohmann::json ApiError::to_json() const {
  nlohmann::json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

namespace {

// Thrown inside this file, turned into ApiError at the parse_* boundary.
struct BadField {
  std::string param, message;
};

[[noreturn]] void fail(const std::string& param, const std::string& message) { throw BadField{param, message}; }

const nlohmann::json* field(const nlohmann::json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const nlohmann::json& body, const char* name, double lo, double hi, double fallback) {
  const nlohmann::json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) fail(name, fmt::format("'{}' must be a number", name));
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) fail(name, fmt::format("'{}' must be between {} and {}", name, lo, hi));
  return d;
}

std::optional<int64_t> integer(const nlohmann::json& body, const char* name, int64_t lo, int64_t hi) {
  const nlohmann::json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) fail(name, fmt::format("'{}' must be an integer", name));
  // Unsigned values above INT64_MAX and anything outside [lo, hi] are rejected.
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    fail(name, fmt::format("'{}' is out of range", name));
  }
  const int64_t i = v->get<int64_t>();
  if (i < lo || i > hi) fail(name, fmt::format("'{}' must be between {} and {}", name, lo, hi));
  return i;
}

bool boolean(const nlohmann::json& body, const char* name, bool fallback) {
  const nlohmann::json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(name, fmt::format("'{}' must be a boolean", name));
  return v->get<bool>();
}

CommonOptions parse_common(const nlohmann::json& body, bool chat) {
  CommonOptions o;
  if (const nlohmann::json* m = field(body, "model")) {
    if (!m->is_string()) fail("model", "'model' must be a string");
    o.model = m->get<std::string>();
  }
  o.max_tokens = integer(body, "max_tokens", 1, 1 << 30);
  if (auto m = integer(body, "max_completion_tokens", 1, 1 << 30)) o.max_tokens = m;
  SamplingParams& s = o.sampling;
  s.temperature = static_cast<float>(number(body, "temperature", 0.0, 2.0, 1.0));
  s.top_p = static_cast<float>(number(body, "top_p", 0.0, 1.0, 1.0));
  if (field(body, "top_p") && s.top_p <= 0.0f) fail("top_p", "'top_p' must be greater than 0");
  s.top_k = static_cast<int>(integer(body, "top_k", -1, 1 << 30).value_or(0));
  if (s.top_k < 0) s.top_k = 0;  // -1 means disabled, as in vLLM
  s.min_p = static_cast<float>(number(body, "min_p", 0.0, 1.0, 0.0));
  s.presence_penalty = static_cast<float>(number(body, "presence_penalty", -2.0, 2.0, 0.0));
  s.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", -2.0, 2.0, 0.0));
  s.repetition_penalty = static_cast<float>(number(body, "repetition_penalty", 0.01, 10.0, 1.0));
  if (auto seed = integer(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    s.seed = static_cast<uint64_t>(*seed);
    o.has_seed = true;
  }
  if (auto n = integer(body, "n", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()); n && *n != 1) {
    fail("n", "only n = 1 is supported");
  }
  if (const nlohmann::json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      o.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 16) fail("stop", "at most 16 stop strings are supported");
      for (const auto& s2 : *stop) {
        if (!s2.is_string()) fail("stop", "'stop' must be a string or an array of strings");
        o.stop.push_back(s2.get<std::string>());
      }
    } else {
      fail("stop", "'stop' must be a string or an array of strings");
    }
  }
  o.stream = boolean(body, "stream", false);
  if (const nlohmann::json* so = field(body, "stream_options")) {
    if (!so->is_object()) fail("stream_options", "'stream_options' must be an object");
    o.include_usage = boolean(*so, "include_usage", false);
  }
  if (chat) {
    o.logprobs = boolean(body, "logprobs", false);
    o.top_logprobs = static_cast<int>(integer(body, "top_logprobs", 0, 20).value_or(0));
    if (o.top_logprobs > 0 && !o.logprobs) fail("top_logprobs", "'top_logprobs' requires 'logprobs': true");
  } else if (auto lp = integer(body, "logprobs", 0, 20)) {
    o.logprobs = true;  // the legacy API: an integer count of alternatives
    o.top_logprobs = static_cast<int>(*lp);
  }
  if (const nlohmann::json* user = field(body, "user"); user && !user->is_string()) fail("user", "'user' must be a string");
  return o;
}

// Chat content may be a string or an array of content parts; only text parts are supported.
std::string content_text(const nlohmann::json& content, size_t index) {
  const std::string param = fmt::format("messages[{}].content", index);
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) fail(param, "message content must be a string or an array of content parts");
  std::string text;
  for (const auto& part : content) {
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      fail(param, "each content part must be an object with a 'type'");
    }
    if (part["type"] != "text") fail(param, "only 'text' content parts are supported");
    if (!part.contains("text") || !part["text"].is_string()) fail(param, "a text content part needs a string 'text'");
    text += part["text"].get<std::string>();
  }
  return text;
}

nlohmann::ordered_json parse_messages(const nlohmann::json& body) {
  const nlohmann::json* messages = field(body, "messages");
  if (!messages) fail("messages", "'messages' is required");
  if (!messages->is_array() || messages->empty()) fail("messages", "'messages' must be a non-empty array");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages->size(); ++i) {
    const auto& m = (*messages)[i];
    if (!m.is_object()) fail(fmt::format("messages[{}]", i), "each message must be an object");
    if (!m.contains("role") || !m["role"].is_string()) fail(fmt::format("messages[{}].role", i), "each message needs a string 'role'");
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "tool" && role != "developer") {
      fail(fmt::format("messages[{}].role", i), "unknown role '" + role + "'");
    }
    for (const char* key : {"name", "tool_call_id"}) {
      if (m.contains(key) && !m[key].is_null() && !m[key].is_string()) {
        fail(fmt::format("messages[{}].{}", i, key), fmt::format("'{}' must be a string", key));
      }
    }
    if (m.contains("tool_calls") && !m["tool_calls"].is_null() && !m["tool_calls"].is_array()) {
      fail(fmt::format("messages[{}].tool_calls", i), "'tool_calls' must be an array");
    }
    nlohmann::ordered_json msg = nlohmann::ordered_json::parse(m.dump());  // keep tool_calls etc. in order
    msg["role"] = role == "developer" ? "system" : role;
    if (m.contains("content") && !m["content"].is_null()) {
      msg["content"] = content_text(m["content"], i);
    } else if (role != "assistant") {
      fail(fmt::format("messages[{}].content", i), "'content' is required");
    } else {
      msg["content"] = "";
    }
    out.push_back(std::move(msg));
  }
  return out;
}

// Bodies nested deeper than this are refused while parsing: later steps (copies, dumps) recurse per level.
constexpr int kMaxJsonDepth = 64;
struct TooDeep {};

template <typename T, typename Fn>
std::variant<T, ApiError> guarded(const std::string& body, Fn&& parse) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body, [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > kMaxJsonDepth) throw TooDeep{};
      return true;
    });
  } catch (const TooDeep&) {
    return ApiError{400, fmt::format("the request body is nested deeper than {} levels", kMaxJsonDepth)};
  } catch (const nlohmann::json::exception& e) {
    return ApiError{400, fmt::format("the request body is not valid JSON: {}", e.what())};
  }
  if (!j.is_object()) return ApiError{400, "the request body must be a JSON object"};
  try {
    return parse(j);
  } catch (const BadField& e) {
    return ApiError{400, e.message, "invalid_request_error", e.param};
  } catch (const nlohmann::json::exception& e) {
    return ApiError{400, fmt::format("invalid request: {}", e.what())};
  }
}

}  // namespace

std::variant<ChatRequest, ApiError> parse_chat_request(const std::string& body) {
  return guarded<ChatRequest>(body, [](const nlohmann::json& j) {
    ChatRequest r;
    r.options = parse_common(j, true);
    r.messages = parse_messages(j);
    if (const nlohmann::json* tools = field(j, "tools")) {
      if (!tools->is_array()) fail("tools", "'tools' must be an array");
      r.tools = nlohmann::ordered_json::parse(tools->dump());
    }
    if (const nlohmann::json* kw = field(j, "chat_template_kwargs")) {
      if (!kw->is_object()) fail("chat_template_kwargs", "'chat_template_kwargs' must be an object");
      r.template_kwargs = nlohmann::ordered_json::parse(kw->dump());
    }
    return r;
  });
}

std::variant<CompletionRequest, ApiError> parse_completion_request(const std::string& body) {
  return guarded<CompletionRequest>(body, [](const nlohmann::json& j) {
    CompletionRequest r;
    r.options = parse_common(j, false);
    const nlohmann::json* prompt = field(j, "prompt");
    if (!prompt) fail("prompt", "'prompt' is required");
    if (prompt->is_string()) {
      r.prompt = prompt->get<std::string>();
    } else if (prompt->is_array() && !prompt->empty() && (*prompt)[0].is_number_integer()) {
      std::vector<int32_t> ids;
      for (const auto& id : *prompt) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
          fail("prompt", "token id prompts must be arrays of non-negative integers");
        }
        ids.push_back(id.get<int32_t>());
      }
      r.prompt = std::move(ids);
    } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
      r.prompt = (*prompt)[0].get<std::string>();
    } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_array()) {
      std::vector<int32_t> ids;
      for (const auto& id : (*prompt)[0]) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
          fail("prompt", "token id prompts must be arrays of non-negative integers");
        }
        ids.push_back(id.get<int32_t>());
      }
      r.prompt = std::move(ids);
    } else if (prompt->is_array() && prompt->size() > 1) {
      fail("prompt", "batched prompts are not supported: send one prompt per request");
    } else {
      fail("prompt", "'prompt' must be a string, an array of token ids, or a one-element array of either");
    }
    r.echo = boolean(j, "echo", false);
    return r;
  });
}

std::variant<nlohmann::json, ApiError> parse_json_object(const std::string& body) {
  return guarded<nlohmann::json>(body, [](const nlohmann::json& j) { return j; });
}

}  // namespace tandem::server
