// A training job as users describe it (profile, schedule, parallel layout,
// planner options) turned into a planning problem and its frontier. The CLI,
// the emulator, the server and the Python package all plan through here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/problem.h"
#include "perseus/planner/profile.h"
#include "perseus/planner/solver.h"
#include "perseus/schedules/schedule.h"

namespace perseus::job {

// The most blocking power a GPU may be said to draw (watts per GPU).
inline constexpr double kMaxBlockingPowerW = 10000;

struct JobSpec {
  std::string profile_path;
  std::string schedule = "1f1b";  // a built-in schedule name, unless schedule_file/_csv is set
  std::string schedule_file;      // torch.distributed.pipelining CSV; gives S and M
  // The same CSV given as text (what a server or a Python caller holds);
  // called "schedule" in messages. At most one of schedule_file and schedule_csv.
  std::string schedule_csv;
  int stages = 0;               // pipeline ranks S (0 = take it from the CSV)
  int microbatches = 0;         // M (0 = take it from the CSV)
  int virtual_stages = 1;       // V, interleaved-1f1b
  int tp = 1;                   // tensor-parallel degree N
  int dp = 1;                   // data-parallel degree D (pipelines)
  double blocking_power_w = 0;  // watts per GPU while not computing
  // Where blocking_power_w comes from: "given" (a flag or field), or "" (not
  // given: PrepareJob(spec) then takes the one `perseus profile` measured,
  // from the profile's sidecar ProfileMetaPath, else plans with 0 W and warns).
  std::string blocking_power_source;
  // The solver's time quantum tau; 0: chosen from the profile (AutoUnitTime).
  double unit_time_s = 0;
  std::string cost_model = "convex";
  double time_scale = 1;
  double energy_scale = 1;
};

// Bounds on the work one plan may take, checked before anything large is
// built, the same for the CLI, the coordinator and Python: a job beyond them
// is refused with an error naming the field and the bound, never planned into
// an exhausted memory or an hour-long solve. At the defaults, the largest
// job planned takes a few hundred MB.
struct WorkLimits {
  // Computations of one pipeline (S x M x V x 2, or x 3 with a split backward).
  int64_t max_computations = int64_t{1} << 18;
  int max_virtual_stages = 128;
  // Cost-table sizes (planner::PlannerOptions' bounds of the same names).
  int64_t max_units_per_computation = int64_t{1} << 20;
  int64_t max_total_units = int64_t{1} << 22;
  // Points the frontier sweep may keep (planner::SolverOptions::max_points).
  int64_t max_frontier_points = int64_t{1} << 20;
};

// The limit checks on the spec alone (no profile): virtual_stages and the
// schedule's size. Errors name the fields.
Status CheckWorkLimits(const JobSpec& spec, const WorkLimits& limits = {});

// A job's schedule: its per-rank orders (from --schedule-file, the CSV text or
// a built-in generator), their DAG, and a name for output ("1f1b",
// "file:PATH", or "csv" for CSV text).
struct ResolvedSchedule {
  schedules::RankOrders orders;
  planner::Dag dag;
  std::string name;
};
// Errors name the field at fault (as JobSpec and the coordinator's JSON call
// it: stages, microbatches, ...), or the schedule file and its action.
Result<ResolvedSchedule> ResolveSchedule(const JobSpec& spec, const WorkLimits& limits = {});

// What PrepareJob derived, for summaries.
struct PreparedJob {
  std::shared_ptr<const planner::Problem> problem;
  std::string schedule;  // built-in name, "file:PATH", or "csv"
  int stages = 0;        // pipeline ranks S
  int microbatches = 0;  // M
  int model_stages = 0;  // S, or S x V model chunks
  int virtual_stages = 1;
  int tp = 1, dp = 1;
  int gpus = 0;  // S x N x D
  // Data the planner derived rather than read (split backward, chunks, TP,
  // overlapped forward+backward).
  std::vector<std::string> notes;
  // Blocking power of one pipeline rank's tp GPUs, watts; per GPU, and whence
  // ("given", "measured by perseus profile (FILE)", "none").
  double stage_blocking_power_w = 0;
  double blocking_power_w = 0;
  std::string blocking_power_source;
  // What looks wrong in the input but is planned anyway: a computation with
  // no row at the profile's highest frequency ("all-max" is then not all-max),
  // times that look like milliseconds, no blocking power. Printed as warnings.
  std::vector<std::string> warnings;
  double unit_time_s = 0;  // the quantum used (the spec's, or AutoUnitTime's)
};

// The blocking power as every output says it: one meaning (blocking_power_w
// is per GPU; a pipeline stage of tp GPUs draws tp times that), one wording:
// "83.64 W per GPU (669.1 W per 8-GPU stage)", "70.38 W per GPU (1-GPU stages)".
std::string BlockingPowerText(double w_per_gpu, int tp);

// The default time quantum: the fastest computation of the (scaled) profile
// divided by kAutoUnitDivisions, rounded down to 1, 2 or 5 x 10^k, within
// [1e-5 s, 1 s]. Relative to the computations, so a scaled profile plans
// alike; 0.1 ms for the shipped A100 profiles (50 ms forwards), where the
// realized savings are within 0.1 points of the exact optimum's bound at the
// deadlines measured (bench/RESULTS.md).
inline constexpr double kAutoUnitDivisions = 500;
double AutoUnitTime(const planner::Profile& profile);

// The file beside a profile where `perseus profile --out FILE` records what it
// measured besides the CSV (the blocking power): FILE.meta.json.
std::string ProfileMetaPath(const std::string& profile_path);

// A spec without a blocking power (source "" and 0 W) with the one measured
// beside its profile (ProfileMetaPath), if there is that file; else the spec.
Result<JobSpec> WithMeasuredBlockingPower(const JobSpec& spec);

// Reads the profile file, then as below, after WithMeasuredBlockingPower.
Result<PreparedJob> PrepareJob(const JobSpec& spec, const WorkLimits& limits = {});
// Validates the spec against an already parsed profile (its source names it in
// messages), applies scales, TP and the derivations the schedule needs, and
// builds the problem of one pipeline. Errors are kInvalidInput (or kNotFound
// for missing files) naming the field or file:line at fault; a job beyond
// `limits` is kInvalidInput too.
Result<PreparedJob> PrepareJob(const JobSpec& spec, planner::Profile profile,
                               const WorkLimits& limits = {});

// SolveFrontier for a prepared job within `limits` (options.max_points, unless
// set); options.should_stop cancels it.
Result<planner::Frontier> SolveJob(const PreparedJob& job, const planner::ProgressFn& progress = {},
                                   planner::SolverOptions options = {},
                                   const WorkLimits& limits = {});

}  // namespace perseus::job
