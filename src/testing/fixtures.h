// Locating the shared reference fixtures (../shared/fixtures beside the checkout) from tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace tandem::testing {

// The fixtures folder, or an empty path when it is not there (tests then GTEST_SKIP with a message).
inline std::filesystem::path fixtures_dir() {
  const char* src = std::getenv("TANDEM_SOURCE_DIR");
  std::filesystem::path root = src ? src : TANDEM_SOURCE_DIR;
  std::filesystem::path dir = root / ".." / "shared" / "fixtures";
  return std::filesystem::exists(dir) ? dir : std::filesystem::path();
}

inline std::filesystem::path fixture_model_dir(const std::string& name) {
  const auto dir = fixtures_dir();
  return dir.empty() ? dir : dir / "models" / name;
}

}  // namespace tandem::testing

#define TANDEM_REQUIRE_FIXTURES()                                                          \
  do {                                                                                     \
    if (::tandem::testing::fixtures_dir().empty())                                         \
      GTEST_SKIP() << "../shared/fixtures not found beside the checkout; fixture test skipped"; \
  } while (0)
