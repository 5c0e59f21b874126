#include "scheduler/scheduler.h"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

namespace tandem {

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config),
      pool_(config.page_count(), std::max(1, config.page_size)) {
  if (config.page_size <= 0 || config.max_batch_size <= 0 || config.chunk_size <= 0 || config.cache_tokens < config.page_size) {
    throw std::invalid_argument("Scheduler: page_size, max_batch_size, chunk_size must be positive and cache_lens >= page_size");
  }
}

Status Scheduler::submit(RequestId id, std::vector<int32_t> prompt, int64_t max_new_tokens) {
  if (prompt.empty()) return Status::error("the prompt is empty");
  if (max_new_tokens < 1) return Status::error("max_new_tokens must be at least 1");
  const int64_t total = static_cast<int64_t>(prompt.size()) + max_new_tokens;
  if (total > config_.max_context) {
    return Status::error(fmt::format("prompt ({} tokens) plus max_new_tokens ({}) exceeds the model context of {} tokens",
                                     prompt.size(), max_new_tokens, config_.max_context));
  }
  const int64_t pages_needed = (total + config_.page_size - 1) / config_.page_size;
  if (pages_needed > pool_.n_pages()) {
    return Status::error(fmt::format("prompt ({} tokens) plus max_new_tokens ({}) exceeds the KV cache of {} tokens (cache_lens)",
                                     prompt.size(), max_new_tokens, int64_t{pool_.n_pages()} * config_.page_size));
  }
  if (tokens_of(id)) return Status::error(fmt::format("request id {} is already in use", id));
  counters_.prompt_tokens += static_cast<int64_t>(prompt.size());
  Request r;
  r.id = id;
  r.arrival = next_arrival_++;
  r.n_prompt = static_cast<int64_t>(prompt.size());
  r.tokens = std::move(prompt);
  waiting_.push_back(std::move(r));
  return Status::ok();
}

const std::vector<int32_t>* Scheduler::tokens_of(RequestId id) const {
  for (const auto& [order, r] : running_) {
    if (r.id == id) return &r.tokens;
  }
  for (const Request& r : waiting_) {
    if (r.id == id) return &r.tokens;
  }
  return nullptr;
}

Scheduler::Request* Scheduler::find_running(RequestId id) {
  for (auto& [order, r] : running_) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

bool Scheduler::cancel(RequestId id) {
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (it->second.id == id) {
      release_pages(it->second);
      running_.erase(it);
      return true;
    }
  }
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->id == id) {
      waiting_.erase(it);
      return true;
    }
  }
  return false;
}

void Scheduler::release_pages(Request& r) {
  for (int32_t page : r.pages) pool_.release(page);
  r.pages.clear();
  r.page_hashes.clear();
  r.n_computed = 0;
}

bool Scheduler::grow_pages(Request& r, int64_t n_tokens) {
  const int64_t needed = (n_tokens + config_.page_size - 1) / config_.page_size - static_cast<int64_t>(r.pages.size());
  if (needed <= 0) return true;
  if (needed > pool_.n_available()) return false;
  for (int64_t i = 0; i < needed; ++i) r.pages.push_back(*pool_.allocate());
  return true;
}

void Scheduler::preempt(RequestId id, StepPlan& plan, int& budget, int& slots) {
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (it->second.id != id) continue;
    Request r = std::move(it->second);
    running_.erase(it);
    auto entry = std::find_if(plan.entries.begin(), plan.entries.end(), [&](const StepEntry& e) { return e.id == id; });
    if (entry != plan.entries.end()) {
      budget += static_cast<int>(entry->tokens.size());
      plan.n_tokens -= static_cast<int64_t>(entry->tokens.size());
      ++slots;
      plan.entries.erase(entry);
    }
    release_pages(r);
    // Back to the queue in arrival order: it keeps its place ahead of later arrivals.
    auto pos = std::find_if(waiting_.begin(), waiting_.end(), [&](const Request& w) { return w.arrival > r.arrival; });
    waiting_.insert(pos, std::move(r));
    plan.preempted.push_back(id);
    ++counters_.preemptions;
    return;
  }
}

int64_t Scheduler::take_available_pages(Request& r, int64_t n_tokens) {
  const int64_t wanted = (n_tokens + config_.page_size - 1) / config_.page_size - static_cast<int64_t>(r.pages.size());
  for (int64_t i = 0; i < wanted && pool_.n_available() > 0; ++i) r.pages.push_back(*pool_.allocate());
  return static_cast<int64_t>(r.pages.size()) * config_.page_size;
}

bool Scheduler::make_room(Request& r, int64_t n_tokens, StepPlan& plan, int& budget, int& slots) {
  while (!grow_pages(r, n_tokens)) {
    // The youngest running request, if younger than r, gives its pages up.
    if (running_.empty()) return false;
    auto youngest = std::prev(running_.end());
    if (youngest->first <= r.admission) return false;
    preempt(youngest->second.id, plan, budget, slots);
  }
  return true;
}

void Scheduler::match_prefix(Request& r) {
  if (!config_.prefix_caching) return;
  const int ps = config_.page_size;
  // Leave at least one token to compute: the step that computes it produces the logits to sample from.
  const int64_t max_pages = (static_cast<int64_t>(r.tokens.size()) - 1) / ps;
  uint64_t parent = 0;
  for (int64_t i = 0; i < max_pages; ++i) {
    std::span<const int32_t> page_tokens(r.tokens.data() + i * ps, static_cast<size_t>(ps));
    auto page = pool_.acquire_cached(parent, page_tokens);
    if (!page) break;
    parent = PagePool::chain_hash(parent, page_tokens);
    r.pages.push_back(*page);
    r.page_hashes.push_back(parent);
    r.n_computed += ps;
    counters_.prefix_hit_tokens += ps;
  }
}

void Scheduler::register_full_pages(Request& r) {
  if (!config_.prefix_caching) return;
  const int ps = config_.page_size;
  while (static_cast<int64_t>(r.page_hashes.size() + 1) * ps <= r.n_computed) {
    const size_t i = r.page_hashes.size();
    const uint64_t parent = i == 0 ? 0 : r.page_hashes[i - 1];
    std::span<const int32_t> page_tokens(r.tokens.data() + static_cast<int64_t>(i) * ps, static_cast<size_t>(ps));
    pool_.register_full(r.pages[i], parent, page_tokens);
    r.page_hashes.push_back(PagePool::chain_hash(parent, page_tokens));
  }
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = config_.chunk_size;
  int slots = config_.max_batch_size;
  auto add_entry = [&](Request& r, int64_t n, bool is_decode) {
    StepEntry e{.id = r.id, .pages = r.pages, .first_pos = r.n_computed,
                .tokens = std::vector<int32_t>(r.tokens.begin() + r.n_computed, r.tokens.begin() + r.n_computed + n),
                .wants_logits = r.n_computed + n == static_cast<int64_t>(r.tokens.size()), .is_decode = is_decode,
                .prompt_length = r.n_prompt};
    plan.entries.push_back(std::move(e));
    plan.n_tokens += n;
    budget -= static_cast<int>(n);
    --slots;
  };
  auto is_decode = [](const Request& r) {
    return static_cast<int64_t>(r.tokens.size()) > r.n_prompt && r.n_computed + 1 == static_cast<int64_t>(r.tokens.size());
  };

  // 1. Decodes, oldest first. Iterate by admission key: preemption only removes younger requests.
  for (uint64_t key = running_.empty() ? 0 : running_.begin()->first; ;) {
    auto it = running_.lower_bound(key);
    if (it == running_.end() || slots == 0 || budget == 0) break;
    key = it->first + 1;
    Request& r = it->second;
    if (!is_decode(r)) continue;
    if (!make_room(r, r.n_computed + 1, plan, budget, slots)) {
      preempt(r.id, plan, budget, slots);  // r is the youngest and cannot grow: it waits
      continue;
    }
    add_entry(r, 1, true);
  }
  // 2. Prefill chunks of running requests, oldest first.
  for (uint64_t key = running_.empty() ? 0 : running_.begin()->first; ;) {
    auto it = running_.lower_bound(key);
    if (it == running_.end() || slots == 0 || budget == 0) break;
    key = it->first + 1;
    Request& r = it->second;
    const int64_t pending = static_cast<int64_t>(r.tokens.size()) - r.n_computed;
    if (is_decode(r) || pending <= 0) continue;
    int64_t n = std::min<int64_t>(pending, budget);
    if (!make_room(r, r.n_computed + n, plan, budget, slots)) {
      n = std::min(n, take_available_pages(r, r.n_computed + n) - r.n_computed);
      if (n <= 0) continue;
    }
    add_entry(r, n, false);
  }
  // 3. Admit waiting requests in arrival order while they fit.
  while (!waiting_.empty() && slots > 0 && budget > 0) {
    Request& r = waiting_.front();
    match_prefix(r);
    const int64_t pending = static_cast<int64_t>(r.tokens.size()) - r.n_computed;
    int64_t n = std::min<int64_t>(pending, budget);
    // Pages for the first chunk, as many as are available (never by preempting).
    n = std::min(n, take_available_pages(r, r.n_computed + n) - r.n_computed);
    if (n <= 0) {
      counters_.prefix_hit_tokens -= r.n_computed;
      release_pages(r);
      break;  // strict FCFS: nobody overtakes the head of the queue
    }
    r.admission = next_admission_++;
    Request& admitted = running_.emplace(r.admission, std::move(r)).first->second;
    waiting_.pop_front();
    add_entry(admitted, n, false);
  }
  ++counters_.steps;
  return plan;
}

void Scheduler::complete(const StepPlan& plan, const std::vector<StepResult>& results) {
  for (const StepEntry& e : plan.entries) {
    Request* r = find_running(e.id);
    if (!r) continue;  // cancelled meanwhile
    r->n_computed = std::max(r->n_computed, e.first_pos + static_cast<int64_t>(e.tokens.size()));
    register_full_pages(*r);
  }
  for (const StepResult& res : results) {
    Request* r = find_running(res.id);
    if (!r) continue;
    ++counters_.generated_tokens;
    if (res.finished) {
      cancel(res.id);
      continue;
    }
    r->tokens.push_back(res.token);
  }
}

SchedulerMetrics Scheduler::metrics() const {
  SchedulerMetrics m = counters_;
  m.waiting = static_cast<int>(waiting_.size());
  m.running = static_cast<int>(running_.size());
  m.pages_total = pool_.n_pages();
  m.pages_free = pool_.n_free();
  m.pages_cached = pool_.n_cached();
  m.pages_used = pool_.n_referenced();
  return m;
}

}  // namespace tandem
