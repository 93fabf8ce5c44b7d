// libFuzzer target: the whole analyze path on a pcap or pcapng file image. libpcap reads the
// image from memory (fmemopen), then every packet goes through decode, IP defragmentation,
// flows, TCP reassembly, probes, medmon's dissectors, nDPI, the policy judge (demo site) and
// the asset tracker, and every event is rendered to JSON. Limits are small so eviction,
// memcaps and timeouts are reached by short inputs. nDPI's module is built once and shared by
// the inputs (its caches carry over from one input to the next).
#include <pcap/pcap.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "policies/engine/policy_judge.h"
#include "sensor/assets/asset_tracker.h"
#include "sensor/engine/pipeline.h"

namespace {

struct NullSink : medmon::EventSink {
  void write_line(std::string_view, std::string_view) override {}
};

medmon::policy::PolicyJudge* demo_judge() {
  static std::unique_ptr<medmon::policy::PolicyJudge> j = [] {
    medmon::policy::Errors errs;
    auto p = medmon::policy::PolicyJudge::load(MEDMON_SOURCE_DIR "/policies/sites/demo-site.yaml", {}, {}, errs);
    if (!p) {
      for (auto& e : errs.list) std::fprintf(stderr, "%s\n", e.format().c_str());
      std::abort();  // the harness itself is broken
    }
    return p;
  }();
  return j.get();
}

medmon::SensorConfig small_config(uint8_t knob) {
  medmon::SensorConfig c;
  if (knob & 1) {
    c.flows.max_flows = 8;
    c.reassembly.max_queued_bytes = 4096;
    c.reassembly.max_queued_segments = 8;
    c.reassembly_memcap = 16384;
    c.fragments.max_datagrams = 4;
    c.fragments.max_bytes = 8192;
    c.feeder.max_buffer = 4096;
    c.ndpi.max_flows_in_detection = 4;
  }
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 24) return 0;  // shorter than a pcap file header
  static medmon::Pseudonymiser phi;
  // One nDPI module for all inputs: building it per input held the target to ~20 inputs/s.
  static bool shared = (medmon::NdpiClassifier::share_module_on_this_thread(), true);
  (void)shared;
  auto judge = demo_judge()->fork();
  medmon::AssetTracker assets(nullptr, nullptr);
  assets.set_annotator(judge.get());
  medmon::EventOutput out;
  out.add_sink(std::make_shared<NullSink>());
  out.add_observer(&assets);
  out.set_annotator(judge.get());

  FILE* f = fmemopen(const_cast<uint8_t*>(data), size, "rb");
  if (!f) return 0;
  char err[PCAP_ERRBUF_SIZE] = {0};
  pcap_t* pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, err);
  if (!pc) { std::fclose(f); return 0; }
  int dlt = pcap_datalink(pc);
  if (medmon::linktype_supported(dlt)) {
    // The low bit of the last byte picks tight limits; it is rarely part of a packet's headers.
    medmon::Pipeline p(small_config(data[size - 1]), medmon::Depth::policy, out, phi, {judge.get(), &assets});
    p.set_linktype(dlt);
    pcap_pkthdr* h;
    const u_char* d;
    while (pcap_next_ex(pc, &h, &d) == 1)
      p.packet(d, h->caplen, h->len, medmon::packet_time(h->ts.tv_sec, h->ts.tv_usec));
    p.finish(medmon::FlowEnd::end_of_input);
  }
  out.flush();
  pcap_close(pc);  // closes f
  return 0;
}
