#include "app/roofline.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include <fmt/format.h>

namespace tandem::app {

void weight_bytes_per_token(const Model& model, Roofline& roofline) {
  const ModelConfig& c = model.config();
  const double expert_fraction = static_cast<double>(c.router.n_experts_used) / c.router.n_experts;
  roofline.bytes_per_token = roofline.device_bytes_per_token = 0;
  for (const PlacedTensor& t : model.placement_log()) {
    double bytes = static_cast<double>(t.bytes);
    if (t.name.find("_exps.") != std::string::npos) {
      bytes *= expert_fraction;
    } else if (t.name.rfind("token_embd", 0) == 0) {
      bytes /= c.n_vocab;  // one row
    }
    (t.host_data ? roofline.bytes_per_token : roofline.device_bytes_per_token) += bytes;
  }
}

double measure_read_bandwidth(const Model& model, int threads) {
  // Pieces of at most kPiece bytes, handed to the threads in equal counts: a split by tensor left threads
  // idle wherever the host holds few tensors (one MoE layer: 3 tensors for 16 threads) or unequal ones.
  constexpr size_t kPiece = size_t{2} << 20;
  struct Piece {
    const uint64_t* words;
    size_t count;
  };
  std::vector<Piece> pieces;
  uint64_t total = 0;
  for (const PlacedTensor& t : model.placement_log()) {
    if (!t.host_data || t.bytes < 4096) continue;
    const auto* base = reinterpret_cast<const uint8_t*>(t.host_data);
    for (size_t offset = 0; offset + 8 <= t.bytes; offset += kPiece) {
      const size_t bytes = std::min(kPiece, t.bytes - offset);
      pieces.push_back({reinterpret_cast<const uint64_t*>(base + offset), bytes / 8});
      total += bytes / 8 * 8;
    }
  }
  if (total == 0) return 0;
  ThreadPool pool(threads);
  double best = 0;
  for (int pass = 0; pass < 3; ++pass) {
    std::atomic<uint64_t> sink{0};
    const auto started = std::chrono::steady_clock::now();
    // Each thread reads its pieces, every word (a loop the compiler vectorizes, so the reads, not the
    // arithmetic, set the pace).
    (void)pool.parallel_for(static_cast<int64_t>(pieces.size()), [&](int64_t begin, int64_t end) {
      uint64_t acc = 0;
      for (int64_t i = begin; i < end; ++i) {
        const Piece& piece = pieces[static_cast<size_t>(i)];
        for (size_t w = 0; w < piece.count; ++w) acc += piece.words[w];
      }
      sink += acc;
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (pass > 0) best = std::max(best, static_cast<double>(total) / seconds);  // pass 0 warms caches and pages
  }
  return best;
}

std::string describe(const Roofline& r) {
  if (r.device_bytes_per_token > 0) {
    if (r.bytes_per_token <= 0) {
      return fmt::format("{:.2f} GB of weights per token at concurrency 1, all in GPU memory (no CPU roofline)",
                         r.device_bytes_per_token / 1e9);
    }
    return fmt::format("{:.2f} GB of weights per token at concurrency 1 in host memory (plus {:.2f} GB on the GPU); "
                       "host weights read at {:.1f} GB/s: CPU roofline {:.1f} tok/s",
                       r.bytes_per_token / 1e9, r.device_bytes_per_token / 1e9, r.read_bytes_per_s / 1e9, r.tokens_per_s());
  }
  return fmt::format("{:.2f} GB of weights per token at concurrency 1; weights read at {:.1f} GB/s: roofline {:.1f} tok/s",
                     r.bytes_per_token / 1e9, r.read_bytes_per_s / 1e9, r.tokens_per_s());
}

}  // namespace tandem::app
