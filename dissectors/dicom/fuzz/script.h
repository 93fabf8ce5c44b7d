#pragma once
// Runs one fuzz input (a script of deliveries, see fuzz_dicom.cpp) through the DICOM dissector
// and the dataset walker, honouring the sensor's delivery contract. Shared by the libFuzzer
// target and the regression test over fuzz/regressions/.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dissectors/dicom/dataset.h"
#include "dissectors/dicom/dicom_dissector.h"

namespace dicom_fuzz {

struct Feeder {
  medmon::EventOutput out;
  medmon::Pseudonymiser phi;
  medmon::EventEndpoints ep;
  medmon::FlowFacts facts;
  medmon::FlowContext ctx{out, phi, ep, facts};
  std::unique_ptr<medmon::Dissector> d = medmon::dicom::make_dissector();
  struct S { std::vector<uint8_t> pending; uint64_t skip = 0; size_t need = 0; uint64_t off = 0; } dirs[2];
  bool dead = false;

  void deliver(medmon::Dir dir, std::span<const uint8_t> bytes) {
    if (dead) return;
    S& s = dirs[static_cast<int>(dir)];
    if (s.skip) {
      uint64_t n = std::min<uint64_t>(s.skip, bytes.size());
      s.skip -= n; s.off += n; bytes = bytes.subspan(n);
      if (bytes.empty()) return;
    }
    std::vector<uint8_t> held;
    if (!s.pending.empty()) {
      s.pending.insert(s.pending.end(), bytes.begin(), bytes.end());
      if (s.pending.size() > (4u << 20)) __builtin_trap();  // the dissector must never need this much
      if (s.pending.size() < s.need) return;
      held.swap(s.pending);
      bytes = held;
    }
    s.need = 0;
    int spins = 0;
    while (!bytes.empty()) {
      ctx.set_stream_offset(s.off);
      medmon::Consumed r = d->on_data(dir, bytes, ctx);
      if (r.give_up) { dead = true; return; }
      if (r.used > bytes.size()) __builtin_trap();
      bytes = bytes.subspan(r.used);
      s.off += r.used;
      if (r.skip) {
        uint64_t n = std::min<uint64_t>(r.skip, bytes.size());
        bytes = bytes.subspan(n); s.off += n; s.skip = r.skip - n;
        if (s.skip) return;
        continue;
      }
      if (r.used == 0) {
        if (r.need != 0 && r.need <= bytes.size()) __builtin_trap();  // asked for bytes it already has
        s.need = std::max(r.need, bytes.size() + 1);
        break;
      }
      if (++spins > 1000000) __builtin_trap();
    }
    if (!bytes.empty()) s.pending.assign(bytes.begin(), bytes.end());
  }
  void gap(medmon::Dir dir, uint64_t missing) {
    S& s = dirs[static_cast<int>(dir)];
    if (s.skip >= missing) { s.skip -= missing; s.off += missing; return; }
    uint64_t lost = missing - s.skip + s.pending.size();
    s.off += missing + s.pending.size();
    s.skip = 0; s.pending.clear(); s.need = 0;
    d->on_gap(dir, lost, ctx);
  }
};

inline void run_script(std::span<const uint8_t> in) {
  {
    Feeder f;
    size_t p = 0;
    while (p + 2 <= in.size()) {
      uint8_t h = in[p];
      auto dir = (h & 1) ? medmon::Dir::to_client : medmon::Dir::to_server;
      int op = (h >> 1) & 3;
      size_t n = in[p + 1];
      p += 2;
      if (op == 3) { f.gap(dir, n + 1); continue; }
      n = std::min(n + 1 + (op == 2 ? 255 * size_t(in[p < in.size() ? p : 0]) : 0), in.size() - p);
      f.deliver(dir, in.subspan(p, n));
      p += n;
    }
    f.d->on_end(medmon::Dir::to_server, f.ctx);
    f.d->on_end(medmon::Dir::to_client, f.ctx);
    f.d->on_flow_end(f.ctx);
  }
  for (auto syn : {medmon::dicom::Syntax::implicit_le, medmon::dicom::Syntax::explicit_le,
                   medmon::dicom::Syntax::explicit_be, medmon::dicom::Syntax::deflated}) {
    medmon::dicom::DatasetWalker w;
    w.start(syn);
    w.feed(in);
    w.finish();
  }
  medmon::dicom::probe(in, medmon::Dir::to_server);
  medmon::dicom::sender(in);
  // Text decoding under the declarations whose decoders differ: single-byte and multibyte sets,
  // ISO 2022 with each kind of designation.
  static const char* const kCharsets[] = {
      "ISO_IR 192", "ISO_IR 100", "ISO_IR 144", "ISO_IR 13", "GB18030", "\\ISO 2022 IR 149",
      "ISO 2022 IR 6\\ISO 2022 IR 87\\ISO 2022 IR 159", "ISO 2022 IR 13\\ISO 2022 IR 87",
      "\\ISO 2022 IR 58", "ISO 2022 IR 100\\ISO 2022 IR 144\\ISO 2022 IR 126"};
  std::string text(reinterpret_cast<const char*>(in.data()), std::min<size_t>(in.size(), 256)), out;
  for (const char* cs : kCharsets) medmon::dicom::decode_text(text, cs, out);
}

}  // namespace dicom_fuzz
