#pragma once
// Shared libFuzzer driver for the clinical-protocol dissectors: feeds the input to one
// dissector the way the stream feeder does (held bytes, `need`, `skip`, gaps), in chunks whose
// size comes from the first input byte, in both directions, then ends the flow. `midstream`:
// both directions as if picked up without their SYN (FlowContext::midstream).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dissectors/api/dissector.h"
#include "sensor/output/event_output.h"
#include "sensor/output/pseudonymiser.h"

namespace medmon::fuzzing {

struct NullSink : EventSink {
  void write_line(std::string_view, std::string_view) override {}
};

inline void drive(Dissector& d, std::span<const uint8_t> in, uint8_t mode, uint8_t proto, bool midstream = false) {
  static Pseudonymiser phi;
  EventOutput out;
  out.add_sink(std::make_shared<NullSink>());
  EventEndpoints ep;
  ep.proto = proto;
  FlowFacts facts;
  FlowContext ctx(out, phi, ep, facts);
  ctx.set_midstream(Dir::to_server, midstream);
  ctx.set_midstream(Dir::to_client, midstream);
  size_t chunk = (mode & 0x3F) + 1;
  bool gaps = mode & 0x40;
  for (Dir dir : {Dir::to_server, Dir::to_client}) {
    std::vector<uint8_t> held;
    uint64_t off = 0, skip = 0;
    bool done = false;
    for (size_t p = 0; p < in.size() && !done; p += chunk) {
      auto piece = in.subspan(p, std::min(chunk, in.size() - p));
      if (proto == 17) {  // a datagram per chunk
        ctx.set_stream_offset(off);
        done = d.on_data(dir, piece, ctx).give_up;
        off += piece.size();
        continue;
      }
      held.insert(held.end(), piece.begin(), piece.end());
      size_t s = std::min<uint64_t>(skip, held.size());
      held.erase(held.begin(), held.begin() + static_cast<long>(s));
      skip -= s;
      off += s;
      std::span<const uint8_t> rest(held);
      while (!rest.empty()) {
        ctx.set_stream_offset(off);
        Consumed r = d.on_data(dir, rest, ctx);
        if (r.give_up) { done = true; break; }
        if (r.used > rest.size()) __builtin_trap();  // consumed more than it was given
        if (r.used == 0 && !r.skip && r.need != 0 && r.need <= rest.size()) __builtin_trap();  // asked for bytes it has
        size_t used = r.used;
        rest = rest.subspan(used);
        off += used;
        if (r.skip) {
          uint64_t k = std::min<uint64_t>(r.skip, rest.size());
          rest = rest.subspan(static_cast<size_t>(k));
          off += k;
          skip = r.skip - k;
          continue;
        }
        if (used == 0) break;
      }
      held.assign(rest.begin(), rest.end());
      if (held.size() > (1u << 20)) { held.clear(); d.on_gap(dir, 1, ctx); }
      if (gaps && (p / chunk) % 7 == 3) { off += held.size() + 5; held.clear(); d.on_gap(dir, 5, ctx); }
    }
    d.on_end(dir, ctx);
  }
  d.on_flow_end(ctx);
}

}  // namespace medmon::fuzzing
