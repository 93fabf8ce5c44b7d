#include "sensor/output/sinks/sinks.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>

#include "sensor/common/diag.h"
#include "sensor/common/paths.h"
#include "sensor/output/sinks/async_sink.h"
#include "sensor/output/sinks/clickhouse_sink.h"
#include "sensor/output/sinks/rotating_file_sink.h"
#include "sensor/output/sinks/sink_error.h"
#include "sensor/output/sinks/syslog_sink.h"

namespace medmon {

namespace {
// Passes on the event types a sink wants (stdout/file extras; AsyncSink filters itself).
class FilterSink : public EventSink {
 public:
  FilterSink(std::shared_ptr<EventSink> s, std::vector<std::string> events) : s_(std::move(s)), events_(std::move(events)) {}
  void write_line(std::string_view type, std::string_view line) override {
    if (!events_.empty() && std::find(events_.begin(), events_.end(), type) == events_.end()) return;
    s_->write_line(type, line);
  }
  void flush() override { s_->flush(); }

 private:
  std::shared_ptr<EventSink> s_;
  std::vector<std::string> events_;
};

// One per EventOutput: forwards to the shared AsyncSink and copies its counters into the
// output's Counters on the output's own thread (Counters is not thread-safe).
class CountingFront : public EventSink {
 public:
  CountingFront(std::shared_ptr<AsyncSink> s, Counters& c) : s_(std::move(s)) {
    std::string p = "sink." + s_->name() + ".";
    queued_ = &c.at(p + "queued");
    spooled_ = &c.at(p + "spooled");
    delivered_ = &c.at(p + "delivered");
    dropped_ = &c.at(p + "dropped");
    errors_ = &c.at(p + "errors");
    spool_bytes_ = &c.at(p + "spool_bytes");
    stopped_ = &c.at(p + "stopped");
  }
  void write_line(std::string_view type, std::string_view line) override {
    publish();  // before the line: a stats event shows the state up to the event before it
    s_->write_line(type, line);
  }
  void flush() override {
    s_->flush();
    publish();
  }

 private:
  void publish() {
    const auto& c = s_->counters();
    *queued_ = c.queued.load(std::memory_order_relaxed);
    *spooled_ = c.spooled.load(std::memory_order_relaxed);
    *delivered_ = c.delivered.load(std::memory_order_relaxed);
    *dropped_ = c.dropped.load(std::memory_order_relaxed);
    *errors_ = c.errors.load(std::memory_order_relaxed);
    *spool_bytes_ = c.spool_bytes.load(std::memory_order_relaxed);
    *stopped_ = c.stopped.load(std::memory_order_relaxed);
  }
  std::shared_ptr<AsyncSink> s_;
  uint64_t *queued_, *spooled_, *delivered_, *dropped_, *errors_, *spool_bytes_, *stopped_;
};
}  // namespace

namespace {
// Set from a signal handler: a lock-free atomic is all a handler may touch.
std::atomic<bool> g_drain_cut{false};
static_assert(std::atomic<bool>::is_always_lock_free);
}  // namespace

void request_drain_cut() { g_drain_cut.store(true, std::memory_order_relaxed); }
bool drain_cut_requested() { return g_drain_cut.load(std::memory_order_relaxed); }
void clear_drain_cut() { g_drain_cut.store(false, std::memory_order_relaxed); }

SinkSet::~SinkSet() { close(false); }

void SinkSet::attach(EventOutput& out, bool counters_in_stats) {
  if (primary_) out.add_sink(primary_);
  attach_extras(out, counters_in_stats);
}

void SinkSet::attach_extras(EventOutput& out, bool counters_in_stats) {
  for (auto& e : extras_) {
    if (e.async && counters_in_stats) out.add_sink(std::make_shared<CountingFront>(e.async, out.counters()));
    else out.add_sink(e.sink);
  }
}

void SinkSet::attach_worker(EventOutput& out, bool counters_in_stats) {
  if (primary_) out.add_sink(std::make_shared<SharedSink>(primary_, primary_mutex_));
  for (auto& e : extras_) {
    if (e.async) {
      if (counters_in_stats) out.add_sink(std::make_shared<CountingFront>(e.async, out.counters()));
      else out.add_sink(e.sink);
    } else {
      // The file sinks are not thread-safe: each worker gets its own buffer in front of them.
      out.add_sink(std::make_shared<FilterSink>(std::make_shared<SharedSink>(e.file, *e.file_mutex), e.events));
    }
  }
}

void SharedSink::write_line(std::string_view, std::string_view line) {
  buf_.append(line);
  buf_.push_back('\n');
  if (buf_.size() > (256u << 10)) flush();
}

void SharedSink::flush() {
  if (buf_.empty()) return;
  std::lock_guard<std::mutex> g(m_);
  if (file_->takes_batches()) {
    file_->write_batch(buf_);
  } else {
    std::string_view rest(buf_);
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      file_->write_line("", rest.substr(0, nl));
      rest.remove_prefix(nl + 1);
    }
  }
  file_->flush();
  buf_.clear();
}

void SinkSet::start() {
  if (started_) return;
  // Spools first: a second process refused because a spool directory is in use must leave the
  // running sensor's files alone.
  for (auto& e : extras_)
    if (e.async) e.async->start();
  for (auto& f : file_starts_) f();
  started_ = true;
}

void SinkSet::close(bool verbose) {
  if (closed_) return;
  closed_ = true;
  // Every drain timeout runs from now: the sinks deliver side by side.
  for (auto& e : extras_)
    if (e.async) e.async->begin_close();
  // A second stop signal ends the drain at once: what is left goes to the spools.
  bool cut = false;
  for (auto& e : extras_) {
    if (!e.async) continue;
    while (!e.async->drained(std::chrono::milliseconds(50))) {
      if (cut || !drain_cut_requested()) continue;
      cut = true;
      print_err("medmon: stopping now (signal received again): sinks stop delivering; undelivered events stay in their spool\n");
      for (auto& x : extras_)
        if (x.async) x.async->cut_drain();
    }
  }
  for (auto& e : extras_) {
    if (!e.async) { e.sink->flush(); continue; }
    uint64_t left = e.async->close();
    const auto& c = e.async->counters();
    if (verbose || left || c.dropped || c.stopped)
      print_err("medmon: sink {}: {} delivered, {} spooled, {} dropped, {} failed attempts{}{}\n", e.async->name(),
                 c.delivered.load(), c.spooled.load(), c.dropped.load(), c.errors.load(),
                 c.stopped ? fmt::format("; stopped, the server refused the sink: {}", e.async->last_error()) : "",
                 !left ? ""
                 : e.async->private_spool()
                     ? fmt::format("; {} bytes of events left in {} (the private spool directory, which no later run "
                                   "reads: set `spool` or --spool-dir)", left, e.async->spool_dir())
                     : fmt::format("; {} bytes of events wait in {} for the next run", left, e.async->spool_dir()));
  }
  if (primary_) primary_->flush();
}

std::string SinkSet::write_error() const {
  if (primary_)
    if (std::string e = primary_->write_error(); !e.empty()) return e;
  for (const auto& e : extras_)
    if (e.file)
      if (std::string w = e.file->write_error(); !w.empty()) return w;
  return {};
}

bool SinkSet::all_failed() const {
  if (primary_ && primary_->write_error().empty()) return false;
  for (const auto& e : extras_)
    if (!e.file || e.file->write_error().empty()) return false;
  return true;
}

namespace {
// A directory made absolute, with "." and ".." and the symbolic links of its existing part
// resolved.
std::filesystem::path resolved_dir(std::string d) {
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(d), ec);
  if (ec) p = std::filesystem::absolute(d).lexically_normal();
  std::string s = p.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// Whether `inner` is `outer` or lies below it.
bool within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}
}  // namespace

std::unique_ptr<SinkSet> make_sinks(const SinkConfig& cfg, const std::string& out_path, bool start_async) {
  // Two sinks writing one file would destroy each other's lines: checked before any is opened.
  std::vector<std::pair<std::string, std::string>> files;  // path, what writes it
  if (out_path != "-") files.emplace_back(out_path, "the --out file");
  for (const auto& s : cfg.sinks) {
    if (s.type != "file") continue;
    for (const auto& [path, what] : files)
      if (same_output_file(s.url, path)) throw SinkConfigError(fmt::format("{}: {} is already {}", s.where, s.url, what));
    files.emplace_back(s.url, fmt::format("the file of sink '{}'", s.name));
  }
  // Two sinks in one spool directory would deliver, and delete, each other's events; one inside
  // another's is refused too (a spool directory is the sink's alone).
  std::vector<std::pair<std::filesystem::path, std::string>> spools;  // resolved, sink name
  for (const auto& s : cfg.sinks) {
    if (s.spool_dir.empty() || (s.type != "syslog" && s.type != "clickhouse")) continue;
    auto p = resolved_dir(s.spool_dir);
    for (const auto& [q, name] : spools) {
      if (p == q)
        throw SinkConfigError(fmt::format("{}: spool {} is already the spool directory of sink '{}'", s.where, s.spool_dir, name));
      if (within(p, q) || within(q, p))
        throw SinkConfigError(fmt::format("{}: spool {} {} the spool directory of sink '{}' ({})", s.where, s.spool_dir,
                                          within(p, q) ? "lies inside" : "holds", name, q.string()));
    }
    spools.emplace_back(p, s.name);
  }
  // Every file is checked before any is opened: opening the --out file truncates the events of an
  // earlier run, which a sink that cannot be opened must not cost.
  for (const auto& s : cfg.sinks)
    if (s.type == "file")
      if (std::string why = cannot_write_reason(s.url); !why.empty())
        throw SinkOpenError(fmt::format("{}: {}: {}", s.where, s.url, why));
  if (out_path != "-")
    if (std::string why = cannot_write_reason(out_path); !why.empty())
      throw SinkOpenError(fmt::format("{}: {}", out_path, why));
  auto set = std::make_unique<SinkSet>();
  // Files are opened here but emptied (or rotated away) by start(), after the spools.
  auto open_file = [&](const std::string& path, const RotateSettings& r) -> std::shared_ptr<EventSink> {
    if (r.enabled()) {
      auto f = std::make_shared<RotatingFileSink>(path, r, false);
      set->file_starts_.push_back([f] { f->start(); });
      return f;
    }
    auto f = std::make_shared<FileSink>(path, false);
    set->file_starts_.push_back([f] { f->start(); });
    return f;
  };
  if (cfg.rotate.enabled() && out_path == "-")
    throw SinkConfigError("rotation needs --out FILE (standard output cannot be rotated)");
  set->primary_ = open_file(out_path, cfg.rotate);
  std::string sensor_id = cfg.sensor_id;
  if (sensor_id.empty()) {
    char h[256] = {};
    ::gethostname(h, sizeof h - 1);
    sensor_id = h;
  }
  for (const auto& s : cfg.sinks) {
    SinkSet::Extra e;
    e.events = s.events;
    e.file_mutex = std::make_unique<std::mutex>();
    if (s.type == "stdout") {
      // Another name of standard output (--out /dev/stdout, or the file it is redirected to) too:
      // every event would be written twice into one stream.
      if (names_standard_output(out_path))
        throw SinkConfigError(fmt::format("{}: events already go to standard output (--out {})", s.where, out_path));
      e.file = std::make_shared<FileSink>("-");
      e.sink = std::make_shared<FilterSink>(e.file, s.events);
    } else if (s.type == "file") {
      e.file = open_file(s.url, s.rotate);
      e.sink = std::make_shared<FilterSink>(e.file, s.events);
    } else {
      std::unique_ptr<Backend> b;
      try {
        if (s.type == "syslog") b = std::make_unique<SyslogBackend>(s, sensor_id);
        else b = std::make_unique<ClickHouseBackend>(s, sensor_id);
      } catch (const SinkConfigError& x) {
        throw SinkConfigError(fmt::format("{}: {}", s.where, x.what()));
      }
      e.async = std::make_shared<AsyncSink>(s, std::move(b), false);
      e.sink = e.async;
    }
    set->extras_.push_back(std::move(e));
  }
  if (start_async) set->start();
  return set;
}

}  // namespace medmon
