// Scheduler: decides, step by step, which tokens of which requests the engine runs, and owns the pages
// of the shared KV cache. It knows token ids and page ids only, never tensors.
//
// Policy (first come, first served, continuous batching with chunked prefill):
// - Requests wait in arrival order. Each step takes every running decode first (one token each, oldest
//   first), then fills the step's token budget (chunk_size in all) with prefill chunks: running requests
//   that are still prefilling, oldest first, then waiting requests admitted in arrival order (a request
//   that cannot be admitted blocks those behind it). At most max_batch_size requests per step.
// - Pages are allocated as requests grow. When a running request needs a page and none is available, the
//   most recently admitted running request younger than it is preempted: its pages are released and it
//   goes back to the queue, to recompute its prompt and generated tokens later. Older requests therefore
//   always finish. A new request never preempts.
// - Prefix reuse: a request's full pages are registered in the PagePool as they fill; an admitted request
//   whose prompt starts with registered pages takes references to them and prefills only the rest.
// - submit() rejects, with a reason, a request that could never run: empty prompt, or prompt plus
//   max_new_tokens over the model context or the whole pool.
// Not thread-safe: the engine thread calls every method.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "core/status.h"
#include "scheduler/page_pool.h"

namespace tandem {

struct SchedulerConfig {
  int64_t cache_tokens = 4096;  // --cache_lens: tokens the pool holds in all
  int page_size = 16;
  int max_batch_size = 4;       // requests per step
  int chunk_size = 512;         // tokens per step in all
  int64_t max_context = 4096;   // the model's context length
  bool prefix_caching = true;

  // Pages in the pool: the one place the cache geometry is derived (the engine sizes the KV cache from it).
  int page_count() const { return page_size > 0 ? static_cast<int>(cache_tokens / page_size) : 0; }
};

using RequestId = uint64_t;

struct StepEntry {
  RequestId id;
  std::span<const int32_t> pages;  // the request's page table; valid until the next Scheduler call
  int64_t first_pos;               // position of tokens[0]
  std::vector<int32_t> tokens;     // a prefill chunk, or the one token of a decode
  bool wants_logits;               // the entry reaches the request's last token: sample the next one
  bool is_decode;
  int64_t prompt_length;           // the request's prompt tokens (positions below it are prompt)
};

struct StepPlan {
  std::vector<StepEntry> entries;
  int64_t n_tokens = 0;
  std::vector<RequestId> preempted;  // requests sent back to the queue while planning this step
  bool empty() const { return entries.empty(); }
};

// What happened to an entry that wanted logits.
struct StepResult {
  RequestId id;
  int32_t token;   // the sampled token, appended to the request
  bool finished;   // the request is done (stop token, length, ...): its pages are released
};

struct SchedulerMetrics {
  int waiting = 0;
  int running = 0;
  int pages_total = 0;
  int pages_free = 0;
  int pages_cached = 0;   // unreferenced, holding reusable prefixes
  int pages_used = 0;     // referenced by requests
  int64_t prefix_hit_tokens = 0;
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0;     // accepted prompts' tokens
  int64_t generated_tokens = 0;
  int64_t steps = 0;
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  const SchedulerConfig& config() const { return config_; }
  Status submit(RequestId id, std::vector<int32_t> prompt, int64_t max_new_tokens);
  // Removes a waiting or running request and releases its pages at once; false if unknown.
  bool cancel(RequestId id);
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }

  StepPlan schedule();
  // Applies the step planned by the last schedule(): its tokens are now in the cache; `results` has one
  // element per entry that wanted logits.
  void complete(const StepPlan& plan, const std::vector<StepResult>& results);

  SchedulerMetrics metrics() const;
  // The tokens (prompt + generated) of a known request, for tests and preemption bookkeeping.
  const std::vector<int32_t>* tokens_of(RequestId id) const;

 private:
  struct Request {
    RequestId id = 0;
    uint64_t arrival = 0;
    uint64_t admission = 0;           // order of (re)admission; larger = younger
    std::vector<int32_t> tokens;      // prompt + generated
    int64_t n_prompt = 0;
    int64_t n_computed = 0;           // positions whose KV is in the cache
    std::vector<int32_t> pages;
    std::vector<uint64_t> page_hashes;  // chain hash through each registered full page
  };

  bool grow_pages(Request& r, int64_t n_tokens);
  // Allocates up to the pages covering n_tokens from what is available; returns the tokens covered.
  int64_t take_available_pages(Request& r, int64_t n_tokens);
  bool make_room(Request& r, int64_t n_tokens, StepPlan& plan, int& budget, int& slots);
  void preempt(RequestId id, StepPlan& plan, int& budget, int& slots);
  void release_pages(Request& r);
  void match_prefix(Request& r);
  void register_full_pages(Request& r);
  Request* find_running(RequestId id);

  SchedulerConfig config_;
  PagePool pool_;
  std::deque<Request> waiting_;     // arrival order
  std::map<uint64_t, Request> running_;  // keyed by admission order: begin() is the oldest
  uint64_t next_arrival_ = 0;
  uint64_t next_admission_ = 0;
  SchedulerMetrics counters_;
};

}  // namespace tandem
