#include "server/responses.h"

#include <random>

#include <fmt/format.h>

namespace tandem::server {

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string sse_event(const nlohmann::json& j) { return "data: " + dump(j) + "\n\n"; }

std::string new_response_id(ApiKind kind) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}-{:016x}{:08x}", kind == ApiKind::Chat ? "chatcmpl" : "cmpl", rng(), static_cast<uint32_t>(rng()));
}

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {
nlohmann::json bytes_of(const std::string& s) {
  nlohmann::json b = nlohmann::json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

nlohmann::json header_json(const ResponseHeader& h, bool chunk) {
  const char* object = h.kind == ApiKind::Chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}
}  // namespace

nlohmann::json logprobs_json(ApiKind kind, const std::vector<TokenLogprobInfo>& tokens, size_t text_offset_start) {
  if (kind == ApiKind::Chat) {
    nlohmann::json content = nlohmann::json::array();
    for (const TokenLogprobInfo& t : tokens) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& [text, lp] : t.top) top.push_back({{"token", text}, {"logprob", lp}, {"bytes", bytes_of(text)}});
      content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", bytes_of(t.token)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  nlohmann::json toks = nlohmann::json::array(), lps = nlohmann::json::array(), tops = nlohmann::json::array(),
                 offsets = nlohmann::json::array();
  size_t offset = text_offset_start;
  for (const TokenLogprobInfo& t : tokens) {
    toks.push_back(t.token);
    lps.push_back(t.logprob);
    nlohmann::json top = nlohmann::json::object();
    for (const auto& [text, lp] : t.top) top[text] = lp;
    tops.push_back(top);
    offsets.push_back(offset);
    offset += t.token.size();
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

nlohmann::json tool_calls_json(const std::vector<ToolCall>& calls) {
  nlohmann::json out = nlohmann::json::array();
  for (const ToolCall& c : calls) {
    out.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return out;
}

nlohmann::json tool_call_deltas_json(const std::vector<ToolCallFragment>& fragments) {
  nlohmann::json out = nlohmann::json::array();
  for (const ToolCallFragment& f : fragments) {
    if (!f.begin && f.arguments.empty()) continue;
    if (!f.begin && !out.empty() && out.back()["index"] == f.index) {
      std::string& args = out.back()["function"]["arguments"].get_ref<std::string&>();
      args += f.arguments;
      continue;
    }
    if (f.begin) {
      out.push_back({{"index", f.index}, {"id", f.id}, {"type", "function"},
                     {"function", {{"name", f.name}, {"arguments", f.arguments}}}});
    } else {
      out.push_back({{"index", f.index}, {"function", {{"arguments", f.arguments}}}});
    }
  }
  return out;
}

nlohmann::json full_response(const ResponseHeader& h, const std::string& reasoning, const std::string& content,
                             const std::string& finish_reason, const nlohmann::json& logprobs, int64_t prompt_tokens,
                             int64_t completion_tokens, const std::vector<ToolCall>& tool_calls) {
  nlohmann::json r = header_json(h, false);
  nlohmann::json choice = {{"index", 0}};
  if (h.kind == ApiKind::Chat) {
    nlohmann::json message = {{"role", "assistant"}, {"content", content}};
    if (!tool_calls.empty()) {
      if (content.empty()) message["content"] = nullptr;
      message["tool_calls"] = tool_calls_json(tool_calls);
    }
    if (!reasoning.empty()) message["reasoning_content"] = reasoning;
    choice["message"] = message;
  } else {
    choice["text"] = content;
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason;
  r["choices"] = nlohmann::json::array({choice});
  r["usage"] = usage_json(prompt_tokens, completion_tokens);
  return r;
}

nlohmann::json chunk(const ResponseHeader& h, bool first, const std::string& reasoning, const std::string& content,
                     const std::string& finish_reason, const nlohmann::json& logprobs,
                     const std::vector<ToolCallFragment>& tool_calls) {
  nlohmann::json r = header_json(h, true);
  nlohmann::json choice = {{"index", 0}};
  if (h.kind == ApiKind::Chat) {
    nlohmann::json delta = nlohmann::json::object();
    if (first) delta["role"] = "assistant";
    if (!reasoning.empty()) delta["reasoning_content"] = reasoning;
    nlohmann::json calls = tool_call_deltas_json(tool_calls);
    if (!content.empty()) {
      delta["content"] = content;
    } else if (first && reasoning.empty()) {
      delta["content"] = calls.empty() ? nlohmann::json("") : nlohmann::json(nullptr);
    }
    if (!calls.empty()) delta["tool_calls"] = std::move(calls);
    choice["delta"] = delta;
  } else {
    choice["text"] = content;
  }
  choice["logprobs"] = logprobs;
  choice["finish_reason"] = finish_reason.empty() ? nlohmann::json(nullptr) : nlohmann::json(finish_reason);
  r["choices"] = nlohmann::json::array({choice});
  return r;
}

nlohmann::json usage_chunk(const ResponseHeader& h, int64_t prompt_tokens, int64_t completion_tokens) {
  nlohmann::json r = header_json(h, true);
  r["choices"] = nlohmann::json::array();
  r["usage"] = usage_json(prompt_tokens, completion_tokens);
  return r;
}

}  // namespace tandem::server
