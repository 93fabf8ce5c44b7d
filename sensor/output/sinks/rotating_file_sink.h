#pragma once
// The JSONL file with rotation by size and/or packet time. Lines are written whole: a line never
// spans two files (one longer than the size limit gets a file of its own). A rotated file is
// renamed <file>.1 (older ones shift to .2, .3, ...) or <file>.<UTC time of its first event>;
// a file left by an earlier run is rotated away at start instead of being overwritten. A file
// that cannot be renamed is never truncated: at start that is an error, during a run the events
// go on to the current file and the failure is told on stderr.
#include <cstdint>
#include <string>
#include <vector>

#include "sensor/output/event_output.h"
#include "sensor/output/sinks/sink_config.h"

namespace medmon {

class RotatingFileSink : public EventSink {
 public:
  // Throws std::runtime_error when the file cannot be opened, or an earlier run's file there
  // cannot be rotated away. start_now false: the file is opened as it is, and start() rotates
  // an earlier run's file away (once whatever else may refuse the run has been checked).
  RotatingFileSink(std::string path, RotateSettings r, bool start_now = true);
  ~RotatingFileSink() override;
  // Rotates an earlier run's file away, when the constructor was told to wait. Throws
  // std::runtime_error as the constructor does.
  void start();
  void write_line(std::string_view event_type, std::string_view line) override;
  void flush() override;
  std::string write_error() const override { return error_; }
  uint64_t rotations() const { return rotations_; }
  uint64_t failed_rotations() const { return failed_rotations_; }

  // Packet time (µs since the epoch) of a line starting {"ts":"YYYY-MM-DDTHH:MM:SS.ffffffZ"; -1 if none.
  static int64_t line_time(std::string_view line);
  // line_time() of a file's first line; -1 if none.
  static int64_t first_line_time(const std::string& path);

 private:
  int open_file() const;
  void rotate();
  // Renames the file (whose first event has time first_ts, -1 if unknown) to its rotated name
  // and deletes the oldest beyond `keep`. Returns what failed, empty when it was moved.
  std::string move_away(int64_t first_ts);
  std::string path_;
  RotateSettings r_;
  int fd_ = -1;
  bool started_ = false;
  uint64_t size_ = 0;      // current file, buffer included
  std::string buf_;
  int64_t period_ = 0;     // interval index of the current file
  bool have_period_ = false;
  int64_t first_ts_ = -1;  // first event of the current file
  uint64_t rotations_ = 0;
  uint64_t failed_rotations_ = 0;
  std::string error_;  // the first failed write
  std::string last_stamp_;  // time stamp name of the last rotated file, and its -N (0: none)
  unsigned long last_n_ = 0;
  // Time stamp names this sink gave, oldest first: with `keep`, the files of this run go last,
  // in the order they were rotated (their names follow the first event's time, and events do
  // not come in time order).
  std::vector<std::string> given_;
};

}  // namespace medmon
