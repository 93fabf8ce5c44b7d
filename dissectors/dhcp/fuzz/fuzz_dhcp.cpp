// libFuzzer target: the dhcp probe and dissector, each input one datagram (and its halves).
#include "dissectors/dhcp/dhcp_dissector.h"
#include "dissectors/proprietary/test/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (medmon::Dir dir : {medmon::Dir::to_server, medmon::Dir::to_client})
    (void)medmon::dhcp::probe({data, std::min<size_t>(size, 512)}, dir);
  medmon::testing::Harness h(medmon::kDhcpInfo);
  h.datagram(medmon::Dir::to_server, in);
  h.datagram(medmon::Dir::to_client, in.substr(0, size / 2));
  h.end();
  return 0;
}
