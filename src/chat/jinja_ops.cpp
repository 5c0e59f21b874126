#include "chat/jinja_ops.h"

#include <cmath>
#include <limits>

#include "chat/jinja_builtins.h"
#include "chat/jinja_text.h"

namespace tandem::chat::jinja {

namespace {

const char* op_symbol(BinOp op) {
  switch (op) {
    case BinOp::Add: return "+";
    case BinOp::Sub: return "-";
    case BinOp::Mul: return "*";
    case BinOp::Div: return "/";
    case BinOp::FloorDiv: return "//";
    case BinOp::Mod: return "%";
    case BinOp::Pow: return "** or pow()";
  }
  return "?";
}

[[noreturn]] void unsupported(BinOp op, const Value& a, const Value& b) {
  throw Error(std::string("unsupported operand type(s) for ") + op_symbol(op) + ": '" + type_name(a) + "' and '" +
              type_name(b) + "'");
}

Value checked_int(bool overflow, int64_t r) {
  if (overflow) throw Error("integer overflow (the engine's integers are 64-bit)");
  return Value::integer(r);
}

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.str();
    return Value::string(std::move(out));
  }
  std::vector<Value> out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list().items.begin(), seq.list().items.end());
  return Value::list(std::move(out), seq.is_tuple());
}

Value number_op(BinOp op, const Value& a, const Value& b) {
  if (a.is_integral() && b.is_integral() && op != BinOp::Div) {
    const int64_t x = a.i(), y = b.i();
    int64_t r = 0;
    switch (op) {
      case BinOp::Add: {
        const bool overflow = __builtin_add_overflow(x, y, &r);
        return checked_int(overflow, r);
      }
      case BinOp::Sub: {
        const bool overflow = __builtin_sub_overflow(x, y, &r);
        return checked_int(overflow, r);
      }
      case BinOp::Mul: {
        const bool overflow = __builtin_mul_overflow(x, y, &r);
        return checked_int(overflow, r);
      }
      case BinOp::FloorDiv:
        if (y == 0) throw Error("integer division or modulo by zero");
        return Value::integer(floor_div(x, y));
      case BinOp::Mod: {
        if (y == 0) throw Error("integer division or modulo by zero");
        const int64_t m = x % y;
        return Value::integer((m != 0 && ((m < 0) != (y < 0))) ? m + y : m);
      }
      case BinOp::Pow: {
        if (y < 0) return Value::number(std::pow(static_cast<double>(x), static_cast<double>(y)));
        int64_t result = 1;
        for (int64_t k = 0; k < y; ++k) {
          if (__builtin_mul_overflow(result, x, &result)) checked_int(true, 0);
          if (result == 0 || result == 1) break;
        }
        return Value::integer(result);
      }
      default: break;
    }
  }
  const double x = a.as_double(), y = b.as_double();
  const auto div_mod = [&](double& floordiv, double& mod) {  // CPython's _float_div_mod
    mod = std::fmod(x, y);
    double div = (x - mod) / y;
    if (mod != 0) {
      if ((y < 0) != (mod < 0)) {
        mod += y;
        div -= 1.0;
      }
    } else {
      mod = std::copysign(0.0, y);
    }
    if (div != 0) {
      floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
      floordiv = std::copysign(0.0, x / y);
    }
  };
  double floordiv = 0, mod = 0;
  switch (op) {
    case BinOp::Add: return Value::number(x + y);
    case BinOp::Sub: return Value::number(x - y);
    case BinOp::Mul: return Value::number(x * y);
    case BinOp::Div:
      if (y == 0) throw Error("division by zero");
      return Value::number(x / y);
    case BinOp::FloorDiv:
      if (y == 0) throw Error("float floor division by zero");
      div_mod(floordiv, mod);
      return Value::number(floordiv);
    case BinOp::Mod:
      if (y == 0) throw Error("float modulo");
      div_mod(floordiv, mod);
      return Value::number(mod);
    case BinOp::Pow: {
      if (x == 0 && y < 0) throw Error("0.0 cannot be raised to a negative power");
      if (x < 0 && std::isfinite(y) && y != std::floor(y)) {
        throw Error("a negative number raised to a fractional power is complex (not supported)");
      }
      const double r = std::pow(x, y);
      if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) throw Error("(34, 'Numerical result out of range')");
      return Value::number(r);
    }
  }
  return Value();
}

}  // namespace

Value binary_op(BinOp op, const Value& a, const Value& b) {
  if (op == BinOp::Mod && a.is_string()) return Value::string(percent_format(a.str(), b));
  if (a.is_undefined()) throw_undefined(a);
  if (b.is_undefined()) throw_undefined(b);
  if (a.is_number() && b.is_number()) return number_op(op, a, b);
  switch (op) {
    case BinOp::Add:
      if (a.is_string() && b.is_string()) return Value::string(a.str() + b.str());
      if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
        std::vector<Value> items = a.list().items;
        items.insert(items.end(), b.list().items.begin(), b.list().items.end());
        return Value::list(std::move(items), a.is_tuple());
      }
      if (a.is_string() || a.is_list()) {
        throw Error("can only concatenate " + type_name(a) + " (not \"" + type_name(b) + "\") to " + type_name(a));
      }
      break;
    case BinOp::Mul:
      if ((a.is_string() || a.is_list()) && b.is_integral()) return repeat(a, b.i());
      if ((b.is_string() || b.is_list()) && a.is_integral()) return repeat(b, a.i());
      if ((a.is_string() || a.is_list()) || (b.is_string() || b.is_list())) {
        throw Error("can't multiply sequence by non-int of type '" + type_name(a.is_string() || a.is_list() ? b : a) +
                    "'");
      }
      break;
    default: break;
  }
  unsupported(op, a, b);
}

Value unary_minus(const Value& v) {
  if (v.is_undefined()) throw_undefined(v);
  if (v.is_integral()) {
    if (v.i() == std::numeric_limits<int64_t>::min()) checked_int(true, 0);
    return Value::integer(-v.i());
  }
  if (v.is_float()) return Value::number(-v.as_double());
  throw Error("bad operand type for unary -: '" + type_name(v) + "'");
}

Value unary_plus(const Value& v) {
  if (v.is_undefined()) throw_undefined(v);
  if (v.is_integral()) return Value::integer(v.i());
  if (v.is_float()) return v;
  throw Error("bad operand type for unary +: '" + type_name(v) + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::Undefined: return false;
    case Value::Kind::String:
      if (item.is_undefined()) throw_undefined(item);
      if (!item.is_string()) {
        throw Error("'in <string>' requires string as left operand, not " + type_name(item));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::List:
      for (const Value& v : container.list().items) {
        if (py_equal(v, item)) return true;
      }
      return false;
    case Value::Kind::Dict:
      if (item.is_dict() || (item.is_list() && !item.is_tuple())) throw Error("unhashable type: '" + type_name(item) + "'");
      return container.dict_data().find(item) != nullptr;
    default: throw Error("argument of type '" + type_name(container) + "' is not iterable");
  }
}

namespace {

Value no_attribute(const Value& obj, std::string_view name) {
  std::string message(1, '\'');  // appended piecewise: g++ 12 -O3 -Wrestrict false positive
  message.append(object_type_repr(obj)).append("' has no attribute '").append(name).append("'");
  return Value::undefined(std::move(message));
}

// Python's slice.indices(); returns false for an empty result.
std::vector<int64_t> slice_positions(int64_t length, const Value& start_v, const Value& stop_v, const Value& step_v) {
  const auto as_index = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_integral()) throw Error("slice indices must be integers or None or have an __index__ method");
    return v.i();
  };
  const int64_t step = as_index(step_v).value_or(1);
  if (step == 0) throw Error("slice step cannot be zero");
  const auto clamp = [&](std::optional<int64_t> v, bool is_start) {
    if (!v) return step < 0 ? (is_start ? length - 1 : int64_t{-1}) : (is_start ? int64_t{0} : length);
    int64_t x = *v;
    if (x < 0) {
      x += length;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= length) {
      x = step < 0 ? length - 1 : length;
    }
    return x;
  };
  const int64_t start = clamp(as_index(start_v), true);
  const int64_t stop = clamp(as_index(stop_v), false);
  std::vector<int64_t> out;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) out.push_back(k);
  return out;
}

}  // namespace

Value get_attr(const Value& obj, std::string_view name) {
  if (obj.is_undefined()) throw_undefined(obj);
  if (obj.is_object()) {
    if (auto v = obj.obj().get_attr(name)) return *v;
    return no_attribute(obj, name);
  }
  if (auto m = get_method(obj, name)) return *m;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_data().find(name)) return *v;
  }
  return no_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) throw_undefined(obj);
  switch (obj.kind()) {
    case Value::Kind::Dict:
      if (const Value* v = obj.dict_data().find(key)) return *v;
      break;
    case Value::Kind::List:
      if (key.is_integral()) {
        const auto& items = obj.list().items;
        int64_t k = key.i();
        if (k < 0) k += static_cast<int64_t>(items.size());
        if (k >= 0 && k < static_cast<int64_t>(items.size())) return items[k];
      }
      break;
    case Value::Kind::String:
      if (key.is_integral()) {
        const std::u32string cps = utf8_decode(obj.str());
        int64_t k = key.i();
        if (k < 0) k += static_cast<int64_t>(cps.size());
        if (k >= 0 && k < static_cast<int64_t>(cps.size())) return Value::string(utf8_encode(cps.substr(k, 1)));
      }
      break;
    case Value::Kind::Object:
      if (key.is_string()) {
        if (auto v = obj.obj().get_attr(key.str())) return *v;
      }
      break;
    default: break;
  }
  if (key.is_string()) {
    if (auto m = get_method(obj, key.str())) return *m;
    return no_attribute(obj, key.str());
  }
  return Value::undefined(object_type_repr(obj) + " has no element " + repr(key));
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) throw_undefined(obj);
  if (obj.is_list()) {
    const auto& items = obj.list().items;
    std::vector<Value> out;
    for (int64_t k : slice_positions(static_cast<int64_t>(items.size()), start, stop, step)) out.push_back(items[k]);
    return Value::list(std::move(out), obj.is_tuple());
  }
  if (obj.is_string()) {
    const std::u32string cps = utf8_decode(obj.str());
    std::u32string out;
    for (int64_t k : slice_positions(static_cast<int64_t>(cps.size()), start, stop, step)) out += cps[k];
    return Value::string(utf8_encode(out));
  }
  return Value::undefined(object_type_repr(obj) + " has no element slice(" + repr(start) + ", " + repr(stop) + ", " +
                          repr(step) + ")");
}

namespace {

// [[fill]align][sign][#][0][width][,][.precision][type]
FormatSpec parse_spec(std::string_view s) {
  FormatSpec spec;
  size_t p = 0;
  const auto is_align = [](char c) { return c == '<' || c == '>' || c == '^' || c == '='; };
  if (s.size() >= 2 && is_align(s[1])) {
    spec.fill = s[0];
    spec.align = s[1];
    p = 2;
  } else if (!s.empty() && is_align(s[0])) {
    spec.align = s[0];
    p = 1;
  }
  if (p < s.size() && (s[p] == '+' || s[p] == '-' || s[p] == ' ')) spec.sign = s[p++];
  if (p < s.size() && s[p] == '#') spec.alternate = true, ++p;
  if (p < s.size() && s[p] == '0') spec.zero = true, ++p;
  while (p < s.size() && s[p] >= '0' && s[p] <= '9') spec.width = std::max(spec.width, 0) * 10 + (s[p++] - '0');
  if (p < s.size() && s[p] == ',') spec.thousands = true, ++p;
  if (p < s.size() && s[p] == '.') {
    spec.precision = 0;
    for (++p; p < s.size() && s[p] >= '0' && s[p] <= '9';) spec.precision = spec.precision * 10 + (s[p++] - '0');
  }
  if (p < s.size()) spec.type = s[p++];
  if (p != s.size()) throw Error("invalid format specifier '" + std::string(s) + "'");
  return spec;
}

std::string format_value(const Value& v, const FormatSpec& spec, char conversion) {
  if (v.is_undefined() && conversion == 0) throw_undefined(v);
  const auto truncate = [&](std::string s) {
    if (spec.precision >= 0) {
      const std::u32string cps = utf8_decode(s);
      if (static_cast<int>(cps.size()) > spec.precision) s = utf8_encode(cps.substr(0, spec.precision));
    }
    return pad_to_width(s, spec, false);
  };
  if (conversion == 'r' || conversion == 'a') return truncate(repr(v));
  const bool number_type = spec.type && std::string_view("bcdoxXneEfFgG%").find(spec.type) != std::string_view::npos;
  if (v.is_number() && conversion != 's') {
    if (v.is_bool() && !number_type) return truncate(v.b() ? "True" : "False");
    if (v.is_integral() && (spec.type == 0 || std::string_view("bcdoxXn").find(spec.type) != std::string_view::npos)) {
      return format_integer(v.i(), spec);
    }
    if (spec.type && std::string_view("eEfFgG%").find(spec.type) == std::string_view::npos) {
      throw Error(std::string("Unknown format code '") + spec.type + "' for object of type '" + type_name(v) + "'");
    }
    return format_float(v.as_double(), spec);
  }
  if (spec.type && spec.type != 's') {
    throw Error(std::string("Unknown format code '") + spec.type + "' for object of type '" + type_name(v) + "'");
  }
  return truncate(to_str(v));
}

}  // namespace

std::string str_format(std::string_view fmt, const CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t p = 0; p < fmt.size();) {
    const char c = fmt[p];
    if (c == '}') {
      if (p + 1 < fmt.size() && fmt[p + 1] == '}') {
        out += '}';
        p += 2;
        continue;
      }
      throw Error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      ++p;
      continue;
    }
    if (p + 1 < fmt.size() && fmt[p + 1] == '{') {
      out += '{';
      p += 2;
      continue;
    }
    const size_t close = fmt.find('}', p);
    if (close == std::string_view::npos) throw Error("Single '{' encountered in format string");
    std::string_view field = fmt.substr(p + 1, close - p - 1);
    p = close + 1;
    std::string_view spec_text;
    char conversion = 0;
    if (const size_t colon = field.find(':'); colon != std::string_view::npos) {
      spec_text = field.substr(colon + 1);
      field = field.substr(0, colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string_view::npos) {
      conversion = bang + 1 < field.size() ? field[bang + 1] : 0;
      field = field.substr(0, bang);
    }
    size_t name_end = 0;
    while (name_end < field.size() && field[name_end] != '.' && field[name_end] != '[') ++name_end;
    const std::string_view name = field.substr(0, name_end);
    Value v;
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) {
      const size_t index = name.empty() ? auto_index++ : std::stoul(std::string(name));
      if (index >= args.pos.size()) throw Error("Replacement index " + std::to_string(index) + " out of range");
      v = args.pos[index];
    } else {
      bool found = false;
      for (const auto& [k, kv] : args.kw) {
        if (k == name) v = kv, found = true;
      }
      if (!found) throw Error("KeyError: '" + std::string(name) + "'");
    }
    for (size_t q = name_end; q < field.size();) {
      if (field[q] == '.') {
        size_t e = q + 1;
        while (e < field.size() && field[e] != '.' && field[e] != '[') ++e;
        v = get_attr(v, field.substr(q + 1, e - q - 1));
        q = e;
      } else {
        const size_t e = field.find(']', q);
        if (e == std::string_view::npos) throw Error("Missing ']' in format string");
        const std::string key(field.substr(q + 1, e - q - 1));
        const bool numeric = !key.empty() && key.find_first_not_of("0123456789") == std::string::npos;
        v = get_item(v, numeric ? Value::integer(std::stoll(key)) : Value::string(key));
        q = e + 1;
      }
    }
    out += format_value(v, parse_spec(spec_text), conversion);
  }
  return out;
}

std::string percent_format(std::string_view fmt, const Value& args) {
  std::vector<Value> positional;
  // Python treats any non-tuple with __getitem__ (dict, list) as a mapping: no "not all converted" error.
  const bool mapping = args.is_dict() || (args.is_list() && !args.is_tuple()) || args.is_undefined();
  if (args.is_tuple()) {
    positional = args.list().items;
  } else {
    positional.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t p = 0; p < fmt.size();) {
    if (fmt[p] != '%') {
      out += fmt[p++];
      continue;
    }
    ++p;
    Value v;
    bool have_value = false;
    if (p < fmt.size() && fmt[p] == '(') {
      const size_t close = fmt.find(')', p);
      if (close == std::string_view::npos) throw Error("incomplete format key");
      if (!args.is_dict()) throw Error("format requires a mapping");
      const Value* found = args.dict_data().find(fmt.substr(p + 1, close - p - 1));
      if (!found) throw Error("KeyError: '" + std::string(fmt.substr(p + 1, close - p - 1)) + "'");
      v = *found;
      have_value = true;
      p = close + 1;
    }
    FormatSpec spec;
    bool left = false;
    for (; p < fmt.size() && std::string_view("-+ #0").find(fmt[p]) != std::string_view::npos; ++p) {
      if (fmt[p] == '-') left = true;
      if (fmt[p] == '+' || fmt[p] == ' ') spec.sign = (spec.sign == '+') ? '+' : fmt[p];
      if (fmt[p] == '#') spec.alternate = true;
      if (fmt[p] == '0') spec.zero = true;
    }
    while (p < fmt.size() && fmt[p] >= '0' && fmt[p] <= '9') spec.width = std::max(spec.width, 0) * 10 + (fmt[p++] - '0');
    if (p < fmt.size() && fmt[p] == '.') {
      spec.precision = 0;
      for (++p; p < fmt.size() && fmt[p] >= '0' && fmt[p] <= '9';) spec.precision = spec.precision * 10 + (fmt[p++] - '0');
    }
    if (p >= fmt.size()) throw Error("incomplete format");
    const char type = fmt[p++];
    if (type == '%') {
      out += '%';
      continue;
    }
    if (!have_value) {
      if (next >= positional.size()) throw Error("not enough arguments for format string");
      v = positional[next++];
    }
    if (left) spec.align = '<', spec.zero = false;
    if (type == 's' || type == 'r' || type == 'a') {
      std::string s = type == 's' ? to_str(v) : repr(v);
      if (spec.precision >= 0) {
        const std::u32string cps = utf8_decode(s);
        if (static_cast<int>(cps.size()) > spec.precision) s = utf8_encode(cps.substr(0, spec.precision));
      }
      spec.zero = false;
      FormatSpec pad = spec;
      pad.align = left ? '<' : '>';
      out += pad_to_width(s, pad, false);
      continue;
    }
    if (!v.is_number()) {
      throw Error(std::string("%") + type + " format: a real number is required, not " + type_name(v));
    }
    if (spec.zero && !left) spec.align = '=', spec.fill = '0';
    if (std::string_view("diu").find(type) != std::string_view::npos || std::string_view("xXoc").find(type) != std::string_view::npos) {
      spec.type = (type == 'i' || type == 'u') ? 'd' : type;
      const int64_t n = v.is_float() ? static_cast<int64_t>(std::trunc(v.as_double())) : v.i();
      if (spec.precision >= 0 && spec.type == 'd') {
        std::string digits = std::to_string(n < 0 ? -n : n);
        if (static_cast<int>(digits.size()) < spec.precision) digits.insert(0, spec.precision - digits.size(), '0');
        out += pad_to_width((n < 0 ? "-" : (spec.sign == '+' ? "+" : "")) + digits, spec, true);
      } else {
        out += format_integer(n, spec);
      }
    } else if (std::string_view("eEfFgG").find(type) != std::string_view::npos) {
      spec.type = type;
      out += format_float(v.as_double(), spec);
    } else {
      throw Error(std::string("unsupported format character '") + type + "'");
    }
  }
  if (next < positional.size() && !mapping) throw Error("not all arguments converted during string formatting");
  return out;
}

}  // namespace tandem::chat::jinja
