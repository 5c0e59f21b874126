#include "kernels/fault_injection.h"

#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace tandem {

namespace {

class FaultCounter {
 public:
  explicit FaultCounter(FaultPlan plan) : plan_(std::move(plan)) {}
  // Counts a call of `op`; true when this call must fail.
  bool should_fail(const char* op) {
    if (plan_.op != "any" && plan_.op != op) return false;
    const int64_t call = ++calls_;
    if (call == plan_.nth) return true;
    return plan_.period > 0 && call > plan_.nth && (call - plan_.nth) % plan_.period == 0;
  }

 private:
  FaultPlan plan_;
  int64_t calls_ = 0;
};

class FaultInjectingBackend final : public Backend {
 public:
  FaultInjectingBackend(std::unique_ptr<Backend> inner, const FaultPlan& plan) : inner_(std::move(inner)), faults_(plan) {}

  Device device() const override { return inner_->device(); }
  std::string describe() const override { return inner_->describe() + " (with fault injection)"; }
  Result<Tensor> alloc(GgmlType type, std::array<int64_t, 3> ne, const char* name) override {
    return inner_->alloc(type, ne, name);
  }
  Result<Tensor> alloc_host(GgmlType type, std::array<int64_t, 3> ne, const char* name) override {
    return inner_->alloc_host(type, ne, name);
  }
  Result<Tensor> load_weight(const Tensor& host) override { return inner_->load_weight(host); }
  Status prepare(const StepLimits& limits) override { return inner_->prepare(limits); }
  size_t allocated_bytes() const override { return inner_->allocated_bytes(); }

  void upload(const void* host, const Tensor& dst) override {
    if (!fault("upload")) inner_->upload(host, dst);
  }
  void download_later(const Tensor& src, void* host) override {
    if (!fault("download")) inner_->download_later(src, host);
  }
  void download(const Tensor& src, void* host) override {
    if (!fault("download")) inner_->download(src, host);
  }
  void embed(const Tensor& table, const Tensor& ids, const Tensor& out) override {
    if (!fault("embed")) inner_->embed(table, ids, out);
  }
  void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& out) override {
    if (!fault("rms_norm")) inner_->rms_norm(x, weight, eps, out);
  }
  void matmul(const Tensor& w, int64_t mat, const Tensor& x, const Tensor& y) override {
    if (!fault("matmul")) inner_->matmul(w, mat, x, y);
  }
  void matmul_heads(const Tensor& w, const Tensor& x, const Tensor& y) override {
    if (!fault("matmul_heads")) inner_->matmul_heads(w, x, y);
  }
  void matmul_heads_transposed(const Tensor& w, const Tensor& x, const Tensor& y) override {
    if (!fault("matmul_heads_transposed")) inner_->matmul_heads_transposed(w, x, y);
  }
  void add(const Tensor& a, const Tensor& b, const Tensor& out) override {
    if (!fault("add")) inner_->add(a, b, out);
  }
  void swiglu(const Tensor& gate, const Tensor& up, const Tensor& out) override {
    if (!fault("swiglu")) inner_->swiglu(gate, up, out);
  }
  void copy(const Tensor& src, const Tensor& dst) override {
    if (!fault("copy")) inner_->copy(src, dst);
  }
  void gather_rows(const Tensor& x, const Tensor& rows, const Tensor& out) override {
    if (!fault("gather_rows")) inner_->gather_rows(x, rows, out);
  }
  void rope(const Tensor& x, const Tensor& positions, const RopeSpec& spec) override {
    if (!fault("rope")) inner_->rope(x, positions, spec);
  }
  void store_kv(const Tensor& src, const Tensor& cache, int64_t col_offset, const PagedBatch& batch) override {
    if (!fault("store_kv")) inner_->store_kv(src, cache, col_offset, batch);
  }
  void attention(const Tensor& q, const Tensor& cache, const KvLayout& layout, const PagedBatch& batch, float scale,
                 const Tensor& out) override {
    if (!fault("attention")) inner_->attention(q, cache, layout, batch, scale, out);
  }
  void route(const Tensor& logits, const Tensor& bias, const RouterConfig& config, const Tensor& ids,
             const Tensor& weights) override {
    if (!fault("route")) inner_->route(logits, bias, config, ids, weights);
  }
  void moe(const ExpertWeights& experts, const Tensor& x, const Tensor& ids, const Tensor& weights,
           const Tensor& out) override {
    if (!fault("moe")) inner_->moe(experts, x, ids, weights, out);
  }
  Status prepare_expert_streaming(const std::vector<ExpertWeights>& layers) override {
    return inner_->prepare_expert_streaming(layers);
  }
  void stage_experts(const ExpertWeights& host, int slot) override {
    if (!fault("stage_experts")) inner_->stage_experts(host, slot);
  }
  ExpertWeights staged_experts(const ExpertWeights& host, int slot) override {
    return inner_->staged_experts(host, slot);
  }
  double busy_seconds() const override { return inner_->busy_seconds(); }
  void end_busy_span() override { inner_->end_busy_span(); }
  Status sync() override {
    Status inner = inner_->sync();
    if (!injected_) return inner;
    injected_ = nullptr;
    return Status::error(fmt::format("injected fault in {}", injected_name_));
  }

 private:
  bool fault(const char* op) {
    if (!faults_.should_fail(op)) return false;
    if (!injected_) {
      injected_ = op;
      std::strncpy(injected_name_, op, sizeof(injected_name_) - 1);
    }
    return true;
  }

  std::unique_ptr<Backend> inner_;
  FaultCounter faults_;
  const char* injected_ = nullptr;
  char injected_name_[32] = {};
};

class FaultInjectingRunner final : public ExpertRunner {
 public:
  FaultInjectingRunner(std::unique_ptr<ExpertRunner> inner, const FaultPlan& plan)
      : inner_(std::move(inner)), faults_(plan) {}
  std::string describe() const override { return inner_->describe() + " (with fault injection)"; }
  Status prepare(const ExpertLimits& limits) override { return inner_->prepare(limits); }
  Result<Tensor> load_weight(const Tensor& host) override { return inner_->load_weight(host); }
  void submit(const ExpertJob& job) override {
    failing_ = faults_.should_fail("experts");
    if (!failing_) inner_->submit(job);
  }
  Status wait() override {
    if (!failing_) return inner_->wait();
    failing_ = false;
    return Status::error("injected fault in experts");
  }
  double busy_seconds() const override { return inner_->busy_seconds(); }
  int64_t jobs_done() const override { return inner_->jobs_done(); }
  int64_t experts_read() const override { return inner_->experts_read(); }

 private:
  std::unique_ptr<ExpertRunner> inner_;
  FaultCounter faults_;
  bool failing_ = false;
};

bool parse_int(std::string_view s, int64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

Result<FaultPlan> parse_fault_plan(const std::string& text) {
  const auto bad = [&] {
    return Status::error(fmt::format("fault plan '{}': expected OP:N or OP:N:PERIOD with N >= 1", text));
  };
  const size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0) return bad();
  FaultPlan plan;
  plan.op = text.substr(0, colon);
  std::string_view rest(text);
  rest.remove_prefix(colon + 1);
  const size_t second = rest.find(':');
  if (!parse_int(rest.substr(0, second), plan.nth) || plan.nth < 1) return bad();
  if (second != std::string_view::npos && (!parse_int(rest.substr(second + 1), plan.period) || plan.period < 0)) {
    return bad();
  }
  return plan;
}

std::unique_ptr<Backend> inject_faults(std::unique_ptr<Backend> inner, const FaultPlan& plan) {
  return std::make_unique<FaultInjectingBackend>(std::move(inner), plan);
}

std::unique_ptr<ExpertRunner> inject_faults(std::unique_ptr<ExpertRunner> inner, const FaultPlan& plan) {
  return std::make_unique<FaultInjectingRunner>(std::move(inner), plan);
}

}  // namespace tandem
