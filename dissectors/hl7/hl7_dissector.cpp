#include "dissectors/hl7/hl7_dissector.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "dissectors/api/worker_budget.h"
#include "dissectors/http/http_coding.h"
#include "dissectors/http/http_reader.h"
#include "hl7cpp/message.h"
#include "hl7cpp/mllp.h"
#include "sensor/common/charset.h"

namespace medmon {
namespace hl7 {

namespace {

constexpr size_t kMaxFrame = 4u << 20;   // largest message we assemble (ED results carry PDFs)
constexpr size_t kMaxPending = 256;      // unacknowledged messages tracked per flow
constexpr size_t kMaxControlId = 48;     // longer control ids are compared on this prefix
constexpr size_t kMaxListed = 16;        // cap for lists inside one event
constexpr std::string_view kName = "hl7";

// Frames split across packets are assembled per direction (up to kMaxFrame each): over all
// flows of the process they may hold this much (each worker its share); a frame that would pass it is skipped.
constexpr size_t kFrameMemory = 64u << 20;
struct FrameMemoryTag {};
hl7cpp::MllpMemory& frame_memory() { return worker_budget<FrameMemoryTag, hl7cpp::MllpMemory>(kFrameMemory, kMaxFrame); }

// HTTP bodies held by all flows of the process, as for MLLP frames: a body that would pass it is
// dropped.
constexpr size_t kBodyMemory = 64u << 20;

// HL7 in HTTP is read leniently (LF line ends, blank lines between messages), and a body may run
// to the close. After a gap (counted, hl7.gaps) the message it cut is dropped and reading resumes
// at the next request or status line: at a line start, or right behind a CR, where an HL7 body
// (segments end with CR alone) that was cut runs into the next message.
http::Options http_options() {
  http::Options o;
  o.syntax = http::Syntax::lenient;
  o.holding = http::Holding::reader;
  o.body_until_close = true;
  o.resync = true;
  o.resync_after = '\r';
  o.max_head = 16u << 10;
  o.max_line = 1024;  // kMaxChunkLine
  o.max_body = kMaxFrame;
  struct BodyMemoryTag {};
  o.memory = &worker_budget<BodyMemoryTag, http::BodyMemory>(kBodyMemory, kMaxFrame);
  return o;
}

bool is_header_id(const uint8_t* p) {
  return (p[0] == 'M' && p[1] == 'S' && p[2] == 'H') || (p[0] == 'F' && p[1] == 'H' && p[2] == 'S') ||
         (p[0] == 'B' && p[1] == 'H' && p[2] == 'S');
}
bool is_delim(uint8_t c) {
  return c > 0x20 && c < 0x7f && !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'));
}
// Length of a UTF-8 byte order mark at the start of b (0 when none; kPartialBom when b ends
// inside one).
constexpr size_t kPartialBom = SIZE_MAX;
size_t bom_prefix(std::span<const uint8_t> b) {
  static constexpr uint8_t kBom[] = {0xEF, 0xBB, 0xBF};
  size_t n = std::min<size_t>(3, b.size());
  if (n == 0 || std::memcmp(b.data(), kBom, n) != 0) return 0;
  return n < 3 ? kPartialBom : 3;
}
bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    size_t k = 0;
    for (; k < needle.size(); ++k) {
      char a = hay[i + k];
      if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
      if (a != needle[k]) break;
    }
    if (k == needle.size()) return true;
  }
  return false;
}
// An ERR code as tables 0357/0533 and site codes write it: 1 to 16 letters, digits, '_', '.', '-'.
bool code_like(std::string_view v) {
  if (v.empty() || v.size() > 16) return false;
  for (char c : v)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '.' || c == '-'))
      return false;
  return true;
}
// An acknowledgment code as table 0008 writes them: two letters.
bool ack_code_like(std::string_view v) {
  auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  return v.size() == 2 && letter(v[0]) && letter(v[1]);
}
// The media type, not its parameters: a FHIR resource typed "application/fhir+json;
// profile=http://hl7.org/..." is no HL7 v2.
bool hl7_content_type(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  return icontains(ct, "hl7") || icontains(ct, "er7");
}
// Body (or its start) looks like HL7 v2: optional 0x0B/whitespace, then MSH/FHS/BHS + delimiter.
Probe body_is_hl7(std::span<const uint8_t> b) {
  size_t i = 0;
  while (i < b.size() && (b[i] == 0x0B || b[i] == '\r' || b[i] == '\n' || b[i] == ' ')) ++i;
  if (b.size() - i < 4) return Probe::need_more;
  return is_header_id(b.data() + i) && is_delim(b[i + 3]) ? Probe::yes : Probe::no;
}

// PHI fields we look for, by segment (HIPAA Safe Harbor identifiers; see docs/hl7.md).
struct PhiSeg {
  const char* seg;
  std::array<uint8_t, 18> fields;  // 0-terminated
};
constexpr PhiSeg kPhi[] = {
    {"PID", {2, 3, 4, 5, 6, 7, 9, 11, 12, 13, 14, 18, 19, 20, 21, 23, 29, 0}},
    {"NK1", {2, 4, 5, 6, 16, 30, 31, 32, 37, 0}},
    {"IN1", {16, 18, 19, 36, 49, 0}},
    {"GT1", {2, 3, 5, 6, 7, 8, 12, 16, 0}},
    {"PV1", {19, 44, 45, 0}},
    {"MRG", {1, 3, 4, 7, 0}},
    {"PD1", {4, 0}},
    {"ORC", {2, 3, 0}},
    {"OBR", {2, 3, 0}},
    {"OBX", {5, 0}},
    {"NTE", {3, 0}},
    {"EVN", {2, 0}},
};
constexpr size_t kPhiSegs = sizeof(kPhi) / sizeof(kPhi[0]);

// Bit index of each (segment, field) in the table above, and its name ("PID-5").
struct PhiIndex {
  std::array<std::array<int8_t, 50>, kPhiSegs> bit{};
  std::array<uint64_t, kPhiSegs> read{};  // fields read in the segment: PHI, and OBX-18 (equipment)
  std::vector<std::string> names;
  PhiIndex() {
    for (auto& row : bit) row.fill(-1);
    for (size_t s = 0; s < kPhiSegs; ++s) {
      if (std::string_view(kPhi[s].seg) == "OBX") read[s] |= 1ULL << 18;
      for (uint8_t f : kPhi[s].fields) {
        if (!f) break;
        bit[s][f] = static_cast<int8_t>(names.size());
        names.push_back(std::string(kPhi[s].seg) + "-" + std::to_string(f));
        read[s] |= 1ULL << f;
      }
    }
  }
};
[[gnu::always_inline]] inline const PhiIndex& phi_index() {
  static const PhiIndex idx;
  return idx;
}
constexpr uint32_t code3(const char* s) {
  return uint32_t(uint8_t(s[0])) << 16 | uint32_t(uint8_t(s[1])) << 8 | uint8_t(s[2]);
}
// Segment ids compared as packed integers: this runs for every segment of every message.
int phi_seg(std::string_view name) {
  if (name.size() != 3) return -1;
  uint32_t c = code3(name.data());
  for (size_t s = 0; s < kPhiSegs; ++s)
    if (c == code3(kPhi[s].seg)) return static_cast<int>(s);
  return -1;
}

// A hash of the control id, compared before the id itself: with a full table (a capture that
// sees one direction only, a peer that never acknowledges) every message and every ACK looks
// at all kMaxPending entries.
inline uint32_t control_id_hash(std::string_view id) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (char c : id) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h;
}

struct PendingMsg {
  uint32_t id_hash = 0;
  char id[kMaxControlId];
  uint8_t id_len = 0;
  char type[24];
  uint8_t type_len = 0;
  Timestamp ts;
  Dir dir = Dir::to_server;
  char ack_code[2];    // once acknowledged (kept in the recently acknowledged ring): the last code
  uint8_t ack_code_len = 0;
  std::string_view control_id() const { return {id, id_len}; }
  // Compared for every message and ACK: a plain length and byte compare the compiler inlines.
  bool has_id(std::string_view other) const {
    return other.size() == id_len && std::memcmp(id, other.data(), id_len) == 0;
  }
  std::string_view msg_type() const { return {type, type_len}; }
};

enum class Mode : uint8_t { unknown, mllp, http };

class Hl7Dissector;

struct DirState : hl7cpp::MllpHandler, http::Handler {
  Hl7Dissector* self = nullptr;
  Dir dir = Dir::to_server;
  Mode mode = Mode::unknown;
  hl7cpp::MllpFramer framer{kMaxFrame, &frame_memory()};
  http::BufferedReader http{http_options()};
  uint64_t base = 0;          // stream offset of the first byte this dissector saw
  bool based = false;
  bool lost_first = false;    // bytes were lost before any was seen: read from a message start
  FlowContext* ctx = nullptr;
  // A bare message is often delivered after its last byte came (by the next message's header,
  // which may itself come a byte at a time, or by the peer's reply): it is stamped with the
  // time of the chunk that held its last byte, kept for the last few chunks fed.
  struct ChunkTime {
    uint64_t start = 0;  // framer offset of the chunk's first byte
    Timestamp ts{};
  };
  static constexpr size_t kChunkTimes = 8;  // more than the bytes of a header prefix ("MSH" after CR LF)
  std::array<ChunkTime, kChunkTimes> chunk_times{};
  size_t chunks_fed = 0;
  Timestamp time_of(uint64_t offset) const;
  void feed(std::span<const uint8_t> data);
  void end_bare_message(bool complete);

  void frame(const hl7cpp::MllpFrame& f) override;
  void anomaly(hl7cpp::MllpAnomaly a, uint64_t offset) override;
  void message(const http::Message& m) override;
  void anomaly(http::Anomaly a, uint64_t message, uint64_t at) override;
};

// Scratch space for one body framed with MLLP inside HTTP.
struct BodyFrames : hl7cpp::MllpHandler {
  Hl7Dissector* self;
  DirState* ds;
  uint64_t base;
  void frame(const hl7cpp::MllpFrame& f) override;
  void anomaly(hl7cpp::MllpAnomaly a, uint64_t offset) override;
};

// Where the first message of bytes picked up mid-stream may start (from `from` on): an MLLP start
// block, or MSH, FHS, BHS or an HTTP request/status line at the start of a line (one cut at the
// end of the bytes counts, its rest may follow). The length of the bytes when none does.
size_t message_start(std::span<const uint8_t> b, size_t from = 0) {
  static constexpr std::string_view kStarts[] = {"MSH", "FHS", "BHS", "HTTP/", "POST ", "PUT "};
  for (size_t i = from; i < b.size(); ++i) {
    if (b[i] == 0x0B) return i;
    if (i > 0 && b[i - 1] != '\r' && b[i - 1] != '\n') continue;
    for (std::string_view k : kStarts) {
      size_t n = std::min(k.size(), b.size() - i);
      if (std::memcmp(b.data() + i, k.data(), n) == 0) return i;
    }
  }
  return b.size();
}

class Hl7Dissector final : public Dissector, hl7cpp::PayloadHandler {
 public:
  Hl7Dissector() {
    for (int d = 0; d < 2; ++d) {
      dirs_[d].self = this;
      dirs_[d].dir = static_cast<Dir>(d);
    }
  }

  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    DirState& s = dirs_[static_cast<int>(dir)];
    // ACKs held for messages behind a hole of the other direction: that direction has nothing
    // left behind one, so the messages will not come.
    if (!held_.empty() && !data.empty() && !ctx.behind_hole(reverse(dir))) release_held(ctx, dir, {});
    // The peer speaks: a bare message it was sending is complete (it waits for the reply). Not
    // so bytes of this side released late from behind a lost segment: they were sent earlier.
    DirState& o = dirs_[1 - static_cast<int>(dir)];
    if (!data.empty() && o.mode == Mode::mllp && !ctx.late(dir)) {
      o.ctx = &ctx;
      cur_ctx_ = &ctx;
      // Unless its later bytes wait behind a hole: then it may have been cut there.
      o.end_bare_message(!ctx.behind_hole(o.dir));
    }
    s.ctx = &ctx;
    if (!s.based) { s.base = ctx.stream_offset(); s.based = true; }
    size_t skipped = 0;
    if (s.mode == Mode::unknown && (ctx.midstream(dir) || s.lost_first)) {
      // Picked up mid-stream, or after bytes lost before any came (a direction the flow was not
      // held for while probing, or the exchanges before a later HTTP message claimed it): the
      // bytes before the first message start are the tail of one the capture missed. They are
      // skipped as after a lost segment (no anomaly), and the mode is decided by the first start
      // seen.
      skipped = message_start(data);
      if (skipped) {
        cur_ctx_ = &ctx;
        // A bare header (no start block or end block after it in these bytes) starts a bare
        // stream, read as from its start; else the framer waits for a start block, as after a
        // lost segment (an MSH line inside an MLLP frame is one of a batch's messages).
        // Nothing left (no message start in these bytes): the next ones are looked at the same way.
        auto rest = data.subspan(skipped);
        bool bare = rest.empty() || (std::memchr(rest.data(), 0x0B, rest.size()) == nullptr &&
                                     std::memchr(rest.data(), 0x1C, rest.size()) == nullptr);
        if (bare) s.framer.skip(skipped);
        else s.framer.gap(skipped, s);
        data = data.subspan(skipped);
        if (data.empty()) return {skipped, 0, 0, false};
      }
    }
    if (s.mode == Mode::unknown) {
      size_t i = 0;
      while (i < data.size() && (data[i] == '\r' || data[i] == '\n')) ++i;
      auto rest = data.subspan(i);
      if (rest.empty()) return {skipped + data.size(), 0, 0, false};
      if (rest[0] == 0x0B || rest[0] == 'M' || rest[0] == 'F' || rest[0] == 'B') {
        s.mode = Mode::mllp;
      } else {
        // HTTP: a status line, or a request of any method (a connection claimed at a later
        // message, an HL7 POST after a GET, is read from its first request).
        static constexpr std::string_view kStatus = "HTTP/";
        size_t n = std::min(kStatus.size(), rest.size());
        size_t m = 0;
        while (m < rest.size() && m <= 16 && rest[m] >= 'A' && rest[m] <= 'Z') ++m;
        if (std::memcmp(rest.data(), kStatus.data(), n) == 0) {
          if (n < kStatus.size()) return {skipped, data.size() + 5, 0, false};
          s.mode = Mode::http;
        } else if (m > 0 && m <= 16 && m < rest.size() && rest[m] == ' ') {
          s.mode = Mode::http;
        } else if (m > 0 && m == rest.size()) {
          return {skipped, data.size() + 17, 0, false};  // a method cut short
        } else {
          s.mode = Mode::mllp;  // the framer reports what it cannot frame
        }
      }
    }
    cur_ctx_ = &ctx;
    if (s.mode == Mode::mllp) {
      s.feed(data);
    } else {
      // nDPI reads HTTP: the flow keeps its name and risks (Basic credentials in clear).
      if (!ctx.keeps_classifying()) ctx.keep_classifying();
      s.http.feed(data, s);
    }
    return {skipped + data.size(), 0, 0, false};
  }

  void on_gap(Dir dir, uint64_t missing, FlowContext& ctx) override {
    DirState& s = dirs_[static_cast<int>(dir)];
    s.ctx = &ctx;
    cur_ctx_ = &ctx;
    if (s.mode == Mode::unknown) {
      s.lost_first = true;  // nothing of it read yet: no loss in what the dissector reads
      return;
    }
    ++ctx.counters().at("hl7.gaps");
    if (s.mode == Mode::mllp) s.framer.gap(missing, s);
    else s.http.gap(missing);
  }

  void on_end(Dir dir, FlowContext& ctx) override {
    DirState& s = dirs_[static_cast<int>(dir)];
    s.ctx = &ctx;
    cur_ctx_ = &ctx;
    if (s.mode == Mode::mllp) {
      s.framer.finish(s);
    } else if (s.mode == Mode::http) {
      s.http.finish(s);
    }
    // This direction has delivered all it will: ACKs held for its messages are unmatched.
    if (!held_.empty()) release_held(ctx, reverse(dir), {});
  }

  void on_flow_end(FlowContext& ctx) override {
    if (!held_.empty()) {
      release_held(ctx, Dir::to_server, {});
      release_held(ctx, Dir::to_client, {});
    }
    if (pending_.empty()) return;
    ctx.counters().at("hl7.unacked") += pending_.size();
    auto& w = ctx.begin_event("hl7");
    w.object("hl7");
    w.field("kind", "unacked");
    w.field("unacked_count", static_cast<uint64_t>(pending_.size()));
    w.array("unacked");
    size_t n = 0;
    for (auto& p : pending_) {
      if (n++ == kMaxListed) break;
      w.begin_object();
      w.field("control_id", p.control_id());
      w.field("message_type", p.msg_type());
      w.field("direction", dir_name(p.dir));
      w.field("sent", format_rfc3339(p.ts));
      w.end_object();
    }
    w.end_array();
    w.end_object();
    ctx.end_event();
    pending_.clear();
  }

  // One framed or HTTP payload: split into messages (batches hold several).
  void payload(DirState& s, std::string_view text, uint64_t offset, const char* transport, bool complete) {
    cur_dir_ = &s;
    cur_offset_ = offset;
    cur_transport_ = transport;
    cur_complete_ = complete;
    stray_reported_ = false;
    FlowContext& ctx = *s.ctx;
    // The usual payload is one message: parse it straight away, and split only when the parse
    // saw a second message or a batch inside (split_payload would find the same lines again).
    if (text.size() > 3 && text.compare(0, 3, "MSH") == 0) {
      hl7cpp::ParseStatus st = msg_.parse(text);
      if (st == hl7cpp::ParseStatus::ok && !msg_.has_inner_headers()) {
        process_parsed(s, st, offset, false);
        return;
      }
    }
    hl7cpp::PayloadInfo info = hl7cpp::split_payload(text, *this);
    if (info.headers_out_of_place) ctx.anomaly(kName, "hl7.batch_structure", offset);
    // Text that is neither a message nor a segment ("hello world" in a frame).
    if (info.messages == 0 && info.stray_segments == 0 && info.other_lines > 0)
      ctx.anomaly(kName, "hl7.no_message", offset);
    if (info.file || info.batch) {
      ++ctx.counters().at("hl7.batches");
      remember_batch_id(s, ctx, info.fhs);
      remember_batch_id(s, ctx, info.bhs);
    }
  }

  // hl7cpp::PayloadHandler
  void message(std::string_view text, size_t off, bool in_batch) override {
    process_message(*cur_dir_, text, cur_offset_ + off, in_batch);
  }
  void stray_segment(std::string_view seg, size_t off) override {
    if (!stray_reported_) {
      stray_reported_ = true;
      cur_dir_->ctx->anomaly(kName, "hl7.segment_outside_message", cur_offset_ + off);
    }
    record_stray_phi(*cur_dir_->ctx, seg);
  }

 private:
  // A segment outside any message (no MSH before it, or one the parser does not recognise,
  // such as a lowercase "msh") crossed in clear all the same: its PHI fields count for the flow.
  // Its field separator is the byte after its id; nothing of it is written out.
  [[gnu::cold]] void record_stray_phi(FlowContext& ctx, std::string_view seg) {
    if (seg.size() < 4) return;
    const int ps = phi_seg(seg.substr(0, 3));
    const bool z = seg[0] == 'Z';
    if (ps < 0 && !z) return;
    hl7cpp::Separators sep;
    sep.field = seg[3];
    const hl7cpp::Segment segment(seg, &sep);
    std::array<std::string_view, 64> f{};
    const size_t n = segment.split_fields(f.data(), f.size());
    auto present = [&](size_t k) { return k < n && hl7cpp::Field(f[k], &sep).has_value(); };
    if (z) {
      for (size_t k = 1; k < n; ++k)
        if (present(k)) { ctx.facts().add_phi("Z-segment"); break; }
      return;
    }
    const PhiIndex& phi = phi_index();
    uint64_t mask = 0;
    for (uint8_t fld : kPhi[ps].fields) {
      if (!fld) break;
      if (present(fld)) mask |= 1ULL << phi.bit[ps][fld];
    }
    uint64_t fresh = mask & ~phi_seen_flow_;
    for (size_t b = 0; fresh && b < phi.names.size(); ++b)
      if (fresh & (1ULL << b)) ctx.facts().add_phi(phi.names[b]);
    phi_seen_flow_ |= fresh;
  }

  // Each line of a message that could not be parsed, read as a segment outside any message.
  [[gnu::cold]] void record_lines_phi(FlowContext& ctx, std::string_view text) {
    while (!text.empty()) {
      size_t eol = text.find_first_of("\r\n");
      std::string_view line = text.substr(0, eol);
      while (!line.empty() && (line[0] == ' ' || line[0] == '\t')) line.remove_prefix(1);
      auto upper = [](char c) { return c >= 'A' && c <= 'Z'; };
      auto alnum = [&](char c) { return upper(c) || (c >= '0' && c <= '9'); };
      if (line.size() >= 4 && upper(line[0]) && alnum(line[1]) && alnum(line[2]) && is_delim(static_cast<uint8_t>(line[3])))
        record_stray_phi(ctx, line);
      if (eol == std::string_view::npos) break;
      text.remove_prefix(eol + 1);
    }
  }

  // A batch or file is often acknowledged as a whole, by its control id (BHS-11, FHS-11): kept
  // with its messages', so that such an ACK pairs (no acked_type: it names no message).
  [[gnu::cold]] void remember_batch_id(const DirState& s, FlowContext& ctx, std::string_view header) {
    hl7cpp::Separators sep;
    if (header.empty() || !hl7cpp::read_separators(header, sep)) return;
    const std::string_view id = hl7cpp::Segment(header, &sep).field(11).raw().substr(0, kMaxControlId);
    if (id.empty()) return;
    PendingMsg& slot = batch_ids_.size() < kMaxPending ? batch_ids_.emplace_back() : batch_ids_[batch_next_++ % kMaxPending];
    slot.id_hash = control_id_hash(id);
    slot.id_len = static_cast<uint8_t>(id.size());
    std::memcpy(slot.id, id.data(), id.size());
    slot.type_len = 0;
    slot.ts = ctx.now();
    slot.dir = s.dir;
    slot.ack_code_len = 0;
  }

  // Text of a raw value for output: unescaped only when it holds escapes, converted to UTF-8
  // from the MSH-18 character set. Returns a view valid until the next call with the same scratch.
  [[gnu::always_inline]] std::string_view text_of(std::string_view raw, std::string& scratch) {
    // Most messages hold neither escapes nor 8-bit text: no per-value scan then. ISO 2022 text
    // is 7-bit: its escape sequences are looked for in each value.
    if (!msg_.may_have_escapes() && (!decode_ || (msg_.ascii_only() && !iso2022_))) return raw;
    return convert_text(raw, scratch);
  }
  std::string_view convert_text(std::string_view raw, std::string& scratch) {
    auto needs_decoding = [&](std::string_view t) {
      return decode_ && std::any_of(t.begin(), t.end(), [&](char c) {
               return static_cast<unsigned char>(c) >= 0x80 || (iso2022_ && c == '\x1B');
             });
    };
    bool esc = msg_.may_have_escapes() && hl7cpp::has_escape(raw, msg_.separators());
    if (!esc && !((iso2022_ || !msg_.ascii_only()) && needs_decoding(raw))) return raw;
    scratch.clear();
    if (esc) {
      tmp_.clear();
      if (!hl7cpp::unescape_to(raw, msg_.separators(), tmp_, hl7cpp::CharsetSwitch::iso2022)) bad_escape_ = true;
      if (std::memchr(tmp_.data(), 0x1B, tmp_.size())) {
        // \C..\ and \M..\ switch sets as the ISO 2022 escape sequences they stand for (HL7 2.7.2):
        // the value is ISO 2022 text from the message's set on, the text a sender in ISO 2022
        // mode writes. One that does not decode so is read without its switches.
        if (charset::to_utf8(tmp_, set_, true, scratch)) return scratch;
        scratch.clear();
        tmp_.clear();
        hl7cpp::unescape_to(raw, msg_.separators(), tmp_, hl7cpp::CharsetSwitch::drop);
      }
      // The 8-bit bytes may come from \Xhh\ escapes of a pure ASCII message: check what was unescaped.
      if (needs_decoding(tmp_)) charset::to_utf8(tmp_, set_, iso2022_, scratch); else scratch.swap(tmp_);
    } else {
      charset::to_utf8(raw, set_, iso2022_, scratch);
    }
    return scratch;
  }
  void write_text(JsonWriter& w, std::string_view key, std::string_view raw) {
    if (raw.empty()) return;
    w.field(key, text_of(raw, scratch_));
  }

  // Event members rendered from a run of raw MSH fields, kept while the run repeats: a
  // connection sends the same sender, receiver, message type and settings in every message.
  // The rendering depends only on the run's bytes, the separators and the character set.
  struct RenderedRun {
    std::string raw, json;
    hl7cpp::Separators sep;
    hl7cpp::Charset charset = hl7cpp::Charset::unspecified;
    bool iso2022 = false;
    bool bad_escape = false, valid = false;
  };
  template <class Render>
  void members_of_run(JsonWriter& w, RenderedRun& c, std::string_view run, Render render) {
    const hl7cpp::Separators& sep = msg_.separators();
    if (c.valid && c.charset == charset_ && c.iso2022 == iso2022_ && c.raw == run && std::memcmp(&c.sep, &sep, sizeof sep) == 0) {
      w.members(c.json);
      bad_escape_ = bad_escape_ || c.bad_escape;
      return;
    }
    bool bad_before = bad_escape_;
    bad_escape_ = false;
    size_t from = w.buffer().size();
    render();
    c.json.assign(w.buffer().data() + from, w.buffer().size() - from);
    c.raw.assign(run);
    c.sep = sep;
    c.charset = charset_;
    c.iso2022 = iso2022_;
    c.bad_escape = bad_escape_;
    c.valid = run.size() <= kMaxRun;  // a huge run is rendered each time rather than kept
    bad_escape_ = bad_escape_ || bad_before;
  }
  static constexpr size_t kMaxRun = 1024;
  // The run of raw bytes from the start of `first` to the end of `last` (fields of one segment).
  static std::string_view run_of(std::string_view first, std::string_view last) {
    return {first.data(), static_cast<size_t>(last.data() + last.size() - first.data())};
  }

  void process_message(DirState& s, std::string_view text, uint64_t offset, bool in_batch) {
    process_parsed(s, msg_.parse(text), offset, in_batch);
  }
  // One message already parsed into msg_ (status st): flow facts, ACK pairing, the event.
  void process_parsed(DirState& s, hl7cpp::ParseStatus st, uint64_t offset, bool in_batch);

  // The steps of process_parsed, in order. Views point into msg_'s text.
  struct Header {  // the MSH fields the facts, the pairing and the event read
    size_t nf = 0;  // fields split out of MSH (up to MSH-21)
    std::string_view msh3, msh4, msh5, msh6, msh7, msh9, msh10, msh11, msh12, msh15, msh16, msh18;
    std::string_view msg_code, trigger, structure, version, proc_id;  // MSH-9.1..3, MSH-12.1, MSH-11.1
  };
  struct Scan {  // what the walk over the other segments found; lists in seg_names_, equipment_, prt_
    uint64_t phi_mask = 0;  // bits of phi_index().names
    bool z_phi = false;     // a Z segment with a non-empty field
    size_t n_names = 0, n_equipment = 0, n_prt = 0;
    std::string_view patient_id, patient_name, placer, filler, ack_code, ack_id, err_code;
    bool is_response() const { return !ack_code.empty(); }
  };
  struct AckResult {  // an acknowledgment's match in the pending table
    bool matched = false;
    int64_t latency_us = 0;
    char type[24];      // the acknowledged message's type, e.g. ADT^A01
    uint8_t type_len = 0;
    char earlier_code[2];  // the code of an earlier ACK of the same message (CA before AA)
    uint8_t earlier_code_len = 0;
  };
  // Rare: kept out of write_event, whose size decides what the compiler inlines into it.
  [[gnu::noinline, gnu::cold]] static void write_earlier_code(JsonWriter& w, const AckResult& ack) {
    w.field("earlier_code", std::string_view(ack.earlier_code, ack.earlier_code_len));
  }
  // An ACK that names no message seen yet while the other direction still holds bytes behind a
  // lost segment: its message may be among them (sent before the ACK, delivered after it). Held
  // (a copy; bounded) and processed when that message comes, or unmatched when it does not.
  struct HeldAck {
    std::string text;
    std::string id;  // MSA-2, cut to kMaxControlId
    uint64_t offset = 0;
    Timestamp ts;
    Dir dir = Dir::to_client;  // the ACK's direction
    const char* transport = "mllp";
    bool complete = true, in_batch = false;
  };
  static constexpr size_t kMaxHeldAcks = 64;
  static constexpr size_t kMaxHeldBytes = 256u << 10;
  [[gnu::cold]] bool hold_ack(const DirState& s, FlowContext& ctx, const Scan& sc, std::string_view text, uint64_t offset,
                              bool in_batch);
  // Processes the held ACKs of direction `dir` naming `id` (all of them when id is empty).
  [[gnu::cold]] void release_held(FlowContext& ctx, Dir dir, std::string_view id);

  Header read_header();
  void set_charset(std::string_view msh18, char repetition);
  void decode_whole_message(Header& h);
  // The message's set has two-byte characters whose bytes may equal a delimiter.
  bool delimiter_bytes_in_text() const {
    return iso2022_ || charset_ == hl7cpp::Charset::big5 || charset_ == hl7cpp::Charset::gb18030;
  }
  void scan_segments(Scan& sc);
  void record_facts(const DirState& s, FlowContext& ctx, const Header& h, const Scan& sc);
  AckResult pair_ack(const DirState& s, FlowContext& ctx, const Header& h, const Scan& sc, bool unawaited);
  void write_event(const DirState& s, FlowContext& ctx, const Header& h, const Scan& sc, const AckResult& ack,
                   uint64_t offset, bool in_batch);

  // Adds "a^b" (or "a") to a short list; true when it was new. Values with list punctuation are
  // skipped: they could not be told apart in the comma list.
  static bool add_unique(std::vector<std::string>& list, std::string_view a, std::string_view b) {
    if (list.size() >= kMaxListed || a.size() + b.size() > 32) return false;
    for (char c : a) if (c == ',' || static_cast<unsigned char>(c) < 0x20) return false;
    for (char c : b) if (c == ',' || static_cast<unsigned char>(c) < 0x20) return false;
    for (auto& v : list)
      if (v.size() == a.size() + (b.empty() ? 0 : b.size() + 1) && v.compare(0, a.size(), a) == 0 &&
          (b.empty() || v.compare(a.size() + 1, b.size(), b) == 0))
        return false;
    std::string v(a);
    if (!b.empty()) { v.push_back('^'); v.append(b); }
    list.push_back(std::move(v));
    return true;
  }
  // A stream repeats a few message shapes: the segment list and the PHI field list of an
  // event are rendered once per distinct list and copied while it repeats. Messages and their
  // ACKs alternate on a connection, so a few segment lists are kept, not one.
  std::string_view segments_json(size_t n) {
    for (SegmentShape& c : shapes_) {
      bool same = n == c.n;
      for (size_t k = 0; same && k < n; ++k) same = c.keys[k] == seg_keys_[k] && c.lens[k] == seg_names_[k].size();
      if (same) return c.json;
    }
    SegmentShape& c = shapes_[next_shape_];
    next_shape_ = (next_shape_ + 1) % shapes_.size();
    c.n = n;
    c.json.assign("[");
    for (size_t k = 0; k < n; ++k) {
      c.keys[k] = seg_keys_[k];
      c.lens[k] = static_cast<uint8_t>(seg_names_[k].size());
      if (k) c.json.push_back(',');
      JsonWriter::append_escaped(c.json, seg_names_[k]);
    }
    c.json.push_back(']');
    return c.json;
  }
  std::string_view phi_fields_json(uint64_t mask, bool z) {
    if (phi_json_valid_ && mask == phi_json_mask_ && z == phi_json_z_) return phi_json_;
    const PhiIndex& phi = phi_index();
    phi_json_.assign("[");
    for (size_t b = 0; b < phi.names.size(); ++b) {
      if (!(mask & (1ULL << b))) continue;
      if (phi_json_.size() > 1) phi_json_.push_back(',');
      JsonWriter::append_escaped(phi_json_, phi.names[b]);
    }
    if (z) {
      if (phi_json_.size() > 1) phi_json_.push_back(',');
      phi_json_.append("\"Z-segment\"");
    }
    phi_json_.push_back(']');
    phi_json_valid_ = true;
    phi_json_mask_ = mask;
    phi_json_z_ = z;
    return phi_json_;
  }

  static std::string join(const std::vector<std::string>& list) {
    std::string out;
    for (auto& v : list) { if (!out.empty()) out.push_back(','); out += v; }
    return out;
  }

  std::array<DirState, 2> dirs_;
  std::array<std::array<RenderedRun, 3>, 2> runs_;  // per direction: MSH-3..6, MSH-9, MSH-11..16
  hl7cpp::Message msg_;
  // The message's character set (MSH-18): set_ decodes its text when decode_; iso2022_ when a
  // repetition names a set reached through ISO 2022 escape sequences (Japanese).
  hl7cpp::Charset charset_ = hl7cpp::Charset::unspecified;
  charset::Set set_ = charset::Set::ascii;
  bool decode_ = false, iso2022_ = false;
  std::vector<PendingMsg> pending_;
  std::vector<HeldAck> held_;
  size_t held_bytes_ = 0;
  bool replaying_ = false;  // processing a held ACK: counted and its facts recorded already
  std::array<PendingMsg, 8> acked_;  // the last messages acknowledged, for a second ACK of one
  size_t acked_next_ = 0;
  std::vector<PendingMsg> batch_ids_;  // the last messages of batches, never reported unacked
  size_t batch_next_ = 0;
  std::string scratch_, tmp_, pseudo_in_, pseudo_out_;
  std::string decoded_msg_;  // a message in a set with delimiter-valued bytes, as UTF-8
  std::array<std::string_view, 64> f_{};
  // Per-message scratch lists, members so that a message does not pay for clearing them; only
  // the first n entries (counted in process_message) are read.
  struct PrtDevice { std::string_view device, udi, serial, type; };
  std::array<std::string_view, 24> seg_names_;
  std::array<uint64_t, 24> seg_keys_;
  struct SegmentShape {
    std::array<uint64_t, 24> keys;  // the segment list `json` renders
    std::array<uint8_t, 24> lens;
    size_t n = SIZE_MAX;
    std::string json;
  };
  std::array<SegmentShape, 4> shapes_;
  size_t next_shape_ = 0;
  uint64_t phi_json_mask_ = 0;                 // the PHI field list phi_json_ renders
  bool phi_json_z_ = false, phi_json_valid_ = false;
  std::string phi_json_;
  std::array<std::string_view, kMaxListed> equipment_;
  std::array<PrtDevice, 4> prt_;
  FlowContext* cur_ctx_ = nullptr;
  DirState* cur_dir_ = nullptr;
  uint64_t cur_offset_ = 0;
  const char* cur_transport_ = "mllp";
  bool cur_complete_ = true;
  bool cur_http_response_ = false;  // the payload is an HTTP response's body: the answer itself
  bool stray_reported_ = false;
  bool bad_escape_ = false;
  uint64_t phi_seen_flow_ = 0;   // PHI fields already added to the flow facts
  bool attrs_set_ = false, server_attrs_set_ = false;
  bool app_set_ = false, server_app_set_ = false;  // an MSH-3 that is not empty recorded
  std::vector<std::string> types_, proc_ids_;  // hl7.message_types, hl7.processing_id
  uint64_t* msg_counter_ = nullptr;
  friend struct DirState;
  friend struct BodyFrames;
};

void DirState::feed(std::span<const uint8_t> data) {
  if (!data.empty()) chunk_times[chunks_fed++ % kChunkTimes] = {framer.offset(), ctx->now()};
  framer.feed(data, *this);
}
void DirState::end_bare_message(bool complete) { framer.end_bare_message(*this, complete); }

Timestamp DirState::time_of(uint64_t offset) const {
  size_t n = std::min(chunks_fed, kChunkTimes);
  if (n == 0) return ctx->now();
  const ChunkTime* oldest = nullptr;
  for (size_t k = 0; k < n; ++k) {
    const ChunkTime& c = chunk_times[(chunks_fed - 1 - k) % kChunkTimes];
    if (c.start <= offset) return c.ts;
    oldest = &c;
  }
  return oldest->ts;
}

void DirState::frame(const hl7cpp::MllpFrame& f) {
  // MLLP release 2 commit acknowledgment: a frame holding only ACK (0x06) or NAK (0x15).
  if (f.start_block && f.payload.size() == 1 && (f.payload[0] == 0x06 || f.payload[0] == 0x15)) {
    ++ctx->counters().at("hl7.mllp_commit_acks");
    return;
  }
  if (f.start_block) {
    self->payload(*this, f.payload, base + f.offset + 1, "mllp", f.terminated);
    return;
  }
  // A bare message carries the time of its last byte, for the event and for the ACK latency.
  const Timestamp now = ctx->now();
  if (!f.payload.empty()) ctx->set_now(time_of(f.offset + f.payload.size() - 1));
  self->payload(*this, f.payload, base + f.offset, "tcp", f.terminated);
  ctx->set_now(now);
}
void DirState::anomaly(hl7cpp::MllpAnomaly a, uint64_t offset) {
  std::string name = "mllp.";
  name += hl7cpp::to_string(a);
  ctx->anomaly(kName, name, base + offset);
}
// At the message's offset; in the order of http::Anomaly (no_length never comes: a body may run
// to the close).
void DirState::anomaly(http::Anomaly a, uint64_t message, uint64_t) {
  static constexpr std::string_view kNames[] = {"http.bad_start_line", "http.header_too_large", "http.body_too_large",
                                                "http.bad_chunk",      "http.no_length",        "http.truncated_body",
                                                "http.body_memory_budget"};
  ctx->anomaly(kName, kNames[static_cast<size_t>(a)], base + message);
}

void DirState::message(const http::Message& m) {
  if (m.body.empty()) return;
  bool typed = hl7_content_type(m.content_type);
  // A compressed body (Content-Encoding, or a transfer coding before chunked: gzip, deflate) is
  // read as its text, up to a body's cap: its PHI is as much in clear.
  std::string text;
  std::string_view body = m.body;
  if (!m.codings.empty()) {
    http::Decoding d = http::undo_codings(m.codings, m.body, kMaxFrame, text);
    bool whole = false;  // a body cut by the stream's end: the text of what came
    if (!m.complete && d == http::Decoding::broken && http::inflate_prefix(m.codings, m.body, kMaxFrame, text, whole))
      d = http::Decoding::ok;
    auto t = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    if (d != http::Decoding::ok) {
      // Another exchange of the flow (a compressed page, a JSON health check) is let be.
      if (typed || (d == http::Decoding::too_long && body_is_hl7(t) == Probe::yes))
        ctx->anomaly(kName, d == http::Decoding::too_long ? "http.body_too_large" : "http.undecodable_body", base + m.offset);
      return;
    }
    body = text;
  }
  auto b = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  if (!typed && body_is_hl7(b) != Probe::yes) return;  // some other HTTP exchange on the flow
  ++ctx->counters().at("hl7.http_bodies");
  size_t i = 0;
  while (i < b.size() && (b[i] == '\r' || b[i] == '\n' || b[i] == ' ')) ++i;
  uint64_t body_off = base + m.offset;  // bodies are reassembled: offsets point at the HTTP message
  self->cur_http_response_ = !m.request;
  if (i < b.size() && b[i] == 0x0B) {
    BodyFrames bf;
    bf.self = self;
    bf.ds = this;
    bf.base = body_off;
    hl7cpp::MllpFramer fr(kMaxFrame);
    fr.feed(b, bf);
    fr.finish(bf);
  } else {
    self->payload(*this, body, body_off, "http", m.complete);
  }
  self->cur_http_response_ = false;
}

void BodyFrames::frame(const hl7cpp::MllpFrame& f) { self->payload(*ds, f.payload, base, "http", f.terminated); }
void BodyFrames::anomaly(hl7cpp::MllpAnomaly a, uint64_t) {
  std::string name = "mllp.";
  name += hl7cpp::to_string(a);
  ds->ctx->anomaly(kName, name, base);
}

void Hl7Dissector::process_parsed(DirState& s, hl7cpp::ParseStatus st, uint64_t offset, bool in_batch) {
  FlowContext& ctx = *s.ctx;
  if (!msg_counter_) msg_counter_ = &ctx.counters().at("hl7.messages");
  if (!replaying_) ++*msg_counter_;
  if (st == hl7cpp::ParseStatus::bad_encoding) {
    ctx.anomaly(kName, "hl7.bad_encoding_characters", offset);
    // Its segments crossed in clear all the same: their PHI fields count for the flow, as
    // those of segments outside any message do.
    if (!replaying_) record_lines_phi(ctx, msg_.raw());
    return;
  }
  if (st == hl7cpp::ParseStatus::too_many_segments) ctx.anomaly(kName, "hl7.too_many_segments", offset);
  if (st != hl7cpp::ParseStatus::ok && st != hl7cpp::ParseStatus::too_many_segments) {
    ctx.anomaly(kName, "hl7.bad_header", offset);
    return;
  }
  bad_escape_ = false;
  // The message as sent: what is held is parsed again later, and decoded then (msg_ may view its
  // UTF-8 text from here on).
  const std::string_view sent = msg_.raw();
  Header h = read_header();
  if (delimiter_bytes_in_text()) decode_whole_message(h);
  Scan sc;
  scan_segments(sc);
  if (!replaying_) {
    record_facts(s, ctx, h, sc);
    if (sc.is_response() && ctx.behind_hole(reverse(s.dir)) && hold_ack(s, ctx, sc, sent, offset, in_batch)) return;
  }
  // A message in an HTTP response is the answer to the request: no ACK follows it. Like a
  // batch's, it is not awaited, only kept for an ACK that may still name it.
  const AckResult ack = pair_ack(s, ctx, h, sc, in_batch || cur_http_response_);
  write_event(s, ctx, h, sc, ack, offset, in_batch);
  if (bad_escape_) ctx.anomaly(kName, "hl7.bad_escape", offset);
  // The message an ACK was held for.
  if (!held_.empty() && !sc.is_response() && !h.msh10.empty())
    release_held(ctx, reverse(s.dir), h.msh10.substr(0, kMaxControlId));
}

bool Hl7Dissector::hold_ack(const DirState& s, FlowContext& ctx, const Scan& sc, std::string_view text, uint64_t offset,
                            bool in_batch) {
  const std::string_view id = sc.ack_id.substr(0, kMaxControlId);
  if (held_.size() >= kMaxHeldAcks || held_bytes_ + text.size() > kMaxHeldBytes) return false;
  for (const PendingMsg& p : pending_)
    if (p.has_id(id) && p.dir != s.dir) return false;
  for (size_t k = 0; k < std::min(acked_next_, acked_.size()); ++k)
    if (acked_[k].has_id(id) && acked_[k].dir != s.dir) return false;
  for (const PendingMsg& b : batch_ids_)
    if (b.has_id(id) && b.dir != s.dir) return false;
  HeldAck& a = held_.emplace_back();
  a.text.assign(text);
  a.id.assign(id);
  a.offset = offset;
  a.ts = ctx.now();
  a.dir = s.dir;
  a.transport = cur_transport_;
  a.complete = cur_complete_;
  a.in_batch = in_batch;
  held_bytes_ += text.size();
  ++ctx.counters().at("hl7.ack.held");
  return true;
}

void Hl7Dissector::release_held(FlowContext& ctx, Dir dir, std::string_view id) {
  // Taken out first: processing one writes its event, and may not hold it again.
  std::vector<HeldAck> take;
  for (size_t k = 0; k < held_.size();) {
    if (held_[k].dir == dir && (id.empty() || held_[k].id == id)) {
      held_bytes_ -= held_[k].text.size();
      take.push_back(std::move(held_[k]));
      held_.erase(held_.begin() + static_cast<ptrdiff_t>(k));
    } else {
      ++k;
    }
  }
  if (take.empty()) return;
  const Timestamp now = ctx.now();
  const char* transport = cur_transport_;
  const bool complete = cur_complete_;
  DirState& s = dirs_[static_cast<int>(dir)];
  FlowContext* sctx = s.ctx;
  s.ctx = &ctx;
  replaying_ = true;
  for (HeldAck& a : take) {
    ctx.set_now(a.ts);  // the event and the latency are those of the ACK as it came
    cur_transport_ = a.transport;
    cur_complete_ = a.complete;
    process_parsed(s, msg_.parse(a.text), a.offset, a.in_batch);
  }
  replaying_ = false;
  s.ctx = sctx;
  cur_transport_ = transport;
  cur_complete_ = complete;
  ctx.set_now(now);
}

// Some bytes of a two-byte character may equal a delimiter (BIG-5 0xB3 0x5C, JIS 0x38 0x5E): the
// message is decoded whole and its UTF-8 text parsed, as no field can be split before its bytes
// are read as characters. The copy is at most 4 bytes per byte of a message the framing already
// bounds. A message that does not decode whole, or whose decoded text does not parse, is read
// value by value as sent.
void Hl7Dissector::decode_whole_message(Header& h) {
  const std::string_view original = msg_.raw();
  decoded_msg_.clear();
  if (!charset::to_utf8(original, set_, iso2022_, decoded_msg_)) return;
  const hl7cpp::ParseStatus again = msg_.parse(decoded_msg_);
  const bool parsed = again == hl7cpp::ParseStatus::ok || again == hl7cpp::ParseStatus::too_many_segments;
  if (!parsed) msg_.parse(original);
  h = read_header();
  if (parsed) {
    decode_ = iso2022_ = false;  // the text is UTF-8 now
    set_ = charset::Set::utf8;   // where a \C..\ or \M..\ escape switches from
  }
}

// MSH-18's first repetition is the set of the message's text; a later one names an alternate
// set the text switches to with ISO 2022 escape sequences (HL7 2.15.9.18, Japanese use).
void Hl7Dissector::set_charset(std::string_view msh18, char repetition) {
  using hl7cpp::Charset;
  charset_ = hl7cpp::charset_from_msh18(hl7cpp::nth_piece(msh18, repetition, 1));
  iso2022_ = false;
  std::string_view reps[4];
  size_t n = hl7cpp::split_pieces(msh18, repetition, reps, 4);
  for (size_t k = 0; k < n; ++k) {
    Charset c = k == 0 ? charset_ : hl7cpp::charset_from_msh18(reps[k]);
    iso2022_ |= c == Charset::jis_x0208 || c == Charset::jis_x0212 || (k > 0 && c == Charset::jis_x0201);
  }
  decode_ = true;
  switch (charset_) {
    case Charset::latin1: set_ = charset::Set::iso8859_1; break;
    case Charset::iso8859_2: set_ = charset::Set::iso8859_2; break;
    case Charset::iso8859_3: set_ = charset::Set::iso8859_3; break;
    case Charset::iso8859_4: set_ = charset::Set::iso8859_4; break;
    case Charset::iso8859_5: set_ = charset::Set::iso8859_5; break;
    case Charset::iso8859_6: set_ = charset::Set::iso8859_6; break;
    case Charset::iso8859_7: set_ = charset::Set::iso8859_7; break;
    case Charset::iso8859_8: set_ = charset::Set::iso8859_8; break;
    case Charset::iso8859_9: set_ = charset::Set::iso8859_9; break;
    case Charset::iso8859_15: set_ = charset::Set::iso8859_15; break;
    case Charset::jis_x0201: set_ = charset::Set::jis_x0201; break;
    case Charset::gb18030: set_ = charset::Set::gb18030; break;
    case Charset::ks_x1001: set_ = charset::Set::ks_x1001; break;
    case Charset::cns11643: set_ = charset::Set::cns11643; break;
    case Charset::big5: set_ = charset::Set::big5; break;
    case Charset::utf8:
      // Kept as sent; the set a \C..\ or \M..\ escape, or ISO 2022 text, switches from.
      set_ = charset::Set::utf8;
      decode_ = iso2022_;
      break;
    default:
      // ASCII, UTF-8, none named, or one not decoded: the text is kept as sent, except that
      // ISO 2022 text starts in ASCII and designates its sets as it goes.
      set_ = charset::Set::ascii;
      decode_ = iso2022_;
      break;
  }
}

// MSH, one pass; sets the message's character set.
Hl7Dissector::Header Hl7Dissector::read_header() {
  const hl7cpp::Separators& sep = msg_.separators();
  Header h;
  h.nf = msg_.msh().split_fields(f_.data(), 22);
  auto F = [&](size_t k) { return k < h.nf ? f_[k] : std::string_view(); };
  h.msh3 = F(3), h.msh4 = F(4), h.msh5 = F(5), h.msh6 = F(6), h.msh7 = F(7), h.msh9 = F(9), h.msh10 = F(10);
  h.msh11 = F(11), h.msh12 = F(12), h.msh15 = F(15), h.msh16 = F(16), h.msh18 = F(18);
  set_charset(h.msh18, sep.repetition);
  std::string_view msh9_parts[3];
  hl7cpp::split_pieces(h.msh9, sep.component, msh9_parts, 3);
  h.msg_code = msh9_parts[0], h.trigger = msh9_parts[1], h.structure = msh9_parts[2];
  h.version = hl7cpp::nth_piece(h.msh12, sep.component, 1);
  h.proc_id = hl7cpp::nth_piece(h.msh11, sep.component, 1);
  return h;
}

// The other segments, once: their names, the PHI fields present, the patient and order ids,
// the acknowledgment, and the equipment named (into the scratch lists).
void Hl7Dissector::scan_segments(Scan& sc) {
  const hl7cpp::Separators& sep = msg_.separators();
  const PhiIndex& phi = phi_index();
  for (size_t i = 0; i < msg_.size(); ++i) {
    hl7cpp::Segment seg = msg_.segment(i);
    std::string_view name = seg.name();
    if (name.size() > 8) name = name.substr(0, 8);
    // Names compared as one integer (up to 8 bytes, plus the length). Built in a register: a
    // variable-length memcpy to the stack and an 8-byte load back stalls store forwarding.
    uint64_t packed = 0;
    if (name.size() == 3) packed = code3(name.data());
    else for (size_t j = 0; j < name.size(); ++j) packed |= uint64_t(uint8_t(name[j])) << (8 * j);
    bool dup = false;
    for (size_t k = 0; k < sc.n_names; ++k)
      if (seg_keys_[k] == packed && seg_names_[k].size() == name.size()) { dup = true; break; }
    if (!dup && sc.n_names < seg_names_.size()) {
      seg_keys_[sc.n_names] = packed;
      seg_names_[sc.n_names++] = name;
    }
    if (i == 0) continue;
    int ps = phi_seg(name);
    uint32_t code = name.size() == 3 ? code3(name.data()) : 0;
    bool is_prt = code == code3("PRT"), is_msa = code == code3("MSA"), is_err = code == code3("ERR");
    bool is_z = !name.empty() && name[0] == 'Z';
    if (ps < 0 && !is_prt && !is_msa && !is_err && !is_z) continue;
    // Only the fields read below are split out (G(k) reads no others); a Z segment is read whole.
    size_t n;
    if (ps >= 0) {
      n = seg.pick_fields(f_.data(), phi.read[ps]);
    } else if (is_prt) {
      n = seg.pick_fields(f_.data(), 1ULL << 10 | 1ULL << 16 | 1ULL << 20 | 1ULL << 22);
    } else if (is_msa) {
      n = seg.pick_fields(f_.data(), 1ULL << 1 | 1ULL << 2);
    } else if (is_err) {
      n = seg.pick_fields(f_.data(), 1ULL << 1 | 1ULL << 3);
    } else {
      n = seg.split_fields(f_.data(), f_.size());
    }
    auto G = [&](size_t k) { return k < n ? f_[k] : std::string_view(); };
    auto present = [&](size_t k) { return hl7cpp::Field(G(k), &sep).has_value(); };
    if (ps >= 0) {
      for (uint8_t fld : kPhi[ps].fields) {
        if (!fld) break;
        if (present(fld)) sc.phi_mask |= 1ULL << phi.bit[ps][fld];
      }
      // An explicit null ("") or a value of separators only ("^") names nobody: no pseudonym,
      // which every deleted patient would otherwise share.
      auto value = [&](std::string_view v) { return hl7cpp::Field(v, &sep).has_value() ? v : std::string_view(); };
      if (code == code3("PID")) {
        if (sc.patient_id.empty()) {
          // CX.1 of the first identifier: the MRN a DICOM Patient ID carries too.
          sc.patient_id = value(hl7cpp::nth_piece(hl7cpp::nth_piece(G(3), sep.repetition, 1), sep.component, 1));
          if (sc.patient_id.empty()) sc.patient_id = value(hl7cpp::nth_piece(G(2), sep.component, 1));
        }
        if (sc.patient_name.empty()) sc.patient_name = value(hl7cpp::nth_piece(G(5), sep.repetition, 1));
      } else if (code == code3("ORC") || code == code3("OBR")) {
        if (sc.placer.empty()) sc.placer = value(hl7cpp::nth_piece(G(2), sep.component, 1));
        if (sc.filler.empty()) sc.filler = value(hl7cpp::nth_piece(G(3), sep.component, 1));
      } else if (code == code3("OBX")) {
        std::string_view eq = hl7cpp::nth_piece(G(18), sep.repetition, 1);
        if (!eq.empty() && sc.n_equipment < equipment_.size()) {
          bool seen = false;
          for (size_t k = 0; k < sc.n_equipment; ++k) if (equipment_[k] == eq) seen = true;
          if (!seen) equipment_[sc.n_equipment++] = eq;
        }
      }
    } else if (is_prt) {
      PrtDevice d{G(10), G(16), G(20), G(22)};
      if ((!d.device.empty() || !d.udi.empty() || !d.serial.empty()) && sc.n_prt < prt_.size()) prt_[sc.n_prt++] = d;
    } else if (is_msa) {
      if (sc.ack_code.empty()) {
        sc.ack_code = G(1);
        sc.ack_id = G(2);
      }
    } else if (is_err) {
      if (sc.err_code.empty()) {
        // v2.5+: ERR-3 (CWE); v2.3/2.4: ERR-1 (ELD) whose 4th component is the code.
        sc.err_code = hl7cpp::nth_piece(G(3), sep.component, 1);
        if (sc.err_code.empty())
          sc.err_code = hl7cpp::nth_piece(hl7cpp::nth_piece(G(1), sep.component, 4), sep.subcomponent, 1);
      }
    } else if (is_z) {
      for (size_t k = 1; k < n && !sc.z_phi; ++k) if (present(k)) sc.z_phi = true;
    }
  }
}

// Flow facts: PHI fields seen in clear, the equipment named, and what the client sends (its
// identity, message types and processing ids, which the policy checks against the model).
void Hl7Dissector::record_facts(const DirState& s, FlowContext& ctx, const Header& h, const Scan& sc) {
  FlowFacts& facts = ctx.facts();
  const PhiIndex& phi = phi_index();
  uint64_t fresh = sc.phi_mask & ~phi_seen_flow_;
  if (fresh) {
    for (size_t b = 0; b < phi.names.size(); ++b)
      if (fresh & (1ULL << b)) facts.add_phi(phi.names[b]);
    phi_seen_flow_ |= fresh;
  }
  if (sc.z_phi) facts.add_phi("Z-segment");
  // Device identity for the asset inventory: the equipment named in the message belongs to the
  // side that sent it.
  if (sc.n_equipment || sc.n_prt) {
    auto text = [&](std::string_view raw) { return raw.empty() ? std::string() : std::string(text_of(raw, scratch_)); };
    for (size_t k = 0; k < sc.n_equipment; ++k) {
      DeviceIdentity d;
      d.client = s.dir == Dir::to_server;
      d.source = "hl7 OBX-18";
      d.id = text(equipment_[k]);
      facts.add_identity(std::move(d));
    }
    for (size_t k = 0; k < sc.n_prt; ++k) {
      DeviceIdentity d;
      d.client = s.dir == Dir::to_server;
      d.source = "hl7 PRT";
      d.id = text(prt_[k].device);
      d.udi = text(prt_[k].udi);
      d.serial = text(prt_[k].serial);
      d.type = text(prt_[k].type);
      facts.add_identity(std::move(d));
    }
  }
  // The server's own application, for the inventory: MSH-3/4 of the first message it sent
  // (usually an ACK), or of the first one after it that names the application when it left MSH-3
  // empty (the application and its facility are taken together).
  if (s.dir == Dir::to_client) {
    if (!server_app_set_ && (!server_attrs_set_ || !h.msh3.empty())) {
      server_attrs_set_ = true;
      server_app_set_ = !h.msh3.empty();
      facts.set_attr("hl7.server_msh3", text_of(h.msh3, scratch_));
      facts.set_attr("hl7.server_msh4", text_of(h.msh4, scratch_));
    }
    return;
  }
  if (sc.is_response()) return;
  // The sender's application names the flow and the asset: MSH-3/4 as for the server above.
  if (!app_set_ && (!attrs_set_ || !h.msh3.empty())) {
    app_set_ = !h.msh3.empty();
    facts.set_attr("hl7.msh3", text_of(h.msh3, scratch_));
    facts.set_attr("hl7.msh4", text_of(h.msh4, scratch_));
  }
  if (!attrs_set_) {
    attrs_set_ = true;
    facts.set_attr("hl7.msh5", text_of(h.msh5, scratch_));
    facts.set_attr("hl7.msh6", text_of(h.msh6, scratch_));
    facts.set_attr("hl7.version", h.version);
  }
  if (!h.msg_code.empty() && add_unique(types_, h.msg_code, h.trigger)) facts.set_attr("hl7.message_types", join(types_));
  if (!h.proc_id.empty() && add_unique(proc_ids_, h.proc_id, {})) facts.set_attr("hl7.processing_id", join(proc_ids_));
}

// ACK pairing: an acknowledgment takes its message out of the pending table (latency, type);
// a message that asks for one goes into it.
Hl7Dissector::AckResult Hl7Dissector::pair_ack(const DirState& s, FlowContext& ctx, const Header& h, const Scan& sc,
                                               bool unawaited) {
  AckResult r;
  if (sc.is_response()) {
    std::string_view id = sc.ack_id.substr(0, kMaxControlId);
    uint32_t hash = pending_.empty() ? 0 : control_id_hash(id);  // no table, nothing to hash for yet
    auto take = [&](PendingMsg& p) {
      r.matched = true;
      // 0 for an ACK the capture showed before its message (held for it, see hold_ack).
      r.latency_us = std::max<int64_t>(0, ctx.now().usec - p.ts.usec);
      std::memcpy(r.type, p.type, p.type_len);
      r.type_len = p.type_len;
    };
    // Not a code: kept empty (a view into the message, for the copies below).
    const std::string_view code = sc.ack_code.substr(0, ack_code_like(sc.ack_code) ? 2 : 0);
    for (size_t k = 0; k < pending_.size(); ++k) {
      if (pending_[k].id_hash == hash && pending_[k].has_id(id) && pending_[k].dir != s.dir) {
        take(pending_[k]);
        // Kept a while: a commit ACK (CA) is followed by the application ACK, and a message
        // sent twice is acknowledged twice.
        PendingMsg& a = acked_[acked_next_++ % acked_.size()];
        a = pending_[k];
        std::memcpy(a.ack_code, code.data(), code.size());
        a.ack_code_len = static_cast<uint8_t>(code.size());
        pending_.erase(pending_.begin() + static_cast<ptrdiff_t>(k));
        break;
      }
    }
    if (!r.matched && (acked_next_ || !batch_ids_.empty()) && pending_.empty()) hash = control_id_hash(id);
    if (!r.matched) {
      for (PendingMsg& b : batch_ids_)
        if (b.id_hash == hash && b.has_id(id) && b.dir != s.dir) { take(b); break; }
    }
    if (!r.matched && acked_next_) {
      for (size_t k = 0; k < std::min(acked_next_, acked_.size()); ++k) {
        PendingMsg& a = acked_[k];
        if (a.id_hash == hash && a.has_id(id) && a.dir != s.dir) {
          take(a);
          std::memcpy(r.earlier_code, a.ack_code, a.ack_code_len);
          r.earlier_code_len = a.ack_code_len;
          std::memcpy(a.ack_code, code.data(), code.size());
          a.ack_code_len = static_cast<uint8_t>(code.size());
          break;
        }
      }
    }
    if (!r.matched) ++ctx.counters().at("hl7.ack.unmatched");
    if (sc.ack_code.size() == 2 && sc.ack_code[1] != 'A') ++ctx.counters().at("hl7.ack.negative");
    return r;
  }
  // Enhanced mode (MSH-15/16, table 0155): no ACK asked for (NE, or a field left empty) is not
  // awaited; one asked for only on an error (ER) is not awaited either, as its absence is the
  // usual case, but kept so that an error ACK still pairs. AL and SU (on success) are awaited,
  // as every message of original mode (both fields empty) is.
  auto asks = [](std::string_view v) { return v == "AL" || v == "SU"; };
  auto never = [](std::string_view v) { return v.empty() || v == "NE"; };
  const bool original = h.msh15.empty() && h.msh16.empty();
  if (h.msh10.empty() || (!original && never(h.msh15) && never(h.msh16))) return r;
  if (!original && !asks(h.msh15) && !asks(h.msh16)) unawaited = true;
  std::string_view id = h.msh10.substr(0, kMaxControlId);
  uint32_t hash = control_id_hash(id);
  PendingMsg* slot = nullptr;
  if (unawaited) {
    // Messages inside a batch or file are not awaited (batches are usually acknowledged as a
    // whole), nor those that answer an HTTP request, and take no place in the table: the last
    // ones are kept in a ring of their own, so that a receiver that acknowledges them one by
    // one is still paired.
    if (batch_ids_.size() < kMaxPending) slot = &batch_ids_.emplace_back();
    else slot = &batch_ids_[batch_next_++ % kMaxPending];
  } else {
    for (auto& p : pending_) if (p.id_hash == hash && p.has_id(id) && p.dir == s.dir) { slot = &p; break; }
  }
  if (slot) {
    if (!unawaited) ++ctx.counters().at("hl7.duplicate_control_id");
  } else if (pending_.size() >= kMaxPending) {
    ++ctx.counters().at("hl7.ack.table_full");
  } else {
    pending_.emplace_back();
    slot = &pending_.back();
  }
  if (!slot) return r;
  slot->id_hash = hash;
  slot->id_len = static_cast<uint8_t>(id.size());
  std::memcpy(slot->id, id.data(), id.size());
  size_t tl = 0;
  auto put = [&](std::string_view v) {
    size_t n = std::min(v.size(), sizeof(slot->type) - tl);
    std::memcpy(slot->type + tl, v.data(), n);
    tl += n;
  };
  put(h.msg_code);
  if (!h.trigger.empty()) { put("^"); put(h.trigger); }
  slot->type_len = static_cast<uint8_t>(tl);
  slot->ts = ctx.now();
  slot->dir = s.dir;
  slot->ack_code_len = 0;
  return r;
}

// The `hl7` event (docs/schema/hl7.json).
void Hl7Dissector::write_event(const DirState& s, FlowContext& ctx, const Header& h, const Scan& sc, const AckResult& ack,
                               uint64_t offset, bool in_batch) {
  const hl7cpp::Separators& sep = msg_.separators();
  JsonWriter& w = ctx.begin_event("hl7");
  w.object("hl7");
  w.field("kind", "message");
  w.field("transport", cur_transport_);
  w.field("direction", dir_name(s.dir));
  w.field("offset", offset);
  if (!cur_complete_) w.field("complete", false);
  if (in_batch) w.field("batch", true);
  if (msg_.lf_line_ends()) w.field("lf_line_ends", true);
  // Runs are only cached when split_fields reached their last field (the views are then
  // consecutive fields of MSH); a short header is rendered field by field.
  auto sender = [&] {
    write_text(w, "sending_application", h.msh3);
    write_text(w, "sending_facility", h.msh4);
    write_text(w, "receiving_application", h.msh5);
    write_text(w, "receiving_facility", h.msh6);
  };
  auto type = [&] {
    write_text(w, "message_type", h.msg_code);
    write_text(w, "trigger_event", h.trigger);
    write_text(w, "message_structure", h.structure);
  };
  auto settings = [&] {
    write_text(w, "processing_id", h.proc_id);
    write_text(w, "version", h.version);
    write_text(w, "accept_ack_type", h.msh15);
    write_text(w, "application_ack_type", h.msh16);
  };
  const size_t d = s.dir == Dir::to_server ? 0 : 1;
  if (h.nf > 6) members_of_run(w, runs_[d][0], run_of(h.msh3, h.msh6), sender); else sender();
  if (!h.msh7.empty()) w.field("message_datetime", hl7cpp::nth_piece(h.msh7, sep.component, 1));
  if (h.nf > 9) members_of_run(w, runs_[d][1], h.msh9, type); else type();
  write_text(w, "control_id", h.msh10);
  if (h.nf > 16) members_of_run(w, runs_[d][2], run_of(h.msh11, h.msh16), settings); else settings();
  if (!h.msh18.empty()) {
    write_text(w, "charset", hl7cpp::nth_piece(h.msh18, sep.repetition, 1));
  }
  w.key("segments");
  w.raw(segments_json(sc.n_names));
  w.field("segment_count", static_cast<uint64_t>(msg_.size()));
  if (sc.is_response()) {
    w.object("ack");
    // MSA-1 is one of table 0008's two-letter codes (AA, AE, AR, CA, CE, CR); senders that put
    // text there, which may name the patient, get no code written.
    if (ack_code_like(sc.ack_code)) w.field("code", sc.ack_code);
    else ++ctx.counters().at("hl7.ack.code_dropped");
    w.field("control_id", text_of(sc.ack_id, scratch_));
    w.field("matched", ack.matched);
    if (ack.matched) {
      w.field("latency_us", ack.latency_us);
      if (ack.type_len) w.field("acked_type", std::string_view(ack.type, ack.type_len));
      if (ack.earlier_code_len) write_earlier_code(w, ack);
    }
    if (!sc.err_code.empty()) {
      // Senders put free text (which may name the patient) where the code belongs: only a
      // code-like value is written.
      if (code_like(sc.err_code)) w.field("error_code", sc.err_code);
      else ++ctx.counters().at("hl7.ack.error_code_dropped");
    }
    w.end_object();
  }
  if (sc.phi_mask || sc.z_phi) {
    w.key("phi_fields");
    w.raw(phi_fields_json(sc.phi_mask, sc.z_phi));
  }
  if (!sc.patient_id.empty() || !sc.patient_name.empty()) {
    w.object("patient");
    if (!sc.patient_id.empty()) w.field("id", ctx.pseudonym_into(text_of(sc.patient_id, scratch_), pseudo_out_));
    if (!sc.patient_name.empty()) {
      // XPN family^given^middle^suffix^prefix reordered to DICOM PN family^given^middle^prefix^suffix,
      // so a name pseudonymises the same from both protocols.
      pseudo_in_.clear();
      std::string_view c[5];
      hl7cpp::split_pieces(sc.patient_name, sep.component, c, 5);
      c[0] = hl7cpp::nth_piece(c[0], sep.subcomponent, 1);
      const size_t order[5] = {0, 1, 2, 4, 3};
      for (size_t k = 0; k < 5; ++k) {
        if (k) pseudo_in_.push_back('^');
        pseudo_in_.append(text_of(c[order[k]], scratch_));
      }
      w.field("name", ctx.pseudonym_into(pseudo_in_, pseudo_out_));
    }
    w.end_object();
  }
  if (!sc.placer.empty() || !sc.filler.empty()) {
    w.object("order");
    if (!sc.placer.empty()) w.field("placer", ctx.pseudonym_into(text_of(sc.placer, scratch_), pseudo_out_));
    if (!sc.filler.empty()) w.field("filler", ctx.pseudonym_into(text_of(sc.filler, scratch_), pseudo_out_));
    w.end_object();
  }
  if (sc.n_equipment || sc.n_prt) {
    // Device identity (for the asset inventory): the equipment that produced results.
    w.array("devices");
    for (size_t k = 0; k < sc.n_equipment; ++k) {
      w.begin_object();
      w.field("source", "OBX-18");
      w.field("id", text_of(equipment_[k], scratch_));
      w.end_object();
    }
    for (size_t k = 0; k < sc.n_prt; ++k) {
      w.begin_object();
      w.field("source", "PRT");
      write_text(w, "id", prt_[k].device);
      write_text(w, "udi", prt_[k].udi);
      write_text(w, "serial", prt_[k].serial);
      write_text(w, "type", prt_[k].type);
      w.end_object();
    }
    w.end_array();
  }
  w.end_object();
  ctx.end_event();
}

std::unique_ptr<Dissector> make() { return std::make_unique<Hl7Dissector>(); }

constexpr uint16_t kPorts[] = {2575};
constexpr size_t kMaxProbedHead = 8192;  // an HTTP head judged past the probe window
constexpr size_t kMaxChunkLine = 1024;    // a chunk size line, as the HTTP reader reads one (http_options)
constexpr size_t kMaxProbedText = 256;    // the text a probe inflates a compressed body's first bytes to
constexpr uint16_t kTlsPorts[] = {6575};  // the usual MLLP-over-TLS port

}  // namespace

Probe probe(std::span<const uint8_t> all, Dir) {
  if (all.empty()) return Probe::need_more;
  // A UTF-8 byte order mark before the header (after the start block) is skipped.
  const size_t sb = all[0] == 0x0B ? 1 : 0;
  const size_t bom = bom_prefix(all.subspan(sb));
  if (bom == kPartialBom) return Probe::need_more;
  const auto b = all.subspan(sb + bom);
  if (sb) {
    if (b.size() < 4) return Probe::need_more;
    return is_header_id(b.data()) && is_delim(b[3]) ? Probe::yes : Probe::no;
  }
  if (bom && b.empty()) return Probe::need_more;
  if (!b.empty() && (b[0] == 'M' || b[0] == 'F' || b[0] == 'B')) {
    // A bare message (no MLLP): MSH + field separator + encoding characters.
    if (b.size() < 8) {
      static constexpr std::string_view ids[] = {"MSH", "FHS", "BHS"};
      for (auto id : ids)
        if (std::memcmp(b.data(), id.data(), std::min<size_t>(3, b.size())) == 0) return Probe::need_more;
      return Probe::no;
    }
    if (!is_header_id(b.data()) || !is_delim(b[3])) return Probe::no;
    for (size_t i = 4; i < 7; ++i)
      if (!is_delim(b[i]) || b[i] == b[3]) return Probe::no;
    return Probe::yes;
  }
  if (bom) return Probe::no;
  // HL7 in HTTP: a request with a body, or a response.
  std::string_view s(reinterpret_cast<const char*>(b.data()), b.size());
  static constexpr std::string_view kStarts[] = {"POST ", "PUT ", "HTTP/"};
  bool http = false;
  for (auto m : kStarts) {
    size_t n = std::min(m.size(), s.size());
    if (s.compare(0, n, m.substr(0, n)) == 0) {
      if (n < m.size()) return Probe::need_more;
      http = true;
    }
  }
  if (!http) return Probe::no;
  // The head ends at the first empty line; its lines end with CRLF or LF alone.
  size_t end = std::string_view::npos, body = 0;
  for (size_t k = s.find('\n'); k != std::string_view::npos; k = s.find('\n', k + 1)) {
    if (k + 1 < s.size() && s[k + 1] == '\n') { end = k; body = k + 2; break; }
    if (k + 2 < s.size() && s[k + 1] == '\r' && s[k + 2] == '\n') { end = k; body = k + 3; break; }
  }
  std::string_view head = s.substr(0, end);
  size_t ct = 0;
  bool chunked = false;
  while ((ct = head.find('\n', ct)) != std::string_view::npos) {
    ++ct;
    std::string_view line = head.substr(ct, head.find('\n', ct) - ct);
    if (line.size() > 13 && icontains(line.substr(0, 13), "content-type:") && hl7_content_type(line.substr(13)))
      return Probe::yes;
    if (line.size() > 18 && icontains(line.substr(0, 18), "transfer-encoding:") && icontains(line.substr(18), "chunked"))
      chunked = true;
  }
  if (end == std::string_view::npos) return Probe::need_more;
  uint64_t chunk = UINT64_MAX;  // the first chunk's size
  if (chunked) {
    // The body's bytes follow its first chunk's size line.
    const std::string_view rest = s.substr(body);
    const size_t le = rest.find('\n');
    if (le == std::string_view::npos) return rest.size() > kMaxChunkLine ? Probe::no : Probe::need_more;
    if (!http::chunk_size(rest.substr(0, le), kMaxFrame, chunk)) chunk = UINT64_MAX;
    body += le + 1;
  }
  const std::string codings = http::head_codings(head);
  if (codings.empty()) return body_is_hl7(b.subspan(body));
  // A compressed body (gzip, deflate) is judged by the text its first bytes inflate to (of its
  // first chunk, in chunks); one in another coding cannot be.
  std::string_view data = s.substr(body, chunk);
  std::string text;
  bool whole = false;
  if (!http::inflate_prefix(codings, data, kMaxProbedText, text, whole)) return Probe::no;
  const Probe r = body_is_hl7(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  return r == Probe::need_more && (whole || data.size() < s.size() - body) ? Probe::no : r;
}

// Who sends a stream starting with these bytes. Over HTTP the request is the client's; over MLLP
// the receiver of a message answers it (MSH-9 ACK, or an MSA segment), and the receiver is most
// often the listening side, the sender of the messages the side that connects.
StreamSender sender(std::span<const uint8_t> b) {
  if (probe(b, Dir::to_server) != Probe::yes) return StreamSender::unknown;
  std::string_view s(reinterpret_cast<const char*>(b.data()), b.size());
  if (s.starts_with("HTTP/")) return StreamSender::server;
  if (s.starts_with("POST ") || s.starts_with("PUT ")) return StreamSender::client;
  if (s[0] == 0x0B) s.remove_prefix(1);
  if (s.starts_with("\xEF\xBB\xBF")) s.remove_prefix(3);
  if (!s.starts_with("MSH")) return StreamSender::likely_client;  // a batch (FHS/BHS) is sent, not answered
  const char fs = s[3];
  for (char eol : {'\r', '\n'}) {
    const char msa[] = {eol, 'M', 'S', 'A', fs};
    if (s.find(std::string_view(msa, sizeof msa)) != std::string_view::npos) return StreamSender::likely_server;
  }
  // MSH-9 follows the 8th field separator (MSH-1 is the separator itself).
  size_t pos = 3;
  for (int k = 1; k < 8 && pos != std::string_view::npos; ++k) pos = s.find(fs, pos + 1);
  if (pos == std::string_view::npos || pos + 4 > s.size()) return StreamSender::unknown;
  if (s.find_first_of("\r\n") < pos) return StreamSender::unknown;  // MSH ended before MSH-9
  return s.substr(pos + 1, 3) == "ACK" ? StreamSender::likely_server : StreamSender::likely_client;
}

// An HTTP connection carries HL7 in some of its messages: one that began with another exchange
// (a GET first) may POST HL7 later on the same connection.
bool carried_by(std::span<const uint8_t> first, Dir) { return http::sender(first) != StreamSender::unknown; }

// A later message of such a connection: an HTTP request that may have a body, or a response,
// probed as a stream's start is; so is an MLLP frame or a bare message (a direction picked up
// mid-stream).
Probe later_probe(std::span<const uint8_t> b, Dir dir) {
  if (!b.empty() && (b[0] == 0x0B || b[0] == 'M' || b[0] == 'F' || b[0] == 'B')) return probe(b, dir);
  static constexpr std::string_view kStarts[] = {"POST ", "PUT ", "HTTP/"};
  for (std::string_view k : kStarts) {
    size_t n = std::min(k.size(), b.size());
    if (n && std::memcmp(b.data(), k.data(), n) == 0) return n < k.size() ? Probe::need_more : probe(b, dir);
  }
  return Probe::no;
}

// A direction picked up mid-stream begins with the tail of a message the capture missed: the
// first message start after it is probed as a stream's start is (later deliveries are watched,
// DissectorInfo::later_midstream).
Probe midstream_probe(std::span<const uint8_t> b, Dir dir) {
  for (size_t at = message_start(b); at < b.size(); at = message_start(b, at + 1))
    if (Probe r = probe(b.subspan(at), dir); r != Probe::no) return r;
  return Probe::no;
}

// Past the probe window, an HTTP head the probe has not seen the end of (a long bearer token or
// cookie before Content-Type) is judged up to kMaxProbedHead, as servers accept; one that begins
// inside the window of a direction picked up mid-stream too. Nothing else is held longer.
size_t probe_extent(std::span<const uint8_t> b, Dir) {
  static constexpr std::string_view kStarts[] = {"POST ", "PUT ", "HTTP/"};
  for (size_t at = 0; at < b.size(); at = message_start(b, at + 1)) {
    std::string_view s(reinterpret_cast<const char*>(b.data()) + at, b.size() - at);
    for (std::string_view k : kStarts)
      if (s.starts_with(k)) return at + kMaxProbedHead;
  }
  return 0;
}

// The HTTP message at the front of a segment, as HL7's reader reads it: a request pipelined
// behind it in the segment is probed in turn.
// A body with a length, or in chunks, that goes on past the segment is measured too: the message
// behind it is looked for where it begins in a later segment. A response whose body runs to the
// close ends what its direction may carry.
size_t later_next(std::span<const uint8_t> b, Dir, LaterCursor& cursor) {
  return http::message_length(b, http::Syntax::lenient, true, &cursor);
}

}  // namespace hl7

const DissectorInfo kHl7Info = {
    .name = "hl7",
    .transport = Transport::tcp,
    .probe = &hl7::probe,
    .midstream_probe = &hl7::midstream_probe,
    .make = &hl7::make,
    .port_hints = hl7::kPorts,
    .sender = &hl7::sender,
    .tls_ports = hl7::kTlsPorts,
    .tls_after_clear = true,
    .carried_by = &hl7::carried_by,
    .later_probe = &hl7::later_probe,
    .later_next = &hl7::later_next,
    .later_midstream = true,
    .probe_extent = &hl7::probe_extent,
};

}  // namespace medmon
