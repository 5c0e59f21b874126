// Element-wise operations, embedding, rope, the paged KV cache writes, attention and routing.
#include <cfloat>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_dequant.cuh"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/routing_impl.h"

namespace tandem::cuda {
namespace {

constexpr int kThreads = 256;

// (i, r, s) of flat element index idx of a {ne0, ne1, ne2} shape.
struct Index3 {
  int64_t i, r, s;
};
__device__ inline Index3 unflatten(int64_t idx, int64_t ne0, int64_t ne1) {
  const int64_t rs = idx / ne0;
  return {idx % ne0, rs % ne1, rs / ne1};
}
__device__ inline int64_t thread_index() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
int64_t elements(const DevTensor& t) { return t.ne0 * t.ne1 * t.ne2; }

__global__ void embed_kernel(DevTensor table, const int32_t* ids, int64_t n, DevTensor out, int* err) {
  const int64_t idx = thread_index();
  if (idx >= n * table.ne0) return;
  const int64_t c = idx % table.ne0, i = idx / table.ne0;
  const int32_t id = ids[i];
  float* o = out.row_as<float>(i);
  if (id < 0 || id >= table.ne1) {
    raise_error(err, kTokenIdOutOfRange);
    o[c] = 0.0f;
    return;
  }
  o[c] = dequant1(table.type, reinterpret_cast<const uint8_t*>(table.row(id)), c);
}

// A block per row; double partial sums (as the CPU: the mean of squares in double), added by a fixed
// butterfly in each warp and then in warp order: one barrier instead of a shared-memory tree's eight (a
// decode step's norms are latency-bound: 2048 values).
__global__ void rms_norm_kernel(DevTensor x, const float* weight, float eps, DevTensor out) {
  constexpr int kWarps = kThreads / 32;
  __shared__ double partial[kWarps];
  const int64_t r = blockIdx.x, s = blockIdx.y, d = x.ne0;
  const float* xv = x.row_as<const float>(r, s);
  double sum = 0.0;
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < d; i += kThreads) sum += static_cast<double>(xv[i]) * xv[i];
  for (int offset = 16; offset > 0; offset >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = sum;
  __syncthreads();
  double total = partial[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) total += partial[w];
  const auto scale = static_cast<float>(1.0 / sqrt(total / static_cast<double>(d) + eps));
  float* o = out.row_as<float>(r, s);
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < d; i += kThreads) o[i] = xv[i] * scale * weight[i];
}

__global__ void add_kernel(DevTensor a, DevTensor b, DevTensor out) {
  const int64_t idx = thread_index();
  if (idx >= a.ne0 * a.ne1 * a.ne2) return;
  const Index3 p = unflatten(idx, a.ne0, a.ne1);
  out.row_as<float>(p.r, p.s)[p.i] = a.row_as<const float>(p.r, p.s)[p.i] + b.row_as<const float>(p.r, p.s)[p.i];
}

__global__ void swiglu_kernel(DevTensor gate, DevTensor up, DevTensor out) {
  const int64_t idx = thread_index();
  if (idx >= gate.ne0 * gate.ne1 * gate.ne2) return;
  const Index3 p = unflatten(idx, gate.ne0, gate.ne1);
  const float g = gate.row_as<const float>(p.r, p.s)[p.i];
  out.row_as<float>(p.r, p.s)[p.i] = g / (1.0f + expf(-g)) * up.row_as<const float>(p.r, p.s)[p.i];
}

// Rows of row_bytes bytes: 4-byte words when everything is 4-byte aligned, else bytes.
template <typename Word>
__global__ void copy_rows_kernel(DevTensor src, DevTensor dst, int64_t words_per_row) {
  const int64_t idx = thread_index();
  if (idx >= words_per_row * src.ne1 * src.ne2) return;
  const Index3 p = unflatten(idx, words_per_row, src.ne1);
  reinterpret_cast<Word*>(dst.row(p.r, p.s))[p.i] = reinterpret_cast<const Word*>(src.row(p.r, p.s))[p.i];
}

template <typename Word>
__global__ void gather_rows_kernel(DevTensor x, const int32_t* rows, int64_t m, DevTensor out, int64_t words_per_row,
                                   int* err) {
  const int64_t idx = thread_index();
  if (idx >= words_per_row * m) return;
  const int64_t w = idx % words_per_row, i = idx / words_per_row;
  const int32_t r = rows[i];
  if (r < 0 || r >= x.ne1) {
    raise_error(err, kRowOutOfRange);
    return;
  }
  reinterpret_cast<Word*>(out.row(i))[w] = reinterpret_cast<const Word*>(x.row(r))[w];
}

__global__ void rope_kernel(DevTensor x, const int32_t* positions, const float* inv_freq, int half, bool adjacent,
                            float attention_factor) {
  const int64_t idx = thread_index();
  if (idx >= half * x.ne1 * x.ne2) return;
  const Index3 p = unflatten(idx, half, x.ne1);
  float* v = x.row_as<float>(p.r, p.s);
  const auto pos = static_cast<float>(positions[p.s]);
  const float angle = pos * inv_freq[p.i];
  const float c = cosf(angle) * attention_factor, s = sinf(angle) * attention_factor;
  float* a = adjacent ? v + 2 * p.i : v + p.i;
  float* b = adjacent ? v + 2 * p.i + 1 : v + p.i + half;
  const float x0 = *a, x1 = *b;
  *a = x0 * c - x1 * s;
  *b = x1 * c + x0 * s;
}

// The cache slot of position pos of sequence seq, or -1 when the page table does not cover it.
__device__ inline int64_t slot_of(const DevPaged& b, int32_t seq, int32_t pos) {
  const int32_t first = b.page_table_start[seq], end = b.page_table_start[seq + 1];
  const int64_t page_index = first + pos / b.page_size;
  if (pos < 0 || page_index >= end) return -1;
  const int64_t slot = static_cast<int64_t>(b.page_table[page_index]) * b.page_size + pos % b.page_size;
  return slot >= 0 && slot < b.n_slots ? slot : -1;
}

__global__ void store_kv_kernel(DevTensor src, DevTensor cache, int64_t col_offset, DevPaged b, int* err) {
  const int64_t idx = thread_index();
  if (idx >= src.ne0 * b.n_tokens) return;
  const int64_t c = idx % src.ne0, t = idx / src.ne0;
  const int64_t slot = slot_of(b, b.seq_of_token[t], b.positions[t]);
  if (slot < 0) {
    raise_error(err, kPageOutOfRange);
    return;
  }
  cache.row_as<float>(slot)[col_offset + c] = src.row_as<const float>(t)[c];
}

// Attention of kHeads heads of one token per block of kAttnWarps warps; the heads share one KV head, so each
// key and value row is read once for all of them (MLA's latent cache: every head reads the same rows).
// Warp w takes positions w, w + kAttnWarps, ... in order; a lane holds key and value dimensions lane + 32 j.
// Two passes over the span (the maximum score, then the exponentials and the weighted values), recomputing
// each score identically, so no score buffer is needed whatever the context; the warps' partial sums are
// added in warp order at the end. A head's result is the same bits whatever kHeads: its own chains only.
constexpr int kAttnWarps = 8;

template <int kPerLane, int kHeads>
__global__ void __launch_bounds__(32 * kAttnWarps)
    attention_kernel(DevTensor q, DevTensor cache, KvLayout layout, DevPaged b, float scale, DevTensor out, int* err) {
  __shared__ float partial[kAttnWarps][kPerLane * 32];
  __shared__ float warp_value[kHeads][kAttnWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t h0 = static_cast<int64_t>(blockIdx.x) * kHeads, t = blockIdx.y;
  const int64_t kvh = h0 / (q.ne1 / layout.n_kv_heads);
  const int32_t seq = b.seq_of_token[t], n_pos = b.positions[t] + 1;
  // Every page of the span must be in the table and the cache (checked by all threads, block-uniform result).
  bool bad = false;
  for (int32_t p = threadIdx.x * b.page_size; p < n_pos; p += kAttnWarps * 32 * b.page_size) bad |= slot_of(b, seq, p) < 0;
  if (__syncthreads_or(bad) || n_pos <= 0) {
    if (threadIdx.x == 0) raise_error(err, kPageOutOfRange);
    for (int hh = 0; hh < kHeads; ++hh) {
      float* o = out.row_as<float>(h0 + hh, t);
      for (int64_t d = threadIdx.x; d < layout.value_dim; d += blockDim.x) o[d] = 0.0f;
    }
    return;
  }
  float qreg[kHeads][kPerLane];
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
    const float* qv = q.row_as<const float>(h0 + hh, t);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int64_t d = lane + 32 * j;
      qreg[hh][j] = d < layout.key_dim ? qv[d] : 0.0f;
    }
  }
  const int64_t key_at = layout.key_offset + kvh * layout.key_head_stride;
  const int64_t value_at = layout.value_offset + kvh * layout.value_head_stride;
  // s[hh] = scale * (q_hh . key_p), each head's own fmaf chain over the lane's dimensions, then warp_sum.
  auto scores = [&](int32_t p, const float*& slot, float (&s)[kHeads]) {
    slot = cache.row_as<const float>(slot_of(b, seq, p));
    const float* k = slot + key_at;
#pragma unroll
    for (int hh = 0; hh < kHeads; ++hh) s[hh] = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int64_t d = lane + 32 * j;
      if (d < layout.key_dim) {
        const float kd = k[d];
#pragma unroll
        for (int hh = 0; hh < kHeads; ++hh) s[hh] = fmaf(qreg[hh][j], kd, s[hh]);
      }
    }
#pragma unroll
    for (int hh = 0; hh < kHeads; ++hh) s[hh] = warp_sum(s[hh]) * scale;
  };

  // A warp takes kUnroll of its positions at a time: their scores are independent (more loads in flight, the
  // point for a decode token's short spans), and they are used in position order, so the same bits.
  constexpr int kUnroll = kHeads == 1 ? 4 : 1;
  float m[kHeads];
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) m[hh] = -FLT_MAX;
  for (int32_t p0 = warp; p0 < n_pos; p0 += kUnroll * kAttnWarps) {
    const float* slot[kUnroll];
    float s[kUnroll][kHeads];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) scores(min(p0 + u * kAttnWarps, n_pos - 1), slot[u], s[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (p0 + u * kAttnWarps < n_pos) {
#pragma unroll
        for (int hh = 0; hh < kHeads; ++hh) m[hh] = fmaxf(m[hh], s[u][hh]);
      }
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int hh = 0; hh < kHeads; ++hh) warp_value[hh][warp] = m[hh];
  }
  __syncthreads();
  float mx[kHeads];
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
    mx[hh] = warp_value[hh][0];
    for (int w = 1; w < kAttnWarps; ++w) mx[hh] = fmaxf(mx[hh], warp_value[hh][w]);
  }
  __syncthreads();

  float sum[kHeads], acc[kHeads][kPerLane];
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
    sum[hh] = 0.0f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) acc[hh][j] = 0.0f;
  }
  for (int32_t p0 = warp; p0 < n_pos; p0 += kUnroll * kAttnWarps) {
    const float* slot[kUnroll];
    float s[kUnroll][kHeads];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) scores(min(p0 + u * kAttnWarps, n_pos - 1), slot[u], s[u]);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      if (p0 + u * kAttnWarps >= n_pos) break;
      float e[kHeads];
#pragma unroll
      for (int hh = 0; hh < kHeads; ++hh) {
        e[hh] = expf(s[u][hh] - mx[hh]);
        sum[hh] += e[hh];
      }
      const float* v = slot[u] + value_at;
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        const int64_t d = lane + 32 * j;
        if (d < layout.value_dim) {
          const float vd = v[d];
#pragma unroll
          for (int hh = 0; hh < kHeads; ++hh) acc[hh][j] = fmaf(e[hh], vd, acc[hh][j]);
        }
      }
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int hh = 0; hh < kHeads; ++hh) warp_value[hh][warp] = sum[hh];
  }
  // One head at a time through the shared partial sums.
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) partial[warp][lane + 32 * j] = acc[hh][j];
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) total += warp_value[hh][w];
    float* o = out.row_as<float>(h0 + hh, t);
    for (int64_t d = threadIdx.x; d < layout.value_dim; d += blockDim.x) {
      float v = 0.0f;
      for (int w = 0; w < kAttnWarps; ++w) v += partial[w][d];
      o[d] = v / total;
    }
    __syncthreads();
  }
}

// Routing: a warp per token computing exactly what the serial reference (routing_impl.h) computes. The
// element-wise steps (exponentials, sigmoid, bias, masks) are spread over the lanes; the sums whose order
// matters (the softmax's double sum, a group's top-2 sum, the selected weights' sum) run serially on one
// lane in the reference's order; top-k is k rounds of a warp arg-max under routing_detail::ranks_before, a
// strict total order, so each round picks the element the serial scan picks.
// The k best indices of v[0..n), best first, into out (written by lane 0); taken: n flags.
__device__ inline void warp_top_k(const float* v, int n, int k, int32_t* out, bool* taken) {
  const int lane = threadIdx.x & 31;
  for (int i = lane; i < n; i += 32) taken[i] = false;
  __syncwarp();
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int i = lane; i < n; i += 32) {
      if (!taken[i] && (best < 0 || routing_detail::ranks_before(v, i, best))) best = i;
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
      const int other = __shfl_xor_sync(0xffffffffu, best, offset);
      if (other >= 0 && (best < 0 || routing_detail::ranks_before(v, other, best))) best = other;
    }
    if (lane == 0) {
      out[j] = best;
      taken[best] = true;
    }
    __syncwarp();
  }
}

// The best (and, with two, second best) member of a group under ranks_before: top_k(members, n, 1 or 2).
__device__ inline float group_top2_sum(const float* members, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) best = routing_detail::ranks_before(members, i, best) ? i : best;
  float sum = 0.0f + members[best];
  if (n < 2) return sum;
  int second = -1;
  for (int i = 0; i < n; ++i) {
    if (i != best && (second < 0 || routing_detail::ranks_before(members, i, second))) second = i;
  }
  return sum + members[second];
}

__global__ void route_kernel(DevTensor logits_t, const float* bias, RouterConfig c, DevTensor ids_t, DevTensor weights_t) {
  __shared__ routing_detail::RoutingScratch s;  // the reference's state, in shared memory
  const int lane = threadIdx.x;
  const int64_t t = blockIdx.x;
  const float* logits = logits_t.row_as<const float>(t);
  int32_t* expert_ids = ids_t.row_as<int32_t>(t);
  float* expert_weights = weights_t.row_as<float>(t);
  const int n = c.n_experts;
  if (c.scoring == ScoringFunc::Softmax) {
    float mx = logits[0];
    for (int e = lane; e < n; e += 32) mx = logits[e] > mx ? logits[e] : mx;
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, mx, offset);
      mx = other > mx ? other : mx;
    }
    for (int e = lane; e < n; e += 32) s.scores[e] = expf(logits[e] - mx);
    __syncwarp();
    float inv = 0.0f;
    if (lane == 0) {
      double sum = 0.0;  // in expert order, as the reference
#pragma unroll 8
      for (int e = 0; e < n; ++e) sum += s.scores[e];
      inv = static_cast<float>(1.0 / sum);
    }
    inv = __shfl_sync(0xffffffffu, inv, 0);
    for (int e = lane; e < n; e += 32) s.scores[e] *= inv;
  } else {
    for (int e = lane; e < n; e += 32) s.scores[e] = 1.0f / (1.0f + expf(-logits[e]));
  }
  for (int e = lane; e < n; e += 32) {
    s.choice[e] = s.scores[e];
    if (c.topk_method == TopkMethod::NoauxTc && bias) s.choice[e] += bias[e];
  }
  __syncwarp();
  if (c.topk_method != TopkMethod::Greedy && c.n_group > 1) {
    const int per_group = n / c.n_group;
    for (int g = lane; g < c.n_group; g += 32) {
      const float* members = s.choice + g * per_group;
      if (c.topk_method == TopkMethod::NoauxTc) {
        s.group_score[g] = group_top2_sum(members, per_group);
      } else {
        float mx = members[0];
        for (int i = 1; i < per_group; ++i) mx = members[i] > mx ? members[i] : mx;
        s.group_score[g] = mx;
      }
    }
    __syncwarp();
    warp_top_k(s.group_score, c.n_group, c.topk_group, s.kept, s.taken);
    for (int g = lane; g < c.n_group; g += 32) s.keep[g] = false;
    __syncwarp();
    if (lane == 0) {
      for (int j = 0; j < c.topk_group; ++j) s.keep[s.kept[j]] = true;
    }
    __syncwarp();
    for (int e = lane; e < n; e += 32) {
      if (!s.keep[e / per_group]) s.choice[e] = 0.0f;
    }
    __syncwarp();
  }
  // The picks stay in shared memory until the end: lane 0's reads of them would otherwise each wait for a
  // global round trip.
  __shared__ int32_t picked[kMaxExperts];
  warp_top_k(s.choice, n, c.n_experts_used, picked, s.taken);
  if (lane == 0) {
    float sum = 0.0f;
    for (int j = 0; j < c.n_experts_used; ++j) sum += s.scores[picked[j]];
    const float norm = c.norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
    for (int j = 0; j < c.n_experts_used; ++j) {
      expert_ids[j] = picked[j];
      expert_weights[j] = s.scores[picked[j]] * norm * static_cast<float>(c.routed_scaling_factor);
    }
  }
}

}  // namespace

void launch_embed(const DevTensor& table, const int32_t* ids, int64_t n, const DevTensor& out, int* err, cudaStream_t stream) {
  if (n * table.ne0 == 0) return;
  embed_kernel<<<blocks_for(n * table.ne0, kThreads), kThreads, 0, stream>>>(table, ids, n, out, err);
}

void launch_rms_norm(const DevTensor& x, const float* weight, float eps, const DevTensor& out, cudaStream_t stream) {
  if (x.ne1 * x.ne2 == 0) return;
  rms_norm_kernel<<<dim3(static_cast<unsigned>(x.ne1), static_cast<unsigned>(x.ne2)), kThreads, 0, stream>>>(x, weight, eps, out);
}

void launch_add(const DevTensor& a, const DevTensor& b, const DevTensor& out, cudaStream_t stream) {
  if (elements(a) == 0) return;
  add_kernel<<<blocks_for(elements(a), kThreads), kThreads, 0, stream>>>(a, b, out);
}

void launch_swiglu(const DevTensor& gate, const DevTensor& up, const DevTensor& out, cudaStream_t stream) {
  if (elements(gate) == 0) return;
  swiglu_kernel<<<blocks_for(elements(gate), kThreads), kThreads, 0, stream>>>(gate, up, out);
}

namespace {
bool word_aligned(const DevTensor& t, size_t row_bytes) {
  return row_bytes % 4 == 0 && reinterpret_cast<uintptr_t>(t.data) % 4 == 0 && t.nb1 % 4 == 0 && t.nb2 % 4 == 0;
}
}  // namespace

void launch_copy(const DevTensor& src, const DevTensor& dst, cudaStream_t stream) {
  const size_t row_bytes = ggml_row_size(src.type, src.ne0);
  if (row_bytes == 0 || src.ne1 * src.ne2 == 0) return;
  if (word_aligned(src, row_bytes) && word_aligned(dst, row_bytes)) {
    const auto words = static_cast<int64_t>(row_bytes / 4);
    copy_rows_kernel<uint32_t><<<blocks_for(words * src.ne1 * src.ne2, kThreads), kThreads, 0, stream>>>(src, dst, words);
  } else {
    const auto bytes = static_cast<int64_t>(row_bytes);
    copy_rows_kernel<uint8_t><<<blocks_for(bytes * src.ne1 * src.ne2, kThreads), kThreads, 0, stream>>>(src, dst, bytes);
  }
}

void launch_gather_rows(const DevTensor& x, const int32_t* rows, int64_t m, const DevTensor& out, int* err,
                        cudaStream_t stream) {
  const size_t row_bytes = ggml_row_size(x.type, x.ne0);
  if (row_bytes == 0 || m == 0) return;
  if (word_aligned(x, row_bytes) && word_aligned(out, row_bytes)) {
    const auto words = static_cast<int64_t>(row_bytes / 4);
    gather_rows_kernel<uint32_t><<<blocks_for(words * m, kThreads), kThreads, 0, stream>>>(x, rows, m, out, words, err);
  } else {
    const auto bytes = static_cast<int64_t>(row_bytes);
    gather_rows_kernel<uint8_t><<<blocks_for(bytes * m, kThreads), kThreads, 0, stream>>>(x, rows, m, out, bytes, err);
  }
}

void launch_rope(const DevTensor& x, const int32_t* positions, const float* inv_freq, int n_dims, bool adjacent_pairs,
                 float attention_factor, cudaStream_t stream) {
  const int half = n_dims / 2;
  const int64_t n = half * x.ne1 * x.ne2;
  if (n == 0) return;
  rope_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(x, positions, inv_freq, half, adjacent_pairs, attention_factor);
}

void launch_store_kv(const DevTensor& src, const DevTensor& cache, int64_t col_offset, const DevPaged& batch, int* err,
                     cudaStream_t stream) {
  if (src.ne0 * batch.n_tokens == 0) return;
  store_kv_kernel<<<blocks_for(src.ne0 * batch.n_tokens, kThreads), kThreads, 0, stream>>>(src, cache, col_offset, batch, err);
}

// Heads per block: as many as share a KV head, up to what the registers hold (query and accumulator
// kHeads x kPerLane each), when the batch has enough tokens to fill the GPU that way; one otherwise (a few
// decode tokens need every block they can get). Each head's result is the same either way.
template <int kPerLane, int kMaxHeads>
void launch_attention_heads(int64_t heads_per_kv, const DevTensor& q, const DevTensor& cache, const KvLayout& layout,
                            const DevPaged& batch, float scale, const DevTensor& out, int* err, cudaStream_t stream) {
  constexpr int64_t kGroupFromTokens = 32;
  const int threads = 32 * kAttnWarps;
  const int64_t heads = q.ne1;
  const int64_t group = batch.n_tokens < kGroupFromTokens ? 1
                        : kMaxHeads >= 4 && heads_per_kv % 4 == 0 ? 4
                        : kMaxHeads >= 2 && heads_per_kv % 2 == 0 ? 2
                                                                   : 1;
  const dim3 grid(static_cast<unsigned>(heads / group), static_cast<unsigned>(batch.n_tokens));
  if (group == 4) {
    attention_kernel<kPerLane, (kMaxHeads >= 4 ? 4 : 1)><<<grid, threads, 0, stream>>>(q, cache, layout, batch, scale, out, err);
  } else if (group == 2) {
    attention_kernel<kPerLane, (kMaxHeads >= 2 ? 2 : 1)><<<grid, threads, 0, stream>>>(q, cache, layout, batch, scale, out, err);
  } else {
    attention_kernel<kPerLane, 1><<<grid, threads, 0, stream>>>(q, cache, layout, batch, scale, out, err);
  }
}

bool launch_attention(const DevTensor& q, const DevTensor& cache, const KvLayout& layout, const DevPaged& batch,
                      float scale, const DevTensor& out, int* err, cudaStream_t stream) {
  const int64_t per_lane = (std::max(layout.key_dim, layout.value_dim) + 31) / 32;
  if (batch.n_tokens == 0) return true;
  const int64_t heads_per_kv = layout.n_kv_heads > 0 && q.ne1 % layout.n_kv_heads == 0 ? q.ne1 / layout.n_kv_heads : 1;
  if (per_lane <= 4) {
    launch_attention_heads<4, 4>(heads_per_kv, q, cache, layout, batch, scale, out, err, stream);
  } else if (per_lane <= 8) {
    launch_attention_heads<8, 4>(heads_per_kv, q, cache, layout, batch, scale, out, err, stream);
  } else if (per_lane <= 16) {
    launch_attention_heads<16, 4>(heads_per_kv, q, cache, layout, batch, scale, out, err, stream);
  } else if (per_lane <= 18) {
    launch_attention_heads<18, 4>(heads_per_kv, q, cache, layout, batch, scale, out, err, stream);
  } else if (per_lane <= 24) {
    launch_attention_heads<24, 2>(heads_per_kv, q, cache, layout, batch, scale, out, err, stream);
  } else if (per_lane <= 32) {
    launch_attention_heads<32, 2>(heads_per_kv, q, cache, layout, batch, scale, out, err, stream);
  } else {
    return false;
  }
  return true;
}

void launch_route(const DevTensor& logits, const float* bias, const RouterConfig& config, const DevTensor& ids,
                  const DevTensor& weights, cudaStream_t stream) {
  if (logits.ne1 == 0) return;
  route_kernel<<<static_cast<unsigned>(logits.ne1), 32, 0, stream>>>(logits, bias, config, ids, weights);
}

const char* device_error_message(int code) {
  switch (code) {
    case kTokenIdOutOfRange: return "a token id is out of the vocabulary's range";
    case kRowOutOfRange: return "a gathered row index is out of range";
    case kPageOutOfRange: return "a position's page is missing from the page table or outside the cache";
    case kExpertIdOutOfRange: return "an expert id is out of range";
    default: return "unknown device error";
  }
}

}  // namespace tandem::cuda
