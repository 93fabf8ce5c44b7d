#include <algorithm>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <random>
#include <string>
#include <vector>

#include "dissectors/http/test/deflated.h"

#include "dissectors/hl7/hl7_dissector.h"
#include "sensor/output/event_output.h"
#include "sensor/output/pseudonymiser.h"

using namespace medmon;
using json = nlohmann::json;

namespace {

// Made-up patients only.
const std::string kAdt =
    "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|LAB|GHH|20240101120000||ADT^A01^ADT_A01|MSG0001|P|2.5.1\r"
    "EVN|A01|20240101120000\r"
    "PID|1||PAT000123^^^GHH^MR||DOE^JANE^Q^^DR^^L||19700101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701||(555)555-0100|||S||AC0001|123-45-6789\r"
    "NK1|1|DOE^JOHN|SPO^SPOUSE||(555)555-0101\r"
    "PV1|1|I|ICU^1^2^GHH||||0148^ADDISON^JAMES||||||||||||V0001\r";
const std::string kAck =
    "MSH|^~\\&|LAB|GHH|ADT1|GOOD HEALTH HOSPITAL|20240101120001||ACK^A01^ACK|ACK0001|P|2.5.1\rMSA|AA|MSG0001\r";
const std::string kOru =
    "MSH|^~\\&|MONITOR|ICU|EHR|GHH|20240101120500||ORU^R01^ORU_R01|ORU77|P|2.7\r"
    "PID|1||PAT000124^^^GHH^MR||O\\T\\BRIEN^ANNE\r"
    "OBR|1|PLC100|FIL200|8867-4^Heart rate^LN\r"
    "OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F|||20240101120455||||MON-ICU-07\r"
    "PRT|1|AD||EQUIP||||||||||||(01)00812345678901(21)SN123|||LOT9|SN123||MON\r";

std::string mllp(const std::string& m) { return "\x0b" + m + "\x1c\r"; }
std::string with_id(std::string m, const std::string& id) { return m.replace(m.find("MSG0001"), 7, id); }

struct Harness {
  EventOutput out;
  std::shared_ptr<MemorySink> sink = std::make_shared<MemorySink>();
  Pseudonymiser phi;
  EventEndpoints ep;
  FlowFacts facts;
  FlowContext ctx{out, phi, ep, facts};
  std::unique_ptr<Dissector> d = kHl7Info.make();
  uint64_t off[2] = {0, 0};
  Harness() {
    out.add_sink(sink);
    ep.flow_id = "f1";
  }
  void feed(Dir dir, std::string_view bytes, int64_t ts = 1704110400000000) {
    ctx.set_now(Timestamp{ts});
    ctx.set_stream_offset(off[static_cast<int>(dir)]);
    auto r = d->on_data(dir, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), ctx);
    REQUIRE(r.used == bytes.size());
    off[static_cast<int>(dir)] += bytes.size();
  }
  void end() {
    d->on_end(Dir::to_server, ctx);
    d->on_end(Dir::to_client, ctx);
    d->on_flow_end(ctx);
  }
  std::vector<json> events(const std::string& type = "") const {
    std::vector<json> v;
    for (size_t i = 0; i < sink->lines.size(); ++i)
      if (type.empty() || sink->types[i] == type) v.push_back(json::parse(sink->lines[i]));
    return v;
  }
  std::string all() const {
    std::string s;
    for (auto& l : sink->lines) s += l + "\n";
    return s;
  }
};

Probe probe_str(std::string_view s) {
  return hl7::probe(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()), Dir::to_server);
}

}  // namespace

TEST_CASE("probe: MLLP, bare MSH and HTTP with an HL7 body") {
  CHECK(probe_str("\x0bMSH|^~\\&|A") == Probe::yes);
  CHECK(probe_str("\x0b" "BHS|^~\\&|") == Probe::yes);
  CHECK(probe_str("\x0bMS") == Probe::need_more);
  CHECK(probe_str("\x0bXYZ|^~") == Probe::no);
  CHECK(probe_str("MSH|^~\\&|APP") == Probe::yes);
  CHECK(probe_str("MSH") == Probe::need_more);
  CHECK(probe_str("MSHELLO WORLD") == Probe::no);
  CHECK(probe_str("GET / HTTP/1.1\r\n") == Probe::no);
  CHECK(probe_str("POST /hl7 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7\r\n") == Probe::yes);
  CHECK(probe_str("POST /x HTTP/1.1\r\nContent-Type: text/plain\r\n\r\nMSH|^~\\&|") == Probe::yes);
  CHECK(probe_str("POST /x HTTP/1.1\r\nContent-Type: text/plain\r\n\r\n{\"a\":1}") == Probe::no);
  CHECK(probe_str("POST /x HTTP/1.1\r\nHost: a\r\n") == Probe::need_more);
  CHECK(probe_str("SSH-2.0-OpenSSH") == Probe::no);
  // A chunked body: its bytes after the first chunk's size line.
  CHECK(probe_str("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n3c\r\nMSH|^~\\&|") ==
        Probe::yes);
  CHECK(probe_str("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3c;x=1\nMSH|^~\\&|") == Probe::yes);
  CHECK(probe_str("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3c") == Probe::need_more);
  CHECK(probe_str("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n{\"a\":1}") == Probe::no);
}

TEST_CASE("sender: an acknowledgment likely comes from the listening side, HTTP by its start line") {
  auto sender = [](std::string_view s) {
    return hl7::sender(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  };
  CHECK(sender(mllp(kAdt)) == StreamSender::likely_client);
  CHECK(sender(mllp(kAck)) == StreamSender::likely_server);
  CHECK(sender("\x0bMSH|^~\\&|RIS|H|CT|R|20250101||RSP^K22|1|P|2.5\rMSA|AA|9\r") == StreamSender::likely_server);
  CHECK(sender("MSH|^~\\&|A|B|C|D|20250101||ACK^R01|2|P|2.5\rMSA|AA|1\r") == StreamSender::likely_server);
  CHECK(sender("\x0bMSH|^~\\&|A|B|C") == StreamSender::unknown);  // MSH-9 not in these bytes
  CHECK(sender("\x0bMSH|^~\\&|A\rPID|1") == StreamSender::unknown);
  CHECK(sender("HTTP/1.1 200 OK\r\nContent-Type: application/hl7-v2\r\n\r\n") == StreamSender::server);
  CHECK(sender("POST /hl7 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7\r\n") == StreamSender::client);
  CHECK(sender("SSH-2.0-OpenSSH") == StreamSender::unknown);
}

TEST_CASE("one event per message with header fields, PHI only as pseudonyms") {
  Harness h;
  h.feed(Dir::to_server, mllp(kAdt));
  h.feed(Dir::to_client, mllp(kAck), 1704110400002500);
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 2);
  auto m = ev[0]["hl7"];
  CHECK(m["kind"] == "message");
  CHECK(m["transport"] == "mllp");
  CHECK(m["direction"] == "to_server");
  CHECK(m["sending_application"] == "ADT1");
  CHECK(m["sending_facility"] == "GOOD HEALTH HOSPITAL");
  CHECK(m["receiving_application"] == "LAB");
  CHECK(m["receiving_facility"] == "GHH");
  CHECK(m["message_datetime"] == "20240101120000");
  CHECK(m["message_type"] == "ADT");
  CHECK(m["trigger_event"] == "A01");
  CHECK(m["message_structure"] == "ADT_A01");
  CHECK(m["control_id"] == "MSG0001");
  CHECK(m["processing_id"] == "P");
  CHECK(m["version"] == "2.5.1");
  CHECK(m["segments"] == json::array({"MSH", "EVN", "PID", "NK1", "PV1"}));
  CHECK(m["segment_count"] == 5);
  CHECK(m["phi_fields"] == json::array({"PID-3", "PID-5", "PID-7", "PID-11", "PID-13", "PID-18", "PID-19",
                                        "NK1-2", "NK1-5", "PV1-19", "EVN-2"}));
  // The same HMAC as DICOM: PID-3.1 equals a DICOM Patient ID, PID-5 a DICOM PN.
  CHECK(m["patient"]["id"] == h.phi("PAT000123"));
  CHECK(m["patient"]["name"] == h.phi("DOE^JANE^Q^DR"));
  auto a = ev[1]["hl7"];
  CHECK(a["direction"] == "to_client");
  CHECK(a["message_type"] == "ACK");
  CHECK(a["ack"]["code"] == "AA");
  CHECK(a["ack"]["control_id"] == "MSG0001");
  CHECK(a["ack"]["matched"] == true);
  CHECK(a["ack"]["latency_us"] == 2500);
  CHECK(a["ack"]["acked_type"] == "ADT^A01");
  CHECK(!a.contains("phi_fields"));
  // No PHI value leaves in clear.
  std::string all = h.all();
  for (const char* v : {"DOE", "JANE", "PAT000123", "19700101", "MAIN ST", "555-0100", "123-45-6789", "V0001"})
    CHECK(all.find(v) == std::string::npos);
  CHECK(h.facts.phi_fields.size() == 11);
  REQUIRE(h.facts.attr("hl7.msh3"));
  CHECK(*h.facts.attr("hl7.msh3") == "ADT1");
  // The policy reads what the client sent: message types and processing ids, not the ACKs.
  REQUIRE(h.facts.attr("hl7.message_types"));
  CHECK(*h.facts.attr("hl7.message_types") == "ADT^A01");
  CHECK(*h.facts.attr("hl7.processing_id") == "P");
  CHECK(h.events("anomaly").empty());
}

TEST_CASE("the sending application is the first MSH-3 given, not an empty first one") {
  Harness h;
  std::string unnamed = kAdt;
  unnamed.replace(unnamed.find("|ADT1|GOOD HEALTH HOSPITAL|"), 27, "||GOOD HEALTH HOSPITAL|");
  std::string unnamed_ack = kAck;
  unnamed_ack.replace(unnamed_ack.find("|LAB|GHH|"), 9, "|||");
  h.feed(Dir::to_server, mllp(unnamed));
  h.feed(Dir::to_client, mllp(unnamed_ack));
  REQUIRE(h.facts.attr("hl7.msh3"));
  CHECK(h.facts.attr("hl7.msh3")->empty());
  CHECK(*h.facts.attr("hl7.msh4") == "GOOD HEALTH HOSPITAL");
  h.feed(Dir::to_server, mllp(with_id(kAdt, "MSG0002")));
  h.feed(Dir::to_client, mllp(kAck));
  CHECK(*h.facts.attr("hl7.msh3") == "ADT1");
  CHECK(*h.facts.attr("hl7.server_msh3") == "LAB");
  CHECK(*h.facts.attr("hl7.server_msh4") == "GHH");
  // Once named, a later message does not rename it.
  std::string other = kAdt;
  other.replace(other.find("|ADT1|"), 6, "|ADT2|");
  h.feed(Dir::to_server, mllp(with_id(other, "MSG0003")));
  CHECK(*h.facts.attr("hl7.msh3") == "ADT1");
  h.end();
}

TEST_CASE("every split point of an MLLP stream gives the same events") {
  std::string c2s = mllp(kAdt) + mllp(kOru) + "\r\n" + mllp(with_id(kAdt, "MSG0002"));
  std::string s2c = mllp(kAck);
  Harness whole;
  whole.feed(Dir::to_server, c2s);
  whole.feed(Dir::to_client, s2c);
  whole.end();
  std::string want = whole.all();
  REQUIRE(whole.events("hl7").size() == 5);
  for (size_t cut = 0; cut <= c2s.size(); ++cut) {
    Harness h;
    h.feed(Dir::to_server, c2s.substr(0, cut));
    h.feed(Dir::to_server, c2s.substr(cut));
    h.feed(Dir::to_client, s2c);
    h.end();
    INFO("cut at " << cut);
    REQUIRE(h.all() == want);
  }
  // Byte by byte, and random chunkings.
  Harness b;
  for (char c : c2s) b.feed(Dir::to_server, std::string_view(&c, 1));
  b.feed(Dir::to_client, s2c);
  b.end();
  CHECK(b.all() == want);
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    Harness h;
    size_t p = 0;
    while (p < c2s.size()) {
      size_t n = std::uniform_int_distribution<size_t>(1, 64)(rng);
      h.feed(Dir::to_server, c2s.substr(p, n));
      p += n;
    }
    h.feed(Dir::to_client, s2c);
    h.end();
    REQUIRE(h.all() == want);
  }
}

TEST_CASE("unacknowledged messages are reported at flow end") {
  Harness h;
  h.feed(Dir::to_server, mllp(kAdt) + mllp(kOru));
  h.feed(Dir::to_client, mllp(kAck));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 4);
  CHECK(*h.facts.attr("hl7.message_types") == "ADT^A01,ORU^R01");
  auto u = ev[3]["hl7"];
  CHECK(u["kind"] == "unacked");
  CHECK(u["unacked_count"] == 1);
  CHECK(u["unacked"][0]["control_id"] == "ORU77");
  CHECK(u["unacked"][0]["message_type"] == "ORU^R01");
  CHECK(h.out.counters().get("hl7.unacked") == 1);
}

TEST_CASE("negative and unmatched ACKs") {
  Harness h;
  h.feed(Dir::to_server, mllp(kAdt));
  h.feed(Dir::to_client, mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK^A01^ACK|A2|P|2.5.1\rMSA|AE|MSG0001|bad\rERR||PID^1^3|101^Required field missing^HL70357|E\r"));
  h.feed(Dir::to_client, mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK|A3|P|2.5.1\rMSA|AA|NOSUCH\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 3);
  CHECK(ev[1]["hl7"]["ack"]["code"] == "AE");
  CHECK(ev[1]["hl7"]["ack"]["matched"] == true);
  CHECK(ev[1]["hl7"]["ack"]["error_code"] == "101");
  CHECK(ev[2]["hl7"]["ack"]["matched"] == false);
  CHECK(h.out.counters().get("hl7.ack.negative") == 1);
  CHECK(h.out.counters().get("hl7.ack.unmatched") == 1);
}

TEST_CASE("an ERR code that is free text is not written, only counted") {
  // Some senders put the error message, which may name the patient, in ERR-3.1 or ERR-1.4.
  Harness h;
  h.feed(Dir::to_server, mllp(kAdt));
  h.feed(Dir::to_client, mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK^A01^ACK|A2|P|2.5.1\rMSA|AE|MSG0001\rERR||PID^1^5|Patient ZZTESTNAME name mismatch^^HL70357|E\r"));
  h.feed(Dir::to_client, mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK^A01^ACK|A3|P|2.4\rMSA|AE|MSG0001\rERR|PID^1^5^207&Application internal error\r"));
  h.feed(Dir::to_client, mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK^A01^ACK|A4|P|2.5.1\rMSA|AE|MSG0001\rERR||PID^1^5|SITE_E-17.2^^L|E\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 4);
  CHECK_FALSE(ev[1]["hl7"]["ack"].contains("error_code"));
  CHECK(ev[2]["hl7"]["ack"]["error_code"] == "207");
  CHECK(ev[3]["hl7"]["ack"]["error_code"] == "SITE_E-17.2");
  CHECK(h.out.counters().get("hl7.ack.error_code_dropped") == 1);
  for (auto& l : h.sink->lines) CHECK(l.find("mismatch") == std::string::npos);
}

TEST_CASE("a full ACK table still pairs, counts and reports by control id") {
  // 300 messages before any ACK (a peer that lags, or a capture that missed the answers): the
  // first 256 are tracked, the rest counted. Ids of one length and one prefix, so that only
  // their last characters tell them apart.
  Harness h;
  auto id = [](int i) { return "MSGID" + std::to_string(100000 + i); };
  auto ack = [](const std::string& of) {
    return mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK^A01^ACK|R" + of + "|P|2.5.1\rMSA|AA|" + of + "\r");
  };
  std::string sent;
  for (int i = 0; i < 300; ++i) sent += mllp(with_id(kAdt, id(i)));
  h.feed(Dir::to_server, sent);
  CHECK(h.out.counters().get("hl7.ack.table_full") == 44);
  h.feed(Dir::to_server, mllp(with_id(kAdt, id(7))));  // the same id again, same direction
  CHECK(h.out.counters().get("hl7.duplicate_control_id") == 1);
  // ACKs out of order: 255 down to 0 match; 299 (never tracked) does not.
  std::string acks;
  for (int i = 255; i >= 0; --i) acks += ack(id(i));
  acks += ack(id(299));
  h.feed(Dir::to_client, acks);
  h.end();
  auto ev = h.events("hl7");
  size_t matched = 0, unmatched = 0;
  for (auto& e : ev) {
    if (!e["hl7"].contains("ack")) continue;
    if (e["hl7"]["ack"]["matched"] == true) {
      ++matched;
      CHECK(e["hl7"]["ack"]["acked_type"] == "ADT^A01");
    } else {
      ++unmatched;
      CHECK(e["hl7"]["ack"]["control_id"] == id(299));
    }
  }
  CHECK(matched == 256);
  CHECK(unmatched == 1);
  CHECK(h.out.counters().get("hl7.ack.unmatched") == 1);
  CHECK(h.out.counters().get("hl7.unacked") == 0);  // every tracked message was acknowledged
}

TEST_CASE("escapes, device identity, orders") {
  Harness h;
  h.feed(Dir::to_server, mllp(kOru));
  h.end();
  auto m = h.events("hl7").at(0)["hl7"];
  CHECK(m["patient"]["name"] == h.phi("O&BRIEN^ANNE"));
  CHECK(m["order"]["placer"] == h.phi("PLC100"));
  CHECK(m["order"]["filler"] == h.phi("FIL200"));
  REQUIRE(m["devices"].size() == 2);
  CHECK(m["devices"][0]["source"] == "OBX-18");
  CHECK(m["devices"][0]["id"] == "MON-ICU-07");
  CHECK(m["devices"][1]["source"] == "PRT");
  CHECK(m["devices"][1]["udi"] == "(01)00812345678901(21)SN123");
  CHECK(m["devices"][1]["serial"] == "SN123");
  CHECK(m["devices"][1]["type"] == "MON");
  CHECK(m["phi_fields"] == json::array({"PID-3", "PID-5", "OBR-2", "OBR-3", "OBX-5"}));
  // The same identity goes to the flow's facts for the asset inventory, as the client's (it sent
  // the message), once however many messages repeat it.
  h.feed(Dir::to_server, mllp(kOru));
  REQUIRE(h.facts.identities.size() == 2);
  CHECK(h.facts.identities[0].client);
  CHECK(h.facts.identities[0].source == "hl7 OBX-18");
  CHECK(h.facts.identities[0].id == "MON-ICU-07");
  CHECK(h.facts.identities[1].source == "hl7 PRT");
  CHECK(h.facts.identities[1].udi == "(01)00812345678901(21)SN123");
  CHECK(h.facts.identities[1].serial == "SN123");
  CHECK(h.facts.identities[1].type == "MON");
  CHECK(h.facts.identities[1].id.empty());
}

TEST_CASE("LF and CRLF segment ends are tolerated") {
  std::string lf = kAdt, crlf;
  for (char& c : lf) if (c == '\r') c = '\n';
  for (char c : kAdt) { if (c == '\r') crlf += "\r\n"; else crlf += c; }
  for (auto& body : {lf, crlf}) {
    Harness h;
    h.feed(Dir::to_server, mllp(body));
    h.end();
    auto m = h.events("hl7").at(0)["hl7"];
    CHECK(m["lf_line_ends"] == true);
    CHECK(m["segment_count"] == 5);
    CHECK(m["patient"]["id"] == h.phi("PAT000123"));
  }
}

TEST_CASE("framing anomalies") {
  Harness h;
  h.feed(Dir::to_server, "junk" + mllp(kAdt) + kAck + "\x0b" + kAdt + "\x0b" + kAdt.substr(0, 30));
  h.end();
  std::vector<std::string> names;
  for (auto& e : h.events("anomaly")) names.push_back(e["anomaly"]["name"]);
  // The bare ACK ends whole at the start block after it: no end block is missing there.
  CHECK(names == std::vector<std::string>{"mllp.data_outside_frame", "mllp.missing_start_block",
                                          "mllp.missing_end_block", "mllp.unterminated_frame"});
  auto ev = h.events("hl7");
  // The ADT, the bare ACK (framed as "tcp"), the ADT cut by a new start block, the partial one.
  REQUIRE(ev.size() >= 4);
  CHECK(ev[1]["hl7"]["transport"] == "tcp");
  CHECK(ev[1]["hl7"]["message_type"] == "ACK");
  CHECK(!ev[1]["hl7"].contains("complete"));
  CHECK(ev[2]["hl7"]["complete"] == false);
  CHECK(h.events("anomaly")[0]["anomaly"]["offset"] == 0);
}

TEST_CASE("HL7 over HTTP: request body and ACK in the response") {
  Harness h;
  std::string req = "POST /hl7 HTTP/1.1\r\nHost: lis\r\nContent-Type: x-application/hl7-v2+er7; charset=utf-8\r\n"
                    "Content-Length: " + std::to_string(kAdt.size()) + "\r\n\r\n" + kAdt;
  std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: x-application/hl7-v2+er7\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     [&] { char b[16]; snprintf(b, sizeof b, "%zx", kAck.size()); return std::string(b); }() + "\r\n" +
                     kAck + "\r\n0\r\n\r\n";
  for (size_t cut = 0; cut < req.size(); cut += 7) {
    Harness k;
    k.feed(Dir::to_server, req.substr(0, cut));
    k.feed(Dir::to_server, req.substr(cut));
    k.feed(Dir::to_client, resp);
    k.end();
    auto ev = k.events("hl7");
    REQUIRE(ev.size() == 2);
    CHECK(ev[0]["hl7"]["transport"] == "http");
    CHECK(ev[0]["hl7"]["control_id"] == "MSG0001");
    CHECK(ev[1]["hl7"]["ack"]["matched"] == true);
  }
  h.feed(Dir::to_server, "POST /x HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  h.end();
  CHECK(h.events("hl7").empty());
}

TEST_CASE("batches: one event per message, not awaiting ACKs") {
  Harness h;
  std::string batch = "FHS|^~\\&|A|B\rBHS|^~\\&|A|B\r" + kAdt + with_id(kAdt, "MSG0009") +
                      "BTS|2\rFTS|1\r";
  h.feed(Dir::to_server, mllp(batch));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["hl7"]["batch"] == true);
  CHECK(ev[1]["hl7"]["control_id"] == "MSG0009");
  CHECK(h.events("anomaly").empty());
}

TEST_CASE("hostile input does not crash") {
  std::mt19937 rng(11);
  const std::string alphabet = std::string("\x0b\x1c\r\n|^~\\&MSHPIDXFT0123") + '\0';
  for (int round = 0; round < 300; ++round) {
    Harness h;
    std::string s = round % 2 ? "\x0bMSH|^~\\&|" : "";
    size_t n = std::uniform_int_distribution<size_t>(0, 400)(rng);
    for (size_t i = 0; i < n; ++i) s += alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)];
    h.feed(Dir::to_server, s);
    h.feed(Dir::to_client, s);
    h.end();
  }
  SUCCEED();
}

TEST_CASE("a frame holding two messages without a batch gives two events, as split") {
  // One message per frame takes the direct path; a second MSH inside sends the frame through
  // the splitter. Both must give the same events as framing each message alone.
  Harness one, two;
  one.feed(Dir::to_server, mllp(kAdt + with_id(kAdt, "MSG0002")));
  two.feed(Dir::to_server, mllp(kAdt));
  two.feed(Dir::to_server, mllp(with_id(kAdt, "MSG0002")));
  auto a = one.events("hl7"), b = two.events("hl7");
  REQUIRE(a.size() == 2);
  REQUIRE(b.size() == 2);
  CHECK(a[0]["hl7"]["control_id"] == "MSG0001");
  CHECK(a[1]["hl7"]["control_id"] == "MSG0002");
  for (int i = 0; i < 2; ++i) {
    a[i]["hl7"].erase("offset");
    b[i]["hl7"].erase("offset");
    CHECK(a[i] == b[i]);
  }
  CHECK(one.events("anomaly").empty());
}

TEST_CASE("header members follow every change of the raw fields, separators and character set") {
  // A connection's messages mostly repeat MSH-3..6, MSH-9 and MSH-11..16; the event members
  // rendered from them are reused while they repeat. Each message here changes one thing.
  const std::vector<std::string> msgs = {
      "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101||ADT^A01^ADT_A01|C1|P|2.5.1|||AL|NE\rEVN|A01\r",
      "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101||ADT^A01^ADT_A01|C2|P|2.5.1|||AL|NE\rEVN|A01\r",
      "MSH|^~\\&|APP|FAC2|RCV|RFAC|20240101||ADT^A04^ADT_A01|C3|T|2.5.1|||AL|NE\rEVN|A04\r",
      // Escapes: \F\ is the field separator; with '#' as escape character it is plain text.
      "MSH|^~\\&|A\\F\\B|FAC2|RCV|RFAC|20240101||ADT^A04^ADT_A01|C4|T|2.5.1|||AL|NE\rEVN|A04\r",
      "MSH|^~#&|A\\F\\B|FAC2|RCV|RFAC|20240101||ADT^A04^ADT_A01|C5|T|2.5.1|||AL|NE\rEVN|A04\r",
      "MSH|^~\\&|A\\F\\B|FAC2|RCV|RFAC|20240101||ADT^A04^ADT_A01|C6|T|2.5.1|||AL|NE\rEVN|A04\r",
      // A bad escape is reported again when the same run repeats.
      "MSH|^~\\&|A\\Q|FAC2|RCV|RFAC|20240101||ADT^A04^ADT_A01|C7|T|2.5.1|||AL|NE\rEVN|A04\r",
      "MSH|^~\\&|A\\Q|FAC2|RCV|RFAC|20240101||ADT^A04^ADT_A01|C8|T|2.5.1|||AL|NE\rEVN|A04\r",
      // Latin-1 text in MSH-4, read as such only when MSH-18 says so.
      "MSH|^~\\&|APP|H\xd4PITAL|RCV|RFAC|20240101||ADT^A04^ADT_A01|C9|T|2.5.1|||AL|NE||8859/1\rEVN|A04\r",
      "MSH|^~\\&|APP|H\xd4PITAL|RCV|RFAC|20240101||ADT^A04^ADT_A01|C10|T|2.5.1|||AL|NE\rEVN|A04\r",
      // A short header: no MSH-16 to end the settings run.
      "MSH|^~\\&|APP|FAC|RCV|RFAC|20240101||ORU^R01|C11|P|2.3\rEVN|A01\r",
  };
  Harness h;
  for (auto& m : msgs) h.feed(Dir::to_server, mllp(m));
  h.end();
  std::vector<json> ev;
  for (auto& e : h.events("hl7"))
    if (e["hl7"]["kind"] == "message") ev.push_back(e);
  REQUIRE(ev.size() == msgs.size());
  auto field = [&](size_t i, const char* k) { return ev[i]["hl7"].value(k, std::string("-")); };
  CHECK(field(0, "sending_facility") == "FAC");
  CHECK(field(1, "sending_facility") == "FAC");
  CHECK(field(2, "sending_facility") == "FAC2");
  CHECK(field(1, "trigger_event") == "A01");
  CHECK(field(2, "trigger_event") == "A04");
  CHECK(field(1, "processing_id") == "P");
  CHECK(field(2, "processing_id") == "T");
  CHECK(field(3, "sending_application") == "A|B");
  CHECK(field(4, "sending_application") == "A\\F\\B");
  CHECK(field(5, "sending_application") == "A|B");
  // The same value is Latin-1 text with MSH-18 8859/1, and an undecoded byte (\u00XX) without.
  auto line_of = [&](const std::string& id) {
    for (auto& l : h.sink->lines)
      if (l.find("\"control_id\":\"" + id + "\"") != std::string::npos) return l;
    return std::string();
  };
  CHECK(line_of("C9").find("\"sending_facility\":\"H\xc3\x94PITAL\"") != std::string::npos);
  CHECK(line_of("C10").find("\"sending_facility\":\"H\\u00d4PITAL\"") != std::string::npos);
  CHECK(field(10, "processing_id") == "P");
  CHECK(field(10, "version") == "2.3");
  CHECK(field(10, "accept_ack_type") == "-");
  CHECK(field(0, "accept_ack_type") == "AL");
  CHECK(field(0, "application_ack_type") == "NE");
  size_t bad = 0;
  for (auto& a : h.events("anomaly")) bad += a["anomaly"]["name"] == "hl7.bad_escape";
  CHECK(bad == 2);
}

TEST_CASE("bare HL7: each message at its own time, ACKs paired both ways") {
  // A bare sender waits for the reply: the reply ends its message, which keeps its own time.
  const int64_t t0 = 1704110400000000;
  Harness h;
  h.feed(Dir::to_server, kAdt, t0);
  h.feed(Dir::to_client, kAck, t0 + 500000);
  h.feed(Dir::to_server, with_id(kAdt, "MSG0002"), t0 + 2000000);
  h.feed(Dir::to_client, with_id(kAck, "MSG0002"), t0 + 2500000);
  // Server-initiated: the client's ACK ends the server's message.
  h.feed(Dir::to_client, with_id(kAdt, "MSG0003"), t0 + 3000000);
  h.feed(Dir::to_server, with_id(kAck, "MSG0003"), t0 + 3300000);
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 6);
  const int64_t sent[] = {0, 500000, 2000000, 2500000, 3000000, 3300000};
  for (size_t i = 0; i < ev.size(); ++i) {
    INFO("event " << i);
    CHECK(ev[i]["hl7"]["transport"] == "tcp");
    CHECK(!ev[i]["hl7"].contains("complete"));
    CHECK(ev[i]["ts"] == format_rfc3339(Timestamp{t0 + sent[i]}));
  }
  CHECK(ev[1]["hl7"]["ack"]["matched"] == true);
  CHECK(ev[1]["hl7"]["ack"]["latency_us"] == 500000);
  CHECK(ev[3]["hl7"]["ack"]["latency_us"] == 500000);
  CHECK(ev[5]["hl7"]["ack"]["latency_us"] == 300000);
  // One missing start block per direction's run of bare messages; nothing unterminated.
  std::vector<std::string> names;
  for (auto& e : h.events("anomaly")) names.push_back(e["anomaly"]["name"]);
  CHECK(names == std::vector<std::string>{"mllp.missing_start_block", "mllp.missing_start_block"});
  CHECK(h.out.counters().get("hl7.ack.unmatched") == 0);
  CHECK(h.out.counters().get("hl7.unacked") == 0);
}

TEST_CASE("bare HL7: a message keeps the time of its last byte when the next header comes a byte at a time") {
  // The second message's "MSH" arrives as M, S, H five seconds later: the first message still
  // carries its own time, not that of the M or S that came before the header was whole.
  const int64_t t0 = 1704110400000000;
  Harness h;
  h.feed(Dir::to_server, kAdt, t0);
  std::string next = with_id(kAdt, "MSG0002");
  h.feed(Dir::to_server, next.substr(0, 1), t0 + 5000000);
  h.feed(Dir::to_server, next.substr(1, 1), t0 + 6000000);
  h.feed(Dir::to_server, next.substr(2), t0 + 7000000);
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 3);  // the two messages, then the unacked summary at the end
  CHECK(ev[0]["ts"] == format_rfc3339(Timestamp{t0}));
  CHECK(ev[1]["ts"] == format_rfc3339(Timestamp{t0 + 7000000}));
  CHECK(ev[2]["hl7"]["unacked"][0]["sent"] == format_rfc3339(Timestamp{t0}));
}

TEST_CASE("bare HL7: messages sent back to back are split at each MSH") {
  // 200 ADTs with no reply in between, in 1460-byte segments, then their ACKs: every message is
  // its own event and every ACK is matched.
  Harness h;
  std::string c2s, s2c;
  for (int i = 0; i < 200; ++i) {
    c2s += with_id(kAdt, std::string("M").append(std::to_string(i)));
    s2c += with_id(kAck, std::string("M").append(std::to_string(i)));
  }
  for (size_t p = 0; p < c2s.size(); p += 1460) h.feed(Dir::to_server, std::string_view(c2s).substr(p, 1460));
  for (size_t p = 0; p < s2c.size(); p += 1460) h.feed(Dir::to_client, std::string_view(s2c).substr(p, 1460));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 400);
  CHECK(ev[199]["hl7"]["control_id"] == "M199");
  CHECK(ev[399]["hl7"]["ack"]["matched"] == true);
  CHECK(h.out.counters().get("hl7.ack.unmatched") == 0);
  CHECK(h.events("anomaly").size() == 2);  // the two missing start blocks
}

TEST_CASE("bare HL7: after a gap, framing resumes at the next MSH") {
  Harness h;
  h.feed(Dir::to_server, kAdt + kOru.substr(0, 40));
  h.d->on_gap(Dir::to_server, 100, h.ctx);
  h.off[0] += 100;
  h.feed(Dir::to_server, "tail of the lost message\r" + with_id(kAdt, "MSG0002"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 3);
  CHECK(ev[0]["hl7"]["control_id"] == "MSG0001");
  CHECK(ev[1]["hl7"]["control_id"] == "MSG0002");
  CHECK(ev[2]["hl7"]["kind"] == "unacked");
}

// A bare message ends when the peer answers. If later bytes of its stream wait behind a hole
// (the reassembler holds them, the lost segment not yet declared a gap), it may have been cut
// there: it is delivered as incomplete and reported unterminated, as an MLLP frame open at a gap.
TEST_CASE("bare HL7: a message the peer answers while its later bytes wait behind a hole is incomplete") {
  for (bool mllp_framed : {false, true}) {
    INFO((mllp_framed ? "mllp" : "bare"));
    std::string m = mllp_framed ? mllp(kAdt) : kAdt;
    Harness h;
    h.feed(Dir::to_server, m.substr(0, 120));
    h.ctx.set_behind_hole(Dir::to_server, true);  // what follows those 120 bytes is held past a hole
    h.feed(Dir::to_client, mllp_framed ? mllp(kAck) : kAck);
    h.ctx.set_behind_hole(Dir::to_server, false);
    h.d->on_gap(Dir::to_server, 40, h.ctx);
    h.off[0] += 40;
    h.feed(Dir::to_server, m.substr(160));
    h.end();
    std::vector<std::string> anomalies;
    for (auto& e : h.events("anomaly")) anomalies.push_back(e["anomaly"]["name"]);
    CHECK(std::count(anomalies.begin(), anomalies.end(), "mllp.unterminated_frame") == 1);
    for (auto& e : h.events("hl7")) {
      if (e["hl7"]["kind"] != "message" || e["hl7"]["direction"] != "to_server") continue;
      CHECK(e["hl7"]["complete"] == false);  // MLLP drops the cut frame: no event at all
    }
    if (!mllp_framed) {
      auto ev = h.events("hl7");
      REQUIRE(ev.size() >= 2);
      CHECK(ev[0]["hl7"]["message_type"] == "ADT");
      CHECK(ev[0]["hl7"]["complete"] == false);
      CHECK(ev[0]["hl7"]["offset"] == 0);
    }
  }
  // Without a hole the answered message is complete.
  Harness h;
  h.feed(Dir::to_server, kAdt);
  h.feed(Dir::to_client, kAck);
  h.end();
  CHECK(!h.events("hl7").at(0)["hl7"].contains("complete"));
  for (auto& e : h.events("anomaly")) CHECK(e["anomaly"]["name"] == "mllp.missing_start_block");
}

TEST_CASE("every split point of a bare stream gives the same events") {
  std::string c2s = kAdt + kOru + "\r\n" + with_id(kAdt, "MSG0002") + "junk\r" + with_id(kAdt, "MSG0003");
  std::string s2c = kAck;
  Harness whole;
  whole.feed(Dir::to_server, c2s);
  whole.feed(Dir::to_client, s2c);
  whole.end();
  std::string want = whole.all();
  REQUIRE(whole.events("hl7").size() == 6);
  for (size_t cut = 0; cut <= c2s.size(); ++cut) {
    Harness h;
    h.feed(Dir::to_server, c2s.substr(0, cut));
    h.feed(Dir::to_server, c2s.substr(cut));
    h.feed(Dir::to_client, s2c);
    h.end();
    INFO("cut at " << cut);
    REQUIRE(h.all() == want);
  }
  Harness b;
  for (char c : c2s) b.feed(Dir::to_server, std::string_view(&c, 1));
  b.feed(Dir::to_client, s2c);
  b.end();
  CHECK(b.all() == want);
}

TEST_CASE("\\Xhh\\ escapes of an ISO 8859-1 message are converted like its literal bytes") {
  // The same name escaped, in literal ISO 8859-1 and in UTF-8: one pseudonym; text members in UTF-8.
  Harness h;
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|M\\XFC\\NSTER|RCV|RFAC|20240101||ADT^A01|C1|P|2.5|||||DE|8859/1\r"
                              "PID|1||M\\XDC\\1||M\\XFC\\LLER^J\\XDC\\RGEN\r"));
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|M\xfcNSTER|RCV|RFAC|20240101||ADT^A01|C2|P|2.5|||||DE|8859/1\r"
                              "PID|1||M\xdc" "1||M\xfcLLER^J\xdcRGEN\r"));
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|M\xc3\xbcNSTER|RCV|RFAC|20240101||ADT^A01|C3|P|2.5|||||DE|UNICODE UTF-8\r"
                              "PID|1||M\xc3\x9c" "1||M\xc3\xbcLLER^J\xc3\x9cRGEN\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 4);
  for (int i = 0; i < 3; ++i) {
    INFO("message " << i);
    CHECK(ev[i]["hl7"]["sending_facility"] == "M\xc3\xbcNSTER");
    CHECK(ev[i]["hl7"]["patient"]["name"] == ev[2]["hl7"]["patient"]["name"]);
    CHECK(ev[i]["hl7"]["patient"]["id"] == ev[2]["hl7"]["patient"]["id"]);
  }
  CHECK(ev[2]["hl7"]["patient"]["name"] == h.phi("M\xc3\xbcLLER^J\xc3\x9cRGEN"));
  CHECK(h.events("anomaly").empty());
}

TEST_CASE("explicit nulls and empty names give no pseudonym") {
  Harness h;
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|FAC|RCV|RFAC|20240101||ADT^A08|C1|P|2.5\rPID|1||\"\"||\"\"\r"
                              "ORC|NW|\"\"|\"\"\r"));
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|FAC|RCV|RFAC|20240101||ADT^A08|C2|P|2.5\rPID|1||MRN9||^\r"));
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|FAC|RCV|RFAC|20240101||ADT^A08|C3|P|2.5\rPID|1|OLD7|\"\"^^^H||DOE\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 4);
  CHECK(!ev[0]["hl7"].contains("patient"));
  CHECK(!ev[0]["hl7"].contains("order"));
  CHECK(!ev[0]["hl7"].contains("phi_fields"));
  CHECK(ev[1]["hl7"]["patient"]["id"] == h.phi("MRN9"));
  CHECK(!ev[1]["hl7"]["patient"].contains("name"));
  // A null PID-3.1 falls back to PID-2, as an empty one does.
  CHECK(ev[2]["hl7"]["patient"]["id"] == h.phi("OLD7"));
  CHECK(ev[2]["hl7"]["patient"]["name"] == h.phi("DOE"));
}

TEST_CASE("MLLP release 2 commit acknowledgments are counted, not reported") {
  Harness h;
  h.feed(Dir::to_server, mllp(kAdt));
  h.feed(Dir::to_client, "\x0b\x06\x1c\r");
  h.feed(Dir::to_client, mllp(kAck) + "\x0b\x15\x1c\r");
  h.end();
  CHECK(h.events("anomaly").empty());
  CHECK(h.events("hl7").size() == 2);
  CHECK(h.events("hl7")[1]["hl7"]["ack"]["matched"] == true);
  CHECK(h.out.counters().get("hl7.mllp_commit_acks") == 2);
}

TEST_CASE("HL7 over HTTP with LF-only header lines") {
  Harness h;
  h.feed(Dir::to_server, "POST /hl7 HTTP/1.1\nHost: lis\nContent-Type: x-application/hl7-v2+er7\nContent-Length: " +
                             std::to_string(kAdt.size()) + "\n\n" + kAdt);
  h.feed(Dir::to_client, "HTTP/1.1 200 OK\nContent-Type: x-application/hl7-v2+er7\nContent-Length: " +
                             std::to_string(kAck.size()) + "\n\n" + kAck);
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["hl7"]["transport"] == "http");
  CHECK(ev[0]["hl7"]["control_id"] == "MSG0001");
  CHECK(ev[1]["hl7"]["ack"]["matched"] == true);
  CHECK(h.events("anomaly").empty());
}

TEST_CASE("names in every MSH-18 character set are read as UTF-8 before pseudonymising") {
  // Made-up patients, each sent in a legacy character set; the pseudonym is that of the UTF-8
  // name, as the DICOM dissector gives it.
  struct Case { std::string msh18, name, utf8; };
  const Case cases[] = {
      {"8859/1", "M\xdcLLER^HANS", "M\xc3\x9cLLER^HANS"},
      {"8859/9", "M\xdcLLER^HANS", "M\xc3\x9cLLER^HANS"},  // byte-identical to the 8859/1 one
      {"8859/9", "\xd0\xdcL^AY\xdd", "\xc4\x9e\xc3\x9cL^AY\xc4\xb0"},
      {"8859/5", "\xb8\xb2\xb0\xbd\xbe\xb2^\xb8\xb2\xb0\xbd", "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d\xd0\x9e\xd0\x92^\xd0\x98\xd0\x92\xd0\x90\xd0\x9d"},
      {"ISO IR144", "\xb8\xb2\xb0\xbd\xbe\xb2^\xb8\xb2\xb0\xbd", "\xd0\x98\xd0\x92\xd0\x90\xd0\x9d\xd0\x9e\xd0\x92^\xd0\x98\xd0\x92\xd0\x90\xd0\x9d"},
      {"8859/7", "\xc1\xc8\xc7\xcd\xc1^\xcc\xc1\xd1\xc9\xc1", "\xce\x91\xce\x98\xce\x97\xce\x9d\xce\x91^\xce\x9c\xce\x91\xce\xa1\xce\x99\xce\x91"},
      {"8859/2", "\xa3\xd3" "D\xac^\xaf" "ANETA", "\xc5\x81\xc3\x93" "D\xc5\xb9^\xc5\xbb" "ANETA"},
      {"8859/15", "\xa6" "A\xa4^X", "\xc5\xa0" "A\xe2\x82\xac^X"},
      {"KS X 1001", "\xb1\xe8^\xbc\xf8\xc0\xda", "\xea\xb9\x80^\xec\x88\x9c\xec\x9e\x90"},
      {"GB 18030-2000", "\xd5\xc5^\xd0\xa1\xb6\xab", "\xe5\xbc\xa0^\xe5\xb0\x8f\xe4\xb8\x9c"},
      {"UNICODE UTF-8", "\xe6\x9d\x8e^\xe6\x98\x8e", "\xe6\x9d\x8e^\xe6\x98\x8e"},
      // Japanese: ASCII by default, JIS X 0208 behind ESC $ B (MSH-18 "~ISO IR87").
      {"~ISO IR87", "\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e"},
      {"ISO IR87", "\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", "\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e"},
      // Two-byte characters with a delimiter byte: JIS 0x385E (the component separator), JIS
      // 0x4B7C (the field separator), BIG-5 0xB35C (the escape character).
      {"~ISO IR87", "\x1b$B8^==Mr\x1b(B^\x1b$BB@O:\x1b(B",
       "\xe4\xba\x94\xe5\x8d\x81\xe5\xb5\x90^\xe5\xa4\xaa\xe9\x83\x8e"},
      {"~ISO IR87", "\x1b$BK|ED\x1b(B^\x1b$BB@O:\x1b(B", "\xe4\xb8\x87\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e"},
      {"BIG-5", "\xb3\\^\xa4\x6a\xa4\xe5", "\xe8\xa8\xb1^\xe5\xa4\xa7\xe6\x96\x87"},
  };
  Harness h;
  int n = 0;
  for (auto& c : cases)
    h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|C" + std::to_string(++n) +
                                "|P|2.5|||||JP|" + c.msh18 + "\rPID|1||ID1||" + c.name + "\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() >= std::size(cases));
  for (size_t i = 0; i < std::size(cases); ++i) {
    INFO(cases[i].msh18 << " " << cases[i].utf8);
    CHECK(ev[i]["hl7"]["patient"]["name"] == h.phi(cases[i].utf8));
  }
  CHECK(h.events("anomaly").empty());
}

TEST_CASE("\\C..\\ and \\M..\\ switch character sets as the ISO 2022 escape sequences they stand for") {
  // A made-up Japanese name sent in ISO 2022 mode (literal ESC $ B / ESC ( B) and in HL7 escape
  // mode (\M2442\ / \C2842\), with and without MSH-18 naming the set; a German one switched to
  // ISO 8859-1 by \C2D41\ and written literally; an ASCII one with a redundant switch. Each name
  // gives one pseudonym, that of its UTF-8 text.
  const std::string yamada_taro = "\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e";
  const std::string mueller = "M\xc3\x9cLLER^J\xc3\x96RG";
  struct Case { std::string msh18, name, utf8; };
  const Case cases[] = {
      {"~ISO IR87", "\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B", yamada_taro},
      {"~ISO IR87", "\\M2442\\;3ED\\C2842\\^\\M2442\\B@O:\\C2842\\", yamada_taro},
      {"ISO IR6~ISO IR87", "\\M2442\\;3ED\\C2842\\^\\M2442\\B@O:\\C2842\\", yamada_taro},
      {"", "\\M2442\\;3ED\\C2842\\^\\M2442\\B@O:\\C2842\\", yamada_taro},
      {"UNICODE UTF-8", "\\M2442\\;3ED\\C2842\\^\\M2442\\B@O:\\C2842\\", yamada_taro},
      {"8859/1", "M\xdcLLER^J\xd6RG", mueller},
      {"8859/1", "M\\C2D41\\\xdcLLER^J\\XD6\\RG", mueller},
      {"", "M\\C2D41\\\\XDC\\LLER^J\\C2D41\\\\XD6\\RG", mueller},
      {"", "\\C2842\\SMITH^JOHN", "SMITH^JOHN"},
      // A switch to a set that is not decoded: read without it.
      {"", "\\C2D59\\SMITH^JOHN", "SMITH^JOHN"},
  };
  Harness h;
  int n = 0;
  for (auto& c : cases)
    h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|C" + std::to_string(++n) +
                                "|P|2.5|||||JP|" + c.msh18 + "\rPID|1||ID1||" + c.name + "\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() >= std::size(cases));
  for (size_t i = 0; i < std::size(cases); ++i) {
    INFO(i << ": " << cases[i].msh18 << " " << cases[i].name);
    CHECK(ev[i]["hl7"]["patient"]["name"] == h.phi(cases[i].utf8));
  }
  CHECK(h.events("anomaly").empty());
}

TEST_CASE("a malformed character set switch is a bad escape") {
  Harness h;
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|C1|P|2.5\rPID|1||ID1||\\M24\\DOE^JANE\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(!ev.empty());
  CHECK(ev[0]["hl7"]["patient"]["name"] == h.phi("DOE^JANE"));
  auto an = h.events("anomaly");
  REQUIRE(an.size() == 1);
  CHECK(an[0]["anomaly"]["name"] == "hl7.bad_escape");
}

TEST_CASE("text a character set does not define is kept as sent, without harm") {
  Harness h;
  // ISO 8859-6 leaves 0xA1 undefined; a JIS X 0208 character cut short; an unknown escape.
  h.feed(Dir::to_server, mllp("MSH|^~\\&|S\xa1ND|SFAC|RCV|RFAC|20240101||ADT^A01|C1|P|2.5|||||JP|8859/6\r"
                              "PID|1||ID1||A\xa1" "B^C\r"));
  h.feed(Dir::to_server, mllp("MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|C2|P|2.5|||||JP|~ISO IR87\r"
                              "PID|1||ID1||\x1b$B;\x1b(B^\x1b%GX\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() >= 2);
  CHECK(ev[0]["hl7"]["patient"]["name"] == h.phi("A\xa1" "B^C"));
  CHECK(ev[1]["hl7"]["patient"]["name"] == h.phi("\x1b$B;\x1b(B^\x1b%GX"));
}

TEST_CASE("picked up mid-stream: the tail of a missed message is skipped without anomaly, whole messages after it read") {
  const std::string adt = "MSH|^~\\&|SND|SFAC|RCV|RFAC|20240101||ADT^A01|C1|P|2.5\rPID|1||ID1||DOE^JANE\r";
  for (bool midstream : {false, true}) {
    Harness h;
    h.ctx.set_midstream(Dir::to_server, midstream);
    // The end of a message the capture missed, then a whole framed one.
    h.feed(Dir::to_server, "Y^UNKNOWN\rOBX|1|TX|||cut\r\x1c\r" + mllp(adt));
    h.end();
    INFO("midstream " << midstream << "\n" << h.all());
    auto ev = h.events("hl7");
    REQUIRE(ev.size() >= 1);
    CHECK(ev[0]["hl7"]["control_id"] == "C1");
    // Only a stream seen from its start has bytes outside a frame to report.
    CHECK(h.events("anomaly").empty() == midstream);
  }
  // Mid-stream HTTP: a body tail, then a request read as HL7 over HTTP.
  Harness h;
  h.ctx.set_midstream(Dir::to_server, true);
  h.feed(Dir::to_server, "tail of a body\r\nPOST /hl7 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7\r\nContent-Length: " +
                             std::to_string(adt.size()) + "\r\n\r\n" + adt);
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() >= 1);
  CHECK(ev[0]["hl7"]["control_id"] == "C1");
  CHECK(ev[0]["hl7"]["transport"] == "http");
  CHECK(h.events("anomaly").empty());
}

TEST_CASE("free text with a line break is not read as segments, for every split") {
  // OBX-5 with a raw CR, NTE-3 with an LF: the text after the break is no segment id.
  const std::string oru =
      "MSH|^~\\&|LAB|H|EHR|H|20240101||ORU^R01|L1|P|2.5\r"
      "PID|1||MRN1||ROE^ANN\r"
      "OBX|1|TX|RPT||Findings:\rRoe, Ann 1970-01-01 positive\r"
      "NTE|1||call sister\nMary Major 555-0100\r"
      "NTE|2||signed\rJQR\r"   // three initials alone on a line: no segment
      "ZDS\r";                  // a Z-segment without fields: a segment
  for (bool bare : {false, true}) {
    INFO((bare ? "bare" : "mllp"));
    const std::string c2s = bare ? oru : mllp(oru);
    Harness whole;
    whole.feed(Dir::to_server, c2s);
    whole.end();
    auto ev = whole.events("hl7");
    REQUIRE(!ev.empty());
    CHECK(ev[0]["hl7"]["segments"] == json::array({"MSH", "PID", "OBX", "NTE", "ZDS"}));
    CHECK(ev[0]["hl7"]["segment_count"] == 6);
    const std::string want = whole.all();
    CHECK(want.find("JQR") == std::string::npos);
    CHECK(want.find("Roe") == std::string::npos);
    CHECK(want.find("Mary") == std::string::npos);
    for (size_t cut = 0; cut <= c2s.size(); ++cut) {
      Harness h;
      h.feed(Dir::to_server, c2s.substr(0, cut));
      h.feed(Dir::to_server, c2s.substr(cut));
      h.end();
      INFO("cut at " << cut);
      REQUIRE(h.all() == want);
    }
  }
}

TEST_CASE("messages inside a batch do not take places in the ACK table") {
  Harness h;
  std::string batch = "FHS|^~\\&|A|B\rBHS|^~\\&|A|B\r";
  for (int i = 0; i < 300; ++i) batch += with_id(kAdt, "B" + std::to_string(i));
  batch += "BTS|300\rFTS|1\r";
  h.feed(Dir::to_server, mllp(batch));
  // A receiver that acknowledges a message of the batch by itself.
  std::string batch_ack = kAck;
  batch_ack.replace(batch_ack.find("MSA|AA|MSG0001"), 14, "MSA|AA|B299");
  h.feed(Dir::to_client, mllp(batch_ack));
  for (int i = 0; i < 3; ++i) {
    h.feed(Dir::to_server, mllp(with_id(kAdt, "N" + std::to_string(i))));
    std::string ack = kAck;
    ack.replace(ack.find("MSA|AA|MSG0001"), 14, "MSA|AA|N" + std::to_string(i));
    h.feed(Dir::to_client, mllp(ack));
  }
  h.end();
  size_t acks = 0;
  for (auto& e : h.events("hl7")) {
    if (!e["hl7"].contains("ack")) continue;
    ++acks;
    CHECK(e["hl7"]["ack"]["matched"] == true);
  }
  CHECK(acks == 4);
  CHECK(h.out.counters().get("hl7.ack.table_full") == 0);
  CHECK(h.out.counters().get("hl7.unacked") == 0);
}

TEST_CASE("an ACK that comes before its message, held behind a lost segment, pairs when it is released") {
  Harness h;
  const int64_t t0 = 1704110400000000;
  std::string m1 = mllp(with_id(kAdt, "GB1"));
  std::string ack1 = kAck;
  ack1.replace(ack1.find("MSA|AA|MSG0001"), 14, "MSA|AA|GB1");
  // The client's first message loses a segment; GB1 waits behind the hole while its ACK comes.
  std::string m0 = mllp(kAdt);
  h.feed(Dir::to_server, m0.substr(0, 60), t0);
  h.ctx.set_behind_hole(Dir::to_server, true);
  h.feed(Dir::to_client, mllp(ack1), t0 + 3000000);
  // The reassembler gives up on the hole: GB1 comes late, with the time of its packet.
  h.d->on_gap(Dir::to_server, 30, h.ctx);
  h.off[0] += 30;
  h.ctx.set_late(Dir::to_server, true);
  h.feed(Dir::to_server, m0.substr(90), t0 + 1000000);
  h.feed(Dir::to_server, m1, t0 + 2000000);
  h.ctx.set_late(Dir::to_server, false);
  h.ctx.set_behind_hole(Dir::to_server, false);
  h.end();
  bool seen = false;
  for (auto& e : h.events("hl7")) {
    CHECK(e["hl7"]["kind"] == "message");
    if (!e["hl7"].contains("ack")) continue;
    seen = true;
    CHECK(e["hl7"]["ack"]["matched"] == true);
    CHECK(e["hl7"]["ack"]["latency_us"] == 1000000);
    CHECK(e["ts"] == "2024-01-01T12:00:03.000000Z");
  }
  CHECK(seen);
  CHECK(h.out.counters().get("hl7.ack.unmatched") == 0);
  CHECK(h.out.counters().get("hl7.unacked") == 0);
  CHECK(h.out.counters().get("hl7.messages") == 2);

  // An ACK held for a message that never comes is reported unmatched once the other side has
  // nothing behind a hole, with its own time.
  Harness u;
  u.feed(Dir::to_server, m0.substr(0, 60), t0);
  u.ctx.set_behind_hole(Dir::to_server, true);
  u.feed(Dir::to_client, mllp(ack1), t0 + 3000000);
  u.ctx.set_behind_hole(Dir::to_server, false);
  u.feed(Dir::to_client, mllp(kAck), t0 + 4000000);
  u.end();
  std::vector<json> ev;
  for (auto& e : u.events("hl7"))
    if (e["hl7"].contains("ack")) ev.push_back(e);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0]["hl7"]["ack"]["control_id"] == "GB1");
  CHECK(ev[0]["hl7"]["ack"]["matched"] == false);
  CHECK(ev[0]["ts"] == "2024-01-01T12:00:03.000000Z");
  CHECK(u.out.counters().get("hl7.ack.unmatched") == 2);
}

TEST_CASE("a commit ACK then an application ACK, and two ACKs of a resent message, all pair") {
  Harness h;
  std::string enh = kAdt;
  enh.replace(enh.find("|P|2.5.1\r"), 9, "|P|2.5.1|||AL|AL\r");
  std::string ca = kAck, aa = kAck;
  ca.replace(ca.find("MSA|AA"), 6, "MSA|CA");
  h.feed(Dir::to_server, mllp(enh));
  h.feed(Dir::to_client, mllp(ca), 1704110400001000);
  h.feed(Dir::to_client, mllp(aa), 1704110400005000);
  // A message sent twice, acknowledged twice.
  std::string m2 = with_id(kAdt, "MSG0002"), a2 = kAck;
  a2.replace(a2.find("MSA|AA|MSG0001"), 14, "MSA|AA|MSG0002");
  h.feed(Dir::to_server, mllp(m2), 1704110400010000);
  h.feed(Dir::to_server, mllp(m2), 1704110400020000);
  h.feed(Dir::to_client, mllp(a2), 1704110400021000);
  h.feed(Dir::to_client, mllp(a2), 1704110400022000);
  h.end();
  std::vector<json> acks;
  for (auto& e : h.events("hl7"))
    if (e["hl7"].contains("ack")) acks.push_back(e["hl7"]["ack"]);
  REQUIRE(acks.size() == 4);
  for (auto& a : acks) CHECK(a["matched"] == true);
  CHECK(acks[0]["code"] == "CA");
  CHECK(!acks[0].contains("earlier_code"));
  CHECK(acks[1]["code"] == "AA");
  CHECK(acks[1]["earlier_code"] == "CA");
  CHECK(acks[1]["latency_us"] == 5000);
  CHECK(acks[3]["earlier_code"] == "AA");
  CHECK(h.out.counters().get("hl7.ack.unmatched") == 0);
  CHECK(h.out.counters().get("hl7.duplicate_control_id") == 1);
}

TEST_CASE("a byte order mark before MSH is skipped; PHI outside a message counts for the flow") {
  CHECK(probe_str("\x0b\xEF\xBB\xBFMSH|^~\\&|A") == Probe::yes);
  CHECK(probe_str("\x0b\xEF\xBB") == Probe::need_more);
  CHECK(probe_str("\xEF\xBB\xBFMSH|^~\\&|APP") == Probe::yes);
  CHECK(probe_str("\xEF\xBB\xBFGET / HTTP/1.1\r\n") == Probe::no);
  for (bool framed : {true, false}) {
    Harness h;
    h.feed(Dir::to_server, framed ? "\x0b\xEF\xBB\xBF" + kAdt + "\x1c\r" : "\xEF\xBB\xBF" + kAdt);
    h.feed(Dir::to_client, mllp(kAck));
    h.end();
    auto ev = h.events("hl7");
    REQUIRE(ev.size() == 2);
    CHECK(ev[0]["hl7"]["control_id"] == "MSG0001");
    CHECK(ev[1]["hl7"]["ack"]["matched"] == true);
  }
  // A frame of only a PID, and one whose header is not a segment id: no message, but the PHI
  // went in clear.
  Harness h;
  h.feed(Dir::to_server, mllp("PID|1||MRN9^^^H^MR||ROE^ANN||19700101\r"));
  h.feed(Dir::to_server, mllp("msh|^~\\&|A|B|C|D|2024||ADT^A01|Y2|P|2.5\rNK1|1|ROE^BOB\rZPI|secret\r"));
  h.end();
  CHECK(h.events("hl7").empty());
  CHECK(h.facts.phi_fields == std::vector<std::string>{"PID-3", "PID-5", "PID-7", "NK1-2", "Z-segment"});
  CHECK(h.all().find("ROE") == std::string::npos);
}

TEST_CASE("HTTP with LF-only header lines is recognised by the probe") {
  CHECK(probe_str("POST /x HTTP/1.1\nHost: a\nContent-Type: text/plain\n\nMSH|^~\\&|") == Probe::yes);
  CHECK(probe_str("POST /x HTTP/1.1\nHost: a\nContent-Type: text/plain\r\n\r\nMSH|^~\\&|") == Probe::yes);
  CHECK(probe_str("POST /x HTTP/1.1\nHost: a\nContent-Type: text/plain\n\n{\"a\":1}") == Probe::no);
  CHECK(probe_str("POST /x HTTP/1.1\nHost: a\n") == Probe::need_more);
}

TEST_CASE("a bare message followed by an MLLP frame is complete") {
  Harness h;
  h.feed(Dir::to_server, kAdt + mllp(with_id(kAdt, "MSG0002")));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() >= 2);
  CHECK(ev[0]["hl7"]["transport"] == "tcp");
  CHECK(!ev[0]["hl7"].contains("complete"));
  CHECK(ev[1]["hl7"]["transport"] == "mllp");
  for (auto& e : h.events("anomaly")) CHECK(e["anomaly"]["name"] == "mllp.missing_start_block");
}

TEST_CASE("a payload with no message and no segment is reported as such") {
  Harness h;
  h.feed(Dir::to_server, mllp("hello world"));
  h.feed(Dir::to_server, mllp("PID|1||X"));
  h.end();
  std::vector<std::string> names;
  for (auto& e : h.events("anomaly")) names.push_back(e["anomaly"]["name"]);
  CHECK(names == std::vector<std::string>{"hl7.no_message", "hl7.segment_outside_message"});
}

TEST_CASE("an MSA-1 that is free text is not written, only counted") {
  // Some senders put a text, which may name the patient, where the acknowledgment code belongs.
  Harness h;
  h.feed(Dir::to_server, mllp(kAdt));
  h.feed(Dir::to_client, mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK^A01^ACK|A2|P|2.5.1\rMSA|Patient ZZTESTNAME unknown|MSG0001\r"));
  h.feed(Dir::to_client, mllp("MSH|^~\\&|LAB|GHH|ADT1|GHH|20240101||ACK^A01^ACK|A3|P|2.5.1\rMSA|AE|MSG0001\r"));
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 3);
  CHECK_FALSE(ev[1]["hl7"]["ack"].contains("code"));
  CHECK(ev[1]["hl7"]["ack"]["matched"] == true);
  CHECK(ev[2]["hl7"]["ack"]["code"] == "AE");
  CHECK_FALSE(ev[2]["hl7"]["ack"].contains("earlier_code"));
  CHECK(h.out.counters().get("hl7.ack.code_dropped") == 1);
  for (auto& l : h.sink->lines) CHECK(l.find("ZZTESTNAME") == std::string::npos);
}

TEST_CASE("the PHI of a message whose encoding characters are unusable counts for the flow") {
  for (bool framed : {true, false}) {
    Harness h;
    const std::string m = "MSH|^~\\&&|A|B|C|D|2024||ADT^A01|Y1|P|2.5\rPID|1||MRN9^^^H^MR||ROE^ANN||19700101\rZPI|x\r";
    h.feed(Dir::to_server, framed ? mllp(m) : m);
    h.end();
    CHECK(h.events("hl7").empty());
    CHECK(h.out.counters().get("hl7.messages") == 1);
    CHECK(h.facts.phi_fields == std::vector<std::string>{"PID-3", "PID-5", "PID-7", "Z-segment"});
    CHECK(h.all().find("ROE") == std::string::npos);
  }
}

TEST_CASE("bare HL7 picked up mid-stream: the messages after the tail are read and paired") {
  auto adt = [](const std::string& id) {
    return "MSH|^~\\&|SA|SF|RA|RF|20240101||ADT^A01|" + id + "|P|2.5\rPID|1||MRN9^^^H||ROE^ANN||19700101|F\r";
  };
  auto ack = [](const std::string& id) { return "MSH|^~\\&|RA|RF|SA|SF|20240101||ACK^A01|A" + id + "|P|2.5\rMSA|AA|" + id + "\r"; };
  Harness h;
  h.ctx.set_midstream(Dir::to_server, true);
  h.ctx.set_midstream(Dir::to_client, true);
  h.feed(Dir::to_server, adt("M0").substr(40));  // the tail of a message begun before the capture
  h.feed(Dir::to_client, ack("M0"));
  for (std::string id : {"M1", "M2"}) {
    h.feed(Dir::to_server, adt(id));
    h.feed(Dir::to_client, ack(id));
  }
  h.end();
  std::vector<std::string> ids;
  for (auto& e : h.events("hl7"))
    if (e["hl7"]["direction"] == "to_server") ids.push_back(e["hl7"]["control_id"]);
  CHECK(ids == std::vector<std::string>{"M1", "M2"});
  CHECK(h.out.counters().get("hl7.ack.unmatched") == 1);  // M0's, whose message the capture missed
  CHECK(h.facts.phi_fields == std::vector<std::string>{"PID-3", "PID-5", "PID-7"});
}

TEST_CASE("enhanced mode: a message that asks for an ACK only on error is not reported unacked") {
  auto adt = [](const std::string& id, const std::string& acks) {
    return "MSH|^~\\&|SA|SF|RA|RF|20240101||ADT^A01|" + id + "|P|2.5|||" + acks + "\rPID|1||MRN9^^^H||ROE^ANN\r";
  };
  Harness h;
  h.feed(Dir::to_server, mllp(adt("E1", "ER|ER")));  // succeeded: no ACK comes
  h.feed(Dir::to_server, mllp(adt("E2", "NE|ER")));  // failed: its error ACK pairs
  h.feed(Dir::to_client, mllp("MSH|^~\\&|RA|RF|SA|SF|20240101||ACK^A01|X2|P|2.5\rMSA|AE|E2\r"));
  h.feed(Dir::to_server, mllp(adt("E3", "AL|ER")));  // asks for a commit ACK: awaited
  h.feed(Dir::to_server, mllp(adt("E4", "ER|SU")));  // asks for an application ACK on success
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 6);
  CHECK(ev[2]["hl7"]["ack"]["matched"] == true);
  auto u = ev[5]["hl7"];
  REQUIRE(u["kind"] == "unacked");
  CHECK(u["unacked_count"] == 2);
  CHECK(u["unacked"][0]["control_id"] == "E3");
  CHECK(u["unacked"][1]["control_id"] == "E4");
}

TEST_CASE("picked up mid-stream: segments without any message start are passed over") {
  Harness h;
  h.ctx.set_midstream(Dir::to_server, true);
  h.feed(Dir::to_server, "OBX|1|TX|||more of a long report\r");
  h.feed(Dir::to_server, "OBX|2|TX|||and more\r");
  h.feed(Dir::to_server, "MSH|^~\\&|SA|SF|RA|RF|20240101||ADT^A01|B1|P|2.5\rPID|1||MRN9\r");
  h.end();
  auto ev = h.events("hl7");
  REQUIRE(ev.size() == 2);  // the message, and it unacknowledged
  CHECK(ev[0]["hl7"]["control_id"] == "B1");
}

TEST_CASE("an ACK of a batch or file as a whole pairs by its control id") {
  for (std::string id : {"BATCH77", "FILE5"}) {
    Harness h;
    h.feed(Dir::to_server, mllp("FHS|^~\\&|A|B|C|D|20240101||||FILE5\rBHS|^~\\&|A|B|C|D|20240101||||BATCH77\r" + kAdt +
                                "BTS|1\rFTS|1\r"));
    h.feed(Dir::to_client, mllp("MSH|^~\\&|C|D|A|B|20240101||ACK|X1|P|2.5\rMSA|AA|" + id + "\r"), 1704110400250000);
    h.end();
    auto ev = h.events("hl7");
    REQUIRE(ev.size() == 2);
    CHECK(ev[1]["hl7"]["ack"]["matched"] == true);
    CHECK(ev[1]["hl7"]["ack"]["latency_us"] == 250000);
    CHECK_FALSE(ev[1]["hl7"]["ack"].contains("acked_type"));
    CHECK(h.out.counters().get("hl7.ack.unmatched") == 0);
  }
}

TEST_CASE("a content type names HL7 by its media type, not by a parameter") {
  CHECK(probe_str("POST /fhir HTTP/1.1\r\nContent-Type: application/fhir+json; profile=http://hl7.org/fhir/P\r\n\r\n{\"a\":1}") ==
        Probe::no);
  CHECK(probe_str("POST /v2 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7; charset=utf-8\r\n\r\n") == Probe::yes);
  // A FHIR body on a connection claimed for HL7 is let be.
  Harness h;
  const std::string fhir = "{\"resourceType\":\"Patient\"}";
  h.feed(Dir::to_server, "POST /hl7 HTTP/1.1\r\nContent-Type: x-application/hl7-v2+er7\r\nContent-Length: " +
                             std::to_string(kAdt.size()) + "\r\n\r\n" + kAdt);
  h.feed(Dir::to_server, "POST /fhir HTTP/1.1\r\nContent-Type: application/fhir+json; profile=http://hl7.org/fhir/P\r\n"
                         "Content-Length: " + std::to_string(fhir.size()) + "\r\n\r\n" + fhir);
  h.end();
  CHECK(h.events("anomaly").empty());
  CHECK(h.out.counters().get("hl7.http_bodies") == 1);
}

TEST_CASE("an ACK held behind a lost segment is read in its character set once, as one not held") {
  // A BIG-5 message (decoded whole: a byte of a character may equal a delimiter) and its ACK,
  // which comes while the message waits behind a hole; made-up names.
  const std::string app = "\xb3\\\xa4\x6a";  // BIG-5: two characters, the first with a backslash byte
  const std::string msg = "MSH|^~\\&|" + app + "|SFAC|RCV|RFAC|20240101||ADT^A01|B1|P|2.5|||||TW|BIG-5\rPID|1||ID1||X^Y\r";
  const std::string ack = "MSH|^~\\&|" + app + "|RFAC|SND|SFAC|20240101||ACK^A01|AB1|P|2.5|||||TW|BIG-5\rMSA|AA|B1\r";
  const int64_t t0 = 1704110400000000;
  Harness h;
  h.feed(Dir::to_server, "\x0bMSH|", t0);
  h.ctx.set_behind_hole(Dir::to_server, true);
  h.feed(Dir::to_client, mllp(ack), t0 + 2000000);
  h.d->on_gap(Dir::to_server, 100, h.ctx);
  h.off[0] += 100;
  h.ctx.set_behind_hole(Dir::to_server, false);
  h.feed(Dir::to_server, mllp(msg), t0 + 1000000);
  h.end();
  Harness n;  // the same ACK, not held
  n.feed(Dir::to_server, mllp(msg), t0 + 1000000);
  n.feed(Dir::to_client, mllp(ack), t0 + 2000000);
  n.end();
  auto held = h.events("hl7"), plain = n.events("hl7");
  REQUIRE(held.size() >= 2);
  REQUIRE(plain.size() >= 2);
  CHECK(h.out.counters().get("hl7.ack.held") == 1);
  CHECK(plain[1]["hl7"]["sending_application"] == "\xe8\xa8\xb1\xe5\xa4\xa7");
  CHECK(held[1]["hl7"]["ack"]["matched"] == true);
  CHECK(held[1]["hl7"]["sending_application"] == plain[1]["hl7"]["sending_application"]);
}

TEST_CASE("picked up mid-stream: the first message start after a tail is probed") {
  auto b = [](std::string_view s) { return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()); };
  const std::string tail = "5|P|2.5\rPID|1||X\r\x1c\r";
  CHECK(hl7::midstream_probe(b(tail + mllp(kAdt)), Dir::to_server) == Probe::yes);
  CHECK(hl7::midstream_probe(b(tail + kAdt), Dir::to_server) == Probe::yes);   // bare, at a line start
  CHECK(hl7::midstream_probe(b(tail + "\x0bMS"), Dir::to_server) == Probe::need_more);
  CHECK(hl7::midstream_probe(b(tail), Dir::to_server) == Probe::no);
  CHECK(hl7::midstream_probe(b("xxMSH|^~\\&|not at a line start"), Dir::to_server) == Probe::no);
  // A later delivery of a watched direction may begin an MLLP frame or a bare message.
  CHECK(hl7::later_probe(b(mllp(kAdt)), Dir::to_server) == Probe::yes);
  CHECK(hl7::later_probe(b(kAdt), Dir::to_server) == Probe::yes);
  CHECK(hl7::later_probe(b("MZ stuff"), Dir::to_server) == Probe::no);
}

namespace {
using http_test::deflated;
std::string hex(size_t n) {
  char b[16];
  snprintf(b, sizeof b, "%zx", n);
  return b;
}
std::string coded_post(const std::string& headers, const std::string& body) {
  return "POST /hl7 HTTP/1.1\r\nHost: lis\r\n" + headers + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}
}  // namespace

TEST_CASE("HL7 over HTTP: a gzip or deflate body is read as its text, its PHI counted as in clear") {
  const std::string typed = "Content-Type: x-application/hl7-v2+er7\r\n";
  const std::string gz = deflated(kAdt, 31);
  struct Case {
    const char* name;
    std::string request;
  };
  const Case cases[] = {
      {"Content-Encoding gzip", coded_post(typed + "Content-Encoding: gzip\r\n", gz)},
      {"Content-Encoding x-gzip, untyped", coded_post("Content-Type: application/octet-stream\r\nContent-Encoding: x-gzip\r\n", gz)},
      {"Content-Encoding deflate (zlib), untyped", coded_post("Content-Encoding: deflate\r\n", deflated(kAdt, 15))},
      {"Content-Encoding deflate (raw)", coded_post(typed + "Content-Encoding: deflate\r\n", deflated(kAdt, -15))},
      {"Transfer-Encoding gzip, chunked, untyped",
       "POST /hl7 HTTP/1.1\nHost: lis\nTransfer-Encoding: gzip, chunked\n\n" + hex(gz.size()) + "\n" + gz + "\n0\n\n"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK(probe_str(c.request) == Probe::yes);
    for (size_t cut = 0; cut < c.request.size(); cut += 11) {
      Harness h;
      h.feed(Dir::to_server, c.request.substr(0, cut));
      h.feed(Dir::to_server, c.request.substr(cut));
      h.end();
      auto ev = h.events("hl7");
      REQUIRE(ev.size() == 2);  // the message, then the unacked one
      CHECK(ev[0]["hl7"]["transport"] == "http");
      CHECK(ev[0]["hl7"]["control_id"] == "MSG0001");
      CHECK(ev[0]["hl7"]["patient"]["id"] == h.phi("PAT000123"));
      CHECK(h.events("anomaly").empty());
      CHECK(h.all().find("PAT000123") == std::string::npos);
    }
  }
  SECTION("the probe judges an untyped body by the text its first bytes inflate to") {
    const std::string untyped = coded_post("Content-Encoding: gzip\r\n", gz);
    CHECK(probe_str(untyped.substr(0, untyped.size() - gz.size() + 12)) == Probe::need_more);
    CHECK(probe_str(coded_post("Content-Encoding: gzip\r\n", deflated("{\"json\": 1}", 31))) == Probe::no);
    CHECK(probe_str(coded_post("Content-Encoding: br\r\n", gz)) == Probe::no);
    CHECK(probe_str(coded_post("Content-Encoding: gzip\r\n", kAdt)) == Probe::no);
  }
  SECTION("another coding, or data that does not inflate, is reported for an HL7 body only") {
    Harness h;
    h.feed(Dir::to_server, coded_post(typed + "Content-Encoding: br\r\n", gz));
    h.feed(Dir::to_server, coded_post(typed + "Content-Encoding: gzip\r\n", gz.substr(0, gz.size() / 2)));
    h.feed(Dir::to_server, coded_post("Content-Type: text/html\r\nContent-Encoding: br\r\n", gz));
    h.feed(Dir::to_server, coded_post(typed + "Content-Encoding: gzip\r\n", gz));
    h.end();
    CHECK(h.events("hl7").size() == 2);
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 2);
    CHECK(an[0]["anomaly"]["name"] == "http.undecodable_body");
    CHECK(an[1]["anomaly"]["name"] == "http.undecodable_body");
  }
  SECTION("a body that inflates past a body's cap is dropped") {
    Harness h;
    std::string big = kAdt + "NTE|1||" + std::string(5u << 20, 'x') + "\r";
    const std::string bomb = deflated(big, 31);
    REQUIRE(bomb.size() < 64 * 1024);
    h.feed(Dir::to_server, coded_post("Content-Encoding: gzip\r\n", bomb));
    h.feed(Dir::to_server, coded_post(typed + "Content-Encoding: gzip\r\n", gz));
    h.end();
    CHECK(h.events("hl7").size() == 2);
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 1);
    CHECK(an[0]["anomaly"]["name"] == "http.body_too_large");
  }
}
