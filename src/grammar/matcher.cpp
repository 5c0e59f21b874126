#include "grammar/matcher.h"

#include "grammar/grammar_internal.h"

namespace tandem::grammar {

namespace {

// Phases of each frame kind.
enum : uint8_t { O_START, O_OPEN, O_KEY, O_COLON, O_VALUE, O_IN_VALUE, O_AFTER, O_COMMA };  // Object, FreeObject
enum : uint8_t { A_START, A_OPEN, A_IN_ITEM, A_AFTER, A_COMMA };
enum : uint8_t { S_START, S_CONTENT, S_ESCAPE, S_HEX };
enum : uint8_t { N_START, N_MINUS, N_ZERO, N_INT, N_FRAC0, N_FRAC, N_EXP0, N_EXPSIGN, N_EXP };
enum : uint8_t { Q_BETWEEN, Q_IN_VALUE };  // Sequence

constexpr uint64_t kMaxIntDigits = 15, kMaxFracDigits = 15, kMaxExpDigits = 2;

bool digit(int c) { return c >= '0' && c <= '9'; }
bool hex(int c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }
uint64_t bit(uint64_t i) { return uint64_t{1} << i; }

}  // namespace

Stepper::Stepper(const Grammar& grammar) : g_(grammar.impl()) {}

void Stepper::start(MatchState& state, uint32_t sequence_node) const {
  state.frames.assign(1, Frame{.node = sequence_node});
  state.ends.assign(1, 1);
}

void Stepper::start(MatchState& state) const { start(state, g_.root); }

std::vector<Frame>& Stepper::take() {
  if (pool_used_ == pool_.size()) pool_.emplace_back();
  return pool_[pool_used_++];
}

bool Stepper::push_frame(std::vector<Frame>& st, uint32_t node) const {
  const Node& n = g_.nodes[node];
  if (n.container() && st.size() > static_cast<size_t>(kMaxNesting)) return false;
  st.push_back(Frame{.node = node});
  return true;
}

Stepper::Outcome Stepper::consume(Frame& f, int c, uint32_t& push) const {
  const Node& n = g_.nodes[f.node];
  switch (n.kind) {
    case Kind::Sequence: {
      if (f.a == n.pieces.size()) {
        if (n.nested) return kEndedBefore;
        return c == kEndOfInput ? kAccept : kReject;
      }
      const Piece& p = n.pieces[f.a];
      if (p.literal) {
        if (c != static_cast<unsigned char>(p.bytes[f.b])) return kReject;
        if (++f.b == p.bytes.size()) {
          ++f.a;
          f.b = 0;
          if (n.nested && f.a == n.pieces.size()) return kDone;
        }
        return kConsumed;
      }
      // Only a choice with an empty alternative may be passed at the end of the input.
      if (c == kEndOfInput && g_.nodes[p.node].min_bytes != 0) return kReject;
      f.phase = Q_IN_VALUE;
      push = p.node;
      return kPush;
    }
    case Kind::Object: {
      const LiteralTrie& trie = g_.tries[n.trie];
      switch (f.phase) {
        case O_START:
          if (c != '{') return kReject;
          f.phase = O_OPEN;
          return kConsumed;
        case O_OPEN:
        case O_AFTER:
          if (c == '}' && (n.required & ~f.seen) == 0) return kDone;
          if (f.phase == O_AFTER) {
            if (c != ',' || (trie.nodes[0].under & ~f.seen) == 0) return kReject;
            f.phase = O_COMMA;
            return kConsumed;
          }
          [[fallthrough]];
        case O_COMMA:
        case O_KEY: {
          if (c == kEndOfInput) return kReject;
          const uint32_t k = trie.child(f.phase == O_KEY ? static_cast<uint32_t>(f.a) : 0, static_cast<uint8_t>(c));
          if (k == 0 || (trie.nodes[k].under & ~f.seen) == 0) return kReject;
          f.a = k;
          f.phase = O_KEY;
          if (trie.nodes[k].terminal >= 0) {
            f.b = static_cast<uint64_t>(trie.nodes[k].terminal);
            f.seen |= bit(f.b);
            f.phase = O_COLON;
          }
          return kConsumed;
        }
        case O_COLON:
          if (c != ':') return kReject;
          f.phase = O_VALUE;
          return kConsumed;
        case O_VALUE:
          if (c == kEndOfInput) return kReject;
          f.phase = O_IN_VALUE;
          push = n.props[f.b].node;
          return kPush;
        default: return kReject;
      }
    }
    case Kind::FreeObject:
      switch (f.phase) {
        case O_START:
          if (c != '{') return kReject;
          f.phase = O_OPEN;
          return kConsumed;
        case O_OPEN:
        case O_AFTER:
          if (c == '}') return kDone;
          if (f.phase == O_AFTER) {
            if (c != ',') return kReject;
            f.phase = O_COMMA;
            return kConsumed;
          }
          [[fallthrough]];
        case O_COMMA:
          if (c != '"' || !n.child_ok) return kReject;
          f.phase = O_KEY;
          push = g_.key_string;
          return kPush;
        case O_COLON:
          if (c != ':') return kReject;
          f.phase = O_VALUE;
          return kConsumed;
        case O_VALUE:
          if (c == kEndOfInput) return kReject;
          f.phase = O_IN_VALUE;
          push = n.child;
          return kPush;
        default: return kReject;
      }
    case Kind::Array:
      switch (f.phase) {
        case A_START:
          if (c != '[') return kReject;
          f.phase = A_OPEN;
          return kConsumed;
        case A_OPEN:
          if (c == ']' && n.min_count == 0) return kDone;
          if (c == kEndOfInput || n.max_count == 0) return kReject;
          f.phase = A_IN_ITEM;
          push = n.child;
          return kPush;
        case A_AFTER:
          if (c == ']' && f.a >= n.min_count) return kDone;
          if (c != ',' || f.a >= n.max_count) return kReject;
          f.phase = A_COMMA;
          return kConsumed;
        case A_COMMA:
          if (c == kEndOfInput) return kReject;
          f.phase = A_IN_ITEM;
          push = n.child;
          return kPush;
        default: return kReject;
      }
    case Kind::String:
      switch (f.phase) {
        case S_START:
          if (c != '"') return kReject;
          f.phase = S_CONTENT;
          return kConsumed;
        case S_CONTENT:
          if (f.u8need > 0) {
            if (c < f.u8lo || c > f.u8hi) return kReject;
            --f.u8need;
            f.u8lo = 0x80;
            f.u8hi = 0xBF;
            return kConsumed;
          }
          if (c == '"') return f.a >= n.min_count ? kDone : kReject;
          if (c < 0x20 || c >= 0xF5 || (c >= 0x80 && c < 0xC2) || f.a >= n.max_count) return kReject;
          ++f.a;
          if (c == '\\') {
            f.phase = S_ESCAPE;
          } else if (c >= 0x80) {
            f.u8lo = 0x80;
            f.u8hi = 0xBF;
            if (c < 0xE0) {
              f.u8need = 1;
            } else if (c < 0xF0) {
              f.u8need = 2;
              if (c == 0xE0) f.u8lo = 0xA0;  // no overlong forms
              if (c == 0xED) f.u8hi = 0x9F;  // no surrogates
            } else {
              f.u8need = 3;
              if (c == 0xF0) f.u8lo = 0x90;
              if (c == 0xF4) f.u8hi = 0x8F;  // nothing above U+10FFFF
            }
          }
          return kConsumed;
        case S_ESCAPE:
          if (c == 'u') {
            f.phase = S_HEX;
            f.b = 0;
            f.seen = 0;
            return kConsumed;
          }
          if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' && c != 'r' && c != 't') return kReject;
          f.phase = S_CONTENT;
          return kConsumed;
        case S_HEX:
          if (!hex(c)) return kReject;
          if (f.b == 0 && (c == 'd' || c == 'D')) f.seen = 1;
          if (f.b == 1 && f.seen == 1 && !digit(c) ) return kReject;        // \uDA.. - \uDF..: surrogates
          if (f.b == 1 && f.seen == 1 && (c == '8' || c == '9')) return kReject;
          if (++f.b == 4) {
            f.phase = S_CONTENT;
            f.b = 0;
            f.seen = 0;
          }
          return kConsumed;
        default: return kReject;
      }
    case Kind::Number:
    case Kind::Integer: {
      const bool real = n.kind == Kind::Number;
      switch (f.phase) {
        case N_START:
        case N_MINUS:
          if (c == '-' && f.phase == N_START) {
            f.phase = N_MINUS;
            return kConsumed;
          }
          if (c == '0') {
            f.phase = N_ZERO;
            return kConsumed;
          }
          if (!digit(c)) return kReject;
          f.phase = N_INT;
          f.a = 1;
          return kConsumed;
        case N_ZERO:
        case N_INT:
          if (digit(c) && f.phase == N_INT && f.a < kMaxIntDigits) {
            ++f.a;
            return kConsumed;
          }
          if (real && c == '.') {
            f.phase = N_FRAC0;
            return kConsumed;
          }
          if (real && (c == 'e' || c == 'E')) {
            f.phase = N_EXP0;
            return kConsumed;
          }
          return kEndedBefore;
        case N_FRAC0:
          if (!digit(c)) return kReject;
          f.phase = N_FRAC;
          f.a = 1;
          return kConsumed;
        case N_FRAC:
          if (digit(c) && f.a < kMaxFracDigits) {
            ++f.a;
            return kConsumed;
          }
          if (c == 'e' || c == 'E') {
            f.phase = N_EXP0;
            return kConsumed;
          }
          return kEndedBefore;
        case N_EXP0:
          if (c == '+' || c == '-') {
            f.phase = N_EXPSIGN;
            return kConsumed;
          }
          [[fallthrough]];
        case N_EXPSIGN:
          if (!digit(c)) return kReject;
          f.phase = N_EXP;
          f.a = 1;
          return kConsumed;
        case N_EXP:
          if (digit(c) && f.a < kMaxExpDigits) {
            ++f.a;
            return kConsumed;
          }
          return kEndedBefore;
        default: return kReject;
      }
    }
    case Kind::Literal: {
      const LiteralTrie& trie = g_.tries[n.trie];
      const uint32_t k = c == kEndOfInput ? 0 : trie.child(static_cast<uint32_t>(f.a), static_cast<uint8_t>(c));
      if (k != 0) {
        f.a = k;
        return trie.nodes[k].terminal >= 0 && trie.nodes[k].next.empty() ? kDone : kConsumed;
      }
      return trie.nodes[f.a].terminal >= 0 ? kEndedBefore : kReject;
    }
    case Kind::AnyOf:
    case Kind::Ref: return kReject;  // never on a stack
  }
  return kReject;
}

void Stepper::child_done(Frame& f) const {
  const Node& n = g_.nodes[f.node];
  switch (n.kind) {
    case Kind::Sequence:
      ++f.a;
      f.phase = Q_BETWEEN;
      break;
    case Kind::Object: f.phase = O_AFTER; break;
    case Kind::FreeObject: f.phase = f.phase == O_KEY ? O_COLON : O_AFTER; break;
    case Kind::Array:
      ++f.a;
      f.phase = A_AFTER;
      break;
    default: break;
  }
}

uint64_t Stepper::rest_after_child(const Frame& f) const {
  const Node& n = g_.nodes[f.node];
  switch (n.kind) {
    case Kind::Sequence: return n.suffix[f.a + 1];
    case Kind::Object: return object_rest(n, f.seen);
    case Kind::FreeObject: return f.phase == O_KEY ? sat_add(2, g_.nodes[n.child].min_bytes) : 1;
    case Kind::Array:
      return sat_add(1, sat_mul(sub0(n.min_count, f.a + 1), 1 + g_.nodes[n.child].min_bytes));
    default: return 0;
  }
}

uint64_t Stepper::self_remaining(const Frame& f) const {
  const Node& n = g_.nodes[f.node];
  switch (n.kind) {
    case Kind::Sequence: {
      if (f.a == n.pieces.size()) return 0;
      const Piece& p = n.pieces[f.a];
      if (p.literal) return sat_add(p.bytes.size() - f.b, n.suffix[f.a + 1]);
      return n.suffix[f.a];
    }
    case Kind::Object: {
      const LiteralTrie& trie = g_.tries[n.trie];
      switch (f.phase) {
        case O_START: return n.min_bytes;
        case O_OPEN: return n.min_bytes - 1;
        case O_COLON: return sat_add(sat_add(1, g_.nodes[n.props[f.b].node].min_bytes), object_rest(n, f.seen));
        case O_VALUE: return sat_add(g_.nodes[n.props[f.b].node].min_bytes, object_rest(n, f.seen));
        case O_AFTER: return object_rest(n, f.seen);
        case O_KEY:
        case O_COMMA: {
          const uint32_t k = f.phase == O_KEY ? static_cast<uint32_t>(f.a) : 0;
          const uint64_t rest = object_rest(n, f.seen);
          uint64_t best = kInf;
          for (uint64_t m = trie.nodes[k].under & ~f.seen; m != 0; m &= m - 1) {
            const auto i = static_cast<size_t>(__builtin_ctzll(m));
            const Property& p = n.props[i];
            const uint64_t after = (n.required & bit(i)) ? rest - (1 + p.cost) : rest;
            best = std::min(best, sat_add(p.cost - trie.nodes[k].depth, after));
          }
          return best;
        }
        default: return kInf;
      }
    }
    case Kind::FreeObject: {
      const uint64_t value = g_.nodes[n.child].min_bytes;
      switch (f.phase) {
        case O_START: return 2;
        case O_OPEN:
        case O_AFTER: return 1;
        case O_COLON: return sat_add(2, value);
        case O_VALUE: return sat_add(1, value);
        case O_COMMA: return sat_add(4, value);
        default: return kInf;
      }
    }
    case Kind::Array: {
      const uint64_t item = g_.nodes[n.child].min_bytes;
      switch (f.phase) {
        case A_START: return n.min_bytes;
        case A_OPEN: return n.min_bytes - 1;
        case A_AFTER: return sat_add(1, sat_mul(sub0(n.min_count, f.a), 1 + item));
        case A_COMMA: return sat_add(sat_add(1, item), sat_mul(sub0(n.min_count, f.a + 1), 1 + item));
        default: return kInf;
      }
    }
    case Kind::String: {
      const uint64_t chars = sub0(n.min_count, f.a);
      switch (f.phase) {
        case S_START: return n.min_bytes;
        case S_CONTENT: return sat_add(chars, 1 + f.u8need);
        case S_ESCAPE: return sat_add(chars, 2);
        case S_HEX: return sat_add(chars, 1 + (4 - f.b));
        default: return kInf;
      }
    }
    case Kind::Number:
    case Kind::Integer:
      switch (f.phase) {
        case N_ZERO:
        case N_INT:
        case N_FRAC:
        case N_EXP: return 0;
        default: return 1;
      }
    case Kind::Literal: return g_.tries[n.trie].nodes[f.a].dist;
    default: return kInf;
  }
}

void Stepper::emit(const std::vector<Frame>& st, MatchState& out) {
  uint32_t begin = 0;
  for (uint32_t end : out.ends) {
    if (end - begin == st.size() && std::equal(st.begin(), st.end(), out.frames.begin() + begin)) return;
    begin = end;
  }
  if (out.ends.size() >= kMaxStacks) return;
  out.frames.insert(out.frames.end(), st.begin(), st.end());
  out.ends.push_back(static_cast<uint32_t>(out.frames.size()));
}

void Stepper::run(std::vector<Frame>& st, int c, MatchState& out) {
  for (;;) {
    uint32_t push = 0;
    switch (consume(st.back(), c, push)) {
      case kConsumed:
      case kAccept: emit(st, out); return;
      case kReject: return;
      case kDone:
        st.pop_back();
        child_done(st.back());
        emit(st, out);
        return;
      case kEndedBefore:
        st.pop_back();
        child_done(st.back());
        continue;
      case kPush: {
        st.back().below = sat_add(st.size() >= 2 ? st[st.size() - 2].below : 0, rest_after_child(st.back()));
        const Node& child = g_.nodes[push];
        if (child.kind == Kind::AnyOf) {
          for (uint32_t alt : child.alts) {
            std::vector<Frame>& copy = take();
            copy.assign(st.begin(), st.end());
            if (push_frame(copy, alt)) run(copy, c, out);
            --pool_used_;
          }
          return;
        }
        if (!push_frame(st, push)) return;
        continue;
      }
    }
  }
}

bool Stepper::step(const MatchState& in, int byte, MatchState& out) {
  out.frames.clear();
  out.ends.clear();
  uint32_t begin = 0;
  for (uint32_t end : in.ends) {
    std::vector<Frame>& st = take();
    st.assign(in.frames.begin() + begin, in.frames.begin() + end);
    run(st, byte, out);
    --pool_used_;
    begin = end;
  }
  return !out.ends.empty();
}

uint64_t Stepper::distance(const MatchState& state) const {
  uint64_t best = kInf;
  uint32_t begin = 0;
  for (uint32_t end : state.ends) {
    const Frame& top = state.frames[end - 1];
    const uint64_t below = end - begin >= 2 ? state.frames[end - 2].below : 0;
    best = std::min(best, sat_add(self_remaining(top), below));
    begin = end;
  }
  return best;
}

bool Stepper::in_plain_string(const MatchState& state, uint64_t& room) const {
  if (state.ends.size() != 1) return false;
  const Frame& top = state.frames.back();
  const Node& n = g_.nodes[top.node];
  if (n.kind != Kind::String || top.phase != S_CONTENT || top.u8need != 0) return false;
  room = sub0(n.max_count, top.a);
  return true;
}

Matcher::Matcher(GrammarPtr grammar) : grammar_(std::move(grammar)), stepper_(std::make_unique<Stepper>(*grammar_)) {
  stepper_->start(state_);
}

Matcher::Matcher(const Matcher& other)
    : grammar_(other.grammar_), stepper_(std::make_unique<Stepper>(*grammar_)), state_(other.state_) {}

Matcher& Matcher::operator=(const Matcher& other) {
  if (this != &other) {
    grammar_ = other.grammar_;
    stepper_ = std::make_unique<Stepper>(*grammar_);
    state_ = other.state_;
  }
  return *this;
}

bool Matcher::advance(uint8_t byte) {
  if (!stepper_->step(state_, byte, next_)) return false;
  std::swap(state_, next_);
  return true;
}

bool Matcher::advance(std::string_view bytes) {
  saved_ = state_;  // reuses its memory: no allocation once warm
  for (unsigned char c : bytes) {
    if (!advance(c)) {
      std::swap(state_, saved_);
      return false;
    }
  }
  return true;
}

bool Matcher::is_complete() const { return stepper_->step(state_, kEndOfInput, scratch_); }

bool Matcher::can_continue() const {
  for (int c = 0; c < 256; ++c) {
    if (stepper_->step(state_, c, scratch_)) return true;
  }
  return false;
}

uint64_t Matcher::min_bytes_to_complete() const { return stepper_->distance(state_); }

std::string Matcher::shortest_completion() const {
  std::string out;
  MatchState cur = state_, next;
  for (uint64_t d = stepper_->distance(cur); d > 0 && d < kInf; --d) {
    bool found = false;
    for (int c = 0; c < 256 && !found; ++c) {
      if (stepper_->step(cur, c, next) && stepper_->distance(next) == d - 1) {
        out += static_cast<char>(c);
        std::swap(cur, next);
        found = true;
      }
    }
    if (!found) break;  // cannot happen: distance() is exact
  }
  return out;
}

bool Matcher::accepts(const GrammarPtr& grammar, uint32_t sequence_node, std::string_view text) {
  Stepper stepper(*grammar);
  MatchState a, b;
  stepper.start(a, sequence_node);
  for (unsigned char c : text) {
    if (!stepper.step(a, c, b)) return false;
    std::swap(a, b);
  }
  return stepper.step(a, kEndOfInput, b);
}

bool Matcher::accepts(const GrammarPtr& grammar, std::string_view text) {
  return accepts(grammar, grammar->impl().root, text);
}

}  // namespace tandem::grammar
