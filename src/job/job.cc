#include "perseus/job/job.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "perseus/planner/profile_transforms.h"
#include "perseus/schedules/schedule_csv.h"

namespace perseus::job {

using planner::Instruction;

namespace {

Status CheckPositive(double value, const char* option) {
  if (!(value > 0) || !std::isfinite(value)) {
    return Status::InvalidInput(std::string(option) + " must be a positive number");
  }
  return Status::Ok();
}

// How messages name a schedule given as a CSV; empty for a built-in one.
std::string CsvSource(const JobSpec& spec) {
  if (!spec.schedule_file.empty()) return spec.schedule_file;
  return spec.schedule_csv.empty() ? "" : "schedule";
}

}  // namespace

Result<ResolvedSchedule> ResolveSchedule(const JobSpec& spec) {
  ResolvedSchedule r;
  if (!spec.schedule_file.empty() && !spec.schedule_csv.empty()) {
    return Status::InvalidInput(
        "give the schedule either as a file (--schedule-file) or as CSV text, not both");
  }
  if (!spec.schedule_file.empty()) {
    auto read = schedules::ReadScheduleCsv(spec.schedule_file);
    if (!read.ok()) return read.status();
    r.orders = std::move(read).value();
    r.name = "file:" + spec.schedule_file;
  } else if (!spec.schedule_csv.empty()) {
    auto parsed = schedules::ParseScheduleCsv(spec.schedule_csv, "schedule");
    if (!parsed.ok()) return parsed.status();
    r.orders = std::move(parsed).value();
    r.name = "csv";
  } else {
    schedules::ScheduleKind kind;
    if (!schedules::ParseScheduleName(spec.schedule, &kind)) {
      return Status::InvalidInput("--schedule must be one of " + schedules::ScheduleNames() +
                                  ", not '" + spec.schedule + "'");
    }
    if (spec.stages < 1) return Status::InvalidInput("--stages is required (at least 1)");
    if (spec.microbatches < 1) {
      return Status::InvalidInput("--microbatches is required (at least 1)");
    }
    auto generated =
        schedules::GenerateRankOrders(kind, {spec.stages, spec.microbatches, spec.virtual_stages});
    if (!generated.ok()) return generated.status();
    r.orders = std::move(generated).value();
    r.name = std::string(schedules::ScheduleName(kind));
  }
  auto dag = schedules::BuildScheduleDag(r.orders);
  if (!dag.ok()) {
    const std::string source = CsvSource(spec);
    return source.empty() ? dag.status()
                          : Status::InvalidInput(source + ": " + dag.status().message());
  }
  r.dag = std::move(dag).value();
  return r;
}

Result<PreparedJob> PrepareJob(const JobSpec& spec) {
  auto profile = planner::ReadProfileCsv(spec.profile_path);
  if (!profile.ok()) return profile.status();
  return PrepareJob(spec, std::move(profile).value());
}

Result<PreparedJob> PrepareJob(const JobSpec& spec, planner::Profile profile) {
  planner::PlannerOptions options;
  if (!planner::ParseCostModel(spec.cost_model, &options.cost_model)) {
    return Status::InvalidInput("--cost-model must be 'exponential' or 'convex', not '" +
                                spec.cost_model + "'");
  }
  for (Status s : {CheckPositive(spec.time_scale, "--time-scale"),
                   CheckPositive(spec.energy_scale, "--energy-scale")}) {
    if (!s.ok()) return s;
  }
  if (spec.unit_time_s != 0) {
    if (Status s = CheckPositive(spec.unit_time_s, "--unit-time"); !s.ok()) return s;
  }
  if (!(spec.blocking_power_w >= 0) || !std::isfinite(spec.blocking_power_w)) {
    return Status::InvalidInput("--blocking-power must be a non-negative number of watts");
  }
  if (spec.tp < 1) return Status::InvalidInput("--tp must be at least 1");
  if (spec.dp < 1) return Status::InvalidInput("--dp must be at least 1");

  PreparedJob job;
  job.tp = spec.tp;
  job.dp = spec.dp;
  job.virtual_stages = spec.virtual_stages;

  auto schedule = ResolveSchedule(spec);
  if (!schedule.ok()) return schedule.status();
  job.schedule = schedule->name;
  planner::Dag& dag = schedule->dag;
  job.stages = dag.num_gpus();
  int model_stages = 0, microbatches = 0;
  bool split_backward = false, overlapped = false;
  for (const auto& c : dag.nodes()) {
    model_stages = std::max(model_stages, c.stage + 1);
    microbatches = std::max(microbatches, c.microbatch + 1);
    split_backward = split_backward || c.instruction == Instruction::kBackwardInput;
    if (c.overlapped()) {
      overlapped = true;
      model_stages = std::max(model_stages, c.overlap.stage + 1);
      microbatches = std::max(microbatches, c.overlap.microbatch + 1);
      split_backward = split_backward || c.overlap.instruction == Instruction::kBackwardInput;
    }
  }
  job.model_stages = model_stages;
  job.microbatches = microbatches;
  if (const std::string source = CsvSource(spec); !source.empty()) {
    if (spec.stages != 0 && spec.stages != job.stages) {
      return Status::InvalidInput(source + ": the schedule has " + std::to_string(job.stages) +
                                  " ranks but --stages is " + std::to_string(spec.stages));
    }
    if (spec.microbatches != 0 && spec.microbatches != job.microbatches) {
      return Status::InvalidInput(
          source + ": the schedule has " + std::to_string(job.microbatches) +
          " microbatches but --microbatches is " + std::to_string(spec.microbatches));
    }
    job.virtual_stages = model_stages % job.stages == 0 ? model_stages / job.stages : 1;
  }
  job.gpus = job.stages * job.tp * job.dp;

  // The profile: scales, tensor parallelism, then what the schedule needs.
  planner::ScaleProfile(&profile, spec.time_scale, spec.energy_scale);
  auto combined = planner::CombineTensorParallel(profile, spec.tp, &job.notes);
  if (!combined.ok()) return combined.status();
  profile = std::move(combined).value();
  if (profile.num_stages != model_stages) {
    if (model_stages > profile.num_stages && model_stages % profile.num_stages == 0 &&
        profile.num_stages == job.stages) {
      profile =
          planner::SplitStagesIntoChunks(profile, model_stages / profile.num_stages, &job.notes);
    } else {
      return Status::InvalidInput(
          profile.source + ": the profile has " + std::to_string(profile.num_stages) +
          " stages but the schedule needs " + std::to_string(model_stages) +
          (model_stages != job.stages
               ? " model chunks (or " + std::to_string(job.stages) + " stages to cut into chunks)"
               : "") +
          (CsvSource(spec).empty() && model_stages == job.stages
               ? " (--stages is " + std::to_string(spec.stages) + ")"
               : ""));
    }
  }
  if (split_backward) profile = planner::SplitBackward(profile, &job.notes);
  if (overlapped) {
    job.notes.push_back(
        "overlapped F+B of DualPipeV: time and energy are the sum of the forward's and the "
        "backward's at each frequency (torch runs them back to back)");
  }

  job.unit_time_s = spec.unit_time_s > 0 ? spec.unit_time_s : AutoUnitTime(profile);
  options.unit_time_s = job.unit_time_s;
  job.stage_blocking_power_w = spec.blocking_power_w * spec.tp;
  options.blocking_power_w = job.stage_blocking_power_w;
  auto problem =
      planner::BuildProblem(std::make_shared<planner::Dag>(std::move(dag)), profile, options);
  if (!problem.ok()) return problem.status();
  job.problem = std::make_shared<planner::Problem>(std::move(problem).value());
  return job;
}

double AutoUnitTime(const planner::Profile& profile) {
  double fastest = std::numeric_limits<double>::infinity();
  for (const auto& [key, rows] : profile.measurements) {
    for (const auto& m : rows) fastest = std::min(fastest, m.time_s);
  }
  if (!std::isfinite(fastest) || fastest <= 0) return 0.001;
  const double raw = fastest / kAutoUnitDivisions;
  const double decade = std::pow(10.0, std::floor(std::log10(raw)));
  double nice = decade;
  for (double step : {5.0, 2.0}) {
    if (step * decade <= raw * (1 + 1e-9)) {
      nice = step * decade;
      break;
    }
  }
  return std::clamp(nice, 1e-5, 1.0);
}

}  // namespace perseus::job
