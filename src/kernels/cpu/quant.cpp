// Public entry points of the CPU kernels: argument checks, run-time ISA selection, half-float conversions.
#include "kernels/cpu/quant.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/quant_kernels.h"

namespace tandem::cpu {
namespace {

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

Isa detect_best_isa() { return cpu_has_avx2() ? Isa::Avx2 : Isa::Scalar; }

// Block size of a computable type; throws for the others.
int64_t block_size_of(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
      return 1;
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
      return 32;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return 256;
    default:
      throw std::invalid_argument("cpu kernels: type " + std::string(ggml_type_name(type)) + " is not computable");
  }
}

void check_row(GgmlType type, int64_t n) {
  const int64_t block = block_size_of(type);
  if (n < 0 || n % block != 0) {
    throw std::invalid_argument("cpu kernels: row of " + std::to_string(n) + " values is not a whole number of " +
                                std::string(ggml_type_name(type)) + " blocks");
  }
}

void check_isa(Isa isa) {
  if (isa == Isa::Avx512) throw std::invalid_argument("cpu kernels: no AVX512 kernels");
  if (!isa_supported(isa)) throw std::invalid_argument(std::string("cpu kernels: this CPU lacks ") + isa_name(isa));
}

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

}  // namespace

Isa best_isa() {
  static const Isa isa = detect_best_isa();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "unknown";
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return true;
    case Isa::Avx2:
      return cpu_has_avx2();
    case Isa::Avx512:
      return cpu_has_avx512();
  }
  return false;
}

bool is_computable(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  dequantize_row(best_isa(), type, src, dst, n);
}

void dequantize_row(Isa isa, GgmlType type, const void* src, float* dst, int64_t n) {
  check_row(type, n);
  if (isa == Isa::Scalar) return scalar::dequantize_row(type, src, dst, n);
  check_isa(isa);
  avx2::dequantize_row(type, src, dst, n);
}

float dot_f32(const float* a, const float* b, int64_t n) { return dot_f32(best_isa(), a, b, n); }

float dot_f32(Isa isa, const float* a, const float* b, int64_t n) {
  check_row(GgmlType::F32, n);
  if (isa == Isa::Scalar) return scalar::dot_f32(a, b, n);
  check_isa(isa);
  return avx2::dot_f32(a, b, n);
}

float dot_row(GgmlType type, const void* row, const float* x, int64_t n) {
  return dot_row(best_isa(), type, row, x, n);
}

float dot_row(Isa isa, GgmlType type, const void* row, const float* x, int64_t n) {
  check_row(type, n);
  if (isa == Isa::Scalar) return scalar::dot_row(type, row, x, n);
  check_isa(isa);
  return avx2::dot_row(type, row, x, n);
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  check_row(type, n);
  scalar::quantize_row(type, src, dst, n);
}

// IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. Every half is exactly a float.
// Bit-identical to the F16C conversion (vcvtph2ps) for all 65536 inputs.
float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1F;
  const uint32_t mantissa = h & 0x3FF;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return bits_float(sign | float_bits(magnitude));
  }
  if (exponent == 31) {  // infinity, or NaN: payload kept and made quiet, as F16C hardware does
    return bits_float(sign | 0x7F800000u | (mantissa << 13) | (mantissa != 0 ? 0x400000u : 0u));
  }
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

// Round to nearest even; overflow gives infinity, NaN stays a (quiet) NaN.
uint16_t fp32_to_fp16(float f) {
  const uint32_t bits = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) {
    return static_cast<uint16_t>(sign | 0x7E00 | ((magnitude >> 13) & 0x3FF));
  }
  if (magnitude >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00);  // >= 65520 rounds to inf
  if (magnitude >= 0x38800000u) {  // normal half (>= 2^-14): rebias, round off 13 mantissa bits
    const uint32_t rebiased = magnitude - (112u << 23);
    return static_cast<uint16_t>(sign | ((rebiased + 0xFFF + ((rebiased >> 13) & 1)) >> 13));
  }
  // Subnormal half: the result is the value in units of 2^-24, rounded to nearest even.
  const uint32_t exponent = magnitude >> 23;
  if (exponent < 102) return sign;  // below 2^-25: rounds to zero
  const uint32_t mantissa = (magnitude & 0x7FFFFF) | 0x800000;
  const uint32_t shift = 126 - exponent;  // 14..24
  uint32_t q = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1))) ++q;
  return static_cast<uint16_t>(sign | q);
}

float bf16_to_fp32(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t bits = float_bits(f);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040);  // quiet NaN
  return static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

}  // namespace tandem::cpu
