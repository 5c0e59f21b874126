#include "tokenizer/detokenizer.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace tandem {

Detokenizer::Detokenizer(std::shared_ptr<const Tokenizer> tokenizer, std::vector<std::string> stop_strings,
                         bool skip_special, std::vector<int32_t> kept_special)
    : tokenizer_(std::move(tokenizer)), skip_special_(skip_special), kept_special_(std::move(kept_special)) {
  for (std::string& s : stop_strings) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

std::string Detokenizer::push(int32_t id) {
  if (stopped()) return {};
  const bool skipped = skip_special_ && tokenizer_->is_special(id) &&
                       std::find(kept_special_.begin(), kept_special_.end(), id) == kept_special_.end();
  if (!skipped) pending_bytes_ += tokenizer_->token_piece(id);
  return release(false);
}

std::string Detokenizer::finish() {
  if (stopped()) return {};
  return release(true);
}

std::string Detokenizer::release(bool at_end) {
  // Complete characters go to text_; an unfinished one stays pending unless the stream ended.
  const size_t tail = at_end ? 0 : utf8::incomplete_tail(pending_bytes_);
  const std::string_view complete(pending_bytes_.data(), pending_bytes_.size() - tail);
  if (utf8::is_valid(complete)) {
    text_.append(complete);
  } else {
    text_ += utf8::to_valid(complete);
  }
  pending_bytes_.erase(0, complete.size());

  // The earliest stop string wins; among those starting at the same place, the first listed.
  size_t stop_at = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t at = text_.find(stops_[i]);
    if (at < stop_at) {
      stop_at = at;
      stop_index_ = static_cast<int>(i);
    }
  }
  if (stop_at != std::string::npos) {
    std::string out = text_.substr(0, stop_at);
    text_.clear();
    pending_bytes_.clear();
    return out;
  }

  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  if (!at_end) {
    for (const std::string& stop : stops_) {
      const size_t max_len = std::min(stop.size() - 1, text_.size());
      for (size_t len = max_len; len > hold; --len) {
        if (text_.compare(text_.size() - len, len, stop, 0, len) == 0) {
          hold = len;
          break;
        }
      }
    }
  }
  std::string out = text_.substr(0, text_.size() - hold);
  text_.erase(0, text_.size() - hold);
  return out;
}

}  // namespace tandem
