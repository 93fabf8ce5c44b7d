#include "sensor/cli/live_assets.h"

#include "sensor/assets/data_files.h"
#include "sensor/report/policy_bridge.h"

namespace medmon {

LiveAssets::LiveAssets(CurrentPolicy policy) : tracker_(&oui_, &impl_), policy_(std::move(policy)) {
  load_reference_tables(oui_, impl_);
}

LiveAssets::~LiveAssets() = default;

void LiveAssets::follow_policy() {
  auto [judge, gen] = policy_();
  if (gen == generation_) return;
  generation_ = gen;
  judge_ = std::move(judge);
  // The policy judge's annotate() only reads its site: safe from any worker (see PolicyJudge).
  auto* annotator = dynamic_cast<HeaderAnnotator*>(const_cast<FlowJudge*>(judge_.get()));
  tracker_.set_annotator(annotator);
  view_ = report::policy_view_of(judge_.get());
  if (view_) tracker_.set_binder(view_->binder);
  else tracker_.set_binder(nullptr);
  tracker_.rebind_all();  // devices seen under the previous policy take the new names and models
}

FlowVerdict LiveAssets::Worker::judge(const FlowSummary& f, EventOutput& out) {
  std::lock_guard<std::mutex> hold(a_.lock_);
  a_.follow_policy();
  return a_.tracker_.judge(f, out);
}

void LiveAssets::Worker::finish(Timestamp now, EventOutput& out) {
  std::lock_guard<std::mutex> hold(a_.lock_);
  if (counters_) {
    a_.tracker_.finish(now, out);
  } else {
    a_.tracker_.flush(now, out);  // worker 0 writes the counters
  }
}

void LiveAssets::Worker::on_event(std::string_view type, std::string_view line) {
  if (type == "dhcp") {
    AssetTracker::DhcpSighting s;
    if (!AssetTracker::read_dhcp(line, s)) return;
    std::lock_guard<std::mutex> hold(a_.lock_);
    a_.follow_policy();
    a_.tracker_.apply(s);
    return;
  }
  if (type != "dicom") return;  // the only other events the tracker reads
  // Read outside the lock (a line of an association with many contexts is tens of KiB), so
  // that the workers only queue for the inventory's update.
  AssetTracker::DicomSighting s;
  if (!AssetTracker::read_dicom(line, s)) return;
  std::lock_guard<std::mutex> hold(a_.lock_);
  a_.follow_policy();
  a_.tracker_.apply(s);
}

}  // namespace medmon
