// ModelCatalog: which `model` names the server answers to.
//
// The served names (--served-model-name, one or more) are the model's ids: /v1/models lists them and a
// response names the served name the request used, or the first one. Aliases (the GGUF's general.name, the
// file name with and without .gguf) are accepted too and answered with the first served name. Names match
// exactly (OpenAI's ids are case-sensitive). Immutable; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::server {

class ModelCatalog {
 public:
  // `served` must not be empty; empty names and repeats are dropped.
  ModelCatalog(const std::vector<std::string>& served, const std::vector<std::string>& aliases);

  const std::string& primary() const { return served_.front(); }
  const std::vector<std::string>& served() const { return served_; }
  // The served name `requested` stands for (an empty request: the primary); nullopt when unknown.
  std::optional<std::string> resolve(std::string_view requested) const;

 private:
  std::vector<std::string> served_, aliases_;
};

}  // namespace tandem::server
