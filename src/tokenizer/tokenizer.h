// Tokenizer: the byte-level BPE vocabulary of a model (GGUF `tokenizer.ggml.model` = "gpt2") with its
// pre-tokenizer (`tokenizer.ggml.pre`), reproducing the model's Hugging Face tokenizer.
//
// encode(): ill-formed UTF-8 input is first repaired (each bad subsequence -> U+FFFD). With parse_special, added
// tokens (control and user-defined entries) are found in the text first, leftmost-longest, and emitted as their
// ids; the text between them is normalized (NFC where the family does), pre-tokenized, and BPE-merged.
// add_special prepends BOS (and appends EOS) only where the model's add_bos_token (add_eos_token) flag asks.
// decode(): tokens are turned back into bytes (byte-level alphabet, <0xXX> byte tokens); control and user-defined
// tokens decode to their text, control ones are dropped with skip_special; unused tokens and unknown ids decode to
// nothing; ill-formed UTF-8 in the result is repaired as above. A Tokenizer is immutable and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tandem {

class GgufModel;
class PreTokenizer;
class BpeModel;
class AddedTokenMatcher;

// GGUF token types (`tokenizer.ggml.token_type`).
enum class TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// Everything a tokenizer is built from, as the GGUF keys hold it.
struct TokenizerSpec {
  std::string model = "gpt2";                   // tokenizer.ggml.model
  std::string pre;                              // tokenizer.ggml.pre
  std::vector<std::string> tokens;              // tokenizer.ggml.tokens
  std::vector<TokenType> types;                 // tokenizer.ggml.token_type (empty: all normal)
  std::vector<std::string> merges;              // tokenizer.ggml.merges
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  bool add_bos = false, add_eos = false;        // tokenizer.ggml.add_bos_token / add_eos_token
};

class Tokenizer {
 public:
  static Result<std::shared_ptr<Tokenizer>> from_gguf(const GgufModel& model);
  static Result<std::shared_ptr<Tokenizer>> from_spec(TokenizerSpec spec);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special = false, bool parse_special = true) const;
  // Where encode() with parse_special would next see an added token in text[from..] (leftmost-longest):
  // {pos, length, id}; length 0 when there is none.
  struct TextSpan {
    size_t pos = 0, length = 0;
    int32_t id = -1;
  };
  TextSpan find_added_token(std::string_view text, size_t from = 0) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  // The bytes token `id` decodes to (may be part of a UTF-8 character); empty for unknown ids.
  const std::string& token_piece(int32_t id) const;
  // The token's vocabulary text (byte-level spelling, e.g. "Ġworld"); empty for unknown ids.
  const std::string& token_text(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view text) const;
  TokenType token_type(int32_t id) const;      // kUnused for unknown ids
  bool is_special(int32_t id) const;           // a control token (BOS, EOS, <|im_end|>, ...)

  int32_t vocab_size() const;
  int32_t bos_id() const { return spec_.bos_id; }  // -1 when the model has none
  int32_t eos_id() const { return spec_.eos_id; }
  int32_t pad_id() const { return spec_.pad_id; }
  bool add_bos() const { return spec_.add_bos; }
  const std::string& pre_name() const { return spec_.pre; }

 private:
  Tokenizer();
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;

  TokenizerSpec spec_;
  std::vector<std::string> pieces_;  // decoded bytes per id
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
