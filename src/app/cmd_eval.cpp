// `tandem eval`: runs prompt id lists through the model and writes last-position logits and greedy
// continuations (the command the fixture checker drives).
#include <algorithm>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "app/runtime.h"
#include "engine/engine.h"

namespace tandem::app {

namespace {

struct EvalOptions {
  RuntimeOptions runtime;
  std::string cases, json_out, logits_out;
  int greedy = 0;
};

Result<std::vector<std::vector<int32_t>>> read_cases(const std::string& path, int n_vocab) {
  std::ifstream in(path);
  if (!in) return Status::error("cannot open cases file " + path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    return Status::error(fmt::format("{}: invalid JSON: {}", path, e.what()));
  }
  if (!j.is_object() || !j.contains("cases") || !j["cases"].is_array()) {
    return Status::error(path + ": expected {\"cases\": [{\"ids\": [...]}, ...]}");
  }
  std::vector<std::vector<int32_t>> cases;
  for (const auto& c : j["cases"]) {
    if (!c.is_object() || !c.contains("ids") || !c["ids"].is_array() || c["ids"].empty()) {
      return Status::error(fmt::format("{}: case {} has no non-empty \"ids\" array", path, cases.size()));
    }
    std::vector<int32_t> ids;
    for (const auto& id : c["ids"]) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= n_vocab) {
        return Status::error(fmt::format("{}: case {}: token id {} is not in [0, {})", path, cases.size(), id.dump(), n_vocab));
      }
      ids.push_back(id.get<int32_t>());
    }
    cases.push_back(std::move(ids));
  }
  return cases;
}

int run_eval(const EvalOptions& opt) {
  auto runtime = build_runtime(opt.runtime);
  if (!runtime) {
    fmt::print(stderr, "error: {}\n", runtime.status().message());
    return 1;
  }
  const Model& model = *runtime->model;
  auto cases = read_cases(opt.cases, model.config().n_vocab);
  if (!cases) {
    fmt::print(stderr, "error: {}\n", cases.status().message());
    return 1;
  }
  const SchedulerConfig& sc = opt.runtime.scheduler;
  spdlog::info("backend: {}; scheduler: max_batch_size {}, chunk_size {}, cache_lens {}, page_size {}",
               runtime->describe(), sc.max_batch_size, sc.chunk_size, sc.cache_tokens, sc.page_size);
  auto engine_or = runtime->make_engine(sc);
  if (!engine_or) {
    fmt::print(stderr, "error: {}\n", engine_or.status().message());
    return 1;
  }
  Engine& engine = *engine_or.value();

  // Every case is submitted at once and runs concurrently; results are collected per case.
  struct CaseResult {
    std::vector<int32_t> greedy;
    std::vector<float> logits;
    std::string error;
  };
  std::vector<CaseResult> results(cases->size());
  for (size_t i = 0; i < cases->size(); ++i) {
    GenerationRequest request;
    request.prompt = cases.value()[i];
    request.max_new_tokens = std::max(opt.greedy, 1);  // at least one step yields the prompt's logits
    request.return_prompt_logits = true;
    auto submitted = engine.submit(std::move(request), [&results, i](const TokenEvent& e) {
      if (!e.logits.empty()) results[i].logits = e.logits;
      if (e.token >= 0) results[i].greedy.push_back(e.token);
      if (e.finish == FinishReason::Error) results[i].error = e.error;
    });
    if (!submitted) {
      fmt::print(stderr, "error: case {}: {}\n", i, submitted.status().message());
      return 1;
    }
  }
  while (engine.step()) {
  }
  const EngineMetrics m = engine.metrics();
  for (size_t i = 0; i < results.size(); ++i) {
    if (!results[i].error.empty()) {
      fmt::print(stderr, "error: case {}: {}\n", i, results[i].error);
      return 1;
    }
  }
  spdlog::info("{} steps, {} tokens run, {} preemptions, {} prefix-hit tokens, pages in use at the end: {}",
               m.scheduler.steps, m.batch_tokens, m.scheduler.preemptions, m.scheduler.prefix_hit_tokens,
               m.scheduler.pages_used);

  nlohmann::json out_cases = nlohmann::json::array();
  std::vector<float> all_logits;
  for (CaseResult& r : results) {
    r.greedy.resize(static_cast<size_t>(opt.greedy));
    out_cases.push_back({{"greedy", r.greedy}});
    all_logits.insert(all_logits.end(), r.logits.begin(), r.logits.end());
  }
  std::ofstream json_out(opt.json_out);
  json_out << nlohmann::json{{"cases", out_cases}}.dump() << "\n";
  std::ofstream logits_out(opt.logits_out, std::ios::binary);
  logits_out.write(reinterpret_cast<const char*>(all_logits.data()),
                   static_cast<std::streamsize>(all_logits.size() * sizeof(float)));
  if (!json_out || !logits_out) {
    fmt::print(stderr, "error: cannot write {} or {}\n", opt.json_out, opt.logits_out);
    return 1;
  }
  return 0;
}

}  // namespace

void register_eval_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("eval", "Run prompt ids through the model: last-position logits + greedy ids");
  auto opt = std::make_shared<EvalOptions>();
  add_runtime_options(*cmd, opt->runtime);
  cmd->add_option("--cases", opt->cases, "JSON file {\"cases\":[{\"ids\":[...]}]}")->required();
  cmd->add_option("--greedy", opt->greedy, "Greedy tokens to generate per case")->check(CLI::NonNegativeNumber);
  cmd->add_option("--json-out,--json_out", opt->json_out, "Where to write {\"cases\":[{\"greedy\":[...]}]}")->required();
  cmd->add_option("--logits-out,--logits_out", opt->logits_out, "Where to write last-position logits (f32)")->required();
  cmd->callback([opt, &exit_code] { exit_code = run_eval(*opt); });
}

}  // namespace tandem::app
