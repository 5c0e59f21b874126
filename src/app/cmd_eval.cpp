// `tandem eval`: runs prompt id lists through the model and writes last-position logits and greedy
// continuations (the command the fixture checker drives).
#include <algorithm>
#include <cstdio>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "app/commands.h"
#include "app/loaded_model.h"
#include "kernels/cpu_backend.h"

namespace tandem::app {

namespace {

struct EvalOptions {
  std::string gguf, model_path, cases, json_out, logits_out;
  int greedy = 0;
  int threads = 0;
  int page_size = 16;
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

int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

int run_eval(const EvalOptions& opt) {
  auto loaded = load_model(opt.gguf, opt.model_path);
  if (!loaded) {
    fmt::print(stderr, "error: {}\n", loaded.status().message());
    return 1;
  }
  Model& model = *loaded->model;
  const int n_vocab = model.config().n_vocab;
  auto cases = read_cases(opt.cases, n_vocab);
  if (!cases) {
    fmt::print(stderr, "error: {}\n", cases.status().message());
    return 1;
  }
  CpuBackend backend(opt.threads);
  spdlog::info("backend: {}", backend.describe());

  int64_t longest = 0;
  for (const auto& ids : cases.value()) longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()) + opt.greedy);
  const int n_pages = static_cast<int>((longest + opt.page_size - 1) / opt.page_size);
  PagedKvCache cache(model.kv_cache_config(opt.page_size, n_pages));
  PageAllocator pages(n_pages);

  nlohmann::json out_cases = nlohmann::json::array();
  std::vector<float> all_logits;
  std::vector<float> logits;
  for (const auto& ids : cases.value()) {
    std::vector<int32_t> table;
    pages.grow(table, static_cast<int64_t>(ids.size()) + opt.greedy, opt.page_size);
    ForwardBatch batch;
    batch.page_tables = {table};
    for (size_t i = 0; i < ids.size(); ++i) {
      batch.tokens.push_back(ids[i]);
      batch.positions.push_back(static_cast<int64_t>(i));
      batch.seq_index.push_back(0);
    }
    batch.output_tokens = {static_cast<int32_t>(ids.size() - 1)};
    model.forward(backend, batch, cache, logits);
    all_logits.insert(all_logits.end(), logits.begin(), logits.end());
    std::vector<int32_t> generated;
    int64_t pos = static_cast<int64_t>(ids.size());
    for (int step = 0; step < opt.greedy; ++step) {
      const int32_t next = argmax(logits.data(), n_vocab);
      generated.push_back(next);
      if (step + 1 == opt.greedy) break;
      ForwardBatch decode;
      decode.page_tables = {table};
      decode.tokens = {next};
      decode.positions = {pos++};
      decode.seq_index = {0};
      decode.output_tokens = {0};
      model.forward(backend, decode, cache, logits);
    }
    pages.release(table);
    out_cases.push_back({{"greedy", generated}});
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
  cmd->add_option("--gguf,--gguf-path,--gguf_path", opt->gguf, "GGUF file, split part, or folder")->required();
  cmd->add_option("--model-path,--model_path", opt->model_path, "Folder with a Hugging Face config.json");
  cmd->add_option("--cases", opt->cases, "JSON file {\"cases\":[{\"ids\":[...]}]}")->required();
  cmd->add_option("--greedy", opt->greedy, "Greedy tokens to generate per case")->check(CLI::NonNegativeNumber);
  cmd->add_option("--json-out,--json_out", opt->json_out, "Where to write {\"cases\":[{\"greedy\":[...]}]}")->required();
  cmd->add_option("--logits-out,--logits_out", opt->logits_out, "Where to write last-position logits (f32)")->required();
  cmd->add_option("--threads", opt->threads, "CPU threads (default: all cores)");
  cmd->add_option("--page-size,--page_size", opt->page_size, "KV cache page size in tokens")->check(CLI::PositiveNumber);
  cmd->callback([opt, &exit_code] { exit_code = run_eval(*opt); });
}

}  // namespace tandem::app
