// Internal to src/kernels/cuda: the dot products every matrix kernel is built from, and the weight-type
// dispatch.
//
// The summation order is the contract (batch invariance, cuda_common.cuh): a warp computes a dot product
// of a weight row and an activation row; lane l takes the 8-value chunks l, l + 32, l + 64, ... of the row
// in increasing order, keeps one fmaf chain over them (values k = 0..7 of a chunk in order), and the warp
// adds its 32 partial sums with warp_sum's fixed butterfly. lane_rows_dots() does this for a few rows and a few
// tokens (decode), block_tile_dots() for tiles of rows x tokens (prefill). Both give the same bits for the
// same row and token, so kernels may pick either by the batch size.
#pragma once

#include <cuda_pipeline.h>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_dequant.cuh"

namespace tandem::cuda {

// The run-time type when kType is this sentinel (types without a specialized kernel); otherwise kType.
constexpr GgmlType kAnyType = GgmlType::I32;
template <GgmlType kType>
__device__ inline void chunk8(GgmlType type, const uint8_t* row, int64_t i0, float* out) {
  dequant8(kType == kAnyType ? type : kType, row, i0, out);
}

// acc[r][t] += rows[r] . x_t over the lane's chunks (and the float tail), t < nt, in that order: one
// warp, kRows rows at once, so that each activation chunk is read once for all of them (the L1 accesses of
// the activations, not DRAM, bound a decode product with one row per warp). kVecX: x and x_stride allow
// 16-byte loads.
template <GgmlType kType, int kRows, int kTile, bool kVecX>
__device__ inline void lane_rows_dots(GgmlType type, const uint8_t* const (&rows)[kRows], int64_t cols, const float* x,
                                      int64_t x_stride, int nt, float (&acc)[kRows][kTile]) {
  const int lane = threadIdx.x & 31;
  const int64_t chunks = cols / 8;
  // Unrolled so that several chunks' loads are in flight together (a decode product is latency-bound: a
  // lane has only 8 chunks of a 2048-value row); fewer rows per warp leave registers for more.
  constexpr int kUnroll = kRows == 1 ? 8 : kRows == 2 ? 4 : 2;
#pragma unroll kUnroll
  for (int64_t c = lane; c < chunks; c += 32) {
    float w[kRows][8];
#pragma unroll
    for (int r = 0; r < kRows; ++r) chunk8<kType>(type, rows[r], c * 8, w[r]);
#pragma unroll
    for (int t = 0; t < kTile; ++t) {
      if (t < nt) {
        float xv[8];
        const float* xp = x + t * x_stride + c * 8;
        if constexpr (kVecX) {
          const float4 lo = reinterpret_cast<const float4*>(xp)[0], hi = reinterpret_cast<const float4*>(xp)[1];
          xv[0] = lo.x, xv[1] = lo.y, xv[2] = lo.z, xv[3] = lo.w, xv[4] = hi.x, xv[5] = hi.y, xv[6] = hi.z, xv[7] = hi.w;
        } else {
#pragma unroll
          for (int k = 0; k < 8; ++k) xv[k] = xp[k];
        }
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
#pragma unroll
          for (int k = 0; k < 8; ++k) acc[r][t] = fmaf(w[r][k], xv[k], acc[r][t]);
        }
      }
    }
  }
  for (int64_t i = chunks * 8 + lane; i < cols; i += 32) {  // only float types have rows of other lengths
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float w = dequant1(type, rows[r], i);
      for (int t = 0; t < nt; ++t) acc[r][t] = fmaf(w, x[t * x_stride + i], acc[r][t]);
    }
  }
}

// acc[r][t] += rows[r] . xs[t] over the lane's chunks, in lane_rows_dots' order, for every warp of a block at
// once (each its own rows), the block's kTokens activation rows shared: each dequantized chunk is used for
// every token of the tile, each activation chunk for every row, and the activations are staged through
// shared memory one k-block of 32 chunks at a time (asynchronous copies, the next k-block's while this one is
// used), so each is read from L2 once per block instead of once per warp. In k-block b lane l takes chunk 32 b + l:
// lane_rows_dots' chunks in its order, so the same bits. Every thread of the block must call it (it
// synchronizes the block) with valid row and token pointers: callers repeat the last row / token for a
// partial tile and drop those sums. kVec: every xs[t] is 16-byte aligned (activations read as float4).
constexpr int kStageValues = 32 * 8;
// Shared memory a block_tile_dots() caller provides: two k-blocks in flight (the next one is copied while
// the current one is used).
template <int kTokens>
struct TileStage {
  __align__(16) float values[2][kTokens * kStageValues];
};

// Starts the asynchronous copy of k-block `first` (in chunks) of the kTokens rows into `buffer`.
template <int kTokens, bool kVec>
__device__ inline void stage_k_block(const float* const* xs, int64_t first, int64_t chunks, float* buffer) {
  const int64_t block_values = min(static_cast<int64_t>(kStageValues), (chunks - first) * 8);
  if constexpr (kVec) {
    for (int i = threadIdx.x; i < kTokens * kStageValues / 4; i += blockDim.x) {
      const int t = i / (kStageValues / 4), q = i % (kStageValues / 4);
      if (q * 4 < block_values) __pipeline_memcpy_async(buffer + t * kStageValues + q * 4, xs[t] + first * 8 + q * 4, 16);
    }
  } else {
    for (int i = threadIdx.x; i < kTokens * kStageValues; i += blockDim.x) {
      const int t = i / kStageValues, v = i % kStageValues;
      if (v < block_values) __pipeline_memcpy_async(buffer + t * kStageValues + v, xs[t] + first * 8 + v, 4);
    }
  }
  __pipeline_commit();
}

template <GgmlType kType, int kRows, int kTokens, bool kVec>
__device__ inline void block_tile_dots(GgmlType type, const uint8_t* const (&rows)[kRows], int64_t cols,
                                       const float* const* xs, TileStage<kTokens>& stage,
                                       float (&acc)[kRows][kTokens]) {
  const int lane = threadIdx.x & 31;
  const int64_t chunks = cols / 8;
  if (chunks > 0) stage_k_block<kTokens, kVec>(xs, 0, chunks, stage.values[0]);
  for (int64_t first = 0, b = 0; first < chunks; first += 32, b ^= 1) {
    if (first + 32 < chunks) {
      stage_k_block<kTokens, kVec>(xs, first + 32, chunks, stage.values[b ^ 1]);
      __pipeline_wait_prior(1);  // this k-block's copies are done, the next one's may still run
    } else {
      __pipeline_wait_prior(0);
    }
    __syncthreads();  // every thread's copies of this k-block are visible
    const int64_t c = first + lane;
    if (c < chunks) {
      float w[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) chunk8<kType>(type, rows[r], c * 8, w[r]);
      const float* staged = stage.values[b];
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const float4* xp = reinterpret_cast<const float4*>(staged + t * kStageValues + lane * 8);
        const float4 lo = xp[0], hi = xp[1];
        const float xv[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
#pragma unroll
          for (int k = 0; k < 8; ++k) acc[r][t] = fmaf(w[r][k], xv[k], acc[r][t]);
        }
      }
    }
    __syncthreads();  // this buffer is consumed before the copy two k-blocks on overwrites it
  }
  for (int64_t i = chunks * 8 + lane; i < cols; i += 32) {  // only float types have rows of other lengths
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float w = dequant1(type, rows[r], i);
#pragma unroll
      for (int t = 0; t < kTokens; ++t) acc[r][t] = fmaf(w, xs[t][i], acc[r][t]);
    }
  }
}

// Adds up a warp's tile of partial sums (warp_sum of each) and calls store(r, t, sum) for each on one lane,
// spread over the lanes so that the stores go out together.
template <int kRows, int kTokens, typename Store>
__device__ inline void store_tile_sums(const float (&acc)[kRows][kTokens], Store store) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      const float sum = warp_sum(acc[r][t]);
      if (lane == ((r * kTokens + t) & 31)) store(r, t, sum);
    }
  }
}

// Calls f.template operator()<T>() with the weight type as a template argument.
template <typename F>
void with_type(GgmlType type, F&& f) {
  switch (type) {
    case GgmlType::F32: return f.template operator()<GgmlType::F32>();
    case GgmlType::F16: return f.template operator()<GgmlType::F16>();
    case GgmlType::BF16: return f.template operator()<GgmlType::BF16>();
    case GgmlType::Q8_0: return f.template operator()<GgmlType::Q8_0>();
    case GgmlType::Q4_0: return f.template operator()<GgmlType::Q4_0>();
    case GgmlType::Q4_1: return f.template operator()<GgmlType::Q4_1>();
    case GgmlType::Q5_0: return f.template operator()<GgmlType::Q5_0>();
    case GgmlType::Q5_1: return f.template operator()<GgmlType::Q5_1>();
    case GgmlType::Q2_K: return f.template operator()<GgmlType::Q2_K>();
    case GgmlType::Q3_K: return f.template operator()<GgmlType::Q3_K>();
    case GgmlType::Q4_K: return f.template operator()<GgmlType::Q4_K>();
    case GgmlType::Q5_K: return f.template operator()<GgmlType::Q5_K>();
    case GgmlType::Q6_K: return f.template operator()<GgmlType::Q6_K>();
    default: return f.template operator()<kAnyType>();
  }
}

// As with_type() for the tiled (prefill) kernels, specialized for the types quantized models are made of;
// the others share one run-time-typed instantiation (fewer kernels to compile).
template <typename F>
void with_tile_type(GgmlType type, F&& f) {
  switch (type) {
    case GgmlType::F32: return f.template operator()<GgmlType::F32>();
    case GgmlType::Q8_0: return f.template operator()<GgmlType::Q8_0>();
    case GgmlType::Q4_K: return f.template operator()<GgmlType::Q4_K>();
    case GgmlType::Q5_K: return f.template operator()<GgmlType::Q5_K>();
    case GgmlType::Q6_K: return f.template operator()<GgmlType::Q6_K>();
    default: return f.template operator()<kAnyType>();
  }
}

// Whether every row of x (base, token and head strides in floats) starts 16-byte aligned.
inline bool rows_aligned16(const void* base, int64_t stride_a, int64_t stride_b = 0) {
  return reinterpret_cast<uintptr_t>(base) % 16 == 0 && stride_a % 4 == 0 && stride_b % 4 == 0;
}

}  // namespace tandem::cuda
