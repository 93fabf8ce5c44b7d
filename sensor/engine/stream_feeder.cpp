#include "sensor/engine/stream_feeder.h"

#include <algorithm>

namespace medmon {

StreamFeeder::StreamFeeder(std::span<const DissectorInfo* const> candidates, Transport transport,
                           uint16_t server_port, const FeederLimits& limits, ProbeHoldMemory* hold_memory,
                           HeldMemory* held_memory)
    : transport_(transport), limits_(limits), hold_memory_(hold_memory), held_memory_(held_memory) {
  // Probes whose port hint matches run first; every probe runs on every port.
  for (int pass = 0; pass < 2; ++pass) {
    for (const DissectorInfo* d : candidates) {
      if (!d || !d->probe || !d->make) continue;
      if ((static_cast<uint8_t>(d->transport) & static_cast<uint8_t>(transport)) == 0) continue;
      bool hinted = std::find(d->port_hints.begin(), d->port_hints.end(), server_port) != d->port_hints.end();
      if (!hinted && d->only_on_port_hints) continue;
      if (hinted == (pass == 0)) order_.push_back(d);
    }
  }
  if (order_.empty()) state_ = State::none;
}

StreamFeeder::~StreamFeeder() {
  for (auto& d : dirs_) {
    uncharge(d);
    drop_later_head(d);
    if (held_memory_) held_memory_->used -= d.held_charged;
  }
}

void StreamFeeder::detach(bool watching) {
  state_ = State::none;
  dissector_.reset();
  for (auto& d : dirs_) {
    uncharge(d);
    if (!watching) drop_later_head(d);
    d.release();
    account(d);
    std::vector<HeldPiece>().swap(d.pieces);
    d.skip = 0;
    d.need = 0;
  }
}

bool StreamFeeder::held_fits(const DirState& s, size_t extra) const {
  return !held_memory_ || held_memory_->used - s.held_charged + s.held() + extra <= held_memory_->cap;
}

void StreamFeeder::account(DirState& s) {
  if (!held_memory_) return;
  held_memory_->used = held_memory_->used - s.held_charged + s.held();
  s.held_charged = s.held();
}

// The dissector asked for more than may be held (the direction's cap, or the pipeline's budget):
// the held bytes and `more` are treated as lost, and it goes on after them as after any gap.
void StreamFeeder::lose_held(Dir dir, std::span<const uint8_t> more, const char* why, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  ctx.anomaly("stream", why, s.next_offset);
  uint64_t lost = s.held() + more.size();
  ctx.set_stream_offset(s.next_offset);  // where the lost bytes start
  s.next_offset += lost;
  s.release();
  s.need = 0;
  account(s);
  dissector_->on_gap(dir, lost, ctx);
}

// Counts `n` more bytes of a refused direction against the pipeline's budget, if they fit.
bool StreamFeeder::charge(DirState& s, size_t n) {
  if (!hold_memory_) return false;
  if (hold_memory_->used + n > hold_memory_->cap) {
    ++hold_memory_->cap_hits;
    return false;
  }
  hold_memory_->used += n;
  s.charged += n;
  return true;
}

void StreamFeeder::uncharge(DirState& s) {
  if (hold_memory_) hold_memory_->used -= s.charged;
  s.charged = 0;
}

// A head cut by a delivery's end is kept (counted in ProbeHoldMemory) to be measured again with
// the next delivery; without room for it (none with a budget of 0), it is not.
void StreamFeeder::keep_later_head(DirState& s, std::span<const uint8_t> head, uint64_t at) {
  drop_later_head(s);
  if (!hold_memory_ || hold_memory_->cap == 0 || head.size() > kLaterMaxHead) return;
  if (hold_memory_->used + head.size() > hold_memory_->cap) {
    ++hold_memory_->cap_hits;
    return;
  }
  hold_memory_->used += head.size();
  s.later_head.assign(head.begin(), head.end());
  s.later_head_at = at;
}

void StreamFeeder::drop_later_head(DirState& s) {
  if (hold_memory_) hold_memory_->used -= s.later_head.size();
  std::vector<uint8_t>().swap(s.later_head);
}

void StreamFeeder::data(Dir dir, std::span<const uint8_t> bytes, uint64_t offset, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  if (state_ == State::none) return;
  if (state_ == State::watching) {
    watch(dir, bytes, offset, ctx);
    return;
  }
  if (state_ == State::probing) {
    if (DirState& o = dirs_[1 - static_cast<int>(dir)]; o.reprobe_at && !o.probe_said_no) {
      o.reprobe_at = 0;
      probe(reverse(dir), ctx);
      if (state_ != State::probing) {
        data(dir, bytes, offset, ctx);
        return;
      }
    }
    if (s.dropped) { s.next_offset = offset + bytes.size(); s.lost += bytes.size(); return; }
    if (transport_ == Transport::udp) { s.pending.clear(); s.pieces.clear(); }  // each datagram is probed on its own
    if (s.pending.empty()) s.next_offset = offset;
    // Hold the bytes while probing (a decision comes within probe_window bytes), and those of a
    // direction every probe refused while the other may still claim the flow: the chosen
    // dissector then gets both streams from their first byte. Past the probe window a refused
    // direction's bytes are counted against the pipeline's budget (hold_memory_).
    bool full = s.pending.size() + bytes.size() > limits_.max_buffer;
    if (s.probe_said_no && (full || (s.pending.size() >= limits_.probe_window && !charge(s, bytes.size())))) {
      s.lost += s.held() + bytes.size();
      drop(dir);  // no longer held; the other direction is still probed
      s.next_offset = offset + bytes.size();
      return;
    }
    if (full) { detach(); return; }
    s.pending.insert(s.pending.end(), bytes.begin(), bytes.end());
    const size_t pieces = s.pieces.size();
    s.hold(bytes.size(), ctx.now(), ++arrivals_);
    if (!s.probe_said_no) {
      if (s.pending.size() >= s.reprobe_at) probe(dir, ctx);
    } else if (s.carrier && s.pieces.size() > pieces && pieces > 0 && skip_to_later_message(dir, pieces)) probe(dir, ctx);
    return;
  }
  feed(dir, bytes, ctx);
}

void StreamFeeder::drop(Dir dir) {
  DirState& s = dirs_[static_cast<int>(dir)];
  s.probe_said_no = true;
  s.dropped = true;
  uncharge(s);
  s.release();
  std::vector<HeldPiece>().swap(s.pieces);
  if (dirs_[0].probe_said_no && dirs_[1].probe_said_no) refused();
}

// Every probe refused both directions: the flow is let go, or watched when a direction carries
// messages a later one of which may still be claimed. Nothing is held while watching; each
// direction's offset goes on past the bytes it held.
void StreamFeeder::refused() {
  bool watch = false;
  for (auto& d : dirs_) {
    watch |= d.carrier;
    d.next_offset += d.held();
  }
  detach(watch);
  if (watch) state_ = State::watching;
}

// Where in one delivery of a carrier direction (the new bytes of a TCP segment) a message begins
// that a later_probe does not refuse: at its start (unless `after_first`: the start was refused
// already, or it goes on with a message a former delivery began, DirState::later_cursor), or at a
// message pipelined behind it, as far as later_next measures the messages before. npos when
// there is none; then `beyond` is where reading goes on past the bytes (the message after the
// last one measured, or the rest of one whose end is found only by reading on: the cursor is
// then active), kLaterToClose when the last one runs to the end of the stream, else 0.
size_t StreamFeeder::later_message(std::span<const uint8_t> bytes, Dir dir, bool after_first, DirState& s,
                                   size_t& beyond, size_t& head_cut) const {
  size_t at = 0;
  beyond = 0;
  head_cut = std::string_view::npos;
  for (bool first = true; at < bytes.size(); first = false) {
    std::span<const uint8_t> rest = bytes.subspan(at);
    const bool goes_on = first && s.later_cursor.active();
    if (!(first && after_first) && !goes_on) {
      std::span<const uint8_t> window = rest.first(std::min(rest.size(), limits_.probe_window));
      for (const DissectorInfo* d : order_)
        if (d->later_probe && d->later_probe(window, dir) != Probe::no) return at;
    }
    size_t next = 0;
    if (goes_on) {
      next = s.later_owner->later_next(rest, dir, s.later_cursor);
    } else {
      for (const DissectorInfo* d : order_)
        if (d->later_next && (next = d->later_next(rest, dir, s.later_cursor)) != 0) {
          s.later_owner = d;
          break;
        }
    }
    if (next == 0) {
      s.later_cursor = {};
      break;
    }
    if (next == kLaterHeadCut) {  // measured again from `at` with the next delivery
      s.later_cursor = {};
      head_cut = at;
      break;
    }
    if (next == kLaterToClose) {
      beyond = kLaterToClose;
      break;
    }
    if (next > rest.size() || (next == rest.size() && s.later_cursor.active())) {
      beyond = at + next;
      break;
    }
    at += next;
  }
  return std::string_view::npos;
}

// later_message for a delivery of a carrier direction at stream `offset`, minding the message a
// former delivery left to come (DirState::later_at): a delivery wholly inside the body before it
// is not looked at; one it begins in is looked at from there. Remembers where reading goes on
// when a message goes on past this delivery. Bytes that were not looked at before this delivery
// (lost, or passed while the direction was not held) leave the end of a message being read unknown.
size_t StreamFeeder::later_in_delivery(DirState& s, std::span<const uint8_t> bytes, uint64_t offset, Dir dir,
                                       bool after_first) {
  // A head the last delivery cut goes on in this one: the two are looked at as one, from the
  // head's start (refused, or not probed, at its start already: only measured).
  std::vector<uint8_t> joined;
  size_t carried = 0;
  if (!s.later_head.empty()) {
    if (s.later_head_at + s.later_head.size() == offset) {
      joined.reserve(s.later_head.size() + bytes.size());
      joined.assign(s.later_head.begin(), s.later_head.end());
      joined.insert(joined.end(), bytes.begin(), bytes.end());
      carried = s.later_head.size();
      offset = s.later_head_at;
      bytes = joined;
      after_first = true;
      s.later_at = 0;
      s.later_cursor = {};
    }
    drop_later_head(s);
  }
  size_t from = 0;
  if (s.later_at > offset) {
    if (s.later_at >= offset + bytes.size()) return std::string_view::npos;
    from = static_cast<size_t>(s.later_at - offset);
    after_first = false;
  } else if (s.later_at < offset) {
    s.later_cursor = {};
  }
  s.later_at = 0;
  size_t beyond = 0, head_cut = 0;
  const size_t at = later_message(bytes.subspan(from), dir, after_first, s, beyond, head_cut);
  if (at != std::string_view::npos) {
    s.later_cursor = {};
    // Not inside the head carried: its message's start was not probed again.
    return from + at > carried ? from + at - carried : 0;
  }
  if (head_cut != std::string_view::npos) keep_later_head(s, bytes.subspan(from + head_cut), offset + from + head_cut);
  else if (beyond == kLaterToClose) s.later_at = UINT64_MAX;
  else if (beyond) s.later_at = offset + from + beyond;
  return std::string_view::npos;
}

// A delivery of a watched flow that may hold a message a later_probe claims: the flow is probed
// again from that message, both directions held from there as at a stream's start (the bytes
// before are gaps for the dissector that claims it, DissectorInfo::later_probe).
void StreamFeeder::watch(Dir dir, std::span<const uint8_t> bytes, uint64_t offset, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  const size_t at = later_in_delivery(s, bytes, offset, dir, false);
  if (at == std::string_view::npos) {
    s.next_offset = offset + bytes.size();
    return;
  }
  bytes = bytes.subspan(at);
  offset += at;
  state_ = State::probing;
  s.next_offset = offset;
  for (Dir d : {Dir::to_server, Dir::to_client}) {
    DirState& x = dirs_[static_cast<int>(d)];
    x.lost = x.next_offset;  // all of it before this point
    x.later = d == dir;
    x.probe_said_no = d != dir;  // held, as a refused direction is, while this one is probed
    x.dropped = false;
    x.reprobe_at = 0;
    x.pieces.clear();
    // One that ended meanwhile ends for the dissector first.
    x.end_seq = x.ended ? ++arrivals_ : 0;
    x.end_time = ctx.now();
  }
  data(dir, bytes, offset, ctx);
}

void StreamFeeder::probe(Dir dir, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  // Again from each later message of a carrier found in the held bytes, until one is claimed,
  // waits for more, or none is left (a loop: a segment may pipeline many).
  for (;;) {
    std::span<const uint8_t> window(s.pending.data(), std::min(s.pending.size(), limits_.probe_window));
    bool undecided = false;
    size_t wanted = limits_.probe_window;  // held bytes an undecided probe may ask for
    for (const DissectorInfo* d : order_) {
      if (s.later && !d->later_probe) continue;
      // Past the window, a probe with a longer extent for these bytes sees as much of them.
      std::span<const uint8_t> w = window;
      const size_t extent = d->probe_extent && s.pending.size() >= limits_.probe_window ? d->probe_extent(window, dir) : 0;
      if (extent > w.size()) w = std::span<const uint8_t>(s.pending.data(), std::min(s.pending.size(), extent));
      Probe r = s.later ? d->later_probe(w, dir) : d->probe(w, dir);
      if (r == Probe::no && !s.later && d->midstream_probe && ctx.midstream(dir)) r = d->midstream_probe(w, dir);
      if (r == Probe::yes) { claim(d, dir, ctx); return; }
      if (r == Probe::need_more) {
        undecided = true;
        wanted = std::max(wanted, extent);
      }
    }
    if (transport_ == Transport::udp) { s.pending.clear(); s.pieces.clear(); return; }  // the next datagram may match
    if (undecided && s.pending.size() < wanted) {
      // Past the window, asked again once the held bytes grew by an eighth (a head sent in tiny
      // segments costs linear time, not a read of all of it per segment), or before the other
      // direction's bytes and at this one's end, which may be all that comes.
      s.reprobe_at = s.pending.size() >= limits_.probe_window ? s.pending.size() + s.pending.size() / 8 : 0;
      return;
    }
    s.reprobe_at = 0;
    if (!s.later)
      for (const DissectorInfo* d : order_)
        if (d->later_probe && ((d->later_midstream && ctx.midstream(dir)) || (d->carried_by && d->carried_by(window, dir)))) {
          s.carrier = true;
          break;
        }
    if (s.carrier && skip_to_later_message(dir, 0)) continue;
    // Refused, but still held: a probe may yet claim the flow from the other direction.
    s.probe_said_no = true;
    if (dirs_[0].probe_said_no && dirs_[1].probe_said_no) refused();
    return;
  }
}

// A carrier direction refused on its first message may hold a later one (a short GET, then the
// POST, came while a probe of either direction still waited for more, or in the same segment):
// the held bytes are cut to the first message in the deliveries held from piece `from` on (the
// first piece's start was refused already) that a later_probe does not refuse, to be probed
// from its start; the bytes before it are lost to the dissector as they are while watching.
// False when there is none.
bool StreamFeeder::skip_to_later_message(Dir dir, size_t from) {
  DirState& s = dirs_[static_cast<int>(dir)];
  size_t start = 0;
  for (size_t k = 0; k < from; ++k) start += s.pieces[k].size;
  for (size_t k = from; k < s.pieces.size(); start += s.pieces[k++].size) {
    std::span<const uint8_t> piece(s.pending.data() + start, std::min(s.pieces[k].size, s.pending.size() - start));
    const size_t m = later_in_delivery(s, piece, s.next_offset + start, dir, k == 0);
    if (m == std::string_view::npos) continue;
    const size_t at = start + m;
    // The pieces from the message on; the one it begins in keeps the bytes from it.
    s.pending.erase(s.pending.begin(), s.pending.begin() + static_cast<std::ptrdiff_t>(at));
    s.pieces[k].size -= m;
    s.pieces.erase(s.pieces.begin(), s.pieces.begin() + static_cast<std::ptrdiff_t>(k));
    s.lost += at;
    s.next_offset += at;
    s.later = true;
    s.probe_said_no = false;
    s.reprobe_at = 0;
    return true;
  }
  return false;
}

void StreamFeeder::claim(const DissectorInfo* info, Dir first, FlowContext& ctx) {
  info_ = info;
  dissector_ = info->make();
  state_ = State::active;
  dirs_[0].later = dirs_[1].later = false;
  for (DirState& d : dirs_) {
    d.later_at = 0;
    d.later_cursor = {};
    drop_later_head(d);
  }
  dirs_[0].reprobe_at = dirs_[1].reprobe_at = 0;
  ctx.facts().app.assign(info->name);
  ++ctx.counters().at(std::string("app.").append(info->name).append(".flows"));
  // The dissector is told which bytes claimed the flow (one that stands for several protocols
  // chooses one on them), then given what was held while probing: a direction that was not
  // held as a gap, then the held pieces of both directions in the order they arrived, each with
  // its packet time, so that a request the client sent before the server's answer that claimed
  // the flow is read before that answer.
  {
    const DirState& f = dirs_[static_cast<int>(first)];
    dissector_->on_claim(first, std::span<const uint8_t>(f.pending.data(), std::min(f.pending.size(), limits_.probe_window)), ctx);
  }
  std::array<std::vector<uint8_t>, 2> held;
  std::array<std::vector<HeldPiece>, 2> pieces;
  for (Dir d : {first, reverse(first)}) {
    int i = static_cast<int>(d);
    DirState& s = dirs_[i];
    bool lost = s.lost > 0;  // not held: dropped, or before the later message probed
    s.probe_said_no = s.dropped = false;
    uncharge(s);  // the held bytes are the dissector's now, as any it has not consumed
    held[i].swap(s.pending);
    pieces[i].swap(s.pieces);
    s.head = 0;
    if (lost) {
      // Not held: the dissector starts this direction mid-stream, as after any other gap.
      uint64_t n = s.lost;
      s.lost = 0;
      ctx.set_stream_offset(s.next_offset >= n ? s.next_offset - n : 0);  // they end where the stream goes on
      dissector_->on_gap(d, n, ctx);
      if (state_ != State::active) return;
    }
  }
  // A direction that ended while probing ends after its held bytes, in the same order.
  std::array<uint64_t, 2> end_seq{dirs_[0].end_seq, dirs_[1].end_seq};
  dirs_[0].end_seq = dirs_[1].end_seq = 0;
  Timestamp now = ctx.now();
  std::array<size_t, 2> next{0, 0}, at{0, 0};
  while (state_ == State::active) {
    // What arrived first of the two directions' next piece (or end).
    int i = -1;
    uint64_t first_seq = 0;
    for (int k : {0, 1}) {
      uint64_t seq = next[k] < pieces[k].size() ? pieces[k][next[k]].seq : end_seq[k];
      if (seq && (i < 0 || seq < first_seq)) { i = k; first_seq = seq; }
    }
    if (i < 0) break;
    if (next[i] == pieces[i].size()) {
      end_seq[i] = 0;
      ctx.set_now(dirs_[i].end_time);
      dissector_->on_end(static_cast<Dir>(i), ctx);
      continue;
    }
    const HeldPiece& p = pieces[i][next[i]++];
    ctx.set_now(p.time);
    feed(static_cast<Dir>(i), std::span<const uint8_t>(held[i]).subspan(at[i], p.size), ctx);
    at[i] += p.size;
  }
  ctx.set_now(now);
}

void StreamFeeder::feed(Dir dir, std::span<const uint8_t> bytes, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  if (s.skip) {
    uint64_t n = std::min<uint64_t>(s.skip, bytes.size());
    s.skip -= n;
    s.next_offset += n;
    bytes = bytes.subspan(static_cast<size_t>(n));
    if (bytes.empty()) return;
  }
  if (transport_ == Transport::udp) {  // datagrams are never joined
    ctx.set_stream_offset(s.next_offset);
    Consumed r = dissector_->on_data(dir, bytes, ctx);
    s.next_offset += bytes.size();
    if (r.give_up) detach();
    return;
  }
  if (s.held() == 0) {
    run(dir, bytes, ctx);
    if (state_ != State::active) return;
    if (bytes.empty()) return;
    if (!held_fits(s, bytes.size())) {
      ++held_memory_->cap_hits;
      lose_held(dir, bytes, "held_memcap_exceeded", ctx);
      return;
    }
    s.pending.assign(bytes.begin(), bytes.end());
    s.head = 0;
    account(s);
    return;
  }
  bool over_cap = s.held() + bytes.size() > limits_.max_buffer;
  if (over_cap || !held_fits(s, bytes.size())) {
    // The dissector asked for more than may be held: the held bytes are lost, and the new ones
    // are read after that gap.
    if (over_cap) ++ctx.counters().at("stream.buffer_cap_hits");
    else ++held_memory_->cap_hits;
    lose_held(dir, {}, over_cap ? "buffer_cap_exceeded" : "held_memcap_exceeded", ctx);
    if (state_ != State::active) return;
    run(dir, bytes, ctx);
    if (state_ != State::active || bytes.empty()) return;
    if (!held_fits(s, bytes.size())) {
      ++held_memory_->cap_hits;
      lose_held(dir, bytes, "held_memcap_exceeded", ctx);
      return;
    }
    s.pending.assign(bytes.begin(), bytes.end());
    account(s);
    return;
  }
  // Drop the consumed front instead of letting the vector grow (and copy it) with it.
  if (s.head && s.pending.size() + bytes.size() > s.pending.capacity()) s.compact();
  s.pending.insert(s.pending.end(), bytes.begin(), bytes.end());
  account(s);
  if (s.held() < s.need) return;
  // The dissector reads the held bytes in place: run() never touches `pending` (detach() frees
  // it, and run() returns at once after that).
  std::span<const uint8_t> rest(s.pending.data() + s.head, s.held());
  run(dir, rest, ctx);
  if (state_ != State::active) return;
  if (rest.empty()) {
    s.release();
  } else {
    s.head = s.pending.size() - rest.size();
    if (s.head >= rest.size()) s.compact();  // moves fewer bytes than were consumed
  }
  account(s);
}

void StreamFeeder::run(Dir dir, std::span<const uint8_t>& bytes, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  s.need = 0;
  while (!bytes.empty()) {
    ctx.set_stream_offset(s.next_offset);
    Consumed r = dissector_->on_data(dir, bytes, ctx);
    if (r.give_up) { detach(); bytes = {}; return; }
    size_t used = std::min(r.used, bytes.size());
    bytes = bytes.subspan(used);
    s.next_offset += used;
    if (r.skip) {
      uint64_t n = std::min<uint64_t>(r.skip, bytes.size());
      bytes = bytes.subspan(static_cast<size_t>(n));
      s.next_offset += n;
      s.skip = r.skip - n;
      if (s.skip) return;  // everything given was skipped; more to drop later
      continue;
    }
    if (used == 0) {
      // Wait for more: at least one byte more than now, or what the dissector asked for.
      s.need = std::max(r.need, bytes.size() + 1);
      return;
    }
  }
}

void StreamFeeder::gap(Dir dir, uint64_t missing, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  if (state_ == State::probing) {
    // A hole before anything was recognised: stop probing and holding this direction.
    s.next_offset += s.pending.size() + missing;
    s.lost += s.held() + missing;
    drop(dir);
    return;
  }
  if (state_ == State::watching) {
    s.next_offset += missing;
    return;
  }
  if (state_ != State::active) return;
  if (s.skip >= missing) {  // the hole falls inside bytes the dissector skips anyway
    s.skip -= missing;
    s.next_offset += missing;
    return;
  }
  // Held bytes [next_offset, +pending) are useless without what follows them.
  uint64_t lost = missing - s.skip + s.held();
  // Where the lost bytes start: at the held ones, else past what the dissector skips anyway.
  ctx.set_stream_offset(s.next_offset + (s.held() ? 0 : s.skip));
  s.next_offset += s.held() + missing;
  s.skip = 0;
  s.release();
  s.need = 0;
  account(s);
  dissector_->on_gap(dir, lost, ctx);
}

void StreamFeeder::end(Dir dir, FlowContext& ctx) {
  DirState& s = dirs_[static_cast<int>(dir)];
  if (s.ended) return;
  s.ended = true;
  if (state_ == State::active) {
    dissector_->on_end(dir, ctx);
  } else if (state_ == State::probing) {
    // Given at the claim, after this direction's held bytes (flow_end() will not repeat it).
    s.end_seq = ++arrivals_;
    s.end_time = ctx.now();
    if (s.reprobe_at && !s.probe_said_no) {
      s.reprobe_at = 0;
      probe(dir, ctx);
    }
  }
}

void StreamFeeder::flow_end(FlowContext& ctx) {
  for (Dir d : {Dir::to_server, Dir::to_client})
    if (DirState& s = dirs_[static_cast<int>(d)]; state_ == State::probing && s.reprobe_at && !s.probe_said_no) {
      s.reprobe_at = 0;
      probe(d, ctx);
    }
  if (state_ != State::active) return;
  for (Dir d : {Dir::to_server, Dir::to_client}) end(d, ctx);
  if (dissector_) dissector_->on_flow_end(ctx);
}

}  // namespace medmon
