#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace tandem::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> spelling;
  std::array<int16_t, 0x144> byte_of;  // code point -> byte, -1 outside the alphabet

  Tables() {
    byte_of.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      utf8::append_code_point(spelling[b], cp);
      byte_of[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

std::string_view spell(uint8_t b) { return tables().spelling[b]; }

std::string encode(std::string_view bytes) {
  const Tables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.spelling[static_cast<uint8_t>(c)];
  return out;
}

bool decode(std::string_view text, std::string& out) {
  const Tables& t = tables();
  const size_t start = out.size();
  size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    char32_t cp;
    if (b0 < 0x80) {
      cp = b0;
      i += 1;
    } else if ((b0 & 0xE0) == 0xC0 && i + 1 < text.size()) {
      cp = (static_cast<char32_t>(b0 & 0x1F) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3F);
      i += 2;
    } else {
      cp = 0x144;  // 3- and 4-byte code points are all outside the alphabet
    }
    if (cp >= t.byte_of.size() || t.byte_of[cp] < 0) {
      out.resize(start);
      return false;
    }
    out.push_back(static_cast<char>(t.byte_of[cp]));
  }
  return true;
}

}  // namespace tandem::byte_level
