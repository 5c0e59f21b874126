#include "chat/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "chat/jinja_text.h"

namespace tandem::chat::jinja {

namespace {

constexpr int kMaxDepth = 200;

void check_depth(int depth) {
  if (depth > kMaxDepth) throw Error("maximum recursion depth exceeded while converting a nested value");
}

}  // namespace

Value Value::undefined(std::string message) {
  Value v;
  v.ptr_ = std::make_shared<std::string>(std::move(message));
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value Value::boolean(bool b) {
  Value v;
  v.kind_ = Kind::Bool;
  v.b_ = b;
  return v;
}

Value Value::integer(int64_t i) {
  Value v;
  v.kind_ = Kind::Int;
  v.i_ = i;
  return v;
}

Value Value::number(double d) {
  Value v;
  v.kind_ = Kind::Float;
  v.f_ = d;
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.ptr_ = std::make_shared<std::string>(std::move(s));
  return v;
}

Value Value::list(std::vector<Value> items, bool tuple) {
  Value v;
  v.kind_ = Kind::List;
  auto data = std::make_shared<ListData>();
  data->items = std::move(items);
  data->tuple = tuple;
  v.ptr_ = std::move(data);
  return v;
}

Value Value::dict() { return dict(std::make_shared<DictData>()); }

Value Value::dict(std::shared_ptr<DictData> data) {
  Value v;
  v.kind_ = Kind::Dict;
  v.ptr_ = std::move(data);
  return v;
}

Value Value::object(std::shared_ptr<Object> obj) {
  Value v;
  v.kind_ = Kind::Object;
  v.ptr_ = std::move(obj);
  return v;
}

Value Value::function(std::string name, FunctionImpl impl) {
  Value v;
  v.kind_ = Kind::Function;
  v.ptr_ = std::make_shared<Function>(Function{std::move(name), std::move(impl)});
  return v;
}

bool Value::is_tuple() const { return kind_ == Kind::List && list().tuple; }

double Value::as_double() const {
  switch (kind_) {
    case Kind::Bool: return b_ ? 1.0 : 0.0;
    case Kind::Int: return static_cast<double>(i_);
    case Kind::Float: return f_;
    default: return 0.0;
  }
}

const std::string& Value::str() const { return *static_cast<const std::string*>(ptr_.get()); }
ListData& Value::list() const { return *static_cast<ListData*>(ptr_.get()); }
DictData& Value::dict_data() const { return *static_cast<DictData*>(ptr_.get()); }
Object& Value::obj() const { return *static_cast<Object*>(ptr_.get()); }
const Function& Value::fn() const { return *static_cast<const Function*>(ptr_.get()); }

const std::string& Value::undefined_message() const {
  static const std::string kDefault = "value is undefined";
  return ptr_ ? *static_cast<const std::string*>(ptr_.get()) : kDefault;
}

const Value* DictData::find(const Value& key) const {
  for (const auto& [k, v] : items) {
    if (py_equal(k, key)) return &v;
  }
  return nullptr;
}

const Value* DictData::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k.is_string() && k.str() == key) return &v;
  }
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : items) {
    if (py_equal(k, key)) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

bool Object::set_attr(std::string_view, Value) { return false; }

Value from_json(const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null: return Value::none();
    case T::boolean: return Value::boolean(j.get<bool>());
    case T::number_integer: return Value::integer(j.get<int64_t>());
    case T::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case T::number_float: return Value::number(j.get<double>());
    case T::string: return Value::string(j.get<std::string>());
    case T::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return Value::list(std::move(items));
    }
    case T::object: {
      auto data = std::make_shared<DictData>();
      data->items.reserve(j.size());
      for (const auto& [k, v] : j.items()) data->items.emplace_back(Value::string(k), from_json(v));
      return Value::dict(std::move(data));
    }
    default: return Value::none();  // binary / discarded: not produced by JSON text
  }
}

void throw_undefined(const Value& undefined) { throw Error(undefined.undefined_message()); }

std::string type_name(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return "Undefined";
    case Value::Kind::None: return "NoneType";
    case Value::Kind::Bool: return "bool";
    case Value::Kind::Int: return "int";
    case Value::Kind::Float: return "float";
    case Value::Kind::String: return "str";
    case Value::Kind::List: return v.is_tuple() ? "tuple" : "list";
    case Value::Kind::Dict: return "dict";
    case Value::Kind::Object: return v.obj().type_name();
    case Value::Kind::Function: return "function";
  }
  return "object";
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  if (v.is_object()) return "jinja2.utils." + v.obj().type_name() + " object";
  return type_name(v) + " object";
}

namespace {

void repr_into(std::string& out, const Value& v, int depth);

void str_into(std::string& out, const Value& v, int depth) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return;
    case Value::Kind::String: out += v.str(); return;
    default: repr_into(out, v, depth);
  }
}

void repr_into(std::string& out, const Value& v, int depth) {
  check_depth(depth);
  switch (v.kind()) {
    case Value::Kind::Undefined: out += "Undefined"; return;
    case Value::Kind::None: out += "None"; return;
    case Value::Kind::Bool: out += v.b() ? "True" : "False"; return;
    case Value::Kind::Int: out += std::to_string(v.i()); return;
    case Value::Kind::Float: out += py_float_repr(v.as_double()); return;
    case Value::Kind::String: out += py_str_repr(v.str()); return;
    case Value::Kind::List: {
      const ListData& l = v.list();
      out += l.tuple ? '(' : '[';
      for (size_t k = 0; k < l.items.size(); ++k) {
        if (k) out += ", ";
        repr_into(out, l.items[k], depth + 1);
      }
      if (l.tuple && l.items.size() == 1) out += ',';
      out += l.tuple ? ')' : ']';
      return;
    }
    case Value::Kind::Dict: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.dict_data().items) {
        if (!first) out += ", ";
        first = false;
        repr_into(out, k, depth + 1);
        out += ": ";
        repr_into(out, e, depth + 1);
      }
      out += '}';
      return;
    }
    case Value::Kind::Object: out += v.obj().repr(); return;
    case Value::Kind::Function:
      out += v.fn().name.empty() || v.fn().name[0] != '<' ? "<function " + v.fn().name + ">" : v.fn().name;
      return;
  }
}

}  // namespace

std::string to_str(const Value& v) {
  if (v.is_string()) return v.str();
  std::string out;
  str_into(out, v, 0);
  return out;
}

std::string repr(const Value& v) {
  std::string out;
  repr_into(out, v, 0);
  return out;
}

bool truthy(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return false;
    case Value::Kind::Bool: return v.b();
    case Value::Kind::Int: return v.i() != 0;
    case Value::Kind::Float: return v.as_double() != 0.0;
    case Value::Kind::String: return !v.str().empty();
    case Value::Kind::List: return !v.list().items.empty();
    case Value::Kind::Dict: return !v.dict_data().items.empty();
    default: return true;
  }
}

namespace {

bool equal_at(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.i() == b.i();
    return a.as_double() == b.as_double();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::Undefined:
    case Value::Kind::None: return true;
    case Value::Kind::String: return a.str() == b.str();
    case Value::Kind::List: {
      const ListData& x = a.list();
      const ListData& y = b.list();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t k = 0; k < x.items.size(); ++k) {
        if (!equal_at(x.items[k], y.items[k], depth + 1)) return false;
      }
      return true;
    }
    case Value::Kind::Dict: {
      const DictData& x = a.dict_data();
      const DictData& y = b.dict_data();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* other = y.find(k);
        if (!other || !equal_at(v, *other, depth + 1)) return false;
      }
      return true;
    }
    default: return a.identity() == b.identity();
  }
}

}  // namespace

bool py_equal(const Value& a, const Value& b) { return equal_at(a, b, 0); }

int py_compare(const Value& a, const Value& b, std::string_view op) {
  if (a.is_undefined()) throw_undefined(a);
  if (b.is_undefined()) throw_undefined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.i() < b.i() ? -1 : (a.i() > b.i() ? 1 : 0);
    const double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.str().compare(b.str());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto& x = a.list().items;
    const auto& y = b.list().items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (!py_equal(x[k], y[k])) return py_compare(x[k], y[k], op);
    }
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  throw Error("'" + std::string(op) + "' not supported between instances of '" + type_name(a) + "' and '" +
              type_name(b) + "'");
}

size_t py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return utf8_length(v.str());
    case Value::Kind::List: return v.list().items.size();
    case Value::Kind::Dict: return v.dict_data().items.size();
    default: throw Error("object of type '" + type_name(v) + "' has no len()");
  }
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::List: return v.list().items;
    case Value::Kind::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict_data().items.size());
      for (const auto& kv : v.dict_data().items) keys.push_back(kv.first);
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      for (size_t pos = 0; pos < s.size();) {
        const size_t start = pos;
        utf8_next(s, pos);
        chars.push_back(Value::string(s.substr(start, pos - start)));
      }
      return chars;
    }
    default: throw Error("'" + type_name(v) + "' object is not iterable");
  }
}

namespace {

void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  char buf[16];
  for (size_t pos = 0; pos < s.size();) {
    const unsigned char b = static_cast<unsigned char>(s[pos]);
    if (b >= 0x20 && b < 0x7F && b != '"' && b != '\\') {
      out += static_cast<char>(b);
      ++pos;
      continue;
    }
    const size_t start = pos;
    const char32_t c = utf8_next(s, pos);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
      if (c >= 0x10000 && !(c >= 0xDC80 && c <= 0xDCFF)) {
        const char32_t u = c - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 + (u >> 10)),
                      static_cast<unsigned>(0xDC00 + (u & 0x3FF)));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      out.append(s.substr(start, pos - start));
    }
  }
  out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py_float_repr(d);
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Value::Kind::String: return k.str();
    case Value::Kind::Int: return std::to_string(k.i());
    case Value::Kind::Float: return json_float(k.as_double());
    case Value::Kind::Bool: return k.b() ? "true" : "false";
    case Value::Kind::None: return "null";
    default: throw Error("keys must be str, int, float, bool or None, not " + type_name(k));
  }
}

void json_into(std::string& out, const Value& v, const JsonOptions& o, int level) {
  check_depth(level);
  const auto newline = [&](int lvl) {
    out += '\n';
    for (int k = 0; k < lvl; ++k) out += *o.indent;
  };
  switch (v.kind()) {
    case Value::Kind::None: out += "null"; return;
    case Value::Kind::Bool: out += v.b() ? "true" : "false"; return;
    case Value::Kind::Int: out += std::to_string(v.i()); return;
    case Value::Kind::Float: out += json_float(v.as_double()); return;
    case Value::Kind::String: json_string(out, v.str(), o.ensure_ascii); return;
    case Value::Kind::List: {
      const auto& items = v.list().items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      if (o.indent) newline(level + 1);
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) {
          out += o.item_sep;
          if (o.indent) newline(level + 1);
        }
        json_into(out, items[k], o, level + 1);
      }
      if (o.indent) newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      const auto& src = v.dict_data().items;
      if (src.empty()) {
        out += "{}";
        return;
      }
      std::vector<const std::pair<Value, Value>*> items;
      for (const auto& kv : src) items.push_back(&kv);
      if (o.sort_keys) {
        std::stable_sort(items.begin(), items.end(),
                         [](const auto* a, const auto* b) { return py_compare(a->first, b->first) < 0; });
      }
      out += '{';
      if (o.indent) newline(level + 1);
      bool first = true;
      for (const auto* kv : items) {
        if (!first) {
          out += o.item_sep;
          if (o.indent) newline(level + 1);
        }
        first = false;
        json_string(out, json_key(kv->first), o.ensure_ascii);
        out += o.key_sep;
        json_into(out, kv->second, o, level + 1);
      }
      if (o.indent) newline(level);
      out += '}';
      return;
    }
    default: throw Error("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  json_into(out, v, options, 0);
  return out;
}

}  // namespace tandem::chat::jinja
