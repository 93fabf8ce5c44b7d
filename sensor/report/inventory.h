#pragma once
// The asset inventory of an analysis, rebuilt from its `asset` events (the last value of each
// field, lists merged; several workers may each have reported part of a device), with the
// device names and zones the policy wrote into flow headers.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "sensor/report/event_log.h"

namespace medmon::report {

struct Asset {
  std::string ip, mac, mac_vendor, device, zone, model = "unbound";
  std::vector<uint64_t> vlans;
  std::vector<std::string> ae_titles, hl7_apps, sni, dns_names, offered, used;
  std::vector<std::string> identities;  // "hl7 PRT: udi=... serial=..."
  std::string impl_class_uid, impl_version, product, manufacturer, model_name, software_versions, station_name,
      device_serial;
  std::string first_seen, last_seen;
  uint64_t flows = 0, bytes = 0, alerts = 0;
};

std::vector<Asset> build_inventory(const EventLog& log);

void print_inventory_table(std::FILE* out, const std::vector<Asset>& assets);
// JSON array, one object per device (same field names as the `asset` event).
std::string inventory_json(const std::vector<Asset>& assets);

}  // namespace medmon::report
