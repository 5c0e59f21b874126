// StepBuffers: every activation of a forward pass, allocated once for the largest step (internal to model/).
//
// Device tensors are sized {width, max_tokens} (or max_sequences for the output rows); a step of n tokens
// uses views of their first n rows. Host tensors stage the batch description and the routed experts'
// inputs and outputs (the ExpertRunner works on host memory). Nothing here is allocated during a step.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"

namespace tandem {

class StepBuffers {
 public:
  StepLimits limits;
  uint64_t id = 0;  // distinct per set made by a model (keys its recorded runs)
  int64_t page_table_capacity = 0;  // page ids all sequences of a step may list

  // Batch description, I32; host_* are the staging copies.
  Tensor tokens, positions, seq_of_token, page_table_start, page_table, output_rows;
  Tensor host_tokens, host_positions, host_seq_of_token, host_page_table_start, host_page_table, host_output_rows;
  std::vector<int64_t> last_position;  // [max_sequences]: per sequence, the largest position in the step

  // Residual stream and layer inputs / outputs, {n_embd, max_tokens}.
  Tensor hidden, normed, block_out;
  // Attention: projections and per-head intermediates (MLA and GQA use different subsets).
  Tensor q, q_lora, kv, q_latent, o_latent, heads, k, v;
  // Feed-forward: gate / up products {max_ff, max_tokens}, routing, expert outputs.
  Tensor ffn_gate, ffn_up, router_logits, expert_ids, expert_weights, shared_out, routed_out;
  // Routed experts' host staging.
  Tensor host_expert_x, host_expert_ids, host_expert_weights, host_expert_out;
  // Output rows {n_embd, max_sequences} and their logits {n_vocab, max_sequences}.
  Tensor final_rows, logits;

  double expert_wait_seconds = 0;  // time this step's forward spent waiting for the ExpertRunner
};

}  // namespace tandem
