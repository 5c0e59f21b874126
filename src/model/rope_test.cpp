#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

namespace tandem {

TEST(Rope, YarnFrequenciesMatchTheReferenceFormula) {
  // DeepSeek-V3 rope_scaling (factor 40, original context 4096, beta 32/1) at 16 rope dims: correction
  // range [2, 6]; expected values computed independently from the Hugging Face definition.
  const std::vector<double> expected{1.0, 0.31622776601683794, 0.1, 0.023914724805023366,
                                     0.005125, 0.0008498621211702518, 2.5e-05, 7.905694150420949e-06};
  const auto got = yarn_inv_freq(16, 10000.0, 40.0, 4096.0, 32.0, 1.0);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-6 * expected[i]) << i;
}

TEST(Rope, PlainFrequenciesWithoutYarn) {
  RopeConfig c;
  c.n_dims = 8;
  c.freq_base = 10000.0;
  RopeTable table(c);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(table.inv_freq()[static_cast<size_t>(i)], std::pow(10000.0, -2.0 * i / 8), 1e-7);
}

TEST(Rope, PositionZeroIsIdentityAndRotationPreservesNorm) {
  for (bool adjacent : {false, true}) {
    RopeConfig c;
    c.n_dims = 8;
    c.adjacent_pairs = adjacent;
    RopeTable table(c);
    std::vector<float> x{1, 2, 3, 4, 5, 6, 7, 8}, y = x;
    table.apply(y.data(), 0);
    EXPECT_EQ(x, y);
    table.apply(y.data(), 37);
    double nx = 0, ny = 0;
    for (size_t i = 0; i < x.size(); ++i) nx += x[i] * x[i], ny += y[i] * y[i];
    EXPECT_NEAR(nx, ny, 1e-3);
  }
}

TEST(Rope, PairsFollowTheLayout) {
  // With one frequency pair (n_dims 2) both layouts rotate (x0, x1) by pos * 1.0 radians.
  RopeConfig c;
  c.n_dims = 4;
  c.adjacent_pairs = true;
  RopeTable adjacent(c);
  std::vector<float> v{1, 0, 0, 0};
  adjacent.apply(v.data(), 1);  // pair (0,1) at frequency 1
  EXPECT_NEAR(v[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(v[1], std::sin(1.0), 1e-6);
  c.adjacent_pairs = false;
  RopeTable half(c);
  std::vector<float> w{1, 0, 0, 0};
  half.apply(w.data(), 1);  // pair (0,2) at frequency 1
  EXPECT_NEAR(w[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(w[2], std::sin(1.0), 1e-6);
  EXPECT_EQ(w[1], 0.0f);
}

TEST(Rope, AttentionFactorScalesCosAndSin) {
  RopeConfig c;
  c.n_dims = 2;
  c.attention_factor = 2.0;
  RopeTable table(c);
  std::vector<float> v{1, 0};
  table.apply(v.data(), 0);
  EXPECT_FLOAT_EQ(v[0], 2.0f);
}

}  // namespace tandem
