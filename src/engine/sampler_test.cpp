#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace tandem {

TEST(Sampler, GreedyPicksArgmaxTiesToLowerId) {
  Sampler s({}, {});
  std::vector<float> logits{0.1f, 2.0f, 2.0f, -1.0f};
  EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampler, LogitBiasShiftsTokensBeforeChoosingAndIgnoresIdsOutsideTheVocabulary) {
  std::vector<float> logits{0.1f, 2.0f, 1.5f, -1.0f};
  Sampler banned({.logit_bias = {{1, -100.0f}, {99, 100.0f}}}, {});
  EXPECT_EQ(banned.sample(logits), 2);  // 1 banned; 99 is not a token
  logits = {0.1f, 2.0f, 1.5f, -1.0f};
  Sampler forced({.temperature = 1.0f, .seed = 3, .logit_bias = {{3, 100.0f}}}, {});
  for (int i = 0; i < 20; ++i) {
    auto l = logits;
    EXPECT_EQ(forced.sample(l), 3);
  }
}

TEST(Sampler, ForcedPrefixComesFirstThenTheLogitsDecide) {
  const std::vector<float> logits{0.1f, 2.0f, 1.5f, -1.0f};
  Sampler s({.forced_prefix = {3, 0, 3}}, {});
  std::vector<int32_t> got;
  for (int i = 0; i < 5; ++i) {
    auto l = logits;
    got.push_back(s.sample(l));
    s.accept(got.back());
  }
  EXPECT_EQ(got, (std::vector<int32_t>{3, 0, 3, 1, 1}));
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDiffers) {
  SamplingParams p{.temperature = 1.0f, .seed = 42};
  std::vector<float> base(50);
  for (size_t i = 0; i < base.size(); ++i) base[i] = std::sin(static_cast<float>(i));
  auto draw = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p, {});
    std::vector<int32_t> out;
    for (int i = 0; i < 40; ++i) {
      auto l = base;
      out.push_back(s.sample(l));
    }
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(Sampler, TopKAndTopPAndMinPRestrictTheCandidates) {
  std::vector<float> base{5.0f, 4.0f, 3.0f, 0.0f, -1.0f};
  auto support = [&](SamplingParams p) {
    std::map<int32_t, int> seen;
    for (uint64_t seed = 0; seed < 400; ++seed) {
      p.seed = seed;
      Sampler s(p, {});
      auto l = base;
      ++seen[s.sample(l)];
    }
    return seen;
  };
  EXPECT_EQ(support({.temperature = 1.0f, .top_k = 2}).size(), 2u);
  // p(0) = 0.66, p(0)+p(1) = 0.91: top_p 0.8 keeps two.
  EXPECT_EQ(support({.temperature = 1.0f, .top_p = 0.8f}).size(), 2u);
  // min_p 0.2: keeps tokens with p >= 0.2 * 0.66 -> tokens 0 and 1 (p = 0.245), not 2 (0.09).
  EXPECT_EQ(support({.temperature = 1.0f, .min_p = 0.2f}).size(), 2u);
  EXPECT_EQ(support({.temperature = 3.0f}).size(), 5u);  // flattened: every token drawn
}

TEST(Sampler, PenaltiesFollowTheirDefinitions) {
  SamplingParams p{.repetition_penalty = 2.0f, .presence_penalty = 0.5f, .frequency_penalty = 0.25f};
  Sampler s(p, std::vector<int32_t>{0});
  s.accept(1);
  s.accept(1);
  std::vector<float> logits{4.0f, 4.0f, -2.0f, 3.9f};
  // token 0 (prompt): 4/2 = 2; token 1 (output twice): 4/2 - 0.5 - 0.25*2 = 1; token 3 untouched: 3.9
  EXPECT_EQ(s.sample(logits), 3);
  EXPECT_FLOAT_EQ(logits[0], 2.0f);
  EXPECT_FLOAT_EQ(logits[1], 1.0f);
  Sampler neg({.repetition_penalty = 2.0f}, std::vector<int32_t>{2});
  std::vector<float> l2{0.0f, 0.0f, -2.0f};
  neg.sample(l2);
  EXPECT_FLOAT_EQ(l2[2], -4.0f);
}

TEST(Sampler, LogprobsAreNormalized) {
  Sampler s({}, {});
  std::vector<float> logits{1.0f, 2.0f, 3.0f};
  auto top = s.top_logprobs(logits, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].token, 2);
  double total = 0;
  for (auto& t : top) total += std::exp(t.logprob);
  EXPECT_NEAR(total, 1.0, 1e-6);
  EXPECT_FLOAT_EQ(s.logprob_of(logits, 2), top[0].logprob);
}

}  // namespace tandem

namespace tandem {
namespace {

// Allows the tokens of `allowed` (ids < 64); records the budgets it was told and what it accepted.
class FakeConstraint : public TokenConstraint {
 public:
  explicit FakeConstraint(uint64_t allowed) : allowed_(allowed) {}
  void allowed(std::span<uint64_t> bits, int64_t remaining) override {
    std::fill(bits.begin(), bits.end(), 0);
    bits[0] = allowed_;
    budgets.push_back(remaining);
  }
  bool accept(int32_t token) override {
    accepted.push_back(token);
    return token < 64 && ((allowed_ >> token) & 1);
  }
  bool is_complete() const override { return false; }
  std::vector<int64_t> budgets;
  std::vector<int32_t> accepted;

 private:
  uint64_t allowed_;
};

TEST(SamplerConstraint, MaskedTokensAreNeverChosenGreedyOrSampledAndBeatLogitBias) {
  std::vector<float> base(100);
  for (size_t i = 0; i < base.size(); ++i) base[i] = std::sin(static_cast<float>(i) * 1.7f) * 3.0f;
  const uint64_t allowed = (uint64_t{1} << 5) | (uint64_t{1} << 9) | (uint64_t{1} << 40);
  for (float temperature : {0.0f, 1.0f, 2.0f}) {
    auto c = std::make_shared<FakeConstraint>(allowed);
    // +100 on a forbidden token does not bring it back.
    Sampler s({.temperature = temperature, .top_p = 0.9f, .presence_penalty = -2.0f, .seed = 5,
               .logit_bias = {{3, 100.0f}}}, {}, c, 50);
    for (int i = 0; i < 50; ++i) {
      auto l = base;
      const int32_t t = s.sample(l);
      EXPECT_TRUE(t == 5 || t == 9 || t == 40) << t << " at temperature " << temperature;
      EXPECT_TRUE(s.accept(t));
    }
    ASSERT_EQ(c->budgets.size(), 50u);
    EXPECT_EQ(c->budgets.front(), 50);  // the tokens left, this one included
    EXPECT_EQ(c->budgets.back(), 1);
  }
}

TEST(SamplerConstraint, LogprobsAreThoseOfTheConstrainedDistribution) {
  std::vector<float> logits{1.0f, 3.0f, 2.0f, 0.5f};
  auto c = std::make_shared<FakeConstraint>((uint64_t{1} << 0) | (uint64_t{1} << 2));
  Sampler s({}, {}, c, 10);
  s.constrain(logits);
  s.constrain(logits);  // once per step
  EXPECT_EQ(c->budgets.size(), 1u);
  const auto top = s.top_logprobs(logits, 4);
  ASSERT_EQ(top.size(), 2u);  // forbidden tokens are no alternatives
  EXPECT_EQ(top[0].token, 2);
  EXPECT_EQ(top[1].token, 0);
  EXPECT_NEAR(std::exp(top[0].logprob) + std::exp(top[1].logprob), 1.0, 1e-6);
  EXPECT_EQ(s.sample(logits), 2);
  EXPECT_EQ(c->budgets.size(), 1u);  // sample() did not ask again
  EXPECT_TRUE(s.accept(2));
  EXPECT_FALSE(s.accept(1));  // a token the constraint refuses
}

}  // namespace
}  // namespace tandem
