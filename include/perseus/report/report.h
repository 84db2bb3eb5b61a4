// A self-contained HTML report (inline SVG, no scripts, viewable offline):
// the frontier, the timeline of one plan, and savings against straggler
// slowdown per method. And the report of a running job on a coordinator:
// its measured energy and time per iteration against the baseline.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json_fwd.hpp"
#include "perseus/emulator/emulator.h"
#include "perseus/planner/frontier.h"

namespace perseus::report {

struct ReportInput {
  std::string title;
  std::vector<std::string> facts;  // lines shown under the title
  const planner::Frontier* frontier = nullptr;
  // Single operating points of other methods, drawn on the frontier chart.
  std::vector<std::pair<std::string, planner::Figures>> baselines;
  size_t timeline_point = 0;  // frontier point whose plan the timeline shows
  int tp = 1;                 // GPUs per pipeline stage (the timeline's rows name them)
  std::vector<emulator::Method> methods;
  std::vector<emulator::EmulationRow> rows;  // savings against slowdown
  // "Next steps": what to do with the plan, as (what, command line).
  std::vector<std::pair<std::string, std::string>> next_steps;
};

std::string RenderReportHtml(const ReportInput& input);

// A self-contained HTML page (no scripts) of a job on `perseus serve`: `job`
// is GET /v1/jobs/ID's body, `report` GET /v1/jobs/ID/report's. Measured
// energy and time per iteration, baseline (highest clock) against Perseus,
// per pipeline and for the job, the model's saving beside. Absent or null
// figures show as an em dash.
std::string RenderJobReportHtml(const nlohmann::json& job, const nlohmann::json& report);

}  // namespace perseus::report
