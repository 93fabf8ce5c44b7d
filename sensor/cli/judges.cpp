// Builds the flow judges the analyze and live commands put into the pipeline.
#include "sensor/cli/commands.h"

#include <sys/stat.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "dissectors/proprietary/signature.h"
#include "sensor/common/diag.h"
#if MEDMON_HAVE_POLICY
#include "policies/cli/policy_cli.h"
#endif

namespace medmon {

std::unique_ptr<FlowJudge> load_judge(const SensorConfig& c, const CommonOptions& o, HeaderAnnotator** annotator) {
  *annotator = nullptr;
  // Alerts are accepted only by a policy: a baseline without one would be silently unused.
  if (c.site_policy.empty() && !o.baseline.empty())
    throw ConfigError("--baseline " + o.baseline + ": a baseline needs a site policy (--site, or policy.site in --config)");
  if (c.site_policy.empty()) return nullptr;
  // policy.site of the configuration: an error names the line that gives the path.
  if (!c.site_policy_where.empty())
    if (struct stat st; ::stat(c.site_policy.c_str(), &st) != 0)
      throw ConfigError(fmt::format("{}: policy.site {}: {}", c.site_policy_where, c.site_policy, std::strerror(errno)));
#if MEDMON_HAVE_POLICY
  auto judge = load_policy_judge(c.site_policy, o.models_dir, o.baseline);
  if (!judge) throw ConfigError("policy not loaded (errors above)");
  *annotator = judge.get();
  return judge;
#else
  throw ConfigError("this build has no policy engine");
#endif
}

bool load_signature_dirs(const CommonOptions& o) {
  bool ok = true;
  for (const auto& dir : o.signatures) {
    for (const auto& e : proprietary::add_signatures(dir)) {
      print_err("medmon: {}\n", e.str());
      ok = false;
    }
  }
  return ok;
}

std::unique_ptr<FlowJudge> fork_judge(const FlowJudge& j) {
#if MEDMON_HAVE_POLICY
  return static_cast<const policy::PolicyJudge&>(j).fork(/*share_state=*/true);
#else
  return nullptr;
#endif
}

}  // namespace medmon
