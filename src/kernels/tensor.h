// Tensor: a typed, strided view of memory on one device (host memory or a GPU's).
//
// Shapes follow GGUF/ggml: ne[0] is the innermost (contiguous) dimension. A weight matrix is {cols, rows}
// (a stack of expert matrices {cols, rows, n_experts}); activations of n tokens are {width, n}, or
// {head_dim, n_heads, n} when split per head. nb[1] and nb[2] are byte strides between rows and between
// slices of dimension 2; elements within a row are contiguous. Views (row_range(), col_range(), heads()) share the
// memory of their tensor; a Tensor never owns memory: the Backend that allocated it does, or the mapped
// GGUF file for weights used in place. Quantized types store whole blocks per row (cols % block size == 0).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "gguf/ggml_type.h"

namespace tandem {

enum class DeviceKind { Cpu, Cuda };

struct Device {
  DeviceKind kind = DeviceKind::Cpu;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index) { return {DeviceKind::Cuda, index}; }
  bool is_cpu() const { return kind == DeviceKind::Cpu; }
  bool operator==(const Device&) const = default;
  std::string name() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

struct Tensor {
  void* data = nullptr;
  GgmlType type = GgmlType::F32;
  Device device;
  std::array<int64_t, 3> ne{0, 1, 1};  // {cols, rows, slices}
  std::array<size_t, 3> nb{0, 0, 0};   // nb[0]: bytes of one element (0 for block types); nb[1], nb[2]: strides
  const char* name = "";               // for messages; points to storage that outlives the tensor

  // A contiguous tensor of `type` with shape ne at `data`.
  static Tensor contiguous(void* data, GgmlType type, Device device, std::array<int64_t, 3> ne, const char* name = "");

  bool valid() const { return data != nullptr; }
  int64_t cols() const { return ne[0]; }
  int64_t rows() const { return ne[1]; }
  int64_t slices() const { return ne[2]; }
  size_t row_bytes() const { return ggml_row_size(type, ne[0]); }
  // Rows are packed with no gap and slices follow each other: the tensor is one block of bytes().
  bool is_contiguous() const {
    return (ne[1] == 1 || nb[1] == row_bytes()) && (ne[2] == 1 || nb[2] == row_bytes() * static_cast<size_t>(ne[1]));
  }
  size_t bytes() const { return row_bytes() * static_cast<size_t>(ne[1] * ne[2]); }  // of a contiguous tensor

  template <typename T = uint8_t>
  T* row(int64_t r, int64_t slice = 0) const {
    return reinterpret_cast<T*>(static_cast<uint8_t*>(data) + static_cast<size_t>(slice) * nb[2] +
                                static_cast<size_t>(r) * nb[1]);
  }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }

  // Rows [first, first + count) of a 2-D tensor (or of every slice).
  Tensor row_range(int64_t first, int64_t count) const;
  // Slices [first, first + count) of dimension 2 (tokens of a {dim, heads, n} tensor).
  Tensor slice_range(int64_t first, int64_t count) const;
  // Columns [first, first + count) of each row; plain (non-block) types only.
  Tensor col_range(int64_t first, int64_t count) const;
  // A 2-D tensor {n_heads * d, n} with contiguous rows, seen as {d, n_heads, n}.
  Tensor heads(int64_t n_heads) const;
  // A 2-D tensor whose rows come in groups of group_rows, seen as {cols, count, groups}: rows
  // [first, first + count) of each group (any type: whole rows). E.g. per-head parts of a weight.
  Tensor row_groups(int64_t group_rows, int64_t first, int64_t count) const;
  // A {d, heads, n} tensor whose heads are packed (nb[2] == heads * nb[1]) seen as 2-D {d, heads * n}.
  Tensor flat_rows() const;
};

// Shape and type as text, e.g. "f32 [512, 3]".
std::string describe(const Tensor& t);

}  // namespace tandem
