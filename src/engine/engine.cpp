#include "engine/engine.h"

#include <algorithm>
#include <chrono>

namespace tandem {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::None: return "none";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
  }
  return "?";
}

namespace {
KvCacheConfig cache_config(const Model& model, const SchedulerConfig& s) {
  return model.kv_cache_config(s.page_size, static_cast<int>(s.cache_tokens / s.page_size));
}
SchedulerConfig with_model_context(SchedulerConfig s, const Model& model) {
  s.max_context = std::min<int64_t>(s.max_context > 0 ? s.max_context : model.config().context_length,
                                    model.config().context_length);
  return s;
}
}  // namespace

Engine::Engine(Model& model, Backend& backend, const EngineConfig& config)
    : model_(model),
      backend_(backend),
      cache_(cache_config(model, config.scheduler)),
      scheduler_(with_model_context(config.scheduler, model)) {}

Engine::~Engine() { stop(); }

Result<RequestId> Engine::submit(GenerationRequest request, TokenCallback on_token) {
  const int n_vocab = model_.config().n_vocab;
  for (int32_t t : request.prompt) {
    if (t < 0 || t >= n_vocab) return Status::error("token id " + std::to_string(t) + " is outside the vocabulary");
  }
  std::lock_guard lock(mutex_);
  const RequestId id = next_id_++;
  Status s = scheduler_.submit(id, request.prompt, request.max_new_tokens);
  if (!s) return s;
  Sampler sampler(request.sampling, request.prompt);
  active_.emplace(id, std::make_unique<Active>(Active{std::move(request), std::move(sampler), std::move(on_token), 0}));
  wake_.notify_all();
  return id;
}

void Engine::cancel(RequestId id) {
  std::lock_guard lock(mutex_);
  pending_cancels_.push_back(id);
  wake_.notify_all();
}

bool Engine::idle() const {
  std::lock_guard lock(mutex_);
  return !scheduler_.has_work() && pending_cancels_.empty();
}

bool Engine::step() {
  std::lock_guard step_lock(step_mutex_);
  std::vector<std::pair<TokenCallback, TokenEvent>> events;
  StepPlan plan;
  {
    std::lock_guard lock(mutex_);
    for (RequestId id : pending_cancels_) {
      auto it = active_.find(id);
      if (it == active_.end()) continue;
      scheduler_.cancel(id);
      TokenEvent e{.id = id, .finish = FinishReason::Cancelled,
                   .prompt_tokens = static_cast<int64_t>(it->second->request.prompt.size()),
                   .generated_tokens = it->second->generated};
      events.emplace_back(std::move(it->second->on_token), std::move(e));
      active_.erase(it);
    }
    pending_cancels_.clear();
    if (scheduler_.has_work()) plan = scheduler_.schedule();
  }
  if (plan.empty()) {
    for (auto& [callback, event] : events) callback(event);
    return !events.empty();
  }

  // The plan's page tables stay valid while unlocked: only this thread changes running requests.
  ForwardBatch batch;
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    const StepEntry& e = plan.entries[i];
    batch.page_tables.push_back(e.pages);
    for (size_t j = 0; j < e.tokens.size(); ++j) {
      batch.tokens.push_back(e.tokens[j]);
      batch.positions.push_back(e.first_pos + static_cast<int64_t>(j));
      batch.seq_index.push_back(static_cast<int32_t>(i));
    }
    if (e.wants_logits) batch.output_tokens.push_back(static_cast<int32_t>(batch.tokens.size() - 1));
  }
  const double experts_before = backend_.expert_seconds();
  const auto started = std::chrono::steady_clock::now();
  std::vector<float> logits;
  model_.forward(backend_, batch, cache_, logits);
  const double forward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  StepStats stats{.seconds = forward_seconds, .expert_seconds = backend_.expert_seconds() - experts_before,
                  .n_requests = static_cast<int>(plan.entries.size())};
  for (const StepEntry& e : plan.entries) {
    (e.is_decode ? stats.decode_tokens : stats.prefill_tokens) += static_cast<int64_t>(e.tokens.size());
  }
  const int64_t n_vocab = model_.config().n_vocab;
  std::vector<StepResult> results;
  {
    std::lock_guard lock(mutex_);
    totals_.forward_seconds += forward_seconds;
    totals_.expert_seconds += stats.expert_seconds;
    totals_.batch_tokens += batch.size();
    size_t row = 0;
    for (const StepEntry& e : plan.entries) {
      if (!e.wants_logits) continue;
      std::span<float> row_logits(logits.data() + static_cast<int64_t>(row++) * n_vocab, static_cast<size_t>(n_vocab));
      auto it = active_.find(e.id);
      if (it == active_.end()) continue;
      Active& a = *it->second;
      TokenEvent ev{.id = e.id, .prompt_tokens = static_cast<int64_t>(a.request.prompt.size())};
      if (a.request.return_prompt_logits && a.generated == 0) ev.logits.assign(row_logits.begin(), row_logits.end());
      const std::vector<float> raw = a.request.top_logprobs > 0 ? std::vector<float>(row_logits.begin(), row_logits.end())
                                                                 : std::vector<float>();
      ev.token = a.sampler.sample(row_logits);
      a.sampler.accept(ev.token);
      if (!raw.empty()) {
        ev.top_logprobs = a.sampler.top_logprobs(raw, std::max(a.request.top_logprobs, 1));
        ev.logprob = a.sampler.logprob_of(raw, ev.token);
      }
      ev.generated_tokens = ++a.generated;
      const bool stop = std::find(a.request.stop_token_ids.begin(), a.request.stop_token_ids.end(), ev.token) !=
                        a.request.stop_token_ids.end();
      if (stop) ev.finish = FinishReason::Stop;
      else if (a.generated >= a.request.max_new_tokens) ev.finish = FinishReason::Length;
      results.push_back({e.id, ev.token, ev.finish != FinishReason::None});
      if (ev.finish != FinishReason::None) {
        events.emplace_back(std::move(a.on_token), std::move(ev));
        active_.erase(it);
      } else {
        events.emplace_back(a.on_token, std::move(ev));
      }
    }
    scheduler_.complete(plan, results);
  }
  if (observer_) observer_(stats);
  for (auto& [callback, event] : events) callback(event);
  return true;
}

void Engine::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { loop(); });
}

void Engine::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void Engine::loop() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || scheduler_.has_work() || !pending_cancels_.empty(); });
      if (stopping_) return;
    }
    step();
  }
}

EngineMetrics Engine::metrics() const {
  std::lock_guard lock(mutex_);
  EngineMetrics m = totals_;
  m.scheduler = scheduler_.metrics();
  return m;
}

}  // namespace tandem
