#include "server/prompt_encoder.h"

#include <algorithm>

namespace tandem::server {

namespace {

constexpr std::string_view kMarker = "\xEF\xB7\x90";       // U+FDD0
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

size_t utf8_length(unsigned char lead) {
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

}  // namespace

std::string PromptEncoder::neutralized(std::string_view text) const {
  std::string escaped;
  if (text.find(kMarker) != std::string_view::npos) {
    escaped.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      const size_t at = text.find(kMarker, pos);
      escaped.append(text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
      if (at == std::string_view::npos) break;
      escaped.append(kReplacement);
      pos = at + kMarker.size();
    }
    text = escaped;
  }
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Tokenizer::TextSpan m = tokenizer_->find_added_token(text, pos);
    if (m.length == 0) {
      out.append(text.substr(pos));
      break;
    }
    // Break the spelling after its first character, then look again from there (what follows may hold another).
    const size_t first = std::min(utf8_length(static_cast<unsigned char>(text[m.pos])), m.length);
    out.append(text.substr(pos, m.pos + first - pos));
    out.append(kMarker);
    pos = m.pos + first;
  }
  return out;
}

void PromptEncoder::neutralize(nlohmann::ordered_json& value) const {
  if (value.is_string()) {
    value = neutralized(value.get_ref<const std::string&>());
  } else if (value.is_array()) {
    for (auto& v : value) neutralize(v);
  } else if (value.is_object()) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (auto& [key, v] : value.items()) {
      neutralize(v);
      out[neutralized(key)] = std::move(v);
    }
    value = std::move(out);
  }
}

std::string PromptEncoder::readable(std::string_view rendered) {
  std::string out;
  out.reserve(rendered.size());
  for (size_t pos = 0;;) {
    const size_t at = rendered.find(kMarker, pos);
    out.append(rendered.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    pos = at + kMarker.size();
  }
  return out;
}

std::vector<int32_t> PromptEncoder::encode_rendered(std::string_view rendered) const {
  // Added tokens where the rendered text spells them (markers keep neutralized spellings from matching); the
  // text between them, markers removed, as plain text: exactly what encode() gives for text without markers.
  std::vector<int32_t> ids;
  std::string plain;
  for (size_t pos = 0;;) {
    const Tokenizer::TextSpan m = tokenizer_->find_added_token(rendered, pos);
    const std::string_view between = rendered.substr(pos, m.length ? m.pos - pos : std::string_view::npos);
    plain.clear();
    for (size_t from = 0;;) {
      const size_t at = between.find(kMarker, from);
      plain.append(between.substr(from, at == std::string_view::npos ? std::string_view::npos : at - from));
      if (at == std::string_view::npos) break;
      from = at + kMarker.size();
    }
    const std::vector<int32_t> part = tokenizer_->encode(plain, /*add_special=*/false, /*parse_special=*/false);
    ids.insert(ids.end(), part.begin(), part.end());
    if (m.length == 0) break;
    ids.push_back(m.id);
    pos = m.pos + m.length;
  }
  return ids;
}

}  // namespace tandem::server
