// Backend conformance: every operation of every backend against a scalar reference (double-precision sums
// over the values the scalar kernels dequantize), on random inputs with odd shapes, every weight type the
// kernels load, batch sizes 1 to 64 and paged attention over ragged sequences with shuffled pages; plus
// batch invariance (a token's result is bit-identical alone or in any batch) and error reporting.
//
// Tolerances: a float32 dot product of K terms computed in any order is within K * 2^-24 * sum|a_i b_i|
// of the exact value (the standard summation bound); tests allow twice that, plus 1e-6 absolute. Products
// with quantized weights may also quantize the activations, to at least 16 bits per group of 256 values:
// each x_i may move by amax / 65536 of its group (amax = max |x| over the 256 values), which adds
// sum_i |w_i| * amax_i / 65536 (the CPU backend's int22 activations keep x_i to about amax / 2^21, well
// inside; the allowance below is amax / 65536 * 1.02). With TANDEM_ACTIVATIONS=int8 (opt-in, one int8 level
// per 256 values) x_i moves by up to half a step, amax / 254, and the allowance is amax / 254 * 1.02: the
// suite then checks that mode (CTest kernels_conformance_int8).
// A backend joins the suite by adding a factory to kBackends (the CUDA backend adds itself when built).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <numeric>
#include <random>
#include <set>
#include <thread>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/cpu_expert_runner.h"
#include "kernels/cpu/qmatmul.h"
#include "kernels/cpu/quant.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/expert_runner.h"

namespace tandem {
namespace {

// make() returns nullptr with a reason in `skip` when the backend cannot run here (no GPU).
struct BackendFactory {
  std::string name;
  std::function<std::unique_ptr<Backend>(std::string& skip)> make;
};

void PrintTo(const BackendFactory& factory, std::ostream* os) { *os << factory.name; }

const std::vector<BackendFactory>& backends() {
  static const std::vector<BackendFactory> list{
      {"cpu_1_thread", [](std::string&) { return std::make_unique<CpuBackend>(1); }},
      {"cpu_3_threads", [](std::string&) { return std::make_unique<CpuBackend>(3); }},
#ifdef TANDEM_HAVE_CUDA
      {"cuda", [](std::string& skip) -> std::unique_ptr<Backend> {
         auto backend = make_cuda_backend(0);
         if (!backend) {
           skip = backend.status().message();
           return nullptr;
         }
         return std::move(backend.value());
       }},
#endif
  };
  return list;
}

const std::vector<GgmlType> kWeightTypes{GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q8_0,
                                         GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1,
                                         GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                         GgmlType::Q6_K};
const std::vector<int64_t> kBatchSizes{1, 2, 3, 7, 16, 33, 64};

double bound(int64_t k, double magnitude) { return 2.0 * static_cast<double>(k) * std::ldexp(1.0, -24) * magnitude + 1e-6; }

// The activation quantization allowance of sum_i w_i x_i (see the header): sum_i |w_i| * amax of x_i's group.
double activation_allowance(const float* w, const float* x, int64_t n) {
  const double levels = cpu::selected_activation_precision() == cpu::ActivationPrecision::Int8 ? 254 : 65536;
  double total = 0;
  for (int64_t g = 0; g < n; g += 256) {
    double amax = 0, wsum = 0;
    for (int64_t i = g; i < std::min(n, g + 256); ++i) {
      amax = std::max(amax, double{std::abs(x[i])});
      wsum += std::abs(w[i]);
    }
    total += wsum * amax / levels * 1.02;
  }
  return total;
}

std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

class BackendConformance : public ::testing::TestWithParam<BackendFactory> {
 protected:
  void SetUp() override {
    std::string skip;
    backend = GetParam().make(skip);
    if (!backend) GTEST_SKIP() << GetParam().name << " backend unavailable: " << skip;
    ASSERT_TRUE(backend->prepare(limits));
  }

  // A tensor on the backend's device holding `values`.
  Tensor f32(const std::vector<float>& values, std::array<int64_t, 3> ne) {
    auto t = backend->alloc(GgmlType::F32, ne, "test f32");
    EXPECT_TRUE(t);
    EXPECT_EQ(static_cast<size_t>(ne[0] * ne[1] * ne[2]), values.size());
    backend->upload(values.data(), t.value());
    return t.value();
  }
  Tensor zeros(std::array<int64_t, 3> ne, GgmlType type = GgmlType::F32) {
    auto t = backend->alloc(type, ne, "test out");
    EXPECT_TRUE(t);
    return t.value();
  }
  Tensor i32(const std::vector<int32_t>& values) {
    auto t = backend->alloc(GgmlType::I32, {static_cast<int64_t>(values.size()), 1, 1}, "test i32");
    EXPECT_TRUE(t);
    backend->upload(values.data(), t.value());
    return t.value();
  }
  template <typename T = float>
  std::vector<T> read(const Tensor& t) {
    std::vector<T> out(t.bytes() / sizeof(T));
    backend->download(t, out.data());
    return out;
  }
  // A random weight {cols, rows, mats} of `type`, loaded on the backend; `values` gets what it holds
  // (dequantized by the scalar reference), [mat][row][col].
  Tensor weight(GgmlType type, int64_t cols, int64_t rows, int64_t mats, uint64_t seed, std::vector<float>& values) {
    const std::vector<float> source = random_floats(static_cast<size_t>(cols * rows * mats), seed, 0.5f);
    const size_t row_bytes = ggml_row_size(type, cols);
    std::vector<uint8_t>& bytes = storage.emplace_back(row_bytes * static_cast<size_t>(rows * mats));
    values.assign(source.size(), 0.0f);
    for (int64_t r = 0; r < rows * mats; ++r) {
      cpu::quantize_row(type, source.data() + r * cols, bytes.data() + static_cast<size_t>(r) * row_bytes, cols);
      cpu::dequantize_row(cpu::Isa::Scalar, type, bytes.data() + static_cast<size_t>(r) * row_bytes,
                          values.data() + r * cols, cols);
    }
    auto t = backend->load_weight(Tensor::contiguous(bytes.data(), type, Device::cpu(), {cols, rows, mats}, "test weight"));
    EXPECT_TRUE(t) << t.status().message();
    EXPECT_TRUE(backend->prepare(limits));
    return t.value();
  }

  StepLimits limits{.max_tokens = 256, .max_sequences = 8, .max_context = 512, .max_experts_per_token = 8, .max_width = 1024};
  std::unique_ptr<Backend> backend;
  std::deque<std::vector<uint8_t>> storage;
};

TEST_P(BackendConformance, MatmulMatchesTheReferenceForEveryWeightTypeAndBatchSize) {
  for (GgmlType type : kWeightTypes) {
    const int64_t block = ggml_type_info(type).block_size;
    const int64_t cols = block == 256 ? 512 : 96, rows = 19, mats = 3;
    std::vector<float> w;
    const Tensor wt = weight(type, cols, rows, mats, 11 + static_cast<uint64_t>(type), w);
    for (int64_t n : kBatchSizes) {
      const std::vector<float> x = random_floats(static_cast<size_t>(n * cols), 100 + static_cast<uint64_t>(n));
      const Tensor xt = f32(x, {cols, n, 1}), yt = zeros({rows, n, 1});
      const int64_t mat = n % mats;
      backend->matmul(wt, mat, xt, yt);
      ASSERT_TRUE(backend->sync()) << ggml_type_name(type);
      const std::vector<float> y = read(yt);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
          double exact = 0, magnitude = 0;
          for (int64_t c = 0; c < cols; ++c) {
            const double p = double{w[static_cast<size_t>((mat * rows + r) * cols + c)]} * x[static_cast<size_t>(t * cols + c)];
            exact += p;
            magnitude += std::abs(p);
          }
          const double allowance = activation_allowance(w.data() + (mat * rows + r) * cols, x.data() + t * cols, cols);
          ASSERT_NEAR(y[static_cast<size_t>(t * rows + r)], exact, bound(cols, magnitude) + allowance)
              << ggml_type_name(type) << " batch " << n << " token " << t << " row " << r;
        }
      }
    }
  }
}

TEST_P(BackendConformance, MatmulIsBatchInvariantBitForBit) {
  // 37 tokens take the GPU's tiled kernel, one token its per-row kernel: the same bits (Q4_0 and BF16 take
  // the tiled kernel's run-time-typed instantiation).
  for (GgmlType type : {GgmlType::F32, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K,
                        GgmlType::Q6_K}) {
    const int64_t cols = ggml_type_info(type).block_size == 256 ? 256 : 64, rows = 13;
    std::vector<float> w;
    const Tensor wt = weight(type, cols, rows, 1, 7, w);
    const int64_t n = 37;
    const std::vector<float> x = random_floats(static_cast<size_t>(n * cols), 5);
    const Tensor xt = f32(x, {cols, n, 1}), yt = zeros({rows, n, 1});
    backend->matmul(wt, 0, xt, yt);
    const std::vector<float> batched = read(yt);
    for (int64_t t : {int64_t{0}, int64_t{17}, n - 1}) {
      const Tensor one = f32(std::vector<float>(x.begin() + t * cols, x.begin() + (t + 1) * cols), {cols, 1, 1});
      const Tensor out = zeros({rows, 1, 1});
      backend->matmul(wt, 0, one, out);
      const std::vector<float> alone = read(out);
      for (int64_t r = 0; r < rows; ++r) {
        ASSERT_EQ(alone[static_cast<size_t>(r)], batched[static_cast<size_t>(t * rows + r)]) << ggml_type_name(type) << " token " << t;
      }
    }
    ASSERT_TRUE(backend->sync());
  }
}

TEST_P(BackendConformance, MatmulHeadsMatchesTheReference) {
  for (GgmlType type : {GgmlType::F32, GgmlType::Q8_0}) {
    const int64_t heads = 5, cols = 32, rows = 11;
    std::vector<float> w;
    const Tensor wt = weight(type, cols, rows, heads, 3, w);
    for (int64_t n : kBatchSizes) {
      // x is a column range of a wider per-head tensor, as MLA's q_nope is.
      const int64_t width = cols + 7;
      const std::vector<float> x = random_floats(static_cast<size_t>(n * heads * width), 9);
      const Tensor xt = f32(x, {heads * width, n, 1}).heads(heads).col_range(0, cols);
      const Tensor yt = zeros({heads * rows, n, 1});
      backend->matmul_heads(wt, xt, yt.heads(heads));
      ASSERT_TRUE(backend->sync());
      const std::vector<float> y = read(yt);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
          for (int64_t r = 0; r < rows; ++r) {
            double exact = 0, magnitude = 0;
            for (int64_t c = 0; c < cols; ++c) {
              const double p = double{w[static_cast<size_t>((h * rows + r) * cols + c)]} *
                               x[static_cast<size_t>((t * heads + h) * width + c)];
              exact += p;
              magnitude += std::abs(p);
            }
            const double allowance = activation_allowance(w.data() + (h * rows + r) * cols,
                                                          x.data() + (t * heads + h) * width, cols);
            ASSERT_NEAR(y[static_cast<size_t>((t * heads + h) * rows + r)], exact, bound(cols, magnitude) + allowance);
          }
        }
      }
    }
  }
}

// MLA's key up-projection: per head, rows [first, first + count) of each group of rows of a 2-D weight
// (attn_kv_b's key rows), summed weighted by the token's per-head vector.
TEST_P(BackendConformance, MatmulHeadsTransposedMatchesTheReferenceAndIsBatchInvariant) {
  for (GgmlType type : {GgmlType::F32, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_K}) {
    const int64_t heads = 3, group = 13, first = 2, count = 9;
    const int64_t cols = ggml_type_info(type).block_size == 256 ? 256 : 96;
    std::vector<float> w;  // [heads * group][cols]
    const Tensor wt = weight(type, cols, heads * group, 1, 4, w).row_groups(group, first, count);
    std::vector<float> alone_first;  // token 0's result when alone
    for (int64_t n : kBatchSizes) {
      const int64_t width = count + 5;  // x is a column range of a wider per-head tensor
      const std::vector<float> x = random_floats(static_cast<size_t>(n * heads * width), 13);
      const Tensor xt = f32(x, {heads * width, n, 1}).heads(heads).col_range(0, count);
      const Tensor yt = zeros({heads * cols, n, 1});
      backend->matmul_heads_transposed(wt, xt, yt.heads(heads));
      ASSERT_TRUE(backend->sync());
      const std::vector<float> y = read(yt);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t h = 0; h < heads; ++h) {
          for (int64_t c = 0; c < cols; ++c) {
            double exact = 0, magnitude = 0;
            for (int64_t r = 0; r < count; ++r) {
              const double p = double{w[static_cast<size_t>((h * group + first + r) * cols + c)]} *
                               x[static_cast<size_t>((t * heads + h) * width + r)];
              exact += p;
              magnitude += std::abs(p);
            }
            ASSERT_NEAR(y[static_cast<size_t>((t * heads + h) * cols + c)], exact, bound(count, magnitude))
                << ggml_type_name(type) << " n " << n;
          }
        }
      }
      // Token 0 has the same inputs in every call (same seed): its result must not change with n.
      const std::vector<float> first_token(y.begin(), y.begin() + heads * cols);
      if (alone_first.empty()) alone_first = first_token;
      ASSERT_EQ(first_token, alone_first) << ggml_type_name(type) << " n " << n;
    }
  }
}

TEST_P(BackendConformance, ElementwiseOperationsMatchTheReference) {
  const int64_t d = 77, n = 23;
  const std::vector<float> a = random_floats(static_cast<size_t>(d * n), 1), b = random_floats(static_cast<size_t>(d * n), 2);
  const std::vector<float> g = random_floats(static_cast<size_t>(d), 3);
  const Tensor at = f32(a, {d, n, 1}), bt = f32(b, {d, n, 1}), gt = f32(g, {d, 1, 1});
  const Tensor sum = zeros({d, n, 1}), act = zeros({d, n, 1}), normed = zeros({d, n, 1});
  backend->add(at, bt, sum);
  backend->swiglu(at, bt, act);
  backend->rms_norm(at, gt, 1e-6f, normed);
  ASSERT_TRUE(backend->sync());
  const auto s = read(sum), w = read(act), r = read(normed);
  for (int64_t t = 0; t < n; ++t) {
    double sq = 0;
    for (int64_t i = 0; i < d; ++i) sq += double{a[static_cast<size_t>(t * d + i)]} * a[static_cast<size_t>(t * d + i)];
    const double inv = 1.0 / std::sqrt(sq / static_cast<double>(d) + 1e-6);
    for (int64_t i = 0; i < d; ++i) {
      const auto k = static_cast<size_t>(t * d + i);
      EXPECT_EQ(s[k], a[k] + b[k]);
      const double silu = a[k] / (1.0 + std::exp(-double{a[k]}));
      EXPECT_NEAR(w[k], silu * b[k], 1e-6 * (1 + std::abs(silu * b[k])));
      EXPECT_NEAR(r[k], a[k] * inv * g[static_cast<size_t>(i)], 1e-5 * (1 + std::abs(a[k] * inv * g[static_cast<size_t>(i)])));
    }
  }
  // Strided views: a column range copied into another tensor's columns, and gathered rows.
  const Tensor dst = zeros({d + 5, n, 1});
  backend->copy(at.col_range(10, 30), dst.col_range(5, 30));
  const Tensor picked = zeros({d, 3, 1});
  backend->gather_rows(at, i32({22, 0, 7}), picked);
  ASSERT_TRUE(backend->sync());
  const auto copied = read(dst), gathered = read(picked);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i = 0; i < d + 5; ++i) {
      const float want = i >= 5 && i < 35 ? a[static_cast<size_t>(t * d + i + 5)] : 0.0f;
      ASSERT_EQ(copied[static_cast<size_t>(t * (d + 5) + i)], want);
    }
  }
  const int rows[3] = {22, 0, 7};
  for (int j = 0; j < 3; ++j) {
    for (int64_t i = 0; i < d; ++i) ASSERT_EQ(gathered[static_cast<size_t>(j * d + i)], a[static_cast<size_t>(rows[j] * d + i)]);
  }
}

TEST_P(BackendConformance, EmbeddingLooksUpRowsOfEveryWeightType) {
  for (GgmlType type : kWeightTypes) {
    const int64_t cols = ggml_type_info(type).block_size == 256 ? 256 : 64, rows = 50;
    std::vector<float> w;
    const Tensor table = weight(type, cols, rows, 1, 21, w);
    const std::vector<int32_t> ids{3, 49, 0, 3};
    const Tensor out = zeros({cols, 4, 1});
    backend->embed(table, i32(ids), out);
    ASSERT_TRUE(backend->sync());
    const auto got = read(out);
    for (size_t j = 0; j < ids.size(); ++j) {
      for (int64_t c = 0; c < cols; ++c) {
        ASSERT_EQ(got[j * static_cast<size_t>(cols) + static_cast<size_t>(c)], w[static_cast<size_t>(ids[j] * cols + c)])
            << ggml_type_name(type);
      }
    }
  }
}

TEST_P(BackendConformance, RopeMatchesTheReference) {
  for (bool adjacent : {false, true}) {
    const int64_t dims = 16, head = 24, heads = 3, n = 9;
    std::vector<float> inv(static_cast<size_t>(dims / 2));
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(10000.0f, -2.0f * static_cast<float>(i) / dims);
    const RopeSpec spec{f32(inv, {dims / 2, 1, 1}), static_cast<int>(dims), adjacent, 1.25f};
    const std::vector<int32_t> pos{0, 1, 5, 17, 100, 4095, 65000, 3, 3};
    const std::vector<float> x = random_floats(static_cast<size_t>(n * heads * head), 4);
    const Tensor xt = f32(x, {heads * head, n, 1});
    backend->rope(xt.heads(heads), i32(pos), spec);
    ASSERT_TRUE(backend->sync());
    const auto y = read(xt);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < heads; ++h) {
        const size_t base = static_cast<size_t>((t * heads + h) * head);
        for (int64_t i = 0; i < dims / 2; ++i) {
          // The angle is computed in float32 (the contract, as the reference model computes it).
          const float angle = static_cast<float>(pos[static_cast<size_t>(t)]) * inv[static_cast<size_t>(i)];
          const double c = std::cos(double{angle}) * 1.25, s = std::sin(double{angle}) * 1.25;
          const size_t ia = base + static_cast<size_t>(adjacent ? 2 * i : i);
          const size_t ib = base + static_cast<size_t>(adjacent ? 2 * i + 1 : i + dims / 2);
          ASSERT_NEAR(y[ia], x[ia] * c - x[ib] * s, 2e-5 * (1 + std::abs(x[ia]) + std::abs(x[ib])));
          ASSERT_NEAR(y[ib], x[ib] * c + x[ia] * s, 2e-5 * (1 + std::abs(x[ia]) + std::abs(x[ib])));
        }
        for (int64_t i = dims; i < head; ++i) ASSERT_EQ(y[base + static_cast<size_t>(i)], x[base + static_cast<size_t>(i)]);
      }
    }
  }
}

// Paged attention over ragged sequences: each sequence has a history already in the cache and a chunk
// (prefill) or one token (decode) in this step; pages are shuffled across sequences.
struct AttentionCase {
  const char* name;
  KvLayout layout;
  int64_t n_heads;
  int64_t slot_width;
  int64_t q_width;
};

TEST_P(BackendConformance, PagedAttentionMatchesTheReferenceOnRaggedSequences) {
  const std::vector<AttentionCase> cases{
      {"gqa", {.n_kv_heads = 2, .key_offset = 0, .key_head_stride = 16, .key_dim = 16, .value_offset = 32,
               .value_head_stride = 8, .value_dim = 8}, 4, 48, 16},
      {"mla", {.n_kv_heads = 1, .key_offset = 0, .key_head_stride = 0, .key_dim = 24, .value_offset = 0,
               .value_head_stride = 0, .value_dim = 16}, 3, 24, 24},
      // DeepSeek's latent cache: 512 + 64 key dimensions, values the first 512; heads grouped per block.
      {"mla-576", {.n_kv_heads = 1, .key_offset = 0, .key_head_stride = 0, .key_dim = 576, .value_offset = 0,
                   .value_head_stride = 0, .value_dim = 512}, 4, 576, 576},
  };
  std::mt19937 rng(5);
  for (const AttentionCase& ac : cases) {
    for (int page_size : {1, 4, 16}) {
      // Over 32 tokens in the step (16+ per prefill chunk): large batches take kernels' many-token paths.
      const int n_seqs = 4, n_pages = 640 / page_size;
      std::vector<int32_t> free_pages(static_cast<size_t>(n_pages));
      std::iota(free_pages.begin(), free_pages.end(), 0);
      std::shuffle(free_pages.begin(), free_pages.end(), rng);
      // Sequence s: `history` cached positions, then `chunk` new ones.
      std::vector<int> history(n_seqs), chunk(n_seqs);
      std::vector<int32_t> table_start{0}, table;
      for (int s = 0; s < n_seqs; ++s) {
        history[static_cast<size_t>(s)] = static_cast<int>(rng() % 70);
        chunk[static_cast<size_t>(s)] = s % 2 ? 1 : 16 + static_cast<int>(rng() % 16);
        const int len = history[static_cast<size_t>(s)] + chunk[static_cast<size_t>(s)];
        for (int p = 0; p < (len + page_size - 1) / page_size; ++p) {
          table.push_back(free_pages.back());
          free_pages.pop_back();
        }
        table_start.push_back(static_cast<int32_t>(table.size()));
      }
      const Tensor cache = zeros({ac.slot_width, int64_t{n_pages} * page_size, 1});
      const Tensor start_t = i32(table_start), table_t = i32(table);
      // The K/V of every position of every sequence (reference copy), [seq][pos][slot_width].
      std::vector<std::vector<float>> kv(n_seqs);
      auto run_store = [&](bool history_part) {
        std::vector<int32_t> pos, seq;
        std::vector<float> rows;
        for (int s = 0; s < n_seqs; ++s) {
          const int h = history[static_cast<size_t>(s)], c = chunk[static_cast<size_t>(s)];
          auto& mine = kv[static_cast<size_t>(s)];
          mine.resize(static_cast<size_t>((h + c) * ac.slot_width));
          for (int p = history_part ? 0 : h; p < (history_part ? h : h + c); ++p) {
            const auto values = random_floats(static_cast<size_t>(ac.slot_width), rng());
            std::copy(values.begin(), values.end(), mine.begin() + p * ac.slot_width);
            rows.insert(rows.end(), values.begin(), values.end());
            pos.push_back(p);
            seq.push_back(s);
          }
        }
        PagedBatch b{i32(pos), i32(seq), start_t, table_t, page_size, static_cast<int64_t>(pos.size()), n_seqs,
                     *std::max_element(pos.begin(), pos.end())};
        if (!pos.empty()) {
          // Two writes per row, as GQA stores K and V separately: the first half of the slot, then the rest.
          const int64_t half = ac.slot_width / 2, m = static_cast<int64_t>(pos.size());
          const Tensor src = f32(rows, {ac.slot_width, m, 1});
          backend->store_kv(src.col_range(0, half), cache, 0, b);
          backend->store_kv(src.col_range(half, ac.slot_width - half), cache, half, b);
        }
        return std::make_pair(pos, seq);
      };
      run_store(true);
      const auto [pos, seq] = run_store(false);
      const auto n = static_cast<int64_t>(pos.size());
      const std::vector<float> q = random_floats(static_cast<size_t>(n * ac.n_heads * ac.q_width), 77);
      const Tensor qt = f32(q, {ac.n_heads * ac.q_width, n, 1});
      const Tensor out = zeros({ac.n_heads * ac.layout.value_dim, n, 1});
      const Tensor pos_t = i32(pos), seq_t = i32(seq);
      const PagedBatch batch{pos_t, seq_t, start_t, table_t, page_size, n, n_seqs, *std::max_element(pos.begin(), pos.end())};
      const float scale = 0.3f;
      backend->attention(qt.heads(ac.n_heads), cache, ac.layout, batch, scale, out.heads(ac.n_heads));
      ASSERT_TRUE(backend->sync()) << ac.name;
      const auto got = read(out);
      const int64_t group = ac.n_heads / ac.layout.n_kv_heads, dv = ac.layout.value_dim, dk = ac.layout.key_dim;
      for (int64_t t = 0; t < n; ++t) {
        const auto& mine = kv[static_cast<size_t>(seq[static_cast<size_t>(t)])];
        const int n_pos = pos[static_cast<size_t>(t)] + 1;
        for (int64_t h = 0; h < ac.n_heads; ++h) {
          const int64_t kvh = h / group;
          const float* qh = q.data() + (t * ac.n_heads + h) * ac.q_width;
          std::vector<double> score(static_cast<size_t>(n_pos));
          double mx = -1e300;
          for (int p = 0; p < n_pos; ++p) {
            const float* key = mine.data() + p * ac.slot_width + ac.layout.key_offset + kvh * ac.layout.key_head_stride;
            double dot = 0;
            for (int64_t i = 0; i < dk; ++i) dot += double{qh[i]} * key[i];
            score[static_cast<size_t>(p)] = scale * dot;
            mx = std::max(mx, score[static_cast<size_t>(p)]);
          }
          double total = 0;
          for (double& sc : score) total += (sc = std::exp(sc - mx));
          for (int64_t i = 0; i < dv; ++i) {
            double exact = 0, magnitude = 0;
            for (int p = 0; p < n_pos; ++p) {
              const float v = mine[static_cast<size_t>(p * ac.slot_width + ac.layout.value_offset + kvh * ac.layout.value_head_stride + i)];
              exact += score[static_cast<size_t>(p)] / total * v;
              magnitude += score[static_cast<size_t>(p)] / total * std::abs(v);
            }
            ASSERT_NEAR(got[static_cast<size_t>((t * ac.n_heads + h) * dv + i)], exact, 1e-5 * (1 + magnitude) + bound(dk + n_pos, magnitude))
                << ac.name << " page size " << page_size << " token " << t << " head " << h;
          }
        }
      }
      // Batch invariance: each token alone gives the same bits.
      for (int64_t t = 0; t < n; t += 3) {
        const Tensor one_q = f32(std::vector<float>(q.begin() + t * ac.n_heads * ac.q_width, q.begin() + (t + 1) * ac.n_heads * ac.q_width),
                                 {ac.n_heads * ac.q_width, 1, 1});
        const Tensor one_out = zeros({ac.n_heads * dv, 1, 1});
        const PagedBatch one{i32({pos[static_cast<size_t>(t)]}), i32({seq[static_cast<size_t>(t)]}), start_t, table_t, page_size, 1,
                             n_seqs, pos[static_cast<size_t>(t)]};
        backend->attention(one_q.heads(ac.n_heads), cache, ac.layout, one, scale, one_out.heads(ac.n_heads));
        const auto alone = read(one_out);
        for (int64_t i = 0; i < ac.n_heads * dv; ++i) {
          ASSERT_EQ(alone[static_cast<size_t>(i)], got[static_cast<size_t>(t * ac.n_heads * dv + i)]) << ac.name << " token " << t;
        }
      }
      ASSERT_TRUE(backend->sync());
    }
  }
}

TEST_P(BackendConformance, RoutingEqualsTheReferenceRouter) {
  const std::vector<RouterConfig> configs{
      {.n_experts = 64, .n_experts_used = 6, .scoring = ScoringFunc::Softmax},
      {.n_experts = 64, .n_experts_used = 6, .n_shared_experts = 2, .scoring = ScoringFunc::Softmax,
       .topk_method = TopkMethod::GroupLimitedGreedy, .n_group = 8, .topk_group = 3, .routed_scaling_factor = 16.0},
      {.n_experts = 256, .n_experts_used = 8, .scoring = ScoringFunc::Sigmoid, .topk_method = TopkMethod::NoauxTc,
       .n_group = 8, .topk_group = 4, .norm_topk_prob = true, .routed_scaling_factor = 2.5},
  };
  for (const RouterConfig& c : configs) {
    for (int64_t n : kBatchSizes) {
      const auto logits = random_floats(static_cast<size_t>(n * c.n_experts), 31);
      const auto bias = random_floats(static_cast<size_t>(c.n_experts), 32, 0.1f);
      const Tensor ids = zeros({c.n_experts_used, n, 1}, GgmlType::I32), weights = zeros({c.n_experts_used, n, 1});
      const Tensor bias_t = c.topk_method == TopkMethod::NoauxTc ? f32(bias, {c.n_experts, 1, 1}) : Tensor{};
      backend->route(f32(logits, {c.n_experts, n, 1}), bias_t, c, ids, weights);
      ASSERT_TRUE(backend->sync());
      const auto got_ids = read<int32_t>(ids);
      const auto got_w = read(weights);
      for (int64_t t = 0; t < n; ++t) {
        std::vector<int32_t> want_ids(static_cast<size_t>(c.n_experts_used));
        std::vector<float> want_w(static_cast<size_t>(c.n_experts_used));
        route_token(c, logits.data() + t * c.n_experts, bias_t.valid() ? bias.data() : nullptr, want_ids.data(), want_w.data());
        for (int j = 0; j < c.n_experts_used; ++j) {
          ASSERT_EQ(got_ids[static_cast<size_t>(t * c.n_experts_used + j)], want_ids[static_cast<size_t>(j)]);
          ASSERT_NEAR(got_w[static_cast<size_t>(t * c.n_experts_used + j)], want_w[static_cast<size_t>(j)], 1e-6f * (1 + want_w[static_cast<size_t>(j)]));
        }
      }
    }
  }
}

// The reference of a mixture of SwiGLU experts over dequantized weights, in double, and for each output the
// error the header's tolerances allow: the gate and up products' allowance (float summation and activation
// quantization) carried through SwiGLU (|silu'| <= 1.1), then the down product's own allowance.
struct MoeReference {
  std::vector<double> out, bound;
};
MoeReference reference_moe(const std::vector<float>& gate, const std::vector<float>& up, const std::vector<float>& down,
                           int64_t n_embd, int64_t n_ff, const std::vector<float>& x, const std::vector<int32_t>& ids,
                           const std::vector<float>& weights, int64_t n, int64_t k) {
  MoeReference ref{std::vector<double>(static_cast<size_t>(n * n_embd), 0.0), std::vector<double>(static_cast<size_t>(n * n_embd), 1e-6)};
  std::vector<double> act(static_cast<size_t>(n_ff)), act_err(static_cast<size_t>(n_ff));
  std::vector<float> act_f(static_cast<size_t>(n_ff));
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x.data() + t * n_embd;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = ids[static_cast<size_t>(t * k + j)];
      for (int64_t f = 0; f < n_ff; ++f) {
        const float* gr = gate.data() + (e * n_ff + f) * n_embd;
        const float* ur = up.data() + (e * n_ff + f) * n_embd;
        double g = 0, u = 0, gm = 0, um = 0;
        for (int64_t c = 0; c < n_embd; ++c) {
          g += double{gr[c]} * xt[c];
          u += double{ur[c]} * xt[c];
          gm += std::abs(double{gr[c]} * xt[c]);
          um += std::abs(double{ur[c]} * xt[c]);
        }
        const double eg = bound(n_embd, gm) + activation_allowance(gr, xt, n_embd);
        const double eu = bound(n_embd, um) + activation_allowance(ur, xt, n_embd);
        const double silu = g / (1 + std::exp(-g));
        act[static_cast<size_t>(f)] = silu * u;
        act_f[static_cast<size_t>(f)] = static_cast<float>(silu * u);
        act_err[static_cast<size_t>(f)] = 1.1 * eg * (std::abs(u) + eu) + std::abs(silu) * eu + 1e-6 * std::abs(silu * u);
      }
      const double w = weights[static_cast<size_t>(t * k + j)];
      for (int64_t c = 0; c < n_embd; ++c) {
        const float* dr = down.data() + (e * n_embd + c) * n_ff;
        double d = 0, dm = 0, propagated = 0;
        for (int64_t f = 0; f < n_ff; ++f) {
          d += dr[f] * act[static_cast<size_t>(f)];
          dm += std::abs(dr[f] * act[static_cast<size_t>(f)]);
          propagated += std::abs(dr[f]) * act_err[static_cast<size_t>(f)];
        }
        ref.out[static_cast<size_t>(t * n_embd + c)] += w * d;
        ref.bound[static_cast<size_t>(t * n_embd + c)] +=
            std::abs(w) * (propagated + bound(n_ff, dm) + activation_allowance(dr, act_f.data(), n_ff)) +
            bound(k, std::abs(w * d));
      }
    }
  }
  return ref;
}

TEST_P(BackendConformance, MixtureOfExpertsMatchesTheReferenceAndIsBatchInvariant) {
  // 33 tokens x 3 slots over 8 experts take the GPU's grouped-by-expert path, one token the per-slot path.
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::BF16}) {
    const int64_t n_embd = 256, n_ff = 96, n_exp = 8, k = 3;
    const int64_t ff_cols = ggml_type_info(type).block_size == 256 ? 256 : n_ff;  // down's rows need whole blocks
    std::vector<float> g, u, d;
    const ExpertWeights experts{weight(type, n_embd, ff_cols, n_exp, 1, g), weight(type, n_embd, ff_cols, n_exp, 2, u),
                                weight(type, ff_cols, n_embd, n_exp, 3, d)};
    for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{33}}) {
      const auto x = random_floats(static_cast<size_t>(n * n_embd), 40 + static_cast<uint64_t>(n), 0.2f);
      std::vector<int32_t> ids(static_cast<size_t>(n * k));
      std::vector<float> w(static_cast<size_t>(n * k));
      std::mt19937 rng(static_cast<uint32_t>(n));
      for (int64_t t = 0; t < n; ++t) {
        std::vector<int32_t> perm(static_cast<size_t>(n_exp));
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        for (int64_t j = 0; j < k; ++j) {
          ids[static_cast<size_t>(t * k + j)] = perm[static_cast<size_t>(j)];
          w[static_cast<size_t>(t * k + j)] = 0.1f + 0.3f * static_cast<float>(j);
        }
      }
      const Tensor ids_t = zeros({k, n, 1}, GgmlType::I32);
      backend->upload(ids.data(), ids_t);
      const Tensor out = zeros({n_embd, n, 1});
      backend->moe(experts, f32(x, {n_embd, n, 1}), ids_t, f32(w, {k, n, 1}), out);
      ASSERT_TRUE(backend->sync()) << ggml_type_name(type);
      const auto got = read(out);
      const auto want = reference_moe(g, u, d, n_embd, ff_cols, x, ids, w, n, k);
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want.out[i], want.bound[i]) << ggml_type_name(type) << " index " << i;
      }
      // The first and last tokens alone give the same bits.
      for (int64_t t : {int64_t{0}, n - 1}) {
        const Tensor one_ids = zeros({k, 1, 1}, GgmlType::I32);
        backend->upload(ids.data() + t * k, one_ids);
        const Tensor one_out = zeros({n_embd, 1, 1});
        backend->moe(experts, f32(std::vector<float>(x.begin() + t * n_embd, x.begin() + (t + 1) * n_embd), {n_embd, 1, 1}),
                     one_ids, f32(std::vector<float>(w.begin() + t * k, w.begin() + (t + 1) * k), {k, 1, 1}), one_out);
        const auto alone = read(one_out);
        for (int64_t c = 0; c < n_embd; ++c) {
          ASSERT_EQ(alone[static_cast<size_t>(c)], got[static_cast<size_t>(t * n_embd + c)]) << ggml_type_name(type) << " token " << t;
        }
        ASSERT_TRUE(backend->sync());
      }
    }
  }
}

TEST_P(BackendConformance, AFailedOperationIsReportedBySyncAndSkipsTheRest) {
  const Tensor a = f32(std::vector<float>(8, 1.0f), {8, 1, 1}), b = f32(std::vector<float>(4, 1.0f), {4, 1, 1});
  const Tensor out = zeros({8, 1, 1});
  backend->add(a, b, out);  // shapes disagree
  backend->add(a, a, out);  // skipped: an earlier operation failed
  const Status s = backend->sync();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("add"), std::string::npos) << s.message();
  EXPECT_EQ(read(out), std::vector<float>(8, 0.0f));
  // sync() cleared the error: work goes on.
  backend->add(a, a, out);
  EXPECT_TRUE(backend->sync());
  EXPECT_EQ(read(out), std::vector<float>(8, 2.0f));
  // Out-of-range ids are errors, never out-of-bounds reads.
  std::vector<float> w;
  const Tensor table = weight(GgmlType::F32, 32, 4, 1, 1, w);
  backend->embed(table, i32({4}), zeros({32, 1, 1}));
  EXPECT_FALSE(backend->sync());
}

TEST_P(BackendConformance, BusyTimeCountsQueuedWorkOnAsynchronousDevices) {
  std::vector<float> w;
  const Tensor wt = weight(GgmlType::Q4_K, 4096, 1024, 1, 3, w);
  const Tensor x = f32(random_floats(4096 * 64, 5), {4096, 64, 1}), y = zeros({1024, 64, 1});
  const double before = backend->busy_seconds();
  for (int i = 0; i < 4; ++i) backend->matmul(wt, 0, x, y);
  ASSERT_TRUE(backend->sync());
  const double after_plain = backend->busy_seconds();
  // A recorded run's span opens before it (an event inside a recording would not time its replays).
  for (int i = 0; i < 2; ++i) {
    backend->begin_graph(11);
    backend->matmul(wt, 0, x, y);
    backend->end_graph();
    ASSERT_TRUE(backend->sync());
  }
  const double after_recorded = backend->busy_seconds();
  if (backend->device().is_cpu()) {  // synchronous: the caller's time is the busy time
    EXPECT_EQ(after_recorded, 0.0);
    return;
  }
  EXPECT_GT(after_plain, before);
  EXPECT_GT(after_recorded, after_plain);
  // A span opens when work is queued, not at the last wait: idle time between them is not busy time.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  backend->matmul(wt, 0, x, y);
  ASSERT_TRUE(backend->sync());
  EXPECT_LT(backend->busy_seconds() - after_recorded, 0.25);
  // Nor is the time between end_busy_span() (the host waits for the CPU experts) and the next work.
  const double before_gap = backend->busy_seconds();
  backend->matmul(wt, 0, x, y);
  backend->end_busy_span();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  backend->matmul(wt, 0, x, y);
  ASSERT_TRUE(backend->sync());
  EXPECT_GT(backend->busy_seconds(), before_gap);
  EXPECT_LT(backend->busy_seconds() - before_gap, 0.25);
}

TEST_P(BackendConformance, RecordedRunsReplayWithNewValuesAndRefuseOtherArguments) {
  const Tensor a = f32({1, 2, 3, 4}, {4, 1, 1}), b = f32({10, 20, 30, 40}, {4, 1, 1}), out = zeros({4, 1, 1});
  const Tensor scaled = zeros({4, 1, 1});
  auto run = [&](const Tensor& second) {
    const bool records = backend->begin_graph(7);
    backend->add(a, second, out);
    backend->add(out, out, scaled);
    backend->end_graph();
    return records;
  };
  run(b);  // recorded (where the backend records) and run
  ASSERT_TRUE(backend->sync());
  EXPECT_EQ(read(scaled), (std::vector<float>{22, 44, 66, 88}));
  backend->upload(std::vector<float>{5, 5, 5, 5}.data(), a);
  const bool records = run(b);  // replayed: the new values of a
  ASSERT_TRUE(backend->sync());
  EXPECT_EQ(read(scaled), (std::vector<float>{30, 50, 70, 90}));
  if (!records) return;  // a backend that does not record runs every operation
  run(a);  // other arguments under the same key: refused, nothing launched
  const Status s = backend->sync();
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("other arguments"), std::string::npos) << s.message();
  EXPECT_EQ(read(scaled), (std::vector<float>{30, 50, 70, 90}));
  run(a);  // recorded again under the key
  ASSERT_TRUE(backend->sync());
  EXPECT_EQ(read(scaled), (std::vector<float>{20, 20, 20, 20}));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendConformance, ::testing::ValuesIn(backends()),
                         [](const ::testing::TestParamInfo<BackendFactory>& param_info) { return param_info.param.name; });

// The ExpertRunner contract: the same results as Backend::moe's reference, from another thread.
class ExpertRunnerConformance : public ::testing::TestWithParam<int> {};

TEST_P(ExpertRunnerConformance, JobsMatchTheReferenceAndReportErrors) {
  CpuExpertRunner runner(GetParam());
  const int64_t n_embd = 64, n_ff = 64, n_exp = 4, k = 2, n = 9;
  ASSERT_TRUE(runner.prepare({.max_tokens = 16, .n_embd = n_embd, .max_ff = n_ff, .k = k, .max_experts = n_exp}));
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<std::vector<float>> values;
  auto host_weight = [&](int64_t cols, int64_t rows, uint64_t seed) {
    values.push_back(random_floats(static_cast<size_t>(cols * rows * n_exp), seed, 0.3f));
    const size_t row_bytes = ggml_row_size(GgmlType::Q8_0, cols);
    bytes.emplace_back(row_bytes * static_cast<size_t>(rows * n_exp));
    for (int64_t r = 0; r < rows * n_exp; ++r) {
      cpu::quantize_row(GgmlType::Q8_0, values.back().data() + r * cols, bytes.back().data() + static_cast<size_t>(r) * row_bytes, cols);
      cpu::dequantize_row(cpu::Isa::Scalar, GgmlType::Q8_0, bytes.back().data() + static_cast<size_t>(r) * row_bytes,
                          values.back().data() + r * cols, cols);
    }
    return Tensor::contiguous(bytes.back().data(), GgmlType::Q8_0, Device::cpu(), {cols, rows, n_exp});
  };
  bytes.reserve(3);
  const ExpertWeights experts{host_weight(n_embd, n_ff, 1), host_weight(n_embd, n_ff, 2), host_weight(n_ff, n_embd, 3)};
  auto x = random_floats(static_cast<size_t>(n * n_embd), 4);
  std::vector<int32_t> ids(static_cast<size_t>(n * k));
  std::vector<float> w(static_cast<size_t>(n * k), 0.5f);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 3 + i / 2) % n_exp);
  std::vector<float> out(static_cast<size_t>(n * n_embd));
  const ExpertJob job{experts, Tensor::contiguous(x.data(), GgmlType::F32, Device::cpu(), {n_embd, n, 1}),
                      Tensor::contiguous(ids.data(), GgmlType::I32, Device::cpu(), {k, n, 1}),
                      Tensor::contiguous(w.data(), GgmlType::F32, Device::cpu(), {k, n, 1}),
                      Tensor::contiguous(out.data(), GgmlType::F32, Device::cpu(), {n_embd, n, 1})};
  runner.submit(job);
  ASSERT_TRUE(runner.wait());
  const auto want = reference_moe(values[0], values[1], values[2], n_embd, n_ff, x, ids, w, n, k);
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], want.out[i], want.bound[i]);
  EXPECT_GT(runner.busy_seconds(), 0.0);
  // The job read every expert its ids name, once.
  EXPECT_EQ(runner.jobs_done(), 1);
  EXPECT_EQ(runner.experts_read(), static_cast<int64_t>(std::set<int32_t>(ids.begin(), ids.end()).size()));
  const std::vector<int32_t> all_ids = ids;
  std::fill(ids.begin(), ids.end(), 2);
  runner.submit(job);
  ASSERT_TRUE(runner.wait());
  EXPECT_EQ(runner.jobs_done(), 2);
  EXPECT_EQ(runner.experts_read(), static_cast<int64_t>(std::set<int32_t>(all_ids.begin(), all_ids.end()).size()) + 1);
  ids = all_ids;
  // A bad expert id fails the job, not the process; the next job runs.
  ids[3] = 99;
  runner.submit(job);
  const Status failed = runner.wait();
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.message().find("expert id 99"), std::string::npos) << failed.message();
  ids[3] = 1;
  runner.submit(job);
  EXPECT_TRUE(runner.wait());
  // A job beyond the prepared limits is refused.
  std::vector<float> big(static_cast<size_t>(17 * n_embd));
  std::vector<int32_t> big_ids(17 * k, 0);
  std::vector<float> big_w(17 * k, 1.0f);
  runner.submit({experts, Tensor::contiguous(big.data(), GgmlType::F32, Device::cpu(), {n_embd, 17, 1}),
                 Tensor::contiguous(big_ids.data(), GgmlType::I32, Device::cpu(), {k, 17, 1}),
                 Tensor::contiguous(big_w.data(), GgmlType::F32, Device::cpu(), {k, 17, 1}),
                 Tensor::contiguous(big.data(), GgmlType::F32, Device::cpu(), {n_embd, 17, 1})});
  EXPECT_FALSE(runner.wait());
}

INSTANTIATE_TEST_SUITE_P(Threads, ExpertRunnerConformance, ::testing::Values(1, 3));

}  // namespace
}  // namespace tandem
