// Tokenizer::from_gguf: reads the tokenizer.ggml.* metadata of a GGUF model into a TokenizerSpec.
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace tandem {
namespace {

Result<std::vector<std::string>> string_array(const GgufModel& model, const std::string& key, bool required) {
  const GgufValue* value = model.find(key);
  if (value == nullptr) {
    if (required) return Status::error("tokenizer: GGUF metadata lacks " + key);
    return std::vector<std::string>{};
  }
  const GgufArray* array = value->as_array();
  if (array == nullptr) return Status::error("tokenizer: GGUF metadata " + key + " is not an array");
  std::vector<std::string> out;
  out.reserve(array->values.size());
  for (size_t i = 0; i < array->values.size(); ++i) {
    auto s = array->values[i].as_string();
    if (!s) return Status::error("tokenizer: GGUF " + key + "[" + std::to_string(i) + "] is not a string");
    out.push_back(std::move(*s));
  }
  return out;
}

Result<std::vector<TokenType>> token_types(const GgufModel& model, size_t n_tokens) {
  const std::string key = "tokenizer.ggml.token_type";
  const GgufValue* value = model.find(key);
  if (value == nullptr) return std::vector<TokenType>(n_tokens, TokenType::kNormal);
  const GgufArray* array = value->as_array();
  if (array == nullptr || array->values.size() != n_tokens) {
    return Status::error("tokenizer: GGUF " + key + " must be an array with one entry per token (" +
                         std::to_string(n_tokens) + ")");
  }
  std::vector<TokenType> out;
  out.reserve(n_tokens);
  for (const GgufValue& v : array->values) {
    const int64_t t = v.as_int().value_or(1);
    out.push_back(t >= 1 && t <= 6 ? static_cast<TokenType>(t) : TokenType::kNormal);
  }
  return out;
}

int32_t token_id(const GgufModel& model, const std::string& key) {
  const std::optional<int64_t> v = model.get_int(key);
  return v && *v >= 0 && *v <= INT32_MAX ? static_cast<int32_t>(*v) : -1;
}

}  // namespace

Result<std::shared_ptr<Tokenizer>> Tokenizer::from_gguf(const GgufModel& model) {
  TokenizerSpec spec;
  const std::optional<std::string> kind = model.get_string("tokenizer.ggml.model");
  if (!kind) return Status::error("tokenizer: GGUF metadata lacks tokenizer.ggml.model");
  spec.model = *kind;
  if (spec.model != "gpt2") {
    return Status::error("tokenizer: unsupported tokenizer.ggml.model '" + spec.model + "' (only 'gpt2', byte-level BPE)");
  }
  const std::optional<std::string> pre = model.get_string("tokenizer.ggml.pre");
  if (!pre) return Status::error("tokenizer: GGUF metadata lacks tokenizer.ggml.pre");
  spec.pre = *pre;

  auto tokens = string_array(model, "tokenizer.ggml.tokens", true);
  if (!tokens) return tokens.status();
  spec.tokens = std::move(tokens).value();
  auto types = token_types(model, spec.tokens.size());
  if (!types) return types.status();
  spec.types = std::move(types).value();
  auto merges = string_array(model, "tokenizer.ggml.merges", true);
  if (!merges) return merges.status();
  spec.merges = std::move(merges).value();

  spec.bos_id = token_id(model, "tokenizer.ggml.bos_token_id");
  spec.eos_id = token_id(model, "tokenizer.ggml.eos_token_id");
  spec.pad_id = token_id(model, "tokenizer.ggml.padding_token_id");
  spec.unk_id = token_id(model, "tokenizer.ggml.unknown_token_id");
  spec.add_bos = model.get_bool("tokenizer.ggml.add_bos_token").value_or(false);
  spec.add_eos = model.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  return from_spec(std::move(spec));
}

}  // namespace tandem
