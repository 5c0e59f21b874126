#include "app/runtime.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_expert_runner.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/fault_injection.h"

namespace tandem::app {

namespace {

// Reads every tensor's pages once so the first request does not wait on disk, drawing a progress bar on
// stderr (when it is a terminal, else a line per 10%).
void prefetch_weights(const GgufModel& gguf) {
  const uint64_t total = gguf.total_tensor_bytes();
  const bool tty = isatty(fileno(stderr)) != 0;
  const auto started = std::chrono::steady_clock::now();
  uint64_t done = 0;
  int last_shown = -1;
  volatile uint8_t sink = 0;
  for (const GgufTensorInfo& t : gguf.tensors()) {
    for (size_t off = 0; off < t.n_bytes; off += 4096) sink = sink + t.data[off];
    done += t.n_bytes;
    const int percent = total ? static_cast<int>(100 * done / total) : 100;
    if (percent == last_shown || (!tty && percent % 10 != 0)) continue;
    last_shown = percent;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const int bar = percent / 4;
    fmt::print(stderr, "{}loading weights [{}{}] {:3d}% {:.1f}/{:.1f} GiB {:.1f} s{}", tty ? "\r" : "",
               std::string(static_cast<size_t>(bar), '#'), std::string(static_cast<size_t>(25 - bar), '.'), percent,
               static_cast<double>(done) / (1 << 30), static_cast<double>(total) / (1 << 30), secs, tty ? "" : "\n");
  }
  if (tty) fmt::print(stderr, "\n");
}

}  // namespace

void add_runtime_options(CLI::App& cmd, RuntimeOptions& o, bool with_scheduler) {
  cmd.add_option("--gguf_path,--gguf-path,--gguf", o.gguf_path, "GGUF file, split part, or folder of parts")->required();
  cmd.add_option("--model_path,--model-path", o.model_path, "Folder with the Hugging Face config.json");
  cmd.add_option("--device", o.device,
                 "Main device (attention, dense layers, KV cache): auto (the first GPU if there is one), cpu, "
                 "cuda or cuda:N")->capture_default_str();
  cmd.add_option("--n-gpu-layers,--n_gpu_layers,--gpu-layers", o.gpu_layers,
                 "-ngl N, llama.cpp's spelling: 0 keeps everything on the CPU, any other number puts every layer on the GPU "
                 "(place tensors on the CPU with -ot or --cpu-moe)")->check(CLI::Number);
  cmd.add_flag("--use_cuda_graph,--use-cuda-graph,!--no-cuda-graph,!--no_cuda_graph", o.cuda_graphs,
               "Record decode steps once per batch size as CUDA graphs and replay them (default on; "
               "--use_cuda_graph=false or --no-cuda-graph to launch every kernel)");
  cmd.add_option("--stream-experts-min-prompt,--stream_experts_min_prompt", o.stream_experts_min_prompt,
                 "With routed experts on the CPU and the rest on a GPU: prompts of at least this many tokens run their "
                 "prefill's routed experts on the GPU, each layer's expert weights copied in while the previous "
                 "layer computes (layerwise prefill); 0 turns it off")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd.add_option("--threads,--cpu_infer,--cpu-infer", o.threads,
                 "CPU threads: the main backend's on the CPU; with a GPU, the routed-expert runner's (default: all cores)");
  cmd.add_option("--expert-threads,--expert_threads", o.expert_threads,
                 "CPU threads of the routed-expert runner (default: as --threads; with a GPU, at most the cores less one)");
  cmd.add_option("--expert-overlap,--expert_overlap", o.expert_overlap,
                 "Compute shared experts while the CPU runner computes routed ones: on, off, or auto (when the "
                 "runner's and the main backend's threads fit the cores)")
      ->check(CLI::IsMember({"auto", "on", "off"}))->capture_default_str();
  cmd.add_flag("--mmap", o.mmap_weights,
               "Compute on the mapped GGUF instead of copying the weights to huge-page memory (less memory, slower reads)");
  cmd.add_option("--optimize_config_path,--optimize-config-path", o.placement.rules_file,
                 "Placement rules (YAML list of {match: {name: REGEX}, device: cpu|cuda[:N]})");
  cmd.add_option("--override-tensor,--override_tensor", o.placement.overrides,
                 "REGEX=DEVICE placement rule over GGUF tensor names, e.g. exps=CPU (repeatable)");
  cmd.add_flag("--cpu-moe,--cpu_moe", o.placement.cpu_moe, "Keep every layer's routed experts on the CPU");
  cmd.add_option("--n-cpu-moe,--n_cpu_moe", o.placement.n_cpu_moe, "Keep the first N layers' routed experts on the CPU")
      ->check(CLI::NonNegativeNumber);
  if (!with_scheduler) return;
  cmd.add_option("--cache_lens,--cache-lens", o.scheduler.cache_tokens, "KV cache tokens shared by all requests")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--chunk_size,--chunk-size", o.scheduler.chunk_size, "Tokens per engine step (prefill chunks)")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--max_batch_size,--max-batch-size", o.scheduler.max_batch_size, "Requests per engine step")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_option("--page_size,--page-size", o.scheduler.page_size, "KV cache page size in tokens")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd.add_flag("!--no-prefix-cache", o.scheduler.prefix_caching, "Disable prefix reuse");
}

Result<Runtime> build_runtime(const RuntimeOptions& o) {
  Runtime rt;
  auto gguf = GgufModel::open(o.gguf_path);
  if (!gguf) return gguf.status();
  rt.gguf = gguf.value();
  auto config = load_model_config(*rt.gguf, o.model_path);
  if (!config) return Status::error(o.gguf_path + ": " + config.status().message());
  const ModelConfig& c = config.value();
  spdlog::info("model '{}': {} with {} layers, hidden {}, {} heads, {} experts ({} used, {} shared), vocab {}",
               c.name, to_string(c.arch), c.n_layers, c.n_embd, c.n_head, c.router.n_experts,
               c.router.n_experts_used, c.router.n_shared_experts, c.n_vocab);
  for (const std::string& line : c.sources) spdlog::info("  routing: {}", line);
  if (o.model_path.empty() && c.arch == Arch::Deepseek2) {
    spdlog::warn("no --model-path: routing parameters missing from the GGUF use defaults (see above)");
  }

  // The devices this process can use: the CPU, and every GPU when built with CUDA and one is present.
  const CudaDevices gpus = cuda_devices();
  std::vector<Device> available{Device::cpu()};
  for (int i = 0; i < gpus.count; ++i) available.push_back(Device::cuda(i));
  std::string device_text = o.device;
  if (device_text == "auto" && o.gpu_layers >= 0) device_text = o.gpu_layers == 0 ? "cpu" : "cuda";
  if (device_text == "auto") {
    device_text = gpus.count > 0 ? "cuda:0" : "cpu";
    if (gpus.count == 0) spdlog::info("main device: the CPU ({})", gpus.reason);
  }
  auto main_device = parse_device(device_text);
  if (!main_device) return Status::error("--device: " + main_device.status().message());
  if (!main_device->is_cpu() && main_device->index >= gpus.count) {
    return Status::error(fmt::format("--device {}: {}", device_text,
                                     gpus.count == 0 ? gpus.reason : fmt::format("this machine has {} GPU(s)", gpus.count)));
  }
  if (o.gpu_layers > 0 && o.gpu_layers < c.n_layers) {
    spdlog::warn("-ngl {}: Tandem puts every layer on the GPU; keep tensors on the CPU with -ot or --cpu-moe", o.gpu_layers);
  }
  auto placement = build_placement(o.placement, available, gpus.reason);
  if (!placement) return placement.status();

  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool overlap = true;
  if (main_device->is_cpu()) {
    auto cpu = std::make_unique<CpuBackend>(o.threads);
    cpu->keep_weights_in_place(o.mmap_weights);
    // On the CPU alone the backend and the experts take turns, except while the shared expert overlaps the
    // routed ones; that overlap pays only when the runner's threads have cores of their own. Otherwise the
    // runner shares the backend's pool and computes each job inline: no handoff, no idle spinning threads.
    const int expert_threads = o.expert_threads > 0 ? o.expert_threads : cpu->threads();
    overlap = o.expert_overlap == "on" || (o.expert_overlap == "auto" && cpu->threads() + expert_threads <= cores);
    std::unique_ptr<CpuExpertRunner> runner = overlap ? std::make_unique<CpuExpertRunner>(expert_threads)
                                                      : std::make_unique<CpuExpertRunner>(cpu->pool());
    runner->keep_weights_in_place(o.mmap_weights);
    spdlog::info("experts: {} runner threads{}, {} main threads, {} cores; shared experts {} the routed ones",
                 runner->threads(), overlap ? "" : " (the backend's)", cpu->threads(), cores,
                 overlap ? "overlap" : "run after");
    rt.backend = std::move(cpu);
    rt.expert_runner = std::move(runner);
  } else {
    auto gpu = make_cuda_backend(main_device->index);
    if (!gpu) return Status::error(fmt::format("{}: {}", main_device->name(), gpu.status().message()));
    rt.backend = std::move(gpu.value());
    // The GPU computes the shared expert while the CPU runner computes the routed ones: they never compete.
    // This thread drives the GPU and waits for the runner between layers: it keeps a core of its own (the
    // runner's threads spin between jobs), unless --expert-threads says otherwise.
    const int expert_threads =
        o.expert_threads > 0 ? o.expert_threads : std::max(1, std::min(o.threads > 0 ? o.threads : cores, cores - 1));
    overlap = o.expert_overlap != "off";
    auto runner = std::make_unique<CpuExpertRunner>(expert_threads);
    runner->keep_weights_in_place(o.mmap_weights);
    spdlog::info("main device {}; routed experts placed on the CPU: {} runner threads; shared experts {} them",
                 rt.backend->describe(), runner->threads(), overlap ? "overlap" : "run after");
    rt.expert_runner = std::move(runner);
  }
  if (const char* fault = std::getenv("TANDEM_INJECT_FAULT"); fault && *fault) {
    auto plan = parse_fault_plan(fault);
    if (!plan) return Status::error("TANDEM_INJECT_FAULT: " + plan.status().message());
    spdlog::warn("fault injection: call {} of '{}' fails{}", plan->nth, plan->op,
                 plan->period > 0 ? fmt::format(", then every {}th", plan->period) : "");
    rt.backend = inject_faults(std::move(rt.backend), plan.value());
    rt.expert_runner = inject_faults(std::move(rt.expert_runner), plan.value());
  }
  const ModelDevices devices{rt.backend.get(), rt.expert_runner.get(), overlap, o.cuda_graphs,
                             o.stream_experts_min_prompt > 0};
  auto model = Model::load(rt.gguf, c, placement.value(), devices);
  if (!model) return model.status();
  rt.model = std::move(model.value());
  rt.stream_experts_min_prompt = o.stream_experts_min_prompt;
  if (rt.model->streams_experts()) {
    spdlog::info("layerwise prefill: prompts of {}+ tokens run their routed experts on {}", o.stream_experts_min_prompt,
                 rt.backend->describe());
  }
  for (const std::string& line : summarize_placement(rt.model->placement_log())) spdlog::info("placement: {}", line);
  if (o.prefetch && o.mmap_weights) prefetch_weights(*rt.gguf);
  spdlog::info("weights {}: {:.2f} GiB on the main backend",
               !main_device->is_cpu() ? "copied to the GPU" : o.mmap_weights ? "used from the mapped file" : "copied to huge pages",
               static_cast<double>(rt.backend->allocated_bytes()) / (1 << 30));
  return rt;
}

Result<std::unique_ptr<Engine>> Runtime::make_engine(const SchedulerConfig& scheduler) const {
  return Engine::create(*model, EngineConfig{scheduler, stream_experts_min_prompt});
}

std::string Runtime::describe() const { return backend->describe() + ", " + expert_runner->describe(); }

}  // namespace tandem::app
