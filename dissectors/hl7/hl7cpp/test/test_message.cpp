#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "hl7cpp/message.h"

using namespace hl7cpp;

namespace {
// Made-up patient.
const std::string kMsg =
    "MSH|^~\\&|GHH LAB|ELAB-3|GHH OE|BLDG4|200202150930||ORU^R01^ORU_R01|CNTRL-3456|P|2.4|||AL|NE||UNICODE UTF-8\r"
    "PID|||555-44-4444^^^GHH^MR~A1^^^X||EVERYWOMAN^EVE^E^^^^L|JONES|19620320|F|||153 FERNWOOD DR.^^STATESVILLE^OH^35292\r"
    "OBR|1|845439^GHH OE|1045813^GHH LAB|1554-5^GLUCOSE\r"
    "OBX|1|SN|1554-5^GLUCOSE^POST 12H CFST:MCNC:PT:SER/PLAS:QN||^182|mg/dl|70_105|H|||F\r"
    "OBX|2|FN|1553-5^GLUCOSE||^183|mg/dl|70_105|H|||F|||||||EQ-1&LAB&1.2.3&ISO\r"
    "PID|Field1|Component1^Component2|Component1^Sub-Component1&Sub-Component2^Component3|Repeat1~Repeat2\r";
}  // namespace

TEST_CASE("MSH numbering: MSH-1 is the field separator, MSH-2 the encoding characters") {
  Message m;
  REQUIRE(m.parse(kMsg) == ParseStatus::ok);
  auto msh = m.msh();
  REQUIRE(msh);
  CHECK(msh.field_separator().raw() == "|");
  CHECK(msh.encoding_characters().raw() == "^~\\&");
  CHECK(msh.encoding_characters().repetitions() == 1);  // never split
  CHECK(msh.sending_application().raw() == "GHH LAB");
  CHECK(msh.message_code() == "ORU");
  CHECK(msh.trigger_event() == "R01");
  CHECK(msh.message_structure() == "ORU_R01");
  CHECK(msh.message_control_id().raw() == "CNTRL-3456");
  CHECK(msh.version_id().raw() == "2.4");
  CHECK(msh.accept_acknowledgment_type().raw() == "AL");
  CHECK(m.get("MSH-1") == "|");
  CHECK(m.get("MSH-9.2") == "R01");
  CHECK(m.charset() == Charset::utf8);
  CHECK(msh.field_count() == 18);
}

TEST_CASE("named and path access over segments, repetitions, components, sub-components") {
  Message m;
  REQUIRE(m.parse(kMsg) == ParseStatus::ok);
  CHECK(m.size() == 6);
  CHECK(m.count("OBX") == 2);
  CHECK(m.pid().patient_name().component(1).raw() == "EVERYWOMAN");
  CHECK(m.pid().patient_identifier_list().repetitions() == 2);
  CHECK(m.pid().patient_identifier_list().repetition(2).component(1).raw() == "A1");
  CHECK(m.get("PID-5.1") == "EVERYWOMAN");
  CHECK(m.get("PID-5") == "EVERYWOMAN^EVE^E^^^^L");
  CHECK(m.get("PID-3[2].1") == "A1");
  CHECK(m.get("PID-3(2).4") == "X");
  CHECK(m.get("PID.F3.R2.C4") == "X");
  CHECK(m.get("PID-11.3") == "STATESVILLE");
  CHECK(m.get("OBX(2)-5.2") == "183");
  CHECK(m.get("OBX[2]-18.1.3") == "1.2.3");
  CHECK(m.obx(2).equipment_instance_identifier().component(1).sub(1) == "EQ-1");
  CHECK(m.get("PID(2)-3.2.2") == "Sub-Component2");
  CHECK(m.get("PID(2)-4[2]") == "Repeat2");
  CHECK(m.get("PID.F3") == "555-44-4444^^^GHH^MR~A1^^^X");
  CHECK(m.get("PID-99").empty());
  CHECK(m.get("ZZZ-1").empty());
  CHECK(m.get("P").empty());
  CHECK(m.get("PID-").empty());
  CHECK(m.obr().placer_order_number().component(1).raw() == "845439");
  // Absent segments answer empty views.
  CHECK(!m.msa());
  CHECK(m.msa().acknowledgment_code().empty());
  CHECK(m.pv1().visit_number().raw().empty());
  // A field without components answers component 1 with itself.
  CHECK(m.get("PID-8.1") == "F");
  CHECK(m.get("PID-8.2").empty());
}

TEST_CASE("delimiters come from MSH-1/MSH-2, not assumed") {
  Message m;
  REQUIRE(m.parse("MSH#@*$%#SND#FAC#RCV#FAC#2024##ADT@A08#C1#T#2.3\rPID#1##ID1@@@AUTH%XX*ID2##ROE@JOHN$S$X\r") ==
          ParseStatus::ok);
  CHECK(m.separators().field == '#');
  CHECK(m.separators().component == '@');
  CHECK(m.separators().repetition == '*');
  CHECK(m.separators().escape == '$');
  CHECK(m.separators().subcomponent == '%');
  CHECK(m.msh().message_code() == "ADT");
  CHECK(m.get("PID-3[2]") == "ID2");
  CHECK(m.get("PID-3.4.2") == "XX");
  CHECK(m.pid().patient_name().component(2).text() == "JOHN@X");
  // Missing encoding characters fall back to the defaults.
  REQUIRE(m.parse("MSH|^~|A|B\rMSA|AA|X&Y\r") == ParseStatus::ok);
  CHECK(m.separators().escape == '\\');
  CHECK(m.get("MSA-2.1.2") == "Y");
}

TEST_CASE("bad headers are rejected") {
  Message m;
  CHECK(m.parse("") == ParseStatus::empty);
  CHECK(m.parse("  \r\n") == ParseStatus::empty);
  CHECK(m.parse("PID|1") == ParseStatus::no_header);
  CHECK(m.parse("MSH") == ParseStatus::bad_encoding);
  CHECK(m.parse("MSHA^~\\&") == ParseStatus::bad_encoding);
  CHECK(m.parse("MSH|^^\\&|") == ParseStatus::bad_encoding);   // duplicate delimiter
  CHECK(m.parse("MSH|^~\\&#!|") == ParseStatus::bad_encoding); // too many
  Message small(Message::Limits{3});
  CHECK(small.parse("MSH|^~\\&\rAA1|\rBB1|\rCC1|\rDD1|\r") == ParseStatus::too_many_segments);
  CHECK(small.size() == 3);
}

TEST_CASE("segment ends: CR, LF and CRLF; blank lines skipped") {
  Message m;
  REQUIRE(m.parse("MSH|^~\\&|A\nPID|1||X\r\n\r\nOBX|1\n") == ParseStatus::ok);
  CHECK(m.lf_line_ends());
  CHECK(m.size() == 3);
  CHECK(m.get("PID-3") == "X");
  REQUIRE(m.parse("MSH|^~\\&|A\rPID|1||X\r") == ParseStatus::ok);
  CHECK_FALSE(m.lf_line_ends());
}

TEST_CASE("field values: empty, explicit null, present") {
  Separators s;
  CHECK_FALSE(Field("", &s).has_value());
  CHECK_FALSE(Field("\"\"", &s).has_value());
  CHECK_FALSE(Field("^^~^", &s).has_value());
  CHECK(Field("^X", &s).has_value());
  CHECK(Field("\"\"", &s).is_null());
}

TEST_CASE("batch and file payloads split into messages") {
  struct H : PayloadHandler {
    std::vector<std::string> msgs;
    std::vector<bool> batch;
    size_t stray = 0;
    void message(std::string_view t, size_t, bool b) override { msgs.emplace_back(t); batch.push_back(b); }
    void stray_segment(std::string_view, size_t) override { ++stray; }
  } h;
  std::string p = "FHS|^~\\&|A\rBHS|^~\\&|A\rMSH|^~\\&|A|||||ADT^A01|1\rPID|1\rMSH|^~\\&|A|||||ADT^A01|2\rBTS|2\rFTS|1\r";
  PayloadInfo info = split_payload(p, h);
  CHECK(info.file);
  CHECK(info.batch);
  CHECK(info.messages == 2);
  REQUIRE(h.msgs.size() == 2);
  CHECK(h.msgs[0] == "MSH|^~\\&|A|||||ADT^A01|1\rPID|1");
  CHECK(h.batch[1]);
  CHECK(info.bts == "BTS|2");
  CHECK(info.headers_out_of_place == 0);
  H g;
  info = split_payload("EVN|A04\rMSH|^~\\&|A\rBHS|^~\\&\rBHS|^~\\&\r", g);
  CHECK(g.stray == 1);
  CHECK(info.headers_out_of_place == 1);
  CHECK(g.msgs.size() == 1);
}

TEST_CASE("charset names from MSH-18") {
  CHECK(charset_from_msh18("") == Charset::unspecified);
  CHECK(charset_from_msh18("ASCII") == Charset::ascii);
  CHECK(charset_from_msh18("8859/1") == Charset::latin1);
  CHECK(charset_from_msh18("UNICODE UTF-8") == Charset::utf8);
  CHECK(charset_from_msh18("UNICODE UTF-16") == Charset::unicode_other);
  CHECK(charset_from_msh18("UNICODE") == Charset::unicode_other);
  CHECK(charset_from_msh18("KOI8-R") == Charset::other);
}

TEST_CASE("every HL7 Table 0211 character set and its ISO IR form is told apart") {
  const std::pair<std::string_view, Charset> table[] = {
      {"ASCII", Charset::ascii},           {"ISO IR6", Charset::ascii},
      {"8859/1", Charset::latin1},         {"ISO IR100", Charset::latin1},
      {"8859/2", Charset::iso8859_2},      {"ISO IR101", Charset::iso8859_2},
      {"8859/3", Charset::iso8859_3},      {"ISO IR109", Charset::iso8859_3},
      {"8859/4", Charset::iso8859_4},      {"ISO IR110", Charset::iso8859_4},
      {"8859/5", Charset::iso8859_5},      {"ISO IR144", Charset::iso8859_5},
      {"8859/6", Charset::iso8859_6},      {"ISO IR127", Charset::iso8859_6},
      {"8859/7", Charset::iso8859_7},      {"ISO IR126", Charset::iso8859_7},
      {"8859/8", Charset::iso8859_8},      {"ISO IR138", Charset::iso8859_8},
      {"8859/9", Charset::iso8859_9},      {"ISO IR148", Charset::iso8859_9},
      {"8859/15", Charset::iso8859_15},    {"ISO IR203", Charset::iso8859_15},
      {"ISO IR14", Charset::jis_x0201},    {"ISO IR87", Charset::jis_x0208},
      {"ISO IR159", Charset::jis_x0212},   {"GB 18030-2000", Charset::gb18030},
      {"KS X 1001", Charset::ks_x1001},    {"CNS 11643-1992", Charset::cns11643},
      {"BIG-5", Charset::big5},            {"UNICODE UTF-8", Charset::utf8},
      {"ISO IR192", Charset::utf8},
      // DICOM spellings and other case are the same sets.
      {"ISO_IR 144", Charset::iso8859_5},  {"ISO IR 126", Charset::iso8859_7},
      {"iso ir148", Charset::iso8859_9},   {" 8859/2 ", Charset::iso8859_2},
  };
  for (auto& [term, c] : table) {
    INFO(term);
    CHECK(charset_from_msh18(term) == c);
  }
  CHECK(charset_from_msh18("8859/5") != charset_from_msh18("8859/7"));
  CHECK(charset_from_msh18("8859/10") == Charset::other);
  CHECK(charset_from_msh18(std::string(100, 'A')) == Charset::other);
}

TEST_CASE("to_utf8 converts ISO 8859-1") {
  std::string out;
  to_utf8("M\xfcller", Charset::latin1, out);
  CHECK(out == "M\xc3\xbcller");
}

TEST_CASE("split_pieces gives what nth_piece gives, in one pass") {
  const std::string_view samples[] = {"", "A", "A^B", "^B^", "DOE^JOHN^Q^JR^DR^^L", "^^^^^^^", "A^B^C^D^E^F"};
  for (auto s : samples) {
    for (size_t n = 1; n <= 6; ++n) {
      std::string_view out[6];
      size_t got = split_pieces(s, '^', out, n);
      CHECK(got == std::min(n, piece_count(s, '^')));
      for (size_t k = 0; k < n; ++k) CHECK(out[k] == nth_piece(s, '^', k + 1));
    }
  }
  std::string_view none[1];
  CHECK(split_pieces("A^B", '^', none, 0) == 0);
}

TEST_CASE("the segment pass also tells escapes, 8-bit bytes and a second message apart") {
  Message m;
  // MSH-2 holds the escape character itself: that alone is no escape.
  REQUIRE(m.parse("MSH|^~\\&|A|B\rPID|1||X^^^Y||DOE^JANE") == ParseStatus::ok);
  CHECK_FALSE(m.may_have_escapes());
  CHECK(m.ascii_only());
  CHECK_FALSE(m.has_inner_headers());
  // Other delimiters declared: their escape character counts, a backslash does not.
  REQUIRE(m.parse("MSH|^~#&|A|B\rPID|1||a\\b||DOE#F#JANE") == ParseStatus::ok);
  CHECK(m.may_have_escapes());
  REQUIRE(m.parse("MSH|^~#&|A|B\rPID|1||a\\b||DOE^JANE") == ParseStatus::ok);
  CHECK_FALSE(m.may_have_escapes());
  // Past the first 16-byte block, in the scalar tail, and right after MSH-2.
  REQUIRE(m.parse("MSH|^~\\&|A|B\rPID|1||12345678901234567890||O\\T\\BRIEN") == ParseStatus::ok);
  CHECK(m.may_have_escapes());
  REQUIRE(m.parse("MSH|^~\\&|\\F\\") == ParseStatus::ok);
  CHECK(m.may_have_escapes());
  REQUIRE(m.parse("MSH|^~\\&|A|B\rPID|1||X||M\xfcller^J") == ParseStatus::ok);
  CHECK_FALSE(m.ascii_only());
  // A later MSH/BHS/FHS/BTS/FTS line (even indented) means more than one message.
  REQUIRE(m.parse("MSH|^~\\&|A\rPID|1\rMSH|^~\\&|B\rPID|2") == ParseStatus::ok);
  CHECK(m.has_inner_headers());
  CHECK(m.size() == 4);
  REQUIRE(m.parse("MSH|^~\\&|A\rPID|1\r  BTS|1") == ParseStatus::ok);
  CHECK(m.has_inner_headers());
  REQUIRE(m.parse("MSH|^~\\&|A\rMSA|AA|1\rZMS|1") == ParseStatus::ok);
  CHECK_FALSE(m.has_inner_headers());
  // The same segments as before whatever the line ends and where they fall.
  std::string text = "MSH|^~\\&|A";
  for (int i = 0; i < 40; ++i) text += (i % 3 == 0 ? "\r\n" : i % 3 == 1 ? "\n" : "\r") + std::string("OBX|") + std::to_string(i);
  REQUIRE(m.parse(text) == ParseStatus::ok);
  CHECK(m.size() == 41);
  CHECK(m.lf_line_ends());
  CHECK(m.segment(40).raw() == "OBX|39");
}

TEST_CASE("segment names and field presence: the short paths agree with the long ones") {
  Message m;
  REQUIRE(m.parse("MSH|^~\\&|A\rPID|\"\"|^^|^x| |a\rZZZZ|1\rNTE") == ParseStatus::ok);
  CHECK(m.segment(1).name() == "PID");
  CHECK(m.segment(0).name() == "MSH");
  // ZZZZ is no segment id ([A-Z][A-Z0-9]{2}): the line goes on the PID segment's text; NTE alone
  // is a segment without fields.
  CHECK(m.size() == 3);
  CHECK(m.segment(2).name() == "NTE");
  Separators sep;
  CHECK(Segment("ZZZZ|1", &sep).name() == "ZZZZ");
  CHECK(Segment("NTE", &sep).name() == "NTE");
  Segment pid = m.segment(1);
  CHECK_FALSE(pid.field(1).has_value());  // explicit null
  CHECK_FALSE(pid.field(2).has_value());  // only separators
  CHECK(pid.field(3).has_value());
  CHECK_FALSE(pid.field(4).has_value());  // a blank
  CHECK(pid.field(5).has_value());
  CHECK_FALSE(m.segment(0).field(3).has_value() == false);
  CHECK_FALSE(Field("\"\"", nullptr, true).has_value());
  CHECK(Field("^", nullptr, true).has_value());
}

TEST_CASE("pick_fields gives what split_fields gives for the fields asked for") {
  // Segments of every length around the 16-byte blocks, runs of empty fields, long fields, and
  // the header (MSH-1/MSH-2 are not split on the separator).
  std::vector<std::string> segs = {
      "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|20240101||ADT^A01^ADT_A01|MSG1|P|2.5.1",
      "PV1|1|I|2000^2012^01||||004777^ATTEND^AARON^A|||SUR||||ADM|A0|||||||||||||||||||||||||200301010800",
      "PID|1||123456^^^GHH^MR||DOE^JANE^A^^^^L||19700101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701||(555)555-5555",
      "NK1", "NK1|", "NK1||", "OBX|1|NM|^Body Height||180|cm^centimeter^ISO+|||||F|||||||EQ-1",
      "ZZZ|||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||||x",
  };
  std::string prefix = "MSH|^~\\&|A\r";
  uint64_t seed = 12345;
  auto next = [&] { seed = seed * 6364136223846793005ULL + 1442695040888963407ULL; return seed >> 11; };
  for (size_t cut = 0; cut < 40; ++cut) segs.push_back("ABC|" + std::string(cut, 'x') + "|y|" + std::string(cut % 7, '|') + "z");
  for (const std::string& text : segs) {
    Message m;
    bool header = text.rfind("MSH", 0) == 0;
    const std::string whole = header ? text : prefix + text;  // the message keeps views into it
    REQUIRE(m.parse(whole) == ParseStatus::ok);
    Segment seg = m.segment(header ? 0 : 1);
    std::string_view all[64];
    for (int round = 0; round < 200; ++round) {
      uint64_t wanted = next();
      if (round < 64) wanted = 1ULL << round;  // each field alone
      if (round % 3 == 0) wanted &= (1ULL << (next() % 64)) - 1;  // and low ones only
      if (!wanted) continue;
      size_t last = 63 - static_cast<size_t>(__builtin_clzll(wanted));
      size_t n_all = seg.split_fields(all, last + 1);
      std::string_view picked[64];
      for (auto& v : picked) v = "unset";
      size_t n = seg.pick_fields(picked, wanted);
      INFO(text << " wanted " << wanted);
      REQUIRE(n == n_all);
      for (size_t k = 0; k < 64; ++k) {
        if (wanted >> k & 1 && k < n) CHECK(picked[k] == all[k]);
        if (!(wanted >> k & 1)) CHECK(picked[k] == "unset");
      }
    }
  }
}

TEST_CASE("a line that is not a segment continues the segment before it") {
  // Free text with a CR or LF left in it: the lines after the break are not segments, whatever
  // they start with; made-up names.
  Message m;
  REQUIRE(m.parse("MSH|^~\\&|A|||||ORU^R01|1\rPID|1||MRN1||ROE^ANN\rOBX|1|TX|RPT||Findings:\rRoe, Ann 1970\r"
                  "\rNTE|1||call\nMary Major 555-0100\rPV1|1\r  ZPI|x\rDOE J\rABCD|1\rab1|2\rPD1\rBTS\r") == ParseStatus::ok);
  std::vector<std::string> names;
  for (size_t i = 0; i < m.size(); ++i) names.emplace_back(m.segment(i).name());
  CHECK(names == std::vector<std::string>{"MSH", "PID", "OBX", "NTE", "PV1", "ZPI", "PD1", "BTS"});
  CHECK(m.segment(2).field(5).raw() == "Findings:\rRoe, Ann 1970");
  CHECK(m.segment(3).field(3).raw() == "call\nMary Major 555-0100");
  CHECK(m.segment(5).raw() == "ZPI|x\rDOE J\rABCD|1\rab1|2");
  CHECK(m.has_inner_headers());  // BTS
  // A payload split into messages keeps the lines with their segment, and a payload of text
  // that holds no segment is told apart from one with segments outside a message.
  struct H : PayloadHandler {
    std::vector<std::string> msgs;
    size_t stray = 0;
    void message(std::string_view t, size_t, bool) override { msgs.emplace_back(t); }
    void stray_segment(std::string_view, size_t) override { ++stray; }
  } h;
  PayloadInfo info = split_payload("Hello\rMSH|^~\\&|A\rOBX|1|TX|||a\rRoe, Ann\rMSH|^~\\&|B\rNTE|1||b\nDOE, J\r", h);
  CHECK(info.messages == 2);
  CHECK(info.other_lines == 1);
  CHECK(h.stray == 0);
  REQUIRE(h.msgs.size() == 2);
  CHECK(h.msgs[0] == "MSH|^~\\&|A\rOBX|1|TX|||a\rRoe, Ann");
  CHECK(h.msgs[1] == "MSH|^~\\&|B\rNTE|1||b\nDOE, J");
  H g;
  info = split_payload("hello world\r", g);
  CHECK(info.messages == 0);
  CHECK(info.stray_segments == 0);
  CHECK(info.other_lines == 1);
}

TEST_CASE("a UTF-8 byte order mark before MSH is skipped") {
  Message m;
  REQUIRE(m.parse("\xEF\xBB\xBFMSH|^~\\&|A|||||ADT^A01|7\rPID|1") == ParseStatus::ok);
  CHECK(m.msh().field(9).raw() == "7");
  CHECK(m.segment(1).name() == "PID");
  struct H : PayloadHandler {
    std::vector<std::string> msgs;
    void message(std::string_view t, size_t, bool) override { msgs.emplace_back(t); }
  } h;
  PayloadInfo info = split_payload("\xEF\xBB\xBFMSH|^~\\&|A\rPID|1\r", h);
  CHECK(info.messages == 1);
  REQUIRE(h.msgs.size() == 1);
  CHECK(h.msgs[0] == "MSH|^~\\&|A\rPID|1");
}
