// Jinja parser: tokens -> Template (jinja2's grammar and operator precedence, including its quirks:
// filters and `is` tests bind tighter than arithmetic, `-x ** 2` is `(-x) ** 2`, chained comparisons).
// Supported statements: if/elif/else, for (else, inline if-filter, tuple targets), set (incl. ns.attr
// and block set with filters), macro, call, filter, with, print, break/continue, generation.
// Anything else (extends, block, include, import, recursive loops, unknown filters or tests) throws
// jinja::Error naming the construct, with line:column.
#pragma once

#include <memory>
#include <string_view>

#include "chat/jinja_ast.h"

namespace tandem::chat::jinja {

std::unique_ptr<Template> parse_template(std::string_view source);

}  // namespace tandem::chat::jinja
