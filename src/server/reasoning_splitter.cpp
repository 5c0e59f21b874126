#include "server/reasoning_splitter.h"

#include <algorithm>

namespace tandem::server {

namespace {
constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}
}  // namespace

ReasoningSplitter::ReasoningSplitter(bool starts_in_reasoning)
    : state_(starts_in_reasoning ? State::kReasoning : State::kUndecided) {}

ReasoningSplitter::Delta ReasoningSplitter::push(std::string_view text) {
  Delta out;
  held_ += text;
  if (state_ == State::kUndecided) {
    const size_t start = held_.find_first_not_of(" \t\r\n");
    if (start == std::string::npos) return out;  // only whitespace so far
    const std::string_view rest = std::string_view(held_).substr(start);
    if (rest.size() < kOpen.size() && kOpen.substr(0, rest.size()) == rest) return out;  // maybe "<thi"
    if (rest.substr(0, kOpen.size()) == kOpen) {
      state_ = State::kReasoning;
      held_ = std::string(rest.substr(kOpen.size()));
    } else {
      state_ = State::kContent;
    }
  }
  if (state_ == State::kContent) {
    out.content = std::move(held_);
    held_.clear();
    return out;
  }
  // Reasoning: emit up to a closing tag, or up to a possible partial one.
  const size_t close = held_.find(kClose);
  if (close != std::string::npos) {
    out.reasoning = held_.substr(0, close);
    out.content = held_.substr(close + kClose.size());
    held_.clear();
    state_ = State::kContent;
    return out;
  }
  const size_t keep = partial_tag_suffix(held_, kClose);
  out.reasoning = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

ReasoningSplitter::Delta ReasoningSplitter::finish() {
  Delta out;
  (state_ == State::kReasoning ? out.reasoning : out.content) = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace tandem::server
