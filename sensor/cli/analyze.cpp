#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <system_error>

#include "sensor/common/diag.h"
#include "sensor/common/paths.h"
#include "sensor/capture/pcap_source.h"
#include "sensor/cli/commands.h"
#include "sensor/cli/summary.h"
#include "sensor/decode/decoder.h"
#include "sensor/engine/pipeline.h"
#include "sensor/report/report_commands.h"
#include "sensor/engine/workers.h"
#include "sensor/output/sinks/sink_error.h"
#include "sensor/output/sinks/sinks.h"

namespace medmon {

namespace {
std::atomic<bool> g_stop{false};
// The first signal stops reading; a second one also ends the sinks' drain at exit.
void on_signal(int) {
  if (g_stop.exchange(true)) request_drain_cut();
}

// `where`: the place in the configuration that names the file, as "file:line:column: ".
std::string read_key_file(const std::string& path, const std::string& where) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw ConfigError(fmt::format("{}{}: PHI key file is a directory", where, path));
  if (stat(path.c_str(), &st) != 0) {
    // First run: create a random key readable by the owner only.
    std::random_device rd;
    std::string key;
    static constexpr char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; ++i) { unsigned v = rd() & 0xFF; key += hex[v >> 4]; key += hex[v & 15]; }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
      int e = errno;
      throw ConfigError(fmt::format("{}{}: cannot create PHI key file: {}{}", where, path, std::strerror(e),
                                    e == ENOENT ? " (create its directory first)" : ""));
    }
    if (::write(fd, key.data(), key.size()) != static_cast<ssize_t>(key.size())) {
      int e = errno;
      ::close(fd);
      throw ConfigError(fmt::format("{}{}: cannot write PHI key file: {}", where, path, std::strerror(e)));
    }
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

int sink_error_exit_code(const std::exception& e) {
  return dynamic_cast<const SinkOpenError*>(&e) ? kExitInput : kExitUsage;
}

SensorConfig load_sensor_config(const CommonOptions& o) {
  if (!o.config_file.empty()) check_config_file(o.config_file, false);
  SensorConfig c = o.config_file.empty() ? SensorConfig{} : load_config(o.config_file);
  if (!o.config_file.empty() && !c.phi_key.empty()) check_config_file(o.config_file, true);
  if (!o.phi_mode.empty()) c.phi_mode = o.phi_mode;
  if (o.community_id) c.community_id = true;
  if (!o.site_policy.empty()) {
    c.site_policy = o.site_policy;
    c.site_policy_where.clear();
  }
  apply_sink_cli(o.sinks, c.sinks);
  return c;
}

Pseudonymiser make_pseudonymiser(const SensorConfig& c) {
  std::string key = Pseudonymiser::default_key();
  if (!c.phi_key_file.empty())
    key = read_key_file(c.phi_key_file, c.phi_key_file_where.empty() ? std::string() : c.phi_key_file_where + ": ");
  else if (!c.phi_key.empty()) key = c.phi_key;
  auto mode = c.phi_mode == "raw" ? Pseudonymiser::Mode::raw : Pseudonymiser::Mode::pseudonym;
  if (mode == Pseudonymiser::Mode::raw)
    print_err("medmon: warning: --phi raw writes patient data in clear into the output\n");
  return Pseudonymiser(key, mode);
}

namespace {

// What analyze loads before it reads a packet.
struct Setup {
  SensorConfig cfg;
  Depth depth = Depth::policy;
  Severity fail_on = Severity::high;
  std::unique_ptr<Pseudonymiser> phi;
  std::unique_ptr<FlowJudge> judge;  // the site policy; null without one
  HeaderAnnotator* annotator = nullptr;
};

// Checks --filter, then loads the configuration, the PHI key, the signatures and the site
// policy. Prints what is wrong; returns kExitClean or kExitUsage.
int set_up(const AnalyzeOptions& o, Setup& s) {
  parse_depth(o.ladder, s.depth);
  parse_severity(o.fail_on, s.fail_on);
  if (!o.bpf.empty()) {
    // A filter that is not BPF is a usage error before any file is read. Whether it fits a
    // file's link type ("ether host" on raw IP) is known only once that file is open.
    try {
      PcapSource::check_filter(o.bpf);
    } catch (const std::exception& e) {
      print_err("medmon: {}\n", e.what());
      return kExitUsage;
    }
  }
  try {
    s.cfg = load_sensor_config(o);
    s.phi = std::make_unique<Pseudonymiser>(make_pseudonymiser(s.cfg));
    if (!load_signature_dirs(o)) return kExitUsage;
    s.judge = load_judge(s.cfg, o, &s.annotator);
  } catch (const std::exception& e) {
    print_err("medmon: {}\n", e.what());
    return kExitUsage;
  }
  return kExitClean;
}

// Where the events go, and what observes them on the way. Made in this order, and so destroyed
// in reverse: the extras and the summary before the output they observe.
struct Outputs {
  EventOutput events;
  std::unique_ptr<SinkSet> sinks;
  Summary summary;
  std::optional<AnalyzeExtras> extras;  // asset inventory; events kept for --report
};

// Opens the --out file and the extra sinks, and attaches the summary and the extras. Prints
// what is wrong and returns its exit code when a sink cannot be opened: kExitUsage for a bad
// sink setting, kExitInput for a file that cannot be written (an output error).
int open_outputs(const AnalyzeOptions& o, const Setup& s, Outputs& out) {
  // First what keeps the events for --report, which may need a file of its own: a run whose
  // report cannot be made ends here, the outputs of an earlier run untouched.
  out.extras.emplace(out.events, o.out, s.cfg.sinks.rotate.enabled());
  if (std::string why = out.extras->error(); !why.empty()) {
    print_err("medmon: --report: {}\n", why);
    return kExitInput;
  }
  try {
    out.sinks = make_sinks(s.cfg.sinks, o.out);
    // Delivery counters of extra sinks stay out of the events (they vary with the server's
    // timing; a replay's output is the same on every run): close() reports them on stderr.
    out.sinks->attach(out.events, false);
  } catch (const std::exception& e) {
    print_err("medmon: cannot write events: {}\n", e.what());
    return sink_error_exit_code(e);
  }
  out.events.add_observer(&out.summary);
  out.events.set_annotator(s.annotator);
  out.events.set_community_id(s.cfg.community_id, s.cfg.community_id_seed);
  out.extras->set_policy(s.judge.get(), s.annotator);
  return kExitClean;
}

// Refuses an output that names an input capture (by any path): opening it would destroy the
// capture before it is read. Prints what is wrong; returns false then.
bool outputs_spare_inputs(const AnalyzeOptions& o, const Setup& s) {
  std::vector<std::pair<std::string, std::string>> outputs;  // path, the option that names it
  // Standard output is a file too when the shell redirected it to one (`> events.jsonl`).
  if (o.out != "-") outputs.emplace_back(o.out, "--out");
  else outputs.emplace_back("/dev/stdout", "--out - (standard output)");
  for (const auto& sk : s.cfg.sinks.sinks)
    if (sk.type == "file") outputs.emplace_back(sk.url, sk.where);
    else if (sk.type == "stdout") outputs.emplace_back("/dev/stdout", sk.where + " (standard output)");
  if (const std::string& r = analyze_report_option(); !r.empty())
    for (const auto& f : report_files(r)) {
      // The report is written after the run, over the events it was made from.
      for (const auto& [path, what] : outputs)
        if (same_output_file(f, path) || (r == "-" && path == "/dev/stdout")) {  // a terminal too
          print_err("medmon: --report: {} is also the file of {}: refused, the events would be overwritten\n", f, what);
          return false;
        }
      outputs.emplace_back(f, "--report");
    }
  for (const auto& in : o.files) {
    // A capture on standard input (`- < cap.pcap`) is a file as well; a pipe or terminal is not.
    struct stat st;
    if (in == "-" && (::fstat(STDIN_FILENO, &st) != 0 || !S_ISREG(st.st_mode))) continue;
    const std::string path_in = in == "-" ? "/dev/stdin" : in;
    for (const auto& [path, what] : outputs)
      if (same_existing_file(path_in, path)) {
        print_err("medmon: {}: {} is the input file {}: refused, it would be overwritten\n", what, path,
                  in == "-" ? std::string("- (standard input)") : in);
        return false;
      }
  }
  return true;
}

// A --report that cannot be written is found before the run, not after it: prints why and
// returns false then.
bool report_writable() {
  const std::string& r = analyze_report_option();
  if (r.empty()) return true;
  for (const auto& f : report_files(r))
    if (std::string why = cannot_write_reason(f); !why.empty()) {
      print_err("medmon: --report {}: cannot write {}: {}\n", r, f, why);
      return false;
    }
  return true;
}

// What the packets go to: one pipeline on this thread, or N workers fed by this thread.
class Engine {
 public:
  Engine(int workers, const Setup& s, EventOutput& out, const std::vector<FlowJudge*>& judges) {
    if (workers > 1) pool_ = std::make_unique<OfflineWorkers>(workers, s.cfg, s.depth, *s.phi, out, judges, s.annotator);
    else single_ = std::make_unique<Pipeline>(s.cfg, s.depth, out, *s.phi, judges);
  }
  void set_input_filter(const std::string& bpf) {
    if (pool_) pool_->set_input_filter(bpf); else single_->set_input_filter(bpf);
  }
  void set_linktype(int dlt) { if (pool_) pool_->set_linktype(dlt); else single_->set_linktype(dlt); }
  void packet(const uint8_t* d, uint32_t cap, uint32_t len, Timestamp ts) {
    if (pool_) pool_->packet(d, cap, len, ts); else single_->packet(d, cap, len, ts);
  }
  void finish(FlowEnd why) { if (pool_) pool_->finish(why); else single_->finish(why); }
  uint64_t packets() const { return pool_ ? pool_->packets() : single_->packets(); }
  uint64_t bytes() const { return pool_ ? pool_->bytes() : single_->bytes(); }

 private:
  std::unique_ptr<Pipeline> single_;
  std::unique_ptr<OfflineWorkers> pool_;
};

// The engine for --workers, with the judges of every ending flow and the input filter.
Engine make_engine(const AnalyzeOptions& o, const Setup& s, Outputs& out) {
  // Judges: the site policy (when given) first, so its verdict goes into flow events, then the
  // asset inventory. With workers they run on this thread over the merged flows.
  std::vector<FlowJudge*> judges;
  if (s.judge) judges.push_back(s.judge.get());
  judges.push_back(out.extras->asset_judge());
  Engine engine(o.workers, s, out.events, judges);
  engine.set_input_filter(o.bpf);
  return engine;
}

// Why reading stopped before the end of the input: the exit code, and the message printed
// once the flows seen so far are written.
struct InputError {
  int rc = kExitClean;
  std::string message;
};

// The progress line on stderr while the files are read: on a terminal, unless --quiet.
class Progress {
 public:
  explicit Progress(bool on) : on_(on), t0_(std::chrono::steady_clock::now()), last_draw_(t0_) {}

  // Looks at the clock every 65536 packets, redraws at most every 200 ms.
  void update(const std::string& file, const PcapSource& src, uint64_t packets) {
    if (!on_ || (packets & 0xFFFF) != 0) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ <= std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    double secs = std::chrono::duration<double>(now - t0_).count();
    double pct = src.file_size() ? 100.0 * double(src.position()) / double(src.file_size()) : 0;
    print_err("\r{}: {:5.1f}%  {:>12} pkts  {:>10.0f} pkts/s ", file, pct, packets,
               secs > 0 ? double(packets) / secs : 0.0);
  }
  void clear() {
    if (on_) print_err("\r{:80}\r", "");
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point t0_, last_draw_;
};

// Opens a capture file with the --filter applied. Null (and `err` set) when it cannot be read.
std::unique_ptr<PcapSource> open_capture(const std::string& file, const std::string& bpf, InputError& err) {
  std::unique_ptr<PcapSource> src;
  try {
    src = PcapSource::open_file(file);
  } catch (const std::exception& e) {
    err = {kExitInput, e.what()};
    return nullptr;
  }
  if (!bpf.empty()) {
    try {
      src->set_filter(bpf);
    } catch (const std::exception& e) {
      err = {kExitUsage, file + ": " + e.what()};
      return nullptr;
    }
  }
  int dlt = src->datalink();
  if (!linktype_supported(dlt)) {
    const char* name = pcap_datalink_val_to_name(dlt);
    err = {kExitInput, fmt::format("{}: unsupported link type {} ({})", file, dlt, name ? name : "unknown")};
    return nullptr;
  }
  return src;
}

// Feeds one capture file to the engine, to its end, to a signal or until no output is left
// (every events file and standard output failed, e.g. `-o - | head`: reading on is pointless).
// `src`: the file already opened (the first input, when a stream), else null.
InputError read_file(const std::string& file, const std::string& bpf, Engine& engine, Progress& progress,
                     const SinkSet& sinks, std::unique_ptr<PcapSource> src) {
  InputError err;
  if (!src) src = open_capture(file, bpf, err);
  if (!src) return err;
  engine.set_linktype(src->datalink());
  const pcap_pkthdr* h;
  const uint8_t* data;
  for (;;) {
    auto r = src->next(h, data);
    if (r != PcapSource::Next::packet) {
      if (r == PcapSource::Next::error) err = {kExitInput, file + ": " + src->error()};
      break;
    }
    engine.packet(data, h->caplen, h->len, packet_time(h->ts.tv_sec, h->ts.tv_usec));
    progress.update(file, *src, engine.packets());
    if (g_stop) break;
    if ((engine.packets() & 0xFFFF) == 0 && sinks.all_failed()) break;
  }
  return err;
}

// Opens every input file once before an output is created, so that a mistyped name, a file
// that is not a capture or a filter that does not fit its link type ends the run before it
// empties the events file of an earlier run; so does a pcapng file that libpcap would refuse
// part way (interfaces of different link types, sections of different byte orders). A stream
// can be read only once: standard input, a named pipe or a `<(...)` (/dev/fd/N) is opened only
// for the real read, except when it comes first: then it is opened here and kept in `first`
// (what is not a capture there leaves the earlier events file alone too).
InputError check_inputs(const AnalyzeOptions& o, std::unique_ptr<PcapSource>& first) {
  InputError err;
  for (const auto& file : o.files) {
    struct stat st;
    if (file == "-" ||
        (stat(file.c_str(), &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) || S_ISSOCK(st.st_mode)))) {
      if (&file == &o.files.front() && !(first = open_capture(file, o.bpf, err))) break;
      continue;
    }
    if (!open_capture(file, o.bpf, err)) break;
    // What libpcap would refuse only when it reaches it, after events were written.
    if (std::string why = pcapng_unsupported(file); !why.empty()) {
      err = {kExitInput, why};
      break;
    }
  }
  return err;
}

// Feeds the files in order; stops at the first that cannot be read, or on a signal.
InputError read_files(const AnalyzeOptions& o, Engine& engine, const SinkSet& sinks, std::unique_ptr<PcapSource> first) {
  Progress progress(!o.quiet && isatty(STDERR_FILENO));
  InputError err;
  for (const auto& file : o.files) {
    err = read_file(file, o.bpf, engine, progress, sinks, std::move(first));
    if (err.rc != kExitClean || g_stop || sinks.all_failed()) break;
  }
  progress.clear();
  return err;
}

// Writes the flows still open and delivers the events; then reports the input error, or the
// --report, the summary and the verdict of --fail-on. Returns analyze's exit code.
int finish(const AnalyzeOptions& o, const Setup& s, Engine& engine, Outputs& out, const InputError& err) {
  // Whatever happened, the flows seen so far are written as complete events.
  engine.finish(g_stop ? FlowEnd::interrupted : FlowEnd::end_of_input);
  out.events.flush();
  out.sinks->close(!o.quiet);  // extra sinks deliver what is queued (bounded by their drain timeout)
  if (err.rc != kExitClean) print_err("medmon: {}\n", err.message);
  // Events that could not be written (full disk, closed pipe) make the run fail like an input
  // that could not be read: its output is not the whole analysis.
  if (std::string w = out.sinks->write_error(); !w.empty()) {
    print_err("medmon: cannot write events: {}\n", w);
    return kExitInput;
  }
  if (err.rc != kExitClean) return err.rc;
  // A report that failed after a complete run does not hide the --fail-on verdict: alerts (1)
  // come before the report's own exit code.
  int report_rc = out.extras->finish();
  if (!o.quiet) {
    // On stdout, unless events go there (--out -, --out /dev/stdout, a stdout sink, a file sink
    // naming standard output): then on stderr, so that the stream stays JSON Lines.
    bool events_on_stdout = names_standard_output(o.out) || analyze_report_option() == "-";  // or the report
    for (auto& sk : s.cfg.sinks.sinks)
      events_on_stdout |= sk.type == "stdout" || (sk.type == "file" && names_standard_output(sk.url));
    std::FILE* to = events_on_stdout ? stderr : stdout;
    // A closed pipe (`| head`) is an output error like any other, not a crash.
    try {
      out.summary.print(to, out.events.counters(), engine.packets(), engine.bytes());
      if (std::fflush(to) != 0) throw std::system_error(errno, std::generic_category());
    } catch (const std::system_error& e) {
      print_err("medmon: cannot write the summary: {}: {}\n", to == stdout ? "standard output" : "standard error",
                 std::strerror(e.code().value()));
      return kExitInput;
    }
  }
  if (s.fail_on != Severity::none && out.summary.alerts_at_or_above(s.fail_on) > 0) return kExitAlerts;
  return report_rc;
}

}  // namespace

int run_analyze(const AnalyzeOptions& o) {
  // Each step prints what went wrong. Destroyed in reverse order: the engine, which points into
  // the outputs and the judges, first.
  // A reader that closes the pipe the events go to (`| head`) must not kill the run by SIGPIPE:
  // the write fails with EPIPE instead, the --out file and the other sinks are completed, and
  // the run ends with exit 3 naming the output. Set before any thread exists, for all of them.
  std::signal(SIGPIPE, SIG_IGN);
  Setup s;
  if (int rc = set_up(o, s); rc != kExitClean) return rc;
  if (!outputs_spare_inputs(o, s)) return kExitUsage;
  if (!report_writable()) return kExitInput;
  std::unique_ptr<PcapSource> first;  // the first input, when a stream
  if (InputError err = check_inputs(o, first); err.rc != kExitClean) {
    print_err("medmon: {}\n", err.message);
    return err.rc;
  }
  Outputs out;
  if (int rc = open_outputs(o, s, out); rc != kExitClean) return rc;
  Engine engine = make_engine(o, s, out);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  InputError err = read_files(o, engine, *out.sinks, std::move(first));
  return finish(o, s, engine, out, err);
}

}  // namespace medmon
