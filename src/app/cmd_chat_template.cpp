// `tandem chat-template --gguf FILE --messages M.json [--add-generation-prompt] [--tools T.json]
//  [--kwargs JSON]`: renders the model's chat template (GGUF `tokenizer.chat_template`) the way
// transformers' apply_chat_template does, and prints the prompt exactly (no trailing newline added).
// M.json holds the messages array (or an object with a "messages" array); T.json the tools array;
// --kwargs extra template variables such as {"enable_thinking": false}. bos_token / eos_token are the
// texts of the GGUF's BOS / EOS tokens.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "chat/chat_template.h"
#include "chat/gguf_chat.h"
#include "gguf/gguf_file.h"

namespace tandem::app {

namespace {

using Json = nlohmann::ordered_json;

struct ChatTemplateOptions {
  std::string gguf;
  std::string messages;
  std::string tools;
  std::string kwargs;
  bool add_generation_prompt = false;
};

Result<Json> read_json_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(fmt::format("{}: cannot open {} file", path, what));
  std::stringstream ss;
  ss << in.rdbuf();
  Json j = Json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return Status::error(fmt::format("{}: {} file is not valid JSON", path, what));
  return j;
}

int run_chat_template(const ChatTemplateOptions& o) {
  const auto fail = [](const std::string& message) {
    fmt::print(stderr, "error: {}\n", message);
    return 1;
  };
  auto messages = read_json_file(o.messages, "messages");
  if (!messages) return fail(messages.status().message());
  Json msgs = messages.value();
  if (msgs.is_object() && msgs.contains("messages")) msgs = msgs["messages"];
  if (!msgs.is_array()) return fail(o.messages + ": expected a JSON array of messages");

  Json extra = Json::object();
  if (!o.kwargs.empty()) {
    extra = Json::parse(o.kwargs, nullptr, false);
    if (extra.is_discarded() || !extra.is_object()) return fail("--kwargs must be a JSON object");
  }
  if (!o.tools.empty()) {
    auto tools = read_json_file(o.tools, "tools");
    if (!tools) return fail(tools.status().message());
    if (!tools.value().is_array()) return fail(o.tools + ": expected a JSON array of tools");
    extra["tools"] = tools.value();
  }

  auto model = GgufModel::open(o.gguf);
  if (!model) return fail(model.status().message());
  auto info = chat::read_gguf_chat_info(*model.value());
  if (!info) return fail(info.status().message());
  auto tpl = chat::ChatTemplate::parse(info->chat_template);
  if (!tpl) return fail(o.gguf + ": " + tpl.status().message());
  auto prompt = tpl->render_chat(msgs, o.add_generation_prompt, info->bos_token, info->eos_token, extra);
  if (!prompt) return fail(prompt.status().message());
  std::fwrite(prompt.value().data(), 1, prompt.value().size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

void register_chat_template_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("chat-template", "Render a GGUF model's chat template for a conversation");
  auto o = std::make_shared<ChatTemplateOptions>();
  cmd->add_option("--gguf", o->gguf, "GGUF file, split part, or folder of parts")->required();
  cmd->add_option("--messages", o->messages, "JSON file: the messages array")->required();
  cmd->add_flag("--add-generation-prompt", o->add_generation_prompt, "End with the assistant turn's header");
  cmd->add_option("--tools", o->tools, "JSON file: the tools array (OpenAI function schemas)");
  cmd->add_option("--kwargs", o->kwargs, R"(Extra template variables as a JSON object, e.g. {"enable_thinking":false})");
  cmd->callback([o, &exit_code] { exit_code = run_chat_template(*o); });
}

}  // namespace tandem::app
