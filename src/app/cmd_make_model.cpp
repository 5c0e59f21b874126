// `tandem make-model`: a GGUF with random weights at a published model's shapes (for benchmarks/demos).
#include <chrono>
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "app/commands.h"
#include "app/model_maker.h"

namespace tandem::app {

void register_make_model_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("make-model", "Write a GGUF with random weights at real model shapes");
  auto opt = std::make_shared<ModelMakerOptions>();
  auto out = std::make_shared<std::string>();
  auto layers = std::make_shared<int>(0);
  auto experts = std::make_shared<int>(0);
  cmd->add_option("--preset", opt->preset, fmt::format("Shapes: {}", fmt::join(model_presets(), ", ")))
      ->required()->check(CLI::IsMember(model_presets()));
  cmd->add_option("--out,-o", *out, "Output GGUF path")->required();
  cmd->add_option("--layers", *layers, "Override the layer count")->check(CLI::PositiveNumber);
  cmd->add_option("--experts", *experts, "Override the routed expert count")->check(CLI::PositiveNumber);
  cmd->add_option("--type", opt->weight_type, "Weight type: a GGUF type (Q4_K, Q8_0, BF16, ...) or Q4_K_M / Q5_K_M")
      ->capture_default_str();
  cmd->add_option("--tokenizer-from,--tokenizer_from", opt->tokenizer_source, "Copy tokenizer metadata from this GGUF");
  cmd->add_option("--tokenizer-hf,--tokenizer_hf", opt->tokenizer_json_dir,
                  "Import the tokenizer from a Hugging Face folder (tokenizer.json, tokenizer_config.json)");
  cmd->add_option("--seed", opt->seed, "Random seed")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "Threads used to quantize (default: all cores)");
  cmd->callback([=, &exit_code] {
    if (*layers > 0) opt->n_layers = *layers;
    if (*experts > 0) opt->n_experts = *experts;
    const auto started = std::chrono::steady_clock::now();
    auto bytes = make_model(*opt, *out);
    if (!bytes) {
      fmt::print(stderr, "error: {}\n", bytes.status().message());
      exit_code = 1;
      return;
    }
    fmt::print("wrote {} ({:.1f} MiB of tensors) in {:.1f} s\n", *out, static_cast<double>(bytes.value()) / (1 << 20),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  });
}

}  // namespace tandem::app
