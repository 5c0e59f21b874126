// GenerationSession: one API request's generation, from token ids to text deltas.
//
// It submits the prompt to the Engine, receives token events on the engine thread and queues them; the
// HTTP thread calls next() to take the text produced so far (detokenized incrementally, cut at stop
// strings, split into reasoning and content for chat). When a stop string is seen the engine request is
// cancelled at once. With tool parsing on (SessionOptions::tool_syntax), the content goes through a
// ToolCallParser (tool_calls.h): calls come out as fragments, the text outside them as content, and the
// detokenizer keeps the syntax's control-token markers for it (they never reach content or reasoning); once
// max_tool_calls calls have ended the engine request is cancelled, and a request that ends by a stop after calls
// finishes with "tool_calls". cancel() (a client that went away, or shutdown) cancels it too; a request cut by
// shutdown finishes with cut_by_shutdown instead of a finish_reason. Thread-safe between the engine
// thread (producer) and one consumer thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/reasoning_splitter.h"
#include "server/tool_calls.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tandem::server {

struct TokenLogprobInfo {
  std::string token;   // the token's text (decoded piece)
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;  // alternatives, best first
};

// Text produced since the last next() call.
struct GenerationDelta {
  std::string reasoning;
  std::string content;
  std::vector<TokenLogprobInfo> logprobs;
  std::vector<ToolCallFragment> tool_calls;  // fragments of tool calls (tool parsing on)
  bool finished = false;
  std::string finish_reason;  // "stop" | "length" | "tool_calls" when finished
  std::string error;          // set when generation failed on the server (finished, no finish_reason)
  bool cut_by_shutdown = false;  // cancelled because the server is shutting down (finished, no finish_reason)
};

// Why a request is cancelled before it finishes: the client went away, or the server is shutting down
// (the client is still there and must learn that its output was cut).
enum class CancelReason { ClientGone, Shutdown };

struct SessionOptions {
  GenerationRequest request;
  std::vector<std::string> stop_strings;
  bool split_reasoning = false;     // chat: separate <think> blocks
  bool starts_in_reasoning = false; // the prompt opened a <think> block
  bool logprobs = false;
  std::optional<ToolCallSyntax> tool_syntax;  // parse tool calls written in this syntax
  size_t max_tool_calls = SIZE_MAX;            // 1 for parallel_tool_calls: false
};

class GenerationSession : public std::enable_shared_from_this<GenerationSession> {
 public:
  // Submits to the engine; fails with the engine's reason (e.g. the prompt does not fit).
  static Result<std::shared_ptr<GenerationSession>> start(Engine& engine, std::shared_ptr<const Tokenizer> tokenizer,
                                                          SessionOptions options);
  // Waits up to `timeout` for new output; returns what is there (possibly empty, not finished).
  GenerationDelta next(std::chrono::milliseconds timeout);
  void cancel(CancelReason reason = CancelReason::ClientGone);

  int64_t prompt_tokens() const { return prompt_tokens_; }
  int64_t completion_tokens() const;
  double seconds_to_first_token() const;  // -1 before the first token

 private:
  GenerationSession(Engine& engine, std::shared_ptr<const Tokenizer> tokenizer, SessionOptions options);
  void on_event(const TokenEvent& event);

  Engine& engine_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  SessionOptions options_;
  Detokenizer detokenizer_;
  ReasoningSplitter splitter_;
  std::optional<ToolCallParser> tool_parser_;
  std::optional<MarkerStripper> reasoning_stripper_;  // the syntax's markers out of reasoning
  RequestId id_ = 0;
  int64_t prompt_tokens_ = 0;
  std::chrono::steady_clock::time_point started_;

  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<TokenEvent> events_;       // guarded by mutex_
  bool engine_done_ = false;             // guarded by mutex_
  int64_t generated_ = 0;                // guarded by mutex_
  double first_token_seconds_ = -1;      // guarded by mutex_
  std::atomic<bool> finished_{false};    // set by the consumer
  std::atomic<bool> cancelled_{false};   // cancel() may come from another thread (shutdown)
  std::atomic<bool> shutdown_cancel_{false};  // set before the engine is told, read when its event comes
};

}  // namespace tandem::server
