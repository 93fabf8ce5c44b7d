#include "dissectors/dicom/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "dissectors/dicom/pdu.h"
#include "dissectors/dicom/phi_tags.h"
#include "sensor/common/charset.h"

namespace medmon::dicom {

bool has_value(std::string_view v) {
  for (char c : v)  // padding, empty components and wildcards are no value (query keys)
    if (c != ' ' && c != 0 && c != '*' && c != '?' && c != '^' && c != '\\' && c != '=') return true;
  return false;
}

Syntax syntax_of(std::string_view ts) {
  if (ts == "1.2.840.10008.1.2") return Syntax::implicit_le;
  if (ts == "1.2.840.10008.1.2.2") return Syntax::explicit_be;
  // Deflated Explicit VR LE, and the JPIP Referenced Deflate syntaxes (JPIP and JPIP HTJ2K),
  // whose dataset is deflated the same way (PS3.5 A.5, A.6).
  if (ts == "1.2.840.10008.1.2.1.99" || ts == "1.2.840.10008.1.2.4.95" || ts == "1.2.840.10008.1.2.4.205")
    return Syntax::deflated;
  // Explicit VR LE and every standard encapsulated (compressed) syntax: headers are explicit
  // VR LE.
  if (ts.substr(0, 18) == "1.2.840.10008.1.2.") return Syntax::explicit_le;
  // A private syntax (GE's 1.2.840.113619.5.2 is implicit VR LE) or none: the first element
  // header tells.
  return Syntax::detect;
}

void DatasetSummary::clear() {
  phi_mask.reset();
  for (std::string* s : {&charset, &sop_class, &modality, &manufacturer, &model, &software, &station,
                         &serial, &patient_name, &patient_id, &accession})
    s->clear();
  pixel_data = truncated = false;
  truncated_by = nullptr;
  elements = 0;
  max_depth = 0;
}

struct DatasetWalker::Zlib {
  z_stream zs{};
  bool ok = false;
  Zlib() { ok = inflateInit2(&zs, -15) == Z_OK; }  // raw deflate (PS3.5 A.5)
  ~Zlib() { if (ok) inflateEnd(&zs); }
};

DatasetWalker::DatasetWalker() = default;
DatasetWalker::~DatasetWalker() = default;

namespace {

constexpr uint32_t kUndefined = 0xFFFFFFFF;
constexpr uint32_t kItem = 0xFFFEE000;
constexpr uint32_t kItemDelim = 0xFFFEE00D;
constexpr uint32_t kSeqDelim = 0xFFFEE0DD;

enum R { kOk, kIncomplete, kBad, kDeep };  // kDeep: nested deeper than the walker follows

struct Header {
  uint32_t tag = 0;
  uint32_t len = 0;
  uint8_t hdr = 8;
  bool sq = false;
  bool un = false;  // explicit VR UN
};

inline uint16_t rd16(const uint8_t* p, bool be) { return be ? uint16_t(p[0] << 8 | p[1]) : uint16_t(p[0] | p[1] << 8); }
inline uint32_t rd32(const uint8_t* p, bool be) {
  return be ? uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]
            : uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
inline bool upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }

bool long_vr(uint8_t a, uint8_t b) {
  switch (a) {
    case 'O': return b == 'B' || b == 'D' || b == 'F' || b == 'L' || b == 'V' || b == 'W';
    case 'S': return b == 'Q' || b == 'V';
    case 'U': return b == 'C' || b == 'N' || b == 'R' || b == 'T' || b == 'V';
    default: return false;
  }
}

// Element header at d[p..end).
R read_header(std::span<const uint8_t> d, size_t p, size_t end, Syntax s, Header& h) {
  if (end - p < 8) return kIncomplete;
  const uint8_t* q = d.data() + p;
  bool be = s == Syntax::explicit_be;
  uint16_t g = rd16(q, be), e = rd16(q + 2, be);
  h.tag = uint32_t(g) << 16 | e;
  h.sq = h.un = false;
  if (g == 0xFFFE || s == Syntax::implicit_le) {  // items and delimiters never have a VR
    h.len = rd32(q + 4, be);
    h.hdr = 8;
    return kOk;
  }
  uint8_t v0 = q[4], v1 = q[5];
  if (!upper(v0) || !upper(v1)) return kBad;
  if (long_vr(v0, v1)) {
    if (end - p < 12) return kIncomplete;
    h.len = rd32(q + 8, be);
    h.hdr = 12;
  } else {
    h.len = rd16(q + 6, be);
    h.hdr = 8;
  }
  h.sq = v0 == 'S' && v1 == 'Q';
  h.un = v0 == 'U' && v1 == 'N';
  return kOk;
}

// What an element costs of the walk budget: its header, and its value when it is one the walk
// may read (up to kValueCap). Decided by the element alone, never by which of its bytes happen
// to have arrived, so the budget runs out at the same element however the stream was split.
uint64_t budget_cost(const Header& h) {
  return h.hdr + (h.len != kUndefined && h.len <= DatasetWalker::kValueCap ? h.len : 0);
}

bool has_value(std::span<const uint8_t> v) {
  return dicom::has_value(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
}

void keep(std::string& dst, std::span<const uint8_t> v, size_t cap) {
  if (!dst.empty()) return;  // first occurrence wins
  if (v.size() > cap) v = v.first(cap);
  std::string_view s = trim(std::string_view(reinterpret_cast<const char*>(v.data()), v.size()));
  dst.assign(s);
}

struct Walk {
  std::span<const uint8_t> d;
  Syntax syntax;
  DatasetSummary& sum;
  int max_depth;
  uint32_t valued = 0;  // elements read with a value (a sequence counts only if it holds one)

  void record(uint32_t tag, std::span<const uint8_t> v) {
    ++sum.elements;
    bool value = has_value(v);
    if (value) ++valued;
    int i = phi_index(tag);
    if (i >= 0 && value) sum.phi_mask.set(static_cast<size_t>(i));
    switch (tag) {
      case 0x00080005: keep(sum.charset, v, 64); break;
      case 0x00080016: keep(sum.sop_class, v, 64); break;
      case 0x00080060: keep(sum.modality, v, 16); break;
      case 0x00080070: keep(sum.manufacturer, v, 64); break;
      case 0x00081090: keep(sum.model, v, 64); break;
      case 0x00181020: keep(sum.software, v, 128); break;
      case 0x00081010: keep(sum.station, v, 16); break;
      case 0x00181000: keep(sum.serial, v, 64); break;
      case 0x00100010: keep(sum.patient_name, v, 324); break;
      case 0x00100020: keep(sum.patient_id, v, 64); break;
      case 0x00080050: keep(sum.accession, v, 16); break;
      default: break;
    }
  }
  // `value`: some item held an element with a value; empty sequences and items (query keys)
  // are no value.
  void mark_sequence(uint32_t tag, bool value) {
    ++sum.elements;
    int i = phi_index(tag);
    if (i >= 0 && value) sum.phi_mask.set(static_cast<size_t>(i));
  }
  // The items of a sequence (or of a UN value of undefined length) at p. PS3.5 6.2.2: the
  // content of UN with undefined length is Implicit VR Little Endian, whatever the syntax.
  R sequence(const Header& h, size_t& p, size_t end, bool open, int depth) {
    if (h.len == kUndefined && !h.sq && !h.un && syntax != Syntax::implicit_le) {
      ++sum.elements;
      return fragments(p, end, open);
    }
    Syntax outer = syntax;
    if (h.un) syntax = Syntax::implicit_le;
    uint32_t before = valued;
    R r = h.len == kUndefined ? items(p, end, open, depth, true) : items(p, end, false, depth, false);
    syntax = outer;
    mark_sequence(h.tag, valued != before);
    return r;
  }
  // Encapsulated pixel data of undefined length (OB/OW; an icon image in a sequence item, PS3.5
  // A.4): its items are fragments of compressed bytes, stepped over to the sequence delimiter.
  R fragments(size_t& p, size_t end, bool open) {
    while (true) {
      if (p == end) return open ? kIncomplete : kBad;
      Header h;
      R r = read_header(d, p, end, syntax, h);
      if (r == kIncomplete) return open ? kIncomplete : kBad;
      if (r == kBad) return kBad;
      if (h.tag == kSeqDelim) { p += 8; return kOk; }
      if (h.tag != kItem || h.len == kUndefined) return kBad;
      p += 8;
      if (h.len > end - p) return open ? kIncomplete : kBad;
      p += h.len;
    }
  }
  bool implicit_sequence(size_t p, size_t end, uint32_t len, bool un = false) const {
    // Without a dictionary, an implicit VR value that opens with an Item tag is a sequence; so
    // is a UN value of defined length that does (a sequence whose sender did not know its tag,
    // kept in implicit VR LE, PS3.5 6.2.2).
    return (syntax == Syntax::implicit_le || un) && len != kUndefined && len >= 8 && end - p >= 4 &&
           d[p] == 0xFE && d[p + 1] == 0xFF && d[p + 2] == 0x00 && d[p + 3] == 0xE0;
  }

  // Elements in [p, end) until end, or until the delimiter `stop` is read. `open`: end is the
  // end of the bytes received so far, more may come.
  R elements(size_t& p, size_t end, bool open, int depth, uint32_t stop) {
    while (true) {
      if (p == end) return stop ? (open ? kIncomplete : kBad) : kOk;
      Header h;
      R r = read_header(d, p, end, syntax, h);
      if (r == kIncomplete) return open ? kIncomplete : kBad;
      if (r == kBad) return kBad;
      if (stop && h.tag == stop) { p += 8; return kOk; }
      if (h.tag == kItem || h.tag == kItemDelim || h.tag == kSeqDelim) return kBad;
      p += h.hdr;
      if (h.sq || h.len == kUndefined || implicit_sequence(p, end, h.len, h.un)) {
        if (depth >= max_depth) return kDeep;
        if (h.len == kUndefined) {
          R s = sequence(h, p, end, open, depth + 1);
          if (s != kOk) return s;
        } else {
          if (h.len > end - p) return open ? kIncomplete : kBad;
          size_t q = p;
          R s = sequence(h, q, p + h.len, false, depth + 1);
          if (s == kBad && h.un) record(h.tag, d.subspan(p, h.len));  // not a sequence after all
          else if (s != kOk) return s == kDeep ? kDeep : kBad;
          p += h.len;
        }
        continue;
      }
      if (h.len > end - p) return open ? kIncomplete : kBad;
      record(h.tag, d.subspan(p, h.len));
      p += h.len;
    }
  }

  R items(size_t& p, size_t end, bool open, int depth, bool undefined) {
    if (static_cast<uint32_t>(depth) > sum.max_depth) sum.max_depth = static_cast<uint32_t>(depth);
    while (true) {
      if (p == end) return undefined ? (open ? kIncomplete : kBad) : kOk;
      Header h;
      R r = read_header(d, p, end, syntax, h);
      if (r == kIncomplete) return open ? kIncomplete : kBad;
      if (r == kBad) return kBad;
      if (h.tag == kSeqDelim) { p += 8; return kOk; }
      if (h.tag != kItem) return kBad;
      p += 8;
      if (h.len == kUndefined) {
        R s = elements(p, end, open, depth, kItemDelim);
        if (s != kOk) return s;
      } else {
        if (h.len > end - p) return open ? kIncomplete : kBad;
        size_t q = p;
        R s = elements(q, p + h.len, false, depth, 0);
        if (s != kOk) return s == kDeep ? kDeep : kBad;
        p += h.len;
      }
    }
  }
};

bool wanted(uint32_t tag) {
  switch (tag) {
    case 0x00080005: case 0x00080016: case 0x00080060: case 0x00080070: case 0x00081090:
    case 0x00181020: case 0x00081010: case 0x00181000: case 0x00100010: case 0x00100020:
    case 0x00080050:
      return true;
    default:
      return phi_index(tag) >= 0;
  }
}

// Top-level elements that frame from the start of d in explicit VR of one byte order: tags
// ascending, lengths inside the bytes (or past them only when more may come). -1 when an
// element cannot be right.
int explicit_elements_framed(std::span<const uint8_t> d, bool be, bool complete) {
  const Syntax s = be ? Syntax::explicit_be : Syntax::explicit_le;
  size_t p = 0;
  uint32_t prev = 0;
  int n = 0;
  while (n < 8 && p < d.size()) {
    Header h;
    R r = read_header(d, p, d.size(), s, h);
    if (r == kIncomplete) return complete ? -1 : n;
    if (r == kBad || (h.tag >> 16) == 0xFFFE || (n && h.tag <= prev)) return -1;
    prev = h.tag;
    ++n;
    if (h.len == kUndefined) return n;  // a sequence: the same in either byte order
    p += h.hdr;
    if (h.len > d.size() - p) return complete ? -1 : n - 1;  // its length says nothing yet
    p += h.len;
  }
  return n;
}

// d is raw deflate (PS3.5 A.5) whose first inflated bytes frame as explicit VR LE elements.
bool inflates_to_elements(std::span<const uint8_t> d) {
  z_stream zs{};
  if (inflateInit2(&zs, -15) != Z_OK) return false;
  uint8_t out[256];
  zs.next_in = const_cast<uint8_t*>(d.data());
  zs.avail_in = static_cast<uInt>(d.size());
  zs.next_out = out;
  zs.avail_out = sizeof out;
  int rc = inflate(&zs, Z_NO_FLUSH);
  size_t n = sizeof out - zs.avail_out;
  inflateEnd(&zs);
  if ((rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) || n < 8 || !upper(out[4]) || !upper(out[5])) return false;
  return explicit_elements_framed(std::span<const uint8_t>(out, n), false, rc == Z_STREAM_END) >= 1;
}

}  // namespace

// Without a negotiated transfer syntax: explicit VR when bytes 4-5 are a VR, in the byte order
// under which more of the first elements frame (ties go to little endian, the usual order; a big
// endian length read as little endian is 256 times too large, so one or two elements settle
// it); deflated explicit VR LE when neither order frames but the bytes inflate to elements;
// implicit VR LE otherwise. Only the first kDetectWindow bytes count, so the answer does not
// depend on how the bytes were fragmented.
Syntax detect_syntax(std::span<const uint8_t> d, DetectEnd how) {
  constexpr size_t kDetectWindow = 256;
  const bool complete = how == DetectEnd::complete;
  if (d.size() < 6) return how == DetectEnd::open ? Syntax::detect : Syntax::implicit_le;
  if (d.size() < kDetectWindow && how == DetectEnd::open) return Syntax::detect;
  if (d.size() > kDetectWindow) d = d.first(kDetectWindow);
  if (!upper(d[4]) || !upper(d[5])) return inflates_to_elements(d) ? Syntax::deflated : Syntax::implicit_le;
  bool whole = complete && d.size() < kDetectWindow;
  int le = explicit_elements_framed(d, false, whole), be = explicit_elements_framed(d, true, whole);
  if (le <= 0 && be <= 0 && inflates_to_elements(d)) return Syntax::deflated;
  return be > le ? Syntax::explicit_be : Syntax::explicit_le;
}

void DatasetWalker::start(Syntax s) {
  syntax_ = s;
  active_ = true;
  done_ = false;
  buf_.clear();
  buf_offset_ = 0;
  skip_ = 0;
  walked_ = 0;
  scanned_ = 0;
  scan_over_ = false;
  walk_at_ = 0;
  inflated_ = 0;
  scan_.clear();
  error_ = nullptr;
  error_offset_ = 0;
  sum_.clear();
  if (s == Syntax::deflated) z_ = std::make_unique<Zlib>();
  else z_.reset();
}

void DatasetWalker::stop_at_cap(const char* why) {
  sum_.truncated = true;
  if (!sum_.truncated_by) sum_.truncated_by = why;
  done_ = true;
}

void DatasetWalker::fail(const char* name, uint64_t off, const char* why) {
  if (!error_) { error_ = name; error_offset_ = off; }
  // What follows a malformed element cannot be framed: the rest is not read.
  sum_.truncated = true;
  if (!sum_.truncated_by) sum_.truncated_by = why;
  done_ = true;
}

bool DatasetWalker::feed(std::span<const uint8_t> bytes) {
  if (!active_ || done_) return true;
  if (syntax_ != Syntax::deflated) return feed_plain(bytes, true);
  if (!z_ || !z_->ok) { fail("dataset_inflate_error", 0); return true; }
  uint8_t out[16384];
  z_->zs.next_in = const_cast<uint8_t*>(bytes.data());
  z_->zs.avail_in = static_cast<uInt>(bytes.size());
  while (!done_ && z_->zs.avail_in > 0) {
    z_->zs.next_out = out;
    z_->zs.avail_out = sizeof out;
    int rc = inflate(&z_->zs, Z_NO_FLUSH);
    size_t n = sizeof out - z_->zs.avail_out;
    if (n) feed_plain(std::span<const uint8_t>(out, n), false);
    inflated_ += n;
    if (!done_ && inflated_ > kInflateBudget) stop_at_cap("inflate_budget");
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) { fail("dataset_inflate_error", buf_offset_); break; }
    if (rc == Z_BUF_ERROR && n == 0) break;
  }
  if (done_) z_.reset();
  return done_;
}

bool DatasetWalker::feed_plain(std::span<const uint8_t> bytes, bool raw) {
  while (!bytes.empty() && !done_) {
    if (skip_) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(skip_, bytes.size()));
      skip_ -= n;  // stepped over unread: no part of the walk budget
      buf_offset_ += n;
      bytes = bytes.subspan(n);
      continue;
    }
    size_t n = std::min(kBufferCap - buf_.size(), bytes.size());
    buf_.insert(buf_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    bytes = bytes.subspan(n);
    if (buf_.size() >= walk_at_) walk();
    if (raw && syntax_ == Syntax::deflated) return feed(bytes);  // found deflated: the rest inflates
    if (!done_ && buf_.size() >= kBufferCap) stop_at_cap("element_too_large");  // one element over the cap
  }
  return done_;
}

void DatasetWalker::walk_pass(DetectEnd how) {
  if (syntax_ == Syntax::detect) {
    syntax_ = detect_syntax(buf_, how);
    if (syntax_ == Syntax::detect) return;  // walk_at_ stays: the next bytes try again
    if (syntax_ == Syntax::deflated) {  // the bytes held so far are deflated: inflate them
      std::vector<uint8_t> held;
      held.swap(buf_);
      z_ = std::make_unique<Zlib>();
      feed(held);
      return;
    }
  }
  Walk w{buf_, syntax_, sum_, kMaxDepth};
  size_t p = 0;
  const size_t end = buf_.size();
  // The budget is checked at each element, before it is read: the walk stops at the same
  // element whatever the fragments were.
  auto afford = [&](uint64_t cost) {
    if (walked_ + cost > kHeaderBudget) { stop_at_cap("walk_budget"); return false; }
    walked_ += cost;
    return true;
  };
  auto run_scan = [&] { scan(p, end); };
  if (!scan_.empty()) run_scan();
  while (!done_ && scan_.empty() && !skip_) {
    Header h;
    R r = read_header(buf_, p, end, syntax_, h);
    if (r == kIncomplete) break;
    if (r == kBad) { fail("dataset_bad_element", buf_offset_ + p); break; }
    if (h.tag == 0x7FE00010 || h.tag == 0x7FE00008 || h.tag == 0x7FE00009) {  // pixel data: stop
      sum_.pixel_data = true;
      done_ = true;
      break;
    }
    if (h.tag == kItem || h.tag == kItemDelim || h.tag == kSeqDelim) {
      fail("dataset_unexpected_delimiter", buf_offset_ + p);
      break;
    }
    size_t v = p + h.hdr;
    size_t avail = end - v;
    if ((syntax_ == Syntax::implicit_le || h.un) && h.len != kUndefined && h.len >= 8 && avail < 4 && !h.sq) break;
    const uint64_t cost = budget_cost(h);
    if (h.sq || h.len == kUndefined || w.implicit_sequence(v, end, h.len, h.un)) {
      // A sequence too large to hold (with its header: the buffer could never take it whole)
      // is read as it streams past, so the PHI in it and after it is still seen.
      auto stream_it = [&] {
        ScanFrame f{};
        f.kind = h.len == kUndefined && !h.sq && !h.un && syntax_ != Syntax::implicit_le ? ScanFrame::fragments
                                                                                          : ScanFrame::sequence;
        f.syntax = h.un ? Syntax::implicit_le : syntax_;
        f.un = h.un && h.len != kUndefined;
        f.tag = h.tag;
        f.end = h.len == kUndefined ? kOpen : buf_offset_ + v + h.len;
        if (f.kind == ScanFrame::fragments) ++sum_.elements;
        scan_push(f);
        p = v;
        run_scan();
      };
      if (h.len != kUndefined && uint64_t(h.hdr) + h.len > kBufferCap) {
        if (!afford(h.hdr)) break;  // its content counts in the scan's budget
        stream_it();
        continue;
      }
      if (h.len != kUndefined && h.len > avail) break;
      // Every byte of a sequence held whole is read: one of defined length must fit the budget
      // before it is read; one of undefined length (at most kBufferCap) is read, then counted.
      if (h.len != kUndefined && !afford(h.hdr + uint64_t(h.len))) break;
      size_t q = v;
      R s = w.sequence(h, q, h.len == kUndefined ? end : v + h.len, true, 1);
      if (s == kIncomplete && h.len == kUndefined && end - p >= kBufferCap) {
        if (!afford(h.hdr)) break;
        stream_it();
        continue;
      }
      if (s == kIncomplete) break;
      if (s == kDeep) { fail("dataset_bad_sequence", buf_offset_ + p, "depth_limit"); break; }
      if (s == kBad && h.un && h.len != kUndefined) {  // a UN value that is not a sequence after all
        w.record(h.tag, std::span<const uint8_t>(buf_).subspan(v, h.len));
        p = v + h.len;
        continue;
      }
      if (s == kBad) { fail("dataset_bad_sequence", buf_offset_ + p); break; }
      if (h.len == kUndefined) walked_ += q - p;
      p = q;
      if (walked_ > kHeaderBudget) { stop_at_cap("walk_budget"); break; }
      continue;
    }
    if (h.len <= avail) {
      if (!afford(cost)) break;
      w.record(h.tag, std::span<const uint8_t>(buf_).subspan(v, h.len));
      p = v + h.len;
      continue;
    }
    if (wanted(h.tag) && h.len <= kValueCap) break;  // wait for the whole value
    if (!afford(cost)) break;
    // Long or uninteresting value: count it and drop it without buffering.
    if (wanted(h.tag)) {
      ++sum_.elements;
      int i = phi_index(h.tag);
      if (i >= 0 && h.len) sum_.phi_mask.set(static_cast<size_t>(i));
    }
    skip_ = h.len - avail;
    p = end;
    break;
  }
  if (p) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(p));
    buf_offset_ += p;
  }
  // What is left (one incomplete element or sequence) is parsed again from its start: walk
  // again only once the buffer has doubled, so tiny fragments cost linear time, not quadratic.
  walk_at_ = std::min(kBufferCap, 2 * buf_.size());
}

void DatasetWalker::walk(DetectEnd how) {
  // A sequence left past the scan's budget: what follows it may be held already, read now
  // (the end of the dataset may not bring another walk).
  do walk_pass(how);
  while (!done_ && scan_over_ && leave_scan() && !buf_.empty());
}

bool DatasetWalker::leave_scan() {
  scan_over_ = false;
  const uint64_t to = scan_.front().end;
  if (to == kOpen) { stop_at_cap("walk_budget"); return false; }  // its end is only found by reading it
  while (!scan_.empty()) scan_pop();  // what was read of it still counts
  // Stepped over by its length, as a value: what follows it is still read.
  const uint64_t n = to - buf_offset_;
  if (n <= buf_.size()) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(n));
    skip_ = 0;
  } else {
    skip_ = n - buf_.size();
    buf_.clear();
  }
  buf_offset_ = to - skip_;
  walk_at_ = 0;
  return skip_ == 0;
}

void DatasetWalker::scan_push(ScanFrame f) {
  if (f.kind == ScanFrame::sequence) ++sum_.elements;
  scan_.push_back(f);
  sum_.max_depth = std::max<uint32_t>(sum_.max_depth, static_cast<uint32_t>((scan_.size() + 1) / 2));
}

void DatasetWalker::scan_pop() {
  ScanFrame f = scan_.back();
  scan_.pop_back();
  // A sequence counts as PHI only when one of its items held an element with a value.
  if (f.kind == ScanFrame::sequence && f.valued) {
    int i = phi_index(f.tag);
    if (i >= 0) sum_.phi_mask.set(static_cast<size_t>(i));
  }
}

void DatasetWalker::scan_valued() {
  for (size_t k = scan_.size(); k-- > 0 && !scan_[k].valued;) scan_[k].valued = true;
}

void DatasetWalker::scan_bad(size_t& p, size_t end, uint64_t at, const char* why) {
  // The innermost UN value of defined length around the bad bytes was a plain value after all
  // (as the walk of a held sequence takes it): stepped over to its end.
  for (size_t k = scan_.size(); k-- > 0;) {
    if (!scan_[k].un) continue;
    uint64_t to = scan_[k].end;
    scan_.resize(k);
    scan_to(p, end, to);
    return;
  }
  fail("dataset_bad_sequence", at, why);
}

void DatasetWalker::scan_to(size_t& p, size_t end, uint64_t to) {
  uint64_t here = buf_offset_ + p;
  if (to - here <= end - p) {
    p += static_cast<size_t>(to - here);
  } else {
    skip_ = to - here - (end - p);
    p = end;
  }
}

void DatasetWalker::scan(size_t& p, size_t end) {
  while (!scan_.empty() && !done_ && !skip_) {
    ScanFrame& f = scan_.back();
    const uint64_t at = buf_offset_ + p;
    if (f.end != kOpen && at >= f.end) {  // a sequence or item of defined length ends here
      scan_pop();
      continue;
    }
    Header h;
    R r = read_header(buf_, p, end, f.syntax, h);
    if (r == kIncomplete) return;
    if (r == kBad) { scan_bad(p, end, at); continue; }
    // The scan's budget is checked at each header, before it is read: past it, the walk leaves
    // the sequence at the same element however the stream was split. Sequence and item headers
    // cost their header; their content is counted element by element.
    const bool container = (h.tag >> 16) == 0xFFFE || h.sq || h.len == kUndefined;
    const uint64_t cost = container ? h.hdr : budget_cost(h);
    if (scanned_ + cost > kHeaderBudget) { scan_over_ = true; return; }
    scanned_ += cost;  // given back below when the element waits for more bytes
    // What a header announces must stay inside a frame of defined length.
    uint64_t room = f.end == kOpen ? kOpen : f.end - at;
    if (h.hdr > room || (h.len != kUndefined && h.len > room - h.hdr)) { scan_bad(p, end, at); continue; }
    const bool deeper = scan_.size() >= 2 * static_cast<size_t>(kMaxDepth);
    if (f.kind != ScanFrame::item) {  // a sequence: items until its delimiter or its end
      if (h.tag == kSeqDelim) {
        if (f.end == kOpen) { p += 8; scan_pop(); continue; }
        // In a sequence of defined length, as the walk of a held one takes it: the sequence
        // ends there, and its length frames what follows.
        uint64_t to = f.end;
        scan_pop();
        scan_to(p, end, to);
        continue;
      }
      if (h.tag != kItem || (f.kind == ScanFrame::fragments && h.len == kUndefined)) { scan_bad(p, end, at); continue; }
      p += 8;
      if (f.kind == ScanFrame::sequence) {  // its elements are read
        if (deeper) { fail("dataset_bad_sequence", at, "depth_limit"); return; }
        ScanFrame item{};
        item.kind = ScanFrame::item;
        item.syntax = f.syntax;
        item.end = h.len == kUndefined ? kOpen : at + 8 + h.len;
        scan_push(item);
        continue;
      }
      // A fragment of an encapsulated value: compressed bytes, stepped over below.
    } else {  // an item: elements until its delimiter or its end
      if (h.tag == kItemDelim && f.end == kOpen) { p += 8; scan_pop(); continue; }
      if ((h.tag >> 16) == 0xFFFE) { scan_bad(p, end, at); continue; }
      const Syntax syn = f.syntax;
      const bool sq = h.sq || h.len == kUndefined;
      const bool maybe_implicit_sq = (syn == Syntax::implicit_le || h.un) && h.len != kUndefined && h.len >= 8 && !h.sq;
      if (maybe_implicit_sq && end - (p + h.hdr) < 4) { scanned_ -= cost; return; }  // its first bytes tell
      Walk w{buf_, syn, sum_, kMaxDepth};
      if (sq || (maybe_implicit_sq && w.implicit_sequence(p + h.hdr, end, h.len, h.un))) {
        if (deeper) { fail("dataset_bad_sequence", at, "depth_limit"); return; }
        ScanFrame seq{};
        seq.kind = h.len == kUndefined && !h.sq && !h.un && syn != Syntax::implicit_le ? ScanFrame::fragments
                                                                                        : ScanFrame::sequence;
        seq.syntax = h.un ? Syntax::implicit_le : syn;
        seq.un = h.un && h.len != kUndefined;
        seq.tag = h.tag;
        seq.end = h.len == kUndefined ? kOpen : at + h.hdr + h.len;
        if (seq.kind == ScanFrame::fragments) ++sum_.elements;
        p += h.hdr;
        scan_push(seq);
        continue;
      }
      if (h.len <= end - p - h.hdr) {  // the whole value is here: read as the walk reads it
        w.record(h.tag, std::span<const uint8_t>(buf_).subspan(p + h.hdr, h.len));
        if (w.valued) scan_valued();
        p += h.hdr + h.len;
        continue;
      }
      if (wanted(h.tag) && h.len <= kValueCap) { scanned_ -= cost; return; }  // held until the whole value has come
      // A long value, or one not kept: counted when wanted, then stepped over below.
      if (h.len) scan_valued();
      if (wanted(h.tag)) {
        ++sum_.elements;
        int i = phi_index(h.tag);
        if (i >= 0 && h.len) sum_.phi_mask.set(static_cast<size_t>(i));
      }
      p += h.hdr;
    }
    // A value of defined length (a fragment or an element): stepped over.
    uint64_t avail = end - p;
    if (h.len <= avail) { p += h.len; continue; }
    skip_ = h.len - avail;
    p = end;
  }
}

void DatasetWalker::cut(const char* why) {
  if (!active_ || done_) return;
  // Bytes that arrived whole before the cut are still read: the walk may have waited for the
  // buffer to double. An element they leave incomplete is dropped, not an error.
  bool detecting = syntax_ == Syntax::detect;
  if (!buf_.empty() || !scan_.empty()) walk(DetectEnd::cut);
  if (detecting && syntax_ == Syntax::deflated && !done_ && !buf_.empty()) walk();  // what it inflated to
  if (done_) return;
  sum_.truncated = true;
  sum_.truncated_by = why;
  done_ = true;
}

void DatasetWalker::finish() {
  if (!active_) return;
  if (!done_) {
    bool detecting = syntax_ == Syntax::detect;
    // Bytes that arrived since the last walk; also a sequence of defined length the scan is in,
    // which may end exactly here.
    if (!buf_.empty() || !scan_.empty()) walk(DetectEnd::complete);
    if (detecting && syntax_ == Syntax::deflated && !done_ && !buf_.empty()) walk();  // what it inflated to
    if (!done_ && (!buf_.empty() || skip_ || !scan_.empty())) fail("dataset_truncated", buf_offset_);
    done_ = true;
  }
  active_ = false;
  z_.reset();
  std::vector<uint8_t>().swap(buf_);
}

namespace {
// A defined term of (0008,0005) (PS3.3 C.12.1.1.2), with or without its ISO 2022 prefix.
charset::Set set_of_term(std::string_view term) {
  using charset::Set;
  struct M { std::string_view ir; Set set; };
  static constexpr M kMap[] = {
      {"6", Set::ascii},        {"100", Set::iso8859_1},  {"101", Set::iso8859_2},
      {"109", Set::iso8859_3},  {"110", Set::iso8859_4},  {"144", Set::iso8859_5},
      {"127", Set::iso8859_6},  {"126", Set::iso8859_7},  {"138", Set::iso8859_8},
      {"148", Set::iso8859_9},  {"203", Set::iso8859_15}, {"166", Set::tis620},
      {"13", Set::jis_x0201},   {"87", Set::jis_x0208},   {"159", Set::jis_x0212},
      {"149", Set::ks_x1001},   {"58", Set::gb2312},      {"192", Set::utf8},
  };
  if (term.empty()) return Set::ascii;
  if (term == "GB18030") return Set::gb18030;
  if (term == "GBK") return Set::gbk;
  std::string_view ir;
  if (term.substr(0, 7) == "ISO_IR ") ir = term.substr(7);
  else if (term.substr(0, 12) == "ISO 2022 IR ") ir = term.substr(12);
  for (const M& m : kMap)
    if (!ir.empty() && m.ir == ir) return m.set;
  return Set::unknown;
}

bool ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80 || c == 0x1B) return false;
  return true;
}
}  // namespace

void decode_text(std::string_view raw, std::string_view charset, std::string& out) {
  out.clear();
  if (ascii(raw)) { out.assign(raw); return; }
  // Value 1 is the set in use at the start of the value; with code extensions (ISO 2022 terms)
  // escape sequences switch to the other values' sets. A sender that writes upper-half bytes
  // without designating their set gets the first later value that has an upper half.
  std::string_view values[8];
  size_t n = 0;
  for (std::string_view rest = charset; n < std::size(values);) {
    size_t bs = rest.find('\\');
    values[n++] = trim(rest.substr(0, bs));
    if (bs == std::string_view::npos) break;
    rest.remove_prefix(bs + 1);
  }
  bool iso2022 = false;
  for (size_t k = 0; k < n; ++k) iso2022 |= values[k].substr(0, 8) == "ISO 2022";
  charset::Set first = set_of_term(values[0]);
  charset::Set upper = charset::Set::ascii;
  if (iso2022) {
    for (size_t k = 1; k < n && upper == charset::Set::ascii; ++k) {
      charset::Set s = set_of_term(values[k]);
      if (s != charset::Set::jis_x0208 && s != charset::Set::jis_x0212 && s != charset::Set::unknown) upper = s;
    }
  } else if (n > 1 && first == charset::Set::ascii) {
    first = set_of_term(values[n - 1]);  // not a valid declaration: the last term names the text's set
  }
  if (first == charset::Set::unknown || (!iso2022 && first == charset::Set::ascii)) { out.assign(raw); return; }
  charset::to_utf8(raw, first, iso2022, out, upper);
}

}  // namespace medmon::dicom
