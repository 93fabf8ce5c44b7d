#include "sensor/report/event_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <cstdlib>
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

// Writes all of `bytes`; 0, or the errno of the write that failed.
int write_all(int fd, const char* bytes, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, bytes, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return errno;
    bytes += w;
    n -= static_cast<size_t>(w);
  }
  return 0;
}

// Reads the lines of fd and gives each (without its newline) to on_line: from offset `begin` with
// pread() up to `end` (-1: to the end of the file), or, when begin < 0, with read() to the end of
// the stream, copying every byte read to copy_to (when >= 0). A last line without a newline is
// given too, but not one an error cut. Returns the offset reached (the bytes read from a stream);
// `err` says why it stopped early (empty at the end, or when the file was cut short).
int64_t read_lines(int fd, int64_t begin, int64_t end, int copy_to, const std::function<void(std::string_view)>& on_line,
                   std::string& err) {
  std::string buf, line;
  buf.resize(1 << 20);
  int64_t at = begin < 0 ? 0 : begin;
  while (end < 0 || at < end) {
    size_t want = end < 0 ? buf.size() : static_cast<size_t>(std::min<int64_t>(end - at, static_cast<int64_t>(buf.size())));
    ssize_t n = begin < 0 ? ::read(fd, buf.data(), want) : ::pread(fd, buf.data(), want, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = std::strerror(errno);
      return at;
    }
    if (n == 0) break;  // the end (or cut short since: what is there is read)
    if (copy_to >= 0)
      if (int e = write_all(copy_to, buf.data(), static_cast<size_t>(n))) {
        err = std::string("cannot keep a copy to read again: ") + std::strerror(e);
        return at;
      }
    at += n;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    for (size_t nl; (nl = chunk.find('\n')) != std::string_view::npos; chunk.remove_prefix(nl + 1)) {
      if (line.empty()) {
        on_line(chunk.substr(0, nl));
      } else {
        line.append(chunk.substr(0, nl));
        on_line(line);
        line.clear();
      }
    }
    line.append(chunk);
  }
  if (!line.empty()) on_line(line);
  return at;
}

// Whether a flow event holds anything a site policy wrote (a device name, a verdict, a zone).
bool from_site(const nlohmann::json& e) {
  return e.contains("src_device") || e.contains("dst_device") || e.contains("verdict") || e.contains("src_zone") ||
         e.contains("dst_zone");
}

// The event of a line when it is of type `want`; a discarded value for any other line.
nlohmann::json parse_of(std::string_view line, std::string_view want) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
  if (std::string_view ts, type; peek_header(line, ts, type) && type != want) return nlohmann::json(nlohmann::json::value_t::discarded);
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || str(j, "event_type") != want)
    return nlohmann::json(nlohmann::json::value_t::discarded);
  return j;
}

}  // namespace

// Where the flows are read again from: an open file and the part of it the events were read from.
struct EventLog::Source {
  int fd = -1;
  bool owned = false;
  int64_t begin = 0, end = 0;
  ~Source() {
    if (owned && fd >= 0) ::close(fd);
  }
};

EventLog::EventLog() = default;
EventLog::~EventLog() = default;
EventLog::EventLog(EventLog&&) noexcept = default;
EventLog& EventLog::operator=(EventLog&&) noexcept = default;

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
  if (type == "flow") {
    ++flow_events;
    if (!flows_from_site && from_site(j)) flows_from_site = true;
    if (keep_lines_) flow_lines_.emplace_back(line);
  } else if (type == "alert") {
    alerts.push_back(std::move(j));
  } else if (type == "asset") {
    ++asset_events;
    if (keep_lines_) asset_lines_.emplace_back(line);
  } else if (type == "stats") {
    stats = std::move(j);
  }
}

bool EventLog::read_fd(int fd, int64_t begin, int64_t end, int copy_to) {
  keep_lines_ = false;
  std::string err;
  int64_t reached = read_lines(fd, begin, end, copy_to, [this](std::string_view l) { add_line(l); }, err);
  if (!err.empty() && read_error.empty()) {
    read_error = err;
    read_error_line = lines;
  }
  src_ = std::make_unique<Source>();
  src_->begin = copy_to >= 0 ? 0 : begin;
  src_->end = reached;
  return true;
}

bool EventLog::load(const std::string& path, std::string& err) {
  const bool std_in = path == "-";
  const std::string name = std_in ? std::string("standard input") : path;
  int fd = std_in ? ::dup(STDIN_FILENO) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) { err = name + ": cannot open: " + std::strerror(errno); return false; }
  struct stat st;
  if (::fstat(fd, &st) != 0) { err = name + ": cannot open: " + std::strerror(errno); ::close(fd); return false; }
  if (S_ISDIR(st.st_mode)) { err = name + ": cannot open: " + std::strerror(EISDIR); ::close(fd); return false; }
  source = name;
  if (S_ISREG(st.st_mode)) {
    // Read in place, and again from there (standard input from where the shell left it).
    off_t at = std_in ? ::lseek(fd, 0, SEEK_CUR) : 0;
    read_fd(fd, at < 0 ? 0 : at, -1, -1);
    src_->fd = fd;
    src_->owned = true;
    return true;
  }
  // A pipe, a terminal, a FIFO: read once, kept in an unlinked file to be read again.
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp && *tmp ? tmp : "/tmp";
  std::string spool = dir + "/medmon-events-XXXXXX";
  int copy = ::mkostemp(spool.data(), O_CLOEXEC);
  if (copy < 0) {
    err = fmt::format("{}: cannot create a file to read the events again under {}: {}", name, dir, std::strerror(errno));
    ::close(fd);
    return false;
  }
  ::unlink(spool.c_str());
  read_fd(fd, -1, -1, copy);
  ::close(fd);
  src_->fd = copy;
  src_->owned = true;
  return true;
}

bool EventLog::load_range(int fd, int64_t begin, int64_t end, std::string& err) {
  read_fd(fd, begin, end, -1);
  src_->fd = fd;
  if (!read_error.empty()) {
    err = "cannot read the events back: " + read_error;
    return false;
  }
  return true;
}

void EventLog::for_each_of(const char* type, const std::vector<std::string>& kept,
                          const std::function<void(const nlohmann::json&)>& fn) const {
  auto each = [&](std::string_view line) {
    nlohmann::json j = parse_of(line, type);
    if (!j.is_discarded()) fn(j);
  };
  if (!src_) {
    for (const std::string& l : kept) each(l);
    return;
  }
  std::string err;
  read_lines(src_->fd, src_->begin, src_->end, -1, each, err);
  if (!err.empty() && read_error.empty()) {
    read_error = err;
    read_error_line = lines;
  }
}

void EventLog::for_each_flow(const std::function<void(const nlohmann::json&)>& fn) const {
  for_each_of("flow", flow_lines_, fn);
}

void EventLog::for_each_asset(const std::function<void(const nlohmann::json&)>& fn) const {
  for_each_of("asset", asset_lines_, fn);
}

}  // namespace medmon::report
