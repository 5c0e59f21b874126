#include "kernels/routing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace tandem {

namespace {
struct Routed {
  std::vector<int32_t> ids;
  std::vector<float> weights;
};
Routed route(const RouterConfig& c, const std::vector<float>& logits, const std::vector<float>* bias = nullptr) {
  Routed r{std::vector<int32_t>(static_cast<size_t>(c.n_experts_used)), std::vector<float>(static_cast<size_t>(c.n_experts_used))};
  route_token(c, logits.data(), bias ? bias->data() : nullptr, r.ids.data(), r.weights.data());
  return r;
}
float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
}  // namespace

TEST(Router, SoftmaxTopKNormalized) {
  RouterConfig c{.n_experts = 4, .n_experts_used = 2, .scoring = ScoringFunc::Softmax, .norm_topk_prob = true};
  const Routed r = route(c, {0.0f, 2.0f, 1.0f, -1.0f});
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2}));
  EXPECT_NEAR(r.weights[0], std::exp(2.0) / (std::exp(2.0) + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(r.weights[0] + r.weights[1], 1.0, 1e-6);
}

TEST(Router, SoftmaxWithoutNormKeepsProbabilitiesAndScales) {
  RouterConfig c{.n_experts = 3, .n_experts_used = 1, .scoring = ScoringFunc::Softmax, .routed_scaling_factor = 16.0};
  const Routed r = route(c, {1.0f, 0.0f, 0.0f});
  const double p = std::exp(1.0) / (std::exp(1.0) + 2.0);
  EXPECT_EQ(r.ids[0], 0);
  EXPECT_NEAR(r.weights[0], 16.0 * p, 1e-5);
}

TEST(Router, TiesGoToTheLowerExpertId) {
  RouterConfig c{.n_experts = 6, .n_experts_used = 3, .scoring = ScoringFunc::Softmax};
  const Routed r = route(c, {1.0f, 3.0f, 3.0f, 1.0f, 3.0f, 1.0f});
  EXPECT_EQ(r.ids, (std::vector<int32_t>{1, 2, 4}));
  RouterConfig c2{.n_experts = 4, .n_experts_used = 2, .scoring = ScoringFunc::Softmax};
  EXPECT_EQ(route(c2, {0.5f, 0.5f, 0.5f, 0.5f}).ids, (std::vector<int32_t>{0, 1}));
}

TEST(Router, GroupLimitedGreedyRanksGroupsByBestExpert) {
  // 3 groups of 2; group 0 holds the two second-best experts, group 2 the single best; topk_group 2.
  RouterConfig c{.n_experts = 6, .n_experts_used = 2, .scoring = ScoringFunc::Softmax,
                 .topk_method = TopkMethod::GroupLimitedGreedy, .n_group = 3, .topk_group = 1};
  // Best single expert is 5 (group 2); group 0 has 2.9 + 2.9 but its max is lower.
  const Routed r = route(c, {2.9f, 2.9f, 0.0f, 0.0f, 1.0f, 3.0f});
  EXPECT_EQ(r.ids, (std::vector<int32_t>{5, 4}));  // only group 2 may be used
}

TEST(Router, NoauxTcRanksGroupsBySumOfTopTwoWithBiasAndWeighsWithoutBias) {
  RouterConfig c{.n_experts = 8, .n_experts_used = 2, .scoring = ScoringFunc::Sigmoid,
                 .topk_method = TopkMethod::NoauxTc, .n_group = 4, .topk_group = 1, .norm_topk_prob = true,
                 .routed_scaling_factor = 2.5};
  std::vector<float> logits{3.0f, -3.0f, 1.0f, 1.0f, 0.0f, 0.0f, -1.0f, -1.0f};
  // Without bias group 1 (1.0, 1.0) sums higher than group 0 (3.0, -3.0): sigmoid sums 1.462 vs 1.0.
  Routed r = route(c, logits);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{2, 3}));
  // A bias on expert 6 and 7 makes group 3 the best and picks it, but weights use the unbiased scores.
  std::vector<float> bias{0, 0, 0, 0, 0, 0, 1.0f, 0.9f};
  r = route(c, logits, &bias);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{6, 7}));
  EXPECT_NEAR(r.weights[0], 2.5 * 0.5, 1e-6);  // equal sigmoid(-1) scores, normalized, scaled
  EXPECT_NEAR(r.weights[1], 2.5 * 0.5, 1e-6);
}

TEST(Router, NoauxTcMasksOtherGroupsWithZeroLikeTheReference) {
  // Group 0 is chosen but both its bias-corrected scores are negative; the reference fills other groups'
  // scores with 0.0, so masked experts outrank them and are selected.
  RouterConfig c{.n_experts = 4, .n_experts_used = 2, .scoring = ScoringFunc::Sigmoid,
                 .topk_method = TopkMethod::NoauxTc, .n_group = 2, .topk_group = 1, .norm_topk_prob = false};
  std::vector<float> logits{0.0f, 0.0f, -10.0f, -10.0f};
  std::vector<float> bias{-0.6f, -0.7f, -2.0f, -2.0f};
  const Routed r = route(c, logits, &bias);
  EXPECT_EQ(r.ids, (std::vector<int32_t>{2, 3}));
  EXPECT_NEAR(r.weights[0], sigmoid(-10.0f), 1e-9);
}

}  // namespace tandem
