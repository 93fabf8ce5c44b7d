// libFuzzer target: the signature loader on arbitrary YAML, and a fixed signature's probe and
// dissector (length framing, delimiters, regex fields) on arbitrary traffic. The first byte
// picks the chunking and the transport; the input is split at the first NUL: YAML, then traffic.
#include <cstring>
#include <string>

#include "dissectors/proprietary/fuzz/drive.h"
#include "dissectors/proprietary/signature.h"

namespace {
const char* kSigs[] = {
    "name: f1\ntransport: both\nprobe: {bytes: [{offset: 0, hex: '41'}]}\n"
    "framing: {length: {offset: 1, size: 2, endian: little, adjust: -2}, max_message: 300}\n"
    "fields: [{name: a, offset: 3, type: u32be}, {name: b, offset: 2, length: 9, type: hex},"
    " {name: c, regex: '([a-z]+)=([0-9]*)', group: 2, phi: true}, {name: d, offset: 1, type: u8, when: {offset: 0, hex: '41'}}]\n"
    "report: messages\n",
    "name: f2\ntransport: both\nprobe: {regex: 'x'}\nframing: {delimiters: {start: '7e 7e', end: '7d'}, max_message: 64}\n"
    "fields: [{name: a, offset: 2, length: 4, type: ascii}]\n",
    "name: f3\ntransport: both\nprobe: {min_length: 4, bytes: [{offset: 0, hex: '7e'}, {offset: 3, hex: '00', mask: 'f0'}]}\n"
    "framing: {delimiters: {start: '7e', end: '7e', escape: '7d'}, max_message: 64}\n"
    "fields: [{name: a, offset: 1, type: u16le}, {name: b, regex: '(x+)'}]\nreport: messages\n",
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::span<const uint8_t> rest(data + 1, size - 1);
  const void* nul = std::memchr(rest.data(), 0, rest.size());
  size_t ylen = nul ? static_cast<size_t>(static_cast<const uint8_t*>(nul) - rest.data()) : rest.size();
  std::string yaml(reinterpret_cast<const char*>(rest.data()), ylen);
  auto parsed = medmon::proprietary::parse_signature(yaml, "fuzz.yaml");
  std::span<const uint8_t> traffic = nul ? rest.subspan(ylen + 1) : std::span<const uint8_t>();
  for (auto& s : parsed.signatures) {  // whatever the loader accepted must be safe to run
    (void)s->probe(traffic.first(std::min<size_t>(traffic.size(), 512)), medmon::Dir::to_server);
    auto d = medmon::proprietary::make_dissector(s);
    medmon::fuzzing::drive(*d, traffic, data[0], (data[0] & 0x80) ? 17 : 6);
  }
  static auto fixed = [] {
    std::vector<std::shared_ptr<const medmon::proprietary::Signature>> v;
    for (const char* y : kSigs)
      for (auto& s : medmon::proprietary::parse_signature(y, "fixed.yaml").signatures) v.push_back(s);
    return v;
  }();
  for (auto& s : fixed) {
    (void)s->probe(rest.first(std::min<size_t>(rest.size(), 512)), medmon::Dir::to_client);
    auto d = medmon::proprietary::make_dissector(s);
    medmon::fuzzing::drive(*d, rest, data[0], (data[0] & 0x80) ? 17 : 6);
  }
  return 0;
}
