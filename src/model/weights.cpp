#include "model/weights.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/cpu/quant.h"

namespace tandem {

const std::vector<int64_t>& WeightStore::dims(const std::string& name) const {
  const GgufTensorInfo* t = gguf_.find_tensor(name);
  if (!t) throw ModelLoadError(fmt::format("missing tensor '{}'", name));
  return t->dims;
}

WeightTensor WeightStore::matrix(const std::string& name, std::vector<int64_t> dims) const {
  const GgufTensorInfo* t = gguf_.find_tensor(name);
  if (!t) throw ModelLoadError(fmt::format("missing tensor '{}'", name));
  std::vector<int64_t> got = t->dims;
  while (got.size() < dims.size()) got.push_back(1);
  while (dims.size() < got.size()) dims.push_back(1);
  if (got != dims) {
    throw ModelLoadError(fmt::format("tensor '{}' has shape [{}], expected [{}] from the hyper-parameters", name,
                                     fmt::join(t->dims, ", "), fmt::join(dims, ", ")));
  }
  if (!cpu::is_computable(t->type)) {
    throw ModelLoadError(fmt::format("tensor '{}' has type {}, which Tandem cannot compute with yet", name,
                                     ggml_type_name(t->type)));
  }
  WeightTensor w;
  w.name = name;
  w.type = t->type;
  w.cols = got[0];
  w.rows = got.size() > 1 ? got[1] : 1;
  w.n_mats = got.size() > 2 ? got[2] : 1;
  w.row_bytes = ggml_row_size(t->type, w.cols);
  w.data = t->data;
  w.device = Device::Cpu;
  return w;
}

std::vector<float> WeightStore::vector(const std::string& name, int64_t n) const {
  return dequantized(matrix(name, {n}));
}

std::vector<float> WeightStore::dequantized(const WeightTensor& w) const {
  std::vector<float> out(static_cast<size_t>(w.cols * w.rows * w.n_mats));
  for (int64_t m = 0; m < w.n_mats; ++m) {
    for (int64_t r = 0; r < w.rows; ++r) {
      cpu::dequantize_row(w.type, w.row(m, r), out.data() + (m * w.rows + r) * w.cols, w.cols);
    }
  }
  return out;
}

}  // namespace tandem
