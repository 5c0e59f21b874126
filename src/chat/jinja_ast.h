// Syntax tree of a parsed Jinja template. Nodes are immutable after parsing; every node has the position
// (line, column) of the text it came from, used in runtime error messages.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja_value.h"

namespace tandem::chat::jinja {

struct CallArgs;
using FilterFn = Value (*)(Interp&, const Value& input, CallArgs& args);
using TestFn = bool (*)(Interp&, const Value& input, CallArgs& args);

enum class ExprKind {
  Const, Name, NSRef, List, Tuple, Dict, Getattr, Getitem, Slice, Call, Filter, Test,
  Neg, Pos, Not, Binary, And, Or, Concat, Compare, CondExpr,
};

struct Expr {
  Expr(ExprKind k, Pos p) : kind(k), pos(p) {}
  virtual ~Expr() = default;
  ExprKind kind;
  Pos pos;
};
using ExprPtr = std::unique_ptr<Expr>;

struct ConstExpr : Expr {
  ConstExpr(Pos p, Value v) : Expr(ExprKind::Const, p), value(std::move(v)) {}
  Value value;
};

struct NameExpr : Expr {  // a variable; also NSRef (`ns.attr`, assignment targets only)
  NameExpr(ExprKind k, Pos p, std::string n, std::string a = {}) : Expr(k, p), name(std::move(n)), attr(std::move(a)) {}
  std::string name;
  std::string attr;
};

struct SeqExpr : Expr {  // List, Tuple, Concat
  SeqExpr(ExprKind k, Pos p) : Expr(k, p) {}
  std::vector<ExprPtr> items;
};

struct DictExpr : Expr {
  explicit DictExpr(Pos p) : Expr(ExprKind::Dict, p) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

struct GetattrExpr : Expr {
  GetattrExpr(Pos p, ExprPtr o, std::string a) : Expr(ExprKind::Getattr, p), obj(std::move(o)), attr(std::move(a)) {}
  ExprPtr obj;
  std::string attr;
};

struct GetitemExpr : Expr {
  GetitemExpr(Pos p, ExprPtr o, ExprPtr k) : Expr(ExprKind::Getitem, p), obj(std::move(o)), key(std::move(k)) {}
  ExprPtr obj;
  ExprPtr key;  // may be a SliceExpr
};

struct SliceExpr : Expr {
  explicit SliceExpr(Pos p) : Expr(ExprKind::Slice, p) {}
  ExprPtr start, stop, step;  // each may be null
};

struct ArgList {
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    // *args
  ExprPtr dyn_kwargs;  // **kwargs
};

struct CallExpr : Expr {
  CallExpr(Pos p, ExprPtr c) : Expr(ExprKind::Call, p), callee(std::move(c)) {}
  ExprPtr callee;
  ArgList args;
};

struct FilterExpr : Expr {  // node null: the input is supplied by a filter block / set block
  FilterExpr(Pos p, ExprPtr n, std::string nm) : Expr(ExprKind::Filter, p), node(std::move(n)), name(std::move(nm)) {}
  ExprPtr node;
  std::string name;
  FilterFn fn = nullptr;
  ArgList args;
};

struct TestExpr : Expr {
  TestExpr(Pos p, ExprPtr n, std::string nm) : Expr(ExprKind::Test, p), node(std::move(n)), name(std::move(nm)) {}
  ExprPtr node;
  std::string name;
  TestFn fn = nullptr;
  ArgList args;
};

struct UnaryExpr : Expr {  // Neg, Pos, Not
  UnaryExpr(ExprKind k, Pos p, ExprPtr o) : Expr(k, p), operand(std::move(o)) {}
  ExprPtr operand;
};

enum class BinOp { Add, Sub, Mul, Div, FloorDiv, Mod, Pow };

struct BinaryExpr : Expr {  // Binary (with op), And, Or
  BinaryExpr(ExprKind k, Pos p, BinOp o, ExprPtr l, ExprPtr r)
      : Expr(k, p), op(o), left(std::move(l)), right(std::move(r)) {}
  BinOp op;
  ExprPtr left, right;
};

enum class CmpOp { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct CompareExpr : Expr {
  CompareExpr(Pos p, ExprPtr f) : Expr(ExprKind::Compare, p), first(std::move(f)) {}
  ExprPtr first;
  std::vector<std::pair<CmpOp, ExprPtr>> ops;
};

struct CondExpr : Expr {  // then_expr if test else else_expr
  CondExpr(Pos p, ExprPtr t, ExprPtr a, ExprPtr b)
      : Expr(ExprKind::CondExpr, p), test(std::move(t)), then_expr(std::move(a)), else_expr(std::move(b)) {}
  ExprPtr test, then_expr, else_expr;  // else_expr may be null
};

// ---- scopes ----

// How a scope's local name starts out when the scope is entered (jinja2's compile-time idtracking):
// looked up in the render context, copied from the enclosing scope, or undefined. Names bound as
// parameters (loop targets, macro arguments, `loop`, `caller`, ...) are set by the construct instead.
enum class InitKind { Resolve, Alias, Undefined };
struct ScopeInfo {
  std::vector<std::pair<std::string, InitKind>> inits;
};

// ---- statements ----

enum class StmtKind { Output, If, For, Set, SetBlock, Macro, CallBlock, FilterBlock, Scope, Break, Continue };

struct Stmt {
  Stmt(StmtKind k, Pos p) : kind(k), pos(p) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  Pos pos;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct OutputStmt : Stmt {  // template data and {{ expressions }}, in order
  explicit OutputStmt(Pos p) : Stmt(StmtKind::Output, p) {}
  struct Item {
    std::string text;
    ExprPtr expr;  // null: text
  };
  std::vector<Item> items;
};

struct IfStmt : Stmt {
  explicit IfStmt(Pos p) : Stmt(StmtKind::If, p) {}
  std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
  Body else_body;
};

struct ForStmt : Stmt {
  explicit ForStmt(Pos p) : Stmt(StmtKind::For, p) {}
  ExprPtr target;  // Name or Tuple of Names
  ExprPtr iter;
  ExprPtr filter;  // may be null
  Body body, else_body;
  ScopeInfo body_scope, else_scope, filter_scope;
};

struct SetStmt : Stmt {
  SetStmt(Pos p, ExprPtr t, ExprPtr v) : Stmt(StmtKind::Set, p), target(std::move(t)), value(std::move(v)) {}
  ExprPtr target;  // Name, NSRef or Tuple
  ExprPtr value;
};

// A callable body with parameters: a macro, or the body of a {% call %} block (exposed as `caller`).
struct MacroDef {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  Body body;
  bool uses_varargs = false, uses_kwargs = false, uses_caller = false;
  ScopeInfo scope;
};

struct MacroStmt : Stmt {
  explicit MacroStmt(Pos p) : Stmt(StmtKind::Macro, p) {}
  MacroDef def;
};

struct CallBlockStmt : Stmt {
  explicit CallBlockStmt(Pos p) : Stmt(StmtKind::CallBlock, p) {}
  MacroDef caller;
  ExprPtr call;  // a CallExpr
};

struct BlockStmt : Stmt {  // SetBlock (target + optional filter), FilterBlock (filter), Scope (with / generation)
  BlockStmt(StmtKind k, Pos p) : Stmt(k, p) {}
  ExprPtr target;
  ExprPtr filter;  // FilterExpr chain whose innermost node is null
  std::vector<std::pair<ExprPtr, ExprPtr>> assignments;  // {% with a = 1 %}
  Body body;
  ScopeInfo scope;
};

struct Template {
  Body body;
  ScopeInfo scope;
};

}  // namespace tandem::chat::jinja
