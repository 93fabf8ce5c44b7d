#include "sensor/report/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>

#include "sensor/report/inventory.h"

namespace medmon::report {

using nlohmann::json;

std::string html_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    auto u = static_cast<unsigned char>(c);
    auto next = i + 1 < s.size() ? static_cast<unsigned char>(s[i + 1]) : 0;
    // Values from the wire may hold control characters (C0, DEL, UTF-8 encoded C1): shown as
    // \xNN, as the inventory table shows them, not passed on to whatever displays the page.
    if (u < 0x20 || u == 0x7f) {
      o += fmt::format("\\x{:02x}", u);
      continue;
    }
    if (u == 0xc2 && next >= 0x80 && next <= 0x9f) {
      o += fmt::format("\\x{:02x}\\x{:02x}", u, next);
      ++i;
      continue;
    }
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&#39;"; break;
      default: o.push_back(c);
    }
  }
  return o;
}

namespace {

using E = std::string (*)(std::string_view);
std::string h(std::string_view s) { return html_escape(s); }

// RFC 3339 (as medmon writes it) -> seconds since the epoch (negative before 1970); NaN when
// unparsable.
double parse_ts(const std::string& t) {
  constexpr double kBad = std::numeric_limits<double>::quiet_NaN();
  if (t.size() < 19) return kBad;
  auto n = [&](size_t p, size_t len) {
    long v = 0;
    for (size_t i = p; i < p + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return -1L;
      v = v * 10 + (t[i] - '0');
    }
    return v;
  };
  long y = n(0, 4), mo = n(5, 2), d = n(8, 2), hh = n(11, 2), mi = n(14, 2), s = n(17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || hh < 0 || mi < 0 || s < 0) return kBad;
  double frac = 0;
  if (t.size() > 20 && t[19] == '.') {
    double scale = 0.1;
    for (size_t i = 20; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i, scale /= 10) frac += (t[i] - '0') * scale;
  }
  y -= mo <= 2;
  long era = (y >= 0 ? y : y - 399) / 400;
  long yoe = y - era * 400;
  long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  double days = static_cast<double>(era * 146097 + doe - 719468);
  return ((days * 24 + hh) * 60 + mi) * 60 + s + frac;
}

// A time (seconds since the epoch, before 1970 too) as "HH:MM:SS", or "YYYY-MM-DD HH:MM:SS"
// with `with_date`, in UTC.
std::string utc_label(double when, bool with_date) {
  when = std::clamp(std::floor(when), -1e13, 1e13);  // parse_ts gives years 0-9999
  long days = static_cast<long>(std::floor(when / 86400));
  long sod = static_cast<long>(when) - days * 86400;
  std::string hms = fmt::format("{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60);
  if (!with_date) return hms;
  // Days since 1970-01-01 to a civil date (the inverse of parse_ts's arithmetic).
  long z = days + 719468;
  long era = (z >= 0 ? z : z - 146096) / 146097;
  long doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long mp = (5 * doy + 2) / 153;
  long d = doy - (153 * mp + 2) / 5 + 1;
  long m = mp < 10 ? mp + 3 : mp - 9;
  long y = yoe + era * 400 + (m <= 2);
  return fmt::format("{:04}-{:02}-{:02} {}", y, m, d, hms);
}

// Whether two times fall on different UTC days (a chart spanning them needs dates).
bool different_days(double a, double b) { return std::floor(a / 86400) != std::floor(b / 86400); }

// At most n bytes of s, not cutting a UTF-8 character in two (a half character shows as U+FFFD).
std::string_view utf8_prefix(std::string_view s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string human_bytes(uint64_t b) {
  if (b < 1024) return fmt::format("{} B", b);
  if (b < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  if (b < 1024ull * 1024 * 1024) return fmt::format("{:.1f} MiB", b / 1048576.0);
  return fmt::format("{:.2f} GiB", b / 1073741824.0);
}

int sev_rank(const std::string& s) {
  if (s == "critical") return 4;
  if (s == "high") return 3;
  if (s == "medium") return 2;
  if (s == "low") return 1;
  return 0;
}
const char* kSev[] = {"info", "low", "medium", "high", "critical"};

int verdict_rank(const std::string& v) {
  if (v == "forbidden") return 3;
  if (v == "undeclared") return 2;
  if (v == "declared") return 1;
  return 0;
}
const char* verdict_label(const std::string& v) {
  if (v == "forbidden") return "forbidden";
  if (v == "undeclared") return "seen, not declared";
  if (v == "declared") return "declared and seen";
  return "not judged";
}
const char* verdict_color(int rank) {
  switch (rank) {
    case 3: return "#c62828";
    case 2: return "#ef6c00";
    case 1: return "#2e7d32";
    default: return "#78909c";
  }
}

// A protocol's colour in every chart of the report.
const char* kPalette[] = {"#1565c0", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#ad1457", "#5d4037", "#9e9d24"};

// One device of the report: a policy device (by name) or, without a policy, an address.
struct FlowGroup {
  std::string dir, peer, peer_name, peer_zone, proto, app, rule, verdict;
  uint64_t port = 0, count = 0, bytes = 0;
  // Flows known to have carried no payload either way (refused or unanswered connection
  // attempts): they match a declared rule on ports, but show nothing of the exchange.
  uint64_t no_data = 0;
  std::set<std::string> mds2;
  std::set<std::string> declared_rules;  // every declared rule its flows matched, not only the shown one
  bool phi = false;
};

// A flow that carried PHI fields in clear, as the device's findings list it.
struct PhiRow {
  std::string ts, flow_id, src_ip, dst_ip, app, fields;
  uint64_t src_port = 0, dst_port = 0;
};

// A device's traffic as its charts show it: bytes by protocol, over time and by peer.
struct Traffic {
  static constexpr int kBuckets = 40;  // bars of the time chart
  double t0 = 0, t1 = 0;  // the first flow's start, the last flow's end
  bool timed = false;     // whether a flow's time could be read (t0, t1 set)
  std::map<std::string, std::vector<double>> series;             // app -> bytes per bucket
  std::map<std::string, std::map<std::string, double>> by_peer;  // peer -> app -> bytes
};

// One device of the report: a policy device (by name) or, without a policy, an address. Its flows
// are not kept (a day of a SPAN port has millions): what the page shows of them is summed up as
// they are read, by group (direction, peer, protocol, port, application), by verdict, over time
// and by peer.
struct Dev {
  std::string key, name, zone, model = "unbound";
  std::string anchor;  // its section's id (from the name, made safe and unique)
  std::set<std::string> ips;
  std::vector<const json*> alerts;
  uint64_t flows = 0;                           // its flows
  std::map<std::string, uint64_t> verdicts;     // its own side's verdict ("" unjudged) -> flows
  std::map<std::string, FlowGroup> groups;      // by direction, peer, protocol, port, application
  uint64_t ungrouped = 0;                       // flows of groups past the cap (in no row)
  std::vector<PhiRow> phi;                      // flows with PHI in clear, up to a cap
  uint64_t phi_more = 0;                        // and those past it
  Traffic traffic;
  bool peers_folded = false;                    // peers past the cap are summed up as one
  int verdict = 0;  // 0 pass, 1 review, 2 fail, -1 not judged
};

// Bounds on what the report keeps of the flows, whatever their number (docs/report.md).
constexpr size_t kMaxGroupsPerDevice = 4096, kMaxGroups = 65536;  // rows of the flow tables
constexpr size_t kMaxPhiRowsPerDevice = 1000, kMaxPhiRows = 20000;
constexpr size_t kMaxPeersPerDevice = 4096, kMaxPeers = 65536;  // peers of the traffic charts
constexpr const char* kOtherPeers = "(other peers)";

// Whether the device is the flow's client (source) side.
bool is_src(const json& f, const Dev& d) {
  std::string s = str(f, "src_device"), t = str(f, "dst_device");
  if (s == d.key && t != d.key) return true;
  if (t == d.key && s != d.key) return false;
  return d.ips.count(str(f, "src_ip")) > 0;
}

// The flow's verdict and rule for this device: its own side's when the event states the sides' (a
// flow between two devices can be declared for one and undeclared for the other; a side without a
// verdict was not judged), else the flow's (events written before the sides were).
std::pair<std::string, std::string> verdict_for(const json& f, const Dev& d) {
  if (!f.contains("src_verdict") && !f.contains("dst_verdict")) return {str(f, "verdict"), str(f, "verdict_rule")};
  bool src = is_src(f, d);
  return {str(f, src ? "src_verdict" : "dst_verdict"), str(f, src ? "src_verdict_rule" : "dst_verdict_rule")};
}

// What the report knows of the events beyond one flow: the alerts of each flow, and the devices
// the policy bound by fingerprint (no header names them).
struct Context {
  std::unordered_map<std::string, std::vector<const json*>> alerts_of;  // flow id -> its alerts
  std::map<std::string, std::string> bound;                             // address -> device
};

// The name of a flow side's device: the header's, else the fingerprint binding of its address
// when the policy judged that side.
std::string side_device(const json& f, int side, const Context& c) {
  std::string name = str(f, side ? "dst_device" : "src_device");
  if (!name.empty() || c.bound.empty()) return name;
  if (!f.contains(side ? "dst_verdict" : "src_verdict")) return {};
  auto it = c.bound.find(str(f, side ? "dst_ip" : "src_ip"));
  return it == c.bound.end() ? std::string() : it->second;
}

// The MDS2 questions a flow contradicts for this device: the flow's `mds2` belongs to the side
// whose verdict is the flow's (the worse; on a tie the client's), and each side's own alerts on
// the flow for its rule cite its own answers.
std::set<std::string> mds2_for(const json& f, const Dev& d, bool src, const Context& c) {
  std::set<std::string> ids;
  const bool sides = f.contains("src_verdict") || f.contains("dst_verdict");  // else: events before the sides
  int src_rank = verdict_rank(str(f, "src_verdict")), dst_rank = verdict_rank(str(f, "dst_verdict"));
  std::string rule = str(f, src ? "src_verdict_rule" : "dst_verdict_rule");
  bool owner = !sides || ((src ? src_rank >= dst_rank : dst_rank > src_rank) && rule == str(f, "verdict_rule"));
  if (owner)
    if (auto it = f.find("mds2"); it != f.end() && it->is_array())
      for (auto& m : *it) if (m.is_string()) ids.insert(m.get<std::string>());
  auto it = c.alerts_of.find(str(f, "flow_id"));
  if (!sides || rule.empty() || it == c.alerts_of.end()) return ids;
  for (const json* e : it->second) {
    const json& a = member(*e, "alert");
    if (str(a, "device") != d.key || str(a, "rule") != rule) continue;
    if (auto m = a.find("mds2"); m != a.end() && m->is_array())
      for (auto& q : *m) {
        if (q.is_string()) ids.insert(q.get<std::string>());
        else if (std::string id = str(q, "id"); !id.empty()) ids.insert(id);
      }
  }
  return ids;
}

// Adds a flow to the device's groups (direction, peer, protocol, port and application); false
// when it would open a group past the caps (`groups_left` of all devices).
bool add_to_group(Dev& d, const json& f, const Context& c, size_t& groups_left) {
  bool out_dir = is_src(f, d);
  std::string peer = str(f, out_dir ? "dst_ip" : "src_ip");
  std::string app = flow_app(f);
  uint64_t port = flow_port(f);
  std::string key = fmt::format("{}|{}|{}|{}|{}", out_dir, peer, str(f, "proto"), port, app);
  auto it = d.groups.find(key);
  if (it == d.groups.end()) {
    if (groups_left == 0 || d.groups.size() >= kMaxGroupsPerDevice) return false;
    --groups_left;
    it = d.groups.emplace(std::move(key), FlowGroup()).first;
  }
  FlowGroup& fg = it->second;
  fg.dir = out_dir ? "out" : "in";
  fg.peer = peer;
  fg.peer_name = side_device(f, out_dir ? 1 : 0, c);
  fg.peer_zone = str(f, out_dir ? "dst_zone" : "src_zone");
  fg.proto = str(f, "proto");
  fg.port = port;
  fg.app = app;
  ++fg.count;
  const json& fl = member(f, "flow");
  fg.bytes += num(fl, "bytes_toserver") + num(fl, "bytes_toclient");
  if (fl.contains("payload_bytes_toserver") && num(fl, "payload_bytes_toserver") + num(fl, "payload_bytes_toclient") == 0)
    ++fg.no_data;
  auto [v, rule] = verdict_for(f, d);
  if (verdict_rank(v) > verdict_rank(fg.verdict)) { fg.verdict = v; fg.rule = rule; }
  if (v == "declared" && !rule.empty()) fg.declared_rules.insert(rule);
  std::set<std::string> mds2 = mds2_for(f, d, out_dir, c);
  fg.mds2.insert(mds2.begin(), mds2.end());
  if (f.contains("phi_cleartext")) fg.phi = true;
  return true;
}

// The device's flow groups, the worst verdict first, then the most bytes.
std::vector<FlowGroup> group_flows(const Dev& d) {
  std::vector<FlowGroup> groups;
  for (auto& [k, v] : d.groups) groups.push_back(v);
  std::sort(groups.begin(), groups.end(), [](const FlowGroup& a, const FlowGroup& b) {
    if (verdict_rank(a.verdict) != verdict_rank(b.verdict)) return verdict_rank(a.verdict) > verdict_rank(b.verdict);
    return a.bytes > b.bytes;
  });
  return groups;
}

// A flow's start and end (seconds since the epoch); the event's time when the flow has no start;
// NaN for both when no time could be read (a damaged events file).
std::pair<double, double> flow_interval(const json& f) {
  const json& fl = member(f, "flow");
  double s = parse_ts(str(fl, "start")), e = parse_ts(str(fl, "end"));
  if (std::isnan(s)) s = parse_ts(str(f, "ts"));
  if (std::isnan(e) || e < s) e = s;
  return {s, e};
}

// The height of the time chart's highest stack of bars, at least 1.
double tallest_bucket(const Traffic& t) {
  double maxb = 0;
  for (int b = 0; b < Traffic::kBuckets; ++b) {
    double sum = 0;
    for (auto& [app, v] : t.series) sum += v[static_cast<size_t>(b)];
    maxb = std::max(maxb, sum);
  }
  if (maxb <= 0) maxb = 1;
  return maxb;
}

// The peers that exchanged the most bytes, most first (ties by name): (bytes, peer).
std::vector<std::pair<double, std::string>> top_peers(const Traffic& t, size_t n) {
  std::vector<std::pair<double, std::string>> peers;
  for (auto& [p, m] : t.by_peer) {
    double s = 0;
    for (auto& [a, b] : m) s += b;
    peers.emplace_back(s, p);
  }
  std::sort(peers.begin(), peers.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  if (peers.size() > n) peers.resize(n);
  return peers;
}

// The items of a list, separated by commas, as the identity and inventory tables show them.
std::string comma_list(const std::vector<std::string>& l) {
  std::string s;
  for (auto& x : l) s += (s.empty() ? "" : ", ") + x;
  return s;
}

const char* verdict_name(int v) {
  switch (v) {
    case 2: return "FAIL";
    case 1: return "REVIEW";
    case 0: return "PASS";
    default: return "NOT JUDGED";
  }
}
const char* verdict_class(int v) {
  switch (v) {
    case 2: return "fail";
    case 1: return "review";
    case 0: return "pass";
    default: return "none";
  }
}

const char* kCss = R"CSS(
:root{--fg:#1d2733;--muted:#5f6b7a;--line:#d5dbe3;--bg:#f5f7fa;--pass:#2e7d32;--fail:#c62828;--review:#ef6c00;--none:#78909c}
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;color:var(--fg);margin:0;background:var(--bg);font-size:14px;line-height:1.4}
header{background:#1d2733;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header .sub{color:#c5d0dc;font-size:13px}
main{padding:18px 28px;max-width:1400px}
h2{font-size:18px;margin:26px 0 10px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px 16px;min-width:130px}
.card .n{font-size:24px;font-weight:bold}
.card .l{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:bold;font-size:13px}
.verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}.verdict.review{background:var(--review)}.verdict.none{background:var(--none)}.verdict.incomplete{background:#4a148c}
.big{font-size:26px;padding:6px 18px}
table{border-collapse:collapse;background:#fff;width:100%;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{font-weight:bold;text-transform:uppercase;font-size:12px}
.sev.critical,.sev.high{color:var(--fail)}.sev.medium{color:var(--review)}.sev.low{color:#1565c0}.sev.info{color:var(--muted)}
.tag{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;color:#fff}
.device{background:#fff;border:1px solid var(--line);border-radius:8px;padding:6px 18px 14px;margin:18px 0;page-break-inside:avoid}
.device h2{border:none;margin-top:10px}
.muted{color:var(--muted)}
.warn{border-left:4px solid var(--review);padding:4px 10px;background:#fff3e0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px}
.kv td:first-child{color:var(--muted);width:180px;white-space:nowrap}
.legend span{display:inline-block;margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
svg text{font-family:"DejaVu Sans",Arial,sans-serif}
code{font-size:12px}
@media print{body{background:#fff}main{padding:0 10px}.device{border:none}}
)CSS";

class Builder {
 public:
  Builder(const EventLog& log, const ReportOptions& opt) : log_(log), opt_(opt) {}
  std::string run();

 private:
  void collect();
  int dev_for(const json& e, int side);
  int dev_of(const json& e, int side) const;
  void add_flow(Dev& d, const json& f);
  void add_traffic(Dev& d, const json& f);
  void header_section();
  void summary_section();
  void device_section(const Dev& d);
  void identity_table(const Dev& d);
  void identity_row(const char* k, const std::string& v);
  void asset_identity(const Asset& a);
  void flows_table(const Dev& d, std::vector<FlowGroup>& groups);
  void peer_diagram(const Dev& d, const std::vector<FlowGroup>& groups);
  void charts(const Dev& d);
  const char* color_of(const std::string& app) const;
  void time_chart(const Traffic& t);
  void peers_chart(const Traffic& t);
  void phi_findings(const Dev& d);
  void lateral_findings(const Dev& d);
  void alerts_table(const std::vector<const json*>& alerts, const char* row_class);
  void inventory_section();
  std::string& o() { return out_; }

  const EventLog& log_;
  const ReportOptions& opt_;
  std::string out_;
  bool policy_ = false;
  std::vector<Dev> devs_;
  // Which devices get a section of their own: all of them up to kMaxDeviceSections, else those
  // with the worst verdicts, the most alerts and flows (a capture of a whole network analysed
  // without a site has an address per host, and a section each would make a page no one opens).
  static constexpr size_t kMaxDeviceSections = 500;
  std::vector<bool> sectioned_;
  void choose_sections();
  std::map<std::string, size_t> by_key_;
  std::map<std::string, int> verdicts_;
  uint64_t flows_ = 0;
  // What the caps left out (docs/report.md): flows in no group row, PHI flows not listed, devices
  // whose chart sums up the peers past the cap.
  uint64_t ungrouped_ = 0, phi_unlisted_ = 0, peers_folded_ = 0;
  size_t groups_left_ = kMaxGroups, phi_left_ = kMaxPhiRows, peers_left_ = kMaxPeers;
  std::array<uint64_t, 5> sev_{};
  std::vector<Asset> inventory_;
  std::unordered_map<std::string, size_t> asset_at_;  // ip -> its entry in inventory_
  std::map<std::string, size_t> palette_;
  Context ctx_;
  int overall_ = -1;
};

// The device of a flow's side, when it is one already (-1 otherwise).
int Builder::dev_of(const json& e, int side) const {
  std::string key;
  if (policy_) {
    key = side_device(e, side, ctx_);
  } else {
    key = str(e, side ? "dst_ip" : "src_ip");
    if (!asset_at_.count(key)) return -1;
  }
  if (key.empty()) return -1;
  auto it = by_key_.find(key);
  return it == by_key_.end() ? -1 : static_cast<int>(it->second);
}

// A flow of the device: counted, by verdict, in its group, and in its PHI findings.
void Builder::add_flow(Dev& d, const json& f) {
  ++d.flows;
  ++d.verdicts[verdict_for(f, d).first];
  if (!add_to_group(d, f, ctx_, groups_left_)) {
    ++d.ungrouped;
    ++ungrouped_;
  }
  if (f.contains("phi_cleartext")) {
    if (phi_left_ == 0 || d.phi.size() >= kMaxPhiRowsPerDevice) {
      ++d.phi_more;
      ++phi_unlisted_;
    } else {
      --phi_left_;
      PhiRow r;
      for (auto& x : f["phi_cleartext"]) if (x.is_string()) r.fields += (r.fields.empty() ? "" : ", ") + x.get<std::string>();
      r.ts = str(f, "ts");
      r.flow_id = str(f, "flow_id");
      r.src_ip = str(f, "src_ip");
      r.src_port = num(f, "src_port");
      r.dst_ip = str(f, "dst_ip");
      r.dst_port = num(f, "dst_port");
      r.app = flow_app(f);
      d.phi.push_back(std::move(r));
    }
  }
  auto [s, e] = flow_interval(f);
  if (std::isnan(s)) return;  // a flow of unknown time does not stretch the chart to 1970
  Traffic& t = d.traffic;
  if (!t.timed || s < t.t0) t.t0 = s;
  if (!t.timed) t.t1 = e;
  t.timed = true;
  if (e > t.t1) t.t1 = e;
}

// A flow in the device's charts (once the times of all its flows are known): its bytes spread
// over the time buckets it spans, and by peer; protocols outside the palette as "other".
void Builder::add_traffic(Dev& d, const json& f) {
  Traffic& t = d.traffic;
  const int B = Traffic::kBuckets;
  double span = std::max(t.t1 - t.t0, 1e-3);
  auto [s, e] = flow_interval(f);
  if (std::isnan(s)) s = e = t.t0;  // counted, at the start
  const json& fl = member(f, "flow");
  double bytes = static_cast<double>(num(fl, "bytes_toserver") + num(fl, "bytes_toclient"));
  std::string app = flow_app(f);
  if (!palette_.count(app)) app = "other";
  auto& v = t.series[app];
  v.resize(B, 0.0);
  int b0 = std::clamp(static_cast<int>((s - t.t0) / span * B), 0, B - 1);
  int b1 = std::clamp(static_cast<int>((e - t.t0) / span * B), 0, B - 1);
  for (int b = b0; b <= b1; ++b) v[static_cast<size_t>(b)] += bytes / (b1 - b0 + 1);
  bool out_dir = d.ips.count(str(f, "src_ip")) > 0;
  std::string peer = str(f, out_dir ? "dst_ip" : "src_ip");
  std::string pname = side_device(f, out_dir ? 1 : 0, ctx_);
  std::string label = pname.empty() ? peer : pname + " " + peer;
  auto it = t.by_peer.find(label);
  if (it == t.by_peer.end()) {
    if (peers_left_ == 0 || t.by_peer.size() >= kMaxPeersPerDevice) {
      if (!d.peers_folded) ++peers_folded_;
      d.peers_folded = true;
      label = kOtherPeers;
    } else {
      --peers_left_;
    }
    it = t.by_peer.try_emplace(label).first;
  }
  it->second[app] += bytes;
}

int Builder::dev_for(const json& e, int side) {
  std::string ip = str(e, side ? "dst_ip" : "src_ip");
  std::string key;
  if (policy_) {
    key = side_device(e, side, ctx_);
    if (key.empty()) return -1;
  } else {
    if (ip.empty()) return -1;
    if (!asset_at_.count(ip)) return -1;
    key = ip;
  }
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    it = by_key_.emplace(key, devs_.size()).first;
    Dev d;
    d.key = d.name = key;
    devs_.push_back(std::move(d));
  }
  Dev& d = devs_[it->second];
  if (!ip.empty()) d.ips.insert(ip);
  std::string zone = str(e, side ? "dst_zone" : "src_zone");
  if (d.zone.empty() && !zone.empty()) d.zone = zone;
  return static_cast<int>(it->second);
}

void Builder::collect() {
  // The addresses bound by fingerprint: those of the judge that wrote the events, else as the
  // alerts tell them (one pass over the flows, shared by the inventory and the devices).
  std::map<std::string, std::string> bound = opt_.have_bound ? opt_.bound : fingerprint_bindings(log_);
  inventory_ = build_inventory(log_, &bound);
  // Indexes by address: without a site every address is a device, and scanning the inventory
  // (or the devices) per flow side or alert made the report quadratic.
  for (size_t i = 0; i < inventory_.size(); ++i) asset_at_.emplace(inventory_[i].ip, i);
  // A site was applied when anything in the events came from it: a device name, a verdict, a zone
  // (the site's own, or "external"), or an alert (only a site raises them). Traffic that touches
  // none of its devices still shows it, so the report can name them all as unseen.
  policy_ = !log_.alerts.empty() || log_.flows_from_site ||
            std::any_of(inventory_.begin(), inventory_.end(), [](const Asset& a) { return !a.device.empty(); });
  if (policy_) ctx_.bound = std::move(bound);
  for (const json& a : log_.alerts)
    if (std::string id = str(a, "flow_id"); !id.empty()) ctx_.alerts_of[id].push_back(&a);
  // The flows, read three times: which devices there are and their addresses; then each device's
  // own side of its flows (which needs all its addresses); then its charts (which need the span
  // of all its flows).
  log_.for_each_flow([&](const json& f) {
    ++flows_;
    dev_for(f, 0);
    dev_for(f, 1);
    std::string v = str(f, "verdict");
    if (!v.empty()) ++verdicts_[v];
    std::string app = flow_app(f);
    if (!palette_.count(app) && palette_.size() < 7) palette_.emplace(app, palette_.size());
  });
  for (const Asset& a : inventory_) {
    if (policy_ && !a.device.empty()) {
      auto it = by_key_.find(a.device);
      if (it == by_key_.end()) {
        by_key_.emplace(a.device, devs_.size());
        Dev d;
        d.key = d.name = a.device;
        devs_.push_back(std::move(d));
        it = by_key_.find(a.device);
      }
      Dev& d = devs_[it->second];
      d.ips.insert(a.ip);
      if (a.model != "unbound") d.model = a.model;
      if (d.zone.empty()) d.zone = a.zone;
    } else if (!policy_) {
      auto it = by_key_.find(a.ip);
      if (it != by_key_.end()) devs_[it->second].model = a.model;
    }
  }
  // A device bound by fingerprint whose judged flows are all gone (none left in the events) still
  // has its alerts, and its own section for them.
  for (auto& [ip, name] : ctx_.bound) {
    if (by_key_.count(name)) continue;
    by_key_.emplace(name, devs_.size());
    Dev d;
    d.key = d.name = name;
    d.ips.insert(ip);
    devs_.push_back(std::move(d));
  }
  // Each flow for its devices (once for a device on both sides).
  log_.for_each_flow([&](const json& f) {
    int c = dev_of(f, 0), sv = dev_of(f, 1);
    if (c >= 0) add_flow(devs_[static_cast<size_t>(c)], f);
    if (sv >= 0 && sv != c) add_flow(devs_[static_cast<size_t>(sv)], f);
  });
  log_.for_each_flow([&](const json& f) {
    int c = dev_of(f, 0), sv = dev_of(f, 1);
    if (c >= 0) add_traffic(devs_[static_cast<size_t>(c)], f);
    if (sv >= 0 && sv != c) add_traffic(devs_[static_cast<size_t>(sv)], f);
  });
  std::unordered_map<std::string, Dev*> dev_at;  // ip -> the first device with that address
  for (Dev& d : devs_)
    for (const std::string& ip : d.ips) dev_at.emplace(ip, &d);
  for (const json& a : log_.alerts) {
    const json& al = member(a, "alert");
    ++sev_[static_cast<size_t>(sev_rank(str(al, "severity")))];
    std::string dev = str(al, "device");
    std::set<Dev*> hit;
    if (policy_ && by_key_.count(dev)) {
      Dev& d = devs_[by_key_[dev]];
      hit.insert(&d);
      // A device bound by fingerprint has no model in the inventory (bound by no address): the
      // policy's alerts name it.
      if (d.model == "unbound")
        if (std::string m = str(member(al, "evidence"), "model"); !m.empty()) d.model = m;
    }
    if (hit.empty()) {
      for (int side = 0; side < 2; ++side) {
        if (auto it = dev_at.find(str(a, side ? "dst_ip" : "src_ip")); it != dev_at.end()) hit.insert(it->second);
      }
    }
    for (Dev* d : hit) d->alerts.push_back(&a);
  }
  // Verdicts: FAIL on a high/critical alert or a forbidden flow; REVIEW on medium alerts,
  // undeclared flows or declared flows never seen; PASS otherwise. Nothing judged: no verdict.
  for (Dev& d : devs_) {
    bool judged = false;
    int v = 0;
    for (auto& [fv, n] : d.verdicts) {
      if (fv.empty()) continue;
      judged = true;
      if (fv == "forbidden") v = std::max(v, 2);
      else if (fv == "undeclared") v = std::max(v, 1);
    }
    for (const json* a : d.alerts) {
      judged = true;
      int s = sev_rank(str(member(*a, "alert"), "severity"));
      if (s >= 3) v = std::max(v, 2);
      else if (s == 2) v = std::max(v, 1);
    }
    d.verdict = judged ? v : -1;
    if (d.verdict >= 0) overall_ = std::max(overall_, d.verdict);
  }
  std::sort(devs_.begin(), devs_.end(), [](const Dev& a, const Dev& b) {
    if (a.verdict != b.verdict) return a.verdict > b.verdict;
    return a.key < b.key;
  });
  by_key_.clear();
  for (size_t i = 0; i < devs_.size(); ++i) by_key_[devs_[i].key] = i;
}

// A device's name as an id and #fragment: names are free text (spaces, quotes, any script), so
// bytes outside [A-Za-z0-9._:-] become ~ and two hex digits; a name taken already (two names
// alike but for case, say) gets ~~2, ~~3... ("~~" is never part of an escaped name).
void name_anchors(std::vector<Dev>& devs) {
  std::set<std::string> taken;
  for (Dev& d : devs) {
    std::string a = "dev-";
    for (unsigned char c : d.name) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':') a.push_back(static_cast<char>(c));
      else a += fmt::format("~{:02x}", c);
    }
    std::string id = a;
    for (int n = 2; !taken.insert(id).second; ++n) id = a + "~~" + std::to_string(n);
    d.anchor = std::move(id);
  }
}

void Builder::choose_sections() {
  name_anchors(devs_);
  sectioned_.assign(devs_.size(), true);
  if (devs_.size() <= kMaxDeviceSections) return;
  std::vector<size_t> order(devs_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Dev& x = devs_[a];
    const Dev& y = devs_[b];
    if (x.verdict != y.verdict) return x.verdict > y.verdict;
    if (x.alerts.size() != y.alerts.size()) return x.alerts.size() > y.alerts.size();
    return x.flows > y.flows;
  });
  for (size_t i = kMaxDeviceSections; i < order.size(); ++i) sectioned_[order[i]] = false;
}

std::string Builder::run() {
  collect();
  o() += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n";
  o() += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  o() += "<title>" + h(opt_.title) + "</title>\n<style>" + std::string(kCss) + "</style></head>\n<body>\n";
  header_section();
  o() += "<main>\n";
  choose_sections();
  summary_section();
  for (size_t i = 0; i < devs_.size(); ++i)
    if (sectioned_[i]) device_section(devs_[i]);
  o() += "<h2 id=\"all-alerts\">All alerts</h2>\n";
  std::vector<const json*> all;
  for (const json& a : log_.alerts) all.push_back(&a);
  if (all.empty()) o() += "<p class=\"muted\">No alert was raised.</p>\n";
  else alerts_table(all, "alert-row");
  inventory_section();
  o() += fmt::format("<p class=\"muted\">{} events read ({} malformed lines skipped){}. Generated by medmon from the "
                     "events alone; PHI appears only as keyed pseudonyms unless the analysis ran with --phi raw.</p>\n",
                     log_.events, log_.bad_lines, log_.source.empty() ? "" : " from " + h(log_.source));
  o() += "</main>\n</body></html>\n";
  return std::move(out_);
}

void Builder::header_section() {
  o() += "<header><h1>" + h(opt_.title) + "</h1><div class=\"sub\">";
  if (!log_.first_ts.empty()) o() += "Traffic from " + h(log_.first_ts) + " to " + h(log_.last_ts);
  if (!log_.source.empty()) o() += " &middot; events: <code>" + h(log_.source) + "</code>";
  o() += "</div></header>\n";
}

void Builder::summary_section() {
  uint64_t alerts = log_.alerts.size();
  o() += "<h2 id=\"summary\">Summary</h2>\n";
  // A line that could not be read may have held any event, a high alert as well: nothing read
  // from the rest can say the devices passed.
  const bool incomplete = log_.incomplete();
  o() += fmt::format("<p>Overall: <span id=\"overall-verdict\" class=\"verdict big {}\">{}</span> ",
                     incomplete ? "incomplete" : verdict_class(overall_), incomplete ? "INCOMPLETE" : verdict_name(overall_));
  if (!policy_) o() += "<span class=\"muted\">No site policy was applied: devices are listed, nothing was judged.</span>";
  o() += "</p>\n";
  if (log_.bad_lines)
    o() += fmt::format("<p id=\"incomplete\" class=\"warn\"><b>The events file is damaged:</b> {} line{} could not be read "
                       "(the first is line {}) and {} left out. What {} held (alerts, flows, verdicts) is missing below, so "
                       "no verdict on this page is complete: the overall verdict is unknown. Analyse the capture again.</p>\n",
                       log_.bad_lines, log_.bad_lines == 1 ? "" : "s", log_.first_bad_line, log_.bad_lines == 1 ? "was" : "were",
                       log_.bad_lines == 1 ? "it" : "they");
  // A read error part way through (a failing disk, a network file system gone): the rest is missing.
  if (!log_.read_error.empty())
    o() += fmt::format("<p id=\"read-error\" class=\"warn\"><b>The events file could not be read to its end:</b> {} after "
                       "line {}. What came after it (alerts, flows, verdicts) is missing below, so no verdict on this page "
                       "is complete: the overall verdict is unknown.</p>\n",
                       h(log_.read_error), log_.read_error_line);
  // Events analysed without a site policy carry no verdict and no device name: the site given to
  // the report cannot say which of its devices took part, so it lists none as unseen either.
  if (!policy_ && opt_.have_declared)
    o() += "<p id=\"site-not-applied\" class=\"warn\">A site policy was given to the report, but these events were analysed "
           "without one: nothing in them was judged, and devices are listed by address. Run <code>medmon analyze --site</code> "
           "to judge the traffic against the site.</p>\n";
  // A filtered analysis did not see the traffic outside its filter: flows declared but not seen
  // may simply have been filtered out.
  if (std::string f = str(member(log_.stats, "stats"), "filter"); !f.empty())
    o() += "<p id=\"input-filter\" class=\"warn\">Only the packets accepted by the capture filter <code>" + h(f) +
           "</code> were analysed: traffic outside it was not seen, and is neither judged nor counted here.</p>\n";
  o() += "<div class=\"cards\">\n";
  auto card = [&](const char* id, uint64_t n, const char* label) {
    o() += fmt::format("<div class=\"card\"><div class=\"n\" id=\"{}\">{}</div><div class=\"l\">{}</div></div>\n", id, n, label);
  };
  card("count-devices", devs_.size(), "devices");
  card("count-assets", inventory_.size(), "assets seen");
  card("count-flows", flows_, "flows");
  card("count-alerts", alerts, "alerts");
  for (int s = 4; s >= 0; --s) {
    std::string id = std::string("count-alerts-") + kSev[s];
    card(id.c_str(), sev_[static_cast<size_t>(s)], (std::string("alerts ") + kSev[s]).c_str());
  }
  for (const char* v : {"declared", "undeclared", "forbidden"}) {
    std::string id = std::string("count-verdict-") + v;
    auto it = verdicts_.find(v);
    card(id.c_str(), it == verdicts_.end() ? 0 : it->second, verdict_label(v));
  }
  o() += "</div>\n";
  // One line per device with its verdict.
  o() += "<table id=\"device-table\"><tr><th>Device</th><th>Verdict</th><th>Addresses</th><th>Model</th><th>Zone</th>"
         "<th>Flows</th><th>Forbidden</th><th>Undeclared</th><th>Declared</th><th>Alerts</th></tr>\n";
  for (size_t i = 0; i < devs_.size(); ++i) {
    const Dev& d = devs_[i];
    std::map<std::string, uint64_t> v = d.verdicts;
    std::string ips;
    for (auto& ip : d.ips) { if (!ips.empty()) ips += ", "; ips += ip; }
    // A link to the device's section, when it has one.
    std::string name = sectioned_[i] ? fmt::format("<a href=\"#{}\">{}</a>", d.anchor, h(d.name)) : h(d.name);
    o() += fmt::format(
        "<tr class=\"device-row\" data-device=\"{0}\" data-verdict=\"{1}\"><td>{11}</td>"
        "<td><span class=\"verdict {2}\">{1}</span></td><td>{3}</td><td>{4}</td><td>{5}</td><td class=\"num\">{6}</td>"
        "<td class=\"num\">{7}</td><td class=\"num\">{8}</td><td class=\"num\">{9}</td><td class=\"num\">{10}</td></tr>\n",
        h(d.name), verdict_name(d.verdict), verdict_class(d.verdict), h(ips), h(d.model), h(d.zone.empty() ? "-" : d.zone),
        d.flows, v["forbidden"], v["undeclared"], v["declared"], d.alerts.size(), name);
  }
  o() += "</table>\n";
  if (devs_.empty()) o() += "<p class=\"muted\">No device was identified in these events.</p>\n";
  if (size_t shown = std::count(sectioned_.begin(), sectioned_.end(), true); shown < devs_.size())
    o() += fmt::format("<p id=\"sections-capped\" class=\"warn\">{} devices: sections below are given to the {} with the "
                       "worst verdicts and the most alerts and flows; the other {} are in the table above and the asset "
                       "inventory only.</p>\n",
                       devs_.size(), shown, devs_.size() - shown);
  // The flows are summed up, not kept: past the caps, some are in no row (their counts are whole).
  if (ungrouped_ || phi_unlisted_ || peers_folded_)
    o() += fmt::format("<p id=\"flows-capped\" class=\"warn\">{} flows: the report's tables are bounded, so {} flow{} "
                       "{} in no row of the devices' flow tables, {} flow{} with PHI in clear {} not listed one by one, and "
                       "{} device{} {} the peers past the first {} as one bar. Counts and verdicts include every flow.</p>\n",
                       flows_, ungrouped_, ungrouped_ == 1 ? "" : "s", ungrouped_ == 1 ? "is" : "are", phi_unlisted_,
                       phi_unlisted_ == 1 ? "" : "s", phi_unlisted_ == 1 ? "is" : "are", peers_folded_,
                       peers_folded_ == 1 ? "" : "s", peers_folded_ == 1 ? "charts" : "chart", kMaxPeersPerDevice);
  // Devices the site policy binds that took no part in any flow: nothing to accept them on.
  std::vector<std::string> unseen;
  if (policy_)
    for (auto& [name, flows] : opt_.declared)
      if (!by_key_.count(name)) unseen.push_back(name);
  if (!unseen.empty()) {
    o() += "<p id=\"unseen-devices\">Devices of the site policy that were not seen in this traffic: ";
    for (size_t i = 0; i < unseen.size(); ++i)
      o() += (i ? ", " : "") + std::string("<span class=\"unseen-device\" data-device=\"") + h(unseen[i]) + "\">" +
             h(unseen[i]) + "</span>";
    o() += ".</p>\n";
  }
}

void Builder::device_section(const Dev& d) {
  o() += fmt::format("<section class=\"device\" id=\"{5}\" data-device=\"{0}\" data-verdict=\"{1}\" data-flows=\"{2}\" "
                     "data-alerts=\"{3}\">\n<h2>{0} <span class=\"verdict {4}\">{1}</span></h2>\n",
                     h(d.name), verdict_name(d.verdict), d.flows, d.alerts.size(), verdict_class(d.verdict), d.anchor);
  o() += "<div class=\"grid\">";  // identity and peers side by side
  identity_table(d);
  std::vector<FlowGroup> groups = group_flows(d);
  o() += "<div><h3>Peers by zone</h3>\n";
  peer_diagram(d, groups);
  o() += "</div></div>\n";
  charts(d);
  flows_table(d, groups);
  phi_findings(d);
  lateral_findings(d);
  o() += "<h3>Alerts</h3>\n";
  if (d.alerts.empty()) o() += "<p class=\"muted\">No alert.</p>\n";
  else alerts_table(d.alerts, "dev-alert-row");
  o() += "</section>\n";
}

// Identity, from the inventory.
void Builder::identity_table(const Dev& d) {
  o() += "<div><h3>Identity</h3><table class=\"kv\">\n";
  identity_row("Policy model", d.model);
  identity_row("Zone", d.zone);
  std::vector<size_t> mine;  // in inventory order
  for (const std::string& ip : d.ips)
    if (auto it = asset_at_.find(ip); it != asset_at_.end()) mine.push_back(it->second);
  std::sort(mine.begin(), mine.end());
  for (size_t i : mine) asset_identity(inventory_[i]);
  o() += "</table></div>\n";
}

// A row of the identity table; empty values are left out.
void Builder::identity_row(const char* k, const std::string& v) {
  if (!v.empty()) o() += "<tr><td>" + std::string(k) + "</td><td>" + h(v) + "</td></tr>\n";
}

// What one of the device's addresses showed of itself.
void Builder::asset_identity(const Asset& a) {
  identity_row("IP address", a.ip);
  std::string vendor = a.vendor_shown();
  if (!vendor.empty() && vendor.front() != '(') vendor = "(" + vendor + ")";
  identity_row("MAC", a.mac + (vendor.empty() ? "" : " " + vendor));
  if (!a.vlans.empty()) {
    std::string v;
    for (auto x : a.vlans) v += (v.empty() ? "" : ", ") + std::to_string(x);
    identity_row("VLAN", v);
  }
  identity_row("Host name (DHCP)", a.hostname);
  std::string dhcp = a.dhcp_vendor_class;
  if (!a.dhcp_fingerprint.empty()) dhcp += (dhcp.empty() ? "" : ", ") + std::string("options asked ") + a.dhcp_fingerprint;
  if (!a.dhcp_fingerprint6.empty())
    dhcp += (dhcp.empty() ? "" : ", ") + std::string("DHCPv6 options asked ") + a.dhcp_fingerprint6;
  identity_row("DHCP vendor class", dhcp);
  identity_row("DICOM AE titles", comma_list(a.ae_titles));
  std::string impl = a.product;
  if (!a.impl_class_uid.empty() || !a.impl_version.empty())
    impl += (impl.empty() ? "" : " — ") + a.impl_class_uid + (a.impl_version.empty() ? "" : " / " + a.impl_version);
  identity_row("DICOM implementation", impl);
  std::string ident = a.manufacturer;
  if (!a.model_name.empty()) ident += (ident.empty() ? "" : " ") + a.model_name;
  if (!a.software_versions.empty()) ident += " (software " + a.software_versions + ")";
  identity_row("Manufacturer / model", ident);
  identity_row("Station name", a.station_name);
  identity_row("HL7 applications", comma_list(a.hl7_apps));
  identity_row("Device identities", comma_list(a.identities));
  identity_row("TLS server names used", comma_list(a.sni));
  identity_row("TLS versions negotiated", comma_list(a.tls_versions));
  identity_row("DNS names looked up", comma_list(a.dns_names));
  identity_row("Services offered", comma_list(a.offered));
  identity_row("Services used", comma_list(a.used));
  identity_row("Seen", a.first_seen + (a.last_seen.empty() ? "" : " — " + a.last_seen));
}

// Cleartext PHI: flows that carried PHI fields in clear.
void Builder::phi_findings(const Dev& d) {
  o() += "<h3>Cleartext PHI findings</h3>\n";
  if (d.phi.empty() && !d.phi_more) {
    o() += "<p class=\"muted phi-none\">No PHI was seen in clear.</p>\n";
    return;
  }
  o() += "<table class=\"phi\"><tr><th>Time</th><th>Flow</th><th>From</th><th>To</th><th>App</th><th>PHI fields in clear</th></tr>\n";
  for (const PhiRow& r : d.phi)
    o() += fmt::format("<tr class=\"phi-row\"><td>{}</td><td><code>{}</code></td><td>{}:{}</td><td>{}:{}</td><td>{}</td><td>{}</td></tr>\n",
                       h(r.ts), h(r.flow_id), h(r.src_ip), r.src_port, h(r.dst_ip), r.dst_port, h(r.app), h(r.fields));
  o() += "</table>\n";
  if (d.phi_more)
    o() += fmt::format("<p class=\"warn phi-capped\">{} more flow{} carried PHI in clear: not listed (the report lists "
                       "{} per device, {} in all).</p>\n",
                       d.phi_more, d.phi_more == 1 ? "" : "s", kMaxPhiRowsPerDevice, kMaxPhiRows);
}

// Lateral movement: the policy's lateral.* alerts.
void Builder::lateral_findings(const Dev& d) {
  o() += "<h3>Lateral-movement findings</h3>\n";
  std::vector<const json*> lateral;
  for (const json* a : d.alerts)
    if (str(member(*a, "alert"), "rule").rfind("lateral.", 0) == 0) lateral.push_back(a);
  if (lateral.empty()) o() += "<p class=\"muted\">No lateral-movement signal.</p>\n";
  else alerts_table(lateral, "lateral-row");
}

void Builder::flows_table(const Dev& d, std::vector<FlowGroup>& groups) {
  o() += "<h3>Declared and observed flows</h3>\n";
  o() += "<table class=\"flows\"><tr><th>Status</th><th>Dir</th><th>Peer</th><th>Zone</th><th>Service</th><th>Flows</th>"
         "<th>Bytes</th><th>Rule</th><th>MDS2</th><th>PHI</th></tr>\n";
  std::set<std::string> seen_rules;
  for (const FlowGroup& g : groups) {
    seen_rules.insert(g.declared_rules.begin(), g.declared_rules.end());
    std::string mds2;
    for (auto& m : g.mds2) mds2 += (mds2.empty() ? "" : ", ") + m;
    std::string peer = g.peer_name.empty() ? g.peer : g.peer_name + " (" + g.peer + ")";
    // A declared rule matched only by connection attempts that carried no data was not seen at
    // work: the row says so rather than "declared and seen".
    bool attempts_only = g.verdict == "declared" && g.no_data == g.count;
    std::string flows = std::to_string(g.count);
    if (g.no_data) flows += fmt::format("<div class=\"muted no-data\">{} without data</div>", g.no_data);
    o() += fmt::format(
        "<tr class=\"flow-group\" data-status=\"{0}\"><td><span class=\"tag\" style=\"background:{1}\">{2}</span></td>"
        "<td>{3}</td><td>{4}</td><td>{5}</td><td>{6}/{7}/{8}</td><td class=\"num\">{9}</td><td class=\"num\">{10}</td>"
        "<td><code>{11}</code></td><td>{12}</td><td>{13}</td></tr>\n",
        attempts_only ? "declared-no-data" : h(g.verdict.empty() ? "unjudged" : g.verdict),
        attempts_only ? "#7cb342" : verdict_color(verdict_rank(g.verdict)),
        attempts_only ? "declared, attempted without data" : verdict_label(g.verdict),
        g.dir == "out" ? "&rarr; out" : "&larr; in", h(peer), h(g.peer_zone.empty() ? "-" : g.peer_zone), h(g.app),
        h(g.proto), g.port, flows, human_bytes(g.bytes), h(g.rule), h(mds2), g.phi ? "in clear" : "");
  }
  // Declared by the model but never seen.
  auto it = opt_.declared.find(d.name);
  if (it != opt_.declared.end()) {
    for (const DeclaredFlow& df : it->second) {
      if (seen_rules.count(df.rule)) continue;
      o() += fmt::format(
          "<tr class=\"flow-group\" data-status=\"declared-not-seen\"><td><span class=\"tag\" style=\"background:#546e7a\">"
          "declared, not seen</span></td><td></td><td>{}<div class=\"muted\">{}</div></td><td></td><td>{}</td>"
          "<td class=\"num\">0</td><td></td><td><code>{}</code></td><td>{}</td><td></td></tr>\n",
          h(df.peer), h(df.description), h(df.ports), h(df.rule), h(df.source));
    }
  }
  o() += "</table>\n";
  if (d.ungrouped)
    o() += fmt::format("<p class=\"warn groups-capped\">{} flow{} of this device {} in no row above: the table has at most {} "
                       "rows per device and {} in all.</p>\n",
                       d.ungrouped, d.ungrouped == 1 ? "" : "s", d.ungrouped == 1 ? "is" : "are", kMaxGroupsPerDevice, kMaxGroups);
  if (groups.empty() && !d.ungrouped) o() += "<p class=\"muted\">No flow.</p>\n";
  if (!opt_.have_declared && policy_)
    o() += "<p class=\"muted\">Declared flows that were not seen are listed when the report is given the site policy "
           "(<code>--site</code>).</p>\n";
}

void Builder::peer_diagram(const Dev& d, const std::vector<FlowGroup>& groups) {
  // Peers grouped by zone, each linked to the device; the link's colour is its worst verdict.
  struct Peer { std::string label; int verdict = 0; uint64_t bytes = 0; };
  std::map<std::string, std::map<std::string, Peer>> zones;
  for (const FlowGroup& g : groups) {
    std::string zone = g.peer_zone.empty() ? (policy_ ? "unknown" : "peers") : g.peer_zone;
    Peer& p = zones[zone][g.peer];
    p.label = g.peer_name.empty() ? g.peer : g.peer_name + " " + g.peer;
    p.verdict = std::max(p.verdict, verdict_rank(g.verdict));
    p.bytes += g.bytes;
  }
  const size_t kMaxPeers = 12;  // per zone; the rest is summarised
  int rows = 0;
  for (auto& [z, peers] : zones) rows += static_cast<int>(std::min(peers.size(), kMaxPeers + 1)) + 1;
  int height = std::max(120, rows * 22 + 20 * static_cast<int>(zones.size()) + 20);
  const int W = 620;
  o() += fmt::format("<svg class=\"peer-diagram\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\" "
                     "aria-label=\"peers of {2} by zone\">\n",
                     W, height, h(d.name));
  int dy = height / 2;
  std::string links, boxes;
  int y = 10;
  for (auto& [z, peers] : zones) {
    size_t shown = std::min(peers.size(), kMaxPeers);
    int zh = static_cast<int>(shown + (peers.size() > shown ? 1 : 0)) * 22 + 26;
    boxes += fmt::format("<rect x=\"300\" y=\"{}\" width=\"310\" height=\"{}\" rx=\"6\" fill=\"#eef1f5\" stroke=\"#b0bac6\"/>"
                         "<text x=\"310\" y=\"{}\" font-size=\"12\" font-weight=\"bold\" fill=\"#37474f\">zone: {}</text>\n",
                         y, zh, y + 16, h(z));
    int py = y + 26;
    size_t n = 0;
    for (auto& [ip, p] : peers) {
      if (n++ == shown) break;
      links += fmt::format("<line x1=\"170\" y1=\"{}\" x2=\"314\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>\n", dy, py + 7,
                           verdict_color(p.verdict));
      boxes += fmt::format("<circle cx=\"318\" cy=\"{}\" r=\"5\" fill=\"{}\"/><text x=\"330\" y=\"{}\" font-size=\"12\">{}</text>"
                           "<text x=\"600\" y=\"{}\" font-size=\"11\" fill=\"#5f6b7a\" text-anchor=\"end\">{}</text>\n",
                           py + 7, verdict_color(p.verdict), py + 11, h(utf8_prefix(p.label, 34)), py + 11,
                           human_bytes(p.bytes));
      py += 22;
    }
    if (peers.size() > shown)
      boxes += fmt::format("<text x=\"330\" y=\"{}\" font-size=\"12\" fill=\"#5f6b7a\">+{} more</text>\n", py + 11,
                           peers.size() - shown);
    y += zh + 10;
  }
  o() += links + boxes;
  o() += fmt::format("<rect x=\"10\" y=\"{}\" width=\"160\" height=\"44\" rx=\"8\" fill=\"#1d2733\"/>"
                     "<text x=\"90\" y=\"{}\" font-size=\"13\" fill=\"#fff\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>"
                     "<text x=\"90\" y=\"{}\" font-size=\"11\" fill=\"#c5d0dc\" text-anchor=\"middle\">{}</text>\n",
                     dy - 22, dy - 4, h(utf8_prefix(d.name, 22)), dy + 13, h(d.zone.empty() ? "" : "zone " + d.zone));
  o() += "</svg>\n<div class=\"legend\">";
  for (int r : {1, 2, 3, 0})
    o() += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", verdict_color(r),
                       verdict_label(r == 1 ? "declared" : r == 2 ? "undeclared" : r == 3 ? "forbidden" : ""));
  o() += "</div>\n";
}

void Builder::charts(const Dev& d) {
  if (!d.flows) return;
  // Traffic over time by protocol (stacked bars), and traffic by peer (bars split by protocol).
  o() += "<div class=\"grid\">";
  time_chart(d.traffic);
  peers_chart(d.traffic);
  o() += "</div>\n";
}

// A protocol's colour in the charts; grey beyond the palette.
const char* Builder::color_of(const std::string& app) const {
  auto it = palette_.find(app);
  return it == palette_.end() ? "#9e9e9e" : kPalette[it->second];
}

// Stacked bars: the bytes of each time bucket, one colour per protocol.
void Builder::time_chart(const Traffic& t) {
  const int B = Traffic::kBuckets;
  double maxb = tallest_bucket(t);
  const int W = 620, H = 200, L = 60, R = 10, T = 10, Bm = 30;
  double bw = static_cast<double>(W - L - R) / B;
  o() += "<div><h3>Traffic over time, by protocol</h3>\n";
  o() += fmt::format("<svg class=\"chart-time\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\" "
                     "aria-label=\"bytes over time by protocol\">\n", W, H);
  o() += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#90a4ae\"/>"
                     "<line x1=\"{0}\" y1=\"{3}\" x2=\"{0}\" y2=\"{1}\" stroke=\"#90a4ae\"/>\n", L, H - Bm, W - R, T);
  o() += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>"
                     "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">0</text>\n",
                     L - 4, T + 10, human_bytes(static_cast<uint64_t>(maxb)), L - 4, H - Bm);
  for (int b = 0; b < B; ++b) {
    double y = H - Bm;
    for (auto& [app, v] : t.series) {
      double val = v[static_cast<size_t>(b)];
      if (val <= 0) continue;
      double hgt = val / maxb * (H - Bm - T);
      y -= hgt;
      o() += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}: {}</title></rect>\n",
                         L + b * bw + 1, y, std::max(bw - 2, 1.0), std::max(hgt, 0.5), color_of(app), h(app),
                         human_bytes(static_cast<uint64_t>(val)));
    }
  }
  // The time of day alone is ambiguous when the traffic spans more than one day.
  const bool dated = different_days(t.t0, t.t1);
  o() += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" "
                     "text-anchor=\"end\">{} UTC</text>\n",
                     L, H - 10, utc_label(t.t0, dated), W - R, H - 10, utc_label(t.t1, dated));
  o() += "</svg>\n<div class=\"legend\">";
  for (auto& [app, v] : t.series) o() += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", color_of(app), h(app));
  o() += "</div></div>\n";
}

// By peer, top 10 by bytes.
void Builder::peers_chart(const Traffic& t) {
  const int W = 620;
  std::vector<std::pair<double, std::string>> peers = top_peers(t, 10);
  double maxp = peers.empty() ? 1 : std::max(peers.front().first, 1.0);
  int ph = static_cast<int>(peers.size()) * 24 + 16;
  o() += "<div><h3>Traffic by peer and protocol</h3>\n";
  o() += fmt::format("<svg class=\"chart-peers\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" role=\"img\" "
                     "aria-label=\"bytes by peer\">\n", W, ph);
  int y = 8;
  for (auto& [total, p] : peers) {
    o() += fmt::format("<text x=\"200\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{}</text>\n", y + 13, h(utf8_prefix(p, 30)));
    double x = 206;
    for (auto& [app, b] : t.by_peer.at(p)) {
      double w = b / maxp * (W - 300);
      if (w <= 0) continue;
      o() += fmt::format("<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"16\" fill=\"{}\"><title>{}: {}</title></rect>\n", x, y,
                         std::max(w, 0.5), color_of(app), h(app), human_bytes(static_cast<uint64_t>(b)));
      x += w;
    }
    o() += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" fill=\"#5f6b7a\">{}</text>\n", x + 4, y + 13,
                       human_bytes(static_cast<uint64_t>(total)));
    y += 24;
  }
  o() += "</svg></div>";
}

void Builder::alerts_table(const std::vector<const json*>& alerts, const char* row_class) {
  o() += "<table class=\"alerts\"><tr><th>Severity</th><th>Rule</th><th>Message</th><th>Device</th><th>Peer</th>"
         "<th>MDS2 citation</th><th>Evidence</th></tr>\n";
  std::vector<const json*> sorted = alerts;
  std::stable_sort(sorted.begin(), sorted.end(), [](const json* a, const json* b) {
    return sev_rank(str(member(*a, "alert"), "severity")) > sev_rank(str(member(*b, "alert"), "severity"));
  });
  for (const json* e : sorted) {
    const json& a = member(*e, "alert");
    std::string sev = str(a, "severity", "info");
    std::string cites;
    if (auto it = a.find("mds2"); it != a.end() && it->is_array()) {
      for (auto& c : *it) {
        if (c.is_string()) { cites += "<div><b>" + h(c.get<std::string>()) + "</b></div>"; continue; }
        std::string id = str(c, "id"), ans = str(c, "answer");
        cites += "<div><b>" + h(id) + "</b>";
        if (!ans.empty()) cites += " answered &ldquo;" + h(ans) + "&rdquo;";
        std::string refs;
        for (const char* k : {"iec_tr_80001_2_2", "nist_800_53", "iso_27002"}) {
          std::string v = str(c, k);
          if (!v.empty()) refs += (refs.empty() ? "" : "; ") + v;
        }
        if (!refs.empty()) cites += " <span class=\"muted\">(" + h(refs) + ")</span>";
        cites += "</div>";
      }
    }
    if (cites.empty()) cites = "<span class=\"muted\">none</span>";
    std::string ev;
    if (auto it = a.find("evidence"); it != a.end() && it->is_object()) {
      for (auto& [k, v] : it->items()) {
        std::string val;
        if (v.is_string()) val = v.get<std::string>();
        else if (v.is_array()) {
          for (auto& x : v) val += (val.empty() ? "" : ", ") + (x.is_string() ? x.get<std::string>() : x.dump());
        } else {
          val = v.dump();
        }
        ev += "<div><span class=\"muted\">" + h(k) + ":</span> " + h(val) + "</div>";
      }
    }
    o() += fmt::format("<tr class=\"{}\" data-rule=\"{}\" data-severity=\"{}\"><td><span class=\"sev {}\">{}</span></td>"
                       "<td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       row_class, h(str(a, "rule")), h(sev), h(sev), h(sev), h(str(a, "rule")), h(str(a, "message")),
                       h(str(a, "device")), h(str(a, "peer")), cites, ev);
  }
  o() += "</table>\n";
}

void Builder::inventory_section() {
  o() += "<h2 id=\"inventory\">Asset inventory</h2>\n";
  if (inventory_.empty()) {
    o() += "<p class=\"muted\">No asset event in these events.</p>\n";
    return;
  }
  o() += "<table class=\"inventory\"><tr><th>IP</th><th>MAC / vendor</th><th>Device</th><th>Model</th><th>AE titles</th>"
         "<th>DICOM implementation</th><th>HL7 apps</th><th>Services offered</th><th>Services used</th><th>Flows</th></tr>\n";
  for (const Asset& a : inventory_) {
    std::string impl = a.product;
    if (!a.impl_version.empty()) impl += (impl.empty() ? "" : " ") + ("(" + a.impl_version + ")");
    if (!a.manufacturer.empty()) impl += (impl.empty() ? "" : "; ") + a.manufacturer + " " + a.model_name;
    o() += fmt::format("<tr class=\"asset-row\" data-ip=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                       "<td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>\n",
                       h(a.ip), h(a.ip), h(a.mac + (a.vendor_shown().empty() ? "" : " " + a.vendor_shown())), h(a.device),
                       h(a.model), h(comma_list(a.ae_titles)), h(impl), h(comma_list(a.hl7_apps)),
                       h(comma_list(a.offered)), h(comma_list(a.used)), a.flows);
  }
  o() += "</table>\n";
}

}  // namespace

std::string render_html(const EventLog& log, const ReportOptions& opt) {
  Builder b(log, opt);
  return b.run();
}

}  // namespace medmon::report
