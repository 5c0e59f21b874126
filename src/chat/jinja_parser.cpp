#include "chat/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "chat/jinja_builtins.h"
#include "chat/jinja_lexer.h"
#include "chat/jinja_scope.h"

namespace tandem::chat::jinja {

namespace {

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (size_t k = 0; k < names.size(); ++k) {
    if (k) out += k + 1 == names.size() ? " or " : ", ";
    out += "'" + names[k] + "'";
  }
  return out;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::unique_ptr<Template> parse() {
    auto tpl = std::make_unique<Template>();
    tpl->body = subparse({});
    return tpl;
  }

 private:
  struct OpenBlock {
    std::string tag;
    Pos pos;
    std::vector<std::string> end_tags;
  };

  // ---- token stream ----
  const Token& cur() const { return toks_[i_]; }
  const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& advance() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool is_op(std::string_view op) const { return cur().type == TokenType::Operator && cur().text == op; }
  bool is_name(std::string_view name) const { return cur().type == TokenType::Name && cur().text == name; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }
  [[noreturn]] void fail(const std::string& msg, Pos pos) const { throw Error(msg, pos); }
  [[noreturn]] void fail_here(const std::string& msg) const { fail(msg, cur().pos); }
  [[noreturn]] void unexpected(const std::string& expected) const {
    if (cur().type == TokenType::Eof) fail_eof({});
    fail_here("expected " + expected + ", got " + describe_token(cur()));
  }
  const Token& expect_op(std::string_view op) {
    if (!is_op(op)) unexpected("'" + std::string(op) + "'");
    return advance();
  }
  const Token& expect_name() {
    if (cur().type != TokenType::Name) unexpected("a name");
    return advance();
  }
  void expect_name(std::string_view name) {
    if (!is_name(name)) unexpected("'" + std::string(name) + "'");
    advance();
  }
  void expect_type(TokenType type, const char* what) {
    if (cur().type != type) unexpected(what);
    advance();
  }

  [[noreturn]] void fail_eof(const std::vector<std::string>& end_tags) const {
    if (!open_.empty()) {
      const OpenBlock& b = open_.back();
      fail("unexpected end of template: the '" + b.tag + "' block opened at " + std::to_string(b.pos.line) + ":" +
               std::to_string(b.pos.col) + " is not closed (expected " + quoted_list(b.end_tags) + ")",
           cur().pos);
    }
    if (!end_tags.empty()) fail("unexpected end of template, expected " + quoted_list(end_tags), cur().pos);
    fail("unexpected end of template", cur().pos);
  }

  // ---- statements ----
  Body subparse(const std::vector<std::string>& end_tags) {
    Body body;
    std::unique_ptr<OutputStmt> out;
    const auto flush = [&] {
      if (out) body.push_back(std::move(out));
      out.reset();
    };
    const auto output = [&](Pos pos) -> OutputStmt& {
      if (!out) out = std::make_unique<OutputStmt>(pos);
      return *out;
    };
    while (cur().type != TokenType::Eof) {
      const Token& t = cur();
      if (t.type == TokenType::Data) {
        output(t.pos).items.push_back({t.text, nullptr});
        advance();
      } else if (t.type == TokenType::VarBegin) {
        advance();
        output(t.pos).items.push_back({"", parse_tuple(false, true, {}, false)});
        expect_type(TokenType::VarEnd, "end of print statement ('}}')");
      } else if (t.type == TokenType::BlockBegin) {
        flush();
        advance();
        if (cur().type == TokenType::Name &&
            std::find(end_tags.begin(), end_tags.end(), cur().text) != end_tags.end()) {
          return body;
        }
        parse_statement(body);
        expect_type(TokenType::BlockEnd, "end of statement block ('%}')");
      } else {
        fail_here("unexpected " + describe_token(t));
      }
    }
    flush();
    if (!end_tags.empty()) fail_eof(end_tags);
    return body;
  }

  // Body up to one of `end_tags`; leaves the end tag name as the current token (or consumes it).
  Body parse_statements(const std::string& tag, Pos pos, std::vector<std::string> end_tags, bool drop_needle) {
    skip_op(":");
    expect_type(TokenType::BlockEnd, "end of statement block ('%}')");
    open_.push_back({tag, pos, end_tags});
    Body body = subparse(end_tags);
    open_.pop_back();
    if (drop_needle) advance();
    return body;
  }

  void parse_statement(Body& body) {
    if (cur().type != TokenType::Name) fail_here("tag name expected, got " + describe_token(cur()));
    const Token tag = cur();
    const std::string& name = tag.text;
    if (name == "for") return body.push_back(parse_for());
    if (name == "if") return body.push_back(parse_if());
    if (name == "set") return body.push_back(parse_set());
    if (name == "macro") return body.push_back(parse_macro());
    if (name == "call") return body.push_back(parse_call_block());
    if (name == "filter") return body.push_back(parse_filter_block());
    if (name == "with" || name == "generation") return body.push_back(parse_scope(name));
    if (name == "print") {
      advance();
      auto out = std::make_unique<OutputStmt>(tag.pos);
      while (cur().type != TokenType::BlockEnd) {
        if (!out->items.empty()) expect_op(",");
        out->items.push_back({"", parse_expression(true)});
      }
      return body.push_back(std::move(out));
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) fail(std::string("'") + name + "' outside of a for loop", tag.pos);
      advance();
      return body.push_back(std::make_unique<Stmt>(name == "break" ? StmtKind::Break : StmtKind::Continue, tag.pos));
    }
    static const char* const kUnsupported[] = {"extends", "block",      "include", "import", "from",
                                               "autoescape", "do",      "trans",   "pluralize"};
    for (const char* u : kUnsupported) {
      if (name == u) fail("the '{% " + name + " %}' tag is not supported by this chat template engine", tag.pos);
    }
    for (auto it = open_.rbegin(); it != open_.rend(); ++it) {
      if (std::find(it->end_tags.begin(), it->end_tags.end(), name) == it->end_tags.end()) continue;
      const OpenBlock& inner = open_.back();
      fail("unexpected '" + name + "': the innermost open block is '" + inner.tag + "' (opened at " +
               std::to_string(inner.pos.line) + ":" + std::to_string(inner.pos.col) + "), expected " +
               quoted_list(inner.end_tags),
           tag.pos);
    }
    if (!open_.empty()) {
      fail("unknown tag '" + name + "' (expected " + quoted_list(open_.back().end_tags) + " to close the '" +
               open_.back().tag + "' block)",
           tag.pos);
    }
    fail("unknown tag '" + name + "'", tag.pos);
  }

  StmtPtr parse_for() {
    const Pos pos = advance().pos;
    auto node = std::make_unique<ForStmt>(pos);
    node->target = parse_assign_target(true, false, {"in"});
    expect_name("in");
    node->iter = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) node->filter = parse_expression(true);
    if (is_name("recursive")) fail_here("recursive for loops are not supported by this chat template engine");
    ++loop_depth_;
    node->body = parse_statements("for", pos, {"endfor", "else"}, false);
    --loop_depth_;
    if (advance().text == "else") node->else_body = parse_statements("for", pos, {"endfor"}, true);  // not in the loop
    return node;
  }

  StmtPtr parse_if() {
    const Pos pos = advance().pos;
    auto node = std::make_unique<IfStmt>(pos);
    while (true) {
      ExprPtr test = parse_tuple(false, false, {}, false);
      Body body = parse_statements("if", pos, {"elif", "else", "endif"}, false);
      node->branches.emplace_back(std::move(test), std::move(body));
      const std::string tag = advance().text;
      if (tag == "elif") continue;
      if (tag == "else") node->else_body = parse_statements("if", pos, {"endif"}, true);
      break;
    }
    return node;
  }

  StmtPtr parse_set() {
    const Pos pos = advance().pos;
    ExprPtr target = parse_assign_target(true, true, {});
    if (skip_op("=")) return std::make_unique<SetStmt>(pos, std::move(target), parse_tuple(false, true, {}, false));
    auto node = std::make_unique<BlockStmt>(StmtKind::SetBlock, pos);
    node->target = std::move(target);
    node->filter = parse_filter(nullptr, false);
    node->body = parse_statements("set", pos, {"endset"}, true);
    return node;
  }

  void parse_signature(MacroDef& def) {
    expect_op("(");
    while (!is_op(")")) {
      if (!def.params.empty()) expect_op(",");
      const Token& name = expect_name();
      def.params.push_back(name.text);
      if (skip_op("=")) {
        def.defaults.push_back(parse_expression(true));
      } else if (!def.defaults.empty()) {
        fail("non-default argument follows default argument", name.pos);
      }
    }
    expect_op(")");
  }

  StmtPtr parse_macro() {
    const Pos pos = advance().pos;
    auto node = std::make_unique<MacroStmt>(pos);
    node->def.name = expect_name().text;
    parse_signature(node->def);
    parse_callable_body(node->def, "macro", pos, "endmacro");
    return node;
  }

  StmtPtr parse_call_block() {
    const Pos pos = advance().pos;
    auto node = std::make_unique<CallBlockStmt>(pos);
    node->caller.name = "caller";
    if (is_op("(")) parse_signature(node->caller);
    node->call = parse_expression(true);
    if (node->call->kind != ExprKind::Call) fail("expected a call after '{% call %}'", node->call->pos);
    parse_callable_body(node->caller, "call", pos, "endcall");
    return node;
  }

  void parse_callable_body(MacroDef& def, const std::string& tag, Pos pos, const std::string& end_tag) {
    const int saved_loops = loop_depth_;
    loop_depth_ = 0;
    macros_.push_back(&def);
    def.body = parse_statements(tag, pos, {end_tag}, true);
    macros_.pop_back();
    loop_depth_ = saved_loops;
  }

  StmtPtr parse_filter_block() {
    const Pos pos = advance().pos;
    auto node = std::make_unique<BlockStmt>(StmtKind::FilterBlock, pos);
    node->filter = parse_filter(nullptr, true);
    node->body = parse_statements("filter", pos, {"endfilter"}, true);
    return node;
  }

  StmtPtr parse_scope(const std::string& tag) {
    const Pos pos = advance().pos;
    auto node = std::make_unique<BlockStmt>(StmtKind::Scope, pos);
    if (tag == "with") {
      while (cur().type != TokenType::BlockEnd) {
        if (!node->assignments.empty()) expect_op(",");
        ExprPtr target = parse_assign_target(false, false, {});
        expect_op("=");
        node->assignments.emplace_back(std::move(target), parse_expression(true));
      }
    }
    node->body = parse_statements(tag, pos, {"end" + tag}, true);
    return node;
  }

  ExprPtr parse_assign_target(bool with_tuple, bool with_namespace, const std::vector<std::string>& extra_end) {
    ExprPtr target = with_tuple ? parse_tuple(true, true, extra_end, false, with_namespace) : parse_primary(false);
    check_assignable(*target);
    return target;
  }

  void check_assignable(const Expr& e) {
    if (e.kind == ExprKind::Name || e.kind == ExprKind::NSRef) return;
    if (e.kind == ExprKind::Tuple) {
      for (const auto& item : static_cast<const SeqExpr&>(e).items) check_assignable(*item);
      return;
    }
    fail("can't assign to this expression", e.pos);
  }

  // ---- expressions ----
  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    ExprPtr expr1 = parse_or();
    while (is_name("if")) {
      const Pos pos = advance().pos;
      ExprPtr test = parse_or();
      ExprPtr expr3 = skip_name("else") ? parse_condexpr() : nullptr;
      expr1 = std::make_unique<CondExpr>(pos, std::move(test), std::move(expr1), std::move(expr3));
    }
    return expr1;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Pos pos = advance().pos;
      left = std::make_unique<BinaryExpr>(ExprKind::Or, pos, BinOp::Add, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Pos pos = advance().pos;
      left = std::make_unique<BinaryExpr>(ExprKind::And, pos, BinOp::Add, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const Pos pos = advance().pos;
      return std::make_unique<UnaryExpr>(ExprKind::Not, pos, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    ExprPtr expr = parse_math1();
    std::unique_ptr<CompareExpr> cmp;
    while (true) {
      CmpOp op;
      const Pos pos = cur().pos;
      if (cur().type == TokenType::Operator && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                                cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        const std::string& t = cur().text;
        op = t == "==" ? CmpOp::Eq : t == "!=" ? CmpOp::Ne : t == "<" ? CmpOp::Lt : t == "<=" ? CmpOp::Le
             : t == ">" ? CmpOp::Gt : CmpOp::Ge;
        advance();
      } else if (is_name("in")) {
        op = CmpOp::In;
        advance();
      } else if (is_name("not") && look().type == TokenType::Name && look().text == "in") {
        op = CmpOp::NotIn;
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) cmp = std::make_unique<CompareExpr>(pos, std::move(expr));
      cmp->ops.emplace_back(op, parse_math1());
    }
    if (cmp) return cmp;
    return expr;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = advance();
      const BinOp op = t.text == "+" ? BinOp::Add : BinOp::Sub;
      left = std::make_unique<BinaryExpr>(ExprKind::Binary, t.pos, op, std::move(left), parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto node = std::make_unique<SeqExpr>(ExprKind::Concat, cur().pos);
    node->items.push_back(std::move(first));
    while (skip_op("~")) node->items.push_back(parse_math2());
    return node;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = advance();
      const BinOp op = t.text == "*" ? BinOp::Mul : t.text == "/" ? BinOp::Div : t.text == "//" ? BinOp::FloorDiv
                                                                                                 : BinOp::Mod;
      left = std::make_unique<BinaryExpr>(ExprKind::Binary, t.pos, op, std::move(left), parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Pos pos = advance().pos;
      left = std::make_unique<BinaryExpr>(ExprKind::Binary, pos, BinOp::Pow, std::move(left), parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& t = advance();
      node = std::make_unique<UnaryExpr>(t.text == "-" ? ExprKind::Neg : ExprKind::Pos, t.pos, parse_unary(false));
    } else {
      node = parse_primary(false);
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary(bool with_namespace) {
    const Token& t = cur();
    switch (t.type) {
      case TokenType::Name: {
        advance();
        if (t.text == "true" || t.text == "True") return std::make_unique<ConstExpr>(t.pos, Value::boolean(true));
        if (t.text == "false" || t.text == "False") return std::make_unique<ConstExpr>(t.pos, Value::boolean(false));
        if (t.text == "none" || t.text == "None") return std::make_unique<ConstExpr>(t.pos, Value::none());
        if (with_namespace && is_op(".")) {
          advance();
          return std::make_unique<NameExpr>(ExprKind::NSRef, t.pos, t.text, expect_name().text);
        }
        for (MacroDef* def : macros_) {  // as jinja2's find_undeclared, nested macros count too
          def->uses_varargs |= t.text == "varargs";
          def->uses_kwargs |= t.text == "kwargs";
          def->uses_caller |= t.text == "caller";
        }
        return std::make_unique<NameExpr>(ExprKind::Name, t.pos, t.text);
      }
      case TokenType::String: {
        std::string s = advance().text;
        while (cur().type == TokenType::String) s += advance().text;
        return std::make_unique<ConstExpr>(t.pos, Value::string(std::move(s)));
      }
      case TokenType::Integer: advance(); return std::make_unique<ConstExpr>(t.pos, Value::integer(t.int_value));
      case TokenType::Float: advance(); return std::make_unique<ConstExpr>(t.pos, Value::number(t.float_value));
      case TokenType::Operator:
        if (t.text == "(") {
          advance();
          ExprPtr node = parse_tuple(false, true, {}, true);
          expect_op(")");
          return node;
        }
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        break;
      default: break;
    }
    if (t.type == TokenType::Eof) fail_eof({});
    fail_here("unexpected " + describe_token(t));
  }

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().type == TokenType::VarEnd || cur().type == TokenType::BlockEnd || is_op(")")) return true;
    return cur().type == TokenType::Name &&
           std::find(extra_end.begin(), extra_end.end(), cur().text) != extra_end.end();
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                      bool explicit_parens, bool with_namespace = false) {
    const Pos pos = cur().pos;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) unexpected("an expression");
    }
    auto node = std::make_unique<SeqExpr>(ExprKind::Tuple, pos);
    node->items = std::move(args);
    return node;
  }

  ExprPtr parse_list() {
    auto node = std::make_unique<SeqExpr>(ExprKind::List, expect_op("[").pos);
    while (!is_op("]")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("]")) break;
      node->items.push_back(parse_expression(true));
    }
    expect_op("]");
    return node;
  }

  ExprPtr parse_dict() {
    auto node = std::make_unique<DictExpr>(expect_op("{").pos);
    while (!is_op("}")) {
      if (!node->items.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      node->items.emplace_back(std::move(key), parse_expression(true));
    }
    expect_op("}");
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& t = advance();
    if (t.text == ".") {
      const Token& attr = cur();
      if (attr.type == TokenType::Name) {
        advance();
        return std::make_unique<GetattrExpr>(t.pos, std::move(node), attr.text);
      }
      if (attr.type != TokenType::Integer) unexpected("a name or number after '.'");
      advance();
      return std::make_unique<GetitemExpr>(t.pos, std::move(node),
                                           std::make_unique<ConstExpr>(attr.pos, Value::integer(attr.int_value)));
    }
    std::vector<ExprPtr> args;
    while (!is_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    expect_op("]");
    if (args.size() == 1) return std::make_unique<GetitemExpr>(t.pos, std::move(node), std::move(args[0]));
    auto tuple = std::make_unique<SeqExpr>(ExprKind::Tuple, t.pos);
    tuple->items = std::move(args);
    return std::make_unique<GetitemExpr>(t.pos, std::move(node), std::move(tuple));
  }

  ExprPtr parse_subscribed() {
    const Pos pos = cur().pos;
    auto slice = std::make_unique<SliceExpr>(pos);
    if (!skip_op(":")) {
      ExprPtr first = parse_expression(true);
      if (!skip_op(":")) return first;
      slice->start = std::move(first);
    }
    if (!is_op(":") && !is_op("]") && !is_op(",")) slice->stop = parse_expression(true);
    if (skip_op(":")) {
      if (!is_op("]") && !is_op(",")) slice->step = parse_expression(true);
    }
    return slice;
  }

  void parse_call_args(ArgList& out) {
    const Pos pos = expect_op("(").pos;
    bool require_comma = false;
    const auto ensure = [&](bool ok) {
      if (!ok) fail("invalid syntax for function call expression", pos);
    };
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (skip_op("*")) {
        ensure(!out.dyn_args && !out.dyn_kwargs);
        out.dyn_args = parse_expression(true);
      } else if (skip_op("**")) {
        ensure(!out.dyn_kwargs);
        out.dyn_kwargs = parse_expression(true);
      } else if (cur().type == TokenType::Name && look().type == TokenType::Operator && look().text == "=") {
        ensure(!out.dyn_kwargs);
        std::string key = advance().text;
        advance();
        out.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        ensure(!out.dyn_args && !out.dyn_kwargs && out.kwargs.empty());
        out.args.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto call = std::make_unique<CallExpr>(cur().pos, std::move(node));
    parse_call_args(call->args);
    return call;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) advance();
      start_inline = false;
      const Token& name = expect_name();
      std::string full = name.text;
      while (skip_op(".")) full += "." + expect_name().text;
      auto filter = std::make_unique<FilterExpr>(name.pos, std::move(node), full);
      filter->fn = find_filter(full);
      if (!filter->fn) fail("no filter named '" + full + "'", name.pos);
      if (is_op("(")) parse_call_args(filter->args);
      node = std::move(filter);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const Pos pos = advance().pos;
    const bool negated = skip_name("not");
    const Token& name = expect_name();
    std::string full = name.text;
    while (skip_op(".")) full += "." + expect_name().text;
    auto test = std::make_unique<TestExpr>(pos, std::move(node), full);
    test->fn = find_test(full);
    if (!test->fn) fail("no test named '" + full + "'", name.pos);
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(test->args);
    } else if ((t.type == TokenType::Name || t.type == TokenType::String || t.type == TokenType::Integer ||
                t.type == TokenType::Float || is_op("[") || is_op("{")) &&
               !(is_name("else") || is_name("or") || is_name("and"))) {
      if (is_name("is")) fail_here("you cannot chain multiple tests with 'is'");
      test->args.args.push_back(parse_postfix(parse_primary(false)));
    }
    if (negated) return std::make_unique<UnaryExpr>(ExprKind::Not, pos, std::move(test));
    return test;
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  std::vector<OpenBlock> open_;
  std::vector<MacroDef*> macros_;
  int loop_depth_ = 0;
};

}  // namespace

std::unique_ptr<Template> parse_template(std::string_view source) {
  std::unique_ptr<Template> tpl = Parser(tokenize(source)).parse();
  analyze_scopes(*tpl);
  return tpl;
}

}  // namespace tandem::chat::jinja
