#pragma once
// Link, network and transport decoding. Every read is bounds-checked against the captured
// length; malformed input is reported through the anomaly callback and the packet is counted
// and dropped, never trusted.
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "sensor/common/counters.h"
#include "sensor/decode/ip_fragments.h"
#include "sensor/decode/packet.h"

namespace medmon {

// libpcap DLT_* values medmon decodes.
namespace linktype {
constexpr int NULL_ = 0, EN10MB = 1, RAW = 12, RAW_OPENBSD = 14, LOOP = 108, LINUX_SLL = 113,
              LINUX_SLL2 = 276, IPV4 = 228, IPV6 = 229, RAW_LT = 101;
}
bool linktype_supported(int dlt);

enum class DecodeStatus : uint8_t {
  ok,          // IP packet decoded; out is valid
  not_ip,      // ARP, LLDP, ...: counted, nothing to do
  fragment,    // an IP fragment held for reassembly
  truncated,   // cut by the snap length before the headers that make its flow: counted, no anomaly
  malformed,   // reported as an anomaly
};

// What a peek-only decoder read from the last packet it reported as `fragment`: enough for the
// worker dispatcher to send every fragment of a datagram where the datagram's flow goes.
struct FragmentPeek {
  uint32_t id = 0;      // IPv4 identification, IPv6 fragment identification
  uint32_t offset = 0;  // in bytes
  uint32_t length = 0;  // the fragment's data bytes (after the IP header and fragment header)
  bool more = false;    // more fragments follow
  // First fragment whose L4 header gives the ports the whole datagram will decode with
  // (TCP/UDP ports, the ICMP echo identifier, 0 for other ICMP): they are set in the packet.
  bool has_ports = false;
  // The protocol those ports belong to: the packet's protocol, or for IPv6 the one after the
  // extension headers that follow the fragment header (when the first fragment holds them).
  uint8_t l4_proto = 0;
  // A tunnel whose first fragment names the flow inside: its addresses (the ports and l4_proto
  // above are the inner flow's then).
  bool inner = false;
  IpAddr inner_src, inner_dst;
  // A first fragment that ends before what names the flow (IPv6 extension headers, a transport
  // header or a tunnel's inner headers going on in the next fragment): only the datagram made
  // whole tells where it goes.
  bool needs_more = false;
};

// UDP destination ports of the tunnels decapsulated (VXLAN, Geneve).
constexpr uint16_t kVxlanPort = 4789, kGenevePort = 6081;
inline bool is_tunnel_port(uint16_t dport) { return dport == kVxlanPort || dport == kGenevePort; }
// IP protocols that carry tunnels: GRE, IPv4 and IPv6 in IP.
inline bool is_tunnel_protocol(uint8_t proto) { return proto == 47 || proto == 4 || proto == 41; }

// IPv6 extension headers that may stand between the fragment header and the transport header.
inline bool is_ipv6_extension(uint8_t next) { return next == 0 || next == 43 || next == 60 || next == 51; }
// Bytes of such a header, from its length byte: in 8-octet units beyond the first, except the
// authentication header's (51), in 4-octet units beyond the first two.
inline uint32_t ipv6_extension_length(uint8_t next, uint8_t length_byte) {
  return next == 51 ? (length_byte + 2u) * 4u : (length_byte + 1u) * 8u;
}

// The fragment table key of a fragment decoded into `p` (addresses, protocol and VLAN tags set;
// the protocol is not part of an IPv6 key).
FragmentTable::Key fragment_key(const Packet& p, uint32_t id);

class Decoder {
 public:
  // name: stable anomaly name ("ipv4.bad_header_length"); offset: byte offset in the frame.
  using AnomalyFn = std::function<void(std::string_view name, uint32_t offset, const Packet& partial)>;

  Decoder(int dlt, Counters& counters, AnomalyFn on_anomaly, FragmentLimits frag = {});
  DecodeStatus decode(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts, Packet& out);
  FragmentTable& fragments() { return frags_; }
  // The link type of the frames that follow (the next file's); held fragments are kept.
  void set_linktype(int dlt) { dlt_ = dlt; }
  // Addresses and ports only: fragments are reported as `fragment` (addresses and protocol
  // set, fragment fields in peeked_fragment()) without being held. Used to dispatch packets to
  // workers.
  void set_peek_only(bool v) { peek_only_ = v; }
  // The time the fragment table takes the next fragments at, instead of their own (nullptr: their
  // own). Events keep the packet's time. Set, the fragments come late: after others of a later
  // time (FragmentTable::add).
  void set_fragment_time(const Timestamp* t) { fragment_time_ = t; }
  const FragmentPeek& peeked_fragment() const { return peeked_; }

 private:
  DecodeStatus link(const uint8_t* p, uint32_t len, Packet& out);
  DecodeStatus ethernet(const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus ether_payload(uint16_t ethertype, const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus ip(const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus ipv4(const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus ipv6(const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus transport(const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  // Tunnels (GRE with ERSPAN I/II/III, transparent Ethernet or IP inside; VXLAN; Geneve; IP in
  // IP): the inner packet replaces the outer one, as Suricata and Zeek decapsulate, so that a
  // remote SPAN (ERSPAN) or an overlay network is analysed as the traffic it carries.
  DecodeStatus gre(const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus udp_tunnel(uint16_t port, const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus inner(uint16_t ethertype, const uint8_t* p, uint32_t len, uint32_t off, Packet& out);
  DecodeStatus peek_fragment(uint32_t id, uint32_t offset, bool more, const uint8_t* l4, uint32_t len, Packet& out);
  // Points out.l3 at a copy of the packet without its IPv6 extension headers.
  void plain_ipv6(const uint8_t* base, const uint8_t* l4, uint32_t l4_len, Packet& out);
  // An anomaly in a packet that is still used: reported, not counted as malformed.
  void note(std::string_view name, uint32_t off, const Packet& out);
  DecodeStatus bad(std::string_view name, uint32_t off, const Packet& out);

  int dlt_;
  Counters& counters_;
  AnomalyFn on_anomaly_;
  FragmentTable frags_;
  std::vector<uint8_t> reassembled_;
  std::vector<uint8_t> plain_l3_;  // an IPv6 packet as nDPI gets it, without extension headers
  std::vector<uint8_t> tunnelled_;  // a tunnel's payload taken out of reassembled_, which its own fragments reuse
  int tunnel_depth_ = 0;
  bool peek_only_ = false;
  const Timestamp* fragment_time_ = nullptr;
  FragmentPeek peeked_;
  uint64_t& c_not_ip_;
  uint64_t& c_malformed_;
  uint64_t& c_fragments_;
  uint64_t& c_tunnel_gre_;
  uint64_t& c_tunnel_erspan_;
  uint64_t& c_tunnel_vxlan_;
  uint64_t& c_tunnel_geneve_;
  uint64_t& c_tunnel_ip_;
  uint64_t& c_mpls_;
};

}  // namespace medmon
