// The routing algorithm of routing.h as inline functions that compile for the host and, under nvcc, for the
// GPU too. Internal to src/kernels: route_token() is the public entry on the host; the CUDA backend's
// warp-per-token router (cuda_ops.cu) reproduces route() step for step with ranks_before() as its order.
// State lives in the caller's RoutingScratch (kMaxExperts floats twice and flags: ~9 KiB).
#pragma once

#include <math.h>

#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/routing.h"

namespace tandem::routing_detail {

struct RoutingScratch {
  float scores[kMaxExperts];
  float choice[kMaxExperts];
  bool taken[kMaxExperts];
  float group_score[kMaxExpertGroups];
  int32_t kept[kMaxExpertGroups];
  bool keep[kMaxExpertGroups];
};

// a ranks before b: larger value first, ties to the lower index (a strict total order, so any selection
// algorithm picks the same elements in the same order).
TANDEM_HOST_DEVICE inline bool ranks_before(const float* v, int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); }

// The k best indices of v[0..n), best first; `taken` is n flags of scratch.
TANDEM_HOST_DEVICE inline void top_k(const float* v, int n, int k, int32_t* out, bool* taken) {
  for (int i = 0; i < n; ++i) taken[i] = false;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int i = 0; i < n; ++i) {
      if (!taken[i] && (best < 0 || ranks_before(v, i, best))) best = i;
    }
    taken[best] = true;
    out[j] = best;
  }
}

// Sets the choice scores of experts outside the best topk_group groups to 0, as the reference does.
TANDEM_HOST_DEVICE inline void mask_groups(const RouterConfig& c, float* choice, RoutingScratch& s) {
  const int per_group = c.n_experts / c.n_group;
  for (int g = 0; g < c.n_group; ++g) {
    const float* members = choice + g * per_group;
    if (c.topk_method == TopkMethod::NoauxTc) {
      int32_t best[2] = {0, 0};
      const int n_best = per_group < 2 ? per_group : 2;
      top_k(members, per_group, n_best, best, s.taken);
      float sum = 0.0f;
      for (int j = 0; j < n_best; ++j) sum += members[best[j]];
      s.group_score[g] = sum;
    } else {
      float mx = members[0];
      for (int i = 1; i < per_group; ++i) mx = members[i] > mx ? members[i] : mx;
      s.group_score[g] = mx;
    }
  }
  top_k(s.group_score, c.n_group, c.topk_group, s.kept, s.taken);
  for (int g = 0; g < c.n_group; ++g) s.keep[g] = false;
  for (int j = 0; j < c.topk_group; ++j) s.keep[s.kept[j]] = true;
  for (int e = 0; e < c.n_experts; ++e) {
    if (!s.keep[e / per_group]) choice[e] = 0.0f;
  }
}

TANDEM_HOST_DEVICE inline void route(const RouterConfig& c, const float* logits, const float* bias, int32_t* expert_ids,
                                     float* expert_weights, RoutingScratch& s) {
  const int n = c.n_experts;
  float* scores = s.scores;
  float* choice = s.choice;
  if (c.scoring == ScoringFunc::Softmax) {
    float mx = logits[0];
    for (int e = 1; e < n; ++e) mx = logits[e] > mx ? logits[e] : mx;
    double sum = 0.0;  // double: as the engine's softmax everywhere
    for (int e = 0; e < n; ++e) {
      scores[e] = expf(logits[e] - mx);
      sum += scores[e];
    }
    const auto inv = static_cast<float>(1.0 / sum);
    for (int e = 0; e < n; ++e) scores[e] *= inv;
  } else {
    for (int e = 0; e < n; ++e) scores[e] = 1.0f / (1.0f + expf(-logits[e]));
  }
  for (int e = 0; e < n; ++e) {
    choice[e] = scores[e];
    if (c.topk_method == TopkMethod::NoauxTc && bias) choice[e] += bias[e];
  }
  if (c.topk_method != TopkMethod::Greedy && c.n_group > 1) mask_groups(c, choice, s);

  top_k(choice, n, c.n_experts_used, expert_ids, s.taken);
  float sum = 0.0f;
  for (int j = 0; j < c.n_experts_used; ++j) {
    expert_weights[j] = scores[expert_ids[j]];
    sum += expert_weights[j];
  }
  const float norm = c.norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
  for (int j = 0; j < c.n_experts_used; ++j) {
    expert_weights[j] = expert_weights[j] * norm * static_cast<float>(c.routed_scaling_factor);
  }
}

}  // namespace tandem::routing_detail
