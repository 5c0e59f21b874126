// Load benchmark: runs N generation requests through the Engine at several concurrency levels and
// reports throughput and latency per level (what `tandem bench` prints and writes as JSON).
//
// At level c the engine batches up to c requests per step and c requests are kept in flight (closed
// loop: a finished request is replaced at once), or requests arrive as a Poisson process of the given
// rate. Each level gets its own engine (make_engine). Decode throughput counts tokens of steps that only decode, over those steps' time; prefill
// throughput the prompt tokens of steps with prefill work over those steps' time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/runtime.h"

namespace tandem::app {

struct LoadBenchOptions {
  int requests = 16;              // per level
  int prompt_len = 64;
  int gen_len = 32;
  std::vector<int> concurrency{1, 2, 4, 8};
  double arrival_rate = 0;        // requests/s (Poisson); 0: closed loop at the level's concurrency
  int chunk_size = 512;
  int page_size = 16;
  uint64_t seed = 1;
  // Every request gets the same prompt (and, greedy, generates the same tokens, so concurrent requests route
  // to the same experts): how benchmarks that feed all sequences one input measure. Off: distinct random prompts.
  bool same_prompt = false;
};

struct LevelResult {
  int concurrency = 0;
  int requests = 0;
  double wall_seconds = 0;
  double decode_tokens_per_s = 0;
  double prefill_tokens_per_s = 0;
  double output_tokens_per_s = 0;   // all generated tokens over wall time
  double ttft_p50_ms = 0, ttft_p99_ms = 0;
  double tpot_p50_ms = 0, tpot_p99_ms = 0;
  double expert_share = 0;          // ExpertRunner compute time over forward time (it overlaps other work)
  double expert_wait_share = 0;     // forward time blocked waiting for the ExpertRunner
  double device_share = -1;         // main device (GPU) busy time over forward time; -1: not measured (CPU)
  double experts_per_layer = -1;    // distinct experts a decode step's MoE layer read on the CPU runner; -1: none
};

// `progress` receives one status line now and then (may be empty).
std::vector<LevelResult> run_load_bench(const Runtime& runtime, const LoadBenchOptions& options,
                                        const std::function<void(const std::string&)>& progress);
nlohmann::json to_json(const std::vector<LevelResult>& results, const LoadBenchOptions& options);
std::string to_table(const std::vector<LevelResult>& results);

}  // namespace tandem::app
