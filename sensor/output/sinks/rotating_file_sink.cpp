#include "sensor/output/sinks/rotating_file_sink.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <tuple>
#include <stdexcept>
#include <vector>

#include "sensor/common/diag.h"

namespace medmon {

namespace {
bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
}  // namespace

int64_t RotatingFileSink::line_time(std::string_view l) {
  // {"ts":"2024-01-02T03:04:05.123456Z"
  if (l.size() < 34 || l.substr(0, 7) != "{\"ts\":\"") return -1;
  const char* p = l.data() + 7;
  auto num = [&](int off, int n) {
    int v = 0;
    for (int i = 0; i < n; ++i) {
      char c = p[off + i];
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  };
  struct tm tm{};
  int y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2), s = num(17, 2), us = num(20, 6);
  if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || s < 0 || us < 0) return -1;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return int64_t(timegm(&tm)) * 1000000 + us;
}

RotatingFileSink::RotatingFileSink(std::string path, RotateSettings r, bool start_now) : path_(std::move(path)), r_(r) {
  if (start_now) {
    start();
  } else {
    // Opened now (perhaps with rights given up later), moved nowhere yet.
    fd_ = open_file();
    if (fd_ < 0) throw std::runtime_error(path_ + ": " + std::strerror(errno));
  }
  buf_.reserve(1 << 20);
}

void RotatingFileSink::start() {
  if (started_) return;
  started_ = true;
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    // An earlier run's events: rotate them away (named after their first event) rather than
    // truncate them, and refuse to start when that is not possible.
    std::string err = move_away(first_line_time(path_));
    if (!err.empty())
      throw std::runtime_error(fmt::format("{}: the file left by an earlier run cannot be rotated away ({}); it is not overwritten", path_, err));
    if (fd_ >= 0) ::close(fd_);  // it followed the earlier run's file
    fd_ = -1;
  }
  if (fd_ < 0) fd_ = open_file();
  if (fd_ < 0) throw std::runtime_error(path_ + ": " + std::strerror(errno));
}

RotatingFileSink::~RotatingFileSink() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

int RotatingFileSink::open_file() const {
  // Never O_TRUNC: the file is new (renamed away just before) or empty.
  return ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

int64_t RotatingFileSink::first_line_time(const std::string& path) {
  char b[64];
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = ::read(fd, b, sizeof b);
  ::close(fd);
  return n > 0 ? line_time(std::string_view(b, size_t(n))) : -1;
}

void RotatingFileSink::write_line(std::string_view, std::string_view line) {
  int64_t ts = line_time(line);
  if (r_.interval_usec && ts >= 0) {
    int64_t p = floor_div(ts, r_.interval_usec);
    if (!have_period_) { period_ = p; have_period_ = true; }
    else if (p > period_) {  // an event older than the file's period stays with it
      period_ = p;
      if (size_) rotate();
    }
  }
  if (r_.size && size_ && size_ + line.size() + 1 > r_.size) rotate();
  if (first_ts_ < 0) first_ts_ = ts;
  buf_.append(line);
  buf_.push_back('\n');
  size_ += line.size() + 1;
  if (buf_.size() >= (1 << 20)) flush();
}

void RotatingFileSink::flush() {
  // A failed write (full disk) drops the buffer rather than spin, as FileSink does; the next
  // flush tries again.
  if (fd_ >= 0)
    if (int e = write_lines(fd_, buf_); e && error_.empty()) error_ = path_ + ": " + std::strerror(e);
  buf_.clear();
}

void RotatingFileSink::rotate() {
  flush();
  std::string err = move_away(first_ts_);
  int fd = -1;
  if (err.empty()) {
    fd = open_file();
    if (fd < 0) err = fmt::format("cannot open a new file: {}", std::strerror(errno));
  }
  if (!err.empty()) {
    // Events are never lost to a failed rotation: they go on to the file open now (under its
    // rotated name when only the new file could not be made). The next attempt comes after
    // another `size` bytes or at the next interval.
    ++failed_rotations_;
    print_err("medmon: {}: rotation failed ({}); events are appended to the current file ({} failed rotation{})\n",
               path_, err, failed_rotations_, failed_rotations_ == 1 ? "" : "s");
    size_ = 0;
    return;
  }
  ::close(fd_);
  fd_ = fd;
  size_ = 0;
  first_ts_ = -1;
  ++rotations_;
}

namespace {
// Where a rotated file's name sorts in time: an earlier run's file named ".start" (its time
// unknown) before all others, then by time stamp, then by the "-N" added to a name taken.
struct RotatedName {
  bool start = false;
  std::string stamp;
  unsigned long n = 0;
  std::string name;
  bool operator<(const RotatedName& o) const {
    if (start != o.start) return start;
    if (stamp != o.stamp) return stamp < o.stamp;
    return n < o.n;
  }
};

// The suffix after "<file>." of a rotated file with a time stamp name, or nullopt.
std::optional<RotatedName> rotated_name(const std::string& suf) {
  RotatedName r;
  std::string rest;
  if (suf == "start" || suf.rfind("start-", 0) == 0) {
    r.start = true;
    rest = suf.substr(5);
  } else if (suf.size() >= 16 && std::isdigit(static_cast<unsigned char>(suf[0])) && suf[8] == 'T' && suf[15] == 'Z') {
    r.stamp = suf.substr(0, 16);
    rest = suf.substr(16);
  } else {
    return std::nullopt;
  }
  if (rest.size() > 1 && rest[0] == '-') r.n = std::strtoul(rest.c_str() + 1, nullptr, 10);
  return r;
}

// The rotated files of `base` (time stamp names) in directory `dir`, oldest first.
std::vector<RotatedName> list_rotated(const std::string& dir, const std::string& base) {
  std::vector<RotatedName> rotated;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > base.size() + 1 && n.compare(0, base.size() + 1, base + ".") == 0) {
        if (auto r = rotated_name(n.substr(base.size() + 1))) {
          r->name = n;
          rotated.push_back(*r);
        }
      }
    }
    ::closedir(d);
  }
  std::sort(rotated.begin(), rotated.end());
  return rotated;
}
}  // namespace

std::string RotatingFileSink::move_away(int64_t first_ts) {
  auto failed = [](const std::string& what) { return fmt::format("{}: {}", what, std::strerror(errno)); };
  if (r_.timestamp_names) {
    std::string stamp;
    if (first_ts >= 0) {
      time_t t = time_t(first_ts / 1000000);
      struct tm tm{};
      gmtime_r(&t, &tm);
      char b[32];
      std::strftime(b, sizeof b, "%Y%m%dT%H%M%SZ", &tm);
      stamp = b;
    } else {
      stamp = "start";  // no time to be read from its first line
    }
    std::string dir = ".", base = path_;
    auto sl = path_.rfind('/');
    if (sl != std::string::npos) {
      dir = path_.substr(0, std::max<size_t>(sl, 1));  // "/x" lives in "/"
      base = path_.substr(sl + 1);
    }
    // A second's names follow each other in the order of N: the next one comes after every name
    // of that second on disk and every one this sink gave. A name `keep` deleted is never given
    // again, since it would sort as the oldest and be deleted at once.
    std::optional<unsigned long> last_n;
    if (stamp == last_stamp_) last_n = last_n_;
    for (const auto& r : list_rotated(dir, base))
      if ((r.start ? "start" : r.stamp) == stamp && (!last_n || r.n > *last_n)) last_n = r.n;
    unsigned long n = last_n ? *last_n + 1 : 0;
    auto name = [&] { return n ? fmt::format("{}.{}-{}", path_, stamp, n) : path_ + "." + stamp; };
    while (exists(name())) ++n;  // a name that only looks rotated (".<stamp>-x")
    std::string target = name();
    if (::rename(path_.c_str(), target.c_str()) != 0) return failed("rename to " + target);
    last_stamp_ = stamp;
    last_n_ = n;
    if (r_.keep) {
      // The files rotated longest ago beyond `keep` go. A name tells when the file's first event
      // happened, not when the file was rotated: this run's files go by the order it rotated
      // them, after those of earlier runs, which go by modification time (their last write,
      // just before their rotation), then by name.
      given_.push_back(target.substr(target.rfind('/') + 1));
      std::vector<RotatedName> rotated = list_rotated(dir, base);
      struct Age { size_t given; int64_t mtime; size_t by_name; const std::string* name; };
      std::vector<Age> ages;
      for (size_t i = 0; i < rotated.size(); ++i) {
        size_t g = size_t(std::find(given_.begin(), given_.end(), rotated[i].name) - given_.begin());
        int64_t mtime = 0;
        struct stat st;
        if (g == given_.size() && ::stat((dir + "/" + rotated[i].name).c_str(), &st) == 0)
          mtime = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        ages.push_back({g == given_.size() ? 0 : g + 1, mtime, i, &rotated[i].name});
      }
      std::sort(ages.begin(), ages.end(), [](const Age& a, const Age& b) {
        return std::tie(a.given, a.mtime, a.by_name) < std::tie(b.given, b.mtime, b.by_name);
      });
      for (size_t i = 0; i + r_.keep < ages.size(); ++i) {
        ::unlink((dir + "/" + *ages[i].name).c_str());
        given_.erase(std::remove(given_.begin(), given_.end(), *ages[i].name), given_.end());
      }
    }
  } else {
    unsigned last = 1;
    while (exists(fmt::format("{}.{}", path_, last))) ++last;  // first free number
    if (r_.keep && last > r_.keep) {
      for (unsigned n = r_.keep; n < last; ++n) ::unlink(fmt::format("{}.{}", path_, n).c_str());
      last = r_.keep;
    }
    // A failed step stops here: renaming on would replace a file not yet shifted.
    for (unsigned n = last; n > 1; --n) {
      std::string from = fmt::format("{}.{}", path_, n - 1), to = fmt::format("{}.{}", path_, n);
      if (::rename(from.c_str(), to.c_str()) != 0) return failed("rename " + from + " to " + to);
    }
    if (::rename(path_.c_str(), (path_ + ".1").c_str()) != 0) return failed("rename to " + path_ + ".1");
  }
  return {};
}

}  // namespace medmon
