// Jinja lexer: template source -> tokens, with jinja2's whitespace rules as transformers configures them
// (trim_blocks and lstrip_blocks on, `-` / `+` modifiers on tags, newlines normalized to \n, one trailing
// newline dropped). Comments vanish; {% raw %} content becomes data. Errors throw jinja::Error with the
// line and column (1-based, in characters) of the offending text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_value.h"

namespace tandem::chat::jinja {

enum class TokenType { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof };

struct Token {
  TokenType type;
  std::string text;  // data, name, operator, or the decoded string literal
  int64_t int_value = 0;
  double float_value = 0;
  Pos pos;
};

std::vector<Token> tokenize(std::string_view source);

// How a token is named in error messages, e.g. "'endfor'", "end of print statement".
std::string describe_token(const Token& token);

}  // namespace tandem::chat::jinja
