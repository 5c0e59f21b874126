// Time per launch of the CUDA backend's decode-size kernels (kernels/cuda/cuda_ops.h), without launch gaps:
// each kernel is captured kLaunches times into a CUDA graph and the replays are timed with events. Prints
// microseconds per launch and the weight bytes read per second, next to a device-to-device copy of the same
// size (the bandwidth ceiling measured in the same run). Weights are random bytes of the given type (their
// values do not change the kernels' work). Needs a GPU; run on the GPU box:
//   cuda_kernel_bench [--tokens N]
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "gguf/ggml_type.h"
#include "kernels/cuda/cuda_ops.h"

namespace {

using tandem::GgmlType;
using tandem::cuda::DevTensor;

constexpr int kLaunches = 200;

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(size_t bytes, uint32_t seed = 1) {
    check(cudaMalloc(&p, bytes), "cudaMalloc");
    std::vector<uint8_t> host(bytes);
    std::mt19937 rng(seed);
    for (auto& b : host) b = static_cast<uint8_t>(rng() & 0x3B);  // keeps f16 scales small and finite
    check(cudaMemcpy(p, host.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Microseconds per launch of `launch` (captured kLaunches times into one graph, replayed 5 times).
double time_launches(cudaStream_t stream, const std::function<void()>& launch) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
  for (int i = 0; i < kLaunches; ++i) launch();
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  check(cudaGraphLaunch(exec, stream), "warm-up");
  check(cudaStreamSynchronize(stream), "warm-up");
  cudaEvent_t begin, end;
  cudaEventCreate(&begin);
  cudaEventCreate(&end);
  constexpr int kReplays = 5;
  check(cudaEventRecord(begin, stream), "record");
  for (int r = 0; r < kReplays; ++r) check(cudaGraphLaunch(exec, stream), "replay");
  check(cudaEventRecord(end, stream), "record");
  check(cudaEventSynchronize(end), "sync");
  float ms = 0;
  cudaEventElapsedTime(&ms, begin, end);
  cudaEventDestroy(begin);
  cudaEventDestroy(end);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  return 1e3 * ms / (kReplays * kLaunches);
}

void report(const char* name, double us, double bytes) {
  std::printf("%-44s %9.2f us %9.1f GB/s\n", name, us, bytes / (us * 1e-6) / 1e9);
}

void bench_matmul(cudaStream_t stream, GgmlType type, int64_t rows, int64_t cols, int64_t tokens) {
  const size_t rb = tandem::ggml_row_size(type, cols), wbytes = rb * static_cast<size_t>(rows);
  DeviceBuffer w(wbytes), x(static_cast<size_t>(cols * tokens) * 4, 2), y(static_cast<size_t>(rows * tokens) * 4, 3);
  tandem::cuda::MatmulArgs a;
  a.w = DevTensor{static_cast<char*>(w.p), type, cols, rows, 1, static_cast<int64_t>(rb), static_cast<int64_t>(wbytes)};
  a.n = tokens;
  a.x = static_cast<const float*>(x.p);
  a.x_token_stride = cols;
  a.y = static_cast<float*>(y.p);
  a.y_token_stride = rows;
  const double us = time_launches(stream, [&] { tandem::cuda::launch_matmul(a, stream); });
  const std::string name = "matmul " + std::to_string(rows) + "x" + std::to_string(cols) + " " +
                            std::string(tandem::ggml_type_name(type)) + " n=" + std::to_string(tokens);
  report(name.c_str(), us, static_cast<double>(wbytes));
}

void bench_copy(cudaStream_t stream, size_t bytes) {
  DeviceBuffer a(bytes), b(bytes);
  const double us = time_launches(stream, [&] { cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice, stream); });
  const std::string name = "device copy " + std::to_string(bytes >> 10) + " KiB (read)";
  report(name.c_str(), us, static_cast<double>(bytes));
}

void bench_elementwise(cudaStream_t stream, int64_t n_embd, int64_t tokens) {
  DeviceBuffer a(static_cast<size_t>(n_embd * tokens) * 4, 1), b(static_cast<size_t>(n_embd * tokens) * 4, 2),
      out(static_cast<size_t>(n_embd * tokens) * 4, 3), w(static_cast<size_t>(n_embd) * 4, 4);
  const auto t = [&](void* p) {
    return DevTensor{static_cast<char*>(p), GgmlType::F32, n_embd, tokens, 1, n_embd * 4, n_embd * tokens * 4};
  };
  const double bytes = static_cast<double>(n_embd * tokens * 4);
  report(("add " + std::to_string(n_embd) + " n=" + std::to_string(tokens)).c_str(),
         time_launches(stream, [&] { tandem::cuda::launch_add(t(a.p), t(b.p), t(out.p), stream); }), 3 * bytes);
  report(("rms_norm " + std::to_string(n_embd) + " n=" + std::to_string(tokens)).c_str(),
         time_launches(stream, [&] { tandem::cuda::launch_rms_norm(t(a.p), static_cast<const float*>(w.p), 1e-6f, t(out.p), stream); }),
         2 * bytes);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t tokens = 1;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--tokens") == 0) tokens = std::atoll(argv[i + 1]);
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: nothing to measure\n");
    return 0;
  }
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("%s, %d SMs; %d launches per graph, times per launch\n", prop.name, prop.multiProcessorCount, kLaunches);
  // An empty graph node's cost: the floor under every figure below.
  {
    DeviceBuffer a(4), b(4);
    report("empty node floor (copy of 4 bytes)",
           time_launches(stream, [&] { cudaMemcpyAsync(b.p, a.p, 4, cudaMemcpyDeviceToDevice, stream); }), 4);
  }
  for (size_t bytes : {size_t{3} << 20, size_t{32} << 20, size_t{256} << 20}) bench_copy(stream, bytes);
  bench_elementwise(stream, 2048, tokens);
  // DeepSeek-V2-Lite decode shapes: q, kv_a, o, shared gate/up, shared down, LM head.
  bench_matmul(stream, GgmlType::Q4_K, 3072, 2048, tokens);
  bench_matmul(stream, GgmlType::Q4_K, 576, 2048, tokens);
  bench_matmul(stream, GgmlType::Q4_K, 2048, 2048, tokens);
  bench_matmul(stream, GgmlType::Q4_K, 2816, 2048, tokens);
  bench_matmul(stream, GgmlType::Q6_K, 2048, 2816, tokens);
  bench_matmul(stream, GgmlType::Q4_K, 2048, 2816, tokens);
  bench_matmul(stream, GgmlType::Q8_0, 2048, 10944, tokens);
  bench_matmul(stream, GgmlType::Q6_K, 102400, 2048, tokens);
  bench_matmul(stream, GgmlType::F32, 64, 2048, tokens);
  // DeepSeek-V3 shapes: q_b (24576 x 1536), o (7168 x 16384).
  bench_matmul(stream, GgmlType::Q4_K, 24576, 1536, tokens);
  bench_matmul(stream, GgmlType::Q4_K, 7168, 16384, tokens);
  cudaStreamDestroy(stream);
  return 0;
}
