#include <catch2/catch.hpp>

#include <string>

#include "dissectors/dhcp/dhcp_dissector.h"
#include "dissectors/proprietary/test/harness.h"

using namespace medmon;
using medmon::testing::Harness;
using medmon::testing::bytes_of;

namespace {

// A DHCP message: fixed header, cookie, then the options as given (raw TLV bytes), then END.
struct Builder {
  uint8_t op = 1;
  uint32_t xid = 0x3903F326;
  std::string ciaddr = std::string(4, '\0'), yiaddr = std::string(4, '\0');
  std::string mac = std::string("\x02\x00\x5e\x10\x00\x07", 6);
  std::string sname, file;
  std::string options;
  bool end = true;

  Builder& opt(uint8_t code, std::string_view v) {
    options.push_back(static_cast<char>(code));
    options.push_back(static_cast<char>(v.size()));
    options.append(v);
    return *this;
  }
  std::string bytes() const {
    std::string m(236, '\0');
    m[0] = static_cast<char>(op);
    m[1] = 1;
    m[2] = static_cast<char>(mac.size());
    for (int i = 0; i < 4; ++i) m[4 + i] = static_cast<char>(xid >> (24 - 8 * i));
    m.replace(12, 4, ciaddr);
    m.replace(16, 4, yiaddr);
    m.replace(28, mac.size(), mac);
    m.replace(44, sname.size(), sname);
    m.replace(108, file.size(), file);
    m += std::string("\x63\x82\x53\x63", 4) + options;
    if (end) m.push_back('\xff');
    return m;
  }
};

std::string ip(uint8_t a, uint8_t b, uint8_t c, uint8_t d) { return std::string{char(a), char(b), char(c), char(d)}; }

Builder request() {
  Builder b;
  b.opt(53, "\x03").opt(61, std::string("\x01\x02\x00\x5e\x10\x00\x07", 7)).opt(50, ip(10, 20, 30, 40))
      .opt(12, "ct-room3").opt(60, "ACME-CT-7").opt(55, std::string("\x01\x1c\x02\x03\x0f\x06\x0c", 7));
  return b;
}

dhcp::Message parsed(const std::string& s) {
  dhcp::Message m;
  REQUIRE(dhcp::parse(bytes_of(s), m));
  return m;
}

}  // namespace

TEST_CASE("dhcp: a client's request gives its name, vendor class and the options it asks for") {
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, request().bytes());
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 1);
  auto& d = ev[0]["dhcp"];
  CHECK(d["op"] == "request");
  CHECK(d["message_type"] == "REQUEST");
  CHECK(d["xid"] == "0x3903f326");
  CHECK(d["client_mac"] == "02:00:5e:10:00:07");
  CHECK(d["hostname"] == "ct-room3");
  CHECK(d["vendor_class"] == "ACME-CT-7");
  CHECK(d["requested_ip"] == "10.20.30.40");
  CHECK(d["client_id"] == "01:02:00:5e:10:00:07");
  CHECK(d["param_list"] == nlohmann::json::array({1, 28, 2, 3, 15, 6, 12}));
  CHECK(!d.contains("client_ip"));  // 0.0.0.0 is no address
  CHECK(!d.contains("assigned_ip"));
  CHECK(h.anomalies() == 0);
}

TEST_CASE("dhcp: a server's ACK gives the address, lease, server id, routers and DNS servers") {
  Builder b;
  b.op = 2;
  b.yiaddr = ip(10, 20, 30, 40);
  b.opt(53, "\x05").opt(54, ip(10, 20, 30, 1)).opt(51, std::string("\x00\x00\x0e\x10", 4))
      .opt(3, ip(10, 20, 30, 1)).opt(6, ip(10, 20, 30, 2) + ip(10, 20, 30, 3)).opt(15, "radiology.example")
      .opt(82, std::string("\x01\x08Gi1/0/12\x02\x03\x00\x01\xff", 15));
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_client, b.bytes());
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 1);
  auto& d = ev[0]["dhcp"];
  CHECK(d["op"] == "reply");
  CHECK(d["message_type"] == "ACK");
  CHECK(d["assigned_ip"] == "10.20.30.40");
  CHECK(d["server_id"] == "10.20.30.1");
  CHECK(d["lease_time"] == 3600);
  CHECK(d["routers"] == nlohmann::json::array({"10.20.30.1"}));
  CHECK(d["dns_servers"] == nlohmann::json::array({"10.20.30.2", "10.20.30.3"}));
  CHECK(d["domain"] == "radiology.example");
  CHECK(d["relay_agent"]["circuit_id"] == "Gi1/0/12");
  CHECK(d["relay_agent"]["remote_id"] == "00:01:ff");
}

TEST_CASE("dhcp: repeated options are joined (RFC 3396) and overloaded fields are read") {
  Builder b;
  b.opt(53, "\x01").opt(12, "infusion-").opt(12, "pump-12");
  CHECK(parsed(b.bytes()).hostname == "infusion-pump-12");

  Builder o;  // option 52 = 3: file, then sname, hold more options
  o.opt(53, "\x08").opt(52, "\x03");
  o.file = std::string("\x3c\x05PUMPC", 7) + "\xff";
  o.sname = std::string("\x0c\x04gw-1", 6) + "\xff";
  auto m = parsed(o.bytes());
  CHECK(m.type == 8);
  CHECK(m.vendor_class == "PUMPC");
  CHECK(m.hostname == "gw-1");
  CHECK(m.problems.empty());
}

TEST_CASE("dhcp: every user class item (77, RFC 3004) is read; a plain text is one item") {
  Harness h(kDhcpInfo);
  Builder b;
  b.opt(53, "\x01").opt(77, std::string("\x07imaging\x05ward3\x02\x01\xff", 17));
  h.datagram(Dir::to_server, b.bytes());
  Builder p;  // iPXE and Windows send one text without item lengths
  p.opt(53, "\x01").opt(77, "iPXE");
  h.datagram(Dir::to_server, p.bytes());
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["dhcp"]["user_class"] == nlohmann::json::array({"imaging", "ward3", "01:ff"}));
  CHECK(ev[1]["dhcp"]["user_class"] == nlohmann::json::array({"iPXE"}));
  CHECK(h.anomalies() == 0);
}

TEST_CASE("dhcp: a client's unrelayed message from another MAC than its chaddr names the frame's MAC") {
  Harness h(kDhcpInfo);
  const std::array<uint8_t, 6> own{0x02, 0x00, 0x5e, 0x10, 0x00, 0x07}, other{0x02, 0x00, 0x00, 0x00, 0x00, 0xee};
  h.ctx.set_frame_src_mac(&own);
  h.datagram(Dir::to_server, request().bytes());
  h.ctx.set_frame_src_mac(&other);
  h.datagram(Dir::to_server, request().bytes());
  Builder relayed = request();  // a relay's frame: giaddr set, its own MAC
  std::string r = relayed.bytes();
  r.replace(24, 4, ip(10, 9, 0, 1));
  h.datagram(Dir::to_server, r);
  Builder reply = request();  // a server's: chaddr is the client's
  reply.op = 2;
  h.datagram(Dir::to_client, reply.bytes());
  h.ctx.set_frame_src_mac(nullptr);  // no Ethernet header
  h.datagram(Dir::to_server, request().bytes());
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 5);
  for (auto& e : ev) CHECK(e["dhcp"]["client_mac"] == "02:00:5e:10:00:07");
  CHECK(!ev[0]["dhcp"].contains("sender_mac"));
  CHECK(ev[1]["dhcp"]["sender_mac"] == "02:00:00:00:00:ee");
  CHECK(!ev[2]["dhcp"].contains("sender_mac"));
  CHECK(!ev[3]["dhcp"].contains("sender_mac"));
  CHECK(!ev[4]["dhcp"].contains("sender_mac"));
  CHECK(h.anomalies("chaddr_mismatch") == 1);
  CHECK(h.anomalies() == 1);
}

TEST_CASE("dhcp: the client FQDN in DNS wire format is read as dotted text") {
  Builder b;
  b.opt(53, "\x03").opt(81, std::string("\x05\x00\x00\x07", 4) + "ct-room" + std::string("\x0bhospital-ex\x00", 13));
  CHECK(parsed(b.bytes()).fqdn == "ct-room.hospital-ex");
  Builder a;  // ASCII form (flag E clear), with a NUL some clients count in the length
  a.opt(53, "\x03").opt(81, std::string("\x01\x00\x00pump.example\x00", 16));
  CHECK(parsed(a.bytes()).fqdn == "pump.example");
}

TEST_CASE("dhcp: damaged messages give anomalies, never over-reads, and what was read") {
  SECTION("an option running past the end") {
    std::string s = request().bytes();
    s.pop_back();                          // END
    s += std::string("\x0c\x40short", 7);  // says 64 bytes, has 5
    Harness h(kDhcpInfo);
    h.datagram(Dir::to_server, s);
    REQUIRE(h.events("dhcp").size() == 1);
    CHECK(h.events("dhcp")[0]["dhcp"]["hostname"] == "ct-room3");
    CHECK(h.anomalies("truncated_option") == 1);
  }
  SECTION("no end option") {
    Builder b = request();
    b.end = false;
    Harness h(kDhcpInfo);
    h.datagram(Dir::to_server, b.bytes());
    CHECK(h.anomalies("missing_end_option") == 1);
  }
  SECTION("a datagram that is no DHCP in a claimed flow, and one cut short") {
    Harness h(kDhcpInfo);
    std::string junk = request().bytes();
    junk[0] = 3;  // no op of BOOTP's
    h.datagram(Dir::to_server, junk);
    h.datagram(Dir::to_server, request().bytes().substr(0, 100));
    CHECK(h.events("dhcp").empty());
    CHECK(h.anomalies("not_dhcp") == 1);
    CHECK(h.anomalies("truncated") == 1);
  }
  SECTION("a bad overload value and a message type of two bytes") {
    Builder b;
    b.opt(53, "\x01\x02").opt(52, "\x07");
    auto m = parsed(b.bytes());
    CHECK(m.type == 0);
    CHECK(m.problems.size() == 2);
  }
  SECTION("every length of a message parses within its bytes") {
    std::string s = request().bytes();
    for (size_t n = 0; n <= s.size(); ++n) {
      dhcp::Message m;
      std::string cut = s.substr(0, n);  // its own allocation: ASan sees a read past it
      bool ok = dhcp::parse(bytes_of(cut), m);
      CHECK(ok == (n >= dhcp::kMinMessage));
    }
  }
}

TEST_CASE("dhcp: the probe takes DHCP on any port and refuses plain BOOTP and other datagrams") {
  CHECK(dhcp::probe(bytes_of(request().bytes()), Dir::to_server) == Probe::yes);
  std::string bootp = request().bytes();
  bootp.resize(300);
  bootp.replace(236, 4, std::string(4, '\0'));
  CHECK(dhcp::probe(bytes_of(bootp), Dir::to_server) == Probe::no);
  Builder op3 = request();
  op3.op = 3;
  CHECK(dhcp::probe(bytes_of(op3.bytes()), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(std::string(512, 'A')), Dir::to_server) == Probe::no);
  CHECK(dhcp::probe(bytes_of(request().bytes().substr(0, 239)), Dir::to_server) == Probe::no);
}

TEST_CASE("dhcp: plain BOOTP (no magic cookie) is read on port 67 for its fixed fields") {
  // A BOOTP reply as RFC 951 has it: 300 bytes, the vendor area the vendor's own.
  Builder b;
  b.op = 2;
  b.yiaddr = ip(10, 20, 30, 44);
  b.sname = "bootsrv";
  b.file = "/tftpboot/pump-fw.bin";
  std::string reply = b.bytes();
  reply.resize(300);
  reply.replace(236, 64, std::string(64, '\0'));
  // The DHCP probe, asked on every port, still refuses it; the BOOTP one, asked on 67, takes it.
  CHECK(dhcp::probe(bytes_of(reply), Dir::to_client) == Probe::no);
  CHECK(kBootpInfo.probe(bytes_of(reply), Dir::to_client) == Probe::yes);
  CHECK(kBootpInfo.only_on_port_hints);
  CHECK(kBootpInfo.probe(bytes_of(request().bytes()), Dir::to_server) == Probe::no);  // DHCP: the other probe's
  CHECK(kBootpInfo.probe(bytes_of(reply.substr(0, 299)), Dir::to_client) == Probe::no);
  std::string junk(300, '\x01');
  CHECK(kBootpInfo.probe(bytes_of(junk), Dir::to_client) == Probe::no);
  // Nor is such junk read as BOOTP in a flow already DHCP's.
  Harness j(kDhcpInfo);
  j.datagram(Dir::to_client, junk);
  CHECK(j.events("dhcp").empty());
  CHECK(j.anomalies("not_dhcp") == 1);
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_client, reply);
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 1);
  auto& d = ev[0]["dhcp"];
  CHECK(d["op"] == "reply");
  CHECK(d["bootp"] == true);
  CHECK(!d.contains("message_type"));
  CHECK(d["client_mac"] == "02:00:5e:10:00:07");
  CHECK(d["assigned_ip"] == "10.20.30.44");
  CHECK(d["server_name"] == "bootsrv");
  CHECK(d["boot_file"] == "/tftpboot/pump-fw.bin");
  CHECK(h.anomalies() == 0);
  // A DHCP message's sname and file are read too, unless they hold options.
  Builder o;
  o.opt(53, "\x05").opt(52, "\x01");
  o.file = std::string("\x0c\x04gw-1", 6) + "\xff";
  o.sname = "tftp-1";
  auto m = parsed(o.bytes());
  CHECK(m.server_name == "tftp-1");
  CHECK(m.boot_file.empty());
  CHECK(!m.bootp);
}

TEST_CASE("dhcp: V-I vendor class and vendor-specific information (124, 125, RFC 3925) and option 43") {
  auto be32 = [](uint32_t v) { return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; };
  Builder b;
  b.opt(53, "\x01")
      .opt(124, be32(32473) + "\x0f" + "\x09" "ACME-CT-7" "\x04" "fw-2" + be32(4491) + "\x0a" + "\x09" "docsis3.0")
      .opt(125, be32(32473) + "\x0b" + "\x01\x03" "ABC" + std::string("\x02\x04\x00\x01\x02\x03", 6))
      .opt(43, std::string("\x01\x04\x0a\x00\x00\x01", 6));
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, b.bytes());
  auto ev = h.events("dhcp");
  REQUIRE(ev.size() == 1);
  auto& d = ev[0]["dhcp"];
  CHECK(d["vendor_classes"] == nlohmann::json::parse(R"([{"enterprise":32473,"data":["ACME-CT-7","fw-2"]},
                                                         {"enterprise":4491,"data":["docsis3.0"]}])"));
  CHECK(d["vendor_info"] == nlohmann::json::parse(R"([{"enterprise":32473,"suboptions":[{"code":1,"value":"ABC"},
                                                       {"code":2,"value":"00:01:02:03"}]}])"));
  CHECK(d["vendor_specific"] == "01:04:0a:00:00:01");
  CHECK(h.anomalies() == 0);
  // A block longer than its option: what came before it, and a problem.
  Builder c;
  c.opt(53, "\x01").opt(124, be32(9) + "\x02" + "\x01" "a" + be32(10) + "\x30" "short");
  auto m = parsed(c.bytes());
  REQUIRE(m.vi_vendor_class.size() == 1);
  CHECK(m.vi_vendor_class[0].enterprise == 9);
  REQUIRE(m.problems.size() == 1);
  CHECK(std::string(m.problems[0]) == "bad_vendor_option");
  // At most 8 enterprises.
  Builder many;
  std::string v;
  for (uint32_t e = 1; e <= 40; ++e) v += be32(e) + "\x02" "\x01" "x";
  many.opt(53, "\x01").opt(124, v.substr(0, 255)).opt(124, v.substr(255));
  CHECK(parsed(many.bytes()).vi_vendor_class.size() == dhcp::kMaxAddresses);
}

TEST_CASE("dhcp: hardware addresses are as long as hlen says, at most 16 bytes") {
  Builder ib = request();
  ib.mac = std::string(16, '\x11');
  Harness h(kDhcpInfo);
  h.datagram(Dir::to_server, ib.bytes());
  REQUIRE(h.events("dhcp").size() == 1);
  CHECK(h.events("dhcp")[0]["dhcp"]["client_mac"].get<std::string>().size() == 16 * 3 - 1);
  std::string too_long = request().bytes();
  too_long[2] = 17;
  dhcp::Message m;
  CHECK_FALSE(dhcp::parse(bytes_of(too_long), m));
}

TEST_CASE("dhcp: options after a zeroed or wrong magic cookie are a bad_magic_cookie anomaly") {
  SECTION("a message of BOOTP's size is still read as BOOTP, with the anomaly") {
    std::string s = request().bytes();
    s.replace(236, 4, std::string(4, '\0'));
    s.resize(300, '\0');
    Harness h(kDhcpInfo);
    h.datagram(Dir::to_server, s);
    auto ev = h.events("dhcp");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["dhcp"]["bootp"] == true);
    CHECK(!ev[0]["dhcp"].contains("hostname"));  // the options are not read without DHCP's cookie
    CHECK(h.anomalies("bad_magic_cookie") == 1);
    CHECK(h.anomalies() == 1);
  }
  SECTION("a shorter one, with a wrong cookie, is no BOOTP: only the anomaly") {
    std::string s = request().bytes();
    s.replace(236, 4, std::string("\x63\x82\x53\x00", 4));
    REQUIRE(s.size() < dhcp::kMinBootp);
    // Alone in its flow on port 67 it is still the dissector's to report; never on another port.
    CHECK(kBootpInfo.probe(bytes_of(s), Dir::to_server) == Probe::yes);
    CHECK(dhcp::probe(bytes_of(s), Dir::to_server) == Probe::no);
    Harness h(kDhcpInfo);
    h.datagram(Dir::to_server, s);
    CHECK(h.events("dhcp").empty());
    CHECK(h.anomalies("bad_magic_cookie") == 1);
    CHECK(h.anomalies("not_dhcp") == 0);
  }
  SECTION("plain BOOTP whose vendor area is zeros, or a vendor's own data, has none") {
    Builder b;
    b.op = 2;
    std::string s = b.bytes();
    s.resize(300);
    s.replace(236, 64, std::string(64, '\0'));
    Harness h(kDhcpInfo);
    h.datagram(Dir::to_client, s);
    s.replace(236, 8, "ACMEVEND");  // no end option after it
    h.datagram(Dir::to_client, s);
    CHECK(h.events("dhcp").size() == 2);
    CHECK(h.anomalies() == 0);
  }
}

TEST_CASE("dhcp: an overload option inside the overloaded file field changes nothing of what was read") {
  Builder o;
  o.opt(53, "\x05").opt(52, "\x01");
  o.file = std::string("\x34\x01\x02", 3) + std::string("\x0c\x04gw-1", 6) + "\xff";
  o.sname = "tftp-1";
  auto m = parsed(o.bytes());
  CHECK(m.hostname == "gw-1");
  CHECK(m.server_name == "tftp-1");
  CHECK(m.boot_file.empty());  // the file field holds options, not a file name
  REQUIRE(m.problems.size() == 1);
  CHECK(std::string(m.problems[0]) == "bad_overload");
}
