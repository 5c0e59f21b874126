#include "kernels/cpu/host_weights.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace tandem::cpu {

void HostWeights::Free::operator()(void* p) const { munmap(p, bytes); }

Result<Tensor> HostWeights::copy(const Tensor& host, ThreadPool& pool) {
  if (!host.is_contiguous()) return Status::error(fmt::format("weight {} is not contiguous", host.name));
  const size_t bytes = host.bytes();
  constexpr size_t kHuge = size_t{2} << 20;
  const size_t mapped = (bytes + kHuge - 1) / kHuge * kHuge;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return Status::error(fmt::format("out of memory copying weight {} ({:.1f} MiB)", host.name, bytes / 1048576.0));
  }
  madvise(p, mapped, MADV_HUGEPAGE);  // a hint: without transparent huge pages it is simply ignored
  blocks_.emplace_back(p, Free{mapped});
  auto* dst = static_cast<uint8_t*>(p);
  const auto* src = static_cast<const uint8_t*>(host.data);
  constexpr size_t kChunk = size_t{1} << 20;
  const auto chunks = static_cast<int64_t>((bytes + kChunk - 1) / kChunk);
  Status s = pool.parallel_for(chunks, [&](int64_t begin, int64_t end) {
    const size_t from = static_cast<size_t>(begin) * kChunk, to = std::min(bytes, static_cast<size_t>(end) * kChunk);
    std::memcpy(dst + from, src + from, to - from);
  });
  if (!s) return s;
  bytes_ += bytes;
  Tensor t = host;
  t.data = p;
  return t;
}

}  // namespace tandem::cpu
