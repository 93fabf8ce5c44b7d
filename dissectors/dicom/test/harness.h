#pragma once
// Feeds a dissector the way the sensor does (sensor/engine/stream_feeder.cpp): unconsumed bytes
// are kept and handed back with the next delivery, `need` delays the next call, `skip` drops
// bytes. Events land in a MemorySink.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dissectors/api/dissector.h"

namespace dtest {

class Harness {
 public:
  explicit Harness(std::unique_ptr<medmon::Dissector> d)
      : sink_(std::make_shared<medmon::MemorySink>()), ctx_(out_, phi_, ep_, facts_), d_(std::move(d)) {
    out_.add_sink(sink_);
    ctx_.set_now(medmon::Timestamp{1700000000000000});
  }
  // Builds a harness and runs `body` on it: returned as a prvalue, it is never copied or moved
  // (its context refers to its own members).
  template <class Body>
  Harness(std::unique_ptr<medmon::Dissector> d, Body&& body) : Harness(std::move(d)) {
    body(*this);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // Delivers `bytes` of direction `dir` in chunks of `chunk` bytes (0 = all at once).
  void feed(medmon::Dir dir, std::span<const uint8_t> bytes, size_t chunk = 0) {
    if (!chunk) chunk = bytes.size() ? bytes.size() : 1;
    for (size_t o = 0; o < bytes.size(); o += chunk) deliver(dir, bytes.subspan(o, std::min(chunk, bytes.size() - o)));
  }
  void gap(medmon::Dir dir, uint64_t missing) {
    S& s = st(dir);
    if (s.skip >= missing) { s.skip -= missing; s.off += missing; return; }
    uint64_t lost = missing - s.skip + s.pending.size();
    s.off += missing + s.pending.size();
    s.skip = 0;
    s.pending.clear();
    s.need = 0;
    d_->on_gap(dir, lost, ctx_);
  }
  void finish() {
    d_->on_end(medmon::Dir::to_server, ctx_);
    d_->on_end(medmon::Dir::to_client, ctx_);
    d_->on_flow_end(ctx_);
    if (std::getenv("DICOM_TEST_DUMP"))
      for (auto& l : sink_->lines) std::fprintf(stderr, "%s\n", l.c_str());
  }
  void set_now(int64_t usec) { ctx_.set_now(medmon::Timestamp{usec}); }

  std::vector<nlohmann::json> events(const std::string& type = "") const {
    std::vector<nlohmann::json> v;
    for (size_t i = 0; i < sink_->lines.size(); ++i)
      if (type.empty() || sink_->types[i] == type) v.push_back(nlohmann::json::parse(sink_->lines[i]));
    return v;
  }
  const std::vector<std::string>& lines() const { return sink_->lines; }
  medmon::FlowFacts& facts() { return facts_; }
  uint64_t counter(std::string_view name) { return out_.counters().get(name); }
  size_t max_pending() const { return max_pending_; }
  uint64_t calls() const { return calls_; }
  bool gave_up() const { return gave_up_; }

 private:
  struct S { std::vector<uint8_t> pending; uint64_t skip = 0; size_t need = 0; uint64_t off = 0; };
  S& st(medmon::Dir d) { return dirs_[static_cast<int>(d)]; }

  void deliver(medmon::Dir dir, std::span<const uint8_t> bytes) {
    if (gave_up_) return;
    S& s = st(dir);
    if (s.skip) {
      uint64_t n = std::min<uint64_t>(s.skip, bytes.size());
      s.skip -= n; s.off += n; bytes = bytes.subspan(n);
      if (bytes.empty()) return;
    }
    std::vector<uint8_t> held;
    if (!s.pending.empty()) {
      s.pending.insert(s.pending.end(), bytes.begin(), bytes.end());
      max_pending_ = std::max(max_pending_, s.pending.size());
      if (s.pending.size() < s.need) return;
      held.swap(s.pending);
      bytes = held;
    }
    s.need = 0;
    while (!bytes.empty()) {
      ctx_.set_stream_offset(s.off);
      ++calls_;
      medmon::Consumed r = d_->on_data(dir, bytes, ctx_);
      if (r.give_up) { gave_up_ = true; return; }
      size_t used = std::min(r.used, bytes.size());
      bytes = bytes.subspan(used);
      s.off += used;
      if (r.skip) {
        uint64_t n = std::min<uint64_t>(r.skip, bytes.size());
        bytes = bytes.subspan(n); s.off += n; s.skip = r.skip - n;
        if (s.skip) return;
        continue;
      }
      if (used == 0) { s.need = std::max(r.need, bytes.size() + 1); break; }
    }
    if (!bytes.empty()) {
      s.pending.assign(bytes.begin(), bytes.end());
      max_pending_ = std::max(max_pending_, s.pending.size());
    }
  }

  std::shared_ptr<medmon::MemorySink> sink_;
  medmon::EventOutput out_;
  medmon::Pseudonymiser phi_;
  medmon::EventEndpoints ep_;
  medmon::FlowFacts facts_;
  medmon::FlowContext ctx_;
  std::unique_ptr<medmon::Dissector> d_;
  S dirs_[2];
  size_t max_pending_ = 0;
  uint64_t calls_ = 0;
  bool gave_up_ = false;
};

}  // namespace dtest
