#pragma once
// Sensor configuration (YAML, --config). Every key is checked: an unknown key or a bad value is
// an error naming the file, line and column, never a silent default.
#include <stdexcept>
#include <string>

#include "dissectors/ndpi/ndpi_classifier.h"
#include "sensor/decode/ip_fragments.h"
#include "sensor/engine/stream_feeder.h"
#include "sensor/flow/flow_table.h"
#include "sensor/flow/tcp_reassembler.h"

namespace medmon {

// How far each packet goes through the pipeline (the benchmark ladder).
enum class Depth : uint8_t { decode, flow, reassembly, ndpi, dissect, policy };
bool parse_depth(const std::string& s, Depth& out);

struct SensorConfig {
  FlowLimits flows;
  ReassemblyLimits reassembly;
  size_t reassembly_memcap = 256u << 20;  // all queued out-of-order bytes
  FragmentLimits fragments;
  NdpiClassifier::Limits ndpi;
  FeederLimits feeder;
  int64_t stats_interval_usec = 0;        // 0: stats only at the end (analyze); live default 60 s
  std::string phi_mode = "pseudonym";     // or "raw"
  std::string phi_key;                    // site key (inline)
  std::string phi_key_file;               // or a file holding it (must be 0600)
  std::string site_policy;                // site binding YAML, when a policy is used
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws ConfigError with "file:line:column: what is wrong".
SensorConfig load_config(const std::string& path);

}  // namespace medmon
