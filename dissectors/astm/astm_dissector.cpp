#include "dissectors/astm/astm_dissector.h"

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "dissectors/api/byte_reader.h"

namespace medmon {
namespace astm {

namespace {

constexpr uint8_t STX = 0x02, ETX = 0x03, EOT = 0x04, ENQ = 0x05, ACK = 0x06, LF = 0x0A, CR = 0x0D,
                  NAK = 0x15, ETB = 0x17;
constexpr size_t kMaxFrameText = 64 * 1024;  // E1381 allows 240; tolerate long frames, but bounded
constexpr size_t kMaxRecord = 64 * 1024;
constexpr size_t kMaxList = 32;
constexpr size_t kMaxFrameStd = 247;         // E1381 frame size limit, overhead included
constexpr uint16_t kPorts[] = {5000, 5001, 5002, 6000, 7000, 12000};

bool is_delim(uint8_t c) { return c > 0x20 && c < 0x7F && !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')); }

// "H" + 4 delimiter characters (field, repeat, component, escape), all distinct.
Probe header_record(std::span<const uint8_t> s) {
  if (s.empty()) return Probe::need_more;
  if (s[0] != 'H') return Probe::no;
  for (size_t i = 1; i < 5; ++i) {
    if (i >= s.size()) return Probe::need_more;
    if (!is_delim(s[i])) return Probe::no;
    for (size_t j = 1; j < i; ++j) if (s[j] == s[i]) return Probe::no;
  }
  return Probe::yes;
}

// STX, frame number '0'..'7', then the header record.
Probe first_frame(std::span<const uint8_t> s) {
  if (s.size() < 2) return Probe::need_more;
  if (s[1] < '0' || s[1] > '7') return Probe::no;
  return header_record(s.subspan(2));
}

char hex_digit(unsigned v) { return "0123456789ABCDEF"[v & 15]; }

// Field n (1-based, as numbered by E1394: field 1 is the record type) of a record.
std::string_view field(std::string_view rec, char fd, int n) {
  int i = 1;
  size_t start = 0;
  while (i < n) {
    size_t p = rec.find(fd, start);
    if (p == std::string_view::npos) return {};
    start = p + 1;
    ++i;
  }
  size_t end = rec.find(fd, start);
  return rec.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

std::string_view component(std::string_view f, char cd, int n) { return field(f, cd, n); }

std::string_view first_repeat(std::string_view f, char rd) {
  size_t p = f.find(rd);
  return p == std::string_view::npos ? f : f.substr(0, p);
}

// Nothing but spaces and component delimiters (the H record's, '^' by default): no value.
bool blank(std::string_view v, char cd) {
  for (char c : v) if (c != ' ' && c != cd) return false;
  return true;
}

// A record type of E1394 and a delimiter after it: how a frame that starts a record begins.
bool record_start(std::span<const uint8_t> s) {
  return s.size() >= 2 && std::string_view("HPOQRCLMS").find(static_cast<char>(s[0])) != std::string_view::npos &&
         is_delim(s[1]);
}

}  // namespace

uint8_t checksum(std::span<const uint8_t> s) {
  unsigned sum = 0;
  for (uint8_t c : s) sum += c;
  return static_cast<uint8_t>(sum & 0xFF);
}

Probe probe(std::span<const uint8_t> s, Dir) {
  size_t i = 0;
  // A receiver's side starts with ACKs; a sender may retry ENQ.
  while (i < s.size() && (s[i] == ACK || s[i] == NAK || s[i] == EOT)) ++i;
  if (i == s.size()) return i > 16 ? Probe::no : Probe::need_more;
  if (s[i] == ENQ) {
    // Before its first frame a sender may retry its ENQ, or give up (EOT) after a NAK (receiver
    // busy) or a lost contention and try again.
    while (i < s.size() && (s[i] == ENQ || s[i] == EOT)) ++i;
    if (i == s.size()) return Probe::need_more;
    if (s[i] != STX) return Probe::no;
    return first_frame(s.subspan(i));
  }
  if (i != 0) return Probe::no;
  if (s[0] == STX) return first_frame(s);
  if (s[0] == 'H') {
    Probe r = header_record(s);
    if (r != Probe::yes) return r;
    // A bare header record: the 3 delimiters after the field separator are the usual \^& (or
    // at least the field separator is '|'), so text protocols starting with "H" do not match.
    return (s[1] == '|') ? Probe::yes : Probe::no;
  }
  return Probe::no;
}

Probe midstream_probe(std::span<const uint8_t> s, Dir) {
  size_t i = 0;
  while (i < s.size() && (s[i] == ACK || s[i] == NAK || s[i] == EOT)) ++i;
  s = s.subspan(i);
  if (s.empty()) return i > 16 ? Probe::no : Probe::need_more;  // as probe: link bytes alone
  if (s[0] != STX) return Probe::no;
  if (s.size() < 4) return (s.size() < 2 || (s[1] >= '0' && s[1] <= '7')) ? Probe::need_more : Probe::no;
  return s[1] >= '0' && s[1] <= '7' && record_start(s.subspan(2)) ? Probe::yes : Probe::no;
}

namespace {

class AstmDissector final : public Dissector {
 public:
  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    const uint64_t base = ctx.stream_offset();
    if (!s.begun) {
      s.begun = true;
      // Picked up mid-stream: the first bytes may end a frame or a transmission the capture
      // missed. Read from the first ENQ or frame start (or bare H record), without anomalies.
      if (ctx.midstream(dir)) { s.state = St::resync; s.after_gap = 0; s.may_guess = true; }
    }
    for (size_t i = 0; i < data.size(); ++i) step(dir, s, data[i], base + i, ctx);
    s.end_offset = base + data.size();
    return {data.size(), 0, 0, false};
  }

  void on_gap(Dir dir, uint64_t missing, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    s.end_offset += missing;
    if (!s.tx.open && s.state == St::raw && s.record == "H") {
      // The first byte of a bare message came before the hole: that message is reported with it.
      open_tx(s);
      s.raw = true;
    }
    if (s.tx.open) s.tx.gaps++;
    s.frame.clear();
    s.record.clear();
    s.record_overflow = false;
    s.guessed = false;
    s.may_guess = false;
    s.frame_dropped = false;
    if (s.state == St::resync) return;  // still looking for a start
    if (s.raw || s.state == St::raw) {
      // Bare records have no frame to wait for: the message with the hole is reported as it
      // is (incomplete), and the bytes after the hole are dropped up to the next H record.
      if (s.tx.open) emit(dir, s, ctx, false);
      s.state = St::skip_record;
      s.after_gap = 0;
      return;
    }
    // Lost bytes: drop the frame in progress and the rest of its record. The bytes after the
    // hole (the tail of a frame) are skipped up to the next frame start, ENQ or EOT, and that
    // frame is read from its first record boundary (a CR, or the frame after one ended by ETX):
    // it may go on with the record the hole cut, whatever its first letter looks like.
    s.state = St::resync;
    s.after_gap = -1;
    s.link_resync = true;
    s.number_lost = true;
  }

  void on_end(Dir dir, FlowContext& ctx) override {
    DirState& s = d_[static_cast<int>(dir)];
    if (s.tx.open) {
      // A bare record may lack only its CR; a record of the link layer with frames still to come
      // (the capture ended after an intermediate frame) is cut short.
      if (!s.record.empty()) record(dir, s, ctx, !s.raw);
      if (s.tx.open) {
        if (!s.raw) ctx.anomaly("astm", "no_eot", s.end_offset);
        emit(dir, s, ctx, false);
      }
    }
  }

 private:
  // skip_record: after a gap in bare records, bytes are dropped up to the end of a record, and
  // records up to the next H record.
  // resync: a direction picked up mid-stream, up to its first ENQ, frame start or H record.
  // junk: a line between messages that is no record, skipped to its end.
  enum class St : uint8_t { idle, between, fn, text, c1, c2, cr, lf, raw, skip_record, resync, junk };

  struct Tx {
    bool open = false;
    uint64_t frames = 0, retransmissions = 0, checksum_errors = 0, naks = 0, gaps = 0, long_frames = 0;
    std::array<uint32_t, 26> counts{};
    std::string control_id, sender_name, sender_version, sender_serial, receiver, processing, version, time;
    std::vector<std::string> tests, patients, specimens;
    std::vector<std::string> phi;
    std::string termination;
    bool unknown_reported = false, stray_reported = false;
    bool start_missed = false;  // its start not seen: picked up at a frame (ENQ and first frames), or bare records without their H
    bool text_dropped = false;  // a frame or record went past its cap: text of it was dropped
  };

  struct DirState {
    St state = St::idle;
    bool raw = false;  // bare records, no link layer
    bool await_header = false;  // after a gap in bare records: records before the next H are dropped
    int8_t after_gap = -1;      // bytes of "H|" seen right after a gap in bare records (-1: none)
    uint8_t expect_fn = 1;
    int last_fn = -1;
    uint8_t fn = 0, end_char = 0, c1 = 0;
    unsigned sum = 0;
    uint64_t frame_start = 0;
    uint64_t record_offset = 0;  // stream offset of the record's first byte
    uint64_t end_offset = 0;    // stream offset after the last byte given
    bool begun = false;         // bytes of this direction have been given
    bool continued = false;     // the frame text may go on with a record begun before (missed or lost)
    bool may_guess = false;     // picked up mid-stream: the first frame read may start a record
    bool guessed = false;       // the record in progress was taken as one by its first bytes only
    bool link_resync = false;   // resync after lost link-layer bytes: no bare records from there
    bool number_lost = false;   // lost bytes may have held frames: the next frame number follows none
    bool frame_dropped = false; // a frame was dropped (interrupted, bad number or checksum): the next may resend it
    std::string frame;   // text of the frame in progress
    bool frame_overflow = false;  // the frame's text went past kMaxFrameText: its tail was dropped
    std::string record;  // record being rebuilt across frames
    bool record_overflow = false;
    char fd = '|', rd = '\\', cd = '^', ed = '&';
    Tx tx;
  };

  static bool upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }

  void open_tx(DirState& s) {
    s.tx = Tx{};
    s.tx.open = true;
    s.expect_fn = 1;
    s.last_fn = -1;
    s.record.clear();
    s.record_overflow = false;
    s.continued = false;
    s.guessed = false;
    s.frame_dropped = false;
  }

  static bool has_records(const Tx& t) {
    for (uint32_t n : t.counts) if (n) return true;
    return false;
  }

  // Nothing was sent after the ENQ (answered NAK, busy; or contention, the other side's ENQ
  // won): no transmission took place.
  static bool nothing_sent(const DirState& s) {
    const Tx& t = s.tx;
    if (s.raw || t.frames || t.retransmissions || t.checksum_errors || t.gaps || t.long_frames || !s.record.empty())
      return false;
    for (uint32_t n : t.counts) if (n) return false;
    return s.state == St::between;
  }

  void stray(DirState& s, uint64_t off, FlowContext& ctx) {
    if (s.tx.stray_reported) return;
    s.tx.stray_reported = true;
    ctx.anomaly("astm", "unexpected_byte", off);
  }

  void step(Dir dir, DirState& s, uint8_t c, uint64_t off, FlowContext& ctx) {
    switch (s.state) {
      case St::idle:
      case St::between:
        if (c == ENQ) {
          // A new transmission without EOT; an ENQ that sent nothing was only an attempt.
          if (s.tx.open && !nothing_sent(s)) emit(dir, s, ctx, false);
          open_tx(s);
          s.raw = false;
          s.state = St::between;
        } else if (c == STX) {
          if (!s.tx.open) { open_tx(s); s.raw = false; ctx.anomaly("astm", "frame_without_enq", off); }
          s.state = St::fn;
          s.frame.clear();
          s.frame_overflow = false;
          s.sum = 0;
          s.frame_start = off;
        } else if (c == EOT) {
          if (s.tx.open && !s.raw) {
            // The sender ended in the middle of a record: after an intermediate frame (ETB), whose
            // record the frames that were to follow would have ended, or after a dropped frame it
            // did not send again (E1381 lets a sender abort, and a receiver ask it to stop). The
            // part read is a record cut short, and the transmission is incomplete.
            bool cut = s.frame_dropped || !s.record.empty();
            if (!s.record.empty()) record(dir, s, ctx, true);
            drop_record(s);
            if (nothing_sent(s)) s.tx.open = false;  // the sender gave up after NAKs to its ENQ
            else emit(dir, s, ctx, !s.tx.start_missed && !cut);
          }
          s.state = St::idle;
        } else if (c == ACK || c == NAK) {
          // Answers to the other direction's ENQ and frames. One sent while this side's own ENQ
          // waits: that ENQ lost the contention and is no transmission.
          if (s.tx.open && nothing_sent(s)) { s.tx.open = false; s.state = St::idle; }
          DirState& o = d_[1 - static_cast<int>(dir)];
          // A NAK to an ENQ (receiver busy) is no frame rejected.
          if (c == NAK && o.tx.open && !nothing_sent(o)) o.tx.naks++;
        } else if (c == CR || c == LF) {
          // tolerated between frames
        } else if (s.state == St::idle && upper(c) && (c == 'H' || s.raw)) {
          // Bare records (no link layer): a message starts at an H record; in a flow of bare
          // records, records after an L are read as a message whose H was not seen. The
          // message opens once the record's next byte (a delimiter) confirms it.
          if (s.await_header && c != 'H') { s.state = St::skip_record; break; }
          s.await_header = false;
          s.state = St::raw;
          s.record.assign(1, static_cast<char>(c));
          s.record_offset = off;
        } else {
          stray(s, off, ctx);
        }
        break;
      case St::raw:
        if (!s.tx.open) {
          // The second byte of a message's first record: the delimiter an H declares, or the
          // field delimiter after any other type. Else the line is no record (text between
          // messages): reported, and skipped to its end.
          const char first = s.record[0];
          if (first == 'H' ? !is_delim(c) : c != static_cast<uint8_t>(s.fd)) {
            stray(s, s.record_offset, ctx);
            s.record.clear();
            s.state = St::junk;
            step(dir, s, c, off, ctx);
            break;
          }
          const uint64_t at = s.record_offset;
          open_tx(s);
          s.raw = true;
          s.tx.start_missed = first != 'H';
          s.record.assign(1, first);
          s.record_offset = at;
        }
        if (c == CR || c == LF) {
          if (!s.record.empty()) record(dir, s, ctx);
          if (!s.tx.open) s.state = St::idle;  // the L record closed the transmission
        } else if (c == EOT || c == ENQ || c == STX) {
          if (!s.record.empty()) record(dir, s, ctx);
          if (s.tx.open) emit(dir, s, ctx, c == EOT && !s.tx.start_missed);
          s.state = St::idle;
          if (c != EOT) step(dir, s, c, off, ctx);
        } else {
          append_record(s, static_cast<char>(c), off, ctx);
        }
        break;
      case St::junk:
        if (c == CR || c == LF) {
          s.state = St::idle;
        } else if (c == EOT || c == ENQ || c == STX) {
          s.state = St::idle;
          step(dir, s, c, off, ctx);
        }
        break;
      case St::skip_record:
        // A gap that ends where a message starts ("H|") loses nothing more.
        if (s.after_gap == 0 && c == 'H') { s.after_gap = 1; break; }
        if (s.after_gap == 1 && c == '|') {
          s.after_gap = -1;
          s.state = St::idle;
          s.await_header = false;
          step(dir, s, 'H', off - 1, ctx);
          step(dir, s, c, off, ctx);
          break;
        }
        s.after_gap = -1;
        if (c == CR || c == LF) {
          s.state = St::idle;
          s.await_header = true;
        } else if (c == EOT || c == ENQ || c == STX) {
          s.state = St::idle;
          s.await_header = false;
          step(dir, s, c, off, ctx);
        }
        break;
      case St::resync:
        if (c == ENQ) {
          s.link_resync = false;
          s.state = St::idle;
          step(dir, s, c, off, ctx);
        } else if (c == STX) {
          // A frame of a transmission whose start the capture missed (or lost): read from here.
          if (!s.tx.open) {
            open_tx(s);
            s.raw = false;
            s.tx.start_missed = true;
            if (s.link_resync) s.tx.gaps = 1;  // the hole took its start
          }
          s.continued = true;
          s.link_resync = false;
          s.state = St::between;
          step(dir, s, c, off, ctx);
        } else if (c == EOT) {
          // The missed transmission ended, or the one the lost bytes fell in.
          s.link_resync = false;
          s.state = s.tx.open ? St::between : St::idle;
          if (s.tx.open) step(dir, s, c, off, ctx);
        } else if (c == ACK || c == NAK) {
          s.state = St::idle;  // an answer to the other direction, read as always
          step(dir, s, c, off, ctx);
          s.state = St::resync;
        } else if (s.after_gap == 0 && c == 'H' && !s.link_resync) {
          s.after_gap = 1;
        } else if (s.after_gap == 1 && c == '|') {
          // Bare records from a header record at a line start.
          s.after_gap = -1;
          s.state = St::idle;
          step(dir, s, 'H', off - 1, ctx);
          step(dir, s, c, off, ctx);
        } else {
          s.after_gap = (c == CR || c == LF) ? 0 : -1;
        }
        break;
      case St::fn:
        if (c < '0' || c > '7') {
          ctx.anomaly("astm", "bad_frame_number", off);
          s.frame_dropped = true;
          s.state = St::between;
          if (c == STX || c == EOT || c == ENQ) step(dir, s, c, off, ctx);
          break;
        }
        s.fn = static_cast<uint8_t>(c - '0');
        s.sum = c;
        s.state = St::text;
        break;
      case St::text:
        if (c == ETB || c == ETX) {
          s.sum += c;
          s.end_char = c;
          s.state = St::c1;
        } else if (c == STX || c == EOT || c == ENQ) {
          ctx.anomaly("astm", "frame_interrupted", off);
          s.frame.clear();
          s.frame_dropped = true;
          s.state = St::between;
          step(dir, s, c, off, ctx);
        } else {
          s.sum += c;
          if (s.frame.size() < kMaxFrameText) {
            s.frame.push_back(static_cast<char>(c));
          } else if (!s.frame_overflow) {
            // The text past the cap is dropped up to the frame end (its checksum is still summed).
            s.frame_overflow = true;
            s.tx.text_dropped = true;
            ctx.anomaly("astm", "frame_text_too_long", s.frame_start);
          }
        }
        break;
      case St::c1:
      case St::c2: {
        // A frame start, EOT or ENQ where a checksum digit belongs: the sender broke the frame off
        // after its ETB or ETX (the byte is never a digit). Read as a checksum, it swallowed the
        // EOT and the next transmission's ENQ, whose frames went into this transmission.
        if (c == STX || c == EOT || c == ENQ) {
          ctx.anomaly("astm", "frame_interrupted", off);
          s.frame.clear();
          s.frame_dropped = true;
          s.state = St::between;
          step(dir, s, c, off, ctx);
          break;
        }
        if (s.state == St::c1) {
          s.c1 = c;
          s.state = St::c2;
          break;
        }
        uint8_t sum = static_cast<uint8_t>(s.sum & 0xFF);
        auto up = [](uint8_t x) { return static_cast<uint8_t>(x >= 'a' && x <= 'f' ? x - 32 : x); };
        bool good = up(s.c1) == static_cast<uint8_t>(hex_digit(sum >> 4)) && up(c) == static_cast<uint8_t>(hex_digit(sum));
        frame_done(dir, s, good, ctx);
        s.state = St::cr;
        break;
      }
      case St::cr:
      case St::lf:
        if (c == CR && s.state == St::cr) { s.state = St::lf; break; }
        if (c == LF && s.state == St::lf) { s.state = St::between; break; }
        // A missing CR LF trailer: resume at this byte.
        s.state = St::between;
        step(dir, s, c, off, ctx);
        break;
    }
  }

  static void drop_record(DirState& s) {
    s.record.clear();
    s.record_overflow = false;
    s.guessed = false;
  }

  void append_record(DirState& s, char c, uint64_t off, FlowContext& ctx) {
    if (s.record.empty()) s.record_offset = off;
    if (s.record.size() < kMaxRecord) { s.record.push_back(c); return; }
    s.tx.text_dropped = true;
    if (!s.record_overflow) { s.record_overflow = true; ctx.anomaly("astm", "record_too_long", s.record_offset); }
  }

  void frame_done(Dir dir, DirState& s, bool good, FlowContext& ctx) {
    Tx& t = s.tx;
    if (!good) {
      ++t.checksum_errors;
      ctx.anomaly("astm", "bad_checksum", s.frame_start);
      s.frame.clear();
      s.frame_dropped = true;
      return;
    }
    // Frame size: STX FN text ETB C1 C2 CR LF.
    if (s.frame.size() + 7 > kMaxFrameStd && t.long_frames++ == 0) ctx.anomaly("astm", "frame_too_long", s.frame_start);
    if (s.last_fn == s.fn) {  // the receiver's ACK was lost: the same frame again
      ++t.retransmissions;
      s.frame.clear();
      return;
    }
    const auto text = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.frame.data()), s.frame.size());
    if (s.frame_dropped) {
      // After a dropped frame the sender sends it again (the number expected), or goes on
      // without it: then the record the dropped frame held a part of is lost, and is not glued
      // to the text of this frame (its fields would shift). This frame is read from its first
      // record boundary, or from its start when it looks like a record, whose type is then a
      // guess (as for the first frame read mid-stream): none of its values is given out.
      s.frame_dropped = false;
      if (s.fn != s.expect_fn) {
        drop_record(s);
        if (record_start(text)) s.guessed = true;
        else s.continued = true;
      }
    }
    // The first frame after a missed start or lost bytes has no number to follow.
    if (s.fn != s.expect_fn && !(t.start_missed && t.frames == 0) && !s.number_lost)
      ctx.anomaly("astm", "frame_number_sequence", s.frame_start);
    s.number_lost = false;
    ++t.frames;
    s.last_fn = s.fn;
    s.expect_fn = static_cast<uint8_t>((s.fn + 1) & 7);
    // The frames after a missed start or lost bytes may go on with a record begun before them:
    // dropped up to its end, never read as a record of its own. Only the first frame of a
    // direction picked up mid-stream is read from its start when it looks like a record; its
    // type is then a guess, so none of its values is given out (guessed).
    if (s.continued && s.may_guess && t.frames == 1 && record_start(text)) {
      s.continued = false;
      s.guessed = true;
    }
    s.may_guess = false;
    uint64_t at = s.frame_start + 2;  // STX and the frame number come before the text
    for (char ch : s.frame) {
      if (s.continued) {
        if (ch == '\r') s.continued = false;
      } else if (ch == '\r') {
        if (!s.record.empty()) record(dir, s, ctx);
      } else if (ch != '\n') {
        append_record(s, ch, at, ctx);
      }
      ++at;
    }
    s.frame.clear();
    if (s.frame_overflow) {
      // The record the cap cut is cut short (its last field may be cut); with ETB the next frame
      // goes on with the dropped text, so it is read from its first record boundary.
      s.frame_overflow = false;
      if (!s.record.empty()) record(dir, s, ctx, true);
      drop_record(s);
      s.continued = s.end_char == ETB;
      return;
    }
    if (s.end_char == ETX) {
      s.continued = false;
      if (!s.record.empty()) record(dir, s, ctx);
    }
  }

  // A value as sent, its delimiter escapes decoded (E1394 7.1.6): &F& field, &S& component, &R&
  // repeat, &E& escape delimiter. Other sequences (highlighting, hex, local) are kept as written.
  static std::string decode(const DirState& s, std::string_view v) {
    if (v.find(s.ed) == std::string_view::npos) return std::string(v);
    std::string out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      if (v[i] == s.ed && i + 2 < v.size() && v[i + 2] == s.ed) {
        char d = 0;
        switch (v[i + 1]) {
          case 'F': d = s.fd; break;
          case 'S': d = s.cd; break;
          case 'R': d = s.rd; break;
          case 'E': d = s.ed; break;
        }
        if (d) { out.push_back(d); i += 2; continue; }
      }
      out.push_back(v[i]);
    }
    return out;
  }

  // An id as pseudonymised: its escapes decoded (an id of only "&F&" is the character "|"), none
  // when nothing but spaces is left (no value, no pseudonym of an empty one).
  static std::string id_value(const DirState& s, std::string_view raw) {
    std::string v = decode(s, raw);
    return blank(v, ' ') ? std::string() : v;
  }

  void add(std::vector<std::string>& v, std::string x) {
    for (auto& e : v) if (e == x) return;
    if (v.size() < kMaxList) v.push_back(std::move(x));
  }

  void phi(DirState& s, FlowContext& ctx, std::string_view rec, int n, const char* name) {
    std::string_view v = field(rec, s.fd, n);
    if (blank(v, s.cd)) return;
    ctx.facts().add_phi(name);
    for (auto& p : s.tx.phi) if (p == name) return;
    s.tx.phi.emplace_back(name);
  }

  // `cut`: the sender ended in the middle of the record (EOT after an intermediate frame, or after
  // a frame it did not send again). Its last field may be cut short: only the fields before it give
  // values (a cut id would be another id's pseudonym); the cut one still counts as a PHI field sent.
  void record(Dir dir, DirState& s, FlowContext& ctx, bool cut = false) {
    // A record over its cap lost its tail: the field the cap fell in is cut as well.
    cut = cut || s.record_overflow;
    char type = s.record.empty() ? 0 : s.record[0];
    if (type >= 'a' && type <= 'z') type = static_cast<char>(type - 32);
    if (type == 'H' && s.raw && s.tx.open && has_records(s.tx)) {
      // Bare records: a new header without an L record before it ends the previous message.
      std::string header = std::move(s.record);
      emit(dir, s, ctx, false);
      open_tx(s);
      s.record = std::move(header);
    }
    const std::string_view whole = s.record;
    std::string_view rec = whole;
    if (cut) {
      char fd = type == 'H' && rec.size() > 1 ? rec[1] : s.fd;
      size_t last = rec.rfind(fd);
      rec = rec.substr(0, last == std::string_view::npos || (type == 'H' && last == 1) ? 1 : last);
    }
    Tx& t = s.tx;
    // A record taken as one by its first bytes only may be the tail of another (a name, a birth
    // date): it is counted, and its values are pseudonymised or flagged, never given out as they
    // are. A header with its four distinct delimiters is no tail.
    const bool certain = !s.guessed || (type == 'H' && header_record(std::span<const uint8_t>(
                                                              reinterpret_cast<const uint8_t*>(rec.data()), rec.size())) == Probe::yes);
    if (type == 'H' && certain) {
      // Four distinct delimiters, or the defaults: a damaged set would split every later record
      // at letters or digits.
      if (header_record(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(whole.data()), whole.size())) ==
          Probe::yes) {
        s.fd = whole[1];
        s.rd = whole[2];
        s.cd = whole[3];
        s.ed = whole[4];
      } else {
        ctx.anomaly("astm", "bad_delimiters", s.record_offset);
        s.fd = '|';
        s.rd = '\\';
        s.cd = '^';
        s.ed = '&';
      }
    }
    if (type == 'H' && rec.size() >= 5 && certain) {
      t.control_id = decode(s, field(rec, s.fd, 3));
      std::string_view sender = field(rec, s.fd, 5);
      t.sender_name = decode(s, component(sender, s.cd, 1));
      t.sender_version = decode(s, component(sender, s.cd, 2));
      t.sender_serial = decode(s, component(sender, s.cd, 3));
      t.receiver = decode(s, component(field(rec, s.fd, 10), s.cd, 1));
      t.processing = decode(s, field(rec, s.fd, 12));
      t.version = decode(s, field(rec, s.fd, 13));
      t.time = decode(s, field(rec, s.fd, 14));
      // The first sender of the flow (usually the analyzer) names it; later ones (LIS queries) do not.
      if (!t.sender_name.empty() && !ctx.facts().attr("astm.sender")) {
        ctx.facts().set_attr("astm.sender", t.sender_name);
        ctx.facts().set_attr("astm.sender_side", dir == Dir::to_server ? "client" : "server");
        if (!t.sender_version.empty()) ctx.facts().set_attr("astm.sender_version", t.sender_version);
        if (!t.sender_serial.empty()) ctx.facts().set_attr("astm.sender_serial", t.sender_serial);
      }
      if (!t.receiver.empty() && !ctx.facts().attr("astm.receiver")) ctx.facts().set_attr("astm.receiver", t.receiver);
      // Every H sender's identity for the asset inventory (the analyzer, and the LIS when it
      // sends queries or orders); repeated headers add nothing.
      DeviceIdentity id;
      id.client = dir == Dir::to_server;
      id.source = "astm H";
      if (!blank(t.sender_name, s.cd)) id.id = t.sender_name;
      if (!blank(t.sender_version, s.cd)) id.version = t.sender_version;
      if (!blank(t.sender_serial, s.cd)) id.serial = t.sender_serial;
      if (!id.id.empty() || !id.version.empty() || !id.serial.empty()) ctx.facts().add_identity(std::move(id));
    }
    if (type >= 'A' && type <= 'Z') {
      t.counts[type - 'A']++;
    }
    switch (type) {
      case 'H': break;
      case 'P': {
        static const std::pair<int, const char*> kPhi[] = {
            {3, "astm.P.3"}, {4, "astm.P.4"}, {5, "astm.P.5"}, {6, "astm.P.6"}, {7, "astm.P.7"},
            {8, "astm.P.8"}, {11, "astm.P.11"}, {13, "astm.P.13"}};
        for (auto& [n, name] : kPhi) phi(s, ctx, whole, n, name);
        for (int n : {3, 4, 5}) {
          std::string_view id = first_repeat(field(rec, s.fd, n), s.rd);
          if (blank(id, s.cd)) continue;
          if (std::string v = id_value(s, id); !v.empty()) { add(t.patients, ctx.pseudonym(v)); break; }
        }
        break;
      }
      case 'O': {
        phi(s, ctx, whole, 3, "astm.O.3");
        phi(s, ctx, whole, 4, "astm.O.4");  // the instrument's specimen id
        std::string_view spec = component(first_repeat(field(rec, s.fd, 3), s.rd), s.cd, 1);
        if (std::string v = blank(spec, s.cd) ? std::string() : id_value(s, spec); !v.empty())
          add(t.specimens, ctx.pseudonym(v));
        std::string_view tests = field(rec, s.fd, 5);
        // Universal test id ^^^code: repeats separated by the repeat delimiter.
        size_t start = 0;
        while (start <= tests.size()) {
          size_t p = tests.find(s.rd, start);
          std::string_view one = tests.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start);
          std::string_view code = component(one, s.cd, 4);
          if (code.empty()) code = one;
          if (!blank(code, s.cd) && certain) add(t.tests, decode(s, code));
          if (p == std::string_view::npos) break;
          start = p + 1;
        }
        break;
      }
      case 'R': {
        std::string_view id = field(rec, s.fd, 3);
        std::string_view code = component(id, s.cd, 4);
        if (code.empty()) code = id;
        if (!blank(code, s.cd) && certain) add(t.tests, decode(s, code));
        break;
      }
      case 'Q':
        // Starting and ending range ids: a query may name the patient or specimen in either.
        phi(s, ctx, whole, 3, "astm.Q.3");
        phi(s, ctx, whole, 4, "astm.Q.4");
        break;
      case 'L':
        if (certain) t.termination = decode(s, field(rec, s.fd, 3));
        break;
      case 'C': case 'M': case 'S': break;
      default:
        if (!t.unknown_reported) {
          t.unknown_reported = true;
          ctx.anomaly("astm", "unknown_record", s.record_offset);
        }
    }
    s.record.clear();
    s.record_overflow = false;
    s.guessed = false;
    if (type == 'L' && s.raw) emit(dir, s, ctx, !t.start_missed);
  }

  void emit(Dir dir, DirState& s, FlowContext& ctx, bool complete) {
    Tx& t = s.tx;
    ++ctx.counters().at("astm.transmissions");
    auto& w = ctx.begin_event("astm");
    w.object("astm");
    w.field("direction", dir_name(dir));
    w.field("link_layer", !s.raw);
    if (!t.sender_name.empty()) w.field("sender", t.sender_name);
    if (!t.sender_version.empty()) w.field("sender_version", t.sender_version);
    if (!t.sender_serial.empty()) w.field("sender_serial", t.sender_serial);
    if (!t.receiver.empty()) w.field("receiver", t.receiver);
    if (!t.control_id.empty()) w.field("control_id", t.control_id);
    if (!t.processing.empty()) w.field("processing_id", t.processing);
    if (!t.version.empty()) w.field("version", t.version);
    if (!t.time.empty()) w.field("message_time", t.time);
    w.object("records");
    for (char c : std::string_view("HPOQRCLMS")) {
      char k[2] = {c, 0};
      w.field(std::string_view(k, 1), static_cast<uint64_t>(t.counts[c - 'A']));
    }
    w.end_object();
    if (!s.raw) {
      w.field("frames", t.frames);
      if (t.retransmissions) w.field("retransmissions", t.retransmissions);
      if (t.checksum_errors) w.field("checksum_errors", t.checksum_errors);
      if (t.naks) w.field("naks", t.naks);
    }
    if (t.gaps) w.field("gaps", t.gaps);
    if (!t.termination.empty()) w.field("termination_code", t.termination);
    // Bytes lost in a hole were part of it (frames, records), as was text dropped past a cap: it
    // is not whole, however it ended.
    w.field("complete", complete && t.gaps == 0 && !t.text_dropped);
    if (!t.tests.empty()) {
      w.array("tests");
      for (auto& x : t.tests) w.value(x);
      w.end_array();
    }
    if (!t.patients.empty()) {
      w.array("patients");
      for (auto& x : t.patients) w.value(x);
      w.end_array();
    }
    if (!t.specimens.empty()) {
      w.array("specimens");
      for (auto& x : t.specimens) w.value(x);
      w.end_array();
    }
    if (!t.phi.empty()) {
      w.array("phi_fields");
      for (auto& x : t.phi) w.value(x);
      w.end_array();
    }
    w.end_object();
    ctx.end_event();
    t.open = false;
  }

  std::array<DirState, 2> d_;
};

std::unique_ptr<Dissector> make() { return std::make_unique<AstmDissector>(); }

}  // namespace
}  // namespace astm

const DissectorInfo kAstmInfo = {
    .name = "astm",
    .transport = Transport::tcp,
    .probe = &astm::probe,
    .midstream_probe = &astm::midstream_probe,
    .make = &astm::make,
    .port_hints = astm::kPorts,
};

}  // namespace medmon
