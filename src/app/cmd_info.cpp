// `tandem info FILE`: a GGUF's metadata and tensor table.
#include <cstdio>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "app/commands.h"
#include "gguf/gguf_file.h"

namespace tandem::app {

namespace {

int run_info(const std::string& path, bool all_tensors) {
  auto opened = GgufModel::open(path);
  if (!opened) {
    fmt::print(stderr, "error: {}\n", opened.status().message());
    return 1;
  }
  const GgufModel& g = *opened.value();
  fmt::print("GGUF v{}, {} file(s): {}\n", g.version(), g.files().size(), fmt::join(g.files(), ", "));
  fmt::print("\nmetadata ({} keys):\n", g.metadata().size());
  for (const auto& [key, value] : g.metadata()) fmt::print("  {:<48} {}\n", key, value.to_display_string());
  fmt::print("\ntensors ({}, {:.2f} MiB):\n", g.tensors().size(), static_cast<double>(g.total_tensor_bytes()) / (1 << 20));
  fmt::print("  {:<40} {:<8} {:<24} {:>12}\n", "name", "type", "shape", "bytes");
  size_t shown = 0;
  for (const GgufTensorInfo& t : g.tensors()) {
    if (!all_tensors && shown++ >= 64) {
      fmt::print("  ... {} more (use --all)\n", g.tensors().size() - 64);
      break;
    }
    fmt::print("  {:<40} {:<8} {:<24} {:>12}\n", t.name, ggml_type_name(t.type), fmt::format("[{}]", fmt::join(t.dims, ", ")),
               t.n_bytes);
  }
  return 0;
}

}  // namespace

void register_info_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "Print a GGUF file's metadata and tensor table");
  auto path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  cmd->add_option("file", *path, "GGUF file, split part, or folder of parts")->required();
  cmd->add_flag("--all", *all, "List every tensor (default: the first 64)");
  cmd->callback([path, all, &exit_code] { exit_code = run_info(*path, *all); });
}

}  // namespace tandem::app
