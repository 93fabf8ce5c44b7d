#pragma once
// DHCPv6 (RFC 8415): the client/server messages and the relay messages that carry them, read
// into one Message6. An IPv6 device names itself here as a v4 one does with DHCPv4: its DUID
// (which, for the link-layer types, holds a hardware address), its FQDN (option 39), its vendor
// and user classes, and the options it asks for (the ORO, its fingerprint); a server's REPLY
// says which addresses (IA_NA, IA_TA) or prefixes (IA_PD) it has. Nothing read here is PHI.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sensor/common/types.h"

namespace medmon::dhcp {

enum MessageType6 : uint8_t {
  kSolicit = 1, kAdvertise = 2, kRequest = 3, kConfirm = 4, kRenew = 5, kRebind = 6, kReply = 7,
  kRelease = 8, kDecline = 9, kReconfigure = 10, kInformationRequest = 11, kRelayForw = 12, kRelayRepl = 13,
};

// An address (IA_NA, IA_TA: prefix_len 0) or a delegated prefix (IA_PD) and its lifetimes.
struct Lease6 {
  IpAddr address;
  uint8_t prefix_len = 0;
  uint32_t preferred = 0, valid = 0;
  int status = -1;  // the status code option inside it; -1 = none
};

// An identity association (options 3, 4, 25).
struct Ia6 {
  uint16_t option = 0;  // 3 IA_NA, 4 IA_TA, 25 IA_PD
  uint32_t iaid = 0;
  bool has_times = false;  // IA_TA has no T1/T2
  uint32_t t1 = 0, t2 = 0;
  std::vector<Lease6> leases;
  int status = -1;
  std::string status_message;
};

// One relay agent a message passed (RELAY-FORW) or is to pass (RELAY-REPL).
struct Relay6 {
  uint8_t type = 0;  // 12 or 13
  uint8_t hop_count = 0;
  IpAddr link_address, peer_address;  // :: is left unset (family 0)
  std::string interface_id;           // 18, text when printable, else hex
  std::string remote_id;              // 37 (RFC 4649) after its enterprise number, the same
};

struct Message6 {
  uint8_t type = 0;       // of the innermost message; a relay's own when it carries none
  uint32_t xid = 0;       // 24 bits; none in a relay message
  bool has_xid = false;
  std::vector<Relay6> relays;  // outermost first
  std::vector<uint8_t> client_duid, server_duid;  // 1, 2
  std::vector<uint16_t> oro;                      // 6, the options asked for in order
  bool has_elapsed = false;
  uint16_t elapsed = 0;  // 8, hundredths of a second
  bool has_preference = false;
  uint8_t preference = 0;  // 7
  bool rapid_commit = false;  // 14
  IpAddr unicast;             // 12: the server accepts unicast at this address
  std::string fqdn;           // 39, flags dropped, dotted text without a final dot
  bool has_vendor_class = false;
  uint32_t vendor_enterprise = 0;   // 16, the first instance (one is allowed per enterprise)
  std::vector<std::string> vendor_class;  // its vendor-class-data items, each text when printable else hex
  struct VendorClass {
    uint32_t enterprise = 0;
    std::vector<std::string> data;
  };
  std::vector<VendorClass> vendor_classes;  // every instance of 16 in order (at most kMaxList6)
  std::vector<std::string> user_class;  // 15, each item the same way, of every instance in order
  std::vector<Ia6> ia;
  int status = -1;  // 13 at message level; -1 = none
  std::string status_message;
  std::vector<IpAddr> dns_servers;        // 23
  std::vector<std::string> domain_search; // 24
  // What did not read cleanly; the message is still reported as far as it was read.
  std::vector<const char*> problems;
};

constexpr size_t kMinMessage6 = 4;        // type and transaction id
constexpr size_t kMinRelay6 = 34;         // type, hop count, link and peer address
constexpr size_t kMaxRelayDepth = 8;      // RFC 8415 HOP_COUNT_LIMIT: relays in one message
constexpr size_t kMaxIas = 8;             // identity associations per message
constexpr size_t kMaxLeases = 8;          // addresses or prefixes per identity association
constexpr size_t kMaxList6 = 8;           // DNS servers, search domains, user classes
constexpr size_t kMaxOro = 128;           // options asked for
constexpr size_t kMaxText6 = 255;         // one text (FQDN, class item, status message)

// False when the bytes are no DHCPv6 message (too short, type 0). Malformed options are
// problems, and the rest is read as far as it goes.
bool parse6(std::span<const uint8_t> datagram, Message6& m);
// Content detection, stricter than parse6: a known message type whose options fill the datagram
// exactly and hold what RFC 8415 requires of it (a client's elapsed time, a server's id, a
// relay's message, itself such a message).
bool looks_like6(std::span<const uint8_t> datagram);
// "SOLICIT", "RELAY-FORW", ...; nullptr for a type without a name.
const char* type_name6(uint8_t type);
// Whether a client (or a relay on its behalf, or a lease-query requestor) sends this type.
bool from_client6(uint8_t type);
// "LLT", "EN", "LL", "UUID"; nullptr for another DUID type or a DUID under 2 bytes.
const char* duid_type_name(std::span<const uint8_t> duid);
// The Ethernet address of a DUID-LLT or DUID-LL with hardware type 1; false for other DUIDs.
bool duid_mac(std::span<const uint8_t> duid, std::array<uint8_t, 6>& mac);
// "Success", "NoAddrsAvail", ...; nullptr for a code without a name.
const char* status_name6(int code);

}  // namespace medmon::dhcp
