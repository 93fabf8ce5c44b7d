#include "sensor/common/types.h"

#include <arpa/inet.h>

#include <ctime>

namespace medmon {

void append_rfc3339(std::string& out, Timestamp ts) {
  int64_t sec = ts.usec >= 0 ? ts.usec / 1000000 : (ts.usec - 999999) / 1000000;
  int64_t frac = ts.usec - sec * 1000000;
  // Cache the formatted second: consecutive events share it.
  thread_local int64_t cached_sec = INT64_MIN;
  thread_local char cached[24];
  if (sec != cached_sec) {
    time_t t = static_cast<time_t>(sec);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
    cached_sec = sec;
  }
  out.append(cached);
  char buf[9];
  buf[0] = '.';
  for (int i = 6; i >= 1; --i) { buf[i] = static_cast<char>('0' + frac % 10); frac /= 10; }
  buf[7] = 'Z';
  out.append(buf, 8);
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

void IpAddr::append_to(std::string& out) const {
  char buf[INET6_ADDRSTRLEN];
  if (family == 4) {
    // Hand-rolled: inet_ntop is measurably slow on the event path.
    char* p = buf;
    for (int i = 0; i < 4; ++i) {
      unsigned v = b[i];
      if (v >= 100) { *p++ = static_cast<char>('0' + v / 100); v %= 100; *p++ = static_cast<char>('0' + v / 10); v %= 10; }
      else if (v >= 10) { *p++ = static_cast<char>('0' + v / 10); v %= 10; }
      *p++ = static_cast<char>('0' + v);
      if (i < 3) *p++ = '.';
    }
    out.append(buf, static_cast<size_t>(p - buf));
  } else if (family == 6) {
    if (inet_ntop(AF_INET6, b.data(), buf, sizeof buf)) out.append(buf);
  }
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

}  // namespace medmon
