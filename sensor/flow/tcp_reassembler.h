#pragma once
// One direction of a TCP connection turned back into an ordered byte stream.
// - In-order segments go straight to the sink (no copy); only out-of-order data is queued.
// - Overlaps: the first copy of every byte wins; overlapping bytes that differ are reported
//   (an attacker can hide data from a monitor that silently picks one copy).
// - Losses become explicit gaps: when the peer acknowledges bytes that were never seen (after a
//   grace of a few packets, since a SPAN port reorders), when a cap is hit, or at the end (holes,
//   and the lost tail the peer acknowledged or the sender's FIN is beyond).
// - The sink is told when the stream reaches the sender's FIN in order, not only at flow end.
// - Memory is capped per direction and globally; hitting a cap forces a gap and is counted.
#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "sensor/common/counters.h"

namespace medmon {

struct ReassemblyLimits {
  size_t max_queued_bytes = 1u << 20;  // per direction
  size_t max_queued_segments = 2048;   // per direction
  uint32_t ack_gap_packets = 16;       // packets to wait for acknowledged-but-unseen bytes
  bool operator==(const ReassemblyLimits&) const = default;
};

// Shared by every stream: the global cap on queued out-of-order data. Each queued segment is
// charged its bytes plus kSegmentOverhead, so floods of one-byte segments stay under the cap.
struct ReassemblyMemory {
  static constexpr size_t kSegmentOverhead = 112;  // map node + vector + malloc headers (measured)
  explicit ReassemblyMemory(size_t cap, Counters& c)
      : cap(cap), memcap_hits(c.at("tcp.reassembly.global_memcap_hits")),
        direction_cap_hits(c.at("tcp.reassembly.direction_cap_hits")) {}
  size_t cap;
  size_t used = 0;
  size_t peak = 0;
  uint64_t& memcap_hits;
  uint64_t& direction_cap_hits;  // per-direction byte or segment cap forced a gap
};

class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void data(std::span<const uint8_t> bytes, uint64_t offset) = 0;
  virtual void gap(uint64_t offset, uint64_t length) = 0;
  virtual void overlap_conflict(uint64_t offset) = 0;
  // The stream reached the sender's FIN in order (every byte before it delivered or a gap): the
  // direction ended cleanly here. Told once.
  virtual void end(uint64_t offset) {}
};

class TcpReassembler {
 public:
  TcpReassembler(const ReassemblyLimits& limits, ReassemblyMemory& mem) : limits_(&limits), mem_(&mem) {}
  ~TcpReassembler();
  TcpReassembler(const TcpReassembler&) = delete;
  TcpReassembler& operator=(const TcpReassembler&) = delete;

  void syn(uint32_t seq);
  // The time of the packet whose segment comes next: kept with the bytes it queues.
  void set_time(int64_t usec) { now_usec_ = usec; }
  void segment(uint32_t seq, std::span<const uint8_t> payload, bool fin, StreamSink& sink);
  // While queued bytes are being delivered: the time of the packet that carried them (0 else).
  int64_t queued_time() const { return draining_usec_; }
  // The other direction acknowledged `ack`. Only an ACK plausible for what this direction sent
  // (Flow::tcp_packet): one far ahead would make the bytes up to it a gap, and whatever is sent
  // up to there look delivered already.
  void peer_ack(uint32_t ack);
  // Once per packet of the flow: turns long-acknowledged holes into gaps.
  void tick(StreamSink& sink);
  // End of the stream: deliver what is queued, holes as gaps, then the bytes never seen at its
  // end that were surely sent: acknowledged by the peer, or before the sender's FIN. A FIN
  // counts only within `window` (the receiver's largest window) of what was acknowledged or
  // seen: a sender cannot be further ahead, and a forged FIN must not make up a gap.
  void flush(StreamSink& sink, uint32_t window = 65535);

  bool started() const { return base_set_; }
  bool midstream() const { return midstream_; }
  uint64_t delivered() const { return next_off_; }
  uint64_t gaps() const { return gaps_; }
  uint64_t gap_bytes() const { return gap_bytes_; }
  uint64_t retransmitted_bytes() const { return retrans_bytes_; }
  size_t queued_bytes() const { return queued_bytes_; }
  // The peer acknowledged bytes not delivered yet: still on their way to the capture (a SPAN
  // port that reorders the two directions), or lost.
  bool acked_unseen() const { return acked_off_ > next_off_; }
  uint64_t limit_hits() const { return limit_hits_; }

 private:
  int64_t offset_of(uint32_t seq) const {
    return static_cast<int64_t>(next_off_) + static_cast<int32_t>(seq - static_cast<uint32_t>(base_seq_ + next_off_));
  }
  void insert(uint64_t off, std::span<const uint8_t> data, StreamSink& sink);
  void drain(StreamSink& sink);
  void force_gap(uint64_t upto, StreamSink& sink);
  // How far the peer's ACKs show the sender surely sent: the ACK of a lost FIN is no lost byte.
  uint64_t surely_sent() const;
  // Tells the sink once the stream has been delivered (or given as a gap) up to the FIN.
  void reached_fin(StreamSink& sink) {
    if (fin_off_ >= 0 && !fin_told_ && next_off_ == static_cast<uint64_t>(fin_off_)) {
      fin_told_ = true;
      sink.end(next_off_);
    }
  }
  void release(size_t n);
  // Retransmissions of delivered bytes: remembered per segment as (offset, length, hash) so a
  // copy with different bytes is reported without keeping the data.
  void remember(uint64_t off, std::span<const uint8_t> data);
  void check_retransmission(uint64_t off, std::span<const uint8_t> data, StreamSink& sink);

  const ReassemblyLimits* limits_;
  ReassemblyMemory* mem_;
  struct Queued {
    std::vector<uint8_t> bytes;
    int64_t usec = 0;  // the time of the packet that carried them
  };
  std::map<uint64_t, Queued> queue_;  // non-overlapping, keyed by stream offset
  int64_t now_usec_ = 0;
  int64_t draining_usec_ = 0;
  uint32_t base_seq_ = 0;    // sequence number of stream offset 0
  uint64_t next_off_ = 0;    // next offset to deliver
  uint64_t acked_off_ = 0;   // highest offset the peer acknowledged
  int64_t fin_off_ = -1;
  uint32_t ack_wait_ = 0;
  size_t queued_bytes_ = 0;
  struct Delivered { uint64_t off = 0; uint32_t len = 0; uint32_t hash = 0; };
  std::array<Delivered, 4> recent_{};  // the last segments delivered in order
  uint8_t recent_next_ = 0;
  uint64_t gaps_ = 0, gap_bytes_ = 0, retrans_bytes_ = 0, limit_hits_ = 0;
  bool base_set_ = false;
  bool midstream_ = false;
  bool fin_told_ = false;
};

}  // namespace medmon
