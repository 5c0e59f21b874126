// Constrained decoding: the time to compute one step's token mask (GrammarConstraint::allowed) on the DeepSeek-V3
// vocabulary (~129k tokens) of the fixture model, for JSON mode and for a nested schema, at several points of a
// document (fixtures located via env TANDEM_SOURCE_DIR, else the build's source dir). Also the trie build.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "gguf/gguf_file.h"
#include "grammar/grammar_constraint.h"
#include "tokenizer/tokenizer.h"

namespace {

using tandem::grammar::GrammarConstraint;
using tandem::grammar::GrammarPtr;
using tandem::grammar::VocabTrie;

std::shared_ptr<const tandem::Tokenizer> deepseek_tokenizer() {
  static std::shared_ptr<const tandem::Tokenizer> tok = [] {
    const char* env = std::getenv("TANDEM_SOURCE_DIR");
    const std::string root = env != nullptr ? env : TANDEM_SOURCE_DIR;
    auto model = tandem::GgufModel::open(root + "/../shared/fixtures/models/tiny-dsv3-bf16/model.gguf");
    if (!model) return std::shared_ptr<const tandem::Tokenizer>();
    auto t = tandem::Tokenizer::from_gguf(*model.value());
    return t ? std::shared_ptr<const tandem::Tokenizer>(t.value()) : nullptr;
  }();
  return tok;
}

std::shared_ptr<const VocabTrie> trie() {
  static std::shared_ptr<const VocabTrie> t = deepseek_tokenizer() ? VocabTrie::build(deepseek_tokenizer()) : nullptr;
  return t;
}

GrammarPtr nested_schema() {
  const auto schema = nlohmann::json::parse(R"({
    "type": "object",
    "properties": {
      "name": {"type": "string", "maxLength": 64},
      "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"},
                  "zip": {"type": "integer"}}, "required": ["street", "city", "zip"]},
      "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 8},
      "scores": {"type": "array", "items": {"type": "number"}},
      "kind": {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}]},
      "active": {"type": "boolean"}
    },
    "required": ["name", "address", "tags", "active"]})");
  return std::get<GrammarPtr>(tandem::grammar::compile_json_schema(schema));
}

// The mask of one step after `prefix` (fed byte by byte), with a budget that does not bind.
void mask(benchmark::State& state, GrammarPtr g, const std::string& prefix) {
  auto t = trie();
  if (!t) {
    state.SkipWithError("fixture model not found (../shared/fixtures beside the checkout)");
    return;
  }
  GrammarConstraint c(std::move(g), t, {1});
  for (char b : prefix) {
    for (int32_t id : t->token_ids()) {
      if (t->bytes(id) == std::string(1, b)) {
        if (!c.accept(id)) state.SkipWithError("prefix refused");
        break;
      }
    }
  }
  std::vector<uint64_t> bits((static_cast<size_t>(t->vocab_size()) + 63) / 64);
  size_t allowed = 0;
  for (auto _ : state) {
    c.allowed(bits, 4096);
    benchmark::DoNotOptimize(bits.data());
  }
  for (uint64_t w : bits) allowed += static_cast<size_t>(__builtin_popcountll(w));
  state.counters["allowed"] = static_cast<double>(allowed);
}

// A whole document as the model would send it (the tokenizer's tokens): the mask before every token, then the
// token; per_token is the mean mask + accept time per generated token.
void document(benchmark::State& state, GrammarPtr g, const std::string& doc) {
  auto t = trie();
  if (!t) {
    state.SkipWithError("fixture model not found (../shared/fixtures beside the checkout)");
    return;
  }
  const std::vector<int32_t> ids = deepseek_tokenizer()->encode(doc, false, false);
  std::vector<uint64_t> bits((static_cast<size_t>(t->vocab_size()) + 63) / 64);
  for (auto _ : state) {
    GrammarConstraint c(g, t, {1});
    for (int32_t id : ids) {
      c.allowed(bits, 4096);
      if (!((bits[static_cast<size_t>(id) / 64] >> (id % 64)) & 1) || !c.accept(id)) {
        state.SkipWithError("the document's token was not allowed");
        return;
      }
    }
    c.allowed(bits, 4096);
    benchmark::DoNotOptimize(bits.data());
  }
  state.counters["tokens"] = static_cast<double>(ids.size() + 1);
  state.counters["per_token"] = benchmark::Counter(static_cast<double>(ids.size() + 1) * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

const char* const kPerson = R"({"name":"Ada Lovelace, Countess of Lovelace","address":{"street":"12 St James's Square",)"
                            R"("city":"London","zip":12345},"tags":["red","blue"],"scores":[1.5,2,300.25,-7e2],)"
                            R"("kind":{"a":3},"active":true})";

BENCHMARK_CAPTURE(document, json_object, tandem::grammar::json_object_grammar(), kPerson)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(document, nested_schema, nested_schema(), kPerson)->Unit(benchmark::kMillisecond);

void BM_TrieBuild(benchmark::State& state) {
  auto tok = deepseek_tokenizer();
  if (!tok) {
    state.SkipWithError("fixture model not found");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(VocabTrie::build(tok));
  state.counters["nodes"] = static_cast<double>(trie()->nodes().size());
}
BENCHMARK(BM_TrieBuild)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(mask, json_object_start, tandem::grammar::json_object_grammar(), "")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, json_object_key, tandem::grammar::json_object_grammar(), "{\"na")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, json_object_value_start, tandem::grammar::json_object_grammar(), "{\"name\":")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, json_object_in_string, tandem::grammar::json_object_grammar(), "{\"name\":\"The qu")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, json_object_in_number, tandem::grammar::json_object_grammar(), "{\"n\":[1,2.5")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, json_object_nested_array, tandem::grammar::json_object_grammar(), "{\"a\":[{\"b\":[")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, schema_start, nested_schema(), "")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, schema_key, nested_schema(), "{\"name\":\"x\",\"")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, schema_in_string, nested_schema(), "{\"name\":\"The qu")->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, schema_nested_string, nested_schema(), "{\"name\":\"x\",\"address\":{\"city\":\"Par")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, schema_enum_item, nested_schema(), "{\"name\":\"x\",\"tags\":[\"red\",")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(mask, schema_anyof, nested_schema(), "{\"name\":\"x\",\"kind\":")->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
