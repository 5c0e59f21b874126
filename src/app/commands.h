// Subcommands of the `tandem` binary. Each register_* adds one subcommand (its flags and its handler)
// to the CLI11 app; the handler sets `exit_code`. Keeping each command in its own file keeps main small.
#pragma once

#include <CLI/CLI.hpp>

namespace tandem::app {

void register_info_command(CLI::App& app, int& exit_code);
void register_eval_command(CLI::App& app, int& exit_code);
void register_make_model_command(CLI::App& app, int& exit_code);
void register_bench_command(CLI::App& app, int& exit_code);
void register_tokenize_command(CLI::App& app, int& exit_code);
void register_serve_command(CLI::App& app, int& exit_code);
void register_chat_template_command(CLI::App& app, int& exit_code);

}  // namespace tandem::app
