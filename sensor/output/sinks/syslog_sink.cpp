#include "sensor/output/sinks/syslog_sink.h"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "medmon_version.h"
#include "sensor/output/sinks/sink_error.h"

namespace medmon {

int syslog_facility(const std::string& name) {
  static const char* names[] = {"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
                                "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
                                "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"};
  for (int i = 0; i < 24; ++i) if (name == names[i]) return i;
  if (!name.empty() && name.size() <= 2 && std::all_of(name.begin(), name.end(), ::isdigit)) {
    int v = std::stoi(name);
    if (v <= 23) return v;
  }
  return -1;
}

namespace {
int severity_rank(std::string_view s) {
  if (s == "critical") return 2;  // crit
  if (s == "high") return 3;      // err
  if (s == "medium") return 4;    // warning
  if (s == "low") return 5;       // notice
  return 6;                       // info
}

// The alert's severity string without parsing the whole line (it is a fixed key of the alert).
std::string_view alert_severity(std::string_view line) {
  auto p = line.find("\"severity\":\"");
  if (p == std::string_view::npos) return {};
  p += 12;
  auto e = line.find('"', p);
  return e == std::string_view::npos ? std::string_view{} : line.substr(p, e - p);
}

std::string field(std::string_view v, size_t max) {
  std::string o;
  for (unsigned char c : v) {
    if (o.size() >= max) break;
    o.push_back(c > 32 && c < 127 ? char(c) : '_');
  }
  return o.empty() ? "-" : o;
}
}  // namespace

int syslog_severity(std::string_view type, std::string_view line) {
  if (type == "alert") return severity_rank(alert_severity(line));
  if (type == "anomaly") return 5;
  return 6;
}

std::string format_rfc5424(int facility, int severity, std::string_view ts, std::string_view host,
                           std::string_view app, std::string_view procid, std::string_view msgid,
                           std::string_view sd, std::string_view msg) {
  std::string s = fmt::format("<{}>1 {} {} {} {} {} {}", facility * 8 + severity, field(ts, 32), field(host, 255),
                              field(app, 48), field(procid, 128), field(msgid, 32), sd.empty() ? "-" : sd);
  if (!msg.empty()) {
    s.push_back(' ');
    s.append(msg);
  }
  return s;
}

std::string sd_escape(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '"' || c == '\\' || c == ']') o.push_back('\\');
    o.push_back(c);
  }
  return o;
}

std::string cef_header_escape(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '|') { o.push_back('\\'); o.push_back(c); }
    else if (c == '\n' || c == '\r') o.push_back(' ');
    else o.push_back(c);
  }
  return o;
}

std::string cef_ext_escape(std::string_view v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '=') { o.push_back('\\'); o.push_back(c); }
    else if (c == '\n') o += "\\n";
    else if (c == '\r') o += "\\r";
    else o.push_back(c);
  }
  return o;
}

std::string alert_to_cef(std::string_view line, std::string_view sensor_id) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("alert") || !j["alert"].is_object()) return {};
  const auto& a = j["alert"];
  auto str = [](const nlohmann::json& o, const char* k) -> std::string {
    auto it = o.find(k);
    if (it == o.end()) return {};
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number() || it->is_boolean()) return it->dump();
    return {};
  };
  std::string sev = str(a, "severity");
  int cef_sev = sev == "critical" ? 10 : sev == "high" ? 8 : sev == "medium" ? 5 : sev == "low" ? 3 : 1;
  std::string rule = str(a, "rule");
  if (rule.empty()) return {};
  std::string out = fmt::format("CEF:0|medmon|medmon|{}|{}|{}|{}|", cef_header_escape(MEDMON_VERSION),
                                cef_header_escape(rule), cef_header_escape(str(a, "message")), cef_sev);
  bool first = true;
  auto ext = [&](std::string_view k, const std::string& v) {
    if (v.empty()) return;
    if (!first) out.push_back(' ');
    first = false;
    out.append(k);
    out.push_back('=');
    out += cef_ext_escape(v);
  };
  // rt: the event's packet time in milliseconds since the epoch.
  std::string ts = str(j, "ts");
  struct tm tm{};
  unsigned usec = 0;
  if (ts.size() >= 26 && strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) {
    usec = unsigned(std::atoi(ts.c_str() + 20));
    ext("rt", std::to_string(int64_t(timegm(&tm)) * 1000 + usec / 1000));
  }
  ext("src", str(j, "src_ip"));
  ext("spt", str(j, "src_port"));
  ext("dst", str(j, "dst_ip"));
  ext("dpt", str(j, "dst_port"));
  std::string proto = str(j, "proto");
  for (auto& c : proto) c = char(std::toupper(static_cast<unsigned char>(c)));
  ext("proto", proto);
  ext("shost", str(j, "src_device"));
  ext("dhost", str(j, "dst_device"));
  ext("externalId", str(j, "flow_id"));
  ext("msg", str(a, "message"));
  ext("cat", rule.substr(0, rule.find('.')));
  ext("dvchost", std::string(sensor_id));
  std::string mds2;
  if (a.contains("mds2") && a["mds2"].is_array())
    for (auto& m : a["mds2"]) if (m.is_object()) mds2 += (mds2.empty() ? "" : ",") + str(m, "id");
  ext("cs1Label", "mds2");
  ext("cs1", mds2.empty() ? "-" : mds2);
  ext("cs2Label", "device");
  ext("cs2", str(a, "device"));
  ext("cs3Label", "peer");
  ext("cs3", str(a, "peer"));
  ext("cs4Label", "severity");
  ext("cs4", sev);
  std::string flows, phi;
  if (a.contains("evidence") && a["evidence"].is_object()) {
    const auto& e = a["evidence"];
    if (e.contains("flow_ids") && e["flow_ids"].is_array())
      for (auto& f : e["flow_ids"]) if (f.is_string()) flows += (flows.empty() ? "" : ",") + f.get<std::string>();
    if (e.contains("phi_fields") && e["phi_fields"].is_array())
      for (auto& f : e["phi_fields"]) if (f.is_string()) phi += (phi.empty() ? "" : ",") + f.get<std::string>();
  }
  if (!flows.empty()) { ext("cs5Label", "flowIds"); ext("cs5", flows); }
  if (!phi.empty()) { ext("cs6Label", "phiFields"); ext("cs6", phi); }
  return out;
}

namespace {
// Waits until the receiver has acknowledged every byte sent on a stream connection: the kernel
// took the messages, but a collector that goes away before its end has them loses them silently.
// false with `error` when the connection breaks, the receiver acknowledges nothing for
// `timeout_usec`, or the deadline passes; `unacked` then holds the bytes it has not acknowledged
// (UINT64_MAX when unknown).
// TCP: SIOCOUTQ is the bytes the receiver's kernel has not acknowledged. A unix stream socket:
// the memory of what the receiver has not yet read (each piece with its overhead: at least its
// bytes, so a resend from there repeats rather than loses), and a receiver that closes its end
// with unread data leaves ECONNRESET after freeing it: nothing then says how much it had read.
bool wait_acknowledged(int fd, bool local, int64_t timeout_usec, const Deadline* deadline, uint64_t& unacked,
                       std::string& error) {
  int64_t last_progress = steady_ns();
  int64_t before = -1;
  int wait_ms = 1;
  for (;;) {
    int q = 0;
    if (::ioctl(fd, SIOCOUTQ, &q) != 0) {
      unacked = UINT64_MAX;
      error = std::strerror(errno);
      return false;
    }
    unacked = uint64_t(q);
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
      if (local) unacked = UINT64_MAX;
      error = std::strerror(err);
      return false;
    }
    if (q == 0) return true;
    int64_t now = steady_ns();
    if (before < 0 || q < before) last_progress = now;
    before = q;
    if (now - last_progress > timeout_usec * 1000) {
      error = fmt::format("{} bytes not acknowledged for {} s", q, timeout_usec / 1000000.0);
      return false;
    }
    if (deadline && now >= deadline->load(std::memory_order_relaxed)) {
      error = "drain_timeout reached";
      return false;
    }
    pollfd p{fd, 0, 0};  // POLLERR and POLLHUP come unasked: a reset connection
    if (::poll(&p, 1, wait_ms) > 0 && (p.revents & (POLLERR | POLLHUP))) {
      err = 0;
      len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      ::ioctl(fd, SIOCOUTQ, &q);
      unacked = local && err ? UINT64_MAX : uint64_t(q);
      error = err ? std::strerror(err) : "connection closed by the receiver";
      return false;
    }
    wait_ms = std::min(wait_ms * 2, 50);
  }
}

// Whether the receiver has closed its end (a syslog collector sends nothing, so anything
// readable is the end) or the connection failed: sending on would lose messages.
bool peer_gone(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLERR | POLLHUP));
}
}  // namespace

SyslogBackend::SyslogBackend(const SinkSpec& spec, std::string sensor_id)
    : spec_(spec), facility_(syslog_facility(spec.facility)), sensor_id_(std::move(sensor_id)) {
  std::string e = parse_url(spec.url, url_, 514);
  if (!e.empty()) throw SinkConfigError(e);
  char h[256] = {};
  ::gethostname(h, sizeof h - 1);
  // The sensor id names the sender when set: a fleet's collector tells sensors apart by it.
  host_ = sensor_id_.empty() ? std::string(h) : sensor_id_;
  pid_ = std::to_string(::getpid());
}

SyslogBackend::~SyslogBackend() {
  if (fd_ >= 0) ::close(fd_);
}

std::string SyslogBackend::message(const Record& r) const {
  int sev = syslog_severity(r.type, r.line);
  std::string sd = sensor_id_.empty() ? "" : "[medmon@32473 sensor=\"" + sd_escape(sensor_id_) + "\"]";
  std::string_view ts;
  if (r.line.rfind("{\"ts\":\"", 0) == 0 && r.line.size() > 34) ts = std::string_view(r.line).substr(7, 27);
  if (spec_.format == "cef") {
    if (r.type != "alert") return {};
    std::string cef = alert_to_cef(r.line, sensor_id_);
    if (cef.empty()) return {};
    return format_rfc5424(facility_, sev, ts, host_, "medmon", pid_, "alert", sd, cef);
  }
  return format_rfc5424(facility_, sev, ts, host_, "medmon", pid_, r.type, sd, r.line);
}

uint64_t SyslogBackend::take_skipped() {
  uint64_t n = uint64_t(std::count(skipped_.begin(), skipped_.end(), true));
  skipped_.assign(skipped_.size(), false);
  return n;
}

bool SyslogBackend::deliver(const std::vector<Record>& batch, std::string& error) {
  if (batch.empty()) return true;
  if (batch.front().run != batch_run_ || batch.front().seq != batch_seq_) {
    batch_run_ = batch.front().run;
    batch_seq_ = batch.front().seq;
    sent_ = 0;
    skipped_.assign(batch.size(), false);
  }
  skipped_.resize(batch.size(), false);
  const bool stream_wanted = url_.scheme == "tcp";
  if (fd_ >= 0 && type_ == SOCK_STREAM && peer_gone(fd_)) {
    ::close(fd_);
    fd_ = -1;
  }
  if (fd_ < 0) {
    fd_ = connect_url(url_, stream_wanted ? SOCK_STREAM : SOCK_DGRAM, spec_.timeout_usec, error, &type_, deadline_);
    if (fd_ < 0) return false;
    conn_bytes_ = 0;
  }
  // A stream: a message counts as delivered once the receiver acknowledged its last byte (TCP),
  // or read it (a unix stream socket).
  const bool stream = type_ == SOCK_STREAM, local = url_.scheme == "unix";
  std::vector<std::pair<size_t, uint64_t>> ends;  // message, connection bytes up to its end
  std::string framed;
  bool ok = true;
  for (; sent_ < batch.size(); ++sent_) {
    std::string m = message(batch[sent_]);
    if (m.empty()) { skipped_[sent_] = true; continue; }
    if (type_ == SOCK_STREAM) {
      framed = std::to_string(m.size()) + ' ' + m;  // RFC 6587 octet counting
      size_t took = 0;
      ok = send_all(fd_, framed, spec_.timeout_usec, deadline_, error, &took);
      // The part of a message cut short is in the kernel's unacknowledged bytes too: left out of
      // the connection's bytes, it would move the acknowledged point back over whole messages
      // the receiver has, and send them again.
      conn_bytes_ += took;
      if (ok) ends.emplace_back(sent_, conn_bytes_);
    } else {
      int e = send_datagram(fd_, m, spec_.timeout_usec, deadline_, error);
      if (e == EMSGSIZE) { skipped_[sent_] = true; continue; }  // larger than a datagram may be: dropped
      ok = e == 0;
    }
    if (!ok) break;
  }
  uint64_t unacked = 0;
  if (ok && stream && !ends.empty()) ok = wait_acknowledged(fd_, local, spec_.timeout_usec, deadline_, unacked, error);
  else if (!ok && stream) {
    // A unix receiver that went away freed what it had not read: the queue then says nothing.
    int q = 0;
    unacked = !local && ::ioctl(fd_, SIOCOUTQ, &q) == 0 ? uint64_t(q) : UINT64_MAX;
  }
  if (!ok) {
    // What the receiver has not acknowledged is sent again on the next connection (a message it
    // had in part may then come twice).
    uint64_t acked_to = unacked > conn_bytes_ ? 0 : conn_bytes_ - unacked;
    for (const auto& [i, end] : ends)
      if (end > acked_to) { sent_ = i; break; }
    ::close(fd_);
    fd_ = -1;
    error = fmt::format("{}: {}", spec_.url, error);
    return false;
  }
  return true;
}

}  // namespace medmon
