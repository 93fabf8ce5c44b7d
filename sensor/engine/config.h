#pragma once
// Sensor configuration (YAML, --config). Every key is checked: an unknown key or a bad value is
// an error naming the file, line and column, never a silent default.
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dissectors/ndpi/ndpi_classifier.h"
#include "sensor/decode/ip_fragments.h"
#include "sensor/engine/stream_feeder.h"
#include "sensor/flow/flow_table.h"
#include "sensor/flow/tcp_reassembler.h"
#include "sensor/output/sinks/sink_config.h"

namespace medmon {

// How far each packet goes through the pipeline (the benchmark ladder).
enum class Depth : uint8_t { decode, flow, reassembly, ndpi, dissect, policy };
bool parse_depth(const std::string& s, Depth& out);

constexpr size_t kDefaultRingBlockSize = size_t(1) << 22;  // as AfPacketOptions

// Live capture (`capture:` section). Unset keys leave the command-line value or its default;
// a command-line option given explicitly wins over the file.
struct CaptureConfig {
  std::optional<std::string> interface;
  std::optional<std::string> bpf;
  std::string bpf_where;                  // "file:line:column" of `bpf`, for its errors
  std::optional<int> snaplen;
  std::optional<bool> promisc;
  std::optional<std::string> method;      // afpacket or pcap
  std::optional<int> workers;
  std::optional<size_t> ring_size;        // bytes per worker (AF_PACKET ring)
  std::optional<size_t> block_size;       // bytes per ring block
  std::vector<int> cpus;                  // worker i runs on cpus[i % size]; empty: not pinned
  std::string cpus_where;                 // "file:line:column" of `cpus`, for runtime errors
};

struct SensorConfig {
  FlowLimits flows;
  ReassemblyLimits reassembly;
  size_t reassembly_memcap = 256u << 20;  // all queued out-of-order bytes
  FragmentLimits fragments;
  NdpiClassifier::Limits ndpi;
  FeederLimits feeder;
  int64_t stats_interval_usec = 0;        // 0: stats only at the end (analyze); live default 60 s
  bool stats_interval_set = false;        // output.stats_interval given (0 included)
  std::string phi_mode = "pseudonym";     // or "raw"
  std::string phi_key;                    // site key (inline)
  std::string phi_key_file;               // or a file holding it (must be 0600)
  std::string phi_key_file_where;         // file:line:column of phi_key_file in the configuration

  bool community_id = false;              // "community_id" in flow events (output.community_id)
  uint16_t community_id_seed = 0;
  std::string site_policy;                // site binding YAML, when a policy is used
  std::string site_policy_where;          // file:line:column of policy.site ("" when not from the file)
  SinkConfig sinks;                       // output: sensor_id, rotate, sinks (docs/sinks.md)
  CaptureConfig capture;
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws ConfigError with "file:line:column: what is wrong".
SensorConfig load_config(const std::string& path);

// The configuration of worker `index` of `workers`: each cap over all flows (flow table, nDPI
// flows in detection, reassembly and probe hold memcaps, pending IP fragments) is split evenly,
// so that the workers together stay within the configured value (a count gets at least 1).
SensorConfig worker_share(const SensorConfig& cfg, int workers, int index);

}  // namespace medmon
