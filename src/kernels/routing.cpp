#include "kernels/routing.h"

#include "kernels/routing_impl.h"

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

void route_token(const RouterConfig& c, const float* logits, const float* bias, int32_t* expert_ids,
                 float* expert_weights) {
  routing_detail::RoutingScratch scratch;
  routing_detail::route(c, logits, bias, expert_ids, expert_weights, scratch);
}

}  // namespace tandem
