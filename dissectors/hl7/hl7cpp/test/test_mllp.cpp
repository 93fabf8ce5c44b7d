#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "hl7cpp/mllp.h"

using namespace hl7cpp;

namespace {
struct Rec : MllpHandler {
  std::vector<std::string> log;
  void frame(const MllpFrame& f) override {
    log.push_back("F@" + std::to_string(f.offset) + (f.terminated ? "" : "!") + (f.start_block ? "" : "?") + ":" +
                  std::string(f.payload));
  }
  void anomaly(MllpAnomaly a, uint64_t off) override { log.push_back(std::string("A:") + to_string(a) + "@" + std::to_string(off)); }
};

std::vector<std::string> run(const std::string& s, const std::vector<size_t>& cuts, size_t max = 1 << 20) {
  MllpFramer f(max);
  Rec r;
  size_t p = 0;
  for (size_t c : cuts) { f.feed(s.substr(p, c - p), r); p = c; }
  f.feed(s.substr(p), r);
  f.finish(r);
  return r.log;
}
}  // namespace

TEST_CASE("frames and their offsets") {
  std::string s = "\x0bMSH|a\rPID|1\r\x1c\r\x0bMSH|b\x1c\r";
  auto log = run(s, {});
  REQUIRE(log.size() == 2);
  CHECK(log[0] == "F@0:MSH|a\rPID|1\r");
  CHECK(log[1] == "F@15:MSH|b");
}

TEST_CASE("framing is split-invariant, anomalies included") {
  std::string s = "xx\x0bMSH|a\x1c\r\n\x0bMSH|b\x1cZ\x0bMSH|c\x0bMSH|d\x1c\r\r\nMSH|e\x1c\rjunk\x0bMSH|f";
  auto want = run(s, {});
  CHECK(want == std::vector<std::string>{
                    "A:data_outside_frame@0", "F@2:MSH|a", "F@11:MSH|b", "A:bad_end_block@18",
                    "A:data_outside_frame@18", "F@19!:MSH|c", "A:missing_end_block@25", "F@25:MSH|d",
                    "A:missing_start_block@35", "F@35?:MSH|e", "A:data_outside_frame@42", "A:unterminated_frame@46",
                    "F@46!:MSH|f"});
  for (size_t a = 0; a <= s.size(); ++a)
    for (size_t b = a; b <= s.size(); ++b) {
      INFO("cuts " << a << "," << b);
      REQUIRE(run(s, {a, b}) == want);
    }
}

TEST_CASE("frames over the cap are skipped, the same for every split") {
  std::string s = "\x0bMSH|0123456789\x1c\r\x0bMSH|ok\x1c\r\x0bMSH|0123456789\x0bMSH|ok2\x1c\r";
  auto want = run(s, {}, 8);
  CHECK(want == std::vector<std::string>{"A:frame_too_large@0", "F@17:MSH|ok", "A:frame_too_large@26",
                                         "F@41:MSH|ok2"});
  for (size_t a = 0; a <= s.size(); ++a) REQUIRE(run(s, {a}, 8) == want);
}

TEST_CASE("a gap drops the frame in progress and resyncs silently") {
  MllpFramer f;
  Rec r;
  f.feed(std::string("\x0bMSH|a"), r);
  f.gap(100, r);
  f.feed(std::string("tail of lost frame\x1c\r\x0bMSH|b\x1c\r"), r);
  f.finish(r);
  CHECK(r.log == std::vector<std::string>{"A:unterminated_frame@0", "F@126:MSH|b"});
}

TEST_CASE("random streams: same frames for random chunkings") {
  std::mt19937 rng(3);
  const std::string alpha = "\x0b\x1c\rMSH|x\n ";
  for (int round = 0; round < 200; ++round) {
    std::string s;
    size_t n = std::uniform_int_distribution<size_t>(0, 200)(rng);
    for (size_t i = 0; i < n; ++i) s += alpha[std::uniform_int_distribution<size_t>(0, alpha.size() - 1)(rng)];
    auto want = run(s, {}, 16);
    std::vector<size_t> cuts;
    for (size_t i = 0; i < s.size(); ++i)
      if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) cuts.push_back(i);
    REQUIRE(run(s, cuts, 16) == want);
  }
}

TEST_CASE("bare messages end where the next one begins, the same for every split") {
  // Two bare messages, a bare batch (split only after its trailer), junk then a message on a new
  // line, and a message closed by the stream end.
  std::string s = "MSH|a\rPID|1\rMSH|b\r\nEVN|x\rBHS|c\rMSH|d\rMSH|e\rBTS|2\rMSH|f\rjunk\rMSH|g\rPID|MSH\r";
  auto want = run(s, {});
  CHECK(want == std::vector<std::string>{"A:missing_start_block@0", "F@0?:MSH|a\rPID|1\r", "F@12?:MSH|b\r\nEVN|x\r",
                                         "F@25?:BHS|c\rMSH|d\rMSH|e\rBTS|2\r", "F@49?:MSH|f\rjunk\r",
                                         "F@60?:MSH|g\rPID|MSH\r"});
  for (size_t a = 0; a <= s.size(); ++a)
    for (size_t b = a; b <= s.size(); ++b) {
      INFO("cuts " << a << "," << b);
      REQUIRE(run(s, {a, b}) == want);
    }
}

TEST_CASE("a bare message after junk or after MLLP frames is found at a line start") {
  auto want = std::vector<std::string>{"A:data_outside_frame@0", "A:missing_start_block@5", "F@5?:MSH|a\r"};
  CHECK(run("junk\rMSH|a\r", {}) == want);
  std::string s = "\x0bMSH|m\x1c\rMSH|a\r\x0bMSH|n\x1c\rMSH|b\r";
  // A start block after a bare message ends it whole (a bare message has no end block to miss).
  want = {"F@0:MSH|m", "A:missing_start_block@8", "F@8?:MSH|a\r", "F@14:MSH|n", "A:missing_start_block@22",
          "F@22?:MSH|b\r"};
  for (size_t a = 0; a <= s.size(); ++a) REQUIRE(run(s, {a}) == want);
}

TEST_CASE("end_bare_message closes a bare message, not an MLLP frame") {
  MllpFramer f;
  Rec r;
  f.feed(std::string("MSH|a\rPID|1"), r);
  f.end_bare_message(r);  // the peer answered
  f.feed(std::string("\rMSH|b\r"), r);
  f.end_bare_message(r);
  f.feed(std::string("\x0bMSH|c"), r);
  f.end_bare_message(r);
  f.feed(std::string("\x1c\r"), r);
  f.finish(r);
  CHECK(r.log == std::vector<std::string>{"A:missing_start_block@0", "F@0?:MSH|a\rPID|1", "F@12?:MSH|b\r",
                                          "F@18:MSH|c"});
}

TEST_CASE("a bare stream resyncs after a gap and stays within the frame cap") {
  MllpFramer f(16);
  Rec r;
  f.feed(std::string("MSH|a\rPID|1\rMSH|b\rPID|"), r);
  f.gap(100, r);
  f.feed(std::string("tail\rMSH|c\rPID|0123456789012345\rMSH|d\r"), r);
  f.finish(r);
  CHECK(r.log == std::vector<std::string>{"A:missing_start_block@0", "F@0?:MSH|a\rPID|1\r", "A:unterminated_frame@12",
                                          "A:frame_too_large@127", "F@154?:MSH|d\r"});
}

TEST_CASE("random bare streams: same frames for random chunkings") {
  std::mt19937 rng(5);
  const std::vector<std::string> parts = {"MSH|", "FHS|", "BHS|", "BTS|", "FTS|", "PID|", "\r", "\n", "x", " ",
                                          "MS",   "\x0b", "\x1c"};
  for (int round = 0; round < 300; ++round) {
    std::string s;
    size_t n = std::uniform_int_distribution<size_t>(0, 60)(rng);
    for (size_t i = 0; i < n; ++i) s += parts[std::uniform_int_distribution<size_t>(0, parts.size() - 1)(rng)];
    auto want = run(s, {}, 24);
    for (int k = 0; k < 20; ++k) {
      std::vector<size_t> cuts;
      for (size_t i = 0; i < s.size(); ++i)
        if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) cuts.push_back(i);
      REQUIRE(run(s, cuts, 24) == want);
    }
  }
}

TEST_CASE("a bare message ended by a start block is complete, the same for every split") {
  std::string s = "MSH|^~\\&|A|1\rPID|1\r\x0bMSH|^~\\&|B|2\x1c\r";
  auto want = run(s, {});
  CHECK(want == std::vector<std::string>{"A:missing_start_block@0", "F@0?:MSH|^~\\&|A|1\rPID|1\r",
                                         "F@19:MSH|^~\\&|B|2"});
  for (size_t a = 0; a <= s.size(); ++a) REQUIRE(run(s, {a}) == want);
}

TEST_CASE("a byte order mark before a bare message's header is skipped") {
  std::string s = "\xEF\xBB\xBFMSH|^~\\&|A|1\r";
  auto want = run(s, {});
  CHECK(want == std::vector<std::string>{"A:missing_start_block@3", "F@3?:MSH|^~\\&|A|1\r"});
  for (size_t a = 0; a <= s.size(); ++a) REQUIRE(run(s, {a}) == want);
}

TEST_CASE("frames assembled across chunks share a memory budget") {
  MllpMemory memory(100);
  Rec r1, r2;
  {
    MllpFramer a(1000, &memory), b(1000, &memory);
    a.feed(std::string("\x0bMSH|") + std::string(60, 'a'), r1);
    CHECK(memory.used == 64);
    b.feed(std::string("\x0bMSH|") + std::string(60, 'b'), r2);  // 64 more would pass 100
    CHECK(r2.log == std::vector<std::string>{"A:frame_memory_budget@0"});
    CHECK(memory.used == 64);
    b.feed(std::string("bbb\x1c\r\x0bMSH|ok\x1c\r"), r2);  // skipped to its end, then framing goes on
    CHECK(r2.log.back() == "F@70:MSH|ok");
    a.feed(std::string("\x1c\r"), r1);
    CHECK(r1.log.size() == 1);
    CHECK(memory.used == 0);
    a.feed(std::string("\x0bMSH|x"), r1);
    CHECK(memory.used == 5);
  }
  CHECK(memory.used == 0);  // a framer gives its bytes back when it goes
}
