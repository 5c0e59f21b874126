#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/ops.h"

namespace tandem {

namespace {

// Indices of the k largest values, largest first, ties to the lower index.
std::vector<int32_t> top_k(const std::vector<float>& values, int k) {
  std::vector<int32_t> idx(values.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
    const float va = values[static_cast<size_t>(a)], vb = values[static_cast<size_t>(b)];
    return va > vb || (va == vb && a < b);
  });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

// Sets the choice scores of experts outside the best topk_group groups to 0, as the reference does.
void mask_groups(const RouterConfig& c, std::vector<float>& choice) {
  const int per_group = c.n_experts / c.n_group;
  std::vector<float> group_score(static_cast<size_t>(c.n_group));
  for (int g = 0; g < c.n_group; ++g) {
    std::vector<float> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
    if (c.topk_method == TopkMethod::NoauxTc) {
      const int n_best = std::min(2, per_group);
      std::partial_sort(members.begin(), members.begin() + n_best, members.end(), std::greater<>());
      group_score[static_cast<size_t>(g)] = std::accumulate(members.begin(), members.begin() + n_best, 0.0f);
    } else {
      group_score[static_cast<size_t>(g)] = *std::max_element(members.begin(), members.end());
    }
  }
  std::vector<bool> keep(static_cast<size_t>(c.n_group), false);
  for (int32_t g : top_k(group_score, c.topk_group)) keep[static_cast<size_t>(g)] = true;
  for (int e = 0; e < c.n_experts; ++e) {
    if (!keep[static_cast<size_t>(e / per_group)]) choice[static_cast<size_t>(e)] = 0.0f;
  }
}

}  // namespace

void route_token(const RouterConfig& c, const float* logits, const float* bias, int32_t* expert_ids,
                 float* expert_weights) {
  const auto n = static_cast<size_t>(c.n_experts);
  std::vector<float> scores(logits, logits + n);
  if (c.scoring == ScoringFunc::Softmax) {
    softmax(scores.data(), c.n_experts);
  } else {
    for (float& s : scores) s = 1.0f / (1.0f + std::exp(-s));
  }
  std::vector<float> choice = scores;
  if (c.topk_method == TopkMethod::NoauxTc && bias) {
    for (size_t e = 0; e < n; ++e) choice[e] += bias[e];
  }
  if (c.topk_method != TopkMethod::Greedy && c.n_group > 1) mask_groups(c, choice);

  const std::vector<int32_t> chosen = top_k(choice, c.n_experts_used);
  float sum = 0.0f;
  for (int j = 0; j < c.n_experts_used; ++j) {
    expert_ids[j] = chosen[static_cast<size_t>(j)];
    expert_weights[j] = scores[static_cast<size_t>(chosen[static_cast<size_t>(j)])];
    sum += expert_weights[j];
  }
  const float norm = c.norm_topk_prob ? 1.0f / (sum + 1e-20f) : 1.0f;
  for (int j = 0; j < c.n_experts_used; ++j) {
    expert_weights[j] = expert_weights[j] * norm * static_cast<float>(c.routed_scaling_factor);
  }
}

}  // namespace tandem
