#pragma once
// Text of a PDF, in physical layout (table columns stay apart as runs of spaces). Implemented in
// its own loadable module (medmon-pdf.so) because poppler and the libraries it pulls in cost
// every medmon start several milliseconds of symbol binding, and only an MDS2 import of a PDF
// needs them; pdf_reader.cpp loads the module on first use.
#include <cstddef>
#include <string>

namespace medmon::mds2 {

enum class PdfText : int { ok = 0, unreadable = 1, locked = 2, too_many_pages = 3 };
constexpr int kMaxPdfPages = 2000;

}  // namespace medmon::mds2

// The module's one entry point (C linkage: looked up by name). Fills `text` on success.
extern "C" int medmon_pdf_text(const char* data, size_t size, std::string* text);
