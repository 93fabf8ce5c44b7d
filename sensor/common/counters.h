#pragma once
// Named monotonically increasing counters. Names are dotted ("tcp.reassembly.memcap_hits");
// iteration order is by name so `stats` events are deterministic.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace medmon {

class Counters {
 public:
  // Returns a stable reference; hot paths keep it instead of looking the name up each time.
  uint64_t& at(std::string_view name) {
    auto it = map_.find(name);
    if (it == map_.end()) it = map_.emplace(std::string(name), 0).first;
    return it->second;
  }
  void add(std::string_view name, uint64_t n = 1) { at(name) += n; }
  uint64_t get(std::string_view name) const {
    auto it = map_.find(name);
    return it == map_.end() ? 0 : it->second;
  }
  const std::map<std::string, uint64_t, std::less<>>& all() const { return map_; }
  // Adds every counter of `o` (merging workers; peaks add up to an upper bound).
  void merge(const Counters& o) {
    for (auto& [k, v] : o.map_) at(k) += v;
  }

 private:
  std::map<std::string, uint64_t, std::less<>> map_;  // node-based: references stay valid
};

}  // namespace medmon
