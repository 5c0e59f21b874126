// Real chat templates rendered against references:
// - the `chat` cases of shared/fixtures/tokenizer/{deepseek_v3,qwen3}.tokenizer_ref.json (rendered by
//   transformers), with the templates read from the fixture GGUF files' tokenizer.chat_template;
// - tool calling / thinking conversations with those templates, and the Llama 3.1 and Qwen2.5-Instruct
//   templates (src/chat/testdata), against expected prompts derived by hand from the template text.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "chat/chat_template.h"
#include "chat/gguf_chat.h"
#include "gguf/gguf_file.h"

namespace tandem::chat {
namespace {

using Json = nlohmann::ordered_json;
namespace fs = std::filesystem;

std::string source_dir() {
  const char* env = std::getenv("TANDEM_SOURCE_DIR");
  return env ? env : TANDEM_SOURCE_DIR;
}

std::string fixtures_dir() { return source_dir() + "/../shared/fixtures"; }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

#define SKIP_WITHOUT_FIXTURES()                                                                    \
  if (!fs::exists(fixtures_dir() + "/models")) {                                                   \
    GTEST_SKIP() << "fixtures not found at " << fixtures_dir() << " (set TANDEM_SOURCE_DIR)";      \
  }

struct ModelChat {
  GgufChatInfo info;
  std::optional<ChatTemplate> tpl;
};

ModelChat load_model_chat(const std::string& model) {
  ModelChat out;
  auto gguf = GgufModel::open(fixtures_dir() + "/models/" + model + "/model.gguf");
  EXPECT_TRUE(gguf) << gguf.status().message();
  if (!gguf) return out;
  auto info = read_gguf_chat_info(*gguf.value());
  EXPECT_TRUE(info) << info.status().message();
  if (!info) return out;
  out.info = info.value();
  auto tpl = ChatTemplate::parse(out.info.chat_template);
  EXPECT_TRUE(tpl) << tpl.status().message();
  if (tpl) out.tpl = std::move(tpl.value());
  return out;
}

std::optional<std::string> opt_text(const Json& j) {
  return j.is_string() ? std::optional<std::string>(j.get<std::string>()) : std::nullopt;
}

// Renders every `chat` case of a tokenizer reference file; returns the number that match exactly.
void check_reference_chats(const std::string& model, const std::string& ref_name) {
  SKIP_WITHOUT_FIXTURES();
  const ModelChat chat = load_model_chat(model);
  ASSERT_TRUE(chat.tpl);
  const Json ref = Json::parse(read_text(fixtures_dir() + "/tokenizer/" + ref_name));
  ASSERT_FALSE(ref["chat"].empty());
  size_t matched = 0;
  for (const Json& c : ref["chat"]) {
    // bos / eos as transformers passes them: the tokenizer's special tokens (absent when None).
    auto out = chat.tpl->render_chat(c["messages"], c["add_generation_prompt"].get<bool>(), opt_text(ref["bos"]),
                                     opt_text(ref["eos"]));
    ASSERT_TRUE(out) << out.status().message();
    EXPECT_EQ(out.value(), c["rendered"].get<std::string>()) << c["messages"].dump();
    matched += out.value() == c["rendered"].get<std::string>();
  }
  EXPECT_EQ(matched, ref["chat"].size());
}

TEST(ChatTemplateFixtures, DeepSeekV3MatchesTransformers) {
  check_reference_chats("tiny-dsv3-bf16", "deepseek_v3.tokenizer_ref.json");
}

TEST(ChatTemplateFixtures, Qwen3MatchesTransformers) {
  check_reference_chats("tiny-qwen3moe-bf16", "qwen3.tokenizer_ref.json");
}

TEST(ChatTemplateFixtures, GgufSpecialTokenTexts) {
  SKIP_WITHOUT_FIXTURES();
  const ModelChat ds = load_model_chat("tiny-dsv3-bf16");
  EXPECT_EQ(ds.info.bos_token, "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(ds.info.eos_token, "<｜end▁of▁sentence｜>");
  const ModelChat qwen = load_model_chat("tiny-qwen3moe-bf16");
  EXPECT_EQ(qwen.info.eos_token, "<|im_end|>");
}

const char* const kWeatherTool = R"({"type": "function", "function": {"name": "get_weather",
  "description": "Get the current weather", "parameters": {"type": "object",
  "properties": {"city": {"type": "string"}}, "required": ["city"]}}})";
const char* const kWeatherToolJson =
    R"({"type": "function", "function": {"name": "get_weather", "description": "Get the current weather", )"
    R"("parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})";

TEST(ChatTemplateFixtures, Qwen3ThinkingAndTools) {
  SKIP_WITHOUT_FIXTURES();
  const ModelChat chat = load_model_chat("tiny-qwen3moe-bf16");
  ASSERT_TRUE(chat.tpl);
  // Earlier reasoning is dropped from history; enable_thinking=false pre-fills an empty think block.
  auto a = chat.tpl->render_chat(Json::parse(R"([{"role": "user", "content": "2+2?"},
      {"role": "assistant", "content": "<think>\nsimple\n</think>\n\n4"}, {"role": "user", "content": "3+3?"}])"),
                                 true, std::nullopt, "<|im_end|>", Json{{"enable_thinking", false}});
  ASSERT_TRUE(a) << a.status().message();
  EXPECT_EQ(a.value(),
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Tools go into the system turn; reasoning_content of the last turn is kept.
  Json extra{{"tools", Json::array({Json::parse(kWeatherTool)})}};
  auto b = chat.tpl->render_chat(Json::parse(R"([{"role": "user", "content": "q"},
      {"role": "assistant", "content": "a", "reasoning_content": "r"}])"),
                                 false, std::nullopt, "<|im_end|>", extra);
  ASSERT_TRUE(b) << b.status().message();
  EXPECT_EQ(b.value(),
            std::string("<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user "
                        "query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n") +
                kWeatherToolJson +
                "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
                "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
                "<think>\nr\n</think>\n\na<|im_end|>\n");
  // Tool calls (arguments as a JSON string and as an object) and consecutive tool responses.
  auto c = chat.tpl->render_chat(Json::parse(R"([{"role": "user", "content": "w?"},
      {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
      {"role": "tool", "content": "c1"}, {"role": "tool", "content": "c2"}])"),
                                 true, std::nullopt, "<|im_end|>");
  ASSERT_TRUE(c) << c.status().message();
  EXPECT_EQ(c.value(),
            "<|im_start|>user\nw?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", "
            "\"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", "
            "\"arguments\": {\"city\": \"Rome\"}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nc1\n"
            "</tool_response>\n<tool_response>\nc2\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateFixtures, DeepSeekV3ToolCall) {
  SKIP_WITHOUT_FIXTURES();
  const ModelChat chat = load_model_chat("tiny-dsv3-bf16");
  ASSERT_TRUE(chat.tpl);
  auto out = chat.tpl->render_chat(Json::parse(R"([{"role": "user", "content": "w?"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "content": "21C"}, {"role": "assistant", "content": "It is 21C."}])"),
                                   true, chat.info.bos_token, chat.info.eos_token);
  ASSERT_TRUE(out) << out.status().message();
  // (This template closes the tool-call list only after a second call; with one call it stays open.)
  EXPECT_EQ(out.value(),
            "<｜begin▁of▁sentence｜><｜User｜>w?<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
            "<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁outputs▁begin｜>"
            "<｜tool▁output▁begin｜>21C<｜tool▁output▁end｜><｜tool▁outputs▁end｜>It is 21C.<｜end▁of▁sentence｜>"
            "<｜Assistant｜>");
}

ChatTemplate testdata_template(const std::string& name) {
  const std::string path = source_dir() + "/src/chat/testdata/" + name;
  auto tpl = ChatTemplate::parse(read_text(path));
  EXPECT_TRUE(tpl) << path << ": " << tpl.status().message();
  return tpl ? std::move(tpl.value()) : ChatTemplate::parse("").value();
}

TEST(ChatTemplateModels, Llama31) {
  const ChatTemplate tpl = testdata_template("llama3_1.jinja");
  // The system message is trimmed and follows the date header; the date defaults to 26 Jul 2024.
  auto plain = tpl.render_chat(Json::parse(R"([{"role": "system", "content": "  You are helpful.\n"},
      {"role": "user", "content": "Hello "}])"),
                               true, "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_TRUE(plain) << plain.status().message();
  EXPECT_EQ(plain.value(),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
            "Today Date: 26 Jul 2024\n\nYou are helpful.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello"
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  // Tools go into the first user turn as tojson(indent=4); a tool result that is a mapping is tojson'ed.
  const std::string tool_json4 =
      "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_weather\",\n        "
      "\"description\": \"Get the current weather\",\n        \"parameters\": {\n            \"type\": \"object\",\n"
      "            \"properties\": {\n                \"city\": {\n                    \"type\": \"string\"\n"
      "                }\n            },\n            \"required\": [\n                \"city\"\n            ]\n"
      "        }\n    }\n}";
  Json extra{{"tools", Json::array({Json::parse(kWeatherTool)})}, {"date_string", "1 Jan 2025"}};
  auto tools = tpl.render_chat(Json::parse(R"([{"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "tool_calls": [{"type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "content": {"temp_c": 21}}])"),
                               true, "<|begin_of_text|>", "<|eot_id|>", extra);
  ASSERT_TRUE(tools) << tools.status().message();
  EXPECT_EQ(tools.value(),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge "
            "Date: December 2023\nToday Date: 1 Jan 2025\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
            "Given the following functions, please respond with a JSON for a function call with its proper arguments "
            "that best answers the given prompt.\n\nRespond in the format {\"name\": function name, \"parameters\": "
            "dictionary of argument name and its value}.Do not use variables.\n\n" +
                tool_json4 +
                "\n\nWeather in Paris?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": "
                "\"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eot_id|><|start_header_id|>ipython"
                "<|end_header_id|>\n\n{\"temp_c\": 21}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  // Two tool calls in one message are refused by the template itself.
  auto two = tpl.render_chat(Json::parse(R"([{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
      {"function": {"name": "a", "arguments": {}}}, {"function": {"name": "b", "arguments": {}}}]}])"),
                             false, "<|begin_of_text|>", "<|eot_id|>");
  ASSERT_FALSE(two);
  EXPECT_NE(two.status().message().find("This model only supports single tool-calls at once!"), std::string::npos);
}

TEST(ChatTemplateModels, Qwen25WithTools) {
  const ChatTemplate tpl = testdata_template("qwen2_5.jinja");
  Json extra{{"tools", Json::array({Json::parse(kWeatherTool)})}};
  auto out = tpl.render_chat(Json::parse(R"([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Weather in 東京?"},
      {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "東京"}}}]},
      {"role": "tool", "content": "{\"temp_c\": 18}"}, {"role": "tool", "content": "sunny"}])"),
                             true, std::nullopt, "<|im_end|>", extra);
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ(out.value(),
            std::string("<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with "
                        "the user query.\n\nYou are provided with function signatures within <tools></tools> XML "
                        "tags:\n<tools>\n") +
                kWeatherToolJson +
                "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
                "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                "<args-json-object>}\n</tool_call><|im_end|>\n<|im_start|>user\nWeather in 東京?<|im_end|>\n"
                "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"東京\"}}\n"
                "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n{\"temp_c\": 18}\n</tool_response>\n"
                "<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n");
  // Without tools: the default system prompt.
  auto plain = tpl.render_chat(Json::parse(R"([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])"),
                               false, std::nullopt, "<|im_end|>");
  ASSERT_TRUE(plain) << plain.status().message();
  EXPECT_EQ(plain.value(),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n");
}

}  // namespace
}  // namespace tandem::chat
