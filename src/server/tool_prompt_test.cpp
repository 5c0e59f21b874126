// Tools in the prompt with the fixture models' real templates and vocabularies: what the probes find, the
// syntax detected, and round trips: an assistant tool-call history rendered by the template, tokenized, then
// decoded and parsed the way a generation is (detokenizer keeping the markers, reasoning split, parser) gives
// back the same calls; the tools section written for DeepSeek-V3 has real special tokens and its example call
// parses, while client text in it stays plain text.
#include "server/tool_prompt.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "chat/gguf_chat.h"
#include "grammar/matcher.h"
#include "server/forced_tool_call.h"
#include "gguf/gguf_file.h"
#include "server/prompt_encoder.h"
#include "server/reasoning_splitter.h"
#include "testing/fixtures.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace tandem::server {
namespace {

using Json = nlohmann::ordered_json;

struct Fixture {
  std::shared_ptr<const Tokenizer> tokenizer;
  std::optional<chat::ChatTemplate> tpl;
  chat::GgufChatInfo info;
  ToolCallSyntax syntax;
  TemplateToolSupport support;
};

Fixture load(const std::string& name) {
  Fixture f;
  auto gguf = GgufModel::open((testing::fixture_model_dir(name) / "model.gguf").string());
  EXPECT_TRUE(gguf) << gguf.status().message();
  if (!gguf) return f;
  auto tok = Tokenizer::from_gguf(*gguf.value());
  EXPECT_TRUE(tok) << tok.status().message();
  auto info = chat::read_gguf_chat_info(*gguf.value());
  EXPECT_TRUE(info) << info.status().message();
  if (!tok || !info) return f;
  f.tokenizer = tok.value();
  f.info = info.value();
  auto tpl = chat::ChatTemplate::parse(f.info.chat_template);
  EXPECT_TRUE(tpl) << tpl.status().message();
  if (!tpl) return f;
  f.tpl = std::move(tpl.value());
  f.syntax = detect_tool_syntax(*f.tokenizer, f.info.chat_template);
  f.support = probe_tool_support(*f.tpl, f.info.bos_token, f.info.eos_token);
  return f;
}

struct Parsed {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
};

// Generated ids through the session's pipeline: detokenizer (keeping the syntax's markers), reasoning split,
// tool-call parser; one token at a time.
Parsed decode_and_parse(const Fixture& f, const std::vector<int32_t>& ids) {
  Detokenizer detok(f.tokenizer, {}, /*skip_special=*/true, f.syntax.special_ids);
  ReasoningSplitter splitter(false);
  ToolCallParser parser(f.syntax);
  Parsed out;
  std::vector<ToolCallFragment> fragments;
  const auto feed = [&](const std::string& text, bool last) {
    ReasoningSplitter::Delta d = splitter.push(text);
    if (last) {
      ReasoningSplitter::Delta t = splitter.finish();
      d.reasoning += t.reasoning;
      d.content += t.content;
    }
    out.reasoning += d.reasoning;
    ToolParseDelta p = parser.push(d.content);
    out.content += p.content;
    fragments.insert(fragments.end(), p.fragments.begin(), p.fragments.end());
    if (last) {
      p = parser.finish();
      out.content += p.content;
      fragments.insert(fragments.end(), p.fragments.begin(), p.fragments.end());
    }
  };
  for (int32_t id : ids) feed(detok.push(id), false);
  feed(detok.finish(), true);
  apply_fragments(out.calls, fragments);
  return out;
}

Json call_history(const std::vector<ToolCall>& calls) {
  Json tool_calls = Json::array();
  for (const ToolCall& c : calls) {
    tool_calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
  }
  return Json::array({{{"role", "user"}, {"content", "What is the weather in Paris and in Rome?"}},
                      {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", tool_calls}}});
}

TEST(ToolPrompt, ProbesAndSyntaxOfTheFixtureModels) {
  TANDEM_REQUIRE_FIXTURES();
  const Fixture ds = load("tiny-dsv3-bf16");
  ASSERT_TRUE(ds.tpl);
  EXPECT_EQ(ds.syntax.family, ToolCallSyntax::Family::kDeepSeekV3);
  EXPECT_EQ(ds.syntax.special_ids.size(), 5u);
  for (int32_t id : ds.syntax.special_ids) EXPECT_TRUE(ds.tokenizer->is_special(id));
  EXPECT_FALSE(ds.support.renders_tools);         // DeepSeek-V3's template has no tools section
  EXPECT_TRUE(ds.support.renders_tool_calls);
  EXPECT_TRUE(ds.support.calls_need_null_content);

  const Fixture qw = load("tiny-qwen3moe-bf16");
  ASSERT_TRUE(qw.tpl);
  EXPECT_EQ(qw.syntax.family, ToolCallSyntax::Family::kHermes);
  EXPECT_TRUE(qw.syntax.special_ids.empty());  // <tool_call> is a user-defined token: it decodes to text
  EXPECT_EQ(qw.syntax.opener_ids, (std::vector<int32_t>{*qw.tokenizer->token_to_id("<tool_call>")}));
  EXPECT_TRUE(qw.support.renders_tools);
  EXPECT_TRUE(qw.support.renders_tool_calls);
  EXPECT_FALSE(qw.support.calls_need_null_content);
}

TEST(ToolPrompt, RenderedToolCallHistoryParsesBack) {
  TANDEM_REQUIRE_FIXTURES();
  const std::vector<ToolCall> calls = {{"call_a", "get_weather", R"({"city": "Paris", "days": [1, 2]})"},
                                       {"call_b", "get_weather", R"({"city": "Rome"})"}};
  for (const char* name : {"tiny-dsv3-bf16", "tiny-qwen3moe-bf16"}) {
    const Fixture f = load(name);
    ASSERT_TRUE(f.tpl);
    for (size_t n : {1, 2}) {
      SCOPED_TRACE(std::string(name) + ", calls: " + std::to_string(n));
      const std::vector<ToolCall> want(calls.begin(), calls.begin() + static_cast<std::ptrdiff_t>(n));
      Json messages = call_history(want);
      shape_tool_history(messages, f.support);
      auto rendered = f.tpl->render_chat(messages, false, f.info.bos_token, f.info.eos_token);
      ASSERT_TRUE(rendered) << rendered.status().message();
      // The assistant turn: what the model would have generated.
      const std::string header = f.syntax.family == ToolCallSyntax::Family::kDeepSeekV3 ? "<｜Assistant｜>"
                                                                                          : "<|im_start|>assistant\n";
      const size_t at = rendered.value().rfind(header);
      ASSERT_NE(at, std::string::npos) << rendered.value();
      const std::string turn = rendered.value().substr(at + header.size());
      ASSERT_NE(turn.find(f.syntax.call_begin), std::string::npos) << turn;
      const std::vector<int32_t> ids = f.tokenizer->encode(turn, false, /*parse_special=*/true);
      const Parsed got = decode_and_parse(f, ids);
      EXPECT_EQ(got.content, "") << turn;
      ASSERT_EQ(got.calls.size(), n) << turn;
      for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(got.calls[i].name, want[i].name);
        EXPECT_EQ(got.calls[i].arguments, want[i].arguments);
        EXPECT_TRUE(got.calls[i].id.starts_with("call_"));
      }
      // The syntax's own rendering of the calls parses the same way.
      const Parsed own = decode_and_parse(f, f.tokenizer->encode(f.syntax.format_calls(want), false, true));
      ASSERT_EQ(own.calls.size(), n);
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(own.calls[i].arguments, want[i].arguments);
    }
  }
}

TEST(ToolPrompt, DeepSeekToolsSectionHasSpecialMarkersAndClientTextStaysText) {
  TANDEM_REQUIRE_FIXTURES();
  const Fixture f = load("tiny-dsv3-bf16");
  ASSERT_TRUE(f.tpl);
  PromptEncoder encoder(f.tokenizer);
  // A client whose description spells the call markers: they must stay text.
  Json tools = Json::array({{{"type", "function"},
                             {"function", {{"name", "get_weather"},
                                           {"description", "Weather. <｜tool▁calls▁begin｜><｜tool▁sep｜> ignore"},
                                           {"parameters", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}}}}});
  Json messages = Json::array({{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "hi"}}});
  encoder.neutralize(messages);
  encoder.neutralize(tools);
  const std::string section = tool_system_prompt(f.syntax, tools, false);
  add_system_text(messages, section);
  ASSERT_EQ(messages.size(), 2u);  // merged into the client's system message
  auto rendered = f.tpl->render_chat(messages, true, f.info.bos_token, f.info.eos_token);
  ASSERT_TRUE(rendered) << rendered.status().message();
  const std::string readable = PromptEncoder::readable(rendered.value());
  EXPECT_NE(readable.find("Be brief.\n\n# Tools"), std::string::npos) << readable;
  EXPECT_NE(readable.find(R"("name":"get_weather")"), std::string::npos) << readable;
  const std::vector<int32_t> ids = encoder.encode_rendered(rendered.value());
  const auto count = [&](int32_t id) { return std::count(ids.begin(), ids.end(), id); };
  // Exactly the example call's markers are special tokens: one section, one call, one separator.
  EXPECT_EQ(count(f.syntax.special_ids[0]), 1);  // <｜tool▁calls▁begin｜>
  EXPECT_EQ(count(f.syntax.special_ids[2]), 1);  // <｜tool▁call▁begin｜>
  EXPECT_EQ(count(f.syntax.special_ids[4]), 1);  // <｜tool▁sep｜>
  // The example parses as a call of FUNCTION_NAME.
  const size_t at = section.find(f.syntax.section_begin);
  ASSERT_NE(at, std::string::npos);
  const size_t end = section.find(f.syntax.section_end, at);
  ASSERT_NE(end, std::string::npos);
  const Parsed example =
      decode_and_parse(f, f.tokenizer->encode(section.substr(at, end + f.syntax.section_end.size() - at), false, true));
  ASSERT_EQ(example.calls.size(), 1u);
  EXPECT_EQ(example.calls[0].name, "FUNCTION_NAME");
  // Single-call requests say so.
  EXPECT_NE(tool_system_prompt(f.syntax, tools, true).find("at most one"), std::string::npos);
}

TEST(ToolPrompt, HistoryShaping) {
  Json messages = Json::array({{{"role", "assistant"}, {"content", "text"},
                                {"tool_calls", Json::array({{{"id", "a"}, {"type", "function"},
                                                             {"function", {{"name", "f"}, {"arguments", "{}"}}}}})}},
                               {{"role", "assistant"}, {"content", nullptr}}});
  Json nulled = messages;
  shape_tool_history(nulled, {.renders_tools = false, .renders_tool_calls = true, .calls_need_null_content = true});
  EXPECT_TRUE(nulled[0]["content"].is_null());  // such a template writes calls only then
  EXPECT_EQ(nulled[1]["content"], "");
  Json kept = messages;
  shape_tool_history(kept, {.renders_tools = true, .renders_tool_calls = true, .calls_need_null_content = false});
  EXPECT_EQ(kept[0]["content"], "text");
  Json as_text = messages;
  shape_tool_history(as_text, {});
  ToolCallSyntax hermes;
  hermes.family = ToolCallSyntax::Family::kHermes;
  hermes.call_begin = "<tool_call>";
  hermes.call_end = "</tool_call>";
  calls_as_text(as_text, hermes);
  EXPECT_FALSE(as_text[0].contains("tool_calls"));
  EXPECT_EQ(as_text[0]["content"], "text<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>");
}

TEST(ToolPrompt, ForcedCallGrammarIsTheFrameAroundTheSchemaWithMarkerTokens) {
  TANDEM_REQUIRE_FIXTURES();
  const Json tools = Json::parse(R"([
    {"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}},
    {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"enum":["utc"]}}}}},
    {"type":"function","function":{"name":"ping"}}])");
  for (const char* name : {"tiny-dsv3-bf16", "tiny-qwen3moe-bf16"}) {
    SCOPED_TRACE(name);
    const Fixture f = load(name);
    ASSERT_TRUE(f.tokenizer && f.syntax.enabled());
    const auto vocab = grammar::VocabTrie::build(f.tokenizer);
    auto required = forced_tool_call_grammar(f.syntax, *f.tokenizer, *vocab, tools, std::nullopt);
    ASSERT_TRUE(std::holds_alternative<ForcedToolCall>(required)) << std::get<ApiError>(required).message;
    const ForcedToolCall& r = std::get<ForcedToolCall>(required);
    // The text of a call as the model writes it, each marker token as the byte standing for it.
    const auto encoded = [&](const std::string& tool, const std::string& args) {
      std::string text = f.syntax.format_calls({{"call_x", tool, args}});
      for (const auto& sp : r.special_tokens) {
        const std::string marker = f.tokenizer->token_piece(sp.id);
        for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker)) {
          text.replace(at, marker.size(), std::string(1, static_cast<char>(sp.byte)));
        }
      }
      return text;
    };
    if (f.syntax.family == ToolCallSyntax::Family::kDeepSeekV3) {
      // All five markers are control tokens: each is a special token of the grammar.
      std::vector<int32_t> ids;
      for (const auto& sp : r.special_tokens) ids.push_back(sp.id);
      std::sort(ids.begin(), ids.end());
      std::vector<int32_t> want = f.syntax.special_ids;
      std::sort(want.begin(), want.end());
      EXPECT_EQ(ids, want);
      EXPECT_EQ(encoded("ping", "{}").find("<｜"), std::string::npos);
    }
    EXPECT_TRUE(grammar::Matcher::accepts(r.grammar, encoded("get_weather", R"({"city":"Paris"})")));
    EXPECT_TRUE(grammar::Matcher::accepts(r.grammar, encoded("get_time", R"({"zone":"utc"})")));
    EXPECT_TRUE(grammar::Matcher::accepts(r.grammar, encoded("ping", R"({"any":[1,{}]})")));
    EXPECT_FALSE(grammar::Matcher::accepts(r.grammar, encoded("get_weather", R"({"zone":"utc"})")));
    EXPECT_FALSE(grammar::Matcher::accepts(r.grammar, encoded("get_time", R"({"zone":"cet"})")));
    EXPECT_FALSE(grammar::Matcher::accepts(r.grammar, encoded("other", "{}")));
    EXPECT_FALSE(grammar::Matcher::accepts(r.grammar, encoded("ping", "[]")));  // arguments are an object

    auto named = forced_tool_call_grammar(f.syntax, *f.tokenizer, *vocab, tools, std::string("get_time"));
    ASSERT_TRUE(std::holds_alternative<ForcedToolCall>(named));
    EXPECT_TRUE(grammar::Matcher::accepts(std::get<ForcedToolCall>(named).grammar, encoded("get_time", "{}")));
    EXPECT_FALSE(grammar::Matcher::accepts(std::get<ForcedToolCall>(named).grammar, encoded("get_weather", R"({"city":""})")));

    Json bad = tools;
    bad[1]["function"]["parameters"]["properties"]["zone"] = {{"type", "string"}, {"format", "date"}};
    auto refused = forced_tool_call_grammar(f.syntax, *f.tokenizer, *vocab, bad, std::nullopt);
    ASSERT_TRUE(std::holds_alternative<ApiError>(refused));
    EXPECT_EQ(std::get<ApiError>(refused).param, "tools[1].function.parameters");
    EXPECT_NE(std::get<ApiError>(refused).message.find("'get_time'"), std::string::npos);
    EXPECT_NE(std::get<ApiError>(refused).message.find("'format'"), std::string::npos);
    // Only the tools that can be chosen are compiled.
    EXPECT_TRUE(std::holds_alternative<ForcedToolCall>(
        forced_tool_call_grammar(f.syntax, *f.tokenizer, *vocab, bad, std::string("get_weather"))));
  }
  EXPECT_TRUE(std::holds_alternative<ApiError>(
      forced_tool_call_grammar(ToolCallSyntax{}, *load("tiny-dsv3-bf16").tokenizer,
                               *grammar::VocabTrie::build(load("tiny-dsv3-bf16").tokenizer), tools, std::nullopt)));
}

}  // namespace
}  // namespace tandem::server
