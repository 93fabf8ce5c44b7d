#pragma once
// DHCPv4 (RFC 2131/2132) and DHCPv6 (RFC 8415, dhcpv6.h): one `dhcp` event per message, whatever
// the ports. A device names itself here before anything else (host name, vendor class, the
// options it asks for, its hardware address), and the server says which address it gets: the
// asset inventory reads the events to put a name and an address to a MAC. Option overload (52)
// and repeated options (RFC 3396) are followed; nothing read here is PHI. Plain BOOTP (RFC 951,
// no magic cookie) is read for what its fixed fields say, on the BOOTP server port only.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "dissectors/api/dissector.h"
#include "sensor/common/types.h"

namespace medmon {

extern const DissectorInfo kDhcpInfo;
// Plain BOOTP: no magic number marks it, so it is probed only on UDP 67 (same dissector).
extern const DissectorInfo kBootpInfo;

namespace dhcp {

// RFC 3925 option 124 (V-I vendor class): an enterprise and its vendor-class-data items.
struct ViVendorClass {
  uint32_t enterprise = 0;
  std::vector<std::string> data;  // as text or hex (at most kMaxAddresses)
};
// RFC 3925 option 125 (V-I vendor-specific information): an enterprise and its sub-options.
struct ViVendorInfo {
  uint32_t enterprise = 0;
  std::vector<std::pair<uint8_t, std::string>> suboptions;  // code, value as text or hex (at most kMaxAddresses)
};

// One BOOTP/DHCP message as sent. Addresses that are 0.0.0.0 are left unset (family 0).
struct Message {
  uint8_t op = 0;            // 1 request (client), 2 reply (server)
  uint8_t type = 0;          // option 53; 0 = none (plain BOOTP inside a DHCP cookie)
  bool bootp = false;        // no magic cookie: plain BOOTP (RFC 951), no options read
  std::string server_name, boot_file;  // sname and file, when they hold no options (text or hex)
  uint32_t xid = 0;
  bool broadcast = false;    // flags bit 15: the client asked for broadcast replies
  IpAddr ciaddr, yiaddr, giaddr;
  std::array<uint8_t, 16> chaddr{};
  uint8_t htype = 0, hlen = 0;
  std::string hostname;      // 12
  std::string fqdn;          // 81, wire format decoded to dotted text
  std::string vendor_class;  // 60
  std::string domain;        // 15
  std::string message;       // 56 (a NAK's reason)
  std::string vendor_specific;  // 43, as text or hex
  std::vector<ViVendorClass> vi_vendor_class;  // 124 (at most kMaxAddresses enterprises)
  std::vector<ViVendorInfo> vi_vendor_info;    // 125 (the same)
  std::vector<uint8_t> client_id;   // 61, type byte first
  std::vector<uint8_t> param_list;  // 55
  std::string circuit_id, remote_id;  // 82 sub-options 1 and 2, as text or hex
  std::vector<std::string> user_class;  // 77 (RFC 3004): its items, as text or hex (at most kMaxAddresses)
  IpAddr requested_ip, server_id;     // 50, 54
  std::vector<IpAddr> routers, dns_servers;  // 3, 6 (at most kMaxAddresses each)
  bool has_lease = false;
  uint32_t lease_time = 0;  // 51, seconds
  // What did not read cleanly (an option running past the end, no end option, a bad
  // overload): names for anomaly events, the message still reported as far as it was read.
  std::vector<const char*> problems;
};

constexpr size_t kMinMessage = 240;     // fixed header (236) and the magic cookie
constexpr size_t kMinBootp = 300;       // RFC 1542 2.1: a BOOTP message is at least 300 bytes
constexpr size_t kMaxText = 1024;       // an option's text after RFC 3396 concatenation
constexpr size_t kMaxAddresses = 8;

// False when the bytes are no DHCPv4 message (too short, unknown op, hardware address longer than
// its field, no magic cookie in less than kMinBootp bytes). Without the cookie, a message of
// kMinBootp bytes or more is plain BOOTP (`bootp`) when its hardware type and address length are
// set and chaddr is zero after the address.
bool parse(std::span<const uint8_t> datagram, Message& m);
// "DISCOVER", "ACK", ...; nullptr for a type without a name.
const char* type_name(uint8_t type);
// DHCPv4 as parse() reads it, or DHCPv6 as looks_like6() sees it.
Probe probe(std::span<const uint8_t> first, Dir dir);

}  // namespace dhcp
}  // namespace medmon
