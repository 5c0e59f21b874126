// The schema compiler against an independent reference (test_support.h): random documents generated from each
// schema are accepted, every mutation the matcher still accepts is valid compact JSON for the schema, and
// unsupported or unsatisfiable schemas are refused naming the keyword.
#include <gtest/gtest.h>

#include "grammar/grammar.h"
#include "grammar/matcher.h"
#include "grammar/test_support.h"

namespace tandem::grammar {
namespace {

using nlohmann::json;

struct Case {
  const char* name;
  json schema;
  std::vector<std::string> accepted;  // hand-written documents
  std::vector<std::string> rejected;
};

std::vector<Case> cases() {
  return {
      {"object_required_optional",
       {{"type", "object"},
        {"properties", {{"name", {{"type", "string"}}}, {"age", {{"type", "integer"}}}, {"ok", {{"type", "boolean"}}}}},
        {"required", {"name", "age"}},
        {"additionalProperties", false}},
       {R"({"name":"a","age":3})", R"({"age":-3,"ok":false,"name":""})"},
       {R"({"name":"a"})", R"({"name":"a","age":3,"x":1})", R"({"name":"a","age":3,"age":4})", R"({"name":1,"age":3})",
        R"({"name":"a","age":3.5})", R"([])"}},
      {"nested_objects_and_arrays",
       {{"type", "object"},
        {"properties",
         {{"user", {{"type", "object"},
                    {"properties", {{"id", {{"type", "integer"}}}, {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
                    {"required", {"id", "tags"}}}},
          {"scores", {{"type", "array"}, {"items", {{"type", "number"}}}, {"minItems", 1}, {"maxItems", 3}}}}},
        {"required", {"user", "scores"}}},
       {R"({"user":{"id":1,"tags":[]},"scores":[0.5]})", R"({"scores":[1,2,3e2],"user":{"tags":["a","b"],"id":0}})"},
       {R"({"user":{"id":1,"tags":[]},"scores":[]})", R"({"user":{"id":1,"tags":[]},"scores":[1,2,3,4]})",
        R"({"user":{"id":1,"tags":[1]},"scores":[1]})"}},
      {"enum_and_const",
       {{"type", "object"},
        {"properties", {{"color", {{"enum", {"red", "green", 3, nullptr, json::array({1, 2})}}}},
                        {"kind", {{"const", "fixed"}}},
                        {"size", {{"type", "string"}, {"enum", {"S", "M", 4}}}}}},
        {"required", {"color", "kind"}}},
       {R"({"color":"red","kind":"fixed"})", R"({"kind":"fixed","color":[1,2],"size":"M"})", R"({"color":null,"kind":"fixed"})"},
       {R"({"color":"blue","kind":"fixed"})", R"({"color":"red","kind":"other"})", R"({"color":3,"kind":"fixed","size":4})",
        R"({"color":"re","kind":"fixed"})"}},
      {"anyof_with_shared_prefixes",
       {{"type", "object"},
        {"properties",
         {{"item", {{"anyOf", {{{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}, {"b", {{"type", "string"}}}}}, {"required", {"a"}}},
                               {{"type", "object"}, {"properties", {{"a", {{"type", "string"}}}, {"c", {{"type", "null"}}}}}, {"required", {"a", "c"}}},
                               {{"type", "null"}},
                               {{"type", "array"}, {"items", {{"type", "integer"}}}}}}}}}},
        {"required", {"item"}}},
       {R"({"item":{"a":1}})", R"({"item":{"a":"x","c":null}})", R"({"item":null})", R"({"item":[1,2]})",
        R"({"item":{"b":"s","a":2}})"},
       {R"({"item":{"a":"x"}})", R"({"item":{"a":1,"c":null}})", R"({"item":[1.5]})", R"({"item":"s"})"}},
      {"type_arrays_and_numbers",
       {{"type", "object"},
        {"properties", {{"n", {{"type", {"number", "null"}}}}, {"i", {{"type", {"integer", "string"}}, {"maxLength", 2}}},
                        {"b", {{"type", "boolean"}}}}},
        {"required", {"n", "i", "b"}}},
       {R"({"n":null,"i":"ab","b":true})", R"({"n":-0.5e-3,"i":12,"b":false})"},
       {R"({"n":"1","i":1,"b":true})", R"({"n":1,"i":"abc","b":true})", R"({"n":1,"i":1.5,"b":true})"}},
      {"string_lengths_in_code_points",
       {{"type", "object"},
        {"properties", {{"s", {{"type", "string"}, {"minLength", 2}, {"maxLength", 3}}}}},
        {"required", {"s"}}},
       {R"({"s":"ab"})", R"({"s":"中文字"})", R"({"s":"a\n\u00e9"})"},
       {R"({"s":"a"})", R"({"s":"abcd"})", R"({"s":"中文字x"})"}},
      {"refs_and_recursion",
       {{"$defs", {{"node", {{"type", "object"},
                             {"properties", {{"v", {{"type", "integer"}}}, {"kids", {{"type", "array"}, {"items", {{"$ref", "#/$defs/node"}}}, {"maxItems", 2}}}}},
                             {"required", {"v"}}}}}},
        {"$ref", "#/$defs/node"}},
       {R"({"v":1})", R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[]}]})"},
       {R"({"kids":[]})", R"({"v":1,"kids":[{"v":2},{"v":3},{"v":4}]})"}},
      {"definitions_and_free_objects",
       {{"definitions", {{"map", {{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}}}}},
        {"type", "object"},
        {"properties", {{"counts", {{"$ref", "#/definitions/map"}}}, {"empty", {{"type", "object"}, {"additionalProperties", false}}},
                        {"anything", json::object()}}},
        {"required", {"counts", "empty"}}},
       {R"({"counts":{},"empty":{}})", R"({"counts":{"a":1,"b":-2},"empty":{},"anything":[{"x":null}]})"},
       {R"({"counts":{"a":"1"},"empty":{}})", R"({"counts":{},"empty":{"a":1}})"}},
      {"root_array_and_annotations",
       {{"type", "array"}, {"title", "t"}, {"description", "d"}, {"$schema", "https://json-schema.org/draft/2020-12/schema"},
        {"items", {{"type", "object"}, {"properties", {{"x", {{"type", "number"}, {"description", "ignored"}}}}}, {"required", {"x"}}, {"default", json::object()}}},
        {"maxItems", 2}},
       {R"([])", R"([{"x":1},{"x":2}])"},
       {R"([{"x":1},{"x":2},{"x":3}])", R"([{}])", R"({})"}},
      {"required_without_property_takes_any_value",
       {{"type", "object"}, {"properties", {{"a", {{"type", "integer"}}}}}, {"required", {"a", "b"}}},
       {R"({"a":1,"b":{"q":[1]}})", R"({"b":"x","a":2})"},
       {R"({"a":1})", R"({"a":1,"b":1,"c":1})"}},
  };
}

// One byte changed, inserted or removed at a random place.
std::string mutate(std::string s, std::mt19937_64& rng) {
  static const char kBytes[] = "{}[]\",:0123456789-+.eE \\ntrufalsx\x01\xC3\xA9";
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const size_t at = pick(s.size() + 1);
  const char b = kBytes[pick(sizeof(kBytes) - 1)];
  switch (pick(3)) {
    case 0: if (at < s.size()) s[at] = b; break;
    case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), b); break;
    default: if (at < s.size()) s.erase(at, 1); break;
  }
  return s;
}

class SchemaCases : public ::testing::TestWithParam<Case> {};

TEST_P(SchemaCases, AgreesWithTheReference) {
  const Case& c = GetParam();
  auto compiled = compile_json_schema(c.schema);
  ASSERT_TRUE(std::holds_alternative<GrammarPtr>(compiled)) << std::get<SchemaError>(compiled).message;
  const GrammarPtr g = std::get<GrammarPtr>(compiled);
  for (const auto& doc : c.accepted) {
    ASSERT_TRUE(testing::valid(json::parse(doc), c.schema, c.schema)) << "reference refuses " << doc;
    EXPECT_TRUE(Matcher::accepts(g, doc)) << doc;
  }
  for (const auto& doc : c.rejected) EXPECT_FALSE(Matcher::accepts(g, doc)) << doc;

  // The shortest document is accepted, valid, and as long as min_bytes() says.
  const std::string shortest = Matcher(g).shortest_completion();
  EXPECT_EQ(shortest.size(), g->min_bytes());
  EXPECT_TRUE(Matcher::accepts(g, shortest)) << shortest;
  EXPECT_TRUE(testing::valid(json::parse(shortest), c.schema, c.schema)) << shortest;

  testing::Generator gen(c.schema, 1234);
  std::mt19937_64 rng(99);
  int accepted_mutants = 0;
  for (int i = 0; i < 150; ++i) {
    const std::string doc = gen.value(c.schema);
    ASSERT_TRUE(testing::valid(json::parse(doc), c.schema, c.schema)) << "generator bug: " << doc;
    EXPECT_TRUE(Matcher::accepts(g, doc)) << doc;
    for (int k = 0; k < 10; ++k) {
      const std::string m = mutate(doc, rng);
      if (!Matcher::accepts(g, m)) continue;
      ++accepted_mutants;
      json parsed;
      ASSERT_NO_THROW(parsed = json::parse(m)) << "accepted non-JSON: " << m;
      EXPECT_TRUE(testing::compact(m)) << m;
      EXPECT_TRUE(testing::valid(parsed, c.schema, c.schema)) << "accepted invalid: " << m;
    }
  }
  EXPECT_GT(accepted_mutants, 0);  // the mutation check did look at something
}

INSTANTIATE_TEST_SUITE_P(Schemas, SchemaCases, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& param) { return std::string(param.param.name); });

SchemaError refusal(const json& schema) {
  auto compiled = compile_json_schema(schema);
  if (!std::holds_alternative<SchemaError>(compiled)) {
    ADD_FAILURE() << "accepted " << schema.dump();
    return {};
  }
  return std::get<SchemaError>(compiled);
}

TEST(SchemaErrors, UnsupportedKeywordsAreNamed) {
  for (const char* keyword : {"pattern", "format", "oneOf", "allOf", "not", "if", "then", "else", "patternProperties",
                              "minimum", "maximum", "exclusiveMinimum", "multipleOf", "uniqueItems", "prefixItems",
                              "contains", "propertyNames", "dependentRequired", "minProperties", "nullable"}) {
    const json schema = {{"type", "object"},
                         {"properties", {{"x", {{"type", "string"}, {keyword, 1}}}}}};
    const SchemaError e = refusal(schema);
    EXPECT_EQ(e.keyword, keyword);
    EXPECT_EQ(e.path, "#/properties/x");
    EXPECT_NE(e.message.find(keyword), std::string::npos) << e.message;
  }
}

TEST(SchemaErrors, MalformedAndUnsatisfiableSchemas) {
  EXPECT_EQ(refusal({{"type", "bogus"}}).keyword, "type");
  EXPECT_EQ(refusal({{"type", json::array()}}).keyword, "type");
  EXPECT_EQ(refusal({{"type", "string"}, {"minLength", -1}}).keyword, "minLength");
  EXPECT_EQ(refusal({{"type", "array"}, {"maxItems", "3"}}).keyword, "maxItems");
  EXPECT_EQ(refusal({{"type", "array"}, {"items", json::array({json::object()})}}).keyword, "items");
  EXPECT_EQ(refusal({{"properties", 3}}).keyword, "properties");
  EXPECT_EQ(refusal({{"required", {1}}}).keyword, "required");
  EXPECT_EQ(refusal({{"anyOf", json::array()}}).keyword, "anyOf");
  EXPECT_EQ(refusal({{"anyOf", {{{"type", "null"}}}}, {"type", "null"}}).keyword, "type");
  EXPECT_EQ(refusal({{"$ref", "#/$defs/missing"}}).keyword, "$ref");
  EXPECT_EQ(refusal({{"$ref", "http://example.com/s.json"}}).keyword, "$ref");
  EXPECT_EQ(refusal({{"$ref", "#/$defs/a"}, {"type", "string"}}).keyword, "type");
  EXPECT_EQ(refusal({{"$defs", {{"a", {{"$ref", "#/$defs/b"}}}, {"b", {{"$ref", "#/$defs/a"}}}}}, {"$ref", "#/$defs/a"}}).keyword, "$ref");
  EXPECT_EQ(refusal(json::array()).path, "#");
  EXPECT_EQ(refusal(false).keyword, "");
  EXPECT_EQ(refusal({{"type", "string"}, {"minLength", 3}, {"maxLength", 2}}).keyword, "");
  EXPECT_EQ(refusal({{"type", "string"}, {"enum", {1, 2}}}).keyword, "");
  EXPECT_EQ(refusal({{"type", "object"}, {"properties", {{"a", false}}}, {"required", {"a"}}}).keyword, "");
  EXPECT_EQ(refusal({{"type", "object"}, {"required", {"zz"}}, {"additionalProperties", false}}).keyword, "required");
  // A required property that needs itself has no finite document.
  EXPECT_NE(refusal({{"type", "object"}, {"properties", {{"a", {{"$ref", "#"}}}}}, {"required", {"a"}}}).message, "");
  json many = {{"type", "object"}, {"properties", json::object()}};
  for (int i = 0; i < 65; ++i) many["properties"]["p" + std::to_string(i)] = {{"type", "null"}};
  EXPECT_EQ(refusal(many).keyword, "properties");
}

TEST(Schema, OptionalUnsatisfiablePartsAreDropped) {
  // An optional property with no value, an anyOf branch with none, items with none: never started.
  const json s = json::parse(R"({"type": "object", "properties": {"never": false,
      "a": {"anyOf": [false, {"type": "null"}]}, "list": {"type": "array", "items": false}}})");
  auto compiled = compile_json_schema(s);
  ASSERT_TRUE(std::holds_alternative<GrammarPtr>(compiled));
  const GrammarPtr g = std::get<GrammarPtr>(compiled);
  EXPECT_TRUE(Matcher::accepts(g, R"({"a":null,"list":[]})"));
  EXPECT_FALSE(Matcher::accepts(g, R"({"never":1})"));
  Matcher m(g);
  EXPECT_FALSE(m.advance(std::string_view("{\"n")));
  EXPECT_FALSE(m.advance(std::string_view("{\"list\":[1")));
}

TEST(Schema, EmptySchemaAndTrueAreAnyValue) {
  for (const json& s : {json::object(), json(true), json{{"description", "x"}}}) {
    const GrammarPtr g = std::get<GrammarPtr>(compile_json_schema(s));
    for (const char* doc : {"1", "\"s\"", "null", "[true]", "{\"a\":{}}"}) EXPECT_TRUE(Matcher::accepts(g, doc)) << doc;
    EXPECT_EQ(g->min_bytes(), 1u);
  }
}

}  // namespace
}  // namespace tandem::grammar
