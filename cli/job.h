// What every planning subcommand takes (a profile, a schedule, a parallel
// layout and the planner's options) and helpers shared by the subcommands.
#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "perseus/common/status.h"
#include "perseus/job/job.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/solver.h"

namespace perseus::cli {

// Registers --profile, --schedule, --stages, ... on `command`.
void AddJobOptions(CLI::App* command, job::JobSpec* spec);

// Registers only the schedule options (--schedule, --schedule-file, --stages,
// --microbatches, --virtual-stages).
void AddScheduleOptions(CLI::App* command, job::JobSpec* spec);

struct PlannedJob {
  job::PreparedJob job;
  planner::Frontier frontier;
};

// Reads, validates and plans.
Result<PlannedJob> PlanJob(const job::JobSpec& spec, const planner::ProgressFn& progress);

// Prints the job's notes (data derived rather than read) on stderr.
void PrintNotes(const job::PreparedJob& job);

// The demo job: the shipped GPT-3 175B A100 profile as in the paper's emulation.
job::JobSpec DemoJobSpec();

// A progress printer on stderr when stderr is a terminal; otherwise empty.
planner::ProgressFn TerminalProgress(const std::string& what);

// Directory holding the shipped data (profiles/...): $PERSEUS_DATA_DIR, else
// the source tree's data/ this binary was built from.
std::string DataDir();

// A timestamped line on stderr for the long-running commands: "DATE TIME who: line".
void LogLine(const char* who, const std::string& line);

// Maps a Status to the CLI's exit code after printing it: 2 for bad input, 1 otherwise.
int ReportError(const Status& status);

// The bearer token in `path` (trailing whitespace dropped), as `perseus serve
// --token-file` and `perseus report --token-file` read it; an unreadable or
// empty file is kInvalidInput naming it.
Result<std::string> ReadTokenFile(const std::string& path);

}  // namespace perseus::cli
