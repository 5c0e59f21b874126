#include "server/model_catalog.h"

#include <algorithm>

namespace tandem::server {

namespace {

void add_unique(std::vector<std::string>& to, const std::string& name) {
  if (!name.empty() && std::find(to.begin(), to.end(), name) == to.end()) to.push_back(name);
}

}  // namespace

ModelCatalog::ModelCatalog(const std::vector<std::string>& served, const std::vector<std::string>& aliases) {
  for (const std::string& n : served) add_unique(served_, n);
  if (served_.empty()) served_.push_back("model");
  for (const std::string& n : aliases) {
    if (std::find(served_.begin(), served_.end(), n) == served_.end()) add_unique(aliases_, n);
  }
}

std::optional<std::string> ModelCatalog::resolve(std::string_view requested) const {
  if (requested.empty()) return primary();
  for (const std::string& n : served_) {
    if (n == requested) return n;
  }
  for (const std::string& n : aliases_) {
    if (n == requested) return primary();
  }
  return std::nullopt;
}

}  // namespace tandem::server
