// The engine's built-in library: filters, tests, methods of str/dict/list values, global functions,
// and the namespace() / loop objects. Internal to src/chat.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace tandem::chat::jinja {

// nullptr when there is no such filter / test.
FilterFn find_filter(std::string_view name);
TestFn find_test(std::string_view name);

// `obj.name` when it names a Python method of obj (str, dict or list): a bound function; else nullopt.
std::optional<Value> get_method(const Value& obj, std::string_view name);

// The globals every render starts with: range, namespace, dict, raise_exception, strftime_now.
std::vector<std::pair<std::string, Value>> make_globals();

// What the iterations of one for loop share: the items (after the loop's if-filter) and the state of
// loop.changed().
struct LoopShared {
  std::vector<Value> items;
  std::optional<std::vector<Value>> last_changed;
};

// The `loop` variable of a for loop at iteration `index`.
class LoopContext : public Object {
 public:
  LoopContext(std::shared_ptr<LoopShared> shared, size_t index) : shared_(std::move(shared)), index_(index) {}
  std::string type_name() const override { return "LoopContext"; }
  std::optional<Value> get_attr(std::string_view name) const override;
  std::string repr() const override;

 private:
  std::shared_ptr<LoopShared> shared_;
  size_t index_;
};

class Namespace : public Object {
 public:
  std::string type_name() const override { return "Namespace"; }
  std::optional<Value> get_attr(std::string_view name) const override;
  bool set_attr(std::string_view name, Value value) override;
  std::string repr() const override;
  DictData attrs;
};

// Binds call arguments to named parameters the way Python does; throws on a missing required argument,
// too many positionals or an unknown keyword.
struct Param {
  const char* name;
  Value default_value;
  bool required = false;
};
std::vector<Value> bind_args(std::string_view fn_name, const CallArgs& args, const std::vector<Param>& params);

}  // namespace tandem::chat::jinja
