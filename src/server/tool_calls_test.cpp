// ToolCallParser: both syntaxes parsed whole and split at every byte (and in random pieces) give the same
// content and calls; streamed fragments are well-formed; malformed output follows the documented decisions.
#include "server/tool_calls.h"

#include <gtest/gtest.h>

#include <random>

namespace tandem::server {
namespace {

ToolCallSyntax deepseek() {
  ToolCallSyntax s;
  s.family = ToolCallSyntax::Family::kDeepSeekV3;
  s.section_begin = "<｜tool▁calls▁begin｜>";
  s.section_end = "<｜tool▁calls▁end｜>";
  s.call_begin = "<｜tool▁call▁begin｜>";
  s.call_end = "<｜tool▁call▁end｜>";
  s.separator = "<｜tool▁sep｜>";
  s.special_texts = {s.section_begin, s.section_end, s.call_begin, s.call_end, s.separator};
  return s;
}

ToolCallSyntax hermes() {
  ToolCallSyntax s;
  s.family = ToolCallSyntax::Family::kHermes;
  s.call_begin = "<tool_call>";
  s.call_end = "</tool_call>";
  return s;
}

struct Parsed {
  std::string content;
  std::vector<ToolCall> calls;
  std::vector<ToolCallFragment> fragments;
  bool saturated = false;
  bool operator==(const Parsed& o) const {
    if (content != o.content || calls.size() != o.calls.size()) return false;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i].id != o.calls[i].id || calls[i].name != o.calls[i].name || calls[i].arguments != o.calls[i].arguments) {
        return false;
      }
    }
    return true;
  }
};

std::ostream& operator<<(std::ostream& os, const Parsed& p) {
  os << "content=" << testing::PrintToString(p.content);
  for (const ToolCall& c : p.calls) os << " call{" << c.id << ", " << c.name << ", " << testing::PrintToString(c.arguments) << "}";
  return os;
}

// Feeds `pieces` one push at a time, then finish(); ids are call_0, call_1, ...
Parsed parse(const ToolCallSyntax& syntax, const std::vector<std::string>& pieces, size_t max_calls = SIZE_MAX) {
  int next = 0;
  ToolCallParser parser(syntax, max_calls, [&next] { return "call_" + std::to_string(next++); });
  Parsed out;
  const auto take = [&](ToolParseDelta d) {
    out.content += d.content;
    out.fragments.insert(out.fragments.end(), d.fragments.begin(), d.fragments.end());
  };
  for (const std::string& p : pieces) take(parser.push(p));
  out.saturated = parser.saturated();
  take(parser.finish());
  apply_fragments(out.calls, out.fragments);
  return out;
}

std::vector<std::string> bytes(const std::string& s) {
  std::vector<std::string> out;
  for (char c : s) out.emplace_back(1, c);
  return out;
}

// Checks that `text` parses to `expected` whole, byte by byte, and in 50 random splits; and that the fragments
// are well-formed: a call's first fragment has begin, id and name, its last has end, indexes count up.
void expect_parse(const ToolCallSyntax& syntax, const std::string& text, const Parsed& expected,
                  size_t max_calls = SIZE_MAX) {
  const Parsed whole = parse(syntax, {text}, max_calls);
  EXPECT_EQ(whole, expected) << "whole: " << text;
  EXPECT_EQ(parse(syntax, bytes(text), max_calls), expected) << "byte by byte: " << text;
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::vector<std::string> pieces;
    for (size_t at = 0; at < text.size();) {
      const size_t n = std::min(text.size() - at, static_cast<size_t>(rng() % 9));
      pieces.push_back(text.substr(at, n));
      at += n;
    }
    EXPECT_EQ(parse(syntax, pieces, max_calls), expected) << "random split " << round << ": " << text;
  }
  // Fragment shape, in the byte-by-byte run (the most fragments).
  const Parsed split = parse(syntax, bytes(text), max_calls);
  std::vector<int> state(split.calls.size(), 0);  // 0 not begun, 1 open, 2 ended
  for (const ToolCallFragment& f : split.fragments) {
    ASSERT_LT(f.index, state.size());
    if (f.begin) {
      EXPECT_EQ(state[f.index], 0);
      EXPECT_FALSE(f.id.empty());
      EXPECT_FALSE(f.name.empty());
      if (f.index > 0) {
        EXPECT_EQ(state[f.index - 1], 2) << "a call begins before the previous one ended";
      }
      state[f.index] = 1;
    } else {
      EXPECT_EQ(state[f.index], 1) << "a fragment outside its call";
    }
    if (f.end) state[f.index] = 2;
  }
  for (int s : state) EXPECT_EQ(s, 2) << "a call never ended";
}

Parsed expect_calls(std::string content, std::vector<std::pair<std::string, std::string>> calls) {
  Parsed p;
  p.content = std::move(content);
  for (size_t i = 0; i < calls.size(); ++i) p.calls.push_back({"call_" + std::to_string(i), calls[i].first, calls[i].second});
  return p;
}

const std::string kDsB = "<｜tool▁calls▁begin｜>", kDsE = "<｜tool▁calls▁end｜>", kDsCb = "<｜tool▁call▁begin｜>",
                  kDsCe = "<｜tool▁call▁end｜>", kDsSep = "<｜tool▁sep｜>";

std::string ds_call(const std::string& name, const std::string& args) {
  return kDsCb + "function" + kDsSep + name + "\n```json\n" + args + "\n```" + kDsCe;
}

TEST(ToolCallParser, DeepSeekCallsWithTextBefore) {
  const std::string text = "Let me look that up.\n\n" + kDsB + ds_call("get_weather", R"({"city": "Paris", "unit": "c"})") +
                           "\n" + ds_call("get_time", "{}") + kDsE;
  expect_parse(deepseek(), text,
               expect_calls("Let me look that up.", {{"get_weather", R"({"city": "Paris", "unit": "c"})"}, {"get_time", "{}"}}));
}

TEST(ToolCallParser, DeepSeekArgumentsKeepTheirOwnBackticksAndWhitespace) {
  const std::string args = "{\n  \"code\": \"```py\\nx = 1\\n```\",\n  \"n\": 2\n}";
  expect_parse(deepseek(), kDsB + ds_call("run", args) + kDsE, expect_calls("", {{"run", args}}));
}

TEST(ToolCallParser, DeepSeekLenientForms) {
  // No section marker, no fence, no closing section marker, EOS right after the call.
  expect_parse(deepseek(), kDsCb + "function" + kDsSep + "f\n{\"x\": 1}" + kDsCe, expect_calls("", {{"f", "{\"x\": 1}"}}));
  // "```" without a language word, and text after the calls.
  expect_parse(deepseek(), kDsB + kDsCb + "function" + kDsSep + "g\n```\n[1, 2]\n```" + kDsCe + kDsE + "\n\nDone.",
               expect_calls("Done.", {{"g", "[1, 2]"}}));
}

TEST(ToolCallParser, DeepSeekStrayMarkersNeverReachContent) {
  expect_parse(deepseek(), "a" + kDsSep + "b" + kDsCe + "c" + kDsE, expect_calls("abc", {}));
  // A partial marker spelling at the end of the output is text.
  expect_parse(deepseek(), "x <｜tool", expect_calls("x <｜tool", {}));
}

TEST(ToolCallParser, DeepSeekCutInsideArgumentsEndsTheCallWithWhatWasWritten) {
  expect_parse(deepseek(), kDsB + kDsCb + "function" + kDsSep + "f\n```json\n{\"a\": [1, 2",
               expect_calls("", {{"f", "{\"a\": [1, 2"}}));
  // Cut right after the name: a call with empty arguments.
  expect_parse(deepseek(), kDsB + kDsCb + "function" + kDsSep + "f\n", expect_calls("", {{"f", ""}}));
}

TEST(ToolCallParser, DeepSeekCallWithoutANameIsContent) {
  const Parsed p = parse(deepseek(), {kDsB + kDsCb + "function" + kDsSep + "\n```json\n{}\n```" + kDsCe + kDsE});
  EXPECT_TRUE(p.calls.empty());
  EXPECT_NE(p.content.find("{}"), std::string::npos) << p;
  EXPECT_EQ(p.content.find("<｜"), std::string::npos) << p;
  expect_parse(deepseek(), kDsB + kDsCb + "function" + kDsSep + "\n```json\n{}\n```" + kDsCe + kDsE, p);
  // A call begin with no separator before the output ends.
  expect_parse(deepseek(), "hi " + kDsB + kDsCb + "function", expect_calls("hi function", {}));
}

TEST(ToolCallParser, InvalidJsonArgumentsAndUnknownNamesAreReturnedAsWritten) {
  expect_parse(deepseek(), kDsB + ds_call("no_such_tool", "{not json") + kDsE, expect_calls("", {{"no_such_tool", "{not json"}}));
  expect_parse(hermes(), "<tool_call>\n{\"name\": \"no_such_tool\", \"arguments\": {oops}}\n</tool_call>",
               expect_calls("", {{"no_such_tool", "{oops}"}}));
}

TEST(ToolCallParser, MaxCallsDropsWhatFollows) {
  const std::string text = kDsB + ds_call("a", "{}") + "\n" + ds_call("b", "{}") + kDsE + "tail";
  expect_parse(deepseek(), text, expect_calls("", {{"a", "{}"}}), 1);
  EXPECT_TRUE(parse(deepseek(), {text}, 1).saturated);
  expect_parse(deepseek(), text, expect_calls("", {{"a", "{}"}, {"b", "{}"}}), 2);  // saturated after the second
  expect_parse(deepseek(), text, expect_calls("tail", {{"a", "{}"}, {"b", "{}"}}));
}

std::string hermes_call(const std::string& name, const std::string& args) {
  return "<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": " + args + "}\n</tool_call>";
}

TEST(ToolCallParser, HermesCallsWithTextBefore) {
  const std::string args = R"({"city": "Par}is \"x\" {", "days": [1, {"a": null}]})";
  const std::string text = "I'll check.\n" + hermes_call("get_weather", args) + "\n" + hermes_call("f", "{}") + "\n";
  expect_parse(hermes(), text, expect_calls("I'll check.", {{"get_weather", args}, {"f", "{}"}}));
}

TEST(ToolCallParser, HermesScalarAndCompactArguments) {
  expect_parse(hermes(), "<tool_call>{\"name\":\"f\",\"arguments\":5}</tool_call>", expect_calls("", {{"f", "5"}}));
  expect_parse(hermes(), "<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}</tool_call>",
               expect_calls("", {{"f", "\"{\\\"a\\\":1}\""}}));
}

TEST(ToolCallParser, HermesOtherKeyOrdersAreParsedWhole) {
  expect_parse(hermes(), "<tool_call>\n{\"arguments\": {\"a\": 1}, \"name\": \"f\"}\n</tool_call>",
               expect_calls("", {{"f", "{\"a\":1}"}}));
  expect_parse(hermes(), "<tool_call>{\"name\": \"f\", \"parameters\": {\"b\": 2}}</tool_call>",
               expect_calls("", {{"f", "{\"b\":2}"}}));
  // An escaped name is read by the whole-body parse.
  expect_parse(hermes(), "<tool_call>{\"name\": \"f\\u0067\", \"arguments\": {}}</tool_call>", expect_calls("", {{"fg", "{}"}}));
}

TEST(ToolCallParser, HermesGarbageIsContent) {
  expect_parse(hermes(), "see <tool_call>hello</tool_call> bye", expect_calls("see <tool_call>hello</tool_call> bye", {}));
  expect_parse(hermes(), "x < y <tool", expect_calls("x < y <tool", {}));
  expect_parse(hermes(), "<tool_call>{\"name\": \"f\"", expect_calls("<tool_call>{\"name\": \"f\"", {}));
}

TEST(ToolCallParser, HermesCutInsideArguments) {
  expect_parse(hermes(), "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": [1, 2",
               expect_calls("", {{"f", "{\"a\": [1, 2"}}));
  // </tool_call> inside an unfinished value ends the call there.
  expect_parse(hermes(), "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1</tool_call>ok",
               expect_calls("ok", {{"f", "{\"a\": 1"}}));
}

TEST(ToolCallParser, PlainTextIsUntouched) {
  for (const ToolCallSyntax& s : {deepseek(), hermes()}) {
    expect_parse(s, "  Hello,\n world <b>bold</b>\n\n", expect_calls("  Hello,\n world <b>bold</b>\n\n", {}));
  }
}

TEST(ToolCallSyntax, FormattedCallsParseBack) {
  const std::vector<ToolCall> calls = {{"call_0", "get_weather", R"({"city": "Paris"})"}, {"call_1", "noop", "{}"}};
  for (const ToolCallSyntax& s : {deepseek(), hermes()}) {
    Parsed expected;
    expected.calls = calls;
    expect_parse(s, s.format_calls(calls), expected);
    const ToolCallSyntax::Frame f = s.call_frame("get_weather");
    expected.calls.resize(1);
    expect_parse(s, f.prefix + calls[0].arguments + f.suffix, expected);
  }
}

TEST(MarkerStripper, RemovesMarkersSplitAnywhere) {
  const std::string text = "think " + kDsB + "about" + kDsSep + kDsSep + " it <｜x";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    MarkerStripper s(deepseek().special_texts);
    std::string out = s.push(text.substr(0, cut));
    out += s.push(text.substr(cut));
    out += s.finish();
    EXPECT_EQ(out, "think about it <｜x") << cut;
  }
}

}  // namespace
}  // namespace tandem::server
