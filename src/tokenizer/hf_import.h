// Import of a Hugging Face tokenizer (a folder with tokenizer.json and tokenizer_config.json) into the GGUF
// tokenizer metadata that the llama.cpp converter (convert_hf_to_gguf.py) writes for byte-level BPE models.
//
// Supported: a "BPE" model with a ByteLevel pre-tokenizer whose regex splits (and optional NFC normalizer) are
// exactly those of one family PreTokenizer supports; anything else is an error that names what differs.
// As the converter does: tokens are in id order (model vocab, then added tokens, which win on a shared id), ids
// no entry names become "[PADn]" unused tokens; added tokens are control tokens when marked special or when
// they look special (<|...|>, <｜...｜>, <pad>, ...), user-defined otherwise, and the rest are normal; merges
// given as pairs are joined with one space (spaces inside a part written as U+0120); bos/eos/unk/pad ids come
// from tokenizer_config.json's *_token entries (strings or {"content": ...}) looked up by content, add_bos /
// add_eos from add_bos_token / add_eos_token.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

class GgufWriter;

struct HfTokenizer {
  TokenizerSpec spec;
  std::string chat_template;  // "" when the folder has none
};

// Reads `dir`/tokenizer.json and `dir`/tokenizer_config.json. The chat template is tokenizer_config.json's
// chat_template (a string, or the "default" entry of a list of {name, template}), else the folder's
// chat_template.jinja or chat_template.json. The vocabulary is padded with "[PADn]" tokens up to `min_vocab`
// (a model's vocab_size, which may exceed the tokenizer's).
Result<HfTokenizer> import_hf_tokenizer(const std::string& dir, int32_t min_vocab = 0);

// Sets the tokenizer.ggml.* keys and tokenizer.chat_template, with the converter's names and value types; ids
// that are -1 and an empty chat template are left out.
void write_tokenizer_metadata(const HfTokenizer& tokenizer, GgufWriter& writer);

// What identifies a pre-tokenizer in tokenizer.json: the regex of each split in order, with every character
// outside printable ASCII spelled \t, \n, \r or \x{HEX}, and whether an NFC normalizer precedes them.
struct HfPreTokenizerSignature {
  std::string_view name;  // tokenizer.ggml.pre
  bool nfc;
  std::vector<std::string_view> patterns;
};
// The known signatures, one per name PreTokenizer::supported_names() lists (exposed for tests).
const std::vector<HfPreTokenizerSignature>& hf_pre_tokenizer_signatures();

}  // namespace tandem
