#include "sensor/report/policy_bridge.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#if MEDMON_REPORT_HAVE_POLICY
#include "policies/engine/policy.h"
#include "policies/engine/policy_judge.h"
#endif

namespace medmon::report {

#if MEDMON_REPORT_HAVE_POLICY
namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// The binder is the judge's own: the device at an address or MAC by the site (ip first, then mac)
// or by a fingerprint the judge bound, so the inventory names the model the verdicts were judged
// against. `judge` must outlive the view.
std::unique_ptr<PolicyView> view_of_judge(const policy::PolicyJudge& judge) {
  auto v = std::make_unique<PolicyView>();
  const policy::PolicyJudge* j = &judge;
  v->binder = [j](const IpAddr& ip, const std::array<uint8_t, 6>& mac) -> std::string {
    const policy::Device* d = j->bound_device(ip, mac);
    return d ? d->model_id : std::string();
  };
  const policy::Site& site = judge.site();
  for (const policy::Device& d : site.devices) {
    auto& list = v->declared[d.name];  // every site device, so the report can name those never seen
    if (!d.model) continue;
    for (const policy::FlowRule& r : d.model->flows) {
      if (!r.default_enabled && std::find(d.enable.begin(), d.enable.end(), r.id) == d.enable.end()) continue;
      DeclaredFlow f;
      f.rule = r.id;
      f.description = r.description;
      f.peer = (r.initiator == policy::Initiator::peer ? "from " : "to ") + r.peer_role;
      std::string ports;
      for (const policy::PortRange& p : r.ports) {
        ports.append(ports.empty() ? "" : ",").append(std::to_string(p.lo));
        if (p.hi != p.lo) ports.append("-").append(std::to_string(p.hi));
      }
      std::string l4 = r.l4 == 6 ? "tcp" : r.l4 == 17 ? "udp" : r.l4 == 1 ? "icmp" : "any";
      f.ports = (r.apps.empty() ? std::string() : join(r.apps, "/") + " ") + l4 + (ports.empty() ? "" : "/" + ports);
      f.source = join(r.source);
      list.push_back(std::move(f));
    }
  }
  return v;
}

}  // namespace

std::unique_ptr<PolicyView> policy_view_of(const FlowJudge* judge) {
  auto* pj = dynamic_cast<const policy::PolicyJudge*>(judge);
  if (!pj) return nullptr;
  auto v = view_of_judge(*pj);
  v->fingerprint_bound = [pj] {
    std::map<std::string, std::string> m;
    for (auto& [ip, d] : pj->fingerprint_bound()) {
      std::string a;
      ip.append_to(a);
      m.emplace(std::move(a), d->name);
    }
    return m;
  };
  return v;
}

std::unique_ptr<PolicyView> policy_view_load(const std::string& site_path, const std::string& models_dir) {
  policy::Errors errs;
  std::shared_ptr<policy::Site> site = policy::load_site(site_path, models_dir, errs);
  for (auto& e : errs.list) std::fprintf(stderr, "%s\n", e.format().c_str());
  if (!site || !errs.empty()) return nullptr;
  // A judge that has seen no flow: it binds by the site alone, as the judge of the analysis did
  // before any fingerprint bound an address.
  std::shared_ptr<policy::PolicyJudge> judge = std::make_shared<policy::PolicyJudge>(std::move(site));
  auto v = view_of_judge(*judge);
  v->keep_alive = judge;
  return v;
}

#else

std::unique_ptr<PolicyView> policy_view_of(const FlowJudge*) { return nullptr; }
std::unique_ptr<PolicyView> policy_view_load(const std::string&, const std::string&) {
  std::fprintf(stderr, "medmon: this build has no policy engine; --site is ignored\n");
  return nullptr;
}

#endif

}  // namespace medmon::report
