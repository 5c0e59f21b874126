#include <CLI/CLI.hpp>

#include <string_view>
#include <vector>

#include "app/commands.h"

namespace {

// llama.cpp spells some options with one dash and several letters ("-ot exps=CPU"), which CLI11 reads as
// bundled one-letter flags; users bring those command lines, so they are renamed to the long options.
std::vector<char*> with_llama_cpp_spellings(int argc, char** argv) {
  static char override_tensor[] = "--override-tensor";
  static char gpu_layers[] = "--n-gpu-layers";
  std::vector<char*> args(argv, argv + argc);
  for (char*& arg : args) {
    if (std::string_view(arg) == "-ot") arg = override_tensor;
    if (std::string_view(arg) == "-ngl") arg = gpu_layers;
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tandem: mixture-of-experts inference (experts on the CPU)", "tandem"};
  app.require_subcommand(1);
  int exit_code = 0;
  tandem::app::register_info_command(app, exit_code);
  tandem::app::register_eval_command(app, exit_code);
  tandem::app::register_make_model_command(app, exit_code);
  tandem::app::register_bench_command(app, exit_code);
  tandem::app::register_tokenize_command(app, exit_code);
  tandem::app::register_serve_command(app, exit_code);
  tandem::app::register_chat_template_command(app, exit_code);
  std::vector<char*> args = with_llama_cpp_spellings(argc, argv);
  CLI11_PARSE(app, static_cast<int>(args.size()), args.data());
  return exit_code;
}
