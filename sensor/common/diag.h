#pragma once
// Diagnostics on standard error that cannot throw.
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

namespace medmon {

// fmt::print throws when standard error is gone (a closed pipe, `2>&1 | head`): a message
// nobody can read must not turn the run's exit code into a crash (std::terminate).
template <typename... T>
void print_err(fmt::format_string<T...> f, T&&... args) noexcept {
  try {
    std::string s = fmt::format(f, std::forward<T>(args)...);
    std::fwrite(s.data(), 1, s.size(), stderr);
  } catch (...) {
  }
}

// Flushes standard output. When it cannot be written (a reader that closed the pipe, `| head`;
// a full disk) says what was lost and returns false; the caller exits 3, as analyze does.
inline bool flush_stdout(const char* what) noexcept {
  // errno is not cleared first: when an earlier write failed (the stream's error flag is set and
  // nothing is left to flush), it still holds that write's reason.
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
  int e = errno ? errno : EIO;
  print_err("medmon: cannot write {}: standard output: {}\n", what, std::strerror(e));
  return false;
}

}  // namespace medmon
