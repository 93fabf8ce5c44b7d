#include "hl7cpp/message.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace hl7cpp {

namespace {

bool is_header_name(std::string_view s) {
  return s.size() >= 3 && (s.substr(0, 3) == "MSH" || s.substr(0, 3) == "FHS" || s.substr(0, 3) == "BHS");
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Next CR or LF in [p, end), or end.
const char* find_eol(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    unsigned m = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(b, cr), _mm_cmpeq_epi8(b, lf))));
    if (m) return p + __builtin_ctz(m);
    p += 16;
  }
#endif
  while (p < end && *p != '\r' && *p != '\n') ++p;
  return p;
}

// Calls f(segment, offset) for each non-empty line; lines end with CR, LF or CRLF. One pass:
// splitting on both is the same as splitting on CR alone when the text has no LF.
template <class F>
void for_each_line(std::string_view text, bool& saw_lf, F&& f) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  saw_lf = false;
  const char* p = begin;
  while (p < end) {
    const char* q = find_eol(p, end);
    if (q < end && *q == '\n') saw_lf = true;
    if (q > p && !f(std::string_view(p, static_cast<size_t>(q - p)), static_cast<size_t>(p - begin))) {
      if (!saw_lf && q < end) saw_lf = std::memchr(q, '\n', static_cast<size_t>(end - q)) != nullptr;
      return;
    }
    if (q == end) break;
    p = q + 1;
  }
}

}  // namespace

// Fields and components are short: a plain loop beats a memchr call per piece.
std::string_view nth_piece(std::string_view s, char c, size_t n) {
  if (n == 0) return {};
  size_t start = 0, i = 0;
  const size_t len = s.size();
  const char* d = s.data();
  while (--n) {
    while (i < len && d[i] != c) ++i;
    if (i == len) return {};
    start = ++i;
  }
  while (i < len && d[i] != c) ++i;
  return std::string_view(d + start, i - start);
}

size_t split_pieces(std::string_view s, char c, std::string_view* out, size_t n) {
  if (n == 0) return 0;
  const char* d = s.data();
  const size_t len = s.size();
  size_t k = 0, start = 0;
  for (size_t i = 0; i < len; ++i) {
    if (d[i] != c) continue;
    out[k++] = std::string_view(d + start, i - start);
    start = i + 1;
    if (k == n) return k;
  }
  out[k++] = std::string_view(d + start, len - start);
  for (size_t j = k; j < n; ++j) out[j] = {};
  return k;
}

size_t piece_count(std::string_view s, char c) {
  size_t n = 1;
  for (char ch : s) n += ch == c;
  return n;
}

bool Field::has_value_slow() const {
  if (raw_.empty() || is_null()) return false;
  if (leaf_ || !sep_) return true;
  for (char ch : raw_)
    if (ch != sep_->component && ch != sep_->repetition && ch != sep_->subcomponent && ch != ' ') return true;
  return false;
}

std::string Component::text() const {
  std::string out;
  if (sep_ && !leaf_) hl7cpp::unescape_to(raw_, *sep_, out); else out.assign(raw_);
  return out;
}
std::string Repetition::text() const {
  std::string out;
  if (sep_ && !leaf_) hl7cpp::unescape_to(raw_, *sep_, out); else out.assign(raw_);
  return out;
}
std::string Field::text() const {
  std::string out;
  if (sep_ && !leaf_) hl7cpp::unescape_to(raw_, *sep_, out); else out.assign(raw_);
  return out;
}

bool Segment::is_header() const {
  return sep_ && raw_.size() >= 4 && is_header_name(raw_) && raw_[3] == sep_->field;
}

std::string_view Segment::name_slow() const {
  if (!sep_) return raw_.substr(0, 3);
  if (is_header()) return raw_.substr(0, 3);
  size_t k = raw_.find(sep_->field);
  return k == std::string_view::npos ? raw_ : raw_.substr(0, k);
}

size_t Segment::field_count() const {
  if (raw_.empty() || !sep_) return 0;
  size_t pieces = piece_count(raw_, sep_->field);
  return is_header() ? pieces : pieces - 1;
}

Field Segment::field(size_t n) const {
  if (raw_.empty() || !sep_) return Field();
  if (is_header()) {
    if (n == 0) return Field(raw_.substr(0, 3), sep_, true);
    if (n == 1) return Field(raw_.substr(3, 1), sep_, true);
    if (n == 2) return Field(nth_piece(raw_, sep_->field, 2), sep_, true);
    return Field(nth_piece(raw_, sep_->field, n), sep_);
  }
  return Field(nth_piece(raw_, sep_->field, n + 1), sep_, n == 0);
}

size_t Segment::split_fields(std::string_view* out, size_t out_size) const {
  if (raw_.empty() || !sep_ || out_size == 0) return 0;
  const char* d = raw_.data();
  const size_t len = raw_.size();
  const char fs = sep_->field;
  size_t k = 0, start = 0;
  if (is_header()) {
    out[k++] = raw_.substr(0, 3);
    if (k < out_size) out[k++] = raw_.substr(3, 1);
    start = 4;
  }
  if (k >= out_size) return k;
  size_t i = start;
#if defined(__SSE2__)
  // 16 bytes per step: one compare finds every separator in the block.
  const __m128i needle = _mm_set1_epi8(fs);
  while (i + 16 <= len) {
    __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(block, needle)));
    while (mask) {
      size_t at = i + static_cast<size_t>(__builtin_ctz(mask));
      out[k++] = std::string_view(d + start, at - start);
      start = at + 1;
      if (k == out_size) return k;
      mask &= mask - 1;
    }
    i += 16;
  }
#endif
  for (; i < len; ++i) {
    if (d[i] == fs) {
      out[k++] = std::string_view(d + start, i - start);
      start = i + 1;
      if (k == out_size) return k;
    }
  }
  out[k++] = std::string_view(d + start, len - start);
  return k;
}

size_t Segment::pick_fields(std::string_view* out, uint64_t wanted) const {
  if (raw_.empty() || !sep_ || !wanted) return 0;
  const size_t last = 63 - static_cast<size_t>(__builtin_clzll(wanted));  // highest wanted field
  if (is_header()) {
    // MSH-1 and MSH-2 are not split on the separator: the general path handles them.
    std::string_view all[64];
    size_t n = split_fields(all, last + 1);
    for (size_t k = 0; k < n; ++k)
      if (wanted >> k & 1) out[k] = all[k];
    return n;
  }
  const char* d = raw_.data();
  const size_t len = raw_.size();
  const char fs = sep_->field;
  size_t k = 0, start = 0, i = 0;  // field k starts at `start`
#if defined(__SSE2__)
  const __m128i needle = _mm_set1_epi8(fs);
  while (i + 16 <= len) {
    __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    __m128i hits = _mm_cmpeq_epi8(block, needle);
    unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(hits));
    if (mask) {
      // Fields k .. k+ends-1 end in this block; none wanted: count them and move on. Counted
      // with SSE2 (0xff per hit, summed): without -mpopcnt, __builtin_popcount is a call.
      __m128i sums = _mm_sad_epu8(_mm_sub_epi8(_mm_setzero_si128(), hits), _mm_setzero_si128());
      unsigned ends = static_cast<unsigned>(_mm_cvtsi128_si32(sums) + _mm_extract_epi16(sums, 4));
      if (((wanted >> k) & ((1ULL << ends) - 1)) == 0) {
        k += ends;
        start = i + static_cast<size_t>(31 - __builtin_clz(mask)) + 1;
      } else {
        while (mask) {
          size_t at = i + static_cast<size_t>(__builtin_ctz(mask));
          if (wanted >> k & 1) out[k] = std::string_view(d + start, at - start);
          start = at + 1;
          if (++k > last) return k;
          mask &= mask - 1;
        }
      }
    }
    i += 16;
  }
#endif
  for (; i < len; ++i) {
    if (d[i] == fs) {
      if (wanted >> k & 1) out[k] = std::string_view(d + start, i - start);
      start = i + 1;
      if (++k > last) return k;
    }
  }
  if (wanted >> k & 1) out[k] = std::string_view(d + start, len - start);
  return k + 1;
}

const char* to_string(ParseStatus s) {
  switch (s) {
    case ParseStatus::ok: return "ok";
    case ParseStatus::empty: return "empty";
    case ParseStatus::no_header: return "no_header";
    case ParseStatus::bad_encoding: return "bad_encoding";
    case ParseStatus::too_many_segments: return "too_many_segments";
  }
  return "?";
}

bool read_separators(std::string_view text, Separators& out) {
  if (text.size() < 4 || !is_header_name(text)) return false;
  Separators s;
  s.field = text[3];
  auto usable = [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return u > 0x20 && u < 0x7f && !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
  };
  if (!usable(s.field)) return false;
  size_t end = 4;
  while (end < text.size() && text[end] != s.field && text[end] != '\r' && text[end] != '\n') ++end;
  std::string_view enc = text.substr(4, end - 4);
  if (enc.size() > 5) return false;
  char* slots[5] = {&s.component, &s.repetition, &s.escape, &s.subcomponent, &s.truncation};
  for (size_t i = 0; i < enc.size(); ++i) {
    if (!usable(enc[i]) || enc[i] == s.field) return false;
    *slots[i] = enc[i];
  }
  // Defaults for the missing ones must not collide with the declared ones.
  const char all[5] = {s.component, s.repetition, s.escape, s.subcomponent, s.field};
  for (int i = 0; i < 5; ++i)
    for (int j = i + 1; j < 5; ++j)
      if (all[i] == all[j]) return false;
  if (s.truncation && (s.truncation == s.field || s.truncation == s.component || s.truncation == s.repetition ||
                       s.truncation == s.escape || s.truncation == s.subcomponent))
    return false;
  out = s;
  return true;
}

namespace {

// The segment ids of HL7 v2.x chapters 2-17, sorted: a line of only three capitals is one of
// these (or a Z-segment), else it is text.
constexpr std::string_view kSegmentIds[] = {
    "ABS", "ACC", "ADD", "ADJ", "AFF", "AIG", "AIL", "AIP", "AIS", "AL1", "APR", "ARQ", "ARV",
    "AUT", "BHS", "BLC", "BLG", "BPO", "BPX", "BTS", "BTX", "CDM", "CDO", "CER", "CM0", "CM1",
    "CM2", "CNS", "CON", "CSP", "CSR", "CSS", "CTD", "CTI", "DB1", "DG1", "DMI", "DON", "DRG",
    "DSC", "DSP", "ECD", "ECR", "EDU", "EQP", "EQU", "ERR", "EVN", "FAC", "FHS", "FT1", "FTS",
    "GOL", "GP1", "GP2", "GT1", "IAM", "IIM", "ILT", "IN1", "IN2", "IN3", "INV", "IPC", "IPR",
    "ISD", "ITM", "IVC", "IVT", "LAN", "LCC", "LCH", "LDP", "LOC", "LRL", "MFA", "MFE", "MFI",
    "MRG", "MSA", "MSH", "NCK", "NDS", "NK1", "NPU", "NSC", "NST", "NTE", "OBR", "OBX", "ODS",
    "ODT", "OM1", "OM2", "OM3", "OM4", "OM5", "OM6", "OM7", "ORC", "ORG", "OVR", "PAC", "PCE",
    "PCR", "PD1", "PDA", "PDC", "PEO", "PES", "PID", "PKG", "PMT", "PR1", "PRA", "PRB", "PRC",
    "PRD", "PRT", "PSG", "PSH", "PSL", "PSS", "PTH", "PV1", "PV2", "PYE", "QAK", "QID", "QPD",
    "QRD", "QRF", "QRI", "RCP", "RDF", "RDT", "REL", "RF1", "RFI", "RGS", "RMI", "ROL", "RQ1",
    "RQD", "RXA", "RXC", "RXD", "RXE", "RXG", "RXO", "RXR", "RXV", "SAC", "SCD", "SCH", "SCP",
    "SDD", "SFT", "SGH", "SGT", "SHP", "SID", "SLT", "SPM", "STF", "STZ", "TCC", "TCD", "TQ1",
    "TQ2", "TXA", "UAC", "UB1", "UB2", "URD", "URS", "VAR", "VND"};

// A segment is a 3-character id ([A-Z][A-Z0-9]{2}) followed by the field separator, or alone (a
// segment without fields) when it is a known or Z- segment id. Any other line is not a segment:
// free text whose sender left a CR or LF in it (an OBX-5 report, an NTE comment; a line of three
// initials), read as part of the segment before it.
inline bool is_segment_line(const char* p, size_t n, char field) {
  if (n < 3 || (n > 3 && p[3] != field)) return false;
  auto upper = [](char c) { return static_cast<unsigned char>(c - 'A') < 26; };
  auto alnum = [&](char c) { return upper(c) || static_cast<unsigned char>(c - '0') < 10; };
  if (!(upper(p[0]) && alnum(p[1]) && alnum(p[2]))) return false;
  if (n > 3 || p[0] == 'Z') return true;
  return std::binary_search(std::begin(kSegmentIds), std::end(kSegmentIds), std::string_view(p, 3));
}

// A UTF-8 byte order mark some senders write before the first segment; skipped like spaces.
size_t bom_length(const char* p, size_t n) {
  return n >= 3 && p[0] == '\xEF' && p[1] == '\xBB' && p[2] == '\xBF' ? 3 : 0;
}

// Segment ids that start a message or a batch/file: a later line with one of them means the
// text holds more than one message. p starts with a segment id.
inline bool is_boundary_code(const char* p) {
  const uint32_t c = uint32_t(uint8_t(p[0])) << 16 | uint32_t(uint8_t(p[1])) << 8 | uint8_t(p[2]);
  constexpr auto id = [](const char* s) { return uint32_t(uint8_t(s[0])) << 16 | uint32_t(uint8_t(s[1])) << 8 | uint8_t(s[2]); };
  return c == id("MSH") || c == id("BHS") || c == id("FHS") || c == id("BTS") || c == id("FTS");
}

}  // namespace

ParseStatus Message::parse(std::string_view text) {
  segs_.clear();
  lf_ = false;
  escapes_ = false;
  ascii_ = true;
  inner_headers_ = false;
  sep_ = Separators();
  text = trim(text);
  if (size_t bom = bom_length(text.data(), text.size())) text = trim(text.substr(bom));
  raw_ = text;
  if (text.empty()) return ParseStatus::empty;
  if (!is_header_name(text)) return ParseStatus::no_header;
  if (!read_separators(text, sep_)) return ParseStatus::bad_encoding;
  // One pass: line ends, escape characters and 8-bit bytes. MSH-2 holds the escape character
  // itself, so escapes count only from the end of the encoding characters on.
  const char* d = text.data();
  const size_t n = text.size();
  size_t body = 4;
  while (body < n && d[body] != sep_.field && d[body] != '\r' && d[body] != '\n') ++body;
  size_t line = 0;
  bool truncated = false;
  auto eol = [&](size_t at) __attribute__((always_inline)) {
    if (at < n && d[at] == '\n') lf_ = true;
    if (at > line) {
      size_t s = line;  // leading blanks before a segment id are tolerated, as python-hl7 does
      if (d[s] == ' ' || d[s] == '\t') [[unlikely]]
        while (s < at && (d[s] == ' ' || d[s] == '\t')) ++s;
      if (segs_.empty()) [[unlikely]] {
        segs_.emplace_back(d + s, at - s);  // MSH: the text starts with it
      } else if (!is_segment_line(d + s, at - s, sep_.field)) [[unlikely]] {
        // Not a segment: the previous segment's text goes on (an embedded line break).
        if (!truncated) segs_.back() = std::string_view(segs_.back().data(), static_cast<size_t>(d + at - segs_.back().data()));
      } else if (segs_.size() >= limits_.max_segments) [[unlikely]] {
        truncated = true;
      } else {
        if (is_boundary_code(d + s)) [[unlikely]] inner_headers_ = true;
        segs_.emplace_back(d + s, at - s);
      }
    }
    line = at + 1;
  };
  size_t i = 0;
  unsigned high = 0;
  bool esc = false;
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r'), lf = _mm_set1_epi8('\n'), ev = _mm_set1_epi8(sep_.escape);
  for (; i + 16 <= n; i += 16) {
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + i));
    unsigned ends = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(b, cr), _mm_cmpeq_epi8(b, lf))));
    unsigned e = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, ev)));
    if (i < body) e &= body - i >= 16 ? 0u : ~((1u << (body - i)) - 1);
    esc |= e != 0;
    high |= static_cast<unsigned>(_mm_movemask_epi8(b));
    while (ends) {
      eol(i + static_cast<size_t>(__builtin_ctz(ends)));
      ends &= ends - 1;
    }
  }
#endif
  for (; i < n; ++i) {
    char c = d[i];
    if (c == '\r' || c == '\n') eol(i);
    if (c == sep_.escape && i >= body) esc = true;
    high |= static_cast<unsigned char>(c) & 0x80u;
  }
  eol(n);  // the text was trimmed: its last line has no terminator
  escapes_ = esc;
  ascii_ = high == 0;
  return truncated ? ParseStatus::too_many_segments : ParseStatus::ok;
}

Segment Message::find(std::string_view name, size_t occurrence) const {
  if (occurrence == 0) return Segment();
  for (auto s : segs_) {
    if (s.size() >= name.size() && s.compare(0, name.size(), name) == 0 &&
        (s.size() == name.size() || s[name.size()] == sep_.field)) {
      if (--occurrence == 0) return Segment(s, &sep_);
    }
  }
  return Segment();
}

size_t Message::count(std::string_view name) const {
  size_t n = 0;
  for (auto s : segs_)
    if (s.size() >= name.size() && s.compare(0, name.size(), name) == 0 &&
        (s.size() == name.size() || s[name.size()] == sep_.field))
      ++n;
  return n;
}

namespace {

struct Path {
  std::string_view seg;
  size_t seg_occ = 1, field = 0, rep = 1, comp = 0, sub = 0;
  bool rep_given = false;
  bool ok = false;
};

bool read_num(std::string_view& s, size_t& v) {
  size_t i = 0, n = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 6) { n = n * 10 + static_cast<size_t>(s[i] - '0'); ++i; }
  if (i == 0) return false;
  s.remove_prefix(i);
  v = n;
  return true;
}

// Optional "(n)" or "[n]".
bool read_index(std::string_view& s, size_t& v) {
  if (s.empty() || (s[0] != '(' && s[0] != '[')) return true;
  char close = s[0] == '(' ? ')' : ']';
  s.remove_prefix(1);
  if (!read_num(s, v) || s.empty() || s[0] != close) return false;
  s.remove_prefix(1);
  return true;
}

Path parse_path(std::string_view p) {
  Path r;
  size_t i = 0;
  while (i < p.size() && ((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'z')) && i < 3) ++i;
  if (i != 3) return r;
  r.seg = p.substr(0, 3);
  p.remove_prefix(3);
  if (!read_index(p, r.seg_occ)) return r;
  if (p.empty() || (p[0] != '-' && p[0] != '.')) return r;
  p.remove_prefix(1);
  if (!p.empty() && (p[0] == 'F' || p[0] == 'f')) p.remove_prefix(1);
  if (!read_num(p, r.field)) return r;
  if (!p.empty() && (p[0] == '(' || p[0] == '[')) r.rep_given = true;
  if (!read_index(p, r.rep)) return r;
  int level = 0;  // next unlabelled number: 0 = component, 1 = sub-component
  while (!p.empty()) {
    if (p[0] != '.') return r;
    p.remove_prefix(1);
    char tag = p.empty() ? 0 : p[0];
    size_t v = 0;
    if (tag == 'R' || tag == 'r' || tag == 'C' || tag == 'c' || tag == 'S' || tag == 's') {
      p.remove_prefix(1);
      if (!read_num(p, v)) return r;
      if (tag == 'R' || tag == 'r') { r.rep = v; r.rep_given = true; }
      else if (tag == 'C' || tag == 'c') { r.comp = v; level = 1; }
      else { r.sub = v; level = 2; }
    } else {
      if (!read_num(p, v)) return r;
      if (level == 0) { r.comp = v; level = 1; }
      else if (level == 1) { r.sub = v; level = 2; }
      else return r;
    }
  }
  r.ok = r.seg_occ > 0 && r.rep > 0;
  return r;
}

}  // namespace

std::string_view Message::get(std::string_view path) const {
  Path p = parse_path(path);
  if (!p.ok) return {};
  Segment s = find(p.seg, p.seg_occ);
  if (!s) return {};
  Field f = s.field(p.field);
  if (p.comp == 0 && p.sub == 0 && !p.rep_given) return f.raw();
  Repetition r = f.repetition(p.rep);
  if (p.comp == 0 && p.sub == 0) return r.raw();
  Component c = r.component(p.comp == 0 ? 1 : p.comp);
  if (p.sub == 0) return c.raw();
  return c.sub(p.sub);
}

std::string Message::get_text(std::string_view path) const {
  std::string out;
  unescape_to(get(path), sep_, out);
  return out;
}

Charset Message::charset() const {
  Msh m = msh();
  if (!m) return Charset::unspecified;
  return charset_from_msh18(m.character_set().repetition(1).raw());
}

Charset charset_from_msh18(std::string_view v) {
  v = trim(v);
  if (v.empty()) return Charset::unspecified;
  // Compared upper case with spaces, '_' and '-' removed: "ISO IR 100", "ISO_IR 100" and
  // "ISO IR100" are one term, as are "BIG-5" and "BIG5".
  char key[24];
  size_t n = 0;
  for (char c : v) {
    if (c == ' ' || c == '_' || c == '-') continue;
    if (n == sizeof key) return Charset::other;
    key[n++] = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  }
  std::string_view k(key, n);
  struct M { std::string_view key; Charset c; };
  static constexpr M kTerms[] = {
      {"ASCII", Charset::ascii},            {"ISOIR6", Charset::ascii},
      {"8859/1", Charset::latin1},          {"ISOIR100", Charset::latin1},
      {"8859/2", Charset::iso8859_2},       {"ISOIR101", Charset::iso8859_2},
      {"8859/3", Charset::iso8859_3},       {"ISOIR109", Charset::iso8859_3},
      {"8859/4", Charset::iso8859_4},       {"ISOIR110", Charset::iso8859_4},
      {"8859/5", Charset::iso8859_5},       {"ISOIR144", Charset::iso8859_5},
      {"8859/6", Charset::iso8859_6},       {"ISOIR127", Charset::iso8859_6},
      {"8859/7", Charset::iso8859_7},       {"ISOIR126", Charset::iso8859_7},
      {"8859/8", Charset::iso8859_8},       {"ISOIR138", Charset::iso8859_8},
      {"8859/9", Charset::iso8859_9},       {"ISOIR148", Charset::iso8859_9},
      {"8859/15", Charset::iso8859_15},     {"ISOIR203", Charset::iso8859_15},
      {"ISOIR14", Charset::jis_x0201},      {"ISOIR13", Charset::jis_x0201},
      {"ISOIR87", Charset::jis_x0208},      {"ISOIR159", Charset::jis_x0212},
      {"GB180302000", Charset::gb18030},    {"GB18030", Charset::gb18030},
      {"KSX1001", Charset::ks_x1001},       {"ISOIR149", Charset::ks_x1001},
      {"CNS116431992", Charset::cns11643},  {"BIG5", Charset::big5},
      {"UNICODEUTF8", Charset::utf8},       {"UTF8", Charset::utf8}, {"ISOIR192", Charset::utf8},
  };
  for (const M& m : kTerms)
    if (m.key == k) return m.c;
  if (k.substr(0, 7) == "UNICODE") return Charset::unicode_other;
  return Charset::other;
}

const char* to_string(Charset c) {
  switch (c) {
    case Charset::unspecified: return "unspecified";
    case Charset::ascii: return "ascii";
    case Charset::latin1: return "iso-8859-1";
    case Charset::iso8859_2: return "iso-8859-2";
    case Charset::iso8859_3: return "iso-8859-3";
    case Charset::iso8859_4: return "iso-8859-4";
    case Charset::iso8859_5: return "iso-8859-5";
    case Charset::iso8859_6: return "iso-8859-6";
    case Charset::iso8859_7: return "iso-8859-7";
    case Charset::iso8859_8: return "iso-8859-8";
    case Charset::iso8859_9: return "iso-8859-9";
    case Charset::iso8859_15: return "iso-8859-15";
    case Charset::jis_x0201: return "jis-x0201";
    case Charset::jis_x0208: return "jis-x0208";
    case Charset::jis_x0212: return "jis-x0212";
    case Charset::gb18030: return "gb18030";
    case Charset::ks_x1001: return "ks-x1001";
    case Charset::cns11643: return "cns-11643";
    case Charset::big5: return "big5";
    case Charset::utf8: return "utf-8";
    case Charset::unicode_other: return "unicode";
    case Charset::other: return "other";
  }
  return "?";
}

void to_utf8(std::string_view text, Charset c, std::string& out) {
  if (c != Charset::latin1) { out.append(text); return; }
  for (char ch : text) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (u < 0x80) out.push_back(ch);
    else { out.push_back(static_cast<char>(0xC0 | (u >> 6))); out.push_back(static_cast<char>(0x80 | (u & 0x3F))); }
  }
}

PayloadInfo split_payload(std::string_view payload, PayloadHandler& h) {
  PayloadInfo info;
  const char* base = payload.data();
  size_t msg_start = std::string_view::npos, msg_end = 0;
  bool in_batch = false, seen_content = false, lf = false;
  char field = '|';  // the separator of the last header segment: what ends a segment id
  auto close = [&] {
    if (msg_start == std::string_view::npos) return;
    ++info.messages;
    h.message(payload.substr(msg_start, msg_end - msg_start), msg_start, in_batch || info.file);
    msg_start = std::string_view::npos;
  };
  for_each_line(payload, lf, [&](std::string_view line, size_t off) {
    std::string_view t = line;
    // Leading spaces/tabs before a segment id are tolerated (python-hl7 strips them too).
    size_t lead = 0;
    while (lead < t.size() && (t[lead] == ' ' || t[lead] == '\t' || t[lead] == '\f' || t[lead] == '\v')) ++lead;
    if (size_t bom = bom_length(t.data() + lead, t.size() - lead)) lead += bom;
    t.remove_prefix(lead);
    off += lead;
    if (t.empty()) return true;
    std::string_view id = t.substr(0, 3);
    if (t.size() > 3 && is_header_name(t)) field = t[3];
    if (!is_segment_line(t.data(), t.size(), field)) {
      // Not a segment: the text of the message's last segment goes on; outside a message it
      // is neither a message nor a segment (what a payload of only such lines is reported as).
      if (msg_start != std::string_view::npos) msg_end = off + t.size();
      else ++info.other_lines;
      return true;
    }
    if (id == "FHS" || id == "BHS" || id == "BTS" || id == "FTS") {
      close();
      if (id == "FHS") {
        if (info.file || seen_content) ++info.headers_out_of_place;
        if (!info.file) info.fhs = t;
        info.file = true;
      } else if (id == "BHS") {
        if (in_batch) ++info.headers_out_of_place;
        if (!info.batch) info.bhs = t;
        info.batch = true;
        in_batch = true;
      } else if (id == "BTS") {
        // A trailer without its header is tolerated (python-hl7 ignores it too).
        if (info.bts.empty()) info.bts = t;
        in_batch = false;
      } else {
        info.fts = t;
      }
      seen_content = true;
      return true;
    }
    seen_content = true;
    if (id == "MSH") {
      close();
      msg_start = off;
      msg_end = off + t.size();
      return true;
    }
    if (msg_start != std::string_view::npos) {
      msg_end = off + t.size();
    } else {
      ++info.stray_segments;
      h.stray_segment(t, off);
    }
    return true;
  });
  close();
  (void)base;
  return info;
}

}  // namespace hl7cpp
