// Model-level invariants on the fixture models: alternative tensor layouts load to the same function,
// and a token's logits do not depend on batching or on how its prompt was chunked.
#include "model/model.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <numeric>

#include "gguf/gguf_writer.h"
#include "testing/fixtures.h"
#include "testing/model_harness.h"

namespace tandem {

namespace {

using testing::LoadedModel;
using testing::run_solo;

LoadedModel load(const std::filesystem::path& gguf_path, const std::filesystem::path& config_dir,
                 testing::ExpertPath experts = testing::ExpertPath::Runner) {
  auto m = testing::load_model(gguf_path, config_dir, 2, experts);
  EXPECT_TRUE(m) << m.status().message();
  return m ? std::move(m.value()) : LoadedModel{};
}

std::vector<int32_t> prompt(int n, int salt) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = (1000 + 7919 * (i + 1) * (salt + 1)) % 30000;
  return ids;
}

}  // namespace

TEST(Model, SplitKbVbLayoutComputesTheSameAsKvb) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir("tiny-dsv3-bf16");
  LoadedModel original = load(dir / "model.gguf", dir);
  ASSERT_TRUE(original.model);

  // Rewrite the file without attn_kv_b: the model must build its up-projections from attn_k_b / attn_v_b.
  GgufWriter writer;
  for (const auto& [key, value] : original.gguf->metadata()) writer.set(key, value);
  for (const GgufTensorInfo& t : original.gguf->tensors()) {
    if (t.name.find("attn_kv_b") != std::string::npos) continue;
    writer.add_tensor(t.name, t.type, t.dims, std::vector<uint8_t>(t.data, t.data + t.n_bytes));
  }
  const auto path = std::filesystem::temp_directory_path() / ("tandem-split-kvb-" + std::to_string(::getpid()) + ".gguf");
  ASSERT_TRUE(writer.write_file(path.string()));
  LoadedModel split = load(path, dir);
  ASSERT_TRUE(split.model);
  EXPECT_EQ(split.gguf->find_tensor("blk.1.attn_kv_b.weight"), nullptr);

  const auto ids = prompt(13, 0);
  const auto a = run_solo(*original.model, ids, 64);
  const auto b = run_solo(*split.model, ids, 64);
  ASSERT_EQ(a.size(), b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  EXPECT_LT(worst, 1e-4f);
  std::filesystem::remove(path);
}

class ModelInvariance : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelInvariance, ChunkedPrefillEqualsWholePrefillBitwise) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir(GetParam());
  LoadedModel m = load(dir / "model.gguf", dir);
  ASSERT_TRUE(m.model);
  const auto ids = prompt(23, 1);
  const auto whole = run_solo(*m.model, ids, 1000);
  for (int chunk : {1, 5, 16}) EXPECT_EQ(run_solo(*m.model, ids, chunk), whole) << "chunk " << chunk;
}

TEST_P(ModelInvariance, MixedBatchEqualsSoloRunsBitwise) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir(GetParam());
  LoadedModel m = load(dir / "model.gguf", dir);
  ASSERT_TRUE(m.model);
  const auto a = prompt(9, 2), b = prompt(14, 3);
  const auto solo_a = run_solo(*m.model, a, 1000), solo_b = run_solo(*m.model, b, 1000);

  // One step: all of a, then b's first 6 tokens; next step: the rest of b. Tokens interleaved.
  testing::ForwardHarness harness(*m.model, 4, 64);
  const std::vector<int32_t> tb{0, 1, 2, 3};  // b gets the lower pages: placement must not matter either
  const std::vector<int32_t> ta{4, 5, 6};
  ForwardBatch step1;
  step1.page_tables = {ta, tb};
  for (int i = 0; i < 9; ++i) {
    step1.tokens.push_back(a[static_cast<size_t>(i)]);
    step1.positions.push_back(i);
    step1.seq_index.push_back(0);
    if (i < 6) {
      step1.tokens.push_back(b[static_cast<size_t>(i)]);
      step1.positions.push_back(i);
      step1.seq_index.push_back(1);
    }
  }
  step1.output_tokens = {static_cast<int32_t>(step1.tokens.size() - 1)};  // a's last token
  ASSERT_TRUE(harness.run(step1));
  EXPECT_EQ(harness.logits(), solo_a);
  ForwardBatch step2;
  step2.page_tables = {tb};
  for (int i = 6; i < 14; ++i) {
    step2.tokens.push_back(b[static_cast<size_t>(i)]);
    step2.positions.push_back(i);
    step2.seq_index.push_back(0);
  }
  step2.output_tokens = {7};
  ASSERT_TRUE(harness.run(step2));
  EXPECT_EQ(harness.logits(), solo_b);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelInvariance,
                         ::testing::Values("tiny-dsv3-bf16", "tiny-dsv3-q4km", "tiny-qwen3moe-bf16"));

}  // namespace tandem
