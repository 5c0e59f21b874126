// Language-feature tests of the chat template engine. The expected outputs in kCases were produced by
// jinja2 3.1 configured as transformers configures it (ImmutableSandboxedEnvironment, trim_blocks,
// lstrip_blocks, loopcontrols, the tojson override), rendering each template with kContext.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "chat/chat_template.h"

namespace tandem::chat {
namespace {

using Json = nlohmann::ordered_json;

std::string render_or_error(std::string_view tpl, const Json& ctx) {
  auto parsed = ChatTemplate::parse(tpl);
  if (!parsed) return "PARSE ERROR: " + parsed.status().message();
  auto out = parsed->render(ctx);
  if (!out) return "RENDER ERROR: " + out.status().message();
  return out.value();
}

struct Case {
  const char* group;
  const char* name;
  const char* tpl;
  const char* expected;
};

// Generated from jinja2 3.1 as transformers configures it (see the file comment).
const Case kCases[] = {
    {"Output", "literals",
     R"J({{ 1 }} {{ 1.0 }} {{ -0.5 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 1_000 }} {{ 0x1F }})J",
     R"J(1 1.0 -0.5 1e+16 1e-05 0.30000000000000004 2.5 1000 31)J"},
    {"Output", "python_str",
     R"J({{ true }} {{ none }} {{ [1, 'a', none, false] }} {{ (1,) }} {{ {'a': [1.0]} }} {{ "it's" }})J",
     R"J(True None [1, 'a', None, False] (1,) {'a': [1.0]} it's)J"},
    {"Output", "undefined_renders_empty",
     R"J([{{ missing }}][{{ d.missing }}][{{ l[10] }}])J",
     R"J([][][])J"},
    {"Output", "string_escapes",
     R"J({{ 'a\tb\n\'q\'\u00e9\x41' }})J",
     R"J(a	b
'q'éA)J"},
    {"Output", "concat_and_tuple",
     R"J({{ 'a' ~ 1 ~ none ~ true }} {{ 1, 'b' }})J",
     R"J(a1NoneTrue (1, 'b'))J"},
    {"Operators", "arithmetic",
     R"J({{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ -2 ** 2 }} {{ 2 + 3 * 4 }} {{ 'ab' * 2 }} {{ [1] + [2] }})J",
     R"J(3 -4 2 1.5 1024 0.5 4 14 abab [1, 2])J"},
    {"Operators", "comparison",
     R"J({{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'b' > 'a' }} {{ [1, 2] < [1, 3] }} {{ 'ell' in s }} {{ 3 not in l }} {{ 'k' in d }})J",
     R"J(True True True True True False True)J"},
    {"Operators", "logic",
     R"J({{ 0 or 'x' }} {{ 1 and 2 }} {{ not '' }} {{ 'y' if l else 'n' }} [{{ 'y' if n }}])J",
     R"J(x 2 True y [])J"},
    {"Operators", "precedence_of_filters_and_tests",
     R"J({{ -1|abs }} {{ -(l|length) }} {{ 1 + 2|string if false else 'x' }} {{ not 2 is odd }} {{ l|length is odd }})J",
     R"J(1 -3 x True True)J"},
    {"Access", "attr_and_item",
     R"J({{ d.k }} {{ d['j'][1] }} {{ msgs[1].content }} {{ msgs[-1]['tool_calls'][0].function.name }} {{ d.j.0 }})J",
     R"J(1 x hi f 2)J"},
    {"Access", "slices",
     R"J({{ s[1:4] }} {{ s[::-1] }} {{ u[1:3] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::2] }} {{ l[-10:10] }} {{ u[-1] }})J",
     R"J(ell dlroW olleH él [1, 2] [3, 1] [3, 2] [3, 1, 2] d)J"},
    {"Access", "string_methods",
     R"J({{ '  x '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'xxhixx'.strip('x') }}|{{ s.startswith('He') }}|{{ s.endswith(('x', 'ld')) }}|{{ u.find('w') }}|{{ s.replace('l', 'L', 2) }}|{{ s.upper() }}{{ s.lower() }}|{{ 'hi there'.title() }}|{{ 'hELLO'.capitalize() }}|{{ s.count('o') }}|{{ '-'.join(['a', 'b']) }}|{{ '{}:{:>4}'.format('a', 7) }}|{{ 'a\nb'.splitlines() }}|{{ s.rsplit(' ', 1) }})J",
     R"J(x|['a', 'b', '', 'c']|['a', 'b']|hi|True|True|6|HeLLo World|HELLO WORLDhello world|Hi There|Hello|2|a-b|a:   7|['a', 'b']|['Hello', 'World'])J"},
    {"Access", "dict_methods",
     R"J({{ d.get('k') }} {{ d.get('zz', 'dflt') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }}{% for k, v in d.items() %} {{ k }}={{ v }}{% endfor %})J",
     R"J(1 dflt ['k', 'j'] [1, [2, 'x']] [('k', 1), ('j', [2, 'x'])] k=1 j=[2, 'x'])J"},
    {"Statements", "if_elif_else",
     R"J({% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %})J",
     R"J(one,two,many,)J"},
    {"Statements", "loop_variables",
     R"J({% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.cycle('a', 'b') }};{% endfor %})J",
     R"J(1032TrueFalse3[|1]a;2121FalseFalse3[3|2]b;3210FalseTrue3[1|]a;)J"},
    {"Statements", "loop_filter_and_else",
     R"J({% for x in range(6) if x is odd %}{{ x }}/{{ loop.length }} {% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %})J",
     R"J(1/3 3/3 5/3 |empty)J"},
    {"Statements", "loop_controls",
     R"J({% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %})J",
     R"J(0134)J"},
    {"Statements", "unpacking",
     R"J({% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %} {% set x, y = 'p', 'q' %}{{ y }}{{ x }})J",
     R"J(37 qp)J"},
    {"Statements", "set_does_not_leak_from_loops",
     R"J({% set x = 0 %}{% for i in range(3) %}{% set x = x + i %}{% endfor %}{{ x }} {% set ns = namespace(x=0) %}{% for i in range(3) %}{% set ns.x = ns.x + i %}{% endfor %}{{ ns.x }} {% if true %}{% set y = 5 %}{% endif %}{{ y }})J",
     R"J(0 3 5)J"},
    {"Statements", "block_set_and_filter",
     R"J({% set x %}a {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper %}b{% endset %}{{ y }} {% filter title %}hello world{% endfilter %})J",
     R"J([a 2]B Hello World)J"},
    {"Statements", "macro_and_call",
     R"J({% macro tag(name, body='x', close=true) %}<{{ name }}>{{ body }}{% if close %}</{{ name }}>{% endif %}{% endmacro %}{{ tag('b') }}{{ tag('i', 'y', close=false) }} {% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner{% endcall %} {% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %})J",
     R"J(<b>x</b><i>y [inner] <1><2>)J"},
    {"Statements", "macro_varargs_kwargs",
     R"J({% macro f(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1, 2, 3, k='v') }})J",
     R"J(1(2, 3){'k': 'v'})J"},
    {"Statements", "with_and_generation",
     R"J({% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}] {% generation %}gen{% endgeneration %})J",
     R"J(3[] gen)J"},
    {"Statements", "raw_and_comments",
     R"J({% raw %}{{ kept }}{% endraw %}{# gone #}x)J",
     R"J({{ kept }}x)J"},
    {"Statements", "top_level_set_hides_context_var_from_earlier_loops",
     R"J({% for i in [1] %}[{{ s }}]{% endfor %}{% set s = 'new' %}{{ s }})J",
     R"J([]new)J"},
    {"Whitespace", "trim_blocks",
     R"J({% if true %}
A
{% endif %}
B)J",
     R"J(A
B)J"},
    {"Whitespace", "lstrip_blocks",
     R"J(  {% if true %}
  A
  {% endif %}
  {{ 'B' }})J",
     R"J(  A
  B)J"},
    {"Whitespace", "minus_modifiers",
     R"J(a  
  {%- if true -%}  
  b  
  {%- endif -%}  
  c {{- ' d ' -}} e)J",
     R"J(abc d e)J"},
    {"Whitespace", "plus_modifiers",
     R"J(a
  {%+ if true +%}
b{% endif %})J",
     R"J(a
  
b)J"},
    {"Whitespace", "comment_whitespace",
     R"J(x
  {# c #}
y {#- c -#}  z)J",
     R"J(x
yz)J"},
    {"Whitespace", "trailing_newline_dropped",
     R"J(a
)J",
     R"J(a)J"},
    {"Filters", "strings",
     R"J({{ '  t  '|trim }}|{{ 'xtx'|trim('x') }}|{{ s|upper }}|{{ s|lower }}|{{ 'hELLO wORLD'|capitalize }}|{{ 'hello-world (x)'|title }}|{{ s|replace('o', '0') }}|{{ s|length }}|{{ u|count }}|{{ 'a\nb'|indent(2) }}|{{ 'a\nb'|indent(2, first=true) }}|{{ '<a&b>'|e }}|{{ '<b>'|safe }}|{{ 'a b c'|wordcount }})J",
     R"J(t|t|HELLO WORLD|hello world|Hello world|Hello-World (X)|Hell0 W0rld|11|11|a
  b|  a
  b|&lt;a&amp;b&gt;|<b>|3)J"},
    {"Filters", "defaults",
     R"J({{ missing|default('d') }}|{{ ''|default('d') }}|{{ ''|d('d', true) }}|{{ none|default('d') }})J",
     R"J(d||d|None)J"},
    {"Filters", "sequences",
     R"J({{ l|first }}{{ l|last }}{{ l|join('-') }}{{ l|sort }}{{ l|sort(reverse=true) }}{{ ['b', 'A', 'c']|sort }}{{ l|reverse|list }}{{ [1, 2, 1]|unique|list }}{{ s|list|length }}{{ l|sum }}{{ l|max }}{{ l|min }}{{ [1, 2, 3, 4, 5]|batch(2)|list }})J",
     R"J(323-1-2[1, 2, 3][3, 2, 1]['A', 'b', 'c'][2, 1, 3][1, 2]11631[[1, 2], [3, 4], [5]])J"},
    {"Filters", "numbers",
     R"J({{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int(7) }} {{ '3.5'|float }} {{ -3|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(method='ceil') }} {{ 3|string ~ 'x' }})J",
     R"J(42 4 7 3.5 3 2.0 4.0 2.67 3.0 3x)J"},
    {"Filters", "map_select",
     R"J({{ msgs|map(attribute='role')|join(',') }} {{ ['a', 'b']|map('upper')|list }} {{ range(6)|select('even')|list }} {{ range(6)|reject('divisibleby', 3)|list }} {{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }} {{ msgs|rejectattr('content')|map(attribute='role')|list }} {{ msgs|selectattr('tool_calls', 'defined')|list|length }})J",
     R"J(system,user,assistant ['A', 'B'] [0, 2, 4] [1, 2, 4, 5] ['hi'] ['assistant'] 1)J"},
    {"Filters", "mappings",
     R"J({{ d|items|list }} {{ {'b': 1, 'a': 2}|dictsort }} {{ d|list }} {{ d|length }})J",
     R"J([('k', 1), ('j', [2, 'x'])] [('a', 2), ('b', 1)] ['k', 'j'] 2)J"},
    {"Filters", "tojson",
     R"J({{ msgs[2]|tojson }}
{{ d|tojson(indent=2) }}
{{ 'é"\n'|tojson }} {{ 'é'|tojson(ensure_ascii=true) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }} {{ [1.0, 1e100, none]|tojson }})J",
     R"J({"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"b": 1, "a": [true, null, 1.5]}}}]}
{
  "k": 1,
  "j": [
    2,
    "x"
  ]
}
"é\"\n" "\u00e9" {"a": 2, "b": 1} [1.0, 1e+100, null])J"},
    {"Filters", "tojson_indent4_like_llama",
     R"J({{ msgs[2].tool_calls[0]|tojson(indent=4) }})J",
     R"J({
    "type": "function",
    "function": {
        "name": "f",
        "arguments": {
            "b": 1,
            "a": [
                true,
                null,
                1.5
            ]
        }
    }
})J"},
    {"Tests", "types",
     R"J({{ d is mapping }}{{ l is sequence }}{{ s is string }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ true is boolean }}{{ n is none }}{{ l is iterable }}{{ 1 is iterable }}{{ missing is defined }}{{ missing is undefined }}{{ d.k is defined }})J",
     R"J(TrueTrueTrueTrueTrueTrueTrueTrueTrueFalseFalseTrueTrue)J"},
    {"Tests", "values",
     R"J({{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ true is true }}{{ 1 is true }}{{ false is false }}{{ 2 is eq 2 }}{{ 2 is equalto 3 }}{{ 1 is in [1] }}{{ 'a' is lower }}{{ 'A' is upper }}{{ n is not none }})J",
     R"J(TrueTrueTrueTrueFalseTrueTrueFalseTrueTrueTrueFalse)J"},
};
const char* const kContext = R"J({"msgs": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"b": 1, "a": [true, null, 1.5]}}}]}], "d": {"k": 1, "j": [2, "x"]}, "s": "Hello World", "u": "héllo wörld", "l": [3, 1, 2], "n": null})J";

TEST(ChatTemplate, MatchesJinjaOnLanguageFeatures) {
  const Json ctx = Json::parse(kContext);
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.group) + "/" + c.name);
    EXPECT_EQ(render_or_error(c.tpl, ctx), c.expected);
  }
}

TEST(ChatTemplate, DictsKeepInsertionOrder) {
  const Json ctx = Json::parse(R"({"d": {"z": 1, "a": 2, "m": 3}})");
  EXPECT_EQ(render_or_error("{% for k in d %}{{ k }}{% endfor %} {{ d|tojson }} {{ d }}", ctx),
            R"(zam {"z": 1, "a": 2, "m": 3} {'z': 1, 'a': 2, 'm': 3})");
}

TEST(ChatTemplate, UndefinedFollowsJinjaDefaultUndefined) {
  const Json ctx = Json::object();
  EXPECT_EQ(render_or_error("[{{ x }}][{{ x|length }}][{% for i in x %}i{% endfor %}][{{ x is defined }}][{{ not x }}]", ctx),
            "[][0][][False][True]");
  EXPECT_EQ(render_or_error("{{ x|default('d') }}{{ x ~ 'y' }}{{ x == x }}", ctx), "dyTrue");
  // Anything more than rendering, testing or iterating it is an error, as in jinja2.
  EXPECT_EQ(render_or_error("{{ x.y }}", ctx), "RENDER ERROR: chat template error at 1:5: 'x' is undefined");
  EXPECT_EQ(render_or_error("{{ x + 1 }}", ctx), "RENDER ERROR: chat template error at 1:6: 'x' is undefined");
  EXPECT_EQ(render_or_error("{{ x() }}", ctx), "RENDER ERROR: chat template error at 1:5: 'x' is undefined");
}

TEST(ChatTemplate, NamespaceListsCanBeAppendedTo) {
  // jinja2's sandbox refuses list.append; chat templates written for llama.cpp use it, so it works here.
  EXPECT_EQ(render_or_error("{% set ns = namespace(xs=[]) %}{% for i in range(3) %}{% set _ = ns.xs.append(i * 2) %}"
                            "{% endfor %}{{ ns.xs }}",
                            Json::object()),
            "[0, 2, 4]");
}

TEST(ChatTemplate, RenderChatPassesWhatTransformersPasses) {
  auto tpl = ChatTemplate::parse(
      "{{ bos_token }}|{{ eos_token is defined }}|{{ tools is none }}|{{ documents is none }}|"
      "{{ add_generation_prompt }}|{{ messages|length }}|{{ enable_thinking }}");
  ASSERT_TRUE(tpl) << tpl.status().message();
  const Json messages = Json::parse(R"([{"role": "user", "content": "hi"}])");
  auto out = tpl->render_chat(messages, true, "<s>", std::nullopt, Json::parse(R"({"enable_thinking": false})"));
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ(out.value(), "<s>|False|True|True|True|1|False");
  // `extra` overrides the defaults (tools given by the caller).
  auto with_tools = tpl->render_chat(messages, false, std::nullopt, "</s>", Json::parse(R"({"tools": []})"));
  ASSERT_TRUE(with_tools) << with_tools.status().message();
  EXPECT_EQ(with_tools.value(), "|True|False|True|False|1|");
}

TEST(ChatTemplate, RenderIsConstAndThreadSafe) {
  auto tpl = ChatTemplate::parse(
      "{% set ns = namespace(n=0) %}{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}"
      "{% for m in messages %}{% set ns.n = ns.n + 1 %}{{ twice(m) }}{% endfor %}{{ ns.n }}");
  ASSERT_TRUE(tpl);
  std::vector<std::thread> threads;
  std::vector<std::string> outs(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 200; ++k) {
        auto r = tpl->render(Json{{"messages", Json::array({"a", "b", t})}});
        outs[t] = r ? r.value() : r.status().message();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(outs[t], "aabb" + std::to_string(t) + std::to_string(t) + "3");
}

TEST(ChatTemplate, LongConversationRendersQuickly) {
  auto tpl = ChatTemplate::parse(
      "{%- for message in messages[::-1] %}{%- set index = (messages|length - 1) - loop.index0 %}{% endfor %}"
      "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content.split('</think>')[-1].lstrip('\n') + "
      "'<|im_end|>\n' }}{% endfor %}");
  ASSERT_TRUE(tpl);
  Json messages = Json::array();
  for (int k = 0; k < 5000; ++k) {
    messages.push_back({{"role", k % 2 ? "assistant" : "user"}, {"content", "<think>x</think>\n" + std::string(200, 'y')}});
  }
  auto out = tpl->render_chat(messages, true, std::nullopt, std::nullopt);
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ(out.value().size(), 2500u * (12 + 4 + 1 + 200 + 11) + 2500u * (12 + 9 + 1 + 200 + 11));
}

}  // namespace
}  // namespace tandem::chat
