// Policy loading: the example policies load; every kind of error is reported at file:line:column
// with what was expected, and nothing loads with a silent default.
#include <catch2/catch.hpp>

#include <ctime>
#include <filesystem>
#include <fstream>

#include "dissectors/proprietary/signature.h"
#include "policies/engine/policy.h"

using namespace medmon::policy;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() / ("medmon-policy-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::create_directories(dir / "devices");
    fs::create_directories(dir / "sites");
    fs::create_directories(dir / "sigs");
  }
  ~TempDir() { std::error_code ec; fs::remove_all(dir, ec); }
  static int& counter() { static int c = 0; return c; }
  std::string write(const std::string& rel, const std::string& text) {
    std::ofstream o(dir / rel);
    o << text;
    return (dir / rel).string();
  }
};

const char* kModel = R"(schema: medmon.model/v1
model:
  id: test-modality
mds2_derived:
  internal_only: true
flows:
  - id: store
    initiator: device
    peer_role: pacs
    l4: tcp
    dst_port: [104]
    app: dicom
)";

const char* kSite = R"(schema: medmon.site/v1
internal_networks: [10.0.0.0/8]
zones:
  - {name: modality, cidrs: [10.1.0.0/24]}
roles:
  - {role: pacs, ips: [10.2.0.20], ports: [11112]}
devices:
  - {name: mod-1, model: test-modality, ip: 10.1.0.10, zone: modality}
)";

std::string all(const Errors& e) {
  std::string s;
  for (auto& x : e.list) s += x.format() + "\n";
  return s;
}

}  // namespace

TEST_CASE("example policies load", "[policy][loader]") {
  Errors errs;
  auto site = load_site(std::string(POLICIES_DIR) + "/sites/demo-site.yaml", "", errs);
  INFO(all(errs));
  REQUIRE(site);
  CHECK(errs.empty());
  CHECK(site->devices.size() == 3);
  CHECK(site->find_model("acme-ct"));
  CHECK(site->find_model("acme-pacs"));
  const Model* nema = site->find_model("nema-example-glucose");
  REQUIRE(nema);
  // The imported model keeps the form's answers and mapping.
  CHECK(nema->sw_value("internal_only") == 1);
  CHECK(nema->sw_value("phi_encrypted_claim") == 0);
  CHECK(nema->answers.at("TXCF-2").answer == "no");
  CHECK(nema->answers.at("TXCF-2").nist == "CM-7");
  // RMOT-1 = No forbids remote-service protocols without anyone writing it down.
  bool rdp_forbidden = false;
  for (auto& f : nema->forbidden) for (auto& a : f.apps) if (a == "rdp") rdp_forbidden = true;
  CHECK(rdp_forbidden);
  for (auto& d : site->devices) CHECK(d.model);
}

TEST_CASE("a minimal valid site", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  auto sp = t.write("sites/site.yaml", kSite);
  Errors errs;
  auto site = load_site(sp, "", errs);
  INFO(all(errs));
  REQUIRE(site);
  CHECK(site->devices[0].model->flows[0].role_index == site->role_index("pacs"));
}

TEST_CASE("bad YAML is located", "[policy][loader]") {
  TempDir t;
  auto sp = t.write("sites/site.yaml", "schema: medmon.site/v1\nzones: [\n  - {name: a\n");
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  REQUIRE(errs.list.size() == 1);
  CHECK(errs.list[0].file == sp);
  CHECK(errs.list[0].line > 0);
  CHECK(errs.list[0].message.find("YAML syntax error") == 0);
}

TEST_CASE("unknown keys name what was expected", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", std::string(kModel) + "    colour: blue\n");
  auto sp = t.write("sites/site.yaml", std::string(kSite) + "colour: red\n");
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(sp + ":9:1: unknown key 'colour' in site (expected one of: schema, site, models,") != std::string::npos);
  CHECK(s.find("devices/test-modality.yaml:13:5: unknown key 'colour' in flow (expected one of: id, initiator,") != std::string::npos);
}

TEST_CASE("model keys that nothing would judge are refused, not silently kept", "[policy][loader]") {
  TempDir t;
  auto mp = t.write("devices/test-modality.yaml",
                    std::string(kModel) + "dicom:\n  transfer_syntaxes: [1.2.840.10008.1.2.1]\n  local_aes: [CT01]\n"
                                          "hl7:\n  role: receiver\n  ack_mode: original\n");
  Errors errs;
  CHECK_FALSE(load_model(mp, errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(":14:3: unknown key 'transfer_syntaxes' in dicom") != std::string::npos);
  CHECK(s.find(":15:3: unknown key 'local_aes' in dicom") != std::string::npos);
  CHECK(s.find(":18:3: unknown key 'ack_mode' in hl7") != std::string::npos);
  CHECK(s.find("'role'") == std::string::npos);
}

TEST_CASE("a device's bad address is one error, and a device with no binding another", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = std::string(kSite);
  site.replace(site.find("ip: 10.1.0.10"), 13, "ip: 10.1.0.300");
  site += "  - {name: mod-2, model: test-modality, ip: []}\n";
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, (t.dir / "devices").string(), errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(errs.list.size() == 2);
  CHECK(s.find("device 'mod-1' ip: '10.1.0.300' is not an IP address") != std::string::npos);
  CHECK(s.find("device 'mod-1': needs") == std::string::npos);
  CHECK(s.find("device 'mod-2': needs 'ip', 'mac' or 'fingerprint'") != std::string::npos);
}

TEST_CASE("bad CIDRs are refused", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("10.1.0.0/24"), 11, "10.1.0.5/24");
  site.replace(site.find("10.0.0.0/8"), 10, "10.0.0.0/40");
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(sp + ":2:21: internal_networks: '10.0.0.0/40' is not an IP address or CIDR") != std::string::npos);
  CHECK(s.find(sp + ":4:30: zone 'modality' cidrs: '10.1.0.5/24' is not an IP address or CIDR (expected e.g. 10.10.1.0/24 with zero host bits") != std::string::npos);
}

TEST_CASE("a model role the site does not bind", "[policy][loader]") {
  TempDir t;
  auto mp = t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("role: pacs"), 10, "role: archive");
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(mp + ":9:16: flow 'store': unknown role 'pacs' (not bound in " + sp) != std::string::npos);
}

TEST_CASE("a model's cross-reference errors are told once, however many devices run it", "[policy][loader]") {
  TempDir t;
  auto mp = t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("role: pacs"), 10, "role: archive");
  site += "  - {name: mod-2, model: test-modality, ip: 10.1.0.11, zone: modality}\n";
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  INFO(all(errs));
  REQUIRE(errs.list.size() == 1);
  CHECK(errs.list[0].message.find("flow 'store': unknown role 'pacs'") == 0);
}

TEST_CASE("a model file that fails to load is told once, whether listed under models: or found by id", "[policy][loader]") {
  TempDir t;
  std::string model = kModel;
  model.replace(model.find("  internal_only: true\n"), 22, "  internal_only: true\n  internal_only: false\n");
  t.write("devices/test-modality.yaml", model);
  std::string site = std::string(kSite) + "  - {name: mod-2, model: test-modality, ip: 10.1.0.11, zone: modality}\n" +
                     "models: [../devices/test-modality.yaml]\n";
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  INFO(all(errs));
  REQUIRE(errs.list.size() == 1);
  CHECK(errs.list[0].message.find("duplicate key 'internal_only'") != std::string::npos);
}

TEST_CASE("a model file under models: that fails to load, outside the models folder, is not also 'not found'", "[policy][loader]") {
  TempDir t;
  std::string model = kModel;
  model.replace(model.find("dst_port: [104]"), 15, "dst_port: [104, 0]");
  fs::create_directories(t.dir / "elsewhere");
  t.write("elsewhere/test-modality.yaml", model);
  std::string site = std::string(kSite) + "models: [../elsewhere/test-modality.yaml]\n";
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  INFO(all(errs));
  REQUIRE(errs.list.size() == 1);
  CHECK(errs.list[0].file.find("elsewhere/test-modality.yaml") != std::string::npos);
  CHECK(errs.list[0].message.find("dst_port") != std::string::npos);
}

TEST_CASE("a model that does not exist", "[policy][loader]") {
  TempDir t;
  auto sp = t.write("sites/site.yaml", kSite);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(sp + ":8:26: device 'mod-1' model: model 'test-modality' not found") != std::string::npos);
  // A models: path that does not exist is located too.
  auto sp2 = t.write("sites/site2.yaml", std::string(kSite) + "models: [../devices/nope.yaml]\n");
  Errors e2;
  CHECK_FALSE(load_site(sp2, "", e2));
  CHECK(all(e2).find(sp2 + ":9:10: models: file") != std::string::npos);
}

TEST_CASE("a model found by id may be spelt .yml", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yml", kModel);
  auto sp = t.write("sites/site.yaml", kSite);
  Errors errs;
  auto s = load_site(sp, (t.dir / "devices").string(), errs);
  INFO(all(errs));
  REQUIRE(s);
  REQUIRE(s->devices.size() == 1);
  CHECK(s->find_model("test-modality"));
  // .yaml wins when both exist.
  t.write("devices/test-modality.yaml", std::string(kModel) + "dicom:\n  ae_titles: [FROM_YAML]\n");
  Errors e2;
  auto s2 = load_site(sp, (t.dir / "devices").string(), e2);
  INFO(all(e2));
  REQUIRE(s2);
  CHECK(s2->devices[0].ae_titles == std::vector<std::string>{"FROM_YAML"});
}

TEST_CASE("wrong values say what was expected", "[policy][loader]") {
  TempDir t;
  std::string model = kModel;
  model.replace(model.find("initiator: device"), 17, "initiator: server");
  model.replace(model.find("l4: tcp"), 7, "l4: sctp");
  model.replace(model.find("internal_only: true"), 19, "internal_only: maybe");
  model += "    tls: mandatory\n    app: gopher\n";
  auto mp = t.write("devices/test-modality.yaml", model);
  Errors errs;
  CHECK_FALSE(load_model(mp, errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(":5:18: mds2_derived internal_only: expected true or false") != std::string::npos);
  CHECK(s.find("initiator: 'server' (expected device, peer or any)") != std::string::npos);
  CHECK(s.find("l4: 'sctp' (expected tcp, udp, icmp or any)") != std::string::npos);
  CHECK(s.find("tls: 'mandatory' (expected required, optional or forbidden)") != std::string::npos);
  // A key given twice is an error, not "first one wins".
  CHECK(s.find(":14:5: duplicate key 'app' in flow") != std::string::npos);
  std::string m3 = kModel;
  m3.replace(m3.find("    app: dicom\n"), 15, "    app: [dicom, dicm, ftp/ssh, acme-ctl]\n");
  auto mp3 = t.write("devices/m3.yaml", m3);
  Errors e3;
  CHECK_FALSE(load_model(mp3, e3));
  std::string s3 = all(e3);
  INFO(s3);
  CHECK(s3.find(":12:10: flow 'store' app: unknown application 'dicm' (did you mean 'dicom'?)") != std::string::npos);
  CHECK(s3.find("unknown application 'ftp/ssh'") != std::string::npos);
  CHECK(s3.find("'acme-ctl'") == std::string::npos);  // a proprietary signature name is fine
  // Missing schema and unknown switch names.
  auto mp2 = t.write("devices/m2.yaml", "model: {id: x}\nmds2_derived: {internal_olny: true}\n");
  Errors e2;
  CHECK_FALSE(load_model(mp2, e2));
  std::string s2 = all(e2);
  CHECK(s2.find(mp2 + ":1:1: missing key 'schema' (expected schema: medmon.model/v1)") != std::string::npos);
  CHECK(s2.find(mp2 + ":2:16: unknown key 'internal_olny' in mds2_derived") != std::string::npos);
  // A schema version the reader does not know, in a model and in a site.
  auto mp4 = t.write("devices/m4.yaml", "schema: medmon.model/v2\nmodel: {id: x}\n");
  Errors e4;
  CHECK_FALSE(load_model(mp4, e4));
  CHECK(all(e4).find(mp4 + ":1:9: unsupported schema 'medmon.model/v2' (expected medmon.model/v1)") != std::string::npos);
  auto sp4 = t.write("sites/s4.yaml", "schema: medmon.site/v2\nsite: {name: s}\n");
  Errors e5;
  CHECK_FALSE(load_site(sp4, "", e5));
  CHECK(all(e5).find(sp4 + ":1:9: unsupported schema 'medmon.site/v2' (expected medmon.site/v1)") != std::string::npos);
}

TEST_CASE("nDPI's protocol names and loaded signature names are applications, not typos", "[policy][loader]") {
  TempDir t;
  // hl7v2 is two letters away from hl7: taken for a typo unless a signature of that name is loaded.
  t.write("sigs/hl7v2.yaml", "name: hl7v2\ntransport: tcp\nprobe: {bytes: [{offset: 0, hex: \"0b 4d 53 48\"}]}\n");
  std::string model = kModel;
  model.replace(model.find("    app: dicom\n"), 15, "    app: [tftp, dhcpv6, mdns, MQTT, hl7v2]\n");
  auto mp = t.write("devices/test-modality.yaml", model);
  Errors before;
  CHECK_FALSE(load_model(mp, before));
  CHECK(all(before).find("unknown application 'hl7v2' (did you mean 'hl7'?)") != std::string::npos);
  CHECK(all(before).find("'tftp'") == std::string::npos);
  CHECK(all(before).find("'dhcpv6'") == std::string::npos);
  CHECK(all(before).find("'mdns'") == std::string::npos);
  CHECK(all(before).find("'MQTT'") == std::string::npos);
  CHECK(medmon::proprietary::add_signatures((t.dir / "sigs").string()).empty());
  Errors errs;
  CHECK(load_model(mp, errs));
  INFO(all(errs));
  CHECK(errs.empty());
  // Neither nDPI's nor a signature's: still a typo.
  std::string m2 = kModel;
  m2.replace(m2.find("    app: dicom\n"), 15, "    app: [dicm, tftpp]\n");
  Errors e2;
  CHECK_FALSE(load_model(t.write("devices/m2.yaml", m2), e2));
  CHECK(all(e2).find("unknown application 'dicm' (did you mean 'dicom'?)") != std::string::npos);
  CHECK(all(e2).find("unknown application 'tftpp' (did you mean 'ftp'?)") != std::string::npos);
}

TEST_CASE("a switch, answer or severity given twice is an error", "[policy][loader]") {
  TempDir t;
  std::string model = kModel;
  model.replace(model.find("  internal_only: true\n"), 22, "  internal_only: true\n  internal_only: false\n");
  model += "mds2:\n  answers:\n    CONN-4: {answer: \"no\"}\n    CONN-4: {answer: \"yes\"}\n";
  t.write("devices/test-modality.yaml", model);
  auto sp = t.write("sites/site.yaml", std::string(kSite) + "severity:\n  flow.undeclared: low\n  flow.undeclared: high\n");
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find("devices/test-modality.yaml:6:3: duplicate key 'internal_only' in mds2_derived") != std::string::npos);
  CHECK(s.find("devices/test-modality.yaml:17:5: duplicate key 'CONN-4' in mds2 answers") != std::string::npos);
  CHECK(s.find(sp + ":11:3: duplicate key 'flow.undeclared' in severity") != std::string::npos);
  CHECK(errs.list.size() == 3);
}

TEST_CASE("CIDR parsing and matching", "[policy]") {
  Cidr c;
  REQUIRE(Cidr::parse("10.10.0.0/16", c));
  medmon::IpAddr a;
  REQUIRE(medmon::IpAddr::parse("10.10.200.1", a));
  CHECK(c.contains(a));
  REQUIRE(medmon::IpAddr::parse("10.11.0.1", a));
  CHECK_FALSE(c.contains(a));
  CHECK(Cidr::parse("fd00::/8", c));
  CHECK(Cidr::parse("10.1.2.3", c));
  CHECK(c.bits == 32);
  CHECK_FALSE(Cidr::parse("10.1.2.3/33", c));
  CHECK_FALSE(Cidr::parse("10.1.2.3/24", c));
  CHECK_FALSE(Cidr::parse("10.1.2/24", c));
  CHECK_FALSE(Cidr::parse("10.1.2.0/", c));
  CHECK(Cidr::parse("0.0.0.0/0", c));
}

TEST_CASE("DICOM c_get and user_identity values are checked", "[policy][loader]") {
  TempDir t;
  std::string model = std::string(kModel) +
                      "dicom:\n  dimse_in: [C-ECHO, C-GET]\n  c_get: {allowed: false}\n"
                      "  user_identity: [none, username_passcode, password]\n";
  auto mp = t.write("devices/test-modality.yaml", model);
  Errors errs;
  CHECK_FALSE(load_model(mp, errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(":15:20: dicom c_get allowed: false, but dimse_in lists C-GET") != std::string::npos);
  CHECK(s.find(":16:18: dicom user_identity: unknown type 'password'") != std::string::npos);
  CHECK(s.find("'username_passcode'") == std::string::npos);  // the standard's name is accepted
  auto ok = t.write("devices/m2.yaml", std::string(kModel) +
                                           "dicom:\n  c_get: {allowed: true}\n  user_identity: [none, kerberos, jwt]\n");
  Errors e2;
  CHECK(load_model(ok, e2));
}

TEST_CASE("AE titles the wire cannot carry are refused where they are written", "[policy][loader]") {
  TempDir t;
  // Model AE titles and C-MOVE destinations (role references pass).
  auto mp = t.write("devices/test-modality.yaml",
                    std::string(kModel) + "dicom:\n  ae_titles: [CT01, CT01CT01CT01CT01X]\n"
                                          "  c_move: {allowed: true, allowed_destinations: [\"role:pacs\", \"A\\\\B\"]}\n");
  Errors errs;
  CHECK_FALSE(load_model(mp, errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(":14:21: dicom ae_titles: AE title 'CT01CT01CT01CT01X' is longer than 16 characters") != std::string::npos);
  CHECK(s.find("holds a backslash") != std::string::npos);
  CHECK(s.find("role:pacs") == std::string::npos);
  // Site roles and devices; 16 characters and padding spaces are fine.
  t.write("devices/test-modality.yaml", kModel);
  std::string site = std::string(kSite);
  site.replace(site.find("ports: [11112]"), 14, "ports: [11112], ae_titles: [\" PACS0123456789AB \", \"\"]");
  site.replace(site.find("zone: modality}\n", site.find("devices:")), 16, "zone: modality, ae_title: MODALITY-AE-TITLE-1}\n");
  auto sp = t.write("sites/site.yaml", site);
  Errors e2;
  CHECK_FALSE(load_site(sp, (t.dir / "devices").string(), e2));
  std::string s2 = all(e2);
  INFO(s2);
  CHECK(s2.find("role 'pacs' ae_titles: AE title '' is empty") != std::string::npos);
  CHECK(s2.find("PACS0123456789AB") == std::string::npos);
  CHECK(s2.find(":8:82: device 'mod-1' ae_title: AE title 'MODALITY-AE-TITLE-1' is longer than 16 characters") !=
        std::string::npos);
}

TEST_CASE("a model's dicom ae_titles bind the devices the site gives no AE title", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", std::string(kModel) + "dicom:\n  ae_titles: [VENDOR_AE]\n");
  std::string site = std::string(kSite) + "  - {name: mod-2, model: test-modality, ip: 10.1.0.11, zone: modality, ae_title: MOD2}\n";
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  auto s = load_site(sp, (t.dir / "devices").string(), errs);
  INFO(all(errs));
  REQUIRE(s);
  REQUIRE(s->devices.size() == 2);
  CHECK(s->devices[0].ae_titles == std::vector<std::string>{"VENDOR_AE"});
  CHECK(s->devices[1].ae_titles == std::vector<std::string>{"MOD2"});  // the site's own wins
  // Spaces around a title are the wire's padding: kept without them, as the dissector reports it.
  auto padded = t.write("sites/padded.yaml", std::string(kSite) + "  - {name: mod-3, model: test-modality, ip: 10.1.0.12, zone: modality, ae_title: \" MOD3 \"}\n");
  Errors e2;
  auto s2 = load_site(padded, (t.dir / "devices").string(), e2);
  REQUIRE(s2);
  CHECK(s2->devices[1].ae_titles == std::vector<std::string>{"MOD3"});
}

TEST_CASE("DICOM user identity types: the names events give are the names models use", "[policy][loader]") {
  // Every type byte the standard defines has a name, and the name reads back as that byte: what the
  // DICOM dissector reports for a request is what a model may declare.
  for (int code = 1; code <= 5; ++code) {
    std::string_view name = medmon::user_identity_type_name(static_cast<uint8_t>(code));
    INFO(code << " " << name);
    CHECK(name != "unknown");
    CHECK(user_identity_code(name) == code);
  }
  CHECK(medmon::user_identity_type_name(2) == "username_passcode");
  CHECK(user_identity_code("none") == 0);               // no user identity item
  CHECK(user_identity_code("username_password") == 2);  // the other spelling a model may use
  CHECK(medmon::user_identity_type_name(0) == "unknown");
  CHECK(medmon::user_identity_type_name(6) == "unknown");
  CHECK(user_identity_code("unknown") == -1);
  CHECK(user_identity_code("password") == -1);
}

TEST_CASE("a device's zone that its address contradicts is an error", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("  - {name: modality, cidrs: [10.1.0.0/24]}\n"), 43,
               "  - {name: modality, cidrs: [10.1.0.0/24]}\n  - {name: lab, cidrs: [10.1.0.0/28]}\n");
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  // 10.1.0.10 lies in lab's /28, the most specific cidr holding it.
  CHECK(s.find(":9:62: device 'mod-1' zone: 'modality', but its address lies in zone 'lab'") != std::string::npos);
  // An address in no zone's cidrs may take the device's zone.
  std::string site2 = kSite;
  site2.replace(site2.find("ip: 10.1.0.10"), 13, "ip: 10.9.0.10");
  auto sp2 = t.write("sites/site2.yaml", site2);
  Errors e2;
  CHECK(load_site(sp2, "", e2));
  INFO(all(e2));
}

TEST_CASE("zones from addresses: the longest prefix, then the zone listed first", "[policy][loader]") {
  auto cidr = [](const char* t) { Cidr c; REQUIRE(Cidr::parse(t, c)); return c; };
  auto ip = [](const char* t) { medmon::IpAddr a; REQUIRE(medmon::IpAddr::parse(t, a)); return a; };
  std::vector<Zone> zones(4);
  zones[0].cidrs = {cidr("10.0.0.0/8"), cidr("fd00::/8")};
  zones[1].cidrs = {cidr("10.1.0.0/16"), cidr("fd00:1::/32")};
  zones[2].cidrs = {cidr("10.1.0.0/16"), cidr("192.168.0.0/16")};  // the same network as zone 1: listed later
  zones[3].cidrs = {cidr("::/0")};
  ZoneLookup z(zones);
  CHECK(z.find(ip("10.1.2.3")) == 1);  // /16 before /8, wherever it is listed
  CHECK(z.find(ip("10.2.0.1")) == 0);
  CHECK(z.find(ip("192.168.1.1")) == 2);
  CHECK(z.find(ip("fd00:1::5")) == 1);
  CHECK(z.find(ip("fd00:2::5")) == 0);
  CHECK(z.find(ip("2001:db8::1")) == 3);
  CHECK(z.find(ip("172.16.0.1")) == -1);  // ::/0 holds no IPv4 address
  // An address added later as a host route (a device's zone:) comes before every network, but
  // after a zone's own /32 for the same address.
  z.add(cidr("10.1.2.3"), 0);
  CHECK(z.find(ip("10.1.2.3")) == 0);
  z.add(cidr("10.1.2.3/32"), 2);
  CHECK(z.find(ip("10.1.2.3")) == 0);

  // The loader checks a device's zone: by the same rule: of two zones with the same network, the
  // address lies in the one listed first.
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("  - {name: modality, cidrs: [10.1.0.0/24]}\n"), 43,
               "  - {name: modality, cidrs: [10.1.0.0/24]}\n  - {name: lab, cidrs: [10.1.0.0/24]}\n");
  Errors errs;
  CHECK(load_site(t.write("sites/site.yaml", site), "", errs));
  INFO(all(errs));
  site.replace(site.find("zone: modality}"), 15, "zone: lab}");
  Errors e2;
  CHECK_FALSE(load_site(t.write("sites/site2.yaml", site), "", e2));
  CHECK(all(e2).find("device 'mod-1' zone: 'lab', but its address lies in zone 'modality'") != std::string::npos);
}

TEST_CASE("VLAN ids and the role limit are checked with what was expected", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("cidrs: [10.1.0.0/24]}"), 21, "cidrs: [10.1.0.0/24], vlans: [0, 10, 4095, x]}");
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find("zone 'modality' vlan: 0 (expected a VLAN id 1-4094)") != std::string::npos);
  CHECK(s.find("zone 'modality' vlan: 4095 (expected a VLAN id 1-4094)") != std::string::npos);
  CHECK(s.find("zone 'modality' vlan: expected a whole number") != std::string::npos);
  CHECK(s.find("port") == std::string::npos);  // a VLAN id is no port

  // Roles beyond 64 (the judge's role sets are 64 bits): refused, not silently ignored.
  std::string many = kSite;
  std::string roles;
  for (int i = 0; i < 64; ++i) roles += "  - {role: r" + std::to_string(i) + ", ips: [10.3.0." + std::to_string(i + 1) + "]}\n";
  many.replace(many.find("roles:\n"), 7, "roles:\n" + roles);
  auto sp2 = t.write("sites/many.yaml", many);
  Errors e2;
  CHECK_FALSE(load_site(sp2, "", e2));
  INFO(all(e2));
  CHECK(all(e2).find("role 'pacs': more than 64 roles in the site") != std::string::npos);
  std::string devrole = many;
  devrole.replace(devrole.find("  - {role: pacs, ips: [10.2.0.20], ports: [11112]}\n"), 50, "");
  devrole.replace(devrole.find("zone: modality}"), 15, "zone: modality, roles: [scanner]}");
  auto sp3 = t.write("sites/devrole.yaml", devrole);
  Errors e3;
  CHECK_FALSE(load_site(sp3, "", e3));
  INFO(all(e3));
  CHECK(all(e3).find("device 'mod-1' role 'scanner': more than 64 roles in the site") != std::string::npos);
}

TEST_CASE("TLS fingerprints in a model are JA3 hashes, located when malformed", "[policy][loader]") {
  TempDir t;
  auto mp = t.write("devices/test-modality.yaml",
                    std::string(kModel) + "fingerprints:\n  tls_ja3: [\"78F0DC5AC5B19DAF131A133CFDEE9691\", \"771,4865\"]\n"
                                          "  tls_ja3s: 15af977ce25de452b96affa2addb1036\n");
  Errors errs;
  CHECK_FALSE(load_model(mp, errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(":14:49: fingerprints tls_ja3: '771,4865' is not a JA3 hash") != std::string::npos);
  CHECK(errs.list.size() == 1);
}

TEST_CASE("two devices on one address are an error at the second one's address", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site += "  - {name: mod-2, model: test-modality, ips: [10.1.0.11, 10.1.0.10], zone: modality}\n";
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find("site.yaml:9:58: device 'mod-2': address 10.1.0.10 is already that of device 'mod-1'") != std::string::npos);
  // Other addresses of a device are its own.
  std::string ok = kSite;
  ok += "  - {name: mod-2, model: test-modality, ips: [10.1.0.11, 10.1.0.12], zone: modality}\n";
  Errors e2;
  CHECK(load_site(t.write("sites/ok.yaml", ok), "", e2));
  INFO(all(e2));
}

TEST_CASE("two devices with one fingerprint are an error at the second one's fingerprint", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site += "  - {name: mod-2, model: test-modality, fingerprint: {dicom_calling_ae: [MOD2, SHARED]}, zone: modality}\n"
          "  - {name: mod-3, model: test-modality, fingerprint: {dicom_calling_ae: [SHARED], hl7_msh3: [APP3]}, zone: modality}\n"
          "  - {name: mod-4, model: test-modality, fingerprint: {hl7_msh3: [APP4, APP3]}, zone: modality}\n";
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find("site.yaml:10:74: device 'mod-3' fingerprint dicom_calling_ae: 'SHARED' is already that of device 'mod-2' "
               "(a fingerprint identifies one device)") != std::string::npos);
  CHECK(s.find("site.yaml:11:72: device 'mod-4' fingerprint hl7_msh3: 'APP3' is already that of device 'mod-3'") !=
        std::string::npos);
  CHECK(errs.list.size() == 2);
  // Nor may a calling AE fingerprint be an AE title the site binds to a role or another device.
  std::string clash = kSite;
  clash.replace(clash.find("ports: [11112]}"), 15, "ports: [11112], ae_titles: [PACS1]}");
  clash.replace(clash.find("ip: 10.1.0.10, zone"), 19, "ip: 10.1.0.10, ae_title: MOD1, zone");
  clash += "  - {name: mod-2, model: test-modality, fingerprint: {dicom_calling_ae: [PACS1, MOD1]}, zone: modality}\n";
  Errors e3;
  CHECK_FALSE(load_site(t.write("sites/clash.yaml", clash), "", e3));
  std::string c3 = all(e3);
  INFO(c3);
  CHECK(c3.find("clash.yaml:9:74: device 'mod-2' fingerprint dicom_calling_ae: 'PACS1' is an AE title of role 'pacs'") !=
        std::string::npos);
  CHECK(c3.find("clash.yaml:9:81: device 'mod-2' fingerprint dicom_calling_ae: 'MOD1' is the AE title of device 'mod-1'") !=
        std::string::npos);
  CHECK(e3.list.size() == 2);
  // A device's AE title and its own fingerprint may be the same.
  std::string ok = kSite;
  ok += "  - {name: mod-2, model: test-modality, ae_title: MOD2, fingerprint: {dicom_calling_ae: [MOD2]}, zone: modality}\n";
  Errors e2;
  CHECK(load_site(t.write("sites/ok.yaml", ok), "", e2));
  INFO(all(e2));
}

TEST_CASE("policy check refuses a model id twice, an id that is not the file name, misspelt names and switches contradicting answers", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  // Another file declaring the same id: which one ran would depend on the list's order.
  auto v2 = t.write("devices/modality-v2.yaml", kModel);
  auto sp = t.write("sites/site.yaml", std::string(kSite) + "models: [../devices/test-modality.yaml, ../devices/modality-v2.yaml]\n");
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(v2 + ":3:7: model id 'test-modality' differs from the file name modality-v2.yaml (expected id 'modality-v2'") !=
        std::string::npos);
  CHECK(s.find(sp + ":9:41: models: '../devices/modality-v2.yaml' declares model id 'test-modality', already declared by") !=
        std::string::npos);

  // The same file twice: the second entry is the error.
  auto spt = t.write("sites/twice.yaml", std::string(kSite) + "models: [../devices/test-modality.yaml, ../devices/test-modality.yaml]\n");
  Errors et;
  CHECK_FALSE(load_site(spt, "", et));
  CHECK(all(et).find(spt + ":9:41: models: '../devices/test-modality.yaml' is listed twice") != std::string::npos);

  // enable: a flow the model does not have; zones never: zones the site does not define.
  t.write("devices/typo.yaml", std::string(kModel).replace(std::string(kModel).find("test-modality"), 13, "typo") +
                                   "    default_enabled: false\nzones: {never: [extrenal, offic]}\n");
  auto sp2 = t.write("sites/site2.yaml", std::string(kSite).replace(std::string(kSite).find("model: test-modality"), 20,
                                                                    "model: typo, enable: [stroe]"));
  Errors e2;
  CHECK_FALSE(load_site(sp2, "", e2));
  std::string s2 = all(e2);
  INFO(s2);
  CHECK(s2.find(sp2 + ":8:41: device 'mod-1' enable: model 'typo' has no flow 'stroe' (expected a flow it ships disabled: store)") !=
        std::string::npos);
  CHECK(s2.find("typo.yaml:14:17: zones never: unknown zone 'extrenal' (not defined in " + sp2 +
                "; expected one of: external, modality)") != std::string::npos);
  CHECK(s2.find("typo.yaml:14:27: zones never: unknown zone 'offic'") != std::string::npos);

  // internal_only: true says CONN-4 = No; the model's own answer says Yes.
  t.write("devices/test-modality.yaml", std::string(kModel) + "mds2:\n  answers:\n    CONN-4: {answer: \"yes\", detail: \"Yes\"}\n");
  auto sp3 = t.write("sites/site3.yaml", kSite);
  Errors e3;
  CHECK_FALSE(load_site(sp3, "", e3));
  std::string s3 = all(e3);
  INFO(s3);
  CHECK(s3.find("test-modality.yaml:5:3: mds2_derived internal_only: true means CONN-4 = No, but mds2 answers CONN-4 is "
                "'yes' (expected internal_only: false, or the answer corrected)") != std::string::npos);
  // The same answer with the switch that follows from it loads.
  t.write("devices/test-modality.yaml", std::string(kModel).replace(std::string(kModel).find("internal_only: true"), 19,
                                                                     "internal_only: false") +
                                            "mds2:\n  answers:\n    CONN-4: {answer: \"yes\", detail: \"Yes\"}\n");
  Errors e4;
  CHECK(load_site(sp3, "", e4));
  INFO(all(e4));
}

TEST_CASE("a model flow's ports may be ranges; a reversed or out-of-range one is refused", "[policy][loader]") {
  TempDir t;
  std::string model(kModel);
  model.replace(model.find("dst_port: [104]"), 15, "dst_port: [104, 49152-65535, \"5000 - 5010\"]");
  auto mp = t.write("devices/test-modality.yaml", model);
  Errors errs;
  auto m = load_model(mp, errs);
  INFO(all(errs));
  REQUIRE(m);
  REQUIRE(m->flows.size() == 1);
  CHECK(m->flows[0].ports == std::vector<PortRange>{{104, 104}, {49152, 65535}, {5000, 5010}});
  for (const char* bad : {"[65535-49152]", "[1024-70000]", "[0-100]", "[10-x]", "[-5]"}) {
    INFO(bad);
    std::string b(kModel);
    b.replace(b.find("[104]"), 5, bad);
    Errors e;
    CHECK_FALSE(load_model(t.write("devices/test-modality.yaml", b), e));
    REQUIRE(e.list.size() == 1);
    CHECK(e.list[0].format().find(":11:") != std::string::npos);  // at the dst_port line
    CHECK(e.list[0].format().find("dst_port") != std::string::npos);
  }
  Errors e;
  std::string b(kModel);
  b.replace(b.find("[104]"), 5, "[65535-49152]");
  load_model(t.write("devices/test-modality.yaml", b), e);
  CHECK(all(e).find("'65535-49152' is a reversed range (expected low-high, e.g. 49152-65535)") != std::string::npos);
}

TEST_CASE("a C-MOVE destination role the site does not bind", "[policy][loader]") {
  TempDir t;
  std::string model = kModel;
  model += "dicom:\n  c_move: {allowed: true, allowed_destinations: [WS01, \"role:pacs\", \"role:reading\"]}\n";
  auto mp = t.write("devices/test-modality.yaml", model);
  auto sp = t.write("sites/site.yaml", kSite);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  REQUIRE(errs.list.size() == 1);
  CHECK(s.find(mp + ":14:69: dicom c_move allowed_destinations: unknown role 'reading' (not bound in " + sp) !=
        std::string::npos);
}

TEST_CASE("an empty internal_networks is refused: every address would be outside the site", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("[10.0.0.0/8]"), 12, "[]");
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(s.find(sp + ":2:20: internal_networks: empty") != std::string::npos);
}

TEST_CASE("subnets are IPv4 CIDRs with a broadcast address, located when not", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("zones:"), 6, "subnets: [10.1.0.0/24, fd00::/64, 10.1.0.8/31, 10.1.0.300/24]\nzones:");
  auto sp = t.write("sites/site.yaml", site);
  Errors errs;
  CHECK_FALSE(load_site(sp, "", errs));
  std::string s = all(errs);
  INFO(s);
  CHECK(errs.list.size() == 3);
  CHECK(s.find(sp + ":3:24: subnets: 'fd00::/64' is IPv6") != std::string::npos);
  CHECK(s.find(sp + ":3:35: subnets: '10.1.0.8/31' has no broadcast address") != std::string::npos);
  CHECK(s.find(sp + ":3:48: subnets: '10.1.0.300/24' is not an IP address or CIDR") != std::string::npos);
  site = kSite;
  site.replace(site.find("zones:"), 6, "subnets: [10.1.0.0/24]\nzones:");
  Errors ok;
  auto loaded = load_site(t.write("sites/good.yaml", site), "", ok);
  REQUIRE(loaded);
  REQUIRE(loaded->subnets.size() == 1);
  CHECK(loaded->subnets[0].bits == 24);
}

TEST_CASE("a site of tens of thousands of devices loads in time linear in their number", "[policy][loader]") {
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  // CPU seconds to load a site of n devices (each checked against the others' names and addresses).
  auto load_time = [&](int n) {
    std::string site = kSite;
    std::string devices;
    for (int i = 0; i < n; ++i)
      devices += "  - {name: mod-" + std::to_string(i + 2) + ", model: test-modality, ip: 10.3." + std::to_string(i / 250) +
                 "." + std::to_string(i % 250 + 1) + "}\n";
    site += devices;
    auto path = t.write("sites/big-" + std::to_string(n) + ".yaml", site);
    Errors errs;
    std::clock_t start = std::clock();
    auto loaded = load_site(path, "", errs);
    double s = static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
    INFO(all(errs));
    CHECK(loaded);
    return s;
  };
  const double small = load_time(5000), big = load_time(40000);
  INFO("5000 devices: " << small << " s, 40000: " << big << " s");
  CHECK(big < small * 16);  // eight times the devices: linear is about eight times the time
}

TEST_CASE("an IPv4-mapped IPv6 address or network is the IPv4 one its host's packets carry", "[policy][loader]") {
  Cidr c;
  medmon::IpAddr a;
  REQUIRE(medmon::IpAddr::parse("10.1.2.3", a));
  REQUIRE(Cidr::parse("::ffff:10.1.2.3", c));
  CHECK(c.bits == 32);
  CHECK(c.contains(a));
  REQUIRE(Cidr::parse("::ffff:10.1.0.0/112", c));
  CHECK(c.bits == 16);
  CHECK(c.contains(a));
  // A device written so is found at its IPv4 address.
  TempDir t;
  t.write("devices/test-modality.yaml", kModel);
  std::string site = kSite;
  site.replace(site.find("ip: 10.1.0.10"), 13, "ip: \"::ffff:10.1.0.10\"");
  Errors errs;
  auto s = load_site(t.write("sites/site.yaml", site), "", errs);
  INFO(all(errs));
  REQUIRE(s);
  REQUIRE(s->devices.size() == 1);
  REQUIRE(s->devices[0].ips.size() == 1);
  CHECK(s->devices[0].ips[0].family == 4);
}
