#include "server/openai_request.h"

#include <gtest/gtest.h>

namespace tandem::server {

namespace {
ApiError chat_error(const std::string& body) {
  auto r = parse_chat_request(body);
  EXPECT_TRUE(std::holds_alternative<ApiError>(r)) << body;
  return std::holds_alternative<ApiError>(r) ? std::get<ApiError>(r) : ApiError{};
}
}  // namespace

TEST(OpenAiRequest, ChatWithContentPartsAndSampling) {
  auto r = parse_chat_request(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
    {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
    "max_completion_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":40,"min_p":0.05,"seed":3,
    "stop":["\n\n","END"],"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2,
    "unknown_field":{"x":1},"user":"u1"})");
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r));
  const ChatRequest& c = std::get<ChatRequest>(r);
  EXPECT_EQ(c.messages[1]["content"], "hi there");
  EXPECT_EQ(c.options.max_tokens, 7);
  EXPECT_FLOAT_EQ(c.options.sampling.temperature, 0.5f);
  EXPECT_EQ(c.options.sampling.top_k, 40);
  EXPECT_TRUE(c.options.has_seed);
  EXPECT_EQ(c.options.stop.size(), 2u);
  EXPECT_TRUE(c.options.stream && c.options.include_usage && c.options.logprobs);
  EXPECT_EQ(c.options.top_logprobs, 2);
}

TEST(OpenAiRequest, ErrorsNameTheParameter) {
  EXPECT_NE(chat_error("{not json").message.find("not valid JSON"), std::string::npos);
  EXPECT_EQ(chat_error("[1,2]").status, 400);
  EXPECT_EQ(chat_error(R"({"model":"m"})").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages":"hi"})").param, "messages");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})").param, "temperature");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"temperature":3})").param, "temperature");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"n":2})").param, "n");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":0})").param, "max_tokens");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1.5})").param, "max_tokens");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})").param, "stop");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"wizard","content":"x"}]})").param, "messages[0].role");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})").param, "messages[0].content");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"seed":18446744073709551615})").param, "seed");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x","name":5}]})").param, "messages[0].name");
}

TEST(OpenAiRequest, DeeplyNestedBodiesAreRefusedNotRecursedInto) {
  const std::string deep = std::string(100000, '[') + "1" + std::string(100000, ']');
  const ApiError e = chat_error(R"({"messages":[{"role":"user","content":"hi"}],"tools":)" + deep + "}");
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("nested deeper"), std::string::npos);
  const std::string ok_depth = std::string(30, '[') + std::string(30, ']');
  EXPECT_TRUE(std::holds_alternative<ChatRequest>(parse_chat_request(
      R"({"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"x":)" +
      ok_depth + "}}}]}")));
}

TEST(OpenAiRequest, CompletionPromptForms) {
  auto text = parse_completion_request(R"({"prompt":"hello","logprobs":3})");
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(text));
  EXPECT_EQ(std::get<std::string>(std::get<CompletionRequest>(text).prompt), "hello");
  EXPECT_EQ(std::get<CompletionRequest>(text).options.top_logprobs, 3);
  auto ids = parse_completion_request(R"({"prompt":[1,2,3]})");
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(ids));
  EXPECT_EQ(std::get<std::vector<int32_t>>(std::get<CompletionRequest>(ids).prompt), (std::vector<int32_t>{1, 2, 3}));
  auto nested = parse_completion_request(R"({"prompt":[[4,5]]})");
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(nested));
  EXPECT_TRUE(std::holds_alternative<ApiError>(parse_completion_request(R"({"prompt":["a","b"]})")));
  EXPECT_TRUE(std::holds_alternative<ApiError>(parse_completion_request(R"({"prompt":[-1]})")));
  EXPECT_TRUE(std::holds_alternative<ApiError>(parse_completion_request(R"({"prompt":7})")));
  EXPECT_TRUE(std::holds_alternative<ApiError>(parse_completion_request(R"({})")));
}

namespace {
const char* kTool = R"({"type":"function","function":{"name":"get_weather","description":"d","parameters":{"type":"object"}}})";
std::string with_tools(const std::string& messages, const std::string& extra = "") {
  return std::string(R"({"messages":)") + messages + R"(,"tools":[)" + kTool + "]" + extra + "}";
}
const char* kHistory = R"([{"role":"user","content":"weather?"},
  {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
                                                   {"id":"call_2","function":{"name":"get_weather","arguments":"{}"}}]},
  {"role":"tool","tool_call_id":"call_2","content":"rain"},
  {"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"sun"}]},
  {"role":"assistant","content":"Sunny in Paris."}])";
}  // namespace

TEST(OpenAiRequest, ToolsToolChoiceAndToolHistory) {
  auto r = parse_chat_request(with_tools(kHistory, R"(,"tool_choice":"none","parallel_tool_calls":false)"));
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(r)) << std::get<ApiError>(r).message;
  const ChatRequest& c = std::get<ChatRequest>(r);
  EXPECT_EQ(c.tools.size(), 1u);
  EXPECT_EQ(c.tools[0].dump(), nlohmann::ordered_json::parse(kTool).dump());  // the client's key order, not sorted
  EXPECT_TRUE(c.tools[0].dump().starts_with(R"({"type":"function","function":{"name":)"));
  EXPECT_EQ(c.tool_choice, ToolChoice::kNone);
  EXPECT_FALSE(c.parallel_tool_calls);
  EXPECT_TRUE(c.messages[1]["content"].is_null());
  EXPECT_EQ(c.messages[1]["tool_calls"][1]["type"], "function");  // filled in
  EXPECT_EQ(c.messages[1]["tool_calls"][0]["function"]["arguments"], R"({"city":"Paris"})");
  EXPECT_EQ(c.messages[3]["content"], "sun");
  EXPECT_EQ(c.messages[4]["content"], "Sunny in Paris.");
  auto auto_choice = parse_chat_request(with_tools(kHistory, R"(,"tool_choice":"auto")"));
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(auto_choice));
  EXPECT_EQ(std::get<ChatRequest>(auto_choice).tool_choice, ToolChoice::kAuto);
  EXPECT_TRUE(std::get<ChatRequest>(auto_choice).parallel_tool_calls);
}

TEST(OpenAiRequest, ToolValidationNamesTheField) {
  const std::string user = R"([{"role":"user","content":"x"}])";
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":{}})").param, "tools");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":[1]})").param, "tools[0]");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"retrieval"}]})").param, "tools[0].type");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})").param, "tools[0].function");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a b"}}]})").param,
            "tools[0].function.name");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":"x"}}]})").param,
            "tools[0].function.parameters");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}},
            {"type":"function","function":{"name":"f"}}]})").param, "tools[1].function.name");
  EXPECT_EQ(chat_error(with_tools(user, R"(,"tool_choice":"sometimes")")).param, "tool_choice");
  EXPECT_EQ(chat_error(with_tools(user, R"(,"tool_choice":{"type":"function","function":{"name":"other"}})")).param, "tool_choice");
  EXPECT_EQ(chat_error(with_tools(user, R"(,"parallel_tool_calls":"yes")")).param, "parallel_tool_calls");
  // Forced calls parse (the grammar is built by the server, which knows the model's call syntax).
  auto required = parse_chat_request(with_tools(user, R"(,"tool_choice":"required")"));
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(required)) << std::get<ApiError>(required).message;
  EXPECT_EQ(std::get<ChatRequest>(required).tool_choice, ToolChoice::kRequired);
  auto named = parse_chat_request(with_tools(user, R"(,"tool_choice":{"type":"function","function":{"name":"get_weather"}})"));
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(named)) << std::get<ApiError>(named).message;
  EXPECT_EQ(std::get<ChatRequest>(named).tool_choice, ToolChoice::kFunction);
  EXPECT_EQ(std::get<ChatRequest>(named).tool_choice_function, "get_weather");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"tool_choice":"required"})").param, "tool_choice");
  EXPECT_EQ(chat_error(R"({"messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]})").param, "functions");

  // History.
  const auto history_error = [](const std::string& messages) { return chat_error(with_tools(messages)).param; };
  EXPECT_EQ(history_error(R"([{"role":"user","content":"x"},{"role":"tool","tool_call_id":"c","content":"r"}])"), "messages[1]");
  EXPECT_EQ(history_error(R"([{"role":"assistant","content":null,"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}]},
                              {"role":"tool","content":"r"}])"), "messages[1].tool_call_id");
  EXPECT_EQ(history_error(R"([{"role":"assistant","content":null,"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}]},
                              {"role":"tool","tool_call_id":"b","content":"r"}])"), "messages[1].tool_call_id");
  EXPECT_EQ(history_error(R"([{"role":"assistant","content":null,"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}]},
                              {"role":"user","content":"u"},{"role":"tool","tool_call_id":"a","content":"r"}])"), "messages[2]");
  EXPECT_EQ(history_error(R"([{"role":"assistant","content":null,"tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}])"),
            "messages[0].tool_calls[0].id");
  EXPECT_EQ(history_error(R"([{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":{"x":1}}}]}])"),
            "messages[0].tool_calls[0].function.arguments");
  EXPECT_EQ(history_error(R"([{"role":"assistant","tool_calls":[{"id":"a","function":{"arguments":"{}"}}]}])"),
            "messages[0].tool_calls[0].function.name");
  EXPECT_EQ(history_error(R"([{"role":"assistant","tool_calls":[{"id":"a","type":"code","function":{"name":"f","arguments":"{}"}}]}])"),
            "messages[0].tool_calls[0].type");
  EXPECT_EQ(history_error(R"([{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}},
                                                                 {"id":"a","function":{"name":"f","arguments":"{}"}}]}])"),
            "messages[0].tool_calls[1].id");
  EXPECT_EQ(history_error(R"([{"role":"user","content":"x","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}]}])"),
            "messages[0].tool_calls");
  EXPECT_EQ(history_error(R"([{"role":"assistant","tool_calls":{}}])"), "messages[0].tool_calls");
}

TEST(OpenAiRequest, ResponseFormatCompilesOrNamesTheKeyword) {
  const std::string msgs = R"("messages":[{"role":"user","content":"x"}])";
  auto text = parse_chat_request("{" + msgs + R"(,"response_format":{"type":"text"}})");
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(text));
  EXPECT_FALSE(std::get<ChatRequest>(text).options.grammar);
  auto object = parse_chat_request("{" + msgs + R"(,"response_format":{"type":"json_object"}})");
  ASSERT_TRUE(std::holds_alternative<ChatRequest>(object));
  EXPECT_EQ(std::get<ChatRequest>(object).options.grammar->min_bytes(), 2u);
  auto schema = parse_completion_request(R"({"prompt":"x","response_format":{"type":"json_schema","json_schema":{"name":"n",
      "strict":true,"schema":{"type":"object","properties":{"k":{"enum":["abc","de"]}},"required":["k"]}}}})");
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(schema));
  EXPECT_EQ(std::get<CompletionRequest>(schema).options.grammar->min_bytes(), std::string(R"({"k":"de"})").size());
  const ApiError e = chat_error("{" + msgs + R"(,"response_format":{"type":"json_schema","json_schema":{"name":"n",
      "schema":{"type":"object","properties":{"when":{"type":"string","format":"date-time"}}}}}})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "response_format");
  EXPECT_NE(e.message.find("'format'"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("#/properties/when"), std::string::npos) << e.message;
  for (const char* bad : {R"("json")", R"({"type":"xml"})", R"({"type":"json_schema"})",
                          R"({"type":"json_schema","json_schema":{"name":1,"schema":{}}})",
                          R"({"type":"json_schema","json_schema":{"schema":{"type":"object","minProperties":1}}})"}) {
    EXPECT_EQ(chat_error("{" + msgs + R"(,"response_format":)" + bad + "}").param, "response_format") << bad;
  }
}

}  // namespace tandem::server
