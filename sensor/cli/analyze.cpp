#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <random>

#include "sensor/capture/pcap_source.h"
#include "sensor/cli/commands.h"
#include "sensor/cli/summary.h"
#include "sensor/decode/decoder.h"
#include "sensor/engine/pipeline.h"
#include "sensor/report/report_commands.h"
#include "sensor/engine/workers.h"
#include "sensor/output/sinks/sinks.h"

namespace medmon {

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

std::string read_key_file(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    // First run: create a random key readable by the owner only.
    std::random_device rd;
    std::string key;
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; ++i) { unsigned v = rd() & 0xFF; key += hex[v >> 4]; key += hex[v & 15]; }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) throw ConfigError(path + ": cannot create PHI key file");
    if (::write(fd, key.data(), key.size()) != static_cast<ssize_t>(key.size())) { ::close(fd); throw ConfigError(path + ": cannot write PHI key file"); }
    ::close(fd);
    return key;
  }
  if ((st.st_mode & 077) != 0)
    throw ConfigError(fmt::format("{}: PHI key file must not be readable by group or others (mode {:o}; run chmod 600)", path, st.st_mode & 0777));
  if (st.st_uid != 0 && st.st_uid != geteuid())
    throw ConfigError(fmt::format("{}: PHI key file is owned by uid {}, neither root nor the user running medmon", path, st.st_uid));
  std::ifstream in(path);
  std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) key.pop_back();
  if (key.size() < 16) throw ConfigError(path + ": PHI key is shorter than 16 characters");
  return key;
}

// Whoever can write the configuration can turn off PHI pseudonymisation or point the key
// elsewhere: refuse files others may change, like sshd's StrictModes.
void check_config_file(const std::string& path, bool holds_key) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;  // load_config reports it
  if (st.st_mode & 022)
    throw ConfigError(fmt::format("{}: configuration file is writable by group or others (mode {:o}; run chmod go-w)", path, st.st_mode & 0777));
  if (st.st_uid != 0 && st.st_uid != geteuid())
    throw ConfigError(fmt::format("{}: configuration file is owned by uid {}, neither root nor the user running medmon", path, st.st_uid));
  if (holds_key && (st.st_mode & 044))
    throw ConfigError(fmt::format("{}: configuration holds phi_key but is readable by group or others (mode {:o}; run chmod 600 or use phi_key_file)", path, st.st_mode & 0777));
}
}  // namespace

SensorConfig load_sensor_config(const CommonOptions& o) {
  if (!o.config_file.empty()) check_config_file(o.config_file, false);
  SensorConfig c = o.config_file.empty() ? SensorConfig{} : load_config(o.config_file);
  if (!o.config_file.empty() && !c.phi_key.empty()) check_config_file(o.config_file, true);
  if (!o.phi_mode.empty()) c.phi_mode = o.phi_mode;
  if (!o.site_policy.empty()) c.site_policy = o.site_policy;
  apply_sink_cli(o.sinks, c.sinks);
  return c;
}

Pseudonymiser make_pseudonymiser(const SensorConfig& c) {
  std::string key = Pseudonymiser::default_key();
  if (!c.phi_key_file.empty()) key = read_key_file(c.phi_key_file);
  else if (!c.phi_key.empty()) key = c.phi_key;
  auto mode = c.phi_mode == "raw" ? Pseudonymiser::Mode::raw : Pseudonymiser::Mode::pseudonym;
  if (mode == Pseudonymiser::Mode::raw)
    fmt::print(stderr, "medmon: warning: --phi raw writes patient data in clear into the output\n");
  return Pseudonymiser(key, mode);
}

int run_analyze(const AnalyzeOptions& o) {
  SensorConfig cfg;
  Depth depth = Depth::policy;
  parse_depth(o.ladder, depth);
  Severity fail_on = Severity::high;
  parse_severity(o.fail_on, fail_on);
  std::unique_ptr<Pseudonymiser> phi;
  std::unique_ptr<FlowJudge> judge;
  HeaderAnnotator* annotator = nullptr;
  if (!o.bpf.empty()) {
    // A filter that is not BPF is a usage error before any file is read. Whether it fits a
    // file's link type ("ether host" on raw IP) is known only once that file is open.
    try {
      PcapSource::check_filter(o.bpf);
    } catch (const std::exception& e) {
      fmt::print(stderr, "medmon: {}\n", e.what());
      return kExitUsage;
    }
  }
  try {
    cfg = load_sensor_config(o);
    phi = std::make_unique<Pseudonymiser>(make_pseudonymiser(cfg));
    if (!load_signature_dirs(o)) return kExitUsage;
    judge = load_judge(cfg, o, &annotator);
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: {}\n", e.what());
    return kExitUsage;
  }

  EventOutput out;
  std::unique_ptr<SinkSet> sinks;
  try {
    sinks = make_sinks(cfg.sinks, o.out);
    // Delivery counters of extra sinks stay out of the events (they vary with the server's
    // timing; a replay's output is the same on every run): close() reports them on stderr.
    sinks->attach(out, false);
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: cannot write events: {}\n", e.what());
    return kExitUsage;
  }
  Summary summary;
  out.add_observer(&summary);
  out.set_annotator(annotator);
  AnalyzeExtras extras(out, o.out);  // asset inventory; events kept for --report
  extras.set_policy(judge.get(), annotator);
  // One pipeline on this thread, or N workers fed by this thread.
  std::unique_ptr<Pipeline> single;
  std::unique_ptr<OfflineWorkers> pool;
  // Judges: the site policy (when given) first, so its verdict goes into flow events, then the
  // asset inventory. With workers they run on this thread over the merged flows.
  std::vector<FlowJudge*> judges;
  if (judge) judges.push_back(judge.get());
  judges.push_back(extras.asset_judge());
  if (o.workers > 1) {
    pool = std::make_unique<OfflineWorkers>(o.workers, cfg, depth, *phi, out, judges, annotator);
  } else {
    single = std::make_unique<Pipeline>(cfg, depth, out, *phi, judges);
  }
  if (pool) pool->set_input_filter(o.bpf); else single->set_input_filter(o.bpf);
  auto set_linktype = [&](int dlt) { if (pool) pool->set_linktype(dlt); else single->set_linktype(dlt); };
  auto feed = [&](const uint8_t* d, uint32_t cap, uint32_t len, Timestamp ts) {
    if (pool) pool->packet(d, cap, len, ts); else single->packet(d, cap, len, ts);
  };
  auto packets = [&] { return pool ? pool->packets() : single->packets(); };
  auto bytes = [&] { return pool ? pool->bytes() : single->bytes(); };

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const bool progress = !o.quiet && isatty(STDERR_FILENO);
  auto t0 = std::chrono::steady_clock::now();
  auto last_draw = t0;
  int rc = kExitClean;
  std::string error;

  for (const auto& file : o.files) {
    std::unique_ptr<PcapSource> src;
    try {
      src = PcapSource::open_file(file);
    } catch (const std::exception& e) {
      error = e.what();
      rc = kExitInput;
      break;
    }
    if (!o.bpf.empty()) {
      try {
        src->set_filter(o.bpf);
      } catch (const std::exception& e) {
        error = file + ": " + e.what();
        rc = kExitUsage;
        break;
      }
    }
    int dlt = src->datalink();
    if (!linktype_supported(dlt)) {
      const char* name = pcap_datalink_val_to_name(dlt);
      error = fmt::format("{}: unsupported link type {} ({})", file, dlt, name ? name : "unknown");
      rc = kExitInput;
      break;
    }
    set_linktype(dlt);
    const pcap_pkthdr* h;
    const uint8_t* data;
    for (;;) {
      auto r = src->next(h, data);
      if (r != PcapSource::Next::packet) {
        if (r == PcapSource::Next::error) { error = file + ": " + src->error(); rc = kExitInput; }
        break;
      }
      Timestamp ts = packet_time(h->ts.tv_sec, h->ts.tv_usec);
      feed(data, h->caplen, h->len, ts);
      if (progress && (packets() & 0xFFFF) == 0) {
        auto now = std::chrono::steady_clock::now();
        if (now - last_draw > std::chrono::milliseconds(200)) {
          last_draw = now;
          double secs = std::chrono::duration<double>(now - t0).count();
          double pct = src->file_size() ? 100.0 * double(src->position()) / double(src->file_size()) : 0;
          fmt::print(stderr, "\r{}: {:5.1f}%  {:>12} pkts  {:>10.0f} pkts/s ", file, pct, packets(),
                     secs > 0 ? double(packets()) / secs : 0.0);
        }
      }
      if (g_stop) break;
    }
    if (rc != kExitClean || g_stop) break;
  }
  if (progress) fmt::print(stderr, "\r{:80}\r", "");
  // Whatever happened, the flows seen so far are written as complete events.
  FlowEnd why = g_stop ? FlowEnd::interrupted : FlowEnd::end_of_input;
  if (pool) pool->finish(why); else single->finish(why);
  out.flush();
  sinks->close(!o.quiet);  // extra sinks deliver what is queued (bounded by their drain timeout)
  if (rc != kExitClean) {
    fmt::print(stderr, "medmon: {}\n", error);
    return rc;
  }
  if (int r = extras.finish(); r != kExitClean) return r;
  if (!o.quiet) summary.print(o.out == "-" ? stderr : stdout, out.counters(), packets(), bytes());
  if (fail_on != Severity::none && summary.alerts_at_or_above(fail_on) > 0) return kExitAlerts;
  return kExitClean;
}

}  // namespace medmon
