#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dissectors/http/test/deflated.h"

#include "dissectors/api/announced_servers.h"
#include "dissectors/proprietary/test/harness.h"
#include "dissectors/sdc/sdc_dissector.h"

using namespace medmon;
using medmon::testing::Harness;
using medmon::testing::bytes_of;

namespace {

const std::string kNs =
    "xmlns:s12=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" "
    "xmlns:wsd=\"http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01\" "
    "xmlns:dpws=\"http://docs.oasis-open.org/ws-dd/ns/dpws/2009/01\" "
    "xmlns:mdpws=\"http://standards.ieee.org/downloads/11073/11073-20702-2016\"";
const std::string kEpr = "urn:uuid:6f1c2a5e-0000-4000-8000-00000000a001";

std::string envelope(const std::string& action, const std::string& body) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s12:Envelope " + kNs + "><s12:Header><wsa:Action>" + action +
         "</wsa:Action><wsa:MessageID>urn:uuid:11111111-2222-4333-8444-555555555555</wsa:MessageID></s12:Header><s12:Body>" +
         body + "</s12:Body></s12:Envelope>";
}

std::string hello() {
  return envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hello",
                  "<wsd:Hello><wsa:EndpointReference><wsa:Address>" + kEpr +
                      "</wsa:Address></wsa:EndpointReference><wsd:Types>dpws:Device mdpws:MedicalDevice</wsd:Types>"
                      "<wsd:Scopes>sdc.mds.pkp:1.2.840.10004.20701.1.1 sdc.ctxt.pat:/x/PAT77?ext=PAT77</wsd:Scopes>"
                      "<wsd:XAddrs>https://10.20.0.15:6464/0c6a7a2e</wsd:XAddrs><wsd:MetadataVersion>3</wsd:MetadataVersion></wsd:Hello>");
}

std::string http(const std::string& start, const std::string& body, bool chunked = false) {
  std::string h = start + "\r\nHost: 10.20.0.15:6464\r\nContent-Type: application/soap+xml; charset=utf-8\r\n";
  if (!chunked) return h + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string out = h + "Transfer-Encoding: chunked\r\n\r\n";
  for (size_t i = 0; i < body.size(); i += 100) {
    std::string part = body.substr(i, 100);
    char len[16];
    std::snprintf(len, sizeof len, "%zx", part.size());
    out += std::string(len) + "\r\n" + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

std::string get_response() {
  return envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse",
                  "<mex:Metadata xmlns:mex=\"http://schemas.xmlsoap.org/ws/2004/09/mex\"><mex:MetadataSection><dpws:ThisModel>"
                  "<dpws:Manufacturer>Acme Medical</dpws:Manufacturer><dpws:ModelName>VitalView 5</dpws:ModelName>"
                  "<dpws:ModelNumber>VV5-100</dpws:ModelNumber></dpws:ThisModel></mex:MetadataSection><mex:MetadataSection>"
                  "<dpws:ThisDevice><dpws:FriendlyName>ICU bed 3 monitor</dpws:FriendlyName><dpws:FirmwareVersion>2.4.0</dpws:FirmwareVersion>"
                  "<dpws:SerialNumber>VV5-000123</dpws:SerialNumber></dpws:ThisDevice></mex:MetadataSection><mex:MetadataSection>"
                  "<dpws:Relationship><dpws:Host><wsa:EndpointReference><wsa:Address>" + kEpr +
                      "</wsa:Address></wsa:EndpointReference></dpws:Host></dpws:Relationship></mex:MetadataSection></mex:Metadata>");
}

std::string context_report() {
  // Made-up patient.
  return envelope("http://standards.ieee.org/downloads/11073/11073-20701-2018/ContextService/GetContextStatesResponse",
                  "<msg:GetContextStatesResponse xmlns:msg=\"x\" xmlns:pm=\"y\"><msg:ContextState xsi:type=\"pm:PatientContextState\">"
                  "<pm:PatientContextState Handle=\"p1\"><pm:Identification Root=\"1.2.3\" Extension=\"PAT-4242\"/>"
                  "<pm:CoreData><pm:Givenname>Jane</pm:Givenname><pm:Familyname>Doe</pm:Familyname><pm:DateOfBirth>1970-01-01</pm:DateOfBirth>"
                  "</pm:CoreData></pm:PatientContextState></msg:ContextState></msg:GetContextStatesResponse>");
}

}  // namespace

TEST_CASE("sdc: probe") {
  auto p = [](std::string_view s) { return sdc::probe(bytes_of(s), Dir::to_server); };
  CHECK(p(hello()) == Probe::yes);
  CHECK(p(hello().substr(0, 512)) == Probe::yes);
  CHECK(p(hello().substr(0, 100)) == Probe::need_more);
  CHECK(p("<!-- sent by the gateway -->" + hello()) == Probe::yes);
  CHECK(p(http("POST /0c6a7a2e HTTP/1.1", get_response())) == Probe::yes);
  CHECK(p(http("HTTP/1.1 200 OK", get_response())) == Probe::yes);
  // A chunked body starts with a chunk-size line, then the envelope.
  CHECK(p(http("HTTP/1.1 200 OK", get_response(), true)) == Probe::yes);
  CHECK(p(http("HTTP/1.1 200 OK", get_response(), true).substr(0, 200)) == Probe::need_more);
  // WS-Discovery of printers and cameras (no SDC marker) is not SDC.
  std::string printer = "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" "
                        "xmlns:wsd=\"http://schemas.xmlsoap.org/ws/2005/04/discovery\"><soap:Header><wsa:Action>"
                        "http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</wsa:Action></soap:Header><soap:Body><wsd:Probe>"
                        "<wsd:Types>wsdp:Device</wsd:Types></wsd:Probe></soap:Body></soap:Envelope>";
  CHECK(p(printer) != Probe::yes);
  CHECK(p(printer + std::string(600, ' ')) == Probe::no);
  // 11073 as digits of a UUID or an instance id is no SDC marker; in a namespace URI it is.
  std::string camera = "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" "
                       "xmlns:wsd=\"http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01\"><soap:Header><wsa:Action>"
                       "http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hello</wsa:Action><wsa:MessageID>"
                       "urn:uuid:9c811073-0b1f-4d3e-8a11-110731107300</wsa:MessageID><wsd:AppSequence InstanceId=\"1107311073\" "
                       "MessageNumber=\"1\"/></soap:Header><soap:Body><wsd:Hello/></soap:Body></soap:Envelope>";
  CHECK(p(camera + std::string(600, ' ')) == Probe::no);
  for (std::string ns : {"http://standards.ieee.org/downloads/11073/11073-10207-2017/message", "http://p11073-10207/draft10/msg/2017/10/05"})
    CHECK(p(std::string(camera).insert(camera.find("xmlns:wsd"), "xmlns:msg=\"" + ns + "\" ")) == Probe::yes);
  CHECK(p("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == Probe::no);
  CHECK(p("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>") == Probe::no);
  CHECK(p("<HEL.R01>") == Probe::no);
  CHECK(p(std::string_view("\x16\x03\x01\x02\x00\x01", 6)) == Probe::no);
  CHECK(p("\x0bMSH|^~\\&|") == Probe::no);
  CHECK(p("SSH-2.0-x\r\n") == Probe::no);
}

TEST_CASE("sdc: WS-Discovery Hello gives an sdc event and an asset event") {
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  IpAddr::parse("10.20.0.15", h.ep.src);
  IpAddr::parse("239.255.255.250", h.ep.dst);
  h.datagram(Dir::to_server, hello());
  h.datagram(Dir::to_server, hello());
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 2);
  auto& s = ev[0]["sdc"];
  CHECK(s["transport"] == "udp");
  CHECK(s["action"] == "Hello");
  REQUIRE(s["participants"].size() == 1);
  auto& p = s["participants"][0];
  CHECK(p["endpoint"] == kEpr);
  CHECK(p["types"] == nlohmann::json::array({"dpws:Device", "mdpws:MedicalDevice"}));
  // The path, which may name a patient, as the pseudonym http_path gives requests to it.
  CHECK(p["xaddrs"] == nlohmann::json::array({"https://10.20.0.15:6464/" + Pseudonymiser()("/0c6a7a2e")}));
  for (auto& l : h.sink->lines) CHECK(l.find("0c6a7a2e") == std::string::npos);
  CHECK(p["metadata_version"] == "3");
  CHECK(p["scopes"][0] == "sdc.mds.pkp:1.2.840.10004.20701.1.1");
  // The patient scope is pseudonymised.
  CHECK(p["scopes"][1].get<std::string>().rfind("sdc.ctxt.pat:phi:", 0) == 0);
  for (auto& l : h.sink->lines) CHECK(l.find("PAT77") == std::string::npos);
  CHECK(h.facts.phi_fields == std::vector<std::string>{"sdc.scope.patient"});
  CHECK(s["device_ip"] == "10.20.0.15");
  CHECK(h.events("asset").empty());  // the asset inventory owns asset events
  REQUIRE(h.facts.attr("sdc.endpoint"));
  CHECK(*h.facts.attr("sdc.endpoint") == kEpr);
  CHECK(*h.facts.attr("sdc.device_side") == "client");
  IpAddr ip;
  IpAddr::parse("10.20.0.15", ip);
  CHECK(sdc::is_sdc_endpoint(ip, 6464));
  CHECK(!sdc::is_sdc_endpoint(ip, 443));
  // The announcing device (the client of a flow to the multicast group) is identified by its
  // endpoint reference, once however often it says Hello.
  REQUIRE(h.facts.identities.size() == 1);
  CHECK(h.facts.identities[0].client);
  CHECK(h.facts.identities[0].source == "sdc discovery");
  CHECK(h.facts.identities[0].id == kEpr);
  CHECK(h.facts.identities[0].model.empty());
}

TEST_CASE("sdc: discovery answers identify their sender, not the devices a proxy answers for") {
  auto matches = [](const std::string& epr, const std::string& xaddrs) {
    return envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/ProbeMatches",
                    "<wsd:ProbeMatches><wsd:ProbeMatch><wsa:EndpointReference><wsa:Address>" + epr +
                        "</wsa:Address></wsa:EndpointReference><wsd:Types>mdpws:MedicalDevice</wsd:Types>" +
                        (xaddrs.empty() ? "" : "<wsd:XAddrs>" + xaddrs + "</wsd:XAddrs>") + "</wsd:ProbeMatch></wsd:ProbeMatches>");
  };
  // The consumer probed the device directly: the answer comes from the server.
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  IpAddr::parse("10.20.0.9", h.ep.src);
  IpAddr::parse("10.20.0.15", h.ep.dst);
  h.datagram(Dir::to_client, matches(kEpr, "http://10.20.0.15:6464/a https://10.20.0.15:6465/a"));
  REQUIRE(h.facts.identities.size() == 1);
  CHECK_FALSE(h.facts.identities[0].client);
  CHECK(h.facts.identities[0].source == "sdc discovery");
  CHECK(h.facts.identities[0].id == kEpr);
  // A proxy naming another host's addresses, a Bye and a Probe add nothing; a match without
  // addresses is taken as the sender's.
  Harness p(kSdcInfo);
  p.ep.proto = 17;
  IpAddr::parse("10.20.0.2", p.ep.src);
  IpAddr::parse("10.20.0.9", p.ep.dst);
  p.datagram(Dir::to_server, matches("urn:uuid:other", "https://10.20.0.15:6465/a http://[fe80::1]:80/"));
  // Nor does the proxy's flow take the endpoint of the device it answered for: that device is
  // at the address of its XAddrs, not at the proxy's. The match is written (with those XAddrs),
  // without a device_ip, which would name the proxy.
  CHECK_FALSE(p.facts.attr("sdc.endpoint"));
  CHECK_FALSE(p.facts.attr("sdc.device_side"));
  auto proxied = p.events("sdc");
  REQUIRE(proxied.size() == 1);
  CHECK(proxied[0]["sdc"]["participants"][0]["endpoint"] == "urn:uuid:other");
  CHECK_FALSE(proxied[0]["sdc"].contains("device_ip"));
  p.datagram(Dir::to_server, envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Bye",
                                      "<wsd:Bye><wsa:EndpointReference><wsa:Address>urn:uuid:bye</wsa:Address>"
                                      "</wsa:EndpointReference></wsd:Bye>"));
  p.datagram(Dir::to_client, envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Probe",
                                      "<wsd:Probe><wsd:Types>mdpws:MedicalDevice</wsd:Types></wsd:Probe>"));
  CHECK(p.facts.identities.empty());
  p.datagram(Dir::to_server, matches("urn:uuid:itself", "http://monitor.example:6464/a"));
  REQUIRE(p.facts.identities.size() == 1);
  CHECK(p.facts.identities[0].client);
  CHECK(p.facts.identities[0].id == "urn:uuid:itself");
  REQUIRE(p.facts.attr("sdc.endpoint"));
  CHECK(*p.facts.attr("sdc.endpoint") == "urn:uuid:itself");
  CHECK(p.events("sdc").back()["sdc"]["device_ip"] == "10.20.0.2");
}

TEST_CASE("sdc: an endpoint reference address that is a URL is written as XAddrs are, a URN as sent") {
  // Made-up patient ids in an http endpoint reference (announced and in DPWS metadata).
  const std::string url = "http://svc:pw@10.20.0.15:6464/patients/PATQQ71?patient=MRNQQ72#x";
  Pseudonymiser ps;
  const std::string written = "http://10.20.0.15:6464/" + ps("/patients/PATQQ71");
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  IpAddr::parse("10.20.0.15", h.ep.src);
  IpAddr::parse("239.255.255.250", h.ep.dst);
  std::string hello_url = hello();
  hello_url.replace(hello_url.find(kEpr), kEpr.size(), url);
  h.datagram(Dir::to_server, hello_url);
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["sdc"]["participants"][0]["endpoint"] == written);
  REQUIRE(h.facts.identities.size() == 1);
  CHECK(h.facts.identities[0].id == written);
  REQUIRE(h.facts.attr("sdc.endpoint"));
  CHECK(*h.facts.attr("sdc.endpoint") == written);
  // The same address in the Host of DPWS metadata gives the same identity.
  Harness m(kSdcInfo);
  std::string meta = get_response();
  meta.replace(meta.find(kEpr), kEpr.size(), url);
  m.feed(Dir::to_client, http("HTTP/1.1 200 OK", meta));
  auto mev = m.events("sdc");
  REQUIRE(mev.size() == 1);
  CHECK(mev[0]["sdc"]["device"]["endpoint"] == written);
  REQUIRE(m.facts.identities.size() == 1);
  CHECK(m.facts.identities[0].id == written);
  for (auto* sink : {&h.sink->lines, &m.sink->lines})
    for (auto& l : *sink) {
      CHECK(l.find("PATQQ71") == std::string::npos);
      CHECK(l.find("MRNQQ72") == std::string::npos);
      CHECK(l.find("pw@") == std::string::npos);
    }
  // A URN is the device's identity as sent, in any case.
  Harness u(kSdcInfo);
  u.ep.proto = 17;
  u.ep.src = h.ep.src;
  u.ep.dst = h.ep.dst;
  std::string hello_urn = hello();
  hello_urn.replace(hello_urn.find(kEpr), kEpr.size(), "URN:uuid:6F1C2A5E-0000-4000-8000-00000000A001");
  u.datagram(Dir::to_server, hello_urn);
  CHECK(u.events("sdc")[0]["sdc"]["participants"][0]["endpoint"] == "URN:uuid:6F1C2A5E-0000-4000-8000-00000000A001");
}

TEST_CASE("sdc: XAddrs are written without their paths, query strings and user information in clear") {
  // Made-up patient ids in the transport addresses' paths and query strings.
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  IpAddr::parse("10.20.0.15", h.ep.src);
  IpAddr::parse("239.255.255.250", h.ep.dst);
  h.datagram(Dir::to_server,
             envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hello",
                      "<wsd:Hello><wsa:EndpointReference><wsa:Address>" + kEpr +
                          "</wsa:Address></wsa:EndpointReference><wsd:Types>mdpws:MedicalDevice</wsd:Types><wsd:XAddrs>"
                          "HTTPS://svc:s3cretZZ@10.20.0.15:6466/patients/PATZZ81 http://[fd00::15]:80?mrn=MRNZZ82 "
                          "https://10.20.0.15 urn:PATZZ83</wsd:XAddrs></wsd:Hello>"));
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  Pseudonymiser ps;
  CHECK(ev[0]["sdc"]["participants"][0]["xaddrs"] ==
        nlohmann::json::array({"https://10.20.0.15:6466/" + ps("/patients/PATZZ81"), "http://[fd00::15]:80/",
                               "https://10.20.0.15/", ps("urn:PATZZ83")}));
  for (auto& l : h.sink->lines)
    for (auto secret : {"PATZZ81", "MRNZZ82", "PATZZ83", "s3cretZZ"}) CHECK(l.find(secret) == std::string::npos);
  // The address is still the announcing device's (user information and the scheme's case aside).
  IpAddr ip;
  IpAddr::parse("10.20.0.15", ip);
  CHECK(sdc::is_sdc_endpoint(ip, 6466));
  REQUIRE(h.facts.identities.size() == 1);
}

TEST_CASE("sdc: a Probe for a patient-context scope does not write the patient in clear") {
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  IpAddr::parse("10.20.0.30", h.ep.src);
  IpAddr::parse("239.255.255.250", h.ep.dst);
  h.datagram(Dir::to_server,
             envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Probe",
                      "<wsd:Probe><wsd:Types>mdpws:MedicalDevice</wsd:Types>"
                      "<wsd:Scopes>sdc.mds.pkp:1.2.840.10004.20701.1.1 sdc.ctxt.pat:/x/PAT4242?ext=PAT4242</wsd:Scopes></wsd:Probe>"));
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  auto& q = ev[0]["sdc"]["query_scopes"];
  REQUIRE(q.size() == 2);
  CHECK(q[0] == "sdc.mds.pkp:1.2.840.10004.20701.1.1");
  CHECK(q[1].get<std::string>().rfind("sdc.ctxt.pat:phi:", 0) == 0);
  for (auto& l : h.sink->lines) CHECK(l.find("PAT4242") == std::string::npos);
  CHECK(ev[0]["sdc"]["phi_fields"] == nlohmann::json::array({"sdc.scope.patient"}));
  CHECK(h.facts.phi_fields == std::vector<std::string>{"sdc.scope.patient"});
}

TEST_CASE("sdc: SOAP over HTTP, metadata and patient context, at every split point") {
  std::string req = http("POST /0c6a7a2e HTTP/1.1", envelope("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", ""));
  std::string resp = http("HTTP/1.1 200 OK", get_response(), true) + http("HTTP/1.1 200 OK", context_report());
  for (size_t cut = 0; cut <= resp.size(); cut += 13) {
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    IpAddr::parse("10.20.0.9", h.ep.src);
    IpAddr::parse("10.20.0.15", h.ep.dst);
    h.feed(Dir::to_server, req);
    h.feed(Dir::to_client, resp.substr(0, cut));
    h.feed(Dir::to_client, resp.substr(cut));
    h.end();
    INFO("cut " << cut);
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 3);
    CHECK(ev[0]["sdc"]["http_method"] == "POST");
    CHECK(ev[0]["sdc"]["action"] == "Get");
    auto& d = ev[1]["sdc"]["device"];
    CHECK(ev[1]["sdc"]["http_status"] == 200);
    CHECK(d["manufacturer"] == "Acme Medical");
    CHECK(d["model_name"] == "VitalView 5");
    CHECK(d["model_number"] == "VV5-100");
    CHECK(d["serial_number"] == "VV5-000123");
    CHECK(d["firmware_version"] == "2.4.0");
    CHECK(d["endpoint"] == kEpr);
    auto& c = ev[2]["sdc"];
    CHECK(c["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-4242")}));
    CHECK(c["phi_fields"] == nlohmann::json::array({"sdc.patient.identification", "sdc.patient.givenname",
                                                    "sdc.patient.familyname", "sdc.patient.date_of_birth"}));
    CHECK(ev[1]["sdc"]["device_ip"] == "10.20.0.15");
    CHECK(!ev[0]["sdc"].contains("device_ip"));
    CHECK(*h.facts.attr("sdc.manufacturer") == "Acme Medical");
    CHECK(*h.facts.attr("sdc.model") == "VitalView 5");
    CHECK(*h.facts.attr("sdc.serial") == "VV5-000123");
    CHECK(*h.facts.attr("sdc.device_side") == "server");
    // DPWS metadata identifies the server that sent it; the friendly name (site-given) and the
    // model number stay in the sdc event.
    REQUIRE(h.facts.identities.size() == 1);
    const DeviceIdentity& id = h.facts.identities[0];
    CHECK_FALSE(id.client);
    CHECK(id.source == "sdc metadata");
    CHECK(id.id == kEpr);
    CHECK(id.manufacturer == "Acme Medical");
    CHECK(id.model == "VitalView 5");
    CHECK(id.serial == "VV5-000123");
    CHECK(id.version == "2.4.0");
    for (auto& l : h.sink->lines) {
      CHECK(l.find("PAT-4242") == std::string::npos);
      CHECK(l.find("Jane") == std::string::npos);
    }
    CHECK(h.anomalies() == 0);
  }
}

namespace {

std::string contexts_response(const std::string& states) {
  return http("HTTP/1.1 200 OK",
              envelope("http://standards.ieee.org/downloads/11073/11073-20701-2018/ContextService/GetContextStatesResponse",
                       "<msg:GetContextStatesResponse xmlns:msg=\"x\" xmlns:pm=\"y\" xmlns:xsi=\"z\">" + states +
                           "</msg:GetContextStatesResponse>"));
}

// Made-up patient, in a state element of type PatientContextState, as BICEPS writes it.
std::string patient_state(const std::string& element) {
  return "<" + element + " xsi:type=\"pm:PatientContextState\" Handle=\"p1\" StateVersion=\"2\">"
         "<pm:Identification Root=\"1.2.3\" Extension=\"PAT-4242\"/><pm:CoreData><pm:Givenname>Jane</pm:Givenname>"
         "<pm:Familyname>Doe</pm:Familyname></pm:CoreData></" + element + ">";
}

std::string get_request(int n) {
  return http("POST /x/ContextService HTTP/1.1",
              envelope("http://standards.ieee.org/downloads/11073/11073-20701-2018/ContextService/GetContextStates",
                       "<msg:GetContextStates xmlns:msg=\"x\" n=\"" + std::to_string(n) + "\"/>"));
}

bool in_clear(const Harness& h, std::string_view s) {
  for (auto& l : h.sink->lines)
    if (l.find(s) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("sdc: patient context states typed with xsi:type, as in BICEPS") {
  std::string location = "<msg:ContextState xsi:type=\"pm:LocationContextState\" Handle=\"l1\"><pm:Identification Extension=\"BED-3\"/>"
                         "</msg:ContextState>";
  for (std::string element : {"msg:ContextState", "pm:State"}) {
    INFO(element);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_client, contexts_response(location + patient_state(element)));
    h.end();
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["sdc"]["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-4242")}));
    CHECK(ev[0]["sdc"]["phi_fields"] ==
          nlohmann::json::array({"sdc.patient.identification", "sdc.patient.givenname", "sdc.patient.familyname"}));
    CHECK_FALSE(in_clear(h, "PAT-4242"));
    CHECK_FALSE(in_clear(h, "Jane"));
  }
  // A location alone is no patient.
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.feed(Dir::to_client, contexts_response(location));
  REQUIRE(h.events("sdc").size() == 1);
  CHECK_FALSE(h.events("sdc")[0]["sdc"].contains("patients"));
}

TEST_CASE("sdc: the patient a workflow context names is PHI, and its visit number; the order is not read") {
  // Made-up patient and order.
  const std::string workflow =
      "<msg:ContextState xsi:type=\"pm:WorkflowContextState\" Handle=\"wf1\" ContextAssociation=\"Assoc\">"
      "<pm:Identification Root=\"1.2.3.4\" Extension=\"ORDER-555\"/><pm:WorkflowDetail><pm:Patient>"
      "<pm:Identification Root=\"1.2.3\" Extension=\"PAT-777\"/><pm:Name><pm:Givenname>Alice</pm:Givenname>"
      "<pm:Familyname>Zyx</pm:Familyname></pm:Name><pm:DateOfBirth>1950-01-02</pm:DateOfBirth></pm:Patient>"
      "<pm:VisitNumber Extension=\"VISIT-1\"/></pm:WorkflowDetail></msg:ContextState>";
  for (std::string states : {workflow, "<pm:WorkflowContextState Handle=\"wf1\">" + workflow.substr(workflow.find("<pm:Identification")) }) {
    if (states != workflow) states.replace(states.rfind("</msg:ContextState>"), 19, "</pm:WorkflowContextState>");
    INFO(states);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_client, contexts_response(states));
    h.end();
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["sdc"]["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-777")}));
    CHECK(ev[0]["sdc"]["phi_fields"] == nlohmann::json::array({"sdc.patient.identification", "sdc.workflow.visit_number",
                                                                "sdc.patient.givenname", "sdc.patient.familyname",
                                                                "sdc.patient.date_of_birth"}));
    CHECK(h.facts.phi_fields.size() == 5);
    CHECK_FALSE(in_clear(h, "PAT-777"));
    CHECK_FALSE(in_clear(h, "VISIT-1"));
    CHECK_FALSE(in_clear(h, "Alice"));
  }
}

TEST_CASE("sdc: a workflow's order ids and physicians' names are read as pseudonyms") {
  // Made-up order and physicians, in a RequestedOrderDetail and a PerformedOrderDetail.
  const std::string requested =
      "<pm:RequestedOrderDetail><pm:Start>2024-01-01</pm:Start><pm:ImagingProcedure>"
      "<pm:AccessionIdentifier Root=\"1.2\" Extension=\"ACCZZ4004\"/>"
      "<pm:RequestedProcedureId Root=\"1.2\" Extension=\" RPZZ3003 \"/></pm:ImagingProcedure>"
      "<pm:ReferringPhysician><pm:Identification Extension=\"DRZZ9\"/><pm:Name><pm:Givenname>Quincy</pm:Givenname>"
      "<pm:Familyname>Zedwick</pm:Familyname></pm:Name></pm:ReferringPhysician>"
      "<pm:RequestingPhysician><pm:Name><pm:Familyname>Welbyzz</pm:Familyname></pm:Name></pm:RequestingPhysician>"
      "<pm:PlacerOrderNumber Root=\"1.2.3\" Extension=\"ORDZZ1001\"/></pm:RequestedOrderDetail>";
  const std::string performed = "<pm:PerformedOrderDetail><pm:Performer><pm:Identification Extension=\"NRZZ7\"/><pm:Name>"
                                "<pm:Givenname>Odalys</pm:Givenname><pm:Familyname>Perfzz</pm:Familyname></pm:Name>"
                                "<pm:Role><pm:Type Code=\"nurse\"/></pm:Role></pm:Performer>"
                                "<pm:FillerOrderNumber Extension=\"FILZZ2002\"/></pm:PerformedOrderDetail>";
  const std::string states =
      "<msg:ContextState xsi:type=\"pm:WorkflowContextState\" Handle=\"wf1\" ContextAssociation=\"Assoc\">"
      "<pm:Identification Root=\"1.2.3.4\" Extension=\"WFZZ-1\"/><pm:WorkflowDetail>" + requested + performed +
      "</pm:WorkflowDetail></msg:ContextState>";
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.feed(Dir::to_client, contexts_response(states));
  h.end();
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  Pseudonymiser ps;
  // Order ids as HL7 (ORC/OBR placer and filler) and DICOM (accession number) pseudonymise them.
  CHECK(ev[0]["sdc"]["orders"] == nlohmann::json::array({ps("ACCZZ4004"), ps("RPZZ3003"), ps("ORDZZ1001"), ps("FILZZ2002")}));
  // Names in DICOM PN component order.
  CHECK(ev[0]["sdc"]["physicians"] == nlohmann::json::array({ps("Zedwick^Quincy"), ps("Welbyzz"), ps("Perfzz^Odalys")}));
  CHECK(ev[0]["sdc"]["phi_fields"] ==
        nlohmann::json::array({"sdc.workflow.placer_order_number", "sdc.workflow.filler_order_number",
                               "sdc.workflow.accession_identifier", "sdc.workflow.requested_procedure_id",
                               "sdc.workflow.referring_physician", "sdc.workflow.requesting_physician",
                               "sdc.workflow.performer"}));
  CHECK(h.facts.phi_fields.size() == 7);
  CHECK_FALSE(ev[0]["sdc"].contains("patients"));
  for (auto s : {"ORDZZ1001", "FILZZ2002", "RPZZ3003", "ACCZZ4004", "Quincy", "Zedwick", "Welbyzz", "DRZZ9", "WFZZ-1",
                 "Odalys", "Perfzz", "NRZZ7"})
    CHECK_FALSE(in_clear(h, s));
  // An order detail without values gives nothing.
  Harness e(kSdcInfo);
  e.ep.proto = 6;
  e.feed(Dir::to_client, contexts_response("<pm:WorkflowContextState Handle=\"wf2\"><pm:WorkflowDetail><pm:RequestedOrderDetail>"
                                           "<pm:PlacerOrderNumber Extension=\" \"/><pm:ReferringPhysician><pm:Name/></pm:ReferringPhysician>"
                                           "</pm:RequestedOrderDetail></pm:WorkflowDetail></pm:WorkflowContextState>"));
  REQUIRE(e.events("sdc").size() == 1);
  CHECK_FALSE(e.events("sdc")[0]["sdc"].contains("orders"));
  CHECK_FALSE(e.events("sdc")[0]["sdc"].contains("physicians"));
  CHECK_FALSE(e.events("sdc")[0]["sdc"].contains("phi_fields"));
}

TEST_CASE("sdc: every patient context state of a message is read") {
  const std::string full = patient_state("msg:ContextState");
  const std::string pm = "xsi:type=\"pm:PatientContextState\" Handle=\"p0\" DescriptorHandle=\"pd\"";
  for (std::string states :
       {// An earlier state, not associated, written self-closing; or empty but not self-closing.
        "<msg:ContextState " + pm + " ContextAssociation=\"No\"/>" + full,
        "<msg:ContextState " + pm + " ContextAssociation=\"Dis\"></msg:ContextState>" + full,
        "<pm:PatientContextState Handle=\"p0\"/>" + full,
        "<msg:ContextState " + pm + "><!-- none --></msg:ContextState>" + full,
        // White space in the end tag, around the attribute's '=', a '>' in an attribute value.
        std::string(full).insert(full.size() - 1, " \r\n"),
        std::string(full).replace(full.find("xsi:type="), 9, "xsi:type = "),
        std::string(full).insert(full.find("Handle"), "Label=\"a>b\" "),
        // The type written with a character reference.
        std::string(full).replace(full.find("PatientContextState"), 19, "Patient&#67;ontextState"),
        // The demographics of another state of the same patient.
        "<msg:ContextState " + pm + "><pm:Identification Root=\"1.2.3\" Extension=\"PAT&#45;4242\"/></msg:ContextState>"
        "<msg:ContextState " + pm + "><pm:CoreData><pm:Givenname>Jane</pm:Givenname><pm:Familyname>Doe</pm:Familyname>"
        "</pm:CoreData></msg:ContextState>"}) {
    INFO(states);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_client, contexts_response(states));
    h.end();
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["sdc"]["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-4242")}));
    CHECK(ev[0]["sdc"]["phi_fields"] ==
          nlohmann::json::array({"sdc.patient.identification", "sdc.patient.givenname", "sdc.patient.familyname"}));
    CHECK(h.facts.phi_fields ==
          std::vector<std::string>{"sdc.patient.identification", "sdc.patient.givenname", "sdc.patient.familyname"});
    CHECK_FALSE(in_clear(h, "PAT-4242"));
    CHECK_FALSE(in_clear(h, "Jane"));
  }
  // Two patients (an MDIB with two patient contexts): both pseudonymised.
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  std::string second = full;
  second.replace(second.find("PAT-4242"), 8, "PAT-4343");
  h.feed(Dir::to_client, contexts_response(full + second));
  h.end();
  REQUIRE(h.events("sdc").size() == 1);
  CHECK(h.events("sdc")[0]["sdc"]["patients"] ==
        nlohmann::json::array({Pseudonymiser()("PAT-4242"), Pseudonymiser()("PAT-4343")}));
}

namespace {

// A Hello announcing one scope list, from a device to the multicast group.
std::string hello_with_scopes(const std::string& scopes) {
  return envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hello",
                  "<wsd:Hello><wsa:EndpointReference><wsa:Address>" + kEpr +
                      "</wsa:Address></wsa:EndpointReference><wsd:Types>mdpws:MedicalDevice</wsd:Types>"
                      "<wsd:Scopes>" + scopes + "</wsd:Scopes></wsd:Hello>");
}

void from_device_to_group(Harness& h) {
  h.ep.proto = 17;
  IpAddr::parse("10.20.0.15", h.ep.src);
  IpAddr::parse("239.255.255.250", h.ep.dst);
}

}  // namespace

TEST_CASE("sdc: a patient scope is hidden however XML or the URI writes it") {
  // Made-up patient. Each form is read as XML defines it; the scheme is case-insensitive.
  const std::string plain = "sdc.ctxt.pat:/1.2.3.4.5/PAT-7171";
  std::string expected;
  {
    Harness h(kSdcInfo);
    from_device_to_group(h);
    h.datagram(Dir::to_server, hello_with_scopes(plain));
    expected = h.events("sdc")[0]["sdc"]["participants"][0]["scopes"][0];
    CHECK(expected.rfind("sdc.ctxt.pat:phi:", 0) == 0);
  }
  struct Form {
    std::string scope;
    bool same_text;  // decodes to the plain scope, so it gets the same pseudonym
  };
  for (const Form& f : {Form{"<![CDATA[sdc.ctxt.pat:/1.2.3.4.5/PAT-7171]]>", true},
                        Form{"<![CDATA[sdc.ctxt]]>.pat:/1.2.3.4.5/PAT-7171", true},
                        Form{"sdc&#46;ctxt.pat:/1.2.3.4.5/PAT-7171", true},
                        Form{"&#x73;dc.ctxt.pat:/1.2.3.4.5/PAT-7171", true},
                        Form{"<!-- x -->sdc.ctxt.pat:/1.2.3.4.5/PAT-7171", true},
                        Form{"<?pi x?>sdc.ctxt.pat:/1.2.3.4.5/PAT-7171", true},
                        Form{"sdc.ctxt.pat:<!-- x -->/1.2.3.4.5/PAT&#45;7171", true},
                        Form{"SDC.CTXT.PAT:/1.2.3.4.5/PAT-7171", true},
                        Form{"Sdc.Ctxt.Pat:/1.2.3.4.5/PAT-7171", true},
                        Form{"&#32;sdc.ctxt.pat:/1.2.3.4.5/PAT-7171", true},
                        Form{"&#x9;&#10;sdc.ctxt.pat:/1.2.3.4.5/PAT-7171&#13;", true},
                        Form{"&#160;sdc.ctxt.pat:/1.2.3.4.5/PAT-7171", false},
                        Form{"urn:x:sdc.ctxt.pat:/1.2.3.4.5/PAT-7171", false}}) {
    INFO(f.scope);
    Harness h(kSdcInfo);
    from_device_to_group(h);
    h.datagram(Dir::to_server, hello_with_scopes("sdc.mds.pkp:1.2.840.10004.20701.1.1 " + f.scope));
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 1);
    auto& scopes = ev[0]["sdc"]["participants"][0]["scopes"];
    REQUIRE(scopes.size() == 2);
    CHECK(scopes[0] == "sdc.mds.pkp:1.2.840.10004.20701.1.1");
    std::string hidden = scopes[1];
    CHECK(hidden.rfind("sdc.ctxt.pat:phi:", 0) == 0);
    if (f.same_text) CHECK(hidden == expected);
    CHECK_FALSE(in_clear(h, "7171"));
    CHECK(ev[0]["sdc"]["phi_fields"] == nlohmann::json::array({"sdc.scope.patient"}));
    CHECK(h.facts.phi_fields == std::vector<std::string>{"sdc.scope.patient"});
  }
  // The same in what a consumer asks for.
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  h.datagram(Dir::to_server, envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Probe",
                                      "<wsd:Probe><wsd:Types>mdpws:MedicalDevice</wsd:Types><wsd:Scopes>"
                                      "<![CDATA[sdc.ctxt.pat:/1.2.3.4.5/PAT-7171]]> SDC.CTXT.PAT:/1.2.3.4.5/PAT-7272"
                                      "</wsd:Scopes></wsd:Probe>"));
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  auto& q = ev[0]["sdc"]["query_scopes"];
  REQUIRE(q.size() == 2);
  CHECK(q[0] == expected);
  CHECK(q[1].get<std::string>().rfind("sdc.ctxt.pat:phi:", 0) == 0);
  CHECK_FALSE(in_clear(h, "7171"));
  CHECK_FALSE(in_clear(h, "7272"));
  CHECK(h.facts.phi_fields == std::vector<std::string>{"sdc.scope.patient"});
}

TEST_CASE("sdc: discovery and metadata values are read as XML text") {
  Harness h(kSdcInfo);
  from_device_to_group(h);
  h.datagram(Dir::to_server,
             envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hel&#108;o",
                      "<wsd:Hello><wsa:EndpointReference><wsa:Address><![CDATA[" + kEpr +
                          "]]></wsa:Address></wsa:EndpointReference><wsd:Types><!-- device -->dpws:Device "
                          "<![CDATA[mdpws:MedicalDevice]]></wsd:Types><wsd:XAddrs>https://10.20.0.15:6464/a?x=1&amp;y=2"
                          "</wsd:XAddrs><wsd:MetadataVersion>&#51;</wsd:MetadataVersion ></wsd:Hello>"));
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  auto& s = ev[0]["sdc"];
  CHECK(s["action"] == "Hello");
  REQUIRE(s["participants"].size() == 1);
  auto& p = s["participants"][0];
  CHECK(p["endpoint"] == kEpr);
  CHECK(p["types"] == nlohmann::json::array({"dpws:Device", "mdpws:MedicalDevice"}));
  CHECK(p["xaddrs"] == nlohmann::json::array({"https://10.20.0.15:6464/" + Pseudonymiser()("/a")}));
  CHECK(p["metadata_version"] == "3");
  REQUIRE(h.facts.identities.size() == 1);
  CHECK(h.facts.identities[0].id == kEpr);

  std::string meta = get_response();
  meta.replace(meta.find("Acme Medical"), 12, "Acme &amp; Sons<!-- EU -->");
  meta.replace(meta.find("VitalView 5"), 11, "<![CDATA[VitalView <5>]]>");
  Harness g(kSdcInfo);
  g.ep.proto = 6;
  g.feed(Dir::to_client, http("HTTP/1.1 200 OK", meta));
  g.end();
  auto meta_ev = g.events("sdc");
  REQUIRE(meta_ev.size() == 1);
  auto& d = meta_ev[0]["sdc"]["device"];
  CHECK(d["manufacturer"] == "Acme & Sons");
  CHECK(d["model_name"] == "VitalView <5>");
  CHECK(*g.facts.attr("sdc.manufacturer") == "Acme & Sons");
}

TEST_CASE("sdc: workflow and operator scopes are pseudonymised, location and ensemble kept") {
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  IpAddr::parse("10.20.0.15", h.ep.src);
  IpAddr::parse("239.255.255.250", h.ep.dst);
  const std::string scopes =
      "sdc.mds.pkp:1.2.840.10004.20701.1.1 sdc.ctxt.wfl:/1.2.3.4.5/ACCZZ7777 SDC.CTXT.OPR:/1.2.3.4.5/OPRZZNURSE "
      "sdc.ctxt.loc:/sdc.ctxt.loc.detail/%2F%2F%2FICU%2F3%2F12?fac=HOSP&poc=ICU&bed=12 sdc.ctxt.ens:/1.2.3.4.5/ENS1";
  h.datagram(Dir::to_server,
             envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Hello",
                      "<wsd:Hello><wsa:EndpointReference><wsa:Address>" + kEpr +
                          "</wsa:Address></wsa:EndpointReference><wsd:Types>mdpws:MedicalDevice</wsd:Types><wsd:Scopes>" +
                          scopes + "</wsd:Scopes></wsd:Hello>"));
  h.datagram(Dir::to_server,
             envelope("http://docs.oasis-open.org/ws-dd/ns/discovery/2009/01/Probe",
                      "<wsd:Probe><wsd:Types>mdpws:MedicalDevice</wsd:Types>"
                      "<wsd:Scopes>sdc.ctxt.wfl:/1.2.3.4.5/ACCZZ7777</wsd:Scopes></wsd:Probe>"));
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 2);
  auto& sc = ev[0]["sdc"]["participants"][0]["scopes"];
  REQUIRE(sc.size() == 5);
  CHECK(sc[0] == "sdc.mds.pkp:1.2.840.10004.20701.1.1");
  // The pseudonym of the whole scope, scheme in lower case, as for sdc.ctxt.pat.
  CHECK(sc[1] == "sdc.ctxt.wfl:" + Pseudonymiser()("sdc.ctxt.wfl:/1.2.3.4.5/ACCZZ7777"));
  CHECK(sc[2] == "sdc.ctxt.opr:" + Pseudonymiser()("sdc.ctxt.opr:/1.2.3.4.5/OPRZZNURSE"));
  CHECK(sc[3] == "sdc.ctxt.loc:/sdc.ctxt.loc.detail/%2F%2F%2FICU%2F3%2F12?fac=HOSP&poc=ICU&bed=12");
  CHECK(sc[4] == "sdc.ctxt.ens:/1.2.3.4.5/ENS1");
  CHECK(ev[0]["sdc"]["phi_fields"] == nlohmann::json::array({"sdc.scope.workflow", "sdc.scope.operator"}));
  // The same order id asked for by a consumer gets the same pseudonym.
  CHECK(ev[1]["sdc"]["query_scopes"] == nlohmann::json::array({sc[1]}));
  CHECK(ev[1]["sdc"]["phi_fields"] == nlohmann::json::array({"sdc.scope.workflow"}));
  for (auto& l : h.sink->lines) {
    CHECK(l.find("ACCZZ7777") == std::string::npos);
    CHECK(l.find("OPRZZNURSE") == std::string::npos);
  }
  CHECK(h.facts.phi_fields == std::vector<std::string>{"sdc.scope.workflow", "sdc.scope.operator"});
}

TEST_CASE("sdc: the request target is written as a pseudonym of its path, without its query string") {
  Pseudonymiser ps;
  for (auto [target, path] : {std::pair<std::string, std::string>{"/patients/ContextService?name=ZZDOE%5EJANE", ps("/patients/ContextService")},
                              {"/x/ContextService#PATZZ1", ps("/x/ContextService")},
                              {"/x/ContextService", ps("/x/ContextService")},
                              // An id in the path itself (a patient's, an episode's).
                              {"/patients/PATZZ1/ContextService", ps("/patients/PATZZ1/ContextService")},
                              {"/episode/ZZDOE-2024-17?x=1", ps("/episode/ZZDOE-2024-17")},
                              {"/", "/"},
                              {"?pid=PATZZ1", "/"}}) {
    INFO(target);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_server, http("POST " + target + " HTTP/1.1",
                                envelope("http://standards.ieee.org/downloads/11073/11073-20701-2018/ContextService/GetContextStates",
                                         "<msg:GetContextStates/>")));
    h.end();
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["sdc"]["http_path"] == path);
    for (auto& l : h.sink->lines) {
      CHECK(l.find("ZZDOE") == std::string::npos);
      CHECK(l.find("PATZZ1") == std::string::npos);
    }
  }
}

TEST_CASE("sdc: after a gap the damaged message is dropped and the next start line is found") {
  std::string resp = contexts_response(patient_state("msg:ContextState"));
  size_t phi = resp.find("Extension=");
  // Holes that end in the head, in the body before the patient, and exactly at the next message.
  for (size_t cut : {size_t(10), size_t(200), phi}) {
    for (size_t hole : {size_t(5), resp.size() - cut}) {
      INFO("cut " << cut << " hole " << hole);
      if (cut + hole > resp.size()) continue;
      Harness h(kSdcInfo);
      h.ep.proto = 6;
      h.feed(Dir::to_server, get_request(1) + get_request(2));
      h.feed(Dir::to_client, resp.substr(0, cut));
      h.gap(Dir::to_client, hole);
      // The rest arrives in pieces, so a start line may be split too.
      std::string after = resp.substr(cut + hole) + contexts_response("") + contexts_response("");
      for (size_t i = 0; i < after.size(); i += 7) h.feed(Dir::to_client, after.substr(i, 7));
      h.end();
      auto ev = h.events("sdc");
      REQUIRE(ev.size() == 4);
      for (auto& e : ev) {
        if (e["sdc"]["direction"] == "to_server") {
          CHECK(e["sdc"]["http_method"] == "POST");
          CHECK(e["sdc"]["http_path"] == Pseudonymiser()("/x/ContextService"));
        } else {
          CHECK(e["sdc"]["http_status"] == 200);
          CHECK_FALSE(e["sdc"].contains("http_method"));
          CHECK(e["sdc"]["action"] == "GetContextStatesResponse");
        }
      }
      CHECK(h.anomalies("message_lost") == 1);
      CHECK(h.anomalies() == 1);
      CHECK_FALSE(in_clear(h, "PAT-4242"));
      CHECK_FALSE(in_clear(h, "Jane"));
    }
  }
}

TEST_CASE("sdc: start lines are read strictly") {
  for (std::string line : {"Extension=\"PAT-4242\"/><pm:Givenname>Jane", "post /x HTTP/1.1", "POST /x", "POST  HTTP/1.1",
                           "POST /x HTTP/2.0", "POSTPOSTPOSTPOSTPOST /x HTTP/1.1", "HTTP/1.1 2000 OK", "HTTP/1.1 OK",
                           "HTTP/1.x 200 OK", "PO-ST /x HTTP/1.1", "POST /a\x01 HTTP/1.1"}) {
    INFO(line);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_server, line + "\r\nContent-Length: 0\r\n\r\n");
    CHECK(h.events("sdc").empty());
    CHECK(h.anomalies("bad_http_start_line") == 1);
    CHECK_FALSE(in_clear(h, "Jane"));
  }
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.feed(Dir::to_client, contexts_response("").replace(0, 15, "HTTP/1.0 200"));
  REQUIRE(h.events("sdc").size() == 1);
  CHECK(h.events("sdc")[0]["sdc"]["http_status"] == 200);
}

TEST_CASE("sdc: a body too long to hold is skipped and the next message is read") {
  std::string big = get_request(1);
  big.insert(big.find("<s12:Body>"), std::string(3u << 20, ' '));
  std::string big_chunked = http("POST /x/ContextService HTTP/1.1", big.substr(big.find("\r\n\r\n") + 4), true);
  // Many HTTP stacks send a whole body as one chunk.
  std::string body = big.substr(big.find("\r\n\r\n") + 4);
  char size_line[32];
  std::snprintf(size_line, sizeof size_line, "%zx\r\n", body.size());
  std::string one_chunk = big_chunked.substr(0, big_chunked.find("\r\n\r\n") + 4) + size_line + body + "\r\n0\r\n\r\n";
  big = http("POST /x/ContextService HTTP/1.1", body);
  // (The test harness skips only within what it holds: the skipped body is given at once.)
  for (auto [first, piece] : {std::pair{&big, big.size() + 4096}, std::pair{&big_chunked, big.size() + 4096},
                              std::pair{&big_chunked, size_t(65536)}, std::pair{&one_chunk, size_t(65536)}}) {
    INFO((first == &big ? "sized " : first == &one_chunk ? "one chunk " : "chunked ") << piece);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    std::string all = *first + get_request(2);
    for (size_t i = 0; i < all.size(); i += piece) h.feed(Dir::to_server, all.substr(i, piece));
    h.end();
    CHECK(h.anomalies("body_too_long") == 1);
    CHECK(h.anomalies() == 1);
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["sdc"]["http_method"] == "POST");
  }
}

TEST_CASE("sdc: the body cap follows the sensor's dissector buffer") {
  std::string body = get_request(1);
  body = body.substr(body.find("\r\n\r\n") + 4);
  body.insert(body.find("<s12:Body>"), std::string(3u << 20, ' '));
  for (bool chunked : {false, true}) {
    INFO((chunked ? "chunked" : "sized"));
    std::string all = http("POST /x/ContextService HTTP/1.1", body, chunked) + get_request(2);
    // reassembly.max_dissector_buffer raised to 8 MiB: a 3 MiB body fits and is read.
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.ctx.set_hold_limit(size_t(8) << 20);
    h.feed(Dir::to_server, all);
    h.end();
    CHECK(h.anomalies() == 0);
    CHECK(h.events("sdc").size() == 2);
    // The default 2 MiB: it is not.
    Harness g(kSdcInfo);
    g.ep.proto = 6;
    g.feed(Dir::to_server, all);
    g.end();
    CHECK(g.anomalies("body_too_long") == 1);
    CHECK(g.events("sdc").size() == 1);
  }
}

TEST_CASE("sdc: a chunked body is decoded as its chunks arrive") {
  std::string m = http("HTTP/1.1 200 OK", get_response(), true);
  size_t head = m.find("\r\n\r\n") + 4;
  size_t size_line = m.find("\r\n", head) + 2 - head;
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  // The head is consumed, then it asks for the rest of the first chunk (100 bytes and its CR LF).
  auto r = h.d->on_data(Dir::to_client, bytes_of(m.substr(0, head + size_line + 10)), h.ctx);
  CHECK(r.used == head);
  CHECK(r.need == size_line + 100 + 2);
  // Fed in small pieces, whole chunks are consumed at once: what is held stays under a chunk.
  Harness g(kSdcInfo);
  g.ep.proto = 6;
  for (size_t i = 0; i < m.size(); i += 7) {
    g.feed(Dir::to_client, m.substr(i, 7));
    CHECK(g.pending[static_cast<int>(Dir::to_client)].size() < 120);
  }
  g.end();
  REQUIRE(g.events("sdc").size() == 1);
  CHECK(g.events("sdc")[0]["sdc"]["device"]["model_name"] == "VitalView 5");
  CHECK(g.events("sdc")[0]["sdc"]["http_status"] == 200);
}

TEST_CASE("sdc: element_text") {
  size_t pos = 0;
  CHECK(sdc::element_text("<a:X>1</a:X><X>2</X>", "X", 0, &pos) == "1");
  CHECK(sdc::element_text("<a:X>1</a:X><X>2</X>", "X", pos) == "2");
  CHECK(sdc::element_text("<a:X/>", "X").empty());
  CHECK(sdc::element_text("<a:X>unterminated", "X").empty());
  CHECK(sdc::element_text("<", "X").empty());
  // Markup read as XML: end tags with white space, comments and CDATA sections that hold tags,
  // nested elements of the same name, '>' in an attribute value.
  CHECK(sdc::element_text("<a:X >1</a:X\t>", "X") == "1");
  CHECK(sdc::element_text("<!-- <X>no</X> --><X>2</X>", "X") == "2");
  CHECK(sdc::element_text("<X><!-- </X> -->3</X>", "X") == "<!-- </X> -->3");
  CHECK(sdc::element_text("<X><![CDATA[</X>]]>4</X>", "X") == "<![CDATA[</X>]]>4");
  CHECK(sdc::element_text("<X><X>in</X>out</X>", "X") == "<X>in</X>out");
  CHECK(sdc::element_text("<X a=\">\">5</X>", "X") == "5");
  // A '<' that starts no name is text, however wrongly written.
  CHECK(sdc::element_text("<X>a < b</X>", "X") == "a < b");
  CHECK(sdc::element_text("<X>a <</X>", "X") == "a <");
  pos = 0;
  CHECK(sdc::element_text("<X/><X>6</X>", "X", 0, &pos).empty());
  CHECK(sdc::element_text("<X/><X>6</X>", "X", pos) == "6");
}

TEST_CASE("sdc: text_of reads character data as XML defines it") {
  CHECK(sdc::text_of("a&amp;b&lt;&gt;&quot;&apos;&#x41;&#66;") == "a&b<>\"'AB");
  // Unknown entities and references to characters XML forbids stay as written.
  CHECK(sdc::text_of("&bogus; &#0; &#xD800; &#x110000; & ;") == "&bogus; &#0; &#xD800; &#x110000; & ;");
  CHECK(sdc::text_of("&#160;&#x20AC;") == "\xC2\xA0\xE2\x82\xAC");
  CHECK(sdc::text_of("<![CDATA[<x>&amp;]]>y") == "<x>&amp;y");
  CHECK(sdc::text_of("a<!-- b -->c<?p q?>d") == "acd");
  CHECK(sdc::text_of("a<b x='>'>c</b>d") == "acd");
  CHECK(sdc::text_of("<![CDATA[abc") == "abc");
  CHECK(sdc::text_of("a < b <c>d") == "a < b d");
  CHECK(sdc::text_of("a<!-- b") == "a");
  CHECK(sdc::element_value("<w:X>&#x73;dc<![CDATA[.ctxt]]><!-- -->.pat</w:X >", "X") == "sdc.ctxt.pat");
}

TEST_CASE("sdc: hostile input") {
  std::mt19937 rng(5);
  std::string base = http("HTTP/1.1 200 OK", get_response(), true);
  for (int round = 0; round < 300; ++round) {
    std::string m = base;
    for (int k = 0; k < 10; ++k) m[rng() % m.size()] = "<>/:\r\n0f "[rng() % 9];
    m.resize(rng() % m.size());
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_client, m);
    h.end();
    Harness u(kSdcInfo);
    u.ep.proto = 17;
    u.datagram(Dir::to_server, m);
  }
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.feed(Dir::to_client, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nxx");
  CHECK(h.anomalies("body_too_long") == 1);
}

TEST_CASE("sdc: 1xx, 204 and 304 responses have no body whatever their Content-Length says") {
  // A 304 may carry the Content-Length of what it did not send: the response after it is read.
  for (std::string status : {"HTTP/1.1 100 Continue", "HTTP/1.1 204 No Content", "HTTP/1.1 304 Not Modified"}) {
    INFO(status);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_client, status + "\r\nContent-Length: 500\r\n\r\n" + contexts_response(""));
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["sdc"]["http_status"] == 200);
    CHECK(h.anomalies() == 0);
  }
}

TEST_CASE("sdc: the head and chunk line limits do not depend on where the bytes were cut") {
  // A head of 64 KiB up to its blank line is read, however its CR LF CR LF is cut; one byte more
  // is too long.
  for (size_t extra : {size_t(0), size_t(1)}) {
    std::string m = get_request(1);
    size_t hend = m.find("\r\n\r\n");
    std::string pad = "\r\nX-Pad: ";
    m.insert(hend, pad + std::string((64u << 10) - hend - pad.size() + extra, 'a'));
    REQUIRE(m.find("\r\n\r\n") == (64u << 10) + extra);
    for (size_t cut : {size_t(0), (size_t(64) << 10) + 1, (size_t(64) << 10) + 2, (size_t(64) << 10) + 3}) {
      INFO("extra " << extra << " cut " << cut);
      Harness h(kSdcInfo);
      h.ep.proto = 6;
      h.feed(Dir::to_server, m.substr(0, cut));
      h.feed(Dir::to_server, m.substr(cut));
      CHECK(h.events("sdc").size() == 1 - extra);
      CHECK(h.anomalies("http_header_too_long") == extra);
    }
  }
  // A chunk size line over 8 KiB is a bad chunk, whole or cut.
  std::string m = http("HTTP/1.1 200 OK", get_response(), true);
  size_t size_line = m.find("\r\n\r\n") + 4;
  m.insert(m.find("\r\n", size_line), ";x=" + std::string(9000, 'e'));
  for (size_t cut : {size_t(0), size_line + 8200}) {
    INFO("cut " << cut);
    Harness h(kSdcInfo);
    h.ep.proto = 6;
    h.feed(Dir::to_client, m.substr(0, cut));
    h.feed(Dir::to_client, m.substr(cut));
    CHECK(h.events("sdc").empty());
    CHECK(h.anomalies("bad_chunk") == 1);
  }
}

TEST_CASE("sdc: a worker whose announcements a merge replays records them; the merge's call remembers them") {
  IpAddr ip;
  REQUIRE(IpAddr::parse("10.20.7.1", ip));
  struct Recorder : AnnouncementRecorder {
    void announced(RememberServer r, const IpAddr& a, uint16_t p) override { calls.push_back({r, a, p}); }
    struct Call { RememberServer remember; IpAddr ip; uint16_t port; };
    std::vector<Call> calls;
  } rec;
  // The worker reads the announcement: recorded, not yet known to anyone.
  std::thread([&] {
    set_announcement_recorder(&rec);
    sdc::remember_endpoint(ip, 6465);
  }).join();
  REQUIRE(rec.calls.size() == 1);
  CHECK(rec.calls[0].port == 6465);
  CHECK_FALSE(sdc::is_sdc_endpoint(ip, 6465));
  // The merge replays it in its turn: from then on every thread knows it.
  rec.calls[0].remember(rec.calls[0].ip, rec.calls[0].port);
  CHECK(sdc::is_sdc_endpoint(ip, 6465));
  bool seen = false;
  std::thread([&] { seen = sdc::is_sdc_endpoint(ip, 6465); }).join();
  CHECK(seen);
}

TEST_CASE("sdc: a connection claimed at a later message reads it without reporting what came before") {
  // What the stream feeder gives when a GET of the WSDL came first: the bytes before the SOAP
  // request are a gap of each direction, before anything of it was read.
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.gap(Dir::to_server, 40);
  h.gap(Dir::to_client, 150);
  h.feed(Dir::to_server, get_request(1));
  h.feed(Dir::to_client, contexts_response(patient_state("msg:ContextState")));
  // A later WSDL exchange on the same connection is no SOAP and says so: let be.
  const std::string wsdl = "<?xml version=\"1.0\"?><wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\"/>";
  h.feed(Dir::to_server, "GET /x/ContextService?wsdl HTTP/1.1\r\nHost: 10.20.0.15:6464\r\n\r\n");
  h.feed(Dir::to_client, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: " + std::to_string(wsdl.size()) +
                             "\r\n\r\n" + wsdl);
  // A body typed as SOAP that is none is still reported.
  h.feed(Dir::to_client, "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: " +
                             std::to_string(wsdl.size()) + "\r\n\r\n" + wsdl);
  h.end();
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["sdc"]["action"] == "GetContextStates");
  CHECK(ev[1]["sdc"]["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-4242")}));
  CHECK(h.anomalies("message_lost") == 0);
  CHECK(h.anomalies("not_a_soap_envelope") == 1);
  CHECK(h.anomalies() == 1);
}

TEST_CASE("sdc: a later POST or response of an HTTP connection is probed as a stream's start") {
  auto b = [](std::string_view s) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  CHECK(sdc::carried_by(b("GET /x?wsdl HTTP/1.1\r\n"), Dir::to_server));
  CHECK(sdc::carried_by(b("HTTP/1.1 200 OK\r\n"), Dir::to_client));
  CHECK_FALSE(sdc::carried_by(b("<s12:Envelope"), Dir::to_server));
  const std::string req = get_request(1);
  CHECK(sdc::later_probe(b(req), Dir::to_server) == Probe::yes);
  CHECK(sdc::later_probe(b("PO"), Dir::to_server) == Probe::need_more);
  CHECK(sdc::later_probe(b("GET /x?wsdl HTTP/1.1\r\n\r\n"), Dir::to_server) == Probe::no);
  const std::string get = "GET /x?wsdl HTTP/1.1\r\nHost: h\r\n\r\n";
  LaterCursor cursor;
  CHECK(sdc::later_next(b(get + req), Dir::to_server, cursor) == get.size());
  // A chunked body that goes on into the next segment: its chunks are followed there, and the
  // request behind them is found where they end.
  const std::string head = "POST /log HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string first = head + "a\r\n01234";
  CHECK(sdc::later_next(b(first), Dir::to_server, cursor) == first.size() + 5 + 2);  // the data and its CRLF
  CHECK(cursor.active());
  const std::string rest = "0\r\n\r\n";
  CHECK(sdc::later_next(b(rest + req), Dir::to_server, cursor) == rest.size());
  CHECK_FALSE(cursor.active());
}

TEST_CASE("sdc: a neonate's mother is PHI of her own, not the patient's") {
  // Made-up neonate and mother (NeonatalPatientDemographicsCoreData).
  const std::string mother = "<pm:Mother><pm:Identification Root=\"1.2.3\" Extension=\"MOMZZ2\"/><pm:Name>"
                             "<pm:Givenname>Momzz</pm:Givenname><pm:Familyname>Motherzz</pm:Familyname></pm:Name></pm:Mother>";
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.feed(Dir::to_client, contexts_response(
      "<msg:ContextState xsi:type=\"pm:PatientContextState\" Handle=\"p1\"><pm:Identification Root=\"1.2.3\" Extension=\"BABYZZ1\"/>"
      "<pm:CoreData xsi:type=\"pm:NeonatalPatientDemographicsCoreData\"><pm:Givenname>Babyzz</pm:Givenname>" + mother +
      "</pm:CoreData></msg:ContextState>"));
  // A mother named before the neonate has an id or a family name of its own.
  h.feed(Dir::to_client, contexts_response(
      "<pm:PatientContextState Handle=\"p2\"><pm:CoreData xsi:type=\"pm:NeonatalPatientDemographicsCoreData\">" + mother +
      "</pm:CoreData></pm:PatientContextState>"));
  h.end();
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 2);
  Pseudonymiser ps;
  CHECK(ev[0]["sdc"]["patients"] == nlohmann::json::array({ps("BABYZZ1"), ps("MOMZZ2")}));
  CHECK(ev[0]["sdc"]["phi_fields"] == nlohmann::json::array({"sdc.patient.identification", "sdc.patient.givenname",
                                                              "sdc.patient.mother_identification", "sdc.patient.mother_name"}));
  CHECK(ev[1]["sdc"]["patients"] == nlohmann::json::array({ps("MOMZZ2")}));
  CHECK(ev[1]["sdc"]["phi_fields"] ==
        nlohmann::json::array({"sdc.patient.mother_identification", "sdc.patient.mother_name"}));
  for (auto s : {"BABYZZ1", "MOMZZ2", "Babyzz", "Momzz", "Motherzz"}) CHECK_FALSE(in_clear(h, s));
}

TEST_CASE("sdc: an operator context's identifier and name are personal data, the name a pseudonym") {
  // Made-up clinician.
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.feed(Dir::to_client, contexts_response(
      "<msg:ContextState xsi:type=\"pm:OperatorContextState\" Handle=\"o1\" ContextAssociation=\"Assoc\">"
      "<pm:Identification Root=\"1.2.3\" Extension=\"OPZZ77\"/><pm:OperatorDetails><pm:Givenname>Opalzz</pm:Givenname>"
      "<pm:Familyname>Operzz</pm:Familyname></pm:OperatorDetails></msg:ContextState>"
      "<pm:OperatorContextState Handle=\"o2\" ContextAssociation=\"No\"/>"));
  h.end();
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["sdc"]["operators"] == nlohmann::json::array({Pseudonymiser()("Operzz^Opalzz")}));
  CHECK(ev[0]["sdc"]["phi_fields"] == nlohmann::json::array({"sdc.operator.identification", "sdc.operator.name"}));
  CHECK_FALSE(ev[0]["sdc"].contains("patients"));
  CHECK(h.facts.phi_fields.size() == 2);
  for (auto s : {"OPZZ77", "Opalzz", "Operzz"}) CHECK_FALSE(in_clear(h, s));
}

TEST_CASE("sdc: an identifier with a Root and no Extension is the Root alone: PHI, pseudonymised") {
  // Made-up patient, identified by a Root only (BICEPS InstanceIdentifier without Extension).
  Harness h(kSdcInfo);
  h.ep.proto = 6;
  h.feed(Dir::to_client, contexts_response(
      "<msg:ContextState xsi:type=\"pm:PatientContextState\" Handle=\"p1\">"
      "<pm:Identification Root=\"urn:uuid:0badc0de-zz11-4242-8888-000000000001\"/></msg:ContextState>"
      "<msg:ContextState xsi:type=\"pm:WorkflowContextState\" Handle=\"w1\"><pm:WorkflowDetail>"
      "<pm:VisitNumber Root=\"urn:oid:1.2.3.999.77\"/>"
      "<pm:RequestedOrderDetail><pm:PlacerOrderNumber Root=\"urn:oid:1.2.3.999.88\"/></pm:RequestedOrderDetail>"
      "</pm:WorkflowDetail></msg:ContextState>"
      "<msg:ContextState xsi:type=\"pm:OperatorContextState\" Handle=\"o1\">"
      "<pm:Identification Root=\"urn:oid:1.2.3.999.99\"/></msg:ContextState>"));
  h.end();
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  Pseudonymiser p;
  CHECK(ev[0]["sdc"]["patients"] == nlohmann::json::array({p("urn:uuid:0badc0de-zz11-4242-8888-000000000001")}));
  CHECK(ev[0]["sdc"]["orders"] == nlohmann::json::array({p("urn:oid:1.2.3.999.88")}));
  CHECK(ev[0]["sdc"]["phi_fields"] ==
        nlohmann::json::array({"sdc.patient.identification", "sdc.workflow.visit_number",
                               "sdc.workflow.placer_order_number", "sdc.operator.identification"}));
  for (auto s : {"0badc0de", "999.77", "999.88", "999.99"}) CHECK_FALSE(in_clear(h, s));
  // With an Extension, the Extension is the value pseudonymised, as before.
  Harness g(kSdcInfo);
  g.ep.proto = 6;
  g.feed(Dir::to_client, contexts_response("<pm:PatientContextState Handle=\"p1\"><pm:Identification Root=\"1.2.3\" "
                                           "Extension=\"PATZZ-5\"/></pm:PatientContextState>"));
  g.end();
  REQUIRE(g.events("sdc").size() == 1);
  CHECK(g.events("sdc")[0]["sdc"]["patients"] == nlohmann::json::array({p("PATZZ-5")}));
}

TEST_CASE("sdc: the endpoints remembered are bounded; the one announced longest ago makes room, and is counted") {
  IpAddr a, b, c;
  REQUIRE(IpAddr::parse("10.99.0.1", a));
  REQUIRE(IpAddr::parse("10.99.0.2", b));
  REQUIRE(IpAddr::parse("10.99.0.3", c));
  // Fill the set with endpoints of this test only (whatever others left in it goes first).
  sdc::remember_endpoint(a, 443);
  sdc::remember_endpoint(b, 443);
  for (uint16_t port = 1; port <= 4094; ++port) sdc::remember_endpoint(c, port);
  sdc::remember_endpoint(a, 443);  // announced again: now the newest
  CHECK(sdc::is_sdc_endpoint(a, 443));
  CHECK(sdc::is_sdc_endpoint(b, 443));
  // A flood of new endpoints does not keep a later device out: b, announced longest ago, goes.
  IpAddr d;
  REQUIRE(IpAddr::parse("10.99.0.4", d));
  CHECK(sdc::remember_endpoint(d, 443));
  CHECK(sdc::is_sdc_endpoint(d, 443));
  CHECK_FALSE(sdc::is_sdc_endpoint(b, 443));
  CHECK(sdc::is_sdc_endpoint(a, 443));
  CHECK(sdc::is_sdc_endpoint(c, 1));
  CHECK_FALSE(sdc::remember_endpoint(d, 443));  // known: nothing to forget
  CHECK(sdc::remember_endpoint(b, 443));          // c:1 goes
  CHECK_FALSE(sdc::is_sdc_endpoint(c, 1));
}

namespace {

using http_test::deflated;

std::string coded_answer(const std::string& body, const std::string& headers) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\n" + headers + "\r\n\r\n" + body;
}

}  // namespace

TEST_CASE("sdc: a gzip or deflate body is read as its text, its PHI counted as in clear") {
  Pseudonymiser ps;
  const std::string text = context_report();
  const std::string gz = deflated(text, 31);
  struct Case { const char* name; std::string answer; };
  auto length = [](const std::string& b) { return "Content-Length: " + std::to_string(b.size()); };
  std::string chunked = "Transfer-Encoding: gzip, chunked";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", gz.size());
  const Case cases[] = {
      {"Content-Encoding gzip", coded_answer(gz, "Content-Encoding: gzip\r\n" + length(gz))},
      {"Content-Encoding x-gzip, two members", coded_answer(gz + gz, "Content-Encoding: X-GZIP\r\n" + length(gz + gz))},
      {"Content-Encoding deflate (zlib)", coded_answer(deflated(text, 15), "Content-Encoding: deflate\r\n" + length(deflated(text, 15)))},
      {"Content-Encoding deflate (raw)", coded_answer(deflated(text, -15), "Content-Encoding: deflate\r\n" + length(deflated(text, -15)))},
      {"Transfer-Encoding gzip, chunked", coded_answer(std::string(size) + "\r\n" + gz + "\r\n0\r\n\r\n", chunked)},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Harness h(kSdcInfo);
    h.feed(Dir::to_server, http("POST /ctx HTTP/1.1", envelope("http://standards.ieee.org/downloads/11073/11073-20701-2018/ContextService/GetContextStates", "<msg:GetContextStates xmlns:msg=\"x\"/>")));
    h.feed(Dir::to_client, c.answer);
    auto ev = h.events("sdc");
    REQUIRE(ev.size() == 2);
    CHECK(ev[1]["sdc"]["action"] == "GetContextStatesResponse");
    CHECK(ev[1]["sdc"]["patients"] == nlohmann::json::array({ps("PAT-4242")}));
    CHECK(ev[1]["sdc"]["phi_fields"][0] == "sdc.patient.identification");
    CHECK(h.anomalies() == 0);
    for (auto& l : h.sink->lines) CHECK(l.find("PAT-4242") == std::string::npos);
  }
  SECTION("a coding that cannot be undone, or broken data, is reported for a SOAP body only") {
    Harness h(kSdcInfo);
    std::string br = "\x1b\x2a\x00\xf8";
    h.feed(Dir::to_client, http("HTTP/1.1 200 OK", get_response()));
    h.feed(Dir::to_client, coded_answer(br, "Content-Encoding: br\r\n" + length(br)));
    std::string cut = gz.substr(0, gz.size() / 2);
    h.feed(Dir::to_client, coded_answer(cut, "Content-Encoding: gzip\r\n" + length(cut)));
    // A compressed WSDL on the same connection is no SOAP message.
    h.feed(Dir::to_client, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Encoding: br\r\n" + length(br) + "\r\n\r\n" + br);
    CHECK(h.events("sdc").size() == 1);
    CHECK(h.anomalies("undecodable_body") == 2);
    CHECK(h.anomalies() == 2);
  }
  SECTION("a body that inflates past the cap is dropped") {
    Harness h(kSdcInfo);
    h.ctx.set_hold_limit(1 << 20);
    std::string big = text;
    big.insert(big.find("<s12:Body>"), std::string(2 << 20, ' '));
    std::string bomb = deflated(big, 31);
    REQUIRE(bomb.size() < 64 * 1024);
    h.feed(Dir::to_client, http("HTTP/1.1 200 OK", get_response()));
    h.feed(Dir::to_client, coded_answer(bomb, "Content-Encoding: gzip\r\n" + length(bomb)));
    h.feed(Dir::to_client, http("HTTP/1.1 200 OK", get_response()));
    CHECK(h.events("sdc").size() == 2);
    CHECK(h.anomalies("body_too_long") == 1);
  }
}

TEST_CASE("sdc: a request target in absolute form gives the pseudonym of its path") {
  Harness h(kSdcInfo);
  const std::string body = envelope("http://standards.ieee.org/downloads/11073/11073-20701-2018/GetService/GetMdib", "<x/>");
  for (std::string target : {"/0c6a7a2e", "http://10.20.0.15:6464/0c6a7a2e?x=1", "HTTPS://u:p@[fd00::15]:6464/0c6a7a2e#f",
                             "http://10.20.0.15:6464", "http://10.20.0.15:6464?patient=PATZZ9"})
    h.feed(Dir::to_server, http("POST " + target + " HTTP/1.1", body));
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 5);
  const std::string path = Pseudonymiser()("/0c6a7a2e");
  for (int i : {0, 1, 2}) CHECK(ev[i]["sdc"]["http_path"] == path);
  CHECK(ev[3]["sdc"]["http_path"] == "/");
  CHECK(ev[4]["sdc"]["http_path"] == "/");
}

TEST_CASE("sdc: a dual-stack device's Hello over IPv6 with IPv4 XAddrs is its own") {
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  IpAddr::parse("fe80::15", h.ep.src);
  IpAddr::parse("ff02::c", h.ep.dst);
  h.datagram(Dir::to_server, hello());  // XAddrs https://10.20.0.15:6464/...
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["sdc"]["device_ip"] == "fe80::15");
  REQUIRE(h.facts.identities.size() == 1);
  CHECK(h.facts.identities[0].id == kEpr);
  REQUIRE(h.facts.attr("sdc.endpoint"));
  // A proxy's IPv6 answer naming another IPv6 host is still no identity of its sender.
  Harness p(kSdcInfo);
  p.ep.proto = 17;
  IpAddr::parse("fd00::2", p.ep.src);
  IpAddr::parse("fd00::9", p.ep.dst);
  std::string other = hello();
  other.replace(other.find("https://10.20.0.15:6464"), 23, "https://[fd00::15]:6464");
  p.datagram(Dir::to_server, other);
  CHECK(p.facts.identities.empty());
  CHECK_FALSE(p.events("sdc")[0]["sdc"].contains("device_ip"));
}

TEST_CASE("sdc: only a device's own https XAddrs name TLS flows") {
  auto hello_with = [](const std::string& xaddrs) {
    std::string m = hello();
    return m.replace(m.find("https://10.20.0.15:6464/0c6a7a2e"), 32, xaddrs);
  };
  IpAddr outside, own, own6, other;
  IpAddr::parse("203.0.113.5", outside);
  IpAddr::parse("10.20.0.66", own);
  IpAddr::parse("fd00::66", own6);
  IpAddr::parse("10.20.0.15", other);
  Harness h(kSdcInfo);
  h.ep.proto = 17;
  h.ep.src = own;
  IpAddr::parse("239.255.255.250", h.ep.dst);
  // A host announcing an outside server's address (no address of its own): not remembered.
  h.datagram(Dir::to_server, hello_with("https://203.0.113.5:443/"));
  CHECK_FALSE(sdc::is_sdc_endpoint(outside, 443));
  // Its own addresses are, of both families, but not another host's among them.
  h.datagram(Dir::to_server, hello_with("https://10.20.0.66:6467/a https://[fd00::66]:6467/a https://10.20.0.15:6467/a"));
  CHECK(sdc::is_sdc_endpoint(own, 6467));
  CHECK(sdc::is_sdc_endpoint(own6, 6467));
  CHECK_FALSE(sdc::is_sdc_endpoint(other, 6467));
  // A proxy's answer for another device names none.
  Harness p(kSdcInfo);
  p.ep.proto = 17;
  IpAddr::parse("10.20.0.9", p.ep.src);
  p.ep.dst = own;
  std::string m = hello_with("https://10.20.0.15:6468/a");
  m.replace(m.find("discovery/2009/01/Hello"), 23, "discovery/2009/01/ProbeMatches");
  p.datagram(Dir::to_client, m);
  CHECK_FALSE(sdc::is_sdc_endpoint(other, 6468));
}

TEST_CASE("sdc: the probe judges a compressed message by the text its body inflates to") {
  auto p = [](std::string_view s) { return sdc::probe(bytes_of(s), Dir::to_server); };
  auto post = [](const std::string& headers, const std::string& body) {
    return "POST /ctx HTTP/1.1\r\nHost: 10.20.0.15:6464\r\nContent-Type: application/soap+xml\r\n" + headers +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  const std::string text = context_report();
  const std::string gz = deflated(text, 31);
  CHECK(p(post("Content-Encoding: gzip\r\n", gz)) == Probe::yes);
  CHECK(p(post("Content-Encoding: deflate\r\n", deflated(text, -15))) == Probe::yes);
  CHECK(p(post("Content-Encoding: deflate\r\n", deflated(text, 15)).substr(0, 512)) == Probe::yes);
  char size[16];
  std::snprintf(size, sizeof size, "%zx", gz.size());
  CHECK(p("POST /ctx HTTP/1.1\r\nContent-Type: application/soap+xml\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" +
          std::string(size) + "\r\n" + gz + "\r\n0\r\n\r\n") == Probe::yes);
  // Cut before the markers: more is asked for; a body of another coding, or no envelope, is refused.
  const std::string head_only = post("Content-Encoding: gzip\r\n", gz);
  CHECK(p(head_only.substr(0, head_only.size() - gz.size() + 10)) == Probe::need_more);
  CHECK(p(post("Content-Encoding: br\r\n", gz)) == Probe::no);
  CHECK(p(post("Content-Encoding: gzip\r\n", deflated("<html>no soap</html>", 31))) == Probe::no);
  CHECK(p(post("Content-Encoding: gzip\r\n", text)) == Probe::no);
  // The first exchange of a connection, compressed both ways, is claimed and read.
  Harness h(kSdcInfo);
  const std::string req = post("Content-Encoding: gzip\r\n", deflated(envelope("http://standards.ieee.org/downloads/11073/11073-20701-2018/ContextService/GetContextStates", "<msg:GetContextStates xmlns:msg=\"x\"/>"), 31));
  REQUIRE(p(req) == Probe::yes);
  h.feed(Dir::to_server, req);
  h.feed(Dir::to_client, coded_answer(gz, "Content-Encoding: gzip\r\nContent-Length: " + std::to_string(gz.size())));
  auto ev = h.events("sdc");
  REQUIRE(ev.size() == 2);
  CHECK(ev[1]["sdc"]["action"] == "GetContextStatesResponse");
}
