#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tandem {

Sampler::Sampler(const SamplingParams& params, std::span<const int32_t> prompt,
                 std::shared_ptr<TokenConstraint> constraint, int64_t max_tokens)
    : params_(params), rng_(params.seed), constraint_(std::move(constraint)), max_tokens_(max_tokens) {
  for (int32_t t : prompt) seen_[t] = 1;
}

void Sampler::constrain(std::span<float> logits) {
  if (!constraint_ || constrained_this_step_) return;
  constrained_this_step_ = true;
  allowed_.resize((logits.size() + 63) / 64);
  constraint_->allowed(allowed_, std::max<int64_t>(max_tokens_ - generated_, 1));
  constexpr float kNever = -std::numeric_limits<float>::infinity();
  for (size_t w = 0; w < allowed_.size(); ++w) {
    const uint64_t bits = allowed_[w];
    if (bits == ~uint64_t{0}) continue;
    const size_t end = std::min(logits.size(), (w + 1) * 64);
    for (size_t t = w * 64; t < end; ++t) {
      if (!((bits >> (t - w * 64)) & 1)) logits[t] = kNever;
    }
  }
}

int32_t Sampler::argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

bool Sampler::accept(int32_t token) {
  ++output_counts_[token];
  seen_[token] = 1;
  ++generated_;
  constrained_this_step_ = false;
  return !constraint_ || constraint_->accept(token);
}

void Sampler::apply_penalties(std::span<float> logits) const {
  for (const auto& [token, bias] : params_.logit_bias) {
    if (token >= 0 && static_cast<size_t>(token) < logits.size()) logits[static_cast<size_t>(token)] += bias;
  }
  if (params_.repetition_penalty != 1.0f) {
    for (const auto& [token, unused] : seen_) {
      float& l = logits[static_cast<size_t>(token)];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [token, count] : output_counts_) {
      logits[static_cast<size_t>(token)] -= params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
    }
  }
}

int32_t Sampler::sample(std::span<float> logits) {
  constrain(logits);
  apply_penalties(logits);
  if (static_cast<size_t>(generated_) < params_.forced_prefix.size()) {
    return params_.forced_prefix[static_cast<size_t>(generated_)];
  }
  if (params_.temperature <= 0.0f || params_.top_k == 1) return argmax(logits);

  // Candidates sorted by logit (ties: lower id first), truncated by top-k.
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  const size_t k = params_.top_k > 0 ? std::min(ids.size(), static_cast<size_t>(params_.top_k)) : ids.size();
  auto by_logit = [&](int32_t a, int32_t b) {
    const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), by_logit);
  ids.resize(k);

  std::vector<double> probs(k);
  const double max_logit = logits[static_cast<size_t>(ids[0])];
  double sum = 0.0;
  for (size_t i = 0; i < k; ++i) {
    probs[i] = std::exp((logits[static_cast<size_t>(ids[i])] - max_logit) / params_.temperature);
    sum += probs[i];
  }
  for (double& p : probs) p /= sum;

  size_t keep = k;
  if (params_.top_p < 1.0f) {
    double cumulative = 0.0;
    for (size_t i = 0; i < k; ++i) {
      cumulative += probs[i];
      if (cumulative >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    const double floor = probs[0] * params_.min_p;
    size_t n = 1;
    while (n < keep && probs[n] >= floor) ++n;
    keep = n;
  }
  std::discrete_distribution<size_t> pick(probs.begin(), probs.begin() + static_cast<std::ptrdiff_t>(keep));
  return ids[pick(rng_)];
}

namespace {
// log of the softmax normalizer of logits / temperature, relative to the max logit.
double log_normalizer(std::span<const float> logits, float temperature, float max_logit) {
  double sum = 0.0;
  for (float l : logits) sum += std::exp((l - max_logit) / temperature);
  return std::log(sum);
}
}  // namespace

float Sampler::logprob_of(std::span<const float> logits, int32_t token) const {
  const float temperature = params_.temperature > 0.0f ? params_.temperature : 1.0f;
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  return static_cast<float>((logits[static_cast<size_t>(token)] - max_logit) / temperature -
                            log_normalizer(logits, temperature, max_logit));
}

std::vector<Sampler::TokenLogprob> Sampler::top_logprobs(std::span<const float> logits, int n) const {
  const float temperature = params_.temperature > 0.0f ? params_.temperature : 1.0f;
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  const double log_sum = log_normalizer(logits, temperature, max_logit);
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  // Tokens a constraint forbids (-inf) are no alternatives.
  const auto finite = static_cast<size_t>(std::count_if(logits.begin(), logits.end(), [](float l) { return std::isfinite(l); }));
  const auto count = std::min(finite, static_cast<size_t>(std::max(n, 0)));
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count), ids.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)] ||
           (logits[static_cast<size_t>(a)] == logits[static_cast<size_t>(b)] && a < b);
  });
  std::vector<TokenLogprob> out;
  for (size_t i = 0; i < count; ++i) {
    const float l = logits[static_cast<size_t>(ids[i])];
    out.push_back({ids[i], static_cast<float>((l - max_logit) / temperature - log_sum)});
  }
  return out;
}

}  // namespace tandem
