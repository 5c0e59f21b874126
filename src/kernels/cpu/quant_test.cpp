#include "kernels/cpu/quant.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/quant_blocks.h"

namespace tandem::cpu {
namespace {

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                              GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

#define REQUIRE_AVX2()                        \
  do {                                        \
    if (!isa_supported(Isa::Avx2)) {          \
      GTEST_SKIP() << "this CPU has no AVX2"; \
    }                                         \
  } while (false)

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

std::vector<float> random_values(int64_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<uint8_t> quantize(GgmlType type, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> row(ggml_row_size(type, n));
  quantize_row(type, x.data(), row.data(), n);
  return row;
}

std::vector<float> dequantize(Isa isa, GgmlType type, const std::vector<uint8_t>& row, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  dequantize_row(isa, type, row.data(), out.data(), n);
  return out;
}

// Bit-identical, or both NaN.
bool same_value(float a, float b) { return bits_of(a) == bits_of(b) || (std::isnan(a) && std::isnan(b)); }

// Sizes to test for a type: single and multi-block rows, odd block counts, tails for block size 1.
std::vector<int64_t> test_sizes(GgmlType type) {
  const int64_t block = ggml_type_info(type).block_size;
  if (block == 1) return {1, 7, 8, 31, 32, 33, 63, 100, 257, 1000, 4096};
  std::vector<int64_t> sizes;
  for (int64_t blocks : {1, 2, 3, 5, 17}) sizes.push_back(blocks * block);
  sizes.push_back(4096);
  return sizes;
}

// Rows of random bytes, with every fp16 scale replaced by a finite value: exercises all bit patterns of the
// quantized fields.
std::vector<uint8_t> random_blocks(GgmlType type, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> row(ggml_row_size(type, n));
  for (uint8_t& byte : row) byte = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> scale(-0.1f, 0.1f);
  const auto half = [&] { return fp32_to_fp16(scale(rng)); };
  const size_t block_bytes = ggml_type_info(type).type_size;
  for (size_t offset = 0; offset < row.size(); offset += block_bytes) {
    uint8_t* p = row.data() + offset;
    switch (type) {
      case GgmlType::Q8_0:
        reinterpret_cast<BlockQ8_0*>(p)->d = half();
        break;
      case GgmlType::Q4_0:
        reinterpret_cast<BlockQ4_0*>(p)->d = half();
        break;
      case GgmlType::Q4_1:
        reinterpret_cast<BlockQ4_1*>(p)->d = half();
        reinterpret_cast<BlockQ4_1*>(p)->m = half();
        break;
      case GgmlType::Q5_0:
        reinterpret_cast<BlockQ5_0*>(p)->d = half();
        break;
      case GgmlType::Q5_1:
        reinterpret_cast<BlockQ5_1*>(p)->d = half();
        reinterpret_cast<BlockQ5_1*>(p)->m = half();
        break;
      case GgmlType::Q2_K:
        reinterpret_cast<BlockQ2_K*>(p)->d = half();
        reinterpret_cast<BlockQ2_K*>(p)->dmin = half();
        break;
      case GgmlType::Q3_K:
        reinterpret_cast<BlockQ3_K*>(p)->d = half();
        break;
      case GgmlType::Q4_K:
        reinterpret_cast<BlockQ4_K*>(p)->d = half();
        reinterpret_cast<BlockQ4_K*>(p)->dmin = half();
        break;
      case GgmlType::Q5_K:
        reinterpret_cast<BlockQ5_K*>(p)->d = half();
        reinterpret_cast<BlockQ5_K*>(p)->dmin = half();
        break;
      case GgmlType::Q6_K:
        reinterpret_cast<BlockQ6_K*>(p)->d = half();
        break;
      default:
        throw std::logic_error("random_blocks: not a quantized type");
    }
  }
  return row;
}

// sum |a_i * b_i|: the scale of the rounding error of a float dot product.
double abs_dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += std::fabs(static_cast<double>(a[i]) * b[i]);
  return s;
}

// The documented reduction order (quant_kernels.h), with fused or separately rounded multiply-adds.
float reference_order_dot(const float* a, const float* b, int64_t n, bool fused) {
  float lane[32] = {};
  for (int64_t i = 0; i < n; ++i) {
    if (fused) {
      lane[i % 32] = std::fma(a[i], b[i], lane[i % 32]);
    } else {
      const float product = a[i] * b[i];
      lane[i % 32] += product;
    }
  }
  float s[8], t[4];
  for (int l = 0; l < 8; ++l) s[l] = (lane[l] + lane[8 + l]) + (lane[16 + l] + lane[24 + l]);
  for (int l = 0; l < 4; ++l) t[l] = s[l] + s[l + 4];
  return (t[0] + t[2]) + (t[1] + t[3]);
}

// ---- Dispatch and argument checks ------------------------------------------------------------------------

TEST(QuantDispatch, ComputableTypesAndBlockSizes) {
  for (GgmlType type : kAllTypes) EXPECT_TRUE(is_computable(type)) << ggml_type_name(type);
  EXPECT_FALSE(is_computable(GgmlType::Q8_K));
  EXPECT_FALSE(is_computable(GgmlType::IQ2_XXS));
  EXPECT_FALSE(is_computable(GgmlType::I32));
  EXPECT_EQ(sizeof(BlockQ8_0), ggml_type_info(GgmlType::Q8_0).type_size);
  EXPECT_EQ(sizeof(BlockQ4_0), ggml_type_info(GgmlType::Q4_0).type_size);
  EXPECT_EQ(sizeof(BlockQ4_1), ggml_type_info(GgmlType::Q4_1).type_size);
  EXPECT_EQ(sizeof(BlockQ5_0), ggml_type_info(GgmlType::Q5_0).type_size);
  EXPECT_EQ(sizeof(BlockQ5_1), ggml_type_info(GgmlType::Q5_1).type_size);
  EXPECT_EQ(sizeof(BlockQ2_K), ggml_type_info(GgmlType::Q2_K).type_size);
  EXPECT_EQ(sizeof(BlockQ3_K), ggml_type_info(GgmlType::Q3_K).type_size);
  EXPECT_EQ(sizeof(BlockQ4_K), ggml_type_info(GgmlType::Q4_K).type_size);
  EXPECT_EQ(sizeof(BlockQ5_K), ggml_type_info(GgmlType::Q5_K).type_size);
  EXPECT_EQ(sizeof(BlockQ6_K), ggml_type_info(GgmlType::Q6_K).type_size);
}

TEST(QuantDispatch, IsaSelection) {
  EXPECT_TRUE(isa_supported(Isa::Scalar));
  EXPECT_TRUE(isa_supported(best_isa()));
  EXPECT_NE(best_isa(), Isa::Avx512);  // no AVX512 kernels yet
  EXPECT_STREQ(isa_name(Isa::Scalar), "scalar");
  EXPECT_STREQ(isa_name(Isa::Avx2), "avx2");
  EXPECT_STREQ(isa_name(Isa::Avx512), "avx512");
  if (isa_supported(Isa::Avx2)) {
    EXPECT_EQ(best_isa(), Isa::Avx2);
  }
}

TEST(QuantDispatch, RejectsBadArguments) {
  std::vector<uint8_t> row(1024);
  std::vector<float> values(1024);
  EXPECT_THROW(dequantize_row(GgmlType::Q4_K, row.data(), values.data(), 100), std::invalid_argument);
  EXPECT_THROW(dot_row(GgmlType::Q8_0, row.data(), values.data(), 33), std::invalid_argument);
  EXPECT_THROW(dot_row(GgmlType::Q8_K, row.data(), values.data(), 256), std::invalid_argument);
  EXPECT_THROW(quantize_row(GgmlType::IQ4_NL, values.data(), row.data(), 32), std::invalid_argument);
  EXPECT_THROW(dot_f32(values.data(), values.data(), -1), std::invalid_argument);
  EXPECT_THROW(dot_f32(Isa::Avx512, values.data(), values.data(), 8), std::invalid_argument);
  EXPECT_EQ(dot_f32(values.data(), values.data(), 0), 0.0f);
  EXPECT_EQ(dot_row(GgmlType::Q4_K, row.data(), values.data(), 0), 0.0f);
}

// ---- Half-float conversions ------------------------------------------------------------------------------

TEST(Fp16, DecodesKnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x3555), 0x1.554p-2f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0400), 0x1p-14f);    // smallest normal
  EXPECT_EQ(fp16_to_fp32(0x0001), 0x1p-24f);    // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03FF), 0x3FFp-24f);  // largest subnormal
  EXPECT_EQ(fp16_to_fp32(0x7C00), INFINITY);
  EXPECT_EQ(fp16_to_fp32(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7C01)));
}

TEST(Fp16, EncodesKnownValuesWithRoundToNearestEven) {
  EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(1.0f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.0f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3C00);      // tie -> even (down)
  EXPECT_EQ(fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3C02);  // tie -> even (up)
  EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
  EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // tie between 65504 and 2^16 -> even = infinity
  EXPECT_EQ(fp32_to_fp16(1e10f), 0x7C00);
  EXPECT_EQ(fp32_to_fp16(-INFINITY), 0xFC00);
  EXPECT_EQ(fp32_to_fp16(0x1p-14f), 0x0400);
  EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001);
  EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);  // tie -> even zero
  EXPECT_EQ(fp32_to_fp16(0x1p-25f + 0x1p-35f), 0x0001);
  EXPECT_EQ(fp32_to_fp16(3 * 0x1p-25f), 0x0002);           // tie -> even
  EXPECT_EQ(fp32_to_fp16(0x3FFp-24f + 0x1p-25f), 0x0400);  // tie rounds up into the normals
  EXPECT_EQ(fp32_to_fp16(1e-30f), 0x0000);
  EXPECT_EQ(fp32_to_fp16(-1e-30f), 0x8000);
  const uint16_t nan = fp32_to_fp16(NAN);
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_NE(fp32_to_fp16(float_of(0x7F800001)) & 0x03FF, 0);  // signaling NaN with a low payload stays NaN
}

TEST(Fp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(f)))) << h;
    } else {
      EXPECT_EQ(fp32_to_fp16(f), h) << h;
    }
  }
}

TEST(Fp16, EncodingIsNearestHalf) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0x477FEFFF);  // every finite float below the overflow tie
  for (int i = 0; i < 200000; ++i) {
    const float f = float_of(bits(rng));
    const uint16_t h = fp32_to_fp16(f);
    const double error = std::fabs(static_cast<double>(fp16_to_fp32(h)) - f);
    for (int step : {-1, 1}) {
      const int neighbor = h + step;
      if (neighbor < 0 || neighbor > 0x7BFF) continue;
      const double other = std::fabs(static_cast<double>(fp16_to_fp32(static_cast<uint16_t>(neighbor))) - f);
      ASSERT_TRUE(error < other || (error == other && (h & 1) == 0)) << "f=" << f << " h=" << h;
    }
  }
}

TEST(Fp16, ScalarMatchesF16cForEveryHalf) {
  REQUIRE_AVX2();
  std::vector<uint16_t> all(0x10000);
  for (uint32_t h = 0; h < 0x10000; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> hw(all.size()), sw(all.size());
  dequantize_row(Isa::Avx2, GgmlType::F16, all.data(), hw.data(), static_cast<int64_t>(all.size()));
  dequantize_row(Isa::Scalar, GgmlType::F16, all.data(), sw.data(), static_cast<int64_t>(all.size()));
  for (size_t h = 0; h < all.size(); ++h) ASSERT_EQ(bits_of(hw[h]), bits_of(sw[h])) << h;
}

TEST(Bf16, KnownValues) {
  EXPECT_EQ(bf16_to_fp32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.0f);
  EXPECT_EQ(bf16_to_fp32(0x7F80), INFINITY);
  EXPECT_EQ(bf16_to_fp32(0x0001), 0x1p-133f);  // subnormal
  EXPECT_TRUE(std::isnan(bf16_to_fp32(0x7FC0)));
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(-3.0f), 0xC040);
  EXPECT_EQ(fp32_to_bf16(float_of(0x3F808000)), 0x3F80);  // tie -> even (down)
  EXPECT_EQ(fp32_to_bf16(float_of(0x3F818000)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(fp32_to_bf16(float_of(0x3F808001)), 0x3F81);
  EXPECT_EQ(fp32_to_bf16(float_of(0x3F807FFF)), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(float_of(0x7F7FFFFF)), 0x7F80);  // largest float rounds to infinity
  EXPECT_EQ(fp32_to_bf16(INFINITY), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(-INFINITY), 0xFF80);
  EXPECT_EQ(fp32_to_bf16(float_of(0x00010000)), 0x0001);  // subnormals keep their top bits
  EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_bf16(float_of(0x7F800001)) & 0x7F80, 0x7F80);  // signaling NaN with a low payload
  EXPECT_NE(fp32_to_bf16(float_of(0x7F800001)) & 0x007F, 0);       // ... stays NaN, not infinity
  EXPECT_EQ(fp32_to_bf16(float_of(0xFFC00000)), 0xFFC0);
}

// ---- Hand-built blocks: values worked out from the format description ---------------------------------

std::vector<float> decode_all_isas(GgmlType type, const void* block, int64_t n) {
  std::vector<float> scalar(static_cast<size_t>(n));
  dequantize_row(Isa::Scalar, type, block, scalar.data(), n);
  if (isa_supported(Isa::Avx2)) {
    std::vector<float> avx2(static_cast<size_t>(n));
    dequantize_row(Isa::Avx2, type, block, avx2.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(bits_of(avx2[i]), bits_of(scalar[i])) << "value " << i;
  }
  return scalar;
}

TEST(QuantKnownBlocks, Q8_0) {
  BlockQ8_0 b{};
  b.d = 0x3800;  // 0.5
  for (int e = 0; e < 32; ++e) b.qs[e] = static_cast<int8_t>(e - 16);
  b.qs[31] = -128;
  const auto x = decode_all_isas(GgmlType::Q8_0, &b, 32);
  EXPECT_EQ(x[0], -8.0f);
  EXPECT_EQ(x[16], 0.0f);
  EXPECT_EQ(x[17], 0.5f);
  EXPECT_EQ(x[30], 7.0f);
  EXPECT_EQ(x[31], -64.0f);
}

TEST(QuantKnownBlocks, Q4_0) {
  BlockQ4_0 b{};
  b.d = 0x3800;  // 0.5
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto x = decode_all_isas(GgmlType::Q4_0, &b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(x[j], 0.5f * static_cast<float>(j - 8)) << j;       // low nibble j
    EXPECT_EQ(x[j + 16], 0.5f * static_cast<float>(7 - j)) << j;  // high nibble 15 - j
  }
}

TEST(QuantKnownBlocks, Q4_1) {
  BlockQ4_1 b{};
  b.d = 0x3400;  // 0.25
  b.m = 0xBC00;  // -1
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto x = decode_all_isas(GgmlType::Q4_1, &b, 32);
  EXPECT_EQ(x[0], -1.0f);
  EXPECT_EQ(x[15], 2.75f);
  EXPECT_EQ(x[16], 2.75f);
  EXPECT_EQ(x[31], -1.0f);
}

TEST(QuantKnownBlocks, Q5_0) {
  BlockQ5_0 b{};
  b.d = 0x3C00;                    // 1
  const uint32_t qh = 0x0000FFFF;  // bit 4 set for values 0..15 only
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto x = decode_all_isas(GgmlType::Q5_0, &b, 32);
  EXPECT_EQ(x[0], 0.0f);     // 16 + 0 - 16
  EXPECT_EQ(x[15], 15.0f);   // 16 + 15 - 16
  EXPECT_EQ(x[16], -1.0f);   // 15 - 16
  EXPECT_EQ(x[31], -16.0f);  // 0 - 16
}

TEST(QuantKnownBlocks, Q5_1) {
  BlockQ5_1 b{};
  b.d = 0x3800;                    // 0.5
  b.m = 0x4000;                    // 2
  const uint32_t qh = 0xFFFF0000;  // bit 4 set for values 16..31 only
  std::memcpy(b.qh, &qh, 4);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto x = decode_all_isas(GgmlType::Q5_1, &b, 32);
  EXPECT_EQ(x[0], 2.0f);    // q = 0
  EXPECT_EQ(x[15], 9.5f);   // q = 15
  EXPECT_EQ(x[16], 17.5f);  // q = 31
  EXPECT_EQ(x[31], 10.0f);  // q = 16
}

TEST(QuantKnownBlocks, Q2_K) {
  BlockQ2_K b{};
  b.d = 0x3800;          // 0.5
  b.dmin = 0x4000;       // 2
  b.scales[0] = 0x13;    // sub-block 0: scale 3, min 1
  b.scales[1] = 0x02;    // sub-block 1: scale 2, min 0
  b.scales[2] = 0x25;    // sub-block 2: scale 5, min 2
  b.scales[9] = 0xF1;    // sub-block 9: scale 1, min 15
  b.qs[0] = 0b11100100;  // value 0: 0, value 32: 1, value 64: 2, value 96: 3
  b.qs[16] = 0x03;       // value 16: 3
  b.qs[48] = 0x03;       // value 144 (second half, l = 16): 3
  const auto x = decode_all_isas(GgmlType::Q2_K, &b, 256);
  EXPECT_EQ(x[0], -2.0f);  // 0.5 * 3 * 0 - 2 * 1
  EXPECT_EQ(x[1], -2.0f);
  EXPECT_EQ(x[16], 3.0f);     // 0.5 * 2 * 3 - 0
  EXPECT_EQ(x[32], -1.5f);    // 0.5 * 5 * 1 - 2 * 2
  EXPECT_EQ(x[64], 0.0f);     // sub-block 4: scale 0, min 0
  EXPECT_EQ(x[144], -28.5f);  // 0.5 * 1 * 3 - 2 * 15
  EXPECT_EQ(x[145], -30.0f);
}

TEST(QuantKnownBlocks, Q3_K) {
  BlockQ3_K b{};
  b.d = 0x3C00;  // 1
  // Scale 0 = 3 (stored 35: low nibble of byte 0 = 3, bits 0-1 of byte 8 = 2); scale 8 = -5 (stored 27: high
  // nibble of byte 0 = 11, bits 4-5 of byte 8 = 1). All other scales store 0, i.e. -32.
  b.scales[0] = 0xB3;
  b.scales[8] = 0x12;
  b.qs[0] = 0b11100101;     // low bits of values 0, 32, 64, 96: 1, 1, 2, 3
  b.hmask[0] = 0b00000101;  // high bit set for values 0 and 64
  const auto x = decode_all_isas(GgmlType::Q3_K, &b, 256);
  EXPECT_EQ(x[0], 3.0f);     // q = 1, scale 3
  EXPECT_EQ(x[32], 96.0f);   // q = 1 - 4, scale -32
  EXPECT_EQ(x[64], -64.0f);  // q = 2, scale -32
  EXPECT_EQ(x[96], 32.0f);   // q = 3 - 4, scale -32
  EXPECT_EQ(x[128], 20.0f);  // q = -4, scale -5
  EXPECT_EQ(x[16], 128.0f);  // q = -4, scale -32
}

// Scales shared by the Q4_K and Q5_K tests: sub-block 0 (2, 1), 1 (3, 0), 4 (33, 17), 5 (0, 0).
void set_k4_test_scales(uint8_t* s) {
  s[0] = 0x82;  // scale 0 = 2; top bits of scale 4 = 2
  s[1] = 0x03;  // scale 1 = 3
  s[4] = 0x41;  // min 0 = 1; top bits of min 4 = 1
  s[8] = 0x11;  // low nibbles of scale 4 and min 4
}

TEST(QuantKnownBlocks, Q4_K) {
  BlockQ4_K b{};
  b.d = 0x3C00;
  b.dmin = 0x3C00;
  set_k4_test_scales(b.scales);
  b.qs[0] = 0x5A;   // value 0: 10, value 32: 5
  b.qs[64] = 0x07;  // value 128: 7, value 160: 0
  const auto x = decode_all_isas(GgmlType::Q4_K, &b, 256);
  EXPECT_EQ(x[0], 19.0f);     // 2 * 10 - 1
  EXPECT_EQ(x[1], -1.0f);     // 2 * 0 - 1
  EXPECT_EQ(x[32], 15.0f);    // 3 * 5 - 0
  EXPECT_EQ(x[128], 214.0f);  // 33 * 7 - 17
  EXPECT_EQ(x[129], -17.0f);
  EXPECT_EQ(x[160], 0.0f);
}

TEST(QuantKnownBlocks, Q5_K) {
  BlockQ5_K b{};
  b.d = 0x3C00;
  b.dmin = 0x3C00;
  set_k4_test_scales(b.scales);
  b.qs[0] = 0x5A;
  b.qs[64] = 0x07;
  b.qh[0] = 0b00010001;  // bit 4 of value 0 (sub-block 0) and value 128 (sub-block 4)
  const auto x = decode_all_isas(GgmlType::Q5_K, &b, 256);
  EXPECT_EQ(x[0], 51.0f);     // 2 * 26 - 1
  EXPECT_EQ(x[32], 15.0f);    // 3 * 5 - 0
  EXPECT_EQ(x[128], 742.0f);  // 33 * 23 - 17
  EXPECT_EQ(x[160], 0.0f);
}

TEST(QuantKnownBlocks, Q6_K) {
  BlockQ6_K b{};
  b.d = 0x3800;  // 0.5
  b.scales[0] = 2;
  b.scales[2] = -1;
  b.scales[4] = 3;
  b.scales[6] = 1;
  b.scales[8] = 4;
  b.ql[0] = 0x21;        // value 0: low 4 bits 1; value 64: 2
  b.ql[32] = 0x43;       // value 32: 3; value 96: 4
  b.qh[0] = 0b11100100;  // top 2 bits of values 0, 32, 64, 96: 0, 1, 2, 3
  b.ql[64] = 0x0F;       // value 128: low 4 bits 15
  b.qh[32] = 0x03;       // value 128: top bits 3
  const auto x = decode_all_isas(GgmlType::Q6_K, &b, 256);
  EXPECT_EQ(x[0], -31.0f);   // 0.5 * 2 * (1 - 32)
  EXPECT_EQ(x[1], -32.0f);   // 0.5 * 2 * (0 - 32)
  EXPECT_EQ(x[32], 6.5f);    // 0.5 * -1 * (19 - 32)
  EXPECT_EQ(x[64], 3.0f);    // 0.5 * 3 * (34 - 32)
  EXPECT_EQ(x[96], 10.0f);   // 0.5 * 1 * (52 - 32)
  EXPECT_EQ(x[128], 62.0f);  // 0.5 * 4 * (63 - 32)
}

// ---- Every type on random data ---------------------------------------------------------------------------

class QuantTypeTest : public ::testing::TestWithParam<GgmlType> {};

// Relative RMS error bounds of quantize -> dequantize on N(0, 1) data.
double error_bound(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
      return 0.0;
    case GgmlType::F16:
      return 0.001;
    case GgmlType::BF16:
      return 0.004;
    case GgmlType::Q8_0:
      return 0.01;
    case GgmlType::Q6_K:
      return 0.03;
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q5_K:
      return 0.05;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q4_K:
      return 0.10;
    case GgmlType::Q3_K:
      return 0.20;
    case GgmlType::Q2_K:
      return 0.40;
    default:
      return 0.0;
  }
}

TEST_P(QuantTypeTest, RoundTripErrorIsBounded) {
  const GgmlType type = GetParam();
  for (int64_t n : test_sizes(type)) {
    const auto x = random_values(n, static_cast<uint32_t>(n));
    const auto y = dequantize(Isa::Scalar, type, quantize(type, x), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
      ref += static_cast<double>(x[i]) * x[i];
    }
    EXPECT_LE(std::sqrt(err / ref), error_bound(type)) << "n=" << n;
  }
}

TEST_P(QuantTypeTest, QuantizeKeepsZerosAndScale) {
  const GgmlType type = GetParam();
  const int64_t n = 2 * ggml_type_info(type).block_size * (ggml_type_info(type).block_size == 1 ? 64 : 1);
  const std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
  for (float v : dequantize(Isa::Scalar, type, quantize(type, zeros), n)) EXPECT_EQ(v, 0.0f);
  // Large and tiny magnitudes quantize with the same relative error as unit ones.
  for (float scale : {1e-3f, 1e3f}) {
    auto x = random_values(n, 99, scale);
    const auto y = dequantize(Isa::Scalar, type, quantize(type, x), n);
    double err = 0, ref = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
      ref += static_cast<double>(x[i]) * x[i];
    }
    EXPECT_LE(std::sqrt(err / ref), 1.5 * error_bound(type) + 1e-6) << "scale " << scale;
  }
}

TEST_P(QuantTypeTest, Avx2DequantizeIsBitIdenticalToScalar) {
  REQUIRE_AVX2();
  const GgmlType type = GetParam();
  for (int64_t n : test_sizes(type)) {
    const auto row = quantize(type, random_values(n, 1000 + static_cast<uint32_t>(n)));
    const auto s = dequantize(Isa::Scalar, type, row, n);
    const auto v = dequantize(Isa::Avx2, type, row, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(same_value(s[i], v[i])) << "n=" << n << " i=" << i;
    if (ggml_type_info(type).block_size == 1) continue;
    const auto noise = random_blocks(type, n, 2000 + static_cast<uint32_t>(n));
    const auto sn = dequantize(Isa::Scalar, type, noise, n);
    const auto vn = dequantize(Isa::Avx2, type, noise, n);
    for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(same_value(sn[i], vn[i])) << "random bytes, n=" << n << " i=" << i;
  }
}

TEST_P(QuantTypeTest, DotRowEqualsDotOfDequantizedRow) {
  const GgmlType type = GetParam();
  for (int64_t n : test_sizes(type)) {
    std::vector<std::vector<uint8_t>> rows = {quantize(type, random_values(n, 3000 + static_cast<uint32_t>(n)))};
    if (ggml_type_info(type).block_size > 1) rows.push_back(random_blocks(type, n, 4000 + static_cast<uint32_t>(n)));
    const auto x = random_values(n, 5000 + static_cast<uint32_t>(n));
    for (const auto& row : rows) {
      std::vector<float> results;
      for (Isa isa : {Isa::Scalar, Isa::Avx2}) {
        if (!isa_supported(isa)) continue;
        const auto w = dequantize(isa, type, row, n);
        const float direct = dot_row(isa, type, row.data(), x.data(), n);
        EXPECT_EQ(bits_of(direct), bits_of(dot_f32(isa, w.data(), x.data(), n))) << isa_name(isa) << " n=" << n;
        results.push_back(direct);
      }
      if (results.size() == 2) {
        const auto w = dequantize(Isa::Scalar, type, row, n);
        const double tolerance = 1e-6 * abs_dot(w, x) + 1e-30;
        EXPECT_NEAR(results[0], results[1], tolerance) << "scalar vs avx2, n=" << n;
      }
    }
  }
}

TEST_P(QuantTypeTest, PublicEntryPointsUseBestIsa) {
  const GgmlType type = GetParam();
  const int64_t n = 4 * ggml_type_info(type).block_size * (ggml_type_info(type).block_size == 1 ? 33 : 1);
  const auto row = quantize(type, random_values(n, 11));
  const auto x = random_values(n, 12);
  EXPECT_EQ(bits_of(dot_row(type, row.data(), x.data(), n)),
            bits_of(dot_row(best_isa(), type, row.data(), x.data(), n)));
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  dequantize_row(type, row.data(), a.data(), n);
  dequantize_row(best_isa(), type, row.data(), b.data(), n);
  EXPECT_EQ(a, b);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantTypeTest, ::testing::ValuesIn(kAllTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& param) {
                           return std::string(ggml_type_name(param.param));
                         });

// ---- Reduction order -------------------------------------------------------------------------------------

TEST(DotF32, ReductionOrderIsTheDocumentedOne) {
  std::vector<int64_t> sizes;
  for (int64_t n = 0; n <= 70; ++n) sizes.push_back(n);
  for (int64_t n : {255, 256, 1000, 4095, 4096, 4097}) sizes.push_back(n);
  for (int64_t n : sizes) {
    const auto a = random_values(n, 6000 + static_cast<uint32_t>(n));
    const auto b = random_values(n, 7000 + static_cast<uint32_t>(n));
    EXPECT_EQ(bits_of(dot_f32(Isa::Scalar, a.data(), b.data(), n)),
              bits_of(reference_order_dot(a.data(), b.data(), n, false)))
        << "scalar n=" << n;
    if (isa_supported(Isa::Avx2)) {
      EXPECT_EQ(bits_of(dot_f32(Isa::Avx2, a.data(), b.data(), n)),
                bits_of(reference_order_dot(a.data(), b.data(), n, true)))
          << "avx2 n=" << n;
    }
  }
}

TEST(DotF32, TailDoesNotReadPastTheEnd) {
  REQUIRE_AVX2();
  // Values past n are NaN: a kernel that reads (rather than masks) them would return NaN.
  for (int64_t n = 1; n < 40; ++n) {
    std::vector<float> a(64, NAN), b(64, NAN);
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] = 1.0f;
    EXPECT_EQ(dot_f32(Isa::Avx2, a.data(), b.data(), n), static_cast<float>(n));
    std::vector<uint16_t> h(64, 0x7E00);
    for (int64_t i = 0; i < n; ++i) h[i] = 0x3C00;
    EXPECT_EQ(dot_row(Isa::Avx2, GgmlType::F16, h.data(), b.data(), n), static_cast<float>(n));
  }
}

// ---- Real tensors from the Q4_K_M fixture ----------------------------------------------------------------

// Minimal GGUF walk: enough to find tensor data, not a reader.
struct FixtureTensor {
  std::string name;
  std::vector<int64_t> dims;
  GgmlType type;
  size_t offset;  // absolute, in the file
};

class GgufWalker {
 public:
  explicit GgufWalker(const std::vector<uint8_t>& bytes) : b_(bytes) {}

  std::vector<FixtureTensor> tensors() {
    if (read<uint32_t>() != 0x46554747) throw std::runtime_error("not a GGUF file");
    if (read<uint32_t>() < 2) throw std::runtime_error("GGUF version < 2");
    const uint64_t n_tensors = read<uint64_t>();
    const uint64_t n_kv = read<uint64_t>();
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv; ++i) {
      const std::string key = string();
      const uint32_t type = read<uint32_t>();
      if (key == "general.alignment" && type == 4) {
        alignment = read<uint32_t>();
      } else {
        skip_value(type);
      }
    }
    std::vector<FixtureTensor> out;
    for (uint64_t i = 0; i < n_tensors; ++i) {
      FixtureTensor t;
      t.name = string();
      const uint32_t n_dims = read<uint32_t>();
      for (uint32_t d = 0; d < n_dims; ++d) t.dims.push_back(static_cast<int64_t>(read<uint64_t>()));
      t.type = static_cast<GgmlType>(read<uint32_t>());
      t.offset = read<uint64_t>();
      out.push_back(t);
    }
    const size_t data = (pos_ + alignment - 1) / alignment * alignment;
    for (FixtureTensor& t : out) t.offset += data;
    return out;
  }

 private:
  template <class T>
  T read() {
    if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("truncated GGUF");
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }

  std::string string() {
    const uint64_t n = read<uint64_t>();
    if (pos_ + n > b_.size()) throw std::runtime_error("truncated GGUF string");
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }

  void skip_value(uint32_t type) {
    static const size_t kSizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (type == 8) {
      string();
    } else if (type == 9) {
      const uint32_t element = read<uint32_t>();
      const uint64_t count = read<uint64_t>();
      for (uint64_t i = 0; i < count; ++i) skip_value(element);
    } else if (type < std::size(kSizes)) {
      pos_ += kSizes[type];
    } else {
      throw std::runtime_error("unknown GGUF value type");
    }
  }

  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
};

std::optional<std::filesystem::path> fixture_model() {
  const char* env = std::getenv("TANDEM_SOURCE_DIR");
  const std::filesystem::path root = env != nullptr ? env : TANDEM_SOURCE_DIR;
  const auto path = root / ".." / "shared" / "fixtures" / "models" / "tiny-dsv3-q4km" / "model.gguf";
  if (!std::filesystem::exists(path)) return std::nullopt;
  return path;
}

TEST(QuantFixture, DecodesRealQ4KAndQ6KTensors) {
  const auto path = fixture_model();
  if (!path)
    GTEST_SKIP() << "fixture model not found (expected "
                    "${TANDEM_SOURCE_DIR}/../shared/fixtures/models/tiny-dsv3-q4km/model.gguf)";
  std::ifstream in(*path, std::ios::binary);
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  GgufWalker walker(bytes);
  const auto tensors = walker.tensors();
  int checked[2] = {0, 0};
  for (const FixtureTensor& t : tensors) {
    const int kind = t.type == GgmlType::Q4_K ? 0 : t.type == GgmlType::Q6_K ? 1 : -1;
    if (kind < 0 || checked[kind] >= 3) continue;
    ++checked[kind];
    const int64_t n = t.dims[0];
    const int64_t rows = std::min<int64_t>(t.dims.size() > 1 ? t.dims[1] : 1, 32);
    const size_t row_bytes = ggml_row_size(t.type, n);
    ASSERT_LE(t.offset + rows * row_bytes, bytes.size()) << t.name;
    const auto x = random_values(n, 77);
    double sum = 0, sum_sq = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<uint8_t> row(bytes.begin() + static_cast<std::ptrdiff_t>(t.offset + r * row_bytes),
                                     bytes.begin() + static_cast<std::ptrdiff_t>(t.offset + (r + 1) * row_bytes));
      const auto w = dequantize(Isa::Scalar, t.type, row, n);
      for (float v : w) {
        ASSERT_TRUE(std::isfinite(v)) << t.name;
        sum += v;
        sum_sq += static_cast<double>(v) * v;
      }
      const float expected = dot_f32(Isa::Scalar, w.data(), x.data(), n);
      for (Isa isa : {Isa::Scalar, Isa::Avx2}) {
        if (!isa_supported(isa)) continue;
        EXPECT_EQ(dequantize(isa, t.type, row, n), w) << t.name << " " << isa_name(isa);
        EXPECT_NEAR(dot_row(isa, t.type, row.data(), x.data(), n), expected, 1e-6 * abs_dot(w, x)) << t.name;
      }
    }
    // The fixture's matrices were initialised from N(0, 0.15^2) (initializer_range in its config.json) before
    // quantization: a misread layout (nibble order, scales, mins) shows up as a shifted mean or spread.
    const double count = static_cast<double>(rows * n);
    const double mean = sum / count;
    const double rms = std::sqrt(sum_sq / count);
    EXPECT_NEAR(rms, 0.15, 0.01) << t.name;
    EXPECT_LT(std::fabs(mean), 0.01) << t.name;
  }
  EXPECT_GT(checked[0], 0) << "no Q4_K tensor in the fixture";
  EXPECT_GT(checked[1], 0) << "no Q6_K tensor in the fixture";
}

}  // namespace
}  // namespace tandem::cpu
