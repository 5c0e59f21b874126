// Runtime values of the Jinja engine, with Python's semantics (what jinja2 running under transformers does).
//
// A Value is undefined, none, bool, int (64-bit), float, str (UTF-8), list or tuple, dict (insertion
// ordered, any keys), an object (namespace(), the loop variable) or a function. Lists, dicts and objects
// are shared by reference like Python objects: copying a Value never copies the container.
// Undefined carries the message Jinja would raise when it is used (e.g. "'x' is undefined").
// Errors are thrown as jinja::Error; its position is filled in by the node that evaluates.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::chat::jinja {

struct Pos {
  int line = 0;
  int col = 0;
};

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
  Error(const std::string& message, Pos pos) : std::runtime_error(message), pos(pos), has_pos(true) {}
  Pos pos;
  bool has_pos = false;
  bool raised = false;  // thrown by the template itself (raise_exception)
};

class Value;
class Interp;
class Object;

struct ListData {
  std::vector<Value> items;
  bool tuple = false;
};

struct DictData;

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

using FunctionImpl = std::function<Value(Interp&, CallArgs&)>;
struct Function {
  std::string name;  // "<...>": the whole repr (macros)
  FunctionImpl impl;
};

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Object, Function };

  Value() = default;  // undefined
  static Value undefined(std::string message);
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict();
  static Value dict(std::shared_ptr<DictData> data);
  static Value object(std::shared_ptr<Object> obj);
  static Value function(std::string name, FunctionImpl impl);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_integral() const { return kind_ == Kind::Int || kind_ == Kind::Bool; }  // Python int (bool too)
  bool is_number() const { return is_integral() || is_float(); }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }  // list or tuple
  bool is_tuple() const;
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_object() const { return kind_ == Kind::Object; }
  bool is_function() const { return kind_ == Kind::Function; }

  bool b() const { return b_; }
  int64_t i() const { return kind_ == Kind::Bool ? (b_ ? 1 : 0) : i_; }  // int or bool
  double as_double() const;                                             // any number
  const std::string& str() const;
  ListData& list() const;
  DictData& dict_data() const;
  Object& obj() const;
  const Function& fn() const;
  const std::string& undefined_message() const;  // for undefined values
  const void* identity() const { return ptr_.get(); }

 private:
  Kind kind_ = Kind::Undefined;
  union {
    bool b_;
    int64_t i_ = 0;
    double f_;
  };
  std::shared_ptr<void> ptr_;
};

struct DictData {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(Value key, Value value);
};

// namespace(), the for-loop `loop` variable and other attribute-only objects.
class Object {
 public:
  virtual ~Object() = default;
  virtual std::string type_name() const = 0;  // Python class name, for messages
  virtual std::optional<Value> get_attr(std::string_view name) const = 0;
  virtual bool set_attr(std::string_view name, Value value);  // false: not assignable
  virtual std::string repr() const = 0;
};

// Converts transformers' inputs (JSON) into values: objects -> dict, arrays -> list.
Value from_json(const nlohmann::ordered_json& j);

[[noreturn]] void throw_undefined(const Value& undefined);
std::string type_name(const Value& v);         // Python type(v).__name__
std::string object_type_repr(const Value& v);  // jinja2 object_type_repr: "dict object", "None", ...
std::string to_str(const Value& v);            // Python str(v); undefined -> ""
std::string repr(const Value& v);              // Python repr(v)
bool truthy(const Value& v);
bool py_equal(const Value& a, const Value& b);
// Python ordering (<): -1, 0, 1; throws a TypeError-like Error naming `op` for unorderable types.
int py_compare(const Value& a, const Value& b, std::string_view op = "<");
size_t py_len(const Value& v);                 // len(v); throws when unsized
std::vector<Value> iterate(const Value& v);    // list(v): dict keys, str characters; undefined -> []

struct JsonOptions {
  std::optional<std::string> indent;  // set: pretty-print with this indent string
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool ensure_ascii = false;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& options);  // Python json.dumps

}  // namespace tandem::chat::jinja
