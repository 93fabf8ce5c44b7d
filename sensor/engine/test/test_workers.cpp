// Offline workers run the judges once, on the caller's thread, over the merged flows: a rule
// that counts flows across the capture sees all of them whatever the number of workers, and the
// output equals one pipeline's.
#include <pcap/dlt.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "sensor/decode/test/frames.h"
#include "sensor/engine/pipeline.h"
#include "sensor/engine/workers.h"

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

std::vector<std::string> without_stats(const MemorySink& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.lines.size(); ++i)
    if (s.types[i] != "stats") out.push_back(s.lines[i]);
  return out;
}

std::vector<std::string> run_single(CountingJudge& judge) {
  EventOutput out;
  auto sink = std::make_shared<MemorySink>();
  out.add_sink(sink);
  Pseudonymiser phi;
  SensorConfig cfg;
  Pipeline p(cfg, Depth::policy, out, phi, {&judge});
  p.set_linktype(DLT_EN10MB);
  for (auto& f : scan()) p.packet(f.bytes.data(), uint32_t(f.bytes.size()), uint32_t(f.bytes.size()), f.ts);
  p.finish(FlowEnd::end_of_input);
  return without_stats(*sink);
}

std::vector<std::string> run_workers(int n, CountingJudge& judge) {
  EventOutput out;
  auto sink = std::make_shared<MemorySink>();
  out.add_sink(sink);
  Pseudonymiser phi;
  SensorConfig cfg;
  OfflineWorkers w(n, cfg, Depth::policy, phi, out, {&judge});
  w.set_linktype(DLT_EN10MB);
  for (auto& f : scan()) w.packet(f.bytes.data(), uint32_t(f.bytes.size()), uint32_t(f.bytes.size()), f.ts);
  w.finish(FlowEnd::end_of_input);
  return without_stats(*sink);
}

size_t count(const std::vector<std::string>& lines, std::string_view needle) {
  size_t n = 0;
  for (auto& l : lines) n += l.find(needle) != std::string::npos;
  return n;
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

TEST_CASE("with_verdict adds the verdict members before the closing brace") {
  CHECK(with_verdict(R"({"a":1,"flow":{"x":2}})", {"declared", "r1", {}}) ==
        R"({"a":1,"flow":{"x":2},"verdict":"declared","verdict_rule":"r1"})");
  CHECK(with_verdict(R"({"a":1})", {"forbidden", "", {"CONN-4", "RMOT-1"}}) ==
        R"({"a":1,"verdict":"forbidden","mds2":["CONN-4","RMOT-1"]})");
  CHECK(with_verdict(R"({"a":1})", {}) == R"({"a":1})");
  CHECK(with_verdict(R"({"a":1})", {"q\"x", "", {}}) == R"({"a":1,"verdict":"q\"x"})");
}
