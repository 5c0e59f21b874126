// Prometheus metrics of the server: the engine's gauges and counters plus request latency histograms,
// rendered in the Prometheus text exposition format (version 0.0.4). Thread-safe.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace tandem::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // Appends the _bucket/_sum/_count lines of metric `name`.
  void render(const std::string& name, const std::string& help, std::string& out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  Histogram time_to_first_token;   // seconds
  Histogram time_per_output_token; // seconds
  Histogram request_duration;      // seconds
  std::atomic<uint64_t> requests_ok{0};
  std::atomic<uint64_t> requests_client_error{0};
  std::atomic<uint64_t> requests_rejected_busy{0};
  std::atomic<uint64_t> requests_disconnected{0};
  std::atomic<uint64_t> requests_server_error{0};  // generation failed (an engine step failed)
  std::atomic<int64_t> in_flight{0};

  std::string render(const EngineMetrics& engine) const;
};

}  // namespace tandem::server
