#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <thread>

#include "sensor/capture/afpacket_source.h"
#include "sensor/capture/pcap_source.h"
#include "sensor/cli/commands.h"
#include "sensor/cli/summary.h"
#include "sensor/decode/decoder.h"
#include "sensor/engine/pipeline.h"

namespace medmon {

namespace {
std::atomic<bool> g_live_stop{false};
PcapSource* g_live_src = nullptr;
void on_live_signal(int) {
  g_live_stop = true;
  if (g_live_src) g_live_src->breakloop();
}

// Each worker buffers its lines and hands them to the shared file in whole chunks.
class SharedSink : public EventSink {
 public:
  SharedSink(std::shared_ptr<EventSink> file, std::mutex& m) : file_(std::move(file)), m_(m) {}
  void write_line(std::string_view, std::string_view line) override {
    buf_.append(line);
    buf_.push_back('\n');
    if (buf_.size() > (256u << 10)) flush();
  }
  void flush() override {
    if (buf_.empty()) return;
    std::lock_guard<std::mutex> g(m_);
    // FileSink adds the newline itself: hand it the chunk without the last one.
    std::string_view chunk(buf_);
    chunk.remove_suffix(1);
    file_->write_line("", chunk);
    file_->flush();
    buf_.clear();
  }

 private:
  std::shared_ptr<EventSink> file_;
  std::mutex& m_;
  std::string buf_;
};

int drop_privileges(const std::string& user) {
  if (user.empty()) return 0;
  passwd* pw = getpwnam(user.c_str());
  if (!pw) { fmt::print(stderr, "medmon: --user {}: no such user\n", user); return kExitUsage; }
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    fmt::print(stderr, "medmon: cannot drop privileges to {}\n", user);
    return kExitUsage;
  }
  if (setuid(0) == 0) { fmt::print(stderr, "medmon: privileges could be regained after dropping them\n"); return kExitUsage; }
  return 0;
}

void install_handlers() {
  struct sigaction sa{};
  sa.sa_handler = on_live_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int run_live_pcap(const LiveOptions& o, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi,
                  FlowJudge* judge, HeaderAnnotator* annotator) {
  std::unique_ptr<PcapSource> src;
  try {
    src = PcapSource::open_live(o.iface, o.snaplen, !o.no_promisc, o.bpf, o.buffer_mb);
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: {}\n", e.what());
    return kExitInput;
  }
  int dlt = src->datalink();
  if (!linktype_supported(dlt)) {
    fmt::print(stderr, "medmon: {}: unsupported link type {}\n", o.iface, dlt);
    return kExitInput;
  }
  EventOutput out;
  try {
    out.add_sink(std::make_shared<FileSink>(o.out));
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: cannot write events: {}\n", e.what());
    return kExitUsage;
  }
  if (int rc = drop_privileges(o.user)) return rc;
  out.set_annotator(annotator);
  std::vector<FlowJudge*> judges;
  if (judge) judges.push_back(judge);
  Pipeline pipeline(cfg, depth, out, phi, judges);
  pipeline.set_linktype(dlt);
  g_live_src = src.get();
  install_handlers();

  auto last_flush = std::chrono::steady_clock::now();
  const pcap_pkthdr* h;
  const uint8_t* data;
  int rc = kExitClean;
  while (!g_live_stop) {
    auto r = src->next(h, data);
    if (r == PcapSource::Next::packet) {
      pipeline.packet(data, h->caplen, h->len, Timestamp{int64_t(h->ts.tv_sec) * 1000000 + h->ts.tv_usec});
    } else if (r == PcapSource::Next::error) {
      fmt::print(stderr, "medmon: {}: {}\n", o.iface, src->error());
      rc = kExitInput;
      break;
    } else if (r == PcapSource::Next::end) {
      break;
    }
    // Events reach the sinks at least once a second, whatever the traffic.
    auto now = std::chrono::steady_clock::now();
    if (now - last_flush >= std::chrono::seconds(1)) {
      last_flush = now;
      uint64_t recv, drop, ifdrop;
      if (src->stats(recv, drop, ifdrop)) pipeline.set_capture_stats(recv, drop, ifdrop);
      out.flush();
    }
  }
  uint64_t recv, drop, ifdrop;
  if (src->stats(recv, drop, ifdrop)) pipeline.set_capture_stats(recv, drop, ifdrop);
  pipeline.finish(FlowEnd::interrupted);
  out.flush();
  g_live_src = nullptr;
  return rc;
}

int run_live_afpacket(const LiveOptions& o, const SensorConfig& cfg, Depth depth, const Pseudonymiser& phi,
                      FlowJudge* judge, HeaderAnnotator* annotator) {
  // Open every socket while privileged; then drop privileges; then start the workers.
  std::vector<std::unique_ptr<AfPacketSource>> sources;
  AfPacketOptions ao;
  ao.iface = o.iface;
  ao.snaplen = o.snaplen;
  ao.promisc = !o.no_promisc;
  ao.bpf = o.bpf;
  ao.block_count = std::max<size_t>(4, (size_t(o.buffer_mb) << 20) / ao.block_size);
  ao.fanout_group = o.workers > 1 ? (getpid() & 0xFFFF) : 0;
  try {
    for (int i = 0; i < o.workers; ++i) sources.push_back(std::make_unique<AfPacketSource>(ao));
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: {}\n", e.what());
    return kExitInput;
  }
  std::shared_ptr<EventSink> file;
  try {
    file = std::make_shared<FileSink>(o.out);
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: cannot write events: {}\n", e.what());
    return kExitUsage;
  }
  if (int rc = drop_privileges(o.user)) return rc;
  install_handlers();

  std::mutex file_mutex;
  std::vector<std::unique_ptr<FlowJudge>> worker_judges;
  for (int i = 0; judge && i < o.workers; ++i) worker_judges.push_back(fork_judge(*judge));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.workers; ++i) {
    threads.emplace_back([&, i] {
      EventOutput out;
      out.add_sink(std::make_shared<SharedSink>(file, file_mutex));
      out.set_annotator(annotator);
      std::vector<FlowJudge*> judges;
      if (judge) judges.push_back(worker_judges[i].get());
      Pipeline pipeline(cfg, depth, out, phi, judges);
      pipeline.set_linktype(linktype::EN10MB);
      if (o.workers > 1) pipeline.set_worker_id(i);
      AfPacketSource& src = *sources[i];
      auto last_flush = std::chrono::steady_clock::now();
      auto handler = [&](const uint8_t* f, uint32_t cap, uint32_t len, int64_t usec) {
        pipeline.packet(f, cap, len, Timestamp{usec});
      };
      while (!g_live_stop) {
        src.poll(100, handler);
        auto now = std::chrono::steady_clock::now();
        if (now - last_flush >= std::chrono::seconds(1)) {
          last_flush = now;
          uint64_t recv, drop, freeze;
          src.stats(recv, drop, freeze);
          pipeline.set_capture_stats(recv, drop, 0);
          out.flush();
        }
      }
      uint64_t recv, drop, freeze;
      src.stats(recv, drop, freeze);
      pipeline.set_capture_stats(recv, drop, 0);
      pipeline.finish(FlowEnd::interrupted);
      out.flush();
    });
  }
  for (auto& t : threads) t.join();
  file->flush();
  return kExitClean;
}
}  // namespace

int run_live(const LiveOptions& o) {
  SensorConfig cfg;
  std::unique_ptr<Pseudonymiser> phi;
  std::unique_ptr<FlowJudge> judge;
  HeaderAnnotator* annotator = nullptr;
  try {
    cfg = load_sensor_config(o);
    if (cfg.stats_interval_usec == 0) cfg.stats_interval_usec = static_cast<int64_t>(o.stats_interval * 1e6);
    phi = std::make_unique<Pseudonymiser>(make_pseudonymiser(cfg));
    if (!load_signature_dirs(o)) return kExitUsage;
    judge = load_judge(cfg, o, &annotator);
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: {}\n", e.what());
    return kExitUsage;
  }
  Depth depth = Depth::policy;
  parse_depth(o.ladder, depth);
  if (o.capture == "pcap") {
    if (o.workers > 1) { fmt::print(stderr, "medmon: --workers needs --capture afpacket\n"); return kExitUsage; }
    return run_live_pcap(o, cfg, depth, *phi, judge.get(), annotator);
  }
  return run_live_afpacket(o, cfg, depth, *phi, judge.get(), annotator);
}

}  // namespace medmon
