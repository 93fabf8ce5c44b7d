#include "sensor/report/inventory.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace medmon::report {

using nlohmann::json;

namespace {
void merge(std::vector<std::string>& into, const std::string& v) {
  if (v.empty()) return;
  if (std::find(into.begin(), into.end(), v) == into.end()) into.push_back(v);
}
void set(std::string& into, const std::string& v) {
  if (!v.empty()) into = v;
}
void merge(std::vector<json>& into, const json& v) {
  if (std::find(into.begin(), into.end(), v) == into.end()) into.push_back(v);
}
// A service is one (service, proto, port); its counts move on from event to event: the latest wins.
void merge_service(std::vector<json>& into, const json& v) {
  auto same = [&](const json& s) {
    return str(s, "service") == str(v, "service") && str(s, "proto") == str(v, "proto") && num(s, "port") == num(v, "port");
  };
  auto it = std::find_if(into.begin(), into.end(), same);
  if (it == into.end()) into.push_back(v);
  else *it = v;
}
// A flow's service as the asset tracker names it: ICMP is known from the IP header.
std::string service_of(const json& f) {
  std::string app = flow_app(f), proto = str(f, "proto");
  if (app == "unknown" && (proto == "icmp" || proto == "icmp6")) return "icmp";
  return app;
}
std::string service_text(const json& s) {
  return fmt::format("{}/{}/{}", str(s, "service", "?"), str(s, "proto", "?"), num(s, "port"));
}
// Whether the server accepted the connection or sent something: a SYN-ACK or payload back (an RST
// answering a SYN is a closed port, not a service), as the asset tracker counts services offered.
bool server_answered(const json& f) {
  const json& fl = member(f, "flow");
  return str(fl, "tcp_flags_toclient").find('S') != std::string::npos || num(fl, "payload_bytes_toclient") > 0;
}
// Sort key for IPv4 dotted quads (numeric), others after, by text.
std::pair<int, std::string> ip_key(const std::string& ip) {
  unsigned a, b, c, d;
  if (std::sscanf(ip.c_str(), "%u.%u.%u.%u", &a, &b, &c, &d) == 4) return {0, fmt::format("{:03}{:03}{:03}{:03}", a, b, c, d)};
  return {1, ip};
}
}  // namespace

std::vector<Asset> build_inventory(const EventLog& log, const std::map<std::string, std::string>* bound) {
  std::map<std::string, Asset> by_ip;
  // The asset events in the order written, read again from the file (not kept: a SPAN port has
  // an event for every change of tens of thousands of devices).
  log.for_each_asset([&](const json& e) {
    const json& a = member(e, "asset");
    std::string ip = str(a, "ip");
    if (ip.empty()) return;
    const json& changes = a.value("changes", json::array());
    // The address was known only from a DHCP exchange its client declined: no device there.
    if (changes.is_array() && std::find(changes.begin(), changes.end(), "withdrawn") != changes.end()) {
      by_ip.erase(ip);
      return;
    }
    Asset& r = by_ip[ip];
    // Another device (another MAC) took the address: what was listed of it was the former one's.
    if (changes.is_array() && std::find(changes.begin(), changes.end(), "replaced") != changes.end()) {
      r = Asset{};
      r.since = str(a, "first_seen");
    }
    r.ip = ip;
    // The vendor and the DHCP names belong to the MAC: when the address moves to another MAC (a
    // replaced device, a locally administered one), the new event's, or none, replace the old ones.
    std::string mac = str(a, "mac");
    bool mac_changed = changes.is_array() && std::find(changes.begin(), changes.end(), "mac") != changes.end();
    // A MAC that changed to none was taken back (a DHCP DECLINE of an address only the DHCP
    // exchange tied to it): the address has no MAC, nor that MAC's vendor.
    bool new_mac = mac != r.mac && (!mac.empty() || mac_changed);
    if (new_mac) {
      r.mac = mac;
      r.mac_vendor.clear();
      r.mac_local = false;
    }
    set(r.mac_vendor, str(a, "mac_vendor"));
    if (auto ml = a.find("mac_local"); ml != a.end() && ml->is_boolean()) r.mac_local = ml->get<bool>();
    // When the MAC or its DHCP names changed, the event states the names in force: one it
    // leaves out is gone (the new MAC gave none, or another MAC took the address).
    const json& dh = member(a, "dhcp");
    if (new_mac || (changes.is_array() && std::find(changes.begin(), changes.end(), "dhcp") != changes.end())) {
      r.hostname = str(a, "hostname");
      r.dhcp_vendor_class = str(dh, "vendor_class");
      r.dhcp_fingerprint = str(dh, "fingerprint");
      r.dhcp_fingerprint6 = str(dh, "fingerprint6");
    } else {
      set(r.hostname, str(a, "hostname"));
      set(r.dhcp_vendor_class, str(dh, "vendor_class"));
      set(r.dhcp_fingerprint, str(dh, "fingerprint"));
      set(r.dhcp_fingerprint6, str(dh, "fingerprint6"));
    }
    set(r.device, str(a, "device"));
    set(r.zone, str(a, "zone"));
    std::string model = str(a, "model");
    if (!model.empty() && model != "unbound") r.model = model;
    if (auto it = a.find("vlans"); it != a.end() && it->is_array())
      for (auto& v : *it) if (v.is_number_unsigned() && std::find(r.vlans.begin(), r.vlans.end(), v.get<uint64_t>()) == r.vlans.end()) r.vlans.push_back(v.get<uint64_t>());
    const json& d = member(a, "dicom");
    if (auto it = d.find("ae_titles"); it != d.end() && it->is_array())
      for (auto& v : *it) if (v.is_string()) merge(r.ae_titles, v.get<std::string>());
    set(r.impl_class_uid, str(d, "impl_class_uid"));
    set(r.impl_version, str(d, "impl_version"));
    set(r.product, str(d, "product"));
    set(r.product_vendor, str(d, "product_vendor"));
    set(r.manufacturer, str(d, "manufacturer"));
    set(r.model_name, str(d, "model_name"));
    set(r.software_versions, str(d, "software_versions"));
    set(r.station_name, str(d, "station_name"));
    set(r.device_serial, str(d, "device_serial"));
    if (auto it = a.find("hl7_apps"); it != a.end() && it->is_array())
      for (auto& h : *it) {
        std::string app = str(h, "app"), fac = str(h, "facility");
        merge(r.hl7_apps, fac.empty() ? app : app + "@" + fac);
        if (h.is_object()) merge(r.hl7_apps_json, h);
      }
    if (auto it = a.find("identities"); it != a.end() && it->is_array())
      for (auto& i : *it) {
        std::string text;
        for (const char* k : {"id", "udi", "serial", "type", "manufacturer", "model", "version"}) {
          std::string v = str(i, k);
          if (v.empty()) continue;
          text += text.empty() ? ": " : " ";
          text += std::string(k) + "=" + v;
        }
        if (!text.empty()) merge(r.identities, str(i, "source") + text);
        if (i.is_object()) merge(r.identities_json, i);
      }
    if (auto it = a.find("tls_sni"); it != a.end() && it->is_array())
      for (auto& v : *it) if (v.is_string()) merge(r.sni, v.get<std::string>());
    if (auto it = a.find("tls_versions"); it != a.end() && it->is_array())
      for (auto& v : *it) if (v.is_string()) merge(r.tls_versions, v.get<std::string>());
    if (auto it = a.find("dns_names"); it != a.end() && it->is_array())
      for (auto& v : *it) if (v.is_string()) merge(r.dns_names, v.get<std::string>());
    if (auto it = a.find("services_offered"); it != a.end() && it->is_array())
      for (auto& s : *it) { merge(r.offered, service_text(s)); if (s.is_object()) merge_service(r.offered_json, s); }
    if (auto it = a.find("services_used"); it != a.end() && it->is_array())
      for (auto& s : *it) { merge(r.used, service_text(s)); if (s.is_object()) merge_service(r.used_json, s); }
    std::string fs = str(a, "first_seen"), ls = str(a, "last_seen");
    if (!fs.empty() && (r.first_seen.empty() || fs < r.first_seen)) r.first_seen = fs;
    if (ls > r.last_seen) r.last_seen = ls;
  });
  // Flows: names and zones from the policy's headers, and the traffic each device took part in.
  // An asset event is written when something about the device changes, so its last_seen and
  // service counts are those of that moment: the flows give the latest.
  std::map<std::pair<std::string, std::string>, uint64_t> service_flows;  // (ip, "o|u" + service text) -> flows
  log.for_each_flow([&](const json& f) {
    const json& fl = member(f, "flow");
    std::string service = fmt::format("{}/{}/{}", service_of(f), str(f, "proto", "?"), flow_port(f));
    for (int side = 0; side < 2; ++side) {
      std::string ip = str(f, side ? "dst_ip" : "src_ip");
      auto it = by_ip.find(ip);
      if (it == by_ip.end()) continue;
      Asset& r = it->second;
      if (!r.since.empty() && str(fl, "start", str(fl, "end", str(f, "ts"))) < r.since) continue;  // the former device's
      if (r.device.empty()) set(r.device, str(f, side ? "dst_device" : "src_device"));
      if (r.zone.empty()) set(r.zone, str(f, side ? "dst_zone" : "src_zone"));
      ++r.flows;
      r.bytes += num(fl, "bytes_toserver") + num(fl, "bytes_toclient");
      std::string end = str(fl, "end", str(f, "ts"));
      if (end > r.last_seen) r.last_seen = end;
      std::string start = str(fl, "start");
      if (!start.empty() && (r.first_seen.empty() || start < r.first_seen)) r.first_seen = start;
      if (side == 0) ++service_flows[{ip, "u" + service}];
      else if (server_answered(f)) ++service_flows[{ip, "o" + service}];
    }
  });
  for (auto& [ip, r] : by_ip) {
    auto recount = [&](std::vector<json>& list, const char* kind) {
      for (json& s : list) {
        auto it = service_flows.find({ip, kind + service_text(s)});
        if (it != service_flows.end()) s["flows"] = it->second;
      }
    };
    recount(r.offered_json, "o");
    recount(r.used_json, "u");
  }
  // Devices bound by fingerprint, named by their alerts.
  for (auto& [ip, dev] : bound ? *bound : fingerprint_bindings(log))
    if (auto it = by_ip.find(ip); it != by_ip.end() && it->second.device.empty()) it->second.device = dev;
  // The first asset (in address order) each device name is given to: an alert naming a device
  // none of its addresses holds is found without a pass over every asset.
  std::unordered_map<std::string, Asset*> by_device;
  for (auto& [ip, r] : by_ip)
    if (!r.device.empty()) by_device.emplace(r.device, &r);
  // An alert counts once, for the device it names (as the summary and the report count it): the
  // alert's address of that device, else the device's address.
  for (const json& a : log.alerts) {
    std::string dev = str(member(a, "alert"), "device");
    if (dev.empty()) continue;
    auto names = [&](const Asset& r) { return r.device == dev || (r.device.empty() && r.ip == dev); };
    Asset* hit = nullptr;
    for (const char* k : {"src_ip", "dst_ip"})
      if (auto it = by_ip.find(str(a, k)); !hit && it != by_ip.end() && names(it->second)) hit = &it->second;
    if (!hit)
      if (auto it = by_ip.find(dev); it != by_ip.end()) hit = &it->second;
    if (!hit)
      if (auto it = by_device.find(dev); it != by_device.end()) hit = it->second;
    if (!hit) continue;
    ++hit->alerts;
    // A device bound by fingerprint has no model from the site's addresses: its alerts name it.
    if (hit->model == "unbound" && hit->device == dev)
      if (std::string m = str(member(member(a, "alert"), "evidence"), "model"); !m.empty())
        hit->model = m;
  }
  std::vector<Asset> out;
  for (auto& [ip, r] : by_ip) out.push_back(std::move(r));
  std::sort(out.begin(), out.end(), [](const Asset& a, const Asset& b) { return ip_key(a.ip) < ip_key(b.ip); });
  return out;
}

std::map<std::string, std::string> fingerprint_bindings(const EventLog& log) {
  // A side the policy judged (it has a verdict) that no header names is a device it learnt.
  // Of the flows the alerts name (not of every flow: there may be millions), which sides the
  // policy judged: bit 0 the client's (src_verdict), bit 1 the server's. The first flow of an id wins.
  std::unordered_map<std::string, int> flow_of;
  for (const json& e : log.alerts)
    if (std::string id = str(e, "flow_id"); !id.empty()) flow_of.emplace(id, -1);
  if (!flow_of.empty())
    log.for_each_flow([&](const json& f) {
      auto it = flow_of.find(str(f, "flow_id"));
      if (it == flow_of.end() || it->second >= 0) return;
      it->second = (f.contains("src_verdict") ? 1 : 0) | (f.contains("dst_verdict") ? 2 : 0);
    });
  std::map<std::string, std::string> bound;
  std::unordered_set<std::string> placed;  // devices given an address
  for (const json& e : log.alerts) {
    const json& a = member(e, "alert");
    std::string dev = str(a, "device"), src = str(e, "src_ip"), dst = str(e, "dst_ip");
    std::string src_dev = str(e, "src_device"), dst_dev = str(e, "dst_device");
    // An alert about an unbound host names its address; one about a device bound by ip or mac is
    // in the header already.
    if (dev.empty() || dev == src || dev == dst || dev == src_dev || dev == dst_dev) continue;
    // A fan-out by a host that is no device names the device it reached last, on another flow
    // than this one: neither address here is that device's.
    if (str(a, "rule") == "lateral.fan_out" && str(member(a, "evidence"), "direction") == "inbound")
      continue;
    // The policy binds a device at one address, the first that showed its fingerprint.
    if (placed.count(dev)) continue;
    int side = -1;  // 0: the client (src_ip), 1: the server
    bool learnt[2] = {src_dev.empty(), dst_dev.empty()};
    if (auto it = flow_of.find(str(e, "flow_id")); it != flow_of.end() && it->second >= 0) {
      learnt[0] = learnt[0] && (it->second & 1);
      learnt[1] = learnt[1] && (it->second & 2);
    }
    if (learnt[0] != learnt[1]) {
      side = learnt[0] ? 0 : 1;
    } else if (learnt[0]) {  // both sides learnt (or the flow is not in the events): the alert's peer or direction
      std::string peer = str(a, "peer");
      std::string dir = str(member(a, "evidence"), "direction");
      if (dir == "outbound") side = 0;
      else if (dir == "inbound") side = 1;
      else if (!peer.empty() && peer == dst) side = 0;
      else if (!peer.empty() && peer == src) side = 1;
    }
    if (side < 0) continue;
    std::string ip = side ? dst : src;
    if (!ip.empty() && bound.emplace(ip, dev).second) placed.insert(dev);
  }
  return bound;
}

namespace {
std::string join(const std::vector<std::string>& v, size_t max = 4) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max; ++i) { if (i) s += ","; s += v[i]; }
  if (v.size() > max) s += fmt::format(",+{}", v.size() - max);
  return s.empty() ? "-" : s;
}
// Values from the wire (AE titles, MSH-3, identities) may hold terminal escape sequences: control
// characters (C0, DEL and UTF-8 encoded C1) are shown as \xNN instead of being sent to the terminal.
std::string printable(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    if (c < 0x20 || c == 0x7f) {
      o += fmt::format("\\x{:02x}", c);
    } else if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {
      o += fmt::format("\\x{:02x}\\x{:02x}", c, next);
      ++i;
    } else {
      o.push_back(static_cast<char>(c));
    }
  }
  return o;
}
std::string cut(const std::string& raw, size_t n) {
  std::string s = printable(raw);
  if (s.size() > n) {
    size_t keep = n - 1;  // not inside a UTF-8 character: half of one shows as U+FFFD
    while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80) --keep;
    s.resize(keep);
    s += "~";
  }
  return s.empty() ? "-" : s;
}
}  // namespace

void print_inventory_table(std::FILE* out, const std::vector<Asset>& assets) {
  // The address names the device: an IPv6 one is shown whole (two link-local addresses cut to 16
  // characters would read alike), the column as wide as the longest (45: IPv4-mapped IPv6).
  size_t ip_width = 16;
  for (const Asset& a : assets) ip_width = std::max(ip_width, std::min<size_t>(printable(a.ip).size(), 45));
  fmt::print(out, "{:<{}} {:<17} {:<20} {:<14} {:<14} {:<16} {:<22} {:<16} {:<26} {:>6}\n", "IP", ip_width, "MAC", "VENDOR",
             "DEVICE", "MODEL", "AE TITLES", "DICOM PRODUCT", "HL7 APPS", "SERVICES OFFERED", "FLOWS");
  for (const Asset& a : assets) {
    std::string product = a.product;
    if (!a.manufacturer.empty()) product = a.manufacturer + (a.model_name.empty() ? "" : " " + a.model_name);
    else if (!a.impl_version.empty()) product = product.empty() ? a.impl_version : product + " (" + a.impl_version + ")";
    fmt::print(out, "{:<{}} {:<17} {:<20} {:<14} {:<14} {:<16} {:<22} {:<16} {:<26} {:>6}\n", cut(a.ip, ip_width), ip_width,
               cut(a.mac, 17), cut(a.vendor_shown(), 20), cut(a.device, 14), cut(a.model, 14), cut(join(a.ae_titles), 16),
               cut(product, 22), cut(join(a.hl7_apps), 16), cut(join(a.offered, 3), 26), a.flows);
  }
  fmt::print(out, "{} device{}\n", assets.size(), assets.size() == 1 ? "" : "s");
}

std::string inventory_json(const std::vector<Asset>& assets) {
  json arr = json::array();
  for (const Asset& a : assets) {
    json j = {{"ip", a.ip}};
    if (!a.mac.empty()) j["mac"] = a.mac;
    if (!a.mac_vendor.empty()) j["mac_vendor"] = a.mac_vendor;
    if (a.mac_local) j["mac_local"] = true;
    if (!a.vlans.empty()) j["vlans"] = a.vlans;
    if (!a.hostname.empty()) j["hostname"] = a.hostname;
    json dh = json::object();
    if (!a.dhcp_vendor_class.empty()) dh["vendor_class"] = a.dhcp_vendor_class;
    if (!a.dhcp_fingerprint.empty()) dh["fingerprint"] = a.dhcp_fingerprint;
    if (!a.dhcp_fingerprint6.empty()) dh["fingerprint6"] = a.dhcp_fingerprint6;
    if (!dh.empty()) j["dhcp"] = dh;
    if (!a.device.empty()) j["device"] = a.device;
    if (!a.zone.empty()) j["zone"] = a.zone;
    j["model"] = a.model;
    json d = json::object();
    if (!a.ae_titles.empty()) d["ae_titles"] = a.ae_titles;
    if (!a.impl_class_uid.empty()) d["impl_class_uid"] = a.impl_class_uid;
    if (!a.impl_version.empty()) d["impl_version"] = a.impl_version;
    if (!a.product.empty()) d["product"] = a.product;
    if (!a.product_vendor.empty()) d["product_vendor"] = a.product_vendor;
    if (!a.manufacturer.empty()) d["manufacturer"] = a.manufacturer;
    if (!a.model_name.empty()) d["model_name"] = a.model_name;
    if (!a.software_versions.empty()) d["software_versions"] = a.software_versions;
    if (!a.station_name.empty()) d["station_name"] = a.station_name;
    if (!a.device_serial.empty()) d["device_serial"] = a.device_serial;
    if (!d.empty()) j["dicom"] = d;
    if (!a.hl7_apps_json.empty()) j["hl7_apps"] = a.hl7_apps_json;
    if (!a.identities_json.empty()) j["identities"] = a.identities_json;
    if (!a.sni.empty()) j["tls_sni"] = a.sni;
    if (!a.tls_versions.empty()) j["tls_versions"] = a.tls_versions;
    if (!a.dns_names.empty()) j["dns_names"] = a.dns_names;
    if (!a.offered_json.empty()) j["services_offered"] = a.offered_json;
    if (!a.used_json.empty()) j["services_used"] = a.used_json;
    j["first_seen"] = a.first_seen;
    j["last_seen"] = a.last_seen;
    j["flows"] = a.flows;
    j["bytes"] = a.bytes;
    j["alerts"] = a.alerts;
    arr.push_back(std::move(j));
  }
  return arr.dump(2);
}

}  // namespace medmon::report
