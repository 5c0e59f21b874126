// Unicode NFC normalization of UTF-8 text (ICU), used by vocabularies whose Hugging Face tokenizer declares an NFC
// normalizer (Qwen2 and later). Input must be valid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace tandem {

// True when `text` is already in NFC (cheap for the common case: ASCII and quick-check "yes" text).
bool is_nfc(std::string_view text);

// `text` in NFC.
std::string to_nfc(std::string_view text);

}  // namespace tandem
