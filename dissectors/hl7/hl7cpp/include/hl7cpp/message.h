#pragma once
// HL7 v2 (ER7) message parsing: zero-copy views over the bytes of one message.
//
//   hl7cpp::Message msg;
//   if (msg.parse(text) == hl7cpp::ParseStatus::ok) {
//     std::string_view family = msg.get("PID-5.1");          // raw (still escaped)
//     std::string name = msg.pid().patient_name().text();     // unescaped
//   }
//
// Every accessor returns a view into the parsed text; nothing is copied until text() or
// unescape_to() is called. Indices follow HL7 numbering: fields, repetitions, components and
// sub-components are 1-based, and MSH-1 is the field separator itself (MSH-2 the encoding
// characters), so msg.msh().field(9) is MSH-9 as the standard numbers it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hl7cpp {

// The delimiters of a message, read from MSH-1/MSH-2 (or FHS/BHS); never assumed.
struct Separators {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
  char truncation = 0;  // v2.7+: optional 5th encoding character, 0 = none
};

// The n-th (1-based) piece of s split on c; empty when there are fewer pieces.
std::string_view nth_piece(std::string_view s, char c, size_t n);
// The first n pieces of s split on c into out[0..n) (absent ones empty); returns how many
// pieces s has, counted up to n. One pass where n calls of nth_piece would rescan the start.
size_t split_pieces(std::string_view s, char c, std::string_view* out, size_t n);
// Number of pieces of s split on c (an empty string is one empty piece).
size_t piece_count(std::string_view s, char c);

// What unescaping makes of the character set switches \Cxxyy\ (single-byte set) and
// \Mxxyy[zz]\ (multi-byte set) of HL7 v2 section 2.7.2: an ISO 2022 escape sequence written as an
// HL7 escape (MSH-20 mode "2.3"), xx yy [zz] the bytes after ESC (\M2442\ is ESC $ B, JIS X 0208).
enum class CharsetSwitch : uint8_t {
  drop,     // left out, as python-hl7 does: the text after it is read in the message's set
  iso2022,  // replaced by the ISO 2022 escape sequence (ESC xx yy [zz]) it stands for, for a
            // decoder that switches sets (the same text as the sender's ISO 2022 mode)
};

// Appends the unescaped form of raw (HL7 v2 section 2.10 escape sequences) to out. Handles the
// delimiter escapes F S T R E and P (truncation), X hex bytes, the formatting commands (.br
// .sp .in .ti .sk .ce .fi .nf) and the character-set switches (C, M; see CharsetSwitch);
// highlighting (H, N) and application-defined (Z) sequences are dropped. Returns false when raw
// held a malformed sequence (unterminated, bad hex, empty, a switch of the wrong length or with
// a byte outside 0x20..0x7E); what could be decoded is still appended.
bool unescape_to(std::string_view raw, const Separators& sep, std::string& out,
                 CharsetSwitch switches = CharsetSwitch::drop);
inline bool has_escape(std::string_view raw, const Separators& sep) {
  return raw.find(sep.escape) != std::string_view::npos;
}

class Component {
 public:
  Component() = default;
  Component(std::string_view raw, const Separators* sep, bool leaf = false)
      : raw_(raw), sep_(sep), leaf_(leaf) {}
  std::string_view raw() const { return raw_; }
  bool empty() const { return raw_.empty(); }
  size_t size() const { return leaf_ || !sep_ ? 1 : piece_count(raw_, sep_->subcomponent); }
  // n-th sub-component (1-based).
  std::string_view sub(size_t n) const {
    if (leaf_ || !sep_) return n == 1 ? raw_ : std::string_view();
    return nth_piece(raw_, sep_->subcomponent, n);
  }
  std::string text() const;

 private:
  std::string_view raw_;
  const Separators* sep_ = nullptr;
  bool leaf_ = false;
};

class Repetition {
 public:
  Repetition() = default;
  Repetition(std::string_view raw, const Separators* sep, bool leaf = false)
      : raw_(raw), sep_(sep), leaf_(leaf) {}
  std::string_view raw() const { return raw_; }
  bool empty() const { return raw_.empty(); }
  size_t size() const { return leaf_ || !sep_ ? 1 : piece_count(raw_, sep_->component); }
  Component component(size_t n) const {
    if (leaf_ || !sep_) return Component(n == 1 ? raw_ : std::string_view(), sep_, true);
    return Component(nth_piece(raw_, sep_->component, n), sep_);
  }
  std::string text() const;

 private:
  std::string_view raw_;
  const Separators* sep_ = nullptr;
  bool leaf_ = false;
};

class Field {
 public:
  Field() = default;
  Field(std::string_view raw, const Separators* sep, bool leaf = false)
      : raw_(raw), sep_(sep), leaf_(leaf) {}
  // The field as sent, escape sequences included.
  std::string_view raw() const { return raw_; }
  bool empty() const { return raw_.empty(); }
  // `""` is HL7's explicit null ("delete the value"): present but carries no data.
  bool is_null() const { return raw_ == "\"\""; }
  // Present with a value: not empty, not the explicit null, not only separators.
  bool has_value() const {
    if (raw_.empty()) return false;
    // The usual answer from the first byte; the rest for "", ^^^ and the like.
    char c = raw_[0];
    if (c == '"') return has_value_slow();
    if (leaf_ || !sep_) return true;
    if (c != ' ' && c != sep_->component && c != sep_->repetition && c != sep_->subcomponent) return true;
    return has_value_slow();
  }
  size_t repetitions() const { return leaf_ || !sep_ ? 1 : piece_count(raw_, sep_->repetition); }
  Repetition repetition(size_t n) const {
    if (leaf_ || !sep_) return Repetition(n == 1 ? raw_ : std::string_view(), sep_, true);
    return Repetition(nth_piece(raw_, sep_->repetition, n), sep_);
  }
  // Component n of the first repetition (the common case).
  Component component(size_t n) const { return repetition(1).component(n); }
  // Unescaped text of the whole field.
  std::string text() const;
  bool unescape_to(std::string& out) const { return sep_ ? hl7cpp::unescape_to(raw_, *sep_, out) : (out.append(raw_), true); }
  // MSH-1 and MSH-2 hold the delimiters themselves and are never split.
  bool is_leaf() const { return leaf_; }

 private:
  bool has_value_slow() const;
  std::string_view raw_;
  const Separators* sep_ = nullptr;
  bool leaf_ = false;
};

class Segment {
 public:
  Segment() = default;
  Segment(std::string_view raw, const Separators* sep) : raw_(raw), sep_(sep) {}
  explicit operator bool() const { return !raw_.empty(); }
  std::string_view raw() const { return raw_; }
  // Segment id: the text before the first field separator ("PID", "ZPI").
  std::string_view name() const {
    if (sep_ && raw_.size() >= 4 && raw_[3] == sep_->field) return raw_.substr(0, 3);  // the usual 3-letter id
    return name_slow();
  }
  // MSH, FHS and BHS carry the delimiters in fields 1 and 2.
  bool is_header() const;
  // Highest field number present (MSH-1/MSH-2 count as fields).
  size_t field_count() const;
  // Field n as HL7 numbers it; n = 0 is the segment id. Absent fields are empty.
  Field field(size_t n) const;
  // One pass over the segment: out[k] = raw field k for k < out_size (0 = segment id).
  // Returns the number of entries filled (field_count() + 1, capped at out_size).
  size_t split_fields(std::string_view* out, size_t out_size) const;
  // The same for a few fields only: out[k] is written for each bit k set in `wanted` (k < 64);
  // other entries are left as they are. Returns what split_fields(out, highest wanted + 1)
  // returns. Stretches without a wanted field are counted, not split: a PV1 read for fields
  // 19, 44 and 45 costs three views instead of forty-six.
  size_t pick_fields(std::string_view* out, uint64_t wanted) const;
  const Separators* separators() const { return sep_; }

 protected:
  std::string_view name_slow() const;
  std::string_view raw_;
  const Separators* sep_ = nullptr;
};

enum class ParseStatus : uint8_t {
  ok,
  empty,            // nothing but whitespace
  no_header,        // does not start with MSH (or FHS/BHS)
  bad_encoding,     // MSH-1/MSH-2 missing, repeated or not usable as delimiters
  too_many_segments // parsed, but segments beyond the cap were dropped
};
const char* to_string(ParseStatus s);

// Character set declared in MSH-18 (HL7 Table 0211, v2.5 and later). The ISO IR forms DICOM
// uses ("ISO IR100", "ISO_IR 144", ...) name the same sets; case and spaces do not matter.
enum class Charset : uint8_t {
  unspecified, ascii,
  latin1, iso8859_2, iso8859_3, iso8859_4, iso8859_5, iso8859_6, iso8859_7, iso8859_8,
  iso8859_9, iso8859_15,
  jis_x0201,  // ISO IR14
  jis_x0208,  // ISO IR87, reached through ISO 2022 escape sequences
  jis_x0212,  // ISO IR159, likewise
  gb18030, ks_x1001, cns11643, big5,
  utf8, unicode_other, other
};
Charset charset_from_msh18(std::string_view msh18_first_repetition);
const char* to_string(Charset c);
// Appends text in charset c as UTF-8: ISO 8859-1 is converted; UTF-8 and ASCII pass through;
// anything else passes through unchanged (the JSON writer escapes invalid bytes; the medmon
// dissector decodes the other sets).
void to_utf8(std::string_view text, Charset c, std::string& out);

class Msh; class Evn; class Pid; class Pd1; class Nk1; class Pv1; class Orc; class Obr; class Obx;
class Msa; class Err; class In1; class Gt1; class Mrg; class Prt; class Nte;

class Message {
 public:
  struct Limits {
    size_t max_segments = 4096;
  };
  Message() = default;
  explicit Message(Limits l) : limits_(l) {}
  // Non-copyable: segments view the separators owned by this object.
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  // Parses one message (MSH first; a UTF-8 byte order mark before it is skipped). Segments end
  // with CR, LF or CRLF; blank lines are skipped. A line that is not a segment id
  // ([A-Z][A-Z0-9]{2}), alone or followed by the field separator, continues the segment before
  // it: a line break left in free text (OBX-5, NTE-3) is part of that text, not a segment.
  // The text must outlive the message. Storage is reused across calls: no allocation once warm.
  ParseStatus parse(std::string_view text);

  std::string_view raw() const { return raw_; }
  const Separators& separators() const { return sep_; }
  size_t size() const { return segs_.size(); }
  Segment segment(size_t i) const { return i < segs_.size() ? Segment(segs_[i], &sep_) : Segment(); }
  // The n-th (1-based) segment with this id; an empty segment when absent.
  Segment find(std::string_view name, size_t occurrence = 1) const;
  size_t count(std::string_view name) const;
  // Segments were terminated with LF or CRLF somewhere (non-conforming but common).
  bool lf_line_ends() const { return lf_; }
  // Facts gathered by the same pass that finds the segments, so that callers can skip work
  // per field: whether the escape character occurs after MSH-2 (false: no field needs
  // unescaping), whether every byte is 7-bit, and whether a later line starts another
  // message or a batch/file segment (true: the text is not one message; see split_payload).
  bool may_have_escapes() const { return escapes_; }
  bool ascii_only() const { return ascii_; }
  bool has_inner_headers() const { return inner_headers_; }

  // Path access, e.g. "PID-5", "PID-5.1", "PID-3[2].1", "PID-3(2).4.2", "OBX(2)-5",
  // "OBX[2].5" and python-hl7's "PID.F3.R1.C2.S2". Returns the raw (escaped) text; empty when
  // the path is absent or malformed. Deeper paths than the data degrade like python-hl7: a field
  // without components answers component 1 with the whole field.
  std::string_view get(std::string_view path) const;
  // Same, unescaped.
  std::string get_text(std::string_view path) const;

  Charset charset() const;

  Msh msh() const; Evn evn() const; Pid pid() const; Pd1 pd1() const; Nk1 nk1(size_t n = 1) const;
  Pv1 pv1() const; Orc orc(size_t n = 1) const; Obr obr(size_t n = 1) const; Obx obx(size_t n = 1) const;
  Msa msa() const; Err err(size_t n = 1) const; In1 in1(size_t n = 1) const; Gt1 gt1(size_t n = 1) const;
  Mrg mrg() const; Prt prt(size_t n = 1) const; Nte nte(size_t n = 1) const;

 private:
  Limits limits_;
  std::string_view raw_;
  Separators sep_;
  std::vector<std::string_view> segs_;
  bool lf_ = false;
  bool escapes_ = false;
  bool ascii_ = true;
  bool inner_headers_ = false;
};

// Reads MSH-1/MSH-2 (or FHS/BHS) at the start of text. Returns false when they are unusable.
bool read_separators(std::string_view text, Separators& out);

// Splits a payload (one MLLP frame, one HTTP body, a file) into messages. A payload is one
// message, or a batch (BHS..BTS) or file (FHS..FTS) of them; each message runs from its MSH to
// the next MSH or batch/file segment. A line that is not a segment (a 3-character id
// [A-Z][A-Z0-9]{2}, alone or followed by the field separator) belongs to the segment before it. Zero-copy: callbacks get views into the payload.
struct PayloadInfo {
  bool file = false;         // FHS seen
  bool batch = false;        // BHS seen
  size_t messages = 0;
  size_t stray_segments = 0; // segments outside any message (other than batch/file headers)
  size_t other_lines = 0;    // lines outside any message that are not segments
  size_t headers_out_of_place = 0;  // FHS after content, FHS or BHS repeated
  std::string_view fhs, fts, bhs, bts;  // the batch/file segments, when present
};

class PayloadHandler {
 public:
  virtual ~PayloadHandler() = default;
  // One message; `in_batch` when it sits inside FHS/BHS.
  virtual void message(std::string_view text, size_t offset, bool in_batch) = 0;
  // A segment outside any message (not a batch/file segment).
  virtual void stray_segment(std::string_view /*segment*/, size_t /*offset*/) {}
};
PayloadInfo split_payload(std::string_view payload, PayloadHandler& h);

}  // namespace hl7cpp

#include "hl7cpp/segments.h"
