#pragma once
// Character data of XML as the XML-based dissectors (POCT1-A, SDC) read it: the predefined
// entities and character references decoded, so that a value means the same however it was
// written.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sensor/common/utf8.h"

namespace medmon::xml {

// A character reference's text between "&#" and ";" ("45", "x2D") appended as UTF-8, when it
// names a character XML allows (no NUL or other C0 control but tab, LF and CR, no surrogate,
// U+FFFE or U+FFFF, nothing past U+10FFFF). False leaves `out` as it was.
inline bool char_ref(std::string_view ref, std::string& out) {
  bool hex = !ref.empty() && ref[0] == 'x';
  std::string_view digits = ref.substr(hex ? 1 : 0);
  if (digits.empty()) return false;
  uint32_t cp = 0;
  for (char c : digits) {
    uint32_t d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return false;
    cp = cp * (hex ? 16 : 10) + d;
    if (cp > 0x10FFFF) return false;
  }
  bool allowed = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) ||
                 (cp >= 0xE000 && cp <= 0xFFFD) || cp >= 0x10000;
  if (!allowed) return false;
  append_utf8(out, cp);
  return true;
}

// `v` appended to `out` with the five predefined entities and character references (&#45;
// &#x2D;) decoded; anything else is kept as written. Never longer than `v`.
inline void append_decoded(std::string_view v, std::string& out) {
  constexpr size_t kMaxEntity = 16;  // "#x" and a code point with leading zeros
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '&') { out.push_back(v[i]); continue; }
    size_t len = v.substr(i + 1, kMaxEntity + 1).find(';');
    if (len == std::string_view::npos) { out.push_back('&'); continue; }
    std::string_view ent = v.substr(i + 1, len);
    char c = 0;
    if (ent == "amp") c = '&';
    else if (ent == "lt") c = '<';
    else if (ent == "gt") c = '>';
    else if (ent == "quot") c = '"';
    else if (ent == "apos") c = '\'';
    if (c) out.push_back(c);
    else if (ent.empty() || ent[0] != '#' || !char_ref(ent.substr(1), out)) { out.push_back('&'); continue; }
    i += len + 1;
  }
}

}  // namespace medmon::xml
