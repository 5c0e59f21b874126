// qmatmul: every ISA's kernels give the scalar reference's results bit for bit, for every weight type,
// odd shapes and 1..64 tokens; the reference is within a stated bound of the exact product; results do not
// depend on how many tokens share a call.
//
// Bounds. int22 and int8: with the activations quantized (xq = dx * X), the kernels sum the integer lanes exactly,
// round each lane to float and accumulate one fma per lane and 64 values, one per lane and group, then
// 2 x 16 lanes: within (n / 64 + n / 256 + 10) * 2^-23 of the magnitude sum_i |dsc u_i xq_i| (the
// unsigned codes, before the min or offset term) plus sum_k |mneg16_k xsum_k|. Against the unquantized
// activations the quantization adds at most sum_i |w_i| * 7 dx / 8 (dx = amax / XMAX; half a step and
// the float roundings of the quantizer; XMAX = 2^21 - 2^14 or 127). f32: one rounding per
// product and fma, within (n + 2) * 2^-23 * sum_i |w_i x_i|.
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
  std::vector<uint8_t> xq22;    // int22 activation rows (scalar quantizer)
  std::vector<uint8_t> xq8;     // int8 activation rows (scalar quantizer)
  std::vector<uint8_t> xsum;    // float-mode prepared rows (scalar)

  Tensor weight() {
    return Tensor::contiguous(w.data(), type, Device::cpu(), {cols, rows, 1});
  }
  const uint8_t* prepared(ActivationPrecision precision) const {
    switch (precision) {
      case ActivationPrecision::Int22: return xq22.data();
      case ActivationPrecision::Int8: return xq8.data();
      case ActivationPrecision::Float32: return xsum.data();
    }
    return nullptr;
  }
};

Problem make_problem(GgmlType type, int64_t cols, int64_t rows, int64_t tokens, uint64_t seed) {
  Problem p{type, cols, rows, tokens, {}, {}, {}, {}, {}, {}};
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
  p.xq22.resize(max_prepared_row_bytes(cols) * static_cast<size_t>(tokens));
  p.xq8.resize(max_prepared_row_bytes(cols) * static_cast<size_t>(tokens));
  p.xsum.resize(max_prepared_row_bytes(cols) * static_cast<size_t>(tokens));
  if (family_of(type) != WeightFamily::Float) {
    prepare_activation_rows(MatmulIsa::Scalar, type, ActivationPrecision::Int22, p.x.data(), cols, tokens, cols, p.xq22.data());
    prepare_activation_rows(MatmulIsa::Scalar, type, ActivationPrecision::Int8, p.x.data(), cols, tokens, cols, p.xq8.data());
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
  const uint8_t* prepared = p.prepared(precision);
  qmatmul_rows(isa, precision, p.weight(), 0, 0, p.rows, prepared + static_cast<size_t>(token_offset) * row_bytes,
               p.x.data() + token_offset * p.cols, p.cols, tokens, y.data(), p.rows, scratch.p);
  return y;
}

// The integer value X of element e of an activation group.
double group_value(const IntGroup& g, int e, ActivationPrecision precision) {
  if (precision == ActivationPrecision::Int8) return g.digit[0][e];
  return 65536.0 * g.digit[2][e] + 256.0 * g.digit[1][e] + g.digit[0][e];
}

const ActivationPrecision kPrecisions[] = {ActivationPrecision::Int22, ActivationPrecision::Int8, ActivationPrecision::Float32};

class Qmatmul : public ::testing::TestWithParam<GgmlType> {};

TEST_P(Qmatmul, EveryIsaEqualsTheScalarReferenceBitForBit) {
  const GgmlType type = GetParam();
  const int64_t block = ggml_type_info(type).block_size;
  // Legacy types: a short last group of 3, 1 and (1408 = 5.5 groups, DeepSeek-V2-Lite's expert width) 4 blocks.
  const std::vector<int64_t> widths = block == 256 ? std::vector<int64_t>{768, 256} : std::vector<int64_t>{96, 288, 1408};
  for (int64_t cols : widths) {
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
  const bool quantized_weights = family_of(type) != WeightFamily::Float;
  // The scalar decode of each row: unsigned codes with their per-16 scale and min/offset coefficient.
  std::vector<uint8_t> code(static_cast<size_t>(rows * cols));
  std::vector<float> dsc16(static_cast<size_t>(rows * cols / 16)), mneg16(dsc16.size());
  if (quantized_weights) {
    for (int64_t r = 0; r < rows; ++r) {
      scalar::kQmatmulKernels.u8_decode(type, p.w.data() + static_cast<size_t>(r) * ggml_row_size(type, cols), cols,
                                        U8Row{code.data() + r * cols, dsc16.data() + r * cols / 16, mneg16.data() + r * cols / 16});
    }
  }
  for (ActivationPrecision precision : kPrecisions) {
    const auto y = run(MatmulIsa::Scalar, precision, p, tokens);
    const bool integer = precision != ActivationPrecision::Float32 && quantized_weights;
    for (int64_t t = 0; t < tokens; ++t) {
      // The activation values the kernels see and the quantization step of each.
      std::vector<double> xs(static_cast<size_t>(cols)), step(static_cast<size_t>(cols), 0.0);
      const uint8_t* prepared = integer ? p.prepared(precision) : p.xq22.data();
      const auto* groups = reinterpret_cast<const IntGroup*>(prepared + static_cast<size_t>(t) * max_prepared_row_bytes(cols));
      for (int64_t i = 0; i < cols; ++i) {
        const IntGroup& g = groups[i / 256];
        const int e = static_cast<int>(i % 256);
        const double xq = double{g.dx} * group_value(g, e, precision);
        xs[static_cast<size_t>(i)] = integer ? xq : p.x[static_cast<size_t>(t * cols + i)];
        step[static_cast<size_t>(i)] = integer ? g.dx * (1 + 1e-6) : 0.0;
      }
      for (int64_t r = 0; r < rows; ++r) {
        double exact = 0, magnitude = 0, exact_unquantized = 0, quantization = 0;
        for (int64_t i = 0; i < cols; ++i) {
          const auto ri = static_cast<size_t>(r * cols + i);
          const double w = p.wv[ri], x = xs[static_cast<size_t>(i)];
          exact += w * x;
          magnitude += integer ? std::abs(double{dsc16[ri / 16]} * code[ri] * x) : std::abs(w * x);
          exact_unquantized += w * p.x[static_cast<size_t>(t * cols + i)];
          quantization += std::abs(w) * step[static_cast<size_t>(i)] * 0.875;  // see the activations test
        }
        if (integer) {
          for (int64_t k = 0; k < cols / 16; ++k) {
            const IntGroup& g = groups[k / 16];
            magnitude += std::abs(double{mneg16[static_cast<size_t>(r * cols / 16 + k)]} * g.xsum[k % 16]);
          }
        }
        const double terms = integer ? static_cast<double>(cols) / 64 + static_cast<double>(cols) / 256 + 10
                                   : static_cast<double>(cols) + 2;
        const double bound = terms * std::ldexp(1.0, -23) * magnitude + 1e-6;
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
      if (precision != ActivationPrecision::Float32) {
        // The digits reproduce x to within half a step (amax / (2 XMAX)) plus the float roundings of
        // x * id, id and dx (each at most 2^-24 relative to XMAX < 2^21 steps: 1/8 step); int22's top
        // digit stays within 32, int8 has X in digit 0, the same in lane order in digit 1, zeros in digit 2.
        const auto* groups = reinterpret_cast<const IntGroup*>(ref.data());
        for (int64_t i = 0; i < n; ++i) {
          const IntGroup& g = groups[i / 256];
          const int e = static_cast<int>(i % 256);
          const double xq = double{g.dx} * group_value(g, e, precision);
          EXPECT_NEAR(xq, x[static_cast<size_t>(i)], g.dx * 0.875 * (1 + 1e-5)) << "n " << n << " i " << i;
          if (precision == ActivationPrecision::Int22) {
            EXPECT_LE(std::abs(g.digit[2][e]), 32);
          } else {
            EXPECT_LE(std::abs(g.digit[0][e]), kInt8Max);
            EXPECT_EQ(g.digit[1][int8_lane_index(e)], g.digit[0][e]);
            EXPECT_EQ(g.digit[2][e], 0);
          }
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
