#include "chat/chat_template.h"

#include "chat/jinja_builtins.h"
#include "chat/jinja_interp.h"
#include "chat/jinja_parser.h"

namespace tandem::chat {

namespace {

std::string where(const jinja::Error& e) {
  if (!e.has_pos) return "";
  return " at " + std::to_string(e.pos.line) + ":" + std::to_string(e.pos.col);
}

}  // namespace

ChatTemplate::ChatTemplate(std::shared_ptr<const jinja::Template> tpl, std::shared_ptr<const std::string> source)
    : tpl_(std::move(tpl)), source_(std::move(source)) {}

Result<ChatTemplate> ChatTemplate::parse(std::string_view source) {
  try {
    std::shared_ptr<const jinja::Template> tpl = jinja::parse_template(source);
    return ChatTemplate(std::move(tpl), std::make_shared<const std::string>(source));
  } catch (const jinja::Error& e) {
    return Status::error("chat template syntax error" + where(e) + ": " + e.what());
  }
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) return Status::error("chat template context must be a JSON object");
  try {
    std::vector<std::pair<std::string, jinja::Value>> vars = jinja::make_globals();
    for (const auto& [k, v] : context.items()) vars.emplace_back(k, jinja::from_json(v));
    jinja::Interp interp(std::move(vars));
    return interp.render(*tpl_);
  } catch (const jinja::Error& e) {
    if (e.raised) return Status::error("chat template raised an exception" + where(e) + ": " + e.what());
    return Status::error("chat template error" + where(e) + ": " + e.what());
  }
}

Result<std::string> ChatTemplate::render_chat(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                              const std::optional<std::string>& bos_token,
                                              const std::optional<std::string>& eos_token,
                                              const nlohmann::ordered_json& extra) const {
  if (!extra.is_object()) return Status::error("chat template kwargs must be a JSON object");
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = messages;
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  if (bos_token) context["bos_token"] = *bos_token;
  if (eos_token) context["eos_token"] = *eos_token;
  for (const auto& [k, v] : extra.items()) context[k] = v;
  return render(context);
}

}  // namespace tandem::chat
