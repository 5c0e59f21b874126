// Models written by make_model load through the normal path (no config.json needed) and run: this covers
// the layouts the fixtures do not (DeepSeek-V2 without q-LoRA and with group-limited greedy routing) and
// the quantized types on real tensor shapes.
#include "model/model_maker.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include <fmt/format.h>

#include "kernels/cpu/quant.h"
#include "kernels/cpu_backend.h"
#include "model/model.h"

namespace tandem {

namespace {

std::vector<float> last_logits(Model& model, Backend& backend, const std::vector<int32_t>& ids, int chunk) {
  PagedKvCache cache(model.kv_cache_config(8, 16));
  std::vector<int32_t> table((ids.size() + 7) / 8);  // pages 0, 1, ... of 8 tokens
  std::iota(table.begin(), table.end(), 0);
  std::vector<float> logits;
  for (size_t begin = 0; begin < ids.size(); begin += static_cast<size_t>(chunk)) {
    ForwardBatch b;
    b.page_tables = {table};
    for (size_t i = begin; i < std::min(ids.size(), begin + static_cast<size_t>(chunk)); ++i) {
      b.tokens.push_back(ids[i]);
      b.positions.push_back(static_cast<int64_t>(i));
      b.seq_index.push_back(0);
    }
    b.output_tokens = {static_cast<int32_t>(b.tokens.size() - 1)};
    model.forward(backend, b, cache, logits);
  }
  return logits;
}

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
  auto model = Model::load(gguf.value(), config.value());
  ASSERT_TRUE(model) << model.status().message();
  CpuBackend backend(2);
  const std::vector<int32_t> ids{5, 17, 300, 2, 999, 64, 128, 7, 1, 1000, 42};
  const auto whole = last_logits(*model.value(), backend, ids, 64);
  ASSERT_EQ(whole.size(), static_cast<size_t>(config->n_vocab));
  for (float v : whole) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(last_logits(*model.value(), backend, ids, 3), whole);
  // Random weights must still make the output depend on the input (zero-mean weights, no collapse).
  const auto other = last_logits(*model.value(), backend, {900, 3, 77, 500, 12}, 64);
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
