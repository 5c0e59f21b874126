#include "kernels/cpu_backend.h"

#include <chrono>
#include <cmath>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/quant.h"
#include "kernels/ops.h"

namespace tandem {

namespace {

// A weight row as floats: F32 rows are used in place, other types are dequantized into `scratch`.
const float* row_as_f32(const WeightTensor& w, int64_t mat, int64_t r, std::vector<float>& scratch) {
  const uint8_t* row = w.row(mat, r);
  if (w.type == GgmlType::F32) return reinterpret_cast<const float*>(row);
  scratch.resize(static_cast<size_t>(w.cols));
  cpu::dequantize_row(w.type, row, scratch.data(), w.cols);
  return scratch.data();
}

void check_cpu_weight(const WeightTensor& w) {
  if (w.device != Device::Cpu) throw std::invalid_argument("CpuBackend: weight " + w.name + " is not in host memory");
  if (!cpu::is_computable(w.type)) {
    throw std::invalid_argument(fmt::format("CpuBackend: no kernel for type {} (tensor {})", ggml_type_name(w.type), w.name));
  }
}

}  // namespace

CpuBackend::CpuBackend(int n_threads) : pool_(n_threads) {}
CpuBackend::~CpuBackend() = default;

std::string CpuBackend::describe() const {
  return fmt::format("cpu ({} threads, {} kernels)", pool_.size(), cpu::isa_name(cpu::best_isa()));
}

void CpuBackend::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) { pool_.parallel_for(n, fn); }

void CpuBackend::matmul(const WeightTensor& w, int64_t mat, const float* x, int64_t n_tokens, float* y) {
  check_cpu_weight(w);
  const int64_t cols = w.cols, rows = w.rows;
  constexpr int64_t kRowBlock = 4;  // rows dequantized together, then multiplied with every token
  pool_.parallel_for(rows, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch;  // [kRowBlock, cols]
    for (int64_t r = begin; r < end; r += kRowBlock) {
      const int64_t n = std::min(kRowBlock, end - r);
      const float* block;
      if (w.type == GgmlType::F32) {
        block = reinterpret_cast<const float*>(w.row(mat, r));
      } else {
        scratch.resize(static_cast<size_t>(kRowBlock * cols));
        for (int64_t i = 0; i < n; ++i) cpu::dequantize_row(w.type, w.row(mat, r + i), scratch.data() + i * cols, cols);
        block = scratch.data();
      }
      cpu::gemm_f32(block, cols, n, x, cols, n_tokens, cols, y + r, rows);
    }
  });
}

void CpuBackend::get_rows(const WeightTensor& w, const int32_t* ids, int64_t n, float* out) {
  check_cpu_weight(w);
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= w.rows) {
      throw std::out_of_range(fmt::format("token id {} out of range [0, {})", ids[i], w.rows));
    }
    std::vector<float> scratch;
    const float* row = row_as_f32(w, 0, ids[i], scratch);
    std::copy(row, row + w.cols, out + i * w.cols);
  }
}

void CpuBackend::moe(const ExpertWeights& experts, const float* x, int64_t n_tokens, int k, const int32_t* ids,
                     const float* weights, float* out) {
  const auto started = std::chrono::steady_clock::now();
  const WeightTensor& gate = *experts.gate;
  const WeightTensor& up = *experts.up;
  const WeightTensor& down = *experts.down;
  const int64_t n_embd = gate.cols, n_ff = gate.rows, n_experts = gate.n_mats;

  // Group (token, slot) pairs by expert so each expert's weights are read once for the whole call.
  std::vector<std::vector<int64_t>> slots_of_expert(static_cast<size_t>(n_experts));
  for (int64_t i = 0; i < n_tokens * k; ++i) {
    if (ids[i] < 0 || ids[i] >= n_experts) throw std::out_of_range("moe: expert id out of range");
    slots_of_expert[static_cast<size_t>(ids[i])].push_back(i);
  }

  std::vector<float> slot_out(static_cast<size_t>(n_tokens * k * n_embd));  // [n_tokens * k, n_embd]
  std::vector<float> xin, g, u, d;
  for (int64_t e = 0; e < n_experts; ++e) {
    const auto& slots = slots_of_expert[static_cast<size_t>(e)];
    const auto m = static_cast<int64_t>(slots.size());
    if (m == 0) continue;
    xin.resize(static_cast<size_t>(m * n_embd));
    for (int64_t j = 0; j < m; ++j) {
      const float* src = x + (slots[static_cast<size_t>(j)] / k) * n_embd;
      std::copy(src, src + n_embd, xin.data() + j * n_embd);
    }
    g.resize(static_cast<size_t>(m * n_ff));
    u.resize(static_cast<size_t>(m * n_ff));
    d.resize(static_cast<size_t>(m * n_embd));
    matmul(gate, e, xin.data(), m, g.data());
    matmul(up, e, xin.data(), m, u.data());
    swiglu(g.data(), u.data(), g.data(), m * n_ff);
    matmul(down, e, g.data(), m, d.data());
    for (int64_t j = 0; j < m; ++j) {
      std::copy(d.data() + j * n_embd, d.data() + (j + 1) * n_embd,
                slot_out.data() + slots[static_cast<size_t>(j)] * n_embd);
    }
  }
  // Fixed summation order per token: slot 0, 1, ..., k-1.
  for (int64_t t = 0; t < n_tokens; ++t) {
    float* o = out + t * n_embd;
    std::fill(o, o + n_embd, 0.0f);
    for (int j = 0; j < k; ++j) {
      const float wj = weights[t * k + j];
      const float* s = slot_out.data() + (t * k + j) * n_embd;
      for (int64_t c = 0; c < n_embd; ++c) o[c] += wj * s[c];
    }
  }
  expert_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

}  // namespace tandem
