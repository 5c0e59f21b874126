// Scheduler tests against a simulated model: the KV cache is simulated as the token stored in each slot,
// and the "next token" is a hash of the whole sequence read back through the page table. Any scheduling
// bug (wrong positions, lost or aliased pages, a shared page overwritten, a bad preemption) changes what
// is read back and therefore the generated tokens, which must equal those of running each request alone.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace tandem {

namespace {

int32_t next_token_of(const std::vector<int32_t>& seq) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : seq) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
  return static_cast<int32_t>(h % 500);
}

struct Job {
  std::vector<int32_t> prompt;
  int64_t max_new;
  int arrival_step;
  int cancel_step = -1;  // -1: never
};

struct Outcome {
  std::map<RequestId, std::vector<int32_t>> outputs;
  std::vector<RequestId> finish_order;
  int64_t max_tokens_in_step = 0;
  int max_requests_in_step = 0;
};

// Drives the scheduler like the engine does, checking invariants after every step.
Outcome simulate(const SchedulerConfig& config, const std::vector<Job>& jobs) {
  Scheduler sched(config);
  const int64_t n_slots = config.cache_tokens / config.page_size * config.page_size;
  std::vector<int32_t> kv(static_cast<size_t>(n_slots), -1);
  Outcome out;
  std::map<RequestId, int64_t> max_new;
  size_t next_job = 0;
  for (int step = 0; step < 100000; ++step) {
    for (; next_job < jobs.size() && jobs[next_job].arrival_step <= step; ++next_job) {
      EXPECT_TRUE(sched.submit(next_job, jobs[next_job].prompt, jobs[next_job].max_new));
      max_new[next_job] = jobs[next_job].max_new;
    }
    for (size_t j = 0; j < next_job; ++j) {
      if (jobs[j].cancel_step == step && sched.cancel(j)) out.outputs.erase(j);
    }
    if (!sched.has_work()) {
      if (next_job == jobs.size()) break;
      continue;
    }
    StepPlan plan = sched.schedule();
    out.max_tokens_in_step = std::max(out.max_tokens_in_step, plan.n_tokens);
    out.max_requests_in_step = std::max(out.max_requests_in_step, static_cast<int>(plan.entries.size()));
    for (RequestId id : plan.preempted) out.outputs.erase(id);  // its tokens stay in the scheduler
    std::vector<StepResult> results;
    for (const StepEntry& e : plan.entries) {
      for (size_t i = 0; i < e.tokens.size(); ++i) {
        const int64_t pos = e.first_pos + static_cast<int64_t>(i);
        const int32_t page = e.pages[static_cast<size_t>(pos / config.page_size)];
        kv[static_cast<size_t>(page * config.page_size + pos % config.page_size)] = e.tokens[i];
      }
    }
    for (const StepEntry& e : plan.entries) {
      if (!e.wants_logits) continue;
      const int64_t len = e.first_pos + static_cast<int64_t>(e.tokens.size());
      std::vector<int32_t> seq;
      for (int64_t pos = 0; pos < len; ++pos) {
        const int32_t page = e.pages[static_cast<size_t>(pos / config.page_size)];
        seq.push_back(kv[static_cast<size_t>(page * config.page_size + pos % config.page_size)]);
      }
      const int32_t tok = next_token_of(seq);
      const std::vector<int32_t>& known = *sched.tokens_of(e.id);
      EXPECT_EQ(seq, std::vector<int32_t>(known.begin(), known.begin() + len)) << "KV read back differs, request " << e.id;
      const int64_t generated = static_cast<int64_t>(known.size()) - static_cast<int64_t>(jobs[e.id].prompt.size()) + 1;
      const bool done = generated >= max_new[e.id];
      results.push_back({e.id, tok, done});
      if (done) {
        std::vector<int32_t> output(known.begin() + static_cast<int64_t>(jobs[e.id].prompt.size()), known.end());
        output.push_back(tok);
        out.outputs[e.id] = output;
        out.finish_order.push_back(e.id);
      }
    }
    sched.complete(plan, results);
    const SchedulerMetrics m = sched.metrics();
    EXPECT_EQ(m.pages_free + m.pages_cached + m.pages_used, m.pages_total);
  }
  const SchedulerMetrics m = sched.metrics();
  EXPECT_EQ(m.pages_used, 0) << "pages leaked";
  EXPECT_EQ(m.running + m.waiting, 0);
  return out;
}

std::vector<int32_t> solo_output(const Job& job) {
  std::vector<int32_t> seq = job.prompt, output;
  for (int64_t i = 0; i < job.max_new; ++i) {
    const int32_t t = next_token_of(seq);
    output.push_back(t);
    seq.push_back(t);
  }
  return output;
}

std::vector<int32_t> random_prompt(std::mt19937& rng, int len, int vocab) {
  std::vector<int32_t> p(static_cast<size_t>(len));
  for (auto& t : p) t = static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab));
  return p;
}

}  // namespace

TEST(Scheduler, RejectsWhatCanNeverFit) {
  Scheduler s({.cache_tokens = 64, .page_size = 16, .max_batch_size = 2, .chunk_size = 8, .max_context = 100});
  EXPECT_FALSE(s.submit(1, {}, 4));
  Status st = s.submit(2, std::vector<int32_t>(60, 1), 10);
  EXPECT_FALSE(st);
  EXPECT_NE(st.message().find("KV cache"), std::string::npos);
  st = s.submit(3, std::vector<int32_t>(40, 1), 70);
  EXPECT_NE(st.message().find("context"), std::string::npos);
  EXPECT_TRUE(s.submit(4, std::vector<int32_t>(40, 1), 24));
  EXPECT_FALSE(s.submit(4, std::vector<int32_t>(4, 1), 4));  // duplicate id
}

TEST(Scheduler, DecodesFirstThenPrefillChunksWithinBudget) {
  Scheduler s({.cache_tokens = 1024, .page_size = 4, .max_batch_size = 3, .chunk_size = 8, .max_context = 1024});
  ASSERT_TRUE(s.submit(0, std::vector<int32_t>(5, 1), 10));
  ASSERT_TRUE(s.submit(1, std::vector<int32_t>(20, 2), 10));
  StepPlan p1 = s.schedule();
  ASSERT_EQ(p1.entries.size(), 2u);
  EXPECT_EQ(p1.entries[0].tokens.size(), 5u);  // all of request 0
  EXPECT_TRUE(p1.entries[0].wants_logits);
  EXPECT_EQ(p1.entries[1].tokens.size(), 3u);  // budget left for request 1
  EXPECT_FALSE(p1.entries[1].wants_logits);
  s.complete(p1, {{0, 42, false}});
  StepPlan p2 = s.schedule();
  ASSERT_EQ(p2.entries.size(), 2u);
  EXPECT_TRUE(p2.entries[0].is_decode);
  EXPECT_EQ(p2.entries[0].id, 0u);
  EXPECT_EQ(p2.entries[0].tokens, std::vector<int32_t>{42});
  EXPECT_EQ(p2.entries[0].first_pos, 5);
  EXPECT_EQ(p2.entries[1].id, 1u);
  EXPECT_EQ(p2.entries[1].first_pos, 3);
  EXPECT_EQ(p2.entries[1].tokens.size(), 7u);
}

TEST(Scheduler, PreemptsTheYoungestWhenThePoolRunsDryAndStillFinishesAll) {
  // 4 pages of 4 tokens; two requests of 6 + 8 tokens each need 4 pages alone: they cannot both run.
  SchedulerConfig c{.cache_tokens = 16, .page_size = 4, .max_batch_size = 4, .chunk_size = 16, .max_context = 64};
  std::vector<Job> jobs{{std::vector<int32_t>(6, 3), 8, 0}, {std::vector<int32_t>(6, 4), 8, 0}};
  Outcome o = simulate(c, jobs);
  for (size_t j = 0; j < jobs.size(); ++j) EXPECT_EQ(o.outputs[j], solo_output(jobs[j])) << j;
  EXPECT_EQ(o.finish_order, (std::vector<RequestId>{0, 1}));  // the older one finishes first
}

TEST(Scheduler, SharedPrefixIsPrefilledOnceAndReused) {
  SchedulerConfig c{.cache_tokens = 256, .page_size = 4, .max_batch_size = 4, .chunk_size = 64, .max_context = 256};
  Scheduler s(c);
  std::vector<int32_t> system(16, 9), a = system, b = system;
  a.insert(a.end(), {1, 2, 3});
  b.insert(b.end(), {4, 5});
  ASSERT_TRUE(s.submit(0, a, 2));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.entries[0].tokens.size(), 19u);
  s.complete(p, {{0, 7, false}});
  ASSERT_TRUE(s.submit(1, b, 2));
  p = s.schedule();
  ASSERT_EQ(p.entries.size(), 2u);
  EXPECT_EQ(p.entries[1].id, 1u);
  EXPECT_EQ(p.entries[1].first_pos, 16);         // 4 shared pages skipped
  EXPECT_EQ(p.entries[1].tokens.size(), 2u);
  EXPECT_EQ(s.metrics().prefix_hit_tokens, 16);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(p.entries[1].pages[static_cast<size_t>(i)], p.entries[0].pages[static_cast<size_t>(i)]);
  s.complete(p, {{0, 8, true}, {1, 9, true}});
  const SchedulerMetrics m = s.metrics();
  EXPECT_EQ(m.pages_used, 0);
  EXPECT_EQ(m.pages_cached, 5);  // the shared prefix and a's own full fifth page stay reusable
}

TEST(Scheduler, WholePromptCachedStillComputesTheLastToken) {
  SchedulerConfig c{.cache_tokens = 64, .page_size = 4, .max_batch_size = 2, .chunk_size = 64, .max_context = 64};
  std::vector<Job> jobs{{std::vector<int32_t>(8, 5), 3, 0}, {std::vector<int32_t>(8, 5), 3, 10}};
  Outcome o = simulate(c, jobs);
  EXPECT_EQ(o.outputs[0], solo_output(jobs[0]));
  EXPECT_EQ(o.outputs[1], solo_output(jobs[1]));
}

TEST(Scheduler, EqualLengthRequestsCompleteInArrivalOrder) {
  SchedulerConfig c{.cache_tokens = 64, .page_size = 4, .max_batch_size = 3, .chunk_size = 8, .max_context = 64};
  std::mt19937 rng(5);
  std::vector<Job> jobs;
  for (int i = 0; i < 8; ++i) jobs.push_back({random_prompt(rng, 10, 300), 6, i});
  Outcome o = simulate(c, jobs);
  std::vector<RequestId> expected(jobs.size());
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = i;
  EXPECT_EQ(o.finish_order, expected);
}

TEST(Scheduler, RandomizedLoadsMatchSoloRunsWithoutLeaks) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    SchedulerConfig c;
    c.page_size = 1 + static_cast<int>(rng() % 8);
    c.max_batch_size = 1 + static_cast<int>(rng() % 6);
    c.chunk_size = c.max_batch_size + static_cast<int>(rng() % 24);
    c.max_context = 200;
    c.cache_tokens = c.page_size * (6 + static_cast<int>(rng() % 40));
    c.prefix_caching = rng() % 4 != 0;
    const int n_jobs = 1 + static_cast<int>(rng() % 12);
    std::vector<Job> jobs;
    const std::vector<int32_t> shared = random_prompt(rng, 1 + static_cast<int>(rng() % 12), 50);
    int arrival = 0;
    for (int j = 0; j < n_jobs; ++j) {
      Job job;
      const int64_t max_total = std::min<int64_t>(c.cache_tokens, 60);
      job.prompt = rng() % 2 ? shared : std::vector<int32_t>();
      const auto extra = 1 + static_cast<int>(rng() % 20);
      const auto tail = random_prompt(rng, extra, 50);
      job.prompt.insert(job.prompt.end(), tail.begin(), tail.end());
      if (static_cast<int64_t>(job.prompt.size()) >= max_total) job.prompt.resize(static_cast<size_t>(max_total - 1));
      job.max_new = 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(max_total - static_cast<int64_t>(job.prompt.size())));
      arrival += static_cast<int>(rng() % 4);
      job.arrival_step = arrival;
      if (rng() % 6 == 0) job.cancel_step = arrival + static_cast<int>(rng() % 10);
      jobs.push_back(job);
    }
    Outcome o = simulate(c, jobs);
    EXPECT_LE(o.max_tokens_in_step, c.chunk_size);
    EXPECT_LE(o.max_requests_in_step, c.max_batch_size);
    for (size_t j = 0; j < jobs.size(); ++j) {
      auto it = o.outputs.find(j);
      if (jobs[j].cancel_step >= 0 && it == o.outputs.end()) continue;  // cancelled before finishing
      ASSERT_NE(it, o.outputs.end()) << "trial " << trial << " request " << j << " never finished";
      EXPECT_EQ(it->second, solo_output(jobs[j])) << "trial " << trial << " request " << j;
    }
    if (HasFailure()) break;
  }
}

}  // namespace tandem
