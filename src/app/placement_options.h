// Placement from the command line and rule files: --optimize_config_path FILE (YAML), -ot/--override-tensor
// REGEX=DEVICE (llama.cpp's spelling, comma-separated lists allowed), --cpu-moe and --n-cpu-moe N.
//
// Rule order (first match wins): -ot rules in the order given, then --n-cpu-moe / --cpu-moe, then the
// file's rules. The file is a YAML list of rules over GGUF tensor names:
//
//   - match:
//       name: "\\.ffn_(up|down|gate)_exps\\."   # regular expression, searched in the name
//     device: cpu                              # cpu, cuda, cuda:N (CPU / CUDA0 also accepted)
//
// build_placement() fails with a message naming the rule for a malformed file or rule, an invalid
// regular expression, or a device this build or machine does not have.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/placement.h"

namespace tandem::app {

struct PlacementOptions {
  std::string rules_file;               // --optimize_config_path
  std::vector<std::string> overrides;   // -ot values, each "REGEX=DEVICE[,REGEX=DEVICE...]"
  bool cpu_moe = false;                 // --cpu-moe: every layer's routed experts on the CPU
  int n_cpu_moe = 0;                    // --n-cpu-moe N: the first N layers' routed experts on the CPU
};

// `available`: the devices this process can use (the CPU, and each GPU when built with CUDA and present).
Result<Placement> build_placement(const PlacementOptions& options, const std::vector<Device>& available,
                                  const std::string& cuda_unavailable_reason);

// Reads a rules file into `placement` (exposed for tests).
Status add_rules_file(const std::string& path, Placement& placement);

}  // namespace tandem::app
