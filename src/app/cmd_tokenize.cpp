// `tandem tokenize --gguf FILE --text T`: the ids and pieces of a text under a model's tokenizer.
// With --jsonl, reads one JSON string per stdin line and writes one JSON array of ids per line (by default no
// BOS/EOS added and added-token text in the input matched), for bulk comparison against reference tokenizers.
#include <cstdio>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace tandem::app {

namespace {

struct TokenizeOptions {
  std::string gguf;
  std::string text;
  bool jsonl = false;
  bool add_special = false;
  bool no_parse_special = false;
};

// A piece for display: valid UTF-8 characters as they are, control characters and the bytes of an incomplete or
// ill-formed character escaped (\n, \t, \xNN).
std::string printable_piece(const std::string& piece) {
  std::string out;
  size_t i = 0;
  while (i < piece.size()) {
    const utf8::Seq seq = utf8::scan(piece, i);
    const auto c = static_cast<unsigned char>(piece[i]);
    if (seq.status != utf8::SeqStatus::kValid) {
      for (size_t k = 0; k < seq.length; ++k) out += fmt::format("\\x{:02X}", static_cast<unsigned char>(piece[i + k]));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02X}", c);
    } else {
      out.append(piece, i, seq.length);
    }
    i += seq.length;
  }
  return out;
}

int run_jsonl(const Tokenizer& tok, const TokenizeOptions& opt) {
  std::string line;
  std::string out;
  size_t line_no = 0;
  while (std::getline(std::cin, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_string()) {
      std::fflush(stdout);
      fmt::print(stderr, "error: stdin line {} is not a JSON string\n", line_no);
      return 1;
    }
    const std::vector<int32_t> ids = tok.encode(parsed.get_ref<const std::string&>(), opt.add_special, !opt.no_parse_special);
    out.clear();
    out += '[';
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += ',';
      out += std::to_string(ids[i]);
    }
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  std::fflush(stdout);
  return 0;
}

int run_tokenize(const TokenizeOptions& opt) {
  auto model = GgufModel::open(opt.gguf);
  if (!model) {
    fmt::print(stderr, "error: {}\n", model.status().message());
    return 1;
  }
  auto tok = Tokenizer::from_gguf(*model.value());
  if (!tok) {
    fmt::print(stderr, "error: {}\n", tok.status().message());
    return 1;
  }
  if (opt.jsonl) return run_jsonl(*tok.value(), opt);

  const std::vector<int32_t> ids = tok.value()->encode(opt.text, opt.add_special, !opt.no_parse_special);
  for (int32_t id : ids) {
    fmt::print("{:>8}  {}\n", id, printable_piece(tok.value()->token_piece(id)));
  }
  fmt::print("{} tokens\n", ids.size());
  return 0;
}

}  // namespace

void register_tokenize_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tokenize", "Tokenize text with a model's tokenizer (ids and pieces)");
  auto opt = std::make_shared<TokenizeOptions>();
  cmd->add_option("--gguf", opt->gguf, "GGUF model file (or split part / folder)")->required();
  auto* text = cmd->add_option("--text", opt->text, "Text to tokenize");
  auto* jsonl = cmd->add_flag("--jsonl", opt->jsonl,
                              "Read one JSON string per stdin line, write one JSON array of ids per line");
  text->excludes(jsonl);
  cmd->add_flag("--add-special", opt->add_special, "Add BOS/EOS where the model asks for them");
  cmd->add_flag("--no-parse-special", opt->no_parse_special, "Tokenize special-token text as plain text");
  cmd->callback([opt, text, &exit_code] {
    if (!opt->jsonl && text->count() == 0) {
      fmt::print(stderr, "error: tokenize needs --text or --jsonl\n");
      exit_code = 2;
      return;
    }
    exit_code = run_tokenize(*opt);
  });
}

}  // namespace tandem::app
