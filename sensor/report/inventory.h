#pragma once
// The asset inventory of an analysis, rebuilt from its `asset` events (the last value of each
// field, lists merged; several workers may each have reported part of a device), with the
// device names and zones the policy wrote into flow headers.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sensor/report/event_log.h"

namespace medmon::report {

struct Asset {
  std::string ip, mac, mac_vendor, device, zone, model = "unbound";
  std::string hostname, dhcp_vendor_class, dhcp_fingerprint;  // what its MAC said over DHCP
  std::string dhcp_fingerprint6;                               // and over DHCPv6 (the ORO)
  bool mac_local = false;
  std::vector<uint64_t> vlans;
  // As text for the table and the report: "RIS@HOSP", "hl7 PRT: udi=... serial=...", "dicom/tcp/104".
  std::vector<std::string> ae_titles, hl7_apps, sni, tls_versions, dns_names, offered, used;
  std::vector<std::string> identities;
  // The same as the asset event has them, for --json.
  std::vector<nlohmann::json> hl7_apps_json, identities_json, offered_json, used_json;
  std::string impl_class_uid, impl_version, product, product_vendor, manufacturer, model_name, software_versions,
      station_name, device_serial;
  std::string first_seen, last_seen;
  uint64_t flows = 0, bytes = 0, alerts = 0;
  // Another device took the address at this time (an event with `replaced`): earlier flows were
  // the former device's. Empty when it never changed hands.
  std::string since;

  // The vendor to show: the registry's, or why there is none.
  std::string vendor_shown() const { return mac_vendor.empty() && mac_local ? "(locally administered)" : mac_vendor; }
};

// `bound`: the fingerprint bindings of the judge that wrote the events, when known (else
// fingerprint_bindings(log)).
std::vector<Asset> build_inventory(const EventLog& log, const std::map<std::string, std::string>* bound = nullptr);

// Addresses the policy bound to a device by its fingerprint (a DICOM calling AE, an HL7 MSH-3):
// learnt from traffic, they are in no event header; the alerts name such a device, and the header
// or the alert's peer names the other side. Address -> device name; the first binding wins, as in
// the policy (an address it learnt keeps its device).
std::map<std::string, std::string> fingerprint_bindings(const EventLog& log);

void print_inventory_table(std::FILE* out, const std::vector<Asset>& assets);
// JSON array, one object per device: the `asset` event's members and shapes (less `changes`),
// plus `alerts`.
std::string inventory_json(const std::vector<Asset>& assets);

}  // namespace medmon::report
