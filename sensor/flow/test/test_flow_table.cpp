#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "sensor/decode/decoder.h"
#include "sensor/decode/test/frames.h"
#include "sensor/flow/flow_table.h"

using namespace medmon;
using namespace medmon::test;

namespace {
struct Ended { std::string id; FlowEnd why; uint64_t to_server, to_client; bool client_is_first; };

Packet pkt(uint32_t src, uint16_t sp, uint32_t dst, uint16_t dp, uint8_t flags, int64_t t, uint8_t proto = 6) {
  Packet p;
  uint8_t a[4] = {uint8_t(src >> 24), uint8_t(src >> 16), uint8_t(src >> 8), uint8_t(src)};
  uint8_t b[4] = {uint8_t(dst >> 24), uint8_t(dst >> 16), uint8_t(dst >> 8), uint8_t(dst)};
  p.src = IpAddr::v4(a);
  p.dst = IpAddr::v4(b);
  p.sport = sp;
  p.dport = dp;
  p.proto = proto;
  p.tcp_flags = flags;
  p.ts = Timestamp{t};
  return p;
}

struct Table {
  Counters c;
  std::vector<Ended> ended;
  FlowTable t;
  explicit Table(FlowLimits l = {})
      : t(l, c, [this](Flow& f, FlowEnd why) {
          ended.push_back({f.id(), why, f.pkts[0], f.pkts[1], f.client_port() == 40000});
        }) {}
  Dir feed(const Packet& p) {
    Dir d;
    Flow& f = t.lookup(p, d);
    int i = static_cast<int>(d);
    ++f.pkts[i];
    f.last = p.ts;
    if (p.proto == 6) verdict = f.tcp_packet(i, p);  // as the pipeline does
    t.touch(f, p.ts);
    return d;
  }
  TcpVerdict verdict = TcpVerdict::ok;  // of the last packet fed
};
}  // namespace

TEST_CASE("Both directions map to one flow, oriented by the SYN") {
  Table tb;
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 2), 104, tcpflag::SYN, 1)) == Dir::to_server);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 2), 104, ip4(10, 0, 0, 1), 40000, tcpflag::SYN | tcpflag::ACK, 2)) == Dir::to_client);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 2), 104, tcpflag::ACK, 3)) == Dir::to_server);
  CHECK(tb.t.size() == 1);
  tb.t.end_all(FlowEnd::end_of_input);
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].to_server == 2);
  CHECK(tb.ended[0].to_client == 1);
  CHECK(tb.ended[0].client_is_first);
}

TEST_CASE("A SYN-ACK seen first still makes its receiver the client") {
  Table tb;
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 2), 104, ip4(10, 0, 0, 1), 40000, tcpflag::SYN | tcpflag::ACK, 1)) == Dir::to_client);
  tb.t.end_all(FlowEnd::end_of_input);
  CHECK(tb.ended[0].client_is_first);
}

TEST_CASE("Flow ids are deterministic and distinct") {
  Table a, b;
  for (int i = 0; i < 100; ++i) {
    a.feed(pkt(ip4(10, 0, 0, 1), static_cast<uint16_t>(1000 + i), ip4(10, 0, 0, 2), 80, tcpflag::SYN, i));
    b.feed(pkt(ip4(10, 0, 0, 1), static_cast<uint16_t>(1000 + i), ip4(10, 0, 0, 2), 80, tcpflag::SYN, i));
  }
  a.t.end_all(FlowEnd::end_of_input);
  b.t.end_all(FlowEnd::end_of_input);
  std::set<std::string> ids;
  for (size_t i = 0; i < a.ended.size(); ++i) {
    CHECK(a.ended[i].id == b.ended[i].id);
    ids.insert(a.ended[i].id);
  }
  CHECK(ids.size() == 100);
}

TEST_CASE("Idle timeouts follow packet time, per protocol class") {
  FlowLimits l;
  l.tcp_idle_usec = 100;
  l.udp_idle_usec = 50;
  l.tcp_closed_usec = 10;
  Table tb(l);
  tb.feed(pkt(ip4(1, 1, 1, 1), 1, ip4(2, 2, 2, 2), 2, tcpflag::SYN, 0));
  tb.feed(pkt(ip4(1, 1, 1, 1), 3, ip4(2, 2, 2, 2), 4, 0, 0, 17));
  tb.t.expire(Timestamp{60});
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].why == FlowEnd::idle_timeout);
  tb.t.expire(Timestamp{101});
  CHECK(tb.ended.size() == 2);
  // A closed connection goes quickly.
  tb.feed(pkt(ip4(1, 1, 1, 1), 5, ip4(2, 2, 2, 2), 6, tcpflag::RST, 200));
  tb.t.expire(Timestamp{211});
  REQUIRE(tb.ended.size() == 3);
  CHECK(tb.ended[2].why == FlowEnd::reset);
}

TEST_CASE("Capacity evicts the least recently used flow") {
  FlowLimits l;
  l.max_flows = 10;
  Table tb(l);
  for (int i = 0; i < 25; ++i) tb.feed(pkt(ip4(1, 1, 1, 1), static_cast<uint16_t>(i + 1), ip4(2, 2, 2, 2), 80, tcpflag::SYN, i));
  CHECK(tb.t.size() == 10);
  CHECK(tb.c.get("flows.evicted") == 15);
  CHECK(tb.ended.front().why == FlowEnd::evicted);
}

TEST_CASE("A new SYN on a closed 5-tuple starts a new flow; absolute timeout splits long flows") {
  FlowLimits l;
  l.absolute_usec = 1000;
  Table tb(l);
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 80, tcpflag::SYN, 0));
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 80, tcpflag::FIN | tcpflag::ACK, 1));
  tb.feed(pkt(ip4(2, 2, 2, 2), 80, ip4(1, 1, 1, 1), 40000, tcpflag::FIN | tcpflag::ACK, 2));
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 80, tcpflag::SYN, 3));
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].why == FlowEnd::closed);
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 80, tcpflag::ACK, 2000));
  REQUIRE(tb.ended.size() == 2);
  CHECK(tb.ended[1].why == FlowEnd::absolute_timeout);
}

TEST_CASE("A SYN with another initial sequence number on an open 5-tuple starts a new flow") {
  Table tb;
  auto syn = [](uint32_t seq, int64_t t) {
    Packet p = pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 2575, tcpflag::SYN, t);
    p.seq = seq;
    return p;
  };
  tb.feed(syn(100, 0));
  tb.feed(pkt(ip4(2, 2, 2, 2), 2575, ip4(1, 1, 1, 1), 40000, tcpflag::SYN | tcpflag::ACK, 1));
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 2575, tcpflag::ACK, 2));
  tb.feed(syn(100, 3));  // a retransmission of the first SYN: the same connection
  CHECK(tb.ended.empty());
  tb.feed(syn(90000, 4));  // the device reconnects from the same port; no FIN was seen
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].why == FlowEnd::reused);
  CHECK(tb.ended[0].to_server == 3);
  CHECK(tb.c.get("flows.tuple_reused") == 1);
  // A side seen only mid-stream that sends a SYN opens a new connection too.
  tb.feed(pkt(ip4(3, 3, 3, 3), 40000, ip4(2, 2, 2, 2), 2575, tcpflag::ACK, 5));
  Packet again = pkt(ip4(3, 3, 3, 3), 40000, ip4(2, 2, 2, 2), 2575, tcpflag::SYN, 6);
  tb.feed(again);
  REQUIRE(tb.ended.size() == 2);
  CHECK(tb.ended[1].why == FlowEnd::reused);
}

TEST_CASE("An absolute-timeout split keeps the flow's client and server, and counts as a timeout") {
  FlowLimits l;
  l.absolute_usec = 1000;
  Table tb(l);
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 2575, tcpflag::SYN, 0));
  tb.feed(pkt(ip4(2, 2, 2, 2), 2575, ip4(1, 1, 1, 1), 40000, tcpflag::SYN | tcpflag::ACK, 1));
  // The server speaks first after the hour: still the server.
  CHECK(tb.feed(pkt(ip4(2, 2, 2, 2), 2575, ip4(1, 1, 1, 1), 40000, tcpflag::ACK, 2000)) == Dir::to_client);
  CHECK(tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 2575, tcpflag::ACK, 2001)) == Dir::to_server);
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].why == FlowEnd::absolute_timeout);
  CHECK(tb.c.get("flows.timed_out") == 1);
  tb.t.end_all(FlowEnd::end_of_input);
  REQUIRE(tb.ended.size() == 2);
  CHECK(tb.ended[1].client_is_first);
  CHECK(tb.ended[1].to_server == 1);
  CHECK(tb.ended[1].to_client == 1);
}

TEST_CASE("VLAN is part of the key") {
  Table tb;
  auto p = pkt(ip4(1, 1, 1, 1), 1, ip4(2, 2, 2, 2), 2, 0, 0, 17);
  tb.feed(p);
  p.vlan_count = 1;
  p.vlan[0] = 10;
  tb.feed(p);
  CHECK(tb.t.size() == 2);
  // QinQ: the same outer tag with two inner tags is two networks, two flows with two ids.
  p.vlan_count = 2;
  p.vlan = {100, 10};
  tb.feed(p);
  p.vlan = {100, 20};
  tb.feed(p);
  CHECK(tb.t.size() == 4);
  // A single tag keeps the id it had without the inner tag in the key.
  Flow f;
  f.key.vlan = 100;
  std::string single = f.id();
  f.key.vlan_inner = 10;
  std::string q10 = f.id();
  f.key.vlan_inner = 20;
  CHECK(q10 != f.id());
  CHECK(single != q10);
  tb.t.end_all(FlowEnd::end_of_input);
  std::set<std::string> ids;
  for (auto& e : tb.ended) ids.insert(e.id);
  CHECK(ids.size() == 4);
}

TEST_CASE("A SYN flood at capacity evicts half-open flows, not established ones") {
  FlowLimits l;
  l.max_flows = 10;
  Table tb(l);
  // An established connection, then idle while 1000 SYNs to other ports arrive.
  tb.feed(pkt(ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 2), 104, tcpflag::SYN, 0));
  tb.feed(pkt(ip4(10, 0, 0, 2), 104, ip4(10, 0, 0, 1), 40000, tcpflag::SYN | tcpflag::ACK, 1));
  for (int i = 0; i < 1000; ++i)
    tb.feed(pkt(ip4(172, 16, 0, 1), static_cast<uint16_t>(1024 + i), ip4(10, 0, 0, 3), 80, tcpflag::SYN, 10 + i));
  CHECK(tb.t.size() == 10);
  CHECK(tb.c.get("flows.evicted") == 1000 - 9);
  for (auto& e : tb.ended) CHECK_FALSE(e.client_is_first);  // the established flow (port 40000) stays
  // With only established flows left, plain LRU applies again.
  for (int i = 0; i < 20; ++i) {
    uint16_t port = static_cast<uint16_t>(2000 + i);
    tb.feed(pkt(ip4(10, 0, 1, 1), port, ip4(10, 0, 0, 2), 104, tcpflag::SYN, 2000 + 2 * i));
    tb.feed(pkt(ip4(10, 0, 0, 2), 104, ip4(10, 0, 1, 1), port, tcpflag::SYN | tcpflag::ACK, 2001 + 2 * i));
  }
  bool gone = false;
  for (auto& e : tb.ended) gone = gone || e.client_is_first;
  CHECK(gone);
}

TEST_CASE("A TCP flow picked up mid-stream takes the side of the service port as its server") {
  ServicePorts ports;
  ports.add(2575);
  Table tb;
  tb.t.set_service_ports(ports);
  // The RIS's pure ACK comes first, then the CT's message to it.
  CHECK(tb.feed(pkt(ip4(10, 10, 3, 30), 2575, ip4(10, 10, 1, 10), 40000, tcpflag::ACK, 1)) == Dir::to_client);
  CHECK(tb.feed(pkt(ip4(10, 10, 1, 10), 40000, ip4(10, 10, 3, 30), 2575, tcpflag::ACK | tcpflag::PSH, 2)) == Dir::to_server);
  CHECK(tb.c.get("flows.reversed_by_port") == 1);
  // A well-known port needs no registration; the first packet's sender may be the client too.
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 2), 443, ip4(10, 0, 0, 1), 40000, tcpflag::ACK, 3)) == Dir::to_client);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 3), 2575, tcpflag::ACK, 4)) == Dir::to_server);
  CHECK(tb.c.get("flows.reversed_by_port") == 2);
  std::vector<Orientation> seen;
  FlowTable t(FlowLimits{}, tb.c, [&](Flow& f, FlowEnd) { seen.push_back(f.orientation); });
  t.set_service_ports(ports);
  Dir d;
  t.lookup(pkt(ip4(10, 0, 0, 2), 443, ip4(10, 0, 0, 1), 40000, tcpflag::ACK, 1), d);
  t.end_all(FlowEnd::end_of_input);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == Orientation::port);
  tb.t.end_all(FlowEnd::end_of_input);
  REQUIRE(tb.ended.size() == 3);
  for (auto& e : tb.ended) CHECK(e.client_is_first);
}

TEST_CASE("A UDP answer seen before its request takes the service port's side as its server") {
  ServicePorts ports;
  ports.add(3702);
  Table tb;
  tb.t.set_service_ports(ports);
  // A DNS answer (its query lost), then a WS-Discovery ProbeMatches to the prober's port: both
  // servers are the service ports' side.
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 4), 53, ip4(10, 0, 0, 1), 40000, 0, 1, 17)) == Dir::to_client);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 4), 53, 0, 2, 17)) == Dir::to_server);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 5), 3702, ip4(10, 0, 0, 1), 50000, 0, 3, 17)) == Dir::to_client);
  CHECK(tb.c.get("flows.reversed_by_port") == 2);
  // A DHCP server's broadcast reply (67 to 68): 68 is a client's port, though below 1024.
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 6), 67, ip4(255, 255, 255, 255), 68, 0, 4, 17)) == Dir::to_client);
  CHECK(tb.c.get("flows.reversed_by_port") == 3);
  // A query first keeps its orientation, and is not said to be oriented by its port.
  std::vector<Orientation> seen;
  FlowTable t(FlowLimits{}, tb.c, [&](Flow& f, FlowEnd) { seen.push_back(f.orientation); });
  t.set_service_ports(ports);
  Dir d;
  t.lookup(pkt(ip4(10, 0, 0, 1), 40001, ip4(10, 0, 0, 4), 53, 0, 1, 17), d);
  CHECK(d == Dir::to_server);
  t.lookup(pkt(ip4(10, 0, 0, 4), 53, ip4(10, 0, 0, 1), 40002, 0, 2, 17), d);
  CHECK(d == Dir::to_client);
  t.end_all(FlowEnd::end_of_input);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == Orientation::first_packet);
  CHECK(seen[1] == Orientation::port);
}

TEST_CASE("Ports that do not tell and a SYN keep the first packet's orientation") {
  ServicePorts ports;
  ports.add(11112);
  Table tb;
  tb.t.set_service_ports(ports);
  // Both service ports, neither, a SYN from the service port, UDP between two service ports.
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 2), 11112, ip4(10, 0, 0, 1), 104, tcpflag::ACK, 1)) == Dir::to_server);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 2), 2575, ip4(10, 0, 0, 1), 40000, tcpflag::ACK, 2)) == Dir::to_server);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 3), 11112, ip4(10, 0, 0, 1), 40000, tcpflag::SYN, 3)) == Dir::to_server);
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 4), 123, ip4(10, 0, 0, 1), 123, 0, 4, 17)) == Dir::to_server);
  CHECK(tb.c.get("flows.reversed_by_port") == 0);
  CHECK(ports.server_side(104, 11112) == -1);
  CHECK(ports.server_side(40000, 41000) == -1);
  CHECK(ports.server_side(40000, 11112) == 1);
  CHECK(ports.server_side(80, 1024) == 0);
}

TEST_CASE("Reversing a flow swaps client, server and every per-direction count") {
  Table tb;
  Dir d;
  Flow& f = tb.t.lookup(pkt(ip4(10, 0, 0, 2), 4711, ip4(10, 0, 0, 1), 40000, tcpflag::ACK, 1), d);
  REQUIRE(d == Dir::to_server);
  f.pkts = {3, 1};
  f.bytes = {300, 60};
  f.payload_bytes = {200, 0};
  f.tcp_flags = {tcpflag::ACK | tcpflag::PSH, tcpflag::ACK};
  f.fin_seen = {true, false};
  f.isn_seen = {true, false};
  f.isn = {7, 0};
  f.client_mac = {2, 0, 0, 0, 0, 2};
  f.server_mac = {2, 0, 0, 0, 0, 1};
  std::string id = f.id();
  f.reverse();
  CHECK(f.client_port() == 40000);
  CHECK(f.server_port() == 4711);
  CHECK(f.pkts == std::array<uint64_t, 2>{1, 3});
  CHECK(f.bytes == std::array<uint64_t, 2>{60, 300});
  CHECK(f.payload_bytes == std::array<uint64_t, 2>{0, 200});
  CHECK(f.tcp_flags == std::array<uint8_t, 2>{tcpflag::ACK, tcpflag::ACK | tcpflag::PSH});
  CHECK(f.fin_seen == std::array<bool, 2>{false, true});
  CHECK(f.isn_seen == std::array<bool, 2>{false, true});
  CHECK(f.isn[1] == 7);
  CHECK(f.client_mac == std::array<uint8_t, 6>{2, 0, 0, 0, 0, 1});
  CHECK(f.id() != id);
  // Packets that follow take the new orientation.
  CHECK(tb.feed(pkt(ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 2), 4711, tcpflag::ACK, 2)) == Dir::to_server);
  f.reverse();
  CHECK(f.id() == id);
}

TEST_CASE("An absolute-timeout split keeps how the flow was oriented") {
  FlowLimits l;
  l.absolute_usec = 1000;
  std::vector<Orientation> seen;
  Counters c;
  FlowTable t(l, c, [&](Flow& f, FlowEnd) { seen.push_back(f.orientation); });
  Dir d;
  t.lookup(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 2575, tcpflag::SYN, 0), d);
  t.lookup(pkt(ip4(2, 2, 2, 2), 2575, ip4(1, 1, 1, 1), 40000, tcpflag::ACK, 2000), d);
  CHECK(d == Dir::to_client);
  t.end_all(FlowEnd::end_of_input);
  CHECK(seen == std::vector<Orientation>{Orientation::syn, Orientation::syn});
}

namespace {
// A TCP packet of a connection between 10.0.0.1:40000 (client) and 10.0.0.2:2575.
Packet seg(bool from_client, uint8_t flags, uint32_t seq, uint32_t ack, uint32_t len = 0, int8_t wscale = -1) {
  Packet p = from_client ? pkt(ip4(10, 0, 0, 1), 40000, ip4(10, 0, 0, 2), 2575, flags, 1)
                         : pkt(ip4(10, 0, 0, 2), 2575, ip4(10, 0, 0, 1), 40000, flags, 1);
  p.seq = seq;
  p.ack = ack;
  p.payload_len = len;
  p.tcp_wscale = wscale;
  return p;
}

// Handshake (client ISN 1000, server ISN 5000) and one request of 100 bytes, acknowledged.
void open_connection(Table& tb, int8_t wscale_client = -1, int8_t wscale_server = -1) {
  tb.feed(seg(true, tcpflag::SYN, 1000, 0, 0, wscale_client));
  tb.feed(seg(false, tcpflag::SYN | tcpflag::ACK, 5000, 1001, 0, wscale_server));
  tb.feed(seg(true, tcpflag::ACK, 1001, 5001));
  tb.feed(seg(true, tcpflag::ACK | tcpflag::PSH, 1001, 5001, 100));
  tb.feed(seg(false, tcpflag::ACK, 5001, 1101));
}

Flow& only_flow(Table& tb) {
  Dir d;
  return tb.t.lookup(seg(true, tcpflag::ACK, 1101, 5001), d);
}
}  // namespace

TEST_CASE("An RST outside its receiver's window is ignored; one inside ends the flow") {
  Table tb;
  open_connection(tb);
  // 1 GiB away from where the server is: no stack takes it.
  tb.feed(seg(false, tcpflag::RST, 5001 + 0x40000000u, 0));
  CHECK(tb.verdict == TcpVerdict::rst_out_of_window);
  CHECK(!only_flow(tb).closing());
  CHECK(only_flow(tb).tcp_flags[1] == (tcpflag::SYN | tcpflag::ACK));  // the RST left no trace
  // Just past the window (no window scale in the handshake: 65535 bytes).
  tb.feed(seg(false, tcpflag::RST, 5001 + 65536, 0));
  CHECK(tb.verdict == TcpVerdict::rst_out_of_window);
  // Within it: the connection is reset.
  tb.feed(seg(false, tcpflag::RST, 5001 + 1000, 0));
  CHECK(tb.verdict == TcpVerdict::ok);
  CHECK(only_flow(tb).rst_seen);
  tb.t.end_all(FlowEnd::end_of_input);
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].why == FlowEnd::reset);
}

TEST_CASE("The window an RST is checked against follows the handshake's window scale") {
  Table tb;
  open_connection(tb, 7, 7);
  CHECK(only_flow(tb).max_window(0) == 65535u << 7);
  tb.feed(seg(false, tcpflag::RST, 5001 + (65535u << 7) + 1, 0));
  CHECK(tb.verdict == TcpVerdict::rst_out_of_window);
  tb.feed(seg(false, tcpflag::RST, 5001 + (4u << 20), 0));
  CHECK(tb.verdict == TcpVerdict::ok);
  // Only one SYN offered scaling: none is in effect.
  Table one;
  open_connection(one, 7, -1);
  CHECK(only_flow(one).max_window(0) == 65535);
  one.feed(seg(false, tcpflag::RST, 5001 + (4u << 20), 0));
  CHECK(one.verdict == TcpVerdict::rst_out_of_window);
}

TEST_CASE("An RST with nothing to check it against is taken as it comes") {
  // A SYN refused: the RST's sequence number is 0, nothing was seen of the server.
  Table tb;
  tb.feed(seg(true, tcpflag::SYN, 1000, 0));
  tb.feed(seg(false, tcpflag::RST | tcpflag::ACK, 0, 1001));
  CHECK(tb.verdict == TcpVerdict::ok);
  tb.t.end_all(FlowEnd::end_of_input);
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].why == FlowEnd::reset);
  // Picked up mid-stream: the first packet is an RST.
  Table mid;
  mid.feed(seg(false, tcpflag::RST, 123456789, 0));
  CHECK(mid.verdict == TcpVerdict::ok);
  mid.t.end_all(FlowEnd::end_of_input);
  REQUIRE(mid.ended.size() == 1);
  CHECK(mid.ended[0].why == FlowEnd::reset);
  // Mid-stream, nothing seen from the server, but the client acknowledged up to 7000: that is
  // what the client expects; the scale is not known, so the window is kUnknownWindow.
  Table acked;
  acked.feed(seg(true, tcpflag::ACK | tcpflag::PSH, 1000, 7000, 50));
  acked.feed(seg(false, tcpflag::RST, 7000 + Flow::kUnknownWindow + 1, 0));
  CHECK(acked.verdict == TcpVerdict::rst_out_of_window);
  acked.feed(seg(false, tcpflag::RST, 7000, 0));
  CHECK(acked.verdict == TcpVerdict::ok);
}

TEST_CASE("An ACK for bytes the other side cannot have sent is out of window") {
  Table tb;
  open_connection(tb);  // the client sent up to 1101
  // 256 MiB past anything the client sent.
  tb.feed(seg(false, tcpflag::ACK, 5001, 1101 + 0x10000000u));
  CHECK(tb.verdict == TcpVerdict::ack_out_of_window);
  CHECK(only_flow(tb).ack_next[1] == 1101);  // not taken as how far the client got
  // Bytes the capture lost but the client may have sent (within the server's window): taken.
  tb.feed(seg(false, tcpflag::ACK, 5001, 1101 + 60000));
  CHECK(tb.verdict == TcpVerdict::ok);
  CHECK(only_flow(tb).ack_next[1] == 1101 + 60000);
  tb.feed(seg(false, tcpflag::ACK, 5001, 1101 + 65536));
  CHECK(tb.verdict == TcpVerdict::ack_out_of_window);
  // The client's own packets show how far it got, even without data.
  tb.feed(seg(true, tcpflag::ACK, 1101 + 200000, 5001));
  tb.feed(seg(false, tcpflag::ACK, 5001, 1101 + 200000));
  CHECK(tb.verdict == TcpVerdict::ok);
  // Nothing seen of the side acknowledged (mid-stream, one direction so far): taken.
  Table mid;
  mid.feed(seg(false, tcpflag::ACK | tcpflag::PSH, 5001, 0x7000000, 10));
  CHECK(mid.verdict == TcpVerdict::ok);
}

TEST_CASE("A flow's own packet after its idle timeout ends it (and no other) and starts a new one, with no expire() between") {
  FlowLimits l;
  l.udp_idle_usec = 50;
  Table tb(l);
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 9999, 0, 0, 17));
  tb.feed(pkt(ip4(1, 1, 1, 1), 40001, ip4(3, 3, 3, 3), 9999, 0, 10, 17));
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 9999, 0, 50, 17));  // at its timeout: the same flow
  CHECK(tb.ended.empty());
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 9999, 0, 101, 17));
  // The other flow was due too, but ends at the next check of timeouts: which flows a packet
  // ends must not depend on what else the table holds (with --workers, other tables).
  REQUIRE(tb.ended.size() == 1);
  CHECK(tb.ended[0].client_is_first);
  CHECK(tb.ended[0].why == FlowEnd::idle_timeout);
  CHECK(tb.ended[0].to_server == 2);
  CHECK(tb.t.size() == 2);
  tb.t.expire(Timestamp{101});
  REQUIRE(tb.ended.size() == 2);
  CHECK(!tb.ended[1].client_is_first);
  CHECK(tb.ended[1].why == FlowEnd::idle_timeout);
  CHECK(tb.t.size() == 1);
  CHECK(tb.c.get("flows.created") == 3);
  CHECK(tb.c.get("flows.timed_out") == 2);
}

TEST_CASE("Flows that time out together end in the order of their last packets; closed ones are counted apart") {
  FlowLimits l;
  l.udp_idle_usec = 50;
  l.tcp_closed_usec = 10;
  Table tb(l);
  tb.feed(pkt(ip4(1, 1, 1, 1), 40000, ip4(2, 2, 2, 2), 9999, 0, 1, 17));
  tb.feed(pkt(ip4(1, 1, 1, 1), 40001, ip4(2, 2, 2, 2), 80, tcpflag::SYN, 2));
  tb.feed(pkt(ip4(2, 2, 2, 2), 80, ip4(1, 1, 1, 1), 40001, tcpflag::RST | tcpflag::ACK, 3));
  tb.t.expire(Timestamp{100});
  REQUIRE(tb.ended.size() == 2);
  CHECK(tb.ended[0].why == FlowEnd::idle_timeout);
  CHECK(tb.ended[1].why == FlowEnd::reset);
  CHECK(tb.c.get("flows.timed_out") == 1);
  CHECK(tb.c.get("flows.closed") == 1);
}
