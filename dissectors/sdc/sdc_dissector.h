#pragma once
// IEEE 11073 SDC (20701/20702, over DPWS): WS-Discovery on UDP 3702 (Hello, Bye, Probe,
// ProbeMatches, Resolve, ResolveMatches) and the SOAP-over-HTTP exchanges of SDC participants.
// One `sdc` event per discovery or SOAP message; those describing a participant carry its
// address (`device_ip`), endpoint reference, types, scopes and transport addresses, or the
// manufacturer/model/serial of DPWS metadata seen in clear (also left as flow facts sdc.* for
// the asset inventory). HTTPS transport addresses are remembered so a TLS flow to one can be
// labelled as SDC.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "dissectors/api/dissector.h"
#include "sensor/common/types.h"

namespace medmon {

extern const DissectorInfo kSdcInfo;

namespace sdc {
// A SOAP 1.2 envelope (datagram or HTTP request/response with application/soap+xml) with
// WS-Discovery or an SDC marker (MedicalDevice type, 11073 namespace, sdc.* scope).
Probe probe(std::span<const uint8_t> first, Dir dir);

// An HTTP connection refused on its first exchange (a GET of the WSDL) may carry SOAP in a
// later one: a POST or a response, at the start of a TCP segment or pipelined behind the
// messages before it (DissectorInfo::later_probe).
bool carried_by(std::span<const uint8_t> first, Dir dir);
Probe later_probe(std::span<const uint8_t> bytes, Dir dir);
size_t later_next(std::span<const uint8_t> bytes, Dir dir, LaterCursor& cursor);

// Content (markup and all) of the first element with this local name (any prefix) at or after
// `from`, read as XML: comments, CDATA sections and processing instructions are not taken for
// tags, an end tag may have white space before '>', elements of the same name inside it are
// counted. `pos` receives the offset after its end tag (or after it, when it is empty "<x/>").
// Empty when absent or malformed.
std::string_view element_text(std::string_view xml, std::string_view local, size_t from = 0, size_t* pos = nullptr);

// The text of element content as XML defines it: comments and processing instructions left
// out, CDATA sections taken as written, the predefined entities and character references
// decoded, the tags of child elements dropped (their text kept). Never longer than `content`.
std::string text_of(std::string_view content);

// text_of the first element with this local name.
std::string element_value(std::string_view xml, std::string_view local);

// Endpoints (IP, TCP port) advertised by discovered participants in https XAddrs (bounded, one
// set for the process; a worker of analyze --workers records them for its merge instead:
// dissectors/api/announced_servers.h). The pipeline may call this to name a TLS flow "sdc-tls".
bool is_sdc_endpoint(const IpAddr& ip, uint16_t port);
// True when the set was full and the endpoint announced longest ago was forgotten for it.
bool remember_endpoint(const IpAddr& ip, uint16_t port);
}  // namespace sdc

}  // namespace medmon
