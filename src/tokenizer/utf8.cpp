#include "tokenizer/utf8.h"

namespace tandem::utf8 {

Seq scan(std::string_view s, size_t pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  if (b0 < 0x80) return {SeqStatus::kValid, 1};
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {SeqStatus::kInvalid, 1};
  }
  for (size_t k = 1; k < need; ++k) {
    if (pos + k >= s.size()) return {SeqStatus::kTruncated, k};
    const auto b = static_cast<unsigned char>(s[pos + k]);
    const unsigned char min = k == 1 ? lo : 0x80;
    const unsigned char max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) return {SeqStatus::kInvalid, k};
  }
  return {SeqStatus::kValid, need};
}

bool is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      bool ascii = true;
      for (size_t k = 0; k < 8; ++k) ascii &= static_cast<unsigned char>(s[i + k]) < 0x80;
      if (!ascii) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const Seq seq = scan(s, i);
    if (seq.status != SeqStatus::kValid) return false;
    i += seq.length;
  }
  return true;
}

std::string to_valid(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const Seq seq = scan(s, i);
    if (seq.status == SeqStatus::kValid) {
      out.append(s.substr(i, seq.length));
    } else {
      out.append("\xEF\xBF\xBD");
    }
    i += seq.length;
  }
  return out;
}

size_t incomplete_tail(std::string_view s) {
  // A truncated sequence is at most 3 bytes long, so it starts in the last 3 bytes.
  const size_t first = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t start = first; start < s.size(); ++start) {
    if ((static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) continue;  // continuation byte
    const Seq seq = scan(s, start);
    if (seq.status == SeqStatus::kTruncated) return s.size() - start;
  }
  return 0;
}

void append_code_point(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace tandem::utf8
