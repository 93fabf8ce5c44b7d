#pragma once
// Minimal client networking for the sinks: URLs, connecting with a timeout, HTTP/1.1 requests.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

// A connected socket (SOCK_STREAM or SOCK_DGRAM) with send/receive timeouts; -1 and `err` on
// failure. For unix URLs a datagram socket falls back to stream when the path wants that.
int connect_url(const Url& u, int socktype, int64_t timeout_usec, std::string& err, int* actual_type = nullptr);

bool send_all(int fd, std::string_view data, std::string& err);

struct HttpResponse {
  int status = 0;
  std::string body;
};

// One request on a fresh connection ("Connection: close"). `sent` tells whether the whole
// request left this host (so the server may have acted on it even when this returns false).
bool http_request(const Url& server, const std::string& method, const std::string& target,
                  std::string_view body, int64_t timeout_usec, HttpResponse& resp, std::string& err, bool& sent);

}  // namespace medmon
