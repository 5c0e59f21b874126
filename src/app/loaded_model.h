// Opening a model for a command: the GGUF (file, split part or folder), its config, the weights, and
// the log lines that tell the user where each routing parameter came from.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "gguf/gguf_file.h"
#include "model/model.h"

namespace tandem::app {

struct LoadedModel {
  std::shared_ptr<GgufModel> gguf;
  std::unique_ptr<Model> model;
};

// Logs (to stderr) the architecture, sizes and the source of every routing parameter.
Result<LoadedModel> load_model(const std::string& gguf_path, const std::string& hf_config_dir);

// Reads every tensor's pages once so the first request does not wait on disk, drawing a progress bar on
// stderr (when it is a terminal, else a line per 10%).
void prefetch_weights(const GgufModel& gguf);

}  // namespace tandem::app
