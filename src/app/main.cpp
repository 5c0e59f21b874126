#include <CLI/CLI.hpp>

#include "app/commands.h"

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
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
