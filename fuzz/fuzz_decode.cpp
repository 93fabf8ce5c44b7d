// libFuzzer target: the packet decoder and IP fragment reassembly over raw frames.
// Input: byte 0 picks the link type (every one medmon decodes; top bit: peek-only mode, as the
// worker dispatcher uses it), byte 1 see below, then frames, each a 2-byte
// big-endian length and that many bytes. The wire length is the captured length plus byte 1
// (so snaplen-truncated frames are seen too); timestamps advance 1 s per frame so fragment
// timeouts fire.
#include <cstdint>
#include <span>
#include <vector>

#include "sensor/decode/decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static constexpr int kLinks[] = {
      medmon::linktype::NULL_, medmon::linktype::EN10MB,      medmon::linktype::RAW,
      medmon::linktype::RAW_OPENBSD, medmon::linktype::LOOP, medmon::linktype::LINUX_SLL,
      medmon::linktype::LINUX_SLL2, medmon::linktype::IPV4, medmon::linktype::IPV6,
      medmon::linktype::RAW_LT};
  if (size < 2) return 0;
  int dlt = kLinks[(data[0] & 0x7F) % (sizeof(kLinks) / sizeof(kLinks[0]))];
  uint32_t extra = data[1];
  medmon::Counters counters;
  uint64_t anomalies = 0;
  medmon::FragmentLimits lim;
  lim.max_datagrams = 8;
  lim.max_bytes = 1u << 16;
  lim.timeout_usec = 3'000'000;
  medmon::Decoder dec(dlt, counters, [&](std::string_view, uint32_t, const medmon::Packet&) { ++anomalies; }, lim);
  dec.set_peek_only(data[0] & 0x80);  // the worker dispatcher's mode
  std::span<const uint8_t> in(data + 2, size - 2);
  int64_t t = 1'000'000;
  while (in.size() >= 2) {
    size_t n = std::min<size_t>((size_t(in[0]) << 8) | in[1], in.size() - 2);
    // The frame in its own allocation of exactly its length, so ASan sees any over-read.
    std::vector<uint8_t> frame(in.begin() + 2, in.begin() + 2 + static_cast<long>(n));
    in = in.subspan(2 + n);
    medmon::Packet pkt;
    auto st = dec.decode(frame.data(), static_cast<uint32_t>(frame.size()),
                         static_cast<uint32_t>(frame.size()) + extra, medmon::Timestamp{t}, pkt);
    if (st == medmon::DecodeStatus::ok) {
      // Everything a decoded packet points at must lie inside the frame or the reassembled datagram.
      volatile uint8_t sink = 0;
      for (uint32_t i = 0; i < pkt.l3_len; ++i) sink = sink ^ pkt.l3[i];
      for (uint32_t i = 0; i < pkt.payload_len; ++i) sink = sink ^ pkt.payload[i];
      (void)sink;
    }
    dec.fragments().expire(medmon::Timestamp{t});
    t += 1'000'000;
  }
  return 0;
}
