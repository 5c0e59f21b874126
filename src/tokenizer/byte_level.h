// GPT-2 byte-level alphabet: byte-level BPE vocabularies spell every byte as one printable code point (bytes that
// are printable Latin-1 map to themselves, the other 68 to U+0100..U+0143 in byte order), so that token text is
// always valid UTF-8. encode() maps raw bytes to that spelling; decode() maps it back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::byte_level {

// The UTF-8 spelling of byte `b` (one code point, 1 or 2 bytes).
std::string_view spell(uint8_t b);

// Raw bytes -> vocabulary spelling.
std::string encode(std::string_view bytes);

// Vocabulary spelling -> raw bytes, appended to `out`. Returns false (and leaves `out` unchanged) when `text`
// contains a code point outside the alphabet.
bool decode(std::string_view text, std::string& out);

}  // namespace tandem::byte_level
