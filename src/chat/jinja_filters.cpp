// Filters and tests, as jinja2 3.x defines them (tojson as transformers overrides it). Filters that
// return generators in jinja2 (map, select, reject, unique, reverse, batch, items) return lists here.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "chat/jinja_builtins.h"
#include "chat/jinja_interp.h"
#include "chat/jinja_ops.h"
#include "chat/jinja_text.h"

namespace tandem::chat::jinja {

namespace {

using Args = std::vector<Value>;

Args bind(const char* name, CallArgs& a, std::vector<Param> params) { return bind_args(name, a, params); }

Value str_value(std::string s) { return Value::string(std::move(s)); }

bool is_none_like(const Value& v) { return v.is_none() || v.is_undefined(); }

int64_t to_int_arg(const Value& v, const char* what) {
  if (!v.is_integral()) throw Error(std::string(what) + " must be an integer, not " + type_name(v));
  return v.i();
}

// jinja2 make_attrgetter: "a.b.0" looks up each part with getitem (then attribute).
std::vector<Value> attribute_parts(const Value& attribute) {
  std::vector<Value> parts;
  if (attribute.is_integral()) {
    parts.push_back(attribute);
    return parts;
  }
  for (const std::string& p : py_split(to_str(attribute), std::string("."), -1)) {
    const bool digits = !p.empty() && p.find_first_not_of("0123456789") == std::string::npos;
    parts.push_back(digits ? Value::integer(std::stoll(p)) : Value::string(p));
  }
  return parts;
}

Value lookup_path(Value item, const std::vector<Value>& parts, const Value& default_value) {
  for (const Value& part : parts) {
    item = get_item(item, part);
    if (!default_value.is_none() && !default_value.is_undefined() && item.is_undefined()) item = default_value;
  }
  return item;
}

Value ignore_case(const Value& v) { return v.is_string() ? Value::string(py_lower(v.str())) : v; }

// The key function of sort / unique / min / max (jinja2 make_attrgetter; make_multi_attrgetter for sort,
// whose keys are always lists, one element per comma-separated attribute).
struct KeyGetter {
  std::vector<std::vector<Value>> paths;
  bool case_sensitive = false;
  bool multi = false;
  Value operator()(const Value& item) const {
    const auto post = [&](Value v) { return case_sensitive ? v : ignore_case(v); };
    if (!multi) return post(paths.empty() ? item : lookup_path(item, paths[0], Value()));
    std::vector<Value> key;
    for (const auto& p : paths) key.push_back(post(lookup_path(item, p, Value())));
    return Value::list(std::move(key));
  }
};

KeyGetter make_key(const Value& attribute, bool case_sensitive, bool multi) {
  KeyGetter k;
  k.case_sensitive = case_sensitive;
  k.multi = multi;
  if (multi && attribute.is_string()) {
    for (const std::string& a : py_split(attribute.str(), std::string(","), -1)) {
      k.paths.push_back(attribute_parts(Value::string(a)));
    }
  } else if (multi || !is_none_like(attribute)) {
    k.paths.push_back(is_none_like(attribute) ? std::vector<Value>{} : attribute_parts(attribute));
  }
  return k;
}

Value f_abs(Interp&, const Value& v, CallArgs& a) {
  bind("abs", a, {});
  if (v.is_integral()) return unary_minus(Value::integer(v.i() < 0 ? v.i() : -v.i()));
  if (v.is_float()) return Value::number(std::fabs(v.as_double()));
  throw Error("bad operand type for abs(): '" + type_name(v) + "'");
}

Value f_attr(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("attr", a, {{"name", Value(), true}});
  const std::string name = to_str(p[0]);
  if (v.is_object()) {
    if (auto r = v.obj().get_attr(name)) return *r;
  } else if (auto m = get_method(v, name)) {
    return *m;
  }
  return Value::undefined("'" + object_type_repr(v) + "' has no attribute '" + name + "'");
}

Value f_batch(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("batch", a, {{"linecount", Value(), true}, {"fill_with", Value::none()}});
  const int64_t n = to_int_arg(p[0], "linecount");
  if (n <= 0) throw Error("batch size must be positive");
  std::vector<Value> out, cur;
  for (Value& item : iterate(v)) {
    cur.push_back(std::move(item));
    if (static_cast<int64_t>(cur.size()) == n) out.push_back(Value::list(std::move(cur))), cur.clear();
  }
  if (!cur.empty()) {
    if (!p[1].is_none()) {
      while (static_cast<int64_t>(cur.size()) < n) cur.push_back(p[1]);
    }
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}

Value f_capitalize(Interp&, const Value& v, CallArgs& a) { return bind("capitalize", a, {}), str_value(py_capitalize(to_str(v))); }
Value f_lower(Interp&, const Value& v, CallArgs& a) { return bind("lower", a, {}), str_value(py_lower(to_str(v))); }
Value f_upper(Interp&, const Value& v, CallArgs& a) { return bind("upper", a, {}), str_value(py_upper(to_str(v))); }
Value f_string(Interp&, const Value& v, CallArgs& a) { return bind("string", a, {}), str_value(to_str(v)); }
Value f_safe(Interp&, const Value& v, CallArgs& a) { return bind("safe", a, {}), str_value(to_str(v)); }

Value f_center(Interp& in, const Value& v, CallArgs& a) {
  const Args p = bind("center", a, {{"width", Value::integer(80)}});
  CallArgs inner;
  inner.pos.push_back(p[0]);
  return in.call(get_attr(Value::string(to_str(v)), "center"), inner);
}

Value f_default(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("default", a, {{"default_value", Value::string("")}, {"boolean", Value::boolean(false)}});
  if (v.is_undefined() || (truthy(p[1]) && !truthy(v))) return p[0];
  return v;
}

Value f_dictsort(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("dictsort", a, {{"case_sensitive", Value::boolean(false)}, {"by", Value::string("key")},
                                      {"reverse", Value::boolean(false)}});
  const std::string by = to_str(p[1]);
  if (by != "key" && by != "value") throw Error("You can only sort by either \"key\" or \"value\"");
  if (!v.is_dict()) throw Error("dictsort: '" + type_name(v) + "' object has no attribute 'items'");
  std::vector<std::pair<Value, Value>> items = v.dict_data().items;
  const size_t pos = by == "key" ? 0 : 1;
  const bool cs = truthy(p[0]), rev = truthy(p[2]);
  const auto key = [&](const std::pair<Value, Value>& kv) { return cs ? (pos ? kv.second : kv.first) : ignore_case(pos ? kv.second : kv.first); };
  std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
    return rev ? py_compare(key(y), key(x)) < 0 : py_compare(key(x), key(y)) < 0;
  });
  std::vector<Value> out;
  for (auto& kv : items) out.push_back(Value::list({kv.first, kv.second}, true));
  return Value::list(std::move(out));
}

Value f_escape(Interp&, const Value& v, CallArgs& a) {
  bind("escape", a, {});
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return str_value(std::move(out));
}

Value f_first(Interp&, const Value& v, CallArgs& a) {
  bind("first", a, {});
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(Interp&, const Value& v, CallArgs& a) {
  bind("last", a, {});
  const std::vector<Value> items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

std::optional<double> parse_py_float(const std::string& text) {
  std::string s = py_strip(text, std::nullopt, true, true);
  std::string clean;
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] == '_' && k > 0 && k + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[k - 1])) &&
        std::isdigit(static_cast<unsigned char>(s[k + 1]))) {
      continue;
    }
    clean += s[k];
  }
  if (clean.empty() || clean.find_first_of("xXpP") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return std::nullopt;
  return d;
}

std::optional<int64_t> parse_py_int(const std::string& text, int64_t base) {
  std::string s = py_strip(text, std::nullopt, true, true);
  bool neg = false;
  size_t p = 0;
  if (p < s.size() && (s[p] == '+' || s[p] == '-')) neg = s[p++] == '-';
  if (p + 1 < s.size() && s[p] == '0') {
    const char x = static_cast<char>(s[p + 1] | 0x20);
    const int64_t prefixed = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
    if (prefixed && (base == prefixed || base == 0)) base = prefixed, p += 2;
  }
  if (base == 0) base = 10;
  if (p >= s.size()) return std::nullopt;
  int64_t v = 0;
  for (size_t k = p; k < s.size(); ++k) {
    if (s[k] == '_' && k > p && k + 1 < s.size() && s[k + 1] != '_') continue;
    const char c = static_cast<char>(s[k] | 0x20);
    const int64_t d = std::isdigit(static_cast<unsigned char>(s[k])) ? s[k] - '0' : (c >= 'a' && c <= 'z') ? c - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) return std::nullopt;
  }
  return neg ? -v : v;
}

Value f_float(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("float", a, {{"default", Value::number(0.0)}});
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_undefined()) throw_undefined(v);
  if (v.is_string()) {
    if (auto d = parse_py_float(v.str())) return Value::number(*d);
  }
  return p[0];
}

Value f_int(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("int", a, {{"default", Value::integer(0)}, {"base", Value::integer(10)}});
  if (v.is_integral()) return Value::integer(v.i());
  if (v.is_float()) {
    const double d = v.as_double();
    if (std::isnan(d) || std::isinf(d)) return p[0];
    return Value::integer(static_cast<int64_t>(std::trunc(d)));
  }
  if (v.is_undefined()) throw_undefined(v);
  if (v.is_string()) {
    if (auto i = parse_py_int(v.str(), to_int_arg(p[1], "base"))) return Value::integer(*i);
    if (auto d = parse_py_float(v.str()); d && std::isfinite(*d)) return Value::integer(static_cast<int64_t>(std::trunc(*d)));
  }
  return p[0];
}

Value f_indent(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("indent", a, {{"width", Value::integer(4)}, {"first", Value::boolean(false)}, {"blank", Value::boolean(false)}});
  const std::string indention = p[0].is_string() ? p[0].str() : std::string(std::max<int64_t>(0, to_int_arg(p[0], "width")), ' ');
  if (v.is_undefined()) throw_undefined(v);
  if (!v.is_string()) throw Error("unsupported operand type(s) for +=: '" + type_name(v) + "' and 'str'");
  std::string s = v.str() + "\n";
  std::vector<std::string> lines = py_splitlines(s, false);
  std::string rv;
  if (truthy(p[2])) {
    for (size_t k = 0; k < lines.size(); ++k) rv += (k ? "\n" + indention : "") + lines[k];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t k = 1; k < lines.size(); ++k) rv += "\n" + (lines[k].empty() ? "" : indention + lines[k]);
  }
  if (truthy(p[1])) rv = indention + rv;
  return str_value(std::move(rv));
}

Value f_items(Interp&, const Value& v, CallArgs& a) {
  bind("items", a, {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) throw Error("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, e] : v.dict_data().items) out.push_back(Value::list({k, e}, true));
  return Value::list(std::move(out));
}

Value f_join(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("join", a, {{"d", Value::string("")}, {"attribute", Value::none()}});
  const std::string sep = to_str(p[0]);
  const std::vector<Value> parts = is_none_like(p[1]) ? std::vector<Value>{} : attribute_parts(p[1]);
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(parts.empty() ? item : lookup_path(item, parts, Value()));
  }
  return str_value(std::move(out));
}

Value f_length(Interp&, const Value& v, CallArgs& a) {
  bind("length", a, {});
  return Value::integer(static_cast<int64_t>(py_len(v)));
}

Value f_list(Interp&, const Value& v, CallArgs& a) { return bind("list", a, {}), Value::list(iterate(v)); }

Value f_map(Interp& in, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  if (a.pos.empty()) {
    const Value* attribute = nullptr;
    Value default_value;
    for (const auto& [k, e] : a.kw) {
      if (k == "attribute") {
        attribute = &e;
      } else if (k == "default") {
        default_value = e;
      } else {
        throw Error("Unexpected keyword argument '" + k + "'");
      }
    }
    if (!attribute) throw Error("map requires a filter argument");
    const std::vector<Value> parts = attribute_parts(*attribute);
    if (truthy(v)) {
      for (const Value& item : iterate(v)) out.push_back(lookup_path(item, parts, default_value));
    }
    return Value::list(std::move(out));
  }
  const std::string name = to_str(a.pos[0]);
  const FilterFn fn = find_filter(name);
  if (!fn) throw Error("No filter named '" + name + "'.");
  if (truthy(v)) {
    for (const Value& item : iterate(v)) {
      CallArgs rest{std::vector<Value>(a.pos.begin() + 1, a.pos.end()), a.kw};
      out.push_back(fn(in, item, rest));
    }
  }
  return Value::list(std::move(out));
}

Value min_max(const Value& v, CallArgs& a, bool want_max) {
  const Args p = bind(want_max ? "max" : "min", a, {{"case_sensitive", Value::boolean(false)}, {"attribute", Value::none()}});
  const std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const KeyGetter key = make_key(p[1], truthy(p[0]), false);
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t k = 1; k < items.size(); ++k) {
    Value kk = key(items[k]);
    const int c = py_compare(kk, best_key, want_max ? ">" : "<");
    if (want_max ? c > 0 : c < 0) best = k, best_key = std::move(kk);
  }
  return items[best];
}
Value f_max(Interp&, const Value& v, CallArgs& a) { return min_max(v, a, true); }
Value f_min(Interp&, const Value& v, CallArgs& a) { return min_max(v, a, false); }

Value f_format(Interp&, const Value& v, CallArgs& a) {
  if (!a.pos.empty() && !a.kw.empty()) throw Error("can't handle positional and keyword arguments at the same time");
  if (!a.kw.empty()) {
    auto d = std::make_shared<DictData>();
    for (const auto& [k, e] : a.kw) d->set(Value::string(k), e);
    return str_value(percent_format(to_str(v), Value::dict(d)));
  }
  return str_value(percent_format(to_str(v), Value::list(a.pos, true)));
}

Value f_replace(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("replace", a, {{"old", Value(), true}, {"new", Value(), true}, {"count", Value::none()}});
  const int64_t count = p[2].is_none() ? -1 : to_int_arg(p[2], "count");
  return str_value(py_replace(to_str(v), to_str(p[0]), to_str(p[1]), count));
}

Value f_reverse(Interp&, const Value& v, CallArgs& a) {
  bind("reverse", a, {});
  if (v.is_string()) return slice(v, Value::none(), Value::none(), Value::integer(-1));
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_round(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("round", a, {{"precision", Value::integer(0)}, {"method", Value::string("common")}});
  const std::string method = to_str(p[1]);
  if (method != "common" && method != "ceil" && method != "floor") throw Error("method must be common, ceil or floor");
  const int64_t prec = to_int_arg(p[0], "precision");
  if (v.is_undefined()) throw_undefined(v);
  if (!v.is_number()) throw Error("type " + type_name(v) + " doesn't define __round__ method");
  const double x = v.as_double();
  if (method != "common") {
    const double scale = std::pow(10.0, static_cast<double>(prec));
    return Value::number((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  }
  if (v.is_integral() && prec >= 0) return Value::integer(v.i());
  if (!std::isfinite(x)) return Value::number(x);
  if (prec < 0) {
    const double scale = std::pow(10.0, static_cast<double>(-prec));
    const double r = std::nearbyint(x / scale) * scale;
    return v.is_integral() ? Value::integer(static_cast<int64_t>(r)) : Value::number(r);
  }
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::min<int64_t>(prec, 300)), x);
  return Value::number(std::strtod(buf, nullptr));
}

// select / reject / selectattr / rejectattr
Value select_impl(Interp& in, const Value& v, CallArgs& a, bool want, bool by_attr) {
  std::vector<Value> parts;
  size_t off = 0;
  if (by_attr) {
    if (a.pos.empty()) throw Error("Missing parameter for attribute name");
    parts = attribute_parts(a.pos[0]);
    off = 1;
  }
  TestFn test = nullptr;
  CallArgs test_args;
  if (a.pos.size() > off) {
    const std::string name = to_str(a.pos[off]);
    test = find_test(name);
    if (!test) throw Error("No test named '" + name + "'.");
    test_args.pos.assign(a.pos.begin() + static_cast<long>(off) + 1, a.pos.end());
    test_args.kw = a.kw;
  }
  std::vector<Value> out;
  if (!truthy(v)) return Value::list({});
  for (const Value& item : iterate(v)) {
    const Value x = by_attr ? lookup_path(item, parts, Value()) : item;
    CallArgs call_args = test_args;
    const bool ok = test ? test(in, x, call_args) : truthy(x);
    if (ok == want) out.push_back(item);
  }
  return Value::list(std::move(out));
}
Value f_select(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, false); }
Value f_reject(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, false); }
Value f_selectattr(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, true, true); }
Value f_rejectattr(Interp& in, const Value& v, CallArgs& a) { return select_impl(in, v, a, false, true); }

Value f_sort(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("sort", a, {{"reverse", Value::boolean(false)}, {"case_sensitive", Value::boolean(false)},
                                  {"attribute", Value::none()}});
  std::vector<Value> items = iterate(v);
  const KeyGetter key = make_key(p[2], truthy(p[1]), true);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t k = 0; k < items.size(); ++k) keyed.emplace_back(key(items[k]), k);
  const bool rev = truthy(p[0]);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return rev ? py_compare(y.first, x.first) < 0 : py_compare(x.first, y.first) < 0;
  });
  std::vector<Value> out;
  for (const auto& kv : keyed) out.push_back(items[kv.second]);
  return Value::list(std::move(out));
}

Value f_sum(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("sum", a, {{"attribute", Value::none()}, {"start", Value::integer(0)}});
  const std::vector<Value> parts = is_none_like(p[0]) ? std::vector<Value>{} : attribute_parts(p[0]);
  Value total = p[1];
  for (const Value& item : iterate(v)) total = binary_op(BinOp::Add, total, parts.empty() ? item : lookup_path(item, parts, Value()));
  return total;
}

Value f_title(Interp&, const Value& v, CallArgs& a) {
  bind("title", a, {});
  const std::u32string s = utf8_decode(to_str(v));
  const auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
  std::u32string out;
  for (size_t k = 0; k < s.size();) {
    size_t e = k;
    const bool sep = is_sep(s[k]);
    while (e < s.size() && is_sep(s[e]) == sep) ++e;
    for (size_t j = k; j < e; ++j) out += (j == k) ? py_upper(s[j]) : py_lower(s[j]);
    k = e;
  }
  return str_value(utf8_encode(out));
}

Value f_tojson(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("tojson", a, {{"ensure_ascii", Value::boolean(false)}, {"indent", Value::none()},
                                    {"separators", Value::none()}, {"sort_keys", Value::boolean(false)}});
  JsonOptions o;
  o.ensure_ascii = truthy(p[0]);
  o.sort_keys = truthy(p[3]);
  if (p[1].is_string()) {
    o.indent = p[1].str();
  } else if (p[1].is_integral()) {
    o.indent = std::string(std::max<int64_t>(0, p[1].i()), ' ');
  } else if (!p[1].is_none()) {
    throw Error("tojson: indent must be an int or a string");
  }
  if (o.indent) o.item_sep = ",";
  if (!p[2].is_none()) {
    const std::vector<Value> seps = iterate(p[2]);
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string()) throw Error("tojson: separators must be a pair of strings");
    o.item_sep = seps[0].str();
    o.key_sep = seps[1].str();
  }
  return str_value(to_json(v, o));
}

Value f_trim(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("trim", a, {{"chars", Value::none()}});
  return str_value(py_strip(to_str(v), is_none_like(p[0]) ? std::nullopt : std::optional<std::string>(to_str(p[0])), true, true));
}

Value f_truncate(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("truncate", a, {{"length", Value::integer(255)}, {"killwords", Value::boolean(false)},
                                      {"end", Value::string("...")}, {"leeway", Value::integer(5)}});
  const std::u32string s = utf8_decode(to_str(v));
  const std::u32string end = utf8_decode(to_str(p[2]));
  const int64_t length = to_int_arg(p[0], "length");
  const int64_t leeway = p[3].is_none() ? 5 : to_int_arg(p[3], "leeway");
  if (length < static_cast<int64_t>(end.size())) throw Error("expected length >= " + std::to_string(end.size()) + ", got " + std::to_string(length));
  if (static_cast<int64_t>(s.size()) <= length + leeway) return str_value(utf8_encode(s));
  std::u32string head = s.substr(0, static_cast<size_t>(length) - end.size());
  if (!truthy(p[1])) {
    const size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head = head.substr(0, sp);
  }
  return str_value(utf8_encode(head + end));
}

Value f_unique(Interp&, const Value& v, CallArgs& a) {
  const Args p = bind("unique", a, {{"case_sensitive", Value::boolean(false)}, {"attribute", Value::none()}});
  const KeyGetter key = make_key(p[1], truthy(p[0]), false);
  std::vector<Value> seen, out;
  for (const Value& item : iterate(v)) {
    Value k = key(item);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, k); })) continue;
    seen.push_back(std::move(k));
    out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value f_wordcount(Interp&, const Value& v, CallArgs& a) {
  bind("wordcount", a, {});
  int64_t n = 0;
  bool in_word = false;
  const std::string s = to_str(v);
  for (size_t pos = 0; pos < s.size();) {
    const char32_t c = utf8_next(s, pos);
    const bool w = c == '_' || (c < 0x80 ? std::isalnum(static_cast<int>(c)) != 0 : !py_isspace(c));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

constexpr FilterEntry kFilters[] = {
    {"abs", f_abs},           {"attr", f_attr},         {"batch", f_batch},       {"capitalize", f_capitalize},
    {"center", f_center},     {"count", f_length},      {"d", f_default},         {"default", f_default},
    {"dictsort", f_dictsort}, {"e", f_escape},          {"escape", f_escape},     {"first", f_first},
    {"float", f_float},       {"format", f_format},     {"indent", f_indent},     {"int", f_int},
    {"items", f_items},       {"join", f_join},         {"last", f_last},         {"length", f_length},
    {"list", f_list},         {"lower", f_lower},       {"map", f_map},           {"max", f_max},
    {"min", f_min},           {"reject", f_reject},     {"rejectattr", f_rejectattr}, {"replace", f_replace},
    {"reverse", f_reverse},   {"round", f_round},       {"safe", f_safe},         {"select", f_select},
    {"selectattr", f_selectattr}, {"sort", f_sort},     {"string", f_string},     {"sum", f_sum},
    {"title", f_title},       {"tojson", f_tojson},     {"trim", f_trim},         {"truncate", f_truncate},
    {"unique", f_unique},     {"upper", f_upper},       {"wordcount", f_wordcount},
};

// ---- tests ----

Value one_arg(const char* name, CallArgs& a) { return bind(name, a, {{"other", Value(), true}})[0]; }

bool t_defined(Interp&, const Value& v, CallArgs& a) { return bind("defined", a, {}), !v.is_undefined(); }
bool t_undefined(Interp&, const Value& v, CallArgs& a) { return bind("undefined", a, {}), v.is_undefined(); }
bool t_none(Interp&, const Value& v, CallArgs& a) { return bind("none", a, {}), v.is_none(); }
bool t_boolean(Interp&, const Value& v, CallArgs& a) { return bind("boolean", a, {}), v.is_bool(); }
bool t_true(Interp&, const Value& v, CallArgs& a) { return bind("true", a, {}), v.is_bool() && v.b(); }
bool t_false(Interp&, const Value& v, CallArgs& a) { return bind("false", a, {}), v.is_bool() && !v.b(); }
bool t_integer(Interp&, const Value& v, CallArgs& a) { return bind("integer", a, {}), v.is_int(); }
bool t_float(Interp&, const Value& v, CallArgs& a) { return bind("float", a, {}), v.is_float(); }
bool t_number(Interp&, const Value& v, CallArgs& a) { return bind("number", a, {}), v.is_number(); }
bool t_string(Interp&, const Value& v, CallArgs& a) { return bind("string", a, {}), v.is_string(); }
bool t_mapping(Interp&, const Value& v, CallArgs& a) { return bind("mapping", a, {}), v.is_dict(); }
bool t_iterable(Interp&, const Value& v, CallArgs& a) {
  bind("iterable", a, {});
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict() ||
         (v.is_object() && v.obj().type_name() == "LoopContext");
}
bool t_sequence(Interp&, const Value& v, CallArgs& a) {
  bind("sequence", a, {});
  return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
}
bool t_callable(Interp&, const Value& v, CallArgs& a) {
  bind("callable", a, {});
  return v.is_function() || v.is_undefined() || (v.is_object() && v.obj().type_name() == "LoopContext");
}
bool t_escaped(Interp&, const Value&, CallArgs& a) { return bind("escaped", a, {}), false; }
bool t_lower(Interp&, const Value& v, CallArgs& a) {
  bind("lower", a, {});
  const std::string s = to_str(v);
  return py_lower(s) == s && py_upper(s) != s;
}
bool t_upper(Interp&, const Value& v, CallArgs& a) {
  bind("upper", a, {});
  const std::string s = to_str(v);
  return py_upper(s) == s && py_lower(s) != s;
}
int64_t int_operand(const Value& v) {
  if (v.is_undefined()) throw_undefined(v);
  if (!v.is_number()) throw Error("unsupported operand type(s) for %: '" + type_name(v) + "' and 'int'");
  return v.is_integral() ? v.i() : static_cast<int64_t>(v.as_double());
}
bool t_odd(Interp&, const Value& v, CallArgs& a) {
  bind("odd", a, {});
  if (v.is_float()) return std::fmod(std::fabs(v.as_double()), 2.0) == 1.0;
  return (int_operand(v) % 2 + 2) % 2 == 1;
}
bool t_even(Interp&, const Value& v, CallArgs& a) {
  bind("even", a, {});
  if (v.is_float()) return std::fmod(v.as_double(), 2.0) == 0.0;
  return int_operand(v) % 2 == 0;
}
bool t_divisibleby(Interp&, const Value& v, CallArgs& a) {
  const Value n = bind("divisibleby", a, {{"num", Value(), true}})[0];
  return py_equal(binary_op(BinOp::Mod, v, n), Value::integer(0));
}
bool t_eq(Interp&, const Value& v, CallArgs& a) { return py_equal(v, one_arg("eq", a)); }
bool t_ne(Interp&, const Value& v, CallArgs& a) { return !py_equal(v, one_arg("ne", a)); }
bool t_lt(Interp&, const Value& v, CallArgs& a) { return py_compare(v, one_arg("lt", a), "<") < 0; }
bool t_le(Interp&, const Value& v, CallArgs& a) { return py_compare(v, one_arg("le", a), "<=") <= 0; }
bool t_gt(Interp&, const Value& v, CallArgs& a) { return py_compare(v, one_arg("gt", a), ">") > 0; }
bool t_ge(Interp&, const Value& v, CallArgs& a) { return py_compare(v, one_arg("ge", a), ">=") >= 0; }
bool t_in(Interp&, const Value& v, CallArgs& a) { return contains(bind("in", a, {{"seq", Value(), true}})[0], v); }
bool t_sameas(Interp&, const Value& v, CallArgs& a) {
  const Value o = one_arg("sameas", a);
  if (v.kind() != o.kind()) return false;
  switch (v.kind()) {
    case Value::Kind::None:
    case Value::Kind::Undefined: return true;
    case Value::Kind::Bool: return v.b() == o.b();
    case Value::Kind::Int: return v.i() == o.i();
    case Value::Kind::Float: return false;
    default: return v.identity() == o.identity();
  }
}
bool t_filter(Interp&, const Value& v, CallArgs& a) { return bind("filter", a, {}), v.is_string() && find_filter(v.str()); }
bool t_test(Interp&, const Value& v, CallArgs& a) { return bind("test", a, {}), v.is_string() && find_test(v.str()); }

struct TestEntry {
  std::string_view name;
  TestFn fn;
};

constexpr TestEntry kTests[] = {
    {"!=", t_ne},          {"<", t_lt},          {"<=", t_le},          {"==", t_eq},          {">", t_gt},
    {">=", t_ge},          {"boolean", t_boolean}, {"callable", t_callable}, {"defined", t_defined},
    {"divisibleby", t_divisibleby}, {"eq", t_eq}, {"equalto", t_eq},    {"escaped", t_escaped}, {"even", t_even},
    {"false", t_false},    {"filter", t_filter}, {"float", t_float},    {"ge", t_ge},          {"greaterthan", t_gt},
    {"gt", t_gt},          {"in", t_in},         {"integer", t_integer}, {"iterable", t_iterable}, {"le", t_le},
    {"lessthan", t_lt},    {"lower", t_lower},   {"lt", t_lt},          {"mapping", t_mapping}, {"ne", t_ne},
    {"none", t_none},      {"number", t_number}, {"odd", t_odd},        {"sameas", t_sameas},  {"sequence", t_sequence},
    {"string", t_string},  {"test", t_test},     {"true", t_true},      {"undefined", t_undefined}, {"upper", t_upper},
};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const auto& f : kFilters) {
    if (f.name == name) return f.fn;
  }
  return nullptr;
}

TestFn find_test(std::string_view name) {
  for (const auto& t : kTests) {
    if (t.name == name) return t.fn;
  }
  return nullptr;
}

}  // namespace tandem::chat::jinja
