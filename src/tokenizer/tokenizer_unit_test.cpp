// Tokenizer building blocks on small hand-made vocabularies: BPE merge order, added-token matching, byte-level
// decoding, UTF-8 repair, and the pre-tokenizer regexes.
#include <thread>

#include <gtest/gtest.h>

#include "tokenizer/added_tokens.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/test_vocab.h"
#include "tokenizer/utf8.h"

namespace tandem {
namespace {

std::shared_ptr<Tokenizer> make(TokenizerSpec spec) {
  auto tok = Tokenizer::from_spec(std::move(spec));
  EXPECT_TRUE(tok.is_ok()) << tok.status().message();
  return tok.is_ok() ? tok.value() : nullptr;
}

std::vector<std::string> pieces_of(const std::string& pre_name, const std::string& text) {
  auto pre = PreTokenizer::create(pre_name);
  EXPECT_TRUE(pre.is_ok()) << pre.status().message();
  std::vector<std::string_view> views;
  pre.value()->split(text, views);
  return {views.begin(), views.end()};
}

using Pieces = std::vector<std::string>;

TEST(ByteLevelTest, AlphabetRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string spelled = byte_level::encode(all);
  EXPECT_EQ(byte_level::spell(' '), "\xC4\xA0");  // U+0120 'Ġ'
  EXPECT_EQ(byte_level::spell('a'), "a");
  std::string back;
  ASSERT_TRUE(byte_level::decode(spelled, back));
  EXPECT_EQ(back, all);
  EXPECT_FALSE(byte_level::decode("\xE4\xB8\xAD", back));  // '中' is not in the alphabet
  EXPECT_EQ(back, all);
}

TEST(Utf8Test, RepairsMaximalSubparts) {
  EXPECT_TRUE(utf8::is_valid("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80"));
  EXPECT_EQ(utf8::to_valid("a\xF0\x9F\x98"), "a\xEF\xBF\xBD");          // truncated: one U+FFFD
  EXPECT_EQ(utf8::to_valid("\xE0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");     // E0 80 is not a valid start
  EXPECT_EQ(utf8::to_valid("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(utf8::to_valid("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");     // overlong
  EXPECT_EQ(utf8::to_valid("\xE4\xB8" "A"), "\xEF\xBF\xBD" "A");
}

TEST(Utf8Test, IncompleteTail) {
  EXPECT_EQ(utf8::incomplete_tail("abc"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("a\xE4\xB8"), 2u);
  EXPECT_EQ(utf8::incomplete_tail("a\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8::incomplete_tail("a\xE4\xB8\xAD"), 0u);
  EXPECT_EQ(utf8::incomplete_tail("a\xFF"), 0u);  // ill-formed, not incomplete
}

TEST(BpeTest, MergesLowestRankFirst) {
  // "ab" outranks "bc": "abc" -> "ab" + "c" although "bc" also applies.
  auto tok = make(testing::small_spec("gpt2", {{"a", "b"}, {"b", "c"}, {"ab", "c"}}));
  ASSERT_TRUE(tok);
  const int32_t ab = 256, bc = 257, abc = 258;
  EXPECT_EQ(tok->encode("abc"), std::vector<int32_t>{abc});
  EXPECT_EQ(tok->encode("bc"), std::vector<int32_t>{bc});
  EXPECT_EQ(tok->encode("abd"), (std::vector<int32_t>{ab, 'd'}));
}

TEST(BpeTest, EqualRanksMergeLeftmostFirst) {
  auto tok = make(testing::small_spec("gpt2", {{"a", "a"}}));
  ASSERT_TRUE(tok);
  const int32_t aa = 256;
  EXPECT_EQ(tok->encode("aaa"), (std::vector<int32_t>{aa, 'a'}));
  EXPECT_EQ(tok->encode("aaaa"), (std::vector<int32_t>{aa, aa}));
  // Second call hits the word cache and must give the same answer.
  EXPECT_EQ(tok->encode("aaa"), (std::vector<int32_t>{aa, 'a'}));
}

TEST(BpeTest, IgnoreMergesUsesWholeWordTokens) {
  // "abc" is a token but no merge sequence reaches it; llama-bpe (ignore_merges) still emits it whole.
  auto spec = testing::small_spec("llama-bpe", {{"a", "b"}});
  spec.tokens.push_back("abc");
  spec.types.push_back(TokenType::kNormal);
  auto llama = make(spec);
  spec.pre = "gpt2";
  auto gpt2 = make(spec);
  ASSERT_TRUE(llama && gpt2);
  EXPECT_EQ(llama->encode("abc"), std::vector<int32_t>{257});
  EXPECT_EQ(gpt2->encode("abc"), (std::vector<int32_t>{256, 'c'}));
}

TEST(BpeTest, ConcurrentEncodingAgreesWithSequential) {
  auto tok = make(testing::small_spec("gpt2", {{"a", "b"}, {"ab", "c"}, {"c", "a"}, {"b", "b"}, {" ", "a"}}));
  ASSERT_TRUE(tok);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) {
    std::string t;
    for (int k = 0; k < 40; ++k) t += "abc "[(i * 7 + k * k) % 4];
    texts.push_back(t);
  }
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& t : texts) expected.push_back(tok->encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) mismatches[w] += tok->encode(texts[i]) != expected[i];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

TEST(AddedTokensTest, LeftmostLongest) {
  AddedTokenMatcher m;
  m.add("ab", 1);
  m.add("abc", 2);
  m.add("bcd", 3);
  auto r = m.find("xabcd", 0);
  EXPECT_EQ(r.pos, 1u);
  EXPECT_EQ(r.length, 3u);
  EXPECT_EQ(r.id, 2);
  r = m.find("xabcd", 2);  // from inside "abc": "bcd" is next
  EXPECT_EQ(r.pos, 2u);
  EXPECT_EQ(r.id, 3);
  EXPECT_EQ(m.find("xyz", 0).length, 0u);
}

TEST(TokenizerTest, AddedTokensSplitTheText) {
  auto tok = make(testing::small_spec("qwen2", {}, {{"<|end|>", TokenType::kControl}, {"<t>", TokenType::kUserDefined}}));
  ASSERT_TRUE(tok);
  const int32_t end = 256, t = 257;
  EXPECT_EQ(tok->encode("a<|end|>b"), (std::vector<int32_t>{'a', end, 'b'}));
  EXPECT_EQ(tok->encode("<t><|end|>"), (std::vector<int32_t>{t, end}));
  EXPECT_EQ(tok->encode("<|end|>", false, /*parse_special=*/false).size(), 7u);
  EXPECT_EQ(tok->decode({'a', end, t}), "a<|end|><t>");
  EXPECT_EQ(tok->decode({'a', end, t}, /*skip_special=*/true), "a<t>");
  EXPECT_TRUE(tok->is_special(end));
  EXPECT_FALSE(tok->is_special(t));
}

TEST(TokenizerTest, BosEosFollowModelFlags) {
  auto spec = testing::small_spec("gpt2", {}, {{"<s>", TokenType::kControl}, {"</s>", TokenType::kControl}});
  spec.bos_id = 256;
  spec.eos_id = 257;
  auto plain = make(spec);
  spec.add_bos = true;
  spec.add_eos = true;
  auto both = make(spec);
  ASSERT_TRUE(plain && both);
  EXPECT_EQ(plain->encode("a", true), std::vector<int32_t>{'a'});
  EXPECT_EQ(both->encode("a", true), (std::vector<int32_t>{256, 'a', 257}));
  EXPECT_EQ(both->encode("a", false), std::vector<int32_t>{'a'});
}

TEST(TokenizerTest, InvalidUtf8InputIsRepaired) {
  auto tok = make(testing::small_spec("gpt2", {}));
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
}

TEST(TokenizerTest, DecodeByteTokensAndRepairsOutput) {
  auto spec = testing::small_spec("gpt2", {}, {{"<0x41>", TokenType::kByte}, {"[PAD]", TokenType::kUnused}});
  auto tok = make(spec);
  ASSERT_TRUE(tok);
  EXPECT_EQ(tok->decode({256, 257, 'b'}), "Ab");
  EXPECT_EQ(tok->decode({0xE4, 0xB8}), "\xEF\xBF\xBD");  // a truncated character
  EXPECT_EQ(tok->decode({0xE4, 0xB8, 0xAD}), "\xE4\xB8\xAD");
  EXPECT_EQ(tok->decode({-1, 100000}), "");
  EXPECT_EQ(tok->token_piece(0xE4), "\xE4");
  EXPECT_EQ(tok->token_text(' '), "\xC4\xA0");
  EXPECT_EQ(tok->token_to_id("\xC4\xA0"), 32);
}

TEST(TokenizerTest, RejectsUnsupportedInput) {
  auto spec = testing::small_spec("no-such-pre", {});
  auto tok = Tokenizer::from_spec(spec);
  ASSERT_FALSE(tok.is_ok());
  EXPECT_NE(tok.status().message().find("deepseek-v3"), std::string::npos) << tok.status().message();
  spec.pre = "gpt2";
  spec.model = "llama";
  EXPECT_FALSE(Tokenizer::from_spec(spec).is_ok());
  spec.model = "gpt2";
  spec.tokens.erase(spec.tokens.begin() + 'x');
  spec.types.pop_back();
  EXPECT_FALSE(Tokenizer::from_spec(spec).is_ok());  // byte symbol missing
}

TEST(PreTokenizerTest, WhitespaceIsUnicodeWhiteSpace) {
  // U+0085 and U+3000 are White_Space; U+180E (PCRE2's \s includes it) and U+200B are not.
  EXPECT_EQ(pieces_of("qwen2", "a\xC2\x85 b"), (Pieces{"a", "\xC2\x85", " b"}));
  EXPECT_EQ(pieces_of("qwen2", "a\xE1\xA0\x8E" "b"), (Pieces{"a", "\xE1\xA0\x8E" "b"}));
  EXPECT_EQ(pieces_of("qwen2", "a\xE3\x80\x80\xE3\x80\x80" "b"), (Pieces{"a", "\xE3\x80\x80", "\xE3\x80\x80" "b"}));
  EXPECT_EQ(rewrite_whitespace_classes(R"([^\s\]a]\S)").find("\\s"), std::string::npos);
}

TEST(PreTokenizerTest, Families) {
  EXPECT_EQ(pieces_of("qwen2", "I'll 1234!!\n\n  x"), (Pieces{"I", "'ll", " ", "1", "2", "3", "4", "!!\n\n", " ", " x"}));
  EXPECT_EQ(pieces_of("llama-bpe", "1234567 HE'S"), (Pieces{"123", "456", "7", " HE", "'S"}));
  EXPECT_EQ(pieces_of("deepseek-v3", "12345 abc中文字x.y"),
            (Pieces{"123", "45", " abc", "中文字", "x", ".y"}));
  EXPECT_EQ(pieces_of("gpt-4o", "HelloWorld don't"), (Pieces{"Hello", "World", " don't"}));
  EXPECT_EQ(pieces_of("gpt2", "Hello  world"), (Pieces{"Hello", " ", " world"}));
  EXPECT_EQ(pieces_of("deepseek-llm", "Hello 世界\n42"), (Pieces{"Hello", " ", "世界", "\n", "42"}));
}

TEST(PreTokenizerTest, LongRunsDoNotFail) {
  const std::string spaces(200000, ' ');
  const Pieces p = pieces_of("qwen2", spaces + "x");
  EXPECT_EQ(p, (Pieces{std::string(199999, ' '), " x"}));
}

}  // namespace
}  // namespace tandem
