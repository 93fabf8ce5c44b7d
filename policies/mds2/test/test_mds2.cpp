// MDS2 import: the NEMA example workbook against its raw cells, and CSV/TSV/Markdown/PDF copies
// of it (made from the XLSX by make_variants.py) giving the same model.
#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>
#include <zip.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <pugixml.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "policies/mds2/mds2_form.h"
#include "policies/mds2/pdf_text.h"
#include "policies/mds2/rows.h"

using namespace medmon::mds2;

namespace {

// Independent raw reader: column A..G of every row of the first sheet, shared strings resolved.
std::map<std::string, std::vector<std::string>> raw_rows() {
  int err = 0;
  zip_t* z = zip_open(MDS2_XLSX, ZIP_RDONLY, &err);
  REQUIRE(z);
  auto part = [&](const char* name) {
    zip_stat_t st;
    REQUIRE(zip_stat(z, name, 0, &st) == 0);
    std::string s(st.size, '\0');
    zip_file_t* f = zip_fopen(z, name, 0);
    REQUIRE(zip_fread(f, s.data(), st.size) == static_cast<zip_int64_t>(st.size));
    zip_fclose(f);
    return s;
  };
  std::string ss = part("xl/sharedStrings.xml"), sheet = part("xl/worksheets/sheet1.xml");
  zip_discard(z);
  pugi::xml_document sd, wd;
  sd.load_buffer(ss.data(), ss.size());
  wd.load_buffer(sheet.data(), sheet.size());
  std::vector<std::string> shared;
  for (auto si : sd.child("sst").children("si")) {
    std::string t;
    for (auto n : si.select_nodes(".//t")) t += n.node().text().get();
    shared.push_back(t);
  }
  std::map<std::string, std::vector<std::string>> rows;
  std::regex id_re(R"(^(DOC|[A-Z]{4})-\d+(\.\d+)*$)");
  for (auto r : wd.child("worksheet").child("sheetData").children("row")) {
    std::vector<std::string> cells(7);
    for (auto c : r.children("c")) {
      std::string ref = c.attribute("r").value();
      int col = ref[0] - 'A';
      if (col < 0 || col > 6 || (ref.size() > 1 && std::isalpha(static_cast<unsigned char>(ref[1])))) continue;
      std::string v = c.child("v").text().get();
      if (std::string_view(c.attribute("t").value()) == "s" && !v.empty()) v = shared[std::stoul(v)];
      cells[col] = v;
    }
    if (std::regex_match(cells[0], id_re)) rows[cells[0]] = cells;
  }
  return rows;
}

std::string expected_answer(const std::string& raw) {
  std::string t = collapse_ws(raw);
  if (t.empty() || t.find_first_not_of('_') == std::string::npos) return "blank";
  if (t == "Yes") return "yes";
  if (t == "No") return "no";
  if (t == "N/A") return "n.a.";
  if (t.rfind("See Note", 0) == 0) return "see-note";
  return "text";
}

std::string strip_source_lines(const std::string& yaml) {
  // The model differs only in where it came from.
  std::string out;
  size_t b = 0;
  while (b < yaml.size()) {
    size_t e = yaml.find('\n', b);
    if (e == std::string::npos) e = yaml.size();
    std::string line = yaml.substr(b, e - b);
    if (line.find("imported by") == std::string::npos && line.find("Imported by") == std::string::npos &&
        line.find("      file:") != 0 && line.find("      format:") != 0 && line.find("      sheet:") != 0)
      out += line + "\n";
    b = e + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("NEMA workbook: every answer matches the raw cell", "[mds2]") {
  Form f = read_xlsx(MDS2_XLSX);
  auto raw = raw_rows();
  REQUIRE(f.questions.size() == 240);
  REQUIRE(raw.size() == 240);
  for (auto& [rid, cells] : raw) {
    std::string id = canonical_id(rid);
    const Question* q = f.find(id);
    INFO(rid);
    REQUIRE(q);
    CHECK(q->raw_id == rid);
    CHECK(answer_name(q->answer) == expected_answer(cells[2]));
    if (id != "DOC-7") CHECK(q->detail == collapse_ws(cells[2]));
    CHECK(q->iec_tr_80001_2_2 == collapse_ws(cells[4]));
    CHECK(q->nist_800_53 == collapse_ws(cells[5]));
    CHECK(q->iso_27002 == collapse_ws(cells[6]));
  }
  // The answers the issue names, and the form's quirks.
  CHECK(f.find("CONN-4")->answer == Answer::no);
  CHECK(f.find("TXCF-2")->answer == Answer::no);
  CHECK(f.find("CONN-3")->answer == Answer::yes);
  CHECK(f.find("CONN-2")->answer == Answer::na);
  CHECK(f.find("RMOT-1")->answer == Answer::no);
  CHECK(f.find("MPII-3.9")->answer == Answer::yes);
  CHECK(f.find("SAHD-15")->raw_id == "SHAD-15");
  CHECK(f.find("DOC-7")->detail == "2019-10-09");  // Excel serial 43747
  CHECK(f.find("DOC-10")->answer == Answer::blank);
  CHECK(f.find("CONN-1.2.4")->note == "Proprietary serial interface cable.");
  CHECK(f.find("TXCF-2")->nist_800_53 == "CM-7");
  CHECK(f.notes.size() == 8);
}

TEST_CASE("NEMA workbook: derived switches cite their questions", "[mds2]") {
  Form f = read_xlsx(MDS2_XLSX);
  std::string yaml = render_model(f, {}, {});
  YAML::Node m = YAML::Load(yaml);
  CHECK(m["schema"].as<std::string>() == "medmon.model/v1");
  auto d = m["mds2_derived"];
  CHECK(d["internal_only"].as<bool>() == true);           // CONN-4 = No
  CHECK(d["internet_required"].as<bool>() == false);      // CONN-6 = No
  CHECK(d["phi_encrypted_claim"].as<bool>() == false);    // TXCF-2 = No
  CHECK(d["phi_point_to_point_only"].as<bool>() == true); // TXCF-1 = Yes
  CHECK(d["remote_service"].as<bool>() == false);         // RMOT-1 = No
  CHECK(d["phi_fixed_destinations"].IsNull());            // TXCF-3 = N/A
  CHECK(yaml.find("internal_only: true") != std::string::npos);
  CHECK(yaml.find("# CONN-4 = No") != std::string::npos);
  CHECK(yaml.find("# TXCF-2 = No") != std::string::npos);
  CHECK(m["mds2"]["answers"]["TXCF-2"]["iec_tr_80001_2_2"].as<std::string>() == "Section 5.18, TXCF");
  CHECK(m["mds2"]["answers"]["SAHD-15"]["raw_id"].as<std::string>() == "SHAD-15");
  CHECK(m["model"]["documents"][0]["release_date"].as<std::string>() == "2019-10-09");
}

TEST_CASE("CSV, TSV, Markdown and PDF copies give the same model", "[mds2]") {
  Form x = read_xlsx(MDS2_XLSX);
  std::string ref = strip_source_lines(render_model(x, {}, {}));
  for (const char* name : {"form.csv", "form.tsv", "form.md", "form.pdf"}) {
    std::string path = std::string(MDS2_VARIANTS) + "/" + name;
    INFO(path);
    Form f = read_any(path);
    CHECK(f.questions.size() == 240);
    for (auto& q : x.questions) {
      const Question* o = f.find(q.id);
      INFO(q.id);
      REQUIRE(o);
      CHECK(o->answer == q.answer);
      CHECK(o->detail == q.detail);
      CHECK(o->note == q.note);
      CHECK(o->iso_27002 == q.iso_27002);
    }
    CHECK(strip_source_lines(render_model(f, {}, {})) == ref);
  }
  CHECK(read_any(std::string(MDS2_VARIANTS) + "/form.pdf").source_format == "pdf");
  CHECK(read_any(std::string(MDS2_VARIANTS) + "/form.md").source_format == "markdown");
}

TEST_CASE("answers are normalised, the wording kept", "[mds2]") {
  std::string d;
  CHECK(normalise_answer("Yes,optional", d) == Answer::yes);
  CHECK(d == "Yes,optional");
  CHECK(normalise_answer("No: No end-of-life components", d) == Answer::no);
  CHECK(normalise_answer("____", d) == Answer::blank);
  CHECK(d.empty());
  CHECK(normalise_answer("  See Notes ", d) == Answer::see_note);
  CHECK(normalise_answer("N/A", d) == Answer::na);
  CHECK(normalise_answer("n.a.", d) == Answer::na);
  CHECK(normalise_answer("None", d) == Answer::text);
  CHECK(normalise_answer("Nonexistent", d) == Answer::text);
  CHECK(normalise_answer("Yes,\"DICOM WL, HL7, PACS\"", d) == Answer::yes);
  // Non-breaking spaces (U+00A0) around an answer are spaces.
  CHECK(normalise_answer("\xC2\xA0No", d) == Answer::no);
  CHECK(d == "No");
  CHECK(normalise_answer("Yes\xC2\xA0", d) == Answer::yes);
  CHECK(d == "Yes");
  CHECK(collapse_ws("Yes,\xC2\xA0\xC2\xA0optional") == "Yes, optional");
  Form nb = read_text_buffer("Question ID,Question,Answer\n"
                             "CONN-4,\"Can the device communicate with other systems external to the customer environment?\",\xC2\xA0No\n",
                             "csv");
  finish_form(nb);
  REQUIRE(nb.find("CONN-4"));
  CHECK(nb.find("CONN-4")->answer == Answer::no);
  CHECK(excel_serial_to_date("43747") == "2019-10-09");
  CHECK(excel_serial_to_date("abc").empty());
  std::string id;
  CHECK(match_question_id("CONN-1.2.1 Does", id));
  CHECK(id == "CONN-1.2.1");
  CHECK_FALSE(match_question_id("CONN-", id));
  CHECK_FALSE(match_question_id("Conn-4", id));
  CHECK_FALSE(match_question_id("CONN-4x", id));
}

TEST_CASE("pasted answers with HTML keep their text", "[mds2]") {
  std::string text =
      "AUDT-4\tIs a list of the audit log available?\tYes\t<p>Logs are <b>kept</b> 90 days &amp; exported</p>\n"
      "CONN-4\tCan the device communicate with other systems external to the customer environment?\t<span>No</span>\n"
      "TXCF-2\tIs personally identifiable information encrypted prior to transmission?\tYes<br/>TLS 1.2\n";
  Form f = read_text_buffer(text, "");
  finish_form(f);
  REQUIRE(f.find("AUDT-4"));
  CHECK(f.find("AUDT-4")->answer == Answer::yes);
  CHECK(f.find("AUDT-4")->note == "Logs are kept 90 days & exported");
  CHECK(f.find("CONN-4")->answer == Answer::no);
  CHECK(f.find("TXCF-2")->answer == Answer::yes);
  CHECK(f.find("TXCF-2")->detail == "Yes TLS 1.2");
  // The template's mapping fills in what a pasted copy leaves out.
  CHECK(f.find("TXCF-2")->nist_800_53 == "CM-7");
}

TEST_CASE("rows of only an id and an answer keep the answer", "[mds2]") {
  // Headerless CSV, TSV, Markdown and loose text: the cell after the id is the answer, not the question.
  for (auto [text, hint] : {std::pair<const char*, const char*>{"CONN-3,Yes\nCONN-4,No\nTXCF-2,See Note 1\n", "csv"},
                            {"CONN-3\tYes\nCONN-4\tNo\nTXCF-2\tSee Note 1\n", "tsv"},
                            {"| CONN-3 | Yes |\n| CONN-4 | No |\n| TXCF-2 | See Note 1 |\n", "markdown"},
                            {"CONN-3   Yes\nCONN-4   No\nTXCF-2   See Note 1\n", ""}}) {
    INFO(hint);
    Form f = read_text_buffer(text, hint);
    finish_form(f);
    REQUIRE(f.find("CONN-4"));
    CHECK(f.find("CONN-3")->answer == Answer::yes);
    CHECK(f.find("CONN-4")->answer == Answer::no);
    CHECK(f.find("CONN-4")->detail == "No");
    CHECK(f.find("CONN-4")->question.empty());
    CHECK(f.find("TXCF-2")->note_ref == "See Note 1");
  }
  // With question text the first cell stays the question.
  Form f = read_text_buffer("CONN-4,Can the device communicate externally?,No\n", "csv");
  finish_form(f);
  CHECK(f.find("CONN-4")->question == "Can the device communicate externally?");
  CHECK(f.find("CONN-4")->answer == Answer::no);
}

TEST_CASE("MediCapture-style Markdown lines", "[mds2]") {
  std::string text =
      "# MDS2\n\n"
      "- CONN-4,\"Can the device communicate with other systems external to the customer environment?\": No\n"
      "- TXCF-2,\"Is personally identifiable information encrypted prior to transmission?\": Yes\n"
      "- MPII-3.10,\"Does the device use any other mechanism?\": Yes,\"DICOM WL, HL7, PACS\"\n";
  Form f = read_text_buffer(text, "markdown");
  finish_form(f);
  CHECK(f.find("CONN-4")->answer == Answer::no);
  CHECK(f.find("TXCF-2")->answer == Answer::yes);
  CHECK(f.find("MPII-3.10")->answer == Answer::yes);
  CHECK(f.find("MPII-3.10")->detail == "Yes,\"DICOM WL, HL7, PACS\"");
}

TEST_CASE("older editions and non-forms are refused with a clear message", "[mds2]") {
  std::string e2013 = "Manufacturer Disclosure Statement for Medical Device Security\nHN 1-2013\n"
                      "MANAGEMENT OF PRIVATE DATA\nTransmit/receive private data via a wired network connection\n";
  try {
    Form f = read_text_buffer(e2013, "", "old.txt");
    finish_form(f);
    FAIL("accepted a 2013 form");
  } catch (const ImportError& e) {
    CHECK(std::string(e.what()).find("HN 1-2013") != std::string::npos);
    CHECK(std::string(e.what()).find("only ANSI/NEMA HN 1-2019") != std::string::npos);
  }
  std::string e2004 = "MDS2 v1.0 (c) 2004 HIMSS\nSoftware Revision 2.4.2\n1. Can this device transmit or maintain ePHI? Yes\n";
  CHECK_THROWS_WITH(read_text_buffer(e2004, "", "v1.txt"), Catch::Contains("2004"));
  CHECK_THROWS_WITH([] { Form f = read_text_buffer("hello\nworld\n", "", "x.txt"); finish_form(f); }(),
                    Catch::Contains("no HN 1-2019 question ids"));
  CHECK_THROWS_AS(read_any("/nonexistent/form.xlsx"), ImportError);
}

TEST_CASE("vendor port table becomes flows", "[mds2]") {
  std::string path = std::string(MDS2_VARIANTS) + "/ports-test.csv";
  {
    std::ofstream o(path);
    o << "Port,Protocol,Direction,Service,Default state\n"
         "104,TCP,Inbound,DICOM Storage SCP,Enabled\n"
         "443,tcp,Outbound,HTTPS remote service,Disabled by default\n"
         "123,udp,outbound,NTP,enabled\n";
  }
  auto ports = read_ports_csv(path);
  REQUIRE(ports.size() == 3);
  CHECK(ports[0].port == 104);
  CHECK(ports[0].direction == "inbound");
  CHECK_FALSE(ports[1].default_enabled);
  Form f = read_xlsx(MDS2_XLSX);
  YAML::Node m = YAML::Load(render_model(f, ports, {}));
  REQUIRE(m["flows"].size() == 3);
  CHECK(m["flows"][0]["initiator"].as<std::string>() == "peer");
  CHECK(m["flows"][0]["app"].as<std::string>() == "dicom");
  CHECK(m["flows"][1]["app"].as<std::string>() == "tls");
  CHECK(m["flows"][1]["default_enabled"].as<bool>() == false);
  CHECK(m["flows"][2]["l4"].as<std::string>() == "udp");
  {
    std::ofstream o(path);
    o << "port,protocol,direction,service,default\n104,tcp,inbound,dicom,on\nhttp,tcp,inbound,web,on\n";
  }
  CHECK_THROWS_WITH(read_ports_csv(path), Catch::Contains("ports-test.csv:3: port 'http'"));
  // "Transport" is the protocol column, not the port; a header after comment lines is still the header.
  for (const char* table : {"Port,Transport,Direction,Service,Default state\n104,TCP,Inbound,DICOM,Enabled\n",
                            "Service,Port,Transport Protocol,Direction,Status\nDICOM,104,UDP,Inbound,Enabled\n",
                            "# ACME port list\n\nService,Port,Protocol,Direction,State\nDICOM,104,TCP,Inbound,Disabled\n"}) {
    INFO(table);
    std::ofstream(path) << table;
    auto p = read_ports_csv(path);
    REQUIRE(p.size() == 1);
    CHECK(p[0].port == 104);
    CHECK(p[0].direction == "inbound");
    CHECK(p[0].service == "DICOM");
  }
  CHECK(read_ports_csv(path)[0].default_enabled == false);
  // A byte-order mark before a headerless table: the first row is a port, not a header.
  std::ofstream(path) << "\xEF\xBB\xBF" "104,tcp,inbound,DICOM,enabled\r\n443,tcp,outbound,HTTPS,enabled\r\n";
  auto bom = read_ports_csv(path);
  REQUIRE(bom.size() == 2);
  CHECK(bom[0].port == 104);
  CHECK(bom[1].port == 443);
  // A row for both protocols gives one entry each; a semicolon-separated table (a spreadsheet
  // in a locale whose decimal separator is the comma) reads as a comma-separated one.
  std::ofstream(path) << "# ports\nPort;Protocol;Direction;Service;Default state\n"
                         "104;TCP/UDP;Inbound;DICOM, storage;Enabled\n161;udp + tcp;Outbound;SNMP;Disabled\n"
                         "53;Both;Outbound;DNS;Enabled\n";
  auto both = read_ports_csv(path);
  REQUIRE(both.size() == 6);
  CHECK((both[0].port == 104 && both[0].protocol == "tcp" && both[1].port == 104 && both[1].protocol == "udp"));
  CHECK(both[0].service == "DICOM, storage");
  CHECK((both[2].protocol == "tcp" && both[3].protocol == "udp" && !both[3].default_enabled));
  CHECK((both[4].port == 53 && both[5].port == 53 && both[5].protocol == "udp"));
  YAML::Node bm = YAML::Load(render_model(f, both, {}));
  CHECK(bm["flows"].size() == 6);
  std::ofstream(path) << "Port,Protocol,Direction\n104,TCP/SCTP,Inbound\n";
  CHECK_THROWS_WITH(read_ports_csv(path), Catch::Contains("ports-test.csv:2: protocol 'TCP/SCTP'"));
  std::remove(path.c_str());
}

namespace {
// Writes a small XLSX: a cover sheet without ids, then an answers sheet (not named like the NEMA
// form) with inline strings, a merged answer cell and an Excel serial date.
void write_xlsx(const std::string& path) {
  std::remove(path.c_str());
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  REQUIRE(z);
  static std::vector<std::string> keep;  // libzip reads the buffers at close
  auto add = [&](const char* name, std::string body) {
    keep.push_back(std::move(body));
    zip_source_t* s = zip_source_buffer(z, keep.back().data(), keep.back().size(), 0);
    REQUIRE(zip_file_add(z, name, s, ZIP_FL_OVERWRITE) >= 0);
  };
  const char* ns = "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
                   "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"";
  add("xl/workbook.xml", std::string("<workbook ") + ns + "><sheets><sheet name=\"Cover\" sheetId=\"1\" r:id=\"rId1\"/>"
      "<sheet name=\"Answers\" sheetId=\"2\" r:id=\"rId2\"/></sheets></workbook>");
  add("xl/_rels/workbook.xml.rels",
      "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
      "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/><Relationship Id=\"rId2\" Target=\"worksheets/sheet2.xml\"/>"
      "</Relationships>");
  auto is = [](const char* ref, const char* text) {
    return std::string("<c r=\"") + ref + "\" t=\"inlineStr\"><is><t>" + text + "</t></is></c>";
  };
  add("xl/worksheets/sheet1.xml", std::string("<worksheet ") + ns + "><sheetData><row r=\"1\">" +
      is("A1", "Manufacturer Disclosure Statement for Medical Device Security") + "</row></sheetData></worksheet>");
  std::string rows =
      "<row r=\"1\">" + is("A1", "Question ID") + is("B1", "Question") + is("D1", "See note") + "</row>" +
      "<row r=\"2\">" + is("A2", "DOC-7") + is("B2", "Document Release Date") + "<c r=\"C2\"><v>45000</v></c></row>" +
      "<row r=\"3\">" + is("A3", "CONN-3") + is("B3", "Can the device communicate with other systems within the customer environment?") +
      is("C3", "Yes") + "</row>" +
      "<row r=\"4\">" + is("A4", "CONN-4") + is("B4", "Can the device communicate with other systems external to the customer environment?") +
      "<c r=\"C4\"/></row>" +
      "<row r=\"5\">" + is("A5", "SHAD-15") + is("B5", "Can the system prevent access to BIOS?") + is("C5", "No") +
      is("D5", "See Note 1") + "</row>" +
      "<row r=\"6\">" + is("A6", "Note 1") + is("B6", "<![CDATA[Only with the service key & password.]]>") + "</row>";
  // The vendor merged the answer cells of CONN-3 and CONN-4.
  add("xl/worksheets/sheet2.xml", std::string("<worksheet ") + ns + "><sheetData>" + rows +
      "</sheetData><mergeCells count=\"1\"><mergeCell ref=\"C3:C4\"/></mergeCells></worksheet>");
  REQUIRE(zip_close(z) == 0);
  keep.clear();
}
}  // namespace

TEST_CASE("XLSX: sheet found by its id column, inline strings, merged cells, dates", "[mds2]") {
  std::string path = std::string(MDS2_VARIANTS) + "/vendor-layout.xlsx";
  write_xlsx(path);
  Form f = read_xlsx(path);
  REQUIRE(f.questions.size() == 4);
  CHECK(f.find("DOC-7")->detail == "2023-03-15");
  CHECK(f.find("CONN-3")->answer == Answer::yes);
  CHECK(f.find("CONN-4")->answer == Answer::yes);  // merged with CONN-3's answer cell
  CHECK(f.find("SAHD-15")->answer == Answer::no);
  CHECK(f.find("SAHD-15")->note == "Only with the service key & password.");
  std::remove(path.c_str());
}

namespace {
// A workbook of one sheet from its parts' XML; `sheet` is the body of <sheetData> (and what follows
// it inside <worksheet>), `sst` the <si> items of the shared strings.
const char* kNs = "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
                  "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"";
void write_parts(const std::string& path, const std::vector<std::pair<std::string, std::string>>& parts) {
  std::remove(path.c_str());
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  REQUIRE(z);
  for (auto& [name, body] : parts) {
    zip_source_t* s = zip_source_buffer(z, body.data(), body.size(), 0);
    REQUIRE(zip_file_add(z, name.c_str(), s, ZIP_FL_OVERWRITE) >= 0);
  }
  REQUIRE(zip_close(z) == 0);
}
std::string write_sheet(const std::string& name, const std::string& sheet_data, const std::string& sst = "",
                        const std::string& workbook_pr = "") {
  std::string path = std::string(MDS2_VARIANTS) + "/" + name;
  write_parts(path, {
      {"xl/workbook.xml", std::string("<workbook ") + kNs + ">" + workbook_pr +
                              "<sheets><sheet name=\"Answers\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/></Relationships>"},
      {"xl/worksheets/sheet1.xml", std::string("<worksheet ") + kNs + "><sheetData>" + sheet_data + "</worksheet>"},
      {"xl/sharedStrings.xml", std::string("<sst ") + kNs + ">" + sst + "</sst>"},
  });
  return path;
}
std::string inline_cell(const std::string& ref, const std::string& text) {
  return "<c" + (ref.empty() ? std::string() : " r=\"" + ref + "\"") + " t=\"inlineStr\"><is><t>" + text + "</t></is></c>";
}
// Rows 1..n keyed CONN-1..CONN-n with the answer `answer` in column C.
std::string keyed_rows_xml(int n, const std::string& answer_cell) {
  std::string x;
  for (int i = 1; i <= n; ++i) {
    std::string r = std::to_string(i);
    x += "<row r=\"" + r + "\">" + inline_cell("A" + r, "CONN-" + r) + inline_cell("B" + r, "Question " + r + "?") +
         std::regex_replace(answer_cell, std::regex("@"), r) + "</row>";
  }
  return x;
}
}  // namespace

TEST_CASE("XLSX: a shared string used by many cells is held once, and text is capped", "[mds2]") {
  // A 1 MiB shared string (a cell's most) in 70 answer cells: 70 MiB of cell text, past the 64 MiB
  // a sheet may hold.
  std::string big(1u << 20, 'x');
  std::string path = write_sheet("sstamp.xlsx", keyed_rows_xml(70, "<c r=\"C@\" t=\"s\"><v>0</v></c>") + "</sheetData>",
                                 "<si><t>" + big + "</t></si>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("sstamp.xlsx: sheet 'Answers' holds more than 64 MiB of cell text"));
  // The same string in a few cells is read.
  path = write_sheet("sstamp.xlsx", keyed_rows_xml(3, "<c r=\"C@\" t=\"s\"><v>0</v></c>") + "</sheetData>",
                     "<si><t>" + big + "</t></si>");
  Form f = read_xlsx(path);
  CHECK(f.find("CONN-3")->detail.size() == big.size());
  std::remove(path.c_str());
}

TEST_CASE("an importer's out-of-memory error names the file", "[mds2]") {
  auto oom = [&]() -> Form { throw std::bad_alloc(); };
  CHECK_THROWS_WITH(detail::named_errors("form.xlsx", oom), Catch::StartsWith("form.xlsx: out of memory"));
}

TEST_CASE("XLSX: merged ranges fill only the sheet's rows, and their cells are capped", "[mds2]") {
  // A range down to row 1000 of a 3-row sheet: no rows are made of merged copies (the id in A
  // copied down would be a duplicate question).
  std::string path = write_sheet("merge.xlsx", keyed_rows_xml(3, inline_cell("C@", "Yes")) +
                                 "</sheetData><mergeCells><mergeCell ref=\"A3:C1000\"/></mergeCells>");
  Form f = read_xlsx(path);
  CHECK(f.questions.size() == 3);
  CHECK(std::none_of(f.warnings.begin(), f.warnings.end(),
                     [](const std::string& w) { return w.find("duplicate") != std::string::npos; }));
  // 700 ranges over 100 rows x 16 columns: 1.1 million cells filled, past the cap.
  std::string merges;
  for (int i = 0; i < 700; ++i) merges += "<mergeCell ref=\"B1:P100\"/>";
  path = write_sheet("merge.xlsx", keyed_rows_xml(100, "") + "</sheetData><mergeCells>" + merges + "</mergeCells>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("merge.xlsx: sheet 'Answers' has more than 1000000 cells in merged ranges"));
  std::remove(path.c_str());
}

TEST_CASE("XLSX: a sheet of more rows than the cap is refused, not cut short", "[mds2]") {
  std::string rows;
  for (int i = 0; i <= 100000; ++i) rows += "<row/>";
  std::string path = write_sheet("rows.xlsx", rows + "</sheetData>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("rows.xlsx: sheet 'Answers' (xl/worksheets/sheet1.xml) has more than 100000 rows"));
  // One <row> whose cells name 100 001 rows.
  std::string cells = "<row>";
  for (int i = 1; i <= 100001; ++i) cells += "<c r=\"A" + std::to_string(i) + "\"/>";
  path = write_sheet("rows.xlsx", cells + "</row></sheetData>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("rows.xlsx: sheet 'Answers' (xl/worksheets/sheet1.xml) has more than 100000 rows"));
  // At the cap: read.
  path = write_sheet("rows.xlsx", keyed_rows_xml(3, inline_cell("C@", "Yes")) + rows.substr(0, (100000 - 3) * 6) + "</sheetData>");
  CHECK(read_xlsx(path).questions.size() == 3);
  std::remove(path.c_str());
}

TEST_CASE("XLSX: text nested half a million elements deep is read without recursion", "[mds2]") {
  const int depth = 500000;  // a recursive walk needs far more stack than a thread has; within the markup cap
  std::string open, close;
  open.reserve(depth * 3);
  close.reserve(depth * 4);
  for (int i = 0; i < depth; ++i) { open += "<a>"; close += "</a>"; }
  std::string path = write_sheet("deep.xlsx", keyed_rows_xml(3, "<c r=\"C@\" t=\"s\"><v>0</v></c>") + "</sheetData>",
                                 "<si>" + open + "<t>Yes, deep</t>" + close + "</si>");
  Form f = read_xlsx(path);
  CHECK(f.find("CONN-2")->answer == Answer::yes);
  CHECK(f.find("CONN-2")->detail == "Yes, deep");
  std::remove(path.c_str());
}

TEST_CASE("PDF: a text extraction that takes too long is refused in bounded time", "[mds2]") {
  std::string path = std::string(MDS2_VARIANTS) + "/slow-layout.pdf";
  unsigned saved = detail::pdf_text_seconds;
  detail::pdf_text_seconds = 2;
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH(read_pdf(path), Catch::Contains("slow-layout.pdf: PDF text extraction took longer than 2 s; export the form as XLSX or CSV"));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  detail::pdf_text_seconds = saved;
  // A form's PDF is read as before, within the limit.
  Form f = read_pdf(std::string(MDS2_VARIANTS) + "/form.pdf");
  CHECK(f.questions.size() == 240);
}

namespace {
// Stand-ins for the PDF module's extraction, run in the child process.
int pdf_text_fine(const char*, size_t, std::string* text) { *text = "DOC-1 Acme"; return 0; }
int pdf_text_spinning(const char*, size_t, std::string*) {
  volatile unsigned long i = 0;
  for (;;) i = i + 1;
}
int pdf_text_killed(const char*, size_t, std::string*) {  // as the out-of-memory killer ends it
  raise(SIGKILL);
  return 0;
}
}  // namespace

TEST_CASE("PDF: how the text extraction's child ended is the reason given", "[mds2]") {
  std::string text;
  CHECK(detail::extract_pdf_text_bounded(pdf_text_fine, "%PDF", "a.pdf", 5, text) == static_cast<int>(PdfText::ok));
  CHECK(text == "DOC-1 Acme");
  CHECK_THROWS_WITH(detail::extract_pdf_text_bounded(pdf_text_spinning, "%PDF", "slow.pdf", 1, text),
                    Catch::Contains("slow.pdf: PDF text extraction took longer than 1 s"));
  // A SIGKILL that no time limit sent is not a time limit: memory ran out.
  try {
    detail::extract_pdf_text_bounded(pdf_text_killed, "%PDF", "big.pdf", 5, text);
    FAIL("no error");
  } catch (const ImportError& e) {
    std::string m = e.what();
    INFO(m);
    CHECK(m.find("big.pdf: PDF text extraction was killed (SIGKILL) after 0 s of CPU time, holding ") == 0);
    CHECK(m.find("when memory runs out; export the form as XLSX or CSV") != std::string::npos);
    CHECK(m.find("longer than") == std::string::npos);
  }
}

TEST_CASE("CSV: semicolon-separated files (decimal-comma locales) are read", "[mds2]") {
  std::string csv = "Question ID;Question;;See note;IEC TR 80001-2-2:2012;NIST SP 800-53 Rev. 4;ISO 27002:2013\n"
                    "CONN-3;\"Can the device communicate with other systems within the customer environment?\";Yes;__;;;\n"
                    "CONN-4;\"Can the device communicate externally (e.g., a service host)?\";No;See Note 1;;;\n"
                    "Note 1;Only through the vendor's VPN, by request.;;;;;\n";
  for (const char* hint : {"csv", ""}) {
    INFO(hint);
    Form f = read_text_buffer(csv, hint, "form.csv");
    REQUIRE(f.find("CONN-4"));
    CHECK(f.find("CONN-3")->answer == Answer::yes);
    CHECK(f.find("CONN-4")->answer == Answer::no);
    CHECK(f.find("CONN-4")->note_ref == "See Note 1");
    CHECK(f.source_format == "csv");
  }
  // A comma file whose answers hold semicolons stays a comma file; quoted ids count too.
  Form f = read_text_buffer("\"CONN-4\",\"Question?\",\"No; never\"\n\"CONN-3\",\"Question?\",\"Yes\"\n", "csv", "form.csv");
  CHECK(f.find("CONN-4")->detail == "No; never");
  CHECK(f.find("CONN-3")->answer == Answer::yes);
}

TEST_CASE("XLSX: rows and cells without an r attribute are placed by their order", "[mds2]") {
  auto c = [](const std::string& text) { return inline_cell("", text); };
  std::string rows = "<row>" + c("Question ID") + c("Question") + "<c/>" + c("See note") + "</row>" +
                     "<row>" + c("CONN-3") + c("Within the customer environment?") + c("Yes") + "</row>" +
                     "<row>" + c("CONN-4") + c("External?") + "<c/>" + c("See Note 1") + "</row>" +
                     // A row with r, then one without (row 11), cells with and without r mixed.
                     "<row r=\"10\">" + c("CONN-5") + c("Serial?") + c("No") + "</row>" +
                     "<row>" + c("CONN-6") + inline_cell("C11", "N/A") + c("See Note 2") + "</row>";
  std::string path = write_sheet("noref.xlsx", rows + "</sheetData>");
  Form f = read_xlsx(path);
  REQUIRE(f.questions.size() == 4);
  CHECK(f.find("CONN-3")->answer == Answer::yes);
  CHECK(f.find("CONN-4")->answer == Answer::blank);
  CHECK(f.find("CONN-4")->note_ref == "See Note 1");
  CHECK(f.find("CONN-5")->answer == Answer::no);
  CHECK(f.find("CONN-6")->answer == Answer::na);
  CHECK(f.find("CONN-6")->note_ref == "See Note 2");
  std::remove(path.c_str());
}

TEST_CASE("XLSX: a rich-text run of only a space is kept", "[mds2]") {
  std::string sst = "<si><r><rPr><b/></rPr><t>No</t></r><r><t xml:space=\"preserve\"> </t></r><r><t>external connections</t></r></si>"
                    "<si><r><t>Yes</t></r><r><t xml:space=\"preserve\">  </t></r><r><t>(HL7)</t></r></si>";
  std::string rows = keyed_rows_xml(2, "") + "<row r=\"3\">" + inline_cell("A3", "CONN-4") + inline_cell("B3", "External?") +
                     "<c r=\"C3\" t=\"s\"><v>0</v></c></row><row r=\"4\">" + inline_cell("A4", "CONN-3") +
                     inline_cell("B4", "Internal?") + "<c r=\"C4\" t=\"s\"><v>1</v></c></row>";
  std::string path = write_sheet("richspace.xlsx", rows + "</sheetData>", sst);
  Form f = read_xlsx(path);
  CHECK(f.find("CONN-4")->answer == Answer::no);
  CHECK(f.find("CONN-4")->detail == "No external connections");
  CHECK(f.find("CONN-3")->detail == "Yes (HL7)");
  std::remove(path.c_str());
}

TEST_CASE("DOC-7: only an XLSX number cell is a serial date; text keeps its wording", "[mds2]") {
  for (const char* date : {"2019", "10.2019", "43747"}) {
    INFO(date);
    Form f = read_text_buffer(std::string("DOC-1,Manufacturer Name,Acme\nDOC-7,Document Release Date,") + date +
                              "\nCONN-4,\"Can the device communicate externally?\",No\n", "csv", "form.csv");
    finish_form(f);
    CHECK(f.find("DOC-7")->detail == date);
    CHECK(YAML::Load(render_model(f, {}, {}))["model"]["documents"][0]["release_date"].as<std::string>() == date);
  }
  auto doc7 = [](const std::string& cell, const std::string& workbook_pr = "") {
    std::string rows = keyed_rows_xml(2, "") + "<row r=\"3\">" + inline_cell("A3", "DOC-7") +
                       inline_cell("B3", "Document Release Date") + cell + "</row>";
    std::string path = write_sheet("doc7.xlsx", rows + "</sheetData>", "", workbook_pr);
    std::string d = read_xlsx(path).find("DOC-7")->detail;
    std::remove(path.c_str());
    return d;
  };
  CHECK(doc7("<c r=\"C3\"><v>43747</v></c>") == "2019-10-09");
  CHECK(doc7("<c r=\"C3\" t=\"n\"><v>43747</v></c>") == "2019-10-09");
  CHECK(doc7(inline_cell("C3", "43747")) == "43747");  // a text cell is not a date
  CHECK(doc7(inline_cell("C3", "2019")) == "2019");
  // The 1904 date system: the same day is 1462 days less.
  CHECK(doc7("<c r=\"C3\"><v>42285</v></c>", "<workbookPr date1904=\"1\"/>") == "2019-10-09");
  CHECK(doc7("<c r=\"C3\"><v>42285</v></c>", "<workbookPr date1904=\"true\"/>") == "2019-10-09");
  CHECK(excel_serial_to_date("42285", true) == "2019-10-09");
  // The row is DOC-7's however its id cell is written, as long as the form reads it as DOC-7's:
  // the id with the question in one cell, or followed by a colon.
  auto doc7_keyed = [](const std::string& id_cell, const std::string& question_cell = "") {
    std::string rows = keyed_rows_xml(2, "") + "<row r=\"3\">" + inline_cell("A3", id_cell) +
                       (question_cell.empty() ? "" : inline_cell("B3", question_cell)) +
                       "<c r=\"C3\"><v>43747</v></c></row>";
    std::string path = write_sheet("doc7.xlsx", rows + "</sheetData>");
    Form f = read_xlsx(path);
    std::remove(path.c_str());
    return f.find("DOC-7") ? f.find("DOC-7")->detail : std::string("(no DOC-7)");
  };
  CHECK(doc7_keyed("DOC-7 Document Release Date") == "2019-10-09");
  CHECK(doc7_keyed("DOC-7:", "Document Release Date") == "2019-10-09");
  CHECK(doc7_keyed(" DOC-7 ", "Document Release Date") == "2019-10-09");
  CHECK(doc7_keyed("**DOC-7**", "Document Release Date") == "2019-10-09");
  CHECK(doc7_keyed("DOC-70") == "(no DOC-7)");
}

TEST_CASE("text: lines ended by a lone CR (classic Mac) are lines", "[mds2]") {
  std::string csv = "Question ID,Question,,See note\rCONN-3,\"Within?\",Yes,__\rCONN-4,\"External?\",No,See Note 1\r"
                    "Note 1,\"Only by\rVPN.\"\r";
  for (const char* hint : {"csv", ""}) {
    INFO(hint);
    Form f = read_text_buffer(csv, hint, "form.csv");
    REQUIRE(f.find("CONN-4"));
    CHECK(f.find("CONN-3")->answer == Answer::yes);
    CHECK(f.find("CONN-4")->answer == Answer::no);
    CHECK(f.notes["Note 1"] == "Only by VPN.");
  }
  // CRLF is one line end, not two.
  Form f = read_text_buffer("CONN-3\tWithin?\tYes\r\nCONN-4\tExternal?\tNo\r\n", "", "form.txt");
  CHECK(f.questions.size() == 2);
  CHECK(f.find("CONN-4")->answer == Answer::no);
}

TEST_CASE("XLSX: the filled sheet wins over a blank template named mds2-form", "[mds2]") {
  std::string path = std::string(MDS2_VARIANTS) + "/template-first.xlsx";
  auto sheet = [](const std::string& rows) { return std::string("<worksheet ") + kNs + "><sheetData>" + rows + "</sheetData></worksheet>"; };
  auto write = [&](const std::string& first, const std::string& second) {
    write_parts(path, {
        {"xl/workbook.xml", std::string("<workbook ") + kNs + "><sheets><sheet name=\"mds2-form\" sheetId=\"1\" r:id=\"rId1\"/>"
                            "<sheet name=\"Acme CT 2019\" sheetId=\"2\" r:id=\"rId2\"/></sheets></workbook>"},
        {"xl/_rels/workbook.xml.rels",
         "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
         "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/><Relationship Id=\"rId2\" Target=\"worksheets/sheet2.xml\"/>"
         "</Relationships>"},
        {"xl/worksheets/sheet1.xml", sheet(first)},
        {"xl/worksheets/sheet2.xml", sheet(second)},
    });
  };
  write(keyed_rows_xml(5, ""), keyed_rows_xml(5, inline_cell("C@", "No")));
  CHECK(read_xlsx(path).find("CONN-4")->answer == Answer::no);
  // Both filled alike: the sheet named mds2-form.
  write(keyed_rows_xml(5, inline_cell("C@", "Yes")), keyed_rows_xml(5, inline_cell("C@", "No")));
  CHECK(read_xlsx(path).find("CONN-4")->answer == Answer::yes);
  std::remove(path.c_str());
}

TEST_CASE("XLSX: parts are found through the package's relationships", "[mds2]") {
  // The workbook, its sheet and its shared strings under other names than Excel's.
  std::string path = std::string(MDS2_VARIANTS) + "/renamed-parts.xlsx";
  const char* rel_ns = "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"";
  const std::string type = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/";
  write_parts(path, {
      {"_rels/.rels", std::string("<Relationships ") + rel_ns + "><Relationship Id=\"rId1\" Type=\"" + type +
                          "officeDocument\" Target=\"book/main.xml\"/></Relationships>"},
      {"book/main.xml", std::string("<workbook ") + kNs + "><sheets><sheet name=\"Answers\" sheetId=\"1\" r:id=\"rId7\"/></sheets></workbook>"},
      {"book/_rels/main.xml.rels", std::string("<Relationships ") + rel_ns + ">"
                                   "<Relationship Id=\"rId7\" Type=\"" + type + "worksheet\" Target=\"sheets/answers.xml\"/>"
                                   "<Relationship Id=\"rId8\" Type=\"" + type + "sharedStrings\" Target=\"/book/strings.xml\"/>"
                                   "</Relationships>"},
      {"book/sheets/answers.xml", std::string("<worksheet ") + kNs + "><sheetData>" +
                                      keyed_rows_xml(3, "<c r=\"C@\" t=\"s\"><v>0</v></c>") + "</sheetData></worksheet>"},
      {"book/strings.xml", std::string("<sst ") + kNs + "><si><t>No</t></si></sst>"},
  });
  Form f = read_xlsx(path);
  REQUIRE(f.questions.size() == 3);
  CHECK(f.find("CONN-3")->answer == Answer::no);
  std::remove(path.c_str());
}

namespace {
// A workbook whose sheet entries (name, relationship id) name the given sheet parts (rId, XML body).
std::string write_book(const std::string& name, const std::vector<std::pair<std::string, std::string>>& entries,
                       const std::vector<std::pair<std::string, const std::string*>>& parts) {
  std::string path = std::string(MDS2_VARIANTS) + "/" + name;
  std::string wb = std::string("<workbook ") + kNs + "><sheets>";
  for (size_t i = 0; i < entries.size(); ++i)
    wb += "<sheet name=\"" + entries[i].first + "\" sheetId=\"" + std::to_string(i + 1) + "\" r:id=\"" + entries[i].second + "\"/>";
  wb += "</sheets></workbook>";
  std::string rels = "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">";
  for (auto& [id, body] : parts) rels += "<Relationship Id=\"" + id + "\" Target=\"worksheets/" + id + ".xml\"/>";
  rels += "</Relationships>";
  std::remove(path.c_str());
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  REQUIRE(z);
  auto add = [&](const std::string& part, const std::string& body) {
    zip_source_t* s = zip_source_buffer(z, body.data(), body.size(), 0);
    REQUIRE(zip_file_add(z, part.c_str(), s, ZIP_FL_OVERWRITE) >= 0);
  };
  add("xl/workbook.xml", wb);
  add("xl/_rels/workbook.xml.rels", rels);
  for (auto& [id, body] : parts) add("xl/worksheets/" + id + ".xml", *body);  // buffers outlive zip_close
  REQUIRE(zip_close(z) == 0);
  return path;
}
std::string sheet_xml(const std::string& rows, const std::string& before = "") {
  return std::string("<worksheet ") + kNs + ">" + before + "<sheetData>" + rows + "</sheetData></worksheet>";
}
}  // namespace

TEST_CASE("XLSX: the number of sheets is capped", "[mds2]") {
  std::string body = sheet_xml(keyed_rows_xml(3, inline_cell("C@", "No")));
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 300; ++i) entries.emplace_back("s" + std::to_string(i), "rId1");
  std::string path = write_book("many-sheets.xlsx", entries, {{"rId1", &body}});
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("many-sheets.xlsx: the workbook has more than 256 sheets"));
  entries.resize(256);
  path = write_book("many-sheets.xlsx", entries, {{"rId1", &body}});
  CHECK(read_xlsx(path).find("CONN-3")->answer == Answer::no);
  std::remove(path.c_str());
}

TEST_CASE("XLSX: a part is read once, and a sheet's texts are dropped after it is scored", "[mds2]") {
  // 3 questions, then 0.5 MiB of number text (8 cells of 64 KiB digits) and 1.5 MiB of comment.
  std::string numbers = "<row r=\"10\">";
  for (char col = 'D'; col <= 'K'; ++col) numbers += std::string("<c r=\"") + col + "10\"><v>" + std::string(64 << 10, '7') + "</v></c>";
  numbers += "</row>";
  std::string body = sheet_xml(keyed_rows_xml(3, inline_cell("C@", "No")) + numbers, "<!--" + std::string(3u << 19, 'c') + " -->");
  // 200 entries naming one 2 MiB part: 400 MiB of XML and 100 MiB of text if read for each.
  std::vector<std::pair<std::string, std::string>> entries;
  for (int i = 0; i < 200; ++i) entries.emplace_back("s" + std::to_string(i), "rId1");
  std::string path = write_book("one-part.xlsx", entries, {{"rId1", &body}});
  CHECK(read_xlsx(path).find("CONN-2")->answer == Answer::no);
  std::remove(path.c_str());
  // 150 parts of 0.5 MiB number text each: 75 MiB over the workbook, 0.5 MiB at a time.
  std::string small = sheet_xml(keyed_rows_xml(3, inline_cell("C@", "No")) + numbers);
  entries.clear();
  std::vector<std::pair<std::string, const std::string*>> parts;
  for (int i = 0; i < 150; ++i) {
    entries.emplace_back("s" + std::to_string(i), "rId" + std::to_string(i));
    parts.emplace_back("rId" + std::to_string(i), &small);
  }
  path = write_book("many-parts.xlsx", entries, parts);
  CHECK(read_xlsx(path).find("CONN-2")->answer == Answer::no);
  std::remove(path.c_str());
  // Parts of 50 MiB (a comment, cheap to parse): three are past the 128 MiB the workbook's parts may hold.
  std::string big = sheet_xml(keyed_rows_xml(3, inline_cell("C@", "No")), "<!--" + std::string(50u << 20, 'c') + " -->");
  entries.clear();
  parts.clear();
  for (int i = 0; i < 3; ++i) {
    entries.emplace_back("s" + std::to_string(i), "rId" + std::to_string(i));
    parts.emplace_back("rId" + std::to_string(i), &big);
  }
  path = write_book("big-parts.xlsx", entries, parts);
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("big-parts.xlsx: the workbook's parts hold more than 128 MiB of XML"));
  std::remove(path.c_str());
}

TEST_CASE("XLSX: a part's markup is capped before its DOM is built", "[mds2]") {
  // 2.1 million empty elements: 8 MiB of XML, a 130 MiB DOM.
  std::string empties;
  empties.reserve(2100000 * 4);
  for (int i = 0; i < 2100000; ++i) empties += "<x/>";
  std::string path = write_sheet("markup.xlsx", keyed_rows_xml(3, inline_cell("C@", "No")) + empties + "</sheetData>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("markup.xlsx: sheet 'Answers' has more than 2000000 XML tags and attributes"));
  // In the shared strings (<si/> items) the part is named.
  std::string sis;
  for (int i = 0; i < 2100000; ++i) sis += "<si/>";
  path = write_sheet("markup.xlsx", keyed_rows_xml(3, inline_cell("C@", "No")) + "</sheetData>", sis);
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("markup.xlsx: xl/sharedStrings.xml has more than 2000000 XML tags"));
  std::remove(path.c_str());
}

TEST_CASE("XLSX: damaged shared strings are named", "[mds2]") {
  std::string path = write_sheet("sst-damaged.xlsx", keyed_rows_xml(3, "<c r=\"C@\" t=\"s\"><v>0</v></c>") + "</sheetData>",
                                 "<si><t>No</t></si><si><t>cut he");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("sst-damaged.xlsx: xl/sharedStrings.xml is not well-formed XML"));
  // Past the part cap (65 MiB of spaces: 65 KiB compressed) it is named, with the cap.
  path = write_sheet("sst-damaged.xlsx", keyed_rows_xml(3, "<c r=\"C@\" t=\"s\"><v>0</v></c>") + "</sheetData>",
                     "<si><t>No</t></si>" + std::string(65u << 20, ' '));
  CHECK_THROWS_WITH(read_xlsx(path),
                    Catch::Contains("sst-damaged.xlsx: xl/sharedStrings.xml is larger than 64 MiB uncompressed (65 MiB)"));
  // So is a sheet (a zip bomb).
  path = write_sheet("sst-damaged.xlsx", keyed_rows_xml(3, inline_cell("C@", "No")) + std::string(65u << 20, ' ') + "</sheetData>");
  CHECK_THROWS_WITH(read_xlsx(path),
                    Catch::Contains("sst-damaged.xlsx: xl/worksheets/sheet1.xml is larger than 64 MiB uncompressed"));
  std::remove(path.c_str());
}

TEST_CASE("XLSX: a shared-string index past the shared strings names the cell", "[mds2]") {
  for (const char* bad : {"5", "-1", "99999999999999999999", "x"}) {
    INFO(bad);
    std::string path = write_sheet("sst-index.xlsx",
                                   keyed_rows_xml(2, "<c r=\"C@\" t=\"s\"><v>0</v></c>") +
                                       "<row r=\"3\">" + inline_cell("A3", "CONN-3") + "<c r=\"C3\" t=\"s\"><v>" + bad +
                                       "</v></c></row></sheetData>",
                                   "<si><t>No</t></si><si><t>Yes</t></si>");
    CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("sst-index.xlsx: sheet 'Answers' cell C3 refers to shared string '" +
                                                       std::string(bad).substr(0, 32) + "', but the workbook has 2"));
    std::remove(path.c_str());
  }
  // A shared-string cell with no value is an empty cell.
  std::string path = write_sheet("sst-index.xlsx", keyed_rows_xml(2, "<c r=\"C@\" t=\"s\"/>") + "</sheetData>",
                                 "<si><t>No</t></si>");
  CHECK(read_xlsx(path).find("CONN-2")->answer == Answer::blank);
  std::remove(path.c_str());
}

TEST_CASE("XLSX: _xHHHH_ escapes (ST_Xstring) are decoded", "[mds2]") {
  std::string path = write_sheet(
      "xstring.xlsx",
      keyed_rows_xml(2, "<c r=\"C@\" t=\"s\"><v>@</v></c>") + "<row r=\"3\">" + inline_cell("A3", "CONN-3") +
          inline_cell("C3", "Yes_x000D_\n(see note 2)") + "</row><row r=\"4\">" + inline_cell("A4", "DOC-1") + inline_cell("B4", "Manufacturer Name") +
          "<c r=\"C4\" t=\"str\"><f>A1</f><v>Acme_x0020_Corp</v></c></row></sheetData>",
      "<si><t>unused</t></si><si><t>No_x000D__x000A_external_x005F_x0041_</t></si>"
      "<si><t>_x0059_es _xD83D__xDE00_ _x00e9_</t></si>");
  Form f = read_xlsx(path);
  CHECK(f.find("CONN-1")->detail == "No external_x0041_");
  CHECK(f.find("CONN-1")->answer == Answer::no);
  CHECK(f.find("CONN-2")->detail == "Yes \xF0\x9F\x98\x80 \xC3\xA9");
  CHECK(f.find("CONN-2")->answer == Answer::yes);
  CHECK(f.find("CONN-3")->detail == "Yes (see note 2)");
  CHECK(f.find("DOC-1")->detail == "Acme Corp");
  std::remove(path.c_str());
}

TEST_CASE("XLSX: SpreadsheetML with a namespace prefix (Open XML SDK) is read", "[mds2]") {
  const std::string ns = "xmlns:x=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
                         "xmlns:rel=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"";
  auto ic = [](const std::string& ref, const std::string& text) {
    return "<x:c r=\"" + ref + "\" t=\"inlineStr\"><x:is><x:r><x:t>" + text + "</x:t></x:r></x:is></x:c>";
  };
  std::string rows = "<x:row r=\"1\">" + ic("A1", "CONN-3") + ic("B1", "Internal?") + "<x:c r=\"C1\" t=\"s\"><x:v>0</x:v></x:c></x:row>"
                     "<x:row r=\"2\">" + ic("A2", "CONN-4") + ic("B2", "External?") + "</x:row>"
                     "<x:row r=\"3\">" + ic("A3", "DOC-7") + ic("B3", "Release date") + "<x:c r=\"C3\"><x:v>43747</x:v></x:c></x:row>";
  std::string path = std::string(MDS2_VARIANTS) + "/prefixed.xlsx";
  write_parts(path, {
      {"xl/workbook.xml", "<x:workbook " + ns + "><x:sheets><x:sheet name=\"mds2\" sheetId=\"1\" rel:id=\"rId1\"/></x:sheets></x:workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/></Relationships>"},
      {"xl/worksheets/sheet1.xml", "<x:worksheet " + ns + "><x:sheetData>" + rows + "</x:sheetData>"
                                   "<x:mergeCells><x:mergeCell ref=\"C1:C2\"/></x:mergeCells></x:worksheet>"},
      {"xl/sharedStrings.xml", "<x:sst " + ns + "><x:si><x:t>Yes</x:t><x:rPh><x:t>ignored</x:t></x:rPh></x:si></x:sst>"},
  });
  Form f = read_xlsx(path);
  REQUIRE(f.questions.size() == 3);
  CHECK(f.find("CONN-3")->answer == Answer::yes);
  CHECK(f.find("CONN-3")->detail == "Yes");
  CHECK(f.find("CONN-4")->answer == Answer::yes);  // merged
  CHECK(f.find("DOC-7")->detail == "2019-10-09");
  // A prefix bound to another namespace is not SpreadsheetML.
  write_parts(path, {
      {"xl/workbook.xml", "<x:workbook xmlns:x=\"urn:other\"><x:sheets/></x:workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/></Relationships>"},
  });
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("is not a workbook"));
  std::remove(path.c_str());
}

TEST_CASE("a form or port table that is not a regular file is read only up to the cap", "[mds2]") {
  // A pipe fed 32 MiB: reading stops one byte past a 1 MiB cap, so the writer is stopped early.
  std::string fifo = std::string(MDS2_VARIANTS) + "/form.fifo";
  std::remove(fifo.c_str());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  signal(SIGPIPE, SIG_IGN);
  size_t written = 0;
  std::thread writer([&] {
    FILE* w = std::fopen(fifo.c_str(), "wb");
    if (!w) return;
    std::string chunk(1 << 16, 'x');
    for (int i = 0; i < 512; ++i) {
      if (std::fwrite(chunk.data(), 1, chunk.size(), w) != chunk.size()) break;
      written += chunk.size();
    }
    std::fclose(w);
  });
  CHECK_THROWS_WITH(detail::read_file(fifo, 1u << 20, "cannot open"), Catch::Contains("form.fifo: larger than 1 MiB"));
  std::remove(fifo.c_str());  // the writer's open has returned: the reader opened the pipe
  writer.join();
  CHECK(written < (4u << 20));
  // A port table has a cap of its own.
  std::string ports = std::string(MDS2_VARIANTS) + "/big-ports.csv";
  {
    std::ofstream o(ports);
    std::string line = "# " + std::string(1000, 'x') + "\n";
    for (int i = 0; i < 5000; ++i) o << line;
  }
  CHECK_THROWS_WITH(read_ports_csv(ports), Catch::Contains("big-ports.csv: larger than 4 MiB"));
  std::remove(ports.c_str());
  // A directory is not a form.
  CHECK_THROWS_WITH(read_text(MDS2_VARIANTS), Catch::Contains("a directory"));
}

TEST_CASE("a port table's out-of-memory error names the file", "[mds2]") {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer reserves terabytes of address space for its shadow: no allocation of the
  // child below fits the limit, and ASan aborts instead of throwing std::bad_alloc.
  SUCCEED("not run under AddressSanitizer");
  return;
#endif
  // One row of 1.9 million one-character fields (3.8 MiB): ~90 MiB as fields, read in a child
  // process whose address space may grow by 32 MiB only.
  std::string ports = std::string(MDS2_VARIANTS) + "/wide-ports.csv";
  {
    std::ofstream o(ports);
    std::string row;
    for (int i = 0; i < 1900000; ++i) row += "1,";
    o << row << "\n";
  }
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    unsigned long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) { (void)!std::fscanf(f, "%lu", &pages); std::fclose(f); }
    rlim_t limit = pages * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + (32u << 20);
    rlimit r{limit, limit};
    setrlimit(RLIMIT_AS, &r);
    std::string msg;
    try {
      read_ports_csv(ports);
      msg = "read";
    } catch (const std::exception& e) {
      msg = e.what();
    }
    (void)!write(fds[1], msg.data(), msg.size());
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK_THAT(msg, Catch::StartsWith(ports + ": out of memory"));
  std::remove(ports.c_str());
}

namespace {
// A port table in a file of the variants folder, read back.
std::vector<PortEntry> ports_of(const std::string& table) {
  std::string path = std::string(MDS2_VARIANTS) + "/ports-shape.csv";
  std::ofstream(path) << table;
  auto p = read_ports_csv(path);
  std::remove(path.c_str());
  return p;
}
// The flow ids of a rendered model.
std::vector<std::string> flow_ids(const std::string& yaml) {
  std::vector<std::string> ids;
  for (auto f : YAML::Load(yaml)["flows"]) ids.push_back(f["id"].as<std::string>());
  return ids;
}
}  // namespace

TEST_CASE("CSV/TSV: a stray quote is read as a character, never swallowing the rows after it", "[mds2]") {
  for (char sep : {',', '\t'}) {
    std::string d(1, sep);
    std::string text = "Question ID" + d + "Question" + d + "Answer" + d + "See note\n" +
                       "CONN-3" + d + "Within?" + d + "Yes" + d + "__\n" +
                       "CONN-4" + d + "External?" + d + "\"No" + d + "__\n" +
                       "CONN-5" + d + "\"API, \"\"REST\"\"?\"" + d + "\"Yes,\nwith a token\"" + d + "__\n" +
                       "CONN-6" + d + "Internet?" + d + "No" + d + "__\n" +
                       "Note 1" + d + "Only by VPN.\n";
    INFO(sep);
    Form f = read_text_buffer(text, sep == ',' ? "csv" : "tsv", "form");
    finish_form(f);
    REQUIRE(f.questions.size() == 4);
    CHECK(f.find("CONN-4")->detail == "\"No");
    CHECK(f.find("CONN-5")->question == "API, \"REST\"?");
    CHECK(f.find("CONN-5")->answer == Answer::yes);
    CHECK(f.find("CONN-5")->detail == "Yes, with a token");
    CHECK(f.find("CONN-6")->answer == Answer::no);
    CHECK(f.notes["Note 1"] == "Only by VPN.");
    CHECK(std::any_of(f.warnings.begin(), f.warnings.end(),
                      [](const std::string& w) { return w.find("quote") != std::string::npos && w.find("line 3") != std::string::npos; }));
  }
  // A quoted cell that closes before the delimiter, spaces between, is still one cell.
  auto rows = detail::parse_delimited("a,\"b,c\" ,d\n\"x\n", ',');
  REQUIRE(rows.size() == 2);
  CHECK(rows[0] == std::vector<std::string>{"a", "b,c ", "d"});
  CHECK(rows[1] == std::vector<std::string>{"\"x"});
}

TEST_CASE("spellings of N/A are n.a., and an answer offering both yes and no is neither", "[mds2]") {
  std::string d;
  for (const char* na : {"N/A", "NA", "n.a.", "N.A", "Not applicable", "N\\A", "N / A", "N-A", "n/ a", "N. A.", "N/A.",
                         "n/a, no network", "N/A - no network"}) {
    INFO(na);
    CHECK(normalise_answer(na, d) == Answer::na);
  }
  for (const char* both : {"Y/N", "Yes/No", "No/Yes", "yes or no", "N / Y", "Y\\N"}) {
    INFO(both);
    CHECK(normalise_answer(both, d) == Answer::text);
  }
  CHECK(normalise_answer("N", d) == Answer::no);
  CHECK(normalise_answer("N, see note 2", d) == Answer::no);
  CHECK(normalise_answer("No - Audit log only", d) == Answer::no);
  CHECK(normalise_answer("No/optional", d) == Answer::no);
  CHECK(normalise_answer("Yes/optional", d) == Answer::yes);
  CHECK(normalise_answer("Y", d) == Answer::yes);
  CHECK(normalise_answer("Nay", d) == Answer::text);
  CHECK(normalise_answer("N-Acknowledge", d) == Answer::no);
}

TEST_CASE("an answer listing both yes and no, whatever the separator, is text", "[mds2]") {
  std::string d;
  for (const char* both : {"Yes, No", "Yes and No", "Yes & No", "Yes; No", "Yes-No", "Yes - No", "No, Yes", "no and yes",
                           "Yes, No, N/A, or See Note", "Yes, No, N/A", "Yes (optional) / No (default)",
                           "No (default), Yes (optional)", "Y; N", "Yes, or No.", "Yes | No"}) {
    INFO(both);
    CHECK(normalise_answer(both, d) == Answer::text);
    CHECK(d == collapse_ws(both));
  }
  // Real answers that go on after the word keep it.
  for (const char* yes : {"Yes, see note 3", "Yes, no PHI is stored", "Yes - no configuration needed", "Yes, N/A for HL7",
                          "Yes (TLS 1.2, optional)", "Yes, N-1 redundancy", "Yes and no more than two ports",
                          "Yes,\"DICOM WL, HL7, PACS\""}) {
    INFO(yes);
    CHECK(normalise_answer(yes, d) == Answer::yes);
  }
  for (const char* no : {"No - see note 2", "No: No end-of-life components", "No, non-PHI data only", "N-Acknowledge",
                         "No/optional", "No; yesterday's build only"}) {
    INFO(no);
    CHECK(normalise_answer(no, d) == Answer::no);
  }
  // Through a form: the template's placeholder left in the answer column gives no switch.
  Form f = read_text_buffer("Question ID,Question,,See note\n"
                            "CONN-4,Can the device communicate externally?,\"Yes, No, N/A, or See Note\",__\n",
                            "csv");
  finish_form(f);
  REQUIRE(f.find("CONN-4"));
  CHECK(f.find("CONN-4")->answer == Answer::text);
}

TEST_CASE("text and PDF layout: notes are read whole, wrapped lines joined", "[mds2]") {
  // As PDF text in layout: the note's text wraps onto lines at its column, sentences two spaces apart.
  std::string layout =
      "CONN-4      Can the device communicate externally?            No        See Note 1\n"
      "Note 1      The device is a battery powered, hand held, personal glucose monitor.  It records\n"
      "            glucose levels based on test strip insertion.  It can be attached by a special\n"
      "            cable to a PC.\n"
      "Note 2      There is no restriction on access.\n"
      "\n"
      "                                   Page 3 of 3\n";
  Form f = read_text_buffer(layout, "text");
  finish_form(f);
  CHECK(f.notes["Note 1"] == "The device is a battery powered, hand held, personal glucose monitor. It records glucose "
                             "levels based on test strip insertion. It can be attached by a special cable to a PC.");
  CHECK(f.notes["Note 2"] == "There is no restriction on access.");
  CHECK(f.find("CONN-4")->note == f.notes["Note 1"]);
  // Markdown: a note line with sentences two spaces apart, and a paragraph wrapped onto the next line.
  Form md = read_text_buffer("| CONN-4 | Externally? | No | See Note 1 |\n\n"
                             "**Note 1**: The device is a glucose monitor.  It records levels.\n"
                             "It can be attached to a PC.\n\n"
                             "**Note 2**: No restriction.\n",
                             "markdown");
  finish_form(md);
  CHECK(md.notes["Note 1"] == "The device is a glucose monitor. It records levels. It can be attached to a PC.");
  CHECK(md.notes["Note 2"] == "No restriction.");
  // "Note 1 applies ..." in running text is no note row.
  Form prose = read_text_buffer("CONN-4   Externally?   No\nNote 1 applies to every port.\n", "text");
  CHECK(prose.notes.empty());
}

TEST_CASE("text and PDF layout: an answer on the line below its wrapped question is read", "[mds2]") {
  std::string layout =
      "MPII-1      Can this device display, transmit,\n"
      "            store, or modify personally identifiable information?  Yes       __\n"
      "CONN-7.1    Is TLS configurable?\n"
      "                                                                   No        \n"
      "PLOK-1      Is the device software only?\n"
      "            If yes, answer N/A to remaining questions.             No        __\n"
      "TXCF-5      Are secure transmission methods supported\n"
      "            (DICOM, HL7, IEEE 11073)?                               Yes       See Note 2\n"
      "CONN-8      Does the device provide operator control?\n"
      "            REMOTE SERVICE (RMOT)                  IEC TR 80001-2-2:2012   NIST SP 800-53 Rev. 4\n"
      "            Remote service refers to all kinds of device maintenance.\n"
      "RMOT-1      Does the device permit remote service?                  No        __\n"
      "            A second line of the question.\n"
      "CONN-6      Does the device require an internet connection?\n"
      "                                   Page 3 of 3\n"
      "CONN-5 Does the device make or receive API calls? No\n"
      "       (see the interface guide)\n"
      "CONN-3\n"
      "            Can the device communicate within the customer environment?   Yes\n";
  Form f = read_text_buffer(layout, "text");
  finish_form(f);
  CHECK(f.find("MPII-1")->answer == Answer::yes);
  CHECK(f.find("MPII-1")->question ==
        "Can this device display, transmit, store, or modify personally identifiable information?");
  CHECK(f.find("CONN-7.1")->answer == Answer::no);
  CHECK(f.find("PLOK-1")->answer == Answer::no);
  CHECK(f.find("TXCF-5")->answer == Answer::yes);
  CHECK(f.find("TXCF-5")->note_ref == "See Note 2");
  // Ambiguous lines are not taken: a section title, a row that has its answer, a page footer.
  CHECK(f.find("CONN-8")->answer == Answer::blank);
  CHECK(f.find("CONN-8")->question == "Does the device provide operator control?");
  CHECK(f.find("RMOT-1")->answer == Answer::no);
  CHECK(f.find("RMOT-1")->question == "Does the device permit remote service?");
  CHECK(f.find("CONN-6")->answer == Answer::blank);
  CHECK(f.find("CONN-5")->answer == Answer::no);  // a row whole in one cell takes no line below
  CHECK(f.find("CONN-3")->answer == Answer::yes);  // the id alone takes its question and answer from below
  CHECK(f.find("CONN-3")->question == "Can the device communicate within the customer environment?");
}

TEST_CASE("text and PDF layout: two spaces inside a wrapped question split off no answer", "[mds2]") {
  // The answer on the question's last line (a spreadsheet's bottom alignment), the question's text
  // with two spaces in it: the cell split off there is the question's, the answer is right of it
  // or on the line below.
  std::string layout =
      "DOC-1       Manufacturer Name                                    Acme\n"
      "MPII-3.5    Does the device transmit/receive personally\n"
      "            identifiable information via a wired network\n"
      "            connection (e.g., RJ45, fiber optic,  etc.)?         No            __\n"
      "CSUP-1      Does the device contain any software or firmware\n"
      "            the software/firmware?  If no, answer N/A to\n"
      "            questions in this section.                           N/A           __\n"
      "CSUP-2      Is the device software only?  If no, answer N/A.     N/A           __\n";
  Form f = read_text_buffer(layout, "text");
  finish_form(f);
  REQUIRE(f.find("MPII-3.5"));
  CHECK(f.find("MPII-3.5")->answer == Answer::no);
  CHECK(f.find("MPII-3.5")->note.empty());
  CHECK(f.find("MPII-3.5")->question ==
        "Does the device transmit/receive personally identifiable information via a wired network "
        "connection (e.g., RJ45, fiber optic, etc.)?");
  REQUIRE(f.find("CSUP-1"));
  CHECK(f.find("CSUP-1")->answer == Answer::na);
  CHECK(f.find("CSUP-1")->question ==
        "Does the device contain any software or firmware the software/firmware? If no, answer N/A to "
        "questions in this section.");
  REQUIRE(f.find("CSUP-2"));  // on the id's line, the answer word right of the split-off cell
  CHECK(f.find("CSUP-2")->answer == Answer::na);
  CHECK(f.find("CSUP-2")->question == "Is the device software only? If no, answer N/A.");
}

TEST_CASE("a form whose answers are nearly all blank is warned about", "[mds2]") {
  std::string text;
  for (int i = 1; i <= 40; ++i) text += "CONN-" + std::to_string(i) + "      Question " + std::to_string(i) + "?\n";
  Form f = read_text_buffer(text, "text");
  finish_form(f);
  CHECK(std::any_of(f.warnings.begin(), f.warnings.end(),
                    [](const std::string& w) { return w.find("40 of 40 answers are blank") == 0; }));
  Form nema = read_xlsx(MDS2_XLSX);
  CHECK(std::none_of(nema.warnings.begin(), nema.warnings.end(),
                     [](const std::string& w) { return w.find("answers are blank") != std::string::npos; }));
}

TEST_CASE("text encodings: Windows-1252 and UTF-16 are decoded, control characters never reach the YAML raw", "[mds2]") {
  // Windows-1252 (Excel's CSV on Windows): decoded, with a warning.
  Form cp = read_text_buffer("Question ID,Question,Answer\nDOC-1,Manufacturer Name,Caf\xe9 M\xfcller \x93" "Acme\x94\n"
                             "CONN-4,External?,\xa0No\n",
                             "csv");
  finish_form(cp);
  CHECK(cp.find("DOC-1")->detail == "Caf\xC3\xA9 M\xC3\xBCller \xE2\x80\x9C" "Acme\xE2\x80\x9D");
  CHECK(cp.find("CONN-4")->answer == Answer::no);
  CHECK(std::any_of(cp.warnings.begin(), cp.warnings.end(),
                    [](const std::string& w) { return w.find("not UTF-8 text: read as Windows-1252") != std::string::npos; }));
  // UTF-16 with a byte-order mark, either byte order, a character outside the BMP included.
  std::string utf8 = "Question ID,Question,Answer\nDOC-1,Manufacturer Name,Acme \xF0\x9F\x98\x80\nCONN-4,External?,No\n";
  for (bool le : {true, false}) {
    std::u16string u;
    for (size_t i = 0; i < utf8.size();) {
      unsigned char c = static_cast<unsigned char>(utf8[i]);
      if (c < 0x80) { u.push_back(c); ++i; continue; }
      uint32_t cp = ((c & 0x07) << 18) | ((utf8[i + 1] & 0x3F) << 12) | ((utf8[i + 2] & 0x3F) << 6) | (utf8[i + 3] & 0x3F);
      u.push_back(static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10)));
      u.push_back(static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF)));
      i += 4;
    }
    std::string bytes = le ? "\xFF\xFE" : "\xFE\xFF";
    for (char16_t ch : u) {
      char hi = static_cast<char>(ch >> 8), lo = static_cast<char>(ch & 0xFF);
      bytes += le ? std::string{lo, hi} : std::string{hi, lo};
    }
    INFO(le);
    Form f = read_text_buffer(bytes, "csv");
    finish_form(f);
    REQUIRE(f.find("CONN-4"));
    CHECK(f.find("CONN-4")->answer == Answer::no);
    CHECK(f.find("DOC-1")->detail == "Acme \xF0\x9F\x98\x80");
    CHECK(f.warnings.size() == 1);  // only the small-form one
  }
  // Control characters, DEL, C1 controls, line separators and stray bytes: escaped in strings,
  // spaces in comments, U+FFFD for bytes that are no UTF-8, so the model is valid YAML.
  Form f = read_text_buffer("CONN-4,Q?,No\nRMOT-1,Q?,\"No\x01 \x7f x\"\nDOC-1,Maker,\"A\xC2\x85" "B\xE2\x80\xA8" "C\x1b\"\n", "csv");
  finish_form(f);
  for (auto& q : f.questions)
    if (q.id == "RMOT-1") q.detail += "\xff";  // as a reader that let a stray byte through would leave it
  std::string yaml = render_model(f, {}, {});
  CHECK(detail::is_utf8(yaml));
  CHECK(std::all_of(yaml.begin(), yaml.end(), [](char ch) {
    unsigned char c = static_cast<unsigned char>(ch);
    return (c >= 0x20 || c == '\n') && c != 0x7F;
  }));
  CHECK(yaml.find("\xC2\x85") == std::string::npos);
  CHECK(yaml.find("\xE2\x80\xA8") == std::string::npos);
  YAML::Node m = YAML::Load(yaml);
  CHECK(m["mds2"]["answers"]["RMOT-1"]["detail"].as<std::string>() == "No\x01 \x7f x\xEF\xBF\xBD");
  CHECK(m["model"]["manufacturer"].as<std::string>() == "A\xC2\x85" "B\xE2\x80\xA8" "C\x1b");
}

TEST_CASE("port table: one flow per direction, protocol and port; both-way directions give both", "[mds2]") {
  Form f = read_xlsx(MDS2_XLSX);
  auto ports = ports_of("Port,Protocol,Direction,Service,Default State\n"
                        "104,TCP,Inbound,DICOM Storage SCP,Disabled\n"
                        "104,TCP,Inbound,DICOM Query/Retrieve SCP,Enabled\n"
                        "443,tcp,both,HTTPS,Enabled\n"
                        "443,tcp,inbound,HTTPS admin,Enabled\n");
  std::string yaml = render_model(f, ports, {});
  CHECK(flow_ids(yaml) == std::vector<std::string>{"in-tcp-104", "in-tcp-443", "out-tcp-443"});
  YAML::Node dicom = YAML::Load(yaml)["flows"][0];
  CHECK(dicom["description"].as<std::string>() == "DICOM Storage SCP; DICOM Query/Retrieve SCP");
  CHECK(dicom["source"].size() == 3);
  CHECK(dicom["source"][1].as<std::string>() == "ports:3");
  CHECK(dicom["app"].as<std::string>() == "dicom");
  CHECK(dicom["default_enabled"].as<bool>());  // enabled when any of its services is
  // A port serving two applications lists both.
  ports = ports_of("port,protocol,direction,service\n2762,tcp,inbound,DICOM TLS\n2762,tcp,inbound,HTTPS\n");
  YAML::Node two = YAML::Load(render_model(f, ports, {}))["flows"][0];
  REQUIRE(two["app"].IsSequence());
  CHECK(two["app"].size() == 2);
  CHECK_FALSE(two["tls"]);

  for (const char* dir : {"In/Out", "Inbound/Outbound", "Inbound & Outbound", "Incoming/Outgoing", "Outbound/Inbound",
                          "Both", "Bidirectional", "Bi-directional", ""}) {
    INFO(dir);
    auto p = ports_of(std::string("port,protocol,direction,service\n443,tcp,") + dir + ",HTTPS\n");
    REQUIRE(p.size() == 1);
    CHECK(p[0].direction == "both");
    CHECK(flow_ids(render_model(f, p, {})) == std::vector<std::string>{"in-tcp-443", "out-tcp-443"});
  }
  CHECK(ports_of("port,protocol,direction,service\n443,tcp,Incoming,HTTPS\n")[0].direction == "inbound");
  CHECK(ports_of("port,protocol,direction,service\n443,tcp,Outbound only,HTTPS\n")[0].direction == "outbound");
  CHECK_THROWS_WITH(ports_of("port,protocol,direction,service\n443,tcp,sideways,HTTPS\n"),
                    Catch::Contains("direction 'sideways'"));
}

TEST_CASE("port table: spellings of a disabled default state, and an unknown one is an error", "[mds2]") {
  for (const char* off : {"Disabled", "Disabled by default", "Not enabled by default", "Off by default", "Default: off",
                          "Closed", "Inactive", "Off", "No", "false", "Not active", "Enabled only when licensed",
                          "Enabled if configured", "Optional", "Never enabled", "Disabled (enable in service menu)"}) {
    INFO(off);
    auto p = ports_of(std::string("port,protocol,direction,service,default state\n8080,tcp,inbound,Web,") + off + "\n");
    REQUIRE(p.size() == 1);
    CHECK_FALSE(p[0].default_enabled);
  }
  for (const char* on : {"Enabled", "Enabled by default", "On", "Default: on", "Open", "Active", "Yes", "Always on",
                         "Enabled unless disabled by service", "", "N/A", "-"}) {
    INFO(on);
    auto p = ports_of(std::string("port,protocol,direction,service,default state\n8080,tcp,inbound,Web,") + on + "\n");
    REQUIRE(p.size() == 1);
    CHECK(p[0].default_enabled);
  }
  CHECK_THROWS_WITH(ports_of("port,protocol,direction,service,default state\n104,tcp,inbound,DICOM,Enabled\n"
                             "8080,tcp,inbound,Web,Licensed feature\n"),
                    Catch::Contains("ports-shape.csv:3: default state 'Licensed feature' (expected enabled or disabled"));
}

TEST_CASE("port table: a required, standard or configurable default state is enabled", "[mds2]") {
  for (const char* on : {"Required", "Mandatory", "Permanent", "Standard", "Default", "X", "x", "Configurable",
                         "User configurable", "User-configurable", "Enabled (configurable)", "Required for DICOM"}) {
    INFO(on);
    auto p = ports_of(std::string("port,protocol,direction,service,default state\n104,tcp,inbound,DICOM,") + on + "\n");
    REQUIRE(p.size() == 1);
    CHECK(p[0].default_enabled);
  }
  // Another word naming a state decides; a condition or "not" turns it off.
  for (const char* off : {"Default: off", "Standard: disabled", "\"Configurable, off by default\"", "Not required",
                          "Required only when licensed", "Not default", "Not standard"}) {
    INFO(off);
    auto p = ports_of(std::string("port,protocol,direction,service,default state\n104,tcp,inbound,DICOM,") + off + "\n");
    REQUIRE(p.size() == 1);
    CHECK_FALSE(p[0].default_enabled);
  }
}

TEST_CASE("port table: of two port columns the server's port is read", "[mds2]") {
  // Source/destination: the destination is the server's port, the source range is not read.
  for (const char* table : {"Source Port,Destination Port,Protocol,Direction,Service\n1024-65535,104,TCP,Outbound,DICOM\n",
                            "Destination Port,Source Port,Protocol,Direction,Service\n104,any,TCP,Outbound,DICOM\n",
                            "Client Port,Server Port,Protocol,Direction,Service\n*,104,TCP,Outbound,DICOM\n",
                            "Src Port,Dst Port,Protocol,Direction,Service\n5000,104,TCP,Outbound,DICOM\n",
                            "Local Port,Remote Port,Protocol,Direction,Service\n5000,104,TCP,Outbound,DICOM C-STORE to PACS\n",
                            "Remote Port,Local Port,Protocol,Direction,Service\n104,any,TCP,Outbound,DICOM\n"}) {
    INFO(table);
    auto p = ports_of(table);
    REQUIRE(p.size() == 1);
    CHECK(p[0].port == 104);
    CHECK(p[0].direction == "outbound");
  }
  // Local/remote inbound: the device's own (local) port is the server's.
  auto in = ports_of("Local Port,Remote Port,Protocol,Direction,Service\n104,any,TCP,Inbound,DICOM SCP\n");
  REQUIRE(in.size() == 1);
  CHECK(in[0].port == 104);
  // Both ways with different ports: the device serves on its local port and calls the remote one.
  auto both = ports_of("Local Port,Remote Port,Protocol,Direction,Service\n104,11112,TCP,Both,DICOM\n"
                       "2575,,TCP,Both,HL7\n");
  Form f = read_xlsx(MDS2_XLSX);
  CHECK(flow_ids(render_model(f, both, {})) ==
        std::vector<std::string>{"in-tcp-104", "out-tcp-11112", "in-tcp-2575", "out-tcp-2575"});
  CHECK_THROWS_WITH(ports_of("Local Port,Remote Port,Protocol,Direction\n5000,any,TCP,Outbound\n"),
                    Catch::Contains("ports-shape.csv:2: port 'any'"));
  CHECK_THROWS_WITH(ports_of("Source Port,Protocol,Direction\n5000,TCP,Outbound\n"),
                    Catch::Contains("the header names no port column"));
}

TEST_CASE("port table: with a header, a column it does not name is absent", "[mds2]") {
  auto p = ports_of("Port,Protocol,Service\n104,TCP,DICOM\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].direction == "both");
  CHECK(p[0].service == "DICOM");
  CHECK(p[0].default_enabled);
  p = ports_of("Application,Port,Protocol,Direction\nDICOM,104,TCP,Inbound\n");
  REQUIRE(p.size() == 1);
  CHECK(p[0].direction == "inbound");
  CHECK(p[0].service == "DICOM");
  p = ports_of("Port,Direction\n104,Inbound\n");
  CHECK(p[0].protocol == "tcp");
  CHECK(p[0].service.empty());
  CHECK_THROWS_WITH(ports_of("Service,Protocol\nDICOM,TCP\n"), Catch::Contains("ports-shape.csv:1: the header names no port column"));
  // Without a header the columns are positional.
  p = ports_of("104,udp,outbound,NTP,disabled\n");
  CHECK(p[0].protocol == "udp");
  CHECK(p[0].direction == "outbound");
  CHECK(p[0].service == "NTP");
  CHECK_FALSE(p[0].default_enabled);
}

TEST_CASE("notes: only the numbers after 'note' are references", "[mds2]") {
  Form f = read_text_buffer("Question ID,Question,Answer,See note\n"
                            "CONN-7,TLS?,\"Yes, TLS 1.2 only (see Note 3)\",\n"
                            "CONN-4,External?,No,See Note 2 (port 443 blocked)\n"
                            "CONN-5,API?,Yes,See Notes 2 and 4\n"
                            "CONN-6,Internet?,No,\"Note 2, 5\"\n"
                            "CONN-8,Remote?,No,Footnote 1\n"
                            "Note 1,One.\nNote 2,Two.\nNote 3,Three.\nNote 4,Four.\nNote 5,Five.\nNote 443,Port.\n",
                            "csv", "notes.csv");
  finish_form(f);
  CHECK(f.find("CONN-7")->note == "Three.");
  CHECK(f.find("CONN-4")->note == "Two.");
  CHECK(f.find("CONN-5")->note == "Two. Four.");
  CHECK(f.find("CONN-6")->note == "Two. Five.");
  CHECK(f.find("CONN-8")->note.empty());
}

TEST_CASE("notes: the note text copied into answers is bounded", "[mds2]") {
  // 100 notes of 2 KiB, each cited by 100 questions: 20 MiB if every answer held them all.
  std::string text = "Question ID,Question,Answer,See note\n";
  std::string refs = "See Notes 1";
  for (int n = 2; n <= 100; ++n) refs += ", " + std::to_string(n);
  for (int i = 1; i <= 100; ++i) text += "CONN-" + std::to_string(i) + ",Q?,Yes,\"" + refs + "\"\n";
  for (int n = 1; n <= 100; ++n) text += "Note " + std::to_string(n) + "," + std::string(2048, 'a' + n % 26) + "\n";
  Form f = read_text_buffer(text, "csv", "bomb.csv");
  finish_form(f);
  size_t total = 0;
  for (auto& q : f.questions) total += q.note.size();
  CHECK(total <= (4u << 20) + 100 * 100);
  CHECK(f.find("CONN-1")->note.size() > 100 * 2048);  // the first answers still read their notes
  CHECK(f.find("CONN-100")->note_ref == refs);
  CHECK(std::any_of(f.warnings.begin(), f.warnings.end(),
                    [](const std::string& w) { return w.find("MiB of note text") != std::string::npos; }));
  CHECK(render_model(f, {}, {}).size() < (6u << 20));
}

TEST_CASE("CSV and text: rows and lines are capped, and a long note is not copied into answers", "[mds2]") {
  // 100 001 question rows citing a note: refused with a message, not gigabytes of answers.
  std::string csv;
  for (int i = 0; i <= 100000; ++i) csv += "CONN-" + std::to_string(i) + ",Yes,See Note 1\n";
  csv += "Note 1,A short note.\n";
  CHECK_THROWS_WITH(read_text_buffer(csv, "csv", "many.csv"), Catch::Contains("many.csv: more than 100000 rows"));
  std::string text;
  for (int i = 0; i <= 100000; ++i) text += "CONN-" + std::to_string(i) + "   Yes   See Note 1\n";
  CHECK_THROWS_WITH(read_text_buffer(text, "text", "many.txt"), Catch::Contains("many.txt: more than 100000 rows"));
  CHECK_THROWS_WITH(read_text_buffer(std::string(1000001, '\n'), "text", "lines.txt"),
                    Catch::Contains("lines.txt: more than 1000000 lines"));
  // A note of 1 MiB cited by every answer stays in the notes: each answer names it.
  std::string big = "Question ID,Question,Answer,See note\n";
  for (int i = 1; i <= 50; ++i) big += "CONN-" + std::to_string(i) + ",Q?,Yes,See Note 1\n";
  big += "Note 1," + std::string(1u << 20, 'z') + "\nNote 2,Short.\n";
  big += "CONN-99,Q?,Yes,See Note 2\n";
  Form f = read_text_buffer(big, "csv", "bignote.csv");
  finish_form(f);
  for (auto& q : f.questions) CHECK(q.note.size() < (64u << 10));
  CHECK(f.find("CONN-1")->note_ref == "See Note 1");
  CHECK(f.find("CONN-99")->note == "Short.");
  CHECK(f.notes["Note 1"].size() == (1u << 20));
  CHECK(std::count_if(f.warnings.begin(), f.warnings.end(), [](const std::string& w) {
          return w.find("Note 1 is longer than 64 KiB") == 0;
        }) == 1);
}

TEST_CASE("duplicate question ids are removed in linear time", "[mds2]") {
  Form f;
  f.source_file = "ids.csv";
  for (int i = 0; i < 200000; ++i) {
    Question q;
    q.id = q.raw_id = "CONN-" + std::to_string(i % 150000);
    f.questions.push_back(std::move(q));
  }
  finish_form(f);  // quadratic, this took minutes; no clock is read here, the suite runs loaded
  CHECK(f.questions.size() == 150000);
  CHECK(f.warnings.back() == "49990 more duplicate question ids ignored");
}

TEST_CASE("'See Note n' in the answer column is a see-note answer with or without a header", "[mds2]") {
  for (auto [text, hint] : {std::pair<const char*, const char*>{"Question ID,Question,Answer,See note\nCONN-7,TLS?,See Note 2,__\nNote 2,TLS 1.2 is optional.\n", "csv"},
                            {"CONN-7,TLS?,See Note 2,__\nNote 2,TLS 1.2 is optional.\n", "csv"},
                            {"CONN-7    TLS?    See Note 2    __\nNote 2    TLS 1.2 is optional.\n", "text"},
                            {"CONN-7,TLS?,See Note 2,See Note 2\nNote 2,TLS 1.2 is optional.\n", "csv"}}) {
    INFO(text);
    Form f = read_text_buffer(text, hint, "sn");
    finish_form(f);
    REQUIRE(f.find("CONN-7"));
    CHECK(f.find("CONN-7")->answer == Answer::see_note);
    CHECK(f.find("CONN-7")->detail == "See Note 2");
    CHECK(f.find("CONN-7")->note == "TLS 1.2 is optional.");
  }
}

TEST_CASE("XLSX: a question merged over the empty answer cell is no answer", "[mds2]") {
  std::string rows = "<row r=\"1\">" + inline_cell("A1", "Question ID") + inline_cell("B1", "Question") +
                     inline_cell("D1", "See note") + "</row>" +
                     "<row r=\"2\">" + inline_cell("A2", "CONN-3") + inline_cell("B2", "Within?") + inline_cell("C2", "Yes") + "</row>" +
                     "<row r=\"3\">" + inline_cell("A3", "CONN-4") + inline_cell("B3", "No external connections: outside?") + "</row>" +
                     "<row r=\"4\">" + inline_cell("A4", "RMOT-1") + inline_cell("B4", "Remote service?") + "</row>" +
                     "<row r=\"5\">" + inline_cell("A5", "RMOT-2") + inline_cell("B5", "Predictive?") + "</row>";
  std::string path = write_sheet("merged-question.xlsx", rows + "</sheetData><mergeCells><mergeCell ref=\"B3:C3\"/>"
                                 "<mergeCell ref=\"B4:D4\"/><mergeCell ref=\"C2:C5\"/></mergeCells>");
  Form f = read_xlsx(path);
  CHECK(f.find("CONN-4")->answer == Answer::yes);  // the answer cell merged down from CONN-3 still counts
  CHECK(f.find("CONN-4")->question == "No external connections: outside?");
  path = write_sheet("merged-question.xlsx", rows + "</sheetData><mergeCells><mergeCell ref=\"B3:C3\"/>"
                     "<mergeCell ref=\"B4:D4\"/></mergeCells>");
  f = read_xlsx(path);
  CHECK(f.find("CONN-4")->answer == Answer::blank);
  CHECK(f.find("CONN-4")->detail.empty());
  CHECK(f.find("RMOT-1")->answer == Answer::blank);
  CHECK(f.find("RMOT-1")->note_ref.empty());
  std::remove(path.c_str());
}

TEST_CASE("XLSX: when several sheets hold answers, the one read is named", "[mds2]") {
  std::string path = std::string(MDS2_VARIANTS) + "/two-revisions.xlsx";
  auto sheet = [](const std::string& rows) { return std::string("<worksheet ") + kNs + "><sheetData>" + rows + "</sheetData></worksheet>"; };
  write_parts(path, {
      {"xl/workbook.xml", std::string("<workbook ") + kNs + "><sheets><sheet name=\"Rev 2020 (superseded)\" sheetId=\"1\" r:id=\"rId1\"/>"
                          "<sheet name=\"Rev 2023\" sheetId=\"2\" r:id=\"rId2\"/></sheets></workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/><Relationship Id=\"rId2\" Target=\"worksheets/sheet2.xml\"/>"
       "</Relationships>"},
      {"xl/worksheets/sheet1.xml", sheet(keyed_rows_xml(5, inline_cell("C@", "Yes")))},
      {"xl/worksheets/sheet2.xml", sheet(keyed_rows_xml(5, inline_cell("C@", "No")))},
  });
  Form f = read_xlsx(path);
  CHECK(f.sheet == "Rev 2020 (superseded)");
  CHECK(std::any_of(f.warnings.begin(), f.warnings.end(), [](const std::string& w) {
    return w.find("sheet 'Rev 2020 (superseded)' was read; sheet 'Rev 2023' also holds answers") != std::string::npos;
  }));
  std::string yaml = render_model(f, {}, {});
  CHECK(yaml.find("sheet \"Rev 2020 (superseded)\"") != std::string::npos);
  CHECK(YAML::Load(yaml)["model"]["documents"][0]["sheet"].as<std::string>() == "Rev 2020 (superseded)");
  // One filled sheet beside a blank template: no warning.
  Form nema = read_xlsx(MDS2_XLSX);
  CHECK(nema.sheet == "mds2-form");
  CHECK(std::none_of(nema.warnings.begin(), nema.warnings.end(),
                     [](const std::string& w) { return w.find("was read") != std::string::npos; }));
  std::remove(path.c_str());
}

TEST_CASE("port table: lists and ranges of ports are read; a reversed or out-of-range one is refused", "[mds2]") {
  Form f = read_xlsx(MDS2_XLSX);
  auto ports = ports_of("Port,Protocol,Direction,Service\n"
                        "\"104, 11112\",TCP,Inbound,DICOM\n"
                        "1024-65535,TCP,Outbound,Dynamic\n"
                        "49152\xE2\x80\x93" "65535,UDP,Inbound,RTP\n"
                        "5000 to 5010,TCP,Inbound,Vendor service\n");
  REQUIRE(ports.size() == 5);
  CHECK(ports[0].port == 104);
  CHECK(ports[0].port_last == 104);
  CHECK(ports[1].port == 11112);
  CHECK(ports[2].port == 1024);
  CHECK(ports[2].port_last == 65535);
  CHECK(ports[3].port == 49152);
  CHECK(ports[3].port_last == 65535);
  CHECK(ports[4].port == 5000);
  CHECK(ports[4].port_last == 5010);
  std::string yaml = render_model(f, ports, {});
  CHECK(flow_ids(yaml) == std::vector<std::string>{"in-tcp-104", "in-tcp-11112", "out-tcp-1024-65535",
                                                   "in-udp-49152-65535", "in-tcp-5000-5010"});
  CHECK(YAML::Load(yaml)["flows"][2]["dst_port"][0].as<std::string>() == "1024-65535");
  // Nonsense is refused with the file and line.
  auto bad = [](const char* cell) { return ports_of(std::string("port,protocol\n104,tcp\n") + cell + ",tcp\n"); };
  CHECK_THROWS_WITH(bad("65535-49152"),
                    Catch::Contains("ports-shape.csv:3: port '65535-49152' is a reversed range (expected low-high, e.g. 49152-65535)"));
  CHECK_THROWS_WITH(bad("1024-70000"), Catch::Contains("ports-shape.csv:3: port '1024-70000' is not a port range: 70000 is not a port 1-65535"));
  CHECK_THROWS_WITH(bad("70000"), Catch::Contains("ports-shape.csv:3: port '70000' is not a number 1-65535"));
  CHECK_THROWS_WITH(bad("0-10"), Catch::Contains("ports-shape.csv:3: port '0-10' is not a port range"));
  CHECK_THROWS_WITH(bad("10-"), Catch::Contains("ports-shape.csv:3: port '10-' is not a port range"));
  CHECK_THROWS_WITH(bad("1-2-3"), Catch::Contains("ports-shape.csv:3: port '1-2-3' is not a port range"));
  std::string many = "\"";
  for (int i = 1; i <= 65; ++i) many += std::to_string(i) + ",";
  many += "\"";
  CHECK_THROWS_WITH(bad(many.c_str()), Catch::Contains("lists more than 64 ports"));
}

TEST_CASE("text layouts: one space apart, and questions wrapped with the answer top or bottom, give the form's answers", "[mds2]") {
  Form x = read_xlsx(MDS2_XLSX);
  std::vector<std::string> names = {"flat.txt", "flat-wrapped.txt"};
  for (const char* align : {"top", "bottom"})
    for (int width : {40, 48, 56, 64}) names.push_back(std::string("layout-") + align + "-" + std::to_string(width) + ".txt");
  for (auto& name : names) {
    std::string path = std::string(MDS2_VARIANTS) + "/" + name;
    INFO(path);
    Form f = read_any(path);
    CHECK(f.questions.size() == 240);
    CHECK(f.notes == x.notes);
    for (auto& q : x.questions) {
      const Question* o = f.find(q.id);
      INFO(q.id);
      REQUIRE(o);
      CHECK(answer_name(o->answer) == std::string(answer_name(q.answer)));
      CHECK(o->detail == q.detail);
      CHECK(o->question == q.question);
      CHECK(o->note == q.note);
    }
  }
}

TEST_CASE("port table: Windows-1252 and UTF-16 tables are decoded, errors name the row's own line", "[mds2]") {
  // Excel's CSV on Windows writes the en dash as byte 0x96.
  auto cp1252 = ports_of("port,protocol,direction\n49152\x96" "65535,udp,inbound\n");
  REQUIRE(cp1252.size() == 1);
  CHECK(cp1252[0].port == 49152);
  CHECK(cp1252[0].port_last == 65535);
  // Excel's "Unicode text": UTF-16LE with a byte-order mark, tab-separated.
  std::string u16 = "\xFF\xFE";
  for (char c : std::string("Port\tProtocol\tService\n104\tTCP\tDICOM\n")) { u16.push_back(c); u16.push_back('\0'); }
  auto utf16 = ports_of(u16);
  REQUIRE(utf16.size() == 1);
  CHECK(utf16[0].port == 104);
  CHECK(utf16[0].service == "DICOM");
  // A quoted cell over two lines: the bad row after it is on line 4, not the third record.
  CHECK_THROWS_WITH(ports_of("port,protocol,service\n104,tcp,\"DICOM\nstorage\"\n70000,tcp,x\n"),
                    Catch::Contains("ports-shape.csv:4: port '70000'"));
  // A cell quoted in a message: control characters escaped, a long cell cut.
  CHECK_THROWS_WITH(ports_of("port,protocol\n104,tcp\x1b]0;x\x07\n"), Catch::Contains("protocol 'tcp\\x1B]0;x\\x07'"));
  std::string msg;
  try {
    ports_of("port,protocol\n" + std::string(100000, '9') + ",tcp\n");
  } catch (const ImportError& e) {
    msg = e.what();
  }
  CHECK(msg.find("ports-shape.csv:2: port '") != std::string::npos);
  CHECK(msg.size() < 300);
}

TEST_CASE("text and PDF layout: a question that goes on past its '?', ids inside wrapped text, top-aligned answers", "[mds2]") {
  std::string layout =
      // The question goes on after its '?' over lines with no answer; the answer comes below.
      "PLOK-1      Is the device software only?\n"
      "            If yes, answer N/A to remaining\n"
      "            questions in this section.                  No        __\n"
      // Lines after a '?' that no answer follows are not the question's.
      "CONN-8      Does the device provide operator control?\n"
      "            Remote service refers to all kinds of device maintenance.\n"
      // "RAID-5)?" starting a line is the question's end, not a row of its own.
      "IGAU-2      Does the device provide error/failure protection and\n"
      "            recovery mechanisms for stored health data (e.g.,\n"
      "            RAID-5)?                                    No        __\n"
      // The answer on the question's first line (top alignment): the rest of the question below.
      "MPII-1      Can this device display, transmit,          Yes       __\n"
      "            store, or modify personally identifiable\n"
      "            information (e.g.\n"
      "            ePHI)?\n"
      "CSUP-4      Does the device contain Anti-Malware        No        __\n"
      "            Software? If yes, complete 4.1-4.4.\n"
      "CSUP-5      Does the device allow the owner to          Yes       __\n"
      "            install malware protection?\n"
      "            If yes, complete 5.1-5.3.\n"
      // A question that ended on the key line takes nothing more.
      "RMOT-1      Does the device permit remote service?      No        __\n"
      "            A line of the next row's question.\n"
      // A row of only an id and its answer has no question to go on.
      "RMOT-2      No        See Note 1\n"
      "            A line of the next row's question.\n";
  Form f = read_text_buffer(layout, "text");
  finish_form(f);
  REQUIRE(f.find("PLOK-1"));
  CHECK(f.find("PLOK-1")->answer == Answer::no);
  CHECK(f.find("PLOK-1")->question == "Is the device software only? If yes, answer N/A to remaining questions in this section.");
  CHECK(f.find("CONN-8")->answer == Answer::blank);
  CHECK(f.find("CONN-8")->question == "Does the device provide operator control?");
  CHECK_FALSE(f.find("RAID-5"));
  REQUIRE(f.find("IGAU-2"));
  CHECK(f.find("IGAU-2")->answer == Answer::no);
  CHECK(f.find("IGAU-2")->question ==
        "Does the device provide error/failure protection and recovery mechanisms for stored health data (e.g., RAID-5)?");
  CHECK(f.find("MPII-1")->answer == Answer::yes);
  CHECK(f.find("MPII-1")->question ==
        "Can this device display, transmit, store, or modify personally identifiable information (e.g. ePHI)?");
  CHECK(f.find("CSUP-4")->question == "Does the device contain Anti-Malware Software? If yes, complete 4.1-4.4.");
  CHECK(f.find("CSUP-5")->question == "Does the device allow the owner to install malware protection? If yes, complete 5.1-5.3.");
  CHECK(f.find("RMOT-1")->answer == Answer::no);
  CHECK(f.find("RMOT-1")->question == "Does the device permit remote service?");
  CHECK(f.find("RMOT-2")->answer == Answer::no);
  CHECK(f.find("RMOT-2")->detail == "No");
}

TEST_CASE("text pasted one space apart: the answer, the note column and the notes are read", "[mds2]") {
  std::string flat;
  for (int i = 1; i <= 10; ++i) flat += "AUDT-2." + std::to_string(i) + " Is event " + std::to_string(i) + " recorded? Yes __\n";
  flat +=
      "DOC-1 Manufacturer Name Acme Medical __\n"
      "DOC-6 Intended use of device in network-connected environment: Upload readings to records __\n"
      "CONN-4 Can the device communicate with other systems external to the customer environment? No See Note 1\n"
      "CSUP-1 Does the device contain software? If no, answer N/A to questions in this section. N/A __\n"
      "SAHD-3 Does the device employ any mechanisms for software integrity checking No __\n"
      "SAHD-16 Have additional hardening methods been used? See Notes See Note 2\n"
      "Note 1 The device has no network interface.\n"
      "Note 2 www.example.com/hardening\n";
  Form f = read_text_buffer(flat, "text");
  finish_form(f);
  CHECK(f.find("AUDT-2.7")->answer == Answer::yes);
  CHECK(f.find("AUDT-2.7")->detail == "Yes");
  CHECK(f.find("DOC-1")->question == "Manufacturer Name");
  CHECK(f.find("DOC-1")->detail == "Acme Medical");
  CHECK(f.find("DOC-6")->question == "Intended use of device in network-connected environment:");
  CHECK(f.find("DOC-6")->detail == "Upload readings to records");
  CHECK(f.find("CONN-4")->answer == Answer::no);
  CHECK(f.find("CONN-4")->detail == "No");
  CHECK(f.find("CONN-4")->note_ref == "See Note 1");
  CHECK(f.find("CONN-4")->note == "The device has no network interface.");
  CHECK(f.find("CSUP-1")->answer == Answer::na);
  CHECK(f.find("CSUP-1")->question == "Does the device contain software? If no, answer N/A to questions in this section.");
  CHECK(f.find("SAHD-3")->answer == Answer::no);
  CHECK(f.find("SAHD-3")->question == "Does the device employ any mechanisms for software integrity checking");
  CHECK(f.find("SAHD-16")->answer == Answer::see_note);
  CHECK(f.find("SAHD-16")->note == "www.example.com/hardening");
}

TEST_CASE("XLSX: XML that is not well-formed is located; text with millions of cells on a line is refused", "[mds2]") {
  // A sheet whose row's end tag is broken at the end of its third line: the error is at line 4.
  std::string path = std::string(MDS2_VARIANTS) + "/bad-xml.xlsx";
  {
    int err = 0;
    zip_t* z = nullptr;
    std::string cut = "<?xml version=\"1.0\"?>\n<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\n"
                      "<sheetData><row r=\"1\"><c r=\"A1\" t=\"inlineStr\"><is><t>CONN-4</t></is></c></row\n</sheetData></worksheet>";
    std::ifstream in(MDS2_XLSX, std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(path, std::ios::binary) << data;
    z = zip_open(path.c_str(), 0, &err);
    REQUIRE(z);
    zip_source_t* src = zip_source_buffer(z, cut.data(), cut.size(), 0);
    REQUIRE(zip_file_add(z, "xl/worksheets/sheet1.xml", src, ZIP_FL_OVERWRITE) >= 0);
    REQUIRE(zip_close(z) == 0);
  }
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("bad-xml.xlsx: sheet 'mds2-form' (xl/worksheets/sheet1.xml) is not "
                                                     "well-formed XML (line 4, column 1: "));
  std::remove(path.c_str());
  // 60 MiB of "  a" on one line took gigabytes of cells.
  std::string wide = "CONN-4";
  for (int i = 0; i < 300; ++i) wide += "  a";
  CHECK_THROWS_WITH(read_text_buffer("CONN-3  Q?  Yes\n" + wide + "\n", "text", "wide.txt"),
                    Catch::Contains("wide.txt:2: more than 256 cells in one line"));
  std::string csv = "CONN-3,Q?,Yes\n\nCONN-4";
  for (int i = 0; i < 300; ++i) csv += ",a";
  CHECK_THROWS_WITH(read_text_buffer(csv + "\n", "csv", "wide.csv"), Catch::Contains("wide.csv:3: more than 256 cells in one row"));
  std::string md = "| CONN-3 | Q? | Yes |\n" + std::string(300, '|') + "\n";
  CHECK_THROWS_WITH(read_text_buffer(md, "markdown", "wide.md"), Catch::Contains("wide.md:2: more than 256 cells"));
}

TEST_CASE("XLSX: an XML error's line and column are the part's as written, character references aside", "[mds2]") {
  // Line 3 holds line feeds and a CR LF as character references; the row's end tag broken at the
  // end of line 4 is an error at line 5, column 1. The parse decodes the text before the error in
  // place: counted there, each &#10; was a line more.
  std::string path = std::string(MDS2_VARIANTS) + "/charref-line.xlsx";
  std::string sheet = std::string("<?xml version=\"1.0\"?>\n<worksheet ") + kNs + ">\n" +
                      "<sheetData><row r=\"1\">" + inline_cell("A1", "a&#10;b&#10;c&#13;&#10;d") + "\n" +
                      inline_cell("B1", "CONN-4") + "</row\n</sheetData></worksheet>";
  auto workbook = [&](const std::string& sheet_xml, const std::string& sst) {
    write_parts(path, {
        {"xl/workbook.xml", std::string("<workbook ") + kNs +
                                "><sheets><sheet name=\"Answers\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"},
        {"xl/_rels/workbook.xml.rels",
         "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
         "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/></Relationships>"},
        {"xl/worksheets/sheet1.xml", sheet_xml},
        {"xl/sharedStrings.xml", sst},
    });
  };
  workbook(sheet, std::string("<sst ") + kNs + "/>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("sheet 'Answers' (xl/worksheets/sheet1.xml) is not well-formed XML "
                                                     "(line 5, column 1: Error parsing end element tag)"));
  // The same in the shared strings, after an attribute value holding &#10; (normalised in place too).
  std::string sst = std::string("<sst ") + kNs + ">\n<si><t xml:space=\"a&#10;&#10;b\">x&#10;&#10;&#10;y</t></si>\n<si><t>z</t></s>\n</sst>";
  workbook(std::string("<worksheet ") + kNs + "><sheetData/></worksheet>", sst);
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("xl/sharedStrings.xml is not well-formed XML (line 3, column 15: "));
  std::remove(path.c_str());
}

TEST_CASE("XLSX: an empty zip, a missing sheet or a file that is no zip says what is missing", "[mds2]") {
  // An empty zip is only its end record: read as text before, "no question ids found".
  std::string empty("PK\x05\x06", 4);
  empty.append(18, '\0');
  std::string path = std::string(MDS2_VARIANTS) + "/empty.xlsx";
  std::ofstream(path, std::ios::binary) << empty;
  CHECK_THROWS_WITH(read_any(path), Catch::Contains("empty.xlsx: an empty zip file, not an Excel workbook (it holds no "
                                                    "xl/workbook.xml and no sheet)"));
  CHECK_THROWS_WITH(read_xlsx_buffer(empty, "mem.xlsx"), Catch::StartsWith("mem.xlsx: an empty zip file"));
  // A workbook listing a sheet whose part the zip does not hold.
  write_parts(path, {
      {"xl/workbook.xml", std::string("<workbook ") + kNs +
                              "><sheets><sheet name=\"Answers\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/></Relationships>"},
  });
  CHECK_THROWS_WITH(read_any(path), Catch::Contains("empty.xlsx: sheet 'Answers' is missing: the workbook lists it, but "
                                                    "the zip holds no xl/worksheets/sheet1.xml"));
  // A zip cut short: libzip's reason is given.
  std::ofstream(path, std::ios::binary) << std::string("PK\x03\x04", 4) + std::string(40, 'x');
  CHECK_THROWS_WITH(read_any(path), Catch::Contains("empty.xlsx: not a readable XLSX (zip) file (Not a zip archive)"));
  // An empty file, and an .xlsx that is text with no form in it.
  std::ofstream(path, std::ios::binary | std::ios::trunc).flush();
  CHECK_THROWS_WITH(read_any(path), Catch::Contains("empty.xlsx: an empty file"));
  std::ofstream(path, std::ios::binary) << "hello\n";
  CHECK_THROWS_WITH(read_any(path), Catch::Contains("empty.xlsx: named .xlsx but not a zip file"));
  // A CSV saved under an .xlsx name is still read.
  std::ofstream(path, std::ios::binary) << "CONN-1,Q?,Yes\nCONN-2,Q?,No\n";
  CHECK(read_any(path).find("CONN-2")->answer == Answer::no);
  std::remove(path.c_str());
}

TEST_CASE("a Windows-1252 port table or form is read with a warning naming the first byte that is no UTF-8", "[mds2]") {
  // Excel's CSV on Windows: the en dash of a range is byte 0x96, on the table's third line.
  std::string path = std::string(MDS2_VARIANTS) + "/ports-1252.csv";
  std::ofstream(path, std::ios::binary) << "port,protocol,direction,service\n104,tcp,inbound,DICOM\n"
                                           "1024\x96" "65535,tcp,outbound,ephemeral\n";
  std::vector<std::string> warnings;
  auto p = read_ports_csv(path, &warnings);
  REQUIRE(p.size() == 2);
  CHECK(p[1].port_last == 65535);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("not UTF-8 text: read as Windows-1252") &&
                              Catch::Contains("line 3, byte 0x96 (\"\xE2\x80\x93\" in \"1024\xE2\x80\x93" "65535,tcp,outbound,"));
  // A UTF-8 table, and UTF-16 with its byte-order mark, need no warning.
  std::ofstream(path, std::ios::binary) << "port,protocol\n1024\xE2\x80\x93" "65535,tcp\n";
  warnings.clear();
  CHECK(read_ports_csv(path, &warnings).size() == 1);
  CHECK(warnings.empty());
  std::remove(path.c_str());
  // A form: the warning says where, with the text around the byte cut on a long line.
  Form f = read_text_buffer("Question ID,Question,Answer\nCONN-3,Q?,Yes\nCONN-4,Q?,\"No " + std::string(100, 'a') +
                                " \xe9t\xe9 " + std::string(100, 'b') + "\"\n",
                            "csv", "form-1252.csv");
  REQUIRE(!f.warnings.empty());
  CHECK_THAT(f.warnings[0], Catch::Contains("line 3, byte 0xE9 (\"\xC3\xA9\" in \"...aaaa") &&
                                Catch::Contains("aaa \xC3\xA9t\xC3\xA9 bbb") && Catch::Contains("bbb...\")"));
  CHECK(f.warnings[0].size() < 400);
}

namespace {
// Runs run(limit) in a child process and returns what it returns; once it calls limit() its address
// space may grow by `headroom` bytes only.
template <class Run>
std::string message_with_headroom(size_t headroom, Run&& run) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    std::string msg = run([&] {
      unsigned long pages = 0;
      if (FILE* f = std::fopen("/proc/self/statm", "r")) { (void)!std::fscanf(f, "%lu", &pages); std::fclose(f); }
      rlim_t limit = pages * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) + headroom;
      rlimit r{limit, limit};
      setrlimit(RLIMIT_AS, &r);
    });
    (void)!write(fds[1], msg.data(), msg.size());
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return msg;
}
}  // namespace

TEST_CASE("a cell of more than 1 MiB is refused where it is, before it is copied", "[mds2]") {
  const std::string over(detail::kMaxCellText + 1, 'x');
  // CSV: the line the cell starts on, a quoted cell over several lines included.
  CHECK_THROWS_WITH(read_text_buffer("Question ID,Question,Answer\nCONN-3,Q?,Yes\nCONN-4,Q?," + over + "\n", "csv", "c.csv"),
                    Catch::Contains("c.csv:3: a cell of more than 1 MiB of text; not an MDS2 form"));
  CHECK_THROWS_WITH(read_text_buffer("CONN-3,Q?,Yes\nCONN-4,Q?,\"a\nb\n" + over + "\"\nCONN-5,Q?,No\n", "csv", "q.csv"),
                    Catch::Contains("q.csv:2: a cell of more than 1 MiB"));
  CHECK_THROWS_WITH(read_text_buffer("CONN-3\tQ?\tYes\nCONN-4\tQ?\t" + over, "tsv", "t.tsv"),
                    Catch::Contains("t.tsv:2: a cell of more than 1 MiB"));
  // Text: a line, and a note or question row grown over its wrapped lines.
  CHECK_THROWS_WITH(read_text_buffer("CONN-3  Q?  Yes\nCONN-4  Q?  " + over + "\n", "text", "l.txt"),
                    Catch::Contains("l.txt:2: a line of more than 1 MiB"));
  std::string wrapped = "CONN-3  Q?  Yes\nNote 1:  starts here\n";
  for (int i = 0; i < 1100; ++i) wrapped += "         " + std::string(1000, 'n') + "\n";
  CHECK_THROWS_WITH(read_text_buffer(wrapped, "text", "n.txt"),
                    Catch::Contains("n.txt:2: a note (over its wrapped lines) of more than 1 MiB"));
  std::string question = "CONN-3  Q?  Yes\nCONN-4  Does the device\n";
  for (int i = 0; i < 1100; ++i) question += "        " + std::string(1000, 'q') + "\n";
  CHECK_THROWS_WITH(read_text_buffer(question, "text", "r.txt"),
                    Catch::Contains("r.txt:2: a row (over its wrapped lines) of more than 1 MiB"));
  std::string md = "| CONN-3 | Q? | Yes |\n**Note 1**: starts here\n";
  for (int i = 0; i < 1100; ++i) md += std::string(1000, 'm') + "\n";
  CHECK_THROWS_WITH(read_text_buffer(md, "markdown", "m.md"), Catch::Contains("m.md:2: a note (over its wrapped lines)"));
  // A cell of exactly 1 MiB is read.
  Form ok = read_text_buffer("CONN-3,Q?,Yes\nCONN-4,Q?," + over.substr(1) + "\n", "csv", "ok.csv");
  CHECK(ok.find("CONN-4")->detail.size() == detail::kMaxCellText);
  // XLSX: the cell is named; a shared string by its index.
  std::string path = write_sheet("bigcell.xlsx", keyed_rows_xml(2, inline_cell("C@", "Yes")) + "<row r=\"3\">" +
                                                     inline_cell("A3", "CONN-3") + "<c r=\"C3\" t=\"str\"><v>" + over +
                                                     "</v></c></row></sheetData>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("bigcell.xlsx: sheet 'Answers' cell C3 holds more than 1 MiB of text"));
  path = write_sheet("bigcell.xlsx", keyed_rows_xml(2, inline_cell("C@", "Yes")) + "<row r=\"3\">" + inline_cell("A3", "CONN-3") +
                                         "<c r=\"C3\" t=\"inlineStr\"><is><r><t>a</t></r><r><t>" + over.substr(1) + "</t></r></is></c>" +
                                         "</row></sheetData>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("bigcell.xlsx: sheet 'Answers' cell C3 holds more than 1 MiB of text"));
  path = write_sheet("bigcell.xlsx", keyed_rows_xml(2, "<c r=\"C@\" t=\"s\"><v>1</v></c>") + "</sheetData>",
                     "<si><t>Yes</t></si><si><t>" + over + "</t></si>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("bigcell.xlsx: xl/sharedStrings.xml: shared string 1 holds more than 1 MiB"));
  std::remove(path.c_str());
}

TEST_CASE("a 60 MiB cell is refused in bounded memory", "[mds2]") {
#if defined(__SANITIZE_ADDRESS__)
  SUCCEED("not run under AddressSanitizer (its shadow memory defeats an address-space limit)");
  return;
#endif
  // The form is made in the child; reading it may then take 96 MiB more (it took ~400 MiB).
  for (std::string hint : {"csv", "text"}) {
    INFO(hint);
    std::string msg = message_with_headroom(96u << 20, [&](auto limit) {
      std::string form = "Question ID,Question,Answer\nCONN-3,Q?,Yes\nCONN-4,Q?,";
      if (hint == "text") form = "CONN-3  Q?  Yes\nCONN-4  Q?  ";
      form.append(60u << 20, 'x');
      form += "\n";
      limit();
      try {
        read_text_buffer(form, hint, "big." + hint);
        return std::string("read");
      } catch (const std::exception& e) {
        return std::string(e.what());
      }
    });
    CHECK_THAT(msg, Catch::Contains(":" + std::string(hint == "csv" ? "3" : "2") + ": a ") &&
                        Catch::Contains(" of more than 1 MiB of text"));
  }
}

TEST_CASE("a port table of no row is warned about", "[mds2]") {
  std::string path = std::string(MDS2_VARIANTS) + "/ports-empty.csv";
  for (std::string table : {"", "Port,Protocol,Direction\n", "# ports\n\n"}) {
    INFO(table);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << table;
    std::vector<std::string> warnings;
    CHECK(read_ports_csv(path, &warnings).empty());
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Catch::Contains("the port table lists no port"));
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "104,tcp\n";
  std::vector<std::string> warnings;
  CHECK(read_ports_csv(path, &warnings).size() == 1);
  CHECK(warnings.empty());
  std::remove(path.c_str());
}

TEST_CASE("XLSX: a relationship target with . and .. segments names its part", "[mds2]") {
  std::string path = std::string(MDS2_VARIANTS) + "/dotdot.xlsx";
  write_parts(path, {
      {"_rels/.rels", "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
                      "<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/"
                      "relationships/officeDocument\" Target=\"./xl/workbook.xml\"/></Relationships>"},
      {"xl/workbook.xml", std::string("<workbook ") + kNs +
                              "><sheets><sheet name=\"Answers\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"../xl/./worksheets/../worksheets/sheet1.xml\"/></Relationships>"},
      {"xl/worksheets/sheet1.xml", std::string("<worksheet ") + kNs + "><sheetData>" +
                                       keyed_rows_xml(3, inline_cell("C@", "Yes")) + "</sheetData></worksheet>"},
  });
  Form f = read_xlsx(path);
  CHECK(f.sheet == "Answers");
  CHECK(f.find("CONN-3")->answer == Answer::yes);
  std::remove(path.c_str());
}

TEST_CASE("a form from a pipe is read once, whole", "[mds2]") {
  // Opened once for its magic bytes and again by the reader, a pipe gave the reader the form
  // without what the first look had buffered: the DOC rows and the first answers were lost.
  std::string csv = std::string(MDS2_VARIANTS) + "/form.csv";
  std::ifstream in(csv, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(data.size() > 10000);
  std::string fifo = std::string(MDS2_VARIANTS) + "/form-pipe.csv";
  std::remove(fifo.c_str());
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  signal(SIGPIPE, SIG_IGN);
  std::thread writer([&] {
    if (FILE* w = std::fopen(fifo.c_str(), "wb")) {
      std::fwrite(data.data(), 1, data.size(), w);
      std::fclose(w);
    }
  });
  CHECK(is_stream(fifo));
  Form piped;
  try {
    piped = read_any(fifo);
  } catch (...) {
    // Unblock the writer when the read failed before opening the pipe.
    if (FILE* r = std::fopen(fifo.c_str(), "rb")) std::fclose(r);
    writer.join();
    std::remove(fifo.c_str());
    throw;
  }
  writer.join();
  std::remove(fifo.c_str());
  Form file = read_any(csv);
  REQUIRE(piped.questions.size() == file.questions.size());
  CHECK(piped.find("DOC-1")->detail == file.find("DOC-1")->detail);
  CHECK(piped.find("MPII-1")->answer == file.find("MPII-1")->answer);
  CHECK(piped.source_format == "csv");  // its extension names it, as a file's does
  CHECK_FALSE(is_stream(csv));
}

TEST_CASE("XLSX: a sheet name's control characters never reach a message or the model", "[mds2]") {
  // ESC ] 0 ; ... BEL sets a terminal's title, ESC [ 2 J clears it: written as character references.
  std::string path = std::string(MDS2_VARIANTS) + "/escname.xlsx";
  write_parts(path, {
      {"xl/workbook.xml", std::string("<workbook ") + kNs + "><sheets><sheet name=\"A&#27;]0;X&#7;&#27;[2J&#x85;\" "
                                                            "sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"worksheets/sheet1.xml\"/></Relationships>"},
      {"xl/worksheets/sheet1.xml", std::string("<worksheet ") + kNs + "><sheetData>" +
                                       keyed_rows_xml(3, inline_cell("C@", "Yes")) + "</sheetData></worksheet>"},
  });
  Form f = read_xlsx(path);
  CHECK(f.sheet == "A?]0;X??[2J?");
  // Nor a part name from the relationships, or a cell's shared-string index.
  write_parts(path, {
      {"xl/workbook.xml", std::string("<workbook ") + kNs + "><sheets><sheet name=\"S\" sheetId=\"1\" r:id=\"rId1\"/>"
                                                            "</sheets></workbook>"},
      {"xl/_rels/workbook.xml.rels",
       "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
       "<Relationship Id=\"rId1\" Target=\"worksheets/&#27;[2J.xml\"/></Relationships>"},
  });
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("the zip holds no xl/worksheets/?[2J.xml"));
  path = write_sheet("escname.xlsx", keyed_rows_xml(2, "<c r=\"C@\" t=\"s\"><v>&#27;[2J</v></c>") + "</sheetData>");
  CHECK_THROWS_WITH(read_xlsx(path), Catch::Contains("refers to shared string '?[2J'"));
  std::remove(path.c_str());
}

TEST_CASE("UTF-16 without a byte-order mark is decoded, with a warning", "[mds2]") {
  std::string utf8 = "Question ID,Question,Answer\nDOC-1,Manufacturer Name,Acme \xC3\xA9\nCONN-4,External?,No\n";
  for (bool le : {true, false}) {
    INFO(le);
    std::string bytes;
    for (size_t i = 0; i < utf8.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(utf8[i]);
      uint16_t u = c;
      if (c == 0xC3) u = 0xC0 | (static_cast<unsigned char>(utf8[++i]) & 0x3F);  // the one two-byte character
      char hi = static_cast<char>(u >> 8), lo = static_cast<char>(u & 0xFF);
      bytes += le ? std::string{lo, hi} : std::string{hi, lo};
    }
    Form f = read_text_buffer(bytes, "csv", "u16.csv");
    REQUIRE(f.find("CONN-4"));
    CHECK(f.find("CONN-4")->answer == Answer::no);
    CHECK(f.find("DOC-1")->detail == "Acme \xC3\xA9");
    REQUIRE(!f.warnings.empty());
    CHECK_THAT(f.warnings[0], Catch::Contains(le ? "utf-16le" : "utf-16be") && Catch::Contains("without a byte-order mark"));
  }
  // ASCII text with a few NUL bytes is no UTF-16.
  std::string nuls = "CONN-3,Q?,Yes\nCONN-4,Q?,No\n";
  nuls[5] = '\0';
  Form f = read_text_buffer(nuls, "csv", "n.csv");
  CHECK(f.find("CONN-4"));
}

TEST_CASE("UTF-32 with a byte-order mark is decoded, not taken for UTF-16", "[mds2]") {
  std::string utf8 = "Question ID,Question,Answer\nDOC-1,Manufacturer Name,Acme \xF0\x9F\x98\x80\nCONN-4,External?,No\n";
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < utf8.size();) {
    unsigned char c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) { cps.push_back(c); ++i; continue; }
    cps.push_back(((c & 0x07) << 18) | ((utf8[i + 1] & 0x3F) << 12) | ((utf8[i + 2] & 0x3F) << 6) | (utf8[i + 3] & 0x3F));
    i += 4;
  }
  for (bool le : {true, false}) {
    INFO(le);
    std::string bytes;
    auto put = [&](uint32_t cp) {
      for (int k = 0; k < 4; ++k) bytes.push_back(static_cast<char>(cp >> (8 * (le ? k : 3 - k))));
    };
    put(0xFEFF);  // the byte-order mark
    for (uint32_t cp : cps) put(cp);
    Form f = read_text_buffer(bytes, "csv", "u32.csv");
    REQUIRE(f.find("CONN-4"));
    CHECK(f.find("CONN-4")->answer == Answer::no);
    CHECK(f.find("DOC-1")->detail == "Acme \xF0\x9F\x98\x80");
  }
}
