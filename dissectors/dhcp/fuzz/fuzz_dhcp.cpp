// libFuzzer target: the dhcp and BOOTP probes and the dissector, each input one datagram (and its halves): as
// the content decides (DHCPv4 or DHCPv6), and over IPv6 where every datagram is DHCPv6.
#include "dissectors/dhcp/dhcp_dissector.h"
#include "dissectors/proprietary/test/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (medmon::Dir dir : {medmon::Dir::to_server, medmon::Dir::to_client}) {
    (void)medmon::dhcp::probe({data, std::min<size_t>(size, 512)}, dir);
    (void)medmon::kBootpInfo.probe({data, std::min<size_t>(size, 512)}, dir);
  }
  medmon::testing::Harness h(medmon::kDhcpInfo);
  h.datagram(medmon::Dir::to_server, in);
  h.datagram(medmon::Dir::to_client, in.substr(0, size / 2));
  h.end();
  medmon::testing::Harness h6(medmon::kDhcpInfo);
  (void)medmon::IpAddr::parse("fe80::200:5eff:fe00:5301", h6.ep.src);
  (void)medmon::IpAddr::parse("fe80::200:5eff:fe00:53fe", h6.ep.dst);
  h6.datagram(medmon::Dir::to_client, in);
  h6.datagram(medmon::Dir::to_server, in.substr(size / 2));
  h6.end();
  return 0;
}
