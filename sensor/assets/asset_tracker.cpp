#include "sensor/assets/asset_tracker.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace medmon {

namespace {

// Decodes the JSON string starting right after its opening quote at s[p]; stops at the
// closing quote. Only \" \\ \/ \n \t \r \b \f and \u00XX (what JsonWriter writes) are expected.
bool read_json_string(std::string_view s, size_t p, std::string& out) {
  out.clear();
  while (p < s.size()) {
    char c = s[p++];
    if (c == '"') return true;
    if (c != '\\') { out.push_back(c); continue; }
    if (p >= s.size()) return false;
    char e = s[p++];
    switch (e) {
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'u': {
        if (p + 4 > s.size()) return false;
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
          char h = s[p++];
          v = v * 16 + static_cast<unsigned>((h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : 0);
        }
        out.push_back(v < 0x100 ? static_cast<char>(v) : '?');
        break;
      }
      default: out.push_back(e);
    }
  }
  return false;
}

// A member name field_in looks for: a literal, checked at compile time to fit its stack buffer.
struct FieldKey {
  static constexpr size_t kMax = 60;
  template <size_t N>
  consteval FieldKey(const char (&k)[N]) : name(k, N - 1) {
    static_assert(N - 1 <= kMax, "field_in keys are at most 60 characters");
  }
  std::string_view name;
};

// Value of string field `key` within s[from, to); false when absent.
bool field_in(std::string_view s, size_t from, size_t to, FieldKey key, std::string& out) {
  if (from >= s.size()) return false;
  to = std::min(to, s.size());
  // The pattern "key":" on the stack: keys are short literals, and this runs per field of
  // every operation of a DICOM event.
  char buf[FieldKey::kMax + 4];
  buf[0] = '"';
  std::memcpy(buf + 1, key.name.data(), key.name.size());
  std::memcpy(buf + 1 + key.name.size(), "\":\"", 3);
  std::string_view pat(buf, key.name.size() + 4);
  // Searched within [from, to) only: a DICOM event lists hundreds of operations and each is
  // asked for its fields; a search to the end of the line made that quadratic.
  size_t p = s.substr(0, to).find(pat, from);
  if (p == std::string_view::npos) return false;
  return read_json_string(s, p + pat.size(), out);
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\0')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) v.remove_suffix(1);
  return v;
}

// Every value a device's record keeps (fields, list entries, identity members) is cut to this
// many bytes, at a UTF-8 character boundary: a peer sending megabyte AE titles or HL7 application
// names would otherwise make every asset event of the device megabytes long.
constexpr size_t kMaxValue = 128;
std::string_view cap(std::string_view v) {
  if (v.size() <= kMaxValue) return v;
  size_t n = kMaxValue;
  while (n > 0 && (static_cast<unsigned char>(v[n]) & 0xc0) == 0x80) --n;  // v[n] continues a character
  return v.substr(0, n);
}

// A DHCP option list ("1,3,6,15") is matched whole by fingerprint databases: it has its own
// bound, room for 255 codes of three digits. A longer one (pieces of option 55 joined, RFC 3396)
// is cut after its last whole code and ends in ",..." so it cannot pass for a real list.
constexpr size_t kMaxFingerprint = 1024;
std::string_view cap_fingerprint(std::string_view v, std::string& buf) {
  v = trim(v);
  if (v.size() <= kMaxFingerprint) return v;
  size_t comma = v.rfind(',', kMaxFingerprint - 4);
  buf.assign(v.substr(0, comma == std::string_view::npos ? 0 : comma));
  buf += ",...";
  return buf;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return r;
}

// The event's `ts` (RFC 3339, UTC, as EventOutput writes it) back to packet time.
Timestamp event_time(std::string_view line) {
  std::string t;
  if (!field_in(line, 0, 64, "ts", t) || t.size() < 20) return {};
  auto num = [&](size_t pos, size_t n) {
    int64_t v = 0;
    for (size_t i = pos; i < pos + n && i < t.size(); ++i) v = v * 10 + (t[i] >= '0' && t[i] <= '9' ? t[i] - '0' : 0);
    return v;
  };
  int64_t y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2);
  int64_t us = t.size() >= 27 && t[19] == '.' ? num(20, 6) : 0;
  // Days from civil (Howard Hinnant's algorithm): no timegm, no time zone.
  y -= mo <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = era * 146097 + doe - 719468;
  return Timestamp{((days * 24 + h) * 60 + mi) * 60 * 1000000 + s * 1000000 + us};
}

bool is_infrastructure_broadcast(const IpAddr& ip) {
  if (ip.family == 4) {
    if (ip.b[0] >= 224) return true;  // multicast, reserved, limited broadcast
    if (ip.b[0] == 0) return true;
  } else if (ip.family == 6) {
    if (ip.b[0] == 0xff) return true;
  }
  return false;
}

}  // namespace

AssetTracker::AssetTracker(const OuiTable* oui, const ImplTable* impl, AssetOptions opt)
    : oui_(oui), impl_(impl), opt_(opt) {}

bool AssetTracker::is_internal(const IpAddr& ip) {
  const auto& b = ip.b;
  if (ip.family == 4) {
    if (b[0] == 10 || b[0] == 127) return true;
    if (b[0] == 172 && (b[1] & 0xF0) == 16) return true;
    if (b[0] == 192 && b[1] == 168) return true;
    if (b[0] == 169 && b[1] == 254) return true;
    if (b[0] == 100 && (b[1] & 0xC0) == 64) return true;  // CGNAT, used inside some hospitals
    return false;
  }
  if (ip.family == 6) {
    if ((b[0] & 0xFE) == 0xFC) return true;               // ULA fc00::/7
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80) return true;  // link-local
    bool loop = b[15] == 1;
    for (int i = 0; i < 15 && loop; ++i) loop = b[i] == 0;
    return loop;
  }
  return false;
}

const AssetTracker::Device* AssetTracker::find(const IpAddr& ip) const {
  auto it = index_.find(key_of(ip));
  return it == index_.end() ? nullptr : &devices_[it->second];
}

void AssetTracker::mark(Device& d, const char* why) {
  if (quiet_) return;
  if (d.changes.empty()) dirty_.push_back(index_.at(key_of(d.ip)));
  for (const char* c : d.changes) if (c == why) return;
  d.changes.push_back(why);
}

bool AssetTracker::add_unique(Device& d, std::vector<std::string>& list, std::string_view v, const char* why) {
  v = cap(trim(v));
  if (v.empty()) return false;
  for (auto& x : list) if (x == v) return false;
  if (list.size() >= opt_.max_list) { ++list_full_; return false; }
  list.emplace_back(v);
  mark(d, why);
  return true;
}

void AssetTracker::set_field(Device& d, std::string& field, std::string_view v, const char* why) {
  v = cap(trim(v));  // cut before comparing: a long value is not new every time it is seen
  if (v.empty() || field == v) return;
  field.assign(v);
  mark(d, why);
}

AssetTracker::Device* AssetTracker::device(const IpAddr& ip, Timestamp ts, bool force) {
  if (!ip.family || is_infrastructure_broadcast(ip)) return nullptr;
  auto k = key_of(ip);
  auto it = index_.find(k);
  if (it != index_.end()) {
    Device& d = devices_[it->second];
    if (d.withdrawn) {
      // Seen again after its DHCP exchange was declined: a device from now on.
      d.withdrawn = false;
      --withdrawn_;
      d.first_seen = d.last_seen = ts;
      d.changes.clear();
      mark(d, "new");
      mark(d, "mac");  // whatever an earlier event said of its MAC no longer holds
    }
    if (ts > d.last_seen) d.last_seen = ts;
    return &d;
  }
  if (!force && opt_.internal_only && !is_internal(ip)) return nullptr;
  if (devices_.size() >= opt_.max_devices) { ++dropped_; return nullptr; }
  index_.emplace(k, devices_.size());
  devices_.emplace_back();
  Device& d = devices_.back();
  d.ip = ip;
  d.first_seen = d.last_seen = ts;
  mark(d, "new");
  bind(d);
  return &d;
}

// Device name and zone from the policy's header annotation, model from the binder.
void AssetTracker::bind(Device& d) {
  // What the policy in force says, empty where it says nothing: a device a reloaded site no
  // longer names loses its name, zone and model.
  std::string device, zone, model;
  if (annotator_) {
    d.bound_generation = annotator_->annotation_generation();
    scratch_.clear();
    JsonWriter w(scratch_);
    w.begin_object();
    EventEndpoints ep;
    ep.src = ep.dst = d.ip;
    ep.src_mac = ep.dst_mac = d.mac;  // names a device bound by mac too
    annotator_->annotate(ep, w);
    w.end_object();
    field_in(scratch_, 0, scratch_.size(), "src_device", device);
    field_in(scratch_, 0, scratch_.size(), "src_zone", zone);
  }
  if (binder_) model = binder_(d.ip, d.mac);
  auto put = [&](std::string& field, std::string_view v) {
    v = cap(trim(v));
    if (field == v) return;
    field.assign(v);
    mark(d, "binding");
  };
  put(d.device, device);
  put(d.zone, zone);
  put(d.model, model);
}

namespace {
uint64_t mac_key(const std::array<uint8_t, 6>& mac) {
  uint64_t k = 0;
  for (uint8_t b : mac) k = k << 8 | b;
  return k;
}
}  // namespace

void AssetTracker::set_mac(Device& d, const std::array<uint8_t, 6>& mac) {
  d.mac = mac;
  d.mac_vendor.clear();
  if (oui_) d.mac_vendor.assign(oui_->vendor(mac));
  mark(d, "mac");
  bind(d);  // a device bound by mac: its name, zone and model
  dhcp_names(d, mac_key(mac));
}

void AssetTracker::frame_mac(Device& d, const std::array<uint8_t, 6>& mac, Timestamp start) {
  bool had_frames = !d.mac_from_dhcp && std::any_of(d.mac.begin(), d.mac.end(), [](uint8_t b) { return b != 0; });
  if (!had_frames) {  // its first MAC, or one only a DHCP exchange named
    set_mac(d, mac);
    return;
  }
  if (mac != d.previous_mac) {
    // Another device took the address: what the inventory knew of it was the former device's.
    // Its record starts again; the event says which MAC had the address (`previous_mac`).
    services_ -= d.offered.size() + d.used.size();
    d.offered.clear();
    d.used.clear();
    d.vlans.clear();
    d.ae_titles.clear();
    for (std::string* f : {&d.impl_class_uid, &d.impl_version, &d.product, &d.product_vendor, &d.manufacturer,
                           &d.model_name, &d.software_versions, &d.station_name, &d.device_serial})
      f->clear();
    d.hl7_apps.clear();
    d.identities.clear();
    d.sni.clear();
    d.tls_versions.clear();
    d.dns_names.clear();
    d.flows = d.bytes = 0;
    if (start.usec) d.first_seen = start;
    d.previous_mac = d.mac;
    d.mac_flaps = 0;
    d.flap_untold = false;
    mark(d, "replaced");
    set_mac(d, mac);
    return;
  }
  // Back to the MAC it had before: the two take turns at the address. The first turn back is
  // told (`mac`, `mac_flaps` 1); the turns after change the record without an event of their
  // own, and the last state is told when the inventory finishes, if no other change told it.
  d.previous_mac = d.mac;
  ++d.mac_flaps;
  ++mac_flaps_;
  if (d.mac_flaps == 1) {
    set_mac(d, mac);
    return;
  }
  quiet_ = true;
  set_mac(d, mac);
  quiet_ = false;
  if (!d.flap_untold) {
    d.flap_untold = true;
    flapped_.push_back(index_.at(key_of(d.ip)));
  }
}

// The names MAC `mac` gave itself over DHCP, when it is the device's MAC and the exchange tied
// the device's address to it; none otherwise, so a device whose address another MAC took, or one
// whose frames carry a router's MAC, keeps no names of a MAC that is not (or not only) its own.
void AssetTracker::dhcp_names(Device& d, uint64_t mac) {
  static const DhcpNames kNone;
  const DhcpNames* n = &kNone;
  if (auto it = dhcp_by_mac_.find(mac); it != dhcp_by_mac_.end() && mac == mac_key(d.mac) &&
                                        std::ranges::find(it->second.address, d.ip) != it->second.address.end())
    n = &it->second;
  bool changed = false;
  // Assigned as they are, empty ones too (set_field keeps a field a new value leaves empty);
  // the table's values are bounded already.
  for (auto [field, v] : {std::pair{&d.hostname, &n->hostname}, std::pair{&d.dhcp_vendor_class, &n->vendor_class},
                          std::pair{&d.dhcp_fingerprint, &n->fingerprint}, std::pair{&d.dhcp_fingerprint6, &n->fingerprint6}})
    if (*field != *v) { *field = *v; changed = true; }
  if (changed) mark(d, "dhcp");
}

// The entry of a MAC, made the most recently seen; a new one takes the place of the least
// recently seen when the table is full, so a flood of made-up MACs does not stop the naming of
// the clients that come after it.
AssetTracker::DhcpNames& AssetTracker::dhcp_entry(uint64_t mac) {
  if (auto it = dhcp_by_mac_.find(mac); it != dhcp_by_mac_.end()) {
    dhcp_recent_.splice(dhcp_recent_.begin(), dhcp_recent_, it->second.recent);
    return it->second;
  }
  if (!dhcp_by_mac_.empty() && dhcp_by_mac_.size() >= opt_.max_dhcp_clients) {
    dhcp_by_mac_.erase(dhcp_recent_.back());
    dhcp_recent_.pop_back();
    ++dhcp_evicted_;
  }
  dhcp_recent_.push_front(mac);
  DhcpNames& n = dhcp_by_mac_[mac];
  n.recent = dhcp_recent_.begin();
  return n;
}

void AssetTracker::rebind_all() {
  for (auto& d : devices_) bind(d);
}

// Service names come from dissectors and nDPI's protocol table: a few hundred at most.
constexpr size_t kMaxNames = 4096;

uint16_t AssetTracker::intern(std::string_view name) {
  if (names_.empty()) {
    names_.emplace_back("other");  // index 0: beyond kMaxNames
    name_index_.emplace("other", 0);
  }
  std::string key(name);
  if (auto it = name_index_.find(key); it != name_index_.end()) return it->second;
  if (names_.size() >= kMaxNames) return 0;
  auto id = static_cast<uint16_t>(names_.size());
  names_.push_back(key);
  name_index_.emplace(std::move(key), id);
  return id;
}

void AssetTracker::add_service(std::vector<Service>& list, uint16_t name, uint8_t proto, uint16_t port, bool& added,
                               bool& full) {
  for (auto& s : list)
    if (s.proto == proto && s.port == port && s.name == name) { ++s.flows; return; }
  if (list.size() >= opt_.max_list) { full = true; return; }
  if (services_ >= opt_.max_services) { ++services_full_; return; }
  list.push_back({1, port, name, proto});
  ++services_;
  added = true;
}

void AssetTracker::hl7_app(Device& d, const std::string* msh3, const std::string* msh4) {
  if (!msh3) return;
  std::string_view app = cap(trim(*msh3)), facility = msh4 ? cap(trim(*msh4)) : std::string_view();
  if (app.empty()) return;
  for (auto& a : d.hl7_apps) if (a.app == app && a.facility == facility) return;
  if (d.hl7_apps.size() >= opt_.max_list) { ++list_full_; return; }
  d.hl7_apps.push_back({std::string(app), std::string(facility)});
  mark(d, "hl7_app");
}

void AssetTracker::side(Device& d, const FlowSummary& f, bool is_client) {
  const auto& mac = is_client ? f.client_mac : f.server_mac;
  bool have_mac = std::any_of(mac.begin(), mac.end(), [](uint8_t b) { return b != 0; });
  if (have_mac && mac != d.mac) frame_mac(d, mac, f.start);
  if (have_mac) d.mac_from_dhcp = false;  // its frames carry it
  ++d.flows;
  d.bytes += f.bytes[0] + f.bytes[1];
  if (f.ep.vlan && std::find(d.vlans.begin(), d.vlans.end(), f.ep.vlan) == d.vlans.end()) {
    if (d.vlans.size() < opt_.max_list) {
      d.vlans.push_back(f.ep.vlan);
      mark(d, "vlan");
    } else {
      ++list_full_;
    }
  }

  // The service: medmon's own protocol name first, else nDPI's as read from the content (one it
  // only guessed from the port names nothing: cleartext on 443 is no TLS service).
  std::string name;  // kept as text: the SNI test below looks at it
  if (f.facts && !f.facts->app.empty()) name = f.facts->app;
  else if (!f.ndpi_guessed && !f.ndpi_protocol.empty() && f.ndpi_protocol != "Unknown")
    // NetBIOS.SMBv23: the session service only carries the application nDPI names second.
    name = lower(f.ndpi_protocol == "NetBIOS" && !f.ndpi_app.empty() ? f.ndpi_app : f.ndpi_protocol);
  else if (is_icmp(f.ep.proto)) name = "icmp";  // known from the IP header
  else name = "unknown";
  bool answered = f.server_answered && f.pkts[1] > 0;
  bool added = false, full = false;
  uint16_t name_id = intern(name);
  const uint16_t port = has_ports(f.ep.proto) ? f.ep.dst_port : 0;  // no service port for ICMP
  if (is_client) {
    add_service(d.used, name_id, f.ep.proto, port, added, full);
    if (added) mark(d, "service_used");
    // nDPI reports the queried name of DNS flows in the same field as a TLS SNI.
    if (!f.sni.empty()) {
      if (name == "dns" || name == "mdns" || name == "llmnr") add_unique(d, d.dns_names, f.sni, "dns_name");
      else if (f.ndpi_protocol.find("TLS") != std::string::npos || name.find("tls") != std::string::npos || (f.facts && f.facts->tls))
        add_unique(d, d.sni, f.sni, "tls_sni");
    }
  } else if (answered) {
    add_service(d.offered, name_id, f.ep.proto, port, added, full);
    if (added) mark(d, "service_offered");
  }
  if (full) ++list_full_;
  // CONN-7 asks whether the device does TLS; the versions its sessions settle on are the answer
  // the wire gives (a server's too: it accepted the version).
  if (!f.tls_version_name.empty() && (is_client || answered)) add_unique(d, d.tls_versions, f.tls_version_name, "tls_version");

  if (!f.facts) return;
  const FlowFacts& ff = *f.facts;
  if (is_client) {
    if (auto* v = ff.attr("dicom.calling_ae")) add_unique(d, d.ae_titles, *v, "ae_title");
    hl7_app(d, ff.attr("hl7.msh3"), ff.attr("hl7.msh4"));
    const std::string* uid = ff.attr("dicom.impl_class_uid");
    const std::string* ver = ff.attr("dicom.impl_version_name");
    if (uid || ver) {
      set_field(d, d.impl_class_uid, uid ? *uid : std::string_view(), "dicom_impl");
      set_field(d, d.impl_version, ver ? *ver : std::string_view(), "dicom_impl");
      if (impl_) {
        if (const ImplProduct* p = impl_->lookup(d.impl_class_uid, d.impl_version)) {
          set_field(d, d.product, p->product, "dicom_impl");
          set_field(d, d.product_vendor, p->vendor, "dicom_impl");
        }
      }
    }
  } else if (answered) {
    // MSH-3/4 of the first message the server sent back (its ACK).
    hl7_app(d, ff.attr("hl7.server_msh3"), ff.attr("hl7.server_msh4"));
    // The title a client called is the server's only once the server accepted it: a reject
    // ("called AE not recognized") says it is not.
    const std::string* result = ff.attr("dicom.result");
    if (auto* v = ff.attr("dicom.called_ae"); v && result && *result == "accepted")
      add_unique(d, d.ae_titles, *v, "ae_title");
  }
  for (const DeviceIdentity& id : ff.identities) {
    if (id.client != is_client) continue;
    DeviceIdentity mine = id;
    mine.client = true;  // kept per device, where the side of one flow means nothing
    for (std::string* m : {&mine.source, &mine.id, &mine.udi, &mine.serial, &mine.type, &mine.manufacturer,
                           &mine.model, &mine.version})
      if (m->size() > kMaxValue) m->resize(cap(*m).size());
    if (std::find(d.identities.begin(), d.identities.end(), mine) != d.identities.end()) continue;
    if (d.identities.size() >= opt_.max_list) { ++list_full_; continue; }
    d.identities.push_back(std::move(mine));
    mark(d, "identity");
  }
  // Dataset identity (dissectors that report it per flow); the sender of stored images.
  if (is_client) {
    if (auto* v = ff.attr("dicom.manufacturer")) set_field(d, d.manufacturer, *v, "dicom_device");
    if (auto* v = ff.attr("dicom.model")) set_field(d, d.model_name, *v, "dicom_device");
    if (auto* v = ff.attr("dicom.software_versions")) set_field(d, d.software_versions, *v, "dicom_device");
    if (auto* v = ff.attr("dicom.station_name")) set_field(d, d.station_name, *v, "dicom_device");
    if (auto* v = ff.attr("dicom.device_serial")) set_field(d, d.device_serial, *v, "dicom_device");
  }
}

FlowVerdict AssetTracker::judge(const FlowSummary& f, EventOutput& out) {
  Timestamp ts = f.end.usec ? f.end : f.start;
  // Flows end in the order they end: a device is first seen when its earliest flow started.
  auto started = [&](Device* d) {
    if (d && f.start.usec && f.start < d->first_seen) d->first_seen = f.start;
    return d;
  };
  // A device bound by the policy is inventoried even on a public address.
  // The policy may have bound an address since its device was last bound (by a fingerprint, in
  // a flow judged just now): asked again, as the flow event's header is.
  auto rebound = [&](Device* d) {
    if (d && annotator_ && d->bound_generation != annotator_->annotation_generation()) bind(*d);
    return d;
  };
  Device* c = rebound(started(device(f.ep.src, ts, false)));
  if (c) side(*c, f, true);
  Device* s = rebound(started(device(f.ep.dst, ts, false)));
  if (s) side(*s, f, false);
  flush_dirty(out, ts);
  return {};
}

void AssetTracker::finish(Timestamp now, EventOutput& out) {
  // Devices whose MAC took turns since their last event: their last state, once.
  for (size_t i : flapped_)
    if (Device& d = devices_[i]; d.flap_untold && !d.withdrawn) mark(d, "mac");
  flapped_.clear();
  flush_dirty(out, now);
  auto& c = out.counters();
  c.at("assets.devices") += devices_.size() - withdrawn_;
  if (dropped_) c.at("assets.dropped") += dropped_;
  if (list_full_) c.at("assets.list_full") += list_full_;
  if (services_full_) c.at("assets.services_full") += services_full_;
  if (dhcp_evicted_) c.at("assets.dhcp_evicted") += dhcp_evicted_;
  if (mac_flaps_) c.at("assets.mac_flaps") += mac_flaps_;
  c.at("assets.events") += events_;
}

void AssetTracker::withdraw(Device& d) {
  bool seen = d.flows || d.bytes || !d.offered.empty() || !d.used.empty() ||
              std::any_of(d.mac.begin(), d.mac.end(), [](uint8_t b) { return b != 0; });
  if (seen || d.withdrawn) return;
  d.withdrawn = true;
  ++withdrawn_;
  bool told = std::ranges::find(d.changes, std::string_view("new"), [](const char* c) { return std::string_view(c); }) ==
              d.changes.end();
  d.changes.clear();
  // Never written: nothing to take back. Written: consumers drop the address.
  if (told) mark(d, "withdrawn");
}

void AssetTracker::flush_dirty(EventOutput& out, Timestamp ts) {
  for (size_t i : dirty_) {
    Device& d = devices_[i];
    // A withdrawn device is told once, that it is withdrawn; nothing else of it.
    if (d.withdrawn && (d.changes.size() != 1 || std::string_view(d.changes[0]) != "withdrawn")) d.changes.clear();
    // Not before what it reports: a device a DHCP or DICOM event named after this flow ended.
    if (!d.changes.empty()) emit(d, out, std::max(ts, d.last_seen));
  }
  dirty_.clear();
}

void AssetTracker::on_event(std::string_view type, std::string_view line) {
  if (type == "dicom") {
    DicomSighting s;
    if (read_dicom(line, s)) apply(s);
  } else if (type == "dhcp") {
    DhcpSighting s;
    if (read_dhcp(line, s)) apply(s);
  }
}

bool AssetTracker::read_dhcp(std::string_view line, DhcpSighting& s) {
  size_t obj = line.find("\"dhcp\":{");
  if (obj == std::string_view::npos) return false;
  // A DHCPv6 event says so first; DHCPv4's has no version.
  s.v6 = line.substr(obj + 8).starts_with("\"version\":6,");
  std::string op, type, mac, addr;
  // The fixed members come first in the event, before any text a client chose.
  if (!field_in(line, obj, line.size(), "op", op) || !field_in(line, obj, line.size(), "client_mac", mac)) return false;
  if (!parse_mac(mac, s.mac)) return false;
  s.ts = event_time(line);
  s.from_client = op == "request";
  if (std::string x; field_in(line, obj, line.size(), "xid", x) && x.size() > 2)
    s.xid = static_cast<uint32_t>(std::strtoul(x.c_str() + 2, nullptr, 16));
  // A request whose frame came from another MAC than chaddr: the frame's MAC is the one that spoke.
  if (std::string sender; s.from_client && field_in(line, obj, line.size(), "sender_mac", sender)) {
    std::array<uint8_t, 6> frame{};
    if (parse_mac(sender, frame)) {
      s.claimed = s.mac;
      s.have_claimed = true;
      s.mac = frame;
    }
  }
  s.have_mac = std::any_of(s.mac.begin(), s.mac.end(), [](uint8_t b) { return b != 0; });
  if (std::string src; field_in(line, 0, obj, "src_ip", src) && !IpAddr::parse(src, s.sender)) s.sender = {};
  field_in(line, obj, line.size(), "message_type", type);
  // A client's own address (ciaddr: renewing, informing, releasing), or the one an ACK gives
  // it (yiaddr; an ACK to an INFORM gives none and repeats ciaddr). An OFFER is only an offer.
  // DHCPv6: the address a client sends from (or the innermost relay names), and a REPLY's two:
  // the IA_NA address it gives and the client's address it answers (the one it goes to, or the
  // relay's peer address); an ADVERTISE is only an offer.
  // A BOOTP reply (no DHCP message type) gives its address for good (RFC 951): as an ACK does.
  std::string_view given = s.v6 ? "REPLY" : "ACK";
  bool gives = type == given || (!s.v6 && !s.from_client && type.empty());
  if (IpAddr& to = s.v6 ? s.assigned : s.address;
      gives && field_in(line, obj, line.size(), "assigned_ip", addr) && !IpAddr::parse(addr, to))
    to = {};
  if ((s.from_client || gives) && !s.address.family && field_in(line, obj, line.size(), "client_ip", addr) &&
      !IpAddr::parse(addr, s.address))
    s.address = {};
  if (s.from_client && type == "DECLINE") {
    // DHCPv4: option 50; DHCPv6: the first address of the IAs, which come before any client text.
    size_t ia = s.v6 ? line.find("\"ia\":[", obj) : obj;
    bool found = ia != std::string_view::npos && (s.v6 ? field_in(line, ia, line.size(), "address", addr)
                                                        : field_in(line, obj, line.size(), "requested_ip", addr));
    if (!found || !IpAddr::parse(addr, s.declined)) s.declined = {};
  }
  if (s.from_client) {
    // DHCPv6 option 39, a client's FQDN: its first label is the host name DHCPv4's option 12
    // gives; so is DHCPv4's option 81 to a client that sends no option 12.
    if (s.v6 || !field_in(line, obj, line.size(), "hostname", s.hostname) || trim(s.hostname).empty()) {
      field_in(line, obj, line.size(), "client_fqdn", s.hostname);
      s.hostname.resize(std::min(s.hostname.find('.'), s.hostname.size()));
    }
    field_in(line, obj, line.size(), "vendor_class", s.vendor_class);
    // DHCPv4 without option 60: the first item of option 124's first enterprise, as DHCPv6's
    // option 16 gives it (the event writes no other "data" member after vendor_classes).
    if (size_t p = line.find("\"vendor_classes\":[", obj); !s.v6 && s.vendor_class.empty() && p != std::string_view::npos)
      if (size_t d = line.find("\"data\":[\"", p); d != std::string_view::npos) read_json_string(line, d + 9, s.vendor_class);
    // The option list as written, "1,3,6,15": the form DHCP fingerprint databases use.
    if (size_t p = line.find("\"param_list\":[", obj); p != std::string_view::npos) {
      size_t from = p + 14, end = line.find(']', from);
      if (end != std::string_view::npos) s.fingerprint.assign(line.substr(from, end - from));  // bounded by apply
    }
  }
  return true;
}

void AssetTracker::apply(const DhcpSighting& s) {
  if (s.have_claimed) {
    constexpr size_t kMaxClaimed = 4096;
    uint64_t claimed = mac_key(s.claimed);
    if (dhcp_claimed_xid_.insert_or_assign(claimed, s.xid).second) {
      dhcp_claimed_order_.push_back(claimed);
      if (dhcp_claimed_order_.size() > kMaxClaimed) {
        dhcp_claimed_xid_.erase(dhcp_claimed_order_.front());
        dhcp_claimed_order_.pop_front();
      }
    }
  } else if (!s.from_client) {
    // The server's answer to a request made in this MAC's name by another: it ties nothing.
    if (auto it = dhcp_claimed_xid_.find(mac_key(s.mac)); it != dhcp_claimed_xid_.end() && it->second == s.xid) return;
  }
  if (!s.have_mac) return;
  uint64_t k = mac_key(s.mac);
  // The addresses this message ties to the MAC, by kind (DhcpNames::address): the one a
  // server's ACK gives it, or a client's own (ciaddr) when the client sends from it; DHCPv6's
  // IA_NA address a REPLY gives, and the client's own address, sent from or answered by a REPLY.
  // A datagram from elsewhere naming a client's address (a relayed one too) ties none.
  std::array<IpAddr, 3> tied;
  IpAddr own = s.address;
  if (s.from_client && !(s.sender == s.address)) own = {};
  tied[s.v6 ? 2 : 0] = own;
  if (s.v6) tied[1] = s.assigned;
  if (s.declined.family) {
    // The address was another node's all along: the device there keeps none of this MAC's names,
    // nor the MAC itself when only the DHCP exchange gave it (no frame of the MAC came from there).
    if (auto it = dhcp_by_mac_.find(k); it != dhcp_by_mac_.end())
      for (IpAddr& a : it->second.address)
        if (a == s.declined) {
          a = {};
          if (auto d = index_.find(key_of(s.declined)); d != index_.end()) {
            Device& dev = devices_[d->second];
            if (dev.mac_from_dhcp && mac_key(dev.mac) == k) {
              dev.mac = {};
              dev.mac_vendor.clear();
              dev.mac_from_dhcp = false;
              mark(dev, "mac");
              bind(dev);  // a binding by that MAC no longer holds
            }
            dhcp_names(dev, mac_key(dev.mac));
            withdraw(dev);
          }
        }
  }
  bool named = !s.hostname.empty() || !s.vendor_class.empty() || !s.fingerprint.empty();
  if (!named && std::ranges::none_of(tied, [](const IpAddr& a) { return a.family != 0; })) return;
  DhcpNames& n = dhcp_entry(k);
  auto keep = [](std::string& field, std::string_view v) { if (!v.empty()) field.assign(cap(trim(v))); };
  keep(n.hostname, s.hostname);
  keep(n.vendor_class, s.vendor_class);
  if (!s.fingerprint.empty()) (s.v6 ? n.fingerprint6 : n.fingerprint).assign(cap_fingerprint(s.fingerprint, scratch2_));
  auto device_at = [&](const IpAddr& ip) -> Device* {
    auto it = index_.find(key_of(ip));
    return it == index_.end() ? nullptr : &devices_[it->second];
  };
  for (size_t i = 0; i < tied.size(); ++i) {
    IpAddr& address = n.address[i];
    if (!tied[i].family || tied[i] == address) continue;
    // The MAC moved: the device at its former address loses its names (unless tied otherwise).
    IpAddr before = address;
    address = tied[i];
    if (Device* old = before.family ? device_at(before) : nullptr) dhcp_names(*old, mac_key(old->mac));
  }
  for (const IpAddr& ip : n.address) {
    if (!ip.family) continue;
    Device* d = std::ranges::find(tied, ip) != tied.end() ? device(ip, s.ts, false) : device_at(ip);
    if (!d) continue;
    // Only the frames of a device say which MAC it has (a routed device's carry the router's):
    // DHCP gives its MAC to a device that has none yet, or that has only the MAC an earlier
    // exchange named (no frame of it seen): a lease the server gives another MAC since is no
    // longer that MAC's.
    bool no_frame_mac = std::all_of(d->mac.begin(), d->mac.end(), [](uint8_t b) { return b == 0; }) ||
                        (d->mac_from_dhcp && d->mac != s.mac && std::ranges::find(tied, ip) != tied.end());
    if (no_frame_mac) {
      set_mac(*d, s.mac);
      d->mac_from_dhcp = true;
    } else {
      dhcp_names(*d, mac_key(d->mac));
    }
  }
}

bool AssetTracker::read_dicom(std::string_view line, DicomSighting& s) {
  std::string src, dst;
  if (!field_in(line, 0, 400, "src_ip", src) || !field_in(line, 0, 400, "dst_ip", dst)) return false;
  if (!IpAddr::parse(src, s.client) || !IpAddr::parse(dst, s.server)) return false;
  s.ts = event_time(line);
  // The event writes the names, then rq, ac and the contexts (up to 128 of them, most of a
  // long line), then the operations, each an object opening with "msg_id". Searching for '{'
  // stops once per context or operation, where a search for a key's '"' would stop at every
  // string of the contexts: the head is found first and the keys are looked for only there.
  size_t first_op = line.find("{\"msg_id\":");
  size_t body = std::min(first_op, line.size());
  size_t ctx = line.substr(0, body).find("\"contexts\":[");
  size_t head = std::min(ctx, body);
  std::string_view head_text = line.substr(0, head);
  size_t rq = head_text.find("\"rq\":{");
  size_t ac = head_text.find("\"ac\":{");
  auto impl_of = [&](DicomSighting::Impl& i, size_t from, size_t to) {
    if (from == std::string_view::npos) return;
    i.have_uid = field_in(line, from, to, "impl_class_uid", i.uid);
    i.have_version = field_in(line, from, to, "impl_version", i.version);
  };
  impl_of(s.client_impl, rq, std::min(ac, head));
  impl_of(s.server_impl, ac, head);
  s.have_calling_ae = field_in(line, 0, rq == std::string_view::npos ? head : rq, "calling_ae", s.calling_ae);
  if (ac != std::string_view::npos)
    s.have_called_ae = field_in(line, 0, rq == std::string_view::npos ? ac : rq, "called_ae", s.called_ae);
  // Stored datasets describe the device that sent them.
  struct KeyedField {
    FieldKey key;
    DicomSighting::Field field;
  };
  static constexpr KeyedField kFields[] = {
      {"manufacturer", DicomSighting::manufacturer},   {"model", DicomSighting::model},
      {"software_versions", DicomSighting::software_versions}, {"station_name", DicomSighting::station_name},
      {"device_serial", DicomSighting::device_serial}};
  std::string cmd, dir, v;
  for (size_t p = first_op; p != std::string_view::npos;) {
    size_t next = line.find("{\"msg_id\":", p + 1);
    size_t end = next == std::string_view::npos ? line.size() : next;
    if (field_in(line, p, end, "command", cmd) && cmd.rfind("C-STORE", 0) == 0 && field_in(line, p, end, "dir", dir)) {
      for (auto [key, field] : kFields)
        if (field_in(line, p, end, key, v)) s.stored.push_back({dir == "to_server", field, v});
    }
    p = next;
  }
  return true;
}

// `dicom` events carry what flow facts may not: each side's implementation UID/version (rq =
// the calling side = src_ip, ac = the called side = dst_ip) and the identity in stored datasets.
void AssetTracker::apply(const DicomSighting& s) {
  auto find_dev = [&](const IpAddr& ip) -> Device* {
    auto it = index_.find(key_of(ip));
    if (it != index_.end()) return &devices_[it->second];
    return device(ip, s.ts, false);
  };
  Device* client = find_dev(s.client);
  Device* server = find_dev(s.server);
  auto impl_of = [&](Device* d, const DicomSighting::Impl& i) {
    if (!d || (!i.have_uid && !i.have_version)) return;
    if (i.have_uid) set_field(*d, d->impl_class_uid, i.uid, "dicom_impl");
    if (i.have_version) set_field(*d, d->impl_version, i.version, "dicom_impl");
    if (impl_) {
      if (const ImplProduct* p = impl_->lookup(d->impl_class_uid, d->impl_version)) {
        set_field(*d, d->product, p->product, "dicom_impl");
        set_field(*d, d->product_vendor, p->vendor, "dicom_impl");
      }
    }
  };
  impl_of(client, s.client_impl);
  impl_of(server, s.server_impl);
  if (client && s.have_calling_ae) add_unique(*client, client->ae_titles, s.calling_ae, "ae_title");
  if (server && s.have_called_ae) add_unique(*server, server->ae_titles, s.called_ae, "ae_title");
  for (const auto& st : s.stored) {
    Device* sender = st.by_client ? client : server;
    if (!sender) continue;
    std::string* field = nullptr;
    switch (st.field) {
      case DicomSighting::manufacturer: field = &sender->manufacturer; break;
      case DicomSighting::model: field = &sender->model_name; break;
      case DicomSighting::software_versions: field = &sender->software_versions; break;
      case DicomSighting::station_name: field = &sender->station_name; break;
      case DicomSighting::device_serial: field = &sender->device_serial; break;
    }
    set_field(*sender, *field, st.value, "dicom_device");
  }
}

void AssetTracker::emit(Device& d, EventOutput& out, Timestamp ts) {
  ++events_;
  auto& w = out.begin("asset", ts, nullptr);
  w.object("asset");
  w.key("ip");
  w.value(d.ip);
  w.array("changes");
  for (const char* c : d.changes) w.value(c);
  w.end_array();
  w.field("first_seen", d.first_seen.usec ? d.first_seen : ts);
  w.field("last_seen", d.last_seen.usec ? d.last_seen : ts);
  bool have_mac = std::any_of(d.mac.begin(), d.mac.end(), [](uint8_t x) { return x != 0; });
  if (have_mac) {
    w.field("mac", format_mac(d.mac));
    if (!d.mac_vendor.empty()) w.field("mac_vendor", d.mac_vendor);
    else if (OuiTable::locally_administered(d.mac)) w.field("mac_local", true);
  }
  if (std::any_of(d.previous_mac.begin(), d.previous_mac.end(), [](uint8_t x) { return x != 0; }))
    w.field("previous_mac", format_mac(d.previous_mac));
  if (d.mac_flaps) w.field("mac_flaps", d.mac_flaps);
  if (!d.vlans.empty()) {
    w.array("vlans");
    for (uint16_t v : d.vlans) w.value(v);
    w.end_array();
  }
  if (!d.hostname.empty()) w.field("hostname", d.hostname);
  if (!d.dhcp_vendor_class.empty() || !d.dhcp_fingerprint.empty() || !d.dhcp_fingerprint6.empty()) {
    w.object("dhcp");
    w.field_if_nonempty("vendor_class", d.dhcp_vendor_class);
    w.field_if_nonempty("fingerprint", d.dhcp_fingerprint);
    w.field_if_nonempty("fingerprint6", d.dhcp_fingerprint6);
    w.end_object();
  }
  if (!d.device.empty()) w.field("device", d.device);
  if (!d.zone.empty()) w.field("zone", d.zone);
  w.field("model", d.model.empty() ? std::string_view("unbound") : std::string_view(d.model));
  bool dicom = !d.ae_titles.empty() || !d.impl_class_uid.empty() || !d.impl_version.empty() || !d.manufacturer.empty() ||
               !d.model_name.empty();
  if (dicom) {
    w.object("dicom");
    if (!d.ae_titles.empty()) {
      w.array("ae_titles");
      for (auto& a : d.ae_titles) w.value(a);
      w.end_array();
    }
    if (!d.impl_class_uid.empty()) w.field("impl_class_uid", d.impl_class_uid);
    if (!d.impl_version.empty()) w.field("impl_version", d.impl_version);
    if (!d.product.empty()) w.field("product", d.product);
    if (!d.product_vendor.empty()) w.field("product_vendor", d.product_vendor);
    if (!d.manufacturer.empty()) w.field("manufacturer", d.manufacturer);
    if (!d.model_name.empty()) w.field("model_name", d.model_name);
    if (!d.software_versions.empty()) w.field("software_versions", d.software_versions);
    if (!d.station_name.empty()) w.field("station_name", d.station_name);
    if (!d.device_serial.empty()) w.field("device_serial", d.device_serial);
    w.end_object();
  }
  if (!d.hl7_apps.empty()) {
    w.array("hl7_apps");
    for (auto& a : d.hl7_apps) {
      w.begin_object();
      w.field("app", a.app);
      if (!a.facility.empty()) w.field("facility", a.facility);
      w.end_object();
    }
    w.end_array();
  }
  if (!d.identities.empty()) {
    w.array("identities");
    for (auto& id : d.identities) {
      w.begin_object();
      w.field("source", id.source);
      w.field_if_nonempty("id", id.id);
      w.field_if_nonempty("udi", id.udi);
      w.field_if_nonempty("serial", id.serial);
      w.field_if_nonempty("type", id.type);
      w.field_if_nonempty("manufacturer", id.manufacturer);
      w.field_if_nonempty("model", id.model);
      w.field_if_nonempty("version", id.version);
      w.end_object();
    }
    w.end_array();
  }
  if (!d.sni.empty()) {
    w.array("tls_sni");
    for (auto& s : d.sni) w.value(s);
    w.end_array();
  }
  if (!d.tls_versions.empty()) {
    w.array("tls_versions");
    for (auto& s : d.tls_versions) w.value(s);
    w.end_array();
  }
  if (!d.dns_names.empty()) {
    w.array("dns_names");
    for (auto& s : d.dns_names) w.value(s);
    w.end_array();
  }
  auto services = [&](std::string_view key, const std::vector<Service>& list) {
    if (list.empty()) return;
    w.array(key);
    for (auto& s : list) {
      w.begin_object();
      w.field("service", service_name(s));
      w.field("proto", l4_name(s.proto));
      w.field("port", s.port);
      w.field("flows", s.flows);
      w.end_object();
    }
    w.end_array();
  };
  services("services_offered", d.offered);
  services("services_used", d.used);
  w.field("flows", d.flows);
  w.field("bytes", d.bytes);
  w.end_object();
  out.end();
  d.changes.clear();
  d.flap_untold = false;
}

}  // namespace medmon
