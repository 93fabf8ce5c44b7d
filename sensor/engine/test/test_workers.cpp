// Offline workers run the judges once, on the caller's thread, over the merged flows: a rule
// that counts flows across the capture sees all of them whatever the number of workers, and the
// output equals one pipeline's.
#include <pcap/dlt.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sensor/decode/test/frames.h"
#include "sensor/engine/pipeline.h"
#include "sensor/engine/workers.h"
#include "dissectors/api/worker_budget.h"

using namespace medmon;
using namespace medmon::test;

namespace {

// Counts the flows of the capture (cross-flow state), alerts once on the tenth, and gives every
// flow a verdict naming its port.
class CountingJudge : public FlowJudge {
 public:
  FlowVerdict judge(const FlowSummary& f, EventOutput& out) override {
    threads.push_back(std::this_thread::get_id());
    ports.push_back(f.ep.dst_port);
    if (++flows == 10) {
      auto& w = out.begin("alert", f.end, &f.ep);
      w.object("alert");
      w.field("rule", "test.tenth_flow");
      w.end_object();
      out.end();
    }
    return {"undeclared", "port-" + std::to_string(f.ep.dst_port), {"CONN-4"}};
  }
  void finish(Timestamp now, EventOutput& out) override {
    auto& w = out.begin("judge_end", now, nullptr);
    w.field("flows", flows);
    out.end();
  }
  int flows = 0;
  std::vector<std::thread::id> threads;
  std::vector<uint16_t> ports;
};

struct Frame {
  Bytes bytes;
  Timestamp ts;
};

// 20 connections from one host to 20 ports of another, each refused (SYN, RST), one after the other.
std::vector<Frame> scan() {
  std::vector<Frame> frames;
  int64_t t = 1'700'000'000'000'000;
  for (uint16_t i = 0; i < 20; ++i) {
    uint16_t sport = static_cast<uint16_t>(40000 + i), dport = static_cast<uint16_t>(1000 + i);
    frames.push_back({ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 6, tcp(sport, dport, 100, 0, tcpflag::SYN))), {t += 1000}});
    frames.push_back({ether(0x0800, ipv4(ip4(10, 0, 0, 2), ip4(10, 0, 0, 1), 6,
                                         tcp(dport, sport, 0, 101, tcpflag::RST | tcpflag::ACK))), {t += 1000}});
  }
  return frames;
}

// The events of one pipeline (workers 0) or of `workers` offline workers.
std::shared_ptr<MemorySink> run(const std::vector<Frame>& frames, int workers, std::vector<FlowJudge*> judges = {},
                                const SensorConfig& cfg = {}) {
  EventOutput out;
  auto sink = std::make_shared<MemorySink>();
  out.add_sink(sink);
  Pseudonymiser phi;
  if (workers == 0) {
    Pipeline p(cfg, Depth::policy, out, phi, judges);
    p.set_linktype(DLT_EN10MB);
    for (auto& f : frames) p.packet(f.bytes.data(), uint32_t(f.bytes.size()), uint32_t(f.bytes.size()), f.ts);
    p.finish(FlowEnd::end_of_input);
  } else {
    OfflineWorkers w(workers, cfg, Depth::policy, phi, out, judges);
    w.set_linktype(DLT_EN10MB);
    for (auto& f : frames) w.packet(f.bytes.data(), uint32_t(f.bytes.size()), uint32_t(f.bytes.size()), f.ts);
    w.finish(FlowEnd::end_of_input);
  }
  return sink;
}

std::vector<std::string> without_stats(const MemorySink& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.lines.size(); ++i)
    if (s.types[i] != "stats") out.push_back(s.lines[i]);
  return out;
}

std::string stats(const MemorySink& s) {
  for (size_t i = 0; i < s.lines.size(); ++i)
    if (s.types[i] == "stats") return s.lines[i];
  return {};
}

std::vector<std::string> run_single(CountingJudge& judge) { return without_stats(*run(scan(), 0, {&judge})); }

std::vector<std::string> run_workers(int n, CountingJudge& judge) { return without_stats(*run(scan(), n, {&judge})); }

size_t count(const std::vector<std::string>& lines, std::string_view needle) {
  size_t n = 0;
  for (auto& l : lines) n += l.find(needle) != std::string::npos;
  return n;
}

// IPv4 fragments of an L4 datagram, `piece` bytes each (a multiple of 8), in offset order.
std::vector<Bytes> fragments4(uint32_t src, uint32_t dst, uint8_t proto, const Bytes& l4, uint16_t id, size_t piece) {
  std::vector<Bytes> out;
  for (size_t off = 0; off < l4.size(); off += piece) {
    size_t n = std::min(piece, l4.size() - off);
    bool more = off + n < l4.size();
    Bytes part(l4.begin() + off, l4.begin() + off + n);
    out.push_back(ether(0x0800, ipv4(src, dst, proto, part, id, uint16_t((more ? 0x2000 : 0) | off / 8))));
  }
  return out;
}

// Puts the first fragment last: all of them, or only it, after the others in order.
void first_last(std::vector<Bytes>& f, bool reverse_all) {
  if (reverse_all) std::reverse(f.begin(), f.end());
  else std::rotate(f.begin(), f.begin() + 1, f.end());
}

// Between two hosts: HTTP requests and UDP and ICMP echo requests sent as fragments (in order,
// all reversed, or only the first fragment last), each answered unfragmented. One address pair,
// many port pairs: with the fragments hashed on the addresses, most flows would be split.
std::vector<Frame> fragmented_conversations() {
  std::vector<Frame> frames;
  int64_t t = 1'700'000'000'000'000;
  auto add = [&](Bytes b) { frames.push_back({std::move(b), {t += 1000}}); };
  auto add_all = [&](const std::vector<Bytes>& fs) { for (auto& f : fs) add(f); };
  const uint32_t a = ip4(10, 1, 0, 1), b = ip4(10, 1, 0, 2);
  const std::string body(900, 'b');
  uint16_t id = 100;
  for (uint16_t i = 0; i < 9; ++i) {
    uint16_t cport = static_cast<uint16_t>(41000 + i);
    add(ether(0x0800, ipv4(a, b, 6, tcp(cport, 8080, 100, 0, tcpflag::SYN), ++id)));
    add(ether(0x0800, ipv4(b, a, 6, tcp(8080, cport, 500, 101, tcpflag::SYN | tcpflag::ACK), ++id)));
    add(ether(0x0800, ipv4(a, b, 6, tcp(cport, 8080, 101, 501, tcpflag::ACK), ++id)));
    std::string req = "POST /upload HTTP/1.1\r\nHost: pacs\r\nContent-Length: 900\r\n\r\n" + body;
    auto f = fragments4(a, b, 6, tcp(cport, 8080, 101, 501, tcpflag::ACK | tcpflag::PSH, req), ++id, 256);
    if (i % 3) first_last(f, i % 3 == 1);
    add_all(f);
    std::string resp = "HTTP/1.1 204 No Content\r\n\r\n";
    add(ether(0x0800, ipv4(b, a, 6, tcp(8080, cport, 501, uint32_t(101 + req.size()), tcpflag::ACK | tcpflag::PSH, resp), ++id)));
    add(ether(0x0800, ipv4(a, b, 6, tcp(cport, 8080, uint32_t(101 + req.size()), uint32_t(501 + resp.size()),
                                         tcpflag::ACK | tcpflag::FIN), ++id)));
    add(ether(0x0800, ipv4(b, a, 6, tcp(8080, cport, uint32_t(501 + resp.size()), uint32_t(102 + req.size()),
                                         tcpflag::ACK | tcpflag::FIN), ++id)));

    uint16_t uport = static_cast<uint16_t>(42000 + i);
    f = fragments4(a, b, 17, udp(uport, 7000, std::string(700, 'u')), ++id, 200);
    if (i % 3) first_last(f, i % 3 == 1);
    add_all(f);
    add(ether(0x0800, ipv4(b, a, 17, udp(7000, uport, "ok"), ++id)));

    Bytes echo = {8, 0, 0, 0, uint8_t(i >> 8), uint8_t(i), 0, 1};
    echo.resize(600, 'e');
    f = fragments4(a, b, 1, echo, ++id, 256);
    if (i % 3) first_last(f, i % 3 == 1);
    add_all(f);
    Bytes reply = {0, 0, 0, 0, uint8_t(i >> 8), uint8_t(i), 0, 1, 'r'};
    add(ether(0x0800, ipv4(b, a, 1, reply, ++id)));
  }
  return frames;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("Offline workers judge every flow once, on the merging thread") {
  for (int n : {2, 3, 5}) {
    INFO(n << " workers");
    CountingJudge judge;
    auto lines = run_workers(n, judge);
    CHECK(judge.flows == 20);
    for (auto id : judge.threads) CHECK(id == std::this_thread::get_id());
    // The flows spread over the workers, yet the count across them reached ten once.
    CHECK(count(lines, "\"test.tenth_flow\"") == 1);
    CHECK(count(lines, "\"event_type\":\"judge_end\",\"flows\":20") == 1);
    // Every flow event carries the verdict of its own flow, at its end.
    size_t flows = 0;
    for (auto& l : lines) {
      if (l.find("\"event_type\":\"flow\"") == std::string::npos) continue;
      ++flows;
      auto port = l.find("\"dst_port\":");
      REQUIRE(port != std::string::npos);
      std::string p = l.substr(port + 11, 4);
      std::string tail = ",\"verdict\":\"undeclared\",\"verdict_rule\":\"port-" + p + "\",\"mds2\":[\"CONN-4\"]}";
      CHECK(l.ends_with(tail));
    }
    CHECK(flows == 20);
  }
}

TEST_CASE("Offline workers write what one pipeline writes") {
  CountingJudge one, three, again;
  auto a = run_single(one);
  auto b = run_workers(3, three);
  auto c = run_workers(3, again);
  CHECK(b == c);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("line " << i);
    CHECK(a[i] == b[i]);
  }
  CHECK(one.ports == three.ports);
}

TEST_CASE("Every fragment of a datagram goes to the worker of its flow") {
  auto frames = fragmented_conversations();
  auto events = without_stats(*run(frames, 0));
  REQUIRE(count(events, "\"event_type\":\"flow\"") == 27);
  CHECK(count(events, "\"state\":\"closed\"") == 9);
  for (int n : {2, 3, 5}) {
    INFO(n << " workers");
    auto many = run(frames, n);
    // Ties in time may merge in another order; the events themselves are the same.
    CHECK(sorted(without_stats(*many)) == sorted(events));
    // Waiting for their first fragment: 3 TCP, 3 UDP and 2 ICMP fragments in 6 rounds of 9.
    CHECK(stats(*many).find("\"workers.fragments.held\":48") != std::string::npos);
    CHECK(stats(*many).find("\"workers.fragments.unmatched\"") == std::string::npos);
    CHECK(stats(*many).find("\"ip.fragments.reassembled\":27") != std::string::npos);
  }
}

TEST_CASE("A packet with a later time before the fragments does not end their wait") {
  // As when a later capture file is read first: one packet an hour after the conversations.
  // Held fragments wait by their own time, as one pipeline's fragment table keeps them.
  std::vector<Frame> frames = {{ether(0x0800, ipv4(ip4(10, 3, 0, 1), ip4(10, 3, 0, 2), 17, udp(5353, 5353, "later"))),
                                {1'700'000'000'000'000 + 3'600'000'000}}};
  for (auto& f : fragmented_conversations()) frames.push_back(f);
  auto events = without_stats(*run(frames, 0));
  REQUIRE(count(events, "\"event_type\":\"flow\"") == 28);
  for (int n : {2, 3, 5}) {
    INFO(n << " workers");
    auto many = run(frames, n);
    CHECK(sorted(without_stats(*many)) == sorted(events));
    CHECK(stats(*many).find("\"workers.fragments.unmatched\"") == std::string::npos);
    CHECK(stats(*many).find("\"ip.fragments.reassembled\":27") != std::string::npos);
  }
}

TEST_CASE("An IPv6 datagram with destination options after its fragment header goes to its flow's worker") {
  // Eight UDP flows between one address pair; each sends a datagram, a fragmented one whose
  // fragment header is followed by destination options, and another datagram.
  std::vector<Frame> frames;
  int64_t t = 1'700'000'000'000'000;
  const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  for (uint8_t i = 0; i < 8; ++i) {
    uint16_t sport = static_cast<uint16_t>(5000 + i);
    frames.push_back({ether(0x86DD, ipv6(a, b, 17, udp(sport, 7000, "one"))), {t += 1000}});
    Bytes inner = {17, 0, 1, 4, 0, 0, 0, 0};  // destination options -> UDP
    auto u = udp(sport, 7000, std::string(40, 'f'));
    inner.insert(inner.end(), u.begin(), u.end());  // 56 bytes
    Bytes f1 = {60, 0, 0, 1, 0, 0, 0, i}, f2 = {60, 0, 0, 32, 0, 0, 0, i};
    f1.insert(f1.end(), inner.begin(), inner.begin() + 32);
    f2.insert(f2.end(), inner.begin() + 32, inner.end());
    frames.push_back({ether(0x86DD, ipv6(a, b, 44, f1)), {t += 1000}});
    frames.push_back({ether(0x86DD, ipv6(a, b, 44, f2)), {t += 1000}});
    frames.push_back({ether(0x86DD, ipv6(a, b, 17, udp(sport, 7000, "two"))), {t += 1000}});
  }
  auto events = without_stats(*run(frames, 0));
  REQUIRE(count(events, "\"event_type\":\"flow\"") == 8);
  for (int n : {2, 3, 4}) {
    INFO(n << " workers");
    CHECK(sorted(without_stats(*run(frames, n))) == sorted(events));
  }
}

TEST_CASE("Fragments whose first fragment does not come go on the address pair") {
  const uint32_t a = ip4(10, 2, 0, 1), b = ip4(10, 2, 0, 2);
  // A 24-byte UDP datagram in two fragments: the header (port 40000 + id), then the rest.
  auto first = [&](uint16_t id) {
    Bytes l4 = udp(static_cast<uint16_t>(40000 + id), 7000, std::string(16, 'z'));
    return ether(0x0800, ipv4(a, b, 17, Bytes(l4.begin(), l4.begin() + 8), id, 0x2000));
  };
  auto rest = [&](uint16_t id) { return ether(0x0800, ipv4(a, b, 17, Bytes(16, 'z'), id, 1)); };
  auto has = [](const std::string& stats, const std::string& counter) { return stats.find(counter) != std::string::npos; };
  int64_t t = 1'700'000'000'000'000;

  SECTION("more datagrams than fragments.max_datagrams: the oldest are given up") {
    std::vector<Frame> frames;
    for (uint16_t id = 0; id < 20; ++id) frames.push_back({rest(id), {t += 1000}});
    SensorConfig cfg;
    cfg.fragments.max_datagrams = 8;
    auto st = stats(*run(frames, 2, {}, cfg));
    CHECK(has(st, "\"workers.fragments.held\":20,"));
    CHECK(has(st, "\"workers.fragments.evicted\":12,"));
    CHECK(has(st, "\"workers.fragments.unmatched\":8"));
    CHECK(has(st, "\"ip.fragments.seen\":20,"));  // all reached a worker
  }

  SECTION("held past the fragment timeout") {
    std::vector<Frame> frames = {{rest(1), {t}}};
    frames.push_back({ether(0x0800, ipv4(a, b, 6, tcp(1, 2, 0, 0, tcpflag::SYN))), {t + 31'000'000}});
    frames.push_back({first(1), {t + 31'001'000}});  // too late: a datagram of its own
    auto st = stats(*run(frames, 2));
    CHECK(has(st, "\"workers.fragments.held\":1,"));
    CHECK(has(st, "\"workers.fragments.unmatched\":1"));
    CHECK_FALSE(has(st, "\"ip.fragments.reassembled\""));
  }

  SECTION("more fragments than the reader holds: the datagram stays whole on the address pair") {
    std::vector<Frame> frames;
    for (uint16_t id = 0; id < 4112; ++id) frames.push_back({rest(id), {t += 10}});
    // The 16 given up, then their first fragments: each follows the rest of its datagram,
    // though most of their ports hash elsewhere.
    for (uint16_t id = 0; id < 16; ++id) frames.push_back({first(id), {t += 10}});
    SensorConfig cfg;
    cfg.fragments.max_datagrams = 10000;
    auto st = stats(*run(frames, 3, {}, cfg));
    CHECK(has(st, "\"workers.fragments.held\":4112,"));
    CHECK(has(st, "\"workers.fragments.evicted\":16,"));
    CHECK(has(st, "\"workers.fragments.unmatched\":4096"));
    CHECK(has(st, "\"ip.fragments.reassembled\":16,"));
  }

  SECTION("a new input file sends the held fragments with their own link type") {
    EventOutput out;
    auto sink = std::make_shared<MemorySink>();
    out.add_sink(sink);
    Pseudonymiser phi;
    OfflineWorkers w(2, SensorConfig{}, Depth::policy, phi, out, {});
    w.set_linktype(DLT_EN10MB);
    auto f = rest(1);
    w.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), {t});
    w.set_linktype(DLT_RAW);
    w.finish(FlowEnd::end_of_input);
    auto st = stats(*sink);
    CHECK(has(st, "\"workers.fragments.unmatched\":1"));
    CHECK(has(st, "\"ip.fragments.seen\":1,"));
    CHECK_FALSE(has(st, "\"decode.malformed\""));
  }
}

TEST_CASE("with_verdict adds the verdict members before the closing brace") {
  CHECK(with_verdict(R"({"a":1,"flow":{"x":2}})", {"declared", "r1", {}}) ==
        R"({"a":1,"flow":{"x":2},"verdict":"declared","verdict_rule":"r1"})");
  CHECK(with_verdict(R"({"a":1})", {"forbidden", "", {"CONN-4", "RMOT-1"}}) ==
        R"({"a":1,"verdict":"forbidden","mds2":["CONN-4","RMOT-1"]})");
  CHECK(with_verdict(R"({"a":1})", {}) == R"({"a":1})");
  CHECK(with_verdict(R"({"a":1})", {"q\"x", "", {}}) == R"({"a":1,"verdict":"q\"x"})");
}

TEST_CASE("A worker's flows time out with the input's time, whichever worker the later packets go to") {
  // A UDP flow, then 200 s later (past the 120 s UDP timeout) one packet of another flow: over
  // several ports the later flow hashes to every worker in turn.
  for (uint16_t port = 6000; port < 6006; ++port) {
    int64_t t = 1'700'000'000'000'000;
    std::vector<Frame> frames;
    frames.push_back({ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 17, udp(5000, 53, "a"))), {t}});
    frames.push_back({ether(0x0800, ipv4(ip4(10, 0, 0, 3), ip4(10, 0, 0, 4), 17, udp(port, 53, "b"))),
                      {t + 200'000'000}});
    auto one = without_stats(*run(frames, 0));
    REQUIRE(count(one, "\"state\":\"idle_timeout\"") == 1);
    for (int n : {2, 3}) {
      INFO("port " << port << ", " << n << " workers");
      CHECK(sorted(without_stats(*run(frames, n))) == sorted(one));
    }
  }
}

TEST_CASE("The workers' shares of a cap over all flows add up to it") {
  SensorConfig cfg;
  cfg.flows.max_flows = 10;
  cfg.reassembly_memcap = 65536 + 3;
  cfg.fragments.max_datagrams = 2;
  for (int n : {1, 2, 3, 4}) {
    INFO(n << " workers");
    size_t flows = 0, memcap = 0, datagrams = 0;
    for (int i = 0; i < n; ++i) {
      SensorConfig w = worker_share(cfg, n, i);
      flows += w.flows.max_flows;
      memcap += w.reassembly_memcap;
      datagrams += w.fragments.max_datagrams;
      CHECK(w.flows.tcp_idle_usec == cfg.flows.tcp_idle_usec);  // not a cap over all flows
    }
    CHECK(flows == 10);
    CHECK(memcap == 65536 + 3);
    CHECK(datagrams == size_t(std::max(n, 2)));  // at least one each
  }
}

TEST_CASE("workers: each worker thread has its own share of a dissector's byte budget") {
  struct Tag {};
  struct Budget {
    explicit Budget(size_t c) : cap(c) {}
    size_t cap;
  };
  set_worker_slots(4);
  std::vector<Budget*> seen(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&seen, i] {
      set_worker_slot(i);
      seen[static_cast<size_t>(i)] = &worker_budget<Tag, Budget>(1000, 100);
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < 4; ++i) {
    CHECK(seen[i]->cap == 250);
    for (size_t j = 0; j < i; ++j) CHECK(seen[i] != seen[j]);
  }
  // A thread that is no worker (a single pipeline) is worker 0.
  CHECK(&worker_budget<Tag, Budget>(1000, 100) == seen[0]);
  // A share is never below what one message may hold.
  struct Tag2 {};
  std::thread([] {
    set_worker_slot(3);
    CHECK(worker_budget<Tag2, Budget>(1000, 400).cap == 400);
  }).join();
  set_worker_slots(1);
}
