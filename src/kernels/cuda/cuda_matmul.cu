// Matrix products on quantized weights: plain and per-head matmul, and the transposed per-head product.
// Plain and per-head products use the dot-product order of cuda_dots.cuh (a warp per output row and token,
// lanes over 8-value chunks): 1, 2 or 4 output rows per warp and tiles of 8 tokens for small batches, tiles of
// kTileRows rows x kTileTokens tokens per warp for large ones, with identical results.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_dots.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tandem::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;  // output rows per block
constexpr int kTokenTile = 8;      // tokens per pass over a row
// The tiled kernel: rows per warp and tokens per block (acc[4][16] in registers), used from this many tokens.
constexpr int kTileRows = 4, kTileTokens = 16, kTiledWarps = 8;
constexpr int64_t kTiledFromTokens = 16;

// A warp takes kRows consecutive rows (each activation chunk read once for all of them); the last row is
// repeated past the end (valid memory) and those sums dropped.
template <GgmlType kType, int kRows, bool kVecX>
__global__ void matmul_kernel(MatmulArgs a) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t r0 = (static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp) * kRows, rows = a.w.ne1;
  if (r0 >= rows) return;
  const int64_t h = blockIdx.z, t0 = static_cast<int64_t>(blockIdx.y) * kTokenTile;
  const int nt = static_cast<int>(min(static_cast<int64_t>(kTokenTile), a.n - t0));
  const uint8_t* base = reinterpret_cast<const uint8_t*>(a.w.data) + h * a.w_head_bytes;
  const uint8_t* row[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) row[r] = base + min(r0 + r, rows - 1) * a.w.nb1;
  const float* x = a.x + h * a.x_head_stride + t0 * a.x_token_stride;
  float acc[kRows][kTokenTile] = {};
  lane_rows_dots<kType, kRows, kTokenTile, kVecX>(a.w.type, row, a.w.ne0, x, a.x_token_stride, nt, acc);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokenTile; ++t) {
      const float sum = warp_sum(acc[r][t]);
      if (lane == ((r * kTokenTile + t) & 31) && t < nt && r0 + r < rows) {
        a.y[h * a.y_head_stride + (t0 + t) * a.y_token_stride + r0 + r] = sum;
      }
    }
  }
}

// Tiled product for large batches: a block of kTiledWarps warps takes kTiledWarps x kTileRows rows and
// kTileTokens tokens, warp w the rows [r0, r0 + kTileRows); the tokens' activations are staged in shared
// memory for all warps (block_tile_dots). Partial tiles repeat their last row / token (valid memory) and
// drop those sums.
template <GgmlType kType, bool kVec>
__global__ void __launch_bounds__(32 * kTiledWarps, 2) matmul_tiled_kernel(MatmulArgs a) {
  __shared__ const float* x_rows[kTileTokens];
  __shared__ TileStage<kTileTokens> stage;
  const int warp = threadIdx.x >> 5;
  const int64_t h = blockIdx.z, t0 = static_cast<int64_t>(blockIdx.y) * kTileTokens, rows = a.w.ne1;
  const int nt = static_cast<int>(min(static_cast<int64_t>(kTileTokens), a.n - t0));
  if (threadIdx.x < kTileTokens) {
    x_rows[threadIdx.x] = a.x + h * a.x_head_stride + (t0 + min(static_cast<int>(threadIdx.x), nt - 1)) * a.x_token_stride;
  }
  __syncthreads();
  const int64_t r0 = (static_cast<int64_t>(blockIdx.x) * kTiledWarps + warp) * kTileRows;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(a.w.data) + h * a.w_head_bytes;
  const uint8_t* row[kTileRows];
#pragma unroll
  for (int r = 0; r < kTileRows; ++r) row[r] = base + min(r0 + r, rows - 1) * a.w.nb1;
  float acc[kTileRows][kTileTokens] = {};
  block_tile_dots<kType, kTileRows, kTileTokens, kVec>(a.w.type, row, a.w.ne0, x_rows, stage, acc);
  store_tile_sums(acc, [&](int r, int t, float sum) {
    if (r0 + r < rows && t < nt) a.y[h * a.y_head_stride + (t0 + t) * a.y_token_stride + r0 + r] = sum;
  });
}

// y[t][h][c] = sum_r w[h][r][c] x[t][h][r]: a thread per 8 adjacent columns (one dequant8 per row serves
// them, for up to kTransposedTokens tokens) and group of rows. The rows are split into kRowGroups fixed
// ranges (by the row count alone), each summed in row order by one thread, and the ranges' sums added in
// range order: a fixed reduction whatever the batch and however many tokens a block takes. MLA decode
// (16 heads x 512 latent columns x 128 rows, n=1) gets 64 blocks of 128 threads, 16 rows each: the product
// is latency-bound, so short per-thread chains and 8 values per weight read matter more than occupancy.
constexpr int kTransposedOctets = 16;  // 8-column groups per block: 128 columns
constexpr int kTransposedCols = 8 * kTransposedOctets;
constexpr int kRowGroups = 8;
constexpr int kTransposedTokens = 8;

// kTokens: tokens per block, kTransposedTokens, or 1 for a single token (decode at one sequence: registers
// then go to rows in flight instead of unused tokens). A token's sums are the same either way.
template <GgmlType kType, int kTokens>
__global__ void __launch_bounds__(kTransposedOctets * kRowGroups) matmul_transposed_kernel(DevTensor w, DevTensor x,
                                                                                            DevTensor y) {
  // partial[g][t][k * kTransposedOctets + o]: column 8 o + k of the block, so a warp's stores hit distinct banks.
  __shared__ float partial[kRowGroups][kTokens][kTransposedCols];
  const int octet = threadIdx.x, group = threadIdx.y;
  const int64_t c0 = (static_cast<int64_t>(blockIdx.x) * kTransposedOctets + octet) * 8;
  const int64_t h = blockIdx.y, t0 = static_cast<int64_t>(blockIdx.z) * kTokens, rows = w.ne1;
  const int nt = static_cast<int>(min(static_cast<int64_t>(kTokens), x.ne2 - t0));
  const int64_t per_group = (rows + kRowGroups - 1) / kRowGroups;
  const int64_t r0 = group * per_group, r1 = min(rows, r0 + per_group);
  const float* xv[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) xv[t] = x.row_as<const float>(h, t0 + min(t, nt - 1));
  float acc[kTokens][8] = {};
  if (c0 < w.ne0) {
    const GgmlType type = kType == kAnyType ? w.type : kType;
    const bool whole = c0 + 8 <= w.ne0;  // always, but for float rows whose length is not a multiple of 8
#pragma unroll(kTokens == 1 ? 4 : 2)  // several rows' weight loads in flight (each a DRAM round trip)
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = reinterpret_cast<const uint8_t*>(w.row(r, h));
      float wv[8];
      if (whole) {
        dequant8(type, row, c0, wv);
      } else {
        for (int k = 0; k < 8; ++k) wv[k] = c0 + k < w.ne0 ? dequant1(type, row, c0 + k) : 0.0f;
      }
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const float xr = xv[t][r];
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[t][k] = fmaf(wv[k], xr, acc[t][k]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
#pragma unroll
    for (int k = 0; k < 8; ++k) partial[group][t][k * kTransposedOctets + octet] = acc[t][k];
  }
  __syncthreads();
  for (int i = threadIdx.y * kTransposedOctets + threadIdx.x; i < nt * kTransposedCols; i += kTransposedOctets * kRowGroups) {
    const int t = i / kTransposedCols, slot = i % kTransposedCols;
    const int64_t c = (static_cast<int64_t>(blockIdx.x) * kTransposedOctets + slot % kTransposedOctets) * 8 +
                      slot / kTransposedOctets;
    if (c >= w.ne0) continue;
    float sum = partial[0][t][slot];
    for (int g = 1; g < kRowGroups; ++g) sum += partial[g][t][slot];
    y.row_as<float>(h, t0 + t)[c] = sum;
  }
}

}  // namespace

void launch_matmul(const MatmulArgs& a, cudaStream_t stream) {
  if (a.n <= 0 || a.w.ne1 <= 0) return;
  if (a.n >= kTiledFromTokens) {
    const dim3 grid(blocks_for(a.w.ne1, kTiledWarps * kTileRows), blocks_for(a.n, kTileTokens),
                    static_cast<unsigned>(a.heads));
    const bool vec = rows_aligned16(a.x, a.x_token_stride, a.x_head_stride);
    with_tile_type(a.w.type, [&]<GgmlType T>() {
      if (vec) {
        matmul_tiled_kernel<T, true><<<grid, 32 * kTiledWarps, 0, stream>>>(a);
      } else {
        matmul_tiled_kernel<T, false><<<grid, 32 * kTiledWarps, 0, stream>>>(a);
      }
    });
    return;
  }
  // Rows per warp: more share each activation read, fewer leave warps to hide DRAM latency on small matrices.
  // Activations that allow 16-byte loads (the step buffers' always do) get the multi-row kernels,
  // specialized for the types of quantized models; others one row per warp.
  const bool vec = rows_aligned16(a.x, a.x_token_stride, a.x_head_stride);
  const int rows_per_warp = !vec ? 1 : a.w.ne1 >= 8192 ? 4 : a.w.ne1 >= 1024 ? 2 : 1;
  const dim3 grid(blocks_for(a.w.ne1, kWarpsPerBlock * rows_per_warp), blocks_for(a.n, kTokenTile),
                  static_cast<unsigned>(a.heads));
  if (!vec) {
    with_type(a.w.type, [&]<GgmlType T>() { matmul_kernel<T, 1, false><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(a); });
    return;
  }
  with_tile_type(a.w.type, [&]<GgmlType T>() {
    if (rows_per_warp == 4) {
      matmul_kernel<T, 4, true><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(a);
    } else if (rows_per_warp == 2) {
      matmul_kernel<T, 2, true><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(a);
    } else {
      matmul_kernel<T, 1, true><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(a);
    }
  });
}

void launch_matmul_heads_transposed(const DevTensor& w, const DevTensor& x, const DevTensor& y, cudaStream_t stream) {
  if (x.ne2 <= 0) return;
  const dim3 block(kTransposedOctets, kRowGroups);
  if (x.ne2 == 1) {
    const dim3 grid(blocks_for(w.ne0, kTransposedCols), static_cast<unsigned>(w.ne2), 1);
    with_type(w.type, [&]<GgmlType T>() { matmul_transposed_kernel<T, 1><<<grid, block, 0, stream>>>(w, x, y); });
    return;
  }
  const dim3 grid(blocks_for(w.ne0, kTransposedCols), static_cast<unsigned>(w.ne2), blocks_for(x.ne2, kTransposedTokens));
  with_type(w.type, [&]<GgmlType T>() {
    matmul_transposed_kernel<T, kTransposedTokens><<<grid, block, 0, stream>>>(w, x, y);
  });
}

}  // namespace tandem::cuda
