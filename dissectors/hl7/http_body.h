#pragma once
// Minimal HTTP/1.x message reader for HL7 carried in HTTP: finds each request/response of one
// direction and hands over its start line, Content-Type and decoded body (Content-Length,
// chunked, or until close). Header and body sizes are capped; nothing else of HTTP is kept.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace medmon::hl7 {

struct HttpMessage {
  bool request = false;
  std::string_view method;        // requests
  int status = 0;                 // responses
  std::string_view content_type;  // as sent, may be empty
  std::string_view body;
  uint64_t offset = 0;            // stream offset of the start line
  bool complete = true;           // false: cut by the end of the stream
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void http_message(const HttpMessage& m) = 0;
  // name: "http.bad_start_line", "http.header_too_large", "http.body_too_large",
  // "http.bad_chunk", "http.truncated_body".
  virtual void http_anomaly(std::string_view name, uint64_t offset) = 0;
};

class HttpReader {
 public:
  explicit HttpReader(size_t max_body = 4u << 20, size_t max_header = 16u << 10)
      : max_body_(max_body), max_header_(max_header) {}
  void feed(std::span<const uint8_t> data, HttpHandler& h);
  void gap(uint64_t n);
  void finish(HttpHandler& h);
  bool dead() const { return state_ == State::dead; }

 private:
  enum class State : uint8_t { head, body_length, chunk_size, chunk_data, chunk_data_end, trailers, body_close, dead };
  void parse_head(HttpHandler& h);
  void emit(HttpHandler& h, bool complete);
  void append_body(const uint8_t* p, size_t n, HttpHandler& h);

  size_t max_body_, max_header_;
  State state_ = State::head;
  uint64_t pos_ = 0, msg_off_ = 0;
  std::string head_, body_, line_;
  uint64_t remaining_ = 0;
  bool request_ = false, body_overflow_ = false;
  std::string method_, content_type_;
  int status_ = 0;
};

}  // namespace medmon::hl7
