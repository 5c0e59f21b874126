// Backend: where the heavy operations of a forward pass run, and the weights they read.
//
// A WeightTensor is a view of a matrix (or a stack of expert matrices) exactly as the GGUF stores it and
// knows its device. The model calls the Backend for every operation that reads weights (matmul, embedding
// lookup, the MoE expert block); the backend looks up the kernel for the weight's (device, type). The CPU
// backend is the only one today; a CUDA backend implements the same interface for attention and dense
// layers while experts stay on the CPU. Activations are float32, row-major, one row per token.
//
// Batch invariance: implementations must compute each output row with a reduction order that does not
// depend on how many tokens share the call (no batch-size-dependent split-K), so a token's result is the
// same alone or in a batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "gguf/ggml_type.h"

namespace tandem {

enum class Device { Cpu, Cuda };

struct WeightTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  int64_t cols = 0;         // ne[0]: values per row (the input dimension)
  int64_t rows = 0;         // ne[1]: output dimension
  int64_t n_mats = 1;       // ne[2]: number of stacked matrices (experts)
  size_t row_bytes = 0;
  const uint8_t* data = nullptr;  // [n_mats][rows][row_bytes]
  Device device = Device::Cpu;

  bool valid() const { return data != nullptr; }
  const uint8_t* row(int64_t mat, int64_t r) const {
    return data + (static_cast<size_t>(mat) * static_cast<size_t>(rows) + static_cast<size_t>(r)) * row_bytes;
  }
};

// The three matrices of a set of SwiGLU experts: out = down(silu(gate(x)) * up(x)).
struct ExpertWeights {
  const WeightTensor* gate = nullptr;  // [n_experts][n_ff][n_embd]
  const WeightTensor* up = nullptr;    // [n_experts][n_ff][n_embd]
  const WeightTensor* down = nullptr;  // [n_experts][n_embd][n_ff]
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string describe() const = 0;

  // y[t][r] = sum_c W[mat][r][c] * x[t][c].   x: [n_tokens, w.cols], y: [n_tokens, w.rows]
  virtual void matmul(const WeightTensor& w, int64_t mat, const float* x, int64_t n_tokens, float* y) = 0;
  // out[i] = row ids[i] of W (matrix 0), as float.   out: [n, w.cols]
  virtual void get_rows(const WeightTensor& w, const int32_t* ids, int64_t n, float* out) = 0;
  // out[t] = sum_j weights[t][j] * expert_{ids[t][j]}(x[t]), slots summed in j order.
  //   x: [n_tokens, n_embd], ids/weights: [n_tokens, k], out: [n_tokens, n_embd]
  virtual void moe(const ExpertWeights& experts, const float* x, int64_t n_tokens, int k, const int32_t* ids,
                   const float* weights, float* out) = 0;
  // Seconds spent in moe() since construction (the engine reports the CPU-expert share of a step).
  virtual double expert_seconds() const { return 0.0; }
  // Runs fn over a static partition of [0, n) on the backend's host threads.
  virtual void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) = 0;
};

}  // namespace tandem
