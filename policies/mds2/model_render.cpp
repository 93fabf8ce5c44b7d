// Device model YAML from an imported form: derived switches citing their questions, the vendor's
// port table as flows, the raw answers with the form's mapping, and what a person must fill in.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <map>
#include <tuple>

#include "policies/mds2/mds2_form.h"
#include "policies/mds2/rows.h"

namespace medmon::mds2 {

const std::vector<Switch>& derived_switches() {
  static const std::vector<Switch> s = {
      {"internal_only", "CONN-4", true},
      {"internet_required", "CONN-6", false},
      {"communicates_internal", "CONN-3", false},
      {"port_list_provided", "CONN-2", false},
      {"api_calls", "CONN-5", false},
      {"tls_supported", "CONN-7", false},
      {"tls_configurable", "CONN-7.1", false},
      {"remote_control", "CONN-8", false},
      {"wireless", "CONN-1.1", false},
      {"phi_any", "MPII-1", false},
      {"phi_wired", "MPII-3.5", false},
      {"phi_wireless", "MPII-3.6", false},
      {"phi_external", "MPII-3.7", false},
      {"phi_proprietary", "MPII-3.9", false},
      {"phi_point_to_point_only", "TXCF-1", false},
      {"phi_encrypted_claim", "TXCF-2", false},
      {"phi_fixed_destinations", "TXCF-3", false},
      {"authenticated_connections_only", "TXCF-4", false},
      {"secure_transmission", "TXCF-5", false},
      {"node_authentication", "NAUT-1", false},
      {"network_acl", "NAUT-2", false},
      {"remote_service", "RMOT-1", false},
      {"remote_service_phi", "RMOT-1.3", false},
      {"predictive_maintenance", "RMOT-2", false},
      {"other_remote", "RMOT-3", false},
      {"file_shares_disabled", "SAHD-7", false},
      {"unused_ports_disabled", "SAHD-8", false},
      {"legacy_services_disabled", "SAHD-9", false},
      {"ntp", "AUDT-4.1.1", false},
      {"atna_syslog", "AUDT-5.2", false},
  };
  return s;
}

const Switch* find_switch(std::string_view name) {
  for (auto& s : derived_switches()) if (name == s.name) return &s;
  return nullptr;
}

namespace {

// The model is YAML, which must be UTF-8 and may not hold control characters raw (PyYAML refuses
// the file): each code point of s, invalid bytes read as U+FFFD, is passed to put(cp, bytes).
template <class Put>
void each_code_point(std::string_view s, Put&& put) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : 4;
    if (n > 0 && n < 4 && i + n < s.size() && detail::is_utf8(s.substr(i, n + 1))) {
      uint32_t cp = c & (0x3F >> n);
      for (size_t k = 1; k <= n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
      put(cp, s.substr(i, n + 1));
      i += n + 1;
    } else if (n == 0) {
      put(c, s.substr(i, 1));
      ++i;
    } else {
      put(0xFFFD, std::string_view("\xEF\xBF\xBD"));
      ++i;
    }
  }
}
// Not to be written raw: C0 and C1 controls, DEL, the line breaks U+0085/U+2028/U+2029 and the
// non-characters U+FFFE/U+FFFF.
bool unprintable(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 || cp == 0xFFFE || cp == 0xFFFF;
}

// A YAML double-quoted scalar.
std::string q(std::string_view s) {
  std::string o = "\"";
  each_code_point(s, [&](uint32_t cp, std::string_view bytes) {
    if (cp == '"' || cp == '\\') { o.push_back('\\'); o.push_back(static_cast<char>(cp)); }
    else if (cp == '\n') o += "\\n";
    else if (cp == '\t') o += "\\t";
    else if (unprintable(cp)) {
      char b[12];
      std::snprintf(b, sizeof b, cp <= 0xFF ? "\\x%02x" : "\\u%04x", static_cast<unsigned>(cp));
      o += b;
    }
    else o += bytes;
  });
  return o + "\"";
}

// Text for a YAML comment: a control character or line break would end the comment, so it is a space.
std::string comment_text(std::string_view s) {
  std::string o;
  each_code_point(s, [&](uint32_t cp, std::string_view bytes) {
    if (unprintable(cp)) o.push_back(' ');
    else o += bytes;
  });
  return o;
}

std::string slug(std::string_view s) {
  std::string o;
  for (unsigned char c : s) {
    if (std::isalnum(c)) o.push_back(static_cast<char>(std::tolower(c)));
    else if (!o.empty() && o.back() != '-') o.push_back('-');
  }
  while (!o.empty() && o.back() == '-') o.pop_back();
  return o;
}

std::string answer_of(const Form& f, std::string_view id) {
  auto* x = f.find(id);
  if (!x || x->answer == Answer::blank || x->answer == Answer::na) return {};
  return x->detail;
}

std::string app_for_service(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  s = collapse_ws(s);
  auto has = [&](std::string_view w) { return s.find(w) != std::string::npos; };
  if (has("dicom")) return "dicom";
  if (has("hl7") || has("mllp")) return "hl7";
  if (has("https") || has("tls") || has("ssl")) return "tls";
  if (has("http")) return "http";
  if (has("ntp")) return "ntp";
  if (has("dns")) return "dns";
  if (has("dhcp")) return "dhcp";
  if (has("syslog")) return "syslog";
  if (has("ldap")) return "ldap";
  if (has("ssh") || has("sftp")) return "ssh";
  if (has("smb") || has("cifs")) return "smb";
  if (has("rdp")) return "rdp";
  if (has("vnc")) return "vnc";
  if (has("telnet")) return "telnet";
  if (has("ftp")) return "ftp";
  if (has("snmp")) return "snmp";
  return {};
}

// A port table's direction (lower case) as inbound, outbound or both; empty when it names none.
// Every word counts: "In/Out", "Inbound & Outbound", "Outbound/Inbound" name both ways.
std::string port_direction(const std::string& d) {
  bool in = false, out = false;
  for (size_t i = 0; i < d.size();) {
    if (!std::isalpha(static_cast<unsigned char>(d[i]))) { ++i; continue; }
    size_t j = i;
    while (j < d.size() && std::isalpha(static_cast<unsigned char>(d[j]))) ++j;
    std::string w = d.substr(i, j - i);
    i = j;
    if (w == "in" || w == "inbound" || w == "incoming" || w == "ingress") in = true;
    else if (w == "out" || w == "outbound" || w == "outgoing" || w == "egress") out = true;
    else if (w == "both" || w == "bi" || w == "bidirectional" || w == "bidir") in = out = true;
  }
  if (d.empty() || (in && out)) return "both";
  if (in) return "inbound";
  if (out) return "outbound";
  return {};
}

// A port table's default state (lower case): 1 enabled, 0 disabled, -1 when it says neither. The
// first word naming a state decides, "not"/"never" before it turning it round ("Off by default",
// "Default: off", "Closed", "Inactive", "Not enabled by default"). An enabled state with a condition
// ("Enabled only when licensed", "Enabled if configured") is shipped disabled: the site enables it.
// Empty, "n/a" or "-" (an outbound row has no listening state) is enabled, as when there is no column.
// "Required", "Mandatory", "Permanent", and alone "Default", "Standard", "X" and "(User) configurable"
// (shipped on, the site may turn it off) are enabled.
int port_default_state(const std::string& d) {
  std::string t = collapse_ws(d);
  if (t.empty() || t == "-" || t == "--" || t == "n/a" || t == "na" || t == "n.a.") return 1;
  static const std::vector<std::string_view> on = {"enabled", "enable", "on", "open", "opened", "active", "yes", "y",
                                                   "true", "listening", "running", "started", "always", "1",
                                                   "required", "mandatory", "permanent"};
  // Words that mean enabled only when no other word names a state: "Default" and "Standard" also
  // qualify one ("Default: off", "Standard: disabled"); a configurable port ships enabled and the
  // site may turn it off; "X" is a tick in a column of enabled ports.
  static const std::vector<std::string_view> weak_on = {"default", "standard", "configurable", "x"};
  static const std::vector<std::string_view> off = {"disabled", "disable", "off", "closed", "close", "inactive", "no",
                                                    "n", "false", "blocked", "filtered", "deactivated", "stopped",
                                                    "0", "optional", "unused"};
  static const std::vector<std::string_view> condition = {"only", "if", "when", "upon", "request", "requested",
                                                          "licensed", "license", "licence", "optionally"};
  auto in = [](const std::vector<std::string_view>& v, const std::string& w) {
    return std::find(v.begin(), v.end(), w) != v.end();
  };
  std::vector<std::string> words;
  for (size_t i = 0; i < t.size();) {
    if (!std::isalnum(static_cast<unsigned char>(t[i]))) { ++i; continue; }
    size_t j = i;
    while (j < t.size() && std::isalnum(static_cast<unsigned char>(t[j]))) ++j;
    words.push_back(t.substr(i, j - i));
    i = j;
  }
  int state = -1;
  bool negated = false;
  for (auto& w : words) {
    if (w == "not" || w == "never") { negated = true; continue; }
    if (in(on, w) || in(off, w)) {
      state = (in(on, w) != negated) ? 1 : 0;
      break;
    }
  }
  if (state == -1) {
    negated = false;
    for (auto& w : words) {
      if (w == "not" || w == "never") { negated = true; continue; }
      if (in(weak_on, w)) { state = negated ? 0 : 1; break; }
    }
  }
  if (state == 1 && std::any_of(words.begin(), words.end(), [&](const std::string& w) { return in(condition, w); }))
    state = 0;
  return state;
}

}  // namespace

namespace {

using PortSpan = std::pair<uint16_t, uint16_t>;  // first and last port
// Ports and ranges one cell of a table may list ("104, 11112", "5000-5010"): far more is no port
// table but a pasted list, and each becomes a flow.
constexpr size_t kMaxPortsPerCell = 64;

// A port cell: ports and ranges separated by commas, semicolons or slashes; a range is "low-high"
// with a hyphen, an en or em dash, or "to" ("49152–65535", "5000 to 5010"). False with the reason
// (after the quoted cell) in `why`.
bool parse_port_cell(const std::string& cell, std::vector<PortSpan>& out, std::string& why) {
  out.clear();
  why.clear();
  std::string s;
  for (size_t i = 0; i < cell.size(); ++i) {
    // En dash U+2013, em dash U+2014, minus sign U+2212: a range as word processors write it.
    if (cell.compare(i, 3, "\xE2\x80\x93") == 0 || cell.compare(i, 3, "\xE2\x80\x94") == 0 ||
        cell.compare(i, 3, "\xE2\x88\x92") == 0) {
      s += '-';
      i += 2;
    } else {
      s += static_cast<char>(std::tolower(static_cast<unsigned char>(cell[i])));
    }
  }
  auto number = [](std::string_view t, uint32_t& v) {
    if (t.empty() || t.size() > 6) return false;
    v = 0;
    for (char c : t) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint32_t>(c - '0');
    }
    return true;
  };
  auto trim = [](std::string_view t) {
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    return t;
  };
  size_t at = 0;
  while (at <= s.size()) {
    size_t end = s.find_first_of(",;/", at);
    if (end == std::string::npos) end = s.size();
    std::string_view item = trim(std::string_view(s).substr(at, end - at));
    at = end + 1;
    if (item.empty()) {
      if (s.find_first_not_of(" ,;/") == std::string::npos) { why = "is not a number 1-65535"; return false; }
      continue;  // "104, 11112," or "104,, 11112"
    }
    if (out.size() == kMaxPortsPerCell) {
      why = "lists more than " + std::to_string(kMaxPortsPerCell) + " ports (write a range such as 5000-5100)";
      return false;
    }
    size_t dash = item.find('-');
    size_t to = item.find(" to ");
    size_t cut = dash != std::string_view::npos ? dash : to;
    size_t skip = dash != std::string_view::npos ? 1 : 4;
    uint32_t lo = 0, hi = 0;
    if (cut == std::string_view::npos) {
      if (!number(item, lo) || lo < 1 || lo > 65535) {
        why = "is not a number 1-65535 (or a range such as 49152-65535)";
        return false;
      }
      out.emplace_back(lo, lo);
      continue;
    }
    std::string_view a = trim(item.substr(0, cut)), b = trim(item.substr(cut + skip));
    if (!number(a, lo) || !number(b, hi)) {
      why = "is not a port range (expected low-high of ports 1-65535, e.g. 49152-65535)";
      return false;
    }
    if (lo < 1 || hi < 1 || lo > 65535 || hi > 65535) {
      why = "is not a port range: " + std::to_string(lo < 1 || lo > 65535 ? lo : hi) + " is not a port 1-65535";
      return false;
    }
    if (lo > hi) {
      why = "is a reversed range (expected low-high, e.g. " + std::to_string(hi) + "-" + std::to_string(lo) + ")";
      return false;
    }
    out.emplace_back(lo, hi);
  }
  if (out.empty()) {
    why = "is not a number 1-65535";
    return false;
  }
  return true;
}

}  // namespace

// A cell quoted in an error message: control characters (a terminal's escape sequences) as \xNN,
// and cut after 64 bytes (a damaged table may hold a megabyte in one cell).
static std::string shown(const std::string& cell) {
  std::string o;
  for (size_t i = 0; i < cell.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(cell[i]);
    if (i >= 64) {
      // Not inside a UTF-8 sequence.
      while (!o.empty() && (static_cast<unsigned char>(o.back()) & 0xC0) == 0x80) o.pop_back();
      if (!o.empty() && static_cast<unsigned char>(o.back()) >= 0xC0) o.pop_back();
      return o + "...";
    }
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      o += buf;
    } else {
      o.push_back(static_cast<char>(c));
    }
  }
  return o;
}

static std::vector<PortEntry> read_ports_table(const std::string& path, std::vector<std::string>* warnings) {
  // A port table of every port one by one is ~3 MiB.
  std::string text = detail::read_file(path, 4u << 20, "cannot open port table");
  // As a form's text: UTF-16 with a byte-order mark (Excel's "Unicode text") and Windows-1252
  // (Excel's CSV on Windows, whose en dash in "49152–65535" is byte 0x96) are decoded; a guessed
  // encoding is said, with where it was seen.
  std::string decoded, how;
  if (detail::decode_text(text, decoded, how)) {
    if (how == "windows-1252" && warnings)
      warnings->push_back("the port table is not UTF-8 text: read as Windows-1252 (as Excel on Windows writes CSV); the "
                          "first byte that is no UTF-8 is at " + detail::where_not_utf8(text) + "; check its services "
                          "in the model, or save the table as UTF-8");
    if (how.find("without a byte-order mark") != std::string::npos && warnings)
      warnings->push_back("the port table is read as " + how + ", which it looks like; check its services in the "
                          "model, or save the table as UTF-8");
    text = std::move(decoded);
  }
  // A UTF-8 byte-order mark (spreadsheets write one) would make the first row's port not a number.
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);
  // Tabs when there is no comma; semicolons when the first record (header or row) has them and no
  // comma, as spreadsheets write CSV where the comma is the decimal separator; else commas.
  char delim = ',';
  if (text.find('\t') != std::string::npos && text.find(',') == std::string::npos) {
    delim = '\t';
  } else {
    size_t at = 0;
    while (at < text.size()) {
      size_t eol = text.find('\n', at);
      std::string_view l(text.data() + at, (eol == std::string::npos ? text.size() : eol) - at);
      at = eol == std::string::npos ? text.size() : eol + 1;
      size_t first = l.find_first_not_of(" \t\r");
      if (first == std::string_view::npos || l[first] == '#') continue;
      if (l.find(';') != std::string_view::npos && l.find(',') == std::string_view::npos) delim = ';';
      break;
    }
  }
  std::vector<size_t> record_lines;  // error messages name the line a row starts on
  auto rows = detail::parse_delimited(text, delim, &record_lines);
  // Columns: port, protocol, direction, service, default state (header optional, any order). With a
  // header, a column it does not name is absent; the positions are for tables without one.
  int c_port = 0, c_proto = 1, c_dir = 2, c_svc = 3, c_def = 4;
  // Tables of both ends of a connection: "Local Port"/"Remote Port" give the device's port and the
  // peer's; the server's port (dst_port) is the local one inbound and the remote one outbound.
  // "Source Port"/"Destination Port": the destination is the server's, the source (the client's
  // ephemeral range) is not read.
  int c_local = -1, c_remote = -1;
  std::vector<PortEntry> out;
  size_t line = 0, record = 0;
  bool first_record = true;  // the header, when there is one, is the first record after comments
  for (auto& row : rows) {
    line = record < record_lines.size() ? record_lines[record] : line + 1;
    ++record;
    for (auto& c : row) c = collapse_ws(c);
    if (row.empty() || (row.size() == 1 && row[0].empty()) || (!row[0].empty() && row[0][0] == '#')) continue;
    std::string first = row[0];
    for (auto& ch : first) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    bool header = first_record && !std::isdigit(static_cast<unsigned char>(first.empty() ? 'x' : first[0]));
    first_record = false;
    if (header) {
      c_port = c_proto = c_dir = c_svc = c_def = -1;
      int c_app = -1;  // "Application" / "Description": the service when no column is named so
      int c_dst = -1;  // "Destination Port", "Server Port", "Listening Port"
      for (int i = 0; i < static_cast<int>(row.size()); ++i) {
        std::string h = row[i];
        for (auto& ch : h) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        auto has = [&](const char* w) { return h.find(w) != std::string::npos; };
        auto set = [&](int& c) { if (c < 0) c = i; };  // the first column of a kind
        // "Transport" / "Transport Protocol" name the protocol, though they contain "port".
        if (has("proto") || has("transport")) set(c_proto);
        else if (has("port") && (has("source") || has("src") || has("client"))) continue;
        else if (has("port") && (has("dest") || has("dst") || has("server") || has("listen") || has("target"))) c_dst = c_dst < 0 ? i : c_dst;
        else if (has("port") && (has("local") || has("device"))) set(c_local);
        else if (has("port") && (has("remote") || has("peer"))) set(c_remote);
        else if (has("port")) set(c_port);
        else if (has("dir")) set(c_dir);
        else if (has("serv")) set(c_svc);
        else if (has("default") || has("state") || has("status")) set(c_def);
        else if (has("appl") || has("desc") || h == "name") set(c_app);
      }
      if (c_svc < 0) c_svc = c_app;
      if (c_dst >= 0) c_port = c_dst;  // the destination port over a plain one
      if (c_port >= 0 || (c_local >= 0) != (c_remote >= 0)) {
        if (c_port < 0) c_port = c_local >= 0 ? c_local : c_remote;  // one end alone is the port column
        c_local = c_remote = -1;
      }
      if (c_port < 0 && c_local < 0)
        throw ImportError(path + ":" + std::to_string(line) + ": the header names no port column (expected port, "
                          "protocol, direction, service, default state; a source port column alone is not the "
                          "server's port)");
      continue;
    }
    auto cell = [&](int i) { return i >= 0 && i < static_cast<int>(row.size()) ? row[i] : std::string(); };
    PortEntry e;
    e.line = static_cast<int>(line);
    std::string why;
    auto bad_port = [&](const std::string& p) {
      return ImportError(path + ":" + std::to_string(line) + ": port '" + shown(p) + "' " +
                         (why.empty() ? std::string("is not a number 1-65535") : why));
    };
    std::vector<PortSpan> spans;
    if (c_port >= 0 && !parse_port_cell(cell(c_port), spans, why)) throw bad_port(cell(c_port));
    // "TCP", "udp", or both: "TCP/UDP", "TCP + UDP", "tcp, udp", "Both" give a row for each.
    std::string proto = cell(c_proto);
    for (auto& ch : proto) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    bool tcp = false, udp = false, other = false;
    for (size_t i = 0; i < proto.size();) {
      size_t j = proto.find_first_of("/+&,; ", i);
      if (j == std::string::npos) j = proto.size();
      std::string w = proto.substr(i, j - i);
      if (w == "tcp") tcp = true;
      else if (w == "udp") udp = true;
      else if (w == "both") tcp = udp = true;
      else if (!w.empty() && w != "and") other = true;
      i = j + 1;
    }
    if (proto.empty()) tcp = true;
    if (other || (!tcp && !udp))
      throw ImportError(path + ":" + std::to_string(line) + ": protocol '" + shown(cell(c_proto)) +
                        "' (expected tcp, udp or both, e.g. TCP/UDP)");
    e.protocol = tcp ? "tcp" : "udp";
    std::string d = cell(c_dir);
    for (auto& ch : d) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    e.direction = port_direction(d);
    if (e.direction.empty())
      throw ImportError(path + ":" + std::to_string(line) + ": direction '" + shown(d) + "' (expected inbound, outbound or both)");
    // Local/remote table: the device's port inbound, the peer's outbound; both ways, each its own
    // (a side left blank or "any" takes the other's), as two entries when they differ.
    std::vector<PortSpan> out_spans;
    if (c_port < 0) {
      std::vector<PortSpan> lp, rp;
      std::string why_l, why_r;
      bool l_ok = parse_port_cell(cell(c_local), lp, why_l), r_ok = parse_port_cell(cell(c_remote), rp, why_r);
      if (e.direction == "inbound" && !l_ok) { why = why_l; throw bad_port(cell(c_local)); }
      if (e.direction == "outbound" && !r_ok) { why = why_r; throw bad_port(cell(c_remote)); }
      if (!l_ok && !r_ok) { why = why_l; throw bad_port(cell(c_local)); }
      if (!l_ok) lp = rp;
      if (!r_ok) rp = lp;
      spans = e.direction == "outbound" ? rp : lp;
      if (e.direction == "both" && lp != rp) {
        e.direction = "inbound";
        out_spans = rp;
      }
    }
    e.service = cell(c_svc);
    std::string def = cell(c_def);
    for (auto& ch : def) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    int state = port_default_state(def);
    if (state < 0)
      throw ImportError(path + ":" + std::to_string(line) + ": default state '" + shown(cell(c_def)) +
                        "' (expected enabled or disabled, e.g. Enabled, Disabled by default, Off, Closed)");
    e.default_enabled = state == 1;
    // One entry per port or range of the cell ("104, 11112" gives two).
    std::vector<PortEntry> entries;
    for (auto& sp : spans) {
      entries.push_back(e);
      entries.back().port = sp.first;
      entries.back().port_last = sp.second;
    }
    for (auto& sp : out_spans) {
      entries.push_back(e);
      entries.back().direction = "outbound";
      entries.back().port = sp.first;
      entries.back().port_last = sp.second;
    }
    for (auto& x : entries) {
      if (tcp && udp) {
        out.push_back(x);
        x.protocol = "udp";
      }
      out.push_back(std::move(x));
    }
  }
  // A table of no row (an empty file, a header alone) gives the model no flow, as no table does:
  // said, for the file given may not be the one meant.
  if (out.empty() && warnings)
    warnings->push_back("the port table lists no port (it holds no row but a header, comments or blank lines): the "
                        "model has no flows");
  return out;
}

std::vector<PortEntry> read_ports_csv(const std::string& path, std::vector<std::string>* warnings) {
  return detail::named_errors(path, [&] { return read_ports_table(path, warnings); });
}

std::string default_model_id(const Form& f) {
  std::string m = answer_of(f, "DOC-3");
  if (m.empty() || m == "Hidden") m = answer_of(f, "DOC-2");
  std::string id = slug(m);
  return id.empty() ? "imported-model" : id;
}

std::string render_model(const Form& f, const std::vector<PortEntry>& ports, const ImportOptions& opt) {
  std::string o;
  o.reserve(64 * 1024);
  std::string file = f.source_file.substr(f.source_file.find_last_of('/') == std::string::npos ? 0 : f.source_file.find_last_of('/') + 1);
  o += "# Device model imported by `medmon mds2 import` from " + comment_text(file) +
       (f.sheet.empty() ? std::string() : ", sheet " + q(f.sheet)) + " (" + f.source_format + ", ANSI/NEMA HN 1-2019).\n";
  o += "# Review it before use. A person must still fill in:\n";
  o += "#   - flows: the peer role of each conversation (pacs, ris_mwl, ntp, ...), bound to addresses by the site file;\n";
  o += "#   - dicom: the default AE titles (a site device may name its own), SOP classes, DIMSE in/out, C-MOVE destinations;\n";
  o += "#   - hl7: message types in/out and the peer roles;\n";
  o += "#   - fingerprints: DICOM implementation class UID / version name, HL7 MSH-3, from the conformance statement;\n";
  o += "#   - conflicts: disagreements between this form and other vendor documents.\n";
  o += "schema: medmon.model/v1\n";
  std::string id = opt.model_id.empty() ? default_model_id(f) : opt.model_id;
  o += "model:\n";
  o += "  id: " + q(id) + "\n";
  o += "  manufacturer: " + q(answer_of(f, "DOC-1")) + "  # DOC-1\n";
  o += "  description: " + q(answer_of(f, "DOC-2")) + "  # DOC-2\n";
  std::string models = answer_of(f, "DOC-3");
  o += "  models: [" + (models.empty() ? std::string() : q(models)) + "]  # DOC-3\n";
  o += "  intended_use: " + q(answer_of(f, "DOC-6")) + "  # DOC-6\n";
  o += "  software_versions: []  # not part of the 2019 form: take it from the DICOM conformance statement\n";
  o += "  documents:\n";
  o += "    - kind: mds2\n";
  o += "      form: \"HN 1-2019\"\n";
  o += "      id: " + q(answer_of(f, "DOC-4")) + "  # DOC-4\n";
  o += "      release_date: " + q(answer_of(f, "DOC-7")) + "  # DOC-7\n";
  o += "      file: " + q(file) + "\n";
  o += "      format: " + f.source_format + "\n";
  if (!f.sheet.empty()) o += "      sheet: " + q(f.sheet) + "\n";
  if (!opt.sha256.empty()) o += "      sha256: " + q(opt.sha256) + "\n";
  o += "  conflicts: []  # keep disagreements between vendor documents here: {ids: [...], text: ...}\n";

  o += "mds2_derived:  # each switch follows from one answer; null = not answered yes/no, decide on site\n";
  for (auto& s : derived_switches()) {
    auto* x = f.find(s.question);
    std::string val = "null";
    std::string ans = x ? (x->detail.empty() ? std::string(answer_name(x->answer)) : x->detail) : "missing";
    if (x && (x->answer == Answer::yes || x->answer == Answer::no)) {
      bool v = (x->answer == Answer::yes) != s.inverted;
      val = v ? "true" : "false";
    }
    std::string line = "  " + std::string(s.name) + ": " + val;
    if (line.size() < 36) line.append(36 - line.size(), ' ');
    o += line + "  # " + s.question + " = " + comment_text(ans) + "\n";
  }

  if (ports.empty()) {
    auto* c2 = f.find("CONN-2");
    o += "flows: []  # no port table given";
    if (c2) o += " (CONN-2 = " + comment_text(c2->detail.empty() ? answer_name(c2->answer) : c2->detail) + ")";
    o += ": list each declared conversation (see docs/policy.md)\n";
  } else {
    o += "flows:  # from the vendor port table; narrow peer_role to site roles\n";
    // One flow per direction, protocol and port: a table listing a port once per service (104 for
    // DICOM storage and for query/retrieve) gives one flow with every service, so its ids stay unique.
    struct Flow {
      bool inbound;
      const PortEntry* first;
      std::vector<std::string> services, apps, lines;
      bool default_enabled = false;
    };
    std::vector<Flow> flows;
    std::map<std::tuple<bool, std::string, uint16_t, uint16_t>, size_t> index;
    auto add = [&](const PortEntry& p, bool inbound) {
      auto [it, added] = index.try_emplace({inbound, p.protocol, p.port, p.port_last}, flows.size());
      if (added) flows.push_back({inbound, &p, {}, {}, {}});
      Flow& fl = flows[it->second];
      auto add_unique = [](std::vector<std::string>& v, const std::string& s) {
        if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
      };
      add_unique(fl.services, p.service);
      add_unique(fl.apps, app_for_service(p.service));
      add_unique(fl.lines, "ports:" + std::to_string(p.line));
      fl.default_enabled |= p.default_enabled;  // open by default when any of its services is
    };
    for (auto& p : ports) {
      if (p.direction != "outbound") add(p, true);
      if (p.direction != "inbound") add(p, false);
    }
    for (auto& fl : flows) {
      const PortEntry& p = *fl.first;
      // A range: "in-tcp-49152-65535", dst_port: [49152-65535].
      std::string ports = std::to_string(p.port);
      if (p.port_last > p.port) ports += "-" + std::to_string(p.port_last);
      o += "  - id: " + q(std::string(fl.inbound ? "in-" : "out-") + p.protocol + "-" + ports) + "\n";
      o += std::string("    initiator: ") + (fl.inbound ? "peer" : "device") + "\n";
      o += "    peer_role: any_internal  # TO FILL IN: the site role of the peer\n";
      o += "    l4: " + p.protocol + "\n";
      o += "    dst_port: [" + ports + "]\n";
      if (fl.apps.size() == 1) o += "    app: " + fl.apps[0] + "\n";
      else if (!fl.apps.empty()) {
        o += "    app: [";
        for (size_t i = 0; i < fl.apps.size(); ++i) o += (i ? ", " : "") + fl.apps[i];
        o += "]\n";
      }
      if (fl.apps.size() == 1 && fl.apps[0] == "tls") o += "    tls: required\n";
      o += std::string("    default_enabled: ") + (fl.default_enabled ? "true" : "false") + "\n";
      std::string desc;
      for (auto& sv : fl.services) desc += (desc.empty() ? "" : "; ") + sv;
      o += "    description: " + q(desc) + "\n";
      o += "    source: [";
      for (auto& l : fl.lines) o += q(l) + ", ";
      o += "CONN-2]\n";
    }
  }
  o += "forbidden_apps: []  # RMOT-1, SAHD-7 and SAHD-9 add theirs at load time; add model-specific ones here\n";
  auto* rm = f.find("RMOT-1");
  o += "remote_service:\n";
  o += std::string("  endpoints: []  # vendor remote-service hosts (RMOT-1 = ") +
       comment_text(rm ? (rm->detail.empty() ? answer_name(rm->answer) : rm->detail) : "missing") + ")\n";

  o += "mds2:  # raw answers as read, with the form's IEC TR 80001-2-2 / NIST SP 800-53 / ISO 27002 mapping\n";
  o += "  form: \"HN 1-2019\"\n";
  o += "  answers:\n";
  for (auto& x : f.questions) {
    o += "    " + x.id + ": {answer: " + q(answer_name(x.answer)) + ", detail: " + q(x.detail);
    if (x.raw_id != x.id) o += ", raw_id: " + q(x.raw_id);
    if (!x.note_ref.empty()) o += ", note_ref: " + q(x.note_ref);
    if (!x.note.empty()) o += ", note: " + q(x.note);
    if (!x.iec_tr_80001_2_2.empty()) o += ", iec_tr_80001_2_2: " + q(x.iec_tr_80001_2_2);
    if (!x.nist_800_53.empty()) o += ", nist_800_53: " + q(x.nist_800_53);
    if (!x.iso_27002.empty()) o += ", iso_27002: " + q(x.iso_27002);
    o += "}\n";
  }
  o += "  notes:";
  if (f.notes.empty()) o += " {}";
  o += "\n";
  for (auto& [k, v] : f.notes) o += "    " + q(k) + ": " + q(v) + "\n";
  return o;
}

}  // namespace medmon::mds2
