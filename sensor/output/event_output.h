#pragma once
// Event output: every event is one JSON object on one line, keys in a fixed order, starting
// with the common header (ts, event_type, flow_id, src_ip, src_port, dst_ip, dst_port, proto,
// vlan, vlan_inner, community_id when asked for, then src/dst device and zone when a policy knows them). Lines are handed whole to the
// sinks, so a crash or an error exit never leaves half a line behind.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sensor/common/counters.h"
#include "sensor/common/types.h"
#include "sensor/output/json_writer.h"

namespace medmon {

class HeaderAnnotator;

// The rendered endpoint part of a flow's event header ("flow_id" .. zones), kept by the flow:
// a flow writes many events and this part is the same for all of them.
struct HeaderSlot {
  bool valid = false;
  const HeaderAnnotator* annotator = nullptr;
  uint64_t generation = 0;
  std::string text;
};

// Events reach the kernel in runs of about this many bytes: EventOutput hands its lines to
// batch-taking sinks, and FileSink buffers single lines, up to it (one write per MiB).
inline constexpr size_t kOutputRunBytes = size_t(1) << 20;

// The addressing part of an event, oriented client -> server.
struct EventEndpoints {
  std::string_view flow_id;  // empty: no flow (e.g. a decode anomaly)
  IpAddr src, dst;
  uint16_t src_port = 0, dst_port = 0;
  bool has_ports = true;  // false: left out (a decode anomaly before the transport header)
  uint8_t proto = 0;
  uint16_t vlan = 0;  // outer 802.1Q id, 0 = untagged
  uint16_t vlan_inner = 0;  // the inner id of a QinQ stack, 0 = none
  std::array<uint8_t, 6> src_mac{}, dst_mac{};  // zero when unknown; the annotator binds devices by MAC
  HeaderSlot* header = nullptr;  // the flow's cache of the rendered header, if it keeps one
};

// Adds site knowledge (device and zone names) to the common header. Implemented by the policy.
class HeaderAnnotator {
 public:
  virtual ~HeaderAnnotator() = default;
  virtual void annotate(const EventEndpoints& ep, JsonWriter& w) = 0;
  // Changes whenever annotate() may give another result for the same endpoints (a reload):
  // the output caches the rendered header of the last flow.
  virtual uint64_t annotation_generation() const { return 0; }
  // An annotator that gives only what is fixed by the site (not learnt from judged flows), for
  // outputs written on other threads than the judging one; itself when it learns nothing.
  virtual HeaderAnnotator* site_annotator() { return this; }
};

// Receives finished lines (without the trailing newline).
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void write_line(std::string_view event_type, std::string_view line) = 0;
  virtual void flush() {}
  // A sink that writes every line as it is (FileSink) can take them in runs straight from the
  // output's buffer ("line\nline\n...", whole lines only) instead of a copy of each line.
  virtual bool takes_batches() const { return false; }
  virtual void write_batch(std::string_view lines) { (void)lines; }
  // The first write that failed ("FILE: reason"), empty while every line was written.
  virtual std::string write_error() const { return {}; }
};

// Writes whole lines to fd. On a failed write (full disk, closed pipe) the rest is dropped, the
// part of a line already written is cut off again where the file allows it (so the file ends
// with a whole line), and errno of the failure is returned; 0 when all was written.
int write_lines(int fd, std::string_view lines);

// Sees every event after it is finished (policy engine, asset tracker, summary).
class EventObserver {
 public:
  virtual ~EventObserver() = default;
  virtual void on_event(std::string_view event_type, std::string_view line) = 0;
};

class EventOutput {
 public:
  EventOutput() = default;
  ~EventOutput();
  EventOutput(const EventOutput&) = delete;
  EventOutput& operator=(const EventOutput&) = delete;
  // Starts an event; returns a writer positioned inside the top-level object.
  JsonWriter& begin(std::string_view event_type, Timestamp ts, const EventEndpoints* ep);
  void end();
  // Passes on a line finished elsewhere (merging the output of several workers).
  void emit_line(std::string_view event_type, std::string_view line);

  void add_sink(std::shared_ptr<EventSink> s) {
    (s->takes_batches() ? batch_sinks_ : line_sinks_).push_back(s.get());
    sinks_.push_back(std::move(s));
  }
  void add_observer(EventObserver* o) { observers_.push_back(o); }
  void set_annotator(HeaderAnnotator* a) { annotator_ = a; header_.valid = false; }
  // Adds "community_id" (sensor/output/community_id.h) to the header of flow events. Set before
  // the first event: flows keep their rendered headers.
  void set_community_id(bool on, uint16_t seed = 0) { community_id_ = on; community_seed_ = seed; header_.valid = false; }
  void flush();
  // While a line is handed to the sinks: the endpoints of its header (null for an event without)
  // and where its header, annotation included, ends in the line. For a sink that annotates the
  // line again later (offline workers, whose judges learn on another thread).
  const EventEndpoints* current_endpoints(size_t& header_end) const {
    header_end = header_end_;
    return current_ep_;
  }
  Counters& counters() { return counters_; }
  uint64_t events_written() const { return events_; }
  // While an event is written: where the writer is in its line (the next value's first byte).
  size_t line_offset() const { return line_.size() - line_start_; }

 private:
  uint64_t& type_counter();
  void write_endpoints(const EventEndpoints& ep);
  void pass_batch();

  // The endpoint part of the header ("flow_id" .. zones) of the last event with endpoints:
  // events come in runs from one flow, and this part is the same for all of them.
  struct HeaderCache {
    bool valid = false;
    std::string flow_id;
    IpAddr src, dst;
    uint16_t src_port = 0, dst_port = 0, vlan = 0, vlan_inner = 0;
    bool has_ports = true;
    uint8_t proto = 0;
    std::array<uint8_t, 6> src_mac{}, dst_mac{};
    HeaderAnnotator* annotator = nullptr;
    uint64_t generation = 0;
    std::string text;
    bool matches(const EventEndpoints& ep, HeaderAnnotator* a) const;
  };

  // The event being written, from line_start_ on. With batch-taking sinks, the finished lines
  // before it (newline-terminated) wait here too, so that the event is written only once.
  JsonBuffer line_;
  size_t line_start_ = 0;
  std::string type_;
  std::vector<std::pair<std::string, uint64_t*>> type_counters_;
  JsonWriter writer_{line_};
  HeaderCache header_;
  std::vector<std::shared_ptr<EventSink>> sinks_;
  std::vector<EventSink*> line_sinks_, batch_sinks_;
  std::vector<EventObserver*> observers_;
  HeaderAnnotator* annotator_ = nullptr;
  const EventEndpoints* current_ep_ = nullptr;  // see current_endpoints()
  size_t header_end_ = 0;
  bool community_id_ = false;
  uint16_t community_seed_ = 0;
  Counters counters_;
  uint64_t events_ = 0;
};

// Writes lines to a file descriptor through a large buffer; flushes only whole lines.
class FileSink : public EventSink {
 public:
  // path "-" = stdout. Throws std::runtime_error when the file cannot be opened. truncate_now
  // false: the file is opened without truncating it, and start() empties it (once whatever else
  // may refuse the run, such as a spool directory in use, has been checked).
  explicit FileSink(const std::string& path, bool truncate_now = true);
  ~FileSink() override;
  // Empties the file when it was opened with truncate_now false.
  void start();
  void write_line(std::string_view event_type, std::string_view line) override;
  void flush() override;
  bool takes_batches() const override { return true; }
  void write_batch(std::string_view lines) override;
  std::string write_error() const override { return error_; }

 private:
  void write_all(std::string_view bytes);
  int fd_ = -1;
  bool owned_ = false;
  bool truncate_pending_ = false;
  std::string name_;
  std::string buf_;
  std::string error_;
};

// Keeps lines with their event types in memory (unit tests, worker output before merging).
class MemorySink : public EventSink {
 public:
  void write_line(std::string_view event_type, std::string_view line) override {
    lines.emplace_back(line);
    types.emplace_back(event_type);
  }
  std::vector<std::string> lines;
  std::vector<std::string> types;
};

}  // namespace medmon
