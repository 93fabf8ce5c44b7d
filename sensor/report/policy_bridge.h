#pragma once
// What the report and the inventory take from the site policy, when medmon is built with it:
// the model each device is bound to, and the flows each model declares.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sensor/engine/flow_judge.h"
#include "sensor/report/html_report.h"

namespace medmon::report {

struct PolicyView {
  // Model id bound to an address or MAC, "" = unbound.
  std::function<std::string(const IpAddr&, const std::array<uint8_t, 6>&)> binder;
  // Device name -> its model's declared flows.
  std::map<std::string, std::vector<DeclaredFlow>> declared;
  // The judge's fingerprint bindings (address -> device name) as they stand; null for a view
  // loaded from a file, whose judge judged nothing.
  std::function<std::map<std::string, std::string>()> fingerprint_bound;
  std::shared_ptr<const void> keep_alive;  // the site, when loaded from a file
};

// From the judge analyze runs with (nullptr when it is not the site policy).
std::unique_ptr<PolicyView> policy_view_of(const FlowJudge* judge);
// Loads the site file (and its models). Errors go to stderr; nullptr on failure or when medmon
// was built without the policy engine.
std::unique_ptr<PolicyView> policy_view_load(const std::string& site_path, const std::string& models_dir);

}  // namespace medmon::report
