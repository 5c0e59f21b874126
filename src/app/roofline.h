// The memory roofline of decoding, measured where the benchmark runs: how many bytes of weights one token
// reads, and how fast this machine reads the model's weights.
//
// At concurrency 1 a token reads every weight once except the routed experts, of which it reads k of
// n_experts per layer (on average, over many tokens) and the embedding, of which it reads one row; the
// decode rate cannot exceed read bandwidth / those bytes. The bandwidth is measured by reading the weights
// where the CPU computes on them (huge-page copies, or the mapped file with --mmap) with `threads`
// threads, best of a few passes.
#pragma once

#include <string>

#include "core/thread_pool.h"
#include "model/model.h"

namespace tandem::app {

struct Roofline {
  double bytes_per_token = 0;     // weights read per decoded token at concurrency 1
  double read_bytes_per_s = 0;    // measured
  double tokens_per_s() const { return bytes_per_token > 0 ? read_bytes_per_s / bytes_per_token : 0; }
};

double weight_bytes_per_token(const Model& model);
double measure_read_bandwidth(const Model& model, int threads);
std::string describe(const Roofline& roofline);

}  // namespace tandem::app
