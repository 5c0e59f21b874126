// The blocks a transformer layer is made of, one class per variant, built from a model's weights.
//
// Every block only queues Backend operations on tensors of the main device (the ExpertRunner excepted),
// using the step's preallocated buffers: no block allocates or touches activations itself. Attention reads
// normalized hidden states, writes this step's keys/values into its layer of the paged cache and returns
// the attention output (after the output projection); FeedForward is a dense SwiGLU or a routed mixture
// of experts plus shared experts. x and out are {n_embd, n} views.
#pragma once

#include <memory>

#include "core/status.h"
#include "kernels/backend.h"
#include "model/model_config.h"
#include "model/step_buffers.h"
#include "model/weights.h"

namespace tandem {

// The recorded runs (Backend::begin_graph) of a decode step: its operations between transfers, numbered in
// order and keyed by the number of tokens. Only steps where every sequence brings one token use them (their
// shapes repeat from step to step); blocks close() the current run before a transfer and open() the next
// after it.
class GraphRuns {
 public:
  GraphRuns(Backend& backend, bool enabled, int64_t n_tokens) : backend_(backend), enabled_(enabled), n_(n_tokens) {}
  void open() {
    if (enabled_ && !open_) open_ = backend_.begin_graph((static_cast<uint64_t>(n_) << 24) | index_);
  }
  void close() {
    if (open_) backend_.end_graph();
    open_ = false;
    ++index_;
  }

 private:
  Backend& backend_;
  bool enabled_;
  int64_t n_;
  uint64_t index_ = 0;
  bool open_ = false;
};

// What a block needs to run one step.
struct LayerStep {
  Backend& backend;
  ExpertRunner* experts;
  StepBuffers& buffers;
  const PagedBatch& batch;
  const RopeSpec& rope;
  int64_t n;  // tokens in the step
  bool overlap_experts;  // ModelDevices::overlap_experts
  GraphRuns& graphs;
};

class Attention {
 public:
  virtual ~Attention() = default;
  virtual void forward(LayerStep& step, const Tensor& cache, const Tensor& x, const Tensor& out) = 0;
};

class FeedForward {
 public:
  virtual ~FeedForward() = default;
  // Fails when the ExpertRunner reports an error (backend errors surface at the step's sync).
  virtual Status forward(LayerStep& step, const Tensor& x, const Tensor& out) = 0;
};

// Floats each token stores per layer in the KV cache.
int64_t kv_slot_width(const ModelConfig& config);

// Multi-head latent attention (deepseek2): caches the compressed latent + rope key per token and
// attends with the absorbed key/value up-projections.
std::unique_ptr<Attention> make_mla_attention(const ModelConfig& config, WeightLoader& weights, int layer);
// Grouped-query attention with per-head q/k RMSNorm (qwen3moe).
std::unique_ptr<Attention> make_gqa_attention(const ModelConfig& config, WeightLoader& weights, int layer);
// Dense SwiGLU FFN for leading dense layers, or routed experts + shared experts.
std::unique_ptr<FeedForward> make_feed_forward(const ModelConfig& config, WeightLoader& weights, int layer);

}  // namespace tandem
