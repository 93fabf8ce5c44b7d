// libFuzzer target: the astm probes and dissector over arbitrary bytes, cut into chunks (first
// byte); a TCP stream is given twice, from its start and as picked up mid-stream.
#include "dissectors/astm/astm_dissector.h"
#include "dissectors/proprietary/fuzz/drive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  for (medmon::Dir dir : {medmon::Dir::to_server, medmon::Dir::to_client}) {
    (void)medmon::astm::probe(in.first(std::min<size_t>(in.size(), 512)), dir);
    (void)medmon::astm::midstream_probe(in.first(std::min<size_t>(in.size(), 512)), dir);
  }
  auto d = medmon::kAstmInfo.make();
  medmon::fuzzing::drive(*d, in, data[0], (data[0] & 0x80) ? 17 : 6);
  // Again as a link picked up mid-transmission: the dissector resyncs to a frame or ENQ.
  if (!(data[0] & 0x80)) {
    auto m = medmon::kAstmInfo.make();
    medmon::fuzzing::drive(*m, in, data[0], 6, true);
  }
  return 0;
}
