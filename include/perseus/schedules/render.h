// Renderings of a schedule for humans: which computation each GPU runs, in
// order (text), and when (SVG timeline).
#pragma once

#include <string>
#include <vector>

#include "perseus/planner/dag.h"
#include "perseus/schedules/schedule.h"

namespace perseus::schedules {

// One line per rank: "rank 0 | 0F0 0F1 0B0 ...", actions in torch's notation
// (stage, F/B/I/W, microbatch; an overlapped pair as "(0F7;7B3)").
std::string RenderScheduleText(const RankOrders& orders);

// A timeline: every computation as a box at its earliest start, given a
// duration per DAG node (seconds or any unit); colour by instruction.
std::string RenderScheduleSvg(const planner::Dag& dag, const std::vector<double>& duration,
                              const std::string& title);

// Illustrative durations when no profile is given: F 1, B 2, I 1, W 1; an
// overlapped pair the sum of its halves'.
std::vector<double> UnitDurations(const planner::Dag& dag);

}  // namespace perseus::schedules
