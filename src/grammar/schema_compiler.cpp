// JSON schema (subset) and sequence pieces -> Grammar::Impl (grammar_internal.h).
#include <map>
#include <set>
#include <unordered_set>

#include <fmt/format.h>

#include "grammar/grammar_internal.h"
#include "grammar/matcher.h"

namespace tandem::grammar {

void LiteralTrie::insert(const std::string& s, int32_t index) {
  uint32_t n = 0;
  for (unsigned char c : s) {
    uint32_t next = child(n, c);
    if (next == 0) {
      next = static_cast<uint32_t>(nodes.size());
      Node fresh;
      fresh.depth = nodes[n].depth + 1;
      nodes.push_back(std::move(fresh));
      auto& edges = nodes[n].next;
      edges.insert(std::upper_bound(edges.begin(), edges.end(), std::make_pair(c, uint32_t{0})), {c, next});
    }
    if (index < 64) nodes[n].under |= uint64_t{1} << index;
    n = next;
  }
  if (index < 64) nodes[n].under |= uint64_t{1} << index;
  if (nodes[n].terminal < 0) nodes[n].terminal = index;
}

void LiteralTrie::finish() {
  // Children always have larger indices than their parent: one backward pass.
  for (size_t i = nodes.size(); i-- > 0;) {
    Node& n = nodes[i];
    n.dist = n.terminal >= 0 ? 0 : kInf;
    for (const auto& [b, to] : n.next) n.dist = std::min(n.dist, sat_add(1, nodes[to].dist));
  }
}

Grammar::Grammar(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Grammar::~Grammar() = default;
uint64_t Grammar::min_bytes() const { return impl_->nodes[impl_->root].min_bytes; }

namespace {

[[noreturn]] void fail(std::string keyword, std::string path, std::string message) {
  throw SchemaError{std::move(keyword), std::move(path), std::move(message)};
}

const std::set<std::string, std::less<>> kAnnotations = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly",
    "$defs", "definitions"};
const std::set<std::string, std::less<>> kConstraining = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength",
    "maxLength", "enum", "const", "anyOf", "$ref"};
const char* const kTypes[] = {"object", "array", "string", "number", "integer", "boolean", "null"};

constexpr size_t kMaxLiteralBytes = 1 << 20;  // all enum/const values of a grammar

std::string pointer_token(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

struct PendingLiteral {
  uint32_t node;
  std::vector<std::string> values;  // compact JSON text
  uint32_t base_sequence = 0;       // 0: no other constraint; else a Sequence node [base] to filter values with
};

class Builder {
 public:
  Builder() : g_(std::make_unique<Grammar::Impl>()) {
    g_->key_string = add({.kind = Kind::String});
  }

  Grammar::Impl& g() { return *g_; }

  uint32_t add(Node n) {
    if (g_->nodes.size() >= kMaxNodes) {
      fail("", "#", fmt::format("the schema is too large (more than {} compiled nodes)", kMaxNodes));
    }
    g_->nodes.push_back(std::move(n));
    return static_cast<uint32_t>(g_->nodes.size() - 1);
  }

  uint32_t literal_node(std::vector<std::string> values, uint32_t base_sequence) {
    uint32_t id = add({.kind = Kind::Literal});
    g_->nodes[id].trie = new_trie();
    for (const auto& v : values) literal_bytes_ += v.size();
    if (literal_bytes_ > kMaxLiteralBytes) fail("enum", "#", "the schema's enum/const values are too large (over 1 MiB)");
    literals_.push_back({id, std::move(values), base_sequence});
    return id;
  }

  uint32_t new_trie() {
    g_->tries.emplace_back();
    return static_cast<uint32_t>(g_->tries.size() - 1);
  }

  // Any JSON value (json_object values, schemas `true` / `{}`), built once.
  uint32_t any() {
    if (any_ != 0) return any_;
    any_ = add({.kind = Kind::AnyOf});
    uint32_t object = add({.kind = Kind::FreeObject, .child = any_});
    uint32_t array = add({.kind = Kind::Array, .child = any_});
    uint32_t string = add({.kind = Kind::String});
    uint32_t number = add({.kind = Kind::Number});
    uint32_t words = literal_node({"true", "false", "null"}, 0);
    g_->nodes[any_].alts = {object, array, string, number, words};
    return any_;
  }

  uint32_t any_object() { return add({.kind = Kind::FreeObject, .child = any()}); }

  std::unique_ptr<Grammar::Impl> finish(uint32_t root);

 private:
  uint32_t resolve(uint32_t id) const;
  void flatten(uint32_t id);
  void compute_min_bytes();
  void prune_and_index();
  void filter_literals();

  std::unique_ptr<Grammar::Impl> g_;
  uint32_t any_ = 0;
  size_t literal_bytes_ = 0;
  std::vector<PendingLiteral> literals_;
};

uint32_t Builder::resolve(uint32_t id) const {
  for (size_t steps = 0; g_->nodes[id].kind == Kind::Ref; ++steps) {
    if (steps > g_->nodes.size()) fail("$ref", "#", "the schema's $refs form a cycle that never reaches a schema");
    id = g_->nodes[id].child;
  }
  return id;
}

void Builder::flatten(uint32_t id) {
  Node& n = g_->nodes[id];
  if (n.kind != Kind::AnyOf) return;
  std::vector<uint32_t> out, stack(n.alts.rbegin(), n.alts.rend());
  std::unordered_set<uint32_t> seen{id};
  while (!stack.empty()) {
    const uint32_t a = stack.back();
    stack.pop_back();
    if (!seen.insert(a).second) continue;
    if (g_->nodes[a].kind == Kind::AnyOf) {
      stack.insert(stack.end(), g_->nodes[a].alts.rbegin(), g_->nodes[a].alts.rend());
    } else {
      out.push_back(a);
    }
  }
  g_->nodes[id].alts = std::move(out);
}

void Builder::compute_min_bytes() {
  auto& nodes = g_->nodes;
  for (Node& n : nodes) n.min_bytes = kInf;
  for (size_t round = 0; round <= nodes.size() + 1; ++round) {
    bool changed = false;
    for (Node& n : nodes) {
      uint64_t m = kInf;
      switch (n.kind) {
        case Kind::Sequence: {
          n.suffix.assign(n.pieces.size() + 1, 0);
          for (size_t i = n.pieces.size(); i-- > 0;) {
            const Piece& p = n.pieces[i];
            n.suffix[i] = sat_add(n.suffix[i + 1], p.literal ? p.bytes.size() : nodes[p.node].min_bytes);
          }
          m = n.suffix[0];
          break;
        }
        case Kind::Object: {
          m = 2;
          size_t required = 0;
          for (Property& p : n.props) {
            p.cost = sat_add(p.key.size() + 1, nodes[p.node].min_bytes);
            if (p.required) {
              m = sat_add(m, p.cost + (required++ > 0 ? 1 : 0));
              if (p.cost >= kInf) m = kInf;
            }
          }
          break;
        }
        case Kind::FreeObject: m = 2; break;
        case Kind::Array:
          if (n.min_count <= n.max_count) {
            const uint64_t item = nodes[n.child].min_bytes;
            m = n.min_count == 0 ? 2 : sat_add(2 + (n.min_count - 1), sat_mul(n.min_count, item));
          }
          break;
        case Kind::String:
          if (n.min_count <= n.max_count) m = sat_add(2, n.min_count);
          break;
        case Kind::Number:
        case Kind::Integer: m = 1; break;
        case Kind::Literal: m = g_->tries[n.trie].nodes[0].dist; break;
        case Kind::AnyOf:
          for (uint32_t a : n.alts) m = std::min(m, nodes[a].min_bytes);
          break;
        case Kind::Ref: m = nodes[n.child].min_bytes; break;
      }
      if (m < n.min_bytes) {
        n.min_bytes = m;
        changed = true;
      }
    }
    if (!changed) break;
  }
}

// Drops what can never complete (optional properties, anyOf branches, items without a value) and builds the
// key tries, so that every prefix the matcher accepts can still be completed.
void Builder::prune_and_index() {
  auto& nodes = g_->nodes;
  for (Node& n : nodes) {
    switch (n.kind) {
      case Kind::Object: {
        std::vector<Property> kept;
        for (Property& p : n.props) {
          if (nodes[p.node].min_bytes < kInf) kept.push_back(std::move(p));
        }
        n.props = std::move(kept);
        n.required = 0;
        LiteralTrie& trie = g_->tries[n.trie];
        trie = LiteralTrie{};
        for (size_t i = 0; i < n.props.size(); ++i) {
          if (n.props[i].required) n.required |= uint64_t{1} << i;
          trie.insert(n.props[i].key, static_cast<int32_t>(i));
        }
        trie.finish();
        break;
      }
      case Kind::FreeObject: n.child_ok = nodes[n.child].min_bytes < kInf; break;
      case Kind::Array:
        n.child_ok = nodes[n.child].min_bytes < kInf;
        if (!n.child_ok) n.max_count = 0;
        break;
      case Kind::AnyOf: {
        std::vector<uint32_t> kept;
        for (uint32_t a : n.alts) {
          if (nodes[a].min_bytes < kInf) kept.push_back(a);
        }
        n.alts = std::move(kept);
        break;
      }
      default: break;
    }
  }
}

void Builder::filter_literals() {
  std::vector<bool> changed(literals_.size(), false);
  // Each value must also match the rest of its schema (the base), e.g. {"type": "string", "enum": ["a", 1]}.
  auto grammar = std::make_shared<Grammar>(std::make_unique<Grammar::Impl>(*g_));
  for (size_t i = 0; i < literals_.size(); ++i) {
    PendingLiteral& lit = literals_[i];
    if (lit.base_sequence == 0) continue;
    std::vector<std::string> kept;
    for (const std::string& v : lit.values) {
      if (Matcher::accepts(grammar, lit.base_sequence, v)) kept.push_back(v);
    }
    if (kept.size() != lit.values.size()) {
      lit.values = std::move(kept);
      changed[i] = true;
    }
  }
  for (size_t i = 0; i < literals_.size(); ++i) {
    LiteralTrie& trie = g_->tries[g_->nodes[literals_[i].node].trie];
    trie = LiteralTrie{};
    for (size_t v = 0; v < literals_[i].values.size(); ++v) trie.insert(literals_[i].values[v], static_cast<int32_t>(v));
    trie.finish();
  }
}

std::unique_ptr<Grammar::Impl> Builder::finish(uint32_t root) {
  auto& nodes = g_->nodes;
  // References point at what they name; anyOf alternatives are flat lists of non-anyOf nodes.
  auto fix = [&](uint32_t& id) { id = resolve(id); };
  for (Node& n : nodes) {
    for (Property& p : n.props) fix(p.node);
    for (uint32_t& a : n.alts) fix(a);
    for (Piece& p : n.pieces) fix(p.node);
    if (n.kind != Kind::Ref) fix(n.child);
  }
  for (uint32_t i = 0; i < nodes.size(); ++i) flatten(i);
  g_->root = root;
  for (size_t i = 0; i < literals_.size(); ++i) {
    LiteralTrie& trie = g_->tries[nodes[literals_[i].node].trie];
    for (size_t v = 0; v < literals_[i].values.size(); ++v) trie.insert(literals_[i].values[v], static_cast<int32_t>(v));
    trie.finish();
  }
  compute_min_bytes();
  prune_and_index();
  if (std::any_of(literals_.begin(), literals_.end(), [](const PendingLiteral& l) { return l.base_sequence != 0; })) {
    filter_literals();
    compute_min_bytes();
    prune_and_index();
  }
  if (nodes[root].min_bytes >= kInf) fail("", "#", "no JSON value satisfies this schema");
  return std::move(g_);
}

// One schema document: compiles locations on demand, memoized by JSON pointer (so $refs and recursion share nodes).
class SchemaCompiler {
 public:
  SchemaCompiler(Builder& b, const nlohmann::json& root) : b_(b), root_(root) {}

  uint32_t compile(const nlohmann::json& s, const std::string& path) {
    if (auto it = memo_.find(path); it != memo_.end()) return it->second;
    const uint32_t id = b_.add({.kind = Kind::Ref});
    memo_[path] = id;
    const uint32_t target = compile_body(s, path);
    b_.g().nodes[id].child = target;
    return id;
  }

 private:
  uint32_t compile_body(const nlohmann::json& s, const std::string& path);
  uint32_t compile_typed(const nlohmann::json& s, const std::string& path, const std::string& type);
  uint64_t count(const nlohmann::json& s, const char* key, const std::string& path, uint64_t fallback) const;

  Builder& b_;
  const nlohmann::json& root_;
  std::map<std::string, uint32_t> memo_;
};

uint64_t SchemaCompiler::count(const nlohmann::json& s, const char* key, const std::string& path, uint64_t fallback) const {
  auto it = s.find(key);
  if (it == s.end()) return fallback;
  if (it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0)) {
    return std::min<uint64_t>(it->get<uint64_t>(), kInf);
  }
  if (it->is_number_float() && it->get<double>() >= 0 && it->get<double>() == std::floor(it->get<double>()) &&
      it->get<double>() < 1e15) {
    return static_cast<uint64_t>(it->get<double>());
  }
  fail(key, path, fmt::format("'{}' at {} must be a non-negative integer", key, path));
}

uint32_t SchemaCompiler::compile_body(const nlohmann::json& s, const std::string& path) {
  if (s.is_boolean()) {
    if (s.get<bool>()) return b_.any();
    return b_.add({.kind = Kind::AnyOf});  // `false`: no value
  }
  if (!s.is_object()) fail("", path, fmt::format("the schema at {} must be an object or a boolean", path));
  bool constraining = false;
  for (const auto& [key, value] : s.items()) {
    if (kConstraining.contains(key)) {
      constraining = true;
    } else if (!kAnnotations.contains(key)) {
      fail(key, path, fmt::format("the JSON schema keyword '{}' (at {}) is not supported", key, path));
    }
  }
  for (const char* defs : {"$defs", "definitions"}) {
    if (auto it = s.find(defs); it != s.end()) {
      if (!it->is_object()) fail(defs, path, fmt::format("'{}' at {} must be an object", defs, path));
      for (const auto& [name, def] : it->items()) compile(def, path + "/" + defs + "/" + pointer_token(name));
    }
  }
  if (auto it = s.find("$ref"); it != s.end()) {
    for (const auto& [key, value] : s.items()) {
      if (key != "$ref" && kConstraining.contains(key)) {
        fail(key, path, fmt::format("'{}' beside '$ref' (at {}) is not supported", key, path));
      }
    }
    if (!it->is_string() || !it->get<std::string>().starts_with("#")) {
      fail("$ref", path, fmt::format("'$ref' at {} must be a local reference such as \"#/$defs/name\"", path));
    }
    const std::string ref = it->get<std::string>();
    const nlohmann::json* target = nullptr;
    try {
      target = &root_.at(nlohmann::json::json_pointer(ref.substr(1)));
    } catch (const nlohmann::json::exception&) {
      fail("$ref", path, fmt::format("'$ref' \"{}\" at {} names nothing in the schema", ref, path));
    }
    return compile(*target, ref);
  }
  if (!constraining) return b_.any();

  if (auto it = s.find("anyOf"); it != s.end()) {
    for (const auto& [key, value] : s.items()) {
      if (key != "anyOf" && kConstraining.contains(key)) {
        fail(key, path, fmt::format("'{}' beside 'anyOf' (at {}) is not supported: put it in each alternative", key, path));
      }
    }
    if (!it->is_array() || it->empty()) fail("anyOf", path, fmt::format("'anyOf' at {} must be a non-empty array", path));
    Node n{.kind = Kind::AnyOf};
    for (size_t i = 0; i < it->size(); ++i) n.alts.push_back(compile((*it)[i], fmt::format("{}/anyOf/{}", path, i)));
    return b_.add(std::move(n));
  }

  // The types this schema allows: `type`, else those whose keywords appear, else all.
  std::vector<std::string> types;
  if (auto it = s.find("type"); it != s.end()) {
    const auto add_type = [&](const nlohmann::json& t) {
      if (!t.is_string() || std::find(std::begin(kTypes), std::end(kTypes), t.get<std::string>()) == std::end(kTypes)) {
        fail("type", path, fmt::format("'type' at {} must be one of object, array, string, number, integer, boolean, "
                                       "null (or an array of them)", path));
      }
      if (std::find(types.begin(), types.end(), t.get<std::string>()) == types.end()) types.push_back(t);
    };
    if (it->is_array()) {
      if (it->empty()) fail("type", path, fmt::format("'type' at {} is an empty array", path));
      for (const auto& t : *it) add_type(t);
    } else {
      add_type(*it);
    }
  } else {
    if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) types.push_back("object");
    if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) types.push_back("array");
    if (s.contains("minLength") || s.contains("maxLength")) types.push_back("string");
    if (types.empty()) types.assign(std::begin(kTypes), std::end(kTypes));
    if (types.size() == 7) types.erase(std::find(types.begin(), types.end(), "integer"));  // number covers it
  }
  uint32_t base;
  if (types.size() == 1) {
    base = compile_typed(s, path, types[0]);
  } else {
    Node n{.kind = Kind::AnyOf};
    for (const auto& t : types) n.alts.push_back(compile_typed(s, path, t));
    base = b_.add(std::move(n));
  }

  const auto e = s.find("enum");
  const auto c = s.find("const");
  if (e == s.end() && c == s.end()) return base;
  std::vector<nlohmann::json> values;
  if (e != s.end()) {
    if (!e->is_array()) fail("enum", path, fmt::format("'enum' at {} must be an array", path));
    values.assign(e->begin(), e->end());
  }
  if (c != s.end()) {
    if (e != s.end()) {
      std::erase_if(values, [&](const nlohmann::json& v) { return v != *c; });
    } else {
      values.push_back(*c);
    }
  }
  std::vector<std::string> texts;
  for (const auto& v : values) {
    std::string t = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (std::find(texts.begin(), texts.end(), t) == texts.end()) texts.push_back(std::move(t));
  }
  // Without other constraints (only `type` absent) every value is kept; else each must match the base.
  const bool typed = s.contains("type") || s.contains("properties") || s.contains("required") ||
                     s.contains("additionalProperties") || s.contains("items") || s.contains("minItems") ||
                     s.contains("maxItems") || s.contains("minLength") || s.contains("maxLength");
  uint32_t filter = 0;
  if (typed) filter = b_.add({.kind = Kind::Sequence, .pieces = {Piece{false, {}, base}}});
  return b_.literal_node(std::move(texts), filter);
}

uint32_t SchemaCompiler::compile_typed(const nlohmann::json& s, const std::string& path, const std::string& type) {
  if (type == "object") {
    const auto props = s.find("properties");
    const auto req = s.find("required");
    const auto extra = s.find("additionalProperties");
    if (props != s.end() && !props->is_object()) fail("properties", path, fmt::format("'properties' at {} must be an object", path));
    if (req != s.end() && !req->is_array()) fail("required", path, fmt::format("'required' at {} must be an array of strings", path));
    if (extra != s.end() && !extra->is_boolean() && !extra->is_object()) {
      fail("additionalProperties", path, fmt::format("'additionalProperties' at {} must be a boolean or a schema", path));
    }
    const bool closed = extra != s.end() && extra->is_boolean() && !extra->get<bool>();
    uint32_t extra_node = 0;
    if (extra != s.end() && extra->is_object()) extra_node = compile(*extra, path + "/additionalProperties");
    const bool listed = (props != s.end() && !props->empty()) || (req != s.end() && !req->empty());
    if (!listed) {
      Node n{.kind = Kind::FreeObject, .child = extra_node != 0 ? extra_node : b_.any()};
      if (closed) n.child = b_.add({.kind = Kind::AnyOf});  // no value: only {}
      return b_.add(std::move(n));
    }
    Node n{.kind = Kind::Object};
    n.trie = b_.new_trie();
    if (props != s.end()) {
      for (const auto& [name, sub] : props->items()) {
        n.props.push_back({name, nlohmann::json(name).dump(), compile(sub, path + "/properties/" + pointer_token(name)),
                           false, 0});
      }
    }
    if (req != s.end()) {
      for (const auto& r : *req) {
        if (!r.is_string()) fail("required", path, fmt::format("'required' at {} must be an array of strings", path));
        const std::string name = r.get<std::string>();
        auto it = std::find_if(n.props.begin(), n.props.end(), [&](const Property& p) { return p.name == name; });
        if (it == n.props.end()) {
          if (closed) {
            fail("required", path, fmt::format("the required property '{}' at {} is not in 'properties' and "
                                               "additionalProperties is false", name, path));
          }
          n.props.push_back({name, nlohmann::json(name).dump(), extra_node != 0 ? extra_node : b_.any(), true, 0});
        } else {
          it->required = true;
        }
      }
    }
    if (n.props.size() > kMaxProperties) {
      fail("properties", path, fmt::format("the object at {} has {} properties; at most {} are supported", path,
                                           n.props.size(), kMaxProperties));
    }
    return b_.add(std::move(n));
  }
  if (type == "array") {
    Node n{.kind = Kind::Array};
    if (auto it = s.find("items"); it != s.end()) {
      if (!it->is_object() && !it->is_boolean()) {
        fail("items", path, fmt::format("'items' at {} must be a schema (tuple arrays are not supported)", path));
      }
      n.child = compile(*it, path + "/items");
    } else {
      n.child = b_.any();
    }
    n.min_count = count(s, "minItems", path, 0);
    n.max_count = count(s, "maxItems", path, kInf);
    return b_.add(std::move(n));
  }
  if (type == "string") {
    return b_.add({.kind = Kind::String, .min_count = count(s, "minLength", path, 0),
                   .max_count = count(s, "maxLength", path, kInf)});
  }
  if (type == "number") return b_.add({.kind = Kind::Number});
  if (type == "integer") return b_.add({.kind = Kind::Integer});
  if (type == "boolean") return b_.literal_node({"true", "false"}, 0);
  return b_.literal_node({"null"}, 0);
}

// A Sequence node for `pieces`; choices become anyOf nodes over nested sequences.
uint32_t add_sequence(Builder& b, std::span<const GrammarPiece> pieces, bool nested,
                      std::vector<std::unique_ptr<SchemaCompiler>>& compilers) {
  Node seq{.kind = Kind::Sequence};
  seq.nested = nested;
  for (const GrammarPiece& p : pieces) {
    switch (p.kind) {
      case GrammarPiece::Kind::Literal:
        if (!p.literal.empty()) seq.pieces.push_back({true, p.literal, 0});
        break;
      case GrammarPiece::Kind::JsonObject: seq.pieces.push_back({false, {}, b.any_object()}); break;
      case GrammarPiece::Kind::JsonSchema: {
        compilers.push_back(std::make_unique<SchemaCompiler>(b, p.schema));
        seq.pieces.push_back({false, {}, compilers.back()->compile(p.schema, "#")});
        break;
      }
      case GrammarPiece::Kind::Choice: {
        if (p.alternatives.empty() || p.alternatives.size() > kMaxAlternatives) {
          throw SchemaError{"", "#", fmt::format("a choice needs 1 to {} alternatives, not {}", kMaxAlternatives,
                                                 p.alternatives.size())};
        }
        Node choice{.kind = Kind::AnyOf};
        for (const auto& alt : p.alternatives) choice.alts.push_back(add_sequence(b, alt, true, compilers));
        seq.pieces.push_back({false, {}, b.add(std::move(choice))});
        break;
      }
    }
  }
  return b.add(std::move(seq));
}

std::variant<GrammarPtr, SchemaError> build(std::span<const GrammarPiece> pieces) {
  try {
    Builder b;
    std::vector<std::unique_ptr<SchemaCompiler>> compilers;
    const uint32_t root = add_sequence(b, pieces, false, compilers);
    return std::make_shared<const Grammar>(b.finish(root));
  } catch (const SchemaError& e) {
    return e;
  } catch (const nlohmann::json::exception& e) {
    return SchemaError{"", "#", fmt::format("invalid schema: {}", e.what())};
  }
}

}  // namespace

GrammarPtr json_object_grammar() {
  const GrammarPiece piece = GrammarPiece::any_object();
  return std::get<GrammarPtr>(build(std::span<const GrammarPiece>(&piece, 1)));
}

std::variant<GrammarPtr, SchemaError> compile_json_schema(const nlohmann::json& schema) {
  const GrammarPiece piece = GrammarPiece::json(schema);
  return build(std::span<const GrammarPiece>(&piece, 1));
}

std::variant<GrammarPtr, SchemaError> compile_sequence(std::span<const GrammarPiece> pieces) { return build(pieces); }

}  // namespace tandem::grammar
