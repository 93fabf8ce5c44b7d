#pragma once
// Minimal client networking for the sinks: URLs, connecting with a timeout, HTTP/1.1 requests.
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

struct addrinfo;  // <netdb.h>

namespace medmon {

struct Url {
  std::string scheme;      // udp, tcp, unix, http
  std::string host;        // without brackets
  uint16_t port = 0;
  std::string path = "/";  // http: path; unix: socket path
  std::vector<std::pair<std::string, std::string>> query;  // decoded
};

// Parses scheme://host[:port][/path][?query] and unix:/path. Returns an error message or "".
std::string parse_url(const std::string& s, Url& u, uint16_t default_port);

std::string url_encode(std::string_view s);

// The latest time a network operation may run to, on top of its own timeout: steady-clock
// nanoseconds, read again while the operation waits, so another thread may bring it forward
// (the sensor stopping, with its drain timeout). INT64_MAX: none. Passing it fails the operation
// with "drain_timeout reached".
using Deadline = std::atomic<int64_t>;
int64_t steady_ns();

// A connected non-blocking socket (SOCK_STREAM or SOCK_DGRAM); -1 and `err` on failure. For unix
// URLs a datagram socket falls back to stream when the path wants that. Connecting waits at most
// `timeout_usec` and never past the deadline (null: none) nor past `request_end` (steady_ns()).
int connect_url(const Url& u, int socktype, int64_t timeout_usec, std::string& err, int* actual_type = nullptr,
                const Deadline* deadline = nullptr, int64_t request_end = INT64_MAX);

// Host names are resolved on a helper thread, within the connect's timeout and deadline:
// getaddrinfo has no timeout of its own, and a DNS server that does not answer would hold it for
// as long as the resolver retries. Addresses are taken as they are, without it. For tests: the
// function that resolves names (null: getaddrinfo).
using Resolver = int (*)(const char* host, const char* service, const ::addrinfo* hints, ::addrinfo** res);
void set_resolver(Resolver r);

// Sends everything; fails when the socket takes nothing for `timeout_usec` or the deadline passes.
// `sent_bytes` (when given): how much of `data` the socket took, the part before a failure too.
bool send_all(int fd, std::string_view data, int64_t timeout_usec, const Deadline* deadline, std::string& err,
              size_t* sent_bytes = nullptr);

// Sends one datagram, waiting for room as send_all does. Returns 0 or the errno of the failure
// (EMSGSIZE: too large for a datagram; ETIMEDOUT: timeout or deadline, with `err` set).
int send_datagram(int fd, std::string_view msg, int64_t timeout_usec, const Deadline* deadline, std::string& err);

struct HttpResponse {
  int status = 0;
  std::string body;
};

// One request on a fresh connection ("Connection: close"). `sent` tells whether the whole
// request left this host (so the server may have acted on it even when this returns false).
// `timeout_usec` bounds the connect and each wait for the socket (send or reply);
// `request_timeout_usec` (0: none) and the deadline (null: none) the whole request, which then
// fails with "request_timeout reached" or "drain_timeout reached".
bool http_request(const Url& server, const std::string& method, const std::string& target,
                  std::string_view body, int64_t timeout_usec, HttpResponse& resp, std::string& err, bool& sent,
                  const Deadline* deadline = nullptr, int64_t request_timeout_usec = 0);

}  // namespace medmon
