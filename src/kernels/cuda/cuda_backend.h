// The CUDA backend: a Backend whose tensors live in one GPU's memory and whose operations are queued on
// one CUDA stream (kernels in this folder; weights stay quantized and are dequantized inside the kernels).
//
// Contract beyond backend.h:
// - alloc() is device memory, alloc_host() page-locked host memory (fast, asynchronous transfers);
//   load_weight() copies the weight to the GPU once.
// - Operations only queue work: they return before it runs. Errors found on the host (shapes, types) are
//   recorded at once; errors only the GPU can see (a token id, page or expert id out of range, a failed
//   launch) are raised by the kernels into a flag that sync() reads. Either way sync() returns the first.
// - Batch invariance: every kernel computes a token's results with a reduction order fixed by the shapes
//   alone (a warp per output row, fixed shuffle trees), never by the number of tokens in the call.
// - Not thread-safe: one engine thread drives a backend, as for the CPU backend.
//
// This header needs no CUDA headers: in a build without -DTANDEM_CUDA=ON the functions below say so.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "kernels/backend.h"

namespace tandem {

// The GPUs this process can use, or 0 and why not (no CUDA in this build, no driver, no device).
struct CudaDevices {
  int count = 0;
  std::string reason;  // when count == 0
};
CudaDevices cuda_devices();

// A backend on GPU `index` (0-based).
Result<std::unique_ptr<Backend>> make_cuda_backend(int index);

}  // namespace tandem
