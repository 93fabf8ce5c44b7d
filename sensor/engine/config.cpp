#include "sensor/engine/config.h"

#include <yaml-cpp/yaml.h>

#include <ios>

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>

#include "sensor/common/yaml_checks.h"
#include "sensor/common/yaml_documents.h"
#include "sensor/output/sinks/sink_error.h"

namespace medmon {

bool parse_depth(const std::string& s, Depth& out) {
  static const std::map<std::string, Depth> names = {
      {"decode", Depth::decode}, {"flow", Depth::flow}, {"reassembly", Depth::reassembly},
      {"ndpi", Depth::ndpi}, {"dissect", Depth::dissect}, {"policy", Depth::policy}};
  auto it = names.find(s);
  if (it == names.end()) return false;
  out = it->second;
  return true;
}

namespace {

[[noreturn]] void fail(const std::string& file, const YAML::Node& n, const std::string& what) {
  yaml_checks::fail<ConfigError>(file, n, what);
}
template <class T>
T number(const std::string& file, const YAML::Node& n, const std::string& key, T min, T max) {
  return yaml_checks::number<ConfigError>(file, n, key, min, max);
}

// Seconds (may be fractional) to microseconds. positive: 0 is an error (a timeout of 0 would end
// every flow at its first packet).
int64_t seconds(const std::string& file, const YAML::Node& n, const std::string& key, bool positive = false) {
  double v = number<double>(file, n, key, 0.0, 86400.0 * 365);
  int64_t usec = static_cast<int64_t>(v * 1e6);
  if (positive && usec <= 0) fail(file, n, fmt::format("'{}' must be more than 0 seconds", key));
  return usec;
}

std::string text(const std::string& file, const YAML::Node& n, const std::string& key, bool empty_ok = false) {
  if (!n.IsScalar()) fail(file, n, fmt::format("'{}' must be a string", key));
  std::string s = n.as<std::string>();
  if (s.empty() && !empty_ok) fail(file, n, fmt::format("'{}' must not be empty", key));
  return s;
}

bool flag(const std::string& file, const YAML::Node& n, const std::string& key) {
  return yaml_checks::flag<ConfigError>(file, n, key);
}

using Handler = yaml_checks::Handler;
void section(const std::string& file, const YAML::Node& node, const std::string& name,
             const std::map<std::string, Handler>& keys) {
  yaml_checks::mapping<ConfigError>(file, node, name, keys);
}

// The sink keys of `output:` are checked by the sink library.
void sink_key(const std::string& file, const char* key, const YAML::Node& v, SensorConfig& c) {
  try {
    parse_sink_key(file, key, v, c.sinks);
  } catch (const SinkConfigError& e) {
    throw ConfigError(e.what());
  }
}

}  // namespace

SensorConfig load_config(const std::string& path) {
  SensorConfig c;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
    if (auto m = second_yaml_document(path))
      throw ConfigError(fmt::format("{}:{}:{}: a second YAML document: the configuration is one document", path,
                                    m->line + 1, m->column + 1));
  } catch (const YAML::BadFile&) {
    throw ConfigError(path + ": cannot read file");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(fmt::format("{}:{}:{}: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::ios_base::failure& e) {  // e.g. a directory given as the file
    throw ConfigError(path + ": cannot read file: " + e.what());
  }
  if (root.IsNull()) return c;
  const auto& f = path;
  YAML::Mark ring_mark;
  section(f, root, "top level", {
    {"flows", [&](const YAML::Node& n) { section(f, n, "flows", {
      {"max_flows", [&](const YAML::Node& v) { c.flows.max_flows = number<size_t>(f, v, "max_flows", 1, 100'000'000); }},
      {"tcp_idle_timeout", [&](const YAML::Node& v) { c.flows.tcp_idle_usec = seconds(f, v, "tcp_idle_timeout", true); }},
      {"tcp_closed_timeout", [&](const YAML::Node& v) { c.flows.tcp_closed_usec = seconds(f, v, "tcp_closed_timeout"); }},
      {"udp_idle_timeout", [&](const YAML::Node& v) { c.flows.udp_idle_usec = seconds(f, v, "udp_idle_timeout", true); }},
      {"absolute_timeout", [&](const YAML::Node& v) { c.flows.absolute_usec = seconds(f, v, "absolute_timeout", true); }},
    }); }},
    {"reassembly", [&](const YAML::Node& n) { section(f, n, "reassembly", {
      {"max_queued_bytes_per_direction", [&](const YAML::Node& v) { c.reassembly.max_queued_bytes = number<size_t>(f, v, "max_queued_bytes_per_direction", 1024, size_t(1) << 32); }},
      {"max_queued_segments_per_direction", [&](const YAML::Node& v) { c.reassembly.max_queued_segments = number<size_t>(f, v, "max_queued_segments_per_direction", 1, 1'000'000); }},
      {"memcap", [&](const YAML::Node& v) { c.reassembly_memcap = number<size_t>(f, v, "memcap", 65536, size_t(1) << 40); }},
      {"ack_gap_packets", [&](const YAML::Node& v) { c.reassembly.ack_gap_packets = number<uint32_t>(f, v, "ack_gap_packets", 1, 1'000'000); }},
      {"max_dissector_buffer", [&](const YAML::Node& v) { c.feeder.max_buffer = number<size_t>(f, v, "max_dissector_buffer", 4096, size_t(1) << 30); }},
      {"probe_hold_memcap", [&](const YAML::Node& v) { c.feeder.probe_hold_memcap = number<size_t>(f, v, "probe_hold_memcap", 0, size_t(1) << 40); }},
      {"held_memcap", [&](const YAML::Node& v) { c.feeder.held_memcap = number<size_t>(f, v, "held_memcap", 65536, size_t(1) << 40); }},
    }); }},
    {"fragments", [&](const YAML::Node& n) { section(f, n, "fragments", {
      {"max_datagrams", [&](const YAML::Node& v) { c.fragments.max_datagrams = number<size_t>(f, v, "max_datagrams", 1, 10'000'000); }},
      {"memcap", [&](const YAML::Node& v) { c.fragments.max_bytes = number<size_t>(f, v, "memcap", 65536, size_t(1) << 40); }},
      // 0 would drop every pending datagram at its next fragment: no reassembly at all.
      {"timeout", [&](const YAML::Node& v) { c.fragments.timeout_usec = seconds(f, v, "timeout", true); }},
    }); }},
    {"ndpi", [&](const YAML::Node& n) { section(f, n, "ndpi", {
      {"max_packets", [&](const YAML::Node& v) { c.ndpi.max_packets = number<uint32_t>(f, v, "max_packets", 1, 1000); }},
      {"max_flows_in_detection", [&](const YAML::Node& v) { c.ndpi.max_flows_in_detection = number<size_t>(f, v, "max_flows_in_detection", 1, 100'000'000); }},
    }); }},
    {"output", [&](const YAML::Node& n) { section(f, n, "output", {
      {"stats_interval", [&](const YAML::Node& v) {
         c.stats_interval_usec = seconds(f, v, "stats_interval");
         // Under a second a replay would write stats between nearly every packet (and under a
         // microsecond the value would round to 0, "only at the end"): as live's --stats-interval.
         if (v.as<double>() != 0 && c.stats_interval_usec < 1'000'000)
           fail(f, v, "'stats_interval' must be 0 (stats only at the end) or at least 1 second");
         c.stats_interval_set = true;
       }},
      {"phi", [&](const YAML::Node& v) {
        std::string m = text(f, v, "phi");
        if (m != "pseudonym" && m != "raw") fail(f, v, "'phi' must be 'pseudonym' or 'raw'");
        c.phi_mode = m; }},
      {"phi_key", [&](const YAML::Node& v) {
        c.phi_key = text(f, v, "phi_key");
        // The same minimum as a phi_key_file's key: a short key is guessed by trying them all.
        if (c.phi_key.size() < 16) fail(f, v, "'phi_key' must be at least 16 characters");
      }},
      {"phi_key_file", [&](const YAML::Node& v) {
         c.phi_key_file = text(f, v, "phi_key_file");
         c.phi_key_file_where = fmt::format("{}:{}:{}", f, v.Mark().line + 1, v.Mark().column + 1);
       }},
      {"community_id", [&](const YAML::Node& v) { c.community_id = flag(f, v, "community_id"); }},
      {"community_id_seed", [&](const YAML::Node& v) { c.community_id_seed = number<uint16_t>(f, v, "community_id_seed", 0, 65535); }},
      {"sensor_id", [&](const YAML::Node& v) { sink_key(f, "sensor_id", v, c); }},
      {"rotate", [&](const YAML::Node& v) { sink_key(f, "rotate", v, c); }},
      {"sinks", [&](const YAML::Node& v) { sink_key(f, "sinks", v, c); }},
    }); }},
    {"capture", [&](const YAML::Node& n) { section(f, n, "capture", {
      {"interface", [&](const YAML::Node& v) { c.capture.interface = text(f, v, "interface"); }},
      {"bpf", [&](const YAML::Node& v) {
         c.capture.bpf = text(f, v, "bpf", true);
         c.capture.bpf_where = fmt::format("{}:{}:{}", f, v.Mark().line + 1, v.Mark().column + 1);
       }},
      {"snaplen", [&](const YAML::Node& v) { c.capture.snaplen = number<int>(f, v, "snaplen", 64, 262144); }},
      {"promisc", [&](const YAML::Node& v) { c.capture.promisc = flag(f, v, "promisc"); }},
      {"method", [&](const YAML::Node& v) {
        std::string m = text(f, v, "method");
        if (m != "afpacket" && m != "pcap") fail(f, v, "'method' must be 'afpacket' or 'pcap'");
        c.capture.method = m; }},
      {"workers", [&](const YAML::Node& v) { c.capture.workers = number<int>(f, v, "workers", 1, 64); }},
      {"ring_size", [&](const YAML::Node& v) {
        ring_mark = v.Mark();
        c.capture.ring_size = number<size_t>(f, v, "ring_size", size_t(1) << 20, size_t(1) << 36); }},
      {"block_size", [&](const YAML::Node& v) {
        size_t b = number<size_t>(f, v, "block_size", 4096, size_t(1) << 27);
        // The kernel wants page-aligned blocks; a power of two keeps them aligned on any page size.
        if (b & (b - 1)) fail(f, v, "'block_size' must be a power of two");
        c.capture.block_size = b; }},
      {"cpus", [&](const YAML::Node& v) {
        if (!v.IsSequence() || v.size() == 0) fail(f, v, "'cpus' must be a non-empty list of CPU numbers");
        for (const auto& e : v) c.capture.cpus.push_back(number<int>(f, e, "cpus", 0, 1023));
        const YAML::Mark m = v.Mark();
        c.capture.cpus_where = fmt::format("{}:{}:{}", f, m.line + 1, m.column + 1); }},
    }); }},
    {"policy", [&](const YAML::Node& n) { section(f, n, "policy", {
      {"site", [&](const YAML::Node& v) {
         c.site_policy = text(f, v, "site");
         c.site_policy_where = fmt::format("{}:{}:{}", f, v.Mark().line + 1, v.Mark().column + 1);
       }},
    }); }},
  });
  if (c.capture.ring_size) {
    size_t b = c.capture.block_size.value_or(kDefaultRingBlockSize);
    if (*c.capture.ring_size % b != 0 || *c.capture.ring_size / b < 4)
      throw ConfigError(fmt::format("{}:{}:{}: 'ring_size' must be a multiple of block_size ({}) and at least 4 blocks",
                                    f, ring_mark.line + 1, ring_mark.column + 1, b));
  }
  return c;
}

SensorConfig worker_share(const SensorConfig& cfg, int workers, int index) {
  SensorConfig c = cfg;
  if (workers <= 1) return c;
  const size_t n = static_cast<size_t>(workers), i = static_cast<size_t>(index);
  // The remainder goes one each to the first workers: the shares add up to the cap exactly.
  auto share = [&](size_t cap, size_t at_least) { return std::max(at_least, cap / n + (i < cap % n ? 1 : 0)); };
  c.flows.max_flows = share(cfg.flows.max_flows, 1);
  c.ndpi.max_flows_in_detection = share(cfg.ndpi.max_flows_in_detection, 1);
  c.reassembly_memcap = share(cfg.reassembly_memcap, 0);
  c.feeder.probe_hold_memcap = share(cfg.feeder.probe_hold_memcap, 0);
  c.feeder.held_memcap = share(cfg.feeder.held_memcap, 0);
  c.fragments.max_datagrams = share(cfg.fragments.max_datagrams, 1);
  c.fragments.max_bytes = share(cfg.fragments.max_bytes, 0);
  return c;
}

}  // namespace medmon
