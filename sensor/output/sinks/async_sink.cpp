#include "sensor/output/sinks/async_sink.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>

#include "sensor/common/diag.h"

namespace medmon {

namespace {
constexpr uint64_t kSegmentBytes = 4u << 20;
constexpr uint64_t kFirstSegment = 1000000000000000ull;  // room below for prepends
constexpr size_t kBatchBytes = 8u << 20;

bool write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

bool read_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  return true;
}

void mkdirs(const std::string& dir) {
  std::string cur;
  size_t i = 0;
  while (i <= dir.size()) {
    size_t j = dir.find('/', i);
    if (j == std::string::npos) j = dir.size();
    cur = dir.substr(0, j);
    if (!cur.empty() && ::mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error(fmt::format("spool directory {}: {}", cur, std::strerror(errno)));
    i = j + 1;
  }
}
}  // namespace

std::string new_run_id() {
  std::random_device rd;
  uint64_t v = (uint64_t(rd()) << 32) ^ rd();
  return fmt::format("{:012x}", v & 0xFFFFFFFFFFFFull);
}

// ---------------------------------------------------------------------------------------------
Spool::Spool(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_(max_bytes) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  mkdirs(dir_);
  // One process per spool directory: two would deliver, and delete, each other's segments.
  std::string lock = dir_ + "/lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) throw std::runtime_error(fmt::format("spool directory {}: {}", dir_, std::strerror(errno)));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    std::string holder;
    read_file(lock, holder);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(lock_fd_);
    if (e == EWOULDBLOCK)
      throw std::runtime_error(fmt::format("spool directory {} is in use by another medmon process{}", dir_,
                                           holder.empty() ? "" : " (pid " + holder + ")"));
    throw std::runtime_error(fmt::format("spool directory {}: lock: {}", dir_, std::strerror(e)));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) == 0) write_all(lock_fd_, pid.data(), pid.size());
  DIR* d = ::opendir(dir_.c_str());
  if (!d) {
    int e = errno;
    ::close(lock_fd_);
    throw std::runtime_error(fmt::format("spool directory {}: {}", dir_, std::strerror(e)));
  }
  std::vector<uint64_t> ids;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() != 26 || n.compare(20, 6, ".spool") != 0) continue;
    if (!std::all_of(n.begin(), n.begin() + 20, [](char c) { return c >= '0' && c <= '9'; })) continue;
    ids.push_back(std::stoull(n.substr(0, 20)));
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  for (uint64_t id : ids) {
    struct stat st;
    if (::stat(path(id).c_str(), &st) != 0) continue;
    segments_.push_back(id);
    bytes_ += uint64_t(st.st_size);
  }
  next_id_ = ids.empty() ? kFirstSegment : ids.back() + 1;
  std::string cur;
  if (read_file(dir_ + "/cursor", cur)) {
    unsigned long long s = 0, o = 0;
    if (std::sscanf(cur.c_str(), "%llu %llu", &s, &o) == 2) { cursor_seg_ = s; cursor_off_ = o; }
    // A cursor on a segment no longer there means nothing (pending_bytes() would search for it).
    if (std::find(segments_.begin(), segments_.end(), cursor_seg_) == segments_.end()) cursor_seg_ = cursor_off_ = 0;
  }
  // Check we may write here now rather than when the receiver is already down.
  std::string probe = dir_ + "/.probe";
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    ::close(lock_fd_);
    throw std::runtime_error(fmt::format("spool directory {}: {}", dir_, std::strerror(e)));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

Spool::~Spool() {
  sync();
  if (cur_fd_ >= 0) ::close(cur_fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string Spool::path(uint64_t seg) const { return fmt::format("{}/{:020}.spool", dir_, seg); }

std::string Spool::encode(const Record& r) {
  std::string s;
  s.reserve(r.run.size() + r.type.size() + r.line.size() + 28);
  s += r.run;
  s += '\t';
  s += std::to_string(r.seq);
  s += '\t';
  s += r.type;
  s += '\t';
  s += r.line;
  s += '\n';
  return s;
}

bool Spool::decode(std::string_view line, Record& r) {
  size_t a = line.find('\t');
  if (a == std::string_view::npos || a == 0 || a > 32) return false;
  size_t b = line.find('\t', a + 1);
  if (b == std::string_view::npos || b == a + 1 || b - a - 1 > 20) return false;
  size_t c = line.find('\t', b + 1);
  if (c == std::string_view::npos) return false;
  uint64_t seq = 0;
  for (size_t i = a + 1; i < b; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    seq = seq * 10 + uint64_t(line[i] - '0');
  }
  std::string_view ev = line.substr(c + 1);
  if (ev.empty() || ev.front() != '{' || ev.back() != '}') return false;
  r.run.assign(line.substr(0, a));
  r.seq = seq;
  r.type.assign(line.substr(b + 1, c - b - 1));
  r.line.assign(ev);
  return true;
}

void Spool::open_current() {
  cur_ = next_id_++;
  cur_fd_ = ::open(path(cur_).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  cur_bytes_ = 0;
}

bool Spool::append(const Record& r) {
  std::string e = encode(r);
  // The cap is on what is still to deliver: the delivered part of a segment being read (up to a
  // segment) would otherwise refuse events that early.
  if (pending_bytes() + e.size() > max_) return false;
  buf_ += e;
  ++buf_records_;
  if (buf_.size() >= (64u << 10)) sync();
  return true;
}

void Spool::sync() {
  if (buf_.empty()) return;
  if (cur_ == 0) open_current();
  if (cur_fd_ < 0 || !write_all(cur_fd_, buf_.data(), buf_.size())) {
    // Full or broken disk: those records are gone. A short write left part of a line, which the
    // next write would complete with another record's text: cut it off, or, failing that, end
    // the segment there (the reader skips a last line without its newline).
    lost_error_ = fmt::format("spool {}: {}", cur_fd_ < 0 ? path(cur_) : dir_, std::strerror(errno));
    lost_ += buf_records_;
    if (cur_fd_ >= 0 && ::ftruncate(cur_fd_, off_t(cur_bytes_)) != 0) {
      ::close(cur_fd_);
      cur_fd_ = -1;
    }
  } else {
    cur_bytes_ += buf_.size();
    bytes_ += buf_.size();
  }
  buf_.clear();
  buf_records_ = 0;
  if (cur_bytes_ >= kSegmentBytes || cur_fd_ < 0) {
    if (cur_fd_ >= 0) ::close(cur_fd_);
    cur_fd_ = -1;
    if (cur_bytes_) segments_.push_back(cur_);
    else ::unlink(path(cur_).c_str());
    cur_ = 0;
    cur_bytes_ = 0;
  }
}

bool Spool::prepend(const std::vector<Record>& recs) {
  std::string all;
  for (auto& r : recs) all += encode(r);
  return prepend_encoded(all);
}

bool Spool::prepend(const std::deque<Record>& recs) {
  std::string all;
  for (auto& r : recs) all += encode(r);
  return prepend_encoded(all);
}

bool Spool::prepend_encoded(const std::string& all) {
  if (all.empty()) return true;
  if (pending_bytes() + all.size() > max_) return false;
  uint64_t first = !segments_.empty() ? segments_.front() : (cur_ ? cur_ : next_id_);
  uint64_t id = first - 1;
  int fd = ::open(path(id).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = write_all(fd, all.data(), all.size());
  ::close(fd);
  if (!ok) { ::unlink(path(id).c_str()); return false; }
  segments_.push_front(id);
  bytes_ += all.size();
  return true;
}

uint64_t Spool::pending_bytes() const {
  // Called for every spooled event: no search while no segment is being read, and the one being
  // read is the oldest, found first.
  uint64_t done =
      cursor_seg_ != 0 && std::find(segments_.begin(), segments_.end(), cursor_seg_) != segments_.end() ? cursor_off_ : 0;
  return bytes() - std::min(done, bytes());
}

uint64_t Spool::take_oldest() {
  sync();
  if (segments_.empty() && cur_ != 0) {
    if (cur_fd_ >= 0) ::close(cur_fd_);
    cur_fd_ = -1;
    if (cur_bytes_) segments_.push_back(cur_);
    else ::unlink(path(cur_).c_str());
    cur_ = 0;
    cur_bytes_ = 0;
  }
  return segments_.empty() ? 0 : segments_.front();
}

std::vector<Record> Spool::read(uint64_t seg, std::vector<uint64_t>& ends, uint64_t& damaged) {
  std::vector<Record> out;
  ends.clear();
  std::string data;
  if (!read_file(path(seg), data)) return out;
  size_t pos = cursor_seg_ == seg ? std::min<size_t>(cursor_off_, data.size()) : 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) { ++damaged; break; }  // torn last write
    Record r;
    if (decode(std::string_view(data).substr(pos, nl - pos), r)) {
      out.push_back(std::move(r));
      ends.push_back(nl + 1);
    } else {
      ++damaged;
    }
    pos = nl + 1;
  }
  return out;
}

void Spool::commit(uint64_t seg, uint64_t off) {
  cursor_seg_ = seg;
  cursor_off_ = off;
  std::string tmp = dir_ + "/cursor.tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string s = fmt::format("{} {}\n", seg, off);
  bool ok = write_all(fd, s.data(), s.size());
  ::close(fd);
  if (ok) ::rename(tmp.c_str(), (dir_ + "/cursor").c_str());
}

void Spool::remove(uint64_t seg) {
  struct stat st;
  if (::stat(path(seg).c_str(), &st) == 0) bytes_ -= std::min<uint64_t>(bytes_, uint64_t(st.st_size));
  ::unlink(path(seg).c_str());
  auto it = std::find(segments_.begin(), segments_.end(), seg);
  if (it != segments_.end()) segments_.erase(it);
  if (cursor_seg_ == seg) {
    cursor_seg_ = cursor_off_ = 0;
    ::unlink((dir_ + "/cursor").c_str());
  }
}

// ---------------------------------------------------------------------------------------------
AsyncSink::AsyncSink(const SinkSpec& spec, std::unique_ptr<Backend> backend, bool start_now)
    : spec_(spec), backend_(std::move(backend)), run_id_(new_run_id()) {
  backend_->set_run(run_id_);
  backend_->set_deadline(&stop_deadline_);
  if (start_now) start();
}

void AsyncSink::start() {
  if (spool_) return;
  std::string dir = spec_.spool_dir;
  if (dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/medmon-spool-XXXXXX";
    std::vector<char> b(tmpl.begin(), tmpl.end());
    b.push_back(0);
    if (!::mkdtemp(b.data())) throw std::runtime_error(fmt::format("cannot create a spool directory in {}: {}", tmpl, std::strerror(errno)));
    dir = b.data();
    temp_spool_ = true;
  }
  auto spool = std::make_unique<Spool>(dir, spec_.spool_max);
  std::lock_guard<std::mutex> g(m_);
  spool_ = std::move(spool);
  spool_mode_ = !spool_->empty();  // an earlier run left events: they go first
  counters_.spool_bytes = spool_->pending_bytes();
  thread_ = std::thread([this] { run(); });
}

AsyncSink::~AsyncSink() { close(); }

bool AsyncSink::accepts(std::string_view type) const {
  if (spec_.events.empty()) return true;
  for (auto& e : spec_.events) if (e == type) return true;
  return false;
}

void AsyncSink::write_line(std::string_view event_type, std::string_view line) {
  if (!accepts(event_type)) return;
  std::lock_guard<std::mutex> g(m_);
  if (stopped_) { ++counters_.dropped; return; }
  Record r{run_id_, next_seq_++, std::string(event_type), std::string(line)};
  if (!spool_mode_ && mem_.size() < spec_.queue && mem_bytes_ + line.size() <= spec_.queue_bytes) {
    mem_bytes_ += line.size();
    mem_.push_back(std::move(r));
    counters_.queued = mem_.size() + in_flight_;
    if (mem_.size() >= spec_.batch) cv_.notify_one();
    return;
  }
  if (!spool_) { ++counters_.dropped; return; }  // not started yet
  if (!spool_mode_) { spool_mode_ = true; cv_.notify_one(); }
  if (spool_->append(r)) ++counters_.spooled;
  else ++counters_.dropped;
  spool_losses();
}

// Records a failed spool write took with it were counted as spooled: they are dropped. Also keeps
// spool_bytes current. Called with m_ held.
void AsyncSink::spool_losses() {
  std::string err;
  if (uint64_t n = spool_->take_lost(err)) {
    uint64_t was = counters_.spooled.load();
    counters_.spooled = was - std::min(n, was);
    counters_.dropped += n;
    print_err("medmon: sink {}: {} events dropped: {}\n", spec_.name, n, err);
  }
  counters_.spool_bytes = spool_->pending_bytes();
}

void AsyncSink::flush() {
  std::lock_guard<std::mutex> g(m_);
  flush_req_ = true;
  // Spooled events reach the disk at least as often as the sensor flushes (every second live).
  if (spool_mode_ && spool_) {
    spool_->sync();
    spool_losses();
  }
  cv_.notify_one();
}

void AsyncSink::report_error(const std::string& e) {
  auto now = std::chrono::steady_clock::now();
  if (last_error_shown_ == e && now - last_report_ < std::chrono::seconds(60)) return;
  last_error_shown_ = e;
  last_report_ = now;
  print_err("medmon: sink {}: {} (retrying; events wait in memory and in {})\n", spec_.name, e, spool_->dir());
}

bool AsyncSink::spool_queue(std::vector<Record>& batch) {
  // The batch gets a segment of its own, so that it is read back as the same batch: a backend
  // knows a batch it delivered part of by its first record.
  size_t queued = mem_.size();
  if (!mem_.empty() && !spool_->prepend(mem_)) return false;
  mem_.clear();
  mem_bytes_ = 0;
  counters_.spooled += queued;
  if (queued) spool_mode_ = true;  // what comes next goes behind them
  bool moved = spool_->prepend(batch);
  if (moved) {
    counters_.spooled += batch.size();
    batch.clear();
    in_flight_ = 0;
    spool_mode_ = true;
  }
  counters_.queued = mem_.size() + in_flight_;
  counters_.spool_bytes = spool_->pending_bytes();
  return moved;
}

AsyncSink::Outcome AsyncSink::deliver(std::vector<Record>& batch, bool from_memory) {
  auto backoff = std::chrono::milliseconds(100);
  bool failed = false;
  // Only into a spool directory that a later run reads (the private default is not), and once.
  bool may_spool = from_memory && !temp_spool_;
  for (;;) {
    std::string err;
    if (backend_->deliver(batch, err)) {
      uint64_t skipped = std::min<uint64_t>(backend_->take_skipped(), batch.size());
      counters_.delivered += batch.size() - skipped;
      counters_.dropped += skipped;
      if (failed && !last_error_shown_.empty()) {
        print_err("medmon: sink {}: delivering again\n", spec_.name);
        last_error_shown_.clear();
      }
      return Outcome::delivered;
    }
    failed = true;
    ++counters_.errors;
    if (backend_->refuses_sink()) return stop_delivering(batch, from_memory, err);
    std::unique_lock<std::mutex> lk(m_);
    auto now = std::chrono::steady_clock::now();
    if (stop_ && now >= deadline_) return Outcome::out_of_time;
    lk.unlock();
    report_error(err);
    lk.lock();
    // The receiver failed: what waits in memory goes to disk, where a crash or a kill does not
    // lose it, and is delivered from there.
    if (may_spool) {
      may_spool = false;
      if (spool_queue(batch)) return Outcome::spooled;
    }
    auto until = now + backoff;
    if (stop_) until = std::min(until, deadline_);
    cv_.wait_until(lk, until, [&] { return stop_ && std::chrono::steady_clock::now() >= deadline_; });
    if (stop_ && std::chrono::steady_clock::now() >= deadline_) return Outcome::out_of_time;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(5000));
  }
}

AsyncSink::Outcome AsyncSink::stop_delivering(std::vector<Record>& batch, bool from_memory, const std::string& error) {
  std::lock_guard<std::mutex> g(m_);
  refused_ = true;
  counters_.stopped = 1;
  last_error_shown_ = error;
  print_err("medmon: sink {}: {}: the server refuses the sink itself (user, password or rights, a missing "
            "database or table, or a table whose columns do not fit the rows); not retried: delivery stops until the sensor is restarted with the sink set "
            "right, and events are kept in the spool {}\n", spec_.name, error, spool_->dir());
  // From now on every event goes to the spool (write_line), behind the batch and the queue.
  spool_mode_ = true;
  if (from_memory && !spool_queue(batch)) {
    counters_.dropped += batch.size();
    batch.clear();
    in_flight_ = 0;
  }
  return Outcome::stopped;
}

void AsyncSink::run() {
  std::unique_lock<std::mutex> lk(m_);
  const auto flush_every = std::chrono::microseconds(spec_.flush_usec);
  auto next_flush = std::chrono::steady_clock::now() + flush_every;
  bool gave_up = false;
  while (!gave_up) {
    if (refused_) {
      // Nothing more is sent: events wait in the spool (write_line) until the sensor stops.
      cv_.wait(lk, [&] { return stop_; });
      break;
    }
    auto now = std::chrono::steady_clock::now();
    // Exiting and out of time, even with a receiver that accepts but slowly: spool the rest.
    if (stop_ && now >= deadline_ && (!mem_.empty() || spool_mode_)) break;
    // Memory first: whatever is there is older than anything spooled.
    if (!mem_.empty() && (mem_.size() >= spec_.batch || flush_req_ || stop_ || spool_mode_ || now >= next_flush)) {
      std::vector<Record> batch;
      size_t bytes = 0;
      // A batch is bounded in bytes too: the request body is built from it.
      while (!mem_.empty() && batch.size() < spec_.batch && bytes < kBatchBytes) {
        bytes += mem_.front().line.size();
        mem_bytes_ -= mem_.front().line.size();
        batch.push_back(std::move(mem_.front()));
        mem_.pop_front();
      }
      if (mem_.empty()) flush_req_ = false;
      in_flight_ = batch.size();
      lk.unlock();
      Outcome r = deliver(batch, true);
      lk.lock();
      in_flight_ = 0;
      if (r == Outcome::out_of_time) {
        for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
          mem_bytes_ += it->line.size();
          mem_.push_front(std::move(*it));
        }
        counters_.queued = mem_.size();
        gave_up = true;
        break;
      }
      counters_.queued = mem_.size();
      if (r == Outcome::delivered) next_flush = std::chrono::steady_clock::now() + flush_every;
      continue;
    }
    if (mem_.empty() && spool_mode_) {
      uint64_t seg = spool_->take_oldest();
      spool_losses();
      if (seg == 0) { spool_mode_ = false; continue; }  // caught up: back to memory
      lk.unlock();
      std::vector<uint64_t> ends;
      uint64_t damaged = 0;
      std::vector<Record> recs = spool_->read(seg, ends, damaged);
      counters_.dropped += damaged;
      bool whole = true;  // every record of the segment delivered
      for (size_t i = 0; i < recs.size() && whole && !gave_up;) {
        std::vector<Record> batch;
        size_t bytes = 0;
        while (i < recs.size() && batch.size() < spec_.batch && bytes < kBatchBytes) {
          bytes += recs[i].line.size();
          batch.push_back(std::move(recs[i++]));
        }
        Outcome r = deliver(batch, false);
        std::lock_guard<std::mutex> g(m_);  // the cursor is read by spool_losses() under it too
        if (r == Outcome::delivered) spool_->commit(seg, ends[i - 1]);
        else whole = false;
        if (r != Outcome::delivered && r != Outcome::stopped) gave_up = true;
        if (stop_ && std::chrono::steady_clock::now() >= deadline_) gave_up = true;
      }
      lk.lock();
      if (whole && !gave_up) spool_->remove(seg);
      counters_.spool_bytes = spool_->pending_bytes();
      continue;
    }
    if (stop_) break;
    if (mem_.empty()) cv_.wait(lk, [&] { return stop_ || spool_mode_ || flush_req_ || !mem_.empty(); });
    else cv_.wait_until(lk, next_flush, [&] { return stop_ || spool_mode_ || flush_req_ || mem_.size() >= spec_.batch; });
    if (mem_.empty()) flush_req_ = false;
  }
  // Out of time: what is still in memory goes before everything in the spool.
  if (!mem_.empty()) {
    std::vector<Record> rest(std::make_move_iterator(mem_.begin()), std::make_move_iterator(mem_.end()));
    mem_.clear();
    mem_bytes_ = 0;
    if (spool_->prepend(rest)) counters_.spooled += rest.size();
    else counters_.dropped += rest.size();
  }
  spool_->sync();
  spool_losses();
  counters_.queued = 0;
  stopped_ = true;
  cv_.notify_all();  // drained() waits for this
}

void AsyncSink::begin_close() {
  std::lock_guard<std::mutex> g(m_);
  if (!stop_) {
    stop_ = true;
    deadline_ = std::chrono::steady_clock::now() + std::chrono::microseconds(spec_.drain_usec);
    stop_deadline_ = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline_.time_since_epoch()).count();
  }
  cv_.notify_all();
}

void AsyncSink::cut_drain() {
  std::lock_guard<std::mutex> g(m_);
  if (!stop_) return;
  deadline_ = std::min(deadline_, std::chrono::steady_clock::now());
  stop_deadline_ = std::min<int64_t>(stop_deadline_.load(),
                                     std::chrono::duration_cast<std::chrono::nanoseconds>(deadline_.time_since_epoch()).count());
  cv_.notify_all();
}

bool AsyncSink::drained(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lk(m_);
  if (!thread_.joinable()) return true;
  return cv_.wait_for(lk, wait, [&] { return stopped_; });
}

uint64_t AsyncSink::close() {
  begin_close();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> g(m_);
  stopped_ = true;
  if (!spool_) {  // never started: what waits in memory has nowhere to go
    counters_.dropped += mem_.size();
    mem_.clear();
    counters_.queued = 0;
    return 0;
  }
  // What is still to deliver: a segment read in part counts from the cursor on.
  uint64_t left = spool_->pending_bytes();
  if (spool_->bytes() == 0 && temp_spool_) {
    ::unlink((spool_->dir() + "/cursor").c_str());
    ::unlink((spool_->dir() + "/lock").c_str());
    ::rmdir(spool_->dir().c_str());
    temp_spool_ = false;
  }
  return left;
}

}  // namespace medmon
