#include "sensor/output/sinks/sink_config.h"

#include <yaml-cpp/yaml.h>

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "sensor/common/yaml_checks.h"
#include "sensor/output/sinks/clickhouse_sink.h"
#include "sensor/output/sinks/sink_error.h"
#include "sensor/output/sinks/syslog_sink.h"

namespace medmon {

bool parse_size(const std::string& s, uint64_t& out) {
  if (s.empty()) return false;
  size_t i = 0;
  uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + uint64_t(s[i++] - '0');
  }
  if (i == 0) return false;
  std::string unit = s.substr(i);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  unsigned shift = 0;
  if (unit.empty()) shift = 0;
  else if (unit == "k" || unit == "K") shift = 10;
  else if (unit == "M" || unit == "m") shift = 20;
  else if (unit == "G" || unit == "g") shift = 30;
  else if (unit == "T" || unit == "t") shift = 40;
  else return false;
  if (shift && v > (UINT64_MAX >> shift)) return false;
  out = v << shift;
  return true;
}

namespace {

[[noreturn]] void fail(const std::string& file, const YAML::Node& n, const std::string& what) {
  yaml_checks::fail<SinkConfigError>(file, n, what);
}

std::string scalar(const std::string& f, const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) fail(f, n, fmt::format("'{}' must be a single value", key));
  return n.as<std::string>();
}

double number(const std::string& f, const YAML::Node& n, const std::string& key, double min, double max) {
  return yaml_checks::number<SinkConfigError>(f, n, key, min, max);
}

// A whole number in [min, max]: a fraction is an error, not rounded down.
uint64_t count(const std::string& f, const YAML::Node& n, const std::string& key, uint64_t min, uint64_t max) {
  return yaml_checks::number<SinkConfigError>(f, n, key, min, max);
}

uint64_t size_value(const std::string& f, const YAML::Node& n, const std::string& key, uint64_t min) {
  uint64_t v = 0;
  if (!parse_size(scalar(f, n, key), v))
    fail(f, n, fmt::format("'{}' must be a size (bytes, or with k, M, G, T)", key));
  if (v < min) fail(f, n, fmt::format("'{}' must be at least {} bytes", key, min));
  return v;
}

using Handler = yaml_checks::Handler;
void mapping(const std::string& f, const YAML::Node& node, const std::string& name, const std::map<std::string, Handler>& keys) {
  yaml_checks::mapping<SinkConfigError>(f, node, name, keys);
}

void parse_rotate(const std::string& f, const YAML::Node& n, RotateSettings& r, const std::string& name) {
  mapping(f, n, name, {
    {"size", [&](const YAML::Node& v) { r.size = size_value(f, v, "size", 4096); }},
    {"interval", [&](const YAML::Node& v) { r.interval_usec = int64_t(number(f, v, "interval", 1, 86400.0 * 366) * 1e6); }},
    {"keep", [&](const YAML::Node& v) { r.keep = unsigned(count(f, v, "keep", 0, 100000)); }},
    {"naming", [&](const YAML::Node& v) {
      std::string s = scalar(f, v, "naming");
      if (s != "number" && s != "timestamp") fail(f, v, "'naming' must be 'number' or 'timestamp'");
      r.timestamp_names = s == "timestamp"; }},
  });
}

// The server URL of a syslog or ClickHouse sink read as the sink will read it (host, port, the
// ClickHouse db and table prefix): a bad one is a configuration error, told with the other
// configuration errors before any capture socket is opened, not when the sinks are made.
void check_server_url(const SinkSpec& s) {
  if (s.type == "syslog") (void)SyslogBackend(s, s.name);
  else if (s.type == "clickhouse") (void)ClickHouseBackend(s, s.name);
}

void check_fields(SinkSpec& s);

// Errors of the URL point at its `url:` line, the others at the sink's entry.
void check(SinkSpec& s, const std::string& f, const YAML::Node& n) {
  try {
    check_fields(s);
  } catch (const SinkConfigError& e) {
    fail(f, n, e.what());
  }
  try {
    check_server_url(s);
  } catch (const SinkConfigError& e) {
    const YAML::Node url = n["url"] ? n["url"] : n["path"] ? n["path"] : n;
    fail(f, url, e.what());
  }
}

SinkSpec parse_sink_node(const std::string& f, const YAML::Node& n) {
  SinkSpec s;
  const YAML::Mark m = n.Mark();
  s.where = fmt::format("{}:{}:{}", f, m.line + 1, m.column + 1);
  if (!n.IsMap()) fail(f, n, "each entry of 'sinks' must be a mapping with a 'type'");
  if (!n["type"]) fail(f, n, "sink without 'type' (stdout, file, syslog or clickhouse)");
  mapping(f, n, "sinks", {
    {"type", [&](const YAML::Node& v) { s.type = scalar(f, v, "type"); }},
    {"name", [&](const YAML::Node& v) { s.name = scalar(f, v, "name"); }},
    {"url", [&](const YAML::Node& v) { s.url = scalar(f, v, "url"); }},
    {"path", [&](const YAML::Node& v) { s.url = scalar(f, v, "path"); }},
    {"format", [&](const YAML::Node& v) { s.format = scalar(f, v, "format"); }},
    {"facility", [&](const YAML::Node& v) { s.facility = scalar(f, v, "facility"); }},
    {"events", [&](const YAML::Node& v) {
      if (v.IsScalar()) { s.events = {v.as<std::string>()}; return; }
      if (!v.IsSequence()) fail(f, v, "'events' must be a list of event types");
      if (v.size() == 0) fail(f, v, "'events' lists no event type (leave it out to send all)");
      for (const auto& e : v) s.events.push_back(scalar(f, e, "events")); }},
    {"queue", [&](const YAML::Node& v) { s.queue = size_t(count(f, v, "queue", 1, 100'000'000)); }},
    {"queue_bytes", [&](const YAML::Node& v) { s.queue_bytes = size_value(f, v, "queue_bytes", 65536); }},
    {"batch", [&](const YAML::Node& v) { s.batch = size_t(count(f, v, "batch", 1, 1'000'000)); }},
    {"flush_interval", [&](const YAML::Node& v) { s.flush_usec = int64_t(number(f, v, "flush_interval", 0.001, 3600) * 1e6); }},
    {"spool", [&](const YAML::Node& v) { s.spool_dir = scalar(f, v, "spool"); }},
    {"spool_max", [&](const YAML::Node& v) { s.spool_max = size_value(f, v, "spool_max", 65536); }},
    {"timeout", [&](const YAML::Node& v) { s.timeout_usec = int64_t(number(f, v, "timeout", 0.01, 600) * 1e6); }},
    {"request_timeout", [&](const YAML::Node& v) {
      s.request_timeout_usec = int64_t(number(f, v, "request_timeout", 0.1, 86400) * 1e6); }},
    {"drain_timeout", [&](const YAML::Node& v) { s.drain_usec = int64_t(number(f, v, "drain_timeout", 0, 86400) * 1e6); }},
    {"rotate", [&](const YAML::Node& v) { parse_rotate(f, v, s.rotate, "rotate"); }},
  });
  check(s, f, n);
  return s;
}

// Names the sinks that have none after their type: "syslog", then "syslog2", "syslog3", ...,
// skipping names other sinks have, since the name is also the spool sub-directory.
void set_names(std::vector<SinkSpec>& sinks) {
  std::set<std::string> taken;
  for (const auto& s : sinks)
    if (!s.name.empty() && !taken.insert(s.name).second)
      throw SinkConfigError(fmt::format("{}: two sinks named '{}'", s.where, s.name));
  for (auto& s : sinks) {
    if (!s.name.empty()) continue;
    std::string name = s.type;
    for (int n = 2; taken.count(name); ++n) name = fmt::format("{}{}", s.type, n);
    s.name = name;
    taken.insert(name);
  }
}

}  // namespace

void validate_sink(SinkSpec& s) {
  check_fields(s);
  check_server_url(s);
}

namespace {
void check_fields(SinkSpec& s) {
  static const char* types[] = {"stdout", "file", "syslog", "clickhouse"};
  bool known = false;
  for (auto* t : types) known = known || s.type == t;
  if (!known) throw SinkConfigError(fmt::format("unknown sink type '{}' (expected stdout, file, syslog or clickhouse)", s.type));
  for (char ch : s.name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-'))
      throw SinkConfigError(fmt::format("sink name '{}' may only hold letters, digits, '_' and '-'", s.name));
  if (s.type == "stdout") {
    if (!s.url.empty() && s.url != "-") throw SinkConfigError("sink 'stdout' takes no URL");
    s.url = "-";
  } else if (s.url.empty()) {
    throw SinkConfigError(fmt::format("sink '{}' needs a URL or path", s.type));
  }
  if (s.type == "syslog") {
    if (s.url.rfind("udp://", 0) != 0 && s.url.rfind("tcp://", 0) != 0 && s.url.rfind("unix:", 0) != 0)
      throw SinkConfigError(fmt::format("syslog URL '{}' must be udp://HOST:PORT, tcp://HOST:PORT or unix:/PATH", s.url));
    if (s.format != "json" && s.format != "cef")
      throw SinkConfigError(fmt::format("syslog format '{}' must be json or cef", s.format));
    if (syslog_facility(s.facility) < 0)
      throw SinkConfigError(fmt::format("unknown syslog facility '{}' (kern..local7 or 0..23)", s.facility));
    if (s.format == "cef") {
      if (s.events.empty()) s.events = {"alert"};
      for (auto& e : s.events)
        if (e != "alert") throw SinkConfigError("CEF carries alert events only: leave 'events' out or set it to [alert]");
    }
  } else if (s.format != "json") {
    throw SinkConfigError(fmt::format("'format' applies to syslog sinks only"));
  }
  if (s.type == "clickhouse" && s.url.rfind("http://", 0) != 0)
    throw SinkConfigError(fmt::format("clickhouse URL '{}' must start with http://", s.url));
  if (s.type != "file" && s.rotate.enabled()) throw SinkConfigError("'rotate' applies to file sinks only");
  // The event types medmon writes (docs/schema/<type>.json).
  static const std::set<std::string> event_types = {"flow", "alert", "asset", "anomaly", "stats", "dicom", "hl7",
                                                    "astm", "poct1", "sdc", "dhcp", "proprietary"};
  for (auto& e : s.events)
    if (!event_types.count(e))
      throw SinkConfigError(fmt::format("'{}' is not an event type (alert, anomaly, asset, astm, dhcp, dicom, flow, hl7, "
                                        "poct1, proprietary, sdc, stats)", e));
}
}  // namespace

bool parse_sink_key(const std::string& f, const std::string& key, const YAML::Node& v, SinkConfig& c) {
  if (key == "sensor_id") {
    c.sensor_id = scalar(f, v, "sensor_id");
    if (c.sensor_id.empty() || c.sensor_id.size() > 128) fail(f, v, "'sensor_id' must have 1 to 128 characters");
    for (char ch : c.sensor_id)
      if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f || ch == '"' || ch == '\\')
        fail(f, v, "'sensor_id' may not hold spaces, quotes, backslashes or control characters");
  } else if (key == "rotate") {
    parse_rotate(f, v, c.rotate, "rotate");
  } else if (key == "sinks") {
    if (!v.IsSequence()) fail(f, v, "'sinks' must be a list");
    for (const auto& n : v) c.sinks.push_back(parse_sink_node(f, n));
    set_names(c.sinks);
  } else {
    return false;
  }
  return true;
}

SinkSpec parse_sink_spec(const std::string& spec) {
  SinkSpec s;
  s.where = "--sink " + spec;
  // TYPE=URL,key=value,... ; a URL holding commas is not supported on the command line.
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t c = spec.find(',', start);
    parts.push_back(spec.substr(start, c == std::string::npos ? std::string::npos : c - start));
    if (c == std::string::npos) break;
    start = c + 1;
  }
  auto eq = parts[0].find('=');
  s.type = parts[0].substr(0, eq);
  if (eq != std::string::npos) s.url = parts[0].substr(eq + 1);
  auto bad = [&](const std::string& what) { throw SinkConfigError(fmt::format("--sink {}: {}", spec, what)); };
  auto num = [&](const std::string& k, const std::string& v, double min, double max) {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || !(d >= min && d <= max)) bad(fmt::format("'{}' must be a number between {} and {}", k, min, max));
    return d;
  };
  auto count = [&](const std::string& k, const std::string& v, double min, double max) {
    double d = num(k, v, min, max);
    if (d != std::floor(d)) bad(fmt::format("'{}' must be a whole number between {} and {}", k, min, max));
    return d;
  };
  for (size_t i = 1; i < parts.size(); ++i) {
    auto e = parts[i].find('=');
    if (e == std::string::npos) bad(fmt::format("'{}' is not key=value", parts[i]));
    std::string k = parts[i].substr(0, e), v = parts[i].substr(e + 1);
    uint64_t sz = 0;
    if (k == "name") s.name = v;
    else if (k == "format") s.format = v;
    else if (k == "facility") s.facility = v;
    else if (k == "events") {
      if (v.empty()) bad("'events' lists no event type (leave it out to send all)");
      size_t p = 0;
      for (;;) {
        size_t q = v.find('+', p);
        s.events.push_back(v.substr(p, q == std::string::npos ? std::string::npos : q - p));
        if (q == std::string::npos) break;
        p = q + 1;
      }
    } else if (k == "queue") s.queue = size_t(count(k, v, 1, 1e8));
    else if (k == "queue_bytes") { if (!parse_size(v, sz) || sz < 65536) bad("'queue_bytes' must be a size of at least 64k"); s.queue_bytes = sz; }
    else if (k == "batch") s.batch = size_t(count(k, v, 1, 1e6));
    else if (k == "flush_interval") s.flush_usec = int64_t(num(k, v, 0.001, 3600) * 1e6);
    else if (k == "spool") s.spool_dir = v;
    else if (k == "spool_max") { if (!parse_size(v, sz) || sz < 65536) bad("'spool_max' must be a size of at least 64k"); s.spool_max = sz; }
    else if (k == "timeout") s.timeout_usec = int64_t(num(k, v, 0.01, 600) * 1e6);
    else if (k == "request_timeout") s.request_timeout_usec = int64_t(num(k, v, 0.1, 86400) * 1e6);
    else if (k == "drain_timeout") s.drain_usec = int64_t(num(k, v, 0, 86400) * 1e6);
    else if (k == "rotate_size") { if (!parse_size(v, sz) || sz < 4096) bad("'rotate_size' must be a size of at least 4096"); s.rotate.size = sz; }
    else if (k == "rotate_interval") s.rotate.interval_usec = int64_t(num(k, v, 1, 86400.0 * 366) * 1e6);
    else if (k == "rotate_keep") s.rotate.keep = unsigned(count(k, v, 0, 100000));
    else bad(fmt::format("unknown option '{}' (name, format, facility, events, queue, queue_bytes, batch, flush_interval, spool, "
                         "spool_max, timeout, request_timeout, drain_timeout, rotate_size, rotate_interval, rotate_keep)", k));
  }
  try {
    validate_sink(s);
  } catch (const SinkConfigError& e) {
    bad(e.what());
  }
  return s;
}

void apply_sink_cli(const SinkCliOptions& o, SinkConfig& c) {
  if (!o.sensor_id.empty()) {
    for (char ch : o.sensor_id)
      if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f || ch == '"' || ch == '\\')
        throw SinkConfigError("--sensor-id may not hold spaces, quotes, backslashes or control characters");
    if (o.sensor_id.size() > 128) throw SinkConfigError("--sensor-id is longer than 128 characters");
    c.sensor_id = o.sensor_id;
  }
  if (!o.rotate_size.empty()) {
    uint64_t v = 0;
    if (!parse_size(o.rotate_size, v) || v < 4096)
      throw SinkConfigError(fmt::format("--rotate-size {}: a size of at least 4096 bytes (k, M, G suffixes)", o.rotate_size));
    c.rotate.size = v;
  }
  if (o.rotate_interval > 0) c.rotate.interval_usec = int64_t(std::llround(o.rotate_interval * 1e6));
  if (o.rotate_keep >= 0) c.rotate.keep = unsigned(o.rotate_keep);
  if (o.rotate_timestamp) c.rotate.timestamp_names = true;
  for (const auto& s : o.sinks) c.sinks.push_back(parse_sink_spec(s));
  for (const auto& s : o.syslog) c.sinks.push_back(parse_sink_spec("syslog=" + s));
  set_names(c.sinks);
  if (!o.spool_dir.empty())
    for (auto& s : c.sinks)
      if (s.spool_dir.empty() && (s.type == "syslog" || s.type == "clickhouse")) s.spool_dir = o.spool_dir + "/" + s.name;
}

}  // namespace medmon
