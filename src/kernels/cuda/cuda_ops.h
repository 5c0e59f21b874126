// Internal to src/kernels/cuda: the kernel launchers behind CudaBackend's operations. Each queues its kernels
// on `stream` and returns; shapes were checked by the caller. `err` is the device error flag
// (cuda_common.cuh). Shapes follow backend.h.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_tensor.h"

namespace tandem::cuda {

// y[h][t][r] = sum_c w[h][r][c] x[h][t][c] over heads h (w's slice stride w_head_bytes; 0 and one head
// for a plain matmul). x: token stride / head stride in floats, likewise y.
struct MatmulArgs {
  DevTensor w;  // {cols, rows, heads}: rows and cols used, data at the first head
  int64_t w_head_bytes = 0;
  int64_t heads = 1, n = 0;
  const float* x = nullptr;
  int64_t x_token_stride = 0, x_head_stride = 0;
  float* y = nullptr;
  int64_t y_token_stride = 0, y_head_stride = 0;
};
void launch_matmul(const MatmulArgs& a, cudaStream_t stream);
// y[t][h][c] = sum_r w[h][r][c] x[t][h][r].   w: {cols, rows, heads}; x: {rows, heads, n}; y: {cols, heads, n}
void launch_matmul_heads_transposed(const DevTensor& w, const DevTensor& x, const DevTensor& y, cudaStream_t stream);

void launch_embed(const DevTensor& table, const int32_t* ids, int64_t n, const DevTensor& out, int* err, cudaStream_t stream);
void launch_rms_norm(const DevTensor& x, const float* weight, float eps, const DevTensor& out, cudaStream_t stream);
void launch_add(const DevTensor& a, const DevTensor& b, const DevTensor& out, cudaStream_t stream);
void launch_swiglu(const DevTensor& gate, const DevTensor& up, const DevTensor& out, cudaStream_t stream);
void launch_copy(const DevTensor& src, const DevTensor& dst, cudaStream_t stream);
void launch_gather_rows(const DevTensor& x, const int32_t* rows, int64_t m, const DevTensor& out, int* err,
                        cudaStream_t stream);
void launch_rope(const DevTensor& x, const int32_t* positions, const float* inv_freq, int n_dims, bool adjacent_pairs,
                 float attention_factor, cudaStream_t stream);

// Where a step's tokens are in the paged cache (device pointers of PagedBatch).
struct DevPaged {
  const int32_t* positions;
  const int32_t* seq_of_token;
  const int32_t* page_table_start;
  const int32_t* page_table;
  int page_size;
  int64_t n_tokens;
  int64_t n_slots;  // rows of the cache tensor
};
void launch_store_kv(const DevTensor& src, const DevTensor& cache, int64_t col_offset, const DevPaged& batch, int* err,
                     cudaStream_t stream);
// false when the head sizes exceed what the kernel keeps in registers (keys and values of up to 1024).
bool launch_attention(const DevTensor& q, const DevTensor& cache, const KvLayout& layout, const DevPaged& batch,
                      float scale, const DevTensor& out, int* err, cudaStream_t stream);
void launch_route(const DevTensor& logits, const float* bias, const RouterConfig& config, const DevTensor& ids,
                  const DevTensor& weights, cudaStream_t stream);
// moe()'s device scratch, sized for the largest step (n tokens x k experts per token).
struct MoeScratch {
  float* hidden = nullptr;    // [n * k, n_ff]
  float* down_out = nullptr;  // [n * k, n_embd] (grouped path)
  int32_t* slots = nullptr;   // [n * k]: pairs t * k + j sorted by expert (grouped path)
  int32_t* tiles = nullptr;   // [moe_max_tiles(n, k, n_experts), 3]: expert, first sorted pair, pairs
  int32_t* n_tiles = nullptr; // [1]
};
// Whether a step of n_tokens is worth running grouped by expert (else per slot; both give the same bits).
bool moe_uses_grouped(int64_t n_tokens, int64_t k, int64_t n_experts);
int64_t moe_max_tiles(int64_t n_tokens, int64_t k, int64_t n_experts);
// grouped: sort the pairs by expert (needs gate and up of one type, scratch.tiles sized for the experts).
void launch_moe(const ExpertWeights& experts, const DevTensor& x, const DevTensor& ids, const DevTensor& weights,
                const DevTensor& out, const MoeScratch& scratch, bool grouped, int* err, cudaStream_t stream);

}  // namespace tandem::cuda
