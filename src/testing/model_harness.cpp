#include "testing/model_harness.h"

#include <numeric>
#include <stdexcept>

namespace tandem::testing {

Result<LoadedModel> load_model(const std::filesystem::path& gguf_path, const std::filesystem::path& config_dir,
                               int threads, ExpertPath experts, const Placement& placement, const FaultPlan* faults) {
  LoadedModel m;
  auto gguf = GgufModel::open(gguf_path.string());
  if (!gguf) return gguf.status();
  m.gguf = gguf.value();
  auto config = load_model_config(*m.gguf, config_dir.string());
  if (!config) return config.status();
  m.backend = std::make_unique<CpuBackend>(threads);
  if (experts == ExpertPath::Runner) m.runner = std::make_unique<CpuExpertRunner>(threads);
  if (faults) {
    m.backend = inject_faults(std::move(m.backend), *faults);
    if (m.runner) m.runner = inject_faults(std::move(m.runner), *faults);
  }
  auto model = Model::load(m.gguf, config.value(), placement, ModelDevices{m.backend.get(), m.runner.get()});
  if (!model) return model.status();
  m.model = std::move(model.value());
  return m;
}

ForwardHarness::ForwardHarness(Model& model, int page_size, int n_pages, int64_t max_tokens, int64_t max_sequences)
    : model_(model) {
  const KvCacheConfig cache_config = model.kv_cache_config(page_size, n_pages);
  auto cache = PagedKvCache::create(*model.devices().main, cache_config);
  if (!cache) throw std::runtime_error(cache.status().message());
  cache_ = std::move(cache.value());
  const StepLimits limits{.max_tokens = max_tokens, .max_sequences = max_sequences,
                          .max_context = int64_t{page_size} * n_pages};
  auto buffers = model.create_step_buffers(limits, cache_config);
  if (!buffers) throw std::runtime_error(buffers.status().message());
  buffers_ = std::move(buffers.value());
  logits_.assign(static_cast<size_t>(max_sequences * model.config().n_vocab), 0.0f);
}

Status ForwardHarness::run(const ForwardBatch& batch, ForwardStats* stats) {
  n_outputs_ = batch.output_tokens.size();
  return model_.forward(batch, *cache_, *buffers_, logits_, stats);
}

std::vector<float> ForwardHarness::logits() const {
  const size_t n = n_outputs_ * static_cast<size_t>(model_.config().n_vocab);
  return std::vector<float>(logits_.begin(), logits_.begin() + static_cast<std::ptrdiff_t>(n));
}

std::vector<float> run_solo(Model& model, const std::vector<int32_t>& ids, int chunk, int page_size) {
  const int n_pages = static_cast<int>((ids.size() + static_cast<size_t>(page_size) - 1) / static_cast<size_t>(page_size)) + 1;
  ForwardHarness harness(model, page_size, n_pages, std::max<int64_t>(chunk, 1), 1);
  std::vector<int32_t> table(static_cast<size_t>(n_pages));
  std::iota(table.begin(), table.end(), 0);
  for (size_t begin = 0; begin < ids.size(); begin += static_cast<size_t>(chunk)) {
    const size_t end = std::min(ids.size(), begin + static_cast<size_t>(chunk));
    ForwardBatch b;
    b.page_tables = {table};
    for (size_t i = begin; i < end; ++i) {
      b.tokens.push_back(ids[i]);
      b.positions.push_back(static_cast<int64_t>(i));
      b.seq_index.push_back(0);
    }
    b.output_tokens = {static_cast<int32_t>(end - begin - 1)};
    Status s = harness.run(b);
    if (!s) throw std::runtime_error(s.message());
  }
  return harness.logits();
}

}  // namespace tandem::testing
