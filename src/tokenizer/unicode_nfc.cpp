#include "tokenizer/unicode_nfc.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>

#include <cstdint>
#include <stdexcept>

namespace tandem {
namespace {

const icu::Normalizer2& nfc() {
  static const icu::Normalizer2* instance = [] {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(status);
    if (U_FAILURE(status) || n == nullptr) throw std::runtime_error("ICU: NFC normalizer unavailable");
    return n;
  }();
  return *instance;
}

bool is_ascii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

icu::StringPiece piece(std::string_view text) {
  return icu::StringPiece(text.data(), static_cast<int32_t>(text.size()));
}

}  // namespace

bool is_nfc(std::string_view text) {
  if (is_ascii(text) || text.size() > INT32_MAX) return true;  // ICU takes int32 lengths; such input stays as is
  UErrorCode status = U_ZERO_ERROR;
  const UBool normalized = nfc().isNormalizedUTF8(piece(text), status);
  return U_SUCCESS(status) && normalized;
}

std::string to_nfc(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  icu::StringByteSink<std::string> sink(&out);
  UErrorCode status = U_ZERO_ERROR;
  nfc().normalizeUTF8(0, piece(text), sink, nullptr, status);
  if (U_FAILURE(status)) return std::string(text);
  return out;
}

}  // namespace tandem
