#pragma once
// A decoded packet: views into the captured bytes (or into the fragment reassembler's buffer),
// valid until the next packet is decoded.
#include <array>
#include <cstdint>

#include "sensor/common/types.h"

namespace medmon {

namespace tcpflag {
constexpr uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10, URG = 0x20;
}

struct Packet {
  Timestamp ts;
  uint32_t wire_len = 0;  // frame length on the wire
  uint32_t cap_len = 0;   // bytes captured

  bool has_mac = false;      // src_mac is the sender's
  bool has_dst_mac = false;  // dst_mac too (Ethernet; Linux cooked captures give the sender only)
  std::array<uint8_t, 6> src_mac{}, dst_mac{};
  // The frame went to the link's broadcast address: Ethernet's ff:ff:ff:ff:ff:ff, or a Linux cooked
  // capture's packet type "broadcast" (which has no destination address to compare).
  bool l2_broadcast = false;
  uint8_t vlan_count = 0;
  std::array<uint16_t, 2> vlan{};  // outer first

  // Layer 3: the whole IP packet (header + payload), as nDPI wants it: an IPv6 packet without the
  // extension headers before its transport header, so that nDPI reads the protocol medmon did.
  const uint8_t* l3 = nullptr;
  uint32_t l3_len = 0;
  uint8_t ip_version = 0;
  IpAddr src, dst;
  bool reassembled = false;  // rebuilt from IP fragments
  bool mirror_cut = false;   // the mirroring switch cut the frame a tunnel carries (ERSPAN T bit)
  // Shorter than on the wire: lengths in headers may then point past what was captured.
  bool cut_short() const { return cap_len < wire_len || mirror_cut; }
  bool ip_cut = false;  // this IP packet's length points past what was captured (cut short, not a lie)

  // Layer 4
  uint8_t proto = 0;  // IP protocol number
  uint16_t sport = 0, dport = 0;
  bool has_ports = false;  // the transport header was read as far as the ports (0 for ICMP but echo)
  uint32_t seq = 0, ack = 0;
  uint8_t tcp_flags = 0;
  int8_t tcp_wscale = -1;  // a SYN's window scale option (RFC 7323, at most 14), -1 without one
  uint8_t icmp_type = 0, icmp_code = 0;
  const uint8_t* payload = nullptr;
  uint32_t payload_len = 0;
};

}  // namespace medmon
