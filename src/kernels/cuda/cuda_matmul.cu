// Matrix products on quantized weights: plain and per-head matmul, the transposed per-head product, and the
// routed experts (gate and up fused with SwiGLU, then down with the slot-weighted sum).
//
// Layout of the work: a warp per output row; its lanes take 8-value chunks of the row in turn (lane l:
// chunks l, l + 32, ...), dequantize each chunk once and use it for a tile of up to 8 tokens; each lane
// keeps one fma chain per token and the warp adds its 32 partial sums with a fixed butterfly. A token's
// result therefore depends only on its own activations and the row, not on the tile or the step: batch
// invariance by construction.
#include <algorithm>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_dequant.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace tandem::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;  // output rows per block
constexpr int kTokenTile = 8;      // tokens per pass over a row

// The run-time type when kType is this sentinel (mixed-type expert pairs); otherwise kType.
constexpr GgmlType kAnyType = GgmlType::I32;
template <GgmlType kType>
__device__ inline void chunk8(GgmlType type, const uint8_t* row, int64_t i0, float* out) {
  dequant8(kType == kAnyType ? type : kType, row, i0, out);
}

// Partial dot products of one lane: acc[t] += row . x_t over the lane's chunks (and the float tail).
template <GgmlType kType, int kTile>
__device__ inline void lane_dots(GgmlType type, const uint8_t* row, int64_t cols, const float* x, int64_t x_stride,
                                 int nt, float* acc) {
  const int lane = threadIdx.x & 31;
  const int64_t chunks = cols / 8;
  // Unrolled so that the loads of several chunks are in flight together (a warp reads only 256 values per
  // chunk step: one step at a time leaves the memory system idle between them).
#pragma unroll 4
  for (int64_t c = lane; c < chunks; c += 32) {
    float w[8];
    chunk8<kType>(type, row, c * 8, w);
#pragma unroll
    for (int t = 0; t < kTile; ++t) {
      if (t < nt) {
        const float* xp = x + t * x_stride + c * 8;
#pragma unroll
        for (int k = 0; k < 8; ++k) acc[t] = fmaf(w[k], xp[k], acc[t]);
      }
    }
  }
  for (int64_t i = chunks * 8 + lane; i < cols; i += 32) {  // only float types have rows of other lengths
    const float w = dequant1(type, row, i);
    for (int t = 0; t < nt; ++t) acc[t] = fmaf(w, x[t * x_stride + i], acc[t]);
  }
}

template <GgmlType kType>
__global__ void matmul_kernel(MatmulArgs a) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (r >= a.w.ne1) return;
  const int64_t h = blockIdx.z, t0 = static_cast<int64_t>(blockIdx.y) * kTokenTile;
  const int nt = static_cast<int>(min(static_cast<int64_t>(kTokenTile), a.n - t0));
  const uint8_t* row = reinterpret_cast<const uint8_t*>(a.w.data) + h * a.w_head_bytes + r * a.w.nb1;
  const float* x = a.x + h * a.x_head_stride + t0 * a.x_token_stride;
  float acc[kTokenTile];
#pragma unroll
  for (int t = 0; t < kTokenTile; ++t) acc[t] = 0.0f;
  lane_dots<kType, kTokenTile>(a.w.type, row, a.w.ne0, x, a.x_token_stride, nt, acc);
#pragma unroll
  for (int t = 0; t < kTokenTile; ++t) {
    const float sum = warp_sum(acc[t]);
    if (lane == 0 && t < nt) a.y[h * a.y_head_stride + (t0 + t) * a.y_token_stride + r] = sum;
  }
}

// y[t][h][c] = sum_r w[h][r][c] x[t][h][r]: a thread per column and group of rows. The rows are split
// into kRowGroups fixed ranges (by the row count alone), each summed in row order by one thread, and the
// ranges' sums added in range order: a fixed reduction whatever the batch. Adjacent threads read adjacent
// values of a row (coalesced), and a (head, token) gets kRowGroups x 128 threads, enough to fill the GPU
// at one token (MLA decode: 16 heads x 512 latent columns).
constexpr int kTransposedCols = 128;
constexpr int kRowGroups = 4;

template <GgmlType kType>
__global__ void matmul_transposed_kernel(DevTensor w, DevTensor x, DevTensor y) {
  __shared__ float partial[kRowGroups][kTransposedCols];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kTransposedCols + threadIdx.x;
  const int group = threadIdx.y;
  const int64_t h = blockIdx.y, t = blockIdx.z, rows = w.ne1;
  const int64_t per_group = (rows + kRowGroups - 1) / kRowGroups;
  const int64_t r0 = group * per_group, r1 = min(rows, r0 + per_group);
  const float* xv = x.row_as<const float>(h, t);
  float acc = 0.0f;
  if (c < w.ne0) {
    const GgmlType type = kType == kAnyType ? w.type : kType;
    for (int64_t r = r0; r < r1; ++r) {
      acc = fmaf(dequant1(type, reinterpret_cast<const uint8_t*>(w.row(r, h)), c), xv[r], acc);
    }
  }
  partial[group][threadIdx.x] = acc;
  __syncthreads();
  if (group == 0 && c < w.ne0) {
    float sum = partial[0][threadIdx.x];
    for (int g = 1; g < kRowGroups; ++g) sum += partial[g][threadIdx.x];
    y.row_as<float>(h, t)[c] = sum;
  }
}

// Routed experts, step 1: hidden[t][j][r] = silu(gate_e[r] . x_t) * (up_e[r] . x_t), e = ids[t][j].
template <GgmlType kType>
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
  lane_dots<kType, 1>(gate.type, reinterpret_cast<const uint8_t*>(gate.row(r, e)), gate.ne0, xv, 0, 1, &g);
  lane_dots<kType, 1>(up.type, reinterpret_cast<const uint8_t*>(up.row(r, e)), up.ne0, xv, 0, 1, &u);
  g = warp_sum(g);
  u = warp_sum(u);
  if (lane == 0) *h = g / (1.0f + expf(-g)) * u;
}

// Step 2: out[t][r] = sum over j, in j order, of weights[t][j] * (down_e[r] . hidden[t][j]).
template <GgmlType kType>
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
    float d = 0.0f;
    lane_dots<kType, 1>(down.type, reinterpret_cast<const uint8_t*>(down.row(r, e)), n_ff,
                        hidden + (t * k + j) * n_ff, 0, 1, &d);
    total = total + wt[j] * warp_sum(d);
  }
  if (lane == 0) out.row_as<float>(t)[r] = total;
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

}  // namespace

void launch_matmul(const MatmulArgs& a, cudaStream_t stream) {
  if (a.n <= 0 || a.w.ne1 <= 0) return;
  const dim3 grid(blocks_for(a.w.ne1, kWarpsPerBlock), blocks_for(a.n, kTokenTile), static_cast<unsigned>(a.heads));
  with_type(a.w.type, [&]<GgmlType T>() { matmul_kernel<T><<<grid, 32 * kWarpsPerBlock, 0, stream>>>(a); });
}

void launch_matmul_heads_transposed(const DevTensor& w, const DevTensor& x, const DevTensor& y, cudaStream_t stream) {
  if (x.ne2 <= 0) return;
  const dim3 grid(blocks_for(w.ne0, kTransposedCols), static_cast<unsigned>(w.ne2), static_cast<unsigned>(x.ne2));
  const dim3 block(kTransposedCols, kRowGroups);
  with_type(w.type, [&]<GgmlType T>() { matmul_transposed_kernel<T><<<grid, block, 0, stream>>>(w, x, y); });
}

void launch_moe(const ExpertWeights& experts, const DevTensor& x, const DevTensor& ids, const DevTensor& weights,
                const DevTensor& out, float* hidden, int* err, cudaStream_t stream) {
  const int64_t n = x.ne1, k = ids.ne0, n_ff = experts.gate.rows(), n_embd = experts.down.rows();
  if (n <= 0) return;
  const DevTensor gate = dev(experts.gate), up = dev(experts.up), down = dev(experts.down);
  const dim3 grid1(blocks_for(n_ff, kWarpsPerBlock), static_cast<unsigned>(k), static_cast<unsigned>(n));
  with_type(gate.type == up.type ? gate.type : kAnyType, [&]<GgmlType T>() {
    moe_gate_up_kernel<T><<<grid1, 32 * kWarpsPerBlock, 0, stream>>>(gate, up, x, ids, hidden, err);
  });
  const dim3 grid2(blocks_for(n_embd, kWarpsPerBlock), static_cast<unsigned>(n));
  with_type(down.type, [&]<GgmlType T>() {
    moe_down_kernel<T><<<grid2, 32 * kWarpsPerBlock, 0, stream>>>(down, ids, weights, hidden, out);
  });
}

}  // namespace tandem::cuda
