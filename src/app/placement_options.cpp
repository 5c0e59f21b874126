#include "app/placement_options.h"

#include <algorithm>
#include <fstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace tandem::app {

namespace {

Status add_override(const std::string& text, Placement& placement) {
  // "REGEX=DEVICE[,REGEX=DEVICE...]"; a regex may itself contain '=' or ',' only before the last '=' of
  // its item, as llama.cpp parses it.
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(',', begin);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(begin, end - begin);
    const size_t eq = item.rfind('=');
    if (item.empty() || eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      return Status::error(fmt::format("--override-tensor '{}': expected REGEX=DEVICE, e.g. exps=CPU", item));
    }
    auto device = parse_device(item.substr(eq + 1));
    if (!device) return Status::error(fmt::format("--override-tensor '{}': {}", item, device.status().message()));
    if (Status s = placement.add_rule(item.substr(0, eq), device.value(), "-ot " + item); !s) return s;
    begin = end + 1;
  }
  return Status::ok();
}

}  // namespace

Status add_rules_file(const std::string& path, Placement& placement) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Status::error(fmt::format("--optimize_config_path {}: cannot open the file", path));
  } catch (const YAML::Exception& e) {
    return Status::error(fmt::format("--optimize_config_path {}: invalid YAML: {}", path, e.what()));
  }
  if (root.IsNull()) return Status::ok();  // an empty file: no rules
  if (!root.IsSequence()) {
    return Status::error(fmt::format("{}: expected a list of rules (- match: {{name: REGEX}}, device: DEVICE)", path));
  }
  int index = 0;
  for (const YAML::Node& rule : root) {
    ++index;
    const std::string where = fmt::format("{} rule {}", path, index);
    if (!rule.IsMap()) return Status::error(where + ": expected a map with 'match' and 'device'");
    if (rule["replace"]) {
      return Status::error(where + ": this looks like a KTransformers rule (match on module names, 'replace' with "
                                   "classes); Tandem's rules match GGUF tensor names and name a device: "
                                   "- match: {name: REGEX}  device: cpu|cuda[:N] (see the README)");
    }
    for (const auto& kv : rule) {
      const std::string key = kv.first.as<std::string>("");
      if (key != "match" && key != "device") return Status::error(fmt::format("{}: unknown key '{}'", where, key));
    }
    const YAML::Node match = rule["match"];
    if (!match || !match.IsMap() || !match["name"] || !match["name"].IsScalar()) {
      return Status::error(where + ": 'match' must be a map with a 'name' regular expression");
    }
    for (const auto& kv : match) {
      const std::string key = kv.first.as<std::string>("");
      if (key != "name") return Status::error(fmt::format("{}: unknown match key '{}' (only 'name')", where, key));
    }
    if (!rule["device"] || !rule["device"].IsScalar()) return Status::error(where + ": missing 'device'");
    auto device = parse_device(rule["device"].as<std::string>());
    if (!device) return Status::error(where + ": " + device.status().message());
    if (Status s = placement.add_rule(match["name"].as<std::string>(), device.value(), where); !s) return s;
  }
  return Status::ok();
}

Result<Placement> build_placement(const PlacementOptions& o, const std::vector<Device>& available,
                                  const std::string& cuda_unavailable_reason) {
  Placement placement;
  for (const std::string& text : o.overrides) {
    if (Status s = add_override(text, placement); !s) return s;
  }
  if (o.n_cpu_moe < 0) return Status::error("--n-cpu-moe must be at least 0");
  for (int layer = 0; layer < o.n_cpu_moe; ++layer) {
    const std::string pattern = fmt::format("^blk\\.{}\\.ffn_(up|down|gate)_exps", layer);
    if (Status s = placement.add_rule(pattern, Device::cpu(), fmt::format("--n-cpu-moe {}", o.n_cpu_moe)); !s) return s;
  }
  if (o.cpu_moe) {
    if (Status s = placement.add_rule("\\.ffn_(up|down|gate)_exps", Device::cpu(), "--cpu-moe"); !s) return s;
  }
  if (!o.rules_file.empty()) {
    if (Status s = add_rules_file(o.rules_file, placement); !s) return s;
  }
  for (const PlacementRule& rule : placement.rules()) {
    if (std::find(available.begin(), available.end(), rule.device) != available.end()) continue;
    if (rule.device.is_cpu()) continue;  // always there
    return Status::error(fmt::format("{} places tensors on {}, but {}", rule.source, rule.device.name(),
                                     cuda_unavailable_reason.empty() ? "this machine has no such device"
                                                                     : cuda_unavailable_reason));
  }
  return placement;
}

}  // namespace tandem::app
