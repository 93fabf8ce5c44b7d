#pragma once
// UTF-8 encoding for dissectors whose protocols carry text in other character sets: events are
// UTF-8 throughout.
#include <cstdint>
#include <string>
#include <string_view>

namespace medmon {

// Appends code point cp as UTF-8. Callers pass Unicode scalar values (no surrogates, at most
// 0x10FFFF); anything else is not checked here.
inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | cp >> 6));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | cp >> 12));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | cp >> 18));
    out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Appends ISO 8859-1 text as UTF-8. Each Latin-1 byte is the code point of the same number, so
// no table and no iconv are needed (NUL bytes included: callers cut the text where they end it).
inline void append_latin1_as_utf8(std::string& out, std::string_view latin1) {
  for (char ch : latin1) append_utf8(out, static_cast<unsigned char>(ch));
}

}  // namespace medmon
