#include "model/placement.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <fmt/format.h>

namespace tandem {

Status Placement::add_rule(const std::string& pattern, Device device, const std::string& source) {
  try {
    rules_.push_back({pattern, device, source, std::regex(pattern, std::regex::ECMAScript | std::regex::optimize)});
  } catch (const std::regex_error& e) {
    return Status::error(fmt::format("{}: invalid regular expression '{}': {}", source, pattern, e.what()));
  }
  return Status::ok();
}

const PlacementRule* Placement::rule_for(std::string_view tensor_name) const {
  for (const PlacementRule& r : rules_) {
    if (std::regex_search(tensor_name.begin(), tensor_name.end(), r.regex)) return &r;
  }
  return nullptr;
}

Result<Device> parse_device(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "cpu") return Device::cpu();
  if (s.rfind("cuda", 0) == 0) {
    std::string_view rest = std::string_view(s).substr(4);
    if (!rest.empty() && rest.front() == ':') rest.remove_prefix(1);
    if (rest.empty()) return Device::cuda(0);
    int index = -1;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
    if (ec == std::errc() && end == rest.data() + rest.size() && index >= 0) return Device::cuda(index);
  }
  return Status::error(fmt::format("unknown device '{}' (expected cpu, cuda, cuda:N, CPU or CUDAN)", text));
}

}  // namespace tandem
