#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "sensor/decode/decoder.h"
#include "sensor/decode/test/frames.h"

using namespace medmon;
using namespace medmon::test;

namespace {
struct Harness {
  Counters counters;
  std::vector<std::string> anomalies;
  Decoder dec;
  explicit Harness(int dlt)
      : dec(dlt, counters, [this](std::string_view n, uint32_t, const Packet&) { anomalies.emplace_back(n); }) {}
  Bytes frame;  // the decoded packet points into it: kept while the test reads the packet
  DecodeStatus run(const Bytes& f, Packet& p) {
    frame = f;
    return dec.decode(frame.data(), static_cast<uint32_t>(frame.size()), static_cast<uint32_t>(frame.size()), Timestamp{1}, p);
  }
};
}  // namespace

TEST_CASE("Ethernet IPv4 TCP decodes addresses, ports, flags and payload") {
  Harness h(linktype::EN10MB);
  auto f = ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 6, tcp(40000, 104, 100, 0, tcpflag::SYN | tcpflag::PSH, "hello")));
  Packet p;
  REQUIRE(h.run(f, p) == DecodeStatus::ok);
  CHECK(p.src.to_string() == "10.0.0.1");
  CHECK(p.dst.to_string() == "10.0.0.2");
  CHECK(p.sport == 40000);
  CHECK(p.dport == 104);
  CHECK(p.seq == 100);
  CHECK(p.tcp_flags == (tcpflag::SYN | tcpflag::PSH));
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), p.payload_len) == "hello");
  CHECK(p.has_mac);
  CHECK(p.l3_len == 20 + 20 + 5);
}

TEST_CASE("Ethernet padding is trimmed by the IPv4 total length") {
  Harness h(linktype::EN10MB);
  auto f = ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 17, udp(1, 2, "ab")));
  f.resize(60, 0);  // minimum Ethernet frame
  Packet p;
  REQUIRE(h.run(f, p) == DecodeStatus::ok);
  CHECK(p.payload_len == 2);
}

TEST_CASE("802.1Q and QinQ keep the VLAN ids, outer first") {
  Harness h(linktype::EN10MB);
  auto inner = ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 17, udp(5000, 5001, "x"));
  Packet p;
  REQUIRE(h.run(ether(0x0800, inner, {10}), p) == DecodeStatus::ok);
  CHECK(p.vlan_count == 1);
  CHECK(p.vlan[0] == 10);
  REQUIRE(h.run(ether(0x0800, inner, {100, 20}), p) == DecodeStatus::ok);
  CHECK(p.vlan_count == 2);
  CHECK(p.vlan[0] == 100);
  CHECK(p.vlan[1] == 20);
}

TEST_CASE("IPv4 options are skipped") {
  Harness h(linktype::RAW);
  auto f = ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, udp(53, 53, "q"), 1, 0, 7);
  Packet p;
  REQUIRE(h.run(f, p) == DecodeStatus::ok);
  CHECK(p.sport == 53);
  CHECK(p.payload_len == 1);
}

TEST_CASE("IPv6 with hop-by-hop and destination options") {
  Harness h(linktype::EN10MB);
  uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  Bytes ext;
  auto l4 = tcp(1000, 2575, 1, 0, tcpflag::SYN);
  ext.push_back(60); ext.push_back(0); ext.insert(ext.end(), 6, 0);  // hop-by-hop -> dest opts
  ext.push_back(6); ext.push_back(0); ext.insert(ext.end(), 6, 0);   // dest opts -> TCP
  ext.insert(ext.end(), l4.begin(), l4.end());
  Packet p;
  REQUIRE(h.run(ether(0x86DD, ipv6(a, b, 0, ext)), p) == DecodeStatus::ok);
  CHECK(p.proto == 6);
  CHECK(p.dport == 2575);
  CHECK(p.src.to_string() == "2001:db8::1");
}

TEST_CASE("IPv6 extension headers, AH among them, are left out of the packet nDPI gets") {
  Harness h(linktype::EN10MB);
  uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  auto l4 = tcp(1000, 443, 1, 0, tcpflag::PSH | tcpflag::ACK, "hello");
  Bytes ext = {60, 4};  // authentication header (24 bytes) -> destination options -> TCP
  ext.insert(ext.end(), 22, 0);
  ext.push_back(6); ext.push_back(0); ext.insert(ext.end(), 6, 0);
  ext.insert(ext.end(), l4.begin(), l4.end());
  Packet p;
  REQUIRE(h.run(ether(0x86DD, ipv6(a, b, 51, ext)), p) == DecodeStatus::ok);
  CHECK(p.proto == 6);
  REQUIRE(p.l3_len == 40 + l4.size());
  CHECK(p.l3[6] == 6);
  CHECK((p.l3[4] << 8 | p.l3[5]) == static_cast<int>(l4.size()));
  CHECK(Bytes(p.l3 + 40, p.l3 + p.l3_len) == l4);
  CHECK(Bytes(p.l3 + 8, p.l3 + 40) == Bytes(h.frame.begin() + 14 + 8, h.frame.begin() + 14 + 40));

  // The same behind a fragment header: the datagram nDPI gets has no extension header either.
  Bytes inner = {51, 0};  // destination options -> AH -> TCP
  inner.insert(inner.end(), 6, 0);
  inner.push_back(6); inner.push_back(4); inner.insert(inner.end(), 22, 0);
  inner.insert(inner.end(), l4.begin(), l4.end());
  Bytes f1 = {60, 0, 0, 1, 0, 0, 0, 9};  // offset 0, more
  f1.insert(f1.end(), inner.begin(), inner.begin() + 40);
  Bytes f2 = {60, 0, 0, 40, 0, 0, 0, 9};  // offset 40, last
  f2.insert(f2.end(), inner.begin() + 40, inner.end());
  CHECK(h.run(ether(0x86DD, ipv6(a, b, 44, f1)), p) == DecodeStatus::fragment);
  REQUIRE(h.run(ether(0x86DD, ipv6(a, b, 44, f2)), p) == DecodeStatus::ok);
  CHECK(p.proto == 6);
  CHECK(p.payload_len == 5);
  REQUIRE(p.l3_len == 40 + l4.size());
  CHECK(p.l3[6] == 6);
  CHECK(Bytes(p.l3 + 40, p.l3 + p.l3_len) == l4);
}

TEST_CASE("IPv4 fragments reassemble out of order, overlaps keep the first copy") {
  Harness h(linktype::RAW);
  std::string data(64, 'A');
  data.replace(32, 32, std::string(32, 'B'));
  auto whole = udp(7, 9, data);  // 72 bytes of UDP
  Bytes part1(whole.begin(), whole.begin() + 40), part2(whole.begin() + 40, whole.end());
  Packet p;
  // Second fragment first (offset 40 = 5 units), then the first.
  CHECK(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, part2, 77, 5), p) == DecodeStatus::fragment);
  REQUIRE(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, part1, 77, 0x2000), p) == DecodeStatus::ok);
  CHECK(p.reassembled);
  CHECK(p.payload_len == 64);
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), 64) == data);
  CHECK(h.counters.get("ip.fragments.reassembled") == 1);

  // Overlap with different bytes: reported, first copy wins.
  Bytes over(whole.begin() + 32, whole.begin() + 48);
  over[0] ^= 0xFF;
  CHECK(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, part1, 78, 0x2000), p) == DecodeStatus::fragment);
  CHECK(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, over, 78, 0x2000 | 4), p) == DecodeStatus::fragment);
  REQUIRE(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, part2, 78, 5), p) == DecodeStatus::ok);
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), 64) == data);
  CHECK(h.anomalies == std::vector<std::string>{"ipv4.fragment_overlap_conflict"});
  CHECK(h.counters.get("decode.malformed") == 0);  // reported, and the fragment still used
}

TEST_CASE("A reassembled IPv4 datagram starts after the first fragment's header, whatever the last one's length") {
  Harness h(linktype::RAW);
  auto whole = udp(1111, 2222, std::string(20, 'x'));  // 28 bytes of UDP
  Bytes part1(whole.begin(), whole.begin() + 16), part2(whole.begin() + 16, whole.end());
  Packet p;
  // First fragment with options (24-byte header), the completing one without.
  CHECK(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, part1, 7, 0x2000, 6), p) == DecodeStatus::fragment);
  REQUIRE(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, part2, 7, 2), p) == DecodeStatus::ok);
  CHECK(p.sport == 1111);
  CHECK(p.dport == 2222);
  CHECK(p.payload_len == 20);
  // The completing fragment's header (60 bytes) longer than the whole datagram (20 + 16): no
  // read beyond it (this read past the buffer before).
  auto small = udp(5, 6, "abcdefgh");
  Bytes s1(small.begin(), small.begin() + 8), s2(small.begin() + 8, small.end());
  CHECK(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, s1, 9, 0x2000), p) == DecodeStatus::fragment);
  REQUIRE(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, s2, 9, 1, 15), p) == DecodeStatus::ok);
  CHECK(p.sport == 5);
  CHECK(p.payload_len == 8);
}

TEST_CASE("An IPv4 datagram whose header and data exceed 65535 bytes is dropped, not wrapped") {
  Harness h(linktype::RAW);
  Packet p;
  Bytes chunk(1480, 'z');
  // 44 fragments of 1480 bytes, then one that brings the data to 65516 bytes: within the fragment
  // offset's range, but 65536 with the 20-byte header.
  for (uint16_t k = 0; k < 44; ++k)
    CHECK(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 253, chunk, 3, static_cast<uint16_t>(0x2000 | (k * 185))), p) ==
          DecodeStatus::fragment);
  Bytes last(65535 - 20 - 44 * 1480 + 1, 'z');  // one byte over
  CHECK(h.run(ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 253, last, 3, static_cast<uint16_t>(44 * 185)), p) ==
        DecodeStatus::fragment);
  CHECK(h.counters.get("ip.fragments.too_big") == 1);
  CHECK(h.counters.get("ip.fragments.reassembled") == 0);
}

TEST_CASE("Peek-only decoding reads the fragment fields and the first fragment's ports") {
  Counters c;
  Decoder dec(linktype::EN10MB, c, nullptr);
  dec.set_peek_only(true);
  Packet p;
  auto run = [&](const Bytes& f) {
    return dec.decode(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), Timestamp{1}, p);
  };
  auto seg = tcp(40006, 8080, 1, 2, tcpflag::ACK | tcpflag::PSH, std::string(40, 'x'));
  Bytes head(seg.begin(), seg.begin() + 32), tail(seg.begin() + 32, seg.end());
  REQUIRE(run(ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 6, head, 0x0606, 0x2000))) == DecodeStatus::fragment);
  CHECK(dec.peeked_fragment().id == 0x0606);
  CHECK(dec.peeked_fragment().offset == 0);
  CHECK(dec.peeked_fragment().more);
  CHECK(dec.peeked_fragment().has_ports);
  CHECK((p.sport == 40006 && p.dport == 8080 && p.proto == 6));
  // A later fragment has no ports: only its offset and identification.
  REQUIRE(run(ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 6, tail, 0x0606, 4))) == DecodeStatus::fragment);
  CHECK(dec.peeked_fragment().offset == 32);
  CHECK_FALSE(dec.peeked_fragment().more);
  CHECK_FALSE(dec.peeked_fragment().has_ports);
  CHECK((p.sport == 0 && p.dport == 0));
  CHECK(dec.fragments().pending() == 0);  // nothing held

  // ICMP echo: the identifier is both "ports", as for the reassembled datagram.
  Bytes echo = {8, 0, 0, 0, 0x12, 0x34, 0, 1};
  echo.resize(48, 'p');
  REQUIRE(run(ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 1, echo, 9, 0x2000))) == DecodeStatus::fragment);
  CHECK(dec.peeked_fragment().has_ports);
  CHECK((p.sport == 0x1234 && p.dport == 0x1234));
  // Too short to hold the identifier: unknown.
  REQUIRE(run(ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 1, Bytes(echo.begin(), echo.begin() + 4), 10,
                                 0x2000))) == DecodeStatus::fragment);
  CHECK_FALSE(dec.peeked_fragment().has_ports);

  // IPv6 fragment header: 32-bit identification, UDP ports from the first fragment.
  const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  Bytes frag = {17, 0, 0, 1, 0xAB, 0xCD, 0, 1};  // offset 0, more fragments
  auto u = udp(40003, 7003, std::string(64, 'u'));
  frag.insert(frag.end(), u.begin(), u.begin() + 24);
  REQUIRE(run(ether(0x86DD, ipv6(a, b, 44, frag))) == DecodeStatus::fragment);
  CHECK(dec.peeked_fragment().id == 0xABCD0001);
  CHECK(dec.peeked_fragment().has_ports);
  CHECK((p.sport == 40003 && p.dport == 7003 && p.proto == 17));

  // Destination options after the fragment header: the ports are behind them, and the
  // protocol the datagram will decode with is UDP (the packet keeps the fragment header's next
  // header, which all fragments of the datagram share).
  Bytes frag2 = {60, 0, 0, 1, 0xAB, 0xCD, 0, 2};
  Bytes opts = {17, 0, 1, 4, 0, 0, 0, 0};  // destination options -> UDP, one PadN
  frag2.insert(frag2.end(), opts.begin(), opts.end());
  frag2.insert(frag2.end(), u.begin(), u.begin() + 24);
  REQUIRE(run(ether(0x86DD, ipv6(a, b, 44, frag2))) == DecodeStatus::fragment);
  CHECK(dec.peeked_fragment().has_ports);
  CHECK(dec.peeked_fragment().l4_proto == 17);
  CHECK(p.proto == 60);
  CHECK((p.sport == 40003 && p.dport == 7003));
}

TEST_CASE("TCP options cut by the snap length keep the packet; beyond a whole packet they are an anomaly") {
  Harness h(linktype::RAW);
  auto seg = tcp(40000, 104, 7, 9, tcpflag::ACK, std::string(12, '\x01') + "data");
  seg[12] = 8 << 4;  // 32-byte header: 12 bytes of options
  auto f = ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 6, seg);
  Packet p;
  // Captured up to 24 bytes of the TCP header (snap length 44).
  REQUIRE(h.dec.decode(f.data(), 44, static_cast<uint32_t>(f.size()), Timestamp{1}, p) == DecodeStatus::ok);
  CHECK(p.sport == 40000);
  CHECK(p.seq == 7);
  CHECK(p.tcp_flags == tcpflag::ACK);
  CHECK(p.payload_len == 0);
  CHECK(h.counters.get("tcp.truncated_options") == 1);
  CHECK(h.anomalies.empty());
  // The same header in a packet that was captured whole, but whose IP length ends inside it.
  auto lying = ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 6, Bytes(seg.begin(), seg.begin() + 24));
  CHECK(h.run(lying, p) == DecodeStatus::malformed);
  CHECK(h.anomalies == std::vector<std::string>{"tcp.data_offset_beyond_packet"});
}

TEST_CASE("A SYN's window scale option is read; other packets and SYNs without it give none") {
  Harness h(linktype::RAW);
  auto with_options = [](uint8_t flags, Bytes options) {
    auto seg = tcp(40000, 2575, 7, 0, flags);
    seg[12] = static_cast<uint8_t>((5 + options.size() / 4) << 4);
    seg.insert(seg.begin() + 20, options.begin(), options.end());
    return ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 6, seg);
  };
  // MSS, NOP, window scale 7; then SACK permitted and end of options.
  Bytes opts = {2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0};
  Packet p;
  REQUIRE(h.run(with_options(tcpflag::SYN, opts), p) == DecodeStatus::ok);
  CHECK(p.tcp_wscale == 7);
  REQUIRE(h.run(with_options(tcpflag::ACK, opts), p) == DecodeStatus::ok);
  CHECK(p.tcp_wscale == -1);  // only a SYN's option counts
  REQUIRE(h.run(with_options(tcpflag::SYN, {2, 4, 0x05, 0xb4}), p) == DecodeStatus::ok);
  CHECK(p.tcp_wscale == -1);
  Bytes big = {3, 3, 20, 0};  // a shift over 14 is taken as 14 (RFC 7323)
  REQUIRE(h.run(with_options(tcpflag::SYN, big), p) == DecodeStatus::ok);
  CHECK(p.tcp_wscale == 14);
  Bytes lying = {2, 40, 0, 0, 3, 3, 7, 0};  // an option longer than the options area
  REQUIRE(h.run(with_options(tcpflag::SYN, lying), p) == DecodeStatus::ok);
  CHECK(p.tcp_wscale == -1);
}

TEST_CASE("IPv6: headers after the fragment header are walked once the datagram is whole") {
  Harness h(linktype::EN10MB);
  uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  Bytes inner = {17, 0, 0, 0, 0, 0, 0, 0};  // destination options -> UDP
  auto u = udp(1111, 2222, std::string(40, 'q'));
  inner.insert(inner.end(), u.begin(), u.end());  // 56 bytes
  Bytes f1 = {60, 0, 0, 1, 0, 0, 0, 5};           // offset 0, more
  f1.insert(f1.end(), inner.begin(), inner.begin() + 32);
  Bytes f2 = {60, 0, 0, 32, 0, 0, 0, 5};          // offset 32, last
  f2.insert(f2.end(), inner.begin() + 32, inner.end());
  Packet p;
  CHECK(h.run(ether(0x86DD, ipv6(a, b, 44, f1)), p) == DecodeStatus::fragment);
  REQUIRE(h.run(ether(0x86DD, ipv6(a, b, 44, f2)), p) == DecodeStatus::ok);
  CHECK(p.proto == 17);
  CHECK(p.sport == 1111);
  CHECK(p.dport == 2222);
  CHECK(p.payload_len == 40);
}

TEST_CASE("Fragment table is bounded") {
  Counters c;
  FragmentLimits lim;
  lim.max_datagrams = 8;
  Decoder dec(linktype::RAW, c, nullptr, lim);
  Packet p;
  for (uint16_t id = 0; id < 100; ++id) {
    auto f = ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, Bytes(16, 0), id, 0x2000);
    dec.decode(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), Timestamp{1}, p);
  }
  CHECK(dec.fragments().pending() == 8);
  CHECK(c.get("ip.fragments.evicted") == 92);
}

TEST_CASE("Malformed packets are anomalies, never crashes") {
  Harness h(linktype::EN10MB);
  Packet p;
  auto good = ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 6, tcp(1, 2, 0, 0, 0, "data")));
  // Every truncation of a valid frame.
  for (size_t n = 0; n < 14 + 20 + 20; ++n) {  // every cut inside the headers
    Bytes cut(good.begin(), good.begin() + n);
    auto r = h.run(cut, p);
    CHECK(r != DecodeStatus::ok);
  }
  CHECK_FALSE(h.anomalies.empty());
  // Bad IHL, bad TCP data offset.
  auto bad_ihl = good;
  bad_ihl[14] = 0x43;
  CHECK(h.run(bad_ihl, p) == DecodeStatus::malformed);
  auto bad_doff = good;
  bad_doff[14 + 20 + 12] = 0xF0;  // 60-byte header in a 24-byte segment
  CHECK(h.run(bad_doff, p) == DecodeStatus::malformed);
  CHECK(h.anomalies.back() == "tcp.data_offset_beyond_packet");
}

TEST_CASE("Link types: NULL, SLL, SLL2, PPPoE") {
  auto ip = ipv4(ip4(127, 0, 0, 1), ip4(127, 0, 0, 1), 17, udp(1, 2, "z"));
  Packet p;
  {
    Harness h(linktype::NULL_);
    Bytes f = {2, 0, 0, 0};
    f.insert(f.end(), ip.begin(), ip.end());
    REQUIRE(h.run(f, p) == DecodeStatus::ok);
    CHECK(p.dport == 2);
  }
  {
    Harness h(linktype::LINUX_SLL);
    Bytes f = {0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00};
    f.insert(f.end(), ip.begin(), ip.end());
    REQUIRE(h.run(f, p) == DecodeStatus::ok);
    CHECK(p.has_mac);
    CHECK_FALSE(p.has_dst_mac);  // the cooked header names the sender only
    CHECK_FALSE(p.l2_broadcast);
    f[1] = 1;  // packet type: sent to the broadcast address
    REQUIRE(h.run(f, p) == DecodeStatus::ok);
    CHECK(p.l2_broadcast);
  }
  {
    Harness h(linktype::LINUX_SLL2);
    Bytes f = {0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0};
    f.insert(f.end(), ip.begin(), ip.end());
    REQUIRE(h.run(f, p) == DecodeStatus::ok);
    CHECK_FALSE(p.l2_broadcast);
    f[10] = 1;
    REQUIRE(h.run(f, p) == DecodeStatus::ok);
    CHECK(p.l2_broadcast);
  }
  {
    Harness h(linktype::EN10MB);
    Bytes pppoe = {0x11, 0x00, 0x00, 0x01};
    put16(pppoe, static_cast<uint16_t>(ip.size() + 2));
    put16(pppoe, 0x0021);
    pppoe.insert(pppoe.end(), ip.begin(), ip.end());
    REQUIRE(h.run(ether(0x8864, pppoe), p) == DecodeStatus::ok);
    CHECK(p.sport == 1);
  }
  CHECK_FALSE(linktype_supported(147));
}

TEST_CASE("A datagram sent as thousands of disjoint pieces is dropped at the piece cap") {
  Counters c;
  Decoder dec(linktype::RAW, c, nullptr, FragmentLimits{});
  Packet p;
  for (uint16_t k = 0; k < 2000; ++k) {  // 8-byte pieces with 8-byte holes between them
    auto f = ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, Bytes(8, 0), 5, static_cast<uint16_t>(0x2000 | (2 * k)));
    dec.decode(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), Timestamp{1}, p);
  }
  CHECK(c.get("ip.fragments.too_many_pieces") >= 1);
  CHECK(dec.fragments().pending() <= 1);
  // Filling the holes of a datagram merges its pieces back into one and completes it.
  Bytes whole(8 * 40, 7);
  for (int k = 39; k >= 0; k -= 2) {
    Bytes piece(whole.begin() + 8 * k, whole.begin() + 8 * k + 8);
    auto f = ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, piece, 6, static_cast<uint16_t>((k == 39 ? 0 : 0x2000) | k));
    CHECK(dec.decode(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), Timestamp{1}, p) == DecodeStatus::fragment);
  }
  for (int k = 38; k >= 0; k -= 2) {
    Bytes piece(whole.begin() + 8 * k, whole.begin() + 8 * k + 8);
    auto f = ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, piece, 6, static_cast<uint16_t>(0x2000 | k));
    DecodeStatus st = dec.decode(f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size()), Timestamp{1}, p);
    CHECK(st == (k == 0 ? DecodeStatus::ok : DecodeStatus::fragment));
  }
  CHECK(c.get("ip.fragments.reassembled") == 1);
}

namespace {
// The packet every tunnel below carries: a TCP segment between two hosts of a site, in an
// Ethernet frame with its own addresses and VLAN tag where the tunnel carries Ethernet.
Bytes inner_ip() { return ipv4(ip4(10, 1, 0, 10), ip4(10, 2, 0, 20), 6, tcp(40000, 104, 7, 0, tcpflag::PSH, "DICM")); }
Bytes inner_frame() {
  Bytes f = ether(0x0800, inner_ip(), {30});
  f[0] = 0xAA; f[6] = 0xBB;  // not the outer frame's addresses
  return f;
}
Bytes gre(uint16_t flags, uint16_t type, const Bytes& payload, size_t extra_words) {
  Bytes b;
  put16(b, flags); put16(b, type);
  for (size_t i = 0; i < extra_words; ++i) put32(b, static_cast<uint32_t>(0x01020304 + i));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}
Bytes cat(Bytes a, const Bytes& b) { a.insert(a.end(), b.begin(), b.end()); return a; }
// The outer packet from a switch (ERSPAN source, VTEP) to the sensor, on VLAN 99.
Bytes outer(uint8_t proto, const Bytes& l4) { return ether(0x0800, ipv4(ip4(192, 0, 2, 1), ip4(192, 0, 2, 9), proto, l4), {99}); }
Bytes udp_bytes(uint16_t sp, uint16_t dp, const Bytes& payload) {
  return udp(sp, dp, std::string(payload.begin(), payload.end()));
}

void check_inner(const Packet& p, bool ethernet) {
  CHECK(p.src.to_string() == "10.1.0.10");
  CHECK(p.dst.to_string() == "10.2.0.20");
  CHECK(p.proto == 6);
  CHECK(p.sport == 40000);
  CHECK(p.dport == 104);
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), p.payload_len) == "DICM");
  CHECK(p.l3_len == 20 + 20 + 4);
  if (ethernet) {
    CHECK(p.has_mac);
    CHECK(p.src_mac[0] == 0xBB);
    CHECK(p.dst_mac[0] == 0xAA);
    REQUIRE(p.vlan_count == 1);
    CHECK(p.vlan[0] == 30);  // the mirrored frame's tag, not the transport's 99
  } else {
    CHECK_FALSE(p.has_mac);  // the outer addresses are the tunnel's, not the hosts'
    CHECK(p.vlan_count == 0);
  }
}
}  // namespace

TEST_CASE("Tunnels are opened: the inner packet is the one analysed") {
  Harness h(linktype::EN10MB);
  Packet p;
  SECTION("GRE with IPv4 inside, with checksum, key and sequence number") {
    REQUIRE(h.run(outer(47, gre(0xB000, 0x0800, inner_ip(), 3)), p) == DecodeStatus::ok);
    check_inner(p, false);
    CHECK(h.counters.get("decode.tunnel.gre") == 1);
  }
  SECTION("GRE with an Ethernet frame inside (gretap)") {
    REQUIRE(h.run(outer(47, gre(0x2000, 0x6558, inner_frame(), 1)), p) == DecodeStatus::ok);
    check_inner(p, true);
  }
  SECTION("ERSPAN type I, II and III (with and without the platform subheader)") {
    REQUIRE(h.run(outer(47, gre(0x0000, 0x88BE, inner_frame(), 0)), p) == DecodeStatus::ok);
    check_inner(p, true);
    Bytes e2 = {0x10, 0x1E, 0x00, 0x7B, 0x00, 0x00, 0x00, 0x05};  // version 1, VLAN 30, session 123
    REQUIRE(h.run(outer(47, gre(0x1000, 0x88BE, cat(e2, inner_frame()), 1)), p) == DecodeStatus::ok);
    check_inner(p, true);
    Bytes e3(12, 0);
    e3[0] = 0x20;
    REQUIRE(h.run(outer(47, gre(0x1000, 0x22EB, cat(e3, inner_frame()), 1)), p) == DecodeStatus::ok);
    check_inner(p, true);
    e3[11] = 0x01;  // O bit: 8 bytes of platform-specific subheader follow
    REQUIRE(h.run(outer(47, gre(0x1000, 0x22EB, cat(cat(e3, Bytes(8, 0xEE)), inner_frame()), 1)), p) == DecodeStatus::ok);
    check_inner(p, true);
    CHECK(h.counters.get("decode.tunnel.erspan") == 4);
    // A version 2 (type III) header announced as type II: read by its version, as Wireshark does.
    e3[11] = 0x00;
    REQUIRE(h.run(outer(47, gre(0x1000, 0x88BE, cat(e3, inner_frame()), 1)), p) == DecodeStatus::ok);
    check_inner(p, true);
    Bytes bad = e2;
    bad[0] = 0x70;
    CHECK(h.run(outer(47, gre(0x1000, 0x88BE, cat(bad, inner_frame()), 1)), p) == DecodeStatus::malformed);
    CHECK(h.anomalies.back() == "erspan.bad_version");
  }
  SECTION("VXLAN and Geneve") {
    Bytes vx = {0x08, 0, 0, 0, 0, 0, 42, 0};
    REQUIRE(h.run(outer(17, udp_bytes(51234, 4789, cat(vx, inner_frame()))), p) == DecodeStatus::ok);
    check_inner(p, true);
    Bytes gn = {0x01, 0x00, 0x65, 0x58, 0, 0, 5, 0, 1, 2, 3, 4};  // one 4-byte option word
    REQUIRE(h.run(outer(17, udp_bytes(51235, 6081, cat(gn, inner_frame()))), p) == DecodeStatus::ok);
    check_inner(p, true);
    CHECK(h.counters.get("decode.tunnel.vxlan") == 1);
    CHECK(h.counters.get("decode.tunnel.geneve") == 1);
    // Geneve with an IP packet inside (protocol type 0x0800 / 0x86DD), as cloud load balancers send it.
    Bytes gn4 = {0x00, 0x00, 0x08, 0x00, 0, 0, 5, 0};
    REQUIRE(h.run(outer(17, udp_bytes(51236, 6081, cat(gn4, inner_ip()))), p) == DecodeStatus::ok);
    check_inner(p, false);
    static const uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t b6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    Bytes gn6 = {0x00, 0x00, 0x86, 0xDD, 0, 0, 5, 0};
    REQUIRE(h.run(outer(17, udp_bytes(51237, 6081, cat(gn6, ipv6(a6, b6, 6, tcp(40000, 104, 7, 0, tcpflag::PSH, "DICM"))))), p) ==
            DecodeStatus::ok);
    CHECK(p.ip_version == 6);
    CHECK(p.dport == 104);
    CHECK(p.payload_len == 4);
    CHECK(h.counters.get("decode.tunnel.geneve") == 3);
    // Not a VXLAN header (I flag clear): an ordinary datagram to port 4789.
    REQUIRE(h.run(outer(17, udp_bytes(5000, 4789, Bytes{0, 0, 0, 0, 0, 0, 0, 0, 'x'})), p) == DecodeStatus::ok);
    CHECK(p.dport == 4789);
    CHECK(p.payload_len == 9);
  }
  SECTION("IPv4 in IPv4") {
    REQUIRE(h.run(outer(4, inner_ip()), p) == DecodeStatus::ok);
    check_inner(p, false);
    CHECK(h.counters.get("decode.tunnel.ip_in_ip") == 1);
  }
  SECTION("PPTP's enhanced GRE (version 1) stays a GRE packet") {
    REQUIRE(h.run(outer(47, gre(0x3081, 0x880B, Bytes(12, 0), 0)), p) == DecodeStatus::ok);
    CHECK(p.proto == 47);
    CHECK(p.dst.to_string() == "192.0.2.9");
  }
  SECTION("Cut tunnels and tunnels nested too deep are anomalies") {
    CHECK(h.run(outer(47, Bytes{0x00, 0x00}), p) == DecodeStatus::malformed);
    CHECK(h.anomalies.back() == "gre.truncated");
    CHECK(h.run(outer(47, gre(0x1000, 0x22EB, Bytes(5, 0), 1)), p) == DecodeStatus::malformed);
    CHECK(h.anomalies.back() == "erspan.truncated");
    Bytes nest = inner_ip();
    for (int i = 0; i < 4; ++i) nest = ipv4(ip4(172, 16, 0, 1), ip4(172, 16, 0, 2), 4, nest);
    CHECK(h.run(ether(0x0800, nest), p) == DecodeStatus::malformed);
    CHECK(h.anomalies.back() == "tunnel.too_deep");
    Bytes three = inner_ip();
    for (int i = 0; i < 3; ++i) three = ipv4(ip4(172, 16, 0, 1), ip4(172, 16, 0, 2), 4, three);
    REQUIRE(h.run(ether(0x0800, three), p) == DecodeStatus::ok);
    check_inner(p, false);
  }
}

TEST_CASE("A tunnel in outer fragments is opened once they are whole, and may hold fragments itself") {
  Harness h(linktype::EN10MB);
  // The inner datagram in two fragments, each carried in GRE; the second GRE packet is itself
  // split in two outer fragments.
  Bytes payload(64, 'q');
  Bytes l4 = udp(7000, 7001, std::string(payload.begin(), payload.end()));
  Bytes f1 = ipv4(ip4(10, 1, 0, 10), ip4(10, 2, 0, 20), 17, Bytes(l4.begin(), l4.begin() + 32), 77, 0x2000);
  Bytes f2 = ipv4(ip4(10, 1, 0, 10), ip4(10, 2, 0, 20), 17, Bytes(l4.begin() + 32, l4.end()), 77, 4);
  Packet p;
  REQUIRE(h.run(outer(47, gre(0, 0x0800, f1, 0)), p) == DecodeStatus::fragment);
  Bytes g2 = gre(0, 0x0800, f2, 0);
  Bytes o1 = ipv4(ip4(192, 0, 2, 1), ip4(192, 0, 2, 9), 47, Bytes(g2.begin(), g2.begin() + 24), 5, 0x2000);
  Bytes o2 = ipv4(ip4(192, 0, 2, 1), ip4(192, 0, 2, 9), 47, Bytes(g2.begin() + 24, g2.end()), 5, 3);
  REQUIRE(h.run(ether(0x0800, o1), p) == DecodeStatus::fragment);
  REQUIRE(h.run(ether(0x0800, o2), p) == DecodeStatus::ok);
  CHECK(p.src.to_string() == "10.1.0.10");
  CHECK(p.dport == 7001);
  CHECK(p.payload_len == 64);
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), p.payload_len) == std::string(64, 'q'));
}

TEST_CASE("Peek-only decoding opens tunnels, also from a first fragment, so that workers get the inner flow") {
  Counters c;
  Decoder dec(linktype::EN10MB, c, nullptr);
  dec.set_peek_only(true);
  Packet p;
  Bytes frame;  // kept while the packet points into it
  auto run = [&](const Bytes& f) {
    frame = f;
    return dec.decode(frame.data(), uint32_t(frame.size()), uint32_t(frame.size()), Timestamp{1}, p);
  };
  Bytes vx = {0x08, 0, 0, 0, 0, 0, 42, 0};
  REQUIRE(run(outer(17, udp_bytes(51234, 4789, cat(vx, inner_frame())))) == DecodeStatus::ok);
  CHECK(p.dst.to_string() == "10.2.0.20");
  CHECK(p.sport == 40000);
  REQUIRE(run(outer(47, gre(0, 0x0800, inner_ip(), 0))) == DecodeStatus::ok);
  CHECK(p.src.to_string() == "10.1.0.10");
  CHECK(p.proto == 6);
  // The first fragment of a VXLAN datagram names the inner flow: addresses, ports, protocol.
  Bytes u = udp_bytes(51234, 4789, cat(vx, inner_frame()));
  Bytes frag = ipv4(ip4(192, 0, 2, 1), ip4(192, 0, 2, 9), 17, Bytes(u.begin(), u.begin() + 76), 9, 0x2000);
  REQUIRE(run(ether(0x0800, frag)) == DecodeStatus::fragment);
  const FragmentPeek& f = dec.peeked_fragment();
  CHECK(f.has_ports);
  CHECK(f.inner);
  CHECK(f.inner_src.to_string() == "10.1.0.10");
  CHECK(f.inner_dst.to_string() == "10.2.0.20");
  CHECK(f.l4_proto == 6);
  CHECK(p.sport == 40000);
  CHECK(p.dport == 104);
  CHECK(p.src.to_string() == "192.0.2.1");  // the fragment itself stays the outer datagram's
  // A first fragment too short to name it: the outer pair decides.
  Bytes shortf = ipv4(ip4(192, 0, 2, 1), ip4(192, 0, 2, 9), 47, Bytes{0, 0}, 10, 0x2000);
  REQUIRE(run(ether(0x0800, shortf)) == DecodeStatus::fragment);
  CHECK_FALSE(dec.peeked_fragment().inner);
}

TEST_CASE("ERSPAN's truncated bit: the mirrored frame was cut, its IP lengths point past it") {
  Harness h(linktype::EN10MB);
  Packet p;
  Bytes frame = ether(0x0800, ipv4(ip4(10, 1, 0, 10), ip4(10, 2, 0, 20), 6, tcp(40000, 104, 7, 0, tcpflag::PSH, std::string(200, 'x'))));
  frame.resize(100);  // what the switch kept
  Bytes e2 = {0x10, 0x00, 0x04, 0x7B, 0x00, 0x00, 0x00, 0x05};  // version 1, T set, session 123
  REQUIRE(h.run(outer(47, gre(0x1000, 0x88BE, cat(e2, frame), 1)), p) == DecodeStatus::ok);
  CHECK(p.dport == 104);
  CHECK(h.counters.get("ipv4.truncated_payload") == 1);
  e2[2] = 0x00;  // the same cut without the bit: the header lies
  CHECK(h.run(outer(47, gre(0x1000, 0x88BE, cat(e2, frame), 1)), p) == DecodeStatus::malformed);
  CHECK(h.anomalies.back() == "ipv4.total_length_beyond_packet");
}

TEST_CASE("MPLS labels are popped down to the IP packet") {
  Harness h(linktype::EN10MB);
  Packet p;
  Bytes two = {0x00, 0x01, 0x20, 0x40, 0x00, 0x02, 0x01, 0x40};  // label 18, then 32 at the bottom of the stack
  REQUIRE(h.run(ether(0x8847, cat(two, inner_ip())), p) == DecodeStatus::ok);
  CHECK(p.dst.to_string() == "10.2.0.20");
  CHECK(p.dport == 104);
  CHECK(p.has_mac);  // the frame's own Ethernet addresses stay
  CHECK(h.counters.get("decode.mpls") == 1);
  // A pseudowire (control word 0, then Ethernet) is not opened.
  Bytes pw = {0x00, 0x01, 0x01, 0x40, 0, 0, 0, 0};
  CHECK(h.run(ether(0x8847, cat(pw, inner_frame())), p) == DecodeStatus::not_ip);
  Bytes endless(4 * 9, 0);
  CHECK(h.run(ether(0x8847, endless), p) == DecodeStatus::malformed);
  CHECK(h.anomalies.back() == "mpls.too_many_labels");
  CHECK(h.run(ether(0x8847, Bytes{0, 0}), p) == DecodeStatus::malformed);
  CHECK(h.anomalies.back() == "mpls.truncated");
}

TEST_CASE("Fragments are kept apart by VLAN: two VLANs may send the same identification") {
  Harness h(linktype::EN10MB);
  auto a = udp(1111, 2222, std::string(40, 'A')), b = udp(1111, 2222, std::string(40, 'B'));
  auto frag = [](const Bytes& whole, bool first, std::vector<uint16_t> vlans) {
    Bytes part = first ? Bytes(whole.begin(), whole.begin() + 24) : Bytes(whole.begin() + 24, whole.end());
    return ether(0x0800, ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 17, part, 77, first ? 0x2000 : 3), vlans);
  };
  Packet p;
  CHECK(h.run(frag(a, true, {10}), p) == DecodeStatus::fragment);
  CHECK(h.run(frag(b, true, {20}), p) == DecodeStatus::fragment);
  REQUIRE(h.run(frag(a, false, {10}), p) == DecodeStatus::ok);
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), p.payload_len) == std::string(40, 'A'));
  REQUIRE(h.run(frag(b, false, {20}), p) == DecodeStatus::ok);
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), p.payload_len) == std::string(40, 'B'));
  // QinQ: the inner tag tells them apart too.
  CHECK(h.run(frag(a, true, {100, 10}), p) == DecodeStatus::fragment);
  CHECK(h.run(frag(b, true, {100, 20}), p) == DecodeStatus::fragment);
  REQUIRE(h.run(frag(b, false, {100, 20}), p) == DecodeStatus::ok);
  CHECK(std::string(reinterpret_cast<const char*>(p.payload), p.payload_len) == std::string(40, 'B'));
  CHECK(h.anomalies.empty());
  CHECK(h.counters.get("ip.fragments.reassembled") == 3);
}

TEST_CASE("TCP and UDP headers cut by the snap length still give the flow; IPv6 extensions cut are no anomaly") {
  Harness h(linktype::EN10MB);
  static const uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const uint8_t b6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  Packet p;
  auto cut = [&](const Bytes& f, uint32_t snap) {
    h.frame = f;
    return h.dec.decode(h.frame.data(), snap, static_cast<uint32_t>(f.size()), Timestamp{1}, p);
  };
  // Snap length 68 over IPv6: 14 of the 20 TCP header bytes.
  auto seg = ether(0x86DD, ipv6(a6, b6, 6, tcp(40000, 104, 7, 9, tcpflag::ACK | tcpflag::PSH, std::string(100, 'D'))));
  REQUIRE(cut(seg, 68) == DecodeStatus::ok);
  CHECK(p.sport == 40000);
  CHECK(p.dport == 104);
  CHECK(p.seq == 7);
  CHECK(p.ack == 9);
  CHECK(p.tcp_flags == (tcpflag::ACK | tcpflag::PSH));
  CHECK(p.payload_len == 0);
  CHECK(h.counters.get("tcp.truncated_header") == 1);
  // Fewer than 14 bytes: not enough for the flow, counted, still no anomaly.
  CHECK(cut(seg, 14 + 40 + 10) == DecodeStatus::truncated);
  CHECK(h.counters.get("tcp.truncated_header") == 2);
  // UDP: the ports are enough.
  auto dg = ether(0x86DD, ipv6(a6, b6, 17, udp(5000, 6000, std::string(50, 'u'))));
  REQUIRE(cut(dg, 14 + 40 + 6) == DecodeStatus::ok);
  CHECK(p.sport == 5000);
  CHECK(p.dport == 6000);
  CHECK(p.payload_len == 0);
  CHECK(h.counters.get("udp.truncated_header") == 1);
  // A destination options header cut: nothing after it to decode, counted.
  Bytes opts = {6, 2};  // next header TCP, 24 bytes
  opts.resize(24, 0);
  auto ext = ether(0x86DD, ipv6(a6, b6, 60, cat(opts, tcp(40000, 104, 7, 9, tcpflag::ACK))));
  CHECK(cut(ext, 14 + 40 + 16) == DecodeStatus::truncated);
  CHECK(cut(ext, 14 + 40 + 4) == DecodeStatus::truncated);
  CHECK(h.counters.get("ipv6.truncated_extension_headers") == 2);
  CHECK(h.anomalies.empty());
  CHECK(h.counters.get("decode.malformed") == 0);
  // Captured whole, the same short headers are lies.
  CHECK(h.run(ether(0x86DD, ipv6(a6, b6, 6, Bytes(seg.begin() + 54, seg.begin() + 68))), p) == DecodeStatus::malformed);
  CHECK(h.run(ether(0x86DD, ipv6(a6, b6, 60, Bytes(opts.begin(), opts.begin() + 16))), p) == DecodeStatus::malformed);
  CHECK(h.anomalies == std::vector<std::string>{"tcp.truncated_header", "ipv6.bad_extension_length"});
}

TEST_CASE("Fragments that contradict the datagram's length drop it, as Linux does") {
  Harness h(linktype::RAW);
  auto whole = udp(1111, 2222, std::string(40, 'A'));  // 48 bytes
  auto frag = [&](uint16_t id, uint32_t from, uint32_t to, bool more) {
    return ipv4(ip4(10, 0, 0, 1), ip4(10, 0, 0, 2), 17, Bytes(whole.begin() + from, whole.begin() + to), id,
                static_cast<uint16_t>((more ? 0x2000 : 0) | from / 8));
  };
  Packet p;
  // The last fragment ends (at 32) before bytes already received (up to 48).
  CHECK(h.run(frag(1, 0, 48, true), p) == DecodeStatus::fragment);
  CHECK(h.run(frag(1, 24, 32, false), p) == DecodeStatus::fragment);
  CHECK(h.counters.get("ip.fragments.too_big") == 1);
  // The last fragment first (end 32), then one with more to follow beyond it.
  CHECK(h.run(frag(2, 16, 32, false), p) == DecodeStatus::fragment);
  CHECK(h.run(frag(2, 32, 48, true), p) == DecodeStatus::fragment);
  CHECK(h.run(frag(2, 0, 16, true), p) == DecodeStatus::fragment);
  CHECK(h.counters.get("ip.fragments.too_big") == 2);
  CHECK(h.counters.get("ip.fragments.reassembled") == 0);
  // A more-fragments fragment ending exactly where the last one ends is fine.
  CHECK(h.run(frag(3, 24, 48, false), p) == DecodeStatus::fragment);
  CHECK(h.run(frag(3, 16, 48, true), p) == DecodeStatus::fragment);
  REQUIRE(h.run(frag(3, 0, 16, true), p) == DecodeStatus::ok);
  CHECK(p.payload_len == 40);
}

TEST_CASE("IPv6 fragments: only the first fragment's Next Header counts (RFC 8200 4.5)") {
  Harness h(linktype::EN10MB);
  uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  auto u = udp(7777, 8888, std::string(64, 'B'));  // 72 bytes
  auto frag = [&](uint8_t next, uint16_t off, bool more, size_t from, size_t to) {
    Bytes f = {next, 0, static_cast<uint8_t>(off >> 8), static_cast<uint8_t>((off & 0xF8) | (more ? 1 : 0)), 0, 0, 0, 9};
    f.insert(f.end(), u.begin() + from, u.begin() + to);
    return ether(0x86DD, ipv6(a, b, 44, f));
  };
  Packet p;
  SECTION("the first fragment first") {
    CHECK(h.run(frag(17, 0, true, 0, 32), p) == DecodeStatus::fragment);
    REQUIRE(h.run(frag(6, 32, false, 32, 72), p) == DecodeStatus::ok);
  }
  SECTION("the first fragment last") {
    CHECK(h.run(frag(6, 32, false, 32, 72), p) == DecodeStatus::fragment);
    REQUIRE(h.run(frag(17, 0, true, 0, 32), p) == DecodeStatus::ok);
  }
  CHECK(p.proto == 17);
  CHECK(p.sport == 7777);
  CHECK(p.payload_len == 64);
  CHECK(h.counters.get("ip.fragments.reassembled") == 1);
}

TEST_CASE("A frame cut after a whole IP packet does not excuse TCP options or a UDP length beyond it") {
  // The IP packet was captured whole; only the frame's padding after it was cut by the snap
  // length. A TCP header or UDP length reaching past that packet lies, as in a whole frame.
  Harness h(linktype::EN10MB);
  Packet p;
  auto cut_padding = [&](Bytes f) {
    const uint32_t captured = static_cast<uint32_t>(f.size());
    h.frame = f;
    h.frame.resize(std::max<size_t>(f.size(), 60), 0);
    return h.dec.decode(h.frame.data(), captured, static_cast<uint32_t>(h.frame.size()) + 4, Timestamp{1}, p);
  };
  auto seg = tcp(40000, 104, 7, 9, tcpflag::ACK);
  seg[12] = 8 << 4;  // a 32-byte header in a 20-byte one
  CHECK(cut_padding(ether(0x0800, ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 6, seg))) == DecodeStatus::malformed);
  CHECK(h.counters.get("tcp.truncated_options") == 0);
  auto dg = udp(5000, 6000, "ab");
  dg[5] = 40;  // a UDP length of 40 in a 10-byte datagram
  CHECK(cut_padding(ether(0x0800, ipv4(ip4(1, 1, 1, 1), ip4(2, 2, 2, 2), 17, dg))) == DecodeStatus::malformed);
  CHECK(h.anomalies == std::vector<std::string>{"tcp.data_offset_beyond_packet", "udp.length_beyond_packet"});
}

TEST_CASE("a fragment taken late begins its datagram among the others by its time", "[fragments]") {
  // analyze --workers hands a worker fragments the reader held, after others of a later time:
  // their datagram times out when one table, which took them first, would have timed it out.
  Counters c;
  FragmentTable t(FragmentLimits{}, c);
  std::vector<uint8_t> out;
  bool conflict = false;
  const std::vector<uint8_t> header(20, 0x45), data(16, 0xAB);
  const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2}, d[4] = {10, 0, 0, 3};
  FragmentTable::Key later{IpAddr::v4(a), IpAddr::v4(b), 1, 17, {}};
  FragmentTable::Key earlier{IpAddr::v4(d), IpAddr::v4(b), 2, 17, {}};
  CHECK(t.add(later, Timestamp{14'000'000}, header, 0, true, data, out, conflict) == FragmentTable::Result::pending);
  CHECK(t.add(earlier, Timestamp{5'000'000}, header, 64, false, data, out, conflict, /*late=*/true) ==
        FragmentTable::Result::pending);
  t.expire(Timestamp{40'000'000});  // the earlier one is due, the later one not yet
  CHECK(c.get("ip.fragments.timeout") == 1);
  CHECK(t.pending() == 1);
  t.expire(Timestamp{44'000'000});
  CHECK(c.get("ip.fragments.timeout") == 2);
}
