#include <catch2/catch.hpp>

#include <random>
#include <string>

#include "dissectors/api/xml_prolog.h"
#include "dissectors/poct1/poct1_dissector.h"
#include "dissectors/proprietary/test/harness.h"

using namespace medmon;
using medmon::testing::Harness;
using medmon::testing::bytes_of;

namespace {

const std::string kDecl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
std::string hdr(int id) {
  return "<HDR><HDR.control_id V=\"" + std::to_string(id) +
         "\"/><HDR.version_id V=\"POCT1\"/><HDR.creation_dttm V=\"2024-01-01T12:00:00+00:00\"/></HDR>";
}
std::string hel() {
  return kDecl + "<HEL.R01>" + hdr(1001) +
         "<HEL><DEV><DEV.device_id V=\"00:1b:22:33:44:55\"/><DEV.vendor_id V=\"ACME\"/><DEV.model_id V=\"GlucoPoint 3\"/>"
         "<DEV.serial_id V=\"GP3-0042\"/><DEV.manufacturer_name V=\"Acme &amp; Sons\"/><DEV.sw_version V=\"4.2.1\"/>"
         "</DEV><DCP><DCP.application_timeout V=\"30\"/></DCP></HEL></HEL.R01>\n";
}
std::string ack(int id, int acked) {
  return kDecl + "<ACK.R01>" + hdr(id) + "<ACK><ACK.type_cd V=\"AA\"/><ACK.ack_control_id V=\"" + std::to_string(acked) +
         "\"/></ACK></ACK.R01>";
}
std::string dst() {
  return kDecl + "<DST.R01>" + hdr(1002) +
         "<DST><DST.status_dttm V=\"2024-01-01T12:00:01+00:00\"/><DST.new_observations_qty V=\"2\"/></DST></DST.R01>";
}
std::string obs() {
  // Made-up patient and operator.
  return kDecl + "<OBS.R01>" + hdr(1003) +
         "<SVC><SVC.role_cd V=\"OBS\"/><SVC.observation_dttm V=\"2024-01-01T11:58:00+00:00\"/>"
         "<PT><PT.patient_id V=\"PAT-9001\"/><PT.name V=\"DOE^JANE\"/>"
         "<OBS><OBS.observation_id V=\"GLU\" SN=\"ACME\"/><OBS.value V=\"5.4\" U=\"mmol/L\"/></OBS>"
         "<OBS><OBS.observation_id V=\"HCT\" SN=\"ACME\"/><OBS.value V=\"41\" U=\"%\"/></OBS></PT>"
         "<OPR><OPR.operator_id V=\"NURSE17\"/></OPR></SVC></OBS.R01>";
}
std::string eot() { return kDecl + "<EOT.R01>" + hdr(1004) + "<EOT><EOT.topic_cd V=\"OBS\"/></EOT></EOT.R01>"; }

void check_conversation(Harness& h) {
  auto ev = h.events("poct1");
  REQUIRE(ev.size() == 6);
  auto& hello = ev[0]["poct1"];
  CHECK(hello["message_type"] == "HEL.R01");
  CHECK(hello["topic"] == "HEL");
  CHECK(hello["control_id"] == "1001");
  CHECK(hello["version"] == "POCT1");
  CHECK(hello["device"]["device_id"] == "00:1b:22:33:44:55");
  CHECK(hello["device"]["model_id"] == "GlucoPoint 3");
  CHECK(hello["device"]["serial_id"] == "GP3-0042");
  CHECK(hello["device"]["manufacturer"] == "Acme & Sons");
  CHECK(hello["device"]["sw_version"] == "4.2.1");
  CHECK(ev[1]["poct1"]["direction"] == "to_client");
  CHECK(ev[1]["poct1"]["ack"]["type"] == "AA");
  CHECK(ev[1]["poct1"]["ack"]["control_id"] == "1001");
  CHECK(ev[2]["poct1"]["new_observations"] == "2");
  auto& o = ev[3]["poct1"];
  CHECK(o["message_type"] == "OBS.R01");
  CHECK(o["observations"] == 2);
  CHECK(o["observation_ids"] == nlohmann::json::array({"GLU", "HCT"}));
  Pseudonymiser p;
  CHECK(o["patients"] == nlohmann::json::array({p("PAT-9001")}));
  CHECK(o["operators"] == nlohmann::json::array({p("NURSE17")}));
  CHECK(o["phi_fields"] == nlohmann::json::array({"poct1.PT.patient_id", "poct1.PT.name"}));
  CHECK(o["device"]["device_id"] == "00:1b:22:33:44:55");  // identity carried through the flow
  CHECK(ev[4]["poct1"]["eot_topic"] == "OBS");
  for (auto& l : h.sink->lines) {
    CHECK(l.find("PAT-9001") == std::string::npos);
    CHECK(l.find("DOE") == std::string::npos);
    CHECK(l.find("NURSE17") == std::string::npos);
  }
}

}  // namespace

TEST_CASE("xml prolog: where the root element starts") {
  using xml::root_start;
  CHECK(root_start("<HEL.R01>") == 0);
  CHECK(root_start("\xEF\xBB\xBF \r\n<a/>") == 6);
  CHECK(root_start("<?xml version=\"1.0\"?>\n<a/>") == 22);
  CHECK(root_start("<?xml version=\"1.0\"?><!-- a > b --><?pi x?> <a/>") == 44);
  CHECK(root_start("<!DOCTYPE a><a/>") == 0);  // a root no XML dissector accepts
  CHECK(root_start("") == xml::kNeedMore);
  CHECK(root_start("  ") == xml::kNeedMore);
  CHECK(root_start("<") == xml::kNeedMore);
  CHECK(root_start("<!-") == xml::kNeedMore);
  CHECK(root_start("<?xml version=") == xml::kNeedMore);
  CHECK(root_start("<!-- open comment >") == xml::kNeedMore);
  CHECK(root_start("x<a/>") == xml::kNotXml);
  CHECK(root_start("<?xml?>junk") == xml::kNotXml);
  // The next document of a stream: its byte order mark after the previous one's line end; a mark
  // cut short asks for more.
  CHECK(root_start("\r\n\xEF\xBB\xBF<a/>") == 5);
  CHECK(root_start("\xEF") == xml::kNeedMore);
  CHECK(root_start("\n\xEF\xBB") == xml::kNeedMore);
  CHECK(root_start("\xEF\xBBx") == xml::kNotXml);
}

TEST_CASE("xml prolog: a scan that goes on where it stopped finds what a scan of the whole finds") {
  for (std::string s : {std::string("\xEF\xBB\xBF <?xml version=\"1.0\"?>\n<!-- a -- > b -->  <?pi x?" "?>\r\n<HEL.R01>"),
                        std::string("<?xml?><!-- c --><!DOCTYPE x>"), std::string("<?xml?>  <!-- -->junk<a/>")}) {
    // The same bytes again with one more each time, as a caller holding them gives them.
    xml::PrologScan scan;
    for (size_t n = 0; n <= s.size(); ++n) {
      INFO(s << " up to " << n);
      std::string_view part = std::string_view(s).substr(0, n);
      size_t r = xml::root_start(part, scan);
      CHECK(r == xml::root_start(part));
      if (r != xml::kNeedMore) scan = {};
    }
  }
}

TEST_CASE("poct1: probe") {
  auto p = [](std::string_view s) { return poct1::probe(bytes_of(s), Dir::to_server); };
  CHECK(p(hel()) == Probe::yes);
  CHECK(p("<HEL.R01>") == Probe::yes);
  CHECK(p("\xEF\xBB\xBF<OBS.R01 xmlns=\"x\">") == Probe::yes);
  CHECK(p("<?xml version=\"1.0\"?>") == Probe::need_more);
  CHECK(p("<?xml version=\"1.0\"?><!-- device 7 --><OBS.R01>") == Probe::yes);
  CHECK(p("<HE") == Probe::need_more);
  CHECK(p("") == Probe::need_more);
  CHECK(p("<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"x\">") == Probe::no);
  CHECK(p("<html><body>") == Probe::no);
  CHECK(p("<HELLO>") == Probe::no);
  CHECK(p("GET / HTTP/1.1\r\n") == Probe::no);
  CHECK(p(std::string_view("\x16\x03\x01\x02\x00\x01", 6)) == Probe::no);
  CHECK(p(std::string_view("\x01\x00\x00\x00\x00\xcd", 6)) == Probe::no);
  CHECK(p("\x0bMSH|^~\\&|") == Probe::no);
  CHECK(p("SSH-2.0-x\r\n") == Probe::no);
}

TEST_CASE("poct1: a HEL/DST/OBS/EOT conversation, at every split point") {
  std::string dev = hel() + dst() + obs() + eot();
  std::string mgr = ack(1, 1001) + ack(2, 1002);
  {
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, hel());
    h.feed(Dir::to_client, ack(1, 1001));
    h.feed(Dir::to_server, dst());
    h.feed(Dir::to_server, obs());
    h.feed(Dir::to_server, eot());
    h.feed(Dir::to_client, ack(2, 1002));
    h.end();
    auto ev = h.events("poct1");
    REQUIRE(ev.size() == 6);
    check_conversation(h);
    CHECK(h.anomalies() == 0);
    CHECK(h.facts.phi_fields.size() == 2);
    REQUIRE(h.facts.attr("poct1.device_id"));
  }
  std::string order = hel() + dst() + obs() + eot();
  for (size_t cut = 0; cut <= order.size(); cut += 7) {
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, hel().substr(0, std::min(cut, hel().size())));
    if (cut < hel().size()) h.feed(Dir::to_server, hel().substr(cut));
    h.feed(Dir::to_client, ack(1, 1001));
    std::string rest = dst() + obs() + eot();
    size_t c2 = cut % rest.size();
    h.feed(Dir::to_server, rest.substr(0, c2));
    h.feed(Dir::to_server, rest.substr(c2));
    h.feed(Dir::to_client, ack(2, 1002));
    h.end();
    INFO("cut " << cut);
    check_conversation(h);
    CHECK(h.anomalies() == 0);
  }
  Harness h(kPoct1Info);
  for (char c : hel()) h.feed(Dir::to_server, std::string(1, c));
  CHECK(h.events("poct1").size() == 1);
}

TEST_CASE("poct1: value scanner handles quotes, entities and broken tags") {
  std::vector<std::pair<std::string, std::string>> got;
  poct1::for_each_value("<A V='x&lt;y'/><B  V = \"a>b\" U=\"1\"/><C V=\"unterminated", [&](std::string_view n, std::string_view v) {
    got.emplace_back(n, v);
  });
  REQUIRE(got.size() == 2);
  CHECK(got[0] == std::make_pair(std::string("A"), std::string("x<y")));
  CHECK(got[1] == std::make_pair(std::string("B"), std::string("a>b")));
}

TEST_CASE("poct1: junk, oversize and hostile input") {
  Harness h(kPoct1Info);
  h.feed(Dir::to_server, "garbage before " + hel());
  CHECK(h.events("poct1").size() == 1);
  CHECK(h.anomalies("not_a_message") == 1);

  Harness big(kPoct1Info);
  big.feed(Dir::to_server, "<OBS.R01>");
  for (int i = 0; i < 1100; ++i) big.feed(Dir::to_server, std::string(1024, 'x'));
  big.feed(Dir::to_server, hel());
  CHECK(big.anomalies("message_too_long") == 1);
  CHECK(big.events("poct1").size() == 1);

  std::mt19937 rng(3);
  std::string base = hel() + obs();
  for (int round = 0; round < 300; ++round) {
    Harness f(kPoct1Info);
    std::string m = base;
    for (int k = 0; k < 20; ++k) m[rng() % m.size()] = "<>/\"'=V &;"[rng() % 10];
    m.resize(rng() % m.size());
    f.feed(Dir::to_server, m);
    f.end();
  }
}

TEST_CASE("poct1: the device block is the sending side's identity for the asset inventory") {
  Harness h(kPoct1Info);
  h.feed(Dir::to_server, hel());
  h.feed(Dir::to_client, ack(1, 1001));
  h.feed(Dir::to_server, obs());
  h.feed(Dir::to_server, hel());  // a new conversation says the same: nothing new
  // A later block naming only the device id completes what the device stated before.
  h.feed(Dir::to_server, kDecl + "<DST.R01>" + hdr(1005) +
                             "<DEV><DEV.device_id V=\"00:1b:22:33:44:55\"/></DEV><DST><DST.new_observations_qty V=\"0\"/></DST></DST.R01>");
  REQUIRE(h.facts.identities.size() == 1);
  const DeviceIdentity& d = h.facts.identities[0];
  CHECK(d.client);
  CHECK(d.source == "poct1 DEV");
  CHECK(d.id == "00:1b:22:33:44:55");
  CHECK(d.manufacturer == "Acme & Sons");
  CHECK(d.model == "GlucoPoint 3");
  CHECK(d.serial == "GP3-0042");
  CHECK(d.version == "4.2.1");
  CHECK(d.udi.empty());
  CHECK(d.type.empty());

  // A block the other side sends is its own, never mixed with the device's; without a
  // manufacturer name the vendor id names the manufacturer.
  h.feed(Dir::to_client, kDecl + "<DST.R01>" + hdr(7) +
                             "<DEV><DEV.vendor_id V=\"DMGR\"/><DEV.sw_version V=\"9.1\"/></DEV></DST.R01>");
  REQUIRE(h.facts.identities.size() == 2);
  const DeviceIdentity& m = h.facts.identities[1];
  CHECK_FALSE(m.client);
  CHECK(m.manufacturer == "DMGR");
  CHECK(m.version == "9.1");
  CHECK(m.id.empty());
  CHECK(m.model.empty());
  CHECK(m.serial.empty());

  // Messages without a device block add nothing, and no patient value reaches an identity.
  Harness o(kPoct1Info);
  o.feed(Dir::to_server, obs() + dst() + eot());
  CHECK(o.facts.identities.empty());
}

TEST_CASE("poct1: a self-closing root is a whole message, at every split point") {
  // A keep-alive <KPA.R01/> followed by a KPA with a body: two messages, however segmented.
  std::string s = "<KPA.R01/>" + kDecl + "<KPA.R01>" + hdr(7) + "</KPA.R01><KPA.R01 />\n<EOT.R01>" + hdr(8) + "</EOT.R01>";
  auto check = [](Harness& h) {
    auto ev = h.events("poct1");
    REQUIRE(ev.size() == 4);
    CHECK(ev[0]["poct1"]["message_type"] == "KPA.R01");
    CHECK(ev[0]["poct1"].contains("control_id") == false);
    CHECK(ev[1]["poct1"]["control_id"] == "7");
    CHECK(ev[2]["poct1"].contains("control_id") == false);
    CHECK(ev[3]["poct1"]["message_type"] == "EOT.R01");
    CHECK(h.anomalies() == 0);
  };
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut " << cut);
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, s.substr(0, cut));
    h.feed(Dir::to_server, s.substr(cut));
    check(h);
  }
  Harness h(kPoct1Info);
  for (char c : s) h.feed(Dir::to_server, std::string(1, c));
  check(h);
}

TEST_CASE("poct1: an end tag with white space before its '>' ends the message, at every split point") {
  // ETag ::= '</' Name S? '>'. A longer name (</OBS.R012>) or another element's end tag is no end.
  std::string pt = "<SVC><PT><PT.patient_id V=\"PAT-9101\"/><OBS><OBS.observation_id V=\"GLU\"/></OBS></PT></SVC>";
  std::string s = kDecl + "<OBS.R01>" + hdr(1) + pt + "<X></OBS.R012 ></X></OBS.R01 >\n" + kDecl + "<OBS.R01>" + hdr(2) +
                  "</OBS.R01\r\n\t>" + kDecl + "<EOT.R01>" + hdr(3) + "</EOT.R01  >" + kDecl + "<END.R01>" + hdr(4) +
                  "</END.R01>";
  auto check = [](Harness& h) {
    auto ev = h.events("poct1");
    REQUIRE(ev.size() == 4);
    CHECK(ev[0]["poct1"]["control_id"] == "1");
    CHECK(ev[0]["poct1"]["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-9101")}));
    CHECK(ev[0]["poct1"]["observations"] == 1);
    CHECK(ev[1]["poct1"]["control_id"] == "2");
    CHECK(ev[1]["poct1"].contains("patients") == false);
    CHECK(ev[2]["poct1"]["message_type"] == "EOT.R01");
    CHECK(ev[3]["poct1"]["message_type"] == "END.R01");
    CHECK(h.anomalies() == 0);
    CHECK(h.facts.phi_fields.size() == 1);
  };
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut " << cut);
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, s.substr(0, cut));
    h.feed(Dir::to_server, s.substr(cut));
    check(h);
  }
  Harness h(kPoct1Info);
  for (char c : s) h.feed(Dir::to_server, std::string(1, c));
  check(h);
}

TEST_CASE("poct1: character references are decoded like the named entities") {
  auto value = [](const std::string& v) {
    std::string got = "(none)";
    poct1::for_each_value("<A V=\"" + v + "\"/>", [&](std::string_view, std::string_view x) { got = x; });
    return got;
  };
  CHECK(value("PAT&#45;9001") == "PAT-9001");
  CHECK(value("PAT&#x2D;9001") == "PAT-9001");
  CHECK(value("PAT&#x0000002d;9001") == "PAT-9001");
  CHECK(value("Ren&#xE9;e &#8364;&#x1F600;&amp;&#9;") == "Ren\xC3\xA9" "e \xE2\x82\xAC\xF0\x9F\x98\x80&\t");
  // Not characters XML allows, or not references: kept as written.
  for (std::string v : {"&#0;", "&#1;", "&#xD800;", "&#xFFFE;", "&#x110000;", "&#99999999999;", "&#;", "&#x;",
                        "&#X2D;", "&#4a;", "&#45", "&#x2D", "&#x000000000000002D;", "&nbsp;", "&"})
    CHECK(value(v) == v);

  // One patient written three ways is one pseudonym.
  Harness h(kPoct1Info);
  for (std::string id : {"PAT-9001", "PAT&#45;9001", "PAT&#x2D;9001"})
    h.feed(Dir::to_server, "<OBS.R01>" + hdr(1) + "<SVC><PT><PT.patient_id V=\"" + id + "\"/></PT></SVC></OBS.R01>");
  auto ev = h.events("poct1");
  REQUIRE(ev.size() == 3);
  Pseudonymiser p;
  for (auto& e : ev) CHECK(e["poct1"]["patients"] == nlohmann::json::array({p("PAT-9001")}));
}

TEST_CASE("poct1: after a message over the cap, the next message is read however the stream was segmented") {
  std::string body(1100 * 1024, 'x');
  for (std::string over : {"<OBS.R01>" + body + "</OBS.R01>", "<OBS.R01 a='" + body + "'/>", "<OBS.R01>" + body}) {
    std::string s = kDecl + over + hel() + dst();
    // One delivery, pieces whose last holds the next message's start, and small pieces.
    for (size_t piece : {s.size(), size_t(64 * 1024), size_t(1460), size_t(4093)}) {
      INFO("message " << over.substr(0, 12) << ", pieces of " << piece);
      Harness h(kPoct1Info);
      for (size_t at = 0; at < s.size(); at += piece) h.feed(Dir::to_server, s.substr(at, piece));
      auto ev = h.events("poct1");
      REQUIRE(ev.size() == 2);
      CHECK(ev[0]["poct1"]["message_type"] == "HEL.R01");
      CHECK(ev[1]["poct1"]["message_type"] == "DST.R01");
      CHECK(h.anomalies("message_too_long") == 1);
      CHECK(h.anomalies() == 1);
    }
  }
}

TEST_CASE("poct1: a message after a long prolog, in small pieces, is read once its end comes") {
  std::string s = hel() + "<!--" + std::string(20000, 'c') + "-->\n" + obs() + dst();
  for (size_t piece : {size_t(1), size_t(16), size_t(1460)}) {
    INFO("pieces of " << piece);
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, hel());
    // The comment and the root's name in one piece, the rest in small ones.
    size_t at = hel().size() + 4 + 20000 + 4 + kDecl.size() + 12;
    h.feed(Dir::to_server, s.substr(hel().size(), at - hel().size()));
    for (; at < s.size(); at += piece) h.feed(Dir::to_server, s.substr(at, piece));
    auto ev = h.events("poct1");
    REQUIRE(ev.size() == 3);
    CHECK(ev[1]["poct1"]["message_type"] == "OBS.R01");
    CHECK(ev[1]["poct1"]["observations"] == 2);
    CHECK(ev[2]["poct1"]["message_type"] == "DST.R01");
    CHECK(h.anomalies() == 0);
  }
}

namespace {
std::string all_lines(const Harness& h) {
  std::string v;
  for (auto& l : h.sink->lines) v += l + "\n";
  return v;
}
}  // namespace

// A prolog (declaration, comments, processing instructions) longer than 4096 bytes is held and
// read like a short one: every split point gives the events of the unsplit stream, the root's
// name cut anywhere included.
TEST_CASE("poct1: a message after a prolog over 4096 bytes gives the same events at every split point") {
  const std::string prolog = kDecl + "<!--" + std::string(3000, 'c') + "-->\n<?pi " + std::string(2000, 'p') + "?>\n";
  const std::string s = hel() + prolog + obs().substr(kDecl.size()) + dst();
  Harness whole(kPoct1Info);
  whole.feed(Dir::to_server, s);
  auto ev = whole.events("poct1");
  REQUIRE(ev.size() == 3);
  CHECK(ev[1]["poct1"]["message_type"] == "OBS.R01");
  CHECK(whole.anomalies() == 0);
  const std::string want = all_lines(whole);
  const size_t root = hel().size() + prolog.size();
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut at " << cut << ", the root at " << root);
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, s.substr(0, cut));
    h.feed(Dir::to_server, s.substr(cut));
    REQUIRE(all_lines(h) == want);
  }
  for (size_t piece : {size_t(1), size_t(16), size_t(1460)}) {
    INFO("pieces of " << piece);
    Harness h(kPoct1Info);
    for (size_t at = 0; at < s.size(); at += piece) h.feed(Dir::to_server, s.substr(at, piece));
    CHECK(all_lines(h) == want);
  }
}

// A prolog longer than a message may be is reported as one; parsing resumes at the next root
// start tag after the first 1 MiB, however the stream was cut.
TEST_CASE("poct1: a prolog over the message cap is reported, the same way however it was cut") {
  const std::string s = hel() + "<!--" + std::string(1100 * 1024, 'c') + "-->\n" + obs() + dst();
  Harness whole(kPoct1Info);
  whole.feed(Dir::to_server, s);
  CHECK(whole.anomalies("message_too_long") == 1);
  CHECK(whole.events("poct1").size() == 3);
  const std::string want = all_lines(whole);
  for (size_t piece : {size_t(1460), size_t(4093), size_t(64 * 1024)}) {
    INFO("pieces of " << piece);
    Harness h(kPoct1Info);
    for (size_t at = 0; at < s.size(); at += piece) h.feed(Dir::to_server, s.substr(at, piece));
    CHECK(all_lines(h) == want);
  }
}

TEST_CASE("poct1: an end tag inside a comment, CDATA section or processing instruction does not end the message") {
  std::string pt = "<PT><PT.patient_id V=\"PAT-9201\"/></PT>";
  std::string s = kDecl + "<OBS.R01>" + hdr(1) + "<!-- </OBS.R01> -->" + pt + "</OBS.R01>" + kDecl + "<OBS.R01>" +
                  hdr(2) + "<NTE><NTE.text><![CDATA[see </OBS.R01> and -->]]></NTE.text></NTE>" + pt +
                  "<?note </OBS.R01>?></OBS.R01>" + "<KPA.R01/>";
  auto check = [](Harness& h) {
    auto ev = h.events("poct1");
    REQUIRE(ev.size() == 3);
    for (int k : {0, 1}) {
      CHECK(ev[k]["poct1"]["control_id"] == std::to_string(k + 1));
      CHECK(ev[k]["poct1"]["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-9201")}));
    }
    CHECK(ev[2]["poct1"]["message_type"] == "KPA.R01");
    CHECK(h.anomalies() == 0);
  };
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut " << cut);
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, s.substr(0, cut));
    h.feed(Dir::to_server, s.substr(cut));
    check(h);
  }
  Harness h(kPoct1Info);
  for (char c : s) h.feed(Dir::to_server, std::string(1, c));
  check(h);
}

TEST_CASE("poct1: elements inside comments, CDATA sections and processing instructions are no values") {
  std::vector<std::pair<std::string, std::string>> got;
  poct1::for_each_value("<HDR.control_id V=\"1\"/><!-- <PT.patient_id V=\"OLD-PAT\"/> <HDR.control_id V=\"2\"/> -->"
                        "<NTE.text><![CDATA[<PT.patient_id V=\"CDATA-PAT\"/>]]></NTE.text><?pi <PT.name V=\"X\"/>?>"
                        "<!----><PT.patient_id V=\"PAT-9301\"/><!-- unterminated <PT.name V=\"Y\"/>",
                        [&](std::string_view n, std::string_view v) { got.emplace_back(n, v); });
  REQUIRE(got.size() == 2);
  CHECK(got[0] == std::make_pair(std::string("HDR.control_id"), std::string("1")));
  CHECK(got[1] == std::make_pair(std::string("PT.patient_id"), std::string("PAT-9301")));

  Harness h(kPoct1Info);
  h.feed(Dir::to_server, "<OBS.R01>" + hdr(7) + "<!-- <HDR.control_id V=\"FAKE\"/><PT.patient_id V=\"OLD-PAT\"/> -->"
                         "<PT><PT.patient_id V=\"PAT-9301\"/></PT></OBS.R01>");
  auto ev = h.events("poct1");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["poct1"]["control_id"] == "7");
  CHECK(ev[0]["poct1"]["patients"] == nlohmann::json::array({Pseudonymiser()("PAT-9301")}));
}

TEST_CASE("poct1: the event's device is one side's block, never fields of both") {
  Harness h(kPoct1Info);
  h.feed(Dir::to_server, hel());
  // The data manager names itself with a device id only.
  h.feed(Dir::to_client, kDecl + "<ACK.R01>" + hdr(9) +
                             "<ACK><ACK.type_cd V=\"AA\"/></ACK><DEV><DEV.device_id V=\"DATAMGR-1\"/></DEV></ACK.R01>");
  h.feed(Dir::to_server, obs());
  h.feed(Dir::to_client, ack(10, 1003));
  auto ev = h.events("poct1");
  REQUIRE(ev.size() == 4);
  const nlohmann::json device = {{"device_id", "00:1b:22:33:44:55"}, {"vendor_id", "ACME"},
                                 {"model_id", "GlucoPoint 3"},       {"serial_id", "GP3-0042"},
                                 {"manufacturer", "Acme & Sons"},    {"sw_version", "4.2.1"}};
  const nlohmann::json manager = {{"device_id", "DATAMGR-1"}};
  CHECK(ev[0]["poct1"]["device"] == device);
  CHECK(ev[1]["poct1"]["device"] == manager);
  CHECK(ev[2]["poct1"]["device"] == device);
  CHECK(ev[3]["poct1"]["device"] == manager);
  // The flow's facts are the last block seen, whole.
  REQUIRE(h.facts.attr("poct1.device_id"));
  CHECK(*h.facts.attr("poct1.device_id") == "DATAMGR-1");
  CHECK_FALSE(h.facts.attr("poct1.model"));
  CHECK_FALSE(h.facts.attr("poct1.serial"));

  // A side that sent no block is shown its peer's.
  Harness o(kPoct1Info);
  o.feed(Dir::to_server, hel());
  o.feed(Dir::to_client, ack(1, 1001));
  REQUIRE(o.events("poct1").size() == 2);
  CHECK(o.events("poct1")[1]["poct1"]["device"] == device);
}

TEST_CASE("poct1: a '>' inside a quoted attribute of the root start tag does not end it, at every split point") {
  // The root would look self-closing if the tag ended at the quoted "/>".
  std::string s = "<OBS.R01 note=\"a/>b\" alt='c>'>" + hdr(9) + "</OBS.R01><EOT.R01>" + hdr(10) + "</EOT.R01>";
  auto check = [](Harness& h) {
    auto ev = h.events("poct1");
    REQUIRE(ev.size() == 2);
    CHECK(ev[0]["poct1"]["message_type"] == "OBS.R01");
    CHECK(ev[0]["poct1"]["control_id"] == "9");
    CHECK(ev[1]["poct1"]["control_id"] == "10");
    CHECK(h.anomalies() == 0);
  };
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut " << cut);
    Harness h(kPoct1Info);
    h.feed(Dir::to_server, s.substr(0, cut));
    h.feed(Dir::to_server, s.substr(cut));
    check(h);
  }
  Harness h(kPoct1Info);
  for (char c : s) h.feed(Dir::to_server, std::string(1, c));
  check(h);
}

TEST_CASE("poct1: lost bytes drop the message they fall in, counted each time, and the next message is read") {
  // Holes in the first and the third message; the second and the fourth are whole.
  const std::string m1 = obs(), m2 = dst(), m3 = obs(), m4 = ack(1010, 1003);
  for (size_t piece : {size_t(1), size_t(7), size_t(100000)}) {
    INFO("pieces of " << piece);
    Harness h(kPoct1Info);
    auto feed = [&](const std::string& x) { for (size_t i = 0; i < x.size(); i += piece) h.feed(Dir::to_server, x.substr(i, piece)); };
    feed(m1.substr(0, 120));
    h.gap(Dir::to_server, 40);
    feed(m1.substr(160) + m2 + m3.substr(0, 300));
    h.gap(Dir::to_server, 10);
    feed(m3.substr(310) + m4);
    h.end();
    auto ev = h.events("poct1");
    REQUIRE(ev.size() == 2);
    CHECK(ev[0]["poct1"]["message_type"] == "DST.R01");
    CHECK(ev[1]["poct1"]["message_type"] == "ACK.R01");
    CHECK(h.anomalies("message_lost") == 2);
    CHECK(h.anomalies() == 2);  // the rest of a cut message is no bytes outside a message
  }
}
