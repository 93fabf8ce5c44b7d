#pragma once
// Builds frames for unit tests: Ethernet / VLAN / IPv4 / IPv6 / TCP / UDP, checksums left zero.
#include <cstdint>
#include <string>
#include <vector>

namespace medmon::test {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes& b, uint16_t v) { b.push_back(v >> 8); b.push_back(v & 0xFF); }
inline void put32(Bytes& b, uint32_t v) { put16(b, v >> 16); put16(b, v & 0xFFFF); }

inline Bytes tcp(uint16_t sp, uint16_t dp, uint32_t seq, uint32_t ack, uint8_t flags, const std::string& data = {}) {
  Bytes b;
  put16(b, sp); put16(b, dp); put32(b, seq); put32(b, ack);
  b.push_back(5 << 4); b.push_back(flags); put16(b, 65535); put16(b, 0); put16(b, 0);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

inline Bytes udp(uint16_t sp, uint16_t dp, const std::string& data) {
  Bytes b;
  put16(b, sp); put16(b, dp); put16(b, static_cast<uint16_t>(8 + data.size())); put16(b, 0);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

inline Bytes ipv4(uint32_t src, uint32_t dst, uint8_t proto, const Bytes& l4, uint16_t id = 1,
                  uint16_t frag = 0, uint8_t ihl_words = 5) {
  Bytes b;
  b.push_back(0x40 | ihl_words); b.push_back(0);
  put16(b, static_cast<uint16_t>(ihl_words * 4 + l4.size()));
  put16(b, id); put16(b, frag); b.push_back(64); b.push_back(proto); put16(b, 0);
  put32(b, src); put32(b, dst);
  for (int i = 5; i < ihl_words; ++i) put32(b, 0x01010101);  // NOP options
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

inline Bytes ipv6(const uint8_t src[16], const uint8_t dst[16], uint8_t next, const Bytes& payload) {
  Bytes b;
  put32(b, 0x60000000); put16(b, static_cast<uint16_t>(payload.size())); b.push_back(next); b.push_back(64);
  b.insert(b.end(), src, src + 16); b.insert(b.end(), dst, dst + 16);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

inline Bytes ether(uint16_t type, const Bytes& payload, std::vector<uint16_t> vlans = {}) {
  Bytes b = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
  for (size_t i = 0; i < vlans.size(); ++i) { put16(b, i == 0 && vlans.size() > 1 ? 0x88A8 : 0x8100); put16(b, vlans[i]); }
  put16(b, type);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

constexpr uint32_t ip4(int a, int b, int c, int d) { return uint32_t(a) << 24 | uint32_t(b) << 16 | uint32_t(c) << 8 | uint32_t(d); }

}  // namespace medmon::test
