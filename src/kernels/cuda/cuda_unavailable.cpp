// The CUDA entry points of a build without the CUDA backend (-DTANDEM_CUDA=OFF).
#include "kernels/cuda/cuda_backend.h"

namespace tandem {

CudaDevices cuda_devices() { return {0, "this build has no CUDA backend (configure with -DTANDEM_CUDA=ON)"}; }

Result<std::unique_ptr<Backend>> make_cuda_backend(int) { return Status::error(cuda_devices().reason); }

}  // namespace tandem
