#include "sensor/cli/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace medmon {

bool parse_severity(const std::string& s, Severity& out) {
  static const std::map<std::string, Severity> m = {{"info", Severity::info}, {"low", Severity::low},
                                                    {"medium", Severity::medium}, {"high", Severity::high},
                                                    {"critical", Severity::critical}, {"none", Severity::none}};
  auto it = m.find(s);
  if (it == m.end()) return false;
  out = it->second;
  return true;
}

namespace {
// Value of the first string field `key` in a JSON line (events are written by us: no nesting
// ambiguity for these keys).
std::string_view string_field(std::string_view line, std::string_view key) {
  std::string pat = "\"" + std::string(key) + "\":\"";
  size_t p = line.find(pat);
  if (p == std::string_view::npos) return {};
  p += pat.size();
  size_t e = line.find('"', p);
  if (e == std::string_view::npos) return {};
  return line.substr(p, e - p);
}
}  // namespace

Summary::DeviceRow* Summary::device_row(std::string_view key) {
  if (key.empty()) return nullptr;
  auto it = devices_.find(std::string(key));
  if (it != devices_.end()) return &it->second;
  if (devices_.size() >= kMaxDevices) return nullptr;
  return &devices_[std::string(key)];
}

void Summary::on_event(std::string_view type, std::string_view line) {
  if (type == "asset") {
    std::string ip(string_field(line, "ip"));
    std::string name(string_field(line, "device"));
    if (asset_name_.size() < kMaxDevices || asset_name_.count(ip)) asset_name_[ip] = name;
    if (DeviceRow* r = device_row(name.empty() ? std::string_view(ip) : std::string_view(name))) {
      r->ip = ip;
      r->model = std::string(string_field(line, "model"));
    }
    return;
  }
  if (type == "flow") {
    auto v = string_field(line, "verdict");
    for (const char* side : {"src", "dst"}) {
      std::string dev(string_field(line, std::string(side) + "_device"));
      std::string ip(string_field(line, std::string(side) + "_ip"));
      // A verdict judges the flow for the policy's device: unbound peers only count flows.
      bool bound = !dev.empty();
      if (!bound && asset_name_.count(ip) && asset_name_[ip].empty()) dev = ip;
      DeviceRow* r = dev.empty() ? nullptr : device_row(dev);
      if (!r) continue;
      if (r->ip.empty()) r->ip = ip;
      ++r->flows;
      if (!bound) continue;
      if (v == "declared") ++r->declared;
      else if (v == "undeclared") ++r->undeclared;
      else if (v == "forbidden") ++r->forbidden;
    }
  }
  if (type == "alert") {
    Severity s;
    if (DeviceRow* r = device_row(string_field(line, "device")); r && parse_severity(std::string(string_field(line, "severity")), s)) {
      ++r->alerts;
      r->worst = std::max(r->worst, static_cast<int>(s));
    }
  }
  if (type == "flow") {
    ++flows_;
    std::string_view app;
    size_t p = line.find("\"app\":\"");
    if (p != std::string_view::npos) app = string_field(line.substr(p), "app");
    if (app.empty()) app = string_field(line, "protocol");
    if (app.empty()) app = "-";
    ++apps_[std::string(app)];
    auto v = string_field(line, "verdict");
    if (!v.empty()) ++verdicts_[std::string(v)];
  } else if (type == "anomaly") {
    ++anomalies_;
  } else if (type == "alert") {
    ++alerts_;
    Severity s;
    if (parse_severity(std::string(string_field(line, "severity")), s) && s != Severity::none)
      ++by_severity_[static_cast<int>(s)];
    ++rules_[std::string(string_field(line, "rule"))];
  }
}

uint64_t Summary::alerts_at_or_above(Severity s) const {
  uint64_t n = 0;
  for (int i = static_cast<int>(s); i < 5; ++i) n += by_severity_[i];
  return n;
}

void Summary::print(std::FILE* out, const Counters& c, uint64_t packets, uint64_t bytes) const {
  fmt::print(out, "medmon summary\n");
  fmt::print(out, "  packets {:>12}   bytes {:>14}   flows {:>8}   anomalies {:>6}\n", packets, bytes, flows_, anomalies_);
  if (!apps_.empty()) {
    std::vector<std::pair<uint64_t, std::string>> top;
    for (auto& [k, v] : apps_) top.emplace_back(v, k);
    std::sort(top.begin(), top.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    fmt::print(out, "  flows by protocol:");
    size_t n = 0;
    for (auto& [v, k] : top) { if (n++ == 8) break; fmt::print(out, " {} {}", k, v); }
    fmt::print(out, "\n");
  }
  if (!verdicts_.empty()) {
    fmt::print(out, "  verdicts:");
    for (auto& [k, v] : verdicts_) fmt::print(out, " {} {}", k, v);
    fmt::print(out, "\n");
  }
  static const char* names[] = {"info", "low", "medium", "high", "critical"};
  fmt::print(out, "  alerts {:>6}:", alerts_);
  for (int i = 4; i >= 0; --i) fmt::print(out, " {} {}", names[i], by_severity_[i]);
  fmt::print(out, "\n");
  if (!rules_.empty()) {
    std::vector<std::pair<uint64_t, std::string>> top;
    for (auto& [k, v] : rules_) top.emplace_back(v, k);
    std::sort(top.begin(), top.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
    fmt::print(out, "  top findings:\n");
    size_t n = 0;
    for (auto& [v, k] : top) { if (n++ == 10) break; fmt::print(out, "    {:>6}  {}\n", v, k); }
  }
  if (!devices_.empty()) {
    // Devices with alerts first, then by flows.
    std::vector<const std::pair<const std::string, DeviceRow>*> rows;
    for (auto& e : devices_) rows.push_back(&e);
    std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) {
      if (a->second.worst != b->second.worst) return a->second.worst > b->second.worst;
      if (a->second.flows != b->second.flows) return a->second.flows > b->second.flows;
      return a->first < b->first;
    });
    fmt::print(out, "  devices {}:\n", devices_.size());
    fmt::print(out, "    {:<18} {:<16} {:<16} {:>6} {:>9} {:>11} {:>10} {:>7}  {}\n", "DEVICE", "IP", "MODEL", "FLOWS",
               "DECLARED", "UNDECLARED", "FORBIDDEN", "ALERTS", "WORST");
    size_t n = 0;
    for (auto* e : rows) {
      if (n++ == 20) { fmt::print(out, "    ... {} more (medmon assets EVENTS.jsonl)\n", rows.size() - 20); break; }
      const DeviceRow& r = e->second;
      fmt::print(out, "    {:<18} {:<16} {:<16} {:>6} {:>9} {:>11} {:>10} {:>7}  {}\n", e->first.substr(0, 18),
                 r.ip.substr(0, 16), (r.model.empty() ? std::string("-") : r.model).substr(0, 16), r.flows, r.declared,
                 r.undeclared, r.forbidden, r.alerts, r.worst >= 0 ? names[r.worst] : "-");
    }
  }
  uint64_t gaps = c.get("tcp.gaps"), evicted = c.get("flows.evicted");
  if (gaps || evicted) fmt::print(out, "  tcp gaps {}   flows evicted {}\n", gaps, evicted);
}

}  // namespace medmon
