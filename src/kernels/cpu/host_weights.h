// HostWeights: copies of weights in anonymous memory backed by huge pages where the kernel allows.
//
// Reading weights straight from the mapped GGUF file walks 4 KiB pages: on large models the TLB misses
// cost a third of the read bandwidth decoding depends on (measured on the 16-core Xeon: 64 GB/s from the
// mapping against 89 GB/s from anonymous memory). CPU backends and expert runners copy their weights here
// at load (unless asked to keep the mapping), 2 MiB-aligned with MADV_HUGEPAGE, using a thread pool.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kernels/tensor.h"

namespace tandem::cpu {

class HostWeights {
 public:
  // The weight `host` copied into owned memory; the result views the copy (name and shape kept).
  Result<Tensor> copy(const Tensor& host, ThreadPool& pool);
  size_t bytes() const { return bytes_; }

 private:
  struct Free {
    size_t bytes;
    void operator()(void* p) const;
  };
  std::vector<std::unique_ptr<void, Free>> blocks_;
  size_t bytes_ = 0;
};

}  // namespace tandem::cpu
