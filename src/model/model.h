// Model: a loaded MoE transformer (deepseek2 or qwen3moe) that runs forward passes over flat batches.
//
// load() reads the hyper-parameters (GGUF + optional config.json, see model_config.h), checks every
// tensor's shape and type, and places each weight on a device by the Placement rules (weights.h): the
// main backend computes everything but the routed experts placed on the CPU, which go to the ExpertRunner.
// The model is a device-neutral layer driver: it only queues Backend operations and ExpertRunner jobs.
//
// create_step_buffers() allocates, once, every activation of the largest step the caller will run;
// forward() then runs a step without allocating: it embeds the batch's tokens, runs every layer (writing
// the step's keys/values into `cache`), and writes float32 logits for the batch's output_tokens to
// `logits` ([output_tokens.size(), n_vocab]). A malformed batch, a backend error or an ExpertRunner error
// fails the step with a Status (never an exception); the cache slots the step wrote may then hold garbage,
// so the caller must drop the step's requests. forward() is not thread-safe: one engine thread drives it.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf_file.h"
#include "kernels/backend.h"
#include "kvcache/paged_kv_cache.h"
#include "model/batch.h"
#include "model/model_config.h"
#include "model/placement.h"
#include "model/weights.h"

namespace tandem {

class StepBuffers;
struct StepBuffersDeleter {
  void operator()(StepBuffers* buffers) const;
};
// A step's activations (opaque outside model/; see create_step_buffers).
using StepBuffersPtr = std::unique_ptr<StepBuffers, StepBuffersDeleter>;

// What a forward pass measured.
struct ForwardStats {
  double expert_wait_seconds = 0;  // blocked on the ExpertRunner
};

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(std::shared_ptr<const GgufModel> gguf, const ModelConfig& config,
                                             const Placement& placement, const ModelDevices& devices);
  ~Model();

  const ModelConfig& config() const;
  const ModelDevices& devices() const;
  // Whether batches may mark tokens whose routed experts run on the main device with streamed weights
  // (ForwardBatch::streamed_expert_tokens; ModelDevices::stream_experts).
  bool streams_experts() const;
  // Where every weight went; summarize_placement() turns it into log lines.
  const std::vector<PlacedTensor>& placement_log() const;
  // The KV cache geometry this model needs for n_pages pages of page_size tokens.
  KvCacheConfig kv_cache_config(int page_size, int n_pages) const;

  // Buffers for steps of up to `limits` over a cache of `cache` geometry; sizes the devices' scratch too.
  Result<StepBuffersPtr> create_step_buffers(const StepLimits& limits, const KvCacheConfig& cache);
  Status forward(const ForwardBatch& batch, PagedKvCache& cache, StepBuffers& buffers, std::span<float> logits,
                 ForwardStats* stats = nullptr);

 private:
  Model();
  Status stage_batch(const ForwardBatch& batch, const PagedKvCache& cache, StepBuffers& buffers, PagedBatch& paged);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
