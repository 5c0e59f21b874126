// A PCRE2 regex (UTF + Unicode properties, JIT-compiled when available) used to split text into pieces.
//
// Patterns are written in the Hugging Face tokenizers (Oniguruma) dialect. The one difference that matters is
// `\s`: PCRE2 with UCP also counts U+180E as space, Oniguruma (and Rust) use exactly Unicode White_Space, so
// compile() rewrites `\s` and `\S` into explicit White_Space classes. The subject must be valid UTF-8 (it is
// not re-checked, for speed). Compiled regexes are immutable and safe to share between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tandem {

class SplitRegex {
 public:
  static Result<std::shared_ptr<const SplitRegex>> compile(std::string_view pattern);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Appends the pieces of `text` to `out` with "isolated" behaviour: each match is a piece and so is each
  // non-empty stretch between matches; together they cover `text` exactly, in order.
  void split(std::string_view text, std::vector<std::string_view>& out) const;

 private:
  explicit SplitRegex(void* code);
  void* code_;  // pcre2_code*
};

// The pattern with `\s` / `\S` replaced by explicit Unicode White_Space classes (exposed for tests).
std::string rewrite_whitespace_classes(std::string_view pattern);

}  // namespace tandem
