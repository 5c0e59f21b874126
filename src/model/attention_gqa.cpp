// Grouped-query attention with per-head RMSNorm of queries and keys (Qwen3-MoE).
// The cache holds, per token, the roped keys of all KV heads followed by their values.
#include "model/layers.h"

namespace tandem {

namespace {

class GqaAttention final : public Attention {
 public:
  GqaAttention(const ModelConfig& c, WeightLoader& w, int layer) : c_(c) {
    const int64_t n_embd = c.n_embd;
    q_ = w.matrix(TensorKind::AttnQ, layer, {n_embd, int64_t{c.n_head} * c.head_dim_k});
    k_ = w.matrix(TensorKind::AttnK, layer, {n_embd, int64_t{c.n_head_kv} * c.head_dim_k});
    v_ = w.matrix(TensorKind::AttnV, layer, {n_embd, int64_t{c.n_head_kv} * c.head_dim_v});
    output_ = w.matrix(TensorKind::AttnOutput, layer, {int64_t{c.n_head} * c.head_dim_v, n_embd});
    if (w.has(TensorKind::AttnQNorm, layer)) {
      q_norm_ = w.vector(TensorKind::AttnQNorm, layer, c.head_dim_k);
      k_norm_ = w.vector(TensorKind::AttnKNorm, layer, c.head_dim_k);
    }
  }

  void forward(LayerStep& s, const Tensor& cache, const Tensor& x, const Tensor& out) override {
    Backend& b = s.backend;
    const int64_t n = s.n, n_head = c_.n_head, n_kv = c_.n_head_kv, dk = c_.head_dim_k, dv = c_.head_dim_v;
    const auto eps = static_cast<float>(c_.rms_eps);
    const Tensor q = s.buffers.q.row_range(0, n);  // {n_head * dk, n}
    const Tensor k = s.buffers.k.row_range(0, n);  // {n_kv * dk, n}
    const Tensor v = s.buffers.v.row_range(0, n);  // {n_kv * dv, n}
    b.matmul(q_, 0, x, q);
    b.matmul(k_, 0, x, k);
    b.matmul(v_, 0, x, v);
    if (q_norm_.valid()) {
      b.rms_norm(q.heads(n_head), q_norm_, eps, q.heads(n_head));
      b.rms_norm(k.heads(n_kv), k_norm_, eps, k.heads(n_kv));
    }
    b.rope(q.heads(n_head), s.batch.positions, s.rope);
    b.rope(k.heads(n_kv), s.batch.positions, s.rope);
    b.store_kv(k, cache, 0, s.batch);
    b.store_kv(v, cache, n_kv * dk, s.batch);

    const KvLayout layout{.n_kv_heads = n_kv, .key_offset = 0, .key_head_stride = dk, .key_dim = dk,
                          .value_offset = n_kv * dk, .value_head_stride = dv, .value_dim = dv};
    const Tensor heads = s.buffers.heads.row_range(0, n);  // {n_head * dv, n}
    b.attention(q.heads(n_head), cache, layout, s.batch, static_cast<float>(c_.kq_scale), heads.heads(n_head));
    b.matmul(output_, 0, heads, out);
  }

 private:
  const ModelConfig& c_;
  Tensor q_, k_, v_, output_;
  Tensor q_norm_, k_norm_;
};

}  // namespace

std::unique_ptr<Attention> make_gqa_attention(const ModelConfig& config, WeightLoader& weights, int layer) {
  return std::make_unique<GqaAttention>(config, weights, layer);
}

int64_t kv_slot_width(const ModelConfig& c) {
  if (c.arch == Arch::Deepseek2) return int64_t{c.kv_lora_rank} + c.qk_rope_dim;
  return int64_t{c.n_head_kv} * (c.head_dim_k + c.head_dim_v);
}

}  // namespace tandem
