// Model maker: writes a GGUF with random weights at the real shapes of a published MoE model, so that
// performance can be measured at real sizes without downloading one.
//
// Presets give the published hyper-parameters (DeepSeek-V3, DeepSeek-V2-Lite, Qwen3-30B-A3B); layer and
// expert counts may be overridden (fewer layers fit small machines). Weights are seeded random values
// (normal, std 0.02; norms 1) quantized to `weight_type`: a plain GGUF type name, or a llama.cpp mix
// (Q4_K_M: Q4_K with Q6_K for the output and some ffn_down). The metadata is what the public converters
// write, plus the routing keys (expert_group_count, ...) so the file needs no config.json. Tokenizer
// metadata is copied from `tokenizer_source` (another GGUF) or imported from `tokenizer_json_dir` (a Hugging
// Face tokenizer folder, see tokenizer/hf_import.h) when one is given, else a placeholder byte vocab.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace tandem {

struct ModelMakerOptions {
  std::string preset;                  // one of model_presets()
  std::optional<int> n_layers;
  std::optional<int> n_experts;
  std::string weight_type = "Q4_K_M";
  std::string tokenizer_source;        // GGUF whose tokenizer.* metadata to copy (optional)
  std::string tokenizer_json_dir;      // folder with tokenizer.json + tokenizer_config.json to import (optional)
  uint64_t seed = 1;
  int threads = 0;
};

std::vector<std::string> model_presets();
// Writes the model to `path`; returns its size in bytes.
Result<uint64_t> make_model(const ModelMakerOptions& options, const std::string& path);

}  // namespace tandem
