// Test helpers: locate the shared fixtures (TANDEM_SOURCE_DIR + "/../shared/fixtures"; the environment variable,
// set by CTest, else the build's compile definition) and load the tiny models' tokenizers once per test binary.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace tandem::testing {

// The fixtures folder, or "" when TANDEM_SOURCE_DIR is unset or the folder is missing.
inline std::string fixtures_dir() {
  const char* src = std::getenv("TANDEM_SOURCE_DIR");
#ifdef TANDEM_SOURCE_DIR
  if (src == nullptr) src = TANDEM_SOURCE_DIR;
#endif
  if (src == nullptr) return {};
  const std::filesystem::path dir = std::filesystem::path(src) / ".." / "shared" / "fixtures";
  return std::filesystem::is_directory(dir) ? dir.string() : std::string();
}

// The tokenizer of fixtures/models/<name>/model.gguf (cached); nullptr when the file is missing or fails to
// load, in which case `*error` holds the load error (empty for a missing file).
inline std::shared_ptr<const Tokenizer> fixture_tokenizer(const std::string& name, std::string* error) {
  static std::map<std::string, std::shared_ptr<const Tokenizer>> cache;
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  const std::string dir = fixtures_dir();
  const std::string path = dir + "/models/" + name + "/model.gguf";
  if (dir.empty() || !std::filesystem::exists(path)) return nullptr;
  auto model = GgufModel::open(path);
  if (!model) {
    *error = model.status().message();
    return nullptr;
  }
  auto tok = Tokenizer::from_gguf(*model.value());
  if (!tok) {
    *error = tok.status().message();
    return nullptr;
  }
  cache[name] = tok.value();
  return tok.value();
}

}  // namespace tandem::testing
