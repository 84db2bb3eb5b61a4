#include "cli/job.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "perseus/planner/profile.h"
#include "perseus/schedules/one_f_one_b.h"

namespace perseus::cli {

void AddJobOptions(CLI::App* command, JobOptions* job) {
  command
      ->add_option("--profile", job->profile_path,
                   "Profile CSV (stage,instruction,frequency,time,energy)")
      ->required();
  command->add_option("--stages", job->stages, "Number of pipeline stages S")->required();
  command->add_option("--microbatches", job->microbatches, "Microbatches per iteration M")
      ->required();
  command
      ->add_option("--blocking-power", job->blocking_power_w,
                   "Power (W) one stage's GPUs draw while waiting (A100: 83.64 per GPU)")
      ->capture_default_str();
  command->add_option("--unit-time", job->unit_time_s, "Time quantum of the solver, seconds")
      ->capture_default_str();
  command->add_option("--cost-model", job->cost_model, "exponential | convex")
      ->capture_default_str();
  command->add_option("--time-scale", job->time_scale, "Multiply every profiled time")
      ->capture_default_str();
  command->add_option("--energy-scale", job->energy_scale, "Multiply every profiled energy")
      ->capture_default_str();
}

Result<planner::Frontier> PlanJob(const JobOptions& job, const planner::ProgressFn& progress) {
  planner::PlannerOptions options;
  if (!planner::ParseCostModel(job.cost_model, &options.cost_model)) {
    return Status::InvalidInput("--cost-model must be 'exponential' or 'convex', not '" +
                                job.cost_model + "'");
  }
  if (!(job.time_scale > 0) || !std::isfinite(job.time_scale)) {
    return Status::InvalidInput("--time-scale must be a positive number");
  }
  if (!(job.energy_scale > 0) || !std::isfinite(job.energy_scale)) {
    return Status::InvalidInput("--energy-scale must be a positive number");
  }
  options.blocking_power_w = job.blocking_power_w;
  options.unit_time_s = job.unit_time_s;

  auto profile = planner::ReadProfileCsv(job.profile_path);
  if (!profile.ok()) return profile.status();
  planner::ScaleProfile(&profile.value(), job.time_scale, job.energy_scale);
  if (job.stages != profile->num_stages) {
    return Status::InvalidInput(job.profile_path + ": the profile has " +
                                std::to_string(profile->num_stages) + " stages but --stages is " +
                                std::to_string(job.stages));
  }
  auto dag = schedules::MakeOneFOneB(job.stages, job.microbatches);
  if (!dag.ok()) return dag.status();
  auto problem = planner::BuildProblem(std::make_shared<planner::Dag>(std::move(dag).value()),
                                       *profile, options);
  if (!problem.ok()) return problem.status();
  return planner::SolveFrontier(std::make_shared<planner::Problem>(std::move(problem).value()),
                                progress);
}

planner::ProgressFn TerminalProgress(const std::string& what) {
  if (!isatty(STDERR_FILENO)) return {};
  return [what](double fraction) {
    std::fprintf(stderr, "\r%s: %3.0f%%%s", what.c_str(), fraction * 100,
                 fraction >= 1.0 ? "\r\033[K" : "");
    std::fflush(stderr);
  };
}

std::string DataDir() {
  if (const char* env = std::getenv("PERSEUS_DATA_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return PERSEUS_DATA_DIR;
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "perseus: error: %s\n", status.message().c_str());
  switch (status.code()) {
    case StatusCode::kInvalidInput:
    case StatusCode::kNotFound:
      return 2;
    default:
      return 1;
  }
}

}  // namespace perseus::cli
