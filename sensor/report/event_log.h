#pragma once
// The events of one analysis, read back from JSON Lines for the inventory and the report.
// Not on the packet path: nlohmann::json is fine here.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>

#include <string>
#include <string_view>
#include <vector>

namespace medmon::report {

struct EventLog {
  // The events the inventory and the report keep; the others (dicom, hl7, anomaly, dhcp, ...,
  // millions in a long capture) are counted and checked to be JSON objects, not kept. Flows and
  // asset events are not kept either (a SPAN port's day holds millions of flows, and an asset
  // event for each change of tens of thousands of devices): each reader goes through them with
  // for_each_flow() and for_each_asset(), which read them again from the file.
  std::vector<nlohmann::json> alerts;
  nlohmann::json stats = nlohmann::json::object();  // the last `stats` event
  std::string first_ts, last_ts;    // RFC 3339, as written
  uint64_t events = 0, bad_lines = 0;
  uint64_t lines = 0, first_bad_line = 0;  // lines given (blank ones too); 1-based, 0 = none bad
  uint64_t flow_events = 0, asset_events = 0;  // `flow` and `asset` events read
  // Whether a flow carries anything of a site policy (a device name, a verdict, a zone).
  bool flows_from_site = false;
  // Why the file could not be read to its end (an I/O error after line `lines`); empty when it
  // could. What came after that is missing, as an unreadable line is.
  mutable std::string read_error;
  mutable uint64_t read_error_line = 0;  // the last line read before the error
  std::string source;               // file name, for the report header

  EventLog();
  ~EventLog();
  EventLog(EventLog&&) noexcept;
  EventLog& operator=(EventLog&&) noexcept;

  // Adds one line; malformed lines are counted and skipped (the first one's number kept). A flow or
  // asset event added so is kept in memory (as its line) for for_each_flow() and for_each_asset().
  void add_line(std::string_view line);
  // Reads a JSONL file ("-": standard input); false (and err) when it cannot be opened. A file
  // that cannot be read twice (standard input, a pipe) is copied to an unlinked temporary file
  // under $TMPDIR as it is read: false when none can be made. A read error part way is no
  // failure: read_error says it.
  bool load(const std::string& path, std::string& err);
  // Reads the lines between two offsets of an open file (a part of it another writer may still
  // append to); false (and err) when it cannot be read. The descriptor must stay open while
  // for_each_flow() may be called.
  bool load_range(int fd, int64_t begin, int64_t end, std::string& err);
  // Calls fn with every flow event, in the order of the file. A read error sets read_error.
  void for_each_flow(const std::function<void(const nlohmann::json&)>& fn) const;
  // Calls fn with every asset event, in the order of the file.
  void for_each_asset(const std::function<void(const nlohmann::json&)>& fn) const;
  // Whether something of the events could not be read (an unreadable line, a read error).
  bool incomplete() const { return bad_lines > 0 || !read_error.empty(); }

 private:
  struct Source;
  std::unique_ptr<Source> src_;
  bool keep_lines_ = true;
  // Flows and asset events given by add_line, not read from a file.
  std::vector<std::string> flow_lines_, asset_lines_;
  void for_each_of(const char* type, const std::vector<std::string>& kept,
                   const std::function<void(const nlohmann::json&)>& fn) const;
  bool read_fd(int fd, int64_t begin, int64_t end, int copy_to);
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
