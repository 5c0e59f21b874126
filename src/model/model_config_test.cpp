#include "model/model_config.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "testing/fixtures.h"

namespace tandem {

namespace {
bool has_source(const ModelConfig& c, const std::string& needle) {
  return std::any_of(c.sources.begin(), c.sources.end(), [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}
}  // namespace

TEST(ModelConfig, DeepseekV3RoutingComesFromGgufAndConfigJson) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir("tiny-dsv3-bf16");
  auto gguf = GgufModel::open((dir / "model.gguf").string());
  ASSERT_TRUE(gguf) << gguf.status().message();
  auto c = load_model_config(*gguf.value(), dir.string());
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->arch, Arch::Deepseek2);
  EXPECT_EQ(c->n_layers, 3);
  EXPECT_EQ(c->q_lora_rank, 48);
  EXPECT_EQ(c->kv_lora_rank, 32);
  EXPECT_EQ(c->qk_nope_dim, 32);
  EXPECT_EQ(c->qk_rope_dim, 16);
  EXPECT_EQ(c->n_leading_dense, 1);
  EXPECT_EQ(c->router.scoring, ScoringFunc::Sigmoid);
  EXPECT_EQ(c->router.topk_method, TopkMethod::NoauxTc);
  EXPECT_EQ(c->router.n_group, 4);
  EXPECT_EQ(c->router.topk_group, 2);
  EXPECT_TRUE(c->router.norm_topk_prob);
  EXPECT_DOUBLE_EQ(c->router.routed_scaling_factor, 2.5);
  EXPECT_TRUE(c->rope.yarn);
  EXPECT_TRUE(c->rope.adjacent_pairs);
  // softmax scale: 1/sqrt(48) * (1 + 0.1 ln 40)^2
  const double m = 1.0 + 0.1 * std::log(40.0);
  EXPECT_NEAR(c->kq_scale, m * m / std::sqrt(48.0), 1e-6);
  EXPECT_TRUE(has_source(*c, "n_group = 4 (config.json n_group)"));
  EXPECT_TRUE(has_source(*c, "scoring_func = sigmoid (GGUF deepseek2.expert_gating_func)"));
  EXPECT_TRUE(has_source(*c, "routed_scaling_factor = 2.5 (GGUF deepseek2.expert_weights_scale)"));
}

TEST(ModelConfig, WithoutConfigJsonGroupsDefaultAndSaySo) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir("tiny-dsv3-bf16");
  auto gguf = GgufModel::open((dir / "model.gguf").string());
  ASSERT_TRUE(gguf);
  auto c = load_model_config(*gguf.value(), "");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->router.n_group, 1);
  EXPECT_EQ(c->router.topk_method, TopkMethod::NoauxTc);
  EXPECT_TRUE(has_source(*c, "n_group = 1 (default"));
  EXPECT_TRUE(has_source(*c, "topk_method = noaux_tc (inferred"));
}

TEST(ModelConfig, Qwen3MoeGqa) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir("tiny-qwen3moe-bf16");
  auto gguf = GgufModel::open((dir / "model.gguf").string());
  ASSERT_TRUE(gguf);
  auto c = load_model_config(*gguf.value(), dir.string());
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c->arch, Arch::Qwen3Moe);
  EXPECT_EQ(c->n_head, 4);
  EXPECT_EQ(c->n_head_kv, 2);
  EXPECT_EQ(c->head_dim_k, 16);
  EXPECT_EQ(c->router.n_experts_used, 2);
  EXPECT_TRUE(c->router.norm_topk_prob);
  EXPECT_FALSE(c->rope.adjacent_pairs);
  EXPECT_DOUBLE_EQ(c->rope.freq_base, 1e6);
}

TEST(ModelConfig, MissingConfigJsonIsAnError) {
  TANDEM_REQUIRE_FIXTURES();
  auto gguf = GgufModel::open((testing::fixture_model_dir("tiny-qwen3moe-bf16") / "model.gguf").string());
  ASSERT_TRUE(gguf);
  auto c = load_model_config(*gguf.value(), "/nonexistent-dir");
  ASSERT_FALSE(c);
  EXPECT_NE(c.status().message().find("config.json"), std::string::npos);
}

}  // namespace tandem
