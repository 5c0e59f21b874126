// Engine: serves many generation requests at once on one model, one forward pass per step.
//
// Each step asks the Scheduler which tokens to run (decodes and prefill chunks of several requests),
// runs them as one flat ForwardBatch, samples the next token of every request whose known tokens are
// all computed, and reports it through the request's callback. submit() and cancel() may be called from
// any thread; steps run either on a background thread (start()) or on the caller's (step(), for tests
// and batch jobs). Callbacks run on the stepping thread, outside the engine's lock: they may call
// cancel() but must not block; one that throws is logged and ignored. A cancelled request gets a final
// event with FinishReason::Cancelled and its pages are freed before the next step is planned.
//
// Engine::create() builds the paged KV cache and the step buffers on the model's main backend once, sized
// from the scheduler's limits; steps then allocate no device memory. A step whose forward pass fails (a
// backend or expert-runner error) fails the requests of that step only: each gets a final event with
// FinishReason::Error and the message, its pages are released, and the engine goes on with the others.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "engine/sampler.h"
#include "kvcache/paged_kv_cache.h"
#include "model/model.h"
#include "scheduler/scheduler.h"

namespace tandem {

enum class FinishReason { None, Stop, Length, Cancelled, Error };
const char* to_string(FinishReason reason);

struct GenerationRequest {
  std::vector<int32_t> prompt;
  SamplingParams sampling;
  int64_t max_new_tokens = 256;
  std::vector<int32_t> stop_token_ids;  // generation ends after emitting one of these
  int top_logprobs = 0;                 // alternatives reported per token
  bool return_prompt_logits = false;    // the first event carries the logits it was sampled from
  // Constrained decoding (optional): the sampler masks the tokens it forbids at every step (core/token_constraint.h).
  // It must allow the stop tokens where the output may end; a token it refuses ends the request with an error.
  std::shared_ptr<TokenConstraint> constraint = nullptr;
};

struct TokenEvent {
  RequestId id = 0;
  int32_t token = -1;            // -1 on a cancellation event
  float logprob = 0.0f;
  std::vector<Sampler::TokenLogprob> top_logprobs{};
  std::vector<float> logits{};   // [n_vocab], first event only, when asked for
  FinishReason finish = FinishReason::None;  // set on the request's last event
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  std::string error{};  // FinishReason::Error: what failed
};
using TokenCallback = std::function<void(const TokenEvent&)>;

struct EngineConfig {
  SchedulerConfig scheduler;
  // Prompts of at least this many tokens run their prefill's routed experts on the main device with streamed
  // weights (layerwise prefill), where the model can (Model::streams_experts()); 0: never.
  int64_t stream_experts_min_prompt = 0;
};

// What one step did, for observers (benchmarks, latency histograms).
struct StepStats {
  double seconds = 0;              // the forward pass
  double expert_seconds = 0;       // time the ExpertRunner computed during it (overlaps other work)
  double expert_wait_seconds = 0;  // time the forward pass was blocked waiting for the ExpertRunner
  double device_seconds = 0;       // time the main backend's device was busy (Backend::busy_seconds; 0 on the CPU)
  int64_t expert_jobs = 0;         // MoE layers the ExpertRunner computed in it
  int64_t experts_read = 0;        // distinct experts those jobs read, summed over the jobs
  int64_t prefill_tokens = 0;
  int64_t decode_tokens = 0;
  int n_requests = 0;
};
using StepObserver = std::function<void(const StepStats&)>;

struct EngineMetrics {
  SchedulerMetrics scheduler;
  double forward_seconds = 0;       // all forward passes
  double expert_seconds = 0;        // ExpertRunner compute time (overlaps the forward passes)
  double expert_wait_seconds = 0;   // forward time blocked on the ExpertRunner
  double device_seconds = 0;        // main device busy time (0 on the CPU: its busy time is the forward time)
  int64_t batch_tokens = 0;         // tokens run in all steps
  int64_t failed_steps = 0;         // steps whose forward pass failed
};

class Engine {
 public:
  // Fails when the KV cache or the step buffers do not fit on the model's devices.
  static Result<std::unique_ptr<Engine>> create(Model& model, const EngineConfig& config);
  ~Engine();

  // Queues a request; fails (nothing queued) if it can never run. Thread-safe.
  Result<RequestId> submit(GenerationRequest request, TokenCallback on_token);
  void cancel(RequestId id);  // thread-safe; unknown or finished ids are ignored
  // Runs one step on the calling thread; false when there was nothing to do. Not with start().
  bool step();
  void start();  // runs steps on a background thread until stop()
  void stop();   // returns after the current step; queued requests stay queued
  bool idle() const;
  // Called after every step on the stepping thread. Set before start().
  void set_step_observer(StepObserver observer) { observer_ = std::move(observer); }
  EngineMetrics metrics() const;
  const Model& model() const { return model_; }

 private:
  struct Active {
    GenerationRequest request;
    Sampler sampler;
    TokenCallback on_token;
    int64_t generated = 0;
  };
  Engine(Model& model, const EngineConfig& config);
  Status record_decode_steps();  // at creation, on a backend that records runs
  void loop();
  static void deliver(std::vector<std::pair<TokenCallback, TokenEvent>>& events);
  void fail_step(const StepPlan& plan, const Status& status, std::vector<std::pair<TokenCallback, TokenEvent>>& events);

  Model& model_;
  std::unique_ptr<PagedKvCache> cache_;
  StepBuffersPtr buffers_;
  ForwardBatch batch_;         // reused every step
  int64_t stream_min_prompt_;  // EngineConfig::stream_experts_min_prompt, 0 when the model cannot stream
  std::vector<int32_t> last_token_;  // per plan entry: the batch index of its last token (reused every step)
  std::vector<float> logits_;  // [max_batch_size, n_vocab], reused every step
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  Scheduler scheduler_;                          // guarded by mutex_
  std::map<RequestId, std::unique_ptr<Active>> active_;  // guarded by mutex_
  std::vector<RequestId> pending_cancels_;        // guarded by mutex_
  RequestId next_id_ = 1;
  EngineMetrics totals_;                          // guarded by mutex_
  StepObserver observer_;
  std::thread thread_;
  bool stopping_ = false;
  std::mutex step_mutex_;                         // one step at a time
};

}  // namespace tandem
