// Expert routing: from a token's router logits to its top-k experts and their mixing weights.
//
// Implements the three published schemes (see TopkMethod) with softmax or sigmoid scores, exactly as the
// reference computes them, including its quirks: under noaux_tc, experts of unselected groups get a
// choice score of 0 (not -inf), and the returned weights are the uncorrected scores (bias is used only to
// choose). Ties are broken towards the lower expert id, so routing is deterministic.
#pragma once

#include <cstdint>

#include "model/model_config.h"

namespace tandem {

// logits: [n_experts]; bias: [n_experts] or nullptr (the e_score_correction bias of noaux_tc).
// Writes n_experts_used expert ids (best first) and their weights (normalized if norm_topk_prob, times
// routed_scaling_factor).
void route_token(const RouterConfig& config, const float* logits, const float* bias, int32_t* expert_ids,
                 float* expert_weights);

}  // namespace tandem
