// What every planning subcommand takes: a profile, a job shape and the
// planner's options, and the one function that turns them into a frontier.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/problem.h"
#include "perseus/planner/solver.h"

namespace perseus::cli {

struct JobOptions {
  std::string profile_path;
  int stages = 0;
  int microbatches = 0;
  double blocking_power_w = 0;
  double unit_time_s = 0.001;
  std::string cost_model = "convex";
  double time_scale = 1;
  double energy_scale = 1;
};

// Registers --profile, --stages, ... on `command`.
void AddJobOptions(CLI::App* command, JobOptions* job);

// Reads, validates and plans. Errors carry file:line where they come from a file.
Result<planner::Frontier> PlanJob(const JobOptions& job, const planner::ProgressFn& progress);

// A progress printer on stderr when stderr is a terminal; otherwise empty.
planner::ProgressFn TerminalProgress(const std::string& what);

// Directory holding the shipped data (profiles/...): $PERSEUS_DATA_DIR, else
// the source tree's data/ this binary was built from.
std::string DataDir();

// Maps a Status to the CLI's exit code after printing it: 2 for bad input, 1 otherwise.
int ReportError(const Status& status);

}  // namespace perseus::cli
