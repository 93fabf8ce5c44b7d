#include "sensor/output/sinks/clickhouse_sink.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <ctime>
#include <map>
#include <unordered_set>

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

bool ClickHouseBackend::query(const std::string& sql, std::string_view body, std::string& out, std::string& error, bool& sent) {
  std::string target = server_.path + "?" + auth_ + "input_format_skip_unknown_fields=1&query=" + url_encode(sql);
  HttpResponse resp;
  if (!http_request(server_, "POST", target, body, spec_.timeout_usec, resp, error, sent, deadline_)) {
    if (error.find(server_.host) == std::string::npos) error = fmt::format("{}:{}: {}", server_.host, server_.port, error);
    return false;
  }
  if (resp.status != 200) {
    std::string msg = resp.body.substr(0, 300);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
    error = fmt::format("{}:{}: HTTP {}: {}", server_.host, server_.port, resp.status, msg);
    return false;
  }
  out = std::move(resp.body);
  return true;
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

bool ClickHouseBackend::deliver(const std::vector<Record>& batch, std::string& error) {
  if (batch.empty()) return true;
  if (batch.front().run != batch_run_ || batch.front().seq != batch_seq_) {
    batch_run_ = batch.front().run;
    batch_seq_ = batch.front().seq;
    done_.clear();
    uncertain_.clear();
    // An earlier process spooled these events; it may have sent them and died (or lost the
    // answer) before recording that: look before sending, in every table of the batch.
    for (const auto& r : batch)
      if (r.run != own_run_) uncertain_.insert(table_for(r.type));
  }
  // Rows by table, in event order; a table's rows of one batch are one INSERT (atomic for a
  // batch below max_insert_block_size rows).
  std::map<std::string, std::vector<const Record*>> by_table;
  for (const auto& r : batch) by_table[table_for(r.type)].push_back(&r);
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
    std::string body;
    for (auto* r : todo) body += clickhouse_row(*r, sensor_id_);
    std::string out;
    bool sent = false;
    if (!query("INSERT INTO " + table + " FORMAT JSONEachRow", body, out, error, sent)) {
      if (sent) uncertain_.insert(table);
      return false;
    }
    done_.insert(table);
  }
  return true;
}

}  // namespace medmon
