// Runtime: everything a command needs to run a model, wired one way for serve, eval and bench.
//
// build_runtime() opens the GGUF (file, split part or folder) and its config, builds the placement from
// the flags, creates the main backend and the CPU expert runner, loads the model onto them and logs the
// routing sources and where every weight went. make_engine() then creates an engine with the scheduler
// settings given (bench makes one per concurrency level). add_runtime_options() registers the shared
// flags, with one set of defaults, in every command.
//
// TANDEM_INJECT_FAULT=OP:N[:PERIOD] (see kernels/fault_injection.h) wraps the backend and the runner so
// that the chosen operation fails: the fault-injection tests use it to prove a failing step only fails
// its own requests.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "app/placement_options.h"
#include "core/status.h"
#include "engine/engine.h"
#include "gguf/gguf_file.h"
#include "kernels/backend.h"
#include "kernels/expert_runner.h"
#include "model/model.h"

namespace tandem::app {

struct RuntimeOptions {
  std::string gguf_path;
  std::string model_path;   // folder with the Hugging Face config.json (optional)
  std::string device = "auto";  // main backend: auto (the first GPU if any, else the CPU), cpu, cuda, cuda:N
  bool cuda_graphs = true;  // record and replay decode steps on the GPU (--use_cuda_graph / --no-cuda-graph)
  int64_t stream_experts_min_prompt = 256;  // layerwise prefill of prompts this long (GPU + CPU experts); 0: off
  int gpu_layers = -1;      // llama.cpp's -ngl: 0 means the CPU, more the GPU (all layers); -1 unset
  int threads = 0;          // CPU threads: the main backend's on the CPU, the expert runner's with a GPU; 0: all cores
  int expert_threads = 0;   // CPU expert runner threads; 0: as many as --threads
  std::string expert_overlap = "auto";  // on | off | auto: overlap when the runner has cores of its own
  PlacementOptions placement;
  SchedulerConfig scheduler{.cache_tokens = 16384, .page_size = 16, .max_batch_size = 4, .chunk_size = 512};
  bool prefetch = false;    // read every weight once before serving
  bool mmap_weights = false;  // compute on the mapped file instead of copying weights to huge pages
};

// Registers --gguf_path, --model_path, --threads, --expert-threads, the placement flags and, when
// `with_scheduler`, --cache_lens / --chunk_size / --max_batch_size / --page_size / --no-prefix-cache
// (underscore and dash spellings).
void add_runtime_options(CLI::App& command, RuntimeOptions& options, bool with_scheduler = true);

struct Runtime {
  std::shared_ptr<GgufModel> gguf;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<ExpertRunner> expert_runner;
  std::unique_ptr<Model> model;  // declared last: destroyed first
  int64_t stream_experts_min_prompt = 0;  // RuntimeOptions' value, for the engines made

  Result<std::unique_ptr<Engine>> make_engine(const SchedulerConfig& scheduler) const;
  std::string describe() const;  // the backend and the expert runner, for log lines
};

Result<Runtime> build_runtime(const RuntimeOptions& options);

}  // namespace tandem::app
