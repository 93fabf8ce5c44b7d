// Flow evaluation over the demo site (policies/sites/demo-site.yaml): each rule fires where it
// should and stays quiet on the clean scenario. Flows are built as FlowSummary values directly.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <regex>
#include <fstream>
#include <iterator>
#include <unistd.h>
#include <memory>
#include <thread>

#include "policies/engine/policy_judge.h"

using namespace medmon;
using namespace medmon::policy;
using nlohmann::json;

namespace {

struct Fixture {
  std::unique_ptr<PolicyJudge> judge;
  EventOutput out;
  std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
  std::vector<std::unique_ptr<FlowFacts>> facts;
  std::vector<std::unique_ptr<std::string>> ids;
  int64_t t = 1700000000000000;

  // The demo site, or the demo site with `edits` applied (each: text -> replacement) and, when
  // given, one more model (YAML text) in its models list.
  using Edits = std::vector<std::pair<std::string, std::string>>;
  explicit Fixture(Edits edits = {}, const std::string& model = {}) {
    std::string site = std::string(POLICIES_DIR) + "/sites/demo-site.yaml";
    std::string tmp, tmp_model;
    if (!model.empty()) {
      // A model file is named by its id (<id>.yaml): one folder per process holds it.
      std::smatch id;
      REQUIRE(std::regex_search(model, id, std::regex(R"(model:\s*\{?\s*id:\s*([A-Za-z0-9_.-]+))")));
      std::filesystem::create_directories("/tmp/medmon-judge-" + std::to_string(::getpid()));
      tmp_model = "/tmp/medmon-judge-" + std::to_string(::getpid()) + "/" + id[1].str() + ".yaml";
      std::ofstream(tmp_model) << model;
      edits.emplace_back("  - ../devices/acme-ct.yaml\n", "  - ../devices/acme-ct.yaml\n  - " + tmp_model + "\n");
    }
    if (!edits.empty()) {
      std::ifstream in(site);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      for (auto& [from, to] : edits) {
        auto at = text.find(from);
        REQUIRE(at != std::string::npos);
        text.replace(at, from.size(), to);
      }
      for (size_t at; (at = text.find("../devices/")) != std::string::npos;)
        text.replace(at, 11, std::string(POLICIES_DIR) + "/devices/");
      tmp = "/tmp/medmon-judge-site-" + std::to_string(::getpid()) + ".yaml";
      std::ofstream(tmp) << text;
      site = tmp;
    }
    Errors errs;
    judge = PolicyJudge::load(site, std::string(POLICIES_DIR) + "/devices", {}, errs);
    if (!tmp.empty()) std::remove(tmp.c_str());
    if (!tmp_model.empty()) {
      std::error_code ec;
      std::filesystem::remove(tmp_model, ec);
      std::filesystem::remove(std::filesystem::path(tmp_model).parent_path(), ec);  // when no other fixture uses it
    }
    for (auto& e : errs.list) WARN(e.format());
    REQUIRE(judge);
    out.add_sink(sink);
    out.set_annotator(judge.get());
  }

  FlowSummary flow(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t proto = 6) {
    FlowSummary f;
    IpAddr::parse(src, f.ep.src);
    IpAddr::parse(dst, f.ep.dst);
    f.ep.src_port = sport;
    f.ep.dst_port = dport;
    f.ep.proto = proto;
    ids.push_back(std::make_unique<std::string>("F"));
    *ids.back() += std::to_string(ids.size());  // appended: GCC 12 -Wrestrict misreads "F" + s here
    f.ep.flow_id = *ids.back();
    t += 1000000;
    f.start = {t};
    f.end = {t + 500000};
    f.syn_seen = proto == 6;
    f.server_answered = true;
    f.pkts = {10, 10};
    f.payload_bytes = {1000, 1000};
    f.ndpi_protocol = "Unknown";
    return f;
  }
  FlowFacts& add_facts(FlowSummary& f, const char* app) {
    facts.push_back(std::make_unique<FlowFacts>());
    facts.back()->app = app;
    f.facts = facts.back().get();
    return *facts.back();
  }
  FlowVerdict judge_flow(const FlowSummary& f) { return judge->judge(f, out); }

  std::vector<json> alerts() const {
    std::vector<json> v;
    for (size_t i = 0; i < sink->lines.size(); ++i)
      if (sink->types[i] == "alert") v.push_back(json::parse(sink->lines[i]));
    return v;
  }
  std::vector<json> alerts(std::string_view rule) const {
    std::vector<json> v;
    for (auto& a : alerts()) if (a["alert"]["rule"] == rule) v.push_back(a);
    return v;
  }
  static bool cites(const json& a, const std::string& id) {
    for (auto& m : a["alert"]["mds2"]) if (m["id"] == id) return true;
    return false;
  }
};

const char* CT = "10.10.1.10";
const char* PACS = "10.10.2.20";
const char* RIS = "10.10.3.30";
const char* WS = "10.10.4.40";

}  // namespace

TEST_CASE("clean: the CT stores to its PACS over TLS, gets its worklist, syncs time", "[judge]") {
  Fixture fx;
  auto f = fx.flow(CT, 40001, PACS, 11112);
  f.ndpi_protocol = "TLS";
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "dicom-store");

  auto mwl = fx.flow(CT, 40002, RIS, 104);
  auto& m = fx.add_facts(mwl, "dicom");
  m.tls = true;  // the site runs the worklist over TLS too (TXCF-2 = Yes)
  m.set_attr("dicom.calling_ae", "CT01");
  m.set_attr("dicom.called_ae", "RIS01");
  m.set_attr("dicom.commands", "C-FIND");
  m.set_attr("dicom.sop_classes", "1.2.840.10008.5.1.4.31");
  CHECK(fx.judge_flow(mwl).verdict == "declared");

  auto ntp = fx.flow(CT, 123, "10.10.0.123", 123, 17);
  ntp.ndpi_protocol = "NTP";
  CHECK(fx.judge_flow(ntp).verdict == "declared");

  auto hl7 = fx.flow(RIS, 50000, PACS, 2575);
  auto& h = fx.add_facts(hl7, "hl7");
  h.set_attr("hl7.msh3", "RIS");
  h.set_attr("hl7.message_types", "ORM^O01,ADT^A08");
  h.set_attr("hl7.processing_id", "P");
  CHECK(fx.judge_flow(hl7).verdict == "declared");

  auto all = fx.alerts();
  for (auto& a : all) INFO(a.dump());
  CHECK(all.empty());
  CHECK(fx.judge->exit_code(Severity::info) == 0);
}

TEST_CASE("clean TLS store gives zero alerts and annotated headers", "[judge]") {
  Fixture fx;
  auto f = fx.flow(CT, 40001, PACS, 11112);
  f.ndpi_protocol = "TLS";
  fx.judge_flow(f);
  CHECK(fx.alerts().empty());
  auto& w = fx.out.begin("flow", f.end, &f.ep);
  w.field("x", 1);
  fx.out.end();
  json ev = json::parse(fx.sink->lines.back());
  CHECK(ev["src_device"] == "ct-1");
  CHECK(ev["dst_device"] == "pacs-1");
  CHECK(ev["src_zone"] == "modality");
  CHECK(ev["dst_zone"] == "pacs");
}

TEST_CASE("cleartext DICOM with PHI where TLS is required and TXCF-2 = Yes", "[judge]") {
  Fixture fx;
  auto f = fx.flow(CT, 40001, PACS, 11112);
  auto& facts = fx.add_facts(f, "dicom");
  facts.add_phi("PatientName");
  facts.add_phi("PatientID");
  facts.set_attr("dicom.calling_ae", "CT01");
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "declared");
  auto tls = fx.alerts("tls.required_cleartext");
  REQUIRE(tls.size() == 1);
  CHECK(tls[0]["alert"]["device"] == "ct-1");
  CHECK(tls[0]["alert"]["severity"] == "high");
  auto phi = fx.alerts("phi.cleartext");
  json ct_phi;
  for (auto& a : phi) if (a["alert"]["device"] == "ct-1") ct_phi = a;
  REQUIRE(!ct_phi.is_null());
  CHECK(ct_phi["alert"]["severity"] == "high");
  CHECK(ct_phi["alert"]["message"].get<std::string>().find("contradicts MDS2") != std::string::npos);
  REQUIRE(Fixture::cites(ct_phi, "TXCF-2"));
  for (auto& m : ct_phi["alert"]["mds2"]) {
    if (m["id"] != "TXCF-2") continue;
    CHECK(m["answer"] == "yes");
    CHECK(m["iec_tr_80001_2_2"] == "Section 5.18, TXCF");
    CHECK(m["nist_800_53"] == "CM-7");
    CHECK(m["iso_27002"] == "A.12.5.1");
  }
  CHECK(ct_phi["alert"]["evidence"]["phi_fields"] == json::array({"PatientName", "PatientID"}));
  CHECK(ct_phi["alert"]["evidence"]["flow_ids"][0] == "F1");
  // The PACS declares cleartext DICOM (TXCF-2 = No) with PHI expected: low only.
  for (auto& a : phi) if (a["alert"]["device"] == "pacs-1") CHECK(a["alert"]["severity"] == "low");
  CHECK(fx.judge->exit_code(Severity::high) == 1);
}

TEST_CASE("PHI to an external address is critical", "[judge]") {
  Fixture fx;
  auto f = fx.flow(CT, 40001, "203.0.113.9", 104);
  auto& facts = fx.add_facts(f, "dicom");
  facts.add_phi("PatientName");
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "forbidden");
  CHECK(v.rule == "flow.external_forbidden");
  CHECK(v.mds2 == std::vector<std::string>{"CONN-4", "CONN-6"});
  auto phi = fx.alerts("phi.cleartext");
  REQUIRE(phi.size() == 1);
  CHECK(phi[0]["alert"]["severity"] == "critical");
  CHECK(Fixture::cites(phi[0], "MPII-3.7"));
  auto ext = fx.alerts("flow.external_forbidden");
  REQUIRE(ext.size() == 1);
  CHECK(Fixture::cites(ext[0], "CONN-4"));
  CHECK(fx.judge->max_severity() == Severity::critical);
}

TEST_CASE("multicast, broadcast and link-local peers are not external", "[judge]") {
  Fixture fx;
  // mDNS, SSDP, a DHCP broadcast and a link-local peer: none leaves the site, so CONN-4 (the CT
  // never talks outside the customer environment) and the zone matrix's "external" stay silent.
  auto mdns = fx.flow(CT, 5353, "224.0.0.251", 5353, 17);
  mdns.ndpi_protocol = "MDNS";
  auto ssdp = fx.flow(CT, 50000, "239.255.255.250", 1900, 17);
  ssdp.ndpi_protocol = "SSDP";
  auto dhcp = fx.flow(CT, 68, "255.255.255.255", 67, 17);
  dhcp.ndpi_protocol = "DHCP";
  auto ll = fx.flow(CT, 40001, "169.254.10.20", 8080);
  auto ll6 = fx.flow("fe80::1", 546, "ff02::1:2", 547, 17);
  for (auto* f : {&mdns, &ssdp, &dhcp, &ll}) {
    auto v = fx.judge_flow(*f);
    // Still not declared by the CT's model: undeclared, only not external.
    CHECK(v.verdict == "undeclared");
    CHECK(v.rule == "flow.undeclared");
  }
  fx.judge_flow(ll6);
  CHECK(fx.alerts("flow.external_forbidden").empty());
  CHECK(fx.alerts("lateral.zone_crossing").empty());
  CHECK(fx.alerts("flow.undeclared").size() == 4);
  fx.out.begin("flow", ssdp.end, &ssdp.ep).field("x", 1);
  fx.out.end();
  json ev = json::parse(fx.sink->lines.back());
  CHECK(ev["src_zone"] == "modality");
  CHECK_FALSE(ev.contains("dst_zone"));
  // An address outside internal_networks is still external.
  auto dns = fx.flow(CT, 40002, "8.8.8.8", 53, 17);
  dns.ndpi_protocol = "DNS";
  CHECK(fx.judge_flow(dns).rule == "flow.external_forbidden");
}

TEST_CASE("cited answers without mapping cells take them from the NEMA template", "[judge]") {
  Fixture fx({{"devices:\n", "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-gateway}\n"
             "mds2_derived: {phi_encrypted_claim: true, phi_any: false}\n"
             "mds2:\n  answers:\n    TXCF-2: {answer: \"yes\", detail: \"Yes\"}\n"
             "    MPII-1: {answer: \"no\", detail: \"No\", nist_800_53: \"SC-8\"}\n");
  auto f = fx.flow("10.10.1.30", 40001, "10.10.1.90", 104);
  fx.add_facts(f, "dicom").add_phi("PatientName");
  fx.judge_flow(f);
  auto phi = fx.alerts("phi.cleartext");
  REQUIRE(phi.size() == 1);
  json txcf2, mpii1;
  for (auto& c : phi[0]["alert"]["mds2"]) {
    if (c["id"] == "TXCF-2") txcf2 = c;
    if (c["id"] == "MPII-1") mpii1 = c;
  }
  CHECK(txcf2["answer"] == "yes");
  CHECK(txcf2["iec_tr_80001_2_2"] == "Section 5.18, TXCF");
  CHECK(txcf2["nist_800_53"] == "CM-7");
  CHECK(txcf2["iso_27002"] == "A.12.5.1");
  // A cell the model gives is kept; the others come from the template.
  CHECK(mpii1["answer"] == "no");
  CHECK(mpii1["nist_800_53"] == "SC-8");
  CHECK(mpii1["iso_27002"] == "A.15.1.4");
}

TEST_CASE("lateral movement by content: SMB, RDP, Telnet", "[judge]") {
  Fixture fx;
  auto smb = fx.flow(CT, 40001, "10.10.1.99", 445);
  smb.ndpi_protocol = "SMBv23";
  auto v = fx.judge_flow(smb);
  CHECK(v.verdict == "forbidden");
  CHECK(v.mds2 == std::vector<std::string>{"SAHD-7"});
  REQUIRE(fx.alerts("lateral.admin_protocol").size() == 1);

  auto rdp = fx.flow("10.10.3.77", 50000, CT, 3389);
  rdp.ndpi_protocol = "RDP";
  v = fx.judge_flow(rdp);
  CHECK(v.verdict == "forbidden");
  CHECK(v.mds2 == std::vector<std::string>{"RMOT-1"});
  auto lat = fx.alerts("lateral.admin_protocol");
  REQUIRE(lat.size() == 2);
  CHECK(Fixture::cites(lat[1], "RMOT-1"));
  CHECK(lat[1]["alert"]["evidence"]["direction"] == "inbound");
  // his -> modality is not in the zone matrix either.
  CHECK(fx.alerts("lateral.zone_crossing").size() == 1);

  // Telnet on a non-standard port is still Telnet; and SSH on port 23 is not Telnet.
  auto tel = fx.flow(CT, 40002, "10.10.1.98", 2323);
  tel.ndpi_protocol = "Telnet";
  fx.judge_flow(tel);
  auto last = fx.alerts("lateral.admin_protocol").back();
  CHECK(last["alert"]["evidence"]["app"] == "telnet");
  CHECK(Fixture::cites(last, "RMOT-1"));

  // Port 445 without SMB content is not SMB.
  auto fake = fx.flow(CT, 40003, "10.10.1.97", 445);
  fx.judge_flow(fake);
  CHECK(fx.alerts("lateral.admin_protocol").size() == 3);

  // The NetBIOS session service (TCP 139) carries SMB: inbound, SAHD-7 forbids it ...
  auto nbss = fx.flow("10.10.1.96", 40004, CT, 139);
  nbss.ndpi_protocol = "NetBIOS";
  v = fx.judge_flow(nbss);
  CHECK(v.verdict == "forbidden");
  CHECK(v.mds2 == std::vector<std::string>{"SAHD-7"});
  REQUIRE(fx.alerts("lateral.admin_protocol").size() == 4);
  CHECK(fx.alerts("lateral.admin_protocol").back()["alert"]["evidence"]["app"] == "smb");
  // ... but a NetBIOS name query (UDP 137) is no file sharing.
  auto nbns = fx.flow("10.10.1.96", 137, CT, 137, 17);
  nbns.ndpi_protocol = "NetBIOS";
  v = fx.judge_flow(nbns);
  CHECK(v.verdict == "undeclared");
  CHECK(v.mds2.empty());
  CHECK(fx.alerts("lateral.admin_protocol").size() == 4);
  CHECK(fx.alerts("flow.undeclared").back()["alert"]["evidence"]["app"] == "netbios");
}

TEST_CASE("the admin protocols are those of the lateral-movement signals, MS-SQL included", "[judge]") {
  Fixture fx;
  struct P { const char* ndpi; uint16_t port; const char* app; };
  const P protocols[] = {{"SMBv1", 445, "smb"},  {"DCE_RPC", 135, "rpc"}, {"RDP", 3389, "rdp"},
                         {"HTTP", 5985, "winrm"}, {"SSH", 22, "ssh"},     {"Telnet", 23, "telnet"},
                         {"VNC", 5900, "vnc"},    {"TeamViewer", 5938, "teamviewer"},
                         {"FTP_CONTROL", 21, "ftp"}, {"MsSQL-TDS", 1433, "mssql"}, {"AnyDesk", 7070, "anydesk"}};
  int host = 100;
  for (const P& p : protocols) {
    std::string ip = "10.10.1." + std::to_string(host++);
    auto f = fx.flow(CT, 40000, ip.c_str(), p.port);
    f.ndpi_protocol = p.ndpi;
    fx.judge_flow(f);
    auto lat = fx.alerts("lateral.admin_protocol");
    INFO(p.ndpi);
    REQUIRE(!lat.empty());
    CHECK(lat.back()["alert"]["peer"] == ip);
    CHECK(lat.back()["alert"]["evidence"]["app"] == p.app);
  }
  CHECK(fx.alerts("lateral.admin_protocol").size() == std::size(protocols));
  // Other databases are no admin protocol.
  auto pg = fx.flow(CT, 40001, "10.10.1.120", 5432);
  pg.ndpi_protocol = "PostgreSQL";
  fx.judge_flow(pg);
  CHECK(fx.alerts("lateral.admin_protocol").size() == std::size(protocols));
}

TEST_CASE("an admin protocol no forbidden_apps entry covers is still judged by CONN-3, CONN-4 and zones", "[judge]") {
  // A gateway whose MDS2 says it talks to no other system (CONN-3 = No) and never outside the
  // site (CONN-4 = No, CONN-6 = No); RMOT-1 is not answered, so no forbidden_apps entry covers SSH
  // or SMB.
  const std::string model = R"(schema: medmon.model/v1
model: {id: test-gateway}
mds2_derived: {communicates_internal: false, internal_only: true, internet_required: false}
zones: {never: [external]}
)";
  Fixture fx(Fixture::Edits{{"devices:\n", "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n"}},
             model);
  auto smb = fx.flow("10.10.1.30", 40001, "10.10.1.90", 445);
  smb.ndpi_protocol = "SMBv23";
  auto v = fx.judge_flow(smb);
  CHECK(v.verdict == "forbidden");
  CHECK(v.rule == "flow.internal_forbidden");
  CHECK(v.mds2 == std::vector<std::string>{"CONN-3"});
  CHECK(fx.alerts("lateral.admin_protocol").size() == 1);
  auto in = fx.alerts("flow.internal_forbidden");
  REQUIRE(in.size() == 1);
  CHECK(in[0]["alert"]["evidence"]["app"] == "smb");
  CHECK(Fixture::cites(in[0], "CONN-3"));

  auto ssh = fx.flow("10.10.1.30", 40002, "203.0.113.10", 22);
  ssh.ndpi_protocol = "SSH";
  v = fx.judge_flow(ssh);
  CHECK(v.verdict == "forbidden");
  CHECK(v.rule == "flow.external_forbidden");
  CHECK(v.mds2 == std::vector<std::string>{"CONN-4", "CONN-6"});
  auto lat = fx.alerts("lateral.admin_protocol");
  REQUIRE(lat.size() == 2);
  CHECK(lat[1]["alert"]["evidence"]["app"] == "ssh");
  CHECK(fx.alerts("flow.external_forbidden").size() == 1);
}

TEST_CASE("a protocol nDPI only guessed from the port is neither an application nor encryption", "[judge]") {
  Fixture fx;
  // Cleartext DICOM with PHI where TLS is required; nDPI guessed "TLS" from the port.
  auto f = fx.flow(CT, 40001, PACS, 11112);
  f.ndpi_protocol = "TLS";
  f.ndpi_guessed = true;
  auto& facts = fx.add_facts(f, "dicom");
  facts.add_phi("PatientName");
  facts.set_attr("dicom.calling_ae", "CT01");
  fx.judge_flow(f);
  CHECK(fx.alerts("tls.required_cleartext").size() == 1);
  CHECK_FALSE(fx.alerts("phi.cleartext").empty());
  // Content nDPI could not name on 445 and 22, guessed SMB and SSH: no admin protocol seen.
  auto smb = fx.flow(CT, 40002, "10.10.1.99", 445);
  smb.ndpi_protocol = "SMBv23";
  smb.ndpi_guessed = true;
  fx.judge_flow(smb);
  auto ssh = fx.flow("10.10.3.77", 50000, CT, 22);
  ssh.ndpi_protocol = "SSH";
  ssh.ndpi_guessed = true;
  fx.judge_flow(ssh);
  CHECK(fx.alerts("lateral.admin_protocol").empty());
}

TEST_CASE("application names from nDPI match the model's in any case", "[judge]") {
  Fixture fx({{"  - {role: ntp,", "  - {role: service, ips: [10.10.1.90]}\n  - {role: ntp,"},
              {"devices:\n", "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-gateway}\n"
             "flows:\n  - {id: mqtt-telemetry, initiator: device, peer_role: service, l4: tcp, dst_port: [1883], app: mqtt}\n"
             "forbidden_apps:\n  - {app: [Modbus], direction: outbound, source: [CONN-3]}\n");
  // nDPI names the protocols "MQTT" and "Modbus"; the model writes them in lowercase.
  auto mqtt = fx.flow("10.10.1.30", 40001, "10.10.1.90", 1883);
  mqtt.ndpi_protocol = "MQTT";
  auto v = fx.judge_flow(mqtt);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "mqtt-telemetry");
  auto modbus = fx.flow("10.10.1.30", 40002, "10.10.1.90", 502);
  modbus.ndpi_protocol = "Modbus";
  v = fx.judge_flow(modbus);
  CHECK(v.verdict == "forbidden");
  CHECK(v.rule == "flow.forbidden_app");
  CHECK(fx.alerts("flow.forbidden_app").size() == 1);
}

TEST_CASE("a model may name nDPI's own protocol where medmon counts it in a family", "[judge]") {
  Fixture fx({{"  - {role: ntp,", "  - {role: service, ips: [10.10.1.90]}\n  - {role: ntp,"},
              {"devices:\n", "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-gateway}\n"
             "flows:\n"
             "  - {id: fw, initiator: device, peer_role: service, l4: udp, dst_port: [69], app: tftp}\n"
             "  - {id: v6, initiator: device, peer_role: service, l4: udp, dst_port: [547], app: dhcpv6}\n"
             "  - {id: md, initiator: device, peer_role: service, l4: udp, dst_port: [5353], app: mdns}\n"
             "  - {id: names, initiator: device, peer_role: service, l4: udp, dst_port: [53], app: dns}\n"
             "forbidden_apps:\n  - {app: [llmnr], direction: outbound, source: [CONN-3]}\n");
  // nDPI names them TFTP, DHCPV6, MDNS; medmon counts the last two as dhcp and dns.
  auto tftp = fx.flow("10.10.1.30", 40001, "10.10.1.90", 69, 17);
  tftp.ndpi_protocol = "TFTP";
  auto v = fx.judge_flow(tftp);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "fw");
  auto dhcp6 = fx.flow("10.10.1.30", 546, "10.10.1.90", 547, 17);
  dhcp6.ndpi_protocol = "DHCPV6";
  v = fx.judge_flow(dhcp6);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "v6");
  auto mdns = fx.flow("10.10.1.30", 5353, "10.10.1.90", 5353, 17);
  mdns.ndpi_protocol = "MDNS";
  v = fx.judge_flow(mdns);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "md");
  // The family name still matches every member: mDNS on 53 is dns.
  auto md53 = fx.flow("10.10.1.30", 40002, "10.10.1.90", 53, 17);
  md53.ndpi_protocol = "MDNS";
  v = fx.judge_flow(md53);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "names");
  // A member's name does not match the rest of the family: plain DNS on 5353 is not mdns.
  auto dns = fx.flow("10.10.1.30", 40003, "10.10.1.90", 5353, 17);
  dns.ndpi_protocol = "DNS";
  v = fx.judge_flow(dns);
  CHECK(v.verdict != "declared");
  // Nor does a protocol nDPI only guessed from the port.
  auto guess = fx.flow("10.10.1.30", 40004, "10.10.1.90", 69, 17);
  guess.ndpi_protocol = "TFTP";
  guess.ndpi_guessed = true;
  v = fx.judge_flow(guess);
  CHECK(v.rule != "fw");  // content nothing recognised is not tftp
  // Without payload there is no content to recognise: it matches on ports.
  auto empty = fx.flow("10.10.1.30", 40014, "10.10.1.90", 69, 17);
  empty.ndpi_protocol = "TFTP";
  empty.ndpi_guessed = true;
  empty.payload_bytes = {0, 0};
  v = fx.judge_flow(empty);
  CHECK(v.rule == "fw");
  // Forbidden by nDPI's name: LLMNR, which medmon counts as dns.
  auto llmnr = fx.flow("10.10.1.30", 40005, "10.10.1.90", 5355, 17);
  llmnr.ndpi_protocol = "LLMNR";
  v = fx.judge_flow(llmnr);
  CHECK(v.verdict == "forbidden");
  CHECK(v.rule == "flow.forbidden_app");
  // DHCPv6 read by medmon's own dissector (nDPI then never names it) is still dhcpv6, and dhcp;
  // DHCPv4 on 547 is not dhcpv6.
  auto own6 = fx.flow("10.10.1.30", 546, "10.10.1.90", 547, 17);
  fx.add_facts(own6, "dhcp").set_attr("dhcp.version", "6");
  v = fx.judge_flow(own6);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "v6");
  auto own4 = fx.flow("10.10.1.30", 546, "10.10.1.90", 547, 17);
  fx.add_facts(own4, "dhcp");
  v = fx.judge_flow(own4);
  CHECK(v.verdict != "declared");
}

TEST_CASE("content nothing recognised matches a rule's application only without payload", "[judge]") {
  Fixture fx;
  // 3 KB of bytes neither a dissector nor nDPI recognised, on the worklist port of the RIS.
  auto f = fx.flow(CT, 40020, RIS, 104);
  f.payload_bytes = {3000, 500};
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "undeclared");
  CHECK(v.rule == "flow.undeclared");
  auto u = fx.alerts("flow.undeclared");
  REQUIRE(u.size() == 1);
  CHECK(u[0]["alert"]["evidence"]["port_rule"] == "dicom-mwl");
  CHECK(u[0]["alert"]["evidence"]["app"] == "unknown");
  CHECK(Fixture::cites(u[0], "CONN-2"));
  // A connection that carried nothing (refused, or only the handshake seen) still matches on ports.
  auto g = fx.flow(CT, 40021, RIS, 104);
  g.payload_bytes = {0, 0};
  v = fx.judge_flow(g);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "dicom-mwl");
  // DICOM the dissector recognised is declared.
  auto h = fx.flow(CT, 40022, RIS, 104);
  fx.add_facts(h, "dicom").tls = true;
  CHECK(fx.judge_flow(h).rule == "dicom-mwl");
}

TEST_CASE("app sql is nDPI's SQL databases, app proprietary any protocol a signature recognised", "[judge]") {
  Fixture fx({{"  - {role: ntp,", "  - {role: db, ips: [10.10.3.40]}\n  - {role: ntp,"},
              {"devices:\n", "devices:\n  - {name: lab-1, model: test-lab, ip: 10.10.1.40, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-lab}\n"
             "flows:\n  - {id: db, initiator: device, peer_role: db, l4: tcp, dst_port: [1433, 5432], app: sql}\n"
             "  - {id: pg, initiator: device, peer_role: db, l4: tcp, dst_port: [5433], app: postgresql}\n"
             "  - {id: monitor, initiator: device, peer_role: db, l4: tcp, dst_port: [7700], app: proprietary}\n");
  auto db = [&](uint16_t port, const char* ndpi) {
    auto f = fx.flow("10.10.1.40", 40000, "10.10.3.40", port);
    f.ndpi_protocol = ndpi;
    return fx.judge_flow(f);
  };
  CHECK(db(1433, "MsSQL-TDS").rule == "db");
  CHECK(db(5432, "PostgreSQL").rule == "db");
  // A member's own name matches that member only.
  CHECK(db(5433, "PostgreSQL").rule == "pg");
  CHECK(db(5433, "MySQL").rule != "pg");
  // A protocol a shipped signature recognised is proprietary; HL7 on that port is not.
  auto sig = fx.flow("10.10.1.40", 40001, "10.10.3.40", 7700);
  fx.add_facts(sig, "datex-ohmeda-s5");
  CHECK(fx.judge_flow(sig).rule == "monitor");
  auto hl7 = fx.flow("10.10.1.40", 40002, "10.10.3.40", 7700);
  fx.add_facts(hl7, "hl7");
  CHECK(fx.judge_flow(hl7).rule != "monitor");
}

TEST_CASE("a TLS flow matches no rule that forbids TLS, DICOM recognised behind it included", "[judge]") {
  Fixture notls({{"{name: ct-1, model: acme-ct,", "{name: ct-1, model: test-notls,"}},
                "schema: medmon.model/v1\nmodel: {id: test-notls}\n"
                "flows:\n  - {id: store, initiator: device, peer_role: pacs, l4: tcp, dst_port: [104, 2762], app: dicom, tls: forbidden}\n");
  // The sensor recognised DICOM behind TLS (dicom-tls).
  auto t = notls.flow(CT, 40001, PACS, 2762);
  t.ndpi_protocol = "TLS";
  notls.add_facts(t, "dicom-tls");
  auto v = notls.judge_flow(t);
  CHECK(v.verdict == "undeclared");
  CHECK(v.side_rule[0] == "flow.undeclared");
  // Nor when nDPI alone read the TLS, or the dissector saw the handshake.
  auto n = notls.flow(CT, 40002, PACS, 2762);
  n.ndpi_protocol = "TLS";
  CHECK(notls.judge_flow(n).side_rule[0] == "flow.undeclared");
  // DICOM in clear matches.
  auto c = notls.flow(CT, 40003, PACS, 2762);
  notls.add_facts(c, "dicom");
  CHECK(notls.judge_flow(c).side_rule[0] == "store");
}

TEST_CASE("undeclared, unlisted listening port, disabled-by-default service", "[judge]") {
  Fixture fx;
  auto f = fx.flow(CT, 40001, PACS, 8080);
  f.ndpi_protocol = "HTTP";
  auto v = fx.judge_flow(f);
  // Undeclared for the CT; for the PACS an accepted connection on a port it does not list, while
  // SAHD-8 says unused ports are disabled: the worse of the two is the flow's verdict.
  CHECK(v.verdict == "forbidden");
  CHECK(fx.alerts("flow.undeclared").size() == 1);
  CHECK(fx.alerts("flow.unlisted_listening_port").size() == 1);

  auto in = fx.flow(PACS, 40002, CT, 5000);
  auto v2 = fx.judge_flow(in);
  CHECK(v2.verdict == "forbidden");
  CHECK(v2.rule == "flow.unlisted_listening_port");
  auto l = fx.alerts("flow.unlisted_listening_port");
  REQUIRE(l.size() == 2);
  CHECK(l[1]["alert"]["device"] == "ct-1");
  CHECK(Fixture::cites(l[1], "SAHD-8"));

  auto web = fx.flow(WS, 40003, CT, 8443);
  web.ndpi_protocol = "TLS";
  auto v3 = fx.judge_flow(web);
  CHECK(v3.rule == "service-web");
  CHECK(fx.alerts("flow.disabled_by_default").size() == 1);
}

TEST_CASE("unknown peers, fan-out and port scans from a device", "[judge]") {
  Fixture fx;
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.20.0." + std::to_string(i);
    auto f = fx.flow(CT, static_cast<uint16_t>(41000 + i), ip.c_str(), 104);
    fx.judge_flow(f);
  }
  CHECK(fx.alerts("lateral.fan_out").size() == 1);
  CHECK(fx.alerts("lateral.new_peer").size() == 40);
  for (int p = 1; p <= 30; ++p) {
    auto f = fx.flow(CT, static_cast<uint16_t>(42000 + p), PACS, static_cast<uint16_t>(1000 + p));
    fx.judge_flow(f);
  }
  auto scans = fx.alerts("lateral.port_scan");
  REQUIRE(scans.size() == 1);
  CHECK(scans[0]["alert"]["peer"] == PACS);
  CHECK(Fixture::cites(scans[0], "SAHD-8"));
}

TEST_CASE("a fan-out is one service reached on many hosts, not many hosts on any service", "[judge]") {
  Fixture fx;  // demo site: fanout_hosts 32, scan_ports 8
  // 40 hosts, each on a service of its own (a gateway polling its devices, each on its own port):
  // no address sweep, and no host was tried on more than one port.
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.20.0." + std::to_string(i);
    fx.judge_flow(fx.flow(CT, static_cast<uint16_t>(41000 + i), ip.c_str(), static_cast<uint16_t>(3000 + i)));
  }
  CHECK(fx.alerts("lateral.fan_out").empty());
  CHECK(fx.alerts("lateral.port_scan").empty());
  // 40 hosts on SMB: the worm's sweep.
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.21.0." + std::to_string(i);
    fx.judge_flow(fx.flow(CT, static_cast<uint16_t>(42000 + i), ip.c_str(), 445));
  }
  auto fan = fx.alerts("lateral.fan_out");
  REQUIRE(fan.size() == 1);
  CHECK(fan[0]["alert"]["peer"] == "*");
  CHECK(fan[0]["alert"]["evidence"]["distinct_hosts"] == "33");
  CHECK(fan[0]["alert"]["evidence"]["server_port"] == "445");
  CHECK(fan[0]["alert"]["evidence"]["proto"] == "tcp");
  CHECK(fan[0]["alert"]["message"].get<std::string>().find("tcp/445") != std::string::npos);
  // RDP swept at the same time is a finding of its own (the SMB one does not hide it).
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.22.0." + std::to_string(i);
    fx.judge_flow(fx.flow(CT, static_cast<uint16_t>(43000 + i), ip.c_str(), 3389));
  }
  fan = fx.alerts("lateral.fan_out");
  REQUIRE(fan.size() == 2);
  CHECK(fan[1]["alert"]["evidence"]["server_port"] == "3389");
  // The same port over UDP is another service.
  for (int i = 1; i <= 20; ++i) {
    std::string ip = "10.23.0." + std::to_string(i);
    fx.judge_flow(fx.flow(CT, 50000, ip.c_str(), 445, 17));
  }
  CHECK(fx.alerts("lateral.fan_out").size() == 2);
}

TEST_CASE("a port scan of a device by a host that is no device of the site", "[judge]") {
  Fixture fx;  // demo site: scan_ports 8
  for (int p = 1; p <= 12; ++p) fx.judge_flow(fx.flow("10.10.1.77", 42000, CT, static_cast<uint16_t>(1000 + p)));
  auto scans = fx.alerts("lateral.port_scan");
  REQUIRE(scans.size() == 1);
  CHECK(scans[0]["alert"]["device"] == "ct-1");
  CHECK(scans[0]["alert"]["peer"] == "10.10.1.77");
  CHECK(scans[0]["alert"]["evidence"]["distinct_ports"] == "9");
  CHECK(scans[0]["alert"]["evidence"]["direction"] == "inbound");
  CHECK(Fixture::cites(scans[0], "SAHD-8"));
  // Ten minutes later, again: a repeat within scan_realert_s.
  fx.t += 600ll * 1000000;
  for (int p = 1; p <= 12; ++p) fx.judge_flow(fx.flow("10.10.1.77", 42000, CT, static_cast<uint16_t>(2000 + p)));
  CHECK(fx.alerts("lateral.port_scan").size() == 1);
  // A device scanning another is the scanning device's finding, written once.
  for (int p = 1; p <= 12; ++p) fx.judge_flow(fx.flow(CT, 42000, PACS, static_cast<uint16_t>(3000 + p)));
  scans = fx.alerts("lateral.port_scan");
  REQUIRE(scans.size() == 2);
  CHECK(scans[1]["alert"]["device"] == "ct-1");
  CHECK(scans[1]["alert"]["peer"] == PACS);
}

TEST_CASE("a fan-out by a host that is no device of the site, reaching a device", "[judge]") {
  Fixture fx;  // demo site: fanout_hosts 32; ct-1 at 10.10.1.10, glucose-dock-1 at 10.10.1.60
  // 40 hosts on DICOM, the CT and the dock among them, by a host bound to no device.
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.10.1." + std::to_string(i == 5 ? 10 : i == 20 ? 60 : 100 + i);
    fx.judge_flow(fx.flow("10.10.9.77", static_cast<uint16_t>(42000 + i), ip.c_str(), 104));
  }
  auto fan = fx.alerts("lateral.fan_out");
  REQUIRE(fan.size() == 1);
  CHECK(fan[0]["alert"]["device"] == "glucose-dock-1");  // the device reached last
  CHECK(fan[0]["alert"]["peer"] == "10.10.9.77");
  CHECK(fan[0]["alert"]["evidence"]["distinct_hosts"] == "33");
  CHECK(fan[0]["alert"]["evidence"]["server_port"] == "104");
  CHECK(fan[0]["alert"]["evidence"]["direction"] == "inbound");
  CHECK(Fixture::cites(fan[0], "SAHD-8"));
  // Ten minutes later, again: a repeat within scan_realert_s.
  fx.t += 600ll * 1000000;
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.10.1." + std::to_string(i == 5 ? 10 : 100 + i);
    fx.judge_flow(fx.flow("10.10.9.77", static_cast<uint16_t>(43000 + i), ip.c_str(), 104));
  }
  CHECK(fx.alerts("lateral.fan_out").size() == 1);
  // A sweep that reaches no device, and one of hosts outside the site, are not the site's findings.
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.30.0." + std::to_string(i);
    fx.judge_flow(fx.flow("10.10.9.78", static_cast<uint16_t>(42000 + i), ip.c_str(), 445));
    std::string out_ip = "198.51.100." + std::to_string(i);
    fx.judge_flow(fx.flow("10.10.9.79", static_cast<uint16_t>(42000 + i), i == 1 ? CT : out_ip.c_str(), 443));
  }
  CHECK(fx.alerts("lateral.fan_out").size() == 1);
}

TEST_CASE("the fan-out state of hosts that are no device is bounded and counted", "[judge]") {
  Fixture fx;
  // 70 000 hosts each reaching one other, within the scan window: past 65 536 held, counted.
  const int64_t at = fx.t;
  for (int i = 0; i < 70000; ++i) {
    std::string src = "10." + std::to_string(40 + i / 62500) + "." + std::to_string(i / 250 % 250) + "." +
                      std::to_string(i % 250 + 1);
    FlowSummary f = fx.flow(src.c_str(), 42000, "10.10.9.1", 445);
    f.start = {at};  // all at once: none goes stale
    fx.judge_flow(f);
  }
  fx.judge->finish(Timestamp{fx.t}, fx.out);
  CHECK(fx.out.counters().get("policy.sweepers_full") == 70000 - 65536);
}

TEST_CASE("fan-out and port scans count within a window and are written again for a later burst", "[judge]") {
  Fixture fx;  // demo site: fanout_hosts 32, scan_ports 8; default window 300 s, realert 3600 s
  const int64_t hour = 3600ll * 1000000;
  auto sweep = [&](int hosts, int base) {
    for (int i = 0; i < hosts; ++i) {
      std::string ip = "10.20." + std::to_string(base) + "." + std::to_string(i + 1);
      fx.judge_flow(fx.flow(CT, static_cast<uint16_t>(41000 + i), ip.c_str(), 104));
    }
  };
  auto probe = [&](int ports, uint16_t first) {
    for (int p = 0; p < ports; ++p) fx.judge_flow(fx.flow(CT, 42000, PACS, static_cast<uint16_t>(first + p)));
  };
  // One new host and one new port a day for 40 days: never a sweep.
  for (int d = 0; d < 40; ++d) {
    fx.t += 24 * hour;
    std::string ip = "10.30.0." + std::to_string(d + 1);
    fx.judge_flow(fx.flow(CT, 40000, ip.c_str(), 104));
    fx.judge_flow(fx.flow(CT, 40001, PACS, static_cast<uint16_t>(5000 + d)));
  }
  CHECK(fx.alerts("lateral.fan_out").empty());
  CHECK(fx.alerts("lateral.port_scan").empty());
  // Then a real sweep and a real scan, a second apart each flow.
  sweep(40, 1);
  probe(12, 6000);
  REQUIRE(fx.alerts("lateral.fan_out").size() == 1);
  CHECK(fx.alerts("lateral.fan_out")[0]["alert"]["evidence"]["distinct_hosts"] == "33");
  REQUIRE(fx.alerts("lateral.port_scan").size() == 1);
  CHECK(fx.alerts("lateral.port_scan")[0]["alert"]["evidence"]["distinct_ports"] == "9");
  // Ten minutes later the same again: within scan_realert_s of the alerts, repeats.
  fx.t += hour / 6;
  sweep(40, 2);
  probe(12, 7000);
  CHECK(fx.alerts("lateral.fan_out").size() == 1);
  CHECK(fx.alerts("lateral.port_scan").size() == 1);
  CHECK(fx.out.counters().get("policy.alert_repeats") >= 2);
  // Two hours after the first: a new burst is a new finding.
  fx.t += 2 * hour;
  sweep(40, 3);
  probe(12, 8000);
  CHECK(fx.alerts("lateral.fan_out").size() == 2);
  CHECK(fx.alerts("lateral.port_scan").size() == 2);
}

TEST_CASE("the scan window and the realert interval are the site's thresholds", "[judge]") {
  Fixture fx(Fixture::Edits{{"reject_window_s: 60", "reject_window_s: 60\n  scan_window_s: 86400\n  scan_realert_s: 0"}});
  const int64_t hour = 3600ll * 1000000;
  // One new host every half hour: 33 within a day is a fan-out when the window is a day.
  for (int i = 0; i < 33; ++i) {
    fx.t += hour / 2;
    std::string ip = "10.20.0." + std::to_string(i + 1);
    fx.judge_flow(fx.flow(CT, 40000, ip.c_str(), 104));
  }
  CHECK(fx.alerts("lateral.fan_out").size() == 1);
  // No realert interval: the next 33 hosts are the next alert.
  for (int i = 0; i < 33; ++i) {
    std::string ip = "10.20.1." + std::to_string(i + 1);
    fx.judge_flow(fx.flow(CT, 40000, ip.c_str(), 104));
  }
  CHECK(fx.alerts("lateral.fan_out").size() == 2);
}

TEST_CASE("alerts of one rule for one device are limited per window, verdicts are not", "[judge]") {
  Fixture fx(Fixture::Edits{{"reject_window_s: 60", "reject_window_s: 60\n  alert_limit: 3\n  alert_limit_window_s: 60"}});
  const int64_t sec = 1000000;
  // Ten new peers in ten seconds: three lateral.new_peer alerts, one policy.rate_limited for it.
  for (int i = 0; i < 10; ++i) {
    fx.t += sec;
    std::string ip = "10.20.0." + std::to_string(i + 1);
    CHECK(fx.judge_flow(fx.flow(CT, static_cast<uint16_t>(40000 + i), ip.c_str(), 104)).verdict == "undeclared");
  }
  CHECK(fx.alerts("lateral.new_peer").size() == 3);
  auto noted = fx.alerts("policy.rate_limited");
  bool new_peer_noted = false;
  for (auto& a : noted) {
    CHECK(a["alert"]["device"] == "ct-1");
    if (a["alert"]["peer"] == "lateral.new_peer") new_peer_noted = true;
  }
  CHECK(new_peer_noted);
  CHECK(fx.out.counters().get("policy.alerts_rate_limited") >= 7);
  // A window later: written again, saying how many were held back.
  fx.t += 61 * sec;
  fx.judge_flow(fx.flow(CT, 41000, "10.20.1.1", 104));
  auto peers = fx.alerts("lateral.new_peer");
  REQUIRE(peers.size() == 4);
  CHECK(peers[3]["alert"]["evidence"]["rate_limited_before"] == "7");
}

TEST_CASE("per-peer state of the scan and reject detectors is bounded and counted", "[judge]") {
  Fixture fx;
  // Port-scan state: one port list per peer, for fanout_hosts * 2 + 64 = 128 peers per device.
  for (int i = 0; i < 300; ++i) {
    std::string ip = "10.30." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    auto f = fx.flow(CT, static_cast<uint16_t>(20000 + i), ip.c_str(), 104);
    fx.judge_flow(f);
  }
  // Reject bursts: sources remembered up to 4096, then the table starts over.
  for (int i = 0; i < 4200; ++i) {
    std::string ip = "10.40." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    auto r = fx.flow(ip.c_str(), 43000, PACS, 11112);
    fx.add_facts(r, "dicom").set_attr("dicom.result", "rejected");
    fx.judge_flow(r);
  }
  fx.judge->finish(Timestamp{fx.t}, fx.out);
  CHECK(fx.out.counters().get("policy.scan_peers_full") == 300 - 129);
  // The 4200 clients of the PACS, a second apart: the ports each tried of it are kept for at most
  // 128 + 1 of them at a time, the others counted.
  CHECK(fx.out.counters().get("policy.scanners_full") > 1000);
  CHECK(fx.out.counters().get("policy.scanners_full") < 4200);
  // Hosts not tried again for longer than the scan window give their room to new ones.
  Fixture slow;
  for (int i = 0; i < 300; ++i) {
    slow.t += 60ll * 1000000;
    std::string ip = "10.30." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
    slow.judge_flow(slow.flow(CT, static_cast<uint16_t>(20000 + i), ip.c_str(), 104));
  }
  slow.judge->finish(Timestamp{slow.t}, slow.out);
  CHECK(slow.out.counters().get("policy.scan_peers_full") == 0);
  CHECK(fx.out.counters().get("policy.reject_sources_reset") == 1);
  CHECK(fx.out.counters().get("policy.alert_memory_full") == 0);
}

TEST_CASE("the fan-out detector's services and hosts are bounded and counted", "[judge]") {
  // A day's window: nothing goes stale. 100 services, 50 hosts each (none past fanout_hosts 32 on
  // one service): scan_ports * 2 + 64 = 80 services are tracked, hosts of the others counted.
  Fixture fx(Fixture::Edits{{"scan_ports: 8", "scan_ports: 100\n  scan_window_s: 86400"}});
  for (int h = 0; h < 20; ++h)
    for (int p = 0; p < 100; ++p) {
      std::string ip = "10.30.0." + std::to_string(h + 1);
      fx.judge_flow(fx.flow(CT, 40000, ip.c_str(), static_cast<uint16_t>(20000 + p)));
    }
  fx.judge->finish(Timestamp{fx.t}, fx.out);
  CHECK(fx.alerts("lateral.fan_out").empty());
  // scan_ports 100: 264 services; 20 hosts on each of 100 services is 2000 host entries, within
  // fanout_hosts * 2 + 4096.
  CHECK(fx.out.counters().get("policy.scan_peers_full") == 0);
  Fixture few(Fixture::Edits{{"reject_window_s: 60", "reject_window_s: 60\n  scan_window_s: 86400"}});
  for (int h = 0; h < 2; ++h)
    for (int p = 0; p < 100; ++p) {
      std::string ip = "10.30.0." + std::to_string(h + 1);
      few.judge_flow(few.flow(CT, 40000, ip.c_str(), static_cast<uint16_t>(20000 + p)));
    }
  few.judge->finish(Timestamp{few.t}, few.out);
  // 81 services tracked (the 82nd is refused), each host's flows to the 19 others not counted.
  CHECK(few.out.counters().get("policy.scan_peers_full") == 2 * 19);
}

TEST_CASE("DICOM: AE spoofing, AE from a new address, reject bursts", "[judge]") {
  Fixture fx;
  auto f = fx.flow("10.10.1.77", 40001, PACS, 11112);
  fx.add_facts(f, "dicom").set_attr("dicom.calling_ae", "CT01");
  fx.judge_flow(f);
  auto sp = fx.alerts("dicom.ae_spoofing");
  REQUIRE(sp.size() == 1);
  CHECK(Fixture::cites(sp[0], "NAUT-1"));
  CHECK(sp[0]["alert"]["evidence"]["calling_ae"] == "CT01");

  // The real CT with its own AE: no spoofing.
  auto ok = fx.flow(CT, 40002, PACS, 11112);
  fx.add_facts(ok, "dicom").set_attr("dicom.calling_ae", "CT01");
  fx.judge_flow(ok);
  CHECK(fx.alerts("dicom.ae_spoofing").size() == 1);

  auto a1 = fx.flow("10.10.1.70", 40003, PACS, 11112);
  fx.add_facts(a1, "dicom").set_attr("dicom.calling_ae", "US01");
  fx.judge_flow(a1);
  CHECK(fx.alerts("dicom.ae_new_ip").empty());
  auto a2 = fx.flow("10.10.1.71", 40004, PACS, 11112);
  fx.add_facts(a2, "dicom").set_attr("dicom.calling_ae", "US01");
  fx.judge_flow(a2);
  CHECK(fx.alerts("dicom.ae_new_ip").size() == 1);

  for (int i = 0; i < 4; ++i) {
    auto r = fx.flow("10.10.1.66", static_cast<uint16_t>(43000 + i), PACS, 11112);
    auto& rf = fx.add_facts(r, "dicom");
    rf.set_attr("dicom.calling_ae", "GUESS" + std::to_string(i));
    rf.set_attr("dicom.result", "rejected");
    fx.judge_flow(r);
  }
  CHECK(fx.alerts("dicom.reject_burst").empty());
  auto r = fx.flow("10.10.1.66", 43010, PACS, 11112);
  fx.add_facts(r, "dicom").set_attr("dicom.result", "rejected");
  fx.judge_flow(r);
  CHECK(fx.alerts("dicom.reject_burst").size() == 1);
}

TEST_CASE("DICOM: a model's default AE title is bound to the devices that run it", "[judge]") {
  const std::string model = R"(schema: medmon.model/v1
model: {id: test-us}
dicom:
  ae_titles: [US_DEFAULT]
)";
  Fixture fx(Fixture::Edits{{"devices:\n", "devices:\n  - {name: us-1, model: test-us, ip: 10.10.1.70, zone: modality}\n"}},
             model);
  auto own = fx.flow("10.10.1.70", 40001, PACS, 11112);
  fx.add_facts(own, "dicom").set_attr("dicom.calling_ae", "US_DEFAULT");
  fx.judge_flow(own);
  CHECK(fx.alerts("dicom.ae_spoofing").empty());
  auto other = fx.flow("10.10.1.77", 40002, PACS, 11112);
  fx.add_facts(other, "dicom").set_attr("dicom.calling_ae", "US_DEFAULT");
  fx.judge_flow(other);
  auto sp = fx.alerts("dicom.ae_spoofing");
  REQUIRE(sp.size() == 1);
  CHECK(sp[0]["alert"]["peer"] == "US_DEFAULT@10.10.1.77");
}

TEST_CASE("DICOM: an AE title of a role bound to a network is bound to the whole range", "[judge]") {
  Fixture fx(Fixture::Edits{{"{role: reading_ws, ips: [10.10.4.40]", "{role: reading_ws, ips: [10.10.4.0/24]"}});
  // Any workstation of the reading room may call as WS01 ...
  auto ws = fx.flow(WS, 40001, PACS, 11112);
  fx.add_facts(ws, "dicom").set_attr("dicom.calling_ae", "WS01");
  fx.judge_flow(ws);
  auto ws2 = fx.flow("10.10.4.41", 40002, PACS, 11112);
  fx.add_facts(ws2, "dicom").set_attr("dicom.calling_ae", "WS01");
  fx.judge_flow(ws2);
  CHECK(fx.alerts("dicom.ae_spoofing").empty());
  // ... but not a host outside it.
  auto other = fx.flow("10.10.1.77", 40003, PACS, 11112);
  fx.add_facts(other, "dicom").set_attr("dicom.calling_ae", "WS01");
  fx.judge_flow(other);
  auto sp = fx.alerts("dicom.ae_spoofing");
  REQUIRE(sp.size() == 1);
  CHECK(sp[0]["alert"]["peer"] == "WS01@10.10.1.77");
}

TEST_CASE("DICOM: C-MOVE destinations, DIMSE direction, SOP classes, passwords", "[judge]") {
  Fixture fx;
  auto good = fx.flow(WS, 40001, PACS, 11112);
  auto& g = fx.add_facts(good, "dicom");
  g.set_attr("dicom.calling_ae", "WS01");
  g.set_attr("dicom.move_destination", "WS01");
  g.set_attr("dicom.commands", "C-FIND,C-MOVE");
  fx.judge_flow(good);
  CHECK(fx.alerts().empty());

  auto bad = fx.flow(WS, 40002, PACS, 11112);
  auto& b = fx.add_facts(bad, "dicom");
  b.set_attr("dicom.calling_ae", "WS01");
  b.set_attr("dicom.move_destination", "EXFIL1");
  fx.judge_flow(bad);
  auto mv = fx.alerts("dicom.move_destination_undeclared");
  REQUIRE(mv.size() == 1);
  CHECK(mv[0]["alert"]["evidence"]["move_destination"] == "EXFIL1");
  CHECK(Fixture::cites(mv[0], "TXCF-3"));

  auto get = fx.flow(CT, 40003, PACS, 11112);
  auto& gf = fx.add_facts(get, "dicom");
  gf.set_attr("dicom.calling_ae", "CT01");
  gf.set_attr("dicom.commands", "C-STORE,C-GET");
  gf.set_attr("dicom.sop_classes", "1.2.840.10008.5.1.4.1.1.2,1.2.840.10008.5.1.4.1.1.4");
  fx.judge_flow(get);
  auto dimse = fx.alerts("dicom.dimse_undeclared");
  REQUIRE(dimse.size() == 2);  // C-GET is neither the CT's dimse_out nor the PACS's dimse_in
  CHECK(dimse[0]["alert"]["evidence"]["commands"] == "C-GET");
  auto sop = fx.alerts("dicom.sop_class_undeclared");
  REQUIRE(!sop.empty());
  CHECK(sop[0]["alert"]["evidence"]["sop_classes"] == "1.2.840.10008.5.1.4.1.1.4");

  auto pw = fx.flow(WS, 40004, PACS, 11112);
  auto& p = fx.add_facts(pw, "dicom");
  p.set_attr("dicom.calling_ae", "WS01");
  p.set_attr("dicom.password_in_clear", "true");
  fx.judge_flow(pw);
  CHECK(fx.alerts("dicom.cleartext_password").size() == 1);
  auto pw2 = fx.flow(WS, 40005, PACS, 2762);
  auto& p2 = fx.add_facts(pw2, "dicom");
  p2.tls = true;
  p2.set_attr("dicom.password_in_clear", "true");
  fx.judge_flow(pw2);
  CHECK(fx.alerts("dicom.cleartext_password").size() == 1);
  // A Kerberos ticket, SAML assertion or JWT in clear is a credential in clear as well.
  Fixture fresh;  // a repeat of the finding above would be folded into it
  auto jwt = fresh.flow(WS, 40006, PACS, 11112);
  auto& p3 = fresh.add_facts(jwt, "dicom");
  p3.set_attr("dicom.calling_ae", "WS01");
  p3.set_attr("dicom.credential_in_clear", "true");
  fresh.judge_flow(jwt);
  auto creds = fresh.alerts("dicom.cleartext_password");
  REQUIRE(creds.size() == 1);
  CHECK(creds[0]["alert"]["message"].get<std::string>().find("ticket, assertion or token") != std::string::npos);
}

TEST_CASE("HL7: unbound sender, undeclared type, test messages on production", "[judge]") {
  Fixture fx;
  auto f = fx.flow("10.10.3.31", 50000, PACS, 2575);
  auto& h = fx.add_facts(f, "hl7");
  h.set_attr("hl7.msh3", "RIS");
  h.set_attr("hl7.message_types", "ORM^O01");
  fx.judge_flow(f);
  REQUIRE(fx.alerts("hl7.sender_unbound").size() == 1);

  auto g = fx.flow(RIS, 50001, PACS, 2575);
  auto& h2 = fx.add_facts(g, "hl7");
  h2.set_attr("hl7.msh3", "EVIL");
  h2.set_attr("hl7.message_types", "ORU^R01");
  h2.set_attr("hl7.processing_id", "T");
  fx.judge_flow(g);
  CHECK(fx.alerts("hl7.sender_unbound").size() == 2);
  auto t = fx.alerts("hl7.message_type_undeclared");
  REQUIRE(t.size() == 1);
  CHECK(t[0]["alert"]["evidence"]["message_types"] == "ORU^R01");
  CHECK(fx.alerts("hl7.test_on_production").size() == 1);
}

TEST_CASE("an empty baseline file (a clean run's alerts) accepts nothing and is no error", "[judge]") {
  std::string path = "/tmp/medmon-empty-baseline-" + std::to_string(::getpid()) + ".jsonl";
  for (const char* text : {"", "\n  \n"}) {
    std::ofstream(path) << text;
    Errors errs;
    JudgeOptions opt;
    opt.baseline_path = path;
    auto judge = PolicyJudge::load(std::string(POLICIES_DIR) + "/sites/demo-site.yaml", std::string(POLICIES_DIR) + "/devices",
                                   opt, errs);
    CHECK(judge);
    CHECK(errs.list.empty());
  }
  std::remove(path.c_str());
}

TEST_CASE("CI mode: baseline suppresses accepted alerts; repeats are written once", "[judge]") {
  Fixture fx;
  fx.judge->accept("lateral.admin_protocol", "ct-1", "10.10.1.99");
  auto smb = fx.flow(CT, 40001, "10.10.1.99", 445);
  smb.ndpi_protocol = "SMBv23";
  fx.judge_flow(smb);
  CHECK(fx.alerts("lateral.admin_protocol").empty());
  CHECK(fx.judge->alerts_suppressed() == 1);
  // The same accepted finding again: a repeat, not a second suppressed alert.
  auto smb2 = fx.flow(CT, 40011, "10.10.1.99", 445);
  smb2.ndpi_protocol = "SMBv23";
  fx.judge_flow(smb2);
  CHECK(fx.judge->alerts_suppressed() == 1);
  CHECK(fx.out.counters().at("policy.alerts_baselined") == 1);
  // Same finding twice: one alert line.
  for (int i = 0; i < 2; ++i) {
    auto s2 = fx.flow(CT, static_cast<uint16_t>(40002 + i), "10.10.1.98", 445);
    s2.ndpi_protocol = "SMBv1";
    fx.judge_flow(s2);
  }
  CHECK(fx.alerts("lateral.admin_protocol").size() == 1);
  CHECK(fx.judge->exit_code(Severity::high) == 1);
  CHECK(fx.judge->exit_code(Severity::critical) == 0);
}

TEST_CASE("a thousand declared TLS stores are judged without a finding", "[judge]") {
  // How long evaluation takes is measured by the benchmark's policy step (bench/ladder.sh), not here.
  Fixture fx;
  for (int i = 0; i < 1000; ++i) {
    auto f = fx.flow(CT, static_cast<uint16_t>(30000 + i), PACS, 11112);
    f.ndpi_protocol = "TLS";
    fx.judge->judge(f, fx.out);
  }
  CHECK(fx.alerts().empty());
}

TEST_CASE("a forked judge shares the policy but not the state", "[judge]") {
  Fixture fx;
  auto smb = fx.flow(CT, 40001, "10.10.1.99", 445);
  smb.ndpi_protocol = "SMBv23";
  fx.judge_flow(smb);
  auto other = fx.judge->fork();
  other->judge(smb, fx.out);  // its own dedup: written again
  CHECK(fx.alerts("lateral.admin_protocol").size() == 2);
  CHECK(&other->site() == &fx.judge->site());
}

TEST_CASE("forks that share the state see a scan spread over them whole, and alert once", "[judge]") {
  // Two workers of a live sensor: the fanout hash gives each about half of a device's flows.
  for (bool share : {true, false}) {
    Fixture fx;
    auto w1 = fx.judge->fork(share), w2 = fx.judge->fork(share);
    for (int p = 1; p <= 12; ++p) {
      auto f = fx.flow(CT, static_cast<uint16_t>(42000 + p), PACS, static_cast<uint16_t>(1000 + p));
      (p % 2 ? w1 : w2)->judge(f, fx.out);
    }
    for (int i = 1; i <= 40; ++i) {
      std::string ip = "10.20.0." + std::to_string(i);
      auto f = fx.flow(CT, static_cast<uint16_t>(41000 + i), ip.c_str(), 104);
      (i % 2 ? w1 : w2)->judge(f, fx.out);
    }
    auto smb = fx.flow(CT, 40001, "10.10.1.99", 445);
    smb.ndpi_protocol = "SMBv23";
    w1->judge(smb, fx.out);
    w2->judge(smb, fx.out);
    INFO("shared state: " << share);
    // 12 ports (scan_ports: 8) and 40 hosts (fanout_hosts: 32) cross the demo site's thresholds
    // only when counted together.
    CHECK(fx.alerts("lateral.port_scan").size() == (share ? 1u : 0u));
    CHECK(fx.alerts("lateral.fan_out").size() == (share ? 1u : 0u));
    CHECK(fx.alerts("lateral.admin_protocol").size() == (share ? 1u : 2u));
  }
}

TEST_CASE("forks that share the state may judge from several threads at once", "[judge]") {
  Fixture fx;
  std::vector<std::unique_ptr<PolicyJudge>> w;
  std::vector<EventOutput> outs(4);
  std::vector<std::vector<FlowSummary>> flows(4);
  for (int k = 0; k < 4; ++k) {
    w.push_back(fx.judge->fork(true));
    for (int i = 0; i < 500; ++i) {
      std::string ip = "10.20." + std::to_string(k) + "." + std::to_string(i % 250 + 1);
      flows[k].push_back(fx.flow(CT, static_cast<uint16_t>(20000 + i), ip.c_str(), 445));
    }
  }
  auto sink = std::make_shared<MemorySink>();
  for (auto& o : outs) o.add_sink(sink);
  {
    std::vector<std::thread> t;
    for (int k = 0; k < 4; ++k) t.emplace_back([&, k] { for (auto& f : flows[k]) w[k]->judge(f, outs[k]); });
    for (auto& th : t) th.join();
  }
  size_t fanout = 0;
  for (size_t i = 0; i < sink->lines.size(); ++i)
    if (sink->types[i] == "alert" && json::parse(sink->lines[i])["alert"]["rule"] == "lateral.fan_out") ++fanout;
  CHECK(fanout == 1);
}

TEST_CASE("DICOM behind TLS recognised by the sensor counts as DICOM and as encrypted", "[judge]") {
  Fixture fx;
  auto f = fx.flow(CT, 40001, PACS, 2762);
  fx.add_facts(f, "dicom-tls");
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "dicom-store");
  CHECK(fx.alerts().empty());
}

TEST_CASE("a device bound by fingerprint instead of address", "[judge]") {
  std::string dir = std::string(POLICIES_DIR);
  std::string path = "/tmp/medmon-fp-site-" + std::to_string(::getpid()) + ".yaml";
  {
    std::ofstream o(path);
    o << "schema: medmon.site/v1\nmodels: [" << dir << "/devices/acme-ct.yaml]\ninternal_networks: [10.0.0.0/8]\n"
         "zones:\n  - {name: modality, cidrs: [10.10.1.0/24]}\n  - {name: pacs, cidrs: [10.10.2.0/24]}\n"
         "  - {name: his, cidrs: [10.10.3.0/24]}\n  - {name: infra, cidrs: [10.10.0.0/24]}\n"
         "zone_matrix: [{from: modality, to: pacs}]\n"
         "roles:\n  - {role: pacs, ips: [10.10.2.20], ports: [11112]}\n  - {role: ris_mwl, ips: [10.10.3.30]}\n"
         "  - {role: his_ris, ips: [10.10.3.30]}\n  - {role: ntp, ips: [10.10.0.123]}\n  - {role: dns, ips: [10.10.0.53]}\n"
         "devices:\n  - {name: mobile-ct, model: acme-ct, fingerprint: {dicom_calling_ae: [CTMOBILE]}}\n";
  }
  Errors errs;
  auto judge = PolicyJudge::load(path, "", {}, errs);
  std::remove(path.c_str());
  for (auto& e : errs.list) INFO(e.format());
  REQUIRE(judge);
  EventOutput out;
  auto sink = std::make_shared<MemorySink>();
  out.add_sink(sink);
  FlowFacts facts;
  facts.app = "dicom";
  facts.set_attr("dicom.calling_ae", "CTMOBILE");
  facts.add_phi("PatientName");
  FlowSummary f;
  IpAddr::parse("10.10.1.77", f.ep.src);
  IpAddr::parse("10.10.2.20", f.ep.dst);
  f.ep.proto = 6;
  f.ep.dst_port = 11112;
  f.ep.flow_id = "FP1";
  f.payload_bytes = {100, 100};
  f.facts = &facts;
  auto v = judge->judge(f, out);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "dicom-store");
  // From now on the address is the device, even without the AE title: SSH from it is forbidden.
  FlowSummary ssh;
  IpAddr::parse("10.10.1.77", ssh.ep.src);
  IpAddr::parse("10.10.1.5", ssh.ep.dst);
  ssh.ep.proto = 6;
  ssh.ep.dst_port = 22;
  ssh.ep.flow_id = "FP2";
  ssh.ndpi_protocol = "SSH";
  auto v2 = judge->judge(ssh, out);
  CHECK(v2.verdict == "forbidden");
  CHECK(v2.mds2 == std::vector<std::string>{"RMOT-1"});
}

TEST_CASE("a device bound by MAC keeps its roles and AE titles", "[judge]") {
  Fixture fx(Fixture::Edits{{"ip: 10.10.1.10, ae_title: CT01", "mac: \"02:00:0a:0a:00:01\", ae_title: CT01"}});
  const std::array<uint8_t, 6> ct_mac{0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01}, other_mac{0x02, 0, 0, 0, 0, 0x77};
  // The CT stores in clear to the PACS: for the PACS it is a modality (the CT's roles:), so
  // dicom-store-in is declared and its PHI expected.
  auto f = fx.flow(CT, 40001, PACS, 11112);
  f.client_mac = ct_mac;
  auto& facts = fx.add_facts(f, "dicom");
  facts.set_attr("dicom.calling_ae", "CT01");
  facts.add_phi("PatientName");
  CHECK(fx.judge_flow(f).verdict == "declared");
  CHECK(fx.alerts("flow.undeclared").empty());
  for (auto& a : fx.alerts("phi.cleartext"))
    if (a["alert"]["device"] == "pacs-1") CHECK(a["alert"]["severity"] == "low");
  // Its AE title from its own address: no spoofing; from another host: spoofing.
  CHECK(fx.alerts("dicom.ae_spoofing").empty());
  auto spoof = fx.flow("10.10.1.77", 40002, PACS, 11112);
  spoof.client_mac = other_mac;
  fx.add_facts(spoof, "dicom").set_attr("dicom.calling_ae", "CT01");
  fx.judge_flow(spoof);
  auto sp = fx.alerts("dicom.ae_spoofing");
  REQUIRE(sp.size() == 1);
  CHECK(sp[0]["alert"]["peer"] == "CT01@10.10.1.77");
  CHECK(fx.alerts("dicom.ae_new_ip").empty());
}

TEST_CASE("each device of a flow has its own verdict and rule", "[judge]") {
  // The CT stores to the PACS over TLS: dicom-store for the CT, dicom-store-in for the PACS.
  Fixture fx;
  auto f = fx.flow(CT, 40001, PACS, 11112);
  f.ndpi_protocol = "TLS";
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "declared");
  CHECK(v.rule == "dicom-store");
  CHECK(v.side_verdict == std::array<std::string, 2>{"declared", "declared"});
  CHECK(v.side_rule == std::array<std::string, 2>{"dicom-store", "dicom-store-in"});
  // A CT whose model does not declare the store: undeclared for it, still declared for the PACS,
  // whose model declares the traffic (the flow keeps the worse of the two).
  Fixture ud(Fixture::Edits{{"{name: ct-1, model: acme-ct,", "{name: ct-1, model: nema-example-glucose,"}});
  auto g = ud.flow(CT, 40001, PACS, 11112);
  g.ndpi_protocol = "TLS";
  auto w = ud.judge_flow(g);
  CHECK(w.verdict == "undeclared");
  CHECK(w.rule == "flow.undeclared");
  CHECK(w.side_verdict == std::array<std::string, 2>{"undeclared", "declared"});
  CHECK(w.side_rule == std::array<std::string, 2>{"flow.undeclared", "dicom-store-in"});
  // A peer that is no device of the site has no side verdict.
  auto ntp = fx.flow(CT, 123, "10.10.0.123", 123, 17);
  ntp.ndpi_protocol = "NTP";
  auto n = fx.judge_flow(ntp);
  CHECK(n.side_verdict[0] == "declared");
  CHECK(n.side_verdict[1].empty());
}

TEST_CASE("a device bound by MAC is in its zone at an address no zone holds", "[judge]") {
  Fixture fx(Fixture::Edits{{"ip: 10.10.1.10, ae_title: CT01", "mac: \"02:00:0a:0a:00:01\", ae_title: CT01"}});
  const std::array<uint8_t, 6> ct_mac{0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01};
  // The CT (zone: modality) at 10.20.0.5, in no zone's cidrs, to a reading workstation.
  auto f = fx.flow("10.20.0.5", 40001, WS, 2575);
  f.client_mac = ct_mac;
  f.ep.src_mac = ct_mac;
  fx.judge_flow(f);
  auto z = fx.alerts("lateral.zone_crossing");
  REQUIRE(z.size() == 1);
  CHECK(z[0]["alert"]["device"] == "ct-1");
  CHECK(z[0]["alert"]["evidence"]["src_zone"] == "modality");
  CHECK(z[0]["src_zone"] == "modality");
  // Its model's zones judge the peer's zone as from any address: reading is not among them.
  CHECK(fx.alerts("lateral.zone_forbidden").size() == 1);
  // A PACS verification to the CT there: the PACS's model judges the CT's zone too.
  auto g = fx.flow(PACS, 40002, "10.20.0.5", 104);
  g.server_mac = ct_mac;
  g.ep.dst_mac = ct_mac;
  fx.judge_flow(g);
  CHECK(fx.alerts("lateral.zone_crossing").size() == 1);  // pacs -> modality is in the matrix
  fx.out.begin("flow", g.end, &g.ep).field("x", 1);
  fx.out.end();
  CHECK(json::parse(fx.sink->lines.back())["dst_zone"] == "modality");
}

TEST_CASE("event headers name a device bound by MAC", "[judge]") {
  Fixture fx(Fixture::Edits{{"ip: 10.10.1.10, ae_title: CT01", "mac: \"02:00:0a:0a:00:01\", ae_title: CT01"}});
  auto f = fx.flow(CT, 40001, PACS, 11112);
  f.ep.src_mac = {0x02, 0x00, 0x0a, 0x0a, 0x00, 0x01};
  auto& w = fx.out.begin("flow", f.end, &f.ep);
  w.field("x", 1);
  fx.out.end();
  json ev = json::parse(fx.sink->lines.back());
  CHECK(ev["src_device"] == "ct-1");
  CHECK(ev["dst_device"] == "pacs-1");
  // Another MAC at the same address is not the CT.
  auto g = fx.flow(CT, 40002, PACS, 11112);
  g.ep.src_mac = {0x02, 0, 0, 0, 0, 0x77};
  fx.out.begin("flow", g.end, &g.ep).field("x", 1);
  fx.out.end();
  ev = json::parse(fx.sink->lines.back());
  CHECK_FALSE(ev.contains("src_device"));
}

TEST_CASE("unbound host on a listed port; zone crossing without a device", "[judge]") {
  Fixture fx;
  // The PACS lists 11112 for modalities: an unknown client there is an undeclared peer, and
  // not a connection accepted on an unlisted port.
  auto f = fx.flow("10.10.1.77", 40001, PACS, 11112);
  fx.add_facts(f, "dicom");
  auto v = fx.judge_flow(f);
  CHECK(v.rule == "flow.undeclared");
  CHECK(fx.alerts("flow.unlisted_listening_port").empty());
  REQUIRE(fx.alerts("flow.undeclared").size() == 1);
  CHECK(fx.alerts("flow.undeclared")[0]["alert"]["device"] == "pacs-1");

  // his -> reading is not in the matrix and neither end is a device: low, from client to server.
  fx.judge_flow(fx.flow(RIS, 40002, WS, 11112));
  auto z = fx.alerts("lateral.zone_crossing");
  REQUIRE(z.size() == 1);
  CHECK(z[0]["alert"]["severity"] == "low");
  CHECK(z[0]["alert"]["device"] == RIS);
  CHECK(z[0]["alert"]["peer"] == WS);
}

TEST_CASE("c_get allowed: false reports C-GET served even without DIMSE lists; true allows it", "[judge]") {
  const char* gw = "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n";
  auto served = [](Fixture& fx) {
    auto f = fx.flow(WS, 41000, "10.10.1.30", 104);
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.calling_ae", "WS01");
    d.set_attr("dicom.commands", "C-ECHO,C-GET");
    fx.judge_flow(f);
    return fx.alerts("dicom.dimse_undeclared");
  };
  {
    Fixture fx({{"devices:\n", gw}}, "schema: medmon.model/v1\nmodel: {id: test-gateway}\ndicom:\n  c_get: {allowed: false}\n");
    auto a = served(fx);
    REQUIRE(a.size() == 1);
    CHECK(a[0]["alert"]["evidence"]["commands"] == "C-GET");  // C-ECHO: no list, not checked
    CHECK(a[0]["alert"]["message"].get<std::string>().find("c_get allowed: false") != std::string::npos);
  }
  {
    Fixture fx({{"devices:\n", gw}},
               "schema: medmon.model/v1\nmodel: {id: test-gateway}\ndicom:\n  dimse_in: [C-ECHO]\n  c_get: {allowed: true}\n");
    CHECK(served(fx).empty());
  }
  {
    Fixture fx({{"devices:\n", gw}}, "schema: medmon.model/v1\nmodel: {id: test-gateway}\ndicom:\n  dimse_in: [C-ECHO]\n");
    auto a = served(fx);  // no c_get key: the DIMSE list alone decides
    REQUIRE(a.size() == 1);
    CHECK(a[0]["alert"]["message"].get<std::string>().find("c_get") == std::string::npos);
  }
}

TEST_CASE("dicom user_identity: the requestor's identity type must be a declared one", "[judge]") {
  Fixture fx({{"devices:\n", "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-gateway}\ndicom:\n  user_identity: [none, kerberos]\n"
             "  source: [GW-DCS]\n");
  auto assoc = [&](uint16_t port, const char* identity, bool request_seen = true) {
    auto f = fx.flow(WS, port, "10.10.1.30", 104);
    auto& d = fx.add_facts(f, "dicom");
    if (request_seen) d.set_attr("dicom.calling_ae", "WS01");
    if (identity) d.set_attr("dicom.user_identity", identity);
    fx.judge_flow(f);
    return fx.alerts("dicom.user_identity_undeclared").size();
  };
  CHECK(assoc(41001, nullptr) == 0);             // none: declared
  CHECK(assoc(41002, "kerberos") == 0);
  CHECK(assoc(41003, "username_passcode") == 1);
  CHECK(assoc(41004, "username", false) == 1);   // request not seen: nothing known, nothing said
  auto a = fx.alerts("dicom.user_identity_undeclared");
  CHECK(a[0]["alert"]["evidence"]["user_identity"] == "username_passcode");
  CHECK(a[0]["alert"]["evidence"]["calling_ae"] == "WS01");
  auto f = fx.flow("10.10.4.41", 41005, "10.10.1.30", 104);  // another requestor: its own finding
  auto& d = fx.add_facts(f, "dicom");
  d.set_attr("dicom.calling_ae", "WS02");
  d.set_attr("dicom.user_identity", "jwt");
  fx.judge_flow(f);
  CHECK(fx.alerts("dicom.user_identity_undeclared").size() == 2);
}

TEST_CASE("zones allowed: an undeclared flow to a zone outside the list is forbidden", "[judge]") {
  Fixture fx;  // acme-ct allows modality, pacs, his, infra and never external
  auto f = fx.flow(CT, 42001, WS, 11112);  // reading zone
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "forbidden");
  CHECK(v.rule == "lateral.zone_forbidden");
  auto a = fx.alerts("lateral.zone_forbidden");
  REQUIRE(a.size() == 1);
  CHECK(a[0]["alert"]["evidence"]["peer_zone"] == "reading");
  auto g = fx.flow(CT, 42002, "10.10.1.99", 8080);  // its own zone: only undeclared
  CHECK(fx.judge_flow(g).rule == "flow.undeclared");
  auto h = fx.flow(CT, 42003, "10.20.0.5", 8080);   // internal, in no zone: not judged by zones
  CHECK(fx.judge_flow(h).rule == "flow.undeclared");
}

TEST_CASE("a device's zone places an address no zone's cidrs hold", "[judge]") {
  Fixture fx(Fixture::Edits{{"{name: glucose-dock-1, model: nema-example-glucose, ip: 10.10.1.60, zone: modality}",
                             "{name: glucose-dock-1, model: nema-example-glucose, ip: 10.10.1.60, zone: modality}\n"
                             "  - {name: ct-2, model: acme-ct, ip: 10.20.9.9, zone: modality, roles: [modality]}"}});
  auto f = fx.flow("10.20.9.9", 43001, PACS, 11112);
  f.ndpi_protocol = "TLS";
  CHECK(fx.judge_flow(f).verdict == "declared");
  CHECK(fx.alerts("lateral.zone_crossing").empty());  // modality -> pacs is in the matrix
  auto g = fx.flow("10.20.9.9", 43002, "10.20.9.10", 104);  // the neighbour is in no zone
  fx.judge_flow(g);
  CHECK(fx.alerts("lateral.zone_crossing").empty());
  auto h = fx.flow("10.20.9.9", 43003, WS, 104);
  fx.judge_flow(h);
  auto z = fx.alerts("lateral.zone_crossing");
  REQUIRE(z.size() == 1);
  CHECK(z[0]["alert"]["evidence"]["src_zone"] == "modality");
}

TEST_CASE("remote_service endpoints: server names outside the site must be declared ones", "[judge]") {
  Fixture fx;  // acme-pacs declares remote.acme-medical.example; vendor_remote is 198.51.100.7
  auto tls = [&](const char* dst, uint16_t port, const char* sni, const char* src = PACS) {
    auto f = fx.flow(src, port, dst, 443);
    f.ndpi_protocol = "TLS";
    f.sni = sni;
    fx.judge_flow(f);
    return fx.alerts("flow.remote_endpoint_undeclared").size();
  };
  CHECK(tls("198.51.100.7", 44001, "remote.acme-medical.example") == 0);
  CHECK(tls("198.51.100.7", 44002, "REMOTE.acme-medical.example.") == 0);  // case, final dot
  CHECK(tls("198.51.100.7", 44003, "") == 0);                              // no name: nothing to compare
  CHECK(tls("10.10.0.80", 44004, "files.exfil.example") == 0);             // inside the site
  CHECK(tls("198.51.100.7", 44005, "files.exfil.example") == 1);
  auto a = fx.alerts("flow.remote_endpoint_undeclared");
  CHECK(a[0]["alert"]["evidence"]["server_name"] == "files.exfil.example");
  CHECK(Fixture::cites(a[0], "RMOT-1"));
  CHECK(a[0]["alert"]["device"] == "pacs-1");
}

TEST_CASE("remote_service endpoints: a wildcard names the servers below a domain", "[judge]") {
  Fixture fx({{"devices:\n", "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-gateway}\n"
             "remote_service: {endpoints: [\"*.vendor.example\"]}\n");
  auto tls = [&](uint16_t port, const char* sni) {  // each to its own address: one finding per peer
    auto f = fx.flow("10.10.1.30", port, ("198.51.100." + std::to_string(port - 45000)).c_str(), 443);
    f.ndpi_protocol = "TLS";
    f.sni = sni;
    fx.judge_flow(f);
    return fx.alerts("flow.remote_endpoint_undeclared").size();
  };
  CHECK(tls(45001, "a.vendor.example") == 0);
  CHECK(tls(45002, "x.y.Vendor.Example") == 0);
  CHECK(tls(45003, "vendor.example") == 1);      // the wildcard is for names below it
  CHECK(tls(45004, "evilvendor.example") == 2);
}

TEST_CASE("TLS: a retired version and TLS from a device whose MDS2 says it has none", "[judge]") {
  const std::string model = R"(schema: medmon.model/v1
model: {id: test-no-tls}
mds2_derived:
  tls_supported: false
)";
  Fixture fx(Fixture::Edits{{"devices:\n", "devices:\n  - {name: pump-1, model: test-no-tls, ip: 10.10.1.70, zone: modality}\n"}},
             model);
  auto tls_flow = [&](const char* src, uint16_t sport, uint16_t version, const char* name) {
    auto f = fx.flow(src, sport, PACS, 2762);
    f.ndpi_protocol = "TLS";
    f.tls_ja3 = "78f0dc5ac5b19daf131a133cfdee9691";                 // the ClientHello
    if (version) f.tls_ja3s = "15af977ce25de452b96affa2addb1036";   // the ServerHello that chose it
    f.tls_version = version;
    f.tls_version_name = name;
    fx.judge_flow(f);
  };
  tls_flow(CT, 40001, 0x0303, "TLSv1.2");  // CONN-7 = Yes, a current version: nothing
  CHECK(fx.alerts("tls.unexpected").empty());
  CHECK(fx.alerts("tls.obsolete_version").empty());

  tls_flow(CT, 40002, 0x0301, "TLSv1");
  auto old = fx.alerts("tls.obsolete_version");
  REQUIRE(old.size() == 2);  // the CT offered it, the PACS (a device too) accepted it
  CHECK(old[0]["alert"]["device"] == "ct-1");
  CHECK(old[1]["alert"]["device"] == "pacs-1");
  CHECK(old[0]["alert"]["severity"] == "medium");
  CHECK(old[0]["alert"]["evidence"]["tls_version"] == "TLSv1");
  CHECK(Fixture::cites(old[0], "CONN-7"));
  CHECK(Fixture::cites(old[0], "TXCF-5"));  // acme-ct: secure transmission = Yes

  tls_flow("10.10.1.70", 40003, 0x0304, "TLSv1.3");
  auto unexpected = fx.alerts("tls.unexpected");
  REQUIRE(unexpected.size() == 1);
  CHECK(unexpected[0]["alert"]["device"] == "pump-1");
  CHECK(unexpected[0]["alert"]["severity"] == "low");
  CHECK(Fixture::cites(unexpected[0], "CONN-7"));
  CHECK(fx.alerts("tls.obsolete_version").size() == 2);

  // A ClientHello nobody answered (no version negotiated) is still TLS spoken by the device.
  tls_flow("10.10.1.70", 40004, 0, "");
  CHECK(fx.alerts("tls.unexpected").size() == 1);  // once per (rule, device, peer)
  // A ClientHello to the device that it never answered is not the device speaking TLS.
  auto probe = fx.flow(CT, 40005, "10.10.1.70", 443);
  probe.ndpi_protocol = "TLS";
  probe.tls_ja3 = "78f0dc5ac5b19daf131a133cfdee9691";
  fx.judge_flow(probe);
  CHECK(fx.alerts("tls.unexpected").size() == 1);
}

TEST_CASE("ICMP is infrastructure: a ping is no internal flow a CONN-3 = No device is refused", "[judge]") {
  const std::string model = R"(schema: medmon.model/v1
model: {id: test-isolated}
mds2_derived:
  communicates_internal: false
)";
  Fixture fx(Fixture::Edits{{"devices:\n", "devices:\n  - {name: dock-1, model: test-isolated, ip: 10.10.1.70, zone: modality}\n"}},
             model);
  for (uint8_t proto : {uint8_t(1), uint8_t(58)}) {
    auto ping = fx.flow("10.10.1.70", 8, "10.10.0.1", 0, proto);
    fx.judge_flow(ping);
  }
  CHECK(fx.alerts("flow.internal_forbidden").empty());
  CHECK(fx.alerts("lateral.new_peer").empty());
  auto web = fx.flow("10.10.1.70", 40001, "10.10.0.1", 80);  // the same peer over TCP is refused
  fx.judge_flow(web);
  CHECK(fx.alerts("flow.internal_forbidden").size() == 1);
}

TEST_CASE("software the model does not document: DICOM implementation and TLS fingerprints", "[judge]") {
  const std::string model = R"(schema: medmon.model/v1
model: {id: test-documented}
fingerprints:
  dicom_implementation_class_uid: ["1.2.3.4"]
  dicom_implementation_version_name: ["VENDOR_10"]
  tls_ja3: ["78f0dc5ac5b19daf131a133cfdee9691"]
  tls_ja3s: ["15AF977CE25DE452B96AFFA2ADDB1036"]
)";
  Fixture fx(Fixture::Edits{{"devices:\n", "devices:\n  - {name: mod-1, model: test-documented, ip: 10.10.1.70, zone: modality}\n"}},
             model);
  auto dicom = [&](const char* src, uint16_t sport, const char* dst, const char* uid, const char* version, bool as_acceptor) {
    auto f = fx.flow(src, sport, dst, 104);
    auto& facts = fx.add_facts(f, "dicom");
    facts.set_attr(as_acceptor ? "dicom.acceptor_impl_class_uid" : "dicom.impl_class_uid", uid);
    facts.set_attr(as_acceptor ? "dicom.acceptor_impl_version_name" : "dicom.impl_version_name", version);
    fx.judge_flow(f);
  };
  dicom("10.10.1.70", 40001, PACS, "1.2.3.4", "VENDOR_10", false);  // as documented
  CHECK(fx.alerts("dicom.implementation_undeclared").empty());
  dicom("10.10.1.70", 40002, PACS, "1.2.3.4", "VENDOR_11", false);  // a new version
  dicom("10.10.1.70", 40003, PACS, "1.2.3.4", "VENDOR_11", false);  // the same again: once
  auto impl = fx.alerts("dicom.implementation_undeclared");
  REQUIRE(impl.size() == 1);
  CHECK(impl[0]["alert"]["device"] == "mod-1");
  CHECK(impl[0]["alert"]["evidence"]["impl_version_name"] == "VENDOR_11");
  dicom(CT, 40004, "10.10.1.70", "9.9.9", "VENDOR_10", true);  // mod-1 accepts with another stack
  impl = fx.alerts("dicom.implementation_undeclared");
  REQUIRE(impl.size() == 2);
  CHECK(impl[1]["alert"]["evidence"]["impl_class_uid"] == "9.9.9");
  CHECK(impl[1]["alert"]["evidence"]["direction"] == "inbound");
  CHECK(impl[1]["alert"]["message"].get<std::string>().find("lists 1.2.3.4") != std::string::npos);

  auto tls = [&](const char* src, uint16_t sport, const char* dst, const char* ja3, const char* ja3s) {
    auto f = fx.flow(src, sport, dst, 443);
    f.ndpi_protocol = "TLS";
    f.tls_version = 0x0304;
    f.tls_version_name = "TLSv1.3";
    f.tls_ja3 = ja3;
    f.tls_ja3s = ja3s;
    fx.judge_flow(f);
  };
  tls("10.10.1.70", 40010, PACS, "78f0dc5ac5b19daf131a133cfdee9691", "00000000000000000000000000000000");  // client as listed
  CHECK(fx.alerts("tls.fingerprint_undeclared").empty());  // the server's JA3S is not mod-1's
  tls("10.10.1.70", 40011, PACS, "ffacac0ff89c5cda2150c31471937316", "");
  tls(CT, 40012, "10.10.1.70", "", "aa6d7b9ef470624d6742bdcd9d86e7a0");
  tls(CT, 40013, "10.10.1.70", "", "15af977ce25de452b96affa2addb1036");  // listed in upper case
  auto fp = fx.alerts("tls.fingerprint_undeclared");
  REQUIRE(fp.size() == 2);
  CHECK(fp[0]["alert"]["evidence"]["ja3"] == "ffacac0ff89c5cda2150c31471937316");
  CHECK(fp[1]["alert"]["evidence"]["ja3s"] == "aa6d7b9ef470624d6742bdcd9d86e7a0");
}

namespace {
// RIS -> PACS: the declared order feed, PHI expected (phi.cleartext low); then the PACS pushes
// PHI to the RIS, which no flow of its model declares (phi.cleartext high): one (rule, device,
// peer, app) at two severities.
void orders_then_undeclared_push(Fixture& fx) {
  auto in = fx.flow(RIS, 40001, PACS, 2575);
  auto& fi = fx.add_facts(in, "hl7");
  fi.set_attr("hl7.msh3", "RIS");
  fi.set_attr("hl7.message_types", "ORM^O01");
  fi.add_phi("PatientName");
  fx.judge_flow(in);
  auto out = fx.flow(PACS, 40002, RIS, 2575);
  auto& fo = fx.add_facts(out, "hl7");
  fo.set_attr("hl7.msh3", "ACMEPACS");
  fo.set_attr("hl7.message_types", "ORU^R01");
  fo.add_phi("PatientName");
  fx.judge_flow(out);
}
std::vector<std::string> severities(const std::vector<json>& alerts) {
  std::vector<std::string> v;
  for (auto& a : alerts) v.push_back(a["alert"]["severity"]);
  return v;
}
}  // namespace

TEST_CASE("a repeat more severe than the finding written before is written (an escalation)", "[judge]") {
  Fixture fx;
  orders_then_undeclared_push(fx);
  auto phi = fx.alerts("phi.cleartext");
  CHECK(severities(phi) == std::vector<std::string>{"low", "high"});
  for (auto& a : phi) CHECK(a["alert"]["device"] == "pacs-1");
  CHECK(fx.judge->exit_code(Severity::high) == 1);
  // A repeat at or below the highest written is folded.
  orders_then_undeclared_push(fx);
  CHECK(fx.alerts("phi.cleartext").size() == 2);
  CHECK(fx.out.counters().at("policy.alert_repeats") >= 2);
}

TEST_CASE("over the alert limit, an alert more severe than those written in the window is written", "[judge]") {
  Fixture fx(Fixture::Edits{{"reject_window_s: 60", "reject_window_s: 60\n  alert_limit: 1"}});
  orders_then_undeclared_push(fx);
  CHECK(severities(fx.alerts("phi.cleartext")) == std::vector<std::string>{"low", "high"});
  CHECK(fx.alerts("policy.rate_limited").empty());
}

TEST_CASE("a baseline accepts a finding up to the severity it was accepted at", "[judge]") {
  SECTION("accepted at low: the high one is written") {
    Fixture fx;
    fx.judge->accept("phi.cleartext", "pacs-1", RIS, Severity::low);
    orders_then_undeclared_push(fx);
    CHECK(severities(fx.alerts("phi.cleartext")) == std::vector<std::string>{"high"});
    CHECK(fx.out.counters().at("policy.alerts_baselined") == 1);
    CHECK(fx.judge->exit_code(Severity::high) == 1);
  }
  SECTION("accepted without a severity: every severity") {
    Fixture fx;
    fx.judge->accept("phi.cleartext", "pacs-1", RIS);
    orders_then_undeclared_push(fx);
    CHECK(fx.alerts("phi.cleartext").empty());
    CHECK(fx.out.counters().at("policy.alerts_baselined") == 2);
    CHECK(fx.judge->exit_code(Severity::high) == 0);
  }
}

TEST_CASE("a baseline file records the severity it accepts: alert lines and YAML", "[judge]") {
  std::string dir = std::string(POLICIES_DIR);
  auto run = [&](const std::string& name, const std::string& text, Errors& errs) {
    std::string path = "/tmp/medmon-baseline-" + std::to_string(::getpid()) + name;
    std::ofstream(path) << text;
    JudgeOptions opt;
    opt.baseline_path = path;
    auto j = PolicyJudge::load(dir + "/sites/demo-site.yaml", dir + "/devices", opt, errs);
    std::remove(path.c_str());
    return j;
  };
  auto phi_written = [&](std::unique_ptr<PolicyJudge> j) {
    Fixture fx;
    fx.judge = std::move(j);
    fx.out.set_annotator(fx.judge.get());
    orders_then_undeclared_push(fx);
    return severities(fx.alerts("phi.cleartext"));
  };
  Errors errs;
  auto jsonl = run(".jsonl",
                   R"({"event_type":"alert","alert":{"rule":"phi.cleartext","severity":"low","device":"pacs-1","peer":"10.10.3.30"}})"
                   "\n",
                   errs);
  REQUIRE(jsonl);
  CHECK(phi_written(std::move(jsonl)) == std::vector<std::string>{"high"});
  auto yaml_low = run(".yaml", "accepted:\n  - {rule: phi.cleartext, device: pacs-1, peer: 10.10.3.30, severity: low}\n", errs);
  REQUIRE(yaml_low);
  CHECK(phi_written(std::move(yaml_low)) == std::vector<std::string>{"high"});
  auto yaml_any = run(".yaml", "accepted:\n  - {rule: phi.cleartext, device: pacs-1, peer: 10.10.3.30}\n", errs);
  REQUIRE(yaml_any);
  CHECK(phi_written(std::move(yaml_any)).empty());
  CHECK(errs.list.empty());
  Errors bad;
  CHECK_FALSE(run(".yaml", "accepted:\n  - {rule: phi.cleartext, device: pacs-1, peer: 10.10.3.30, severity: huge}\n", bad));
}

TEST_CASE("DICOM: a reject burst is written once per window, each window's burst again", "[judge]") {
  Fixture fx;  // demo site: 5 rejects within 60 s
  auto burst = [&] {
    for (int i = 0; i < 5; ++i) {
      auto r = fx.flow("10.10.1.66", static_cast<uint16_t>(43000 + i), PACS, 11112);
      fx.add_facts(r, "dicom").set_attr("dicom.result", "rejected");
      fx.judge_flow(r);
    }
  };
  burst();
  burst();  // still within the first window
  CHECK(fx.alerts("dicom.reject_burst").size() == 1);
  fx.t += 70 * 1000000ll;
  burst();
  CHECK(fx.alerts("dicom.reject_burst").size() == 2);
}

TEST_CASE("ICMP has no ports: pings with new echo ids are no port scan, a ping sweep is a fan-out", "[judge]") {
  Fixture fx;
  // The sensor carries an ICMP echo's identifier where a port would be: a new one per ping.
  for (int i = 0; i < 40; ++i) {
    auto f = fx.flow(CT, static_cast<uint16_t>(1000 + i), PACS, static_cast<uint16_t>(1000 + i), 1);
    f.ndpi_protocol = "ICMP";
    fx.judge_flow(f);
  }
  CHECK(fx.alerts("lateral.port_scan").empty());
  for (int i = 1; i <= 40; ++i) {
    std::string ip = "10.10.1.";
    ip += std::to_string(100 + i);
    auto f = fx.flow(CT, 7, ip.c_str(), 7, 1);
    f.ndpi_protocol = "ICMP";
    fx.judge_flow(f);
  }
  auto fan = fx.alerts("lateral.fan_out");
  REQUIRE(fan.size() == 1);
  CHECK_FALSE(fan[0]["alert"]["evidence"].contains("server_port"));
  CHECK(fan[0]["alert"]["evidence"]["proto"] == "icmp");
  // UDP ports still count.
  for (int p = 1; p <= 30; ++p) {
    auto f = fx.flow(CT, 50000, RIS, static_cast<uint16_t>(2000 + p), 17);
    fx.judge_flow(f);
  }
  CHECK(fx.alerts("lateral.port_scan").size() == 1);
}

TEST_CASE("DICOM: C-MOVE destinations are AE titles, a comma is part of one", "[judge]") {
  Fixture fx;
  auto move = [&](const char* dest, uint16_t port) {
    auto f = fx.flow(WS, port, PACS, 11112);
    auto& facts = fx.add_facts(f, "dicom");
    facts.set_attr("dicom.calling_ae", "WS01");
    facts.set_attr("dicom.move_destination", dest);
    fx.judge_flow(f);
  };
  move("WS01,", 40001);  // not WS01
  auto mv = fx.alerts("dicom.move_destination_undeclared");
  REQUIRE(mv.size() == 1);
  CHECK(mv[0]["alert"]["evidence"]["move_destination"] == "WS01,");
  // Two C-MOVEs of one association, to WS01 and elsewhere (backslash-separated, DICOM's value
  // delimiter, which no AE title holds): the other one is named.
  Fixture fx2;
  auto f = fx2.flow(WS, 40002, PACS, 11112);
  auto& facts = fx2.add_facts(f, "dicom");
  facts.set_attr("dicom.calling_ae", "WS01");
  facts.set_attr("dicom.move_destination", "WS01\\EXFIL,WS01");
  fx2.judge_flow(f);
  auto mv2 = fx2.alerts("dicom.move_destination_undeclared");
  REQUIRE(mv2.size() == 1);
  CHECK(mv2[0]["alert"]["evidence"]["move_destination"] == "EXFIL,WS01");
}

TEST_CASE("a device bound by fingerprint stays at the first address that showed it", "[judge]") {
  Fixture fx(Fixture::Edits{{"devices:\n",
                             "devices:\n  - {name: ct-2, model: acme-ct, fingerprint: {dicom_calling_ae: [CT02]}, "
                             "ae_title: CT02, zone: modality, roles: [modality]}\n"}});
  auto first = fx.flow("10.10.1.77", 40001, PACS, 11112);
  fx.add_facts(first, "dicom").set_attr("dicom.calling_ae", "CT02");
  fx.judge_flow(first);
  CHECK(fx.alerts("dicom.ae_spoofing").empty());
  const size_t before = fx.alerts().size();
  // Another host calls as CT02: it is not ct-2, and its other flows are not ct-2's.
  auto office = fx.flow("10.10.5.50", 40002, PACS, 11112);
  fx.add_facts(office, "dicom").set_attr("dicom.calling_ae", "CT02");
  fx.judge_flow(office);
  auto sp = fx.alerts("dicom.ae_spoofing");
  REQUIRE(sp.size() == 1);
  CHECK(sp[0]["alert"]["peer"] == "CT02@10.10.5.50");
  CHECK(sp[0]["alert"]["evidence"]["fingerprint_device"] == "ct-2");
  CHECK(sp[0]["alert"]["evidence"]["bound_ip"] == "10.10.1.77");
  CHECK(fx.alerts("dicom.ae_new_ip").empty());
  auto rdp = fx.flow("10.10.5.50", 40003, "10.10.1.90", 3389);
  fx.judge_flow(rdp);
  auto all = fx.alerts();
  for (size_t i = before; i < all.size(); ++i) CHECK(all[i]["alert"]["device"] != "ct-2");
  // The bound address keeps the device.
  auto again = fx.flow("10.10.1.77", 40004, PACS, 11112);
  fx.add_facts(again, "dicom").set_attr("dicom.calling_ae", "CT02");
  fx.judge_flow(again);
  CHECK(fx.alerts("dicom.ae_spoofing").size() == 1);
}

TEST_CASE("ICMP has no ports: a declared ping to a role with service ports matches, its echo id is no port", "[judge]") {
  const std::string model = R"(schema: medmon.model/v1
model: {id: test-pinger}
flows:
  - {id: ping-pacs, initiator: device, peer_role: pacs, l4: icmp}
)";
  Fixture fx(Fixture::Edits{{"devices:\n", "devices:\n  - {name: mon-1, model: test-pinger, ip: 10.10.1.70, zone: modality}\n"}},
             model);
  auto ping = fx.flow("10.10.1.70", 4096, PACS, 4096, 1);
  auto v = fx.judge_flow(ping);
  CHECK(v.side_verdict[0] == "declared");
  CHECK(v.side_rule[0] == "ping-pacs");
  auto other = fx.flow("10.10.1.70", 4097, "10.10.3.30", 4097, 1);  // to the RIS: undeclared
  fx.judge_flow(other);
  auto und = fx.alerts("flow.undeclared");
  REQUIRE(und.size() >= 1);
  for (auto& a : und) INFO(a.dump());
  CHECK(und[0]["alert"]["message"].get<std::string>().find("port") == std::string::npos);
  CHECK_FALSE(und[0]["alert"]["evidence"].contains("server_port"));
}

TEST_CASE("a flow on a port inside a declared range is declared, one outside is not", "[judge]") {
  Fixture fx({{"  - {role: ntp,", "  - {role: service, ips: [10.10.1.90]}\n  - {role: ntp,"},
              {"devices:\n", "devices:\n  - {name: gw-1, model: test-gateway, ip: 10.10.1.30, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-gateway}\n"
             "flows:\n  - {id: dynamic, initiator: device, peer_role: service, l4: tcp, dst_port: [104, 49152-65535]}\n");
  for (uint16_t port : {uint16_t(104), uint16_t(49152), uint16_t(50000), uint16_t(65535)}) {
    INFO(port);
    auto v = fx.judge_flow(fx.flow("10.10.1.30", 40001, "10.10.1.90", port));
    CHECK(v.verdict == "declared");
    CHECK(v.rule == "dynamic");
  }
  for (uint16_t port : {uint16_t(105), uint16_t(49151), uint16_t(8080)}) {
    INFO(port);
    CHECK(fx.judge_flow(fx.flow("10.10.1.30", 40001, "10.10.1.90", port)).verdict != "declared");
  }
}

namespace {

// acme-pacs with `add` written under its mds2_derived switches, as model acme-pacs-<suffix>, which
// the demo site's pacs-1 runs.
std::pair<Fixture::Edits, std::string> pacs_with(const std::string& add, const std::string& suffix) {
  std::ifstream in(std::string(POLICIES_DIR) + "/devices/acme-pacs.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto replace = [&](const std::string& from, const std::string& to) {
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
  };
  replace("  id: acme-pacs\n", "  id: acme-pacs-" + suffix + "\n");
  replace("mds2_derived:\n", "mds2_derived:\n" + add);
  return {{{"model: acme-pacs, ip: 10.10.2.20", "model: acme-pacs-" + suffix + ", ip: 10.10.2.20"}}, text};
}

}  // namespace

TEST_CASE("NAUT-2 = Yes: a connection the device accepted from a peer no inbound flow declares", "[judge]") {
  // The PACS with network access control (NAUT-2 = Yes): the office PC's SYN to its DICOM port
  // should have gone unanswered; the modality's is declared.
  auto [edits, model] = pacs_with("  network_acl: true\n", "acl");
  Fixture fx(edits, model);
  auto f = fx.flow("10.10.4.77", 40001, PACS, 11112);
  fx.add_facts(f, "dicom");
  auto v = fx.judge_flow(f);
  CHECK(v.verdict == "undeclared");
  CHECK(v.rule == "flow.peer_not_filtered");
  CHECK(v.mds2 == std::vector<std::string>{"NAUT-2"});
  auto a = fx.alerts("flow.peer_not_filtered");
  REQUIRE(a.size() == 1);
  CHECK(a[0]["alert"]["device"] == "pacs-1");
  CHECK(a[0]["alert"]["severity"] == "medium");
  CHECK(Fixture::cites(a[0], "NAUT-2"));
  CHECK(a[0]["alert"]["mds2"][0]["answer"] == "yes");
  CHECK(fx.alerts("flow.undeclared").empty());
  // Refused (no SYN-ACK, no payload back): the access control did its work.
  auto refused = fx.flow("10.10.4.78", 40002, PACS, 11112);
  refused.server_answered = false;
  refused.payload_bytes = {0, 0};
  fx.judge_flow(refused);
  CHECK(fx.alerts("flow.peer_not_filtered").size() == 1);
  // Declared peers, and the device's own outbound flows, are not its access control's business.
  auto store = fx.flow(CT, 40003, PACS, 11112);
  fx.add_facts(store, "dicom");
  CHECK(fx.judge_flow(store).verdict == "declared");
  fx.judge_flow(fx.flow(PACS, 40004, "10.10.4.79", 8080));
  CHECK(fx.alerts("flow.peer_not_filtered").size() == 1);
  // A peer an inbound flow names (the CT, a modality) on an undeclared service: an access list by
  // peer lets it in; the flow is undeclared, not unfiltered.
  auto web = fx.flow(CT, 40005, PACS, 11112);
  web.ndpi_protocol = "HTTP";
  CHECK(fx.judge_flow(web).rule == "flow.undeclared");
  CHECK(fx.alerts("flow.peer_not_filtered").size() == 1);
  // Without the answer, an undeclared peer is just that.
  Fixture plain;
  auto g = plain.flow("10.10.4.77", 40001, PACS, 11112);
  plain.add_facts(g, "dicom");
  CHECK(plain.judge_flow(g).rule == "flow.undeclared");
  CHECK(plain.alerts("flow.peer_not_filtered").empty());
}

TEST_CASE("TXCF-4 = Yes: a DICOM association with no authenticated side", "[judge]") {
  auto [edits, model] = pacs_with("  authenticated_connections_only: true\n", "auth");
  Fixture fx(edits, model);
  auto assoc = [&](const char* src, uint16_t port, const char* dst, uint16_t dport, const char* identity,
                   bool tls = false, const char* result = "accepted") {
    auto f = fx.flow(src, port, dst, dport);
    auto& d = fx.add_facts(f, "dicom");
    d.tls = tls;
    d.set_attr("dicom.calling_ae", "CT01");
    d.set_attr("dicom.called_ae", "PACS01");
    if (result) d.set_attr("dicom.result", result);
    if (identity) d.set_attr("dicom.user_identity", identity);
    fx.judge_flow(f);
    return fx.alerts("dicom.unauthenticated_association").size();
  };
  CHECK(assoc(CT, 40001, PACS, 11112, nullptr) == 1);  // AE titles only, in clear
  auto a = fx.alerts("dicom.unauthenticated_association")[0];
  CHECK(a["alert"]["device"] == "pacs-1");
  CHECK(a["alert"]["peer"] == "ct-1");
  CHECK(a["alert"]["evidence"]["user_identity"] == "none");
  CHECK(a["alert"]["evidence"]["direction"] == "inbound");
  CHECK(Fixture::cites(a, "TXCF-4"));
  CHECK(Fixture::cites(a, "NAUT-1"));  // acme-pacs: NAUT-1 = Yes too
  CHECK(assoc(CT, 40002, PACS, 11112, "username") == 1);           // a user name proves nothing: folded repeat
  CHECK(assoc("10.10.1.11", 40003, PACS, 11112, "username_passcode") == 1);  // a credential: authenticated
  CHECK(assoc("10.10.1.12", 40004, PACS, 2762, nullptr, true) == 1);         // TLS
  CHECK(assoc("10.10.1.13", 40005, PACS, 11112, nullptr, false, "rejected") == 1);  // not accepted
  CHECK(assoc("10.10.1.14", 40006, PACS, 11112, nullptr, false, nullptr) == 1);     // answer not seen
  CHECK(assoc("10.10.1.15", 40007, PACS, 11112, "kerberos") == 1);
  CHECK(assoc("10.10.1.16", 40008, PACS, 11112, "username") == 2);  // another peer: its own finding
  {  // a user name first, the passcode in a second user identity item: authenticated
    auto f = fx.flow("10.10.1.17", 40010, PACS, 11112);
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.calling_ae", "CT01");
    d.set_attr("dicom.called_ae", "PACS01");
    d.set_attr("dicom.result", "accepted");
    d.set_attr("dicom.user_identity", "username");
    d.set_attr("dicom.credential_in_clear", "true");
    fx.judge_flow(f);
    CHECK(fx.alerts("dicom.unauthenticated_association").size() == 2);
  }
  // The device as requestor: in clear its acceptor is never authenticated, whatever it presents.
  CHECK(assoc(PACS, 40009, WS, 104, "username_passcode") == 3);
  CHECK(fx.alerts("dicom.unauthenticated_association")[2]["alert"]["evidence"]["direction"] == "outbound");
  // TXCF-4 not answered Yes: nothing.
  Fixture plain;
  auto f = plain.flow(CT, 40001, PACS, 11112);
  auto& d = plain.add_facts(f, "dicom");
  d.set_attr("dicom.calling_ae", "CT01");
  d.set_attr("dicom.result", "accepted");
  plain.judge_flow(f);
  CHECK(plain.alerts("dicom.unauthenticated_association").empty());
}

TEST_CASE("C-MOVE: the SCP's follow-up association is paired with the C-MOVE, in either order", "[judge]") {
  Fixture fx;
  // The PACS's store association to `receiver`, called AE `ae`, starting `at` after the C-MOVE's.
  auto followup = [&](const char* receiver, const char* ae, int64_t at, int64_t len = 200000) {
    auto f = fx.flow(PACS, 45000, receiver, 104);
    f.start = {fx.t + at};
    f.end = {fx.t + at + len};
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.calling_ae", "PACS01");
    d.set_attr("dicom.called_ae", ae);
    d.set_attr("dicom.result", "accepted");
    d.set_attr("dicom.commands", "C-STORE");
    return f;
  };
  auto move = [&](const char* dest, int64_t start, int64_t len) {
    auto f = fx.flow(WS, 40001, PACS, 11112);
    f.start = {start};
    f.end = {start + len};
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.calling_ae", "WS01");
    d.set_attr("dicom.called_ae", "PACS01");
    d.set_attr("dicom.commands", "C-MOVE");
    d.set_attr("dicom.move_destination", dest);
    return f;
  };
  // 1. The follow-up ends (and is judged) first, as the SCP releases it before its last C-MOVE
  // response: the C-MOVE's alert names the address that received the objects.
  const int64_t t0 = fx.t + 1000000;
  auto m = move("EXFIL1", t0, 3000000);
  fx.t = t0;
  auto s = followup("10.10.9.9", "EXFIL1", 500000);
  fx.judge_flow(s);
  CHECK(fx.alerts("dicom.move_address_undeclared").empty());  // nothing known of a C-MOVE yet
  fx.judge_flow(m);
  auto mv = fx.alerts("dicom.move_destination_undeclared");
  REQUIRE(mv.size() == 1);
  CHECK(mv[0]["alert"]["evidence"]["move_destination_ip"] == "10.10.9.9");
  CHECK(mv[0]["alert"]["message"].get<std::string>().find("it sent them to 10.10.9.9") != std::string::npos);
  auto ad = fx.alerts("dicom.move_address_undeclared");
  REQUIRE(ad.size() == 1);
  CHECK(ad[0]["alert"]["device"] == "pacs-1");
  CHECK(ad[0]["alert"]["peer"] == "EXFIL1@10.10.9.9");
  CHECK(ad[0]["alert"]["evidence"]["requestor_ip"] == WS);
  CHECK(ad[0]["alert"]["evidence"]["move_flow_id"] == m.ep.flow_id);
  CHECK(ad[0]["alert"]["evidence"]["followup_flow_id"] == s.ep.flow_id);
  CHECK(ad[0]["alert"]["evidence"]["flow_ids"][0] == m.ep.flow_id);
  CHECK(Fixture::cites(ad[0], "TXCF-3"));

  // 2. A declared destination (WS01 is bound to 10.10.4.40) whose objects went elsewhere, the
  // C-MOVE judged first: the follow-up judged later is flagged; one to WS01's address is not.
  fx.t += 10000000;
  const int64_t t1 = fx.t;
  fx.judge_flow(move("WS01", t1, 5000000));
  CHECK(fx.alerts("dicom.move_destination_undeclared").size() == 1);
  fx.t = t1;
  fx.judge_flow(followup(WS, "WS01", 100000));
  CHECK(fx.alerts("dicom.move_address_undeclared").size() == 1);
  fx.t = t1;
  auto odd = followup("10.10.5.66", "WS01", 200000);
  fx.judge_flow(odd);
  ad = fx.alerts("dicom.move_address_undeclared");
  REQUIRE(ad.size() == 2);
  CHECK(ad[1]["alert"]["peer"] == "WS01@10.10.5.66");
  CHECK(ad[1]["alert"]["evidence"]["flow_ids"][0] == odd.ep.flow_id);
  CHECK(ad[1]["alert"]["message"].get<std::string>().find("not an address the site binds") != std::string::npos);
  // 3. A store to the same AE that started after the C-MOVE's association ended is no follow-up.
  fx.t = t1;
  fx.judge_flow(followup("10.10.5.67", "WS01", 6000000));
  CHECK(fx.alerts("dicom.move_address_undeclared").size() == 2);
}

TEST_CASE("C-MOVE follow-ups waiting for their partner are bounded and counted", "[judge]") {
  Fixture fx;
  for (int i = 0; i < 5000; ++i) {
    auto f = fx.flow(PACS, static_cast<uint16_t>(20000 + i % 40000), WS, 104);
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.called_ae", "WS01");
    d.set_attr("dicom.commands", "C-STORE");
    f.start = {fx.t};  // all within the waiting time
    f.end = {fx.t};
    fx.t -= 999000;
    fx.judge_flow(f);
  }
  fx.judge->finish({fx.t}, fx.out);
  CHECK(fx.out.counters().get("policy.moves_waiting_full") == 5000 - 4096);
}

TEST_CASE("a YAML baseline entry without a device or a peer is an error at its line", "[judge]") {
  std::string path = "/tmp/medmon-baseline-nopeer-" + std::to_string(::getpid()) + ".yaml";
  std::ofstream(path) << "accepted:\n  - {rule: lateral.new_peer, device: ct-1, peer: 10.10.9.9}\n"
                         "  - {rule: lateral.fan_out, device: ct-1}\n  - {rule: lateral.new_peer, peer: 10.10.9.9}\n";
  Errors errs;
  JudgeOptions opt;
  opt.baseline_path = path;
  auto judge = PolicyJudge::load(std::string(POLICIES_DIR) + "/sites/demo-site.yaml", std::string(POLICIES_DIR) + "/devices",
                                 opt, errs);
  std::remove(path.c_str());
  CHECK(!judge);
  REQUIRE(errs.list.size() == 2);
  CHECK(errs.list[0].line == 3);
  CHECK(errs.list[0].message.find("no peer") != std::string::npos);
  CHECK(errs.list[1].line == 4);
  CHECK(errs.list[1].message.find("no device") != std::string::npos);
}

TEST_CASE("HL7 peer roles: external is any address outside the site, as for flows", "[judge]") {
  Fixture fx({{"devices:\n", "devices:\n  - {name: gw-1, model: test-hl7ext, ip: 10.10.1.30, zone: modality}\n"}},
             "schema: medmon.model/v1\nmodel: {id: test-hl7ext}\nhl7:\n  peer_roles: [external]\n");
  auto send = [&](const char* src, uint16_t port) {
    auto f = fx.flow(src, port, "10.10.1.30", 2575);
    auto& d = fx.add_facts(f, "hl7");
    d.set_attr("hl7.msh3", "LABCLOUD");
    fx.judge_flow(f);
    return fx.alerts("hl7.sender_unbound").size();
  };
  CHECK(send("203.0.113.10", 40001) == 0);  // outside the site: declared
  CHECK(send(WS, 40002) == 1);              // inside: not a declared peer
}

TEST_CASE("multicast and broadcast destinations are no peer hosts: no new_peer, no fan-out", "[judge]") {
  // Demo site, 10.10.1.0/24 (the modality zone) declared a subnet; fanout_hosts 32.
  Fixture fx(Fixture::Edits{{"internal_networks: [10.0.0.0/8]\n", "internal_networks: [10.0.0.0/8]\nsubnets: [10.10.1.0/24]\n"}});
  const char* groups[] = {"239.255.255.250", "224.0.0.251", "10.10.1.255", "255.255.255.255", "10.255.255.255", "ff02::c"};
  uint16_t port = 50000;
  for (const char* g : groups) {
    auto f = fx.flow(CT, port++, g, 1900, 17);
    f.server_answered = false;
    f.pkts[1] = 0;
    // The /8's last address is no declared subnet's: its frame to the Ethernet broadcast address says it.
    f.to_l2_broadcast = std::string_view(g) == "10.255.255.255";
    auto v = fx.judge_flow(f);
    CHECK(v.verdict == "undeclared");  // the model does not declare SSDP: still judged
  }
  CHECK(fx.alerts("lateral.new_peer").empty());
  CHECK(fx.alerts("flow.undeclared").size() == std::size(groups));
  // Forty groups on one service are no address sweep.
  for (int i = 1; i <= 40; ++i) {
    std::string g = "239.1.1." + std::to_string(i);
    auto f = fx.flow(CT, 5353, g.c_str(), 5353, 17);
    f.pkts[1] = 0;
    fx.judge_flow(f);
  }
  CHECK(fx.alerts("lateral.fan_out").empty());
  // A host's own address in the zone (not its last) is a peer as before.
  fx.judge_flow(fx.flow(CT, 50100, "10.10.1.254", 1900, 17));
  auto np = fx.alerts("lateral.new_peer");
  REQUIRE(np.size() == 1);
  CHECK(np[0]["alert"]["peer"] == "10.10.1.254");
}

TEST_CASE("declared flows to the rule's role do not count toward a fan-out", "[judge]") {
  // Forty reading workstations: the PACS sends C-MOVE results to each on its declared flow.
  Fixture fx(Fixture::Edits{{"{role: reading_ws, ips: [10.10.4.40]", "{role: reading_ws, ips: [10.10.4.0/24]"}});
  for (int i = 1; i <= 40; ++i) {
    std::string ws = "10.10.4." + std::to_string(i);
    auto f = fx.flow(PACS, static_cast<uint16_t>(45000 + i), ws.c_str(), 104);
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.calling_ae", "PACS01");
    d.set_attr("dicom.commands", "C-STORE");
    CHECK(fx.judge_flow(f).rule == "dicom-move-out");
  }
  CHECK(fx.alerts("lateral.fan_out").empty());
  // The same port swept over hosts that hold no such role is still a sweep.
  for (int i = 1; i <= 40; ++i) {
    std::string h = "10.10.5." + std::to_string(i);
    fx.judge_flow(fx.flow(PACS, static_cast<uint16_t>(46000 + i), h.c_str(), 104));
  }
  CHECK(fx.alerts("lateral.fan_out").size() == 1);
}

TEST_CASE("C-MOVE: an SCP bound only by MAC is found by its flows' MAC, in either order", "[judge]") {
  // The PACS at a DHCP address (10.10.2.77), bound by MAC only.
  Fixture fx(Fixture::Edits{{"ip: 10.10.2.20, ae_title: PACS01", "mac: \"02:00:0a:0a:02:14\", ae_title: PACS01"}});
  const std::array<uint8_t, 6> pacs_mac{0x02, 0x00, 0x0a, 0x0a, 0x02, 0x14};
  const char* SCP = "10.10.2.77";
  auto move = [&](int64_t start) {
    auto f = fx.flow(WS, 40001, SCP, 11112);
    f.server_mac = pacs_mac;
    f.start = {start};
    f.end = {start + 3000000};
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.calling_ae", "WS01");
    d.set_attr("dicom.called_ae", "PACS01");
    d.set_attr("dicom.commands", "C-MOVE");
    d.set_attr("dicom.move_destination", "WS01");
    return f;
  };
  auto followup = [&](const char* receiver, int64_t start) {
    auto f = fx.flow(SCP, 45000, receiver, 104);
    f.client_mac = pacs_mac;
    f.start = {start};
    f.end = {start + 200000};
    auto& d = fx.add_facts(f, "dicom");
    d.set_attr("dicom.calling_ae", "PACS01");
    d.set_attr("dicom.called_ae", "WS01");
    d.set_attr("dicom.commands", "C-STORE");
    return f;
  };
  // The C-MOVE judged first, then its follow-up to an address WS01 is not bound to.
  int64_t t0 = fx.t + 1000000;
  fx.judge_flow(move(t0));
  fx.judge_flow(followup("10.10.5.66", t0 + 500000));
  auto ad = fx.alerts("dicom.move_address_undeclared");
  REQUIRE(ad.size() == 1);
  CHECK(ad[0]["alert"]["device"] == "pacs-1");
  CHECK(ad[0]["alert"]["peer"] == "WS01@10.10.5.66");
  // The follow-up judged first, then its C-MOVE.
  t0 += 10000000;
  auto m = move(t0);
  fx.judge_flow(followup("10.10.5.67", t0 + 500000));
  fx.judge_flow(m);
  ad = fx.alerts("dicom.move_address_undeclared");
  REQUIRE(ad.size() == 2);
  CHECK(ad[1]["alert"]["peer"] == "WS01@10.10.5.67");
  // To WS01's own address: nothing.
  t0 += 10000000;
  fx.judge_flow(move(t0));
  fx.judge_flow(followup(WS, t0 + 500000));
  CHECK(fx.alerts("dicom.move_address_undeclared").size() == 2);
}

TEST_CASE("declared pushes of a host holding a role but no device do not count toward its sweep", "[judge]") {
  // A second PACS node (role pacs, bound to no device) verifies four CTs: the CT model declares
  // C-ECHO from the pacs role (dicom-echo-in).
  Fixture fx(Fixture::Edits{
      {"{role: pacs, ips: [10.10.2.20]", "{role: pacs, ips: [10.10.2.20, 10.10.2.21]"},
      {"fanout_hosts: 32", "fanout_hosts: 2"},
      {"  - {name: pacs-1,",
       "  - {name: ct-2, model: acme-ct, ip: 10.10.1.11, zone: modality, roles: [modality]}\n"
       "  - {name: ct-3, model: acme-ct, ip: 10.10.1.12, zone: modality, roles: [modality]}\n"
       "  - {name: ct-4, model: acme-ct, ip: 10.10.1.13, zone: modality, roles: [modality]}\n"
       "  - {name: pacs-1,"}});
  for (const char* ct : {"10.10.1.10", "10.10.1.11", "10.10.1.12", "10.10.1.13"}) {
    auto f = fx.flow("10.10.2.21", 45000, ct, 104);
    fx.add_facts(f, "dicom").set_attr("dicom.commands", "C-ECHO");
    auto v = fx.judge_flow(f);
    CHECK(v.side_verdict[1] == "declared");
  }
  CHECK(fx.alerts("lateral.fan_out").empty());
  // A host holding no role reaching the same four on the same port is a sweep.
  for (const char* ct : {"10.10.1.10", "10.10.1.11", "10.10.1.12", "10.10.1.13"}) {
    auto f = fx.flow("10.10.2.22", 45000, ct, 104);
    fx.add_facts(f, "dicom").set_attr("dicom.commands", "C-ECHO");
    fx.judge_flow(f);
  }
  auto fan = fx.alerts("lateral.fan_out");
  REQUIRE(fan.size() == 1);
  CHECK(fan[0]["alert"]["peer"] == "10.10.2.22");
}

TEST_CASE("declared flows of a host holding a role but no device do not count toward a port scan", "[judge]") {
  // The biomed laptop (role service, no device) may reach the box on any port its model lists.
  const std::string model = R"(schema: medmon.model/v1
model: {id: svc-box, manufacturer: "Example", description: "A box the biomed laptop services on any port"}
mds2_derived: {communicates_internal: true}
flows:
  - {id: service-any, initiator: peer, peer_role: service, l4: tcp}
)";
  Fixture fx(Fixture::Edits{{"  - {role: ntp,", "  - {role: service, ips: [10.10.1.90]}\n  - {role: ntp,"},
                            {"  - {name: pacs-1,", "  - {name: box-1, model: svc-box, ip: 10.10.1.70, zone: modality}\n  - {name: pacs-1,"}},
             model);
  for (int p = 1; p <= 12; ++p) {
    auto v = fx.judge_flow(fx.flow("10.10.1.90", 42000, "10.10.1.70", static_cast<uint16_t>(5000 + p)));
    CHECK(v.rule == "service-any");
  }
  CHECK(fx.alerts("lateral.port_scan").empty());
  // A host holding no role trying as many ports is a scan.
  for (int p = 1; p <= 12; ++p) fx.judge_flow(fx.flow("10.10.1.91", 42000, "10.10.1.70", static_cast<uint16_t>(5000 + p)));
  auto scans = fx.alerts("lateral.port_scan");
  REQUIRE(scans.size() == 1);
  CHECK(scans[0]["alert"]["peer"] == "10.10.1.91");
}

TEST_CASE("a role bound to a wide network does not hide a sweep of it on the declared flow", "[judge]") {
  // Reading workstations bound to the whole site: the PACS's declared C-MOVE sub-operations reach
  // any address of 10.0.0.0/8 on port 104.
  Fixture fx(Fixture::Edits{{"{role: reading_ws, ips: [10.10.4.40]", "{role: reading_ws, ips: [10.0.0.0/8]"}});
  // Forty workstations that answered: the site's own traffic, no sweep.
  for (int i = 1; i <= 40; ++i) {
    std::string ws = "10.10.4." + std::to_string(i);
    auto f = fx.flow(PACS, static_cast<uint16_t>(45000 + i), ws.c_str(), 104);
    fx.add_facts(f, "dicom").set_attr("dicom.commands", "C-STORE");
    CHECK(fx.judge_flow(f).rule == "dicom-move-out");
  }
  CHECK(fx.alerts("lateral.fan_out").empty());
  // Forty addresses of the block where nothing answered: a sweep, though each flow is declared.
  for (int i = 1; i <= 40; ++i) {
    std::string h = "10.20.0." + std::to_string(i);
    auto f = fx.flow(PACS, static_cast<uint16_t>(46000 + i), h.c_str(), 104);
    f.server_answered = false;
    f.payload_bytes = {0, 0};
    CHECK(fx.judge_flow(f).rule == "dicom-move-out");
  }
  auto fan = fx.alerts("lateral.fan_out");
  REQUIRE(fan.size() == 1);
  CHECK(fan[0]["alert"]["evidence"]["server_port"] == "104");
  // A workstation the site binds by its own address is declared whether or not it answered.
  Fixture own(Fixture::Edits{{"{role: reading_ws, ips: [10.10.4.40]", "{role: reading_ws, ips: [10.10.4.40, 10.0.0.0/8]"},
                             {"fanout_hosts: 32", "fanout_hosts: 1"}});
  for (int i = 0; i < 3; ++i) {
    auto f = own.flow(PACS, static_cast<uint16_t>(47000 + i), WS, 104);
    f.server_answered = false;
    f.payload_bytes = {0, 0};
    CHECK(own.judge_flow(f).rule == "dicom-move-out");
  }
  auto f = own.flow(PACS, 47010, "10.10.4.41", 104);  // answered, through the network
  own.add_facts(f, "dicom");
  CHECK(own.judge_flow(f).rule == "dicom-move-out");
  CHECK(own.alerts("lateral.fan_out").empty());
}

TEST_CASE("the last address of a zone is a broadcast only in a declared subnet or sent to the Ethernet broadcast", "[judge]") {
  // The site declares the modality zone narrower (10.10.1.0/25) than the real subnet (/24):
  // 10.10.1.127 is a host of it, not a broadcast address.
  Fixture fx(Fixture::Edits{{"{name: modality, cidrs: [10.10.1.0/24]", "{name: modality, cidrs: [10.10.1.0/25]"},
                            {"internal_networks: [10.0.0.0/8]\n", "internal_networks: [10.0.0.0/8]\nsubnets: [10.10.2.0/24]\n"}});
  auto one_way = [&](const char* dst, uint16_t sport, bool l2_broadcast) {
    auto f = fx.flow(CT, sport, dst, 514, 17);  // syslog: nothing comes back
    f.server_answered = false;
    f.pkts[1] = 0;
    f.to_l2_broadcast = l2_broadcast;
    fx.judge_flow(f);
  };
  one_way("10.10.1.127", 50001, false);
  auto np = fx.alerts("lateral.new_peer");
  REQUIRE(np.size() == 1);
  CHECK(np[0]["alert"]["peer"] == "10.10.1.127");
  // Sent to ff:ff:ff:ff:ff:ff, the subnet's own broadcast is one, whatever the site declares.
  one_way("10.10.1.255", 50002, true);
  // The last address of a declared subnet is its broadcast, without the frame's address too.
  one_way("10.10.2.255", 50003, false);
  CHECK(fx.alerts("lateral.new_peer").size() == 1);
  // ... unless it answered: then it is a host that a wrong subnet hid.
  auto f = fx.flow(CT, 50004, "10.10.2.255", 8080);
  fx.judge_flow(f);
  np = fx.alerts("lateral.new_peer");
  REQUIRE(np.size() == 2);
  CHECK(np[1]["alert"]["peer"] == "10.10.2.255");
}

TEST_CASE("a baseline saved with a UTF-8 byte-order mark is read as alert lines", "[judge]") {
  std::string path = "/tmp/medmon-bom-baseline-" + std::to_string(::getpid()) + ".jsonl";
  std::ofstream(path) << "\xEF\xBB\xBF"
                      << R"({"event_type":"alert","alert":{"rule":"lateral.admin_protocol","severity":"high","device":"ct-1","peer":"10.10.1.99"}})"
                      << "\r\n";
  Errors errs;
  JudgeOptions opt;
  opt.baseline_path = path;
  Fixture fx;
  fx.judge = PolicyJudge::load(std::string(POLICIES_DIR) + "/sites/demo-site.yaml", std::string(POLICIES_DIR) + "/devices",
                               opt, errs);
  std::remove(path.c_str());
  for (auto& e : errs.list) WARN(e.format());
  REQUIRE(fx.judge);
  CHECK(errs.list.empty());
  fx.out.set_annotator(fx.judge.get());
  auto f = fx.flow(CT, 40100, "10.10.1.99", 22);
  f.ndpi_protocol = "SSH";
  fx.judge_flow(f);
  CHECK(fx.alerts("lateral.admin_protocol").empty());
  CHECK(fx.judge->alerts_suppressed() >= 1);
}
