// Expert routing parameters: how a token's router logits become its top-k experts and their weights.
//
// The three published schemes (TopkMethod) with softmax or sigmoid scores, exactly as the reference
// computes them, including its quirks: under noaux_tc, experts of unselected groups get a choice score of
// 0 (not -inf), and the returned weights are the uncorrected scores (the bias is used only to choose).
// Ties go to the lower expert id, so routing is deterministic.
#pragma once

#include <cstdint>

namespace tandem {

enum class ScoringFunc { Softmax, Sigmoid };
// greedy: plain top-k. group_limited_greedy (DeepSeek-V2): groups ranked by their best expert.
// noaux_tc (DeepSeek-V3/R1): groups ranked by the sum of their two best bias-corrected scores.
enum class TopkMethod { Greedy, GroupLimitedGreedy, NoauxTc };

const char* to_string(ScoringFunc f);
const char* to_string(TopkMethod m);

struct RouterConfig {
  int n_experts = 0;
  int n_experts_used = 0;
  int n_shared_experts = 0;
  ScoringFunc scoring = ScoringFunc::Softmax;
  TopkMethod topk_method = TopkMethod::Greedy;
  int n_group = 1;
  int topk_group = 1;
  bool norm_topk_prob = false;
  double routed_scaling_factor = 1.0;
};

// Largest expert and group counts the routing kernels handle (they keep per-token state on the stack).
inline constexpr int kMaxExperts = 1024;
inline constexpr int kMaxExpertGroups = 64;

// The reference routing of one token. logits: [n_experts]; bias: [n_experts] or nullptr (noaux_tc's
// e_score_correction bias). Writes n_experts_used expert ids (best first) and their weights (normalized
// if norm_topk_prob, times routed_scaling_factor). Requires n_experts <= kMaxExperts, n_group <=
// kMaxExpertGroups. Allocates nothing.
void route_token(const RouterConfig& config, const float* logits, const float* bias, int32_t* expert_ids,
                 float* expert_weights);

}  // namespace tandem
