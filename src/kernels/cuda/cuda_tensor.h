// Internal to src/kernels/cuda: how kernels see tensors, and the errors only the GPU can see. Host-safe
// (no CUDA headers), so the backend's host code and the kernels share it.
#pragma once

#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/tensor.h"

namespace tandem::cuda {

// A tensor as a kernel sees it: byte strides between rows and slices (values within a row are contiguous).
struct DevTensor {
  char* data = nullptr;
  GgmlType type = GgmlType::F32;
  int64_t ne0 = 0, ne1 = 1, ne2 = 1;
  int64_t nb1 = 0, nb2 = 0;

  TANDEM_HOST_DEVICE char* row(int64_t r, int64_t s = 0) const { return data + s * nb2 + r * nb1; }
  template <typename T>
  TANDEM_HOST_DEVICE T* row_as(int64_t r, int64_t s = 0) const { return reinterpret_cast<T*>(row(r, s)); }
};

inline DevTensor dev(const Tensor& t) {
  return {static_cast<char*>(t.data), t.type, t.ne[0], t.ne[1], t.ne[2], static_cast<int64_t>(t.nb[1]),
          static_cast<int64_t>(t.nb[2])};
}

// Errors only the GPU can see: a kernel stores the first one it meets; sync() reads and clears it.
enum DeviceError : int {
  kNoDeviceError = 0,
  kTokenIdOutOfRange = 1,
  kRowOutOfRange = 2,
  kPageOutOfRange = 3,
  kExpertIdOutOfRange = 4,
};
const char* device_error_message(int code);

}  // namespace tandem::cuda
