// Test support: a model loaded on the CPU backend (and expert runner), and direct forward passes over
// hand-made batches, for the model, engine and no-allocation tests.
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "core/status.h"
#include "gguf/gguf_file.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_expert_runner.h"
#include "kernels/fault_injection.h"
#include "model/model.h"

namespace tandem::testing {

// Where the routed experts run: on the ExpertRunner (the default configuration), or inside the backend.
enum class ExpertPath { Runner, Backend };

struct LoadedModel {
  std::shared_ptr<GgufModel> gguf;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ExpertRunner> runner;
  std::unique_ptr<Model> model;  // last: destroyed first
};

// Loads a GGUF with its config.json folder (may be empty) on a CpuBackend of `threads` threads; with
// `faults`, the backend and the runner fail as the plan says (fault_injection.h).
Result<LoadedModel> load_model(const std::filesystem::path& gguf_path, const std::filesystem::path& config_dir,
                               int threads = 2, ExpertPath experts = ExpertPath::Runner,
                               const Placement& placement = Placement(), const FaultPlan* faults = nullptr);

// A KV cache and step buffers for direct Model::forward calls.
class ForwardHarness {
 public:
  ForwardHarness(Model& model, int page_size, int n_pages, int64_t max_tokens = 256, int64_t max_sequences = 8);
  // Runs one step; logits() then returns its [output_tokens.size(), n_vocab] logits.
  Status run(const ForwardBatch& batch, ForwardStats* stats = nullptr);
  std::vector<float> logits() const;
  PagedKvCache& cache() { return *cache_; }
  StepBuffers& buffers() { return *buffers_; }

 private:
  Model& model_;
  std::unique_ptr<PagedKvCache> cache_;
  StepBuffersPtr buffers_;
  std::vector<float> logits_;
  size_t n_outputs_ = 0;
};

// Runs `ids` as one sequence (pages 0, 1, ... of `page_size` tokens) in chunks of `chunk` tokens and
// returns the last position's logits.
std::vector<float> run_solo(Model& model, const std::vector<int32_t>& ids, int chunk, int page_size = 4);

}  // namespace tandem::testing
