#include "chat/gguf_chat.h"

namespace tandem::chat {

namespace {

std::optional<std::string> token_text(const GgufModel& model, const char* id_key) {
  const std::optional<int64_t> id = model.get_int(id_key);
  const GgufValue* tokens = model.find("tokenizer.ggml.tokens");
  const GgufArray* array = tokens ? tokens->as_array() : nullptr;
  if (!id || !array || *id < 0 || static_cast<uint64_t>(*id) >= array->values.size()) return std::nullopt;
  return array->values[static_cast<size_t>(*id)].as_string();
}

}  // namespace

Result<GgufChatInfo> read_gguf_chat_info(const GgufModel& model) {
  GgufChatInfo info;
  std::optional<std::string> tpl = model.get_string("tokenizer.chat_template");
  if (!tpl) {
    const std::string file = model.files().empty() ? "model" : model.files().front();
    return Status::error(file + ": no tokenizer.chat_template in the GGUF metadata");
  }
  info.chat_template = std::move(*tpl);
  info.bos_token = token_text(model, "tokenizer.ggml.bos_token_id");
  info.eos_token = token_text(model, "tokenizer.ggml.eos_token_id");
  return info;
}

}  // namespace tandem::chat
