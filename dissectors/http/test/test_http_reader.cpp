#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "dissectors/http/http_reader.h"

using namespace medmon;
using namespace medmon::http;

namespace {

const char* const kAnomalies[] = {"bad_start_line", "header_too_large", "body_too_large",
                                  "bad_chunk",      "no_length",        "truncated_body", "body_memory_budget"};

// What the reader found, written out so runs can be compared.
struct Record : Handler {
  std::vector<std::string> seen;
  void message(const Message& m) override {
    std::string s = m.request ? "REQ " + std::string(m.method) + " " + std::string(m.target)
                              : "RSP " + std::to_string(m.status);
    s += " @" + std::to_string(m.offset) + " ct=" + std::string(m.content_type) + " body=" + std::string(m.body);
    if (!m.complete) s += " (incomplete)";
    seen.push_back(s);
  }
  void anomaly(Anomaly a, uint64_t message, uint64_t at) override {
    seen.push_back(std::string("anomaly ") + kAnomalies[static_cast<int>(a)] + " @" + std::to_string(message) + "/" +
                   std::to_string(at));
  }
};

// Drives a Holding::caller reader as the stream feeder does: unused bytes are held and given
// again with the next piece, `need` and `skip` are honoured, nothing is given after give_up.
struct Feeder {
  Reader r;
  Record rec;
  std::string held;
  uint64_t off = 0, skip = 0;
  bool gave_up = false;
  size_t most_held = 0;
  explicit Feeder(const Options& o) : r(caller(o)) {}
  static Options caller(Options o) {
    o.holding = Holding::caller;
    return o;
  }
  void feed(std::string_view piece) {
    if (gave_up) return;
    if (skip) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(skip, piece.size()));
      piece.remove_prefix(n);
      skip -= n;
      off += n;
    }
    held.append(piece);
    while (!held.empty() && !gave_up) {
      auto c = r.read(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(held.data()), held.size()), off, rec);
      held.erase(0, c.used);
      off += c.used;
      gave_up = c.give_up;
      if (c.skip) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(c.skip, held.size()));
        held.erase(0, n);
        off += n;
        skip = c.skip - n;
        continue;
      }
      if (c.used == 0) break;
    }
    most_held = std::max(most_held, held.size());
  }
  void gap(uint64_t n) {
    off += held.size() + n;
    held.clear();
    r.gap();
  }
};

// One stream through a reader of either holding, cut where `cuts` say (ascending offsets).
std::vector<std::string> run(Options o, std::string_view stream, const std::vector<size_t>& cuts, bool finish = true) {
  std::vector<std::string_view> pieces;
  size_t prev = 0;
  for (size_t c : cuts) {
    pieces.push_back(stream.substr(prev, c - prev));
    prev = c;
  }
  pieces.push_back(stream.substr(prev));
  if (o.holding == Holding::caller) {
    Feeder f(o);
    for (auto p : pieces) f.feed(p);
    return f.rec.seen;
  }
  BufferedReader b(o);
  Record rec;
  for (auto p : pieces) b.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(p.data()), p.size()), rec);
  if (finish) b.finish(rec);
  return rec.seen;
}

Options strict_caller() {
  Options o;
  o.syntax = Syntax::strict;
  o.holding = Holding::caller;
  o.body_until_close = false;
  o.resync = true;
  o.resync_after = '>';
  o.max_line = 8192;
  o.max_head = 1024;
  o.max_body = 4096;
  return o;
}

Options lenient_reader() {
  Options o;
  o.syntax = Syntax::lenient;
  o.holding = Holding::reader;
  o.max_head = 1024;
  o.max_body = 4096;
  return o;
}

std::vector<Options> all_kinds() {
  std::vector<Options> v;
  for (Syntax s : {Syntax::strict, Syntax::lenient})
    for (Holding h : {Holding::caller, Holding::reader}) {
      Options o = lenient_reader();
      o.syntax = s;
      o.holding = h;
      v.push_back(o);
    }
  return v;
}

std::string name(const Options& o) {
  return std::string(o.syntax == Syntax::strict ? "strict" : "lenient") + (o.holding == Holding::caller ? "/caller" : "/reader");
}

// Pipelined requests: a Content-Length body, a chunked body with an extension and a trailer, a
// request without a body; then the responses.
const std::string kRequests =
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Type: application/hl7-v2\r\nContent-Length: 5\r\n\r\nhello"
    "PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0A\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n"
    "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
const std::vector<std::string> kRequestsRead = {
    "REQ POST /a @0 ct=application/hl7-v2 body=hello",
    "REQ PUT /b @" + std::to_string(kRequests.find("PUT")) + " ct= body=abc0123456789",
    "REQ GET /c @" + std::to_string(kRequests.find("GET")) + " ct= body=",
};

}  // namespace

TEST_CASE("http: pipelined requests, Content-Length and chunked bodies") {
  for (const Options& o : all_kinds()) {
    INFO(name(o));
    CHECK(run(o, kRequests, {}) == kRequestsRead);
  }
}

TEST_CASE("http: a split at any byte gives the same messages") {
  std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
                     "HTTP/1.1 204 No Content\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
  for (const std::string& stream : {kRequests, resp}) {
    for (const Options& o : all_kinds()) {
      INFO(name(o));
      auto whole = run(o, stream, {});
      CHECK(whole.size() == 3);
      for (size_t cut = 1; cut < stream.size(); ++cut) {
        INFO("cut " << cut);
        CHECK(run(o, stream, {cut}) == whole);
      }
      // A byte at a time.
      std::vector<size_t> every;
      for (size_t cut = 1; cut < stream.size(); ++cut) every.push_back(cut);
      CHECK(run(o, stream, every) == whole);
    }
  }
}

TEST_CASE("http: lenient reading takes LF line ends and blank lines between messages") {
  std::string s = "\r\nPOST /a HTTP/1.1\nContent-Length: 2\n\nhi\r\n\r\nHTTP/1.0 200 OK\r\nContent-Length: 0\r\n\n";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut " << cut);
    CHECK(run(lenient_reader(), s, {cut}) ==
          std::vector<std::string>{"REQ POST /a @2 ct= body=hi", "RSP 200 @" + std::to_string(s.find("HTTP/1.0")) + " ct= body="});
  }
  // Strictly read, an LF-only head is no start line.
  CHECK(run(strict_caller(), "POST /a HTTP/1.1\nContent-Length: 2\n\r\n\r\nhi", {}) ==
        std::vector<std::string>{"anomaly bad_start_line @0/0"});
}

TEST_CASE("http: a body over the cap is dropped and the next message is read") {
  std::string big(5000, 'x');
  std::string sized = "POST /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + big;
  std::string chunked = "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t i = 0; i < big.size(); i += 1000) chunked += "3e8\r\n" + big.substr(i, 1000) + "\r\n";
  chunked += "0\r\n\r\n";
  std::string next = "POST /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
  for (bool resync : {false, true})
    for (Options o : all_kinds()) {
      o.resync = resync;
      o.resync_after = '>';
      INFO(name(o) << (resync ? " resync" : ""));
      auto r = run(o, sized + next, {100, 3000});
      CHECK(r == std::vector<std::string>{"anomaly body_too_large @0/0",
                                          "REQ POST /next @" + std::to_string(sized.size()) + " ct= body=ok"});
      for (size_t cut : {size_t(60), size_t(4100), size_t(5000)}) {
        INFO("cut " << cut);
        r = run(o, chunked + next, {cut});
        REQUIRE(r.size() == 2);
        CHECK(r[0].rfind("anomaly body_too_large @0/", 0) == 0);
        CHECK(r[1] == "REQ POST /next @" + std::to_string(chunked.size()) + " ct= body=ok");
      }
    }
  // The stream feeder holds no more than a chunk.
  Feeder f(strict_caller());
  for (size_t i = 0; i < chunked.size(); i += 7) f.feed(std::string_view(chunked).substr(i, 7));
  CHECK(f.most_held < 1010);
}

TEST_CASE("http: transfer-coding names are read whatever their case") {
  for (std::string te : {"chunked", "CHUNKED", "Chunked", "gzip, ChUnKeD"})
    for (Options o : all_kinds()) {
      INFO(name(o) << " " << te);
      std::string s = "POST /a HTTP/1.1\r\nTransfer-Encoding: " + te + "\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
      CHECK(run(o, s, {}) == std::vector<std::string>{"REQ POST /a @0 ct= body=abc"});
    }
}

TEST_CASE("http: bodies held by readers sharing a budget stay within it") {
  BodyMemory memory(1000);
  auto feed = [](auto& reader, std::string_view v, Record& rec) {
    reader.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size()), rec);
  };
  Options o = lenient_reader();
  o.memory = &memory;
  std::string body(800, 'a');
  std::string sized = "POST /a HTTP/1.1\r\nContent-Length: 800\r\n\r\n";
  std::string chunked = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n190\r\n" + body.substr(0, 400) + "\r\n";
  Record ra, rb, rc;
  {
    BufferedReader a(o), b(o);
    // a holds 700 bytes of an unfinished body: b's 800 bytes would pass the budget.
    feed(a, sized + body.substr(0, 700), ra);
    CHECK(memory.used == 700);
    feed(b, sized + body, rb);
    CHECK(rb.seen == std::vector<std::string>{"anomaly body_memory_budget @0/0"});
    CHECK(memory.used == 700);
    // a's body ends: its bytes are given back, and b's next message fits.
    feed(a, body.substr(700), ra);
    CHECK(ra.seen.size() == 1);
    CHECK(memory.used == 0);
    feed(b, "POST /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nok", rb);
    CHECK(rb.seen.back() == "REQ POST /next @" + std::to_string(sized.size() + body.size()) + " ct= body=ok");
    // A chunked body held by a reader that goes away is given back too.
    BufferedReader c(o);
    feed(c, chunked, rc);
    CHECK(memory.used == 400);
  }
  CHECK(memory.used == 0);
  // The stream feeder's reader (Holding::caller) charges decoded chunks once, however the bytes
  // come.
  Options co = strict_caller();
  co.memory = &memory;
  for (size_t step : {size_t(1), size_t(7), chunked.size()}) {
    Feeder f(co);
    for (size_t i = 0; i < chunked.size(); i += step) f.feed(std::string_view(chunked).substr(i, step));
    CHECK(memory.used == 400);
  }
  CHECK(memory.used == 0);
  BodyMemory small(300);
  co.memory = &small;
  Feeder f(co);
  f.feed(chunked + "0\r\n\r\n");
  REQUIRE(!f.rec.seen.empty());
  CHECK(f.rec.seen.front().rfind("anomaly body_memory_budget @0/", 0) == 0);
  CHECK(small.used == 0);
}

TEST_CASE("http: a gap stops the reading, or the next start line is looked for") {
  std::string first = "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n<a>01";
  std::string after = "234</a>POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nz";
  for (Options o : all_kinds()) {
    for (bool resync : {false, true}) {
      o.resync = resync;
      o.resync_after = '>';
      INFO(name(o) << (resync ? " resync" : ""));
      Record rec;
      std::vector<std::string> seen;
      if (o.holding == Holding::caller) {
        Feeder f(o);
        f.feed(first);
        f.gap(3);
        f.feed(after);
        seen = f.rec.seen;
      } else {
        BufferedReader b(o);
        b.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(first.data()), first.size()), rec);
        b.gap(3);
        b.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(after.data()), after.size()), rec);
        b.finish(rec);
        seen = rec.seen;
      }
      // The message cut by the gap is dropped either way.
      // (Leniently, "234</a>POST /b HTTP/1.1" is a start line too.)
      if (!resync) CHECK(seen.empty());
      else if (o.syntax == Syntax::lenient) CHECK(seen == std::vector<std::string>{"REQ 234</a>POST /b @48 ct= body=z"});
      else CHECK(seen == std::vector<std::string>{"REQ POST /b @" + std::to_string(first.size() + 3 + 7) + " ct= body=z"});
    }
  }
}

TEST_CASE("http: after a gap, a start line longer than a chunk line is found across pieces") {
  const std::string first = "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n<a>01";
  const std::string target = "/b?" + std::string(200, 'q');
  const std::string after = "234</a>POST " + target + " HTTP/1.1\r\nContent-Length: 1\r\n\r\nz";
  for (Options o : all_kinds()) {
    o.resync = true;
    o.resync_after = '>';
    o.max_line = 64;
    INFO(name(o));
    std::vector<std::string> seen;
    if (o.holding == Holding::caller) {
      Feeder f(o);
      f.feed(first);
      f.gap(3);
      for (size_t i = 0; i < after.size(); i += 50) f.feed(after.substr(i, 50));
      seen = f.rec.seen;
    } else {
      BufferedReader b(o);
      Record rec;
      b.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(first.data()), first.size()), rec);
      b.gap(3);
      for (size_t i = 0; i < after.size(); i += 50) {
        const std::string piece = after.substr(i, 50);
        b.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(piece.data()), piece.size()), rec);
      }
      seen = rec.seen;
    }
    if (o.syntax == Syntax::lenient) CHECK(seen == std::vector<std::string>{"REQ 234</a>POST " + target + " @48 ct= body=z"});
    else CHECK(seen == std::vector<std::string>{"REQ POST " + target + " @" + std::to_string(first.size() + 3 + 7) + " ct= body=z"});
  }
  // A line that cannot begin one is not held; nor does the next piece begin a line then.
  Options o = lenient_reader();
  o.resync = true;
  o.resync_after = '>';
  BufferedReader b(o);
  Record rec;
  auto feed = [&](std::string_view v) {
    b.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size()), rec);
  };
  feed("POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\n<a>");
  b.gap(3);
  feed(std::string(40, 'x'));
  feed("POST /c HTTP/1.1\r\n\r\n>POST /d HTTP/1.1\r\n\r\n");
  CHECK(rec.seen == std::vector<std::string>{"REQ >POST /d @107 ct= body="});  // leniently, ">POST" is a method
}

TEST_CASE("http: a response without a length runs to the close, or is an error") {
  std::string s = "HTTP/1.0 200 OK\r\nContent-Type: x/hl7\r\n\r\nall of it\r\nuntil the end";
  for (Options o : all_kinds()) {
    o.holding = Holding::reader;
    INFO(name(o));
    for (size_t cut = 0; cut <= s.size(); ++cut)
      CHECK(run(o, s, {cut}) == std::vector<std::string>{"RSP 200 @0 ct=x/hl7 body=all of it\r\nuntil the end"});
    o.body_until_close = false;
    CHECK(run(o, s, {}) == std::vector<std::string>{"anomaly no_length @0/0"});
  }
  // Capped like any body.
  Options o = lenient_reader();
  o.max_body = 4;
  CHECK(run(o, s, {}) == std::vector<std::string>{"anomaly body_too_large @0/0"});
}

TEST_CASE("http: 1xx, 204 and 304 responses have no body whatever their headers say") {
  std::string s = "HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\n\r\n"
                  "HTTP/1.1 100 Continue\r\nContent-Length: 7\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  for (const Options& o : all_kinds()) {
    INFO(name(o));
    CHECK(run(o, s, {}) == std::vector<std::string>{"RSP 304 @0 ct= body=", "RSP 100 @50 ct= body=",
                                                    "RSP 200 @94 ct= body=ok"});
  }
}

TEST_CASE("http: the end of the stream within a message") {
  Options o = lenient_reader();
  CHECK(run(o, "POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", {}) ==
        std::vector<std::string>{"anomaly truncated_body @0/0", "REQ POST /a @0 ct= body=abc (incomplete)"});
  CHECK(run(o, "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc", {}) ==
        std::vector<std::string>{"anomaly truncated_body @0/0", "REQ POST /a @0 ct= body=abc (incomplete)"});
  CHECK(run(o, "GET / HTTP/1.1\r\n\r\nPOST /a HTTP/1.1\r\nConte", {}) ==
        std::vector<std::string>{"REQ GET / @0 ct= body=", "anomaly truncated_body @18/18"});
  CHECK(run(o, "GET / HTTP/1.1\r\n\r\n\r\n", {}) == std::vector<std::string>{"REQ GET / @0 ct= body="});
}

TEST_CASE("http: limits on heads and chunk lines do not depend on where the bytes were cut") {
  for (Options o : all_kinds()) {
    INFO(name(o));
    // A head exactly at the limit, up to and with its blank line, is read; one byte more is not.
    for (size_t extra : {size_t(0), size_t(1)}) {
      std::string start = "GET / HTTP/1.1\r\nX: ";
      std::string head = start + std::string(o.max_head - start.size() - 4 + extra, 'a') + "\r\n\r\n";
      REQUIRE(head.size() == o.max_head + extra);
      auto whole = run(o, head, {});
      CHECK(whole == std::vector<std::string>{extra ? "anomaly header_too_large @0/0" : "REQ GET / @0 ct= body="});
      for (size_t cut = o.max_head - 8; cut < head.size(); ++cut) {
        INFO("cut " << cut);
        CHECK(run(o, head, {cut}) == whole);
      }
    }
    // A chunk size line at the limit is read; one byte more is a bad chunk. (Leniently, the CR
    // before the LF is of the line.)
    for (size_t extra : {size_t(0), size_t(1)}) {
      std::string head = "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
      std::string line = "2;" + std::string(o.max_line - 2 + extra - (o.syntax == Syntax::lenient), 'e');
      std::string s = head + line + "\r\nok\r\n0\r\n\r\n";
      auto whole = run(o, s, {});
      if (extra) CHECK(whole == std::vector<std::string>{"anomaly bad_chunk @0/" + std::to_string(head.size())});
      else CHECK(whole == std::vector<std::string>{"REQ PUT / @0 ct= body=ok"});
      for (size_t cut = head.size() + o.max_line - 4; cut < head.size() + line.size() + 3; ++cut) {
        INFO("cut " << cut);
        CHECK(run(o, s, {cut}) == whole);
      }
    }
  }
}

TEST_CASE("http: start lines, strict and lenient") {
  for (std::string line : {"post /x HTTP/1.1", "POST /x", "POST  HTTP/1.1", "POST /x HTTP/2.0", "HTTP/1.1 2000 OK",
                           "HTTP/1.1 OK", "HTTP/1.x 200 OK", "PO-ST /x HTTP/1.1", "POST /a\x01 HTTP/1.1"}) {
    INFO(line);
    CHECK(run(strict_caller(), line + "\r\nContent-Length: 0\r\n\r\n", {}) ==
          std::vector<std::string>{"anomaly bad_start_line @0/0"});
  }
  // Leniently, any method of up to 16 bytes before " HTTP/".
  CHECK(run(lenient_reader(), "post /x HTTP/1.1\r\n\r\n", {}) == std::vector<std::string>{"REQ post /x @0 ct= body="});
  CHECK(run(lenient_reader(), "GARBAGE\r\n\r\nGET / HTTP/1.1\r\n\r\n", {}) ==
        std::vector<std::string>{"anomaly bad_start_line @0/0"});
}

TEST_CASE("http: chunk_size reads the leading hex digits, up to a cap") {
  uint64_t n = 0;
  CHECK((chunk_size("1aF;ext=1", 1u << 20, n) && n == 0x1af));
  CHECK((chunk_size("0", 10, n) && n == 0));
  CHECK_FALSE(chunk_size(" 1", 10, n));
  CHECK_FALSE(chunk_size("", 10, n));
  CHECK((chunk_size("ffffffffffffffffffff", 100, n) && n > 100 && n < 0x1000));
}

TEST_CASE("sender: a status line is the server's, a request line the client's") {
  auto sender = [](std::string_view s) {
    return medmon::http::sender(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  };
  CHECK(sender("HTTP/1.1 200 OK\r\n") == medmon::StreamSender::server);
  CHECK(sender("HTTP/1.0 404") == medmon::StreamSender::server);
  CHECK(sender("GET /index.html HTTP/1.1\r\nHost: a\r\n") == medmon::StreamSender::client);
  CHECK(sender("POST /hl7 HTTP/1.1") == medmon::StreamSender::client);
  CHECK(sender("HTTP/1.1 2") == medmon::StreamSender::unknown);
  CHECK(sender("GET /x\r\n HTTP/1.1") == medmon::StreamSender::unknown);
  CHECK(sender("get / HTTP/1.1") == medmon::StreamSender::unknown);
  CHECK(sender("SSH-2.0-OpenSSH") == medmon::StreamSender::unknown);
}

TEST_CASE("message_length: where a message ends, as the reader would read it") {
  auto len = [](std::string_view s, Syntax syntax) {
    return message_length(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), syntax);
  };
  for (Syntax syntax : {Syntax::strict, Syntax::lenient}) {
    INFO((syntax == Syntax::strict ? "strict" : "lenient"));
    // Each message of the pipelined requests, and the start of the next one.
    const size_t put = kRequests.find("PUT"), get = kRequests.find("GET");
    CHECK(len(kRequests, syntax) == put);
    CHECK(len(std::string_view(kRequests).substr(put), syntax) == get - put);
    CHECK(len(std::string_view(kRequests).substr(get), syntax) == kRequests.size() - get);
    // Not all here: no length.
    for (size_t cut = 0; cut < put; ++cut) CHECK(len(kRequests.substr(0, cut), syntax) == 0);
    for (size_t cut = put; cut < get; ++cut) CHECK(len(kRequests.substr(put, cut - put), syntax) == 0);
    // Responses: with a length, bodiless by their status, or running to the close.
    CHECK(len("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1", syntax) == 41);
    CHECK(len("HTTP/1.1 304 Not Modified\r\nContent-Length: 30\r\n\r\nHTTP/1.1", syntax) == 49);
    CHECK(len("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc", syntax) == 0);
    // Bytes that begin no message (a body's) are refused on their first bytes.
    CHECK(len("<html><body>POST / HTTP/1.1\r\n\r\n", syntax) == 0);
    CHECK(len("", syntax) == 0);
    CHECK(len("post / HTTP/1.1\r\n\r\n", syntax) == 0);
  }
  // With `beyond`: a body of known length that goes on past the bytes is measured; a chunked one
  // or one running to the close is not, nor is a length past the cap.
  auto beyond = [](std::string_view s) {
    return message_length(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()),
                          Syntax::lenient, true);
  };
  CHECK(beyond("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc") == 140);
  CHECK(beyond("POST / HTTP/1.1\r\nContent-Length: 100\r\n") == 0);
  CHECK(beyond("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\nabc") == 0);
  CHECK(beyond("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc") == 0);
  CHECK(beyond("POST / HTTP/1.1\r\nContent-Length: 2199023255552\r\n\r\n") == 0);
  CHECK(len("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", Syntax::lenient) == 0);
  // Lenient: LF line ends and blank lines before the message.
  CHECK(len("\r\n\nGET / HTTP/1.1\nHost: x\n\nPOST", Syntax::lenient) == 27);
  CHECK(len("GET / HTTP/1.1\nHost: x\n\nPOST", Syntax::strict) == 0);
}

namespace {
// Measures the message at the front of `s` as the stream feeder does, one delivery at a time
// (`s` cut at `cuts`), keeping the cursor between them, and a head cut by a delivery's end to be
// measured again with the next: where the message ends, 0 when not found.
size_t measure_across(std::string_view s, Syntax syntax, const std::vector<size_t>& cuts) {
  auto span = [](std::string_view v) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size());
  };
  LaterCursor cursor;
  size_t at = 0, from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(s.size());
  bool carried = false;  // the bytes from `at` on were kept: a head cut
  for (size_t end : ends) {
    if (at < from && !carried) return 0;  // a delivery skipped past where reading went on
    carried = false;
    if (at >= end) {
      from = end;
      continue;
    }
    std::string_view rest = s.substr(at, end - at);
    const size_t n = message_length(span(rest), syntax, true, &cursor);
    if (n == 0 || n == kLaterToClose) return 0;
    if (n == kLaterHeadCut) {
      carried = true;
      from = end;
      continue;
    }
    if (!cursor.active() && n <= rest.size()) return at + n;
    at += n;
    from = end;
  }
  return 0;
}
}  // namespace

TEST_CASE("message_length: a chunked body followed across deliveries") {
  const std::string lenient_msgs[] = {
      "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1a;ext=1\r\n" + std::string(26, 'x') +
          "\r\n0\r\nTrailer: x\r\n\r\n",
      "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n 5 \nhello\n\t3\r\nabc\n0\n \n",
      "PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000004\r\nabcd\r\n0;last\r\n\r\n",
  };
  const std::string strict_msgs[] = {
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nA;x\r\n0123456789\r\n0\r\n\r\n",
      "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 junk\r\nabc\r\n0\r\nT: \r\n\r\n",
  };
  const std::string next = "GET /next HTTP/1.1\r\n\r\n";
  auto check = [&](const std::string& msg, Syntax syntax) {
    INFO(msg);
    const std::string s = msg + next;
    auto whole = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    REQUIRE(message_length(whole, syntax) == msg.size());
    LaterCursor cursor;
    CHECK(message_length(whole, syntax, true, &cursor) == msg.size());
    CHECK_FALSE(cursor.active());
    // Cut once anywhere (a head cut is measured again with what follows), and twice at every
    // pair of points inside the chunks.
    const size_t body = msg.find('\n', msg.find('\n', msg.find("chunked")) + 1) + 1;  // after the blank line
    for (size_t cut = 1; cut < msg.size(); ++cut) {
      INFO("cut at " << cut);
      CHECK(measure_across(s, syntax, {cut}) == msg.size());
    }
    for (size_t a = body; a < msg.size(); ++a)
      for (size_t b = a + 1; b < msg.size(); b += 3) {
        INFO("cut at " << a << " and " << b);
        CHECK(measure_across(s, syntax, {a, b}) == msg.size());
      }
  };
  for (const std::string& m : lenient_msgs) {
    check(m, Syntax::lenient);
    // The reader itself finds the next message where the measure ends.
    Options o;
    o.syntax = Syntax::lenient;
    BufferedReader r(o);
    Record rec;
    const std::string s = m + next;
    r.feed(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), rec);
    REQUIRE(rec.seen.size() == 2);
    CHECK(rec.seen[1] == "REQ GET /next @" + std::to_string(m.size()) + " ct= body=");
  }
  for (const std::string& m : strict_msgs) check(m, Syntax::strict);

  // Where reading goes on: behind a chunk's data past the bytes, or at their end.
  const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto measure = [](std::string_view v, LaterCursor& c) {
    return message_length(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size()),
                          Syntax::lenient, true, &c);
  };
  LaterCursor c;
  CHECK(measure(head + "64\r\nabc", c) == head.size() + 4 + 100);
  CHECK(c.active());
  CHECK(measure("\r\n0\r\n\r\nGET", c) == 7);
  CHECK_FALSE(c.active());
  c = {};
  CHECK(measure(head + "6", c) == head.size() + 1);
  CHECK(c.active());
  // Not chunks: refused, and the cursor cleared.
  c = {};
  CHECK(measure(head + "zz\r\n", c) == 0);
  CHECK_FALSE(c.active());
  c = {};
  CHECK(measure(head + "64", c) == head.size() + 2);
  CHECK(measure(std::string(2000, '0'), c) == 0);
  CHECK_FALSE(c.active());
  // A size past the cap is no length found.
  c = {};
  CHECK(measure(head + "20000000000\r\n", c) == 0);
  // A response whose body runs to the close: nothing after it is a message.
  c = {};
  CHECK(measure("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nabc", c) == kLaterToClose);
  CHECK(measure("HTTP/1.1 204 No Content\r\n\r\nHTTP", c) == 27);
}

TEST_CASE("message_length: a head cut by the bytes' end is to be measured again, with a cursor only") {
  auto len = [](std::string_view v, Syntax syntax, LaterCursor* c) {
    return message_length(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size()), syntax, true, c);
  };
  const std::string head = "POST /api HTTP/1.1\r\nHost: lab\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (Syntax syntax : {Syntax::strict, Syntax::lenient}) {
    for (size_t cut = 1; cut < head.size(); ++cut) {
      INFO("cut at " << cut);
      LaterCursor c;
      CHECK(len(head.substr(0, cut), syntax, &c) == kLaterHeadCut);
      CHECK_FALSE(c.active());
      CHECK(len(head.substr(0, cut), syntax, nullptr) == 0);
    }
    LaterCursor c;
    CHECK(len("HT", syntax, &c) == kLaterHeadCut);
    CHECK(len("GET /x HTTP/1.1\r\nHost: a", syntax, &c) == kLaterHeadCut);
    // Not a head: body bytes, a line that is no start line, a head past the cap.
    CHECK(len("hello world", syntax, &c) == 0);
    CHECK(len("POST /x FTP/1.0\r\nHost: a", syntax, &c) == 0);
    CHECK(len("{\"k\": 1}", syntax, &c) == 0);
    CHECK(len("GET /x HTTP/1.1\r\nCookie: " + std::string(16u << 10, 'c'), syntax, &c) == 0);
  }
}
