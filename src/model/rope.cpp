#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace tandem {

namespace {

std::vector<float> plain_inv_freq(int n_dims, double base) {
  std::vector<float> inv(static_cast<size_t>(n_dims / 2));
  for (int i = 0; i < n_dims / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(n_dims);
    inv[static_cast<size_t>(i)] = 1.0f / std::pow(static_cast<float>(base), exponent);
  }
  return inv;
}

// The dimension at which a wavelength completes `n_rotations` turns over the original context.
double correction_dim(double n_rotations, int n_dims, double base, double original_ctx) {
  return n_dims * std::log(original_ctx / (n_rotations * 2.0 * std::numbers::pi)) / (2.0 * std::log(base));
}

}  // namespace

std::vector<float> yarn_inv_freq(int n_dims, double base, double factor, double original_ctx, double beta_fast,
                                 double beta_slow) {
  std::vector<float> extrapolated = plain_inv_freq(n_dims, base);
  double low = std::floor(correction_dim(beta_fast, n_dims, base, original_ctx));
  double high = std::ceil(correction_dim(beta_slow, n_dims, base, original_ctx));
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(n_dims - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  std::vector<float> inv(extrapolated.size());
  for (size_t i = 0; i < inv.size(); ++i) {
    const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)), 0.0f, 1.0f);
    const float extrapolation_weight = 1.0f - ramp;
    const float interpolated = extrapolated[i] / static_cast<float>(factor);
    inv[i] = interpolated * (1.0f - extrapolation_weight) + extrapolated[i] * extrapolation_weight;
  }
  return inv;
}

RopeTable::RopeTable(const RopeConfig& config) : config_(config) {
  inv_freq_ = config.yarn ? yarn_inv_freq(config.n_dims, config.freq_base, config.yarn_factor, config.yarn_original_ctx,
                                          config.yarn_beta_fast, config.yarn_beta_slow)
                          : plain_inv_freq(config.n_dims, config.freq_base);
}

void RopeTable::apply(float* x, int64_t pos) const {
  const int half = config_.n_dims / 2;
  const auto scale = static_cast<float>(config_.attention_factor);
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq_[static_cast<size_t>(i)];
    const float c = std::cos(angle) * scale, s = std::sin(angle) * scale;
    float* a = config_.adjacent_pairs ? x + 2 * i : x + i;
    float* b = config_.adjacent_pairs ? x + 2 * i + 1 : x + i + half;
    const float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x1 * c + x0 * s;
  }
}

}  // namespace tandem
