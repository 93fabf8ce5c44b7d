#pragma once
// Builds the sinks a run writes to: the --out file (FileSink, or RotatingFileSink when rotation
// is configured) and the extra sinks of the configuration and command line. Extra sinks that
// talk to a server run behind an AsyncSink; their counters (sink.<name>.queued, .spooled,
// .delivered, .dropped, .errors, .spool_bytes) are copied into the Counters of each
// EventOutput they are attached to, on that output's thread, so `stats` events carry them.
#include <memory>
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
  // Adds the extra sinks only (an output whose file is written elsewhere). Safe to call from
  // several threads for their own outputs.
  void attach_extras(EventOutput& out, bool counters_in_stats = true);
  bool has_extras() const { return !extras_.empty(); }
  // Delivers what is queued (bounded by each sink's drain timeout) and prints a line per extra
  // sink on stderr when something is left undelivered or was dropped (or always, when verbose).
  void close(bool verbose);

 private:
  friend std::unique_ptr<SinkSet> make_sinks(const SinkConfig&, const std::string&);
  std::shared_ptr<EventSink> primary_;
  struct Extra {
    std::shared_ptr<EventSink> sink;
    std::shared_ptr<AsyncSink> async;  // null for stdout/file
    std::vector<std::string> events;
  };
  std::vector<Extra> extras_;
  bool closed_ = false;
};

// Throws std::runtime_error (file cannot be opened) or SinkConfigError.
std::unique_ptr<SinkSet> make_sinks(const SinkConfig& cfg, const std::string& out_path);

}  // namespace medmon
