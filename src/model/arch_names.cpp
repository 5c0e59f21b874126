#include "model/arch_names.h"

#include <fmt/format.h>

namespace tandem {

namespace {
const char* pattern(TensorKind kind) {
  switch (kind) {
    case TensorKind::TokenEmbd: return "token_embd.weight";
    case TensorKind::OutputNorm: return "output_norm.weight";
    case TensorKind::Output: return "output.weight";
    case TensorKind::AttnNorm: return "blk.{}.attn_norm.weight";
    case TensorKind::FfnNorm: return "blk.{}.ffn_norm.weight";
    case TensorKind::AttnQ: return "blk.{}.attn_q.weight";
    case TensorKind::AttnQA: return "blk.{}.attn_q_a.weight";
    case TensorKind::AttnQANorm: return "blk.{}.attn_q_a_norm.weight";
    case TensorKind::AttnQB: return "blk.{}.attn_q_b.weight";
    case TensorKind::AttnKvAMqa: return "blk.{}.attn_kv_a_mqa.weight";
    case TensorKind::AttnKvANorm: return "blk.{}.attn_kv_a_norm.weight";
    case TensorKind::AttnKvB: return "blk.{}.attn_kv_b.weight";
    case TensorKind::AttnKB: return "blk.{}.attn_k_b.weight";
    case TensorKind::AttnVB: return "blk.{}.attn_v_b.weight";
    case TensorKind::AttnK: return "blk.{}.attn_k.weight";
    case TensorKind::AttnV: return "blk.{}.attn_v.weight";
    case TensorKind::AttnQNorm: return "blk.{}.attn_q_norm.weight";
    case TensorKind::AttnKNorm: return "blk.{}.attn_k_norm.weight";
    case TensorKind::AttnOutput: return "blk.{}.attn_output.weight";
    case TensorKind::FfnGate: return "blk.{}.ffn_gate.weight";
    case TensorKind::FfnUp: return "blk.{}.ffn_up.weight";
    case TensorKind::FfnDown: return "blk.{}.ffn_down.weight";
    case TensorKind::FfnGateInp: return "blk.{}.ffn_gate_inp.weight";
    case TensorKind::ExpProbsB: return "blk.{}.exp_probs_b.bias";
    case TensorKind::FfnGateExps: return "blk.{}.ffn_gate_exps.weight";
    case TensorKind::FfnUpExps: return "blk.{}.ffn_up_exps.weight";
    case TensorKind::FfnDownExps: return "blk.{}.ffn_down_exps.weight";
    case TensorKind::FfnGateShexp: return "blk.{}.ffn_gate_shexp.weight";
    case TensorKind::FfnUpShexp: return "blk.{}.ffn_up_shexp.weight";
    case TensorKind::FfnDownShexp: return "blk.{}.ffn_down_shexp.weight";
  }
  return "?";
}
}  // namespace

std::string tensor_name(TensorKind kind, int layer) {
  const std::string_view p = pattern(kind);
  if (p.find("{}") == std::string_view::npos) return std::string(p);
  return fmt::format(fmt::runtime(p), layer);
}

bool is_routed_expert(TensorKind kind) {
  return kind == TensorKind::FfnGateExps || kind == TensorKind::FfnUpExps || kind == TensorKind::FfnDownExps;
}

}  // namespace tandem
