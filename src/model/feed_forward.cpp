// Feed-forward blocks: dense SwiGLU, and the routed mixture of experts with optional shared experts.
//
// The routed experts run on the ExpertRunner when their weights are in host memory: the block hands the
// runner this layer's inputs, computes the shared expert on the main backend meanwhile (or after the wait,
// when the two share cores: ModelDevices::overlap_experts), then adds the two. Otherwise (all weights on the main device) the backend's moe() computes them in its stream.
#include <chrono>

#include <fmt/format.h>

#include "model/layers.h"

namespace tandem {

namespace {

struct SwiGlu {
  Tensor gate, up, down;  // {n_embd, n_ff}, {n_embd, n_ff}, {n_ff, n_embd}

  // x: {n_embd, n} -> out: {n_embd, n}, through the step's {max_ff, n} gate / up buffers.
  void forward(LayerStep& s, const Tensor& x, const Tensor& out) const {
    const Tensor g = s.buffers.ffn_gate.col_range(0, gate.rows()).row_range(0, s.n);
    const Tensor u = s.buffers.ffn_up.col_range(0, up.rows()).row_range(0, s.n);
    s.backend.matmul(gate, 0, x, g);
    s.backend.matmul(up, 0, x, u);
    s.backend.swiglu(g, u, g);
    s.backend.matmul(down, 0, g, out);
  }
};

SwiGlu load_swiglu(WeightLoader& w, int layer, TensorKind gate, TensorKind up, TensorKind down, int64_t n_embd,
                   int64_t n_ff) {
  return {w.matrix(gate, layer, {n_embd, n_ff}), w.matrix(up, layer, {n_embd, n_ff}), w.matrix(down, layer, {n_ff, n_embd})};
}

class DenseFeedForward final : public FeedForward {
 public:
  explicit DenseFeedForward(SwiGlu mlp) : mlp_(std::move(mlp)) {}
  Status forward(LayerStep& s, const Tensor& x, const Tensor& out) override {
    mlp_.forward(s, x, out);
    return Status::ok();
  }

 private:
  SwiGlu mlp_;
};

class MoeFeedForward final : public FeedForward {
 public:
  MoeFeedForward(const ModelConfig& c, WeightLoader& w, int layer) : router_(c.router) {
    const int64_t n_embd = c.n_embd, n_ff = c.n_ff_expert, n_exp = c.router.n_experts;
    gate_inp_ = w.matrix(TensorKind::FfnGateInp, layer, {n_embd, n_exp});
    if (w.has(TensorKind::ExpProbsB, layer)) bias_ = w.vector(TensorKind::ExpProbsB, layer, n_exp);
    bool gate_on_runner = false, up_on_runner = false, down_on_runner = false;
    experts_.gate = w.experts(TensorKind::FfnGateExps, layer, {n_embd, n_ff, n_exp}, gate_on_runner);
    experts_.up = w.experts(TensorKind::FfnUpExps, layer, {n_embd, n_ff, n_exp}, up_on_runner);
    experts_.down = w.experts(TensorKind::FfnDownExps, layer, {n_ff, n_embd, n_exp}, down_on_runner);
    if (gate_on_runner != up_on_runner || up_on_runner != down_on_runner) {
      throw ModelLoadError(fmt::format("layer {}: the gate, up and down experts must be placed on one device", layer));
    }
    on_runner_ = gate_on_runner;
    if (c.router.n_shared_experts > 0) {
      shared_ = load_swiglu(w, layer, TensorKind::FfnGateShexp, TensorKind::FfnUpShexp, TensorKind::FfnDownShexp,
                            n_embd, n_ff * c.router.n_shared_experts);
      has_shared_ = true;
    }
  }

  Status forward(LayerStep& s, const Tensor& x, const Tensor& out) override {
    Backend& b = s.backend;
    StepBuffers& ws = s.buffers;
    const int64_t n = s.n, k = router_.n_experts_used;
    const Tensor logits = ws.router_logits.row_range(0, n);                 // {n_experts, n}
    const Tensor ids = ws.expert_ids.col_range(0, k).row_range(0, n);       // I32 {k, n}
    const Tensor weights = ws.expert_weights.col_range(0, k).row_range(0, n);  // {k, n}
    b.matmul(gate_inp_, 0, x, logits);
    b.route(logits, bias_, router_, ids, weights);
    const Tensor routed = has_shared_ ? ws.routed_out.row_range(0, n) : out;

    if (!on_runner_) {
      b.moe(experts_, x, ids, weights, routed);
      if (has_shared_) {
        shared_.forward(s, x, ws.shared_out.row_range(0, n));
        b.add(routed, ws.shared_out.row_range(0, n), out);
      }
      return Status::ok();
    }

    // Routed experts of tokens [0, c) on the CPU runner; of tokens [c, n) (long prompts) on the backend, their
    // weights streamed in; the shared expert on the backend meanwhile.
    const int64_t c = s.stream ? s.streamed_from : n;
    const ExpertJob job{experts_, ws.host_expert_x.row_range(0, c), ws.host_expert_ids.col_range(0, k).row_range(0, c),
                        ws.host_expert_weights.col_range(0, k).row_range(0, c), ws.host_expert_out.row_range(0, c)};
    s.graphs.close();
    if (c > 0) {
      b.download_later(x.row_range(0, c), job.x.data);
      b.download_later(ids.row_range(0, c), job.ids.data);
      b.download(weights.row_range(0, c), job.weights.data);  // one wait for the three
      s.experts->submit(job);
    }
    if (c < n) {
      b.moe(s.stream->acquire(experts_), x.row_range(c, n - c), ids.row_range(c, n - c), weights.row_range(c, n - c),
            routed.row_range(c, n - c));
    }
    if (has_shared_ && (s.overlap_experts || c == 0)) {
      s.graphs.open();
      shared_.forward(s, x, ws.shared_out.row_range(0, n));
      s.graphs.close();
    }
    if (c > 0) {
      b.end_busy_span();
      const auto waited_from = std::chrono::steady_clock::now();
      Status status = s.experts->wait();
      ws.expert_wait_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - waited_from).count();
      if (!status) return status;
      if (has_shared_ && !s.overlap_experts) shared_.forward(s, x, ws.shared_out.row_range(0, n));
      b.upload(job.out.data, routed.row_range(0, c));
    }
    s.graphs.open();
    if (has_shared_) b.add(routed, ws.shared_out.row_range(0, n), out);
    return Status::ok();
  }

  const ExpertWeights* runner_experts() const override { return on_runner_ ? &experts_ : nullptr; }

 private:
  RouterConfig router_;
  Tensor gate_inp_, bias_;
  ExpertWeights experts_;
  bool on_runner_ = false;
  SwiGlu shared_;
  bool has_shared_ = false;
};

}  // namespace

std::unique_ptr<FeedForward> make_feed_forward(const ModelConfig& c, WeightLoader& w, int layer) {
  if (c.is_moe_layer(layer)) return std::make_unique<MoeFeedForward>(c, w, layer);
  return std::make_unique<DenseFeedForward>(
      load_swiglu(w, layer, TensorKind::FfnGate, TensorKind::FfnUp, TensorKind::FfnDown, c.n_embd, c.n_ff));
}

}  // namespace tandem
