// TokenConstraint: what the sampler needs from a constrained-decoding grammar (src/grammar implements it), so the
// engine depends on no grammar, schema or server code.
//
// Contract, per generated token: the sampler calls allowed() with the number of tokens the request may still
// generate (this one included), sets every token whose bit is clear to -inf before anything else, samples, and
// calls accept() with the token it chose. A constraint always allows at least one token while remaining >= 1.
// End-of-sequence tokens are part of the vocabulary like any other: the constraint allows them only where the
// output may end. One object serves one request (not thread-safe); it may share immutable tables with others.
#pragma once

#include <cstdint>
#include <span>

namespace tandem {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets bit t (allowed[t / 64] >> (t % 64) & 1) for every token t that may come next, clears the others;
  // `allowed` holds ceil(n_vocab / 64) words for the model's n_vocab.
  virtual void allowed(std::span<uint64_t> allowed, int64_t remaining_tokens) = 0;
  // Advances past `token`; false (state unchanged) when the token was not allowed.
  virtual bool accept(int32_t token) = 0;
  // The output so far is a complete document (an end-of-sequence token may come now).
  virtual bool is_complete() const = 0;
};

}  // namespace tandem
