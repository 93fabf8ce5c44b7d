#pragma once
// Community ID flow hash, version 1 (https://github.com/corelight/community-id-spec), as
// Suricata, Zeek and Wireshark compute it: the same flow gets the same string in every tool's
// logs, so an analyst can pivot from a medmon alert to those tools' records of the flow.
#include <cstdint>
#include <string>

#include "sensor/common/types.h"

namespace medmon {

// "1:" + base64(SHA-1(seed, ordered endpoints, protocol, ports)). Ports count for TCP and UDP;
// other protocols hash the addresses and protocol only. ICMP and SCTP are left out (empty
// result): the ID of ICMP is made of the message's type and code, which a flow does not keep,
// and that of SCTP of ports the decoder does not read.
std::string community_id(const IpAddr& src, uint16_t src_port, const IpAddr& dst, uint16_t dst_port, uint8_t proto,
                         uint16_t seed = 0);

}  // namespace medmon
