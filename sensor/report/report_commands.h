#pragma once
// `medmon assets`, `medmon report`, and `--report` on `medmon analyze`.
#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "sensor/engine/flow_judge.h"
#include "sensor/output/event_output.h"

namespace medmon {

// Adds `assets EVENTS.jsonl [--json]` and `report EVENTS.jsonl -o FILE.html|FILE.pdf`, and the
// `--report FILE` option of an existing `analyze` subcommand. Callbacks set exit_code
// (0 ok, 2 usage error, 3 unreadable input).
void register_report_commands(CLI::App& app, int& exit_code);

// The files a report written to `out_path` creates: the file itself and, for a PDF, the HTML
// file it is printed from.
std::vector<std::string> report_files(const std::string& out_path);

// The --report file of `analyze` ("" when not given).
const std::string& analyze_report_option();

// What `analyze` needs for the inventory and the report. Construct it before the output's sinks
// are opened (then check error()), before the pipeline; call finish() after the pipeline has
// finished and the output is flushed.
class AnalyzeExtras {
 public:
  // `out_rotates`: the events file is rotated, so reading it back would give the last part only.
  AnalyzeExtras(EventOutput& out, const std::string& events_path, bool out_rotates = false);
  ~AnalyzeExtras();
  // Why this run's events cannot be kept for the report (no file for them can be made under
  // $TMPDIR); empty when they can.
  std::string error() const;
  // The asset tracker: a judge for the pipeline (or the workers' merge) that also observes `out`.
  FlowJudge* asset_judge();
  // The site policy (the judge analyze loaded, and its annotator; either may be null): asset
  // events then carry device names, zones and bound models, and the report lists declared
  // flows that were never seen. Call before asset_judge().
  void set_policy(const FlowJudge* judge, HeaderAnnotator* annotator);
  // Writes the report when --report was given. Returns an exit code (0, or 2 when it failed).
  int finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Renders the events of `events_path` (or of `lines`, when not empty) into `out_path`
// (.pdf: printed by headless Chromium). Errors go to stderr; returns an exit code.
// site_path: a site policy to list declared-but-unseen flows ("" = none).
int write_report(const std::string& events_path, const std::vector<std::string>* lines, const std::string& out_path,
                 const std::string& title, const std::string& site_path = {}, const std::string& models_dir = {});

}  // namespace medmon
