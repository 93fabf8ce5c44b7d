// MDS2 from PDF: the text of the pages (pdf_text module, loaded on first use), then the keyed
// text reader.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "policies/mds2/mds2_form.h"
#include "policies/mds2/pdf_text.h"
#include "policies/mds2/rows.h"

// Programs that link pdf_text.cpp itself (the fuzz target) call it directly.
extern "C" int medmon_pdf_text(const char* data, size_t size, std::string* text) __attribute__((weak));

namespace medmon::mds2 {

namespace {

using PdfTextFn = int (*)(const char*, size_t, std::string*);
constexpr const char* kModule = "medmon-pdf.so";

std::string self_dir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/') + 1);
}

// Where the module is looked for: $MEDMON_PDF_MODULE, beside the executable, ../lib/medmon/
// beside it, then where the build put it.
PdfTextFn load(std::string& why) {
  if (&::medmon_pdf_text) return &::medmon_pdf_text;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("MEDMON_PDF_MODULE"); env && *env) candidates.emplace_back(env);
  std::string dir = self_dir();
  if (!dir.empty()) {
    candidates.push_back(dir + kModule);
    candidates.push_back(dir + "../lib/medmon/" + kModule);
  }
#ifdef MEDMON_PDF_MODULE_BUILT
  candidates.emplace_back(MEDMON_PDF_MODULE_BUILT);
#endif
  for (auto& c : candidates) {
    if (access(c.c_str(), R_OK) != 0) continue;
    void* h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) { why = dlerror(); continue; }
    if (auto fn = reinterpret_cast<PdfTextFn>(dlsym(h, "medmon_pdf_text"))) return fn;
    why = c + ": no medmon_pdf_text";
  }
  if (why.empty()) why = std::string(kModule) + " not found beside the medmon executable";
  return nullptr;
}

PdfTextFn module(std::string& why) {
  static std::once_flag once;
  static PdfTextFn fn = nullptr;
  static std::string error;
  std::call_once(once, [] { fn = load(error); });
  why = error;
  return fn;
}

Form read_pdf_text(std::string_view data, const std::string& source) {
  std::string why;
  PdfTextFn fn = module(why);
  if (!fn) throw ImportError(source + ": PDF import unavailable (" + why + ")");
  std::string text;
  switch (static_cast<PdfText>(fn(data.data(), data.size(), &text))) {
    case PdfText::ok: break;
    case PdfText::locked: throw ImportError(source + ": PDF is password protected");
    case PdfText::too_many_pages:
      throw ImportError(source + ": more than " + std::to_string(kMaxPdfPages) + " pages; not an MDS2 form");
    default: throw ImportError(source + ": not a readable PDF");
  }
  Form f = read_text_buffer(text, "text", source);
  f.source_file = source;
  f.source_format = "pdf";
  finish_form(f);
  return f;
}

}  // namespace

Form read_pdf(const std::string& path) {
  // MDS2 forms are a few MiB; a file far past that is not one.
  return detail::named_errors(path, [&] { return read_pdf_text(detail::read_file(path, 256u << 20, "not a readable PDF"), path); });
}

Form read_pdf_buffer(std::string_view data, const std::string& source) {
  return detail::named_errors(source, [&] { return read_pdf_text(data, source); });
}

}  // namespace medmon::mds2
