#include "chat/jinja_scope.h"

#include <map>
#include <set>
#include <string>

namespace tandem::chat::jinja {

namespace {

enum class Load { Param, Resolve, Alias, Undefined };

// jinja2.idtracking.Symbols: the names local to one scope. (Every ref of a scope lives at that scope's
// level, so names identify them.)
struct Symbols {
  const Symbols* parent = nullptr;
  std::set<std::string> refs;
  std::vector<std::pair<std::string, Load>> loads;  // insertion ordered
  std::set<std::string> stores;

  bool find_ref(const std::string& name) const {
    for (const Symbols* s = this; s; s = s->parent) {
      if (s->refs.count(name)) return true;
    }
    return false;
  }
  void set_load(const std::string& name, Load load) {
    for (auto& [n, l] : loads) {
      if (n == name) {
        l = load;
        return;
      }
    }
    loads.emplace_back(name, load);
  }
  void define(const std::string& name, Load load) {
    refs.insert(name);
    set_load(name, load);
  }
  void store(const std::string& name) {
    stores.insert(name);
    if (refs.count(name)) return;
    define(name, parent && parent->find_ref(name) ? Load::Alias : Load::Undefined);
  }
  void declare_parameter(const std::string& name) {
    stores.insert(name);
    define(name, Load::Param);
  }
  void load(const std::string& name) {
    if (!find_ref(name)) define(name, Load::Resolve);
  }
  void branch_update(const std::vector<const Symbols*>& branches) {
    std::set<std::string> branch_stores;
    for (const Symbols* b : branches) branch_stores.insert(b->stores.begin(), b->stores.end());
    for (const std::string& s : stores) branch_stores.erase(s);
    for (const Symbols* b : branches) {
      refs.insert(b->refs.begin(), b->refs.end());
      for (const auto& [n, l] : b->loads) set_load(n, l);
      stores.insert(b->stores.begin(), b->stores.end());
    }
    for (const std::string& name : branch_stores) {
      set_load(name, parent && parent->find_ref(name) ? Load::Alias : Load::Resolve);
    }
  }
  ScopeInfo info() const {
    ScopeInfo out;
    for (const auto& [n, l] : loads) {
      if (l == Load::Param) continue;
      out.inits.emplace_back(n, l == Load::Resolve ? InitKind::Resolve
                                : l == Load::Alias ? InitKind::Alias
                                                   : InitKind::Undefined);
    }
    return out;
  }
};

void visit_args(const ArgList& a, Symbols& s);

// Loads of every name an expression reads.
void visit_expr(const Expr* e, Symbols& s) {
  if (!e) return;
  switch (e->kind) {
    case ExprKind::Const: return;
    case ExprKind::Name:
    case ExprKind::NSRef: s.load(static_cast<const NameExpr*>(e)->name); return;
    case ExprKind::List:
    case ExprKind::Tuple:
    case ExprKind::Concat:
      for (const auto& i : static_cast<const SeqExpr*>(e)->items) visit_expr(i.get(), s);
      return;
    case ExprKind::Dict:
      for (const auto& [k, v] : static_cast<const DictExpr*>(e)->items) {
        visit_expr(k.get(), s);
        visit_expr(v.get(), s);
      }
      return;
    case ExprKind::Getattr: visit_expr(static_cast<const GetattrExpr*>(e)->obj.get(), s); return;
    case ExprKind::Getitem:
      visit_expr(static_cast<const GetitemExpr*>(e)->obj.get(), s);
      visit_expr(static_cast<const GetitemExpr*>(e)->key.get(), s);
      return;
    case ExprKind::Slice: {
      const auto* sl = static_cast<const SliceExpr*>(e);
      visit_expr(sl->start.get(), s);
      visit_expr(sl->stop.get(), s);
      visit_expr(sl->step.get(), s);
      return;
    }
    case ExprKind::Call:
      visit_expr(static_cast<const CallExpr*>(e)->callee.get(), s);
      visit_args(static_cast<const CallExpr*>(e)->args, s);
      return;
    case ExprKind::Filter:
      visit_expr(static_cast<const FilterExpr*>(e)->node.get(), s);
      visit_args(static_cast<const FilterExpr*>(e)->args, s);
      return;
    case ExprKind::Test:
      visit_expr(static_cast<const TestExpr*>(e)->node.get(), s);
      visit_args(static_cast<const TestExpr*>(e)->args, s);
      return;
    case ExprKind::Neg:
    case ExprKind::Pos:
    case ExprKind::Not: visit_expr(static_cast<const UnaryExpr*>(e)->operand.get(), s); return;
    case ExprKind::Binary:
    case ExprKind::And:
    case ExprKind::Or:
      visit_expr(static_cast<const BinaryExpr*>(e)->left.get(), s);
      visit_expr(static_cast<const BinaryExpr*>(e)->right.get(), s);
      return;
    case ExprKind::Compare:
      visit_expr(static_cast<const CompareExpr*>(e)->first.get(), s);
      for (const auto& [op, x] : static_cast<const CompareExpr*>(e)->ops) visit_expr(x.get(), s);
      return;
    case ExprKind::CondExpr: {
      const auto* c = static_cast<const CondExpr*>(e);
      visit_expr(c->test.get(), s);
      visit_expr(c->then_expr.get(), s);
      visit_expr(c->else_expr.get(), s);
      return;
    }
  }
}

void visit_args(const ArgList& a, Symbols& s) {
  for (const auto& x : a.args) visit_expr(x.get(), s);
  for (const auto& [k, x] : a.kwargs) visit_expr(x.get(), s);
  visit_expr(a.dyn_args.get(), s);
  visit_expr(a.dyn_kwargs.get(), s);
}

// An assignment target: names are stored (or declared as parameters), ns.attr reads ns.
void visit_target(const Expr* e, Symbols& s, bool as_param) {
  if (e->kind == ExprKind::Name) {
    const std::string& name = static_cast<const NameExpr*>(e)->name;
    as_param ? s.declare_parameter(name) : s.store(name);
  } else if (e->kind == ExprKind::NSRef) {
    s.load(static_cast<const NameExpr*>(e)->name);
  } else if (e->kind == ExprKind::Tuple) {
    for (const auto& i : static_cast<const SeqExpr*>(e)->items) visit_target(i.get(), s, as_param);
  }
}

class Analyzer {
 public:
  // Analyzes the statements of one scope, then the scopes nested in them.
  ScopeInfo scope(Symbols& s, const Body& body, const Expr* trailing_expr = nullptr) {
    std::vector<Stmt*> nested;
    for (const StmtPtr& st : body) visit_stmt(*st, s, nested);
    visit_expr(trailing_expr, s);
    ScopeInfo info = s.info();
    for (Stmt* st : nested) analyze_nested(*st, s);
    return info;
  }

 private:
  void visit_body(const Body& body, Symbols& s, std::vector<Stmt*>& nested) {
    for (const StmtPtr& st : body) visit_stmt(*st, s, nested);
  }

  // jinja2 FrameSymbolVisitor: what a statement does to the scope it is in.
  void visit_stmt(Stmt& st, Symbols& s, std::vector<Stmt*>& nested) {
    switch (st.kind) {
      case StmtKind::Output:
        for (const auto& item : static_cast<OutputStmt&>(st).items) visit_expr(item.expr.get(), s);
        return;
      case StmtKind::If: {
        auto& node = static_cast<IfStmt&>(st);
        visit_expr(node.branches[0].first.get(), s);
        Symbols body = s;
        visit_body(node.branches[0].second, body, nested);
        Symbols elifs = s;
        for (size_t k = 1; k < node.branches.size(); ++k) {  // each elif is a nested If in jinja2
          visit_expr(node.branches[k].first.get(), elifs);
          Symbols elif_body = elifs;
          visit_body(node.branches[k].second, elif_body, nested);
          const Symbols same = elifs;
          elifs.branch_update({&elif_body, &same, &same});
        }
        Symbols otherwise = s;
        visit_body(node.else_body, otherwise, nested);
        s.branch_update({&body, &elifs, &otherwise});
        return;
      }
      case StmtKind::For: visit_expr(static_cast<ForStmt&>(st).iter.get(), s); break;
      case StmtKind::Set: {
        auto& node = static_cast<SetStmt&>(st);
        visit_expr(node.value.get(), s);
        visit_target(node.target.get(), s, false);
        return;
      }
      case StmtKind::SetBlock: visit_target(static_cast<BlockStmt&>(st).target.get(), s, false); break;
      case StmtKind::Macro: s.store(static_cast<MacroStmt&>(st).def.name); break;
      case StmtKind::CallBlock: visit_expr(static_cast<CallBlockStmt&>(st).call.get(), s); break;
      case StmtKind::FilterBlock: visit_expr(static_cast<BlockStmt&>(st).filter.get(), s); break;
      case StmtKind::Scope:
        for (const auto& a : static_cast<BlockStmt&>(st).assignments) visit_expr(a.second.get(), s);
        break;
      case StmtKind::Break:
      case StmtKind::Continue: return;
    }
    nested.push_back(&st);
  }

  void analyze_macro(MacroDef& def, const Symbols& parent) {
    Symbols s;
    s.parent = &parent;
    for (const std::string& p : def.params) s.declare_parameter(p);
    std::vector<Stmt*> nested;
    for (const ExprPtr& d : def.defaults) visit_expr(d.get(), s);
    visit_body(def.body, s, nested);
    if (def.uses_caller) s.declare_parameter("caller");
    if (def.uses_kwargs) s.declare_parameter("kwargs");
    if (def.uses_varargs) s.declare_parameter("varargs");
    def.scope = s.info();
    for (Stmt* st : nested) analyze_nested(*st, s);
  }

  void analyze_nested(Stmt& st, const Symbols& parent) {
    Symbols s;
    s.parent = &parent;
    switch (st.kind) {
      case StmtKind::For: {
        auto& node = static_cast<ForStmt&>(st);
        s.declare_parameter("loop");
        visit_target(node.target.get(), s, true);
        node.body_scope = scope(s, node.body);
        Symbols otherwise;
        otherwise.parent = &parent;
        node.else_scope = scope(otherwise, node.else_body);
        if (node.filter) {
          Symbols test;
          test.parent = &parent;
          visit_target(node.target.get(), test, true);
          node.filter_scope = scope(test, {}, node.filter.get());
        }
        return;
      }
      case StmtKind::Macro: analyze_macro(static_cast<MacroStmt&>(st).def, parent); return;
      case StmtKind::CallBlock: analyze_macro(static_cast<CallBlockStmt&>(st).caller, parent); return;
      case StmtKind::SetBlock: {
        auto& node = static_cast<BlockStmt&>(st);
        node.scope = scope(s, node.body);
        return;
      }
      case StmtKind::FilterBlock: {
        auto& node = static_cast<BlockStmt&>(st);
        node.scope = scope(s, node.body, node.filter.get());
        return;
      }
      case StmtKind::Scope: {
        auto& node = static_cast<BlockStmt&>(st);
        for (const auto& a : node.assignments) visit_target(a.first.get(), s, true);
        node.scope = scope(s, node.body);
        return;
      }
      default: return;
    }
  }
};

}  // namespace

void analyze_scopes(Template& tpl) {
  Symbols root;
  tpl.scope = Analyzer().scope(root, tpl.body);
}

}  // namespace tandem::chat::jinja
