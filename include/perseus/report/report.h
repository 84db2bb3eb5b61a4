// A self-contained HTML report (inline SVG, no scripts, viewable offline):
// the frontier, the timeline of one plan, and savings against straggler
// slowdown per method.
#pragma once

#include <string>
#include <utility>
#include <vector>

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
  std::vector<emulator::Method> methods;
  std::vector<emulator::EmulationRow> rows;  // savings against slowdown
};

std::string RenderReportHtml(const ReportInput& input);

}  // namespace perseus::report
