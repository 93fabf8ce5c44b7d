#pragma once
// MLLP framing (0x0B <message> 0x1C 0x0D) over a byte stream. Feed the stream in chunks of any
// size: the frames and anomalies reported are the same for every way of splitting it. A frame
// that arrives whole inside one chunk is handed over as a view into that chunk (no copy); only
// frames split across chunks are assembled in an internal buffer bounded by max_frame.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace hl7cpp {

enum class MllpAnomaly : uint8_t {
  missing_start_block,   // a message (MSH/FHS/BHS) began without 0x0B; framed anyway
  missing_end_block,     // a new 0x0B arrived inside a frame: the frame before it had no end
  unterminated_frame,    // the stream ended (or lost bytes) inside a frame
  data_outside_frame,    // non-whitespace bytes between frames
  frame_too_large,       // a frame exceeded max_frame; skipped up to its end block
  bad_end_block,         // 0x1C not followed by 0x0D
  frame_memory_budget,   // assembling the frame would pass the budget shared by framers; skipped
};

// A budget of bytes that framers sharing it may hold for frames split across chunks (a monitor
// with many connections, each with an open frame). Safe to share between threads.
struct MllpMemory {
  explicit MllpMemory(size_t cap) : cap(cap) {}
  const size_t cap;
  std::atomic<size_t> used{0};
};
const char* to_string(MllpAnomaly a);

struct MllpFrame {
  std::string_view payload;  // the bytes between start and end block
  uint64_t offset = 0;       // stream offset of the start block (or of the first byte if none)
  bool terminated = true;    // ended with 0x1C (false: cut by a new start block or stream end); a bare
                             // message is complete when the next message, the peer's reply or the
                             // stream end closes it
  bool start_block = true;   // began with 0x0B (false: a bare message, see MllpFramer)
};

class MllpHandler {
 public:
  virtual ~MllpHandler() = default;
  virtual void frame(const MllpFrame& f) = 0;
  virtual void anomaly(MllpAnomaly a, uint64_t offset) = 0;
};

// A message sent without 0x0B (bare HL7 over TCP) has no end either: it ends where the next
// segment starting with MSH, FHS or BHS begins (after CR or LF; inside a batch or file only at
// the next batch or file, or after its trailer), at a 0x0B or 0x1C, when the caller says the peer
// answered (end_bare_message), or at the end of the stream. Bare detection also resumes at such a
// segment after bytes outside frames, and after a gap once the stream has carried bare messages.
class MllpFramer {
 public:
  static constexpr uint8_t kStartBlock = 0x0B, kEndBlock = 0x1C, kCarriageReturn = 0x0D;
  // With `memory`, the bytes of frames assembled across chunks count against that budget: a
  // frame that would pass it is reported (frame_memory_budget) and skipped as one over
  // max_frame is.
  explicit MllpFramer(size_t max_frame = 4u << 20, MllpMemory* memory = nullptr)
      : max_frame_(max_frame), memory_(memory) {}
  ~MllpFramer() { settle(0); }
  MllpFramer(const MllpFramer&) = delete;
  MllpFramer& operator=(const MllpFramer&) = delete;

  void feed(std::span<const uint8_t> data, MllpHandler& h);
  void feed(std::string_view data, MllpHandler& h) {
    feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()), h);
  }
  // `n` bytes of the stream were lost: the frame in progress is dropped and framing resumes at
  // the next start block (bytes before it are the tail of a lost frame, not reported).
  void gap(uint64_t n, MllpHandler& h);
  // The stream is read from here: `n` bytes before its first message were not framed (a stream
  // picked up mid-way, its first bytes the tail of a message). Offsets move past them and
  // framing starts as at a stream's start, bare messages included (a gap() would wait for a
  // start block). Only before anything was fed.
  void skip(uint64_t n) { pos_ += n; }
  // End of stream: an open frame is delivered (terminated = false) and reported; an open bare
  // message is delivered as complete.
  void finish(MllpHandler& h);
  // The other direction sent data: a bare sender waits for the reply, so its message in progress
  // is complete and delivered now. Frames with a start block are left alone. With `complete`
  // false (later bytes of this stream wait behind a hole) the message may have been cut there:
  // it is delivered with terminated = false and reported as unterminated, as an MLLP frame open
  // at a gap is.
  void end_bare_message(MllpHandler& h, bool complete = true);

  uint64_t offset() const { return pos_; }
  bool in_frame() const { return state_ == State::in_frame || state_ == State::discard; }
  size_t buffered() const { return buf_.size(); }
  void reset();

 private:
  enum class State : uint8_t { idle, in_frame, after_end, discard };
  // Where feed() goes on in its chunk: the next byte to read, and the first payload byte of a
  // frame opened in this chunk (null when none).
  struct Cursor {
    const uint8_t* p;
    const uint8_t* begin;
  };
  // Stream offset of `q` in the chunk that starts at `base`.
  uint64_t offset_at(const uint8_t* base, const uint8_t* q) const { return pos_ + static_cast<uint64_t>(q - base); }
  void open_frame(uint64_t off);
  // The steps of feed() besides a frame wholly inside one chunk, which feed() handles itself.
  Cursor skip_outside_frame(const uint8_t* p, const uint8_t* base, const uint8_t* end, MllpHandler& h);
  Cursor open_bare_message(const uint8_t* last, const uint8_t* base, MllpHandler& h);
  void open_bare_frame(uint64_t off, const char* id);
  const uint8_t* find_bare_stop(const uint8_t* p, const uint8_t* end);
  const uint8_t* next_bare_message(const uint8_t* begin, const uint8_t* q, const uint8_t* base, MllpHandler& h);
  void carry_over(const uint8_t* begin, const uint8_t* end, MllpHandler& h);
  void close_carried_or_oversize_frame(const uint8_t* begin, const uint8_t* q, size_t len, bool terminated,
                                       MllpHandler& h);
  void missing_end_block(const uint8_t* q, const uint8_t* base, size_t len, MllpHandler& h);
  Cursor skip_oversize_frame(const uint8_t* p, const uint8_t* base, const uint8_t* end, MllpHandler& h);
  void clear_junk();
  void flush_junk(MllpHandler& h);
  void deliver(std::string_view payload, bool terminated, MllpHandler& h);

  // Brings the bytes charged to memory_ to n (the buffer's size once a call is done).
  void settle(size_t n) {
    if (memory_ && n != charged_) recharge(n);
  }
  void recharge(size_t n);
  bool over_budget(size_t grown) const;

  size_t max_frame_;
  MllpMemory* memory_ = nullptr;
  size_t charged_ = 0;
  State state_ = State::idle;
  uint64_t pos_ = 0;             // stream offset of the next byte fed
  uint64_t frame_off_ = 0;
  bool frame_sb_ = true;
  std::string buf_;              // partial frame carried across chunks
  // Bytes seen between frames.
  uint64_t junk_off_ = 0;
  uint64_t junk_len_ = 0;
  bool junk_text_ = false;       // the run holds non-whitespace
  bool resyncing_ = false;       // after a gap: silently skip to the next start block
  char hdr_[3] = {0, 0, 0};      // first non-whitespace bytes of the run, to spot a bare MSH
  uint8_t hdr_len_ = 0;
  bool hdr_ok_ = true;           // the run so far can still be the start of a bare message
  bool hdr_after_text_ = false;  // the run held non-whitespace before that header
  uint64_t hdr_off_ = 0;
  // Bare messages.
  bool bare_ = false;            // the last frame opened had no start block: a bare sender
  char bare_batch_ = 0;          // the open bare frame is a batch ('B') or file ('F') before its trailer
  bool seg_start_ = false;       // in a bare frame: the last byte ended a segment
  uint8_t seg_len_ = 0;          // bytes of the next segment's id seen so far
  char seg_[3] = {0, 0, 0};
};

}  // namespace hl7cpp
