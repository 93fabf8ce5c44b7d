#pragma once
// A sink that delivers on its own thread behind a bounded queue, so a slow or unreachable
// receiver never blocks packet processing. When the queue is full or the receiver fails,
// events go to a spool directory (bounded in bytes) and are delivered from it, in order, when
// the receiver is back; events that fit neither are dropped and counted.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sensor/output/event_output.h"
#include "sensor/output/sinks/net.h"
#include "sensor/output/sinks/sink_config.h"

namespace medmon {

// One event on its way. (run, seq) identifies it across retries and restarts of the sensor.
struct Record {
  std::string run;   // id of the sensor process that produced it (12 hex digits)
  uint64_t seq = 0;  // per run, from 1
  std::string type;
  std::string line;
};

// The receiving end (syslog, ClickHouse). Runs on the sink thread only.
class Backend {
 public:
  virtual ~Backend() = default;
  // Delivers the records, in order. false: nothing or part was delivered; the same batch comes
  // again later, so a backend that delivered part of it must remember what (see ClickHouse).
  virtual bool deliver(const std::vector<Record>& batch, std::string& error) = 0;
  // The run id of this process's own events (told before the first delivery): records of
  // another run come from the spool of an earlier process.
  virtual void set_run(const std::string& run) { (void)run; }
  // Records of the batches delivered since the last call that were left out for good (a syslog
  // datagram too large to send): counted as dropped, not delivered.
  virtual uint64_t take_skipped() { return 0; }
  // After a failed delivery: whether the receiver refused the sink itself rather than the batch
  // (wrong credentials, no rights, no such database or table). Sending again cannot help until
  // the operator changes something: the sink stops delivering (AsyncSink).
  virtual bool refuses_sink() const { return false; }
  // The sink's drain deadline (told before the first delivery): a delivery in progress gives
  // up when it passes.
  void set_deadline(const Deadline* d) { deadline_ = d; }

 protected:
  const Deadline* deadline_ = nullptr;
};

// Files of a spool directory: segments named by a 20-digit number, oldest first, plus a
// cursor file (segment and offset already delivered). Lines: run \t seq \t type \t event.
class Spool {
 public:
  // Creates the directory when missing, locks it (a `lock` file, flock: one process per spool
  // directory) and checks it can be written; picks up segments left by an earlier run. Throws
  // std::runtime_error.
  Spool(std::string dir, uint64_t max_bytes);
  ~Spool();
  const std::string& dir() const { return dir_; }
  bool empty() const { return segments_.empty() && buf_.empty() && !cur_bytes_; }
  uint64_t bytes() const { return bytes_ + buf_.size(); }
  // Bytes still to deliver: bytes() less the delivered part of a segment being read.
  uint64_t pending_bytes() const;
  // Records failed writes took with them since the last call, and the error of the last one.
  uint64_t take_lost(std::string& error) { error = lost_error_; uint64_t n = lost_; lost_ = 0; return n; }
  // Appends at the end; false when the size cap would be exceeded (the record is not kept).
  bool append(const Record& r);
  // Writes buffered records to the current segment.
  void sync();
  // Puts records before everything else in the spool, as a segment of their own (undelivered at
  // exit, or taken from memory when the receiver failed: older than the rest). false when the
  // size cap would be exceeded or the write failed (nothing is kept).
  bool prepend(const std::vector<Record>& recs);
  bool prepend(const std::deque<Record>& recs);
  // Closes the segment being written so the reader may take it; returns the oldest segment
  // (0 when the spool is empty).
  uint64_t take_oldest();
  // Reads the records of a segment after the cursor; ends[i] is the offset just past record i.
  // Damaged lines are skipped and counted in `damaged`.
  std::vector<Record> read(uint64_t segment, std::vector<uint64_t>& ends, uint64_t& damaged);
  // Records up to `offset` bytes of `segment` as delivered.
  void commit(uint64_t segment, uint64_t offset);
  // The whole segment is delivered.
  void remove(uint64_t segment);

  static std::string encode(const Record& r);
  // Parses one spool line; false when it is damaged.
  static bool decode(std::string_view line, Record& r);

 private:
  std::string path(uint64_t seg) const;
  void open_current();
  bool prepend_encoded(const std::string& all);
  std::string dir_;
  uint64_t max_;
  int lock_fd_ = -1;
  std::deque<uint64_t> segments_;  // closed segments, oldest first
  uint64_t cur_ = 0;               // segment being written (0: none)
  int cur_fd_ = -1;
  uint64_t cur_bytes_ = 0;
  uint64_t bytes_ = 0;             // on disk, all segments
  uint64_t next_id_ = 0;
  uint64_t cursor_seg_ = 0, cursor_off_ = 0;
  uint64_t lost_ = 0;
  std::string lost_error_;
  std::string buf_;
  uint64_t buf_records_ = 0;
};

struct SinkCounters {
  std::atomic<uint64_t> queued{0};     // in memory now, with the batch being delivered from it
  std::atomic<uint64_t> spooled{0};    // written to the spool, in total
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> dropped{0};    // neither queue nor spool had room
  std::atomic<uint64_t> errors{0};     // failed delivery attempts
  std::atomic<uint64_t> spool_bytes{0};
  std::atomic<uint64_t> stopped{0};    // 1: the receiver refused the sink itself; nothing more is sent
};

class AsyncSink : public EventSink {
 public:
  // Throws std::runtime_error when the spool directory cannot be used. start_now false: the
  // spool and the thread wait for start() (after privileges are dropped, so that what it creates
  // belongs to the user it runs as).
  AsyncSink(const SinkSpec& spec, std::unique_ptr<Backend> backend, bool start_now = true);
  ~AsyncSink() override;
  // Opens (creates, locks, checks) the spool directory and starts the thread. Throws
  // std::runtime_error. Events written before it wait in memory.
  void start();
  // Thread-safe: workers may share one sink.
  void write_line(std::string_view event_type, std::string_view line) override;
  void flush() override;
  // Starts the drain: the drain timeout runs from now. Several sinks drain side by side when
  // each is told before any is closed.
  void begin_close();
  // Delivers what is left (waiting at most the drain timeout from begin_close()), spools the
  // rest, stops the thread. Returns the bytes of events left undelivered (kept in the spool).
  uint64_t close();
  // After begin_close(): ends the drain now (the operator asked twice to stop); a delivery in
  // progress gives up within 100 ms and what is left goes to the spool.
  void cut_drain();
  // After begin_close(): whether the sink thread has finished, waiting at most `wait` for it.
  bool drained(std::chrono::milliseconds wait);
  const SinkCounters& counters() const { return counters_; }
  const std::string& name() const { return spec_.name; }
  const std::string& spool_dir() const { return spool_ ? spool_->dir() : spec_.spool_dir; }
  const std::string& last_error() const { return last_error_shown_; }
  // The spool is the private default under $TMPDIR, which no later run reads.
  bool private_spool() const { return temp_spool_; }

 private:
  void run();
  enum class Outcome { delivered, spooled, out_of_time, stopped };
  // Delivers a batch, retrying until it went or the drain deadline passed. A batch taken from
  // memory goes to the spool, with the queue behind it, when the receiver fails (spooled).
  // A receiver that refuses the sink itself is not asked again (stopped).
  Outcome deliver(std::vector<Record>& batch, bool from_memory);
  // The receiver refused the sink itself: says so, and keeps the batch (from memory) and every
  // later event in the spool, for a run that has the sink set right.
  Outcome stop_delivering(std::vector<Record>& batch, bool from_memory, const std::string& error);
  // Moves the batch and the memory queue to the head of the spool; m_ held. false when the
  // batch did not fit (it stays with the caller; the queue may have moved).
  bool spool_queue(std::vector<Record>& batch);
  bool accepts(std::string_view type) const;
  void report_error(const std::string& e);
  void spool_losses();

  SinkSpec spec_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Spool> spool_;
  bool temp_spool_ = false;
  std::string run_id_;
  uint64_t next_seq_ = 1;

  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Record> mem_;
  uint64_t mem_bytes_ = 0;
  bool spool_mode_ = false;  // once anything is spooled, everything after it is too (order)
  bool refused_ = false;     // the receiver refused the sink itself: nothing more is sent
  bool flush_req_ = false;
  bool stop_ = false;
  bool stopped_ = false;
  size_t in_flight_ = 0;     // events of the batch being delivered from memory
  std::chrono::steady_clock::time_point deadline_;
  Deadline stop_deadline_{INT64_MAX};  // deadline_ for the backend, which reads it mid-delivery
  uint64_t left_ = 0;

  SinkCounters counters_;
  std::string last_error_shown_;
  std::chrono::steady_clock::time_point last_report_{};
  std::thread thread_;
};

// A fresh 12-hex-digit id for this process's events.
std::string new_run_id();

}  // namespace medmon
