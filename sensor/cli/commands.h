#pragma once
// Subcommands of the medmon binary and what they share.
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "sensor/engine/config.h"
#include "sensor/engine/flow_judge.h"
#include "sensor/output/pseudonymiser.h"
#include "sensor/output/sinks/sink_config.h"

namespace medmon {

// Exit codes (documented in README.md). kExitInput also stands for events that could not be written.
constexpr int kExitClean = 0, kExitAlerts = 1, kExitUsage = 2, kExitInput = 3;

// The exit code of an error from make_sinks(): a file that cannot be created is an output
// error; a bad sink setting (or a spool directory in use) is a usage error.
int sink_error_exit_code(const std::exception& e);

struct CommonOptions {
  std::string config_file;
  std::string out = "-";
  std::string phi_mode;       // overrides the config when set
  std::string site_policy;    // overrides the config when set
  std::string models_dir;     // where the site's device models are (default: next to the site)
  std::string baseline;       // accepted alerts (rule + device + peer) not to report again
  std::vector<std::string> signatures;  // directories of protocol signature YAML files
  std::string ladder = "policy";
  std::string fail_on = "high";
  bool quiet = false;
  bool community_id = false;  // --community-id: as output.community_id
  SinkCliOptions sinks;  // --sink, --syslog, --sensor-id, --rotate-*, --spool-dir
};

struct AnalyzeOptions : CommonOptions {
  std::vector<std::string> files;
  std::string bpf;  // only packets this BPF expression accepts are analysed
  int workers = 1;
};

struct LiveOptions : CommonOptions {
  std::string iface;
  std::string bpf;
  int snaplen = 65535;
  bool no_promisc = false;
  int buffer_mb = 64;
  double stats_interval = 60;
  std::string capture = "afpacket";  // or "pcap"
  int workers = 1;
  std::string user;                  // drop to this user once the capture is open
  // Options given on the command line (even with their default value): they win over the
  // config file's capture and output sections.
  struct Given { bool snaplen = false, promisc = false, buffer_mb = false, stats_interval = false, capture = false, workers = false; } given;
};

// Loads the configuration and the PHI key; throws ConfigError.
SensorConfig load_sensor_config(const CommonOptions& o);
Pseudonymiser make_pseudonymiser(const SensorConfig& c);

// The policy judge for a site file, or null when no site is configured. Throws ConfigError
// (errors already printed) when the site or a model is invalid.
std::unique_ptr<FlowJudge> load_judge(const SensorConfig& c, const CommonOptions& o, HeaderAnnotator** annotator);

// A judge with the same policy and the same cross-flow state as j, for another live worker
// thread (see PolicyJudge::fork).
std::unique_ptr<FlowJudge> fork_judge(const FlowJudge& j);

// Loads the --signatures directories; prints every error (file:line:column) and returns false.
bool load_signature_dirs(const CommonOptions& o);

int run_analyze(const AnalyzeOptions& o);
int run_live(const LiveOptions& o);

}  // namespace medmon
