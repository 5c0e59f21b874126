// Pre-tokenizer of a byte-level BPE vocabulary, chosen by the GGUF key `tokenizer.ggml.pre`.
//
// It reproduces the Hugging Face tokenizer.json pipeline of each supported family: an optional NFC normalizer,
// then a sequence of regex splits with "isolated" behaviour (each regex splits every piece the previous one
// produced; matches and the stretches between them both become pieces). Supported names: gpt2, llama-bpe
// (Llama 3), qwen2 (Qwen 2/2.5/3, with NFC), deepseek-llm, deepseek-v3, gpt-4o. Immutable; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/regex.h"

namespace tandem {

// A supported family as tokenizer.json files define it: the split regexes (Oniguruma spelling, non-ASCII as
// \x{...}) in order, whether NFC precedes them, and HF's ignore_merges.
struct PreTokenizerSpec {
  std::string_view name;  // tokenizer.ggml.pre
  bool nfc;
  bool ignore_merges;
  std::vector<std::string_view> patterns;
};
const std::vector<PreTokenizerSpec>& pretokenizer_specs();

class PreTokenizer {
 public:
  static Result<std::shared_ptr<const PreTokenizer>> create(const std::string& name);
  static std::vector<std::string> supported_names();

  const std::string& name() const { return name_; }
  // Whether BPE should emit a whole piece as one token when it is in the vocabulary (HF `ignore_merges`).
  bool ignore_merges() const { return ignore_merges_; }

  // The text the splits run on: `text` itself, or its NFC form stored in `storage`. `text` must be valid UTF-8.
  std::string_view normalize(std::string_view text, std::string& storage) const;

  // Appends the pieces of `text` (already normalized) to `out`; they cover `text` exactly, in order.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  PreTokenizer() = default;
  std::string name_;
  bool nfc_ = false;
  bool ignore_merges_ = false;
  std::vector<std::shared_ptr<const SplitRegex>> regexes_;
};

}  // namespace tandem
