#include <grp.h>
#include <net/if.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <latch>
#include <mutex>
#include <optional>
#include <thread>

#include "sensor/common/diag.h"
#include "sensor/capture/afpacket_source.h"
#include "sensor/capture/pcap_source.h"
#include "sensor/cli/commands.h"
#include "sensor/cli/live_assets.h"
#include "sensor/cli/summary.h"
#include "dissectors/api/worker_budget.h"
#include "sensor/decode/decoder.h"
#include "sensor/engine/pipeline.h"
#include "sensor/output/sinks/sinks.h"

namespace medmon {

namespace {
std::atomic<bool> g_live_stop{false};
std::atomic<bool> g_reload{false};
std::atomic<PcapSource*> g_live_src{nullptr};
// The first signal stops capture; a second one also ends the sinks' drain at exit.
std::atomic<int> g_stop_signals{0};  // g_live_stop is also set by the sensor itself (interface gone)
void on_live_signal(int) {
  g_live_stop = true;
  if (g_stop_signals.fetch_add(1) >= 1) request_drain_cut();
  if (PcapSource* s = g_live_src) s->breakloop();
}
void on_hup(int) {
  g_reload = true;
  if (PcapSource* s = g_live_src) s->breakloop();
}

// One line on stderr; under systemd the "<N>" prefix gives journald the syslog priority.
template <class... Args>
void log_line(int prio, fmt::format_string<Args...> f, Args&&... args) {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  std::string line = fmt::format(f, std::forward<Args>(args)...);
  if (journal) print_err("<{}>medmon: {}\n", prio, line);
  else print_err("medmon: {}\n", line);
}
constexpr int kLogErr = 3, kLogWarn = 4, kLogInfo = 6;

// The time of the stop, on the clock the kernel stamps captured packets with: the date of the
// final `stats` when no packet reached any worker.
Timestamp stop_time() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch());
  return Timestamp{us.count()};
}

// The policy in force. A reload builds the new judge completely before publishing it; workers
// notice the new generation between packet batches and fork their own copy of it (sharing the
// published judge's cross-flow state with each other).
class PolicyBoard {
 public:
  void publish(std::shared_ptr<const FlowJudge> j) {
    std::lock_guard<std::mutex> g(m_);
    cur_ = std::move(j);
    gen_.fetch_add(1, std::memory_order_release);
  }
  uint64_t generation() const { return gen_.load(std::memory_order_acquire); }
  std::pair<std::shared_ptr<const FlowJudge>, uint64_t> current() {
    std::lock_guard<std::mutex> g(m_);
    return {cur_, gen_.load(std::memory_order_relaxed)};
  }
  std::unique_ptr<FlowJudge> fork(uint64_t& gen) {
    std::lock_guard<std::mutex> g(m_);
    gen = gen_.load(std::memory_order_relaxed);
    // Live workers share what their judges learn across flows: the fanout hash spreads one
    // source's flows over the workers, and a scan or fan-out must be counted whole.
    return cur_ ? fork_judge(*cur_) : nullptr;
  }

 private:
  std::mutex m_;
  std::shared_ptr<const FlowJudge> cur_;
  std::atomic<uint64_t> gen_{0};
};

// What a worker's pipeline sees: forwards to its own judge of the current policy and swaps
// to a new one when told, between packets (flows in progress stay in the flow table and are
// judged by the policy in force when they end).
class ReloadableJudge : public FlowJudge, public HeaderAnnotator {
 public:
  explicit ReloadableJudge(PolicyBoard& b) : board_(b) { swap_in(); }
  // Cheap when nothing changed: one atomic load.
  void refresh(EventOutput& out, Timestamp now) {
    if (board_.generation() == gen_) return;
    if (inner_) {
      // The judge sets policy.alerts_written to its own count: keep the old judge's total.
      inner_->finish(now, out);
      alerts_before_ += out.counters().get("policy.alerts_written");
    }
    swap_in();
  }
  FlowVerdict judge(const FlowSummary& f, EventOutput& out) override {
    return inner_ ? inner_->judge(f, out) : FlowVerdict{};
  }
  void finish(Timestamp now, EventOutput& out) override {
    if (inner_) inner_->finish(now, out);
    if (alerts_before_) out.counters().at("policy.alerts_written") = alerts_before_ + (inner_ ? out.counters().get("policy.alerts_written") : 0);
  }
  void annotate(const EventEndpoints& ep, JsonWriter& w) override {
    if (ann_) ann_->annotate(ep, w);
  }
  // A reload, or a fingerprint binding the policy in force learnt.
  uint64_t annotation_generation() const override {
    return (swaps_ << 40) + (ann_ ? ann_->annotation_generation() : 0);
  }

 private:
  void swap_in() {
    inner_ = board_.fork(gen_);
    ann_ = dynamic_cast<HeaderAnnotator*>(inner_.get());
    ++swaps_;
  }

  PolicyBoard& board_;
  std::unique_ptr<FlowJudge> inner_;
  HeaderAnnotator* ann_ = nullptr;
  uint64_t swaps_ = 0;  // site or models reloaded: device and zone names may differ
  uint64_t gen_ = 0;
  uint64_t alerts_before_ = 0;
};

std::string where_cpus(const CaptureConfig& c) { return c.cpus_where.empty() ? "capture.cpus" : c.cpus_where; }

// Every CPU named in capture.cpus must be one this process may run on.
bool check_cpus(const CaptureConfig& c) {
  if (c.cpus.empty()) return true;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return true;
  for (int cpu : c.cpus) {
    if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed)) {
      print_err("medmon: {}: cpu {} is not available to this process ({} CPUs allowed)\n", where_cpus(c), cpu,
                 CPU_COUNT(&allowed));
      return false;
    }
  }
  return true;
}

void pin_thread(pthread_t t, const CaptureConfig& c, int worker) {
  if (c.cpus.empty()) return;
  int cpu = c.cpus[size_t(worker) % c.cpus.size()];
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  if (int rc = pthread_setaffinity_np(t, sizeof s, &s))
    log_line(kLogWarn, "{}: cannot pin worker {} to cpu {}: {}", where_cpus(c), worker, cpu, std::strerror(rc));
}

// The capture filter in force: set by the thread that handles reloads, read by the workers for
// their `stats` events at their once-a-second flush.
class FilterInForce {
 public:
  explicit FilterInForce(std::string bpf) : bpf_(std::move(bpf)) {}
  void set(std::string bpf) {
    std::lock_guard lock(m_);
    bpf_ = std::move(bpf);
  }
  std::string get() const {
    std::lock_guard lock(m_);
    return bpf_;
  }

 private:
  mutable std::mutex m_;
  std::string bpf_;
};

// What a reload may change besides the policy: the kernel filter of the open sockets.
struct CaptureFilter {
  bool from_cli = false;                          // -f given: the config file's bpf is ignored
  FilterInForce current;
  std::function<void(const std::string&)> apply;  // throws std::runtime_error
};

// The stats interval in force: the command line wins, then output.stats_interval (0: stats only
// when the sensor stops), then the 60 s default.
void resolve_stats_interval(const LiveOptions& o, SensorConfig& c) {
  if (o.given.stats_interval || !c.stats_interval_set) c.stats_interval_usec = static_cast<int64_t>(o.stats_interval * 1e6);
}

// Events that could not be written (full disk) make the run fail, as in analyze: its output is
// not the whole record. Told once the sensor stops (the sinks are shared by the workers).
int output_failed(const SinkSet& sinks) {
  std::string w = sinks.write_error();
  if (w.empty()) return kExitClean;
  log_line(kLogErr, "cannot write events: {}", w);
  return kExitInput;
}

// Re-reads the configuration and the site policy. The new policy replaces the old one only
// when it loaded without error; so does a new capture filter.
void reload(const LiveOptions& o, const SensorConfig& running, PolicyBoard& board, CaptureFilter& filter) {
  log_line(kLogInfo, "SIGHUP: reloading {}", o.config_file.empty() ? "the policy" : o.config_file + " and the policy");
  SensorConfig c;
  try {
    c = load_sensor_config(o);
  } catch (const std::exception& e) {
    log_line(kLogErr, "reload rejected: {}; the running configuration and policy stay in force", e.what());
    return;
  }
  const CaptureConfig &a = running.capture, &b = c.capture;
  if (a.interface != b.interface || a.snaplen != b.snaplen || a.promisc != b.promisc || a.method != b.method ||
      a.workers != b.workers || a.ring_size != b.ring_size || a.block_size != b.block_size || a.cpus != b.cpus)
    log_line(kLogWarn, "reload: capture settings other than bpf changed; they take effect at restart");
  std::string want = b.bpf.value_or("");
  if (filter.from_cli) {
    if (a.bpf != b.bpf) log_line(kLogWarn, "reload: capture.bpf ignored: -f on the command line wins");
  } else if (want != filter.current.get()) {
    try {
      filter.apply(want);
      filter.current.set(want);
      log_line(kLogInfo, "reload: capture filter now '{}'", want);
    } catch (const std::exception& e) {
      log_line(kLogErr, "reload: capture.bpf rejected: {}; the filter '{}' stays", e.what(), filter.current.get());
    }
  }
  if (c.phi_mode != running.phi_mode || c.phi_key != running.phi_key || c.phi_key_file != running.phi_key_file)
    log_line(kLogWarn, "reload: PHI settings changed; they take effect at restart");
  if (c.community_id != running.community_id || c.community_id_seed != running.community_id_seed)
    log_line(kLogWarn, "reload: output.community_id changed; it takes effect at restart");
  // Sized or opened at start: said, not silently ignored.
  if (!(c.flows == running.flows && c.reassembly == running.reassembly &&
        c.reassembly_memcap == running.reassembly_memcap && c.fragments == running.fragments &&
        c.ndpi == running.ndpi && c.feeder == running.feeder))
    log_line(kLogWarn, "reload: flow, reassembly, fragment, nDPI or dissector buffer limits changed; they take effect at restart");
  resolve_stats_interval(o, c);
  if (c.stats_interval_usec != running.stats_interval_usec)
    log_line(kLogWarn, "reload: output.stats_interval changed; it takes effect at restart");
  auto placeless = [](SinkConfig s) {  // where a sink was written in the file is no setting
    for (auto& x : s.sinks) x.where.clear();
    return s;
  };
  if (!(placeless(c.sinks) == placeless(running.sinks)))
    log_line(kLogWarn, "reload: output sinks, rotation or sensor_id changed; they take effect at restart");
  if (c.site_policy.empty()) {
    bool had = board.current().first != nullptr;
    board.publish(nullptr);
    if (had) log_line(kLogWarn, "reload: no site policy configured any more; flows are no longer judged");
    return;
  }
  try {
    HeaderAnnotator* annotator = nullptr;
    std::shared_ptr<const FlowJudge> j = load_judge(c, o, &annotator);
    board.publish(std::move(j));
    log_line(kLogInfo, "reload: policy {} in force (generation {})", c.site_policy, board.generation());
  } catch (const std::exception& e) {
    log_line(kLogErr, "reload rejected: {}: {}; the previous policy stays in force", c.site_policy, e.what());
  }
}

// The capture settings: an option given on the command line wins over the config file.
LiveOptions merge_capture(const LiveOptions& o, const CaptureConfig& c) {
  LiveOptions m = o;
  if (o.iface.empty() && c.interface) m.iface = *c.interface;
  if (o.bpf.empty() && c.bpf) m.bpf = *c.bpf;
  if (!o.given.snaplen && c.snaplen) m.snaplen = *c.snaplen;
  if (!o.given.promisc && c.promisc) m.no_promisc = !*c.promisc;
  if (!o.given.capture && c.method) m.capture = *c.method;
  if (!o.given.workers && c.workers) m.workers = *c.workers;
  return m;
}

int drop_privileges(const std::string& user) {
  if (user.empty()) return 0;
  passwd* pw = getpwnam(user.c_str());
  if (!pw) { print_err("medmon: --user {}: no such user\n", user); return kExitUsage; }
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    print_err("medmon: cannot drop privileges to {}\n", user);
    return kExitUsage;
  }
  if (setuid(0) == 0) { print_err("medmon: privileges could be regained after dropping them\n"); return kExitUsage; }
  return 0;
}

// The sinks' spool directories are opened as the user the sensor runs as: what they create
// belongs to it, and the check that they can be written is made with its rights.
int start_sinks(SinkSet& sinks) {
  try {
    sinks.start();
  } catch (const std::exception& e) {
    print_err("medmon: cannot write events: {}\n", e.what());
    return kExitUsage;
  }
  return 0;
}

void install_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_live_signal;
  sa.sa_flags = SA_RESTART;  // a write in progress completes; poll() still wakes up
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

void install_hup_handler() {
  struct sigaction sa{};
  sa.sa_handler = on_hup;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGHUP, &sa, nullptr);
}

// Whether the interface is a loopback, where the kernel counts each frame twice (going out and
// coming in) and libpcap drops the outgoing copy itself.
bool is_loopback(const std::string& iface) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  bool lo = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_LOOPBACK);
  ::close(fd);
  return lo;
}

// The capture counters of the final `stats`, from the kernel's, read once after the drain: a
// frame the kernel put into the ring (`received` counts the dropped ones too) that was not
// analysed could no longer be read, so it counts as dropped (and as capture.unread_at_stop):
// none is lost unsaid. `analysed`: the frames read from that ring; unknown (nullopt), nothing
// is counted unread.
void settle_capture_stats(Pipeline& pipeline, EventOutput& out, uint64_t received, uint64_t dropped,
                          uint64_t if_dropped, std::optional<uint64_t> analysed) {
  uint64_t unread = analysed && received > dropped + *analysed ? received - dropped - *analysed : 0;
  if (unread) out.counters().at("capture.unread_at_stop") = unread;
  pipeline.set_capture_stats(received, dropped + unread, if_dropped);
}

int run_live_pcap(const LiveOptions& o, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi,
                  PolicyBoard& board, bool bpf_from_cli) {
  std::unique_ptr<PcapSource> src;
  try {
    src = PcapSource::open_live(o.iface, o.snaplen, !o.no_promisc, o.bpf, o.buffer_mb);
  } catch (const std::exception& e) {
    print_err("medmon: {}\n", e.what());
    return kExitInput;
  }
  int dlt = src->datalink();
  if (!linktype_supported(dlt)) {
    print_err("medmon: {}: unsupported link type {}\n", o.iface, dlt);
    return kExitInput;
  }
  EventOutput out;
  std::unique_ptr<SinkSet> sinks;
  try {
    sinks = make_sinks(cfg.sinks, o.out, false);
    sinks->attach(out);
  } catch (const std::exception& e) {
    print_err("medmon: cannot write events: {}\n", e.what());
    return sink_error_exit_code(e);
  }
  if (int rc = drop_privileges(o.user)) return rc;
  if (int rc = start_sinks(*sinks)) return rc;
  pin_thread(pthread_self(), cfg.capture, 0);
  // Installed even without a policy, so that a reload can bring one in.
  ReloadableJudge judge(board);
  out.set_annotator(&judge);
  out.set_community_id(cfg.community_id, cfg.community_id_seed);
  LiveAssets assets([&] { return board.current(); });
  auto inventory = assets.worker(0);
  out.add_observer(inventory.get());
  Pipeline pipeline(cfg, depth, out, phi, {&judge, inventory.get()});
  pipeline.set_linktype(dlt);
  pipeline.prepare();
  pipeline.set_input_filter(o.bpf);
  pipeline.set_stats_refresh([&] {
    uint64_t recv, drop, ifdrop;
    if (src->stats(recv, drop, ifdrop)) pipeline.set_capture_stats(recv, drop, ifdrop);
  });
  g_live_src = src.get();
  install_handlers();

  // libpcap's TPACKET_V3 reader waits for a packet however long that takes: wake it every
  // 100 ms (libpcap >= 1.10 wakes a blocked reader on breakloop) so that output is flushed and
  // a reload taken up on a quiet link too.
  CaptureFilter filter{bpf_from_cli, FilterInForce(o.bpf), [&](const std::string& f) {
                         src->set_filter(f);
                         pipeline.set_input_filter(f);
                       }};
  std::atomic<bool> ticking{true};
  std::thread ticker([&] {
    while (ticking) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      src->breakloop();
    }
  });
  auto last_flush = std::chrono::steady_clock::now();
  const pcap_pkthdr* h;
  const uint8_t* data;
  int rc = kExitClean;
  // An interface taken down: libpcap waits for it without a word; said here, as the AF_PACKET
  // path says it, and counted.
  bool link_up = true;
  auto watch_link = [&] {
    bool up = src->interface_up();
    if (up == link_up) return;
    link_up = up;
    if (!up) {
      ++out.counters().at("capture.link_down");
      log_line(kLogWarn, "{}: capture error: {}; waiting for the interface to come up again", o.iface, std::strerror(ENETDOWN));
    } else {
      log_line(kLogInfo, "{}: the interface is up again; capture goes on", o.iface);
    }
  };
  while (!g_live_stop) {
    auto r = src->next(h, data);
    if (r == PcapSource::Next::packet) {
      pipeline.packet(data, h->caplen, h->len, packet_time(h->ts.tv_sec, h->ts.tv_usec));
    } else if (r == PcapSource::Next::error) {
      print_err("medmon: {}: {}\n", o.iface, src->error());
      rc = kExitInput;
      break;
    } else if (r == PcapSource::Next::end && g_live_stop) {
      break;  // else woken by the ticker or SIGHUP
    }
    if (g_reload.exchange(false)) reload(o, cfg, board, filter);
    judge.refresh(out, pipeline.last_ts());
    // Events reach the sinks at least once a second, whatever the traffic.
    auto now = std::chrono::steady_clock::now();
    if (now - last_flush >= std::chrono::seconds(1)) {
      last_flush = now;
      watch_link();
      uint64_t recv, drop, ifdrop;
      if (src->stats(recv, drop, ifdrop)) pipeline.set_capture_stats(recv, drop, ifdrop);
      out.flush();
    }
  }
  ticking = false;
  ticker.join();
  // Stopped: what the ring holds is analysed before the flows end, as with AF_PACKET. Reads no
  // longer wait. The block the kernel was filling is handed over within its 100 ms timeout:
  // until 300 ms after the intake closed an empty read is waited out, then the first empty read
  // ends the drain (the ring, taking no more frames, is empty). The kernel's `received` is no
  // measure of what is left: on loopback it counts each frame twice, and libpcap drops the
  // outgoing copy itself.
  uint64_t recv, drop, ifdrop;
  if (rc == kExitClean) {
    const bool closed = src->close_intake();
    if (!closed) log_line(kLogWarn, "{}: cannot close the capture to new frames: {}", o.iface, std::strerror(errno));
    const auto last_block = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
    for (;;) {
      auto r = src->next(h, data);
      if (r == PcapSource::Next::packet) {
        pipeline.packet(data, h->caplen, h->len, packet_time(h->ts.tv_sec, h->ts.tv_usec));
        // Frames still flowing in (the intake could not be closed): what came after the last
        // block's timeout is not waited for.
        if (!closed && std::chrono::steady_clock::now() >= last_block) break;
      } else if (r == PcapSource::Next::error) {
        break;
      } else if (std::chrono::steady_clock::now() >= last_block) {
        break;  // nothing ready (`end`: a breakloop left by a signal, taken once)
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }
  pipeline.set_stats_refresh(nullptr);  // the final counters, with the frames left unread, are set here
  if (src->stats(recv, drop, ifdrop)) {
    // Off loopback the kernel counts a frame once, when it puts it into the ring; on loopback it
    // counts each twice, and libpcap drops the outgoing copy itself. After a capture error the
    // ring was not drained.
    std::optional<uint64_t> analysed;
    if (rc == kExitClean && !is_loopback(o.iface)) analysed = pipeline.packets();
    settle_capture_stats(pipeline, out, recv, drop, ifdrop, analysed);
  }
  pipeline.finish(FlowEnd::interrupted, true, stop_time());
  out.flush();
  sinks->close(false);
  g_live_src = nullptr;
  if (int w = output_failed(*sinks)) return w;
  return rc;
}

int run_live_afpacket(const LiveOptions& o, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi,
                      PolicyBoard& board, bool bpf_from_cli) {
  // Open every socket while privileged; then drop privileges; then start the workers.
  std::vector<std::unique_ptr<AfPacketSource>> sources;
  AfPacketOptions ao;
  ao.iface = o.iface;
  ao.snaplen = o.snaplen;
  ao.promisc = !o.no_promisc;
  ao.bpf = o.bpf;
  ao.block_size = cfg.capture.block_size.value_or(kDefaultRingBlockSize);
  size_t ring = (o.given.buffer_mb || !cfg.capture.ring_size) ? size_t(o.buffer_mb) << 20 : *cfg.capture.ring_size;
  // The ring is the size asked: with --buffer-mb (whole MiB, at least 1) the blocks are made
  // smaller when it would not hold 4 of them or not a whole number (capture.ring_size is checked
  // against capture.block_size when the config is read). Blocks stay >= 256 KiB: a frame longer
  // than a block is cut.
  while (ao.block_size > (size_t(256) << 10) && (ring / ao.block_size < 4 || ring % ao.block_size)) ao.block_size /= 2;
  ao.block_count = std::max<size_t>(4, ring / ao.block_size);
  ao.fanout_group = o.workers > 1 ? (getpid() & 0xFFFF) : 0;
  try {
    for (int i = 0; i < o.workers; ++i) sources.push_back(std::make_unique<AfPacketSource>(ao));
  } catch (const std::exception& e) {
    print_err("medmon: {}\n", e.what());
    return kExitInput;
  }
  std::shared_ptr<EventSink> file;
  std::unique_ptr<SinkSet> sinks;
  try {
    sinks = make_sinks(cfg.sinks, o.out, false);
    file = sinks->primary();
  } catch (const std::exception& e) {
    print_err("medmon: cannot write events: {}\n", e.what());
    return sink_error_exit_code(e);
  }
  if (int rc = drop_privileges(o.user)) return rc;
  if (int rc = start_sinks(*sinks)) return rc;
  install_handlers();

  // Every socket gets the new filter, or none does: on a failure part way the sockets already
  // changed are set back, so that the filter reported stays the one in force.
  CaptureFilter filter{bpf_from_cli, FilterInForce(o.bpf), nullptr};
  filter.apply = [&](const std::string& f) {
    const std::string before = filter.current.get();
    for (size_t i = 0; i < sources.size(); ++i) {
      try {
        sources[i]->set_filter(f);
      } catch (const std::exception&) {
        for (size_t j = 0; j < i; ++j) {
          try {
            sources[j]->set_filter(before);
          } catch (const std::exception& e) {
            log_line(kLogErr, "reload: cannot set the filter '{}' back on socket {}: {}", before, j, e.what());
          }
        }
        throw;
      }
    }
  };
  LiveAssets assets([&] { return board.current(); });  // one inventory for all workers
  SharedAppServers app_servers;  // names TLS flows whichever worker saw the server in clear
  // The interface going down or away is told once, whichever worker's socket sees it first.
  std::atomic<int> workers_down{0};
  std::atomic<bool> iface_gone{false};
  // The latest packet time a worker analysed: the capture's clock, which every idle worker
  // follows so that a worker the fanout gives few or no packets still ends its idle flows on time.
  std::atomic<int64_t> capture_clock{0};
  // At the stop: the latest packet time any worker analysed, once every worker drained its ring,
  // so that each worker's final stats is dated by the capture's end, not by its own last packet.
  std::atomic<int64_t> capture_latest{0};
  std::latch drained(o.workers);
  std::vector<std::thread> threads;
  set_worker_slots(o.workers);
  for (int i = 0; i < o.workers; ++i) {
    threads.emplace_back([&, i] {
      set_worker_slot(i);
      EventOutput out;
      sinks->attach_worker(out);
      ReloadableJudge judge(board);  // even without a policy, so that a reload can bring one in
      out.set_annotator(&judge);
      out.set_community_id(cfg.community_id, cfg.community_id_seed);
      auto inventory = assets.worker(i);
      out.add_observer(inventory.get());
      // The caps over all flows hold for the process: each worker has its share.
      Pipeline pipeline(worker_share(cfg, o.workers, i), depth, out, phi, {&judge, inventory.get()});
      pipeline.set_linktype(sources[i]->datalink());
      pipeline.prepare();
      if (o.workers > 1) {
        pipeline.set_worker_id(i);
        pipeline.set_shared_app_servers(&app_servers);
      }
      pipeline.set_input_filter(filter.current.get());
      AfPacketSource& src = *sources[i];
      auto last_flush = std::chrono::steady_clock::now();
      auto handler = [&](const uint8_t* f, uint32_t cap, uint32_t len, int64_t usec) {
        pipeline.packet(f, cap, len, Timestamp{usec});
      };
      // What this worker's `stats` events report of the capture: the ring's counters and the
      // filter in force.
      auto take_stats = [&] {
        uint64_t recv, drop, freeze;
        src.stats(recv, drop, freeze);
        pipeline.set_capture_stats(recv, drop, 0);
        pipeline.set_input_filter(filter.current.get());
      };
      pipeline.set_stats_refresh(take_stats);
      // What the socket says of the interface, once per change.
      AfPacketSource::Link link = AfPacketSource::Link::up;
      auto watch_link = [&] {
        if (int e = src.take_error()) log_line(kLogErr, "{}: capture error: {}", o.iface, std::strerror(e));
        AfPacketSource::Link now = src.link();
        if (now == link) return;
        if (now == AfPacketSource::Link::gone) {
          // As libpcap says it for `--capture pcap`; the run ends (exit 3).
          if (!iface_gone.exchange(true)) log_line(kLogErr, "{}: The interface disappeared", o.iface);
          g_live_stop = true;
        } else if (now == AfPacketSource::Link::down) {
          ++out.counters().at("capture.link_down");
          if (workers_down.fetch_add(1) == 0)
            log_line(kLogWarn, "{}: capture error: {}; waiting for the interface to come up again", o.iface,
                     std::strerror(ENETDOWN));
        } else if (link == AfPacketSource::Link::down && workers_down.fetch_sub(1) == 1) {
          log_line(kLogInfo, "{}: the interface is up again; capture goes on", o.iface);
        }
        link = now;
      };
      uint64_t handled = 0;  // packets analysed by the last turn
      while (!g_live_stop) {
        src.poll(100, handler);
        watch_link();
        if (o.workers > 1) {
          // A worker that had packets says where the capture is; one whose ring was empty has
          // nothing older left to read and follows it (forward only). A plain store, not the
          // highest time ever seen: after the capture's time went back, a stale maximum would
          // time out every flow of a worker again and again.
          if (uint64_t n = pipeline.packets(); n != handled) {
            handled = n;
            capture_clock.store(pipeline.last_ts().usec, std::memory_order_relaxed);
          } else {
            pipeline.follow_clock(Timestamp{capture_clock.load(std::memory_order_relaxed)});
          }
        }
        // Between batches: the safe point to take up a reloaded policy.
        judge.refresh(out, pipeline.last_ts());
        auto now = std::chrono::steady_clock::now();
        if (now - last_flush >= std::chrono::seconds(1)) {
          last_flush = now;
          take_stats();
          out.flush();
        }
      }
      // Stopped: what the ring holds is analysed before the flows end (the kernel adds no more
      // to it); what could still not be read counts as dropped.
      src.close_intake();
      src.drain(handler);
      take_stats();
      pipeline.set_stats_refresh(nullptr);  // the final counters, with the frames left unread, are set below
      uint64_t recv, drop, freeze;
      src.stats(recv, drop, freeze);
      settle_capture_stats(pipeline, out, recv, drop, 0, src.delivered());
      if (pipeline.packets()) {
        int64_t mine = pipeline.last_ts().usec, seen = capture_latest.load();
        while (mine > seen && !capture_latest.compare_exchange_weak(seen, mine)) {}
      }
      drained.arrive_and_wait();
      pipeline.finish(FlowEnd::interrupted, true, stop_time(), Timestamp{capture_latest.load()});
      out.flush();
    });
    pin_thread(threads.back().native_handle(), cfg.capture, i);
  }
  // The main thread only handles reloads.
  while (!g_live_stop) {
    if (g_reload.exchange(false)) reload(o, cfg, board, filter);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (auto& t : threads) t.join();
  file->flush();
  sinks->close(false);
  if (int w = output_failed(*sinks)) return w;
  return iface_gone ? kExitInput : kExitClean;
}
}  // namespace

int run_live(const LiveOptions& opts) {
  // A closed pipe on standard output (`--sink stdout | head`) must not kill the sensor by
  // SIGPIPE: the write fails with EPIPE, the --out file and the other sinks go on, and at stop
  // the flows are written as interrupted and the failure told (exit 3). Set before any thread.
  std::signal(SIGPIPE, SIG_IGN);
  // SIGHUP must not end the process while the policy loads.
  install_hup_handler();
  SensorConfig cfg;
  std::unique_ptr<Pseudonymiser> phi;
  PolicyBoard board;
  LiveOptions o = opts;
  try {
    cfg = load_sensor_config(opts);
    o = merge_capture(opts, cfg.capture);
    // libpcap takes the buffer in MiB; the AF_PACKET path reads capture.ring_size in bytes.
    if (o.capture == "pcap" && cfg.capture.ring_size && !o.given.buffer_mb)
      o.buffer_mb = static_cast<int>(std::max<size_t>(1, *cfg.capture.ring_size >> 20));
    resolve_stats_interval(o, cfg);
    phi = std::make_unique<Pseudonymiser>(make_pseudonymiser(cfg));
    if (!load_signature_dirs(o)) return kExitUsage;
    HeaderAnnotator* annotator = nullptr;
    std::shared_ptr<const FlowJudge> judge = load_judge(cfg, o, &annotator);
    if (judge) board.publish(std::move(judge));
  } catch (const std::exception& e) {
    print_err("medmon: {}\n", e.what());
    return kExitUsage;
  }
  if (o.iface.empty()) {
    print_err("medmon: live: no interface (give -i IFACE or capture.interface in the config)\n");
    return kExitUsage;
  }
  if (!check_cpus(cfg.capture)) return kExitUsage;
  // A filter that does not parse is a usage error, told before any socket is opened.
  if (!o.bpf.empty()) {
    try {
      PcapSource::check_filter(o.bpf);
    } catch (const std::exception& e) {
      bool from_file = opts.bpf.empty() && !cfg.capture.bpf_where.empty();
      print_err("medmon: {}{}\n", from_file ? cfg.capture.bpf_where + ": capture bpf: " : "-f: ", e.what());
      return kExitUsage;
    }
  }
  Depth depth = Depth::policy;
  parse_depth(o.ladder, depth);
  if (o.capture == "pcap") {
    if (o.workers > 1) { print_err("medmon: --workers needs --capture afpacket\n"); return kExitUsage; }
    return run_live_pcap(o, cfg, depth, *phi, board, !opts.bpf.empty());
  }
  return run_live_afpacket(o, cfg, depth, *phi, board, !opts.bpf.empty());
}

}  // namespace medmon
