#include "dissectors/dhcp/dhcp_dissector.h"

#include <algorithm>
#include <cstdio>

#include "dissectors/api/byte_reader.h"
#include "dissectors/dhcp/dhcp_text.h"
#include "dissectors/dhcp/dhcpv6.h"

namespace medmon {
namespace dhcp {

namespace {

constexpr std::string_view kName = "dhcp";
constexpr uint16_t kPorts[] = {67, 547};  // the servers': a reply from 67 to 68 (547 to 546) is an answer
constexpr uint16_t kBootpPorts[] = {67};
constexpr uint32_t kMagicCookie = 0x63825363;
constexpr size_t kMaxAnomalyEvents = 100;  // per flow; the counters go on counting

// Options of RFC 2132 (and 61/81/82) medmon reads.
enum Option : uint8_t {
  kPad = 0, kRouter = 3, kDns = 6, kHostName = 12, kDomain = 15, kVendorSpecific = 43, kRequestedIp = 50,
  kLeaseTime = 51, kOverload = 52, kMessageType = 53, kServerId = 54, kParamList = 55, kMessage = 56,
  kVendorClass = 60, kClientId = 61, kUserClass = 77, kFqdn = 81, kRelayAgent = 82, kViVendorClass = 124,
  kViVendorInfo = 125, kEnd = 255,
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

// RFC 4702: flags, two obsolete rcodes, then the name; in DNS wire format when flag E (0x04).
std::string fqdn_of(const std::vector<uint8_t>& v) {
  if (v.size() < 3) return {};
  std::span<const uint8_t> name(v.data() + 3, v.size() - 3);
  if (!(v[0] & 0x04)) return text_of(std::vector<uint8_t>(name.begin(), name.end()));
  return dns_wire_name(name);
}

// RFC 3004: items, each after a length byte. Clients that predate it (iPXE, Windows) send one
// plain text: a value the lengths do not tile exactly is that one item.
std::vector<std::string> user_classes(const std::vector<uint8_t>& v) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < v.size() && v[i] != 0 && i + 1 + v[i] <= v.size()) i += 1 + v[i];
  if (i != v.size()) {
    if (!v.empty()) out.push_back(printable_or_hex(v));
    return out;
  }
  for (i = 0; i < v.size() && out.size() < kMaxAddresses; i += 1 + v[i])
    out.push_back(printable_or_hex(std::span<const uint8_t>(v.data() + i + 1, v[i])));
  return out;
}

// RFC 3925: options 124 and 125 hold one block per enterprise: its number (4 bytes), a length
// byte, then that many bytes, which `read` makes into the enterprise's entry. A block running
// past the option ends it (a problem).
template <class T, class F>
std::vector<T> per_enterprise(const std::vector<uint8_t>& v, Message& m, F&& read) {
  std::vector<T> out;
  for (size_t i = 0; i < v.size() && out.size() < kMaxAddresses;) {
    if (i + 5 > v.size() || i + 5 + v[i + 4] > v.size()) {
      m.problems.push_back("bad_vendor_option");
      break;
    }
    T e;
    e.enterprise = uint32_t(v[i]) << 24 | uint32_t(v[i + 1]) << 16 | uint32_t(v[i + 2]) << 8 | v[i + 3];
    std::vector<uint8_t> data(v.begin() + static_cast<ptrdiff_t>(i + 5), v.begin() + static_cast<ptrdiff_t>(i + 5 + v[i + 4]));
    read(data, e);
    out.push_back(std::move(e));
    i += 5 + v[i + 4];
  }
  return out;
}

// The bytes after a wrong or zeroed magic cookie read as a DHCP options field: options within
// the datagram, at least one, up to an end option. RFC 951's vendor area (zeros, or a vendor's
// own data) seldom does; a DHCP message whose cookie was lost or forged does.
bool options_follow(std::span<const uint8_t> d) {
  if (d.size() <= kMinMessage) return false;
  uint32_t cookie = uint32_t(d[236]) << 24 | uint32_t(d[237]) << 16 | uint32_t(d[238]) << 8 | d[239];
  if (cookie == kMagicCookie) return false;
  Collected c;
  Message scratch;
  if (read_options(d.subspan(kMinMessage), c, scratch) != AreaEnd::end_option) return false;
  return std::any_of(c.pieces.begin(), c.pieces.end(), [](const auto& p) { return !p.empty(); });
}

// sname or file as text up to its first NUL (text or hex); empty when it is all zeros.
std::string field_text(std::span<const uint8_t> f) {
  auto nul = std::find(f.begin(), f.end(), uint8_t{0});
  return printable_or_hex(f.first(static_cast<size_t>(nul - f.begin())));
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
  m.htype = r.u8();  // any link layer: the address length says how much of chaddr counts
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
  if ((m.op != 1 && m.op != 2) || m.hlen > 16) return false;
  if (cookie != kMagicCookie) {
    // Plain BOOTP: the vendor area is the vendor's own, the fixed fields all there is. Without a
    // magic number, the header must read as RFC 951 has it: a hardware type and address length,
    // chaddr zero after the address.
    if (d.size() < kMinBootp || m.htype == 0 || m.hlen == 0) return false;
    if (!std::all_of(d.begin() + 28 + m.hlen, d.begin() + 44, [](uint8_t b) { return b == 0; })) return false;
    m.bootp = true;
    if (options_follow(d)) m.problems.push_back("bad_magic_cookie");
    m.server_name = field_text(d.subspan(44, 64));
    m.boot_file = field_text(d.subspan(108, 128));
    return true;
  }

  Collected c;
  if (read_options(d.subspan(kMinMessage), c, m) == AreaEnd::full) m.problems.push_back("missing_end_option");
  // Option overload: file (1), sname (2) or both (3) hold more options, read after the field.
  // Only the options field says so (RFC 2131 4.1): an option 52 inside sname or file changes
  // nothing of what was read, and is a bad overload.
  uint8_t overload = 0;
  if (c.has(kOverload)) {
    auto ov = c.join(kOverload);
    uint8_t v = ov.size() == 1 ? ov[0] : 0;
    if (v < 1 || v > 3) {
      m.problems.push_back("bad_overload");
    } else {
      overload = v;
      if (v & 1) read_options(d.subspan(108, 128), c, m);
      if (v & 2) read_options(d.subspan(44, 64), c, m);
      if (c.pieces[kOverload].size() > 1) m.problems.push_back("bad_overload");
    }
  }
  // sname and file as BOOTP has them (the server's name, the boot file), when they hold no options.
  if (!(overload & 2)) m.server_name = field_text(d.subspan(44, 64));
  if (!(overload & 1)) m.boot_file = field_text(d.subspan(108, 128));

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
  if (c.has(kUserClass)) m.user_class = user_classes(c.join(kUserClass));
  if (c.has(kVendorSpecific)) m.vendor_specific = printable_or_hex(c.join(kVendorSpecific));
  if (c.has(kViVendorClass))
    m.vi_vendor_class = per_enterprise<ViVendorClass>(c.join(kViVendorClass), m, [](const std::vector<uint8_t>& data, ViVendorClass& e) {
      e.data = user_classes(data);  // items after a length byte each, as option 77's
    });
  if (c.has(kViVendorInfo))
    m.vi_vendor_info = per_enterprise<ViVendorInfo>(c.join(kViVendorInfo), m, [&m](const std::vector<uint8_t>& data, ViVendorInfo& e) {
      for (size_t i = 0; i < data.size() && e.suboptions.size() < kMaxAddresses;) {
        if (i + 2 > data.size() || i + 2 + data[i + 1] > data.size()) {
          m.problems.push_back("bad_vendor_option");
          break;
        }
        e.suboptions.emplace_back(data[i], printable_or_hex(std::span<const uint8_t>(data.data() + i + 2, data[i + 1])));
        i += 2 + data[i + 1];
      }
    });
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
  // A datagram is probed whole, or its first 512 bytes.
  Message m;
  if (first.size() >= kMinMessage && parse(first, m) && !m.bootp) return Probe::yes;
  return looks_like6(first) ? Probe::yes : Probe::no;
}

// Plain BOOTP, asked on port 67 only (a DHCP message is the other probe's); there, too, a DHCP
// header and options after a wrong or zeroed cookie, whatever its length (a bad_magic_cookie).
Probe probe_bootp(std::span<const uint8_t> first, Dir) {
  Message m;
  if (parse(first, m)) return m.bootp ? Probe::yes : Probe::no;
  bool dhcp_header = first.size() > kMinMessage && (first[0] == 1 || first[0] == 2) && first[2] <= 16;
  return dhcp_header && options_follow(first) ? Probe::yes : Probe::no;
}

namespace {

class DhcpDissector final : public Dissector {
 public:
  // Over IPv6 every message is DHCPv6, over IPv4 DHCPv4; without addresses (a unit test, the fuzz
  // target) the content tells, and a flow that once spoke DHCPv6 stays so.
  Consumed on_data(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) override {
    uint8_t family = ctx.endpoints().src.family;
    if (family == 6 || (family == 0 && v6_)) {
      on_message6(dir, data, ctx);
      return {data.size(), 0, 0, false};
    }
    Message m;
    if (!parse(data, m)) {
      if (family == 0 && looks_like6(data)) {
        v6_ = true;
        on_message6(dir, data, ctx);
      } else if (data.size() < kMinMessage) {
        anomaly(ctx, "truncated");
      } else {
        // A DHCP header and options with a cookie that is not DHCP's: too short for BOOTP, but
        // no stranger to DHCP either.
        bool dhcp_header = (data[0] == 1 || data[0] == 2) && data[2] <= 16;
        anomaly(ctx, dhcp_header && options_follow(data) ? "bad_magic_cookie" : "not_dhcp");
      }
      return {data.size(), 0, 0, false};
    }
    for (const char* p : m.problems) anomaly(ctx, p);
    const std::array<uint8_t, 6>* sender = spoofed_chaddr(m, ctx);
    if (sender) anomaly(ctx, "chaddr_mismatch");
    write(dir, m, sender, ctx);
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
  // A client's own message (no relay: giaddr 0) comes in a frame of its own MAC. When an
  // Ethernet chaddr names another, the sender claims a MAC not its own (or a MAC-rewriting
  // bridge is in between): the frame's MAC, which the event then names, is the one that spoke.
  static const std::array<uint8_t, 6>* spoofed_chaddr(const Message& m, FlowContext& ctx) {
    const std::array<uint8_t, 6>* frame = ctx.frame_src_mac();
    if (!frame || m.op != 1 || m.giaddr.family || m.htype != 1 || m.hlen != 6) return nullptr;
    return std::equal(frame->begin(), frame->end(), m.chaddr.begin()) ? nullptr : frame;
  }

  static void text_list(JsonWriter& w, std::string_view k, const std::vector<std::string>& list) {
    if (list.empty()) return;
    w.array(k);
    for (auto& t : list) w.value(t);
    w.end_array();
  }
  // DHCPv4 option 124 and DHCPv6 option 16 alike: each enterprise with its vendor-class-data items.
  template <class VendorClasses>
  static void vendor_classes(JsonWriter& w, const VendorClasses& list) {
    if (list.empty()) return;
    w.array("vendor_classes");
    for (auto& e : list) {
      w.begin_object();
      w.field("enterprise", e.enterprise);
      text_list(w, "data", e.data);
      w.end_object();
    }
    w.end_array();
  }
  static void addresses(JsonWriter& w, std::string_view k, const std::vector<IpAddr>& list) {
    if (list.empty()) return;
    w.array(k);
    for (auto& a : list) w.value(a);
    w.end_array();
  }

  void write(Dir dir, const Message& m, const std::array<uint8_t, 6>* sender_mac, FlowContext& ctx) {
    ++ctx.counters().at("dhcp.messages");
    auto& w = ctx.begin_event("dhcp");
    w.object("dhcp");
    w.field("direction", dir == Dir::to_server ? "to_server" : "to_client");
    w.field("op", m.op == 1 ? "request" : "reply");
    if (const char* n = type_name(m.type)) w.field("message_type", n);
    else if (m.type) w.field("message_type", std::to_string(m.type));
    if (m.bootp) w.field("bootp", true);
    char xid[11];
    std::snprintf(xid, sizeof xid, "0x%08x", m.xid);
    w.field("xid", std::string_view(xid, 10));
    if (m.hlen) w.field("client_mac", hex_of(std::span<const uint8_t>(m.chaddr.data(), m.hlen)));
    if (sender_mac) w.field("sender_mac", hex_of(*sender_mac));
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
    text_list(w, "user_class", m.user_class);
    w.field_if_nonempty("domain", m.domain);
    addresses(w, "routers", m.routers);
    addresses(w, "dns_servers", m.dns_servers);
    w.field_if_nonempty("message", m.message);
    w.field_if_nonempty("vendor_specific", m.vendor_specific);
    vendor_classes(w, m.vi_vendor_class);
    if (!m.vi_vendor_info.empty()) {
      w.array("vendor_info");
      for (auto& e : m.vi_vendor_info) {
        w.begin_object();
        w.field("enterprise", e.enterprise);
        if (!e.suboptions.empty()) {
          w.array("suboptions");
          for (auto& [code, value] : e.suboptions) {
            w.begin_object();
            w.field("code", code);
            w.field("value", value);
            w.end_object();
          }
          w.end_array();
        }
        w.end_object();
      }
      w.end_array();
    }
    w.field_if_nonempty("server_name", m.server_name);
    w.field_if_nonempty("boot_file", m.boot_file);
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

  void on_message6(Dir dir, std::span<const uint8_t> data, FlowContext& ctx) {
    Message6 m;
    if (!parse6(data, m)) {
      anomaly(ctx, data.empty() || data[0] != 0 ? "truncated" : "not_dhcp");
      return;
    }
    // The policy's `app: dhcpv6` names this member of the dhcp family.
    if (!ctx.facts().attr("dhcp.version")) ctx.facts().set_attr("dhcp.version", "6");
    for (const char* p : m.problems) anomaly(ctx, p);
    // A client's own message whose DUID holds another MAC than its frame's: a DUID made on another
    // interface (RFC 8415 allows it, so no anomaly), or a host speaking in another's name.
    const std::array<uint8_t, 6>* sender = nullptr;
    std::array<uint8_t, 6> duid_addr{};
    if (m.relays.empty() && from_client6(m.type) && duid_mac(m.client_duid, duid_addr))
      if (const auto* frame = ctx.frame_src_mac(); frame && *frame != duid_addr) sender = frame;
    write6(dir, m, sender, ctx);
  }

  // The address the client holds as the packet shows it: the peer address the innermost relay
  // names, else the sender of a client's message or the receiver of a server's (its link-local
  // address, a multicast group being no one's).
  static IpAddr client_address(Dir dir, const Message6& m, FlowContext& ctx) {
    IpAddr a;
    if (!m.relays.empty()) {
      if (m.type != kRelayForw && m.type != kRelayRepl) a = m.relays.back().peer_address;
    } else {
      const auto& ep = ctx.endpoints();
      bool sent_by_flow_client = dir == Dir::to_server;
      a = sent_by_flow_client == from_client6(m.type) ? ep.src : ep.dst;
    }
    bool unspecified = std::all_of(a.b.begin(), a.b.end(), [](uint8_t b) { return b == 0; });
    if (a.family != 6 || a.b[0] == 0xff || unspecified) return {};
    return a;
  }

  // The first address an ADVERTISE or REPLY gives in an IA_NA (a valid lifetime of 0 takes one back).
  static IpAddr assigned_address(const Message6& m) {
    if (m.type != kAdvertise && m.type != kReply) return {};
    for (auto& ia : m.ia)
      if (ia.option == 3)
        for (auto& l : ia.leases)
          if (l.address.family && l.valid && l.status <= 0) return l.address;
    return {};
  }

  static void status(JsonWriter& w, int code, const std::string& message) {
    if (code < 0) return;
    if (const char* n = status_name6(code)) w.field("status", n);
    else w.field("status", std::to_string(code));
    w.field_if_nonempty("status_message", message);
  }

  static void duid(JsonWriter& w, std::string_view k, std::string_view type_key, const std::vector<uint8_t>& d) {
    if (d.empty()) return;
    w.field(k, hex_of(d));
    if (const char* t = duid_type_name(d)) w.field(type_key, t);
    else w.field(type_key, std::to_string(d[0] << 8 | d[1]));
  }

  static std::string hex32(uint32_t v, int digits) {
    char s[11];
    std::snprintf(s, sizeof s, "0x%0*x", digits, v);
    return s;
  }

  void write6(Dir dir, const Message6& m, const std::array<uint8_t, 6>* sender_mac, FlowContext& ctx) {
    ++ctx.counters().at("dhcp.messages");
    auto& w = ctx.begin_event("dhcp");
    w.object("dhcp");
    w.field("version", 6);
    w.field("direction", dir == Dir::to_server ? "to_server" : "to_client");
    w.field("op", from_client6(m.type) ? "request" : "reply");
    if (const char* n = type_name6(m.type)) w.field("message_type", n);
    else w.field("message_type", std::to_string(m.type));
    if (m.has_xid) w.field("xid", hex32(m.xid, 6));
    std::array<uint8_t, 6> mac{};
    if (duid_mac(m.client_duid, mac)) w.field("client_mac", hex_of(mac));
    if (sender_mac) w.field("sender_mac", hex_of(*sender_mac));
    address(w, "client_ip", client_address(dir, m, ctx));
    address(w, "assigned_ip", assigned_address(m));
    duid(w, "client_duid", "client_duid_type", m.client_duid);
    duid(w, "server_duid", "server_duid_type", m.server_duid);
    if (m.has_elapsed) w.field("elapsed_ms", uint32_t(m.elapsed) * 10);
    if (m.has_preference) w.field("preference", m.preference);
    if (m.rapid_commit) w.field("rapid_commit", true);
    address(w, "unicast", m.unicast);
    if (!m.oro.empty()) {
      w.array("param_list");
      for (uint16_t o : m.oro) w.value(o);
      w.end_array();
    }
    if (!m.ia.empty()) {
      w.array("ia");
      for (auto& ia : m.ia) {
        w.begin_object();
        w.field("type", ia.option == 3 ? "na" : ia.option == 4 ? "ta" : "pd");
        w.field("iaid", hex32(ia.iaid, 8));
        if (ia.has_times) {
          w.field("t1", ia.t1);
          w.field("t2", ia.t2);
        }
        if (!ia.leases.empty()) {
          w.array(ia.option == 25 ? "prefixes" : "addresses");
          for (auto& l : ia.leases) {
            w.begin_object();
            if (ia.option == 25) {
              std::string p = l.address.to_string();
              p.append("/").append(std::to_string(l.prefix_len));
              w.field("prefix", p);
            } else {
              address(w, "address", l.address);
            }
            w.field("preferred_lifetime", l.preferred);
            w.field("valid_lifetime", l.valid);
            status(w, l.status, {});
            w.end_object();
          }
          w.end_array();
        }
        status(w, ia.status, ia.status_message);
        w.end_object();
      }
      w.end_array();
    }
    status(w, m.status, m.status_message);
    addresses(w, "dns_servers", m.dns_servers);
    if (!m.domain_search.empty()) {
      w.array("domain_search");
      for (auto& d : m.domain_search) w.value(d);
      w.end_array();
    }
    w.field_if_nonempty("client_fqdn", m.fqdn);
    if (m.has_vendor_class) {
      w.field("vendor_enterprise", m.vendor_enterprise);
      // The first item alone as DHCPv4's vendor class (what the inventory keeps), then every item.
      if (!m.vendor_class.empty()) {
        w.field("vendor_class", m.vendor_class.front());
        text_list(w, "vendor_class_data", m.vendor_class);
      }
      vendor_classes(w, m.vendor_classes);
    }
    text_list(w, "user_class", m.user_class);
    if (!m.relays.empty()) {
      w.array("relays");
      for (auto& r : m.relays) {
        w.begin_object();
        w.field("message_type", type_name6(r.type));
        w.field("hop_count", r.hop_count);
        address(w, "link_address", r.link_address);
        address(w, "peer_address", r.peer_address);
        w.field_if_nonempty("interface_id", r.interface_id);
        w.field_if_nonempty("remote_id", r.remote_id);
        w.end_object();
      }
      w.end_array();
    }
    w.end_object();
    ctx.end_event();
  }

  size_t anomaly_events_ = 0;
  bool v6_ = false;
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

const DissectorInfo kBootpInfo = {
    .name = "dhcp",
    .transport = Transport::udp,
    .probe = &dhcp::probe_bootp,
    .make = &dhcp::make,
    .port_hints = dhcp::kBootpPorts,
    .only_on_port_hints = true,
};

}  // namespace medmon
