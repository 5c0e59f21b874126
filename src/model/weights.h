// WeightLoader: the model's tensors, by name, shape-checked and placed on their devices.
//
// Each tensor goes where the Placement says (the main device when no rule matches). Routed experts placed
// on the CPU go to the ExpertRunner (which keeps them in host memory); every other tensor must be on the
// main device, where the main backend computes with it (load_weight copies or maps it there). The loader throws ModelLoadError naming the tensor when it is missing, has other dimensions than
// the hyper-parameters imply, has a type the kernels cannot compute, or is placed where it cannot run;
// Model::load turns that into a Status. It records where every tensor went (placement_log()); keep it as
// long as the tensors it made (their names live in it).
#pragma once

#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "kernels/backend.h"
#include "kernels/expert_runner.h"
#include "model/arch_names.h"
#include "model/placement.h"

namespace tandem {

struct ModelLoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The compute devices a model runs on; not owned, they must outlive the model.
struct ModelDevices {
  Backend* main = nullptr;             // activations, attention, dense layers, router, KV cache
  ExpertRunner* cpu_experts = nullptr;  // routed experts placed on the CPU (optional)
  // Compute the shared expert on the main backend while the runner computes the routed experts. Pays off
  // when the two have their own cores (a GPU, or separate CPU thread groups); when they compete for the
  // same cores the overlap only adds contention, and the shared expert runs after the wait instead.
  bool overlap_experts = true;
  // Record the operations of decode steps once per batch size and replay them (Backend::begin_graph; CUDA
  // graphs), instead of launching each operation every step.
  bool use_graphs = true;
  // Let batches run the routed experts of long prompts on the main device, streaming the runner's expert
  // weights to it layer by layer (ForwardBatch::streamed_expert_tokens), where the main backend can.
  bool stream_experts = false;
};

// Where one tensor went.
struct PlacedTensor {
  std::string name;
  Device device;
  bool on_expert_runner = false;
  size_t bytes = 0;
  std::string rule;  // the rule that decided, or "" for the default
  const uint8_t* host_data = nullptr;  // the bytes computed on, when they are in host memory
};

// Shape dims are given as GGUF orders them: ne[0] (row length) first; a matrix is {cols, rows}, an expert
// stack {cols, rows, n_experts}.
class WeightLoader {
 public:
  WeightLoader(const GgufModel& gguf, const Placement& placement, const ModelDevices& devices);

  bool has(TensorKind kind, int layer = -1) const;
  // The tensor's dims; throws when it is missing.
  const std::vector<int64_t>& dims(TensorKind kind, int layer = -1) const;
  // A weight on the main device.
  Tensor matrix(TensorKind kind, int layer, std::vector<int64_t> dims);
  // A stack of routed experts: in host memory when on_expert_runner() is true after the call, else on the
  // main device.
  Tensor experts(TensorKind kind, int layer, std::vector<int64_t> dims, bool& on_expert_runner);
  // A float32 vector (norm weights, biases) on the main device, converted if stored otherwise.
  Tensor vector(TensorKind kind, int layer, int64_t n);
  // Values as float32 in host memory, [slices][rows][cols] (for weights re-laid out at load).
  std::vector<float> host_values(TensorKind kind, int layer, std::vector<int64_t> dims);
  // A float32 tensor of shape ne on the main device holding `values`.
  Tensor upload(const std::vector<float>& values, std::array<int64_t, 3> ne, std::string name);

  const std::vector<PlacedTensor>& placement_log() const { return log_; }

 private:
  // The host view of a checked tensor.
  Tensor host_tensor(const std::string& name, std::vector<int64_t> dims) const;
  Device device_for(const std::string& name, std::string& rule) const;

  const GgufModel& gguf_;
  const Placement& placement_;
  ModelDevices devices_;
  std::vector<PlacedTensor> log_;
  std::deque<std::string> names_;  // names of tensors made at load (Tensor::name points here)
};

// Lines that tell the user where the weights went: one per (tensor group, device), tensors of all layers
// grouped ("blk.*.ffn_up_exps.weight"), then the bytes each device holds.
std::vector<std::string> summarize_placement(const std::vector<PlacedTensor>& log);

}  // namespace tandem
