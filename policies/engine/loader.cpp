// YAML loading of device models and site bindings. Every problem becomes an error located at
// file:line:column that says what was expected; nothing falls back silently to a default.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <set>
#include <tuple>
#include <unordered_map>

#include "dissectors/ndpi/ndpi_classifier.h"
#include "dissectors/proprietary/signature.h"
#include "policies/engine/policy.h"
#include "policies/mds2/mds2_form.h"
#include "sensor/common/yaml_documents.h"

namespace medmon::policy {

std::string LoadError::format() const {
  std::string s = file;
  if (line > 0) s.append(":").append(std::to_string(line)).append(":").append(std::to_string(column));
  return s + ": " + message;
}

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::info: return "info";
    case Severity::low: return "low";
    case Severity::medium: return "medium";
    case Severity::high: return "high";
    case Severity::critical: return "critical";
  }
  return "info";
}

bool parse_severity(std::string_view s, Severity& out) {
  static const std::pair<std::string_view, Severity> t[] = {{"info", Severity::info}, {"low", Severity::low},
      {"medium", Severity::medium}, {"high", Severity::high}, {"critical", Severity::critical}};
  for (auto& [n, v] : t) if (s == n) { out = v; return true; }
  return false;
}

bool Cidr::parse(std::string_view text, Cidr& out) {
  auto slash = text.find('/');
  std::string_view addr = text.substr(0, slash);
  IpAddr a;
  if (!IpAddr::parse(addr, a)) return false;
  int maxbits = a.family == 4 ? 32 : 128;
  int bits = maxbits;
  if (slash != std::string_view::npos) {
    std::string_view b = text.substr(slash + 1);
    if (b.empty() || b.size() > 3) return false;
    bits = 0;
    for (char c : b) {
      if (c < '0' || c > '9') return false;
      bits = bits * 10 + (c - '0');
    }
    if (bits > maxbits) return false;
  }
  // Host bits must be zero: "10.1.2.3/24" is almost always a typo for a /32 or a /24 network.
  int nbytes = a.family == 4 ? 4 : 16;
  for (int i = 0; i < nbytes; ++i) {
    int keep = std::clamp(bits - i * 8, 0, 8);
    uint8_t mask = keep == 8 ? 0xFF : static_cast<uint8_t>(0xFF00 >> keep);
    if (a.b[i] & ~mask) return false;
  }
  // An IPv4-mapped IPv6 address (::ffff:10.1.2.3) never travels on the wire: the packets of that
  // host carry its IPv4 address, which is what it means.
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (a.family == 6 && bits >= 96 && std::memcmp(a.b.data(), kMapped, 12) == 0) {
    IpAddr v4 = IpAddr::v4(a.b.data() + 12);
    a = v4;
    bits -= 96;
  }
  out.net = a;
  out.bits = static_cast<uint8_t>(bits);
  return true;
}

bool Cidr::contains(const IpAddr& a) const {
  if (a.family != net.family) return false;
  int full = bits / 8, rest = bits % 8;
  for (int i = 0; i < full; ++i) if (a.b[i] != net.b[i]) return false;
  if (rest) {
    uint8_t mask = static_cast<uint8_t>(0xFF00 >> rest);
    if ((a.b[full] & mask) != net.b[full]) return false;
  }
  return true;
}

ZoneLookup::ZoneLookup(const std::vector<Zone>& zones) {
  for (size_t z = 0; z < zones.size(); ++z)
    for (auto& c : zones[z].cidrs) add(c, static_cast<int>(z));
}

void ZoneLookup::add(const Cidr& c, int zone) {
  // After every prefix as long or longer: the first found of one length is the first added.
  auto at = std::upper_bound(by_prefix_.begin(), by_prefix_.end(), c.bits,
                             [](uint8_t bits, const auto& e) { return bits > e.first.bits; });
  by_prefix_.insert(at, {c, zone});
}

int ZoneLookup::find(const IpAddr& ip) const {
  for (auto& [c, z] : by_prefix_) if (c.contains(ip)) return z;
  return -1;
}

int8_t Model::sw_value(std::string_view name) const {
  auto& sws = mds2::derived_switches();
  for (size_t i = 0; i < sws.size() && i < sw.size(); ++i) if (name == sws[i].name) return sw[i];
  return -1;
}

const Model* Site::find_model(std::string_view id) const {
  for (auto& m : models) if (m->id == id) return m.get();
  return nullptr;
}

int Site::role_index(std::string_view name) const {
  for (size_t i = 0; i < roles.size(); ++i) if (roles[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Reading helpers that record errors against one file.
struct Reader {
  std::string file;
  Errors& errs;
  size_t start = errs.list.size();
  std::vector<std::string> bad_models{};  // model files that failed to load: their errors are told once
  std::vector<std::string> bad_model_ids{};  // the ids their names give (a model's file is <id>.yaml)

  bool ok() const { return errs.list.size() == start; }
  // A node without a mark is the document of a file with no YAML in it (empty, or comments only):
  // its error is told at line 1, as every error in a file names its line.
  void err(const YAML::Node& n, const std::string& msg) { err_mark(n.Mark(), msg); }
  void err_mark(const YAML::Mark& m, const std::string& msg) {
    if (m.is_null()) errs.add(file, 1, 1, msg);
    else errs.add(file, m.line + 1, m.column + 1, msg);
  }
  void err_at(Where w, const std::string& msg) { errs.add(file, w.line, w.column, msg); }
  static Where where(const YAML::Node& n) {
    auto m = n.Mark();
    return m.is_null() ? Where{} : Where{m.line + 1, m.column + 1};
  }

  // A list section that may be left out: false when it is absent or null, or when it is not a
  // list (an error saying what the list holds).
  bool optional_list(const YAML::Node& n, const std::string& what, const std::string& items) {
    if (!n || n.IsNull()) return false;
    if (n.IsSequence()) return true;
    err(n, what + ": expected a list of " + items);
    return false;
  }
  // The top of a site or model file: a mapping, and an empty document is told as such.
  bool is_document(const YAML::Node& root, const std::string& what) {
    if (!root.IsNull()) return is_map(root, what);
    err(root, "empty document (expected a " + what + ": a mapping of key: value, starting with 'schema:')");
    return false;
  }
  bool is_map(const YAML::Node& n, const std::string& what) {
    if (n.IsMap()) return true;
    err(n, what + ": expected a mapping (key: value)");
    return false;
  }
  // A mapping section that may be left out: false when it is absent or null, or when it is not a
  // mapping (is_map's error).
  bool optional_map(const YAML::Node& n, const std::string& what) {
    if (!n || n.IsNull()) return false;
    return is_map(n, what);
  }
  void keys(const YAML::Node& n, const std::string& what, std::initializer_list<std::string_view> allowed) {
    std::vector<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string k = it->first.IsScalar() ? it->first.Scalar() : std::string("?");
      // yaml-cpp keeps the first of two equal keys; say so instead of ignoring the second.
      if (std::find(seen.begin(), seen.end(), k) != seen.end()) err(it->first, "duplicate key '" + k + "' in " + what);
      seen.push_back(k);
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      std::string exp;
      for (auto a : allowed) { if (!exp.empty()) exp += ", "; exp += a; }
      err(it->first, "unknown key '" + k + "' in " + what + " (expected one of: " + exp + ")");
    }
  }
  // For the mappings read key by key instead of through keys() (mds2_derived, mds2 answers,
  // severity): false, with an error, when `key` repeats one already seen; yaml-cpp would let the
  // last one win silently.
  bool unique_key(std::vector<std::string>& seen, const YAML::Node& key, const std::string& what) {
    std::string k = key.IsScalar() ? key.Scalar() : std::string("?");
    if (std::find(seen.begin(), seen.end(), k) != seen.end()) {
      err(key, "duplicate key '" + k + "' in " + what);
      return false;
    }
    seen.push_back(std::move(k));
    return true;
  }
  bool str(const YAML::Node& n, const std::string& what, std::string& out) {
    if (!n.IsScalar()) { err(n, what + ": expected a string"); return false; }
    out = n.Scalar();
    return true;
  }
  bool boolean(const YAML::Node& n, const std::string& what, bool& out) {
    std::string s = n.IsScalar() ? lower(n.Scalar()) : "";
    if (s == "true" || s == "yes") { out = true; return true; }
    if (s == "false" || s == "no") { out = false; return true; }
    err(n, what + ": expected true or false");
    return false;
  }
  bool uint(const YAML::Node& n, const std::string& what, uint64_t max, uint64_t& out) {
    std::string s = n.IsScalar() ? n.Scalar() : "";
    uint64_t v = 0;
    bool good = !s.empty() && s.size() < 12;
    for (char c : s) { if (c < '0' || c > '9') { good = false; break; } v = v * 10 + static_cast<uint64_t>(c - '0'); }
    if (!good || v > max) { err(n, what + ": expected a whole number 0-" + std::to_string(max)); return false; }
    out = v;
    return true;
  }
  // Where value s of a scalar or list node was written: the element when it is a list.
  static YAML::Mark mark_of(const YAML::Node& n, const std::string& s) {
    if (n.IsSequence())
      for (auto e : n)
        if (e.IsScalar() && e.Scalar() == s) return e.Mark();
    return n.Mark();
  }
  // Where each value of a scalar or list node was written, in the order strs() reads them.
  static std::vector<Where> wheres(const YAML::Node& n) {
    std::vector<Where> out;
    if (n.IsSequence()) for (auto e : n) { if (e.IsScalar()) out.push_back(where(e)); }
    else if (n.IsScalar()) out.push_back(where(n));
    return out;
  }
  // A scalar or a sequence of scalars.
  std::vector<std::string> strs(const YAML::Node& n, const std::string& what) {
    std::vector<std::string> out;
    if (n.IsNull()) return out;
    if (n.IsScalar()) { out.push_back(n.Scalar()); return out; }
    if (!n.IsSequence()) { err(n, what + ": expected a string or a list of strings"); return out; }
    for (auto e : n) {
      if (!e.IsScalar()) { err(e, what + ": expected a string"); continue; }
      out.push_back(e.Scalar());
    }
    return out;
  }
  // AE titles (PS3.5 AE: 1-16 characters, no backslash or control characters; spaces around
  // them are padding): a title the wire cannot carry would never match, so it is refused.
  std::vector<std::string> ae_titles(const YAML::Node& n, const std::string& what, bool allow_roles = false) {
    std::vector<std::string> out = strs(n, what);
    for (auto& s : out) {
      if (allow_roles && s.rfind("role:", 0) == 0) continue;
      size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
      std::string_view t = b == std::string::npos ? std::string_view() : std::string_view(s).substr(b, e - b + 1);
      const char* bad = nullptr;
      if (t.empty()) bad = "is empty";
      else if (t.size() > 16) bad = "is longer than 16 characters";
      else
        for (char c : t)
          if (c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) { bad = "holds a backslash or a control character"; break; }
      if (!bad) {
        s = std::string(t);  // the wire's padding is not part of the title
        continue;
      }
      err_mark(mark_of(n, s), what + ": AE title '" + s + "' " + bad + " (a DICOM AE title is 1 to 16 characters)");
    }
    return out;
  }
  std::vector<uint16_t> ports(const YAML::Node& n, const std::string& what) {
    std::vector<uint16_t> out;
    auto one = [&](const YAML::Node& e) {
      uint64_t v;
      if (uint(e, what, 65535, v)) {
        if (v == 0) err(e, what + ": expected a port 1-65535");
        else out.push_back(static_cast<uint16_t>(v));
      }
    };
    if (n.IsScalar()) one(n);
    else if (n.IsSequence()) for (auto e : n) one(e);
    else err(n, what + ": expected a port or a list of ports");
    return out;
  }
  // Ports of a model flow: a port, a range "49152-65535" (low to high), or a list of both.
  std::vector<PortRange> port_ranges(const YAML::Node& n, const std::string& what) {
    std::vector<PortRange> out;
    auto one = [&](const YAML::Node& e) {
      std::string s = e.IsScalar() ? e.Scalar() : "";
      size_t dash = s.find('-');
      if (dash == std::string::npos) {
        uint64_t v;
        if (uint(e, what, 65535, v)) {
          if (v == 0) err(e, what + ": expected a port 1-65535");
          else out.push_back({static_cast<uint16_t>(v), static_cast<uint16_t>(v)});
        }
        return;
      }
      auto number = [](std::string_view t, uint32_t& v) {
        while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
        while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
        if (t.empty() || t.size() > 5) return false;
        v = 0;
        for (char c : t) {
          if (c < '0' || c > '9') return false;
          v = v * 10 + static_cast<uint32_t>(c - '0');
        }
        return v >= 1 && v <= 65535;
      };
      uint32_t lo = 0, hi = 0;
      if (!number(std::string_view(s).substr(0, dash), lo) || !number(std::string_view(s).substr(dash + 1), hi))
        err(e, what + ": '" + s + "' is not a port range (expected low-high of ports 1-65535, e.g. 49152-65535)");
      else if (lo > hi)
        err(e, what + ": '" + s + "' is a reversed range (expected low-high, e.g. " + std::to_string(hi) + "-" +
                   std::to_string(lo) + ")");
      else
        out.push_back({static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)});
    };
    if (n.IsScalar()) one(n);
    else if (n.IsSequence()) for (auto e : n) one(e);
    else err(n, what + ": expected a port, a range (49152-65535) or a list of them");
    return out;
  }
  std::vector<Cidr> cidrs(const YAML::Node& n, const std::string& what) {
    std::vector<Cidr> out;
    for (auto& s : strs(n, what)) {
      Cidr c;
      if (Cidr::parse(s, c)) { out.push_back(c); continue; }
      err_mark(mark_of(n, s), what + ": '" + s + "' is not an IP address or CIDR (expected e.g. 10.10.1.0/24 with zero host bits, or 10.10.1.10)");
    }
    return out;
  }
};

bool load_yaml(const std::string& path, Errors& errs, YAML::Node& root) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    errs.add(path, 0, 0, "not a regular file (expected a YAML file)");
    return false;
  }
  try {
    root = YAML::LoadFile(path);
    if (auto m = second_yaml_document(path)) {
      errs.add(path, m->line + 1, m->column + 1, "a second YAML document: a site or model file is one document");
      return false;
    }
  } catch (const YAML::BadFile&) {
    errs.add(path, 0, 0, "cannot open file");
    return false;
  } catch (const YAML::ParserException& e) {
    errs.add(path, e.mark.line + 1, e.mark.column + 1, "YAML syntax error: " + e.msg);
    return false;
  } catch (const YAML::Exception& e) {
    errs.add(path, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.is_null() ? 0 : e.mark.column + 1,
             std::string("YAML error: ") + e.msg);
    return false;
  } catch (const std::exception& e) {  // the stream itself failed (e.g. a read error)
    errs.add(path, 0, 0, std::string("cannot read file: ") + e.what());
    return false;
  }
  return true;
}

const std::set<std::string, std::less<>> kKnownApps = {
    "dicom", "hl7", "http", "tls", "ssh", "smb", "rpc", "rdp", "winrm", "telnet", "vnc", "ftp",
    "teamviewer", "anydesk", "ntp", "dns", "dhcp", "syslog", "ldap", "kerberos", "snmp", "icmp",
    "mqtt", "modbus", "sql", "mssql", "proprietary", "astm", "poct1", "sdc", "any"};
// The judge keeps each address's roles as a 64-bit set.
constexpr size_t kMaxRoles = 64;
const std::string kTooManyRoles = "more than 64 roles in the site (the limit; merge roles)";
// Rule ids of docs/alerts.md, for per-rule severity overrides.
const std::set<std::string, std::less<>> kRules = {
    "flow.undeclared", "flow.external_forbidden", "flow.internal_forbidden", "flow.unlisted_listening_port",
    "flow.forbidden_app", "flow.disabled_by_default", "tls.required_cleartext", "tls.unexpected", "tls.obsolete_version", "tls.fingerprint_undeclared",
    "dicom.implementation_undeclared", "lateral.zone_forbidden",
    "phi.cleartext", "lateral.admin_protocol", "lateral.zone_crossing", "lateral.new_peer", "lateral.fan_out",
    "lateral.port_scan", "dicom.ae_spoofing", "dicom.ae_new_ip", "dicom.reject_burst",
    "dicom.move_destination_undeclared", "dicom.move_address_undeclared", "dicom.dimse_undeclared",
    "dicom.sop_class_undeclared", "dicom.unauthenticated_association", "flow.peer_not_filtered",
    "dicom.cleartext_password", "dicom.user_identity_undeclared", "flow.remote_endpoint_undeclared", "hl7.sender_unbound", "hl7.message_type_undeclared", "hl7.test_on_production", "policy.rate_limited"};
const std::set<std::string, std::less<>> kDimse = {"C-ECHO", "C-STORE", "C-FIND", "C-MOVE", "C-GET",
    "N-CREATE", "N-SET", "N-GET", "N-ACTION", "N-EVENT-REPORT", "N-DELETE", "C-CANCEL"};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool is_signature_name(std::string_view a) {
  for (const auto& s : proprietary::registered())
    if (s->name == a) return true;
  return false;
}

// Application names: medmon's own, a loaded signature's name, or a protocol nDPI names (taken as
// it is: tftp, mdns, dhcpv6). Any other lowercase identifier may be a signature loaded later,
// unless it is one or two letters away from one of medmon's names: then it is taken for a typo.
void check_apps(Reader& r, const YAML::Node& n, const std::vector<std::string>& apps, const std::string& what) {
  for (auto& a : apps) {
    if (kKnownApps.count(a) || is_signature_name(a)) continue;
    bool ident = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    });
    std::string near;
    for (auto& k : kKnownApps) if (edit_distance(a, k) <= (a.size() <= 4 ? 1u : 2u)) { near = k; break; }
    if (ident && near.empty()) continue;
    if (NdpiClassifier::is_protocol_name(a)) continue;
    std::string exp;
    for (auto& k : kKnownApps) { if (!exp.empty()) exp += ", "; exp += k; }
    r.err(n, what + ": unknown application '" + a + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                 " (expected one of: " + exp + ", a protocol name of nDPI, or a proprietary signature name in lowercase)");
  }
}

// The model's sections, one reader each, in the order load_model calls them. Nodes are passed as
// YAML::Node values (handles to the same node), not const references: yaml-cpp's const
// operator[] answers a missing key with an invalid node, on which Mark() throws.

// Disagreements between vendor documents, kept as data: a list of {ids: [...], text: ...}.
void load_conflicts(Reader& r, YAML::Node x, Model& m) {
  if (!r.optional_list(x, "model conflicts", "{ids: [...], text: ...}")) return;
  for (auto c : x) {
    if (!r.is_map(c, "conflict")) continue;
    r.keys(c, "conflict", {"ids", "text"});
    std::string t;
    if (c["text"]) r.str(c["text"], "conflict text", t);
    m.conflicts.push_back({c["ids"] ? r.strs(c["ids"], "conflict ids") : std::vector<std::string>{}, t});
  }
}

// The file's schema key, required and naming the one version this reader knows.
void check_schema(Reader& r, YAML::Node root, const std::string& expected) {
  if (auto s = root["schema"]) {
    std::string v;
    if (r.str(s, "schema", v) && v != expected) r.err(s, "unsupported schema '" + v + "' (expected " + expected + ")");
  } else {
    r.err(root, "missing key 'schema' (expected schema: " + expected + ")");
  }
}

// Schema and the model section (id, manufacturer, description, conflicts); both are required.
void load_model_header(Reader& r, YAML::Node root, Model& m) {
  check_schema(r, root, "medmon.model/v1");
  if (auto md = root["model"]; md && r.is_map(md, "model")) {
    r.keys(md, "model", {"id", "manufacturer", "description", "models", "intended_use", "software_versions",
                         "documents", "conflicts"});
    if (auto x = md["id"]) { r.str(x, "model id", m.id); m.id_where = Reader::where(x); }
    else r.err(md, "model: missing key 'id'");
    if (auto x = md["manufacturer"]) r.str(x, "model manufacturer", m.manufacturer);
    if (auto x = md["description"]) r.str(x, "model description", m.description);
    load_conflicts(r, md["conflicts"], m);
  } else if (!md) {
    r.err(root, "missing key 'model' (expected model: {id: ..., manufacturer: ...})");
  }
}

// Passive identification: DICOM implementation class UID and version name, HL7 MSH-3 sending application.
void load_fingerprints(Reader& r, YAML::Node fp, Model& m) {
  if (!r.optional_map(fp, "fingerprints")) return;
  r.keys(fp, "fingerprints", {"dicom_implementation_class_uid", "dicom_implementation_version_name",
                              "hl7_msh3_sending_application", "mac_oui", "tls_ja3", "tls_ja3s", "tls_ja4",
                              "dicom_dataset"});
  if (fp["dicom_implementation_class_uid"])
    m.impl_class_uids = r.strs(fp["dicom_implementation_class_uid"], "fingerprint");
  if (fp["dicom_implementation_version_name"])
    m.impl_version_names = r.strs(fp["dicom_implementation_version_name"], "fingerprint");
  if (fp["hl7_msh3_sending_application"]) m.hl7_msh3 = r.strs(fp["hl7_msh3_sending_application"], "fingerprint");
  for (auto [key, list] : {std::pair{"tls_ja3", &m.tls_ja3}, std::pair{"tls_ja3s", &m.tls_ja3s}}) {
    if (!fp[key]) continue;
    const YAML::Node n = fp[key];
    *list = r.strs(n, "fingerprint");
    for (std::string& v : *list) {
      if (v.size() != 32 || v.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        r.err_mark(Reader::mark_of(n, v), std::string("fingerprints ") + key + ": '" + v + "' is not a JA3 hash (32 hexadecimal digits)");
      for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
  }
}

// The switches derived from the MDS2 answers (docs/policy.md); null leaves a switch unknown (-1).
void load_derived(Reader& r, YAML::Node n, Model& m) {
  if (!r.optional_map(n, "mds2_derived")) return;
  auto& sws = mds2::derived_switches();
  std::vector<std::string> seen;
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!r.unique_key(seen, it->first, "mds2_derived")) continue;
    std::string k = it->first.Scalar();
    const mds2::Switch* s = mds2::find_switch(k);
    if (!s) {
      std::string exp;
      for (auto& x : sws) { if (!exp.empty()) exp += ", "; exp += x.name; }
      r.err(it->first, "unknown key '" + k + "' in mds2_derived (expected one of: " + exp + ")");
      continue;
    }
    size_t idx = static_cast<size_t>(s - sws.data());
    m.sw_where[idx] = Reader::where(it->first);
    if (it->second.IsNull()) { m.sw[idx] = -1; continue; }
    bool v;
    if (r.boolean(it->second, "mds2_derived " + k, v)) m.sw[idx] = v ? 1 : 0;
  }
}

// The allowed and never zones (the judge flags peers in a never zone; bind_models checks the allowed names).
void load_model_zones(Reader& r, YAML::Node z, Model& m) {
  if (!r.optional_map(z, "zones")) return;
  r.keys(z, "model zones", {"allowed", "never"});
  m.zones_where = Reader::where(z);
  if (z["allowed"]) { m.zones_allowed = r.strs(z["allowed"], "zones allowed"); m.zones_allowed_at = Reader::wheres(z["allowed"]); }
  if (z["never"]) { m.zones_never = r.strs(z["never"], "zones never"); m.zones_never_at = Reader::wheres(z["never"]); }
}

// One declared conversation: who initiates it, with which role, on which ports and applications.
void load_flow(Reader& r, const YAML::Node& n, Model& m) {
  if (!r.is_map(n, "flow")) return;
  r.keys(n, "flow", {"id", "initiator", "peer_role", "l4", "dst_port", "app", "tls", "phi", "default_enabled",
                     "source", "description", "icmp_type", "optional"});
  FlowRule f;
  f.where = Reader::where(n);
  if (!n["id"]) r.err(n, "flow: missing key 'id' (every flow needs a stable id for verdicts and alerts)");
  else r.str(n["id"], "flow id", f.id);
  std::string what = "flow '" + f.id + "'";
  if (auto x = n["initiator"]) {
    std::string s;
    if (r.str(x, what + " initiator", s)) {
      if (s == "device") f.initiator = Initiator::device;
      else if (s == "peer") f.initiator = Initiator::peer;
      else if (s == "any") f.initiator = Initiator::any;
      else r.err(x, what + " initiator: '" + s + "' (expected device, peer or any)");
    }
  } else {
    r.err(n, what + ": missing key 'initiator' (expected device, peer or any)");
  }
  if (auto x = n["peer_role"]) { r.str(x, what + " peer_role", f.peer_role); f.role_where = Reader::where(x); }
  else r.err(n, what + ": missing key 'peer_role' (a site role, or any / any_internal / external)");
  if (auto x = n["l4"]) {
    std::string s;
    if (r.str(x, what + " l4", s)) {
      if (s == "tcp") f.l4 = 6;
      else if (s == "udp") f.l4 = 17;
      else if (s == "icmp") f.l4 = 1;
      else if (s == "any") f.l4 = 0;
      else r.err(x, what + " l4: '" + s + "' (expected tcp, udp, icmp or any)");
    }
  }
  if (auto x = n["dst_port"]) f.ports = r.port_ranges(x, what + " dst_port");
  if (auto x = n["app"]) {
    f.apps = r.strs(x, what + " app");
    for (auto& a : f.apps) a = lower(a);
    check_apps(r, x, f.apps, what + " app");
    if (std::find(f.apps.begin(), f.apps.end(), "any") != f.apps.end()) f.apps.clear();
  }
  if (auto x = n["tls"]) {
    std::string s;
    if (r.str(x, what + " tls", s)) {
      if (s == "required") f.tls = Tls::required;
      else if (s == "optional") f.tls = Tls::optional;
      else if (s == "forbidden") f.tls = Tls::forbidden;
      else r.err(x, what + " tls: '" + s + "' (expected required, optional or forbidden)");
    }
  }
  if (auto x = n["phi"]) {
    std::string s;
    if (r.str(x, what + " phi", s)) {
      if (s == "expected") f.phi = 1;
      else if (s == "none") f.phi = 0;
      else r.err(x, what + " phi: '" + s + "' (expected 'expected' or 'none')");
    }
  }
  if (auto x = n["default_enabled"]) r.boolean(x, what + " default_enabled", f.default_enabled);
  if (auto x = n["source"]) f.source = r.strs(x, what + " source");
  if (auto x = n["description"]) r.str(x, what + " description", f.description);
  for (auto& o : m.flows) if (!f.id.empty() && o.id == f.id) r.err(n, what + ": duplicate flow id");
  m.flows.push_back(std::move(f));
}

// The declared flows, a list of load_flow entries.
void load_flows(Reader& r, YAML::Node fl, Model& m) {
  if (!r.optional_list(fl, "flows", "flow entries")) return;
  for (auto f : fl) load_flow(r, f, m);
}

// The DICOM section: AE titles, SOP classes, DIMSE commands each way, C-MOVE destinations, user identity.
void load_dicom(Reader& r, YAML::Node d, Model& m) {
  if (!r.optional_map(d, "dicom")) return;
  r.keys(d, "dicom", {"ae_titles", "sop_classes", "dimse_in", "dimse_out", "c_move", "c_get", "user_identity", "source"});
  auto& dm = m.dicom;
  dm.present = true;
  dm.where = Reader::where(d);
  if (d["ae_titles"]) dm.ae_titles = r.ae_titles(d["ae_titles"], "dicom ae_titles");
  if (d["sop_classes"]) dm.sop_classes = r.strs(d["sop_classes"], "dicom sop_classes");
  // Either key turns the DIMSE check on for both directions: the one left out then allows no command.
  for (auto key : {"dimse_in", "dimse_out"}) {
    if (!d[key]) continue;
    dm.dimse_checked = true;
    auto v = r.strs(d[key], std::string("dicom ") + key);
    for (auto& c : v)
      if (!kDimse.count(c))
        r.err(d[key], std::string("dicom ") + key + ": unknown DIMSE command '" + c +
                          "' (expected e.g. C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET, N-ACTION)");
    (std::string_view(key) == "dimse_in" ? dm.dimse_in : dm.dimse_out) = std::move(v);
  }
  if (auto cm = d["c_move"]; cm && r.is_map(cm, "dicom c_move")) {
    r.keys(cm, "dicom c_move", {"allowed", "allowed_destinations"});
    if (cm["allowed"]) r.boolean(cm["allowed"], "dicom c_move allowed", dm.c_move_allowed);
    if (cm["allowed_destinations"]) {
      dm.move_destinations = r.ae_titles(cm["allowed_destinations"], "dicom c_move allowed_destinations", true);
      dm.move_destinations_at = Reader::wheres(cm["allowed_destinations"]);
    }
  }
  if (auto cg = d["c_get"]; cg && r.is_map(cg, "dicom c_get")) {
    r.keys(cg, "dicom c_get", {"allowed"});
    bool v;
    if (cg["allowed"] && r.boolean(cg["allowed"], "dicom c_get allowed", v)) {
      dm.c_get_allowed = v ? 1 : 0;
      // C-GET listed as served while c_get says it is not: the model contradicts itself.
      if (!v && std::find(dm.dimse_in.begin(), dm.dimse_in.end(), "C-GET") != dm.dimse_in.end())
        r.err(cg["allowed"], "dicom c_get allowed: false, but dimse_in lists C-GET");
    }
  }
  if (d["user_identity"]) {
    dm.user_identity = r.strs(d["user_identity"], "dicom user_identity");
    for (auto& t : dm.user_identity)
      if (user_identity_code(t) < 0)
        r.err(d["user_identity"], "dicom user_identity: unknown type '" + t +
                                      "' (expected none, username, username_password (or username_passcode), kerberos, saml or jwt)");
  }
  if (d["source"]) dm.source = r.strs(d["source"], "dicom source");
}

// The HL7 section: the peer roles it talks to and the message types it receives and sends.
void load_hl7(Reader& r, YAML::Node h, Model& m) {
  if (!r.optional_map(h, "hl7")) return;
  // `role` (sender, receiver, both) describes the device for the reader; it is not judged.
  r.keys(h, "hl7", {"role", "peer_roles", "inbound_types", "outbound_types", "source"});
  auto& hm = m.hl7;
  hm.present = true;
  hm.where = Reader::where(h);
  if (h["peer_roles"]) hm.peer_roles = r.strs(h["peer_roles"], "hl7 peer_roles");
  if (h["inbound_types"]) hm.inbound_types = r.strs(h["inbound_types"], "hl7 inbound_types");
  if (h["outbound_types"]) hm.outbound_types = r.strs(h["outbound_types"], "hl7 outbound_types");
  if (h["source"]) hm.source = r.strs(h["source"], "hl7 source");
}

// The vendor's remote service; of its keys only the endpoints are kept.
void load_remote_service(Reader& r, YAML::Node rs, Model& m) {
  if (!r.optional_map(rs, "remote_service")) return;
  r.keys(rs, "remote_service", {"declared", "owner_initiated", "patient_data_visible", "predictive_maintenance",
                                "other_remote", "endpoints"});
  if (rs["endpoints"]) m.remote_endpoints = r.strs(rs["endpoints"], "remote_service endpoints");
}

// Applications the model forbids, each inbound, outbound or either way.
void load_forbidden_apps(Reader& r, YAML::Node fa, Model& m) {
  if (!r.optional_list(fa, "forbidden_apps", "{app: ..., direction: ...}")) return;
  for (auto e : fa) {
    if (!r.is_map(e, "forbidden_apps entry")) continue;
    r.keys(e, "forbidden_apps entry", {"app", "direction", "source"});
    ForbiddenApp f;
    if (e["app"]) {
      f.apps = r.strs(e["app"], "forbidden app");
      for (auto& a : f.apps) a = lower(a);
      check_apps(r, e["app"], f.apps, "forbidden app");
    } else {
      r.err(e, "forbidden_apps entry: missing key 'app'");
    }
    if (auto d = e["direction"]) {
      std::string s;
      if (r.str(d, "forbidden direction", s)) {
        if (s == "inbound") f.direction = Direction::inbound;
        else if (s == "outbound") f.direction = Direction::outbound;
        else if (s == "any") f.direction = Direction::any;
        else r.err(d, "forbidden direction: '" + s + "' (expected inbound, outbound or any)");
      }
    }
    if (e["source"]) f.source = r.strs(e["source"], "forbidden source");
    m.forbidden.push_back(std::move(f));
  }
}

// One raw MDS2 answer: the answer, its detail and its IEC TR 80001-2-2, NIST 800-53 and ISO 27002 mapping.
void load_mds2_answer(Reader& r, const std::string& id, YAML::Node a, Model& m) {
  if (!r.is_map(a, "mds2 answer " + id)) return;
  r.keys(a, "mds2 answer " + id, {"answer", "detail", "raw_id", "note_ref", "note", "iec_tr_80001_2_2", "nist_800_53",
                                  "iso_27002"});
  AnswerInfo ai;
  auto g = [&](const char* k, std::string& out) {
    if (a[k]) r.str(a[k], std::string("mds2 answer ") + id + " " + k, out);
  };
  g("answer", ai.answer); g("detail", ai.detail); g("iec_tr_80001_2_2", ai.iec);
  g("nist_800_53", ai.nist); g("iso_27002", ai.iso);
  m.answers[id] = std::move(ai);
}

// The imported form's answers, keyed by MDS2 question id (form and notes are accepted, not read).
void load_mds2(Reader& r, YAML::Node x, Model& m) {
  if (!r.optional_map(x, "mds2")) return;
  r.keys(x, "mds2", {"form", "answers", "notes"});
  auto ans = x["answers"];
  if (!r.optional_map(ans, "mds2 answers")) return;
  std::vector<std::string> seen;
  for (auto it = ans.begin(); it != ans.end(); ++it) {
    if (!r.unique_key(seen, it->first, "mds2 answers")) continue;
    std::string id = it->first.Scalar(), dummy;
    if (!mds2::match_question_id(id, dummy) || dummy != id) {
      r.err(it->first, "mds2 answers: '" + id + "' is not an MDS2 question id (expected e.g. CONN-4)");
      continue;
    }
    load_mds2_answer(r, id, it->second, m);
  }
}

// A switch must say what the answer it follows says: internal_only: true beside CONN-4 = Yes would
// have the engine forbid what the form allows, and cite CONN-4 = yes as the reason.
void check_switches_against_answers(Reader& r, const Model& m) {
  auto& sws = mds2::derived_switches();
  for (size_t i = 0; i < sws.size() && i < m.sw.size(); ++i) {
    if (m.sw[i] < 0) continue;
    auto it = m.answers.find(sws[i].question);
    if (it == m.answers.end() || (it->second.answer != "yes" && it->second.answer != "no")) continue;
    const bool yes = (m.sw[i] == 1) != sws[i].inverted;  // the answer the switch stands for
    if ((it->second.answer == "yes") == yes) continue;
    const bool follows = (it->second.answer == "yes") != sws[i].inverted;  // the switch the answer gives
    r.err_at(m.sw_where[i], std::string("mds2_derived ") + sws[i].name + ": " + (m.sw[i] ? "true" : "false") +
                                " means " + sws[i].question + " = " + (yes ? "Yes" : "No") + ", but mds2 answers " +
                                sws[i].question + " is '" + it->second.answer + "' (expected " + sws[i].name + ": " +
                                (follows ? "true" : "false") + ", or the answer corrected)");
  }
}

// What the answers themselves forbid (RMOT-1, SAHD-7, SAHD-9), after the model's own forbidden_apps entries.
void derive_forbidden(Model& m) {
  if (m.sw_value("remote_service") == 0)
    m.forbidden.push_back({{"rdp", "vnc", "teamviewer", "anydesk", "ssh", "telnet", "winrm"}, Direction::any, {"RMOT-1"}});
  if (m.sw_value("file_shares_disabled") == 1)
    m.forbidden.push_back({{"smb"}, Direction::inbound, {"SAHD-7"}});
  if (m.sw_value("legacy_services_disabled") == 1)
    m.forbidden.push_back({{"telnet", "ftp"}, Direction::any, {"SAHD-9"}});
}

}  // namespace

std::unique_ptr<Model> load_model(const std::string& path, Errors& errs) {
  Reader r{path, errs};
  YAML::Node root;
  if (!load_yaml(path, errs, root)) return nullptr;
  if (!r.is_document(root, "device model")) return nullptr;
  auto m = std::make_unique<Model>();
  m->file = path;
  m->sw.assign(mds2::derived_switches().size(), -1);
  m->sw_where.assign(mds2::derived_switches().size(), Where{});
  r.keys(root, "device model", {"schema", "model", "fingerprints", "mds2_derived", "zones", "flows", "dicom", "hl7",
                                "remote_service", "forbidden_apps", "alerting", "mds2"});
  load_model_header(r, root, *m);
  load_fingerprints(r, root["fingerprints"], *m);
  load_derived(r, root["mds2_derived"], *m);
  load_model_zones(r, root["zones"], *m);
  load_flows(r, root["flows"], *m);
  load_dicom(r, root["dicom"], *m);
  load_hl7(r, root["hl7"], *m);
  load_remote_service(r, root["remote_service"], *m);
  load_forbidden_apps(r, root["forbidden_apps"], *m);
  // Nothing reads alerting yet; it need only be a mapping.
  if (auto a = root["alerting"]; a && !a.IsNull()) r.is_map(a, "alerting");
  load_mds2(r, root["mds2"], *m);
  check_switches_against_answers(r, *m);
  derive_forbidden(*m);
  if (!r.ok()) return nullptr;
  return m;
}

namespace {

// The site's sections, one reader each, in the order load_site calls them. Nodes are passed as
// YAML::Node values, not const references, for the reason given above the model's readers.

// Schema, name and production flag, and the site's own address ranges (required).
void load_site_header(Reader& r, YAML::Node root, Site& site) {
  check_schema(r, root, "medmon.site/v1");
  if (auto s = root["site"]; s && r.is_map(s, "site")) {
    r.keys(s, "site", {"name", "production"});
    if (s["name"]) r.str(s["name"], "site name", site.name);
    if (s["production"]) r.boolean(s["production"], "site production", site.production);
  }
  if (auto n = root["internal_networks"]) {
    site.internal = r.cidrs(n, "internal_networks");
    // No range at all: every peer of every device would be outside the customer environment.
    if (n.IsSequence() && n.size() == 0)
      r.err(n, "internal_networks: empty (every address would be outside the site; expected the site's own address "
               "ranges, e.g. [10.0.0.0/8])");
  } else r.err(root, "missing key 'internal_networks' (the site's own address ranges, e.g. [10.0.0.0/8])");
  // The IP subnets whose last address is a directed broadcast (the judge takes no other address
  // for one unless the frame went to the Ethernet broadcast address).
  if (auto n = root["subnets"]; n && !n.IsNull()) {
    std::vector<YAML::Node> items;
    if (n.IsSequence()) for (auto e : n) items.push_back(e);
    else items.push_back(n);
    for (auto& e : items)
      for (auto& c : r.cidrs(e, "subnets")) {
        std::string text = e.IsScalar() ? e.Scalar() : std::string();
        if (c.net.family != 4)
          r.err(e, "subnets: '" + text + "' is IPv6, which has no broadcast address (expected IPv4 subnets, e.g. 10.10.1.0/24)");
        else if (c.bits > 30)
          r.err(e, "subnets: '" + text + "' has no broadcast address (expected a subnet of /30 or wider, e.g. 10.10.1.0/24)");
        else
          site.subnets.push_back(c);
      }
  }
}

// Zones come first: the zone matrix, the devices and the models' allowed zones name them.
void load_zones(Reader& r, YAML::Node z, Site& site) {
  if (!r.optional_list(z, "zones", "{name, cidrs, vlans}")) return;
  for (auto e : z) {
    if (!r.is_map(e, "zone")) continue;
    r.keys(e, "zone", {"name", "cidrs", "vlan", "vlans", "description"});
    Zone zone;
    if (e["name"]) r.str(e["name"], "zone name", zone.name);
    else r.err(e, "zone: missing key 'name'");
    if (e["cidrs"]) zone.cidrs = r.cidrs(e["cidrs"], "zone '" + zone.name + "' cidrs");
    else r.err(e, "zone '" + zone.name + "': missing key 'cidrs'");
    for (auto k : {"vlan", "vlans"}) {
      if (!e[k]) continue;
      std::vector<uint16_t> v;
      auto one = [&](const YAML::Node& x) {
        uint64_t id;
        if (!r.uint(x, "zone '" + zone.name + "' vlan", 999999, id)) return;
        if (id < 1 || id > 4094) r.err(x, "zone '" + zone.name + "' vlan: " + std::to_string(id) + " (expected a VLAN id 1-4094)");
        else v.push_back(static_cast<uint16_t>(id));
      };
      if (e[k].IsScalar()) one(e[k]);
      else if (e[k].IsSequence()) for (auto x : e[k]) one(x);
      else r.err(e[k], "zone '" + zone.name + "' vlan: expected a VLAN id or a list of them");
      zone.vlans.insert(zone.vlans.end(), v.begin(), v.end());
    }
    for (auto& o : site.zones) if (o.name == zone.name) r.err(e, "zone '" + zone.name + "': duplicate zone name");
    site.zones.push_back(std::move(zone));
  }
}

// A zone defined under zones:, or the built-in "external".
bool zone_known(const Site& site, const std::string& z) {
  for (auto& x : site.zones) if (x.name == z) return true;
  return z == "external";
}

// The zone whose cidrs hold one of `ips` (as the judge finds it), when it is another than `zone`; else "".
std::string zone_by_cidr(const Site& site, const std::vector<IpAddr>& ips, const std::string& zone) {
  ZoneLookup zones(site.zones);
  for (auto& ip : ips) {
    int z = zones.find(ip);
    if (z >= 0 && site.zones[z].name != zone) return site.zones[z].name;
  }
  return "";
}

// The allowed (from, to) zone pairs; both ends must be known zones.
void load_zone_matrix(Reader& r, YAML::Node zm, Site& site) {
  if (!r.optional_list(zm, "zone_matrix", "{from, to}")) return;
  for (auto e : zm) {
    if (!r.is_map(e, "zone_matrix entry")) continue;
    r.keys(e, "zone_matrix entry", {"from", "to", "description"});
    std::string from, to;
    if (e["from"]) r.str(e["from"], "zone_matrix from", from); else r.err(e, "zone_matrix entry: missing key 'from'");
    if (e["to"]) r.str(e["to"], "zone_matrix to", to); else r.err(e, "zone_matrix entry: missing key 'to'");
    if (!from.empty() && !zone_known(site, from)) r.err(e["from"], "zone_matrix from: unknown zone '" + from + "' (define it under zones)");
    if (!to.empty() && !zone_known(site, to)) r.err(e["to"], "zone_matrix to: unknown zone '" + to + "' (define it under zones)");
    site.zone_matrix.emplace_back(from, to);
  }
}

// Roles bound to addresses, AE titles, ports and HL7 applications; devices may add more.
void load_roles(Reader& r, YAML::Node rl, Site& site) {
  if (!r.optional_list(rl, "roles", "{role, ips, ae_titles, ports}")) return;
  for (auto e : rl) {
    if (!r.is_map(e, "role")) continue;
    r.keys(e, "role", {"role", "ips", "ae_titles", "ports", "hl7_apps", "description"});
    Role role;
    if (e["role"]) r.str(e["role"], "role name", role.name); else r.err(e, "role: missing key 'role'");
    std::string what = "role '" + role.name + "'";
    if (e["ips"]) role.addrs = r.cidrs(e["ips"], what + " ips");
    if (e["ae_titles"]) role.ae_titles = r.ae_titles(e["ae_titles"], what + " ae_titles");
    if (e["ports"]) role.ports = r.ports(e["ports"], what + " ports");
    if (e["hl7_apps"]) role.hl7_apps = r.strs(e["hl7_apps"], what + " hl7_apps");
    if (site.role_index(role.name) >= 0) r.err(e, what + ": duplicate role");
    else if (site.roles.size() >= kMaxRoles) r.err(e, what + ": " + kTooManyRoles);
    site.roles.push_back(std::move(role));
  }
}

// Models named by the site file (paths relative to it), before the devices look models up by id.
void load_listed_models(Reader& r, YAML::Node ml, const std::filesystem::path& site_dir, Site& site) {
  namespace fs = std::filesystem;
  if (!ml || ml.IsNull()) return;
  const std::vector<std::string> paths = r.strs(ml, "models");
  const std::vector<Where> listed_at = Reader::wheres(ml);
  for (size_t i = 0; i < paths.size(); ++i) {
    const std::string& p = paths[i];
    const Where at_entry = i < listed_at.size() ? listed_at[i] : Reader::where(ml);
    fs::path mp = fs::path(p).is_absolute() ? fs::path(p) : site_dir / p;
    std::error_code ec;
    if (!fs::exists(mp, ec)) {  // (error_code: a path too long to look up is not found, not a crash)
      YAML::Mark at = ml.Mark();
      if (ml.IsSequence()) for (auto e : ml) if (e.IsScalar() && e.Scalar() == p) { at = e.Mark(); break; }
      r.err_mark(at, "models: file '" + mp.lexically_normal().string() + "' not found");
      continue;
    }
    if (auto m = load_model(mp.lexically_normal().string(), r.errs)) {
      // A model is named by its file: the id a site's devices use finds <id>.yaml.
      if (std::string stem = mp.stem().string(); m->id != stem)
        r.errs.add(m->file, m->id_where.line, m->id_where.column,
                   "model id '" + m->id + "' differs from the file name " + mp.filename().string() + " (expected id '" +
                       stem + "', or the file renamed to " + m->id + ".yaml)");
      if (const Model* first = site.find_model(m->id)) {
        // Two files of one id: which one a device runs would depend on the order of the list.
        if (first->file == m->file)
          r.err_at(at_entry, "models: '" + p + "' is listed twice (expected each model once)");
        else
          r.err_at(at_entry, "models: '" + p + "' declares model id '" + m->id + "', already declared by " + first->file +
                                 " (expected each model id once)");
        continue;
      }
      site.models.push_back(std::move(m));
    } else {
      r.bad_models.push_back(fs::weakly_canonical(mp, ec).string());
      r.bad_model_ids.push_back(mp.stem().string());
    }
  }
}

// What ties a device to traffic: its addresses, MACs or client fingerprints (at least one).
void load_device_binding(Reader& r, YAML::Node e, const std::string& what, Device& d) {
  const size_t errors_before = r.errs.list.size();
  for (auto k : {"ip", "ips"}) {
    if (!e[k]) continue;
    for (auto& c : r.cidrs(e[k], what + " " + k)) {
      if ((c.net.family == 4 && c.bits != 32) || (c.net.family == 6 && c.bits != 128))
        r.err(e[k], what + " " + k + ": expected single addresses, not a network");
      else d.ips.push_back(c.net);
    }
  }
  for (auto k : {"mac", "macs"}) {
    if (!e[k]) continue;
    for (auto& s : r.strs(e[k], what + " mac")) {
      std::array<uint8_t, 6> mac;
      if (parse_mac(s, mac)) d.macs.push_back(mac);
      else r.err(e[k], what + " mac: '" + s + "' (expected six hex bytes, e.g. 00:1a:2b:3c:4d:5e)");
    }
  }
  if (auto fp = e["fingerprint"]; fp && r.is_map(fp, what + " fingerprint")) {
    r.keys(fp, what + " fingerprint", {"dicom_calling_ae", "hl7_msh3"});
    if (fp["dicom_calling_ae"]) d.fp_dicom_calling_ae = r.strs(fp["dicom_calling_ae"], what + " fingerprint dicom_calling_ae");
    if (fp["hl7_msh3"]) d.fp_hl7_msh3 = r.strs(fp["hl7_msh3"], what + " fingerprint hl7_msh3");
  }
  // Not after a bad binding, which has had its own error.
  if (d.ips.empty() && d.macs.empty() && d.fp_dicom_calling_ae.empty() && d.fp_hl7_msh3.empty() &&
      r.errs.list.size() == errors_before)
    r.err(e, what + ": needs 'ip', 'mac' or 'fingerprint' to bind it to traffic");
}

// A model id not among the loaded models is read from <models_dir>/<id>.yaml (or .yml, the other
// spelling `mds2 import -o` accepts), which must declare that id.
void resolve_device_model(Reader& r, YAML::Node at, const std::string& what, const std::string& id,
                          const std::string& models_dir, Site& site) {
  namespace fs = std::filesystem;
  if (site.find_model(id)) return;
  // The models: file of that id failed to load: its errors are told, it is not "not found".
  if (std::find(r.bad_model_ids.begin(), r.bad_model_ids.end(), id) != r.bad_model_ids.end()) return;
  fs::path mp = fs::path(models_dir) / (id + ".yaml");
  std::error_code ec;
  if (!fs::exists(mp, ec)) {
    fs::path yml = fs::path(models_dir) / (id + ".yml");
    if (fs::exists(yml, ec)) mp = yml;
  }
  if (fs::exists(mp, ec)) {
    std::string canonical = fs::weakly_canonical(mp, ec).string();
    if (std::find(r.bad_models.begin(), r.bad_models.end(), canonical) != r.bad_models.end()) return;  // told
    if (auto m = load_model(mp.string(), r.errs)) {
      if (m->id != id)
        r.err(at, what + " model: " + mp.string() + " declares id '" + m->id + "', not '" + id + "'");
      else site.models.push_back(std::move(m));
    } else {
      r.bad_models.push_back(canonical);
    }
  } else {
    r.err(at, what + " model: model '" + id + "' not found (looked in the site's models: list, " +
                  mp.string() + " and " + id + ".yml there)");
  }
}

std::string address_text(const IpAddr& a) {
  std::string s;
  a.append_to(s);
  return s;
}

// The devices: binding, AE titles, roles (created when new), zone and model.
void load_devices(Reader& r, YAML::Node dl, const std::string& models_dir, Site& site) {
  if (!r.optional_list(dl, "devices", "{name, model, ip, ...}")) return;
  struct FpAe { size_t device; std::string ae; YAML::Mark at; };
  std::vector<FpAe> fp_aes;  // each device's dicom_calling_ae fingerprints, checked once all are loaded
  // The devices so far by name and by address: a site of tens of thousands of devices is checked
  // in linear time.
  std::unordered_map<std::string, size_t> by_name;
  std::unordered_map<IpKey, size_t, IpKeyHash> by_ip;
  for (auto e : dl) {
    if (!r.is_map(e, "device")) continue;
    r.keys(e, "device", {"name", "model", "ip", "ips", "mac", "macs", "ae_title", "ae_titles", "hl7_apps", "zone",
                         "roles", "enable", "description", "fingerprint"});
    Device d;
    if (e["name"]) r.str(e["name"], "device name", d.name); else r.err(e, "device: missing key 'name'");
    std::string what = "device '" + d.name + "'";
    load_device_binding(r, e, what, d);
    for (auto k : {"ae_title", "ae_titles"}) if (e[k]) { auto v = r.ae_titles(e[k], what + " ae_title"); d.ae_titles.insert(d.ae_titles.end(), v.begin(), v.end()); }
    if (e["hl7_apps"]) d.hl7_apps = r.strs(e["hl7_apps"], what + " hl7_apps");
    if (e["roles"]) {
      d.roles = r.strs(e["roles"], what + " roles");
      for (auto& ro : d.roles) if (site.role_index(ro) < 0) {
        // A device may be the only member of a role; create it.
        if (site.roles.size() >= kMaxRoles) r.err(e["roles"], what + " role '" + ro + "': " + kTooManyRoles);
        Role nr; nr.name = ro; site.roles.push_back(nr);
      }
    }
    if (e["enable"]) { d.enable = r.strs(e["enable"], what + " enable"); d.enable_at = Reader::wheres(e["enable"]); }
    if (e["zone"]) {
      r.str(e["zone"], what + " zone", d.zone);
      if (!zone_known(site, d.zone)) r.err(e["zone"], what + " zone: unknown zone '" + d.zone + "' (define it under zones)");
      else if (std::string other = zone_by_cidr(site, d.ips, d.zone); !other.empty())
        r.err(e["zone"], what + " zone: '" + d.zone + "', but its address lies in zone '" + other + "' (" +
                             "zones are found from addresses: fix the device's zone or the zones' cidrs)");
    }
    if (!e["model"]) r.err(e, what + ": missing key 'model' (the device model id, e.g. acme-ct)");
    else if (r.str(e["model"], what + " model", d.model_id))
      resolve_device_model(r, e["model"], what, d.model_id, models_dir, site);
    if (by_name.count(d.name)) r.err(e, what + ": duplicate device name");
    // An address identifies one device: with two on it, the judge and the report would give every
    // flow of that address to the first, and the other would never be seen.
    for (const IpAddr& ip : d.ips)
      if (auto o = by_ip.find(IpKey(ip)); o != by_ip.end()) {
        YAML::Node at = e["ip"] ? e["ip"] : e["ips"];
        r.err_mark(Reader::mark_of(at, address_text(ip)), what + ": address " + address_text(ip) +
                                                              " is already that of device '" +
                                                              site.devices[o->second].name +
                                                              "' (an address identifies one device)");
      }
    by_name.emplace(d.name, site.devices.size());
    for (const IpAddr& ip : d.ips) by_ip.emplace(IpKey(ip), site.devices.size());
    // So does a fingerprint: with two devices showing it, the first listed would be bound to the
    // first address that shows it and the other never.
    if (YAML::Node fp = e["fingerprint"]; fp && fp.IsMap())
      for (auto [key, mine] : {std::pair{"dicom_calling_ae", &d.fp_dicom_calling_ae}, std::pair{"hl7_msh3", &d.fp_hl7_msh3}})
        for (const std::string& v : *mine)
          for (auto& o : site.devices) {
            const auto& theirs = std::string_view(key) == "dicom_calling_ae" ? o.fp_dicom_calling_ae : o.fp_hl7_msh3;
            if (std::find(theirs.begin(), theirs.end(), v) != theirs.end())
              r.err_mark(Reader::mark_of(fp[key], v), what + " fingerprint " + key + ": '" + v +
                                                          "' is already that of device '" + o.name +
                                                          "' (a fingerprint identifies one device)");
          }
    if (YAML::Node fp = e["fingerprint"]; fp && fp.IsMap() && fp["dicom_calling_ae"])
      for (const std::string& v : d.fp_dicom_calling_ae)
        fp_aes.push_back({site.devices.size(), v, Reader::mark_of(fp["dicom_calling_ae"], v)});
    site.devices.push_back(std::move(d));
  }
  // A calling AE fingerprint that the site binds to a role or to another device: the judge would
  // bind this device to any address using it, and report that address for spoofing the other's.
  for (const FpAe& f : fp_aes) {
    const std::string what = "device '" + site.devices[f.device].name + "' fingerprint dicom_calling_ae: '" + f.ae + "'";
    for (const Role& ro : site.roles)
      if (std::find(ro.ae_titles.begin(), ro.ae_titles.end(), f.ae) != ro.ae_titles.end())
        r.err_mark(f.at, what + " is an AE title of role '" + ro.name + "' (expected an AE title only this device uses)");
    for (size_t i = 0; i < site.devices.size(); ++i) {
      const Device& o = site.devices[i];
      if (i != f.device && std::find(o.ae_titles.begin(), o.ae_titles.end(), f.ae) != o.ae_titles.end())
        r.err_mark(f.at, what + " is the AE title of device '" + o.name + "' (expected an AE title only this device uses)");
    }
  }
}

// Detection thresholds (docs/alerts.md); a count of 0 is taken as 1, but alert_limit 0 turns the limit off.
void load_thresholds(Reader& r, YAML::Node t, Thresholds& th) {
  if (!r.optional_map(t, "thresholds")) return;
  r.keys(t, "thresholds", {"fanout_hosts", "scan_ports", "scan_window_s", "scan_realert_s", "reject_burst", "reject_window_s", "alert_limit", "alert_limit_window_s"});
  uint64_t v;
  if (t["fanout_hosts"] && r.uint(t["fanout_hosts"], "thresholds fanout_hosts", 100000, v)) th.fanout_hosts = static_cast<uint32_t>(std::max<uint64_t>(v, 1));
  if (t["scan_ports"] && r.uint(t["scan_ports"], "thresholds scan_ports", 65535, v)) th.scan_ports = static_cast<uint32_t>(std::max<uint64_t>(v, 1));
  // A window of 0 would count nothing; one second is the shortest.
  if (t["scan_window_s"] && r.uint(t["scan_window_s"], "thresholds scan_window_s", 86400, v)) th.scan_window_s = static_cast<uint32_t>(std::max<uint64_t>(v, 1));
  if (t["scan_realert_s"] && r.uint(t["scan_realert_s"], "thresholds scan_realert_s", 7 * 86400, v)) th.scan_realert_s = static_cast<uint32_t>(v);
  if (t["reject_burst"] && r.uint(t["reject_burst"], "thresholds reject_burst", 100000, v)) th.reject_burst = static_cast<uint32_t>(std::max<uint64_t>(v, 1));
  if (t["reject_window_s"] && r.uint(t["reject_window_s"], "thresholds reject_window_s", 86400, v)) th.reject_window_s = static_cast<uint32_t>(v);
  if (t["alert_limit"] && r.uint(t["alert_limit"], "thresholds alert_limit", 10000000, v)) th.alert_limit = static_cast<uint32_t>(v);
  if (t["alert_limit_window_s"] && r.uint(t["alert_limit_window_s"], "thresholds alert_limit_window_s", 86400, v)) th.alert_limit_window_s = static_cast<uint32_t>(std::max<uint64_t>(v, 1));
}

// Per-rule severity overrides, keyed by the rule ids of docs/alerts.md.
void load_severity(Reader& r, YAML::Node sv, Site& site) {
  if (!r.optional_map(sv, "severity")) return;
  std::vector<std::string> seen;
  for (auto it = sv.begin(); it != sv.end(); ++it) {
    if (!r.unique_key(seen, it->first, "severity")) continue;
    std::string s;
    Severity level;
    if (!kRules.count(it->first.Scalar())) {
      r.err(it->first, "severity: unknown rule '" + it->first.Scalar() + "' (see docs/alerts.md for the rule ids)");
      continue;
    }
    if (!r.str(it->second, "severity " + it->first.Scalar(), s)) continue;
    if (!parse_severity(s, level)) { r.err(it->second, "severity: '" + s + "' (expected info, low, medium, high or critical)"); continue; }
    site.severity_overrides[it->first.Scalar()] = level;
  }
}

// Cross-references: each device points at its model (and its enable: entries at the model's flows),
// and every role and zone a bound model speaks of must exist in the site. The errors are located in the model's file, naming the site file.
void bind_models(Reader& r, Site& site) {
  static const std::set<std::string, std::less<>> builtin = {"any", "any_internal", "external"};
  const std::string& path = r.file;
  std::set<const Model*> checked;  // a model several devices run is checked (and its errors told) once
  for (auto& d : site.devices) {
    for (auto& m : site.models) {
      if (m->id != d.model_id) continue;
      d.model = m.get();
      // The vendor's default AE titles hold for a device the site gives none of its own.
      if (d.ae_titles.empty()) d.ae_titles = m->dicom.ae_titles;
      if (!checked.insert(m.get()).second) continue;
      for (auto& f : m->flows) {
        if (builtin.count(f.peer_role)) continue;
        f.role_index = site.role_index(f.peer_role);
        if (f.role_index < 0)
          r.errs.add(m->file, f.role_where.line, f.role_where.column,
                     "flow '" + f.id + "': unknown role '" + f.peer_role + "' (not bound in " + path +
                         " roles; expected a site role or any / any_internal / external)");
      }
      for (auto& ro : m->hl7.peer_roles)
        if (!builtin.count(ro) && site.role_index(ro) < 0)
          r.errs.add(m->file, m->hl7.where.line, m->hl7.where.column, "hl7 peer_roles: unknown role '" + ro + "' (not bound in " + path + " roles)");
      // role:<name> among the C-MOVE destinations names the AE titles of a site role: one the site
      // does not bind would leave every C-MOVE to that role undeclared.
      for (size_t i = 0; i < m->dicom.move_destinations.size(); ++i) {
        const std::string& x = m->dicom.move_destinations[i];
        if (x.rfind("role:", 0) != 0 || site.role_index(std::string_view(x).substr(5)) >= 0) continue;
        Where w = i < m->dicom.move_destinations_at.size() ? m->dicom.move_destinations_at[i] : m->dicom.where;
        r.errs.add(m->file, w.line, w.column, "dicom c_move allowed_destinations: unknown role '" + x.substr(5) +
                                                  "' (not bound in " + path + " roles; expected role:<a site role>)");
      }
      for (auto [list, at, key] : {std::tuple{&m->zones_allowed, &m->zones_allowed_at, "allowed"},
                                   std::tuple{&m->zones_never, &m->zones_never_at, "never"}})
        for (size_t i = 0; i < list->size(); ++i) {
          const std::string& z = (*list)[i];
          if (zone_known(site, z)) continue;
          Where w = i < at->size() ? (*at)[i] : m->zones_where;
          std::string zones = "external";
          for (auto& x : site.zones) zones += ", " + x.name;
          r.errs.add(m->file, w.line, w.column, std::string("zones ") + key + ": unknown zone '" + z + "' (not defined in " +
                                                    path + "; expected one of: " + zones + ")");
        }
    }
    // enable: names flows of the device's model; a misspelt one would leave the flow disabled.
    if (!d.model) continue;
    for (size_t i = 0; i < d.enable.size(); ++i) {
      bool found = false;
      for (auto& f : d.model->flows) found |= f.id == d.enable[i];
      if (found) continue;
      std::string off;
      for (auto& f : d.model->flows)
        if (!f.default_enabled) off += (off.empty() ? "" : ", ") + f.id;
      Where w = i < d.enable_at.size() ? d.enable_at[i] : Where{};
      r.errs.add(path, w.line, w.column, "device '" + d.name + "' enable: model '" + d.model_id + "' has no flow '" +
                                             d.enable[i] + "' (expected " +
                                             (off.empty() ? std::string("nothing: the model ships every flow enabled")
                                                          : "a flow it ships disabled: " + off) + ")");
    }
  }
}

}  // namespace

std::unique_ptr<Site> load_site(const std::string& path, const std::string& models_dir_in, Errors& errs) {
  namespace fs = std::filesystem;
  Reader r{path, errs};
  YAML::Node root;
  if (!load_yaml(path, errs, root)) return nullptr;
  if (!r.is_document(root, "site")) return nullptr;
  auto site = std::make_unique<Site>();
  site->file = path;
  r.keys(root, "site", {"schema", "site", "models", "internal_networks", "subnets", "zones", "zone_matrix", "roles",
                        "devices", "thresholds", "severity"});
  load_site_header(r, root, *site);
  load_zones(r, root["zones"], *site);
  load_zone_matrix(r, root["zone_matrix"], *site);
  load_roles(r, root["roles"], *site);
  // Paths under models: are relative to the site file; models named only by id are in models_dir.
  fs::path site_dir = fs::path(path).parent_path();
  std::string models_dir = models_dir_in.empty() ? (site_dir / ".." / "devices").lexically_normal().string() : models_dir_in;
  load_listed_models(r, root["models"], site_dir, *site);
  load_devices(r, root["devices"], models_dir, *site);
  load_thresholds(r, root["thresholds"], site->thresholds);
  load_severity(r, root["severity"], *site);
  bind_models(r, *site);
  if (!r.ok()) return nullptr;
  return site;
}

}  // namespace medmon::policy
