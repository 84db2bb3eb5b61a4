// `perseus plan` and `perseus demo`.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/job.h"
#include "cli/summary.h"
#include "perseus/planner/frontier_io.h"

namespace perseus::cli {
namespace {

struct PlanArgs {
  job::JobSpec job;
  std::string out_dir;
  bool json = false;
};

// A plan's figures are finite or the plan is refused: JSON would print an
// overflowed energy as null, the table as inf.
Status CheckFinite(const PlannedJob& planned) {
  const planner::Frontier& f = planned.frontier;
  const double dp = planned.job.dp;
  auto finite = [dp](const planner::FrontierPoint& p) {
    return std::isfinite(p.time_s) && std::isfinite(p.energy_j * dp) &&
           std::isfinite(p.model_time_s) && std::isfinite(p.model_energy_j * dp);
  };
  bool ok = std::isfinite(f.all_max.time_s) && std::isfinite(f.all_max.energy_j * dp);
  for (const planner::FrontierPoint& p : f.points()) ok = ok && finite(p);
  if (ok) return Status::Ok();
  return Status::InvalidInput(
      "the plan's time or energy is not finite (it overflows a double): the profile's "
      "energies or times, the blocking power or the scales are too large");
}

// PlanJob, keeping the profile's bytes' SHA-256 for plan.json.
Result<PlannedJob> PlanWithProfileHash(const job::JobSpec& spec, std::string* sha256) {
  auto text = planner::ReadProfileText(spec.profile_path);
  if (!text.ok()) return text.status();
  *sha256 = planner::Sha256Hex(*text);
  auto profile = planner::ParseProfileCsv(*text, spec.profile_path);
  if (!profile.ok()) return profile.status();
  auto resolved = job::WithMeasuredBlockingPower(spec);
  if (!resolved.ok()) return resolved.status();
  auto prepared = job::PrepareJob(*resolved, std::move(profile).value());
  if (!prepared.ok()) return prepared.status();
  auto frontier = job::SolveJob(*prepared, TerminalProgress("planning"));
  if (!frontier.ok()) return frontier.status();
  return PlannedJob{std::move(prepared).value(), std::move(frontier).value()};
}

planner::PlanJobRecord JobRecord(const PlanArgs& args, const PlannedJob& planned,
                                 const std::string& profile_sha256) {
  const job::PreparedJob& j = planned.job;
  planner::PlanJobRecord r;
  r.profile_path = args.job.profile_path;
  r.profile_sha256 = profile_sha256;
  r.schedule = j.schedule;
  r.stages = j.stages;
  r.microbatches = j.microbatches;
  r.model_stages = j.model_stages;
  r.virtual_stages = j.virtual_stages;
  r.tp = j.tp;
  r.dp = j.dp;
  r.gpus = j.gpus;
  r.blocking_power_w = j.blocking_power_w;
  r.blocking_power_source = j.blocking_power_source;
  r.unit_time_s = j.unit_time_s;
  r.cost_model = args.job.cost_model;
  r.time_scale = args.job.time_scale;
  r.energy_scale = args.job.energy_scale;
  return r;
}

int RunPlan(const PlanArgs& args) {
  std::string profile_sha256;
  auto planned = PlanWithProfileHash(args.job, &profile_sha256);
  if (!planned.ok()) return ReportError(planned.status());
  if (Status finite = CheckFinite(*planned); !finite.ok()) return ReportError(finite);
  std::string generation;
  if (!args.out_dir.empty()) {
    auto written =
        planner::WriteFrontierDir(planned->frontier, args.out_dir,
                                  JobRecord(args, *planned, profile_sha256), PERSEUS_VERSION);
    if (!written.ok()) return ReportError(written.status());
    generation = written->generation;
  }
  if (args.json) {
    // The table shows the notes; with --json they are in the object and, for
    // whoever watches the terminal, on stderr.
    PrintNotes(planned->job);
    nlohmann::json summary = SummaryJson(args.job, *planned);
    if (!args.out_dir.empty()) {
      summary["out_dir"] = args.out_dir;
      summary["generation"] = generation;
    }
    std::cout << summary.dump() << std::endl;
  } else {
    std::cout << SummaryTable(args.job, *planned);
    if (!args.out_dir.empty()) {
      std::cout << "  frontier and plans written to " << args.out_dir << " (generation "
                << generation << "; see `perseus show-plan " << args.out_dir
                << " --point t_min|t_star|N` or `--time T`)\n";
    }
  }
  return 0;
}

}  // namespace

void RegisterPlan(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app->add_subcommand(
      "plan", "Compute the iteration time-energy frontier of a pipeline job from its profile");
  AddJobOptions(cmd, &args->job);
  cmd->add_option("--out", args->out_dir,
                  "Write frontier.csv, computations.csv, problem.json, plans.csv and last "
                  "plan.json (generation, checksums, the job planned) to this directory");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of a table");
  cmd->callback([args, exit_code] { *exit_code = RunPlan(*args); });
}

void RegisterDemo(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<PlanArgs>();
  CLI::App* cmd = app->add_subcommand(
      "demo",
      "Plan the shipped GPT-3 175B A100 profile as in the paper's emulation "
      "(8 stages of 8 tensor-parallel A100s, 12 microbatches, 83.64 W blocking power per GPU, "
      "time x10, energy x10 per GPU)");
  cmd->add_option("--out", args->out_dir, "Also write the frontier and plans to this directory");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of a table");
  cmd->callback([args, exit_code] {
    args->job = DemoJobSpec();
    *exit_code = RunPlan(*args);
  });
}

}  // namespace perseus::cli
