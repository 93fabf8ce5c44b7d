#include "hl7cpp/mllp.h"

#include <cstring>

namespace hl7cpp {

const char* to_string(MllpAnomaly a) {
  switch (a) {
    case MllpAnomaly::missing_start_block: return "missing_start_block";
    case MllpAnomaly::missing_end_block: return "missing_end_block";
    case MllpAnomaly::unterminated_frame: return "unterminated_frame";
    case MllpAnomaly::data_outside_frame: return "data_outside_frame";
    case MllpAnomaly::frame_too_large: return "frame_too_large";
    case MllpAnomaly::bad_end_block: return "bad_end_block";
    case MllpAnomaly::frame_memory_budget: return "frame_memory_budget";
  }
  return "?";
}

namespace {
bool is_ws(uint8_t b) { return b == ' ' || b == '\r' || b == '\n' || b == '\t' || b == 0 || b == '\f'; }
bool header_id(const char* h) {
  return (h[0] == 'M' && h[1] == 'S' && h[2] == 'H') || (h[0] == 'F' && h[1] == 'H' && h[2] == 'S') ||
         (h[0] == 'B' && h[1] == 'H' && h[2] == 'S');
}
// First position of a or b in [p, end), or end.
const uint8_t* find2(const uint8_t* p, const uint8_t* end, uint8_t a, uint8_t b) {
  size_t n = static_cast<size_t>(end - p);
  auto* x = static_cast<const uint8_t*>(std::memchr(p, a, n));
  auto* y = static_cast<const uint8_t*>(std::memchr(p, b, x ? static_cast<size_t>(x - p) : n));
  if (y) return y;
  return x ? x : end;
}
}  // namespace

void MllpFramer::recharge(size_t n) {
  if (n > charged_) memory_->used += n - charged_;
  else memory_->used -= charged_ - n;
  charged_ = n;
}

// The buffer grown to `grown` bytes would pass the shared budget.
bool MllpFramer::over_budget(size_t grown) const {
  return memory_ && grown > charged_ && memory_->used.load(std::memory_order_relaxed) + (grown - charged_) > memory_->cap;
}

void MllpFramer::reset() {
  state_ = State::idle;
  buf_.clear();
  settle(0);
  clear_junk();
  resyncing_ = false;
  bare_ = false;
}

// Forgets the bytes seen between frames, and the bare-message header they may have begun.
void MllpFramer::clear_junk() {
  junk_len_ = 0;
  junk_text_ = false;
  hdr_len_ = 0;
  hdr_ok_ = true;
  hdr_after_text_ = false;
}

void MllpFramer::flush_junk(MllpHandler& h) {
  if (junk_len_ && junk_text_ && !resyncing_) h.anomaly(MllpAnomaly::data_outside_frame, junk_off_);
  clear_junk();
}

void MllpFramer::deliver(std::string_view payload, bool terminated, MllpHandler& h) {
  MllpFrame f;
  f.payload = payload;
  f.offset = frame_off_;
  f.terminated = terminated;
  f.start_block = frame_sb_;
  h.frame(f);
}

void MllpFramer::open_frame(uint64_t off) {
  state_ = State::in_frame;
  frame_off_ = off;
  frame_sb_ = true;
  bare_ = false;
  buf_.clear();
}

// A bare message whose header `id` (MSH, FHS or BHS) starts at stream offset `off`.
void MllpFramer::open_bare_frame(uint64_t off, const char* id) {
  open_frame(off);
  frame_sb_ = false;
  bare_ = true;
  bare_batch_ = id[0] == 'M' ? 0 : id[0];
  seg_start_ = false;
  seg_len_ = 0;
}

void MllpFramer::feed(std::span<const uint8_t> data, MllpHandler& h) {
  const uint8_t* const base = data.data();
  const uint8_t* const end = base + data.size();
  const uint8_t* p = base;
  const uint8_t* begin = nullptr;  // first payload byte of a frame that started in this chunk

  while (p < end) {
    switch (state_) {
      case State::idle: {
        if (*p != kStartBlock) {
          Cursor c = skip_outside_frame(p, base, end, h);
          p = c.p;
          begin = c.begin;
          break;
        }
        flush_junk(h);
        resyncing_ = false;
        open_frame(offset_at(base, p));
        begin = ++p;
        break;
      }
      case State::in_frame: {
        if (!begin) begin = p;  // frame continues from an earlier chunk
        const uint8_t* q = frame_sb_ ? find2(p, end, kEndBlock, kStartBlock) : find_bare_stop(p, end);
        if (q == end) {
          carry_over(begin, end, h);
          begin = nullptr;
          p = end;
          break;
        }
        if (*q != kEndBlock && *q != kStartBlock) {  // the next bare message's header ends at q
          begin = next_bare_message(begin, q, base, h);
          p = q + 1;
          break;
        }
        // A frame wholly inside this chunk is handed over in place. A bare message has no end
        // block: a start block after it ends it whole.
        size_t len = buf_.size() + static_cast<size_t>(q - begin);
        const bool terminated = *q == kEndBlock || !frame_sb_;
        if (buf_.empty() && len <= max_frame_) {
          deliver(std::string_view(reinterpret_cast<const char*>(begin), static_cast<size_t>(q - begin)),
                  terminated, h);
        } else {
          close_carried_or_oversize_frame(begin, q, len, terminated, h);
        }
        if (*q == kEndBlock) {
          state_ = State::after_end;
          begin = nullptr;
          p = q + 1;
        } else {
          missing_end_block(q, base, len, h);
          begin = p = q + 1;
        }
        break;
      }
      case State::after_end:
        if (*p == kCarriageReturn) {
          ++p;
        } else {
          h.anomaly(MllpAnomaly::bad_end_block, offset_at(base, p));
        }
        state_ = State::idle;
        break;
      case State::discard: {
        Cursor c = skip_oversize_frame(p, base, end, h);
        p = c.p;
        begin = c.begin;
        break;
      }
    }
  }
  // A bare message whose first bytes closed this chunk: keep them for the next one.
  if (state_ == State::in_frame && begin && begin < end)
    buf_.append(reinterpret_cast<const char*>(begin), static_cast<size_t>(end - begin));
  pos_ += data.size();
  settle(buf_.size());
}

// Bytes between frames, up to the next start block. Whitespace is let be; a run holding anything
// else is reported once (flush_junk). A line of the run (its start, or after CR or LF) that
// begins with MSH, FHS or BHS is a message sent without its start block, framed from its first
// byte. After a gap only a stream that carried bare messages looks for them (in an MLLP stream
// they are the tail of the lost frame).
MllpFramer::Cursor MllpFramer::skip_outside_frame(const uint8_t* p, const uint8_t* base, const uint8_t* end,
                                                  MllpHandler& h) {
  for (; p < end && *p != kStartBlock; ++p) {
    uint8_t b = *p;
    if (junk_len_ == 0) junk_off_ = offset_at(base, p);
    ++junk_len_;
    if (b == '\r' || b == '\n') {
      hdr_len_ = 0;
      hdr_ok_ = true;
      continue;
    }
    // A UTF-8 byte order mark before a header is let be, as whitespace is.
    if (hdr_len_ == 0 && hdr_ok_ && (b == 0xEF || b == 0xBB || b == 0xBF)) continue;
    if (is_ws(b)) {
      if (hdr_len_ > 0) hdr_ok_ = false;
      continue;
    }
    if (!hdr_ok_ || (resyncing_ && !bare_)) {
      junk_text_ = true;
      continue;
    }
    if (hdr_len_ == 0) {
      hdr_off_ = offset_at(base, p);
      hdr_after_text_ = junk_text_;
    }
    junk_text_ = true;
    hdr_[hdr_len_++] = static_cast<char>(b);
    if (hdr_len_ < 3) continue;
    if (header_id(hdr_)) return open_bare_message(p, base, h);
    hdr_ok_ = false;
  }
  return {p, nullptr};
}

// A bare message whose header ends at `last`: its frame starts at the header's first byte, which
// may lie in an earlier chunk (then the header is all of it that is kept). Text before it on the
// run is reported; the missing start block once for a run of bare messages.
MllpFramer::Cursor MllpFramer::open_bare_message(const uint8_t* last, const uint8_t* base, MllpHandler& h) {
  if (hdr_after_text_ && !resyncing_) h.anomaly(MllpAnomaly::data_outside_frame, junk_off_);
  if (!bare_) h.anomaly(MllpAnomaly::missing_start_block, hdr_off_);
  clear_junk();
  resyncing_ = false;
  open_bare_frame(hdr_off_, hdr_);
  if (hdr_off_ >= pos_) return {last + 1, base + (hdr_off_ - pos_)};
  buf_.assign(hdr_, 3);
  return {last + 1, last + 1};
}

// In a bare frame: the first 0x0B or 0x1C in [p, end), or the last byte of a header that begins
// the next message (MSH, FHS or BHS at the start of a segment; within a batch or file only the
// next batch or file, until its trailer BTS or FTS), or end.
const uint8_t* MllpFramer::find_bare_stop(const uint8_t* p, const uint8_t* end) {
  for (; p < end; ++p) {
    uint8_t b = *p;
    if (b == kStartBlock || b == kEndBlock) return p;
    if (b == '\r' || b == '\n') {
      seg_start_ = true;
      seg_len_ = 0;
      continue;
    }
    if (!seg_start_) continue;
    seg_[seg_len_++] = static_cast<char>(b);
    if (seg_len_ < 3) continue;
    seg_start_ = false;
    std::string_view id(seg_, 3);
    bool file = id == "FHS", batch = id == "BHS";
    if (bare_batch_ == 'F') {
      if (id == "FTS") bare_batch_ = 0;
      if (file) return p;
    } else if (bare_batch_ == 'B') {
      if (id == "BTS") bare_batch_ = 0;
      if (file || batch) return p;
    } else if (file || batch || id == "MSH") {
      return p;
    }
  }
  return end;
}

// The header whose last byte is `q` begins the next bare message: the frame before it ends at the
// header's first byte, which may lie in the previous chunk (then the header's first bytes close
// buf_). Returns the first byte of the new frame in this chunk.
const uint8_t* MllpFramer::next_bare_message(const uint8_t* begin, const uint8_t* q, const uint8_t* base,
                                             MllpHandler& h) {
  const uint64_t start = offset_at(base, q) - 2;
  const bool deliver_old = state_ == State::in_frame;  // not when skipping an oversize frame
  const char id[3] = {seg_[0], seg_[1], seg_[2]};
  if (start >= pos_) {
    const uint8_t* s = base + (start - pos_);
    if (deliver_old) {
      size_t len = buf_.size() + static_cast<size_t>(s - begin);
      if (buf_.empty() && len <= max_frame_)
        deliver(std::string_view(reinterpret_cast<const char*>(begin), static_cast<size_t>(s - begin)), true, h);
      else
        close_carried_or_oversize_frame(begin, s, len, true, h);
    }
    open_bare_frame(start, id);
    return s;
  }
  const size_t kept = static_cast<size_t>(pos_ - start);  // header bytes at the end of buf_
  if (deliver_old && buf_.size() >= kept) deliver(std::string_view(buf_).substr(0, buf_.size() - kept), true, h);
  open_bare_frame(start, id);
  buf_.assign(id, kept);
  return base;
}

// The open frame goes on past this chunk: its bytes so far are kept for the next one, unless that
// makes it larger than max_frame (then it is reported and skipped up to its end).
void MllpFramer::carry_over(const uint8_t* begin, const uint8_t* end, MllpHandler& h) {
  const size_t grown = buf_.size() + static_cast<size_t>(end - begin);
  const bool too_large = grown > max_frame_;
  if (too_large || over_budget(grown)) {
    h.anomaly(too_large ? MllpAnomaly::frame_too_large : MllpAnomaly::frame_memory_budget, frame_off_);
    buf_.clear();
    buf_.shrink_to_fit();
    state_ = State::discard;
  } else {
    buf_.append(reinterpret_cast<const char*>(begin), static_cast<size_t>(end - begin));
  }
}

// A frame that ends at `q` (end or start block) of `len` bytes, which either began in an earlier
// chunk (delivered from the buffer that assembled it) or is larger than max_frame (reported only).
void MllpFramer::close_carried_or_oversize_frame(const uint8_t* begin, const uint8_t* q, size_t len,
                                                 bool terminated, MllpHandler& h) {
  if (len > max_frame_) {
    h.anomaly(MllpAnomaly::frame_too_large, frame_off_);
    buf_.clear();
    return;
  }
  buf_.append(reinterpret_cast<const char*>(begin), static_cast<size_t>(q - begin));
  deliver(buf_, terminated, h);
  buf_.clear();
}

// A start block at `q` inside a frame of `len` bytes: that frame had no end block (not reported
// again when it was already reported as too large, nor for a bare message, which has none), and
// a new one opens.
void MllpFramer::missing_end_block(const uint8_t* q, const uint8_t* base, size_t len, MllpHandler& h) {
  if (len <= max_frame_ && frame_sb_) h.anomaly(MllpAnomaly::missing_end_block, offset_at(base, q));
  open_frame(offset_at(base, q));
}

// Inside a frame over max_frame: skip to its end block, or to a start block that opens the next
// frame, or (a bare message) to the header of the next one.
MllpFramer::Cursor MllpFramer::skip_oversize_frame(const uint8_t* p, const uint8_t* base, const uint8_t* end,
                                                   MllpHandler& h) {
  const uint8_t* q = frame_sb_ ? find2(p, end, kEndBlock, kStartBlock) : find_bare_stop(p, end);
  if (q == end) return {end, nullptr};
  if (*q != kEndBlock && *q != kStartBlock) return {q + 1, next_bare_message(nullptr, q, base, h)};
  if (*q == kEndBlock) {
    state_ = State::after_end;
    return {q + 1, nullptr};
  }
  open_frame(offset_at(base, q));
  return {q + 1, q + 1};
}

void MllpFramer::gap(uint64_t n, MllpHandler& h) {
  if (state_ == State::in_frame) h.anomaly(MllpAnomaly::unterminated_frame, frame_off_);
  if (state_ == State::idle) flush_junk(h);
  buf_.clear();
  state_ = State::idle;
  clear_junk();
  resyncing_ = true;
  pos_ += n;
  settle(0);
}

void MllpFramer::end_bare_message(MllpHandler& h, bool complete) {
  if (frame_sb_ || (state_ != State::in_frame && state_ != State::discard)) return;
  if (state_ == State::in_frame) {
    if (!complete) h.anomaly(MllpAnomaly::unterminated_frame, frame_off_);
    deliver(buf_, complete, h);
  }
  buf_.clear();
  state_ = State::idle;
  clear_junk();
  settle(0);
}

void MllpFramer::finish(MllpHandler& h) {
  switch (state_) {
    case State::idle: flush_junk(h); break;
    case State::in_frame:
      if (!frame_sb_) {  // a bare message ends with its stream
        deliver(buf_, true, h);
        break;
      }
      h.anomaly(MllpAnomaly::unterminated_frame, frame_off_);
      if (!buf_.empty()) deliver(buf_, false, h);
      break;
    case State::after_end: h.anomaly(MllpAnomaly::bad_end_block, pos_); break;
    case State::discard: break;
  }
  buf_.clear();
  state_ = State::idle;
  clear_junk();
  settle(0);
}

}  // namespace hl7cpp
