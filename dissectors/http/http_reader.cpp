#include "dissectors/http/http_reader.h"

#include <algorithm>

namespace medmon::http {

namespace {

constexpr auto npos = std::string_view::npos;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
bool digit(char c) { return c >= '0' && c <= '9'; }

// Case-insensitive equality with a lower-case name.
bool iequals(std::string_view s, std::string_view name) {
  if (s.size() != name.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (lower(s[i]) != name[i]) return false;
  return true;
}

size_t ifind(std::string_view hay, std::string_view needle) {
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequals(hay.substr(i, needle.size()), needle)) return i;
  return npos;
}

// Lenient: blanks around, and the CR of a line that ended with LF.
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Strict: white space around (a header value between CRLFs).
bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
std::string_view trim_space(std::string_view s) {
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// A number of at most 16 digits, blanks around.
bool parse_uint(std::string_view s, uint64_t& v, int base) {
  s = trim(s);
  if (s.empty() || s.size() > 16) return false;
  uint64_t n = 0;
  for (char c : s) {
    int d;
    if (digit(c)) d = c - '0';
    else if (base == 16 && lower(c) >= 'a' && lower(c) <= 'f') d = lower(c) - 'a' + 10;
    else return false;
    n = n * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
  }
  v = n;
  return true;
}

bool http_version(std::string_view v) { return v.size() == 8 && v.substr(0, 7) == "HTTP/1." && digit(v[7]); }

}  // namespace

StreamSender sender(std::span<const uint8_t> first_bytes) {
  std::string_view s(reinterpret_cast<const char*>(first_bytes.data()), first_bytes.size());
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.size() >= 12 && s.starts_with("HTTP/1.") && digit(s[7]) && s[8] == ' ' && digit(s[9]) && digit(s[10]) && digit(s[11]))
    return StreamSender::server;
  size_t m = 0;
  while (m < s.size() && m < 16 && s[m] >= 'A' && s[m] <= 'Z') ++m;
  if (m == 0 || m >= s.size() || s[m] != ' ') return StreamSender::unknown;
  std::string_view line = s.substr(0, s.find('\n'));
  size_t v = line.find(" HTTP/1.", m + 1);
  return v != std::string_view::npos && v > m + 1 ? StreamSender::client : StreamSender::unknown;
}

bool chunk_size(std::string_view line, uint64_t cap, uint64_t& n) {
  n = 0;
  bool digits = false;
  for (char c : line) {
    char ch = lower(c);
    int d = digit(ch) ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (d < 0) break;
    digits = true;
    n = n * 16 + static_cast<uint64_t>(d);
    if (n > cap) break;
  }
  return digits;
}

Consumed Reader::stop(Anomaly a, uint64_t at, size_t used, Handler& h) {
  h.anomaly(a, msg_off_, at);
  state_ = State::stopped;
  drop_body();
  return {used, 0, 0, true};
}

void Reader::emit(Handler& h, std::string_view body, bool complete) {
  state_ = State::head;
  if (overflow_) {
    overflow_ = false;  // dropped: body_too_large was reported
  } else {
    Message m;
    m.request = request_;
    m.method = method_;
    m.target = target_;
    m.status = status_;
    m.content_type = content_type_;
    m.codings = codings_;
    m.body = body;
    m.offset = msg_off_;
    m.complete = complete;
    h.message(m);
  }
  drop_body();
}

bool Reader::charge(size_t n) {
  if (!opt_.memory) return true;
  size_t used = opt_.memory->used.load(std::memory_order_relaxed);
  do {
    if (n > opt_.memory->cap - std::min(used, opt_.memory->cap)) return false;
  } while (!opt_.memory->used.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
  charged_ += n;
  return true;
}

void Reader::drop_body() {
  // A buffer that grew for a large body is not kept for the rest of the connection.
  constexpr size_t kKeptCapacity = 64u << 10;
  if (body_.capacity() > kKeptCapacity) std::string().swap(body_);
  else body_.clear();
  if (charged_) opt_.memory->used.fetch_sub(charged_, std::memory_order_relaxed);
  charged_ = 0;
}

// True when this piece took the body over the cap or the budget (reported once; the body is
// dropped).
bool Reader::append_body(std::string_view piece, uint64_t at, Handler& h) {
  if (overflow_) return false;
  bool over_cap = too_long(piece.size());
  if (over_cap || !charge(piece.size())) {
    h.anomaly(over_cap ? Anomaly::body_too_large : Anomaly::body_memory_budget, msg_off_, at);
    overflow_ = true;
    drop_body();
    return true;
  }
  body_.append(piece);
  return false;
}

bool Reader::start_line(std::string_view line) {
  method_.clear();
  target_.clear();
  status_ = 0;
  if (opt_.syntax == Syntax::strict) {
    // HTTP/1.x SP 3 digits (100..999) [SP reason], or METHOD SP target SP HTTP/1.x with an
    // upper-case method and a target of visible characters.
    if (line.substr(0, 5) == "HTTP/") {
      if (line.size() < 12 || !http_version(line.substr(0, 8)) || line[8] != ' ') return false;
      if (line[9] < '1' || line[9] > '9' || !digit(line[10]) || !digit(line[11]) || (line.size() > 12 && line[12] != ' ')) return false;
      request_ = false;
      status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
      return true;
    }
    size_t sp = line.substr(0, 17).find(' ');
    if (sp == 0 || sp == npos) return false;
    for (size_t k = 0; k < sp; ++k)
      if (line[k] < 'A' || line[k] > 'Z') return false;
    if (line.size() < sp + 11 || line[line.size() - 9] != ' ' || !http_version(line.substr(line.size() - 8))) return false;
    std::string_view target = line.substr(sp + 1, line.size() - 9 - sp - 1);
    for (char c : target)
      if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F) return false;
    request_ = true;
    method_.assign(line.substr(0, sp));
    target_.assign(target);
    return true;
  }
  size_t sp = line.find(' ');
  if (line.substr(0, 5) == "HTTP/") {
    uint64_t st = 0;
    if (sp == npos || !parse_uint(line.substr(sp + 1, 3), st, 10)) return false;
    request_ = false;
    status_ = static_cast<int>(st);
    return true;
  }
  size_t version = sp == npos ? npos : line.find(" HTTP/", sp);
  if (sp == npos || sp == 0 || sp > 16 || version == npos) return false;
  request_ = true;
  method_.assign(line.substr(0, sp));
  if (version > sp) target_.assign(line.substr(sp + 1, version - sp - 1));
  return true;
}

// The header lines from `p` on: Content-Length, Transfer-Encoding chunked, Content-Type, and the
// codings of the body (Content-Encoding, then the transfer codings but chunked).
void Reader::headers(std::string_view head, size_t p, bool& have_length, uint64_t& length, bool& chunked) {
  const bool strict = opt_.syntax == Syntax::strict;
  std::string_view eol = strict ? "\r\n" : "\n";
  content_type_.clear();
  codings_.clear();
  std::string content_codings, transfer_codings;
  // Each coding of a comma-separated list but chunked and identity (no coding).
  auto add_codings = [](std::string_view list, std::string& out) {
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view c = trim(list.substr(0, comma));
      list.remove_prefix(comma == npos ? list.size() : comma + 1);
      if (c.empty() || iequals(c, "chunked") || iequals(c, "identity")) continue;
      if (!out.empty()) out.push_back(',');
      out.append(c);
    }
  };
  while (p < head.size()) {
    size_t e = head.find(eol, p);
    if (e == npos) e = head.size();
    std::string_view line = head.substr(p, e - p);
    p = e + eol.size();
    size_t colon = line.find(':');
    if (colon == npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = strict ? trim_space(line.substr(colon + 1)) : trim(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      if (strict) {
        // Digits only (none is 0); past 2^40 the value only has to stay over any cap.
        have_length = true;
        length = 0;
        for (char ch : value) {
          if (!digit(ch)) { have_length = false; break; }
          if (length < (uint64_t(1) << 40)) length = length * 10 + static_cast<uint64_t>(ch - '0');
        }
      } else {
        have_length = parse_uint(value, length, 10);
      }
    } else if (iequals(name, "transfer-encoding")) {
      // Transfer-coding names are case-insensitive (RFC 9112 section 7).
      chunked = chunked || ifind(value, "chunked") != npos;
      add_codings(value, transfer_codings);
    } else if (iequals(name, "content-encoding")) {
      add_codings(value, content_codings);
    } else if (iequals(name, "content-type")) {
      content_type_.assign(value.substr(0, 128));
    }
  }
  // Applied in this order by the sender (RFC 9110 8.4, RFC 9112 6.1).
  codings_ = std::move(content_codings);
  if (!codings_.empty() && !transfer_codings.empty()) codings_.push_back(',');
  codings_.append(transfer_codings);
  if (codings_.size() > 128) codings_.resize(128);
}

// The end of the head at the front of `rest` (after its blank line), or npos. The bytes searched
// are remembered, so a head that comes a few bytes at a time is not searched again from its start.
size_t Reader::head_end(std::string_view rest) {
  size_t from = scanned_ > 3 ? scanned_ - 3 : 0;
  size_t end = npos;
  if (opt_.syntax == Syntax::strict) {
    size_t f = rest.find("\r\n\r\n", from);
    if (f != npos) end = f + 4;
  } else {
    // A line end right after another: LF LF, or CR LF CR LF.
    for (size_t i = rest.find('\n', from); i != npos; i = rest.find('\n', i + 1)) {
      if ((i >= 1 && rest[i - 1] == '\n') || (i >= 3 && rest.substr(i - 3, 4) == "\r\n\r\n")) {
        end = i + 1;
        break;
      }
    }
  }
  scanned_ = end == npos ? rest.size() : 0;
  return end;
}

Reader::Step Reader::head(std::string_view v, size_t& used, uint64_t offset, Handler& h) {
  if (opt_.syntax == Syntax::lenient) {
    // Blank lines between messages are tolerated.
    while (used < v.size() && (v[used] == '\r' || v[used] == '\n')) ++used;
    if (used == v.size()) return std::nullopt;
  }
  std::string_view rest = v.substr(used);
  msg_off_ = offset + used;
  // The limit counts the whole head, so whether it is met does not depend on how it was cut.
  size_t end = head_end(rest);
  if (end == npos) {
    if (rest.size() > opt_.max_head) return stop(Anomaly::header_too_large, msg_off_, used, h);
    return Consumed{used, rest.size() + 1, 0, false};
  }
  if (end > opt_.max_head) return stop(Anomaly::header_too_large, msg_off_, used, h);
  std::string_view head = rest.substr(0, end);
  const bool strict = opt_.syntax == Syntax::strict;
  size_t eol = strict ? head.find("\r\n") : head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!strict && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!start_line(line)) return stop(Anomaly::bad_start_line, msg_off_, used, h);
  bool have_length = false, chunked = false;
  uint64_t length = 0;
  headers(head, eol + (strict ? 2 : 1), have_length, length, chunked);
  drop_body();
  overflow_ = false;
  if (chunked) {
    used += end;
    state_ = State::chunk_size;
    return std::nullopt;
  }
  // 1xx, 204 and 304 responses have no body whatever their headers say (a 304 may carry the
  // Content-Length of what it did not send); requests without a length have none either.
  bool bodiless = !request_ && (status_ < 200 || status_ == 204 || status_ == 304);
  if (!have_length && !request_ && !bodiless) {
    if (!opt_.body_until_close) return stop(Anomaly::no_length, msg_off_, used, h);
    used += end;
    state_ = State::until_close;
    return std::nullopt;
  }
  uint64_t len = have_length && !bodiless ? length : 0;
  if (len > opt_.max_body) {
    h.anomaly(Anomaly::body_too_large, msg_off_, msg_off_);
    used += end;
    if (opt_.holding == Holding::caller) return Consumed{used, 0, len, false};
    overflow_ = true;  // read through, dropped
    remaining_ = len;
    state_ = State::body;
    return std::nullopt;
  }
  if (opt_.holding == Holding::caller) {
    // The message is used whole once all here (its head is read again then).
    if (rest.size() < end + len) return Consumed{used, end + static_cast<size_t>(len), 0, false};
    used += end + static_cast<size_t>(len);
    emit(h, rest.substr(end, static_cast<size_t>(len)), true);
    return std::nullopt;
  }
  used += end;
  remaining_ = len;
  state_ = State::body;
  if (len == 0) emit(h, {}, true);
  return std::nullopt;
}

Reader::Step Reader::chunk_size(std::string_view v, size_t& used, uint64_t offset, Handler& h) {
  const bool strict = opt_.syntax == Syntax::strict;
  std::string_view rest = v.substr(used);
  uint64_t at = offset + used;
  size_t le = strict ? rest.find("\r\n") : rest.find('\n');
  if (le == npos) {
    // Too long for a size line whatever follows (a strict line may end in the CR held here).
    if (rest.size() > opt_.max_line + (strict ? 1 : 0)) return stop(Anomaly::bad_chunk, at, used, h);
    return Consumed{used, 0, 0, false};
  }
  if (le > opt_.max_line) return stop(Anomaly::bad_chunk, at, used, h);
  std::string_view line = rest.substr(0, le);
  size_t data = le + (strict ? 2 : 1);
  uint64_t n = 0;
  if (!chunk_line(line, n)) return stop(Anomaly::bad_chunk, at, used, h);
  if (n == 0) return last_chunk(v, used, le, at, h);
  chunk_off_ = at;
  if (opt_.holding == Holding::caller) {
    if (!overflow_ && too_long(n)) {
      h.anomaly(Anomaly::body_too_large, msg_off_, at);
      drop_body();
      if (opt_.resync) {
        state_ = State::resync;
        return std::nullopt;
      }
      overflow_ = true;
    }
    if (!overflow_) {
      // A chunk is used whole, so that the stream feeder never holds more than one.
      size_t data_end = data + static_cast<size_t>(n);
      size_t end = data_end + 2;
      if (!strict) {
        if (rest.size() <= data_end) return Consumed{used, data_end + 1, 0, false};
        size_t e = rest.find('\n', data_end);
        if (e == npos) {
          if (rest.size() - data_end > opt_.max_line) return stop(Anomaly::bad_chunk, at, used, h);
          return Consumed{used, 0, 0, false};
        }
        if (e - data_end > opt_.max_line) return stop(Anomaly::bad_chunk, at, used, h);
        end = e + 1;
      }
      if (rest.size() < end) return Consumed{used, end, 0, false};
      if (!charge(static_cast<size_t>(n))) {
        h.anomaly(Anomaly::body_memory_budget, msg_off_, at);
        drop_body();
        if (opt_.resync) {
          state_ = State::resync;
          return std::nullopt;
        }
        overflow_ = true;  // this chunk and the rest of the body are dropped
        used += end;
        return std::nullopt;
      }
      body_.append(rest.substr(data, static_cast<size_t>(n)));
      used += end;
      return std::nullopt;
    }
  }
  // The data is taken as it comes (or dropped as it comes once over the cap).
  used += data;
  remaining_ = n;
  state_ = State::chunk_data;
  return std::nullopt;
}

// The last chunk (size 0), from its size line (le: where that line ends) to the blank line after
// the trailers, is used whole: the message is then read.
size_t Reader::last_chunk_end(std::string_view rest, size_t le) const {
  if (opt_.syntax == Syntax::strict) {
    size_t fin = rest.find("\r\n\r\n", le);
    return fin == npos ? npos : fin + 4;
  }
  for (size_t p = le + 1; p <= rest.size();) {
    size_t e = rest.find('\n', p);
    if (e == npos) break;
    if (trim(rest.substr(p, e - p)).empty()) return e + 1;
    p = e + 1;
  }
  return npos;
}

bool Reader::chunk_line(std::string_view line, uint64_t& n) const {
  if (opt_.syntax == Syntax::strict) return http::chunk_size(line, opt_.max_body, n);
  line = trim(line);
  return parse_uint(line.substr(0, line.find(';')), n, 16);
}

Reader::Step Reader::last_chunk(std::string_view v, size_t& used, size_t le, uint64_t at, Handler& h) {
  std::string_view rest = v.substr(used);
  size_t end = last_chunk_end(rest, le);
  if (end == npos) {
    if (rest.size() > opt_.max_head) return stop(Anomaly::bad_chunk, at, used, h);
    return Consumed{used, 0, 0, false};
  }
  if (end > opt_.max_head) return stop(Anomaly::bad_chunk, at, used, h);
  used += end;
  emit(h, body_, true);
  return std::nullopt;
}

// After a chunk's data: 2 bytes (strict, not looked at), or a line (lenient).
Reader::Step Reader::chunk_end(std::string_view v, size_t& used, uint64_t offset, Handler& h) {
  std::string_view rest = v.substr(used);
  if (opt_.syntax == Syntax::strict) {
    if (rest.size() < 2) return Consumed{used, 2, 0, false};
    used += 2;
  } else {
    size_t e = rest.find('\n');
    if (e == npos) {
      if (rest.size() > opt_.max_line) return stop(Anomaly::bad_chunk, offset + used, used, h);
      return Consumed{used, 0, 0, false};
    }
    if (e > opt_.max_line) return stop(Anomaly::bad_chunk, offset + used, used, h);
    used += e + 1;
  }
  state_ = State::chunk_size;
  return std::nullopt;
}

// After a loss the bytes may start anywhere in a message: the first start line from `used` on
// that starts a line or follows resync_after (a body has no line end of its own). Without one,
// all is used but the unfinished last line from its first place that may still begin a start
// line (one cut by the end of the bytes, held up to a head's size as head() holds a head).
Reader::Step Reader::resync(std::string_view v, size_t& used) {
  const bool strict = opt_.syntax == Syntax::strict;
  std::string_view eol_mark = strict ? "\r\n" : "\n";
  const size_t first = used;
  // Where a start line may begin, in the line that begins at `line`.
  auto candidate = [&](size_t k, size_t line) {
    if (k == line) return k != first || !resync_mid_line_;
    return opt_.resync_after != 0 && v[k - 1] == opt_.resync_after;
  };
  size_t p = used;
  for (;;) {
    size_t eol = v.find(eol_mark, p);
    if (eol == npos) break;
    for (size_t k = p; k < eol; ++k) {
      if (!candidate(k, p)) continue;
      std::string_view line = v.substr(k, eol - k);
      if (!strict && !line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (start_line(line)) {
        used = k;
        state_ = State::head;
        resync_mid_line_ = false;
        return std::nullopt;
      }
    }
    p = eol + eol_mark.size();
  }
  used = v.size();
  for (size_t k = v.size() > opt_.max_head ? std::max(p, v.size() - opt_.max_head) : p; k < v.size(); ++k)
    if (candidate(k, p) && may_begin_start_line(v.substr(k))) {
      used = k;
      break;
    }
  // All used: the next byte begins a line, or follows resync_after, or neither.
  resync_mid_line_ = used == v.size() && p < v.size() && (opt_.resync_after == 0 || v.back() != opt_.resync_after);
  return Consumed{used, 0, 0, false};
}

bool Reader::may_begin_start_line(std::string_view s) const {
  static constexpr std::string_view kStatus = "HTTP/";
  if (s.substr(0, kStatus.size()) == kStatus.substr(0, std::min(s.size(), kStatus.size()))) return true;
  if (opt_.syntax == Syntax::lenient) {
    // A method of 1 to 16 bytes, then a space.
    const size_t sp = s.substr(0, 17).find(' ');
    return sp == npos ? s.size() <= 16 : sp > 0;
  }
  size_t m = 0;
  while (m < s.size() && m < 16 && s[m] >= 'A' && s[m] <= 'Z') ++m;
  return m > 0 && (m == s.size() || s[m] == ' ');
}

Consumed Reader::read(std::span<const uint8_t> data, uint64_t offset, Handler& h) {
  std::string_view v(reinterpret_cast<const char*>(data.data()), data.size());
  size_t used = 0;
  while (used < v.size()) {
    Step s;
    switch (state_) {
      case State::stopped:
        return {used, 0, 0, true};
      case State::resync:
        s = resync(v, used);
        break;
      case State::head:
        s = head(v, used, offset, h);
        break;
      case State::body: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, v.size() - used));
        append_body(v.substr(used, n), msg_off_, h);
        used += n;
        remaining_ -= n;
        if (remaining_ == 0) emit(h, body_, true);
        break;
      }
      case State::chunk_size:
        s = chunk_size(v, used, offset, h);
        break;
      case State::chunk_data: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, v.size() - used));
        bool over = append_body(v.substr(used, n), chunk_off_, h);
        used += n;
        remaining_ -= n;
        if (over && opt_.resync) {
          overflow_ = false;
          state_ = State::resync;
        } else if (remaining_ == 0) {
          state_ = State::chunk_end;
        }
        break;
      }
      case State::chunk_end:
        s = chunk_end(v, used, offset, h);
        break;
      case State::until_close:
        append_body(v.substr(used), msg_off_, h);
        used = v.size();
        break;
    }
    if (s) return *s;
  }
  return {used, 0, 0, state_ == State::stopped};
}

void Reader::gap() {
  if (state_ == State::stopped) return;
  drop_body();
  overflow_ = false;
  scanned_ = 0;
  resync_mid_line_ = false;  // the bytes after a loss are read as from a line start
  state_ = opt_.resync ? State::resync : State::stopped;
}

void Reader::finish(bool unused, uint64_t unused_offset, Handler& h) {
  switch (state_) {
    case State::until_close:
      emit(h, body_, true);
      break;
    case State::body:
    case State::chunk_size:
    case State::chunk_data:
    case State::chunk_end:
      h.anomaly(Anomaly::truncated_body, msg_off_, msg_off_);
      emit(h, body_, false);
      break;
    case State::head:
      if (unused) h.anomaly(Anomaly::truncated_body, unused_offset, unused_offset);
      break;
    case State::resync:
    case State::stopped:
      break;
  }
  state_ = State::stopped;
  drop_body();
}

namespace {
// LaterCursor::phase and flags as measure_chunks keeps them.
enum : uint8_t { kSizeLine = 1, kDataEnd = 2, kTrailers = 3 };
enum : uint8_t {
  kBadSize = 1,     // lenient: a byte that makes the line no chunk size
  kAfterDigits = 2, // the size's digits are over (a blank after them; strict: any other byte)
  kExtension = 4,   // lenient: past the ';' of an extension
  kAfterCr = 8,     // strict: the line's last byte was a CR
  kContent = 16,    // lenient trailers: the line holds more than blanks
};
int hex_value(char c) {
  const char l = lower(c);
  return digit(l) ? l - '0' : l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1;
}
}  // namespace

// The chunk syntax as chunk_size(), chunk_end() and last_chunk_end() read it, one byte at a
// time outside chunk data (skipped whole), so that the chunks can be followed across deliveries
// with no byte kept. The size line of a strict chunk counts its CR in `count`; in the trailers
// `count` is the bytes of the last chunk so far, and `digits` how much of a strict CRLF CRLF
// was seen.
size_t Reader::measure_chunks(std::string_view r, LaterCursor& c) const {
  const bool strict = opt_.syntax == Syntax::strict;
  auto fail = [&c] {
    c = {};
    return size_t{0};
  };
  size_t i = 0;
  while (i < r.size()) {
    if (c.phase == kDataEnd) {
      const size_t e = r.find('\n', i);
      const size_t n = (e == npos ? r.size() : e) - i;
      if (n > opt_.max_line - std::min<size_t>(c.count, opt_.max_line)) return fail();
      if (e == npos) {
        c.count += static_cast<uint32_t>(n);
        return r.size();
      }
      c = {};
      c.phase = kSizeLine;
      i = e + 1;
      continue;
    }
    const char ch = r[i++];
    if (c.phase == kTrailers) {
      if (++c.count > opt_.max_head) return fail();
      if (strict) {
        // CRLF CRLF, from the size line's own CRLF on.
        static constexpr char kEnd[] = "\r\n\r\n";
        c.digits = ch == kEnd[c.digits] ? c.digits + 1 : ch == '\r' ? 1 : 0;
        if (c.digits == 4) {
          c = {};
          return i;
        }
      } else if (ch == '\n') {
        if (!(c.flags & kContent)) {
          c = {};
          return i;
        }
        c.flags = 0;
      } else if (ch != ' ' && ch != '\t' && ch != '\r') {
        c.flags |= kContent;
      }
      continue;
    }
    // A size line.
    const bool line_end = ch == '\n' && (!strict || (c.flags & kAfterCr));
    if (!line_end) {
      if (++c.count > opt_.max_line + (strict ? 1 : 0)) return fail();
      const int d = hex_value(ch);
      if (strict) {
        c.flags = static_cast<uint8_t>((c.flags & ~kAfterCr) | (ch == '\r' ? kAfterCr : 0));
        if (d < 0) {
          c.flags |= kAfterDigits;
        } else if (!(c.flags & kAfterDigits) && c.value <= opt_.max_body) {
          c.value = c.value * 16 + static_cast<uint64_t>(d);
          c.digits = 1;
        }
      } else if (c.flags & kExtension) {
      } else if (ch == ';') {
        c.flags |= kExtension;
      } else if (ch == ' ' || ch == '\t' || ch == '\r') {
        // Blanks around the size; a CR only after it (trim() keeps a leading one).
        if (c.digits) c.flags |= kAfterDigits;
        else if (ch == '\r') c.flags |= kBadSize;
      } else if (d >= 0 && !(c.flags & kAfterDigits) && c.digits < 16) {
        c.value = c.value * 16 + static_cast<uint64_t>(d);
        ++c.digits;
      } else {
        c.flags |= kBadSize;
      }
      continue;
    }
    const size_t line = c.count - (strict ? 1 : 0);  // without its line end
    if ((c.flags & kBadSize) || c.digits == 0 || line > opt_.max_line || c.value > opt_.max_body) return fail();
    if (c.value == 0) {
      c.count = static_cast<uint32_t>(line + (strict ? 2 : 1));
      c.phase = kTrailers;
      c.flags = 0;
      c.digits = strict ? 2 : 0;
      continue;
    }
    // The chunk's data is skipped whole; then 2 bytes (strict), or a line.
    const size_t next = i + static_cast<size_t>(c.value) + (strict ? 2 : 0);
    c = {};
    c.phase = strict ? kSizeLine : kDataEnd;
    if (next > r.size()) return next;
    i = next;
  }
  return c.phase ? r.size() : i;
}

size_t Reader::measure(std::string_view v, bool beyond, LaterCursor* cursor) {
  if (cursor && cursor->active()) return measure_chunks(v, *cursor);
  const bool strict = opt_.syntax == Syntax::strict;
  size_t p = 0;
  if (!strict)
    while (p < v.size() && (v[p] == '\r' || v[p] == '\n')) ++p;
  // Most bytes given here are a body's, not a head's: refused on their first bytes, before any
  // search for a head's end.
  std::string_view rest = v.substr(p);
  size_t m = 0;
  while (m < rest.size() && m < 16 && rest[m] >= 'A' && rest[m] <= 'Z') ++m;
  // A head the bytes cut (its start line, or one that may still be one, then no blank line yet,
  // within the cap): with a cursor, its bytes are to be given again with those that follow.
  auto cut = [&] {
    if (!cursor || v.size() >= opt_.max_head) return size_t{0};
    const size_t eol = rest.find('\n');
    if (eol == npos) return may_begin_start_line(rest) ? kLaterHeadCut : 0;
    if (strict && (eol == 0 || rest[eol - 1] != '\r')) return size_t{0};
    std::string_view line = rest.substr(0, strict ? eol - 1 : eol);
    if (!strict && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    return start_line(line) ? kLaterHeadCut : 0;
  };
  if (!rest.starts_with("HTTP/") && (m == 0 || m >= rest.size() || rest[m] != ' '))
    return (m == rest.size() && m > 0) || (!rest.empty() && std::string_view("HTTP/").starts_with(rest)) ? cut() : 0;
  scanned_ = 0;
  const size_t end = head_end(rest);
  if (end == npos) return cut();
  if (end > opt_.max_head) return 0;
  std::string_view head = rest.substr(0, end);
  size_t eol = strict ? head.find("\r\n") : head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (!strict && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!start_line(line)) return 0;
  bool have_length = false, chunked = false;
  uint64_t length = 0;
  headers(head, eol + (strict ? 2 : 1), have_length, length, chunked);
  p += end;
  if (chunked) {
    LaterCursor c;
    c.phase = kSizeLine;
    const size_t n = p < v.size() ? measure_chunks(v.substr(p), c) : 0;  // none yet: read on from there
    if ((n == 0 && p < v.size()) || (c.active() && !cursor)) return 0;
    if (cursor) *cursor = c;
    return p + n;
  }
  const bool bodiless = !request_ && (status_ < 200 || status_ == 204 || status_ == 304);
  if (!have_length && !request_ && !bodiless) return cursor ? kLaterToClose : 0;  // runs to the close
  const uint64_t len = have_length && !bodiless ? length : 0;
  if (len > v.size() - p) return (beyond || cursor) && len <= opt_.max_body ? p + static_cast<size_t>(len) : 0;
  return p + static_cast<size_t>(len);
}

size_t message_length(std::span<const uint8_t> bytes, Syntax syntax, bool beyond, LaterCursor* cursor) {
  Options o;
  o.syntax = syntax;
  o.max_body = uint64_t(1) << 40;  // a chunk size past it is no length found in a segment
  Reader r(o);
  return r.measure(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), beyond, cursor);
}

void BufferedReader::feed(std::span<const uint8_t> data, Handler& h) {
  if (r_.stopped()) return;
  std::span<const uint8_t> in = data;
  if (!pending_.empty()) {
    pending_.append(reinterpret_cast<const char*>(data.data()), data.size());
    in = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(pending_.data()), pending_.size());
  }
  size_t used = std::min(r_.read(in, off_, h).used, in.size());
  off_ += used;
  if (r_.stopped()) {
    pending_.clear();
  } else if (pending_.empty()) {
    pending_.assign(reinterpret_cast<const char*>(data.data()) + used, data.size() - used);
  } else {
    pending_.erase(0, used);
  }
}

void BufferedReader::gap(uint64_t n) {
  off_ += pending_.size() + n;
  pending_.clear();
  r_.gap();
}

void BufferedReader::finish(Handler& h) {
  r_.finish(!pending_.empty(), off_, h);
  pending_.clear();
}

}  // namespace medmon::http
