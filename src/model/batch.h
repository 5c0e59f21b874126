// ForwardBatch: one engine step's tokens, from any number of sequences, flattened.
//
// Token i belongs to sequence seq_index[i] (an index into page_tables) at position positions[i]. A
// sequence's page table must already cover every position the batch writes. Tokens of one sequence may
// appear several times (a prefill chunk) and attend to all earlier positions of their sequence: those in
// the cache from earlier steps and those earlier in this batch. Logits are computed only for the tokens
// listed in output_tokens, in that order. The last streamed_expert_tokens tokens run their routed experts on
// the main device with streamed weights when the model can (Model::streams_experts()): the engine marks the
// tokens of long prompts so, a property of the token, not of the step (batch invariance).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace tandem {

struct ForwardBatch {
  std::vector<int32_t> tokens;                        // [n_tokens]
  std::vector<int64_t> positions;                     // [n_tokens]
  std::vector<int32_t> seq_index;                     // [n_tokens]
  std::vector<std::span<const int32_t>> page_tables;  // [n_seqs]
  std::vector<int32_t> output_tokens;                 // indices into tokens whose logits are wanted
  int64_t streamed_expert_tokens = 0;                 // the batch's last tokens with streamed experts

  int64_t size() const { return static_cast<int64_t>(tokens.size()); }
  std::span<const int32_t> pages_of(int64_t token) const {
    return page_tables[static_cast<size_t>(seq_index[static_cast<size_t>(token)])];
  }
};

}  // namespace tandem
