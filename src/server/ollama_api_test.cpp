#include "server/ollama_api.h"

#include <gtest/gtest.h>

namespace tandem::server {

namespace {
ApiError chat_error(const std::string& body) {
  auto r = parse_ollama_chat(body, {});
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}
}  // namespace

TEST(OllamaApi, ChatOptionsMapOntoSampling) {
  auto r = parse_ollama_chat(R"({"model":"m:latest","messages":[{"role":"user","content":"hi"}],"keep_alive":"5m",
    "options":{"num_predict":7,"temperature":0.5,"top_p":0.9,"top_k":-1,"seed":3,"stop":["END"],"repeat_penalty":1.1,
    "repeat_last_n":-1,"num_ctx":8192,"num_thread":4,"mirostat":0,"typical_p":1.0}})", {});
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(r)) << std::get<ApiError>(r).message;
  const OllamaRequest& o = std::get<OllamaRequest>(r);
  EXPECT_EQ(o.model, "m");
  EXPECT_TRUE(o.stream);  // Ollama's default
  EXPECT_FALSE(o.generate);
  const ChatRequest& c = std::get<ChatRequest>(o.request);
  EXPECT_EQ(c.options.model, "m");
  EXPECT_EQ(c.options.max_tokens, 7);
  EXPECT_FLOAT_EQ(c.options.sampling.temperature, 0.5f);
  EXPECT_FLOAT_EQ(c.options.sampling.top_p, 0.9f);
  EXPECT_EQ(c.options.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(c.options.sampling.repetition_penalty, 1.1f);
  EXPECT_TRUE(c.options.has_seed);
  EXPECT_EQ(c.options.sampling.seed, 3u);
  ASSERT_EQ(c.options.stop.size(), 1u);
  EXPECT_EQ(c.options.stop[0], "END");
  EXPECT_TRUE(c.options.stream);
}

TEST(OllamaApi, ToolsAndToolHistoryAreTranslated) {
  auto r = parse_ollama_chat(R"({"model":"m","tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
    "messages":[{"role":"user","content":"weather?"},
      {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_time","arguments":{}}},
                                                   {"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},
      {"role":"tool","tool_name":"get_weather","content":"sun"},
      {"role":"tool","content":"noon"}]})", {});
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(r)) << std::get<ApiError>(r).message;
  const ChatRequest& c = std::get<ChatRequest>(std::get<OllamaRequest>(r).request);
  ASSERT_EQ(c.tools.size(), 1u);
  EXPECT_TRUE(c.tools[0].dump().starts_with(R"({"type":"function","function":{"name":)"));  // the client's order
  const auto& calls = c.messages[1]["tool_calls"];
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1]["function"]["arguments"], R"({"city":"Paris"})");  // an object becomes JSON text
  EXPECT_TRUE(c.messages[1]["content"].is_null());
  EXPECT_EQ(c.messages[2]["tool_call_id"], calls[1]["id"]);  // by name
  EXPECT_EQ(c.messages[3]["tool_call_id"], calls[0]["id"]);  // the one left
  // A tool message with nothing to answer, or naming a call that is not there.
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"x"},{"role":"tool","content":"r"}]})").message.find("messages[1]"),
            std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"assistant","content":"","tool_calls":[{"function":{"name":"f","arguments":{}}}]},
      {"role":"tool","tool_name":"g","content":"r"}]})").message.find("'g'"), std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"assistant","content":"","tool_calls":[{"function":{"arguments":{}}}]}]})")
                .message.find("tool_calls[0]"), std::string::npos);
}

TEST(OllamaApi, GenerateRefusesTools) {
  auto r = parse_ollama_generate(R"({"prompt":"hi","tools":[{"type":"function","function":{"name":"f"}}]})", {});
  ASSERT_TRUE(std::holds_alternative<ApiError>(r));
  EXPECT_NE(std::get<ApiError>(r).message.find("'tools'"), std::string::npos);
}

TEST(OllamaApi, ToolCallsInAnswers) {
  const nlohmann::json calls = ollama_tool_calls({{"call_1", "f", R"({"a": [1]})"}, {"call_2", "g", "{not json"}});
  EXPECT_EQ(calls[0]["function"]["arguments"], (nlohmann::json{{"a", {1}}}));
  EXPECT_EQ(calls[1]["function"]["arguments"], "{not json");
  const nlohmann::json f = ollama_final(false, "m", "", "", "tool_calls", {}, calls);
  EXPECT_EQ(f["done_reason"], "stop");
  EXPECT_EQ(f["message"]["tool_calls"], calls);
  EXPECT_FALSE(ollama_partial(false, "m", "", "x").at("message").contains("tool_calls"));
}

TEST(OllamaApi, RefusesWhatItCannotHonour) {
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  EXPECT_NE(chat_error("{" + msgs + R"(,"format":"yaml"})").message.find("'format'"), std::string::npos);
  const ApiError pattern = chat_error("{" + msgs + R"(,"format":{"type":"string","pattern":"a"}})");
  EXPECT_NE(pattern.message.find("'format'"), std::string::npos) << pattern.message;
  EXPECT_NE(pattern.message.find("'pattern'"), std::string::npos) << pattern.message;
  EXPECT_NE(chat_error("{" + msgs + R"(,"tools":[{"type":"function"}]})").message.find("tools[0].function"), std::string::npos);
  EXPECT_NE(chat_error("{" + msgs + R"(,"options":{"mirostat":1}})").message.find("mirostat"), std::string::npos);
  EXPECT_NE(chat_error("{" + msgs + R"(,"options":{"tfs_z":0.9}})").message.find("tfs_z"), std::string::npos);
  EXPECT_NE(chat_error("{" + msgs + R"(,"options":{"repeat_penalty":1.2,"repeat_last_n":64}})").message.find("repeat_last_n"),
            std::string::npos);
  EXPECT_NE(chat_error("{" + msgs + R"(,"options":{"whatever":1}})").message.find("whatever"), std::string::npos);
  EXPECT_NE(chat_error("{" + msgs + R"(,"options":{"num_predict":0}})").message.find("num_predict"), std::string::npos);
  EXPECT_NE(chat_error("{" + msgs + R"(,"think":"high"})").message.find("think"), std::string::npos);
  EXPECT_NE(chat_error(R"({"messages":[{"role":"user","content":"hi","images":["x"]}]})").message.find("images"),
            std::string::npos);
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"hi"}],"options":{"temperature":9}})").status, 400);
  EXPECT_EQ(chat_error(R"({"messages":)").status, 400);
  EXPECT_EQ(chat_error("[]").status, 400);
  // Harmless spellings of "nothing" are accepted.
  EXPECT_TRUE(std::holds_alternative<OllamaRequest>(parse_ollama_chat("{" + msgs + R"(,"format":"","tools":[]})", {})));
  // repeat_last_n without a penalty changes nothing.
  EXPECT_TRUE(std::holds_alternative<OllamaRequest>(
      parse_ollama_chat("{" + msgs + R"(,"options":{"repeat_last_n":64}})", {})));
}

TEST(OllamaApi, FormatJsonOrASchemaBecomesTheGrammar) {
  const std::string msgs = R"("messages":[{"role":"user","content":"hi"}])";
  auto json = parse_ollama_chat("{" + msgs + R"(,"format":"json"})", {});
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(json));
  const auto& grammar = std::get<ChatRequest>(std::get<OllamaRequest>(json).request).options.grammar;
  ASSERT_TRUE(grammar);
  EXPECT_EQ(grammar->min_bytes(), 2u);  // {}
  auto schema = parse_ollama_generate(R"({"prompt":"x","format":{"type":"object","properties":{"a":{"type":"integer"}},
                                       "required":["a"]}})", {});
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(schema));
  const auto& g2 = std::visit([](const auto& r) -> const grammar::GrammarPtr& { return r.options.grammar; },
                              std::get<OllamaRequest>(schema).request);
  ASSERT_TRUE(g2);
  EXPECT_EQ(g2->min_bytes(), std::string(R"({"a":0})").size());
  auto none = parse_ollama_chat("{" + msgs + R"(,"format":""})", {});
  EXPECT_FALSE(std::get<ChatRequest>(std::get<OllamaRequest>(none).request).options.grammar);
}

TEST(OllamaApi, GenerateTemplatedRawAndLoad) {
  auto t = parse_ollama_generate(R"({"model":"m","prompt":"hi","system":"be brief","stream":false,"think":false})", {});
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(t));
  const ChatRequest& c = std::get<ChatRequest>(std::get<OllamaRequest>(t).request);
  ASSERT_EQ(c.messages.size(), 2u);
  EXPECT_EQ(c.messages[0]["role"], "system");
  EXPECT_EQ(c.messages[1]["content"], "hi");
  EXPECT_EQ(c.template_kwargs["enable_thinking"], false);
  EXPECT_FALSE(c.options.stream);

  auto raw = parse_ollama_generate(R"({"prompt":"<s>hi","raw":true})", {});
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(raw));
  const OllamaRequest& o = std::get<OllamaRequest>(raw);
  EXPECT_TRUE(o.raw && o.generate);
  EXPECT_EQ(std::get<std::string>(std::get<CompletionRequest>(o.request).prompt), "<s>hi");

  auto load = parse_ollama_generate(R"({"model":"m"})", {});
  ASSERT_TRUE(std::holds_alternative<OllamaRequest>(load));
  EXPECT_TRUE(std::get<OllamaRequest>(load).load_only);

  for (const char* body : {R"({"prompt":"x","raw":true,"think":true})", R"({"prompt":"x","raw":true,"system":"s"})",
                           R"({"prompt":"x","template":"{{.Prompt}}"})", R"({"prompt":"x","context":[1]})",
                           R"({"prompt":"x","suffix":"y"})", R"({"prompt":5})"}) {
    auto e = parse_ollama_generate(body, {});
    ASSERT_TRUE(std::holds_alternative<ApiError>(e)) << body;
    EXPECT_EQ(std::get<ApiError>(e).status, 400) << body;
  }
}

TEST(OllamaApi, LimitsAreTheServersOwn) {
  RequestLimits limits;
  limits.max_messages = 2;
  auto e = parse_ollama_chat(R"({"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},
    {"role":"user","content":"c"}]})", limits);
  ASSERT_TRUE(std::holds_alternative<ApiError>(e));
  limits = RequestLimits{};
  limits.max_content_bytes = 4;
  auto big = parse_ollama_generate(R"({"prompt":"hello world"})", limits);
  ASSERT_TRUE(std::holds_alternative<ApiError>(big));
  EXPECT_EQ(std::get<ApiError>(big).status, 413);
}

TEST(OllamaApi, ResponseObjects) {
  OllamaTimings t{.total_ns = 100, .prompt_eval_ns = 30, .eval_ns = 70, .prompt_tokens = 4, .eval_tokens = 5};
  auto f = ollama_final(false, "m", "why", "answer", "length", t);
  EXPECT_EQ(f["done"], true);
  EXPECT_EQ(f["done_reason"], "length");
  EXPECT_EQ(f["message"]["role"], "assistant");
  EXPECT_EQ(f["message"]["content"], "answer");
  EXPECT_EQ(f["message"]["thinking"], "why");
  EXPECT_EQ(f["eval_count"], 5);
  EXPECT_EQ(f["total_duration"], 100);
  auto g = ollama_partial(true, "m", "", "tok");
  EXPECT_EQ(g["response"], "tok");
  EXPECT_EQ(g["done"], false);
  EXPECT_FALSE(g.contains("thinking"));
  const std::string line = ndjson_line(g);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_EQ(ollama_model_not_found("x").message, "model 'x' not found");
  EXPECT_EQ(ollama_model_not_found("x").status, 404);
}

}  // namespace tandem::server
