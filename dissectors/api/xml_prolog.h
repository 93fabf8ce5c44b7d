#pragma once
// The start of an XML document as the XML-based dissectors (POCT1-A, SDC) probe it: where the
// root element begins after what may come before it.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace medmon::xml {

inline bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

constexpr size_t kNeedMore = std::string_view::npos;
constexpr size_t kNotXml = static_cast<size_t>(-2);

// Offset of the root element's '<' after a UTF-8 byte order mark, white space, processing
// instructions (the XML declaration, "<?" ... "?>") and comments ("<!--" ... "-->").
// kNeedMore when s ends before the root element, kNotXml when it does not start as XML. A
// document type declaration ("<!DOCTYPE") is returned as the root: neither protocol uses one,
// and its name then matches no root they accept.
inline size_t root_start(std::string_view s) {
  size_t i = 0;
  if (s.size() >= 3 && static_cast<uint8_t>(s[0]) == 0xEF && static_cast<uint8_t>(s[1]) == 0xBB &&
      static_cast<uint8_t>(s[2]) == 0xBF)
    i = 3;
  for (;;) {
    while (i < s.size() && space(s[i])) ++i;
    if (i >= s.size()) return kNeedMore;
    if (s[i] != '<') return kNotXml;
    std::string_view rest = s.substr(i);
    std::string_view close;
    if (rest.substr(0, 2) == "<?") close = "?>";
    else if (rest.substr(0, 4) == "<!--") close = "-->";
    else if (rest.size() < 4 && std::string_view("<!--").substr(0, rest.size()) == rest) return kNeedMore;
    else if (rest.size() < 2) return kNeedMore;
    else return i;
    size_t e = s.find(close, i + 2);
    if (e == std::string_view::npos) return kNeedMore;
    i = e + close.size();
  }
}

}  // namespace medmon::xml
