// ReasoningSplitter: separates a reasoning model's thinking (between <think> and </think>) from its
// answer, incrementally, for `reasoning_content` and `content` in the API.
//
// If the prompt already opened the thinking block (e.g. --force_think appends "<think>\n"), the output
// starts inside it; otherwise it is inside only if the output itself starts with "<think>". Text that
// could be the beginning of a tag is held back until it is decided, so a tag split across tokens is
// never emitted as text. finish() releases what is held.
#pragma once

#include <string>
#include <string_view>

namespace tandem::server {

class ReasoningSplitter {
 public:
  explicit ReasoningSplitter(bool starts_in_reasoning);

  struct Delta {
    std::string reasoning;
    std::string content;
  };
  Delta push(std::string_view text);
  Delta finish();

 private:
  enum class State { kUndecided, kReasoning, kContent };
  State state_;
  std::string held_;
};

}  // namespace tandem::server
