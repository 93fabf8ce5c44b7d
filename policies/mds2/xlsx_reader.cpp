// MDS2 from the NEMA XLSX workbook: a zip of SpreadsheetML parts, read with libzip and pugixml.
#include <zip.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <pugixml.hpp>

#include "policies/mds2/mds2_form.h"
#include "policies/mds2/rows.h"

namespace medmon::mds2 {
namespace {

constexpr zip_uint64_t kMaxPart = 64u << 20;  // no sheet of a real form comes close
constexpr int kMaxCols = 16;                  // the form uses A-G
constexpr int kMaxRows = 100000;

struct Zip {
  zip_t* z = nullptr;
  ~Zip() { if (z) zip_discard(z); }
};

bool read_part(zip_t* z, const std::string& name, std::string& out) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat(z, name.c_str(), ZIP_FL_ENC_GUESS, &st) != 0) return false;
  if (!(st.valid & ZIP_STAT_SIZE) || st.size > kMaxPart) return false;
  zip_file_t* f = zip_fopen(z, name.c_str(), 0);
  if (!f) return false;
  out.resize(st.size);
  zip_int64_t n = st.size ? zip_fread(f, out.data(), st.size) : 0;
  zip_fclose(f);
  if (n < 0 || static_cast<zip_uint64_t>(n) != st.size) return false;
  return true;
}

// Text of a shared-string item or inline string: all <t> runs, skipping phonetic guides (<rPh>).
void collect_text(const pugi::xml_node& n, std::string& out) {
  for (auto c : n.children()) {
    std::string_view name = c.name();
    if (name == "rPh") continue;
    if (name == "t") out += c.text().get();
    else collect_text(c, out);
  }
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

struct Sheet {
  std::string name, part;
  std::map<int, std::vector<std::string>> rows;  // row -> cells A.. (kMaxCols)
};

void load_sheet(zip_t* z, Sheet& sh, const std::vector<std::string>& shared) {
  std::string xml;
  if (!read_part(z, sh.part, xml)) throw ImportError("sheet '" + sh.name + "' (" + sh.part + ") cannot be read");
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size()))
    throw ImportError("sheet '" + sh.name + "' is not well-formed XML");
  auto ws = doc.child("worksheet");
  int count = 0;
  for (auto r : ws.child("sheetData").children("row")) {
    if (++count > kMaxRows) break;
    for (auto c : r.children("c")) {
      int col, row;
      if (!parse_ref(c.attribute("r").value(), col, row) || col >= kMaxCols) continue;
      std::string_view t = c.attribute("t").value();
      std::string v;
      if (t == "s") {
        long idx = c.child("v").text().as_llong(-1);
        if (idx >= 0 && static_cast<size_t>(idx) < shared.size()) v = shared[idx];
      } else if (t == "inlineStr") {
        collect_text(c.child("is"), v);
      } else if (t == "b") {
        v = c.child("v").text().as_int() ? "TRUE" : "FALSE";
      } else {
        v = c.child("v").text().get();  // numbers (dates are serials), formula results ("str")
      }
      auto& cells = sh.rows[row];
      if (cells.size() < kMaxCols) cells.resize(kMaxCols);
      cells[col] = std::move(v);
    }
  }
  // Merged cells: every cell of the range reads the top-left value.
  for (auto m : ws.child("mergeCells").children("mergeCell")) {
    std::string ref = m.attribute("ref").value();
    auto colon = ref.find(':');
    if (colon == std::string::npos) continue;
    int c0, r0, c1, r1;
    if (!parse_ref(ref.substr(0, colon).c_str(), c0, r0) || !parse_ref(ref.substr(colon + 1).c_str(), c1, r1)) continue;
    if (c0 >= kMaxCols || r1 - r0 > 1000) continue;
    c1 = std::min(c1, kMaxCols - 1);
    auto it = sh.rows.find(r0);
    if (it == sh.rows.end()) continue;
    std::string v = it->second[c0];
    if (v.empty()) continue;
    for (int r = r0; r <= r1; ++r) {
      auto& cells = sh.rows[r];
      if (cells.size() < kMaxCols) cells.resize(kMaxCols);
      for (int c = c0; c <= c1; ++c) if (cells[c].empty()) cells[c] = v;
    }
  }
}

int keyed_rows(const Sheet& sh) {
  int n = 0;
  std::string id;
  for (auto& [r, cells] : sh.rows)
    for (auto& c : cells) if (match_question_id(c, id) && id.size() == c.size()) { ++n; break; }
  return n;
}

// The workbook in an open zip; `path` names it in messages.
Form read_workbook(Zip& zip, const std::string& path) {
  std::string wb, rels, ss;
  if (!read_part(zip.z, "xl/workbook.xml", wb) || !read_part(zip.z, "xl/_rels/workbook.xml.rels", rels))
    throw ImportError(path + ": a zip file but not an Excel workbook (no xl/workbook.xml)");
  std::vector<std::string> shared;
  if (read_part(zip.z, "xl/sharedStrings.xml", ss)) {
    pugi::xml_document d;
    if (d.load_buffer(ss.data(), ss.size())) {
      for (auto si : d.child("sst").children("si")) {
        std::string s;
        collect_text(si, s);
        shared.push_back(std::move(s));
      }
    }
  }
  pugi::xml_document rd, wd;
  rd.load_buffer(rels.data(), rels.size());
  if (!wd.load_buffer(wb.data(), wb.size())) throw ImportError(path + ": xl/workbook.xml is not well-formed XML");
  std::map<std::string, std::string> targets;
  for (auto r : rd.child("Relationships").children("Relationship")) {
    std::string t = r.attribute("Target").value();
    if (!t.empty() && t[0] == '/') t = t.substr(1);
    else t = "xl/" + t;
    targets[r.attribute("Id").value()] = t;
  }
  std::vector<Sheet> sheets;
  for (auto s : wd.child("workbook").child("sheets").children("sheet")) {
    Sheet sh;
    sh.name = s.attribute("name").value();
    auto it = targets.find(s.attribute("r:id").value());
    if (it == targets.end()) continue;
    sh.part = it->second;
    sheets.push_back(std::move(sh));
  }
  if (sheets.empty()) throw ImportError(path + ": workbook has no sheets");

  // The sheet named as parseMDS2 expects it, else the one with the most question ids.
  Sheet* chosen = nullptr;
  for (auto& sh : sheets) {
    std::string n = lower(sh.name);
    if (n == "mds2-form" || n == "mds2" || n == "mds2 form") { chosen = &sh; break; }
  }
  std::string all_text;
  if (chosen) {
    load_sheet(zip.z, *chosen, shared);
  } else {
    int best = 0;
    for (auto& sh : sheets) {
      load_sheet(zip.z, sh, shared);
      int n = keyed_rows(sh);
      if (n > best) { best = n; chosen = &sh; }
    }
    if (!chosen) {
      for (auto& s : shared) { all_text += s; all_text += '\n'; }
      Form f;
      f.source_file = path;
      detail::check_edition(f, all_text);
      throw ImportError(path + ": no sheet has a column of HN 1-2019 question ids (such as CONN-4); "
                        "sheets: " + [&] { std::string s; for (auto& sh : sheets) s += (s.empty() ? "" : ", ") + sh.name; return s; }());
    }
  }

  Form f;
  f.source_file = path;
  f.source_format = "xlsx";
  detail::Columns cols;
  bool have_cols = false;
  for (auto& [r, cells] : chosen->rows) {
    if (!have_cols && detail::header_columns(cells, cols)) { have_cols = true; continue; }
    detail::add_row(f, cells, have_cols ? &cols : nullptr);
  }
  for (auto& s : shared) { all_text += s; all_text += '\n'; }
  detail::check_edition(f, all_text);
  finish_form(f);
  return f;
}

}  // namespace

Form read_xlsx(const std::string& path) {
  int err = 0;
  Zip zip;
  zip.z = zip_open(path.c_str(), ZIP_RDONLY, &err);
  if (!zip.z) throw ImportError(path + ": not a readable XLSX (zip) file");
  return read_workbook(zip, path);
}

Form read_xlsx_buffer(std::string_view data, const std::string& source) {
  zip_error_t ze;
  zip_error_init(&ze);
  zip_source_t* src = zip_source_buffer_create(data.data(), data.size(), 0, &ze);
  Zip zip;
  if (src && !(zip.z = zip_open_from_source(src, ZIP_RDONLY, &ze))) zip_source_free(src);
  zip_error_fini(&ze);
  if (!zip.z) throw ImportError(source + ": not a readable XLSX (zip) file");
  return read_workbook(zip, source);
}

}  // namespace medmon::mds2
