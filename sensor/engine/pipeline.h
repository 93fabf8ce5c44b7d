#pragma once
// One packet goes through decode -> flow table -> TCP reassembly -> dissectors / nDPI -> policy
// once, on one thread, with no copy of payload except out-of-order data.
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>
#include <utility>

#include "dissectors/api/dissector.h"
#include "dissectors/ndpi/ndpi_classifier.h"
#include "sensor/decode/decoder.h"
#include "sensor/engine/config.h"
#include "sensor/engine/flow_judge.h"
#include "sensor/flow/flow_table.h"
#include "sensor/flow/tcp_reassembler.h"
#include "sensor/output/event_output.h"
#include "sensor/output/pseudonymiser.h"

namespace medmon {

// What a `stats` event reports besides the counters.
struct StatsSnapshot {
  uint64_t packets = 0, bytes = 0, flows_active = 0;
  bool have_capture = false;
  uint64_t received = 0, dropped = 0, if_dropped = 0;
  int worker = -1;  // live capture on several workers: which one
  std::string filter;  // the BPF expression the packets were read through (analyze --filter, live)
};
void write_stats_event(EventOutput& out, Timestamp ts, const StatsSnapshot& s, const Counters& c);
// Runs the judges on one ending flow, in order; the first verdict given goes into its `flow` event.
FlowVerdict judge_flow(const std::vector<FlowJudge*>& judges, const FlowSummary& flow, EventOutput& out);
// The verdict members of a `flow` event (nothing when v.verdict is empty); they come last.
void write_verdict(JsonWriter& w, const FlowVerdict& v);
// A `flow` event line written without a verdict, with v's members added at its end.
std::string with_verdict(std::string_view flow_line, const FlowVerdict& v);

// The servers seen speaking a medical protocol in clear (server, app): a TLS flow to one is
// named after the protocol when its registry entry says so (tls_after_clear). Bounded.
using AppServers = std::set<std::pair<IpAddr, std::string>>;
void remember_app_server(AppServers& servers, const IpAddr& server, const std::string& app);
// A TLS flow's protocol ("dicom-tls") from what the dissectors' registry entries know, or empty:
// by its server port (tls_ports), then by its server, announced by a protocol (tls_server) or
// seen speaking one in clear (tls_after_clear).
std::string tls_app_by_port(uint16_t server_port);
std::string tls_app_by_server(const IpAddr& server, uint16_t server_port, const AppServers& spoke_in_clear);

// Live capture with --workers: the servers seen speaking in clear, one set for all the workers'
// pipelines, so that a TLS flow's name does not depend on which worker the fanout gave the clear
// flow. Bounded as AppServers; locked only when a pipeline learns a new pair or names a TLS flow.
class SharedAppServers {
 public:
  void remember(const IpAddr& server, const std::string& app);
  std::string tls_app(const IpAddr& server, uint16_t server_port) const;

 private:
  mutable std::mutex m_;
  AppServers servers_;
};

// analyze --workers: the names a TLS flow takes from other flows (tls_app_by_server) are given
// by the merge, which sees the flows of every worker in output order; a worker's pipeline tells
// it what those names depend on, as each flow ends.
class TlsNamingDeferral {
 public:
  virtual ~TlsNamingDeferral() = default;
  // A flow that spoke `app` in clear ends.
  virtual void spoke_in_clear(const Flow& f, const std::string& app) = 0;
  // A TLS flow no server port names ends: its `flow` event, being written, says "app":null,
  // the value's `null` at byte `app_at` of the line (what the merge replaces with the name).
  virtual void unnamed_tls(const Flow& f, size_t app_at) = 0;
};

class Pipeline {
 public:
  // judges: called in order for every ending flow (policy, asset inventory, ...); the first
  // non-empty verdict goes into the flow event. Only used at depth `policy`.
  Pipeline(const SensorConfig& cfg, Depth depth, EventOutput& out, const Pseudonymiser& phi,
           std::vector<FlowJudge*> judges = {});
  ~Pipeline();

  // Sets the link type of the packets that follow (each input file may have its own).
  void set_linktype(int dlt);
  // Builds the classifiers' tables now instead of on the first flow that needs them (live
  // capture: no pause once packets arrive).
  void prepare();
  void packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts);
  // analyze --workers: a fragment the reader held for its datagram's first fragment, handed on
  // after later packets moved the clock past it. It is taken at its own time (its datagram's
  // timeout counts from it), but the clock does not go back to it: one pipeline's clock did not,
  // the fragment having come in its place.
  // frag_ts: the time its datagram's timeout counts from, earlier than ts when the input's time
  // went back since it came.
  void held_packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts, Timestamp frag_ts);
  // Packet time went on without a packet for this pipeline (with --workers: another worker's
  // packet): its clock follows it (forward, or back by more than kTimeBackUsec) and its flows
  // and fragments time out as a packet of that time would time them out, so expiry does not
  // depend on which worker a flow hashes to.
  void advance_clock(Timestamp ts);
  // analyze --workers: another worker's fragment reached its fragment table at `ts`. One
  // pipeline's table times its datagrams out whenever it takes a fragment (FragmentTable::add),
  // whichever datagram the fragment belongs to: every worker's table does so too.
  void expire_fragments(Timestamp ts);
  // analyze --workers, at the end of the input: the input's latest time, which finish() times
  // out flows with (as one pipeline's), without a check of timeouts now.
  void catch_up_clock(Timestamp ts);
  // Live capture with --workers: packet time another worker saw. The clock only moves forward
  // (the workers' latest times differ by a batch), with what a packet of that time would bring:
  // idle flows and fragments time out, the periodic `stats` is written.
  void follow_clock(Timestamp ts);
  // Ends every open flow (end of input, or `interrupted` on a signal) and, unless told not to,
  // writes the final stats, dated by the latest packet time. stop_time: live capture's time of
  // the stop (the kernel stamps packets with the same clock), the date when no packet came.
  // capture_latest: live capture with --workers, the latest packet time over all workers (the
  // final stats of every worker are those of one moment, the capture's end).
  void finish(FlowEnd why, bool with_stats = true, std::optional<Timestamp> stop_time = std::nullopt,
              Timestamp capture_latest = {});
  // Writes a `stats` event now (packet time).
  void write_stats(Timestamp ts);
  StatsSnapshot snapshot();
  void set_worker_id(int id) { worker_id_ = id; }
  // analyze --workers: the input position of the next packet (kept in its flow: Flow::last_input),
  // and a call as each flow ends, before its events are written (the merge orders the flows that
  // end together in a tick, or at the end of input, as one flow table ends them).
  void set_input_position(uint64_t pos) { input_pos_ = pos; }
  void set_flow_end_observer(std::function<void(const Flow&)> fn) { flow_end_observer_ = std::move(fn); }
  void set_tls_naming_deferral(TlsNamingDeferral* d) { tls_deferral_ = d; }
  // Live capture with --workers: the servers seen speaking in clear are those of every worker.
  void set_shared_app_servers(SharedAppServers* s) { shared_app_servers_ = s; }
  // Extra gauges for `stats` (kernel drops in live mode).
  void set_capture_stats(uint64_t received, uint64_t dropped, uint64_t if_dropped);
  // Called before each `stats` event is written (live capture: reads the kernel's counters then,
  // so that `capture.received` counts every packet the event counts). Null: none.
  void set_stats_refresh(std::function<void()> refresh) { stats_refresh_ = std::move(refresh); }
  // The filter the input was read through (`analyze --filter`, `live -f` or capture.bpf, as
  // reloaded), said in `stats`: packets outside it were not seen.
  void set_input_filter(std::string bpf) { input_filter_ = std::move(bpf); }

  uint64_t packets() const { return packets_; }
  size_t active_flows() const { return flows_ ? flows_->size() : 0; }
  uint64_t bytes() const { return bytes_; }
  Timestamp last_ts() const { return last_ts_; }
  Counters& counters() { return out_.counters(); }

 private:
  struct FlowState;
  class DirSink;
  FlowState& state_of(Flow& f);
  void on_decode_anomaly(std::string_view name, uint32_t offset, const Packet& p);
  // A packet counted and its clock moved: decoded and taken into its flow.
  void handle(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts);
  void on_flow_end(Flow& f, FlowEnd why);
  void write_flow_event(Flow& f, FlowEnd why, FlowState* st);
  void tcp(Flow& f, Dir dir, const Packet& p, bool ack_plausible);
  // A TCP packet flow tracking did not take as it came (TcpVerdict): an `anomaly` event of the
  // flow, rate-limited as decode anomalies are.
  void tcp_anomaly(Flow& f, Dir dir, const Packet& p, std::string_view name);
  // A TCP flow picked up without its handshake: the first bytes of a direction may show which
  // side is the server; the flow is turned round if nothing was said of its sides yet.
  void orient_by_content(Flow& f, Dir& dir, const Packet& p);
  void udp(Flow& f, Dir dir, const Packet& p);
  void time_went_back(Timestamp ts);
  // Packet time on to `ts`, or back when it jumped back; false when neither (a little back).
  bool move_clock(Timestamp ts);
  // Ends the flows and fragmented datagrams due by now; the next check a second later.
  void expire_now();
  // Packet time moved on to clock_: due timeouts and periodic stats.
  void tick();

  AppServers app_servers_;  // with shared_app_servers_: those already told to it
  SharedAppServers* shared_app_servers_ = nullptr;
  TlsNamingDeferral* tls_deferral_ = nullptr;

  SensorConfig cfg_;
  Depth depth_;
  EventOutput& out_;
  const Pseudonymiser& phi_;
  std::vector<FlowJudge*> judges_;
  std::vector<const DissectorInfo*> probes_;  // the registry's entries and the signatures' (probe_candidates)
  std::unique_ptr<Decoder> decoder_;
  std::vector<uint8_t> joined_;  // orient_by_content: a direction's first bytes over two packets
  ProbeHoldMemory hold_mem_;  // before flows_: their feeders give it back as they go
  HeldMemory held_mem_;       // the same
  std::unique_ptr<FlowTable> flows_;
  ReassemblyMemory reasm_mem_;
  std::unique_ptr<NdpiClassifier> ndpi_;
  Timestamp last_ts_{};  // the latest packet time seen
  std::function<void()> stats_refresh_;
  uint64_t input_pos_ = 0;
  std::function<void(const Flow&)> flow_end_observer_;
  // Packet time as timeouts and periodic stats count it: the latest, unless time went back by
  // more than kTimeBackUsec (then from there on).
  Timestamp clock_{std::numeric_limits<int64_t>::min()};  // before the first packet, whatever its time
  static constexpr int64_t kTimeBackUsec = 1'000'000;
  int64_t next_expire_usec_ = 0;
  int64_t next_stats_usec_ = 0;
  uint64_t packets_ = 0, bytes_ = 0;
  uint64_t cap_received_ = 0, cap_dropped_ = 0, cap_if_dropped_ = 0;
  bool have_capture_stats_ = false;
  int worker_id_ = -1;
  std::string input_filter_;
  uint64_t& c_tcp_gaps_;
  uint64_t& c_overlap_conflicts_;
  uint64_t& c_reversed_by_content_;
  uint64_t& c_orientation_kept_;
  uint64_t& c_time_backwards_;
  // Decode anomaly events written per anomaly name in a window of packet time (a fixed set of
  // names, so the map stays small).
  static constexpr uint32_t kMaxDecodeAnomalies = 100;
  static constexpr int64_t kDecodeAnomalyWindowUsec = 60'000'000;
  struct AnomalyWindow {
    Timestamp start;
    uint32_t count = 0;
    bool admit(Timestamp ts);  // false: the name's events of this window are spent
  };
  std::map<std::string, AnomalyWindow, std::less<>> decode_anomaly_windows_;
  uint64_t& c_decode_anomalies_suppressed_;
  // TCP packets that would move a flow if taken as they came (forged or stray ACKs and RSTs):
  // every one counted, events of each name rate-limited as decode anomalies.
  std::map<std::string, AnomalyWindow, std::less<>> tcp_anomaly_windows_;
  uint64_t& c_ack_out_of_window_;
  uint64_t& c_rst_out_of_window_;
  uint64_t& c_tcp_anomalies_suppressed_;
};

}  // namespace medmon
