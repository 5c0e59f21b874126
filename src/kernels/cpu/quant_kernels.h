// Per-ISA entry points behind the dispatch in quant.cpp. Internal to src/kernels/cpu.
//
// Arguments are validated by the dispatcher (computable type, n >= 0 and a multiple of the block size).
//
// Reduction order shared by every dot product here: value i of a row is accumulated into lane i % 32 of 32
// running sums (in increasing i); the sums are then combined as s[l] = (p[l] + p[8+l]) + (p[16+l] + p[24+l])
// for l < 8, t[l] = s[l] + s[l+4] for l < 4, and (t[0] + t[2]) + (t[1] + t[3]). The scalar kernels add
// rounded products; the AVX2 kernels use fused multiply-add (4 accumulators of 8 lanes), so the two ISAs
// agree within rounding, and each is exactly reproducible for a given n. dot_row equals dot_f32 over the
// row dequantized by the same ISA, bit for bit.
#pragma once

#include <cstdint>

#include "gguf/ggml_type.h"

namespace tandem::cpu {

namespace scalar {
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);
float dot_f32(const float* a, const float* b, int64_t n);
float dot_row(GgmlType type, const void* row, const float* x, int64_t n);
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);
}  // namespace scalar

namespace avx2 {
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);
float dot_f32(const float* a, const float* b, int64_t n);
float dot_row(GgmlType type, const void* row, const float* x, int64_t n);
}  // namespace avx2

}  // namespace tandem::cpu
