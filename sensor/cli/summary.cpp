#include "sensor/cli/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
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
// End of the JSON string whose body starts at `from` (index of the closing quote), npos if none.
size_t closing_quote(std::string_view line, size_t from) {
  for (size_t q = line.find('"', from); q != std::string_view::npos; q = line.find('"', q + 1)) {
    size_t bs = 0;
    while (q - bs > from && line[q - bs - 1] == '\\') ++bs;
    if (bs % 2 == 0) return q;
  }
  return std::string_view::npos;
}

// First value of each string field named in `keys` (at any depth), in one pass over the line:
// every event goes through here, and searching the line once per key costs more than the rest
// of the summary together.
template <size_t N>
std::array<std::string_view, N> string_fields(std::string_view line, const std::array<std::string_view, N>& keys) {
  std::array<std::string_view, N> out{};
  size_t found = 0, i = 0;
  while (found < N) {
    size_t q = line.find('"', i);
    if (q == std::string_view::npos) break;
    size_t ke = closing_quote(line, q + 1);
    if (ke == std::string_view::npos) break;
    i = ke + 1;
    if (ke + 2 >= line.size() || line[ke + 1] != ':' || line[ke + 2] != '"') continue;
    size_t ve = closing_quote(line, ke + 3);
    if (ve == std::string_view::npos) break;
    std::string_view key = line.substr(q + 1, ke - q - 1);
    for (size_t k = 0; k < N; ++k)
      if (out[k].data() == nullptr && key == keys[k]) { out[k] = line.substr(ke + 3, ve - ke - 3); ++found; break; }
    i = ve + 1;
  }
  for (auto& v : out) if (v.data() == nullptr) v = std::string_view("", 0);
  return out;
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
    auto f = string_fields<3>(line, {"ip", "device", "model"});
    std::string ip(f[0]);
    std::string name(f[1]);
    if (asset_name_.size() < kMaxDevices || asset_name_.count(ip)) asset_name_[ip] = name;
    if (DeviceRow* r = device_row(name.empty() ? std::string_view(ip) : std::string_view(name))) {
      r->ip = ip;
      r->model = std::string(f[2]);
    }
    return;
  }
  std::array<std::string_view, 7> ff{};
  if (type == "flow") ff = string_fields<7>(line, {"verdict", "src_device", "src_ip", "dst_device", "dst_ip", "app", "protocol"});
  if (type == "flow") {
    auto v = ff[0];
    for (int side = 0; side < 2; ++side) {
      std::string dev(ff[1 + 2 * side]);
      std::string ip(ff[2 + 2 * side]);
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
    auto af = string_fields<2>(line, {"device", "severity"});
    if (DeviceRow* r = device_row(af[0]); r && parse_severity(std::string(af[1]), s)) {
      ++r->alerts;
      r->worst = std::max(r->worst, static_cast<int>(s));
    }
  }
  if (type == "flow") {
    ++flows_;
    std::string_view app = ff[5];
    if (app.empty()) app = ff[6];
    if (app.empty()) app = "-";
    ++apps_[std::string(app)];
    auto v = ff[0];
    if (!v.empty()) ++verdicts_[std::string(v)];
  } else if (type == "anomaly") {
    ++anomalies_;
  } else if (type == "alert") {
    ++alerts_;
    Severity s;
    auto af = string_fields<2>(line, {"severity", "rule"});
    if (parse_severity(std::string(af[0]), s) && s != Severity::none)
      ++by_severity_[static_cast<int>(s)];
    ++rules_[std::string(af[1])];
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
    // Only the first rows are printed: order just those.
    auto shown = rows.begin() + static_cast<std::ptrdiff_t>(std::min<size_t>(rows.size(), 21));
    std::partial_sort(rows.begin(), shown, rows.end(), [](auto* a, auto* b) {
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
