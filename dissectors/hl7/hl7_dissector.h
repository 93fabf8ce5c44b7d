#pragma once
// HL7 v2 dissector: messages over MLLP (any port) and in HTTP bodies. One `hl7` event per
// message with its header fields, the segments present, the PHI fields seen (values only as
// pseudonyms), device identity, and ACK pairing by control id. Built on hl7cpp.
#include <cstddef>
#include <span>

#include "dissectors/api/dissector.h"

namespace medmon {

extern const DissectorInfo kHl7Info;

namespace hl7 {
// Content probe: 0x0B then MSH/FHS/BHS, a bare MSH with its delimiters, or an HTTP message
// whose Content-Type or body is HL7 v2.
Probe probe(std::span<const uint8_t> first, Dir dir);
// Who sends a stream starting with these bytes: an HTTP response the server, a request the
// client; over MLLP an acknowledgment (MSH-9 ACK or an MSA segment) likely the server, another
// message likely the client.
StreamSender sender(std::span<const uint8_t> first);
// An HTTP connection (request or status line) may carry HL7 in a later message; such a message
// begins with POST, PUT or a status line, at the start of a TCP segment or behind the messages
// before it, which later_next measures across segments (DissectorInfo::later_probe).
bool carried_by(std::span<const uint8_t> first, Dir dir);
Probe later_probe(std::span<const uint8_t> bytes, Dir dir);
size_t later_next(std::span<const uint8_t> bytes, Dir dir, LaterCursor& cursor);
// A direction picked up mid-stream: the first message start after the tail of a missed message,
// probed as a stream's start; its later deliveries are watched for one (an MLLP frame or a bare
// message that begins a TCP segment).
Probe midstream_probe(std::span<const uint8_t> bytes, Dir dir);
}  // namespace hl7

}  // namespace medmon
