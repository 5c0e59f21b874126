// Incremental detokenizer for streaming generation.
//
// push() takes generated token ids one at a time and returns the text that is now final. It never returns part
// of a UTF-8 character (bytes of an unfinished character wait for the next token; ill-formed bytes become U+FFFD)
// and holds back any suffix that could be the start of a stop string. When a stop string appears, the text before
// it is returned, the stop string and everything after it are dropped, and stopped() turns true; later pushes
// return nothing. finish() returns whatever is still held back at the end of the stream (an unfinished character
// as U+FFFD). Concatenating all returned strings gives decode(ids) cut at the first stop string.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tandem {

class Detokenizer {
 public:
  // Empty stop strings are ignored. With skip_special, control tokens (e.g. EOS) add no text, except those in
  // `kept_special` (e.g. tool-call markers a parser downstream needs), which add their text.
  Detokenizer(std::shared_ptr<const Tokenizer> tokenizer, std::vector<std::string> stop_strings = {},
              bool skip_special = true, std::vector<int32_t> kept_special = {});

  std::string push(int32_t id);
  std::string finish();

  bool stopped() const { return stop_index_ >= 0; }
  // Index into the stop strings of the one that was hit; -1 while not stopped.
  int stop_index() const { return stop_index_; }

 private:
  // Moves completed characters from pending_bytes_ to text_, then returns what of text_ is final.
  std::string release(bool at_end);

  std::shared_ptr<const Tokenizer> tokenizer_;
  std::vector<std::string> stops_;
  bool skip_special_;
  std::vector<int32_t> kept_special_;
  std::string pending_bytes_;  // an unfinished UTF-8 character (at most 3 bytes)
  std::string text_;           // valid UTF-8 not yet returned: a possible start of a stop string
  int stop_index_ = -1;
};

}  // namespace tandem
