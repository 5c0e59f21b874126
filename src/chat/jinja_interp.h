// Tree-walking evaluator for a parsed Template. Scoping follows jinja2: each for-loop iteration, macro
// call, call/filter/set block and with/generation block gets a new frame whose lookups fall through to
// the enclosing one; `set` writes the innermost frame (so it does not leak out of a loop), while
// namespace() attributes are shared. One Interp renders one template once; it is not thread-safe, but
// separate Interps over the same Template are independent.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace tandem::chat::jinja {

class Interp {
 public:
  // `vars`: the render context (globals first, then caller variables overriding them).
  explicit Interp(std::vector<std::pair<std::string, Value>> vars);
  ~Interp();
  Interp(const Interp&) = delete;
  Interp& operator=(const Interp&) = delete;

  // Throws jinja::Error (with a position) on any template error.
  std::string render(const Template& tpl);

  // Calls a function value (macro, builtin, bound method). Throws when `callee` is not callable.
  Value call(const Value& callee, CallArgs& args);

 private:
  struct Frame;
  using FramePtr = std::shared_ptr<Frame>;
  enum class Flow { Normal, Break, Continue };

  Flow exec_body(const Body& body, const FramePtr& frame, std::string& out);
  Flow exec(const Stmt& stmt, const FramePtr& frame, std::string& out);
  Flow exec_for(const ForStmt& stmt, const FramePtr& frame, std::string& out);
  Flow exec_block(const BlockStmt& stmt, const FramePtr& frame, std::string& out);
  void assign(const Expr& target, const Value& value, const FramePtr& frame);
  void enter_scope(const ScopeInfo& scope, const FramePtr& frame);
  Value make_macro(const MacroDef& def, const FramePtr& closure);
  Value call_macro(const MacroDef& def, const FramePtr& closure, CallArgs& args);

  Value eval(const Expr& expr, const FramePtr& frame);
  Value eval_node(const Expr& expr, const FramePtr& frame);
  CallArgs eval_args(const ArgList& args, const FramePtr& frame);
  Value eval_compare(const CompareExpr& c, const FramePtr& frame);

  FramePtr context_;  // globals and render variables
  FramePtr root_;     // the template's top-level scope
  std::vector<FramePtr> macro_frames_;  // frames holding macros: cleared at the end to break cycles
  int call_depth_ = 0;
  const Value* block_input_ = nullptr;  // the rendered body a {% filter %} / {% set %} block filters
};

}  // namespace tandem::chat::jinja
