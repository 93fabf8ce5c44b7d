// MDS2 from the NEMA XLSX workbook: a zip of SpreadsheetML parts, read with libzip and pugixml.
#include <zip.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <pugixml.hpp>
#include <unordered_set>
#include <vector>

#include "policies/mds2/mds2_form.h"
#include "policies/mds2/rows.h"

namespace medmon::mds2 {
namespace {

constexpr zip_uint64_t kMaxPart = 64u << 20;  // no sheet of a real form comes close
// All parts read, together: a few KiB of deflate inflate to a 64 MiB part, and a workbook may hold
// hundreds of parts (the NEMA workbook's parts total 170 KiB).
constexpr size_t kMaxPartsTotal = 128u << 20;
// Markup of one part: its '<' and '=' characters. pugixml's DOM takes ~64 bytes a node and ~40 an
// attribute, so 60 MiB of empty elements (60 KiB compressed) became a 1 GiB DOM. Every node and
// attribute takes one of these characters, so counting them first bounds the DOM (~128 MiB).
// The NEMA form's sheet has 16 000.
constexpr size_t kMaxMarkup = 2000000;
constexpr size_t kMaxSheets = 256;  // a form has one or two; each is parsed and scored
constexpr int kMaxCols = 16;                  // the form uses A-G
constexpr int kMaxRows = 100000;
// pugixml drops PCDATA of only whitespace by default: a rich-text run of one space (<t> </t>, the
// space between "No" and "external connections") must stay.
constexpr unsigned kParse = pugi::parse_default | pugi::parse_ws_pcdata_single;
constexpr size_t kMaxMergedCells = 1000000;  // cells of a sheet filled from merged ranges
// Text caps: a form holds well under 1 MiB of text. The shared strings and the other strings of the
// sheet being read (inline, numbers) are stored once; cells refer to them, and a sheet's cells
// together (a shared string counted at each cell that uses it, as rows are handed on as text) may
// hold kMaxSheetText.
constexpr size_t kMaxText = 64u << 20;
constexpr size_t kMaxSheetText = 64u << 20;

struct Zip {
  zip_t* z = nullptr;
  std::string path;   // names the file in messages
  size_t read = 0;    // bytes of all parts read so far
  ~Zip() { if (z) zip_discard(z); }
};

bool read_part(Zip& zip, const std::string& name, std::string& out, bool counted = true) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat(zip.z, name.c_str(), ZIP_FL_ENC_GUESS, &st) != 0) return false;
  if (!(st.valid & ZIP_STAT_SIZE)) return false;
  // A few KiB of deflate inflate to gigabytes: the size the zip declares is checked before reading,
  // and no more than it is read.
  if (st.size > kMaxPart)
    throw ImportError(zip.path + ": " + name + " is larger than " + std::to_string(kMaxPart >> 20) + " MiB uncompressed (" +
                      std::to_string(st.size >> 20) + " MiB); not an MDS2 form");
  if (counted) zip.read += st.size;
  if (zip.read > kMaxPartsTotal)
    throw ImportError(zip.path + ": the workbook's parts hold more than " + std::to_string(kMaxPartsTotal >> 20) +
                      " MiB of XML; not an MDS2 form");
  zip_file_t* f = zip_fopen(zip.z, name.c_str(), 0);
  if (!f) return false;
  out.resize(st.size);
  zip_int64_t n = st.size ? zip_fread(f, out.data(), st.size) : 0;
  zip_fclose(f);
  if (n < 0 || static_cast<zip_uint64_t>(n) != st.size) return false;
  return true;
}

// Parses part `name`'s XML in place (the DOM's strings point into `xml`, which must outlive `doc`);
// false when it is not well-formed. `what` names the part in messages ("sheet 'Answers'").
// `why` gets where and what the XML error is (" (line 12, column 3: ...)").
bool parse_part(Zip& zip, const std::string& name, std::string& xml, pugi::xml_document& doc, const std::string& what,
                unsigned options, std::string* why = nullptr) {
  size_t markup = 0;
  for (char ch : xml) markup += (ch == '<') | (ch == '=');
  if (markup > kMaxMarkup)
    throw ImportError(zip.path + ": " + what + " has more than " + std::to_string(kMaxMarkup) +
                      " XML tags and attributes; not an MDS2 form");
  pugi::xml_parse_result r = doc.load_buffer_inplace(xml.data(), xml.size(), options);
  if (!r && why) {
    // The parse decoded the text before the error in place: a character reference became the
    // character (&#10; a line end) and the bytes a shorter text left behind keep stale copies. The
    // error's line and column are counted in the part as written, read again.
    doc.reset();
    std::string raw;
    if (!read_part(zip, name, raw, false)) raw = xml;
    size_t at = std::min(r.offset < 0 ? size_t(0) : static_cast<size_t>(r.offset), raw.size());
    size_t line = 1 + static_cast<size_t>(std::count(raw.begin(), raw.begin() + static_cast<long>(at), '\n'));
    size_t bol = at == 0 ? std::string::npos : raw.rfind('\n', at - 1);
    size_t column = at - (bol == std::string::npos ? 0 : bol + 1) + 1;
    *why = " (line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + r.description() + ")";
  }
  return static_cast<bool>(r);
}

// SpreadsheetML elements: Excel and LibreOffice write them in the default namespace, the .NET Open
// XML SDK with a prefix bound to it (<x:workbook xmlns:x="...">). The prefix of a part's root
// element with its colon ("" or "x:"); nullopt when the root is in another namespace.
std::optional<std::string> sml_prefix(const pugi::xml_node& root) {
  std::string_view name = root.name();
  auto colon = name.find(':');
  if (colon == std::string_view::npos) return std::string();
  std::string p(name.substr(0, colon));
  std::string_view ns = root.attribute(("xmlns:" + p).c_str()).value();
  if (ns == "http://schemas.openxmlformats.org/spreadsheetml/2006/main" || ns == "http://purl.oclc.org/ooxml/spreadsheetml/main")
    return p + ":";
  return std::nullopt;
}

// The root element when it is the SpreadsheetML element `local`, with the prefix its part uses.
pugi::xml_node sml_root(const pugi::xml_document& doc, const char* local, std::string& prefix) {
  auto root = doc.document_element();
  auto p = sml_prefix(root);
  if (!p || std::string_view(root.name()) != *p + local) return {};
  prefix = *p;
  return root;
}

// A relationship id attribute (r:id, whatever the relationships namespace's prefix).
const char* rel_id(const pugi::xml_node& n) {
  for (auto a : n.attributes()) {
    std::string_view name = a.name();
    if (name.size() > 3 && name.substr(name.size() - 3) == ":id") return a.value();
  }
  return "";
}

// Text of a shared-string item or inline string: all <t> runs, skipping phonetic guides (<rPh>).
// A walk without recursion: a hostile file may nest elements millions deep.
// `t` and `rph` are the element names with the part's prefix. False when the text is longer than
// kMaxCellText (what `out` holds then is cut there).
bool collect_text(const pugi::xml_node& root, std::string& out, const std::string& t, const std::string& rph) {
  pugi::xml_node n = root.first_child();
  while (n) {
    std::string_view name = n.name();
    if (name == t) {
      std::string_view run = n.text().get();
      if (run.size() > detail::kMaxCellText - std::min(out.size(), detail::kMaxCellText)) return false;
      out += run;
    }
    else if (name != rph && n.first_child()) { n = n.first_child(); continue; }
    // Next node: the sibling, else the sibling of the nearest ancestor below root that has one.
    while (n != root && !n.next_sibling()) n = n.parent();
    if (n == root) break;
    n = n.next_sibling();
  }
  return true;
}

// SpreadsheetML escapes the characters XML cannot hold (ST_Xstring): _xHHHH_ is U+HHHH (Excel
// writes the CR of a line break in a cell as _x000D_), and _x005F_ is the underscore that keeps a
// literal "_x0041_" from being read as an escape.
std::string decode_xstring(std::string s) {
  if (s.find("_x") == std::string::npos) return s;
  auto escape_at = [&](size_t i, uint32_t& cp) {
    if (i + 7 > s.size() || s[i] != '_' || s[i + 1] != 'x' || s[i + 6] != '_') return false;
    cp = 0;
    for (size_t k = i + 2; k < i + 6; ++k) {
      char c = s[k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      cp = cp << 4 | static_cast<uint32_t>(d);
    }
    return true;
  };
  std::string o;
  o.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0, low = 0;
    if (!escape_at(i, cp)) { o.push_back(s[i++]); continue; }
    i += 7;
    if (cp >= 0xD800 && cp <= 0xDBFF && escape_at(i, low) && low >= 0xDC00 && low <= 0xDFFF) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);  // a character outside the BMP, as two escapes
      i += 7;
    }
    detail::append_utf8(o, cp);
  }
  return o;
}

// A sheet's name as messages and the model give it: control characters ('\x1b' starts a terminal's
// escape sequence; a character reference writes one into XML) become '?'. Excel allows none in a name.
std::string printable(std::string_view s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    bool c1 = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
              static_cast<unsigned char>(s[i + 1]) <= 0x9F;  // U+0080-U+009F
    if (c1) ++i;
    o.push_back(c < 0x20 || c == 0x7F || c1 ? '?' : static_cast<char>(c));
  }
  return o;
}

// "B7" for column 1, row 7: names a cell in messages.
std::string cell_name(int col, int row) {
  std::string letters;
  for (int c = col + 1; c > 0; c = (c - 1) / 26) letters.insert(letters.begin(), static_cast<char>('A' + (c - 1) % 26));
  return letters + std::to_string(row);
}

// "AB12" -> col 27 (0-based 27), row 12
bool parse_ref(const char* ref, int& col, int& row) {
  col = 0; row = 0;
  const char* p = ref;
  int letters = 0;
  while (*p >= 'A' && *p <= 'Z') { col = col * 26 + (*p - 'A' + 1); ++p; if (++letters > 3) return false; }
  if (letters == 0) return false;
  while (*p >= '0' && *p <= '9') { row = row * 10 + (*p - '0'); ++p; if (row > 10000000) return false; }
  --col;
  return row > 0 && *p == 0;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The workbook's strings: entry 0 is the empty string, then the shared strings, then the texts
// of other cells (inline strings, numbers) of the sheet being read; those are dropped once the
// sheet is scored (forget_sheet). A cell is an index into it, so a string used by many cells is
// held once.
struct Texts {
  std::string path;  // names the file in messages
  std::vector<std::string> list{std::string()};
  std::unordered_set<uint32_t> numbers;  // entries that are a number cell's value
  size_t bytes = 0;
  size_t shared_entries = 1, shared_bytes = 0;  // the part that stays: entry 0 and the shared strings
  void keep_shared() { shared_entries = list.size(); shared_bytes = bytes; }
  void forget_sheet() {
    list.resize(shared_entries);
    numbers.clear();
    bytes = shared_bytes;
  }
  uint32_t add(std::string s) {
    if (s.empty()) return 0;
    bytes += s.size();
    if (bytes > kMaxText)
      throw ImportError(path + ": the workbook holds more than " + std::to_string(kMaxText >> 20) +
                        " MiB of text; not an MDS2 form");
    list.push_back(std::move(s));
    return static_cast<uint32_t>(list.size() - 1);
  }
};

using Row = std::array<uint32_t, kMaxCols>;  // cells A.. as indexes into Texts

struct Sheet {
  std::string name, part;
  std::map<int, Row> rows;
  size_t text = 0;  // bytes of text its cells refer to
};

// Sets a cell, charging its text to the sheet.
void set_cell(Sheet& sh, uint32_t& cell, uint32_t v, const Texts& texts) {
  sh.text += texts.list[v].size();
  if (sh.text > kMaxSheetText)
    throw ImportError(texts.path + ": sheet '" + sh.name + "' holds more than " + std::to_string(kMaxSheetText >> 20) +
                      " MiB of cell text (a shared string counts at every cell that uses it); not an MDS2 form");
  cell = v;
}

void load_sheet(Zip& zip, Sheet& sh, Texts& texts, size_t nshared) {
  std::string xml;
  if (!read_part(zip, sh.part, xml)) {
    // The workbook names a sheet whose part the zip does not hold (a damaged or hand-made file).
    zip_stat_t st;
    if (zip_stat(zip.z, sh.part.c_str(), ZIP_FL_ENC_GUESS, &st) != 0)
      throw ImportError(texts.path + ": sheet '" + sh.name + "' is missing: the workbook lists it, but the zip holds no " +
                        sh.part + "; the file is damaged");
    throw ImportError(texts.path + ": sheet '" + sh.name + "' (" + sh.part + ") cannot be read; the file is damaged");
  }
  pugi::xml_document doc;
  std::string why;
  if (!parse_part(zip, sh.part, xml, doc, "sheet '" + sh.name + "'", kParse, &why))
    throw ImportError(texts.path + ": sheet '" + sh.name + "' (" + sh.part + ") is not well-formed XML" + why);
  std::string p;
  auto ws = sml_root(doc, "worksheet", p);  // none: another kind of sheet (a chart sheet), no rows
  const std::string n_row = p + "row", n_c = p + "c", n_v = p + "v", n_is = p + "is", n_t = p + "t", n_rph = p + "rPh";
  // Refused rather than cut short, as the text forms are: the rows past the cap would be answers
  // silently lost.
  auto too_many_rows = [&] {
    return ImportError(texts.path + ": sheet '" + sh.name + "' (" + sh.part + ") has more than " +
                       std::to_string(kMaxRows) + " rows; not an MDS2 form");
  };
  int count = 0;
  int row_no = 0;
  for (auto r : ws.child((p + "sheetData").c_str()).children(n_row.c_str())) {
    if (++count > kMaxRows) throw too_many_rows();
    // The r attributes are optional: a row without one follows the previous row, a cell without
    // one the previous cell.
    int given = r.attribute("r").as_int(0);
    row_no = given > 0 && given <= 10000000 ? given : row_no + 1;
    int col = -1;
    for (auto c : r.children(n_c.c_str())) {
      int row = row_no;
      auto ref = c.attribute("r");
      if (!ref) ++col;
      else if (!parse_ref(ref.value(), col, row)) { ++col; continue; }
      if (col >= kMaxCols) continue;
      std::string_view t = c.attribute("t").value();
      uint32_t v = 0;
      if (t == "s") {
        // An index past the shared strings is a damaged file: read as blank, an answer would vanish.
        std::string_view given = c.child(n_v.c_str()).text().get();
        if (!given.empty()) {
          long long idx = c.child(n_v.c_str()).text().as_llong(-1);
          bool number = given.find_first_not_of("0123456789") == std::string_view::npos;
          if (!number || idx < 0 || static_cast<size_t>(idx) >= nshared)
            throw ImportError(texts.path + ": sheet '" + sh.name + "' cell " + cell_name(col, row) +
                              " refers to shared string '" + printable(given.substr(0, 32)) + "', but the workbook has " +
                              std::to_string(nshared) + "; the file is damaged");
          v = static_cast<uint32_t>(idx + 1);
        }
      } else {
        // A cell's text past kMaxCellText is refused before it is copied (a 60 MiB cell took 380 MB).
        auto too_long = [&] {
          return ImportError(texts.path + ": sheet '" + sh.name + "' cell " + cell_name(col, row) + " holds more than " +
                             std::to_string(detail::kMaxCellText >> 20) + " MiB of text; not an MDS2 form (its longest "
                             "cells, the notes, hold a few KiB)");
        };
        std::string s;
        if (t == "inlineStr") {
          if (!collect_text(c.child(n_is.c_str()), s, n_t, n_rph)) throw too_long();
          s = decode_xstring(std::move(s));
        } else if (t == "b") {
          s = c.child(n_v.c_str()).text().as_int() ? "TRUE" : "FALSE";
        } else {
          std::string_view v = c.child(n_v.c_str()).text().get();
          if (v.size() > detail::kMaxCellText) throw too_long();
          if (t == "str") s = decode_xstring(std::string(v));  // a formula's text result
          else s = v;  // numbers (dates are serials), errors
        }
        v = texts.add(std::move(s));
        if (v && (t.empty() || t == "n")) texts.numbers.insert(v);
      }
      // A cell may name another row than its <row>: the rows named are capped, not only the elements.
      if (sh.rows.size() >= static_cast<size_t>(kMaxRows) && !sh.rows.count(row)) throw too_many_rows();
      auto [it, added] = sh.rows.try_emplace(row);
      if (added) it->second.fill(0);
      set_cell(sh, it->second[col], v, texts);
    }
  }
  // Merged cells: the cells of the range in the top-left cell's column read its value (answer cells
  // merged down over several questions). A range across columns fills no other column: a question
  // merged over the empty answer cell is still unanswered. Only the rows the sheet has are filled
  // (a row of merged copies alone holds no id of its own), and the cells filled are capped:
  // thousands of large ranges would otherwise multiply memory and time.
  size_t filled = 0;
  const std::string n_merge = p + "mergeCell";  // children() keeps the pointer: a named string
  for (auto m : ws.child((p + "mergeCells").c_str()).children(n_merge.c_str())) {
    std::string ref = m.attribute("ref").value();
    auto colon = ref.find(':');
    if (colon == std::string::npos) continue;
    int c0, r0, c1, r1;
    if (!parse_ref(ref.substr(0, colon).c_str(), c0, r0) || !parse_ref(ref.substr(colon + 1).c_str(), c1, r1)) continue;
    if (c0 >= kMaxCols || c1 < c0 || r1 < r0) continue;
    c1 = std::min(c1, kMaxCols - 1);
    auto it = sh.rows.find(r0);
    if (it == sh.rows.end()) continue;
    uint32_t v = it->second[c0];
    if (v == 0) continue;
    for (; it != sh.rows.end() && it->first <= r1; ++it) {
      filled += static_cast<size_t>(c1 - c0 + 1);
      if (filled > kMaxMergedCells)
        throw ImportError(texts.path + ": sheet '" + sh.name + "' has more than " + std::to_string(kMaxMergedCells) +
                          " cells in merged ranges; not an MDS2 form");
      if (it->second[c0] == 0) set_cell(sh, it->second[c0], v, texts);
    }
  }
}

// The questions and notes of a sheet's rows.
Form sheet_form(const Sheet& sh, const Texts& texts, bool date1904, const std::string& path) {
  Form f;
  f.source_file = path;
  f.source_format = "xlsx";
  detail::Columns cols;
  bool have_cols = false;
  for (auto& [r, row] : sh.rows) {
    std::vector<std::string> cells(kMaxCols);
    for (int c = 0; c < kMaxCols; ++c) cells[c] = texts.list[row[c]];
    // The release date (DOC-7) in a number cell is an Excel serial day number: it reads as the
    // date the spreadsheet shows. Text ("2019", "10.2019") stays as written.
    // The row is DOC-7's as the form reads it, also when its id cell holds more ("DOC-7:",
    // "DOC-7 Release date").
    if (detail::row_question_id(cells) == "DOC-7") {
      for (int c = 0; c < kMaxCols; ++c) {
        if (!texts.numbers.count(row[c])) continue;
        std::string d = excel_serial_to_date(cells[c], date1904);
        if (!d.empty()) cells[c] = d;
      }
    }
    if (!have_cols && detail::header_columns(cells, cols)) { have_cols = true; continue; }
    detail::add_row(f, std::move(cells), have_cols ? &cols : nullptr);
  }
  return f;
}

// A relationship part's targets by id, and the target of the first relationship of each type
// (the type's last path segment: "officeDocument", "sharedStrings", "worksheet"). Targets are
// resolved against `base`, the folder of the part the relationships belong to.
struct Rels {
  std::map<std::string, std::string> by_id;
  std::map<std::string, std::string> by_type;
};
// A part name with its "." and ".." segments resolved, as OPC resolves a relationship's target
// (RFC 3986): "xl/../xl/./worksheets/sheet1.xml" is "xl/worksheets/sheet1.xml".
std::string resolve_part(const std::string& path) {
  std::vector<std::string> segs;
  size_t b = 0;
  while (b <= path.size()) {
    size_t e = path.find('/', b);
    if (e == std::string::npos) e = path.size();
    std::string seg = path.substr(b, e - b);
    if (seg == "..") {
      if (!segs.empty()) segs.pop_back();
    } else if (seg != "." && !seg.empty()) {
      segs.push_back(std::move(seg));
    }
    b = e + 1;
  }
  std::string out;
  for (auto& seg : segs) out += (out.empty() ? "" : "/") + seg;
  return out;
}

Rels read_rels(Zip& zip, const std::string& name, const std::string& base) {
  Rels out;
  std::string xml;
  pugi::xml_document d;
  if (!read_part(zip, name, xml) || !parse_part(zip, name, xml, d, name, pugi::parse_default)) return out;
  for (auto r : d.child("Relationships").children("Relationship")) {
    std::string t = r.attribute("Target").value();
    if (t.empty() || std::string_view(r.attribute("TargetMode").value()) == "External") continue;
    // Part names are printable (a control character would reach messages; no real part has one).
    t = printable(resolve_part(t[0] == '/' ? t : base + t));
    out.by_id[r.attribute("Id").value()] = t;
    std::string type = r.attribute("Type").value();
    out.by_type.emplace(type.substr(type.rfind('/') + 1), t);
  }
  return out;
}

// The workbook in an open zip; `path` names it in messages.
Form read_workbook(Zip& zip, const std::string& path) {
  zip.path = path;
  // The workbook part is named by the package's relationships (_rels/.rels), its sheets and shared
  // strings by the workbook's; the usual names are the fallback for files written without them.
  std::string wb_part = "xl/workbook.xml";
  if (auto pkg = read_rels(zip, "_rels/.rels", ""); pkg.by_type.count("officeDocument"))
    wb_part = pkg.by_type["officeDocument"];
  std::string dir = wb_part.substr(0, wb_part.rfind('/') + 1);
  std::string wb, ss;
  if (zip_get_num_entries(zip.z, 0) == 0)
    throw ImportError(path + ": an empty zip file, not an Excel workbook (it holds no " + wb_part +
                      " and no sheet); export the MDS2 form again");
  if (!read_part(zip, wb_part, wb))
    throw ImportError(path + ": a zip file but not an Excel workbook (no " + wb_part + ")");
  Rels rels = read_rels(zip, dir + "_rels/" + wb_part.substr(dir.size()) + ".rels", dir);
  if (rels.by_id.empty())
    throw ImportError(path + ": a zip file but not an Excel workbook (no relationships for " + wb_part + ")");
  Texts texts;
  texts.path = path;
  size_t nshared = 0;
  std::string ss_part = rels.by_type.count("sharedStrings") ? rels.by_type["sharedStrings"] : dir + "sharedStrings.xml";
  zip_stat_t ss_stat;
  bool have_ss = zip_stat(zip.z, ss_part.c_str(), ZIP_FL_ENC_GUESS, &ss_stat) == 0;
  if (have_ss && !read_part(zip, ss_part, ss)) throw ImportError(path + ": " + ss_part + " cannot be read");
  if (have_ss) {
    // A damaged part is named: read as empty, every shared-string cell would be blank.
    pugi::xml_document d;
    std::string why;
    if (!parse_part(zip, ss_part, ss, d, ss_part, kParse, &why))
      throw ImportError(path + ": " + ss_part + " is not well-formed XML" + why);
    std::string p;
    auto sst = sml_root(d, "sst", p);
    const std::string n_si = p + "si", n_t = p + "t", n_rph = p + "rPh";
    for (auto si : sst.children(n_si.c_str())) {
      std::string s;
      if (!collect_text(si, s, n_t, n_rph))
        throw ImportError(path + ": " + ss_part + ": shared string " + std::to_string(nshared) + " holds more than " + std::to_string(detail::kMaxCellText >> 20) +
                          " MiB of text; not an MDS2 form (its longest cells, the notes, hold a few KiB)");
      s = decode_xstring(std::move(s));
      // Shared string n is entry n + 1, empty ones included.
      if (s.empty()) texts.list.emplace_back();
      else texts.add(std::move(s));
      ++nshared;
    }
  }
  ss = std::string();
  texts.keep_shared();
  std::vector<Sheet> sheets;
  bool date1904 = false;
  {
    pugi::xml_document wd;  // freed before the sheets are parsed
    std::string why;
    if (!parse_part(zip, wb_part, wb, wd, wb_part, pugi::parse_default, &why))
      throw ImportError(path + ": " + wb_part + " is not well-formed XML" + why);
    std::string p;
    auto root = sml_root(wd, "workbook", p);
    if (!root)  // another Office document (a .docx's document.xml)
      throw ImportError(path + ": a zip file but not an Excel workbook (" + wb_part + " is not a workbook)");
    const auto& targets = rels.by_id;
    // Dates count from 1904-01-01 in workbooks saved with the 1904 date system (old Mac Excel).
    date1904 = root.child((p + "workbookPr").c_str()).attribute("date1904").as_bool(false);
    // Each part is read once, also when several sheet entries name it.
    std::set<std::string> parts;
    size_t entries = 0;
    const std::string n_sheet = p + "sheet";  // children() keeps the pointer: a named string
    for (auto s : root.child((p + "sheets").c_str()).children(n_sheet.c_str())) {
      if (++entries > kMaxSheets)
        throw ImportError(path + ": the workbook has more than " + std::to_string(kMaxSheets) + " sheets; not an MDS2 form");
      Sheet sh;
      sh.name = printable(s.attribute("name").value());
      auto it = targets.find(rel_id(s));
      if (it == targets.end() || !parts.insert(it->second).second) continue;
      sh.part = it->second;
      sheets.push_back(std::move(sh));
    }
  }
  wb = std::string();
  if (sheets.empty())
    throw ImportError(path + ": the workbook lists no sheet (" + wb_part + " names none its relationships resolve)");

  // The shared strings, for the edition check.
  auto shared_text = [&] {
    std::string all;
    for (size_t i = 1; i <= nshared; ++i) { all += texts.list[i]; all += '\n'; }
    return all;
  };
  // The sheet with the most answered questions: a workbook may keep the blank NEMA template (named
  // mds2-form) beside the vendor's filled copy. On a tie the sheet named as parseMDS2 expects it,
  // then the one with the most question ids, then the first.
  Form f;
  Sheet* chosen = nullptr;
  std::tuple<size_t, bool, size_t> best{};
  std::vector<std::string> answered_sheets;  // sheets holding answers, for the warning below
  for (auto& sh : sheets) {
    load_sheet(zip, sh, texts, nshared);
    Form sf = sheet_form(sh, texts, date1904, path);
    // The form holds its own copies: the sheet's cells and texts go before the next sheet is read.
    sh.rows = {};
    texts.forget_sheet();
    if (sf.questions.empty()) continue;
    size_t answered = 0;
    for (auto& q : sf.questions) if (q.answer != Answer::blank) ++answered;
    if (answered > 0) answered_sheets.push_back(sh.name);
    std::string n = lower(sh.name);
    bool named = n == "mds2-form" || n == "mds2" || n == "mds2 form";
    std::tuple<size_t, bool, size_t> score{answered, named, sf.questions.size()};
    if (!chosen || score > best) { chosen = &sh; best = score; f = std::move(sf); }
  }
  if (!chosen) {
    Form e;
    e.source_file = path;
    detail::check_edition(e, shared_text());
    throw ImportError(path + ": no sheet has a column of HN 1-2019 question ids (such as CONN-4); "
                      "sheets: " + [&] { std::string s; for (auto& sh : sheets) s += (s.empty() ? "" : ", ") + sh.name; return s; }());
  }
  detail::check_edition(f, shared_text());
  f.sheet = chosen->name;
  // Two filled sheets (a superseded revision kept beside the current one): the choice is said.
  if (answered_sheets.size() > 1) {
    std::string others;
    for (auto& n : answered_sheets)
      if (n != chosen->name) others += (others.empty() ? "'" : ", '") + n + "'";
    bool many = answered_sheets.size() > 2;
    f.warnings.push_back("sheet '" + chosen->name + "' was read; sheet" + (many ? "s " : " ") + others + " also hold" +
                         (many ? "" : "s") + " answers and " + (many ? "were" : "was") +
                         " not read (the sheet with the most answers is read; on a tie one named mds2-form)");
  }
  finish_form(f);
  return f;
}

}  // namespace

Form read_xlsx(const std::string& path) {
  int err = 0;
  Zip zip;
  zip.z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!zip.z) {
    // libzip's reason ("Not a zip archive", "Premature end of file") says what is wrong with it.
    zip_error_t ze;
    zip_error_init_with_code(&ze, err);
    std::string why = zip_error_strerror(&ze);
    zip_error_fini(&ze);
    throw ImportError(path + ": not a readable XLSX (zip) file (" + why + ")");
  }
  return detail::named_errors(path, [&] { return read_workbook(zip, path); });
}

Form read_xlsx_buffer(std::string_view data, const std::string& source) {
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t* src = zip_source_buffer_create(data.data(), data.size(), 0, &ze);
  Zip zip;
  if (src && !(zip.z = zip_open_from_source(src, ZIP_RDONLY, &ze))) zip_source_free(src);
  std::string why = zip_error_strerror(&ze);
  zip_error_fini(&ze);
  if (!zip.z) throw ImportError(source + ": not a readable XLSX (zip) file (" + why + ")");
  return detail::named_errors(source, [&] { return read_workbook(zip, source); });
}

}  // namespace medmon::mds2
