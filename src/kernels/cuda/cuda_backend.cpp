#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

#include "kernels/cuda/cuda_ops.h"

namespace tandem {

namespace {

bool is_computable_on_gpu(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0: case GgmlType::Q4_0:
    case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q2_K: case GgmlType::Q3_K:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

std::string cuda_message(cudaError_t e) { return fmt::format("{} ({})", cudaGetErrorString(e), cudaGetErrorName(e)); }

[[noreturn]] void bad_shape(const char* what, const Tensor& a, const Tensor& b) {
  throw std::invalid_argument(fmt::format("{}: {} and {}", what, describe(a), describe(b)));
}
void require(const Tensor& t, GgmlType type, const char* role) {
  if (t.type != type) {
    throw std::invalid_argument(fmt::format("{} must be {}, is {}", role, ggml_type_name(type), describe(t)));
  }
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int index, cudaStream_t stream, int* error_flag, std::string name)
      : index_(index), stream_(stream), error_flag_(error_flag), name_(std::move(name)) {
    for (auto& pair : span_events_) {
      for (cudaEvent_t& e : pair) {
        if (cudaEventCreate(&e) != cudaSuccess) e = nullptr;  // busy time is then not measured
      }
    }
  }

  ~CudaBackend() override {
    cudaSetDevice(index_);
    cudaStreamSynchronize(stream_);
    if (profiling_) print_profile();
    for (cudaEvent_t e : profile_events_) {
      if (e) cudaEventDestroy(e);
    }
    if (graph_ == GraphState::Capturing) abandon_capture();
    for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
    if (copy_stream_) {
      cudaStreamSynchronize(copy_stream_);
      cudaStreamDestroy(copy_stream_);
      for (cudaEvent_t e : {main_mark_, copied_[0], copied_[1]}) cudaEventDestroy(e);
    }
    for (void* p : pinned_ranges_) cudaHostUnregister(p);
    for (void* p : device_blocks_) cudaFree(p);
    for (void* p : host_blocks_) cudaFreeHost(p);
    for (auto& pair : span_events_) {
      for (cudaEvent_t e : pair) {
        if (e) cudaEventDestroy(e);
      }
    }
    cudaFree(error_flag_);
    cudaStreamDestroy(stream_);
  }

  Device device() const override { return Device::cuda(index_); }
  std::string describe() const override {
    return streaming_note_.empty() ? name_ : name_ + ", " + streaming_note_;
  }

  Result<Tensor> alloc(GgmlType type, std::array<int64_t, 3> ne, const char* name) override {
    Tensor t = Tensor::contiguous(nullptr, type, device(), ne, name);
    void* p = device_memory(std::max<size_t>(t.bytes(), 1), name);
    if (!p) return Status::error(fmt::format("cuda backend: out of GPU memory for {} ({} bytes)", name, t.bytes()));
    if (cudaError_t e = cudaMemset(p, 0, t.bytes()); e != cudaSuccess) return Status::error(cuda_message(e));
    t.data = p;
    return t;
  }

  Result<Tensor> alloc_host(GgmlType type, std::array<int64_t, 3> ne, const char* name) override {
    Tensor t = Tensor::contiguous(nullptr, type, Device::cpu(), ne, name);
    void* p = nullptr;
    if (cudaMallocHost(&p, std::max<size_t>(t.bytes(), 1)) != cudaSuccess) {
      return Status::error(fmt::format("cuda backend: cannot allocate {} bytes of page-locked memory for {}", t.bytes(), name));
    }
    host_blocks_.push_back(p);
    std::memset(p, 0, t.bytes());
    t.data = p;
    return t;
  }

  Result<Tensor> load_weight(const Tensor& host) override {
    if (!host.device.is_cpu() || !host.is_contiguous()) {
      return Status::error(fmt::format("cuda backend: weight {} is not contiguous host memory", host.name));
    }
    if (!is_computable_on_gpu(host.type)) {
      return Status::error(fmt::format("cuda backend: no kernel for type {} (tensor {})", ggml_type_name(host.type), host.name));
    }
    Tensor t = host;
    t.device = device();
    void* p = device_memory(std::max<size_t>(host.bytes(), 1), host.name);
    if (!p) return Status::error(fmt::format("cuda backend: out of GPU memory for weight {} ({} bytes)", host.name, host.bytes()));
    if (cudaError_t e = cudaMemcpy(p, host.data, host.bytes(), cudaMemcpyHostToDevice); e != cudaSuccess) {
      return Status::error(fmt::format("cuda backend: copying weight {}: {}", host.name, cuda_message(e)));
    }
    t.data = p;
    max_experts_ = std::max(max_experts_, host.ne[2]);
    return t;
  }

  Status prepare(const StepLimits& limits) override {
    // The only step-sized scratch: moe()'s (cuda_ops.h MoeScratch), for tokens x experts per token pairs of
    // the widest row; the tile list for the widest expert stack loaded so far (weights come first).
    const int64_t pairs = limits.max_tokens * limits.max_experts_per_token;
    if (pairs <= moe_pairs_ && max_experts_ <= moe_experts_ && limits.max_width <= moe_width_) return Status::ok();
    moe_pairs_ = std::max(moe_pairs_, pairs);
    moe_experts_ = std::max(moe_experts_, max_experts_);
    moe_width_ = std::max(moe_width_, limits.max_width);
    const auto floats = static_cast<size_t>(moe_pairs_ * moe_width_) * sizeof(float);
    const auto tiles = static_cast<size_t>(cuda::moe_max_tiles(moe_pairs_, 1, moe_experts_)) * 3 * sizeof(int32_t);
    moe_.hidden = static_cast<float*>(device_memory(floats, "moe hidden"));
    moe_.down_out = static_cast<float*>(device_memory(floats, "moe down"));
    moe_.slots = static_cast<int32_t*>(device_memory(static_cast<size_t>(moe_pairs_) * sizeof(int32_t), "moe slots"));
    moe_.tiles = static_cast<int32_t*>(device_memory(tiles, "moe tiles"));
    moe_.n_tiles = static_cast<int32_t*>(device_memory(sizeof(int32_t), "moe tile count"));
    if (!moe_.hidden || !moe_.down_out || !moe_.slots || !moe_.tiles || !moe_.n_tiles) {
      moe_pairs_ = 0;
      return Status::error("cuda backend: out of GPU memory for expert scratch");
    }
    return Status::ok();
  }

  size_t allocated_bytes() const override { return allocated_bytes_; }

  void upload(const void* host, const Tensor& dst) override {
    guarded("upload", [&] {
      if (graph_ != GraphState::Off) throw std::logic_error("transfer inside a recorded run");
      if (!dst.is_contiguous()) throw std::invalid_argument("destination is not contiguous");
      open_busy_span();
      check(cudaMemcpyAsync(dst.data, host, dst.bytes(), cudaMemcpyHostToDevice, stream_));
    });
  }

  void download_later(const Tensor& src, void* host) override {
    guarded("download", [&] {
      if (graph_ != GraphState::Off) throw std::logic_error("transfer inside a recorded run");
      if (!src.is_contiguous()) throw std::invalid_argument("source is not contiguous");
      open_busy_span();
      check(cudaMemcpyAsync(host, src.data, src.bytes(), cudaMemcpyDeviceToHost, stream_));
    });
  }

  void download(const Tensor& src, void* host) override {
    download_later(src, host);
    guarded("download", [&] { check(wait_for_stream()); });
  }

  void embed(const Tensor& table, const Tensor& ids, const Tensor& out) override {
    note("embed", table, ids, out);
    guarded("embed", [&] {
      require(ids, GgmlType::I32, "ids");
      require(out, GgmlType::F32, "out");
      if (out.cols() != table.cols() || out.rows() != ids.cols()) bad_shape("embed: ids/out", ids, out);
      cuda::launch_embed(cuda::dev(table), ids.as<const int32_t>(), ids.cols(), cuda::dev(out), error_flag_, stream_);
    });
  }

  void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) override {
    note("rms_norm", x, weight, eps, out);
    guarded("rms_norm", [&] {
      require(x, GgmlType::F32, "x");
      require(weight, GgmlType::F32, "weight");
      if (x.ne != out.ne || weight.cols() != x.cols()) bad_shape("rms_norm: x/out", x, out);
      cuda::launch_rms_norm(cuda::dev(x), weight.as<const float>(), eps, cuda::dev(out), stream_);
    });
  }

  void matmul(const Tensor& w, int64_t mat, const Tensor& x, const Tensor& y) override {
    note("matmul", w, mat, x, y);
    guarded("matmul", [&] {
      require(x, GgmlType::F32, "x");
      require(y, GgmlType::F32, "y");
      if (x.cols() != w.cols() || y.cols() != w.rows() || x.rows() != y.rows() || mat < 0 || mat >= w.slices()) {
        bad_shape(w.name, x, y);
      }
      cuda::MatmulArgs a = matmul_args(w, x, y, 1);
      a.w.data += mat * a.w.nb2;
      cuda::launch_matmul(a, stream_);
    }, &w);
  }

  void matmul_heads(const Tensor& w, const Tensor& x, const Tensor& y) override {
    note("matmul_heads", w, x, y);
    guarded("matmul_heads", [&] {
      require(x, GgmlType::F32, "x");
      require(y, GgmlType::F32, "y");
      const int64_t n_heads = w.slices(), n = x.slices();
      if (x.cols() != w.cols() || x.rows() != n_heads || y.cols() != w.rows() || y.rows() != n_heads || y.slices() != n) {
        bad_shape(w.name, x, y);
      }
      cuda::MatmulArgs a = matmul_args(w, x, y, 2);
      a.w_head_bytes = static_cast<int64_t>(w.nb[2]);
      a.heads = n_heads;
      a.x_head_stride = static_cast<int64_t>(x.nb[1] / 4);
      a.y_head_stride = static_cast<int64_t>(y.nb[1] / 4);
      cuda::launch_matmul(a, stream_);
    }, &w);
  }

  void matmul_heads_transposed(const Tensor& w, const Tensor& x, const Tensor& y) override {
    note("matmul_heads_transposed", w, x, y);
    guarded("matmul_heads_transposed", [&] {
      require(x, GgmlType::F32, "x");
      require(y, GgmlType::F32, "y");
      const int64_t n_heads = w.slices(), n = x.slices();
      if (x.cols() != w.rows() || x.rows() != n_heads || y.cols() != w.cols() || y.rows() != n_heads || y.slices() != n) {
        bad_shape(w.name, x, y);
      }
      cuda::launch_matmul_heads_transposed(cuda::dev(w), cuda::dev(x), cuda::dev(y), stream_);
    }, &w);
  }

  void add(const Tensor& a, const Tensor& b, const Tensor& out) override {
    note("add", a, b, out);
    guarded("add", [&] {
      require(a, GgmlType::F32, "a");
      require(b, GgmlType::F32, "b");
      if (a.ne != b.ne || a.ne != out.ne) bad_shape("add", a, b);
      cuda::launch_add(cuda::dev(a), cuda::dev(b), cuda::dev(out), stream_);
    });
  }

  void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) override {
    note("swiglu", gate, up, out);
    guarded("swiglu", [&] {
      require(gate, GgmlType::F32, "gate");
      require(up, GgmlType::F32, "up");
      if (gate.ne != up.ne || gate.ne != out.ne) bad_shape("swiglu", gate, up);
      cuda::launch_swiglu(cuda::dev(gate), cuda::dev(up), cuda::dev(out), stream_);
    });
  }

  void copy(const Tensor& src, const Tensor& dst) override {
    note("copy", src, dst);
    guarded("copy", [&] {
      if (src.ne != dst.ne || src.type != dst.type) bad_shape("copy", src, dst);
      cuda::launch_copy(cuda::dev(src), cuda::dev(dst), stream_);
    });
  }

  void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) override {
    note("gather_rows", x, rows, out);
    guarded("gather_rows", [&] {
      require(rows, GgmlType::I32, "rows");
      if (out.cols() != x.cols() || out.rows() != rows.cols() || out.type != x.type) bad_shape("gather_rows", x, out);
      cuda::launch_gather_rows(cuda::dev(x), rows.as<const int32_t>(), rows.cols(), cuda::dev(out), error_flag_, stream_);
    });
  }

  void rope(const Tensor& x, const Tensor& positions, const RopeSpec& spec) override {
    note("rope", x, positions, spec);
    guarded("rope", [&] {
      require(x, GgmlType::F32, "x");
      require(positions, GgmlType::I32, "positions");
      if (x.cols() < spec.n_dims || positions.cols() != x.slices() || spec.inv_freq.cols() * 2 != spec.n_dims) {
        bad_shape("rope: x/positions", x, positions);
      }
      cuda::launch_rope(cuda::dev(x), positions.as<const int32_t>(), spec.inv_freq.as<const float>(), spec.n_dims,
                        spec.adjacent_pairs, spec.attention_factor, stream_);
    });
  }

  void store_kv(const Tensor& src, const Tensor& cache, int64_t col_offset, const PagedBatch& batch) override {
    note("store_kv", src, cache, col_offset, batch);
    guarded("store_kv", [&] {
      require(src, GgmlType::F32, "src");
      require(cache, GgmlType::F32, "cache");
      if (col_offset < 0 || col_offset + src.cols() > cache.cols() || src.rows() != batch.n_tokens) {
        bad_shape("store_kv: src/cache", src, cache);
      }
      cuda::launch_store_kv(cuda::dev(src), cuda::dev(cache), col_offset, paged(batch, cache), error_flag_, stream_);
    });
  }

  void attention(const Tensor& q, const Tensor& cache, const KvLayout& layout, const PagedBatch& batch, float scale,
                 const Tensor& out) override {
    note("attention", q, cache, layout, batch, scale, out);
    guarded("attention", [&] {
      require(q, GgmlType::F32, "q");
      require(out, GgmlType::F32, "out");
      const int64_t n = batch.n_tokens, n_heads = q.rows();
      if (q.slices() != n || out.slices() != n || out.rows() != n_heads || out.cols() != layout.value_dim ||
          q.cols() < layout.key_dim || layout.n_kv_heads <= 0 || n_heads % layout.n_kv_heads != 0) {
        bad_shape("attention: q/out", q, out);
      }
      if (!cuda::launch_attention(cuda::dev(q), cuda::dev(cache), layout, paged(batch, cache), scale, cuda::dev(out),
                                  error_flag_, stream_)) {
        throw std::invalid_argument(fmt::format("attention: heads of {} key / {} value dimensions exceed the kernel's 1024",
                                                layout.key_dim, layout.value_dim));
      }
    });
  }

  void route(const Tensor& logits, const Tensor& bias, const RouterConfig& config, const Tensor& ids,
             const Tensor& weights) override {
    note("route", logits, bias, config, ids, weights);
    guarded("route", [&] {
      require(logits, GgmlType::F32, "logits");
      require(ids, GgmlType::I32, "ids");
      require(weights, GgmlType::F32, "weights");
      if (logits.cols() != config.n_experts || config.n_experts > kMaxExperts || config.n_group > kMaxExpertGroups ||
          config.n_group <= 0 || config.n_experts_used > config.n_experts || ids.cols() != config.n_experts_used ||
          ids.ne != weights.ne || ids.rows() != logits.rows() || (bias.valid() && bias.cols() != config.n_experts)) {
        bad_shape("route: logits/ids", logits, ids);
      }
      cuda::launch_route(cuda::dev(logits), bias.valid() ? bias.as<const float>() : nullptr, config, cuda::dev(ids),
                         cuda::dev(weights), stream_);
    });
  }

  void moe(const ExpertWeights& experts, const Tensor& x, const Tensor& ids, const Tensor& weights,
           const Tensor& out) override {
    note("moe", experts, x, ids, weights, out);
    guarded("moe", [&] {
      require(x, GgmlType::F32, "x");
      require(ids, GgmlType::I32, "ids");
      require(weights, GgmlType::F32, "weights");
      require(out, GgmlType::F32, "out");
      const Tensor& g = experts.gate;
      const int64_t n = x.rows(), k = ids.cols();
      if (x.cols() != g.cols() || experts.up.ne != g.ne || experts.down.cols() != g.rows() ||
          experts.down.rows() != g.cols() || experts.down.slices() != g.slices() || ids.ne != weights.ne ||
          ids.rows() != n || out.ne != x.ne) {
        bad_shape("moe: x/ids", x, ids);
      }
      if (n * k > moe_pairs_ || std::max(g.rows(), g.cols()) > moe_width_) {
        throw std::invalid_argument("moe: more tokens, experts per token or expert width than prepared for");
      }
      // Grouped by expert when the step is large and the tile list fits (both ways give the same bits).
      const bool grouped = cuda::moe_uses_grouped(n, k, g.slices()) && g.slices() <= moe_experts_ &&
                           experts.up.type == g.type;
      cuda::launch_moe(experts, cuda::dev(x), cuda::dev(ids), cuda::dev(weights), cuda::dev(out), moe_, grouped,
                       error_flag_, stream_);
    }, &experts.gate);
  }

  Status prepare_expert_streaming(const std::vector<ExpertWeights>& layers) override {
    if (layers.empty() || copy_stream_) return Status::ok();
    size_t bytes[3] = {0, 0, 0};
    std::vector<std::pair<uintptr_t, uintptr_t>> ranges;  // host bytes to pin, page-aligned
    const uintptr_t page = 4096;
    for (const ExpertWeights& l : layers) {
      const Tensor* m[3] = {&l.gate, &l.up, &l.down};
      for (int i = 0; i < 3; ++i) {
        if (!m[i]->device.is_cpu() || !m[i]->is_contiguous() || !is_computable_on_gpu(m[i]->type)) {
          return Status::error(fmt::format("cuda backend: cannot stream expert tensor {}", m[i]->name));
        }
        bytes[i] = std::max(bytes[i], m[i]->bytes());
        const auto begin = reinterpret_cast<uintptr_t>(m[i]->data);
        ranges.emplace_back(begin / page * page, (begin + m[i]->bytes() + page - 1) / page * page);
      }
      max_experts_ = std::max(max_experts_, l.gate.slices());
    }
    for (int slot = 0; slot < 2; ++slot) {
      for (int i = 0; i < 3; ++i) {
        staging_[slot][i] = device_memory(bytes[i], "expert staging");
        if (!staging_[slot][i]) return Status::error("cuda backend: out of GPU memory for the expert staging slots");
      }
    }
    if (cudaError_t e = cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking); e != cudaSuccess) {
      copy_stream_ = nullptr;
      return Status::error(cuda_message(e));
    }
    for (cudaEvent_t* e : {&main_mark_, &copied_[0], &copied_[1]}) {
      if (cudaError_t err = cudaEventCreateWithFlags(e, cudaEventDisableTiming); err != cudaSuccess) {
        return Status::error(cuda_message(err));
      }
    }
    // Copies run at full speed only from page-locked memory: pin the stacks (merged, as neighbouring tensors
    // share pages). Where that fails (limits, a read-only mapping the driver refuses) copies still work, slower.
    std::sort(ranges.begin(), ranges.end());
    std::vector<std::pair<uintptr_t, uintptr_t>> merged;
    for (const auto& r : ranges) {
      if (!merged.empty() && r.first <= merged.back().second) {
        merged.back().second = std::max(merged.back().second, r.second);
      } else {
        merged.push_back(r);
      }
    }
    size_t pinned = 0, total = 0;
    for (const auto& [begin, end] : merged) {
      total += end - begin;
      void* p = reinterpret_cast<void*>(begin);
      if (cudaHostRegister(p, end - begin, cudaHostRegisterPortable | cudaHostRegisterReadOnly) == cudaSuccess) {
        pinned_ranges_.push_back(p);
        pinned += end - begin;
      } else {
        cudaGetLastError();
      }
    }
    streaming_note_ = fmt::format("{:.2f} of {:.2f} GB of streamed experts page-locked", static_cast<double>(pinned) / 1e9,
                                  static_cast<double>(total) / 1e9);
    return Status::ok();
  }

  void stage_experts(const ExpertWeights& host, int slot) override {
    guarded("stage_experts", [&] {
      if (!copy_stream_ || slot < 0 || slot > 1) throw std::logic_error("expert streaming was not prepared");
      if (graph_ != GraphState::Off) throw std::logic_error("transfer inside a recorded run");
      // The copy waits for the work queued so far (the last user of the slot is among it).
      check(cudaEventRecord(main_mark_, stream_));
      check(cudaStreamWaitEvent(copy_stream_, main_mark_, 0));
      const Tensor* m[3] = {&host.gate, &host.up, &host.down};
      for (int i = 0; i < 3; ++i) {
        check(cudaMemcpyAsync(staging_[slot][i], m[i]->data, m[i]->bytes(), cudaMemcpyHostToDevice, copy_stream_));
      }
      check(cudaEventRecord(copied_[slot], copy_stream_));
    });
  }

  ExpertWeights staged_experts(const ExpertWeights& host, int slot) override {
    ExpertWeights w = host;
    guarded("staged_experts", [&] {
      if (!copy_stream_ || slot < 0 || slot > 1) throw std::logic_error("expert streaming was not prepared");
      check(cudaStreamWaitEvent(stream_, copied_[slot], 0));
      Tensor* m[3] = {&w.gate, &w.up, &w.down};
      for (int i = 0; i < 3; ++i) {
        m[i]->data = staging_[slot][i];
        m[i]->device = device();
      }
    });
    return w;
  }

  bool begin_graph(uint64_t key) override {
    if (graph_ != GraphState::Off) end_graph();
    if (profiling_ || !error_.empty()) return false;  // profiling waits inside operations: no capture
    open_busy_span();  // outside the capture: an event recorded inside it would not time the replays
    fingerprint_ = 0xcbf29ce484222325ull;
    graph_key_ = key;
    if (graphs_.count(key)) {
      graph_ = GraphState::Replaying;
      return true;
    }
    if (cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal); e != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    graph_ = GraphState::Capturing;
    return true;
  }

  void end_graph() override {
    if (graph_ == GraphState::Replaying) {
      graph_ = GraphState::Off;
      auto it = graphs_.find(graph_key_);
      if (it->second.fingerprint != fingerprint_) {
        // Never replay stale arguments: fail this run, record it again next time.
        if (error_.empty()) error_ = fmt::format("recorded run {:#x} replayed with other arguments", graph_key_);
        cudaGraphExecDestroy(it->second.exec);
        graphs_.erase(it);
        return;
      }
      if (error_.empty()) {
        if (cudaError_t e = cudaGraphLaunch(it->second.exec, stream_); e != cudaSuccess) error_ = "graph launch: " + cuda_message(e);
      }
      return;
    }
    if (graph_ != GraphState::Capturing) return;
    graph_ = GraphState::Off;
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    if (e != cudaSuccess || !graph || !error_.empty()) {
      if (e != cudaSuccess && error_.empty()) error_ = "graph capture: " + cuda_message(e);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      return;
    }
    cudaGraphExec_t exec = nullptr;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
      error_ = "graph instantiate: " + cuda_message(e);
      return;
    }
    graphs_[graph_key_] = {exec, fingerprint_};
    if (e = cudaGraphLaunch(exec, stream_); e != cudaSuccess) error_ = "graph launch: " + cuda_message(e);
  }

  Status sync() override {
    if (graph_ == GraphState::Capturing) {
      abandon_capture();
      if (error_.empty()) error_ = "sync inside a recorded run";
    }
    graph_ = GraphState::Off;
    cudaError_t e = wait_for_stream();
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess && error_.empty()) error_ = "cuda: " + cuda_message(e);
    int flag = 0;
    if (cudaMemcpy(&flag, error_flag_, sizeof flag, cudaMemcpyDeviceToHost) == cudaSuccess && flag != 0) {
      cudaMemset(error_flag_, 0, sizeof flag);
      if (error_.empty()) error_ = fmt::format("cuda kernel: {}", cuda::device_error_message(flag));
    }
    if (error_.empty()) return Status::ok();
    Status s = Status::error(std::move(error_));
    error_.clear();
    return s;
  }

  double busy_seconds() const override { return busy_seconds_; }
  void end_busy_span() override {
    if (!span_open_) return;
    span_open_ = false;
    if (cudaEventRecord(span_events_[spans_ended_][1], stream_) == cudaSuccess) ++spans_ended_;
  }

 private:
  // Runs op unless an earlier one failed; an exception it throws, or a failed launch, becomes the error.
  // With TANDEM_PROFILE_OPS=1 each operation is waited for and timed (launch included): a diagnostic that
  // serializes the stream, printed to stderr when the backend is destroyed.
  template <typename Op>
  void guarded(const char* name, Op&& op, const Tensor* weight = nullptr) {
    if (!error_.empty() || graph_ == GraphState::Replaying) return;
    if (graph_ == GraphState::Off) open_busy_span();
    try {
      std::chrono::steady_clock::time_point started;
      if (profiling_) {
        cudaStreamSynchronize(stream_);
        if (!profile_events_[0]) {
          for (cudaEvent_t& e : profile_events_) cudaEventCreate(&e);
        }
        started = std::chrono::steady_clock::now();
        cudaEventRecord(profile_events_[0], stream_);
      }
      op();
      if (profiling_) {
        cudaEventRecord(profile_events_[1], stream_);
        cudaStreamSynchronize(stream_);
        std::string key = name;
        if (weight) key += fmt::format(" {}x{}x{} {}", weight->rows(), weight->cols(), weight->slices(), ggml_type_name(weight->type));
        ProfileEntry& e = profile_[key];
        e.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        float ms = 0;
        if (cudaEventElapsedTime(&ms, profile_events_[0], profile_events_[1]) == cudaSuccess) e.device_seconds += ms / 1e3;
        ++e.calls;
      }
      if (cudaError_t e = cudaPeekAtLastError(); e != cudaSuccess) {
        cudaGetLastError();
        error_ = fmt::format("{}: {}", name, cuda_message(e));
      }
    } catch (const std::exception& e) {
      error_ = fmt::format("{}: {}", name, e.what());
    }
  }
  // --- busy time (busy_seconds) ---
  // A span opens when work is queued while none is open (an event recorded before it) and ends at the next
  // wait or end_busy_span() (an event after it). Ended spans are timed at the next wait, when their events
  // have completed; a wait comes at least once per layer, so a few event pairs suffice.
  static constexpr int kSpans = 8;
  void open_busy_span() {
    if (span_open_ || graph_ == GraphState::Capturing || spans_ended_ == kSpans || !span_events_[spans_ended_][0]) return;
    span_open_ = cudaEventRecord(span_events_[spans_ended_][0], stream_) == cudaSuccess;
  }
  cudaError_t wait_for_stream() {
    end_busy_span();
    const cudaError_t e = cudaStreamSynchronize(stream_);
    for (int i = 0; i < spans_ended_ && e == cudaSuccess; ++i) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, span_events_[i][0], span_events_[i][1]) == cudaSuccess) busy_seconds_ += ms / 1000.0;
    }
    spans_ended_ = 0;
    return e;
  }

  // --- recorded runs ---
  enum class GraphState { Off, Capturing, Replaying };
  struct Recorded {
    cudaGraphExec_t exec = nullptr;
    uint64_t fingerprint = 0;
  };
  // FNV-1a over the arguments of the operations of a recorded run, to check a replay against its recording.
  void mix(uint64_t v) { fingerprint_ = (fingerprint_ ^ v) * 0x100000001b3ull; }
  void mix_arg(const Tensor& t) {
    mix(reinterpret_cast<uintptr_t>(t.data));
    mix(static_cast<uint64_t>(t.type));
    for (int i = 0; i < 3; ++i) mix(static_cast<uint64_t>(t.ne[i]));
    mix(t.nb[1]);
    mix(t.nb[2]);
  }
  void mix_arg(int64_t v) { mix(static_cast<uint64_t>(v)); }
  void mix_arg(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    mix(bits);
  }
  void mix_arg(const KvLayout& l) {
    for (int64_t v : {l.n_kv_heads, l.key_offset, l.key_head_stride, l.key_dim, l.value_offset, l.value_head_stride,
                      l.value_dim}) {
      mix_arg(v);
    }
  }
  // What the kernels receive of a batch (cuda::DevPaged): where its tables are, not how long they are this
  // step (the page table grows as sequences do; the kernels read its bounds from page_table_start).
  void mix_arg(const PagedBatch& b) {
    for (const Tensor* t : {&b.positions, &b.seq_of_token, &b.page_table_start, &b.page_table}) {
      mix(reinterpret_cast<uintptr_t>(t->data));
    }
    mix_arg(int64_t{b.page_size});
    mix_arg(b.n_tokens);
  }
  void mix_arg(const RopeSpec& r) {
    mix_arg(r.inv_freq);
    mix_arg(int64_t{r.n_dims});
    mix_arg(int64_t{r.adjacent_pairs});
    mix_arg(r.attention_factor);
  }
  void mix_arg(const RouterConfig& c) {
    for (int64_t v : {int64_t{c.n_experts}, int64_t{c.n_experts_used}, int64_t{c.n_group}, int64_t{c.topk_group},
                      static_cast<int64_t>(c.scoring), static_cast<int64_t>(c.topk_method), int64_t{c.norm_topk_prob}}) {
      mix_arg(v);
    }
    mix_arg(static_cast<float>(c.routed_scaling_factor));
  }
  void mix_arg(const ExpertWeights& e) {
    mix_arg(e.gate);
    mix_arg(e.up);
    mix_arg(e.down);
  }
  // Folds an operation's arguments into the fingerprint of the run being recorded or replayed.
  template <typename... Args>
  void note(const char* op, const Args&... args) {
    if (graph_ == GraphState::Off) return;
    mix(reinterpret_cast<uintptr_t>(op));
    (mix_arg(args), ...);
  }
  void abandon_capture() {
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(stream_, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    graph_ = GraphState::Off;
  }
  GraphState graph_ = GraphState::Off;
  uint64_t fingerprint_ = 0;
  uint64_t graph_key_ = 0;
  std::map<uint64_t, Recorded> graphs_;

  struct ProfileEntry {
    double seconds = 0;         // host time, launch and wait included
    double device_seconds = 0;  // between events recorded before and after the operation's work
    int64_t calls = 0;
  };
  void print_profile() const {
    double total = 0, device_total = 0;
    for (const auto& [key, e] : profile_) total += e.seconds, device_total += e.device_seconds;
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [key, e] : profile_) {
      rows.emplace_back(e.device_seconds,
                        fmt::format("{:>9.1f} ms {:5.1f}% {:>8} calls {:>8.1f} us/call on the GPU {:>8.1f} us/call host  {}",
                                    e.device_seconds * 1e3, 100 * e.device_seconds / device_total, e.calls,
                                    1e6 * e.device_seconds / e.calls, 1e6 * e.seconds / e.calls, key));
    }
    std::sort(rows.rbegin(), rows.rend());
    fmt::print(stderr, "cuda operation profile ({:.1f} ms on the GPU, {:.1f} ms host; each operation waited for):\n",
               device_total * 1e3, total * 1e3);
    for (const auto& row : rows) fmt::print(stderr, "{}\n", row.second);
  }
  bool profiling_ = [] {
    const char* v = std::getenv("TANDEM_PROFILE_OPS");
    return v && *v && *v != '0';
  }();
  std::map<std::string, ProfileEntry> profile_;
  cudaEvent_t profile_events_[2] = {nullptr, nullptr};

  static void check(cudaError_t e) {
    if (e != cudaSuccess) throw std::runtime_error(cuda_message(e));
  }

  void* device_memory(size_t bytes, const char* what) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free allocation error
      return nullptr;
    }
    device_blocks_.push_back(p);
    allocated_bytes_ += bytes;
    return p;
  }

  // The arguments of a matmul whose tokens are x's and y's dimension token_dim (1: rows, 2: slices).
  static cuda::MatmulArgs matmul_args(const Tensor& w, const Tensor& x, const Tensor& y, int token_dim) {
    cuda::MatmulArgs a;
    a.w = cuda::dev(w);
    a.n = x.ne[static_cast<size_t>(token_dim)];
    a.x = x.as<const float>();
    a.x_token_stride = static_cast<int64_t>(x.nb[static_cast<size_t>(token_dim)] / 4);
    a.y = y.as<float>();
    a.y_token_stride = static_cast<int64_t>(y.nb[static_cast<size_t>(token_dim)] / 4);
    return a;
  }

  cuda::DevPaged paged(const PagedBatch& b, const Tensor& cache) const {
    return {b.positions.as<const int32_t>(), b.seq_of_token.as<const int32_t>(), b.page_table_start.as<const int32_t>(),
            b.page_table.as<const int32_t>(), b.page_size, b.n_tokens, cache.rows()};
  }

  int index_;
  cudaStream_t stream_;
  int* error_flag_;  // device memory
  std::string name_;
  std::vector<void*> device_blocks_, host_blocks_;
  size_t allocated_bytes_ = 0;
  // Streamed experts: two slots of gate / up / down buffers, filled on copy_stream_.
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t main_mark_ = nullptr, copied_[2] = {nullptr, nullptr};
  cudaEvent_t span_events_[kSpans][2] = {};  // begin and end of each busy span since the last wait
  int spans_ended_ = 0;                       // spans ended since the last wait (the next one uses this pair)
  bool span_open_ = false;
  double busy_seconds_ = 0;
  void* staging_[2][3] = {};
  std::vector<void*> pinned_ranges_;
  std::string streaming_note_;
  cuda::MoeScratch moe_;
  int64_t moe_pairs_ = 0, moe_experts_ = 0, moe_width_ = 0;  // what moe_ is sized for
  int64_t max_experts_ = 0;  // the most slices of a weight loaded (expert stacks)
  std::string error_;
};

}  // namespace

CudaDevices cuda_devices() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return {0, "no usable CUDA device: " + cuda_message(e)};
  }
  if (count == 0) return {0, "no CUDA device present"};
  return {count, ""};
}

Result<std::unique_ptr<Backend>> make_cuda_backend(int index) {
  const CudaDevices devices = cuda_devices();
  if (devices.count == 0) return Status::error(devices.reason);
  if (index < 0 || index >= devices.count) {
    return Status::error(fmt::format("cuda:{} does not exist ({} CUDA device(s))", index, devices.count));
  }
  if (cudaError_t e = cudaSetDevice(index); e != cudaSuccess) return Status::error(cuda_message(e));
  cudaDeviceProp prop{};
  if (cudaError_t e = cudaGetDeviceProperties(&prop, index); e != cudaSuccess) return Status::error(cuda_message(e));
  cudaStream_t stream = nullptr;
  if (cudaError_t e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking); e != cudaSuccess) {
    return Status::error(cuda_message(e));
  }
  int* flag = nullptr;
  if (cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&flag), sizeof(int)); e != cudaSuccess) {
    cudaStreamDestroy(stream);
    return Status::error(cuda_message(e));
  }
  cudaMemset(flag, 0, sizeof(int));
  std::string name = fmt::format("cuda:{} {} ({} SMs, {:.0f} GiB, sm_{}{})", index, prop.name, prop.multiProcessorCount,
                                 static_cast<double>(prop.totalGlobalMem) / (1 << 30), prop.major, prop.minor);
  return std::unique_ptr<Backend>(std::make_unique<CudaBackend>(index, stream, flag, std::move(name)));
}

}  // namespace tandem
