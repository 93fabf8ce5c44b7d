#pragma once
// Drives one dissector instance like the stream feeder does, over a MemorySink, for the unit
// tests of the clinical-protocol dissectors.
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dissectors/api/dissector.h"
#include "sensor/output/event_output.h"
#include "sensor/output/pseudonymiser.h"

namespace medmon::testing {

struct Harness {
  EventOutput out;
  std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
  Pseudonymiser phi;
  EventEndpoints ep;
  FlowFacts facts;
  FlowContext ctx{out, phi, ep, facts};
  std::unique_ptr<Dissector> d;
  std::string pending[2];
  uint64_t off[2] = {0, 0};
  bool gave_up = false;

  explicit Harness(const DissectorInfo& info) : d(info.make()) {
    out.add_sink(sink);
    ep.flow_id = "f1";
  }
  // Delivers bytes the way the feeder does: unconsumed bytes are held and given again with
  // the next delivery; `skip` is honoured.
  void feed(Dir dir, std::string_view bytes, int64_t ts = 1704110400000000) {
    if (gave_up) return;
    int i = static_cast<int>(dir);
    ctx.set_now(Timestamp{ts});
    pending[i].append(bytes);
    std::string_view rest = pending[i];
    while (!rest.empty()) {
      ctx.set_stream_offset(off[i]);
      auto r = d->on_data(dir, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(rest.data()), rest.size()), ctx);
      if (r.give_up) { gave_up = true; return; }
      size_t used = std::min(r.used, rest.size());
      rest.remove_prefix(used);
      off[i] += used;
      if (r.skip) { size_t n = std::min<uint64_t>(r.skip, rest.size()); rest.remove_prefix(n); off[i] += n; }
      if (used == 0 && !r.skip) break;
    }
    pending[i] = std::string(rest);
  }
  // One UDP datagram.
  void datagram(Dir dir, std::string_view bytes, int64_t ts = 1704110400000000) {
    ctx.set_now(Timestamp{ts});
    ctx.set_stream_offset(off[static_cast<int>(dir)]);
    d->on_data(dir, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), ctx);
    off[static_cast<int>(dir)] += bytes.size();
  }
  void gap(Dir dir, uint64_t n) {
    int i = static_cast<int>(dir);
    ctx.set_stream_offset(off[i]);  // as the feeder does: where the lost bytes (held ones first) start
    off[i] += pending[i].size() + n;
    pending[i].clear();
    d->on_gap(dir, n, ctx);
  }
  void end() {
    d->on_end(Dir::to_server, ctx);
    d->on_end(Dir::to_client, ctx);
    d->on_flow_end(ctx);
  }
  std::vector<nlohmann::json> events(std::string_view type) const {
    std::vector<nlohmann::json> v;
    for (size_t i = 0; i < sink->lines.size(); ++i)
      if (sink->types[i] == type) v.push_back(nlohmann::json::parse(sink->lines[i]));
    return v;
  }
  size_t anomalies(std::string_view name = {}) const {
    size_t n = 0;
    for (auto& e : events("anomaly"))
      if (name.empty() || e["anomaly"]["name"] == name) ++n;
    return n;
  }
};

inline std::span<const uint8_t> bytes_of(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace medmon::testing
