// The tokenizer against the Hugging Face reference fixtures (fixtures/tokenizer/*.tokenizer_ref.json) with the
// vocabularies of the tiny models' GGUF files.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tokenizer/test_fixtures.h"

namespace tandem {
namespace {

struct FixtureCase {
  const char* name;
  const char* model;      // folder under fixtures/models
  const char* reference;  // file under fixtures/tokenizer
};

void PrintTo(const FixtureCase& c, std::ostream* os) { *os << c.name; }

class TokenizerFixtureTest : public ::testing::TestWithParam<FixtureCase> {
 protected:
  void SetUp() override {
    if (testing::fixtures_dir().empty()) GTEST_SKIP() << "fixtures not found (set TANDEM_SOURCE_DIR)";
    std::string error;
    tok_ = testing::fixture_tokenizer(GetParam().model, &error);
    ASSERT_TRUE(error.empty()) << error;
    if (!tok_) GTEST_SKIP() << "fixture model " << GetParam().model << " not found";
    std::ifstream in(testing::fixtures_dir() + "/tokenizer/" + GetParam().reference);
    if (!in) GTEST_SKIP() << "reference " << GetParam().reference << " not found";
    ref_ = nlohmann::json::parse(in);
  }
  std::shared_ptr<const Tokenizer> tok_;
  nlohmann::json ref_;
};

TEST_P(TokenizerFixtureTest, EncodeMatchesReference) {
  ASSERT_GT(ref_["encode"].size(), 0u);
  for (const auto& c : ref_["encode"]) {
    const std::string text = c["text"];
    const std::vector<int32_t> expected = c["ids"];
    EXPECT_EQ(tok_->encode(text), expected) << "text: " << nlohmann::json(text).dump();
  }
}

TEST_P(TokenizerFixtureTest, DecodeMatchesReference) {
  for (const auto& c : ref_["encode"]) {
    const std::vector<int32_t> ids = c["ids"];
    const std::string decoded = c["decoded"];
    EXPECT_EQ(tok_->decode(ids), decoded) << "text: " << c["text"].dump();
  }
}

TEST_P(TokenizerFixtureTest, SpecialTokensFromReference) {
  const std::string eos = ref_["eos"];
  ASSERT_TRUE(tok_->token_to_id(eos).has_value());
  EXPECT_EQ(*tok_->token_to_id(eos), tok_->eos_id());
  EXPECT_TRUE(tok_->is_special(tok_->eos_id()));
  EXPECT_EQ(tok_->token_piece(tok_->eos_id()), eos);
  EXPECT_EQ(tok_->encode(eos), std::vector<int32_t>{tok_->eos_id()});
  EXPECT_EQ(tok_->decode({tok_->eos_id()}, /*skip_special=*/true), "");
  if (ref_["bos"].is_string()) {
    const std::string bos = ref_["bos"];
    EXPECT_EQ(tok_->token_to_id(bos), tok_->bos_id());
  }
}

TEST_P(TokenizerFixtureTest, ChatRenderingRoundTrips) {
  for (const auto& c : ref_["chat"]) {
    const std::string rendered = c["rendered"];
    const std::vector<int32_t> ids = tok_->encode(rendered);
    EXPECT_EQ(tok_->decode(ids), rendered);
    // Added tokens are found in the text: parsing them gives fewer tokens than treating them as plain text.
    EXPECT_LT(ids.size(), tok_->encode(rendered, false, /*parse_special=*/false).size());
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TokenizerFixtureTest,
                         ::testing::Values(FixtureCase{"DeepseekV3", "tiny-dsv3-bf16", "deepseek_v3.tokenizer_ref.json"},
                                           FixtureCase{"Qwen3", "tiny-qwen3moe-bf16", "qwen3.tokenizer_ref.json"}),
                         [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(TokenizerGgufTest, DeepseekV3AddsBosWhenAsked) {
  std::string error;
  auto tok = testing::fixture_tokenizer("tiny-dsv3-bf16", &error);
  ASSERT_TRUE(error.empty()) << error;
  if (!tok) GTEST_SKIP() << "fixture model tiny-dsv3-bf16 not found";
  EXPECT_EQ(tok->pre_name(), "deepseek-v3");
  EXPECT_TRUE(tok->add_bos());
  const std::vector<int32_t> ids = tok->encode("hello", /*add_special=*/true);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], tok->bos_id());
  EXPECT_EQ(tok->vocab_size(), 129280);
}

TEST(TokenizerGgufTest, QwenDoesNotAddBos) {
  std::string error;
  auto tok = testing::fixture_tokenizer("tiny-qwen3moe-bf16", &error);
  ASSERT_TRUE(error.empty()) << error;
  if (!tok) GTEST_SKIP() << "fixture model tiny-qwen3moe-bf16 not found";
  EXPECT_EQ(tok->encode("hello", true), tok->encode("hello", false));
  // User-defined added tokens (<think>) are matched in text but are not control tokens.
  const auto think = tok->token_to_id("<think>");
  ASSERT_TRUE(think.has_value());
  EXPECT_EQ(tok->token_type(*think), TokenType::kUserDefined);
  EXPECT_FALSE(tok->is_special(*think));
  EXPECT_EQ(tok->decode({*think}, true), "<think>");
  // NFC: a decomposed "é" encodes like the precomposed one.
  EXPECT_EQ(tok->encode("cafe\xCC\x81"), tok->encode("caf\xC3\xA9"));
}

}  // namespace
}  // namespace tandem
