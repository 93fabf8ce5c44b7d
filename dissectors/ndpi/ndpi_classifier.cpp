#include "dissectors/ndpi/ndpi_classifier.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

extern "C" {
#include <ndpi/ndpi_api.h>
}

namespace medmon {

NdpiClassifier::NdpiClassifier(Limits limits, Counters& counters)
    : limits_(limits),
      c_detected_(counters.at("ndpi.detected")),
      c_gave_up_(counters.at("ndpi.gave_up")),
      c_cap_hits_(counters.at("ndpi.flow_cap_hits")),
      c_by_content_(counters.at("ndpi.smb_by_content")) {}

namespace {
// Workers build their modules on their own threads, on the first flow that needs one. nDPI's
// initialisation also initialises libgcrypt, which must not run on two threads at once.
std::mutex g_init_lock;
// The module a thread keeps for its classifiers (share_module_on_this_thread), freed when the
// thread ends; its classifiers are gone by then.
struct ThreadModule {
  bool share = false;
  ndpi_detection_module_struct* module = nullptr;
  ~ThreadModule() {
    if (!module) return;
    std::lock_guard<std::mutex> hold(g_init_lock);
    ndpi_exit_detection_module(module);
  }
};
thread_local ThreadModule t_kept;
}  // namespace

void NdpiClassifier::share_module_on_this_thread() { t_kept.share = true; }

ndpi_detection_module_struct* NdpiClassifier::module() {
  if (ndpi_) return ndpi_;
  if (t_kept.share && t_kept.module) {
    borrowed_ = true;
    return ndpi_ = t_kept.module;
  }
  std::lock_guard<std::mutex> hold(g_init_lock);
  ndpi_ = ndpi_init_detection_module(ndpi_no_prefs);
  if (!ndpi_) throw std::runtime_error("nDPI initialisation failed");
  NDPI_PROTOCOL_BITMASK all;
  NDPI_BITMASK_SET_ALL(all);
  ndpi_set_protocol_detection_bitmask2(ndpi_, &all);
  ndpi_finalize_initialization(ndpi_);
  if (t_kept.share) {
    t_kept.module = ndpi_;
    borrowed_ = true;
  }
  return ndpi_;
}

bool NdpiClassifier::is_protocol_name(std::string_view name) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    std::lock_guard<std::mutex> hold(g_init_lock);
    ndpi_detection_module_struct* m = ndpi_init_detection_module(ndpi_no_prefs);
    if (!m) throw std::runtime_error("nDPI initialisation failed");
    NDPI_PROTOCOL_BITMASK all;
    NDPI_BITMASK_SET_ALL(all);
    ndpi_set_protocol_detection_bitmask2(m, &all);
    ndpi_finalize_initialization(m);
    for (u_int i = 1; i < ndpi_get_num_supported_protocols(m); ++i) {
      const char* n = ndpi_get_proto_name(m, static_cast<uint16_t>(i));
      if (n && std::strcmp(n, "Unknown") != 0) out.emplace_back(n);
    }
    ndpi_exit_detection_module(m);
    return out;
  }();
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (const std::string& n : names) {
    if (n.size() != name.size()) continue;
    if (std::equal(n.begin(), n.end(), name.begin(), [&](char a, char b) { return lower(a) == lower(b); })) return true;
  }
  return false;
}

NdpiClassifier::~NdpiClassifier() {
  if (!ndpi_ || borrowed_) return;
  std::lock_guard<std::mutex> hold(g_init_lock);
  ndpi_exit_detection_module(ndpi_);
}

namespace {
bool is_tls_family(uint16_t p) {
  return p == NDPI_PROTOCOL_TLS || p == NDPI_PROTOCOL_DTLS || p == NDPI_PROTOCOL_QUIC;
}

void assign(std::string& to, const char* from, size_t cap) {
  if (from) to.assign(from, strnlen(from, cap)); else to.clear();
}

void read_tls(const ndpi_flow_struct& f, TlsHandshake& t) {
  const auto& q = f.protos.tls_quic;
  constexpr size_t kMaxName = 1024;  // nDPI's own strings, bounded for the event
  assign(t.ja3, q.ja3_client, sizeof q.ja3_client);
  assign(t.ja3s, q.ja3_server, sizeof q.ja3_server);
  // ssl_version holds the ClientHello's version until a ServerHello overwrites it: only a
  // ServerHello (its fingerprint is there) says what was negotiated.
  t.version = t.ja3s.empty() ? 0 : q.ssl_version;
  t.cipher = t.ja3s.empty() ? 0 : q.server_cipher;
  assign(t.alpn, q.alpn, kMaxName);
  assign(t.subject, q.subjectDN, kMaxName);
  assign(t.issuer, q.issuerDN, kMaxName);
  t.not_before = q.notBefore;
  t.not_after = q.notAfter;
}
}  // namespace

void NdpiClassifier::capture_result(State& s, uint16_t master, uint16_t app, uint16_t category, bool detected) {
  // nDPI reports "TLS.Google" as master TLS + app Google, or plain "SSH" as app only.
  if (master == NDPI_PROTOCOL_UNKNOWN) { master = app; app = NDPI_PROTOCOL_UNKNOWN; }
  s.result.master = master;
  s.result.app = app;
  s.result.category = category;
  if (s.flow) {
    s.result.risk = s.flow->risk;
    if (s.flow->host_server_name[0]) {
      s.result.sni.assign(s.flow->host_server_name, strnlen(s.flow->host_server_name, sizeof s.flow->host_server_name));
    }
    // protos is a union: its TLS member holds a handshake only once nDPI's detection named the
    // flow TLS (the condition under which nDPI itself frees the member's strings). A name given
    // up on, guessed from the port, says nothing of what the union holds.
    if (detected && (is_tls_family(master) || is_tls_family(app))) read_tls(*s.flow, s.result.tls);
  }
}

uint16_t NdpiClassifier::smb_by_content(std::span<const uint8_t> b) {
  // NetBIOS session message: type 0, then a 17-bit length (SMB2 direct TCP: 24-bit, high byte 0
  // in practice), then the SMB header's four-byte protocol id.
  if (b.size() < 8 || b[0] != 0x00) return 0;
  uint32_t len = uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
  if (b[5] != 'S' || b[6] != 'M' || b[7] != 'B') return 0;
  switch (b[4]) {
    case 0xFF: return len >= 32 ? NDPI_PROTOCOL_SMBV1 : 0;    // SMB1 header: 32 bytes
    case 0xFE: return len >= 64 ? NDPI_PROTOCOL_SMBV23 : 0;   // SMB2/3 header: 64 bytes
    case 0xFD: return len >= 52 ? NDPI_PROTOCOL_SMBV23 : 0;   // SMB3 transform header (encrypted)
    case 0xFC: return len >= 16 ? NDPI_PROTOCOL_SMBV23 : 0;   // SMB3 compression transform header
    default: return 0;
  }
}

void NdpiClassifier::process(State& s, const uint8_t* l3, uint32_t len, uint64_t time_ms,
                             std::span<const uint8_t> tcp_payload, bool claimed) {
  if (s.finished) return;
  if (!s.flow) {
    if (in_detection_ >= limits_.max_flows_in_detection) {
      ++c_cap_hits_;
      s.finished = true;
      return;
    }
    s.flow = static_cast<ndpi_flow_struct*>(ndpi_flow_malloc(SIZEOF_FLOW_STRUCT));
    if (!s.flow) { s.finished = true; return; }
    std::memset(s.flow, 0, SIZEOF_FLOW_STRUCT);
    ++in_detection_;
  }
  if (len > 0xFFFF) len = 0xFFFF;
  ndpi_protocol p = ndpi_detection_process_packet(module(), s.flow, l3, static_cast<uint16_t>(len), time_ms);
  ++s.packets;
  bool detected = p.app_protocol != NDPI_PROTOCOL_UNKNOWN || p.master_protocol != NDPI_PROTOCOL_UNKNOWN;
  if (detected) {
    capture_result(s, p.master_protocol, p.app_protocol, static_cast<uint16_t>(p.category), true);
    s.result.detected = true;
    // Keep going a little while nDPI can still extract metadata (TLS SNI, certificates).
    if (!ndpi_extra_dissection_possible(ndpi_, s.flow) || s.packets >= limits_.max_packets) done_detecting(s);
    return;
  }
  if (uint16_t smb = smb_by_content(tcp_payload)) {
    ndpi_protocol named{};
    named.app_protocol = smb;
    capture_result(s, NDPI_PROTOCOL_UNKNOWN, smb, static_cast<uint16_t>(ndpi_get_proto_category(ndpi_, named)), true);
    s.result.detected = true;
    ++c_by_content_;
    done_detecting(s);
    return;
  }
  if (s.packets >= limits_.max_packets) finish(s, claimed);
}

void NdpiClassifier::done_detecting(State& s) {
  ++c_detected_;
  ndpi_free_flow(s.flow);
  s.flow = nullptr;
  --in_detection_;
  s.finished = true;
}

void NdpiClassifier::finish(State& s, bool claimed) {
  if (s.finished && !s.flow) return;
  if (s.flow) {
    if (!s.result.detected) {
      uint8_t guessed = 0;
      ndpi_protocol p = ndpi_detection_giveup(ndpi_, s.flow, claimed ? 0 : 1, &guessed);
      capture_result(s, p.master_protocol, p.app_protocol, static_cast<uint16_t>(p.category), false);
      s.result.guessed = guessed;
      ++c_gave_up_;
    } else {
      ++c_detected_;
    }
    ndpi_free_flow(s.flow);
    s.flow = nullptr;
    --in_detection_;
  }
  s.finished = true;
}

std::string NdpiClassifier::protocol_name(const NdpiResult& r) const {
  if (r.master == NDPI_PROTOCOL_UNKNOWN || !ndpi_) return "Unknown";
  const char* n = ndpi_get_proto_name(ndpi_, r.master);
  return n ? n : "Unknown";
}

std::string NdpiClassifier::app_name(const NdpiResult& r) const {
  if (r.app == NDPI_PROTOCOL_UNKNOWN || r.app == r.master || !ndpi_) return {};
  const char* n = ndpi_get_proto_name(ndpi_, r.app);
  return n ? n : "";
}

std::string NdpiClassifier::category_name(const NdpiResult& r) const {
  // Without tables no flow was classified: every result is the unspecified category.
  if (!ndpi_) return r.category == NDPI_PROTOCOL_CATEGORY_UNSPECIFIED ? "Unspecified" : "";
  const char* n = ndpi_category_get_name(ndpi_, static_cast<ndpi_protocol_category_t>(r.category));
  return n ? n : "";
}

std::vector<std::string> NdpiClassifier::risk_names(uint64_t risk) {
  std::vector<std::string> out;
  for (int i = 1; i < NDPI_MAX_RISK && i < 64; ++i) {
    if (risk & (1ULL << i)) {
      const char* n = ndpi_risk2str(static_cast<ndpi_risk_enum>(i));
      if (n) out.emplace_back(n);
    }
  }
  return out;
}

std::string NdpiClassifier::tls_version_name(uint16_t version) {
  if (version == 0) return {};
  char buf[32];
  uint8_t unknown = 0;
  const char* n = ndpi_ssl_version2str(buf, sizeof buf, version, &unknown);
  return n ? n : "";
}

std::string NdpiClassifier::tls_cipher_name(uint16_t cipher) {
  if (cipher == 0) return {};
  // nDPI writes the code of a suite it does not know into one static buffer: workers take turns.
  static std::mutex lock;
  std::lock_guard<std::mutex> hold(lock);
  const char* n = ndpi_cipher2str(cipher);
  return n ? n : "";
}

bool NdpiClassifier::is_encrypted(const NdpiResult& r) const {
  if (r.guessed) return false;  // "TLS" because the port is 443: the bytes may be cleartext
  switch (r.master) {
    case NDPI_PROTOCOL_TLS: case NDPI_PROTOCOL_DTLS: case NDPI_PROTOCOL_SSH: case NDPI_PROTOCOL_QUIC:
    case NDPI_PROTOCOL_MAIL_IMAPS: case NDPI_PROTOCOL_MAIL_POPS: case NDPI_PROTOCOL_MAIL_SMTPS:
    case NDPI_PROTOCOL_OPENVPN: case NDPI_PROTOCOL_WIREGUARD: case NDPI_PROTOCOL_IP_IPSEC:
      return true;
    default:
      return false;
  }
}

}  // namespace medmon
