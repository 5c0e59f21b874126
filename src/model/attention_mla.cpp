// Multi-head latent attention (DeepSeek-V2/V3).
//
// Per token the cache holds c (the kv_lora_rank latent, RMS-normalized) and k_pe (the rope key shared by
// all heads). Rather than expanding c into per-head keys and values for every cached position, the key
// up-projection is absorbed into the query (q_lat = W_UK^T q_nope) and the value up-projection applied
// once to the attention-weighted latent (v = W_UV o_lat). Every token, prefill or decode, takes this same
// path, so a token's result does not depend on how its prompt was chunked.
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "kernels/cpu/gemm.h"
#include "kernels/ops.h"
#include "model/layers.h"

namespace tandem {

namespace {

class MlaAttention final : public Attention {
 public:
  MlaAttention(const ModelConfig& c, const WeightStore& w, int layer, const RopeTable& rope)
      : c_(c), layer_(layer), rope_(rope) {
    const std::string p = fmt::format("blk.{}.", layer);
    const int64_t n_embd = c.n_embd, qk = c.head_dim_k, n_head = c.n_head, lora = c.kv_lora_rank;
    if (c.q_lora_rank > 0) {
      q_a_ = w.matrix(p + "attn_q_a.weight", {n_embd, c.q_lora_rank});
      q_a_norm_ = w.vector(p + "attn_q_a_norm.weight", c.q_lora_rank);
      q_b_ = w.matrix(p + "attn_q_b.weight", {c.q_lora_rank, n_head * qk});
    } else {
      q_ = w.matrix(p + "attn_q.weight", {n_embd, n_head * qk});
    }
    kv_a_ = w.matrix(p + "attn_kv_a_mqa.weight", {n_embd, lora + c.qk_rope_dim});
    kv_a_norm_ = w.vector(p + "attn_kv_a_norm.weight", lora);
    output_ = w.matrix(p + "attn_output.weight", {n_head * c.head_dim_v, n_embd});
    load_up_projections(w, p);
  }

  void forward(Backend& backend, const float* x, const ForwardBatch& batch, PagedKvCache& cache,
               float* out) override {
    const int64_t n = batch.size(), n_head = c_.n_head, qk = c_.head_dim_k, nope = c_.qk_nope_dim;
    const int64_t rope_dim = c_.qk_rope_dim, lora = c_.kv_lora_rank, vdim = c_.head_dim_v;
    const int64_t kv_width = lora + rope_dim;

    std::vector<float> q(static_cast<size_t>(n * n_head * qk));  // [n, n_head, qk]
    if (q_b_.valid()) {
      std::vector<float> qa(static_cast<size_t>(n * c_.q_lora_rank));  // [n, q_lora_rank]
      backend.matmul(q_a_, 0, x, n, qa.data());
      for (int64_t t = 0; t < n; ++t) {
        float* row = qa.data() + t * c_.q_lora_rank;
        rms_norm(row, q_a_norm_.data(), row, c_.q_lora_rank, static_cast<float>(c_.rms_eps));
      }
      backend.matmul(q_b_, 0, qa.data(), n, q.data());
    } else {
      backend.matmul(q_, 0, x, n, q.data());
    }

    std::vector<float> kv(static_cast<size_t>(n * kv_width));  // [n, lora + rope]
    backend.matmul(kv_a_, 0, x, n, kv.data());
    for (int64_t t = 0; t < n; ++t) {
      const float* src = kv.data() + t * kv_width;
      float* slot = cache.slot(layer_, batch.pages_of(t), batch.positions[static_cast<size_t>(t)]);
      rms_norm(src, kv_a_norm_.data(), slot, lora, static_cast<float>(c_.rms_eps));
      std::copy(src + lora, src + kv_width, slot + lora);
      rope_.apply(slot + lora, batch.positions[static_cast<size_t>(t)]);
    }

    // Queries in latent space: [q_lat = W_UK^T q_nope | roped q_pe] per token and head, [n, n_head, kv_width].
    std::vector<float> q_abs(static_cast<size_t>(n * n_head * kv_width));
    backend.parallel_for(n_head, [&](int64_t h_begin, int64_t h_end) {
      for (int64_t h = h_begin; h < h_end; ++h) {
        cpu::gemm_f32(w_uk_t_.data() + h * lora * nope, nope, lora, q.data() + h * qk, n_head * qk, n, nope,
                      q_abs.data() + h * kv_width, n_head * kv_width);
      }
    });
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < n_head; ++h) {
        float* pe = q_abs.data() + (t * n_head + h) * kv_width + lora;
        std::copy(q.data() + (t * n_head + h) * qk + nope, q.data() + (t * n_head + h + 1) * qk, pe);
        rope_.apply(pe, batch.positions[static_cast<size_t>(t)]);
      }
    }

    // Attention over each token's cached latents: o_lat = softmax(scale * q_abs . slot) . c, [n, n_head, lora].
    std::vector<float> o_lat(static_cast<size_t>(n * n_head * lora));
    const auto scale = static_cast<float>(c_.kq_scale);
    backend.parallel_for(n * n_head, [&](int64_t begin, int64_t end) {
      std::vector<float> scores;
      for (int64_t th = begin; th < end; ++th) {
        const int64_t t = th / n_head;
        const int64_t n_pos = batch.positions[static_cast<size_t>(t)] + 1;
        const auto pages = batch.pages_of(t);
        const float* query = q_abs.data() + th * kv_width;
        scores.resize(static_cast<size_t>(n_pos));
        cache.for_each_run(layer_, pages, n_pos, [&](int64_t first, const float* slots, int64_t count) {
          cpu::gemm_f32(slots, kv_width, count, query, kv_width, 1, kv_width, scores.data() + first, count);
        });
        for (float& s : scores) s *= scale;
        softmax(scores.data(), n_pos);
        float* o = o_lat.data() + th * lora;
        std::fill(o, o + lora, 0.0f);
        cache.for_each_run(layer_, pages, n_pos, [&](int64_t first, const float* slots, int64_t count) {
          for (int64_t j = 0; j < count; ++j) {
            const float wp = scores[static_cast<size_t>(first + j)];
            const float* c = slots + j * kv_width;
            for (int64_t i = 0; i < lora; ++i) o[i] += wp * c[i];
          }
        });
      }
    });

    // Values: v = W_UV[h] o_lat per head, [n, n_head, vdim].
    std::vector<float> heads(static_cast<size_t>(n * n_head * vdim));
    backend.parallel_for(n_head, [&](int64_t h_begin, int64_t h_end) {
      for (int64_t h = h_begin; h < h_end; ++h) {
        cpu::gemm_f32(w_uv_.data() + h * vdim * lora, lora, vdim, o_lat.data() + h * lora, n_head * lora, n, lora,
                      heads.data() + h * vdim, n_head * vdim);
      }
    });
    backend.matmul(output_, 0, heads.data(), n, out);
  }

 private:
  // W_UK^T [n_head][lora][nope] and W_UV [n_head][vdim][lora], from attn_kv_b (rows per head: nope key rows
  // then vdim value rows) or, in files that only carry them, from the split attn_k_b / attn_v_b.
  void load_up_projections(const WeightStore& w, const std::string& p) {
    const int64_t n_head = c_.n_head, nope = c_.qk_nope_dim, vdim = c_.head_dim_v, lora = c_.kv_lora_rank;
    w_uk_t_.resize(static_cast<size_t>(n_head * lora * nope));
    w_uv_.resize(static_cast<size_t>(n_head * vdim * lora));
    if (w.has(p + "attn_kv_b.weight")) {
      const std::vector<float> kv_b = w.dequantized(w.matrix(p + "attn_kv_b.weight", {lora, n_head * (nope + vdim)}));
      for (int64_t h = 0; h < n_head; ++h) {
        const float* head = kv_b.data() + h * (nope + vdim) * lora;  // [nope + vdim, lora]
        for (int64_t j = 0; j < nope; ++j) {
          for (int64_t i = 0; i < lora; ++i) w_uk_t_[static_cast<size_t>((h * lora + i) * nope + j)] = head[j * lora + i];
        }
        std::copy(head + nope * lora, head + (nope + vdim) * lora, w_uv_.data() + h * vdim * lora);
      }
      return;
    }
    // Split layout (MLA-native converters): k_b holds W_UK transposed per head, ne = [nope, lora, n_head]
    // (ik_llama.cpp writes it 2-D as [nope, n_head * lora], the same bytes); v_b holds W_UV as
    // ne = [lora, vdim, n_head] (or 2-D [lora, n_head * vdim]).
    const std::string k_name = p + "attn_k_b.weight", v_name = p + "attn_v_b.weight";
    const auto k_dims = w.dims(k_name).size() == 2 ? std::vector<int64_t>{nope, n_head * lora}
                                                   : std::vector<int64_t>{nope, lora, n_head};
    const auto v_dims = w.dims(v_name).size() == 2 ? std::vector<int64_t>{lora, n_head * vdim}
                                                   : std::vector<int64_t>{lora, vdim, n_head};
    const std::vector<float> k_b = w.dequantized(w.matrix(k_name, k_dims));
    const std::vector<float> v_b = w.dequantized(w.matrix(v_name, v_dims));
    std::copy(k_b.begin(), k_b.end(), w_uk_t_.begin());  // already [n_head][lora][nope]
    std::copy(v_b.begin(), v_b.end(), w_uv_.begin());
  }

  const ModelConfig& c_;
  int layer_;
  const RopeTable& rope_;
  WeightTensor q_, q_a_, q_b_, kv_a_, output_;
  std::vector<float> q_a_norm_, kv_a_norm_;
  std::vector<float> w_uk_t_, w_uv_;
};

}  // namespace

std::unique_ptr<Attention> make_mla_attention(const ModelConfig& config, const WeightStore& weights, int layer,
                                              const RopeTable& rope) {
  return std::make_unique<MlaAttention>(config, weights, layer, rope);
}

}  // namespace tandem
