// Streaming detokenization: characters split across tokens, stop strings, special tokens, end of stream.
#include <gtest/gtest.h>

#include "tokenizer/detokenizer.h"
#include "tokenizer/test_fixtures.h"
#include "tokenizer/test_vocab.h"
#include "tokenizer/utf8.h"

namespace tandem {
namespace {

// Vocabulary: the 256 byte tokens, "He" (256), "Hel" (257), "lo" (258), " w", " wo", " wor" (261), EOS "<|end|>" (262).
std::shared_ptr<const Tokenizer> small_tokenizer() {
  static std::shared_ptr<const Tokenizer> tok = [] {
    auto spec = testing::small_spec("qwen2", {{"H", "e"}, {"He", "l"}, {"l", "o"}, {" ", "w"}, {" w", "o"}, {" wo", "r"}},
                                    {{"<|end|>", TokenType::kControl}});
    spec.eos_id = 262;
    auto r = Tokenizer::from_spec(spec);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return std::shared_ptr<const Tokenizer>(r.value());
  }();
  return tok;
}

struct Streamed {
  std::vector<std::string> chunks;  // one per push, then finish()
  std::string text;
  bool stopped = false;
  int stop_index = -1;
};

Streamed stream(std::shared_ptr<const Tokenizer> tok, const std::vector<int32_t>& ids, std::vector<std::string> stops,
                bool skip_special = true) {
  Detokenizer d(std::move(tok), std::move(stops), skip_special);
  Streamed s;
  for (int32_t id : ids) s.chunks.push_back(d.push(id));
  s.chunks.push_back(d.finish());
  for (const std::string& c : s.chunks) s.text += c;
  s.stopped = d.stopped();
  s.stop_index = d.stop_index();
  return s;
}

TEST(DetokenizerTest, MultiByteCharacterSplitAcrossTokens) {
  // "é" = C3 A9 and "😀" = F0 9F 98 80, one byte token each.
  const Streamed s = stream(small_tokenizer(), {'a', 0xC3, 0xA9, 0xF0, 0x9F, 0x98, 0x80, 'b'}, {});
  EXPECT_EQ(s.chunks, (std::vector<std::string>{"a", "", "\xC3\xA9", "", "", "", "\xF0\x9F\x98\x80", "b", ""}));
  EXPECT_FALSE(s.stopped);
}

TEST(DetokenizerTest, UnfinishedCharacterAtEndBecomesReplacement) {
  const Streamed s = stream(small_tokenizer(), {'a', 0xE4, 0xB8}, {});
  EXPECT_EQ(s.chunks.back(), "\xEF\xBF\xBD");
  EXPECT_EQ(s.text, "a\xEF\xBF\xBD");
}

TEST(DetokenizerTest, IllFormedBytesBecomeReplacementImmediately) {
  const Streamed s = stream(small_tokenizer(), {0xE4, 'A', 0xFF, 'B'}, {});
  EXPECT_EQ(s.chunks, (std::vector<std::string>{"", "\xEF\xBF\xBD" "A", "\xEF\xBF\xBD", "B", ""}));
}

TEST(DetokenizerTest, StopStringSpanningTokens) {
  auto tok = small_tokenizer();
  const std::vector<int32_t> ids = tok->encode("Hello world, more");
  const Streamed s = stream(tok, ids, {"lo wor"});
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.stop_index, 0);
  EXPECT_EQ(s.text, "Hel");
}

TEST(DetokenizerTest, HeldBackPrefixIsReleasedWhenItDoesNotMatch) {
  auto tok = small_tokenizer();
  const Streamed s = stream(tok, tok->encode("Hello there"), {"lo!"});
  EXPECT_FALSE(s.stopped);
  EXPECT_EQ(s.text, "Hello there");
  // Tokens "Hel", "lo", " ", ...: the "l" and then "lo" are held back until " " shows they do not start "lo!".
  EXPECT_EQ(s.chunks[0], "He");
  EXPECT_EQ(s.chunks[1], "l");
  EXPECT_EQ(s.chunks[2], "lo ");
}

TEST(DetokenizerTest, PrefixHeldAtEndIsFlushed) {
  auto tok = small_tokenizer();
  const Streamed s = stream(tok, tok->encode("Hello"), {"lo!"});
  EXPECT_EQ(s.chunks.back(), "lo");
  EXPECT_EQ(s.text, "Hello");
}

TEST(DetokenizerTest, EarliestStopWinsAndLaterTokensAreIgnored) {
  auto tok = small_tokenizer();
  Detokenizer d(tok, {"world", "o w", ""});
  std::string text;
  for (int32_t id : tok->encode("Hello world again")) text += d.push(id);
  text += d.finish();
  EXPECT_EQ(text, "Hell");
  EXPECT_EQ(d.stop_index(), 1);
  EXPECT_EQ(d.push('x'), "");
}

TEST(DetokenizerTest, MultiByteStopString) {
  auto tok = small_tokenizer();
  const std::string text = "ab\xE4\xB8\xAD\xE6\x96\x87" "cd";  // "ab中文cd"
  const Streamed s = stream(tok, tok->encode(text), {"\xE6\x96\x87"});
  EXPECT_TRUE(s.stopped);
  EXPECT_EQ(s.text, "ab\xE4\xB8\xAD");
}

TEST(DetokenizerTest, SpecialTokens) {
  auto tok = small_tokenizer();
  EXPECT_EQ(stream(tok, {'a', 262, 'b'}, {}).text, "ab");
  EXPECT_EQ(stream(tok, {'a', 262, 'b'}, {}, /*skip_special=*/false).text, "a<|end|>b");
  EXPECT_EQ(stream(tok, {'a', 262, 'b'}, {"<|end|>"}, false).text, "a");
}

TEST(DetokenizerTest, KeptSpecialTokensAddTheirTextWhileOthersAreSkipped) {
  auto tok = small_tokenizer();
  Detokenizer kept(tok, {}, /*skip_special=*/true, /*kept_special=*/{262});
  std::string text;
  for (int32_t id : std::vector<int32_t>{'a', 262, 'b'}) text += kept.push(id);
  text += kept.finish();
  EXPECT_EQ(text, "a<|end|>b");
  Detokenizer other(tok, {}, true, {'a'});  // keeping a normal token changes nothing
  text.clear();
  for (int32_t id : std::vector<int32_t>{'a', 262, 'b'}) text += other.push(id);
  EXPECT_EQ(text + other.finish(), "ab");
}

TEST(DetokenizerTest, ConcatenationEqualsDecodeOnRealVocabulary) {
  std::string error;
  auto tok = testing::fixture_tokenizer("tiny-qwen3moe-bf16", &error);
  ASSERT_TRUE(error.empty()) << error;
  if (!tok) GTEST_SKIP() << "fixture model tiny-qwen3moe-bf16 not found";
  // Emoji and CJK split into byte-level tokens (e.g. ZWJ sequences are several partial-character tokens).
  const std::string text = "emoji \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 \xE6\x9D\xB1\xE4\xBA\xAC ok \xF0\x9F\x87\xA8\xF0\x9F\x87\xB3";
  const std::vector<int32_t> ids = tok->encode(text);
  const Streamed s = stream(tok, ids, {});
  EXPECT_EQ(s.text, text);
  EXPECT_EQ(s.text, tok->decode(ids));
  for (const std::string& chunk : s.chunks) EXPECT_TRUE(utf8::is_valid(chunk));
  int partial_tokens = 0;
  for (int32_t id : ids) partial_tokens += !utf8::is_valid(tok->token_piece(id));
  EXPECT_GT(partial_tokens, 0);
}

}  // namespace
}  // namespace tandem
