// The blocks a transformer layer is made of, one class per variant, built from a model's weights.
//
// Every block only queues Backend operations on tensors of the main device (the ExpertRunner excepted),
// using the step's preallocated buffers: no block allocates or touches activations itself. Attention reads
// normalized hidden states, writes this step's keys/values into its layer of the paged cache and returns
// the attention output (after the output projection); FeedForward is a dense SwiGLU or a routed mixture
// of experts plus shared experts. x and out are {n_embd, n} views.
#pragma once

#include <memory>
#include <vector>

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
  // buffers_id: the step buffers' StepBuffers::id (recordings name their tensors, so each set has its own).
  GraphRuns(Backend& backend, bool enabled, int64_t n_tokens, uint64_t buffers_id)
      : backend_(backend), enabled_(enabled), n_(n_tokens), buffers_id_(buffers_id) {}
  void open() {
    if (enabled_ && !open_) {
      open_ = backend_.begin_graph((buffers_id_ << 44) | (static_cast<uint64_t>(n_) << 24) | index_);
    }
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
  uint64_t buffers_id_;
  uint64_t index_ = 0;
  bool open_ = false;
};

// The runner's expert stacks streamed to the main device for a step's long-prompt tokens (layerwise prefill,
// Backend::stage_experts): the n-th streamed layer goes to slot n % 2, and acquiring it starts the copy of the
// next one, which then overlaps this layer's work.
class ExpertStream {
 public:
  ExpertStream(Backend& backend, std::vector<ExpertWeights> layers) : backend_(backend), layers_(std::move(layers)) {}
  void begin_step() { staged_[0] = staged_[1] = -1; }
  // The device copy of `host` (one of the streamed layers), ready for the operations queued after this call.
  ExpertWeights acquire(const ExpertWeights& host) {
    size_t i = 0;
    while (i < layers_.size() && layers_[i].gate.data != host.gate.data) ++i;
    const int slot = static_cast<int>(i % 2);
    if (staged_[slot] != static_cast<int64_t>(i)) backend_.stage_experts(host, slot);
    const ExpertWeights copy = backend_.staged_experts(host, slot);
    if (i + 1 < layers_.size()) {
      backend_.stage_experts(layers_[i + 1], 1 - slot);
      staged_[1 - slot] = static_cast<int64_t>(i + 1);
    }
    return copy;
  }

 private:
  Backend& backend_;
  std::vector<ExpertWeights> layers_;
  int64_t staged_[2] = {-1, -1};  // the layer each slot holds or is receiving
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
  ExpertStream* stream = nullptr;  // set when tokens [streamed_from, n) run streamed experts
  int64_t streamed_from = 0;
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
  // The routed experts this block runs on the ExpertRunner, if any (the ones an ExpertStream can stream).
  virtual const ExpertWeights* runner_experts() const { return nullptr; }
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
