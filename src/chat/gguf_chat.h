// What a GGUF model says about chatting: its `tokenizer.chat_template` and the text of its BOS / EOS
// tokens (tokenizer.ggml.tokens at tokenizer.ggml.bos_token_id / eos_token_id), i.e. the bos_token /
// eos_token variables transformers passes to the template. A token id that is absent or out of range
// leaves that token nullopt; a model without a chat template is an error.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "gguf/gguf_file.h"

namespace tandem::chat {

struct GgufChatInfo {
  std::string chat_template;
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

Result<GgufChatInfo> read_gguf_chat_info(const GgufModel& model);

}  // namespace tandem::chat
