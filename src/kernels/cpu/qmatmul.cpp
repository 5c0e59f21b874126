// Dispatch of qmatmul.h: ISA selection, sizes, and the row-tile driver shared by every ISA.
#include "kernels/cpu/qmatmul.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu/qmatmul_internal.h"
#include "kernels/cpu/quant_blocks.h"

namespace tandem::cpu {

namespace {

bool cpu_has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool cpu_has_avx512_vnni() {
  __builtin_cpu_init();
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

MatmulIsa best_supported() {
  if (cpu_has_avx512_vnni()) return MatmulIsa::Avx512;
  if (cpu_has_avx2_fma()) return MatmulIsa::Avx2;
  return MatmulIsa::Scalar;
}

MatmulIsa choose_isa() {
  const MatmulIsa best = best_supported();
  const char* forced = std::getenv("TANDEM_CPU_ISA");
  if (!forced || !*forced) return best;
  MatmulIsa wanted;
  if (!parse_matmul_isa(forced, wanted)) {
    std::fprintf(stderr, "TANDEM_CPU_ISA=%s: unknown (scalar, avx2, avx512); using %s\n", forced, matmul_isa_name(best));
    return best;
  }
  if (!matmul_isa_supported(wanted)) {
    std::fprintf(stderr, "TANDEM_CPU_ISA=%s: this CPU cannot run it; using %s\n", forced, matmul_isa_name(best));
    return best;
  }
  return wanted;
}

const QmatmulKernels& kernels(MatmulIsa isa) {
  switch (isa) {
    case MatmulIsa::Avx512: return avx512::kQmatmulKernels;
    case MatmulIsa::Avx2: return avx2::kQmatmulKernels;
    case MatmulIsa::Scalar: break;
  }
  return scalar::kQmatmulKernels;
}

}  // namespace

const char* matmul_isa_name(MatmulIsa isa) {
  switch (isa) {
    case MatmulIsa::Scalar: return "scalar";
    case MatmulIsa::Avx2: return "avx2";
    case MatmulIsa::Avx512: return "avx512-vnni";
  }
  return "?";
}

bool matmul_isa_supported(MatmulIsa isa) {
  switch (isa) {
    case MatmulIsa::Scalar: return true;
    case MatmulIsa::Avx2: return cpu_has_avx2_fma();
    case MatmulIsa::Avx512: return cpu_has_avx512_vnni();
  }
  return false;
}

bool parse_matmul_isa(const char* text, MatmulIsa& isa) {
  const std::string s(text);
  if (s == "scalar") isa = MatmulIsa::Scalar;
  else if (s == "avx2") isa = MatmulIsa::Avx2;
  else if (s == "avx512" || s == "avx512-vnni") isa = MatmulIsa::Avx512;
  else return false;
  return true;
}

MatmulIsa selected_matmul_isa() {
  static const MatmulIsa isa = choose_isa();
  return isa;
}

bool has_fast_matmul(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

const char* activation_precision_name(ActivationPrecision precision) {
  switch (precision) {
    case ActivationPrecision::Int22: return "int22";
    case ActivationPrecision::Int8: return "int8";
    case ActivationPrecision::Float32: return "f32";
  }
  return "?";
}

ActivationPrecision selected_activation_precision() {
  static const ActivationPrecision precision = [] {
    const char* text = std::getenv("TANDEM_ACTIVATIONS");
    if (!text || !*text || std::string(text) == "int22") return ActivationPrecision::Int22;
    if (std::string(text) == "int8") return ActivationPrecision::Int8;
    if (std::string(text) == "f32") return ActivationPrecision::Float32;
    std::fprintf(stderr, "TANDEM_ACTIVATIONS=%s: unknown (int22, int8, f32); using int22\n", text);
    return ActivationPrecision::Int22;
  }();
  return precision;
}

bool needs_prepared_activations(GgmlType type, ActivationPrecision precision) {
  if (family_of(type) == WeightFamily::Float) return false;
  return precision != ActivationPrecision::Float32 || f32_has_min(type);
}

size_t prepared_row_bytes(GgmlType type, ActivationPrecision precision, int64_t n) {
  if (!needs_prepared_activations(type, precision)) return 0;
  const auto groups = static_cast<size_t>((n + 255) / 256);
  // integer groups, or 16 sums per group (zero past the row's end), 64-byte aligned rows.
  return precision != ActivationPrecision::Float32 ? groups * sizeof(IntGroup) : groups * 16 * sizeof(float);
}

size_t max_prepared_row_bytes(int64_t n) { return static_cast<size_t>((n + 255) / 256) * sizeof(IntGroup); }

void prepare_activation_rows(MatmulIsa isa, GgmlType type, ActivationPrecision precision, const float* x, int64_t ldx,
                             int64_t n_rows, int64_t n, uint8_t* dst) {
  if (!needs_prepared_activations(type, precision)) return;
  const QmatmulKernels& k = kernels(isa);
  const size_t row_bytes = prepared_row_bytes(type, precision, n);
  for (int64_t r = 0; r < n_rows; ++r) {
    uint8_t* out = dst + static_cast<size_t>(r) * row_bytes;
    if (precision != ActivationPrecision::Float32) {
      k.int_quantize(activation_digits(precision), x + r * ldx, n, reinterpret_cast<IntGroup*>(out));
    } else {
      auto* sums = reinterpret_cast<float*>(out);
      k.f32_xsum(x + r * ldx, n, sums);
      std::fill(sums + n / 16, reinterpret_cast<float*>(out + row_bytes), 0.0f);
    }
  }
}

size_t qmatmul_scratch_bytes(int64_t n) {
  // kDecodeRows rows of codes (floats or bytes) with their per-16 scales and mins (n / 8 floats), rounded
  // up to whole groups of 256 so that the kernels may read a short last group's padding.
  const int64_t padded = (n + 255) / 256 * 256;
  return static_cast<size_t>(kDecodeRows) * static_cast<size_t>(padded + padded / 8) * sizeof(float) + 64;
}

void qmatmul_rows(MatmulIsa isa, ActivationPrecision precision, const Tensor& w, int64_t mat, int64_t r0, int64_t r1,
                  const uint8_t* prepared, const float* x, int64_t ldx, int64_t n_tokens, float* y, int64_t ldy,
                  uint8_t* scratch) {
  const QmatmulKernels& k = kernels(isa);
  const int64_t n = w.cols();
  const WeightFamily family = family_of(w.type);
  if (family != WeightFamily::Float && precision == ActivationPrecision::Float32) {
    const auto* xsum = reinterpret_cast<const float*>(prepared);
    const auto xsum_stride = static_cast<int64_t>(prepared_row_bytes(w.type, precision, n) / sizeof(float));
    if (n_tokens <= kDirectTokens) {
      k.f32_dot_direct(w.type, w.row(r0, mat), w.nb[1], static_cast<int>(r1 - r0), x, ldx, xsum, xsum_stride, n_tokens, n,
                       y + r0, ldy);
      return;
    }
    // Many tokens: decode a pass of rows to float codes once, then every token against them.
    auto* codes = reinterpret_cast<float*>(scratch);
    const F32Row decoded{codes, codes + kDecodeRows * n, codes + kDecodeRows * n + kDecodeRows * n / 16};
    for (int64_t p = r0; p < r1; p += kDecodeRows) {
      const int rows = static_cast<int>(std::min(kDecodeRows, r1 - p));
      for (int r = 0; r < rows; ++r) {
        k.f32_decode(w.type, w.row(p + r, mat), n,
                     F32Row{decoded.code + r * n, decoded.dsc16 + r * n / 16, decoded.mneg16 + r * n / 16});
      }
      k.f32_dot_decoded(w.type, decoded, n, rows, x, ldx, xsum, xsum_stride, n_tokens, n, y + p, ldy);
    }
    return;
  }
  if (family == WeightFamily::Float) {
    for (int64_t p = r0; p < r1; p += kDecodeRows) {
      const int rows = static_cast<int>(std::min(kDecodeRows, r1 - p));
      k.dot_float(w.type, w.row(p, mat), w.nb[1], rows, x, ldx, n_tokens, n, y + p, ldy);
    }
    return;
  }
  // Integer modes. Few tokens: straight from the quantized rows; many: decode a pass of rows to byte codes
  // once, then every token against them.
  const int digits = activation_digits(precision);
  const auto* xg = reinterpret_cast<const IntGroup*>(prepared);
  const int64_t groups = (n + 255) / 256;
  if (n_tokens <= kDirectTokens) {
    k.int_dot_direct(digits, w.type, w.row(r0, mat), w.nb[1], static_cast<int>(r1 - r0), xg, groups, n_tokens, n, y + r0, ldy);
    return;
  }
  const int64_t pass = kDecodeRows;
  const int64_t stride = groups * 256;
  auto* scales = reinterpret_cast<float*>(scratch);
  const U8Row decoded{scratch + pass * stride / 16 * 2 * sizeof(float), scales, scales + pass * stride / 16};
  for (int64_t p = r0; p < r1; p += pass) {
    const int rows = static_cast<int>(std::min(pass, r1 - p));
    for (int r = 0; r < rows; ++r) {
      k.u8_decode(w.type, w.row(p + r, mat), n,
                  U8Row{decoded.code + r * stride, decoded.dsc16 + r * stride / 16, decoded.mneg16 + r * stride / 16});
    }
    k.int_dot_decoded(digits, w.type, decoded, stride, rows, xg, groups, n_tokens, n, y + p, ldy);
  }
}

}  // namespace tandem::cpu
