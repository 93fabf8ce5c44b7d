#pragma once
// Configuration of the event sinks: rotation of the --out file and extra sinks (stdout, file,
// syslog, ClickHouse), from the `output:` section of the sensor YAML and from the command line.
#include <cstdint>
#include <string>
#include <vector>

namespace YAML { class Node; }

namespace medmon {

struct RotateSettings {
  uint64_t size = 0;            // bytes; 0 = no size rotation
  int64_t interval_usec = 0;    // packet time, aligned to multiples of it (UTC); 0 = none
  unsigned keep = 10;           // rotated files kept (0 = all)
  bool timestamp_names = false; // <file>.<UTC time of its first event> instead of <file>.<n>
  bool enabled() const { return size || interval_usec; }
  bool operator==(const RotateSettings&) const = default;
};

struct SinkSpec {
  std::string type;             // stdout, file, syslog, clickhouse
  std::string name;             // counter prefix: sink.<name>.*
  std::string url;              // file path, udp://h:p, tcp://h:p, unix:/path, http://h:p/?db=
  std::string format = "json";  // syslog: json (RFC 5424 with the event as MSG) or cef
  std::vector<std::string> events;  // event types sent; empty = all
  std::string facility = "local0";
  size_t queue = 65536;         // events held in memory before spooling
  uint64_t queue_bytes = 16u << 20;  // and their bytes
  size_t batch = 10000;         // events per delivery (ClickHouse INSERT)
  int64_t flush_usec = 1000000; // a partial batch leaves after this long
  std::string spool_dir;        // empty: a private temporary directory
  uint64_t spool_max = 1ull << 30;  // bytes on disk; beyond this new events are dropped
  int64_t timeout_usec = 5000000;   // connect/send/receive
  int64_t request_timeout_usec = 60000000;  // ClickHouse: one HTTP request, reply included
  int64_t drain_usec = 30000000;    // at exit, how long to wait for delivery
  RotateSettings rotate;        // type file
  std::string where;            // "file:line" or "--sink" for error messages
  bool operator==(const SinkSpec&) const = default;
};

struct SinkConfig {
  std::string sensor_id;
  RotateSettings rotate;        // the --out file
  std::vector<SinkSpec> sinks;
  bool empty() const { return sensor_id.empty() && !rotate.enabled() && sinks.empty(); }
  bool operator==(const SinkConfig&) const = default;
};

// Command-line options (registered by add_sink_options in sink_cli.h).
struct SinkCliOptions {
  std::vector<std::string> sinks;   // TYPE=URL[,key=value...]
  std::vector<std::string> syslog;  // URL[,key=value...]
  std::string sensor_id;
  std::string rotate_size;          // 100M, 1G, bytes
  double rotate_interval = 0;       // seconds
  int rotate_keep = -1;
  bool rotate_timestamp = false;
  std::string spool_dir;
};

// Parses one key of the YAML `output:` section that belongs to the sinks (sensor_id, rotate,
// sinks). Returns false when the key is not one of them. Throws ConfigError "file:line:col: ...".
bool parse_sink_key(const std::string& file, const std::string& key, const YAML::Node& value, SinkConfig& c);

// Applies the command-line options over the configuration. Throws ConfigError.
void apply_sink_cli(const SinkCliOptions& o, SinkConfig& c);

// "TYPE=URL[,key=value...]" (also "stdout"). Throws ConfigError.
SinkSpec parse_sink_spec(const std::string& spec);

// 100, 64k, 100M, 2G (powers of 1024). Returns false when malformed.
bool parse_size(const std::string& s, uint64_t& out);

// Checks a spec (known type, URL as the sink reads it, format) and fills its defaults. Throws
// SinkConfigError.
void validate_sink(SinkSpec& s);

}  // namespace medmon
