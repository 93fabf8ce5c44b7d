#pragma once
// ClickHouse over its HTTP interface: one INSERT ... FORMAT JSONEachRow per event table and
// batch. Rows carry the sensor id, the event's (run, seq) identity, its time, the whole event as
// `raw`, and every field flattened (nested keys joined by '_'); the server keeps the columns its
// table has (input_format_skip_unknown_fields), see deploy/clickhouse/schema.sql.
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "sensor/output/sinks/async_sink.h"
#include "sensor/output/sinks/net.h"

namespace medmon {

// The JSONEachRow row for one event (identity and raw text only when the line does not parse).
std::string clickhouse_row(const Record& r, std::string_view sensor_id);

class ClickHouseBackend : public Backend {
 public:
  // URL: http://HOST:PORT/?db=DB[&table_prefix=P][&user=..&password=..]. Throws SinkConfigError.
  ClickHouseBackend(const SinkSpec& spec, std::string sensor_id);
  bool deliver(const std::vector<Record>& batch, std::string& error) override;
  void set_run(const std::string& run) override { own_run_ = run; }
  // Events the server refused for good (an error code of their data), dropped.
  uint64_t take_skipped() override { uint64_t n = skipped_; skipped_ = 0; return n; }
  // The last delivery failed on HTTP 401, 403, 404 or 407, or on an error of the schema:
  // credentials, rights, a missing database or table, a table that does not fit the rows, which
  // no retry mends.
  bool refuses_sink() const override { return refuses_sink_; }
  std::string table_for(std::string_view event_type) const;

  // What an error reply (HTTP status, and the error text holding its body) refuses: nothing for
  // good (a failure to retry), the rows of the request (dropped), or the sink itself (stopped).
  enum class Refusal { none, rows, sink };
  static Refusal refusal(int status, const std::string& error);

 private:
  // Runs a query; false with `error` when it fails. `sent`: the server may have acted on it.
  // `status`: the HTTP status of the reply (0: none came).
  bool query(const std::string& sql, std::string_view body, std::string& out, std::string& error, bool& sent,
             int* status = nullptr, const std::string& query_id = {});
  // How many INSERTs of `run` (by this process or an earlier one) the server is still running;
  // -1 on error.
  int64_t inserts_running(const std::string& run, std::string& error);
  // INSERTs the rows. A part the server refuses for its data (Refusal::rows) is split in halves to
  // find the rows it refuses, which are dropped (within a budget of requests per batch; beyond
  // it a refused part is dropped whole). false: a failure to retry later.
  bool insert(const std::string& table, const std::vector<const Record*>& rows, std::string& error);
  // How many rows of `run` with seq in [lo, hi] the table holds; -1 on error.
  int64_t count_rows(const std::string& table, const std::string& run, uint64_t lo, uint64_t hi, std::string& error);

  SinkSpec spec_;
  Url server_;
  std::string db_, prefix_;
  std::string auth_;          // other URL parameters passed on (user, password, settings)
  std::string sensor_id_;
  std::string own_run_;
  // State of the batch being retried.
  std::string batch_run_;
  uint64_t batch_seq_ = 0;
  std::set<std::string> done_;       // tables whose rows are in
  std::set<std::string> uncertain_;  // sent, no answer: check before sending again
  std::set<std::pair<std::string, uint64_t>> refused_;  // (run, seq) the server refused for good
  unsigned split_budget_ = 0;        // INSERTs left to find refused rows in
  uint64_t skipped_ = 0;
  bool refuses_sink_ = false;
};

}  // namespace medmon
