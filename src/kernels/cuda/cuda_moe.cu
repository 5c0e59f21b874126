// Routed experts on the GPU: out[t] = sum over j, in j order, of weights[t][j] * expert_{ids[t][j]}(x[t]).
//
// Two ways to the same bits (dot products in cuda_dots.cuh's order, SwiGLU and the weighted slot sum as
// below), chosen by the batch size:
//  - per slot (few tokens): a warp per (hidden row, token, slot) for gate/up, then a warp per (output row,
//    token) that loops over the token's slots: each slot reads its expert's rows on its own.
//  - grouped by expert (many tokens): the (token, slot) pairs are sorted by expert on the GPU, cut into
//    tiles of up to kTileSlots pairs of one expert, and each tile is a small matrix product (block_tile_dots):
//    every expert's weights are read once per tile instead of once per slot. The down products land in a
//    per-slot buffer and a last kernel adds each token's slots in j order.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_dots.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tandem::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;
constexpr int kTileSlots = 16;   // (token, slot) pairs per tile
constexpr int kGateUpRows = 2;   // hidden rows per warp in the grouped gate/up kernel (x2 matrices)
constexpr int kDownRows = 4;     // output rows per warp in the grouped down kernel
constexpr int kGroupedWarps = 8; // warps per block of the grouped kernels (sharing the tile's staged rows)

__device__ inline float silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// ---- per slot ----

// hidden[t][j][r] = silu(gate_e[r] . x_t) * (up_e[r] . x_t), e = ids[t][j]. kPaired (gate and up of one type,
// x rows 16-byte aligned): both rows in one pass over x (lane_rows_dots), else one after the other.
template <GgmlType kType, bool kPaired>
__global__ void moe_gate_up_kernel(DevTensor gate, DevTensor up, DevTensor x, DevTensor ids, float* hidden, int* err) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp, n_ff = gate.ne1;
  if (r >= n_ff) return;
  const int64_t j = blockIdx.y, t = blockIdx.z, k = ids.ne0;
  const int32_t e = ids.row_as<const int32_t>(t)[j];
  float* h = hidden + (t * k + j) * n_ff + r;
  if (e < 0 || e >= gate.ne2) {
    if (lane == 0) {
      raise_error(err, kExpertIdOutOfRange);
      *h = 0.0f;
    }
    return;
  }
  const float* xv = x.row_as<const float>(t);
  float g = 0.0f, u = 0.0f;
  const uint8_t* const gate_row = reinterpret_cast<const uint8_t*>(gate.row(r, e));
  const uint8_t* const up_row = reinterpret_cast<const uint8_t*>(up.row(r, e));
  if constexpr (kPaired) {
    const uint8_t* const rows[2] = {gate_row, up_row};
    float acc[2][1] = {};
    lane_rows_dots<kType, 2, 1, true>(gate.type, rows, gate.ne0, xv, 0, 1, acc);
    g = acc[0][0];
    u = acc[1][0];
  } else {
    float gate_acc[1][1] = {}, up_acc[1][1] = {};
    lane_rows_dots<kType, 1, 1, false>(gate.type, {gate_row}, gate.ne0, xv, 0, 1, gate_acc);
    lane_rows_dots<kType, 1, 1, false>(up.type, {up_row}, up.ne0, xv, 0, 1, up_acc);
    g = gate_acc[0][0];
    u = up_acc[0][0];
  }
  g = warp_sum(g);
  u = warp_sum(u);
  if (lane == 0) *h = silu_times(g, u);
}

// out[t][r] = sum over j, in j order, of weights[t][j] * (down_e[r] . hidden[t][j]). kVec: hidden rows allow
// 16-byte loads.
template <GgmlType kType, bool kVec>
__global__ void moe_down_kernel(DevTensor down, DevTensor ids, DevTensor weights, const float* hidden, DevTensor out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (r >= down.ne1) return;
  const int64_t t = blockIdx.y, k = ids.ne0, n_ff = down.ne0;
  const int32_t* id = ids.row_as<const int32_t>(t);
  const float* wt = weights.row_as<const float>(t);
  float total = 0.0f;
  for (int64_t j = 0; j < k; ++j) {
    const int32_t e = id[j];
    if (e < 0 || e >= down.ne2) continue;  // reported by the gate/up kernel
    const uint8_t* const row[1] = {reinterpret_cast<const uint8_t*>(down.row(r, e))};
    float d[1][1] = {};
    lane_rows_dots<kType, 1, 1, kVec>(down.type, row, n_ff, hidden + (t * k + j) * n_ff, 0, 1, d);
    total = total + wt[j] * warp_sum(d[0][0]);
  }
  if (lane == 0) out.row_as<float>(t)[r] = total;
}

// ---- grouped by expert ----

// One block: counts the valid pairs per expert, lays the experts' pair lists out in expert order (slots[]
// holds t * k + j; the order within an expert does not matter, each pair's result is its own), and cuts them
// into tiles {expert, first, count}.
__global__ void moe_sort_kernel(DevTensor ids, int n_experts, MoeScratch s, int* err) {
  extern __shared__ int shared[];
  int* count = shared;               // [n_experts]
  int* cursor = shared + n_experts;  // [n_experts]
  const int64_t k = ids.ne0, pairs = ids.ne0 * ids.ne1;
  for (int e = threadIdx.x; e < n_experts; e += blockDim.x) count[e] = 0;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
    const int32_t e = ids.row_as<const int32_t>(i / k)[i % k];
    if (e < 0 || e >= n_experts) {
      raise_error(err, kExpertIdOutOfRange);
    } else {
      atomicAdd(&count[e], 1);
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int first = 0, tiles = 0;
    for (int e = 0; e < n_experts; ++e) {
      cursor[e] = first;
      for (int f = first; f < first + count[e]; f += kTileSlots) {
        s.tiles[3 * tiles] = e;
        s.tiles[3 * tiles + 1] = f;
        s.tiles[3 * tiles + 2] = min(kTileSlots, first + count[e] - f);
        ++tiles;
      }
      first += count[e];
    }
    *s.n_tiles = tiles;
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
    const int32_t e = ids.row_as<const int32_t>(i / k)[i % k];
    if (e >= 0 && e < n_experts) s.slots[atomicAdd(&cursor[e], 1)] = static_cast<int32_t>(i);
  }
}

// The tile of blockIdx.y: its expert, and the rows its pairs read (`row_of(slot)`) in x_rows[] (the last
// repeated). Returns the expert, or -1 past the last tile.
template <typename RowOf>
__device__ inline int load_tile(const MoeScratch& s, const float** x_rows, int& n_slots, int32_t* slot_ids,
                                RowOf row_of) {
  if (static_cast<int>(blockIdx.y) >= *s.n_tiles) return -1;
  const int32_t* tile = s.tiles + 3 * blockIdx.y;
  n_slots = tile[2];
  if (threadIdx.x < kTileSlots) {
    const int32_t slot = s.slots[tile[1] + min(static_cast<int>(threadIdx.x), n_slots - 1)];
    slot_ids[threadIdx.x] = slot;
    x_rows[threadIdx.x] = row_of(slot);
  }
  return tile[0];
}

// hidden[slot][r] for the tile's pairs: rows r0 .. r0 + kGateUpRows of gate and up in one tile product.
template <GgmlType kType, bool kVec>
__global__ void __launch_bounds__(32 * kGroupedWarps, 2)
    moe_gate_up_grouped_kernel(DevTensor gate, DevTensor up, DevTensor x, int64_t k, MoeScratch s) {
  __shared__ const float* x_rows[kTileSlots];
  __shared__ int32_t slot_ids[kTileSlots];
  __shared__ TileStage<kTileSlots> stage;
  int n_slots = 0;
  const int e = load_tile(s, x_rows, n_slots, slot_ids, [&](int32_t slot) { return x.row_as<const float>(slot / k); });
  if (e < 0) return;  // the whole block
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n_ff = gate.ne1, r0 = (static_cast<int64_t>(blockIdx.x) * kGroupedWarps + warp) * kGateUpRows;
  const uint8_t* rows[2 * kGateUpRows];
#pragma unroll
  for (int r = 0; r < kGateUpRows; ++r) {
    const int64_t rr = min(r0 + r, n_ff - 1);
    rows[r] = reinterpret_cast<const uint8_t*>(gate.row(rr, e));
    rows[kGateUpRows + r] = reinterpret_cast<const uint8_t*>(up.row(rr, e));
  }
  float acc[2 * kGateUpRows][kTileSlots] = {};
  block_tile_dots<kType, 2 * kGateUpRows, kTileSlots, kVec>(gate.type, rows, gate.ne0, x_rows, stage, acc);
#pragma unroll
  for (int r = 0; r < kGateUpRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTileSlots; ++t) {
      const float g = warp_sum(acc[r][t]), u = warp_sum(acc[kGateUpRows + r][t]);
      if (lane == ((r * kTileSlots + t) & 31) && r0 + r < n_ff && t < n_slots) {
        s.hidden[static_cast<int64_t>(slot_ids[t]) * n_ff + r0 + r] = silu_times(g, u);
      }
    }
  }
}

// down_out[slot][r] = down_e[r] . hidden[slot] for the tile's pairs, rows r0 .. r0 + kDownRows.
template <GgmlType kType, bool kVec>
__global__ void __launch_bounds__(32 * kGroupedWarps, 2) moe_down_grouped_kernel(DevTensor down, MoeScratch s) {
  __shared__ const float* x_rows[kTileSlots];
  __shared__ int32_t slot_ids[kTileSlots];
  __shared__ TileStage<kTileSlots> stage;
  const int64_t n_ff = down.ne0, n_embd = down.ne1;
  int n_slots = 0;
  const float* hidden = s.hidden;
  const int e = load_tile(s, x_rows, n_slots, slot_ids, [&](int32_t slot) { return hidden + slot * n_ff; });
  if (e < 0) return;  // the whole block
  __syncthreads();
  const int warp = threadIdx.x >> 5;
  const int64_t r0 = (static_cast<int64_t>(blockIdx.x) * kGroupedWarps + warp) * kDownRows;
  const uint8_t* rows[kDownRows];
#pragma unroll
  for (int r = 0; r < kDownRows; ++r) rows[r] = reinterpret_cast<const uint8_t*>(down.row(min(r0 + r, n_embd - 1), e));
  float acc[kDownRows][kTileSlots] = {};
  block_tile_dots<kType, kDownRows, kTileSlots, kVec>(down.type, rows, n_ff, x_rows, stage, acc);
  store_tile_sums(acc, [&](int r, int t, float d) {
    if (r0 + r < n_embd && t < n_slots) s.down_out[static_cast<int64_t>(slot_ids[t]) * n_embd + r0 + r] = d;
  });
}

// out[t][r] = sum over valid j, in j order, of weights[t][j] * down_out[t * k + j][r] (moe_down_kernel's sum).
__global__ void moe_combine_kernel(DevTensor ids, DevTensor weights, int n_experts, const float* down_out,
                                   DevTensor out) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x, t = blockIdx.y;
  const int64_t n_embd = out.ne0, k = ids.ne0;
  if (r >= n_embd) return;
  const int32_t* id = ids.row_as<const int32_t>(t);
  const float* wt = weights.row_as<const float>(t);
  float total = 0.0f;
  for (int64_t j = 0; j < k; ++j) {
    if (id[j] < 0 || id[j] >= n_experts) continue;
    total = total + wt[j] * down_out[(t * k + j) * n_embd + r];
  }
  out.row_as<float>(t)[r] = total;
}

}  // namespace

bool moe_uses_grouped(int64_t n_tokens, int64_t k, int64_t n_experts) {
  return n_tokens * k >= 4 * n_experts;  // on average 4 pairs per expert or more
}

int64_t moe_max_tiles(int64_t n_tokens, int64_t k, int64_t n_experts) {
  return (n_tokens * k + kTileSlots - 1) / kTileSlots + n_experts;
}

void launch_moe(const ExpertWeights& experts, const DevTensor& x, const DevTensor& ids, const DevTensor& weights,
                const DevTensor& out, const MoeScratch& scratch, bool grouped, int* err, cudaStream_t stream) {
  const int64_t n = x.ne1, k = ids.ne0, n_ff = experts.gate.rows(), n_embd = experts.down.rows();
  const int64_t n_experts = experts.gate.slices();
  if (n <= 0) return;
  const DevTensor gate = dev(experts.gate), up = dev(experts.up), down = dev(experts.down);
  if (grouped) {
    moe_sort_kernel<<<1, 1024, 2 * n_experts * sizeof(int), stream>>>(ids, static_cast<int>(n_experts), scratch, err);
    const auto tiles = static_cast<unsigned>(moe_max_tiles(n, k, n_experts));
    const dim3 grid1(blocks_for(n_ff, kGroupedWarps * kGateUpRows), tiles);
    const bool x_vec = rows_aligned16(x.data, x.nb1 / 4);
    with_tile_type(gate.type, [&]<GgmlType T>() {
      if (x_vec) {
        moe_gate_up_grouped_kernel<T, true><<<grid1, 32 * kGroupedWarps, 0, stream>>>(gate, up, x, k, scratch);
      } else {
        moe_gate_up_grouped_kernel<T, false><<<grid1, 32 * kGroupedWarps, 0, stream>>>(gate, up, x, k, scratch);
      }
    });
    const dim3 grid2(blocks_for(n_embd, kGroupedWarps * kDownRows), tiles);
    const bool h_vec = rows_aligned16(scratch.hidden, n_ff);
    with_tile_type(down.type, [&]<GgmlType T>() {
      if (h_vec) {
        moe_down_grouped_kernel<T, true><<<grid2, 32 * kGroupedWarps, 0, stream>>>(down, scratch);
      } else {
        moe_down_grouped_kernel<T, false><<<grid2, 32 * kGroupedWarps, 0, stream>>>(down, scratch);
      }
    });
    moe_combine_kernel<<<dim3(blocks_for(n_embd, 128), static_cast<unsigned>(n)), 128, 0, stream>>>(
        ids, weights, static_cast<int>(n_experts), scratch.down_out, out);
    return;
  }
  const dim3 grid1(blocks_for(n_ff, kWarpsPerBlock), static_cast<unsigned>(k), static_cast<unsigned>(n));
  if (gate.type == up.type && rows_aligned16(x.data, x.nb1 / 4)) {
    with_tile_type(gate.type, [&]<GgmlType T>() {
      moe_gate_up_kernel<T, true><<<grid1, 32 * kWarpsPerBlock, 0, stream>>>(gate, up, x, ids, scratch.hidden, err);
    });
  } else {
    with_type(gate.type == up.type ? gate.type : kAnyType, [&]<GgmlType T>() {
      moe_gate_up_kernel<T, false><<<grid1, 32 * kWarpsPerBlock, 0, stream>>>(gate, up, x, ids, scratch.hidden, err);
    });
  }
  const dim3 grid2(blocks_for(n_embd, kWarpsPerBlock), static_cast<unsigned>(n));
  if (rows_aligned16(scratch.hidden, n_ff)) {
    with_tile_type(down.type, [&]<GgmlType T>() {
      moe_down_kernel<T, true><<<grid2, 32 * kWarpsPerBlock, 0, stream>>>(down, ids, weights, scratch.hidden, out);
    });
  } else {
    with_type(down.type, [&]<GgmlType T>() {
      moe_down_kernel<T, false><<<grid2, 32 * kWarpsPerBlock, 0, stream>>>(down, ids, weights, scratch.hidden, out);
    });
  }
}

}  // namespace tandem::cuda
