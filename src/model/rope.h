// Rotary position embedding, with YaRN frequency scaling (DeepSeek-V2/V3 long-context rope).
//
// RopeTable precomputes the inverse frequencies once per model; apply() rotates the first n_dims values
// of a head vector in place for a position. Frequencies and angles are computed in float32 as the
// reference (Hugging Face transformers) does, so results match it to float rounding.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model_config.h"

namespace tandem {

class RopeTable {
 public:
  explicit RopeTable(const RopeConfig& config);
  const std::vector<float>& inv_freq() const { return inv_freq_; }  // [n_dims / 2]
  // Rotates x[0..n_dims) for position pos: pairs (2i, 2i+1) if adjacent_pairs, else (i, i + n_dims/2).
  void apply(float* x, int64_t pos) const;

 private:
  RopeConfig config_;
  std::vector<float> inv_freq_;
};

// YaRN's inverse frequencies (exposed for tests): blends interpolated and extrapolated frequencies with a
// linear ramp between the correction dimensions given by beta_fast / beta_slow.
std::vector<float> yarn_inv_freq(int n_dims, double base, double factor, double original_ctx, double beta_fast,
                                 double beta_slow);

}  // namespace tandem
