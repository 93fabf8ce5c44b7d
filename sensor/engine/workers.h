#pragma once
// Offline analysis on N worker threads. The reading thread hashes every packet on its
// symmetric 5-tuple (both directions of a flow meet in one worker; IP fragments hash on the
// address pair) and hands it to that worker's own pipeline (flow table, reassembly,
// dissectors). Workers write into memory; at fixed packet-count epochs the reader merges their
// events, stably sorted by timestamp, so the output is the same on every run.
//
// The judges (policy, asset inventory) run once, on the merging thread, over the merged flow
// stream: a worker keeps a copy of each ending flow's summary and writes its `flow` event
// without a verdict; the merge judges the flows in output order and adds the verdicts. Rules
// that learn from earlier flows (scans, fan-out, reject bursts, AE titles, once-only alerts)
// thus see every flow of the capture, as with one pipeline, whatever the number of workers.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
  void packet(const uint8_t* frame, uint32_t caplen, uint32_t wirelen, Timestamp ts);
  // Ends all flows, merges the last events and writes one `stats` event for all workers.
  void finish(FlowEnd why);
  uint64_t packets() const { return packets_; }
  uint64_t bytes() const { return bytes_; }

 private:
  struct PacketRef { uint32_t offset, caplen, wirelen; Timestamp ts; };
  struct Batch {
    enum class Kind { packets, linktype, epoch, finish } kind = Kind::packets;
    int dlt = 0;
    FlowEnd why = FlowEnd::end_of_input;
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
  struct Worker {
    EventOutput out;
    std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
    std::unique_ptr<Deferral> deferral;
    std::unique_ptr<Pipeline> pipeline;
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::unique_ptr<Batch>> queue;
    std::unique_ptr<Batch> filling;
    bool done_epoch = false;
    StatsSnapshot stats;
    std::thread thread;
  };

  void run(Worker& w);
  void push(Worker& w, std::unique_ptr<Batch> b);
  void broadcast(Batch::Kind kind, int dlt = 0, FlowEnd why = FlowEnd::end_of_input);
  void epoch();  // waits for every worker to reach this point, then merges their events

  EventOutput& merged_;
  std::vector<FlowJudge*> judges_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Decoder> peek_;
  Counters peek_counters_;
  std::mutex done_m_;
  std::condition_variable done_cv_;
  size_t done_count_ = 0;
  uint64_t packets_ = 0, bytes_ = 0;
  uint64_t since_epoch_ = 0;
  Timestamp last_ts_{};
  static constexpr size_t kBatchPackets = 256;
  static constexpr size_t kMaxQueued = 64;
  // Events wait in each worker until the epoch ends: short epochs keep that memory small
  // (a flood of short flows writes about one event per packet).
  static constexpr uint64_t kEpochPackets = 1u << 16;
};

}  // namespace medmon
