#include <catch2/catch.hpp>
#include <zlib.h>

#include "dissectors/dicom/dicom_dissector.h"
#include "dissectors/dicom/dimse.h"
#include "dissectors/dicom/test/builder.h"
#include "dissectors/dicom/test/harness.h"

using namespace dtest;
using medmon::Dir;
using nlohmann::json;

namespace {

struct Stream {
  std::vector<std::pair<Dir, Bytes>> parts;  // in wire order
  void add(Dir d, Bytes b) { parts.emplace_back(d, std::move(b)); }
};

Assoc store_assoc() {
  Assoc a;
  a.pcs.push_back({1, kCtImage, {kExplicitLe, kImplicit}, 0, kExplicitLe});
  a.pcs.push_back({3, kCtImage, {kImplicit}, 0, kImplicit});
  a.pcs.push_back({5, kVerification, {kImplicit}, 3, ""});
  return a;
}

// A full association: echo, two C-STOREs (explicit LE split into several PDVs, implicit LE),
// release.
Stream store_stream(size_t max_frag = 4000, size_t pixels = 60000) {
  Stream s;
  Assoc a = store_assoc();
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  Cmd st;
  st.field = 0x0001; st.msg_id = 1; st.sop_class = kCtImage; st.sop_instance = "1.2.3.4.5.6.7.8.9"; st.dataset = true;
  Bytes ds = ct_dataset(Ts::explicit_le, pixels);
  s.add(Dir::to_server, message(1, command(st), &ds, max_frag));
  Cmd rsp;
  rsp.field = 0x8001; rsp.responded = 1; rsp.sop_class = kCtImage; rsp.status = 0;
  s.add(Dir::to_client, message(1, command(rsp)));
  st.msg_id = 2;
  Bytes ds2 = ct_dataset(Ts::implicit_le, 300, "Smith^Anna");
  s.add(Dir::to_server, message(3, command(st), &ds2, max_frag));
  rsp.responded = 2; rsp.status = 0xA700;
  s.add(Dir::to_client, message(3, command(rsp)));
  s.add(Dir::to_server, release_rq());
  s.add(Dir::to_client, release_rp());
  return s;
}

Harness run(const Stream& s, size_t chunk = 0) {
  return Harness(medmon::dicom::make_dissector(), [&](Harness& h) {
    for (auto& [d, b] : s.parts) h.feed(d, b, chunk);
    h.finish();
  });
}

}  // namespace

TEST_CASE("store association gives one dicom event with paired ops", "[dicom][dissector]") {
  Harness h = run(store_stream());
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(h.events("anomaly").empty());
  const json& d = ev[0]["dicom"];
  CHECK(d["status"] == "released");
  CHECK(d["start_seen"] == true);
  CHECK(d["calling_ae"] == "CT_SCANNER1");
  CHECK(d["called_ae"] == "PACS1");
  CHECK(d["rq"]["max_pdu"] == 16384);
  CHECK(d["rq"]["impl_version"] == "OFFIS_DCMTK_367");
  REQUIRE(d["contexts"].size() == 3);
  CHECK(d["contexts"][0]["name"] == "CTImageStorage");
  CHECK(d["contexts"][0]["result_name"] == "acceptance");
  CHECK(d["contexts"][0]["ts_name"] == "LittleEndianExplicit");
  CHECK(d["contexts"][2]["result_name"] == "abstract_syntax_not_supported");
  REQUIRE(d["ops"].size() == 2);
  const json& op = d["ops"][0];
  CHECK(op["command"] == "C-STORE");
  CHECK(op["sop_class_name"] == "CTImageStorage");
  CHECK(op["status"] == 0);
  CHECK(op["status_class"] == "success");
  CHECK(op["modality"] == "CT");
  CHECK(op["manufacturer"] == "ACME Medical");
  CHECK(op["model"] == "Scanotron 3000");
  CHECK(op["software_versions"] == "VA10");
  CHECK(op["station_name"].get<std::string>().rfind("phi:", 0) == 0);  // a device identifier
  CHECK(op["pixel_data"] == true);
  CHECK(op["phi"] == json::array({"AccessionNumber", "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDsSequence"}));
  // PHI only as pseudonyms.
  std::string line = h.lines().back();
  CHECK(line.find("Doe^Jane") == std::string::npos);
  CHECK(line.find("MRN0001") == std::string::npos);
  CHECK(line.find("SN-12345") == std::string::npos);
  CHECK(line.find("CTROOM1") == std::string::npos);
  CHECK(line.find("1.2.3.4.5.6.7.8.9") == std::string::npos);
  CHECK(op["patient_names"][0].get<std::string>().rfind("phi:", 0) == 0);
  CHECK(op["device_serial"].get<std::string>().rfind("phi:", 0) == 0);
  const json& op2 = d["ops"][1];
  CHECK(op2["status"] == 0xA700);
  CHECK(op2["status_class"] == "failure");
  CHECK(op2["status_name"] == "out_of_resources");
  CHECK(op2["patient_names"][0] != op["patient_names"][0]);
  CHECK(h.facts().attr("dicom.calling_ae"));
  CHECK(*h.facts().attr("dicom.calling_ae") == "CT_SCANNER1");
  CHECK(std::find(h.facts().phi_fields.begin(), h.facts().phi_fields.end(), "PatientName") != h.facts().phi_fields.end());
}

TEST_CASE("pixel data is skipped, not buffered", "[dicom][dissector]") {
  // 8 MiB of pixel data in 64 KiB PDVs.
  Stream s = store_stream(65536, 8 << 20);
  Harness h(medmon::dicom::make_dissector());
  for (auto& [d, b] : s.parts) h.feed(d, b, 1460);
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["dicom"]["ops"][0]["pixel_data"] == true);
  CHECK(h.max_pending() < 70000);  // never more than one association PDU / header
  CHECK(h.calls() < 20000);        // one call per segment at most, not per byte
}

TEST_CASE("every TCP split point gives the same events", "[dicom][dissector]") {
  Stream s = store_stream(700, 3000);
  std::vector<std::string> want = run(s).lines();
  REQUIRE(want.size() == 1);
  // Concatenate each direction and split it at every point into two deliveries.
  Bytes up, down;
  for (auto& [d, b] : s.parts) append(d == Dir::to_server ? up : down, b);
  for (size_t cut = 1; cut < up.size(); ++cut) {
    Harness h(medmon::dicom::make_dissector());
    // Responses interleave with requests: deliver in wire order, splitting each part at `cut`.
    size_t off = 0;
    for (auto& [d, b] : s.parts) {
      if (d == Dir::to_client) { h.feed(d, b); continue; }
      size_t lo = off, hi = off + b.size();
      if (cut > lo && cut < hi) {
        h.feed(d, std::span<const uint8_t>(b).first(cut - lo));
        h.feed(d, std::span<const uint8_t>(b).subspan(cut - lo));
      } else {
        h.feed(d, b);
      }
      off = hi;
    }
    h.finish();
    if (h.lines() != want) {
      FAIL("split at " << cut << " differs:\n" << (h.lines().empty() ? "" : h.lines()[0]) << "\nwant\n" << want[0]);
    }
  }
  // Byte by byte.
  CHECK(run(s, 1).lines() == want);
}

TEST_CASE("rejected and aborted associations", "[dicom][dissector]") {
  Assoc a = store_assoc();
  a.calling = "INTRUDER";
  {
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, reject(1, 1, 3));
    h.finish();
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["dicom"]["status"] == "rejected");
    CHECK(ev[0]["dicom"]["calling_ae"] == "INTRUDER");
    CHECK(ev[0]["dicom"]["reject"]["reason_name"] == "calling_ae_not_recognized");
    // The requestor showed its implementation, rejected or not (the policy judges it).
    REQUIRE(h.facts().attr("dicom.impl_version_name"));
    CHECK(*h.facts().attr("dicom.impl_version_name") == "OFFIS_DCMTK_367");
    CHECK(h.facts().attr("dicom.acceptor_impl_class_uid") == nullptr);
  }
  {
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    h.feed(Dir::to_server, abort_pdu(0, 0));
    h.finish();
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["dicom"]["status"] == "aborted");
    CHECK(ev[0]["dicom"]["abort"]["from"] == "client");
    CHECK(ev[0]["dicom"]["abort"]["source_name"] == "service_user");
  }
}

TEST_CASE("user identity with a password is flagged, never output", "[dicom][dissector]") {
  Assoc a = store_assoc();
  a.user_identity_type = 2;
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["dicom"]["rq"]["user_identity"]["type_name"] == "username_passcode");
  CHECK(ev[0]["dicom"]["rq"]["user_identity"]["password_in_clear"] == true);
  CHECK(h.lines()[0].find("s3cret") == std::string::npos);
  CHECK(h.lines()[0].find("alice") == std::string::npos);
  CHECK(*h.facts().attr("dicom.password_in_clear") == "true");
  CHECK(ev[0]["dicom"]["rq"]["user_identity"]["credential_in_clear"] == true);
  CHECK(h.facts().attr("dicom.credential_in_clear"));
}

TEST_CASE("user identity with a Kerberos ticket, SAML assertion or JWT is a credential in clear", "[dicom][dissector]") {
  for (int type : {3, 4, 5}) {
    Assoc a = store_assoc();
    a.user_identity_type = type;
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    h.finish();
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    auto u = ev[0]["dicom"]["rq"]["user_identity"];
    CHECK(u["type"] == type);
    CHECK(u["credential_in_clear"] == true);
    CHECK(u["password_in_clear"] == false);  // no passcode: the field keeps its meaning
    CHECK(h.lines()[0].find("alice") == std::string::npos);  // the builder's ticket/assertion/token value
    const std::string* fact = h.facts().attr("dicom.credential_in_clear");
    CHECK((fact && *fact == "true"));
    CHECK(!h.facts().attr("dicom.password_in_clear"));
  }
  // A user name alone is no credential.
  Assoc a = store_assoc();
  a.user_identity_type = 1;
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["dicom"]["rq"]["user_identity"]["credential_in_clear"] == false);
  CHECK(!h.facts().attr("dicom.credential_in_clear"));
}

TEST_CASE("a passcode in any of two user identity items is a password in clear", "[dicom][dissector]") {
  for (auto [first, second] : {std::pair{2, 1}, std::pair{1, 2}}) {
    INFO("first " << first << " second " << second);
    Assoc a = store_assoc();
    a.user_identity_type = first;
    a.second_user_identity_type = second;
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    h.finish();
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    auto u = ev[0]["dicom"]["rq"]["user_identity"];
    CHECK(u["type"] == 2);  // the item reported is the one that carries the passcode
    CHECK(u["type_name"] == "username_passcode");
    CHECK(u["password_in_clear"] == true);
    CHECK(u["credential_in_clear"] == true);
    const std::string* fact = h.facts().attr("dicom.password_in_clear");
    CHECK((fact && *fact == "true"));
    CHECK(h.lines()[0].find("s3cret") == std::string::npos);
    bool noted = false;
    for (auto& e : h.events("anomaly")) noted |= e["anomaly"]["name"] == "unexpected_item";
    CHECK(noted);
  }
}

TEST_CASE("of two user identity items, the one reported carries the credential", "[dicom][dissector]") {
  struct Case { int first, second, reported; bool password; };
  for (const Case& c : {Case{1, 3, 3, false}, Case{3, 1, 3, false}, Case{1, 1, 1, false}, Case{3, 2, 3, true}}) {
    INFO("first " << c.first << " second " << c.second);
    Assoc a = store_assoc();
    a.user_identity_type = c.first;
    a.second_user_identity_type = c.second;
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.finish();
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    auto u = ev[0]["dicom"]["rq"]["user_identity"];
    CHECK(u["type"] == c.reported);
    CHECK(u["credential_in_clear"] == (c.reported != 1));
    CHECK(u["password_in_clear"] == c.password);
    const std::string* fact = h.facts().attr("dicom.user_identity");
    CHECK((fact && *fact == (c.reported == 1 ? "username" : "kerberos")));
  }
}

TEST_CASE("C-FIND with pending responses and C-MOVE with sub-operations", "[dicom][dissector]") {
  Assoc a;
  a.pcs.push_back({1, kFindStudyRoot, {kImplicit}, 0, kImplicit});
  a.pcs.push_back({3, kMoveStudyRoot, {kImplicit}, 0, kImplicit});
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  Cmd q; q.field = 0x0020; q.msg_id = 1; q.sop_class = kFindStudyRoot; q.dataset = true;
  Ds keys(Ts::implicit_le);
  keys.str(0x0008, 0x0052, "CS", "STUDY").str(0x0010, 0x0010, "PN", "").str(0x0010, 0x0020, "LO", "");
  h.feed(Dir::to_server, message(1, command(q), &keys.b));
  for (int i = 0; i < 3; ++i) {
    Cmd r; r.field = 0x8020; r.responded = 1; r.status = 0xFF00; r.dataset = true;
    Ds m(Ts::implicit_le);
    m.str(0x0010, 0x0010, "PN", "Patient^" + std::to_string(i)).str(0x0010, 0x0020, "LO", "ID" + std::to_string(i));
    h.feed(Dir::to_client, message(1, command(r), &m.b));
  }
  Cmd done; done.field = 0x8020; done.responded = 1; done.status = 0;
  h.feed(Dir::to_client, message(1, command(done)));
  Cmd mv; mv.field = 0x0021; mv.msg_id = 2; mv.sop_class = kMoveStudyRoot; mv.move_dest = "VIEWER1"; mv.dataset = true;
  Ds mk(Ts::implicit_le);
  mk.str(0x0008, 0x0052, "CS", "STUDY").str(0x0020, 0x000D, "UI", "1.2.3");
  h.feed(Dir::to_server, message(3, command(mv), &mk.b));
  Cmd mr; mr.field = 0x8021; mr.responded = 2; mr.status = 0xFF00; mr.remaining = 1; mr.completed = 1; mr.failed = 0; mr.warning = 0;
  h.feed(Dir::to_client, message(3, command(mr)));
  mr.status = 0; mr.remaining = -1; mr.completed = 2;
  h.feed(Dir::to_client, message(3, command(mr)));
  // A second C-MOVE of the association, to an AE title holding a comma (legal in one).
  Cmd mv2 = mv; mv2.msg_id = 3; mv2.move_dest = "WS01,";
  h.feed(Dir::to_server, message(3, command(mv2), &mk.b));
  Cmd mr2; mr2.field = 0x8021; mr2.responded = 3; mr2.status = 0; mr2.remaining = -1; mr2.completed = 1; mr2.failed = 0; mr2.warning = 0;
  h.feed(Dir::to_client, message(3, command(mr2)));
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  CHECK(d["status"] == "incomplete");
  REQUIRE(d["ops"].size() == 3);
  CHECK(d["ops"][2]["move_destination"] == "WS01,");
  CHECK(d["ops"][0]["command"] == "C-FIND");
  CHECK(d["ops"][0]["responses"] == 4);
  CHECK(d["ops"][0]["pending"] == 3);
  CHECK(d["ops"][0]["status_class"] == "success");
  CHECK(d["ops"][0]["patient_ids"].size() == 3);
  CHECK(d["ops"][0]["phi"] == json::array({"PatientName", "PatientID"}));
  CHECK(d["ops"][1]["command"] == "C-MOVE");
  CHECK(d["ops"][1]["move_destination"] == "VIEWER1");
  CHECK(d["ops"][1]["sub_ops"]["completed"] == 2);
  // Every destination, backslash-separated: a comma may be part of an AE title.
  CHECK(*h.facts().attr("dicom.move_destination") == "VIEWER1\\WS01,");
}

TEST_CASE("capture starting mid-stream resynchronises", "[dicom][dissector]") {
  Stream s = store_stream(4000, 20000);
  // Drop the association setup and the first 5000 bytes of the first C-STORE.
  Harness h(medmon::dicom::make_dissector());
  bool first_up = true;
  for (size_t i = 2; i < s.parts.size(); ++i) {
    auto& [d, b] = s.parts[i];
    if (d == Dir::to_server && first_up) {
      first_up = false;
      h.feed(d, std::span<const uint8_t>(b).subspan(5000), 1460);
      continue;
    }
    h.feed(d, b, 1460);
  }
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  CHECK(d["start_seen"] == false);
  CHECK(d["status"] == "released");
  REQUIRE(d["ops"].size() == 2);
  // Ops are written as they complete; the one whose request started before the capture waits
  // for a request that may still come, so it is written last.
  CHECK(d["ops"][0]["request_seen"] == true);
  CHECK(d["ops"][0]["modality"] == "CT");       // transfer syntax guessed from the header
  CHECK(d["ops"][1]["request_seen"] == false);  // its request started before the capture
  CHECK(d["ops"][1]["msg_id"] == 1);
  CHECK(d["ops"][1]["status"] == 0);
  CHECK(h.events("anomaly").empty());
  // The rest of the first C-STORE's dataset, whose command came before the capture, in 5 PDUs.
  CHECK(h.counter("dicom.datasets_skipped") == 1);
}

TEST_CASE("gap inside a P-DATA PDU", "[dicom][dissector]") {
  Stream s = store_stream(65536, 200000);
  Harness h(medmon::dicom::make_dissector());
  for (size_t i = 0; i < s.parts.size(); ++i) {
    auto& [d, b] = s.parts[i];
    if (i == 2) {  // lose 10000 bytes in the middle of the first C-STORE's pixel data
      h.feed(d, std::span<const uint8_t>(b).first(90000), 1460);
      h.gap(d, 10000);
      h.feed(d, std::span<const uint8_t>(b).subspan(100000), 1460);
      continue;
    }
    if (i == 4) {  // lose 300 bytes inside the second C-STORE's header
      h.feed(d, std::span<const uint8_t>(b).first(200), 1460);
      h.gap(d, 300);
      h.feed(d, std::span<const uint8_t>(b).subspan(500), 1460);
      continue;
    }
    h.feed(d, b, 1460);
  }
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  CHECK(d["gaps"] == 1);  // the first hole fell in pixel data being skipped: never reported
  CHECK(d["status"] == "released");
  REQUIRE(d["ops"].size() == 2);
  CHECK(d["ops"][0]["pixel_data"] == true);   // the hole was in bytes skipped anyway
  CHECK_FALSE(d["ops"][0].contains("truncated"));
  CHECK(d["ops"][1]["status"] == 0xA700);     // the response still pairs
}

TEST_CASE("hostile lengths give anomalies and bounded work", "[dicom][dissector]") {
  Assoc a = store_assoc();
  SECTION("P-DATA length of 4 GiB") {
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    Bytes bad = {4, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 10, 1, 3};
    h.feed(Dir::to_server, bad);
    h.finish();
    auto an = h.events("anomaly");
    REQUIRE_FALSE(an.empty());
    CHECK(an[0]["anomaly"]["name"] == "bad_pdu_length");
    CHECK(an[0]["anomaly"]["detail"] == "P-DATA-TF");
    CHECK(h.max_pending() < 100);
  }
  SECTION("PDV longer than its PDU") {
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    Cmd c; c.sop_class = kCtImage;
    Bytes m = message(1, command(c));
    m[6 + 3] += 50;  // PDV item length
    h.feed(Dir::to_server, m);
    h.finish();
    auto an = h.events("anomaly");
    REQUIRE_FALSE(an.empty());
    CHECK(an[0]["anomaly"]["name"] == "pdv_past_pdu_end");
  }
  SECTION("unknown PDU type") {
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, Bytes{0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0});
    h.finish();
    auto an = h.events("anomaly");
    REQUIRE_FALSE(an.empty());
    CHECK(an[0]["anomaly"]["name"] == "unknown_pdu_type");
  }
  SECTION("command announcing a dataset that never comes") {
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    Cmd c; c.sop_class = kCtImage; c.dataset = true;
    h.feed(Dir::to_server, message(1, command(c)));
    c.msg_id = 2; c.dataset = false;
    h.feed(Dir::to_server, message(1, command(c)));
    h.finish();
    auto an = h.events("anomaly");
    REQUIRE_FALSE(an.empty());
    CHECK(an[0]["anomaly"]["name"] == "missing_dataset");
  }
  SECTION("P-DATA before the association is accepted") {
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    Cmd c; c.sop_class = kCtImage;
    h.feed(Dir::to_server, message(1, command(c)));
    h.finish();
    auto an = h.events("anomaly");
    REQUIRE_FALSE(an.empty());
    CHECK(an[0]["anomaly"]["name"] == "unexpected_pdu");
  }
  SECTION("random bytes after an association never crash") {
    uint32_t x = 99;
    for (int round = 0; round < 300; ++round) {
      Harness h(medmon::dicom::make_dissector());
      h.feed(Dir::to_server, associate(a, false));
      h.feed(Dir::to_client, associate(a, true));
      Bytes b(2000);
      for (auto& c : b) { x = x * 1103515245 + 12345; c = uint8_t(x >> 16); }
      if (round % 2) { b[0] = 4; b[1] = 0; }
      h.feed(Dir::to_server, b, 1 + round % 97);
      h.finish();
      CHECK(h.max_pending() <= 256 * 1024 + 6);
    }
  }
}

// An A-ASSOCIATE-RQ over kMaxAssociatePdu as the first bytes of a stream: well-formed fixed
// fields, so it is reported rather than taken for a capture that joined mid-association.
TEST_CASE("oversized A-ASSOCIATE-RQ at the start of a stream is an anomaly", "[dicom][dissector]") {
  Assoc a = store_assoc();
  Bytes rq = associate(a, false);
  const uint32_t len = 300 * 1024;
  rq[2] = uint8_t(len >> 24); rq[3] = uint8_t(len >> 16); rq[4] = uint8_t(len >> 8); rq[5] = uint8_t(len);
  rq.resize(6 + len, 0);
  for (size_t chunk : {size_t(1), size_t(7), size_t(1460), size_t(0)}) {
    if (chunk == 1) {  // byte by byte through the first 200 bytes only (the rest in one piece)
      Harness h(medmon::dicom::make_dissector());
      h.feed(Dir::to_server, std::span<const uint8_t>(rq).first(200), 1);
      h.feed(Dir::to_server, std::span<const uint8_t>(rq).subspan(200));
      h.finish();
      auto an = h.events("anomaly");
      REQUIRE(an.size() == 1);
      CHECK(an[0]["anomaly"]["name"] == "bad_pdu_length");
      continue;
    }
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, rq, chunk);
    h.feed(Dir::to_client, associate(a, true), chunk);
    h.feed(Dir::to_server, release_rq());
    h.feed(Dir::to_client, release_rp());
    h.finish();
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 1);
    CHECK(an[0]["anomaly"]["name"] == "bad_pdu_length");
    CHECK(an[0]["anomaly"]["detail"] == "A-ASSOCIATE-RQ");
    CHECK(an[0]["anomaly"]["offset"] == 0);
    CHECK(h.max_pending() < 4096);  // scanned for a resync point, never buffered whole
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    CHECK_FALSE(ev[0]["dicom"].contains("rq"));  // never parsed
    CHECK(ev[0]["dicom"]["status"] == "released");
  }
  SECTION("the same oversized header as an A-ASSOCIATE-AC") {
    Bytes ac = associate(a, true);
    ac[2] = rq[2]; ac[3] = rq[3]; ac[4] = rq[4]; ac[5] = rq[5];
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_client, std::span<const uint8_t>(ac).first(100));
    h.finish();
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 1);
    CHECK(an[0]["anomaly"]["detail"] == "A-ASSOCIATE-AC");
  }
  SECTION("a capture that starts in other bytes stays silent") {
    // Bytes that open like an RQ but fail a fixed field: wrong protocol version, non-zero
    // reserved, control bytes where the AE titles are.
    for (int variant = 0; variant < 3; ++variant) {
      Bytes b(rq.begin(), rq.begin() + 4000);
      if (variant == 0) b[7] = 2;
      if (variant == 1) b[8] = 0x40;
      if (variant == 2) b[20] = 0x03;
      Harness h(medmon::dicom::make_dissector());
      h.feed(Dir::to_server, b, 1460);
      h.finish();
      CHECK(h.events("anomaly").empty());
    }
  }
}

TEST_CASE("probe", "[dicom][dissector]") {
  Bytes rq = associate(store_assoc(), false);
  CHECK(medmon::dicom::probe(rq, Dir::to_server) == medmon::Probe::yes);
  CHECK(medmon::dicom::probe(std::span<const uint8_t>(rq).first(20), Dir::to_server) == medmon::Probe::need_more);
  Bytes tls = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0, 0};
  CHECK(medmon::dicom::probe(tls, Dir::to_server) == medmon::Probe::no);
  // An RQ over the 256 KiB cap is still claimed (the dissector reports it), on 42 bytes.
  Bytes big = rq;
  big[2] = 0; big[3] = 0x10; big[4] = 0; big[5] = 0;
  CHECK(medmon::dicom::probe(std::span<const uint8_t>(big).first(42), Dir::to_server) == medmon::Probe::yes);
  CHECK(medmon::dicom::probe(std::span<const uint8_t>(big).first(30), Dir::to_server) == medmon::Probe::need_more);
  big[7] = 3;  // not protocol version 1
  CHECK(medmon::dicom::probe(std::span<const uint8_t>(big).first(80), Dir::to_server) == medmon::Probe::no);
  Bytes http(200, 'A');
  CHECK(medmon::dicom::probe(http, Dir::to_server) == medmon::Probe::no);
  CHECK(medmon::kDicomInfo.name == "dicom");
}

TEST_CASE("sender: only the requestor sends an A-ASSOCIATE-RQ, only the acceptor an -AC or -RJ", "[dicom][dissector]") {
  using medmon::StreamSender;
  CHECK(medmon::dicom::sender(associate(store_assoc(), false)) == StreamSender::client);
  CHECK(medmon::dicom::sender(associate(store_assoc(), true)) == StreamSender::server);
  CHECK(medmon::dicom::sender(reject(1, 1, 7)) == StreamSender::server);
  CHECK(medmon::dicom::sender(reject(9, 1, 7)) == StreamSender::unknown);
  // Either side may send these, or they say nothing.
  CHECK(medmon::dicom::sender(release_rq()) == StreamSender::unknown);
  CHECK(medmon::dicom::sender(abort_pdu(0, 0)) == StreamSender::unknown);
  CHECK(medmon::dicom::sender(Bytes{2, 0, 0}) == StreamSender::unknown);
  CHECK(medmon::dicom::sender(Bytes(200, 'A')) == StreamSender::unknown);
  CHECK(medmon::kDicomInfo.sender == &medmon::dicom::sender);
}

TEST_CASE("sender: inside an association, a DIMSE request comes from the requestor, a response from the acceptor", "[dicom][dissector]") {
  using medmon::StreamSender;
  auto first_pdu = [](const Cmd& c) {
    Bytes m = message(1, command(c));
    return m;
  };
  Cmd rsp;
  rsp.field = 0x8001; rsp.responded = 1; rsp.sop_class = kCtImage; rsp.status = 0; rsp.sop_instance = "1.2.3";
  CHECK(medmon::dicom::sender(first_pdu(rsp)) == StreamSender::likely_server);  // C-STORE-RSP
  Cmd echo;
  echo.field = 0x0030; echo.sop_class = kVerification;
  CHECK(medmon::dicom::sender(first_pdu(echo)) == StreamSender::likely_client);
  Cmd find;
  find.field = 0x0020; find.sop_class = kFindStudyRoot; find.dataset = true;
  CHECK(medmon::dicom::sender(first_pdu(find)) == StreamSender::likely_client);
  // The SCP sends an N-EVENT-REPORT, on the SCU's association or one of its own.
  Cmd event;
  event.field = 0x0100;
  CHECK(medmon::dicom::sender(first_pdu(event)) == StreamSender::unknown);
  // A first segment of the PDU and PDV headers only, a dataset fragment: nothing to go by.
  Bytes m = first_pdu(rsp);
  CHECK(medmon::dicom::sender(std::span<const uint8_t>(m).first(12)) == StreamSender::unknown);
  CHECK(medmon::dicom::sender(std::span<const uint8_t>(m).first(30)) == StreamSender::unknown);
  Bytes ds = ct_dataset(Ts::explicit_le, 16);
  CHECK(medmon::dicom::sender(pdata(1, 2, ds)) == StreamSender::unknown);
}

TEST_CASE("responses delivered before their requests still pair", "[dicom][dissector]") {
  // A hole in the client direction holds its bytes back: the server's answers and its
  // A-RELEASE-RP arrive first, the client's requests and A-RELEASE-RQ later.
  Stream s = store_stream(4000, 3000);
  Harness h(medmon::dicom::make_dissector());
  h.feed(s.parts[0].first, s.parts[0].second);  // A-ASSOCIATE-RQ
  h.feed(s.parts[1].first, s.parts[1].second);  // A-ASSOCIATE-AC
  for (size_t i = 2; i < s.parts.size(); ++i) if (s.parts[i].first == Dir::to_client) h.feed(Dir::to_client, s.parts[i].second);
  for (size_t i = 2; i < s.parts.size(); ++i) if (s.parts[i].first == Dir::to_server) h.feed(Dir::to_server, s.parts[i].second);
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  CHECK(d["status"] == "released");
  REQUIRE(d["ops"].size() == 2);
  for (const json& op : d["ops"]) {
    CHECK(op["request_seen"] == true);
    CHECK(op["responses"] == 1);
    CHECK(op["modality"] == "CT");
  }
}

TEST_CASE("C-CANCEL marks its request; N-ACTION pairs like any DIMSE op", "[dicom][dissector]") {
  const char* kCommit = "1.2.840.10008.1.20.1";  // Storage Commitment Push Model
  Assoc a;
  a.pcs.push_back({1, kFindStudyRoot, {kImplicit}, 0, kImplicit});
  a.pcs.push_back({3, kCommit, {kImplicit}, 0, kImplicit});
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  Cmd q; q.field = 0x0020; q.msg_id = 5; q.sop_class = kFindStudyRoot; q.dataset = true;
  Ds keys(Ts::implicit_le);
  keys.str(0x0008, 0x0052, "CS", "STUDY");
  h.feed(Dir::to_server, message(1, command(q), &keys.b));
  Cmd cancel; cancel.field = 0x0FFF; cancel.responded = 5; cancel.priority = -1;
  // C-CANCEL-RQ carries Message ID Being Responded To, like a response.
  Bytes cb;
  {
    Bytes body;
    ile(body, 0, 0x0100, us(0x0FFF));
    ile(body, 0, 0x0120, us(5));
    ile(body, 0, 0x0800, us(0x0101));
    ile(cb, 0, 0, ul(uint32_t(body.size())));
    append(cb, body);
  }
  h.feed(Dir::to_server, message(1, cb));
  Cmd r; r.field = 0x8020; r.responded = 5; r.status = 0xFE00;
  h.feed(Dir::to_client, message(1, command(r)));
  Cmd act; act.field = 0x0130; act.msg_id = 6; act.sop_class = kCommit; act.dataset = true; act.priority = -1;
  Ds refs(Ts::implicit_le);
  refs.str(0x0008, 0x1195, "UI", "1.2.3.4");
  h.feed(Dir::to_server, message(3, command(act), &refs.b));
  Cmd ar; ar.field = 0x8130; ar.responded = 6; ar.status = 0; ar.sop_class = kCommit;
  h.feed(Dir::to_client, message(3, command(ar)));
  h.feed(Dir::to_server, release_rq());
  h.feed(Dir::to_client, release_rp());
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  REQUIRE(d["ops"].size() == 2);
  CHECK(d["ops"][0]["command"] == "C-FIND");
  CHECK(d["ops"][0]["cancelled"] == true);
  CHECK(d["ops"][0]["status_class"] == "cancel");
  CHECK(d["ops"][1]["command"] == "N-ACTION");
  CHECK(d["ops"][1]["sop_class_name"] == "StorageCommitmentPushModelSOPClass");
  CHECK(d["ops"][1]["status_class"] == "success");
  CHECK(h.events("anomaly").empty());
}

namespace {
Assoc verification_store_assoc() {
  Assoc a;
  a.pcs.push_back({1, kCtImage, {kImplicit}, 0, kImplicit});
  a.pcs.push_back({3, kVerification, {kImplicit}, 0, kImplicit});
  return a;
}
Cmd store_rq(uint16_t msg_id) {
  Cmd c; c.field = 0x0001; c.msg_id = msg_id; c.sop_class = kCtImage; c.sop_instance = "1.2.3.4.5.6"; c.dataset = true;
  return c;
}
Cmd response(uint16_t field, uint16_t msg_id) {
  Cmd r; r.field = field; r.responded = msg_id; r.status = 0;
  return r;
}
bool has_phi_fact(Harness& h, const char* keyword) {
  auto& f = h.facts().phi_fields;
  return std::find(f.begin(), f.end(), keyword) != f.end();
}
}  // namespace

TEST_CASE("a message cut short by an abort or the end of the capture is still reported", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID12345");
  for (bool abort : {true, false}) {
    INFO("abort " << abort);
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    h.feed(Dir::to_server, message(1, command(store_rq(7))));
    h.feed(Dir::to_server, pdata(1, 0, ds));  // not the last fragment
    if (abort) h.feed(Dir::to_client, abort_pdu(2, 0));
    h.finish();
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    const json& d = ev[0]["dicom"];
    CHECK(d["status"] == (abort ? "aborted" : "incomplete"));
    REQUIRE(d["ops"].size() == 1);
    CHECK(d["ops_total"] == 1);
    const json& op = d["ops"][0];
    CHECK(op["command"] == "C-STORE");
    CHECK(op["request_seen"] == true);
    CHECK(op["truncated"] == true);  // its last fragment never came
    CHECK(op["patient_ids"].size() == 1);
    CHECK(op["phi"] == json::array({"PatientID"}));
    CHECK(d["phi"] == json::array({"PatientID"}));
    CHECK(has_phi_fact(h, "PatientID"));
  }
}

TEST_CASE("a hole inside the last dataset fragment still ends the message", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID12345");
  ile(ds, 0x0011, 0x1000, Bytes(3000, 0x55));
  ile(ds, 0x0010, 0x0010, "DOE^JOHN");
  Bytes p = pdata(1, 2, ds);
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  h.feed(Dir::to_server, message(1, command(store_rq(7))));
  h.feed(Dir::to_server, std::span<const uint8_t>(p).first(1000));
  h.gap(Dir::to_server, 1000);
  h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(2000));
  Cmd echo; echo.field = 0x0030; echo.msg_id = 8; echo.sop_class = kVerification;
  h.feed(Dir::to_server, message(3, command(echo)));
  h.feed(Dir::to_client, message(1, command(response(0x8001, 7))));
  h.feed(Dir::to_client, message(3, command(response(0x8030, 8))));
  h.feed(Dir::to_server, release_rq());
  h.feed(Dir::to_client, release_rp());
  h.finish();
  CHECK(h.events("anomaly").empty());  // no missing_dataset, no dataset_truncated
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  REQUIRE(d["ops"].size() == 2);
  const json& op = d["ops"][0];
  CHECK(op["command"] == "C-STORE");
  CHECK(op["request_seen"] == true);
  CHECK(op["dataset"] == true);
  CHECK(op["truncated"] == true);
  CHECK(op["patient_ids"].size() == 1);
  CHECK(op["phi"] == json::array({"PatientID"}));  // the name was after the hole
  CHECK(op["status"] == 0);
  CHECK(d["ops"][1]["command"] == "C-ECHO");
  CHECK(d["ops"][1]["status"] == 0);
}

TEST_CASE("a hole across PDU headers keeps the request read so far", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes ds;
  ile(ds, 0x0010, 0x0010, "DOE^JOHN");
  ile(ds, 0x0010, 0x0020, "PID12345");
  ile(ds, 0x0011, 0x1000, Bytes(3000, 0x55));
  ile(ds, 0x0010, 0x1040, "1 Main Street");  // after the hole: never walked
  ile(ds, 0x7FE0, 0x0010, Bytes(4000, 0));
  for (bool one_pdu : {true, false}) {
    // Two fragments, in one PDU (the hole eats the second PDV header) or in two (the hole
    // crosses the PDU boundary, the dissector resynchronises).
    Bytes first(ds.begin(), ds.begin() + 2000), second(ds.begin() + 2000, ds.end());
    Bytes s;
    if (one_pdu) {
      Bytes v;
      be32(v, uint32_t(first.size() + 2)); put8(v, 1); put8(v, 0); append(v, first);
      be32(v, uint32_t(second.size() + 2)); put8(v, 1); put8(v, 2); append(v, second);
      s = pdu(4, v);
    } else {
      s = pdata(1, 0, first);
      append(s, pdata(1, 2, second));
    }
    const size_t hole_end = 2600;
    INFO("one PDU " << one_pdu);
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    h.feed(Dir::to_server, message(1, command(store_rq(1))));
    h.feed(Dir::to_server, std::span<const uint8_t>(s).first(1500));
    h.gap(Dir::to_server, hole_end - 1500);
    h.feed(Dir::to_server, std::span<const uint8_t>(s).subspan(hole_end));
    h.feed(Dir::to_client, message(1, command(response(0x8001, 1))));
    h.feed(Dir::to_server, release_rq());
    h.feed(Dir::to_client, release_rp());
    h.finish();
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    const json& d = ev[0]["dicom"];
    REQUIRE(d["ops"].size() == 1);
    const json& op = d["ops"][0];
    CHECK(op["request_seen"] == true);
    CHECK(op["sop_instance"].get<std::string>().rfind("phi:", 0) == 0);
    CHECK(op["truncated"] == true);
    CHECK(op["phi"] == json::array({"PatientName", "PatientID"}));
    CHECK(op["status"] == 0);
    CHECK(d["phi"] == json::array({"PatientName", "PatientID"}));
    CHECK(h.events("anomaly").empty());  // the gap says it: no dataset_truncated
    CHECK(h.counter("dicom.datasets_skipped") == 0);  // the rest of a reported op, not a dataset of its own
  }
}

TEST_CASE("a new association on the same connection counts its own PDUs", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Harness h(medmon::dicom::make_dissector());
  for (int i = 0; i < 2; ++i) {
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    Cmd echo; echo.field = 0x0030; echo.msg_id = 1; echo.sop_class = kVerification;
    h.feed(Dir::to_server, message(3, command(echo)));
    h.feed(Dir::to_client, message(3, command(response(0x8030, 1))));
    h.feed(Dir::to_server, release_rq());
    h.feed(Dir::to_client, release_rp());
  }
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 2);
  for (const json& e : ev) {
    CHECK(e["dicom"]["pdus"]["to_server"] == 3);
    CHECK(e["dicom"]["pdus"]["to_client"] == 3);
  }
}

namespace {
std::vector<std::string> anomaly_names(const Harness& h) {
  std::vector<std::string> v;
  for (auto& e : h.events("anomaly")) v.push_back(e["anomaly"]["name"].get<std::string>());
  return v;
}
}  // namespace

TEST_CASE("a repeated Move Destination: the first one is the destination, and an anomaly", "[dicom][dissector]") {
  // DCMTK keeps the first of a repeated command element: the images go to EVIL_AE.
  Assoc a;
  a.pcs.push_back({1, kMoveStudyRoot, {kImplicit}, 0, kImplicit});
  Bytes body;
  ile(body, 0, 0x0002, even(kMoveStudyRoot, '\0'));
  ile(body, 0, 0x0100, us(0x0021));
  ile(body, 0, 0x0110, us(1));
  ile(body, 0, 0x0600, "EVIL_AE ");
  ile(body, 0, 0x0600, "WS01");
  ile(body, 0, 0x0700, us(0));
  ile(body, 0, 0x0800, us(0));
  Bytes cmd;
  ile(cmd, 0, 0, ul(uint32_t(body.size())));
  append(cmd, body);
  Ds keys(Ts::implicit_le);
  keys.str(0x0008, 0x0052, "CS", "STUDY").str(0x0020, 0x000D, "UI", "1.2.3.4");
  Stream s;
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  s.add(Dir::to_server, message(1, cmd, &keys.b));
  Cmd r; r.field = 0x8021; r.responded = 1; r.status = 0;
  s.add(Dir::to_client, message(1, command(r)));
  s.add(Dir::to_server, release_rq());
  s.add(Dir::to_client, release_rp());
  for (size_t chunk : {size_t(0), size_t(1), size_t(13)}) {
    INFO("chunk " << chunk);
    Harness h = run(s, chunk);
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    REQUIRE(ev[0]["dicom"]["ops"].size() == 1);
    CHECK(ev[0]["dicom"]["ops"][0]["move_destination"] == "EVIL_AE");
    CHECK(*h.facts().attr("dicom.move_destination") == "EVIL_AE");
    CHECK(anomaly_names(h) == std::vector<std::string>{"command_element_repeated"});
  }
}

TEST_CASE("an A-ASSOCIATE-RQ with other version bits, a reserved byte set, items reordered is read", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes rq = associate(a, false);
  // The Application Context item behind the first presentation context.
  size_t app_len = 4 + (size_t(rq[76]) << 8 | rq[77]);
  size_t pc_len = 4 + (size_t(rq[74 + app_len + 2]) << 8 | rq[74 + app_len + 3]);
  Bytes moved(rq.begin(), rq.begin() + 74);
  moved.insert(moved.end(), rq.begin() + 74 + app_len, rq.begin() + 74 + app_len + pc_len);
  moved.insert(moved.end(), rq.begin() + 74, rq.begin() + 74 + app_len);
  moved.insert(moved.end(), rq.begin() + 74 + app_len + pc_len, rq.end());
  REQUIRE(moved.size() == rq.size());
  moved[1] = 0xFF;
  moved[7] = 3;
  CHECK(medmon::dicom::probe(moved, Dir::to_server) == medmon::Probe::yes);
  CHECK(medmon::dicom::sender(moved) == medmon::StreamSender::client);
  for (bool rejected : {false, true}) {
    INFO("rejected " << rejected);
    Stream s;
    s.add(Dir::to_server, moved);
    if (rejected) {
      s.add(Dir::to_client, reject(1, 1, 7));
    } else {
      s.add(Dir::to_client, associate(a, true));
      Bytes ds;
      ile(ds, 0x0010, 0x0010, "DOE^JOHN");
      s.add(Dir::to_server, message(1, command(store_rq(1)), &ds));
      s.add(Dir::to_client, message(1, command(response(0x8001, 1))));
      s.add(Dir::to_server, release_rq());
      s.add(Dir::to_client, release_rp());
    }
    for (size_t chunk : {size_t(0), size_t(1), size_t(50)}) {
      INFO("chunk " << chunk);
      Harness h = run(s, chunk);
      auto ev = h.events("dicom");
      REQUIRE(ev.size() == 1);
      const json& d = ev[0]["dicom"];
      CHECK(d["start_seen"] == true);
      CHECK(d["status"] == (rejected ? "rejected" : "released"));
      CHECK(d["calling_ae"] == "CT_SCANNER1");
      CHECK(d["protocol_version"] == 3);
      CHECK(d["app_context"] == "1.2.840.10008.3.1.1.1");
      if (!rejected) CHECK(d["phi"] == json::array({"PatientName"}));
      CHECK(anomaly_names(h) == std::vector<std::string>{"unusual_protocol_version", "reserved_not_zero"});
    }
  }
}

TEST_CASE("after a hole, A-RELEASE-RP and A-ABORT still end the association", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Cmd echo; echo.field = 0x0030; echo.msg_id = 1; echo.sop_class = kVerification;
  for (int end : {0, 1, 2}) {  // release, abort from the server, release followed by a new PDU
    for (size_t chunk : {size_t(0), size_t(1), size_t(3)}) {
      INFO("end " << end << " chunk " << chunk);
      Harness h(medmon::dicom::make_dissector());
      h.feed(Dir::to_server, associate(a, false));
      h.feed(Dir::to_client, associate(a, true));
      h.feed(Dir::to_server, message(3, command(echo)));
      h.gap(Dir::to_client, message(3, command(response(0x8030, 1))).size());  // the C-ECHO-RSP is lost
      if (end == 1) {
        h.feed(Dir::to_client, abort_pdu(2, 1), chunk);
      } else {
        h.feed(Dir::to_server, release_rq(), chunk);
        Bytes rp = release_rp();
        if (end == 2) append(rp, abort_pdu(0, 0));
        h.feed(Dir::to_client, rp, chunk);
      }
      h.finish();
      auto ev = h.events("dicom");
      REQUIRE(ev.size() == 1);
      const json& d = ev[0]["dicom"];
      CHECK(d["gaps"] == 1);
      if (end == 1) {
        CHECK(d["status"] == "aborted");
        CHECK(d["abort"]["from"] == "server");
      } else {
        CHECK(d["status"] == (end == 2 ? "aborted" : "released"));
        CHECK(d["release"]["completed"] == true);
      }
    }
  }
}

TEST_CASE("release PDU shapes in pixel data do not resynchronise a stream", "[dicom][dissector]") {
  // A hole in a C-STORE's pixel data; the bytes after it hold an A-RELEASE-RP look-alike
  // followed by more pixel data: no release.
  Assoc a = verification_store_assoc();
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID1");
  Bytes pix(4000, 0x11);
  Bytes fake = release_rp();
  std::copy(fake.begin(), fake.end(), pix.begin() + 2100);
  pix[2110] = 4;  // then what could start a P-DATA-TF header, until more bytes come
  pix[2111] = 0;
  pix[2112] = 0;
  ile(ds, 0x7FE0, 0x0010, pix);
  Bytes m = message(3, command(store_rq(1)), &ds, 1000);
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  // The hole crosses the PDU header before the look-alike and ends 5 bytes before it: the
  // resynchronisation scan meets it first, followed at first by only 3 bytes (04 00 00).
  size_t at = std::search(m.begin(), m.end(), fake.begin(), fake.end()) - m.begin();
  size_t first_pdu = 12 + command(store_rq(1)).size();  // PDU and PDV headers, command set
  size_t hdr = first_pdu + (at - first_pdu) / 1012 * 1012;
  REQUIRE(at - hdr > 20);
  h.feed(Dir::to_server, std::span<const uint8_t>(m).first(hdr - 20));
  h.gap(Dir::to_server, at - 5 - (hdr - 20));
  h.feed(Dir::to_server, std::span<const uint8_t>(m).subspan(at - 5, 18));
  h.feed(Dir::to_server, std::span<const uint8_t>(m).subspan(at + 13));
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["dicom"]["status"] == "incomplete");
  CHECK_FALSE(ev[0]["dicom"].contains("release"));
}

TEST_CASE("a hole inside a command PDV: the request is reported truncated and its dataset walked", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes cmd = command(store_rq(1));
  Bytes ds;
  ile(ds, 0x0008, 0x0060, "CT");
  ile(ds, 0x0010, 0x0010, "DOE^JOHN");
  ile(ds, 0x0010, 0x0020, "PID0001");
  // [from, to) of the command set is lost: CommandField and Message ID (t9), or only a part of
  // the SOP Class UID value (the framing survives).
  // The response comes after the request, or before it (the hole held the request back).
  for (auto [from, to] : {std::pair<size_t, size_t>{10, 60}, std::pair<size_t, size_t>{22, 30}}) {
    for (size_t chunk : {size_t(0), size_t(1), size_t(7)}) for (bool response_first : {false, true}) {
      INFO("hole " << from << ".." << to << " chunk " << chunk << " response first " << response_first);
      Bytes p = pdata(1, 3, cmd);
      Harness h(medmon::dicom::make_dissector());
      h.feed(Dir::to_server, associate(a, false));
      h.feed(Dir::to_client, associate(a, true));
      if (response_first) h.feed(Dir::to_client, message(1, command(response(0x8001, 1))), chunk);
      h.feed(Dir::to_server, std::span<const uint8_t>(p).first(12 + from), chunk);
      h.gap(Dir::to_server, to - from);
      h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(12 + to), chunk);
      h.feed(Dir::to_server, pdata(1, 2, ds), chunk);
      if (!response_first) h.feed(Dir::to_client, message(1, command(response(0x8001, 1))), chunk);
      h.feed(Dir::to_server, release_rq(), chunk);
      h.feed(Dir::to_client, release_rp(), chunk);
      h.finish();
      CHECK(h.events("anomaly").empty());
      auto ev = h.events("dicom");
      REQUIRE(ev.size() == 1);
      const json& d = ev[0]["dicom"];
      REQUIRE(d["ops"].size() == 1);
      const json& op = d["ops"][0];
      CHECK(op["command"] == "C-STORE");
      CHECK(op["msg_id"] == 1);
      CHECK(op["request_seen"] == true);
      CHECK(op["truncated"] == true);
      CHECK(op["dataset"] == true);
      CHECK(op["modality"] == "CT");
      CHECK(op["phi"] == json::array({"PatientName", "PatientID"}));
      CHECK(op["status"] == 0);
      CHECK(op.contains("sop_instance"));  // after the hole
      CHECK(d["phi"] == json::array({"PatientName", "PatientID"}));
    }
  }
}

TEST_CASE("a hole that takes a whole command set raises no anomaly for its dataset", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes cmd = command(store_rq(1));
  Bytes ds;
  ile(ds, 0x0010, 0x0010, "DOE^JOHN");
  Bytes p = pdata(1, 3, cmd);
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  h.feed(Dir::to_server, std::span<const uint8_t>(p).first(12));
  h.gap(Dir::to_server, p.size() - 12 - 2);
  h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(p.size() - 2));
  h.feed(Dir::to_server, pdata(1, 2, ds));
  h.feed(Dir::to_client, message(1, command(response(0x8001, 1))));
  h.finish();
  CHECK(h.events("anomaly").empty());
  CHECK(h.counter("dicom.datasets_skipped") == 1);  // walked by no op
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0]["dicom"]["ops"].size() == 1);
  CHECK(ev[0]["dicom"]["ops"][0]["request_seen"] == false);
}

TEST_CASE("a C-FIND wildcard query key is no patient name", "[dicom][dissector]") {
  Assoc a;
  a.pcs.push_back({1, kFindStudyRoot, {kImplicit}, 0, kImplicit});
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  Cmd q; q.field = 0x0020; q.msg_id = 1; q.sop_class = kFindStudyRoot; q.dataset = true;
  Ds keys(Ts::implicit_le);
  keys.str(0x0008, 0x0052, "CS", "STUDY").str(0x0010, 0x0010, "PN", "*").str(0x0010, 0x0020, "LO", "?");
  h.feed(Dir::to_server, message(1, command(q), &keys.b));
  Cmd r; r.field = 0x8020; r.responded = 1; r.status = 0xFF00; r.dataset = true;
  Ds m(Ts::implicit_le);
  m.str(0x0010, 0x0010, "PN", "DOE^JANE").str(0x0010, 0x0020, "LO", "P42");
  h.feed(Dir::to_client, message(1, command(r), &m.b));
  Cmd done; done.field = 0x8020; done.responded = 1; done.status = 0;
  h.feed(Dir::to_client, message(1, command(done)));
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& op = ev[0]["dicom"]["ops"][0];
  CHECK(op["patient_names"].size() == 1);
  CHECK(op["patient_ids"].size() == 1);
}

TEST_CASE("a release collision is no unexpected PDU", "[dicom][dissector]") {
  // PS3.8 7.2.2: both sides send A-RELEASE-RQ, then both answer with A-RELEASE-RP.
  Stream s;
  Assoc a = verification_store_assoc();
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  s.add(Dir::to_server, release_rq());
  s.add(Dir::to_client, release_rq());
  s.add(Dir::to_server, release_rp());
  s.add(Dir::to_client, release_rp());
  Harness h = run(s);
  CHECK(h.events("anomaly").empty());
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["dicom"]["status"] == "released");
  CHECK(ev[0]["dicom"]["release"]["completed"] == true);
  // Two answers from one side are still unexpected.
  Stream twice;
  twice.add(Dir::to_server, associate(a, false));
  twice.add(Dir::to_client, associate(a, true));
  twice.add(Dir::to_server, release_rq());
  twice.add(Dir::to_client, release_rp());
  twice.add(Dir::to_client, release_rp());
  Harness h2 = run(twice);
  CHECK(anomaly_names(h2) == std::vector<std::string>{"unexpected_pdu"});
}

TEST_CASE("JPIP Referenced Deflate datasets are inflated", "[dicom][dissector]") {
  for (const char* ts : {"1.2.840.10008.1.2.4.95", "1.2.840.10008.1.2.4.205"}) {
    INFO(ts);
    Assoc a;
    a.pcs.push_back({1, kCtImage, {ts}, 0, ts});
    Ds plain(Ts::explicit_le);
    plain.str(0x0008, 0x0060, "CS", "CT").str(0x0010, 0x0010, "PN", "DEFLATE^JPIP").str(0x0010, 0x0020, "LO", "JPIP1");
    Bytes z(compressBound(uLong(plain.b.size())) + 64);
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    zs.next_in = plain.b.data();
    zs.avail_in = uInt(plain.b.size());
    zs.next_out = z.data();
    zs.avail_out = uInt(z.size());
    REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    z.resize(zs.total_out);
    deflateEnd(&zs);
    Stream s;
    s.add(Dir::to_server, associate(a, false));
    s.add(Dir::to_client, associate(a, true));
    s.add(Dir::to_server, message(1, command(store_rq(1)), &z));
    s.add(Dir::to_client, message(1, command(response(0x8001, 1))));
    Harness h = run(s);
    CHECK(h.events("anomaly").empty());
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["dicom"]["ops"][0]["modality"] == "CT");
    CHECK(ev[0]["dicom"]["phi"] == json::array({"PatientName", "PatientID"}));
  }
}

TEST_CASE("PHI after a large undefined-length sequence is seen", "[dicom][dissector]") {
  Assoc a;
  a.pcs.push_back({1, kCtImage, {kExplicitLe}, 0, kExplicitLe});
  Ds d(Ts::explicit_le);
  d.str(0x0008, 0x0060, "CS", "CT");
  d.seq_begin(0x0008, 0x1140);
  for (int i = 0; i < 2000; ++i)
    d.item_begin().str(0x0008, 0x1150, "UI", kCtImage).str(0x0008, 0x1155, "UI", "1.2.3.4.5." + std::to_string(i)).item_end();
  d.seq_end();
  d.str(0x0010, 0x0010, "PN", "DOE^JOHN");
  d.raw(0x0009, 0x1000, "OB", Bytes(1100 * 1024, 0));  // a private value over the walk budget
  d.str(0x0010, 0x0020, "LO", "PID0001");
  d.pixel(1000);
  Stream s;
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  s.add(Dir::to_server, message(1, command(store_rq(1)), &d.b, 16000));
  s.add(Dir::to_client, message(1, command(response(0x8001, 1))));
  for (size_t chunk : {size_t(0), size_t(1460)}) {
    INFO("chunk " << chunk);
    Harness h = run(s, chunk);
    CHECK(h.events("anomaly").empty());
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    const json& op = ev[0]["dicom"]["ops"][0];
    CHECK_FALSE(op.contains("truncated"));
    CHECK(op["pixel_data"] == true);
    CHECK(op["phi"] == json::array({"PatientName", "PatientID"}));
    CHECK(h.max_pending() < 70000);
  }
}

namespace {
// The ops of the one dicom event of a harness.
json only_ops(const Harness& h) {
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  return ev[0]["dicom"]["ops"];
}
const json& op_of(const json& ops, uint16_t msg_id) {
  for (const json& op : ops)
    if (op["msg_id"] == msg_id) return op;
  FAIL("no op " << msg_id);
  return ops;
}
}  // namespace

TEST_CASE("every truncated op says why", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID12345");
  ile(ds, 0x0011, 0x1000, Bytes(3000, 0x55));
  ile(ds, 0x0010, 0x0010, "DOE^JOHN");
  Cmd echo; echo.field = 0x0030; echo.msg_id = 9; echo.sop_class = kVerification;
  auto start = [&](Harness& h) {
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
  };
  auto reason = [](const json& op) {
    CHECK(op["truncated"] == true);
    return op.value("truncated_reason", std::string());
  };
  SECTION("a hole inside a dataset fragment") {
    Bytes p = pdata(1, 2, ds);
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, message(1, command(store_rq(7))));
    h.feed(Dir::to_server, std::span<const uint8_t>(p).first(1000));
    h.gap(Dir::to_server, 1000);
    h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(2000));
    h.finish();
    CHECK(reason(op_of(only_ops(h), 7)) == "gap");
  }
  SECTION("a hole across PDU headers") {
    Bytes s = pdata(1, 0, Bytes(ds.begin(), ds.begin() + 2000));
    append(s, pdata(1, 2, Bytes(ds.begin() + 2000, ds.end())));
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, message(1, command(store_rq(7))));
    h.feed(Dir::to_server, std::span<const uint8_t>(s).first(1500));
    h.gap(Dir::to_server, 1100);
    h.feed(Dir::to_server, std::span<const uint8_t>(s).subspan(2600));
    h.finish();
    CHECK(reason(op_of(only_ops(h), 7)) == "gap");
  }
  SECTION("a hole inside the command set") {
    Bytes p = pdata(1, 3, command(store_rq(7)));
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, std::span<const uint8_t>(p).first(12 + 22));
    h.gap(Dir::to_server, 8);
    h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(12 + 30));
    h.feed(Dir::to_server, pdata(1, 2, ds));
    h.finish();
    CHECK(reason(op_of(only_ops(h), 7)) == "gap");
  }
  for (bool abort : {true, false}) {
    DYNAMIC_SECTION("the association ends before the last fragment, abort " << abort) {
      Harness h(medmon::dicom::make_dissector());
      start(h);
      h.feed(Dir::to_server, message(1, command(store_rq(7))));
      h.feed(Dir::to_server, pdata(1, 0, Bytes(ds.begin(), ds.begin() + 100)));  // inside an element
      if (abort) h.feed(Dir::to_client, abort_pdu(2, 0));
      h.finish();
      const json op = op_of(only_ops(h), 7);
      CHECK(reason(op) == "ended");
      CHECK(op["phi"] == json::array({"PatientID"}));
      CHECK(h.events("anomaly").empty());  // the end is no dataset_truncated
    }
  }
  SECTION("a command instead of the announced dataset") {
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, message(1, command(store_rq(7))));
    h.feed(Dir::to_server, message(3, command(echo)));
    h.finish();
    CHECK(reason(op_of(only_ops(h), 7)) == "interrupted");
    CHECK_FALSE(op_of(only_ops(h), 9).contains("truncated"));
  }
  SECTION("a command before the dataset's last fragment") {
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, message(1, command(store_rq(7))));
    h.feed(Dir::to_server, pdata(1, 0, Bytes(ds.begin(), ds.begin() + 100)));
    h.feed(Dir::to_server, message(3, command(echo)));
    h.finish();
    CHECK(reason(op_of(only_ops(h), 7)) == "interrupted");
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 1);
    CHECK(an[0]["anomaly"]["name"] == "missing_dataset");
  }
  SECTION("a malformed element") {
    Bytes bad = ds;
    bad.insert(bad.begin() + 16, {0x10, 0x00, 0x30, 0x00, 0x20, 0x00, 0x00, 0x00});  // length past the dataset
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, message(1, command(store_rq(7)), &bad));
    h.finish();
    CHECK(reason(op_of(only_ops(h), 7)) == "malformed");
  }
  SECTION("a PDV whose length cannot be right") {
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, message(1, command(store_rq(7))));
    Bytes v;  // a fragment, then a PDV of length 1: the rest of the PDU is stepped over
    be32(v, 2 + 16); put8(v, 1); put8(v, 0); append(v, Bytes(ds.begin(), ds.begin() + 16));
    be32(v, 1); put8(v, 1); put8(v, 0); append(v, Bytes(ds.begin() + 16, ds.end()));
    h.feed(Dir::to_server, pdu(4, v));
    h.feed(Dir::to_server, message(3, command(echo)));
    h.finish();
    CHECK(reason(op_of(only_ops(h), 7)) == "bad_framing");
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 1);  // no missing_dataset besides
    CHECK(an[0]["anomaly"]["name"] == "bad_pdv_length");
  }
  SECTION("sequences nested deeper than the walker follows") {
    Bytes deep;
    for (int i = 0; i < 20; ++i) { le16(deep, 0x0008); le16(deep, 0x1115); le32(deep, 0xFFFFFFFF); le16(deep, 0xFFFE); le16(deep, 0xE000); le32(deep, 0xFFFFFFFF); }
    for (int i = 0; i < 20; ++i) { le16(deep, 0xFFFE); le16(deep, 0xE00D); le32(deep, 0); le16(deep, 0xFFFE); le16(deep, 0xE0DD); le32(deep, 0); }
    Bytes d = ds;
    d.insert(d.begin() + 16, deep.begin(), deep.end());
    Harness h(medmon::dicom::make_dissector());
    start(h);
    h.feed(Dir::to_server, message(1, command(store_rq(7)), &d));
    h.finish();
    const json op = op_of(only_ops(h), 7);
    CHECK(reason(op) == "depth_limit");
    CHECK(op["phi"] == json::array({"PatientID"}));
    auto an = h.events("anomaly");
    REQUIRE(an.size() == 1);
    CHECK(an[0]["anomaly"]["name"] == "dataset_bad_sequence");
  }
}

TEST_CASE("bytes a hole cut off after are still walked", "[dicom][dissector]") {
  // The walk waits for the bytes held to double while a sequence is incomplete: what arrived
  // whole before a hole is read all the same.
  Assoc a = verification_store_assoc();
  Bytes ds;
  Bytes items;
  for (int i = 0; i < 100; ++i) {
    le16(items, 0xFFFE); le16(items, 0xE000); le32(items, 0xFFFFFFFF);
    ile(items, 0x0008, 0x1155, "1.2.3.4.5.6.7.8.9.10.11.12");
    le16(items, 0xFFFE); le16(items, 0xE00D); le32(items, 0);
  }
  le16(ds, 0x0008); le16(ds, 0x1140); le32(ds, 0xFFFFFFFF);
  append(ds, items);
  le16(ds, 0xFFFE); le16(ds, 0xE0DD); le32(ds, 0);
  ile(ds, 0x0010, 0x0020, "PID12345");
  size_t after_pid = ds.size();
  ile(ds, 0x0011, 0x1000, Bytes(3000, 0x55));
  REQUIRE(after_pid > 3000);
  Bytes p = pdata(1, 2, ds);
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  h.feed(Dir::to_server, message(1, command(store_rq(7))));
  size_t upto = 12 + after_pid + 100;
  h.feed(Dir::to_server, std::span<const uint8_t>(p).first(upto), 100);
  h.gap(Dir::to_server, 1000);
  h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(upto + 1000));
  h.finish();
  const json op = op_of(only_ops(h), 7);
  CHECK(op["truncated_reason"] == "gap");
  CHECK(op["phi"] == json::array({"PatientID"}));
  CHECK(op["patient_ids"].size() == 1);
}

TEST_CASE("several holes in one command set are each accounted for", "[dicom][dissector]") {
  // store_rq(7): group length 0..12, SOP Class UID 12..46, CommandField 46..56, Message ID
  // 56..66, Priority 66..76, CommandDataSetType 76..86, SOP Instance UID 86..106. Two holes,
  // [20, 30) in the SOP Class UID value and [96, 104) in the SOP Instance UID value: the
  // elements between them arrived and are read.
  Assoc a = verification_store_assoc();
  Bytes cmd = command(store_rq(7));
  REQUIRE(cmd.size() == 106);
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID12345");
  Bytes p = pdata(1, 3, cmd);
  for (size_t chunk : {size_t(0), size_t(1), size_t(5)}) {
    INFO("chunk " << chunk);
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    h.feed(Dir::to_server, std::span<const uint8_t>(p).first(12 + 20), chunk);
    h.gap(Dir::to_server, 10);
    h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(12 + 30, 66), chunk);
    h.gap(Dir::to_server, 8);
    h.feed(Dir::to_server, std::span<const uint8_t>(p).subspan(12 + 104), chunk);
    h.feed(Dir::to_server, pdata(1, 2, ds), chunk);
    h.finish();
    CHECK(h.events("anomaly").empty());
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    CHECK(ev[0]["dicom"]["gaps"] == 2);
    const json& ops = ev[0]["dicom"]["ops"];
    REQUIRE(ops.size() == 1);
    const json& op = ops[0];
    CHECK(op["command"] == "C-STORE");    // between the holes
    CHECK(op["msg_id"] == 7);             // between the holes
    CHECK(op["priority"] == "medium");    // between the holes
    CHECK(op["truncated_reason"] == "gap");
    CHECK_FALSE(op.contains("sop_class"));     // hit by the first hole
    CHECK_FALSE(op.contains("sop_instance"));  // hit by the second
    CHECK(op["phi"] == json::array({"PatientID"}));
  }
}

TEST_CASE("a hole from inside a command set into the next PDU keeps what arrived of the command", "[dicom][dissector]") {
  // store_rq(7): CommandField 46..56, Message ID 56..66; the hole takes the command set from 70
  // on and the start of the dataset's PDU.
  Assoc a = verification_store_assoc();
  Bytes cmd = command(store_rq(7));
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID12345");
  ile(ds, 0x0011, 0x1000, Bytes(3000, 0x55));
  ile(ds, 0x0010, 0x0010, "DOE^JOHN");
  Bytes s = pdata(1, 3, cmd);
  append(s, pdata(1, 2, ds));
  for (size_t chunk : {size_t(0), size_t(3)}) {
    INFO("chunk " << chunk);
    Harness h(medmon::dicom::make_dissector());
    h.feed(Dir::to_server, associate(a, false));
    h.feed(Dir::to_client, associate(a, true));
    h.feed(Dir::to_server, std::span<const uint8_t>(s).first(12 + 70), chunk);
    h.gap(Dir::to_server, 500);
    h.feed(Dir::to_server, std::span<const uint8_t>(s).subspan(12 + 70 + 500), chunk);
    h.feed(Dir::to_client, message(1, command(response(0x8001, 7))), chunk);
    h.feed(Dir::to_server, release_rq(), chunk);
    h.feed(Dir::to_client, release_rp(), chunk);
    h.finish();
    CHECK(h.events("anomaly").empty());
    auto ev = h.events("dicom");
    REQUIRE(ev.size() == 1);
    const json& ops = ev[0]["dicom"]["ops"];
    REQUIRE(ops.size() == 1);
    const json& op = ops[0];
    CHECK(op["command"] == "C-STORE");
    CHECK(op["msg_id"] == 7);
    CHECK(op["request_seen"] == true);
    CHECK(op["sop_class"] == kCtImage);
    CHECK(op["truncated_reason"] == "gap");
    CHECK(op["status"] == 0);
  }
}

TEST_CASE("a dataset in a private transfer syntax is read as its first element header says", "[dicom][dissector]") {
  // GE's private "Implicit VR Little Endian, big endian pixel data" syntax: implicit VR LE
  // headers. An unknown syntax is not assumed to be explicit VR.
  const char* kGePrivate = "1.2.840.113619.5.2";
  Assoc a;
  a.pcs.push_back({1, kCtImage, {kGePrivate, kImplicit}, 0, kGePrivate});
  Bytes ds = ct_dataset(Ts::implicit_le, 100);
  Stream s;
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  s.add(Dir::to_server, message(1, command(store_rq(1)), &ds));
  s.add(Dir::to_client, message(1, command(response(0x8001, 1))));
  Harness h = run(s);
  CHECK(h.events("anomaly").empty());
  const json op = op_of(only_ops(h), 1);
  CHECK(op["modality"] == "CT");
  CHECK(op["pixel_data"] == true);
  CHECK(op["phi"] == json::array({"AccessionNumber", "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDsSequence"}));
  CHECK_FALSE(op.contains("truncated"));
}

TEST_CASE("a C-STORE status is named as C-STORE means it", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes ds;
  ile(ds, 0x0008, 0x0060, "CT");
  Cmd rsp = response(0x8001, 1);
  rsp.status = 0xB000;  // C-STORE: coercion of data elements, not sub-operation failures
  Stream s;
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  s.add(Dir::to_server, message(1, command(store_rq(1)), &ds));
  s.add(Dir::to_client, message(1, command(rsp)));
  Harness h = run(s);
  const json op = op_of(only_ops(h), 1);
  CHECK(op["status_class"] == "warning");
  CHECK(op["status_name"] == "coercion_of_data_elements");
}

TEST_CASE("an N-CREATE's instance is the one its response names when the request named none", "[dicom][dissector]") {
  // MPPS: the SCU may leave Affected SOP Instance UID out of N-CREATE-RQ; the SCP then creates
  // the instance and names it in the response (PS3.7 10.1.5.1.4).
  const char* kMpps = "1.2.840.10008.3.1.2.3.3";
  Assoc a;
  a.pcs.push_back({1, kMpps, {kImplicit}, 0, kImplicit});
  Bytes ds;
  ile(ds, 0x0010, 0x0010, "DOE^JOHN");
  Cmd rq; rq.field = 0x0140; rq.msg_id = 3; rq.sop_class = kMpps; rq.dataset = true;
  Cmd rsp = response(0x8140, 3); rsp.sop_class = kMpps; rsp.sop_instance = "1.2.3.4.5.6.7";
  Stream s;
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  s.add(Dir::to_server, message(1, command(rq), &ds));
  s.add(Dir::to_client, message(1, command(rsp)));
  Harness h = run(s);
  const json op = op_of(only_ops(h), 3);
  CHECK(op["command"] == "N-CREATE");
  CHECK(op.value("sop_instance", std::string()).rfind("phi:", 0) == 0);
}

TEST_CASE("the dataset of a command dropped as too long is skipped quietly, and counted", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  // A command set past kMaxCommandSet: a long private element pads it.
  Bytes cmd = command(store_rq(7));
  ile(cmd, 0x0000, 0x5000, Bytes(medmon::dicom::kMaxCommandSet, 0x20));
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID12345");
  h.feed(Dir::to_server, message(1, cmd, &ds, 16000));
  // The next message is read as usual.
  Cmd echo; echo.field = 0x0030; echo.msg_id = 9; echo.sop_class = kVerification;
  h.feed(Dir::to_server, message(3, command(echo)));
  h.feed(Dir::to_client, message(3, command(response(0x8030, 9))));
  h.finish();
  CHECK(anomaly_names(h) == std::vector<std::string>{"command_too_long"});
  CHECK(h.counter("dicom.datasets_skipped") == 1);
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0]["dicom"]["ops"].size() == 1);
  CHECK(ev[0]["dicom"]["ops"][0]["command"] == "C-ECHO");
}

TEST_CASE("a new A-ASSOCIATE-RQ cuts the messages in progress in both directions", "[dicom][dissector]") {
  Assoc a;
  a.pcs.push_back({1, kFindStudyRoot, {kImplicit}, 0, kImplicit});
  a.pcs.push_back({3, kVerification, {kImplicit}, 0, kImplicit});
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  Cmd q; q.field = 0x0020; q.msg_id = 1; q.sop_class = kFindStudyRoot; q.dataset = true;
  Ds keys(Ts::implicit_le);
  keys.str(0x0008, 0x0052, "CS", "STUDY").str(0x0010, 0x0020, "LO", "");
  h.feed(Dir::to_server, message(1, command(q), &keys.b));
  // A pending response whose dataset's last fragment never comes.
  Cmd r; r.field = 0x8020; r.responded = 1; r.status = 0xFF00; r.dataset = true;
  h.feed(Dir::to_client, message(1, command(r)));
  Ds m(Ts::implicit_le);
  m.str(0x0010, 0x0020, "LO", "OLDPID01");
  h.feed(Dir::to_client, pdata(1, 0, m.b));
  // A new association on the same connection, one echo in it.
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  Cmd echo; echo.field = 0x0030; echo.msg_id = 1; echo.sop_class = kVerification;
  h.feed(Dir::to_server, message(3, command(echo)));
  h.feed(Dir::to_client, message(3, command(response(0x8030, 1))));
  h.finish();
  // The RQ without a release is unexpected; nothing of the old response reaches the new association.
  CHECK(anomaly_names(h) == std::vector<std::string>{"unexpected_pdu"});
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 2);
  const json& old_op = op_of(ev[0]["dicom"]["ops"], 1);
  CHECK(old_op["command"] == "C-FIND");
  CHECK(old_op["truncated"] == true);
  CHECK(old_op["truncated_reason"] == "ended");
  const json& d2 = ev[1]["dicom"];
  REQUIRE(d2["ops"].size() == 1);
  CHECK(d2["ops"][0]["command"] == "C-ECHO");
  CHECK(d2["ops"][0].value("truncated", false) == false);
  CHECK(!d2.contains("phi"));
}

TEST_CASE("a capture joined inside an explicit VR big endian association reads its datasets", "[dicom][dissector]") {
  // No A-ASSOCIATE seen, so no negotiated syntax: the byte order comes from the dataset.
  Bytes ds = ct_dataset(Ts::explicit_be, 2000);
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, message(1, command(store_rq(4)), &ds, 700), 1460);
  h.feed(Dir::to_client, message(1, command(response(0x8001, 4))));
  h.feed(Dir::to_server, release_rq());
  h.feed(Dir::to_client, release_rp());
  h.finish();
  CHECK(h.events("anomaly").empty());
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["dicom"]["start_seen"] == false);
  const json op = op_of(only_ops(h), 4);
  CHECK(op["modality"] == "CT");
  CHECK(op["manufacturer"] == "ACME Medical");
  CHECK(op["pixel_data"] == true);
  CHECK(op["phi"] == json::array({"AccessionNumber", "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDsSequence"}));
  CHECK_FALSE(op.contains("truncated"));
  // The guess depends on the bytes only, not on how they were delivered or fragmented.
  for (size_t frag : {size_t(100), size_t(255), size_t(257), size_t(4096)}) {
    for (size_t chunk : {size_t(1), size_t(13), size_t(256)}) {
      INFO("fragment " << frag << " chunk " << chunk);
      Harness g(medmon::dicom::make_dissector());
      g.feed(Dir::to_server, message(1, command(store_rq(4)), &ds, frag), chunk);
      g.feed(Dir::to_client, message(1, command(response(0x8001, 4))));
      g.feed(Dir::to_server, release_rq());
      g.feed(Dir::to_client, release_rp());
      g.finish();
      auto gev = g.events("dicom");
      REQUIRE(gev.size() == 1);
      CHECK(gev[0]["dicom"]["ops"] == ev[0]["dicom"]["ops"]);  // the PDU counts differ, not the ops
    }
  }
}

TEST_CASE("every dataset no op walked is counted once in dicom.datasets_skipped", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  Bytes ds;
  ile(ds, 0x0010, 0x0020, "PID12345");
  ile(ds, 0x0011, 0x1000, Bytes(3000, 0x55));
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  // Two datasets in three fragments each, with no command before them.
  for (int n = 0; n < 2; ++n) {
    h.feed(Dir::to_server, pdata(1, 0, Bytes(ds.begin(), ds.begin() + 1200)));
    h.feed(Dir::to_server, pdata(1, 0, Bytes(ds.begin() + 1200, ds.begin() + 2400)));
    h.feed(Dir::to_server, pdata(1, 2, Bytes(ds.begin() + 2400, ds.end())));
  }
  Cmd echo; echo.field = 0x0030; echo.msg_id = 9; echo.sop_class = kVerification;
  h.feed(Dir::to_server, message(3, command(echo)));
  h.feed(Dir::to_client, message(3, command(response(0x8030, 9))));
  h.finish();
  CHECK(h.counter("dicom.datasets_skipped") == 2);
  auto names = anomaly_names(h);
  CHECK(std::count(names.begin(), names.end(), "dataset_without_command") == 2);  // one per dataset, not per fragment
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  REQUIRE(ev[0]["dicom"]["ops"].size() == 1);
  CHECK_FALSE(ev[0]["dicom"].contains("phi"));
}

TEST_CASE("the command set's SOP Instance UID is listed in phi_tier2, its value never written", "[dicom][dissector]") {
  Assoc a = verification_store_assoc();
  a.pcs.push_back({5, "1.2.840.10008.3.1.2.3.3", {kImplicit}, 0, kImplicit});
  Bytes ds;  // no SOPInstanceUID in the dataset: only the command names the instance
  ile(ds, 0x0008, 0x0060, "CT");
  Cmd st = store_rq(1); st.sop_instance = "1.2.999.1.2.3";
  // N-DELETE-RQ names its instance by Requested SOP Instance UID (0000,1001), with no dataset.
  Bytes del_body;
  ile(del_body, 0, 0x0003, even("1.2.840.10008.3.1.2.3.3", '\0'));
  ile(del_body, 0, 0x0100, us(0x0150));
  ile(del_body, 0, 0x0110, us(2));
  ile(del_body, 0, 0x0800, us(0x0101));
  ile(del_body, 0, 0x1001, even("1.2.999.4.5.6", '\0'));
  Bytes del;
  ile(del, 0, 0, ul(uint32_t(del_body.size())));
  append(del, del_body);
  Stream s;
  s.add(Dir::to_server, associate(a, false));
  s.add(Dir::to_client, associate(a, true));
  s.add(Dir::to_server, message(1, command(st), &ds));
  s.add(Dir::to_client, message(1, command(response(0x8001, 1))));
  s.add(Dir::to_server, message(5, del));
  s.add(Dir::to_client, message(5, command(response(0x8150, 2))));
  s.add(Dir::to_server, release_rq());
  s.add(Dir::to_client, release_rp());
  Harness h = run(s);
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  const json store = op_of(d["ops"], 1), remove = op_of(d["ops"], 2);
  CHECK(store["phi_tier2"] == json::array({"AffectedSOPInstanceUID"}));
  CHECK(remove["command"] == "N-DELETE");
  CHECK(remove["phi_tier2"] == json::array({"RequestedSOPInstanceUID"}));
  CHECK(remove.value("sop_instance", std::string()).rfind("phi:", 0) == 0);
  CHECK(d["phi_tier2"] == json::array({"AffectedSOPInstanceUID", "RequestedSOPInstanceUID"}));
  CHECK_FALSE(d.contains("phi"));
  for (const std::string& line : h.lines()) {
    CHECK(line.find("1.2.999.1.2.3") == std::string::npos);
    CHECK(line.find("1.2.999.4.5.6") == std::string::npos);
  }
}

TEST_CASE("capture starting at a P-DATA-TF boundary inside a dataset raises no anomaly", "[dicom][dissector]") {
  // The first PDU of the direction is a dataset fragment whose command came before the capture.
  Bytes ds = ct_dataset(Ts::explicit_le, 20000);
  Bytes rest;
  for (size_t o = 4000; o < ds.size(); o += 4000) {
    size_t n = std::min<size_t>(4000, ds.size() - o);
    append(rest, pdata(1, uint8_t(o + n == ds.size() ? 2 : 0), Bytes(ds.begin() + o, ds.begin() + o + n)));
  }
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, rest, 1460);
  h.feed(Dir::to_client, message(1, command(response(0x8001, 1))));
  Bytes second = ct_dataset(Ts::explicit_le, 300, "Smith^Anna");
  h.feed(Dir::to_server, message(1, command(store_rq(2)), &second, 4000));
  h.feed(Dir::to_client, message(1, command(response(0x8001, 2))));
  h.feed(Dir::to_server, release_rq());
  h.feed(Dir::to_client, release_rp());
  h.finish();
  CHECK(anomaly_names(h).empty());
  CHECK(h.counter("dicom.datasets_skipped") == 1);
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["dicom"]["start_seen"] == false);
  REQUIRE(ev[0]["dicom"]["ops"].size() == 2);
}

TEST_CASE("A request evicted unanswered and its late response say so", "[dicom][dissector]") {
  Assoc a;
  a.pcs.push_back({1, kVerification, {kImplicit}, 0, kImplicit});
  Harness h(medmon::dicom::make_dissector());
  h.feed(Dir::to_server, associate(a, false));
  h.feed(Dir::to_client, associate(a, true));
  // One more request than may wait: Message ID 1 is written out unanswered.
  for (int id = 1; id <= 257; ++id) {
    Cmd e; e.field = 0x0030; e.msg_id = uint16_t(id); e.sop_class = kVerification;
    h.feed(Dir::to_server, message(1, command(e)));
  }
  Cmd r; r.field = 0x8030; r.responded = 1; r.status = 0;
  h.feed(Dir::to_client, message(1, command(r)));
  h.finish();
  auto ev = h.events("dicom");
  REQUIRE(ev.size() == 1);
  const json& d = ev[0]["dicom"];
  CHECK(d["ops_evicted"] == 1);
  const json& first = d["ops"][0];
  CHECK(first["msg_id"] == 1);
  CHECK(first["request_seen"] == true);
  CHECK(first["evicted"] == true);
  CHECK(first["final"] == false);
  // The response comes out as soon as it is final, naming its evicted request.
  const json& late = d["ops"][1];
  CHECK(late["msg_id"] == 1);
  CHECK(late["request_seen"] == false);
  CHECK(late["request_evicted"] == true);
  CHECK(late["responses"] == 1);
  CHECK(late["final"] == true);
  CHECK_FALSE(d["ops"][2].contains("evicted"));
}
