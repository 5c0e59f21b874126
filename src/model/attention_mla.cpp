// Multi-head latent attention (DeepSeek-V2/V3).
//
// Per token the cache holds c (the kv_lora_rank latent, RMS-normalized) and k_pe (the rope key shared by
// all heads). Rather than expanding c into per-head keys and values for every cached position, the key
// up-projection is absorbed into the query (q_lat = W_UK^T q_nope) and the value up-projection applied
// once to the attention-weighted latent (v = W_UV o_lat). Every token, prefill or decode, takes this same
// path, so a token's result does not depend on how its prompt was chunked.
#include <fmt/format.h>

#include "model/layers.h"

namespace tandem {

namespace {

class MlaAttention final : public Attention {
 public:
  MlaAttention(const ModelConfig& c, WeightLoader& w, int layer) : c_(c) {
    const int64_t n_embd = c.n_embd, qk = c.head_dim_k, n_head = c.n_head, lora = c.kv_lora_rank;
    if (c.q_lora_rank > 0) {
      q_a_ = w.matrix(TensorKind::AttnQA, layer, {n_embd, c.q_lora_rank});
      q_a_norm_ = w.vector(TensorKind::AttnQANorm, layer, c.q_lora_rank);
      q_b_ = w.matrix(TensorKind::AttnQB, layer, {c.q_lora_rank, n_head * qk});
    } else {
      q_ = w.matrix(TensorKind::AttnQ, layer, {n_embd, n_head * qk});
    }
    kv_a_ = w.matrix(TensorKind::AttnKvAMqa, layer, {n_embd, lora + c.qk_rope_dim});
    kv_a_norm_ = w.vector(TensorKind::AttnKvANorm, layer, lora);
    output_ = w.matrix(TensorKind::AttnOutput, layer, {n_head * c.head_dim_v, n_embd});
    load_up_projections(w, layer);
  }

  void forward(LayerStep& s, const Tensor& cache, const Tensor& x, const Tensor& out) override {
    Backend& b = s.backend;
    StepBuffers& ws = s.buffers;
    const int64_t n = s.n, n_head = c_.n_head, nope = c_.qk_nope_dim, rope = c_.qk_rope_dim;
    const int64_t lora = c_.kv_lora_rank, width = lora + rope;
    const auto eps = static_cast<float>(c_.rms_eps);

    const Tensor q = ws.q.row_range(0, n);  // {n_head * qk, n}
    if (q_b_.valid()) {
      const Tensor qa = ws.q_lora.row_range(0, n);  // {q_lora_rank, n}
      b.matmul(q_a_, 0, x, qa);
      b.rms_norm(qa, q_a_norm_, eps, qa);
      b.matmul(q_b_, 0, qa, q);
    } else {
      b.matmul(q_, 0, x, q);
    }

    // This step's cache rows: [RMSNorm(c) | roped k_pe].
    const Tensor kv = ws.kv.row_range(0, n);  // {width, n}
    b.matmul(kv_a_, 0, x, kv);
    b.rms_norm(kv.col_range(0, lora), kv_a_norm_, eps, kv.col_range(0, lora));
    b.rope(kv.col_range(lora, rope).heads(1), s.batch.positions, s.rope);
    b.store_kv(kv, cache, 0, s.batch);

    // Queries in latent space: [q_lat = W_UK^T q_nope | roped q_pe] per token and head.
    const Tensor q_heads = q.heads(n_head);                         // {qk, n_head, n}
    const Tensor q_latent = ws.q_latent.row_range(0, n).heads(n_head);  // {width, n_head, n}
    b.matmul_heads(w_uk_t_, q_heads.col_range(0, nope), q_latent.col_range(0, lora));
    b.copy(q_heads.col_range(nope, rope), q_latent.col_range(lora, rope));
    b.rope(q_latent.col_range(lora, rope), s.batch.positions, s.rope);

    // o_lat = softmax(scale * q_latent . slot) . c over each token's cached positions.
    const KvLayout layout{.n_kv_heads = 1, .key_offset = 0, .key_head_stride = 0, .key_dim = width,
                          .value_offset = 0, .value_head_stride = 0, .value_dim = lora};
    const Tensor o_latent = ws.o_latent.row_range(0, n).heads(n_head);  // {lora, n_head, n}
    b.attention(q_latent, cache, layout, s.batch, static_cast<float>(c_.kq_scale), o_latent);

    // v = W_UV[h] o_lat per head, then the output projection.
    const Tensor heads = ws.heads.row_range(0, n);  // {n_head * vdim, n}
    b.matmul_heads(w_uv_, o_latent, heads.heads(n_head));
    b.matmul(output_, 0, heads, out);
  }

 private:
  // W_UK^T {nope, lora, n_head} and W_UV {lora, vdim, n_head} in float32, from attn_kv_b (rows per head:
  // nope key rows then vdim value rows) or, in files that only carry them, from the split attn_k_b / attn_v_b.
  void load_up_projections(WeightLoader& w, int layer) {
    const int64_t n_head = c_.n_head, nope = c_.qk_nope_dim, vdim = c_.head_dim_v, lora = c_.kv_lora_rank;
    std::vector<float> uk_t(static_cast<size_t>(n_head * lora * nope)), uv(static_cast<size_t>(n_head * vdim * lora));
    if (w.has(TensorKind::AttnKvB, layer)) {
      const std::vector<float> kv_b = w.host_values(TensorKind::AttnKvB, layer, {lora, n_head * (nope + vdim)});
      for (int64_t h = 0; h < n_head; ++h) {
        const float* head = kv_b.data() + h * (nope + vdim) * lora;  // [nope + vdim, lora]
        for (int64_t j = 0; j < nope; ++j) {
          for (int64_t i = 0; i < lora; ++i) uk_t[static_cast<size_t>((h * lora + i) * nope + j)] = head[j * lora + i];
        }
        std::copy(head + nope * lora, head + (nope + vdim) * lora, uv.data() + h * vdim * lora);
      }
    } else {
      // Split layout (MLA-native converters): k_b holds W_UK transposed per head, ne = [nope, lora, n_head]
      // (ik_llama.cpp writes it 2-D as [nope, n_head * lora], the same bytes); v_b holds W_UV as
      // ne = [lora, vdim, n_head] (or 2-D [lora, n_head * vdim]).
      const auto k_dims = w.dims(TensorKind::AttnKB, layer).size() == 2 ? std::vector<int64_t>{nope, n_head * lora}
                                                                        : std::vector<int64_t>{nope, lora, n_head};
      const auto v_dims = w.dims(TensorKind::AttnVB, layer).size() == 2 ? std::vector<int64_t>{lora, n_head * vdim}
                                                                        : std::vector<int64_t>{lora, vdim, n_head};
      uk_t = w.host_values(TensorKind::AttnKB, layer, k_dims);  // already [n_head][lora][nope]
      uv = w.host_values(TensorKind::AttnVB, layer, v_dims);
    }
    w_uk_t_ = w.upload(uk_t, {nope, lora, n_head}, fmt::format("blk.{}.attn_uk_t (absorbed, f32)", layer));
    w_uv_ = w.upload(uv, {lora, vdim, n_head}, fmt::format("blk.{}.attn_uv (absorbed, f32)", layer));
  }

  const ModelConfig& c_;
  Tensor q_, q_a_, q_b_, kv_a_, output_;
  Tensor q_a_norm_, kv_a_norm_;
  Tensor w_uk_t_, w_uv_;
};

}  // namespace

std::unique_ptr<Attention> make_mla_attention(const ModelConfig& config, WeightLoader& weights, int layer) {
  return std::make_unique<MlaAttention>(config, weights, layer);
}

}  // namespace tandem
