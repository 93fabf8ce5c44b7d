#pragma once
// Small value types shared by every stage: packet time, IP addresses, directions.
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace medmon {

// Packet time in microseconds since the Unix epoch. Never the wall clock.
struct Timestamp {
  int64_t usec = 0;
  friend bool operator==(Timestamp a, Timestamp b) { return a.usec == b.usec; }
  friend auto operator<=>(Timestamp a, Timestamp b) { return a.usec <=> b.usec; }
};

// Packet time from a capture record's seconds and microseconds. A damaged or hostile file can
// hold any value there: seconds are clamped to years 0000-9999 (all RFC 3339 output can show)
// and microseconds to 0-999999, so that no arithmetic on packet times can overflow.
constexpr Timestamp packet_time(int64_t sec, int64_t usec) {
  constexpr int64_t kMinSec = -62167219200;  // 0000-01-01T00:00:00Z
  constexpr int64_t kMaxSec = 253402300799;  // 9999-12-31T23:59:59Z
  sec = sec < kMinSec ? kMinSec : sec > kMaxSec ? kMaxSec : sec;
  usec = usec < 0 ? 0 : usec > 999999 ? 999999 : usec;
  return Timestamp{sec * 1000000 + usec};
}

// RFC 3339, UTC, microseconds: 2024-01-01T08:00:00.000123Z
std::string format_rfc3339(Timestamp ts);
void append_rfc3339(std::string& out, Timestamp ts);
constexpr size_t kRfc3339Len = 27;
// Writes the kRfc3339Len characters at p; returns the end.
char* write_rfc3339(char* p, Timestamp ts);

// Direction of bytes relative to the flow's initiator (the client).
enum class Dir : uint8_t { to_server = 0, to_client = 1 };
inline Dir reverse(Dir d) { return d == Dir::to_server ? Dir::to_client : Dir::to_server; }
inline const char* dir_name(Dir d) { return d == Dir::to_server ? "to_server" : "to_client"; }

constexpr size_t kIpTextMax = 46;  // INET6_ADDRSTRLEN

// IPv4 or IPv6 address; IPv4 is stored in the first 4 bytes.
struct IpAddr {
  std::array<uint8_t, 16> b{};
  uint8_t family = 0;  // 4 or 6, 0 = none

  static IpAddr v4(const uint8_t* p) { IpAddr a; std::memcpy(a.b.data(), p, 4); a.family = 4; return a; }
  static IpAddr v6(const uint8_t* p) { IpAddr a; std::memcpy(a.b.data(), p, 16); a.family = 6; return a; }
  static bool parse(std::string_view text, IpAddr& out);
  std::string to_string() const;
  void append_to(std::string& out) const;
  // Writes the text form at p (room for kIpTextMax bytes); returns the end.
  char* write_to(char* p) const;

  friend bool operator==(const IpAddr& x, const IpAddr& y) { return x.family == y.family && x.b == y.b; }
  friend auto operator<=>(const IpAddr& x, const IpAddr& y) {
    if (auto c = x.family <=> y.family; c != 0) return c;
    return x.b <=> y.b;
  }
};

// An Ethernet address written "00:1a:2b:3c:4d:5e" (or with '-', either case), as sites and events
// write it. False for anything else.
using MacAddr = std::array<uint8_t, 6>;
bool parse_mac(std::string_view text, MacAddr& out);

enum class L4 : uint8_t { other = 0, icmp = 1, tcp = 6, udp = 17, icmp6 = 58 };
const char* l4_name(uint8_t proto);
inline bool is_icmp(uint8_t proto) { return proto == 1 || proto == 58; }
// TCP, UDP and SCTP have ports; an ICMP flow's "ports" are its echo identifier, new for every ping.
inline bool has_ports(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132; }

}  // namespace medmon
