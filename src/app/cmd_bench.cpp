// `tandem bench`: throughput and latency of the engine at several concurrency levels.
#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include "app/commands.h"
#include "app/load_bench.h"
#include "app/roofline.h"
#include "app/runtime.h"

namespace tandem::app {

void register_bench_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bench", "Run N requests at concurrency levels; print tokens/s, TTFT, TPOT");
  struct Options {
    RuntimeOptions runtime;
    std::string json_out;
    LoadBenchOptions load;
  };
  auto opt = std::make_shared<Options>();
  add_runtime_options(*cmd, opt->runtime, /*with_scheduler=*/false);
  cmd->add_option("--requests,-n", opt->load.requests, "Requests per concurrency level")->capture_default_str();
  cmd->add_option("--prompt-len,--prompt_len", opt->load.prompt_len, "Prompt tokens per request")->capture_default_str();
  cmd->add_option("--gen-len,--gen_len", opt->load.gen_len, "Generated tokens per request")->capture_default_str();
  cmd->add_option("--concurrency", opt->load.concurrency, "Concurrency levels")->delimiter(',')->capture_default_str();
  cmd->add_option("--arrival-rate,--arrival_rate", opt->load.arrival_rate,
                  "Poisson arrivals per second (0: closed loop, level-many requests in flight)")->capture_default_str();
  cmd->add_option("--chunk-size,--chunk_size", opt->load.chunk_size, "Tokens per step")->capture_default_str();
  cmd->add_flag("--same-prompt,--same_prompt", opt->load.same_prompt,
                "Every request the same prompt (concurrent requests then route to the same experts, as in benchmarks "
                "that feed all sequences one input); default: distinct random prompts");
  cmd->add_option("--page-size,--page_size", opt->load.page_size, "KV page size")->capture_default_str();
  cmd->add_option("--json-out,--json_out", opt->json_out, "Write the results as JSON here");
  cmd->callback([opt, &exit_code] {
    auto runtime = build_runtime(opt->runtime);
    if (!runtime) {
      fmt::print(stderr, "error: {}\n", runtime.status().message());
      exit_code = 1;
      return;
    }
    fmt::print("model: {}; backend: {}; {} requests per level, prompt {} tokens{}, {} generated\n",
               runtime->model->config().name, runtime->describe(), opt->load.requests, opt->load.prompt_len,
               opt->load.same_prompt ? " (one prompt for all)" : "", opt->load.gen_len);
    const auto results = run_load_bench(runtime.value(), opt->load, [](const std::string& line) {
      fmt::print(stderr, "\r\033[K{}", line);
      std::fflush(stderr);
    });
    fmt::print(stderr, "\r\033[K");
    fmt::print("{}", to_table(results));
    Roofline roofline;
    weight_bytes_per_token(*runtime->model, roofline);
    roofline.read_bytes_per_s = measure_read_bandwidth(*runtime->model, opt->runtime.threads);
    fmt::print("{}\n", describe(roofline));
    for (const LevelResult& r : results) {
      if (r.concurrency == 1 && r.decode_tokens_per_s > 0 && roofline.tokens_per_s() > 0) {
        fmt::print("decode at concurrency 1: {:.2f} tok/s = {:.0f}% of the roofline\n", r.decode_tokens_per_s,
                   100 * r.decode_tokens_per_s / roofline.tokens_per_s());
      }
    }
    if (!opt->json_out.empty()) {
      std::ofstream out(opt->json_out);
      nlohmann::json j = to_json(results, opt->load);
      j["bytes_per_token"] = roofline.bytes_per_token;
      j["device_bytes_per_token"] = roofline.device_bytes_per_token;
      j["read_bytes_per_s"] = roofline.read_bytes_per_s;
      j["roofline_tokens_per_s"] = roofline.tokens_per_s();
      out << j.dump(2) << "\n";
      if (!out) {
        fmt::print(stderr, "error: cannot write {}\n", opt->json_out);
        exit_code = 1;
      }
    }
  });
}

}  // namespace tandem::app
