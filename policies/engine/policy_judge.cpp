// Per-flow evaluation of the policy: verdicts, alerts with MDS2 citations, header annotation.
#include "policies/engine/policy_judge.h"

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cctype>
#include <fstream>

#include "dissectors/proprietary/signature.h"
#include "policies/mds2/mds2_form.h"

namespace medmon::policy {

namespace {

constexpr size_t kMaxEmitted = 1u << 20;   // remembered (rule, device, peer) triples
constexpr size_t kMaxRateKeys = 65536;     // (rule, device) pairs whose alert rate is tracked
constexpr size_t kMaxAeTracked = 4096;
constexpr size_t kMaxRejectSources = 4096;
constexpr size_t kMaxLearned = 65536;      // addresses bound by fingerprint

// ASCII case-insensitive equality; protocol names are ASCII and the locale is not wanted here.
inline char lc(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c | 0x20) : c; }
bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lc(a[i]) != lc(b[i])) return false;
  return true;
}
bool istarts(std::string_view s, std::string_view p) { return s.size() >= p.size() && ieq(s.substr(0, p.size()), p); }

bool is_lateral(std::string_view app);

// nDPI protocol name -> medmon application name.
std::string_view ndpi_app_name(std::string_view p, const FlowSummary& f) {
  if (p.empty() || ieq(p, "Unknown")) return {};
  if (istarts(p, "SMB")) return "smb";
  // The NetBIOS session service is how SMB travels on TCP 139 (and how nDPI names a session that
  // starts with a NetBIOS header on 445); the name and datagram services (UDP 137, 138), which nDPI
  // names alike, are name lookups and announcements, not file sharing.
  if (ieq(p, "NetBIOS")) return f.ep.proto == 6 ? "smb" : "netbios";
  if (ieq(p, "RDP")) return "rdp";
  if (ieq(p, "SSH")) return "ssh";
  if (ieq(p, "Telnet")) return "telnet";
  if (ieq(p, "VNC")) return "vnc";
  if (istarts(p, "FTP")) return "ftp";
  if (ieq(p, "DCE_RPC") || ieq(p, "RPC") || ieq(p, "MS_RPC")) return "rpc";
  if (ieq(p, "TeamViewer")) return "teamviewer";
  if (ieq(p, "AnyDesk")) return "anydesk";
  if (ieq(p, "TLS") || ieq(p, "DTLS") || ieq(p, "QUIC")) return "tls";
  if (ieq(p, "HTTP")) {
    // WS-Management runs over HTTP; its well-known ports tell WinRM from a web page.
    if (f.ep.dst_port == 5985 || f.ep.dst_port == 5986) return "winrm";
    return "http";
  }
  if (ieq(p, "NTP")) return "ntp";
  if (ieq(p, "DNS") || ieq(p, "MDNS") || ieq(p, "LLMNR")) return "dns";
  if (ieq(p, "DHCP") || ieq(p, "DHCPV6")) return "dhcp";
  if (ieq(p, "Syslog")) return "syslog";
  if (ieq(p, "LDAP")) return "ldap";
  if (ieq(p, "Kerberos")) return "kerberos";
  if (ieq(p, "SNMP")) return "snmp";
  if (ieq(p, "ICMP") || ieq(p, "ICMPV6")) return "icmp";
  // MS-SQL (TDS) is an admin protocol of its own (the lateral-movement signals name it beside SMB
  // and RDP: worms and operators move through SQL Server's xp_cmdshell); it is still of the SQL
  // family a model names `sql` (app_in).
  if (ieq(p, "MsSQL-TDS")) return "mssql";
  // The SQL databases nDPI reads: one family, as dns and dhcp are (a model may still name one).
  if (ieq(p, "MySQL") || ieq(p, "PostgreSQL") || ieq(p, "Oracle")) return "sql";
  if (ieq(p, "DICOM")) return "dicom";
  if (ieq(p, "HL7")) return "hl7";
  return p;
}

// nDPI's protocol as read from the content: one it only guessed from the port (cleartext on 443
// guessed "TLS") is no application, the flow's content is unknown.
std::string_view ndpi_content_protocol(const FlowSummary& f) {
  return f.ndpi_guessed ? std::string_view() : std::string_view(f.ndpi_protocol);
}

// The application of a flow: our dissectors first, else nDPI's classification of the content.
// nDPI reports e.g. protocol NetBIOS with app SMBv23; a lateral-movement app in either wins.
std::string_view app_of(const FlowSummary& f) {
  if (f.facts && !f.facts->app.empty()) {
    // "dicom-tls" / "hl7-tls": the sensor recognised the application server behind TLS.
    std::string_view a = f.facts->app;
    if (a.size() > 4 && a.substr(a.size() - 4) == "-tls") a.remove_suffix(4);
    return a;
  }
  // ICMP is known from the IP header: nDPI never sees those flows (they carry no stream).
  if (is_icmp(f.ep.proto)) return "icmp";
  if (f.ndpi_guessed) return {};
  std::string_view p = ndpi_app_name(f.ndpi_protocol, f);
  if (!is_lateral(p) && !f.ndpi_app.empty()) {
    std::string_view a = ndpi_app_name(f.ndpi_app, f);
    if (is_lateral(a)) return a;
  }
  return p;
}

// TLS (or DTLS, QUIC) carried the flow: what a rule with `tls: forbidden` does not match.
bool over_tls(const FlowSummary& f, std::string_view app) {
  if (f.facts && f.facts->tls) return true;
  if (f.facts && f.facts->app.size() > 4 && std::string_view(f.facts->app).substr(f.facts->app.size() - 4) == "-tls") return true;
  std::string_view p = ndpi_content_protocol(f);
  return app == "tls" || ieq(p, "TLS") || ieq(p, "DTLS") || ieq(p, "QUIC");
}

bool encrypted(const FlowSummary& f, std::string_view app) {
  if (f.facts && f.facts->tls) return true;
  if (f.facts && f.facts->app.size() > 4 && std::string_view(f.facts->app).substr(f.facts->app.size() - 4) == "-tls") return true;
  std::string_view p = ndpi_content_protocol(f);
  return app == "tls" || app == "ssh" || ieq(p, "TLS") || ieq(p, "DTLS") || ieq(p, "QUIC");
}

// The admin and remote-access protocols of the lateral-movement signals (SMB, MS-RPC, RDP, WinRM,
// SSH, Telnet, VNC, TeamViewer, FTP, MS-SQL), and AnyDesk, a remote-service tool as TeamViewer is.
bool is_lateral(std::string_view app) {
  static constexpr std::string_view l[] = {"smb", "rpc", "rdp", "winrm", "ssh", "telnet", "vnc", "ftp", "teamviewer",
                                           "anydesk", "mssql"};
  for (auto x : l) if (app == x) return true;
  return false;
}
// A flow a loaded signature classified carries the signature's name as its app.
bool signature_app(std::string_view app) {
  for (const auto& sig : proprietary::registered())
    if (sig->name == app) return true;
  return false;
}

bool is_infrastructure(std::string_view app) { return app == "dns" || app == "dhcp" || app == "ntp" || app == "icmp"; }

// A server name against a declared endpoint: the same name (any case, a final dot ignored), or for
// "*.example.org" any name below example.org.
bool endpoint_matches(std::string_view endpoint, std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (endpoint.size() > 2 && endpoint.substr(0, 2) == "*.") {
    std::string_view tail = endpoint.substr(1);  // ".example.org"
    return name.size() > tail.size() && ieq(name.substr(name.size() - tail.size()), tail);
  }
  return ieq(endpoint, name);
}

const std::string* attr(const FlowSummary& f, std::string_view k) { return f.facts ? f.facts->attr(k) : nullptr; }

// Iterates a list attribute value: comma-separated, or for AE titles (a comma is legal in one)
// backslash-separated.
template <class F> void each_item(std::string_view s, F fn, char sep = ',') {
  while (!s.empty()) {
    size_t c = s.find(sep);
    std::string_view item = s.substr(0, c);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) fn(item);
    if (c == std::string_view::npos) break;
    s.remove_prefix(c + 1);
  }
}

bool contains(const std::vector<std::string>& v, std::string_view s) {
  for (auto& x : v) if (x == s) return true;
  return false;
}
// Application names: the model's are lowercase, nDPI's names it does not map keep their own case
// ("MQTT", "Modbus").
bool contains_app(const std::vector<std::string>& v, std::string_view app) {
  for (auto& x : v) if (ieq(x, app)) return true;
  return false;
}

uint64_t fnv(uint64_t h, std::string_view s) {
  for (unsigned char c : s) { h ^= c; h *= 1099511628211ull; }
  h ^= 0xff; h *= 1099511628211ull;  // separator
  return h;
}
uint64_t triple_key(std::string_view rule, std::string_view dev, std::string_view peer) {
  return fnv(fnv(fnv(1469598103934665603ull, rule), dev), peer);
}

// A port some inbound flow of the model lists (a rule without ports covers every port): an
// undeclared connection there is an undeclared peer, not an unlisted listening port.
bool listens_on(const Model& m, uint16_t port) {
  for (auto& r : m.flows) {
    if (r.initiator == Initiator::device || (r.l4 && r.l4 != 6)) continue;
    if (r.ports.empty() || ports_contain(r.ports, port)) return true;
  }
  return false;
}

bool hl7_type_allowed(const std::vector<std::string>& allowed, std::string_view type) {
  for (auto& a : allowed) {
    if (a == type) return true;
    // "ORM" allows every trigger of ORM; "ACK" matches "ACK^O01".
    if (a.find('^') == std::string::npos && type.size() > a.size() && type.substr(0, a.size()) == a && type[a.size()] == '^')
      return true;
  }
  return false;
}

std::string ip_str(const IpAddr& a) { std::string s; a.append_to(s); return s; }

// Multicast (224.0.0.0/4, ff00::/8), the limited broadcast 255.255.255.255 and link-local addresses
// (169.254.0.0/16, fe80::/10): traffic to them stays on the site's own links, never outside the
// customer environment, whatever internal_networks lists.
bool link_scoped(const IpAddr& a) {
  const auto& b = a.b;
  if (a.family == 4)
    return (b[0] & 0xF0) == 224 || (b[0] == 169 && b[1] == 254) || (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255);
  if (a.family == 6) return b[0] == 0xFF || (b[0] == 0xFE && (b[1] & 0xC0) == 0x80);
  return false;
}

}  // namespace

struct PolicyJudge::Alert {
  std::string_view rule;
  Severity sev = Severity::medium;
  std::string message, device, peer;
  struct Cite { std::string id, answer, iec, nist, iso; };
  std::vector<Cite> mds2;
  std::vector<std::pair<std::string_view, std::string>> evidence;
  std::vector<std::string> phi_fields;
  std::string distinct;  // what makes two alerts of one (rule, device, peer) different findings
};

struct PolicyJudge::SideResult {
  int level = 0;  // 0 declared, 1 undeclared, 2 forbidden
  std::string rule;
  std::vector<std::string> mds2;
  int peer_role = -1;  // declared by a rule naming this site role, which the peer holds; -1 none
};

std::unique_ptr<PolicyJudge> PolicyJudge::fork(bool share_state) const {
  std::unique_ptr<PolicyJudge> j(new PolicyJudge(site_, opt_, share_state ? cross_ : std::make_shared<CrossFlow>()));
  j->baseline_ = baseline_;
  return j;
}

PolicyJudge::PolicyJudge(std::shared_ptr<const Site> site, JudgeOptions opt)
    : PolicyJudge(std::move(site), std::move(opt), std::make_shared<CrossFlow>()) {}

PolicyJudge::PolicyJudge(std::shared_ptr<const Site> site, JudgeOptions opt, std::shared_ptr<CrossFlow> cross)
    : site_(std::move(site)), opt_(std::move(opt)), cross_(std::move(cross)), learned_(cross_->learned),
      fp_address_(cross_->fp_address),
      ae_seen_(cross_->ae_seen), rejects_(cross_->rejects), reject_alerted_(cross_->reject_alerted),
      dev_state_(cross_->dev_state), emitted_(cross_->emitted), alert_rate_(cross_->alert_rate) {
  auto& s = *site_;
  for (uint32_t i = 0; i < s.devices.size(); ++i) {
    for (auto& ip : s.devices[i].ips) dev_by_ip_.emplace(IpKey(ip), i);
    for (auto& mac : s.devices[i].macs) dev_by_mac_.emplace_back(mac, i);
    for (auto& ae : s.devices[i].fp_dicom_calling_ae) fp_ae_.emplace_back(ae, i);
    for (auto& m : s.devices[i].fp_hl7_msh3) fp_msh3_.emplace_back(m, i);
  }
  {
    std::lock_guard<std::mutex> hold(cross_->lock);  // a sibling may be judging with this state
    if (dev_state_.size() != s.devices.size()) dev_state_.resize(s.devices.size());
  }
  // Roles: up to 64 get a bit each (a site with more roles is not plausible for one policy).
  for (size_t r = 0; r < s.roles.size() && r < 64; ++r) {
    uint64_t bit = 1ull << r;
    for (auto& c : s.roles[r].addrs) {
      bool host = (c.net.family == 4 && c.bits == 32) || (c.net.family == 6 && c.bits == 128);
      if (host) roles_by_ip_[IpKey(c.net)] |= bit;
      else roles_by_cidr_.emplace_back(c, bit);
    }
    // A role's ips may be networks: its AE titles are bound to the whole range.
    for (auto& ae : s.roles[r].ae_titles)
      for (auto& c : s.roles[r].addrs) ae_bindings_[ae].push_back(c);
  }
  dev_roles_.assign(s.devices.size(), 0);
  for (size_t i = 0; i < s.devices.size(); ++i) {
    auto& d = s.devices[i];
    for (auto& ro : d.roles) {
      int r = s.role_index(ro);
      if (r < 0 || r >= 64) continue;
      dev_roles_[i] |= 1ull << r;  // also for a device bound by MAC, whose address is not known here
      for (auto& ip : d.ips) roles_by_ip_[IpKey(ip)] |= 1ull << r;
    }
    // A device's AE titles are bound to its addresses; one bound by MAC only holds them wherever it
    // is (eval_dicom_flow asks the calling device itself), and any other client is a spoof.
    for (auto& ae : d.ae_titles) {
      if (d.ips.empty() && d.macs.empty()) continue;  // bound by fingerprint alone: nothing to hold it to
      auto& bound = ae_bindings_[ae];
      for (auto& ip : d.ips) bound.push_back({ip, static_cast<uint8_t>(ip.family == 4 ? 32 : 128)});
    }
  }
  size_t nz = s.zones.size() + 1;  // last index = external
  auto zidx = [&](const std::string& n) -> int {
    if (n == "external") return static_cast<int>(nz - 1);
    for (size_t z = 0; z < s.zones.size(); ++z) if (s.zones[z].name == n) return static_cast<int>(z);
    return -1;
  };
  zones_ = ZoneLookup(s.zones);
  // A device's `zone:` places its addresses that no zone's cidrs hold (the loader refuses one that
  // contradicts the cidrs): host routes, found before any network.
  dev_zone_.assign(s.devices.size(), -1);
  for (auto& d : s.devices) {
    int z = d.zone.empty() ? -1 : zidx(d.zone);
    dev_zone_[static_cast<size_t>(&d - s.devices.data())] = z;
    if (z < 0) continue;
    for (auto& ip : d.ips) zones_.add(Cidr{ip, static_cast<uint8_t>(ip.family == 4 ? 32 : 128)}, z);
  }
  // A subnet's directed broadcast (NetBIOS, DHCP relays, discovery protocols) goes to its last
  // address; /31 and /32 have none.
  auto add_broadcast = [&](const Cidr& c) {
    if (c.net.family != 4 || c.bits > 30) return;
    IpAddr b = c.net;
    uint32_t v = uint32_t(b.b[0]) << 24 | uint32_t(b.b[1]) << 16 | uint32_t(b.b[2]) << 8 | b.b[3];
    v |= c.bits == 0 ? 0xFFFFFFFFu : (0xFFFFFFFFu >> c.bits);
    for (int i = 0; i < 4; ++i) b.b[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
    subnet_broadcasts_.insert(IpKey(b));
  };
  for (auto& c : s.subnets) add_broadcast(c);
  zone_matrix_.assign(nz * nz, 0);
  for (auto& [from, to] : s.zone_matrix) {
    int a = zidx(from), b = zidx(to);
    if (a >= 0 && b >= 0) zone_matrix_[a * nz + b] = 1;
  }
}

std::unique_ptr<PolicyJudge> PolicyJudge::load(const std::string& site_path, const std::string& models_dir,
                                               const JudgeOptions& opt, Errors& errs) {
  auto site = load_site(site_path, models_dir, errs);
  if (!site) return nullptr;
  auto j = std::make_unique<PolicyJudge>(std::shared_ptr<const Site>(std::move(site)), opt);
  if (!opt.baseline_path.empty() && !j->load_baseline(opt.baseline_path, errs)) return nullptr;
  return j;
}

void PolicyJudge::accept(std::string_view rule, std::string_view device, std::string_view peer, Severity up_to) {
  auto [it, fresh] = baseline_.emplace(triple_key(rule, device, peer), up_to);
  if (!fresh && up_to > it->second) it->second = up_to;
}

bool PolicyJudge::load_baseline(const std::string& path, Errors& errs) {
  // A directory opens as an empty stream: it would be a baseline that accepts nothing.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    errs.add(path, 0, 0, std::string("cannot open baseline file: ") + std::strerror(errno));
    return false;
  }
  if (S_ISDIR(st.st_mode)) { errs.add(path, 0, 0, "baseline is a directory (expected a YAML or JSON Lines file)"); return false; }
  std::ifstream in(path);
  if (!in) { errs.add(path, 0, 0, std::string("cannot open baseline file: ") + std::strerror(errno)); return false; }
  // A UTF-8 byte-order mark (Notepad, PowerShell's Out-File) is no part of the first line.
  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  auto drop_bom = [&](std::string& line, bool first_line) {
    if (first_line && std::string_view(line).substr(0, kBom.size()) == kBom) line.erase(0, kBom.size());
  };
  std::string first;
  std::streampos start = in.tellg();
  for (bool first_line = true; std::getline(in, first); first_line = false) {
    drop_bom(first, first_line);
    if (first.find_first_not_of(" \t\r") != std::string::npos) break;
  }
  // An empty file is what `grep alert` of a clean run gives: it accepts nothing.
  if (!in && first.find_first_not_of(" \t\r") == std::string::npos) return true;
  bool jsonl = !first.empty() && first[first.find_first_not_of(" \t")] == '{';
  in.clear();
  in.seekg(start);
  size_t before = errs.list.size();
  if (jsonl) {
    // Alert events from an earlier run (`medmon analyze ... --out baseline.jsonl`): other event types are skipped.
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      drop_bom(line, ++n == 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) { errs.add(path, n, 1, "baseline: not a JSON object (expected one alert event per line)"); continue; }
      if (!j.contains("alert")) continue;
      auto& a = j["alert"];
      if (!a.is_object() || !a.contains("rule") || !a["rule"].is_string()) { errs.add(path, n, 1, "baseline: alert without a rule"); continue; }
      auto s = [&](const char* k) { return a.contains(k) && a[k].is_string() ? a[k].get<std::string>() : std::string(); };
      // The alert was accepted at the severity it was written with; a line without one (written
      // by hand) accepts every severity.
      Severity up_to = Severity::critical;
      if (std::string sev = s("severity"); !sev.empty() && !parse_severity(sev, up_to)) {
        errs.add(path, n, 1, "baseline: unknown severity '" + sev + "'");
        continue;
      }
      accept(s("rule"), s("device"), s("peer"), up_to);
    }
  } else {
    YAML::Node root;
    try { root = YAML::LoadFile(path); }
    catch (const YAML::Exception& e) { errs.add(path, e.mark.line + 1, e.mark.column + 1, "baseline: YAML syntax error: " + e.msg); return false; }
    catch (const std::exception& e) { errs.add(path, 0, 0, std::string("baseline: cannot read file: ") + e.what()); return false; }
    YAML::Node list = root.IsMap() ? root["accepted"] : root;
    if (!list || !list.IsSequence()) {
      errs.add(path, 1, 1, "baseline: expected a list of {rule, device, peer} (or under 'accepted:'), or alert JSON lines");
      return false;
    }
    for (auto e : list) {
      if (!e.IsMap() || !e["rule"] || !e["rule"].IsScalar()) {
        errs.add(path, e.Mark().line + 1, e.Mark().column + 1, "baseline entry: expected {rule: ..., device: ..., peer: ...}");
        continue;
      }
      for (auto it = e.begin(); it != e.end(); ++it) {
        std::string k = it->first.Scalar();
        if (k != "rule" && k != "device" && k != "peer" && k != "severity" && k != "reason")
          errs.add(path, it->first.Mark().line + 1, it->first.Mark().column + 1, "baseline entry: unknown key '" + k + "' (expected rule, device, peer, severity, reason)");
      }
      auto s = [&](const char* k) { return e[k] && e[k].IsScalar() ? e[k].Scalar() : std::string(); };
      // Alerts always name a device and a peer: an entry without one would accept nothing.
      if (s("device").empty() || s("peer").empty()) {
        errs.add(path, e.Mark().line + 1, e.Mark().column + 1,
                 std::string("baseline entry: no ") + (s("device").empty() ? "device" : "peer") +
                     " (an alert is accepted by its rule, device and peer; expected {rule: ..., device: ..., peer: ...})");
        continue;
      }
      // `severity:` accepts the finding up to that severity; without it, at every severity.
      Severity up_to = Severity::critical;
      if (std::string sev = s("severity"); !sev.empty() && !parse_severity(sev, up_to)) {
        errs.add(path, e["severity"].Mark().line + 1, e["severity"].Mark().column + 1,
                 "baseline entry: unknown severity '" + sev + "' (expected info, low, medium, high, critical)");
        continue;
      }
      accept(s("rule"), s("device"), s("peer"), up_to);
    }
  }
  return errs.list.size() == before;
}

const Device* PolicyJudge::device_at(const IpAddr& ip, const std::array<uint8_t, 6>& mac) const {
  auto it = dev_by_ip_.find(IpKey(ip));
  if (it != dev_by_ip_.end()) return &site_->devices[it->second];
  if (!dev_by_mac_.empty()) {
    static const std::array<uint8_t, 6> zero{};
    if (mac != zero)
      for (auto& [m, i] : dev_by_mac_) if (m == mac) return &site_->devices[i];
  }
  return nullptr;
}

const Device* PolicyJudge::judged_device(const IpAddr& ip, const std::array<uint8_t, 6>& mac) const {
  if (const Device* d = device_at(ip, mac)) return d;
  if (learned_.empty()) return nullptr;
  auto it = learned_.find(IpKey(ip));
  return it == learned_.end() ? nullptr : &site_->devices[it->second];
}

const Device* PolicyJudge::bind_by_fingerprint(const FlowSummary& f) {
  if (!f.facts || (fp_ae_.empty() && fp_msh3_.empty())) return nullptr;
  auto find = [&](const std::vector<std::pair<std::string, uint32_t>>& v, const char* k) -> const Device* {
    const std::string* a = f.facts->attr(k);
    if (!a) return nullptr;
    for (auto& [val, i] : v) if (val == *a) return &site_->devices[i];
    return nullptr;
  };
  const Device* d = find(fp_ae_, "dicom.calling_ae");
  if (!d) d = find(fp_msh3_, "hl7.msh3");
  if (!d) return nullptr;
  // A device is at one address: its own `ip`, or the first that showed its fingerprint. Another
  // host showing it later is not the device and does not take it over (eval_dicom_flow reports
  // the calling AE as spoofed).
  auto di = static_cast<uint32_t>(d - site_->devices.data());
  if (!d->ips.empty() || fp_address_.count(di)) return nullptr;
  if (learned_.size() >= kMaxLearned) { ++learned_full_; return nullptr; }
  {
    std::unique_lock<std::shared_mutex> hold(cross_->learned_lock);
    learned_.emplace(IpKey(f.ep.src), di);
  }
  cross_->learned_gen.fetch_add(1, std::memory_order_release);
  fp_address_.emplace(di, f.ep.src);
  return d;
}

const Device* PolicyJudge::fingerprint_owner(std::string_view calling_ae) const {
  if (fp_address_.empty()) return nullptr;
  for (auto& [ae, i] : fp_ae_)
    if (ae == calling_ae) return fp_address_.count(i) ? &site_->devices[i] : nullptr;
  return nullptr;
}

int PolicyJudge::zone_of(const IpAddr& ip, const Device* dev) const {
  if (int z = zones_.find(ip); z >= 0) return z;
  if (dev) {
    if (int z = dev_zone_[static_cast<size_t>(dev - site_->devices.data())]; z >= 0) return z;
  }
  return internal(ip) ? -1 : static_cast<int>(site_->zones.size());  // external pseudo-zone
}

bool PolicyJudge::internal(const IpAddr& ip) const {
  for (auto& c : site_->internal) if (c.contains(ip)) return true;
  return link_scoped(ip);
}

bool PolicyJudge::group_destination(const FlowSummary& f) const {
  const IpAddr& ip = f.ep.dst;
  const auto& b = ip.b;
  if (ip.family == 6) return b[0] == 0xFF;
  if (ip.family != 4) return false;
  if ((b[0] & 0xF0) == 224 || (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)) return true;
  // A directed broadcast is never answered from its own address: one that sent anything back on the
  // flow is a host, whatever block it ends.
  if (f.pkts[1] > 0) return false;
  // Where the frame went says it on the link; without it, only the last address of a block the site
  // declares as a subnet is taken for its broadcast (a zone or a network may be narrower or wider
  // than the subnet, and its last address a host).
  return f.to_l2_broadcast || (!subnet_broadcasts_.empty() && subnet_broadcasts_.count(IpKey(ip)));
}

uint64_t PolicyJudge::roles_of(const IpAddr& ip) const {
  uint64_t m = 0;
  auto it = roles_by_ip_.find(IpKey(ip));
  if (it != roles_by_ip_.end()) m = it->second;
  for (auto& [c, bit] : roles_by_cidr_) if (c.contains(ip)) m |= bit;
  return m;
}

const Device* PolicyJudge::learned_at(const IpAddr& ip) const {
  if (cross_->learned_gen.load(std::memory_order_acquire) == 0) return nullptr;  // none learnt: no lock
  std::shared_lock<std::shared_mutex> hold(cross_->learned_lock);
  auto it = learned_.find(IpKey(ip));
  return it == learned_.end() ? nullptr : &site_->devices[it->second];
}

const Device* PolicyJudge::bound_device(const IpAddr& ip, const std::array<uint8_t, 6>& mac) const {
  if (const Device* d = device_at(ip, mac)) return d;
  return learned_at(ip);
}

std::vector<std::pair<IpAddr, const Device*>> PolicyJudge::fingerprint_bound() const {
  std::vector<std::pair<IpAddr, const Device*>> v;
  std::shared_lock<std::shared_mutex> hold(cross_->learned_lock);
  for (auto& [key, i] : learned_) {
    IpAddr a;
    a.b = key.b;
    a.family = key.family;
    v.emplace_back(a, &site_->devices[i]);
  }
  return v;
}

void PolicyJudge::annotate(const EventEndpoints& ep, JsonWriter& w) { annotate_with(ep, w, true); }

void PolicyJudge::annotate_with(const EventEndpoints& ep, JsonWriter& w, bool learned) const {
  // Devices bound by ip or by mac, as judge() binds them, and (`learned`) by a fingerprint.
  const Device* s = device_at(ep.src, ep.src_mac);
  const Device* d = device_at(ep.dst, ep.dst_mac);
  if (learned && !s && ep.src.family) s = learned_at(ep.src);
  if (learned && !d && ep.dst.family) d = learned_at(ep.dst);
  if (s) w.field("src_device", s->name);
  if (d) w.field("dst_device", d->name);
  if (ep.src.family) {
    int z = zone_of(ep.src, s);
    if (z >= 0 && static_cast<size_t>(z) < site_->zones.size()) w.field("src_zone", site_->zones[z].name);
    else if (z >= 0) w.field("src_zone", "external");
  }
  if (ep.dst.family) {
    int z = zone_of(ep.dst, d);
    if (z >= 0 && static_cast<size_t>(z) < site_->zones.size()) w.field("dst_zone", site_->zones[z].name);
    else if (z >= 0) w.field("dst_zone", "external");
  }
}

void PolicyJudge::cite_sources(Alert& a, const Model* m, const std::vector<std::string>& sources,
                               std::vector<std::string>* cited) const {
  for (auto& src : sources) {
    std::string id;
    if (!mds2::match_question_id(src, id)) continue;  // a document, not a question
    cite(a, m, id);
    if (cited) cited->push_back(id);
  }
}

void PolicyJudge::cite(Alert& a, const Model* m, std::string_view qid) const {
  for (auto& c : a.mds2) if (c.id == qid) return;
  Alert::Cite c;
  c.id = std::string(qid);
  if (m) {
    auto it = m->answers.find(c.id);
    if (it != m->answers.end()) {
      c.answer = it->second.answer;
      c.iec = it->second.iec; c.nist = it->second.nist; c.iso = it->second.iso;
    }
    if (c.answer.empty()) {
      // Hand-written models state the derived switch, not the answer: recover the answer from it.
      for (size_t i = 0; i < mds2::derived_switches().size() && i < m->sw.size(); ++i) {
        auto& s = mds2::derived_switches()[i];
        if (qid != s.question || m->sw[i] < 0) continue;
        bool yes = (m->sw[i] == 1) != s.inverted;
        c.answer = yes ? "yes" : "no";
      }
    }
  }
  // The mapping belongs to the form, not to the vendor: cells an answer leaves out (a hand-written
  // entry of only answer and detail) come from the NEMA template.
  if (auto* t = mds2::template_mapping(qid)) {
    if (c.iec.empty()) c.iec = t->iec;
    if (c.nist.empty()) c.nist = t->nist;
    if (c.iso.empty()) c.iso = t->iso;
  }
  if (c.answer.empty()) c.answer = "unknown";
  a.mds2.push_back(std::move(c));
}

bool PolicyJudge::rate_limited(const FlowSummary& f, Alert& a, EventOutput& out) {
  const Thresholds& th = site_->thresholds;
  if (th.alert_limit == 0 || a.rule == "policy.rate_limited") return false;
  const int64_t t = (f.end.usec ? f.end : f.start).usec;
  const int64_t window = static_cast<int64_t>(th.alert_limit_window_s) * 1000000;
  uint64_t key = fnv(fnv(1469598103934665603ull, a.rule), a.device);
  auto it = alert_rate_.find(key);
  if (it == alert_rate_.end()) {
    if (alert_rate_.size() >= kMaxRateKeys)
      std::erase_if(alert_rate_, [&](const auto& e) { return t - e.second.start >= window || e.second.start - t >= window; });
    if (alert_rate_.size() >= kMaxRateKeys) { ++rate_keys_full_; return false; }
    it = alert_rate_.emplace(key, AlertRate{}).first;
    it->second.start = t;
  }
  AlertRate& r = it->second;
  // A new window; flows end out of order a little (an earlier end is in this window), but a
  // clock that went back by more than a window starts a new one.
  if (t - r.start >= window || r.start - t >= window) {
    r.start = t;
    r.written = 0;
    r.worst = Severity::info;
  }
  // A more severe alert than any written in the window is written past the limit: flooding with
  // low alerts does not hide a critical one.
  if (r.written < th.alert_limit || a.sev > r.worst) {
    ++r.written;
    r.worst = std::max(r.worst, a.sev);
    // The first alert written after some were held back says how many.
    if (r.held_back) {
      a.evidence.emplace_back("rate_limited_before", std::to_string(r.held_back));
      r.held_back = 0;
    }
    return false;
  }
  ++r.held_back;
  ++out.counters().at("policy.alerts_rate_limited");
  if (r.noted == r.start) return true;
  // Once per window: one alert that says the rule's alerts for this device are being held back.
  r.noted = r.start;
  Alert n;
  n.rule = "policy.rate_limited";
  n.sev = a.sev;
  n.device = a.device;
  n.peer = std::string(a.rule);
  n.distinct = std::to_string(r.start);
  n.message = "More than " + std::to_string(th.alert_limit) + " " + std::string(a.rule) + " alerts for " + a.device +
              " within " + std::to_string(th.alert_limit_window_s) + " s: further ones are counted, not written, until " +
              "the window ends";
  n.evidence.emplace_back("limited_rule", std::string(a.rule));
  n.evidence.emplace_back("alert_limit", std::to_string(th.alert_limit));
  n.evidence.emplace_back("window_s", std::to_string(th.alert_limit_window_s));
  emit(f, n, out);
  return true;
}

void PolicyJudge::emit(const FlowSummary& f, Alert& a, EventOutput& out) {
  auto ov = site_->severity_overrides.find(std::string(a.rule));
  if (ov != site_->severity_overrides.end()) a.sev = ov->second;
  uint64_t key = triple_key(a.rule, a.device, a.peer);
  uint64_t seen = fnv(key, a.distinct);
  // A repeat is folded unless it is more severe than every one before it (an escalation: the
  // same peer pair now carrying PHI undeclared, say), which is written.
  auto it = emitted_.find(seen);
  if (it != emitted_.end() && a.sev <= it->second) { ++repeats_; ++out.counters().at("policy.alert_repeats"); return; }
  auto b = baseline_.find(key);
  const bool baselined = b != baseline_.end() && a.sev <= b->second;
  // Over the rate limit: counted, not remembered (the peer is alerted on in a later window).
  if (!baselined && rate_limited(f, a, out)) return;
  if (it != emitted_.end()) it->second = a.sev;
  else if (emitted_.size() < kMaxEmitted) emitted_.emplace(seen, a.sev);
  else ++emitted_full_;
  // An accepted alert is counted once (and once per escalation), as it would have been written;
  // the baseline accepts it only up to the severity it was accepted at.
  if (baselined) {
    ++suppressed_;
    ++out.counters().at("policy.alerts_baselined");
    return;
  }
  ++alerts_written_;
  ++out.counters().at("policy.alerts");
  if (a.sev > max_sev_) max_sev_ = a.sev;
  auto& w = out.begin("alert", f.end.usec ? f.end : f.start, &f.ep);
  w.object("alert");
  w.field("rule", a.rule);
  w.field("severity", severity_name(a.sev));
  w.field("message", a.message);
  w.field("device", a.device);
  w.field("peer", a.peer);
  w.array("mds2");
  for (auto& c : a.mds2) {
    w.begin_object();
    w.field("id", c.id);
    w.field("answer", c.answer);
    auto opt = [&](std::string_view k, const std::string& v) { w.key(k); if (v.empty()) w.null(); else w.value(v); };
    opt("iec_tr_80001_2_2", c.iec);
    opt("nist_800_53", c.nist);
    opt("iso_27002", c.iso);
    w.end_object();
  }
  w.end_array();
  w.object("evidence");
  w.array("flow_ids");
  w.value(f.ep.flow_id);
  w.end_array();
  for (auto& [k, v] : a.evidence) w.field(k, v);
  if (!a.phi_fields.empty()) {
    w.array("phi_fields");
    for (auto& p : a.phi_fields) w.value(p);
    w.end_array();
  }
  w.end_object();
  w.end_object();
  out.end();
}

// One side (device) of a finished flow as eval_side's steps see it: the device, its peer, and the
// application and protection the flow carried.
struct PolicyJudge::Side {
  const FlowSummary& f;
  EventOutput& out;
  const Device& dev;
  bool dev_is_client;      // the device opened the flow: outbound
  const Device* peer_dev;  // the peer, when it is a device of the site
  uint64_t peer_roles;     // role bits of the peer's address
  const IpAddr& peer_ip;
  bool peer_internal;
  uint16_t port;           // the server's
  std::string_view app;
  bool enc;

  // An alert on this side, with the evidence every side alert carries.
  Alert alert(std::string_view rule, Severity sev) const;
  // Whether a list of application names holds the flow's: medmon's name for it, or the name nDPI
  // read from the content (mdns, dhcpv6, llmnr, which medmon counts as dns and dhcp).
  bool app_in(const std::vector<std::string>& apps) const;
  std::string peer_name() const { return peer_dev ? peer_dev->name : ip_str(peer_ip); }
};

PolicyJudge::Alert PolicyJudge::Side::alert(std::string_view rule, Severity sev) const {
  Alert a;
  a.rule = rule;
  a.sev = sev;
  a.device = dev.name;
  a.peer = peer_name();
  a.evidence.emplace_back("app", std::string(app.empty() ? "unknown" : app));
  if (!f.ndpi_protocol.empty()) a.evidence.emplace_back("ndpi_protocol", f.ndpi_protocol);
  a.evidence.emplace_back("direction", dev_is_client ? "outbound" : "inbound");
  if (port) a.evidence.emplace_back("server_port", std::to_string(port));
  a.evidence.emplace_back("model", dev.model_id);
  a.distinct = app;  // SSH and SMB to the same peer are two findings
  return a;
}

bool PolicyJudge::Side::app_in(const std::vector<std::string>& apps) const {
  if (contains_app(apps, app)) return true;
  // MS-SQL is of the SQL family: `sql` names it with the other databases.
  if (app == "mssql" && contains(apps, "sql")) return true;
  // DHCPv6 that medmon's dhcp dissector read (nDPI then never names it) is what nDPI calls DHCPV6.
  if (app == "dhcp" && f.facts && contains_app(apps, "dhcpv6"))
    if (const std::string* v = f.facts->attr("dhcp.version"); v && *v == "6") return true;
  // `proprietary`: any protocol a loaded signature recognised (the flow's app is its name).
  if (f.facts && !f.facts->app.empty() && contains(apps, "proprietary") && signature_app(f.facts->app)) return true;
  if ((f.facts && !f.facts->app.empty()) || f.ndpi_guessed) return false;  // not nDPI's reading
  for (std::string_view n : {std::string_view(f.ndpi_protocol), std::string_view(f.ndpi_app)})
    if (!n.empty() && !ieq(n, "Unknown") && contains_app(apps, n)) return true;
  return false;
}

// Judges one side of a flow against the device's model: the declared flow it matches or why it
// has none, then PHI in clear and the HL7 and DICOM content the model declares.
PolicyJudge::SideResult PolicyJudge::eval_side(const FlowSummary& f, const Device& dev, bool dev_is_client,
                                               const Device* peer_dev, uint64_t peer_roles, std::string_view app,
                                               bool enc, EventOutput& out) {
  if (!dev.model) return SideResult();  // nothing declared to judge against
  const IpAddr& peer_ip = dev_is_client ? f.ep.dst : f.ep.src;
  const Side s{.f = f, .out = out, .dev = dev, .dev_is_client = dev_is_client, .peer_dev = peer_dev,
               .peer_roles = peer_roles, .peer_ip = peer_ip, .peer_internal = internal(peer_ip),
               .port = has_ports(f.ep.proto) ? f.ep.dst_port : uint16_t(0), .app = app, .enc = enc};
  const FlowRule* port_only = nullptr;
  const FlowRule* match = find_declared_flow(s, port_only);
  SideResult res = match ? judge_declared_flow(s, *match) : judge_undeclared_flow(s, port_only);
  if (match && res.level == 0) res.peer_role = match->role_index;
  check_phi_cleartext(s, match);
  check_hl7_against_model(s);
  check_dicom_against_model(s);
  check_remote_endpoint(s);
  check_tls(s);
  check_fingerprints(s);
  check_authentication(s);
  return res;
}

// 1. Declared flows: the first flow rule of the model that matches direction, transport, peer role,
// port and application, or null.
const FlowRule* PolicyJudge::find_declared_flow(const Side& s, const FlowRule*& port_only) const {
  const bool payload = s.f.payload_bytes[0] + s.f.payload_bytes[1] > 0;
  const bool tls = over_tls(s.f, s.app);
  for (auto& r : s.dev.model->flows) {
    if (r.initiator == Initiator::device && !s.dev_is_client) continue;
    if (r.initiator == Initiator::peer && s.dev_is_client) continue;
    if (r.l4 && r.l4 != s.f.ep.proto) continue;
    if (r.peer_role == "any") {
    } else if (r.peer_role == "any_internal") {
      if (!s.peer_internal) continue;
    } else if (r.peer_role == "external") {
      if (s.peer_internal) continue;
    } else if (r.role_index < 0 || r.role_index >= 64 || !(s.peer_roles & (1ull << r.role_index))) {
      continue;
    }
    if (has_ports(s.f.ep.proto) && (!r.ports.empty() || (r.role_index >= 0 && !site_->roles[r.role_index].ports.empty()))) {
      bool ok = ports_contain(r.ports, s.port);
      // The site's real service port for the role (PACS on 11112 instead of 104).
      if (!ok && r.role_index >= 0 && s.dev_is_client) {
        auto& rp = site_->roles[r.role_index].ports;
        ok = std::find(rp.begin(), rp.end(), s.port) != rp.end();
      }
      if (!ok && !s.dev_is_client && r.role_index >= 0 && r.ports.empty()) ok = true;
      if (!ok) continue;
    }
    // A TLS flow matches only rules that do not forbid TLS, whatever the sensor saw behind it.
    if (r.tls == Tls::forbidden && tls) continue;
    // Content no dissector and no nDPI reading recognised matches a rule's application only when
    // there was no content to recognise (a handshake, a refused connection): random bytes on the
    // worklist port are not a worklist query.
    if (!r.apps.empty() && s.app.empty() && payload) {
      if (!port_only) port_only = &r;
      continue;
    }
    if (!r.apps.empty() && !s.app.empty()) {
      bool ok = s.app_in(r.apps);
      // DICOM or HL7 over TLS shows up as TLS: the rule's app is inside.
      if (!ok && s.app == "tls" && r.tls != Tls::forbidden) ok = true;
      if (!ok) continue;
    }
    return &r;
  }
  return nullptr;
}

bool PolicyJudge::inbound_peer(const Side& s) const {
  for (auto& r : s.dev.model->flows) {
    if (r.initiator == Initiator::device) continue;
    if (r.peer_role == "any") return true;
    if (r.peer_role == "any_internal" && s.peer_internal) return true;
    if (r.peer_role == "external" && !s.peer_internal) return true;
    if (r.role_index >= 0 && r.role_index < 64 && (s.peer_roles & (1ull << r.role_index))) return true;
  }
  return false;
}

// A declared flow is still wrong when the manufacturer ships it disabled (and the site has not
// enabled it) or when it is cleartext where the rule requires TLS.
PolicyJudge::SideResult PolicyJudge::judge_declared_flow(const Side& s, const FlowRule& match) {
  const Model* m = s.dev.model;
  SideResult res;
  res.rule = match.id;
  if (!match.default_enabled && !contains(s.dev.enable, match.id)) {
    res.level = 1;
    Alert a = s.alert("flow.disabled_by_default", Severity::low);
    a.message = "Flow matches '" + match.id +
                "', which the manufacturer ships disabled; the site has not enabled it for " + s.dev.name;
    a.evidence.emplace_back("matched_rule", match.id);
    cite_sources(a, m, match.source);
    emit(s.f, a, s.out);
  }
  if (match.tls == Tls::required && !s.enc && s.f.payload_bytes[0] + s.f.payload_bytes[1] > 0) {
    Alert a = s.alert("tls.required_cleartext", Severity::high);
    a.message = "Cleartext " + std::string(s.app.empty() ? "traffic" : s.app) + " on '" + match.id +
                "', which the model requires to use TLS";
    a.evidence.emplace_back("matched_rule", match.id);
    cite_sources(a, m, match.source);
    cite(a, m, "TXCF-5");
    emit(s.f, a, s.out);
  }
  return res;
}

// 2. Not declared: one alert for the first reason that holds, from what the model's answers forbid
// (the flow is then forbidden) down to plain undeclared. An admin protocol is always reported
// (lateral.admin_protocol) and is judged by the same answers: a forbidden_apps entry covering it
// makes that alert the forbidding one, else CONN-4, CONN-3, SAHD-8 and the zones still apply.
PolicyJudge::SideResult PolicyJudge::judge_undeclared_flow(const Side& s, const FlowRule* port_only) {
  const Model* m = s.dev.model;
  SideResult res;
  // Does an answer forbid it?
  Direction dir = s.dev_is_client ? Direction::outbound : Direction::inbound;
  const ForbiddenApp* fb = nullptr;
  if (!s.app.empty())
    for (auto& x : m->forbidden) {
      if (x.direction != Direction::any && x.direction != dir) continue;
      if (s.app_in(x.apps)) { fb = &x; break; }
    }
  // The peer's zone against the model's zones: one it never allows, or one outside its allowed list
  // (when it gives one). A peer in no zone is judged by neither.
  int peer_zone = zone_of(s.peer_ip, s.peer_dev);
  std::string_view zone_name;
  if (peer_zone >= 0)
    zone_name = static_cast<size_t>(peer_zone) < site_->zones.size() ? std::string_view(site_->zones[peer_zone].name)
                                                                     : std::string_view("external");
  bool zone_never = !zone_name.empty() && contains(m->zones_never, zone_name);
  if (!s.peer_internal && contains(m->zones_never, "external")) zone_never = true;
  bool zone_unlisted = !zone_never && !zone_name.empty() && !m->zones_allowed.empty() && !contains(m->zones_allowed, zone_name);
  res.level = 1;
  const bool admin = is_lateral(s.app);
  if (admin) {
    Alert a = s.alert("lateral.admin_protocol", Severity::high);
    a.message = std::string(s.app) + (s.dev_is_client ? " from " : " to ") + "medical device " + s.dev.name +
                (s.dev_is_client ? " to " : " from ") + s.peer_name() + ", not declared by the manufacturer";
    if (fb) {
      res.level = 2;
      a.message += "; contradicts MDS2";
      cite_sources(a, m, fb->source, &res.mds2);
    }
    res.rule = "lateral.admin_protocol";
    emit(s.f, a, s.out);
    if (fb) return res;
  }
  if (fb) {
    res.level = 2;
    res.rule = "flow.forbidden_app";
    Alert a = s.alert("flow.forbidden_app", Severity::high);
    a.message = std::string(s.app) + (s.dev_is_client ? " from " : " to ") + s.dev.name + " is forbidden by its model";
    cite_sources(a, m, fb->source, &res.mds2);
    emit(s.f, a, s.out);
  } else if (!s.peer_internal && m->sw_value("internal_only") == 1) {
    res.level = 2;
    res.rule = "flow.external_forbidden";
    Alert a = s.alert("flow.external_forbidden", Severity::high);
    a.message = s.dev.name + " talks to " + s.peer_name() +
                " outside the site, but the manufacturer declares it never communicates outside the customer "
                "environment";
    cite(a, m, "CONN-4");
    res.mds2.push_back("CONN-4");
    if (m->sw_value("internet_required") == 0) { cite(a, m, "CONN-6"); res.mds2.push_back("CONN-6"); }
    emit(s.f, a, s.out);
  } else if (s.peer_internal && m->sw_value("communicates_internal") == 0 && !is_infrastructure(s.app)) {
    res.level = 2;
    res.rule = "flow.internal_forbidden";
    Alert a = s.alert("flow.internal_forbidden", Severity::high);
    a.message = s.dev.name + " talks to " + s.peer_name() +
                ", but the manufacturer declares it does not communicate with other systems";
    cite(a, m, "CONN-3");
    res.mds2.push_back("CONN-3");
    emit(s.f, a, s.out);
  } else if (!s.dev_is_client && s.f.server_answered && s.f.syn_seen && m->sw_value("unused_ports_disabled") == 1 &&
             s.f.ep.proto == 6 && !listens_on(*m, s.port)) {
    res.level = 2;
    res.rule = "flow.unlisted_listening_port";
    Alert a = s.alert("flow.unlisted_listening_port", Severity::high);
    a.message = s.dev.name + " accepted a connection on port " + std::to_string(s.port) +
                ", which is not in its declared flows although unused ports are declared disabled";
    cite(a, m, "SAHD-8");
    res.mds2.push_back("SAHD-8");
    emit(s.f, a, s.out);
  } else if (zone_never || zone_unlisted) {
    res.level = 2;
    res.rule = "lateral.zone_forbidden";
    Alert a = s.alert("lateral.zone_forbidden", Severity::high);
    a.message = s.dev.name + " talks to " + s.peer_name() + " in zone " + std::string(zone_name.empty() ? "external" : zone_name) +
                (zone_never ? ", which its model never allows" : ", which is not among its model's allowed zones");
    a.evidence.emplace_back("peer_zone", std::string(zone_name.empty() ? "external" : zone_name));
    emit(s.f, a, s.out);
  } else if (!s.dev_is_client && s.f.ep.proto == 6 && s.f.syn_seen && s.f.server_answered &&
             m->sw_value("network_acl") == 1 && !inbound_peer(s)) {
    // NAUT-2 = Yes: the device filters who may connect (a firewall, an allow-list). A peer no
    // inbound flow declares should have had no answer to its SYN; the device accepted it.
    res.rule = "flow.peer_not_filtered";
    Alert a = s.alert("flow.peer_not_filtered", Severity::medium);
    a.message = s.dev.name + " accepted a connection from " + s.peer_name() + " on port " + std::to_string(s.port) +
                ", which no declared inbound flow names, although it declares network access control";
    cite(a, m, "NAUT-2");
    res.mds2.push_back("NAUT-2");
    emit(s.f, a, s.out);
  } else if (!admin) {
    res.rule = "flow.undeclared";
    Alert a = s.alert("flow.undeclared", Severity::medium);
    a.message = std::string(s.dev_is_client ? "Outbound " : "Inbound ") +
                (s.app.empty() ? "traffic" : std::string(s.app)) + (s.dev_is_client ? " from " : " to ") + s.dev.name +
                (s.dev_is_client ? " to " : " from ") + s.peer_name() + (s.port ? " on port " + std::to_string(s.port) : "") +
                " matches no declared flow of model " + s.dev.model_id;
    if (port_only) {
      std::string apps;
      for (auto& x : port_only->apps) apps += (apps.empty() ? "" : ", ") + x;
      a.message += " (it has the port and peer of '" + port_only->id + "', but its content was recognised as no " +
                   "application, not as " + apps + ")";
      a.evidence.emplace_back("port_rule", port_only->id);
    }
    if (m->sw_value("port_list_provided") == 1) cite(a, m, "CONN-2");
    if (m->sw_value("phi_fixed_destinations") == 1 && s.f.facts && !s.f.facts->phi_fields.empty()) cite(a, m, "TXCF-3");
    emit(s.f, a, s.out);
  }
  return res;
}

// 3. PHI sent in clear: low on a declared flow that carries PHI, high where the model's answers say
// otherwise or the flow is undeclared, critical to an external address.
void PolicyJudge::check_phi_cleartext(const Side& s, const FlowRule* match) {
  if (!s.f.facts || s.f.facts->phi_fields.empty() || s.enc) return;
  const Model* m = s.dev.model;
  Severity sev = Severity::high;
  std::string why;
  if (match && match->phi == 1) sev = Severity::low;
  Alert a = s.alert("phi.cleartext", sev);
  a.phi_fields = s.f.facts->phi_fields;
  bool contradicts = false;
  if (m->sw_value("phi_encrypted_claim") == 1) { cite(a, m, "TXCF-2"); contradicts = true; }
  if (m->sw_value("phi_any") == 0) { cite(a, m, "MPII-1"); contradicts = true; }
  if (m->sw_value("phi_wired") == 0) { cite(a, m, "MPII-3.5"); contradicts = true; }
  if (m->sw_value("phi_point_to_point_only") == 1) { cite(a, m, "TXCF-1"); contradicts = true; }
  if (contradicts) a.sev = Severity::high;
  if (!match) { a.sev = std::max(a.sev, Severity::high); why = " on an undeclared flow"; }
  if (!s.peer_internal) {
    a.sev = Severity::critical;
    cite(a, m, "MPII-3.7");
    why += " to an external address";
  }
  size_t n = s.f.facts->phi_fields.size();
  a.message = "PHI (" + std::to_string(n) + " field" + (n == 1 ? "" : "s") + ") sent in clear between " + s.dev.name +
              " and " + s.peer_name() + why + (contradicts ? "; contradicts MDS2" : "");
  if (match) a.evidence.emplace_back("matched_rule", match->id);
  emit(s.f, a, s.out);
}

// 4. HL7 against the model (the device as receiver or sender): a sender bound to a declared peer
// role, with the role's sending application, and only the declared message types.
void PolicyJudge::check_hl7_against_model(const Side& s) {
  const Model* m = s.dev.model;
  if (!m->hl7.present || s.app != "hl7") return;
  const std::string* types = attr(s.f, "hl7.message_types");
  const std::string* msh3 = attr(s.f, "hl7.msh3");
  if (!s.dev_is_client) {
    // The sender must hold one of the declared peer roles, and use the role's MSH-3 when it has one.
    bool bound = m->hl7.peer_roles.empty();
    std::vector<std::string> apps;
    for (auto& ro : m->hl7.peer_roles) {
      if (ro == "any" || (ro == "any_internal" && s.peer_internal) || (ro == "external" && !s.peer_internal)) {
        bound = true;
        continue;
      }
      int ri = site_->role_index(ro);
      if (ri >= 0 && ri < 64 && (s.peer_roles & (1ull << ri))) {
        bound = true;
        apps.insert(apps.end(), site_->roles[ri].hl7_apps.begin(), site_->roles[ri].hl7_apps.end());
      }
    }
    if (s.peer_dev) apps.insert(apps.end(), s.peer_dev->hl7_apps.begin(), s.peer_dev->hl7_apps.end());
    bool app_ok = apps.empty() || !msh3 || contains(apps, *msh3);
    if (!bound || !app_ok) {
      Alert a = s.alert("hl7.sender_unbound", Severity::high);
      a.message = "HL7 to " + s.dev.name + " from " + s.peer_name() +
                  (bound ? ", whose sending application is not the one bound to its role"
                         : ", which is not bound to a declared HL7 peer role");
      if (msh3) a.evidence.emplace_back("msh3", *msh3);
      cite(a, m, "MPII-3.10");
      emit(s.f, a, s.out);
    }
  }
  if (types) {
    const auto& allowed = s.dev_is_client ? m->hl7.outbound_types : m->hl7.inbound_types;
    std::string bad;
    each_item(*types, [&](std::string_view t) {
      if (!hl7_type_allowed(allowed, t)) { if (!bad.empty()) bad += ","; bad += t; }
    });
    if (!bad.empty()) {
      Alert a = s.alert("hl7.message_type_undeclared", Severity::medium);
      a.message = "HL7 " + bad + (s.dev_is_client ? " sent by " : " received by ") + s.dev.name +
                  " is not among the declared message types";
      a.evidence.emplace_back("message_types", bad);
      emit(s.f, a, s.out);
    }
  }
}

// 5. DICOM against the model: only the declared DIMSE commands and SOP classes, and C-MOVE only to
// declared destinations (the device would send images there).
void PolicyJudge::check_dicom_against_model(const Side& s) {
  const Model* m = s.dev.model;
  if (!m->dicom.present || s.app != "dicom") return;
  auto& dm = m->dicom;
  // Commands: those of the side's dimse list, and C-GET served as c_get.allowed says (given alone,
  // it is the only command checked).
  const bool get_rule = !s.dev_is_client && dm.c_get_allowed >= 0;
  if (const std::string* cmds = attr(s.f, "dicom.commands"); cmds && (dm.dimse_checked || get_rule)) {
    const auto& allowed = s.dev_is_client ? dm.dimse_out : dm.dimse_in;
    std::string bad;
    bool get_refused = false;
    each_item(*cmds, [&](std::string_view c) {
      bool ok;
      if (get_rule && c == "C-GET") {
        ok = dm.c_get_allowed == 1;
        get_refused = !ok;
      } else {
        ok = !dm.dimse_checked || contains(allowed, c);
      }
      if (!ok) { if (!bad.empty()) bad += ","; bad += c; }
    });
    if (!bad.empty()) {
      Alert a = s.alert("dicom.dimse_undeclared", Severity::medium);
      a.message = "DICOM " + bad + (s.dev_is_client ? " issued by " : " served by ") + s.dev.name + ", not declared (" +
                  (dm.dimse_checked ? (s.dev_is_client ? "dimse_out" : "dimse_in") : "") +
                  (get_refused ? (dm.dimse_checked ? "; c_get allowed: false" : "c_get allowed: false") : "") + ")";
      a.evidence.emplace_back("commands", bad);
      emit(s.f, a, s.out);
    }
  }
  // User identity: the type the association's requestor presented (none without the item) must be
  // one the model lists; either side judges it, as sender or acceptor. Only where the request was
  // seen (a capture that starts mid-association shows no identity).
  if (!dm.user_identity.empty() && attr(s.f, "dicom.calling_ae")) {
    const std::string* uit = attr(s.f, "dicom.user_identity");
    std::string seen = uit ? *uit : "none";
    int code = user_identity_code(seen);
    bool ok = false;
    for (auto& t : dm.user_identity) if (code >= 0 && user_identity_code(t) == code) { ok = true; break; }
    if (!ok) {
      Alert a = s.alert("dicom.user_identity_undeclared", Severity::medium);
      a.message = "DICOM association " + std::string(s.dev_is_client ? "from " : "to ") + s.dev.name +
                  " with user identity " + seen + ", which its model does not declare";
      a.evidence.emplace_back("user_identity", seen);
      if (auto* c = attr(s.f, "dicom.calling_ae")) a.evidence.emplace_back("calling_ae", *c);
      cite_sources(a, m, dm.source);
      emit(s.f, a, s.out);
    }
  }
  if (const std::string* sops = attr(s.f, "dicom.sop_classes"); sops && !dm.sop_classes.empty()) {
    std::string bad;
    each_item(*sops, [&](std::string_view c) {
      if (!contains(dm.sop_classes, c)) { if (!bad.empty()) bad += ","; bad += c; }
    });
    if (!bad.empty()) {
      Alert a = s.alert("dicom.sop_class_undeclared", Severity::medium);
      a.message = "DICOM SOP class(es) " + bad + " used with " + s.dev.name + " are not declared by its model";
      a.evidence.emplace_back("sop_classes", bad);
      emit(s.f, a, s.out);
    }
  }
  if (const std::string* dest = attr(s.f, "dicom.move_destination"); dest && !s.dev_is_client) {
    // The device is the C-MOVE SCP: it would send images to `dest`.
    std::string bad;
    each_item(*dest, [&](std::string_view d) {
      bool ok = false;
      if (dm.c_move_allowed) {
        for (auto& x : dm.move_destinations) {
          if (x == d) { ok = true; break; }
          if (x.rfind("role:", 0) == 0) {
            int ri = site_->role_index(std::string_view(x).substr(5));
            if (ri >= 0 && contains(site_->roles[ri].ae_titles, d)) { ok = true; break; }
            if (ri >= 0)
              for (auto& dv : site_->devices)
                if (contains(dv.roles, site_->roles[ri].name) && contains(dv.ae_titles, d)) { ok = true; break; }
            if (ok) break;
          }
        }
      }
      if (!ok) { if (!bad.empty()) bad += "\\"; bad += d; }
    }, '\\');
    if (!bad.empty()) {
      // The addresses the SCP sent those destinations' objects to, when its follow-up was judged.
      std::string sent_to;
      each_item(bad, [&](std::string_view d) {
        for (auto& mm : move_matches_) {
          if (mm.ae != d || mm.move_flow != s.f.ep.flow_id) continue;
          std::string ip = ip_str(mm.receiver);
          bool listed = false;
          each_item(sent_to, [&](std::string_view x) { listed = listed || x == ip; });
          if (!listed) sent_to += (sent_to.empty() ? "" : ",") + ip;
        }
      }, '\\');
      Alert a = s.alert("dicom.move_destination_undeclared", Severity::high);
      a.message =
          "C-MOVE asks " + s.dev.name + " to send images to AE " + bad + ", which is not a declared destination" +
          (sent_to.empty() ? "" : "; it sent them to " + sent_to);
      a.evidence.emplace_back("move_destination", bad);
      if (!sent_to.empty()) a.evidence.emplace_back("move_destination_ip", sent_to);
      if (auto* c = attr(s.f, "dicom.calling_ae")) a.evidence.emplace_back("calling_ae", *c);
      cite(a, m, "TXCF-3");
      emit(s.f, a, s.out);
    }
  }
}

// 6. Servers outside the site: a model that lists its remote-service endpoints names every server
// the device reaches outside the site; a flow it opens there naming another server (TLS SNI, HTTP
// Host) is reported, declared or not.
void PolicyJudge::check_remote_endpoint(const Side& s) {
  const Model* m = s.dev.model;
  if (m->remote_endpoints.empty() || !s.dev_is_client || s.peer_internal || s.f.sni.empty() || is_infrastructure(s.app))
    return;
  for (auto& e : m->remote_endpoints) if (endpoint_matches(e, s.f.sni)) return;
  std::string declared;
  for (auto& e : m->remote_endpoints) declared += (declared.empty() ? "" : ", ") + e;
  Alert a = s.alert("flow.remote_endpoint_undeclared", Severity::high);
  a.message = s.dev.name + " reaches server " + s.f.sni + " at " + s.peer_name() +
              " outside the site; its model declares only " + declared;
  a.evidence.emplace_back("server_name", s.f.sni);
  cite(a, m, "RMOT-1");
  emit(s.f, a, s.out);
}

// 7. TLS handshakes (what nDPI read of them): TLS from a device whose MDS2 says it has none
// (CONN-7 = No), and a session that settled on a version RFC 8996 retired (SSL 3.0, TLS 1.0 and
// 1.1, DTLS 1.0), whichever side offered it.
void PolicyJudge::check_tls(const Side& s) {
  if (!s.f.tls_seen()) return;
  const Model* m = s.dev.model;
  const std::string& version = s.f.tls_version_name;
  const std::string with = " with " + s.peer_name() + (version.empty() ? "" : " (" + version + ")");
  // A ClientHello is the client's doing; the server speaks TLS only when it answers one.
  const bool spoke = s.dev_is_client || !s.f.tls_ja3s.empty();
  if (m->sw_value("tls_supported") == 0 && spoke) {
    Alert a = s.alert("tls.unexpected", Severity::low);
    a.message = s.dev.name + " speaks TLS" + with + "; its MDS2 says it does not support TLS";
    if (!version.empty()) a.evidence.emplace_back("tls_version", version);
    cite(a, m, "CONN-7");
    emit(s.f, a, s.out);
  }
  const uint16_t v = s.f.tls_version;
  if ((v >= 0x0300 && v <= 0x0302) || v == 0xFEFF) {
    Alert a = s.alert("tls.obsolete_version", Severity::medium);
    a.message = s.dev.name + " settled on " + version + with + ", a version retired by RFC 8996";
    a.evidence.emplace_back("tls_version", version);
    if (m->sw_value("tls_supported") == 1) cite(a, m, "CONN-7");
    if (m->sw_value("secure_transmission") == 1) cite(a, m, "TXCF-5");
    emit(s.f, a, s.out);
  }
}

// 8. Software the vendor did not document: a model that lists its DICOM implementation (the
// conformance statement's Implementation Class UID and Version Name) or its TLS fingerprints
// (JA3 as client, JA3S as server) names all the device may show; anything else is a software
// change or another implementation on the device's address. Each value is reported once.
void PolicyJudge::check_fingerprints(const Side& s) {
  const Model* m = s.dev.model;
  auto report = [&](std::string_view rule, std::string_view what, std::string_view evidence, const std::string& seen,
                    const std::vector<std::string>& listed) {
    if (listed.empty() || seen.empty() || contains(listed, seen)) return;
    std::string declared;
    for (auto& v : listed) declared += (declared.empty() ? "" : ", ") + v;
    Alert a = s.alert(rule, Severity::medium);
    a.message = s.dev.name + " shows " + std::string(what) + " " + seen + " (" + (s.dev_is_client ? "to " : "from ") +
                s.peer_name() + "); its model " + s.dev.model_id + " lists " + declared;
    a.evidence.emplace_back(evidence, seen);  // evidence names are literals
    a.distinct = seen;  // each value is its own finding
    emit(s.f, a, s.out);
  };
  const bool client = s.dev_is_client;
  if (const std::string* v = attr(s.f, client ? "dicom.impl_class_uid" : "dicom.acceptor_impl_class_uid"))
    report("dicom.implementation_undeclared", "DICOM implementation class UID", "impl_class_uid", *v, m->impl_class_uids);
  if (const std::string* v = attr(s.f, client ? "dicom.impl_version_name" : "dicom.acceptor_impl_version_name"))
    report("dicom.implementation_undeclared", "DICOM implementation version", "impl_version_name", *v, m->impl_version_names);
  report("tls.fingerprint_undeclared", client ? "TLS client fingerprint (JA3)" : "TLS server fingerprint (JA3S)",
         client ? "ja3" : "ja3s", client ? s.f.tls_ja3 : s.f.tls_ja3s, client ? m->tls_ja3 : m->tls_ja3s);
}

// 9. Connections limited to authenticated systems (TXCF-4 = Yes): a DICOM association the device
// took part in that reached A-ASSOCIATE-AC with neither side authenticated. An AE title is no
// authentication; TLS (whose certificates authenticate the server, and the client when mutual) is,
// and as acceptor a credential in the request's user identity (a passcode, Kerberos ticket, SAML
// assertion or JWT; a user name alone is not). Only where the request and the answer were seen.
void PolicyJudge::check_authentication(const Side& s) {
  const Model* m = s.dev.model;
  if (s.app != "dicom" || s.enc || m->sw_value("authenticated_connections_only") != 1) return;
  const std::string* result = attr(s.f, "dicom.result");
  if (!result || *result != "accepted" || !attr(s.f, "dicom.calling_ae")) return;
  const std::string* uit = attr(s.f, "dicom.user_identity");
  const std::string seen = uit ? *uit : "none";
  const int code = user_identity_code(seen);
  // The requestor proved who it is; a later user identity item may carry the credential that
  // the first one (the type reported) did not.
  const std::string* cred = attr(s.f, "dicom.credential_in_clear");
  if (!s.dev_is_client && (code >= 2 || (cred && *cred == "true"))) return;
  Alert a = s.alert("dicom.unauthenticated_association", Severity::medium);
  a.message = s.dev.name + (s.dev_is_client ? " opened" : " accepted") + " a DICOM association " +
              (s.dev_is_client ? "to " : "from ") + s.peer_name() +
              (s.dev_is_client ? " in clear (no TLS: the acceptor is not authenticated)"
                               : " in clear with user identity " + seen + " (the requestor is not authenticated)") +
              "; its MDS2 says connections are limited to authenticated systems";
  a.evidence.emplace_back("user_identity", seen);
  if (auto* c = attr(s.f, "dicom.calling_ae")) a.evidence.emplace_back("calling_ae", *c);
  if (auto* c = attr(s.f, "dicom.called_ae")) a.evidence.emplace_back("called_ae", *c);
  cite(a, m, "TXCF-4");
  if (m->sw_value("node_authentication") == 1) cite(a, m, "NAUT-1");
  emit(s.f, a, s.out);
}

void PolicyJudge::eval_dicom_flow(const FlowSummary& f, const Device* cdev, const Device* sdev, EventOutput& out) {
  const std::string* calling = attr(f, "dicom.calling_ae");
  const Model* m = cdev ? cdev->model : (sdev ? sdev->model : nullptr);
  std::string dev_name = cdev ? cdev->name : (sdev ? sdev->name : ip_str(f.ep.dst));
  auto base = [&](std::string_view rule, Severity sev) {
    Alert a;
    a.rule = rule; a.sev = sev;
    a.device = dev_name;
    a.peer = ip_str(f.ep.src);
    if (calling) a.evidence.emplace_back("calling_ae", *calling);
    if (auto* c = attr(f, "dicom.called_ae")) a.evidence.emplace_back("called_ae", *c);
    a.evidence.emplace_back("client_ip", ip_str(f.ep.src));
    return a;
  };
  if (calling && !calling->empty()) {
    auto it = ae_bindings_.find(*calling);
    if (it != ae_bindings_.end()) {
      bool ok = cdev && contains(cdev->ae_titles, *calling);  // the device the AE belongs to, however bound
      for (auto& c : it->second) if (c.contains(f.ep.src)) { ok = true; break; }
      if (!ok) {
        Alert a = base("dicom.ae_spoofing", Severity::high);
        a.peer = *calling + "@" + ip_str(f.ep.src);
        a.message = "Calling AE " + *calling + " is bound to another address but was used from " + ip_str(f.ep.src);
        cite(a, m, "NAUT-1");
        cite(a, m, "TXCF-4");
        emit(f, a, out);
      }
    } else if (const Device* fp_dev = fingerprint_owner(*calling)) {
      // The AE title is the fingerprint of a device already bound to another address.
      const IpAddr& at = fp_address_.at(static_cast<uint32_t>(fp_dev - site_->devices.data()));
      if (fp_dev != cdev && !(at == f.ep.src)) {
        Alert a = base("dicom.ae_spoofing", Severity::high);
        a.peer = *calling + "@" + ip_str(f.ep.src);
        a.message = "Calling AE " + *calling + " identifies " + fp_dev->name + ", bound by its fingerprint to " +
                    ip_str(at) + ", but was used from " + ip_str(f.ep.src);
        a.evidence.emplace_back("fingerprint_device", fp_dev->name);
        a.evidence.emplace_back("bound_ip", ip_str(at));
        cite(a, m, "NAUT-1");
        cite(a, m, "TXCF-4");
        emit(f, a, out);
      }
    } else {
      auto& seen = ae_seen_[*calling];
      bool known = false;
      for (auto& ip : seen) if (ip == f.ep.src) { known = true; break; }
      if (!known) {
        if (!seen.empty()) {
          Alert a = base("dicom.ae_new_ip", Severity::medium);
          a.peer = *calling + "@" + ip_str(f.ep.src);
          a.message = "Calling AE " + *calling + " seen from a new address " + ip_str(f.ep.src) + " (first seen from " + ip_str(seen.front()) + ")";
          cite(a, m, "NAUT-1");
          emit(f, a, out);
        }
        if (seen.size() < 16) seen.push_back(f.ep.src);
        if (ae_seen_.size() > kMaxAeTracked) { ae_seen_.clear(); ++ae_reset_; }  // bounded: start over rather than grow
      }
    }
  }
  // Association rejects in a burst from one source: AE title guessing.
  const std::string* result = attr(f, "dicom.result");
  if (result && (*result == "rejected" || *result == "reject")) {
    if (rejects_.size() > kMaxRejectSources) { rejects_.clear(); ++reject_reset_; }
    if (reject_alerted_.size() > kMaxRejectSources) { reject_alerted_.clear(); ++reject_reset_; }
    auto& q = rejects_[IpKey(f.ep.src)];
    int64_t t = f.start.usec;
    q.push_back(t);
    int64_t window = static_cast<int64_t>(site_->thresholds.reject_window_s) * 1000000;
    while (!q.empty() && q.front() < t - window) q.pop_front();
    while (q.size() > site_->thresholds.reject_burst) q.pop_front();
    if (q.size() >= site_->thresholds.reject_burst) {
      auto& last = reject_alerted_[IpKey(f.ep.src)];
      if (last == 0 || t - last > window) {
        last = t ? t : 1;
        Alert a = base("dicom.reject_burst", Severity::high);
        a.distinct = std::to_string(last);  // each window's burst is its own finding
        a.message = std::to_string(q.size()) + " DICOM associations from " + ip_str(f.ep.src) + " rejected within " +
                    std::to_string(site_->thresholds.reject_window_s) + " s: AE title guessing";
        if (auto* r = attr(f, "dicom.reject_reason")) a.evidence.emplace_back("reject_reason", *r);
        cite(a, m, "NAUT-1");
        emit(f, a, out);
      }
    }
  }
  // User identity with a credential (a passcode, a Kerberos ticket, a SAML assertion or a JWT) on
  // a cleartext association.
  std::string_view app = app_of(f);
  const std::string* pw = attr(f, "dicom.password_in_clear");  // a passcode in the request's user identity
  const std::string* cred = attr(f, "dicom.credential_in_clear");
  const bool password = pw && *pw == "true";
  if ((password || (cred && *cred == "true")) && !encrypted(f, app)) {
    Alert a = base("dicom.cleartext_password", Severity::high);
    a.message = std::string("DICOM user identity with a ") + (password ? "password" : "ticket, assertion or token") +
                " sent in clear by " + ip_str(f.ep.src);
    cite(a, m, "TXCF-2");
    emit(f, a, out);
  }
}

bool PolicyJudge::ae_bound_at(std::string_view ae, const IpAddr& ip, const Device* dev) const {
  if (auto it = ae_bindings_.find(std::string(ae)); it != ae_bindings_.end())
    for (auto& c : it->second) if (c.contains(ip)) return true;
  // A device bound by MAC or fingerprint holds its AE titles wherever it is.
  static const std::array<uint8_t, 6> no_mac{};
  const Device* d = dev ? dev : judged_device(ip, no_mac);
  return d && contains(d->ae_titles, ae);
}

void PolicyJudge::correlate_move(const FlowSummary& f, const Device* cdev, const Device* sdev) {
  move_matches_.clear();
  auto& moves = cross_->moves_waiting;
  auto& followups = cross_->followups_waiting;
  const int64_t start = f.start.usec, end = f.end.usec ? f.end.usec : f.start.usec;
  // Those whose partner would have been judged by now are dropped (flows end out of order a little).
  for (auto* q : {&moves, &followups})
    while (!q->empty() && q->front().end < end - kMoveKeepUsec) q->pop_front();
  auto wait = [&](std::deque<MoveSide>& q, MoveSide side) {
    if (q.size() >= kMaxMoveSides) { q.pop_front(); ++moves_full_; }  // bounded: the oldest goes
    q.push_back(std::move(side));
  };
  const std::string* calling = attr(f, "dicom.calling_ae");
  // A C-MOVE served by a device: its follow-ups judged so far, else it waits for them.
  if (const std::string* dest = attr(f, "dicom.move_destination"); dest && sdev) {
    each_item(*dest, [&](std::string_view d) {
      bool paired = false;
      for (auto it = followups.begin(); it != followups.end();) {
        if (it->scp == f.ep.dst && it->ae == d && it->start >= start && it->start <= end) {
          move_matches_.push_back({std::string(d), calling ? *calling : std::string(), std::string(f.ep.flow_id),
                                   it->flow_id, f.ep.dst, it->other, f.ep.src, sdev, it->receiver_dev});
          paired = true;
          it = followups.erase(it);
        } else {
          ++it;
        }
      }
      if (!paired)
        wait(moves, {f.ep.dst, std::string(d), f.ep.src, start, end, std::string(f.ep.flow_id),
                     calling ? *calling : std::string(), sdev, nullptr});
    }, '\\');
  }
  // An association a device opened to store objects: the follow-up of a C-MOVE it serves, judged
  // already (it stays waiting: one C-MOVE may open several), else it waits for it.
  const std::string* called = attr(f, "dicom.called_ae");
  const std::string* cmds = attr(f, "dicom.commands");
  if (!cdev || !called || called->empty() || !cmds) return;
  bool stores = false;
  each_item(*cmds, [&](std::string_view c) { stores = stores || c == "C-STORE"; });
  if (!stores) return;
  const Device* receiver = judged_device(f.ep.dst, f.server_mac);
  for (auto& m : moves)
    if (m.scp == f.ep.src && m.ae == *called && start >= m.start && start <= m.end) {
      move_matches_.push_back({m.ae, m.calling_ae, m.flow_id, std::string(f.ep.flow_id), f.ep.src, f.ep.dst, m.other,
                               cdev, receiver});
      return;
    }
  wait(followups, {f.ep.src, *called, f.ep.dst, start, end, std::string(f.ep.flow_id), {}, cdev, receiver});
}

void PolicyJudge::check_move_followups(const FlowSummary& f, EventOutput& out) {
  for (auto& mm : move_matches_) {
    if (ae_bound_at(mm.ae, mm.receiver, mm.receiver_dev)) continue;
    const Device* scp = mm.scp_dev;
    if (!scp) continue;
    std::string receiver = ip_str(mm.receiver);
    Alert a;
    a.rule = "dicom.move_address_undeclared";
    a.sev = Severity::high;
    a.device = scp->name;
    a.peer = mm.ae + "@" + receiver;
    auto bound = ae_bindings_.find(mm.ae);
    a.message = "C-MOVE from " + ip_str(mm.requestor) + " made " + scp->name + " send objects for AE " + mm.ae + " to " +
                receiver + (bound == ae_bindings_.end() ? ", an AE title the site binds to no address"
                                                        : ", which is not an address the site binds to that AE title");
    a.evidence.emplace_back("move_destination", mm.ae);
    a.evidence.emplace_back("move_destination_ip", receiver);
    a.evidence.emplace_back("requestor_ip", ip_str(mm.requestor));
    if (!mm.calling_ae.empty()) a.evidence.emplace_back("calling_ae", mm.calling_ae);
    a.evidence.emplace_back("move_flow_id", mm.move_flow);
    a.evidence.emplace_back("followup_flow_id", mm.followup_flow);
    if (scp->model) a.evidence.emplace_back("model", scp->model_id);
    cite(a, scp->model, "TXCF-3");
    emit(f, a, out);
  }
  move_matches_.clear();
}

template <class Services, class Reached>
void PolicyJudge::drop_stale_hosts(Services& services, Reached reached, int64_t t, size_t& held) const {
  const int64_t window = static_cast<int64_t>(site_->thresholds.scan_window_s) * 1000000;
  const int64_t realert = static_cast<int64_t>(site_->thresholds.scan_realert_s) * 1000000;
  for (auto& [key, v] : services)
    held -= std::erase_if(reached(v).hosts, [&](const auto& h) { return h.second < t - window; });
  std::erase_if(services, [&](const auto& s) {
    const HostsReached& hr = reached(s.second);
    return hr.hosts.empty() && (hr.alerted < 0 || t - hr.alerted >= realert);
  });
}

// Fan-out and port scans, counted within a sliding window (thresholds.scan_window_s) as scan
// detectors do: a host or port not seen for a window no longer counts, so a device that meets one
// new host a day never adds up to a sweep. A fan-out is one service (transport and server port,
// as Zeek's address scan counts hosts per port) reached on many hosts: a device that meets its
// PACS, RIS, NTP and DNS servers is no sweep, one that opens 445 on every host of its subnet is.
// Each burst past a threshold starts the count afresh; one within scan_realert_s of the alert
// written for the same (device and service, or device and host) is a repeat, a later one a new
// finding.
void PolicyJudge::track_fanout(const FlowSummary& f, const Device& dev, EventOutput& out) {
  auto& st = dev_state_[static_cast<size_t>(&dev - site_->devices.data())];
  auto& th = site_->thresholds;
  const int64_t t = f.start.usec;
  IpKey peer(f.ep.dst);
  auto base = [&](std::string_view rule) {
    Alert a;
    a.rule = rule; a.sev = Severity::high; a.device = dev.name;
    a.evidence.emplace_back("model", dev.model_id);
    a.distinct = std::to_string(t);  // each burst is its own finding
    return a;
  };
  // A ping sweep is a fan-out of hosts (ICMP is one service: what the sensor carries in place of
  // its ports is the echo identifier, new for every ping), and repeated pings are no port scan.
  const bool with_ports = has_ports(f.ep.proto);
  const uint32_t service = static_cast<uint32_t>(f.ep.proto) << 16 | (with_ports ? f.ep.dst_port : 0u);
  auto sv = st.services.find(service);
  const bool new_host = sv == st.services.end() || !sv->second.hosts.count(peer);
  // Full (a device that tries many ports of many hosts): drop what was reached no more within the
  // window (services not alerted within scan_realert_s go whole), at most once a second.
  const size_t cap = static_cast<size_t>(th.scan_ports) * 2 + 64;
  const size_t hosts_cap = static_cast<size_t>(th.fanout_hosts) * 2 + 4096;
  if (new_host && (st.hosts_held >= hosts_cap || (sv == st.services.end() && st.services.size() > cap)) &&
      t - st.services_swept >= 1000000) {
    st.services_swept = t;
    drop_stale_hosts(st.services, [](auto& hr) -> auto& { return hr; }, t, st.hosts_held);
    sv = st.services.find(service);
  }
  if (new_host && (st.hosts_held >= hosts_cap || (sv == st.services.end() && st.services.size() > cap))) {
    ++scan_peers_full_;  // bounded: this host is not counted
    sv = st.services.end();
  } else if (sv == st.services.end()) {
    sv = st.services.emplace(service, HostsReached{}).first;
  }
  if (sv != st.services.end()) {
    HostsReached& hr = sv->second;
    if (const size_t n = count_host(hr, peer, t, st.hosts_held)) {
      if (due(hr.alerted, t, out)) {
        Alert a = base("lateral.fan_out");
        a.peer = "*";
        std::string what = std::string(l4_name(f.ep.proto)) + (with_ports ? "/" + std::to_string(f.ep.dst_port) : "");
        a.message = dev.name + " contacted more than " + std::to_string(th.fanout_hosts) + " distinct hosts on " + what +
                    " within " + std::to_string(th.scan_window_s) + " s";
        a.evidence.emplace_back("distinct_hosts", std::to_string(n));
        a.evidence.emplace_back("proto", std::string(l4_name(f.ep.proto)));
        if (with_ports) a.evidence.emplace_back("server_port", std::to_string(f.ep.dst_port));
        a.distinct += "/" + std::to_string(service);  // two services swept at once are two findings
        cite(a, dev.model, "SAHD-8");
        emit(f, a, out);
      }
    }
  }
  if (!with_ports) return;
  PortsTried* tried = ports_tried(st.ports, peer, st.ports_swept, t, scan_peers_full_);
  if (!tried) return;
  Alert a = base("lateral.port_scan");
  a.peer = ip_str(f.ep.dst);
  a.message = dev.name + " tried {n} distinct ports on " + a.peer + " within " + std::to_string(th.scan_window_s) + " s";
  cite(a, dev.model, "SAHD-8");
  count_port(f, *tried, a, out);
}

PolicyJudge::PortsTried* PolicyJudge::ports_tried(std::unordered_map<IpKey, PortsTried, IpKeyHash>& by,
                                                  const IpKey& key, int64_t& swept, int64_t t, uint64_t& full) {
  auto it = by.find(key);
  if (it != by.end()) return &it->second;
  auto& th = site_->thresholds;
  const int64_t window = static_cast<int64_t>(th.scan_window_s) * 1000000;
  const int64_t realert = static_cast<int64_t>(th.scan_realert_s) * 1000000;
  const size_t cap = static_cast<size_t>(th.fanout_hosts) * 2 + 64;
  // Full: drop the hosts tried no more within the window (and not alerted within scan_realert_s,
  // whose repeats must still be recognised), at most once a second.
  if (by.size() > cap && t - swept >= 1000000) {
    swept = t;
    std::erase_if(by, [&](const auto& h) {
      return h.second.last < t - window && (h.second.alerted < 0 || t - h.second.alerted >= realert);
    });
  }
  if (by.size() > cap) { ++full; return nullptr; }  // bounded
  return &by.emplace(key, PortsTried{}).first->second;
}

size_t PolicyJudge::count_host(HostsReached& hr, const IpKey& peer, int64_t t, size_t& held) const {
  auto& th = site_->thresholds;
  const int64_t window = static_cast<int64_t>(th.scan_window_s) * 1000000;
  auto [entry, added] = hr.hosts.try_emplace(peer, t);
  if (added) ++held;
  else entry->second = std::max(entry->second, t);
  if (hr.hosts.size() > th.fanout_hosts)
    held -= std::erase_if(hr.hosts, [&](const auto& h) { return h.second < t - window; });
  if (hr.hosts.size() <= th.fanout_hosts) return 0;
  const size_t n = hr.hosts.size();
  held -= n;
  hr.hosts.clear();
  return n;
}

bool PolicyJudge::due(int64_t& alerted, int64_t t, EventOutput& out) {
  const int64_t realert = static_cast<int64_t>(site_->thresholds.scan_realert_s) * 1000000;
  if (alerted >= 0 && t - alerted < realert) {
    ++repeats_;
    ++out.counters().at("policy.alert_repeats");
    return false;
  }
  alerted = t;
  return true;
}

void PolicyJudge::count_port(const FlowSummary& f, PortsTried& pt, Alert& a, EventOutput& out) {
  auto& th = site_->thresholds;
  const int64_t t = f.start.usec;
  const int64_t window = static_cast<int64_t>(th.scan_window_s) * 1000000;
  pt.last = std::max(pt.last, t);
  auto port = std::find_if(pt.ports.begin(), pt.ports.end(), [&](const auto& p) { return p.first == f.ep.dst_port; });
  if (port == pt.ports.end()) pt.ports.emplace_back(f.ep.dst_port, t);
  else port->second = std::max(port->second, t);
  if (pt.ports.size() > th.scan_ports)
    std::erase_if(pt.ports, [&](const auto& p) { return p.second < t - window; });
  if (pt.ports.size() <= th.scan_ports) return;
  const size_t n = pt.ports.size();
  pt.ports.clear();
  pt.ports.shrink_to_fit();
  if (!due(pt.alerted, t, out)) return;
  if (auto at = a.message.find("{n}"); at != std::string::npos) a.message.replace(at, 3, std::to_string(n));
  a.evidence.emplace_back("distinct_ports", std::to_string(n));
  emit(f, a, out);
}

void PolicyJudge::track_inbound_scan(const FlowSummary& f, const Device& dev, EventOutput& out) {
  if (!has_ports(f.ep.proto)) return;
  auto& st = dev_state_[static_cast<size_t>(&dev - site_->devices.data())];
  auto& th = site_->thresholds;
  const int64_t t = f.start.usec;
  PortsTried* tried = ports_tried(st.scanned_by, IpKey(f.ep.src), st.scanned_by_swept, t, scanners_full_);
  if (!tried) return;
  Alert a;
  a.rule = "lateral.port_scan";
  a.sev = Severity::high;
  a.device = dev.name;
  a.peer = ip_str(f.ep.src);
  a.message = a.peer + ", a host the site binds to no device, tried {n} distinct ports of " + dev.name + " within " +
              std::to_string(th.scan_window_s) + " s";
  a.evidence.emplace_back("model", dev.model_id);
  a.evidence.emplace_back("direction", "inbound");
  a.distinct = std::to_string(t);  // each burst is its own finding
  cite(a, dev.model, "SAHD-8");
  count_port(f, *tried, a, out);
}

void PolicyJudge::track_unbound_fanout(const FlowSummary& f, const Device* sdev, EventOutput& out) {
  // Hosts outside the site are left out: a browser or a proxy reaches many of those on one
  // service, and a device's web page among them would read as a sweep.
  if (!internal(f.ep.dst) || !internal(f.ep.src) || group_destination(f)) return;
  auto& th = site_->thresholds;
  auto& sweeps = cross_->sweeps;
  size_t& held = cross_->sweep_hosts;
  const int64_t t = f.start.usec;
  const int64_t window = static_cast<int64_t>(th.scan_window_s) * 1000000;
  const bool with_ports = has_ports(f.ep.proto);
  const uint32_t service = static_cast<uint32_t>(f.ep.proto) << 16 | (with_ports ? f.ep.dst_port : 0u);
  IpKey scanner(f.ep.src), peer(f.ep.dst);
  auto sc = sweeps.find(scanner);
  const bool new_host = sc == sweeps.end() || !sc->second.services.count(service) ||
                        !sc->second.services.at(service).reached.hosts.count(peer);
  if (!new_host) {
    sc->second.last = std::max(sc->second.last, t);
  } else {
    // Full: drop the hosts reached no more within the window, and what is left of a service (or
    // sweeper) with none and no alert within scan_realert_s, at most once a second.
    const size_t services_cap = static_cast<size_t>(th.scan_ports) * 2 + 64;
    auto full = [&] {
      return held >= kMaxSweepHosts ||
             (sc != sweeps.end() && !sc->second.services.count(service) && sc->second.services.size() > services_cap);
    };
    if (full() && t - cross_->sweeps_swept >= 1000000) {
      cross_->sweeps_swept = t;
      for (auto s = sweeps.begin(); s != sweeps.end();) {
        drop_stale_hosts(s->second.services, [](auto& ss) -> auto& { return ss.reached; }, t, held);
        s = s->second.services.empty() ? sweeps.erase(s) : std::next(s);
      }
      sc = sweeps.find(scanner);
    }
    if (full()) { ++sweepers_full_; return; }  // bounded: this host is not counted
    if (sc == sweeps.end()) sc = sweeps.emplace(scanner, SweepState{}).first;
    sc->second.last = std::max(sc->second.last, t);
  }
  SweepService& ss = sc->second.services[service];
  HostsReached& hr = ss.reached;
  if (sdev && t >= ss.last_device_at) {
    ss.last_device = static_cast<uint32_t>(sdev - site_->devices.data());
    ss.last_device_at = t;
  }
  const size_t n = count_host(hr, peer, t, held);
  if (n == 0) return;
  // A sweep of hosts none of which is a device within the window is not the site's finding.
  if (ss.last_device == UINT32_MAX || ss.last_device_at < t - window) return;
  const Device& dev = site_->devices[ss.last_device];
  if (!due(hr.alerted, t, out)) return;
  Alert a;
  a.rule = "lateral.fan_out";
  a.sev = Severity::high;
  a.device = dev.name;
  a.peer = ip_str(f.ep.src);
  std::string what = std::string(l4_name(f.ep.proto)) + (with_ports ? "/" + std::to_string(f.ep.dst_port) : "");
  a.message = a.peer + ", a host the site binds to no device, contacted more than " + std::to_string(th.fanout_hosts) +
              " distinct hosts on " + what + " within " + std::to_string(th.scan_window_s) + " s, " + dev.name +
              " among them";
  a.evidence.emplace_back("model", dev.model_id);
  a.evidence.emplace_back("direction", "inbound");
  a.evidence.emplace_back("distinct_hosts", std::to_string(n));
  a.evidence.emplace_back("proto", std::string(l4_name(f.ep.proto)));
  if (with_ports) a.evidence.emplace_back("server_port", std::to_string(f.ep.dst_port));
  a.distinct = std::to_string(t) + "/" + std::to_string(service);  // each burst, each service its own finding
  cite(a, dev.model, "SAHD-8");
  emit(f, a, out);
}

FlowVerdict PolicyJudge::judge(const FlowSummary& f, EventOutput& out) {
  std::lock_guard<std::mutex> hold(cross_->lock);  // uncontended unless forks share the state
  FlowVerdict v;
  const Device* cdev = judged_device(f.ep.src, f.client_mac);
  if (!cdev) cdev = bind_by_fingerprint(f);
  const Device* sdev = judged_device(f.ep.dst, f.server_mac);
  std::string_view app = app_of(f);
  bool enc = encrypted(f, app);

  // Zone matrix: site-wide, for every flow between two known zones.
  int cz = zone_of(f.ep.src, cdev), sz = zone_of(f.ep.dst, sdev);
  if (cz >= 0 && sz >= 0 && cz != sz) {
    size_t nz = site_->zones.size() + 1;
    if (!zone_matrix_[static_cast<size_t>(cz) * nz + static_cast<size_t>(sz)]) {
      auto zname = [&](int z) { return static_cast<size_t>(z) < site_->zones.size() ? site_->zones[z].name : std::string("external"); };
      Alert a;
      a.rule = "lateral.zone_crossing";
      a.sev = (cdev || sdev) ? Severity::medium : Severity::low;
      a.device = cdev ? cdev->name : (sdev ? sdev->name : ip_str(f.ep.src));
      a.peer = cdev ? (sdev ? sdev->name : ip_str(f.ep.dst)) : ip_str(sdev ? f.ep.src : f.ep.dst);
      a.message = "Flow from zone " + zname(cz) + " to zone " + zname(sz) + " is not in the site's zone matrix";
      a.evidence.emplace_back("src_zone", zname(cz));
      a.evidence.emplace_back("dst_zone", zname(sz));
      a.evidence.emplace_back("app", std::string(app.empty() ? "unknown" : app));
      if (has_ports(f.ep.proto)) a.evidence.emplace_back("server_port", std::to_string(f.ep.dst_port));
      emit(f, a, out);
      if (v.verdict.empty() && (cdev || sdev)) { v.verdict = "undeclared"; v.rule = "lateral.zone_crossing"; }
    }
  }

  // HL7 processing id: test/debug messages on a production network.
  if (app == "hl7" && site_->production) {
    if (const std::string* pid = attr(f, "hl7.processing_id")) {
      bool test = false;
      each_item(*pid, [&](std::string_view p) { if (!p.empty() && (p[0] == 'T' || p[0] == 'D')) test = true; });
      if (test) {
        Alert a;
        a.rule = "hl7.test_on_production";
        a.sev = Severity::medium;
        a.device = sdev ? sdev->name : (cdev ? cdev->name : ip_str(f.ep.dst));
        a.peer = ip_str(f.ep.src);
        a.message = "HL7 message with processing id " + *pid + " (test/debug) on the production site";
        a.evidence.emplace_back("processing_id", *pid);
        if (auto* s = attr(f, "hl7.msh3")) a.evidence.emplace_back("msh3", *s);
        emit(f, a, out);
      }
    }
  }
  if (app == "dicom") {
    eval_dicom_flow(f, cdev, sdev, out);
    correlate_move(f, cdev, sdev);
  }

  if (!cdev && !sdev) {  // not a flow of a known device: only site-wide checks
    if (!site_->devices.empty()) track_unbound_fanout(f, nullptr, out);
    return v;
  }
  static const char* names[] = {"declared", "undeclared", "forbidden"};
  const bool crossing = !v.verdict.empty();  // a zone crossing made the flow undeclared
  SideResult worst;
  worst.level = -1;
  for (int side = 0; side < 2; ++side) {
    const Device* d = side == 0 ? cdev : sdev;
    if (!d) continue;
    if (side == 1 && cdev == sdev) {  // a device talking to itself: one judgement for both ends
      v.side_verdict[1] = v.side_verdict[0];
      v.side_rule[1] = v.side_rule[0];
      continue;
    }
    const Device* peer_dev = side == 0 ? sdev : cdev;
    const IpAddr& peer = side == 0 ? f.ep.dst : f.ep.src;
    uint64_t peer_roles = roles_of(peer);
    if (peer_dev) peer_roles |= dev_roles_[static_cast<size_t>(peer_dev - site_->devices.data())];
    SideResult r = eval_side(f, *d, side == 0, peer_dev, peer_roles, app, enc, out);
    // A peer holds the role by its own address (or as a device of it), or as one address of a
    // network the site binds to it. Only a peer of such a network that answered is a declared one
    // here: a sweep of a wide block bound to a role (a workstation role on 10.0.0.0/8) meets mostly
    // addresses where nothing answers, and those count.
    bool declared_to_role = false;
    if (r.peer_role >= 0 && !crossing) {
      const uint64_t bit = 1ull << r.peer_role;
      auto own = roles_by_ip_.find(IpKey(peer));
      declared_to_role = f.server_answered || (own != roles_by_ip_.end() && (own->second & bit)) ||
                         (peer_dev && (dev_roles_[static_cast<size_t>(peer_dev - site_->devices.data())] & bit));
    }
    // This side's own verdict, for the report and summary of this device; same rules as the flow's
    // below. A device without a model has nothing declared to be judged against.
    if (d->model) {
      bool by_crossing = r.level == 0 && crossing;
      v.side_verdict[side] = names[by_crossing ? 1 : r.level];
      v.side_rule[side] = by_crossing ? v.rule : r.rule;
    }
    if (r.level > worst.level) worst = std::move(r);
    // A group destination (SSDP, mDNS, NetBIOS broadcasts) is many listeners, no host: not one of a
    // sweep's hosts, not a new peer. The flow itself is still judged against the model above.
    const bool to_group = side == 0 && group_destination(f);
    // A declared flow to a peer holding the rule's role (a PACS sending C-MOVE results to its
    // reading stations, a modality to its PACS) is the site's own traffic, not a sweep: it is not
    // counted. Rules open to any / any_internal peer still are.
    // So is one a host that is no device sends to a device whose model declares it for a role the
    // host holds (the site's second PACS node verifying its modalities).
    if (side == 0) { if (!to_group && !declared_to_role) track_fanout(f, *d, out); }
    else if (!cdev && !declared_to_role) track_inbound_scan(f, *d, out);
    if (side == 1 && !cdev && !declared_to_role) track_unbound_fanout(f, sdev, out);
    // An unknown peer: an address the site binds to no role and no device.
    if (!peer_dev && peer_roles == 0 && !to_group && !is_infrastructure(app)) {
      Alert a;
      a.rule = "lateral.new_peer";
      a.sev = Severity::low;
      a.device = d->name;
      a.peer = ip_str(peer);
      a.message = d->name + " talks to " + a.peer + ", a host the site binds to no role or device";
      if (has_ports(f.ep.proto)) a.evidence.emplace_back("server_port", std::to_string(f.ep.dst_port));
      a.evidence.emplace_back("app", std::string(app.empty() ? "unknown" : app));
      emit(f, a, out);
    }
  }
  if (!move_matches_.empty()) check_move_followups(f, out);
  // A zone crossing already made the flow undeclared; a side's own finding may be worse.
  if (worst.level >= 0 && !(worst.level == 0 && !v.verdict.empty())) {
    v.verdict = names[worst.level];
    v.rule = std::move(worst.rule);
    v.mds2 = std::move(worst.mds2);
  }
  return v;
}

void PolicyJudge::finish(Timestamp now, EventOutput& out) {
  out.counters().at("policy.alerts_written") = alerts_written_;
  // Caps of per-peer state (docs/limits.md), written when hit.
  auto& c = out.counters();
  if (emitted_full_) c.at("policy.alert_memory_full") += emitted_full_;
  if (learned_full_) c.at("policy.learned_full") += learned_full_;
  if (ae_reset_) c.at("policy.ae_tracked_reset") += ae_reset_;
  if (reject_reset_) c.at("policy.reject_sources_reset") += reject_reset_;
  if (scan_peers_full_) c.at("policy.scan_peers_full") += scan_peers_full_;
  if (scanners_full_) c.at("policy.scanners_full") += scanners_full_;
  if (sweepers_full_) c.at("policy.sweepers_full") += sweepers_full_;
  if (rate_keys_full_) c.at("policy.rate_keys_full") += rate_keys_full_;
  if (moves_full_) c.at("policy.moves_waiting_full") += moves_full_;
}

}  // namespace medmon::policy
