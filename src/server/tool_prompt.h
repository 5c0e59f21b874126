// Tools in the prompt: how a model's chat template treats tools and tool calls, and what the server adds where
// the template has no place for them.
//
// probe_tool_support() renders small probe conversations once, at start-up, and looks for a probe function's
// name in the output: does the template write the `tools` variable (Qwen3's does, in its system turn), does it
// write assistant messages' tool_calls, and only when their content is null (DeepSeek-V3's)? Rendering decisions
// follow from what the template does, not from its name.
//
// For a template without a tools section, tool_system_prompt() writes one in the model's own call syntax (the
// example call is ToolCallSyntax::format_calls(), so its markers are the model's special tokens), and
// add_system_text() puts it into the conversation's first system message (or a new one). shape_tool_history()
// prepares assistant tool-call messages for the template: content null or "" as it needs them (a template that
// writes calls only for null content, as DeepSeek-V3's, drops text sent alongside calls); calls_as_text() turns
// calls into text in the model's syntax for templates that do not write tool_calls at all. Strings from the
// client must be neutralized (prompt_encoder.h) before they go into what these functions build; the markup they
// add is the server's own and must not be. No exception leaves these functions except std::bad_alloc.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "server/tool_calls.h"

namespace tandem::server {

struct TemplateToolSupport {
  bool renders_tools = false;            // writes the `tools` variable into the prompt
  bool renders_tool_calls = false;       // writes assistant messages' tool_calls
  bool calls_need_null_content = false;  // ...only when the message's content is null
};

TemplateToolSupport probe_tool_support(const chat::ChatTemplate& tpl, const std::optional<std::string>& bos,
                                       const std::optional<std::string>& eos);

// The system-prompt section describing `tools` (OpenAI function tools, already neutralized) and how to call them.
std::string tool_system_prompt(const ToolCallSyntax& syntax, const nlohmann::ordered_json& tools, bool single_call);

// Appends `text` to the first message when it is a system message ("\n\n" between), else inserts a system
// message with it first.
void add_system_text(nlohmann::ordered_json& messages, const std::string& text);

// Assistant messages with tool_calls get the content the template needs (see above); others keep theirs.
void shape_tool_history(nlohmann::ordered_json& messages, const TemplateToolSupport& support);

// Assistant tool_calls become text in `syntax` appended to the content (tool_calls removed).
void calls_as_text(nlohmann::ordered_json& messages, const ToolCallSyntax& syntax);

}  // namespace tandem::server
