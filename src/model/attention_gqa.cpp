// Grouped-query attention with per-head RMSNorm of queries and keys (Qwen3-MoE).
// The cache holds, per token, the roped keys of all KV heads followed by their values.
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "kernels/cpu/gemm.h"
#include "kernels/ops.h"
#include "model/layers.h"

namespace tandem {

namespace {

class GqaAttention final : public Attention {
 public:
  GqaAttention(const ModelConfig& c, const WeightStore& w, int layer, const RopeTable& rope)
      : c_(c), layer_(layer), rope_(rope) {
    const std::string p = fmt::format("blk.{}.", layer);
    const int64_t n_embd = c.n_embd;
    q_ = w.matrix(p + "attn_q.weight", {n_embd, int64_t{c.n_head} * c.head_dim_k});
    k_ = w.matrix(p + "attn_k.weight", {n_embd, int64_t{c.n_head_kv} * c.head_dim_k});
    v_ = w.matrix(p + "attn_v.weight", {n_embd, int64_t{c.n_head_kv} * c.head_dim_v});
    output_ = w.matrix(p + "attn_output.weight", {int64_t{c.n_head} * c.head_dim_v, n_embd});
    if (w.has(p + "attn_q_norm.weight")) {
      q_norm_ = w.vector(p + "attn_q_norm.weight", c.head_dim_k);
      k_norm_ = w.vector(p + "attn_k_norm.weight", c.head_dim_k);
    }
  }

  void forward(Backend& backend, const float* x, const ForwardBatch& batch, PagedKvCache& cache,
               float* out) override {
    const int64_t n = batch.size(), n_head = c_.n_head, n_kv = c_.n_head_kv;
    const int64_t dk = c_.head_dim_k, dv = c_.head_dim_v, group = n_head / n_kv;
    const auto eps = static_cast<float>(c_.rms_eps);
    std::vector<float> q(static_cast<size_t>(n * n_head * dk));  // [n, n_head, dk]
    std::vector<float> k(static_cast<size_t>(n * n_kv * dk));    // [n, n_kv, dk]
    std::vector<float> v(static_cast<size_t>(n * n_kv * dv));    // [n, n_kv, dv]
    backend.matmul(q_, 0, x, n, q.data());
    backend.matmul(k_, 0, x, n, k.data());
    backend.matmul(v_, 0, x, n, v.data());

    for (int64_t t = 0; t < n; ++t) {
      const int64_t pos = batch.positions[static_cast<size_t>(t)];
      for (int64_t h = 0; h < n_head; ++h) {
        float* qh = q.data() + (t * n_head + h) * dk;
        if (!q_norm_.empty()) rms_norm(qh, q_norm_.data(), qh, dk, eps);
        rope_.apply(qh, pos);
      }
      float* slot = cache.slot(layer_, batch.pages_of(t), pos);
      for (int64_t h = 0; h < n_kv; ++h) {
        float* kh = k.data() + (t * n_kv + h) * dk;
        if (!k_norm_.empty()) rms_norm(kh, k_norm_.data(), kh, dk, eps);
        rope_.apply(kh, pos);
      }
      std::copy(k.data() + t * n_kv * dk, k.data() + (t + 1) * n_kv * dk, slot);
      std::copy(v.data() + t * n_kv * dv, v.data() + (t + 1) * n_kv * dv, slot + n_kv * dk);
    }

    std::vector<float> heads(static_cast<size_t>(n * n_head * dv));  // [n, n_head, dv]
    const auto scale = static_cast<float>(c_.kq_scale);
    backend.parallel_for(n * n_head, [&](int64_t begin, int64_t end) {
      std::vector<float> scores;
      for (int64_t th = begin; th < end; ++th) {
        const int64_t t = th / n_head, h = th % n_head, kvh = h / group;
        const int64_t pos = batch.positions[static_cast<size_t>(t)];
        const auto pages = batch.pages_of(t);
        const float* qh = q.data() + (t * n_head + h) * dk;
        const int64_t n_pos = pos + 1, stride = n_kv * (dk + dv);
        scores.resize(static_cast<size_t>(n_pos));
        cache.for_each_run(layer_, pages, n_pos, [&](int64_t first, const float* slots, int64_t count) {
          cpu::gemm_f32(slots + kvh * dk, stride, count, qh, dk, 1, dk, scores.data() + first, count);
        });
        for (float& s : scores) s *= scale;
        softmax(scores.data(), n_pos);
        float* oh = heads.data() + (t * n_head + h) * dv;
        std::fill(oh, oh + dv, 0.0f);
        cache.for_each_run(layer_, pages, n_pos, [&](int64_t first, const float* slots, int64_t count) {
          for (int64_t j = 0; j < count; ++j) {
            const float wp = scores[static_cast<size_t>(first + j)];
            const float* vp = slots + j * stride + n_kv * dk + kvh * dv;
            for (int64_t i = 0; i < dv; ++i) oh[i] += wp * vp[i];
          }
        });
      }
    });
    backend.matmul(output_, 0, heads.data(), n, out);
  }

 private:
  const ModelConfig& c_;
  int layer_;
  const RopeTable& rope_;
  WeightTensor q_, k_, v_, output_;
  std::vector<float> q_norm_, k_norm_;
};

}  // namespace

std::unique_ptr<Attention> make_gqa_attention(const ModelConfig& config, const WeightStore& weights, int layer,
                                              const RopeTable& rope) {
  return std::make_unique<GqaAttention>(config, weights, layer, rope);
}

int64_t kv_floats_per_token(const ModelConfig& c) {
  if (c.arch == Arch::Deepseek2) return int64_t{c.kv_lora_rank} + c.qk_rope_dim;
  return int64_t{c.n_head_kv} * (c.head_dim_k + c.head_dim_v);
}

}  // namespace tandem
