// libFuzzer target: MLLP framing, HTTP bodies, batch splitting, the HL7 parser, path access,
// unescaping and event writing. The first byte chooses how the input is cut into chunks, so
// the split logic is exercised along with the parsers.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "dissectors/hl7/hl7_dissector.h"
#include "hl7cpp/message.h"
#include "sensor/output/event_output.h"
#include "sensor/output/pseudonymiser.h"

namespace {
struct NullSink : medmon::EventSink {
  void write_line(std::string_view, std::string_view) override {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t chunk = static_cast<uint8_t>(data[0] | 1);
  std::span<const uint8_t> in(data + 1, size - 1);

  static medmon::Pseudonymiser phi;
  medmon::EventOutput out;
  out.add_sink(std::make_shared<NullSink>());
  medmon::EventEndpoints ep;
  medmon::FlowFacts facts;
  medmon::FlowContext ctx(out, phi, ep, facts);
  auto d = medmon::kHl7Info.make();
  medmon::hl7::probe(in.first(std::min<size_t>(in.size(), 512)), medmon::Dir::to_server);
  // The same bytes in both directions: requests and responses, messages and ACKs.
  for (medmon::Dir dir : {medmon::Dir::to_server, medmon::Dir::to_client}) {
    size_t p = 0, want = chunk;
    uint64_t off = 0;
    while (p < in.size()) {
      size_t n = std::min<size_t>(want, in.size() - p);
      ctx.set_stream_offset(off);
      auto r = d->on_data(dir, in.subspan(p, n), ctx);
      if (r.used > n) __builtin_trap();                            // consumed more than it was given
      if (r.used == 0 && r.need != 0 && r.need <= n) __builtin_trap();  // asked for bytes it has
      size_t used = r.used;
      if (used == 0) {
        // The dissector asked for more: as the stream feeder does, the same bytes come again
        // with the next ones (none is lost), or the stream ends with them held.
        if (p + n == in.size()) break;
        want = n + chunk;
        continue;
      }
      p += used;
      off += used;
      want = chunk;
      if (chunk == 0x7f && p < in.size()) {
        d->on_gap(dir, 3, ctx);
        off += 3;
      }
    }
    d->on_end(dir, ctx);
  }
  d->on_flow_end(ctx);

  // The library on its own.
  std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
  hl7cpp::Message m;
  if (m.parse(text) == hl7cpp::ParseStatus::ok) {
    static const char* paths[] = {"PID-5.1", "PID-3[2].1", "OBX(2)-5", "MSH-9.2", "PID.F3.R1.C2.S2", "MSH-2"};
    for (auto p : paths) (void)m.get_text(p);
    for (size_t i = 0; i < m.size(); ++i) {
      auto s = m.segment(i);
      for (size_t f = 0; f <= s.field_count() && f < 64; ++f) (void)s.field(f).text();
    }
    (void)m.charset();
  }
  return 0;
}
