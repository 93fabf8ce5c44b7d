#pragma once
// Builds the sinks a run writes to: the --out file (FileSink, or RotatingFileSink when rotation
// is configured) and the extra sinks of the configuration and command line. Extra sinks that
// talk to a server run behind an AsyncSink; their counters (sink.<name>.queued, .spooled,
// .delivered, .dropped, .errors, .spool_bytes, .stopped) are copied into the Counters of each
// EventOutput they are attached to, on that output's thread, so `stats` events carry them.
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sensor/output/event_output.h"
#include "sensor/output/sinks/sink_config.h"

namespace medmon {

class AsyncSink;

class SinkSet {
 public:
  ~SinkSet();
  // The --out file.
  std::shared_ptr<EventSink> primary() const { return primary_; }
  // Adds the primary sink and the extra sinks to `out`. counters_in_stats: the extra sinks'
  // delivery counters (sink.<name>.*) go into `out`'s counters and so into `stats` events. A
  // replay leaves them out: they follow the server's timing, and its output must be the same
  // on every run.
  void attach(EventOutput& out, bool counters_in_stats = true);
  // Adds the extra sinks only (an output whose file is written elsewhere).
  void attach_extras(EventOutput& out, bool counters_in_stats = true);
  // For one of several worker threads, each with its own output: the --out file and the extra
  // file/stdout sinks are reached through a SharedSink each (one lock per file), the syslog and
  // ClickHouse sinks directly (their queue is thread-safe). Safe to call from the workers.
  void attach_worker(EventOutput& out, bool counters_in_stats = true);
  bool has_extras() const { return !extras_.empty(); }
  // Opens the spool directories of the syslog/ClickHouse sinks and starts their threads, then
  // empties the --out file and the file sinks (or rotates an earlier run's file away), when
  // make_sinks was told to wait (to be called once privileges are dropped). A spool directory
  // that cannot be used or is in use stops the run before any file of an earlier run is
  // touched. Throws std::runtime_error.
  void start();
  // Delivers what is queued and prints a line per extra sink on stderr when something is left
  // undelivered or was dropped (or always, when verbose). The sinks drain side by side: this
  // takes at most the largest drain timeout (plus writing what is left to the spools), or until
  // request_drain_cut().
  void close(bool verbose);
  // The first failed write of the --out file or of a file/stdout sink ("FILE: reason"), empty
  // when all were written.
  std::string write_error() const;
  // Whether every output has failed: the --out file and every file/stdout sink, with no sink
  // that delivers to a server. Nothing written from then on reaches anyone.
  bool all_failed() const;

 private:
  friend std::unique_ptr<SinkSet> make_sinks(const SinkConfig&, const std::string&, bool);
  std::shared_ptr<EventSink> primary_;
  std::mutex primary_mutex_;
  struct Extra {
    std::shared_ptr<EventSink> sink;
    std::shared_ptr<AsyncSink> async;  // null for stdout/file
    std::vector<std::string> events;
    std::shared_ptr<EventSink> file;   // stdout/file: the sink behind the event filter
    std::unique_ptr<std::mutex> file_mutex;
  };
  std::vector<Extra> extras_;
  // Empty the --out file and the file sinks (or rotate them), once every spool is in hand.
  std::vector<std::function<void()>> file_starts_;
  bool started_ = false;
  bool closed_ = false;
};

// One worker's way into a file (or standard output) that several worker threads write: the
// worker's lines are buffered here and handed over in chunks of whole lines under the file's
// lock, so lines never interleave. A sink that takes batches (FileSink) gets each chunk at once;
// any other (RotatingFileSink) gets it line by line, so that it decides rotation per line. The
// sink behind it sees no event types: filter before it.
class SharedSink : public EventSink {
 public:
  SharedSink(std::shared_ptr<EventSink> file, std::mutex& m) : file_(std::move(file)), m_(m) {}
  void write_line(std::string_view event_type, std::string_view line) override;
  void flush() override;

 private:
  std::shared_ptr<EventSink> file_;
  std::mutex& m_;
  std::string buf_;
};

// Asks the sinks draining at exit (SinkSet::close) to stop now, keeping what they have not
// delivered in their spools: the operator's second stop signal. Async-signal-safe; it holds
// for the rest of the process (a request before the drain ends it as soon as it begins).
void request_drain_cut();
bool drain_cut_requested();
void clear_drain_cut();  // for tests

// Throws std::runtime_error (file cannot be opened, spool directory unusable) or SinkConfigError
// (two sinks on one file or one spool directory). The files are opened but nothing in them is
// truncated or rotated before every spool directory is locked. start_async false: the
// syslog/ClickHouse sinks, and emptying the files, wait for SinkSet::start().
std::unique_ptr<SinkSet> make_sinks(const SinkConfig& cfg, const std::string& out_path, bool start_async = true);

}  // namespace medmon
