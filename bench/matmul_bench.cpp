// Throughput of the CPU backend's matrix kernels (kernels/cpu/qmatmul.h) per weight type, ISA and token
// count, on one thread: bytes/s of weights read (the decode figure: the matrix is larger than the caches)
// and multiply-adds per second (the prefill figure). Also the machine's read bandwidth on the same data
// size, for the roofline. Run: build/bench/matmul_bench [--benchmark_filter=Q4_K]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/quant.h"

namespace {

using tandem::GgmlType;

size_t m_bytes_for_pool();
using tandem::cpu::MatmulIsa;

constexpr int64_t kCols = 4096;
constexpr int64_t kRows = 8192;  // 18 MiB at Q4_K, beyond a core's caches
constexpr int64_t kDistinctRows = 64;

struct Matrix {
  std::vector<uint8_t> bytes;
  size_t row_bytes = 0;
};

Matrix make_matrix(GgmlType type) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> values(kCols);
  Matrix m;
  m.row_bytes = tandem::ggml_row_size(type, kCols);
  m.bytes.resize(m.row_bytes * kRows);
  for (int64_t r = 0; r < kDistinctRows; ++r) {
    for (float& v : values) v = dist(rng);
    tandem::cpu::quantize_row(type, values.data(), m.bytes.data() + r * m.row_bytes, kCols);
  }
  for (int64_t r = kDistinctRows; r < kRows; ++r) {
    std::memcpy(m.bytes.data() + r * m.row_bytes, m.bytes.data() + (r % kDistinctRows) * m.row_bytes, m.row_bytes);
  }
  return m;
}

// `cached`: 64 rows (under 200 KiB at 4-6 bits per weight) stay in L2, so the figure is the kernel's own
// instruction throughput, with no memory in the way: beside the uncached figure it says which one binds.
void bm_qmatmul(benchmark::State& state, GgmlType type, MatmulIsa isa, tandem::cpu::ActivationPrecision precision,
                bool cached) {
  if (!tandem::cpu::matmul_isa_supported(isa)) {
    state.SkipWithError("ISA not supported here");
    return;
  }
  const int64_t tokens = state.range(0);
  // Many tokens: a smaller matrix keeps the run short (the figure is then compute, not bandwidth).
  const int64_t rows = cached ? kDistinctRows : tokens > 16 ? 512 : kRows;
  const Matrix m = make_matrix(type);
  std::vector<float> x(static_cast<size_t>(tokens * kCols));
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (float& v : x) v = dist(rng);
  std::vector<uint8_t> xq(tandem::cpu::max_prepared_row_bytes(kCols) * static_cast<size_t>(tokens));
  tandem::cpu::prepare_activation_rows(isa, type, precision, x.data(), kCols, tokens, kCols, xq.data());
  std::vector<float> y(static_cast<size_t>(tokens * rows));
  const size_t scratch_bytes = (tandem::cpu::qmatmul_scratch_bytes(kCols) + 63) / 64 * 64;
  auto* scratch = static_cast<uint8_t*>(std::aligned_alloc(64, scratch_bytes));
  const tandem::Tensor w = tandem::Tensor::contiguous(const_cast<uint8_t*>(m.bytes.data()), type, tandem::Device::cpu(), {kCols, rows, 1});
  for (auto _ : state) {
    tandem::cpu::qmatmul_rows(isa, precision, w, 0, 0, rows, xq.data(), x.data(), kCols, tokens, y.data(), rows, scratch);
    benchmark::DoNotOptimize(y.data());
  }
  std::free(scratch);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(m.row_bytes) * rows);
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * static_cast<double>(rows) *
                                                    kCols * static_cast<double>(tokens) * 1e-9,
                                                benchmark::Counter::kIsRate);
}

// The backend's matmul on every core (the selected ISA and precision), over a matrix 4x the single-thread
// one (75 MiB at Q4_K, beyond any cache): the decode rate all threads reach together, next to
// read_bandwidth_all_threads.
constexpr int64_t kPoolRows = 4 * kRows;

void bm_pool_matmul(benchmark::State& state, GgmlType type) {
  const int64_t tokens = state.range(0);
  const Matrix m = make_matrix(type);
  std::vector<uint8_t> bytes(m.row_bytes * kPoolRows);
  for (int64_t k = 0; k < 4; ++k) std::memcpy(bytes.data() + k * m.bytes.size(), m.bytes.data(), m.bytes.size());
  std::vector<float> x(static_cast<size_t>(tokens * kCols), 0.5f), y(static_cast<size_t>(tokens * kPoolRows));
  tandem::ThreadPool pool(0);
  tandem::cpu::MatmulScratch scratch;
  scratch.reserve(pool.size(), tokens, kCols);
  const tandem::Tensor w = tandem::Tensor::contiguous(bytes.data(), type, tandem::Device::cpu(), {kCols, kPoolRows, 1});
  for (auto _ : state) {
    tandem::cpu::matmul(pool, scratch, w, 0, x.data(), kCols, tokens, y.data(), kPoolRows);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(bytes.size()));
  state.counters["threads"] = pool.size();
}

void bm_read_bandwidth_all_threads(benchmark::State& state) {
  std::vector<uint64_t> data(m_bytes_for_pool() / 8, 1);
  tandem::ThreadPool pool(0);
  std::vector<uint64_t> sums(static_cast<size_t>(pool.size()) * 8);
  for (auto _ : state) {
    (void)pool.parallel_for(static_cast<int64_t>(data.size() / 4096), [&](int64_t begin, int64_t end, int thread) {
      uint64_t sum = 0;
      for (size_t i = static_cast<size_t>(begin) * 4096; i < static_cast<size_t>(end) * 4096; i += 8) {
        sum += data[i] ^ data[i + 1] ^ data[i + 2] ^ data[i + 3] ^ data[i + 4] ^ data[i + 5] ^ data[i + 6] ^ data[i + 7];
      }
      sums[static_cast<size_t>(thread) * 8] += sum;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(data.size() * 8));
}

// Plain reads of a buffer as large as the Q4_K matrix: the bandwidth a decode step can use on one thread.
void bm_read_bandwidth(benchmark::State& state) {
  std::vector<uint64_t> data(static_cast<size_t>(64) << 20 >> 3, 1);
  for (auto _ : state) {
    uint64_t sum = 0;
    for (size_t i = 0; i < data.size(); i += 8) sum += data[i] ^ data[i + 1] ^ data[i + 2] ^ data[i + 3] ^ data[i + 4] ^ data[i + 5] ^ data[i + 6] ^ data[i + 7];
    benchmark::DoNotOptimize(sum);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(data.size() * 8));
}

size_t m_bytes_for_pool() { return tandem::ggml_row_size(GgmlType::Q4_K, kCols) * static_cast<size_t>(kPoolRows); }

void register_all() {
  benchmark::RegisterBenchmark("read_bandwidth", bm_read_bandwidth);
  benchmark::RegisterBenchmark("read_bandwidth_all_threads", bm_read_bandwidth_all_threads)->UseRealTime();
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::Q5_0}) {
    const std::string name = std::string("matmul_all_threads/") + std::string(tandem::ggml_type_name(type));
    benchmark::RegisterBenchmark(name.c_str(), bm_pool_matmul, type)->Arg(1)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);
  }
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q5_K, GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q2_K,
                        GgmlType::Q3_K, GgmlType::BF16}) {
    for (MatmulIsa isa : {MatmulIsa::Scalar, MatmulIsa::Avx2, MatmulIsa::Avx512}) {
      for (auto precision : {tandem::cpu::ActivationPrecision::Int22, tandem::cpu::ActivationPrecision::Int8,
                             tandem::cpu::ActivationPrecision::Float32}) {
        if (isa == MatmulIsa::Scalar && type != GgmlType::Q4_K) continue;
        if (type == GgmlType::BF16 && precision != tandem::cpu::ActivationPrecision::Float32) continue;
        const std::string what = std::string(tandem::ggml_type_name(type)) + "/" + tandem::cpu::matmul_isa_name(isa) +
                                 "/" + tandem::cpu::activation_precision_name(precision);
        benchmark::RegisterBenchmark(("qmatmul/" + what).c_str(), bm_qmatmul, type, isa, precision, false)
            ->Arg(1)->Arg(4)->Arg(64)->Unit(benchmark::kMillisecond);
        if (isa != MatmulIsa::Scalar) {
          benchmark::RegisterBenchmark(("qmatmul_cached/" + what).c_str(), bm_qmatmul, type, isa, precision, true)
              ->Arg(1)->Arg(4)->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
