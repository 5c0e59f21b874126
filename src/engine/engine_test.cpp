// Engine tests on a fixture model: whatever the load (arrival times, lengths, chunk and page sizes, pool
// size, cancellations), every request's tokens equal those it gets alone, no page leaks, and finished
// requests release everything.
#include "engine/engine.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "testing/fixtures.h"
#include "testing/model_harness.h"

namespace tandem {

namespace {

using Fixture = testing::LoadedModel;

Fixture load_fixture(const std::string& name, int threads = 2) {
  const auto dir = testing::fixture_model_dir(name);
  auto m = testing::load_model(dir / "model.gguf", dir, threads);
  EXPECT_TRUE(m) << m.status().message();
  return m ? std::move(m.value()) : Fixture{};
}

std::unique_ptr<Engine> make_engine(Model& model, const SchedulerConfig& sc) {
  auto engine = Engine::create(model, EngineConfig{sc});
  EXPECT_TRUE(engine) << engine.status().message();
  return engine ? std::move(engine.value()) : nullptr;
}

struct Job {
  GenerationRequest request;
  int arrival_step = 0;
  int cancel_step = -1;
};

struct RunResult {
  std::map<size_t, std::vector<int32_t>> tokens;
  std::map<size_t, FinishReason> finish;
  EngineMetrics metrics;
};

RunResult run(Model& model, const SchedulerConfig& sc, const std::vector<Job>& jobs) {
  auto made = make_engine(model, sc);
  Engine& engine = *made;
  RunResult out;
  std::map<size_t, RequestId> ids;
  size_t next = 0;
  for (int step = 0; step < 5000; ++step) {
    for (; next < jobs.size() && jobs[next].arrival_step <= step; ++next) {
      const size_t j = next;
      auto id = engine.submit(jobs[j].request, [&out, j](const TokenEvent& e) {
        if (e.token >= 0) out.tokens[j].push_back(e.token);
        if (e.finish != FinishReason::None) out.finish[j] = e.finish;
      });
      EXPECT_TRUE(id) << id.status().message();
      ids[j] = id.value();
    }
    for (size_t j = 0; j < next; ++j) {
      if (jobs[j].cancel_step == step) engine.cancel(ids[j]);
    }
    if (!engine.step() && next == jobs.size() && engine.idle()) break;
  }
  out.metrics = engine.metrics();
  return out;
}

}  // namespace

TEST(Engine, ConcurrentRequestsEqualSoloRunsUnderRandomLoads) {
  TANDEM_REQUIRE_FIXTURES();
  for (const char* name : {"tiny-qwen3moe-bf16", "tiny-dsv3-bf16"}) {
    Fixture f = load_fixture(name);
    std::mt19937 rng(7);
    const std::vector<int32_t> shared_prefix{100, 200, 300, 400, 500, 600, 700, 800, 900};
    for (int trial = 0; trial < 2; ++trial) {
      SchedulerConfig sc;
      sc.page_size = 1 + static_cast<int>(rng() % 8);
      sc.max_batch_size = 1 + static_cast<int>(rng() % 5);
      sc.chunk_size = sc.max_batch_size + static_cast<int>(rng() % 20);
      sc.cache_tokens = sc.page_size * (8 + static_cast<int>(rng() % 12));
      std::vector<Job> jobs;
      int arrival = 0;
      for (int j = 0; j < 7; ++j) {
        Job job;
        if (rng() % 2) job.request.prompt = shared_prefix;
        const int extra = 1 + static_cast<int>(rng() % 12);
        for (int i = 0; i < extra; ++i) job.request.prompt.push_back(static_cast<int32_t>(rng() % 5000));
        const int64_t room = std::min<int64_t>(sc.cache_tokens, 48) - static_cast<int64_t>(job.request.prompt.size());
        job.request.max_new_tokens = 1 + static_cast<int64_t>(rng() % static_cast<uint32_t>(std::max<int64_t>(room, 1)));
        if (rng() % 2) job.request.sampling = {.temperature = 0.9f, .top_p = 0.95f, .seed = rng()};
        arrival += static_cast<int>(rng() % 3);
        job.arrival_step = arrival;
        if (rng() % 5 == 0) job.cancel_step = arrival + static_cast<int>(rng() % 6);
        jobs.push_back(job);
      }
      const RunResult together = run(*f.model, sc, jobs);
      EXPECT_EQ(together.metrics.scheduler.pages_used, 0) << name << " trial " << trial << ": pages leaked";
      for (size_t j = 0; j < jobs.size(); ++j) {
        Job solo_job = jobs[j];
        solo_job.arrival_step = 0;
        solo_job.cancel_step = -1;
        SchedulerConfig solo_sc{.cache_tokens = 512, .page_size = 16, .max_batch_size = 1, .chunk_size = 512};
        const RunResult solo = run(*f.model, solo_sc, {solo_job});
        if (together.finish.at(j) == FinishReason::Cancelled) {
          const auto& got = together.tokens.count(j) ? together.tokens.at(j) : std::vector<int32_t>();
          ASSERT_LE(got.size(), solo.tokens.at(0).size());
          EXPECT_TRUE(std::equal(got.begin(), got.end(), solo.tokens.at(0).begin())) << name << " request " << j;
          continue;
        }
        EXPECT_EQ(together.tokens.at(j), solo.tokens.at(0)) << name << " trial " << trial << " request " << j;
        EXPECT_EQ(together.finish.at(j), FinishReason::Length);
      }
    }
  }
}

TEST(Engine, StopTokenEndsTheRequestAndCancelFreesPagesAtOnce) {
  TANDEM_REQUIRE_FIXTURES();
  Fixture f = load_fixture("tiny-qwen3moe-bf16", 1);
  GenerationRequest probe;
  probe.prompt = {1, 2, 3, 4};
  probe.max_new_tokens = 4;
  const RunResult first = run(*f.model, {.cache_tokens = 64, .page_size = 4}, {{probe}});
  ASSERT_EQ(first.tokens.at(0).size(), 4u);
  // Using the third generated token as a stop token ends generation right after it.
  GenerationRequest stopped = probe;
  stopped.max_new_tokens = 20;
  stopped.stop_token_ids = {first.tokens.at(0)[2]};
  const RunResult second = run(*f.model, {.cache_tokens = 64, .page_size = 4}, {{stopped}});
  EXPECT_EQ(second.finish.at(0), FinishReason::Stop);
  EXPECT_LE(second.tokens.at(0).size(), 3u);

  auto made = make_engine(*f.model, {.cache_tokens = 64, .page_size = 4});
  Engine& engine = *made;
  GenerationRequest longer = probe;
  longer.max_new_tokens = 40;
  FinishReason finish = FinishReason::None;
  auto id = engine.submit(longer, [&](const TokenEvent& e) { finish = e.finish; });
  ASSERT_TRUE(id);
  engine.step();
  engine.step();
  EXPECT_GT(engine.metrics().scheduler.pages_used, 0);
  engine.cancel(id.value());
  engine.step();
  EXPECT_EQ(finish, FinishReason::Cancelled);
  EXPECT_EQ(engine.metrics().scheduler.pages_used, 0);
}

TEST(Engine, RejectsRequestsThatCannotFit) {
  TANDEM_REQUIRE_FIXTURES();
  Fixture f = load_fixture("tiny-qwen3moe-bf16", 1);
  auto made = make_engine(*f.model, {.cache_tokens = 64, .page_size = 4});
  Engine& engine = *made;
  GenerationRequest r;
  r.prompt = std::vector<int32_t>(60, 5);
  r.max_new_tokens = 10;
  auto id = engine.submit(r, [](const TokenEvent&) {});
  ASSERT_FALSE(id);
  EXPECT_NE(id.status().message().find("cache_lens"), std::string::npos);
  r.prompt = {999999999};
  r.max_new_tokens = 1;
  EXPECT_FALSE(engine.submit(r, [](const TokenEvent&) {}));
}

TEST(Engine, AFailedStepFailsOnlyItsRequestsAndTheEngineGoesOn) {
  TANDEM_REQUIRE_FIXTURES();
  const auto dir = testing::fixture_model_dir("tiny-dsv3-q4km");
  auto clean = testing::load_model(dir / "model.gguf", dir, 2);
  ASSERT_TRUE(clean);
  // One failure in the backend (the 3rd attention call) and one in the expert runner (its 40th job).
  for (const FaultPlan& plan : {FaultPlan{"attention", 3}, FaultPlan{"experts", 40}}) {
    auto faulty = testing::load_model(dir / "model.gguf", dir, 2, testing::ExpertPath::Runner, Placement(), &plan);
    ASSERT_TRUE(faulty);
    auto made = make_engine(*faulty->model, {.cache_tokens = 256, .page_size = 4, .max_batch_size = 2, .chunk_size = 8});
    Engine& engine = *made;
    std::map<RequestId, std::vector<int32_t>> tokens;
    std::map<RequestId, TokenEvent> last;
    auto submit = [&](std::vector<int32_t> prompt) {
      GenerationRequest r;
      r.prompt = std::move(prompt);
      r.max_new_tokens = 6;
      auto id = engine.submit(r, [&tokens, &last](const TokenEvent& e) {
        if (e.token >= 0) tokens[e.id].push_back(e.token);
        if (e.finish != FinishReason::None) last[e.id] = e;
      });
      EXPECT_TRUE(id);
      return id.value();
    };
    std::vector<RequestId> ids;
    for (int i = 0; i < 6; ++i) ids.push_back(submit({11 + i, 22, 33 + 5 * i, 44, 55, 66, 77 + i, 88, 99}));
    while (engine.step()) {
    }
    const EngineMetrics m = engine.metrics();
    EXPECT_EQ(m.failed_steps, 1) << plan.op;
    EXPECT_EQ(m.scheduler.pages_used, 0) << plan.op << ": pages leaked";
    int failed = 0;
    for (RequestId id : ids) {
      ASSERT_TRUE(last.count(id)) << "request " << id << " never finished";
      if (last[id].finish == FinishReason::Error) {
        ++failed;
        EXPECT_NE(last[id].error.find("injected fault"), std::string::npos) << last[id].error;
        continue;
      }
      // Every request that did not share the failed step is exactly what it is alone.
      auto solo = make_engine(*clean->model, {.cache_tokens = 256, .page_size = 4, .max_batch_size = 1, .chunk_size = 8});
      GenerationRequest r;
      r.prompt = {11 + static_cast<int>(id - ids[0]), 22, 33 + 5 * static_cast<int>(id - ids[0]), 44, 55, 66,
                  77 + static_cast<int>(id - ids[0]), 88, 99};
      r.max_new_tokens = 6;
      std::vector<int32_t> want;
      ASSERT_TRUE(solo->submit(r, [&want](const TokenEvent& e) { if (e.token >= 0) want.push_back(e.token); }));
      while (solo->step()) {
      }
      EXPECT_EQ(tokens[id], want) << plan.op << " request " << id;
    }
    EXPECT_GE(failed, 1) << plan.op;
    EXPECT_LE(failed, 2) << plan.op << ": only the failed step's requests (at most max_batch_size) may fail";
  }
}

}  // namespace tandem
