#include "app/model_maker.h"

#include <cmath>
#include <cstring>
#include <functional>

#include <fmt/format.h>

#include "core/thread_pool.h"
#include "gguf/gguf_writer.h"
#include "model/arch_names.h"
#include "kernels/cpu/quant.h"
#include "tokenizer/hf_import.h"

namespace tandem {

namespace {

// Published hyper-parameters of each preset (Hugging Face config.json of the original models).
struct Shape {
  std::string arch, name;
  int n_layers, n_embd, n_ff, n_head, n_head_kv, vocab;
  int n_experts, n_used, n_shared, n_ff_exp, n_dense;
  // deepseek2
  int q_lora = 0, kv_lora = 0, nope = 0, rope = 0, v_dim = 0;
  int gating = 1, n_group = 1, topk_group = 1;
  bool norm_topk = false;
  double scale = 1.0, yarn_factor = 0, yarn_log_mul = 0;
  // qwen3moe
  int head_dim = 0;
  double rope_base = 10000.0;
  int64_t context = 4096;
};

std::optional<Shape> preset_shape(const std::string& preset) {
  if (preset == "deepseek-v3" || preset == "tiny-deepseek-v3") {
    Shape s{.arch = "deepseek2", .name = "DeepSeek-V3 (random weights)", .n_layers = 61, .n_embd = 7168, .n_ff = 18432,
            .n_head = 128, .n_head_kv = 128, .vocab = 129280, .n_experts = 256, .n_used = 8, .n_shared = 1,
            .n_ff_exp = 2048, .n_dense = 3, .q_lora = 1536, .kv_lora = 512, .nope = 128, .rope = 64, .v_dim = 128,
            .gating = 2, .n_group = 8, .topk_group = 4, .norm_topk = true, .scale = 2.5, .yarn_factor = 40,
            .yarn_log_mul = 0.1, .context = 163840};
    if (preset == "tiny-deepseek-v3") {  // small enough for a laptop demo, same layout
      s.name = "Tiny DeepSeek-V3 (random weights)";
      s.n_layers = 4, s.n_embd = 512, s.n_ff = 1024, s.n_head = 8, s.n_head_kv = 8, s.n_experts = 16, s.n_used = 4;
      s.n_ff_exp = 256, s.n_dense = 1, s.q_lora = 256, s.kv_lora = 256, s.nope = 64, s.rope = 32, s.v_dim = 64;
      s.n_group = 4, s.topk_group = 2;
    }
    return s;
  }
  if (preset == "tiny-deepseek-v2") {  // DeepSeek-V2 routing (softmax, group-limited greedy), no q-LoRA
    return Shape{.arch = "deepseek2", .name = "Tiny DeepSeek-V2 (random weights)", .n_layers = 3, .n_embd = 256,
                 .n_ff = 512, .n_head = 4, .n_head_kv = 4, .vocab = 1024, .n_experts = 8, .n_used = 2,
                 .n_shared = 2, .n_ff_exp = 256, .n_dense = 1, .q_lora = 0, .kv_lora = 256, .nope = 64, .rope = 32,
                 .v_dim = 64, .gating = 1, .n_group = 4, .topk_group = 2, .norm_topk = false, .scale = 16.0,
                 .yarn_factor = 40, .yarn_log_mul = 0.0707, .context = 163840};
  }
  if (preset == "tiny-qwen3moe") {
    return Shape{.arch = "qwen3moe", .name = "Tiny Qwen3-MoE (random weights)", .n_layers = 2, .n_embd = 256,
                 .n_ff = 512, .n_head = 4, .n_head_kv = 2, .vocab = 1024, .n_experts = 8, .n_used = 2,
                 .n_shared = 0, .n_ff_exp = 256, .n_dense = 0, .norm_topk = true, .head_dim = 64,
                 .rope_base = 1000000.0, .context = 40960};
  }
  if (preset == "deepseek-v2-lite") {
    return Shape{.arch = "deepseek2", .name = "DeepSeek-V2-Lite (random weights)", .n_layers = 27, .n_embd = 2048,
                 .n_ff = 10944, .n_head = 16, .n_head_kv = 16, .vocab = 102400, .n_experts = 64, .n_used = 6,
                 .n_shared = 2, .n_ff_exp = 1408, .n_dense = 1, .q_lora = 0, .kv_lora = 512, .nope = 128, .rope = 64,
                 .v_dim = 128, .gating = 1, .n_group = 1, .topk_group = 1, .norm_topk = false, .scale = 1.0,
                 .yarn_factor = 40, .yarn_log_mul = 0.0707, .context = 163840};
  }
  if (preset == "qwen3-30b-a3b") {
    return Shape{.arch = "qwen3moe", .name = "Qwen3-30B-A3B (random weights)", .n_layers = 48, .n_embd = 2048,
                 .n_ff = 6144, .n_head = 32, .n_head_kv = 4, .vocab = 151936, .n_experts = 128, .n_used = 8,
                 .n_shared = 0, .n_ff_exp = 768, .n_dense = 0, .norm_topk = true, .head_dim = 128,
                 .rope_base = 1000000.0, .context = 40960};
  }
  return std::nullopt;
}

// K-quants need rows that are whole 256-value super-blocks; like llama.cpp, fall back otherwise.
GgmlType fit_type(GgmlType t, int64_t cols) {
  if (cols % ggml_type_info(t).block_size == 0) return t;
  switch (t) {
    case GgmlType::Q4_K: return GgmlType::Q5_0;
    case GgmlType::Q5_K: return GgmlType::Q5_1;
    case GgmlType::Q6_K: return GgmlType::Q8_0;
    default: return GgmlType::Q4_0;
  }
}

uint64_t splitmix(uint64_t& state) {
  state += 0x9e3779b97f4a7c15ull;
  uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Deterministic per-row random values: approximately normal (sum of four uniforms), std `sigma`.
void random_row(uint64_t seed, float sigma, float* out, int64_t n) {
  uint64_t state = seed;
  const float to_unit = 1.0f / 65536.0f;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = splitmix(state);
    float s = 0;
    for (int k = 0; k < 4; ++k) s += static_cast<float>((r >> (16 * k)) & 0xffff) * to_unit;
    out[i] = (s - 2.0f) * 1.7320508f * sigma;  // four uniforms: variance 1/3
  }
}

constexpr float kSigma = 0.02f;  // standard deviation of the random weights

uint64_t name_seed(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  return h;
}

bool has_random_block_layout(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

void put_half(uint8_t* block, size_t offset, float value) {
  const uint16_t half = cpu::fp32_to_fp16(value);
  std::memcpy(block + offset, &half, 2);
}

// Makes a block of random codes decode to zero-mean values of magnitude ~`scale`: the scale fields are
// set, and for formats whose codes are unsigned the per-block minimum is chosen to centre them.
void centre_block(GgmlType type, uint8_t* block, int64_t block_index, float scale) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0:
      // x = d (q - 8) (or - 16, or int8): codes average -0.5, so the sign of d alternates between blocks.
      put_half(block, 0, block_index % 2 ? -scale : scale);
      break;
    case GgmlType::Q4_1:  // x = d q + m, q in [0, 15]
      put_half(block, 0, scale);
      put_half(block, 2, -7.5f * scale);
      break;
    case GgmlType::Q5_1:  // q in [0, 31]
      put_half(block, 0, scale);
      put_half(block, 2, -15.5f * scale);
      break;
    case GgmlType::Q2_K:  // x = d sc q - dmin m, q in [0, 3]: sc 2, m 3
      std::memset(block, 0x32, 16);
      put_half(block, 80, scale);
      put_half(block, 82, scale);
      break;
    case GgmlType::Q3_K:  // signed 6-bit scales and signed codes
      put_half(block, 108, scale);
      break;
    case GgmlType::Q4_K: {  // x = d sc q - dmin m, q in [0, 15]: sc 2, m 15 in the 12-byte packing
      const uint8_t packed[12] = {2, 2, 2, 2, 15, 15, 15, 15, 0xF2, 0xF2, 0xF2, 0xF2};
      std::memcpy(block + 4, packed, 12);
      put_half(block, 0, scale);
      put_half(block, 2, scale);
      break;
    }
    case GgmlType::Q5_K: {  // q in [0, 31]: sc 2, m 31 (its 5th bit in the top bits of bytes 4..7)
      const uint8_t packed[12] = {2, 2, 2, 2, 95, 95, 95, 95, 0xF2, 0xF2, 0xF2, 0xF2};
      std::memcpy(block + 4, packed, 12);
      put_half(block, 0, scale);
      put_half(block, 2, scale);
      break;
    }
    case GgmlType::Q6_K:  // signed 8-bit scales, codes centred by the format
      put_half(block, 208, scale);
      break;
    default:
      break;
  }
}

// A quantized row with random codes (valid blocks of the format, zero-mean values) made without running the
// (slow, search-based) quantizer.
void random_quant_row(GgmlType type, uint64_t seed, float scale, uint8_t* dst, int64_t n) {
  const GgmlTypeInfo& info = ggml_type_info(type);
  const size_t bytes = ggml_row_size(type, n);
  uint64_t state = seed;
  for (size_t i = 0; i < bytes; i += 8) {
    const uint64_t r = splitmix(state);
    std::memcpy(dst + i, &r, std::min<size_t>(8, bytes - i));
  }
  for (int64_t b = 0; b < n / info.block_size; ++b) centre_block(type, dst + static_cast<size_t>(b) * info.type_size, b, scale);
}

// The scale that gives random_quant_row values of standard deviation `sigma` (measured, per type).
float calibrated_scale(GgmlType type, float sigma) {
  const int64_t n = ggml_type_info(type).block_size * 64;
  std::vector<uint8_t> row(ggml_row_size(type, n));
  std::vector<float> values(static_cast<size_t>(n));
  random_quant_row(type, 12345, 1.0f, row.data(), n);
  cpu::dequantize_row(type, row.data(), values.data(), n);
  double sum = 0, sum2 = 0;
  for (float v : values) sum += v, sum2 += static_cast<double>(v) * v;
  const double var = sum2 / static_cast<double>(n) - (sum / static_cast<double>(n)) * (sum / static_cast<double>(n));
  return var > 0 ? static_cast<float>(sigma / std::sqrt(var)) : sigma;
}

class TensorFactory {
 public:
  TensorFactory(GgufWriter& writer, uint64_t seed, int threads) : writer_(writer), seed_(seed), pool_(threads) {}

  // A random matrix [n_mats][rows][cols] stored as `type` (adjusted to the row length).
  void matrix(const std::string& name, GgmlType type, std::vector<int64_t> dims) {
    const int64_t cols = dims[0];
    int64_t rows = 1;
    for (size_t i = 1; i < dims.size(); ++i) rows *= dims[i];
    type = fit_type(type, cols);
    const size_t row_bytes = ggml_row_size(type, cols);
    std::vector<uint8_t> data(row_bytes * static_cast<size_t>(rows));
    const uint64_t base = name_seed(seed_, name);
    const bool quantized = has_random_block_layout(type);
    const float scale = quantized ? calibrated_scale(type, kSigma) : 0.0f;
    pool_.parallel_for(rows, [&](int64_t begin, int64_t end) {
      std::vector<float> values(static_cast<size_t>(cols));
      for (int64_t r = begin; r < end; ++r) {
        const uint64_t row_seed = base + static_cast<uint64_t>(r) * 0x632be59bd9b4e019ull;
        uint8_t* dst = data.data() + static_cast<size_t>(r) * row_bytes;
        if (quantized) {
          random_quant_row(type, row_seed, scale, dst, cols);
          continue;
        }
        random_row(row_seed, kSigma, values.data(), cols);
        if (type == GgmlType::F32) {
          std::memcpy(dst, values.data(), row_bytes);
        } else {
          cpu::quantize_row(type, values.data(), dst, cols);  // F16 / BF16: a plain conversion
        }
      }
    });
    bytes_ += data.size();
    writer_.add_tensor(name, type, std::move(dims), std::move(data));
  }
  // A float32 vector of constant value (norm weights: 1, biases: 0).
  void constant(const std::string& name, int64_t n, float value) {
    std::vector<float> v(static_cast<size_t>(n), value);
    std::vector<uint8_t> data(reinterpret_cast<uint8_t*>(v.data()), reinterpret_cast<uint8_t*>(v.data() + n));
    bytes_ += data.size();
    writer_.add_tensor(name, GgmlType::F32, {n}, std::move(data));
  }
  uint64_t bytes() const { return bytes_; }

 private:
  GgufWriter& writer_;
  uint64_t seed_;
  ThreadPool pool_;
  uint64_t bytes_ = 0;
};

struct TypePlan {
  GgmlType base;
  GgmlType output;
  bool mixed;  // Q4_K_M / Q5_K_M style: more bits for some ffn_down
};

Result<TypePlan> parse_weight_type(const std::string& name) {
  if (name == "Q4_K_M") return TypePlan{GgmlType::Q4_K, GgmlType::Q6_K, true};
  if (name == "Q5_K_M") return TypePlan{GgmlType::Q5_K, GgmlType::Q6_K, true};
  for (uint32_t id = 0; id < 64; ++id) {
    auto info = ggml_type_info(id);
    if (info && info->name == name) {
      if (!cpu::is_computable(info->type)) return Status::error("weight type " + name + " is not supported by the kernels");
      return TypePlan{info->type, info->type, false};
    }
  }
  return Status::error("unknown weight type '" + name + "' (use a GGUF type name such as Q4_K, Q8_0, BF16, or Q4_K_M)");
}

// llama.cpp's rule for which layers get more bits in the mixed types.
bool more_bits(int layer, int n_layers) {
  return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

Status copy_tokenizer(const std::string& source, GgufWriter& writer, int& vocab) {
  auto gguf = GgufModel::open(source);
  if (!gguf) return gguf.status();
  bool any = false;
  for (const auto& [key, value] : gguf.value()->metadata()) {
    if (key.rfind("tokenizer.", 0) != 0) continue;
    writer.set(key, value);
    any = true;
    if (key == "tokenizer.ggml.tokens" && value.as_array()) vocab = static_cast<int>(value.as_array()->values.size());
  }
  if (!any) return Status::error(source + " has no tokenizer metadata");
  return Status::ok();
}

void placeholder_tokenizer(GgufWriter& writer, int vocab) {
  std::vector<std::string> tokens;
  tokens.reserve(static_cast<size_t>(vocab));
  for (int i = 0; i < vocab; ++i) tokens.push_back(fmt::format("<t{}>", i));
  writer.set("tokenizer.ggml.model", gguf_str("gpt2"));
  writer.set("tokenizer.ggml.pre", gguf_str("default"));
  writer.set("tokenizer.ggml.tokens", gguf_str_array(tokens));
  writer.set("tokenizer.ggml.bos_token_id", gguf_u32(0));
  writer.set("tokenizer.ggml.eos_token_id", gguf_u32(1));
}

}  // namespace

std::vector<std::string> model_presets() {
  return {"deepseek-v3", "deepseek-v2-lite", "qwen3-30b-a3b", "tiny-deepseek-v3", "tiny-deepseek-v2", "tiny-qwen3moe"};
}

Result<uint64_t> make_model(const ModelMakerOptions& o, const std::string& path) {
  auto shape_or = preset_shape(o.preset);
  if (!shape_or) return Status::error("unknown preset '" + o.preset + "'");
  Shape s = *shape_or;
  if (o.n_layers) {
    if (*o.n_layers < 1) return Status::error("layer count must be positive");
    s.n_layers = *o.n_layers;
    s.n_dense = std::max(0, std::min(s.n_dense, s.n_layers - 1));
  }
  if (o.n_experts) {
    if (*o.n_experts < s.n_used || *o.n_experts % s.n_group != 0) {
      return Status::error(fmt::format("expert count must be at least {} and a multiple of {}", s.n_used, s.n_group));
    }
    s.n_experts = *o.n_experts;
  }
  auto plan = parse_weight_type(o.weight_type);
  if (!plan) return plan.status();

  GgufWriter w;
  const std::string a = s.arch + ".";
  w.set(gguf_key::kArchitecture, gguf_str(s.arch));
  w.set(gguf_key::kName, gguf_str(s.name));
  int vocab = s.vocab;
  if (!o.tokenizer_source.empty() && !o.tokenizer_json_dir.empty()) {
    return Status::error("give a tokenizer GGUF or a tokenizer.json folder, not both");
  }
  if (!o.tokenizer_source.empty()) {
    if (Status st = copy_tokenizer(o.tokenizer_source, w, vocab); !st) return st;
  } else if (!o.tokenizer_json_dir.empty()) {
    auto hf = import_hf_tokenizer(o.tokenizer_json_dir, s.vocab);  // padded to the model's vocab_size
    if (!hf) return hf.status();
    write_tokenizer_metadata(hf.value(), w);
    vocab = static_cast<int>(hf->spec.tokens.size());
  } else {
    placeholder_tokenizer(w, vocab);
  }
  w.set(a + arch_key::kBlockCount, gguf_u32(static_cast<uint32_t>(s.n_layers)));
  w.set(a + arch_key::kContextLength, gguf_u32(static_cast<uint32_t>(s.context)));
  w.set(a + arch_key::kEmbeddingLength, gguf_u32(static_cast<uint32_t>(s.n_embd)));
  w.set(a + arch_key::kFeedForwardLength, gguf_u32(static_cast<uint32_t>(s.n_ff)));
  w.set(a + arch_key::kHeadCount, gguf_u32(static_cast<uint32_t>(s.n_head)));
  w.set(a + arch_key::kHeadCountKv, gguf_u32(static_cast<uint32_t>(s.n_head_kv)));
  w.set(a + arch_key::kRmsEpsilon, gguf_f32(1e-6f));
  w.set(a + arch_key::kExpertCount, gguf_u32(static_cast<uint32_t>(s.n_experts)));
  w.set(a + arch_key::kExpertUsedCount, gguf_u32(static_cast<uint32_t>(s.n_used)));
  w.set(a + arch_key::kExpertFeedForwardLength, gguf_u32(static_cast<uint32_t>(s.n_ff_exp)));
  w.set(a + arch_key::kRopeFreqBase, gguf_f32(static_cast<float>(s.rope_base)));
  w.set(a + arch_key::kVocabSize, gguf_u32(static_cast<uint32_t>(vocab)));
  if (s.arch == "deepseek2") {
    w.set(a + arch_key::kLeadingDenseBlockCount, gguf_u32(static_cast<uint32_t>(s.n_dense)));
    if (s.q_lora > 0) w.set(a + arch_key::kQLoraRank, gguf_u32(static_cast<uint32_t>(s.q_lora)));
    w.set(a + arch_key::kKvLoraRank, gguf_u32(static_cast<uint32_t>(s.kv_lora)));
    w.set(a + arch_key::kKeyLength, gguf_u32(static_cast<uint32_t>(s.nope + s.rope)));
    w.set(a + arch_key::kValueLength, gguf_u32(static_cast<uint32_t>(s.v_dim)));
    w.set(a + arch_key::kExpertSharedCount, gguf_u32(static_cast<uint32_t>(s.n_shared)));
    w.set(a + arch_key::kExpertWeightsScale, gguf_f32(static_cast<float>(s.scale)));
    w.set(a + arch_key::kExpertWeightsNorm, gguf_bool(s.norm_topk));
    w.set(a + arch_key::kExpertGatingFunc, gguf_u32(static_cast<uint32_t>(s.gating)));
    w.set(a + arch_key::kExpertGroupCount, gguf_u32(static_cast<uint32_t>(s.n_group)));
    w.set(a + arch_key::kExpertGroupUsedCount, gguf_u32(static_cast<uint32_t>(s.topk_group)));
    w.set(a + arch_key::kRopeDimensionCount, gguf_u32(static_cast<uint32_t>(s.rope)));
    w.set(a + arch_key::kRopeScalingType, gguf_str("yarn"));
    w.set(a + arch_key::kRopeScalingFactor, gguf_f32(static_cast<float>(s.yarn_factor)));
    w.set(a + arch_key::kRopeScalingOriginalContext, gguf_u32(4096));
    w.set(a + arch_key::kRopeScalingYarnLogMultiplier, gguf_f32(static_cast<float>(s.yarn_log_mul)));
  } else {
    w.set(a + arch_key::kKeyLength, gguf_u32(static_cast<uint32_t>(s.head_dim)));
    w.set(a + arch_key::kValueLength, gguf_u32(static_cast<uint32_t>(s.head_dim)));
    w.set(a + arch_key::kExpertWeightsNorm, gguf_bool(s.norm_topk));
  }

  TensorFactory f(w, o.seed, o.threads);
  const GgmlType t = plan->base;
  const int64_t E = s.n_embd;
  f.matrix(tensor_name(TensorKind::TokenEmbd), t, {E, vocab});
  f.constant(tensor_name(TensorKind::OutputNorm), E, 1.0f);
  f.matrix(tensor_name(TensorKind::Output), plan->output, {E, vocab});
  for (int l = 0; l < s.n_layers; ++l) {
    const GgmlType down = plan->mixed && more_bits(l, s.n_layers) ? GgmlType::Q6_K : t;
    f.constant(tensor_name(TensorKind::AttnNorm, l), E, 1.0f);
    f.constant(tensor_name(TensorKind::FfnNorm, l), E, 1.0f);
    if (s.arch == "deepseek2") {
      const int64_t qk = s.nope + s.rope;
      if (s.q_lora > 0) {
        f.matrix(tensor_name(TensorKind::AttnQA, l), t, {E, s.q_lora});
        f.constant(tensor_name(TensorKind::AttnQANorm, l), s.q_lora, 1.0f);
        f.matrix(tensor_name(TensorKind::AttnQB, l), t, {s.q_lora, s.n_head * qk});
      } else {
        f.matrix(tensor_name(TensorKind::AttnQ, l), t, {E, s.n_head * qk});
      }
      f.matrix(tensor_name(TensorKind::AttnKvAMqa, l), t, {E, s.kv_lora + s.rope});
      f.constant(tensor_name(TensorKind::AttnKvANorm, l), s.kv_lora, 1.0f);
      f.matrix(tensor_name(TensorKind::AttnKvB, l), t, {s.kv_lora, int64_t{s.n_head} * (s.nope + s.v_dim)});
      f.matrix(tensor_name(TensorKind::AttnOutput, l), t, {int64_t{s.n_head} * s.v_dim, E});
    } else {
      f.matrix(tensor_name(TensorKind::AttnQ, l), t, {E, int64_t{s.n_head} * s.head_dim});
      f.matrix(tensor_name(TensorKind::AttnK, l), t, {E, int64_t{s.n_head_kv} * s.head_dim});
      f.matrix(tensor_name(TensorKind::AttnV, l), plan->mixed && more_bits(l, s.n_layers) ? GgmlType::Q6_K : t, {E, int64_t{s.n_head_kv} * s.head_dim});
      f.matrix(tensor_name(TensorKind::AttnOutput, l), t, {int64_t{s.n_head} * s.head_dim, E});
      f.constant(tensor_name(TensorKind::AttnQNorm, l), s.head_dim, 1.0f);
      f.constant(tensor_name(TensorKind::AttnKNorm, l), s.head_dim, 1.0f);
    }
    if (l < s.n_dense) {
      f.matrix(tensor_name(TensorKind::FfnGate, l), t, {E, s.n_ff});
      f.matrix(tensor_name(TensorKind::FfnUp, l), t, {E, s.n_ff});
      f.matrix(tensor_name(TensorKind::FfnDown, l), down, {s.n_ff, E});
      continue;
    }
    f.matrix(tensor_name(TensorKind::FfnGateInp, l), GgmlType::F32, {E, s.n_experts});
    if (s.gating == 2) f.constant(tensor_name(TensorKind::ExpProbsB, l), s.n_experts, 0.0f);
    f.matrix(tensor_name(TensorKind::FfnGateExps, l), t, {E, s.n_ff_exp, s.n_experts});
    f.matrix(tensor_name(TensorKind::FfnUpExps, l), t, {E, s.n_ff_exp, s.n_experts});
    f.matrix(tensor_name(TensorKind::FfnDownExps, l), down, {s.n_ff_exp, E, s.n_experts});
    if (s.n_shared > 0) {
      const int64_t sh = int64_t{s.n_ff_exp} * s.n_shared;
      f.matrix(tensor_name(TensorKind::FfnGateShexp, l), t, {E, sh});
      f.matrix(tensor_name(TensorKind::FfnUpShexp, l), t, {E, sh});
      f.matrix(tensor_name(TensorKind::FfnDownShexp, l), down, {sh, E});
    }
  }
  if (Status st = w.write_file(path); !st) return st;
  return f.bytes();
}

}  // namespace tandem
