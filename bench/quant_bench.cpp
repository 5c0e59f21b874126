// Throughput of the CPU kernels per GGUF type and ISA.
//
// dot_row: one iteration is a matrix-vector product over a 4096 x 4096 matrix of the type (every row dotted
// with the same x), a working set far larger than L2, so the figure is what a decode step sees.
// dequantize_row: the same matrix decoded row by row into one L1-resident buffer.
// bytes_per_second counts the quantized weight bytes read; items_per_second counts weights.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/quant.h"

namespace {

using tandem::GgmlType;
using tandem::cpu::Isa;

constexpr int64_t kCols = 4096;
constexpr int64_t kRows = 4096;
constexpr int64_t kDistinctRows = 16;  // quantized once, then tiled to fill the matrix

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

void report(benchmark::State& state, const Matrix& m) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(m.bytes.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kRows * kCols);
}

void bm_dot_row(benchmark::State& state, GgmlType type, Isa isa) {
  const Matrix m = make_matrix(type);
  std::vector<float> x(kCols, 0.5f);
  std::vector<float> y(kRows);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) {
      y[r] = tandem::cpu::dot_row(isa, type, m.bytes.data() + r * m.row_bytes, x.data(), kCols);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  report(state, m);
}

void bm_dequantize_row(benchmark::State& state, GgmlType type, Isa isa) {
  const Matrix m = make_matrix(type);
  std::vector<float> out(kCols);
  for (auto _ : state) {
    for (int64_t r = 0; r < kRows; ++r) {
      tandem::cpu::dequantize_row(isa, type, m.bytes.data() + r * m.row_bytes, out.data(), kCols);
      benchmark::DoNotOptimize(out.data());
    }
    benchmark::ClobberMemory();
  }
  report(state, m);
}

void register_benchmarks() {
  const GgmlType types[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                            GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K,
                            GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
  for (const Isa isa : {Isa::Scalar, Isa::Avx2}) {
    if (!tandem::cpu::isa_supported(isa)) continue;
    for (const GgmlType type : types) {
      const std::string suffix = std::string(tandem::ggml_type_name(type)) + "/" + tandem::cpu::isa_name(isa);
      benchmark::RegisterBenchmark(("dot_row/" + suffix).c_str(), bm_dot_row, type, isa)->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("dequantize_row/" + suffix).c_str(), bm_dequantize_row, type, isa)
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
