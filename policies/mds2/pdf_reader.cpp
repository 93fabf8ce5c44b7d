// MDS2 from PDF: the text of the pages (pdf_text module, loaded on first use), then the keyed
// text reader.
#include <dlfcn.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
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

unsigned detail::pdf_text_seconds = 30;

namespace {

using detail::PdfTextFn;
constexpr size_t kMaxPdfText = 256u << 20;
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

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

// poppler's physical layout takes time quadratic in the glyphs of a line: a PDF of a few hundred
// KiB can hold it for hours. The extraction runs in a child process that an alarm and a CPU limit
// end after `seconds`; the text comes back through a pipe (a status byte, then the text).
int detail::extract_pdf_text_bounded(PdfTextFn fn, std::string_view data, const std::string& source, unsigned seconds,
                                     std::string& text) {
  int fds[2];
  if (pipe(fds) != 0) throw ImportError(source + ": cannot start the PDF text extraction (pipe)");
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw ImportError(source + ": cannot start the PDF text extraction (fork)");
  }
  if (pid == 0) {
    close(fds[0]);
    signal(SIGALRM, SIG_DFL);
    signal(SIGXCPU, SIG_DFL);
    alarm(seconds);
    rlimit cpu{seconds, seconds + 1};
    setrlimit(RLIMIT_CPU, &cpu);
    std::string out;
    char status = static_cast<char>(fn(data.data(), data.size(), &out));
    bool ok = write_all(fds[1], &status, 1) && write_all(fds[1], out.data(), out.size());
    _exit(ok ? 0 : 1);  // no destructors, no stdio flush: they belong to the parent
  }
  close(fds[1]);
  std::string got;
  char buf[1 << 16];
  bool too_long = false;
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    if (got.size() > kMaxPdfText) { too_long = true; kill(pid, SIGKILL); break; }
  }
  close(fds[0]);
  int st = 0;
  rusage ru{};
  while (wait4(pid, &st, 0, &ru) < 0 && errno == EINTR) {}
  if (too_long)
    throw ImportError(source + ": the text of the PDF is longer than " + std::to_string(kMaxPdfText >> 20) +
                      " MiB; not an MDS2 form");
  if (WIFSIGNALED(st)) {
    // The time limits end the child with SIGALRM (wall clock), SIGXCPU (CPU), or SIGKILL past the
    // CPU limit's last second. Any other SIGKILL is not ours: the kernel's (or a memory cgroup's)
    // out-of-memory killer ends the largest process so, and the PDF is then not slow but too big.
    int sig = WTERMSIG(st);
    long cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec;
    if (sig == SIGALRM || sig == SIGXCPU || (sig == SIGKILL && cpu >= static_cast<long>(seconds)))
      throw ImportError(source + ": PDF text extraction took longer than " + std::to_string(seconds) +
                        " s; export the form as XLSX or CSV and import that");
    if (sig == SIGKILL)
      throw ImportError(source + ": PDF text extraction was killed (SIGKILL) after " + std::to_string(cpu) +
                        " s of CPU time, holding " + std::to_string(ru.ru_maxrss >> 10) +
                        " MiB: the system ends a process so when memory runs out; export the form as XLSX or CSV "
                        "and import that");
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || got.empty()) return static_cast<int>(PdfText::unreadable);
  text.assign(got, 1, std::string::npos);
  return static_cast<unsigned char>(got[0]);
}

namespace {

Form read_pdf_text(std::string_view data, const std::string& source) {
  std::string why;
  PdfTextFn fn = module(why);
  if (!fn) throw ImportError(source + ": PDF import unavailable (" + why + ")");
  std::string text;
  // A program that links the extraction itself (the fuzz target) runs it in process, so its
  // coverage is seen; the fuzzer bounds the time.
  int rc = &::medmon_pdf_text ? fn(data.data(), data.size(), &text)
                              : detail::extract_pdf_text_bounded(fn, data, source, detail::pdf_text_seconds, text);
  switch (static_cast<PdfText>(rc)) {
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
