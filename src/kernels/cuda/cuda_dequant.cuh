// Internal to src/kernels/cuda: weights dequantized inside kernels, value for value as the CPU's scalar
// reference computes them (quant_scalar.cpp: the same float operations in the same order; block layouts in
// kernels/cpu/quant_blocks.h, byte for byte ggml's).
//
// dequant8() gives 8 consecutive values of a row starting at a multiple of 8 (every quantized type's
// blocks and sub-blocks are whole multiples of 8, so the 8 share their scales); dequant1() gives one value
// (float rows whose length is not a multiple of 8, and embedding lookups).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "gguf/ggml_type.h"

namespace tandem::cuda {

// Every block of every quantized type has an even size and keeps its f16 fields at even offsets, and rows
// start at even addresses: 16-bit loads of them are aligned. (Byte loads cost one L1 access each: a decode
// matrix-vector product is bound by L1 accesses, not by DRAM.)
__device__ inline float half_at(const uint8_t* p) {
  return __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t*>(p)));
}
// The 8 bytes at p (2-byte aligned), little-endian, in two 32-bit loads where p is 4-byte aligned (blocks of
// even index in a row of 210- or 34-byte blocks), else four 16-bit ones.
__device__ inline uint64_t load8_aligned2(const uint8_t* p) {
  if ((reinterpret_cast<uintptr_t>(p) & 3) == 0) {
    const uint32_t* w = reinterpret_cast<const uint32_t*>(p);
    return static_cast<uint64_t>(w[0]) | (static_cast<uint64_t>(w[1]) << 32);
  }
  const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
  return static_cast<uint64_t>(h[0]) | (static_cast<uint64_t>(h[1]) << 16) | (static_cast<uint64_t>(h[2]) << 32) |
         (static_cast<uint64_t>(h[3]) << 48);
}
__device__ inline float bf16_bits(uint16_t bits) { return __uint_as_float(static_cast<uint32_t>(bits) << 16); }

// Scale s of a Q3_K block (6 bits stored as scale + 32).
__device__ inline int q3k_scale(const uint8_t* q, int s) {
  const int low = s < 8 ? (q[s] & 0x0F) : (q[s - 8] >> 4);
  const int high = (q[8 + s % 4] >> (2 * (s / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Values i0 .. i0 + 7 of a row of `type` (i0 % 8 == 0).
__device__ inline void dequant8(GgmlType type, const uint8_t* row, int64_t i0, float* out) {
  switch (type) {
    case GgmlType::F32: {
      const float* p = reinterpret_cast<const float*>(row) + i0;
      for (int k = 0; k < 8; ++k) out[k] = p[k];
      return;
    }
    case GgmlType::F16: {
      const __half* p = reinterpret_cast<const __half*>(row) + i0;
      for (int k = 0; k < 8; ++k) out[k] = __half2float(p[k]);
      return;
    }
    case GgmlType::BF16: {
      const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + i0;
      for (int k = 0; k < 8; ++k) out[k] = bf16_bits(p[k]);
      return;
    }
    case GgmlType::Q8_0: {
      const uint8_t* b = row + (i0 / 32) * 34;
      const int e = static_cast<int>(i0 % 32);
      const float d = half_at(b);
      const uint64_t qs = load8_aligned2(b + 2 + e);
      for (int k = 0; k < 8; ++k) out[k] = static_cast<float>(static_cast<int8_t>(qs >> (8 * k))) * d;
      return;
    }
    case GgmlType::Q4_0: {
      const uint8_t* b = row + (i0 / 32) * 18;
      const int e = static_cast<int>(i0 % 32);
      const float d = half_at(b);
      const uint8_t* qs = b + 2 + (e & 15);
      const int shift = e < 16 ? 0 : 4;
      for (int k = 0; k < 8; ++k) out[k] = static_cast<float>(((qs[k] >> shift) & 0x0F) - 8) * d;
      return;
    }
    case GgmlType::Q4_1: {
      const uint8_t* b = row + (i0 / 32) * 20;
      const int e = static_cast<int>(i0 % 32);
      const float d = half_at(b), m = half_at(b + 2);
      const uint8_t* qs = b + 4 + (e & 15);
      const int shift = e < 16 ? 0 : 4;
      for (int k = 0; k < 8; ++k) out[k] = static_cast<float>((qs[k] >> shift) & 0x0F) * d + m;
      return;
    }
    case GgmlType::Q5_0:
    case GgmlType::Q5_1: {
      const bool q5_1 = type == GgmlType::Q5_1;
      const uint8_t* b = row + (i0 / 32) * (q5_1 ? 24 : 22);
      const int e = static_cast<int>(i0 % 32);
      const float d = half_at(b), m = q5_1 ? half_at(b + 2) : 0.0f;
      const uint8_t* qhp = b + (q5_1 ? 4 : 2);
      const uint32_t qh = qhp[0] | (qhp[1] << 8) | (qhp[2] << 16) | (static_cast<uint32_t>(qhp[3]) << 24);
      const uint8_t* qs = qhp + 4 + (e & 15);
      const int shift = e < 16 ? 0 : 4;
      for (int k = 0; k < 8; ++k) {
        const int q = ((qs[k] >> shift) & 0x0F) | static_cast<int>(((qh >> (e + k)) & 1) << 4);
        out[k] = q5_1 ? static_cast<float>(q) * d + m : static_cast<float>(q - 16) * d;
      }
      return;
    }
    case GgmlType::Q2_K: {
      const uint8_t* b = row + (i0 / 256) * 84;
      const int e = static_cast<int>(i0 % 256), h = e / 128, k2 = (e % 128) / 32, l = e % 32;
      const uint8_t sc = b[e / 16];
      const float d = half_at(b + 80), dmin = half_at(b + 82);
      const float dl = d * static_cast<float>(sc & 0x0F);
      const float ml = dmin * static_cast<float>(sc >> 4);
      const uint8_t* qs = b + 16 + 32 * h + l;
      for (int k = 0; k < 8; ++k) out[k] = dl * static_cast<float>((qs[k] >> (2 * k2)) & 3) - ml;
      return;
    }
    case GgmlType::Q3_K: {
      const uint8_t* b = row + (i0 / 256) * 110;
      const int e = static_cast<int>(i0 % 256), h = e / 128, k2 = (e % 128) / 32, l = e % 32;
      const float d = half_at(b + 108);
      const float dl = d * static_cast<float>(q3k_scale(b + 96, e / 16));
      const uint8_t* hmask = b + l;
      const uint8_t* qs = b + 32 + 32 * h + l;
      for (int k = 0; k < 8; ++k) {
        const int low = (qs[k] >> (2 * k2)) & 3;
        const int high = (hmask[k] >> (4 * h + k2)) & 1;
        out[k] = dl * static_cast<float>(low + 4 * high - 4);
      }
      return;
    }
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: {
      const bool q5 = type == GgmlType::Q5_K;
      const uint8_t* b = row + (i0 / 256) * (q5 ? 176 : 144);
      const int e = static_cast<int>(i0 % 256), s = e / 32, l = e % 32;
      // d, dmin and the 12 scale bytes in two 64-bit loads (blocks are 8-byte aligned, as the quant loads
      // below assume), the scale bytes taken out in registers.
      const uint64_t head0 = *reinterpret_cast<const uint64_t*>(b), head1 = *reinterpret_cast<const uint64_t*>(b + 8);
      const float d = __half2float(__ushort_as_half(static_cast<uint16_t>(head0)));
      const float dmin = __half2float(__ushort_as_half(static_cast<uint16_t>(head0 >> 16)));
      const auto scale_byte = [&](int i) {  // byte i of the 12 scale bytes (at b + 4)
        return static_cast<int>((i < 4 ? head0 >> (8 * (i + 4)) : head1 >> (8 * (i - 4))) & 0xFF);
      };
      int scale, min;
      if (s < 4) {
        scale = scale_byte(s) & 63;
        min = scale_byte(s + 4) & 63;
      } else {
        scale = (scale_byte(s + 4) & 0x0F) | ((scale_byte(s - 4) >> 6) << 4);
        min = (scale_byte(s + 4) >> 4) | ((scale_byte(s) >> 6) << 4);
      }
      const float dl = d * static_cast<float>(scale);
      const float ml = dmin * static_cast<float>(min);
      // The 8 quant bytes in one 64-bit load: blocks (144 / 176 bytes) and l keep them 8-byte aligned.
      const uint64_t qs = *reinterpret_cast<const uint64_t*>(b + (q5 ? 48 : 16) + 32 * (s / 2) + l);
      const uint64_t qh = q5 ? *reinterpret_cast<const uint64_t*>(b + 16 + l) : 0;
      const int shift = 4 * (s % 2);
      for (int k = 0; k < 8; ++k) {
        const int q = static_cast<int>((qs >> (8 * k + shift)) & 0x0F) | static_cast<int>(((qh >> (8 * k + s)) & 1) << 4);
        out[k] = dl * static_cast<float>(q) - ml;
      }
      return;
    }
    case GgmlType::Q6_K: {
      const uint8_t* b = row + (i0 / 256) * 210;
      const int e = static_cast<int>(i0 % 256), h = e / 128, k2 = (e % 128) / 32, l = e % 32;
      const float d = half_at(b + 208);
      const float dl = d * static_cast<float>(reinterpret_cast<const int8_t*>(b + 192)[e / 16]);
      const uint64_t ql = load8_aligned2(b + 64 * h + 32 * (k2 & 1) + l);
      const uint64_t qh = load8_aligned2(b + 128 + 32 * h + l);
      const int shift = k2 < 2 ? 0 : 4;
      for (int k = 0; k < 8; ++k) {
        const int q = static_cast<int>((ql >> (8 * k + shift)) & 0x0F) | static_cast<int>(((qh >> (8 * k + 2 * k2)) & 3) << 4);
        out[k] = dl * static_cast<float>(q - 32);
      }
      return;
    }
    default:
      for (int k = 0; k < 8; ++k) out[k] = 0.0f;  // types the loader refuses (is_computable_type)
  }
}

// Value i of a row of `type`.
__device__ inline float dequant1(GgmlType type, const uint8_t* row, int64_t i) {
  switch (type) {
    case GgmlType::F32: return reinterpret_cast<const float*>(row)[i];
    case GgmlType::F16: return __half2float(reinterpret_cast<const __half*>(row)[i]);
    case GgmlType::BF16: return bf16_bits(reinterpret_cast<const uint16_t*>(row)[i]);
    default: {
      float v[8];
      dequant8(type, row, i & ~int64_t{7}, v);
      return v[i & 7];
    }
  }
}

}  // namespace tandem::cuda
