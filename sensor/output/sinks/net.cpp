#include "sensor/output/sinks/net.h"

#include <netdb.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

namespace medmon {

namespace {
int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      o.push_back(char(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      o.push_back(' ');
    } else {
      o.push_back(s[i]);
    }
  }
  return o;
}

// Whether the drain deadline or the end of the whole request (steady_ns(); INT64_MAX: none) has
// passed, with `err` saying which.
bool out_of_time(const Deadline* deadline, int64_t request_end, int64_t now, std::string& err) {
  if (deadline && now >= deadline->load(std::memory_order_relaxed)) {
    err = "drain_timeout reached";
    return true;
  }
  if (now >= request_end) {
    err = "request_timeout reached";
    return true;
  }
  return false;
}

// Waits until the socket is ready for `events`: at most `timeout_usec` (then `err` = what_timed_out)
// and never past the deadline, which is read again every 100 ms since it may move meanwhile, nor
// past `request_end`.
bool wait_ready(int fd, short events, int64_t timeout_usec, const Deadline* deadline, const char* what_timed_out,
                std::string& err, int64_t request_end = INT64_MAX) {
  const int64_t until = steady_ns() + timeout_usec * 1000;
  for (;;) {
    int64_t now = steady_ns(), end = std::min(until, request_end);
    if (out_of_time(deadline, request_end, now, err)) return false;
    if (deadline) end = std::min(end, deadline->load(std::memory_order_relaxed));
    if (now >= until) { err = what_timed_out; return false; }
    int ms = int(std::clamp<int64_t>((end - now + 999999) / 1000000, 1, 100));
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno != EINTR) { err = std::strerror(errno); return false; }
    if (r > 0) return true;  // ready, or an error the next call reports
  }
}

bool past(const Deadline* deadline, std::string& err, int64_t request_end = INT64_MAX) {
  return out_of_time(deadline, request_end, steady_ns(), err);
}

// connect() bounded by the timeout (a dead LAN host would otherwise hold it for minutes).
bool timed_connect(int fd, const sockaddr* a, socklen_t len, int64_t usec, const Deadline* deadline, int64_t request_end,
                   std::string& err) {
  if (past(deadline, err, request_end)) return false;
  int r = ::connect(fd, a, len);
  if (r == 0) return true;
  if (errno != EINPROGRESS && errno != EAGAIN) { err = std::strerror(errno); return false; }
  if (!wait_ready(fd, POLLOUT, usec, deadline, "connection timed out", err, request_end)) return false;
  int e = 0;
  socklen_t el = sizeof e;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
  if (e) { err = std::strerror(e); return false; }
  return true;
}

// connect() of a non-blocking unix socket. A stream listener whose backlog is full (a stuck local
// syslog daemon) answers EAGAIN, and poll() does not tell when room frees up: tried again every
// 10 ms, up to the timeout and never past the deadline nor `request_end`, which a second stop
// signal brings forward. false with `err` empty and errno set when the connect failed, with `err`
// set when time ran out.
bool unix_connect(int fd, const sockaddr_un& a, int64_t usec, const Deadline* deadline, int64_t request_end,
                  std::string& err) {
  err.clear();
  const int64_t until = steady_ns() + usec * 1000;
  for (;;) {
    if (past(deadline, err, request_end)) return false;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) return true;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return false;
    if (steady_ns() >= until) { err = "connection timed out (listen backlog full)"; return false; }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::atomic<Resolver> g_resolver{nullptr};

// One name lookup on its helper thread. Whoever of the two ends last frees it; a result nobody
// waits for any more is freed by the helper.
struct Lookup {
  std::mutex m;
  std::condition_variable cv;
  bool done = false, abandoned = false;
  int rc = 0;
  addrinfo* res = nullptr;
};

// getaddrinfo for the URL's host, at most `timeout_usec` and never past the deadline nor
// `request_end`. Returns false with `err` set.
bool resolve(const Url& u, int socktype, int64_t timeout_usec, const Deadline* deadline, int64_t request_end,
             addrinfo** res, std::string& err) {
  addrinfo hints{};
  hints.ai_socktype = socktype;
  hints.ai_family = AF_UNSPEC;
  const std::string port = std::to_string(u.port);
  // An address needs no lookup: no thread, nothing to wait for.
  hints.ai_flags = AI_NUMERICHOST;
  int r = ::getaddrinfo(u.host.c_str(), port.c_str(), &hints, res);
  if (r == 0) return true;
  if (r != EAI_NONAME) { err = fmt::format("{}: {}", u.host, gai_strerror(r)); return false; }
  hints.ai_flags = 0;
  if (past(deadline, err, request_end)) return false;
  auto job = std::make_shared<Lookup>();
  Resolver fn = g_resolver.load();
  if (!fn) fn = &::getaddrinfo;
  try {
    std::thread([job, fn, host = u.host, port, hints] {
      addrinfo* out = nullptr;
      int rc = fn(host.c_str(), port.c_str(), &hints, &out);
      std::lock_guard<std::mutex> g(job->m);
      if (job->abandoned) {
        if (rc == 0 && out) ::freeaddrinfo(out);
        return;
      }
      job->rc = rc;
      job->res = out;
      job->done = true;
      job->cv.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    err = fmt::format("{}: cannot resolve: {}", u.host, e.what());
    return false;
  }
  const int64_t until = steady_ns() + timeout_usec * 1000;
  std::unique_lock<std::mutex> lk(job->m);
  while (!job->done) {
    int64_t now = steady_ns();
    std::string why;
    if (!out_of_time(deadline, request_end, now, why) && now >= until) why = "name resolution timed out";
    if (!why.empty()) {
      job->abandoned = true;  // the helper frees what it gets
      err = fmt::format("{}: {}", u.host, why);
      return false;
    }
    // The deadline may move meanwhile (the sensor stopping): looked at again every 100 ms.
    int64_t wait = std::clamp<int64_t>(std::min(until, request_end) - now, 1000000, 100000000);
    job->cv.wait_for(lk, std::chrono::nanoseconds(wait));
  }
  if (job->rc != 0) { err = fmt::format("{}: {}", u.host, gai_strerror(job->rc)); return false; }
  *res = job->res;
  return true;
}

// send_all, ending also at `request_end`.
bool send_until(int fd, std::string_view d, int64_t timeout_usec, const Deadline* deadline, int64_t request_end,
                std::string& err, size_t* sent_bytes = nullptr) {
  if (sent_bytes) *sent_bytes = 0;
  while (!d.empty()) {
    // Checked on every call too: a receiver that takes a little at a time never times out.
    if (past(deadline, err, request_end)) return false;
    ssize_t n = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      d.remove_prefix(size_t(n));
      if (sent_bytes) *sent_bytes += size_t(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) { err = std::strerror(errno); return false; }
    if (!wait_ready(fd, POLLOUT, timeout_usec, deadline, "send timed out", err, request_end)) return false;
  }
  return true;
}
}  // namespace

void set_resolver(Resolver r) { g_resolver.store(r); }

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') o.push_back(char(c));
    else { o.push_back('%'); o.push_back(hex[c >> 4]); o.push_back(hex[c & 15]); }
  }
  return o;
}

std::string parse_url(const std::string& s, Url& u, uint16_t default_port) {
  u = Url{};
  if (s.rfind("unix:", 0) == 0) {
    u.scheme = "unix";
    std::string p = s.substr(5);
    if (p.rfind("//", 0) == 0) p = p.substr(2);
    if (p.empty() || p[0] != '/') return fmt::format("'{}': unix socket path must be absolute", s);
    if (p.size() >= sizeof(sockaddr_un::sun_path)) return fmt::format("'{}': unix socket path too long", s);
    u.path = p;
    return "";
  }
  auto se = s.find("://");
  if (se == std::string::npos) return fmt::format("'{}' is not a URL (scheme://host:port)", s);
  u.scheme = s.substr(0, se);
  std::string rest = s.substr(se + 3);
  size_t slash = rest.find_first_of("/?");
  std::string hostport = rest.substr(0, slash);
  std::string tail = slash == std::string::npos ? "" : rest.substr(slash);
  if (hostport.empty()) return fmt::format("'{}': no host", s);
  std::string portstr;
  if (hostport[0] == '[') {
    auto rb = hostport.find(']');
    if (rb == std::string::npos) return fmt::format("'{}': unterminated [IPv6 address]", s);
    u.host = hostport.substr(1, rb - 1);
    if (rb + 1 < hostport.size()) {
      if (hostport[rb + 1] != ':') return fmt::format("'{}': bad port", s);
      portstr = hostport.substr(rb + 2);
    }
  } else {
    auto c = hostport.rfind(':');
    u.host = hostport.substr(0, c);
    if (c != std::string::npos) portstr = hostport.substr(c + 1);
  }
  if (u.host.empty()) return fmt::format("'{}': no host", s);
  if (!portstr.empty()) {
    unsigned long p = 0;
    for (char c : portstr) {
      if (c < '0' || c > '9') return fmt::format("'{}': bad port '{}'", s, portstr);
      p = p * 10 + unsigned(c - '0');
      if (p > 65535) return fmt::format("'{}': bad port '{}'", s, portstr);
    }
    if (p == 0) return fmt::format("'{}': bad port '{}'", s, portstr);
    u.port = uint16_t(p);
  } else {
    u.port = default_port;
  }
  if (u.port == 0) return fmt::format("'{}': needs a port", s);
  auto q = tail.find('?');
  u.path = tail.substr(0, q);
  if (u.path.empty()) u.path = "/";
  if (q != std::string::npos) {
    std::string qs = tail.substr(q + 1);
    size_t p = 0;
    while (p <= qs.size()) {
      size_t amp = qs.find('&', p);
      if (amp == std::string::npos) amp = qs.size();
      std::string kv = qs.substr(p, amp - p);
      if (!kv.empty()) {
        auto eq = kv.find('=');
        u.query.emplace_back(url_decode(kv.substr(0, eq)), eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1)));
      }
      p = amp + 1;
    }
  }
  return "";
}

int connect_url(const Url& u, int socktype, int64_t timeout_usec, std::string& err, int* actual_type,
                const Deadline* deadline, int64_t request_end) {
  if (u.scheme == "unix") {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, u.path.data(), u.path.size());
    const int kinds[2] = {socktype, socktype == SOCK_DGRAM ? int(SOCK_STREAM) : int(SOCK_DGRAM)};
    for (int t : kinds) {
      int fd = ::socket(AF_UNIX, t | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) { err = std::strerror(errno); return -1; }
      if (unix_connect(fd, a, timeout_usec, deadline, request_end, err)) {
        if (actual_type) *actual_type = t;
        return fd;
      }
      int e = errno;
      if (!err.empty()) {  // out of time
        ::close(fd);
        err = fmt::format("{}: {}", u.path, err);
        return -1;
      }
      ::close(fd);
      err = fmt::format("{}: {}", u.path, std::strerror(e));
      if (e != EPROTOTYPE) return -1;  // only a socket of the other kind is worth a try
    }
    return -1;
  }
  addrinfo* res = nullptr;
  if (!resolve(u, socktype, timeout_usec, deadline, request_end, &res, err)) return -1;
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) { err = std::strerror(errno); continue; }
    std::string e;
    if (timed_connect(fd, ai->ai_addr, ai->ai_addrlen, timeout_usec, deadline, request_end, e)) break;
    err = fmt::format("{}:{}: {}", u.host, u.port, e);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return -1;
  // Stays non-blocking: every wait polls, bounded by the timeout and the deadline.
  if (actual_type) *actual_type = socktype;
  return fd;
}

bool send_all(int fd, std::string_view d, int64_t timeout_usec, const Deadline* deadline, std::string& err,
              size_t* sent_bytes) {
  return send_until(fd, d, timeout_usec, deadline, INT64_MAX, err, sent_bytes);
}

int send_datagram(int fd, std::string_view m, int64_t timeout_usec, const Deadline* deadline, std::string& err) {
  for (;;) {
    if (past(deadline, err)) return ETIMEDOUT;
    ssize_t n = ::send(fd, m.data(), m.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == ssize_t(m.size())) return 0;
    if (n >= 0) { err = "datagram cut short"; return EIO; }
    int e = errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) { err = std::strerror(e); return e; }
    if (!wait_ready(fd, POLLOUT, timeout_usec, deadline, "send timed out", err)) return ETIMEDOUT;
  }
}

bool http_request(const Url& server, const std::string& method, const std::string& target, std::string_view body,
                  int64_t timeout_usec, HttpResponse& resp, std::string& err, bool& sent, const Deadline* deadline,
                  int64_t request_timeout_usec) {
  sent = false;
  resp = HttpResponse{};
  // The whole request, reply included: a server that sends a byte now and then, each within
  // `timeout_usec`, would otherwise hold it for ever.
  const int64_t request_end = request_timeout_usec > 0 ? steady_ns() + request_timeout_usec * 1000 : INT64_MAX;
  int fd = connect_url(server, SOCK_STREAM, timeout_usec, err, nullptr, deadline, request_end);
  if (fd < 0) return false;
  std::string host = server.host.find(':') != std::string::npos ? "[" + server.host + "]" : server.host;
  std::string head = fmt::format("{} {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: medmon\r\nContent-Length: {}\r\n"
                                 "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                                 method, target, host, server.port, body.size());
  if (!send_until(fd, head, timeout_usec, deadline, request_end, err) ||
      !send_until(fd, body, timeout_usec, deadline, request_end, err)) {
    ::close(fd);
    return false;
  }
  sent = true;
  ::shutdown(fd, SHUT_WR);
  std::string in;
  char buf[16384];
  for (;;) {
    // A reply that trickles in waits for more after every piece: wait_ready ends it at
    // request_end.
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_ready(fd, POLLIN, timeout_usec, deadline, "no reply (timed out)", err, request_end)) continue;
      ::close(fd);
      return false;
    }
    if (n < 0) { err = std::strerror(errno); ::close(fd); return false; }
    if (n == 0) break;
    in.append(buf, size_t(n));
    if (in.size() > (16u << 20)) break;  // replies are small; never hold more than this
  }
  ::close(fd);
  auto he = in.find("\r\n\r\n");
  if (in.rfind("HTTP/1.", 0) != 0 || he == std::string::npos || in.size() < 12) {
    err = in.empty() ? "connection closed without a reply" : "malformed HTTP reply";
    return false;
  }
  resp.status = std::atoi(in.c_str() + 9);
  std::string headers = in.substr(0, he);
  for (auto& c : headers) c = char(std::tolower(static_cast<unsigned char>(c)));
  std::string raw = in.substr(he + 4);
  if (headers.find("transfer-encoding: chunked") != std::string::npos) {
    size_t p = 0;
    for (;;) {
      size_t e = raw.find("\r\n", p);
      if (e == std::string::npos) { err = "truncated chunked reply"; return false; }
      size_t len = std::strtoul(raw.c_str() + p, nullptr, 16);
      p = e + 2;
      if (len == 0) break;
      // Compared with what is left, not p + len: a size near 2^64 would wrap past the check and
      // append the rest of the reply again for every such line (memory without bound).
      if (len > raw.size() - p) { err = "truncated chunked reply"; return false; }
      resp.body.append(raw, p, len);
      p = std::min(raw.size(), p + len + 2);
    }
  } else {
    auto cl = headers.find("content-length:");
    if (cl != std::string::npos) {
      size_t len = std::strtoul(headers.c_str() + cl + 15, nullptr, 10);
      if (raw.size() < len) { err = "truncated reply"; return false; }
      raw.resize(len);
    }
    resp.body = std::move(raw);
  }
  return true;
}

}  // namespace medmon
