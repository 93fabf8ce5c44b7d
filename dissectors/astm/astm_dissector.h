#pragma once
// ASTM E1381 / E1394 (CLSI LIS2-A2 / LIS1-A) laboratory-analyzer links over TCP. The link layer
// (ENQ, STX frame number text ETB|ETX checksum CR LF, ACK/NAK, EOT) is checked frame by frame;
// records (H, P, O, R, C, Q, L, M, S) are rebuilt across intermediate frames. One `astm` event per
// transmission (ENQ..EOT, or H..L when a peer sends bare records without the link layer) with
// the sender identity, record counts, tests, and patient/specimen ids only as pseudonyms.
#include <span>

#include "dissectors/api/dissector.h"

namespace medmon {

extern const DissectorInfo kAstmInfo;

namespace astm {
// ENQ then STX <frame number> H, a first frame STX <n> H|, or a bare header record "H|\^&".
Probe probe(std::span<const uint8_t> first, Dir dir);
// A direction picked up mid-stream may also start at a later frame of a transmission: STX, frame
// number, a record type (H P O Q R C L M S) and a delimiter, after any ACK, NAK or EOT.
Probe midstream_probe(std::span<const uint8_t> first, Dir dir);
// Checksum of a frame: the sum of the bytes from the frame number through ETB/ETX, modulo 256.
uint8_t checksum(std::span<const uint8_t> fn_through_etx);
}  // namespace astm

}  // namespace medmon
