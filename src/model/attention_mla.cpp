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
    if (uk_rows_are_nope_) {
      b.matmul_heads_transposed(w_uk_, q_heads.col_range(0, nope), q_latent.col_range(0, lora));
    } else {
      b.matmul_heads(w_uk_, q_heads.col_range(0, nope), q_latent.col_range(0, lora));
    }
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
  // The up-projections stay as the file stores them (quantized; for DeepSeek-V3 a float32 copy would take
  // 4 GB). attn_kv_b holds, per head, nope key rows then vdim value rows of lora values: W_UV is a view of
  // its value rows, and W_UK^T q_nope sums its key rows weighted by q_nope (matmul_heads_transposed).
  // Files of MLA-native converters carry instead the split attn_k_b, W_UK already transposed per head
  // (ne = [nope, lora, n_head], or 2-D [nope, n_head * lora]), and attn_v_b, W_UV as [lora, vdim, n_head]
  // (or 2-D [lora, n_head * vdim]): plain per-head products.
  void load_up_projections(WeightLoader& w, int layer) {
    const int64_t n_head = c_.n_head, nope = c_.qk_nope_dim, vdim = c_.head_dim_v, lora = c_.kv_lora_rank;
    if (w.has(TensorKind::AttnKvB, layer)) {
      kv_b_ = w.matrix(TensorKind::AttnKvB, layer, {lora, n_head * (nope + vdim)});
      w_uk_ = kv_b_.row_groups(nope + vdim, 0, nope);     // {lora, nope, n_head}
      w_uv_ = kv_b_.row_groups(nope + vdim, nope, vdim);  // {lora, vdim, n_head}
      uk_rows_are_nope_ = true;
      return;
    }
    const bool k_3d = w.dims(TensorKind::AttnKB, layer).size() == 3, v_3d = w.dims(TensorKind::AttnVB, layer).size() == 3;
    const Tensor k_b = w.matrix(TensorKind::AttnKB, layer, k_3d ? std::vector<int64_t>{nope, lora, n_head}
                                                                 : std::vector<int64_t>{nope, n_head * lora});
    const Tensor v_b = w.matrix(TensorKind::AttnVB, layer, v_3d ? std::vector<int64_t>{lora, vdim, n_head}
                                                                 : std::vector<int64_t>{lora, n_head * vdim});
    w_uk_ = k_3d ? k_b : k_b.row_groups(lora, 0, lora);  // {nope, lora, n_head}
    w_uv_ = v_3d ? v_b : v_b.row_groups(vdim, 0, vdim);  // {lora, vdim, n_head}
  }

  const ModelConfig& c_;
  Tensor q_, q_a_, q_b_, kv_a_, output_;
  Tensor q_a_norm_, kv_a_norm_;
  Tensor kv_b_, w_uk_, w_uv_;
  bool uk_rows_are_nope_ = false;  // w_uk_ is attn_kv_b's key rows (transposed product), else attn_k_b
};

}  // namespace

std::unique_ptr<Attention> make_mla_attention(const ModelConfig& config, WeightLoader& weights, int layer) {
  return std::make_unique<MlaAttention>(config, weights, layer);
}

}  // namespace tandem
