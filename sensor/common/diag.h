#pragma once
// Diagnostics on standard error that cannot throw.
#include <fmt/format.h>

#include <cstdio>
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

}  // namespace medmon
