// Error reporting of the chat template engine: syntax errors and unsupported constructs at parse time,
// runtime errors (jinja2's TypeError / UndefinedError cases) and raise_exception at render time, each
// with the line:column of the offending template text.
#include <gtest/gtest.h>

#include <string>

#include "chat/chat_template.h"

namespace tandem::chat {
namespace {

using Json = nlohmann::ordered_json;

std::string parse_error(std::string_view tpl) {
  auto parsed = ChatTemplate::parse(tpl);
  return parsed ? "(parsed)" : parsed.status().message();
}

std::string render_error(std::string_view tpl) {
  auto parsed = ChatTemplate::parse(tpl);
  if (!parsed) return "(parse error) " + parsed.status().message();
  auto out = parsed->render(Json::parse(R"({"messages": [{"role": "user", "content": "hi"}]})"));
  return out ? "(rendered) " + out.value() : out.status().message();
}

TEST(ChatTemplateErrors, UnclosedBlocksNameTheBlock) {
  EXPECT_EQ(parse_error("{% if x %}a"),
            "chat template syntax error at 1:12: unexpected end of template: the 'if' block opened at 1:4 is not "
            "closed (expected 'elif', 'else' or 'endif')");
  EXPECT_EQ(parse_error("{% for x in y %}\n  a{% endif %}"),
            "chat template syntax error at 2:7: unknown tag 'endif' (expected 'endfor' or 'else' to close the 'for' "
            "block)");
  EXPECT_EQ(parse_error("{% endfor %}"), "chat template syntax error at 1:4: unknown tag 'endfor'");
}

TEST(ChatTemplateErrors, LexicalErrors) {
  EXPECT_EQ(parse_error("{{ x"),
            "chat template syntax error at 1:1: missing end of expression ('}}') for the expression opened here");
  EXPECT_EQ(parse_error("{{ 'abc }}"), "chat template syntax error at 1:4: unterminated string literal");
  EXPECT_EQ(parse_error("ok\n{# never closed"), "chat template syntax error at 2:1: missing end of comment tag ('#}')");
  EXPECT_EQ(parse_error("{% raw %}abc"), "chat template syntax error at 1:1: missing end of raw directive ({% endraw %})");
  EXPECT_EQ(parse_error("{{ (1, 2 }}"), "chat template syntax error at 1:10: unexpected '}', expected ')'");
  EXPECT_EQ(parse_error("{{ x @ y }}"), "chat template syntax error at 1:6: unexpected character '@'");
}

TEST(ChatTemplateErrors, ColumnsCountCharacters) {
  EXPECT_EQ(parse_error("<｜User｜>{{ 1 + }}"),
            "chat template syntax error at 1:16: unexpected end of print statement ('}}')");
}

TEST(ChatTemplateErrors, UnsupportedConstructsAreNamed) {
  EXPECT_EQ(parse_error("{% include 'a.html' %}"),
            "chat template syntax error at 1:4: the '{% include %}' tag is not supported by this chat template engine");
  EXPECT_EQ(parse_error("{% extends 'base' %}"),
            "chat template syntax error at 1:4: the '{% extends %}' tag is not supported by this chat template engine");
  EXPECT_EQ(parse_error("{% for x in y recursive %}{% endfor %}"),
            "chat template syntax error at 1:15: recursive for loops are not supported by this chat template engine");
  EXPECT_EQ(parse_error("{{ x|nosuchfilter }}"), "chat template syntax error at 1:6: no filter named 'nosuchfilter'");
  EXPECT_EQ(parse_error("{{ x is nosuchtest }}"), "chat template syntax error at 1:9: no test named 'nosuchtest'");
  EXPECT_EQ(parse_error("{% foo %}"), "chat template syntax error at 1:4: unknown tag 'foo'");
}

TEST(ChatTemplateErrors, InvalidStatements) {
  EXPECT_EQ(parse_error("{% break %}"), "chat template syntax error at 1:4: 'break' outside of a for loop");
  EXPECT_EQ(parse_error("{% set 1 = 2 %}"), "chat template syntax error at 1:8: can't assign to this expression");
  EXPECT_EQ(parse_error("{% macro f(a=1, b) %}{% endmacro %}"),
            "chat template syntax error at 1:17: non-default argument follows default argument");
}

TEST(ChatTemplateErrors, RaiseExceptionCarriesTheTemplatesMessage) {
  EXPECT_EQ(render_error("\n\n   {{ raise_exception('Conversation roles must alternate') }}"),
            "chat template raised an exception at 3:22: Conversation roles must alternate");
}

TEST(ChatTemplateErrors, RuntimeErrorsAsJinjaRaisesThem) {
  EXPECT_EQ(render_error("{{ messages[0].content + 1 }}"),
            "chat template error at 1:24: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(render_error("{{ none + 'a' }}"),
            "chat template error at 1:9: unsupported operand type(s) for +: 'NoneType' and 'str'");
  EXPECT_EQ(render_error("{{ x.y.z }}"), "chat template error at 1:5: 'x' is undefined");
  EXPECT_EQ(render_error("{{ messages[3].role }}"), "chat template error at 1:15: list object has no element 3");
  EXPECT_EQ(render_error("{{ 1 / 0 }}"), "chat template error at 1:6: division by zero");
  EXPECT_EQ(render_error("{{ 1 < 'a' }}"),
            "chat template error at 1:6: '<' not supported between instances of 'int' and 'str'");
  EXPECT_EQ(render_error("{{ 'a'.nosuch() }}"), "chat template error at 1:14: 'str object' has no attribute 'nosuch'");
  EXPECT_EQ(render_error("{% set x = 1 %}{% set x.y = 2 %}"),
            "chat template error at 1:23: cannot assign attribute on non-namespace object");
  EXPECT_EQ(render_error("{{ [1]|tojson(badkw=1) }}"),
            "chat template error at 1:8: tojson() got an unexpected keyword argument 'badkw'");
  EXPECT_EQ(render_error("{{ {'a': x}|tojson }}"),
            "chat template error at 1:13: Object of type Undefined is not JSON serializable");
  EXPECT_EQ(render_error("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}"),
            "chat template error at 1:35: macro 'f' takes not more than 1 argument(s)");
  EXPECT_EQ(render_error("{{ {}.pop('a') }}"),
            "chat template error at 1:10: access to attribute 'pop' of 'dict' object is unsafe.");
}

TEST(ChatTemplateErrors, RenderNeedsAnObjectContext) {
  auto tpl = ChatTemplate::parse("x");
  ASSERT_TRUE(tpl);
  auto out = tpl->render(Json::array());
  ASSERT_FALSE(out);
  EXPECT_EQ(out.status().message(), "chat template context must be a JSON object");
}

}  // namespace
}  // namespace tandem::chat
