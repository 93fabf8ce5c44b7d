#include "sensor/output/sinks/clickhouse_sink.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <map>
#include <unordered_set>

#include "sensor/common/diag.h"
#include "sensor/output/sinks/sink_error.h"

namespace medmon {

namespace {
using json = nlohmann::json;

void quote(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out += "\\u00"; out.push_back(hex[c >> 4]); out.push_back(hex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

// Every scalar goes as a JSON string: ClickHouse parses quoted numbers into numeric columns,
// and a String column never refuses it.
void scalar(std::string& out, const json& v) {
  if (v.is_string()) quote(out, v.get_ref<const std::string&>());
  else if (v.is_boolean()) out += v.get<bool>() ? "\"1\"" : "\"0\"";
  else quote(out, v.dump(-1, ' ', false, json::error_handler_t::replace));
}

void put(std::string& row, std::unordered_set<std::string>& seen, const std::string& key, const json& v) {
  if (v.is_null() || !seen.insert(key).second) return;
  row += row.size() > 1 ? ",\"" : "\"";
  row += key;
  row += "\":";
  if (v.is_array()) {
    row.push_back('[');
    bool first = true;
    for (const auto& e : v) {
      if (!first) row.push_back(',');
      first = false;
      if (e.is_structured()) quote(row, e.dump(-1, ' ', false, json::error_handler_t::replace));
      else scalar(row, e);
    }
    row.push_back(']');
  } else {
    scalar(row, v);
  }
}

void flatten(std::string& row, std::unordered_set<std::string>& seen, const std::string& prefix, const json& o, int depth) {
  // Scalars and arrays of this level first, so a top-level key wins over a flattened one.
  for (auto it = o.begin(); it != o.end(); ++it)
    if (!it->is_object()) put(row, seen, prefix + it.key(), *it);
  for (auto it = o.begin(); it != o.end(); ++it) {
    if (!it->is_object()) continue;
    if (depth >= 4) put(row, seen, prefix + it.key(), json(it->dump(-1, ' ', false, json::error_handler_t::replace)));
    else flatten(row, seen, prefix + it.key() + "_", *it, depth + 1);
  }
}

std::string sql_str(const std::string& s) {
  std::string o = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') o.push_back('\\');
    o.push_back(c);
  }
  return o + "'";
}

bool ident_ok(const std::string& s) {
  if (s.empty()) return true;
  for (char c : s) if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

const std::set<std::string>& known_tables() {
  static const std::set<std::string> t = {"flow", "alert", "asset", "anomaly", "stats", "dicom", "hl7",
                                          "astm", "poct1", "sdc", "dhcp", "proprietary"};
  return t;
}
}  // namespace

std::string clickhouse_row(const Record& r, std::string_view sensor_id) {
  json j = json::parse(r.line, nullptr, false);
  // A line the parser refuses (it should not happen) still goes in, as its raw text.
  const bool parsed = !j.is_discarded() && j.is_object();
  std::string row = "{";
  std::unordered_set<std::string> seen;
  put(row, seen, "sensor_id", json(std::string(sensor_id)));
  put(row, seen, "run", json(r.run));
  put(row, seen, "seq", json(r.seq));
  if (!parsed) put(row, seen, "event_type", json(r.type));
  std::string ts = parsed && j.contains("ts") && j["ts"].is_string() ? j["ts"].get<std::string>() : "";
  struct tm tm{};
  int64_t secs = 0, usec = 0;
  if (ts.size() >= 20 && strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) {
    secs = int64_t(timegm(&tm));
    if (ts.size() >= 27 && ts[19] == '.') usec = std::atoll(ts.substr(20, 6).c_str());
  }
  // DateTime and ts_us (UInt64) hold 1970 to 2106: a time outside is clamped rather than have
  // the server refuse the batch (raw keeps the event's own ts).
  if (secs < 0) secs = usec = 0;
  secs = std::min<int64_t>(secs, 4294967295);
  put(row, seen, "time", json(secs));
  put(row, seen, "ts_us", json(secs * 1000000 + usec));
  seen.insert("raw");
  row += ",\"raw\":";
  quote(row, r.line);
  if (parsed) flatten(row, seen, "", j, 0);
  row += "}\n";
  return row;
}

ClickHouseBackend::ClickHouseBackend(const SinkSpec& spec, std::string sensor_id)
    : spec_(spec), db_("medmon"), sensor_id_(std::move(sensor_id)) {
  std::string e = parse_url(spec.url, server_, 8123);
  if (!e.empty()) throw SinkConfigError(e);
  for (auto& [k, v] : server_.query) {
    if (k == "db" || k == "database") db_ = v;
    else if (k == "table_prefix") prefix_ = v;
    else auth_ += url_encode(k) + "=" + url_encode(v) + "&";
  }
  if (db_.empty() || !ident_ok(db_)) throw SinkConfigError(fmt::format("clickhouse db '{}' must be letters, digits and '_'", db_));
  if (!ident_ok(prefix_)) throw SinkConfigError(fmt::format("clickhouse table_prefix '{}' must be letters, digits and '_'", prefix_));
}

std::string ClickHouseBackend::table_for(std::string_view type) const {
  std::string t(type);
  if (!known_tables().count(t)) t = "other";
  return db_ + "." + prefix_ + t;
}

bool ClickHouseBackend::query(const std::string& sql, std::string_view body, std::string& out, std::string& error, bool& sent,
                              int* status, const std::string& query_id) {
  std::string target = server_.path + "?" + auth_ + "input_format_skip_unknown_fields=1&query=" + url_encode(sql);
  if (!query_id.empty()) target += "&query_id=" + url_encode(query_id);
  HttpResponse resp;
  if (status) *status = 0;
  if (!http_request(server_, "POST", target, body, spec_.timeout_usec, resp, error, sent, deadline_,
                    spec_.request_timeout_usec)) {
    if (error.find(server_.host) == std::string::npos) error = fmt::format("{}:{}: {}", server_.host, server_.port, error);
    return false;
  }
  if (status) *status = resp.status;
  if (resp.status != 200) {
    std::string msg = resp.body.substr(0, 300);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    error = fmt::format("{}:{}: HTTP {}: {}", server_.host, server_.port, resp.status, msg);
    if (refusal(resp.status, error) == Refusal::sink) refuses_sink_ = true;
    return false;
  }
  out = std::move(resp.body);
  return true;
}

// Every INSERT has a query id naming its rows: medmon-RUN-TABLE-FIRST-LAST. The server refuses a
// second query with the id of one still running, and system.processes shows which still run.
int64_t ClickHouseBackend::inserts_running(const std::string& run, std::string& error) {
  std::string out;
  bool sent = false;
  if (!query(fmt::format("SELECT count() FROM system.processes WHERE query_id LIKE {}", sql_str("medmon-" + run + "-%")), "",
             out, error, sent))
    return -1;
  return std::atoll(out.c_str());
}

int64_t ClickHouseBackend::count_rows(const std::string& table, const std::string& run, uint64_t lo, uint64_t hi,
                                      std::string& error) {
  std::string out;
  bool sent = false;
  std::string sql = fmt::format("SELECT count() FROM {} WHERE sensor_id = {} AND run = {} AND seq BETWEEN {} AND {}",
                                table, sql_str(sensor_id_), sql_str(run), lo, hi);
  if (!query(sql, "", out, error, sent)) return -1;
  return std::atoll(out.c_str());
}

namespace {
// The ClickHouse exception code an error reply carries ("Code: 60, e.displayText() = ..." up to
// 20.x, "Code: 60. DB::Exception: ..." later); -1 when it carries none (a proxy's reply).
int exception_code(const std::string& error) {
  size_t at = error.find(": Code: ");
  if (at == std::string::npos) return -1;
  const char* p = error.c_str() + at + 8;
  if (*p < '0' || *p > '9') return -1;
  return std::atoi(p);
}

// Exception codes that mean the row itself is bad (a value the column cannot take, ...): sending
// it again gets the same answer. ClickHouse answers most of them with 500 up to 20.x, with 400
// later. Not those a retry may cure (CANNOT_READ_ALL_DATA, ATTEMPT_TO_READ_AFTER_EOF: a body cut
// short on the way; MEMORY_LIMIT_EXCEEDED, TOO_MANY_PARTS, ...).
bool bad_row_code(int code) {
  static constexpr int kBadData[] = {
      6,    // CANNOT_PARSE_TEXT
      25,   // CANNOT_PARSE_ESCAPE_SEQUENCE
      26,   // CANNOT_PARSE_QUOTED_STRING
      27,   // CANNOT_PARSE_INPUT_ASSERTION_FAILED
      38,   // CANNOT_PARSE_DATE
      41,   // CANNOT_PARSE_DATETIME
      53,   // TYPE_MISMATCH
      69,   // ARGUMENT_OUT_OF_BOUND
      70,   // CANNOT_CONVERT_TYPE
      72,   // CANNOT_PARSE_NUMBER
      117,  // INCORRECT_DATA
      120,  // CANNOT_INSERT_VALUE_OF_DIFFERENT_SIZE_INTO_TUPLE
      128,  // TOO_LARGE_ARRAY_SIZE
      130,  // CANNOT_READ_ARRAY_FROM_TEXT
      131,  // TOO_LARGE_STRING_SIZE
      190,  // SIZES_OF_ARRAYS_DONT_MATCH
      321,  // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
      349,  // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
      376,  // CANNOT_PARSE_UUID
      407,  // DECIMAL_OVERFLOW
      441,  // CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING
      467,  // CANNOT_PARSE_BOOL
      469,  // VIOLATED_CONSTRAINT (a CHECK constraint of the table refuses the row)
      563,  // CANNOT_READ_MAP_FROM_TEXT
      626,  // CANNOT_SKIP_UNKNOWN_FIELD
      632,  // UNEXPECTED_DATA_AFTER_PARSED_VALUE
      675,  // CANNOT_PARSE_IPV4
      676,  // CANNOT_PARSE_IPV6
      691,  // UNKNOWN_ELEMENT_OF_ENUM
  };
  return std::find(std::begin(kBadData), std::end(kBadData), code) != std::end(kBadData);
}

// Exception codes that refuse every INSERT of the sink, whatever its rows: a table, database or
// column that is missing or does not fit, a query the server cannot take, credentials or rights.
// Dropping the rows would drop every event; the sink stops instead, its events kept in the spool.
bool sink_code(int code) {
  static constexpr int kSink[] = {
      8,    // THERE_IS_NO_COLUMN
      10,   // NOT_FOUND_COLUMN_IN_BLOCK
      15,   // DUPLICATE_COLUMN
      16,   // NO_SUCH_COLUMN_IN_TABLE
      44,   // ILLEGAL_COLUMN
      46,   // UNKNOWN_FUNCTION (in a column's DEFAULT)
      47,   // UNKNOWN_IDENTIFIER
      48,   // NOT_IMPLEMENTED (a table engine that takes no INSERT: View, Merge)
      50,   // UNKNOWN_TYPE
      60,   // UNKNOWN_TABLE
      62,   // SYNTAX_ERROR
      73,   // UNKNOWN_FORMAT
      81,   // UNKNOWN_DATABASE
      115,  // UNKNOWN_SETTING (a setting in the URL)
      164,  // READONLY
      192,  // UNKNOWN_USER
      193,  // WRONG_PASSWORD
      194,  // REQUIRED_PASSWORD
      195,  // IP_ADDRESS_NOT_ALLOWED
      291,  // DATABASE_ACCESS_DENIED
      497,  // ACCESS_DENIED
      516,  // AUTHENTICATION_FAILED
  };
  return std::find(std::begin(kSink), std::end(kSink), code) != std::end(kSink);
}
}  // namespace

ClickHouseBackend::Refusal ClickHouseBackend::refusal(int status, const std::string& error) {
  if (status == 0 || status == 200) return Refusal::none;
  if (status == 401 || status == 403 || status == 404 || status == 407) return Refusal::sink;
  const int code = exception_code(error);
  if (sink_code(code)) return Refusal::sink;
  if (bad_row_code(code) && (status == 500 || (status >= 400 && status < 500))) return Refusal::rows;
  // A timeout (408) or a rate limit (429) passes; so may a server error (5xx) of another code.
  if (status == 408 || status == 429 || status >= 500) return Refusal::none;
  // A proxy's 413 (no ClickHouse code): the body is too large for it; halves go through.
  if (status == 413 && code < 0) return Refusal::rows;
  // Any other 4xx refuses the request whatever its rows: not a reason to drop them.
  return Refusal::sink;
}

namespace {
constexpr unsigned kSplitBudget = 64;
}  // namespace

bool ClickHouseBackend::insert(const std::string& table, const std::vector<const Record*>& rows, std::string& error) {
  if (rows.empty()) return true;
  std::string body;
  for (auto* r : rows) body += clickhouse_row(*r, sensor_id_);
  std::string out;
  bool sent = false;
  int status = 0;
  std::string id = fmt::format("medmon-{}-{}-{}-{}", rows.front()->run, table, rows.front()->seq, rows.back()->seq);
  if (query("INSERT INTO " + table + " FORMAT JSONEachRow", body, out, error, sent, &status, id)) return true;
  if (refusal(status, error) != Refusal::rows) {
    // Sent (it may have gone in), or after parts that went in: count before sending again.
    if (sent || split_budget_ < kSplitBudget) uncertain_.insert(table);
    return false;
  }
  // Refused with an answer: none of these rows went in (one block).
  if (rows.size() > 1 && split_budget_ >= 2) {
    split_budget_ -= 2;
    size_t half = rows.size() / 2;
    return insert(table, {rows.begin(), rows.begin() + half}, error) && insert(table, {rows.begin() + half, rows.end()}, error);
  }
  for (auto* r : rows) refused_.emplace(r->run, r->seq);
  skipped_ += rows.size();
  print_err("medmon: sink {}: {} event{} (run {}, seq {}{}) refused by the server and dropped: {}\n", spec_.name,
            rows.size(), rows.size() == 1 ? "" : "s", rows.front()->run, rows.front()->seq,
            rows.size() == 1 ? "" : fmt::format(" to {}", rows.back()->seq), error);
  return true;
}

bool ClickHouseBackend::deliver(const std::vector<Record>& batch, std::string& error) {
  refuses_sink_ = false;
  if (batch.empty()) return true;
  if (batch.front().run != batch_run_ || batch.front().seq != batch_seq_) {
    batch_run_ = batch.front().run;
    batch_seq_ = batch.front().seq;
    done_.clear();
    uncertain_.clear();
    refused_.clear();
    split_budget_ = kSplitBudget;
    // An earlier process spooled these events; it may have sent them and died (or lost the
    // answer) before recording that: look before sending, in every table of the batch.
    for (const auto& r : batch)
      if (r.run != own_run_) uncertain_.insert(table_for(r.type));
  }
  // Rows by table, in event order; a table's rows of one batch are one INSERT (atomic for a
  // batch below max_insert_block_size rows).
  std::map<std::string, std::vector<const Record*>> by_table;
  for (const auto& r : batch)
    if (!refused_.count({r.run, r.seq})) by_table[table_for(r.type)].push_back(&r);
  for (auto& [table, recs] : by_table) {
    if (done_.count(table)) continue;
    std::vector<const Record*> todo = recs;
    if (uncertain_.count(table)) {
      // The last INSERT may have gone in without its answer reaching us: look before resending.
      // (run, seq) of one table in one batch: runs are contiguous, seqs ascend within a run.
      std::map<std::string, std::pair<uint64_t, uint64_t>> ranges;
      std::map<std::string, int64_t> want;
      for (auto* r : recs) {
        auto it = ranges.find(r->run);
        if (it == ranges.end()) ranges[r->run] = {r->seq, r->seq};
        else { it->second.first = std::min(it->second.first, r->seq); it->second.second = std::max(it->second.second, r->seq); }
        ++want[r->run];
      }
      todo.clear();
      for (auto& [run, rg] : ranges) {
        // An INSERT that timed out on this side may still be running there: its rows are not
        // visible yet. Counting now would send them a second time.
        int64_t running = inserts_running(run, error);
        if (running < 0) return false;
        if (running > 0) {
          error = fmt::format("{}:{}: an INSERT sent before is still running on the server; waiting for it to end before "
                              "checking what went in", server_.host, server_.port);
          return false;
        }
        int64_t have = count_rows(table, run, rg.first, rg.second, error);
        if (have < 0) return false;
        if (have == want[run]) continue;
        if (have != 0) {
          // Part of it is in (an INSERT spanning partitions cut short): send only what is missing.
          std::string out;
          bool sent = false;
          std::string sql = fmt::format("SELECT seq FROM {} WHERE sensor_id = {} AND run = {} AND seq BETWEEN {} AND {}",
                                        table, sql_str(sensor_id_), sql_str(run), rg.first, rg.second);
          if (!query(sql, "", out, error, sent)) return false;
          std::set<uint64_t> present;
          size_t p = 0;
          while (p < out.size()) {
            size_t nl = out.find('\n', p);
            if (nl == std::string::npos) nl = out.size();
            present.insert(std::strtoull(out.c_str() + p, nullptr, 10));
            p = nl + 1;
          }
          for (auto* r : recs) if (r->run == run && !present.count(r->seq)) todo.push_back(r);
        } else {
          for (auto* r : recs) if (r->run == run) todo.push_back(r);
        }
      }
      uncertain_.erase(table);
      if (todo.empty()) { done_.insert(table); continue; }
    }
    if (!insert(table, todo, error)) return false;
    done_.insert(table);
  }
  return true;
}

}  // namespace medmon
