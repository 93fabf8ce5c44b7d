// MDS2 from PDF: poppler's text extraction in physical layout (table columns stay apart as runs
// of spaces), then the keyed text reader.
#include <cstdint>
#include <memory>
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

#include "policies/mds2/mds2_form.h"

namespace medmon::mds2 {

namespace {
// poppler prints parse errors of damaged files on stderr; the import reports its own message.
void quiet(const std::string&, void*) {}

Form read_pdf_doc(std::unique_ptr<poppler::document> doc, const std::string& path) {
  if (!doc) throw ImportError(path + ": not a readable PDF");
  if (doc->is_locked()) throw ImportError(path + ": PDF is password protected");
  std::string text;
  int pages = doc->pages();
  if (pages > 2000) throw ImportError(path + ": more than 2000 pages; not an MDS2 form");
  for (int i = 0; i < pages; ++i) {
    std::unique_ptr<poppler::page> p(doc->create_page(i));
    if (!p) continue;
    auto bytes = p->text(poppler::rectf(), poppler::page::physical_layout).to_utf8();
    text.append(bytes.data(), bytes.size());
    text.push_back('\n');
  }
  Form f = read_text_buffer(text, "text", path);
  f.source_file = path;
  f.source_format = "pdf";
  finish_form(f);
  return f;
}
}  // namespace

Form read_pdf(const std::string& path) {
  poppler::set_debug_error_function(quiet, nullptr);
  return read_pdf_doc(std::unique_ptr<poppler::document>(poppler::document::load_from_file(path)), path);
}

Form read_pdf_buffer(std::string_view data, const std::string& source) {
  poppler::set_debug_error_function(quiet, nullptr);
  if (data.size() > INT32_MAX) throw ImportError(source + ": not a readable PDF");
  return read_pdf_doc(std::unique_ptr<poppler::document>(poppler::document::load_from_raw_data(
                          data.data(), static_cast<int>(data.size()))), source);
}

}  // namespace medmon::mds2
