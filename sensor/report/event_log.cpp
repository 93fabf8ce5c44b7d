#include "sensor/report/event_log.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace medmon::report {

std::string str(const nlohmann::json& j, const char* key, const std::string& fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

const nlohmann::json& member(const nlohmann::json& j, const char* key) {
  static const nlohmann::json empty = nlohmann::json::object();
  if (!j.is_object()) return empty;
  auto it = j.find(key);
  return it == j.end() ? empty : *it;
}

uint64_t num(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return 0;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_number_integer()) { int64_t v = it->get<int64_t>(); return v < 0 ? 0 : static_cast<uint64_t>(v); }
  double d = it->get<double>();
  // Converting a double out of uint64_t's range is undefined: clamp (2^64 is exact in a double).
  if (!(d > 0)) return 0;
  if (d >= 18446744073709551616.0) return UINT64_MAX;
  return static_cast<uint64_t>(d);
}

std::string flow_app(const nlohmann::json& f) {
  std::string app = str(f, "app");
  // A protocol nDPI only guessed from the port is not what the flow carried (docs/policy.md).
  // (A "guessed" that is not a boolean, in a damaged file, is no guess: value() would throw.)
  const nlohmann::json& ndpi = member(f, "ndpi");
  bool guessed = false;
  if (ndpi.is_object())
    if (auto g = ndpi.find("guessed"); g != ndpi.end() && g->is_boolean()) guessed = g->get<bool>();
  if (app.empty() && !guessed) app = str(ndpi, "protocol");
  // NetBIOS.SMBv23: the session service only carries the application nDPI names second (as the
  // asset tracker names the service).
  if (app == "NetBIOS" && !str(ndpi, "app").empty()) app = str(ndpi, "app");
  if (app.empty() || app == "Unknown") app = "unknown";
  std::transform(app.begin(), app.end(), app.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return app;
}

uint64_t flow_port(const nlohmann::json& f) {
  std::string proto = str(f, "proto");
  return proto == "icmp" || proto == "icmp6" ? 0 : num(f, "dst_port");
}

namespace {

// The time and type of an event as medmon writes it, `{"ts":"...","event_type":"...",`, without
// parsing the line; false for a line that does not start so (or whose values hold escapes).
bool peek_header(std::string_view line, std::string_view& ts, std::string_view& type) {
  auto quoted = [&](std::string_view prefix, std::string_view& value) {
    if (line.substr(0, prefix.size()) != prefix) return false;
    line.remove_prefix(prefix.size());
    size_t end = line.find_first_of("\"\\");
    if (end == std::string_view::npos || line[end] != '"') return false;
    value = line.substr(0, end);
    line.remove_prefix(end + 1);
    return true;
  };
  return quoted("{\"ts\":\"", ts) && quoted(",\"event_type\":\"", type);
}

}  // namespace

void EventLog::add_line(std::string_view line) {
  ++lines;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (line.empty()) return;
  // An event the report does not read is not built into a DOM (its size is many times the line's):
  // checked to be JSON, so that a damaged line still makes the report incomplete, and counted.
  if (std::string_view ts, type; peek_header(line, ts, type) && type != "flow" && type != "alert" && type != "asset" &&
                                 type != "stats") {
    if (!nlohmann::json::accept(line)) {
      if (!bad_lines++) first_bad_line = lines;
      return;
    }
    ++events;
    if (!ts.empty()) {
      if (first_ts.empty() || ts < first_ts) first_ts = ts;
      if (ts > last_ts) last_ts = ts;
    }
    return;
  }
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    if (!bad_lines++) first_bad_line = lines;
    return;
  }
  ++events;
  std::string ts = str(j, "ts");
  if (!ts.empty()) {
    if (first_ts.empty() || ts < first_ts) first_ts = ts;
    if (ts > last_ts) last_ts = ts;
  }
  std::string type = str(j, "event_type");
  if (type == "flow") flows.push_back(std::move(j));
  else if (type == "alert") alerts.push_back(std::move(j));
  else if (type == "asset") assets.push_back(std::move(j));
  else if (type == "stats") stats = std::move(j);
}

bool EventLog::load(const std::string& path, std::string& err) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) { err = path + ": cannot open: " + std::strerror(EISDIR); return false; }
  errno = 0;
  std::ifstream in(path);
  if (!in) { err = path + ": cannot open: " + std::strerror(errno ? errno : EIO); return false; }
  source = path;
  std::string line;
  while (std::getline(in, line)) add_line(line);
  return true;
}

bool EventLog::load_range(int fd, int64_t begin, int64_t end, std::string& err) {
  std::string buf, line;
  buf.resize(1 << 20);
  for (int64_t at = begin; at < end;) {
    size_t want = static_cast<size_t>(std::min<int64_t>(end - at, static_cast<int64_t>(buf.size())));
    ssize_t n = ::pread(fd, buf.data(), want, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { err = std::string("cannot read the events back: ") + std::strerror(errno); return false; }
    if (n == 0) break;  // cut short since: what is there is read
    at += n;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    for (size_t nl; (nl = chunk.find('\n')) != std::string_view::npos; chunk.remove_prefix(nl + 1)) {
      if (line.empty()) {
        add_line(chunk.substr(0, nl));
      } else {
        line.append(chunk.substr(0, nl));
        add_line(line);
        line.clear();
      }
    }
    line.append(chunk);
  }
  if (!line.empty()) add_line(line);
  return true;
}

}  // namespace medmon::report
