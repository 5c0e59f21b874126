#include "tokenizer/pretokenizer.h"

#include "tokenizer/unicode_nfc.h"

namespace tandem {
namespace {

// Patterns as the models' tokenizer.json files write them (Oniguruma syntax), with non-ASCII characters
// spelled as \x{...}. `\s` means Unicode White_Space (see regex.h).
constexpr std::string_view kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr std::string_view kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// DeepSeek-V3: digits in groups of up to three, then runs of CJK ideographs (U+4E00..U+9FA5) and kana, then the
// main split.
constexpr std::string_view kDeepseekV3Digits = R"(\p{N}{1,3})";
constexpr std::string_view kDeepseekV3Cjk = R"([\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+)";
constexpr std::string_view kDeepseekV3Main =
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+)"
    R"(| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// DeepSeek LLM (v1) and Coder-era split sequence; the letter class lists the cased-letter (L&) ranges.
constexpr std::string_view kDeepseekLlmNewline = R"([\r\n])";
constexpr std::string_view kDeepseekLlmLetters =
    R"(\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF})"
    R"(\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1})"
    R"(\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5})"
    R"(\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A})"
    R"(\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B})"
    R"(\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC})"
    R"(\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107})"
    R"(\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134})"
    R"(\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})"
    R"(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787})"
    R"(\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A})"
    R"(\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2})"
    R"(\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+)";
constexpr std::string_view kDeepseekLlmPunct =
    R"(\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+)";
constexpr std::string_view kDeepseekLlmTrailingSpace = R"(\s+$)";
constexpr std::string_view kDeepseekLlmCjk = R"([\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+)";
constexpr std::string_view kDeepseekLlmDigits = R"(\p{N}+)";

}  // namespace

const std::vector<PreTokenizerSpec>& pretokenizer_specs() {
  static const std::vector<PreTokenizerSpec> all = {
      {"gpt2", false, false, {kGpt2}},
      {"llama-bpe", false, true, {kLlama3}},
      {"qwen2", true, false, {kQwen2}},
      {"gpt-4o", false, false, {kGpt4o}},
      {"deepseek-v3", false, false, {kDeepseekV3Digits, kDeepseekV3Cjk, kDeepseekV3Main}},
      {"deepseek-llm",
       false,
       false,
       {kDeepseekLlmNewline, kDeepseekLlmLetters, kDeepseekLlmPunct, kDeepseekLlmTrailingSpace, kDeepseekLlmCjk,
        kDeepseekLlmDigits}},
  };
  return all;
}

std::vector<std::string> PreTokenizer::supported_names() {
  std::vector<std::string> names;
  for (const PreTokenizerSpec& c : pretokenizer_specs()) names.emplace_back(c.name);
  return names;
}

Result<std::shared_ptr<const PreTokenizer>> PreTokenizer::create(const std::string& name) {
  for (const PreTokenizerSpec& c : pretokenizer_specs()) {
    if (c.name != name) continue;
    std::shared_ptr<PreTokenizer> pre(new PreTokenizer());
    pre->name_ = name;
    pre->nfc_ = c.nfc;
    pre->ignore_merges_ = c.ignore_merges;
    for (std::string_view pattern : c.patterns) {
      auto regex = SplitRegex::compile(pattern);
      if (!regex) return regex.status();
      pre->regexes_.push_back(std::move(regex).value());
    }
    return std::shared_ptr<const PreTokenizer>(std::move(pre));
  }
  std::string known;
  for (const std::string& n : supported_names()) known += (known.empty() ? "" : ", ") + n;
  return Status::error("tokenizer: unsupported pre-tokenizer '" + name + "' (supported: " + known + ")");
}

std::string_view PreTokenizer::normalize(std::string_view text, std::string& storage) const {
  if (!nfc_ || is_nfc(text)) return text;
  storage = to_nfc(text);
  return storage;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  if (regexes_.size() == 1) {
    regexes_[0]->split(text, out);
    return;
  }
  std::vector<std::string_view> current{text};
  std::vector<std::string_view> next;
  for (size_t r = 0; r < regexes_.size(); ++r) {
    std::vector<std::string_view>& target = r + 1 == regexes_.size() ? out : next;
    for (std::string_view piece : current) regexes_[r]->split(piece, target);
    if (&target == &next) {
      current.swap(next);
      next.clear();
    }
  }
}

}  // namespace tandem
