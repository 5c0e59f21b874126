// UTF-8 helpers for the tokenizer: classify the sequence at a position, repair ill-formed text, and find an
// incomplete character at the end of a byte stream (for streaming detokenization).
//
// Ill-formed input is repaired the way Rust's String::from_utf8_lossy and the WHATWG decoder do it: each maximal
// subpart of an ill-formed sequence becomes one U+FFFD.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tandem::utf8 {

enum class SeqStatus { kValid, kInvalid, kTruncated };

struct Seq {
  SeqStatus status;
  size_t length;  // kValid: the sequence; kInvalid: the maximal ill-formed subpart (>= 1); kTruncated: bytes left
};

// Classifies the sequence starting at s[pos] (pos < s.size()).
Seq scan(std::string_view s, size_t pos);

bool is_valid(std::string_view s);

// `s` with every maximal ill-formed subpart (a truncated sequence at the end included) replaced by U+FFFD.
std::string to_valid(std::string_view s);

// Bytes at the end of `s` that start a well-formed sequence but are too few to finish it (0 to 3).
size_t incomplete_tail(std::string_view s);

void append_code_point(std::string& out, char32_t cp);

}  // namespace tandem::utf8
