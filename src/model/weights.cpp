#include "model/weights.h"

#include <cctype>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/host_convert.h"

namespace tandem {

namespace {
const uint8_t* host_bytes(const Tensor& t) { return t.device.is_cpu() ? static_cast<const uint8_t*>(t.data) : nullptr; }
}  // namespace

WeightLoader::WeightLoader(const GgufModel& gguf, const Placement& placement, const ModelDevices& devices)
    : gguf_(gguf), placement_(placement), devices_(devices) {
  if (!devices_.main) throw ModelLoadError("no main backend to load the model on");
}

bool WeightLoader::has(TensorKind kind, int layer) const { return gguf_.find_tensor(tensor_name(kind, layer)) != nullptr; }

const std::vector<int64_t>& WeightLoader::dims(TensorKind kind, int layer) const {
  const std::string name = tensor_name(kind, layer);
  const GgufTensorInfo* t = gguf_.find_tensor(name);
  if (!t) throw ModelLoadError(fmt::format("missing tensor '{}'", name));
  return t->dims;
}

Tensor WeightLoader::host_tensor(const std::string& name, std::vector<int64_t> dims) const {
  const GgufTensorInfo* t = gguf_.find_tensor(name);
  if (!t) throw ModelLoadError(fmt::format("missing tensor '{}'", name));
  std::vector<int64_t> got = t->dims;
  while (got.size() < dims.size()) got.push_back(1);
  while (dims.size() < got.size()) dims.push_back(1);
  if (got != dims || got.size() > 3) {
    throw ModelLoadError(fmt::format("tensor '{}' has shape [{}], expected [{}] from the hyper-parameters", name,
                                     fmt::join(t->dims, ", "), fmt::join(dims, ", ")));
  }
  if (!is_computable_type(t->type)) {
    throw ModelLoadError(fmt::format("tensor '{}' has type {}, which Tandem cannot compute with yet", name,
                                     ggml_type_name(t->type)));
  }
  return Tensor::contiguous(const_cast<uint8_t*>(t->data), t->type, Device::cpu(),
                            {got[0], got.size() > 1 ? got[1] : 1, got.size() > 2 ? got[2] : 1}, t->name.c_str());
}

Device WeightLoader::device_for(const std::string& name, std::string& rule) const {
  if (const PlacementRule* r = placement_.rule_for(name)) {
    rule = r->source;
    return r->device;
  }
  rule.clear();
  return devices_.main->device();
}

Tensor WeightLoader::matrix(TensorKind kind, int layer, std::vector<int64_t> dims) {
  const std::string name = tensor_name(kind, layer);
  Tensor host = host_tensor(name, std::move(dims));
  std::string rule;
  const Device device = device_for(name, rule);
  if (device != devices_.main->device()) {
    throw ModelLoadError(fmt::format(
        "tensor '{}' is placed on {} by {}, but the model's main device is {}: only routed experts "
        "(ffn_*_exps) can be placed apart from it", name, device.name(), rule, devices_.main->device().name()));
  }
  auto loaded = devices_.main->load_weight(host);
  if (!loaded) throw ModelLoadError(fmt::format("tensor '{}': {}", name, loaded.status().message()));
  log_.push_back({name, device, false, host.bytes(), rule, host_bytes(loaded.value())});
  return loaded.value();
}

Tensor WeightLoader::experts(TensorKind kind, int layer, std::vector<int64_t> dims, bool& on_expert_runner) {
  const std::string name = tensor_name(kind, layer);
  Tensor host = host_tensor(name, std::move(dims));
  std::string rule;
  const Device device = device_for(name, rule);
  if (device.is_cpu() && devices_.cpu_experts) {
    on_expert_runner = true;
    auto loaded = devices_.cpu_experts->load_weight(host);
    if (!loaded) throw ModelLoadError(fmt::format("tensor '{}': {}", name, loaded.status().message()));
    log_.push_back({name, device, true, host.bytes(), rule, static_cast<const uint8_t*>(loaded->data)});
    return loaded.value();
  }
  on_expert_runner = false;
  if (device != devices_.main->device()) {
    throw ModelLoadError(fmt::format("tensor '{}' is placed on {} by {}, but no backend for {} is running", name,
                                     device.name(), rule.empty() ? "default" : rule, device.name()));
  }
  auto loaded = devices_.main->load_weight(host);
  if (!loaded) throw ModelLoadError(fmt::format("tensor '{}': {}", name, loaded.status().message()));
  log_.push_back({name, device, false, host.bytes(), rule, host_bytes(loaded.value())});
  return loaded.value();
}

std::vector<float> WeightLoader::host_values(TensorKind kind, int layer, std::vector<int64_t> dims) {
  const std::string name = tensor_name(kind, layer);
  auto values = dequantize_to_f32(host_tensor(name, std::move(dims)));
  if (!values) throw ModelLoadError(values.status().message());
  return std::move(values.value());
}

Tensor WeightLoader::upload(const std::vector<float>& values, std::array<int64_t, 3> ne, std::string name_text) {
  const char* name = names_.emplace_back(std::move(name_text)).c_str();
  auto t = devices_.main->alloc(GgmlType::F32, ne, name);
  if (!t) throw ModelLoadError(fmt::format("{}: {}", name, t.status().message()));
  devices_.main->upload(values.data(), t.value());
  if (Status s = devices_.main->sync(); !s) throw ModelLoadError(fmt::format("{}: {}", name, s.message()));
  log_.push_back({name, devices_.main->device(), false, t->bytes(), "", host_bytes(t.value())});
  return t.value();
}

Tensor WeightLoader::vector(TensorKind kind, int layer, int64_t n) {
  const std::string name = tensor_name(kind, layer);
  Tensor host = host_tensor(name, {n});
  if (host.type == GgmlType::F32) return matrix(kind, layer, {n});
  std::string rule;
  if (const Device device = device_for(name, rule); device != devices_.main->device()) {
    throw ModelLoadError(fmt::format("tensor '{}' is placed on {} by {}, but the model's main device is {}", name,
                                     device.name(), rule, devices_.main->device().name()));
  }
  auto values = dequantize_to_f32(host);
  if (!values) throw ModelLoadError(values.status().message());
  return upload(values.value(), {n, 1, 1}, host.name);
}

std::vector<std::string> summarize_placement(const std::vector<PlacedTensor>& log) {
  struct Group {
    int count = 0;
    size_t bytes = 0;
  };
  // Key: group name (layer numbers replaced by *), then where it went.
  std::map<std::pair<std::string, std::string>, Group> groups;
  std::map<std::string, size_t> per_device;
  for (const PlacedTensor& t : log) {
    std::string group;
    for (size_t i = 0; i < t.name.size(); ++i) {
      if (std::isdigit(static_cast<unsigned char>(t.name[i])) && i > 0 && t.name[i - 1] == '.') {
        group += '*';
        while (i + 1 < t.name.size() && std::isdigit(static_cast<unsigned char>(t.name[i + 1]))) ++i;
      } else {
        group += t.name[i];
      }
    }
    std::string where = t.device.name() + (t.on_expert_runner ? " (expert runner)" : "");
    if (!t.rule.empty()) where += ", by " + t.rule;
    Group& g = groups[{group, where}];
    ++g.count;
    g.bytes += t.bytes;
    per_device[t.device.name()] += t.bytes;
  }
  std::vector<std::string> lines;
  for (const auto& [key, g] : groups) {
    lines.push_back(fmt::format("{} -> {}: {} tensor{}, {:.1f} MiB", key.first, key.second, g.count,
                                g.count == 1 ? "" : "s", static_cast<double>(g.bytes) / (1 << 20)));
  }
  for (const auto& [device, bytes] : per_device) {
    lines.push_back(fmt::format("{} holds {:.2f} GiB of weights", device, static_cast<double>(bytes) / (1 << 30)));
  }
  return lines;
}

}  // namespace tandem
