#include <catch2/catch.hpp>

#include <string>

#include "dissectors/dhcp/dhcp_dissector.h"
#include "dissectors/dhcp/dhcpv6.h"
#include "dissectors/proprietary/test/harness.h"

using namespace medmon;
using medmon::testing::Harness;
using medmon::testing::bytes_of;

namespace {

std::string be16(unsigned v) { return {char(v >> 8), char(v & 0xff)}; }
std::string be32(uint32_t v) { return be16(v >> 16) + be16(v & 0xffff); }
std::string opt(unsigned code, std::string_view v) { return be16(code) + be16(unsigned(v.size())) + std::string(v); }
std::string ip6(std::string_view text) {
  IpAddr a;
  REQUIRE(IpAddr::parse(text, a));
  return std::string(reinterpret_cast<const char*>(a.b.data()), 16);
}
// A client or server message: type, 24-bit transaction id, options.
std::string msg(uint8_t type, std::string_view options, uint32_t xid = 0x6f37cb) {
  return std::string{char(type), char(xid >> 16), char(xid >> 8), char(xid)} + std::string(options);
}
std::string relay(uint8_t type, uint8_t hops, std::string_view link, std::string_view peer, std::string_view options) {
  return std::string{char(type), char(hops)} + ip6(link) + ip6(peer) + std::string(options);
}

const std::string kMac("\x00\x00\x5e\x00\x53\x01", 6);
// DUID-LLT, Ethernet, time 0x32a93ed1; DUID-LL; DUID-EN of enterprise 32473 (documentation)
const std::string kDuidLlt = be16(1) + be16(1) + be32(0x32a93ed1) + kMac;
const std::string kDuidLl = be16(3) + be16(1) + kMac;
const std::string kDuidEn = be16(2) + be32(32473) + "MEDMON";
const std::string kElapsed = opt(8, be16(0));

std::string fqdn(std::string_view flags_and_wire) { return opt(39, flags_and_wire); }
std::string ia_na(uint32_t iaid, uint32_t t1, uint32_t t2, std::string_view inner) {
  return opt(3, be32(iaid) + be32(t1) + be32(t2) + std::string(inner));
}
std::string ia_addr(std::string_view a, uint32_t pref, uint32_t valid, std::string_view inner = {}) {
  return opt(5, ip6(a) + be32(pref) + be32(valid) + std::string(inner));
}

std::string solicit() {
  return msg(1, opt(1, kDuidLlt) + opt(6, be16(23) + be16(24) + be16(39)) + kElapsed +
                    opt(15, be16(8) + "imaging1") + opt(16, be32(32473) + be16(9) + "ACME-CT-7") +
                    fqdn(std::string("\x00\x08" "ct-room3\x05ward3\x08hospital\x07" "example\x00", 34)) +
                    ia_na(0x5e005301, 3600, 5400, ""));
}
std::string reply() {
  return msg(7, opt(1, kDuidLlt) + opt(2, kDuidEn) + ia_na(0x5e005301, 1800, 3150, ia_addr("fd77:3::101", 3600, 3600)) +
                    opt(13, be16(0) + "success") + opt(23, ip6("fd77:3::53")) +
                    opt(24, std::string("\x05ward3\x08hospital\x07" "example\x00", 24)) +
                    fqdn(std::string("\x03\x08" "ct-room3", 10)));
}

dhcp::Message6 parsed(const std::string& s) {
  dhcp::Message6 m;
  REQUIRE(dhcp::parse6(bytes_of(s), m));
  return m;
}

nlohmann::json one_event(Harness& h) {
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 1);
  return ev[0]["dhcp"];
}

}  // namespace

TEST_CASE("dhcpv6: a SOLICIT gives the client's DUID and MAC, FQDN, classes and the options it asks for") {
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, solicit());
  auto d = one_event(h);
  CHECK(d["version"] == 6);
  CHECK(d["direction"] == "to_server");
  CHECK(d["op"] == "request");
  CHECK(d["message_type"] == "SOLICIT");
  CHECK(d["xid"] == "0x6f37cb");
  CHECK(d["client_mac"] == "00:00:5e:00:53:01");
  CHECK(d["client_duid"] == "00:01:00:01:32:a9:3e:d1:00:00:5e:00:53:01");
  CHECK(d["client_duid_type"] == "LLT");
  CHECK(d["param_list"] == nlohmann::json::array({23, 24, 39}));
  CHECK(d["elapsed_ms"] == 0);
  CHECK(d["client_fqdn"] == "ct-room3.ward3.hospital.example");
  CHECK(d["vendor_enterprise"] == 32473);
  CHECK(d["vendor_class"] == "ACME-CT-7");
  CHECK(d["user_class"] == nlohmann::json::array({"imaging1"}));
  REQUIRE(d["ia"].size() == 1);
  CHECK(d["ia"][0] == nlohmann::json::parse(R"({"type":"na","iaid":"0x5e005301","t1":3600,"t2":5400})"));
  CHECK(!d.contains("assigned_ip"));
  CHECK(!d.contains("server_duid"));
  CHECK(!d.contains("client_ip"));  // no addresses in the harness's flow
  CHECK(h.anomalies() == 0);
  CHECK(h.facts.attr("dhcp.version"));
}

TEST_CASE("dhcpv6: a REPLY gives the address, its lifetimes, the server's DUID, status, DNS and search list") {
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_client, reply());
  auto d = one_event(h);
  CHECK(d["op"] == "reply");
  CHECK(d["message_type"] == "REPLY");
  CHECK(d["client_mac"] == "00:00:5e:00:53:01");  // the client's DUID, echoed
  CHECK(d["assigned_ip"] == "fd77:3::101");
  CHECK(d["server_duid"] == "00:02:00:00:7e:d9:4d:45:44:4d:4f:4e");
  CHECK(d["server_duid_type"] == "EN");
  CHECK(d["ia"][0]["addresses"] ==
        nlohmann::json::parse(R"([{"address":"fd77:3::101","preferred_lifetime":3600,"valid_lifetime":3600}])"));
  CHECK(d["status"] == "Success");
  CHECK(d["status_message"] == "success");
  CHECK(d["dns_servers"] == nlohmann::json::array({"fd77:3::53"}));
  CHECK(d["domain_search"] == nlohmann::json::array({"ward3.hospital.example"}));
  CHECK(d["client_fqdn"] == "ct-room3");  // a partial name: no final zero
  CHECK(h.anomalies() == 0);
}

TEST_CASE("dhcpv6: every vendor-class-data item of the vendor class (16) is read") {
  Harness h(kDhcpInfo);
  // Two items, then a second instance for another enterprise (one is allowed per enterprise)
  h.datagram(Dir::to_server, msg(1, opt(1, kDuidLl) + kElapsed +
                                        opt(16, be32(32473) + be16(9) + "ACME-CT-7" + be16(6) + "fw-2.1" +
                                                    be16(2) + std::string("\x00\x01", 2)) +
                                        opt(16, be32(4491) + be16(9) + "docsis3.0")));
  auto d = one_event(h);
  CHECK(d["vendor_enterprise"] == 32473);
  CHECK(d["vendor_class"] == "ACME-CT-7");
  CHECK(d["vendor_class_data"] == nlohmann::json::array({"ACME-CT-7", "fw-2.1", "00:01"}));
  // Every instance, each with its enterprise.
  CHECK(d["vendor_classes"] == nlohmann::json::parse(R"([{"enterprise":32473,"data":["ACME-CT-7","fw-2.1","00:01"]},
                                                         {"enterprise":4491,"data":["docsis3.0"]}])"));
  CHECK(h.anomalies() == 0);
  // At most 8 instances are kept.
  std::string many;
  for (uint32_t e = 1; e <= 20; ++e) many += opt(16, be32(e) + be16(1) + "x");
  dhcp::Message6 m;
  std::string s = msg(1, opt(1, kDuidLl) + kElapsed + many);
  REQUIRE(dhcp::parse6(bytes_of(s), m));
  CHECK(m.vendor_classes.size() == dhcp::kMaxList6);
  CHECK(m.vendor_enterprise == 1);
}

TEST_CASE("dhcpv6: the items of every user class (15) are read, in order") {
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, msg(1, opt(1, kDuidLl) + kElapsed + opt(15, be16(8) + "imaging1") +
                                        opt(15, be16(5) + "wardA" + be16(3) + "ct7")));
  auto d = one_event(h);
  CHECK(d["user_class"] == nlohmann::json::array({"imaging1", "wardA", "ct7"}));
  CHECK(h.anomalies() == 0);
  // At most 8 items in all.
  std::string many;
  for (int i = 0; i < 20; ++i) many += opt(15, be16(1) + "x");
  dhcp::Message6 m;
  REQUIRE(dhcp::parse6(bytes_of(msg(1, opt(1, kDuidLl) + kElapsed + many)), m));
  CHECK(m.user_class.size() == dhcp::kMaxList6);
}

TEST_CASE("dhcpv6: a client's message from another MAC than its DUID's names the frame's MAC") {
  Harness h(kDhcpInfo);
  const std::array<uint8_t, 6> own{0, 0, 0x5e, 0, 0x53, 1}, other{2, 0, 0, 0, 0, 0xee};
  h.ctx.set_frame_src_mac(&own);
  h.datagram(Dir::to_server, solicit());
  h.ctx.set_frame_src_mac(&other);
  h.datagram(Dir::to_server, solicit());
  h.datagram(Dir::to_client, reply());  // the server's frame: never checked
  h.datagram(Dir::to_server, relay(12, 0, "fd77:5::1", "fe80::200:5eff:fe00:5301", opt(9, solicit())));  // a relay's
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 4);
  CHECK(!ev[0]["dhcp"].contains("sender_mac"));
  CHECK(ev[1]["dhcp"]["sender_mac"] == "02:00:00:00:00:ee");
  CHECK(ev[1]["dhcp"]["client_mac"] == "00:00:5e:00:53:01");
  CHECK(!ev[2]["dhcp"].contains("sender_mac"));
  CHECK(!ev[3]["dhcp"].contains("sender_mac"));
  CHECK(h.anomalies() == 0);  // a DUID may have been made on another interface
}

TEST_CASE("dhcpv6: every client and server message type is named, sent by its side, and probed") {
  struct T { uint8_t type; const char* name; bool client; };
  const T types[] = {{1, "SOLICIT", true},   {2, "ADVERTISE", false}, {3, "REQUEST", true},
                     {4, "CONFIRM", true},   {5, "RENEW", true},      {6, "REBIND", true},
                     {7, "REPLY", false},    {8, "RELEASE", true},    {9, "DECLINE", true},
                     {10, "RECONFIGURE", false}, {11, "INFORMATION-REQUEST", true}};
  for (auto t : types) {
    INFO(t.name);
    // What RFC 8415 requires of each side: a client's elapsed time, a server's id.
    std::string m = msg(t.type, opt(1, kDuidLl) + (t.client ? kElapsed : opt(2, kDuidEn)) +
                                    (t.type == 10 ? opt(19, "\x05") : std::string()));
    CHECK(dhcp::probe(bytes_of(m), Dir::to_server) == Probe::yes);
    Harness h(kDhcpInfo);
    h.datagram(t.client ? Dir::to_server : Dir::to_client, m);
    auto d = one_event(h);
    CHECK(d["message_type"] == t.name);
    CHECK(d["op"] == (t.client ? "request" : "reply"));
    CHECK(d["client_duid_type"] == "LL");
    CHECK(d["client_mac"] == "00:00:5e:00:53:01");
    CHECK(h.anomalies() == 0);
  }
  CHECK(dhcp::type_name6(12) == std::string("RELAY-FORW"));
  CHECK(dhcp::type_name6(21) == std::string("DHCPV4-RESPONSE"));
  CHECK(dhcp::type_name6(200) == nullptr);
}

TEST_CASE("dhcpv6: prefixes (IA_PD), temporary addresses (IA_TA), and statuses inside them") {
  std::string pd = opt(25, be32(7) + be32(900) + be32(1400) +
                               opt(26, be32(1800) + be32(3600) + std::string(1, char(56)) + ip6("2001:db8:7700::")));
  std::string ta = opt(4, be32(9) + ia_addr("fd77:3::9:1", 0, 0, opt(13, be16(2))));
  std::string na = ia_na(1, 0, 0, opt(13, be16(2) + "no addresses"));
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_client, msg(7, opt(2, kDuidEn) + pd + ta + na + opt(14, "") + opt(7, "\xff")));
  auto d = one_event(h);
  REQUIRE(d["ia"].size() == 3);
  CHECK(d["ia"][0] == nlohmann::json::parse(
                          R"({"type":"pd","iaid":"0x00000007","t1":900,"t2":1400,
                              "prefixes":[{"prefix":"2001:db8:7700::/56","preferred_lifetime":1800,"valid_lifetime":3600}]})"));
  CHECK(d["ia"][1] == nlohmann::json::parse(
                          R"({"type":"ta","iaid":"0x00000009",
                              "addresses":[{"address":"fd77:3::9:1","preferred_lifetime":0,"valid_lifetime":0,"status":"NoAddrsAvail"}]})"));
  CHECK(d["ia"][2]["status"] == "NoAddrsAvail");
  CHECK(d["ia"][2]["status_message"] == "no addresses");
  CHECK(d["rapid_commit"] == true);
  CHECK(d["preference"] == 255);
  CHECK(!d.contains("assigned_ip"));  // an IA_TA address with no lifetime gives nothing
  CHECK(h.anomalies() == 0);
}

TEST_CASE("dhcpv6: relay messages carry the client's message; the event is the inner message's") {
  std::string inner = solicit();
  std::string first = relay(12, 0, "fd77:5::1", "fe80::200:5eff:fe00:5301",
                            opt(18, "Gi1/0/12") + opt(37, be32(32473) + std::string("\x01\x02", 2)) + opt(9, inner));
  std::string second = relay(12, 1, "::", "fd77:5::1", opt(9, first));
  CHECK(dhcp::probe(bytes_of(second), Dir::to_server) == Probe::yes);
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, second);
  auto d = one_event(h);
  CHECK(d["message_type"] == "SOLICIT");
  CHECK(d["client_mac"] == "00:00:5e:00:53:01");
  CHECK(d["client_ip"] == "fe80::200:5eff:fe00:5301");  // the innermost relay's peer
  CHECK(d["relays"] == nlohmann::json::parse(
                           R"([{"message_type":"RELAY-FORW","hop_count":1,"peer_address":"fd77:5::1"},
                               {"message_type":"RELAY-FORW","hop_count":0,"link_address":"fd77:5::1",
                                "peer_address":"fe80::200:5eff:fe00:5301","interface_id":"Gi1/0/12","remote_id":"01:02"}])"));
  CHECK(h.anomalies() == 0);

  SECTION("a RELAY-REPL with the server's REPLY") {
    Harness r(kDhcpInfo);
    r.datagram(Dir::to_client, relay(13, 0, "fd77:5::1", "fe80::200:5eff:fe00:5301", opt(9, reply())));
    auto e = one_event(r);
    CHECK(e["message_type"] == "REPLY");
    CHECK(e["op"] == "reply");
    CHECK(e["assigned_ip"] == "fd77:3::101");
  }
  SECTION("nesting deeper than the hop limit stops there") {
    std::string m = inner;
    for (int i = 0; i < 12; ++i) m = relay(12, uint8_t(i), "::", "fd77:5::1", opt(9, m));
    CHECK(dhcp::probe(bytes_of(m), Dir::to_server) == Probe::no);
    Harness r(kDhcpInfo);
    r.ep.src.family = 6;  // an IPv6 flow: DHCPv6 whatever the probe thought
    r.datagram(Dir::to_server, m);
    auto e = one_event(r);
    CHECK(e["message_type"] == "RELAY-FORW");
    CHECK(e["relays"].size() == dhcp::kMaxRelayDepth);
    CHECK(r.anomalies("relay_too_deep") == 1);
  }
  SECTION("a relay without a message, and one whose message is cut short") {
    Harness r(kDhcpInfo);
    r.ep.src.family = 6;
    r.datagram(Dir::to_server, relay(12, 0, "fd77:5::1", "fe80::1", opt(18, "port7")));
    r.datagram(Dir::to_server, relay(12, 0, "fd77:5::1", "fe80::1", opt(9, "\x01\x02")));
    r.datagram(Dir::to_server, relay(12, 0, "fd77:5::1", "fe80::1", "").substr(0, 20));
    CHECK(r.events("dhcp").size() == 2);
    CHECK(r.anomalies("missing_relay_message") == 1);
    CHECK(r.anomalies("bad_relay_message") == 1);
    CHECK(r.anomalies("truncated") == 1);
  }
}

TEST_CASE("dhcpv6: DUID types; only an Ethernet link-layer DUID gives a MAC") {
  std::array<uint8_t, 6> mac{};
  CHECK(dhcp::duid_mac(bytes_of(kDuidLlt), mac));
  CHECK(mac == std::array<uint8_t, 6>{0, 0, 0x5e, 0, 0x53, 1});
  CHECK(dhcp::duid_mac(bytes_of(kDuidLl), mac));
  CHECK_FALSE(dhcp::duid_mac(bytes_of(kDuidEn), mac));
  CHECK_FALSE(dhcp::duid_mac(bytes_of(be16(3) + be16(6) + kMac), mac));                  // IEEE 802 (token ring)
  CHECK_FALSE(dhcp::duid_mac(bytes_of(be16(3) + be16(1) + kMac + "\x01"), mac));         // 7 bytes
  CHECK_FALSE(dhcp::duid_mac(bytes_of(be16(1) + be16(1) + be32(1) + kMac.substr(0, 5)), mac));
  CHECK_FALSE(dhcp::duid_mac(bytes_of(be16(4) + std::string(16, '\x42')), mac));
  CHECK(dhcp::duid_type_name(bytes_of(be16(4) + std::string(16, '\x42'))) == std::string("UUID"));
  CHECK(dhcp::duid_type_name(bytes_of(kDuidEn)) == std::string("EN"));
  CHECK(dhcp::duid_type_name(bytes_of(std::string("\x00", 1))) == nullptr);

  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, msg(11, opt(1, be16(77) + "x") + kElapsed));
  auto d = one_event(h);
  CHECK(d["client_duid_type"] == "77");
  CHECK(!d.contains("client_mac"));
}

TEST_CASE("dhcpv6: the client's address is the sender of its message, the receiver of the server's") {
  Harness h(kDhcpInfo);
  REQUIRE(IpAddr::parse("fe80::200:5eff:fe00:5301", h.ep.src));
  REQUIRE(IpAddr::parse("fe80::200:5eff:fe00:53fe", h.ep.dst));
  h.ep.src_port = 546;
  h.ep.dst_port = 547;
  h.datagram(Dir::to_server, solicit());
  h.datagram(Dir::to_client, reply());
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["dhcp"]["client_ip"] == "fe80::200:5eff:fe00:5301");
  CHECK(ev[1]["dhcp"]["client_ip"] == "fe80::200:5eff:fe00:5301");
  Harness m(kDhcpInfo);  // to the multicast group: the client's address is still its source
  REQUIRE(IpAddr::parse("fe80::200:5eff:fe00:5301", m.ep.src));
  REQUIRE(IpAddr::parse("ff02::1:2", m.ep.dst));
  m.datagram(Dir::to_server, solicit());
  CHECK(one_event(m)["client_ip"] == "fe80::200:5eff:fe00:5301");
}

TEST_CASE("dhcpv6: damaged options give anomalies, never over-reads, and what was read") {
  SECTION("an option running past the end") {
    std::string s = solicit() + be16(39) + be16(40) + "short";
    Harness h(kDhcpInfo);
    h.ep.src.family = 6;
    h.datagram(Dir::to_server, s);
    auto d = one_event(h);
    CHECK(d["client_fqdn"] == "ct-room3.ward3.hospital.example");
    CHECK(h.anomalies("truncated_option") == 1);
  }
  SECTION("options of the wrong length") {
    Harness h(kDhcpInfo);
    h.ep.src.family = 6;
    h.datagram(Dir::to_server, msg(1, opt(8, "\x01") + opt(6, std::string("\x00\x17\x00", 3)) + opt(3, "abc") + opt(5, "x") +
                                          opt(23, std::string(17, '\x01')) + opt(1, std::string(1, '\0')) + opt(16, "ab") +
                                          opt(14, "x") + opt(13, "") + ia_na(1, 2, 3, opt(5, "short"))));
    auto d = one_event(h);
    CHECK(d["param_list"] == nlohmann::json::array({23}));
    CHECK(d["dns_servers"] == nlohmann::json::array({"101:101:101:101:101:101:101:101"}));
    CHECK(!d.contains("elapsed_ms"));
    CHECK(h.anomalies("bad_option_length") == 9);
  }
  SECTION("every length of a message parses within its bytes") {
    std::string s = relay(12, 0, "fd77:5::1", "fe80::1", opt(18, "p1") + opt(9, reply()));
    for (size_t n = 0; n <= s.size(); ++n) {
      std::string cut = s.substr(0, n);  // its own allocation: ASan sees a read past it
      dhcp::Message6 m;
      bool ok = dhcp::parse6(bytes_of(cut), m);
      CHECK(ok == (n >= dhcp::kMinRelay6));
      CHECK(m.problems.size() <= 16);
      (void)dhcp::looks_like6(bytes_of(cut));
      Harness h(kDhcpInfo);
      h.ep.src.family = 6;
      h.datagram(Dir::to_client, cut);
      CHECK(h.events("dhcp").size() + h.anomalies("truncated") == 1);
      // Cut anywhere but between options, a message is reported with an anomaly.
      if (ok && n < s.size()) CHECK(h.anomalies() >= 1);
    }
    std::string c = solicit();
    for (size_t n = 0; n <= c.size(); ++n) {
      std::string cut = c.substr(0, n);
      dhcp::Message6 m;
      CHECK(dhcp::parse6(bytes_of(cut), m) == (n >= dhcp::kMinMessage6));
    }
  }
  SECTION("a datagram that is no DHCPv6 in an IPv6 flow") {
    Harness h(kDhcpInfo);
    h.ep.src.family = 6;
    h.datagram(Dir::to_server, std::string("\x00\x01\x02\x03", 4));
    h.datagram(Dir::to_server, "\x01\x02");
    CHECK(h.events("dhcp").empty());
    CHECK(h.anomalies("not_dhcp") == 1);
    CHECK(h.anomalies("truncated") == 1);
  }
  SECTION("the lists are bounded") {
    std::string ias, dns;
    for (int i = 0; i < 20; ++i) ias += ia_na(uint32_t(i), 0, 0, ia_addr("fd77::1", 1, 1) + ia_addr("fd77::2", 1, 1));
    for (int i = 0; i < 20; ++i) dns += ip6("fd77::53");
    auto m = parsed(msg(7, opt(2, kDuidEn) + ias + opt(23, dns) + opt(6, std::string(600, '\x01'))));
    CHECK(m.ia.size() == dhcp::kMaxIas);
    CHECK(m.dns_servers.size() == dhcp::kMaxList6);
    CHECK(m.oro.size() == dhcp::kMaxOro);
    CHECK(m.problems.empty());
  }
}

TEST_CASE("dhcpv6: the probe wants a whole message with what its sender must send") {
  CHECK(dhcp::probe(bytes_of(solicit()), Dir::to_server) == Probe::yes);
  CHECK(dhcp::probe(bytes_of(reply()), Dir::to_client) == Probe::yes);
  // A client's message without elapsed time, a server's without its id, options that do not
  // fill the datagram, an unknown type, an option 0.
  CHECK(dhcp::probe(bytes_of(msg(1, opt(1, kDuidLl))), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(msg(7, opt(1, kDuidLl) + kElapsed)), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(solicit() + std::string(1, '\0')), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(solicit().substr(0, 30)), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(msg(14, kElapsed)), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(msg(1, kElapsed + opt(0, ""))), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(std::string(512, 'A')), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(relay(12, 0, "::", "fe80::1", opt(18, "x"))), Dir::to_server) == Probe::no);
  // The first 512 bytes of a longer message: the option that runs past them may be cut.
  std::string longer = msg(1, kElapsed + opt(16, be32(1) + be16(600) + std::string(600, 'v')));
  CHECK(dhcp::probe(bytes_of(longer.substr(0, 512)), Dir::to_server) == Probe::yes);
  CHECK(dhcp::probe(bytes_of(longer.substr(0, 511)), Dir::to_server) == Probe::no);
}

TEST_CASE("dhcpv6: a DHCPv4 message keeps its own reading") {
  // A BOOTP request whose first byte is a SOLICIT's: DHCPv4 is read first.
  std::string v4(236, '\0');
  v4[0] = 1;
  v4[2] = 6;
  v4 += std::string("\x63\x82\x53\x63\x35\x01\x01\xff", 8);
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, v4);
  auto d = one_event(h);
  CHECK(!d.contains("version"));
  CHECK(d["message_type"] == "DISCOVER");
  CHECK(!h.facts.attr("dhcp.version"));
}

TEST_CASE("dhcpv6: an option allowed once per message keeps its first instance; a repeat is an anomaly") {
  // RFC 8415 21 (and Appendix B): client and server id, ORO, preference, elapsed time, server
  // unicast, status code, rapid commit may appear once; RFC 4704's FQDN too. A second instance
  // names nothing: a client cannot overwrite what the first said.
  const std::string other_llt = be16(1) + be16(1) + be32(0x32a93ed1) + std::string("\x00\x00\x5e\x00\x53\x99", 6);
  Harness h(kDhcpInfo);
  h.ep.src.family = 6;
  h.datagram(Dir::to_client,
             msg(7, opt(1, kDuidLlt) + opt(2, kDuidEn) + opt(7, "\x05") + opt(13, be16(0) + "first") +
                        fqdn(std::string("\x00\x08" "ct-room3", 10)) + opt(1, other_llt) + opt(2, kDuidLl) +
                        opt(7, "\xff") + opt(13, be16(2) + "second") + opt(12, ip6("fd77::1")) +
                        opt(12, ip6("fd77::2")) + fqdn(std::string("\x00\x07" "laptop9", 9))));
  auto d = one_event(h);
  CHECK(d["client_mac"] == "00:00:5e:00:53:01");
  CHECK(d["server_duid_type"] == "EN");
  CHECK(d["preference"] == 5);
  CHECK(d["status"] == "Success");
  CHECK(d["status_message"] == "first");
  CHECK(d["unicast"] == "fd77::1");
  CHECK(d["client_fqdn"] == "ct-room3");
  CHECK(h.anomalies("repeated_option") == 6);

  auto m = parsed(msg(1, opt(1, kDuidLl) + kElapsed + opt(8, be16(700)) + opt(6, be16(23) + be16(24)) +
                             opt(6, be16(39)) + opt(14, "") + opt(14, "")));
  CHECK(m.elapsed == 0);
  CHECK(m.oro == std::vector<uint16_t>{23, 24});
  CHECK(m.rapid_commit);
  REQUIRE(m.problems.size() == 3);
  for (const char* p : m.problems) CHECK(std::string(p) == "repeated_option");
  // A second relay message (9) or interface id (18) in one relay is a repeat as well.
  auto r = parsed(relay(12, 0, "fd77:5::1", "fe80::1",
                        opt(18, "p1") + opt(18, "p2") + opt(9, solicit()) + opt(9, reply())));
  CHECK(r.type == 1);
  REQUIRE(r.relays.size() == 1);
  CHECK(r.relays[0].interface_id == "p1");
  CHECK(r.problems.size() == 2);
  // Options that may come more than once say nothing of the kind.
  CHECK(parsed(msg(1, opt(1, kDuidLl) + kElapsed + ia_na(1, 0, 0, "") + ia_na(2, 0, 0, "") +
                          opt(16, be32(1) + be16(1) + "a") + opt(16, be32(2) + be16(1) + "b")))
            .problems.empty());
}
