// Operators and element access on Values, with Python's semantics and jinja2's sandboxed lookup rules:
// `a.b` tries a method of the value, then a dict key; `a[b]` tries the key/index, then (for a string key)
// a method. A failed lookup gives an undefined value carrying jinja2's message; using undefined in
// arithmetic, attribute access or a call throws that message.
#pragma once

#include <string>
#include <string_view>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace tandem::chat::jinja {

Value binary_op(BinOp op, const Value& a, const Value& b);
Value unary_minus(const Value& v);
Value unary_plus(const Value& v);
bool contains(const Value& container, const Value& item);  // Python `item in container`

Value get_attr(const Value& obj, std::string_view name);
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step]; each bound may be none/undefined (omitted).
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

std::string percent_format(std::string_view fmt, const Value& args);  // Python `fmt % args`
std::string str_format(std::string_view fmt, const CallArgs& args);   // Python fmt.format(*args, **kwargs)

}  // namespace tandem::chat::jinja
