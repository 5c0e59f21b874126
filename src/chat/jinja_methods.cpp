// Methods of str / dict / list values, the global functions, and the namespace() and loop objects.
#include <chrono>
#include <ctime>
#include <stdexcept>

#include "chat/jinja_builtins.h"
#include "chat/jinja_interp.h"
#include "chat/jinja_ops.h"
#include "chat/jinja_text.h"

namespace tandem::chat::jinja {

std::vector<Value> bind_args(std::string_view fn_name, const CallArgs& args, const std::vector<Param>& params) {
  const std::string who = std::string(fn_name) + "()";
  if (args.pos.size() > params.size()) {
    throw Error(who + " takes at most " + std::to_string(params.size()) + " argument(s) (" +
                std::to_string(args.pos.size()) + " given)");
  }
  std::vector<Value> out(params.size());
  std::vector<bool> given(params.size(), false);
  for (size_t k = 0; k < args.pos.size(); ++k) {
    out[k] = args.pos[k];
    given[k] = true;
  }
  for (const auto& [name, v] : args.kw) {
    size_t k = 0;
    while (k < params.size() && name != params[k].name) ++k;
    if (k == params.size()) throw Error(who + " got an unexpected keyword argument '" + name + "'");
    if (given[k]) throw Error(who + " got multiple values for argument '" + name + "'");
    out[k] = v;
    given[k] = true;
  }
  for (size_t k = 0; k < params.size(); ++k) {
    if (given[k]) continue;
    if (params[k].required) throw Error(who + " missing required argument '" + params[k].name + "'");
    out[k] = params[k].default_value;
  }
  return out;
}

namespace {

const std::string& need_str(const Value& v, std::string_view what) {
  if (v.is_undefined()) throw_undefined(v);
  if (!v.is_string()) throw Error(std::string(what) + " must be str, not " + type_name(v));
  return v.str();
}

std::optional<std::string> opt_str(const Value& v, std::string_view what) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  return need_str(v, what);
}

int64_t need_int(const Value& v, std::string_view what) {
  if (v.is_undefined()) throw_undefined(v);
  if (!v.is_integral()) throw Error(std::string(what) + ": '" + type_name(v) + "' object cannot be interpreted as an integer");
  return v.i();
}

Value str_list(std::vector<std::string> parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (auto& p : parts) items.push_back(Value::string(std::move(p)));
  return Value::list(std::move(items));
}

// s[start:end] in code points, for the optional start/end arguments of find/count/startswith.
std::string sub_range(const std::string& s, const Value& start, const Value& end) {
  if ((start.is_none() || start.is_undefined()) && (end.is_none() || end.is_undefined())) return s;
  return slice(Value::string(s), start, end, Value::none()).str();
}

int64_t cp_index(const std::string& s, size_t byte_pos) {
  return static_cast<int64_t>(utf8_length(std::string_view(s).substr(0, byte_pos)));
}

template <typename Pred>
bool all_chars(const std::string& s, Pred pred) {
  if (s.empty()) return false;
  for (size_t pos = 0; pos < s.size();) {
    if (!pred(utf8_next(s, pos))) return false;
  }
  return true;
}

bool is_alpha(char32_t c) { return (c < 0x80) ? ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') : py_is_cased(c); }
bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }

std::string pad_str(const std::string& s, int64_t width, const std::string& fill, char align) {
  const int64_t len = static_cast<int64_t>(utf8_length(s));
  if (width <= len) return s;
  const int64_t marg = width - len;
  int64_t left = 0;
  if (align == '^') left = marg / 2 + (marg & width & 1);
  if (align == '>') left = marg;
  std::string out;
  for (int64_t k = 0; k < left; ++k) out += fill;
  out += s;
  for (int64_t k = 0; k < marg - left; ++k) out += fill;
  return out;
}

Value string_method(const std::string& s, std::string_view name, CallArgs& a) {
  const auto args = [&](std::vector<Param> params) { return bind_args("str." + std::string(name), a, params); };
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const auto v = args({{"chars", Value::none()}});
    return Value::string(py_strip(s, opt_str(v[0], "strip arg"), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    const auto v = args({{"sep", Value::none()}, {"maxsplit", Value::integer(-1)}});
    const auto sep = opt_str(v[0], "sep");
    const int64_t maxsplit = need_int(v[1], "maxsplit");
    try {
      return str_list(name == "split" ? py_split(s, sep, maxsplit) : py_rsplit(s, sep, maxsplit));
    } catch (const std::invalid_argument&) {
      throw Error("empty separator");
    }
  }
  if (name == "splitlines") return str_list(py_splitlines(s, truthy(args({{"keepends", Value::boolean(false)}})[0])));
  if (name == "startswith" || name == "endswith") {
    const auto v = args({{"prefix", Value(), true}, {"start", Value::none()}, {"end", Value::none()}});
    const std::string sub = sub_range(s, v[1], v[2]);
    std::vector<Value> options = v[0].is_tuple() ? v[0].list().items : std::vector<Value>{v[0]};
    for (const Value& o : options) {
      const std::string& p = need_str(o, std::string(name) + " first arg");
      const bool hit = name == "startswith" ? sub.compare(0, p.size(), p) == 0
                                            : (sub.size() >= p.size() && sub.compare(sub.size() - p.size(), p.size(), p) == 0);
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "upper") return args({}), Value::string(py_upper(s));
  if (name == "lower" || name == "casefold") return args({}), Value::string(py_lower(s));
  if (name == "title") return args({}), Value::string(py_title(s));
  if (name == "capitalize") return args({}), Value::string(py_capitalize(s));
  if (name == "swapcase") {
    args({});
    std::string out;
    for (size_t pos = 0; pos < s.size();) {
      const char32_t c = utf8_next(s, pos);
      utf8_append(out, py_upper(c) != c ? py_upper(c) : py_lower(c));
    }
    return Value::string(out);
  }
  if (name == "replace") {
    const auto v = args({{"old", Value(), true}, {"new", Value(), true}, {"count", Value::integer(-1)}});
    return Value::string(py_replace(s, need_str(v[0], "replace() argument 1"), need_str(v[1], "replace() argument 2"),
                                    need_int(v[2], "count")));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    const auto v = args({{"sub", Value(), true}, {"start", Value::none()}, {"end", Value::none()}});
    const std::string& sub = need_str(v[0], "must be str");
    const std::string hay = sub_range(s, v[1], v[2]);
    const size_t hit = (name[0] == 'r') ? hay.rfind(sub) : hay.find(sub);
    if (hit == std::string::npos) {
      if (name.find("index") != std::string_view::npos) throw Error("substring not found");
      return Value::integer(-1);
    }
    int64_t offset = 0;
    if (v[1].is_integral()) {
      offset = v[1].i();
      if (offset < 0) offset = std::max<int64_t>(0, offset + static_cast<int64_t>(utf8_length(s)));
    }
    return Value::integer(offset + cp_index(hay, hit));
  }
  if (name == "count") {
    const auto v = args({{"sub", Value(), true}, {"start", Value::none()}, {"end", Value::none()}});
    return Value::integer(static_cast<int64_t>(py_count(sub_range(s, v[1], v[2]), need_str(v[0], "must be str"))));
  }
  if (name == "join") {
    const auto v = args({{"iterable", Value(), true}});
    std::string out;
    size_t k = 0;
    for (const Value& item : iterate(v[0])) {
      if (!item.is_string()) {
        throw Error("sequence item " + std::to_string(k) + ": expected str instance, " + type_name(item) + " found");
      }
      if (k++) out += s;
      out += item.str();
    }
    return Value::string(std::move(out));
  }
  if (name == "format") return Value::string(str_format(s, a));
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string& p = need_str(args({{"affix", Value(), true}})[0], name);
    if (name == "removeprefix" && s.compare(0, p.size(), p) == 0) return Value::string(s.substr(p.size()));
    if (name == "removesuffix" && !p.empty() && s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0) {
      return Value::string(s.substr(0, s.size() - p.size()));
    }
    return Value::string(s);
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    const auto v = args({{"width", Value(), true}, {"fillchar", Value::string(" ")}});
    const char align = name == "center" ? '^' : (name == "ljust" ? '<' : '>');
    return Value::string(pad_str(s, need_int(v[0], "width"), need_str(v[1], "fillchar"), align));
  }
  if (name == "zfill") {
    const int64_t width = need_int(args({{"width", Value(), true}})[0], "width");
    const int64_t len = static_cast<int64_t>(utf8_length(s));
    if (width <= len) return Value::string(s);
    const size_t sign = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    return Value::string(s.substr(0, sign) + std::string(width - len, '0') + s.substr(sign));
  }
  if (name == "isspace") return args({}), Value::boolean(all_chars(s, py_isspace));
  if (name == "isalpha") return args({}), Value::boolean(all_chars(s, is_alpha));
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") return args({}), Value::boolean(all_chars(s, is_digit));
  if (name == "isalnum") return args({}), Value::boolean(all_chars(s, [](char32_t c) { return is_alpha(c) || is_digit(c); }));
  if (name == "islower" || name == "isupper") {
    args({});
    bool cased = false;
    for (size_t pos = 0; pos < s.size();) {
      const char32_t c = utf8_next(s, pos);
      if (!py_is_cased(c)) continue;
      if ((name == "islower") ? py_lower(c) != c : py_upper(c) != c) return Value::boolean(false);
      cased = true;
    }
    return Value::boolean(cased);
  }
  if (name == "istitle") return args({}), Value::boolean(!s.empty() && py_title(s) == s && py_lower(s) != s);
  throw Error("str method '" + std::string(name) + "' is not supported");
}

constexpr std::string_view kStrMethods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper", "lower",
    "casefold", "title", "capitalize", "swapcase", "replace", "find", "rfind", "index", "rindex", "count", "join",
    "format", "removeprefix", "removesuffix", "center", "ljust", "rjust", "zfill", "isspace", "isalpha", "isdigit",
    "isdecimal", "isnumeric", "isalnum", "islower", "isupper", "istitle"};
constexpr std::string_view kDictUnsafe[] = {"clear", "pop", "popitem", "setdefault", "update"};
constexpr std::string_view kListUnsafe[] = {"clear", "extend", "insert", "pop", "remove", "reverse", "sort"};

template <size_t N>
bool in_list(const std::string_view (&names)[N], std::string_view name) {
  for (std::string_view n : names) {
    if (n == name) return true;
  }
  return false;
}

Value unsafe(std::string_view name, const Value& obj) {
  return Value::undefined("access to attribute '" + std::string(name) + "' of '" + type_name(obj) +
                          "' object is unsafe.");
}

Value bound(const Value& obj, std::string_view name, Value (*impl)(const Value&, std::string_view, CallArgs&)) {
  std::string method(name);
  return Value::function(type_name(obj) + "." + method,
                         [obj, method, impl](Interp&, CallArgs& a) { return impl(obj, method, a); });
}

Value dict_method(const Value& d, std::string_view name, CallArgs& a) {
  const auto args = [&](std::vector<Param> params) { return bind_args("dict." + std::string(name), a, params); };
  const auto& items = d.dict_data().items;
  if (name == "get") {
    const auto v = args({{"key", Value(), true}, {"default", Value::none()}});
    const Value* found = d.dict_data().find(v[0]);
    return found ? *found : v[1];
  }
  std::vector<Value> out;
  args({});
  if (name == "copy") {
    auto data = std::make_shared<DictData>(d.dict_data());
    return Value::dict(std::move(data));
  }
  for (const auto& [k, v] : items) {
    if (name == "items") {
      out.push_back(Value::list({k, v}, true));
    } else {
      out.push_back(name == "keys" ? k : v);
    }
  }
  return Value::list(std::move(out));
}

Value list_method(const Value& l, std::string_view name, CallArgs& a) {
  const auto args = [&](std::vector<Param> params) { return bind_args(type_name(l) + "." + std::string(name), a, params); };
  auto& items = l.list().items;
  if (name == "append") {
    items.push_back(args({{"object", Value(), true}})[0]);
    return Value::none();
  }
  if (name == "copy") return args({}), Value::list(items);
  const Value x = args({{"value", Value(), true}})[0];
  int64_t n = 0;
  for (size_t k = 0; k < items.size(); ++k) {
    if (!py_equal(items[k], x)) continue;
    if (name == "index") return Value::integer(static_cast<int64_t>(k));
    ++n;
  }
  if (name == "index") throw Error(repr(x) + " is not in list");
  return Value::integer(n);
}

}  // namespace

std::optional<Value> get_method(const Value& obj, std::string_view name) {
  switch (obj.kind()) {
    case Value::Kind::String:
      if (!in_list(kStrMethods, name)) return std::nullopt;
      return bound(obj, name, [](const Value& o, std::string_view n, CallArgs& a) { return string_method(o.str(), n, a); });
    case Value::Kind::Dict:
      if (in_list(kDictUnsafe, name)) return unsafe(name, obj);
      if (name != "get" && name != "items" && name != "keys" && name != "values" && name != "copy") return std::nullopt;
      return bound(obj, name, dict_method);
    case Value::Kind::List:
      if (!obj.is_tuple() && in_list(kListUnsafe, name)) return unsafe(name, obj);
      if (name == "count" || name == "index" || (!obj.is_tuple() && (name == "append" || name == "copy"))) {
        return bound(obj, name, list_method);
      }
      return std::nullopt;
    default: return std::nullopt;
  }
}

// ---- objects ----

std::optional<Value> LoopContext::get_attr(std::string_view name) const {
  const auto& items = shared_->items;
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t i = static_cast<int64_t>(index_);
  if (name == "index") return Value::integer(i + 1);
  if (name == "index0") return Value::integer(i);
  if (name == "revindex") return Value::integer(n - i);
  if (name == "revindex0") return Value::integer(n - i - 1);
  if (name == "first") return Value::boolean(i == 0);
  if (name == "last") return Value::boolean(i == n - 1);
  if (name == "length") return Value::integer(n);
  if (name == "depth") return Value::integer(1);
  if (name == "depth0") return Value::integer(0);
  if (name == "previtem") return i > 0 ? items[index_ - 1] : Value::undefined("there is no previous item");
  if (name == "nextitem") return i + 1 < n ? items[index_ + 1] : Value::undefined("there is no next item");
  if (name == "cycle") {
    const size_t at = index_;
    return Value::function("loop.cycle", [at](Interp&, CallArgs& a) {
      if (a.pos.empty()) throw Error("no items for cycling given");
      return a.pos[at % a.pos.size()];
    });
  }
  if (name == "changed") {
    auto shared = shared_;
    return Value::function("loop.changed", [shared](Interp&, CallArgs& a) {
      const Value now = Value::list(a.pos, true);
      if (shared->last_changed && py_equal(Value::list(*shared->last_changed, true), now)) return Value::boolean(false);
      shared->last_changed = a.pos;
      return Value::boolean(true);
    });
  }
  return std::nullopt;
}

std::string LoopContext::repr() const {
  return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(shared_->items.size()) + ">";
}

std::optional<Value> Namespace::get_attr(std::string_view name) const {
  if (const Value* v = attrs.find(name)) return *v;
  return std::nullopt;
}

bool Namespace::set_attr(std::string_view name, Value value) {
  attrs.set(Value::string(std::string(name)), std::move(value));
  return true;
}

std::string Namespace::repr() const {
  auto copy = std::make_shared<DictData>(attrs);
  return "<Namespace " + jinja::repr(Value::dict(copy)) + ">";
}

// ---- globals ----

namespace {

// dict(*args, **kwargs): a mapping or an iterable of pairs, then keywords.
std::shared_ptr<DictData> build_dict(std::string_view fn, const CallArgs& a) {
  if (a.pos.size() > 1) throw Error(std::string(fn) + " expected at most 1 argument, got " + std::to_string(a.pos.size()));
  auto data = std::make_shared<DictData>();
  if (!a.pos.empty()) {
    const Value& src = a.pos[0];
    if (src.is_dict()) {
      data->items = src.dict_data().items;
    } else {
      for (const Value& pair : iterate(src)) {
        const std::vector<Value> kv = iterate(pair);
        if (kv.size() != 2) throw Error("dictionary update sequence element has length " + std::to_string(kv.size()) + "; 2 is required");
        data->set(kv[0], kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kw) data->set(Value::string(k), v);
  return data;
}

Value global_range(Interp&, CallArgs& a) {
  if (!a.kw.empty()) throw Error("range() takes no keyword arguments");
  if (a.pos.empty() || a.pos.size() > 3) throw Error("range expected 1 to 3 arguments, got " + std::to_string(a.pos.size()));
  int64_t start = 0, stop = 0, step = 1;
  if (a.pos.size() == 1) {
    stop = need_int(a.pos[0], "range()");
  } else {
    start = need_int(a.pos[0], "range()");
    stop = need_int(a.pos[1], "range()");
    if (a.pos.size() == 3) step = need_int(a.pos[2], "range()");
  }
  if (step == 0) throw Error("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
    if (out.size() >= 100000) {
      throw Error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    out.push_back(Value::integer(k));
  }
  return Value::list(std::move(out));
}

}  // namespace

std::vector<std::pair<std::string, Value>> make_globals() {
  std::vector<std::pair<std::string, Value>> g;
  g.emplace_back("range", Value::function("range", global_range));
  g.emplace_back("dict", Value::function("dict", [](Interp&, CallArgs& a) { return Value::dict(build_dict("dict", a)); }));
  g.emplace_back("namespace", Value::function("namespace", [](Interp&, CallArgs& a) {
                   auto ns = std::make_shared<Namespace>();
                   ns->attrs = std::move(*build_dict("Namespace", a));
                   return Value::object(std::move(ns));
                 }));
  g.emplace_back("raise_exception", Value::function("raise_exception", [](Interp&, CallArgs& a) -> Value {
                   const auto v = bind_args("raise_exception", a, {{"message", Value(), true}});
                   Error e(to_str(v[0]));
                   e.raised = true;
                   throw e;
                 }));
  g.emplace_back("strftime_now", Value::function("strftime_now", [](Interp&, CallArgs& a) {
                   const auto v = bind_args("strftime_now", a, {{"format", Value(), true}});
                   const std::string& fmt = need_str(v[0], "strftime() argument 1");
                   const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
                   std::tm tm{};
                   localtime_r(&now, &tm);
                   std::string buf(256 + fmt.size() * 8, '\0');
                   const size_t n = fmt.empty() ? 0 : std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
                   buf.resize(n);
                   return Value::string(buf);
                 }));
  g.emplace_back("joiner", Value::function("joiner", [](Interp&, CallArgs& a) {
                   const auto v = bind_args("joiner", a, {{"sep", Value::string(", ")}});
                   auto used = std::make_shared<bool>(false);
                   const std::string sep = to_str(v[0]);
                   return Value::function("joiner", [used, sep](Interp&, CallArgs&) {
                     if (!*used) {
                       *used = true;
                       return Value::string("");
                     }
                     return Value::string(sep);
                   });
                 }));
  return g;
}

}  // namespace tandem::chat::jinja
