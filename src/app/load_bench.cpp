#include "app/load_bench.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "engine/engine.h"

namespace tandem::app {

namespace {

using Clock = std::chrono::steady_clock;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(rank);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

struct Timing {
  Clock::time_point submitted, first, last;
  int64_t tokens = 0;
};

LevelResult run_level(const Runtime& runtime, const LoadBenchOptions& o, int concurrency,
                      const std::function<void(const std::string&)>& progress) {
  SchedulerConfig sc;
  sc.max_batch_size = concurrency;
  sc.chunk_size = std::max(o.chunk_size, concurrency);
  sc.page_size = o.page_size;
  const int64_t per_request = o.prompt_len + o.gen_len;
  sc.cache_tokens = (int64_t{concurrency} * ((per_request + o.page_size - 1) / o.page_size) + 1) * o.page_size;
  sc.prefix_caching = false;  // distinct random prompts: measure the engine, not the cache
  auto made = runtime.make_engine(sc);
  if (!made) throw std::runtime_error(made.status().message());
  Engine& engine = *made.value();
  const Model& model = *runtime.model;

  std::mutex mu;
  std::condition_variable done_cv;
  double decode_seconds = 0, prefill_seconds = 0, forward_seconds = 0, expert_seconds = 0, expert_wait_seconds = 0,
         device_seconds = 0;
  int64_t decode_tokens = 0, prefill_tokens = 0, decode_expert_jobs = 0, decode_experts_read = 0;
  engine.set_step_observer([&](const StepStats& s) {
    std::lock_guard lock(mu);
    forward_seconds += s.seconds;
    expert_seconds += s.expert_seconds;
    expert_wait_seconds += s.expert_wait_seconds;
    device_seconds += s.device_seconds;
    if (s.prefill_tokens == 0) {
      decode_seconds += s.seconds;
      decode_tokens += s.decode_tokens;
      decode_expert_jobs += s.expert_jobs;
      decode_experts_read += s.experts_read;
    } else {
      prefill_seconds += s.seconds;
      prefill_tokens += s.prefill_tokens;
    }
  });

  std::mt19937_64 rng(o.seed + static_cast<uint64_t>(concurrency));
  const int vocab = model.config().n_vocab;
  std::vector<int32_t> shared_prompt(static_cast<size_t>(o.same_prompt ? o.prompt_len : 0));
  for (auto& t : shared_prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
  std::vector<Timing> timings(static_cast<size_t>(o.requests));
  int submitted = 0, finished = 0;
  std::function<void()> submit_next;  // called with mu held
  submit_next = [&] {
    const int index = submitted++;
    GenerationRequest r;
    if (o.same_prompt) {
      r.prompt = shared_prompt;
    } else {
      r.prompt.resize(static_cast<size_t>(o.prompt_len));
      for (auto& t : r.prompt) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab));
    }
    r.max_new_tokens = o.gen_len;
    timings[static_cast<size_t>(index)].submitted = Clock::now();
    auto id = engine.submit(std::move(r), [&, index](const TokenEvent& e) {
      std::lock_guard lock(mu);
      Timing& t = timings[static_cast<size_t>(index)];
      const auto now = Clock::now();
      if (t.tokens++ == 0) t.first = now;
      t.last = now;
      if (e.finish != FinishReason::None) {
        ++finished;
        if (o.arrival_rate <= 0 && submitted < o.requests) submit_next();
        done_cv.notify_all();
      }
    });
    if (!id) throw std::runtime_error(id.status().message());
  };

  const auto started = Clock::now();
  engine.start();
  {
    std::unique_lock lock(mu);
    if (o.arrival_rate <= 0) {
      while (submitted < std::min(concurrency, o.requests)) submit_next();
    }
  }
  if (o.arrival_rate > 0) {
    std::exponential_distribution<double> gap(o.arrival_rate);
    for (int i = 0; i < o.requests; ++i) {
      {
        std::lock_guard lock(mu);
        submit_next();
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(gap(rng)));
    }
  }
  {
    std::unique_lock lock(mu);
    while (finished < o.requests) {
      done_cv.wait_for(lock, std::chrono::milliseconds(500));
      const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
      if (progress) {
        progress(fmt::format("concurrency {}: {}/{} requests done, {:.1f} decode tok/s, {:.0f} s", concurrency,
                             finished, o.requests, decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0.0,
                             elapsed));
      }
    }
  }
  engine.stop();

  LevelResult r;
  r.concurrency = concurrency;
  r.requests = o.requests;
  r.wall_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  r.decode_tokens_per_s = decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0;
  r.prefill_tokens_per_s = prefill_seconds > 0 ? static_cast<double>(prefill_tokens) / prefill_seconds : 0;
  std::vector<double> ttft, tpot;
  int64_t generated = 0;
  for (const Timing& t : timings) {
    generated += t.tokens;
    ttft.push_back(std::chrono::duration<double, std::milli>(t.first - t.submitted).count());
    if (t.tokens > 1) {
      tpot.push_back(std::chrono::duration<double, std::milli>(t.last - t.first).count() / static_cast<double>(t.tokens - 1));
    }
  }
  r.output_tokens_per_s = static_cast<double>(generated) / r.wall_seconds;
  r.ttft_p50_ms = percentile(ttft, 0.5);
  r.ttft_p99_ms = percentile(ttft, 0.99);
  r.tpot_p50_ms = percentile(tpot, 0.5);
  r.tpot_p99_ms = percentile(tpot, 0.99);
  r.expert_share = forward_seconds > 0 ? expert_seconds / forward_seconds : 0;
  r.expert_wait_share = forward_seconds > 0 ? expert_wait_seconds / forward_seconds : 0;
  if (forward_seconds > 0 && device_seconds > 0) r.device_share = device_seconds / forward_seconds;
  if (decode_expert_jobs > 0) {
    r.experts_per_layer = static_cast<double>(decode_experts_read) / static_cast<double>(decode_expert_jobs);
  }
  return r;
}

}  // namespace

std::vector<LevelResult> run_load_bench(const Runtime& runtime, const LoadBenchOptions& options,
                                        const std::function<void(const std::string&)>& progress) {
  std::vector<LevelResult> results;
  for (int c : options.concurrency) results.push_back(run_level(runtime, options, c, progress));
  return results;
}

nlohmann::json to_json(const std::vector<LevelResult>& results, const LoadBenchOptions& o) {
  nlohmann::json levels = nlohmann::json::array();
  for (const LevelResult& r : results) {
    levels.push_back({{"concurrency", r.concurrency}, {"requests", r.requests}, {"wall_seconds", r.wall_seconds},
                      {"decode_tokens_per_s", r.decode_tokens_per_s}, {"prefill_tokens_per_s", r.prefill_tokens_per_s},
                      {"output_tokens_per_s", r.output_tokens_per_s}, {"ttft_ms_p50", r.ttft_p50_ms},
                      {"ttft_ms_p99", r.ttft_p99_ms}, {"tpot_ms_p50", r.tpot_p50_ms}, {"tpot_ms_p99", r.tpot_p99_ms},
                      {"expert_share", r.expert_share}, {"expert_wait_share", r.expert_wait_share},
                      {"device_share", r.device_share >= 0 ? nlohmann::json(r.device_share) : nlohmann::json()},
                      {"experts_per_layer",
                       r.experts_per_layer >= 0 ? nlohmann::json(r.experts_per_layer) : nlohmann::json()}});
  }
  return {{"prompt_len", o.prompt_len}, {"gen_len", o.gen_len}, {"requests_per_level", o.requests},
          {"same_prompt", o.same_prompt},
          {"arrival_rate", o.arrival_rate}, {"levels", levels}};
}

std::string to_table(const std::vector<LevelResult>& results) {
  std::string out = fmt::format(
      "{:>5} {:>8} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}\n", "conc", "requests",
      "decode tok/s", "prefill t/s", "output t/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "experts", "wait",
      "gpu", "exp/L");
  const double base = results.empty() ? 0 : results.front().decode_tokens_per_s;
  for (const LevelResult& r : results) {
    out += fmt::format("{:>5} {:>8} {:>12.2f} {:>12.1f} {:>12.2f} {:>8.0f}ms {:>8.0f}ms {:>8.1f}ms {:>8.1f}ms {:>7.0f}% {:>7.0f}%", r.concurrency,
                       r.requests, r.decode_tokens_per_s, r.prefill_tokens_per_s, r.output_tokens_per_s, r.ttft_p50_ms,
                       r.ttft_p99_ms, r.tpot_p50_ms, r.tpot_p99_ms, 100 * r.expert_share, 100 * r.expert_wait_share);
    out += r.device_share >= 0 ? fmt::format(" {:>7.0f}%", 100 * r.device_share) : fmt::format(" {:>8}", "-");
    out += r.experts_per_layer >= 0 ? fmt::format(" {:>8.1f}", r.experts_per_layer) : fmt::format(" {:>8}", "-");
    if (base > 0) out += fmt::format("  (decode x{:.2f})", r.decode_tokens_per_s / base);
    out += "\n";
  }
  return out;
}

}  // namespace tandem::app
