#include "sensor/decode/decoder.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace medmon {

namespace {
inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
inline uint32_t le32(const uint8_t* p) { return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }

// The window scale option of a SYN's options, -1 without one. Flow tracking takes the largest
// window a side can advertise from it (RFC 7323 caps the shift at 14).
int8_t window_scale(const uint8_t* opt, uint32_t len) {
  for (uint32_t i = 0; i < len;) {
    uint8_t kind = opt[i];
    if (kind == 0) break;  // end of options
    if (kind == 1) { ++i; continue; }  // no-op
    if (i + 1 >= len || opt[i + 1] < 2 || i + opt[i + 1] > len) break;
    if (kind == 3 && opt[i + 1] == 3) return static_cast<int8_t>(std::min<uint8_t>(opt[i + 2], 14));
    i += opt[i + 1];
  }
  return -1;
}

constexpr uint16_t ETH_IPV4 = 0x0800, ETH_IPV6 = 0x86DD, ETH_VLAN = 0x8100, ETH_QINQ = 0x88A8,
                   ETH_QINQ_OLD = 0x9100, ETH_PPPOE_SESSION = 0x8864, ETH_MPLS = 0x8847, ETH_MPLS_MC = 0x8848;
// Labels in one MPLS stack, at most (deeper is an anomaly).
constexpr int kMaxMplsLabels = 8;
// VLAN tags in one frame, at most (more is an anomaly: vlan.too_many_tags).
constexpr int kMaxVlanTags = 3;
// GRE payload types beyond IP: a whole Ethernet frame (gretap), ERSPAN type I/II and type III.
constexpr uint16_t GRE_TEB = 0x6558, GRE_ERSPAN = 0x88BE, GRE_ERSPAN3 = 0x22EB;
// Pseudo ethertype for inner(): the payload is an Ethernet frame.
constexpr uint16_t INNER_ETHERNET = 0;
// A Linux cooked capture's packet type for a frame sent to the link's broadcast address. The
// header holds the sender's address only: a frame the capturing host sent (type 4, outgoing)
// does not say whether it went to the broadcast address, and its address is the host's own, the
// right source MAC like any other type's, so that type changes nothing here.
constexpr uint16_t kSllBroadcast = 1;
// Tunnels inside tunnels, at most: deeper nesting is an anomaly, not a recursion.
constexpr int kMaxTunnelDepth = 3;
}  // namespace

bool linktype_supported(int dlt) {
  switch (dlt) {
    case linktype::NULL_: case linktype::EN10MB: case linktype::RAW: case linktype::RAW_OPENBSD:
    case linktype::LOOP: case linktype::LINUX_SLL: case linktype::LINUX_SLL2: case linktype::IPV4:
    case linktype::IPV6: case linktype::RAW_LT:
      return true;
    default:
      return false;
  }
}

FragmentTable::Key fragment_key(const Packet& p, uint32_t id) {
  // IPv6 fragments are not keyed by their Next Header: only the first fragment's counts (RFC
  // 8200 4.5), the others may carry any.
  FragmentTable::Key key{p.src, p.dst, id, p.ip_version == 6 ? uint8_t(0) : p.proto};
  key.vlan = p.vlan;  // tags beyond the first two are not kept
  return key;
}

Decoder::Decoder(int dlt, Counters& counters, AnomalyFn on_anomaly, FragmentLimits frag)
    : dlt_(dlt),
      counters_(counters),
      on_anomaly_(std::move(on_anomaly)),
      frags_(frag, counters),
      c_not_ip_(counters.at("decode.not_ip")),
      c_malformed_(counters.at("decode.malformed")),
      c_fragments_(counters.at("ip.fragments.seen")),
      c_tunnel_gre_(counters.at("decode.tunnel.gre")),
      c_tunnel_erspan_(counters.at("decode.tunnel.erspan")),
      c_tunnel_vxlan_(counters.at("decode.tunnel.vxlan")),
      c_tunnel_geneve_(counters.at("decode.tunnel.geneve")),
      c_tunnel_ip_(counters.at("decode.tunnel.ip_in_ip")),
      c_mpls_(counters.at("decode.mpls")) {}

DecodeStatus Decoder::bad(std::string_view name, uint32_t off, const Packet& out) {
  ++c_malformed_;
  if (on_anomaly_) on_anomaly_(name, off, out);
  return DecodeStatus::malformed;
}

void Decoder::note(std::string_view name, uint32_t off, const Packet& out) {
  if (on_anomaly_) on_anomaly_(name, off, out);
}

DecodeStatus Decoder::decode(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts, Packet& out) {
  out = Packet{};
  tunnel_depth_ = 0;
  out.ts = ts;
  out.cap_len = caplen;
  out.wire_len = wirelen;
  return link(frame, caplen, out);
}

DecodeStatus Decoder::link(const uint8_t* p, uint32_t len, Packet& out) {
  switch (dlt_) {
    case linktype::EN10MB:
      return ethernet(p, len, 0, out);
    case linktype::LINUX_SLL: {
      if (len < 16) return bad("sll.truncated", 0, out);
      uint16_t halen = be16(p + 4);
      if (be16(p + 2) == 1 && halen == 6) { out.has_mac = true; std::memcpy(out.src_mac.data(), p + 6, 6); }
      out.l2_broadcast = be16(p) == kSllBroadcast;
      return ether_payload(be16(p + 14), p + 16, len - 16, 16, out);
    }
    case linktype::LINUX_SLL2: {
      if (len < 20) return bad("sll2.truncated", 0, out);
      uint8_t halen = p[11];
      if (be16(p + 8) == 1 && halen == 6) { out.has_mac = true; std::memcpy(out.src_mac.data(), p + 12, 6); }
      out.l2_broadcast = p[10] == kSllBroadcast;
      return ether_payload(be16(p), p + 20, len - 20, 20, out);
    }
    case linktype::NULL_:
    case linktype::LOOP: {
      if (len < 4) return bad("loopback.truncated", 0, out);
      // DLT_NULL is in host byte order of the capturing machine; DLT_LOOP is network order.
      uint32_t family = dlt_ == linktype::LOOP ? be32(p) : le32(p);
      if (dlt_ == linktype::NULL_ && family > 0xFFFF) family = be32(p);
      switch (family) {
        case 2: return ipv4(p + 4, len - 4, 4, out);
        case 24: case 28: case 30: return ipv6(p + 4, len - 4, 4, out);  // AF_INET6 on BSDs / macOS
        default: ++c_not_ip_; return DecodeStatus::not_ip;
      }
    }
    case linktype::IPV4: return ipv4(p, len, 0, out);
    case linktype::IPV6: return ipv6(p, len, 0, out);
    default:  // raw IP: version from the first nibble
      return ip(p, len, 0, out);
  }
}

// An Ethernet frame: the capture's own, or one a tunnel carries.
DecodeStatus Decoder::ethernet(const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  if (len < 14) return bad("ethernet.truncated", off, out);
  out.has_mac = out.has_dst_mac = true;
  std::memcpy(out.dst_mac.data(), p, 6);
  std::memcpy(out.src_mac.data(), p + 6, 6);
  static constexpr std::array<uint8_t, 6> kBroadcast{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  out.l2_broadcast = out.dst_mac == kBroadcast;
  uint16_t type = be16(p + 12);
  if (type < 0x0600) {  // 802.3 length field: LLC/SNAP, not IP for our purposes
    ++c_not_ip_;
    return DecodeStatus::not_ip;
  }
  return ether_payload(type, p + 14, len - 14, off + 14, out);
}

DecodeStatus Decoder::ether_payload(uint16_t type, const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  for (int depth = 0; depth <= kMaxVlanTags; ++depth) {  // the tags, then what they carry
    switch (type) {
      case ETH_IPV4: return ipv4(p, len, off, out);
      case ETH_IPV6: return ipv6(p, len, off, out);
      case ETH_VLAN: case ETH_QINQ: case ETH_QINQ_OLD: {
        if (len < 4) return bad("vlan.truncated", off, out);
        uint16_t id = be16(p) & 0x0FFF;
        if (out.vlan_count < 2) out.vlan[out.vlan_count] = id;
        ++out.vlan_count;
        type = be16(p + 2);
        p += 4; len -= 4; off += 4;
        continue;
      }
      case ETH_MPLS:
      case ETH_MPLS_MC: {
        // Labels up to the bottom of the stack; then IP, told by its version nibble. What else
        // an MPLS network carries (an Ethernet pseudowire behind a control word) is not opened.
        for (int k = 0;; ++k) {
          if (k == kMaxMplsLabels) return bad("mpls.too_many_labels", off, out);
          if (len < 4) return bad("mpls.truncated", off, out);
          bool bottom = p[2] & 0x01;
          p += 4; len -= 4; off += 4;
          if (bottom) break;
        }
        ++c_mpls_;
        if (len >= 1 && (p[0] >> 4) == 4) return ipv4(p, len, off, out);
        if (len >= 1 && (p[0] >> 4) == 6) return ipv6(p, len, off, out);
        ++c_not_ip_;
        return DecodeStatus::not_ip;
      }
      case ETH_PPPOE_SESSION: {
        if (len < 8) return bad("pppoe.truncated", off, out);
        uint16_t plen = be16(p + 4);
        uint16_t ppp = be16(p + 6);
        if (plen < 2) return bad("pppoe.bad_length", off, out);
        uint32_t inner = std::min<uint32_t>(len - 8, plen - 2u);
        if (ppp == 0x0021) return ipv4(p + 8, inner, off + 8, out);
        if (ppp == 0x0057) return ipv6(p + 8, inner, off + 8, out);
        ++c_not_ip_;
        return DecodeStatus::not_ip;
      }
      default:
        ++c_not_ip_;
        return DecodeStatus::not_ip;
    }
  }
  return bad("vlan.too_many_tags", off, out);
}

DecodeStatus Decoder::ip(const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  if (len < 1) return bad("ip.truncated", off, out);
  switch (p[0] >> 4) {
    case 4: return ipv4(p, len, off, out);
    case 6: return ipv6(p, len, off, out);
    default: return bad("ip.bad_version", off, out);
  }
}

DecodeStatus Decoder::ipv4(const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  if (len < 20) return bad("ipv4.truncated", off, out);
  if ((p[0] >> 4) != 4) return bad("ipv4.bad_version", off, out);
  uint32_t ihl = (p[0] & 0x0F) * 4u;
  if (ihl < 20) return bad("ipv4.bad_header_length", off, out);
  if (ihl > len) return bad("ipv4.truncated_header", off, out);
  uint32_t total = be16(p + 2);
  if (total == 0) {
    // Segmentation offload on the capturing host hands the stack packets of any size with a
    // total length of 0: the packet is as long as the frame, as Wireshark reads it.
    counters_.add("ipv4.zero_total_length");
    total = len;
  }
  if (total < ihl) return bad("ipv4.bad_total_length", off, out);
  out.ip_version = 4;
  out.src = IpAddr::v4(p + 12);
  out.dst = IpAddr::v4(p + 16);
  out.proto = p[9];
  // Trim Ethernet padding; a snaplen-truncated packet keeps what was captured.
  if (total < len) len = total;
  else if (total > len) {
    // Short because of the snap length is normal; short on the wire is a lie in the header.
    if (!out.cut_short()) return bad("ipv4.total_length_beyond_packet", off, out);
    counters_.add("ipv4.truncated_payload");
    out.ip_cut = true;
  }
  uint16_t frag = be16(p + 6);
  bool more = frag & 0x2000;
  uint32_t frag_off = (frag & 0x1FFF) * 8u;
  if (more || frag_off) {
    ++c_fragments_;
    if (peek_only_) return peek_fragment(be16(p + 4), frag_off, more, p + ihl, len - ihl, out);
    if (total > len) {
      // Cut by the snap length, as a whole packet may be: counted, not held (the datagram
      // cannot be made whole from it).
      counters_.add("ip.fragments.truncated");
      return DecodeStatus::fragment;
    }
    if (frag_off + (len - ihl) > 65535) return bad("ipv4.fragment_beyond_64k", off, out);
    FragmentTable::Key key = fragment_key(out, be16(p + 4));
    bool conflict = false;
    auto r = frags_.add(key, fragment_time_ ? *fragment_time_ : out.ts, std::span<const uint8_t>(p, ihl), frag_off, more,
                        std::span<const uint8_t>(p + ihl, len - ihl), reassembled_, conflict,
                        fragment_time_ != nullptr);
    if (conflict) note("ipv4.fragment_overlap_conflict", off, out);
    if (r != FragmentTable::Result::complete) return DecodeStatus::fragment;
    // Rebuild a plain header: total length set, fragment fields cleared. The header is the first
    // fragment's, whose length may differ from this fragment's (options are not copied to every
    // fragment): the payload starts after it.
    uint32_t n = static_cast<uint32_t>(reassembled_.size());
    const uint32_t first_ihl = (reassembled_[0] & 0x0F) * 4u;
    reassembled_[2] = static_cast<uint8_t>(n >> 8);
    reassembled_[3] = static_cast<uint8_t>(n);
    reassembled_[6] = 0;
    reassembled_[7] = 0;
    out.reassembled = true;
    out.l3 = reassembled_.data();
    out.l3_len = n;
    return transport(reassembled_.data() + first_ihl, n - first_ihl, off + ihl, out);
  }
  out.l3 = p;
  out.l3_len = len;
  return transport(p + ihl, len - ihl, off + ihl, out);
}

DecodeStatus Decoder::ipv6(const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  if (len < 40) return bad("ipv6.truncated", off, out);
  if ((p[0] >> 4) != 6) return bad("ipv6.bad_version", off, out);
  out.ip_version = 6;
  out.src = IpAddr::v6(p + 8);
  out.dst = IpAddr::v6(p + 24);
  uint32_t plen = be16(p + 4);
  if (plen == 0 && len > 40) {
    // Segmentation offload on the capturing host (or a jumbogram): the payload is the rest of
    // the frame.
    counters_.add("ipv6.zero_payload_length");
    plen = len - 40;
  }
  bool truncated = false;
  if (40 + plen < len) len = 40 + plen;
  else if (40 + plen > len) {
    if (!out.cut_short()) return bad("ipv6.payload_length_beyond_packet", off, out);
    counters_.add("ipv6.truncated_payload");
    truncated = true;
    out.ip_cut = true;
  }
  // An extension header the snap length cut: the transport header after it is not there.
  auto cut_extension = [&] {
    counters_.add("ipv6.truncated_extension_headers");
    return DecodeStatus::truncated;
  };
  uint8_t next = p[6];
  uint32_t pos = 40;
  for (int n = 0; n < 16; ++n) {
    switch (next) {
      case 0: case 43: case 60: case 51: {  // hop-by-hop, routing, destination options, authentication
        if (pos + 8 > len) return truncated ? cut_extension() : bad("ipv6.truncated_extension", off + pos, out);
        uint32_t hlen = ipv6_extension_length(next, p[pos + 1]);
        if (pos + hlen > len) return truncated ? cut_extension() : bad("ipv6.bad_extension_length", off + pos, out);
        next = p[pos];
        pos += hlen;
        continue;
      }
      case 44: {  // fragment
        if (pos + 8 > len) return truncated ? cut_extension() : bad("ipv6.truncated_extension", off + pos, out);
        uint8_t inner = p[pos];
        uint16_t fo = be16(p + pos + 2);
        bool more = fo & 1;
        uint32_t frag_off = fo & 0xFFF8;
        uint32_t id = be32(p + pos + 4);
        pos += 8;
        if (!more && frag_off == 0) { next = inner; continue; }  // atomic fragment
        ++c_fragments_;
        out.proto = inner;
        if (peek_only_) return peek_fragment(id, frag_off, more, p + pos, len - pos, out);
        if (truncated) {
          counters_.add("ip.fragments.truncated");  // as an IPv4 fragment cut by the snap length
          return DecodeStatus::fragment;
        }
        // Rebuild with the 40-byte base header only, next header = the fragmented protocol.
        uint8_t hdr[40];
        std::memcpy(hdr, p, 40);
        hdr[6] = inner;
        FragmentTable::Key key = fragment_key(out, id);
        bool conflict = false;
        auto r = frags_.add(key, fragment_time_ ? *fragment_time_ : out.ts, std::span<const uint8_t>(hdr, 40), frag_off, more,
                            std::span<const uint8_t>(p + pos, len - pos), reassembled_, conflict,
                            fragment_time_ != nullptr);
        if (conflict) note("ipv6.fragment_overlap_conflict", off + pos, out);
        if (r != FragmentTable::Result::complete) return DecodeStatus::fragment;
        uint32_t total = static_cast<uint32_t>(reassembled_.size());
        uint32_t pl = total - 40;
        reassembled_[4] = static_cast<uint8_t>(pl >> 8);
        reassembled_[5] = static_cast<uint8_t>(pl);
        out.proto = reassembled_[6];  // the first fragment's Next Header, whichever came last
        out.reassembled = true;
        out.l3 = reassembled_.data();
        out.l3_len = total;
        // Headers after the fragment header (destination options, ...) are part of the
        // fragmented data: walked only now.
        const uint8_t* whole = reassembled_.data();
        uint32_t at = 40;
        for (int k = 0; is_ipv6_extension(out.proto); ++k) {
          if (k == 16) return bad("ipv6.too_many_extensions", off + pos, out);
          if (at + 8 > total) return bad("ipv6.truncated_extension", off + pos, out);
          uint32_t hlen = ipv6_extension_length(out.proto, whole[at + 1]);
          if (at + hlen > total) return bad("ipv6.bad_extension_length", off + pos, out);
          out.proto = whole[at];
          at += hlen;
        }
        if (out.proto == 44) return bad("ipv6.fragment_in_fragment", off + pos, out);
        if (at > 40) plain_ipv6(whole, whole + at, total - at, out);
        return transport(whole + at, total - at, off + 40, out);
      }
      default:
        out.proto = next;
        out.l3 = p;
        out.l3_len = len;
        if (pos > 40) plain_ipv6(p, p + pos, len - pos, out);
        return transport(p + pos, len - pos, off + pos, out);
    }
  }
  return bad("ipv6.too_many_extensions", off + pos, out);
}

// nDPI takes the transport protocol from the IP header and skips some IPv6 extension headers
// but not others (the authentication header): a TCP packet it read as protocol 51 would make it
// keep the flow's TCP state past ndpi_free_flow. It gets the base header with the transport
// protocol as next header, followed by the transport header: the protocol medmon decoded.
void Decoder::plain_ipv6(const uint8_t* base, const uint8_t* l4, uint32_t l4_len, Packet& out) {
  plain_l3_.resize(40 + l4_len);
  std::memcpy(plain_l3_.data(), base, 40);
  plain_l3_[4] = static_cast<uint8_t>(l4_len >> 8);
  plain_l3_[5] = static_cast<uint8_t>(l4_len);
  plain_l3_[6] = out.proto;
  std::memcpy(plain_l3_.data() + 40, l4, l4_len);
  out.l3 = plain_l3_.data();
  out.l3_len = 40 + l4_len;
}

DecodeStatus Decoder::peek_fragment(uint32_t id, uint32_t offset, bool more, const uint8_t* l4, uint32_t len,
                                    Packet& out) {
  peeked_ = FragmentPeek{};
  peeked_.id = id;
  peeked_.offset = offset;
  peeked_.length = len;
  peeked_.more = more;
  peeked_.l4_proto = out.proto;
  if (offset != 0) return DecodeStatus::fragment;
  // IPv6 headers after the fragment header: walked as far as this fragment holds them.
  uint8_t proto = out.proto;
  for (int k = 0; is_ipv6_extension(proto) && out.ip_version == 6 && k < 16; ++k) {
    uint32_t hlen = len < 8 ? 0 : ipv6_extension_length(proto, l4[1]);
    if (len < 8 || hlen > len) {
      peeked_.needs_more = true;
      return DecodeStatus::fragment;
    }
    proto = l4[0];
    l4 += hlen;
    len -= hlen;
  }
  peeked_.l4_proto = proto;
  if (is_tunnel_protocol(proto) || (proto == 17 && len >= 4 && is_tunnel_port(be16(l4 + 2)))) {
    // A tunnel: the datagram goes where its inner flow goes, which this first fragment names
    // (the inner headers are decoded as a packet cut short: the rest is in later fragments).
    const FragmentPeek mine = peeked_;
    Packet in;
    in.ts = out.ts;
    in.wire_len = 1;
    in.ip_cut = true;  // the datagram goes on in later fragments
    in.src = out.src;
    in.dst = out.dst;
    in.ip_version = out.ip_version;
    in.proto = proto;
    int depth = tunnel_depth_;
    DecodeStatus s = transport(l4, len, 0, in);
    tunnel_depth_ = depth;
    peeked_ = mine;
    if (s == DecodeStatus::ok) {
      peeked_.has_ports = true;
      peeked_.l4_proto = in.proto;
      peeked_.inner = true;
      peeked_.inner_src = in.src;
      peeked_.inner_dst = in.dst;
      out.sport = in.sport;
      out.dport = in.dport;
    } else if (s == DecodeStatus::truncated || s == DecodeStatus::malformed) {
      peeked_.needs_more = true;  // the inner headers may go on in the next fragment
    }
    return DecodeStatus::fragment;
  }
  // The ports transport() will read from the reassembled datagram, where this fragment has them.
  switch (proto) {
    case 6:
    case 17:
      if (len < 4) {
        peeked_.needs_more = true;
        break;
      }
      out.sport = be16(l4);
      out.dport = be16(l4 + 2);
      peeked_.has_ports = true;
      break;
    case 1:
    case 58: {
      if (len < 1) {
        peeked_.needs_more = true;
        break;
      }
      bool echo = proto == 1 ? (l4[0] == 8 || l4[0] == 0) : (l4[0] == 128 || l4[0] == 129);
      if (!echo) { peeked_.has_ports = true; break; }
      if (len < 8) {
        peeked_.needs_more = true;
        break;
      }
      out.sport = be16(l4 + 4);
      out.dport = out.sport;
      peeked_.has_ports = true;
      break;
    }
    default:
      break;
  }
  return DecodeStatus::fragment;
}

// RFC 2784/2890 GRE. Version 1 (PPTP's enhanced GRE) and source routing are not tunnels we
// open: left as GRE packets, like any other IP protocol.
DecodeStatus Decoder::gre(const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  auto as_is = [&] {
    out.payload = p;
    out.payload_len = len;
    return DecodeStatus::ok;
  };
  if (len < 4) return bad("gre.truncated", off, out);
  uint16_t flags = be16(p), type = be16(p + 2);
  if ((flags & 0x0007) != 0 || (flags & 0x4000)) return as_is();
  uint32_t hlen = 4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) + ((flags & 0x1000) ? 4 : 0);
  if (len < hlen) return bad("gre.truncated", off, out);
  const uint8_t* q = p + hlen;
  uint32_t n = len - hlen, at = off + hlen;
  switch (type) {
    case ETH_IPV4:
    case ETH_IPV6:
      ++c_tunnel_gre_;
      return inner(type, q, n, at, out);
    case GRE_TEB:
      ++c_tunnel_gre_;
      return inner(INNER_ETHERNET, q, n, at, out);
    case GRE_ERSPAN:
    case GRE_ERSPAN3: {
      ++c_tunnel_erspan_;
      // Type I has no ERSPAN header and no GRE sequence number. Otherwise the header's version
      // says its length, whichever GRE type announced it (as Wireshark reads it): version 1
      // (type II) 8 bytes; version 2 (type III) 12, then an 8-byte platform subheader when its
      // O bit is set. Both carry the T bit: the switch cut the mirrored frame.
      if (type == GRE_ERSPAN && !(flags & 0x1000)) return inner(INNER_ETHERNET, q, n, at, out);
      if (n < 8) return bad("erspan.truncated", at, out);
      uint32_t eh;
      switch (q[0] >> 4) {
        case 1: eh = 8; break;
        case 2:
          if (n < 12) return bad("erspan.truncated", at, out);
          eh = (q[11] & 0x01) ? 20 : 12;
          break;
        default: return bad("erspan.bad_version", at, out);
      }
      if (n < eh) return bad("erspan.truncated", at, out);
      if (q[2] & 0x04) out.mirror_cut = true;
      return inner(INNER_ETHERNET, q + eh, n - eh, at + eh, out);
    }
    default:
      return as_is();
  }
}

// VXLAN (RFC 7348, flags 0x08: a VNI is present) and Geneve (RFC 8926, version 0, with an
// Ethernet frame inside, or an IPv4 or IPv6 packet as cloud load balancers send it). A datagram
// on these ports that is neither stays a UDP datagram.
DecodeStatus Decoder::udp_tunnel(uint16_t port, const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  if (len < 8) return DecodeStatus::ok;
  if (port == kVxlanPort) {
    if ((p[0] & 0x08) == 0) return DecodeStatus::ok;
    ++c_tunnel_vxlan_;
    return inner(INNER_ETHERNET, p + 8, len - 8, off + 8, out);
  }
  uint16_t type = be16(p + 2);
  if ((p[0] >> 6) != 0 || (type != GRE_TEB && type != ETH_IPV4 && type != ETH_IPV6)) return DecodeStatus::ok;
  uint32_t hlen = 8 + (p[0] & 0x3Fu) * 4;
  if (len < hlen) return bad("geneve.truncated", off, out);
  ++c_tunnel_geneve_;
  return inner(type == GRE_TEB ? INNER_ETHERNET : type, p + hlen, len - hlen, off + hlen, out);
}

// The packet a tunnel carries, decoded in place of the outer one. Its addresses, ports and VLAN
// tags are the flow's; the outer Ethernet addresses are the tunnel endpoints', not the devices'.
DecodeStatus Decoder::inner(uint16_t type, const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  if (++tunnel_depth_ > kMaxTunnelDepth) return bad("tunnel.too_deep", off, out);
  auto at = reinterpret_cast<uintptr_t>(p), buf = reinterpret_cast<uintptr_t>(reassembled_.data());
  if (at >= buf && at < buf + reassembled_.size()) {
    // The payload lies in reassembled_, which an inner fragment would be reassembled into.
    tunnelled_.assign(p, p + len);
    p = tunnelled_.data();
  }
  Packet fresh;
  fresh.ts = out.ts;
  fresh.wire_len = out.wire_len;
  fresh.cap_len = out.cap_len;
  fresh.reassembled = out.reassembled;
  fresh.mirror_cut = out.mirror_cut;
  out = fresh;
  if (type != INNER_ETHERNET) return type == ETH_IPV4 ? ipv4(p, len, off, out) : ipv6(p, len, off, out);
  return ethernet(p, len, off, out);
}

DecodeStatus Decoder::transport(const uint8_t* p, uint32_t len, uint32_t off, Packet& out) {
  switch (out.proto) {
    case 6: {
      // A header cut by the snap length still gives ports, sequence numbers and flags when the
      // first 14 bytes are there: the packet counts in its flow, without payload.
      bool cut = len < 20;
      if (cut && !out.ip_cut) return bad("tcp.truncated_header", off, out);
      if (cut) counters_.add("tcp.truncated_header");
      if (len < 14) return DecodeStatus::truncated;
      out.sport = be16(p);
      out.dport = be16(p + 2);
      out.has_ports = true;
      out.seq = be32(p + 4);
      out.ack = be32(p + 8);
      uint32_t doff = (p[12] >> 4) * 4u;
      if (doff < 20) return bad("tcp.bad_data_offset", off, out);
      out.tcp_flags = p[13];
      if (cut) {
        out.payload = p + len;
        out.payload_len = 0;
        return DecodeStatus::ok;
      }
      if (doff > len) {
        // Options cut by the snap length are normal (the ports, sequence numbers and flags
        // are there); beyond a whole IP packet, the header lies, whether or not the frame was
        // cut after it (its padding, or a tunnel's outer frame).
        if (!out.ip_cut) return bad("tcp.data_offset_beyond_packet", off, out);
        counters_.add("tcp.truncated_options");
        out.payload = p + len;
        out.payload_len = 0;
        return DecodeStatus::ok;
      }
      if (out.tcp_flags & tcpflag::SYN) out.tcp_wscale = window_scale(p + 20, doff - 20);
      out.payload = p + doff;
      out.payload_len = len - doff;
      return DecodeStatus::ok;
    }
    case 17: {
      // Cut by the snap length: the ports are enough for the flow.
      if (len < 8 && !out.ip_cut) return bad("udp.truncated_header", off, out);
      if (len < 8) counters_.add("udp.truncated_header");
      if (len < 4) return DecodeStatus::truncated;
      out.sport = be16(p);
      out.dport = be16(p + 2);
      out.has_ports = true;
      if (len < 8) {
        out.payload = p + len;
        out.payload_len = 0;
        return DecodeStatus::ok;
      }
      uint32_t ulen = be16(p + 4);
      if (ulen < 8 && !(ulen == 0 && out.ip_version == 6)) return bad("udp.bad_length", off, out);
      uint32_t n = len - 8;
      if (ulen > len && !out.reassembled && !out.ip_cut) return bad("udp.length_beyond_packet", off, out);
      if (ulen >= 8 && ulen - 8 < n) n = ulen - 8;
      out.payload = p + 8;
      out.payload_len = n;
      if (is_tunnel_port(out.dport)) return udp_tunnel(out.dport, p + 8, n, off + 8, out);
      return DecodeStatus::ok;
    }
    case 47:
      return gre(p, len, off, out);
    case 4:
    case 41:
      ++c_tunnel_ip_;
      return inner(out.proto == 4 ? ETH_IPV4 : ETH_IPV6, p, len, off, out);
    case 1:
    case 58: {
      if (len < 4) return bad(out.proto == 1 ? "icmp.truncated" : "icmp6.truncated", off, out);
      out.icmp_type = p[0];
      out.icmp_code = p[1];
      out.has_ports = true;
      // Echo request/reply pairs share an identifier: use it as the "port" so they form one flow.
      bool echo = out.proto == 1 ? (p[0] == 8 || p[0] == 0) : (p[0] == 128 || p[0] == 129);
      if (echo && len >= 8) { out.sport = be16(p + 4); out.dport = out.sport; }
      out.payload = p + 4;
      out.payload_len = len - 4;
      return DecodeStatus::ok;
    }
    default:
      out.payload = p;
      out.payload_len = len;
      return DecodeStatus::ok;
  }
}

}  // namespace medmon
