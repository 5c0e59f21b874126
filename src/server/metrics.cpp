#include "server/metrics.h"

#include <algorithm>

#include <fmt/format.h>

namespace tandem::server {

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const size_t bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  std::lock_guard lock(mutex_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::render(const std::string& name, const std::string& help, std::string& out) const {
  std::lock_guard lock(mutex_);
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  cumulative += counts_.back();
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, cumulative, name, sum_, name, count_);
}

namespace {
const std::vector<double> kLatencyBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
const std::vector<double> kTokenBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

void gauge(std::string& out, const char* name, const char* help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", name, help, name, name, value);
}
void counter(std::string& out, const char* name, const char* help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name, value);
}
}  // namespace

ServerMetrics::ServerMetrics()
    : time_to_first_token(kLatencyBuckets), time_per_output_token(kTokenBuckets), request_duration(kLatencyBuckets) {}

std::string ServerMetrics::render(const EngineMetrics& e) const {
  std::string out;
  const SchedulerMetrics& s = e.scheduler;
  gauge(out, "tandem_requests_running", "Requests holding KV pages (prefilling or decoding)", s.running);
  gauge(out, "tandem_requests_waiting", "Requests queued for admission", s.waiting);
  gauge(out, "tandem_requests_in_flight", "HTTP generation requests being served", static_cast<double>(in_flight.load()));
  gauge(out, "tandem_kv_pages_total", "KV cache pages in the pool", s.pages_total);
  gauge(out, "tandem_kv_pages_used", "KV cache pages referenced by requests", s.pages_used);
  gauge(out, "tandem_kv_pages_free", "KV cache pages free", s.pages_free);
  gauge(out, "tandem_kv_pages_cached", "Unreferenced KV pages kept for prefix reuse", s.pages_cached);
  counter(out, "tandem_prompt_tokens_total", "Prompt tokens of accepted requests", static_cast<double>(s.prompt_tokens));
  counter(out, "tandem_generation_tokens_total", "Generated tokens", static_cast<double>(s.generated_tokens));
  counter(out, "tandem_prefix_cache_hit_tokens_total", "Prompt tokens served from cached prefix pages",
          static_cast<double>(s.prefix_hit_tokens));
  counter(out, "tandem_preemptions_total", "Requests preempted to free KV pages", static_cast<double>(s.preemptions));
  counter(out, "tandem_engine_steps_total", "Engine steps", static_cast<double>(s.steps));
  counter(out, "tandem_step_seconds_total", "Time in forward passes", e.forward_seconds);
  counter(out, "tandem_step_expert_seconds_total", "Time the CPU expert runner computed (overlaps forward passes)",
          e.expert_seconds);
  counter(out, "tandem_step_expert_wait_seconds_total", "Forward-pass time blocked waiting for the CPU expert runner",
          e.expert_wait_seconds);
  counter(out, "tandem_step_device_busy_seconds_total",
          "Time the main device (GPU) ran queued work during forward passes (0 for the CPU backend)", e.device_seconds);
  counter(out, "tandem_requests_ok_total", "Generation requests completed", static_cast<double>(requests_ok.load()));
  counter(out, "tandem_requests_client_error_total", "Requests answered with a 4xx", static_cast<double>(requests_client_error.load()));
  counter(out, "tandem_requests_rejected_busy_total", "Requests refused because the queue was full (503)",
          static_cast<double>(requests_rejected_busy.load()));
  counter(out, "tandem_requests_disconnected_total", "Streaming requests whose client went away",
          static_cast<double>(requests_disconnected.load()));
  counter(out, "tandem_requests_server_error_total", "Requests whose generation failed on the server",
          static_cast<double>(requests_server_error.load()));
  counter(out, "tandem_engine_failed_steps_total", "Engine steps whose forward pass failed",
          static_cast<double>(e.failed_steps));
  time_to_first_token.render("tandem_time_to_first_token_seconds", "Time from request to first generated token", out);
  time_per_output_token.render("tandem_time_per_output_token_seconds", "Mean time between generated tokens per request", out);
  request_duration.render("tandem_request_duration_seconds", "Time from request to last token", out);
  return out;
}

}  // namespace tandem::server
