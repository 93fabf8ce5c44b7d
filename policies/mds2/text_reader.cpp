// MDS2 from CSV, TSV, Markdown and plain text: any line (or table row) keyed by a question id.
#include <algorithm>
#include <cctype>

#include "policies/mds2/mds2_form.h"
#include "policies/mds2/rows.h"

namespace medmon::mds2 {
namespace {
// Lines of a text form, and rows (records of a CSV, lines of text) of any: as the XLSX reader's
// rows, far past the ~300 of a form.
constexpr size_t kMaxLines = 1000000;
constexpr size_t kMaxRows = 100000;
// Cells of one row or line: the form has seven columns. Millions of them on one line (60 MiB of
// "  a") took gigabytes as cells.
constexpr size_t kMaxCells = 256;
// Lines one row of text pasted one space apart may be wrapped over (the longest note of the NEMA
// form takes five at 80 columns).
constexpr size_t kMaxWrapped = 64;
}  // namespace
namespace detail {
namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

// Markdown emphasis and code marks around a cell ("**CONN-4**", "`No`"); only paired marks go,
// so "A.12.5.1*" (a footnote mark in the form) stays as written.
std::string unmark(std::string s) {
  for (;;) {
    if (s.size() < 2) return s;
    char c = s.front();
    if ((c == '*' || c == '`') && s.back() == c) { s = s.substr(1, s.size() - 2); continue; }
    return s;
  }
}

bool is_note_key(const std::string& s, std::string& key) {
  std::string l = lower(s);
  if (l.compare(0, 5, "note ") != 0 && l.compare(0, 5, "note#") != 0) return false;
  size_t i = 5;
  while (i < l.size() && (l[i] == ' ' || l[i] == '#')) ++i;
  size_t j = i;
  while (j < l.size() && std::isdigit(static_cast<unsigned char>(l[j]))) ++j;
  if (j == i) return false;
  while (j < l.size() && (l[j] == ':' || l[j] == '.' || l[j] == ' ')) ++j;
  if (j != l.size()) return false;
  key = "Note " + l.substr(i, j - i);
  while (!key.empty() && !std::isdigit(static_cast<unsigned char>(key.back()))) key.pop_back();
  return true;
}

bool looks_note_ref(const std::string& l) {
  // "see note 5", "see notes 3, 4", "note 2"
  if (l.compare(0, 8, "see note") == 0 || l.compare(0, 5, "note ") == 0)
    return std::any_of(l.begin(), l.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  return false;
}
// "__", "____": the form's placeholder for an empty cell.
bool is_placeholder(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c == '_'; });
}
bool looks_iec(const std::string& l) { return l.compare(0, 8, "section ") == 0; }
bool looks_nist(const std::string& s) {
  return s.size() >= 4 && std::isupper(static_cast<unsigned char>(s[0])) && std::isupper(static_cast<unsigned char>(s[1])) &&
         s[2] == '-' && (std::isdigit(static_cast<unsigned char>(s[3])) || s[3] == ' ');
}
bool looks_iso(const std::string& s) {
  return (s.size() >= 3 && s[0] == 'A' && s[1] == '.' && std::isdigit(static_cast<unsigned char>(s[2]))) ||
         s.compare(0, 4, "ISO ") == 0;
}

// The labels of the form's header rows DOC-1 to DOC-7 (the later ones are questions ending with
// '?'): the length of the label that starts s, followed by a space; 0 when none does.
size_t doc_label_length(const std::string& id, const std::string& s) {
  static const std::pair<const char*, const char*> labels[] = {
      {"DOC-1", "manufacturer name"}, {"DOC-2", "device description"}, {"DOC-3", "device model"},
      {"DOC-4", "document id"}, {"DOC-5", "manufacturer contact information"},
      {"DOC-6", "intended use of device in network-connected environment:"}, {"DOC-7", "document release date"}};
  for (auto& [doc, label] : labels) {
    size_t n = std::char_traits<char>::length(label);
    if (id == doc && s.size() > n + 1 && s[n] == ' ' && lower(s.substr(0, n)) == label) return n;
  }
  return 0;
}

// A cell as add_row reads it: markup, emphasis marks and runs of white space gone.
std::string clean_cell(const std::string& c) { return collapse_ws(unmark(collapse_ws(strip_html(c)))); }

}  // namespace

std::string row_question_id(const std::vector<std::string>& cells) {
  // The first cell with text carries the key, as in add_row.
  for (auto& c : cells) {
    std::string t = clean_cell(c);
    if (t.empty()) continue;
    std::string raw;
    return match_question_id(t, raw) ? canonical_id(raw) : std::string();
  }
  return {};
}

bool header_columns(const std::vector<std::string>& cells, Columns& cols) {
  Columns c;
  for (int i = 0; i < static_cast<int>(cells.size()); ++i) {
    std::string l = lower(collapse_ws(unmark(strip_html(cells[i]))));
    if (l == "question id" || l == "id") c.id = i;
    else if (l == "question") c.question = i;
    else if (l.find("80001") != std::string::npos) c.iec = i;
    else if (l.find("800-53") != std::string::npos) c.nist = i;
    else if (l.find("27002") != std::string::npos) c.iso = i;
    else if (l == "see note" || l == "note #" || l == "note" || l == "notes") c.note = i;
    else if (l == "answer" || l == "response" || l.compare(0, 7, "yes, no") == 0) c.answer = i;
  }
  if (c.id < 0 || c.question < 0) return false;
  if (c.answer < 0) c.answer = c.question + 1;  // the NEMA sheet leaves C5 blank
  cols = c;
  return true;
}

void add_row(Form& f, std::vector<std::string> cells, const Columns* cols) {
  for (auto& c : cells) c = clean_cell(c);
  // First non-empty cell carries the key.
  size_t k = 0;
  while (k < cells.size() && cells[k].empty()) ++k;
  if (k == cells.size()) return;
  std::string key;
  {
    // "Note 5: text" or "**Note 5**: text" in one cell (Markdown lists, loose text).
    const std::string& c = cells[k];
    std::string l = lower(c);
    if (l.compare(0, 5, "note ") == 0) {
      size_t i = 5;
      while (i < l.size() && std::isdigit(static_cast<unsigned char>(l[i]))) ++i;
      size_t j = i;
      while (j < l.size() && (l[j] == '*' || l[j] == ':' || l[j] == '.' || l[j] == ' ')) ++j;
      if (i > 5 && j > i && j < l.size() && l.find(':', i) < j) {
        f.notes["Note " + c.substr(5, i - 5)] = c.substr(j);
        return;
      }
    }
  }
  if (is_note_key(cells[k], key)) {
    for (size_t j = k + 1; j < cells.size(); ++j) {
      if (!cells[j].empty()) { f.notes[key] = cells[j]; break; }
    }
    return;
  }
  std::string raw;
  if (!match_question_id(cells[k], raw)) return;
  // "CONN-4 Can the device ...? No" in one cell: split the id off.
  if (raw.size() < cells[k].size()) {
    std::string rest = collapse_ws(cells[k].substr(raw.size()));
    while (!rest.empty() && (rest[0] == ',' || rest[0] == ':' || rest[0] == ' ' || rest[0] == '|')) rest.erase(0, 1);
    cells[k] = raw;
    cells.insert(cells.begin() + static_cast<long>(k) + 1, rest);
  }
  Question q;
  q.raw_id = raw;
  q.id = canonical_id(raw);
  auto cell = [&](int i) -> std::string { return (i >= 0 && static_cast<size_t>(i) < cells.size()) ? cells[i] : std::string(); };

  if (cols && cols->valid() && static_cast<int>(k) == cols->id) {
    q.question = cell(cols->question);
    std::string ans = cell(cols->answer);
    q.answer = normalise_answer(ans, q.detail);
    q.note_ref = cell(cols->note);
    q.iec_tr_80001_2_2 = cell(cols->iec);
    q.nist_800_53 = cell(cols->nist);
    q.iso_27002 = cell(cols->iso);
    f.questions.push_back(std::move(q));
    return;
  }

  // Classify by shape: blank cells may have vanished (PDF text, loose text).
  std::vector<std::string> rest;
  for (size_t j = k + 1; j < cells.size(); ++j) if (!cells[j].empty()) rest.push_back(cells[j]);
  // A row of an id and its answer with no question text ("CONN-4,No", "CONN-4,See Note 2"): the
  // first cell is classified like the others instead of taken for the question.
  bool no_question = false;
  if (!rest.empty() && rest[0].find('?') == std::string::npos) {
    std::string d;
    Answer a = normalise_answer(rest[0], d);
    no_question = a != Answer::text && a != Answer::blank;
  }
  if (rest.size() == 1 && !no_question) {
    // One cell holding question and answer: `"Question?": Yes` (Markdown lists) or `Question? Yes`.
    std::string s = rest[0];
    size_t cut = s.rfind("\":");
    size_t skip = 2;
    if (cut == std::string::npos) { cut = s.rfind('?'); skip = 1; }
    if (cut == std::string::npos) {
      // The header rows' labels, which end with no '?': "Manufacturer Name Acme Medical".
      if (size_t n = doc_label_length(q.id, s)) { cut = n; skip = 0; }
    }
    if (cut == std::string::npos) { cut = s.rfind(':'); skip = 1; }
    if (cut != std::string::npos) {
      std::string qtext = s.substr(0, cut + (skip == 1 && s[cut] == '?' ? 1 : 0));
      std::string ans = collapse_ws(s.substr(cut + skip));
      if (!qtext.empty() && (qtext[0] == '"' || qtext[0] == ',')) qtext.erase(0, qtext[0] == ',' ? 1 : 1);
      while (!qtext.empty() && (qtext[0] == '"' || qtext[0] == ' ')) qtext.erase(0, 1);
      if (!qtext.empty() && qtext.back() == '"') qtext.pop_back();
      rest = {collapse_ws(qtext)};
      if (!ans.empty()) {
        // Text pasted one space apart: "Yes __", "No See Note 2", "Hidden __" are the answer and
        // the note column.
        std::string note;
        size_t sp = ans.rfind(' ');
        if (sp != std::string::npos && is_placeholder(ans.substr(sp + 1))) {
          note = ans.substr(sp + 1);
          ans.erase(sp);
        } else if (sp = lower(ans).rfind(" see note"); sp != std::string::npos && sp > 0) {
          // "No See Note 2", "See Notes See Note 6": an answer word, then the note column.
          std::string d;
          Answer a = normalise_answer(ans.substr(0, sp), d);
          if (a == Answer::yes || a == Answer::no || a == Answer::na || a == Answer::see_note) {
            note = ans.substr(sp + 1);
            ans.erase(sp);
          }
        }
        // "...software/firmware? If no, answer N/A to questions in this section. Yes": the text
        // after the last '?' is the question's up to the answer word that ends it.
        std::string d;
        size_t last = ans.rfind(' ');
        if (skip == 1 && s[cut] == '?' && last != std::string::npos && normalise_answer(ans, d) == Answer::text) {
          Answer a = normalise_answer(ans.substr(last + 1), d);
          if (a == Answer::yes || a == Answer::no || a == Answer::na) {
            rest[0] += " " + ans.substr(0, last);
            ans.erase(0, last + 1);
          }
        }
        rest.push_back(ans);
        if (!note.empty()) rest.push_back(note);
      }
    } else {
      // "... for software integrity checking No __": a question the form ends with no '?', pasted
      // one space apart; its answer is the answer word ending it, before a blank note column.
      std::string body = s, note, d;
      size_t sp = body.rfind(' ');
      if (sp != std::string::npos && is_placeholder(body.substr(sp + 1))) {
        note = body.substr(sp + 1);
        body.erase(sp);
      }
      sp = body.rfind(' ');
      if (sp != std::string::npos) {
        std::string word = body.substr(sp + 1);
        Answer a = normalise_answer(word, d);
        if (word.size() >= 2 && (a == Answer::yes || a == Answer::no || a == Answer::na)) {
          rest = {collapse_ws(body.substr(0, sp)), word};
          if (!note.empty()) rest.push_back(note);
        }
      }
    }
  }
  // "Question?  If no, answer N/A to the rest.   N/A": two spaces inside the question's text split
  // off a cell that is no answer, with the answer word right of it. The cell is the question's.
  auto answer_word = [](const std::string& s) {
    std::string d;
    Answer a = normalise_answer(s, d);
    return a != Answer::text && a != Answer::blank && !looks_note_ref(lower(s));
  };
  while (!no_question && rest.size() > 2 && !answer_word(rest[1]) && answer_word(rest[2])) {
    std::string l = lower(rest[1]);
    if (looks_note_ref(l) || is_placeholder(rest[1]) || looks_iec(l) || looks_nist(rest[1]) || looks_iso(rest[1])) break;
    rest[0] += " " + rest[1];
    rest.erase(rest.begin() + 1);
  }
  if (!rest.empty() && !no_question) q.question = rest[0];
  bool have_answer = false;
  int last_map = -1;
  std::string extra;
  for (size_t j = no_question ? 0 : 1; j < rest.size(); ++j) {
    const std::string& s = rest[j];
    std::string l = lower(s);
    if (!have_answer) {
      std::string d;
      Answer a = normalise_answer(s, d);
      if (a != Answer::text && a != Answer::blank && !looks_note_ref(l)) {
        q.answer = a; q.detail = d; have_answer = true; continue;
      }
      // "See Note 2" followed by the note column ("__" or another reference) is the answer, as it
      // reads with a header row.
      if (looks_note_ref(l) && j + 1 < rest.size() && (looks_note_ref(lower(rest[j + 1])) || is_placeholder(rest[j + 1]))) {
        q.answer = a; q.detail = d; have_answer = true; continue;
      }
    }
    if (q.note_ref.empty() && (looks_note_ref(l) || is_placeholder(s))) {
      q.note_ref = s; continue;
    }
    if (looks_iec(l) && last_map < 0) { q.iec_tr_80001_2_2 = s; last_map = 0; continue; }
    if (looks_nist(s) && last_map < 1) { q.nist_800_53 = s; last_map = 1; continue; }
    if (looks_iso(s) && last_map < 2) { q.iso_27002 = s; last_map = 2; continue; }
    if (l == "none" && (have_answer || last_map >= 0) && last_map < 2) {
      // "None" fills the next mapping column after the last one seen.
      if (last_map == 0) { q.nist_800_53 = s; last_map = 1; }
      else { q.iso_27002 = s; last_map = 2; }
      continue;
    }
    if (!have_answer) { q.answer = normalise_answer(s, q.detail); have_answer = true; continue; }
    if (!extra.empty()) extra += " ";
    extra += s;
  }
  q.note = extra;
  f.questions.push_back(std::move(q));
}

void check_edition(const Form& f, std::string_view all_text) {
  size_t real = 0;
  for (auto& q : f.questions) if (q.id.compare(0, 4, "DOC-") != 0) ++real;
  if (real >= 10) return;
  std::string l = lower(all_text);
  auto has = [&](std::string_view s) { return l.find(s) != std::string::npos; };
  if (has("hn 1-2013") || has("management of private data") || (has("private data") && has("2013")))
    throw ImportError(f.source_file + ": this is the HIMSS/NEMA HN 1-2013 edition of the MDS2 form; only "
                      "ANSI/NEMA HN 1-2019 (question ids such as CONN-4, TXCF-2) is supported. Ask the "
                      "manufacturer for the 2019 form or write the device model by hand (docs/policy.md)");
  if (has("ephi") && (has("2004") || has("software revision") || has("himss")))
    throw ImportError(f.source_file + ": this is the 2004 (v1.0) edition of the MDS2 form; only ANSI/NEMA "
                      "HN 1-2019 (question ids such as CONN-4, TXCF-2) is supported. Ask the manufacturer "
                      "for the 2019 form or write the device model by hand (docs/policy.md)");
}

}  // namespace detail

namespace {

// True when the quote at t[open] opens an RFC 4180 quoted field: a closing quote (not a doubled
// one) follows, and after it only spaces or tabs up to a delimiter, a line end or the end of the text.
bool quoted_field_closes(std::string_view t, size_t open, char delim) {
  for (size_t i = open + 1; i < t.size(); ++i) {
    if (t[i] != '"') continue;
    if (i + 1 < t.size() && t[i + 1] == '"') { ++i; continue; }
    size_t j = i + 1;
    while (j < t.size() && (t[j] == ' ' || (t[j] == '\t' && delim != '\t'))) ++j;
    return j == t.size() || t[j] == delim || t[j] == '\n' || t[j] == '\r';
  }
  return false;
}

// RFC 4180 records. A quote at the start of a field that does not open a quoted field which closes
// properly ("No with no closing quote) is a character of the field, as spreadsheets read it: one
// stray quote must not swallow the rest of the file into a cell. The lines of such quotes are
// added to `stray_quotes`.
std::vector<std::vector<std::string>> parse_delimited_impl(std::string_view t, char delim,
                                                           std::vector<size_t>* stray_quotes = nullptr,
                                                           size_t max_records = SIZE_MAX, bool* over = nullptr,
                                                           std::vector<size_t>* record_lines = nullptr,
                                                           size_t* wide_line = nullptr, size_t* long_cell_line = nullptr) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, at_start = true;
  size_t line = 1;
  size_t field_line = 1;  // the line the field being read starts on
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (at_start) field_line = line;
    if (long_cell_line && field.size() > detail::kMaxCellText) {
      *long_cell_line = field_line;
      return rows;
    }
    if (record_lines && record_lines->size() == rows.size()) record_lines->push_back(line);  // the line the record starts on
    if (c == '\n') ++line;
    if (quoted) {
      if (c == '"') {
        if (i + 1 < t.size() && t[i + 1] == '"') { field.push_back('"'); ++i; }
        else quoted = false;
      } else {
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && at_start) {
      at_start = false;
      if (quoted_field_closes(t, i, delim)) { quoted = true; continue; }
      if (stray_quotes) stray_quotes->push_back(line);
      field.push_back(c);
      continue;
    }
    if (c == delim) {
      row.push_back(std::move(field));
      field.clear();
      at_start = true;
      if (row.size() > kMaxCells && wide_line) {
        *wide_line = line;
        return rows;
      }
      continue;
    }
    if (c == '\r') continue;
    if (c == '\n') {
      row.push_back(std::move(field)); field.clear();
      rows.push_back(std::move(row)); row.clear();
      at_start = true;
      if (rows.size() > max_records) {
        if (over) *over = true;
        return rows;
      }
      continue;
    }
    field.push_back(c);
    at_start = false;
  }
  if (long_cell_line && field.size() > detail::kMaxCellText) {
    *long_cell_line = field_line;
    return rows;
  }
  if (!field.empty() || !row.empty()) { row.push_back(std::move(field)); rows.push_back(std::move(row)); }
  return rows;
}

std::vector<std::string> split_pipes(std::string_view line) {
  std::vector<std::string> cells;
  std::string cur;
  size_t b = line.find('|');
  for (size_t i = b + 1; i < line.size(); ++i) {
    if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '|') { cur.push_back('|'); ++i; continue; }
    if (line[i] == '|') { cells.push_back(cur); cur.clear(); continue; }
    cur.push_back(line[i]);
  }
  if (!collapse_ws(cur).empty()) cells.push_back(cur);
  return cells;
}

// Loose text: cells separated by tabs or by runs of two or more spaces (PDF text layout), with
// the column (in characters, counted from the line's start at `from`) each cell starts at: wrapped
// lines of a PDF's layout are matched to the cells they continue by column.
std::vector<std::pair<size_t, std::string>> split_loose_columns(std::string_view line, size_t from) {
  std::vector<std::pair<size_t, std::string>> cells;
  size_t col = 0;
  for (size_t i = 0; i < from && i < line.size(); ++i) col += (static_cast<unsigned char>(line[i]) & 0xC0) != 0x80;
  std::string cur;
  size_t cur_col = 0;
  for (size_t i = from; i < line.size(); ++i) {
    char c = line[i];
    bool sep = c == '\t' || (c == ' ' && i + 1 < line.size() && (line[i + 1] == ' ' || line[i + 1] == '\t'));
    if (sep || (c == ' ' && cur.empty())) {
      if (!cur.empty()) { cells.emplace_back(cur_col, std::move(cur)); cur.clear(); }
      ++col;
      continue;
    }
    if (cur.empty()) cur_col = col;
    cur.push_back(c);
    col += (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // UTF-8 continuation bytes take no column
  }
  if (!cur.empty()) cells.emplace_back(cur_col, std::move(cur));
  // A trailing single space ends no cell; trim it as split_loose's callers see it.
  for (auto& [c, t] : cells) while (!t.empty() && t.back() == ' ') t.pop_back();
  return cells;
}

// "Note 5: text", "**Note 5**: text", "Note 5      text" (a column gap) at the start of s: the note's
// number, and where its text starts (s.size() when the line holds only the key). False for other
// lines ("Note 1 applies to CONN-4" is a sentence, not a note row).
// With one_space (a file whose rows are pasted one space apart) "Note 5 text" is a note row too.
bool note_line(std::string_view s, std::string& number, size_t& text_at, bool one_space = false) {
  size_t i = 0;
  while (i < s.size() && (s[i] == '*' || s[i] == '`' || s[i] == '_')) ++i;
  if (s.size() < i + 4 || detail::lower(s.substr(i, 4)) != "note") return false;
  i += 4;
  while (i < s.size() && (s[i] == ' ' || s[i] == '#')) ++i;
  size_t d = i;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == d || i - d > 6) return false;
  number.assign(s.substr(d, i - d));
  size_t j = i;
  bool colon = false, gap = false;
  while (j < s.size() && (s[j] == '*' || s[j] == '`' || s[j] == '_' || s[j] == ':' || s[j] == '.' || s[j] == ' ' || s[j] == '\t')) {
    colon |= s[j] == ':';
    gap |= s[j] == '\t' || (s[j] == ' ' && j + 1 < s.size() && s[j + 1] == ' ');
    ++j;
  }
  if (j < s.size() && !colon && !gap && !(one_space && j > i)) return false;
  text_at = j;
  return true;
}

std::vector<std::string_view> lines_of(std::string_view t) {
  std::vector<std::string_view> out;
  size_t b = 0;
  while (b <= t.size()) {
    size_t e = t.find('\n', b);
    if (e == std::string_view::npos) e = t.size();
    std::string_view l = t.substr(b, e - b);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    out.push_back(l);
    b = e + 1;
  }
  return out;
}

// The field separator of a CSV file: what follows the question ids (and the header's "Question
// ID") on most lines, of comma, semicolon (spreadsheets in locales with a decimal comma) and tab.
char csv_delimiter(std::string_view text) {
  size_t counts[3] = {};
  const char delims[3] = {',', ';', '\t'};
  std::string id;
  for (auto l : lines_of(text)) {
    std::string_view s = l;
    bool quoted = !s.empty() && s[0] == '"';
    if (quoted) s.remove_prefix(1);
    size_t n = 0;
    if (match_question_id(s, id)) n = id.size();
    else if (s.size() >= 11 && detail::lower(s.substr(0, 11)) == "question id") n = 11;
    else continue;
    if (quoted && n < s.size() && s[n] == '"') ++n;
    if (n >= s.size()) continue;
    for (int i = 0; i < 3; ++i) if (s[n] == delims[i]) ++counts[i];
  }
  int best = 0;
  for (int i = 1; i < 3; ++i) if (counts[i] > counts[best]) best = i;
  return delims[best];
}

std::string_view ltrim(std::string_view s) {
  while (!s.empty() && (s[0] == ' ' || s[0] == '\t' || s[0] == '-' || s[0] == '*' || s[0] == '>')) s.remove_prefix(1);
  return s;
}

}  // namespace

Form read_text_buffer(std::string_view text, std::string_view hint, std::string_view source) {
  Form f;
  f.source_file = std::string(source);
  f.source_format = std::string(hint);
  // A form is a few hundred lines and rows: millions of them (a 64 MiB file of short rows) would
  // cost gigabytes of rows and answers.
  if (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) > kMaxLines)
    throw ImportError(f.source_file + ": more than " + std::to_string(kMaxLines) + " lines; not an MDS2 form");
  auto too_many_rows = [&] {
    return ImportError(f.source_file + ": more than " + std::to_string(kMaxRows) +
                       " rows; not an MDS2 form (the HN 1-2019 form has about 300)");
  };
  // A cell (a line, a row or note over its wrapped lines) past kMaxCellText: its copies as a row,
  // cleaned cells, answer and model took eight times its size (a 60 MiB cell, 470 MB).
  auto too_long = [&](size_t line, const char* what) {
    return ImportError(f.source_file + ":" + std::to_string(line) + ": " + what + " of more than " +
                       std::to_string(detail::kMaxCellText >> 20) + " MiB of text; not an MDS2 form (its longest "
                       "cells, the notes, hold a few KiB)");
  };
  std::string decoded, how;
  if (detail::decode_text(text, decoded, how)) {
    if (how == "windows-1252")
      f.warnings.push_back("the file is not UTF-8 text: read as Windows-1252 (as Excel on Windows writes CSV); the first "
                           "byte that is no UTF-8 is at " + detail::where_not_utf8(text) + "; check its accented letters "
                           "and quotes in the model, or save the file as UTF-8");
    if (how.find("without a byte-order mark") != std::string::npos)
      f.warnings.push_back("the file is read as " + how.substr(0, 8) + " (UTF-16 " + (how[6] == 'l' ? "little" : "big") +
                           "-endian), which it looks like without a byte-order mark; check the model's text, or save "
                           "the file as UTF-8");
    text = decoded;
  }
  // UTF-8 BOM
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  // A lone CR ends a line as LF does (classic Mac OS files, some Excel for Mac exports); the readers
  // below split at LF and drop the CR of CRLF.
  std::string lf;
  for (size_t i = text.find('\r'); i != std::string_view::npos; i = text.find('\r', i + 1)) {
    if (i + 1 < text.size() && text[i + 1] == '\n') continue;
    if (lf.empty()) lf.assign(text);
    lf[i] = '\n';
  }
  if (!lf.empty()) text = lf;
  std::string format(hint);
  if (format.empty() || format == "text") {
    // Sniff from the lines that start with an id.
    size_t tabs = 0, commas = 0, semicolons = 0, pipes = 0, keyed = 0;
    std::string id;
    for (auto l : lines_of(text)) {
      std::string_view s = l;
      bool pipe = false;
      while (!s.empty() && (s[0] == ' ' || s[0] == '|')) { pipe |= s[0] == '|'; s.remove_prefix(1); }
      s = ltrim(s);
      while (!s.empty() && (s[0] == '*' || s[0] == '`')) s.remove_prefix(1);
      if (!match_question_id(s, id)) continue;
      ++keyed;
      if (pipe) ++pipes;
      else if (s.size() > id.size() && s[id.size()] == '\t') ++tabs;
      else if (s.size() > id.size() && s[id.size()] == ',') ++commas;
      else if (s.size() > id.size() && s[id.size()] == ';') ++semicolons;
    }
    if (keyed == 0) format = "text";
    else if (pipes * 2 >= keyed) format = "markdown";
    else if (tabs * 2 >= keyed) format = "tsv";
    else if ((commas + semicolons) * 2 >= keyed) format = "csv";
    else format = "text";
    if (f.source_format.empty()) f.source_format = format;
  }
  detail::Columns cols;
  bool have_cols = false;
  if (format == "csv" || format == "tsv") {
    std::vector<size_t> stray;
    bool over = false;
    size_t wide = 0, long_cell = 0;
    auto rows = parse_delimited_impl(text, format == "csv" ? csv_delimiter(text) : '\t', &stray, kMaxRows, &over,
                                     nullptr, &wide, &long_cell);
    if (long_cell) throw too_long(long_cell, "a cell");
    if (over) throw too_many_rows();
    if (wide)
      throw ImportError(f.source_file + ":" + std::to_string(wide) + ": more than " + std::to_string(kMaxCells) +
                        " cells in one row; not an MDS2 form (the HN 1-2019 form has seven columns)");
    if (!stray.empty()) {
      std::string lines;
      for (size_t i = 0; i < stray.size() && i < 10; ++i) lines += (i ? ", " : "") + std::to_string(stray[i]);
      if (stray.size() > 10) lines += ", ...";
      f.warnings.push_back("a quote that opens no properly closed quoted cell is read as text (line" +
                           std::string(stray.size() > 1 ? "s " : " ") + lines + ")");
    }
    for (auto& row : rows) {
      if (!have_cols && detail::header_columns(row, cols)) { have_cols = true; continue; }
      detail::add_row(f, std::move(row), have_cols ? &cols : nullptr);
    }
  } else {
    // A row being read, kept until the next line shows whether it wraps onto it. PDF text in layout
    // (and text laid out like it) wraps a long cell onto indented lines below. A note's wrapped
    // lines (at its text's column, or any plain line of a Markdown paragraph) join its text. A
    // question row that holds no answer yet (the question wrapped, the answer on a line below) takes
    // the lines below it while they are unambiguous: the rest of its question (at the question's
    // column, while the question has not ended with '?'), then the line with the answer (cells right
    // of the question's text). A row that has its answer takes no more lines, and section titles and
    // the mapping's column headings between sections are never part of a row.
    struct Pending {
      enum Kind { none, question, note } kind = none;
      size_t key_col = 0;
      std::vector<std::pair<size_t, std::string>> cells;  // question: column, text
      size_t question_end = 0;  // question: the column right of its text's longest line
      // question: lines below a question that ended with '?' but have no answer to their right; they
      // are the question's only when a line with its answer follows ("...software only?" / "If yes,
      // answer N/A to the" / "remaining questions.   No"), else (a section's text) they are dropped.
      std::vector<std::pair<size_t, std::string>> held;
      bool top_aligned = false;  // question: its answer is on its first line and its text wraps below
      std::string note_number, note_text;
      size_t line = 0;  // the line it starts on
      size_t text_col = std::string::npos;  // note: where its text starts; npos when not on the key line
    } pending;
    size_t wrapped_lines = 0;  // lines joined to the pending row by continues_wrapped (below)
    auto flush = [&] {
      if (pending.kind == Pending::question) {
        std::vector<std::string> cells;
        for (auto& c : pending.cells) cells.push_back(std::move(c.second));
        detail::add_row(f, std::move(cells), nullptr);
      } else if (pending.kind == Pending::note && !collapse_ws(pending.note_text).empty()) {
        detail::add_row(f, {"Note " + pending.note_number, pending.note_text}, nullptr);
      }
      pending = Pending{};
      wrapped_lines = 0;
    };
    auto width = [](std::string_view t) {
      size_t n = 0;
      for (char c : t) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
      return n;
    };
    auto column_of = [&](std::string_view l, size_t at) { return width(l.substr(0, std::min(at, l.size()))); };
    constexpr size_t kSlack = 3;  // columns a wrapped line may stand off its cell in a PDF's layout
    auto near = [&](size_t a, size_t b) { return (a > b ? a - b : b - a) <= kSlack; };
    auto heading = [](const std::vector<std::pair<size_t, std::string>>& cells) {
      for (auto& [col, t] : cells)
        if (t.find("80001-2-2") != std::string::npos || t.find("800-53") != std::string::npos ||
            t.find("27002") != std::string::npos)
          return true;
      const std::string& t = cells[0].second;
      size_t letters = std::count_if(t.begin(), t.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)); });
      bool lower = std::any_of(t.begin(), t.end(), [](char c) { return std::islower(static_cast<unsigned char>(c)); });
      // "AUTOMATIC LOGOFF (ALOF)"; "(DICOM, HL7, IEEE 11073)?" ends a question.
      return letters >= 6 && !lower && t.find(' ') != std::string::npos && t.find('?') == std::string::npos;
    };
    constexpr size_t kMaxHeld = 4;  // lines of a question past its '?' (the form's run to two)
    // The held lines join the question: a line with its answer came.
    auto take_held = [&] {
      for (auto& [col, t] : pending.held) {
        pending.cells[1].second += " " + t;
        pending.question_end = std::max(pending.question_end, col + width(t));
      }
      pending.held.clear();
    };
    // Whether a question's text has plainly ended: with '?', or a '.' that ends no abbreviation
    // ("(e.g." goes on).
    auto question_ended = [](const std::string& q) {
      if (q.empty() || q.back() == '?') return true;
      if (q.back() != '.') return false;
      std::string last = detail::lower(q.substr(q.find_last_of(" (") == std::string::npos ? 0 : q.find_last_of(" (") + 1));
      return last != "e.g." && last != "i.e." && last != "etc." && last != "eg." && last != "ie.";
    };
    // A row with its answer on the key line (a spreadsheet's top alignment) takes the rest of its
    // wrapped question from below: one cell at the question's column ending left of the answer,
    // when the key line's question plainly goes on (question_ended is false), and then every such
    // line up to the next row, blank line or heading; after a question that ended, only the form's
    // instruction that follows it ("If yes, complete 4.1-4.4."). A question that ended on the key
    // line takes no other line (a bottom-aligned form's next row may start there).
    auto continues_answered = [&](std::string_view l, size_t at) {
      auto& pc = pending.cells;
      std::string id, d;
      if (pc.size() < 3 || !match_question_id(pc[0].second, id) || id.size() != pc[0].second.size()) return false;
      // The answer is the cell right of the question (a DOC row's answer is text); a row of an id
      // and its answer ("CONN-4  No  See Note 1") has no question to go on.
      Answer a = normalise_answer(pc[2].second, d);
      if (a == Answer::blank || (a == Answer::text && id.compare(0, 4, "DOC-") != 0)) return false;
      if (normalise_answer(pc[1].second, d) != Answer::text) return false;
      auto cells = split_loose_columns(l, at);
      if (cells.size() != 1 || heading(cells) || !near(cells[0].first, pc[1].first) ||
          cells[0].first + width(cells[0].second) >= pc[2].first)
        return false;
      std::string first = detail::lower(cells[0].second.substr(0, 7));
      bool instruction = first == "if yes," || first == "if no, " || first.compare(0, 6, "if no,") == 0;
      if (!pending.top_aligned && question_ended(pc[1].second) && !instruction) return false;
      pc[1].second += " " + cells[0].second;
      pending.top_aligned = true;
      return true;
    };
    // Whether the indented line l (text from byte `at`) continues the pending row; merges it when so.
    auto continues = [&](std::string_view l, size_t at) {
      size_t first = column_of(l, at);
      if (pending.kind == Pending::none || first <= pending.key_col) return false;
      if (pending.kind == Pending::note) {
        if (pending.text_col != std::string::npos && !near(first, pending.text_col)) return false;
        pending.note_text += " ";
        pending.note_text += l.substr(at);
        return true;
      }
      if (l.find('\t') != std::string_view::npos) return false;
      if (pending.cells.size() > 2) return continues_answered(l, at);
      // One cell: the id alone takes its question from below; "CONN-4 Question? No" in one cell is whole.
      std::string id;
      if (pending.cells.size() == 1 && (!match_question_id(pending.cells[0].second, id) || id.size() != pending.cells[0].second.size()))
        return false;
      auto cells = split_loose_columns(l, at);
      if (heading(cells)) return false;
      if (pending.cells.size() == 2 && near(cells[0].first, pending.cells[1].first)) {
        // After a question that ended with '?' the line is the question's only with its answer to
        // the right ("Is the device software only?" / "If yes, answer N/A to ...   No").
        std::string& question = pending.cells[1].second;
        std::string d;
        if (!question.empty() && question.back() == '?') {
          if (cells.size() < 2) {
            if (pending.held.size() >= kMaxHeld) return false;
            pending.held.push_back(std::move(cells[0]));
            return true;
          }
          if (normalise_answer(cells[1].second, d) == Answer::text) return false;
          take_held();
        }
        size_t question_end = pending.question_end;
        question += " " + cells[0].second;
        pending.question_end = std::max(pending.question_end, cells[0].first + width(cells[0].second));
        cells.erase(cells.begin());
        // Two spaces inside the question's text ("fiber optic,  etc.)?", "firmware?  If no, answer
        // N/A to") split off a cell that is no answer: inside the question's column, or ending it
        // with '?'. It is the question's; its answer is right of it or on a line below.
        while (!cells.empty() && normalise_answer(cells[0].second, d) == Answer::text &&
               (cells[0].first <= question_end || cells[0].second.back() == '?')) {
          question += " " + cells[0].second;
          pending.question_end = std::max(pending.question_end, cells[0].first + width(cells[0].second));
          cells.erase(cells.begin());
        }
      } else if (pending.cells.size() == 2) {
        // The answer alone: right of the question, and an answer word (a DOC row's answer is text).
        std::string d;
        Answer a = normalise_answer(cells[0].second, d);
        bool doc = pending.cells[0].second.compare(0, 4, "DOC-") == 0;
        if (cells[0].first <= pending.question_end + 1 || (a == Answer::text && !doc)) return false;
        take_held();
      }
      for (auto& c : cells) pending.cells.push_back(std::move(c));
      return true;
    };
    bool markdown = format == "markdown";
    // Whether a row pasted one space apart has come to its end: an answer word, a blank note
    // column ("__") or a note reference ends it.
    auto row_ended = [](const std::string& row) {
      size_t sp = row.find_last_of(' ');
      std::string last = row.substr(sp == std::string::npos ? 0 : sp + 1), d;
      if (!last.empty() && last.find_first_not_of('_') == std::string::npos) return true;
      // An answer word after the question's '?' ("software-only, no" and "If no," go on).
      Answer a = normalise_answer(last, d);
      bool word = last.size() >= 2 && last.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz/") == std::string::npos;
      if (word && row.find('?') != std::string::npos && (a == Answer::yes || a == Answer::no || a == Answer::na)) return true;
      // "See Note 4", "See Notes"; "See Note" wraps before its number.
      std::string l = detail::lower(row);
      size_t note = l.rfind("see note");
      if (note == std::string::npos) return false;
      std::string_view tail = std::string_view(l).substr(note + 8);
      return tail == "s" || (tail.find_first_not_of("0123456789 ,") == std::string_view::npos &&
                             tail.find_first_of("0123456789") != std::string_view::npos);
    };
    auto continues_wrapped = [&](std::string_view line) {
      if (pending.kind == Pending::note) {
        if (++wrapped_lines > kMaxWrapped) return false;
        pending.note_text += " ";
        pending.note_text += line;
        return true;
      }
      if (pending.kind != Pending::question || pending.cells.size() != 1 || row_ended(pending.cells[0].second) ||
          ++wrapped_lines > kMaxWrapped)
        return false;
      std::vector<std::pair<size_t, std::string>> cells{{0, std::string(line)}};
      if (heading(cells)) return false;
      pending.cells[0].second += " ";
      pending.cells[0].second += line;
      return true;
    };
    // Rows pasted one space apart (no line keyed by a question id has a column gap): the note rows
    // are too, "Note 5 text" with no colon ("Note 1 applies to ..." is prose in a laid-out form).
    bool one_space = false;
    {
      size_t keyed = 0, gapped = 0;
      std::string id;
      for (auto l : lines_of(text)) {
        std::string_view t = ltrim(l);
        if (!match_question_id(t, id)) continue;
        ++keyed;
        if (t.find('\t') != std::string_view::npos || t.find("  ") != std::string_view::npos) ++gapped;
      }
      one_space = !markdown && keyed >= 10 && gapped == 0;
    }
    // The row or note being read grows by the lines wrapped onto it: capped as one cell is.
    auto check_pending = [&] {
      size_t bytes = pending.note_text.size();
      for (auto& c : pending.cells) bytes += c.second.size();
      for (auto& c : pending.held) bytes += c.second.size();
      if (bytes > detail::kMaxCellText)
        throw too_long(pending.line, pending.kind == Pending::note ? "a note (over its wrapped lines)"
                                                                   : "a row (over its wrapped lines)");
    };
    size_t line_no = 0;
    for (auto l : lines_of(text)) {
      ++line_no;
      if (f.questions.size() + f.notes.size() > kMaxRows) throw too_many_rows();
      if (l.size() > detail::kMaxCellText) throw too_long(line_no, "a line");
      check_pending();
      {
        // Cells start where text follows a tab or a run of two spaces (split_loose_columns), or at a
        // pipe (Markdown tables).
        size_t starts = 0, pipes = 0;
        for (size_t i = 1; i < l.size(); ++i) {
          bool gap = l[i - 1] == '\t' || (l[i - 1] == ' ' && i >= 2 && l[i - 2] == ' ');
          pipes += l[i] == '|';
          if (((gap && l[i] != ' ' && l[i] != '\t' && ++starts > kMaxCells) || pipes > kMaxCells))
            throw ImportError(f.source_file + ":" + std::to_string(line_no) + ": more than " + std::to_string(kMaxCells) +
                              " cells in one line; not an MDS2 form (the HN 1-2019 form has seven columns)");
        }
      }
      // A page break (form feed) ends a row: what follows is the next page's header.
      if (l.find('\f') != std::string_view::npos) {
        flush();
        while (!l.empty() && l.find('\f') != std::string_view::npos) l.remove_prefix(l.find('\f') + 1);
      }
      std::string_view s = l;
      size_t p = s.find_first_not_of(" \t");
      if (p == std::string_view::npos) { flush(); continue; }  // a blank line ends a row
      {
        std::string id, number;
        size_t text_at = 0;
        std::string_view t = ltrim(s);
        std::string_view probe = t;
        while (!probe.empty() && (probe[0] == '*' || probe[0] == '`')) probe.remove_prefix(1);
        bool keyed = match_question_id(probe, id) || note_line(t, number, text_at, one_space) || s[p] == '|' || s[p] == '#';
        if (!keyed && p > 0 && continues(l, p)) continue;
        // A Markdown paragraph's lines continue a note without indentation.
        if (!keyed && markdown && pending.kind == Pending::note && t.size() == s.size() - p) {
          pending.note_text += " ";
          pending.note_text += s.substr(p);
          continue;
        }
        // Text pasted one space apart and wrapped (PDF text without its layout): a row goes on over
        // the lines below it until it ends with its answer (and note column); a note until the next
        // row or a blank line.
        if (!keyed && one_space && continues_wrapped(s.substr(p))) continue;
        flush();
        if (note_line(t, number, text_at, one_space)) {
          pending.kind = Pending::note;
          pending.line = line_no;
          pending.note_number = number;
          pending.key_col = column_of(l, static_cast<size_t>(t.data() - l.data()));
          pending.note_text = std::string(t.substr(text_at));
          if (text_at < t.size()) pending.text_col = column_of(l, static_cast<size_t>(t.data() - l.data()) + text_at);
          continue;
        }
      }
      if (p != std::string_view::npos && s[p] == '|') {
        auto cells = split_pipes(s);
        bool sep = !cells.empty() && std::all_of(cells.begin(), cells.end(), [](const std::string& c) {
          return c.find_first_not_of(" :-") == std::string::npos;
        });
        if (sep) continue;
        if (!have_cols && detail::header_columns(cells, cols)) { have_cols = true; continue; }
        detail::add_row(f, cells, have_cols ? &cols : nullptr);
        continue;
      }
      s = ltrim(s);
      std::string id;
      std::string_view probe = s;
      while (!probe.empty() && (probe[0] == '*' || probe[0] == '`')) probe.remove_prefix(1);
      std::string key;
      if (match_question_id(probe, id) && probe.size() > id.size() && probe[id.size()] == ',' &&
          probe.find('\t') == std::string_view::npos) {
        // MediCapture style: CONN-4,"Question?": Answer
        detail::add_row(f, {id, std::string(probe.substr(id.size() + 1))}, nullptr);
        continue;
      }
      auto cells = split_loose_columns(l, static_cast<size_t>(s.data() - l.data()));
      if (cells.size() == 1 && match_question_id(probe, id)) cells[0].second = std::string(probe);
      if (!cells.empty() && !detail::row_question_id({cells[0].second}).empty()) {
        pending.kind = Pending::question;
        pending.line = line_no;
        pending.key_col = cells[0].first;
        if (cells.size() > 1) pending.question_end = cells[1].first + width(cells[1].second);
        pending.cells = std::move(cells);
        continue;
      }
      std::vector<std::string> plain;
      for (auto& c : cells) plain.push_back(std::move(c.second));
      detail::add_row(f, plain, nullptr);
    }
    check_pending();
    flush();
    if (f.questions.size() + f.notes.size() > kMaxRows) throw too_many_rows();
  }
  detail::check_edition(f, text);
  return f;
}

std::vector<std::vector<std::string>> detail::parse_delimited(std::string_view text, char delim,
                                                              std::vector<size_t>* record_lines) {
  return parse_delimited_impl(text, delim, nullptr, SIZE_MAX, nullptr, record_lines);
}

namespace {
Form read_text_file(const std::string& path) {
  std::string text = detail::read_file(path, 64u << 20, "cannot open file");
  Form f = read_text_buffer(text, detail::text_format_hint(path), path);
  f.source_file = path;
  finish_form(f);
  return f;
}

}  // namespace

Form read_text(const std::string& path) {
  return detail::named_errors(path, [&] { return read_text_file(path); });
}

}  // namespace medmon::mds2
