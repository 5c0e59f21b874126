// The blocks a transformer layer is made of, one class per variant, built from a model's weights.
//
// Attention: reads normalized hidden states, writes this batch's keys/values into the paged cache of its
// layer, and returns the attention output (after the output projection). FeedForward: dense SwiGLU or a
// routed mixture of experts (plus shared experts). All shapes are [n_tokens, n_embd] float32 row-major.
#pragma once

#include <memory>

#include "kernels/backend.h"
#include "kvcache/paged_kv_cache.h"
#include "model/batch.h"
#include "model/model_config.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tandem {

class Attention {
 public:
  virtual ~Attention() = default;
  // x: [n_tokens, n_embd] (normalized); out: [n_tokens, n_embd]
  virtual void forward(Backend& backend, const float* x, const ForwardBatch& batch, PagedKvCache& cache,
                       float* out) = 0;
};

class FeedForward {
 public:
  virtual ~FeedForward() = default;
  // x: [n_tokens, n_embd] (normalized); out: [n_tokens, n_embd]
  virtual void forward(Backend& backend, const float* x, int64_t n_tokens, float* out) = 0;
};

// Floats each token stores per layer in the KV cache.
int64_t kv_floats_per_token(const ModelConfig& config);

// Multi-head latent attention (deepseek2): caches the compressed latent + rope key per token and
// attends with the absorbed key/value up-projections.
std::unique_ptr<Attention> make_mla_attention(const ModelConfig& config, const WeightStore& weights, int layer,
                                              const RopeTable& rope);
// Grouped-query attention with per-head q/k RMSNorm (qwen3moe).
std::unique_ptr<Attention> make_gqa_attention(const ModelConfig& config, const WeightStore& weights, int layer,
                                              const RopeTable& rope);
// Dense SwiGLU FFN for leading dense layers, or routed experts + shared experts.
std::unique_ptr<FeedForward> make_feed_forward(const ModelConfig& config, const WeightStore& weights, int layer);

}  // namespace tandem
