#include "sensor/assets/oui_table.h"

#include <cstdio>

#include "sensor/assets/csv.h"

namespace medmon {

namespace {
constexpr int kBits[3] = {24, 28, 36};

uint64_t mac_value(const std::array<uint8_t, 6>& mac) {
  uint64_t v = 0;
  for (uint8_t b : mac) v = (v << 8) | b;
  return v;
}
}  // namespace

std::string format_mac(const std::array<uint8_t, 6>& mac) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(17);
  for (size_t i = 0; i < 6; ++i) {
    if (i) s.push_back(':');
    s.push_back(hex[mac[i] >> 4]);
    s.push_back(hex[mac[i] & 15]);
  }
  return s;
}

uint32_t OuiTable::intern(std::string_view org) {
  auto it = org_index_.find(org);
  if (it != org_index_.end()) return it->second;
  uint32_t i = static_cast<uint32_t>(orgs_.size());
  orgs_.emplace_back(org);
  org_index_.emplace(orgs_.back(), i);
  return i;
}

bool OuiTable::add(std::string_view hexs, std::string_view org) {
  int slot = hexs.size() == 6 ? 0 : hexs.size() == 7 ? 1 : hexs.size() == 9 ? 2 : -1;
  if (slot < 0 || org.empty() || entries_ >= kMaxEntries) return false;
  uint64_t v = 0;
  for (char c : hexs) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  while (!org.empty() && (org.back() == ' ' || org.back() == '\t')) org.remove_suffix(1);
  if (maps_[slot].emplace(v, intern(org)).second) ++entries_;
  return true;
}

size_t OuiTable::load_csv(const std::string& path) {
  // The registries are read at every start: one read, then lines and fields as views. Only a
  // line whose organisation name is quoted goes through the general CSV splitter.
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return 0;
  std::string text;
  char chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, fp)) > 0) text.append(chunk, got);
  std::fclose(fp);
  if (maps_[0].empty()) for (auto& m : maps_) m.reserve(1 << 15);
  std::vector<std::string> f;
  size_t n = 0, pos = 0;
  bool header = true;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    if (header) { header = false; continue; }
    size_t c1 = line.find(',');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(',', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view assignment = line.substr(c1 + 1, c2 - c1 - 1);
    if (c2 + 1 < line.size() && line[c2 + 1] == '"') {
      split_csv_line(line, f, 4);
      if (f.size() >= 3 && add(f[1], f[2])) ++n;
      continue;
    }
    std::string_view org = line.substr(c2 + 1);
    org = org.substr(0, org.find(','));
    if (!org.empty() && org.back() == '\r') org.remove_suffix(1);
    if (add(assignment, org)) ++n;
  }
  return n;
}

size_t OuiTable::load_dir(const std::string& dir) {
  size_t n = 0;
  // iab.csv holds the older 36-bit IAB blocks (under 00:50:C2 and 40:D8:55, whose 24-bit row only
  // names the IEEE Registration Authority); same columns as oui36.csv.
  for (const char* name : {"oui.csv", "mam.csv", "oui36.csv", "iab.csv"}) n += load_csv(dir + "/" + name);
  return n;
}

std::string_view OuiTable::vendor(const std::array<uint8_t, 6>& mac) const {
  if (mac[0] & 0x03) return {};  // locally administered or group address: not a vendor's
  ensure_loaded();
  uint64_t v = mac_value(mac);
  for (int slot = 2; slot >= 0; --slot) {
    if (maps_[slot].empty()) continue;
    auto it = maps_[slot].find(v >> (48 - kBits[slot]));
    if (it != maps_[slot].end()) return orgs_[it->second];
  }
  return {};
}

}  // namespace medmon
