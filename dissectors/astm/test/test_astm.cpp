#include <catch2/catch.hpp>

#include <cstdio>
#include <random>
#include <string>

#include "dissectors/astm/astm_dissector.h"
#include "dissectors/proprietary/test/harness.h"

using namespace medmon;
using medmon::testing::Harness;
using medmon::testing::bytes_of;

namespace {

// Made-up patient and specimen.
const char* kRecords[] = {
    "H|\\^&|||ACME-CHEM^2.1^SN4711|||||LIS01||P|LIS2-A2|20240101120000",
    "P|1|PID0001|LAB0001||DOE^JANE||19700101|F",
    "O|1|SPEC123||^^^GLU\\^^^NA|R||20240101115500",
    "R|1|^^^GLU|5.4|mmol/L||N||F||||20240101120000|ACME-CHEM",
    "R|2|^^^NA|140|mmol/L||N||F",
    "C|1|I|hemolysed|G",
    "L|1|N",
};

std::string frame(int fn, const std::string& text, bool last = true) {
  std::string body = std::to_string(fn) + text + (last ? '\x03' : '\x17');
  unsigned sum = astm::checksum(bytes_of(body));
  char cs[3];
  std::snprintf(cs, sizeof cs, "%02X", sum & 0xFF);
  return "\x02" + body + cs + "\r\n";
}

// Sender side of one transmission, one record per frame.
std::string transmission() {
  std::string s = "\x05";
  int fn = 1;
  for (const char* r : kRecords) { s += frame(fn, std::string(r) + "\r"); fn = (fn + 1) & 7; }
  return s + "\x04";
}

void check_event(const nlohmann::json& a) {
  CHECK(a["direction"] == "to_server");
  CHECK(a["link_layer"] == true);
  CHECK(a["sender"] == "ACME-CHEM");
  CHECK(a["sender_version"] == "2.1");
  CHECK(a["sender_serial"] == "SN4711");
  CHECK(a["receiver"] == "LIS01");
  CHECK(a["processing_id"] == "P");
  CHECK(a["version"] == "LIS2-A2");
  CHECK(a["records"]["H"] == 1);
  CHECK(a["records"]["P"] == 1);
  CHECK(a["records"]["O"] == 1);
  CHECK(a["records"]["R"] == 2);
  CHECK(a["records"]["C"] == 1);
  CHECK(a["records"]["L"] == 1);
  CHECK(a["frames"] == 7);
  CHECK(a["termination_code"] == "N");
  CHECK(a["complete"] == true);
  CHECK(a["tests"] == nlohmann::json::array({"GLU", "NA"}));
  Pseudonymiser p;
  CHECK(a["patients"] == nlohmann::json::array({p("PID0001")}));
  CHECK(a["specimens"] == nlohmann::json::array({p("SPEC123")}));
  CHECK(a["phi_fields"] == nlohmann::json::array({"astm.P.3", "astm.P.4", "astm.P.6", "astm.P.8", "astm.O.3"}));
}

}  // namespace

TEST_CASE("astm: probe accepts the link layer and bare header records") {
  auto p = [](std::string_view s, Dir d = Dir::to_server) { return astm::probe(bytes_of(s), d); };
  CHECK(p("\x05") == Probe::need_more);
  CHECK(p("\x05\x02") == Probe::need_more);
  CHECK(p("\x05\x02" "1H|\\^&|||X") == Probe::yes);
  CHECK(p("\x02" "1H|\\^&|||X") == Probe::yes);
  CHECK(p("H|\\^&|||X") == Probe::yes);
  CHECK(p("\x06", Dir::to_client) == Probe::need_more);
  CHECK(p("\x06\x06\x06", Dir::to_client) == Probe::need_more);
  CHECK(p("\x06\x05\x02" "1H|\\^&", Dir::to_client) == Probe::yes);
  // The sender gave up (EOT) after a NAK or lost contention, then tried again.
  CHECK(p("\x05\x04") == Probe::need_more);
  CHECK(p("\x05\x04\x05") == Probe::need_more);
  CHECK(p("\x05\x04\x05\x02" "1H|\\^&|||X") == Probe::yes);
  CHECK(p("\x05\x05\x04\x05\x04\x05\x02" "1H|\\^&|||X") == Probe::yes);
  CHECK(p("\x05\x04" "GET /") == Probe::no);
  {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, "\x05\x04" + transmission());
    h.end();
    REQUIRE(h.events("astm").size() == 1);
    check_event(h.events("astm")[0]["astm"]);
    CHECK(h.anomalies() == 0);
  }
  CHECK(p("") == Probe::need_more);
  // Other protocols never match.
  CHECK(p("GET / HTTP/1.1\r\n") == Probe::no);
  CHECK(p("HTTP/1.1 200 OK\r\n") == Probe::no);
  CHECK(p("HEAD / HTTP/1.1\r\n") == Probe::no);
  CHECK(p(std::string_view("\x16\x03\x01\x02\x00\x01", 6)) == Probe::no);
  CHECK(p(std::string_view("\x01\x00\x00\x00\x00\xcd\x00\x01", 8)) == Probe::no);
  CHECK(p("\x0bMSH|^~\\&|") == Probe::no);
  CHECK(p("SSH-2.0-OpenSSH_9.2\r\n") == Probe::no);
  CHECK(p(std::string_view("\x00\x00\x00\x85\xffSMB", 8)) == Probe::no);
  CHECK(p(std::string_view("\x05\x01\x00", 3)) == Probe::no);  // SOCKS5
  CHECK(p("\x05\x02" "9H|") == Probe::no);
  CHECK(p("H\x01") == Probe::no);
}

TEST_CASE("astm: one transmission gives one event with counts, tests and pseudonyms") {
  Harness h(kAstmInfo);
  std::string tx = transmission();
  // The receiver acknowledges the ENQ and each frame.
  h.feed(Dir::to_server, tx);
  h.feed(Dir::to_client, std::string(8, '\x06'));
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  check_event(ev[0]["astm"]);
  CHECK(h.anomalies() == 0);
  CHECK(h.facts.phi_fields.size() == 5);
  REQUIRE(h.facts.attr("astm.sender"));
  CHECK(*h.facts.attr("astm.sender") == "ACME-CHEM");
  // No PHI value appears anywhere in the output.
  for (auto& l : h.sink->lines) {
    CHECK(l.find("PID0001") == std::string::npos);
    CHECK(l.find("DOE") == std::string::npos);
    CHECK(l.find("19700101") == std::string::npos);
    CHECK(l.find("SPEC123") == std::string::npos);
  }
}

TEST_CASE("astm: every split point of the stream gives the same event") {
  std::string tx = transmission();
  for (size_t cut = 0; cut <= tx.size(); ++cut) {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, tx.substr(0, cut));
    h.feed(Dir::to_server, tx.substr(cut));
    h.end();
    auto ev = h.events("astm");
    INFO("cut at " << cut);
    REQUIRE(ev.size() == 1);
    check_event(ev[0]["astm"]);
    CHECK(h.anomalies() == 0);
  }
  // Byte by byte.
  Harness h(kAstmInfo);
  for (char c : tx) h.feed(Dir::to_server, std::string(1, c));
  h.end();
  REQUIRE(h.events("astm").size() == 1);
  check_event(h.events("astm")[0]["astm"]);
}

TEST_CASE("astm: a record split over intermediate ETB frames is rebuilt") {
  std::string p = "P|1|PID0002|||ROE^RICHARD||19800202|M|" + std::string(300, 'x');
  std::string tx = std::string("\x05") + frame(1, kRecords[0] + std::string("\r")) + frame(2, p.substr(0, 200), false) +
                   frame(3, p.substr(200) + "\r") + frame(4, "L|1|N\r") + "\x04";
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx);
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  auto& a = ev[0]["astm"];
  CHECK(a["records"]["P"] == 1);
  CHECK(a["frames"] == 4);
  CHECK(a["patients"] == nlohmann::json::array({Pseudonymiser()("PID0002")}));
  CHECK(h.anomalies() == 0);
}

TEST_CASE("astm: bad checksum, NAK, retransmission and frame-number errors") {
  std::string good = frame(2, std::string(kRecords[1]) + "\r");
  std::string bad = good;
  bad[bad.size() - 4] = bad[bad.size() - 4] == '0' ? '1' : '0';  // corrupt C1
  std::string tx = std::string("\x05") + frame(1, kRecords[0] + std::string("\r")) + bad + good + good /* ACK lost */ +
                   frame(5, "L|1|N\r") /* 3 expected */ + "\x04";
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx.substr(0, tx.size() - 1));
  h.feed(Dir::to_client, "\x06\x06\x15\x06\x06\x06");
  h.feed(Dir::to_server, "\x04");
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  auto& a = ev[0]["astm"];
  CHECK(a["checksum_errors"] == 1);
  CHECK(a["retransmissions"] == 1);
  CHECK(a["naks"] == 1);
  CHECK(a["frames"] == 3);
  CHECK(a["records"]["P"] == 1);
  CHECK(h.anomalies("bad_checksum") == 1);
  CHECK(h.anomalies("frame_number_sequence") == 1);
}

TEST_CASE("astm: bare records without the link layer") {
  std::string tx;
  for (const char* r : kRecords) tx += std::string(r) + "\r";
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx + tx);
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 2);
  for (auto& e : ev) {
    CHECK(e["astm"]["link_layer"] == false);
    CHECK(e["astm"]["records"]["R"] == 2);
    CHECK(e["astm"]["complete"] == true);
    CHECK(e["astm"]["sender"] == "ACME-CHEM");
  }
}

TEST_CASE("astm: a gap in bare records loses only the message it falls in") {
  std::string tx;
  for (const char* r : kRecords) tx += std::string(r) + "\r";
  // The hole falls inside the second message's first records: the rest of that message is
  // dropped, the messages after it are read.
  for (size_t hole : {size_t(1), size_t(20), tx.find("\rO|") + 3}) {
    INFO("hole at " << hole);
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, tx + tx.substr(0, hole));
    h.gap(Dir::to_server, 10);
    h.feed(Dir::to_server, tx.substr(hole + 10) + tx + tx);
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 4);
    CHECK(ev[1]["astm"]["gaps"] == 1);
    CHECK(ev[1]["astm"]["complete"] == false);
    for (int k : {0, 2, 3}) {
      CHECK(ev[k]["astm"]["complete"] == true);
      CHECK(ev[k]["astm"]["records"]["R"] == 2);
      CHECK(ev[k]["astm"]["sender"] == "ACME-CHEM");
    }
    CHECK(h.anomalies() == 0);
  }
  // A gap that ends where a message starts: the messages after it are all read.
  for (size_t before : {size_t(0), size_t(20)}) {
    INFO("bytes of the lost message before the gap: " << before);
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, tx + tx.substr(0, before));
    h.gap(Dir::to_server, tx.size() - before);
    h.feed(Dir::to_server, tx + tx);
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == (before ? 4 : 3));
    if (before) CHECK(ev[1]["astm"]["complete"] == false);
    for (auto& e : {ev.front(), ev[ev.size() - 2], ev.back()}) {
      CHECK(e["astm"]["complete"] == true);
      CHECK(e["astm"]["records"]["R"] == 2);
    }
  }
}

TEST_CASE("astm: truncated transmissions and gaps are reported, not crashed on") {
  std::string tx = transmission();
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx.substr(0, tx.size() / 2));
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["astm"]["complete"] == false);
  CHECK(h.anomalies("no_eot") == 1);

  Harness g(kAstmInfo);
  g.feed(Dir::to_server, tx.substr(0, 60));
  g.gap(Dir::to_server, 40);
  g.feed(Dir::to_server, tx.substr(100));
  g.end();
  REQUIRE(g.events("astm").size() == 1);
  CHECK(g.events("astm")[0]["astm"]["gaps"] == 1);
  // The hole took the H, P and O records: ended by EOT, the transmission is still not complete.
  CHECK(g.events("astm")[0]["astm"]["complete"] == false);
}

TEST_CASE("astm: hostile input is bounded") {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    Harness h(kAstmInfo);
    std::string junk(1 + rng() % 3000, '\0');
    for (auto& c : junk) {
      unsigned r = rng() % 10;
      c = r < 3 ? "\x02\x03\x04\x05\x06\x15\x17\r\n|"[rng() % 10] : static_cast<char>(rng());
    }
    h.feed(Dir::to_server, "\x05\x02" "1H|\\^&\r");
    h.feed(Dir::to_server, junk);
    h.feed(Dir::to_client, junk);
    h.end();
  }
  // A frame that never ends stays within the caps.
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, "\x05\x02" "1H|\\^&|");
  h.feed(Dir::to_server, std::string(1 << 20, 'A'));
  h.end();
  CHECK(h.events("astm").size() == 1);
}

TEST_CASE("astm: the H record sender is that side's identity for the asset inventory") {
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, transmission() + transmission());
  h.feed(Dir::to_client, std::string(16, '\x06'));
  // The LIS queries the analyzer on the same link: its own header names it.
  std::string query = std::string("\x05") + frame(1, "H|\\^&|||LIS01^^|||||ACME-CHEM||P|LIS2-A2\r") +
                      frame(2, "Q|1|^PID0001||^^^ALL\r") + frame(3, "L|1|N\r") + "\x04";
  h.feed(Dir::to_client, query);
  // A header without a sender says nothing about its side.
  h.feed(Dir::to_client, std::string("\x05") + frame(1, "H|\\^&|||^ ^\r") + frame(2, "L|1|N\r") + "\x04");
  h.end();
  REQUIRE(h.events("astm").size() == 4);
  REQUIRE(h.facts.identities.size() == 2);
  const DeviceIdentity& a = h.facts.identities[0];
  CHECK(a.client);
  CHECK(a.source == "astm H");
  CHECK(a.id == "ACME-CHEM");
  CHECK(a.version == "2.1");
  CHECK(a.serial == "SN4711");
  CHECK(a.manufacturer.empty());
  CHECK(a.model.empty());
  const DeviceIdentity& lis = h.facts.identities[1];
  CHECK_FALSE(lis.client);
  CHECK(lis.source == "astm H");
  CHECK(lis.id == "LIS01");
  CHECK(lis.version.empty());
  CHECK(lis.serial.empty());
}

TEST_CASE("astm: anomaly offsets are where the record or stream is, however the stream was cut") {
  std::string tx = std::string("\x05") + frame(1, kRecords[0] + std::string("\r")) + frame(2, "X|1|weird\r") +
                   frame(3, "L|1|N\r");
  const uint64_t x = tx.find("X|1|");
  for (size_t cut = 0; cut <= tx.size(); ++cut) {
    INFO("cut at " << cut);
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, tx.substr(0, cut));
    h.feed(Dir::to_server, tx.substr(cut));
    h.feed(Dir::to_client, "\x06\x06");  // the other direction's offsets are its own
    h.end();
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 2);
    CHECK(an[0]["anomaly"]["name"] == "unknown_record");
    CHECK(an[0]["anomaly"]["offset"] == x);
    CHECK(an[1]["anomaly"]["name"] == "no_eot");
    CHECK(an[1]["anomaly"]["offset"] == tx.size());
  }
  // Bare records too.
  std::string bare = std::string(kRecords[0]) + "\rP|1|A\rX|2\rL|1|N\r";
  for (size_t cut = 0; cut <= bare.size(); ++cut) {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, bare.substr(0, cut));
    h.feed(Dir::to_server, bare.substr(cut));
    h.end();
    REQUIRE(h.events("anomaly").size() == 1);
    CHECK(h.events("anomaly")[0]["anomaly"]["offset"] == bare.find("X|2"));
  }
}

TEST_CASE("astm: empty fields are read with the delimiters the H record declares") {
  auto run = [](const std::vector<std::string>& recs) {
    Harness h(kAstmInfo);
    std::string tx = "\x05";
    int fn = 1;
    for (auto& r : recs) { tx += frame(fn, r + "\r"); fn = (fn + 1) & 7; }
    h.feed(Dir::to_server, tx + "\x04");
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    return ev[0]["astm"];
  };
  auto custom = run({"H!@#$!!!ACME-CHEM#2.1#SN4711!!!!!LIS01!!P!LIS2-A2", "P!1!PIDD01!!!##!!19500101!M",
                     "O!1!SPECD1!!###GLU@###NA!R", "R!1!###GLU!5.4!mmol/L", "L!1!N"});
  auto standard = run({"H|\\^&|||ACME-CHEM^2.1^SN4711|||||LIS01||P|LIS2-A2", "P|1|PIDD01|||^^||19500101|M",
                       "O|1|SPECD1||^^^GLU\\^^^NA|R", "R|1|^^^GLU|5.4|mmol/L", "L|1|N"});
  CHECK(custom["phi_fields"] == nlohmann::json::array({"astm.P.3", "astm.P.8", "astm.O.3"}));
  CHECK(custom["phi_fields"] == standard["phi_fields"]);
  CHECK(custom["tests"] == standard["tests"]);
  CHECK(custom["patients"] == standard["patients"]);
}

TEST_CASE("astm: an ENQ answered NAK (busy) or lost in contention is no transmission") {
  std::string tx = transmission();
  SECTION("busy: NAK to the ENQ, then ENQ again") {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, "\x05");
    h.feed(Dir::to_client, "\x15");
    h.feed(Dir::to_server, tx.substr(0, 1));
    h.feed(Dir::to_client, "\x06");
    h.feed(Dir::to_server, tx.substr(1));
    h.feed(Dir::to_client, std::string(7, '\x06'));
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    check_event(ev[0]["astm"]);
    CHECK(ev[0]["astm"].contains("naks") == false);
    CHECK(h.anomalies() == 0);
  }
  SECTION("the sender gives up after NAKs to its ENQ") {
    Harness h(kAstmInfo);
    for (int i = 0; i < 6; ++i) {
      h.feed(Dir::to_server, "\x05");
      h.feed(Dir::to_client, "\x15");
    }
    h.feed(Dir::to_server, "\x04");
    h.end();
    CHECK(h.events("astm").empty());
    CHECK(h.anomalies() == 0);
  }
  SECTION("contention: both send ENQ, the LIS yields and acknowledges the analyzer's") {
    Harness h(kAstmInfo);
    h.feed(Dir::to_client, "\x05");
    h.feed(Dir::to_server, tx.substr(0, 1));
    h.feed(Dir::to_client, "\x06");
    h.feed(Dir::to_server, tx.substr(1));
    h.feed(Dir::to_client, std::string(7, '\x06'));
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    check_event(ev[0]["astm"]);
    CHECK(h.anomalies() == 0);
  }
  SECTION("a NAK to a frame still counts") {
    Harness h(kAstmInfo);
    std::string f1 = frame(1, kRecords[0] + std::string("\r"));
    h.feed(Dir::to_server, "\x05");
    h.feed(Dir::to_client, "\x06");
    h.feed(Dir::to_server, f1);
    h.feed(Dir::to_client, "\x15");
    h.feed(Dir::to_server, f1 + frame(2, "L|1|N\r") + "\x04");
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["astm"]["naks"] == 1);
    CHECK(ev[0]["astm"]["frames"] == 2);
  }
}

TEST_CASE("astm: a direction picked up mid-stream may be claimed at a later frame") {
  auto mid = [](std::string_view s) { return astm::midstream_probe(bytes_of(s), Dir::to_server); };
  auto strict = [](std::string_view s) { return astm::probe(bytes_of(s), Dir::to_server); };
  std::string f3 = frame(3, "O|1|SPEC1||^^^GLU|R\r");
  CHECK(strict(f3) == Probe::no);  // a stream whose start was seen starts with ENQ or H
  CHECK(mid(f3) == Probe::yes);
  CHECK(mid("\x06\x04" + f3) == Probe::yes);
  CHECK(mid(frame(2, "P!1!X\r")) == Probe::yes);
  CHECK(mid("\x02") == Probe::need_more);
  CHECK(mid("\x02" "3O") == Probe::need_more);
  CHECK(mid("\x06\x06") == Probe::need_more);
  CHECK(mid(std::string(17, '\x06')) == Probe::no);
  CHECK(mid("\x02" "8O|") == Probe::no);
  CHECK(mid("\x02" "3X|") == Probe::no);
  CHECK(mid("\x02" "3O1") == Probe::no);
  CHECK(mid("\x02" "3ok") == Probe::no);
  CHECK(mid("O|1|SPEC1") == Probe::no);
  CHECK(mid("GET / HTTP/1.1\r\n") == Probe::no);
}

TEST_CASE("astm: mid-stream, the transmission under way is read from its next frame, without anomalies") {
  // The capture starts in the tail of frame 2, then frames 3 and 4 of a transmission, its EOT,
  // then a whole transmission.
  std::string tail = frame(2, "P|1|PIDM01||||DUCK^DONALD\r").substr(9);
  std::string s = tail + frame(3, "O|1|SPEC1||^^^GLU|R\r") + frame(4, "L|1|N\r") + "\x04" + transmission();
  // The first frame read may go on with a record begun in a frame the capture missed.
  std::string cont = tail + frame(3, "^^^NA|R\rO|1|SPEC1||^^^GLU|R\r") + frame(4, "L|1|N\r") + "\x04" + transmission();
  auto check = [](Harness& h) {
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 2);
    auto& a = ev[0]["astm"];
    CHECK(a["complete"] == false);
    CHECK(a["frames"] == 2);
    CHECK(a["records"]["O"] == 1);
    CHECK(a["records"]["L"] == 1);
    CHECK(a["records"]["P"] == 0);
    CHECK(a["specimens"] == nlohmann::json::array({Pseudonymiser()("SPEC1")}));
    check_event(ev[1]["astm"]);
    CHECK(h.anomalies() == 0);
  };
  for (const std::string& tx : {s, cont}) {
    for (size_t cut = 0; cut <= tx.size(); ++cut) {
      INFO("cut at " << cut);
      Harness h(kAstmInfo);
      h.ctx.set_midstream(Dir::to_server, true);
      h.ctx.set_midstream(Dir::to_client, true);
      h.feed(Dir::to_client, "\x06");
      h.feed(Dir::to_server, tx.substr(0, cut));
      h.feed(Dir::to_server, tx.substr(cut));
      h.end();
      check(h);
    }
  }
  // A stream whose start was seen is read as before: a frame without ENQ is an anomaly.
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, frame(3, "O|1|SPEC1||^^^GLU|R\r") + frame(4, "L|1|N\r") + "\x04");
  h.end();
  CHECK(h.anomalies("frame_without_enq") == 1);
  CHECK(h.anomalies("frame_number_sequence") == 1);
}

TEST_CASE("astm: mid-stream bare records are read from the next header record") {
  std::string tx;
  for (const char* r : kRecords) tx += std::string(r) + "\r";
  Harness h(kAstmInfo);
  h.ctx.set_midstream(Dir::to_server, true);
  h.feed(Dir::to_server, "Z|9|^^^GLU|5.4\rL|1|N\r" + tx);
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["astm"]["link_layer"] == false);
  CHECK(ev[0]["astm"]["records"]["R"] == 2);
  CHECK(ev[0]["astm"]["complete"] == true);
  CHECK(h.anomalies() == 0);
}

TEST_CASE("astm: lost link-layer bytes drop the rest of the record they cut, whatever its tail looks like") {
  // A made-up patient record over three ETB frames; the last begins "R|" (the end of a name)
  // and holds the birth date.
  std::string f1 = frame(1, kRecords[0] + std::string("\r"));
  std::string f2 = frame(2, "P|1|PID0009|||ROE^PETE", false);
  std::string f3 = frame(3, "R|MAIDENNAME|19611231|M\r", false);
  std::string f4 = frame(4, "O|2|^^^GLU|R\r");
  std::string f5 = frame(5, "R|1|^^^NA|140\r");
  std::string f6 = frame(6, "L|1|N\r");
  auto leaks = [](const Harness& h) {
    for (auto& e : h.events("astm")) {
      std::string s = e.dump();
      if (s.find("19611231") != std::string::npos || s.find("MAIDENNAME") != std::string::npos) return true;
    }
    return false;
  };
  SECTION("the middle frame lost: its tail is no R record") {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, "\x05" + f1 + f2);
    h.gap(Dir::to_server, 30);
    h.feed(Dir::to_server, f3 + f4 + f5 + f6 + "\x04");
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    auto& a = ev[0]["astm"];
    CHECK(a["gaps"] == 1);
    CHECK(a["records"]["P"] == 0);
    CHECK(a["records"]["R"] == 1);  // f5, after the ETX of f4: a record for certain
    CHECK(a["records"]["O"] == 1);
    CHECK(a["records"]["L"] == 1);
    CHECK(a["tests"] == nlohmann::json::array({"NA"}));
    CHECK_FALSE(leaks(h));
  }
  SECTION("the ENQ and the start of the frame lost between transmissions: no bare record") {
    std::string frame_p = frame(2, "P|1|PID0009|||ROE^PETER|MAIDENNAME|19611231|M\r");
    std::string tail = frame_p.substr(frame_p.find("R|MAIDEN"));
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, transmission());
    h.gap(Dir::to_server, 50);
    h.feed(Dir::to_server, tail + frame(3, "L|1|N\r") + "\x04" + transmission());
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 3);
    check_event(ev[0]["astm"]);
    CHECK(ev[1]["astm"]["complete"] == false);
    CHECK(ev[1]["astm"]["link_layer"] == true);
    CHECK(ev[1]["astm"]["gaps"] == 1);
    CHECK(ev[1]["astm"]["records"]["R"] == 0);
    check_event(ev[2]["astm"]);
    CHECK_FALSE(leaks(h));
  }
  SECTION("any hole: no value of the cut record comes out") {
    std::string tx = "\x05" + f1 + f2 + f3 + f4 + f5 + f6 + "\x04";
    size_t p_from = tx.find(f2), p_to = tx.find(f4);
    for (size_t at = p_from; at < p_to; ++at) {
      for (size_t n : {size_t(1), size_t(3), size_t(12), size_t(35)}) {
        if (at + n > tx.size()) continue;
        INFO("hole of " << n << " at " << at);
        Harness h(kAstmInfo);
        h.feed(Dir::to_server, tx.substr(0, at));
        h.gap(Dir::to_server, n);
        h.feed(Dir::to_server, tx.substr(at + n));
        h.end();
        CHECK_FALSE(leaks(h));
        for (auto& e : h.events("astm")) {
          CHECK(e["astm"]["records"]["R"] <= 1);
          CHECK(e["astm"]["records"]["O"] <= 1);
        }
      }
    }
  }
}

TEST_CASE("astm: a record guessed from the first frame read mid-stream gives out no value") {
  // Picked up at a frame that goes on with a record begun before the capture: its tail looks
  // like an R record and holds a birth date.
  std::string s = frame(3, "R|MAIDENNAME|19611231|M\r") + frame(4, "R|1|^^^NA|140\r") + frame(5, "L|1|N\r") + "\x04";
  Harness h(kAstmInfo);
  h.ctx.set_midstream(Dir::to_server, true);
  h.feed(Dir::to_server, s);
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  auto& a = ev[0]["astm"];
  CHECK(a["records"]["R"] == 2);
  CHECK(a["tests"] == nlohmann::json::array({"NA"}));
  CHECK(a["termination_code"] == "N");
  CHECK(ev[0].dump().find("19611231") == std::string::npos);
}

TEST_CASE("astm: bare records, a header without an L record before it ends the previous message") {
  std::string s = "H|\\^&|||ANA-ONE\rP|1||PID0011||ROE^JOHN\rH|\\^&|||ANA-TWO\rP|1||PID0012\rL|1|N\r";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    INFO("cut at " << cut);
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, s.substr(0, cut));
    h.feed(Dir::to_server, s.substr(cut));
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 2);
    auto& a = ev[0]["astm"];
    CHECK(a["sender"] == "ANA-ONE");
    CHECK(a["records"]["H"] == 1);
    CHECK(a["records"]["P"] == 1);
    CHECK(a["records"]["L"] == 0);
    CHECK(a["complete"] == false);
    CHECK(a["patients"] == nlohmann::json::array({Pseudonymiser()("PID0011")}));
    auto& b = ev[1]["astm"];
    CHECK(b["sender"] == "ANA-TWO");
    CHECK(b["records"]["H"] == 1);
    CHECK(b["records"]["P"] == 1);
    CHECK(b["complete"] == true);
    CHECK(b["patients"] == nlohmann::json::array({Pseudonymiser()("PID0012")}));
  }
}

TEST_CASE("astm: bytes between messages are an anomaly, never a transmission") {
  std::string tx = transmission();
  std::string bare;
  for (const char* r : kRecords) bare += std::string(r) + "\r";
  SECTION("text between link-layer transmissions") {
    std::string s = tx + "OK\r\n" + tx;
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      INFO("cut at " << cut);
      Harness h(kAstmInfo);
      h.feed(Dir::to_server, s.substr(0, cut));
      h.feed(Dir::to_server, s.substr(cut));
      h.end();
      auto ev = h.events("astm");
      REQUIRE(ev.size() == 2);
      check_event(ev[0]["astm"]);
      check_event(ev[1]["astm"]);
      REQUIRE(h.anomalies() == 1);
      CHECK(h.events("anomaly")[0]["anomaly"]["name"] == "unexpected_byte");
      CHECK(h.events("anomaly")[0]["anomaly"]["offset"] == tx.size());
    }
  }
  SECTION("text between bare messages") {
    std::string s = bare + "OK\r\n" + bare;
    for (size_t cut = 0; cut <= s.size(); ++cut) {
      INFO("cut at " << cut);
      Harness h(kAstmInfo);
      h.feed(Dir::to_server, s.substr(0, cut));
      h.feed(Dir::to_server, s.substr(cut));
      h.end();
      auto ev = h.events("astm");
      REQUIRE(ev.size() == 2);
      for (auto& e : ev) {
        CHECK(e["astm"]["complete"] == true);
        CHECK(e["astm"]["records"]["O"] == 1);
      }
      REQUIRE(h.anomalies("unexpected_byte") == 1);
      CHECK(h.events("anomaly")[0]["anomaly"]["offset"] == bare.size());
    }
  }
  SECTION("bare records after an L without their H: a message whose start was not seen") {
    std::string s = bare + "P|1||PID0013||ROE^JANE\rL|1|N\r";
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, s);
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 2);
    CHECK(ev[0]["astm"]["complete"] == true);
    auto& a = ev[1]["astm"];
    CHECK(a["records"]["H"] == 0);
    CHECK(a["records"]["P"] == 1);
    CHECK(a["records"]["L"] == 1);
    CHECK(a["complete"] == false);
    CHECK(a["patients"] == nlohmann::json::array({Pseudonymiser()("PID0013")}));
    CHECK(h.anomalies() == 0);
  }
}

TEST_CASE("astm: record_too_long is reported at the record's first byte") {
  std::string big = "P|1||" + std::string(70 * 1024, 'A') + "\r";
  std::string bare = std::string(kRecords[0]) + "\r" + big + "L|1|N\r";
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, bare);
  h.end();
  REQUIRE(h.anomalies("record_too_long") == 1);
  CHECK(h.events("anomaly")[0]["anomaly"]["offset"] == bare.find("P|1||"));
  // Over ETB frames of the link layer too.
  std::string tx = std::string("\x05") + frame(1, kRecords[0] + std::string("\r"));
  int fn = 2;
  for (size_t at = 0; at < big.size(); at += 60000, fn = (fn + 1) & 7)
    tx += frame(fn, big.substr(at, 60000), at + 60000 >= big.size());
  tx += frame(fn, "L|1|N\r") + "\x04";
  Harness l(kAstmInfo);
  l.feed(Dir::to_server, tx);
  l.end();
  REQUIRE(l.anomalies("record_too_long") == 1);
  for (auto& e : l.events("anomaly"))
    if (e["anomaly"]["name"] == "record_too_long") CHECK(e["anomaly"]["offset"] == tx.find("P|1||"));
  // The record lost its tail: neither message is whole, though each ended with its L (and EOT).
  REQUIRE(h.events("astm").size() == 1);
  CHECK(h.events("astm")[0]["astm"]["complete"] == false);
  REQUIRE(l.events("astm").size() == 1);
  CHECK(l.events("astm")[0]["astm"]["complete"] == false);
}

TEST_CASE("astm: whole frames lost in a hole are no frame-number error") {
  std::string tx = "\x05" + frame(1, std::string(kRecords[0]) + "\r") + frame(2, std::string(kRecords[1]) + "\r");
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx);
  h.gap(Dir::to_server, 120);  // frames 3 and 4
  h.feed(Dir::to_server, frame(5, std::string(kRecords[4]) + "\r") + frame(6, "L|1|N\r") + frame(0, "H|\\^&\r") + "\x04");
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["astm"]["gaps"] == 1);
  CHECK(h.anomalies("frame_number_sequence") == 1);  // frame 0 after 6: the numbers go on after the hole
}

TEST_CASE("astm: a dropped frame the sender does not send again loses its record, never glued to the next") {
  // A made-up patient record over two ETB frames; the second is dropped (interrupted, a bad
  // frame number, a bad checksum), then the sender goes on with frame 4 or sends frame 3 again.
  std::string f1 = frame(1, kRecords[0] + std::string("\r"));
  std::string f2 = frame(2, "P|1|PID0021|||ROE^ANN", false);
  std::string f3 = frame(3, "||19720303|F\r");
  std::string o = frame(4, "O|1|SPEC0021||^^^GLU|R\r");
  std::string cont = frame(4, "MORE^TEXT|19720303\r") + frame(5, "R|1|^^^NA|140\r");
  std::string bad_cs = f3;
  bad_cs[bad_cs.size() - 4] = bad_cs[bad_cs.size() - 4] == '0' ? '1' : '0';
  const std::string dropped[] = {f3.substr(0, 8), "\x02X|19720303|F\r\x03", bad_cs};
  for (const std::string& d : dropped) {
    INFO("dropped frame " << nlohmann::json(d).dump());
    SECTION("not sent again, the next frame starts a record") {
      Harness h(kAstmInfo);
      h.feed(Dir::to_server, "\x05" + f1 + f2 + d + o + frame(5, "L|1|N\r") + "\x04");
      h.end();
      auto ev = h.events("astm");
      REQUIRE(ev.size() == 1);
      auto& a = ev[0]["astm"];
      CHECK(a["records"]["P"] == 0);  // glued to the O record before
      CHECK(a["records"]["O"] == 1);
      CHECK(a["records"]["L"] == 1);
      CHECK(a["specimens"] == nlohmann::json::array({Pseudonymiser()("SPEC0021")}));
      CHECK_FALSE(a.contains("tests"));  // the O record's type is a guess
      CHECK(a["termination_code"] == "N");
    }
    SECTION("not sent again, the next frame goes on with a record") {
      Harness h(kAstmInfo);
      h.feed(Dir::to_server, "\x05" + f1 + f2 + d + cont + frame(6, "L|1|N\r") + "\x04");
      h.end();
      auto ev = h.events("astm");
      REQUIRE(ev.size() == 1);
      auto& a = ev[0]["astm"];
      CHECK(a["records"]["P"] == 0);
      CHECK(a["records"]["R"] == 1);
      CHECK(a["tests"] == nlohmann::json::array({"NA"}));
      CHECK(ev[0].dump().find("MORE") == std::string::npos);
      CHECK(h.anomalies("unknown_record") == 0);
    }
    SECTION("sent again: the record is whole") {
      Harness h(kAstmInfo);
      h.feed(Dir::to_server, "\x05" + f1 + f2 + d + f3 + frame(4, "L|1|N\r") + "\x04");
      h.end();
      auto ev = h.events("astm");
      REQUIRE(ev.size() == 1);
      auto& a = ev[0]["astm"];
      CHECK(a["records"]["P"] == 1);
      CHECK(a["patients"] == nlohmann::json::array({Pseudonymiser()("PID0021")}));
      CHECK(a["phi_fields"] == nlohmann::json::array({"astm.P.3", "astm.P.6", "astm.P.8"}));
      CHECK(h.anomalies("frame_number_sequence") == 0);
    }
    SECTION("the sender gives up: the record is read up to its cut field, the transmission is incomplete") {
      Harness h(kAstmInfo);
      h.feed(Dir::to_server, "\x05" + f1 + f2 + d + "\x04");
      h.end();
      auto ev = h.events("astm");
      REQUIRE(ev.size() == 1);
      auto& a = ev[0]["astm"];
      CHECK(a["records"]["P"] == 1);
      CHECK(a["patients"] == nlohmann::json::array({Pseudonymiser()("PID0021")}));
      CHECK(a["phi_fields"] == nlohmann::json::array({"astm.P.3", "astm.P.6"}));
      CHECK(a["complete"] == false);
    }
  }
}


TEST_CASE("astm: EOT after an intermediate frame ends the transmission in the middle of a record") {
  // A made-up patient record; the sender aborts (or the receiver asked it to stop) after the frame
  // ended by ETB, whose record the next frames would have ended.
  std::string f1 = frame(1, kRecords[0] + std::string("\r"));
  std::string next = "\x05" + frame(1, kRecords[0] + std::string("\r")) + frame(2, "L|1|N\r") + "\x04";
  Pseudonymiser p;
  SECTION("after the whole ETB frame: the record is read up to its cut field, not complete") {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, "\x05" + f1 + frame(2, "P|1|PID0031|||ROE^AN", false) + "\x04" + next);
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 2);
    auto& a = ev[0]["astm"];
    CHECK(a["records"]["P"] == 1);
    CHECK(a["frames"] == 2);
    CHECK(a["complete"] == false);  // it was true, the half record read as whole
    CHECK(a["patients"] == nlohmann::json::array({p("PID0031")}));
    CHECK(a["phi_fields"] == nlohmann::json::array({"astm.P.3", "astm.P.6"}));
    CHECK(ev[1]["astm"]["complete"] == true);
    CHECK(h.anomalies() == 0);
  }
  SECTION("a cut id is no patient's: not pseudonymised, but listed as sent") {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, "\x05" + f1 + frame(2, "P|1|PID00", false) + "\x04");
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["astm"]["records"]["P"] == 1);
    CHECK_FALSE(ev[0]["astm"].contains("patients"));
    CHECK(ev[0]["astm"]["phi_fields"] == nlohmann::json::array({"astm.P.3"}));
    CHECK(ev[0]["astm"]["complete"] == false);
  }
  SECTION("EOT right after ETB, in place of the checksum: the frame is interrupted, the next transmission its own") {
    std::string f2 = frame(2, "P|1|PID0032|||ROE^ANN", false);
    for (std::string end : {std::string("\x04"), std::string("\x04") + next, std::string("\x05") + next.substr(1)}) {
      INFO(nlohmann::json(end.substr(0, 2)).dump());
      Harness h(kAstmInfo);
      // STX 2 text ETB, then EOT (or ENQ) where C1 belongs.
      h.feed(Dir::to_server, "\x05" + f1 + f2.substr(0, f2.size() - 4) + end);
      h.end();
      auto ev = h.events("astm");
      REQUIRE(ev.size() == (end.size() > 1 ? 2u : 1u));
      auto& a = ev[0]["astm"];
      CHECK(a["frames"] == 1);
      CHECK(a["records"]["P"] == 0);  // its only frame was not whole
      CHECK(a["complete"] == false);
      CHECK_FALSE(a.contains("checksum_errors"));
      CHECK(h.anomalies("frame_interrupted") == 1);
      CHECK(h.anomalies("bad_checksum") == 0);
      if (ev.size() == 2) {
        // It was read into the aborted transmission: its ENQ taken for a checksum digit.
        CHECK(ev[1]["astm"]["records"]["L"] == 1);
        CHECK(ev[1]["astm"]["complete"] == true);
        CHECK_FALSE(ev[1]["astm"].contains("retransmissions"));
      }
    }
  }
  SECTION("the capture ends after the ETB frame") {
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, "\x05" + f1 + frame(2, "P|1|PID0033|||ROE^ANN", false));
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["astm"]["records"]["P"] == 1);
    CHECK(ev[0]["astm"]["patients"] == nlohmann::json::array({p("PID0033")}));
    CHECK(ev[0]["astm"]["complete"] == false);
    CHECK(h.anomalies("no_eot") == 1);
  }
}


TEST_CASE("astm: a frame over the text cap is counted, and its dropped tail is not glued to the next frame") {
  // The first frame's text passes 64 KiB inside the O record's specimen id; the rest of that
  // record goes on in the next frame (ETB).
  std::string filler = "C|1|I|" + std::string(64 * 1024 - 10 - 7, 'x') + "\r";
  std::string text = filler + "O|1|SPEC123456789|x|^^^GLU|R\r";
  REQUIRE(filler.size() + 10 == 64 * 1024);
  Pseudonymiser p;
  for (bool intermediate : {true, false}) {
    INFO("ETB: " << intermediate);
    std::string next = intermediate ? "34|x|^^^NA\rL|1|N\r" : "L|1|N\r";
    std::string tx = std::string("\x05") + frame(1, kRecords[0] + std::string("\r")) + frame(2, text, !intermediate) +
                     frame(3, next) + "\x04";
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, tx);
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    auto& a = ev[0]["astm"];
    CHECK(h.anomalies("frame_text_too_long") == 1);
    CHECK(a["records"]["C"] == 1);
    CHECK(a["records"]["O"] == 1);
    CHECK(a["records"]["L"] == 1);
    CHECK(a["termination_code"] == "N");
    // The frame lost text past the cap: the transmission is not whole, though it ended with EOT.
    CHECK(a["complete"] == false);
    // Neither the cut id nor one glued to the next frame's text gives a pseudonym or a test.
    CHECK_FALSE(a.contains("specimens"));
    CHECK_FALSE(a.contains("tests"));
  }
}

TEST_CASE("astm: a header with a damaged delimiter set is reported and read with the default delimiters") {
  std::string tx = std::string("\x05") + frame(1, "Hello|x|1||ACME-CHEM^2.1\r") + frame(2, kRecords[1] + std::string("\r")) +
                   frame(3, "L|1|N\r") + "\x04";
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx);
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  auto& a = ev[0]["astm"];
  CHECK(h.anomalies("bad_delimiters") == 1);
  CHECK(a["records"]["P"] == 1);
  CHECK(a["sender"] == "ACME-CHEM");
  CHECK(a["termination_code"] == "N");
  Pseudonymiser p;
  CHECK(a["patients"] == nlohmann::json::array({p("PID0001")}));
  // A later header with a good set is read with its own delimiters.
  Harness g(kAstmInfo);
  g.feed(Dir::to_server, tx + "\x05" + frame(1, "H!@#$!1!!ACME-CHEM#2.1\r") + frame(2, "P!1!PID0002\r") + frame(3, "L!1!N\r") + "\x04");
  g.end();
  ev = g.events("astm");
  REQUIRE(ev.size() == 2);
  CHECK(g.anomalies("bad_delimiters") == 1);
  CHECK(ev[1]["astm"]["sender"] == "ACME-CHEM");
  CHECK(ev[1]["astm"]["patients"] == nlohmann::json::array({p("PID0002")}));
}

TEST_CASE("astm: escape sequences in values are decoded before they are given out or pseudonymised") {
  std::string tx = std::string("\x05") + frame(1, "H|\\^&|CTL&F&1||ACME&S&CHEM^2.1\r") +
                   frame(2, "P|1|PID&R&0001&E&7&X0041&\r") + frame(3, "O|1|SP&F&123||^^^GL&S&U|R\r") +
                   frame(4, "L|1|N&E&\r") + "\x04";
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx);
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  auto& a = ev[0]["astm"];
  CHECK(a["control_id"] == "CTL|1");
  CHECK(a["sender"] == "ACME^CHEM");
  Pseudonymiser p;
  // Sequences other than the delimiters' are kept as written.
  CHECK(a["patients"] == nlohmann::json::array({p("PID\\0001&7&X0041&")}));
  CHECK(a["specimens"] == nlohmann::json::array({p("SP|123")}));
  CHECK(a["tests"] == nlohmann::json::array({"GL^U"}));
  CHECK(a["termination_code"] == "N&");
  for (auto& l : h.sink->lines) CHECK(l.find("PID") == std::string::npos);
}

TEST_CASE("astm: an id that is only an escape is the character it stands for; one of spaces is none") {
  // The decoded text is the value: P.3 "&F&" is the id "|" (a sender's way to write it), and its
  // pseudonym is that of "|". An id of spaces names no one: the next id field is the patient's.
  std::string tx = std::string("\x05") + frame(1, std::string(kRecords[0]) + "\r") + frame(2, "P|1|&F&\r") +
                   frame(3, "P|2|   |LABZZ9\r") + frame(4, "O|1|&R&||^^^GLU|R\r") + frame(5, "O|2|  ^x||^^^NA|R\r") +
                   frame(6, "L|1|N\r") + "\x04";
  Harness h(kAstmInfo);
  h.feed(Dir::to_server, tx);
  h.end();
  auto ev = h.events("astm");
  REQUIRE(ev.size() == 1);
  auto& a = ev[0]["astm"];
  Pseudonymiser p;
  CHECK(a["patients"] == nlohmann::json::array({p("|"), p("LABZZ9")}));
  CHECK(a["specimens"] == nlohmann::json::array({p("\\")}));
  for (auto& v : a["patients"]) CHECK(v != p(""));
}

TEST_CASE("astm: a record over its cap is read as cut short: the field the cap fell in gives no value") {
  // A made-up patient id that straddles the 64 KiB record cap: what is left of it is another id.
  std::string p = "P|" + std::string(64 * 1024 - 8, '1') + "|PIDCUT0001|||DOE^JOHN\r";
  REQUIRE(p.find("PIDCUT") < 64 * 1024);
  REQUIRE(p.find("PIDCUT") + 10 > 64 * 1024);
  Pseudonymiser ps;
  for (bool link : {false, true}) {
    INFO("link layer: " << link);
    std::string bytes;
    if (!link) {
      bytes = std::string(kRecords[0]) + "\r" + p + "L|1|N\r";
    } else {
      bytes = std::string("\x05") + frame(1, kRecords[0] + std::string("\r"));
      int fn = 2;
      for (size_t at = 0; at < p.size(); at += 60000, fn = (fn + 1) & 7)
        bytes += frame(fn, p.substr(at, 60000), at + 60000 >= p.size());
      bytes += frame(fn, "L|1|N\r") + "\x04";
    }
    Harness h(kAstmInfo);
    h.feed(Dir::to_server, bytes);
    h.end();
    auto ev = h.events("astm");
    REQUIRE(ev.size() == 1);
    auto& a = ev[0]["astm"];
    CHECK(h.anomalies("record_too_long") == 1);
    CHECK(a["records"]["P"] == 1);
    CHECK_FALSE(a.contains("patients"));
    for (std::string cut : {"PIDCUT", "PIDCUT0", "PIDCUT00", "PIDCUT000"}) CHECK(h.sink->lines.back().find(ps(cut)) == std::string::npos);
    CHECK(a["phi_fields"] == nlohmann::json::array({"astm.P.3"}));
  }
}

TEST_CASE("astm: a query naming the patient only in its ending range, or an order only by the instrument's specimen id, sends PHI") {
  Harness h(kAstmInfo);
  std::string query = std::string("\x05") + frame(1, "H|\\^&|||LIS01\r") + frame(2, "Q|1||^PID0042|^^^ALL\r") +
                      frame(3, "O|1||INSTSPEC9|^^^GLU|R\r") + frame(4, "L|1|N\r") + "\x04";
  h.feed(Dir::to_client, query);
  h.end();
  auto events = h.events("astm");
  REQUIRE(events.size() == 1);
  const auto& a = events[0]["astm"];
  CHECK(a["phi_fields"] == nlohmann::json::array({"astm.Q.4", "astm.O.4"}));
  CHECK(a.dump().find("PID0042") == std::string::npos);
  CHECK(a.dump().find("INSTSPEC9") == std::string::npos);
  CHECK(h.facts.phi_fields == std::vector<std::string>{"astm.Q.4", "astm.O.4"});
}
