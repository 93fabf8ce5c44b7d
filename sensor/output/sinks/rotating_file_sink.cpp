#include "sensor/output/sinks/rotating_file_sink.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <vector>

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

RotatingFileSink::RotatingFileSink(std::string path, RotateSettings r) : path_(std::move(path)), r_(r) {
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    // An earlier run's events: rotate them away rather than truncate them.
    fd_ = -2;
    first_ts_ = -1;
    rotate();
  } else {
    open_new();
  }
  buf_.reserve(1 << 20);
}

RotatingFileSink::~RotatingFileSink() {
  flush();
  if (fd_ >= 0) ::close(fd_);
}

void RotatingFileSink::open_new() {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd_ < 0) throw std::runtime_error(path_ + ": " + std::strerror(errno));
  size_ = 0;
  first_ts_ = -1;
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
  size_t off = 0;
  while (fd_ >= 0 && off < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // output gone (full disk): drop rather than spin, as FileSink does
    }
    off += size_t(n);
  }
  buf_.clear();
}

void RotatingFileSink::rotate() {
  flush();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (r_.timestamp_names) {
    std::string stamp;
    if (first_ts_ >= 0) {
      time_t t = time_t(first_ts_ / 1000000);
      struct tm tm{};
      gmtime_r(&t, &tm);
      char b[32];
      std::strftime(b, sizeof b, "%Y%m%dT%H%M%SZ", &tm);
      stamp = b;
    } else {
      stamp = "start";
    }
    std::string target = path_ + "." + stamp;
    for (int i = 1; exists(target); ++i) target = fmt::format("{}.{}-{}", path_, stamp, i);
    ::rename(path_.c_str(), target.c_str());
    if (r_.keep) {
      // Oldest beyond `keep` go: names sort by time.
      std::string dir = ".", base = path_;
      auto sl = path_.rfind('/');
      if (sl != std::string::npos) {
        dir = path_.substr(0, std::max<size_t>(sl, 1));  // "/x" lives in "/"
        base = path_.substr(sl + 1);
      }
      std::vector<std::string> rotated;
      if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
          std::string n = e->d_name;
          if (n.size() > base.size() + 1 && n.compare(0, base.size() + 1, base + ".") == 0) {
            std::string suf = n.substr(base.size() + 1);
            if (suf == "start" || suf.rfind("start-", 0) == 0 ||
                (suf.size() >= 16 && std::isdigit(static_cast<unsigned char>(suf[0])) && suf[8] == 'T' && suf[15] == 'Z'))
              rotated.push_back(n);
          }
        }
        ::closedir(d);
      }
      std::sort(rotated.begin(), rotated.end());
      // "start*" names sort after digits but are the oldest: an earlier run's file.
      std::stable_partition(rotated.begin(), rotated.end(), [](const std::string& n) { return n.find(".start") != std::string::npos; });
      while (rotated.size() > r_.keep) {
        ::unlink((dir + "/" + rotated.front()).c_str());
        rotated.erase(rotated.begin());
      }
    }
  } else {
    unsigned last = 1;
    while (exists(fmt::format("{}.{}", path_, last))) ++last;  // first free number
    if (r_.keep && last > r_.keep) {
      for (unsigned n = r_.keep; n < last; ++n) ::unlink(fmt::format("{}.{}", path_, n).c_str());
      last = r_.keep;
    }
    for (unsigned n = last; n > 1; --n)
      ::rename(fmt::format("{}.{}", path_, n - 1).c_str(), fmt::format("{}.{}", path_, n).c_str());
    ::rename(path_.c_str(), (path_ + ".1").c_str());
  }
  ++rotations_;
  open_new();
}

}  // namespace medmon
