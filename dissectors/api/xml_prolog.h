#pragma once
// The start of an XML document as the XML-based dissectors (POCT1-A, SDC) probe it: where the
// root element begins after what may come before it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace medmon::xml {

inline bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

constexpr size_t kNeedMore = std::string_view::npos;
constexpr size_t kNotXml = static_cast<size_t>(-2);

// Where root_start stopped in the bytes it was given, for a caller that holds a long prolog
// while more bytes come (the same bytes again, more behind them): it goes on from there instead
// of reading the prolog again, so holding one costs linear time. `at`: the item (or end of white
// space) it stopped at; `searched`: how far that item's end was looked for.
struct PrologScan {
  size_t at = 0;
  size_t searched = 0;
};

// Offset of the root element's '<' after UTF-8 byte order marks, white space, processing
// instructions (the XML declaration, "<?" ... "?>") and comments ("<!--" ... "-->").
// kNeedMore when s ends before the root element, kNotXml when it does not start as XML. A
// document type declaration ("<!DOCTYPE") is returned as the root: neither protocol uses one,
// and its name then matches no root they accept. `scan.at` is then the offset it stopped at (the
// root, the byte that is not XML, or where more bytes are needed).
inline size_t root_start(std::string_view s, PrologScan& scan) {
  size_t i = scan.at;
  static constexpr std::string_view kBom = "\xEF\xBB\xBF";
  for (;;) {
    // White space, and a byte order mark among it: the next document of a stream starts with
    // one after the line end that closed the previous one.
    for (;;) {
      while (i < s.size() && space(s[i])) ++i;
      std::string_view rest = s.substr(std::min(i, s.size()), 3);
      if (rest.empty() || rest != kBom.substr(0, rest.size())) break;
      if (rest.size() < 3) return kNeedMore;
      i += 3;
    }
    if (i != scan.at) scan = {i, 0};
    if (i >= s.size()) return kNeedMore;
    if (s[i] != '<') return kNotXml;
    std::string_view rest = s.substr(i);
    std::string_view close;
    if (rest.substr(0, 2) == "<?") close = "?>";
    else if (rest.substr(0, 4) == "<!--") close = "-->";
    else if (rest.size() < 4 && std::string_view("<!--").substr(0, rest.size()) == rest) return kNeedMore;
    else if (rest.size() < 2) return kNeedMore;
    else return i;
    size_t e = s.find(close, std::max(i + 2, scan.searched));
    if (e == std::string_view::npos) {
      scan.searched = s.size() - std::min(s.size(), close.size() - 1);
      return kNeedMore;
    }
    i = e + close.size();
  }
}

inline size_t root_start(std::string_view s) {
  PrologScan scan;
  return root_start(s, scan);
}

}  // namespace medmon::xml
