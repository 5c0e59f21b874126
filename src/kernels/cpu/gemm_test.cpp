#include "kernels/cpu/gemm.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kernels/cpu/quant.h"

namespace tandem::cpu {

namespace {
std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}
}  // namespace

TEST(Gemm, Avx2EqualsScalarBitwiseForEveryShape) {
  if (!isa_supported(Isa::Avx2)) GTEST_SKIP() << "CPU without AVX2";
  std::mt19937 rng(3);
  for (int64_t k : {1, 7, 8, 9, 64, 100, 2048}) {
    for (int64_t rows : {1, 3, 4, 5, 9}) {
      for (int64_t tokens : {1, 2, 3, 5}) {
        const auto w = random_values(static_cast<size_t>(rows * k), rng);
        const auto x = random_values(static_cast<size_t>(tokens * k), rng);
        std::vector<float> a(static_cast<size_t>(rows * tokens)), b(a.size());
        scalar::gemm_f32(w.data(), k, rows, x.data(), k, tokens, k, a.data(), rows);
        avx2::gemm_f32(w.data(), k, rows, x.data(), k, tokens, k, b.data(), rows);
        EXPECT_EQ(a, b) << "k " << k << " rows " << rows << " tokens " << tokens;
      }
    }
  }
}

TEST(Gemm, AnOutputDoesNotDependOnWhatSharesTheCall) {
  std::mt19937 rng(4);
  const int64_t k = 300, rows = 11, tokens = 7;
  const auto w = random_values(static_cast<size_t>(rows * k), rng);
  const auto x = random_values(static_cast<size_t>(tokens * k), rng);
  std::vector<float> all(static_cast<size_t>(rows * tokens));
  gemm_f32(w.data(), k, rows, x.data(), k, tokens, k, all.data(), rows);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      float one = 0;
      gemm_f32(w.data() + r * k, k, 1, x.data() + t * k, k, 1, k, &one, 1);
      EXPECT_EQ(one, all[static_cast<size_t>(t * rows + r)]);
    }
  }
}

TEST(Gemm, MatchesADoublePrecisionReference) {
  std::mt19937 rng(5);
  const int64_t k = 513;
  const auto w = random_values(static_cast<size_t>(k), rng), x = random_values(static_cast<size_t>(k), rng);
  double ref = 0, mag = 0;
  for (int64_t i = 0; i < k; ++i) ref += static_cast<double>(w[static_cast<size_t>(i)]) * x[static_cast<size_t>(i)], mag += std::abs(w[static_cast<size_t>(i)] * x[static_cast<size_t>(i)]);
  float y = 0;
  gemm_f32(w.data(), k, 1, x.data(), k, 1, k, &y, 1);
  EXPECT_NEAR(y, ref, 1e-6 * mag);
}

}  // namespace tandem::cpu
