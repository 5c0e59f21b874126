// Models written by make_model load through the normal path (no config.json needed) and run: this covers
// the layouts the fixtures do not (DeepSeek-V2 without q-LoRA and with group-limited greedy routing) and
// the quantized types on real tensor shapes.
#include "app/model_maker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>

#include "kernels/cpu/quant.h"
#include "model/model.h"
#include "testing/model_harness.h"

namespace tandem {

namespace {

struct Case {
  const char* preset;
  const char* type;
};

class ModelMaker : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(ModelMaker, WrittenModelLoadsAndRunsDeterministically) {
  const Case c = GetParam();
  const auto path = std::filesystem::temp_directory_path() /
                    fmt::format("tandem-maker-{}-{}-{}.gguf", c.preset, c.type, ::getpid());
  ModelMakerOptions o;
  o.preset = c.preset;
  o.weight_type = c.type;
  o.seed = 7;
  o.threads = 2;
  auto bytes = make_model(o, path.string());
  ASSERT_TRUE(bytes) << bytes.status().message();
  auto gguf = GgufModel::open(path.string());
  ASSERT_TRUE(gguf) << gguf.status().message();
  auto config = load_model_config(*gguf.value(), "");
  ASSERT_TRUE(config) << config.status().message();
  if (std::string(c.preset) == "tiny-deepseek-v2") {
    EXPECT_EQ(config->q_lora_rank, 0);
    EXPECT_EQ(config->router.scoring, ScoringFunc::Softmax);
    EXPECT_EQ(config->router.topk_method, TopkMethod::GroupLimitedGreedy);
    EXPECT_EQ(config->router.n_group, 4);
    EXPECT_DOUBLE_EQ(config->router.routed_scaling_factor, 16.0);
  }
  auto loaded = testing::load_model(path, "");
  ASSERT_TRUE(loaded) << loaded.status().message();
  Model& model = *loaded->model;
  const std::vector<int32_t> ids{5, 17, 300, 2, 999, 64, 128, 7, 1, 1000, 42};
  const auto whole = testing::run_solo(model, ids, 64, 8);
  ASSERT_EQ(whole.size(), static_cast<size_t>(config->n_vocab));
  for (float v : whole) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(testing::run_solo(model, ids, 3, 8), whole);
  // Random weights must still make the output depend on the input (zero-mean weights, no collapse).
  const auto other = testing::run_solo(model, {900, 3, 77, 500, 12}, 64, 8);
  float mean = 0, spread = 0, diff = 0;
  for (float v : whole) mean += v / static_cast<float>(whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    spread = std::max(spread, std::abs(whole[i] - mean));
    diff = std::max(diff, std::abs(whole[i] - other[i]));
  }
  EXPECT_GT(diff, 0.05f * spread) << "the output hardly depends on the prompt";
  std::filesystem::remove(path);
}

INSTANTIATE_TEST_SUITE_P(Presets, ModelMaker,
                         ::testing::Values(Case{"tiny-deepseek-v2", "Q4_K_M"}, Case{"tiny-deepseek-v2", "Q8_0"},
                                           Case{"tiny-deepseek-v3", "Q4_K_M"}, Case{"tiny-qwen3moe", "Q6_K"},
                                           Case{"tiny-qwen3moe", "BF16"}, Case{"tiny-deepseek-v2", "Q2_K"},
                                           Case{"tiny-deepseek-v2", "Q5_K"}, Case{"tiny-qwen3moe", "Q3_K"},
                                           Case{"tiny-qwen3moe", "Q4_0"}, Case{"tiny-qwen3moe", "Q5_1"}),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           std::string name = std::string(param_info.param.preset) + "_" + param_info.param.type;
                           for (char& ch : name) if (ch == '-') ch = '_';
                           return name;
                         });

TEST(ModelMaker, RandomQuantizedWeightsAreCentred) {
  for (const char* type : {"Q4_K", "Q5_K", "Q2_K", "Q3_K", "Q6_K", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"}) {
    const auto path = std::filesystem::temp_directory_path() / fmt::format("tandem-centred-{}-{}.gguf", type, ::getpid());
    ModelMakerOptions o;
    o.preset = "tiny-qwen3moe";
    o.weight_type = type;
    ASSERT_TRUE(make_model(o, path.string()));
    auto gguf = GgufModel::open(path.string());
    ASSERT_TRUE(gguf);
    const GgufTensorInfo* t = gguf.value()->find_tensor("blk.0.ffn_up_exps.weight");
    ASSERT_NE(t, nullptr);
    std::vector<float> row(static_cast<size_t>(t->dims[0]));
    double sum = 0, sum2 = 0;
    const size_t row_bytes = ggml_row_size(t->type, t->dims[0]);
    for (int64_t r = 0; r < 64; ++r) {
      cpu::dequantize_row(t->type, t->data + static_cast<size_t>(r) * row_bytes, row.data(), t->dims[0]);
      for (float v : row) sum += v, sum2 += static_cast<double>(v) * v;
    }
    const double n = 64.0 * static_cast<double>(row.size());
    const double mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
    EXPECT_LT(std::abs(mean), 0.05 * sd) << type;
    EXPECT_NEAR(sd, 0.02, 0.004) << type;
    std::filesystem::remove(path);
  }
}

TEST(ModelMakerOptions, RejectsUnknownPresetsAndTypes) {
  auto with = [](const char* preset, const char* type, std::optional<int> experts) {
    ModelMakerOptions o;
    o.preset = preset;
    o.weight_type = type;
    o.n_experts = experts;
    return make_model(o, "/tmp/tandem-never-written.gguf");
  };
  EXPECT_FALSE(with("gpt-5", "Q4_K_M", std::nullopt));
  EXPECT_FALSE(with("tiny-qwen3moe", "Q9_K", std::nullopt));
  EXPECT_FALSE(with("tiny-qwen3moe", "IQ2_XXS", std::nullopt));
  EXPECT_FALSE(with("tiny-qwen3moe", "Q4_K_M", 1));
  EXPECT_FALSE(std::filesystem::exists("/tmp/tandem-never-written.gguf"));
}

}  // namespace tandem
