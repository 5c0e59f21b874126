// Grammars for constrained decoding: JSON documents (any object, or one matching a JSON schema), optionally
// between literal text, compiled once into an immutable Grammar that byte-level Matchers (matcher.h) and the
// per-request token constraint (json_constraint.h) run. Depends on nothing above src/tokenizer.
//
// What a compiled grammar accepts is compact JSON: no whitespace between tokens (so a model cannot loop on
// spaces), strings of well-formed UTF-8 with escapes (a \u escape may not name a surrogate), numbers of at most
// 15 integer digits, 15 fraction digits and 2 exponent digits, containers nested at most kMaxNesting deep. Every
// prefix a Matcher accepts can still be completed to an accepted document, and the Matcher knows the length of the
// shortest such completion (what budget-aware closing relies on).
//
// JSON schema subset (compile_json_schema): type (object, array, string, number, integer, boolean, null, or an
// array of these), properties, required, additionalProperties, items, minItems/maxItems, minLength/maxLength (in
// code points), enum, const, anyOf, $ref to a local JSON pointer ("#", "#/$defs/x", "#/definitions/x"), and the
// annotations title, description, default, examples, $schema, $id, $comment, $defs, definitions, deprecated,
// readOnly, writeOnly (ignored). Objects with `properties` get only those keys, each at most once, in any order,
// the `required` ones always (a required key without a property schema takes any value); keys outside
// `properties` are never produced, whatever additionalProperties says (absent means false). An object schema
// without `properties` is a free-form object (any keys, values of the additionalProperties schema, any JSON when
// it is absent or true; `{}` only when it is false). Without `type`, the type follows the keywords present
// (properties -> object, items -> array, ...), else any JSON value. enum/const keep the values that the rest of
// the schema accepts. Any other keyword (pattern, format, oneOf, allOf, not, minimum, ...) is a SchemaError naming
// it, as are schemas no value satisfies.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::grammar {

constexpr int kMaxNesting = 32;       // containers inside containers
constexpr size_t kMaxProperties = 64;  // per object schema
constexpr size_t kMaxNodes = 4096;     // compiled schema nodes per grammar

// Why a schema was refused: the keyword (or "" when it is not one keyword's fault), where (a JSON pointer into
// the schema, "#" for its root), and a message for the API user that names both.
struct SchemaError {
  std::string keyword;
  std::string path;
  std::string message;
};

class Grammar;
using GrammarPtr = std::shared_ptr<const Grammar>;

constexpr size_t kMaxAlternatives = 32;  // per choice piece (the matcher follows at most 32 stacks at once)

// One piece of a sequence grammar: literal bytes, one JSON value, or a choice between sequences of pieces.
struct GrammarPiece {
  enum class Kind { Literal, JsonObject, JsonSchema, Choice };
  Kind kind = Kind::JsonObject;
  std::string literal;                                  // Kind::Literal
  nlohmann::json schema;                                // Kind::JsonSchema
  std::vector<std::vector<GrammarPiece>> alternatives;  // Kind::Choice
  static GrammarPiece text(std::string bytes) { return {Kind::Literal, std::move(bytes), nullptr, {}}; }
  static GrammarPiece any_object() { return {Kind::JsonObject, {}, nullptr, {}}; }
  static GrammarPiece json(nlohmann::json schema) { return {Kind::JsonSchema, {}, std::move(schema), {}}; }
  // Exactly one of the alternatives (1 to kMaxAlternatives, each a sequence of pieces, choices allowed inside).
  // Alternatives sharing a prefix are followed together until they differ, so a common literal start is best
  // put before the choice.
  static GrammarPiece choice(std::vector<std::vector<GrammarPiece>> alternatives) {
    return {Kind::Choice, {}, nullptr, std::move(alternatives)};
  }
};

// Any JSON object (OpenAI's response_format json_object, Ollama's format "json").
GrammarPtr json_object_grammar();
// One JSON value that matches `schema` (OpenAI's json_schema, Ollama's format with a schema).
std::variant<GrammarPtr, SchemaError> compile_json_schema(const nlohmann::json& schema);
// The pieces one after the other, e.g. forcing a tool call: {text("<tool_call>{\"name\":\"f\",\"arguments\":"),
// json(parameters_schema), text("}</tool_call>")}. Literal pieces are matched byte for byte; an empty list or
// empty literals are allowed (an empty sequence accepts only the empty document). A choice with no alternatives or
// more than kMaxAlternatives is a SchemaError. Literal bytes are not checked: bytes that no text token has (e.g.
// 0xF8-0xFF, never in UTF-8) can stand for special tokens (GrammarConstraint's `special_tokens`).
std::variant<GrammarPtr, SchemaError> compile_sequence(std::span<const GrammarPiece> pieces);

class Grammar {
 public:
  // Bytes of the shortest accepted document.
  uint64_t min_bytes() const;
  struct Impl;
  explicit Grammar(std::unique_ptr<Impl> impl);
  ~Grammar();
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::grammar
