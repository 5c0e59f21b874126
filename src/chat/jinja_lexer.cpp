#include "chat/jinja_lexer.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "chat/jinja_text.h"

namespace tandem::chat::jinja {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80; }
bool is_name_char(unsigned char c) { return is_name_start(c) || is_digit(static_cast<char>(c)); }

class Lexer {
 public:
  explicit Lexer(std::string_view source) {
    // Newlines: \r\n and \r become \n; one trailing newline is dropped (keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t k = 0; k < source.size(); ++k) {
      if (source[k] == '\r') {
        src_ += '\n';
        if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
      } else {
        src_ += source[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t k = 0; k < src_.size(); ++k) {
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
    }
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    const size_t n = src_.size();
    while (pos < n) {
      const size_t open = find_opener(pos);
      if (open == std::string::npos) {
        emit_data(pos, n);
        break;
      }
      const char kind = src_[open + 1];
      const char sign = (open + 2 < n && (src_[open + 2] == '-' || src_[open + 2] == '+')) ? src_[open + 2] : 0;
      size_t raw_end = 0;
      const bool raw = kind == '%' && match_raw_begin(open, raw_end);
      emit_stripped_data(pos, open, sign, kind != '{', line_starting);
      if (raw) {
        pos = lex_raw(open, raw_end, line_starting);
        continue;
      }
      if (kind == '#') {
        pos = skip_comment(open, line_starting);
        continue;
      }
      pos = lex_tag(open, kind == '%', sign ? 3 : 2, line_starting);
    }
    tokens_.push_back(Token{TokenType::Eof, "", 0, 0, pos_at(src_.size())});
    return std::move(tokens_);
  }

 private:
  Pos pos_at(size_t offset) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    const size_t line = static_cast<size_t>(it - line_starts_.begin());
    const size_t start = line_starts_[line - 1];
    return Pos{static_cast<int>(line),
               static_cast<int>(utf8_length(std::string_view(src_).substr(start, offset - start))) + 1};
  }

  [[noreturn]] void fail(const std::string& msg, size_t offset) const { throw Error(msg, pos_at(offset)); }

  size_t find_opener(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string::npos; k = src_.find('{', k + 1)) {
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  // Python's \s (Unicode whitespace) at `pos`: its byte length, or 0.
  size_t space_len(size_t pos) const {
    if (pos >= src_.size()) return 0;
    size_t next = pos;
    const char32_t c = utf8_next(src_, next);
    return py_isspace(c) ? next - pos : 0;
  }
  size_t skip_spaces(size_t pos) const {
    for (size_t len = space_len(pos); len; len = space_len(pos)) pos += len;
    return pos;
  }
  bool at(size_t pos, std::string_view s) const { return src_.compare(pos, s.size(), s) == 0; }

  // `{%(-|+|)\s*raw\s*(-%}\s*|%})` at `open`; sets `end` past it.
  bool match_raw_begin(size_t open, size_t& end) const {
    size_t p = open + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = skip_spaces(p);
    if (!at(p, "raw")) return false;
    p = skip_spaces(p + 3);
    if (at(p, "-%}")) {
      end = skip_spaces(p + 3);
      return true;
    }
    if (at(p, "%}")) {
      end = p + 2;
      return true;
    }
    return false;
  }

  void emit_data(size_t begin, size_t end) {
    if (end > begin) tokens_.push_back(Token{TokenType::Data, src_.substr(begin, end - begin), 0, 0, pos_at(begin)});
  }

  // Data before a tag, with `-` stripping and lstrip_blocks applied (jinja2 OptionalLStrip).
  void emit_stripped_data(size_t begin, size_t end, char sign, bool lstrip_allowed, bool line_starting) {
    std::string_view text(src_.data() + begin, end - begin);
    if (sign == '-') {
      text = text.substr(0, py_strip(text, std::nullopt, false, true).size());
    } else if (sign != '+' && lstrip_allowed) {
      const size_t nl = text.rfind('\n');
      const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
        size_t p = begin + l_pos;
        while (p < end && space_len(p)) p += space_len(p);
        if (p == end) text = text.substr(0, l_pos);
      }
    }
    emit_data(begin, begin + text.size());
  }

  size_t lex_raw(size_t open, size_t body_begin, bool& line_starting) {
    line_starting = src_[body_begin - 1] == '\n';
    for (size_t k = find_opener(body_begin); k != std::string::npos; k = find_opener(k + 1)) {
      if (src_[k + 1] != '%') continue;
      size_t p = k + 2;
      const char sign = (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ? src_[p] : 0;
      if (sign) ++p;
      p = skip_spaces(p);
      if (!at(p, "endraw")) continue;
      p = skip_spaces(p + 6);
      size_t end;
      if (at(p, "+%}")) {
        end = p + 3;
      } else if (at(p, "-%}")) {
        end = skip_spaces(p + 3);
      } else if (at(p, "%}")) {
        end = p + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      } else {
        continue;
      }
      emit_stripped_data(body_begin, k, sign, true, line_starting);
      line_starting = src_[end - 1] == '\n';
      return end;
    }
    fail("missing end of raw directive ({% endraw %})", open);
  }

  size_t skip_comment(size_t open, bool& line_starting) {
    const size_t text_begin = open + 2 + ((src_[open + 2] == '-' || src_[open + 2] == '+') ? 1 : 0);
    for (size_t k = src_.find("#}", text_begin); k != std::string::npos; k = src_.find("#}", k + 1)) {
      size_t end;
      if (k > text_begin && src_[k - 1] == '+') {
        end = k + 2;
      } else if (k > text_begin && src_[k - 1] == '-') {
        end = skip_spaces(k + 2);
      } else {
        end = k + 2;
        if (end < src_.size() && src_[end] == '\n') ++end;
      }
      line_starting = src_[end - 1] == '\n';
      return end;
    }
    fail("missing end of comment tag ('#}')", open);
  }

  size_t lex_tag(size_t open, bool block, size_t opener_len, bool& line_starting) {
    tokens_.push_back(Token{block ? TokenType::BlockBegin : TokenType::VarBegin, "", 0, 0, pos_at(open)});
    size_t p = open + opener_len;
    std::vector<std::pair<char, size_t>> balance;  // expected closer, where its opener was
    while (true) {
      if (p >= src_.size()) {
        if (!balance.empty()) fail(std::string("unclosed '") + src_[balance.back().second] + "'", balance.back().second);
        fail(block ? "missing end of tag ('%}') for the tag opened here" : "missing end of expression ('}}') for the "
                                                                           "expression opened here",
             open);
      }
      if (balance.empty()) {
        size_t end = 0;
        if (block) {
          if (at(p, "+%}")) {
            end = p + 3;
          } else if (at(p, "-%}")) {
            end = skip_spaces(p + 3);
          } else if (at(p, "%}")) {
            end = p + 2;
            if (end < src_.size() && src_[end] == '\n') ++end;  // trim_blocks
          }
        } else if (at(p, "-}}")) {
          end = skip_spaces(p + 3);
        } else if (at(p, "}}")) {
          end = p + 2;
        }
        if (end) {
          tokens_.push_back(Token{block ? TokenType::BlockEnd : TokenType::VarEnd, "", 0, 0, pos_at(p)});
          line_starting = src_[end - 1] == '\n';
          return end;
        }
      }
      if (const size_t sp = space_len(p)) {
        p += sp;
        continue;
      }
      const unsigned char c = static_cast<unsigned char>(src_[p]);
      if (is_digit(static_cast<char>(c))) {
        p = lex_number(p);
      } else if (is_name_start(c)) {
        size_t q = p;
        while (q < src_.size() && is_name_char(static_cast<unsigned char>(src_[q])) && !space_len(q)) ++q;
        tokens_.push_back(Token{TokenType::Name, src_.substr(p, q - p), 0, 0, pos_at(p)});
        p = q;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        p = lex_operator(p, balance);
      }
    }
  }

  size_t lex_number(size_t p) {
    const size_t start = p;
    const auto digits = [&](size_t q, auto pred) {  // (d+_)*d+ ; returns end or q when none
      size_t r = q;
      while (r < src_.size() && pred(src_[r])) {
        ++r;
        if (r + 1 < src_.size() && src_[r] == '_' && pred(src_[r + 1])) ++r;
      }
      return r;
    };
    const auto dec = [](char ch) { return is_digit(ch); };
    // Float: digits, then ".digits" and/or an exponent.
    size_t q = digits(p, dec);
    size_t f = q;
    bool is_float = false;
    if (f + 1 < src_.size() && src_[f] == '.' && is_digit(src_[f + 1])) {
      f = digits(f + 1, dec);
      is_float = true;
    }
    if (f < src_.size() && (src_[f] == 'e' || src_[f] == 'E')) {
      size_t e = f + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && is_digit(src_[e])) {
        f = digits(e, dec);
        is_float = true;
      }
    }
    if (is_float) {
      std::string text;
      for (size_t k = start; k < f; ++k) {
        if (src_[k] != '_') text += src_[k];
      }
      tokens_.push_back(Token{TokenType::Float, text, 0, std::strtod(text.c_str(), nullptr), pos_at(start)});
      return f;
    }
    int base = 10;
    size_t body = p;
    if (src_[p] == '0' && p + 1 < src_.size()) {
      const char x = static_cast<char>(src_[p + 1] | 0x20);
      if (x == 'x' || x == 'o' || x == 'b') {
        base = x == 'x' ? 16 : (x == 'o' ? 8 : 2);
        body = p + 2;
        if (body < src_.size() && src_[body] == '_') ++body;
      }
    }
    const auto in_base = [base](char ch) {
      const int v = is_digit(ch) ? ch - '0' : ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f' ? (ch | 0x20) - 'a' + 10 : 99);
      return v < base;
    };
    if (base == 10) {
      q = src_[p] == '0' ? digits(p, [](char ch) { return ch == '0'; }) : digits(p, dec);
    } else {
      q = digits(body, in_base);
      if (q == body) fail("invalid integer literal", start);
    }
    int64_t value = 0;
    for (size_t k = body; k < q; ++k) {
      if (src_[k] == '_') continue;
      const int d = is_digit(src_[k]) ? src_[k] - '0' : (src_[k] | 0x20) - 'a' + 10;
      if (value > (std::numeric_limits<int64_t>::max() - d) / base) fail("integer literal too large", start);
      value = value * base + d;
    }
    tokens_.push_back(Token{TokenType::Integer, src_.substr(start, q - start), value, 0, pos_at(start)});
    return q;
  }

  size_t lex_string(size_t p) {
    const char quote = src_[p];
    std::string value;
    size_t q = p + 1;
    while (true) {
      if (q >= src_.size()) fail("unterminated string literal", p);
      const char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        ++q;
        continue;
      }
      if (q + 1 >= src_.size()) fail("unterminated string literal", p);
      const char e = src_[q + 1];
      q += 2;
      switch (e) {
        case '\n': break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'n': value += '\n'; break;
        case 'r': value += '\r'; break;
        case 't': value += '\t'; break;
        case 'v': value += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t len = e == 'x' ? 2 : (e == 'u' ? 4 : 8);
          char32_t cp = 0;
          for (size_t k = 0; k < len; ++k) {
            const char h = q + k < src_.size() ? src_[q + k] : '\0';
            const char l = static_cast<char>(h | 0x20);
            const int d = is_digit(h) ? h - '0' : (l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1);
            if (d < 0) fail(std::string("truncated \\") + e + " escape in string literal", q - 2);
            cp = cp * 16 + static_cast<char32_t>(d);
          }
          q += len;
          if (cp > 0x10FFFF) fail("illegal Unicode character in string literal", q - 2 - len);
          // A \uD8xx\uDCxx pair is combined (Python would keep two lone surrogates, unprintable anyway).
          if (cp >= 0xD800 && cp <= 0xDBFF && at(q, "\\u")) {
            const long lo = std::strtol(src_.substr(q + 2, 4).c_str(), nullptr, 16);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + static_cast<char32_t>(lo - 0xDC00);
              q += 6;
            }
          }
          utf8_append(value, cp);
          break;
        }
        case 'N': fail("\\N{...} escapes are not supported in string literals", q - 2);
        default:
          if (e >= '0' && e <= '7') {
            int v = e - '0';
            for (int k = 0; k < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++k) v = v * 8 + (src_[q++] - '0');
            utf8_append(value, static_cast<char32_t>(v));
          } else {
            value += '\\';
            value += e;
          }
      }
    }
    tokens_.push_back(Token{TokenType::String, std::move(value), 0, 0, pos_at(p)});
    return q + 1;
  }

  size_t lex_operator(size_t p, std::vector<std::pair<char, size_t>>& balance) {
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (std::string_view op : kTwo) {
      if (at(p, op)) {
        tokens_.push_back(Token{TokenType::Operator, std::string(op), 0, 0, pos_at(p)});
        return p + 2;
      }
    }
    const char c = src_[p];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos) {
      size_t next = p;
      const char32_t cp = utf8_next(src_, next);
      std::string shown;
      utf8_append(shown, cp);
      fail("unexpected character '" + shown + "'", p);
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.emplace_back(c == '(' ? ')' : (c == '[' ? ']' : '}'), p);
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) fail(std::string("unexpected '") + c + "'", p);
      if (balance.back().first != c) {
        fail(std::string("unexpected '") + c + "', expected '" + balance.back().first + "'", p);
      }
      balance.pop_back();
    }
    tokens_.push_back(Token{TokenType::Operator, std::string(1, c), 0, 0, pos_at(p)});
    return p + 1;
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) { return Lexer(source).run(); }

std::string describe_token(const Token& token) {
  switch (token.type) {
    case TokenType::Data: return "template data";
    case TokenType::VarBegin: return "begin of print statement ('{{')";
    case TokenType::VarEnd: return "end of print statement ('}}')";
    case TokenType::BlockBegin: return "begin of statement block ('{%')";
    case TokenType::BlockEnd: return "end of statement block ('%}')";
    case TokenType::Name: return "'" + token.text + "'";
    case TokenType::String: return "string literal";
    case TokenType::Integer: return "integer literal";
    case TokenType::Float: return "float literal";
    case TokenType::Operator: return "'" + token.text + "'";
    case TokenType::Eof: return "end of template";
  }
  return "token";
}

}  // namespace tandem::chat::jinja
