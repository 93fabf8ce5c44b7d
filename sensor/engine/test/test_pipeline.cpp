// The pipeline from frames to flow summaries: what the link layer and TCP hand to the flow.
#include <pcap/dlt.h>

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "sensor/decode/test/frames.h"
#include "sensor/engine/pipeline.h"

using namespace medmon;
using namespace medmon::test;

namespace {

// Keeps the summary of every ended flow.
class KeepingJudge : public FlowJudge {
 public:
  FlowVerdict judge(const FlowSummary& f, EventOutput&) override {
    flows.push_back(f);
    return {};
  }
  std::vector<FlowSummary> flows;
};

struct Run {
  std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
  KeepingJudge judge;
};

// Feeds the frames, at the given times (microseconds after the first), through a whole pipeline.
void run_timed(int dlt, const std::vector<std::pair<int64_t, Bytes>>& frames, Run& r,
               const SensorConfig& cfg = {}) {
  EventOutput out;
  out.add_sink(r.sink);
  Pseudonymiser phi;
  Pipeline p(cfg, Depth::policy, out, phi, {&r.judge});
  p.set_linktype(dlt);
  for (auto& [at, f] : frames)
    p.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), Timestamp{1'700'000'000'000'000 + at});
  p.finish(FlowEnd::end_of_input);
}

// The same, a millisecond apart.
void run(int dlt, const std::vector<Bytes>& frames, Run& r) {
  std::vector<std::pair<int64_t, Bytes>> timed;
  int64_t at = 0;
  for (auto& f : frames) timed.push_back({at += 1000, f});
  run_timed(dlt, timed, r);
}

// A Linux cooked (SLL) header: packet type, ARPHRD_ETHER, the sender's 6-byte address, IPv4.
Bytes sll(const std::array<uint8_t, 6>& sender, const Bytes& l3) {
  Bytes f;
  f.reserve(16 + l3.size());
  for (uint8_t b : {0, 0, 0, 1, 0, 6}) f.push_back(b);
  for (uint8_t b : sender) f.push_back(b);
  for (uint8_t b : {0, 0, 0x08, 0x00}) f.push_back(b);
  for (uint8_t b : l3) f.push_back(b);
  return f;
}

// An Ethernet II frame with the given addresses, IPv4.
Bytes eth(const std::array<uint8_t, 6>& dst, const std::array<uint8_t, 6>& src, const Bytes& l3) {
  Bytes f(dst.begin(), dst.end());
  f.insert(f.end(), src.begin(), src.end());
  for (uint8_t b : {0x08, 0x00}) f.push_back(b);
  f.insert(f.end(), l3.begin(), l3.end());
  return f;
}

}  // namespace

TEST_CASE("A group destination address (broadcast, multicast) is nobody's MAC") {
  const std::array<uint8_t, 6> client = {2, 0, 0, 0, 0, 0xAA}, server = {2, 0, 0, 0, 0, 0xBB};
  const std::array<uint8_t, 6> bcast = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mcast = {0x01, 0, 0x5e, 0, 0, 1};
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  Run r;
  // The client asks by broadcast; the server answers to the broadcast address too (as a DHCP
  // server may): neither side's address is a group one.
  run(DLT_EN10MB,
      {eth(bcast, client, ipv4(a, b, 17, udp(40000, 5000, "ask"))),
       eth(mcast, server, ipv4(b, a, 17, udp(5000, 40000, "answer")))},
      r);
  REQUIRE(r.judge.flows.size() == 1);
  CHECK(r.judge.flows[0].client_mac == client);
  CHECK(r.judge.flows[0].server_mac == server);
}

TEST_CASE("Linux cooked captures: each side's MAC comes from its own packets, not zeroed by the other's") {
  const std::array<uint8_t, 6> client = {2, 0, 0, 0, 0, 0xAA}, server = {2, 0, 0, 0, 0, 0xBB};
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  Run r;
  run(DLT_LINUX_SLL,
      {sll(client, ipv4(a, b, 6, tcp(40000, 104, 100, 0, tcpflag::SYN))),
       sll(server, ipv4(b, a, 6, tcp(104, 40000, 500, 101, tcpflag::SYN | tcpflag::ACK))),
       sll(client, ipv4(a, b, 6, tcp(40000, 104, 101, 501, tcpflag::ACK)))},
      r);
  REQUIRE(r.judge.flows.size() == 1);
  CHECK(r.judge.flows[0].client_mac == client);
}

TEST_CASE("Data in a SYN (TCP Fast Open) is the stream's first bytes: no gap") {
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  Run r;
  run(DLT_EN10MB,
      {ether(0x0800, ipv4(a, b, 6, tcp(40000, 80, 100, 0, tcpflag::SYN, "HELLO"))),
       ether(0x0800, ipv4(b, a, 6, tcp(80, 40000, 500, 106, tcpflag::SYN | tcpflag::ACK))),
       ether(0x0800, ipv4(a, b, 6, tcp(40000, 80, 106, 501, tcpflag::ACK | tcpflag::PSH, "WORLD")))},
      r);
  REQUIRE(r.sink->lines.size() >= 1);
  std::string flow;
  for (auto& l : r.sink->lines) if (l.find("\"event_type\":\"flow\"") != std::string::npos) flow = l;
  REQUIRE(!flow.empty());
  CHECK(flow.find("\"gaps_toserver\":0") != std::string::npos);
  CHECK(flow.find("\"gap_bytes_toserver\":0") != std::string::npos);
}

TEST_CASE("A flow a medmon dissector claims after nDPI saw its first bytes gets no port guess: cleartext on 443 stays cleartext") {
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  // HL7 over MLLP on 443, its first segment too short for the HL7 probe to decide.
  const std::string first = "\x0bMS";
  const std::string rest = "H|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||MRN1||DOE^JANE\r\x1c\r";
  const uint32_t s0 = 101 + uint32_t(first.size());
  Run r;
  run(DLT_EN10MB,
      {ether(0x0800, ipv4(a, b, 6, tcp(40000, 443, 100, 0, tcpflag::SYN))),
       ether(0x0800, ipv4(b, a, 6, tcp(443, 40000, 500, 101, tcpflag::SYN | tcpflag::ACK))),
       ether(0x0800, ipv4(a, b, 6, tcp(40000, 443, 101, 501, tcpflag::ACK | tcpflag::PSH, first))),
       ether(0x0800, ipv4(b, a, 6, tcp(443, 40000, 501, s0, tcpflag::ACK))),
       ether(0x0800, ipv4(a, b, 6, tcp(40000, 443, s0, 501, tcpflag::ACK | tcpflag::PSH, rest)))},
      r);
  REQUIRE(r.judge.flows.size() == 1);
  const FlowSummary& f = r.judge.flows[0];  // its facts went with the flow: read from the event
  CHECK_FALSE(f.ndpi_guessed);
  CHECK(f.ndpi_protocol == "Unknown");
  std::string flow;
  for (auto& l : r.sink->lines) if (l.find("\"event_type\":\"flow\"") != std::string::npos) flow = l;
  CHECK(flow.find("\"app\":\"hl7\"") != std::string::npos);
  CHECK(flow.find("\"phi_cleartext\"") != std::string::npos);
  CHECK(flow.find("\"guessed\"") == std::string::npos);
}

TEST_CASE("A bare HL7 message answered while a segment of it is missing, its later bytes held, is incomplete") {
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const std::string part1 = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||MRN1||DOE^JANE\r";
  const std::string lost = "NTE|1||lost in capture\r";
  const std::string part3 = "NTE|2||held past the hole\r";
  const std::string ack = "MSH|^~\\&|C|D|A|B|20240101||ACK^A01|2|P|2.5\rMSA|AA|1\r";
  const uint32_t c1 = 101, c2 = c1 + uint32_t(part1.size()), c3 = c2 + uint32_t(lost.size());
  const uint32_t c4 = c3 + uint32_t(part3.size());
  Run r;
  run(DLT_EN10MB,
      {ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, 100, 0, tcpflag::SYN))),
       ether(0x0800, ipv4(b, a, 6, tcp(2575, 40000, 500, 101, tcpflag::SYN | tcpflag::ACK))),
       ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, c1, 501, tcpflag::ACK | tcpflag::PSH, part1))),
       ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, c3, 501, tcpflag::ACK | tcpflag::PSH, part3))),
       ether(0x0800, ipv4(b, a, 6, tcp(2575, 40000, 501, c2, tcpflag::ACK | tcpflag::PSH, ack))),
       ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, c4, 501 + uint32_t(ack.size()), tcpflag::ACK | tcpflag::FIN)))},
      r);
  std::vector<std::string> msgs;
  for (auto& l : r.sink->lines)
    if (l.find("\"event_type\":\"hl7\"") != std::string::npos && l.find("\"kind\":\"message\"") != std::string::npos) msgs.push_back(l);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].find("\"message_type\":\"ADT\"") != std::string::npos);
  CHECK(msgs[0].find("\"complete\":false") != std::string::npos);
  CHECK(msgs[1].find("\"message_type\":\"ACK\"") != std::string::npos);
  CHECK(msgs[1].find("\"complete\"") == std::string::npos);
}

TEST_CASE("Bytes released late from behind a lost segment do not end the peer's bare HL7 message") {
  // The query loses a segment the server acknowledges; its tail is held until the reassembler
  // gives up on the hole, in the middle of the server's long answer. That tail was sent before
  // the answer: the answer stays one message, however it is segmented.
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const std::string part1 = "MSH|^~\\&|A|B|C|D|20240101||QRY^R02|1|P|2.5\rQRD|20240101|R|I|Q1\r";
  const std::string lost = "QRF|MON||||\r";
  const std::string part3 = "NTE|1||held past the hole\r";
  const uint32_t c1 = 101, c2 = c1 + uint32_t(part1.size()), c3 = c2 + uint32_t(lost.size());
  const uint32_t c4 = c3 + uint32_t(part3.size());
  std::vector<std::string> answer = {"MSH|^~\\&|C|D|A|B|20240101||ORF^R04|2|P|2.5\rMSA|AA|1\r"};
  for (int i = 1; i <= 30; ++i) answer.push_back("OBX|" + std::to_string(i) + "|NM|X^Y||" + std::to_string(i) + "\r");
  std::vector<Bytes> frames = {
      ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, 100, 0, tcpflag::SYN))),
      ether(0x0800, ipv4(b, a, 6, tcp(2575, 40000, 500, 101, tcpflag::SYN | tcpflag::ACK))),
      ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, c1, 501, tcpflag::ACK | tcpflag::PSH, part1))),
      ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, c3, 501, tcpflag::ACK | tcpflag::PSH, part3)))};
  uint32_t s = 501;
  for (auto& seg : answer) {
    frames.push_back(ether(0x0800, ipv4(b, a, 6, tcp(2575, 40000, s, c4, tcpflag::ACK | tcpflag::PSH, seg))));
    s += uint32_t(seg.size());
  }
  frames.push_back(ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, c4, s, tcpflag::ACK | tcpflag::FIN))));
  Run r;
  run(DLT_EN10MB, frames, r);
  std::vector<std::string> msgs;
  for (auto& l : r.sink->lines)
    if (l.find("\"event_type\":\"hl7\"") != std::string::npos && l.find("\"kind\":\"message\"") != std::string::npos) msgs.push_back(l);
  REQUIRE(msgs.size() == 2);
  CHECK(msgs[0].find("\"message_type\":\"QRY\"") != std::string::npos);
  CHECK(msgs[0].find("\"complete\":false") != std::string::npos);
  CHECK(msgs[1].find("\"message_type\":\"ORF\"") != std::string::npos);
  CHECK(msgs[1].find("\"segment_count\":32") != std::string::npos);
  CHECK(msgs[1].find("\"complete\"") == std::string::npos);
}

namespace {
std::string line_of(const Run& r, std::string_view type) {
  for (auto& l : r.sink->lines)
    if (l.find("\"event_type\":\"" + std::string(type) + "\"") != std::string::npos) return l;
  return {};
}
}  // namespace

TEST_CASE("Mid-stream, a client's message from the first packet's receiver turns the flow round, with what was held of it") {
  // No port tells (40001, 40000). The first packet's sender sends bytes no probe knows; then its
  // peer sends an HL7-over-HTTP request: the peer is the client.
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const std::string junk = "0123456789";
  const std::string post =
      "POST /hl7 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7\r\nContent-Length: 52\r\n\r\n"
      "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1\r";
  Run r;
  run(DLT_EN10MB,
      {ether(0x0800, ipv4(a, b, 6, tcp(40001, 40000, 100, 500, tcpflag::ACK | tcpflag::PSH, junk))),
       ether(0x0800, ipv4(b, a, 6, tcp(40000, 40001, 500, 110, tcpflag::ACK | tcpflag::PSH, post)))},
      r);
  REQUIRE(r.judge.flows.size() == 1);
  const FlowSummary& f = r.judge.flows[0];
  CHECK(f.ep.src_port == 40000);
  CHECK(f.ep.dst_port == 40001);
  CHECK(f.payload_bytes[0] == post.size());
  CHECK(f.payload_bytes[1] == junk.size());
  std::string flow = line_of(r, "flow");
  CHECK(flow.find("\"initiator\":\"content\"") != std::string::npos);
  CHECK(flow.find("\"src_port\":40000") != std::string::npos);
  CHECK(flow.find("\"app\":\"hl7\"") != std::string::npos);
  std::string hl7 = line_of(r, "hl7");
  CHECK(hl7.find("\"direction\":\"to_server\"") != std::string::npos);
  CHECK(hl7.find("\"src_port\":40000") != std::string::npos);
  CHECK(line_of(r, "stats").find("\"flows.reversed_by_content\":1") != std::string::npos);
}

TEST_CASE("Mid-stream, a DICOM response whose PDU and PDV headers came alone names its sender the server") {
  // No port tells (40001, 40000). The acceptor's C-ECHO-RSP comes first, its 12 bytes of PDU and
  // PDV headers in a segment of their own, as DCMTK sends them: the command in the next one says
  // it is a response, so its sender is the server.
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  auto le = [](std::string& o, uint32_t v, int n) { for (int i = 0; i < n; ++i) o.push_back(char(v >> (8 * i))); };
  std::string body;
  auto elem = [&](uint16_t e, const std::string& v) { le(body, 0, 2); le(body, e, 2); le(body, uint32_t(v.size()), 4); body += v; };
  auto us = [&](uint16_t v) { std::string o; le(o, v, 2); return o; };
  elem(0x0002, std::string("1.2.840.10008.1.1\0", 18));
  elem(0x0100, us(0x8030));
  elem(0x0120, us(1));
  elem(0x0800, us(0x0101));
  elem(0x0900, us(0));
  std::string cmd;
  le(cmd, 0, 2); le(cmd, 0, 2); le(cmd, 4, 4); le(cmd, uint32_t(body.size()), 4);
  cmd += body;
  auto be32 = [](std::string& o, uint32_t v) { for (int s = 24; s >= 0; s -= 8) o.push_back(char(v >> s)); };
  std::string head = {4, 0};
  be32(head, uint32_t(cmd.size() + 6));
  be32(head, uint32_t(cmd.size() + 2));
  head += std::string{1, 3};
  Run r;
  run(DLT_EN10MB,
      {ether(0x0800, ipv4(a, b, 6, tcp(40001, 40000, 100, 500, tcpflag::ACK | tcpflag::PSH, head))),
       ether(0x0800, ipv4(a, b, 6, tcp(40001, 40000, 100 + uint32_t(head.size()), 500, tcpflag::ACK | tcpflag::PSH, cmd)))},
      r);
  REQUIRE(r.judge.flows.size() == 1);
  CHECK(r.judge.flows[0].ep.src_port == 40000);
  CHECK(r.judge.flows[0].ep.dst_port == 40001);
  std::string flow = line_of(r, "flow");
  CHECK(flow.find("\"initiator\":\"content\"") != std::string::npos);
  CHECK(flow.find("\"app\":\"dicom\"") != std::string::npos);
  CHECK(line_of(r, "stats").find("\"flows.reversed_by_content\":1") != std::string::npos);
}

TEST_CASE("Mid-stream, a flow a dissector already reads keeps its orientation") {
  // 2575 names the server; its client's MLLP message is read; a client's message from the
  // server afterwards does not turn the flow round under the events already written.
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const std::string oru = "\x0bMSH|^~\\&|CT|R|RIS|H|20240101||ORU^R01|1|P|2.5\rPID|1\r\x1c\r";
  const std::string post = "POST /hl7 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7\r\n\r\n";
  Run r;
  run(DLT_EN10MB,
      {ether(0x0800, ipv4(a, b, 6, tcp(40000, 2575, 100, 500, tcpflag::ACK | tcpflag::PSH, oru))),
       ether(0x0800, ipv4(b, a, 6, tcp(2575, 40000, 500, 100 + uint32_t(oru.size()), tcpflag::ACK | tcpflag::PSH, post)))},
      r);
  REQUIRE(r.judge.flows.size() == 1);
  CHECK(r.judge.flows[0].ep.src_port == 40000);
  CHECK(line_of(r, "flow").find("\"initiator\":\"port\"") != std::string::npos);
  CHECK(line_of(r, "stats").find("\"flows.orientation_kept\":1") != std::string::npos);
}

TEST_CASE("Mid-stream, the record that continues a connection split at the absolute timeout keeps its orientation") {
  // No port tells; the first packet's sender speaks first with bytes no probe knows, the
  // connection outlives the absolute timeout, then the other side sends a client's request.
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const std::string junk = "0123456789", get = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
  const int64_t hour = 3'600'000'000;
  std::vector<std::pair<int64_t, Bytes>> frames = {
      {0, ether(0x0800, ipv4(a, b, 6, tcp(7777, 45000, 100, 500, tcpflag::ACK | tcpflag::PSH, junk)))}};
  for (int64_t at = 300'000'000; at <= hour + 1000; at += 300'000'000)  // keep-alives, under the idle timeout
    frames.push_back({at, ether(0x0800, ipv4(a, b, 6, tcp(7777, 45000, 110, 500, tcpflag::ACK)))});
  frames.push_back({hour + 300'002'000, ether(0x0800, ipv4(b, a, 6, tcp(45000, 7777, 500, 110, tcpflag::ACK | tcpflag::PSH, get)))});
  Run r;
  run_timed(DLT_EN10MB, frames, r);
  REQUIRE(r.judge.flows.size() == 2);
  CHECK(r.judge.flows[0].end_state == "absolute_timeout");
  for (auto& f : r.judge.flows) CHECK(f.ep.src_port == 7777);
  CHECK(line_of(r, "stats").find("reversed_by_content") == std::string::npos);
}

namespace {
// An ARP request, as a quiet link carries them.
Bytes arp_request() {
  Bytes a;
  put16(a, 1); put16(a, 0x0800); a.push_back(6); a.push_back(4); put16(a, 1);
  for (uint8_t b : {2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 9}) a.push_back(b);
  return ether(0x0806, a);
}

size_t count_of(const Run& r, std::string_view type) {
  return static_cast<size_t>(std::count(r.sink->types.begin(), r.sink->types.end(), std::string(type)));
}
}  // namespace

TEST_CASE("Frames that are not IP move packet time: on a link with only ARP, idle flows end and stats come") {
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const int64_t sec = 1'000'000;
  std::vector<std::pair<int64_t, Bytes>> frames = {{0, ether(0x0800, ipv4(a, b, 17, udp(40000, 9999, "a")))}};
  for (int64_t at = 10 * sec; at <= 300 * sec; at += 10 * sec) frames.push_back({at, arp_request()});
  SensorConfig cfg;
  cfg.stats_interval_usec = 60 * sec;
  Run r;
  run_timed(DLT_EN10MB, frames, r, cfg);
  REQUIRE(r.judge.flows.size() == 1);
  CHECK(r.judge.flows[0].end_state == "idle_timeout");  // UDP: 120 s
  CHECK(count_of(r, "stats") == 5 + 1);                 // at 60, 120, ... 300 s, and at the end
  // The flow ended at the first frame past its timeout (130 s), after the stats of 120 s.
  std::vector<std::string> order;
  for (auto& t : r.sink->types)
    if (t == "flow" || t == "stats") order.push_back(t);
  CHECK(order == std::vector<std::string>{"stats", "stats", "flow", "stats", "stats", "stats", "stats"});
}

TEST_CASE("A malformed frame moves packet time too") {
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  Bytes cut = ether(0x0800, ipv4(a, b, 17, udp(40000, 9999, "x")));
  cut.resize(14 + 10);  // shorter than an IPv4 header
  Run r;
  run_timed(DLT_EN10MB,
            {{0, ether(0x0800, ipv4(a, b, 17, udp(40000, 9999, "a")))}, {121'000'000, cut}}, r);
  REQUIRE(r.judge.flows.size() == 1);
  CHECK(r.judge.flows[0].end_state == "idle_timeout");
}

TEST_CASE("The final stats of a pipeline that saw no packet is dated by the stop time, else by the last packet") {
  const Timestamp stop{1'800'000'000'000'000};
  {
    Run r;
    EventOutput out;
    out.add_sink(r.sink);
    Pseudonymiser phi;
    Pipeline p(SensorConfig{}, Depth::policy, out, phi, {&r.judge});
    p.set_linktype(DLT_EN10MB);
    p.finish(FlowEnd::interrupted, true, stop);
    CHECK(line_of(r, "stats").find("\"ts\":\"" + format_rfc3339(stop) + "\"") != std::string::npos);
  }
  {
    Run r;
    run_timed(DLT_EN10MB, {{0, arp_request()}}, r);
    CHECK(line_of(r, "stats").find("\"ts\":\"2023-11-14T22:13:20.000000Z\"") != std::string::npos);
  }
}

TEST_CASE("Another worker's packet time ends idle flows and brings the periodic stats; it never moves the clock back") {
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const int64_t t0 = 1'700'000'000'000'000, sec = 1'000'000;
  SensorConfig cfg;
  cfg.stats_interval_usec = 60 * sec;
  Run r;
  EventOutput out;
  out.add_sink(r.sink);
  Pseudonymiser phi;
  Pipeline p(cfg, Depth::policy, out, phi, {&r.judge});
  p.set_linktype(DLT_EN10MB);
  Bytes f = ether(0x0800, ipv4(a, b, 17, udp(40000, 9999, "a")));
  p.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), Timestamp{t0});
  p.follow_clock(Timestamp{t0 + 100 * sec});
  out.flush();
  CHECK(r.judge.flows.empty());           // UDP: 120 s
  CHECK(count_of(r, "stats") == 1);       // due at 60 s, written at 100 s; the next due at 160 s
  p.follow_clock(Timestamp{t0 + 50 * sec});  // older than this pipeline's clock: nothing
  p.follow_clock(Timestamp{t0 + 121 * sec});
  out.flush();
  REQUIRE(r.judge.flows.size() == 1);
  CHECK(r.judge.flows[0].end_state == "idle_timeout");
  p.follow_clock(Timestamp{t0 + 160 * sec});
  out.flush();
  CHECK(count_of(r, "stats") == 2);
}

TEST_CASE("No capture time yet to follow: the first packet starts the stats schedule, it writes no stats") {
  const int64_t t0 = 1'700'000'000'000'000, sec = 1'000'000;
  SensorConfig cfg;
  cfg.stats_interval_usec = 60 * sec;
  Run r;
  EventOutput out;
  out.add_sink(r.sink);
  Pseudonymiser phi;
  Pipeline p(cfg, Depth::policy, out, phi, {&r.judge});
  p.set_linktype(DLT_EN10MB);
  p.follow_clock(Timestamp{0});  // the capture's clock before any worker saw a packet
  Bytes f = arp_request();
  p.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), Timestamp{t0});
  p.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), Timestamp{t0 + 59 * sec});
  out.flush();
  CHECK(count_of(r, "stats") == 0);
  p.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), Timestamp{t0 + 60 * sec});
  out.flush();
  CHECK(count_of(r, "stats") == 1);
}

TEST_CASE("The capture counters are refreshed just before a stats event is written") {
  const int64_t t0 = 1'700'000'000'000'000, sec = 1'000'000;
  SensorConfig cfg;
  cfg.stats_interval_usec = sec;
  Run r;
  EventOutput out;
  out.add_sink(r.sink);
  Pseudonymiser phi;
  Pipeline p(cfg, Depth::policy, out, phi, {&r.judge});
  p.set_linktype(DLT_EN10MB);
  uint64_t kernel_count = 0;
  p.set_stats_refresh([&] { p.set_capture_stats(kernel_count, 0, 0); });
  Bytes f = arp_request();
  for (int i = 0; i < 3; ++i) {
    ++kernel_count;  // the kernel counts a frame before it is read
    p.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), Timestamp{t0 + i * sec});
  }
  p.finish(FlowEnd::end_of_input);
  // Stats at 1 s and 2 s (with packets 2 and 3), then the final one.
  std::vector<std::string> received;
  for (size_t i = 0; i < r.sink->types.size(); ++i) {
    if (r.sink->types[i] != "stats") continue;
    size_t at = r.sink->lines[i].find("\"received\":");
    received.push_back(at == std::string::npos ? "" : r.sink->lines[i].substr(at + 11, 1));
  }
  CHECK(received == std::vector<std::string>{"2", "3", "3"});
}

TEST_CASE("A response body read to the close ends at the server's FIN, not when the half-closed flow ends") {
  // HL7 over HTTP/1.0: the answer has no length and runs to the server's FIN. The client keeps
  // its side open for half a minute more: the ACK is still the server's at its FIN.
  const uint32_t a = ip4(10, 0, 0, 1), b = ip4(10, 0, 0, 2);
  const std::string msg = "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||MRN1||DOE^JANE\r";
  const std::string req = "POST /hl7 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7\r\nContent-Length: " +
                          std::to_string(msg.size()) + "\r\n\r\n" + msg;
  const std::string resp = "HTTP/1.0 200 OK\r\nContent-Type: x-application/hl7-v2+er7\r\n\r\n"
                           "MSH|^~\\&|C|D|A|B|20240101||ACK^A01|2|P|2.5\rMSA|AA|1\r";
  const uint32_t c1 = 101, c2 = c1 + uint32_t(req.size()), s1 = 501, s2 = s1 + uint32_t(resp.size());
  const int64_t ms = 1000;
  Run r;
  run_timed(DLT_EN10MB,
            {{1 * ms, ether(0x0800, ipv4(a, b, 6, tcp(40000, 8080, 100, 0, tcpflag::SYN)))},
             {2 * ms, ether(0x0800, ipv4(b, a, 6, tcp(8080, 40000, 500, c1, tcpflag::SYN | tcpflag::ACK)))},
             {3 * ms, ether(0x0800, ipv4(a, b, 6, tcp(40000, 8080, c1, s1, tcpflag::ACK | tcpflag::PSH, req)))},
             {4 * ms, ether(0x0800, ipv4(b, a, 6, tcp(8080, 40000, s1, c2, tcpflag::ACK | tcpflag::PSH, resp)))},
             {5 * ms, ether(0x0800, ipv4(b, a, 6, tcp(8080, 40000, s2, c2, tcpflag::ACK | tcpflag::FIN)))},
             {6 * ms, ether(0x0800, ipv4(a, b, 6, tcp(40000, 8080, c2, s2 + 1, tcpflag::ACK)))},
             {30'000 * ms, ether(0x0800, ipv4(a, b, 6, tcp(40000, 8080, c2, s2 + 1, tcpflag::ACK | tcpflag::FIN)))},
             {30'001 * ms, ether(0x0800, ipv4(b, a, 6, tcp(8080, 40000, s2 + 1, c2 + 1, tcpflag::ACK)))}},
            r);
  std::string ack;
  for (auto& l : r.sink->lines)
    if (l.find("\"event_type\":\"hl7\"") != std::string::npos && l.find("\"message_type\":\"ACK\"") != std::string::npos) ack = l;
  REQUIRE(!ack.empty());
  CHECK(ack.find("\"ts\":\"2023-11-14T22:13:20.005000Z\"") != std::string::npos);
  CHECK(ack.find("\"latency_us\":2000") != std::string::npos);
}

namespace {

// A TLS 1.2 ClientHello record naming `sni`, and a ServerHello answering it.
std::string tls_client_hello(const std::string& sni) {
  Bytes ext;
  put16(ext, 0);  // server_name
  put16(ext, uint16_t(sni.size() + 5));
  put16(ext, uint16_t(sni.size() + 3));
  ext.push_back(0);
  put16(ext, uint16_t(sni.size()));
  ext.insert(ext.end(), sni.begin(), sni.end());
  Bytes body = {0x03, 0x03};
  for (int i = 0; i < 32; ++i) body.push_back(uint8_t(i));
  body.push_back(0);  // no session id
  put16(body, 4); put16(body, 0xc02f); put16(body, 0x009c);
  body.push_back(1); body.push_back(0);
  put16(body, uint16_t(ext.size()));
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes rec = {0x16, 0x03, 0x01};
  put16(rec, uint16_t(body.size() + 4));
  rec.push_back(0x01); rec.push_back(0); put16(rec, uint16_t(body.size()));
  rec.insert(rec.end(), body.begin(), body.end());
  return std::string(rec.begin(), rec.end());
}

std::string tls_server_hello() {
  Bytes body = {0x03, 0x03};
  for (int i = 0; i < 32; ++i) body.push_back(uint8_t(100 + i));
  body.push_back(0);
  put16(body, 0xc02f);
  body.push_back(0);
  put16(body, 0);
  Bytes rec = {0x16, 0x03, 0x03};
  put16(rec, uint16_t(body.size() + 4));
  rec.push_back(0x02); rec.push_back(0); put16(rec, uint16_t(body.size()));
  rec.insert(rec.end(), body.begin(), body.end());
  return std::string(rec.begin(), rec.end());
}

// A whole TCP connection from a:cport to b:sport, the client's data then the server's.
std::vector<Bytes> connection(uint32_t a, uint16_t cport, uint32_t b, uint16_t sport, const std::string& req,
                              const std::string& resp) {
  const uint32_t c1 = 101 + uint32_t(req.size()), s1 = 501 + uint32_t(resp.size());
  return {ether(0x0800, ipv4(a, b, 6, tcp(cport, sport, 100, 0, tcpflag::SYN))),
          ether(0x0800, ipv4(b, a, 6, tcp(sport, cport, 500, 101, tcpflag::SYN | tcpflag::ACK))),
          ether(0x0800, ipv4(a, b, 6, tcp(cport, sport, 101, 501, tcpflag::ACK | tcpflag::PSH, req))),
          ether(0x0800, ipv4(b, a, 6, tcp(sport, cport, 501, c1, tcpflag::ACK | tcpflag::PSH, resp))),
          ether(0x0800, ipv4(a, b, 6, tcp(cport, sport, c1, s1, tcpflag::ACK | tcpflag::FIN))),
          ether(0x0800, ipv4(b, a, 6, tcp(sport, cport, s1, c1 + 1, tcpflag::ACK | tcpflag::FIN))),
          ether(0x0800, ipv4(a, b, 6, tcp(cport, sport, c1 + 1, s1 + 1, tcpflag::ACK)))};
}

std::string flow_app(const MemorySink& sink) {
  for (auto& l : sink.lines)
    if (l.find("\"event_type\":\"flow\"") != std::string::npos) {
      auto at = l.find("\"app\":");
      return at == std::string::npos ? std::string() : l.substr(at + 6, l.find_first_of(",}", at) - at - 6);
    }
  return {};
}

}  // namespace

TEST_CASE("Live workers: a TLS flow is named after what any worker saw its server speak in clear") {
  const uint32_t client = ip4(10, 0, 0, 1), server = ip4(10, 0, 0, 2);
  const std::string hl7 = "\x0bMSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||MRN1||DOE^JANE\r\x1c\r";
  const std::string ack = "\x0bMSH|^~\\&|C|D|A|B|20240101||ACK^A01|2|P|2.5\rMSA|AA|1\r\x1c\r";
  SharedAppServers shared;
  Pseudonymiser phi;
  // Worker 0 sees the HL7 flow in clear to port 2575, worker 1 a TLS flow to the same server on 7443.
  auto one_worker = [&](const std::vector<Bytes>& frames, Timestamp from, bool share) {
    auto sink = std::make_shared<MemorySink>();
    EventOutput out;
    out.add_sink(sink);
    Pipeline p({}, Depth::policy, out, phi);
    p.set_linktype(DLT_EN10MB);
    if (share) p.set_shared_app_servers(&shared);
    int64_t at = from.usec;
    for (auto& f : frames) p.packet(f.data(), uint32_t(f.size()), uint32_t(f.size()), Timestamp{at += 1000});
    p.finish(FlowEnd::end_of_input);
    return flow_app(*sink);
  };
  const Timestamp t0{1'700'000'000'000'000};
  const auto tls = connection(client, 41000, server, 7443, tls_client_hello("monitor.example"), tls_server_hello());
  CHECK(one_worker(connection(client, 40000, server, 2575, hl7, ack), t0, true) == "\"hl7\"");
  CHECK(one_worker(tls, Timestamp{t0.usec + 1'000'000}, true) == "\"hl7-tls\"");
  // Without the shared set, the other worker knows nothing of the server.
  CHECK(one_worker(tls, Timestamp{t0.usec + 1'000'000}, false) == "null");
}
