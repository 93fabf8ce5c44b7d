#include "sensor/common/types.h"

#include <arpa/inet.h>

#include <ctime>

namespace medmon {

char* write_rfc3339(char* p, Timestamp ts) {
  int64_t sec = ts.usec >= 0 ? ts.usec / 1000000 : (ts.usec - 999999) / 1000000;
  int64_t frac = ts.usec - sec * 1000000;
  // Cache the formatted second: consecutive events share it.
  thread_local int64_t cached_sec = INT64_MIN;
  thread_local char cached[24];
  if (sec != cached_sec) {
    time_t t = static_cast<time_t>(sec);
    struct tm tm {};
    if (!gmtime_r(&t, &tm)) tm = {};
    // Fixed width: years outside 0000-9999 (only in forged headers) are clamped.
    int year = tm.tm_year + 1900;
    if (year < 0) year = 0;
    if (year > 9999) year = 9999;
    auto two = [](char* d, int v) { d[0] = static_cast<char>('0' + v / 10); d[1] = static_cast<char>('0' + v % 10); };
    two(cached, year / 100);
    two(cached + 2, year % 100);
    cached[4] = '-';
    two(cached + 5, tm.tm_mon + 1);
    cached[7] = '-';
    two(cached + 8, tm.tm_mday);
    cached[10] = 'T';
    two(cached + 11, tm.tm_hour);
    cached[13] = ':';
    two(cached + 14, tm.tm_min);
    cached[16] = ':';
    two(cached + 17, tm.tm_sec);
    cached_sec = sec;
  }
  std::memcpy(p, cached, 19);
  p += 19;
  *p++ = '.';
  for (int i = 6; i >= 1; --i) { p[i - 1] = static_cast<char>('0' + frac % 10); frac /= 10; }
  p += 6;
  *p++ = 'Z';
  return p;
}

void append_rfc3339(std::string& out, Timestamp ts) {
  char buf[kRfc3339Len];
  out.append(buf, static_cast<size_t>(write_rfc3339(buf, ts) - buf));
}

std::string format_rfc3339(Timestamp ts) {
  std::string s;
  append_rfc3339(s, ts);
  return s;
}

bool IpAddr::parse(std::string_view text, IpAddr& out) {
  std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.b.data()) == 1) { a.family = 4; out = a; return true; }
  if (inet_pton(AF_INET6, s.c_str(), a.b.data()) == 1) { a.family = 6; out = a; return true; }
  return false;
}

char* IpAddr::write_to(char* p) const {
  if (family == 4) {
    // Hand-rolled: inet_ntop is measurably slow on the event path.
    for (int i = 0; i < 4; ++i) {
      unsigned v = b[i];
      if (v >= 100) { *p++ = static_cast<char>('0' + v / 100); v %= 100; *p++ = static_cast<char>('0' + v / 10); v %= 10; }
      else if (v >= 10) { *p++ = static_cast<char>('0' + v / 10); v %= 10; }
      *p++ = static_cast<char>('0' + v);
      if (i < 3) *p++ = '.';
    }
  } else if (family == 6) {
    char buf[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, b.data(), buf, sizeof buf)) {
      size_t n = std::strlen(buf);
      std::memcpy(p, buf, n);
      p += n;
    }
  }
  return p;
}

void IpAddr::append_to(std::string& out) const {
  char buf[kIpTextMax];
  out.append(buf, static_cast<size_t>(write_to(buf) - buf));
}

std::string IpAddr::to_string() const {
  std::string s;
  append_to(s);
  return s;
}

const char* l4_name(uint8_t proto) {
  switch (proto) {
    case 6: return "tcp";
    case 17: return "udp";
    case 1: return "icmp";
    case 58: return "icmp6";
    default: return "ip";
  }
}

bool parse_mac(std::string_view s, MacAddr& out) {
  if (s.size() != 17) return false;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  MacAddr m{};
  for (size_t i = 0; i < 6; ++i) {
    int hi = hex(s[3 * i]), lo = hex(s[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':' && s[3 * i + 2] != '-')) return false;
    m[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  out = m;
  return true;
}

}  // namespace medmon
