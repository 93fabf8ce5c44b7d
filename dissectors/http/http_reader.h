#pragma once
// HTTP/1.x message reader for the dissectors that find their protocol inside HTTP (HL7 over
// HTTP, SDC's SOAP over HTTP): finds each request or response of one direction and hands over
// its start line, Content-Type and decoded body (Content-Length, chunked, or until the close).
// Nothing else of HTTP is kept. Heads, chunk lines and bodies are capped.
//
// What differs between the protocols is chosen in Options: how strictly the syntax is read, who
// holds the bytes not yet used (the stream feeder, or the reader), what a response without a
// length is, and what follows a loss. What a body is (its content type, its text) is the
// caller's to judge.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "dissectors/api/dissector.h"

namespace medmon::http {

enum class Syntax : uint8_t {
  // CRLF line ends only; a request line is METHOD (upper-case letters) SP target SP HTTP/1.x,
  // a status line HTTP/1.x SP 3 digits [SP reason]; no blank lines between messages; a chunk's
  // data is followed by 2 bytes; a chunk size is its leading hex digits.
  strict,
  // LF or CRLF line ends; blank lines between messages are passed over; a start line needs only
  // a method of 1..16 bytes and " HTTP/", or "HTTP/" and a number after the first space; a
  // chunk's data is followed by a line; a chunk size is all hex (at most 16 digits, then ';').
  lenient,
};

enum class Holding : uint8_t {
  // The stream feeder holds the bytes read() does not use and gives them again (Consumed): a
  // Content-Length message and a chunk are used whole, a body over the cap is skipped.
  caller,
  // Bodies are copied as they come and everything is used but an unfinished head, chunk line
  // or last chunk (BufferedReader keeps those).
  reader,
};

// A budget of body bytes that readers sharing it may hold at once (a monitor with many
// connections, each in the middle of a body). Safe to share between threads.
struct BodyMemory {
  explicit BodyMemory(size_t cap) : cap(cap) {}
  const size_t cap;
  std::atomic<size_t> used{0};
};

struct Options {
  Syntax syntax = Syntax::lenient;
  Holding holding = Holding::reader;
  // A response with neither Content-Length nor chunks (and not bodiless by its status): its
  // body runs until the end of the stream, or it is an error (Anomaly::no_length, reading stops).
  bool body_until_close = true;
  // After lost bytes (gap()): reading stops for good; or, with resync, the message is dropped
  // and the next start line is looked for at a line start or right after `resync_after`. A
  // chunked body over the cap is then dropped the same way (without resync: read through and
  // dropped).
  bool resync = false;
  char resync_after = 0;
  size_t max_head = 16u << 10;  // a head up to and with its blank line; also a last chunk with its trailers,
                                // and a start line cut by the end of the bytes when resyncing
  size_t max_line = 1024;       // a chunk size line (and a lenient chunk's data end)
  size_t max_body = 4u << 20;
  // With a budget, the bytes of the bodies this reader holds count against it: a body that would
  // pass it is dropped (Anomaly::body_memory_budget), as one over max_body is.
  BodyMemory* memory = nullptr;
};

enum class Anomaly : uint8_t {
  bad_start_line,    // neither a request nor a status line: reading stops
  header_too_large,  // a head over max_head: reading stops
  body_too_large,    // a body over max_body: dropped
  bad_chunk,         // a chunk size line that cannot be read or is too long: reading stops
  no_length,         // a response without a length, when body_until_close is off: reading stops
  truncated_body,    // finish() within a message
  body_memory_budget,  // holding the body would pass the budget shared by readers: dropped
};

struct Message {
  bool request = false;
  std::string_view method, target;  // requests
  int status = 0;                   // responses
  std::string_view content_type;    // as sent (first 128 bytes), may be empty
  // The codings applied to the body, in the order they were applied: Content-Encoding, then the
  // transfer codings but chunked (first 128 bytes, comma-separated as sent); empty for none.
  std::string_view codings;
  std::string_view body;            // decoded from its chunks; the codings above still apply
  uint64_t offset = 0;              // stream offset of the start line
  bool complete = true;             // false: cut by finish()
};

// The size on a chunk size line as Syntax::strict reads it: its leading hex digits (an extension
// after them is let be), read until the size passes `cap`. False when the line has no digits.
bool chunk_size(std::string_view line, uint64_t cap, uint64_t& n);

// The length of the HTTP message at the front of `bytes` (blank lines before it included, as the
// lenient syntax passes them over) when all of it is there, read as `syntax` reads it: its head,
// then a body of Content-Length bytes, its chunks up to the last one's trailers, or none (a
// request without a length; a 1xx, 204 or 304 response). 0 when the bytes do not begin with a
// start line (a method of capital letters, or HTTP/), or the message does not end inside them
// (a response whose body runs to the close, a longer one, a head over the cap). Costs a look at
// the first bytes unless they begin a head, then the head's bytes and the chunk size lines.
// With `beyond`, a message whose head is there and whose Content-Length body goes on past the
// bytes gives its length too (more than the bytes' size).
// With a `cursor` (DissectorInfo::later_next), also a chunked body that goes on past the bytes:
// the cursor is set to where its chunks were left, and the length is where reading goes on (past
// the bytes, behind a chunk's data that goes on; or their size, a size line or the trailers cut
// there); given back active, the bytes go on with that body and the length is that of its rest.
// A response whose body runs to the close then gives kLaterToClose, and bytes that end inside a
// head (a start line, or what may still begin one, and no blank line yet, under max_head in all)
// kLaterHeadCut: measured again from its start with the bytes that follow.
size_t message_length(std::span<const uint8_t> bytes, Syntax syntax, bool beyond = false,
                      LaterCursor* cursor = nullptr);

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void message(const Message& m) = 0;
  // `message`: offset of the message's start line; `at`: where the fault was found (the chunk
  // line for bad_chunk, the chunk's size line for body_too_large of a chunked body; else
  // `message`).
  virtual void anomaly(Anomaly a, uint64_t message, uint64_t at) = 0;
};

class Reader {
 public:
  explicit Reader(const Options& o) : opt_(o) {}
  ~Reader() { drop_body(); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reads the messages in `data`, the bytes not used yet, the first at stream offset `offset`.
  // Returns what was used; with Holding::caller, `need` and `skip` are for the stream feeder,
  // and give_up once reading stopped.
  Consumed read(std::span<const uint8_t> data, uint64_t offset, Handler& h);
  // Bytes were lost (any not used are dropped by the caller): the message being read is dropped;
  // reading stops or resyncs.
  void gap();
  // The end of the stream: a body running to the close is complete; a message begun is
  // reported truncated_body and given incomplete with what of its body the reader holds.
  // `unused`: whether bytes given to read() were left unused (an unfinished head).
  void finish(bool unused, uint64_t unused_offset, Handler& h);
  bool stopped() const { return state_ == State::stopped; }
  void set_max_body(size_t n) { opt_.max_body = n; }
  // See message_length (a fresh reader's options give the syntax and the caps).
  size_t measure(std::string_view v, bool beyond = false, LaterCursor* cursor = nullptr);

 private:
  enum class State : uint8_t { head, body, chunk_size, chunk_data, chunk_end, until_close, resync, stopped };
  using Step = std::optional<Consumed>;  // a value: return it from read()
  Step head(std::string_view v, size_t& used, uint64_t offset, Handler& h);
  Step chunk_size(std::string_view v, size_t& used, uint64_t offset, Handler& h);
  Step last_chunk(std::string_view v, size_t& used, size_t le, uint64_t at, Handler& h);
  Step chunk_end(std::string_view v, size_t& used, uint64_t offset, Handler& h);
  // Where the last chunk ends in `rest` (its size line ends at le): after the blank line that
  // follows its trailers; npos when that is not in `rest`.
  size_t last_chunk_end(std::string_view rest, size_t le) const;
  // A chunk size line as the syntax reads it.
  bool chunk_line(std::string_view line, uint64_t& n) const;
  // Chunks measured from where `c` left them (a size line at the first call): where the body
  // ends in `r` (c cleared), where reading goes on (c active: past `r`, behind a chunk's data;
  // r.size(), a line cut there), or 0 when the chunks cannot be read so (c cleared).
  size_t measure_chunks(std::string_view r, LaterCursor& c) const;
  Step resync(std::string_view v, size_t& used);
  // An unfinished line (no line end yet) that may still be a start line as start_line() reads it.
  bool may_begin_start_line(std::string_view s) const;
  size_t head_end(std::string_view rest);
  bool start_line(std::string_view line);
  void headers(std::string_view head, size_t from, bool& have_length, uint64_t& length, bool& chunked);
  bool append_body(std::string_view piece, uint64_t at, Handler& h);
  // Takes n more body bytes from the budget; false when they do not fit.
  bool charge(size_t n);
  // Empties the body, gives its bytes back to the budget, and frees a large buffer.
  void drop_body();
  // n more bytes would take the body over the cap (which the caller may have lowered meanwhile).
  bool too_long(uint64_t n) const { return body_.size() > opt_.max_body || n > opt_.max_body - body_.size(); }
  void emit(Handler& h, std::string_view body, bool complete);
  Consumed stop(Anomaly a, uint64_t at, size_t used, Handler& h);

  Options opt_;
  State state_ = State::head;
  size_t scanned_ = 0;  // bytes of an unfinished head already searched for its end
  bool resync_mid_line_ = false;  // resyncing: the next byte given neither begins a line nor follows resync_after
  // The message being read.
  uint64_t msg_off_ = 0, chunk_off_ = 0, remaining_ = 0;
  bool request_ = false, overflow_ = false;
  int status_ = 0;
  std::string method_, target_, content_type_, codings_, body_;
  size_t charged_ = 0;  // bytes of body_ taken from opt_.memory
};

// A Holding::reader Reader that keeps what read() leaves unused (an unfinished head, chunk line
// or trailers: at most max_head or max_line bytes). Offsets count from the first byte fed.
class BufferedReader {
 public:
  explicit BufferedReader(const Options& o) : r_(own(o)) {}
  void feed(std::span<const uint8_t> data, Handler& h);
  void gap(uint64_t n);
  void finish(Handler& h);
  bool stopped() const { return r_.stopped(); }

 private:
  static Options own(Options o) {
    o.holding = Holding::reader;
    return o;
  }
  Reader r_;
  std::string pending_;
  uint64_t off_ = 0;  // stream offset of pending_'s first byte
};

// Who sends a stream whose first bytes are these: a status line (HTTP/1.x and a 3-digit code)
// the server, a request line (an upper-case method, a target, HTTP/1.x) the client.
StreamSender sender(std::span<const uint8_t> first_bytes);

}  // namespace medmon::http
