// AccessPolicy: which requests the server takes, apart from their content.
//
// - API key: with one set, requests must carry 'Authorization: Bearer KEY'; the comparison takes the same
//   time whatever the bytes are (only the length shows). /health stays open; the server decides per route.
// - JSON only: a POST body must be declared application/json (parameters such as charset allowed). Forms and
//   text/plain are what a web page can send cross-site without a CORS preflight, so they are refused (415).
// - CORS: origins named by --allowed-origins ("*": any) get Access-Control-Allow-* headers and their
//   preflights (OPTIONS) answered; a preflight from another origin is refused (403).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem::server {

class AccessPolicy {
 public:
  AccessPolicy(std::string api_key, std::vector<std::string> allowed_origins);

  bool key_required() const { return !api_key_.empty(); }
  // Whether an Authorization header value carries the key (always true without a key).
  bool authorized(std::string_view authorization) const;
  static bool is_json(std::string_view content_type);
  bool origin_allowed(std::string_view origin) const;

 private:
  std::string api_key_;
  std::vector<std::string> allowed_origins_;
};

}  // namespace tandem::server
