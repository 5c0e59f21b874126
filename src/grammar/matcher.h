// Matcher: a byte-level pushdown matcher for a Grammar (grammar.h).
//
// It reads a document one byte at a time and refuses (state unchanged) a byte that no accepted document has at
// that point; every prefix it accepts can be completed. min_bytes_to_complete() is the length of the shortest
// completion (0 when the document may end here), shortest_completion() one such completion. anyOf alternatives
// that share a prefix are followed together (a small set of stacks, kMaxStacks at most).
//
// MatchState / Stepper are the allocation-free core used by the token mask (json_constraint.h): step() maps a
// state and a byte to the next state, distance() gives min_bytes_to_complete of a state. A Stepper holds scratch
// memory and serves one thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grammar/grammar.h"

namespace tandem::grammar {

constexpr size_t kMaxStacks = 32;
constexpr int kEndOfInput = 256;  // step() with it: may the document end here?

struct Frame {
  uint32_t node = 0;
  uint8_t phase = 0;
  uint8_t u8need = 0, u8lo = 0, u8hi = 0;  // String: UTF-8 continuation bytes due, and the next one's range
  uint64_t a = 0;      // Array: items done; String: code points; Number: digits; Object/Literal: trie node; Sequence: piece
  uint64_t b = 0;      // Object: current property; Sequence: offset in a literal; String: \u digits read
  uint64_t seen = 0;   // Object: properties given; String: the \u escape began with 'd'
  uint64_t below = 0;  // bytes the frames below, and this one once its child is done, still need
  bool operator==(const Frame&) const = default;
};

struct MatchState {
  std::vector<Frame> frames;   // the stacks, one after the other, bottom first
  std::vector<uint32_t> ends;  // end of each stack in `frames`
  bool empty() const { return ends.empty(); }
};

class Stepper {
 public:
  explicit Stepper(const Grammar& grammar);
  void start(MatchState& state, uint32_t sequence_node) const;
  void start(MatchState& state) const;  // at the grammar's root
  // `in` and `out` must differ. False (out empty) when the byte is refused.
  bool step(const MatchState& in, int byte, MatchState& out);
  uint64_t distance(const MatchState& state) const;
  // True when `state` is one stack whose top is inside a JSON string, between characters and escapes: then any
  // plain text (VocabTrie::plain_bits) of up to `room` code points may follow and leaves the completion no longer.
  bool in_plain_string(const MatchState& state, uint64_t& room) const;

 private:
  enum Outcome { kConsumed, kReject, kDone, kEndedBefore, kPush, kAccept };
  Outcome consume(Frame& f, int c, uint32_t& push) const;
  void child_done(Frame& f) const;
  uint64_t rest_after_child(const Frame& f) const;
  uint64_t self_remaining(const Frame& f) const;
  bool push_frame(std::vector<Frame>& st, uint32_t node) const;
  void run(std::vector<Frame>& st, int c, MatchState& out);
  static void emit(const std::vector<Frame>& st, MatchState& out);
  std::vector<Frame>& take();

  const Grammar::Impl& g_;
  std::deque<std::vector<Frame>> pool_;  // scratch stacks (a deque: references stay valid as it grows)
  size_t pool_used_ = 0;
};

class Matcher {
 public:
  explicit Matcher(GrammarPtr grammar);
  Matcher(const Matcher& other);
  Matcher& operator=(const Matcher& other);

  bool advance(uint8_t byte);
  bool advance(std::string_view bytes);  // all of them, or none (state unchanged)
  bool is_complete() const;              // the document may end here
  bool can_continue() const;             // some byte may still come
  uint64_t min_bytes_to_complete() const;
  std::string shortest_completion() const;
  const MatchState& state() const { return state_; }
  const Grammar& grammar() const { return *grammar_; }

  // Does the Sequence node `sequence_node` of `grammar` accept exactly `text`?
  static bool accepts(const GrammarPtr& grammar, uint32_t sequence_node, std::string_view text);
  static bool accepts(const GrammarPtr& grammar, std::string_view text);

 private:
  GrammarPtr grammar_;
  std::unique_ptr<Stepper> stepper_;
  MatchState state_, next_, saved_;
  mutable MatchState scratch_;
};

}  // namespace tandem::grammar
