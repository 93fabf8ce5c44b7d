#pragma once
// Text forms shared by the DHCPv4 and DHCPv6 parsers: identifiers as hex, relay ids as text when
// printable, DNS names in wire format (RFC 1035 labels, no compression) as dotted text.
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

namespace medmon::dhcp {

inline std::string hex_of(std::span<const uint8_t> v) {
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
inline std::string printable_or_hex(std::span<const uint8_t> v) {
  bool printable = !v.empty() && std::all_of(v.begin(), v.end(), [](uint8_t b) { return b >= 0x20 && b < 0x7F; });
  return printable ? std::string(v.begin(), v.end()) : hex_of(v);
}

// One name in DNS wire format from the start of `name`, as dotted text; `used` is set to the
// bytes it took (its terminating zero included, when there is one). A label running past the
// end, or longer than 63 (compression pointers are not allowed here), ends the name where it is.
inline std::string dns_wire_name(std::span<const uint8_t> name, size_t* used = nullptr) {
  std::string out;
  size_t i = 0;
  while (i < name.size()) {
    uint8_t len = name[i++];
    if (len == 0) break;
    if (len > 63 || i + len > name.size()) { i = name.size(); break; }
    if (!out.empty()) out.push_back('.');
    out.append(reinterpret_cast<const char*>(name.data() + i), len);
    i += len;
  }
  if (used) *used = i;
  return out;
}

}  // namespace medmon::dhcp
