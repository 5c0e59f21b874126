#include "kernels/cpu/moe.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "kernels/cpu/ops.h"

namespace tandem::cpu {

void MoeScratch::reserve(const ExpertLimits& l, int n_threads) {
  limits_.max_tokens = std::max(limits_.max_tokens, l.max_tokens);
  limits_.n_embd = std::max(limits_.n_embd, l.n_embd);
  limits_.max_ff = std::max(limits_.max_ff, l.max_ff);
  limits_.k = std::max(limits_.k, l.k);
  limits_.max_experts = std::max(limits_.max_experts, l.max_experts);
  const auto t = static_cast<size_t>(limits_.max_tokens), e = static_cast<size_t>(limits_.n_embd);
  const auto f = static_cast<size_t>(limits_.max_ff), k = static_cast<size_t>(limits_.k);
  expert_start.assign(static_cast<size_t>(limits_.max_experts) + 1, 0);
  slot_order.assign(t * k, 0);
  x_in.assign(t * e, 0.0f);
  gate.assign(t * f, 0.0f);
  up.assign(t * f, 0.0f);
  down.assign(t * e, 0.0f);
  slot_out.assign(t * k * e, 0.0f);
  matmul_scratch.reserve(n_threads, limits_.max_tokens, std::max(limits_.n_embd, limits_.max_ff));
}

std::string check_expert_job(const ExpertJob& j) {
  const Tensor &g = j.experts.gate, &u = j.experts.up, &d = j.experts.down;
  const int64_t n_embd = g.cols(), n_ff = g.rows(), n_exp = g.slices(), n = j.x.rows();
  if (u.ne != g.ne || d.cols() != n_ff || d.rows() != n_embd || d.slices() != n_exp) {
    return fmt::format("moe: expert shapes disagree: gate {}, up {}, down {}", describe(g), describe(u), describe(d));
  }
  if (j.x.type != GgmlType::F32 || j.x.cols() != n_embd || j.out.type != GgmlType::F32 || j.out.ne != j.x.ne ||
      j.ids.type != GgmlType::I32 || j.ids.rows() != n || j.weights.type != GgmlType::F32 ||
      j.weights.ne != j.ids.ne) {
    return fmt::format("moe: activation shapes disagree: x {}, ids {}, weights {}, out {}", describe(j.x),
                       describe(j.ids), describe(j.weights), describe(j.out));
  }
  return {};
}

void run_experts(ThreadPool& pool, MoeScratch& s, const ExpertJob& job) {
  if (std::string problem = check_expert_job(job); !problem.empty()) throw std::invalid_argument(problem);
  const Tensor &gate = job.experts.gate, &up = job.experts.up, &down = job.experts.down;
  const int64_t n_embd = gate.cols(), n_ff = gate.rows(), n_experts = gate.slices();
  const int64_t n = job.x.rows(), k = job.ids.cols();
  const ExpertLimits& l = s.limits_;
  if (n > l.max_tokens || k > l.k || n_embd > l.n_embd || n_ff > l.max_ff || n_experts > l.max_experts) {
    throw std::invalid_argument(fmt::format("moe: job of {} tokens x {} experts (n_embd {}, n_ff {}, {} experts) "
                                            "exceeds the reserved limits", n, k, n_embd, n_ff, n_experts));
  }

  // Counting sort of the (token, slot) pairs by expert, slots ascending within an expert.
  int32_t* start = s.expert_start.data();
  std::fill(start, start + n_experts + 1, 0);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* ids = job.ids.row<const int32_t>(t);
    for (int64_t j = 0; j < k; ++j) {
      if (ids[j] < 0 || ids[j] >= n_experts) {
        throw std::invalid_argument(fmt::format("moe: expert id {} out of range [0, {})", ids[j], n_experts));
      }
      ++start[ids[j] + 1];
    }
  }
  for (int64_t e = 0; e < n_experts; ++e) start[e + 1] += start[e];
  for (int64_t t = 0; t < n; ++t) {
    const int32_t* ids = job.ids.row<const int32_t>(t);
    for (int64_t j = 0; j < k; ++j) s.slot_order[static_cast<size_t>(start[ids[j]]++)] = static_cast<int32_t>(t * k + j);
  }
  for (int64_t e = n_experts; e > 0; --e) start[e] = start[e - 1];  // undo the shift of the fill loop
  start[0] = 0;

  for (int64_t e = 0; e < n_experts; ++e) {
    const int64_t first = start[e], m = start[e + 1] - first;
    if (m == 0) continue;
    for (int64_t j = 0; j < m; ++j) {
      const float* src = job.x.row<const float>(s.slot_order[static_cast<size_t>(first + j)] / k);
      std::copy(src, src + n_embd, s.x_in.data() + j * n_embd);
    }
    matmul(pool, s.matmul_scratch, gate, e, s.x_in.data(), n_embd, m, s.gate.data(), n_ff);
    matmul(pool, s.matmul_scratch, up, e, s.x_in.data(), n_embd, m, s.up.data(), n_ff);
    swiglu(s.gate.data(), s.up.data(), s.gate.data(), m * n_ff);
    matmul(pool, s.matmul_scratch, down, e, s.gate.data(), n_ff, m, s.down.data(), n_embd);
    for (int64_t j = 0; j < m; ++j) {
      const float* d = s.down.data() + j * n_embd;
      std::copy(d, d + n_embd, s.slot_out.data() + static_cast<int64_t>(s.slot_order[static_cast<size_t>(first + j)]) * n_embd);
    }
  }
  // Fixed summation order per token: slot 0, 1, ..., k-1.
  for (int64_t t = 0; t < n; ++t) {
    float* o = job.out.row<float>(t);
    const float* w = job.weights.row<const float>(t);
    std::fill(o, o + n_embd, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const float wj = w[j];
      const float* src = s.slot_out.data() + (t * k + j) * n_embd;
      for (int64_t c = 0; c < n_embd; ++c) o[c] += wj * src[c];
    }
  }
}

}  // namespace tandem::cpu
