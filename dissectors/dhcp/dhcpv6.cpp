#include "dissectors/dhcp/dhcpv6.h"

#include <algorithm>

#include "dissectors/api/byte_reader.h"
#include "dissectors/dhcp/dhcp_text.h"

namespace medmon::dhcp {

namespace {

// Options of RFC 8415 (and 4649, 4704) medmon reads.
enum Option6 : uint16_t {
  kClientId = 1, kServerId = 2, kIaNa = 3, kIaTa = 4, kIaAddr = 5, kOro = 6, kPreference = 7, kElapsed = 8,
  kRelayMsg = 9, kUnicast = 12, kStatus = 13, kRapidCommit = 14, kUserClass = 15, kVendorClass = 16,
  kInterfaceId = 18, kDnsServers = 23, kDomainList = 24, kIaPd = 25, kIaPrefix = 26, kRemoteId = 37,
  kClientFqdn = 39,
};

constexpr size_t kMaxDuid = 130;      // type and at most 128 bytes (RFC 8415 11.1)
constexpr size_t kMaxProblems = 16;   // per message: the rest of a damaged message says no more

void problem(Message6& m, const char* name) {
  if (m.problems.size() < kMaxProblems) m.problems.push_back(name);
}

// Calls f(code, value) for each option of `area`, in order; false (and a problem) when one runs
// past the end: the options before it are read.
template <class F>
bool each_option(std::span<const uint8_t> area, Message6& m, F&& f) {
  ByteReader r(area);
  while (r.remaining() > 0) {
    if (!r.has(4)) { problem(m, "truncated_option"); return false; }
    uint16_t code = r.be16(), len = r.be16();
    if (!r.has(len)) { problem(m, "truncated_option"); return false; }
    f(code, r.bytes(len));
  }
  return true;
}

std::string text6(std::span<const uint8_t> v) {
  return printable_or_hex(v.first(std::min(v.size(), kMaxText6)));
}

IpAddr address6(std::span<const uint8_t> v) {
  IpAddr a = IpAddr::v6(v.data());
  if (std::all_of(v.begin(), v.begin() + 16, [](uint8_t b) { return b == 0; })) a.family = 0;
  return a;
}

uint32_t be32_at(std::span<const uint8_t> v, size_t i) {
  return uint32_t(v[i]) << 24 | uint32_t(v[i + 1]) << 16 | uint32_t(v[i + 2]) << 8 | v[i + 3];
}

// Status code (13): a code, then a UTF-8 message.
void read_status(std::span<const uint8_t> v, Message6& m, int& code, std::string* message) {
  if (v.size() < 2) { problem(m, "bad_option_length"); return; }
  code = v[0] << 8 | v[1];
  if (message) message->assign(reinterpret_cast<const char*>(v.data() + 2), std::min(v.size() - 2, kMaxText6));
}

// A list of opaque items, each after a 16-bit length (user class; vendor class after its
// enterprise number).
void append_items(std::span<const uint8_t> v, Message6& m, std::vector<std::string>& out) {
  ByteReader r(v);
  while (r.remaining() > 0) {
    uint16_t len = r.be16();
    auto item = r.bytes(len);
    if (!r.ok()) { problem(m, "bad_option_length"); break; }
    if (out.size() < kMaxList6 && !item.empty()) out.push_back(text6(item));
  }
}

std::vector<std::string> items_of(std::span<const uint8_t> v, Message6& m) {
  std::vector<std::string> out;
  append_items(v, m, out);
  return out;
}

// IA_NA (3) and IA_PD (25): IAID, T1, T2, options; IA_TA (4): IAID, options. Their addresses
// (5) and prefixes (26) may hold a status code of their own: three levels, never more.
void read_ia(uint16_t code, std::span<const uint8_t> v, Message6& m) {
  size_t head = code == kIaTa ? 4 : 12;
  if (v.size() < head) { problem(m, "bad_option_length"); return; }
  if (m.ia.size() >= kMaxIas) return;
  Ia6 ia;
  ia.option = code;
  ia.iaid = be32_at(v, 0);
  if (code != kIaTa) {
    ia.has_times = true;
    ia.t1 = be32_at(v, 4);
    ia.t2 = be32_at(v, 8);
  }
  each_option(v.subspan(head), m, [&](uint16_t c, std::span<const uint8_t> w) {
    if (c == kStatus) { read_status(w, m, ia.status, &ia.status_message); return; }
    bool address = c == kIaAddr && code != kIaPd, prefix = c == kIaPrefix && code == kIaPd;
    if (!address && !prefix) return;
    size_t fixed = address ? 24 : 25;
    if (w.size() < fixed) { problem(m, "bad_option_length"); return; }
    Lease6 l;
    if (address) {
      l.address = address6(w);
      l.preferred = be32_at(w, 16);
      l.valid = be32_at(w, 20);
    } else {
      l.preferred = be32_at(w, 0);
      l.valid = be32_at(w, 4);
      l.prefix_len = w[8];
      l.address = IpAddr::v6(w.data() + 9);  // a prefix of zeros is still a prefix
      if (l.prefix_len > 128) problem(m, "bad_prefix_length");
    }
    each_option(w.subspan(fixed), m, [&](uint16_t cc, std::span<const uint8_t> x) {
      if (cc == kStatus) read_status(x, m, l.status, nullptr);
    });
    if (ia.leases.size() < kMaxLeases) ia.leases.push_back(l);
  });
  m.ia.push_back(std::move(ia));
}

// Options a message may hold once (RFC 8415 21 and Appendix B; RFC 4704 for the FQDN): the
// first instance is the one read, a later one is the anomaly `repeated_option` and is not read
// (RFC 8415 forbids joining instances, and a later one must not overwrite what the first said).
bool singleton(uint16_t code) {
  switch (code) {
    case kClientId: case kServerId: case kOro: case kPreference: case kElapsed: case kRelayMsg:
    case kUnicast: case kStatus: case kRapidCommit: case kInterfaceId: case kClientFqdn:
      return true;
    default:
      return false;
  }
}

// Whether an instance of `code` is a repeat of a singleton option already met in this area.
bool repeated(uint16_t code, uint64_t& seen, Message6& m) {
  if (!singleton(code)) return false;
  static_assert(kClientFqdn < 64);  // every singleton's code is a bit of `seen`
  uint64_t bit = uint64_t{1} << code;
  if (!(seen & bit)) { seen |= bit; return false; }
  problem(m, "repeated_option");
  return true;
}

// The options of a client or server message.
void read_options(std::span<const uint8_t> area, Message6& m) {
  uint64_t seen = 0;
  each_option(area, m, [&](uint16_t code, std::span<const uint8_t> v) {
    if (repeated(code, seen, m)) return;
    auto fixed = [&](size_t n) {
      if (v.size() == n) return true;
      problem(m, "bad_option_length");
      return false;
    };
    switch (code) {
      case kClientId:
      case kServerId: {
        auto& duid = code == kClientId ? m.client_duid : m.server_duid;
        if (v.size() < 2) { problem(m, "bad_option_length"); break; }
        duid.assign(v.begin(), v.begin() + static_cast<ptrdiff_t>(std::min(v.size(), kMaxDuid)));
        break;
      }
      case kIaNa:
      case kIaTa:
      case kIaPd:
        read_ia(code, v, m);
        break;
      case kOro:
        if (v.size() % 2) problem(m, "bad_option_length");
        for (size_t i = 0; i + 2 <= v.size() && m.oro.size() < kMaxOro; i += 2) m.oro.push_back(uint16_t(v[i] << 8 | v[i + 1]));
        break;
      case kPreference:
        if (fixed(1)) { m.has_preference = true; m.preference = v[0]; }
        break;
      case kElapsed:
        if (fixed(2)) { m.has_elapsed = true; m.elapsed = uint16_t(v[0] << 8 | v[1]); }
        break;
      case kUnicast:
        if (fixed(16)) m.unicast = address6(v);
        break;
      case kStatus:
        read_status(v, m, m.status, &m.status_message);
        break;
      case kRapidCommit:
        if (fixed(0)) m.rapid_commit = true;
        break;
      case kUserClass:
        // Each instance's items, in order, as DHCPv4 joins its option 77s (at most kMaxList6).
        append_items(v, m, m.user_class);
        break;
      case kVendorClass:
        // RFC 8415 21.16: an enterprise number, then any number of vendor-class-data items.
        // One instance per enterprise may come: each is read (up to kMaxList6), and the first
        // is also the message's vendor class.
        if (v.size() < 4) { problem(m, "bad_option_length"); break; }
        if (m.vendor_classes.size() >= kMaxList6) break;
        m.vendor_classes.push_back({be32_at(v, 0), items_of(v.subspan(4), m)});
        if (m.has_vendor_class) break;
        m.has_vendor_class = true;
        m.vendor_enterprise = m.vendor_classes.front().enterprise;
        m.vendor_class = m.vendor_classes.front().data;
        break;
      case kDnsServers:
        if (v.size() % 16) problem(m, "bad_option_length");
        for (size_t i = 0; i + 16 <= v.size() && m.dns_servers.size() < kMaxList6; i += 16)
          if (IpAddr a = address6(v.subspan(i)); a.family) m.dns_servers.push_back(a);
        break;
      case kDomainList:
        for (size_t i = 0; i < v.size() && m.domain_search.size() < kMaxList6;) {
          size_t used = 0;
          std::string name = dns_wire_name(v.subspan(i), &used);
          if (!name.empty()) m.domain_search.push_back(name.substr(0, kMaxText6));
          i += std::max<size_t>(used, 1);
        }
        break;
      case kClientFqdn:
        // RFC 4704: flags, then the name in DNS wire format (a partial name has no final zero).
        if (v.empty()) { problem(m, "bad_option_length"); break; }
        m.fqdn = dns_wire_name(v.subspan(1)).substr(0, kMaxText6);
        break;
      default:
        break;
    }
  });
}

bool is_relay(uint8_t type) { return type == kRelayForw || type == kRelayRepl; }

// One message at `depth` relays down: a relay's header and options, then the message it carries.
void parse_at(std::span<const uint8_t> d, Message6& m, size_t depth) {
  uint8_t type = d[0];
  if (!is_relay(type)) {
    m.type = type;
    m.has_xid = true;
    m.xid = uint32_t(d[1]) << 16 | uint32_t(d[2]) << 8 | d[3];
    read_options(d.subspan(kMinMessage6), m);
    return;
  }
  m.type = type;  // until a message inside says otherwise
  if (d.size() < kMinRelay6) { problem(m, "truncated_relay"); return; }
  if (depth >= kMaxRelayDepth) { problem(m, "relay_too_deep"); return; }
  Relay6 relay;
  relay.type = type;
  relay.hop_count = d[1];
  relay.link_address = address6(d.subspan(2));
  relay.peer_address = address6(d.subspan(18));
  std::span<const uint8_t> inner;
  bool have_inner = false;
  uint64_t seen = 0;
  bool clean = each_option(d.subspan(kMinRelay6), m, [&](uint16_t code, std::span<const uint8_t> v) {
    if (repeated(code, seen, m)) return;
    if (code == kRelayMsg) { inner = v; have_inner = true; }
    if (code == kInterfaceId) relay.interface_id = text6(v);
    if (code == kRemoteId && relay.remote_id.empty() && v.size() > 4) relay.remote_id = text6(v.subspan(4));
  });
  m.relays.push_back(std::move(relay));
  if (!have_inner) {
    if (clean) problem(m, "missing_relay_message");  // else it may be the option that was cut
    return;
  }
  if (inner.size() < kMinMessage6 || inner[0] == 0) { problem(m, "bad_relay_message"); return; }
  parse_at(inner, m, depth + 1);
}

// The strict form of parse_at for the probe: the options tile the message exactly (or run to
// the end of a probe window that cut it) and hold what the type requires.
bool strict(std::span<const uint8_t> d, bool may_be_cut, size_t depth) {
  if (d.size() < kMinMessage6) return false;
  uint8_t type = d[0];
  bool relay = is_relay(type);
  if (!relay && (type < kSolicit || type > kInformationRequest)) return false;
  size_t head = relay ? kMinRelay6 : kMinMessage6;
  if (d.size() < head || (relay && depth >= kMaxRelayDepth)) return false;
  bool elapsed = false, server_id = false, cut = false;
  std::span<const uint8_t> inner;
  for (size_t i = head; i < d.size();) {
    if (i + 4 > d.size()) { cut = true; break; }
    uint16_t code = uint16_t(d[i] << 8 | d[i + 1]), len = uint16_t(d[i + 2] << 8 | d[i + 3]);
    if (code == 0) return false;
    size_t have = std::min<size_t>(len, d.size() - i - 4);
    if (code == kElapsed && len == 2) elapsed = true;
    if (code == kServerId && len >= 2) server_id = true;
    if (code == kRelayMsg && inner.empty()) inner = d.subspan(i + 4, have);
    if (have < len) { cut = true; break; }
    i += 4 + len;
  }
  if (cut && !may_be_cut) return false;
  if (relay) return !inner.empty() && strict(inner, may_be_cut, depth + 1);
  switch (type) {
    case kAdvertise:
    case kReply:
    case kReconfigure:
      return server_id;
    default:
      return elapsed;  // every client message says how long the client has been trying
  }
}

}  // namespace

bool parse6(std::span<const uint8_t> d, Message6& m) {
  if (d.size() < kMinMessage6 || d[0] == 0) return false;
  if (is_relay(d[0]) && d.size() < kMinRelay6) return false;
  parse_at(d, m, 0);
  return true;
}

bool looks_like6(std::span<const uint8_t> d) {
  constexpr size_t kProbeWindow = 512;  // the feeder probes a datagram's first 512 bytes
  return strict(d, d.size() >= kProbeWindow, 0);
}

const char* type_name6(uint8_t type) {
  static constexpr const char* kNames[] = {
      nullptr, "SOLICIT", "ADVERTISE", "REQUEST", "CONFIRM", "RENEW", "REBIND", "REPLY", "RELEASE", "DECLINE",
      "RECONFIGURE", "INFORMATION-REQUEST", "RELAY-FORW", "RELAY-REPL", "LEASEQUERY", "LEASEQUERY-REPLY",
      "LEASEQUERY-DONE", "LEASEQUERY-DATA", "RECONFIGURE-REQUEST", "RECONFIGURE-REPLY", "DHCPV4-QUERY",
      "DHCPV4-RESPONSE"};
  return type < std::size(kNames) ? kNames[type] : nullptr;
}

bool from_client6(uint8_t type) {
  switch (type) {
    case kAdvertise: case kReply: case kReconfigure: case kRelayRepl:
    case 15: case 16: case 17: case 19: case 21:  // lease-query replies, RECONFIGURE-REPLY, DHCPV4-RESPONSE
      return false;
    default:
      return true;
  }
}

const char* duid_type_name(std::span<const uint8_t> duid) {
  if (duid.size() < 2) return nullptr;
  switch (duid[0] << 8 | duid[1]) {
    case 1: return "LLT";
    case 2: return "EN";
    case 3: return "LL";
    case 4: return "UUID";
    default: return nullptr;
  }
}

bool duid_mac(std::span<const uint8_t> duid, std::array<uint8_t, 6>& mac) {
  if (duid.size() < 4) return false;
  unsigned type = duid[0] << 8 | duid[1], hw = duid[2] << 8 | duid[3];
  size_t at = type == 1 ? 8 : type == 3 ? 4 : 0;
  if (!at || hw != 1 || duid.size() != at + 6) return false;  // Ethernet (ARP hardware type 1)
  std::copy_n(duid.begin() + static_cast<ptrdiff_t>(at), 6, mac.begin());
  return true;
}

const char* status_name6(int code) {
  static constexpr const char* kNames[] = {"Success",      "UnspecFail",    "NoAddrsAvail", "NoBinding",
                                           "NotOnLink",    "UseMulticast",  "NoPrefixAvail"};
  return code >= 0 && code < static_cast<int>(std::size(kNames)) ? kNames[code] : nullptr;
}

}  // namespace medmon::dhcp
