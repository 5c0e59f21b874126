#include "kernels/tensor.h"

#include <fmt/format.h>

namespace tandem {

Tensor Tensor::contiguous(void* data, GgmlType type, Device device, std::array<int64_t, 3> ne, const char* name) {
  Tensor t;
  t.data = data;
  t.type = type;
  t.device = device;
  t.ne = ne;
  const GgmlTypeInfo& info = ggml_type_info(type);
  t.nb[0] = info.block_size == 1 ? info.type_size : 0;
  t.nb[1] = ggml_row_size(type, ne[0]);
  t.nb[2] = t.nb[1] * static_cast<size_t>(ne[1]);
  t.name = name;
  return t;
}

Tensor Tensor::row_range(int64_t first, int64_t count) const {
  Tensor t = *this;
  t.data = static_cast<uint8_t*>(data) + static_cast<size_t>(first) * nb[1];
  t.ne[1] = count;
  return t;
}

Tensor Tensor::slice_range(int64_t first, int64_t count) const {
  Tensor t = *this;
  t.data = static_cast<uint8_t*>(data) + static_cast<size_t>(first) * nb[2];
  t.ne[2] = count;
  return t;
}

Tensor Tensor::col_range(int64_t first, int64_t count) const {
  Tensor t = *this;
  t.data = static_cast<uint8_t*>(data) + static_cast<size_t>(first) * nb[0];
  t.ne[0] = count;
  return t;
}

Tensor Tensor::heads(int64_t n_heads) const {
  Tensor t = *this;
  t.ne = {ne[0] / n_heads, n_heads, ne[1]};
  t.nb = {nb[0], nb[0] * static_cast<size_t>(ne[0] / n_heads), nb[1]};
  return t;
}

Tensor Tensor::row_groups(int64_t group_rows, int64_t first, int64_t count) const {
  Tensor t = *this;
  t.data = static_cast<uint8_t*>(data) + static_cast<size_t>(first) * nb[1];
  t.ne = {ne[0], count, ne[1] / group_rows};
  t.nb[2] = nb[1] * static_cast<size_t>(group_rows);
  return t;
}

Tensor Tensor::flat_rows() const {
  Tensor t = *this;
  t.ne = {ne[0], ne[1] * ne[2], 1};
  t.nb[2] = t.nb[1] * static_cast<size_t>(t.ne[1]);
  return t;
}

std::string describe(const Tensor& t) {
  std::string dims = fmt::format("{}", t.ne[0]);
  if (t.ne[1] != 1 || t.ne[2] != 1) dims += fmt::format(", {}", t.ne[1]);
  if (t.ne[2] != 1) dims += fmt::format(", {}", t.ne[2]);
  return fmt::format("{} [{}]", ggml_type_name(t.type), dims);
}

}  // namespace tandem
