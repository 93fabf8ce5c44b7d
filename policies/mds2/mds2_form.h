#pragma once
// The MDS2 form (ANSI/NEMA HN 1-2019) as read from a vendor's file, whatever its format.
// Answers are normalised (yes/no/n.a./see-note/blank, or free text for the DOC header) and keep
// the vendor's own wording as `detail`. Every importer fills the same Form, so XLSX, CSV, Markdown
// and PDF copies of one declaration produce the same model.
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace medmon::mds2 {

enum class Answer { yes, no, na, see_note, blank, text };
const char* answer_name(Answer a);  // "yes", "no", "n.a.", "see-note", "blank", "text"

struct Question {
  std::string id;        // canonical id, e.g. "SAHD-15" (the form's "SHAD-15" typo is fixed)
  std::string raw_id;    // as written in the file
  std::string question;  // question text, whitespace collapsed
  Answer answer = Answer::blank;
  std::string detail;    // the answer as written, whitespace collapsed
  std::string note_ref;  // column D as written ("See Note 5"), blank placeholders dropped
  std::string note;      // resolved note text(s)
  // The form's own mapping (columns E-G of the NEMA workbook); empty when the form leaves it blank.
  std::string iec_tr_80001_2_2, nist_800_53, iso_27002;
};

struct Form {
  std::string edition = "HN 1-2019";
  std::string source_file;
  std::string source_format;  // xlsx, csv, tsv, text, markdown, pdf
  std::string sheet;          // the workbook sheet read (XLSX); empty for other formats
  std::vector<Question> questions;            // in form order
  std::map<std::string, std::string> notes;   // "Note 5" -> text
  std::vector<std::string> warnings;

  const Question* find(std::string_view id) const;
};

// Thrown for files that cannot be read as an HN 1-2019 form (I/O errors, other editions).
struct ImportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Normalises one answer cell.
Answer normalise_answer(std::string_view text, std::string& detail);
// True when s starts with a question id (DOC-1, CONN-1.2.1, SHAD-15); sets id to the matched text.
bool match_question_id(std::string_view s, std::string& id);
// The form's typos mapped to the id a policy should use (SHAD-15 -> SAHD-15).
std::string canonical_id(std::string_view raw);
// Excel serial day number -> YYYY-MM-DD (1900 date system, or 1904 when the workbook says
// date1904); empty when not a plausible date.
std::string excel_serial_to_date(std::string_view serial, bool date1904 = false);
// Removes HTML tags and decodes the common entities; block tags become spaces.
std::string strip_html(std::string_view s);
// Trims and collapses runs of whitespace to one space.
std::string collapse_ws(std::string_view s);

// Importers. All throw ImportError with a message a person can act on.
Form read_xlsx(const std::string& path);
Form read_text(const std::string& path);            // CSV, TSV, plain text, Markdown
Form read_text_buffer(std::string_view text, std::string_view format_hint, std::string_view source = {});
Form read_pdf(const std::string& path);
// The same from memory (`source` names the data in messages); `data` must outlive the call.
Form read_xlsx_buffer(std::string_view data, const std::string& source);
Form read_pdf_buffer(std::string_view data, const std::string& source);
// Picks the importer by content (zip / %PDF / text). A path that is no regular file (a pipe,
// /dev/stdin) is read once, with read_form_stream, then read as read_any_buffer reads it.
Form read_any(const std::string& path);
Form read_any_buffer(std::string_view data, const std::string& source);
// True when path names something to read that is neither a regular file nor a directory (a pipe).
bool is_stream(const std::string& path);
// The bytes of such a form, up to the largest form's cap.
std::string read_form_stream(const std::string& path);

// After the rows are read: resolves note references, fills the mapping from the NEMA template
// where the file has none, and rejects files with no question ids.
void finish_form(Form& f);

// The form's own E-G mapping for a question id (from the NEMA HN 1-2019 workbook); nullptr if none.
struct Mapping { const char* iec; const char* nist; const char* iso; };
const Mapping* template_mapping(std::string_view id);

// A vendor port table row (`--ports ports.csv`).
struct PortEntry {
  uint16_t port = 0;
  uint16_t port_last = 0;  // the range's last port ("49152-65535"); equal to port for one port
  std::string protocol;   // tcp / udp
  std::string direction;  // inbound / outbound / both
  std::string service;
  bool default_enabled = true;
  int line = 0;
};
// `warnings` gets what a person should check (a table read as Windows-1252, and where).
std::vector<PortEntry> read_ports_csv(const std::string& path, std::vector<std::string>* warnings = nullptr);

// The machine-derived switches of a device model: each follows from one MDS2 question.
// value = (answer == yes), or (answer == no) when `inverted`; unknown for n.a./blank/see-note.
struct Switch {
  const char* name;      // key under mds2_derived
  const char* question;  // MDS2 id it cites
  bool inverted;
};
const std::vector<Switch>& derived_switches();
const Switch* find_switch(std::string_view name);

struct ImportOptions {
  std::string model_id;  // overrides the id derived from DOC-3 / DOC-2
  std::string sha256;  // of the form file
};
// The model id from the form: DOC-3 (the model names), else DOC-2, as a slug.
std::string default_model_id(const Form& f);
// Renders a device model YAML (schema medmon.model/v1) from a form and optional port table.
std::string render_model(const Form& f, const std::vector<PortEntry>& ports, const ImportOptions& opt);

}  // namespace medmon::mds2
