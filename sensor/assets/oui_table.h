#pragma once
// MAC address -> vendor, from the IEEE registries Debian ships in ieee-data (oui.csv: 24-bit
// MA-L, mam.csv: 28-bit MA-M, oui36.csv: 36-bit MA-S, iab.csv: 36-bit IAB). The longest registered
// prefix wins.
#include <array>
#include <deque>
#include <mutex>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace medmon {

class OuiTable {
 public:
  static constexpr size_t kMaxEntries = 1u << 20;  // far above the registries' ~60k rows

  // Loads the registries found in dir (missing files are skipped). Returns the rows loaded.
  size_t load_dir(const std::string& dir);
  // Loads one registry CSV (Registry,Assignment,Organization Name,Organization Address).
  size_t load_csv(const std::string& path);
  // Adds one assignment: hex digits of the prefix (6, 7 or 9 of them).
  bool add(std::string_view assignment_hex, std::string_view org);

  // Loads dir's registries at the first vendor() call instead of now: captures without MAC
  // addresses (loopback, raw IP) never pay for reading them. Thread-safe.
  void load_dir_on_first_use(std::string dir) { lazy_dir_ = std::move(dir); }

  // Vendor of the MAC, "" when unknown. Locally administered and multicast MACs have no vendor.
  std::string_view vendor(const std::array<uint8_t, 6>& mac) const;
  size_t size() const { ensure_loaded(); return entries_; }

  static bool locally_administered(const std::array<uint8_t, 6>& mac) { return mac[0] & 0x02; }

 private:
  uint32_t intern(std::string_view org);
  void ensure_loaded() const {
    if (!lazy_dir_.empty()) std::call_once(lazy_once_, [this] { const_cast<OuiTable*>(this)->load_dir(lazy_dir_); });
  }
  std::string lazy_dir_;
  mutable std::once_flag lazy_once_;
  // Index 0: 24-bit, 1: 28-bit, 2: 36-bit prefixes.
  std::array<std::unordered_map<uint64_t, uint32_t>, 3> maps_;
  std::deque<std::string> orgs_;  // deque: the index's views stay valid as it grows
  std::unordered_map<std::string_view, uint32_t> org_index_;
  size_t entries_ = 0;
};

std::string format_mac(const std::array<uint8_t, 6>& mac);

}  // namespace medmon
