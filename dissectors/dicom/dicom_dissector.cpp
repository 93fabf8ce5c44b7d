#include "dissectors/dicom/dicom_dissector.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "dissectors/dicom/dataset.h"
#include "dissectors/dicom/dimse.h"
#include "dissectors/dicom/names.h"
#include "dissectors/dicom/pdu.h"
#include "dissectors/dicom/phi_tags.h"

namespace medmon {

namespace dicom {
namespace {
// Appends v to the list attribute `key` once; lists stay short (a flow uses few services).
// Command names and UIDs are joined with commas; AE titles, which may hold a comma, with a
// backslash, DICOM's value delimiter, which no AE title holds.
void add_to_list(FlowContext& ctx, std::string_view key, std::string_view v, char sep = ',') {
  if (v.empty()) return;
  const std::string* cur = ctx.facts().attr(key);
  std::string list = cur ? *cur : std::string();
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t e = list.find(sep, pos);
    if (e == std::string::npos) e = list.size();
    if (std::string_view(list).substr(pos, e - pos) == v) return;
    pos = e + 1;
  }
  if (list.size() > 4096) return;
  if (!list.empty()) list.push_back(sep);
  list.append(v);
  ctx.facts().set_attr(key, list);
}


constexpr std::string_view kName = "dicom";
constexpr size_t kMaxListed = 8;  // pseudonyms listed per op (patients, accessions)

// Plausible first PDU of a direction: 1 yes, 0 no, -1 need more bytes.
int plausible_start(std::span<const uint8_t> d) {
  if (d.size() < kPduHeaderSize) return -1;
  switch (d[0]) {
    case kAssociateRq:
    case kAssociateAc: return looks_like_associate(d);
    case kPData: return looks_like_pdata(d);
    case kAssociateRj:
    case kReleaseRq:
    case kReleaseRp:
    case kAbort: return (d[1] == 0 && read_pdu_header(d).length == 4) ? 1 : 0;
    default: return 0;
  }
}

struct Op {
  Dir dir = Dir::to_server;  // direction of the request
  uint16_t msg_id = 0;
  bool msg_id_known = true;  // false: a hole took it; the first unpaired response names it
  uint16_t command = 0;      // request command field (0: a hole took it)
  bool request_seen = false;
  bool final = false;
  bool cancelled = false;
  bool evicted = false;          // written out unanswered: kMaxPendingOps newer requests waited
  bool request_evicted = false;  // a response to such a request: the request is in its own op
  bool dataset = false;      // the request carried a dataset
  bool pixel_data = false;
  // Why part of the request or of a response is missing or was not read (nullptr: all was
  // read); the first reason found is kept. See docs/dicom.md for the names.
  const char* truncated_by = nullptr;
  uint8_t pc_id = 0;
  uint16_t priority = 0;
  bool has_priority = false;
  uint16_t move_orig_id = 0;
  bool has_move_orig_id = false;
  Timestamp start{}, end{};
  uint32_t responses = 0, pending = 0, datasets = 0;
  Command last;              // last response (status, sub-operation counts)
  bool has_status = false;
  std::string sop_class, sop_instance, move_destination, move_originator;
  std::string modality, manufacturer, model, software, station, serial;
  PhiMask phi;
  std::vector<std::string> patient_ids, patient_names, accessions;
};

struct DirState {
  enum Phase : uint8_t { header, pdv_header, pdv_data, resync };
  enum Msg : uint8_t { none, command, dataset_wait, dataset };
  Phase phase = header;
  bool first = true;
  bool skip_until_command = false;  // resynchronised mid-message: wait for the next command
  // The dataset fragments being skipped belong to a message already reported (cut short by a
  // hole, bad framing or a new association): they are no dataset of their own.
  bool rest_of_reported = false;
  bool skipped_counted = false;     // the dataset being skipped was counted in datasets_skipped
  uint32_t pdu_left = 0, pdv_left = 0;
  uint8_t pc_id = 0, mch = 0;
  bool frag_skip = false;   // drop this fragment's bytes
  Msg msg = none;
  std::vector<uint8_t> cmd;
  bool cmd_broken = false;
  // Bytes of the command set lost in holes inside its PDVs, each [begin, end) of `cmd`,
  // zero-filled so the element framing after them keeps its offsets.
  bool cmd_hole = false;
  std::vector<Hole> cmd_holes;
  bool maybe_dataset = false;  // the hole took CommandDataSetType: a dataset may follow
  Command command_set;
  bool have_cmd = false;
  uint8_t msg_pc = 0;
  bool ds_seen = false;
  // Why the message lost bytes or its end (a hole, bad framing, the end of the association, a
  // command before its dataset's last fragment); nullptr while it is whole.
  const char* broken_by = nullptr;
  DatasetWalker walker;
};

class DicomDissector final : public Dissector {
 public:
  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override;
  void on_gap(Dir dir, uint64_t missing, FlowContext& ctx) override;
  void on_end(Dir dir, FlowContext& ctx) override;
  void on_flow_end(FlowContext& ctx) override;

 private:
  enum class State : uint8_t { idle, requested, established, releasing, closed };

  DirState& st(Dir d) { return dirs_[static_cast<int>(d)]; }
  void anomaly(FlowContext& ctx, const char* name, uint64_t offset, std::string_view detail = {});
  void issues(FlowContext& ctx, const Issues& is, uint64_t base);
  void touch(FlowContext& ctx);

  // Where on_data is in the bytes it was handed.
  struct Cursor {
    std::span<const uint8_t> data;
    size_t pos = 0;
    uint64_t base = 0;  // stream offset of data[0]
    std::span<const uint8_t> rest() const { return data.subspan(pos); }
    uint64_t offset() const { return base + pos; }
  };
  // The phases of on_data; nullopt: the loop goes on from c.pos.
  std::optional<Consumed> seek_pdu(DirState& s, Cursor& c);
  std::optional<Consumed> read_pdu(Dir dir, DirState& s, Cursor& c, FlowContext& ctx);
  std::optional<Consumed> open_pdv(Dir dir, DirState& s, Cursor& c, FlowContext& ctx);
  std::optional<Consumed> read_pdv_data(Dir dir, DirState& s, Cursor& c, FlowContext& ctx);
  // The first header of a direction, before any A-ASSOCIATE: does the capture start at the
  // beginning of an association (start), inside one (resync), or is it too early to say?
  enum class FirstPdu : uint8_t { start, resync, need_more };
  FirstPdu check_first_pdu(Dir dir, DirState& s, Cursor& c, FlowContext& ctx);
  void start_pdata(Dir dir, DirState& s, Cursor& c, const PduHeader& h, FlowContext& ctx);
  // The rest of the current PDU cannot be framed: step over it.
  std::optional<Consumed> skip_rest_of_pdu(Dir dir, DirState& s, Cursor& c, FlowContext& ctx);
  // A header that cannot be right: an anomaly, then a search for the next plausible P-DATA.
  void lose_sync(Dir dir, DirState& s, Cursor& c, FlowContext& ctx, const char* name, std::string_view detail = {});
  void handle_pdu(Dir dir, const PduHeader& h, std::span<const uint8_t> pdu, FlowContext& ctx, uint64_t off);
  void begin_fragment(Dir dir, FlowContext& ctx, uint64_t off);
  void end_fragment(Dir dir, FlowContext& ctx, uint64_t off);
  void complete_message(Dir dir, FlowContext& ctx, uint64_t off);
  // The message in progress will get no more bytes, or bytes that cannot be read as its own (a
  // hole, bad framing, the end of the association): a request or response already read still
  // counts, truncated for `why`; the walk stops where the bytes went missing, with no dataset
  // anomaly (the hole is counted, the framing or the end said).
  void cut_message(Dir dir, FlowContext& ctx, const char* why);
  void reset_message(DirState& s);
  Op* find_pending(Dir dir, uint16_t msg_id);
  void merge_dataset(Op& op, const DatasetSummary& ds, FlowContext& ctx);
  void finalize(size_t index, FlowContext& ctx);
  // Makes room for one more op: writes out the oldest, noting a request still unanswered.
  void evict_oldest(FlowContext& ctx);
  static uint32_t op_key(Dir dir, uint16_t msg_id) { return uint32_t(dir) << 16 | msg_id; }
  void write_op(const Op& op, FlowContext& ctx);
  void emit(FlowContext& ctx, std::string_view status);
  // emit's steps, in the order they write the event.
  void write_association(JsonWriter& w, std::string_view status);
  void write_sides(JsonWriter& w) const;
  void write_contexts(JsonWriter& w);
  void write_ending(JsonWriter& w) const;
  void write_ops(JsonWriter& w);
  void write_counts(JsonWriter& w) const;
  void record_phi_facts(FlowContext& ctx) const;
  void end_association(FlowContext& ctx, std::string_view status);
  void maybe_emit(FlowContext& ctx);
  void reset_association();
  size_t find_resync(std::span<const uint8_t> d, bool& undecided) const;
  bool pc_known(uint8_t id) const { return pc_syntax_[id] != 0xFF; }

  std::array<DirState, 2> dirs_;
  bool ended_[2] = {false, false};  // FIN/RST/end of input per direction

  // Association
  State state_ = State::idle;
  bool any_ = false;          // something of this association was seen (an event is due)
  bool start_seen_ = false;
  bool midstream_ = false;
  Timestamp start_{};
  AssociatePdu rq_, ac_;
  bool have_rq_ = false, have_ac_ = false;
  AssociateReject rj_;
  bool rejected_ = false;
  Abort abort_;
  bool aborted_ = false;
  Dir abort_dir_ = Dir::to_server;
  bool release_rq_ = false, release_rp_ = false;
  Dir release_dir_ = Dir::to_server;
  std::array<uint8_t, 256> pc_syntax_;  // accepted PC id -> Syntax, 0xFF unknown
  std::vector<Op> pending_;
  JsonBuffer ops_json_;
  uint32_t ops_ = 0, ops_dropped_ = 0, ops_evicted_ = 0;
  // Direction and Message ID of the requests evicted unanswered, the newest kMaxPendingOps: a
  // late response to one of them says so.
  std::vector<uint32_t> evicted_ids_;
  uint32_t gaps_ = 0, anomalies_ = 0;
  uint32_t pdus_[2] = {0, 0};
  PhiMask phi_;
  bool warned_max_pdu_ = false, warned_pc_ = false;
  // How the association ended (release, abort, reject); empty while open. The event waits for
  // both directions to end: a hole in one direction delays its bytes behind the other's.
  std::string_view end_status_;
  bool dir_closed_[2] = {false, false};  // this direction sent A-RELEASE-RQ/RP or A-ABORT
  // This direction sent only an A-RELEASE-RQ so far: its A-RELEASE-RP may still come, in a
  // release collision (PS3.8 7.2.2: both sides asked, both answer).
  bool dir_release_rq_only_[2] = {false, false};

  uint32_t anomaly_events_ = 0;  // per flow
  std::string scratch_;

 public:
  DicomDissector() { reset_association(); }
};

void DicomDissector::reset_association() {
  state_ = State::idle;
  any_ = start_seen_ = midstream_ = false;
  start_ = {};
  rq_ = AssociatePdu{};
  ac_ = AssociatePdu{};
  have_rq_ = have_ac_ = rejected_ = aborted_ = release_rq_ = release_rp_ = false;
  pc_syntax_.fill(0xFF);
  pending_.clear();
  evicted_ids_.clear();
  ops_json_.clear();
  ops_ = ops_dropped_ = ops_evicted_ = gaps_ = anomalies_ = 0;
  pdus_[0] = pdus_[1] = 0;
  phi_.reset();
  warned_max_pdu_ = warned_pc_ = false;
  end_status_ = {};
  dir_closed_[0] = dir_closed_[1] = false;
  dir_release_rq_only_[0] = dir_release_rq_only_[1] = false;
}

void DicomDissector::anomaly(FlowContext& ctx, const char* name, uint64_t offset, std::string_view detail) {
  ++anomalies_;
  if (anomaly_events_ >= kMaxAnomalyEvents) {
    ++ctx.counters().at("dicom.anomalies_suppressed");
    return;
  }
  ++anomaly_events_;
  ctx.anomaly(kName, name, offset, detail);
}

void DicomDissector::issues(FlowContext& ctx, const Issues& is, uint64_t base) {
  for (uint8_t i = 0; i < is.count; ++i) anomaly(ctx, is.items[i].name, base + is.items[i].offset);
}

void DicomDissector::touch(FlowContext& ctx) {
  if (!any_) { any_ = true; start_ = ctx.now(); }
}

// The PDU state machine: each phase reads what it can from the cursor and either moves on (the
// loop goes round) or stops with what the reassembler must keep, wait for or skip.
Consumed DicomDissector::on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) {
  DirState& s = st(dir);
  Cursor c{data, 0, ctx.stream_offset()};
  while (c.pos < data.size()) {
    std::optional<Consumed> stop;
    switch (s.phase) {
      case DirState::resync: stop = seek_pdu(s, c); break;
      case DirState::header: stop = read_pdu(dir, s, c, ctx); break;
      case DirState::pdv_header: stop = open_pdv(dir, s, c, ctx); break;
      case DirState::pdv_data: stop = read_pdv_data(dir, s, c, ctx); break;
    }
    if (stop) return *stop;
  }
  return {c.pos, 0};
}

std::optional<Consumed> DicomDissector::seek_pdu(DirState& s, Cursor& c) {
  std::span<const uint8_t> rest = c.rest();
  bool undecided = false;
  size_t p = find_resync(rest, undecided);
  if (p == static_cast<size_t>(-1)) {
    // Keep a tail that may hold the start of a header.
    size_t keep = std::min<size_t>(rest.size(), 15);
    c.pos += rest.size() - keep;
    return Consumed{c.pos, keep + 1};
  }
  c.pos += p;
  if (undecided) return Consumed{c.pos, c.data.size() - c.pos + 1};
  s.phase = DirState::header;
  s.skip_until_command = true;
  return std::nullopt;
}

void DicomDissector::lose_sync(Dir dir, DirState& s, Cursor& c, FlowContext& ctx, const char* name,
                               std::string_view detail) {
  anomaly(ctx, name, c.offset(), detail);
  // The bytes up to the next plausible header may belong to the message in progress.
  cut_message(dir, ctx, "bad_framing");
  s.phase = DirState::resync;
  ++c.pos;
}

DicomDissector::FirstPdu DicomDissector::check_first_pdu(Dir dir, DirState& s, Cursor& c, FlowContext& ctx) {
  std::span<const uint8_t> rest = c.rest();
  int r = plausible_start(rest);
  int big = r == 1 ? 0 : looks_like_oversized_associate(rest);
  if ((r < 0 || big < 0) && rest.size() < 80) return FirstPdu::need_more;
  s.first = false;
  if (big == 1) {
    // Not a capture joined mid-association: an association PDU over the cap, which would
    // otherwise hide the association silently.
    lose_sync(dir, s, c, ctx, "bad_pdu_length", pdu_type_name(rest[0]));
    return FirstPdu::resync;
  }
  if (r != 1) {  // the capture starts inside an association
    midstream_ = true;
    s.phase = DirState::resync;
    return FirstPdu::resync;
  }
  // A P-DATA-TF first: the capture joined inside an association, at a PDU boundary. Dataset
  // fragments before the first command belong to a command sent before the capture began.
  if (rest[0] == kPData) s.skip_until_command = true;
  return FirstPdu::start;
}

std::optional<Consumed> DicomDissector::read_pdu(Dir dir, DirState& s, Cursor& c, FlowContext& ctx) {
  std::span<const uint8_t> rest = c.rest();
  if (rest.size() < kPduHeaderSize) return Consumed{c.pos, kPduHeaderSize};
  if (s.first && !start_seen_) {
    switch (check_first_pdu(dir, s, c, ctx)) {
      case FirstPdu::need_more: return Consumed{c.pos, rest.size() + 1};
      case FirstPdu::resync: return std::nullopt;
      case FirstPdu::start: break;
    }
  }
  PduHeader h = read_pdu_header(rest);
  if (h.type < kAssociateRq || h.type > kAbort) {
    lose_sync(dir, s, c, ctx, "unknown_pdu_type", pdu_type_name(h.type));
    return std::nullopt;
  }
  if (h.type == kPData) {
    start_pdata(dir, s, c, h, ctx);
    return std::nullopt;
  }
  // Any other PDU is read whole; its length is checked against what its type can hold.
  bool associate = h.type == kAssociateRq || h.type == kAssociateAc;
  uint32_t max = associate ? kMaxAssociatePdu : 1024;
  uint32_t min = associate ? kAssociateFixedSize : 4;
  if (h.length < min || h.length > max) {
    lose_sync(dir, s, c, ctx, "bad_pdu_length", pdu_type_name(h.type));
    return std::nullopt;
  }
  size_t total = kPduHeaderSize + h.length;
  if (rest.size() < total) return Consumed{c.pos, total};
  handle_pdu(dir, h, rest.first(total), ctx, c.offset());
  c.pos += total;
  return std::nullopt;
}

void DicomDissector::start_pdata(Dir dir, DirState& s, Cursor& c, const PduHeader& h, FlowContext& ctx) {
  if (h.length < kPdvHeaderSize || h.length > kMaxPDataPdu) {
    lose_sync(dir, s, c, ctx, "bad_pdu_length", pdu_type_name(h.type));
    return;
  }
  touch(ctx);
  ++pdus_[static_cast<int>(dir)];
  if (state_ == State::idle && !start_seen_) {
    state_ = State::established;  // joined mid-association
    midstream_ = true;
  }
  // Only checks within one direction's order, plus P-DATA before any AC: a hole delays one
  // direction behind the other, so cross-direction order is not evidence.
  if (dir_closed_[static_cast<int>(dir)] || (start_seen_ && !have_ac_ && gaps_ == 0))
    anomaly(ctx, "unexpected_pdu", c.offset(), "P-DATA-TF");
  // The receiver announced the largest PDU it accepts.
  const AssociatePdu& recv = dir == Dir::to_server ? ac_ : rq_;
  bool have = dir == Dir::to_server ? have_ac_ : have_rq_;
  if (have && recv.has_max_pdu && recv.max_pdu && h.length > recv.max_pdu && !warned_max_pdu_) {
    warned_max_pdu_ = true;
    anomaly(ctx, "pdu_exceeds_max_length", c.offset());
  }
  c.pos += kPduHeaderSize;
  s.pdu_left = h.length;
  s.phase = DirState::pdv_header;
}

std::optional<Consumed> DicomDissector::skip_rest_of_pdu(Dir dir, DirState& s, Cursor& c, FlowContext& ctx) {
  // Those bytes may belong to the message in progress; its next fragments are no anomaly.
  if (s.msg != DirState::none) {
    cut_message(dir, ctx, "bad_framing");
    s.skip_until_command = true;
  }
  uint64_t n = s.pdu_left;
  s.pdu_left = 0;
  s.phase = DirState::header;
  size_t have = c.data.size() - c.pos;
  if (n > have) return Consumed{c.data.size(), 0, n - have};
  c.pos += n;
  return std::nullopt;
}

std::optional<Consumed> DicomDissector::open_pdv(Dir dir, DirState& s, Cursor& c, FlowContext& ctx) {
  if (s.pdu_left == 0) {
    s.phase = DirState::header;
    return std::nullopt;
  }
  if (s.pdu_left < kPdvHeaderSize) {
    anomaly(ctx, "pdv_past_pdu_end", c.offset());
    return skip_rest_of_pdu(dir, s, c, ctx);
  }
  if (c.data.size() - c.pos < kPdvHeaderSize) return Consumed{c.pos, kPdvHeaderSize};
  PdvHeader v = read_pdv_header(c.rest());
  uint64_t off = c.offset();
  c.pos += kPdvHeaderSize;
  s.pdu_left -= kPdvHeaderSize;
  if (v.length < 2) {
    anomaly(ctx, "bad_pdv_length", off);
    return skip_rest_of_pdu(dir, s, c, ctx);  // the rest of this PDU cannot be framed
  }
  uint32_t dlen = v.length - 2;
  if (dlen > s.pdu_left) {
    anomaly(ctx, "pdv_past_pdu_end", off);
    dlen = s.pdu_left;
  }
  s.pdv_left = dlen;
  s.pdu_left -= dlen;
  s.pc_id = v.pc_id;
  s.mch = v.mch;
  begin_fragment(dir, ctx, off);
  s.phase = DirState::pdv_data;
  if (s.pdv_left == 0) {
    end_fragment(dir, ctx, off);
    s.phase = DirState::pdv_header;
  }
  return std::nullopt;
}

std::optional<Consumed> DicomDissector::read_pdv_data(Dir dir, DirState& s, Cursor& c, FlowContext& ctx) {
  std::span<const uint8_t> rest = c.rest();
  size_t n = static_cast<size_t>(std::min<uint64_t>(rest.size(), s.pdv_left));
  bool is_cmd = s.mch & 1;
  if (s.frag_skip || (!is_cmd && (!s.walker.active() || s.walker.done()))) {
    if (s.pdv_left > rest.size()) {  // step over the rest of the fragment unread
      uint64_t skip = s.pdv_left - rest.size();
      s.pdv_left = 0;
      end_fragment(dir, ctx, c.base + c.data.size() + skip);
      s.phase = DirState::pdv_header;
      return Consumed{c.data.size(), 0, skip};
    }
  } else if (is_cmd) {
    size_t room = kMaxCommandSet - std::min(kMaxCommandSet, s.cmd.size());
    if (n > room && !s.cmd_broken) {
      s.cmd_broken = true;
      anomaly(ctx, "command_too_long", c.offset());
    }
    s.cmd.insert(s.cmd.end(), rest.begin(), rest.begin() + static_cast<ptrdiff_t>(std::min(n, room)));
  } else {
    s.walker.feed(rest.first(n));
  }
  c.pos += n;
  s.pdv_left -= static_cast<uint32_t>(n);
  if (s.pdv_left == 0) {
    end_fragment(dir, ctx, c.offset());
    s.phase = DirState::pdv_header;
  }
  return std::nullopt;
}

// A-RELEASE-RQ/RP or A-ABORT in its exact fixed shape (PS3.8 9.3.6-9.3.8): length 4, reserved
// bytes 0, an abort source of 0..2 and a reason of 0..6. 1 yes, 0 no, -1 need more bytes.
int closing_pdu_at(std::span<const uint8_t> d) {
  // type, reserved, length (4), reserved (2), then release: reserved (2), abort: source, reason
  static constexpr uint8_t kShape[8] = {0, 0, 0, 0, 0, 4, 0, 0};
  size_t n = std::min<size_t>(d.size(), 10);
  if (n < 1 || d[0] < kReleaseRq || d[0] > kAbort) return 0;
  for (size_t i = 1; i < std::min<size_t>(n, 8); ++i)
    if (d[i] != kShape[i]) return 0;
  if (n < 10) return -1;
  if (d[0] == kAbort) return d[8] <= 2 && d[9] <= 6 ? 1 : 0;
  return d[8] == 0 && d[9] == 0 ? 1 : 0;
}

size_t DicomDissector::find_resync(std::span<const uint8_t> d, bool& undecided) const {
  undecided = false;
  for (size_t p = 0; p < d.size(); ++p) {
    if (d[p] >= kReleaseRq && d[p] <= kAbort) {
      // After a hole the association may end at once: without these, its release or abort
      // would be lost. The PDU must end the bytes received or be followed by another PDU.
      int r = closing_pdu_at(d.subspan(p));
      if (r < 0) { undecided = true; return p; }
      if (r == 0) continue;
      std::span<const uint8_t> next = d.subspan(p + 10);
      if (next.empty()) return p;
      int closing = closing_pdu_at(next), pdata = looks_like_pdata(next);
      if (closing == 1 || pdata == 1) return p;
      if (closing < 0 || pdata < 0) { undecided = true; return p; }
      continue;
    }
    if (d[p] != kPData) continue;
    int r = looks_like_pdata(d.subspan(p));
    if (r < 0) { undecided = true; return p; }
    if (r == 0) continue;
    uint8_t pc = d[p + 10];
    // With the negotiated contexts known, a header naming an unknown context is pixel data.
    if (have_ac_ && !pc_known(pc)) continue;
    return p;
  }
  return static_cast<size_t>(-1);
}

void DicomDissector::reset_message(DirState& s) {
  s.msg = DirState::none;
  s.cmd.clear();
  s.cmd_broken = false;
  s.cmd_hole = false;
  s.cmd_holes.clear();
  s.maybe_dataset = false;
  s.command_set = Command{};
  s.have_cmd = false;
  s.ds_seen = false;
  s.broken_by = nullptr;
  if (s.walker.active()) s.walker.finish();
}

void DicomDissector::cut_message(Dir dir, FlowContext& ctx, const char* why) {
  DirState& s = st(dir);
  if (s.msg == DirState::dataset_wait || s.msg == DirState::dataset) {
    s.rest_of_reported = true;
    s.walker.cut(why);
    if (!s.broken_by) s.broken_by = why;
    complete_message(dir, ctx, 0);
  }
  reset_message(s);
}

void DicomDissector::begin_fragment(Dir dir, FlowContext& ctx, uint64_t off) {
  DirState& s = st(dir);
  s.frag_skip = false;
  bool is_cmd = s.mch & 1;
  if (have_ac_ && !pc_known(s.pc_id) && !warned_pc_) {
    warned_pc_ = true;
    anomaly(ctx, "unknown_presentation_context", off);
  }
  if (is_cmd) {
    s.skip_until_command = s.rest_of_reported = s.skipped_counted = false;
    if (s.msg == DirState::dataset_wait || s.msg == DirState::dataset) {
      if (!(s.msg == DirState::dataset_wait && s.maybe_dataset)) {
        anomaly(ctx, "missing_dataset", off);
        s.walker.cut("interrupted");  // the anomaly says it: no dataset_truncated besides
        if (!s.broken_by) s.broken_by = "interrupted";
      }
      complete_message(dir, ctx, off);
    }
    if (s.msg == DirState::none) {
      s.msg = DirState::command;
      s.msg_pc = s.pc_id;
    }
    return;
  }
  // Dataset fragment.
  if (s.msg == DirState::dataset_wait) {
    s.msg = DirState::dataset;
    s.ds_seen = true;
    Syntax syn = pc_known(s.pc_id) ? static_cast<Syntax>(pc_syntax_[s.pc_id]) : Syntax::detect;
    s.walker.start(syn);
    return;
  }
  if (s.msg == DirState::dataset) return;
  // A dataset whose command was not read (dropped as too long, lost in a hole, sent before the
  // capture began, or never sent) is stepped over unread: counted once, and flagged once when no
  // command was ever sent for it, at its first fragment (not once per fragment).
  if (!s.rest_of_reported && !s.skipped_counted) {
    s.skipped_counted = true;
    ++ctx.counters().at("dicom.datasets_skipped");
    if (!s.skip_until_command) anomaly(ctx, "dataset_without_command", off);
  }
  s.frag_skip = true;
}

void DicomDissector::end_fragment(Dir dir, FlowContext& ctx, uint64_t off) {
  DirState& s = st(dir);
  if (s.frag_skip) {
    if ((s.mch & 3) == 2) s.rest_of_reported = s.skipped_counted = false;  // the skipped dataset's last fragment
    return;
  }
  if (!(s.mch & 2)) return;  // more fragments follow
  if (s.mch & 1) {
    if (s.msg != DirState::command) return;
    Issues is;
    bool ok = false;
    if (s.cmd_broken) {
    } else if (s.cmd_hole) {
      // What survived the holes; no anomaly, the holes are counted. A message whose command was
      // hit is reported truncated, and its dataset is still walked.
      ok = parse_command_around_holes(s.cmd, s.cmd_holes, s.command_set);
      s.maybe_dataset = ok && !(s.command_set.has & Command::kDatasetType);
    } else {
      ok = parse_command(s.cmd, s.command_set, is);
      issues(ctx, is, off);
    }
    if (!ok) {
      // Nothing of the command survived its hole: its dataset is no anomaly either. Nor is the
      // dataset of a command dropped as too long: command_too_long said it; it is only counted.
      if (s.cmd_hole) s.skip_until_command = true;
      if (s.cmd_broken) s.skip_until_command = true;
      reset_message(s);
      return;
    }
    s.have_cmd = true;
    if (s.command_set.has_dataset() || s.maybe_dataset) {
      s.msg = DirState::dataset_wait;
      return;
    }
    complete_message(dir, ctx, off);
    return;
  }
  if (s.msg == DirState::dataset) {
    s.walker.finish();
    complete_message(dir, ctx, off);
  }
}

Op* DicomDissector::find_pending(Dir dir, uint16_t msg_id) {
  for (auto& op : pending_)
    if (op.dir == dir && op.msg_id_known && op.msg_id == msg_id) return &op;
  return nullptr;
}

// A PN value is up to three component groups (alphabetic=ideographic=phonetic); an HL7 XPN
// carries them as repetitions of PID-5, of which HL7 pseudonymises the first. So a name is
// pseudonymised by its alphabetic group (or the first group with a value when that one is
// empty), and "DOE^JANE", "DOE^JANE=" and "Yamada^Tarou=<kanji>" give the HL7 pseudonym.
void keep_first_name_group(std::string& name) {
  size_t start = 0;
  for (;;) {
    size_t eq = name.find('=', start);
    std::string_view group = std::string_view(name).substr(start, eq == std::string::npos ? std::string::npos : eq - start);
    if (!Pseudonymiser::normalise(group).empty() || eq == std::string::npos) {
      name = std::string(group);
      return;
    }
    start = eq + 1;
  }
}

void add_unique(std::vector<std::string>& list, std::string v) {
  if (list.size() >= kMaxListed) return;
  for (auto& x : list) if (x == v) return;
  list.push_back(std::move(v));
}

// The command's Affected/Requested SOP Instance UID: listed in phi_tier2 by its keyword, as the
// dataset's SOPInstanceUID is (the value itself only ever becomes the `sop_instance` pseudonym).
void mark_command_phi(Op& op, const Command& c) {
  static const int affected = phi_index(0x00001000), requested = phi_index(0x00001001);
  if (!c.affected_sop_instance.empty()) op.phi.set(static_cast<size_t>(affected));
  if (!c.requested_sop_instance.empty()) op.phi.set(static_cast<size_t>(requested));
}

void DicomDissector::merge_dataset(Op& op, const DatasetSummary& ds, FlowContext& ctx) {
  ++op.datasets;
  op.phi |= ds.phi_mask;
  op.pixel_data |= ds.pixel_data;
  if (ds.truncated && !op.truncated_by) op.truncated_by = ds.truncated_by;
  auto text = [&](std::string& dst, const std::string& raw) {
    if (dst.empty() && !raw.empty()) decode_text(raw, ds.charset, dst);
  };
  text(op.modality, ds.modality);
  text(op.manufacturer, ds.manufacturer);
  text(op.model, ds.model);
  text(op.software, ds.software);
  if (op.sop_class.empty() && !ds.sop_class.empty()) op.sop_class = ds.sop_class;
  // Device identifiers (Station Name and Device Serial Number are PHI, PS3.15 E.1-1): pseudonyms.
  auto identifier = [&](std::string& dst, const std::string& raw) {
    if (!dst.empty() || raw.empty()) return;
    decode_text(raw, ds.charset, scratch_);
    dst = ctx.pseudonym(scratch_);
  };
  identifier(op.station, ds.station);
  identifier(op.serial, ds.serial);
  auto phi_value = [&](std::vector<std::string>& list, const std::string& raw, bool person_name) {
    // The rule of the PHI mask: a wildcard query key (`*`) names no patient.
    if (!has_value(raw) || list.size() >= kMaxListed) return;
    decode_text(raw, ds.charset, scratch_);
    if (person_name) keep_first_name_group(scratch_);
    if (Pseudonymiser::normalise(scratch_).empty()) return;
    add_unique(list, ctx.pseudonym(scratch_));
  };
  phi_value(op.patient_ids, ds.patient_id, false);
  phi_value(op.patient_names, ds.patient_name, true);
  phi_value(op.accessions, ds.accession, false);
}

void DicomDissector::complete_message(Dir dir, FlowContext& ctx, uint64_t off) {
  DirState& s = st(dir);
  if (!s.have_cmd) { reset_message(s); return; }
  Command& c = s.command_set;
  const DatasetSummary* ds = nullptr;
  if (s.ds_seen) {
    if (s.walker.active()) s.walker.finish();
    if (s.walker.error()) anomaly(ctx, s.walker.error(), off);
    ds = &s.walker.summary();
  }
  // What the message lost besides what its dataset's walk says (merge_dataset takes that first).
  const char* lost = s.broken_by;
  if (!lost && s.cmd_hole) lost = "gap";
  if (!lost && c.has_dataset() && !ds) lost = "interrupted";
  if (!is_response(c.field)) {
    if ((c.field & 0x7FFF) == 0x0FFF) {  // C-CANCEL names the request it cancels
      if (Op* op = find_pending(dir, c.responded_id)) op->cancelled = true;
      reset_message(s);
      return;
    }
    // Its responses may have come first (a hole delayed this direction): complete that op.
    bool id_known = c.has & Command::kMessageId;
    Op* seen = id_known ? find_pending(dir, c.message_id) : nullptr;
    if (seen && (seen->request_seen || seen->request_evicted)) seen = nullptr;
    if (!id_known) {  // a hole took its Message ID: a response on its context that waits for its request is its own
      for (auto& p : pending_)
        if (p.dir == dir && !p.request_seen && !p.request_evicted && p.pc_id == s.msg_pc) { seen = &p; break; }
    }
    if (!seen && pending_.size() >= kMaxPendingOps) evict_oldest(ctx);
    if (!seen && id_known && !evicted_ids_.empty()) {  // the Message ID is in use again
      auto it = std::find(evicted_ids_.begin(), evicted_ids_.end(), op_key(dir, c.message_id));
      if (it != evicted_ids_.end()) evicted_ids_.erase(it);
    }
    Op& op = seen ? *seen : pending_.emplace_back();
    op.dir = dir;
    if (id_known || !seen) {
      op.msg_id = c.message_id;
      op.msg_id_known = id_known;
    }
    if ((c.has & Command::kField) || !seen) op.command = c.field;
    op.request_seen = true;
    op.pc_id = s.msg_pc;
    if (!seen) op.start = ctx.now();
    if (!c.sop_class().empty()) op.sop_class = c.sop_class();
    if (!c.sop_instance().empty()) op.sop_instance = c.sop_instance();
    mark_command_phi(op, c);
    op.move_destination = c.move_destination;
    op.move_originator = c.move_originator_ae;
    op.has_priority = c.has & Command::kPriority;
    op.priority = c.priority;
    op.has_move_orig_id = c.has & Command::kMoveOrigId;
    op.move_orig_id = c.move_originator_id;
    op.dataset = c.has_dataset() || ds;
    // Every destination the association's C-MOVEs name, not only the last one's.
    add_to_list(ctx, "dicom.move_destination", op.move_destination, '\\');
    // For the policy: which DIMSE services and SOP classes this flow used (bounded lists).
    add_to_list(ctx, "dicom.commands", command_name(op.command));
    if (!op.sop_class.empty()) add_to_list(ctx, "dicom.sop_classes", op.sop_class);
    if (ds) merge_dataset(op, *ds, ctx);
    if (!op.truncated_by) op.truncated_by = lost;
    if (seen && op.final) finalize(static_cast<size_t>(&op - pending_.data()), ctx);
    reset_message(s);
    return;
  }
  Dir rq_dir = reverse(dir);
  Op* op = find_pending(rq_dir, c.responded_id);
  if (op && op->final) op = nullptr;
  if (!op) {
    // A request whose Message ID a hole took, on the same presentation context, is this one's.
    for (auto& p : pending_)
      if (p.dir == rq_dir && !p.msg_id_known && !p.final && p.pc_id == s.msg_pc) {
        op = &p;
        op->msg_id = c.responded_id;
        op->msg_id_known = true;
        break;
      }
  }
  if (op && op->command == 0) op->command = c.field & 0x7FFF;  // a hole took the request's
  if (!op) {  // the request was before the capture (or lost), or was evicted unanswered
    bool evicted = false;
    if (!evicted_ids_.empty()) {
      auto it = std::find(evicted_ids_.begin(), evicted_ids_.end(), op_key(rq_dir, c.responded_id));
      if (it != evicted_ids_.end()) { evicted_ids_.erase(it); evicted = true; }
    }
    // The final response to an evicted request is written at once: it evicts no other.
    bool at_once = evicted && !((c.has & Command::kStatus) && status_class(c.status) == StatusClass::pending);
    if (pending_.size() >= kMaxPendingOps && !at_once) evict_oldest(ctx);
    op = &pending_.emplace_back();
    op->request_evicted = evicted;
    op->dir = rq_dir;
    op->msg_id = c.responded_id;
    op->command = c.field & 0x7FFF;
    op->pc_id = s.msg_pc;
    op->start = ctx.now();
    op->sop_class = c.sop_class();
    op->sop_instance = c.sop_instance();
  }
  ++op->responses;
  op->end = ctx.now();
  op->last = c;
  op->has_status = c.has & Command::kStatus;
  if (op->sop_class.empty()) op->sop_class = c.sop_class();
  // An N-CREATE-RQ may leave the instance to the SCP, whose response names it.
  if (op->sop_instance.empty()) op->sop_instance = c.sop_instance();
  mark_command_phi(*op, c);
  if (ds) merge_dataset(*op, *ds, ctx);
  if (!op->truncated_by) op->truncated_by = lost;
  StatusClass sc = status_class(c.status);
  if (op->has_status && sc == StatusClass::pending) {
    ++op->pending;
  } else {
    op->final = true;
    // Without its request, wait: the request may still come from behind a hole.
    if (op->request_seen || op->request_evicted) finalize(static_cast<size_t>(op - pending_.data()), ctx);
  }
  reset_message(s);
}

void DicomDissector::evict_oldest(FlowContext& ctx) {
  Op& op = pending_.front();
  if (!op.final) {
    op.evicted = true;
    ++ops_evicted_;
    if (op.request_seen && op.msg_id_known) {
      if (evicted_ids_.size() >= kMaxPendingOps) evicted_ids_.erase(evicted_ids_.begin());
      evicted_ids_.push_back(op_key(op.dir, op.msg_id));
    }
  }
  finalize(0, ctx);
}

void DicomDissector::finalize(size_t index, FlowContext& ctx) {
  if (index >= pending_.size()) return;
  Op& op = pending_[index];
  phi_ |= op.phi;
  if (ops_ < kMaxOpsPerEvent) write_op(op, ctx);
  else ++ops_dropped_;
  ++ops_;
  pending_.erase(pending_.begin() + static_cast<ptrdiff_t>(index));
}

void write_phi(JsonWriter& w, const PhiMask& mask, uint8_t tier, std::string_view key) {
  if (mask.none()) return;
  auto tags = phi_tags();
  bool open = false;
  for (size_t i = 0; i < tags.size(); ++i) {
    if (!mask.test(i) || tags[i].tier != tier) continue;
    if (!open) { w.array(key); open = true; }
    w.value(tags[i].keyword);
  }
  if (open) w.end_array();
}

void write_list(JsonWriter& w, std::string_view key, const std::vector<std::string>& list) {
  if (list.empty()) return;
  w.array(key);
  for (auto& v : list) w.value(v);
  w.end_array();
}

void append_uint(std::string& o, uint64_t v) {
  char buf[24];
  char* p = buf + sizeof buf;
  do { *--p = static_cast<char>('0' + v % 10); v /= 10; } while (v);
  o.append(p, static_cast<size_t>(buf + sizeof buf - p));
}

// A JSON string; plain UID/keyword text is copied as is.
void append_str(std::string& o, std::string_view s) {
  for (char c : s) {
    bool plain = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == '_' || c == '-';
    if (!plain) { JsonWriter::append_escaped(o, s); return; }
  }
  o.push_back('"');
  o.append(s);
  o.push_back('"');
}

void hex16(std::string& out, uint16_t v) {
  static constexpr char hex[] = "0123456789ABCDEF";
  out.assign("0x");
  for (int sh = 12; sh >= 0; sh -= 4) out.push_back(hex[(v >> sh) & 15]);
}

void DicomDissector::write_op(const Op& op, FlowContext& ctx) {
  if (ops_json_.empty()) ops_json_.push_back('[');
  else ops_json_.push_back(',');
  JsonWriter w(ops_json_);
  w.begin_object();
  w.field("msg_id", op.msg_id);
  std::string_view cname = command_name(op.command);
  if (cname.empty()) { hex16(scratch_, op.command); w.field("command", scratch_); }
  else w.field("command", cname);
  w.field("dir", dir_name(op.dir));
  w.field("request_seen", op.request_seen);
  if (op.request_evicted) w.field("request_evicted", true);
  if (op.pc_id) w.field("pc_id", op.pc_id);
  if (!op.sop_class.empty()) {
    w.field("sop_class", op.sop_class);
    std::string_view n = uid_name(op.sop_class);
    if (!n.empty()) w.field("sop_class_name", n);
  }
  if (!op.sop_instance.empty()) w.field("sop_instance", ctx.pseudonym(op.sop_instance));
  if (op.has_priority) w.field("priority", priority_name(op.priority));
  if (!op.move_destination.empty()) w.field("move_destination", op.move_destination);
  if (!op.move_originator.empty()) {
    w.field("move_originator", op.move_originator);
    if (op.has_move_orig_id) w.field("move_originator_msg_id", op.move_orig_id);
  }
  w.field("dataset", op.dataset);
  if (!op.datasets) {  // PHI of the command set only
    write_phi(w, op.phi, 1, "phi");
    write_phi(w, op.phi, 2, "phi_tier2");
  } else {
    w.field("datasets", op.datasets);
    if (!op.modality.empty()) w.field("modality", op.modality);
    if (!op.manufacturer.empty()) w.field("manufacturer", op.manufacturer);
    if (!op.model.empty()) w.field("model", op.model);
    if (!op.software.empty()) w.field("software_versions", op.software);
    if (!op.station.empty()) w.field("station_name", op.station);
    if (!op.serial.empty()) w.field("device_serial", op.serial);
    write_list(w, "patient_ids", op.patient_ids);
    write_list(w, "patient_names", op.patient_names);
    write_list(w, "accession_numbers", op.accessions);
    write_phi(w, op.phi, 1, "phi");
    write_phi(w, op.phi, 2, "phi_tier2");
    w.field("pixel_data", op.pixel_data);
  }
  if (op.truncated_by) {
    w.field("truncated", true);
    w.field("truncated_reason", op.truncated_by);
  }
  w.field("responses", op.responses);
  if (op.pending) w.field("pending", op.pending);
  if (op.has_status) {
    uint16_t st = op.last.status;
    w.field("status", st);
    hex16(scratch_, st);
    w.field("status_hex", scratch_);
    w.field("status_class", status_class_name(status_class(st)));
    std::string_view sn = status_name(st, op.command);
    if (!sn.empty()) w.field("status_name", sn);
  }
  constexpr uint32_t subs = Command::kRemaining | Command::kCompleted | Command::kFailed | Command::kWarning;
  if (op.last.has & subs) {
    w.object("sub_ops");
    if (op.last.has & Command::kRemaining) w.field("remaining", op.last.remaining);
    if (op.last.has & Command::kCompleted) w.field("completed", op.last.completed);
    if (op.last.has & Command::kFailed) w.field("failed", op.last.failed);
    if (op.last.has & Command::kWarning) w.field("warning", op.last.warning);
    w.end_object();
  }
  if (op.cancelled) w.field("cancelled", true);
  if (op.evicted) w.field("evicted", true);
  w.field("final", op.final);
  w.end_object();
}

void write_side(JsonWriter& w, const AssociatePdu& a) {
  if (a.has_max_pdu) w.field("max_pdu", a.max_pdu);
  if (!a.impl_class_uid.empty()) w.field("impl_class_uid", a.impl_class_uid);
  if (!a.impl_version.empty()) w.field("impl_version", a.impl_version);
  if (a.has_async) {
    w.object("async_window");
    w.field("invoked", a.async_invoked);
    w.field("performed", a.async_performed);
    w.end_object();
  }
  if (!a.roles.empty()) {
    w.array("roles");
    for (auto& r : a.roles) {
      w.begin_object();
      w.field("sop_class", r.sop_class);
      w.field("scu", r.scu != 0);
      w.field("scp", r.scp != 0);
      w.end_object();
    }
    w.end_array();
  }
  if (!a.ext_neg.empty()) {
    w.array("extended_negotiation");
    for (auto& e : a.ext_neg) {
      w.begin_object();
      w.field("sop_class", e.sop_class);
      w.field("length", e.info_length);
      w.end_object();
    }
    w.end_array();
  }
  if (a.common_ext_neg) w.field("common_extended_negotiation", static_cast<uint64_t>(a.common_ext_neg));
}

// The association's one `dicom` event, in the order its fields are written; then its PHI facts
// and a fresh association. Ops still waiting for a response go in as they are.
void DicomDissector::emit(FlowContext& ctx, std::string_view status) {
  if (!any_) return;
  while (!pending_.empty()) finalize(0, ctx);
  JsonWriter& w = ctx.begin_event("dicom");
  w.object("dicom");
  write_association(w, status);
  write_sides(w);
  write_contexts(w);
  write_ending(w);
  write_ops(w);
  write_counts(w);
  w.end_object();
  ctx.end_event();
  ++ctx.counters().at("dicom.associations");
  record_phi_facts(ctx);
  reset_association();
}

// Status, start, and who the association is between (from the RQ, else the AC of a midstream capture).
void DicomDissector::write_association(JsonWriter& w, std::string_view status) {
  w.field("status", status);
  w.field("start_seen", start_seen_);
  scratch_.clear();
  append_rfc3339(scratch_, start_);
  w.field("start", scratch_);
  const AssociatePdu* names = have_rq_ ? &rq_ : have_ac_ ? &ac_ : nullptr;
  if (!names) return;
  w.field("calling_ae", names->calling_ae);
  w.field("called_ae", names->called_ae);
  if (!names->app_context.empty()) w.field("app_context", names->app_context);
  w.field("protocol_version", names->version);
}

// A user identity that carries a credential: a passcode (type 2), or a Kerberos ticket, SAML
// assertion or JWT (types 3-5, in the primary field). Each is as good as a password to whoever
// reads a cleartext association.
bool credential_in_clear(const UserIdentity& u) { return u.credential_sent; }

// The `rq` and `ac` objects: what each side negotiated besides presentation contexts.
void DicomDissector::write_sides(JsonWriter& w) const {
  if (have_rq_) {
    w.object("rq");
    write_side(w, rq_);
    if (rq_.user_identity.present) {
      const UserIdentity& u = rq_.user_identity;
      w.object("user_identity");
      w.field("type", u.type);
      w.field("type_name", user_identity_type_name(u.type));
      w.field("positive_response_requested", u.positive_response_requested);
      w.field("password_in_clear", u.passcode_sent);
      w.field("credential_in_clear", credential_in_clear(u));
      w.end_object();
    }
    w.end_object();
  }
  if (have_ac_) {
    w.object("ac");
    write_side(w, ac_);
    if (ac_.user_identity_response) w.field("user_identity_response", true);
    w.end_object();
  }
}

// The `contexts` array: each context as proposed (RQ, else AC) with the AC's answer to it.
void DicomDissector::write_contexts(JsonWriter& w) {
  if (!have_rq_ && !have_ac_) return;
  // Associations propose up to 128 contexts: written straight into one buffer (UIDs and
  // DCMTK keywords need no escaping; anything else goes through the escaper).
  w.array("contexts");
  const AssociatePdu& src = have_rq_ ? rq_ : ac_;
  for (const auto& pc : src.contexts) {
    std::string& o = scratch_;
    o.assign("{\"id\":");
    append_uint(o, pc.id);
    if (!pc.abstract_syntax.empty()) {
      std::string_view as = src.str(pc.abstract_syntax);
      o.append(",\"abstract_syntax\":");
      append_str(o, as);
      std::string_view n = uid_name(as);
      if (!n.empty()) { o.append(",\"name\":"); append_str(o, n); }
    }
    if (have_rq_ && pc.ts_count) {
      o.append(",\"proposed_ts\":[");
      for (size_t i = 0; i < pc.ts_count; ++i) {
        if (i) o.push_back(',');
        append_str(o, rq_.proposed(pc, i));
      }
      o.push_back(']');
    }
    if (have_ac_) {
      const PresentationContext* acp = nullptr;
      if (have_rq_) {
        for (const auto& a : ac_.contexts) if (a.id == pc.id) { acp = &a; break; }
      } else {
        acp = &pc;
      }
      if (acp && acp->result != 0xFF) {
        o.append(",\"result\":");
        append_uint(o, acp->result);
        o.append(",\"result_name\":");
        append_str(o, pc_result_name(acp->result));
        if (acp->result == 0 && !acp->accepted_ts.empty()) {
          std::string_view ts = ac_.str(acp->accepted_ts);
          o.append(",\"ts\":");
          append_str(o, ts);
          std::string_view n = uid_name(ts);
          if (!n.empty()) { o.append(",\"ts_name\":"); append_str(o, n); }
        }
      }
    }
    o.push_back('}');
    w.raw(o);
  }
  w.end_array();
}

// The `reject`, `abort` and `release` objects: how the association ended (none while it is open).
void DicomDissector::write_ending(JsonWriter& w) const {
  if (rejected_) {
    w.object("reject");
    w.field("result", rj_.result);
    w.field("result_name", reject_result_name(rj_.result));
    w.field("source", rj_.source);
    w.field("source_name", reject_source_name(rj_.source));
    w.field("reason", rj_.reason);
    w.field("reason_name", reject_reason_name(rj_.source, rj_.reason));
    w.end_object();
  }
  if (aborted_) {
    w.object("abort");
    w.field("from", abort_dir_ == Dir::to_server ? "client" : "server");
    w.field("source", abort_.source);
    w.field("source_name", abort_source_name(abort_.source));
    w.field("reason", abort_.reason);
    w.field("reason_name", abort_reason_name(abort_.reason));
    w.end_object();
  }
  if (release_rq_) {
    w.object("release");
    w.field("requested_by", release_dir_ == Dir::to_server ? "client" : "server");
    w.field("completed", release_rp_);
    w.end_object();
  }
}

// The `ops` array write_op built, its totals, and the PHI of all ops.
void DicomDissector::write_ops(JsonWriter& w) {
  w.key("ops");
  if (ops_json_.empty()) {
    w.raw("[]");
  } else {
    // write_op keeps the array open; it is closed for the event only.
    ops_json_.push_back(']');
    w.raw(ops_json_);
    ops_json_.pop_back();
  }
  w.field("ops_total", ops_);
  if (ops_dropped_) w.field("ops_dropped", ops_dropped_);
  if (ops_evicted_) w.field("ops_evicted", ops_evicted_);
  write_phi(w, phi_, 1, "phi");
  write_phi(w, phi_, 2, "phi_tier2");
}

// PDUs per direction, then gaps and anomalies when there were any.
void DicomDissector::write_counts(JsonWriter& w) const {
  w.object("pdus");
  w.field("to_server", pdus_[0]);
  w.field("to_client", pdus_[1]);
  w.end_object();
  if (gaps_) w.field("gaps", gaps_);
  if (anomalies_) w.field("anomalies", anomalies_);
}

// Tier 1 PHI seen in clear on this flow, as flow facts for the policy.
void DicomDissector::record_phi_facts(FlowContext& ctx) const {
  auto tags = phi_tags();
  for (size_t i = 0; i < tags.size(); ++i)
    if (phi_.test(i) && tags[i].tier == 1) ctx.facts().add_phi(tags[i].keyword);
}

void DicomDissector::handle_pdu(Dir dir, const PduHeader& h, std::span<const uint8_t> pdu, FlowContext& ctx,
                                uint64_t off) {
  if (h.type == kAssociateRq) {
    if (dir != Dir::to_server || (have_rq_ && end_status_.empty()))
      anomaly(ctx, "unexpected_pdu", off, "A-ASSOCIATE-RQ");
    // A new association replaces the old one, whose event goes out first (without this PDU).
    // A message still open in either direction was cut short by it; the rest of the server's
    // belongs to the old association, so its fragments are skipped until the next command.
    if (have_rq_ || have_ac_ || state_ == State::established) {
      for (Dir d : {Dir::to_server, Dir::to_client}) {
        if (d != dir && st(d).msg != DirState::none) st(d).skip_until_command = true;
        cut_message(d, ctx, "ended");
      }
      emit(ctx, end_status_.empty() ? std::string_view("incomplete") : end_status_);
    }
  }
  touch(ctx);
  ++pdus_[static_cast<int>(dir)];
  Issues is;
  switch (h.type) {
    case kAssociateRq: {
      AssociatePdu a;
      bool ok = parse_associate(pdu, a, is);
      issues(ctx, is, off);
      if (!ok) return;
      rq_ = std::move(a);
      have_rq_ = true;
      start_seen_ = true;
      start_ = ctx.now();
      state_ = State::requested;
      ctx.facts().set_attr("dicom.calling_ae", rq_.calling_ae);
      ctx.facts().set_attr("dicom.called_ae", rq_.called_ae);
      // The requestor's implementation, whether or not the association is accepted.
      ctx.facts().set_attr("dicom.impl_class_uid", rq_.impl_class_uid);
      ctx.facts().set_attr("dicom.impl_version_name", rq_.impl_version);
      if (rq_.user_identity.present) {
        ctx.facts().set_attr("dicom.user_identity", user_identity_type_name(rq_.user_identity.type));
        if (rq_.user_identity.passcode_sent) ctx.facts().set_attr("dicom.password_in_clear", "true");
        if (credential_in_clear(rq_.user_identity)) ctx.facts().set_attr("dicom.credential_in_clear", "true");
      }
      return;
    }
    case kAssociateAc: {
      if (dir != Dir::to_client || have_ac_ || rejected_)
        anomaly(ctx, "unexpected_pdu", off, "A-ASSOCIATE-AC");
      AssociatePdu a;
      bool ok = parse_associate(pdu, a, is);
      issues(ctx, is, off);
      if (!ok) return;
      ac_ = std::move(a);
      have_ac_ = true;
      if (!have_rq_) {
        midstream_ = true;
        ctx.facts().set_attr("dicom.calling_ae", ac_.calling_ae);
        ctx.facts().set_attr("dicom.called_ae", ac_.called_ae);
      }
      if (state_ != State::closed) state_ = State::established;
      ctx.facts().set_attr("dicom.result", "accepted");
      ctx.facts().set_attr("dicom.acceptor_impl_class_uid", ac_.impl_class_uid);
      ctx.facts().set_attr("dicom.acceptor_impl_version_name", ac_.impl_version);
      for (const auto& pc : ac_.contexts)
        if (pc.result == 0) pc_syntax_[pc.id] = static_cast<uint8_t>(syntax_of(ac_.str(pc.accepted_ts)));
      return;
    }
    case kAssociateRj: {
      if (dir != Dir::to_client || have_ac_) anomaly(ctx, "unexpected_pdu", off, "A-ASSOCIATE-RJ");
      parse_reject(pdu, rj_, is);
      issues(ctx, is, off);
      rejected_ = true;
      ctx.facts().set_attr("dicom.result", "rejected");
      ctx.facts().set_attr("dicom.reject_reason", reject_reason_name(rj_.source, rj_.reason));
      dir_closed_[static_cast<int>(dir)] = true;
      end_association(ctx, "rejected");
      return;
    }
    case kReleaseRq: {
      if (dir_closed_[static_cast<int>(dir)] || (start_seen_ && !have_ac_ && gaps_ == 0))
        anomaly(ctx, "unexpected_pdu", off, "A-RELEASE-RQ");
      if (h.length != 4) anomaly(ctx, "bad_pdu_length", off, "A-RELEASE-RQ");
      if (!release_rq_) { release_rq_ = true; release_dir_ = dir; }
      dir_release_rq_only_[static_cast<int>(dir)] = !dir_closed_[static_cast<int>(dir)];
      dir_closed_[static_cast<int>(dir)] = true;
      if (state_ != State::closed) state_ = State::releasing;
      maybe_emit(ctx);
      return;
    }
    case kReleaseRp: {
      // After its own A-RELEASE-RQ a side answers the other's in a release collision; whether
      // the other's RQ came first cannot be told from one direction's order.
      if (dir_closed_[static_cast<int>(dir)] && !dir_release_rq_only_[static_cast<int>(dir)])
        anomaly(ctx, "unexpected_pdu", off, "A-RELEASE-RP");
      dir_release_rq_only_[static_cast<int>(dir)] = false;
      if (h.length != 4) anomaly(ctx, "bad_pdu_length", off, "A-RELEASE-RP");
      if (!release_rq_) { release_rq_ = true; release_dir_ = reverse(dir); }
      release_rp_ = true;
      dir_closed_[static_cast<int>(dir)] = true;
      end_association(ctx, "released");
      return;
    }
    case kAbort: {
      parse_abort(pdu, abort_, is);
      issues(ctx, is, off);
      if (!aborted_) { aborted_ = true; abort_dir_ = dir; }
      dir_release_rq_only_[static_cast<int>(dir)] = false;
      if (!have_ac_ && !rejected_) ctx.facts().set_attr("dicom.result", "aborted");
      dir_closed_[static_cast<int>(dir)] = true;
      end_association(ctx, "aborted");
      return;
    }
    default: return;
  }
}

// `n` bytes of the command set being read were lost: zero-filled, so the framing after them holds.
void add_command_hole(DirState& s, uint64_t n) {
  s.cmd_hole = true;
  bool joins = !s.cmd_holes.empty() && s.cmd_holes.back().end == s.cmd.size();
  if (s.cmd.size() + n > kMaxCommandSet || (!joins && s.cmd_holes.size() >= kMaxCommandHoles)) {
    s.cmd_broken = true;
    return;
  }
  if (joins) s.cmd_holes.back().end += static_cast<size_t>(n);
  else s.cmd_holes.push_back({s.cmd.size(), s.cmd.size() + static_cast<size_t>(n)});
  s.cmd.resize(s.cmd.size() + static_cast<size_t>(n), 0);
}

void DicomDissector::on_gap(Dir dir, uint64_t missing, FlowContext& ctx) {
  DirState& s = st(dir);
  ++gaps_;
  ++ctx.counters().at("dicom.gaps");
  if (s.phase == DirState::pdv_data && missing <= s.pdv_left) {
    // The hole is inside one fragment (or ends with it): the framing survives, only that
    // message is damaged.
    s.pdv_left -= static_cast<uint32_t>(missing);
    bool is_cmd = s.mch & 1;
    if (is_cmd) {
      if (s.frag_skip || s.msg != DirState::command || s.cmd_broken) return;
      add_command_hole(s, missing);
    } else if (s.walker.active() && !s.walker.done()) {
      // The rest of the dataset is stepped over; its last fragment still ends the message.
      s.broken_by = "gap";
      s.walker.cut("gap");
    }
    return;
  }
  if (s.phase == DirState::pdv_data && (s.mch & 3) == 3 && !s.frag_skip && s.msg == DirState::command &&
      !s.cmd_broken) {
    // The hole took the end of a command set and more: the elements that arrived of it still
    // count; the message is cut where the hole goes on.
    add_command_hole(s, s.pdv_left);
    missing -= s.pdv_left;
    s.pdv_left = 0;
    end_fragment(dir, ctx, ctx.stream_offset());
  }
  if (s.phase == DirState::pdv_data && missing < uint64_t(s.pdv_left) + s.pdu_left) {
    // Lost the next PDV header(s) but not the PDU end: skip to it.
    uint64_t left = uint64_t(s.pdv_left) + s.pdu_left - missing;
    cut_message(dir, ctx, "gap");
    s.skip_until_command = true;
    s.pdv_left = static_cast<uint32_t>(left);
    s.pdu_left = 0;
    s.mch = 0;
    s.frag_skip = true;
    return;
  }
  cut_message(dir, ctx, "gap");
  s.first = false;
  s.phase = DirState::resync;
}

void DicomDissector::end_association(FlowContext& ctx, std::string_view status) {
  if (end_status_.empty() || status == "aborted") end_status_ = status;
  state_ = State::closed;
  maybe_emit(ctx);
}

void DicomDissector::maybe_emit(FlowContext& ctx) {
  if (end_status_.empty() || !ended_[0] || !ended_[1]) return;
  // No more bytes will come: messages cut short by the abort or the end still count.
  for (Dir d : {Dir::to_server, Dir::to_client}) cut_message(d, ctx, "ended");
  emit(ctx, end_status_);
}

void DicomDissector::on_end(Dir dir, FlowContext& ctx) {
  ended_[static_cast<int>(dir)] = true;
  maybe_emit(ctx);
}

void DicomDissector::on_flow_end(FlowContext& ctx) {
  // Requests cut short by the end of the capture still count.
  for (Dir d : {Dir::to_server, Dir::to_client}) cut_message(d, ctx, "ended");
  if (any_) emit(ctx, end_status_.empty() ? std::string_view("incomplete") : end_status_);
}

}  // namespace

Probe probe(std::span<const uint8_t> d, Dir) {
  int a = looks_like_associate(d);
  if (a == 1) return Probe::yes;
  // Claimed on any port so the dissector reports it (bad_pdu_length) instead of nDPI.
  int big = looks_like_oversized_associate(d);
  if (big == 1) return Probe::yes;
  int p = looks_like_pdata(d);
  if (p == 1) return Probe::yes;
  if (find_command_pdata(d) != static_cast<size_t>(-1)) return Probe::yes;
  if (a < 0 || big < 0 || p < 0) return Probe::need_more;
  return Probe::no;
}

namespace {
// The CommandField (0000,0100) of a P-DATA-TF whose first PDV opens a command set, from the
// bytes given (implicit VR LE elements in ascending order); -1 when they do not hold it.
int pdata_command_field(std::span<const uint8_t> d) {
  if (looks_like_pdata(d) != 1) return -1;
  PdvHeader pdv = read_pdv_header(d.subspan(kPduHeaderSize));
  if (!pdv.command()) return -1;
  size_t end = std::min<size_t>(d.size(), kPduHeaderSize + 4 + size_t(pdv.length));
  for (size_t p = kPduHeaderSize + kPdvHeaderSize; p + 8 <= end;) {
    uint16_t group = uint16_t(d[p] | d[p + 1] << 8), elem = uint16_t(d[p + 2] | d[p + 3] << 8);
    uint32_t len = uint32_t(d[p + 4]) | uint32_t(d[p + 5]) << 8 | uint32_t(d[p + 6]) << 16 | uint32_t(d[p + 7]) << 24;
    if (group != 0 || elem > 0x0100) return -1;
    if (elem == 0x0100) return len == 2 && p + 10 <= end ? int(d[p + 8] | d[p + 9] << 8) : -1;
    if (len > end - p - 8) return -1;
    p += 8 + len;
  }
  return -1;
}
}  // namespace

// The requestor opens the TCP connection (PS3.8 9.1.2): an A-ASSOCIATE-RQ comes from the
// client, an A-ASSOCIATE-AC or -RJ only from the server. Inside an association (a capture that
// joined it), the DIMSE command of a P-DATA-TF says which side is likely which: the requestor
// is the SCU of the services it asks for, so a request comes from the client and a response
// from the server, whichever direction the capture saw first (a C-STORE too: most go from the
// requestor, only a C-GET's sub-operations the other way). Not an N-EVENT-REPORT, which the SCP
// sends, on its own association or the SCU's.
StreamSender sender(std::span<const uint8_t> d) {
  if (d.size() < kPduHeaderSize) return StreamSender::unknown;
  switch (d[0]) {
    case kPData: {
      int field = pdata_command_field(d);
      uint16_t service = uint16_t(field & 0x7FFF);
      if (field < 0 || command_name(service).empty()) return StreamSender::unknown;
      if (service == 0x0100) return StreamSender::unknown;  // N-EVENT-REPORT: the SCP sends it
      return (field & 0x8000) ? StreamSender::likely_server : StreamSender::likely_client;
    }
    case kAssociateRq: return looks_like_associate(d) == 1 ? StreamSender::client : StreamSender::unknown;
    case kAssociateAc: return looks_like_associate(d) == 1 ? StreamSender::server : StreamSender::unknown;
    case kAssociateRj: {
      // Reserved, result (1 permanent, 2 transient), source (1..3), reason.
      bool rj = d.size() >= kPduHeaderSize + 4 && d[1] == 0 && read_pdu_header(d).length == 4 && d[6] == 0 &&
                (d[7] == 1 || d[7] == 2) && d[8] >= 1 && d[8] <= 3;
      return rj ? StreamSender::server : StreamSender::unknown;
    }
    default: return StreamSender::unknown;
  }
}

std::unique_ptr<Dissector> make_dissector() { return std::make_unique<DicomDissector>(); }

}  // namespace dicom

namespace {
constexpr uint16_t kDicomPorts[] = {104, 11112, 4242, 2761};
constexpr uint16_t kDicomTlsPorts[] = {2762};  // IANA dicom-tls
}

const DissectorInfo kDicomInfo{
    .name = "dicom",
    .transport = Transport::tcp,
    .probe = &dicom::probe,
    .make = &dicom::make_dissector,
    .port_hints = kDicomPorts,
    .sender = &dicom::sender,
    .tls_ports = kDicomTlsPorts,
    .tls_after_clear = true,
};

}  // namespace medmon
