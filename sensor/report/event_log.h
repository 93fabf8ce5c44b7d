#pragma once
// The events of one analysis, read back from JSON Lines for the inventory and the report.
// Not on the packet path: nlohmann::json is fine here.
#include <nlohmann/json.hpp>

#include <cstdint>

#include <string>
#include <string_view>
#include <vector>

namespace medmon::report {

struct EventLog {
  // The events the inventory and the report read; the others (dicom, hl7, anomaly, dhcp, ...,
  // millions in a long capture) are counted and checked to be JSON objects, not kept.
  std::vector<nlohmann::json> flows, alerts, assets;
  nlohmann::json stats = nlohmann::json::object();  // the last `stats` event
  std::string first_ts, last_ts;    // RFC 3339, as written
  uint64_t events = 0, bad_lines = 0;
  uint64_t lines = 0, first_bad_line = 0;  // lines given (blank ones too); 1-based, 0 = none bad
  std::string source;               // file name, for the report header

  // Adds one line; malformed lines are counted and skipped (the first one's number kept).
  void add_line(std::string_view line);
  // Reads a JSONL file; false (and err) when it cannot be opened.
  bool load(const std::string& path, std::string& err);
  // Reads the lines between two offsets of an open file (a part of it another writer may still
  // append to); false (and err) when it cannot be read.
  bool load_range(int fd, int64_t begin, int64_t end, std::string& err);
};

// A member of an object, by reference (json::value() returns a copy of the whole member, which for
// every flow of a long capture cost more than the report itself); an empty object when j is no
// object or has no such member.
const nlohmann::json& member(const nlohmann::json& j, const char* key);

// Safe accessors: missing keys or wrong types give the fallback.
std::string str(const nlohmann::json& j, const char* key, const std::string& fallback = {});
uint64_t num(const nlohmann::json& j, const char* key);

// A flow's protocol as the inventory and the report name it: medmon's `app`, else nDPI's when it
// read it from the content (not guessed from the port), else "unknown"; lower case.
std::string flow_app(const nlohmann::json& f);
// A flow's server port; 0 for ICMP, whose "ports" are the echo identifier (a new one per ping).
uint64_t flow_port(const nlohmann::json& f);

}  // namespace medmon::report
