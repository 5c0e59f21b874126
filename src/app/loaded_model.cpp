#include "app/loaded_model.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include <fmt/format.h>
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

void prefetch_weights(const GgufModel& gguf) {
  const uint64_t total = gguf.total_tensor_bytes();
  const bool tty = isatty(fileno(stderr)) != 0;
  const auto started = std::chrono::steady_clock::now();
  uint64_t done = 0;
  int last_shown = -1;
  volatile uint8_t sink = 0;
  for (const GgufTensorInfo& t : gguf.tensors()) {
    for (size_t off = 0; off < t.n_bytes; off += 4096) sink = sink + t.data[off];
    done += t.n_bytes;
    const int percent = total ? static_cast<int>(100 * done / total) : 100;
    if (percent == last_shown || (!tty && percent % 10 != 0)) continue;
    last_shown = percent;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const int bar = percent / 4;
    fmt::print(stderr, "{}loading weights [{}{}] {:3d}% {:.1f}/{:.1f} GiB {:.1f} s{}", tty ? "\r" : "",
               std::string(static_cast<size_t>(bar), '#'), std::string(static_cast<size_t>(25 - bar), '.'), percent,
               static_cast<double>(done) / (1 << 30), static_cast<double>(total) / (1 << 30), secs, tty ? "" : "\n");
  }
  if (tty) fmt::print(stderr, "\n");
}

}  // namespace tandem::app
