#pragma once
// Offline analysis on N worker threads. The reading thread hashes every packet on its
// symmetric 5-tuple (both directions of a flow meet in one worker) and hands it to that
// worker's own pipeline (flow table, reassembly, dissectors). Workers write into memory; at
// fixed packet-count epochs the reader merges their events in the order one pipeline writes
// them, so the output does not depend on the number of workers (LineOrder): the events of a
// packet's handling by the packet's position in the input; the flows its time ended (ticks)
// just before them, and those ended at the end of the input, in the order of their last
// packets, as one flow table ends them.
//
// IP fragments after the first carry no ports. The fragments of a TCP, UDP or ICMP datagram
// go to the worker of the datagram's flow: the first fragment (offset 0) has the ports, and its
// worker is remembered for the datagram's later fragments; fragments that come before it wait
// in the reader (copies, bounded) and are sent just before it, in their own order, so the
// worker reassembles them as one pipeline would. If it does not come (fragment timeout, bounds,
// end of input), they go on the address pair, as do the fragments of other protocols, whose
// flows have no ports. A first fragment that ends before the ports (IPv6 extension headers or a
// tunnel's inner headers going on in the next fragment) names no flow: the datagram's fragments
// wait until it is whole, the reader reassembles it from their copies and sends them where it
// goes. The reader follows which bytes of each datagram came, as the workers' fragment tables
// do, and forgets a datagram once it is whole: a later fragment with the same identification
// belongs to another datagram, perhaps of another flow.
//
// Every worker's clock follows the input's packet time: with its packets, the reader sends each
// worker the input's time once per second of it (and when it goes back), so a worker that gets
// no packet of a flow still times it out, whichever worker the later packets hash to. Time
// going back is counted once, here, as it is a property of the input.
//
// The caps over all flows are split evenly among the workers (worker_share, config.h), so the
// process stays within the configured values. Periodic `stats` (output.stats_interval) are
// written at the merge, one for all workers, at the input's packet time: every worker notes its
// counters at that point of the input, and what fragments held in the reader from before it add
// when they reach their worker later, so the counters are those of one moment, and the event
// comes in its place among the others, as one pipeline writes it.
//
// The judges (policy, asset inventory) run once, on the merging thread, over the merged flow
// stream: a worker keeps a copy of each ending flow's summary and writes its `flow` event
// without a verdict; the merge judges the flows in output order and adds the verdicts. Rules
// that learn from earlier flows (scans, fan-out, reject bursts, AE titles, once-only alerts)
// thus see every flow of the capture, as with one pipeline, whatever the number of workers.
//
// What a worker knows when it writes an event header is what the site binds by ip and mac
// (HeaderAnnotator::site_annotator): a device bound by a fingerprint is learnt by the judges on
// the merging thread, and a worker's header does not depend on how far they got. The merge
// writes the header annotation of each judged flow event again, after its judges, so a flow
// event names a fingerprint-bound device as with one pipeline; the other events of workers
// (protocol events) name only devices bound by ip or mac.
//
// A TLS flow's name may come from other flows: a server a protocol announced (an SDC Hello, read
// on any worker) or one seen speaking a protocol in clear. A worker records those facts where it
// meets them (Note) and writes such a TLS flow's event with "app":null, noting where that value
// lies in the line as the pipeline writes it; the merge replays the facts in output order and
// puts the name there, as one pipeline names the flow when it ends.
#include <compare>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dissectors/api/announced_servers.h"
#include "sensor/decode/decoder.h"
#include "sensor/engine/pipeline.h"

namespace medmon {

class OfflineWorkers {
 public:
  // judges: as for a Pipeline (the first verdict goes into the flow event); called on the
  // thread that calls packet() and finish(), with `merged` as their output.
  OfflineWorkers(int n, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi, EventOutput& merged,
                 std::vector<FlowJudge*> judges, HeaderAnnotator* annotator = nullptr);
  ~OfflineWorkers();

  void set_linktype(int dlt);
  // As Pipeline::set_input_filter, for the one `stats` event of all workers.
  void set_input_filter(std::string bpf) { input_filter_ = std::move(bpf); }
  void packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts);
  // Ends all flows, merges the last events and writes one `stats` event for all workers.
  void finish(FlowEnd why);
  uint64_t packets() const { return packets_; }
  uint64_t bytes() const { return bytes_; }

 private:
  // tick: no packet, the input's packet time for the worker's clock (Pipeline::advance_clock).
  // pos: the packet's position in the input (a tick: the packet whose time it is).
  // held: a fragment held for its first fragment, sent after later packets (Pipeline::held_packet).
  // frag_ts: a held fragment's time for its datagram's timeout (Pipeline::held_packet).
  // frag_expire: no packet, another worker's fragment taken at ts (Pipeline::expire_fragments).
  struct PacketRef {
    uint32_t offset, caplen, wirelen; Timestamp ts; uint64_t pos; bool tick = false; bool held = false; Timestamp frag_ts{};
    bool frag_expire = false;
    bool stats = false;  // no packet: the periodic stats are due here (the worker's part of them)
  };
  // Where a run of a worker's lines goes in the merged output. One pipeline handles a packet
  // in this order: the flows the packet's time ends, then the packet itself; at the end of the
  // input, the flows still open. The flow table ends flows timeout list by timeout list, each in
  // the order of the flows' last packets, taking of the lists' heads the one with the earliest
  // last packet time (FlowTable::expire, end_all): the merge sorts by list and last packet, then
  // interleaves the lists so (interleave_lists).
  struct LineOrder {
    uint64_t pos = 0;        // the packet's input position; after every packet at the end
    uint8_t phase = 0;       // kTimedOut or kPacket
    uint8_t list = 0;        // a flow ended by time or at the end: its timeout list,
    uint64_t last_input = 0; //   its last packet's input position
    int64_t last_usec = 0;   //   and time
    auto operator<=>(const LineOrder&) const = default;
  };
  static constexpr uint8_t kTimedOut = 0, kPacket = 1;
  // Lines from `line` on (up to the next mark) go at `order`.
  struct LineMark { size_t line; LineOrder order; };
  struct Batch {
    enum class Kind { packets, linktype, epoch, finish } kind = Kind::packets;
    int dlt = 0;
    FlowEnd why = FlowEnd::end_of_input;
    Timestamp clock{};  // finish: the input's clock
    std::vector<uint8_t> data;
    std::vector<PacketRef> refs;
  };
  // A flow that ended in a worker, kept for judging at the merge. The summary points into the
  // record (flow id, facts), so records are never moved.
  struct EndedFlow {
    FlowSummary summary;
    FlowFacts facts;
    std::string flow_id;
    size_t line = 0;  // index of its `flow` event among the worker's lines of this epoch
  };
  // The worker pipeline's only judge: records the flow, leaves the verdict to the merge.
  class Deferral : public FlowJudge {
   public:
    explicit Deferral(const MemorySink& sink) : sink_(sink) {}
    FlowVerdict judge(const FlowSummary& flow, EventOutput&) override;
    std::deque<EndedFlow> ended;  // this epoch's, in the order the worker ended them
   private:
    const MemorySink& sink_;
  };
  // A worker's lines and, when the merge may name in them devices the judges bound by fingerprint
  // (`record`), where each line's header ends and the endpoints it was written for.
  struct WorkerSink : MemorySink {
    struct Header {
      bool has = false;  // the line has endpoints
      IpAddr src, dst;
      std::array<uint8_t, 6> src_mac{}, dst_mac{};
      size_t end = 0;    // the header, annotation included, is the line's first `end` bytes
    };
    void write_line(std::string_view event_type, std::string_view line) override;
    const EventOutput* out = nullptr;
    bool record = false;
    std::vector<Header> headers;  // one per line, when record
  };
  // What a TLS flow's name at the merge depends on, met by a worker before its line `line` (for
  // a flow: its own `flow` event's line).
  struct Note {
    enum class Kind : uint8_t { announced, spoke_in_clear, unnamed_tls } kind;
    size_t line = 0;
    LineOrder order;                   // announced: where the worker was in the input
    RememberServer remember = nullptr;  // announced: what the dissector would have done
    IpAddr ip;                         // the server (announced, or the flow's)
    uint16_t port = 0;
    std::string app;                   // spoke_in_clear
    size_t app_at = 0;                 // unnamed_tls: where the `null` of its "app" is in the line
  };
  struct Worker : TlsNamingDeferral, AnnouncementRecorder {
    void spoke_in_clear(const Flow& f, const std::string& app) override;
    void unnamed_tls(const Flow& f, size_t app_at) override;
    void announced(RememberServer remember, const IpAddr& ip, uint16_t port) override;
    std::vector<Note> notes;  // this epoch's, in the order the worker met them
    EventOutput out;
    std::shared_ptr<WorkerSink> sink = std::make_shared<WorkerSink>();
    std::unique_ptr<Deferral> deferral;
    std::unique_ptr<Pipeline> pipeline;
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::unique_ptr<Batch>> queue;
    std::unique_ptr<Batch> filling;
    std::thread thread;
    // This epoch's runs of lines (worker thread; read at the merge, when the worker is idle).
    std::vector<LineMark> marks;
    LineOrder now;  // what the worker is doing: a tick or the end (kTimedOut), or a packet
    // Its number of open flows after each packet or tick that changed it, this epoch: the merge
    // adds them up in input order for the peak of all workers (flows.peak_active).
    size_t flows_open = 0;
    std::vector<std::pair<LineOrder, size_t>> flows_open_changes;
    // Its part of each periodic `stats` due this epoch (pending_stats_, in the same order): its
    // counters and open flows at that point of the input, and what the fragments held in the
    // reader from before that point added when they reached it later.
    struct StatsPart { uint64_t pos; Counters counters; uint64_t flows_active; };
    std::vector<StatsPart> stats_parts;
    void mark(const LineOrder& o) {
      size_t line = sink->lines.size();
      if (!marks.empty() && marks.back().line == line) marks.back().order = o;
      else marks.push_back({line, o});
    }
  };

  // Where the fragments of one datagram go (key: as in the workers' fragment tables).
  struct FragmentRoute {
    Timestamp created;       // packet time of the datagram's first fragment seen (timeout)
    int worker = -1;         // -1: waiting for its first fragment (or, resolving, for the rest)
    bool first_seen = false;
    bool resolving = false;  // the first fragment named no flow: waiting for the whole datagram
    size_t fallback = 0;     // the address-pair worker
    // frag_ts: ts, or the time the input went back to since (the workers' fragment tables' view).
    struct Held { std::vector<uint8_t> frame; uint32_t wirelen; Timestamp ts; uint64_t pos; Timestamp frag_ts; };
    std::vector<Held> held;  // fragments waiting for the first, in input order
    std::list<FragmentTable::Key>::iterator age, waiting;
    // The bytes of the datagram that came, as a worker's FragmentTable takes them: true when
    // this fragment makes it whole. A fragment the table drops the datagram for starts afresh.
    // A fragment at ts after the table's datagram timed out (timeout after `begun`) begins another.
    bool take(uint32_t offset, uint32_t length, bool more, Timestamp ts, int64_t timeout_usec);
    std::vector<std::pair<uint32_t, uint32_t>> have;  // sorted, merged [begin, end)
    uint32_t high = 0, total = 0;
    bool have_last = false;
    // The table dropped the datagram (take() started afresh): the next fragment it takes begins
    // another, whose timeout counts from that fragment.
    bool restarted = false;
    Timestamp begun;  // when the tables' datagram began (its first fragment taken): its timeout
  };
  using RouteIt = std::map<FragmentTable::Key, FragmentRoute>::iterator;
  // A periodic `stats` event due at a point of the input: written at the merge, in its place
  // (after the flows that point's time ended, before its packet's events), with the workers'
  // counters of that point.
  struct PendingStats {
    Timestamp ts;
    LineOrder order;
    uint64_t packets = 0, bytes = 0;
    Counters dispatch;  // the reader's counters then
    size_t peak = 0;    // flows.peak_active then (set at the merge)
  };

  void run(Worker& w);
  void push(Worker& w, std::unique_ptr<Batch> b);
  Batch& filling(size_t worker);
  void send(size_t worker, const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts, uint64_t pos,
            bool held = false, Timestamp frag_ts = {});
  // The input's packet time, kept as one pipeline keeps its clock: ticks the workers, counts
  // time going back and writes the periodic stats when due.
  void advance_input_clock(Timestamp ts);
  // A ref with no packet, in its place among the worker's packets: a clock tick, a check of
  // fragment timeouts (a fragment another worker's table took at ts: this worker's times out
  // too), or the point the periodic stats are due at.
  void send_marker(size_t worker, Timestamp ts, bool PacketRef::*kind);
  // The counters and gauges of all workers, the reader and the merging thread; workers idle.
  void write_merged_stats(Timestamp ts);
  // A `stats` event of `workers` (the sum of the workers' counters), the reader's and the
  // merging thread's counters.
  void write_stats(Timestamp ts, uint64_t packets, uint64_t bytes, uint64_t flows_active, Counters workers,
                   const Counters& dispatch, size_t peak);
  // The worker of a fragment, or -1 when it is held until its datagram's first fragment.
  int route_fragment(const Packet& p, const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts);
  RouteIt add_route(const FragmentTable::Key& key, Timestamp ts, size_t fallback);
  // The fragment's worker when its route has one; else the fragment is held (-1), or, with no
  // room to hold it, its datagram goes on the address pair.
  int hold(RouteIt it, const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts);
  // Sends a waiting datagram's held fragments to `worker` and routes its later ones there too.
  void release(RouteIt it, size_t worker);
  // A resolving datagram whole: reassembled from the held copies, sent to its flow's worker.
  void resolve(RouteIt it);
  void forget_route(RouteIt it);  // a datagram made whole: no fragment of it is to come
  void drop_route(RouteIt it, uint64_t& counter);  // held fragments go on the address pair
  void expire_routes(Timestamp now);
  void routes_went_back(Timestamp now);  // the input's time went back to `now`
  void drop_all_routes();
  void broadcast(Batch::Kind kind, int dlt = 0, FlowEnd why = FlowEnd::end_of_input, Timestamp clock = {});
  void epoch();  // waits for every worker to reach this point, then merges their events
  // Lines sorted by LineOrder: the flows ended together put in one flow table's order.
  template <typename Line>
  static void interleave_lists(std::vector<Line>& all);
  // A line a worker wrote, with the merged output's header annotation in place of the worker's
  // (where the worker recorded its header's end); false (out untouched) when they are the same.
  bool reannotate_header(std::string_view line, const WorkerSink::Header& h, std::string& out);
  // A flow line's note at the merge: remembers a server seen in clear, or names a TLS flow (in
  // `named`, the line with its app, and in the flow's facts for the judges).
  void apply_flow_note(const Note& n, std::string_view line, EndedFlow* ended, std::string& named);

  EventOutput& merged_;
  std::vector<FlowJudge*> judges_;
  HeaderAnnotator* annotator_ = nullptr;       // the merged output's: knows what the judges learnt
  HeaderAnnotator* site_annotator_ = nullptr;  // the workers': the site's bindings only
  std::vector<std::unique_ptr<Worker>> workers_;
  AppServers app_servers_;  // the merge's, for the TLS names (as one pipeline's)
  std::unique_ptr<Decoder> peek_;
  Counters peek_counters_;
  std::unique_ptr<Decoder> resolver_;  // reassembles the datagrams whose first fragment names no flow
  Counters resolver_counters_;
  std::mutex done_m_;
  std::condition_variable done_cv_;
  size_t done_count_ = 0;
  uint64_t packets_ = 0, bytes_ = 0;
  std::string input_filter_;
  uint64_t since_epoch_ = 0;
  // The open flows of all workers, and their peak, at the merged point of the input: a sum of
  // the workers' own peaks would count flows open at different times.
  std::vector<size_t> flows_open_;
  size_t flows_open_total_ = 0, flows_open_peak_ = 0;
  Timestamp last_ts_{};
  // The input's clock (Pipeline::clock_): the latest time, unless it went back by more than
  // kTimeBackUsec (as Pipeline::kTimeBackUsec).
  Timestamp clock_{std::numeric_limits<int64_t>::min()};
  static constexpr int64_t kTimeBackUsec = 1'000'000;
  static constexpr int64_t kTickUsec = 1'000'000;  // as often as a pipeline checks its timeouts
  int64_t next_tick_usec_ = std::numeric_limits<int64_t>::min();
  int64_t stats_interval_usec_ = 0;
  int64_t next_stats_usec_ = 0;
  std::vector<PendingStats> pending_stats_;  // due since the last merge
  FragmentLimits frag_limits_;  // the workers' fragment timeout and datagram count
  std::map<FragmentTable::Key, FragmentRoute> routes_;
  std::list<FragmentTable::Key> route_age_;  // oldest first
  std::list<FragmentTable::Key> waiting_;    // routes holding fragments, oldest first
  size_t held_frames_ = 0, held_bytes_ = 0;
  Counters dispatch_counters_;
  uint64_t& c_held_;
  uint64_t& c_unmatched_;
  uint64_t& c_evicted_;
  uint64_t& c_time_backwards_;
  static constexpr size_t kBatchPackets = 256;
  static constexpr size_t kMaxQueued = 64;
  // Events wait in each worker until the epoch ends: short epochs keep that memory small
  // (a flood of short flows writes about one event per packet). While fragments are held for
  // their first fragment, the epoch ends later, up to twice as long.
  static constexpr uint64_t kEpochPackets = 1u << 16;
  // Fragments held for a first fragment still to come. Senders that send the last fragment
  // first send the first right after it, so a datagram waits briefly; floods of fragments
  // without a first one are what the bounds are for.
  static constexpr size_t kMaxHeldFrames = 4096;
  static constexpr size_t kMaxHeldBytes = 4u << 20;
};

}  // namespace medmon
