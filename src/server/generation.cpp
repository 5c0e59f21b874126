#include "server/generation.h"

namespace tandem::server {

GenerationSession::GenerationSession(Engine& engine, std::shared_ptr<const Tokenizer> tokenizer, SessionOptions options)
    : engine_(engine),
      tokenizer_(std::move(tokenizer)),
      options_(std::move(options)),
      detokenizer_(tokenizer_, options_.stop_strings, /*skip_special=*/true,
                   options_.tool_syntax ? options_.tool_syntax->special_ids : std::vector<int32_t>{}),
      splitter_(options_.starts_in_reasoning),
      started_(std::chrono::steady_clock::now()) {
  if (options_.tool_syntax) {
    tool_parser_.emplace(*options_.tool_syntax, options_.max_tool_calls);
    if (!options_.tool_syntax->special_texts.empty()) reasoning_stripper_.emplace(options_.tool_syntax->special_texts);
  }
}

Result<std::shared_ptr<GenerationSession>> GenerationSession::start(Engine& engine,
                                                                    std::shared_ptr<const Tokenizer> tokenizer,
                                                                    SessionOptions options) {
  std::shared_ptr<GenerationSession> s(new GenerationSession(engine, std::move(tokenizer), std::move(options)));
  s->prompt_tokens_ = static_cast<int64_t>(s->options_.request.prompt.size());
  if (s->options_.logprobs) s->options_.request.top_logprobs = std::max(1, s->options_.request.top_logprobs);
  std::weak_ptr<GenerationSession> weak = s;
  auto id = engine.submit(s->options_.request, [weak](const TokenEvent& e) {
    if (auto session = weak.lock()) session->on_event(e);
  });
  if (!id) return id.status();
  s->id_ = id.value();
  return s;
}

void GenerationSession::on_event(const TokenEvent& event) {
  {
    std::lock_guard lock(mutex_);
    if (event.token >= 0) {
      ++generated_;
      if (first_token_seconds_ < 0) {
        first_token_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
      }
    }
    if (event.finish != FinishReason::None) engine_done_ = true;
    events_.push_back(event);
  }
  ready_.notify_all();
}

int64_t GenerationSession::completion_tokens() const {
  std::lock_guard lock(mutex_);
  return generated_;
}

double GenerationSession::seconds_to_first_token() const {
  std::lock_guard lock(mutex_);
  return first_token_seconds_;
}

void GenerationSession::cancel(CancelReason reason) {
  if (finished_ || cancelled_.exchange(true)) return;
  shutdown_cancel_ = reason == CancelReason::Shutdown;
  engine_.cancel(id_);
}

GenerationDelta GenerationSession::next(std::chrono::milliseconds timeout) {
  GenerationDelta out;
  if (finished_) {
    out.finished = true;
    return out;
  }
  std::deque<TokenEvent> events;
  {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, timeout, [&] { return !events_.empty(); });
    events.swap(events_);
  }
  std::string text;
  FinishReason finish = FinishReason::None;
  std::string error;
  for (const TokenEvent& e : events) {
    if (e.finish == FinishReason::Error) error = e.error;
    if (e.token >= 0 && !detokenizer_.stopped()) {
      text += detokenizer_.push(e.token);
      if (options_.logprobs) {
        TokenLogprobInfo info{tokenizer_->token_piece(e.token), e.logprob, {}};
        for (const auto& alt : e.top_logprobs) info.top.emplace_back(tokenizer_->token_piece(alt.token), alt.logprob);
        out.logprobs.push_back(std::move(info));
      }
    }
    if (e.finish != FinishReason::None) finish = e.finish;
  }
  const bool hit_stop_string = detokenizer_.stopped();
  if (hit_stop_string && finish == FinishReason::None) {
    engine_.cancel(id_);  // nothing after a stop string is wanted
    finish = FinishReason::Stop;
  }
  if (finish != FinishReason::None && !hit_stop_string) text += detokenizer_.finish();
  std::string reasoning, content;
  if (options_.split_reasoning) {
    ReasoningSplitter::Delta d = splitter_.push(text);
    if (finish != FinishReason::None) {
      ReasoningSplitter::Delta tail = splitter_.finish();
      d.reasoning += tail.reasoning;
      d.content += tail.content;
    }
    reasoning = std::move(d.reasoning);
    content = std::move(d.content);
  } else {
    content = std::move(text);
  }
  bool saturated = false;
  if (tool_parser_) {
    ToolParseDelta t = tool_parser_->push(content);
    if (tool_parser_->saturated() && finish == FinishReason::None) {
      engine_.cancel(id_);  // the last call allowed has ended: what follows is not wanted
      finish = FinishReason::Stop;
      saturated = true;
    }
    if (finish != FinishReason::None) {
      ToolParseDelta tail = tool_parser_->finish();
      t.content += tail.content;
      t.fragments.insert(t.fragments.end(), tail.fragments.begin(), tail.fragments.end());
    }
    content = std::move(t.content);
    out.tool_calls = std::move(t.fragments);
    if (reasoning_stripper_) {
      reasoning = reasoning_stripper_->push(reasoning);
      if (finish != FinishReason::None) reasoning += reasoning_stripper_->finish();
    }
  }
  out.reasoning = std::move(reasoning);
  out.content = std::move(content);
  if (finish != FinishReason::None) {
    finished_ = true;
    out.finished = true;
    // A request cancelled because of a stop string (or its last allowed tool call) ends with "stop"; otherwise the
    // engine's reason. A stop after tool calls is "tool_calls".
    out.finish_reason = hit_stop_string || saturated || finish == FinishReason::Stop ? "stop" : "length";
    if (out.finish_reason == "stop" && tool_parser_ && tool_parser_->calls_begun() > 0) out.finish_reason = "tool_calls";
    if (finish == FinishReason::Error) {
      out.finish_reason.clear();
      out.error = error.empty() ? "generation failed" : error;
    } else if (finish == FinishReason::Cancelled && !hit_stop_string && shutdown_cancel_) {
      out.finish_reason.clear();  // neither a stop nor the length limit: the output was cut
      out.cut_by_shutdown = true;
    }
  }
  return out;
}

}  // namespace tandem::server
