// The stream feeder between reassembly and a dissector: probing, holding unconsumed bytes
// (bounded), and replaying what was held while probing.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "dissectors/hl7/hl7_dissector.h"
#include "dissectors/proprietary/signature.h"
#include "dissectors/sdc/sdc_dissector.h"
#include "sensor/engine/stream_feeder.h"

// Bytes allocated by this test program: holding must not copy the held bytes per segment. Not
// counted under AddressSanitizer, whose allocator must stay its own.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEDMON_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define MEDMON_TEST_ASAN 1
#endif
namespace {
std::atomic<size_t> g_allocated{0};
#ifdef MEDMON_TEST_ASAN
constexpr bool kCounting = false;
#else
constexpr bool kCounting = true;
#endif
}  // namespace
#ifndef MEDMON_TEST_ASAN
void* operator new(std::size_t n) {
  g_allocated += n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

using namespace medmon;

namespace {

// A line protocol: one record per '\n'-terminated line, with the time, direction and stream
// offset it was delivered with. It asks for one byte more each time, as text protocols do.
struct Line {
  Dir dir;
  std::string text;
  int64_t usec;
  uint64_t offset;
};
std::vector<Line> g_lines;
std::vector<std::pair<Dir, uint64_t>> g_gaps;  // on_gap calls: direction, bytes missing
std::vector<uint64_t> g_gap_offsets;             // and the stream offset each was told

class LineDissector final : public Dissector {
 public:
  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    std::string_view v(reinterpret_cast<const char*>(data.data()), data.size());
    size_t nl = v.find('\n');
    if (nl == std::string_view::npos) return {0, data.size() + 1, 0, false};
    g_lines.push_back({dir, std::string(v.substr(0, nl)), ctx.now().usec, ctx.stream_offset()});
    return {nl + 1, 0, 0, false};
  }
  void on_gap(Dir dir, uint64_t n, FlowContext& ctx) override {
    g_gaps.push_back({dir, n});
    g_gap_offsets.push_back(ctx.stream_offset());
  }
  void on_end(Dir dir, FlowContext& ctx) override { g_lines.push_back({dir, "END", ctx.now().usec, 0}); }
};
std::unique_ptr<Dissector> make_lines() { return std::make_unique<LineDissector>(); }

// Claims a direction that starts with "L".
Probe probe_l(std::span<const uint8_t> b, Dir) {
  if (b.empty()) return Probe::need_more;
  return b[0] == 'L' ? Probe::yes : Probe::no;
}
const DissectorInfo kLines = {.name = "lines", .transport = Transport::tcp, .probe = &probe_l, .make = &make_lines, .port_hints = {}};

struct Rig {
  EventOutput out;
  std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
  Pseudonymiser phi;
  EventEndpoints ep;
  FlowFacts facts;
  FlowContext ctx{out, phi, ep, facts};
  FeederLimits limits;
  ProbeHoldMemory hold{limits.probe_hold_memcap, out.counters()};
  HeldMemory held{limits.held_memcap, out.counters()};
  std::vector<const DissectorInfo*> infos;
  std::unique_ptr<StreamFeeder> feeder;
  uint64_t off[2] = {0, 0};

  explicit Rig(const DissectorInfo& info, size_t max_buffer = 2u << 20, size_t hold_cap = 64u << 20) {
    out.add_sink(sink);
    ep.flow_id = "f1";
    limits.max_buffer = max_buffer;
    hold.cap = hold_cap;
    infos.push_back(&info);
    feeder = std::make_unique<StreamFeeder>(infos, Transport::tcp, 7000, limits, &hold, &held);
    g_lines.clear();
    g_gaps.clear();
    g_gap_offsets.clear();
  }
  void data(Dir dir, std::string_view s, int64_t usec = 1) {
    ctx.set_now(Timestamp{usec});
    int i = static_cast<int>(dir);
    feeder->data(dir, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), off[i], ctx);
    off[i] += s.size();
  }
};

}  // namespace

TEST_CASE("stream feeder: a long message in small segments is held without a copy per segment") {
  Rig r(kLines);
  std::string seg(1024, 'x');
  r.data(Dir::to_server, "L");
  size_t before = g_allocated;
  for (int i = 0; i < 1024; ++i) r.data(Dir::to_server, seg);
  size_t allocated = g_allocated - before;
  r.data(Dir::to_server, "\n");
  REQUIRE(g_lines.size() == 1);
  CHECK(g_lines[0].text.size() == 1 + 1024 * 1024);
  CHECK(g_lines[0].offset == 0);
  // 1 MiB held: the vector's doublings, not 1024 copies of a growing buffer (about 1 GiB).
  if (kCounting) CHECK(allocated < 8u << 20);
  CHECK(r.out.counters().get("stream.buffer_cap_hits") == 0);
}

TEST_CASE("stream feeder: a dissector is told where lost bytes start in their direction") {
  SECTION("a hole after held bytes, the other direction delivered last") {
    Rig r(kLines);
    r.data(Dir::to_server, "Lone\nLtw");  // "Ltw" held at offset 5
    r.data(Dir::to_client, "Lresponse\nLr");
    r.feeder->gap(Dir::to_server, 100, r.ctx);
    REQUIRE(g_gaps.size() == 1);
    CHECK(g_gaps[0] == std::pair<Dir, uint64_t>{Dir::to_server, 103});
    CHECK(g_gap_offsets[0] == 5);
  }
  SECTION("held bytes over the buffer cap") {
    Rig r(kLines, 4096);
    r.data(Dir::to_server, "Lone\n");
    r.data(Dir::to_server, std::string(3000, 'y'));
    r.data(Dir::to_client, "Lresponse\n");
    r.data(Dir::to_server, std::string(3000, 'y'));
    REQUIRE(g_gaps.size() == 1);
    CHECK(g_gap_offsets[0] == 5);
  }
}

TEST_CASE("stream feeder: consumed bytes do not count against the buffer cap, held ones do") {
  // 2000 lines of 100 bytes in segments of 7 to 300 bytes, with a 4 KiB cap: every line arrives
  // whole, in order, at its offset.
  Rig r(kLines, 4096);
  std::string all;
  for (int i = 0; i < 2000; ++i) {
    std::string l(99, '.');
    l[0] = 'L';
    std::string n = std::to_string(i);
    l.replace(1, n.size(), n);
    all += l;
    all += '\n';
  }
  std::mt19937 rng(7);
  for (size_t at = 0; at < all.size();) {
    size_t n = std::min<size_t>(all.size() - at, 7 + rng() % 294);
    r.data(Dir::to_server, std::string_view(all).substr(at, n));
    at += n;
  }
  REQUIRE(g_lines.size() == 2000);
  for (size_t i = 0; i < g_lines.size(); ++i) {
    CHECK(g_lines[i].text == all.substr(i * 100, 99));
    CHECK(g_lines[i].offset == i * 100);
  }
  CHECK(r.out.counters().get("stream.buffer_cap_hits") == 0);
  CHECK(r.feeder->buffered() == 0);

  // A line longer than the cap: the held bytes are lost (counted once), the next line is read.
  r.data(Dir::to_server, std::string(3000, 'y'));
  r.data(Dir::to_server, std::string(3000, 'y'));
  CHECK(r.out.counters().get("stream.buffer_cap_hits") == 1);
  r.data(Dir::to_server, "\nLnext\n");
  REQUIRE(g_lines.size() == 2002);
  CHECK(g_lines.back().text == "Lnext");
  CHECK(g_lines.back().offset == all.size() + 6001);
}

namespace {

// Claims a flow from the server's side only ("S..." to the client), as a signature with
// `direction: to_client` does; the client's first bytes are refused (after 4 bytes).
Probe probe_server(std::span<const uint8_t> b, Dir dir) {
  if (dir == Dir::to_server) return b.size() < 4 ? Probe::need_more : Probe::no;
  if (b.empty()) return Probe::need_more;
  return b[0] == 'S' ? Probe::yes : Probe::no;
}
const DissectorInfo kServerFirst = {
    .name = "srv", .transport = Transport::tcp, .probe = &probe_server, .make = &make_lines, .port_hints = {}};

// Claims from the server's side on its first two lines ("S1\nS2\n"), so the claiming
// direction is held in pieces too.
Probe probe_two_lines(std::span<const uint8_t> b, Dir dir) {
  if (dir == Dir::to_server) return b.size() < 4 ? Probe::need_more : Probe::no;
  std::string_view v(reinterpret_cast<const char*>(b.data()), b.size());
  if (v.size() < 6) return std::string_view("S1\nS2\n").starts_with(v) ? Probe::need_more : Probe::no;
  return v.starts_with("S1\nS2\n") ? Probe::yes : Probe::no;
}
const DissectorInfo kTwoLines = {
    .name = "two", .transport = Transport::tcp, .probe = &probe_two_lines, .make = &make_lines, .port_hints = {}};

std::vector<std::string> seen() {
  std::vector<std::string> v;
  for (auto& l : g_lines)
    v.push_back(std::string(l.dir == Dir::to_server ? ">" : "<") + l.text + "@" + std::to_string(l.usec) + "+" +
                std::to_string(l.offset));
  return v;
}

}  // namespace

// The held bytes of both directions are replayed in the order they arrived, each piece with the
// time it arrived at: the client's request before the server's answer that claimed the flow.
TEST_CASE("stream feeder: a flow claimed from the server's side gets the client's first bytes, with their times") {
  SECTION("the client's request was refused before the server answered") {
    Rig r(kServerFirst);
    r.data(Dir::to_server, "Lreq1 PAT0099\n", 10);
    r.data(Dir::to_server, "Lreq2\n", 20);  // after the refusal: held too
    CHECK(r.feeder->probing());
    r.data(Dir::to_client, "Sok\n", 30);
    REQUIRE(r.feeder->claimed() == &kServerFirst);
    r.data(Dir::to_server, "Lreq3\n", 40);
    CHECK(seen() == std::vector<std::string>{">Lreq1 PAT0099@10+0", ">Lreq2@20+14", "<Sok@30+0", ">Lreq3@40+20"});
    CHECK(r.ctx.now().usec == 40);
  }
  SECTION("the client's request was still being probed when the server answered") {
    Rig r(kServerFirst);
    r.data(Dir::to_server, "L\n", 3);
    r.data(Dir::to_client, "Sok\n", 5);
    CHECK(r.ctx.now().usec == 5);  // the claiming packet's time is restored after the replay
    r.data(Dir::to_server, "Lnext\n", 7);
    CHECK(seen() == std::vector<std::string>{">L@3+0", "<Sok@5+0", ">Lnext@7+2"});
  }
  SECTION("the answer that claimed the flow came in pieces, between the client's") {
    Rig r(kTwoLines);
    r.data(Dir::to_server, "Lreq1\n", 10);
    r.data(Dir::to_client, "S1\n", 20);
    r.data(Dir::to_server, "Lreq2\n", 30);
    CHECK(r.feeder->probing());
    r.data(Dir::to_client, "S2\n", 40);
    REQUIRE(r.feeder->claimed() == &kTwoLines);
    CHECK(seen() == std::vector<std::string>{">Lreq1@10+0", "<S1@20+0", ">Lreq2@30+6", "<S2@40+3"});
    CHECK(r.ctx.now().usec == 40);
  }
  SECTION("many small pieces are all replayed") {
    Rig r(kServerFirst);
    std::string req = "L" + std::string(299, 'q');
    for (size_t i = 0; i < req.size(); ++i) r.data(Dir::to_server, req.substr(i, 1), int64_t(i));
    r.data(Dir::to_server, "\n", 1000);
    r.data(Dir::to_client, "Sok\n", 1001);
    REQUIRE(g_lines.size() == 2);
    CHECK(g_lines[0].text == req);
    CHECK(g_lines[0].usec == 1000);
    CHECK(g_lines[1].text == "Sok");
  }
  SECTION("a refused direction is held whole while the other has not spoken, counted in the budget") {
    Rig r(kServerFirst);
    std::string req = "L" + std::string(2999, 'q') + "\n";
    for (size_t at = 0; at < req.size(); at += 100) r.data(Dir::to_server, req.substr(at, 100), int64_t(10 + at));
    CHECK(r.feeder->probing());
    CHECK(r.feeder->buffered() == req.size());
    CHECK(r.hold.used == req.size() - 600);  // past the window and the segment that crosses it
    r.data(Dir::to_client, "Sok\n", 5000);
    CHECK(r.hold.used == 0);
    CHECK(g_gaps.empty());
    CHECK(seen() == std::vector<std::string>{">" + req.substr(0, req.size() - 1) + "@3010+0", "<Sok@5000+0"});
    CHECK(r.out.counters().get("stream.probe_hold_memcap_hits") == 0);
  }
  SECTION("the budget is given back when the flow ends unclaimed or both directions are refused") {
    Rig r(kServerFirst);
    r.data(Dir::to_server, "Lreq" + std::string(2000, 'q'));
    r.data(Dir::to_server, std::string(1000, 'q'));
    CHECK(r.hold.used == 1000);
    r.data(Dir::to_client, "Xno\n");
    CHECK(r.feeder->done());
    CHECK(r.hold.used == 0);
    Rig r2(kServerFirst);
    r2.data(Dir::to_server, "Lreq" + std::string(2000, 'q'));
    r2.data(Dir::to_server, std::string(1000, 'q'));
    CHECK(r2.hold.used == 1000);
    r2.feeder.reset();
    CHECK(r2.hold.used == 0);
  }
  SECTION("flows share the budget: past it, a refused direction is held as far as the probe window") {
    Rig r(kServerFirst, 2u << 20, 1500);
    r.data(Dir::to_server, "Lreq" + std::string(996, 'q'));
    r.data(Dir::to_server, std::string(1000, 'q'));
    CHECK(r.hold.used == 1000);
    StreamFeeder other(r.infos, Transport::tcp, 7000, r.limits, &r.hold);
    std::string first = "Lreq" + std::string(996, 'q'), second(1000, 'q');
    other.data(Dir::to_server, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(first.data()), first.size()), 0, r.ctx);
    other.data(Dir::to_server, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(second.data()), second.size()), 1000, r.ctx);
    CHECK(other.buffered() == 0);
    CHECK(r.hold.used == 1000);
    CHECK(r.out.counters().get("stream.probe_hold_memcap_hits") == 1);
  }
  SECTION("past the budget a refused direction is held as far as the probe window; then its offsets go on") {
    Rig r(kServerFirst, 2u << 20, 0);
    for (int i = 0; i < 5; ++i) r.data(Dir::to_server, std::string(999, 'x') + "\n", 10 + i);
    CHECK(r.feeder->probing());
    CHECK(r.feeder->buffered() == 0);
    CHECK(r.out.counters().get("stream.probe_hold_memcap_hits") == 1);
    r.data(Dir::to_client, "Sok\n", 20);
    // The dissector is told the client's first 5000 bytes are lost to it: it did not see the
    // start of that stream.
    REQUIRE(g_gaps.size() == 1);
    CHECK(g_gaps[0] == std::pair<Dir, uint64_t>{Dir::to_server, 5000});
    CHECK(g_gap_offsets[0] == 0);
    r.data(Dir::to_server, "Lafter\n", 30);
    CHECK(seen() == std::vector<std::string>{"<Sok@20+0", ">Lafter@30+5000"});
  }
  SECTION("a hole in the refused direction while probing is a gap once claimed") {
    Rig r(kServerFirst);
    r.data(Dir::to_server, "Lreq1\n", 10);
    r.feeder->gap(Dir::to_server, 100, r.ctx);
    r.off[0] += 100;
    r.data(Dir::to_client, "Sok\n", 20);
    REQUIRE(g_gaps.size() == 1);
    CHECK(g_gaps[0] == std::pair<Dir, uint64_t>{Dir::to_server, 106});
    CHECK(g_gap_offsets[0] == 0);
    r.data(Dir::to_server, "Lafter\n", 30);
    CHECK(seen() == std::vector<std::string>{"<Sok@20+0", ">Lafter@30+106"});
  }
  SECTION("a direction that ended while probing ends after its held bytes, once") {
    Rig r(kServerFirst);
    r.data(Dir::to_server, "Lreq1\n", 10);
    r.data(Dir::to_server, "Lbare", 11);  // a message the end of its stream completes
    r.ctx.set_now(Timestamp{12});
    r.feeder->end(Dir::to_server, r.ctx);
    r.data(Dir::to_client, "Sok\n", 20);
    REQUIRE(r.feeder->claimed() == &kServerFirst);
    CHECK(r.ctx.now().usec == 20);
    r.ctx.set_now(Timestamp{30});
    r.feeder->flow_end(r.ctx);
    CHECK(seen() == std::vector<std::string>{">Lreq1@10+0", ">END@12+0", "<Sok@20+0", "<END@30+0"});
  }
  SECTION("a direction that ended while being dropped still ends, after its gap") {
    Rig r(kServerFirst);
    r.data(Dir::to_server, "Lreq1\n", 10);
    r.feeder->gap(Dir::to_server, 100, r.ctx);
    r.ctx.set_now(Timestamp{15});
    r.feeder->end(Dir::to_server, r.ctx);
    r.data(Dir::to_client, "Sok\n", 20);
    REQUIRE(g_gaps.size() == 1);
    CHECK(seen() == std::vector<std::string>{">END@15+0", "<Sok@20+0"});
  }
  SECTION("both directions refused: nothing is held any more") {
    Rig r(kServerFirst);
    r.data(Dir::to_server, "Lreq1\n", 10);
    CHECK(r.feeder->buffered() == 6);
    r.data(Dir::to_client, "Xno\n", 20);
    CHECK(r.feeder->done());
    CHECK(r.feeder->buffered() == 0);
    CHECK(g_lines.empty());
  }
}

// The proprietary entry stands for every signature: it chooses the signature on the bytes that
// claimed the flow, here the server's answer, while the client's earlier request is read first.
TEST_CASE("stream feeder: a signature that matches the server's answer reads the client's earlier request first") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("medmon-feeder-sig-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "answer-first.yaml");
    f << "name: answer-first\ntransport: tcp\nprobe:\n  direction: to_client\n  bytes:\n    - {offset: 0, hex: \"41 43 02\"}\n"
         "framing:\n  length: {offset: 4, size: 2, endian: big, adjust: 6}\nfields:\n  - {name: type, offset: 3, type: u8}\n"
         "report: messages\n";
  }
  auto errors = proprietary::add_signatures(dir.string());
  fs::remove_all(dir);
  REQUIRE(errors.empty());
  auto msg = [](char magic, char type, std::string body) {
    return std::string("AC") + magic + type + char(body.size() >> 8) + char(body.size() & 0xFF) + body;
  };
  Rig r(kProprietaryInfo);
  r.data(Dir::to_server, msg(1, 1, "request"), 10);
  r.data(Dir::to_client, msg(2, 2, "answer"), 20);
  REQUIRE(r.feeder->claimed() == &kProprietaryInfo);
  CHECK(r.facts.app == "answer-first");
  r.data(Dir::to_server, msg(1, 3, "next"), 30);
  std::vector<std::string> order;
  for (size_t i = 0; i < r.sink->lines.size(); ++i) {
    if (r.sink->types[i] != "proprietary") continue;
    auto has = [&](std::string_view x) { return r.sink->lines[i].find(x) != std::string::npos; };
    order.push_back(std::string(has("\"to_server\"") ? ">" : "<") + (has("\"type\":1") ? "1" : has("\"type\":2") ? "2" : "3"));
  }
  CHECK(order == std::vector<std::string>{">1", "<2", ">3"});
  CHECK(r.out.counters().get("proprietary.answer-first.flows") == 1);
}

namespace {
// Claims a stream that starts with "L", and one picked up mid-stream also at "M".
Probe probe_m(std::span<const uint8_t> b, Dir) {
  if (b.empty()) return Probe::need_more;
  return b[0] == 'M' ? Probe::yes : Probe::no;
}
const DissectorInfo kLinesMid = {
    .name = "lines", .transport = Transport::tcp, .probe = &probe_l, .midstream_probe = &probe_m, .make = &make_lines, .port_hints = {}};
}  // namespace

TEST_CASE("stream feeder: the mid-stream probe is asked only of a direction picked up mid-stream") {
  for (bool midstream : {false, true}) {
    INFO("midstream " << midstream);
    Rig r(kLinesMid);
    r.ctx.set_midstream(Dir::to_server, midstream);
    r.data(Dir::to_server, "M1\n");
    r.data(Dir::to_server, "L2\n");
    CHECK(g_lines.size() == (midstream ? 2u : 0u));
    CHECK(r.facts.app == (midstream ? "lines" : ""));
  }
  // A direction whose start was seen is still claimed by the strict probe.
  Rig r(kLinesMid);
  r.data(Dir::to_server, "L1\n");
  CHECK(g_lines.size() == 1);
}

namespace {
const uint16_t kPort7000[] = {7000};
const DissectorInfo kLinesOn7000 = {.name = "lines7000", .transport = Transport::tcp, .probe = &probe_l, .make = &make_lines,
                                    .port_hints = kPort7000, .only_on_port_hints = true};
}  // namespace

// A signature that names ports: first on them, before an entry listed ahead of it; elsewhere not
// probed at all (the proprietary entry probes it there, after the built-in dissectors).
TEST_CASE("stream feeder: an entry probed only on its port hints") {
  for (uint16_t port : {7000, 7001}) {
    Rig r(kLines);
    std::vector<const DissectorInfo*> infos{&kLines, &kLinesOn7000};
    r.feeder = std::make_unique<StreamFeeder>(infos, Transport::tcp, port, r.limits, &r.hold);
    r.data(Dir::to_server, "Lhello\n");
    REQUIRE(r.feeder->claimed() == (port == 7000 ? &kLinesOn7000 : &kLines));
  }
  // Not hinted and alone: nothing claims the flow.
  Rig r(kLines);
  std::vector<const DissectorInfo*> only{&kLinesOn7000};
  r.feeder = std::make_unique<StreamFeeder>(only, Transport::tcp, 7001, r.limits, &r.hold);
  r.data(Dir::to_server, "Lhello\n");
  CHECK_FALSE(r.feeder->claimed());
}

TEST_CASE("stream feeder: the bytes held for claimed flows are bounded over all flows") {
  // Three flows share a 10 KiB budget; each holds an unfinished line of 4 KiB (under its own
  // 2 MiB cap). The third does not fit: its held bytes are lost as a gap, and it reads on after.
  EventOutput out;
  Pseudonymiser phi;
  FeederLimits limits;
  ProbeHoldMemory hold{limits.probe_hold_memcap, out.counters()};
  HeldMemory held{10u << 10, out.counters()};
  std::vector<const DissectorInfo*> infos{&kLines};
  struct One {
    EventEndpoints ep;
    FlowFacts facts;
    std::unique_ptr<FlowContext> ctx;
    std::unique_ptr<StreamFeeder> feeder;
    uint64_t off = 0;
  };
  std::vector<One> flows(3);
  g_lines.clear();
  g_gaps.clear();
  auto send = [&](One& f, const std::string& s) {
    f.feeder->data(Dir::to_server, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), f.off, *f.ctx);
    f.off += s.size();
  };
  for (auto& f : flows) {
    f.ep.flow_id = "f";
    f.ctx = std::make_unique<FlowContext>(out, phi, f.ep, f.facts);
    f.ctx->set_now(Timestamp{1});
    f.feeder = std::make_unique<StreamFeeder>(infos, Transport::tcp, 7000, limits, &hold, &held);
    send(f, "L" + std::string(4095, 'a'));
  }
  CHECK(held.used == 8192);
  CHECK(out.counters().get("stream.held_memcap_hits") == 1);
  REQUIRE(g_gaps.size() == 1);
  CHECK(g_gaps[0].second == 4096);
  CHECK(flows[2].feeder->buffered() == 0);
  // The third flow goes on after the gap; the first finishes its line and gives its bytes back.
  send(flows[2], "b\nLnext\n");
  send(flows[0], "\n");
  CHECK(held.used == 4096);
  REQUIRE(g_lines.size() == 3);
  CHECK(g_lines[0].text == "b");
  CHECK(g_lines[1].text == "Lnext");
  CHECK(g_lines[2].text.size() == 4096);
  // A flow that ends gives back what it held.
  flows[1].feeder.reset();
  CHECK(held.used == 0);
}

namespace {
// Lines in "K" streams: a stream of K lines carries L lines now and then; an L line that begins
// a delivery may be claimed there.
bool carried_by_k(std::span<const uint8_t> b, Dir) { return !b.empty() && b[0] == 'K'; }
Probe later_l(std::span<const uint8_t> b, Dir dir) { return probe_l(b, dir); }
const DissectorInfo kCarried = {.name = "lines", .transport = Transport::tcp, .probe = &probe_l, .make = &make_lines,
                                .port_hints = {}, .carried_by = &carried_by_k, .later_probe = &later_l};
// The same, measuring its messages (a line each), so that one pipelined behind another in a
// delivery is found too.
size_t line_length(std::span<const uint8_t> b, Dir, LaterCursor&) {
  std::string_view v(reinterpret_cast<const char*>(b.data()), b.size());
  size_t nl = v.find('\n');
  return nl == std::string_view::npos ? 0 : nl + 1;
}
const DissectorInfo kPipelined = {.name = "lines", .transport = Transport::tcp, .probe = &probe_l, .make = &make_lines,
                                  .port_hints = {}, .carried_by = &carried_by_k, .later_probe = &later_l,
                                  .later_next = &line_length};
}  // namespace

TEST_CASE("stream feeder: a flow refused on its first message is claimed at a later one it carries") {
  SECTION("watched, holding nothing, then claimed at a later delivery") {
    Rig r(kCarried);
    r.data(Dir::to_server, "Kget\n", 1);
    r.data(Dir::to_client, "Kok\n", 2);
    CHECK(r.feeder->watching());
    for (int i = 0; i < 100; ++i) {
      r.data(Dir::to_server, "Kget\n", 3);
      r.data(Dir::to_client, "Kok\n", 4);
    }
    CHECK(r.feeder->watching());
    CHECK(r.feeder->buffered() == 0);
    r.data(Dir::to_server, "Lpost\n", 5);
    CHECK(r.feeder->claimed() == &kCarried);
    r.data(Dir::to_client, "Lack\n", 6);
    REQUIRE(g_lines.size() == 2);
    CHECK(g_lines[0].text == "Lpost");
    CHECK(g_lines[0].offset == 505);
    CHECK(g_lines[1].text == "Lack");
    CHECK(g_lines[1].offset == 404);
    // What came before is a gap of each direction, from its start.
    REQUIRE(g_gaps.size() == 2);
    CHECK(g_gap_offsets[0] == 0);
    CHECK(g_gap_offsets[1] == 0);
  }
  SECTION("a later message among the bytes held while another probe waited") {
    Rig r(kCarried);
    r.data(Dir::to_server, "Kget\n", 1);
    r.data(Dir::to_server, "Lpost\n", 2);
    r.data(Dir::to_client, std::string(600, 'k'), 3);  // refused past the window
    CHECK(r.feeder->claimed() == &kCarried);
    REQUIRE(!g_lines.empty());
    CHECK(g_lines[0].text == "Lpost");
    CHECK(g_lines[0].offset == 5);
  }
  SECTION("not a carrier: let go") {
    Rig r(kLines);
    r.data(Dir::to_server, "Kget\n", 1);
    r.data(Dir::to_client, "Kok\n", 2);
    CHECK(r.feeder->done());
    r.data(Dir::to_server, "Lpost\n", 3);
    CHECK(g_lines.empty());
  }
}

TEST_CASE("stream feeder: a later message pipelined behind others in one delivery is claimed there") {
  SECTION("watched: behind a message that begins the delivery") {
    Rig r(kPipelined);
    r.data(Dir::to_server, "Kget\n", 1);
    r.data(Dir::to_client, "Kok\n", 2);
    CHECK(r.feeder->watching());
    r.data(Dir::to_server, "Kget\nKget\nLpost\n", 3);
    CHECK(r.feeder->claimed() == &kPipelined);
    r.data(Dir::to_client, "Kok\nLack\n", 4);
    REQUIRE(g_lines.size() == 3);
    CHECK(g_lines[0].text == "Lpost");
    CHECK(g_lines[0].offset == 15);
    // The bytes of the other direction are read as they come, after the gap before the claim.
    CHECK(g_lines[1].text == "Kok");
    CHECK(g_lines[2].text == "Lack");
    REQUIRE(g_gaps.size() == 2);
    CHECK(g_gaps[0].second == 15);
  }
  SECTION("in the first delivery, behind the message the probe refused") {
    Rig r(kPipelined);
    r.data(Dir::to_server, "Kget\nLpost\n", 1);
    CHECK(r.feeder->claimed() == &kPipelined);
    REQUIRE(!g_lines.empty());
    CHECK(g_lines[0].text == "Lpost");
    CHECK(g_lines[0].offset == 5);
  }
  SECTION("behind many messages: found without recursing once per message") {
    Rig r(kPipelined);
    std::string many;
    for (int i = 0; i < 20000; ++i) many += "K\n";
    r.data(Dir::to_server, "Kget\n", 1);
    r.data(Dir::to_client, "Kok\n", 2);
    r.data(Dir::to_server, many + "Lpost\n", 3);
    CHECK(r.feeder->claimed() == &kPipelined);
    REQUIRE(!g_lines.empty());
    CHECK(g_lines[0].text == "Lpost");
    CHECK(g_lines[0].offset == 5 + many.size());
  }
  SECTION("without a measure of the messages, only a delivery's start is looked at") {
    Rig r(kCarried);
    r.data(Dir::to_server, "Kget\n", 1);
    r.data(Dir::to_client, "Kok\n", 2);
    r.data(Dir::to_server, "Kget\nLpost\n", 3);
    CHECK(r.feeder->watching());
    CHECK(g_lines.empty());
  }
}

namespace {
const DissectorInfo kMidstream = {.name = "lines", .transport = Transport::tcp, .probe = &probe_l, .make = &make_lines,
                                  .port_hints = {}, .later_probe = &later_l, .later_midstream = true};
}  // namespace

TEST_CASE("stream feeder: a direction picked up mid-stream may be claimed at a later message") {
  SECTION("mid-stream: watched, claimed at a later delivery") {
    Rig r(kMidstream);
    r.ctx.set_midstream(Dir::to_server, true);
    r.ctx.set_midstream(Dir::to_client, true);
    r.data(Dir::to_server, "tail of a missed line\n", 1);
    r.data(Dir::to_client, "its answer\n", 2);
    CHECK(r.feeder->watching());
    r.data(Dir::to_server, "Lnext\n", 3);
    CHECK(r.feeder->claimed() == &kMidstream);
    REQUIRE(!g_lines.empty());
    CHECK(g_lines[0].text == "Lnext");
    CHECK(g_lines[0].offset == 22);
  }
  SECTION("from its start: let go") {
    Rig r(kMidstream);
    r.data(Dir::to_server, "tail of a missed line\n", 1);
    r.data(Dir::to_client, "its answer\n", 2);
    CHECK(r.feeder->done());
  }
}

namespace {
// Undecided until a line "L" ends what it reads (a head), and may read 8 KiB past the window.
size_t g_extent_probes = 0;
Probe probe_head(std::span<const uint8_t> b, Dir) {
  ++g_extent_probes;
  std::string_view v(reinterpret_cast<const char*>(b.data()), b.size());
  if (v.find("\nL\n") != std::string_view::npos) return Probe::yes;
  return v.size() < 8192 ? Probe::need_more : Probe::no;
}
size_t head_extent(std::span<const uint8_t>, Dir) { return 8192; }
const DissectorInfo kHead = {.name = "lines", .transport = Transport::tcp, .probe = &probe_head, .make = &make_lines,
                             .port_hints = {}, .probe_extent = &head_extent};
}  // namespace

TEST_CASE("stream feeder: past the probe window, a probe with a longer extent is asked again as the held bytes grow by an eighth") {
  SECTION("a head in one-byte segments is probed far less than once a byte, and decided") {
    Rig r(kHead);
    g_extent_probes = 0;
    std::string head = "H\n" + std::string(6000, 'x') + "\nL\n";
    for (char ch : head) r.data(Dir::to_server, std::string_view(&ch, 1));
    // At each byte up to the window, then at about 8 sizes per doubling.
    CHECK(g_extent_probes < 512 + 40);
    CHECK(r.feeder->probing());
    // The other direction sends: the held head is asked again first and claims the flow.
    r.data(Dir::to_client, "ok\n");
    CHECK(r.feeder->claimed() == &kHead);
    REQUIRE(g_lines.size() >= 2);
    CHECK(g_lines[0].text == "H");
  }
  SECTION("decided at the direction's end") {
    Rig r(kHead);
    std::string head = "H\n" + std::string(6000, 'x') + "\nL\n";
    for (char ch : head) r.data(Dir::to_server, std::string_view(&ch, 1));
    r.feeder->end(Dir::to_server, r.ctx);
    CHECK(r.feeder->claimed() == &kHead);
  }
}

namespace {
std::string http_chunked_json() {
  const std::string body = "{\"k\":\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"}";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  return "POST /api HTTP/1.1\r\nHost: lab\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
         std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
}
std::string http_post(const std::string& type, const std::string& body) {
  return "POST /in HTTP/1.1\r\nHost: lab\r\nContent-Type: " + type + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}
}  // namespace

TEST_CASE("stream feeder: a message behind another is found wherever TCP cut the two (HL7, SDC in HTTP)") {
  // Two requests of a connection kept alive, a POST of JSON in chunks and then one of HL7 (or of
  // SDC's SOAP), cut into two deliveries at every byte: after a GET the flow was refused on
  // (watched), and as the connection's first bytes. SDC measures before HL7, as on TCP 3702.
  const std::string hl7 = http_post("x-application/hl7-v2+er7",
                                    "MSH|^~\\&|EHR|WARD|LAB|HOSP|20240101120000||ADT^A01|CUT1|P|2.5\rPID|1||MRN77||QUILL^ZED\r");
  const std::string soap = http_post(
      "application/soap+xml; charset=utf-8",
      "<?xml version=\"1.0\"?><s12:Envelope xmlns:s12=\"http://www.w3.org/2003/05/soap-envelope\" "
      "xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" xmlns:msg=\"http://standards.ieee.org/downloads/11073/11073-10207-2017/message\">"
      "<s12:Header><wsa:Action>http://standards.ieee.org/downloads/11073/11073-20701-2018/GetService/GetMdib</wsa:Action>"
      "</s12:Header><s12:Body><msg:GetMdib/></s12:Body></s12:Envelope>");
  struct Case {
    const DissectorInfo* want;
    std::string second;
    std::string_view event;
  };
  for (const Case& c : {Case{&kHl7Info, hl7, "\"event_type\":\"hl7\""}, Case{&kSdcInfo, soap, "\"event_type\":\"sdc\""}}) {
    const std::string stream = http_chunked_json() + c.second;
    for (bool watched : {true, false}) {
      for (size_t cut = 1; cut < stream.size(); ++cut) {
        INFO(c.want->name << (watched ? ", watched" : ", first bytes") << ", cut at " << cut);
        Rig r(kHl7Info);
        r.infos = {&kSdcInfo, &kHl7Info};
        r.feeder = std::make_unique<StreamFeeder>(r.infos, Transport::tcp, 3702, r.limits, &r.hold, &r.held);
        if (watched) {
          r.data(Dir::to_server, "GET /health HTTP/1.1\r\nHost: lab\r\n\r\n", 1);
          r.data(Dir::to_client, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}", 2);
          REQUIRE(r.feeder->watching());
        }
        r.data(Dir::to_server, std::string_view(stream).substr(0, cut), 3);
        r.data(Dir::to_server, std::string_view(stream).substr(cut), 4);
        r.data(Dir::to_client, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 5);
        CHECK(r.feeder->claimed() == c.want);
        size_t events = 0;
        for (const auto& l : r.sink->lines) events += l.find(c.event) != std::string::npos;
        CHECK(events == 1);
        r.feeder.reset();
        CHECK(r.hold.used == 0);
      }
    }
  }
}
