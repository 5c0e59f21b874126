// Format conversions on host memory, for load-time work outside the backends (re-laying out small
// weights, reading norm vectors): device-neutral code uses these instead of the CPU kernels directly.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kernels/tensor.h"

namespace tandem {

// Whether the kernels can compute with weights of this type (every backend supports these).
bool is_computable_type(GgmlType type);

// Every value of a host tensor as float32, in order [slice][row][col]. Fails for a type without kernels.
Result<std::vector<float>> dequantize_to_f32(const Tensor& host);

}  // namespace tandem
