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

void MllpFramer::reset() {
  state_ = State::idle;
  buf_.clear();
  junk_len_ = 0;
  junk_text_ = false;
  hdr_len_ = 0;
  hdr_ok_ = true;
  resyncing_ = false;
}

void MllpFramer::flush_junk(MllpHandler& h) {
  if (junk_len_ && junk_text_ && !resyncing_) h.anomaly(MllpAnomaly::data_outside_frame, junk_off_);
  junk_len_ = 0;
  junk_text_ = false;
  hdr_len_ = 0;
  hdr_ok_ = true;
}

void MllpFramer::deliver(std::string_view payload, bool terminated, MllpHandler& h) {
  MllpFrame f;
  f.payload = payload;
  f.offset = frame_off_;
  f.terminated = terminated;
  f.start_block = frame_sb_;
  h.frame(f);
}

void MllpFramer::feed(std::span<const uint8_t> data, MllpHandler& h) {
  const uint8_t* const base = data.data();
  const uint8_t* const end = base + data.size();
  const uint8_t* p = base;
  const uint8_t* begin = nullptr;  // first payload byte of a frame that started in this chunk
  auto off_of = [&](const uint8_t* q) { return pos_ + static_cast<uint64_t>(q - base); };

  while (p < end) {
    switch (state_) {
      case State::idle: {
        uint8_t b = *p;
        if (b == kStartBlock) {
          flush_junk(h);
          resyncing_ = false;
          state_ = State::in_frame;
          frame_off_ = off_of(p);
          frame_sb_ = true;
          buf_.clear();
          begin = ++p;
          break;
        }
        if (junk_len_ == 0) junk_off_ = off_of(p);
        ++junk_len_;
        if (is_ws(b)) {
          if (hdr_len_ > 0) hdr_ok_ = false;
          ++p;
          break;
        }
        junk_text_ = true;
        if (hdr_ok_ && !resyncing_) {
          if (hdr_len_ == 0) hdr_off_ = off_of(p);
          hdr_[hdr_len_++] = static_cast<char>(b);
          if (hdr_len_ == 3) {
            if (header_id(hdr_)) {
              // A bare message: frame it from its first byte.
              h.anomaly(MllpAnomaly::missing_start_block, hdr_off_);
              junk_len_ = 0;
              junk_text_ = false;
              hdr_len_ = 0;
              state_ = State::in_frame;
              frame_off_ = hdr_off_;
              frame_sb_ = false;
              buf_.clear();
              if (hdr_off_ >= pos_) {
                begin = base + (hdr_off_ - pos_);
              } else {
                buf_.assign(hdr_, 3);
                begin = p + 1;
              }
              ++p;
              break;
            }
            hdr_ok_ = false;
          }
        }
        ++p;
        break;
      }
      case State::in_frame: {
        if (!begin) begin = p;  // frame continues from an earlier chunk
        const uint8_t* q = find2(p, end, kEndBlock, kStartBlock);
        if (q == end) {
          if (buf_.size() + static_cast<size_t>(end - begin) > max_frame_) {
            h.anomaly(MllpAnomaly::frame_too_large, frame_off_);
            buf_.clear();
            buf_.shrink_to_fit();
            state_ = State::discard;
          } else {
            buf_.append(reinterpret_cast<const char*>(begin), static_cast<size_t>(end - begin));
          }
          begin = nullptr;
          p = end;
          break;
        }
        std::string_view payload;
        size_t len = buf_.size() + static_cast<size_t>(q - begin);
        if (len > max_frame_) {
          h.anomaly(MllpAnomaly::frame_too_large, frame_off_);
          buf_.clear();
        } else if (buf_.empty()) {
          payload = std::string_view(reinterpret_cast<const char*>(begin), static_cast<size_t>(q - begin));
          deliver(payload, *q == kEndBlock, h);
        } else {
          buf_.append(reinterpret_cast<const char*>(begin), static_cast<size_t>(q - begin));
          deliver(buf_, *q == kEndBlock, h);
          buf_.clear();
        }
        if (*q == kEndBlock) {
          state_ = State::after_end;
          begin = nullptr;
          p = q + 1;
        } else {
          if (len <= max_frame_) h.anomaly(MllpAnomaly::missing_end_block, off_of(q));
          frame_off_ = off_of(q);
          frame_sb_ = true;
          begin = p = q + 1;
        }
        break;
      }
      case State::after_end:
        if (*p == kCarriageReturn) {
          ++p;
        } else {
          h.anomaly(MllpAnomaly::bad_end_block, off_of(p));
        }
        state_ = State::idle;
        break;
      case State::discard: {
        const uint8_t* q = find2(p, end, kEndBlock, kStartBlock);
        if (q == end) { p = end; break; }
        if (*q == kEndBlock) {
          state_ = State::after_end;
          p = q + 1;
        } else {
          state_ = State::in_frame;
          frame_off_ = off_of(q);
          frame_sb_ = true;
          buf_.clear();
          begin = p = q + 1;
        }
        break;
      }
    }
  }
  // A bare message whose first bytes closed this chunk: keep them for the next one.
  if (state_ == State::in_frame && begin && begin < end)
    buf_.append(reinterpret_cast<const char*>(begin), static_cast<size_t>(end - begin));
  pos_ += data.size();
}

void MllpFramer::gap(uint64_t n, MllpHandler& h) {
  if (state_ == State::in_frame) h.anomaly(MllpAnomaly::unterminated_frame, frame_off_);
  if (state_ == State::idle) flush_junk(h);
  buf_.clear();
  state_ = State::idle;
  junk_len_ = 0;
  junk_text_ = false;
  hdr_len_ = 0;
  hdr_ok_ = true;
  resyncing_ = true;
  pos_ += n;
}

void MllpFramer::finish(MllpHandler& h) {
  switch (state_) {
    case State::idle: flush_junk(h); break;
    case State::in_frame:
      h.anomaly(MllpAnomaly::unterminated_frame, frame_off_);
      if (!buf_.empty()) deliver(buf_, false, h);
      break;
    case State::after_end: h.anomaly(MllpAnomaly::bad_end_block, pos_); break;
    case State::discard: break;
  }
  buf_.clear();
  state_ = State::idle;
  junk_len_ = 0;
  junk_text_ = false;
  hdr_len_ = 0;
  hdr_ok_ = true;
}

}  // namespace hl7cpp
