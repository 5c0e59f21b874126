// Element-wise and row-wise float32 operations of the CPU backend (host memory).
#pragma once

#include <cstdint>

namespace tandem::cpu {

// y = x / sqrt(mean(x^2) + eps) * weight, over one row of n values (y may alias x).
void rms_norm(const float* x, const float* weight, float* y, int64_t n, float eps);
// out[i] = silu(gate[i]) * up[i]   (out may alias gate)
void swiglu(const float* gate, const float* up, float* out, int64_t n);
// In-place softmax over n values.
void softmax(float* x, int64_t n);

}  // namespace tandem::cpu
