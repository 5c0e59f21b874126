// Compile-time name resolution, as jinja2's idtracking does it. jinja2 decides per scope (template,
// loop body, macro, set/filter/with block) which names are local to it and how each starts out: a name
// assigned in a scope is local for the whole scope, starting as the enclosing scope's value when an
// enclosing scope knows the name, else as the context value when it is read before being assigned, else
// undefined (e.g. a top-level `{% set x = ... %}` hides a context variable `x` from loops that run before
// it). analyze_scopes() records that in each scope's ScopeInfo; the interpreter applies it on entry.
#pragma once

#include "chat/jinja_ast.h"

namespace tandem::chat::jinja {

void analyze_scopes(Template& tpl);

}  // namespace tandem::chat::jinja
