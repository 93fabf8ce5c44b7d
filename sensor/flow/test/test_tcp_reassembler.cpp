#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "sensor/flow/tcp_reassembler.h"

using namespace medmon;

namespace {
struct Collector : StreamSink {
  std::string stream;            // delivered bytes, '#' for each gap byte
  std::vector<uint64_t> offsets;
  uint64_t gaps = 0, conflicts = 0;
  void data(std::span<const uint8_t> b, uint64_t off) override {
    CHECK(off == stream.size());
    offsets.push_back(off);
    stream.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  void gap(uint64_t off, uint64_t len) override {
    CHECK(off == stream.size());
    ++gaps;
    stream.append(len, '#');
  }
  void overlap_conflict(uint64_t) override { ++conflicts; }
};

std::span<const uint8_t> sp(const std::string& s, size_t pos = 0, size_t n = std::string::npos) {
  n = std::min(n, s.size() - pos);
  return {reinterpret_cast<const uint8_t*>(s.data()) + pos, n};
}

struct Fixture {
  Counters c;
  ReassemblyLimits lim;
  ReassemblyMemory mem{64u << 20, c};
};
}  // namespace

TEST_CASE("In-order segments pass straight through") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(999);
  r.segment(1000, sp("hello "), false, out);
  r.segment(1006, sp("world"), false, out);
  CHECK(out.stream == "hello world");
  CHECK(r.queued_bytes() == 0);
}

TEST_CASE("Out-of-order segments are queued and released in order") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  r.segment(7, sp("world"), false, out);
  CHECK(out.stream.empty());
  CHECK(r.queued_bytes() == 5);
  r.segment(1, sp("hello "), false, out);
  CHECK(out.stream == "hello world");
  CHECK(r.queued_bytes() == 0);
  CHECK(fx.mem.used == 0);
}

TEST_CASE("Retransmissions are dropped, overlaps keep the first copy and conflicts are reported") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  r.segment(1, sp("abcdef"), false, out);
  r.segment(1, sp("abcdef"), false, out);  // retransmission
  r.segment(4, sp("defXYZ"), false, out);  // partial overlap with delivered data
  CHECK(out.stream == "abcdefXYZ");
  CHECK(r.retransmitted_bytes() == 9);
  // Overlap between queued segments with different bytes.
  r.segment(20, sp("1234"), false, out);
  r.segment(18, sp("..99"), false, out);
  CHECK(out.conflicts == 1);
  r.segment(10, sp("ghijklmn"), false, out);
  CHECK(out.stream == "abcdefXYZghijklmn..1234");
}

TEST_CASE("A segment never seen becomes a gap once the peer acknowledged it") {
  Fixture fx;
  fx.lim.ack_gap_packets = 3;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  r.segment(1, sp("aaaa"), false, out);
  // bytes 5..8 lost; 9.. arrives
  r.segment(9, sp("cccc"), false, out);
  r.peer_ack(13);
  r.tick(out);
  r.tick(out);
  CHECK(out.gaps == 0);  // a SPAN port may still deliver it
  r.tick(out);
  CHECK(out.gaps == 1);
  CHECK(out.stream == "aaaa####cccc");
  CHECK(r.gap_bytes() == 4);
}

TEST_CASE("Late data within the grace period fills the hole without a gap") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  r.peer_ack(9);  // the ACK overtook the data
  r.tick(out);
  r.segment(1, sp("12345678"), false, out);
  r.tick(out);
  CHECK(out.gaps == 0);
  CHECK(out.stream == "12345678");
}

TEST_CASE("Flush turns remaining holes into gaps") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  r.segment(1, sp("ab"), false, out);
  r.segment(5, sp("ef"), false, out);
  r.flush(out);
  CHECK(out.stream == "ab##ef");
  CHECK(r.gaps() == 1);
}

TEST_CASE("Mid-stream pickup starts at the first byte seen") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.segment(5000, sp("middle"), false, out);
  r.segment(5006, sp("-end"), false, out);
  CHECK(out.stream == "middle-end");
  CHECK(r.midstream());
}

TEST_CASE("Sequence numbers wrap around") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0xFFFFFFF0u);
  std::string s(64, 'x');
  for (int i = 0; i < 64; ++i) s[i] = static_cast<char>('a' + i % 26);
  r.segment(0xFFFFFFF1u + 32, sp(s, 32), false, out);  // wrapped, out of order
  r.segment(0xFFFFFFF1u, sp(s, 0, 32), false, out);
  CHECK(out.stream == s);
}

TEST_CASE("Per-direction cap forces a gap and is counted") {
  Fixture fx;
  fx.lim.max_queued_bytes = 100;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  std::string chunk(60, 'z');
  r.segment(101, sp(chunk), false, out);   // queued (hole 1..100)
  r.segment(161, sp(chunk), false, out);   // would exceed 100: gap forced
  CHECK(r.limit_hits() >= 1);
  CHECK(out.gaps == 1);
  CHECK(out.stream.substr(0, 100) == std::string(100, '#'));
  CHECK(r.queued_bytes() <= 100);
}

TEST_CASE("Global memcap bounds all streams") {
  Counters c;
  ReassemblyLimits lim;
  ReassemblyMemory mem(1000, c);
  std::vector<std::unique_ptr<TcpReassembler>> rs;
  std::vector<Collector> outs(10);
  std::string chunk(300, 'q');
  for (int i = 0; i < 10; ++i) {
    rs.push_back(std::make_unique<TcpReassembler>(lim, mem));
    rs.back()->syn(0);
    rs.back()->segment(1000, sp(chunk), false, outs[i]);
    CHECK(mem.used <= 1000);
  }
  CHECK(mem.memcap_hits > 0);
  rs.clear();
  CHECK(mem.used == 0);
}

TEST_CASE("Every split point and a shuffled order give the same stream") {
  std::string s;
  for (int i = 0; i < 300; ++i) s.push_back(static_cast<char>(' ' + (i * 7) % 90));
  for (size_t a = 1; a < s.size(); a += 7) {
    for (size_t b = a + 1; b < s.size(); b += 13) {
      Fixture fx;
      TcpReassembler r(fx.lim, fx.mem);
      Collector out;
      r.syn(41);
      r.segment(42 + b, sp(s, b), false, out);
      r.segment(42, sp(s, 0, a), false, out);
      r.segment(42 + a, sp(s, a, b - a), false, out);
      REQUIRE(out.stream == s);
    }
  }
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    Fixture fx;
    TcpReassembler r(fx.lim, fx.mem);
    Collector out;
    r.syn(1000);
    std::vector<std::pair<size_t, size_t>> segs;
    for (size_t pos = 0; pos < s.size();) {
      size_t n = 1 + rng() % 40;
      n = std::min(n, s.size() - pos);
      segs.emplace_back(pos, n);
      pos += n;
    }
    // Duplicate a few (retransmissions) and shuffle.
    for (int k = 0; k < 5; ++k) segs.push_back(segs[rng() % segs.size()]);
    std::shuffle(segs.begin(), segs.end(), rng);
    for (auto [pos, n] : segs) r.segment(1001 + static_cast<uint32_t>(pos), sp(s, pos, n), false, out);
    r.flush(out);
    REQUIRE(out.stream == s);
    CHECK(out.conflicts == 0);
  }
}

TEST_CASE("A retransmission of delivered bytes with different content is reported") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  r.segment(1, sp("GET /benign"), false, out);
  r.segment(12, sp(" HTTP/1.0"), false, out);
  r.segment(1, sp("GET /benign"), false, out);  // same bytes: a plain retransmission
  CHECK(out.conflicts == 0);
  r.segment(1, sp("GET /evil!!"), false, out);  // same place, other bytes: evasion attempt
  CHECK(out.conflicts == 1);
  r.segment(1, sp("GET /benign HTTP/1.1"), false, out);  // covers both, second one differs
  CHECK(out.conflicts == 2);
  CHECK(out.stream == "GET /benign HTTP/1.0");  // the first copy wins
}

TEST_CASE("Queued one-byte segments are charged their bookkeeping against the memcap") {
  Counters c;
  ReassemblyLimits lim;
  const size_t cap = 100 * (1 + ReassemblyMemory::kSegmentOverhead);
  ReassemblyMemory mem(cap, c);
  TcpReassembler r(lim, mem);
  Collector out;
  r.syn(0);
  for (uint32_t k = 1000; k > 1; --k) {
    r.segment(k, sp("x"), false, out);
    CHECK(mem.used <= cap);
  }
  CHECK(mem.memcap_hits > 0);
  CHECK(r.queued_bytes() <= 100);
}

TEST_CASE("Hitting the per-direction segment cap is counted") {
  Fixture fx;
  fx.lim.max_queued_segments = 10;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  for (uint32_t k = 100; k > 1; k -= 2) r.segment(k, sp("y"), false, out);
  CHECK(fx.mem.direction_cap_hits > 0);
  CHECK(fx.mem.memcap_hits == 0);
}

TEST_CASE("A full-size retransmission with other content is reported, an identical one is not") {
  Fixture fx;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  std::string seg(1460, 'a'), evil = seg;
  evil.replace(0, 8, "EVILEVIL");
  r.segment(1, sp(seg), false, out);
  r.segment(1461, sp(seg), false, out);
  r.segment(1, sp(seg), false, out);
  CHECK(out.conflicts == 0);
  r.segment(1, sp(evil), false, out);
  CHECK(out.conflicts == 1);
  CHECK(out.stream == seg + seg);
}

TEST_CASE("The segment that fills the front hole is delivered even when the queue is at its caps") {
  Fixture fx;
  fx.lim.max_queued_segments = 8;
  fx.lim.max_queued_bytes = 80;
  TcpReassembler r(fx.lim, fx.mem);
  Collector out;
  r.syn(0);
  std::string data;
  for (int k = 0; k < 90; ++k) data += static_cast<char>('a' + k % 26);
  // Bytes 10..89 arrive first as eight 10-byte segments: both caps are reached exactly.
  for (uint32_t k = 1; k <= 8; ++k) r.segment(1 + 10 * k, sp(data, 10 * k, 10), false, out);
  CHECK(r.queued_bytes() == 80);
  // The missing first 10 bytes: delivered, then the queue drains behind them, no gap.
  r.segment(1, sp(data, 0, 10), false, out);
  CHECK(out.gaps == 0);
  CHECK(out.stream == data);
  CHECK(r.limit_hits() == 0);
  CHECK(r.queued_bytes() == 0);
}

TEST_CASE("A lost tail the peer acknowledged, or the sender's FIN is beyond, is a gap at the end") {
  Fixture fx;
  Collector out;
  SECTION("acknowledged, then the FIN") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("MSH|"), false, out);  // 4 of 10 bytes captured (snap length), 6 never seen
    r.peer_ack(110);
    r.segment(110, {}, true, out);
    r.peer_ack(111);  // the ACK of the FIN covers its phantom byte only
    r.flush(out);
    CHECK(out.stream == "MSH|######");
    CHECK(r.gaps() == 1);
    CHECK(r.gap_bytes() == 6);
  }
  SECTION("acknowledged, the flow ends with the input") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.peer_ack(176);
    r.flush(out);
    CHECK(r.gap_bytes() == 76);
  }
  SECTION("a lost FIN the peer acknowledged is no lost byte") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("MSH|"), false, out);
    r.peer_ack(105);  // the FIN's phantom byte after the 4 bytes seen; the FIN itself was lost
    r.flush(out);
    CHECK(out.stream == "MSH|");
    CHECK(r.gaps() == 0);
  }
  SECTION("the FIN alone") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("ab"), false, out);
    r.segment(120, {}, true, out);
    r.flush(out);
    CHECK(out.stream == "ab" + std::string(18, '#'));
  }
  SECTION("a FIN further than a window ahead is not believed") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("ab"), false, out);
    r.segment(100 + 2 + 70000, {}, true, out);
    r.flush(out, 65535);
    CHECK(out.stream == "ab");
    CHECK(r.gaps() == 0);
  }
  SECTION("everything seen: no gap") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abcd"), true, out);
    r.peer_ack(105);
    r.flush(out);
    CHECK(out.stream == "abcd");
    CHECK(r.gaps() == 0);
  }
}

namespace {
struct EndCollector : Collector {
  std::vector<uint64_t> ends;  // offsets the sink was told the stream ended at
  std::vector<size_t> at;      // and how many bytes (and gap bytes) had come before
  void end(uint64_t off) override {
    ends.push_back(off);
    at.push_back(stream.size());
  }
};
}  // namespace

TEST_CASE("The sink is told the end of the stream once it reaches the FIN in order") {
  Fixture fx;
  EndCollector out;
  SECTION("a FIN with the last bytes") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abc"), false, out);
    CHECK(out.ends.empty());
    r.segment(103, sp("de"), true, out);
    CHECK(out.ends == std::vector<uint64_t>{5});
    r.segment(103, sp("de"), true, out);  // retransmitted
    r.flush(out);
    CHECK(out.ends.size() == 1);
  }
  SECTION("a FIN before the bytes it follows: told once they came") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abc"), false, out);
    r.segment(106, {}, true, out);
    r.segment(105, sp("f"), false, out);
    CHECK(out.ends.empty());
    r.segment(103, sp("de"), false, out);
    CHECK(out.ends == std::vector<uint64_t>{6});
    CHECK(out.at == std::vector<size_t>{6});
    CHECK(out.stream == "abcdef");
  }
  SECTION("a hole before the FIN the peer acknowledged: told after the gap") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abc"), false, out);
    r.segment(106, {}, true, out);
    r.peer_ack(107);
    for (uint32_t i = 0; i < fx.lim.ack_gap_packets && out.ends.empty(); ++i) r.tick(out);
    CHECK(out.stream == "abc###");
    CHECK(out.ends == std::vector<uint64_t>{6});
  }
  SECTION("no FIN: not told") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abc"), false, out);
    r.peer_ack(104);
    r.flush(out);
    CHECK(out.ends.empty());
  }
}

TEST_CASE("An ACK one byte past the data with no FIN seen is a lost FIN while the flow goes on, as at its end") {
  Fixture fx;
  Collector out;
  SECTION("the peer goes on acknowledging it: no gap") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abcd"), false, out);  // its FIN (at 104) lost to the capture
    r.peer_ack(105);
    for (uint32_t i = 0; i < 2 * fx.lim.ack_gap_packets; ++i) r.tick(out);
    r.flush(out);
    CHECK(out.stream == "abcd");
    CHECK(r.gaps() == 0);
  }
  SECTION("a FIN one byte further shows a lost byte of data") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abcd"), false, out);
    r.peer_ack(105);
    r.segment(105, {}, true, out);
    for (uint32_t i = 0; i < fx.lim.ack_gap_packets; ++i) r.tick(out);
    CHECK(out.stream == "abcd#");
    CHECK(r.gaps() == 1);
  }
  SECTION("bytes after it show a lost byte of data") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abcd"), false, out);
    r.peer_ack(105);
    r.segment(105, sp("f"), false, out);
    for (uint32_t i = 0; i < fx.lim.ack_gap_packets; ++i) r.tick(out);
    CHECK(out.stream == "abcd#f");
  }
  SECTION("two bytes past: data") {
    TcpReassembler r(fx.lim, fx.mem);
    r.syn(99);
    r.segment(100, sp("abcd"), false, out);
    r.peer_ack(106);
    for (uint32_t i = 0; i < fx.lim.ack_gap_packets; ++i) r.tick(out);
    CHECK(out.stream == "abcd##");
  }
}
