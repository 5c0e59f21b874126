// Token masks: the vocabulary trie of the fixture tokenizers, masks equal to a brute-force check of every token,
// special tokens kept out, and budget-aware closing (a random "model" always finishes a valid document in time).
#include "grammar/grammar_constraint.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "grammar/test_support.h"
#include "tokenizer/test_fixtures.h"
#include "tokenizer/test_vocab.h"

namespace tandem::grammar {
namespace {

using nlohmann::json;

std::shared_ptr<const Tokenizer> fixture(const std::string& name) {
  std::string error;
  auto tok = tandem::testing::fixture_tokenizer(name, &error);
  EXPECT_TRUE(error.empty()) << error;
  return tok;
}

std::shared_ptr<const Tokenizer> small_tokenizer() {
  auto spec = tandem::testing::small_spec(
      "gpt2", {{"{", "\""}, {"\"", ":"}, {"\"", ","}, {"a", "b"}, {"ab", "c"}, {"1", "2"}, {"t", "r"}, {"tr", "u"},
               {"tru", "e"}, {"\"", "}"}, {"[", "["}, {"]", "]"}, {"}", "}"}, {" ", " "}, {"n", "u"}, {"nu", "ll"},
               {"l", "l"}, {",", "\""}, {"\\", "n"}},
      {{"<eos>", TokenType::kControl}, {"<user>", TokenType::kUserDefined}});
  auto tok = Tokenizer::from_spec(spec);
  EXPECT_TRUE(tok.is_ok());
  return tok.value();
}

const json kNested = {
    {"type", "object"},
    {"properties",
     {{"name", {{"type", "string"}, {"maxLength", 20}}},
      {"tags", {{"type", "array"}, {"items", {{"enum", {"red", "green", "blue"}}}}, {"maxItems", 4}}},
      {"address", {{"type", "object"},
                   {"properties", {{"city", {{"type", "string"}}}, {"zip", {{"type", "integer"}}}}},
                   {"required", {"city", "zip"}}}},
      {"score", {{"type", {"number", "null"}}}},
      {"active", {{"type", "boolean"}}}}},
    {"required", {"name", "address", "active"}}};

GrammarPtr nested() { return std::get<GrammarPtr>(compile_json_schema(kNested)); }

int32_t byte_token(const VocabTrie& trie, char byte) {
  for (int32_t t : trie.token_ids()) {
    if (trie.bytes(t) == std::string(1, byte)) return t;
  }
  return -1;
}

std::vector<uint64_t> mask_of(GrammarConstraint& c, int32_t n_vocab, int64_t remaining) {
  std::vector<uint64_t> bits((static_cast<size_t>(n_vocab) + 63) / 64);
  c.allowed(bits, remaining);
  return bits;
}
bool has(const std::vector<uint64_t>& bits, int32_t t) { return (bits[static_cast<size_t>(t) / 64] >> (t % 64)) & 1; }

TEST(VocabTrie, FixtureVocabulariesArePreorderTriesOfEveryTextToken) {
  for (const char* name : {"tiny-dsv3-bf16", "tiny-qwen3moe-bf16"}) {
    auto tok = fixture(name);
    if (!tok) GTEST_SKIP() << "fixtures not found";
    auto trie = VocabTrie::build(tok);
    // Budget-aware closing relies on one token per byte.
    EXPECT_TRUE(trie->covers_all_bytes()) << name;
    size_t text_tokens = 0;
    for (int32_t id = 0; id < tok->vocab_size(); ++id) {
      const bool text = (tok->token_type(id) == TokenType::kNormal || tok->token_type(id) == TokenType::kByte) &&
                        !tok->token_piece(id).empty();
      text_tokens += text;
      EXPECT_EQ(trie->in_trie(id), text) << id;
      if (tok->is_special(id)) {
        EXPECT_FALSE(trie->in_trie(id));
      }
    }
    EXPECT_EQ(trie->token_ids().size(), text_tokens);
    // Walking the preorder array rebuilds every token's bytes.
    const auto& nodes = trie->nodes();
    std::string path;
    size_t seen = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
      path.resize(nodes[i].depth - 1u);
      path += static_cast<char>(nodes[i].byte);
      ASSERT_GT(nodes[i].end, i);
      if (i + 1 < nodes.size() && nodes[i + 1].depth > nodes[i].depth) {
        ASSERT_EQ(nodes[i + 1].depth, nodes[i].depth + 1);
      }
      const uint32_t last = i + 1 < nodes.size() ? nodes[i + 1].tokens : static_cast<uint32_t>(trie->token_ids().size());
      for (uint32_t k = nodes[i].tokens; k < last; ++k) {
        ASSERT_EQ(trie->bytes(trie->token_ids()[k]), path);
        ++seen;
      }
    }
    EXPECT_EQ(seen, text_tokens);
  }
}

// Brute force: a token is allowed iff its bytes are accepted and the shortest completion after them fits.
std::vector<uint64_t> brute_force(const GrammarPtr& g, const Matcher& m, const VocabTrie& trie,
                                  const std::vector<int32_t>& ends, int32_t n_vocab, int64_t remaining,
                                  const std::vector<int32_t>& sample) {
  std::vector<uint64_t> bits((static_cast<size_t>(n_vocab) + 63) / 64);
  Stepper stepper(*g);
  MatchState a, b;
  const bool complete = m.is_complete();
  const bool only_end = complete && !m.can_continue();
  for (int32_t t : sample) {
    bool ok = false;
    if (std::find(ends.begin(), ends.end(), t) != ends.end()) {
      ok = complete;
    } else if (trie.in_trie(t) && !only_end && remaining >= 2) {
      a = m.state();
      ok = true;
      for (unsigned char c : trie.bytes(t)) {
        if (!stepper.step(a, c, b)) {
          ok = false;
          break;
        }
        std::swap(a, b);
      }
      ok = ok && stepper.distance(a) <= static_cast<uint64_t>(remaining - 2);
    }
    if (ok) bits[static_cast<size_t>(t) / 64] |= uint64_t{1} << (t % 64);
  }
  return bits;
}

void expect_masks_match(const std::shared_ptr<const Tokenizer>& tok, const GrammarPtr& g, const json& schema_for_gen,
                        bool object_root) {
  auto trie = VocabTrie::build(tok);
  const std::vector<int32_t> ends = {tok->eos_id() >= 0 ? tok->eos_id() : tok->vocab_size() - 1};
  const int32_t n_vocab = tok->vocab_size() + 3;  // the model's vocabulary may be padded beyond the tokenizer's
  testing::Generator gen(schema_for_gen, 5);
  std::mt19937_64 rng(11);
  std::vector<int32_t> all(static_cast<size_t>(n_vocab));
  std::iota(all.begin(), all.end(), 0);
  int states = 0;
  for (int d = 0; d < 4; ++d) {
    const std::string doc = object_root ? gen.free_object(json::object(), 0) : gen.value(schema_for_gen);
    for (size_t cut : {size_t{0}, doc.size() / 3, doc.size() / 2, doc.size() - 1, doc.size()}) {
      // The prefix goes in through single-byte tokens, as a model could send it.
      GrammarConstraint real(g, trie, ends);
      Matcher m(g);
      ASSERT_TRUE(m.advance(std::string_view(doc).substr(0, cut)));
      for (size_t i = 0; i < cut; ++i) ASSERT_TRUE(real.accept(byte_token(*trie, doc[i]))) << doc.substr(0, i + 1);
      for (int64_t remaining : {int64_t{1000}, static_cast<int64_t>(m.min_bytes_to_complete()) + 2,
                                static_cast<int64_t>(m.min_bytes_to_complete()) + 4}) {
        const auto got = mask_of(real, n_vocab, remaining);
        std::vector<int32_t> sample = all;
        if (states > 2) {  // the whole vocabulary for a few states, a random tenth for the others
          std::shuffle(sample.begin(), sample.end(), rng);
          sample.resize(sample.size() / 10);
        }
        const auto want = brute_force(g, m, *trie, ends, n_vocab, remaining, sample);
        for (int32_t t : sample) {
          ASSERT_EQ(has(got, t), has(want, t)) << "token " << t << " '" << trie->bytes(t) << "' after '"
                                                << doc.substr(0, cut) << "' remaining " << remaining;
        }
        ++states;
      }
    }
  }
}

TEST(GrammarConstraint, MaskEqualsBruteForceOnTheDeepSeekVocabulary) {
  auto tok = fixture("tiny-dsv3-bf16");
  if (!tok) GTEST_SKIP() << "fixtures not found";
  expect_masks_match(tok, json_object_grammar(), json::object(), true);
  expect_masks_match(tok, nested(), kNested, false);
}

TEST(GrammarConstraint, MaskEqualsBruteForceOnASmallVocabulary) {
  auto tok = small_tokenizer();
  expect_masks_match(tok, json_object_grammar(), json::object(), true);
  expect_masks_match(tok, nested(), kNested, false);
}

TEST(GrammarConstraint, SpecialTokensNeverAndEndTokenOnlyAtTheEnd) {
  auto tok = small_tokenizer();
  auto trie = VocabTrie::build(tok);
  const int32_t eos = *tok->token_to_id("<eos>"), user = *tok->token_to_id("<user>");
  GrammarConstraint c(json_object_grammar(), trie, {eos});
  const int32_t n = tok->vocab_size();
  auto bits = mask_of(c, n, 100);
  EXPECT_FALSE(has(bits, eos));
  EXPECT_FALSE(has(bits, user));
  EXPECT_TRUE(has(bits, '{'));
  EXPECT_TRUE(has(bits, *tok->token_to_id(byte_level::encode("{\""))));
  EXPECT_FALSE(has(bits, ' '));  // no whitespace before or between JSON tokens
  EXPECT_FALSE(c.accept(eos));
  EXPECT_FALSE(c.accept(user));
  EXPECT_FALSE(c.accept('['));
  ASSERT_TRUE(c.accept('{'));
  bits = mask_of(c, n, 100);
  EXPECT_FALSE(has(bits, ' '));
  EXPECT_FALSE(has(bits, *tok->token_to_id(byte_level::encode("  "))));
  ASSERT_TRUE(c.accept('}'));
  EXPECT_TRUE(c.is_complete());
  bits = mask_of(c, n, 100);
  for (int32_t t = 0; t < n; ++t) EXPECT_EQ(has(bits, t), t == eos) << t;
  EXPECT_TRUE(c.accept(eos));
  bits = mask_of(c, n, 100);
  EXPECT_TRUE(std::all_of(bits.begin(), bits.end(), [](uint64_t w) { return w == 0; }));
}

// A random model: each step picks an allowed token, preferring ones that open structure or are long, so that
// without closing it would wander off. Returns the token ids up to and including the end token.
std::vector<int32_t> wander(GrammarConstraint& c, const VocabTrie& trie, int32_t n_vocab, int64_t max_tokens,
                            std::mt19937_64& rng) {
  std::vector<int32_t> out;
  std::vector<uint64_t> bits((static_cast<size_t>(n_vocab) + 63) / 64);
  for (int64_t step = 0; step < max_tokens; ++step) {
    c.allowed(bits, max_tokens - step);
    std::vector<int32_t> options;
    std::vector<double> weight;
    for (int32_t t = 0; t < n_vocab; ++t) {
      if (!has(bits, t)) continue;
      const std::string& b = trie.bytes(t);
      options.push_back(t);
      weight.push_back(1.0 + 20.0 * (b.find_first_of("[{") != std::string::npos) + static_cast<double>(b.size()));
    }
    if (options.empty()) return out;
    const int32_t t = options[std::discrete_distribution<size_t>(weight.begin(), weight.end())(rng)];
    out.push_back(t);
    EXPECT_TRUE(c.accept(t));
    if (trie.bytes(t).empty()) return out;  // the end token
  }
  return out;
}

void expect_closing(const std::shared_ptr<const Tokenizer>& tok, const GrammarPtr& g, const json& schema, int runs) {
  auto trie = VocabTrie::build(tok);
  const int32_t eos = tok->eos_id() >= 0 ? tok->eos_id() : *tok->token_to_id("<eos>");
  std::mt19937_64 rng(2024);
  for (int run = 0; run < runs; ++run) {
    const int64_t max_tokens = static_cast<int64_t>(g->min_bytes()) + 1 + run * 7 % 40;
    GrammarConstraint c(g, trie, {eos});
    const auto ids = wander(c, *trie, tok->vocab_size(), max_tokens, rng);
    ASSERT_FALSE(ids.empty());
    ASSERT_LE(static_cast<int64_t>(ids.size()), max_tokens);
    EXPECT_EQ(ids.back(), eos) << "no end token within " << max_tokens << " tokens";
    std::string text;
    for (int32_t t : ids) text += trie->bytes(t);
    json parsed;
    ASSERT_NO_THROW(parsed = json::parse(text)) << text;
    EXPECT_TRUE(testing::compact(text)) << text;
    EXPECT_TRUE(testing::valid(parsed, schema, schema)) << text;
    if (schema.empty()) {
      EXPECT_TRUE(parsed.is_object());
    }
  }
}

TEST(GrammarConstraint, ClosingFinishesEveryDocumentWithinTheBudget) {
  auto small = small_tokenizer();
  expect_closing(small, json_object_grammar(), json::object(), 30);
  expect_closing(small, nested(), kNested, 30);
  auto tok = fixture("tiny-dsv3-bf16");
  if (!tok) GTEST_SKIP() << "fixtures not found";
  expect_closing(tok, json_object_grammar(), json::object(), 4);
  expect_closing(tok, nested(), kNested, 4);
}

TEST(GrammarConstraint, SequenceForcesItsLiteralPrefix) {
  auto tok = small_tokenizer();
  auto trie = VocabTrie::build(tok);
  const int32_t eos = *tok->token_to_id("<eos>");
  const std::vector<GrammarPiece> pieces = {GrammarPiece::text("<call>"), GrammarPiece::json(kNested),
                                            GrammarPiece::text("</call>")};
  const GrammarPtr g = std::get<GrammarPtr>(compile_sequence(pieces));
  GrammarConstraint c(g, trie, {eos});
  auto bits = mask_of(c, tok->vocab_size(), 500);
  for (int32_t t = 0; t < tok->vocab_size(); ++t) EXPECT_EQ(has(bits, t), t == '<') << t;
  std::mt19937_64 rng(3);
  const auto ids = wander(c, *trie, tok->vocab_size(), static_cast<int64_t>(g->min_bytes()) + 20, rng);
  std::string text;
  for (int32_t t : ids) text += trie->bytes(t);
  ASSERT_TRUE(text.starts_with("<call>") && text.ends_with("</call>")) << text;
  EXPECT_EQ(ids.back(), eos);
  const json args = json::parse(text.substr(6, text.size() - 13));
  EXPECT_TRUE(testing::valid(args, kNested, kNested)) << text;
}

TEST(GrammarConstraint, SpecialTokensStandInForTheirBytes) {
  // <user> (a token outside the trie) written where the grammar has byte 0xF8; the lone byte token of 0xF8 (the
  // byte-level vocabulary has one) never stands in for it.
  auto tok = small_tokenizer();
  auto trie = VocabTrie::build(tok);
  const int32_t eos = *tok->token_to_id("<eos>"), user = *tok->token_to_id("<user>");
  const std::string mark(1, static_cast<char>(GrammarConstraint::kSpecialByteBase));
  const std::vector<GrammarPiece> pieces = {GrammarPiece::text(mark + "f"), GrammarPiece::json(kNested),
                                            GrammarPiece::text(mark)};
  const GrammarPtr g = std::get<GrammarPtr>(compile_sequence(pieces));
  const int32_t n = tok->vocab_size();
  const auto byte_f8 = tok->token_to_id(byte_level::encode(mark));
  ASSERT_TRUE(byte_f8.has_value());
  GrammarConstraint c(g, trie, {eos}, {{user, GrammarConstraint::kSpecialByteBase}});
  auto bits = mask_of(c, n, 500);
  for (int32_t t = 0; t < n; ++t) EXPECT_EQ(has(bits, t), t == user) << t;
  EXPECT_FALSE(c.accept(*byte_f8));
  ASSERT_TRUE(c.accept(user));
  bits = mask_of(c, n, 500);
  EXPECT_FALSE(has(bits, user));
  EXPECT_TRUE(has(bits, 'f'));
  // Without it the byte is plain text: the lone byte token is what writes it.
  GrammarConstraint plain(g, trie, {eos});
  bits = mask_of(plain, n, 500);
  for (int32_t t = 0; t < n; ++t) EXPECT_EQ(has(bits, t), t == *byte_f8) << t;

  // A random walk ends with <user>, then the end token, and the arguments in between are valid.
  std::mt19937_64 rng(5);
  GrammarConstraint walk(g, trie, {eos}, {{user, GrammarConstraint::kSpecialByteBase}});
  std::vector<uint64_t> w((static_cast<size_t>(n) + 63) / 64);
  std::string text;
  std::vector<int32_t> ids;
  const int64_t budget = static_cast<int64_t>(g->min_bytes()) + 20;
  for (int64_t step = 0; step < budget; ++step) {
    walk.allowed(w, budget - step);
    std::vector<int32_t> options;
    for (int32_t t = 0; t < n; ++t) {
      if (has(w, t)) options.push_back(t);
    }
    ASSERT_FALSE(options.empty());
    const int32_t t = options[std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng)];
    ASSERT_TRUE(walk.accept(t));
    ids.push_back(t);
    if (t == eos) break;
    text += t == user ? std::string("<user>") : trie->bytes(t);
  }
  ASSERT_EQ(ids.back(), eos) << text;
  ASSERT_TRUE(text.starts_with("<user>f") && text.ends_with("<user>")) << text;
  EXPECT_TRUE(testing::valid(json::parse(text.substr(7, text.size() - 13)), kNested, kNested)) << text;
}

}  // namespace
}  // namespace tandem::grammar
