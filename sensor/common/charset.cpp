#include "sensor/common/charset.h"

#include <iconv.h>

#include <array>
#include <cerrno>

#include "sensor/common/utf8.h"

namespace medmon::charset {
namespace {

// iconv names (glibc). jis_x0201 and ISO 8859-1 are decoded by arithmetic; JIS X 0208/0212 go
// through EUC-JP, whose code sets 1 and 3 are those tables with the high bit set.
const char* iconv_name(Set s) {
  switch (s) {
    case Set::iso8859_2: return "ISO-8859-2";
    case Set::iso8859_3: return "ISO-8859-3";
    case Set::iso8859_4: return "ISO-8859-4";
    case Set::iso8859_5: return "ISO-8859-5";
    case Set::iso8859_6: return "ISO-8859-6";
    case Set::iso8859_7: return "ISO-8859-7";
    case Set::iso8859_8: return "ISO-8859-8";
    case Set::iso8859_9: return "ISO-8859-9";
    case Set::iso8859_15: return "ISO-8859-15";
    case Set::tis620: return "TIS-620";
    case Set::jis_x0208: case Set::jis_x0212: return "EUC-JP";
    case Set::ks_x1001: return "EUC-KR";
    case Set::gb2312: return "GB2312";
    case Set::gb18030: return "GB18030";
    case Set::gbk: return "GBK";
    case Set::big5: return "BIG5";
    case Set::cns11643: return "EUC-TW";
    case Set::shift_jis: return "SHIFT_JIS";
    default: return nullptr;
  }
}

// One conversion descriptor per set and thread, opened on first use (iconv_open loads tables).
class Converters {
 public:
  ~Converters() {
    for (iconv_t cd : cd_)
      if (cd != kNone) iconv_close(cd);
  }
  iconv_t get(Set s) {
    iconv_t& cd = cd_[static_cast<size_t>(s)];
    if (cd == kNone) {
      const char* name = iconv_name(s);
      if (!name) return kNone;
      cd = iconv_open("UTF-8", name);
    } else {
      iconv(cd, nullptr, nullptr, nullptr, nullptr);  // back to the initial shift state
    }
    return cd;
  }
  static inline const iconv_t kNone = reinterpret_cast<iconv_t>(-1);

 private:
  std::array<iconv_t, static_cast<size_t>(Set::unknown) + 1> cd_ = [] {
    std::array<iconv_t, static_cast<size_t>(Set::unknown) + 1> a;
    a.fill(kNone);
    return a;
  }();
};

// Converts bytes all in one set (ASCII included, except for utf8 and the sets whose lower half
// is not ASCII) to UTF-8. False on a byte sequence the set does not define.
bool convert(std::string_view in, Set s, std::string& out) {
  switch (s) {
    case Set::ascii:
      for (char c : in)
        if (static_cast<unsigned char>(c) >= 0x80) return false;
      out.append(in);
      return true;
    case Set::utf8: out.append(in); return true;
    case Set::iso8859_1: append_latin1_as_utf8(out, in); return true;
    case Set::jis_x0201:
      // The lower half is read as ASCII (JIS X 0201 differs only at 0x5C and 0x7E, yen sign
      // and overline); the upper half's katakana map in order onto U+FF61..U+FF9F.
      for (char c : in) {
        unsigned char u = static_cast<unsigned char>(c);
        if (u < 0x80) out.push_back(c);
        else if (u >= 0xA1 && u <= 0xDF) append_utf8(out, 0xFF61u + (u - 0xA1u));
        else return false;
      }
      return true;
    default: break;
  }
  static thread_local Converters conv;
  iconv_t cd = conv.get(s);
  if (cd == Converters::kNone) return false;
  char* ip = const_cast<char*>(in.data());  // iconv does not write its input
  size_t il = in.size();
  char buf[512];
  while (il > 0) {
    char* op = buf;
    size_t ol = sizeof buf;
    size_t rc = iconv(cd, &ip, &il, &op, &ol);
    out.append(buf, sizeof buf - ol);
    if (rc == static_cast<size_t>(-1) && errno != E2BIG) return false;
  }
  // Flush a pending shift state (none of the sets used has one, but iconv requires the call).
  char* op = buf;
  size_t ol = sizeof buf;
  if (iconv(cd, nullptr, nullptr, &op, &ol) == static_cast<size_t>(-1)) return false;
  out.append(buf, sizeof buf - ol);
  return true;
}

bool is_gl_double(Set s) { return s == Set::jis_x0208 || s == Set::jis_x0212; }

// The set an ISO 2022 escape sequence designates (PS3.3 Table C.12-3/C.12-4), and whether it
// goes to G0 or G1. Returns the sequence length after ESC, 0 for one not known.
size_t escape(std::string_view s, Set& set, bool& g1) {
  auto starts = [&](std::string_view p) { return s.substr(0, p.size()) == p; };
  struct E { std::string_view seq; Set set; bool g1; };
  static constexpr E kEscapes[] = {
      {"(B", Set::ascii, false},      {"(J", Set::ascii, false},  // JIS X 0201 roman, as ASCII
      {"$B", Set::jis_x0208, false},  {"$@", Set::jis_x0208, false},
      {"$(D", Set::jis_x0212, false},
      {")I", Set::jis_x0201, true},   {"$)C", Set::ks_x1001, true}, {"$)A", Set::gb2312, true},
      {"-A", Set::iso8859_1, true},   {"-B", Set::iso8859_2, true}, {"-C", Set::iso8859_3, true},
      {"-D", Set::iso8859_4, true},   {"-L", Set::iso8859_5, true}, {"-G", Set::iso8859_6, true},
      {"-F", Set::iso8859_7, true},   {"-H", Set::iso8859_8, true}, {"-M", Set::iso8859_9, true},
      {"-b", Set::iso8859_15, true},  {"-T", Set::tis620, true},
  };
  for (const E& e : kEscapes)
    if (starts(e.seq)) { set = e.set; g1 = e.g1; return e.seq.size(); }
  return 0;
}

// ISO 2022: bytes are gathered into runs that one iconv set decodes (the lower half's 94x94
// sets and the upper half's katakana are rewritten into EUC-JP), each run converted when the
// set changes.
bool decode_iso2022(std::string_view raw, Set g0, Set g1, std::string& out) {
  std::string run;
  Set run_set = Set::ascii;
  bool run_ascii = true;  // the run holds only ASCII so far: any set can take it over
  auto use = [&](Set s) {
    if (s == run_set) return true;
    if (!run_ascii && !convert(run, run_set, out)) return false;
    if (!run_ascii) run.clear();
    run_set = s;
    return true;
  };
  for (size_t i = 0; i < raw.size();) {
    unsigned char b = static_cast<unsigned char>(raw[i]);
    if (b == 0x1B) {
      Set set;
      bool upper;
      size_t n = escape(raw.substr(i + 1), set, upper);
      if (n == 0) return false;
      (upper ? g1 : g0) = set;
      i += 1 + n;
      continue;
    }
    if (b < 0x80 && is_gl_double(g0) && b > 0x20 && b < 0x7F) {
      if (i + 1 >= raw.size()) return false;
      unsigned char b2 = static_cast<unsigned char>(raw[i + 1]);
      if (b2 <= 0x20 || b2 >= 0x7F) return false;
      if (!use(Set::jis_x0208)) return false;  // EUC-JP takes both tables
      if (g0 == Set::jis_x0212) run.push_back('\x8F');
      run.push_back(static_cast<char>(b | 0x80));
      run.push_back(static_cast<char>(b2 | 0x80));
      run_ascii = false;
      i += 2;
      continue;
    }
    if (b >= 0x80) {
      if (g1 == Set::ascii) return false;  // no upper half designated
      if (g1 == Set::jis_x0201) {
        if (!use(Set::jis_x0208)) return false;
        run.push_back('\x8E');  // EUC-JP's half-width katakana
      } else if (!use(g1)) {
        return false;
      }
      run_ascii = false;
    }
    run.push_back(static_cast<char>(b));
    ++i;
  }
  return convert(run, run_ascii ? Set::ascii : run_set, out);
}

}  // namespace

bool to_utf8(std::string_view raw, Set initial, bool iso2022, std::string& out, Set upper) {
  size_t start = out.size();
  bool ok;
  if (!iso2022) {
    ok = convert(raw, initial, out);
  } else {
    Set g0 = is_gl_double(initial) ? initial : Set::ascii;
    Set g1 = is_gl_double(initial) || initial == Set::ascii ? upper : initial;
    ok = decode_iso2022(raw, g0, g1, out);
  }
  if (!ok) {
    out.resize(start);
    out.append(raw);
  }
  return ok;
}

}  // namespace medmon::charset
