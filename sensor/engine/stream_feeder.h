#pragma once
// Connects one flow's byte streams to a dissector: runs the content probes of every registered
// dissector on the first bytes of each direction (port hints only order them), then feeds the
// chosen dissector, holding back unconsumed bytes (bounded) and honouring `skip`. A TCP flow
// refused on its first messages that carries a protocol in later ones (HL7 in an HTTP
// connection kept alive, one picked up mid-stream) is watched without holding anything, and may
// be claimed there, at a delivery's start or at a message pipelined behind others in it
// (DissectorInfo::later_probe, later_next, later_midstream).
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "dissectors/api/dissector.h"

namespace medmon {

struct FeederLimits {
  size_t probe_window = 512;            // bytes per direction a probe may ask for (and held
                                        // of a direction every probe refused)
  size_t max_buffer = 2u << 20;         // unconsumed bytes held per direction
  size_t probe_hold_memcap = 64u << 20;  // ProbeHoldMemory::cap
  size_t held_memcap = 256u << 20;       // HeldMemory::cap
  bool operator==(const FeederLimits&) const = default;
};

// Bytes held for the dissectors of claimed flows (the rest of a PDU, a message or a body a
// dissector asked to see whole), over all flows of a pipeline. Each direction may hold up to
// FeederLimits::max_buffer; this bounds their sum, so that many flows each holding an unfinished
// message cannot take the sensor's memory.
struct HeldMemory {
  HeldMemory(size_t cap, Counters& c) : cap(cap), cap_hits(c.at("stream.held_memcap_hits")) {}
  size_t cap;
  size_t used = 0;
  uint64_t& cap_hits;
};

// Bytes held past the probe window, over all flows of a pipeline, of directions every probe
// refused, while the other direction may still claim the flow (a server that speaks second).
// Each direction may hold up to FeederLimits::max_buffer; this bounds their sum.
struct ProbeHoldMemory {
  ProbeHoldMemory(size_t cap, Counters& c) : cap(cap), cap_hits(c.at("stream.probe_hold_memcap_hits")) {}
  size_t cap;
  size_t used = 0;
  uint64_t& cap_hits;
};

class StreamFeeder {
 public:
  // Without `hold_memory`, a refused direction is held only as far as the probe window.
  StreamFeeder(std::span<const DissectorInfo* const> candidates, Transport transport,
               uint16_t server_port, const FeederLimits& limits, ProbeHoldMemory* hold_memory = nullptr,
               HeldMemory* held_memory = nullptr);
  ~StreamFeeder();
  StreamFeeder(const StreamFeeder&) = delete;
  StreamFeeder& operator=(const StreamFeeder&) = delete;

  // In-order bytes of one direction starting at stream `offset` (TCP), or one datagram (UDP).
  void data(Dir dir, std::span<const uint8_t> bytes, uint64_t offset, FlowContext& ctx);
  void gap(Dir dir, uint64_t missing, FlowContext& ctx);
  void end(Dir dir, FlowContext& ctx);
  void flow_end(FlowContext& ctx);
  // The flow's client and server were swapped before a dissector claimed it: what is held of
  // each direction goes with it.
  void swap_sides() { std::swap(dirs_[0], dirs_[1]); }

  // While no probe has decided: the bytes held of `dir` from its first one (empty when some were
  // dropped).
  std::span<const uint8_t> probing_held(Dir dir) const {
    const DirState& s = dirs_[static_cast<int>(dir)];
    if (state_ != State::probing || s.dropped || s.next_offset != 0) return {};
    return std::span<const uint8_t>(s.pending).subspan(s.head);
  }
  const DissectorInfo* claimed() const { return state_ == State::active ? info_ : nullptr; }
  bool probing() const { return state_ == State::probing; }
  // Refused by every probe, but a later message of the flow may still be claimed
  // (DissectorInfo::later_probe).
  bool watching() const { return state_ == State::watching; }
  bool done() const { return state_ == State::none; }
  size_t buffered() const { return dirs_[0].held() + dirs_[1].held(); }

 private:
  enum class State : uint8_t { probing, active, none, watching };
  // Bytes held while probing that arrived with one packet time, replayed with it at claim(), in
  // the order the pieces of both directions arrived (`seq`).
  struct HeldPiece {
    size_t size;
    Timestamp time;
    uint64_t seq;
  };
  static constexpr size_t kMaxHeldPieces = 256;  // past it, bytes join the last piece
  struct DirState {
    // Bytes the dissector has not consumed yet: pending[head..]. The consumed front is dropped
    // only once it outweighs the rest (or before the vector would grow), so holding a long
    // message that arrives in small segments costs linear time, not a copy per segment.
    std::vector<uint8_t> pending;
    size_t head = 0;
    uint64_t skip = 0;             // bytes to drop before the next delivery
    size_t need = 0;               // wait for this many pending bytes before calling again
    uint64_t next_offset = 0;      // stream offset of pending[0] (or of the next byte)
    bool probe_said_no = false;    // every probe refused this direction (its bytes are still held)
    bool dropped = false;          // nor are they held: over the cap, or a hole while probing
    uint64_t lost = 0;             // bytes of a dropped direction the dissector will never see
                                   // (or, probing again at a later message, those before it)
    bool carrier = false;          // refused, but a later message of it may be claimed
    bool later = false;            // probing such a later message: only later_probe is asked
    size_t reprobe_at = 0;         // past the probe window, undecided: held size at which the probe
                                   // is asked again (sooner when the other direction sends or this one ends)
    uint64_t later_at = 0;         // a carrier's stream offset where the next message begins, behind
                                   // one whose body goes on past the delivery it began in (0: none;
                                   // UINT64_MAX: that body runs to the end of the stream), or where
                                   // reading of that body goes on (later_cursor active)
    LaterCursor later_cursor;      // where later_owner's later_next left that body's chunks
    const DissectorInfo* later_owner = nullptr;
    std::vector<uint8_t> later_head;  // a carrier's head cut by the end of the last delivery looked at
                                      // (kLaterHeadCut, at most kLaterMaxHead bytes), measured again with the next
    uint64_t later_head_at = 0;       // its stream offset
    size_t charged = 0;            // of the held bytes, those counted in ProbeHoldMemory
    size_t held_charged = 0;       // claimed: the held bytes counted in HeldMemory
    bool ended = false;
    uint64_t end_seq = 0;          // ended while probing: its place among the held pieces
    Timestamp end_time;
    std::vector<HeldPiece> pieces;  // while probing: what `pending` holds, by arrival time
    size_t held() const { return pending.size() - head; }
    void compact() {
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(head));
      head = 0;
    }
    // `seq` numbers the deliveries of both directions: bytes join the last piece when nothing of
    // the other direction came between them (or past kMaxHeldPieces).
    void hold(size_t n, Timestamp t, uint64_t seq) {
      if (!pieces.empty() && ((pieces.back().time == t && pieces.back().seq + 1 == seq) || pieces.size() >= kMaxHeldPieces)) {
        pieces.back().size += n;
        pieces.back().time = t;
        pieces.back().seq = seq;
      } else {
        pieces.push_back({n, t, seq});
      }
    }
    void release() {
      std::vector<uint8_t>().swap(pending);
      head = 0;
    }
  };

  bool charge(DirState& s, size_t n);
  void uncharge(DirState& s);
  // Claimed flows: whether `extra` more held bytes fit the pipeline's HeldMemory, and the held
  // bytes counted in it again after they changed.
  bool held_fits(const DirState& s, size_t extra) const;
  void account(DirState& s);
  void lose_held(Dir dir, std::span<const uint8_t> more, const char* why, FlowContext& ctx);
  void probe(Dir dir, FlowContext& ctx);
  void drop(Dir dir);
  void refused();
  void watch(Dir dir, std::span<const uint8_t> bytes, uint64_t offset, FlowContext& ctx);
  size_t later_message(std::span<const uint8_t> bytes, Dir dir, bool after_first, DirState& s, size_t& beyond,
                       size_t& head_cut) const;
  void keep_later_head(DirState& s, std::span<const uint8_t> head, uint64_t at);
  void drop_later_head(DirState& s);
  size_t later_in_delivery(DirState& s, std::span<const uint8_t> bytes, uint64_t offset, Dir dir, bool after_first);
  bool skip_to_later_message(Dir dir, size_t from);
  void claim(const DissectorInfo* info, Dir first, FlowContext& ctx);
  void feed(Dir dir, std::span<const uint8_t> bytes, FlowContext& ctx);
  void run(Dir dir, std::span<const uint8_t>& bytes, FlowContext& ctx);
  void detach(bool watching = false);

  std::vector<const DissectorInfo*> order_;
  Transport transport_;
  const FeederLimits& limits_;
  ProbeHoldMemory* hold_memory_;
  HeldMemory* held_memory_;
  State state_ = State::probing;
  const DissectorInfo* info_ = nullptr;
  std::unique_ptr<Dissector> dissector_;
  std::array<DirState, 2> dirs_;
  uint64_t arrivals_ = 0;  // deliveries held while probing, both directions (HeldPiece::seq)
};

}  // namespace medmon
