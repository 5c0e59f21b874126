// Placement: which device holds each weight, from rules over GGUF tensor names.
//
// A rule is a regular expression (ECMAScript, searched anywhere in the name, as llama.cpp's
// --override-tensor does; anchor with ^ and $ for whole names) and a device; the first rule that matches a
// tensor's name decides, and a tensor no rule matches goes to the main device. Rules come from
// --optimize_config_path (YAML), -ot/--override-tensor, --cpu-moe and --n-cpu-moe (app/placement_options.h
// turns those into rules). Model::load applies the placement and reports where every tensor went.
#pragma once

#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kernels/tensor.h"

namespace tandem {

struct PlacementRule {
  std::string pattern;
  Device device;
  std::string source;  // where the rule came from, for messages ("-ot exps=CPU", "rules.yaml rule 2")
  std::regex regex;
};

class Placement {
 public:
  // Appends a rule (lower priority than the existing ones); fails for an invalid regular expression.
  Status add_rule(const std::string& pattern, Device device, const std::string& source);
  // The first rule whose pattern matches the name, or nullptr.
  const PlacementRule* rule_for(std::string_view tensor_name) const;
  const std::vector<PlacementRule>& rules() const { return rules_; }
  bool empty() const { return rules_.empty(); }

 private:
  std::vector<PlacementRule> rules_;
};

// Parses a device name: "cpu", "cuda", "cuda:N", and llama.cpp's spellings "CPU", "CUDA0" (any case).
Result<Device> parse_device(std::string_view text);

}  // namespace tandem
