#pragma once
// The DICOM dissector: PS3.8 upper layer, DIMSE command sets and dataset headers on any port.
// One `dicom` event per association (at release, abort, reject or flow end) with its
// presentation contexts and `ops` (one entry per DIMSE request, paired with its responses).
#include <cstdint>
#include <memory>
#include <span>

#include "dissectors/api/dissector.h"

namespace medmon {

extern const DissectorInfo kDicomInfo;  // name "dicom"; port hints 104, 11112, 4242, 2761

namespace dicom {

Probe probe(std::span<const uint8_t> first_bytes, Dir dir);
// A-ASSOCIATE-RQ: the client; A-ASSOCIATE-AC or -RJ: the server; anything else: unknown.
StreamSender sender(std::span<const uint8_t> first_bytes);
std::unique_ptr<Dissector> make_dissector();

constexpr size_t kMaxOpsPerEvent = 1000;   // further ops are only counted (ops_dropped)
constexpr size_t kMaxPendingOps = 256;     // requests waiting for their final response
constexpr uint32_t kMaxAnomalyEvents = 100;  // per flow; further anomalies are only counted

// DICOM over TLS cannot be dissected; the sensor records such flows as app "dicom-tls" when
// nDPI sees TLS on the dicom-tls port (2762) or towards a peer already seen speaking DICOM.
constexpr uint16_t kDicomTlsPort = 2762;
inline bool is_dicom_tls(bool flow_is_tls, uint16_t server_port, bool peer_speaks_dicom) {
  return flow_is_tls && (server_port == kDicomTlsPort || peer_speaks_dicom);
}

}  // namespace dicom
}  // namespace medmon
