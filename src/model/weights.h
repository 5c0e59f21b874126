// WeightStore: typed access to a GGUF model's tensors by name, with shape checks.
//
// matrix() returns a view into the mapped file (no copy); vector() returns a float copy (norm weights,
// biases). Both throw ModelLoadError naming the tensor when it is missing, has other dimensions than the
// hyper-parameters imply, or has a type the kernels cannot compute; Model::load turns that into a Status.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "kernels/backend.h"

namespace tandem {

struct ModelLoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class WeightStore {
 public:
  explicit WeightStore(const GgufModel& gguf) : gguf_(gguf) {}

  bool has(const std::string& name) const { return gguf_.find_tensor(name) != nullptr; }
  // The tensor's dims (ne[0] first); throws when it is missing.
  const std::vector<int64_t>& dims(const std::string& name) const;
  // dims: ne[0] (row length) first; a 2-D matrix is {cols, rows}, an expert stack {cols, rows, n_experts}.
  WeightTensor matrix(const std::string& name, std::vector<int64_t> dims) const;
  std::vector<float> vector(const std::string& name, int64_t n) const;
  // All of a matrix's values as floats, [rows][cols] (small matrices that get re-laid out at load).
  std::vector<float> dequantized(const WeightTensor& w) const;

 private:
  const GgufModel& gguf_;
};

}  // namespace tandem
