// Model: a loaded MoE transformer (deepseek2 or qwen3moe) that runs forward passes over flat batches.
//
// load() reads the hyper-parameters (GGUF + optional config.json), checks every tensor's shape and type,
// and keeps views into the mapped GGUF (it shares ownership of it). forward() embeds the batch's tokens,
// runs every layer (writing the batch's keys/values into `cache`), and returns float32 logits for the
// batch's output_tokens: [output_tokens.size(), n_vocab]. The cache must have been made with
// kv_cache_config(). forward() is not thread-safe; one engine thread drives it.
#pragma once

#include <memory>
#include <vector>

#include "core/status.h"
#include "gguf/gguf_file.h"
#include "kernels/backend.h"
#include "kvcache/paged_kv_cache.h"
#include "model/batch.h"
#include "model/model_config.h"

namespace tandem {

class Model {
 public:
  static Result<std::unique_ptr<Model>> load(std::shared_ptr<const GgufModel> gguf, const ModelConfig& config);
  ~Model();

  const ModelConfig& config() const;
  KvCacheConfig kv_cache_config(int page_size, int n_pages) const;
  void forward(Backend& backend, const ForwardBatch& batch, PagedKvCache& cache, std::vector<float>& logits);

 private:
  Model();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
