#include "chat/jinja_interp.h"

#include "chat/jinja_builtins.h"
#include "chat/jinja_ops.h"

namespace tandem::chat::jinja {

namespace {

constexpr int kMaxCallDepth = 200;

void attach_pos(Error& e, Pos pos) {
  if (!e.has_pos) {
    e.pos = pos;
    e.has_pos = true;
  }
}

}  // namespace

struct Interp::Frame {
  FramePtr parent;
  std::vector<std::pair<std::string, Value>> vars;

  const Value* find(std::string_view name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
      for (const auto& [k, v] : f->vars) {
        if (k == name) return &v;
      }
    }
    return nullptr;
  }
  void set(const std::string& name, Value value) {
    for (auto& [k, v] : vars) {
      if (k == name) {
        v = std::move(value);
        return;
      }
    }
    vars.emplace_back(name, std::move(value));
  }
  static FramePtr child(const FramePtr& parent) {
    auto f = std::make_shared<Frame>();
    f->parent = parent;
    return f;
  }
};

Interp::Interp(std::vector<std::pair<std::string, Value>> vars) : context_(std::make_shared<Frame>()) {
  for (auto& [k, v] : vars) context_->set(k, std::move(v));
  root_ = Frame::child(context_);
}

Interp::~Interp() {
  for (const FramePtr& f : macro_frames_) f->vars.clear();
  root_->vars.clear();
  context_->vars.clear();
}

std::string Interp::render(const Template& tpl) {
  std::string out;
  enter_scope(tpl.scope, root_);
  exec_body(tpl.body, root_, out);
  return out;
}

void Interp::enter_scope(const ScopeInfo& scope, const FramePtr& frame) {
  for (const auto& [name, kind] : scope.inits) {
    const Value* found = nullptr;
    if (kind == InitKind::Resolve) {
      found = context_->find(name);
    } else if (kind == InitKind::Alias && frame->parent) {
      found = frame->parent->find(name);
    }
    frame->set(name, found ? *found : Value::undefined("'" + name + "' is undefined"));
  }
}

Value Interp::call(const Value& callee, CallArgs& args) {
  if (callee.is_function()) return callee.fn().impl(*this, args);
  if (callee.is_undefined()) throw_undefined(callee);
  throw Error("'" + type_name(callee) + "' object is not callable");
}

Interp::Flow Interp::exec_body(const Body& body, const FramePtr& frame, std::string& out) {
  for (const StmtPtr& stmt : body) {
    const Flow flow = exec(*stmt, frame, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec(const Stmt& stmt, const FramePtr& frame, std::string& out) {
  try {
    switch (stmt.kind) {
      case StmtKind::Output:
        for (const auto& item : static_cast<const OutputStmt&>(stmt).items) {
          if (item.expr) {
            const Value v = eval(*item.expr, frame);
            if (v.is_string()) {
              out += v.str();
            } else {
              out += to_str(v);
            }
          } else {
            out += item.text;
          }
        }
        return Flow::Normal;
      case StmtKind::If: {
        const auto& s = static_cast<const IfStmt&>(stmt);
        for (const auto& [test, body] : s.branches) {
          if (truthy(eval(*test, frame))) return exec_body(body, frame, out);
        }
        return exec_body(s.else_body, frame, out);
      }
      case StmtKind::For: return exec_for(static_cast<const ForStmt&>(stmt), frame, out);
      case StmtKind::Set: {
        const auto& s = static_cast<const SetStmt&>(stmt);
        assign(*s.target, eval(*s.value, frame), frame);
        return Flow::Normal;
      }
      case StmtKind::Macro: {
        const auto& s = static_cast<const MacroStmt&>(stmt);
        frame->set(s.def.name, make_macro(s.def, frame));
        macro_frames_.push_back(frame);
        return Flow::Normal;
      }
      case StmtKind::CallBlock: {
        const auto& s = static_cast<const CallBlockStmt&>(stmt);
        const auto& call = static_cast<const CallExpr&>(*s.call);
        const Value callee = eval(*call.callee, frame);
        CallArgs args = eval_args(call.args, frame);
        args.kw.emplace_back("caller", make_macro(s.caller, frame));
        macro_frames_.push_back(frame);
        out += to_str(this->call(callee, args));
        return Flow::Normal;
      }
      case StmtKind::SetBlock:
      case StmtKind::FilterBlock:
      case StmtKind::Scope: return exec_block(static_cast<const BlockStmt&>(stmt), frame, out);
      case StmtKind::Break: return Flow::Break;
      case StmtKind::Continue: return Flow::Continue;
    }
  } catch (Error& e) {
    attach_pos(e, stmt.pos);
    throw;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec_for(const ForStmt& stmt, const FramePtr& frame, std::string& out) {
  auto shared = std::make_shared<LoopShared>();
  std::vector<Value> items = iterate(eval(*stmt.iter, frame));
  if (stmt.filter) {
    for (Value& item : items) {
      const FramePtr f = Frame::child(frame);
      assign(*stmt.target, item, f);
      enter_scope(stmt.filter_scope, f);
      if (truthy(eval(*stmt.filter, f))) shared->items.push_back(std::move(item));
    }
  } else {
    shared->items = std::move(items);
  }
  // As in jinja2, the else block runs unless some iteration finished its body (break and continue
  // skip that), not only when there were no items.
  bool completed = false;
  for (size_t k = 0; k < shared->items.size(); ++k) {
    const FramePtr f = Frame::child(frame);
    f->set("loop", Value::object(std::make_shared<LoopContext>(shared, k)));
    assign(*stmt.target, shared->items[k], f);
    enter_scope(stmt.body_scope, f);
    const Flow flow = exec_body(stmt.body, f, out);
    if (flow == Flow::Break) break;
    if (flow == Flow::Normal) completed = true;
  }
  if (!completed && !stmt.else_body.empty()) {
    const FramePtr f = Frame::child(frame);
    enter_scope(stmt.else_scope, f);
    return exec_body(stmt.else_body, f, out);  // a break / continue there belongs to an outer loop
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec_block(const BlockStmt& stmt, const FramePtr& frame, std::string& out) {
  const FramePtr inner = Frame::child(frame);
  enter_scope(stmt.scope, inner);
  if (stmt.kind == StmtKind::Scope) {
    std::vector<Value> values;
    for (const auto& a : stmt.assignments) values.push_back(eval(*a.second, frame));
    for (size_t k = 0; k < values.size(); ++k) assign(*stmt.assignments[k].first, values[k], inner);
    return exec_body(stmt.body, inner, out);
  }
  // A break / continue inside a set or filter block leaves it (jinja2 compiles the body inline).
  std::string text;
  if (const Flow flow = exec_body(stmt.body, inner, text); flow != Flow::Normal) return flow;
  Value value = Value::string(std::move(text));
  if (stmt.filter) {
    const Value* saved = block_input_;
    block_input_ = &value;
    Value filtered;
    try {
      filtered = eval(*stmt.filter, frame);
    } catch (...) {
      block_input_ = saved;
      throw;
    }
    block_input_ = saved;
    value = std::move(filtered);
  }
  if (stmt.kind == StmtKind::SetBlock) {
    assign(*stmt.target, value, frame);
  } else {
    out += to_str(value);
  }
  return Flow::Normal;
}

void Interp::assign(const Expr& target, const Value& value, const FramePtr& frame) {
  switch (target.kind) {
    case ExprKind::Name: frame->set(static_cast<const NameExpr&>(target).name, value); return;
    case ExprKind::NSRef: {
      const auto& ref = static_cast<const NameExpr&>(target);
      const Value* ns = frame->find(ref.name);
      if (!ns || !ns->is_object() || !ns->obj().set_attr(ref.attr, value)) {
        throw Error("cannot assign attribute on non-namespace object", target.pos);
      }
      return;
    }
    case ExprKind::Tuple: {
      const auto& targets = static_cast<const SeqExpr&>(target).items;
      if (value.is_undefined()) throw_undefined(value);
      const std::vector<Value> items = iterate(value);
      if (items.size() > targets.size()) {
        throw Error("too many values to unpack (expected " + std::to_string(targets.size()) + ")", target.pos);
      }
      if (items.size() < targets.size()) {
        throw Error("not enough values to unpack (expected " + std::to_string(targets.size()) + ", got " +
                        std::to_string(items.size()) + ")",
                    target.pos);
      }
      for (size_t k = 0; k < items.size(); ++k) assign(*targets[k], items[k], frame);
      return;
    }
    default: throw Error("can't assign to this expression", target.pos);
  }
}

Value Interp::make_macro(const MacroDef& def, const FramePtr& closure) {
  const std::string repr = def.name == "caller" ? "<Macro anonymous>" : "<Macro '" + def.name + "'>";
  return Value::function(repr, [this, &def, closure](Interp&, CallArgs& args) {
    return call_macro(def, closure, args);
  });
}

Value Interp::call_macro(const MacroDef& def, const FramePtr& closure, CallArgs& args) {
  struct DepthGuard {
    int& depth;
    ~DepthGuard() { --depth; }
  } guard{++call_depth_};
  if (call_depth_ > kMaxCallDepth) throw Error("maximum recursion depth exceeded in macro '" + def.name + "'");
  const std::string who = "macro '" + def.name + "'";
  const size_t np = def.params.size();
  std::vector<std::optional<Value>> bound(np);
  std::vector<Value> extra_pos;
  for (size_t k = 0; k < args.pos.size(); ++k) {
    if (k < np) {
      bound[k] = args.pos[k];
    } else {
      extra_pos.push_back(args.pos[k]);
    }
  }
  if (!extra_pos.empty() && !def.uses_varargs) {
    throw Error(who + " takes not more than " + std::to_string(np) + " argument(s)");
  }
  auto extra_kw = std::make_shared<DictData>();
  Value caller = Value::undefined("No caller defined");
  for (auto& [name, v] : args.kw) {
    size_t k = 0;
    while (k < np && def.params[k] != name) ++k;
    if (k < np) {
      if (bound[k]) throw Error(who + " got multiple values for argument '" + name + "'");
      bound[k] = v;
    } else if (name == "caller" && def.uses_caller) {
      caller = v;
    } else if (def.uses_kwargs) {
      extra_kw->set(Value::string(name), v);
    } else if (name == "caller") {
      throw Error(who + " was invoked with two values for the special caller argument. This is most likely a bug.");
    } else {
      throw Error(who + " takes no keyword argument '" + name + "'");
    }
  }
  const FramePtr f = Frame::child(closure);
  enter_scope(def.scope, f);
  const size_t first_default = np - def.defaults.size();
  for (size_t k = 0; k < np; ++k) {
    if (bound[k]) {
      f->set(def.params[k], *bound[k]);
    } else if (k >= first_default) {
      f->set(def.params[k], eval(*def.defaults[k - first_default], f));
    } else {
      f->set(def.params[k], Value::undefined("parameter '" + def.params[k] + "' was not provided"));
    }
  }
  if (def.uses_varargs) f->set("varargs", Value::list(std::move(extra_pos), true));
  if (def.uses_kwargs) f->set("kwargs", Value::dict(extra_kw));
  if (def.uses_caller) f->set("caller", caller);
  std::string out;
  exec_body(def.body, f, out);
  return Value::string(std::move(out));
}

Value Interp::eval(const Expr& expr, const FramePtr& frame) {
  try {
    return eval_node(expr, frame);
  } catch (Error& e) {
    attach_pos(e, expr.pos);
    throw;
  }
}

CallArgs Interp::eval_args(const ArgList& args, const FramePtr& frame) {
  CallArgs out;
  for (const ExprPtr& a : args.args) out.pos.push_back(eval(*a, frame));
  for (const auto& [k, a] : args.kwargs) out.kw.emplace_back(k, eval(*a, frame));
  if (args.dyn_args) {
    for (Value& v : iterate(eval(*args.dyn_args, frame))) out.pos.push_back(std::move(v));
  }
  if (args.dyn_kwargs) {
    const Value d = eval(*args.dyn_kwargs, frame);
    if (!d.is_dict()) throw Error("argument after ** must be a mapping, not " + type_name(d), args.dyn_kwargs->pos);
    for (const auto& [k, v] : d.dict_data().items) {
      if (!k.is_string()) throw Error("keywords must be strings", args.dyn_kwargs->pos);
      out.kw.emplace_back(k.str(), v);
    }
  }
  return out;
}

Value Interp::eval_compare(const CompareExpr& c, const FramePtr& frame) {
  Value left = eval(*c.first, frame);
  for (const auto& [op, expr] : c.ops) {
    Value right = eval(*expr, frame);
    bool ok = false;
    switch (op) {
      case CmpOp::Eq: ok = py_equal(left, right); break;
      case CmpOp::Ne: ok = !py_equal(left, right); break;
      case CmpOp::Lt: ok = py_compare(left, right, "<") < 0; break;
      case CmpOp::Le: ok = py_compare(left, right, "<=") <= 0; break;
      case CmpOp::Gt: ok = py_compare(left, right, ">") > 0; break;
      case CmpOp::Ge: ok = py_compare(left, right, ">=") >= 0; break;
      case CmpOp::In: ok = contains(right, left); break;
      case CmpOp::NotIn: ok = !contains(right, left); break;
    }
    if (!ok) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interp::eval_node(const Expr& expr, const FramePtr& frame) {
  switch (expr.kind) {
    case ExprKind::Const: return static_cast<const ConstExpr&>(expr).value;
    case ExprKind::Name: {
      const auto& name = static_cast<const NameExpr&>(expr).name;
      if (const Value* v = frame->find(name)) return *v;
      return Value::undefined("'" + name + "' is undefined");
    }
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      for (const ExprPtr& e : static_cast<const SeqExpr&>(expr).items) items.push_back(eval(*e, frame));
      return Value::list(std::move(items), expr.kind == ExprKind::Tuple);
    }
    case ExprKind::Dict: {
      auto data = std::make_shared<DictData>();
      for (const auto& [k, v] : static_cast<const DictExpr&>(expr).items) {
        Value key = eval(*k, frame);
        if (key.is_list() && !key.is_tuple()) throw Error("unhashable type: 'list'", k->pos);
        if (key.is_dict()) throw Error("unhashable type: 'dict'", k->pos);
        data->set(std::move(key), eval(*v, frame));
      }
      return Value::dict(std::move(data));
    }
    case ExprKind::Getattr: {
      const auto& g = static_cast<const GetattrExpr&>(expr);
      return get_attr(eval(*g.obj, frame), g.attr);
    }
    case ExprKind::Getitem: {
      const auto& g = static_cast<const GetitemExpr&>(expr);
      const Value obj = eval(*g.obj, frame);
      if (g.key->kind == ExprKind::Slice) {
        const auto& s = static_cast<const SliceExpr&>(*g.key);
        const auto bound = [&](const ExprPtr& e) { return e ? eval(*e, frame) : Value::none(); };
        return slice(obj, bound(s.start), bound(s.stop), bound(s.step));
      }
      return get_item(obj, eval(*g.key, frame));
    }
    case ExprKind::Call: {
      const auto& c = static_cast<const CallExpr&>(expr);
      const Value callee = eval(*c.callee, frame);
      CallArgs args = eval_args(c.args, frame);
      return call(callee, args);
    }
    case ExprKind::Filter: {
      const auto& f = static_cast<const FilterExpr&>(expr);
      Value input;
      if (f.node) {
        input = eval(*f.node, frame);
      } else if (block_input_) {
        input = *block_input_;
      }
      CallArgs args = eval_args(f.args, frame);
      return f.fn(*this, input, args);
    }
    case ExprKind::Test: {
      const auto& t = static_cast<const TestExpr&>(expr);
      const Value input = eval(*t.node, frame);
      CallArgs args = eval_args(t.args, frame);
      return Value::boolean(t.fn(*this, input, args));
    }
    case ExprKind::Neg: return unary_minus(eval(*static_cast<const UnaryExpr&>(expr).operand, frame));
    case ExprKind::Pos: return unary_plus(eval(*static_cast<const UnaryExpr&>(expr).operand, frame));
    case ExprKind::Not: return Value::boolean(!truthy(eval(*static_cast<const UnaryExpr&>(expr).operand, frame)));
    case ExprKind::Binary: {
      const auto& b = static_cast<const BinaryExpr&>(expr);
      const Value left = eval(*b.left, frame);
      const Value right = eval(*b.right, frame);
      return binary_op(b.op, left, right);
    }
    case ExprKind::And:
    case ExprKind::Or: {
      const auto& b = static_cast<const BinaryExpr&>(expr);
      Value left = eval(*b.left, frame);
      if (truthy(left) == (expr.kind == ExprKind::Or)) return left;
      return eval(*b.right, frame);
    }
    case ExprKind::Concat: {
      std::string s;
      for (const ExprPtr& e : static_cast<const SeqExpr&>(expr).items) s += to_str(eval(*e, frame));
      return Value::string(std::move(s));
    }
    case ExprKind::Compare: return eval_compare(static_cast<const CompareExpr&>(expr), frame);
    case ExprKind::CondExpr: {
      const auto& c = static_cast<const CondExpr&>(expr);
      if (truthy(eval(*c.test, frame))) return eval(*c.then_expr, frame);
      if (c.else_expr) return eval(*c.else_expr, frame);
      return Value::undefined("the inline if-expression on line " + std::to_string(c.pos.line) +
                              " evaluated to false and no else section was defined.");
    }
    case ExprKind::NSRef:
    case ExprKind::Slice: break;
  }
  throw Error("this expression can only appear as an assignment target or subscript");
}

}  // namespace tandem::chat::jinja
