#include "app/loaded_model.h"

#include <spdlog/spdlog.h>

namespace tandem::app {

Result<LoadedModel> load_model(const std::string& gguf_path, const std::string& hf_config_dir) {
  auto gguf = GgufModel::open(gguf_path);
  if (!gguf) return gguf.status();
  auto config = load_model_config(*gguf.value(), hf_config_dir);
  if (!config) return Status::error(gguf_path + ": " + config.status().message());
  const ModelConfig& c = config.value();
  spdlog::info("model '{}': {} with {} layers, hidden {}, {} heads, {} experts ({} used, {} shared), vocab {}",
               c.name, to_string(c.arch), c.n_layers, c.n_embd, c.n_head, c.router.n_experts,
               c.router.n_experts_used, c.router.n_shared_experts, c.n_vocab);
  for (const std::string& line : c.sources) spdlog::info("  routing: {}", line);
  if (hf_config_dir.empty() && c.arch == Arch::Deepseek2) {
    spdlog::warn("no --model-path: routing parameters missing from the GGUF use defaults (see above)");
  }
  auto model = Model::load(gguf.value(), c);
  if (!model) return model.status();
  return LoadedModel{std::move(gguf.value()), std::move(model.value())};
}

}  // namespace tandem::app
