#include "server/tool_calls.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <utility>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace tandem::server {

namespace {

// DeepSeek-V3/R1's tool-call control tokens.
constexpr std::string_view kDsCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kDsCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kDsCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kDsCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kDsSep = "<｜tool▁sep｜>";
constexpr std::string_view kHermesBegin = "<tool_call>";
constexpr std::string_view kHermesEnd = "</tool_call>";
constexpr std::string_view kFence = "```";
// A call's head (before its name ends) longer than this is not a call.
constexpr size_t kMaxHead = 512;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  return rtrim(s);
}

// DeepSeek-V3 arguments end with "\n```" before <｜tool▁call▁end｜>: what is left of `text` without it.
std::string_view strip_closing_fence(std::string_view text) {
  text = rtrim(text);
  if (text.ends_with(kFence)) text.remove_suffix(kFence.size());
  return rtrim(text);
}

}  // namespace

const char* ToolCallSyntax::name() const {
  switch (family) {
    case Family::kDeepSeekV3: return "deepseek-v3";
    case Family::kHermes: return "hermes";
    case Family::kNone: break;
  }
  return "none";
}

std::string ToolCallSyntax::format_calls(const std::vector<ToolCall>& calls) const {
  std::string out;
  if (calls.empty() || family == Family::kNone) return out;
  out += section_begin;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i > 0) out += "\n";
    const Frame f = call_frame(calls[i].name);
    // call_frame() includes the section markers: take the call's own part.
    out += std::string_view(f.prefix).substr(section_begin.size());
    out += calls[i].arguments;
    out += std::string_view(f.suffix).substr(0, f.suffix.size() - section_end.size());
  }
  out += section_end;
  return out;
}

ToolCallSyntax::Frame ToolCallSyntax::call_frame(std::string_view function_name) const {
  Frame f;
  if (family == Family::kDeepSeekV3) {
    f.prefix = section_begin + call_begin + "function" + separator + std::string(function_name) + "\n```json\n";
    f.suffix = "\n```" + call_end + section_end;
  } else if (family == Family::kHermes) {
    // The name as a JSON string (names are checked to be plain identifiers, but quote anyway).
    const std::string quoted = nlohmann::json(std::string(function_name)).dump();
    f.prefix = call_begin + "\n{\"name\": " + quoted + ", \"arguments\": ";
    f.suffix = "}\n" + call_end;
  }
  return f;
}

ToolCallSyntax detect_tool_syntax(const Tokenizer& tokenizer, std::string_view template_source) {
  ToolCallSyntax s;
  const auto special_id = [&](std::string_view text) -> int32_t {
    auto id = tokenizer.token_to_id(text);
    return id && tokenizer.is_special(*id) ? *id : -1;
  };
  const int32_t calls_begin = special_id(kDsCallsBegin), calls_end = special_id(kDsCallsEnd),
                call_begin = special_id(kDsCallBegin), call_end = special_id(kDsCallEnd), sep = special_id(kDsSep);
  if (calls_begin >= 0 && calls_end >= 0 && call_begin >= 0 && call_end >= 0 && sep >= 0) {
    s.family = ToolCallSyntax::Family::kDeepSeekV3;
    s.section_begin = kDsCallsBegin;
    s.section_end = kDsCallsEnd;
    s.call_begin = kDsCallBegin;
    s.call_end = kDsCallEnd;
    s.separator = kDsSep;
    s.special_texts = {std::string(kDsCallsBegin), std::string(kDsCallsEnd), std::string(kDsCallBegin),
                       std::string(kDsCallEnd), std::string(kDsSep)};
    s.special_ids = {calls_begin, calls_end, call_begin, call_end, sep};
    s.opener_ids = {calls_begin, call_begin};
    return s;
  }
  const auto open = tokenizer.token_to_id(kHermesBegin), close = tokenizer.token_to_id(kHermesEnd);
  if (template_source.find(kHermesBegin) != std::string_view::npos || (open && close)) {
    s.family = ToolCallSyntax::Family::kHermes;
    s.call_begin = kHermesBegin;
    s.call_end = kHermesEnd;
    // <tool_call> is a user-defined token in Qwen's vocabulary: it decodes to text; it is banned by id when it
    // is one token (a model could still spell it in pieces, which is then text).
    if (open) {
      s.opener_ids = {*open};
      if (tokenizer.is_special(*open)) {
        s.special_texts = {std::string(kHermesBegin)};
        s.special_ids = {*open};
      }
    }
    if (close && tokenizer.is_special(*close)) {
      s.special_texts.emplace_back(kHermesEnd);
      s.special_ids.push_back(*close);
    }
  }
  return s;
}

std::string new_tool_call_id() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof kAlphabet - 1)];
  return id;
}

void apply_fragments(std::vector<ToolCall>& calls, const std::vector<ToolCallFragment>& fragments) {
  for (const ToolCallFragment& f : fragments) {
    if (calls.size() <= f.index) calls.resize(f.index + 1);
    ToolCall& c = calls[f.index];
    if (f.begin) {
      c.id = f.id;
      c.name = f.name;
    }
    c.arguments += f.arguments;
  }
}

std::string MarkerStripper::push(std::string_view text) {
  held_.append(text);
  for (const std::string& m : markers_) {
    for (size_t at = held_.find(m); at != std::string::npos; at = held_.find(m, at)) held_.erase(at, m.size());
  }
  size_t hold = 0;
  for (const std::string& m : markers_) {
    for (size_t n = std::min(held_.size(), m.size() - 1); n > hold; --n) {
      if (std::string_view(held_).substr(held_.size() - n) == std::string_view(m).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return out;
}

std::string MarkerStripper::finish() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

ToolCallParser::JsonScan::Result ToolCallParser::JsonScan::feed(char c) {
  if (!started) {
    started = true;
    if (c == '{' || c == '[') {
      depth = 1;
    } else if (c == '"') {
      in_string = true;
    } else {
      primitive = true;
    }
    return kMore;
  }
  if (primitive) {
    return is_space(c) || c == ',' || c == '}' || c == ']' ? kEndsBefore : kMore;
  }
  if (in_string) {
    if (escape) {
      escape = false;
    } else if (c == '\\') {
      escape = true;
    } else if (c == '"') {
      in_string = false;
      if (depth == 0) return kEndsAfter;
    }
    return kMore;
  }
  if (c == '"') {
    in_string = true;
  } else if (c == '{' || c == '[') {
    ++depth;
  } else if (c == '}' || c == ']') {
    if (--depth <= 0) return kEndsAfter;
  }
  return kMore;
}

ToolCallParser::ToolCallParser(ToolCallSyntax syntax, size_t max_calls, std::function<std::string()> new_id)
    : syntax_(std::move(syntax)), max_calls_(max_calls == 0 ? 1 : max_calls), new_id_(std::move(new_id)) {
  if (!new_id_) new_id_ = new_tool_call_id;
  if (syntax_.family == ToolCallSyntax::Family::kDeepSeekV3) {
    // Openers first: a call may also start without the section marker.
    text_markers_ = {syntax_.section_begin, syntax_.call_begin};
    for (const std::string& m : syntax_.special_texts) {
      if (std::find(text_markers_.begin(), text_markers_.end(), m) == text_markers_.end()) text_markers_.push_back(m);
    }
    arg_enders_ = {syntax_.call_end, syntax_.call_begin, syntax_.section_end, syntax_.section_begin};
  } else if (syntax_.family == ToolCallSyntax::Family::kHermes) {
    text_markers_ = {syntax_.call_begin};
    for (const std::string& m : syntax_.special_texts) {
      if (m != syntax_.call_begin) text_markers_.push_back(m);
    }
  }
}

std::pair<size_t, size_t> ToolCallParser::find_marker(const std::vector<std::string>& markers, size_t from) const {
  size_t best = std::string::npos, which = 0;
  for (size_t i = 0; i < markers.size(); ++i) {
    const size_t at = buf_.find(markers[i], from);
    if (at < best) {
      best = at;
      which = i;
    }
  }
  return {best, which};
}

size_t ToolCallParser::partial_marker_suffix(std::string_view text, const std::vector<std::string>& markers) const {
  size_t hold = 0;
  for (const std::string& m : markers) {
    for (size_t n = std::min(text.size(), m.size() - 1); n > hold; --n) {
      if (text.substr(text.size() - n) == std::string_view(m).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

std::string ToolCallParser::strip_special(std::string_view text) const {
  std::string out(text);
  for (const std::string& m : syntax_.special_texts) {
    for (size_t at = out.find(m); at != std::string::npos; at = out.find(m, at)) out.erase(at, m.size());
  }
  return out;
}

void ToolCallParser::emit_text(ToolParseDelta& out, std::string_view text) {
  if (text.empty()) return;
  if (after_call_) {
    // Whitespace right after a call is not content.
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    if (text.empty()) return;
    after_call_ = false;
    held_ws_.clear();
  }
  size_t last = text.size();
  while (last > 0 && is_space(text[last - 1])) --last;
  if (last == 0) {
    held_ws_.append(text);
    return;
  }
  out.content += held_ws_;
  out.content.append(text.substr(0, last));
  held_ws_.assign(text.substr(last));
}

void ToolCallParser::begin_call(ToolParseDelta& out, std::string name, std::string arguments) {
  ToolCallFragment f;
  f.index = begun_++;
  f.begin = true;
  f.id = new_id_();
  f.name = std::move(name);
  f.arguments = std::move(arguments);
  out.fragments.push_back(std::move(f));
  held_ws_.clear();  // whitespace before a call is not content
  raw_.clear();
  in_call_ = true;
}

void ToolCallParser::add_arguments(ToolParseDelta& out, std::string_view piece) {
  if (piece.empty()) return;
  ToolCallFragment f;
  f.index = begun_ - 1;
  f.arguments = piece;
  out.fragments.push_back(std::move(f));
}

void ToolCallParser::end_call(ToolParseDelta& out) {
  ToolCallFragment f;
  f.index = begun_ - 1;
  f.end = true;
  out.fragments.push_back(std::move(f));
  in_call_ = false;
  ++ended_;
  after_call_ = true;
  held_ws_.clear();
}

void ToolCallParser::fail_call(ToolParseDelta& out, size_t consumed) {
  const std::string text = strip_special(raw_ + buf_.substr(0, consumed));
  buf_.erase(0, consumed);
  raw_.clear();
  // Not a call: what the model wrote is content (after_call_ is about real calls only).
  const bool after = after_call_;
  after_call_ = false;
  if (after) {
    std::string_view t = text;
    while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
    emit_text(out, t);
  } else {
    emit_text(out, text);
  }
}

ToolParseDelta ToolCallParser::push(std::string_view text) {
  ToolParseDelta out;
  if (state_ == State::kSaturated || state_ == State::kFinished) return out;
  buf_.append(text);
  run(out, false);
  return out;
}

ToolParseDelta ToolCallParser::finish() {
  ToolParseDelta out;
  if (state_ == State::kFinished) return out;
  if (state_ != State::kSaturated) run(out, true);
  if (in_call_) end_call(out);
  if (!after_call_) out.content += held_ws_;
  held_ws_.clear();
  buf_.clear();
  state_ = State::kFinished;
  return out;
}

void ToolCallParser::run(ToolParseDelta& out, bool at_end) {
  while (state_ != State::kSaturated && step(out, at_end)) {
  }
  if (state_ == State::kSaturated) buf_.clear();
}

bool ToolCallParser::step(ToolParseDelta& out, bool at_end) {
  if (in_call_ == false && ended_ >= max_calls_) {
    state_ = State::kSaturated;
    return false;
  }
  const bool deepseek = syntax_.family == ToolCallSyntax::Family::kDeepSeekV3;
  switch (state_) {
    case State::kText: return step_text(out, at_end);
    case State::kSection: return step_section(out, at_end);
    case State::kHead: return deepseek ? step_head_deepseek(out, at_end) : step_head_hermes(out, at_end);
    case State::kFence: return step_fence(out, at_end);
    case State::kArgs: return deepseek ? step_args_deepseek(out, at_end) : step_args_hermes(out, at_end);
    case State::kTail: return step_tail(out, at_end);
    case State::kBuffered: return step_buffered(out, at_end);
    case State::kSaturated:
    case State::kFinished: return false;
  }
  return false;
}

bool ToolCallParser::step_text(ToolParseDelta& out, bool at_end) {
  if (buf_.empty()) return false;
  if (syntax_.family == ToolCallSyntax::Family::kNone) {
    emit_text(out, buf_);
    buf_.clear();
    return false;
  }
  const auto [at, which] = find_marker(text_markers_);
  if (at == std::string::npos) {
    const size_t hold = at_end ? 0 : partial_marker_suffix(buf_, text_markers_);
    emit_text(out, std::string_view(buf_).substr(0, buf_.size() - hold));
    buf_.erase(0, buf_.size() - hold);
    return false;
  }
  emit_text(out, std::string_view(buf_).substr(0, at));
  const std::string& marker = text_markers_[which];
  buf_.erase(0, at + marker.size());
  if (marker == syntax_.call_begin) {
    raw_ = marker;
    state_ = State::kHead;
  } else if (syntax_.family == ToolCallSyntax::Family::kDeepSeekV3 && marker == syntax_.section_begin) {
    state_ = State::kSection;
  }
  // Other markers outside a call are control tokens with no place here: dropped.
  return true;
}

bool ToolCallParser::step_section(ToolParseDelta& out, bool at_end) {
  size_t i = 0;
  while (i < buf_.size() && is_space(buf_[i])) ++i;
  buf_.erase(0, i);
  if (buf_.empty()) return false;
  if (buf_.starts_with(syntax_.call_begin)) {
    buf_.erase(0, syntax_.call_begin.size());
    raw_ = syntax_.call_begin;
    state_ = State::kHead;
    return true;
  }
  if (buf_.starts_with(syntax_.section_end)) {
    buf_.erase(0, syntax_.section_end.size());
    state_ = State::kText;
    after_call_ = ended_ > 0;
    return true;
  }
  for (const std::string& m : syntax_.special_texts) {
    if (buf_.starts_with(m)) {  // a stray marker between calls
      buf_.erase(0, m.size());
      return true;
    }
    if (!at_end && m.starts_with(buf_)) return false;  // maybe a marker: wait
  }
  // Anything else ends the section: it is text.
  state_ = State::kText;
  after_call_ = ended_ > 0;
  return true;
}

bool ToolCallParser::step_head_deepseek(ToolParseDelta& out, bool at_end) {
  // TYPE<｜tool▁sep｜>NAME\n ; the name also ends at "```" or at a marker.
  const size_t sep = buf_.find(syntax_.separator);
  const auto [marker_at, which] = find_marker(syntax_.special_texts);
  if (sep == std::string::npos || marker_at < sep) {
    if (marker_at != std::string::npos) {
      fail_call(out, marker_at);  // another marker before the separator: not a call
      state_ = State::kSection;
      return true;
    }
    if (at_end || buf_.size() > kMaxHead) {
      fail_call(out, buf_.size());
      state_ = State::kText;
      return true;
    }
    return false;
  }
  const size_t name_start = sep + syntax_.separator.size();
  size_t name_end = buf_.find('\n', name_start);
  name_end = std::min(name_end, buf_.find(kFence, name_start));
  const auto [next_marker, unused] = find_marker(syntax_.special_texts, name_start);
  name_end = std::min(name_end, next_marker);
  if (name_end == std::string::npos) {
    if (!at_end && buf_.size() <= kMaxHead) return false;
    name_end = buf_.size();
  }
  const std::string name(trim(std::string_view(buf_).substr(name_start, name_end - name_start)));
  if (name.empty() || name_end - name_start > kMaxHead) {
    fail_call(out, name_end);
    state_ = State::kSection;
    return true;
  }
  begin_call(out, name);
  buf_.erase(0, name_end < buf_.size() && buf_[name_end] == '\n' ? name_end + 1 : name_end);
  state_ = State::kFence;
  return true;
}

bool ToolCallParser::step_fence(ToolParseDelta& out, bool at_end) {
  // Optional "```json" (or "```") line before the arguments.
  size_t i = 0;
  while (i < buf_.size() && is_space(buf_[i])) ++i;
  if (i == buf_.size()) {
    if (at_end) {
      buf_.clear();
      state_ = State::kArgs;
      return true;
    }
    return false;
  }
  const std::string_view rest = std::string_view(buf_).substr(i);
  if (rest.starts_with(kFence)) {
    size_t j = i + kFence.size();
    while (j < buf_.size() && std::isalnum(static_cast<unsigned char>(buf_[j]))) ++j;
    if (j == buf_.size() && !at_end) return false;  // the language word may go on
    buf_.erase(0, j);
    state_ = State::kArgs;
    // The line break after the fence is skipped with the arguments' leading whitespace.
    size_t k = 0;
    while (k < buf_.size() && is_space(buf_[k])) ++k;
    buf_.erase(0, k);
    return true;
  }
  if (!at_end && kFence.starts_with(rest)) return false;  // "`" or "``": wait
  buf_.erase(0, i);
  state_ = State::kArgs;
  return true;
}

bool ToolCallParser::step_args_deepseek(ToolParseDelta& out, bool at_end) {
  // Leading whitespace (after a fence whose line break came later) is not part of the arguments.
  if (!scan_.started) {
    size_t k = 0;
    while (k < buf_.size() && is_space(buf_[k])) ++k;
    buf_.erase(0, k);
    if (buf_.empty() && !at_end) return false;
    scan_.started = true;
  }
  const auto [at, which] = find_marker(arg_enders_);
  if (at == std::string::npos) {
    if (at_end) {
      add_arguments(out, strip_closing_fence(buf_));
      buf_.clear();
      end_call(out);
      scan_ = {};
      state_ = State::kSection;
      return false;
    }
    // Hold what may be the start of a marker, and trailing whitespace and backticks (the closing fence).
    size_t keep = buf_.size() - partial_marker_suffix(buf_, arg_enders_);
    while (keep > 0 && (is_space(buf_[keep - 1]) || buf_[keep - 1] == '`')) --keep;
    add_arguments(out, std::string_view(buf_).substr(0, keep));
    buf_.erase(0, keep);
    return false;
  }
  add_arguments(out, strip_closing_fence(std::string_view(buf_).substr(0, at)));
  const bool closed = arg_enders_[which] == syntax_.call_end;
  buf_.erase(0, closed ? at + syntax_.call_end.size() : at);
  end_call(out);
  scan_ = {};
  state_ = State::kSection;
  return true;
}

bool ToolCallParser::step_head_hermes(ToolParseDelta& out, bool at_end) {
  // Streams when the body starts {"name": "NAME", "arguments": ; anything else is buffered and parsed whole.
  const std::string_view s = buf_;
  size_t i = 0;
  enum { kMatch, kPartial, kFail } status = kMatch;
  const auto ws = [&] {
    while (i < s.size() && is_space(s[i])) ++i;
  };
  const auto lit = [&](std::string_view l) {
    if (status != kMatch) return;
    for (size_t k = 0; k < l.size(); ++k) {
      if (i + k >= s.size()) {
        status = kPartial;
        return;
      }
      if (s[i + k] != l[k]) {
        status = kFail;
        return;
      }
    }
    i += l.size();
  };
  std::string name;
  ws();
  lit("{");
  ws();
  lit("\"name\"");
  ws();
  lit(":");
  ws();
  lit("\"");
  if (status == kMatch) {
    const size_t start = i;
    while (i < s.size() && s[i] != '"') {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c == '\\' || c < 0x20) {  // escapes and control characters: left to the whole-body parse
        status = kFail;
        break;
      }
      ++i;
    }
    if (status == kMatch && i >= s.size()) status = kPartial;
    if (status == kMatch) {
      name = std::string(s.substr(start, i - start));
      ++i;
      if (name.empty()) status = kFail;
    }
  }
  ws();
  lit(",");
  ws();
  lit("\"arguments\"");
  ws();
  lit(":");
  ws();
  if (status == kMatch && i >= s.size()) status = kPartial;  // wait for the value's first character
  const size_t end_at = buf_.find(syntax_.call_end);
  if (status == kPartial && (end_at != std::string::npos || at_end || buf_.size() > kMaxHead)) status = kFail;
  if (status == kMatch && end_at != std::string::npos && end_at < i) status = kFail;
  if (status == kPartial) return false;
  if (status == kFail) {
    state_ = State::kBuffered;
    return true;
  }
  begin_call(out, name);
  buf_.erase(0, i);
  scan_ = {};
  state_ = State::kArgs;
  return true;
}

bool ToolCallParser::step_args_hermes(ToolParseDelta& out, bool at_end) {
  const size_t end_at = buf_.find(syntax_.call_end);
  const size_t limit = end_at != std::string::npos ? end_at
                       : at_end                     ? buf_.size()
                                                    : buf_.size() - partial_marker_suffix(buf_, {syntax_.call_end});
  for (size_t i = 0; i < limit; ++i) {
    const JsonScan::Result r = scan_.feed(buf_[i]);
    if (r == JsonScan::kMore) continue;
    const size_t n = r == JsonScan::kEndsAfter ? i + 1 : i;
    add_arguments(out, std::string_view(buf_).substr(0, n));
    buf_.erase(0, n);
    state_ = State::kTail;
    return true;
  }
  add_arguments(out, std::string_view(buf_).substr(0, limit));
  buf_.erase(0, limit);
  if (end_at != std::string::npos) {
    // </tool_call> inside the value: the call ends with what was written.
    buf_.erase(0, syntax_.call_end.size());
    end_call(out);
    state_ = State::kText;
    return true;
  }
  if (at_end) {
    end_call(out);
    state_ = State::kText;
  }
  return false;
}

bool ToolCallParser::step_tail(ToolParseDelta& out, bool at_end) {
  // After the arguments: "}\n" up to </tool_call>, dropped.
  const size_t end_at = buf_.find(syntax_.call_end);
  if (end_at == std::string::npos) {
    if (at_end) {
      buf_.clear();
      end_call(out);
      state_ = State::kText;
      return false;
    }
    buf_.erase(0, buf_.size() - partial_marker_suffix(buf_, {syntax_.call_end}));
    return false;
  }
  buf_.erase(0, end_at + syntax_.call_end.size());
  end_call(out);
  state_ = State::kText;
  return true;
}

bool ToolCallParser::step_buffered(ToolParseDelta& out, bool at_end) {
  // Look only where the end marker could newly be (a long body arrives in many pieces).
  const size_t from = searched_ > syntax_.call_end.size() ? searched_ - syntax_.call_end.size() : 0;
  const size_t end_at = buf_.find(syntax_.call_end, from);
  searched_ = buf_.size();
  if (end_at == std::string::npos && !at_end) return false;
  searched_ = 0;
  const size_t body_end = end_at == std::string::npos ? buf_.size() : end_at;
  const size_t consumed = end_at == std::string::npos ? buf_.size() : end_at + syntax_.call_end.size();
  const nlohmann::json body = nlohmann::json::parse(buf_.substr(0, body_end), nullptr, /*allow_exceptions=*/false);
  const nlohmann::json* name = nullptr;
  const nlohmann::json* args = nullptr;
  if (body.is_object()) {
    if (auto it = body.find("name"); it != body.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      name = &*it;
    }
    for (const char* key : {"arguments", "parameters"}) {
      if (auto it = body.find(key); it != body.end() && !args) args = &*it;
    }
  }
  state_ = State::kText;
  if (!name) {
    fail_call(out, consumed);
    return true;
  }
  std::string arguments = !args             ? "{}"
                          : args->is_string() ? args->get<std::string>()
                                              : args->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  begin_call(out, name->get<std::string>(), std::move(arguments));
  buf_.erase(0, consumed);
  end_call(out);
  return true;
}

}  // namespace tandem::server
