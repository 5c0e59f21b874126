#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>

#include <fmt/format.h>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/quant.h"

namespace tandem {

namespace {

[[noreturn]] void bad_shape(const char* what, const Tensor& a, const Tensor& b) {
  throw std::invalid_argument(fmt::format("{}: {} and {}", what, describe(a), describe(b)));
}

void require_f32(const Tensor& t, const char* role) {
  if (t.type != GgmlType::F32) throw std::invalid_argument(fmt::format("{} must be f32, is {}", role, describe(t)));
}
void require_i32(const Tensor& t, const char* role) {
  if (t.type != GgmlType::I32) throw std::invalid_argument(fmt::format("{} must be i32, is {}", role, describe(t)));
}

// Calls fn(row pointer of each, ...) for every (row, slice) of same-shaped tensors.
template <typename Fn>
void for_each_row(const Tensor& a, Fn&& fn) {
  for (int64_t s = 0; s < a.slices(); ++s) {
    for (int64_t r = 0; r < a.rows(); ++r) fn(r, s);
  }
}

// The slot of (sequence, position) in a layer's cache, checked against the page table and the cache.
int64_t slot_of(const PagedBatch& b, int64_t n_slots, int32_t seq, int64_t pos) {
  const int32_t* start = b.page_table_start.as<const int32_t>();
  if (seq < 0 || seq >= b.n_sequences) throw std::out_of_range(fmt::format("sequence {} out of range", seq));
  const int64_t page_index = pos / b.page_size;
  if (pos < 0 || start[seq] + page_index >= start[seq + 1]) {
    throw std::out_of_range(fmt::format("position {} is beyond the page table of sequence {}", pos, seq));
  }
  const int64_t page = b.page_table.as<const int32_t>()[start[seq] + page_index];
  const int64_t slot = page * b.page_size + pos % b.page_size;
  if (page < 0 || slot >= n_slots) throw std::out_of_range(fmt::format("page {} is outside the KV cache", page));
  return slot;
}

}  // namespace

CpuBackend::CpuBackend(int n_threads) : pool_(n_threads) {
  error_.reserve(512);
  const char* profile = std::getenv("TANDEM_PROFILE_OPS");
  profiling_ = profile && *profile && std::string(profile) != "0";
}

CpuBackend::~CpuBackend() {
  if (profiling_) print_profile();
}

void CpuBackend::record(const char* op, std::array<int64_t, 2> shape, GgmlType type, double seconds) {
  for (OpTime& entry : profile_) {
    if (entry.op == nullptr) {
      entry.op = op;
      entry.shape = shape;
      entry.type = type;
    } else if (entry.op != op || entry.shape != shape || entry.type != type) {
      continue;
    }
    entry.seconds += seconds;
    ++entry.calls;
    return;
  }
}

void CpuBackend::print_profile() const {
  std::vector<OpTime> rows;
  double total = 0;
  for (const OpTime& entry : profile_) {
    if (entry.op == nullptr) break;
    rows.push_back(entry);
    total += entry.seconds;
  }
  std::sort(rows.begin(), rows.end(), [](const OpTime& a, const OpTime& b) { return a.seconds > b.seconds; });
  std::string table = fmt::format("cpu backend operations ({} threads, {:.3f} s in all):\n", pool_.size(), total);
  for (const OpTime& r : rows) {
    const std::string what = r.shape[0] ? fmt::format("{} {}x{} {}", r.op, r.shape[0], r.shape[1], ggml_type_name(r.type))
                                        : std::string(r.op);
    table += fmt::format("  {:<34} {:>9.3f} s {:>5.1f}% {:>9} calls {:>9.1f} us/call\n", what, r.seconds,
                         total > 0 ? 100 * r.seconds / total : 0.0, r.calls, 1e6 * r.seconds / static_cast<double>(r.calls));
  }
  std::fputs(table.c_str(), stderr);
}

std::string CpuBackend::describe() const {
  return fmt::format("cpu ({} threads, {} kernels, {} activations)", pool_.size(),
                     cpu::matmul_isa_name(cpu::selected_matmul_isa()),
                     cpu::activation_precision_name(cpu::selected_activation_precision()));
}

void CpuBackend::fail(const char* op, const std::string& message) {
  if (error_.empty()) error_ = fmt::format("cpu backend: {}: {}", op, message);
}

template <typename Op>
void CpuBackend::guarded(const char* name, Op&& op) {
  if (!error_.empty()) return;
  try {
    if (profiling_) {
      profile_shape_ = {};
      profile_type_ = GgmlType::F32;
      const auto start = std::chrono::steady_clock::now();
      op();
      record(name, profile_shape_, profile_type_,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      return;
    }
    op();
  } catch (const std::exception& e) {
    fail(name, e.what());
  } catch (...) {
    fail(name, "unknown error");
  }
}

Status CpuBackend::sync() {
  if (error_.empty()) return Status::ok();
  Status s = Status::error(error_);
  error_.clear();
  return s;
}

Result<Tensor> CpuBackend::alloc(GgmlType type, std::array<int64_t, 3> ne, const char* name) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  if (ne[0] <= 0 || ne[1] <= 0 || ne[2] <= 0 || ne[0] % info.block_size != 0) {
    return Status::error(fmt::format("cpu backend: cannot allocate {} with shape [{}, {}, {}]", name, ne[0], ne[1], ne[2]));
  }
  Tensor t = Tensor::contiguous(nullptr, type, Device::cpu(), ne, name);
  const size_t bytes = (t.bytes() + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) return Status::error(fmt::format("cpu backend: out of memory allocating {} ({} bytes)", name, bytes));
  std::memset(p, 0, bytes);
  buffers_.emplace_back(static_cast<uint8_t*>(p), &std::free);
  allocated_bytes_ += bytes;
  t.data = p;
  return t;
}

Result<Tensor> CpuBackend::load_weight(const Tensor& host) {
  if (!host.device.is_cpu()) return Status::error(fmt::format("cpu backend: weight {} is not in host memory", host.name));
  if (!cpu::is_computable(host.type)) {
    return Status::error(fmt::format("cpu backend: no kernel for type {} (tensor {})", ggml_type_name(host.type), host.name));
  }
  max_weight_cols_ = std::max(max_weight_cols_, host.cols());
  if (host.slices() > 1) {  // an expert stack: this backend may run moe() on it
    moe_scratch_.reserve({.max_tokens = 0, .n_embd = host.cols(), .max_ff = host.cols(), .k = 0,
                          .max_experts = host.slices()}, pool_.size());
  }
  Status s = prepare(limits_);
  if (!s) return s;
  if (weights_in_place_) return host;
  return weights_.copy(host, pool_);
}

Status CpuBackend::prepare(const StepLimits& limits) {
  limits_.max_tokens = std::max(limits_.max_tokens, limits.max_tokens);
  limits_.max_sequences = std::max(limits_.max_sequences, limits.max_sequences);
  limits_.max_context = std::max(limits_.max_context, limits.max_context);
  limits_.max_experts_per_token = std::max(limits_.max_experts_per_token, limits.max_experts_per_token);
  limits_.max_width = std::max(limits_.max_width, limits.max_width);
  try {
    matmul_scratch_.reserve(pool_.size(), limits_.max_tokens, max_weight_cols_, limits_.max_width);
    attention_scratch_.reserve(pool_.size(), static_cast<size_t>(limits_.max_context + 1) * sizeof(float));
    if (moe_scratch_.limits().max_experts > 0 && limits_.max_tokens > 0) {
      ExpertLimits l = moe_scratch_.limits();
      l.max_tokens = limits_.max_tokens;
      l.k = limits_.max_experts_per_token;
      moe_scratch_.reserve(l, pool_.size());
    }
  } catch (const std::bad_alloc&) {
    return Status::error("cpu backend: out of memory for scratch buffers");
  }
  return Status::ok();
}

void CpuBackend::upload(const void* host, const Tensor& dst) {
  guarded("upload", [&] {
    if (!dst.is_contiguous()) throw std::invalid_argument("destination is not contiguous");
    std::memcpy(dst.data, host, dst.bytes());
  });
}

void CpuBackend::download(const Tensor& src, void* host) {
  guarded("download", [&] {
    if (!src.is_contiguous()) throw std::invalid_argument("source is not contiguous");
    std::memcpy(host, src.data, src.bytes());
  });
}

void CpuBackend::embed(const Tensor& table, const Tensor& ids, const Tensor& out) {
  guarded("embed", [&] {
    require_i32(ids, "ids");
    require_f32(out, "out");
    if (out.cols() != table.cols() || out.rows() != ids.cols()) bad_shape("embed: ids/out", ids, out);
    const int32_t* id = ids.as<const int32_t>();
    for (int64_t i = 0; i < ids.cols(); ++i) {
      if (id[i] < 0 || id[i] >= table.rows()) {
        throw std::out_of_range(fmt::format("token id {} out of range [0, {})", id[i], table.rows()));
      }
      cpu::dequantize_row(table.type, table.row(id[i]), out.row<float>(i), table.cols());
    }
  });
}

void CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) {
  guarded("rms_norm", [&] {
    require_f32(x, "x");
    require_f32(weight, "weight");
    if (x.ne != out.ne || weight.cols() != x.cols()) bad_shape("rms_norm: x/out", x, out);
    for_each_row(x, [&](int64_t r, int64_t s) {
      cpu::rms_norm(x.row<const float>(r, s), weight.as<const float>(), out.row<float>(r, s), x.cols(), eps);
    });
  });
}

void CpuBackend::matmul(const Tensor& w, int64_t mat, const Tensor& x, const Tensor& y) {
  guarded("matmul", [&] {
    require_f32(x, "x");
    require_f32(y, "y");
    if (x.cols() != w.cols() || y.cols() != w.rows() || x.rows() != y.rows() || mat < 0 || mat >= w.slices()) {
      bad_shape(w.name, x, y);
    }
    profile_shape_ = {w.rows(), w.cols()};
    profile_type_ = w.type;
    cpu::matmul(pool_, matmul_scratch_, w, mat, x.as<const float>(), static_cast<int64_t>(x.nb[1] / 4), x.rows(),
                y.as<float>(), static_cast<int64_t>(y.nb[1] / 4));
  });
}

void CpuBackend::matmul_heads(const Tensor& w, const Tensor& x, const Tensor& y) {
  guarded("matmul_heads", [&] {
    require_f32(x, "x");
    require_f32(y, "y");
    const int64_t n_heads = w.slices(), rows = w.rows(), n = x.slices();
    if (x.cols() != w.cols() || x.rows() != n_heads || y.cols() != rows || y.rows() != n_heads || y.slices() != n) {
      bad_shape(w.name, x, y);
    }
    if (matmul_scratch_.per_thread.bytes_per_thread() < cpu::matmul_thread_scratch_bytes(w.cols())) {
      throw std::invalid_argument("scratch memory not reserved for rows of this width");
    }
    profile_shape_ = {w.rows(), w.cols()};
    profile_type_ = w.type;
    const auto ldx = static_cast<int64_t>(x.nb[2] / 4), ldy = static_cast<int64_t>(y.nb[2] / 4);
    const cpu::ActivationPrecision precision = cpu::selected_activation_precision();
    if (!cpu::has_fast_matmul(w.type)) {
      const int64_t blocks_per_head = (rows + cpu::kRowBlock - 1) / cpu::kRowBlock;
      Status s = pool_.parallel_for(n_heads * blocks_per_head, [&](int64_t begin, int64_t end, int thread) {
        for (int64_t i = begin; i < end; ++i) {
          const int64_t h = i / blocks_per_head, r = (i % blocks_per_head) * cpu::kRowBlock;
          cpu::matmul_rows(w, h, r, std::min(rows, r + cpu::kRowBlock), x.row<const float>(h), ldx, n,
                           y.row<float>(h), ldy, matmul_scratch_.per_thread.get(thread));
        }
      });
      if (!s) throw std::runtime_error(s.message());
      return;
    }
    // Each head's activations prepared once ([head][token] rows), then tiles of rows of every head.
    const cpu::MatmulIsa isa = cpu::selected_matmul_isa();
    const size_t row_bytes = cpu::prepared_row_bytes(w.type, precision, w.cols());
    uint8_t* prepared = matmul_scratch_.activations.data();
    if (row_bytes > 0) {
      if (matmul_scratch_.activations.size() < row_bytes * static_cast<size_t>(n_heads * n)) {
        throw std::invalid_argument("activation scratch not reserved for this many heads and tokens");
      }
      Status s = pool_.parallel_for(n_heads, [&](int64_t begin, int64_t end, int) {
        for (int64_t h = begin; h < end; ++h) {
          cpu::prepare_activation_rows(isa, w.type, precision, x.row<const float>(h), ldx, n, w.cols(),
                                       prepared + static_cast<size_t>(h * n) * row_bytes);
        }
      });
      if (!s) throw std::runtime_error(s.message());
    }
    constexpr int64_t kRowsPerTask = 16;
    const int64_t tasks_per_head = (rows + kRowsPerTask - 1) / kRowsPerTask;
    Status s = pool_.parallel_for(n_heads * tasks_per_head, [&](int64_t begin, int64_t end, int thread) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t h = i / tasks_per_head, r = (i % tasks_per_head) * kRowsPerTask;
        cpu::qmatmul_rows(isa, precision, w, h, r, std::min(rows, r + kRowsPerTask),
                          prepared + static_cast<size_t>(h * n) * row_bytes, x.row<const float>(h), ldx, n,
                          y.row<float>(h), ldy, matmul_scratch_.per_thread.get(thread));
      }
    });
    if (!s) throw std::runtime_error(s.message());
  });
}

void CpuBackend::matmul_heads_transposed(const Tensor& w, const Tensor& x, const Tensor& y) {
  guarded("matmul_heads_transposed", [&] {
    require_f32(x, "x");
    require_f32(y, "y");
    const int64_t n_heads = w.slices(), rows = w.rows(), cols = w.cols(), n = x.slices();
    if (x.cols() != rows || x.rows() != n_heads || y.cols() != cols || y.rows() != n_heads || y.slices() != n) {
      bad_shape(w.name, x, y);
    }
    // Rows dequantized together: as many as the thread's scratch holds (at least kRowBlock), up to 64.
    const auto block_rows = std::min<int64_t>(
        64, static_cast<int64_t>(matmul_scratch_.per_thread.bytes_per_thread() / (static_cast<size_t>(cols) * sizeof(float))));
    if (block_rows < cpu::kRowBlock) throw std::invalid_argument("scratch memory not reserved for rows of this width");
    profile_shape_ = {rows, cols};
    profile_type_ = w.type;
    // Per head: a block of rows dequantized at a time, applied to every token in row order (each output is
    // one fma chain over the rows, whatever the blocking).
    Status s = pool_.parallel_for(n_heads, [&](int64_t begin, int64_t end, int thread) {
      float* block = matmul_scratch_.per_thread.floats(thread);
      for (int64_t h = begin; h < end; ++h) {
        for (int64_t t = 0; t < n; ++t) std::fill(y.row<float>(h, t), y.row<float>(h, t) + cols, 0.0f);
        for (int64_t r0 = 0; r0 < rows; r0 += block_rows) {
          const int64_t count = std::min(block_rows, rows - r0);
          for (int64_t i = 0; i < count; ++i) cpu::dequantize_row(w.type, w.row(r0 + i, h), block + i * cols, cols);
          for (int64_t t = 0; t < n; ++t) {
            cpu::axpy_rows(block, cols, count, x.row<const float>(h, t) + r0, y.row<float>(h, t), cols);
          }
        }
      }
    });
    if (!s) throw std::runtime_error(s.message());
  });
}

void CpuBackend::add(const Tensor& a, const Tensor& b, const Tensor& out) {
  guarded("add", [&] {
    require_f32(a, "a");
    require_f32(b, "b");
    if (a.ne != b.ne || a.ne != out.ne) bad_shape("add", a, b);
    for_each_row(a, [&](int64_t r, int64_t s) {
      const float *pa = a.row<const float>(r, s), *pb = b.row<const float>(r, s);
      float* po = out.row<float>(r, s);
      for (int64_t i = 0; i < a.cols(); ++i) po[i] = pa[i] + pb[i];
    });
  });
}

void CpuBackend::swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) {
  guarded("swiglu", [&] {
    require_f32(gate, "gate");
    require_f32(up, "up");
    if (gate.ne != up.ne || gate.ne != out.ne) bad_shape("swiglu", gate, up);
    for_each_row(gate, [&](int64_t r, int64_t s) {
      cpu::swiglu(gate.row<const float>(r, s), up.row<const float>(r, s), out.row<float>(r, s), gate.cols());
    });
  });
}

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  guarded("copy", [&] {
    if (src.ne != dst.ne || src.type != dst.type) bad_shape("copy", src, dst);
    const size_t bytes = src.row_bytes();
    for_each_row(src, [&](int64_t r, int64_t s) { std::memcpy(dst.row(r, s), src.row(r, s), bytes); });
  });
}

void CpuBackend::gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) {
  guarded("gather_rows", [&] {
    require_i32(rows, "rows");
    if (out.cols() != x.cols() || out.rows() != rows.cols() || out.type != x.type) bad_shape("gather_rows", x, out);
    const int32_t* r = rows.as<const int32_t>();
    for (int64_t i = 0; i < rows.cols(); ++i) {
      if (r[i] < 0 || r[i] >= x.rows()) throw std::out_of_range(fmt::format("row {} out of range [0, {})", r[i], x.rows()));
      std::memcpy(out.row(i), x.row(r[i]), x.row_bytes());
    }
  });
}

void CpuBackend::rope(const Tensor& x, const Tensor& positions, const RopeSpec& spec) {
  guarded("rope", [&] {
    require_f32(x, "x");
    require_i32(positions, "positions");
    if (x.cols() < spec.n_dims || positions.cols() != x.slices() || spec.inv_freq.cols() * 2 != spec.n_dims) {
      bad_shape("rope: x/positions", x, positions);
    }
    const int half = spec.n_dims / 2;
    const float* inv_freq = spec.inv_freq.as<const float>();
    const float scale = spec.attention_factor;
    for_each_row(x, [&](int64_t r, int64_t t) {
      float* v = x.row<float>(r, t);
      const auto pos = static_cast<float>(positions.as<const int32_t>()[t]);
      for (int i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];
        const float c = std::cos(angle) * scale, s = std::sin(angle) * scale;
        float* a = spec.adjacent_pairs ? v + 2 * i : v + i;
        float* b = spec.adjacent_pairs ? v + 2 * i + 1 : v + i + half;
        const float x0 = *a, x1 = *b;
        *a = x0 * c - x1 * s;
        *b = x1 * c + x0 * s;
      }
    });
  });
}

void CpuBackend::store_kv(const Tensor& src, const Tensor& cache, int64_t col_offset, const PagedBatch& batch) {
  guarded("store_kv", [&] {
    require_f32(src, "src");
    require_f32(cache, "cache");
    if (col_offset < 0 || col_offset + src.cols() > cache.cols() || src.rows() != batch.n_tokens) {
      bad_shape("store_kv: src/cache", src, cache);
    }
    const int32_t* seq = batch.seq_of_token.as<const int32_t>();
    const int32_t* pos = batch.positions.as<const int32_t>();
    for (int64_t t = 0; t < src.rows(); ++t) {
      const int64_t slot = slot_of(batch, cache.rows(), seq[t], pos[t]);
      std::memcpy(cache.row<float>(slot) + col_offset, src.row(t), src.row_bytes());
    }
  });
}

void CpuBackend::attention(const Tensor& q, const Tensor& cache, const KvLayout& layout, const PagedBatch& batch,
                           float scale, const Tensor& out) {
  guarded("attention", [&] {
    require_f32(q, "q");
    require_f32(out, "out");
    const int64_t n = batch.n_tokens, n_heads = q.rows();
    if (q.slices() != n || out.slices() != n || out.rows() != n_heads || out.cols() != layout.value_dim ||
        q.cols() < layout.key_dim || layout.n_kv_heads <= 0 || n_heads % layout.n_kv_heads != 0) {
      bad_shape("attention: q/out", q, out);
    }
    if (static_cast<size_t>(batch.max_position + 1) * sizeof(float) > attention_scratch_.bytes_per_thread()) {
      throw std::invalid_argument("attention span beyond the prepared context");
    }
    const int64_t group = n_heads / layout.n_kv_heads;
    const int64_t width = static_cast<int64_t>(cache.nb[1] / sizeof(float));
    const int32_t* seq_of = batch.seq_of_token.as<const int32_t>();
    const int32_t* positions = batch.positions.as<const int32_t>();
    // Validate every page the step reads before any thread starts.
    for (int64_t t = 0; t < n; ++t) slot_of(batch, cache.rows(), seq_of[t], positions[t]);
    const int32_t* start = batch.page_table_start.as<const int32_t>();
    const int32_t* table = batch.page_table.as<const int32_t>();
    const int64_t page_size = batch.page_size;

    Status s = pool_.parallel_for(n * n_heads, [&](int64_t begin, int64_t end, int thread) {
      float* scores = attention_scratch_.floats(thread);
      for (int64_t th = begin; th < end; ++th) {
        const int64_t t = th / n_heads, h = th % n_heads, kvh = h / group;
        const int64_t n_pos = positions[t] + 1;
        const int32_t* pages = table + start[seq_of[t]];
        const float* query = q.row<const float>(h, t);
        const int64_t key_at = layout.key_offset + kvh * layout.key_head_stride;
        const int64_t value_at = layout.value_offset + kvh * layout.value_head_stride;
        for (int64_t first = 0; first < n_pos; first += page_size) {
          const int64_t count = std::min(page_size, n_pos - first);
          const float* slots = cache.row<const float>(pages[first / page_size] * page_size);
          cpu::gemm_f32(slots + key_at, width, count, query, layout.key_dim, 1, layout.key_dim, scores + first, count);
        }
        for (int64_t p = 0; p < n_pos; ++p) scores[p] *= scale;
        cpu::softmax(scores, n_pos);
        float* o = out.row<float>(h, t);
        std::fill(o, o + layout.value_dim, 0.0f);
        for (int64_t first = 0; first < n_pos; first += page_size) {
          const int64_t count = std::min(page_size, n_pos - first);
          const float* slots = cache.row<const float>(pages[first / page_size] * page_size);
          for (int64_t j = 0; j < count; ++j) {
            const float wp = scores[first + j];
            const float* v = slots + j * width + value_at;
            for (int64_t i = 0; i < layout.value_dim; ++i) o[i] += wp * v[i];
          }
        }
      }
    });
    if (!s) throw std::runtime_error(s.message());
  });
}

void CpuBackend::route(const Tensor& logits, const Tensor& bias, const RouterConfig& config, const Tensor& ids,
                       const Tensor& weights) {
  guarded("route", [&] {
    require_f32(logits, "logits");
    require_i32(ids, "ids");
    require_f32(weights, "weights");
    if (logits.cols() != config.n_experts || config.n_experts > kMaxExperts || config.n_group > kMaxExpertGroups ||
        ids.cols() != config.n_experts_used || ids.ne != weights.ne || ids.rows() != logits.rows() ||
        (bias.valid() && bias.cols() != config.n_experts)) {
      bad_shape("route: logits/ids", logits, ids);
    }
    const float* b = bias.valid() ? bias.as<const float>() : nullptr;
    for (int64_t t = 0; t < logits.rows(); ++t) {
      route_token(config, logits.row<const float>(t), b, ids.row<int32_t>(t), weights.row<float>(t));
    }
  });
}

void CpuBackend::moe(const ExpertWeights& experts, const Tensor& x, const Tensor& ids, const Tensor& weights,
                     const Tensor& out) {
  guarded("moe", [&] { cpu::run_experts(pool_, moe_scratch_, ExpertJob{experts, x, ids, weights, out}); });
}

}  // namespace tandem
