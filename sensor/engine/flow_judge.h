#pragma once
// The hook through which a policy judges flows. The pipeline calls judge() once per flow as it
// ends; the verdict goes into the flow's `flow` event, which is written right after any alerts
// the judge wrote through `out`.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dissectors/api/flow_context.h"
#include "sensor/output/event_output.h"

namespace medmon {

struct FlowSummary {
  EventEndpoints ep;                    // client -> server (initiator first)
  std::array<uint8_t, 6> client_mac{};  // zero when the link has no MAC
  std::array<uint8_t, 6> server_mac{};
  bool to_l2_broadcast = false;         // the initiator's frames went to ff:ff:ff:ff:ff:ff
  Timestamp start, end;
  std::array<uint64_t, 2> pkts{};       // [to_server, to_client]
  std::array<uint64_t, 2> bytes{};      // frame bytes, as on the wire
  std::array<uint64_t, 2> payload_bytes{};
  bool syn_seen = false;                // the initiator was seen opening the connection
  bool server_answered = false;         // SYN-ACK or payload back (an RST alone is no answer)
  std::string end_state;                // closed, reset, idle_timeout, ... (see docs/schema/flow.json)
  std::string ndpi_protocol;            // e.g. "TLS", "SMBv23", "SSH", "Unknown"
  std::string ndpi_app;                 // e.g. "Google" for TLS.Google, empty otherwise
  std::string ndpi_category;
  bool ndpi_guessed = false;            // nDPI named the protocol from the port only, not the content
  std::string sni;                      // TLS SNI when nDPI saw one
  uint16_t tls_version = 0;             // the version the ServerHello chose (0x0303 = TLS 1.2), 0 = none
  std::string tls_version_name;         // the same as nDPI names it ("TLSv1.2"), empty for none
  std::string tls_ja3, tls_ja3s;        // the ClientHello's and ServerHello's fingerprints
  bool tls_seen() const { return !tls_ja3.empty() || !tls_ja3s.empty(); }  // nDPI read either hello
  const FlowFacts* facts = nullptr;     // what medmon's own dissectors learnt (app, PHI, attributes)
};

struct FlowVerdict {
  std::string verdict;                  // declared / undeclared / forbidden; empty = not judged
  std::string rule;                     // the matching or contradicted rule id
  std::vector<std::string> mds2;        // MDS2 question ids contradicted
  // Each side's own verdict and rule ([0] the client, [1] the server), empty when that side is no
  // judged device: a flow between two devices is declared for one and undeclared for the other,
  // and `verdict` above is only the worse of the two.
  std::array<std::string, 2> side_verdict{}, side_rule{};
};

class FlowJudge {
 public:
  virtual ~FlowJudge() = default;
  virtual FlowVerdict judge(const FlowSummary& flow, EventOutput& out) = 0;
  // Called when the input ends, for host-level findings (scans, fan-out) that need all flows.
  virtual void finish(Timestamp now, EventOutput& out) {}
};

}  // namespace medmon
