// Chat templates: the Jinja2 template a GGUF file carries in `tokenizer.chat_template`, rendered exactly
// as Hugging Face transformers' apply_chat_template renders it (jinja2 sandbox, trim_blocks and
// lstrip_blocks on, loop controls, `{% generation %}`, the raise_exception / strftime_now globals, and
// tojson as transformers defines it: json.dumps with ensure_ascii=False and optional indent).
//
// Python semantics are reproduced: str/repr of values (True, None, 1.0, ['a']), integer vs float
// arithmetic, string methods counting characters, insertion-ordered dicts, and jinja2's default
// Undefined (renders empty, is falsy, iterates as empty; an attribute of it, arithmetic on it or a call
// of it is an error). Differences: integers are 64-bit (overflow is an error); filters that jinja2 makes
// generators (map, select, ...), range() and dict.keys()/values()/items() give lists (only their
// printed form differs); list.append works (the sandbox would refuse it); there is no Markup type
// (|e escapes every time); case mapping beyond Latin, Greek and Cyrillic is identity. Not supported
// (an error naming them): extends/block/include/import, recursive loops, the do tag, cycler/lipsum.
//
// Errors (syntax, unsupported construct, runtime error, raise_exception) come back as a Status whose
// message names the line:column in the template.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace tandem::chat {

namespace jinja {
struct Template;
}

class ChatTemplate {
 public:
  static Result<ChatTemplate> parse(std::string_view source);

  // Renders with the members of `context` (a JSON object) as template variables. Const and thread-safe.
  Result<std::string> render(const nlohmann::ordered_json& context) const;

  // The variables transformers passes: messages, tools (none), documents (none), add_generation_prompt,
  // bos_token / eos_token when given, then every member of `extra` (e.g. tools, enable_thinking), which
  // override the others.
  Result<std::string> render_chat(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                  const std::optional<std::string>& bos_token,
                                  const std::optional<std::string>& eos_token,
                                  const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  const std::string& source() const { return *source_; }

 private:
  ChatTemplate(std::shared_ptr<const jinja::Template> tpl, std::shared_ptr<const std::string> source);
  std::shared_ptr<const jinja::Template> tpl_;
  std::shared_ptr<const std::string> source_;
};

}  // namespace tandem::chat
