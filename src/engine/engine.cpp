#include "engine/engine.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace tandem {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::None: return "none";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "?";
}

namespace {
SchedulerConfig with_model_context(SchedulerConfig s, const Model& model) {
  s.max_context = std::min<int64_t>(s.max_context > 0 ? s.max_context : model.config().context_length,
                                    model.config().context_length);
  return s;
}
}  // namespace

Engine::Engine(Model& model, const EngineConfig& config)
    : model_(model),
      stream_min_prompt_(model.streams_experts() ? config.stream_experts_min_prompt : 0),
      scheduler_(with_model_context(config.scheduler, model)) {}

Result<std::unique_ptr<Engine>> Engine::create(Model& model, const EngineConfig& config) {
  const SchedulerConfig& sc = config.scheduler;
  if (sc.page_size <= 0 || sc.max_batch_size <= 0 || sc.chunk_size <= 0 || sc.cache_tokens < sc.page_size) {
    return Status::error("engine: page_size, max_batch_size and chunk_size must be positive and cache_lens >= page_size");
  }
  std::unique_ptr<Engine> engine(new Engine(model, config));
  const SchedulerConfig& s = engine->scheduler_.config();
  const KvCacheConfig cache_config = model.kv_cache_config(s.page_size, s.page_count());
  auto cache = PagedKvCache::create(*model.devices().main, cache_config);
  if (!cache) return Status::error("engine: " + cache.status().message());
  engine->cache_ = std::move(cache.value());
  // A step holds every decode plus prefill chunks up to chunk_size tokens in all, of up to max_batch_size requests.
  const StepLimits limits{.max_tokens = std::max<int64_t>(s.chunk_size, s.max_batch_size),
                          .max_sequences = s.max_batch_size,
                          .max_context = std::min<int64_t>(s.max_context, s.cache_tokens)};
  auto buffers = model.create_step_buffers(limits, cache_config);
  if (!buffers) return Status::error("engine: " + buffers.status().message());
  engine->buffers_ = std::move(buffers.value());
  engine->batch_.tokens.reserve(static_cast<size_t>(limits.max_tokens));
  engine->batch_.positions.reserve(static_cast<size_t>(limits.max_tokens));
  engine->batch_.seq_index.reserve(static_cast<size_t>(limits.max_tokens));
  engine->batch_.page_tables.reserve(static_cast<size_t>(limits.max_sequences));
  engine->batch_.output_tokens.reserve(static_cast<size_t>(limits.max_sequences));
  engine->logits_.assign(static_cast<size_t>(limits.max_sequences * model.config().n_vocab), 0.0f);
  if (Status recorded = engine->record_decode_steps(); !recorded) return Status::error("engine: " + recorded.message());
  return engine;
}

// A decode step's recorded runs (CUDA graphs) are made the first time a batch size runs; doing it here, with
// a placeholder step of every size from 1 to max_batch_size, keeps that cost out of the first requests. The
// placeholder tokens write keys and values into page 0 only, which no reader sees: a request reads only
// positions it has written itself.
Status Engine::record_decode_steps() {
  const ModelDevices& d = model_.devices();
  if (!d.use_graphs || d.main->device().is_cpu()) return Status::ok();
  static const int32_t kFirstPage[1] = {0};
  ForwardBatch& batch = batch_;
  for (int n = 1; n <= scheduler_.config().max_batch_size; ++n) {
    batch.tokens.assign(static_cast<size_t>(n), 0);
    batch.positions.assign(static_cast<size_t>(n), 0);
    batch.seq_index.resize(static_cast<size_t>(n));
    batch.page_tables.assign(static_cast<size_t>(n), std::span<const int32_t>(kFirstPage));
    batch.output_tokens.resize(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) batch.seq_index[static_cast<size_t>(i)] = batch.output_tokens[static_cast<size_t>(i)] = i;
    batch.streamed_expert_tokens = 0;
    if (Status s = model_.forward(batch, *cache_, *buffers_, logits_, nullptr); !s) {
      return Status::error(fmt::format("recording the decode step of {} requests: {}", n, s.message()));
    }
  }
  return Status::ok();
}

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
  Sampler sampler(request.sampling, request.prompt, request.constraint, request.max_new_tokens);
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
    deliver(events);
    return !events.empty();
  }

  // The plan's page tables stay valid while unlocked: only this thread changes running requests.
  ForwardBatch& batch = batch_;
  batch.tokens.clear();
  batch.positions.clear();
  batch.seq_index.clear();
  batch.page_tables.clear();
  batch.output_tokens.clear();
  // Tokens of long prompts (positions before the prompt's end, of prompts of stream_min_prompt_ tokens or
  // more) go last, as the batch's streamed-expert tokens: a property of each token, whatever the step holds.
  // An entry's streamed tokens are its leading ones; last_token_ keeps where each entry's last token lands.
  const size_t n_entries = plan.entries.size();
  auto streamed_in = [&](const StepEntry& e) -> int64_t {
    if (stream_min_prompt_ == 0 || e.prompt_length < stream_min_prompt_) return 0;
    return std::clamp<int64_t>(e.prompt_length - e.first_pos, 0, static_cast<int64_t>(e.tokens.size()));
  };
  last_token_.assign(n_entries, -1);
  auto add_tokens = [&](size_t i, int64_t from, int64_t to) {
    const StepEntry& e = plan.entries[i];
    for (int64_t j = from; j < to; ++j) {
      batch.tokens.push_back(e.tokens[static_cast<size_t>(j)]);
      batch.positions.push_back(e.first_pos + j);
      batch.seq_index.push_back(static_cast<int32_t>(i));
    }
    if (to == static_cast<int64_t>(e.tokens.size()) && to > from) last_token_[i] = static_cast<int32_t>(batch.size() - 1);
  };
  for (size_t i = 0; i < n_entries; ++i) {
    batch.page_tables.push_back(plan.entries[i].pages);
    add_tokens(i, streamed_in(plan.entries[i]), static_cast<int64_t>(plan.entries[i].tokens.size()));
  }
  const int64_t unstreamed = batch.size();
  for (size_t i = 0; i < n_entries; ++i) add_tokens(i, 0, streamed_in(plan.entries[i]));
  batch.streamed_expert_tokens = batch.size() - unstreamed;
  for (size_t i = 0; i < n_entries; ++i) {
    if (plan.entries[i].wants_logits) batch.output_tokens.push_back(last_token_[i]);
  }
  ExpertRunner* runner = model_.devices().cpu_experts;
  const double experts_before = runner ? runner->busy_seconds() : 0.0;
  const int64_t jobs_before = runner ? runner->jobs_done() : 0, read_before = runner ? runner->experts_read() : 0;
  const double device_before = model_.devices().main->busy_seconds();
  const auto started = std::chrono::steady_clock::now();
  ForwardStats forward_stats;
  const Status forward_status = model_.forward(batch, *cache_, *buffers_, logits_, &forward_stats);
  const double forward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  StepStats stats{.seconds = forward_seconds,
                  .expert_seconds = runner ? runner->busy_seconds() - experts_before : 0.0,
                  .expert_wait_seconds = forward_stats.expert_wait_seconds,
                  .device_seconds = model_.devices().main->busy_seconds() - device_before,
                  .expert_jobs = runner ? runner->jobs_done() - jobs_before : 0,
                  .experts_read = runner ? runner->experts_read() - read_before : 0,
                  .n_requests = static_cast<int>(plan.entries.size())};
  for (const StepEntry& e : plan.entries) {
    (e.is_decode ? stats.decode_tokens : stats.prefill_tokens) += static_cast<int64_t>(e.tokens.size());
  }
  if (!forward_status) {
    spdlog::error("engine: step of {} requests failed: {}", plan.entries.size(), forward_status.message());
    {
      std::lock_guard lock(mutex_);
      fail_step(plan, forward_status, events);
    }
    if (observer_) observer_(stats);
    deliver(events);
    return true;
  }
  const int64_t n_vocab = model_.config().n_vocab;
  std::vector<StepResult> results;
  {
    std::lock_guard lock(mutex_);
    totals_.forward_seconds += forward_seconds;
    totals_.expert_seconds += stats.expert_seconds;
    totals_.expert_wait_seconds += stats.expert_wait_seconds;
    totals_.device_seconds += stats.device_seconds;
    totals_.batch_tokens += batch.size();
    size_t row = 0;
    for (const StepEntry& e : plan.entries) {
      if (!e.wants_logits) continue;
      std::span<float> row_logits(logits_.data() + static_cast<int64_t>(row++) * n_vocab, static_cast<size_t>(n_vocab));
      auto it = active_.find(e.id);
      if (it == active_.end()) continue;
      Active& a = *it->second;
      TokenEvent ev{.id = e.id, .prompt_tokens = static_cast<int64_t>(a.request.prompt.size())};
      if (a.request.return_prompt_logits && a.generated == 0) ev.logits.assign(row_logits.begin(), row_logits.end());
      a.sampler.constrain(row_logits);  // log-probabilities are those of the constrained distribution
      const std::vector<float> raw = a.request.top_logprobs > 0 ? std::vector<float>(row_logits.begin(), row_logits.end())
                                                                 : std::vector<float>();
      ev.token = a.sampler.sample(row_logits);
      const bool accepted = a.sampler.accept(ev.token);
      if (!raw.empty()) {
        ev.top_logprobs = a.sampler.top_logprobs(raw, std::max(a.request.top_logprobs, 1));
        ev.logprob = a.sampler.logprob_of(raw, ev.token);
      }
      ev.generated_tokens = ++a.generated;
      const bool stop = std::find(a.request.stop_token_ids.begin(), a.request.stop_token_ids.end(), ev.token) !=
                        a.request.stop_token_ids.end();
      if (!accepted) {
        spdlog::error("engine: request {}: the token constraint refused token {}", e.id, ev.token);
        ev.finish = FinishReason::Error;
        ev.error = "constrained decoding failed: the chosen token does not fit the grammar";
      } else if (stop) {
        ev.finish = FinishReason::Stop;
      } else if (a.generated >= a.request.max_new_tokens) {
        ev.finish = FinishReason::Length;
      }
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
  deliver(events);
  return true;
}

void Engine::deliver(std::vector<std::pair<TokenCallback, TokenEvent>>& events) {
  // A callback that throws is a bug of its owner; it must not take the engine thread (and every other
  // request) down with it.
  for (auto& [callback, event] : events) {
    try {
      callback(event);
    } catch (const std::exception& e) {
      spdlog::error("engine: the callback of request {} threw: {}", event.id, e.what());
    } catch (...) {
      spdlog::error("engine: the callback of request {} threw", event.id);
    }
  }
}

void Engine::fail_step(const StepPlan& plan, const Status& status,
                       std::vector<std::pair<TokenCallback, TokenEvent>>& events) {
  // The step's cache slots may hold garbage now: its requests end here, with the error, and free their pages.
  ++totals_.failed_steps;
  for (const StepEntry& e : plan.entries) {
    auto it = active_.find(e.id);
    if (it == active_.end()) continue;
    scheduler_.cancel(e.id);
    TokenEvent ev{.id = e.id, .finish = FinishReason::Error,
                  .prompt_tokens = static_cast<int64_t>(it->second->request.prompt.size()),
                  .generated_tokens = it->second->generated, .error = status.message()};
    events.emplace_back(std::move(it->second->on_token), std::move(ev));
    active_.erase(it);
  }
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
