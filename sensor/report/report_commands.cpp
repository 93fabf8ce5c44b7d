#include "sensor/report/report_commands.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "dissectors/proprietary/signature.h"
#include "sensor/common/diag.h"
#include "sensor/common/paths.h"
#include "sensor/assets/asset_tracker.h"
#include "sensor/assets/data_files.h"
#include "sensor/report/event_log.h"
#include "sensor/report/html_report.h"
#include "sensor/report/inventory.h"
#include "sensor/report/policy_bridge.h"

extern char** environ;

namespace medmon {

namespace {

constexpr int kOk = 0, kUsage = 2, kInput = 3;

// `--report` of `analyze`: parsed before run_analyze() runs, read by AnalyzeExtras.
std::string& analyze_report_path() {
  static std::string path;
  return path;
}

// Whether the report file is a PDF: its name ends in ".pdf", in any case ("REPORT.PDF" too).
bool is_pdf_name(const std::string& s) {
  constexpr std::string_view x = ".pdf";
  if (s.size() < x.size()) return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - x.size() + i])) != x[i]) return false;
  return true;
}

std::string find_chromium() {
  if (const char* c = std::getenv("MEDMON_CHROMIUM"); c && *c) return c;
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  for (const char* name : {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      std::string cand = p.substr(start, end - start) + "/" + name;
      if (access(cand.c_str(), X_OK) == 0) return cand;
      start = end + 1;
    }
  }
  return {};
}

// Prints the HTML file to PDF with headless Chromium. Returns false with a message on failure.
bool print_pdf(const std::string& html, const std::string& pdf, std::string& err) {
  std::string chromium = find_chromium();
  if (chromium.empty()) {
    err = "PDF output needs Chromium (Debian package chromium); the HTML report was written to " + html;
    return false;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string url = "file://" + fs::absolute(html, ec).string();
  // A fresh private profile directory: a predictable name in a shared /tmp could be prepared by
  // another user beforehand.
  std::string profile = fs::temp_directory_path(ec).string() + "/medmon-chromium-XXXXXX";
  if (!mkdtemp(profile.data())) {
    err = "cannot create a Chromium profile directory under " + fs::temp_directory_path(ec).string();
    return false;
  }
  std::vector<std::string> args = {chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                   "--disable-extensions", "--no-pdf-header-footer", "--user-data-dir=" + profile,
                                   "--print-to-pdf=" + fs::absolute(pdf, ec).string(), url};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  // medmon ignores SIGPIPE; Chromium starts with the default action, as from a shell.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t pipe_sig;
  sigemptyset(&pipe_sig);
  sigaddset(&pipe_sig, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &pipe_sig);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawn(&pid, chromium.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fs::remove_all(profile, ec);
    err = chromium + ": cannot start";
    return false;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  fs::remove_all(profile, ec);
  struct stat st;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || stat(pdf.c_str(), &st) != 0 || st.st_size == 0) {
    err = chromium + " did not print " + pdf;
    return false;
  }
  return true;
}

// This run's events, for the report made after it, in an unlinked temporary file (under
// $TMPDIR, else /tmp): its size is the disk's concern, not memory's.
class SpoolSink : public EventSink {
 public:
  SpoolSink() {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = tmp && *tmp ? tmp : "/tmp";
    std::string name = dir + "/medmon-report-XXXXXX";
    fd_ = mkostemp(name.data(), O_CLOEXEC);
    if (fd_ < 0) {
      error_ = fmt::format("cannot create a file for this run's events under {}: {}", dir, std::strerror(errno));
      return;
    }
    ::unlink(name.c_str());
  }
  ~SpoolSink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  void write_line(std::string_view, std::string_view line) override {
    buf_.append(line);
    buf_.push_back('\n');
    if (buf_.size() >= kOutputRunBytes) flush();
  }
  bool takes_batches() const override { return true; }
  void write_batch(std::string_view lines) override {
    flush();
    write(lines);
  }
  void flush() override {
    write(buf_);
    buf_.clear();
  }
  int fd() const { return fd_; }
  int64_t size() const { return size_; }
  // False (and why) when a line could not be kept: the report would lack it.
  bool error(std::string& why) const {
    if (error_.empty()) return true;
    why = error_;
    return false;
  }

 private:
  void write(std::string_view bytes) {
    if (fd_ < 0 || !error_.empty() || bytes.empty()) return;
    if (int e = write_lines(fd_, bytes)) {
      error_ = fmt::format("cannot keep this run's events for the report: {}", std::strerror(e));
      return;
    }
    size_ += static_cast<int64_t>(bytes.size());
  }
  int fd_ = -1;
  int64_t size_ = 0;
  std::string buf_;
  std::string error_;
};

// Lines of an event file that are not JSON objects are skipped; say where the first one is.
void warn_bad_lines(const report::EventLog& log, const std::string& path) {
  // A read error part way: what follows is missing, as an unreadable line is.
  if (!log.read_error.empty())
    print_err("medmon: {}:{}: read error after this line: {}; the rest of the file is missing\n", path,
              log.read_error_line, log.read_error);
  if (!log.bad_lines) return;
  print_err("medmon: {}:{}: not a JSON object, skipped ({} such line{} in the file)\n", path,
             log.first_bad_line, log.bad_lines, log.bad_lines == 1 ? "" : "s");
}

int run_assets(const std::string& events, bool as_json) {
  report::EventLog log;
  std::string err;
  if (!log.load(events, err)) { print_err("medmon: {}\n", err); return kInput; }
  auto inv = report::build_inventory(log);
  warn_bad_lines(log, log.source);
  // A closed pipe (`| head -1`) is an output error, not a crash (fmt::print throws on it).
  try {
    if (as_json) {
      std::string j = report::inventory_json(inv);
      std::fwrite(j.data(), 1, j.size(), stdout);
      std::fputc('\n', stdout);
    } else {
      report::print_inventory_table(stdout, inv);
    }
  } catch (const std::system_error&) {
  }
  if (!flush_stdout("the inventory")) return kInput;
  // The inventory is printed, but of part of the events only.
  return log.read_error.empty() ? kOk : kInput;
}

}  // namespace

namespace {
int write_report_with(const std::string& events_path, const std::vector<std::string>* lines, const std::string& out_path,
                      report::ReportOptions& opt);
int write_report_of(report::EventLog& log, const std::string& out_path, report::ReportOptions& opt);
}  // namespace

std::vector<std::string> report_files(const std::string& out_path) {
  if (out_path == "-") return {"/dev/stdout"};
  if (!is_pdf_name(out_path)) return {out_path};
  return {out_path, out_path.substr(0, out_path.size() - 4) + ".html"};
}

const std::string& analyze_report_option() { return analyze_report_path(); }

int write_report(const std::string& events_path, const std::vector<std::string>* lines, const std::string& out_path,
                 const std::string& title, const std::string& site_path, const std::string& models_dir) {
  report::ReportOptions opt;
  if (!title.empty()) opt.title = title;
  std::unique_ptr<report::PolicyView> view;
  if (!site_path.empty()) {
    view = report::policy_view_load(site_path, models_dir);
    if (!view) return kUsage;
    opt.declared = view->declared;
    opt.have_declared = true;
  }
  return write_report_with(events_path, lines, out_path, opt);
}

namespace {
int write_report_with(const std::string& events_path, const std::vector<std::string>* lines, const std::string& out_path,
                      report::ReportOptions& opt) {
  report::EventLog log;
  if (lines) {
    for (auto& l : *lines) log.add_line(l);
    log.source = events_path;
  } else {
    std::string err;
    if (!log.load(events_path, err)) { print_err("medmon: {}\n", err); return kInput; }
  }
  return write_report_of(log, out_path, opt);
}

// Why a report is incomplete: the unreadable lines, the read error.
std::string incomplete_reason(const report::EventLog& log) {
  std::string why;
  if (log.bad_lines) why = fmt::format("{} unreadable line{} in the events", log.bad_lines, log.bad_lines == 1 ? "" : "s");
  if (!log.read_error.empty())
    why += fmt::format("{}a read error after line {} of the events", why.empty() ? "" : ", ", log.read_error_line);
  return why;
}

int write_report_of(report::EventLog& log, const std::string& out_path, report::ReportOptions& opt) {
  std::string html;
  try {
    html = report::render_html(log, opt);
  } catch (const std::exception& e) {
    print_err("medmon: report: {}\n", e.what());
    return kInput;
  }
  // After the page is made: its passes over the flows may meet a read error too.
  if (log.source != "analyze") warn_bad_lines(log, log.source);
  // "-" is standard output, as for the other commands' outputs.
  if (out_path == "-") {
    std::fwrite(html.data(), 1, html.size(), stdout);
    if (!flush_stdout("the report")) return kInput;
    if (log.incomplete()) {
      print_err("medmon: standard output: the report is incomplete: {}\n", incomplete_reason(log));
      return kInput;
    }
    return kOk;
  }
  bool pdf = is_pdf_name(out_path);
  std::string html_path = pdf ? out_path.substr(0, out_path.size() - 4) + ".html" : out_path;
  {
    std::ofstream o(html_path, std::ios::binary | std::ios::trunc);
    if (!o || !(o << html) || !o.flush()) {
      int e = errno;
      print_err("medmon: {}: cannot write the report: {}\n", html_path, std::strerror(e ? e : EIO));
      return kUsage;
    }
  }
  if (pdf) {
    std::string err;
    if (!print_pdf(html_path, out_path, err)) { print_err("medmon: {}\n", err); return kUsage; }
  }
  // The report is written (its verdict says INCOMPLETE), but a damaged events file is no sign-off.
  if (log.incomplete()) {
    print_err("medmon: {}: the report is incomplete: {}\n", html_path, incomplete_reason(log));
    return kInput;
  }
  return kOk;
}
}  // namespace

void register_report_commands(CLI::App& app, int& exit_code) {
  struct Args {
    std::string events, out = "report.html", title, site, models;
    std::vector<std::string> signatures;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* as = app.add_subcommand("assets", "Print the asset inventory of an analysis (from its events)");
  // An events file that cannot be read is an input error (3, from the load), not a usage error.
  as->add_option("events", a->events, "Events (JSON Lines) written by analyze or live; - reads standard input")->required();
  as->add_flag("--json", a->json, "JSON instead of a table");
  as->callback([a, &exit_code] { exit_code = run_assets(a->events, a->json); });

  auto r = std::make_shared<Args>();
  auto* rep = app.add_subcommand("report", "Write the acceptance report (self-contained HTML, or PDF via Chromium)");
  rep->add_option("events", r->events, "Events (JSON Lines) written by analyze; - reads standard input")->required();
  rep->add_option("-o,--out", r->out, "Report file: .html, or .pdf (printed by headless Chromium), - for standard output (HTML); default report.html");
  rep->add_option("--title", r->title, "Report title");
  rep->add_option("--site", r->site, "Site policy: lists the declared flows that were never seen")->check(CLI::ExistingFile);
  rep->add_option("--models", r->models, "Directory of device models (default: <site dir>/../devices)");
  rep->add_option("--signatures", r->signatures, "Directory of protocol signature YAML files whose names models may use")
      ->check(CLI::ExistingDirectory);
  rep->callback([r, &exit_code] {
    // A model may name a signature's protocol: the signatures analyze loaded are known here too.
    bool bad = false;
    for (const auto& dir : r->signatures)
      for (const auto& e : proprietary::add_signatures(dir)) {
        print_err("medmon: {}\n", e.str());
        bad = true;
      }
    if (bad) { exit_code = kUsage; return; }
    // Writing the report over the events it is made of would destroy them.
    // (Standard input redirected from a file is that file.)
    const std::string events_in = r->events == "-" ? std::string("/dev/stdin") : r->events;
    for (const auto& f : report_files(r->out))
      if (r->out != "-" && same_existing_file(events_in, f)) {
        print_err("medmon: report: {} is the events file {}: refused, it would be overwritten\n", f,
                  r->events == "-" ? std::string("- (standard input)") : r->events);
        exit_code = kUsage;
        return;
      }
    // A report file that cannot be created is an output error, found before the events are read
    // (as analyze --report finds it before the run).
    for (const auto& f : report_files(r->out))
      if (std::string why = r->out == "-" ? std::string() : cannot_write_reason(f); !why.empty()) {
        print_err("medmon: {}: cannot write the report: {}\n", f, why);
        exit_code = kInput;
        return;
      }
    exit_code = write_report(r->events, nullptr, r->out, r->title, r->site, r->models);
  });

  if (CLI::App* an = app.get_subcommand_ptr("analyze").get())
    an->add_option("--report", analyze_report_path(), "Also write the acceptance report (.html or .pdf)");
}

struct AnalyzeExtras::Impl {
  EventOutput& out;
  std::string events_path;
  std::string report_path;
  OuiTable oui;
  ImplTable impl;
  std::unique_ptr<AssetTracker> tracker;
  // Where the report reads this run's events back from, when not from events_path by name: a
  // descriptor open on standard output's file and the offset this run began at, or the spool.
  int readback_fd = -1;
  int64_t readback_from = 0;
  std::shared_ptr<SpoolSink> spool;
  HeaderAnnotator* annotator = nullptr;
  std::unique_ptr<report::PolicyView> policy;
  explicit Impl(EventOutput& o) : out(o) {}
  ~Impl() {
    if (readback_fd >= 0) ::close(readback_fd);
  }
};

AnalyzeExtras::AnalyzeExtras(EventOutput& out, const std::string& events_path, bool out_rotates)
    : impl_(std::make_unique<Impl>(out)) {
  impl_->events_path = events_path;
  impl_->report_path = analyze_report_path();
  load_reference_tables(impl_->oui, impl_->impl);
  if (impl_->report_path.empty()) return;
  // The report reads this run's events back after the run, from the disk, so that memory does
  // not grow with the capture. From the --out file by name when it is a regular file of its own.
  // From standard output's file, when the events go there (`--out -`, `--out /dev/stdout`,
  // `>> file` holding earlier runs' lines first), through a descriptor of its own from where
  // this run began. Otherwise from a spool: reading back a pipe, a terminal or a FIFO would wait
  // forever on what this process writes, and a rotated file has lost its earlier parts.
  // A file standard error writes to as well (`>> log 2>&1`) holds medmon's messages between the
  // events: it is not read back either.
  struct stat st;
  auto stderr_shares = [](const struct stat& f) {
    struct stat e;
    return fstat(STDERR_FILENO, &e) == 0 && e.st_dev == f.st_dev && e.st_ino == f.st_ino;
  };
  if (!out_rotates && names_standard_output(events_path)) {
    if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && !stderr_shares(st)) {
      int flags = fcntl(STDOUT_FILENO, F_GETFL);
      off_t at = flags >= 0 && (flags & O_APPEND) ? st.st_size : lseek(STDOUT_FILENO, 0, SEEK_CUR);
      if (flags >= 0 && at >= 0) {
        impl_->readback_fd = ::open("/proc/self/fd/1", O_RDONLY | O_CLOEXEC);
        impl_->readback_from = at;
      }
    }
  } else if (!out_rotates &&
             (stat(events_path.c_str(), &st) == 0 ? S_ISREG(st.st_mode) && !stderr_shares(st) : errno == ENOENT)) {
    return;  // a regular file, or one the output is yet to create
  }
  if (impl_->readback_fd < 0) {
    impl_->spool = std::make_shared<SpoolSink>();
    out.add_sink(impl_->spool);
  }
}

std::string AnalyzeExtras::error() const {
  std::string why;
  if (impl_->spool && !impl_->spool->error(why)) return why;
  return {};
}

AnalyzeExtras::~AnalyzeExtras() = default;

FlowJudge* AnalyzeExtras::asset_judge() {
  if (!impl_->tracker) {
    impl_->tracker = std::make_unique<AssetTracker>(&impl_->oui, &impl_->impl);
    impl_->tracker->set_annotator(impl_->annotator);
    if (impl_->policy) impl_->tracker->set_binder(impl_->policy->binder);
    impl_->out.add_observer(impl_->tracker.get());
  }
  return impl_->tracker.get();
}

void AnalyzeExtras::set_policy(const FlowJudge* judge, HeaderAnnotator* annotator) {
  impl_->annotator = annotator;
  impl_->policy = report::policy_view_of(judge);
}

int AnalyzeExtras::finish() {
  if (impl_->report_path.empty()) return kOk;
  impl_->out.flush();
  report::ReportOptions opt;
  if (impl_->policy) {
    opt.declared = impl_->policy->declared;
    opt.have_declared = true;
    // The judge of this run knows which addresses it bound by fingerprint: no guessing from its alerts.
    if (impl_->policy->fingerprint_bound) {
      opt.bound = impl_->policy->fingerprint_bound();
      opt.have_bound = true;
    }
  }
  if (impl_->readback_fd < 0 && !impl_->spool) return write_report_with(impl_->events_path, nullptr, impl_->report_path, opt);
  report::EventLog log;
  std::string err;
  bool read = false;
  if (impl_->spool) {
    read = impl_->spool->error(err) && log.load_range(impl_->spool->fd(), 0, impl_->spool->size(), err);
  } else {
    // Up to where this run's last write left standard output (`>>`: the end of the file then).
    off_t end = lseek(STDOUT_FILENO, 0, SEEK_CUR);
    read = log.load_range(impl_->readback_fd, impl_->readback_from, end, err);
  }
  if (!read) {
    print_err("medmon: --report: {}\n", err);
    return kUsage;
  }
  log.source = "analyze";
  return write_report_of(log, impl_->report_path, opt);
}

}  // namespace medmon
