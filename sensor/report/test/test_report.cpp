#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <regex>
#include <set>
#include <fmt/format.h>

#include "sensor/report/event_log.h"
#include "sensor/report/html_report.h"
#include "sensor/report/inventory.h"
#include "sensor/report/policy_bridge.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <fcntl.h>
#include <unistd.h>

using namespace medmon::report;

namespace {
// A small analysis: CT01 (bound) talks DICOM to the PACS (declared), SSH to a workstation
// (forbidden, lateral), and sends HL7 with PHI in clear.
const char* kEvents[] = {
    R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.10.1.10","changes":["new"],"first_seen":"2024-03-01T12:00:00.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","mac":"00:d0:ef:01:02:03","mac_vendor":"IGT","device":"ct01","zone":"imaging","model":"acme-ct","dicom":{"ae_titles":["CT01"]},"flows":1,"bytes":10}})",
    R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"asset","asset":{"ip":"10.10.1.10","changes":["dicom_impl"],"first_seen":"2024-03-01T12:00:00.000000Z","last_seen":"2024-03-01T12:00:02.000000Z","device":"ct01","model":"acme-ct","dicom":{"ae_titles":["CT01"],"impl_class_uid":"1.2.276.0.7230010.3.0.3.6.7","impl_version":"OFFIS_DCMTK_367","product":"DCMTK","manufacturer":"ACME MEDICAL","model_name":"ACME CT 9000"},"services_used":[{"service":"dicom","proto":"tcp","port":11112,"flows":1}],"flows":2,"bytes":20}})",
    R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.10.2.20","changes":["new"],"first_seen":"2024-03-01T12:00:00.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","device":"pacs<script>","model":"unbound","services_offered":[{"service":"dicom","proto":"tcp","port":11112,"flows":1}],"flows":1,"bytes":10}})",
    R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","src_device":"ct01","dst_device":"pacs<script>","src_zone":"imaging","dst_zone":"imaging","flow":{"start":"2024-03-01T12:00:00.000000Z","end":"2024-03-01T12:00:01.000000Z","bytes_toserver":30000,"bytes_toclient":2000},"app":"dicom","ndpi":{"protocol":"DICOM"},"verdict":"declared","verdict_rule":"pacs_store"})",
    R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"flow","flow_id":"f2","src_ip":"10.10.1.10","src_port":40001,"dst_ip":"10.10.3.30","dst_port":2575,"proto":"tcp","src_device":"ct01","src_zone":"imaging","dst_zone":"clinical","flow":{"start":"2024-03-01T12:00:02.000000Z","end":"2024-03-01T12:00:03.000000Z","bytes_toserver":800,"bytes_toclient":200},"app":"hl7","phi_cleartext":["PID-5","PID-7"],"verdict":"undeclared","verdict_rule":"flow.undeclared"})",
    R"({"ts":"2024-03-01T12:00:04.000000Z","event_type":"flow","flow_id":"f3","src_ip":"10.10.1.10","src_port":40002,"dst_ip":"10.10.1.50","dst_port":22,"proto":"tcp","src_device":"ct01","src_zone":"imaging","dst_zone":"imaging","flow":{"start":"2024-03-01T12:00:03.500000Z","end":"2024-03-01T12:00:04.000000Z","bytes_toserver":900,"bytes_toclient":1100},"app":null,"ndpi":{"protocol":"SSH"},"verdict":"forbidden","verdict_rule":"lateral.admin_protocol","mds2":["RMOT-1"]})",
    R"({"ts":"2024-03-01T12:00:04.000000Z","event_type":"alert","flow_id":"f3","src_ip":"10.10.1.10","src_port":40002,"dst_ip":"10.10.1.50","dst_port":22,"proto":"tcp","src_device":"ct01","alert":{"rule":"lateral.admin_protocol","severity":"high","message":"ct01 opened SSH to 10.10.1.50","device":"ct01","peer":"10.10.1.50","mds2":[{"id":"RMOT-1","answer":"No","iec_tr_80001_2_2":"RDMP","nist_800_53":"AC-17","iso_27002":null}],"evidence":{"flow_ids":["f3"],"server_port":"22"}}})",
    R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"alert","flow_id":"f2","src_ip":"10.10.1.10","src_port":40001,"dst_ip":"10.10.3.30","dst_port":2575,"proto":"tcp","src_device":"ct01","alert":{"rule":"phi.cleartext","severity":"medium","message":"PHI in clear","device":"ct01","peer":"10.10.3.30","mds2":[{"id":"TXCF-2","answer":"Yes"}],"evidence":{"flow_ids":["f2"],"phi_fields":["PID-5"]}}})",
    R"(not json at all)",
    R"({"ts":"2024-03-01T12:00:05.000000Z","event_type":"stats","stats":{"packets":10}})",
};

// The events above; without the malformed line on request.
EventLog make_log(bool with_bad_line = true) {
  EventLog log;
  for (const char* l : kEvents)
    if (with_bad_line || std::string_view(l) != "not json at all") log.add_line(l);
  return log;
}

// The first flow event of a log (flows are not kept: they are read again).
nlohmann::json first_flow(const EventLog& log) {
  nlohmann::json first;
  log.for_each_flow([&](const nlohmann::json& f) {
    if (first.is_null()) first = f;
  });
  return first;
}

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("event log sorts events by type and skips bad lines") {
  EventLog log = make_log();
  CHECK(log.flow_events == 3);
  CHECK(log.alerts.size() == 2);
  CHECK(log.asset_events == 3);
  CHECK(log.bad_lines == 1);
  CHECK(log.first_ts == "2024-03-01T12:00:01.000000Z");
  CHECK(log.last_ts == "2024-03-01T12:00:05.000000Z");
  CHECK(str(log.stats, "event_type") == "stats");
}

TEST_CASE("inventory merges asset events per address") {
  auto inv = build_inventory(make_log());
  REQUIRE(inv.size() == 2);
  CHECK(inv[0].ip == "10.10.1.10");
  CHECK(inv[0].device == "ct01");
  CHECK(inv[0].model == "acme-ct");
  CHECK(inv[0].mac_vendor == "IGT");
  CHECK(inv[0].product == "DCMTK");
  CHECK(inv[0].model_name == "ACME CT 9000");
  CHECK(inv[0].ae_titles == std::vector<std::string>{"CT01"});
  CHECK(inv[0].used == std::vector<std::string>{"dicom/tcp/11112"});
  CHECK(inv[0].flows == 3);
  CHECK(inv[0].alerts == 2);
  CHECK(inv[1].offered == std::vector<std::string>{"dicom/tcp/11112"});
  std::string j = inventory_json(inv);
  CHECK(j.find("\"product\": \"DCMTK\"") != std::string::npos);
}

TEST_CASE("report: verdicts, counts, citations, PHI and lateral findings") {
  std::string html = render_html(make_log(false), ReportOptions{});
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("id=\"overall-verdict\" class=\"verdict big fail\">FAIL<") != std::string::npos);
  CHECK(html.find("id=\"count-flows\">3<") != std::string::npos);
  CHECK(html.find("id=\"count-alerts\">2<") != std::string::npos);
  CHECK(html.find("id=\"count-alerts-high\">1<") != std::string::npos);
  CHECK(html.find("id=\"count-alerts-medium\">1<") != std::string::npos);
  CHECK(html.find("id=\"count-verdict-forbidden\">1<") != std::string::npos);
  CHECK(html.find("id=\"count-verdict-declared\">1<") != std::string::npos);
  CHECK(html.find("data-device=\"ct01\" data-verdict=\"FAIL\" data-flows=\"3\" data-alerts=\"2\"") != std::string::npos);
  CHECK(count(html, "class=\"alert-row\"") == 2);
  CHECK(count(html, "class=\"lateral-row\"") == 1);
  CHECK(count(html, "class=\"phi-row\"") == 1);
  CHECK(html.find("RMOT-1</b> answered &ldquo;No&rdquo;") != std::string::npos);
  CHECK(html.find("AC-17") != std::string::npos);
  CHECK(html.find("data-status=\"forbidden\"") != std::string::npos);
  CHECK(html.find("data-status=\"undeclared\"") != std::string::npos);
  CHECK(html.find("data-status=\"declared\"") != std::string::npos);
  CHECK(html.find("class=\"peer-diagram\"") != std::string::npos);
  CHECK(html.find("class=\"chart-time\"") != std::string::npos);
  CHECK(html.find("class=\"chart-peers\"") != std::string::npos);
  // Escaped, self-contained.
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("pacs&lt;script&gt;") != std::string::npos);
  CHECK(html.find("http://") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find(" src=") == std::string::npos);
}

TEST_CASE("report lists declared flows that were never seen") {
  ReportOptions opt;
  opt.have_declared = true;
  opt.declared["ct01"] = {{"pacs_store", "C-STORE to PACS", "pacs", "tcp/104", "CONN-2"},
                          {"ntp_sync", "time sync", "ntp", "udp/123", "CONN-2"}};
  std::string html = render_html(make_log(), opt);
  CHECK(count(html, "data-status=\"declared-not-seen\"") == 1);
  CHECK(html.find("unseen-devices") == std::string::npos);
  opt.declared["glucose-dock-1"] = {};
  html = render_html(make_log(), opt);
  CHECK(html.find("class=\"unseen-device\" data-device=\"glucose-dock-1\"") != std::string::npos);
  CHECK(html.find("ntp_sync") != std::string::npos);
}

TEST_CASE("inventory and report show the identities devices stated") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.30.1.40","changes":["new","identity"],"model":"unbound","identities":[{"source":"poct1 DEV","id":"00:1b:22:33:44:55","serial":"GP3-0042","model":"GlucoPoint 3"}],"flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"asset","asset":{"ip":"10.30.1.40","changes":["identity"],"model":"unbound","identities":[{"source":"poct1 DEV","id":"00:1b:22:33:44:55","serial":"GP3-0042","model":"GlucoPoint 3"},{"source":"hl7 OBX-18","id":"MON<7>"}],"flows":2,"bytes":20}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.30.1.40","src_port":50001,"dst_ip":"10.30.1.5","dst_port":5010,"proto":"tcp","flow":{"start":"2024-03-01T12:00:00.000000Z","end":"2024-03-01T12:00:02.000000Z","bytes_toserver":600,"bytes_toclient":80},"app":"poct1"})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].identities == std::vector<std::string>{"poct1 DEV: id=00:1b:22:33:44:55 serial=GP3-0042 model=GlucoPoint 3",
                                                      "hl7 OBX-18: id=MON<7>"});
  CHECK(inventory_json(inv).find("\"identities\"") != std::string::npos);
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find("Device identities") != std::string::npos);
  CHECK(html.find("hl7 OBX-18: id=MON&lt;7&gt;") != std::string::npos);  // escaped
}

TEST_CASE("inventory: an address withdrawn (only a declined DHCP exchange named it) is no device") {
  EventLog log;
  log.add_line(R"({"ts":"2023-11-14T22:13:20.001000Z","event_type":"asset","asset":{"ip":"10.20.30.50","changes":["new","mac","dhcp"],"mac":"02:00:5e:10:00:07","hostname":"pump-a","model":"unbound","flows":0,"bytes":0}})");
  log.add_line(R"({"ts":"2023-11-14T22:13:20.100100Z","event_type":"asset","asset":{"ip":"10.20.30.33","changes":["new","mac"],"mac":"02:00:00:00:00:33","model":"unbound","flows":1,"bytes":108}})");
  log.add_line(R"({"ts":"2023-11-14T22:28:20.000000Z","event_type":"asset","asset":{"ip":"10.20.30.50","changes":["withdrawn"],"model":"unbound","flows":0,"bytes":0}})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].ip == "10.20.30.33");
  // Seen for real later: a device again.
  log.add_line(R"({"ts":"2023-11-14T22:30:00.000000Z","event_type":"asset","asset":{"ip":"10.20.30.50","changes":["new","mac"],"mac":"02:00:00:00:00:50","model":"unbound","flows":1,"bytes":60}})");
  inv = build_inventory(log);
  REQUIRE(inv.size() == 2);
  CHECK(inv[1].ip == "10.20.30.50");
  CHECK(inv[1].hostname.empty());
}

TEST_CASE("inventory: a MAC change takes the new MAC's vendor, or none") {
  EventLog log;
  log.add_line(R"({"ts":"1970-01-01T00:33:20.003999Z","event_type":"asset","asset":{"ip":"10.0.0.7","changes":["new","mac"],"mac":"00:1b:21:aa:bb:cc","mac_vendor":"Intel Corporate","model":"unbound","flows":1,"bytes":270}})");
  log.add_line(R"({"ts":"1970-01-01T00:50:00.003999Z","event_type":"asset","asset":{"ip":"10.0.0.7","changes":["mac"],"mac":"02:11:22:33:44:55","mac_local":true,"model":"unbound","flows":2,"bytes":540}})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].mac == "02:11:22:33:44:55");
  CHECK(inv[0].mac_vendor.empty());
  CHECK(inv[0].vendor_shown() == "(locally administered)");
  log.add_line(R"({"ts":"1970-01-01T00:51:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.7","changes":["mac"],"mac":"00:1b:21:aa:bb:cd","model":"unbound","flows":3,"bytes":600}})");
  inv = build_inventory(log);
  CHECK(inv[0].mac_vendor.empty());  // no vendor known for the new MAC
  CHECK(inv[0].vendor_shown().empty());
  // The MAC taken back (a declined address only DHCP tied to it): the address has none.
  log.add_line(R"({"ts":"1970-01-01T00:52:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.7","changes":["mac","dhcp"],"model":"unbound","flows":3,"bytes":600}})");
  inv = build_inventory(log);
  CHECK(inv[0].mac.empty());
  CHECK(!inv[0].mac_local);
  // An event that does not say the MAC changed keeps it.
  log.add_line(R"({"ts":"1970-01-01T00:53:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.7","changes":["mac"],"mac":"00:1b:21:aa:bb:cd","model":"unbound","flows":3,"bytes":600}})");
  log.add_line(R"({"ts":"1970-01-01T00:54:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.7","changes":["service_used"],"model":"unbound","flows":4,"bytes":700}})");
  CHECK(build_inventory(log)[0].mac == "00:1b:21:aa:bb:cd");
}

TEST_CASE("assets --json has the asset event's members and shapes") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.10.1.10","changes":["new"],"mac":"02:00:0a:0a:01:0a","mac_local":true,"model":"acme-ct","dicom":{"ae_titles":["CT01"],"impl_class_uid":"1.2.276.0.7230010.3.0.3.6.7","product":"DCMTK","product_vendor":"OFFIS"},"hl7_apps":[{"app":"CT01","facility":"RADIOLOGY"}],"identities":[{"source":"hl7 PRT","udi":"(01)00812345678901","serial":"SN1"}],"services_used":[{"service":"dicom","proto":"tcp","port":11112,"peers":1}],"flows":1,"bytes":100}})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  auto j = nlohmann::json::parse(inventory_json(inv));
  REQUIRE(j.size() == 1);
  const auto& a = j[0];
  CHECK(a["mac_local"] == true);
  CHECK(!a.contains("mac_vendor"));  // none: not a made-up vendor
  CHECK(a["dicom"]["product_vendor"] == "OFFIS");
  CHECK(a["hl7_apps"] == nlohmann::json::parse(R"([{"app":"CT01","facility":"RADIOLOGY"}])"));
  CHECK(a["identities"] == nlohmann::json::parse(R"([{"source":"hl7 PRT","udi":"(01)00812345678901","serial":"SN1"}])"));
  CHECK(a["services_used"][0]["service"] == "dicom");
  CHECK(a["services_used"][0]["port"] == 11112);
  // A later event's count for the same service replaces the earlier one (one entry per service).
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"asset","asset":{"ip":"10.10.1.10","changes":["service_used"],"model":"acme-ct","services_used":[{"service":"dicom","proto":"tcp","port":11112,"peers":2},{"service":"hl7","proto":"tcp","port":2575,"peers":1}],"flows":3,"bytes":300}})");
  auto j2 = nlohmann::json::parse(inventory_json(build_inventory(log)));
  REQUIRE(j2[0]["services_used"].size() == 2);
  CHECK(j2[0]["services_used"][0]["peers"] == 2);
  // The table and the report still show text.
  CHECK(inv[0].hl7_apps == std::vector<std::string>{"CT01@RADIOLOGY"});
  CHECK(inv[0].used == std::vector<std::string>{"dicom/tcp/11112"});
}

TEST_CASE("report without a policy lists devices by address and judges nothing") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"192.168.0.5","changes":["new"],"model":"unbound","flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"192.168.0.5","src_port":1,"dst_ip":"8.8.8.8","dst_port":53,"proto":"udp","flow":{"start":"2024-03-01T12:00:00.000000Z","end":"2024-03-01T12:00:01.000000Z","bytes_toserver":60,"bytes_toclient":80},"app":null,"ndpi":{"protocol":"DNS"}})");
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find("data-device=\"192.168.0.5\" data-verdict=\"NOT JUDGED\"") != std::string::npos);
  CHECK(html.find("id=\"overall-verdict\" class=\"verdict big none\">NOT JUDGED<") != std::string::npos);
  CHECK(html.find("id=\"count-devices\">1<") != std::string::npos);
}

TEST_CASE("report: a protocol nDPI only guessed from the port is unknown traffic") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"192.168.0.5","changes":["new"],"model":"unbound","flows":2,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"192.168.0.5","src_port":1,"dst_ip":"192.168.0.9","dst_port":3702,"proto":"udp","flow":{"start":"2024-03-01T12:00:00.000000Z","end":"2024-03-01T12:00:01.000000Z","bytes_toserver":60,"bytes_toclient":0},"app":null,"ndpi":{"protocol":"WSD","guessed":true}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":"f2","src_ip":"192.168.0.5","src_port":2,"dst_ip":"192.168.0.9","dst_port":53,"proto":"udp","flow":{"start":"2024-03-01T12:00:01.000000Z","end":"2024-03-01T12:00:02.000000Z","bytes_toserver":60,"bytes_toclient":80},"app":null,"ndpi":{"protocol":"DNS"}})");
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find("wsd") == std::string::npos);
  CHECK(html.find("unknown/udp/3702") != std::string::npos);
  CHECK(html.find("dns/udp/53") != std::string::npos);
}

TEST_CASE("event log: malformed lines are counted and the first one located") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow"})");
  log.add_line("");
  log.add_line("{\"ts\":");  // a line cut short
  log.add_line("[1,2]");      // JSON, but not an event object
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"hl7"})");
  CHECK(log.lines == 5);
  CHECK(log.events == 2);
  CHECK(log.bad_lines == 2);
  CHECK(log.first_bad_line == 3);
  CHECK(log.last_ts == "2024-03-01T12:00:02.000000Z");
}

TEST_CASE("event log: events the report does not read are checked and counted, not kept") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"hl7","hl7":{"message_type":"ADT"}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"dicom","dicom":{"calling_ae":"CT01"}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"hl7","hl7":{"message_type":)");  // cut short
  log.add_line(R"({"ts":"2024-03-01T12:00:09.000000Z","event_type":"anomaly","anomaly":{}} trailing)");
  log.add_line(R"({"ts":"2024-03-01T12:00:00.500000Z", "event_type":"hl7"})");  // not medmon's layout: parsed
  log.add_line(R"({"ts":"2024-03-01T12:00:04\u002e000000Z","event_type":"dhcp"})");  // an escape: parsed
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":"f1"})");
  CHECK(log.lines == 7);
  CHECK(log.events == 5);
  CHECK(log.bad_lines == 2);
  CHECK(log.first_bad_line == 3);
  CHECK(log.flow_events == 1);
  CHECK(log.first_ts == "2024-03-01T12:00:00.500000Z");
  CHECK(log.last_ts == "2024-03-01T12:00:04.000000Z");
}

TEST_CASE("report says when the analysis read its capture through a filter") {
  EventLog log = make_log();
  CHECK(render_html(log, ReportOptions{}).find("id=\"input-filter\"") == std::string::npos);
  log.add_line(R"({"ts":"2024-03-01T12:10:00.000000Z","event_type":"stats","stats":{"packets":10,"bytes":900,"flows":1,"flows_active":0,"filter":"host 10.0.0.1 and port <104>","counters":{}}})");
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find("<p id=\"input-filter\" class=\"warn\">Only the packets accepted by the capture filter "
                  "<code>host 10.0.0.1 and port &lt;104&gt;</code>") != std::string::npos);
}

TEST_CASE("report survives hostile and empty input") {
  EventLog empty;
  std::string html = render_html(empty, ReportOptions{});
  CHECK(html.find("id=\"count-devices\">0<") != std::string::npos);
  EventLog log;
  log.add_line(R"({"event_type":"flow","src_ip":5,"flow":"x","verdict":7})");
  log.add_line(R"({"event_type":"alert","alert":[1,2]})");
  log.add_line(R"({"event_type":"asset","asset":{"ip":"10.0.0.1","vlans":"x","dicom":[],"services_used":[{"port":"x"}]}})");
  log.add_line(R"({"event_type":"flow","src_ip":"10.0.0.1","dst_ip":"10.0.0.2","flow":{"start":"garbage","end":"9999-99-99T99:99:99Z"}})");
  CHECK_NOTHROW(render_html(log, ReportOptions{}));
  // A member of the wrong type where a boolean is read (ndpi.guessed): the inventory (medmon
  // assets) and the report read past it.
  for (const char* g : {"1", "\"x\"", "null", "[]", "{}"}) {
    INFO(g);
    EventLog l;
    l.add_line(R"({"event_type":"asset","asset":{"ip":"10.0.0.1"}})");
    l.add_line(fmt::format(R"({{"event_type":"flow","src_ip":"10.0.0.1","dst_ip":"10.0.0.2","proto":"tcp","dst_port":80,"ndpi":{{"protocol":"HTTP","guessed":{}}}}})", g));
    CHECK_NOTHROW(build_inventory(l));
    CHECK_NOTHROW(render_html(l, ReportOptions{}));
    CHECK(flow_app(first_flow(l)) == "http");
  }
  CHECK(html_escape("<a href='x'>&\"") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
}

namespace {
// The section of one device (from its <section> to the next).
std::string section_of(const std::string& html, const std::string& dev) {
  size_t a = html.find("<section class=\"device\" id=\"dev-" + dev + "\"");
  if (a == std::string::npos) return {};
  size_t b = html.find("</section>", a);
  return html.substr(a, b - a);
}
const char* kTwoDevices[] = {
    // Undeclared for the CT (its model lacks the store), declared for the PACS.
    R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","src_device":"ct-1","dst_device":"pacs-1","flow":{"bytes_toserver":300,"bytes_toclient":20},"app":"dicom","verdict":"undeclared","verdict_rule":"flow.undeclared","src_verdict":"undeclared","src_verdict_rule":"flow.undeclared","dst_verdict":"declared","dst_verdict_rule":"dicom-store-in"})",
    // Two flows of one group of the PACS, each matching another declared rule.
    R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":"f2","src_ip":"10.10.4.40","src_port":40001,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dst_device":"pacs-1","flow":{"bytes_toserver":300,"bytes_toclient":20},"app":"dicom","verdict":"declared","verdict_rule":"dicom-query","dst_verdict":"declared","dst_verdict_rule":"dicom-query"})",
    R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"flow","flow_id":"f3","src_ip":"10.10.4.40","src_port":40002,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dst_device":"pacs-1","flow":{"bytes_toserver":300,"bytes_toclient":20},"app":"dicom","verdict":"declared","verdict_rule":"dicom-retrieve","dst_verdict":"declared","dst_verdict_rule":"dicom-retrieve"})",
    R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"alert","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","src_device":"ct-1","dst_device":"pacs-1","alert":{"rule":"flow.undeclared","severity":"medium","message":"m","device":"ct-1","peer":"pacs-1","mds2":[],"evidence":{"flow_ids":["f1"]}}})",
    R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{"ip":"10.10.2.20","changes":["new"],"device":"pacs-1","model":"acme-pacs","flows":3,"bytes":10}})",
    R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{"ip":"10.10.1.10","changes":["new"],"device":"ct-1","model":"acme-ct","flows":1,"bytes":10}})",
};
}  // namespace

TEST_CASE("report judges each device of a flow by its own side's verdict and rules") {
  EventLog log;
  for (const char* l : kTwoDevices) log.add_line(l);
  ReportOptions opt;
  opt.have_declared = true;
  opt.declared["pacs-1"] = {{"dicom-store-in", "", "from modality", "tcp/104", ""},
                            {"dicom-query", "", "from reading_ws", "tcp/104", ""},
                            {"dicom-retrieve", "", "from reading_ws", "tcp/104", ""}};
  opt.declared["ct-1"] = {};
  std::string html = render_html(log, opt);
  CHECK(html.find("data-device=\"pacs-1\" data-verdict=\"PASS\"") != std::string::npos);
  CHECK(html.find("data-device=\"ct-1\" data-verdict=\"REVIEW\"") != std::string::npos);
  std::string pacs = section_of(html, "pacs-1");
  REQUIRE(!pacs.empty());
  CHECK(pacs.find("declared-not-seen") == std::string::npos);  // all three rules were seen
  CHECK(pacs.find("<code>dicom-store-in</code>") != std::string::npos);
  CHECK(pacs.find("flow.undeclared</code>") == std::string::npos);
  std::string ct = section_of(html, "ct-1");
  CHECK(ct.find("data-status=\"undeclared\"") != std::string::npos);
  CHECK(ct.find("dicom-store-in") == std::string::npos);
  // The summary's per-device counts too: the PACS has three declared flows, no undeclared one.
  CHECK(html.find("<td class=\"num\">3</td><td class=\"num\">0</td><td class=\"num\">0</td><td class=\"num\">3</td>") !=
        std::string::npos);
}

TEST_CASE("report: names cut to fit a chart keep whole UTF-8 characters") {
  // 21 ASCII bytes, then a two-byte character across the diagram's 22-byte cut.
  const std::string name = "aaaaaaaaaaaaaaaaaaaaa\xc3\xa9-scanner";
  EventLog log;
  for (const char* l : kTwoDevices) {
    std::string line = l;
    for (size_t at; (at = line.find("\"ct-1\"")) != std::string::npos;) line.replace(at, 6, "\"" + name + "\"");
    log.add_line(line);
  }
  std::string html = render_html(log, ReportOptions{});
  REQUIRE(html.find(name) != std::string::npos);
  // Every byte sequence is valid UTF-8: no lead byte without its continuation.
  bool valid = true;
  for (size_t i = 0; i < html.size() && valid;) {
    auto c = static_cast<unsigned char>(html[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || i + len > html.size()) { valid = false; break; }
    for (size_t k = 1; k < len; ++k) valid &= (static_cast<unsigned char>(html[i + k]) & 0xC0) == 0x80;
    i += len;
  }
  CHECK(valid);
  CHECK(html.find(">aaaaaaaaaaaaaaaaaaaaa</text>") != std::string::npos);  // the diagram's box
}

TEST_CASE("inventory counts an alert once, for the device it names") {
  EventLog log;
  for (const char* l : kTwoDevices) log.add_line(l);
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 2);
  CHECK(inv[0].ip == "10.10.1.10");
  CHECK(inv[0].alerts == 1);
  CHECK(inv[1].alerts == 0);  // the PACS is the alert's peer, not its device
}

TEST_CASE("the inventory table shows control characters from the wire escaped") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.9","changes":["new"],"model":"unbound","dicom":{"ae_titles":["\u001b[2J\u001b]0;X\u0007"]},"hl7_apps":[{"app":"A\u009bB"}],"flows":1,"bytes":1}})");
  auto inv = build_inventory(log);
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  print_inventory_table(f, inv);
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text.push_back(static_cast<char>(c));
  std::fclose(f);
  for (char c : text) CHECK((c == '\n' || static_cast<unsigned char>(c) >= 0x20));
  CHECK(text.find("\\x1b[2J\\x1b]0;X~") != std::string::npos);  // cut to the column
  CHECK(text.find("A\\xc2\\x9bB") != std::string::npos);
  CHECK(text.find('\x7f') == std::string::npos);
}

TEST_CASE("the inventory table shows IPv6 addresses whole") {
  EventLog log;
  for (const char* ip : {"fe80::200:5eff:fe00:5305", "fe80::200:5eff:fe00:5306", "10.0.0.9"})
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{{"ip":"{}","changes":["new"],"model":"unbound"}}}})", ip));
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  print_inventory_table(f, build_inventory(log));
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text.push_back(static_cast<char>(c));
  std::fclose(f);
  CHECK(text.find("\nfe80::200:5eff:fe00:5305 00:") == std::string::npos);  // no MAC: "-"
  CHECK(text.find("\nfe80::200:5eff:fe00:5305 - ") != std::string::npos);
  CHECK(text.find("\nfe80::200:5eff:fe00:5306 - ") != std::string::npos);
  // The column as wide as the longest address.
  CHECK(text.find(fmt::format("\n{:<24} - ", "10.0.0.9")) != std::string::npos);
  CHECK(text.rfind(fmt::format("{:<24} MAC", "IP"), 0) == 0);
}

TEST_CASE("the inventory table cuts values between UTF-8 characters") {
  EventLog log;
  // 14 ASCII bytes, then a two-byte character across the AE column's cut (15 bytes and '~').
  log.add_line(R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.9","changes":["new"],"model":"unbound","dicom":{"ae_titles":["AAAAAAAAAAAAAA\u00e9XYZ"]}}})");
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  print_inventory_table(f, build_inventory(log));
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text.push_back(static_cast<char>(c));
  std::fclose(f);
  CHECK(text.find(" AAAAAAAAAAAAAA~ ") != std::string::npos);
  CHECK(text.find("\xc3~") == std::string::npos);
}

TEST_CASE("numbers beyond uint64_t are clamped") {
  auto j = nlohmann::json::parse(R"({"big":1e30,"neg":-1e30,"top":18446744073709551615,"half":2.5})");
  CHECK(num(j, "big") == UINT64_MAX);
  CHECK(num(j, "neg") == 0);
  CHECK(num(j, "top") == UINT64_MAX);
  CHECK(num(j, "half") == 2);
}

TEST_CASE("report: an unreadable events line makes the verdict INCOMPLETE") {
  std::string clean = render_html(make_log(false), ReportOptions{});
  CHECK(clean.find("id=\"overall-verdict\" class=\"verdict big fail\">FAIL<") != std::string::npos);
  CHECK(clean.find("id=\"incomplete\"") == std::string::npos);
  // The only high alert cut in half: the rest would pass, but the file says nothing sure.
  EventLog log;
  for (const char* l : kEvents) {
    std::string line = l;
    if (line.find("\"severity\":\"high\"") != std::string::npos) line.resize(line.size() / 2);
    if (line != "not json at all") log.add_line(line);
  }
  REQUIRE(log.bad_lines == 1);
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find("id=\"overall-verdict\" class=\"verdict big incomplete\">INCOMPLETE<") != std::string::npos);
  CHECK(html.find("<p id=\"incomplete\" class=\"warn\"><b>The events file is damaged:</b> 1 line could not be read "
                  "(the first is line 7)") != std::string::npos);
}

TEST_CASE("report attributes a device bound by fingerprint from its alerts, not to its peer") {
  // ct-1 is bound by its calling AE: no header names it, the judge gave its side a verdict and its
  // alerts name it; pacs-1 is bound by address.
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{"ip":"10.10.1.10","changes":["new"],"model":"unbound","flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{"ip":"10.10.2.20","changes":["new"],"device":"pacs-1","model":"acme-pacs","flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:00.500000Z","event_type":"flow","flow_id":"f0","src_ip":"10.10.1.10","src_port":5353,"dst_ip":"10.10.0.53","dst_port":53,"proto":"udp","flow":{"bytes_toserver":60,"bytes_toclient":80},"app":null,"ndpi":{"protocol":"DNS"}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"alert","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dst_device":"pacs-1","alert":{"rule":"tls.required_cleartext","severity":"high","message":"m","device":"ct-1","peer":"pacs-1","mds2":[{"id":"TXCF-2","answer":"yes"}],"evidence":{"flow_ids":["f1"],"direction":"outbound","model":"acme-ct"}}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dst_device":"pacs-1","flow":{"bytes_toserver":300,"bytes_toclient":20},"app":"dicom","verdict":"declared","verdict_rule":"dicom-store","src_verdict":"declared","src_verdict_rule":"dicom-store","dst_verdict":"declared","dst_verdict_rule":"dicom-store-in"})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":"f2","src_ip":"10.10.1.10","src_port":40001,"dst_ip":"10.10.3.30","dst_port":2575,"proto":"tcp","flow":{"bytes_toserver":300,"bytes_toclient":20},"app":"hl7","verdict":"declared","verdict_rule":"hl7-results","src_verdict":"declared","src_verdict_rule":"hl7-results"})");
  auto bound = fingerprint_bindings(log);
  CHECK(bound == std::map<std::string, std::string>{{"10.10.1.10", "ct-1"}});
  ReportOptions opt;
  opt.have_declared = true;
  opt.declared["ct-1"] = {{"dicom-store", "", "to pacs", "tcp/11112", ""}, {"hl7-results", "", "to his_ris", "tcp/2575", ""}};
  opt.declared["pacs-1"] = {{"dicom-store-in", "", "from modality", "tcp/11112", ""}};
  std::string html = render_html(log, opt);
  INFO(html);
  CHECK(html.find("unseen-devices") == std::string::npos);
  // Its own section: the two flows it was judged on (not the DNS query from before it was bound).
  CHECK(html.find("data-device=\"ct-1\" data-verdict=\"FAIL\" data-flows=\"2\" data-alerts=\"1\"") != std::string::npos);
  CHECK(html.find("data-device=\"pacs-1\" data-verdict=\"PASS\" data-flows=\"1\" data-alerts=\"0\"") != std::string::npos);
  std::string ct = section_of(html, "ct-1");
  CHECK(ct.find("declared-not-seen") == std::string::npos);
  CHECK(ct.find("<td>Policy model</td><td>acme-ct</td>") != std::string::npos);
  CHECK(section_of(html, "pacs-1").find("ct-1 (10.10.1.10)") != std::string::npos);  // its peer, by name
  // An alert whose peer is the device's own address (the HL7 test-message alert names the client
  // as peer, whichever side is the device): the side the policy judged without a header decides.
  EventLog hl7;
  hl7.add_line(R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"alert","flow_id":"f3","src_ip":"10.10.1.11","src_port":40002,"dst_ip":"10.10.3.30","dst_port":2575,"proto":"tcp","alert":{"rule":"hl7.test_on_production","severity":"medium","message":"m","device":"ct-2","peer":"10.10.1.11","mds2":[],"evidence":{"processing_id":"T"}}})");
  hl7.add_line(R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"flow","flow_id":"f3","src_ip":"10.10.1.11","src_port":40002,"dst_ip":"10.10.3.30","dst_port":2575,"proto":"tcp","flow":{"bytes_toserver":300,"bytes_toclient":20},"app":"hl7","verdict":"declared","verdict_rule":"hl7-results","src_verdict":"declared","src_verdict_rule":"hl7-results"})");
  CHECK(fingerprint_bindings(hl7) == std::map<std::string, std::string>{{"10.10.1.11", "ct-2"}});
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 2);
  CHECK(inv[0].device == "ct-1");
  CHECK(inv[0].model == "acme-ct");
  CHECK(inv[0].alerts == 1);
  CHECK(inv[1].alerts == 0);
}

TEST_CASE("report: each side's MDS2 column cites that side's own questions") {
  // The port-21 probe: undeclared for the client (CONN-2), forbidden for the server (SAHD-8, the
  // flow's `mds2`); the SMB flow: forbidden for the client (SAHD-7), undeclared for the server.
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"alert","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.1.50","dst_port":21,"proto":"tcp","src_device":"ct-1","dst_device":"ws-1","alert":{"rule":"flow.undeclared","severity":"medium","message":"m","device":"ct-1","peer":"ws-1","mds2":[{"id":"CONN-2","answer":"yes"}],"evidence":{"flow_ids":["f1"]}}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"alert","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.1.50","dst_port":21,"proto":"tcp","src_device":"ct-1","dst_device":"ws-1","alert":{"rule":"flow.unlisted_listening_port","severity":"high","message":"m","device":"ws-1","peer":"ct-1","mds2":[{"id":"SAHD-8","answer":"yes"}],"evidence":{"flow_ids":["f1"]}}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.10.1.10","src_port":40000,"dst_ip":"10.10.1.50","dst_port":21,"proto":"tcp","src_device":"ct-1","dst_device":"ws-1","flow":{"bytes_toserver":60,"bytes_toclient":54},"app":null,"verdict":"forbidden","verdict_rule":"flow.unlisted_listening_port","mds2":["SAHD-8"],"src_verdict":"undeclared","src_verdict_rule":"flow.undeclared","dst_verdict":"forbidden","dst_verdict_rule":"flow.unlisted_listening_port"})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"alert","flow_id":"f2","src_ip":"10.10.1.50","src_port":40001,"dst_ip":"10.10.1.10","dst_port":445,"proto":"tcp","src_device":"ws-1","dst_device":"ct-1","alert":{"rule":"flow.undeclared","severity":"medium","message":"m","device":"ct-1","peer":"ws-1","mds2":[{"id":"CONN-2","answer":"yes"}],"evidence":{"flow_ids":["f2"]}}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":"f2","src_ip":"10.10.1.50","src_port":40001,"dst_ip":"10.10.1.10","dst_port":445,"proto":"tcp","src_device":"ws-1","dst_device":"ct-1","flow":{"bytes_toserver":600,"bytes_toclient":322},"app":null,"ndpi":{"protocol":"NetBIOS"},"verdict":"forbidden","verdict_rule":"lateral.admin_protocol","mds2":["SAHD-7"],"src_verdict":"forbidden","src_verdict_rule":"lateral.admin_protocol","dst_verdict":"undeclared","dst_verdict_rule":"flow.undeclared"})");
  std::string html = render_html(log, ReportOptions{});
  auto flows_of = [&](const std::string& dev) {
    std::string sec = section_of(html, dev);
    size_t a = sec.find("<table class=\"flows\">");
    return a == std::string::npos ? std::string() : sec.substr(a, sec.find("</table>", a) - a);
  };
  std::string ct = flows_of("ct-1"), ws = flows_of("ws-1");
  INFO(ct);
  INFO(ws);
  CHECK(ct.find("SAHD-8") == std::string::npos);
  CHECK(ct.find("SAHD-7") == std::string::npos);
  CHECK(ct.find("<code>flow.undeclared</code></td><td>CONN-2</td>") != std::string::npos);
  CHECK(ws.find("<code>flow.unlisted_listening_port</code></td><td>SAHD-8</td>") != std::string::npos);
  CHECK(ws.find("<code>lateral.admin_protocol</code></td><td>SAHD-7</td>") != std::string::npos);
  CHECK(ws.find("CONN-2") == std::string::npos);
}

TEST_CASE("report given a site for events analysed without one lists no device as unseen") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.10.1.10","changes":["new"],"model":"unbound","flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.10.1.10","src_port":1,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","flow":{"bytes_toserver":60,"bytes_toclient":80},"app":"dicom"})");
  ReportOptions opt;
  opt.have_declared = true;
  opt.declared["ct-1"] = {{"dicom-store", "", "to pacs", "tcp/11112", ""}};
  opt.declared["pacs-1"] = {};
  std::string html = render_html(log, opt);
  CHECK(html.find("unseen-device") == std::string::npos);
  CHECK(html.find("id=\"site-not-applied\"") != std::string::npos);
  CHECK(html.find("id=\"overall-verdict\" class=\"verdict big none\">NOT JUDGED<") != std::string::npos);
}

TEST_CASE("inventory: last_seen and service counts come from the flows after the last asset event") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.10.2.20","changes":["new","service_offered"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","model":"unbound","services_offered":[{"service":"dicom","proto":"tcp","port":11112,"flows":1}],"flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.10.1.10","src_port":1,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","flow":{"start":"2024-03-01T12:00:00.500000Z","end":"2024-03-01T12:00:01.000000Z","tcp_flags_toclient":"SAFP","payload_bytes_toclient":100,"bytes_toserver":60,"bytes_toclient":80},"app":"dicom"})");
  log.add_line(R"({"ts":"2024-03-01T12:00:05.000000Z","event_type":"flow","flow_id":"f2","src_ip":"10.10.1.10","src_port":2,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","flow":{"start":"2024-03-01T12:00:04.000000Z","end":"2024-03-01T12:00:05.000000Z","tcp_flags_toclient":"SAFP","payload_bytes_toclient":100,"bytes_toserver":60,"bytes_toclient":80},"app":"dicom"})");
  // A SYN answered by RST: the port is closed, no flow of the service.
  log.add_line(R"({"ts":"2024-03-01T12:00:06.000000Z","event_type":"flow","flow_id":"f3","src_ip":"10.10.1.10","src_port":3,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","flow":{"start":"2024-03-01T12:00:06.000000Z","end":"2024-03-01T12:00:06.000000Z","tcp_flags_toclient":"AR","payload_bytes_toclient":0,"bytes_toserver":60,"bytes_toclient":54},"app":"dicom"})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].last_seen == "2024-03-01T12:00:06.000000Z");
  CHECK(inv[0].first_seen == "2024-03-01T12:00:00.500000Z");  // the start of its first flow
  CHECK(inv[0].flows == 3);
  REQUIRE(inv[0].offered_json.size() == 1);
  CHECK(inv[0].offered_json[0]["flows"] == 2);
}

TEST_CASE("report: control characters from the wire are escaped in the HTML") {
  CHECK(html_escape("A\x1b[2J\x07" "B\x7f\xc2\x9b") == "A\\x1b[2J\\x07B\\x7f\\xc2\\x9b");
  CHECK(html_escape("caf\xc3\xa9") == "caf\xc3\xa9");  // other UTF-8 kept
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.9","changes":["new"],"model":"unbound","dicom":{"ae_titles":["A\u001b[2J\u0007B"]},"flows":1,"bytes":1}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.0.0.9","src_port":1,"dst_ip":"10.0.0.8","dst_port":104,"proto":"tcp","flow":{"bytes_toserver":60,"bytes_toclient":80},"app":"dicom"})");
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find('\x1b') == std::string::npos);
  CHECK(html.find('\x07') == std::string::npos);
  CHECK(html.find("A\\x1b[2J\\x07B") != std::string::npos);
}

TEST_CASE("report of traffic judged against a site that none of its devices took part in names them all unseen") {
  EventLog log;
  // The site's zones (here "external" for loopback) show it was applied; no event names a device.
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"127.0.0.1","changes":["new"],"model":"unbound","flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f1","src_ip":"127.0.0.1","src_port":1,"dst_ip":"127.0.0.1","dst_port":11112,"proto":"tcp","src_zone":"external","dst_zone":"external","flow":{"bytes_toserver":60,"bytes_toclient":80},"app":"dicom"})");
  ReportOptions opt;
  opt.have_declared = true;
  opt.declared["ct-1"] = {{"dicom-store", "", "to pacs", "tcp/11112", ""}};
  opt.declared["pacs-1"] = {};
  std::string html = render_html(log, opt);
  CHECK(html.find("id=\"site-not-applied\"") == std::string::npos);
  CHECK(html.find("class=\"unseen-device\" data-device=\"ct-1\"") != std::string::npos);
  CHECK(html.find("class=\"unseen-device\" data-device=\"pacs-1\"") != std::string::npos);
  // An alert alone says so too (a device bound by fingerprint is named only in its alerts).
  EventLog log2;
  log2.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"alert","flow_id":"f1","src_ip":"10.9.9.9","src_port":1,"dst_ip":"10.9.9.8","dst_port":104,"proto":"tcp","alert":{"rule":"dicom.ae_spoofing","severity":"high","message":"x","evidence":{}}})");
  html = render_html(log2, opt);
  CHECK(html.find("id=\"site-not-applied\"") == std::string::npos);
  CHECK(html.find("class=\"unseen-device\" data-device=\"ct-1\"") != std::string::npos);
}

TEST_CASE("report: a declared rule matched only by connection attempts without data is not shown as seen at work") {
  EventLog log;
  auto flow = [](const char* id, int sport, int payload_up, int payload_down) {
    return fmt::format(R"({{"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"{}","src_ip":"10.10.1.10","src_port":{},"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","src_device":"ct-1","dst_device":"pacs-1","src_zone":"imaging","dst_zone":"imaging","flow":{{"state":"reset","bytes_toserver":60,"bytes_toclient":40,"payload_bytes_toserver":{},"payload_bytes_toclient":{}}},"app":null,"verdict":"declared","verdict_rule":"dicom-store"}})",
                       id, sport, payload_up, payload_down);
  };
  log.add_line(flow("f1", 40001, 0, 0));
  log.add_line(flow("f2", 40002, 0, 0));
  std::string html = render_html(log, {});
  CHECK(html.find("data-status=\"declared-no-data\"") != std::string::npos);
  CHECK(html.find("declared, attempted without data") != std::string::npos);
  CHECK(html.find("2 without data") != std::string::npos);
  CHECK(html.find("data-status=\"declared\"") == std::string::npos);
  // One flow that carried data makes the rule seen at work.
  log.add_line(flow("f3", 40003, 300, 200));
  html = render_html(log, {});
  CHECK(html.find("data-status=\"declared-no-data\"") == std::string::npos);
  CHECK(html.find("data-status=\"declared\"") != std::string::npos);
  CHECK(html.find("2 without data") != std::string::npos);
}

TEST_CASE("report of a whole network without a site gives sections to the devices that matter most, not to every address") {
  EventLog log;
  auto asset = [&](const std::string& ip) {
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{{"ip":"{}","changes":["new"],"model":"unbound","flows":1,"bytes":10}}}})", ip));
  };
  asset("10.9.9.9");
  asset("10.9.9.8");
  for (int i = 0; i < 700; ++i) {
    std::string ip = fmt::format("10.1.{}.{}", i / 250, i % 250 + 1);
    asset(ip);
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f{}","src_ip":"{}","src_port":1000,"dst_ip":"10.9.9.9","dst_port":80,"proto":"tcp","flow":{{"bytes_toserver":60,"bytes_toclient":80}},"app":null}})",
                             i, ip));
  }
  // One address talks more than the others: it keeps its section.
  for (int k = 0; k < 5; ++k)
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":"g{}","src_ip":"10.1.2.200","src_port":{},"dst_ip":"10.9.9.8","dst_port":80,"proto":"tcp","flow":{{"bytes_toserver":60,"bytes_toclient":80}},"app":null}})",
                             k, 2000 + k));
  std::string html = render_html(log, {});
  CHECK(count(html, "<section class=\"device\"") == 500);
  CHECK(html.find("id=\"sections-capped\"") != std::string::npos);
  CHECK(html.find("id=\"dev-10.1.2.200\"") != std::string::npos);
  CHECK(html.find("id=\"dev-10.9.9.9\"") != std::string::npos);  // the busiest server
  // Every address is still in the device table.
  CHECK(count(html, "class=\"device-row\"") == 702);
}

TEST_CASE("inventory: the DHCP names are those the latest event states when the MAC or its names changed") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.1.0.52","changes":["new","mac","dhcp"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","mac":"02:00:00:00:00:0a","hostname":"infusion-pump-A","dhcp":{"vendor_class":"PUMPCO-GW","fingerprint":"1,3,6"},"model":"unbound","flows":1,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"asset","asset":{"ip":"10.1.0.52","changes":["service_used"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:02.000000Z","mac":"02:00:00:00:00:0a","hostname":"infusion-pump-A","dhcp":{"vendor_class":"PUMPCO-GW","fingerprint":"1,3,6"},"model":"unbound","flows":2,"bytes":20}})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  CHECK(inv[0].dhcp_vendor_class == "PUMPCO-GW");
  // Another MAC took the address: its names, and no vendor class, which it did not give.
  log.add_line(R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"asset","asset":{"ip":"10.1.0.52","changes":["mac","dhcp"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:03.000000Z","mac":"02:00:00:00:00:0b","hostname":"laptop-B","dhcp":{"fingerprint":"1,3,6,15"},"model":"unbound","flows":3,"bytes":30}})");
  inv = build_inventory(log);
  CHECK(inv[0].hostname == "laptop-B");
  CHECK(inv[0].dhcp_vendor_class.empty());
  CHECK(inv[0].dhcp_fingerprint == "1,3,6,15");
  // The names went (the MAC took another address): none.
  log.add_line(R"({"ts":"2024-03-01T12:00:04.000000Z","event_type":"asset","asset":{"ip":"10.1.0.52","changes":["dhcp"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:04.000000Z","mac":"02:00:00:00:00:0b","model":"unbound","flows":3,"bytes":30}})");
  inv = build_inventory(log);
  CHECK(inv[0].hostname.empty());
  CHECK(inv[0].dhcp_fingerprint.empty());
}

TEST_CASE("inventory: ICMP service counts follow the flows, ICMPv6 too") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"fe80::1","changes":["new","service_used"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","model":"unbound","services_used":[{"service":"icmp","proto":"icmp6","port":0,"flows":1}],"flows":1,"bytes":10}})");
  for (const char* id : {"f1", "f2"})
    log.add_line(std::string(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":")") + id +
                 R"(","src_ip":"fe80::1","src_port":0,"dst_ip":"ff02::2","dst_port":0,"proto":"icmp6","flow":{"start":"2024-03-01T12:00:02.000000Z","end":"2024-03-01T12:00:02.000000Z","bytes_toserver":70,"bytes_toclient":0},"app":null})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  REQUIRE(inv[0].used_json.size() == 1);
  CHECK(inv[0].used_json[0]["flows"] == 2);
}

TEST_CASE("inventory: alerts naming no asset are counted without a pass over every asset") {
  // 40 000 assets and 40 000 alerts about a public address: quadratic, this took tens of seconds
  // (its cost is seen in the run time of the suite; no clock is read here, the suite runs loaded).
  EventLog log;
  for (int i = 0; i < 40000; ++i)
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{{"ip":"10.{}.{}.{}","changes":["new"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","model":"unbound","flows":1,"bytes":10}}}})",
                             i >> 16, (i >> 8) & 255, i & 255));
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.200.0.1","changes":["new"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","device":"ct-1","model":"acme-ct","flows":1,"bytes":10}})");
  for (int i = 0; i < 40000; ++i)
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:02.000000Z","event_type":"alert","src_ip":"203.0.113.{}","dst_ip":"198.51.100.1","alert":{{"rule":"r","severity":"low","message":"m","device":"{}"}}}})",
                             i % 200, i % 2 ? "203.0.113.7" : "ct-1"));
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 40001);
  uint64_t alerts = 0;
  for (auto& a : inv) alerts += a.alerts;
  CHECK(alerts == 20000);  // the ct-1 ones
}

TEST_CASE("the site's binder is the judge's: an address binds before a MAC") {
  // Device a is bound by the MAC that device b's frames carry (both behind one router, say);
  // the judge finds b at its address first, and so must the inventory's binder.
  std::string dir = "/tmp/medmon-report-binder-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/model-a.yaml") << "schema: medmon.model/v1\nmodel: {id: model-a}\n";
  std::ofstream(dir + "/model-b.yaml") << "schema: medmon.model/v1\nmodel: {id: model-b}\n";
  std::ofstream(dir + "/site.yaml") << "schema: medmon.site/v1\n"
                                       "models: [model-a.yaml, model-b.yaml]\n"
                                       "internal_networks: [10.0.0.0/8]\n"
                                       "devices:\n"
                                       "  - {name: a, model: model-a, mac: \"02:00:00:00:00:0a\"}\n"
                                       "  - {name: b, model: model-b, ip: 10.1.0.10}\n";
  auto view = policy_view_load(dir + "/site.yaml", dir);
  std::filesystem::remove_all(dir);
  if (!view) { WARN("built without the policy engine"); return; }
  medmon::IpAddr b, other;
  REQUIRE(medmon::IpAddr::parse("10.1.0.10", b));
  REQUIRE(medmon::IpAddr::parse("10.1.0.11", other));
  const std::array<uint8_t, 6> mac_a{0x02, 0, 0, 0, 0, 0x0a}, none{};
  CHECK(view->binder(b, mac_a) == "model-b");
  CHECK(view->binder(other, mac_a) == "model-a");
  CHECK(view->binder(other, none).empty());
  CHECK(view->declared.size() == 2);
}

TEST_CASE("report: fingerprint bindings from alerts alone bind as the policy does", "[report]") {
  // Only the alert lines of a run (grep alert, a rotated file's part): no flow event tells which
  // side the policy judged.
  EventLog log;
  // A fan-out by a host that is no device names the device it reached last (ct-1, bound by
  // fingerprint at 10.10.1.99 earlier), not the host this flow reached.
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"alert","flow_id":"f1","src_ip":"10.10.1.77","src_port":40000,"dst_ip":"10.10.1.110","dst_port":104,"proto":"tcp","src_zone":"modality","dst_zone":"modality","alert":{"rule":"lateral.fan_out","severity":"high","message":"m","device":"ct-1","peer":"10.10.1.77","mds2":[],"evidence":{"flow_ids":["f1"],"model":"acme-ct","direction":"inbound","distinct_hosts":"9"}}})");
  CHECK(fingerprint_bindings(log).empty());
  // The device's own alert binds its address; a later one from another address does not move it.
  log.add_line(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"alert","flow_id":"f2","src_ip":"10.10.1.99","src_port":40001,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dst_device":"pacs-1","alert":{"rule":"tls.required_cleartext","severity":"high","message":"m","device":"ct-1","peer":"pacs-1","mds2":[],"evidence":{"flow_ids":["f2"],"direction":"outbound","model":"acme-ct"}}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:03.000000Z","event_type":"alert","flow_id":"f3","src_ip":"10.10.1.98","src_port":40002,"dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dst_device":"pacs-1","alert":{"rule":"flow.undeclared","severity":"medium","message":"m","device":"ct-1","peer":"pacs-1","mds2":[],"evidence":{"flow_ids":["f3"],"direction":"outbound","model":"acme-ct"}}})");
  CHECK(fingerprint_bindings(log) == std::map<std::string, std::string>{{"10.10.1.99", "ct-1"}});
}

TEST_CASE("report: the time chart dates its ends when the traffic spans days, before 1970 too") {
  auto flows = [](const char* start, const char* end) {
    EventLog log;
    log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"192.168.0.5","changes":["new"],"model":"unbound","flows":1,"bytes":10}})");
    log.add_line(fmt::format(R"({{"ts":"{1}","event_type":"flow","flow_id":"f1","src_ip":"192.168.0.5","src_port":1,"dst_ip":"192.168.0.9","dst_port":53,"proto":"udp","flow":{{"start":"{0}","end":"{1}","bytes_toserver":60,"bytes_toclient":80}},"app":null,"ndpi":{{"protocol":"DNS"}}}})",
                             start, end));
    return render_html(log, ReportOptions{});
  };
  std::string same_day = flows("2024-03-01T12:00:00.000000Z", "2024-03-01T13:30:05.000000Z");
  CHECK(same_day.find(">12:00:00</text>") != std::string::npos);
  CHECK(same_day.find(">13:30:05 UTC</text>") != std::string::npos);
  std::string days = flows("2024-02-28T23:59:59.000000Z", "2024-03-02T00:00:01.000000Z");
  CHECK(days.find(">2024-02-28 23:59:59</text>") != std::string::npos);
  CHECK(days.find(">2024-03-02 00:00:01 UTC</text>") != std::string::npos);
  std::string old = flows("1969-12-31T23:00:00.000000Z", "1970-01-01T01:00:00.000000Z");
  CHECK(old.find(">1969-12-31 23:00:00</text>") != std::string::npos);
  CHECK(old.find(">1970-01-01 01:00:00 UTC</text>") != std::string::npos);
  std::string before = flows("1969-07-20T20:17:40.000000Z", "1969-07-20T21:00:00.000000Z");
  CHECK(before.find(">20:17:40</text>") != std::string::npos);
  CHECK(before.find(">21:00:00 UTC</text>") != std::string::npos);
}

TEST_CASE("report: device names with spaces, quotes or any script make valid, unique ids that their links match") {
  EventLog log;
  const char* names[] = {"Infusion pump \\\"3\\\"", "Infusion pump ~223~22", "ICU bed 4 <a>", "Moniteur réa", "Monitor", "monitor"};
  int i = 0;
  for (const char* n : names) {
    ++i;
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{{"ip":"10.0.0.{0}","changes":["new"],"device":"{1}","model":"m","flows":1,"bytes":10}}}})", i, n));
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T12:00:01.000000Z","event_type":"flow","flow_id":"f{0}","src_ip":"10.0.0.{0}","src_port":1,"dst_ip":"10.0.1.1","dst_port":53,"proto":"udp","src_device":"{1}","flow":{{"start":"2024-03-01T12:00:00.000000Z","end":"2024-03-01T12:00:01.000000Z","bytes_toserver":60,"bytes_toclient":80}},"app":null,"ndpi":{{"protocol":"DNS"}}}})", i, n));
  }
  std::string html = render_html(log, ReportOptions{});
  std::regex section_id(R"re(<section class="device" id="([^"]*)")re"), link(R"re(<a href="#([^"]*)")re");
  std::set<std::string> ids, links;
  for (std::sregex_iterator it(html.begin(), html.end(), section_id), e; it != e; ++it) ids.insert((*it)[1]);
  size_t sections = count(html, "<section class=\"device\"");
  for (std::sregex_iterator it(html.begin(), html.end(), link), e; it != e; ++it) links.insert((*it)[1]);
  CHECK(sections == 6);
  CHECK(ids.size() == sections);  // unique
  CHECK(links == ids);            // every link leads to a section
  for (const std::string& id : ids) {
    INFO(id);
    CHECK(std::regex_match(id, std::regex("dev-[A-Za-z0-9._:~-]+")));
  }
}

TEST_CASE("report: a flow whose times cannot be read does not stretch the time chart back to 1970") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"192.168.0.5","changes":["new"],"model":"unbound","flows":2,"bytes":10}})");
  log.add_line(R"({"ts":"2024-03-01T12:00:05.000000Z","event_type":"flow","flow_id":"f1","src_ip":"192.168.0.5","src_port":1,"dst_ip":"192.168.0.9","dst_port":53,"proto":"udp","flow":{"start":"2024-03-01T12:00:00.000000Z","end":"2024-03-01T12:00:05.000000Z","bytes_toserver":60,"bytes_toclient":80},"app":null,"ndpi":{"protocol":"DNS"}})");
  log.add_line(R"({"ts":"damaged","event_type":"flow","flow_id":"f2","src_ip":"192.168.0.5","src_port":2,"dst_ip":"192.168.0.9","dst_port":53,"proto":"udp","flow":{"start":"?","bytes_toserver":60,"bytes_toclient":80},"app":null,"ndpi":{"protocol":"DNS"}})");
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find(">12:00:00</text>") != std::string::npos);
  CHECK(html.find(">12:00:05 UTC</text>") != std::string::npos);
}

TEST_CASE("inventory: SMB over the NetBIOS session service counts under the application nDPI read") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T12:00:01.000000Z","event_type":"asset","asset":{"ip":"10.10.1.50","changes":["new","service_offered"],"first_seen":"2024-03-01T12:00:01.000000Z","last_seen":"2024-03-01T12:00:01.000000Z","model":"unbound","services_offered":[{"service":"smbv23","proto":"tcp","port":445,"flows":1}],"flows":1,"bytes":10}})");
  for (const char* id : {"f1", "f2"})
    log.add_line(std::string(R"({"ts":"2024-03-01T12:00:02.000000Z","event_type":"flow","flow_id":")") + id +
                 R"(","src_ip":"10.10.1.10","src_port":1,"dst_ip":"10.10.1.50","dst_port":445,"proto":"tcp","flow":{"start":"2024-03-01T12:00:02.000000Z","end":"2024-03-01T12:00:02.000000Z","tcp_flags_toclient":"SAFP","payload_bytes_toclient":100,"bytes_toserver":60,"bytes_toclient":80},"app":null,"ndpi":{"protocol":"NetBIOS","app":"SMBv23"}})");
  CHECK(flow_app(first_flow(log)) == "smbv23");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  REQUIRE(inv[0].offered_json.size() == 1);
  CHECK(inv[0].offered_json[0]["flows"] == 2);
}

TEST_CASE("inventory: another device taking an address starts its record again") {
  EventLog log;
  log.add_line(R"({"ts":"2023-11-14T22:13:21.000000Z","event_type":"asset","asset":{"ip":"10.0.0.8","changes":["new","mac","ae_title","service_used"],"first_seen":"2023-11-14T22:13:20.000000Z","last_seen":"2023-11-14T22:13:21.000000Z","mac":"00:1b:21:aa:bb:cc","mac_vendor":"Intel Corporate","model":"unbound","dicom":{"ae_titles":["CT01"]},"tls_sni":["pacs.example"],"services_used":[{"service":"dicom","proto":"tcp","port":11112,"flows":1}],"flows":1,"bytes":900}})");
  log.add_line(R"({"ts":"2023-11-14T22:15:01.000000Z","event_type":"asset","asset":{"ip":"10.0.0.8","changes":["replaced","mac","service_used"],"first_seen":"2023-11-14T22:15:00.000000Z","last_seen":"2023-11-14T22:15:01.000000Z","mac":"02:00:00:00:00:0b","mac_local":true,"previous_mac":"00:1b:21:aa:bb:cc","model":"unbound","services_used":[{"service":"tls","proto":"tcp","port":443,"flows":1}],"flows":1,"bytes":900}})");
  log.add_line(R"({"ts":"2023-11-14T22:13:21.000000Z","event_type":"flow","flow_id":"f1","src_ip":"10.0.0.8","src_port":40000,"dst_ip":"10.0.0.1","dst_port":11112,"proto":"tcp","flow":{"start":"2023-11-14T22:13:20.000000Z","end":"2023-11-14T22:13:21.000000Z","bytes_toserver":500,"bytes_toclient":400},"app":"dicom"})");
  log.add_line(R"({"ts":"2023-11-14T22:15:01.000000Z","event_type":"flow","flow_id":"f2","src_ip":"10.0.0.8","src_port":40001,"dst_ip":"10.0.0.1","dst_port":443,"proto":"tcp","flow":{"start":"2023-11-14T22:15:00.000000Z","end":"2023-11-14T22:15:01.000000Z","bytes_toserver":500,"bytes_toclient":400},"ndpi":{"protocol":"TLS"}})");
  auto inv = build_inventory(log);
  REQUIRE(inv.size() == 1);
  const Asset& a = inv[0];
  CHECK(a.mac == "02:00:00:00:00:0b");
  CHECK(a.ae_titles.empty());
  CHECK(a.sni.empty());
  CHECK(a.used == std::vector<std::string>{"tls/tcp/443"});
  CHECK(a.first_seen == "2023-11-14T22:15:00.000000Z");
  CHECK(a.flows == 1);
  CHECK(a.bytes == 900);
}

namespace {
// A file of the given lines under the temporary directory, removed when it goes.
struct TempEvents {
  std::string path;
  explicit TempEvents(const std::vector<std::string>& lines) {
    path = (std::filesystem::temp_directory_path() / fmt::format("medmon-test-events-{}.jsonl", ::getpid())).string();
    std::ofstream o(path, std::ios::binary | std::ios::trunc);
    for (auto& l : lines) o << l << "\n";
  }
  ~TempEvents() { std::remove(path.c_str()); }
};
}  // namespace

TEST_CASE("report: flows read again from the file make the page of the same lines kept in memory") {
  std::vector<std::string> lines(std::begin(kEvents), std::end(kEvents));
  TempEvents file(lines);
  EventLog from_file;
  std::string err;
  REQUIRE(from_file.load(file.path, err));
  EventLog in_memory;
  for (auto& l : lines) in_memory.add_line(l);
  in_memory.source = from_file.source;
  CHECK(from_file.flow_events == 3);
  CHECK(from_file.read_error.empty());
  size_t n = 0;
  from_file.for_each_flow([&](const nlohmann::json&) { ++n; });
  CHECK(n == 3);
  std::string html = render_html(from_file, ReportOptions{});
  CHECK(html == render_html(in_memory, ReportOptions{}));
  CHECK(html.find("id=\"count-flows\">3<") != std::string::npos);
  CHECK(build_inventory(from_file)[0].flows == 3);
}

TEST_CASE("report: a read error is no end of file: the verdict is INCOMPLETE and the page says where") {
  // A directory opened for reading fails on its first read (EISDIR), as a failing disk would.
  int dir = ::open(std::filesystem::temp_directory_path().c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(dir >= 0);
  EventLog log;
  std::string err;
  CHECK_FALSE(log.load_range(dir, 0, 4096, err));
  ::close(dir);
  CHECK(err.find("cannot read the events back") != std::string::npos);
  CHECK_FALSE(log.read_error.empty());
  CHECK(log.incomplete());
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find("class=\"verdict big incomplete\">INCOMPLETE") != std::string::npos);
  CHECK(html.find("id=\"read-error\"") != std::string::npos);
  CHECK(html.find("after line 0") != std::string::npos);
}

TEST_CASE("report: the flow table, the PHI findings and the peers are bounded, every flow counted") {
  EventLog log;
  log.add_line(R"({"ts":"2024-03-01T00:00:00.000000Z","event_type":"asset","asset":{"ip":"10.0.0.1","model":"unbound"}})");
  const int n = 5000;
  for (int i = 0; i < n; ++i)
    log.add_line(fmt::format(R"({{"ts":"2024-03-01T00:00:01.000000Z","event_type":"flow","flow_id":"F{0}","src_ip":"10.0.0.1","src_port":1000,"dst_ip":"198.18.{1}.{2}","dst_port":80,"proto":"tcp","flow":{{"start":"2024-03-01T00:00:01.000000Z","end":"2024-03-01T00:00:02.000000Z","bytes_toserver":10,"bytes_toclient":10}},"app":"http","phi_cleartext":["PID-5"]}})",
                             i, i / 256, i % 256));
  std::string html = render_html(log, ReportOptions{});
  CHECK(html.find("id=\"count-flows\">5000<") != std::string::npos);
  CHECK(html.find("data-device=\"10.0.0.1\" data-verdict=\"NOT JUDGED\" data-flows=\"5000\"") != std::string::npos);
  CHECK(count(html, "<tr class=\"flow-group\"") == 4096);
  CHECK(html.find("904 flows of this device are in no row above") != std::string::npos);
  CHECK(count(html, "<tr class=\"phi-row\"") == 1000);
  CHECK(html.find("4000 more flows carried PHI in clear") != std::string::npos);
  CHECK(html.find("(other peers)") != std::string::npos);
  CHECK(html.find("id=\"flows-capped\"") != std::string::npos);
  // Below the caps: no notice.
  EventLog small = make_log();
  CHECK(render_html(small, ReportOptions{}).find("capped") == std::string::npos);
}
