#include "sensor/output/json_writer.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace medmon {

namespace {
constexpr char kHex[] = "0123456789abcdef";

// Length of a valid UTF-8 sequence starting at s[i], or 0 when the bytes are not valid UTF-8.
size_t utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return n;
}

// The general escaper, for any buffer with push_back and append.
template <class Out>
void escape_into(Out& out, std::string_view s) {
  out.push_back('"');
  size_t i = 0;
  const auto* d = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    // Copy the longest run of plain ASCII in one go.
    size_t j = i;
    while (j < s.size() && !JsonWriter::needs_escape(d[j])) ++j;
    out.append(s.data() + i, j - i);
    i = j;
    if (i >= s.size()) break;
    unsigned char c = d[i];
    if (c >= 0x80) {
      size_t n = utf8_len(s, i);
      if (n) { out.append(s.data() + i, n); i += n; continue; }
      out.append("\\u00", 4); out.push_back(kHex[c >> 4]); out.push_back(kHex[c & 15]);
      ++i;
      continue;
    }
    switch (c) {
      case '"': out.append("\\\"", 2); break;
      case '\\': out.append("\\\\", 2); break;
      case '\n': out.append("\\n", 2); break;
      case '\r': out.append("\\r", 2); break;
      case '\t': out.append("\\t", 2); break;
      default: out.append("\\u00", 4); out.push_back(kHex[c >> 4]); out.push_back(kHex[c & 15]);
    }
    ++i;
  }
  out.push_back('"');
}
}  // namespace

void JsonWriter::append_escaped(JsonBuffer& out, std::string_view s) {
  // Common case: nothing to escape, checked while copying.
  char* start = out.tail(s.size() + 2 + 16);
  *start = '"';
  char* p = copy_plain(start + 1, s.data(), s.size());
  if (p) {
    *p++ = '"';
    out.commit(p);
    return;
  }
  escape_into(out, s);
}

void JsonWriter::append_escaped(std::string& out, std::string_view s) { escape_into(out, s); }

void JsonWriter::value(double v) {
  comma();
  if (!std::isfinite(v)) { out_.append("null", 4); return; }
  // Integer arithmetic for the usual magnitudes (durations, rates): printf is slow, and this is
  // on every flow event. Rounds half away from zero, deterministically.
  if (std::fabs(v) < 9.0e12) {
    int64_t micro = std::llround(v * 1e6);
    char* p = out_.tail(32);
    if (micro < 0) { *p++ = '-'; micro = -micro; }
    p = put_uint(p, static_cast<uint64_t>(micro / 1000000));
    int64_t f = micro % 1000000;
    *p++ = '.';
    for (int i = 6; i >= 1; --i) { p[i - 1] = static_cast<char>('0' + f % 10); f /= 10; }
    out_.commit(p + 6);
    return;
  }
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%.6f", v);
  out_.append(buf, static_cast<size_t>(n));
}

}  // namespace medmon
