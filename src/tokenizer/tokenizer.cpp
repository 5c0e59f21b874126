#include "tokenizer/tokenizer.h"

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/utf8.h"

namespace tandem {
namespace {

// "<0xAB>" -> 0xAB.
std::optional<char> parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return std::nullopt;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + digit;
  }
  return static_cast<char>(value);
}

std::string decode_piece(const std::string& text, TokenType type) {
  switch (type) {
    case TokenType::kUnused:
      return {};
    case TokenType::kControl:
    case TokenType::kUserDefined:
    case TokenType::kUnknown:
      return text;
    case TokenType::kByte:
      if (auto byte = parse_byte_token(text)) return std::string(1, *byte);
      [[fallthrough]];
    case TokenType::kNormal:
      break;
  }
  std::string bytes;
  if (byte_level::decode(text, bytes)) return bytes;
  return text;  // not in the byte alphabet: the text itself, as Hugging Face's ByteLevel decoder does
}

const std::string& empty_string() {
  static const std::string kEmpty;
  return kEmpty;
}

}  // namespace

struct Tokenizer::Impl {
  TokenIdMap token_ids;
  std::shared_ptr<const PreTokenizer> pre;
  std::unique_ptr<BpeModel> bpe;
  AddedTokenMatcher added;
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::~Tokenizer() = default;

Result<std::shared_ptr<Tokenizer>> Tokenizer::from_spec(TokenizerSpec spec) {
  if (spec.model != "gpt2") {
    return Status::error("tokenizer: unsupported tokenizer model '" + spec.model + "' (only byte-level BPE, 'gpt2')");
  }
  if (spec.tokens.empty()) return Status::error("tokenizer: the vocabulary is empty");
  const auto n = static_cast<int32_t>(spec.tokens.size());
  if (spec.types.empty()) spec.types.assign(spec.tokens.size(), TokenType::kNormal);
  if (spec.types.size() != spec.tokens.size()) {
    return Status::error("tokenizer: " + std::to_string(spec.types.size()) + " token types for " +
                         std::to_string(n) + " tokens");
  }
  for (int32_t* id : {&spec.bos_id, &spec.eos_id, &spec.pad_id, &spec.unk_id}) {
    if (*id >= n) *id = -1;
  }

  std::shared_ptr<Tokenizer> tok(new Tokenizer());
  Impl& impl = *tok->impl_;
  auto pre = PreTokenizer::create(spec.pre);
  if (!pre) return pre.status();
  impl.pre = std::move(pre).value();

  impl.token_ids.reserve(spec.tokens.size());
  tok->pieces_.reserve(spec.tokens.size());
  for (int32_t id = 0; id < n; ++id) {
    const std::string& text = spec.tokens[id];
    const TokenType type = spec.types[id];
    impl.token_ids.try_emplace(text, id);
    tok->pieces_.push_back(decode_piece(text, type));
    if (type == TokenType::kControl || type == TokenType::kUserDefined) impl.added.add(text, id);
  }
  auto bpe = BpeModel::create(impl.token_ids, spec.merges, impl.pre->ignore_merges());
  if (!bpe) return bpe.status();
  impl.bpe = std::move(bpe).value();
  spec.merges.clear();
  spec.merges.shrink_to_fit();
  tok->spec_ = std::move(spec);
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::to_valid(text);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && spec_.add_bos && spec_.bos_id >= 0) out.push_back(spec_.bos_id);
  if (parse_special && !impl_->added.empty()) {
    size_t pos = 0;
    while (pos < text.size()) {
      const AddedTokenMatcher::Match m = impl_->added.find(text, pos);
      encode_plain(text.substr(pos, m.pos - pos), out);
      if (m.length == 0) break;
      out.push_back(m.id);
      pos = m.pos + m.length;
    }
  } else {
    encode_plain(text, out);
  }
  if (add_special && spec_.add_eos && spec_.eos_id >= 0) out.push_back(spec_.eos_id);
  return out;
}

Tokenizer::TextSpan Tokenizer::find_added_token(std::string_view text, size_t from) const {
  if (impl_->added.empty() || from >= text.size()) return {text.size(), 0, -1};
  const AddedTokenMatcher::Match m = impl_->added.find(text, from);
  return {m.pos, m.length, m.length ? m.id : -1};
}

void Tokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::string normalized;
  text = impl_->pre->normalize(text, normalized);
  std::vector<std::string_view> pieces;
  impl_->pre->split(text, pieces);
  for (std::string_view piece : pieces) impl_->bpe->encode_word(piece, out);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (skip_special && spec_.types[id] == TokenType::kControl) continue;
    bytes += pieces_[id];
  }
  if (utf8::is_valid(bytes)) return bytes;
  return utf8::to_valid(bytes);
}

const std::string& Tokenizer::token_piece(int32_t id) const {
  return id >= 0 && id < vocab_size() ? pieces_[id] : empty_string();
}

const std::string& Tokenizer::token_text(int32_t id) const {
  return id >= 0 && id < vocab_size() ? spec_.tokens[id] : empty_string();
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view text) const {
  auto it = impl_->token_ids.find(text);
  if (it == impl_->token_ids.end()) return std::nullopt;
  return it->second;
}

TokenType Tokenizer::token_type(int32_t id) const {
  return id >= 0 && id < vocab_size() ? spec_.types[id] : TokenType::kUnused;
}

bool Tokenizer::is_special(int32_t id) const { return token_type(id) == TokenType::kControl; }

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(spec_.tokens.size()); }

}  // namespace tandem
