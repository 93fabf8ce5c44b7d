#include "dissectors/dhcp/dhcp_dissector.h"

#include <algorithm>
#include <cstdio>

#include "dissectors/api/byte_reader.h"

namespace medmon {
namespace dhcp {

namespace {

constexpr std::string_view kName = "dhcp";
constexpr uint16_t kPorts[] = {67};  // the server's: a reply from 67 to 68 is oriented as an answer
constexpr uint32_t kMagicCookie = 0x63825363;
constexpr size_t kMaxAnomalyEvents = 100;  // per flow; the counters go on counting

// Options of RFC 2132 (and 61/81/82) medmon reads.
enum Option : uint8_t {
  kPad = 0, kRouter = 3, kDns = 6, kHostName = 12, kDomain = 15, kRequestedIp = 50, kLeaseTime = 51,
  kOverload = 52, kMessageType = 53, kServerId = 54, kParamList = 55, kMessage = 56, kVendorClass = 60,
  kClientId = 61, kFqdn = 81, kRelayAgent = 82, kEnd = 255,
};

// RFC 3396: an option given more than once is one option, its pieces joined in order. Pieces
// are collected per option number as spans of the datagram, so nothing is copied until read.
struct Collected {
  std::array<std::vector<std::span<const uint8_t>>, 256> pieces;
  void add(uint8_t code, std::span<const uint8_t> v) {
    if (pieces[code].size() < 64) pieces[code].push_back(v);
  }
  bool has(uint8_t code) const { return !pieces[code].empty(); }
  std::vector<uint8_t> join(uint8_t code) const {
    std::vector<uint8_t> out;
    for (auto p : pieces[code]) {
      size_t n = std::min(p.size(), kMaxText - out.size());
      out.insert(out.end(), p.begin(), p.begin() + static_cast<ptrdiff_t>(n));
      if (out.size() >= kMaxText) break;
    }
    return out;
  }
};

// How an option area ended: at the end option, at an option running past it, or at its last
// byte (a sname/file area that is simply full needs no end option; the options field does).
enum class AreaEnd { end_option, truncated, full };

// Reads one option area (the options field, or sname/file when overloaded).
AreaEnd read_options(std::span<const uint8_t> area, Collected& c, Message& m) {
  size_t i = 0;
  while (i < area.size()) {
    uint8_t code = area[i];
    if (code == kPad) { ++i; continue; }
    if (code == kEnd) return AreaEnd::end_option;
    if (i + 1 >= area.size() || i + 2 + area[i + 1] > area.size()) {
      m.problems.push_back("truncated_option");
      return AreaEnd::truncated;
    }
    c.add(code, area.subspan(i + 2, area[i + 1]));
    i += 2 + area[i + 1];
  }
  return AreaEnd::full;
}

std::string text_of(const std::vector<uint8_t>& v) {
  std::string s(v.begin(), v.end());
  while (!s.empty() && s.back() == '\0') s.pop_back();  // some clients count a terminating NUL
  return s;
}

IpAddr address_at(const uint8_t* p) {
  IpAddr a = IpAddr::v4(p);
  if (p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0) a.family = 0;
  return a;
}

std::vector<IpAddr> addresses(const std::vector<uint8_t>& v) {
  std::vector<IpAddr> out;
  for (size_t i = 0; i + 4 <= v.size() && out.size() < kMaxAddresses; i += 4)
    if (IpAddr a = address_at(v.data() + i); a.family) out.push_back(a);
  return out;
}

std::string hex_of(std::span<const uint8_t> v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : v) {
    if (!s.empty()) s.push_back(':');
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

// A relay's circuit and remote ids are often switch port names ("Gi1/0/12"): text when every
// byte is printable ASCII, else hex.
std::string printable_or_hex(std::span<const uint8_t> v) {
  bool printable = !v.empty() && std::all_of(v.begin(), v.end(), [](uint8_t b) { return b >= 0x20 && b < 0x7F; });
  return printable ? std::string(v.begin(), v.end()) : hex_of(v);
}

// RFC 4702: flags, two obsolete rcodes, then the name; in DNS wire format when flag E (0x04).
std::string fqdn_of(const std::vector<uint8_t>& v) {
  if (v.size() < 3) return {};
  std::span<const uint8_t> name(v.data() + 3, v.size() - 3);
  if (!(v[0] & 0x04)) return text_of(std::vector<uint8_t>(name.begin(), name.end()));
  std::string out;
  for (size_t i = 0; i < name.size();) {
    uint8_t len = name[i++];
    if (len == 0) break;
    if (len > 63 || i + len > name.size()) return out;  // compression pointers are not allowed here
    if (!out.empty()) out.push_back('.');
    out.append(reinterpret_cast<const char*>(name.data() + i), len);
    i += len;
  }
  return out;
}

}  // namespace

const char* type_name(uint8_t type) {
  static constexpr const char* kNames[] = {
      nullptr, "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM", "FORCERENEW",
      "LEASEQUERY", "LEASEUNASSIGNED", "LEASEUNKNOWN", "LEASEACTIVE", "BULKLEASEQUERY", "LEASEQUERYDONE",
      "ACTIVELEASEQUERY", "LEASEQUERYSTATUS", "TLS"};
  return type < std::size(kNames) ? kNames[type] : nullptr;
}

bool parse(std::span<const uint8_t> d, Message& m) {
  if (d.size() < kMinMessage) return false;
  ByteReader r(d);
  m.op = r.u8();
  r.u8();  // htype: any link layer; the address length says how much of chaddr counts
  m.hlen = r.u8();
  r.u8();  // hops
  m.xid = r.be32();
  r.be16();  // secs
  m.broadcast = (r.be16() & 0x8000) != 0;
  m.ciaddr = address_at(d.data() + 12);
  m.yiaddr = address_at(d.data() + 16);
  m.giaddr = address_at(d.data() + 24);
  std::copy_n(d.data() + 28, 16, m.chaddr.begin());
  uint32_t cookie = uint32_t(d[236]) << 24 | uint32_t(d[237]) << 16 | uint32_t(d[238]) << 8 | d[239];
  if ((m.op != 1 && m.op != 2) || m.hlen > 16 || cookie != kMagicCookie) return false;

  Collected c;
  if (read_options(d.subspan(kMinMessage), c, m) == AreaEnd::full) m.problems.push_back("missing_end_option");
  // Option overload: file (1), sname (2) or both (3) hold more options, read after the field.
  if (c.has(kOverload)) {
    auto ov = c.join(kOverload);
    uint8_t v = ov.size() == 1 ? ov[0] : 0;
    if (v < 1 || v > 3) {
      m.problems.push_back("bad_overload");
    } else {
      if (v & 1) read_options(d.subspan(108, 128), c, m);
      if (v & 2) read_options(d.subspan(44, 64), c, m);
    }
  }

  if (auto t = c.join(kMessageType); t.size() == 1) m.type = t[0];
  else if (c.has(kMessageType)) m.problems.push_back("bad_message_type");
  if (c.has(kHostName)) m.hostname = text_of(c.join(kHostName));
  if (c.has(kFqdn)) m.fqdn = fqdn_of(c.join(kFqdn));
  if (c.has(kVendorClass)) m.vendor_class = text_of(c.join(kVendorClass));
  if (c.has(kDomain)) m.domain = text_of(c.join(kDomain));
  if (c.has(kMessage)) m.message = text_of(c.join(kMessage));
  if (c.has(kClientId)) m.client_id = c.join(kClientId);
  if (c.has(kParamList)) m.param_list = c.join(kParamList);
  if (auto v = c.join(kRequestedIp); v.size() == 4) m.requested_ip = address_at(v.data());
  if (auto v = c.join(kServerId); v.size() == 4) m.server_id = address_at(v.data());
  if (auto v = c.join(kLeaseTime); v.size() == 4) {
    m.has_lease = true;
    m.lease_time = uint32_t(v[0]) << 24 | uint32_t(v[1]) << 16 | uint32_t(v[2]) << 8 | v[3];
  }
  if (c.has(kRouter)) m.routers = addresses(c.join(kRouter));
  if (c.has(kDns)) m.dns_servers = addresses(c.join(kDns));
  if (c.has(kRelayAgent)) {
    auto v = c.join(kRelayAgent);
    for (size_t i = 0; i + 2 <= v.size();) {
      uint8_t sub = v[i], len = v[i + 1];
      if (i + 2 + len > v.size()) break;
      std::span<const uint8_t> val(v.data() + i + 2, len);
      if (sub == 1) m.circuit_id = printable_or_hex(val);
      if (sub == 2) m.remote_id = printable_or_hex(val);
      i += 2 + len;
    }
  }
  return true;
}

Probe probe(std::span<const uint8_t> first, Dir) {
  if (first.size() < kMinMessage) return Probe::no;  // a datagram is probed whole, or its first 512 bytes
  Message m;
  return parse(first, m) ? Probe::yes : Probe::no;
}

namespace {

class DhcpDissector final : public Dissector {
 public:
  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    Message m;
    if (!parse(data, m)) {
      anomaly(ctx, data.size() < kMinMessage ? "truncated" : "not_dhcp");
      return {data.size(), 0, 0, false};
    }
    for (const char* p : m.problems) anomaly(ctx, p);
    write(dir, m, ctx);
    return {data.size(), 0, 0, false};
  }
  void on_gap(Dir, uint64_t, FlowContext&) override {}
  void on_end(Dir, FlowContext&) override {}

 private:
  void anomaly(FlowContext& ctx, const char* name) {
    if (anomaly_events_ >= kMaxAnomalyEvents) {
      ++ctx.counters().at("dhcp.anomalies_suppressed");
      return;
    }
    ++anomaly_events_;
    ctx.anomaly(kName, name, ctx.stream_offset());
  }

  static void address(JsonWriter& w, std::string_view k, const IpAddr& a) {
    if (!a.family) return;
    w.key(k);
    w.value(a);
  }
  static void addresses(JsonWriter& w, std::string_view k, const std::vector<IpAddr>& list) {
    if (list.empty()) return;
    w.array(k);
    for (auto& a : list) w.value(a);
    w.end_array();
  }

  void write(Dir dir, const Message& m, FlowContext& ctx) {
    ++ctx.counters().at("dhcp.messages");
    auto& w = ctx.begin_event("dhcp");
    w.object("dhcp");
    w.field("direction", dir == Dir::to_server ? "to_server" : "to_client");
    w.field("op", m.op == 1 ? "request" : "reply");
    if (const char* n = type_name(m.type)) w.field("message_type", n);
    else if (m.type) w.field("message_type", std::to_string(m.type));
    char xid[11];
    std::snprintf(xid, sizeof xid, "0x%08x", m.xid);
    w.field("xid", std::string_view(xid, 10));
    if (m.hlen) w.field("client_mac", hex_of(std::span<const uint8_t>(m.chaddr.data(), m.hlen)));
    address(w, "client_ip", m.ciaddr);
    address(w, "assigned_ip", m.yiaddr);
    address(w, "relay_ip", m.giaddr);
    address(w, "requested_ip", m.requested_ip);
    address(w, "server_id", m.server_id);
    if (m.has_lease) w.field("lease_time", m.lease_time);
    w.field_if_nonempty("hostname", m.hostname);
    w.field_if_nonempty("client_fqdn", m.fqdn);
    w.field_if_nonempty("vendor_class", m.vendor_class);
    if (!m.client_id.empty()) w.field("client_id", hex_of(m.client_id));
    if (!m.param_list.empty()) {
      w.array("param_list");
      for (uint8_t p : m.param_list) w.value(p);
      w.end_array();
    }
    w.field_if_nonempty("domain", m.domain);
    addresses(w, "routers", m.routers);
    addresses(w, "dns_servers", m.dns_servers);
    w.field_if_nonempty("message", m.message);
    if (!m.circuit_id.empty() || !m.remote_id.empty()) {
      w.object("relay_agent");
      w.field_if_nonempty("circuit_id", m.circuit_id);
      w.field_if_nonempty("remote_id", m.remote_id);
      w.end_object();
    }
    if (m.broadcast) w.field("broadcast", true);
    w.end_object();
    ctx.end_event();
  }

  size_t anomaly_events_ = 0;
};

std::unique_ptr<Dissector> make() { return std::make_unique<DhcpDissector>(); }

}  // namespace
}  // namespace dhcp

const DissectorInfo kDhcpInfo = {
    .name = "dhcp",
    .transport = Transport::udp,
    .probe = &dhcp::probe,
    .make = &dhcp::make,
    .port_hints = dhcp::kPorts,
};

}  // namespace medmon
