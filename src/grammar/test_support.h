// Test helpers of src/grammar: an independent reference for the JSON schema subset (validate a parsed document),
// a random generator of valid documents from a schema, and a check that a text is compact JSON.
#pragma once

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::grammar::testing {

using nlohmann::json;

inline size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

inline const json& deref(const json& schema, const json& root) {
  if (schema.is_object() && schema.contains("$ref")) {
    return root.at(json::json_pointer(schema["$ref"].get<std::string>().substr(1)));
  }
  return schema;
}

inline bool type_matches(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "number") return v.is_number();
  if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  return false;
}

// JSON Schema semantics for the supported keywords, plus this project's policy that objects with `properties`
// (or `required`) carry no other keys.
inline bool valid(const json& v, const json& schema_in, const json& root) {
  const json& s = deref(schema_in, root);
  if (s.is_boolean()) return s.get<bool>();
  if (s.contains("anyOf")) {
    for (const auto& alt : s["anyOf"]) {
      if (valid(v, alt, root)) return true;
    }
    return false;
  }
  if (s.contains("const") && v != s["const"]) return false;
  if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end()) return false;
  if (s.contains("type")) {
    bool any = false;
    if (s["type"].is_array()) {
      for (const auto& t : s["type"]) any = any || type_matches(v, t.get<std::string>());
    } else {
      any = type_matches(v, s["type"].get<std::string>());
    }
    if (!any) return false;
  }
  if (v.is_object()) {
    const bool listed = (s.contains("properties") && !s["properties"].empty()) ||
                        (s.contains("required") && !s["required"].empty());
    for (const auto& [k, val] : v.items()) {
      if (s.contains("properties") && s["properties"].contains(k)) {
        if (!valid(val, s["properties"][k], root)) return false;
      } else if (listed) {
        const bool required = s.contains("required") &&
                              std::find(s["required"].begin(), s["required"].end(), k) != s["required"].end();
        if (!required) return false;  // the policy: no unlisted keys
        if (s.contains("additionalProperties") && !valid(val, s["additionalProperties"], root)) return false;
      } else if (s.contains("additionalProperties") && !valid(val, s["additionalProperties"], root)) {
        return false;
      }
    }
    if (s.contains("required")) {
      for (const auto& r : s["required"]) {
        if (!v.contains(r.get<std::string>())) return false;
      }
    }
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return false;
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return false;
    if (s.contains("items")) {
      for (const auto& item : v) {
        if (!valid(item, s["items"], root)) return false;
      }
    }
  }
  if (v.is_string()) {
    const size_t n = code_points(v.get<std::string>());
    if (s.contains("minLength") && n < s["minLength"].get<size_t>()) return false;
    if (s.contains("maxLength") && n > s["maxLength"].get<size_t>()) return false;
  }
  return true;
}

// No whitespace outside strings.
inline bool compact(const std::string& text) {
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      return false;
    }
  }
  return true;
}

// A random document (compact JSON text) that the schema accepts. Objects take their required properties and some
// optional ones in a random order; strings mix ASCII, escapes and multi-byte characters.
class Generator {
 public:
  Generator(json root, uint64_t seed) : root_(std::move(root)), rng_(seed) {}

  std::string value(const json& schema_in, int depth = 0) {
    const json& s = deref(schema_in, root_);
    if (s.is_boolean() || s.empty() || (s.size() == 1 && s.contains("description"))) return any(depth);
    if (s.contains("anyOf")) return value(s["anyOf"][pick(s["anyOf"].size())], depth);
    if (s.contains("const")) return s["const"].dump();
    if (s.contains("enum")) {
      std::vector<json> ok;
      for (const auto& e : s["enum"]) {
        if (valid(e, s, root_)) ok.push_back(e);
      }
      return ok[pick(ok.size())].dump();
    }
    std::string type;
    if (s.contains("type")) {
      type = s["type"].is_array() ? s["type"][pick(s["type"].size())].get<std::string>() : s["type"].get<std::string>();
    } else if (s.contains("properties") || s.contains("required")) {
      type = "object";
    } else if (s.contains("items")) {
      type = "array";
    } else {
      return any(depth);
    }
    if (type == "object") {
      if (!s.contains("properties") && !s.contains("required")) return free_object(s, depth);
      std::vector<std::string> keys;
      std::vector<std::string> required;
      if (s.contains("required")) for (const auto& r : s["required"]) required.push_back(r);
      if (s.contains("properties")) {
        for (const auto& [k, v] : s["properties"].items()) {
          if (std::find(required.begin(), required.end(), k) != required.end() || coin()) keys.push_back(k);
        }
      }
      for (const auto& r : required) {
        if (std::find(keys.begin(), keys.end(), r) == keys.end()) keys.push_back(r);
      }
      std::shuffle(keys.begin(), keys.end(), rng_);
      std::string out = "{";
      for (size_t i = 0; i < keys.size(); ++i) {
        if (i) out += ',';
        const json sub = s.contains("properties") && s["properties"].contains(keys[i]) ? s["properties"][keys[i]]
                         : s.contains("additionalProperties") && s["additionalProperties"].is_object()
                             ? s["additionalProperties"] : json(true);
        out += json(keys[i]).dump() + ":" + value(sub, depth + 1);
      }
      return out + "}";
    }
    if (type == "array") {
      const size_t lo = s.value("minItems", size_t{0}), hi = std::min<size_t>(s.value("maxItems", size_t{4}), lo + 4);
      const size_t n = lo + pick(hi - lo + 1);
      std::string out = "[";
      for (size_t i = 0; i < n; ++i) {
        if (i) out += ',';
        out += value(s.contains("items") ? s["items"] : json(true), depth + 1);
      }
      return out + "]";
    }
    if (type == "string") {
      const size_t lo = s.value("minLength", size_t{0}), hi = std::min<size_t>(s.value("maxLength", size_t{12}), lo + 12);
      return string(lo + pick(hi - lo + 1));
    }
    if (type == "integer") return integer();
    if (type == "number") return number();
    if (type == "boolean") return coin() ? "true" : "false";
    return "null";
  }

  std::string any(int depth) {
    switch (pick(depth > 3 ? 4 : 6)) {
      case 0: return string(pick(8));
      case 1: return number();
      case 2: return coin() ? "true" : "null";
      case 3: return integer();
      case 4: return free_object(json::object(), depth);
      default: {
        std::string out = "[";
        for (size_t i = 0, n = pick(4); i < n; ++i) out += (i ? "," : "") + any(depth + 1);
        return out + "]";
      }
    }
  }

  std::string free_object(const json& s, int depth) {
    const bool closed = s.contains("additionalProperties") && s["additionalProperties"] == false;
    std::string out = "{";
    for (size_t i = 0, n = closed ? 0 : pick(4); i < n; ++i) {
      out += (i ? "," : "") + string(pick(6)) + ":" +
             (s.contains("additionalProperties") && s["additionalProperties"].is_object()
                  ? value(s["additionalProperties"], depth + 1) : any(depth + 1));
    }
    return out + "}";
  }

  std::string string(size_t chars) {
    static const char* const kPieces[] = {"a", "Z", "0", " ", "\\\"", "\\\\", "\\n", "\\u00e9", "\\u4e2d", "é", "中",
                                          "😀", "/", "\\/", "{", "]", ":", ","};
    std::string out = "\"";
    for (size_t i = 0; i < chars; ++i) out += kPieces[pick(std::size(kPieces))];
    return out + "\"";
  }

  std::string integer() {
    std::string out = coin() ? "-" : "";
    if (pick(5) == 0) return out + "0";
    out += static_cast<char>('1' + pick(9));
    for (size_t i = 0, n = pick(10); i < n; ++i) out += static_cast<char>('0' + pick(10));
    return out;
  }

  std::string number() {
    std::string out = integer();
    if (coin()) {
      out += '.';
      for (size_t i = 0, n = 1 + pick(6); i < n; ++i) out += static_cast<char>('0' + pick(10));
    }
    if (pick(4) == 0) {
      out += coin() ? 'e' : 'E';
      if (coin()) out += coin() ? '+' : '-';
      out += static_cast<char>('0' + pick(10));
      if (coin()) out += static_cast<char>('0' + pick(10));
    }
    return out;
  }

  size_t pick(size_t n) { return n == 0 ? 0 : std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool coin() { return pick(2) == 0; }
  std::mt19937_64& rng() { return rng_; }

 private:
  json root_;
  std::mt19937_64 rng_;
};

}  // namespace tandem::grammar::testing
