// Text helpers for the Jinja engine: UTF-8 code points and the Python `str` behaviour that chat templates
// rely on (whitespace set, strip/split/splitlines, case mapping, float repr, %-formatting).
//
// Strings are UTF-8 byte strings; anything Python counts in characters (len, index, slice, find) is
// counted here in code points. Bytes that are not valid UTF-8 decode to U+DC80+byte and encode back to
// the same byte, so a round trip never changes a string. Case mapping covers ASCII, Latin-1, Latin
// Extended-A, Greek and Cyrillic (what Python does elsewhere is not reproduced).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::chat::jinja {

std::u32string utf8_decode(std::string_view s);
std::string utf8_encode(std::u32string_view s);
void utf8_append(std::string& out, char32_t c);
size_t utf8_length(std::string_view s);
// Decodes one code point at `pos` and advances `pos` (invalid bytes as above).
char32_t utf8_next(std::string_view s, size_t& pos);

bool py_isspace(char32_t c);       // str.isspace() for one character
bool py_is_linebreak(char32_t c);  // what str.splitlines() splits on (\r\n counts once)
char32_t py_upper(char32_t c);
char32_t py_lower(char32_t c);
bool py_is_cased(char32_t c);      // has an upper or lower case form

// str.strip / lstrip / rstrip; `chars` nullopt means whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / rsplit; `sep` nullopt means runs of whitespace. maxsplit < 0: no limit. Throws
// std::invalid_argument on an empty separator.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> py_rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
std::string py_title(std::string_view s);  // str.title()
std::string py_replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count);
size_t py_count(std::string_view s, std::string_view sub);

std::string py_float_repr(double v);          // repr(float)
std::string py_str_repr(std::string_view s);  // repr(str), with Python's choice of quotes

// One conversion of a format spec / %-spec applied to a number or string, as Python does.
struct FormatSpec {
  char fill = ' ';
  char align = 0;  // '<', '>', '^', '=' or 0 (default)
  char sign = '-';
  bool alternate = false;
  bool zero = false;
  int width = -1;
  int precision = -1;
  bool thousands = false;
  char type = 0;
};
std::string pad_to_width(std::string body, const FormatSpec& spec, bool numeric);
std::string format_float(double v, const FormatSpec& spec);      // types e E f F g G % and 0 (repr)
std::string format_integer(int64_t v, const FormatSpec& spec);   // types d b o x X c n and 0

}  // namespace tandem::chat::jinja
