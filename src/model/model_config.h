// ModelConfig: the hyper-parameters of a supported architecture, read from GGUF metadata and, where the
// GGUF is silent, from a Hugging Face config.json (the `--model-path` folder).
//
// The GGUF wins where both speak. Routing parameters that published GGUFs often lack (n_group,
// topk_group, topk_method, scoring_func) come from config.json, else from the architecture's published
// defaults; `sources` records for each routing parameter where its value came from, so the loader can say
// it. load_model_config() fails with a clear message for an unsupported architecture or missing keys.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf_file.h"
#include "kernels/routing.h"

namespace tandem {

enum class Arch { Deepseek2, Qwen3Moe };

const char* to_string(Arch arch);

struct RopeConfig {
  int n_dims = 0;              // rotated dimensions per head
  double freq_base = 10000.0;
  bool adjacent_pairs = false; // rotate (x[2i], x[2i+1]) (DeepSeek); else (x[i], x[i + n/2]) (Qwen, NeoX)
  bool yarn = false;
  double yarn_factor = 1.0;
  double yarn_original_ctx = 0;
  double yarn_beta_fast = 32.0;
  double yarn_beta_slow = 1.0;
  double attention_factor = 1.0;  // multiplies cos and sin (YaRN mscale / mscale_all_dim)
};


struct ModelConfig {
  Arch arch = Arch::Deepseek2;
  std::string name;
  int n_layers = 0;
  int n_embd = 0;
  int n_vocab = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int head_dim_k = 0;        // full key/query head size (DeepSeek: nope + rope)
  int head_dim_v = 0;
  int n_ff = 0;              // dense FFN width
  int n_ff_expert = 0;       // expert FFN width
  int n_leading_dense = 0;   // first layers with a dense FFN instead of MoE
  double rms_eps = 1e-6;
  int64_t context_length = 0;
  // MLA (deepseek2)
  int q_lora_rank = 0;       // 0: no q compression (V2-Lite)
  int kv_lora_rank = 0;
  int qk_rope_dim = 0;
  int qk_nope_dim = 0;
  double kq_scale = 0;       // softmax scale of attention scores
  RopeConfig rope;
  RouterConfig router;
  std::vector<std::string> sources;  // "n_group = 4 (config.json n_group)" etc.

  bool is_moe_layer(int layer) const { return layer >= n_leading_dense; }
};

// `hf_config_dir` may be empty (no config.json).
Result<ModelConfig> load_model_config(const GgufModel& gguf, const std::string& hf_config_dir);

}  // namespace tandem
