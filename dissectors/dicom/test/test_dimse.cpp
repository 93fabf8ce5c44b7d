#include <catch2/catch.hpp>

#include "dissectors/dicom/dimse.h"
#include "dissectors/dicom/test/builder.h"

using namespace medmon::dicom;
using namespace dtest;

TEST_CASE("C-STORE-RQ command set", "[dicom][dimse]") {
  Cmd c;
  c.field = 0x0001;
  c.msg_id = 7;
  c.sop_class = kCtImage;
  c.sop_instance = "1.2.3.4";
  c.dataset = true;
  c.priority = 2;
  Command out;
  Issues is;
  REQUIRE(parse_command(command(c), out, is));
  CHECK(is.count == 0);
  CHECK(out.field == 1);
  CHECK(out.message_id == 7);
  CHECK(out.affected_sop_class == kCtImage);
  CHECK(out.affected_sop_instance == "1.2.3.4");
  CHECK(out.priority == 2);
  CHECK(out.has_dataset());
}

TEST_CASE("C-MOVE-RSP with sub-operations", "[dicom][dimse]") {
  Cmd c;
  c.field = 0x8021;
  c.responded = 3;
  c.status = 0xFF00;
  c.remaining = 2;
  c.completed = 1;
  c.failed = 0;
  c.warning = 0;
  Command out;
  Issues is;
  REQUIRE(parse_command(command(c), out, is));
  CHECK(out.responded_id == 3);
  CHECK(out.status == 0xFF00);
  CHECK(out.remaining == 2);
  CHECK(out.completed == 1);
  CHECK((out.has & Command::kFailed));
  CHECK_FALSE(out.has_dataset());
}

TEST_CASE("C-MOVE-RQ move destination", "[dicom][dimse]") {
  Cmd c;
  c.field = 0x0021;
  c.sop_class = kMoveStudyRoot;
  c.move_dest = "WORKSTATION1";
  c.dataset = true;
  Command out;
  Issues is;
  REQUIRE(parse_command(command(c), out, is));
  CHECK(out.move_destination == "WORKSTATION1");
}

TEST_CASE("hostile command sets", "[dicom][dimse]") {
  Cmd c;
  c.sop_class = kCtImage;
  Bytes good = command(c);
  SECTION("element length past the end") {
    Bytes bad = good;
    bad[12 + 4] = 0xFF;  // length of (0000,0002)
    bad[12 + 7] = 0x7F;
    Command out;
    Issues is;
    CHECK_FALSE(parse_command(bad, out, is));
    REQUIRE(is.count >= 1);
    CHECK(std::string(is.items[0].name) == "command_element_past_end");
  }
  SECTION("not group 0000") {
    Bytes bad = good;
    bad[0] = 0x08;
    Command out;
    Issues is;
    CHECK_FALSE(parse_command(bad, out, is));
    CHECK(std::string(is.items[0].name) == "command_not_group_0000");
  }
  SECTION("every truncation") {
    for (size_t n = 0; n < good.size(); ++n) {
      Command out;
      Issues is;
      parse_command(std::span<const uint8_t>(good).first(n), out, is);
    }
    SUCCEED();
  }
}

namespace {
bool has_issue(const Issues& is, std::string_view name) {
  for (uint8_t i = 0; i < is.count; ++i)
    if (name == is.items[i].name) return true;
  return false;
}
}  // namespace

TEST_CASE("a repeated command element keeps its first value, as the receiving peer does", "[dicom][dimse]") {
  // PS3.5 7.1: each element once, ascending. DCMTK keeps the first of a repeated element, so
  // the first Move Destination is where the SCP sends the images.
  Bytes body;
  ile(body, 0, 0x0002, even(kMoveStudyRoot, '\0'));
  ile(body, 0, 0x0100, us(0x0021));
  ile(body, 0, 0x0110, us(1));
  ile(body, 0, 0x0600, "EVIL_AE ");
  ile(body, 0, 0x0600, "WS01");
  ile(body, 0, 0x0700, us(0));
  ile(body, 0, 0x0800, us(0));
  ile(body, 0, 0x0100, us(0x0001));        // a second CommandField: C-STORE-RQ
  ile(body, 0, 0x0002, even(kCtImage, '\0'));  // and a second SOP class
  Command out;
  Issues is;
  REQUIRE(parse_command(body, out, is));
  CHECK(out.move_destination == "EVIL_AE");
  CHECK(out.field == 0x0021);
  CHECK(out.affected_sop_class == kMoveStudyRoot);
  CHECK(has_issue(is, "command_element_repeated"));
}

TEST_CASE("an out-of-order command element is flagged and still read", "[dicom][dimse]") {
  Bytes body;
  ile(body, 0, 0x0100, us(0x0030));
  ile(body, 0, 0x0110, us(5));
  ile(body, 0, 0x0002, even(kVerification, '\0'));
  ile(body, 0, 0x0800, us(0x0101));
  Command out;
  Issues is;
  REQUIRE(parse_command(body, out, is));
  CHECK(out.affected_sop_class == kVerification);
  CHECK(has_issue(is, "command_element_out_of_order"));
  CHECK_FALSE(has_issue(is, "command_element_repeated"));
}
