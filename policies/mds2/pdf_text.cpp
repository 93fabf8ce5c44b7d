// The loadable PDF text module: poppler's text extraction, nothing medmon-specific.
#include "policies/mds2/pdf_text.h"

#include <climits>
#include <memory>
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-page.h>

namespace {
// poppler prints parse errors of damaged files on stderr; the import reports its own message.
void quiet(const std::string&, void*) {}
}  // namespace

extern "C" int medmon_pdf_text(const char* data, size_t size, std::string* text) {
  using medmon::mds2::PdfText;
  try {
    poppler::set_debug_error_function(quiet, nullptr);
    if (size > INT_MAX) return static_cast<int>(PdfText::unreadable);
    std::unique_ptr<poppler::document> doc(poppler::document::load_from_raw_data(data, static_cast<int>(size)));
    if (!doc) return static_cast<int>(PdfText::unreadable);
    if (doc->is_locked()) return static_cast<int>(PdfText::locked);
    int pages = doc->pages();
    if (pages > medmon::mds2::kMaxPdfPages) return static_cast<int>(PdfText::too_many_pages);
    text->clear();
    for (int i = 0; i < pages; ++i) {
      std::unique_ptr<poppler::page> p(doc->create_page(i));
      if (!p) continue;
      auto bytes = p->text(poppler::rectf(), poppler::page::physical_layout).to_utf8();
      text->append(bytes.data(), bytes.size());
      text->push_back('\n');
    }
    return static_cast<int>(PdfText::ok);
  } catch (...) {
    return static_cast<int>(PdfText::unreadable);
  }
}
