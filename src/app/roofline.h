// The memory roofline of decoding, measured where the benchmark runs: how many bytes of weights one token
// reads, and how fast this machine reads the model's weights.
//
// At concurrency 1 a token reads every weight once except the routed experts, of which it reads k of
// n_experts per layer (on average, over many tokens) and the embedding, of which it reads one row; the
// decode rate cannot exceed read bandwidth / those bytes. The bandwidth is measured by reading the weights
// where the CPU computes on them (huge-page copies, or the mapped file with --mmap) with `threads`
// threads, best of a few passes. With a GPU, the weights it holds are counted apart: the roofline is that
// of the CPU's share (the routed experts placed there), which bounds a hybrid step; the GPU reads its share
// some 30 times faster.
#pragma once

#include <string>

#include "core/thread_pool.h"
#include "model/model.h"

namespace tandem::app {

struct Roofline {
  double bytes_per_token = 0;     // weights in host memory read per decoded token at concurrency 1
  double device_bytes_per_token = 0;  // weights in GPU memory, likewise
  double read_bytes_per_s = 0;    // measured, host memory
  double tokens_per_s() const { return bytes_per_token > 0 ? read_bytes_per_s / bytes_per_token : 0; }
};

// Sets bytes_per_token and device_bytes_per_token.
void weight_bytes_per_token(const Model& model, Roofline& roofline);
double measure_read_bandwidth(const Model& model, int threads);
std::string describe(const Roofline& roofline);

}  // namespace tandem::app
