// Tokenizer encode throughput (MB/s of UTF-8 input, one thread) on English prose, with the DeepSeek-V3 and Qwen3
// vocabularies of the fixture models (fixtures located via env TANDEM_SOURCE_DIR, else the build's source dir).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace {

std::string fixture_model(const std::string& name) {
  const char* env = std::getenv("TANDEM_SOURCE_DIR");
  const std::string root = env != nullptr ? env : TANDEM_SOURCE_DIR;
  return root + "/../shared/fixtures/models/" + name + "/model.gguf";
}

// ~400 KB of English-like prose: sentences assembled from a fixed word list with punctuation, numbers,
// capitalization and paragraph breaks, from a fixed seed.
std::string english_text(size_t bytes) {
  static const char* const kWords[] = {
      "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
      "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
      "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
      "who", "so", "no", "model", "expert", "inference", "server", "memory", "bandwidth", "throughput", "latency",
      "tokenizer", "sequence", "attention", "routing", "however", "because", "although", "between", "important",
      "different", "following", "government", "development", "information", "understanding", "particularly",
      "it's", "don't", "they're", "we'll", "I'm", "you've", "she'd"};
  constexpr size_t kNumWords = sizeof(kWords) / sizeof(kWords[0]);
  std::mt19937 rng(1234);
  std::string text;
  text.reserve(bytes + 256);
  bool sentence_start = true;
  while (text.size() < bytes) {
    std::string word = kWords[rng() % kNumWords];
    if (rng() % 40 == 0) word = std::to_string(rng() % 100000);
    if (sentence_start && !word.empty()) word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
    text += word;
    sentence_start = false;
    const unsigned r = rng() % 100;
    if (r < 8) {
      text += ". ";
      sentence_start = true;
    } else if (r < 12) {
      text += ", ";
    } else if (r == 12) {
      text += ".\n\n";
      sentence_start = true;
    } else {
      text += ' ';
    }
  }
  return text;
}

void encode_english(benchmark::State& state, const std::string& model_name) {
  auto model = tandem::GgufModel::open(fixture_model(model_name));
  if (!model) {
    state.SkipWithError(model.status().message().c_str());
    return;
  }
  auto tok = tandem::Tokenizer::from_gguf(*model.value());
  if (!tok) {
    state.SkipWithError(tok.status().message().c_str());
    return;
  }
  const std::string text = english_text(400 * 1024);
  size_t n_tokens = 0;
  for (auto _ : state) {
    const std::vector<int32_t> ids = tok.value()->encode(text);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["bytes"] = static_cast<double>(text.size());
}

void BM_EncodeEnglish_DeepseekV3(benchmark::State& state) { encode_english(state, "tiny-dsv3-bf16"); }
void BM_EncodeEnglish_Qwen3(benchmark::State& state) { encode_english(state, "tiny-qwen3moe-bf16"); }

BENCHMARK(BM_EncodeEnglish_DeepseekV3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeEnglish_Qwen3)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
