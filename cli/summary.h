// The planning summary: one JSON object for machines, a short table for humans.
#pragma once

#include <string>

#include "cli/job.h"
#include "nlohmann/json.hpp"
#include "perseus/planner/frontier.h"

namespace perseus::cli {

nlohmann::json SummaryJson(const JobOptions& job, const planner::Frontier& frontier);
std::string SummaryTable(const JobOptions& job, const planner::Frontier& frontier);

}  // namespace perseus::cli
