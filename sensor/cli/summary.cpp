#include "sensor/cli/summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
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
// Unescaped double quotes of a JSON line, in order: the string delimiters. 16 bytes per step;
// only blocks holding a backslash (or following one) are walked byte by byte.
class QuoteScanner {
 public:
  explicit QuoteScanner(std::string_view s) : s_(s) {}
  size_t next() {
    while (!mask_) {
      if (pos_ >= s_.size()) return std::string_view::npos;
      load();
    }
    size_t at = base_ + static_cast<size_t>(__builtin_ctz(mask_));
    mask_ &= mask_ - 1;
    return at;
  }

 private:
  void load() {
    base_ = pos_;
    size_t n = std::min<size_t>(16, s_.size() - pos_);
    pos_ += n;
    const char* d = s_.data() + base_;
#if defined(__SSE2__)
    if (n == 16 && !escaped_) {
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d));
      unsigned q = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8('"'))));
      unsigned bs = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8('\\'))));
      if (!bs) { mask_ = q; return; }
    }
#endif
    uint32_t m = 0;
    for (size_t k = 0; k < n; ++k) {
      if (escaped_) { escaped_ = false; continue; }
      if (d[k] == '\\') escaped_ = true;
      else if (d[k] == '"') m |= 1u << k;
    }
    mask_ = m;
  }
  std::string_view s_;
  size_t pos_ = 0, base_ = 0;
  uint32_t mask_ = 0;
  bool escaped_ = false;
};

// First value of each string field named in `keys` (at any depth), in one pass over the line:
// every event goes through here, and searching the line once per key costs more than the rest
// of the summary together.
template <size_t N>
std::array<std::string_view, N> string_fields(std::string_view line, const std::array<std::string_view, N>& keys) {
  std::array<std::string_view, N> out{};
  for (auto& v : out) v = std::string_view("", 0);
  std::array<bool, N> have{};
  size_t found = 0;
  QuoteScanner qs(line);
  // Quotes pair up: every pair is one string; a key string followed by :" has a string value.
  size_t q0 = qs.next();
  while (q0 != std::string_view::npos && found < N) {
    size_t q1 = qs.next();
    if (q1 == std::string_view::npos) break;
    if (q1 + 2 < line.size() && line[q1 + 1] == ':' && line[q1 + 2] == '"') {
      size_t v0 = qs.next(), v1 = qs.next();
      if (v0 != q1 + 2 || v1 == std::string_view::npos) break;
      std::string_view key = line.substr(q0 + 1, q1 - q0 - 1);
      for (size_t k = 0; k < N; ++k)
        if (!have[k] && key == keys[k]) { out[k] = line.substr(v0 + 1, v1 - v0 - 1); have[k] = true; ++found; break; }
    }
    q0 = qs.next();
  }
  return out;
}

// True when the flow's ndpi object says "guessed": true (written before its risks, after names
// whose quotes inside are escaped).
bool guessed(std::string_view line) {
  size_t at = line.find("\"ndpi\":{");
  if (at == std::string_view::npos) return false;
  size_t g = line.find("\"guessed\":true", at);
  return g != std::string_view::npos && g < line.find("\"risks\":", at);
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
    if (line.find("\"changes\":[\"withdrawn\"]") != std::string_view::npos) {
      // Known only from a DHCP exchange its client declined: no device there.
      auto it = devices_.find(name.empty() ? ip : name);
      if (it != devices_.end() && it->second.ip == ip && it->second.flows == 0) devices_.erase(it);
      asset_name_.erase(ip);
      return;
    }
    if (asset_name_.size() < kMaxDevices || asset_name_.count(ip)) asset_name_[ip] = name;
    if (DeviceRow* r = device_row(name.empty() ? std::string_view(ip) : std::string_view(name))) {
      r->ip = ip;
      r->model = std::string(f[2]);
    }
    return;
  }
  std::array<std::string_view, 9> ff{};
  if (type == "flow")
    ff = string_fields<9>(line, {"verdict", "src_device", "src_ip", "dst_device", "dst_ip", "app", "protocol",
                                 "src_verdict", "dst_verdict"});
  if (type == "flow") {
    // Each device counts its own side's verdict when the flow states the sides' (the flow's
    // verdict is the worse of two devices'); older events have only the flow's.
    bool sided = !ff[7].empty() || !ff[8].empty();
    for (int side = 0; side < 2; ++side) {
      auto v = sided ? ff[7 + side] : ff[0];
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
    // A protocol nDPI only guessed from the port (ndpi.guessed) is not one it found in the bytes:
    // the flow counts as Unknown, as nDPI names what it could not recognise (the policy and the
    // asset inventory do not take a guess for a protocol either).
    if (app.empty()) app = guessed(line) ? std::string_view("Unknown") : ff[6];
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
    // Addresses are shown whole (two IPv6 link-local ones cut short read alike): a device without
    // a name is its address.
    size_t dev_w = 18, ip_w = 16;
    for (auto it = rows.begin(); it != shown; ++it) {
      const std::string& ip = (*it)->second.ip;
      ip_w = std::max(ip_w, std::min<size_t>(ip.size(), 45));
      if ((*it)->first == ip) dev_w = std::max(dev_w, std::min<size_t>(ip.size(), 45));
    }
    fmt::print(out, "  devices {}:\n", devices_.size());
    fmt::print(out, "    {:<{}} {:<{}} {:<16} {:>6} {:>9} {:>11} {:>10} {:>7}  {}\n", "DEVICE", dev_w, "IP", ip_w, "MODEL",
               "FLOWS", "DECLARED", "UNDECLARED", "FORBIDDEN", "ALERTS", "WORST");
    size_t n = 0;
    for (auto* e : rows) {
      if (n++ == 20) { fmt::print(out, "    ... {} more (medmon assets EVENTS.jsonl)\n", rows.size() - 20); break; }
      const DeviceRow& r = e->second;
      fmt::print(out, "    {:<{}} {:<{}} {:<16} {:>6} {:>9} {:>11} {:>10} {:>7}  {}\n",
                 e->first.substr(0, e->first == r.ip ? dev_w : 18), dev_w, r.ip.substr(0, ip_w), ip_w,
                 (r.model.empty() ? std::string("-") : r.model).substr(0, 16), r.flows, r.declared,
                 r.undeclared, r.forbidden, r.alerts, r.worst >= 0 ? names[r.worst] : "-");
    }
  }
  uint64_t gaps = c.get("tcp.gaps"), evicted = c.get("flows.evicted");
  if (gaps || evicted) fmt::print(out, "  tcp gaps {}   flows evicted {}\n", gaps, evicted);
}

}  // namespace medmon
