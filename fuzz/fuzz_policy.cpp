// libFuzzer target: the YAML loaders of the policy and the sensor. The input is up to four
// parts separated by NUL bytes: a site file, a device model, a sensor config (--config) and a
// baseline of accepted alerts. They are written to a private temporary directory laid out like
// policies/ (sites/site.yaml, devices/fuzz.yaml next to copies of the shipped models), because
// the loaders resolve model paths relative to the site file. The model is loaded on its own,
// the site through PolicyJudge::load (site, models, cross-references, baseline, compilation),
// and a judge that loads is run on flows between the site's own addresses.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "policies/engine/policy_judge.h"
#include "sensor/engine/config.h"

namespace fs = std::filesystem;

namespace {

struct NullSink : medmon::EventSink {
  void write_line(std::string_view, std::string_view) override {}
};

// Never destroyed: the exit handler, registered while the path is built, runs after a static's
// destructor would have (it then removed nothing and the directory stayed).
const fs::path& root() {
  static const fs::path* r = [] {
    const char* t = std::getenv("TMPDIR");
    std::string tmpl = std::string(t && *t ? t : "/tmp") + "/medmon-fuzz-policy-XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    auto* p = new fs::path(tmpl);
    fs::create_directories(*p / "sites");
    fs::create_directories(*p / "devices");
    for (auto& e : fs::directory_iterator(MEDMON_SOURCE_DIR "/policies/devices"))
      fs::copy_file(e.path(), *p / "devices" / e.path().filename());
    std::atexit([] { std::error_code ec; fs::remove_all(root(), ec); });
    return p;
  }();
  return *r;
}

// Writes the part, or removes the file when the input has no such part, so no earlier input
// leaks into this one.
bool put(const fs::path& p, const std::vector<std::string_view>& parts, size_t i) {
  if (i >= parts.size()) { std::error_code ec; fs::remove(p, ec); return false; }
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(parts[i].data(), static_cast<std::streamsize>(parts[i].size()));
  return true;
}

void judge_some_flows(medmon::policy::PolicyJudge& j) {
  medmon::EventOutput out;
  out.add_sink(std::make_shared<NullSink>());
  out.set_annotator(&j);
  std::vector<medmon::IpAddr> ips;
  for (auto& d : j.site().devices) for (auto& ip : d.ips) if (ips.size() < 8) ips.push_back(ip);
  for (auto& r : j.site().roles) for (auto& c : r.addrs) if (ips.size() < 12) ips.push_back(c.net);
  if (ips.empty()) return;
  static const struct { uint16_t port; uint8_t proto; const char* app; bool tls; } kFlows[] = {
      {104, 6, "dicom", false}, {2575, 6, "hl7", false}, {443, 6, "", true}, {123, 17, "", false},
      {3389, 6, "", false}, {11112, 6, "dicom-tls", true}};
  int64_t t = 1'000'000;
  for (size_t a = 0; a < ips.size(); ++a) {
    for (size_t b = 0; b < ips.size(); ++b) {
      auto& fl = kFlows[(a * 7 + b) % std::size(kFlows)];
      medmon::FlowFacts facts;
      facts.app = fl.app;
      facts.tls = fl.tls;
      if (fl.port == 104) {
        facts.set_attr("dicom.calling_ae", "CT01");
        facts.set_attr("dicom.called_ae", "PACS01");
        facts.add_phi("PatientName");
      }
      if (fl.port == 2575) facts.set_attr("hl7.msh3", "RIS");
      medmon::FlowSummary f;
      f.ep.flow_id = "fuzz";
      f.ep.src = ips[a];
      f.ep.dst = ips[b];
      f.ep.src_port = static_cast<uint16_t>(40000 + b);
      f.ep.dst_port = fl.port;
      f.ep.proto = fl.proto;
      f.start = medmon::Timestamp{t};
      f.end = medmon::Timestamp{t + 1000};
      f.pkts = {3, 2};
      f.bytes = {300, 200};
      f.syn_seen = true;
      f.server_answered = true;
      f.end_state = "closed";
      f.ndpi_protocol = fl.tls ? "TLS" : "Unknown";
      f.facts = &facts;
      (void)j.judge(f, out);
      t += 1000;
    }
  }
  j.finish(medmon::Timestamp{t}, out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  while (parts.size() < 3) {
    auto nul = in.find('\0');
    if (nul == std::string_view::npos) break;
    parts.push_back(in.substr(0, nul));
    in.remove_prefix(nul + 1);
  }
  parts.push_back(in);

  const fs::path site = root() / "sites" / "site.yaml", model = root() / "devices" / "fuzz.yaml",
                 config = root() / "sensor.yaml", baseline = root() / "baseline.jsonl";
  put(site, parts, 0);
  bool have_model = put(model, parts, 1);
  bool have_config = put(config, parts, 2);
  bool have_baseline = put(baseline, parts, 3);

  if (have_model) {
    medmon::policy::Errors errs;
    auto m = medmon::policy::load_model(model.string(), errs);
    for (auto& e : errs.list) (void)e.format();
  }
  if (have_config) {
    try {
      (void)medmon::load_config(config.string());
    } catch (const medmon::ConfigError&) {
    }
  }
  medmon::policy::Errors errs;
  medmon::policy::JudgeOptions opt;
  if (have_baseline) opt.baseline_path = baseline.string();
  auto j = medmon::policy::PolicyJudge::load(site.string(), {}, opt, errs);
  for (auto& e : errs.list) (void)e.format();
  if (j) judge_some_flows(*j);
  return 0;
}
