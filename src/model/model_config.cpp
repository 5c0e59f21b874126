#include "model/model_config.h"

#include "model/arch_names.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace tandem {

const char* to_string(Arch arch) { return arch == Arch::Deepseek2 ? "deepseek2" : "qwen3moe"; }

namespace {

// Reads `{arch}.key` from the GGUF and `field` from config.json, GGUF first, and records the source.
class ParamReader {
 public:
  ParamReader(const GgufModel& gguf, std::string prefix, const nlohmann::json& hf, std::vector<std::string>& sources)
      : gguf_(gguf), prefix_(std::move(prefix)), hf_(hf), sources_(sources) {}

  std::optional<int64_t> gguf_int(const std::string& key) const { return gguf_.get_int(prefix_ + key); }
  std::optional<double> gguf_float(const std::string& key) const { return gguf_.get_float(prefix_ + key); }
  std::optional<std::string> gguf_string(const std::string& key) const { return gguf_.get_string(prefix_ + key); }

  Status require_int(const std::string& key, int& out) const {
    auto v = gguf_int(key);
    if (!v) return Status::error(fmt::format("GGUF metadata lacks required key '{}{}'", prefix_, key));
    out = static_cast<int>(*v);
    return Status::ok();
  }

  // A routing parameter: GGUF key, then config.json field, then the default; the source is recorded.
  template <typename T>
  T routing(const char* what, const std::string& gguf_key, const char* hf_field, T fallback, const char* why) {
    if (!gguf_key.empty()) {
      if (const GgufValue* v = gguf_.find(prefix_ + gguf_key)) {
        std::optional<T> got;
        if constexpr (std::is_same_v<T, bool>) got = v->as_bool(); else if constexpr (std::is_integral_v<T>) {
          if (auto i = v->as_int()) got = static_cast<T>(*i);
        } else {
          if (auto f = v->as_float()) got = static_cast<T>(*f);
        }
        if (got) {
          note(what, *got, fmt::format("GGUF {}{}", prefix_, gguf_key));
          return *got;
        }
      }
    }
    if (hf_field && hf_.contains(hf_field) && !hf_[hf_field].is_null()) {
      try {
        T got = hf_[hf_field].get<T>();
        note(what, got, fmt::format("config.json {}", hf_field));
        return got;
      } catch (const nlohmann::json::exception&) {
        // wrong type in config.json: fall through to the default, saying so
      }
    }
    note(what, fallback, why);
    return fallback;
  }

  template <typename T>
  void note(const char* what, const T& value, const std::string& source) {
    sources_.push_back(fmt::format("{} = {} ({})", what, value, source));
  }

  const nlohmann::json& hf() const { return hf_; }

 private:
  const GgufModel& gguf_;
  std::string prefix_;
  const nlohmann::json& hf_;
  std::vector<std::string>& sources_;
};

Result<nlohmann::json> read_hf_config(const std::string& dir) {
  if (dir.empty()) return nlohmann::json::object();
  const std::filesystem::path path = std::filesystem::path(dir) / "config.json";
  std::ifstream in(path);
  if (!in) return Status::error(fmt::format("cannot open {}", path.string()));
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.is_object()) return Status::error(fmt::format("{}: expected a JSON object", path.string()));
    return j;
  } catch (const nlohmann::json::exception& e) {
    return Status::error(fmt::format("{}: invalid JSON: {}", path.string(), e.what()));
  }
}

// YaRN's attention magnitude correction, as DeepSeek defines it.
double yarn_mscale(double factor, double mscale) { return factor <= 1.0 ? 1.0 : 0.1 * mscale * std::log(factor) + 1.0; }

int vocab_size(const GgufModel& gguf, const std::string& prefix) {
  if (auto v = gguf.get_int(prefix + arch_key::kVocabSize)) return static_cast<int>(*v);
  if (const GgufValue* tokens = gguf.find(gguf_key::kTokens); tokens && tokens->as_array()) {
    return static_cast<int>(tokens->as_array()->values.size());
  }
  if (const GgufTensorInfo* t = gguf.find_tensor(tensor_name(TensorKind::TokenEmbd)); t && t->dims.size() >= 2) {
    return static_cast<int>(t->dims[1]);
  }
  return 0;
}

Status load_deepseek2(ParamReader& p, const nlohmann::json& hf, ModelConfig& c) {
  Status s;
  if (!(s = p.require_int(arch_key::kKvLoraRank, c.kv_lora_rank))) return s;
  if (!(s = p.require_int(arch_key::kRopeDimensionCount, c.qk_rope_dim))) return s;
  if (!(s = p.require_int(arch_key::kExpertFeedForwardLength, c.n_ff_expert))) return s;
  c.q_lora_rank = static_cast<int>(p.gguf_int(arch_key::kQLoraRank).value_or(0));
  // Files converted for MLA-native runtimes store the absorbed sizes in key_length/value_length and the
  // per-head sizes in *_mla; prefer the per-head sizes.
  c.head_dim_k = static_cast<int>(p.gguf_int(arch_key::kKeyLengthMla).value_or(p.gguf_int(arch_key::kKeyLength).value_or(0)));
  c.head_dim_v = static_cast<int>(p.gguf_int(arch_key::kValueLengthMla).value_or(p.gguf_int(arch_key::kValueLength).value_or(0)));
  if (c.head_dim_k <= c.qk_rope_dim || c.head_dim_v <= 0) {
    return Status::error("deepseek2: attention.key_length/value_length missing or inconsistent with rope dims");
  }
  c.qk_nope_dim = c.head_dim_k - c.qk_rope_dim;
  c.n_leading_dense = static_cast<int>(p.gguf_int(arch_key::kLeadingDenseBlockCount).value_or(hf.value("first_k_dense_replace", 0)));

  RouterConfig& r = c.router;
  r.n_shared_experts = p.routing<int>("n_shared_experts", arch_key::kExpertSharedCount, "n_shared_experts", 0, "default");
  r.routed_scaling_factor = p.routing<double>("routed_scaling_factor", arch_key::kExpertWeightsScale, "routed_scaling_factor", 1.0, "default");
  // expert_gating_func: 1 = softmax, 2 = sigmoid (llama.cpp's numbering).
  std::string scoring = "softmax", scoring_src = "default for deepseek2 (V2)";
  if (auto g = p.gguf_int(arch_key::kExpertGatingFunc)) {
    scoring = *g == 2 ? "sigmoid" : "softmax";
    scoring_src = "GGUF deepseek2.expert_gating_func";
  } else if (hf.contains("scoring_func") && hf["scoring_func"].is_string()) {
    scoring = hf["scoring_func"].get<std::string>();
    scoring_src = "config.json scoring_func";
  }
  if (scoring != "softmax" && scoring != "sigmoid") return Status::error("deepseek2: unknown scoring_func '" + scoring + "'");
  r.scoring = scoring == "sigmoid" ? ScoringFunc::Sigmoid : ScoringFunc::Softmax;
  p.note("scoring_func", scoring, scoring_src);
  r.norm_topk_prob = p.routing<bool>("norm_topk_prob", arch_key::kExpertWeightsNorm, "norm_topk_prob", false, "default");
  r.n_group = p.routing<int>("n_group", arch_key::kExpertGroupCount, "n_group", 1, "default: no groups");
  r.topk_group = p.routing<int>("topk_group", arch_key::kExpertGroupUsedCount, "topk_group", r.n_group, "default: all groups");
  // topk_method has no GGUF key.
  std::string method;
  std::string method_src = "config.json topk_method";
  if (hf.contains("topk_method") && hf["topk_method"].is_string()) {
    method = hf["topk_method"].get<std::string>();
  } else {
    method = r.scoring == ScoringFunc::Sigmoid ? "noaux_tc" : (r.n_group > 1 ? "group_limited_greedy" : "greedy");
    method_src = "inferred from scoring_func and n_group";
  }
  if (method == "greedy") r.topk_method = TopkMethod::Greedy;
  else if (method == "group_limited_greedy") r.topk_method = TopkMethod::GroupLimitedGreedy;
  else if (method == "noaux_tc") r.topk_method = TopkMethod::NoauxTc;
  else return Status::error("deepseek2: unknown topk_method '" + method + "'");
  p.note("topk_method", method, method_src);

  // Rope: DeepSeek rotates adjacent pairs; YaRN scaling per rope.scaling.*.
  RopeConfig& rope = c.rope;
  rope.n_dims = c.qk_rope_dim;
  rope.adjacent_pairs = true;
  rope.freq_base = p.gguf_float(arch_key::kRopeFreqBase).value_or(hf.value("rope_theta", 10000.0));
  nlohmann::json hf_rope = hf.contains("rope_scaling") && hf["rope_scaling"].is_object() ? hf["rope_scaling"] : nlohmann::json::object();
  double log_mul = 0.0;
  c.kq_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim_k));
  const std::string scaling_type = p.gguf_string(arch_key::kRopeScalingType)
                                       .value_or(hf_rope.value("type", hf_rope.value("rope_type", std::string())));
  if (scaling_type == "yarn") {
    rope.yarn = true;
    rope.yarn_factor = p.gguf_float(arch_key::kRopeScalingFactor).value_or(hf_rope.value("factor", 1.0));
    rope.yarn_original_ctx = p.gguf_float(arch_key::kRopeScalingOriginalContext)
                                 .value_or(hf_rope.value("original_max_position_embeddings", 4096.0));
    rope.yarn_beta_fast = p.gguf_float(arch_key::kRopeScalingYarnBetaFast).value_or(hf_rope.value("beta_fast", 32.0));
    rope.yarn_beta_slow = p.gguf_float(arch_key::kRopeScalingYarnBetaSlow).value_or(hf_rope.value("beta_slow", 1.0));
    const double mscale = hf_rope.value("mscale", 1.0);
    const double mscale_all_dim = hf_rope.value("mscale_all_dim", 1.0);
    rope.attention_factor = yarn_mscale(rope.yarn_factor, mscale) / yarn_mscale(rope.yarn_factor, mscale_all_dim);
    log_mul = p.gguf_float(arch_key::kRopeScalingYarnLogMultiplier).value_or(0.1 * mscale_all_dim);
    const double m = rope.yarn_factor <= 1.0 ? 1.0 : 1.0 + log_mul * std::log(rope.yarn_factor);
    c.kq_scale *= m * m;
  }
  if (rope.yarn && rope.yarn_factor <= 1.0) rope.yarn = false;
  return Status::ok();
}

Status load_qwen3moe(ParamReader& p, const nlohmann::json& hf, ModelConfig& c) {
  Status s;
  if (!(s = p.require_int(arch_key::kExpertFeedForwardLength, c.n_ff_expert))) return s;
  c.head_dim_k = static_cast<int>(p.gguf_int(arch_key::kKeyLength).value_or(c.n_embd / c.n_head));
  c.head_dim_v = static_cast<int>(p.gguf_int(arch_key::kValueLength).value_or(c.head_dim_k));
  c.n_leading_dense = 0;
  RouterConfig& r = c.router;
  r.scoring = ScoringFunc::Softmax;
  r.topk_method = TopkMethod::Greedy;
  p.note("scoring_func", "softmax", "qwen3moe architecture");
  p.note("topk_method", "greedy", "qwen3moe architecture");
  r.norm_topk_prob = p.routing<bool>("norm_topk_prob", arch_key::kExpertWeightsNorm, "norm_topk_prob", true, "default for qwen3moe");
  r.n_shared_experts = 0;
  r.routed_scaling_factor = 1.0;
  c.rope.n_dims = static_cast<int>(p.gguf_int(arch_key::kRopeDimensionCount).value_or(c.head_dim_k));
  c.rope.adjacent_pairs = false;
  c.rope.freq_base = p.gguf_float(arch_key::kRopeFreqBase).value_or(hf.value("rope_theta", 1000000.0));
  c.kq_scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim_k));
  return Status::ok();
}

}  // namespace

Result<ModelConfig> load_model_config(const GgufModel& gguf, const std::string& hf_config_dir) {
  auto hf_or = read_hf_config(hf_config_dir);
  if (!hf_or) return hf_or.status();
  const nlohmann::json& hf = hf_or.value();

  ModelConfig c;
  auto arch = gguf.get_string(gguf_key::kArchitecture);
  if (!arch) return Status::error("GGUF metadata lacks general.architecture");
  if (*arch == "deepseek2") c.arch = Arch::Deepseek2;
  else if (*arch == "qwen3moe") c.arch = Arch::Qwen3Moe;
  else return Status::error(fmt::format("unsupported architecture '{}' (supported: deepseek2, qwen3moe)", *arch));
  c.name = gguf.get_string(gguf_key::kName).value_or(*arch);

  const std::string prefix = *arch + ".";
  ParamReader p(gguf, prefix, hf, c.sources);
  Status s;
  if (!(s = p.require_int(arch_key::kBlockCount, c.n_layers))) return s;
  if (!(s = p.require_int(arch_key::kEmbeddingLength, c.n_embd))) return s;
  if (!(s = p.require_int(arch_key::kHeadCount, c.n_head))) return s;
  c.n_head_kv = static_cast<int>(p.gguf_int(arch_key::kHeadCountKv).value_or(c.n_head));
  c.n_ff = static_cast<int>(p.gguf_int(arch_key::kFeedForwardLength).value_or(0));
  c.rms_eps = p.gguf_float(arch_key::kRmsEpsilon).value_or(hf.value("rms_norm_eps", 1e-6));
  c.context_length = p.gguf_int(arch_key::kContextLength).value_or(hf.value("max_position_embeddings", 4096));
  c.n_vocab = vocab_size(gguf, prefix);
  c.router.n_experts = p.routing<int>("n_experts", arch_key::kExpertCount, "n_routed_experts", 0, "missing");
  c.router.n_experts_used = p.routing<int>("n_experts_used", arch_key::kExpertUsedCount, "num_experts_per_tok", 0, "missing");
  if (c.n_layers <= 0 || c.n_embd <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.n_vocab <= 0) {
    return Status::error("GGUF metadata has non-positive model sizes");
  }
  if (c.router.n_experts <= 0 || c.router.n_experts_used <= 0 || c.router.n_experts_used > c.router.n_experts) {
    return Status::error(fmt::format("invalid expert counts: {} used of {}", c.router.n_experts_used, c.router.n_experts));
  }

  s = c.arch == Arch::Deepseek2 ? load_deepseek2(p, hf, c) : load_qwen3moe(p, hf, c);
  if (!s) return s;

  const RouterConfig& r = c.router;
  if (r.n_experts > kMaxExperts || r.n_group > kMaxExpertGroups) {
    return Status::error(fmt::format("{} experts in {} groups: Tandem supports up to {} experts and {} groups",
                                     r.n_experts, r.n_group, kMaxExperts, kMaxExpertGroups));
  }
  if (r.n_group <= 0 || r.n_experts % r.n_group != 0 || r.topk_group <= 0 || r.topk_group > r.n_group) {
    return Status::error(fmt::format("invalid expert groups: n_group {} topk_group {} for {} experts", r.n_group,
                                     r.topk_group, r.n_experts));
  }
  if (r.topk_method != TopkMethod::Greedy &&
      r.topk_group * (r.n_experts / r.n_group) < r.n_experts_used) {
    return Status::error("topk_group groups hold fewer experts than experts_per_token");
  }
  if (c.rope.n_dims <= 0 || c.rope.n_dims % 2 != 0 || c.rope.n_dims > c.head_dim_k) {
    return Status::error(fmt::format("invalid rope dimension count {}", c.rope.n_dims));
  }
  return c;
}

}  // namespace tandem
