#include "model/model.h"

#include <fmt/format.h>

#include "kernels/ops.h"
#include "model/layers.h"
#include "model/rope.h"
#include "model/weights.h"

namespace tandem {

struct Model::Impl {
  struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    std::unique_ptr<Attention> attention;
    std::unique_ptr<FeedForward> feed_forward;
  };

  std::shared_ptr<const GgufModel> gguf;
  ModelConfig config;
  std::unique_ptr<RopeTable> rope;
  WeightTensor token_embd, output;
  std::vector<float> output_norm;
  std::vector<Layer> layers;
};

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::load(std::shared_ptr<const GgufModel> gguf, const ModelConfig& config) {
  std::unique_ptr<Model> model(new Model());
  Impl& m = *model->impl_;
  m.gguf = std::move(gguf);
  m.config = config;
  m.rope = std::make_unique<RopeTable>(config.rope);
  const WeightStore w(*m.gguf);
  try {
    const ModelConfig& c = m.config;
    m.token_embd = w.matrix("token_embd.weight", {c.n_embd, c.n_vocab});
    // Tied embeddings: files without output.weight reuse the embedding matrix.
    m.output = w.has("output.weight") ? w.matrix("output.weight", {c.n_embd, c.n_vocab}) : m.token_embd;
    m.output_norm = w.vector("output_norm.weight", c.n_embd);
    for (int l = 0; l < c.n_layers; ++l) {
      Impl::Layer layer;
      const std::string p = fmt::format("blk.{}.", l);
      layer.attn_norm = w.vector(p + "attn_norm.weight", c.n_embd);
      layer.ffn_norm = w.vector(p + "ffn_norm.weight", c.n_embd);
      layer.attention = c.arch == Arch::Deepseek2 ? make_mla_attention(c, w, l, *m.rope)
                                                  : make_gqa_attention(c, w, l, *m.rope);
      layer.feed_forward = make_feed_forward(c, w, l);
      m.layers.push_back(std::move(layer));
    }
  } catch (const ModelLoadError& e) {
    return Status::error(fmt::format("{}: {}", m.gguf->files().front(), e.what()));
  }
  return model;
}

const ModelConfig& Model::config() const { return impl_->config; }

KvCacheConfig Model::kv_cache_config(int page_size, int n_pages) const {
  return {.n_layers = impl_->config.n_layers,
          .floats_per_token = kv_floats_per_token(impl_->config),
          .page_size = page_size,
          .n_pages = n_pages};
}

void Model::forward(Backend& backend, const ForwardBatch& batch, PagedKvCache& cache, std::vector<float>& logits) {
  const Impl& m = *impl_;
  const ModelConfig& c = m.config;
  const int64_t n = batch.size(), n_embd = c.n_embd;
  const auto eps = static_cast<float>(c.rms_eps);

  std::vector<float> hidden(static_cast<size_t>(n * n_embd));  // [n, n_embd] residual stream
  std::vector<float> normed(hidden.size()), block_out(hidden.size());
  backend.get_rows(m.token_embd, batch.tokens.data(), n, hidden.data());

  auto norm_rows = [&](const std::vector<float>& weight) {
    for (int64_t t = 0; t < n; ++t) {
      rms_norm(hidden.data() + t * n_embd, weight.data(), normed.data() + t * n_embd, n_embd, eps);
    }
  };
  for (const Impl::Layer& layer : m.layers) {
    norm_rows(layer.attn_norm);
    layer.attention->forward(backend, normed.data(), batch, cache, block_out.data());
    for (size_t i = 0; i < hidden.size(); ++i) hidden[i] += block_out[i];
    norm_rows(layer.ffn_norm);
    layer.feed_forward->forward(backend, normed.data(), n, block_out.data());
    for (size_t i = 0; i < hidden.size(); ++i) hidden[i] += block_out[i];
  }

  const auto n_out = static_cast<int64_t>(batch.output_tokens.size());
  std::vector<float> final_rows(static_cast<size_t>(n_out * n_embd));  // [n_out, n_embd]
  for (int64_t i = 0; i < n_out; ++i) {
    const int64_t t = batch.output_tokens[static_cast<size_t>(i)];
    rms_norm(hidden.data() + t * n_embd, m.output_norm.data(), final_rows.data() + i * n_embd, n_embd, eps);
  }
  logits.resize(static_cast<size_t>(n_out * c.n_vocab));
  backend.matmul(m.output, 0, final_rows.data(), n_out, logits.data());
}

}  // namespace tandem
