// Shared pieces of the MDS2 importers: answer normalisation, id matching, notes, mapping.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <vector>
#include <unordered_set>

#include "policies/mds2/mds2_form.h"
#include "policies/mds2/rows.h"
#include "sensor/common/utf8.h"

namespace medmon::mds2 {

const char* answer_name(Answer a) {
  switch (a) {
    case Answer::yes: return "yes";
    case Answer::no: return "no";
    case Answer::na: return "n.a.";
    case Answer::see_note: return "see-note";
    case Answer::blank: return "blank";
    case Answer::text: return "text";
  }
  return "blank";
}

const Question* Form::find(std::string_view id) const {
  for (auto& q : questions) if (q.id == id) return &q;
  return nullptr;
}

std::string collapse_ws(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    // A non-breaking space (U+00A0, UTF-8 C2 A0), as spreadsheets and web pages leave around an
    // answer, is a space like the ASCII ones: "\u00a0No" is the answer No, not text.
    bool nbsp = c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xA0;
    if (nbsp) ++i;
    if (nbsp || std::isspace(c)) { space = !out.empty(); continue; }
    if (space) { out.push_back(' '); space = false; }
    out.push_back(static_cast<char>(c));
  }
  return out;
}

std::string strip_html(std::string_view s) {
  if (s.find('<') == std::string_view::npos && s.find('&') == std::string_view::npos) return std::string(s);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == '<') {
      // Only treat it as a tag when it looks like one: "<p>", "</p>", "<br/>", "<a href=..>".
      size_t j = i + 1;
      if (j < s.size() && (std::isalpha(static_cast<unsigned char>(s[j])) || s[j] == '/' || s[j] == '!')) {
        size_t close = s.find('>', j);
        if (close != std::string_view::npos) {
          out.push_back(' ');
          i = close + 1;
          continue;
        }
      }
      out.push_back(c);
      ++i;
    } else if (c == '&') {
      static const std::pair<std::string_view, std::string_view> ents[] = {
          {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"},
          {"&apos;", "'"}, {"&nbsp;", " "}};
      bool done = false;
      for (auto& [e, r] : ents) {
        if (s.substr(i, e.size()) == e) { out.append(r); i += e.size(); done = true; break; }
      }
      if (!done) { out.push_back(c); ++i; }
    } else {
      out.push_back(c);
      ++i;
    }
  }
  return out;
}

namespace {
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return o;
}

// "na", "n/a", "n\a", "n-a", "n.a.", "n / a", "n. a." (lower case) at the start of l, ending at a word
// boundary: spellings of n.a. that must not read as the answer "n" (No). Their length, else 0.
size_t not_applicable_length(std::string_view l) {
  if (l.empty() || l[0] != 'n') return 0;
  size_t i = 1;
  while (i < l.size() && l[i] == ' ') ++i;
  bool sep = i < l.size() && (l[i] == '/' || l[i] == '\\' || l[i] == '-' || l[i] == '.');
  if (sep) {
    ++i;
    while (i < l.size() && l[i] == ' ') ++i;
  } else if (i != 1) {
    return 0;  // "n a": a space alone is no separator
  }
  if (i >= l.size() || l[i] != 'a') return 0;
  ++i;
  if (i < l.size() && l[i] == '.') ++i;
  return i == l.size() || !std::isalnum(static_cast<unsigned char>(l[i])) ? i : 0;
}
bool starts_not_applicable(std::string_view l) { return not_applicable_length(l) > 0; }

// True when an item of the list l (lower case) is the word `other` alone, a remark in parentheses
// aside: "yes, no", "yes and no", "yes & no", "yes; no", "yes-no", "yes (optional) / no (default)",
// the template's placeholder "yes, no, n/a, or see note". Items are separated by , ; & | / \ - and
// the words "or" and "and"; separators inside parentheses do not count. So "yes, no phi is stored"
// and "no - see note 2" hold no such item.
bool lists_word(std::string_view l, std::string_view other) {
  auto is_sep = [](char c) { return c == ',' || c == ';' || c == '&' || c == '|' || c == '/' || c == '\\' || c == '-'; };
  auto word_at = [&](size_t i, std::string_view w) {
    return l.compare(i, w.size(), w) == 0 && (i == 0 || l[i - 1] == ' ') && i + w.size() < l.size() &&
           l[i + w.size()] == ' ';
  };
  size_t i = 0;
  while (i < l.size()) {
    while (i < l.size() && (l[i] == ' ' || is_sep(l[i]))) ++i;
    if (word_at(i, "or")) { i += 2; continue; }
    if (word_at(i, "and")) { i += 3; continue; }
    if (size_t n = not_applicable_length(l.substr(i))) { i += n; continue; }  // "n/a" is no "n"
    // The item: up to the next separator outside parentheses, its parenthesised remarks dropped.
    std::string item;
    int depth = 0;
    for (; i < l.size(); ++i) {
      char c = l[i];
      if (c == '(') { ++depth; continue; }
      if (c == ')') { if (depth > 0) --depth; continue; }
      if (depth > 0) continue;
      if (is_sep(c) || word_at(i, "or") || word_at(i, "and")) break;
      item.push_back(c);
    }
    std::string t = collapse_ws(item);
    while (!t.empty() && (t.back() == '.' || t.back() == '!')) t.pop_back();
    if (t == other) return true;
  }
  return false;
}
}  // namespace

bool match_question_id(std::string_view s, std::string& id) {
  // ^(DOC|[A-Z]{4})-\d+(\.\d+)*
  size_t i = 0;
  if (s.substr(0, 4) == "DOC-") i = 3;
  else if (s.size() >= 5 && is_upper(s[0]) && is_upper(s[1]) && is_upper(s[2]) && is_upper(s[3]) && s[4] == '-') i = 4;
  else return false;
  ++i;  // '-'
  if (i >= s.size() || !is_digit(s[i])) return false;
  while (i < s.size() && is_digit(s[i])) ++i;
  while (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
    ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
  }
  // The id must end at a word boundary ("CONN-4 " or "CONN-4," not "CONN-4x"); "RAID-5)?" (the
  // end of a question wrapped onto its own line) is text, not an id.
  if (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '-' || s[i] == ')' || s[i] == '?'))
    return false;
  id.assign(s.substr(0, i));
  return true;
}

std::string canonical_id(std::string_view raw) {
  // Typo in the official HN 1-2019 form, copied into vendor files.
  if (raw.substr(0, 5) == "SHAD-") return "SAHD-" + std::string(raw.substr(5));
  if (raw.substr(0, 5) == "SBoM-") return "SBOM-" + std::string(raw.substr(5));
  return std::string(raw);
}

Answer normalise_answer(std::string_view text, std::string& detail) {
  std::string t = collapse_ws(text);
  detail = t;
  // Placeholders such as "__" or "____" mean the vendor left the cell empty.
  bool only_underscores = !t.empty() && std::all_of(t.begin(), t.end(), [](char c) { return c == '_'; });
  if (t.empty() || only_underscores) { detail.clear(); return Answer::blank; }
  std::string l = lower(t);
  auto word_is = [&](std::string_view w) {
    if (l.compare(0, w.size(), w) != 0) return false;
    return l.size() == w.size() || !std::isalnum(static_cast<unsigned char>(l[w.size()]));
  };
  if (word_is("see note") || word_is("see notes")) return Answer::see_note;
  if (word_is("not applicable") || starts_not_applicable(l)) return Answer::na;
  // The yes/no word that starts the answer, and its length.
  auto yes_no = [&](size_t at, bool& yes) -> size_t {
    std::string_view s = std::string_view(l).substr(at);
    auto word = [&](std::string_view w) {
      return s.substr(0, w.size()) == w && (s.size() == w.size() || !std::isalnum(static_cast<unsigned char>(s[w.size()])));
    };
    if (word("yes")) { yes = true; return 3; }
    if (word("no")) { yes = false; return 2; }
    if (word("y")) { yes = true; return 1; }
    if (word("n")) { yes = false; return 1; }
    return 0;
  };
  bool yes = false;
  size_t n = yes_no(0, yes);
  if (n == 0) return Answer::text;
  // "Y/N", "Yes or No", "No/Yes": both offered, neither given.
  size_t i = n;
  while (i < l.size() && l[i] == ' ') ++i;
  size_t sep = i;
  if (i < l.size() && (l[i] == '/' || l[i] == '\\' || l[i] == '|')) ++i;
  else if (l.compare(i, 3, "or ") == 0) i += 3;
  if (i > sep) {
    while (i < l.size() && l[i] == ' ') ++i;
    bool other = false;
    if (yes_no(i, other) && other != yes) return Answer::text;
  }
  // The opposite word as an item of a list ("Yes, No", "Yes and No", "Yes-No"): options offered, not
  // an answer. A one-letter answer ("Y; N") is matched by the other letter, a word by the other word,
  // so "Yes, N-1 redundancy" stays a yes.
  if (lists_word(l, n == 1 ? (yes ? "n" : "y") : (yes ? "no" : "yes"))) return Answer::text;
  return yes ? Answer::yes : Answer::no;
}

std::string excel_serial_to_date(std::string_view serial, bool date1904) {
  std::string s(serial);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) return {};
  if (v < 1 || v > 2958465) return {};  // 1900-01-01 .. 9999-12-31
  // Days since 1899-12-30 (Excel's 1900 leap-year bug is absorbed by this epoch for dates after
  // 1900-03-01, which every MDS2 release date is).
  long days = static_cast<long>(v) - 25569;  // to Unix epoch days
  if (date1904) days += 1462;  // the 1904 date system counts from 1904-01-01, 1462 days later
  // civil_from_days (H. Hinnant)
  long z = days + 719468;
  long era = (z >= 0 ? z : z - 146096) / 146097;
  long doe = z - era * 146097;
  long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long y = yoe + era * 400;
  long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long mp = (5 * doy + 2) / 153;
  long d = doy - (153 * mp + 2) / 5 + 1;
  long m = mp + (mp < 10 ? 3 : -9);
  if (m <= 2) ++y;
  char buf[72];  // room for three longs, which the compiler cannot rule out
  std::snprintf(buf, sizeof buf, "%04ld-%02ld-%02ld", y, m, d);
  return buf;
}

namespace {
const std::unordered_map<std::string_view, Mapping>& mapping_table() {
  static const std::unordered_map<std::string_view, Mapping> t = {
#include "policies/mds2/template_mapping.inc"
  };
  return t;
}

// The notes a text refers to: the numbers that follow "note" or "notes" ("See Note 5", "Notes 2 and
// 4", "Note 2, 5", "Note #3") -> {"Note 5"} ...; other numbers ("TLS 1.2", "port 443") are not refs.
// Keys already in `seen` are not added again.
void note_keys(std::string_view ref, std::vector<std::string>& keys, std::unordered_set<std::string>& seen) {
  std::string l = lower(ref);
  auto number_at = [&](size_t& i) {
    size_t j = i;
    while (j < l.size() && is_digit(l[j])) ++j;
    if (j == i) return false;
    std::string k = "Note " + l.substr(i, j - i);
    if (seen.insert(k).second) keys.push_back(std::move(k));
    i = j;
    return true;
  };
  auto spaces = [&](size_t& i) { while (i < l.size() && l[i] == ' ') ++i; };
  for (size_t at = l.find("note"); at != std::string::npos; at = l.find("note", at + 4)) {
    if (at > 0 && std::isalnum(static_cast<unsigned char>(l[at - 1]))) continue;  // "footnote"
    size_t i = at + 4;
    if (i < l.size() && l[i] == 's') ++i;
    while (i < l.size() && (l[i] == ' ' || l[i] == '#' || l[i] == ':')) ++i;
    if (!number_at(i)) continue;
    // More numbers of the same list: "2, 5", "2 and 4", "2 & 4", "2/4".
    for (;;) {
      size_t j = i;
      spaces(j);
      if (j < l.size() && (l[j] == ',' || l[j] == ';' || l[j] == '&' || l[j] == '/')) ++j;
      else if (l.compare(j, 4, "and ") == 0) j += 4;
      else if (l.compare(j, 3, "or ") == 0) j += 3;
      else break;
      spaces(j);
      if (!number_at(j)) break;
      i = j;
    }
  }
}
}  // namespace

const Mapping* template_mapping(std::string_view id) {
  auto& t = mapping_table();
  auto it = t.find(id);
  return it == t.end() ? nullptr : &it->second;
}

void finish_form(Form& f) {
  size_t real = 0;
  for (auto& q : f.questions) if (q.id.substr(0, 4) != "DOC-") ++real;
  if (real == 0) {
    throw ImportError(f.source_file + ": no HN 1-2019 question ids (such as CONN-4 or TXCF-2) found; "
                      "expected a sheet or lines keyed by ids matching ^(DOC|[A-Z]{4})-\\d+(\\.\\d+)*");
  }
  if (real < 100)
    f.warnings.push_back("only " + std::to_string(real) + " question ids found (the HN 1-2019 form has 225 plus 15 DOC "
                         "items); unanswered questions give null switches");
  // Nearly every answer blank: the answers were most likely not found (a layout the reader does not
  // know, answers on lines it could not tie to their question), not left unanswered.
  size_t blank = 0;
  for (auto& q : f.questions) blank += q.id.substr(0, 4) != "DOC-" && q.answer == Answer::blank;
  if (real >= 10 && blank * 10 >= real * 9)
    f.warnings.push_back(std::to_string(blank) + " of " + std::to_string(real) + " answers are blank: check that the file "
                         "holds the answers and that they were read (a question on one line and its answer on "
                         "another the reader could not tie to it reads as blank)");
  // Note texts are copied into the answers citing them, up to kMaxResolvedNotes in all: a note
  // cited by every question would otherwise multiply memory and the model's size. Past it an answer
  // keeps its note_ref and the notes are read under mds2.notes.
  constexpr size_t kMaxResolvedNotes = 4u << 20;
  // One note is copied into an answer up to this size; a longer one stays in mds2.notes only.
  constexpr size_t kMaxNoteCopy = 64u << 10;
  std::unordered_set<std::string> long_notes;
  size_t resolved = 0;
  bool over = false;
  for (auto& q : f.questions) {
    std::string nd;
    Answer na = normalise_answer(q.note_ref, nd);
    q.note_ref = (na == Answer::blank) ? std::string() : nd;
    std::string text = q.note;  // free text the row carried beside the answer
    std::vector<std::string> keys;
    std::unordered_set<std::string> seen_keys;
    note_keys(q.note_ref, keys, seen_keys);
    note_keys(q.detail, keys, seen_keys);
    for (auto& k : keys) {
      if (over) break;
      auto it = f.notes.find(k);
      if (it == f.notes.end() || it->second == q.note) continue;
      if (it->second.size() > kMaxNoteCopy) {
        if (long_notes.insert(k).second)
          f.warnings.push_back(k + " is longer than " + std::to_string(kMaxNoteCopy >> 10) + " KiB: the answers citing "
                               "it name it (note_ref) and mds2.notes holds its text");
        continue;
      }
      if (resolved + it->second.size() > kMaxResolvedNotes) {
        over = true;
        f.warnings.push_back("more than " + std::to_string(kMaxResolvedNotes >> 20) + " MiB of note text cited; "
                             "from " + q.raw_id + " on, answers name their notes (note_ref) and mds2.notes holds the text");
        break;
      }
      resolved += it->second.size();
      if (!text.empty()) text += " ";
      text += it->second;
    }
    q.note = std::move(text);
    // Vendor copies often drop columns E-G; they belong to the template, so take them from it.
    if (q.iec_tr_80001_2_2.empty() && q.nist_800_53.empty() && q.iso_27002.empty()) {
      if (auto* m = template_mapping(q.id)) {
        q.iec_tr_80001_2_2 = m->iec; q.nist_800_53 = m->nist; q.iso_27002 = m->iso;
      }
    }
  }
  // Duplicate ids (a file pasted twice, a typo'd id equal to a real one): first one wins.
  std::vector<Question> uniq;
  uniq.reserve(f.questions.size());
  std::unordered_set<std::string> seen;
  size_t dups = 0;
  for (auto& q : f.questions) {
    if (!seen.insert(q.id).second) {
      // The first few are named; a file of thousands would bury every other message.
      if (++dups <= 10) f.warnings.push_back("duplicate question id " + q.raw_id + " ignored");
      continue;
    }
    uniq.push_back(std::move(q));
  }
  if (dups > 10) f.warnings.push_back(std::to_string(dups - 10) + " more duplicate question ids ignored");
  f.questions = std::move(uniq);
}

std::string detail::read_file(const std::string& path, size_t max_bytes, const std::string& unreadable) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImportError(path + ": " + unreadable);
  auto too_large = [&] { return ImportError(path + ": larger than " + std::to_string(max_bytes >> 20) + " MiB; not an MDS2 form"); };
  // A regular file is measured before it is read; anything else (a pipe, /dev/zero) is read up to
  // one byte past the cap.
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ImportError(path + ": a directory, not a file");
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) > max_bytes && !ec)
    throw too_large();
  std::string data;
  std::vector<char> buf(1 << 16);
  while (in) {
    size_t room = max_bytes - data.size();  // then one byte more, to see the file is larger
    in.read(buf.data(), static_cast<std::streamsize>(room >= buf.size() ? buf.size() : room + 1));
    data.append(buf.data(), static_cast<size_t>(in.gcount()));
    if (data.size() > max_bytes) throw too_large();
  }
  return data;
}

void detail::append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;  // no scalar value
  medmon::append_utf8(out, cp);
}

size_t detail::utf8_error_at(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) { ++i; continue; }
    size_t n = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : 0;
    if (n == 0 || c > 0xF4 || i + n >= s.size()) return i;
    uint32_t cp = c & (0x3F >> n);
    for (size_t k = 1; k <= n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (d & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8.
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += n + 1;
  }
  return std::string_view::npos;
}

bool detail::is_utf8(std::string_view s) { return utf8_error_at(s) == std::string_view::npos; }

namespace {
// Windows-1252 to UTF-8. 0x80-0x9F of Windows-1252; the five bytes it leaves undefined read as U+FFFD.
void append_cp1252(std::string& utf8, std::string_view data) {
  static const uint16_t c1[32] = {0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                  0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
                                  0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                  0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178};
  for (char ch : data) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x80) utf8.push_back(ch);
    else detail::append_utf8(utf8, c < 0xA0 ? c1[c - 0x80] : c);
  }
}
}  // namespace

std::string detail::where_not_utf8(std::string_view data) {
  size_t at = utf8_error_at(data);
  if (at == std::string_view::npos) return {};
  size_t line = 1 + static_cast<size_t>(std::count(data.begin(), data.begin() + static_cast<long>(at), '\n'));
  size_t bol = at == 0 ? std::string_view::npos : data.rfind('\n', at - 1);
  bol = bol == std::string_view::npos ? 0 : bol + 1;
  size_t eol = data.find('\n', at);
  if (eol == std::string_view::npos) eol = data.size();
  if (eol > at + 1 && data[eol - 1] == '\r') --eol;  // CR LF ends the line
  // A few characters either side, as they read in Windows-1252, control characters as '?'.
  size_t from = at - std::min<size_t>(at - bol, 24), to = std::min(eol, at + 25);
  auto shown = [](std::string_view bytes) {
    std::string o;
    append_cp1252(o, bytes);
    for (auto& c : o) if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
    return o;
  };
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(data[at]));
  return "line " + std::to_string(line) + ", byte " + hex + " (\"" + shown(data.substr(at, 1)) + "\" in \"" +
         (from > bol ? "..." : "") + shown(data.substr(from, to - from)) + (to < eol ? "..." : "") + "\")";
}

bool detail::decode_text(std::string_view data, std::string& utf8, std::string& how) {
  // UTF-32 with its byte-order mark, whose little-endian mark begins as UTF-16's: taken for UTF-16,
  // every other character was a NUL and the form held no question id.
  bool le32 = data.substr(0, 4) == std::string_view("\xFF\xFE\0\0", 4);
  if (le32 || data.substr(0, 4) == std::string_view("\0\0\xFE\xFF", 4)) {
    how = "utf-32";
    utf8.clear();
    utf8.reserve(data.size() / 4);
    for (size_t i = 4; i + 3 < data.size(); i += 4) {
      auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(data[i + (le32 ? 3 - k : k)])); };
      append_utf8(utf8, b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3));  // past U+10FFFF: U+FFFD
    }
    return true;
  }
  bool le = data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0xFF && static_cast<unsigned char>(data[1]) == 0xFE;
  bool be = data.size() >= 2 && static_cast<unsigned char>(data[0]) == 0xFE && static_cast<unsigned char>(data[1]) == 0xFF;
  size_t from = 2;  // after the byte-order mark
  how = "utf-16";
  if (!le && !be) {
    // UTF-16 without its byte-order mark: a form's text is nearly all ASCII, so every other byte is
    // NUL (the odd ones little-endian, the even ones big-endian). Read as UTF-8 it held no question id.
    size_t n = std::min<size_t>(data.size(), 4096) & ~size_t(1), odd = 0, even = 0;
    for (size_t i = 0; i < n; i += 2) {
      even += data[i] == '\0';
      odd += data[i + 1] == '\0';
    }
    size_t pairs = n / 2;
    if (pairs >= 8 && odd * 10 >= pairs * 9 && even * 10 <= pairs) le = true;
    else if (pairs >= 8 && even * 10 >= pairs * 9 && odd * 10 <= pairs) be = true;
    if (le || be) {
      from = 0;
      how = le ? "utf-16le without a byte-order mark" : "utf-16be without a byte-order mark";
    }
  }
  utf8.clear();
  if (le || be) {
    utf8.reserve(data.size());
    auto unit = [&](size_t i) {
      unsigned a = static_cast<unsigned char>(data[i]), b = static_cast<unsigned char>(data[i + 1]);
      return le ? (b << 8 | a) : (a << 8 | b);
    };
    for (size_t i = from; i + 1 < data.size(); i += 2) {
      uint32_t u = unit(i);
      if (u >= 0xD800 && u <= 0xDBFF && i + 3 < data.size()) {
        uint32_t lo = unit(i + 2);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
          append_utf8(utf8, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
          i += 2;
          continue;
        }
      }
      append_utf8(utf8, u);  // a lone surrogate becomes U+FFFD
    }
    return true;
  }
  if (is_utf8(data)) return false;
  how = "windows-1252";
  utf8.reserve(data.size() + data.size() / 8);
  append_cp1252(utf8, data);
  return true;
}

std::string detail::text_format_hint(const std::string& path) {
  auto dot = path.rfind('.');
  std::string ext = dot == std::string::npos || path.find('/', dot) != std::string::npos ? "" : path.substr(dot + 1);
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "csv") return "csv";
  if (ext == "tsv" || ext == "tab") return "tsv";
  if (ext == "md" || ext == "markdown") return "markdown";
  return "";
}

bool is_stream(const std::string& path) {
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  return !ec && std::filesystem::exists(st) && !std::filesystem::is_regular_file(st) && !std::filesystem::is_directory(st);
}

std::string read_form_stream(const std::string& path) {
  // Up to the cap of the form's kind, known from its first bytes: 256 MiB for a PDF, 64 MiB for
  // the others (a text form's cap; a workbook is far smaller). /dev/zero stops at 64 MiB.
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImportError(path + ": cannot open file");
  std::string data;
  std::vector<char> buf(1 << 16);
  size_t cap = 64u << 20;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    data.append(buf.data(), static_cast<size_t>(in.gcount()));
    if (data.size() >= 4 && data.compare(0, 4, "%PDF") == 0) cap = 256u << 20;
    if (data.size() > cap)
      throw ImportError(path + ": larger than " + std::to_string(cap >> 20) + " MiB; not an MDS2 form");
  }
  return data;
}

Form read_any_buffer(std::string_view data, const std::string& source) {
  std::string_view m = data.substr(0, 4);
  if (m == std::string_view("PK\x03\x04", 4) || m == std::string_view("PK\x05\x06", 4)) return read_xlsx_buffer(data, source);
  if (m == "%PDF") return read_pdf_buffer(data, source);
  if (m.size() >= 2 && static_cast<unsigned char>(m[0]) == 0xD0 && static_cast<unsigned char>(m[1]) == 0xCF)
    throw ImportError(source + ": legacy binary .xls workbook; save it as .xlsx (or CSV) and import that");
  if (data.empty()) throw ImportError(source + ": an empty file; not an MDS2 form");
  if (data.size() > (64u << 20)) throw ImportError(source + ": larger than 64 MiB; not an MDS2 form");
  return detail::named_errors(source, [&] {
    Form f = read_text_buffer(data, detail::text_format_hint(source), source);
    f.source_file = source;
    finish_form(f);
    return f;
  });
}

Form read_any(const std::string& path) {
  // A pipe (/dev/stdin, a shell's <(...)) is read once: opened again for each look (the magic
  // bytes, then the reader) it gave the reader the form without the bytes the first look took.
  if (is_stream(path)) {
    std::string data = read_form_stream(path);
    return read_any_buffer(data, path);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ImportError(path + ": cannot open file");
  char magic[5] = {};
  in.read(magic, 4);
  std::string m(magic, static_cast<size_t>(in.gcount()));
  // A zip: its first entry's header, or the end record alone (an empty zip, which is a broken XLSX).
  if (m.size() >= 4 && (m.compare(0, 4, "PK\x03\x04") == 0 || m.compare(0, 4, "PK\x05\x06") == 0)) return read_xlsx(path);
  if (m.size() >= 4 && m == "%PDF") return read_pdf(path);
  if (m.size() >= 4 && static_cast<unsigned char>(m[0]) == 0xD0 && static_cast<unsigned char>(m[1]) == 0xCF)
    throw ImportError(path + ": legacy binary .xls workbook; save it as .xlsx (or CSV) and import that");
  if (m.empty()) throw ImportError(path + ": an empty file; not an MDS2 form");
  std::string ext = path.size() >= 5 ? path.substr(path.size() - 5) : std::string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext != ".xlsx" && ext != ".xlsm") return read_text(path);
  // An .xlsx that is no zip: a CSV saved under that name is read; else what is wrong is that it is
  // no workbook, not that its "text" holds no question ids.
  try {
    return read_text(path);
  } catch (const ImportError& e) {
    std::string why = e.what();
    if (why.compare(0, path.size() + 2, path + ": ") == 0) why.erase(0, path.size() + 2);
    throw ImportError(path + ": named " + ext + " but not a zip file, which an Excel workbook is (the file is damaged or "
                      "not a workbook); read as text: " + why);
  }
}

}  // namespace medmon::mds2
