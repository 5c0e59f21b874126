// qmatmul: every ISA's kernels give the scalar reference's results bit for bit, for every weight type,
// odd shapes and 1..64 tokens; the reference is within a stated bound of the exact product; results do not
// depend on how many tokens share a call.
//
// Bounds. With the activations quantized, the exact value is sum_i w_i * d q_i; the kernels sum integer
// lanes exactly and accumulate one fused multiply-add per lane and block, then 2 x 16 lanes, so they are
// within (blocks + 8) * 2^-23 * sum_i |w_i d q_i| of it (plus the min terms' float products). Against the
// unquantized activations the quantization adds at most sum_i |w_i| * d / 2 (d = amax / 32767).
#include "kernels/cpu/qmatmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/cpu/qmatmul_internal.h"
#include "kernels/cpu/quant.h"

namespace tandem::cpu {
namespace {

const std::vector<GgmlType> kTypes{GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                                   GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                                   GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

std::vector<MatmulIsa> isas() {
  std::vector<MatmulIsa> v{MatmulIsa::Scalar};
  for (MatmulIsa isa : {MatmulIsa::Avx2, MatmulIsa::Avx512}) {
    if (matmul_isa_supported(isa)) v.push_back(isa);
  }
  return v;
}

std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Problem {
  GgmlType type;
  int64_t cols, rows, tokens;
  std::vector<uint8_t> w;       // quantized rows
  std::vector<float> wv;        // their values (scalar dequantization)
  std::vector<float> x;         // activations [tokens][cols]
  std::vector<uint8_t> xq;      // int16 activation rows (scalar quantizer)
  std::vector<uint8_t> xsum;    // float-mode prepared rows (scalar)

  Tensor weight() {
    return Tensor::contiguous(w.data(), type, Device::cpu(), {cols, rows, 1});
  }
};

Problem make_problem(GgmlType type, int64_t cols, int64_t rows, int64_t tokens, uint64_t seed) {
  Problem p{type, cols, rows, tokens, {}, {}, {}, {}, {}};
  const size_t row_bytes = ggml_row_size(type, cols);
  const auto src = random_floats(static_cast<size_t>(cols * rows), seed, 0.3f);
  p.w.resize(row_bytes * static_cast<size_t>(rows));
  p.wv.resize(src.size());
  for (int64_t r = 0; r < rows; ++r) {
    quantize_row(type, src.data() + r * cols, p.w.data() + static_cast<size_t>(r) * row_bytes, cols);
    dequantize_row(Isa::Scalar, type, p.w.data() + static_cast<size_t>(r) * row_bytes, p.wv.data() + r * cols, cols);
  }
  p.x = random_floats(static_cast<size_t>(cols * tokens), seed + 1);
  // Some exact zeros and a large outlier, as real activations have.
  if (tokens > 1) {
    for (int64_t i = 0; i < cols; ++i) p.x[static_cast<size_t>(cols + i)] = 0.0f;
    p.x[5] = 40.0f;
  }
  p.xq.resize(max_prepared_row_bytes(cols) * static_cast<size_t>(tokens));
  p.xsum.resize(max_prepared_row_bytes(cols) * static_cast<size_t>(tokens));
  if (family_of(type) != WeightFamily::Float) {
    prepare_activation_rows(MatmulIsa::Scalar, type, ActivationPrecision::Int16, p.x.data(), cols, tokens, cols, p.xq.data());
    prepare_activation_rows(MatmulIsa::Scalar, type, ActivationPrecision::Float32, p.x.data(), cols, tokens, cols,
                            p.xsum.data());
  }
  return p;
}

// 64-byte aligned scratch for the decoded tiles.
struct Scratch {
  explicit Scratch(size_t bytes) : p(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64))) {}
  ~Scratch() { std::free(p); }
  uint8_t* p;
};

std::vector<float> run(MatmulIsa isa, ActivationPrecision precision, Problem& p, int64_t tokens, int64_t token_offset = 0) {
  std::vector<float> y(static_cast<size_t>(tokens * p.rows), -1.0f);
  Scratch scratch(qmatmul_scratch_bytes(p.cols));
  const size_t row_bytes = prepared_row_bytes(p.type, precision, p.cols);
  const uint8_t* prepared = precision == ActivationPrecision::Int16 ? p.xq.data() : p.xsum.data();
  qmatmul_rows(isa, precision, p.weight(), 0, 0, p.rows, prepared + static_cast<size_t>(token_offset) * row_bytes,
               p.x.data() + token_offset * p.cols, p.cols, tokens, y.data(), p.rows, scratch.p);
  return y;
}

const ActivationPrecision kPrecisions[] = {ActivationPrecision::Float32, ActivationPrecision::Int16};

class Qmatmul : public ::testing::TestWithParam<GgmlType> {};

TEST_P(Qmatmul, EveryIsaEqualsTheScalarReferenceBitForBit) {
  const GgmlType type = GetParam();
  const int64_t block = ggml_type_info(type).block_size;
  for (int64_t cols : {block == 256 ? int64_t{768} : int64_t{96}, block == 256 ? int64_t{256} : int64_t{288}}) {
    Problem p = make_problem(type, cols, 19, 64, static_cast<uint64_t>(type) * 100 + static_cast<uint64_t>(cols));
    for (ActivationPrecision precision : kPrecisions) {
      for (int64_t tokens : {1, 2, 3, 4, 5, 8, 13, 64}) {
        const auto ref = run(MatmulIsa::Scalar, precision, p, tokens);
        for (MatmulIsa isa : isas()) {
          const auto got = run(isa, precision, p, tokens);
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_EQ(got[i], ref[i]) << ggml_type_name(type) << " " << matmul_isa_name(isa) << " "
                                      << activation_precision_name(precision) << " cols " << cols << " tokens " << tokens
                                      << " index " << i;
          }
        }
      }
    }
  }
}

TEST_P(Qmatmul, TheReferenceIsWithinTheBoundOfTheExactProduct) {
  const GgmlType type = GetParam();
  const int64_t cols = ggml_type_info(type).block_size == 256 ? 1024 : 160, rows = 7, tokens = 9;
  Problem p = make_problem(type, cols, rows, tokens, 7);
  for (ActivationPrecision precision : kPrecisions) {
  const auto y = run(MatmulIsa::Scalar, precision, p, tokens);
  const bool q8 = precision == ActivationPrecision::Int16 && family_of(type) != WeightFamily::Float;
  for (int64_t t = 0; t < tokens; ++t) {
    // The activation values the kernels see (dequantized q8) and their scales.
    std::vector<double> xs(static_cast<size_t>(cols)), step(static_cast<size_t>(cols), 0.0),
        magnitude_x(static_cast<size_t>(cols));
    const auto* groups = reinterpret_cast<const Q16Group*>(p.xq.data() + static_cast<size_t>(t) * max_prepared_row_bytes(cols));
    for (int64_t i = 0; i < cols; ++i) {
      const Q16Group& g = groups[i / 256];
      xs[static_cast<size_t>(i)] = q8 ? double{g.d} * g.q[i % 256] : p.x[static_cast<size_t>(t * cols + i)];
      magnitude_x[static_cast<size_t>(i)] = std::abs(xs[static_cast<size_t>(i)]);
      step[static_cast<size_t>(i)] = q8 ? g.d * (1 + 1e-6) : 0.0;
    }
    for (int64_t r = 0; r < rows; ++r) {
      double exact = 0, magnitude = 0, exact_unquantized = 0, quantization = 0;
      for (int64_t i = 0; i < cols; ++i) {
        const double w = p.wv[static_cast<size_t>(r * cols + i)];
        exact += w * xs[static_cast<size_t>(i)];
        magnitude += std::abs(w) * magnitude_x[static_cast<size_t>(i)];
        exact_unquantized += w * p.x[static_cast<size_t>(t * cols + i)];
        quantization += std::abs(w) * step[static_cast<size_t>(i)] / 2;
      }
      const double terms = q8 ? static_cast<double>(cols) / 32 + 8 : static_cast<double>(cols);
      const double bound = (terms + 2) * std::ldexp(1.0, -23) * magnitude + 1e-5 * magnitude / static_cast<double>(cols) + 1e-6;
      const double got = y[static_cast<size_t>(t * rows + r)];
      ASSERT_NEAR(got, exact, bound) << ggml_type_name(type) << " " << activation_precision_name(precision) << " token "
                                     << t << " row " << r;
      ASSERT_NEAR(got, exact_unquantized, bound + quantization * (1 + 1e-6)) << ggml_type_name(type);
    }
  }
  }
}

TEST_P(Qmatmul, ATokensResultDoesNotDependOnTheOtherTokensOfTheCall) {
  const GgmlType type = GetParam();
  const int64_t cols = ggml_type_info(type).block_size == 256 ? 512 : 64;
  Problem p = make_problem(type, cols, 11, 40, 3);
  for (MatmulIsa isa : isas()) {
    for (ActivationPrecision precision : kPrecisions) {
    const auto batched = run(isa, precision, p, 40);
    for (int64_t t : {0, 3, 4, 17, 39}) {
      const auto alone = run(isa, precision, p, 1, t);
      for (int64_t r = 0; r < p.rows; ++r) {
        ASSERT_EQ(alone[static_cast<size_t>(r)], batched[static_cast<size_t>(t * p.rows + r)])
            << ggml_type_name(type) << " " << matmul_isa_name(isa) << " token " << t;
      }
    }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, Qmatmul, ::testing::ValuesIn(kTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& param_info) {
                           return std::string(ggml_type_name(param_info.param));
                         });

TEST(QmatmulActivations, EveryIsaPreparesLikeTheScalarReference) {
  for (int64_t n : {32, 96, 256, 288, 2048}) {
    auto x = random_floats(static_cast<size_t>(n * 3), static_cast<uint64_t>(n), 2.0f);
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(n + i)] = 0.0f;  // an all-zero row
    x[static_cast<size_t>(2 * n)] = 1e4f;                                 // an outlier
    for (ActivationPrecision precision : kPrecisions) {
      const GgmlType type = GgmlType::Q4_1;  // has mins: float mode prepares sums
      const size_t bytes = prepared_row_bytes(type, precision, n) * 3;
      std::vector<uint8_t> ref(bytes);
      prepare_activation_rows(MatmulIsa::Scalar, type, precision, x.data(), n, 3, n, ref.data());
      for (MatmulIsa isa : isas()) {
        std::vector<uint8_t> got(bytes);
        prepare_activation_rows(isa, type, precision, x.data(), n, 3, n, got.data());
        ASSERT_EQ(0, std::memcmp(ref.data(), got.data(), bytes)) << matmul_isa_name(isa) << " "
                                                                 << activation_precision_name(precision) << " n " << n;
      }
      if (precision == ActivationPrecision::Int16) {
        // The codes reproduce x to within half a step (amax / 65534).
        const auto* groups = reinterpret_cast<const Q16Group*>(ref.data());
        for (int64_t i = 0; i < n; ++i) {
          const Q16Group& g = groups[i / 256];
          EXPECT_NEAR(double{g.d} * g.q[i % 256], x[static_cast<size_t>(i)], g.d / 2 * (1 + 1e-5)) << "n " << n << " i " << i;
        }
      }
    }
  }
}

TEST(QmatmulIsa, ParsesAndSelects) {
  MatmulIsa isa;
  EXPECT_TRUE(parse_matmul_isa("avx2", isa));
  EXPECT_EQ(isa, MatmulIsa::Avx2);
  EXPECT_TRUE(parse_matmul_isa("avx512", isa));
  EXPECT_EQ(isa, MatmulIsa::Avx512);
  EXPECT_FALSE(parse_matmul_isa("amx", isa));
  EXPECT_TRUE(matmul_isa_supported(selected_matmul_isa()));
}

}  // namespace
}  // namespace tandem::cpu
