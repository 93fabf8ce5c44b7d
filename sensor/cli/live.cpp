#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>

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
}  // namespace

int run_live(const LiveOptions& o) {
  SensorConfig cfg;
  std::unique_ptr<Pseudonymiser> phi;
  try {
    cfg = load_sensor_config(o);
    if (cfg.stats_interval_usec == 0) cfg.stats_interval_usec = static_cast<int64_t>(o.stats_interval * 1e6);
    phi = std::make_unique<Pseudonymiser>(make_pseudonymiser(cfg));
  } catch (const std::exception& e) {
    fmt::print(stderr, "medmon: {}\n", e.what());
    return kExitUsage;
  }
  Depth depth = Depth::policy;
  parse_depth(o.ladder, depth);

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
  Pipeline pipeline(cfg, depth, out, *phi, {});
  pipeline.set_linktype(dlt);

  g_live_src = src.get();
  struct sigaction sa{};
  sa.sa_handler = on_live_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

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

}  // namespace medmon
