#pragma once
// The human summary printed at the end of `analyze`, and the alert tally behind --fail-on.
#include <array>
#include <cstdio>
#include <map>
#include <string>

#include "sensor/output/event_output.h"

namespace medmon {

enum class Severity : int { info = 0, low = 1, medium = 2, high = 3, critical = 4, none = 5 };
bool parse_severity(const std::string& s, Severity& out);

class Summary : public EventObserver {
 public:
  void on_event(std::string_view type, std::string_view line) override;
  void print(std::FILE* out, const Counters& counters, uint64_t packets, uint64_t bytes) const;
  uint64_t alerts_at_or_above(Severity s) const;

 private:
  std::map<std::string, uint64_t> apps_;      // flows by detected protocol
  std::map<std::string, uint64_t> verdicts_;
  std::map<std::string, uint64_t> rules_;     // alerts by rule
  std::array<uint64_t, 5> by_severity_{};
  // Per device (policy name, else the address of an inventoried asset): flows by verdict, alerts.
  struct DeviceRow {
    std::string ip, model;
    uint64_t flows = 0, declared = 0, undeclared = 0, forbidden = 0, alerts = 0;
    int worst = -1;  // highest alert severity
  };
  static constexpr size_t kMaxDevices = 4096;
  std::map<std::string, DeviceRow> devices_;
  std::map<std::string, std::string> asset_name_;  // ip -> device name ("" = unbound)
  DeviceRow* device_row(std::string_view key);
  uint64_t flows_ = 0, anomalies_ = 0, alerts_ = 0;
};

}  // namespace medmon
