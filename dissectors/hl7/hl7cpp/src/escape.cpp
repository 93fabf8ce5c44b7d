#include "hl7cpp/message.h"

#include <cstring>

namespace hl7cpp {

namespace {
int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Formatting commands (HL7 v2 §2.10.6) as plain text, the way python-hl7 renders them.
bool formatting(std::string_view seq, std::string& out) {
  if (seq.size() < 3 || seq[0] != '.') return false;
  std::string_view cmd = seq.substr(0, 3);
  const char* text;
  if (cmd == ".br" || cmd == ".sp" || cmd == ".ce") text = "\r";
  else if (cmd == ".fi" || cmd == ".nf") text = "";
  else if (cmd == ".in" || cmd == ".ti") text = "    ";
  else if (cmd == ".sk") text = " ";
  else return false;
  std::string_view arg = seq.substr(3);
  size_t count = 1;
  if (!arg.empty()) {
    // ".sp2", ".in+4", ".ti-2": the number is a repeat count for the rendered text.
    if (arg[0] == '+' || arg[0] == '-') arg.remove_prefix(1);
    size_t n = 0;
    for (char c : arg) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + static_cast<size_t>(c - '0');
      if (n > 64) n = 64;  // bounded output for hostile counts
    }
    if (arg.empty()) return false;
    count = n;
  }
  for (size_t i = 0; i < count; ++i) out.append(text);
  return true;
}

// \Cxxyy\ and \Mxxyy[zz]\ (section 2.7.2): the bytes after ESC of the ISO 2022 escape sequence
// they stand for, two (C) or two or three (M) hex pairs, each an intermediate or final byte.
bool charset_switch(std::string_view seq, char (&bytes)[3], size_t& n) {
  std::string_view hex = seq.substr(1);
  if (hex.size() != 4 && !(seq[0] == 'M' && hex.size() == 6)) return false;
  n = hex.size() / 2;
  for (size_t i = 0; i < n; ++i) {
    int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
    if (a < 0 || b < 0) return false;
    int v = a << 4 | b;
    if (v < 0x20 || v > 0x7E) return false;
    bytes[i] = static_cast<char>(v);
  }
  return true;
}
}  // namespace

bool unescape_to(std::string_view raw, const Separators& sep, std::string& out, CharsetSwitch switches) {
  const char esc = sep.escape;
  const char* p = raw.data();
  const char* end = p + raw.size();
  bool ok = true;
  while (p < end) {
    const char* q = static_cast<const char*>(std::memchr(p, static_cast<unsigned char>(esc), static_cast<size_t>(end - p)));
    if (!q) { out.append(p, static_cast<size_t>(end - p)); break; }
    out.append(p, static_cast<size_t>(q - p));
    const char* close = static_cast<const char*>(std::memchr(q + 1, static_cast<unsigned char>(esc), static_cast<size_t>(end - q - 1)));
    if (!close) { ok = false; break; }  // unterminated: dropped, as python-hl7 does
    std::string_view seq(q + 1, static_cast<size_t>(close - q - 1));
    p = close + 1;
    if (seq.empty()) { ok = false; continue; }
    if (seq.size() == 1) {
      switch (seq[0]) {
        case 'F': out.push_back(sep.field); continue;
        case 'S': out.push_back(sep.component); continue;
        case 'T': out.push_back(sep.subcomponent); continue;
        case 'R': out.push_back(sep.repetition); continue;
        case 'E': out.push_back(sep.escape); continue;
        case 'P': if (sep.truncation) out.push_back(sep.truncation); continue;
        case 'H': case 'N': continue;  // highlight on/off: presentation only
        default: ok = false; continue;
      }
    }
    switch (seq[0]) {
      case 'X': case 'x': {
        std::string_view hex = seq.substr(1);
        if (hex.size() % 2) ok = false;
        for (size_t i = 0; i + 1 < hex.size(); i += 2) {
          int a = hexval(hex[i]), b = hexval(hex[i + 1]);
          if (a < 0 || b < 0) { ok = false; break; }
          out.push_back(static_cast<char>(a << 4 | b));
        }
        continue;
      }
      case 'C': case 'M': {
        char bytes[3];
        size_t n = 0;
        if (!charset_switch(seq, bytes, n)) { ok = false; continue; }
        if (switches == CharsetSwitch::iso2022) {
          out.push_back('\x1B');
          out.append(bytes, n);
        }
        continue;
      }
      case 'Z': continue;  // application-defined
      case '.':
        if (!formatting(seq, out)) ok = false;
        continue;
      default:
        ok = false;
        continue;
    }
  }
  return ok;
}

}  // namespace hl7cpp
