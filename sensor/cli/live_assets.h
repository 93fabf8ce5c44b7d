#pragma once
// The asset inventory of a live sensor: one tracker for all workers (a device's flows reach
// several workers through the fanout hash, and it must be reported once), behind a lock taken
// once per flow end and per `dicom` event. It follows the site policy in force: after a reload,
// new devices get their names, zones and models from the new policy.
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

#include "sensor/assets/asset_tracker.h"
#include "sensor/assets/impl_table.h"
#include "sensor/assets/oui_table.h"
#include "sensor/engine/flow_judge.h"
#include "sensor/output/event_output.h"

namespace medmon {

namespace report { struct PolicyView; }

class LiveAssets {
 public:
  // The policy in force and its generation (changes on every reload).
  using CurrentPolicy = std::function<std::pair<std::shared_ptr<const FlowJudge>, uint64_t>()>;
  explicit LiveAssets(CurrentPolicy policy);
  ~LiveAssets();

  // What a worker's pipeline and event output are given. Only worker 0 adds the inventory's
  // counters to its final stats, so that a sum over workers counts every device once.
  class Worker : public FlowJudge, public EventObserver {
   public:
    Worker(LiveAssets& a, bool counters) : a_(a), counters_(counters) {}
    FlowVerdict judge(const FlowSummary& f, EventOutput& out) override;
    void finish(Timestamp now, EventOutput& out) override;
    void on_event(std::string_view type, std::string_view line) override;

   private:
    LiveAssets& a_;
    bool counters_;
  };
  std::unique_ptr<Worker> worker(int index) { return std::make_unique<Worker>(*this, index == 0); }

 private:
  void follow_policy();  // with lock_ held

  std::mutex lock_;
  OuiTable oui_;
  ImplTable impl_;
  AssetTracker tracker_;
  CurrentPolicy policy_;
  uint64_t generation_ = ~uint64_t(0);
  std::shared_ptr<const FlowJudge> judge_;      // keeps the annotator alive
  std::unique_ptr<report::PolicyView> view_;    // keeps the binder's site alive
};

}  // namespace medmon
