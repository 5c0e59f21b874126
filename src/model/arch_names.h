// The names GGUF files use: metadata keys and tensor names of the supported architectures, in one table
// that the loader (model_config, Model::load) and the model maker both use, so the two cannot drift.
//
// Keys under `arch_key` are relative to the architecture prefix ("deepseek2.", "qwen3moe."); tensor names
// are patterns where "{}" is the layer index ("blk.{}.attn_q_a.weight").
#pragma once

#include <string>
#include <string_view>

namespace tandem {

namespace gguf_key {
inline constexpr const char* kArchitecture = "general.architecture";
inline constexpr const char* kName = "general.name";
inline constexpr const char* kTokens = "tokenizer.ggml.tokens";
}  // namespace gguf_key

// Metadata keys relative to the architecture prefix.
namespace arch_key {
inline constexpr const char* kBlockCount = "block_count";
inline constexpr const char* kContextLength = "context_length";
inline constexpr const char* kEmbeddingLength = "embedding_length";
inline constexpr const char* kFeedForwardLength = "feed_forward_length";
inline constexpr const char* kVocabSize = "vocab_size";
inline constexpr const char* kHeadCount = "attention.head_count";
inline constexpr const char* kHeadCountKv = "attention.head_count_kv";
inline constexpr const char* kRmsEpsilon = "attention.layer_norm_rms_epsilon";
inline constexpr const char* kKeyLength = "attention.key_length";
inline constexpr const char* kValueLength = "attention.value_length";
inline constexpr const char* kKeyLengthMla = "attention.key_length_mla";
inline constexpr const char* kValueLengthMla = "attention.value_length_mla";
inline constexpr const char* kQLoraRank = "attention.q_lora_rank";
inline constexpr const char* kKvLoraRank = "attention.kv_lora_rank";
inline constexpr const char* kExpertCount = "expert_count";
inline constexpr const char* kExpertUsedCount = "expert_used_count";
inline constexpr const char* kExpertFeedForwardLength = "expert_feed_forward_length";
inline constexpr const char* kExpertSharedCount = "expert_shared_count";
inline constexpr const char* kExpertWeightsScale = "expert_weights_scale";
inline constexpr const char* kExpertWeightsNorm = "expert_weights_norm";
inline constexpr const char* kExpertGatingFunc = "expert_gating_func";  // 1 softmax, 2 sigmoid
inline constexpr const char* kExpertGroupCount = "expert_group_count";
inline constexpr const char* kExpertGroupUsedCount = "expert_group_used_count";
inline constexpr const char* kLeadingDenseBlockCount = "leading_dense_block_count";
inline constexpr const char* kRopeDimensionCount = "rope.dimension_count";
inline constexpr const char* kRopeFreqBase = "rope.freq_base";
inline constexpr const char* kRopeScalingType = "rope.scaling.type";
inline constexpr const char* kRopeScalingFactor = "rope.scaling.factor";
inline constexpr const char* kRopeScalingOriginalContext = "rope.scaling.original_context_length";
inline constexpr const char* kRopeScalingYarnLogMultiplier = "rope.scaling.yarn_log_multiplier";
inline constexpr const char* kRopeScalingYarnBetaFast = "rope.scaling.yarn_beta_fast";
inline constexpr const char* kRopeScalingYarnBetaSlow = "rope.scaling.yarn_beta_slow";
}  // namespace arch_key

enum class TensorKind {
  TokenEmbd, OutputNorm, Output,
  AttnNorm, FfnNorm,
  // MLA (deepseek2)
  AttnQ, AttnQA, AttnQANorm, AttnQB, AttnKvAMqa, AttnKvANorm, AttnKvB, AttnKB, AttnVB,
  // GQA (qwen3moe); AttnQ is shared
  AttnK, AttnV, AttnQNorm, AttnKNorm,
  AttnOutput,
  // dense FFN
  FfnGate, FfnUp, FfnDown,
  // mixture of experts
  FfnGateInp, ExpProbsB, FfnGateExps, FfnUpExps, FfnDownExps, FfnGateShexp, FfnUpShexp, FfnDownShexp,
};

// The GGUF name of a tensor; `layer` is ignored for the model-wide ones (token_embd, output, output_norm).
std::string tensor_name(TensorKind kind, int layer = -1);
// The routed experts' stacked matrices (ffn_{gate,up,down}_exps), which may live apart from the rest.
bool is_routed_expert(TensorKind kind);

}  // namespace tandem
