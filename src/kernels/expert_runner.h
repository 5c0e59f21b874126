// ExpertRunner: routed experts computed asynchronously on host memory, so the caller can do other work
// (the shared expert, a GPU's part of the layer) while they run.
//
// submit() starts one layer's experts and returns at once; wait() blocks until they are done and returns
// the job's status. One job is in flight at a time; its tensors must stay valid and unchanged until wait()
// returns. The result obeys Backend::moe's contract (slots summed in j order per token, independent of the
// other tokens of the job). prepare() sizes the runner's scratch memory once; submit() and wait()
// allocate nothing and never throw.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "kernels/backend.h"

namespace tandem {

// One layer's routed-expert work; every tensor is in host memory.
struct ExpertJob {
  ExpertWeights experts;  // {n_embd, n_ff, n_experts} gate and up, {n_ff, n_embd, n_experts} down
  Tensor x;               // F32 {n_embd, n}
  Tensor ids;             // I32 {k, n}
  Tensor weights;         // F32 {k, n}
  Tensor out;             // F32 {n_embd, n}
};

// Sizes of the largest job: the runner's scratch memory is allocated from them.
struct ExpertLimits {
  int64_t max_tokens = 0;
  int64_t n_embd = 0;
  int64_t max_ff = 0;  // widest expert FFN
  int k = 0;           // experts per token
  int64_t max_experts = 0;
};

class ExpertRunner {
 public:
  virtual ~ExpertRunner() = default;
  virtual std::string describe() const = 0;
  // The expert stack `host` (host memory that outlives the runner, e.g. the mapped GGUF) as the runner will
  // read it: in place, or copied into memory the runner owns.
  virtual Result<Tensor> load_weight(const Tensor& host) = 0;
  virtual Status prepare(const ExpertLimits& limits) = 0;
  virtual void submit(const ExpertJob& job) = 0;
  virtual Status wait() = 0;
  // Seconds spent computing jobs since construction.
  virtual double busy_seconds() const = 0;
  // Jobs computed since construction, and the distinct experts they read (summed over jobs): the expert
  // weights a layer reads grow with this, not with the tokens. 0 where not counted.
  virtual int64_t jobs_done() const { return 0; }
  virtual int64_t experts_read() const { return 0; }
};

}  // namespace tandem
