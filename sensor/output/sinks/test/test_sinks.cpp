#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <dirent.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <tuple>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "sensor/output/sinks/async_sink.h"
#include "sensor/output/sinks/clickhouse_sink.h"
#include "sensor/output/sinks/rotating_file_sink.h"
#include "sensor/output/sinks/sink_config.h"
#include "sensor/output/sinks/sink_error.h"
#include "sensor/output/sinks/sinks.h"
#include "sensor/output/sinks/syslog_sink.h"

using namespace medmon;

namespace {
// A scratch directory removed with everything in it at the end of the test.
struct TempDir {
  TempDir() {
    char t[] = "/tmp/medmon-sinks-test-XXXXXX";
    REQUIRE(mkdtemp(t));
    path = t;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// Bytes of the files of a directory (a spool's lock file, which holds the pid, left out).
uint64_t dir_bytes(const std::string& d) {
  uint64_t n = 0;
  if (DIR* dd = opendir(d.c_str())) {
    while (dirent* e = readdir(dd)) {
      if (std::string(e->d_name) == "lock") continue;
      struct stat st;
      if (stat((d + "/" + e->d_name).c_str(), &st) == 0 && S_ISREG(st.st_mode)) n += uint64_t(st.st_size);
    }
    closedir(dd);
  }
  return n;
}

std::string event(int i, int64_t sec = 1700000000, size_t pad = 0) {
  time_t t = time_t(sec);
  struct tm tm{};
  gmtime_r(&t, &tm);
  char b[40];
  strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
  return std::string("{\"ts\":\"") + b + ".000000Z\",\"event_type\":\"flow\",\"n\":" + std::to_string(i) +
         ",\"pad\":\"" + std::string(pad, 'x') + "\"}";
}

// A receiver that can be switched off; remembers what it got.
class FakeBackend : public Backend {
 public:
  explicit FakeBackend(std::atomic<bool>& up) : up_(up) {}
  bool deliver(const std::vector<Record>& batch, std::string& error) override {
    if (!up_) { error = "down"; return false; }
    std::lock_guard<std::mutex> g(m);
    for (auto& r : batch) got.push_back(r);
    return true;
  }
  std::atomic<bool>& up_;
  std::mutex m;
  std::vector<Record> got;
};

// The connection a listening socket takes within `ms`, or -1.
int accept_within(int listener, int ms) {
  pollfd p{listener, POLLIN, 0};
  return poll(&p, 1, ms) > 0 ? accept(listener, nullptr, nullptr) : -1;
}
}  // namespace

TEST_CASE("Size rotation never splits a line and keeps every line in order") {
  TempDir td;
  const std::string& d = td.path;
  std::string path = d + "/events.jsonl";
  RotateSettings r;
  r.size = 4096;
  r.keep = 0;
  int n = 0;
  {
    RotatingFileSink s(path, r);
    for (n = 0; n < 400; ++n) s.write_line("flow", event(n, 1700000000, size_t(n * 37 % 300)));
    s.write_line("flow", event(n++, 1700000000, 9000));  // longer than the limit: a file of its own
    for (int k = 0; k < 20; ++k, ++n) s.write_line("flow", event(n));
    CHECK(s.rotations() > 5);
  }
  // Oldest is the highest number; then .1; then the current file.
  std::vector<std::string> files;
  for (int i = 1; exists(path + "." + std::to_string(i)); ++i) files.insert(files.begin(), path + "." + std::to_string(i));
  files.push_back(path);
  int next = 0;
  bool saw_big = false;
  for (auto& f : files) {
    std::string c = slurp(f);
    REQUIRE(!c.empty());
    CHECK(c.back() == '\n');
    size_t lines = 0, pos = 0;
    while (pos < c.size()) {
      size_t nl = c.find('\n', pos);
      REQUIRE(nl != std::string::npos);
      auto j = nlohmann::json::parse(c.substr(pos, nl - pos));
      CHECK(j["n"] == next);
      ++next;
      ++lines;
      pos = nl + 1;
    }
    if (c.size() > r.size) { CHECK(lines == 1); saw_big = true; }
  }
  CHECK(next == n);
  CHECK(saw_big);
}

// The lines of a file (or of the files given), each checked to be a whole JSON event.
std::vector<std::string> json_lines(const std::vector<std::string>& files) {
  std::vector<std::string> out;
  size_t bad = 0;
  for (auto& f : files) {
    std::string c = slurp(f);
    if (!c.empty()) CHECK(c.back() == '\n');
    size_t pos = 0;
    while (pos < c.size()) {
      size_t nl = c.find('\n', pos);
      if (nl == std::string::npos) nl = c.size();
      std::string l = c.substr(pos, nl - pos);
      if (!nlohmann::json::accept(l)) ++bad;
      out.push_back(l);
      pos = nl + 1;
    }
  }
  CHECK(bad == 0);
  return out;
}

TEST_CASE("Workers share the --out file and extra file sinks without losing, doubling or mixing lines") {
  TempDir td;
  SinkConfig cfg;
  cfg.sinks.push_back(parse_sink_spec("file=" + td.path + "/extra.jsonl"));
  cfg.sinks.push_back(parse_sink_spec("file=" + td.path + "/rot.jsonl,rotate_size=64k,rotate_keep=0"));
  auto sinks = make_sinks(cfg, td.path + "/out.jsonl");
  const int workers = 4, per_worker = 20000;
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w)
    threads.emplace_back([&, w] {
      EventOutput out;
      sinks->attach_worker(out);
      for (int i = 0; i < per_worker; ++i) {
        out.emit_line("flow", event(w * per_worker + i, 1700000000, 100));
        if (i % 5000 == 0) out.flush();
      }
      out.flush();
    });
  for (auto& t : threads) t.join();
  sinks->close(false);
  sinks.reset();
  std::set<std::string> want;
  for (int n = 0; n < workers * per_worker; ++n) want.insert(event(n, 1700000000, 100));
  std::vector<std::string> rot_files;
  for (int i = 1; exists(td.path + "/rot.jsonl." + std::to_string(i)); ++i) rot_files.push_back(td.path + "/rot.jsonl." + std::to_string(i));
  rot_files.push_back(td.path + "/rot.jsonl");
  for (const auto& files : {std::vector<std::string>{td.path + "/out.jsonl"}, std::vector<std::string>{td.path + "/extra.jsonl"}, rot_files}) {
    auto got = json_lines(files);
    CHECK(got.size() == want.size());
    CHECK((std::set<std::string>(got.begin(), got.end()) == want));
  }
}

TEST_CASE("A worker's chunk of lines is rotated line by line") {
  TempDir td;
  SinkConfig cfg;
  cfg.rotate.size = 4096;
  cfg.rotate.keep = 0;
  std::string path = td.path + "/out.jsonl";
  auto sinks = make_sinks(cfg, path);
  {
    EventOutput out;
    sinks->attach_worker(out);
    for (int i = 0; i < 2000; ++i) out.emit_line("flow", event(i, 1700000000, 50));
    out.flush();
  }
  sinks->close(false);
  sinks.reset();
  std::vector<std::string> files;
  for (int i = 1; exists(path + "." + std::to_string(i)); ++i) files.insert(files.begin(), path + "." + std::to_string(i));
  files.push_back(path);
  CHECK(files.size() > 20);
  for (auto& f : files) CHECK(slurp(f).size() <= 4096);
  auto got = json_lines(files);
  REQUIRE(got.size() == 2000);
  for (int i = 0; i < 2000; ++i) CHECK(got[size_t(i)] == event(i, 1700000000, 50));
}

TEST_CASE("Time rotation follows packet time and keeps at most `keep` files") {
  TempDir td;
  const std::string& d = td.path;
  std::string path = d + "/ev.jsonl";
  RotateSettings r;
  r.interval_usec = 3600 * 1000000ll;
  r.keep = 2;
  {
    RotatingFileSink s(path, r);
    int64_t base = 1700000000 - 1700000000 % 3600;
    for (int h = 0; h < 5; ++h)
      for (int i = 0; i < 3; ++i) s.write_line("flow", event(h * 10 + i, base + h * 3600 + i * 60));
  }
  CHECK(exists(path + ".1"));
  CHECK(exists(path + ".2"));
  CHECK_FALSE(exists(path + ".3"));
  std::string cur = slurp(path);
  CHECK(cur.find("\"n\":40") != std::string::npos);
  CHECK(cur.find("\"n\":30") == std::string::npos);
  CHECK(slurp(path + ".1").find("\"n\":30") != std::string::npos);
  CHECK(slurp(path + ".2").find("\"n\":20") != std::string::npos);
}

TEST_CASE("Timestamp names and an earlier run's file is rotated, not overwritten") {
  TempDir td;
  const std::string& d = td.path;
  std::string path = d + "/ev.jsonl";
  { std::ofstream(path) << event(999, 1600000000) << "\n"; }
  RotateSettings r;
  r.size = 4096;
  r.timestamp_names = true;
  {
    RotatingFileSink s(path, r);
    for (int i = 0; i < 100; ++i) s.write_line("flow", event(i, 1700000000 + i));
  }
  // The earlier run's file is named after its first event.
  CHECK(slurp(path + ".20200913T122640Z").find("\"n\":999") != std::string::npos);
  CHECK(exists(path + ".20231114T221320Z"));
  CHECK_FALSE(exists(path + ".start"));
}

TEST_CASE("Timestamp names: a file without a time is .start, and the oldest files go first") {
  TempDir td;
  std::string path = td.path + "/ev.jsonl";
  RotateSettings r;
  r.size = 4096;
  r.timestamp_names = true;
  r.keep = 3;
  { std::ofstream(path) << "not an event\n"; }
  { RotatingFileSink s(path, r); }
  CHECK(slurp(path + ".start") == "not an event\n");
  for (const char* suf : {".start-2", ".start-10", ".20200101T000000Z", ".20200101T000000Z-2", ".20200101T000000Z-10"})
    std::ofstream(path + suf) << "old\n";
  { std::ofstream(path) << event(1, 1600000000) << "\n"; }
  { RotatingFileSink s(path, r); }
  // Kept: the three newest, by time and then by number; an earlier run's file has its time.
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(td.path)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"ev.jsonl", "ev.jsonl.20200101T000000Z-10", "ev.jsonl.20200101T000000Z-2",
                                         "ev.jsonl.20200913T122640Z"});
}

TEST_CASE("Timestamp names: many rotations in one second keep the newest files") {
  TempDir td;
  std::string path = td.path + "/ev.jsonl";
  RotateSettings r;
  r.size = 1024;
  r.timestamp_names = true;
  r.keep = 3;
  std::vector<std::string> lines;
  {
    RotatingFileSink s(path, r);
    // Every event in one second: each rotated file is named after that second (-N when taken).
    for (int i = 0; i < 200; ++i) {
      lines.push_back(event(i, 1700000000, 40));
      s.write_line("flow", lines.back());
    }
    CHECK(s.rotations() > 10);
  }
  std::vector<std::string> rotated;
  for (const auto& e : std::filesystem::directory_iterator(td.path))
    if (e.path().filename() != "ev.jsonl") rotated.push_back(e.path().string());
  REQUIRE(rotated.size() == 3);
  // What is left, the rotated files and then the current one, is the tail of the events: the
  // newest rotated files were kept, none of the lines after the oldest kept one is missing.
  std::string all;
  for (const auto& f : rotated) all += slurp(f);
  all += slurp(path);
  std::vector<std::string> got;
  std::istringstream in(all);
  for (std::string l; std::getline(in, l);) got.push_back(l);
  std::sort(got.begin(), got.end(), [](const std::string& a, const std::string& b) {
    return nlohmann::json::parse(a)["n"].get<int>() < nlohmann::json::parse(b)["n"].get<int>();
  });
  REQUIRE(!got.empty());
  CHECK(got == std::vector<std::string>(lines.end() - long(got.size()), lines.end()));
  CHECK(got.size() > 3 * 1024 / lines[0].size());
}

TEST_CASE("Timestamp names: keep holds the files rotated last, whatever their events' times") {
  TempDir td;
  std::string path = td.path + "/ev.jsonl";
  // Files of an earlier run, rotated before this one: they go first.
  for (const char* suf : {".20300101T000000Z", ".20300101T000001Z"}) std::ofstream(path + suf) << "old\n";
  RotateSettings r;
  r.size = 1024;
  r.timestamp_names = true;
  r.keep = 3;
  std::vector<std::string> lines;
  {
    RotatingFileSink s(path, r);
    // Events out of time order (late flows, merged workers): a file rotated later may be named
    // after an earlier time than the files before it.
    for (int i = 0; i < 200; ++i) {
      lines.push_back(event(i, 1700000000 + (i * 7919) % 1000 - i / 10 * 50, 40));
      s.write_line("flow", lines.back());
    }
    CHECK(s.rotations() > 10);
  }
  std::vector<std::string> rotated;
  for (const auto& e : std::filesystem::directory_iterator(td.path))
    if (e.path().filename() != "ev.jsonl") rotated.push_back(e.path().string());
  REQUIRE(rotated.size() == 3);
  std::string all;
  for (const auto& f : rotated) all += slurp(f);
  all += slurp(path);
  CHECK(all.find("old") == std::string::npos);
  std::vector<std::string> got;
  std::istringstream in(all);
  for (std::string l; std::getline(in, l);) got.push_back(l);
  std::sort(got.begin(), got.end(), [](const std::string& a, const std::string& b) {
    return nlohmann::json::parse(a)["n"].get<int>() < nlohmann::json::parse(b)["n"].get<int>();
  });
  REQUIRE(!got.empty());
  // The tail of the events: the last files rotated, none after the oldest kept one missing.
  CHECK(got == std::vector<std::string>(lines.end() - long(got.size()), lines.end()));
}

TEST_CASE("A file that cannot be rotated away is never truncated") {
  TempDir td;
  std::string path = td.path + "/ev.jsonl";
  // As an unprivileged user (root may rename in a read-only directory), in a child process.
  if (getuid() == 0) REQUIRE(chown(td.path.c_str(), 65534, 65534) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (getuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) _exit(10);
    RotateSettings r;
    r.size = 4096;
    r.keep = 3;
    const std::string old = event(999) + "\n";
    { std::ofstream(path) << old; }
    if (chmod(td.path.c_str(), 0555) != 0) _exit(11);
    // At start: an error, and the file as it was.
    try {
      RotatingFileSink s(path, r);
      _exit(1);
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()).find("cannot be rotated away") == std::string::npos) _exit(2);
    }
    if (slurp(path) != old) _exit(3);
    // During a run: the events go on to the current file.
    chmod(td.path.c_str(), 0755);
    unlink(path.c_str());
    std::string want;
    {
      RotatingFileSink s(path, r);
      for (int i = 0; i < 10; ++i) { s.write_line("flow", event(i)); want += event(i) + "\n"; }
      s.flush();
      chmod(td.path.c_str(), 0555);
      for (int i = 10; i < 200; ++i) { s.write_line("flow", event(i)); want += event(i) + "\n"; }
      if (s.failed_rotations() == 0 || s.rotations() != 0) _exit(4);
    }
    chmod(td.path.c_str(), 0755);
    if (slurp(path) != want) _exit(5);
    if (exists(path + ".1")) _exit(6);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("Spool stays within its size cap and delivers in order when the receiver returns") {
  TempDir td;
  const std::string& d = td.path;
  std::atomic<bool> up{false};
  auto backend = std::make_unique<FakeBackend>(up);
  FakeBackend* fake = backend.get();
  SinkSpec spec;
  spec.name = "t";
  spec.queue = 50;
  spec.batch = 20;
  spec.spool_dir = d + "/spool";
  spec.spool_max = 64 * 1024;
  spec.drain_usec = 60000000;
  AsyncSink sink(spec, std::move(backend));
  const int total = 3000;
  for (int i = 0; i < total; ++i) sink.write_line("flow", event(i, 1700000000, 40));
  const auto& c = sink.counters();
  CHECK(c.dropped > 0);
  CHECK(c.spool_bytes <= spec.spool_max);
  CHECK(dir_bytes(spec.spool_dir) <= spec.spool_max);
  up = true;
  CHECK(sink.close() == 0);
  CHECK(c.delivered + c.dropped == uint64_t(total));
  std::lock_guard<std::mutex> g(fake->m);
  REQUIRE(fake->got.size() == c.delivered);
  for (size_t i = 1; i < fake->got.size(); ++i) REQUIRE(fake->got[i - 1].seq < fake->got[i].seq);
  // What was dropped is the newest: everything delivered is a prefix of what was written.
  CHECK(fake->got.back().seq == c.delivered);
  CHECK(dir_bytes(spec.spool_dir) == 0);
}

TEST_CASE("A receiver that refuses the sink itself is asked once: later events wait in the spool, exit does not wait") {
  TempDir td;
  // Refuses every request as a ClickHouse server refuses a wrong password.
  struct Refusing : Backend {
    bool deliver(const std::vector<Record>&, std::string& error) override {
      ++calls;
      error = "HTTP 401: Authentication failed";
      return false;
    }
    bool refuses_sink() const override { return true; }
    std::atomic<int> calls{0};
  };
  auto backend = std::make_unique<Refusing>();
  Refusing* refusing = backend.get();
  SinkSpec spec;
  spec.name = "t";
  spec.batch = 10;
  spec.spool_dir = td.path + "/spool";
  spec.drain_usec = 30000000;
  auto sink = std::make_unique<AsyncSink>(spec, std::move(backend));
  for (int i = 0; i < 10; ++i) sink->write_line("flow", event(i, 1700000000, 40));
  const auto& c = sink->counters();
  for (int i = 0; i < 500 && !c.stopped; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(c.stopped == 1);
  for (int i = 10; i < 30; ++i) sink->write_line("flow", event(i, 1700000000, 40));
  sink->flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t0 = std::chrono::steady_clock::now();
  uint64_t left = sink->close();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));  // not the drain timeout
  CHECK(refusing->calls == 1);
  CHECK(c.errors == 1);
  CHECK(c.delivered == 0);
  CHECK(c.dropped == 0);
  CHECK(c.spooled == 30);
  CHECK(left > 0);
  sink.reset();  // gives the spool directory up
  // The next run, with the receiver set right, delivers them all, in order.
  std::atomic<bool> up{true};
  auto fine = std::make_unique<FakeBackend>(up);
  FakeBackend* fake = fine.get();
  AsyncSink next(spec, std::move(fine));
  CHECK(next.close() == 0);
  std::lock_guard<std::mutex> g(fake->m);
  REQUIRE(fake->got.size() == 30);
  for (size_t i = 0; i < 30; ++i) CHECK(nlohmann::json::parse(fake->got[i].line)["n"] == int(i));
}

TEST_CASE("Events left at exit wait in the spool and go first on the next run") {
  TempDir td;
  const std::string& d = td.path;
  SinkSpec spec;
  spec.name = "t";
  spec.queue = 100;
  spec.spool_dir = d + "/spool";
  spec.drain_usec = 0;
  std::atomic<bool> up{false};
  {
    AsyncSink sink(spec, std::make_unique<FakeBackend>(up));
    for (int i = 0; i < 250; ++i) sink.write_line("flow", event(i));
    CHECK(sink.close() > 0);
    CHECK(sink.counters().dropped == 0);
  }
  up = true;
  auto backend = std::make_unique<FakeBackend>(up);
  FakeBackend* fake = backend.get();
  spec.drain_usec = 60000000;
  AsyncSink sink(spec, std::move(backend));
  for (int i = 250; i < 300; ++i) sink.write_line("flow", event(i));
  CHECK(sink.close() == 0);
  REQUIRE(fake->got.size() == 300);
  for (int i = 0; i < 300; ++i) REQUIRE(nlohmann::json::parse(fake->got[size_t(i)].line)["n"] == i);
}

TEST_CASE("Events a failed spool write took with it are dropped, not spooled") {
  TempDir td;
  // In a child: a file size limit makes every spool write past 1000 bytes fail (EFBIG).
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl{1000, 1000};
    setrlimit(RLIMIT_FSIZE, &rl);
    std::atomic<bool> up{false};
    SinkSpec spec;
    spec.name = "t";
    spec.queue = 10;
    spec.spool_dir = td.path + "/spool";
    spec.drain_usec = 0;
    uint64_t spooled, dropped, delivered, pending;
    {
      AsyncSink sink(spec, std::make_unique<FakeBackend>(up));
      for (int i = 0; i < 2000; ++i) sink.write_line("flow", event(i, 1700000000, 60));
      sink.close();
      const auto& c = sink.counters();
      spooled = c.spooled, dropped = c.dropped, delivered = c.delivered, pending = c.spool_bytes;
    }
    // Every event is counted once; what the spool holds on disk is what it says it holds.
    if (spooled + dropped + delivered != 2000) _exit(3);
    if (dropped < 1900) _exit(4);
    if (pending > dir_bytes(td.path + "/spool")) _exit(5);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("Spool: pending bytes leave out the delivered part of a segment") {
  TempDir td;
  Spool sp(td.path + "/spool", 1u << 20);
  for (uint64_t i = 1; i <= 10; ++i) REQUIRE(sp.append(Record{"r", i, "flow", event(int(i))}));
  uint64_t seg = sp.take_oldest();
  REQUIRE(seg != 0);
  std::vector<uint64_t> ends;
  uint64_t damaged = 0;
  auto recs = sp.read(seg, ends, damaged);
  REQUIRE(recs.size() == 10);
  CHECK(sp.pending_bytes() == sp.bytes());
  sp.commit(seg, ends[3]);
  CHECK(sp.pending_bytes() == sp.bytes() - ends[3]);
  sp.remove(seg);
  CHECK(sp.pending_bytes() == 0);
}

TEST_CASE("Spool: spool_max counts the bytes still to deliver, not the delivered part of a segment") {
  TempDir td;
  auto rec = [](uint64_t i) { return Record{"r", i, "flow", event(int(i))}; };  // all of one size for 10..99
  const uint64_t line = Spool::encode(rec(10)).size();
  Spool sp(td.path + "/spool", 10 * line);
  for (uint64_t i = 10; i < 20; ++i) REQUIRE(sp.append(rec(i)));
  CHECK_FALSE(sp.append(rec(20)));  // full
  uint64_t seg = sp.take_oldest();
  REQUIRE(seg != 0);
  std::vector<uint64_t> ends;
  uint64_t damaged = 0;
  REQUIRE(sp.read(seg, ends, damaged).size() == 10);
  sp.commit(seg, ends[3]);  // four delivered: room for four more
  for (uint64_t i = 20; i < 24; ++i) CHECK(sp.append(rec(i)));
  CHECK_FALSE(sp.append(rec(24)));
  CHECK(sp.pending_bytes() == 10 * line);
  CHECK_FALSE(sp.prepend(std::vector<Record>{rec(30)}));
}

TEST_CASE("At exit the bytes left are those still to deliver, not the delivered part of a segment") {
  TempDir td;
  SinkSpec spec;
  spec.name = "t";
  spec.spool_dir = td.path + "/spool";
  spec.batch = 2;
  spec.drain_usec = 0;
  uint64_t total = 0, delivered_bytes = 0;
  {  // an earlier run left 10 events
    Spool sp(spec.spool_dir, 1u << 20);
    for (uint64_t i = 1; i <= 10; ++i) {
      Record r{"aaaaaaaaaaaa", i, "flow", event(int(i))};
      REQUIRE(sp.append(r));
      total += Spool::encode(r).size();
      if (i <= 4) delivered_bytes += Spool::encode(r).size();
    }
  }
  // Takes two batches of two, then is down.
  struct TwoBatches : Backend {
    int left = 2;
    bool deliver(const std::vector<Record>&, std::string& error) override {
      if (left == 0) { error = "down"; return false; }
      --left;
      return true;
    }
  };
  AsyncSink sink(spec, std::make_unique<TwoBatches>());
  for (int i = 0; i < 50 && sink.counters().delivered < 4; ++i) usleep(20000);
  REQUIRE(sink.counters().delivered == 4);
  CHECK(sink.close() == total - delivered_bytes);
}

TEST_CASE("A syslog datagram too large to send is dropped, not delivered") {
  // A local UDP receiver, so sends succeed (or fail for size) without the network.
  int rx = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(rx >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  int rcv = 1 << 20;
  setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  TempDir td;
  SinkSpec spec;
  spec.type = "syslog";
  spec.name = "s";
  spec.url = "udp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  spec.spool_dir = td.path + "/spool";
  spec.drain_usec = 5000000;
  validate_sink(spec);
  uint64_t delivered, dropped;
  {
    AsyncSink sink(spec, std::make_unique<SyslogBackend>(spec, "site-a"));
    sink.write_line("flow", event(1));
    sink.write_line("flow", event(2, 1700000000, 70000));  // over the 65507 bytes of a datagram
    sink.write_line("flow", event(3));
    sink.close();
    delivered = sink.counters().delivered;
    dropped = sink.counters().dropped;
  }
  close(rx);
  CHECK(delivered == 2);
  CHECK(dropped == 1);
}

TEST_CASE("Spool lines round-trip; damaged ones are refused") {
  Record r{"0123456789ab", 42, "alert", "{\"a\":\"x\\ty\"}"};
  std::string e = Spool::encode(r);
  Record back;
  REQUIRE(Spool::decode(std::string_view(e).substr(0, e.size() - 1), back));
  CHECK(back.run == r.run);
  CHECK(back.seq == 42);
  CHECK(back.type == "alert");
  CHECK(back.line == r.line);
  CHECK_FALSE(Spool::decode("abc\t12", back));
  CHECK_FALSE(Spool::decode("abc\tx1\tflow\t{}", back));
  CHECK_FALSE(Spool::decode("abc\t1\tflow\t{\"cut", back));
}

TEST_CASE("RFC 5424 message layout") {
  std::string m = format_rfc5424(16, 3, "2024-01-02T03:04:05.123456Z", "icu east", "medmon", "77", "alert",
                                 "[medmon@32473 sensor=\"a\"]", "{\"x\":1}");
  CHECK(m == "<131>1 2024-01-02T03:04:05.123456Z icu_east medmon 77 alert [medmon@32473 sensor=\"a\"] {\"x\":1}");
  CHECK(format_rfc5424(1, 6, "", "", "medmon", "", "", "", "") == "<14>1 - - medmon - - -");
  CHECK(sd_escape("a\"b]c\\") == "a\\\"b\\]c\\\\");
  CHECK(syslog_facility("local0") == 16);
  CHECK(syslog_facility("23") == 23);
  CHECK(syslog_facility("local9") == -1);
  CHECK(syslog_severity("alert", R"({"alert":{"rule":"x","severity":"critical"}})") == 2);
  CHECK(syslog_severity("alert", R"({"alert":{"rule":"x","severity":"low"}})") == 5);
  CHECK(syslog_severity("flow", "{}") == 6);
}

TEST_CASE("Syslog names the sensor by its host name when no sensor id is set") {
  TempDir td;
  int rx = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(rx >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  SinkConfig cfg;
  cfg.sinks.push_back(parse_sink_spec("syslog=udp://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + ",spool=" + td.path + "/s"));
  {
    auto sinks = make_sinks(cfg, td.path + "/out.jsonl");
    EventOutput out;
    sinks->attach(out);
    out.emit_line("flow", event(1));
    out.flush();
    sinks->close(false);
  }
  char buf[65536];
  timeval tv{5, 0};
  setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = recv(rx, buf, sizeof buf, 0);
  close(rx);
  REQUIRE(n > 0);
  char h[256] = {};
  gethostname(h, sizeof h - 1);
  CHECK(std::string(buf, size_t(n)).find("[medmon@32473 sensor=\"" + sd_escape(h) + "\"]") != std::string::npos);
}

TEST_CASE("CEF: an alert CEF cannot carry (no rule) is dropped, not counted as delivered") {
  int rx = socket(AF_INET, SOCK_DGRAM, 0);
  REQUIRE(rx >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(rx, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(rx, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  TempDir td;
  SinkSpec spec = parse_sink_spec("syslog=udp://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) +
                                  ",format=cef,name=s,spool=" + td.path + "/s");
  spec.name = "s";
  const std::string with_rule =
      R"({"ts":"2024-01-02T03:04:05.123456Z","event_type":"alert","alert":{"rule":"flow.undeclared","severity":"low","message":"m"}})";
  const std::string without_rule =
      R"({"ts":"2024-01-02T03:04:05.123456Z","event_type":"alert","alert":{"severity":"low","message":"m"}})";
  uint64_t delivered, dropped;
  {
    AsyncSink sink(spec, std::make_unique<SyslogBackend>(spec, "site-a"));
    sink.write_line("alert", with_rule);
    sink.write_line("alert", without_rule);
    sink.write_line("alert", with_rule);
    sink.close();
    delivered = sink.counters().delivered;
    dropped = sink.counters().dropped;
  }
  close(rx);
  CHECK(delivered == 2);
  CHECK(dropped == 1);
}

TEST_CASE("CEF escaping and alert mapping") {
  CHECK(cef_header_escape("a|b\\c\nd") == "a\\|b\\\\c d");
  CHECK(cef_ext_escape("k=v\\x\ny\r") == "k\\=v\\\\x\\ny\\r");
  std::string line =
      R"({"ts":"2024-01-02T03:04:05.123456Z","event_type":"alert","flow_id":"f1","src_ip":"10.0.0.1","src_port":4000,)"
      R"("dst_ip":"10.0.0.2","dst_port":104,"proto":"tcp","src_device":"CT|1","alert":{"rule":"phi.cleartext",)"
      R"("severity":"high","message":"PHI a=b | c","device":"CT|1","peer":"10.0.0.2","mds2":[{"id":"TXCF-1"},{"id":"TXIG-2"}],)"
      R"("evidence":{"flow_ids":["f1"],"phi_fields":["PID-5"]}}})";
  std::string cef = alert_to_cef(line, "site-a");
  CHECK(cef.rfind("CEF:0|medmon|medmon|", 0) == 0);
  CHECK(cef.find("|phi.cleartext|PHI a=b \\| c|8|") != std::string::npos);
  CHECK(cef.find("rt=1704164645123") != std::string::npos);
  CHECK(cef.find("src=10.0.0.1 spt=4000 dst=10.0.0.2 dpt=104 proto=TCP shost=CT|1") != std::string::npos);
  CHECK(cef.find("msg=PHI a\\=b | c") != std::string::npos);
  CHECK(cef.find("cs1Label=mds2 cs1=TXCF-1,TXIG-2") != std::string::npos);
  CHECK(cef.find("dvchost=site-a") != std::string::npos);
  CHECK(cef.find("cs6Label=phiFields cs6=PID-5") != std::string::npos);
  CHECK(alert_to_cef("{\"event_type\":\"flow\"}", "") == "");
  CHECK(alert_to_cef("not json", "") == "");

  SinkSpec spec;
  spec.type = "syslog";
  spec.url = "udp://127.0.0.1:9";
  spec.format = "cef";
  validate_sink(spec);
  SyslogBackend b(spec, "site-a");
  Record r{"r", 1, "alert", line};
  std::string m = b.message(r);
  CHECK(m.rfind("<131>1 2024-01-02T03:04:05.123456Z site-a medmon ", 0) == 0);
  CHECK(m.find(" alert [medmon@32473 sensor=\"site-a\"] CEF:0|") != std::string::npos);
  Record f{"r", 2, "flow", event(1)};
  CHECK(b.message(f).empty());
}

TEST_CASE("ClickHouse rows: identity, time, raw event and flattened fields") {
  Record r{"abcdefabcdef", 7, "flow",
           R"({"ts":"2023-11-14T22:13:20.250000Z","event_type":"flow","flow_id":"x","flow":{"id":"nested","pkts":3},)"
           R"("phi_cleartext":["PID-5",1],"ok":true,"tls":{"sni":null},"deep":{"a":{"b":{"c":{"d":{"e":1}}}}}})"};
  auto j = nlohmann::json::parse(clickhouse_row(r, "s1"));
  CHECK(j["sensor_id"] == "s1");
  CHECK(j["run"] == "abcdefabcdef");
  CHECK(j["seq"] == "7");
  CHECK(j["time"] == "1700000000");
  CHECK(j["ts_us"] == "1700000000250000");
  CHECK(j["raw"] == r.line);
  CHECK(j["flow_id"] == "x");  // the top-level key wins over flow.id
  CHECK(j["flow_pkts"] == "3");
  CHECK(j["phi_cleartext"] == nlohmann::json::array({"PID-5", "1"}));
  CHECK(j["ok"] == "1");
  CHECK_FALSE(j.contains("tls_sni"));
  CHECK(j["deep_a_b_c_d"] == "{\"e\":1}");
  auto bad = nlohmann::json::parse(clickhouse_row(Record{"r", 1, "flow", "{\"a\":1} junk"}, "s"));
  CHECK(bad["event_type"] == "flow");
  CHECK(bad["raw"].get<std::string>().size() > 5);
  // DateTime and ts_us hold 1970 to 2106: a time outside is clamped, raw keeps it.
  auto early = nlohmann::json::parse(clickhouse_row(Record{"r", 2, "flow", R"({"ts":"1963-01-01T00:00:00.500000Z"})"}, "s"));
  CHECK(early["time"] == "0");
  CHECK(early["ts_us"] == "0");
  auto late = nlohmann::json::parse(clickhouse_row(Record{"r", 3, "flow", R"({"ts":"2200-01-01T00:00:00.000001Z"})"}, "s"));
  CHECK(late["time"] == "4294967295");
  CHECK(late["ts_us"] == "4294967295000001");
  auto y2100 = nlohmann::json::parse(clickhouse_row(Record{"r", 4, "flow", R"({"ts":"2100-01-01T00:00:00.000000Z"})"}, "s"));
  CHECK(y2100["time"] == "4102444800");

  SinkSpec spec;
  spec.type = "clickhouse";
  spec.url = "http://127.0.0.1:8123/?db=fleet&table_prefix=m_&user=u";
  ClickHouseBackend b(spec, "s1");
  CHECK(b.table_for("flow") == "fleet.m_flow");
  CHECK(b.table_for("weird") == "fleet.m_other");
  spec.url = "http://127.0.0.1:8123/?db=x;drop";
  CHECK_THROWS_AS(ClickHouseBackend(spec, "s"), SinkConfigError);
}

TEST_CASE("Sink specs from the command line") {
  SinkSpec s = parse_sink_spec("clickhouse=http://127.0.0.1:8123/?db=medmon,batch=500,events=flow+alert,spool_max=10M");
  CHECK(s.type == "clickhouse");
  CHECK(s.url == "http://127.0.0.1:8123/?db=medmon");
  CHECK(s.batch == 500);
  CHECK(s.events == std::vector<std::string>{"flow", "alert"});
  CHECK(s.spool_max == 10u << 20);
  CHECK(parse_sink_spec("syslog=udp://h:514,format=cef").events == std::vector<std::string>{"alert"});
  CHECK_THROWS_WITH(parse_sink_spec("syslog=udp://h:514,format=cef,events=flow"), Catch::Contains("alert events only"));
  CHECK_THROWS_WITH(parse_sink_spec("kafka=x"), Catch::Contains("unknown sink type"));
  CHECK_THROWS_WITH(parse_sink_spec("syslog=http://h"), Catch::Contains("udp://"));
  CHECK_THROWS_WITH(parse_sink_spec("clickhouse=http://h,bogus=1"), Catch::Contains("unknown option 'bogus'"));
  SinkCliOptions o;
  o.sinks = {"syslog=udp://a:514", "syslog=tcp://b:514"};
  o.spool_dir = "/var/spool/medmon";
  o.rotate_size = "1G";
  SinkConfig c;
  apply_sink_cli(o, c);
  REQUIRE(c.sinks.size() == 2);
  CHECK(c.sinks[0].name == "syslog");
  CHECK(c.sinks[1].name == "syslog2");
  CHECK(c.sinks[1].spool_dir == "/var/spool/medmon/syslog2");
  CHECK(c.rotate.size == 1ull << 30);
  o.rotate_size = "12Q";
  CHECK_THROWS_AS(apply_sink_cli(o, c), SinkConfigError);
  uint64_t v;
  CHECK(parse_size("64k", v));
  CHECK(v == 65536);
  CHECK_FALSE(parse_size("k", v));
  CHECK_FALSE(parse_size("99999999999999999999", v));
}

TEST_CASE("Sink names are unique: generated ones skip taken names, an explicit one twice is an error") {
  SinkCliOptions o;
  o.sinks = {"syslog=udp://127.0.0.1:5516,name=syslog2"};
  o.syslog = {"udp://127.0.0.1:5514", "udp://127.0.0.1:5515"};
  o.spool_dir = "/var/spool/medmon";
  SinkConfig c;
  apply_sink_cli(o, c);
  REQUIRE(c.sinks.size() == 3);
  CHECK(c.sinks[0].name == "syslog2");
  CHECK(c.sinks[1].name == "syslog");
  CHECK(c.sinks[2].name == "syslog3");
  CHECK(c.sinks[2].spool_dir == "/var/spool/medmon/syslog3");
  SinkCliOptions twice;
  twice.sinks = {"syslog=udp://h:1,name=a", "clickhouse=http://h/,name=a"};
  SinkConfig c2;
  CHECK_THROWS_WITH(apply_sink_cli(twice, c2), Catch::Contains("two sinks named 'a'"));
}

TEST_CASE("Sink values that make no sense are errors") {
  CHECK_THROWS_WITH(parse_sink_spec("file=x,events=flows"), Catch::Contains("'flows' is not an event type"));
  CHECK_THROWS_WITH(parse_sink_spec("file=x,events=alert+bogus"), Catch::Contains("'bogus' is not an event type"));
  CHECK_THROWS_WITH(parse_sink_spec("file=x,events="), Catch::Contains("'events' lists no event type"));
  CHECK_THROWS_WITH(parse_sink_spec("file=x,rotate_size=64k,rotate_keep=2.5"), Catch::Contains("'rotate_keep' must be a whole number"));
  CHECK_THROWS_WITH(parse_sink_spec("syslog=udp://h:1,queue=1.5"), Catch::Contains("'queue' must be a whole number"));
  CHECK_THROWS_WITH(parse_sink_spec("clickhouse=http://h/,batch=10.5"), Catch::Contains("'batch' must be a whole number"));
  CHECK(parse_sink_spec("file=x,events=alert+anomaly,rotate_size=64k,rotate_keep=3").rotate.keep == 3);
  auto load = [](const std::string& text) {
    YAML::Node root = YAML::Load(text);
    SinkConfig c;
    for (auto it = root.begin(); it != root.end(); ++it) parse_sink_key("site.yaml", it->first.as<std::string>(), it->second, c);
    return c;
  };
  CHECK_THROWS_WITH(load("rotate: {size: 1M, keep: 2.5}\n"), Catch::Contains("site.yaml:1:26: 'keep' must be a number"));
  CHECK_THROWS_WITH(load("sinks:\n  - {type: syslog, url: 'udp://h:1', queue: 1.5}\n"), Catch::Contains("site.yaml:2:45:"));
  CHECK_THROWS_WITH(load("sinks:\n  - {type: file, path: x, events: []}\n"), Catch::Contains("'events' lists no event type"));
  CHECK_THROWS_WITH(load("sinks:\n  - {type: file, path: x, events: [flows]}\n"), Catch::Contains("site.yaml:2:5: 'flows' is not an event type"));
}

TEST_CASE("A server URL the sink cannot use is a configuration error at its url line") {
  auto load = [](const std::string& text) {
    YAML::Node root = YAML::Load(text);
    SinkConfig c;
    for (auto it = root.begin(); it != root.end(); ++it) parse_sink_key("site.yaml", it->first.as<std::string>(), it->second, c);
    return c;
  };
  CHECK_THROWS_WITH(load("sinks:\n  - type: clickhouse\n    batch: 10\n    url: http://10.0.0.5:99999/\n"),
                    Catch::Contains("site.yaml:4:10: 'http://10.0.0.5:99999/': bad port '99999'"));
  CHECK_THROWS_WITH(load("sinks:\n  - type: clickhouse\n    url: 'http://h:8123/?db=a-b'\n"),
                    Catch::Contains("site.yaml:3:10: clickhouse db 'a-b' must be"));
  CHECK_THROWS_WITH(load("sinks:\n  - {type: syslog, url: 'tcp://:514'}\n"), Catch::Contains("site.yaml:2:25:"));
  CHECK_THROWS_WITH(parse_sink_spec("clickhouse=http://h:0/"), Catch::Contains("bad port '0'"));
  CHECK_THROWS_WITH(parse_sink_spec("syslog=udp://h:x"), Catch::Contains("bad port 'x'"));
  CHECK(load("sinks:\n  - {type: clickhouse, url: 'http://h:8123/?db=medmon'}\n").sinks.size() == 1);
}

TEST_CASE("A file sink on the --out file, or on another sink's file, is an error under any spelling") {
  TempDir td;
  std::string out = td.path + "/t.jsonl";
  { std::ofstream(out) << "kept\n"; }
  std::filesystem::create_directory(td.path + "/sub");
  std::filesystem::create_symlink(out, td.path + "/link.jsonl");
  for (const std::string& other : {td.path + "/./t.jsonl", td.path + "/sub/../t.jsonl", td.path + "/link.jsonl"}) {
    SinkConfig cfg;
    cfg.sinks.push_back(parse_sink_spec("file=" + other));
    CHECK_THROWS_WITH(make_sinks(cfg, out), Catch::Contains("is already the --out file"));
  }
  CHECK(slurp(out) == "kept\n");  // checked before anything is opened
  // A symbolic link to an --out file not made yet (relative, through another link, or a link
  // that is the --out file itself).
  std::string fresh = td.path + "/sub/new.jsonl";
  std::filesystem::create_symlink("sub/new.jsonl", td.path + "/dangling.jsonl");
  std::filesystem::create_symlink("dangling.jsonl", td.path + "/chain.jsonl");
  for (const std::string& other : {td.path + "/dangling.jsonl", td.path + "/chain.jsonl"}) {
    INFO(other);
    SinkConfig cfg;
    cfg.sinks.push_back(parse_sink_spec("file=" + other));
    CHECK_THROWS_WITH(make_sinks(cfg, fresh), Catch::Contains("is already the --out file"));
    SinkConfig back;
    back.sinks.push_back(parse_sink_spec("file=" + fresh));
    CHECK_THROWS_WITH(make_sinks(back, other), Catch::Contains("is already the --out file"));
  }
  CHECK_FALSE(exists(fresh));
  SinkConfig two;
  two.sinks.push_back(parse_sink_spec("file=" + td.path + "/a.jsonl,name=a"));
  two.sinks.push_back(parse_sink_spec("file=" + td.path + "/sub/../a.jsonl,name=b"));
  CHECK_THROWS_WITH(make_sinks(two, out), Catch::Contains("is already the file of sink 'a'"));
  SinkConfig fine;
  fine.sinks.push_back(parse_sink_spec("file=" + td.path + "/other.jsonl"));
  CHECK_NOTHROW(make_sinks(fine, td.path + "/sub/t.jsonl"));
}

TEST_CASE("YAML output keys: every key checked, errors with file:line:column") {
  auto load = [](const std::string& text) {
    YAML::Node root = YAML::Load(text);
    SinkConfig c;
    for (auto it = root.begin(); it != root.end(); ++it)
      if (!parse_sink_key("site.yaml", it->first.as<std::string>(), it->second, c)) throw SinkConfigError("not mine");
    return c;
  };
  SinkConfig c = load(
      "sensor_id: icu-1\n"
      "rotate: {size: 100M, interval: 3600, keep: 5, naming: timestamp}\n"
      "sinks:\n"
      "  - type: clickhouse\n"
      "    url: http://127.0.0.1:8123/?db=medmon\n"
      "    spool: /tmp/s\n"
      "  - {type: syslog, url: 'unix:/dev/log', format: cef, facility: local3}\n");
  CHECK(c.sensor_id == "icu-1");
  CHECK(c.rotate.size == 100u << 20);
  CHECK(c.rotate.interval_usec == 3600000000ll);
  CHECK(c.rotate.timestamp_names);
  REQUIRE(c.sinks.size() == 2);
  CHECK(c.sinks[1].facility == "local3");
  CHECK_THROWS_WITH(load("sinks:\n  - type: clickhouse\n    url: http://h/\n    batchsize: 3\n"),
                    Catch::Contains("site.yaml:4:5: unknown key 'batchsize'"));
  CHECK_THROWS_WITH(load("sinks:\n  - type: syslog\n    url: ftp://h\n"), Catch::Contains("site.yaml:2:5:"));
  CHECK_THROWS_WITH(load("rotate: {size: lots}\n"), Catch::Contains("site.yaml:1:16: 'size' must be a size"));
  CHECK_THROWS_WITH(load("sensor_id: 'a b'\n"), Catch::Contains("site.yaml:1:12:"));
  CHECK_THROWS_WITH(load("sinks:\n  - {url: x}\n"), Catch::Contains("without 'type'"));
}

namespace {
// A TCP listener on loopback that completes connections (the kernel's backlog) but never reads
// or answers: a receiver that hangs.
struct DeafListener {
  DeafListener() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
  ~DeafListener() { close(fd); }
  int fd = -1;
  uint16_t port = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

TEST_CASE("HTTP: a chunk size near 2^64 is a truncated reply, never read as the rest of the reply again") {
  DeafListener server;
  auto reply_with = [&](const std::string& chunked) {
    std::thread t([&] {
      int c = accept(server.fd, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, size_t(n));
      }
      std::string out = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked;
      (void)!send(c, out.data(), out.size(), MSG_NOSIGNAL);
      close(c);
    });
    Url u;
    REQUIRE(parse_url("http://127.0.0.1:" + std::to_string(server.port) + "/", u, 8123).empty());
    HttpResponse resp;
    std::string err;
    bool sent = false;
    bool ok = http_request(u, "POST", "/?query=x", "", 2000000, resp, err, sent);
    t.join();
    return std::make_tuple(ok, resp.body, err);
  };
  // 2^64 - 2 plus the CRLF after the chunk wraps to nothing: the reply's rest became the body.
  auto [ok, body, err] = reply_with("fffffffffffffffe\r\n0\r\n\r\n");
  CHECK_FALSE(ok);
  CHECK(body.empty());
  CHECK(err == "truncated chunked reply");
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "fffffffffffffffe\r\n";
  auto [ok2, body2, err2] = reply_with(many);
  CHECK_FALSE(ok2);
  CHECK(body2.size() < many.size());
  // A well-formed reply still reads.
  auto [ok3, body3, err3] = reply_with("3\r\n42\n\r\n0\r\n\r\n");
  CHECK(ok3);
  CHECK(body3 == "42\n");
}

TEST_CASE("A receiver failure moves the queue to the spool: a killed sensor loses none of it") {
  TempDir td;
  SinkSpec spec;
  spec.name = "t";
  spec.queue = 1000;
  spec.batch = 20;
  spec.flush_usec = 50000;
  spec.spool_dir = td.path + "/spool";
  spec.drain_usec = 0;
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::atomic<bool> up{false};
    auto* sink = new AsyncSink(spec, std::make_unique<FakeBackend>(up));
    for (int i = 0; i < 100; ++i) sink->write_line("flow", event(i));
    for (int t = 0; t < 100 && sink->counters().spooled < 100; ++t) usleep(20000);
    if (sink->counters().spooled < 100) _exit(3);
    sink->flush();  // what the sensor does every second
    usleep(100000);
    kill(getpid(), SIGKILL);  // no drain, no destructor
    _exit(4);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  std::atomic<bool> up{true};
  auto backend = std::make_unique<FakeBackend>(up);
  FakeBackend* fake = backend.get();
  spec.drain_usec = 10000000;
  AsyncSink sink(spec, std::move(backend));
  CHECK(sink.close() == 0);
  std::lock_guard<std::mutex> g(fake->m);
  REQUIRE(fake->got.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(nlohmann::json::parse(fake->got[size_t(i)].line)["n"] == i);
}

TEST_CASE("The queued counter includes the batch being retried") {
  // Without a spool directory of its own, a sink keeps its queue in memory while the receiver
  // is down: every event written is then queued.
  std::atomic<bool> up{false};
  SinkSpec spec;
  spec.name = "t";
  spec.batch = 20;
  spec.flush_usec = 20000;
  spec.drain_usec = 0;
  AsyncSink sink(spec, std::make_unique<FakeBackend>(up));
  for (int i = 0; i < 50; ++i) sink.write_line("flow", event(i));
  for (int t = 0; t < 200 && sink.counters().errors < 2; ++t) usleep(10000);
  CHECK(sink.counters().errors >= 2);
  CHECK(sink.counters().queued == 50);
  sink.close();
}

TEST_CASE("Sinks drain at exit side by side, not one after the other") {
  TempDir td;
  SinkConfig cfg;
  // Port 1 on loopback refuses: both receivers are down for the whole drain.
  cfg.sinks.push_back(parse_sink_spec("syslog=tcp://127.0.0.1:1,name=a,drain_timeout=1,spool=" + td.path + "/a"));
  cfg.sinks.push_back(parse_sink_spec("syslog=tcp://127.0.0.1:1,name=b,drain_timeout=1,spool=" + td.path + "/b"));
  auto sinks = make_sinks(cfg, td.path + "/out.jsonl");
  EventOutput out;
  sinks->attach(out);
  for (int i = 0; i < 10; ++i) out.emit_line("flow", event(i));
  out.flush();
  auto t0 = std::chrono::steady_clock::now();
  sinks->close(false);
  double took = seconds_since(t0);
  CHECK(took >= 0.9);
  CHECK(took < 1.7);
}

TEST_CASE("A second stop signal ends the drain at once and keeps every undelivered event in the spool") {
  TempDir td;
  DeafListener deaf;
  SinkConfig cfg;
  // A receiver that is down, and one that takes the request and never answers.
  cfg.sinks.push_back(parse_sink_spec("syslog=tcp://127.0.0.1:1,name=a,drain_timeout=30,spool=" + td.path + "/a"));
  cfg.sinks.push_back(parse_sink_spec("clickhouse=http://127.0.0.1:" + std::to_string(deaf.port) +
                                      "/?db=medmon,name=c,timeout=30,drain_timeout=30,spool=" + td.path + "/c"));
  auto sinks = make_sinks(cfg, td.path + "/out.jsonl");
  EventOutput out;
  sinks->attach(out);
  for (int i = 0; i < 10; ++i) out.emit_line("flow", event(i));
  out.flush();
  usleep(300000);
  clear_drain_cut();
  std::thread second_signal([] {
    usleep(500000);
    request_drain_cut();
  });
  auto t0 = std::chrono::steady_clock::now();
  sinks->close(false);
  double took = seconds_since(t0);
  second_signal.join();
  clear_drain_cut();
  CHECK(took < 2.0);
  // Every event is in a spool, none lost: 10 lines in each.
  for (const char* d : {"/a", "/c"}) {
    std::string all;
    if (DIR* dd = opendir((td.path + d).c_str())) {
      while (dirent* e = readdir(dd))
        if (std::string(e->d_name).find(".spool") != std::string::npos) all += slurp(td.path + d + "/" + e->d_name);
      closedir(dd);
    }
    CHECK(std::count(all.begin(), all.end(), '\n') == 10);
  }
}

namespace {
// A DNS server that does not answer: the lookup returns only when the test lets it.
std::atomic<bool> g_dns_release{false};
std::atomic<int> g_dns_running{0};
int hanging_resolver(const char*, const char*, const addrinfo*, addrinfo** res) {
  ++g_dns_running;
  while (!g_dns_release) usleep(10000);
  *res = nullptr;
  --g_dns_running;
  return EAI_AGAIN;
}
}  // namespace

TEST_CASE("A host name that does not resolve is bounded by the timeout and the drain deadline") {
  g_dns_release = false;
  set_resolver(&hanging_resolver);
  Url u;
  REQUIRE(parse_url("tcp://siem.example.org:514", u, 514).empty());
  std::string err;
  auto t0 = std::chrono::steady_clock::now();
  CHECK(connect_url(u, SOCK_STREAM, 300000, err) == -1);
  CHECK(seconds_since(t0) < 1.0);
  CHECK(err == "siem.example.org: name resolution timed out");
  Deadline deadline{steady_ns() + 200000000};
  t0 = std::chrono::steady_clock::now();
  CHECK(connect_url(u, SOCK_STREAM, 30000000, err, nullptr, &deadline) == -1);
  CHECK(seconds_since(t0) < 1.0);
  CHECK(err == "siem.example.org: drain_timeout reached");
  // An address is not looked up.
  REQUIRE(parse_url("tcp://127.0.0.1:1", u, 514).empty());
  CHECK(connect_url(u, SOCK_STREAM, 300000, err) == -1);
  CHECK(err.find("name resolution") == std::string::npos);
  g_dns_release = true;
  for (int i = 0; i < 200 && g_dns_running > 0; ++i) usleep(10000);
  set_resolver(nullptr);
}

namespace {
// A unix stream listener that never accepts, its backlog full: a stuck local syslog daemon.
struct FullUnixListener {
  explicit FullUnixListener(const std::string& p) : path(p) {
    fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 0) == 0);
    for (int i = 0; i < 16; ++i) {
      int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        full = errno == EAGAIN;
        ::close(c);
        break;
      }
      clients.push_back(c);
    }
    REQUIRE(full);
  }
  ~FullUnixListener() {
    for (int c : clients) ::close(c);
    ::close(fd);
  }
  std::string path;
  int fd = -1;
  bool full = false;
  std::vector<int> clients;
};
}  // namespace

TEST_CASE("A unix stream socket whose listen backlog is full is bounded by the timeout and the drain deadline") {
  TempDir td;
  FullUnixListener stuck(td.path + "/log");
  Url u;
  REQUIRE(parse_url("unix:" + stuck.path, u, 514).empty());
  std::string err;
  auto t0 = std::chrono::steady_clock::now();
  CHECK(connect_url(u, SOCK_DGRAM, 300000, err) == -1);
  CHECK(seconds_since(t0) < 1.0);
  CHECK(err.find("timed out") != std::string::npos);
  Deadline deadline{steady_ns() + 200000000};
  t0 = std::chrono::steady_clock::now();
  CHECK(connect_url(u, SOCK_DGRAM, 3000000, err, nullptr, &deadline) == -1);
  CHECK(seconds_since(t0) < 1.0);
  CHECK(err == stuck.path + ": drain_timeout reached");
  SECTION("the drain ends at drain_timeout, not after the connect's timeout") {
    SinkSpec spec = parse_sink_spec("syslog=unix:" + stuck.path + ",name=s,timeout=5,drain_timeout=1,spool=" + td.path + "/s");
    spec.name = "s";
    AsyncSink sink(spec, std::make_unique<SyslogBackend>(spec, "site-a"));
    for (int i = 0; i < 10; ++i) sink.write_line("flow", event(i));
    sink.flush();
    usleep(300000);  // the sink thread is in the connect
    t0 = std::chrono::steady_clock::now();
    CHECK(sink.close() > 0);
    CHECK(seconds_since(t0) < 2.5);
  }
}

TEST_CASE("A ClickHouse server whose name does not resolve does not hold the exit past drain_timeout") {
  g_dns_release = false;
  set_resolver(&hanging_resolver);
  TempDir td;
  {
    SinkSpec spec = parse_sink_spec("clickhouse=http://clickhouse.example.org:8123/?db=medmon,name=c,timeout=30,drain_timeout=1,spool=" +
                                    td.path + "/c");
    spec.name = "c";
    AsyncSink sink(spec, std::make_unique<ClickHouseBackend>(spec, "site-a"));
    for (int i = 0; i < 10; ++i) sink.write_line("flow", event(i));
    sink.flush();
    usleep(300000);  // the sink thread waits for the name
    auto t0 = std::chrono::steady_clock::now();
    CHECK(sink.close() > 0);
    CHECK(seconds_since(t0) < 2.5);
  }
  g_dns_release = true;
  for (int i = 0; i < 200 && g_dns_running > 0; ++i) usleep(10000);
  set_resolver(nullptr);
}

TEST_CASE("The drain timeout bounds a delivery in progress") {
  TempDir td;
  DeafListener deaf;
  SECTION("syslog over TCP to a receiver that never reads") {
    SinkSpec spec = parse_sink_spec("syslog=tcp://127.0.0.1:" + std::to_string(deaf.port) +
                                    ",name=s,queue_bytes=256M,timeout=5,drain_timeout=1,spool=" + td.path + "/s");
    spec.name = "s";
    AsyncSink sink(spec, std::make_unique<SyslogBackend>(spec, "site-a"));
    // More than the socket buffers of both ends hold.
    for (int i = 0; i < 8000; ++i) sink.write_line("flow", event(i, 1700000000, 4000));
    sink.flush();
    usleep(300000);  // the sink thread is stuck in a send
    auto t0 = std::chrono::steady_clock::now();
    CHECK(sink.close() > 0);
    CHECK(seconds_since(t0) < 2.5);
  }
  SECTION("ClickHouse that never answers") {
    SinkSpec spec = parse_sink_spec("clickhouse=http://127.0.0.1:" + std::to_string(deaf.port) +
                                    "/?db=medmon,name=c,timeout=5,drain_timeout=1,spool=" + td.path + "/c");
    spec.name = "c";
    AsyncSink sink(spec, std::make_unique<ClickHouseBackend>(spec, "site-a"));
    for (int i = 0; i < 10; ++i) sink.write_line("flow", event(i));
    sink.flush();
    usleep(300000);  // the request is sent; the sink waits for the reply
    auto t0 = std::chrono::steady_clock::now();
    CHECK(sink.close() > 0);
    CHECK(seconds_since(t0) < 2.5);
  }
}

TEST_CASE("Two sinks on one spool directory are an error; a spool directory in use is refused") {
  TempDir td;
  std::string out = td.path + "/out.jsonl";
  auto two = [&](const std::string& a, const std::string& b) {
    SinkConfig cfg;
    cfg.sinks.push_back(parse_sink_spec("syslog=udp://127.0.0.1:9,name=a,spool=" + a));
    cfg.sinks.push_back(parse_sink_spec("clickhouse=http://127.0.0.1:9/?db=m,name=b,spool=" + b));
    return cfg;
  };
  std::filesystem::create_directory(td.path + "/s");
  CHECK_THROWS_WITH(make_sinks(two(td.path + "/s", td.path + "/s/"), out),
                    Catch::Contains("--sink clickhouse=") && Catch::Contains("spool directory of sink 'a'"));
  CHECK_THROWS_WITH(make_sinks(two(td.path + "/s", td.path + "/./s/../s"), out), Catch::Contains("spool directory of sink 'a'"));
  CHECK_THROWS_WITH(make_sinks(two(td.path + "/s", td.path + "/s/inner"), out), Catch::Contains("spool directory of sink 'a'"));
  CHECK_THROWS_WITH(make_sinks(two(td.path + "/s/inner", td.path + "/s"), out), Catch::Contains("spool directory of sink 'a'"));
  CHECK_NOTHROW(make_sinks(two(td.path + "/s1", td.path + "/s2"), out));
  // The YAML form names file:line.
  YAML::Node root = YAML::Load("sinks:\n  - {type: syslog, url: 'udp://h:1', spool: " + td.path +
                               "/y}\n  - {type: syslog, url: 'udp://h:2', spool: " + td.path + "/y}\n");
  SinkConfig y;
  parse_sink_key("site.yaml", "sinks", root["sinks"], y);
  CHECK_THROWS_WITH(make_sinks(y, out), Catch::Contains("site.yaml:3:5:"));
  // Another process (or sink) holding the directory.
  std::atomic<bool> up{false};
  SinkSpec spec;
  spec.name = "t";
  spec.spool_dir = td.path + "/held";
  spec.drain_usec = 0;
  AsyncSink first(spec, std::make_unique<FakeBackend>(up));
  CHECK_THROWS_WITH(AsyncSink(spec, std::make_unique<FakeBackend>(up)), Catch::Contains("in use"));
  first.close();
}

TEST_CASE("A run refused for its spool directory leaves the files of an earlier run alone") {
  TempDir td;
  std::string out = td.path + "/out.jsonl", side = td.path + "/side.jsonl";
  const std::string earlier = event(1) + "\n";
  auto reset = [&] {
    for (auto& p : std::filesystem::directory_iterator(td.path))
      if (p.path().filename().string().rfind("out.jsonl", 0) == 0 || p.path().filename().string().rfind("side.jsonl", 0) == 0)
        std::filesystem::remove(p.path());
    std::ofstream(out) << earlier;
    std::ofstream(side) << earlier;
  };
  auto untouched = [&] {
    CHECK(slurp(out) == earlier);
    CHECK(slurp(side) == earlier);
    CHECK_FALSE(exists(out + ".1"));
    CHECK_FALSE(exists(side + ".1"));
  };
  auto config = [&](const std::string& spool, bool rotate) {
    SinkConfig cfg;
    if (rotate) cfg.rotate.size = 1 << 20;
    cfg.sinks.push_back(parse_sink_spec("file=" + side + (rotate ? ",rotate_size=1M" : "")));
    cfg.sinks.push_back(parse_sink_spec("syslog=udp://127.0.0.1:9" + (spool.empty() ? "" : ",spool=" + spool)));
    return cfg;
  };
  // The spool directory is held by a running sensor.
  std::atomic<bool> up{false};
  SinkSpec held;
  held.name = "t";
  held.spool_dir = td.path + "/held";
  held.drain_usec = 0;
  AsyncSink first(held, std::make_unique<FakeBackend>(up));
  std::ofstream(td.path + "/plain") << "x";
  for (bool rotate : {false, true}) {
    INFO("rotation " << rotate);
    // analyze: everything at once.
    reset();
    CHECK_THROWS_WITH(make_sinks(config(held.spool_dir, rotate), out), Catch::Contains("in use"));
    untouched();
    // live: opened first, started after privileges are dropped.
    reset();
    auto set = make_sinks(config(held.spool_dir, rotate), out, false);
    CHECK_THROWS_WITH(set->start(), Catch::Contains("in use"));
    set.reset();
    untouched();
    // A spool directory that cannot be made (under a regular file).
    reset();
    CHECK_THROWS(make_sinks(config(td.path + "/plain/spool", rotate), out));
    untouched();
    // The private spool directory under a $TMPDIR that does not exist.
    reset();
    const char* was = std::getenv("TMPDIR");
    std::string saved = was ? was : "";
    setenv("TMPDIR", (td.path + "/nonexistent").c_str(), 1);
    CHECK_THROWS_WITH(make_sinks(config("", rotate), out), Catch::Contains("spool directory"));
    if (was) setenv("TMPDIR", saved.c_str(), 1);
    else unsetenv("TMPDIR");
    untouched();
  }
  // A run that starts empties (or rotates away) the earlier files only then.
  reset();
  {
    auto set = make_sinks(config(td.path + "/mine", false), out, false);
    CHECK(slurp(out) == earlier);
    set->start();
    CHECK(slurp(out).empty());
    CHECK(slurp(side).empty());
  }
  reset();
  {
    auto set = make_sinks(config(td.path + "/mine", true), out, false);
    CHECK_FALSE(exists(out + ".1"));
    set->start();
    CHECK(slurp(out + ".1") == earlier);
    CHECK(slurp(side + ".1") == earlier);
  }
  first.close();
}

TEST_CASE("Syslog over TCP: a message cut short does not bring acknowledged messages back") {
  // Small messages the collector's kernel acknowledged, then one larger than both ends' buffers,
  // cut short when the collector (which never reads) takes nothing more.
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(l, 4) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  SinkSpec spec = parse_sink_spec("syslog=tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + ",name=s,timeout=1");
  spec.name = "s";
  auto backend = std::make_unique<SyslogBackend>(spec, "site-a");
  const int small = 20;
  std::vector<Record> batch;
  for (int i = 0; i < small; ++i) batch.push_back(Record{"r", uint64_t(i + 1), "flow", event(i)});
  batch.push_back(Record{"r", uint64_t(small + 1), "flow", event(small, 1700000000, 32u << 20)});
  std::string err;
  CHECK_FALSE(backend->deliver(batch, err));  // the first connection waits in the backlog, unread
  int first = accept(l, nullptr, nullptr);
  REQUIRE(first >= 0);
  close(first);
  // The second collector reads: what comes again is the message cut short, alone.
  std::vector<int> seen;
  std::thread reader([&] {
    pollfd p{l, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return;
    int c = accept(l, nullptr, nullptr);
    timeval tv{10, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    std::vector<char> buf(1 << 20);
    for (;;) {
      ssize_t r = recv(c, buf.data(), buf.size(), 0);
      if (r <= 0) break;
      got.append(buf.data(), size_t(r));
    }
    close(c);
    for (size_t pos = 0; pos < got.size();) {  // octet counting: LEN SP MSG
      size_t sp = got.find(' ', pos);
      if (sp == std::string::npos) break;
      size_t n = std::stoul(got.substr(pos, sp - pos));
      if (sp + 1 + n > got.size()) break;
      std::string m = got.substr(sp + 1, std::min<size_t>(n, 4096));
      size_t k = m.find("\"n\":");
      seen.push_back(k == std::string::npos ? -1 : std::atoi(m.c_str() + k + 4));
      pos = sp + 1 + n;
    }
  });
  CHECK(backend->deliver(batch, err));
  backend.reset();  // the reader sees the end
  reader.join();
  CHECK(seen == std::vector<int>{small});
  close(l);
}

TEST_CASE("Syslog over TCP: messages the receiver never acknowledged are sent again, not counted delivered") {
  TempDir td;
  // A collector that takes little (a tiny receive window), never reads, and goes away.
  int l = socket(AF_INET, SOCK_STREAM, 0);
  int small = 2048;
  REQUIRE(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(l, 4) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  SinkSpec spec = parse_sink_spec("syslog=tcp://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) +
                                  ",name=s,timeout=3,drain_timeout=10,spool=" + td.path + "/s");
  spec.name = "s";
  AsyncSink sink(spec, std::make_unique<SyslogBackend>(spec, "site-a"));
  const int n = 40;
  for (int i = 0; i < n; ++i) sink.write_line("flow", event(i, 1700000000, 300));
  sink.flush();
  int first = accept_within(l, 5000);
  REQUIRE(first >= 0);
  usleep(500000);  // the messages wait in the sender's queue, most unacknowledged
  close(first);    // unread data: the connection is reset
  int second = accept_within(l, 5000);
  REQUIRE(second >= 0);  // the unacknowledged messages come again
  std::string got;
  timeval tv{5, 0};
  setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[65536];
  while (got.find("\"n\":" + std::to_string(n - 1) + ",") == std::string::npos) {
    ssize_t r = recv(second, buf, sizeof buf, 0);
    if (r <= 0) break;
    got.append(buf, size_t(r));
  }
  // A contiguous tail of the events, up to the last: what the first collector held but never
  // read (acknowledged by its kernel) is the limit TCP syslog has.
  std::vector<int> seen;
  for (size_t p = got.find("\"n\":"); p != std::string::npos; p = got.find("\"n\":", p + 1))
    seen.push_back(std::atoi(got.c_str() + p + 4));
  REQUIRE(!seen.empty());
  CHECK(seen.back() == n - 1);
  CHECK(seen.size() > size_t(n / 2));
  for (size_t i = 1; i < seen.size(); ++i) CHECK(seen[i] == seen[i - 1] + 1);
  CHECK(sink.counters().errors >= 1);
  sink.close();
  CHECK(sink.counters().delivered == uint64_t(n));
  close(second);
  close(l);
}

namespace {
// A stand-in for ClickHouse's HTTP interface on loopback: each request (head and body read) goes
// to `handle`, which writes the reply on the connection itself.
struct FakeHttp {
  using Handler = std::function<void(int fd, const std::string& query, const std::string& body)>;
  explicit FakeHttp(Handler h) : handle(std::move(h)) {
    thread = std::thread([this] {
      for (;;) {
        pollfd p{listener.fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
          if (stop) return;
          continue;
        }
        int c = accept(listener.fd, nullptr, nullptr);
        if (c < 0) continue;
        std::string in;
        char buf[65536];
        size_t he = std::string::npos;
        while ((he = in.find("\r\n\r\n")) == std::string::npos) {
          ssize_t n = recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          in.append(buf, size_t(n));
        }
        if (he == std::string::npos) { close(c); continue; }
        size_t cl = in.find("Content-Length: ");
        size_t want = cl == std::string::npos ? 0 : std::strtoul(in.c_str() + cl + 16, nullptr, 10);
        while (in.size() - he - 4 < want) {
          ssize_t n = recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          in.append(buf, size_t(n));
        }
        std::string target = in.substr(in.find(' ') + 1, in.find(' ', in.find(' ') + 1) - in.find(' ') - 1);
        std::string query;
        size_t q = target.find("query=");
        for (size_t i = q == std::string::npos ? target.size() : q + 6; i < target.size() && target[i] != '&'; ++i) {
          if (target[i] == '%' && i + 2 < target.size()) {
            query.push_back(char(std::strtol(target.substr(i + 1, 2).c_str(), nullptr, 16)));
            i += 2;
          } else {
            query.push_back(target[i]);
          }
        }
        ++requests;
        handle(c, query, in.substr(he + 4));
        close(c);
      }
    });
  }
  ~FakeHttp() {
    stop = true;
    thread.join();
  }
  static void reply(int fd, int status, const std::string& body) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: " + std::to_string(body.size()) +
                      "\r\nConnection: close\r\n\r\n" + body;
    (void)!send(fd, out.data(), out.size(), MSG_NOSIGNAL);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(listener.port) + "/?db=medmon"; }
  DeafListener listener;
  Handler handle;
  std::atomic<bool> stop{false};
  std::atomic<int> requests{0};
  std::thread thread;
};
}  // namespace

TEST_CASE("ClickHouse: a schema error stops the sink and keeps the events; only bad-row codes drop rows") {
  struct Case { int status; std::string body; bool stops; };
  const Case cases[] = {
      {400, "Code: 44, e.displayText() = DB::Exception: Cannot insert column alert_mds2, because it is MATERIALIZED column", true},
      {400, "Code: 15. DB::Exception: Column src_ip specified more than once. (DUPLICATE_COLUMN)", true},
      {400, "Code: 16. DB::Exception: No such column seq in table medmon.flow. (NO_SUCH_COLUMN_IN_TABLE)", true},
      {400, "Code: 60. DB::Exception: Table medmon.flow does not exist. (UNKNOWN_TABLE)", true},
      {400, "Code: 81. DB::Exception: Database medmon does not exist. (UNKNOWN_DATABASE)", true},
      {400, "Code: 62. DB::Exception: Syntax error: failed at position 20. (SYNTAX_ERROR)", true},
      {500, "Code: 44, e.displayText() = DB::Exception: Illegal column", true},
      {400, "Bad Request", true},  // no ClickHouse code: nothing says the rows are bad
      {400, "Code: 72, e.displayText() = DB::Exception: Cannot parse number", false},
      {500, "Code: 27, e.displayText() = DB::Exception: Cannot parse input", false},
  };
  for (const auto& k : cases) {
    CAPTURE(k.status, k.body);
    TempDir td;
    FakeHttp server([&](int fd, const std::string& query, const std::string&) {
      if (query.rfind("INSERT", 0) == 0) FakeHttp::reply(fd, k.status, k.body);
      else FakeHttp::reply(fd, 200, "0\n");
    });
    SinkSpec spec = parse_sink_spec("clickhouse=" + server.url() + ",name=c,timeout=2,drain_timeout=5,spool=" + td.path + "/c");
    auto sink = std::make_unique<AsyncSink>(spec, std::make_unique<ClickHouseBackend>(spec, "site-a"));
    for (int i = 0; i < 10; ++i) sink->write_line("flow", event(i));
    sink->flush();
    const auto& c = sink->counters();
    for (int t = 0; t < 300 && !c.stopped && c.dropped + c.delivered < 10; ++t) usleep(10000);
    uint64_t left = sink->close();
    if (k.stops) {
      CHECK(c.stopped == 1);
      CHECK(c.dropped == 0);
      CHECK(c.spooled == 10);
      CHECK(left > 0);
      CHECK(server.requests == 1);  // not split in halves, not asked again
    } else {
      CHECK(c.stopped == 0);
      CHECK(c.dropped == 10);
      CHECK(left == 0);
    }
  }
}

TEST_CASE("ClickHouse replies: what refuses the rows, what refuses the sink, what is retried") {
  using R = ClickHouseBackend::Refusal;
  auto of = [](int status, const std::string& body) { return ClickHouseBackend::refusal(status, "h:8123: HTTP " + std::to_string(status) + ": " + body); };
  CHECK(of(401, "Code: 516. DB::Exception: Authentication failed") == R::sink);
  CHECK(of(404, "Code: 60, e.displayText() = DB::Exception: Table m.x doesn't exist.") == R::sink);
  CHECK(of(500, "Code: 81, e.displayText() = DB::Exception: Database x doesn't exist") == R::sink);
  CHECK(of(501, "Code: 48, e.displayText() = DB::Exception: Method write is not supported by storage Merge") == R::sink);
  CHECK(of(400, "Code: 117. DB::Exception: Duplicate field found while parsing JSONEachRow format") == R::rows);
  CHECK(of(400, "Code: 36. DB::Exception: Bad arguments") == R::sink);
  CHECK(of(413, "Request Entity Too Large") == R::rows);  // a proxy's limit: halves go in
  CHECK(of(408, "") == R::none);
  CHECK(of(429, "Too many requests") == R::none);
  CHECK(of(500, "Code: 241, e.displayText() = DB::Exception: Memory limit (total) exceeded") == R::none);
  CHECK(of(500, "Code: 32, e.displayText() = DB::Exception: Attempt to read after eof") == R::none);
  CHECK(of(503, "Service Unavailable") == R::none);
}

TEST_CASE("ClickHouse: a server that sends its reply a byte at a time fails the attempt at request_timeout") {
  TempDir td;
  std::atomic<int> inserts{0};
  std::atomic<bool> done{false};
  FakeHttp server([&](int fd, const std::string& query, const std::string&) {
    if (query.rfind("INSERT", 0) != 0) return FakeHttp::reply(fd, 200, "0\n");
    if (++inserts > 1) return FakeHttp::reply(fd, 200, "");
    // Each byte well within `timeout`, the reply never complete.
    std::string head = "HTTP/1.1 200 OK\r\nX-Slow: ";
    for (int i = 0; i < 100 && !done; ++i) {
      if (send(fd, head.data() + std::min<size_t>(size_t(i), head.size() - 1), 1, MSG_NOSIGNAL) != 1) return;
      usleep(200000);
    }
  });
  SinkSpec spec = parse_sink_spec("clickhouse=" + server.url() + ",name=c,timeout=1,request_timeout=1,drain_timeout=20,spool=" +
                                  td.path + "/c");
  AsyncSink sink(spec, std::make_unique<ClickHouseBackend>(spec, "site-a"));
  for (int i = 0; i < 10; ++i) sink.write_line("flow", event(i));
  sink.flush();
  const auto& c = sink.counters();
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < 600 && c.delivered < 10; ++t) usleep(10000);
  CHECK(seconds_since(t0) < 4);  // not the 20 s of the drip
  CHECK(c.errors >= 1);
  CHECK(c.delivered == 10);
  CHECK(sink.close() == 0);
  done = true;
}

TEST_CASE("Spool: a write the disk cut short leaves no torn line to spoil the records written after it") {
  TempDir td;
  // In a child: a file size limit cuts a spool write short (EFBIG after part of it), then room
  // comes back (the limit is raised, as when disk space is freed).
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl{1000, RLIM_INFINITY};
    setrlimit(RLIMIT_FSIZE, &rl);
    Spool sp(td.path + "/spool", 1u << 20);
    uint64_t seq = 0;
    for (int i = 0; i < 5; ++i) sp.append(Record{"r", ++seq, "flow", event(int(seq), 1700000000, 150)});
    sp.sync();  // past 1000 bytes: cut short
    std::string err;
    if (sp.take_lost(err) == 0) _exit(3);
    rl.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &rl);
    const uint64_t after = seq + 1;
    for (int i = 0; i < 5; ++i) sp.append(Record{"r", ++seq, "flow", event(int(seq), 1700000000, 150)});
    sp.sync();
    if (sp.take_lost(err) != 0) _exit(4);
    std::vector<uint64_t> ends;
    uint64_t damaged = 0;
    std::vector<Record> recs = sp.read(sp.take_oldest(), ends, damaged);
    if (damaged != 0) _exit(5);
    // Every record written after room came back reads back whole.
    std::set<uint64_t> seqs;
    for (auto& r : recs) seqs.insert(r.seq);
    for (uint64_t s = after; s <= seq; ++s)
      if (!seqs.count(s)) _exit(6);
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("Syslog over a unix stream socket: messages the receiver never read are sent again, not counted delivered") {
  TempDir td;
  // A local daemon that accepts, reads nothing, and closes: its unread messages are lost.
  std::string path = td.path + "/log.sock";
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  REQUIRE(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(l, 4) == 0);
  SinkSpec spec = parse_sink_spec("syslog=unix:" + path + ",name=s,timeout=3,drain_timeout=10,spool=" + td.path + "/s");
  spec.name = "s";
  AsyncSink sink(spec, std::make_unique<SyslogBackend>(spec, "site-a"));
  const int n = 40;
  for (int i = 0; i < n; ++i) sink.write_line("flow", event(i, 1700000000, 300));
  sink.flush();
  int first = accept_within(l, 5000);
  REQUIRE(first >= 0);
  usleep(300000);  // every message waits in the receiver's queue, unread
  CHECK(sink.counters().delivered == 0);
  close(first);    // unread data: the sender's end is reset
  int second = accept_within(l, 5000);
  REQUIRE(second >= 0);  // all of them come again
  std::string got;
  std::thread reader([&] {  // this receiver reads everything, up to the end
    timeval tv{10, 0};
    setsockopt(second, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[65536];
    for (;;) {
      ssize_t r = recv(second, buf, sizeof buf, 0);
      if (r <= 0) break;
      got.append(buf, size_t(r));
    }
  });
  for (int i = 0; i < 100 && sink.counters().delivered < uint64_t(n); ++i) usleep(50000);
  CHECK(sink.counters().delivered == uint64_t(n));  // once each, when read
  CHECK(sink.counters().errors >= 1);
  sink.close();
  reader.join();
  std::vector<int> seen;
  for (size_t p = got.find("\"n\":"); p != std::string::npos; p = got.find("\"n\":", p + 1))
    seen.push_back(std::atoi(got.c_str() + p + 4));
  std::vector<int> all(n);
  for (int i = 0; i < n; ++i) all[size_t(i)] = i;
  CHECK(seen == all);
  // Octet counting, as over TCP: LEN SP MSG.
  size_t sp = got.find(' ');
  REQUIRE(sp != std::string::npos);
  CHECK(got[sp + 1] == '<');
  CHECK(std::all_of(got.begin(), got.begin() + std::ptrdiff_t(sp), [](char c) { return c >= '0' && c <= '9'; }));
  close(second);
  close(l);
}
