#pragma once
// nDPI 4.2 glue: classifies every flow that medmon's own dissectors do not claim (SMB, RDP,
// SSH, TLS with SNI, ...). nDPI's per-flow state (~700 bytes) lives only while detection runs:
// it is freed as soon as the flow is classified or after a bounded number of packets, and the
// number of flows in detection at once is capped.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sensor/common/counters.h"

struct ndpi_detection_module_struct;
struct ndpi_flow_struct;

namespace medmon {

// What nDPI read of a TLS handshake (ClientHello, ServerHello, the server's certificate in TLS
// 1.2 and older; TLS 1.3 encrypts the certificate). Empty fields were not seen.
struct TlsHandshake {
  uint16_t version = 0;        // negotiated (ServerHello, supported_versions in TLS 1.3); 0 = none seen
  uint16_t cipher = 0;         // the suite the server chose
  std::string ja3, ja3s;       // MD5 fingerprints of the ClientHello and ServerHello
  std::string alpn;            // protocols the client offered, comma-separated
  std::string subject, issuer; // the server certificate's distinguished names
  uint32_t not_before = 0, not_after = 0;  // its validity, seconds since the epoch (0 = not seen)
  bool operator==(const TlsHandshake&) const = default;
};

struct NdpiResult {
  uint16_t master = 0;   // e.g. TLS
  uint16_t app = 0;      // e.g. Google (0 when none)
  uint16_t category = 0;
  uint64_t risk = 0;
  bool detected = false;
  bool guessed = false;
  std::string sni;       // TLS/QUIC server name, DNS/HTTP host
  TlsHandshake tls;      // TLS, DTLS and QUIC flows only
};

class NdpiClassifier {
 public:
  struct Limits {
    uint32_t max_packets = 24;              // per flow, then give up
    size_t max_flows_in_detection = 262144; // nDPI state held at once
    bool operator==(const Limits&) const = default;
  };
  // Detection state for one flow.
  struct State {
    ndpi_flow_struct* flow = nullptr;
    uint16_t packets = 0;
    bool finished = false;
    NdpiResult result;
  };

  // nDPI's tables (~60 M instructions, several MiB) are built on the first flow that needs them:
  // a capture whose flows medmon's own dissectors all claim (a DICOM or HL7 link) never pays.
  NdpiClassifier(Limits limits, Counters& counters);
  ~NdpiClassifier();
  NdpiClassifier(const NdpiClassifier&) = delete;
  NdpiClassifier& operator=(const NdpiClassifier&) = delete;

  // Feeds one IP packet (header included). No-op once the state is finished. `tcp_payload` is
  // the packet's TCP payload, for the content checks medmon adds where nDPI 4.2 goes by port.
  // `claimed`: a medmon dissector claimed the flow (see finish) and nDPI reads its carrier.
  void process(State& s, const uint8_t* l3, uint32_t len, uint64_t time_ms,
               std::span<const uint8_t> tcp_payload = {}, bool claimed = false);
  // nDPI 4.2 names SMB only on TCP 445: on any other port medmon finds it by content, a NetBIOS
  // session message that holds an SMB1, SMB2/3 or encrypted SMB3 header. The nDPI protocol
  // (SMBv1, SMBv23), or 0.
  static uint16_t smb_by_content(std::span<const uint8_t> tcp_payload);
  // Stops detection (flow end, or a medmon dissector claimed the flow). An undetected flow gets
  // nDPI's guess from its ports (result.guessed), unless a medmon dissector claimed it: that
  // dissector read the content, a port says nothing more.
  void finish(State& s, bool claimed = false);

  std::string protocol_name(const NdpiResult& r) const;  // "TLS", "SMBv23", "Unknown"
  std::string app_name(const NdpiResult& r) const;       // "Google" or empty
  std::string category_name(const NdpiResult& r) const;
  static std::vector<std::string> risk_names(uint64_t risk);
  // "TLSv1.2", "SSLv3", ...; "" for 0. An unknown code is written as nDPI does ("TLS (FAFA)").
  static std::string tls_version_name(uint16_t version);
  static std::string tls_cipher_name(uint16_t cipher);  // IANA name, e.g. "TLS_AES_128_GCM_SHA256"
  // Whether nDPI names a protocol so ("TFTP", "mdns", "DHCPV6"), compared without regard to case
  // as nDPI's own lookup does. The first call builds nDPI's tables once to read the names.
  static bool is_protocol_name(std::string_view name);
  // TLS, DTLS, SSH, QUIC, ... seen in the content; a protocol guessed from the port never is.
  bool is_encrypted(const NdpiResult& r) const;
  // Builds nDPI's tables now rather than on the first flow (live capture: no pause mid-stream).
  void prepare() { module(); }
  bool prepared() const { return ndpi_ != nullptr; }
  // Many short-lived classifiers on one thread (the pipeline fuzz target builds a pipeline per
  // input): from now on the first module built on the calling thread is kept and lent to every
  // later classifier of that thread, instead of ~50 ms of table building each; it is freed when
  // the thread ends. nDPI's caches in the module carry over from one classifier to the next.
  static void share_module_on_this_thread();

 private:
  ndpi_detection_module_struct* module();
  void capture_result(State& s, uint16_t master, uint16_t app, uint16_t category, bool detected);
  // Detected: nDPI's state of the flow is freed, and the result kept.
  void done_detecting(State& s);

  Limits limits_;
  ndpi_detection_module_struct* ndpi_ = nullptr;
  bool borrowed_ = false;  // ndpi_ belongs to the thread (share_module_on_this_thread)
  size_t in_detection_ = 0;
  uint64_t& c_detected_;
  uint64_t& c_gave_up_;
  uint64_t& c_cap_hits_;
  uint64_t& c_by_content_;
};

}  // namespace medmon
