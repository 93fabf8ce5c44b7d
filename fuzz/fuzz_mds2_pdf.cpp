// libFuzzer target: the MDS2 PDF importer (poppler text extraction in physical layout, then the
// keyed text reader) on a PDF image in memory, then the model renderer.
#include "fuzz/mds2_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = medmon::mds2::read_pdf_buffer(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.pdf");
    mds2_fuzz::render_and_reparse(f);
  } catch (const medmon::mds2::ImportError&) {
  }
  return 0;
}
