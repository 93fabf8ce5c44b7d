// medmon: passive monitor of medical-device traffic. See README.md for usage.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>

#include "medmon_version.h"
#include "sensor/cli/commands.h"
#include "sensor/output/sinks/sink_cli.h"
#include "sensor/report/report_commands.h"
#if MEDMON_HAVE_POLICY
#include "policies/cli/policy_cli.h"
#endif

using namespace medmon;

namespace {
void add_common(CLI::App* c, CommonOptions& o) {
  c->add_option("--out,-o", o.out, "Events output file (JSON Lines), '-' for stdout");
  c->add_option("--config,-c", o.config_file, "Sensor configuration (YAML)")->check(CLI::ExistingFile);
  c->add_option("--site", o.site_policy, "Site policy (YAML) binding devices to models and zones");
  c->add_option("--models", o.models_dir, "Directory of device models named by id in the site file (default: ../devices beside the site file)");
  c->add_option("--baseline", o.baseline, "Accepted alerts (rule, device, peer) that are not reported again");
  c->add_option("--phi", o.phi_mode, "PHI values in output: pseudonym (default) or raw (forensics only)")
      ->check(CLI::IsMember({"pseudonym", "raw"}));
  c->add_option("--ladder", o.ladder, "Stop the pipeline after this stage (benchmarking)")
      ->check(CLI::IsMember({"decode", "flow", "reassembly", "ndpi", "dissect", "policy"}));
  c->add_flag("--quiet,-q", o.quiet, "No summary or progress on the terminal");
  c->add_flag("--community-id", o.community_id, "Add the Community ID flow hash to flow events (as Suricata and Zeek)");
  c->add_option("--signatures", o.signatures, "Directory of protocol signature YAML files (docs/protocols.md)")
      ->check(CLI::ExistingDirectory);
  add_sink_options(c, o.sinks);
}
}  // namespace

int main(int argc, char** argv) {
  // A reader that closes the pipe a command writes to (`medmon report ... | head -1`) must not kill
  // it by SIGPIPE halfway through its files: the write fails with EPIPE instead, each command says
  // what it could not write and exits 3. Set before any thread or child exists.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"medmon: passive network monitor for medical devices (DICOM, HL7, MDS2 policies)"};
  app.set_version_flag("--version,-V", std::string("medmon ") + MEDMON_VERSION);
  app.require_subcommand(1);
  int exit_code = kExitClean;

  AnalyzeOptions ao;
  auto* analyze = app.add_subcommand("analyze", "Analyse pcap/pcapng files (in order; '-' reads stdin)");
  analyze->add_option("files", ao.files, "Capture files")->required();
  analyze->add_option("--workers,-w", ao.workers, "Worker threads (flows are hashed to workers; output stays deterministic)")
      ->check(CLI::Range(1, 64));
  analyze->add_option("-f,--filter", ao.bpf, "BPF filter: only the packets it accepts are analysed (as tcpdump -r FILE EXPR)");
  add_common(analyze, ao);
  // A replay ends with a verdict; a live sensor runs until stopped, so the option is analyze's.
  analyze->add_option("--fail-on", ao.fail_on, "Exit 1 when an alert at or above this severity was raised")
      ->check(CLI::IsMember({"info", "low", "medium", "high", "critical", "none"}));
  analyze->callback([&] { exit_code = run_analyze(ao); });

  LiveOptions lo;
  auto* live = app.add_subcommand("live", "Monitor a network interface (SPAN/mirror port)");
  live->add_option("-i,--interface", lo.iface, "Interface to capture on (or capture.interface in --config)");
  live->add_option("-f,--filter", lo.bpf, "BPF capture filter");
  live->add_option("-s,--snaplen", lo.snaplen, "Bytes captured per packet")->check(CLI::Range(64, 262144));
  live->add_flag("--no-promisc", lo.no_promisc, "Do not put the interface in promiscuous mode");
  live->add_option("--buffer-mb", lo.buffer_mb, "Kernel capture buffer (MiB)")->check(CLI::Range(1, 4096));
  live->add_option("--stats-interval", lo.stats_interval, "Seconds between stats events")->check(CLI::Range(1.0, 86400.0));
  live->add_option("--capture", lo.capture, "Capture method: afpacket (TPACKET_V3 ring, fanout to workers) or pcap")
      ->check(CLI::IsMember({"afpacket", "pcap"}));
  live->add_option("--workers,-w", lo.workers, "Worker threads, each with its own AF_PACKET fanout socket")->check(CLI::Range(1, 64));
  live->add_option("--user,-u", lo.user, "Drop privileges to this user once the interface is open");
  add_common(live, lo);
  live->callback([&] {
    lo.given = {live->count("--snaplen") > 0, live->count("--no-promisc") > 0, live->count("--buffer-mb") > 0,
                live->count("--stats-interval") > 0, live->count("--capture") > 0, live->count("--workers") > 0};
    exit_code = run_live(lo);
  });

#if MEDMON_HAVE_POLICY
  register_policy_commands(app, exit_code);
#endif

  register_report_commands(app, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }
  return exit_code;
}
