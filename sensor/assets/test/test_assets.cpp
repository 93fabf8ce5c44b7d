#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "sensor/assets/asset_tracker.h"
#include "sensor/assets/csv.h"
#include "sensor/assets/data_files.h"
#include "sensor/assets/impl_table.h"
#include "sensor/assets/oui_table.h"

using namespace medmon;
using nlohmann::json;

namespace {
IpAddr ip(const char* s) {
  IpAddr a;
  REQUIRE(IpAddr::parse(s, a));
  return a;
}

struct Rig {
  EventOutput out;
  std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
  OuiTable oui;
  ImplTable impl;
  std::unique_ptr<AssetTracker> t;
  explicit Rig(AssetOptions o = {}) {
    out.add_sink(sink);
    oui.add("00D0EF", "IGT");
    oui.add("0050C2123", "Tiny Block Vendor");
    impl.add(false, "1.2.276.0.7230010.3", "DCMTK", "OFFIS");
    impl.add(true, "ORTHANC", "Orthanc", "Orthanc project");
    t = std::make_unique<AssetTracker>(&oui, &impl, o);
    out.add_observer(t.get());
  }
  std::vector<json> assets() {
    std::vector<json> r;
    for (size_t i = 0; i < sink->lines.size(); ++i)
      if (sink->types[i] == "asset") r.push_back(json::parse(sink->lines[i])["asset"]);
    return r;
  }
};

FlowSummary flow(const char* c, const char* s, uint16_t port, FlowFacts* facts, int64_t t = 1700000000000000) {
  FlowSummary f;
  f.ep.src = ip(c);
  f.ep.dst = ip(s);
  f.ep.src_port = 40000;
  f.ep.dst_port = port;
  f.ep.proto = 6;
  f.client_mac = {0x00, 0xd0, 0xef, 0x01, 0x02, 0x03};
  f.server_mac = {0x02, 0x00, 0x0a, 0x0a, 0x02, 0x14};
  f.start = {t};
  f.end = {t + 1000};
  f.pkts = {5, 4};
  f.bytes = {500, 400};
  f.server_answered = true;
  f.syn_seen = true;
  f.ndpi_protocol = "DICOM";
  f.facts = facts;
  return f;
}
}  // namespace

TEST_CASE("csv splitter handles quotes and escaped quotes") {
  std::vector<std::string> f;
  split_csv_line("MA-L,00D0EF,\"Acme, Inc.\",\"1 \"\"Main\"\" St\"\r", f);
  REQUIRE(f.size() == 4);
  CHECK(f[1] == "00D0EF");
  CHECK(f[2] == "Acme, Inc.");
  CHECK(f[3] == "1 \"Main\" St");
  split_csv_line("a,b,c,d,e", f, 2);
  CHECK(f.size() == 2);
}

TEST_CASE("OUI table: longest prefix, local and group addresses have no vendor") {
  OuiTable t;
  CHECK(t.add("00D0EF", "IGT"));
  CHECK(t.add("0050C2", "IEEE Registration Authority"));
  CHECK(t.add("0050C2123", "Tiny Block Vendor"));
  CHECK_FALSE(t.add("12345", "bad length"));
  CHECK_FALSE(t.add("ZZZZZZ", "bad hex"));
  CHECK(t.vendor({0x00, 0xd0, 0xef, 1, 2, 3}) == "IGT");
  CHECK(t.vendor({0x00, 0x50, 0xc2, 0x12, 0x3f, 0xff}) == "Tiny Block Vendor");
  CHECK(t.vendor({0x00, 0x50, 0xc2, 0x99, 0x00, 0x00}) == "IEEE Registration Authority");
  CHECK(t.vendor({0x02, 0xd0, 0xef, 1, 2, 3}).empty());  // locally administered
  CHECK(t.vendor({0x01, 0xd0, 0xef, 1, 2, 3}).empty());  // multicast
  CHECK(format_mac({0x00, 0xd0, 0xef, 0x0a, 0xbc, 0xff}) == "00:d0:ef:0a:bc:ff");
}

TEST_CASE("OUI table loads Debian's ieee-data registry") {
  OuiTable t;
  size_t n = t.load_dir(ieee_data_dir());
  if (n == 0) { WARN("ieee-data not installed"); return; }
  CHECK(n > 10000);
  // 00:00:0C is Cisco's first block, registered since the 1980s.
  CHECK(std::string(t.vendor({0x00, 0x00, 0x0c, 1, 2, 3})).find("Cisco") != std::string::npos);
}

TEST_CASE("OUI table loads the IAB registry: a 36-bit block under 00:50:C2 names its holder") {
  std::string dir = "/tmp/medmon-test-ieee-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/oui.csv") << "Registry,Assignment,Organization Name,Organization Address\n"
                                     "MA-L,0050C2,IEEE Registration Authority,445 Hoes Lane Piscataway NJ US 08554 \n";
  std::ofstream(dir + "/iab.csv") << "Registry,Assignment,Organization Name,Organization Address\n"
                                     "IAB,0050C27A5,Quantum Medical Imaging,\"2002 Orville Drive, North Ronkonkoma NY US 11779 \"\n";
  OuiTable t;
  CHECK(t.load_dir(dir) == 2);
  CHECK(t.vendor({0x00, 0x50, 0xc2, 0x7a, 0x51, 0x23}) == "Quantum Medical Imaging");
  CHECK(t.vendor({0x00, 0x50, 0xc2, 0x7b, 0x51, 0x23}) == "IEEE Registration Authority");
  std::filesystem::remove_all(dir);
}

TEST_CASE("implementation table from data/ covers the common toolkits") {
  ImplTable t;
  std::string path = find_data_file("dicom-implementations.csv");
  REQUIRE_FALSE(path.empty());
  REQUIRE(t.load(path));
  auto product = [&](const char* uid, const char* ver) {
    const ImplProduct* p = t.lookup(uid, ver);
    return p ? p->product : std::string("-");
  };
  CHECK(product("1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367") == "DCMTK");
  CHECK(product("1.2.276.0.7230010.3.0.3.6.7", "") == "DCMTK");
  CHECK(product("1.2.40.0.13.1.3", "dcm4che-5.31.0") == "dcm4che");
  CHECK(product("1.3.6.1.4.1.30071.8", "fo-dicom 5.1.2") == "fo-dicom");
  CHECK(product("1.2.826.0.1.3680043.9.3811.2.0.2", "PYNETDICOM_202") == "pynetdicom");
  CHECK(product("1.2.826.0.1.3680043.2.1143.107.104.103.115.3.0.21", "GDCM 3.0.21") == "GDCM");
  CHECK(product("1.2.276.0.7230010.3.0.3.6.7", "ORTHANC_1_12") == "Orthanc");
  CHECK(product("1.2.276.0.72300101", "") == "-");  // roots match whole components only
  CHECK(product("9.9.9", "UNKNOWN") == "-");
  CHECK(product("1.2.276.0.7230010.3.0.3.6.7 ", "OFFIS_DCMTK_367\0") == "DCMTK");
}

TEST_CASE("asset tracker: first sight, changes, and silence when nothing changes") {
  Rig r;
  FlowFacts facts;
  facts.app = "dicom";
  facts.set_attr("dicom.calling_ae", "CT01");
  facts.set_attr("dicom.called_ae", "PACS01");
  facts.set_attr("dicom.result", "accepted");
  auto f = flow("10.10.1.10", "10.10.2.20", 11112, &facts);
  CHECK(r.t->judge(f, r.out).verdict.empty());
  auto a = r.assets();
  REQUIRE(a.size() == 2);
  CHECK(a[0]["ip"] == "10.10.1.10");
  CHECK(a[0]["changes"][0] == "new");
  CHECK(a[0]["mac"] == "00:d0:ef:01:02:03");
  CHECK(a[0]["mac_vendor"] == "IGT");
  CHECK(a[0]["model"] == "unbound");
  CHECK(a[0]["dicom"]["ae_titles"] == json::array({"CT01"}));
  CHECK(a[0]["services_used"][0]["service"] == "dicom");
  CHECK(a[0]["services_used"][0]["port"] == 11112);
  CHECK(a[1]["ip"] == "10.10.2.20");
  CHECK(a[1]["mac_local"] == true);
  CHECK(a[1]["dicom"]["ae_titles"] == json::array({"PACS01"}));
  CHECK(a[1]["services_offered"][0]["service"] == "dicom");

  // Same flow again: nothing new, no event.
  r.t->judge(f, r.out);
  CHECK(r.assets().size() == 2);
  CHECK(r.t->find(ip("10.10.1.10"))->flows == 2);

  // A new AE title on the client: one event naming the change.
  facts.set_attr("dicom.calling_ae", "CT01_B");
  r.t->judge(f, r.out);
  a = r.assets();
  REQUIRE(a.size() == 3);
  CHECK(a[2]["ip"] == "10.10.1.10");
  CHECK(a[2]["changes"] == json::array({"ae_title"}));
  CHECK(a[2]["dicom"]["ae_titles"] == json::array({"CT01", "CT01_B"}));
}

TEST_CASE("asset tracker: unanswered connections offer no service; external peers are not assets") {
  Rig r;
  auto f = flow("10.0.0.5", "10.0.0.6", 3389, nullptr);
  f.server_answered = false;
  f.pkts = {1, 0};
  f.ndpi_protocol = "Unknown";
  r.t->judge(f, r.out);
  auto* s = r.t->find(ip("10.0.0.6"));
  REQUIRE(s);
  CHECK(s->offered.empty());
  CHECK(r.t->service_name(r.t->find(ip("10.0.0.5"))->used.at(0)) == "unknown");

  auto g = flow("10.0.0.5", "8.8.8.8", 53, nullptr);
  g.ep.proto = 17;
  g.ndpi_protocol = "DNS";
  r.t->judge(g, r.out);
  CHECK(r.t->find(ip("8.8.8.8")) == nullptr);
  CHECK(r.t->find(ip("10.0.0.5"))->used.size() == 2);
  CHECK_FALSE(AssetTracker::is_internal(ip("8.8.8.8")));
  CHECK(AssetTracker::is_internal(ip("172.20.1.1")));
  CHECK_FALSE(AssetTracker::is_internal(ip("172.32.1.1")));
  CHECK(AssetTracker::is_internal(ip("fd00::1")));
  CHECK(AssetTracker::is_internal(ip("::1")));
}

TEST_CASE("asset tracker: a protocol nDPI only guessed from the port names no service") {
  Rig r;
  auto f = flow("10.0.0.5", "10.0.0.6", 443, nullptr);
  f.ndpi_protocol = "TLS";
  f.ndpi_guessed = true;  // cleartext on 443
  r.t->judge(f, r.out);
  CHECK(r.t->service_name(r.t->find(ip("10.0.0.6"))->offered.at(0)) == "unknown");
  auto g = flow("10.0.0.5", "10.0.0.7", 443, nullptr);
  g.ndpi_protocol = "TLS";
  r.t->judge(g, r.out);
  CHECK(r.t->service_name(r.t->find(ip("10.0.0.7"))->offered.at(0)) == "tls");
}

TEST_CASE("asset tracker: the device table is bounded") {
  AssetOptions o;
  o.max_devices = 3;
  Rig r(o);
  for (int i = 1; i <= 5; ++i) {
    std::string a = "10.1.0." + std::to_string(i);
    auto f = flow(a.c_str(), "10.2.0.1", 80, nullptr);
    r.t->judge(f, r.out);
  }
  CHECK(r.t->size() == 3);
  CHECK(r.t->dropped() == 3);
  r.t->finish(Timestamp{1}, r.out);
  CHECK(r.out.counters().get("assets.dropped") == 3);
  CHECK(r.out.counters().get("assets.devices") == 3);
}

TEST_CASE("asset tracker: service entries over all devices are bounded (scan to random ports)") {
  AssetOptions o;
  o.max_list = 4;
  o.max_services = 10;
  Rig r(o);
  // Unanswered SYNs from 4 sources to 6 ports each: every source uses a new "service" per port.
  for (int src = 1; src <= 4; ++src)
    for (uint16_t port = 1000; port < 1006; ++port) {
      std::string a = "10.1.0." + std::to_string(src);
      auto f = flow(a.c_str(), "10.2.0.1", port, nullptr);
      f.server_answered = false;
      f.pkts = {1, 0};
      f.ndpi_protocol = "Unknown";
      r.t->judge(f, r.out);
    }
  // Per device: 4 (max_list); in all: 10 (max_services), the first sources first.
  CHECK(r.t->services() == 10);
  CHECK(r.t->find(ip("10.1.0.1"))->used.size() == 4);
  CHECK(r.t->find(ip("10.1.0.2"))->used.size() == 4);
  CHECK(r.t->find(ip("10.1.0.3"))->used.size() == 2);
  CHECK(r.t->find(ip("10.1.0.4"))->used.empty());
  CHECK(r.t->find(ip("10.2.0.1"))->offered.empty());
  // A known service still counts its flows when the budget is spent.
  auto again = flow("10.1.0.3", "10.2.0.1", 1000, nullptr);
  again.ndpi_protocol = "Unknown";
  r.t->judge(again, r.out);
  CHECK(r.t->find(ip("10.1.0.3"))->used.at(0).flows == 2);
  r.t->finish(Timestamp{1}, r.out);
  CHECK(r.out.counters().get("assets.list_full") == 4);      // 2 sources x 2 ports over max_list
  CHECK(r.out.counters().get("assets.services_full") == 11);  // 4 + 6 + 1 (the answered flow's offered entry)
  json first;
  for (auto& e : r.assets())
    if (e["ip"] == "10.1.0.1") first = e;
  REQUIRE(first["services_used"].size() == 4);
  CHECK(first["services_used"][3]["service"] == "unknown");
  CHECK(first["services_used"][3]["port"] == 1003);
}

TEST_CASE("asset tracker: HL7 sender and TLS SNI; binder names the model") {
  Rig r;
  r.t->set_binder([](const IpAddr& a, const std::array<uint8_t, 6>&) {
    return a.to_string() == "10.10.1.10" ? std::string("acme-ct-9000") : std::string();
  });
  FlowFacts facts;
  facts.app = "hl7";
  facts.set_attr("hl7.msh3", "CT01");
  facts.set_attr("hl7.msh4", "RADIOLOGY");
  auto f = flow("10.10.1.10", "10.10.3.30", 2575, &facts);
  r.t->judge(f, r.out);
  FlowFacts tls;
  tls.tls = true;
  auto g = flow("10.10.1.10", "10.10.9.9", 443, &tls);
  g.ndpi_protocol = "TLS";
  g.sni = "update.vendor.example";
  r.t->judge(g, r.out);
  auto a = r.assets();
  REQUIRE(a.size() == 4);
  CHECK(a[0]["model"] == "acme-ct-9000");
  CHECK(a[0]["hl7_apps"][0]["app"] == "CT01");
  CHECK(a[0]["hl7_apps"][0]["facility"] == "RADIOLOGY");
  CHECK(a[1]["model"] == "unbound");
  CHECK(a[2]["ip"] == "10.10.1.10");
  CHECK(a[2]["tls_sni"] == json::array({"update.vendor.example"}));
  CHECK(a[2]["changes"] == json::array({"service_used", "tls_sni"}));
  auto dns = flow("10.10.1.10", "10.10.0.1", 53, nullptr);
  dns.ep.proto = 17;
  dns.ndpi_protocol = "DNS";
  dns.sni = "telemetry.vendor.example";
  r.t->judge(dns, r.out);
  a = r.assets();
  REQUIRE(a.size() == 6);
  CHECK(a[4]["dns_names"] == json::array({"telemetry.vendor.example"}));
  CHECK(a[4]["tls_sni"] == json::array({"update.vendor.example"}));
}

TEST_CASE("asset tracker: identities stated by protocols go to the side they describe") {
  Rig r;
  FlowFacts facts;
  facts.app = "hl7";
  auto equipment = [](bool client, const char* id) {
    DeviceIdentity d;
    d.client = client;
    d.source = "hl7 OBX-18";
    d.id = id;
    return d;
  };
  DeviceIdentity eq = equipment(true, "MON-ICU-07");
  DeviceIdentity prt;
  prt.client = true;
  prt.source = "hl7 PRT";
  prt.udi = "(01)00812345678901(21)SN123";
  prt.serial = "SN123";
  DeviceIdentity lis = equipment(false, "LIS-ANALYSER-1");
  CHECK(facts.add_identity(eq));
  CHECK_FALSE(facts.add_identity(eq));  // once per flow
  facts.add_identity(prt);
  facts.add_identity(lis);
  auto f = flow("10.10.1.10", "10.10.3.30", 2575, &facts);
  r.t->judge(f, r.out);
  r.t->judge(f, r.out);  // a second flow saying the same changes nothing
  auto a = r.assets();
  REQUIRE(a.size() == 2);
  CHECK(a[0]["ip"] == "10.10.1.10");
  CHECK(std::find(a[0]["changes"].begin(), a[0]["changes"].end(), "identity") != a[0]["changes"].end());
  CHECK(a[0]["identities"] == json::parse(R"([{"source":"hl7 OBX-18","id":"MON-ICU-07"},)"
                                          R"({"source":"hl7 PRT","udi":"(01)00812345678901(21)SN123","serial":"SN123"}])"));
  CHECK(a[1]["ip"] == "10.10.3.30");
  CHECK(a[1]["identities"] == json::parse(R"([{"source":"hl7 OBX-18","id":"LIS-ANALYSER-1"}])"));
}

TEST_CASE("asset tracker: an identity stated as client and as server is listed once") {
  Rig r;
  FlowFacts announce, answer;
  announce.app = answer.app = "sdc";
  DeviceIdentity epr;
  epr.source = "sdc discovery";
  epr.id = "urn:uuid:a001";
  epr.client = true;
  announce.add_identity(epr);  // its Hello: the client of a flow to the multicast group
  epr.client = false;
  answer.add_identity(epr);    // its answer to a probe sent to it: the server
  r.t->judge(flow("10.20.0.15", "10.20.0.9", 3702, &announce), r.out);
  r.t->judge(flow("10.20.0.9", "10.20.0.15", 3702, &answer), r.out);
  auto a = r.assets();
  json last;
  for (auto& x : a) if (x["ip"] == "10.20.0.15") last = x;
  CHECK(last["identities"] == json::parse(R"([{"source":"sdc discovery","id":"urn:uuid:a001"}])"));
}

TEST_CASE("asset tracker reads implementation and dataset identity from dicom events") {
  Rig r;
  // What the DICOM dissector writes at the end of an association (trimmed).
  std::string line =
      R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"dicom","flow_id":"x","src_ip":"10.10.1.10","src_port":40000,)"
      R"("dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dicom":{"status":"released","calling_ae":"CT01",)"
      R"("called_ae":"PACS01","rq":{"max_pdu":16384,"impl_class_uid":"1.2.276.0.7230010.3.0.3.6.7","impl_version":"OFFIS_DCMTK_367"},)"
      R"("ac":{"max_pdu":16384,"impl_class_uid":"1.2.276.0.7230010.3.0.3.6.7","impl_version":"ORTHANC_1_12"},)"
      R"("contexts":[],"ops":[{"msg_id":1,"command":"C-STORE","dir":"to_server","dataset":true,"datasets":1,)"
      R"("modality":"CT","manufacturer":"ACME MEDICAL","model":"ACME CT 9000","software_versions":"VA10",)"
      R"("station_name":"CT01","final":true},{"msg_id":2,"command":"C-ECHO","dir":"to_server","final":true}]}})";
  r.t->on_event("dicom", line);
  auto* c = r.t->find(ip("10.10.1.10"));
  auto* s = r.t->find(ip("10.10.2.20"));
  REQUIRE(c);
  REQUIRE(s);
  CHECK(c->product == "DCMTK");
  CHECK(s->product == "Orthanc");
  CHECK(c->manufacturer == "ACME MEDICAL");
  CHECK(c->model_name == "ACME CT 9000");
  CHECK(c->software_versions == "VA10");
  CHECK(s->manufacturer.empty());
  CHECK(c->ae_titles == std::vector<std::string>{"CT01"});
  CHECK(s->ae_titles == std::vector<std::string>{"PACS01"});
  CHECK(c->first_seen.usec == 1709294400000000);
  // The asset events follow at the next flow end.
  auto f = flow("10.10.1.10", "10.10.2.20", 11112, nullptr, 1709294401000000);
  r.t->judge(f, r.out);
  auto a = r.assets();
  REQUIRE(a.size() == 2);
  CHECK(a[0]["dicom"]["product"] == "DCMTK");
  CHECK(a[0]["dicom"]["model_name"] == "ACME CT 9000");
  CHECK(a[0]["first_seen"] == "2024-03-01T12:00:00.000000Z");
  CHECK(a[1]["dicom"]["impl_version"] == "ORTHANC_1_12");
}

TEST_CASE("a dicom event's sighting: names and implementations from the head, identities from stored datasets") {
  // 128 proposed contexts between the head and the operations, as storescu writes them.
  std::string contexts;
  for (int i = 1; i <= 255; i += 2) {
    if (i > 1) contexts += ',';
    contexts += R"({"id":)" + std::to_string(i) + R"(,"abstract_syntax":"1.2.840.10008.5.1.4.1.1.)" + std::to_string(i) +
                R"(","name":"SomeStorage","proposed_ts":["1.2.840.10008.1.2","1.2.840.10008.1.2.1"],"result":0})";
  }
  std::string line =
      R"({"ts":"2024-03-01T12:00:00.000000Z","event_type":"dicom","flow_id":"x","src_ip":"10.10.1.10","src_port":40000,)"
      R"("dst_ip":"10.10.2.20","dst_port":11112,"proto":"tcp","dicom":{"status":"released","calling_ae":"CT01",)"
      R"("called_ae":"PACS01","rq":{"impl_class_uid":"1.2.3.4","impl_version":"CT_SW_1"},)"
      R"("ac":{"impl_version":"PACS_SW_2"},"contexts":[)" + contexts + R"(],)"
      R"("ops":[{"msg_id":1,"command":"C-FIND-RQ","dir":"to_server","manufacturer":"NOT A STORE"},)"
      R"({"msg_id":2,"command":"C-STORE","dir":"to_server","dataset":{"manufacturer":"ACME MEDICAL","device_serial":"SN42"}},)"
      R"({"msg_id":3,"command":"C-STORE","dir":"to_client","station_name":"PACS-ST"}],"ops_total":3}})";
  AssetTracker::DicomSighting s;
  REQUIRE(AssetTracker::read_dicom(line, s));
  CHECK(s.client.to_string() == "10.10.1.10");
  CHECK(s.server.to_string() == "10.10.2.20");
  CHECK(s.ts.usec == 1709294400000000);
  CHECK(s.client_impl.have_uid);
  CHECK(s.client_impl.uid == "1.2.3.4");
  CHECK(s.client_impl.version == "CT_SW_1");
  CHECK(!s.server_impl.have_uid);  // the client's UID is not the server's
  CHECK(s.server_impl.version == "PACS_SW_2");
  CHECK(s.have_calling_ae);
  CHECK(s.calling_ae == "CT01");
  CHECK(s.called_ae == "PACS01");
  REQUIRE(s.stored.size() == 3);
  CHECK((s.stored[0].by_client && s.stored[0].field == AssetTracker::DicomSighting::manufacturer &&
         s.stored[0].value == "ACME MEDICAL"));
  CHECK((s.stored[1].by_client && s.stored[1].field == AssetTracker::DicomSighting::device_serial));
  CHECK((!s.stored[2].by_client && s.stored[2].field == AssetTracker::DicomSighting::station_name &&
         s.stored[2].value == "PACS-ST"));

  // No association seen (no names, rq, ac or contexts): nothing is taken from the operations'
  // text for the head.
  AssetTracker::DicomSighting bare;
  REQUIRE(AssetTracker::read_dicom(
      R"({"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","dicom":{"ops":[{"msg_id":1,"command":"C-STORE","dir":"to_server","calling_ae":"NO"}]}})",
      bare));
  CHECK(!bare.have_calling_ae);
  CHECK(!bare.client_impl.have_uid);
  CHECK(bare.stored.empty());
}

TEST_CASE("asset tracker survives malformed dicom event lines") {
  Rig r;
  for (std::string bad : {std::string(""), std::string("{"), std::string(R"({"src_ip":"nope","dst_ip":"1.2.3.4"})"),
                          std::string(R"({"ts":"x","src_ip":"10.0.0.1","dst_ip":"10.0.0.2","dicom":{"rq":{"impl_class_uid":"\u00)"),
                          std::string(R"({"src_ip":"10.0.0.1","dst_ip":"10.0.0.2","ops":[{"msg_id":1,"command":"C-STORE")")}) {
    r.t->on_event("dicom", bad);
  }
  CHECK(r.t->size() <= 2);
}

TEST_CASE("asset tracker: a reloaded policy rebinds the devices already seen") {
  Rig r;
  std::string ct_model = "acme-ct";
  r.t->set_binder([&](const IpAddr& a, const std::array<uint8_t, 6>&) {
    return a.to_string() == "10.10.1.10" ? ct_model : std::string();
  });
  auto f = flow("10.10.1.10", "10.10.2.20", 104, nullptr);
  r.t->judge(f, r.out);
  REQUIRE(r.assets().size() == 2);
  CHECK(r.assets()[0]["model"] == "acme-ct");
  // Same policy again: nothing to report.
  r.t->rebind_all();
  r.t->judge(f, r.out);
  REQUIRE(r.assets().size() == 2);
  // The new site binds the CT to another model: one asset event says so.
  ct_model = "acme-ct-2";
  r.t->rebind_all();
  r.t->judge(f, r.out);
  auto a = r.assets();
  REQUIRE(a.size() == 3);
  CHECK(a[2]["ip"] == "10.10.1.10");
  CHECK(a[2]["model"] == "acme-ct-2");
  CHECK(a[2]["changes"] == json::array({"binding"}));
  // A site that no longer names it: unbound again.
  ct_model.clear();
  r.t->rebind_all();
  r.t->judge(f, r.out);
  a = r.assets();
  REQUIRE(a.size() == 4);
  CHECK(a[3]["model"] == "unbound");
}

TEST_CASE("asset tracker: a device bound by MAC gets its name from the policy's annotation") {
  // Names the CT by its MAC only, as a site binding `mac:` does.
  struct ByMac : HeaderAnnotator {
    void annotate(const EventEndpoints& ep, JsonWriter& w) override {
      if (ep.src_mac == std::array<uint8_t, 6>{0x00, 0xd0, 0xef, 0x01, 0x02, 0x03}) w.field("src_device", "ct-1");
    }
  } by_mac;
  Rig r;
  r.t->set_annotator(&by_mac);
  r.t->judge(flow("10.10.1.10", "10.10.2.20", 104, nullptr), r.out);
  auto a = r.assets();
  REQUIRE(a.size() == 2);
  CHECK(a[0]["ip"] == "10.10.1.10");
  CHECK(a[0]["device"] == "ct-1");
  CHECK_FALSE(a[1].contains("device"));
}

TEST_CASE("asset tracker: every value it keeps is cut to 128 bytes at a character boundary") {
  Rig r;
  // 127 ASCII bytes, then a 2-byte character across the cut, then more.
  std::string longv = std::string(127, 'A') + "\xc3\xa9" + std::string(100000, 'B');
  FlowFacts facts;
  facts.app = "hl7";
  facts.set_attr("hl7.msh3", longv);
  facts.set_attr("hl7.msh4", longv);
  facts.set_attr("dicom.calling_ae", longv);
  facts.set_attr("dicom.manufacturer", longv);
  DeviceIdentity id;
  id.source = "hl7 PRT";
  id.id = id.serial = longv;
  facts.add_identity(id);
  auto f = flow("10.10.1.10", "10.10.3.30", 2575, &facts);
  r.t->judge(f, r.out);
  auto a = r.assets();
  REQUIRE(!a.empty());
  const std::string cut(127, 'A');
  CHECK(a[0]["hl7_apps"][0]["app"] == cut);
  CHECK(a[0]["hl7_apps"][0]["facility"] == cut);
  CHECK(a[0]["dicom"]["ae_titles"][0] == cut);
  CHECK(a[0]["dicom"]["manufacturer"] == cut);
  CHECK(a[0]["identities"][0]["id"] == cut);
  CHECK(a[0]["identities"][0]["serial"] == cut);
  for (auto& l : r.sink->lines) CHECK(l.size() < 4096);
  // The same long values again are nothing new.
  size_t events = r.sink->lines.size();
  r.t->judge(f, r.out);
  CHECK(r.sink->lines.size() == events);
}

TEST_CASE("the TLS versions a device's sessions settle on, as client and as answering server", "[assets]") {
  Rig r;
  FlowFacts tls;
  tls.tls = true;
  auto f = flow("10.10.1.10", "10.10.2.20", 2762, &tls);
  f.ndpi_protocol = "TLS";
  f.tls_version_name = "TLSv1.3";
  r.t->judge(f, r.out);
  auto old = flow("10.10.1.90", "10.10.1.10", 8443, &tls);
  old.ndpi_protocol = "TLS";
  old.tls_version_name = "TLSv1";
  old.server_mac = f.client_mac;  // the same device, as server
  r.t->judge(old, r.out);
  auto a = r.assets();
  json ct;
  for (auto& x : a) if (x["ip"] == "10.10.1.10") ct = x;  // the last event of the CT
  CHECK(ct["tls_versions"] == json::array({"TLSv1.3", "TLSv1"}));
  CHECK(ct["changes"].back() == "tls_version");
  json pacs;
  for (auto& x : a) if (x["ip"] == "10.10.2.20") pacs = x;
  CHECK(pacs["tls_versions"] == json::array({"TLSv1.3"}));
}

TEST_CASE("pings are one ICMP service, not one per echo identifier", "[assets]") {
  Rig r;
  for (uint16_t id = 4096; id < 4136; ++id) {
    auto f = flow("10.10.1.20", "10.10.2.20", id, nullptr);
    f.ep.proto = 1;
    f.ep.src_port = id;
    f.ndpi_protocol.clear();  // nDPI never sees ICMP
    r.t->judge(f, r.out);
  }
  auto a = r.assets();
  json pacs;
  for (auto& x : a) if (x["ip"] == "10.10.2.20") pacs = x;
  REQUIRE(pacs["services_offered"].size() == 1);
  CHECK(pacs["services_offered"][0]["proto"] == "icmp");
  CHECK(pacs["services_offered"][0]["service"] == "icmp");
  CHECK(pacs["services_offered"][0]["port"] == 0);
  CHECK(pacs["changes"] == json::array({"new", "mac", "service_offered"}));  // no event for later pings
}

namespace {
// A dhcp event as the DHCP dissector writes it, sent from `src`.
std::string dhcp_from(const char* src, const char* op, const char* type, const char* mac, const std::string& more) {
  return std::string("{\"ts\":\"2023-11-14T22:13:20.000000Z\",\"event_type\":\"dhcp\",\"flow_id\":\"F1\",\"src_ip\":\"") + src +
         "\",\"src_port\":68,\"dst_ip\":\"255.255.255.255\",\"dst_port\":67,\"proto\":\"udp\",\"dhcp\":{\"direction\":"
         "\"to_server\",\"op\":\"" +
         op + "\",\"message_type\":\"" + type + "\",\"xid\":\"0x00000001\",\"client_mac\":\"" + mac + "\"" + more + "}}";
}
std::string dhcp_line(const char* op, const char* type, const char* mac, const std::string& more) {
  return dhcp_from("0.0.0.0", op, type, mac, more);
}
}  // namespace

TEST_CASE("asset tracker: DHCP names a MAC before it has an address; the ACK gives the address", "[assets]") {
  Rig r;
  // DISCOVER from 0.0.0.0: remembered by MAC, no device yet.
  r.t->on_event("dhcp", dhcp_line("request", "DISCOVER", "02:00:5e:10:00:07",
                                  ",\"hostname\":\"ct-room3\",\"vendor_class\":\"ACME-CT-7\",\"param_list\":[1,3,6,15]"));
  CHECK(r.t->size() == 0);
  // An OFFER is only an offer.
  r.t->on_event("dhcp", dhcp_line("reply", "OFFER", "02:00:5e:10:00:07", ",\"assigned_ip\":\"10.20.30.40\""));
  CHECK(r.t->size() == 0);
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", "02:00:5e:10:00:07", ",\"assigned_ip\":\"10.20.30.40\""));
  const auto* d = r.t->find(ip("10.20.30.40"));
  REQUIRE(d);
  CHECK(d->hostname == "ct-room3");
  CHECK(d->dhcp_vendor_class == "ACME-CT-7");
  CHECK(d->dhcp_fingerprint == "1,3,6,15");
  CHECK(d->mac == std::array<uint8_t, 6>{0x02, 0x00, 0x5e, 0x10, 0x00, 0x07});
  r.t->flush(Timestamp{1700000000000000}, r.out);
  auto a = r.assets();
  REQUIRE(a.size() == 1);
  CHECK(a[0]["hostname"] == "ct-room3");
  CHECK(a[0]["dhcp"]["vendor_class"] == "ACME-CT-7");
  CHECK(a[0]["dhcp"]["fingerprint"] == "1,3,6,15");
  CHECK(a[0]["changes"] == json::array({"new", "mac", "dhcp"}));
}

TEST_CASE("asset tracker: a renewing client names its own address; a datagram from elsewhere names none", "[assets]") {
  Rig r;
  FlowFacts facts;
  r.t->judge(flow("10.0.0.5", "10.0.0.9", 104, &facts), r.out);  // 10.0.0.9: MAC 02:00:0a:0a:02:14
  // Another host (10.0.0.99) claims 10.0.0.9 as its ciaddr: with its own chaddr, then with the
  // server's.
  r.t->on_event("dhcp", dhcp_from("10.0.0.99", "request", "REQUEST", "02:00:00:00:00:99",
                                  ",\"client_ip\":\"10.0.0.9\",\"hostname\":\"evil-host\""));
  r.t->on_event("dhcp", dhcp_from("10.0.0.99", "request", "REQUEST", "02:00:0a:0a:02:14",
                                  ",\"client_ip\":\"10.0.0.9\",\"hostname\":\"evil-host\""));
  const auto* s = r.t->find(ip("10.0.0.9"));
  REQUIRE(s);
  CHECK(s->hostname.empty());
  CHECK(r.t->find(ip("10.0.0.99")) == nullptr);
  // The server renews from its own address: its names.
  r.t->on_event("dhcp", dhcp_from("10.0.0.9", "request", "REQUEST", "02:00:0a:0a:02:14",
                                  ",\"client_ip\":\"10.0.0.9\",\"hostname\":\"pacs-1\",\"vendor_class\":\"PACSCO\""));
  CHECK(s->hostname == "pacs-1");
  CHECK(s->dhcp_vendor_class == "PACSCO");
  // A client's message without an address ties none: 10.0.0.5 (00:d0:ef:01:02:03) gets no
  // names until an ACK or its own renewal ties its address to its MAC.
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", "00:d0:ef:01:02:03", ",\"hostname\":\"us-cart-2\""));
  const auto* c = r.t->find(ip("10.0.0.5"));
  REQUIRE(c);
  CHECK(c->hostname.empty());
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", "00:d0:ef:01:02:03", ",\"assigned_ip\":\"10.0.0.5\""));
  CHECK(c->hostname == "us-cart-2");
  // Damaged lines and non-Ethernet addresses are ignored.
  r.t->on_event("dhcp", "{\"dhcp\":{\"op\":\"request\"");
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", "02:00", ",\"assigned_ip\":\"10.0.0.77\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", "zz:00:5e:10:00:07", ",\"assigned_ip\":\"10.0.0.78\""));
  CHECK(r.t->size() == 2);
}

TEST_CASE("asset tracker: a device has the DHCP names of its current MAC, and none of another's", "[assets]") {
  Rig r;
  const char* A = "02:00:00:00:00:0a";
  const char* B = "02:00:00:00:00:0b";
  auto flow_from = [&](const char* mac) {
    auto f = flow("10.1.0.50", "10.1.0.1", 8080, nullptr);
    MacAddr m;
    REQUIRE(parse_mac(mac, m));
    f.client_mac = m;
    r.t->judge(f, r.out);
  };
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", A,
                                  ",\"hostname\":\"pump-A\",\"vendor_class\":\"PUMPCO\",\"param_list\":[1,3,6]"));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", A, ",\"assigned_ip\":\"10.1.0.50\""));
  flow_from(A);
  const auto* d = r.t->find(ip("10.1.0.50"));
  REQUIRE(d);
  CHECK(d->hostname == "pump-A");
  // A server gives the address to B: the device is still seen as A, with A's names.
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", B, ",\"hostname\":\"laptop-B\",\"param_list\":[1,15]"));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", B, ",\"assigned_ip\":\"10.1.0.50\""));
  CHECK(format_mac(d->mac) == A);
  CHECK(d->hostname == "pump-A");
  CHECK(d->dhcp_vendor_class == "PUMPCO");
  // B's frames: B's names, and no vendor class, which B did not give.
  flow_from(B);
  CHECK(d->hostname == "laptop-B");
  CHECK(d->dhcp_vendor_class.empty());
  CHECK(d->dhcp_fingerprint == "1,15");
  // A MAC that never spoke DHCP takes the address: no names at all.
  flow_from("02:00:00:00:00:0c");
  CHECK(d->hostname.empty());
  CHECK(d->dhcp_fingerprint.empty());
  r.t->flush(Timestamp{1700000000000000}, r.out);
  auto a = r.assets();
  REQUIRE(!a.empty());
  // Another device: its record starts again, with no names.
  CHECK(a.back()["changes"] == json::array({"replaced", "mac", "dhcp", "service_used"}));
  CHECK(a.back()["previous_mac"] == B);
  CHECK_FALSE(a.back().contains("hostname"));
  CHECK_FALSE(a.back().contains("dhcp"));
}

TEST_CASE("asset tracker: an address let again to another MAC has that MAC when only DHCP named the former", "[assets]") {
  Rig r;
  const char* A = "02:00:00:00:00:0a";
  const char* B = "02:00:00:00:00:0b";
  // Only the DHCP broadcasts of either client are seen, never a frame from the address.
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", A, ",\"hostname\":\"pump-A\",\"vendor_class\":\"PUMPCO\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", A, ",\"assigned_ip\":\"10.1.0.50\""));
  const auto* d = r.t->find(ip("10.1.0.50"));
  REQUIRE(d);
  CHECK(format_mac(d->mac) == A);
  r.t->flush(Timestamp{1700000000000000}, r.out);
  // The lease expired and the server lets the address to B.
  std::string req = dhcp_line("request", "REQUEST", B, ",\"hostname\":\"monitor-B\",\"param_list\":[1,3]");
  std::string ack = dhcp_line("reply", "ACK", B, ",\"assigned_ip\":\"10.1.0.50\"");
  for (auto* line : {&req, &ack}) line->replace(line->find("0x00000001"), 10, "0x00000002");
  r.t->on_event("dhcp", req);
  r.t->on_event("dhcp", ack);
  CHECK(format_mac(d->mac) == B);
  CHECK(d->hostname == "monitor-B");
  CHECK(d->dhcp_vendor_class.empty());
  CHECK(d->dhcp_fingerprint == "1,3");
  r.t->flush(Timestamp{1700000001000000}, r.out);
  auto a = r.assets();
  REQUIRE(a.size() == 2);
  CHECK(a.back()["mac"] == B);
  CHECK(a.back()["hostname"] == "monitor-B");
  CHECK(a.back()["changes"] == json::array({"mac", "dhcp"}));
  // A's own renewal from elsewhere (ciaddr without sending from it) takes nothing back.
  r.t->on_event("dhcp", dhcp_from("10.1.0.99", "request", "REQUEST", A, ",\"client_ip\":\"10.1.0.50\""));
  CHECK(format_mac(d->mac) == B);
}

TEST_CASE("asset tracker: a request in another MAC's name (chaddr not the frame's) renames nothing of it", "[assets]") {
  Rig r;
  const char* V = "02:00:00:00:00:0a";  // the victim
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", V, ",\"hostname\":\"pump-A\",\"vendor_class\":\"PUMPCO\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", V, ",\"assigned_ip\":\"10.1.0.50\""));
  const auto* d = r.t->find(ip("10.1.0.50"));
  REQUIRE(d);
  CHECK(d->hostname == "pump-A");
  // Another host, frames from 02:00:00:00:00:ee, sends V's chaddr with names of its own; the
  // server answers that transaction (xid 0x00000001) with another address for V.
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", V,
                                  ",\"sender_mac\":\"02:00:00:00:00:ee\",\"hostname\":\"evil\",\"vendor_class\":\"X\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", V, ",\"assigned_ip\":\"10.1.0.77\""));
  CHECK(d->hostname == "pump-A");
  CHECK(d->dhcp_vendor_class == "PUMPCO");
  CHECK(r.t->find(ip("10.1.0.77")) == nullptr);
  // The names went to the MAC that sent them: the sender's device has them once an ACK ties it.
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", "02:00:00:00:00:ee", ",\"assigned_ip\":\"10.1.0.88\""));
  REQUIRE(r.t->find(ip("10.1.0.88")));
  CHECK(r.t->find(ip("10.1.0.88"))->hostname == "evil");
  // V's own next transaction moves it as before.
  std::string ack = dhcp_line("reply", "ACK", V, ",\"assigned_ip\":\"10.1.0.51\"");
  ack.replace(ack.find("0x00000001"), 10, "0x00000002");
  r.t->on_event("dhcp", ack);
  CHECK(d->hostname.empty());
  REQUIRE(r.t->find(ip("10.1.0.51")));
  CHECK(r.t->find(ip("10.1.0.51"))->hostname == "pump-A");
}

TEST_CASE("asset tracker: a DHCPv6 message in another DUID's name renames nothing of its MAC", "[assets]") {
  Rig r;
  const char* V = "00:00:5e:00:53:01";
  auto v6 = [&](const char* src, const char* op, const char* type, const std::string& more, const char* xid) {
    std::string l = dhcp_from(src, op, type, V, more);
    l.replace(l.find("\"dhcp\":{") + 8, 0, "\"version\":6,");
    l.replace(l.find("0x00000001"), 10, xid);
    return l;
  };
  const char* ll = "fe80::200:5eff:fe00:5301";
  r.t->on_event("dhcp", v6(ll, "request", "REQUEST", ",\"client_ip\":\"fe80::200:5eff:fe00:5301\",\"client_fqdn\":\"ct-room3.example\"", "0x000001"));
  r.t->on_event("dhcp", v6("fe80::1", "reply", "REPLY", ",\"client_ip\":\"fe80::200:5eff:fe00:5301\",\"assigned_ip\":\"fd77:3::101\"", "0x000001"));
  const auto* d = r.t->find(ip("fd77:3::101"));
  REQUIRE(d);
  CHECK(d->hostname == "ct-room3");
  // Another host (frames from 02:00:00:00:00:ee) sends V's DUID with a name of its own, and the
  // server answers that transaction with another address for V.
  const char* evil = "fe80::ee";
  r.t->on_event("dhcp", v6(evil, "request", "REQUEST",
                           ",\"sender_mac\":\"02:00:00:00:00:ee\",\"client_ip\":\"fe80::ee\",\"client_fqdn\":\"evil.example\"", "0x000002"));
  r.t->on_event("dhcp", v6("fe80::1", "reply", "REPLY", ",\"client_ip\":\"fe80::ee\",\"assigned_ip\":\"fd77:3::199\"", "0x000002"));
  CHECK(d->hostname == "ct-room3");
  REQUIRE(r.t->find(ip(ll)));
  CHECK(r.t->find(ip(ll))->hostname == "ct-room3");
  CHECK(r.t->find(ip("fd77:3::199")) == nullptr);
}

TEST_CASE("asset tracker: an address a client declines loses its names", "[assets]") {
  Rig r;
  const char* A = "02:00:00:00:00:0a";
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", A, ",\"hostname\":\"pump-A\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", A, ",\"assigned_ip\":\"10.1.0.50\""));
  const auto* d = r.t->find(ip("10.1.0.50"));
  REQUIRE(d);
  CHECK(d->hostname == "pump-A");
  // Another node answers ARP for 10.1.0.50: the client declines it (option 50) from 0.0.0.0.
  CHECK(format_mac(d->mac) == A);
  r.t->on_event("dhcp", dhcp_line("request", "DECLINE", A, ",\"requested_ip\":\"10.1.0.50\""));
  CHECK(d->hostname.empty());
  // Only the ACK named A's MAC there: the address is not A's, nor its MAC.
  CHECK(format_mac(d->mac) == "00:00:00:00:00:00");
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", A, ",\"assigned_ip\":\"10.1.0.51\""));
  CHECK(r.t->find(ip("10.1.0.51"))->hostname == "pump-A");
  CHECK(format_mac(r.t->find(ip("10.1.0.51"))->mac) == A);
  CHECK(d->hostname.empty());
  CHECK(format_mac(d->mac) == "00:00:00:00:00:00");
  // The device whose frames carry the MAC keeps it when an address it used is declined.
  auto f = flow("10.1.0.51", "10.1.0.9", 104, nullptr);
  REQUIRE(parse_mac(A, f.client_mac));
  r.t->judge(f, r.out);
  r.t->on_event("dhcp", dhcp_line("request", "DECLINE", A, ",\"requested_ip\":\"10.1.0.51\""));
  CHECK(format_mac(r.t->find(ip("10.1.0.51"))->mac) == A);
  CHECK(r.t->find(ip("10.1.0.51"))->hostname.empty());
  // DHCPv6: the DECLINE names the address in its IA_NA.
  const char* B = "00:00:5e:00:53:06";
  auto v6 = [&](const char* op, const char* type, const std::string& more) {
    std::string l = dhcp_from("fe80::200:5eff:fe00:5306", op, type, B, more);
    l.replace(l.find("\"dhcp\":{") + 8, 0, "\"version\":6,");
    return l;
  };
  r.t->on_event("dhcp", v6("reply", "REPLY", ",\"assigned_ip\":\"fd77:3::106\""));
  r.t->on_event("dhcp", v6("request", "REQUEST", ",\"client_ip\":\"fe80::200:5eff:fe00:5306\",\"client_fqdn\":\"pump-13.example\""));
  const auto* e = r.t->find(ip("fd77:3::106"));
  REQUIRE(e);
  CHECK(e->hostname == "pump-13");
  r.t->on_event("dhcp", v6("request", "DECLINE",
                           ",\"ia\":[{\"type\":\"na\",\"iaid\":\"0x5e005306\",\"t1\":0,\"t2\":0,\"addresses\":"
                           "[{\"address\":\"fd77:3::106\",\"preferred_lifetime\":0,\"valid_lifetime\":0}]}],"
                           "\"client_fqdn\":\"pump-13.example\""));
  CHECK(e->hostname.empty());
  // The client's own (link-local) address keeps them.
  REQUIRE(r.t->find(ip("fe80::200:5eff:fe00:5306")));
  CHECK(r.t->find(ip("fe80::200:5eff:fe00:5306"))->hostname == "pump-13");
}

TEST_CASE("asset tracker: an address only a declined DHCP exchange named is no device", "[assets]") {
  const char* A = "02:00:00:00:00:0a";
  auto devices = [](Rig& r) {
    r.t->finish({1700000001000000}, r.out);
    return r.out.counters().get("assets.devices");
  };
  auto has = [](Rig& r, const char* addr) {
    for (auto& a : r.assets()) if (a["ip"] == addr) return true;
    return false;
  };
  {
    // Declined before the inventory wrote anything of it: never written.
    Rig r;
    r.t->on_event("dhcp", dhcp_line("request", "REQUEST", A, ",\"hostname\":\"pump-A\""));
    r.t->on_event("dhcp", dhcp_line("reply", "ACK", A, ",\"assigned_ip\":\"10.1.0.50\""));
    r.t->on_event("dhcp", dhcp_line("request", "DECLINE", A, ",\"requested_ip\":\"10.1.0.50\""));
    CHECK_FALSE(has(r, "10.1.0.50"));
    CHECK(devices(r) == 0);
  }
  {
    // Written with the client's MAC (a flow ended in between): taken back with "withdrawn".
    Rig r;
    r.t->on_event("dhcp", dhcp_line("reply", "ACK", A, ",\"assigned_ip\":\"10.1.0.50\""));
    r.t->judge(flow("10.1.0.7", "10.1.0.9", 80, nullptr), r.out);
    REQUIRE(has(r, "10.1.0.50"));
    r.t->on_event("dhcp", dhcp_line("request", "DECLINE", A, ",\"requested_ip\":\"10.1.0.50\""));
    CHECK(devices(r) == 2);
    auto last = r.assets().back();
    CHECK(last["ip"] == "10.1.0.50");
    CHECK(last["changes"] == json::array({"withdrawn"}));
    // The node that really holds the address shows up: a device from then on.
    r.t->judge(flow("10.1.0.50", "10.1.0.9", 80, nullptr, 1700000002000000), r.out);
    last = json();
    for (auto& a : r.assets()) if (a["ip"] == "10.1.0.50") last = a;
    INFO(last.dump());
    CHECK(last["changes"][0] == "new");
    CHECK(last["first_seen"] == "2023-11-14T22:13:22.000000Z");
    CHECK(last["mac"] == "00:d0:ef:01:02:03");
  }
}

TEST_CASE("asset tracker: a DHCPv4 client that sends only its FQDN (81) is named by its first label", "[assets]") {
  Rig r;
  const char* F = "02:00:00:00:f0:81";
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", F, ",\"client_fqdn\":\"infusion-7.ward2.example\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", F, ",\"assigned_ip\":\"10.1.0.81\""));
  REQUIRE(r.t->find(ip("10.1.0.81")));
  CHECK(r.t->find(ip("10.1.0.81"))->hostname == "infusion-7");
  // Option 12, when given, is the name.
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", F, ",\"hostname\":\"pump-7\",\"client_fqdn\":\"infusion-7.example\""));
  CHECK(r.t->find(ip("10.1.0.81"))->hostname == "pump-7");
}

TEST_CASE("asset tracker: a DHCPv4 client without option 60 has its V-I vendor class (124)", "[assets]") {
  Rig r;
  const char* V = "02:00:00:00:01:24";
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", V,
                                  ",\"vendor_classes\":[{\"enterprise\":32473},{\"enterprise\":4491,\"data\":[\"ACME-\\\"7\\\"\",\"fw\"]}]"));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", V, ",\"assigned_ip\":\"10.1.1.24\""));
  REQUIRE(r.t->find(ip("10.1.1.24")));
  CHECK(r.t->find(ip("10.1.1.24"))->dhcp_vendor_class == "ACME-\"7\"");
  // Option 60, when given, is the vendor class.
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", V,
                                  ",\"vendor_class\":\"PUMPCO\",\"vendor_classes\":[{\"enterprise\":1,\"data\":[\"X\"]}]"));
  CHECK(r.t->find(ip("10.1.1.24"))->dhcp_vendor_class == "PUMPCO");
}

TEST_CASE("asset tracker: a BOOTP reply gives its address to the client's MAC", "[assets]") {
  Rig r;
  const char* B = "02:00:00:00:b0:07";
  auto bootp = [&](const char* op, const std::string& more) {
    std::string l = dhcp_line(op, "", B, ",\"bootp\":true" + more);
    l.erase(l.find("\"message_type\":\"\","), 18);
    return l;
  };
  r.t->on_event("dhcp", bootp("request", ""));
  CHECK(r.t->size() == 0);
  r.t->on_event("dhcp", bootp("reply", ",\"assigned_ip\":\"10.1.0.70\",\"boot_file\":\"pump.bin\""));
  const auto* d = r.t->find(ip("10.1.0.70"));
  REQUIRE(d);
  CHECK(format_mac(d->mac) == B);
  // A DHCP OFFER, which has a type, is still only an offer.
  r.t->on_event("dhcp", dhcp_line("reply", "OFFER", B, ",\"assigned_ip\":\"10.1.0.71\""));
  CHECK(r.t->find(ip("10.1.0.71")) == nullptr);
}

TEST_CASE("asset tracker: a router's DHCP names stay with the router's address", "[assets]") {
  Rig r;
  const char* R = "02:00:00:00:53:99";
  r.t->on_event("dhcp", dhcp_line("request", "REQUEST", R, ",\"hostname\":\"core-router\",\"vendor_class\":\"RouterOS\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", R, ",\"assigned_ip\":\"10.10.0.1\""));
  // Off-link devices reached through it: their frames carry the router's MAC.
  for (const char* off_link : {"10.10.1.10", "10.10.5.5"}) {
    auto f = flow(off_link, "10.10.2.20", 104, nullptr);
    REQUIRE(parse_mac(R, f.client_mac));
    r.t->judge(f, r.out);
    const auto* d = r.t->find(ip(off_link));
    REQUIRE(d);
    CHECK(format_mac(d->mac) == R);
    CHECK(d->hostname.empty());
    CHECK(d->dhcp_vendor_class.empty());
  }
  const auto* router = r.t->find(ip("10.10.0.1"));
  REQUIRE(router);
  CHECK(router->hostname == "core-router");
  // The router renews from its address with a new name: the router's device only.
  r.t->on_event("dhcp", dhcp_from("10.10.0.1", "request", "REQUEST", R, ",\"client_ip\":\"10.10.0.1\",\"hostname\":\"edge-router\""));
  CHECK(router->hostname == "edge-router");
  CHECK(r.t->find(ip("10.10.5.5"))->hostname.empty());
  // The MAC moves to another address: the former one loses the names.
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", R, ",\"assigned_ip\":\"10.10.0.2\""));
  CHECK(router->hostname.empty());
  CHECK(r.t->find(ip("10.10.0.2"))->hostname == "edge-router");
}

TEST_CASE("asset tracker: the DHCP option list is kept whole, or cut after a whole code", "[assets]") {
  Rig r;
  std::string list = "1,3";
  for (int i = 100; i < 150; ++i) {
    list += ',';
    list += std::to_string(i);
  }
  REQUIRE(list.size() > 128);
  r.t->on_event("dhcp", dhcp_from("10.3.0.5", "request", "INFORM", "02:00:00:00:00:31",
                                  ",\"client_ip\":\"10.3.0.5\",\"param_list\":[" + list + "]"));
  const auto* d = r.t->find(ip("10.3.0.5"));
  REQUIRE(d);
  CHECK(d->dhcp_fingerprint == list);
  // 255 codes of three digits: still whole.
  std::string full;
  for (int i = 0; i < 255; ++i) full += (i ? ",2" : "2") + std::to_string(10 + i % 46);
  REQUIRE(full.size() == 1019);
  r.t->on_event("dhcp", dhcp_from("10.3.0.5", "request", "INFORM", "02:00:00:00:00:31",
                                  ",\"client_ip\":\"10.3.0.5\",\"param_list\":[" + full + "]"));
  CHECK(d->dhcp_fingerprint == full);
  // Longer (option pieces joined): cut after a whole code, marked.
  std::string longer = full + "," + full;
  r.t->on_event("dhcp", dhcp_from("10.3.0.5", "request", "INFORM", "02:00:00:00:00:31",
                                  ",\"client_ip\":\"10.3.0.5\",\"param_list\":[" + longer + "]"));
  const std::string& fp = d->dhcp_fingerprint;
  CHECK(fp.size() <= 1024);
  REQUIRE(fp.size() > 4);
  CHECK(fp.substr(fp.size() - 4) == ",...");
  CHECK(longer.compare(0, fp.size() - 4, fp, 0, fp.size() - 4) == 0);
  CHECK(longer[fp.size() - 4] == ',');
}

TEST_CASE("asset tracker: the MACs DHCP names are remembered up to a bound, the least recently seen forgotten", "[assets]") {
  AssetOptions o;
  o.max_dhcp_clients = 2;
  Rig r(o);
  // A client named itself; then a flood of made-up MACs.
  r.t->on_event("dhcp", dhcp_line("request", "DISCOVER", "02:00:00:00:01:00", ",\"hostname\":\"ct-room3\""));
  for (int i = 0; i < 5; ++i) {
    char mac[18];
    std::snprintf(mac, sizeof mac, "02:00:00:00:00:%02x", i);
    r.t->on_event("dhcp", dhcp_line("request", "DISCOVER", mac, ",\"hostname\":\"h\""));
  }
  // A client after the flood is still named.
  r.t->on_event("dhcp", dhcp_line("request", "DISCOVER", "02:00:00:00:02:00", ",\"hostname\":\"pump-7\""));
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", "02:00:00:00:02:00", ",\"assigned_ip\":\"10.0.0.7\""));
  REQUIRE(r.t->find(ip("10.0.0.7")));
  CHECK(r.t->find(ip("10.0.0.7"))->hostname == "pump-7");
  // The one before the flood was forgotten.
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", "02:00:00:00:01:00", ",\"assigned_ip\":\"10.0.0.8\""));
  REQUIRE(r.t->find(ip("10.0.0.8")));
  CHECK(r.t->find(ip("10.0.0.8"))->hostname.empty());
  r.t->finish(Timestamp{1700000000000000}, r.out);
  CHECK(r.out.counters().get("assets.dhcp_evicted") == 6);
}

namespace {
// A DHCPv6 event as the DHCP dissector writes it, sent from `src`.
std::string dhcp6_from(const char* src, const char* op, const char* type, const char* mac, const std::string& more) {
  return std::string("{\"ts\":\"2023-11-14T22:13:20.000000Z\",\"event_type\":\"dhcp\",\"flow_id\":\"F6\",\"src_ip\":\"") +
         src + "\",\"src_port\":546,\"dst_ip\":\"ff02::1:2\",\"dst_port\":547,\"proto\":"
               "\"udp\",\"dhcp\":{\"version\":6,\"direction\":\"to_server\",\"op\":\"" +
         op + "\",\"message_type\":\"" + type + "\",\"xid\":\"0x6f37cb\",\"client_mac\":\"" + mac + "\"" + more + "}}";
}
std::string dhcp6_line(const char* op, const char* type, const char* mac, const std::string& more) {
  return dhcp6_from("fe80::200:5eff:fe00:5301", op, type, mac, more);
}
}  // namespace

TEST_CASE("asset tracker: DHCPv6 names the DUID's MAC; the REPLY's address and the link-local one get the names",
          "[assets]") {
  Rig r;
  // SOLICIT from the client's link-local address: its FQDN's first label is the host name,
  // the ORO its DHCPv6 fingerprint.
  r.t->on_event("dhcp", dhcp6_line("request", "SOLICIT", "00:00:5e:00:53:01",
                                   ",\"client_ip\":\"fe80::200:5eff:fe00:5301\",\"param_list\":[23,24,39],"
                                   "\"client_fqdn\":\"ct-room3.ward3.hospital.example\",\"vendor_enterprise\":32473,"
                                   "\"vendor_class\":\"ACME-CT-7\""));
  const auto* ll = r.t->find(ip("fe80::200:5eff:fe00:5301"));
  REQUIRE(ll);
  CHECK(ll->hostname == "ct-room3");
  CHECK(ll->dhcp_vendor_class == "ACME-CT-7");
  CHECK(ll->dhcp_fingerprint6 == "23,24,39");
  CHECK(ll->dhcp_fingerprint.empty());
  // An ADVERTISE is only an offer; the REPLY's IA_NA address is the client's.
  r.t->on_event("dhcp", dhcp6_line("reply", "ADVERTISE", "00:00:5e:00:53:01",
                                   ",\"client_ip\":\"fe80::200:5eff:fe00:5301\",\"assigned_ip\":\"fd77:3::101\""));
  CHECK(!r.t->find(ip("fd77:3::101")));
  r.t->on_event("dhcp", dhcp6_line("reply", "REPLY", "00:00:5e:00:53:01",
                                   ",\"client_ip\":\"fe80::200:5eff:fe00:5301\",\"assigned_ip\":\"fd77:3::101\","
                                   "\"client_fqdn\":\"server-chosen\""));
  const auto* g = r.t->find(ip("fd77:3::101"));
  REQUIRE(g);
  CHECK(g->hostname == "ct-room3");  // a server's FQDN is no client's name for itself
  CHECK(g->dhcp_fingerprint6 == "23,24,39");
  CHECK(g->mac == std::array<uint8_t, 6>{0x00, 0x00, 0x5e, 0x00, 0x53, 0x01});
  CHECK(r.t->find(ip("fe80::200:5eff:fe00:5301"))->hostname == "ct-room3");  // still tied
  // The DHCPv4 fingerprint of the same MAC is kept apart: a dual-stack device shows both.
  r.t->on_event("dhcp", dhcp_from("10.77.3.101", "request", "REQUEST", "00:00:5e:00:53:01",
                                  ",\"client_ip\":\"10.77.3.101\",\"hostname\":\"ct-room3\",\"param_list\":[1,3,6]"));
  r.t->flush(Timestamp{1700000000000000}, r.out);
  auto a = r.assets();
  json v4;
  for (auto& x : a) if (x["ip"] == "10.77.3.101") v4 = x;
  CHECK(v4["dhcp"] == json::parse(R"({"vendor_class":"ACME-CT-7","fingerprint":"1,3,6","fingerprint6":"23,24,39"})"));
  // A DUID that holds no Ethernet address names nothing.
  r.t->on_event("dhcp", dhcp6_line("request", "SOLICIT", "", ",\"client_ip\":\"fe80::99\""));
  CHECK(!r.t->find(ip("fe80::99")));
}

TEST_CASE("asset tracker: DHCPv6 names go only to the addresses the exchange tied to the DUID's MAC", "[assets]") {
  Rig r;
  const char* X = "00:00:5e:00:53:04";
  const char* LL = "fe80::200:5eff:fe00:5304";
  const std::string names = ",\"param_list\":[23,24,39],\"client_fqdn\":\"xray-mobile-2.ward3.hospital.example\"";
  // Relayed: the relay names the client's address, but the datagram is the relay's; it ties none.
  r.t->on_event("dhcp", dhcp6_from("fd77:5::1", "request", "SOLICIT", X, ",\"client_ip\":\"" + std::string(LL) + "\"" + names));
  CHECK(!r.t->find(ip(LL)));
  // Nor does a client's message naming another address than the one it is sent from.
  r.t->on_event("dhcp", dhcp6_from("fe80::bad", "request", "REQUEST", X, ",\"client_ip\":\"fd77:5::66\"" + names));
  CHECK(!r.t->find(ip("fd77:5::66")));
  CHECK(!r.t->find(ip("fe80::bad")));
  // The server's REPLY ties its IA_NA address and the client's address it answers.
  r.t->on_event("dhcp", dhcp6_from("fd77:3::1", "reply", "REPLY", X,
                                   ",\"client_ip\":\"" + std::string(LL) + "\",\"assigned_ip\":\"fd77:5::104\""));
  REQUIRE(r.t->find(ip(LL)));
  CHECK(r.t->find(ip(LL))->hostname == "xray-mobile-2");
  const auto* g = r.t->find(ip("fd77:5::104"));
  REQUIRE(g);
  CHECK(g->hostname == "xray-mobile-2");
  CHECK(g->dhcp_fingerprint6 == "23,24,39");
  // A DHCPv4 lease of the same MAC ties its IPv4 address, and unties no IPv6 one.
  r.t->on_event("dhcp", dhcp_line("reply", "ACK", X, ",\"assigned_ip\":\"10.77.5.104\""));
  CHECK(r.t->find(ip("10.77.5.104"))->hostname == "xray-mobile-2");
  CHECK(g->hostname == "xray-mobile-2");
  CHECK(r.t->find(ip(LL))->hostname == "xray-mobile-2");
  // A new IA_NA address: the former one loses the names, the link-local one keeps them.
  r.t->on_event("dhcp", dhcp6_from("fd77:3::1", "reply", "REPLY", X,
                                   ",\"client_ip\":\"" + std::string(LL) + "\",\"assigned_ip\":\"fd77:5::105\""));
  CHECK(g->hostname.empty());
  CHECK(g->dhcp_fingerprint6.empty());
  CHECK(r.t->find(ip("fd77:5::105"))->hostname == "xray-mobile-2");
  CHECK(r.t->find(ip(LL))->hostname == "xray-mobile-2");
  CHECK(r.t->find(ip("10.77.5.104"))->hostname == "xray-mobile-2");
  // Another MAC's frames at the IA_NA address (a router's, a replaced device's): no names.
  auto f = flow("fd77:5::105", "fd77:3::20", 104, nullptr);
  REQUIRE(parse_mac("02:00:00:00:53:99", f.client_mac));
  r.t->judge(f, r.out);
  CHECK(r.t->find(ip("fd77:5::105"))->hostname.empty());
  // A device behind a router whose frames carry the DUID's MAC is not named by it either.
  auto routed = flow("fd77:9::9", "fd77:3::20", 104, nullptr);
  REQUIRE(parse_mac(X, routed.client_mac));
  r.t->judge(routed, r.out);
  CHECK(r.t->find(ip("fd77:9::9"))->hostname.empty());
}

TEST_CASE("asset tracker: a called AE title is the server's once the server accepted it", "[assets]") {
  Rig r;
  FlowFacts rejected;
  rejected.app = "dicom";
  rejected.set_attr("dicom.calling_ae", "INTRUDER");
  rejected.set_attr("dicom.called_ae", "ORTHANC");  // answered by A-ASSOCIATE-RJ
  r.t->judge(flow("10.10.1.99", "10.10.2.20", 11112, &rejected), r.out);
  const auto* s = r.t->find(ip("10.10.2.20"));
  REQUIRE(s);
  CHECK(s->ae_titles.empty());
  FlowFacts accepted = rejected;
  accepted.set_attr("dicom.called_ae", "PACS01");
  accepted.set_attr("dicom.result", "accepted");
  r.t->judge(flow("10.10.1.99", "10.10.2.20", 11112, &accepted), r.out);
  CHECK(s->ae_titles == std::vector<std::string>{"PACS01"});
}

TEST_CASE("asset tracker: first seen is the start of the device's earliest flow", "[assets]") {
  Rig r;
  // One HL7 connection held an hour: it ends long after it started.
  auto f = flow("10.10.1.10", "10.10.3.30", 2575, nullptr, 1700000000000000);
  f.end = {1700000000000000 + 3540000000};
  r.t->judge(f, r.out);
  CHECK(r.t->find(ip("10.10.1.10"))->first_seen.usec == 1700000000000000);
  CHECK(r.t->find(ip("10.10.1.10"))->last_seen.usec == 1700000000000000 + 3540000000);
  auto a = r.assets();
  REQUIRE(a.size() == 2);
  CHECK(a[0]["first_seen"] == "2023-11-14T22:13:20.000000Z");
  CHECK(a[1]["first_seen"] == "2023-11-14T22:13:20.000000Z");
  // A flow that started earlier and ended later still moves it back.
  auto g = flow("10.10.1.10", "10.10.3.31", 2575, nullptr, 1700000000000000 - 60000000);
  g.end = {1700000000000000 + 3600000000};
  r.t->judge(g, r.out);
  CHECK(r.t->find(ip("10.10.1.10"))->first_seen.usec == 1700000000000000 - 60000000);
}

TEST_CASE("asset tracker: a server's HL7 application from the ACKs it sends", "[assets]") {
  Rig r;
  FlowFacts facts;
  facts.app = "hl7";
  facts.set_attr("hl7.msh3", "CT01");
  facts.set_attr("hl7.msh4", "RADIOLOGY");
  facts.set_attr("hl7.server_msh3", "RIS01");
  facts.set_attr("hl7.server_msh4", "HOSPITAL");
  r.t->judge(flow("10.10.1.10", "10.10.3.30", 2575, &facts), r.out);
  const auto* c = r.t->find(ip("10.10.1.10"));
  const auto* s = r.t->find(ip("10.10.3.30"));
  REQUIRE(c);
  REQUIRE(s);
  REQUIRE(c->hl7_apps.size() == 1);
  CHECK(c->hl7_apps[0].app == "CT01");
  REQUIRE(s->hl7_apps.size() == 1);
  CHECK(s->hl7_apps[0].app == "RIS01");
  CHECK(s->hl7_apps[0].facility == "HOSPITAL");
}

TEST_CASE("asset tracker: SMB over the NetBIOS session service is named by the application nDPI read") {
  Rig r;
  auto f = flow("10.0.0.5", "10.0.0.6", 445, nullptr);
  f.ndpi_protocol = "NetBIOS";
  f.ndpi_app = "SMBv23";
  r.t->judge(f, r.out);
  CHECK(r.t->service_name(r.t->find(ip("10.0.0.6"))->offered.at(0)) == "smbv23");
  CHECK(r.t->service_name(r.t->find(ip("10.0.0.5"))->used.at(0)) == "smbv23");
  // A service behind TLS keeps the protocol's name: the app is whose server it is.
  auto g = flow("10.0.0.5", "10.0.0.7", 443, nullptr);
  g.ndpi_protocol = "TLS";
  g.ndpi_app = "Google";
  r.t->judge(g, r.out);
  CHECK(r.t->service_name(r.t->find(ip("10.0.0.7"))->offered.at(0)) == "tls");
}

namespace {
// A flow from `client` at `mac` to 10.1.0.1, its facts naming `ae` and `sni` when given.
void flow_at(Rig& r, const char* client, const char* mac, uint16_t port, int64_t t, const char* ae = nullptr,
             const char* sni = nullptr) {
  FlowFacts facts;
  if (ae) {
    facts.app = "dicom";
    facts.set_attr("dicom.calling_ae", ae);
    facts.set_attr("dicom.called_ae", "PACS");
    facts.set_attr("dicom.result", "accepted");
  }
  auto f = flow(client, "10.1.0.1", port, ae ? &facts : nullptr, t);
  REQUIRE(parse_mac(mac, f.client_mac));
  if (sni) f.sni = sni;
  r.t->judge(f, r.out);
}
// The asset events of one address.
std::vector<json> assets_of(Rig& r, const char* address) {
  std::vector<json> out;
  for (auto& a : r.assets()) if (a["ip"] == address) out.push_back(a);
  return out;
}
}  // namespace

TEST_CASE("asset tracker: another device taking an address starts its record again", "[assets]") {
  Rig r;
  const char* A = "00:d0:ef:00:00:0a";
  const char* B = "02:00:00:00:00:0b";
  flow_at(r, "10.1.0.50", A, 11112, 1700000000000000, "CT01", "pacs.example");
  flow_at(r, "10.1.0.50", A, 2575, 1700000001000000);
  // A new device (another MAC) has the address: nothing the inventory knew of A is B's.
  flow_at(r, "10.1.0.50", B, 443, 1700000100000000);
  auto a = assets_of(r, "10.1.0.50");
  REQUIRE(!a.empty());
  json last = a.back();
  CHECK(last["ip"] == "10.1.0.50");
  CHECK(last["changes"] == json::array({"replaced", "mac", "service_used"}));
  CHECK(last["mac"] == B);
  CHECK(last["previous_mac"] == A);
  CHECK_FALSE(last.contains("mac_vendor"));
  CHECK_FALSE(last.contains("dicom"));
  CHECK_FALSE(last.contains("tls_sni"));
  CHECK_FALSE(last.contains("mac_flaps"));
  REQUIRE(last["services_used"].size() == 1);
  CHECK(last["services_used"][0]["port"] == 443);
  CHECK(last["flows"] == 1);
  CHECK(last["bytes"] == 900);
  CHECK(last["first_seen"] == "2023-11-14T22:15:00.000000Z");
  // The service budget counts only what is listed.
  CHECK(r.t->services() == 1 + 3);  // B's, and 10.1.0.1's on 11112, 2575 and 443
}

TEST_CASE("asset tracker: two MACs taking turns at an address are told once, the turns counted", "[assets]") {
  Rig r;
  const char* A = "00:d0:ef:00:00:0a";
  const char* B = "02:00:00:00:00:0b";
  int64_t t = 1700000000000000;
  flow_at(r, "10.1.0.60", A, 11112, t, "CT01");
  flow_at(r, "10.1.0.60", B, 11112, t += 1000000, "CT01");  // replaced: A's record is gone
  size_t before = assets_of(r, "10.1.0.60").size();
  flow_at(r, "10.1.0.60", A, 11112, t += 1000000, "CT01");  // the first turn back: told
  auto a = assets_of(r, "10.1.0.60");
  REQUIRE(a.size() == before + 1);
  CHECK(a.back()["changes"] == json::array({"mac"}));
  CHECK(a.back()["mac"] == A);
  CHECK(a.back()["previous_mac"] == B);
  CHECK(a.back()["mac_flaps"] == 1);
  CHECK(a.back()["dicom"]["ae_titles"] == json::array({"CT01"}));  // the record is kept
  // Fifty turns more: no event of their own.
  for (int i = 0; i < 50; ++i) flow_at(r, "10.1.0.60", i % 2 ? A : B, 11112, t += 1000000, "CT01");
  CHECK(assets_of(r, "10.1.0.60").size() == before + 1);
  CHECK(r.t->find(ip("10.1.0.60"))->mac_flaps == 51);
  // Another change is told with the record as it is now.
  flow_at(r, "10.1.0.60", A, 11112, t += 1000000, "CT02");
  a = assets_of(r, "10.1.0.60");
  REQUIRE(a.size() == before + 2);
  CHECK(a.back()["changes"] == json::array({"ae_title"}));
  CHECK(a.back()["mac_flaps"] == 51);
  // Turns since the last event are told once at the end, with the last MAC.
  flow_at(r, "10.1.0.60", B, 11112, t += 1000000, "CT02");
  flow_at(r, "10.1.0.60", A, 11112, t += 1000000, "CT02");
  flow_at(r, "10.1.0.60", B, 11112, t += 1000000, "CT02");
  CHECK(assets_of(r, "10.1.0.60").size() == before + 2);
  r.t->finish(Timestamp{t + 1000000}, r.out);
  a = assets_of(r, "10.1.0.60");
  REQUIRE(a.size() == before + 3);
  CHECK(a.back()["changes"] == json::array({"mac"}));
  CHECK(a.back()["mac"] == B);
  CHECK(a.back()["mac_flaps"] == 54);
  CHECK(r.out.counters().get("assets.mac_flaps") == 54);
  // A third MAC is another device again.
  flow_at(r, "10.1.0.60", "02:00:00:00:00:0c", 11112, t += 1000000);
  CHECK(assets_of(r, "10.1.0.60").back()["changes"][0] == "replaced");
  CHECK_FALSE(assets_of(r, "10.1.0.60").back().contains("mac_flaps"));
}

TEST_CASE("asset tracker: one MAC at two addresses by turns gives no event per turn", "[assets]") {
  Rig r;
  const char* A = "00:d0:ef:00:00:0a";
  int64_t t = 1700000000000000;
  for (int i = 0; i < 40; ++i) flow_at(r, i % 2 ? "10.1.0.71" : "10.1.0.70", A, 11112, t += 1000000);
  // 10.1.0.70, 10.1.0.71 and the server, each new once.
  CHECK(r.assets().size() == 3);
}
