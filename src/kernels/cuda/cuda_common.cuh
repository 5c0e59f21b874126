// Internal to src/kernels/cuda: device helpers of the kernels (error flag, launch sizes, warp sums).
//
// Floating point: these files are compiled with --fmad=false, so `a * b + c` is never contracted; kernels
// that want a fused multiply-add call fmaf() explicitly. Every value is then computed by the same operations
// whatever code path (batch size, tile) computes it, which batch invariance relies on, and dequantized
// weights equal the CPU reference's bit for bit.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_tensor.h"

namespace tandem::cuda {

__device__ inline void raise_error(int* flag, int code) { atomicCAS(flag, 0, code); }

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

__device__ inline float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;  // every lane holds the same sum, added in the same (butterfly) order
}
__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

}  // namespace tandem::cuda
