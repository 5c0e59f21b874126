// Sampler: picks a request's next token from its logits.
//
// Order of operations (as OpenAI-compatible servers do): repetition penalty over prompt and output
// (logit / p if positive, * p if negative), presence and frequency penalties over the output tokens,
// then temperature, top-k, top-p (nucleus), min-p, and a draw from the request's own random generator
// seeded with `seed`, so the same request gives the same tokens regardless of what else runs.
// temperature == 0 means greedy (argmax, ties to the lower id). A TokenConstraint (constrained decoding) comes
// first of all: tokens it does not allow get -inf before logit_bias, penalties, temperature and truncation, so
// greedy and sampled choices both respect it, and log-probabilities are those of the constrained distribution.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/token_constraint.h"

namespace tandem {

struct SamplingParams {
  float temperature = 0.0f;
  int top_k = 0;              // 0: off
  float top_p = 1.0f;         // 1: off
  float min_p = 0.0f;         // 0: off
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  uint64_t seed = 0;
  // Added to these tokens' logits before anything else (OpenAI's logit_bias; -100 bans, +100 all but forces).
  std::vector<std::pair<int32_t, float>> logit_bias = {};
  // A test hook (the server takes it only with --test-hooks): the first tokens sampled are these, whatever the
  // logits say (log-probabilities are still reported from the logits).
  std::vector<int32_t> forced_prefix = {};
};

class Sampler {
 public:
  // `constraint` (optional) limits the tokens; `max_tokens` is the request's budget, which it is told about.
  Sampler(const SamplingParams& params, std::span<const int32_t> prompt,
          std::shared_ptr<TokenConstraint> constraint = nullptr, int64_t max_tokens = 0);
  // Sets the tokens the constraint forbids at this step to -inf (no-op without one; once per step).
  void constrain(std::span<float> logits);
  // Chooses the next token; `logits` [n_vocab] is modified in place (constrain() first if not done yet). Call
  // accept() with the result.
  int32_t sample(std::span<float> logits);
  // False when the constraint refuses the token (never for a token sample() chose).
  bool accept(int32_t token);
  // Log-probabilities (after penalties and temperature; before truncation) of the last sample() call's
  // distribution, for `logprobs` in the API: fills the chosen token's and the top `n` alternatives.
  struct TokenLogprob {
    int32_t token;
    float logprob;
  };
  std::vector<TokenLogprob> top_logprobs(std::span<const float> logits, int n) const;
  float logprob_of(std::span<const float> logits, int32_t token) const;

  static int32_t argmax(std::span<const float> logits);

 private:
  void apply_penalties(std::span<float> logits) const;

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::unordered_map<int32_t, int> output_counts_;
  std::unordered_map<int32_t, int> seen_;  // prompt + output, for the repetition penalty
  std::shared_ptr<TokenConstraint> constraint_;
  int64_t max_tokens_ = 0, generated_ = 0;
  bool constrained_this_step_ = false;
  std::vector<uint64_t> allowed_;  // the constraint's bitset, reused
};

}  // namespace tandem
