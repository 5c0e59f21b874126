// Finds added tokens (control and user-defined vocabulary entries, e.g. "<|im_start|>") in raw text before BPE.
// Matching is leftmost-longest, as in Hugging Face tokenizers: the earliest position where any token starts wins,
// and there the longest token. Immutable after construction; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace tandem {

class AddedTokenMatcher {
 public:
  struct Match {
    size_t pos;
    size_t length;
    int32_t id;
  };

  // Registers `text` (non-empty) as token `id`; a text registered twice keeps the first id.
  void add(std::string_view text, int32_t id);
  bool empty() const { return nodes_.size() <= 1; }

  // The leftmost-longest match in text[from..]; `length` 0 when there is none.
  Match find(std::string_view text, size_t from) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;  // byte -> node index, sorted by byte
    int32_t token = -1;
  };
  int32_t child(int32_t node, uint8_t byte) const;

  std::vector<Node> nodes_{Node{}};
  std::array<bool, 256> first_byte_{};
};

}  // namespace tandem
