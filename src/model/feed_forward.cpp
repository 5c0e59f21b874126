// Feed-forward blocks: dense SwiGLU, and the routed mixture of experts with optional shared experts.
#include <vector>

#include <fmt/format.h>

#include "kernels/ops.h"
#include "model/layers.h"
#include "model/router.h"

namespace tandem {

namespace {

struct SwiGlu {
  WeightTensor gate, up, down;

  // x: [n, n_embd] -> out: [n, n_embd]
  void forward(Backend& backend, const float* x, int64_t n, float* out) const {
    std::vector<float> g(static_cast<size_t>(n * gate.rows)), u(g.size());  // [n, n_ff]
    backend.matmul(gate, 0, x, n, g.data());
    backend.matmul(up, 0, x, n, u.data());
    swiglu(g.data(), u.data(), g.data(), static_cast<int64_t>(g.size()));
    backend.matmul(down, 0, g.data(), n, out);
  }
};

SwiGlu load_swiglu(const WeightStore& w, const std::string& prefix, const std::string& suffix, int64_t n_embd,
                   int64_t n_ff) {
  return {w.matrix(prefix + "ffn_gate" + suffix, {n_embd, n_ff}), w.matrix(prefix + "ffn_up" + suffix, {n_embd, n_ff}),
          w.matrix(prefix + "ffn_down" + suffix, {n_ff, n_embd})};
}

class DenseFeedForward final : public FeedForward {
 public:
  explicit DenseFeedForward(SwiGlu mlp) : mlp_(std::move(mlp)) {}
  void forward(Backend& backend, const float* x, int64_t n_tokens, float* out) override {
    mlp_.forward(backend, x, n_tokens, out);
  }

 private:
  SwiGlu mlp_;
};

class MoeFeedForward final : public FeedForward {
 public:
  MoeFeedForward(const ModelConfig& c, const WeightStore& w, int layer) : router_(c.router) {
    const std::string p = fmt::format("blk.{}.", layer);
    const int64_t n_embd = c.n_embd, n_ff = c.n_ff_expert, n_exp = c.router.n_experts;
    gate_inp_ = w.matrix(p + "ffn_gate_inp.weight", {n_embd, n_exp});
    if (w.has(p + "exp_probs_b.bias")) bias_ = w.vector(p + "exp_probs_b.bias", n_exp);
    gate_ = w.matrix(p + "ffn_gate_exps.weight", {n_embd, n_ff, n_exp});
    up_ = w.matrix(p + "ffn_up_exps.weight", {n_embd, n_ff, n_exp});
    down_ = w.matrix(p + "ffn_down_exps.weight", {n_ff, n_embd, n_exp});
    if (c.router.n_shared_experts > 0) {
      shared_ = load_swiglu(w, p, "_shexp.weight", n_embd, n_ff * c.router.n_shared_experts);
      has_shared_ = true;
    }
  }

  void forward(Backend& backend, const float* x, int64_t n, float* out) override {
    const int k = router_.n_experts_used;
    std::vector<float> logits(static_cast<size_t>(n * router_.n_experts));  // [n, n_experts]
    backend.matmul(gate_inp_, 0, x, n, logits.data());
    std::vector<int32_t> ids(static_cast<size_t>(n * k));
    std::vector<float> weights(static_cast<size_t>(n * k));
    for (int64_t t = 0; t < n; ++t) {
      route_token(router_, logits.data() + t * router_.n_experts, bias_.empty() ? nullptr : bias_.data(),
                  ids.data() + t * k, weights.data() + t * k);
    }
    ExpertWeights experts{&gate_, &up_, &down_};
    backend.moe(experts, x, n, k, ids.data(), weights.data(), out);
    if (has_shared_) {
      const int64_t n_embd = gate_.cols;
      std::vector<float> shared_out(static_cast<size_t>(n * n_embd));
      shared_.forward(backend, x, n, shared_out.data());
      for (size_t i = 0; i < shared_out.size(); ++i) out[i] += shared_out[i];
    }
  }

 private:
  RouterConfig router_;
  WeightTensor gate_inp_, gate_, up_, down_;
  std::vector<float> bias_;
  SwiGlu shared_;
  bool has_shared_ = false;
};

}  // namespace

std::unique_ptr<FeedForward> make_feed_forward(const ModelConfig& c, const WeightStore& w, int layer) {
  if (c.is_moe_layer(layer)) return std::make_unique<MoeFeedForward>(c, w, layer);
  return std::make_unique<DenseFeedForward>(load_swiglu(w, fmt::format("blk.{}.", layer), ".weight", c.n_embd, c.n_ff));
}

}  // namespace tandem
