#include <catch2/catch.hpp>

#include "dissectors/dicom/names.h"
#include "dissectors/dicom/pdu.h"
#include "dissectors/dicom/test/builder.h"

using namespace medmon::dicom;
using namespace dtest;

namespace {
Assoc sample() {
  Assoc a;
  a.pcs.push_back({1, kCtImage, {kExplicitLe, kImplicit}, 0, kExplicitLe});
  a.pcs.push_back({3, kVerification, {kImplicit}, 3, ""});
  a.role = true;
  a.user_identity_type = 2;
  return a;
}
}  // namespace

TEST_CASE("A-ASSOCIATE-RQ items are parsed", "[dicom][pdu]") {
  Bytes rq = associate(sample(), false);
  AssociatePdu p;
  Issues is;
  REQUIRE(parse_associate(rq, p, is));
  CHECK(is.count == 0);
  CHECK_FALSE(p.is_ac);
  CHECK(p.version == 1);
  CHECK(p.called_ae == "PACS1");
  CHECK(p.calling_ae == "CT_SCANNER1");
  CHECK(p.app_context == "1.2.840.10008.3.1.1.1");
  REQUIRE(p.contexts.size() == 2);
  CHECK(p.contexts[0].id == 1);
  CHECK(p.str(p.contexts[0].abstract_syntax) == kCtImage);
  REQUIRE(p.contexts[0].ts_count == 2);
  CHECK(p.proposed(p.contexts[0], 0) == kExplicitLe);
  CHECK(p.proposed(p.contexts[0], 1) == kImplicit);
  CHECK(p.str(p.contexts[1].abstract_syntax) == kVerification);
  CHECK(p.proposed(p.contexts[1], 0) == kImplicit);
  CHECK(p.contexts[0].result == 0xFF);
  CHECK(p.has_max_pdu);
  CHECK(p.max_pdu == 16384);
  CHECK(p.impl_class_uid == "1.2.276.0.7230010.3.0.3.6.7");
  CHECK(p.impl_version == "OFFIS_DCMTK_367");
  CHECK(p.has_async);
  REQUIRE(p.roles.size() == 1);
  CHECK(p.roles[0].sop_class == kCtImage);
  CHECK(p.user_identity.present);
  CHECK(p.user_identity.type == 2);
  CHECK(p.user_identity.primary_length == 5);
  CHECK(p.user_identity.secondary_length == 6);
}

TEST_CASE("A-ASSOCIATE-AC results and accepted syntaxes", "[dicom][pdu]") {
  Bytes ac = associate(sample(), true);
  AssociatePdu p;
  Issues is;
  REQUIRE(parse_associate(ac, p, is));
  CHECK(p.is_ac);
  REQUIRE(p.contexts.size() == 2);
  CHECK(p.contexts[0].result == 0);
  CHECK(p.str(p.contexts[0].accepted_ts) == kExplicitLe);
  CHECK(p.contexts[1].result == 3);
  CHECK(p.user_identity_response);
}

TEST_CASE("hostile association PDUs give anomalies, never over-read", "[dicom][pdu]") {
  Bytes rq = associate(sample(), false);
  SECTION("item length past the PDU end") {
    Bytes bad = rq;
    bad[74 + 2] = 0xFF;  // application context item length
    bad[74 + 3] = 0xFF;
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(bad, p, is));
    REQUIRE(is.count >= 1);
    CHECK(std::string(is.items[0].name) == "item_past_end");
  }
  SECTION("PDU length larger than the bytes") {
    Bytes bad = rq;
    bad[2] = 0x7F;
    AssociatePdu p;
    Issues is;
    CHECK_FALSE(parse_associate(bad, p, is));
    CHECK(std::string(is.items[0].name) == "bad_pdu_length");
  }
  SECTION("every truncation") {
    for (size_t n = 0; n < rq.size(); ++n) {
      Bytes cut(rq.begin(), rq.begin() + n);
      // Keep the header consistent so the parser walks into the items.
      if (n >= 6) { uint32_t l = uint32_t(n - 6); cut[2] = uint8_t(l >> 24); cut[3] = uint8_t(l >> 16); cut[4] = uint8_t(l >> 8); cut[5] = uint8_t(l); }
      AssociatePdu p;
      Issues is;
      parse_associate(cut, p, is);
    }
    SUCCEED();
  }
}

TEST_CASE("reject and abort", "[dicom][pdu]") {
  AssociateReject rj;
  Issues is;
  REQUIRE(parse_reject(reject(1, 1, 3), rj, is));
  CHECK(rj.result == 1);
  CHECK(rj.source == 1);
  CHECK(rj.reason == 3);
  CHECK(reject_reason_name(1, 3) == "calling_ae_not_recognized");
  Abort ab;
  REQUIRE(parse_abort(abort_pdu(2, 6), ab, is));
  CHECK(ab.source == 2);
  CHECK(ab.reason == 6);
  CHECK(abort_reason_name(6) == "invalid_pdu_parameter_value");
}

TEST_CASE("content detection", "[dicom][pdu]") {
  Bytes rq = associate(sample(), false);
  CHECK(looks_like_associate(rq) == 1);
  CHECK(looks_like_associate(std::span<const uint8_t>(rq).first(40)) == -1);
  Bytes http = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'};
  CHECK(looks_like_associate(http) == 0);
  CHECK(looks_like_pdata(http) == 0);
  Cmd c;
  c.sop_class = kCtImage;
  Bytes m = message(1, command(c));
  CHECK(looks_like_pdata(m) == 1);
  // A command P-DATA found after garbage (capture started mid-stream).
  Bytes mid(300, 0x5A);
  append(mid, m);
  CHECK(find_command_pdata(mid) == 300);
  // PS3.8 9.3.2: other version bits and reserved fields are not tested by receivers (DCMTK
  // accepts them), so the probe does not test them either.
  Bytes v3 = rq;
  v3[7] = 3;
  CHECK(looks_like_associate(v3) == 1);
  Bytes rsv = rq;
  rsv[1] = 0xFF;
  rsv[9] = 1;
  CHECK(looks_like_associate(rsv) == 1);
  // What it does test: AE title bytes, and items of known types that fill the PDU exactly.
  Bytes ae = rq;
  ae[12] = 0x01;
  CHECK(looks_like_associate(ae) == 0);
  Bytes bad_item = rq;
  bad_item[74] = 0x33;
  CHECK(looks_like_associate(bad_item) == 0);
  Bytes overrun = rq;
  overrun[77] = 0xF0;  // the first item runs past the PDU
  CHECK(looks_like_associate(overrun) == 0);
  Bytes shorter = rq;
  shorter[5] = uint8_t(shorter[5] - 1);  // the PDU ends one byte inside the last item
  CHECK(looks_like_associate(shorter) == 0);
  // A large RQ whose first segment holds only its first items.
  CHECK(looks_like_associate(std::span<const uint8_t>(rq).first(100)) == 1);
}

TEST_CASE("an A-ASSOCIATE-RQ with items out of order, other version bits, reserved bytes set", "[dicom][pdu]") {
  Bytes rq = associate(sample(), false);
  // Move the Application Context item (first, at 74) behind the presentation contexts.
  size_t app_len = 4 + (size_t(rq[76]) << 8 | rq[77]);
  Bytes app(rq.begin() + 74, rq.begin() + 74 + app_len);
  Bytes moved(rq.begin(), rq.begin() + 74);
  moved.insert(moved.end(), rq.begin() + 74 + app_len, rq.end());
  append(moved, app);
  moved[1] = 0xFF;
  moved[7] = 3;
  CHECK(looks_like_associate(moved) == 1);
  AssociatePdu a;
  Issues is;
  REQUIRE(parse_associate(moved, a, is));
  CHECK(a.app_context == "1.2.840.10008.3.1.1.1");
  CHECK(a.version == 3);
  CHECK(a.contexts.size() == sample().pcs.size());
  std::vector<std::string> names;
  for (uint8_t i = 0; i < is.count; ++i) names.push_back(is.items[i].name);
  CHECK(names == std::vector<std::string>{"unusual_protocol_version", "reserved_not_zero"});
}

TEST_CASE("names", "[dicom][names]") {
  CHECK(uid_name(kCtImage) == "CTImageStorage");
  CHECK(uid_name(kExplicitLe) == "LittleEndianExplicit");
  CHECK(uid_name("1.2.3.4.999").empty());
  CHECK(command_name(0x8021) == "C-MOVE");
  CHECK(status_class(0xFF00) == StatusClass::pending);
  CHECK(status_class(0xA700) == StatusClass::failure);
  CHECK(status_class(0xB000) == StatusClass::warning);
  CHECK(status_class(0xC123) == StatusClass::failure);
  CHECK(status_class(0xFE00) == StatusClass::cancel);
  CHECK(status_class(0) == StatusClass::success);
  // B000 is a C-MOVE/C-GET warning about sub-operations, and a C-STORE warning that the SCP
  // coerced data elements.
  CHECK(status_name(0xB000, 0x8021) == "sub_operations_complete_with_failures");
  CHECK(status_name(0xB000, 0x8001) == "coercion_of_data_elements");
  CHECK(status_name(0xA900, 0x8001) == "dataset_does_not_match_sop_class");
  CHECK(status_name(0xA900, 0x8020) == "identifier_does_not_match_sop_class");
}

namespace {
// The PDU with `extra` items appended to its variable items, its length fixed.
Bytes with_items(Bytes p, const Bytes& extra) {
  append(p, extra);
  uint32_t len = uint32_t(p.size() - 6);
  for (int i = 0; i < 4; ++i) p[2 + i] = uint8_t(len >> (24 - 8 * i));
  return p;
}
// The PDU with its user information item (the builder puts it last) holding `sub` instead.
Bytes with_user_info(Bytes p, const Bytes& sub) {
  for (size_t pos = 74; pos + 4 <= p.size(); pos += 4 + (size_t(p[pos + 2]) << 8 | p[pos + 3]))
    if (p[pos] == 0x50) { p.resize(pos); break; }
  return with_items(p, item(0x50, sub));
}
bool has_issue(const Issues& is, std::string_view name) {
  for (uint8_t i = 0; i < is.count; ++i)
    if (name == is.items[i].name) return true;
  return false;
}
}  // namespace

TEST_CASE("A user identity response item needs its server-response length", "[dicom][pdu]") {
  Bytes none;  // a 2-byte length of zero: no server response, well formed
  be16(none, 0);
  Bytes resp;
  be16(resp, 3); append(resp, "abc");
  Bytes short_resp;
  be16(short_resp, 9); append(short_resp, "abc");
  struct Case { Bytes value; bool bad; };
  for (const Case& c : {Case{{}, true}, Case{{0}, true}, Case{none, false}, Case{resp, false},
                        Case{short_resp, true}}) {
    Bytes ui;
    Bytes mx; be32(mx, 16384); append(ui, item(0x51, mx));
    append(ui, item(0x52, "1.2.3.4"));
    append(ui, item(0x59, c.value));
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_user_info(associate(sample(), true), ui), p, is));
    CHECK(p.user_identity_response);
    CHECK(has_issue(is, "bad_item_length") == c.bad);
    CHECK_FALSE(has_issue(is, "unexpected_item"));
  }
}

TEST_CASE("A user identity response in a request is unexpected", "[dicom][pdu]") {
  Bytes resp;
  be16(resp, 0);
  Bytes ui;
  Bytes mx; be32(mx, 16384); append(ui, item(0x51, mx));
  append(ui, item(0x59, resp));
  AssociatePdu p;
  Issues is;
  REQUIRE(parse_associate(with_user_info(associate(sample(), false), ui), p, is));
  CHECK(has_issue(is, "unexpected_item"));
}

TEST_CASE("A repeated application context or user information item keeps the first", "[dicom][pdu]") {
  Bytes rq = associate(sample(), false);
  {
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_items(rq, item(0x10, "1.2.3.999")), p, is));
    CHECK(p.app_context == "1.2.840.10008.3.1.1.1");
    CHECK(has_issue(is, "unexpected_item"));
  }
  {
    Bytes ui;
    Bytes mx; be32(mx, 4096); append(ui, item(0x51, mx));
    append(ui, item(0x52, "1.2.3.999"));
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_items(rq, item(0x50, ui)), p, is));
    CHECK(p.max_pdu == 16384);
    CHECK(p.impl_class_uid == "1.2.276.0.7230010.3.0.3.6.7");
    CHECK(p.user_identity.type == 2);
    CHECK(has_issue(is, "unexpected_item"));
  }
  {
    // A credential in the ignored item still went over the wire in clear.
    Assoc a = sample();
    a.user_identity_type = 0;
    Bytes u; put8(u, 2); put8(u, 0); be16(u, 3); append(u, "bob"); be16(u, 2); append(u, "pw");
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_items(associate(a, false), item(0x50, item(0x58, u))), p, is));
    CHECK(p.user_identity.present);
    CHECK(p.user_identity.passcode_sent);
    CHECK(has_issue(is, "unexpected_item"));
  }
}

namespace {
// A presentation context item of `type` (0x20 RQ, 0x21 AC) with `sub` as its sub-items.
Bytes context_item(uint8_t type, uint8_t id, uint8_t result, const Bytes& sub) {
  Bytes v;
  put8(v, id); put8(v, 0); put8(v, result); put8(v, 0);
  append(v, sub);
  return item(type, v);
}
size_t issue_count(const Issues& is, std::string_view name) {
  size_t n = 0;
  for (uint8_t i = 0; i < is.count; ++i) n += name == is.items[i].name;
  return n;
}
}  // namespace

TEST_CASE("A repeated user information sub-item that PS3.7 allows once keeps the first", "[dicom][pdu]") {
  Bytes ui;
  Bytes mx; be32(mx, 16384); append(ui, item(0x51, mx));
  append(ui, item(0x52, "1.2.3.4"));
  Bytes aw; be16(aw, 1); be16(aw, 1); append(ui, item(0x53, aw));
  append(ui, item(0x55, "FIRST_V1"));
  Bytes mx2; be32(mx2, 1024); append(ui, item(0x51, mx2));
  append(ui, item(0x52, "1.2.3.999"));
  Bytes aw2; be16(aw2, 7); be16(aw2, 9); append(ui, item(0x53, aw2));
  append(ui, item(0x55, "SECOND_V2"));
  {
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_user_info(associate(sample(), false), ui), p, is));
    CHECK(p.max_pdu == 16384);
    CHECK(p.impl_class_uid == "1.2.3.4");
    CHECK(p.async_invoked == 1);
    CHECK(p.async_performed == 1);
    CHECK(p.impl_version == "FIRST_V1");
    CHECK(issue_count(is, "unexpected_item") == 4);
  }
  {
    // The AC's user identity response, too.
    Bytes ac_ui = ui;
    Bytes r1; be16(r1, 0); append(ac_ui, item(0x59, r1));
    Bytes r2; be16(r2, 3); append(r2, "abc"); append(ac_ui, item(0x59, r2));
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_user_info(associate(sample(), true), ac_ui), p, is));
    CHECK(p.user_identity_response);
    CHECK(p.user_identity_response_length == 0);
    CHECK(p.max_pdu == 16384);
    CHECK(issue_count(is, "unexpected_item") == 5);
    CHECK_FALSE(has_issue(is, "bad_item_length"));
  }
  {
    // Items given once raise nothing; role selections and extended negotiations may repeat.
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(associate(sample(), false), p, is));
    CHECK(is.count == 0);
  }
}

TEST_CASE("A presentation context keeps its first abstract syntax, and an AC's first transfer syntax", "[dicom][pdu]") {
  {
    // RQ: one abstract syntax and one or more transfer syntaxes (PS3.8 9.3.2.2).
    Bytes sub = item(0x30, kCtImage);
    append(sub, item(0x40, kExplicitLe));
    append(sub, item(0x30, kVerification));
    append(sub, item(0x40, kImplicit));
    Assoc a = sample();
    a.pcs.clear();
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_items(associate(a, false), context_item(0x20, 1, 0xFF, sub)), p, is));
    REQUIRE(p.contexts.size() == 1);
    CHECK(p.str(p.contexts[0].abstract_syntax) == kCtImage);
    REQUIRE(p.contexts[0].ts_count == 2);  // several transfer syntaxes are the rule
    CHECK(p.proposed(p.contexts[0], 1) == kImplicit);
    CHECK(issue_count(is, "unexpected_item") == 1);
  }
  {
    // AC: exactly one transfer syntax (PS3.8 9.3.3.2).
    Bytes sub = item(0x40, kExplicitLe);
    append(sub, item(0x40, kImplicit));
    Assoc a = sample();
    a.pcs.clear();
    AssociatePdu p;
    Issues is;
    REQUIRE(parse_associate(with_items(associate(a, true), context_item(0x21, 1, 0, sub)), p, is));
    REQUIRE(p.contexts.size() == 1);
    CHECK(p.str(p.contexts[0].accepted_ts) == kExplicitLe);
    CHECK(issue_count(is, "unexpected_item") == 1);
  }
}

TEST_CASE("Of two user identity items, the one that carries the credential is reported", "[dicom][pdu]") {
  Assoc a = sample();
  a.user_identity_type = 1;         // a user name only
  a.second_user_identity_type = 2;  // then a user name and a passcode
  AssociatePdu p;
  Issues is;
  REQUIRE(parse_associate(associate(a, false), p, is));
  CHECK(p.user_identity.type == 2);
  CHECK(p.user_identity.secondary_length == 6);
  CHECK(p.user_identity.passcode_sent);
  CHECK(p.user_identity.credential_sent);
  CHECK(has_issue(is, "unexpected_item"));
  // Neither carries one: the first is reported.
  a.second_user_identity_type = 1;
  a.user_identity_type = 1;
  AssociatePdu q;
  Issues is2;
  REQUIRE(parse_associate(associate(a, false), q, is2));
  CHECK(q.user_identity.type == 1);
  CHECK_FALSE(q.user_identity.credential_sent);
}
