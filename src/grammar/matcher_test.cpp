#include "grammar/matcher.h"

#include <gtest/gtest.h>

#include <random>

#include "grammar/test_support.h"

namespace tandem::grammar {
namespace {

using nlohmann::json;

GrammarPtr schema(const json& s) {
  auto g = compile_json_schema(s);
  if (auto* e = std::get_if<SchemaError>(&g)) {
    ADD_FAILURE() << "schema refused: " << e->message;
    return json_object_grammar();
  }
  return std::get<GrammarPtr>(g);
}

bool accepts(const GrammarPtr& g, std::string_view text) { return Matcher::accepts(g, text); }

// The distance is exact iff: 0 exactly where the document may end; from every state some byte lowers it by one;
// no byte lowers it by more. Checked at every prefix of `text`.
void expect_exact_distances(const GrammarPtr& g, std::string_view text) {
  Matcher m(g);
  for (size_t i = 0; i <= text.size(); ++i) {
    const uint64_t d = m.min_bytes_to_complete();
    ASSERT_LT(d, uint64_t{1} << 40) << "prefix " << text.substr(0, i);
    EXPECT_EQ(d == 0, m.is_complete()) << "prefix " << text.substr(0, i);
    bool lowered = d == 0;
    for (int c = 0; c < 256; ++c) {
      Matcher next = m;
      if (!next.advance(static_cast<uint8_t>(c))) continue;
      const uint64_t d2 = next.min_bytes_to_complete();
      EXPECT_GE(d2 + 1, d) << "byte " << c << " after " << text.substr(0, i);
      lowered = lowered || d2 + 1 == d;
    }
    EXPECT_TRUE(lowered) << "no byte shortens " << text.substr(0, i);
    const std::string tail = m.shortest_completion();
    EXPECT_EQ(tail.size(), d);
    Matcher done = m;
    EXPECT_TRUE(done.advance(tail) && done.is_complete()) << text.substr(0, i) << " + " << tail;
    if (i < text.size()) {
      ASSERT_TRUE(m.advance(static_cast<uint8_t>(text[i]))) << "refused at " << i << ": " << text;
    }
  }
}

TEST(JsonObjectGrammar, AcceptsCompactObjectsOnly) {
  const GrammarPtr g = json_object_grammar();
  for (const char* ok : {R"({})", R"({"a":1})", R"({"a":[1,2.5e3,-0.1,0,-0,1E+2,3e-07],"b":{"c":null,"d":true}})",
                         R"({"":"","x":{"y":{"z":[[],{}]}}})", R"({"s":"q\"\\\/\b\f\n\r\t\u00e9\uD7FF\uE000é中😀"})",
                         R"({"a":false,"a":"dup keys are JSON"})"}) {
    EXPECT_TRUE(accepts(g, ok)) << ok;
  }
  for (const char* bad : {"", " {}", "{ }", "{} ", "{\"a\": 1}", "[1]", "\"s\"", "1", "null", R"({"a":01})",
                          R"({"a":1,})", R"({"a"})", R"({"a":})", R"({a:1})", R"({"a":1.})", R"({"a":.5})",
                          R"({"a":1e})", R"({"a":-})", R"({"a":+1})", R"({"a":tru})", R"({"a":True})", "{}{}",
                          R"({"a":"\x"})", R"({"a":"\u12"})", R"({"a":"\uD800"})", R"({"a":"\udfff"})",
                          "{\"a\":\"\x01\"}", "{\"a\":\"\n\"}", "{\"a\":\"\xC0\x80\"}", "{\"a\":\"\xE0\x80\x80\"}",
                          "{\"a\":\"\xED\xA0\x80\"}", "{\"a\":\"\xF4\x90\x80\x80\"}", "{\"a\":\"\xFF\"}",
                          "{\"a\":\"\xC3\"}", R"({"a":1234567890123456})", R"({"a":0.1234567890123456})",
                          R"({"a":1e123})"}) {
    EXPECT_FALSE(accepts(g, bad)) << bad;
  }
}

TEST(JsonObjectGrammar, NestingIsBounded) {
  const GrammarPtr g = json_object_grammar();
  std::string deep = "{\"a\":";
  for (int i = 0; i < kMaxNesting - 2; ++i) deep += "[";
  Matcher m(g);
  ASSERT_TRUE(m.advance(deep));
  EXPECT_FALSE(m.advance(std::string_view("[[")));  // one more level is allowed, two are not
  EXPECT_TRUE(m.advance(std::string_view("[1")));
  EXPECT_EQ(m.min_bytes_to_complete(), static_cast<uint64_t>(kMaxNesting - 1 + 1));
}

TEST(JsonObjectGrammar, DistancesAreExactAlongRandomDocuments) {
  const GrammarPtr g = json_object_grammar();
  testing::Generator gen(json::object(), 7);
  for (int i = 0; i < 12; ++i) {
    const std::string doc = gen.free_object(json::object(), 0);
    ASSERT_TRUE(accepts(g, doc)) << doc;
    expect_exact_distances(g, doc);
  }
}

TEST(Matcher, AdvanceIsAllOrNothing) {
  Matcher m(json_object_grammar());
  ASSERT_TRUE(m.advance(std::string_view("{\"a\":")));
  EXPECT_FALSE(m.advance(std::string_view("1}x")));
  EXPECT_EQ(m.min_bytes_to_complete(), 2u);  // still after the colon: `1}`
  EXPECT_TRUE(m.advance(std::string_view("1}")));
  EXPECT_TRUE(m.is_complete());
  EXPECT_FALSE(m.can_continue());
}

TEST(Matcher, RootNumberMayEndOrContinue) {
  const GrammarPtr g = schema({{"type", "integer"}});
  Matcher m(g);
  ASSERT_TRUE(m.advance(std::string_view("-12")));
  EXPECT_TRUE(m.is_complete());
  EXPECT_TRUE(m.can_continue());
  EXPECT_FALSE(m.advance('.'));
  EXPECT_TRUE(accepts(g, "0"));
  EXPECT_FALSE(accepts(g, "1.5"));
  EXPECT_FALSE(accepts(g, "-"));
}

TEST(Sequence, LiteralsAroundASchemaValue) {
  // What a forced tool call compiles to: fixed text, the arguments object, fixed text.
  const json params = {{"type", "object"},
                       {"properties", {{"city", {{"type", "string"}}}, {"unit", {{"enum", {"c", "f"}}}}}},
                       {"required", {"city"}}};
  const std::vector<GrammarPiece> pieces = {GrammarPiece::text("<tool_call>{\"name\":\"get_weather\",\"arguments\":"),
                                            GrammarPiece::json(params), GrammarPiece::text("}</tool_call>")};
  auto compiled = compile_sequence(pieces);
  ASSERT_TRUE(std::holds_alternative<GrammarPtr>(compiled));
  const GrammarPtr g = std::get<GrammarPtr>(compiled);
  EXPECT_TRUE(accepts(g, R"(<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>)"));
  EXPECT_TRUE(accepts(g, R"(<tool_call>{"name":"get_weather","arguments":{"unit":"f","city":""}}</tool_call>)"));
  EXPECT_FALSE(accepts(g, R"(<tool_call>{"name":"get_weather","arguments":{}}</tool_call>)"));  // city required
  EXPECT_FALSE(accepts(g, R"(<tool_call>{"name":"get_time","arguments":{"city":"x"}}</tool_call>)"));
  EXPECT_FALSE(accepts(g, R"(<tool_call>{"name":"get_weather","arguments":{"city":"x"}})"));
  Matcher m(g);
  EXPECT_EQ(m.shortest_completion(), R"(<tool_call>{"name":"get_weather","arguments":{"city":""}}</tool_call>)");
  EXPECT_EQ(g->min_bytes(), m.shortest_completion().size());
  expect_exact_distances(g, R"(<tool_call>{"name":"get_weather","arguments":{"unit":"c","city":"Lyon"}}</tool_call>)");

  // Several values, and any object between literals. Numbers are read greedily: a number followed directly by
  // another value needs a literal between them.
  const std::vector<GrammarPiece> two = {GrammarPiece::text("A"), GrammarPiece::any_object(), GrammarPiece::text("B"),
                                         GrammarPiece::json({{"type", "integer"}}), GrammarPiece::text(","),
                                         GrammarPiece::json({{"const", 7}})};
  const GrammarPtr g2 = std::get<GrammarPtr>(compile_sequence(two));
  EXPECT_TRUE(accepts(g2, R"(A{"x":[1]}B-37,7)"));
  EXPECT_FALSE(accepts(g2, R"(A{}B-37,8)"));
  EXPECT_FALSE(accepts(g2, R"(A{}B-37)"));
  EXPECT_EQ(Matcher(g2).shortest_completion(), "A{}B0,7");
  expect_exact_distances(g2, R"(A{"k":"v"}B12,7)");
}

TEST(Sequence, ChoiceBetweenAlternatives) {
  // What tool_choice "required" compiles to: a common start, then one of the tools' frames with its own schema.
  const json weather = {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}, {"required", {"city"}}};
  const json time = {{"type", "object"}, {"properties", {{"zone", {{"enum", {"utc", "cet"}}}}}}, {"required", {"zone"}}};
  const std::vector<GrammarPiece> pieces = {
      GrammarPiece::text("<call>"),
      GrammarPiece::choice({{GrammarPiece::text("get_weather:"), GrammarPiece::json(weather)},
                            {GrammarPiece::text("get_time:"), GrammarPiece::json(time)},
                            {GrammarPiece::text("get_t:"), GrammarPiece::json({{"type", "integer"}})}}),
      GrammarPiece::text("</call>")};
  const GrammarPtr g = std::get<GrammarPtr>(compile_sequence(pieces));
  EXPECT_TRUE(accepts(g, R"(<call>get_weather:{"city":"x"}</call>)"));
  EXPECT_TRUE(accepts(g, R"(<call>get_time:{"zone":"cet"}</call>)"));
  EXPECT_TRUE(accepts(g, R"(<call>get_t:-12</call>)"));  // a number ending the alternative
  EXPECT_FALSE(accepts(g, R"(<call>get_time:{"city":"x"}</call>)"));  // the other tool's arguments
  EXPECT_FALSE(accepts(g, R"(<call>get_weather:{"zone":"utc"}</call>)"));
  EXPECT_FALSE(accepts(g, R"(<call>get_weather:{"city":"x"})"));
  EXPECT_FALSE(accepts(g, R"(<call>get_x:{}</call>)"));
  EXPECT_EQ(Matcher(g).shortest_completion(), "<call>get_t:0</call>");
  EXPECT_EQ(g->min_bytes(), std::string("<call>get_t:0</call>").size());
  expect_exact_distances(g, R"(<call>get_time:{"zone":"utc"}</call>)");
  expect_exact_distances(g, R"(<call>get_weather:{"city":"abc"}</call>)");

  // Nested choices, an alternative that ends the document, and the limits.
  const std::vector<GrammarPiece> nested = {
      GrammarPiece::choice({{GrammarPiece::text("a"), GrammarPiece::choice({{GrammarPiece::text("b")}, {}})},
                            {GrammarPiece::any_object()}})};
  const GrammarPtr g2 = std::get<GrammarPtr>(compile_sequence(nested));
  for (const char* ok : {"ab", "a", "{}"}) EXPECT_TRUE(accepts(g2, ok)) << ok;
  for (const char* bad : {"", "b", "abb", "a{}"}) EXPECT_FALSE(accepts(g2, bad)) << bad;
  EXPECT_TRUE(std::holds_alternative<SchemaError>(compile_sequence(std::vector{GrammarPiece::choice({})})));
  std::vector<std::vector<GrammarPiece>> many(kMaxAlternatives + 1, std::vector{GrammarPiece::text("x")});
  EXPECT_TRUE(std::holds_alternative<SchemaError>(compile_sequence(std::vector{GrammarPiece::choice(many)})));
  many.pop_back();
  EXPECT_TRUE(std::holds_alternative<GrammarPtr>(compile_sequence(std::vector{GrammarPiece::choice(many)})));
  // A schema error inside an alternative is reported as such.
  const auto bad_schema = compile_sequence(std::vector{GrammarPiece::choice({{GrammarPiece::json({{"pattern", "x"}})}})});
  ASSERT_TRUE(std::holds_alternative<SchemaError>(bad_schema));
  EXPECT_EQ(std::get<SchemaError>(bad_schema).keyword, "pattern");
}

}  // namespace
}  // namespace tandem::grammar
