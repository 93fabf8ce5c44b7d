#include "sensor/flow/tcp_reassembler.h"

#include <algorithm>
#include <cstring>

namespace medmon {

namespace {
constexpr size_t kOverhead = ReassemblyMemory::kSegmentOverhead;

// 32-bit digest of a segment: every byte up to 64, else the first and last 16 bytes and 8
// words spread between them. Sampled so delivery stays cheap (a full hash of every payload
// byte cost as much as dissecting large DICOM transfers); a copy that differs only in bytes
// between the samples is not seen.
uint64_t mix(uint64_t h, const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

uint32_t hash_bytes(std::span<const uint8_t> d) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ d.size();
  const size_t n = d.size();
  if (n <= 64) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) h = mix(h, d.data() + i);
    uint8_t tail[8] = {};
    std::memcpy(tail, d.data() + i, n - i);
    h = mix(h, tail);
  } else {
    for (size_t i : {size_t(0), size_t(8), n - 16, n - 8}) h = mix(h, d.data() + i);
    for (size_t k = 1; k <= 8; ++k) h = mix(h, d.data() + 16 + (n - 40) * k / 9);
  }
  h *= 0x94D049BB133111EBull;
  return static_cast<uint32_t>(h ^ (h >> 32));
}
}  // namespace

TcpReassembler::~TcpReassembler() {
  mem_->used -= queued_bytes_ + queue_.size() * kOverhead;
}

void TcpReassembler::release(size_t n) {  // one queued segment of n bytes
  queued_bytes_ -= n;
  mem_->used -= n + kOverhead;
}

void TcpReassembler::remember(uint64_t off, std::span<const uint8_t> data) {
  if (data.size() > UINT32_MAX) return;
  recent_[recent_next_++ & 3] = {off, static_cast<uint32_t>(data.size()), hash_bytes(data)};
}

void TcpReassembler::check_retransmission(uint64_t off, std::span<const uint8_t> data, StreamSink& sink) {
  // Only segments the copy covers whole can be compared.
  for (const Delivered& r : recent_) {
    if (r.len == 0 || r.off < off || r.off + r.len > off + data.size()) continue;
    if (hash_bytes(data.subspan(r.off - off, r.len)) != r.hash) {
      sink.overlap_conflict(r.off);
      return;
    }
  }
}

void TcpReassembler::syn(uint32_t seq) {
  if (base_set_) return;
  base_seq_ = seq + 1;
  base_set_ = true;
}

void TcpReassembler::peer_ack(uint32_t ack) {
  if (!base_set_) return;
  int64_t off = offset_of(ack);
  if (fin_off_ >= 0 && off > fin_off_) off = fin_off_;  // the ACK of a FIN covers one phantom byte
  if (off > static_cast<int64_t>(acked_off_)) acked_off_ = static_cast<uint64_t>(off);
}

void TcpReassembler::segment(uint32_t seq, std::span<const uint8_t> payload, bool fin, StreamSink& sink) {
  if (!base_set_) {  // picked up mid-stream: the first byte seen is offset 0
    base_seq_ = seq;
    base_set_ = true;
    midstream_ = true;
  }
  int64_t off = offset_of(seq);
  if (fin) {
    int64_t f = off + static_cast<int64_t>(payload.size());
    if (fin_off_ < 0 || f < fin_off_) fin_off_ = f;
  }
  if (payload.empty()) {
    reached_fin(sink);
    return;
  }
  int64_t end = off + static_cast<int64_t>(payload.size());
  if (end <= static_cast<int64_t>(next_off_)) {  // all of it delivered already
    retrans_bytes_ += payload.size();
    if (off >= 0) check_retransmission(static_cast<uint64_t>(off), payload, sink);
    reached_fin(sink);
    return;
  }
  if (off < static_cast<int64_t>(next_off_)) {
    size_t cut = static_cast<size_t>(static_cast<int64_t>(next_off_) - off);
    retrans_bytes_ += cut;
    if (off >= 0) check_retransmission(static_cast<uint64_t>(off), payload.first(cut), sink);
    payload = payload.subspan(cut);
    off = static_cast<int64_t>(next_off_);
  }
  uint64_t uoff = static_cast<uint64_t>(off);
  if (uoff == next_off_ && queue_.empty()) {  // the common case: in order, nothing queued
    remember(uoff, payload);
    sink.data(payload, uoff);
    next_off_ += payload.size();
    reached_fin(sink);
    return;
  }
  insert(uoff, payload, sink);
  drain(sink);
  reached_fin(sink);
}

void TcpReassembler::insert(uint64_t off, std::span<const uint8_t> data, StreamSink& sink) {
  uint64_t end = off + data.size();
  // Walk the queued entries that overlap [off, end): store only the holes (first copy wins)
  // and compare what overlaps.
  auto it = queue_.upper_bound(off);
  if (it != queue_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.bytes.size() > off) it = prev;
  }
  uint64_t pos = off;
  std::vector<std::pair<uint64_t, std::span<const uint8_t>>> holes;
  while (pos < end) {
    if (it == queue_.end() || it->first >= end) {
      holes.emplace_back(pos, data.subspan(pos - off, end - pos));
      break;
    }
    if (it->first > pos) {
      holes.emplace_back(pos, data.subspan(pos - off, it->first - pos));
      pos = it->first;
    }
    uint64_t e_end = it->first + it->second.bytes.size();
    uint64_t ov_end = std::min(end, e_end);
    if (ov_end > pos) {
      if (std::memcmp(it->second.bytes.data() + (pos - it->first), data.data() + (pos - off), ov_end - pos) != 0)
        sink.overlap_conflict(pos);
      pos = ov_end;
    }
    ++it;
  }
  for (auto& [hoff, bytes] : holes) {
    if (hoff == next_off_) {
      // It fills the hole at the front: delivered at once, never queued, so no cap applies
      // (queueing it at a full queue forced a gap over these very bytes).
      remember(hoff, bytes);
      sink.data(bytes, hoff);
      next_off_ += bytes.size();
      drain(sink);
      continue;
    }
    // Caps: per direction and global. Hitting one gives up on the oldest hole.
    const size_t cost = bytes.size() + kOverhead;
    while (!queue_.empty() &&
           (queued_bytes_ + bytes.size() > limits_->max_queued_bytes ||
            queue_.size() + 1 > limits_->max_queued_segments || mem_->used + cost > mem_->cap)) {
      if (mem_->used + cost > mem_->cap) ++mem_->memcap_hits; else ++mem_->direction_cap_hits;
      ++limit_hits_;
      force_gap(queue_.begin()->first, sink);
      drain(sink);
      if (hoff < next_off_) break;
    }
    if (hoff < next_off_) {
      // The forced gap moved past this piece; deliver what is still ahead.
      uint64_t hend = hoff + bytes.size();
      if (hend <= next_off_) continue;
      bytes = bytes.subspan(next_off_ - hoff);
      hoff = next_off_;
    }
    if (hoff == next_off_ && queue_.empty()) {
      remember(hoff, bytes);
      sink.data(bytes, hoff);
      next_off_ += bytes.size();
      continue;
    }
    if (bytes.size() > limits_->max_queued_bytes || mem_->used + bytes.size() + kOverhead > mem_->cap) {
      // Cannot hold even this piece: skip to it.
      if (mem_->used + bytes.size() + kOverhead > mem_->cap) ++mem_->memcap_hits; else ++mem_->direction_cap_hits;
      ++limit_hits_;
      force_gap(hoff, sink);
      drain(sink);
      if (hoff == next_off_) { remember(hoff, bytes); sink.data(bytes, hoff); next_off_ += bytes.size(); }
      continue;
    }
    queue_.emplace(hoff, Queued{std::vector<uint8_t>(bytes.begin(), bytes.end()), now_usec_});
    queued_bytes_ += bytes.size();
    mem_->used += bytes.size() + kOverhead;
    mem_->peak = std::max(mem_->peak, mem_->used);
  }
}

void TcpReassembler::drain(StreamSink& sink) {
  while (!queue_.empty()) {
    auto it = queue_.begin();
    if (it->first > next_off_) break;
    uint64_t e_end = it->first + it->second.bytes.size();
    if (e_end > next_off_) {
      size_t skip = static_cast<size_t>(next_off_ - it->first);
      const auto bytes = std::span<const uint8_t>(it->second.bytes).subspan(skip);
      remember(next_off_, bytes);
      draining_usec_ = it->second.usec;
      sink.data(bytes, next_off_);
      draining_usec_ = 0;
      next_off_ = e_end;
    }
    release(it->second.bytes.size());
    queue_.erase(it);
  }
  if (acked_off_ <= next_off_) ack_wait_ = 0;
}

void TcpReassembler::force_gap(uint64_t upto, StreamSink& sink) {
  if (upto <= next_off_) return;
  uint64_t len = upto - next_off_;
  ++gaps_;
  gap_bytes_ += len;
  sink.gap(next_off_, len);
  next_off_ = upto;
}

uint64_t TcpReassembler::surely_sent() const {
  // With no FIN seen, an ACK of just one byte past everything seen of the sender is taken for
  // the ACK of a FIN the capture lost, not for a lost byte of data: both take one sequence
  // number, and every later packet of the sender carries the same one after them. A FIN seen
  // later decides it (at that byte: a FIN; one further: data), and so does data beyond it.
  if (fin_off_ < 0 && queue_.empty() && acked_off_ == next_off_ + 1) return next_off_;
  return acked_off_;
}

void TcpReassembler::tick(StreamSink& sink) {
  if (surely_sent() <= next_off_) { ack_wait_ = 0; return; }
  if (++ack_wait_ < limits_->ack_gap_packets) return;
  // The receiver has had these bytes for a while and we never saw them: capture loss.
  uint64_t upto = acked_off_;
  if (!queue_.empty()) upto = std::min(upto, queue_.begin()->first);
  force_gap(upto, sink);
  drain(sink);
  ack_wait_ = 0;
  reached_fin(sink);
}

void TcpReassembler::flush(StreamSink& sink, uint32_t window) {
  while (!queue_.empty()) {
    force_gap(queue_.begin()->first, sink);
    drain(sink);
  }
  if (!base_set_) return;
  // The ACK of a FIN covers its phantom byte, also when the ACK came before the FIN.
  uint64_t tail = surely_sent();
  if (fin_off_ >= 0) {
    uint64_t fin = static_cast<uint64_t>(fin_off_);
    tail = std::min(tail, fin);
    if (fin > tail && fin - std::max(next_off_, acked_off_) <= window) tail = fin;
  }
  force_gap(tail, sink);
}

}  // namespace medmon
