// TANDEM_HOST_DEVICE marks inline functions that compile for the host and, under nvcc, for GPU code too.
#pragma once

#if defined(__CUDACC__)
#define TANDEM_HOST_DEVICE __host__ __device__
#else
#define TANDEM_HOST_DEVICE
#endif
