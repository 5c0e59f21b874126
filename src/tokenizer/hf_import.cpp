#include "tokenizer/hf_import.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "gguf/gguf_writer.h"
#include "tokenizer/pretokenizer.h"

namespace tandem {
namespace {

using nlohmann::json;

// A problem with the input files; caught in import_hf_tokenizer and returned as a Status.
struct ImportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// GPT-2's split: the regex of HF's ByteLevel pre-tokenizer with use_regex (it has no Split step).
std::string_view gpt2_pattern() {
  for (const PreTokenizerSpec& spec : pretokenizer_specs()) {
    if (spec.name == "gpt2") return spec.patterns.front();
  }
  throw ImportError("the gpt2 pre-tokenizer is missing from pretokenizer_specs()");
}

// `pattern` (valid UTF-8) with tab, newline, carriage return and every other character outside printable ASCII
// written as an escape, so that patterns compare equal however the file spells them.
std::string canonical_pattern(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size());
  for (size_t i = 0; i < pattern.size();) {
    const auto c = static_cast<unsigned char>(pattern[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t len = 1;
    char32_t cp = c;
    if (c >= 0xF0) {
      len = 4, cp = c & 0x07;
    } else if (c >= 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xC0) {
      len = 2, cp = c & 0x1F;
    }
    for (size_t k = 1; k < len && i + k < pattern.size(); ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(pattern[i + k]) & 0x3F);
    }
    i += len;
    if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else {
      out += fmt::format("\\x{{{:X}}}", static_cast<uint32_t>(cp));
    }
  }
  return out;
}

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImportError("cannot open " + path.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw ImportError(path.string() + ": " + e.what());
  }
}

// j[key], or null when `j` is not an object or lacks the key.
const json& member(const json& j, const char* key) {
  static const json kNull;
  const auto it = j.find(key);
  return it != j.end() ? *it : kNull;
}

std::string type_of(const json& j) {
  const json& type = member(j, "type");
  return type.is_string() ? type.get<std::string>() : std::string();
}

// The name of the pre-tokenizer that `tok` (tokenizer.json) describes.
std::string detect_pre_tokenizer(const json& tok) {
  bool nfc = false;
  const json& normalizer = member(tok, "normalizer");
  if (!normalizer.is_null()) {
    const std::string type = type_of(normalizer);
    const bool empty_sequence = type == "Sequence" && member(normalizer, "normalizers").empty();
    if (type == "NFC") {
      nfc = true;
    } else if (!empty_sequence) {
      throw ImportError("unsupported normalizer " + normalizer.dump());
    }
  }

  const json& pre = member(tok, "pre_tokenizer");
  if (!pre.is_object()) throw ImportError("tokenizer.json has no pre_tokenizer (a byte-level BPE model needs one)");
  std::vector<const json*> steps;
  if (type_of(pre) == "Sequence") {
    if (!member(pre, "pretokenizers").is_array()) {
      throw ImportError("pre_tokenizer Sequence without a pretokenizers list");
    }
    for (const json& step : member(pre, "pretokenizers")) steps.push_back(&step);
  } else {
    steps.push_back(&pre);
  }

  std::vector<std::string> patterns;
  bool byte_level = false;
  for (const json* step_ptr : steps) {
    const json& step = *step_ptr;
    const std::string type = type_of(step);
    if (byte_level) throw ImportError("pre_tokenizer step after ByteLevel is not supported: " + step.dump());
    if (type == "Split") {
      const json& regex = member(member(step, "pattern"), "Regex");
      if (!regex.is_string() || member(step, "behavior") != "Isolated" || member(step, "invert") == true) {
        throw ImportError("unsupported pre_tokenizer split (only Regex patterns, Isolated, not inverted): " +
                          step.dump());
      }
      patterns.push_back(canonical_pattern(regex.get<std::string>()));
    } else if (type == "Digits") {
      patterns.emplace_back(member(step, "individual_digits") == true ? R"(\p{N})" : R"(\p{N}+)");
    } else if (type == "ByteLevel") {
      if (member(step, "add_prefix_space") == true) {
        throw ImportError("unsupported ByteLevel pre-tokenizer with add_prefix_space");
      }
      if (member(step, "use_regex") != false) patterns.emplace_back(gpt2_pattern());
      byte_level = true;
    } else {
      throw ImportError("unsupported pre_tokenizer step: " + step.dump());
    }
  }
  if (!byte_level) throw ImportError("the pre_tokenizer has no ByteLevel step (only byte-level BPE is supported)");

  for (const HfPreTokenizerSignature& sig : hf_pre_tokenizer_signatures()) {
    if (sig.nfc == nfc && std::equal(patterns.begin(), patterns.end(), sig.patterns.begin(), sig.patterns.end())) {
      return std::string(sig.name);
    }
  }
  std::string listing;
  for (const std::string& p : patterns) listing += "\n  " + p;
  throw ImportError(fmt::format("unknown pre-tokenizer (normalizer {}, splits:{}); known: {}", nfc ? "NFC" : "none",
                                listing, fmt::join(PreTokenizer::supported_names(), ", ")));
}

// As the llama.cpp converter's does_token_look_special.
bool looks_special(const std::string& text) {
  auto wrapped = [&](std::string_view open, std::string_view close) {
    return text.starts_with(open) && text.ends_with(close);
  };
  return text == "<pad>" || text == "<mask>" || text == "<2mass>" || text == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<｜", "｜>") || wrapped("<unused", ">");
}

int32_t checked_id(const json& id, std::string_view token) {
  if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= INT32_MAX) {
    throw ImportError(fmt::format("token '{}' has an invalid id {}", token, id.dump()));
  }
  return static_cast<int32_t>(id.get<int64_t>());
}

std::vector<std::string> read_merges(const json& model) {
  std::vector<std::string> merges;
  const json& list = member(model, "merges");
  if (list.is_null()) return merges;
  if (!list.is_array()) throw ImportError("model.merges is not a list");
  merges.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const json& m = list[i];
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      std::string merge;
      for (size_t k = 0; k < 2; ++k) {
        if (k == 1) merge += ' ';
        for (char c : m[k].get<std::string>()) merge += c == ' ' ? std::string("\u0120") : std::string(1, c);
      }
      merges.push_back(std::move(merge));
    } else {
      throw ImportError(fmt::format("model.merges[{}] is neither \"a b\" nor [\"a\", \"b\"]: {}", i, m.dump()));
    }
  }
  return merges;
}

// The chat template of tokenizer_config.json, else of chat_template.jinja / chat_template.json in `dir`.
std::string read_chat_template(const json& config, const std::filesystem::path& dir) {
  const json& t = member(config, "chat_template");
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array()) {
    for (const json& entry : t) {
      if (member(entry, "name") == "default" && member(entry, "template").is_string()) {
        return member(entry, "template").get<std::string>();
      }
    }
    return {};
  }
  if (!t.is_null()) throw ImportError("tokenizer_config.json chat_template is neither a string nor a list");
  if (std::ifstream in(dir / "chat_template.jinja", std::ios::binary); in) {
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  if (std::filesystem::exists(dir / "chat_template.json")) {
    const json alt = read_json(dir / "chat_template.json");
    if (member(alt, "chat_template").is_string()) return member(alt, "chat_template").get<std::string>();
  }
  return {};
}

HfTokenizer import(const std::filesystem::path& dir, int32_t min_vocab) {
  const json tok = read_json(dir / "tokenizer.json");
  const json config = read_json(dir / "tokenizer_config.json");
  if (!tok.is_object() || !config.is_object()) {
    throw ImportError("tokenizer.json and tokenizer_config.json must hold JSON objects");
  }

  const json& model = member(tok, "model");
  if (type_of(model) != "BPE") throw ImportError("unsupported model type '" + type_of(model) + "' (only BPE)");
  if (member(model, "byte_fallback") == true) throw ImportError("unsupported BPE with byte_fallback");
  const json& vocab = member(model, "vocab");
  if (!vocab.is_object()) throw ImportError("model.vocab is not an object");

  HfTokenizer out;
  TokenizerSpec& spec = out.spec;
  spec.model = "gpt2";
  spec.pre = detect_pre_tokenizer(tok);
  auto pre = PreTokenizer::create(spec.pre);
  if (!pre) throw ImportError(pre.status().message());
  if ((member(model, "ignore_merges") == true) != pre.value()->ignore_merges()) {
    throw ImportError("model.ignore_merges differs from what pre-tokenizer '" + spec.pre + "' uses");
  }

  // id -> text; added tokens override the model vocab.
  std::map<int32_t, std::string> texts;
  for (const auto& [text, id] : vocab.items()) texts[checked_id(id, text)] = text;
  std::map<int32_t, bool> added;  // id -> control
  std::map<std::string, int32_t> added_ids;
  const json& added_tokens = member(tok, "added_tokens");
  if (!added_tokens.is_null()) {
    if (!added_tokens.is_array()) throw ImportError("added_tokens is not a list");
    for (const json& a : added_tokens) {
      if (!member(a, "content").is_string()) throw ImportError("malformed added token " + a.dump());
      const std::string content = member(a, "content").get<std::string>();
      const int32_t id = checked_id(member(a, "id"), content);
      texts[id] = content;
      added[id] = member(a, "special") == true || looks_special(content);
      added_ids.try_emplace(content, id);
    }
  }
  if (texts.empty()) throw ImportError("the vocabulary is empty");
  const int32_t n = std::max(texts.rbegin()->first + 1, min_vocab);
  spec.tokens.resize(static_cast<size_t>(n));
  spec.types.assign(static_cast<size_t>(n), TokenType::kNormal);
  for (int32_t id = 0; id < n; ++id) {
    if (auto it = texts.find(id); it != texts.end()) {
      spec.tokens[id] = std::move(it->second);
      if (auto a = added.find(id); a != added.end()) {
        spec.types[id] = a->second ? TokenType::kControl : TokenType::kUserDefined;
      }
    } else {
      spec.tokens[id] = fmt::format("[PAD{}]", id);
      spec.types[id] = TokenType::kUnused;
    }
  }
  spec.merges = read_merges(model);

  // Special tokens: by content among the added tokens first (as the converter looks them up), else the vocab.
  auto special_id = [&](const char* key) -> int32_t {
    const json& entry = member(config, key);
    std::string content;
    if (entry.is_string()) {
      content = entry.get<std::string>();
    } else if (member(entry, "content").is_string()) {
      content = member(entry, "content").get<std::string>();
    } else {
      return -1;
    }
    if (auto it = added_ids.find(content); it != added_ids.end()) return it->second;
    if (auto it = vocab.find(content); it != vocab.end()) return checked_id(*it, content);
    throw ImportError(fmt::format("tokenizer_config.json {} '{}' is not in the vocabulary", key, content));
  };
  spec.bos_id = special_id("bos_token");
  spec.eos_id = special_id("eos_token");
  spec.unk_id = special_id("unk_token");
  spec.pad_id = special_id("pad_token");
  spec.add_bos = member(config, "add_bos_token") == true;
  spec.add_eos = member(config, "add_eos_token") == true;
  out.chat_template = read_chat_template(config, dir);
  return out;
}

}  // namespace

const std::vector<HfPreTokenizerSignature>& hf_pre_tokenizer_signatures() {
  static const std::vector<HfPreTokenizerSignature> all = [] {
    std::vector<HfPreTokenizerSignature> out;
    for (const PreTokenizerSpec& spec : pretokenizer_specs()) out.push_back({spec.name, spec.nfc, spec.patterns});
    return out;
  }();
  return all;
}

Result<HfTokenizer> import_hf_tokenizer(const std::string& dir, int32_t min_vocab) {
  try {
    return import(std::filesystem::path(dir), min_vocab);
  } catch (const std::exception& e) {  // ImportError, or a JSON value of an unexpected type
    return Status::error("hf tokenizer import (" + dir + "): " + e.what());
  }
}

void write_tokenizer_metadata(const HfTokenizer& tokenizer, GgufWriter& writer) {
  const TokenizerSpec& spec = tokenizer.spec;
  writer.set("tokenizer.ggml.model", gguf_str(spec.model));
  writer.set("tokenizer.ggml.pre", gguf_str(spec.pre));
  writer.set("tokenizer.ggml.tokens", gguf_str_array(spec.tokens));
  std::vector<GgufValue> types;
  types.reserve(spec.types.size());
  for (TokenType t : spec.types) types.push_back(gguf_i32(static_cast<int32_t>(t)));
  writer.set("tokenizer.ggml.token_type", gguf_array(GgufValueType::INT32, std::move(types)));
  writer.set("tokenizer.ggml.merges", gguf_str_array(spec.merges));
  const std::pair<const char*, int32_t> ids[] = {{"tokenizer.ggml.bos_token_id", spec.bos_id},
                                                 {"tokenizer.ggml.eos_token_id", spec.eos_id},
                                                 {"tokenizer.ggml.unknown_token_id", spec.unk_id},
                                                 {"tokenizer.ggml.padding_token_id", spec.pad_id}};
  for (const auto& [key, id] : ids) {
    if (id >= 0) writer.set(key, gguf_u32(static_cast<uint32_t>(id)));
  }
  writer.set("tokenizer.ggml.add_bos_token", gguf_bool(spec.add_bos));
  writer.set("tokenizer.ggml.add_eos_token", gguf_bool(spec.add_eos));
  if (!tokenizer.chat_template.empty()) writer.set("tokenizer.chat_template", gguf_str(tokenizer.chat_template));
}

}  // namespace tandem
