#include "kernels/cpu/moe.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "core/spin_wait.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul.h"

namespace tandem::cpu {

namespace {
// Hidden / output rows per task: fewer tasks per expert matrix mean fewer claims from the shared counter and
// longer streams per prefetch. On the 16-core Xeon (DeepSeek-V2-Lite, 15 runner threads, alternated in one
// sitting) 64 rows gave 71.3 / 72.0 tok/s at c=1 against 67.4 / 64.8 with 32 (and 32 beat 16 before), c=4
// 102.0 / 100.7 against 93.4 / 85.2; 128 was no better than 64 (a noisy sitting: 61.0 / 57.9 against 58.8 /
// 60.2) and leaves a longer tail at the end of a layer.
constexpr int32_t kTaskRows = 64;
}

void MoeScratch::reserve(const ExpertLimits& l, int n_threads) {
  limits_.max_tokens = std::max(limits_.max_tokens, l.max_tokens);
  limits_.n_embd = std::max(limits_.n_embd, l.n_embd);
  limits_.max_ff = std::max(limits_.max_ff, l.max_ff);
  limits_.k = std::max(limits_.k, l.k);
  limits_.max_experts = std::max(limits_.max_experts, l.max_experts);
  const auto slots = static_cast<size_t>(limits_.max_tokens) * static_cast<size_t>(limits_.k);
  const auto e = static_cast<size_t>(limits_.n_embd), f = static_cast<size_t>(limits_.max_ff);
  expert_start.assign(static_cast<size_t>(limits_.max_experts) + 1, 0);
  slot_order.assign(slots, 0);
  slot_position.assign(slots, 0);
  x_sorted.assign(slots * e, 0.0f);
  act.assign(slots * f, 0.0f);
  up.assign(slots * f, 0.0f);
  down.assign(slots * e, 0.0f);
  x_quantized.reserve(max_prepared_row_bytes(limits_.n_embd) * std::max<size_t>(slots, 1));
  act_quantized.reserve(max_prepared_row_bytes(limits_.max_ff) * std::max<size_t>(slots, 1));
  const int64_t max_rows = std::max(limits_.n_embd, limits_.max_ff);
  const int64_t tiles = (limits_.n_embd + kTaskRows - 1) / kTaskRows + (limits_.max_ff + kTaskRows - 1) / kTaskRows;
  tasks.resize(static_cast<size_t>(limits_.max_experts * tiles));
  gate_up_left = std::make_unique<std::atomic<int32_t>[]>(static_cast<size_t>(limits_.max_experts));
  decode.reserve(n_threads, matmul_thread_scratch_bytes(max_rows));
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
  if (!has_fast_matmul(g.type) || !has_fast_matmul(d.type)) {
    return fmt::format("moe: no expert kernel for {} / {}", ggml_type_name(g.type), ggml_type_name(d.type));
  }
  return {};
}

void run_experts(ThreadPool& pool, MoeScratch& s, const ExpertJob& job) {
  if (std::string problem = check_expert_job(job); !problem.empty()) throw std::invalid_argument(problem);
  const Tensor &gate = job.experts.gate, &up = job.experts.up, &down = job.experts.down;
  const int64_t n_embd = gate.cols(), n_ff = gate.rows(), n_experts = gate.slices();
  const int64_t n = job.x.rows(), k = job.ids.cols(), n_slots = n * k;
  const ExpertLimits& l = s.limits_;
  if (n > l.max_tokens || k > l.k || n_embd > l.n_embd || n_ff > l.max_ff || n_experts > l.max_experts) {
    throw std::invalid_argument(fmt::format("moe: job of {} tokens x {} experts (n_embd {}, n_ff {}, {} experts) "
                                            "exceeds the reserved limits", n, k, n_embd, n_ff, n_experts));
  }
  const MatmulIsa isa = selected_matmul_isa();
  const ActivationPrecision precision = selected_activation_precision();

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
    for (int64_t j = 0; j < k; ++j) {
      const int32_t position = start[ids[j]]++;
      s.slot_order[static_cast<size_t>(position)] = static_cast<int32_t>(t * k + j);
      s.slot_position[static_cast<size_t>(t * k + j)] = position;
    }
  }
  for (int64_t e = n_experts; e > 0; --e) start[e] = start[e - 1];  // undo the shift of the fill loop
  start[0] = 0;
  for (int64_t i = 0; i < n_slots; ++i) {
    const float* src = job.x.row<const float>(s.slot_order[static_cast<size_t>(i)] / k);
    std::copy(src, src + n_embd, s.x_sorted.data() + i * n_embd);
  }
  const bool quantized = needs_prepared_activations(gate.type, precision);
  const size_t x_row_bytes = prepared_row_bytes(gate.type, precision, n_embd);
  const size_t act_row_bytes = prepared_row_bytes(down.type, precision, n_ff);
  if (quantized) prepare_activations(pool, gate.type, s.x_sorted.data(), n_embd, n_slots, n_embd, s.x_quantized.data());

  // Both phases in one pass over one task list, handed out dynamically: all phase-1 tasks (gate and up rows
  // of a tile of an expert's hidden units, then SwiGLU on them), then all phase-2 tasks (the down product for
  // a tile of an expert's output rows), each phase in expert order. A phase-2 task waits for its expert's
  // phase-1 tasks; the thread that finishes an expert's last one prepares that expert's activation rows for
  // the down product. Why not a barrier between the phases: it left every thread idle while the slowest
  // phase-1 tasks finished (up to a task each, ~15 us at decode) and while one thread prepared the
  // activations, at every MoE layer. No deadlock: tasks are claimed in list order, so when a phase-2 task is
  // claimed every phase-1 task has been claimed by a running thread, and phase-1 tasks never wait.
  auto make_tasks = [&](int64_t rows, int64_t count) {
    for (int32_t e = 0; e < n_experts; ++e) {
      if (start[e + 1] == start[e]) continue;
      for (int32_t r = 0; r < rows; r += kTaskRows) {
        s.tasks[static_cast<size_t>(count++)] = {e, r, static_cast<int32_t>(std::min<int64_t>(rows, r + kTaskRows))};
      }
    }
    return count;
  };
  const int64_t n_gate_up_tasks = make_tasks(n_ff, 0);
  const int64_t n_tasks = make_tasks(n_embd, n_gate_up_tasks);
  const auto tasks_per_expert = static_cast<int32_t>((n_ff + kTaskRows - 1) / kTaskRows);
  for (int64_t e = 0; e < n_experts; ++e) s.gate_up_left[static_cast<size_t>(e)].store(tasks_per_expert, std::memory_order_relaxed);
  s.failed.store(false, std::memory_order_relaxed);
  const bool down_quantized = needs_prepared_activations(down.type, precision);

  auto gate_up = [&](const MoeScratch::Task& task, int thread) {
    const int64_t first = start[task.expert], m = start[task.expert + 1] - first;
    const uint8_t* xq = quantized ? s.x_quantized.data() + static_cast<size_t>(first) * x_row_bytes : nullptr;
    const float* x = s.x_sorted.data() + first * n_embd;
    float* g = s.act.data() + first * n_ff;
    float* u = s.up.data() + first * n_ff;
    qmatmul_rows(isa, precision, gate, task.expert, task.row_begin, task.row_end, xq, x, n_embd, m, g, n_ff,
                 s.decode.get(thread));
    qmatmul_rows(isa, precision, up, task.expert, task.row_begin, task.row_end, xq, x, n_embd, m, u, n_ff,
                 s.decode.get(thread));
    for (int64_t t = 0; t < m; ++t) {
      float* row = g + t * n_ff + task.row_begin;
      swiglu(row, u + t * n_ff + task.row_begin, row, task.row_end - task.row_begin);
    }
    // The release of this decrement publishes the tile; the last one acquires every other tile of the expert.
    std::atomic<int32_t>& left = s.gate_up_left[static_cast<size_t>(task.expert)];
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      if (down_quantized) {
        prepare_activation_rows(isa, down.type, precision, s.act.data() + first * n_ff, n_ff, m, n_ff,
                                s.act_quantized.data() + static_cast<size_t>(first) * act_row_bytes);
      }
      left.store(MoeScratch::kExpertReady, std::memory_order_release);
    }
  };
  auto down_rows = [&](const MoeScratch::Task& task, int thread) {
    const std::atomic<int32_t>& left = s.gate_up_left[static_cast<size_t>(task.expert)];
    while (left.load(std::memory_order_acquire) != MoeScratch::kExpertReady) {
      if (s.failed.load(std::memory_order_relaxed)) return;  // the failed task's error is the job's
      cpu_relax();
    }
    const int64_t first = start[task.expert], m = start[task.expert + 1] - first;
    const uint8_t* aq = down_quantized ? s.act_quantized.data() + static_cast<size_t>(first) * act_row_bytes : nullptr;
    qmatmul_rows(isa, precision, down, task.expert, task.row_begin, task.row_end, aq, s.act.data() + first * n_ff, n_ff,
                 m, s.down.data() + first * n_embd, n_embd, s.decode.get(thread));
  };
  s.next_task = 0;
  Status st = pool.parallel_for(pool.size(), [&](int64_t, int64_t, int thread) {
    for (int64_t i = s.next_task.fetch_add(1); i < n_tasks; i = s.next_task.fetch_add(1)) {
      const MoeScratch::Task& task = s.tasks[static_cast<size_t>(i)];
      if (i >= n_gate_up_tasks) {
        down_rows(task, thread);
        continue;
      }
      try {
        gate_up(task, thread);
      } catch (...) {
        s.failed.store(true, std::memory_order_relaxed);  // releases the down tasks waiting for this expert
        throw;
      }
    }
  });
  if (!st) throw std::runtime_error(st.message());

  // Fixed summation order per token: slot 0, 1, ..., k-1.
  for (int64_t t = 0; t < n; ++t) {
    float* o = job.out.row<float>(t);
    const float* w = job.weights.row<const float>(t);
    std::fill(o, o + n_embd, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const float wj = w[j];
      const float* src = s.down.data() + static_cast<int64_t>(s.slot_position[static_cast<size_t>(t * k + j)]) * n_embd;
      for (int64_t c = 0; c < n_embd; ++c) o[c] += wj * src[c];
    }
  }
}

}  // namespace tandem::cpu
