#pragma once
// The acceptance report: one self-contained HTML file (inline CSS and SVG, no script, no
// external resource) built from the events of an analysis.
#include <map>
#include <string>
#include <vector>

#include "sensor/report/event_log.h"

namespace medmon::report {

// A flow the device's model declares (from the site policy), for "declared, not seen".
struct DeclaredFlow {
  std::string rule, description, peer, ports, source;
};

struct ReportOptions {
  std::string title = "medmon acceptance report";
  // Device name -> the flows its model declares. Empty: the section says the policy was not given.
  std::map<std::string, std::vector<DeclaredFlow>> declared;
  bool have_declared = false;
  // The addresses the policy judge bound to devices by fingerprint (address -> device name), when
  // the report is made by the analysis that ran the judge; else they are read from the events
  // (fingerprint_bindings).
  std::map<std::string, std::string> bound;
  bool have_bound = false;
};

std::string render_html(const EventLog& log, const ReportOptions& opt);

// HTML-escapes text (& < > " ').
std::string html_escape(std::string_view s);

}  // namespace medmon::report
