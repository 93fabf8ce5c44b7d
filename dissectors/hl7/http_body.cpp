#include "dissectors/hl7/http_body.h"

#include <cstring>

namespace medmon::hl7 {

namespace {
bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
bool parse_uint(std::string_view s, uint64_t& v, int base) {
  s = trim(s);
  if (s.empty() || s.size() > 16) return false;
  uint64_t n = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return false;
    n = n * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  v = n;
  return true;
}
}  // namespace

void HttpReader::emit(HttpHandler& h, bool complete) {
  HttpMessage m;
  m.request = request_;
  m.method = method_;
  m.status = status_;
  m.content_type = content_type_;
  m.body = body_;
  m.offset = msg_off_;
  m.complete = complete;
  if (!body_overflow_) h.http_message(m);
  body_.clear();
  head_.clear();
  body_overflow_ = false;
  state_ = State::head;
}

void HttpReader::append_body(const uint8_t* p, size_t n, HttpHandler& h) {
  if (body_overflow_) return;
  if (body_.size() + n > max_body_) {
    h.http_anomaly("http.body_too_large", msg_off_);
    body_overflow_ = true;
    body_.clear();
    return;
  }
  body_.append(reinterpret_cast<const char*>(p), n);
}

void HttpReader::parse_head(HttpHandler& h) {
  // Lines end with CRLF, or LF alone as some senders write them (feed accepts both ends of the
  // header block): split on LF, the CR is trimmed.
  std::string_view head(head_);
  size_t eol = head.find('\n');
  std::string_view start = head.substr(0, eol);
  if (!start.empty() && start.back() == '\r') start.remove_suffix(1);
  method_.clear();
  content_type_.clear();
  status_ = 0;
  if (start.substr(0, 5) == "HTTP/") {
    request_ = false;
    size_t sp = start.find(' ');
    uint64_t st = 0;
    if (sp == std::string_view::npos || !parse_uint(start.substr(sp + 1, 3), st, 10)) {
      h.http_anomaly("http.bad_start_line", msg_off_);
      state_ = State::dead;
      return;
    }
    status_ = static_cast<int>(st);
  } else {
    request_ = true;
    size_t sp = start.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 16 || start.find(" HTTP/", sp) == std::string_view::npos) {
      h.http_anomaly("http.bad_start_line", msg_off_);
      state_ = State::dead;
      return;
    }
    method_.assign(start.substr(0, sp));
  }
  bool chunked = false, have_length = false;
  uint64_t length = 0;
  size_t p = eol == std::string_view::npos ? head.size() : eol + 1;
  while (p < head.size()) {
    size_t e = head.find('\n', p);
    if (e == std::string_view::npos) e = head.size();
    std::string_view line = head.substr(p, e - p);
    p = e + 1;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon), value = trim(line.substr(colon + 1));
    if (name.size() == 14 && iequals_prefix(name, "content-length")) {
      have_length = parse_uint(value, length, 10);
    } else if (name.size() == 17 && iequals_prefix(name, "transfer-encoding")) {
      chunked = value.find("chunked") != std::string_view::npos || value.find("Chunked") != std::string_view::npos;
    } else if (name.size() == 12 && iequals_prefix(name, "content-type")) {
      content_type_.assign(value.substr(0, 128));
    }
  }
  body_.clear();
  body_overflow_ = false;
  if (chunked) { state_ = State::chunk_size; line_.clear(); return; }
  bool no_body = !request_ && (status_ < 200 || status_ == 204 || status_ == 304);
  if (have_length || request_ || no_body) {
    remaining_ = have_length && !no_body ? length : 0;
    if (remaining_ > max_body_) {
      h.http_anomaly("http.body_too_large", msg_off_);
      body_overflow_ = true;
    }
    state_ = State::body_length;
    if (remaining_ == 0) emit(h, true);
    return;
  }
  state_ = State::body_close;  // HTTP/1.0 style: the body runs to the end of the stream
}

void HttpReader::feed(std::span<const uint8_t> data, HttpHandler& h) {
  const uint8_t* p = data.data();
  const uint8_t* end = p + data.size();
  auto off = [&](const uint8_t* q) { return pos_ + static_cast<uint64_t>(q - data.data()); };
  while (p < end && state_ != State::dead) {
    switch (state_) {
      case State::head: {
        if (head_.empty()) {
          // Blank lines between messages are tolerated.
          while (p < end && (*p == '\r' || *p == '\n')) ++p;
          if (p == end) break;
          msg_off_ = off(p);
        }
        // Copy up to the end of the header block.
        size_t before = head_.size();
        const uint8_t* q = p;
        size_t found = std::string::npos;
        while (q < end) {
          const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(q, '\n', static_cast<size_t>(end - q)));
          if (!nl) { q = end; break; }
          q = nl + 1;
          head_.append(reinterpret_cast<const char*>(p), static_cast<size_t>(q - p));
          p = q;
          size_t n = head_.size();
          if (n >= 4 && head_.compare(n - 4, 4, "\r\n\r\n") == 0) { found = n; break; }
          if (n >= 2 && head_.compare(n - 2, 2, "\n\n") == 0) { found = n; break; }
        }
        if (found == std::string::npos && p < end) {
          head_.append(reinterpret_cast<const char*>(p), static_cast<size_t>(end - p));
          p = end;
        }
        (void)before;
        if (head_.size() > max_header_) {
          h.http_anomaly("http.header_too_large", msg_off_);
          state_ = State::dead;
          break;
        }
        if (found != std::string::npos) parse_head(h);
        break;
      }
      case State::body_length: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, static_cast<uint64_t>(end - p)));
        append_body(p, n, h);
        p += n;
        remaining_ -= n;
        if (remaining_ == 0) emit(h, true);
        break;
      }
      case State::chunk_size:
      case State::trailers:
      case State::chunk_data_end: {
        const uint8_t* nl = static_cast<const uint8_t*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
        size_t n = static_cast<size_t>((nl ? nl : end) - p);
        if (line_.size() + n > 1024) {
          h.http_anomaly("http.bad_chunk", msg_off_);
          state_ = State::dead;
          break;
        }
        line_.append(reinterpret_cast<const char*>(p), n);
        p += n;
        if (!nl) break;
        ++p;
        std::string_view line = trim(line_);
        if (state_ == State::chunk_data_end) {
          line_.clear();
          state_ = State::chunk_size;
          break;
        }
        if (state_ == State::trailers) {
          line_.clear();
          if (line.empty()) emit(h, true);
          break;
        }
        size_t semi = line.find(';');
        uint64_t size = 0;
        if (!parse_uint(line.substr(0, semi), size, 16)) {
          h.http_anomaly("http.bad_chunk", msg_off_);
          state_ = State::dead;
          break;
        }
        line_.clear();
        if (size == 0) { state_ = State::trailers; break; }
        remaining_ = size;
        state_ = State::chunk_data;
        break;
      }
      case State::chunk_data: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, static_cast<uint64_t>(end - p)));
        append_body(p, n, h);
        p += n;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::chunk_data_end;
        break;
      }
      case State::body_close:
        append_body(p, static_cast<size_t>(end - p), h);
        p = end;
        break;
      case State::dead:
        break;
    }
  }
  pos_ += data.size();
}

void HttpReader::gap(uint64_t n) {
  pos_ += n;
  state_ = State::dead;  // message boundaries are lost for good
  body_.clear();
  head_.clear();
}

void HttpReader::finish(HttpHandler& h) {
  switch (state_) {
    case State::body_close: emit(h, true); break;
    case State::body_length:
    case State::chunk_size:
    case State::chunk_data:
    case State::chunk_data_end:
    case State::trailers:
      h.http_anomaly("http.truncated_body", msg_off_);
      emit(h, false);
      break;
    case State::head:
      if (!head_.empty()) h.http_anomaly("http.truncated_body", msg_off_);
      break;
    case State::dead: break;
  }
  state_ = State::dead;
}

}  // namespace medmon::hl7
