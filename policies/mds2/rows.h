#pragma once
// Internal: turns one row of cells (from any format) into a Question or a note.
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "policies/mds2/mds2_form.h"

namespace medmon::mds2::detail {

// Text one cell of a form may hold (a line of a text form, a row or note over its wrapped lines):
// the longest cells of a real form, its notes, hold a few KiB.
constexpr size_t kMaxCellText = 1u << 20;

// Column positions taken from the form's header row ("Question ID", "Question", ...); -1 = absent.
struct Columns {
  int id = -1, question = -1, answer = -1, note = -1, iec = -1, nist = -1, iso = -1;
  bool valid() const { return id >= 0; }
};

// Recognises the header row; returns true and fills cols when `cells` is one.
bool header_columns(const std::vector<std::string>& cells, Columns& cols);
// Adds the row to the form when it is keyed by a question id or a note number. With cols the
// cells are positional; without, fields after the id are classified by their shape (used for
// PDF text and loose text where blank cells vanish).
void add_row(Form& f, std::vector<std::string> cells, const Columns* cols);
// The question id add_row keys the row by ("DOC-7" for "DOC-7: Release date"); empty for another row.
std::string row_question_id(const std::vector<std::string>& cells);
// RFC 4180 records; quoted fields may hold delimiters and newlines. With record_lines, the line
// (1-based) each record starts on, which a quoted newline makes differ from the record's number.
std::vector<std::vector<std::string>> parse_delimited(std::string_view text, char delim,
                                                      std::vector<size_t>* record_lines = nullptr);
// The bytes of an import file. ImportError "<path>: <unreadable>" when it cannot be opened,
// "<path>: larger than N MiB; not an MDS2 form" past max_bytes (checked before reading).
std::string read_file(const std::string& path, size_t max_bytes, const std::string& unreadable);
// Runs an importer so that whatever escapes it names the file: running out of memory (or any other
// library exception) on a hostile file becomes an ImportError "<source>: ...".
template <class Read>
auto named_errors(const std::string& source, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const ImportError&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw ImportError(source + ": out of memory while reading it; not an MDS2 form");
  } catch (const std::exception& e) {
    throw ImportError(source + ": cannot be read (" + e.what() + ")");
  }
}
// Wall-clock and CPU seconds a PDF's text extraction may take (read_pdf); past it the import is
// refused. A variable so tests can shorten it.
extern unsigned pdf_text_seconds;
// Runs fn (the PDF module's medmon_pdf_text) on data in a child process ended after `seconds`, and
// returns its status with its text. ImportError "<source>: ..." when the child was ended by a limit
// or killed; a child that failed otherwise is PdfText::unreadable.
using PdfTextFn = int (*)(const char*, size_t, std::string*);
int extract_pdf_text_bounded(PdfTextFn fn, std::string_view data, const std::string& source, unsigned seconds,
                             std::string& text);
// Text files come in the encodings spreadsheets write: UTF-16 and UTF-32 with a byte-order mark are decoded,
// and text that is not valid UTF-8 is read as Windows-1252 (Excel's CSV on Windows; Latin-1 is the
// same in its printable range). Returns true, with the UTF-8 in `utf8` and what was done in `how`
// ("utf-16", "utf-32", "windows-1252"), when the text was converted; false when it was UTF-8 already.
bool decode_text(std::string_view data, std::string& utf8, std::string& how);
// The text format a file's extension names ("csv", "tsv", "markdown"); empty: sniffed from the text.
std::string text_format_hint(const std::string& path);
// True when s is well-formed UTF-8.
bool is_utf8(std::string_view s);
// The offset of the first byte of s that is not (part of) well-formed UTF-8; npos when none is.
size_t utf8_error_at(std::string_view s);
// Where text read as Windows-1252 first is no UTF-8, for a warning: `line 3, byte 0x96 ("–" in
// "1024–65535,tcp")`; empty when it is UTF-8.
std::string where_not_utf8(std::string_view data);
// Appends code point cp as UTF-8.
void append_utf8(std::string& out, uint32_t cp);
// Raises ImportError when the text is from an edition other than HN 1-2019.
void check_edition(const Form& f, std::string_view all_text);

}  // namespace medmon::mds2::detail
