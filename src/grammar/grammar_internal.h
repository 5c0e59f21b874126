// The compiled form of a Grammar, shared by the schema compiler and the matcher (not part of the public API).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "grammar/grammar.h"

namespace tandem::grammar {

// Lengths saturate here: "unbounded" / "no value".
constexpr uint64_t kInf = uint64_t{1} << 50;
inline uint64_t sat_add(uint64_t a, uint64_t b) { return std::min(kInf, std::min(a, kInf) + std::min(b, kInf)); }
inline uint64_t sat_mul(uint64_t a, uint64_t b) {
  if (a == 0 || b == 0) return 0;
  if (a >= kInf || b >= kInf || a > kInf / b) return kInf;
  return a * b;
}

// A byte trie of a set of strings (enum values, object keys). Every node lies on the way to a terminal.
struct LiteralTrie {
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> next;  // sorted by byte
    int32_t terminal = -1;                           // index of the string ending here
    uint32_t depth = 0;
    uint64_t under = 0;                              // bit i: string i (< 64) ends at or below this node
    uint64_t dist = kInf;                            // bytes to the nearest terminal
  };
  std::vector<Node> nodes{Node{}};

  uint32_t child(uint32_t n, uint8_t b) const {
    for (const auto& [byte, to] : nodes[n].next) {
      if (byte == b) return to;
    }
    return 0;  // the root is never a child
  }
  void insert(const std::string& s, int32_t index);
  void finish();  // computes dist
};

enum class Kind : uint8_t { Sequence, Object, FreeObject, Array, String, Number, Integer, Literal, AnyOf, Ref };

struct Property {
  std::string name;
  std::string key;        // the key as JSON text, quotes included
  uint32_t node = 0;
  bool required = false;
  uint64_t cost = 0;      // key + ':' + the shortest value
};

struct Piece {
  bool literal = false;
  std::string bytes;
  uint32_t node = 0;
};

struct Node {
  Kind kind = Kind::AnyOf;
  // Object: the allowed properties (bit i of masks = props[i]) and their key trie.
  std::vector<Property> props{};
  uint64_t required = 0;
  uint32_t trie = 0;        // Object: key trie; Literal: value trie (index into Impl::tries)
  uint32_t child = 0;       // FreeObject: values; Array: items; Ref: target
  bool child_ok = true;     // FreeObject/Array: the child has a value (else only {} / [])
  uint64_t min_count = 0;   // Array: items; String: code points
  uint64_t max_count = kInf;
  std::vector<uint32_t> alts{};    // AnyOf
  std::vector<Piece> pieces{};     // Sequence
  bool nested = false;             // Sequence: an alternative of a choice piece (it ends; the root accepts)
  std::vector<uint64_t> suffix{};  // Sequence: bytes of pieces[i..] at their shortest
  uint64_t min_bytes = kInf;
  bool container() const { return kind == Kind::Object || kind == Kind::FreeObject || kind == Kind::Array; }
};

struct Grammar::Impl {
  std::vector<Node> nodes;
  std::vector<LiteralTrie> tries;
  uint32_t root = 0;         // a Sequence node
  uint32_t key_string = 0;   // String node of free-form object keys
};

// Sum over required properties not in `seen` of (',' + cost), plus the closing '}'.
inline uint64_t object_rest(const Node& n, uint64_t seen) {
  uint64_t rest = 1;
  for (uint64_t m = n.required & ~seen; m != 0; m &= m - 1) {
    rest = sat_add(rest, 1 + n.props[static_cast<size_t>(__builtin_ctzll(m))].cost);
  }
  return rest;
}

}  // namespace tandem::grammar
