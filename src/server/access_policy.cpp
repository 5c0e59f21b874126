#include "server/access_policy.h"

#include <algorithm>
#include <cctype>

namespace tandem::server {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// Compares every byte of the longer string, so the time depends on the lengths only.
bool constant_time_equals(std::string_view a, std::string_view b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (size_t i = 0; i < n; ++i) {
    const auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0u;
    const auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0u;
    diff |= x ^ y;
  }
  return diff == 0;
}

}  // namespace

AccessPolicy::AccessPolicy(std::string api_key, std::vector<std::string> allowed_origins)
    : api_key_(std::move(api_key)), allowed_origins_(std::move(allowed_origins)) {}

bool AccessPolicy::authorized(std::string_view authorization) const {
  if (api_key_.empty()) return true;
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size() || !iequals(authorization.substr(0, kScheme.size()), kScheme)) return false;
  return constant_time_equals(authorization.substr(kScheme.size()), api_key_);
}

bool AccessPolicy::is_json(std::string_view content_type) {
  const std::string_view media = trim(content_type.substr(0, content_type.find(';')));
  return iequals(media, "application/json");
}

bool AccessPolicy::origin_allowed(std::string_view origin) const {
  if (origin.empty()) return false;
  for (const std::string& o : allowed_origins_) {
    if (o == "*" || iequals(o, origin)) return true;
  }
  return false;
}

}  // namespace tandem::server
