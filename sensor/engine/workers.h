#pragma once
// Offline analysis on N worker threads. The reading thread hashes every packet on its
// symmetric 5-tuple (both directions of a flow meet in one worker; IP fragments hash on the
// address pair) and hands it to that worker's own pipeline (flow table, reassembly,
// dissectors, judges). Workers write into memory; at fixed packet-count epochs the reader
// merges their events, stably sorted by timestamp, so the output is the same on every run.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sensor/decode/decoder.h"
#include "sensor/engine/pipeline.h"

namespace medmon {

class OfflineWorkers {
 public:
  // Makes the judges of one worker (each worker owns its own, so results do not depend on
  // thread timing).
  using JudgeFactory = std::function<std::vector<std::unique_ptr<FlowJudge>>()>;

  OfflineWorkers(int n, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi, EventOutput& merged,
                 JudgeFactory judges, HeaderAnnotator* annotator = nullptr);
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
  struct Worker {
    EventOutput out;
    std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
    std::vector<std::unique_ptr<FlowJudge>> judges;
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
