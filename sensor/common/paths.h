#pragma once
// Checks on the files a command writes, made before it writes any of them.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

namespace medmon {

// Whether an output path names an existing input file (the same inode, by any name): writing
// there would destroy the input while it is read.
inline bool same_existing_file(const std::string& input, const std::string& output) {
  std::error_code ec;
  return std::filesystem::equivalent(input, output, ec) && !ec;
}

// Whether an output path is standard output: "-", or another name of what descriptor 1 is open
// on (/dev/stdout, /dev/fd/1, the file the shell redirected it to, its pipe or terminal). A
// device that takes any number of writers (/dev/null) is nobody's stream.
inline bool names_standard_output(const std::string& path) {
  if (path == "-") return true;
  struct stat named, out;
  if (::stat(path.c_str(), &named) != 0 || ::fstat(STDOUT_FILENO, &out) != 0) return false;
  if (named.st_dev != out.st_dev || named.st_ino != out.st_ino) return false;
  return !S_ISCHR(named.st_mode) || ::isatty(STDOUT_FILENO);
}

// The path a symbolic link leads to, followed while the last part is a link (one that points
// where nothing exists yet included: opening the path creates the file there).
inline std::filesystem::path follow_links(std::filesystem::path p) {
  std::error_code ec;
  p = std::filesystem::absolute(p, ec);
  for (int hops = 0; hops < 40 && std::filesystem::is_symlink(std::filesystem::symlink_status(p, ec)); ++hops) {
    auto to = std::filesystem::read_symlink(p, ec);
    if (ec) break;
    p = to.is_absolute() ? to : p.parent_path() / to;
  }
  return p;
}

// Whether two output paths name one file: the same inode when both exist, else the same
// absolute path once "." and ".." and the symbolic links are resolved (a link to a file not
// made yet included).
inline bool same_output_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)  // /dev/null may take any number of writers
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino && !S_ISCHR(sa.st_mode);
  std::error_code ea, eb;
  auto ca = std::filesystem::weakly_canonical(follow_links(a), ea);
  auto cb = std::filesystem::weakly_canonical(follow_links(b), eb);
  return ea || eb ? a == b : ca == cb;
}

// Why `path` cannot be opened for writing, found without creating or truncating it; empty
// when it can (as far as permissions tell).
inline std::string cannot_write_reason(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return std::strerror(EISDIR);
    if (::access(path.c_str(), W_OK) != 0) return std::strerror(errno);
    return {};
  }
  if (errno != ENOENT) return std::strerror(errno);
  const std::string parent = std::filesystem::path(path).parent_path().string();
  const char* dir = parent.empty() ? "." : parent.c_str();
  if (::stat(dir, &st) != 0) return std::strerror(errno);
  if (!S_ISDIR(st.st_mode)) return std::strerror(ENOTDIR);
  if (::access(dir, W_OK | X_OK) != 0) return std::strerror(errno);
  return {};
}

}  // namespace medmon
