// Tool calls in a model's own syntax: what the syntax is (per model family), and an incremental parser that
// turns generated text into content and tool calls.
//
// ToolCallSyntax describes how a family writes calls: DeepSeek-V3/R1
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>
//   (more calls, "\n"-separated) <｜tool▁calls▁end｜>      (markers are control tokens)
// and Hermes-style (Qwen3, Qwen2.5)
//   <tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>   (markers are user-defined tokens: text)
// detect_tool_syntax() picks it from the vocabulary and the chat template. The same description serves the parser,
// format_calls() (the text of calls, as the model writes them) and call_frame() (the literal text before and after
// one call's arguments JSON: what a constrained decoder forcing a call needs around its JSON-schema part).
//
// ToolCallParser contract: push() takes the generated text in pieces of any size (tokens or single bytes) and
// returns what is decided so far; finish() returns the rest. Splitting the same text differently never changes
// the concatenated result (same content, same calls, same argument text). The markers of a syntax whose markers
// are control tokens must be in the text (the session's detokenizer keeps them, syntax.special_ids), and never
// reach content: stray ones are dropped. Text that may still become a marker is held back, so a partial marker
// is never returned as content. A call's first fragment carries its id and name, arguments follow in pieces (the
// model's raw text, not re-serialized), its last fragment has `end`. Whitespace right before a call or right
// after one is not content. Decisions on malformed output (the same streamed or not):
//   * a call whose name cannot be read (no NAME, garbage where the name belongs) is returned as content, the
//     text the model wrote (control-token markers removed);
//   * names not among the request's tools and arguments that are not valid JSON are returned as calls, as the
//     model wrote them (as OpenAI does for invalid JSON): the client validates;
//   * output that ends inside a call (max_tokens) ends the call with the arguments written so far;
//   * Hermes bodies whose JSON does not start with "name" then "arguments" are buffered to </tool_call> and
//     parsed whole (any key order, "parameters" accepted for "arguments"); if that fails they are content.
// After max_calls calls have ended the parser is saturated(): everything after is dropped (parallel_tool_calls
// false). No exception leaves push() or finish() except std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {
class Tokenizer;
}

namespace tandem::server {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text as the model wrote it
};

struct ToolCallSyntax {
  enum class Family { kNone, kDeepSeekV3, kHermes };
  Family family = Family::kNone;
  std::string section_begin, section_end;  // around all calls ("" when the syntax has none)
  std::string call_begin, call_end;        // around one call
  std::string separator;                   // for DeepSeek-V3: between the type ("function") and the name
  std::vector<std::string> special_texts;  // spellings of the markers that are control tokens
  std::vector<int32_t> special_ids;        // their ids: the detokenizer must keep them for the parser
  std::vector<int32_t> opener_ids;         // tokens that open a call (banned when tool_choice is "none")

  bool enabled() const { return family != Family::kNone; }
  const char* name() const;  // "deepseek-v3", "hermes", "none"
  // The text of these calls as the model writes them (arguments inserted as given).
  std::string format_calls(const std::vector<ToolCall>& calls) const;
  // The literal text before and after one call's arguments JSON (a single call, section markers included).
  struct Frame {
    std::string prefix, suffix;
  };
  Frame call_frame(std::string_view function_name) const;
};

// The syntax of the model: DeepSeek-V3 when the vocabulary has its five tool-call control tokens, Hermes when
// the template writes <tool_call> or the vocabulary has <tool_call> and </tool_call>; else kNone.
ToolCallSyntax detect_tool_syntax(const Tokenizer& tokenizer, std::string_view template_source);

// "call_" and 24 random letters and digits.
std::string new_tool_call_id();

struct ToolCallFragment {
  size_t index = 0;
  bool begin = false;     // the call's first fragment: id and name set
  std::string id, name;
  std::string arguments;  // the next piece of the arguments (may be empty)
  bool end = false;       // the call's last fragment
};

struct ToolParseDelta {
  std::string content;
  std::vector<ToolCallFragment> fragments;
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolCallSyntax syntax, size_t max_calls = SIZE_MAX,
                          std::function<std::string()> new_id = new_tool_call_id);

  ToolParseDelta push(std::string_view text);
  ToolParseDelta finish();
  bool saturated() const { return state_ == State::kSaturated; }
  size_t calls_begun() const { return begun_; }

 private:
  enum class State { kText, kSection, kHead, kFence, kArgs, kTail, kBuffered, kSaturated, kFinished };
  void run(ToolParseDelta& out, bool at_end);
  bool step(ToolParseDelta& out, bool at_end);  // false: needs more input
  bool step_text(ToolParseDelta& out, bool at_end);
  bool step_section(ToolParseDelta& out, bool at_end);
  bool step_head_deepseek(ToolParseDelta& out, bool at_end);
  bool step_head_hermes(ToolParseDelta& out, bool at_end);
  bool step_fence(ToolParseDelta& out, bool at_end);
  bool step_args_deepseek(ToolParseDelta& out, bool at_end);
  bool step_args_hermes(ToolParseDelta& out, bool at_end);
  bool step_tail(ToolParseDelta& out, bool at_end);
  bool step_buffered(ToolParseDelta& out, bool at_end);

  void emit_text(ToolParseDelta& out, std::string_view text);
  void begin_call(ToolParseDelta& out, std::string name, std::string arguments = {});
  void add_arguments(ToolParseDelta& out, std::string_view piece);
  void end_call(ToolParseDelta& out);
  void fail_call(ToolParseDelta& out, size_t consumed);  // the call's text so far (raw_ + buf_[0, consumed)) is content
  std::string strip_special(std::string_view text) const;
  size_t partial_marker_suffix(std::string_view text, const std::vector<std::string>& markers) const;
  // The earliest complete marker of `markers` in buf_ from `from`: {pos, index}; pos npos when none.
  std::pair<size_t, size_t> find_marker(const std::vector<std::string>& markers, size_t from = 0) const;

  ToolCallSyntax syntax_;
  size_t max_calls_;
  std::function<std::string()> new_id_;
  std::vector<std::string> text_markers_;  // markers looked for outside calls (openers first)
  std::vector<std::string> arg_enders_;    // DeepSeek-V3: markers that end arguments
  State state_ = State::kText;
  std::string buf_;         // input not consumed yet
  std::string raw_;         // the current call's consumed text while it has no name yet
  std::string held_ws_;     // trailing whitespace of content, held until it is known not to border a call
  bool after_call_ = false; // the last thing was a call: leading whitespace is not content
  size_t begun_ = 0, ended_ = 0;
  bool in_call_ = false;
  size_t searched_ = 0;     // kBuffered: how much of buf_ was searched for the end marker
  // Hermes arguments: a JSON value scanner.
  struct JsonScan {
    int depth = 0;
    bool started = false, in_string = false, escape = false, primitive = false;
    enum Result { kMore, kEndsAfter, kEndsBefore };
    Result feed(char c);
  } scan_;
};

// Removes marker spellings (a syntax's control-token markers) from a stream of text, such as reasoning, where
// calls are not parsed; a possible partial spelling at the end of a piece waits for the next.
class MarkerStripper {
 public:
  explicit MarkerStripper(std::vector<std::string> markers) : markers_(std::move(markers)) {}
  std::string push(std::string_view text);
  std::string finish();

 private:
  std::vector<std::string> markers_;
  std::string held_;
};

// Folds streamed fragments into whole calls (what a client does with delta.tool_calls).
void apply_fragments(std::vector<ToolCall>& calls, const std::vector<ToolCallFragment>& fragments);

}  // namespace tandem::server
