// libFuzzer target: the MDS2 text importers (CSV, TSV, Markdown, plain text; HTML in cells,
// notes, serial dates) and the form finishing step, then the model renderer. Byte 0 picks the
// format hint the file extension would give (none: sniffed from the content).
#include "fuzz/mds2_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kHints[] = {"", "csv", "tsv", "markdown", "text"};
  std::string_view hint = kHints[data[0] % std::size(kHints)];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    auto f = medmon::mds2::read_text_buffer(text, hint, "fuzz.txt");
    medmon::mds2::finish_form(f);
    mds2_fuzz::render_and_reparse(f);
  } catch (const medmon::mds2::ImportError&) {
  }
  return 0;
}
