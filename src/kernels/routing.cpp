#include "kernels/routing.h"

#include <array>
#include <cmath>

namespace tandem {

const char* to_string(ScoringFunc f) { return f == ScoringFunc::Softmax ? "softmax" : "sigmoid"; }
const char* to_string(TopkMethod m) {
  switch (m) {
    case TopkMethod::Greedy: return "greedy";
    case TopkMethod::GroupLimitedGreedy: return "group_limited_greedy";
    case TopkMethod::NoauxTc: return "noaux_tc";
  }
  return "?";
}

namespace {

// a ranks before b: larger value first, ties to the lower index (a strict total order, so any selection
// algorithm picks the same elements in the same order).
bool ranks_before(const float* v, int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); }

// The k best indices of v[0..n), best first.
void top_k(const float* v, int n, int k, int32_t* out) {
  std::array<bool, kMaxExperts> taken{};
  for (int j = 0; j < k; ++j) {
    int best = -1;
    for (int i = 0; i < n; ++i) {
      if (!taken[static_cast<size_t>(i)] && (best < 0 || ranks_before(v, i, best))) best = i;
    }
    taken[static_cast<size_t>(best)] = true;
    out[j] = best;
  }
}

// Sets the choice scores of experts outside the best topk_group groups to 0, as the reference does.
void mask_groups(const RouterConfig& c, float* choice) {
  const int per_group = c.n_experts / c.n_group;
  std::array<float, kMaxExpertGroups> group_score{};
  for (int g = 0; g < c.n_group; ++g) {
    const float* members = choice + g * per_group;
    if (c.topk_method == TopkMethod::NoauxTc) {
      std::array<int32_t, 2> best{};
      const int n_best = per_group < 2 ? per_group : 2;
      top_k(members, per_group, n_best, best.data());
      float sum = 0.0f;
      for (int j = 0; j < n_best; ++j) sum += members[best[static_cast<size_t>(j)]];
      group_score[static_cast<size_t>(g)] = sum;
    } else {
      float mx = members[0];
      for (int i = 1; i < per_group; ++i) mx = members[i] > mx ? members[i] : mx;
      group_score[static_cast<size_t>(g)] = mx;
    }
  }
  std::array<int32_t, kMaxExpertGroups> kept{};
  top_k(group_score.data(), c.n_group, c.topk_group, kept.data());
  std::array<bool, kMaxExpertGroups> keep{};
  for (int j = 0; j < c.topk_group; ++j) keep[static_cast<size_t>(kept[static_cast<size_t>(j)])] = true;
  for (int e = 0; e < c.n_experts; ++e) {
    if (!keep[static_cast<size_t>(e / per_group)]) choice[e] = 0.0f;
  }
}

}  // namespace

void route_token(const RouterConfig& c, const float* logits, const float* bias, int32_t* expert_ids,
                 float* expert_weights) {
  const int n = c.n_experts;
  std::array<float, kMaxExperts> scores, choice;
  if (c.scoring == ScoringFunc::Softmax) {
    float mx = logits[0];
    for (int e = 1; e < n; ++e) mx = logits[e] > mx ? logits[e] : mx;
    double sum = 0.0;  // double: as the engine's softmax everywhere
    for (int e = 0; e < n; ++e) {
      scores[static_cast<size_t>(e)] = std::exp(logits[e] - mx);
      sum += scores[static_cast<size_t>(e)];
    }
    const auto inv = static_cast<float>(1.0 / sum);
    for (int e = 0; e < n; ++e) scores[static_cast<size_t>(e)] *= inv;
  } else {
    for (int e = 0; e < n; ++e) scores[static_cast<size_t>(e)] = 1.0f / (1.0f + std::exp(-logits[e]));
  }
  for (int e = 0; e < n; ++e) {
    choice[static_cast<size_t>(e)] = scores[static_cast<size_t>(e)];
    if (c.topk_method == TopkMethod::NoauxTc && bias) choice[static_cast<size_t>(e)] += bias[e];
  }
  if (c.topk_method != TopkMethod::Greedy && c.n_group > 1) mask_groups(c, choice.data());

  top_k(choice.data(), n, c.n_experts_used, expert_ids);
  float sum = 0.0f;
  for (int j = 0; j < c.n_experts_used; ++j) {
    expert_weights[j] = scores[static_cast<size_t>(expert_ids[j])];
    sum += expert_weights[j];
  }
  const float norm = c.norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
  for (int j = 0; j < c.n_experts_used; ++j) {
    expert_weights[j] = expert_weights[j] * norm * static_cast<float>(c.routed_scaling_factor);
  }
}

}  // namespace tandem
