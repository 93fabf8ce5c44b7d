#pragma once
// The policy model: device models (what a manufacturer declared, in roles) and the site binding
// (zones, roles and devices bound to addresses). Loaded from YAML with every error located at
// file:line:column; then compiled into lookup tables for per-flow evaluation.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sensor/common/dicom_user_identity.h"
#include "sensor/common/types.h"

namespace medmon::policy {

struct LoadError {
  std::string file;
  int line = 0, column = 0;  // 1-based; 0 = whole file
  std::string message;
  std::string format() const;  // "file:line:column: message"
};

struct Errors {
  std::vector<LoadError> list;
  void add(std::string file, int line, int column, std::string msg) {
    list.push_back({std::move(file), line, column, std::move(msg)});
  }
  bool empty() const { return list.empty(); }
};

struct Cidr {
  IpAddr net;
  uint8_t bits = 0;
  static bool parse(std::string_view text, Cidr& out);  // "10.0.0.0/8", "fd00::/8", "10.1.2.3"
  bool contains(const IpAddr& a) const;
};

// Hashable key for an address.
struct IpKey {
  std::array<uint8_t, 16> b{};
  uint8_t family = 0;
  explicit IpKey(const IpAddr& a) : b(a.b), family(a.family) {}
  friend bool operator==(const IpKey& x, const IpKey& y) { return x.family == y.family && x.b == y.b; }
};
struct IpKeyHash {
  size_t operator()(const IpKey& k) const {
    uint64_t h = 1469598103934665603ull ^ k.family;
    for (auto c : k.b) { h ^= c; h *= 1099511628211ull; }
    return static_cast<size_t>(h);
  }
};

enum class Tls : uint8_t { any, required, optional, forbidden };
enum class Initiator : uint8_t { device, peer, any };
enum class Direction : uint8_t { any, inbound, outbound };
enum class Severity : uint8_t { info, low, medium, high, critical };
const char* severity_name(Severity s);
bool parse_severity(std::string_view s, Severity& out);
// A model's DICOM user identity type name as the A-ASSOCIATE-RQ's type number (PS3.7 D.3.3.7):
// none 0, username 1, username_passcode (or username_password) 2, kerberos 3, saml 4, jwt 5; -1
// for any other name. The names are the DICOM events' (sensor/common/dicom_user_identity.h).
using medmon::user_identity_code;

struct Where {
  int line = 0, column = 0;
};

// A server port, or an inclusive range of them (vendors declare "49152-65535" for dynamic ports).
struct PortRange {
  uint16_t lo = 0, hi = 0;
  bool contains(uint16_t p) const { return p >= lo && p <= hi; }
  bool operator==(const PortRange&) const = default;
};
inline bool ports_contain(const std::vector<PortRange>& ports, uint16_t p) {
  for (const PortRange& r : ports)
    if (r.contains(p)) return true;
  return false;
}

struct FlowRule {
  std::string id;
  Initiator initiator = Initiator::device;
  std::string peer_role;        // a site role, or any / any_internal / external
  int role_index = -1;          // compiled: index into Site::roles, -1 = builtin
  uint8_t l4 = 0;               // 0 = any, 6 tcp, 17 udp, 1 icmp
  std::vector<PortRange> ports;  // server ports; empty = any
  std::vector<std::string> apps;  // lowercase; empty = any
  Tls tls = Tls::any;
  int phi = -1;                 // -1 unspecified, 0 none, 1 expected
  bool default_enabled = true;
  std::vector<std::string> source;
  std::string description;
  Where where, role_where;
};

struct ForbiddenApp {
  std::vector<std::string> apps;
  Direction direction = Direction::any;
  std::vector<std::string> source;  // MDS2 ids / documents
};

struct AnswerInfo {
  std::string answer, detail, iec, nist, iso;
};

struct DicomModel {
  bool present = false;
  std::vector<std::string> ae_titles;        // local AEs declared by the vendor (often site-configured)
  std::vector<std::string> sop_classes;      // allowed abstract syntaxes; empty = not checked
  std::vector<std::string> dimse_in, dimse_out;  // commands as SCP / as SCU; empty lists are checked
  bool dimse_checked = false;                // dimse_in/dimse_out given
  bool c_move_allowed = false;
  int8_t c_get_allowed = -1;                   // c_get.allowed: -1 not given, 0 false, 1 true
  std::vector<std::string> move_destinations;  // AE titles, or "role:<name>"
  std::vector<Where> move_destinations_at;     // each one's place in the file
  std::vector<std::string> user_identity;      // allowed types: none, username, username_password, kerberos, saml, jwt
  std::vector<std::string> source;
  Where where;
};

struct Hl7Model {
  bool present = false;
  std::vector<std::string> peer_roles;   // who may send to / receive from the device
  std::vector<std::string> inbound_types, outbound_types;  // "ORM^O01" or "ORM" (any trigger)
  std::vector<std::string> source;
  Where where;
};

struct Model {
  std::string id, file, manufacturer, description;
  // mds2_derived switches, indexed like mds2::derived_switches(): -1 unknown, 0 false, 1 true.
  std::vector<int8_t> sw;
  std::vector<FlowRule> flows;
  std::vector<ForbiddenApp> forbidden;    // explicit plus those derived from RMOT-1, SAHD-7, SAHD-9
  DicomModel dicom;
  Hl7Model hl7;
  std::vector<std::string> zones_allowed, zones_never;
  Where zones_where;
  std::vector<Where> zones_allowed_at, zones_never_at;  // each name's place in the file
  Where id_where;
  std::vector<Where> sw_where;  // each mds2_derived switch's key, like sw
  std::vector<std::string> remote_endpoints;  // server names it may reach outside the site ("*.x" = below x)
  std::vector<std::string> impl_class_uids, impl_version_names, hl7_msh3;
  std::vector<std::string> tls_ja3, tls_ja3s;  // lower-case MD5 hex
  std::map<std::string, AnswerInfo> answers;  // raw MDS2 answers, when imported
  std::vector<std::pair<std::vector<std::string>, std::string>> conflicts;

  int8_t sw_value(std::string_view name) const;  // -1 / 0 / 1
};

struct Zone {
  std::string name;
  std::vector<Cidr> cidrs;
  std::vector<uint16_t> vlans;
};

// The zone of an address, for the loader's check of a device's `zone:` and for the judge. The rule:
// the zone whose CIDR holding the address has the longest prefix; between prefixes of one length,
// the one added first (zones in the order the site lists them, each zone's cidrs in order). An IPv4
// CIDR never holds an IPv6 address, nor the reverse.
class ZoneLookup {
 public:
  ZoneLookup() = default;
  explicit ZoneLookup(const std::vector<Zone>& zones);  // every zone's cidrs, zone i as i
  void add(const Cidr& c, int zone);
  int find(const IpAddr& ip) const;  // the zone added with the prefix; -1 when none holds ip

 private:
  std::vector<std::pair<Cidr, int>> by_prefix_;  // longest prefix first, in the order added within one length
};

struct Role {
  std::string name;
  std::vector<Cidr> addrs;              // single IPs are /32 or /128
  std::vector<std::string> ae_titles;
  std::vector<uint16_t> ports;          // the role's real service ports (override model defaults)
  std::vector<std::string> hl7_apps;    // MSH-3 sending applications
};

struct Device {
  std::string name, model_id;
  const Model* model = nullptr;
  std::vector<IpAddr> ips;
  std::vector<std::array<uint8_t, 6>> macs;
  std::vector<std::string> ae_titles, hl7_apps, roles, enable;
  std::vector<Where> enable_at;  // each enable entry's place in the site file
  std::string zone;
  // Passive binding for devices whose address is not fixed: the first flow whose client shows
  // one of these binds its address to the device (for judging, and in the headers of the events
  // written after that flow was judged).
  std::vector<std::string> fp_dicom_calling_ae, fp_hl7_msh3;
};

struct Thresholds {
  uint32_t fanout_hosts = 32;     // distinct peers contacted by one device ...
  uint32_t scan_ports = 24;       // distinct ports tried on one host by one device ...
  uint32_t scan_window_s = 300;   // ... within this many seconds
  uint32_t scan_realert_s = 3600; // a further fan-out or scan of the same is written after this long
  uint32_t reject_burst = 5;      // DICOM association rejects from one source ...
  uint32_t reject_window_s = 60;  // ... within this many seconds
  uint32_t alert_limit = 100;     // alerts of one rule for one device written ... (0 = no limit)
  uint32_t alert_limit_window_s = 60;  // ... per this many seconds of packet time
};

struct Site {
  std::string name, file;
  bool production = true;
  std::vector<Cidr> internal;
  std::vector<Cidr> subnets;  // IPv4 subnets of /30 or wider: their last address is their broadcast
  std::vector<Zone> zones;
  std::vector<std::pair<std::string, std::string>> zone_matrix;  // allowed (from, to) pairs
  std::vector<Role> roles;
  std::vector<Device> devices;
  std::vector<std::unique_ptr<Model>> models;
  Thresholds thresholds;
  std::map<std::string, Severity> severity_overrides;  // rule id -> severity

  const Model* find_model(std::string_view id) const;
  int role_index(std::string_view name) const;
};

// Loads one device model. Returns nullptr when errors were found (all of them are in errs).
std::unique_ptr<Model> load_model(const std::string& path, Errors& errs);
// Loads a site and the models its devices name: the site's `models:` paths (relative to the site
// file) and <models_dir>/<id>.yaml (models_dir empty: <site dir>/../devices). Validates every
// cross-reference (roles, zones, models). Returns nullptr when errors were found.
std::unique_ptr<Site> load_site(const std::string& path, const std::string& models_dir, Errors& errs);

}  // namespace medmon::policy
