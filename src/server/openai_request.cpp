#include "server/openai_request.h"

#include <algorithm>
#include <cctype>
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
  int status = 400;
  std::string code{};
};

[[noreturn]] void fail(const std::string& param, const std::string& message) { throw BadField{param, message}; }

[[noreturn]] void fail_too_large(const std::string& param, size_t limit) {
  throw BadField{param, fmt::format("the request's text is larger than this server accepts ({} bytes of message contents "
                                    "and tools, or of a prompt)", limit), 413, "request_too_large"};
}

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

// logit_bias: {"token id": bias in [-100, 100], ...}; ids are checked against the vocabulary by the server.
std::vector<std::pair<int32_t, float>> parse_logit_bias(const nlohmann::json& body) {
  constexpr size_t kMaxEntries = 1024;
  std::vector<std::pair<int32_t, float>> out;
  const nlohmann::json* bias = field(body, "logit_bias");
  if (!bias) return out;
  if (!bias->is_object()) fail("logit_bias", "'logit_bias' must be an object of token ids to biases");
  if (bias->size() > kMaxEntries) fail("logit_bias", fmt::format("'logit_bias' may have at most {} entries", kMaxEntries));
  for (const auto& [key, value] : bias->items()) {
    int64_t id = -1;
    const bool digits = !key.empty() && key.size() <= 10 && std::all_of(key.begin(), key.end(), [](char c) {
      return c >= '0' && c <= '9';
    });
    if (digits) id = std::stoll(key);
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      fail("logit_bias", fmt::format("logit_bias keys must be token ids (non-negative integers), not '{}'", key));
    }
    if (!value.is_number() || value.get<double>() < -100.0 || value.get<double>() > 100.0) {
      fail("logit_bias", fmt::format("logit_bias[{}] must be a number from -100 to 100", key));
    }
    out.emplace_back(static_cast<int32_t>(id), value.get<float>());
  }
  return out;
}

// response_format: text (nothing), json_object, or json_schema with a schema (absent: any JSON object).
grammar::GrammarPtr parse_response_format(const nlohmann::json& body) {
  const nlohmann::json* format = field(body, "response_format");
  if (!format) return nullptr;
  const nlohmann::json* type = format->is_object() ? field(*format, "type") : nullptr;
  if (!type || !type->is_string()) fail("response_format", "'response_format' must be an object with a string 'type'");
  const std::string kind = type->get<std::string>();
  if (kind == "text") return nullptr;
  if (kind == "json_object") return grammar::json_object_grammar();
  if (kind != "json_schema") {
    fail("response_format", fmt::format("response_format type '{}' is not supported (use 'text', 'json_object' or "
                                        "'json_schema')", kind));
  }
  const nlohmann::json* spec = field(*format, "json_schema");
  if (!spec || !spec->is_object()) {
    fail("response_format", "response_format 'json_schema' needs a 'json_schema' object with the 'schema'");
  }
  if (const nlohmann::json* name = field(*spec, "name"); name && !name->is_string()) {
    fail("response_format", "response_format.json_schema.name must be a string");
  }
  if (const nlohmann::json* strict = field(*spec, "strict"); strict && !strict->is_boolean()) {
    fail("response_format", "response_format.json_schema.strict must be a boolean");
  }
  const nlohmann::json* schema = field(*spec, "schema");
  if (!schema) return grammar::json_object_grammar();
  auto compiled = grammar::compile_json_schema(*schema);
  if (auto* e = std::get_if<grammar::SchemaError>(&compiled)) fail("response_format", "response_format: " + e->message);
  return std::get<grammar::GrammarPtr>(compiled);
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
  o.sampling.logit_bias = parse_logit_bias(body);
  if (const nlohmann::json* forced = field(body, "tandem_test_forced_output")) {
    if (!forced->is_string()) fail("tandem_test_forced_output", "'tandem_test_forced_output' must be a string");
    o.test_forced_output = forced->get<std::string>();
  }
  o.grammar = parse_response_format(body);
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

bool has_control_character(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// An assistant message's tool_calls, normalized to {id, type, function: {name, arguments}}; ids are collected.
nlohmann::ordered_json parse_tool_calls(const nlohmann::json& calls, size_t index, std::vector<std::string>& ids) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t k = 0; k < calls.size(); ++k) {
    const std::string param = fmt::format("messages[{}].tool_calls[{}]", index, k);
    const nlohmann::json& c = calls[k];
    if (!c.is_object()) fail(param, fmt::format("{} must be an object", param));
    const nlohmann::json* id = field(c, "id");
    if (!id || !id->is_string() || id->get_ref<const std::string&>().empty()) {
      fail(param + ".id", fmt::format("{}.id must be a non-empty string (the id tool messages answer)", param));
    }
    if (std::find(ids.begin(), ids.end(), id->get<std::string>()) != ids.end()) {
      fail(param + ".id", fmt::format("{}.id '{}' is used by another tool call", param, id->get<std::string>()));
    }
    if (const nlohmann::json* type = field(c, "type"); type && *type != "function") {
      fail(param + ".type", fmt::format("{}.type must be 'function'", param));
    }
    const nlohmann::json* function = field(c, "function");
    if (!function || !function->is_object()) fail(param + ".function", fmt::format("{}.function must be an object", param));
    const nlohmann::json* name = field(*function, "name");
    if (!name || !name->is_string() || name->get_ref<const std::string&>().empty() ||
        has_control_character(name->get<std::string>())) {
      fail(param + ".function.name",
           fmt::format("{}.function.name must be a non-empty string without control characters", param));
    }
    const nlohmann::json* arguments = field(*function, "arguments");
    if (!arguments || !arguments->is_string()) {
      fail(param + ".function.arguments",
           fmt::format("{}.function.arguments must be a string (the arguments as JSON text)", param));
    }
    ids.push_back(id->get<std::string>());
    out.push_back({{"id", *id}, {"type", "function"},
                   {"function", {{"name", *name}, {"arguments", *arguments}}}});
  }
  return out;
}

nlohmann::ordered_json parse_messages(const nlohmann::json& body, const RequestLimits& limits, size_t& content_bytes) {
  const nlohmann::json* messages = field(body, "messages");
  if (!messages) fail("messages", "'messages' is required");
  if (!messages->is_array() || messages->empty()) fail("messages", "'messages' must be a non-empty array");
  if (messages->size() > limits.max_messages) {
    throw BadField{"messages", fmt::format("'messages' has {} entries; this server accepts at most {}", messages->size(),
                                           limits.max_messages), 400, "too_many_messages"};
  }
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  std::vector<std::string> all_ids;   // every tool call id in the conversation (unique)
  std::vector<std::string> open_ids;  // the calls tool messages may answer now
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
    const nlohmann::json* calls = field(m, "tool_calls");
    if (calls && !calls->is_array()) fail(fmt::format("messages[{}].tool_calls", i), "'tool_calls' must be an array");
    if (calls && !calls->empty() && role != "assistant") {
      fail(fmt::format("messages[{}].tool_calls", i), "only assistant messages have 'tool_calls'");
    }
    const bool has_calls = calls && !calls->empty();
    nlohmann::ordered_json msg = nlohmann::ordered_json::parse(m.dump());  // keep other fields, in order
    msg["role"] = role == "developer" ? "system" : role;
    msg.erase("tool_calls");
    if (has_calls) msg["tool_calls"] = parse_tool_calls(*calls, i, all_ids);
    if (role == "tool") {
      const nlohmann::json* id = field(m, "tool_call_id");
      if (!id || id->get_ref<const std::string&>().empty()) {
        fail(fmt::format("messages[{}].tool_call_id", i), "a tool message needs 'tool_call_id' (the id of the call it answers)");
      }
      if (open_ids.empty()) {
        fail(fmt::format("messages[{}]", i), fmt::format("messages[{}] has role 'tool' but does not follow an assistant "
                                                         "message with tool_calls (only tool messages may be between them)", i));
      }
      if (std::find(open_ids.begin(), open_ids.end(), id->get<std::string>()) == open_ids.end()) {
        fail(fmt::format("messages[{}].tool_call_id", i),
             fmt::format("tool_call_id '{}' matches no tool call of the assistant message before it", id->get<std::string>()));
      }
    } else {
      open_ids.clear();
      if (has_calls) {
        for (const auto& c : msg["tool_calls"]) open_ids.push_back(c["id"].get<std::string>());
      }
    }
    if (has_calls) {
      for (const auto& c : msg["tool_calls"]) {
        content_bytes += c["function"]["name"].get_ref<const std::string&>().size() +
                         c["function"]["arguments"].get_ref<const std::string&>().size();
      }
    }
    if (m.contains("content") && !m["content"].is_null()) {
      std::string text = content_text(m["content"], i);
      content_bytes += text.size();
      if (content_bytes > limits.max_content_bytes) fail_too_large("messages", limits.max_content_bytes);
      msg["content"] = text.empty() && has_calls ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(std::move(text));
    } else if (role != "assistant") {
      fail(fmt::format("messages[{}].content", i), "'content' is required");
    } else {
      msg["content"] = has_calls ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json("");
    }
    if (content_bytes > limits.max_content_bytes) fail_too_large("messages", limits.max_content_bytes);
    out.push_back(std::move(msg));
  }
  return out;
}

// `tools`: function tools only.
void parse_tools(const nlohmann::json& tools) {
  if (!tools.is_array()) fail("tools", "'tools' must be an array");
  std::vector<std::string> names;
  for (size_t k = 0; k < tools.size(); ++k) {
    const std::string param = fmt::format("tools[{}]", k);
    const nlohmann::json& t = tools[k];
    if (!t.is_object()) fail(param, fmt::format("{} must be an object", param));
    const nlohmann::json* type = field(t, "type");
    if (!type || *type != "function") fail(param + ".type", fmt::format("{}.type must be 'function' (the only tool type supported)", param));
    const nlohmann::json* function = field(t, "function");
    if (!function || !function->is_object()) fail(param + ".function", fmt::format("{}.function must be an object", param));
    const nlohmann::json* name = field(*function, "name");
    const bool name_ok = name && name->is_string() && !name->get_ref<const std::string&>().empty() &&
                         name->get_ref<const std::string&>().size() <= 64 &&
                         std::all_of(name->get_ref<const std::string&>().begin(), name->get_ref<const std::string&>().end(),
                                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; });
    if (!name_ok) {
      fail(param + ".function.name",
           fmt::format("{}.function.name must be 1 to 64 letters, digits, underscores, dashes or dots", param));
    }
    if (std::find(names.begin(), names.end(), name->get<std::string>()) != names.end()) {
      fail(param + ".function.name", fmt::format("two tools are named '{}'", name->get<std::string>()));
    }
    names.push_back(name->get<std::string>());
    if (const nlohmann::json* d = field(*function, "description"); d && !d->is_string()) {
      fail(param + ".function.description", fmt::format("{}.function.description must be a string", param));
    }
    if (const nlohmann::json* p = field(*function, "parameters"); p && !p->is_object()) {
      fail(param + ".function.parameters", fmt::format("{}.function.parameters must be an object (a JSON Schema)", param));
    }
    if (const nlohmann::json* st = field(*function, "strict"); st && !st->is_boolean()) {
      fail(param + ".function.strict", fmt::format("{}.function.strict must be a boolean", param));
    }
  }
}

void parse_tool_choice(const nlohmann::json& body, ChatRequest& r) {
  const nlohmann::json* choice = field(body, "tool_choice");
  if (!choice) return;
  const bool have_tools = r.tools.is_array() && !r.tools.empty();
  if (choice->is_string()) {
    const std::string c = choice->get<std::string>();
    if (c == "auto") {
      r.tool_choice = ToolChoice::kAuto;
    } else if (c == "none") {
      r.tool_choice = ToolChoice::kNone;
    } else if (c == "required") {
      r.tool_choice = ToolChoice::kRequired;
    } else {
      fail("tool_choice", "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
  } else if (choice->is_object()) {
    const nlohmann::json* type = field(*choice, "type");
    const nlohmann::json* function = field(*choice, "function");
    const nlohmann::json* name = function && function->is_object() ? field(*function, "name") : nullptr;
    if (!type || *type != "function" || !name || !name->is_string()) {
      fail("tool_choice", "a tool_choice object must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
    }
    bool known = false;
    if (have_tools) {
      for (const auto& t : r.tools) known = known || t.at("function").at("name").get<std::string>() == name->get<std::string>();
    }
    if (!known) fail("tool_choice", fmt::format("tool_choice names '{}', which is not in 'tools'", name->get<std::string>()));
    r.tool_choice = ToolChoice::kFunction;
    r.tool_choice_function = name->get<std::string>();
  } else {
    fail("tool_choice", "'tool_choice' must be a string or an object");
  }
  if (r.tool_choice == ToolChoice::kRequired && !have_tools) fail("tool_choice", "tool_choice 'required' needs 'tools'");
}

// Bodies nested deeper than this are refused before parsing: later steps (copies, dumps) recurse per level.
constexpr int kMaxJsonDepth = 64;

// A pass over the body with nlohmann's SAX parser, building nothing: it stops at nesting deeper than
// kMaxJsonDepth or at a root "messages" array longer than allowed, so such bodies are refused without the
// memory and time of a document (nlohmann's callback parser, which could check while building one, also
// takes quadratic time on long arrays of objects). Syntax errors are left to the real parse, which names them.
class BodyShapeCheck {
 public:
  enum class Verdict { Ok, TooDeep, TooManyMessages };
  explicit BodyShapeCheck(size_t max_messages) : max_messages_(max_messages) {}
  Verdict verdict() const { return verdict_; }
  size_t messages() const { return messages_; }

  bool null() { return element(); }
  bool boolean(bool) { return element(); }
  bool number_integer(int64_t) { return element(); }
  bool number_unsigned(uint64_t) { return element(); }
  bool number_float(double, const std::string&) { return element(); }
  bool string(std::string&) { return element(); }
  bool binary(nlohmann::json::binary_t&) { return element(); }
  bool start_object(size_t) { return element() && open(); }
  bool key(std::string& k) {
    key_is_messages_ = depth_ == 1 && k == "messages";
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(size_t) {
    const bool messages = key_is_messages_;
    if (!element() || !open()) return false;
    if (messages) in_messages_ = true;
    return true;
  }
  bool end_array() {
    if (depth_ == 2) in_messages_ = false;
    return close();
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) { return false; }

 private:
  bool element() {
    key_is_messages_ = false;
    if (in_messages_ && depth_ == 2 && ++messages_ > max_messages_) {
      verdict_ = Verdict::TooManyMessages;
      return false;
    }
    return true;
  }
  bool open() {
    if (++depth_ <= kMaxJsonDepth + 1) return true;
    verdict_ = Verdict::TooDeep;
    return false;
  }
  bool close() {
    --depth_;
    return true;
  }

  size_t max_messages_;
  size_t messages_ = 0;
  int depth_ = 0;
  bool key_is_messages_ = false, in_messages_ = false;
  Verdict verdict_ = Verdict::Ok;
};

std::optional<ApiError> shape_error(const std::string& body, size_t max_messages) {
  BodyShapeCheck shape(max_messages);
  nlohmann::json::sax_parse(body, &shape);
  if (shape.verdict() == BodyShapeCheck::Verdict::TooDeep) {
    return ApiError{400, fmt::format("the request body is nested deeper than {} levels", kMaxJsonDepth)};
  }
  if (shape.verdict() == BodyShapeCheck::Verdict::TooManyMessages) {
    return ApiError{400, fmt::format("'messages' has more than {} entries, the most this server accepts", max_messages),
                    "invalid_request_error", "messages", "too_many_messages"};
  }
  return std::nullopt;
}

template <typename T, typename Fn>
std::variant<T, ApiError> guarded(const std::string& body, size_t max_messages, Fn&& parse) {
  if (auto e = shape_error(body, max_messages)) return *e;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    return ApiError{400, fmt::format("the request body is not valid JSON: {}", e.what())};
  }
  if (!j.is_object()) return ApiError{400, "the request body must be a JSON object"};
  try {
    return parse(j);
  } catch (const BadField& e) {
    return ApiError{e.status, e.message, "invalid_request_error", e.param, e.code};
  } catch (const nlohmann::json::exception& e) {
    return ApiError{400, fmt::format("invalid request: {}", e.what())};
  }
}

}  // namespace

nlohmann::ordered_json ordered_member(const std::string& body, const char* name) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return nullptr;
  auto it = j.find(name);
  return it == j.end() ? nlohmann::ordered_json(nullptr) : std::move(*it);
}

std::variant<ChatRequest, ApiError> parse_chat_request(const std::string& body, const RequestLimits& limits) {
  return guarded<ChatRequest>(body, limits.max_messages, [&limits, &body](const nlohmann::json& j) {
    ChatRequest r;
    r.options = parse_common(j, true);
    size_t content_bytes = 0;
    r.messages = parse_messages(j, limits, content_bytes);
    if (const nlohmann::json* tools = field(j, "tools")) {
      if (tools->is_array() && content_bytes + tools->dump().size() > limits.max_content_bytes) {
        fail_too_large("tools", limits.max_content_bytes);
      }
      parse_tools(*tools);
      // As the client ordered the keys: the template prints the tools (shape_error() has bounded the nesting).
      r.tools = tools->empty() ? nlohmann::ordered_json::array() : ordered_member(body, "tools");
    }
    parse_tool_choice(j, r);
    r.parallel_tool_calls = boolean(j, "parallel_tool_calls", true);
    for (const char* legacy : {"functions", "function_call"}) {
      if (field(j, legacy)) fail(legacy, fmt::format("'{}' is not supported: use 'tools'", legacy));
    }
    if (const nlohmann::json* kw = field(j, "chat_template_kwargs")) {
      if (!kw->is_object()) fail("chat_template_kwargs", "'chat_template_kwargs' must be an object");
      r.template_kwargs = nlohmann::ordered_json::parse(kw->dump());
    }
    return r;
  });
}

std::variant<CompletionRequest, ApiError> parse_completion_request(const std::string& body,
                                                                   const RequestLimits& limits) {
  return guarded<CompletionRequest>(body, SIZE_MAX, [&limits](const nlohmann::json& j) {
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
    if (const auto* text = std::get_if<std::string>(&r.prompt); text && text->size() > limits.max_content_bytes) {
      fail_too_large("prompt", limits.max_content_bytes);
    }
    r.echo = boolean(j, "echo", false);
    if (r.echo && r.options.logprobs) fail("echo", "'echo' with 'logprobs' (the prompt's log-probabilities) is not supported");
    if (const nlohmann::json* suffix = field(j, "suffix"); suffix && !suffix->is_null()) {
      fail("suffix", "'suffix' (insertion) is not supported");
    }
    if (auto best_of = integer(j, "best_of", 1, 1 << 20); best_of && *best_of != 1) {
      fail("best_of", "only best_of = 1 is supported");
    }
    r.parse_special = boolean(j, "parse_special", true);
    return r;
  });
}

std::variant<nlohmann::json, ApiError> parse_json_object(const std::string& body, size_t max_messages) {
  return guarded<nlohmann::json>(body, max_messages, [](const nlohmann::json& j) { return j; });
}

}  // namespace tandem::server
