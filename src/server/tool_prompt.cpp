#include "server/tool_prompt.h"

#include <vector>

namespace tandem::server {

namespace {

constexpr const char* kProbeName = "tandem_probe_function_7c1e";

bool renders_probe(const chat::ChatTemplate& tpl, const nlohmann::ordered_json& messages, bool generation_prompt,
                   const std::optional<std::string>& bos, const std::optional<std::string>& eos,
                   const nlohmann::ordered_json& extra) {
  try {
    auto r = tpl.render_chat(messages, generation_prompt, bos, eos, extra);
    return r && r.value().find(kProbeName) != std::string::npos;
  } catch (const std::exception&) {
    return false;
  }
}

nlohmann::ordered_json probe_call_history(nlohmann::ordered_json content) {
  nlohmann::ordered_json call = {{"id", "call_probe"}, {"type", "function"},
                                 {"function", {{"name", kProbeName}, {"arguments", "{}"}}}};
  nlohmann::ordered_json assistant = {{"role", "assistant"}, {"content", std::move(content)},
                                      {"tool_calls", nlohmann::ordered_json::array({call})}};
  return nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}, assistant});
}

}  // namespace

TemplateToolSupport probe_tool_support(const chat::ChatTemplate& tpl, const std::optional<std::string>& bos,
                                       const std::optional<std::string>& eos) {
  TemplateToolSupport s;
  nlohmann::ordered_json tool = {{"type", "function"},
                                 {"function", {{"name", kProbeName}, {"description", "probe"},
                                               {"parameters", {{"type", "object"}, {"properties", nlohmann::ordered_json::object()}}}}}};
  const nlohmann::ordered_json user = nlohmann::ordered_json::array({{{"role", "user"}, {"content", "hi"}}});
  s.renders_tools = renders_probe(tpl, user, true, bos, eos, {{"tools", nlohmann::ordered_json::array({tool})}});
  if (renders_probe(tpl, probe_call_history(""), false, bos, eos, nlohmann::ordered_json::object())) {
    s.renders_tool_calls = true;
  } else if (renders_probe(tpl, probe_call_history(nullptr), false, bos, eos, nlohmann::ordered_json::object())) {
    s.renders_tool_calls = true;
    s.calls_need_null_content = true;
  }
  return s;
}

std::string tool_system_prompt(const ToolCallSyntax& syntax, const nlohmann::ordered_json& tools, bool single_call) {
  std::string out =
      "# Tools\n\n"
      "You can call functions to help you answer. They are listed below, one JSON object per line, each with the "
      "function's name, what it does, and its parameters as a JSON Schema:\n\n";
  for (const auto& t : tools) out += t.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  out +=
      "\nTo call a function, reply with the call written exactly like this, with the function's name and its "
      "arguments as a JSON object that fits its parameters:\n\n";
  out += syntax.format_calls({{"", "FUNCTION_NAME", "{\"ARGUMENT\": \"VALUE\"}"}});
  out += "\n\n";
  out += single_call ? "Call at most one function per reply. "
                     : "To call several functions at once, write the calls one after another, each on its own line. ";
  out += "Each function's result comes back to you as a tool output; answer the user from the results. When no "
         "function helps, answer directly without calling one.";
  return out;
}

void add_system_text(nlohmann::ordered_json& messages, const std::string& text) {
  if (!messages.empty() && messages[0].is_object() && messages[0].value("role", "") == "system" &&
      messages[0]["content"].is_string()) {
    messages[0]["content"] = messages[0]["content"].get<std::string>() + "\n\n" + text;
    return;
  }
  messages.insert(messages.begin(), nlohmann::ordered_json{{"role", "system"}, {"content", text}});
}

void shape_tool_history(nlohmann::ordered_json& messages, const TemplateToolSupport& support) {
  for (auto& m : messages) {
    if (m.value("role", "") != "assistant") continue;
    const bool has_calls = m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty();
    if (!has_calls || !support.renders_tool_calls) {
      if (m["content"].is_null()) m["content"] = "";
      continue;
    }
    if (support.calls_need_null_content) {
      m["content"] = nullptr;  // the template writes the calls only then (text alongside them is dropped)
    } else if (m["content"].is_null()) {
      m["content"] = "";
    }
  }
}

void calls_as_text(nlohmann::ordered_json& messages, const ToolCallSyntax& syntax) {
  for (auto& m : messages) {
    if (m.value("role", "") != "assistant" || !m.contains("tool_calls")) continue;
    std::vector<ToolCall> calls;
    for (const auto& c : m["tool_calls"]) {
      calls.push_back({c.value("id", ""), c["function"].value("name", ""), c["function"].value("arguments", "")});
    }
    std::string content = m["content"].is_string() ? m["content"].get<std::string>() : "";
    content += syntax.format_calls(calls);
    m["content"] = std::move(content);
    m.erase("tool_calls");
  }
}

}  // namespace tandem::server
