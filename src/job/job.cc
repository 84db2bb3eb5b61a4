#include "perseus/job/job.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "nlohmann/json.hpp"
#include "perseus/common/number_text.h"
#include "perseus/planner/profile_transforms.h"
#include "perseus/schedules/schedule_csv.h"

namespace perseus::job {

using planner::Instruction;

namespace {

// What looks wrong in a (scaled, combined) profile, one line per kind, each
// naming up to three rows.
std::vector<std::string> ProfileWarnings(const planner::Profile& profile) {
  std::vector<std::string> warnings;
  int highest = 0;
  const planner::Measurement* fastest = nullptr;
  for (const auto& [key, rows] : profile.measurements) {
    for (const auto& m : rows) {
      highest = std::max(highest, m.frequency_mhz);
      if (fastest == nullptr || m.time_s < fastest->time_s) fastest = &m;
    }
  }
  std::vector<std::string> lacking;
  for (const auto& [key, rows] : profile.measurements) {
    int top = 0;
    for (const auto& m : rows) top = std::max(top, m.frequency_mhz);
    if (top < highest) {
      lacking.push_back("stage " + std::to_string(key.stage) + " " +
                        std::string(planner::InstructionName(key.instruction)) + " (at most " +
                        std::to_string(top) + " MHz)");
    }
  }
  if (!lacking.empty()) {
    std::string list;
    for (size_t k = 0; k < lacking.size() && k < 3; ++k) list += (k > 0 ? ", " : "") + lacking[k];
    if (lacking.size() > 3) list += ", and " + std::to_string(lacking.size() - 3) + " more";
    warnings.push_back(profile.source + ": " + std::to_string(lacking.size()) +
                       " computation(s) have no row at the profile's highest frequency, " +
                       std::to_string(highest) + " MHz: " + list +
                       "; their \"all-max\" is their own highest row, so savings against all-max "
                       "are not against the GPU's highest clock");
  }
  // Forwards and backwards of one microbatch take milliseconds to seconds.
  constexpr double kImplausibleFastestS = 10;
  if (fastest != nullptr && fastest->time_s >= kImplausibleFastestS) {
    warnings.push_back(profile.source + ":" + std::to_string(fastest->line) +
                       ": the fastest computation takes " + NumberText(fastest->time_s) +
                       " s; times look like milliseconds, but the time column is seconds (scale "
                       "them with time_scale 0.001 if they are milliseconds)");
  }
  return warnings;
}

Status CheckPositive(double value, const char* option) {
  if (!(value > 0) || !std::isfinite(value)) {
    return Status::InvalidInput(std::string(option) + " must be a positive number")
        .WithField(option);
  }
  return Status::Ok();
}

// How messages name a schedule given as a CSV; empty for a built-in one.
std::string CsvSource(const JobSpec& spec) {
  if (!spec.schedule_file.empty()) return spec.schedule_file;
  return spec.schedule_csv.empty() ? "" : "schedule";
}

}  // namespace

Status CheckWorkLimits(const JobSpec& spec, const WorkLimits& limits) {
  if (spec.virtual_stages < 1 || spec.virtual_stages > limits.max_virtual_stages) {
    return Status::InvalidInput("virtual_stages must be between 1 and " +
                                std::to_string(limits.max_virtual_stages) + ", not " +
                                std::to_string(spec.virtual_stages))
        .WithField("virtual_stages");
  }
  if (!spec.schedule_file.empty() || !spec.schedule_csv.empty()) return Status::Ok();
  // A built-in schedule: S x M x V forwards and as many backwards (split in
  // two by zb-h1), before anything is generated.
  schedules::ScheduleKind kind = schedules::ScheduleKind::kOneFOneB;
  const bool zero_bubble = schedules::ParseScheduleName(spec.schedule, &kind) &&
                           kind == schedules::ScheduleKind::kZeroBubbleH1;
  const int64_t per_chunk = zero_bubble ? 3 : 2;
  const int64_t computations = static_cast<int64_t>(std::max(spec.stages, 0)) *
                               std::max(spec.microbatches, 0) * spec.virtual_stages * per_chunk;
  if (computations > limits.max_computations) {
    return Status::InvalidInput(
               "stages x microbatches" +
               std::string(spec.virtual_stages > 1 ? " x virtual_stages" : "") + " make " +
               std::to_string(computations) + " computations per pipeline (" +
               std::to_string(spec.stages) + " x " + std::to_string(spec.microbatches) +
               (spec.virtual_stages > 1 ? " x " + std::to_string(spec.virtual_stages) : "") +
               " x " + std::to_string(per_chunk) + "); at most " +
               std::to_string(limits.max_computations))
        .WithField("microbatches");
  }
  return Status::Ok();
}

Result<ResolvedSchedule> ResolveSchedule(const JobSpec& spec, const WorkLimits& limits) {
  ResolvedSchedule r;
  if (!spec.schedule_file.empty() && !spec.schedule_csv.empty()) {
    return Status::InvalidInput(
        "give the schedule either as a file (schedule_file) or as CSV text, not both");
  }
  PERSEUS_RETURN_IF_ERROR(CheckWorkLimits(spec, limits));
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
      return Status::InvalidInput("schedule must be one of " + schedules::ScheduleNames() +
                                  ", not '" + spec.schedule + "'")
          .WithField("schedule");
    }
    if (spec.stages < 1) {
      return Status::InvalidInput("stages is required (at least 1)").WithField("stages");
    }
    if (spec.microbatches < 1) {
      return Status::InvalidInput("microbatches is required (at least 1)")
          .WithField("microbatches");
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
  if (r.dag.num_nodes() > limits.max_computations) {
    return Status::InvalidInput(
               CsvSource(spec) + ": the schedule has " + std::to_string(r.dag.num_nodes()) +
               " computations per pipeline; at most " + std::to_string(limits.max_computations))
        .WithField(spec.schedule_csv.empty() ? "schedule_file" : "schedule_csv");
  }
  return r;
}

std::string BlockingPowerText(double w_per_gpu, int tp) {
  if (tp <= 1) return NumberText(w_per_gpu) + " W per GPU (1-GPU stages)";
  return NumberText(w_per_gpu) + " W per GPU (" + NumberText(w_per_gpu * tp) + " W per " +
         std::to_string(tp) + "-GPU stage)";
}

std::string ProfileMetaPath(const std::string& profile_path) { return profile_path + ".meta.json"; }

Result<JobSpec> WithMeasuredBlockingPower(const JobSpec& spec) {
  if (!spec.blocking_power_source.empty() || spec.blocking_power_w != 0) return spec;
  // No blocking power given: the one `perseus profile` measured, if recorded.
  const std::string meta_path = ProfileMetaPath(spec.profile_path);
  std::error_code error;
  if (!std::filesystem::is_regular_file(meta_path, error)) return spec;
  std::ifstream in(meta_path);
  nlohmann::json meta = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  const auto w = meta.is_object() ? meta.find("blocking_power_w") : meta.end();
  if (!meta.is_object() || w == meta.end() || !w->is_number() || !(w->get<double>() >= 0) ||
      !(w->get<double>() <= kMaxBlockingPowerW)) {
    return Status::InvalidInput(meta_path +
                                ": not a profile's metadata (a JSON object with blocking_power_w, "
                                "watts per GPU, as perseus profile --out writes it)");
  }
  JobSpec measured = spec;
  measured.blocking_power_w = w->get<double>();
  measured.blocking_power_source = "measured by perseus profile (" + meta_path + ")";
  return measured;
}

Result<PreparedJob> PrepareJob(const JobSpec& spec, const WorkLimits& limits) {
  PERSEUS_ASSIGN_OR_RETURN(planner::Profile profile, planner::ReadProfileCsv(spec.profile_path));
  PERSEUS_ASSIGN_OR_RETURN(JobSpec resolved, WithMeasuredBlockingPower(spec));
  return PrepareJob(resolved, std::move(profile), limits);
}

Result<PreparedJob> PrepareJob(const JobSpec& spec, planner::Profile profile,
                               const WorkLimits& limits) {
  planner::PlannerOptions options;
  if (!planner::ParseCostModel(spec.cost_model, &options.cost_model)) {
    return Status::InvalidInput("cost_model must be " + planner::CostModelNames() + ", not '" +
                                spec.cost_model + "'")
        .WithField("cost_model");
  }
  for (Status s : {CheckPositive(spec.time_scale, "time_scale"),
                   CheckPositive(spec.energy_scale, "energy_scale")}) {
    if (!s.ok()) return s;
  }
  if (spec.unit_time_s != 0) {
    if (Status s = CheckPositive(spec.unit_time_s, "unit_time"); !s.ok()) return s;
  }
  if (!(spec.blocking_power_w >= 0) || !(spec.blocking_power_w <= kMaxBlockingPowerW)) {
    return Status::InvalidInput("blocking_power_w must be 0.." + NumberText(kMaxBlockingPowerW) +
                                " watts per GPU, not " + NumberText(spec.blocking_power_w))
        .WithField("blocking_power_w");
  }
  if (spec.tp < 1) return Status::InvalidInput("tp must be at least 1").WithField("tp");
  if (spec.dp < 1) return Status::InvalidInput("dp must be at least 1").WithField("dp");

  PreparedJob job;
  job.tp = spec.tp;
  job.dp = spec.dp;
  job.virtual_stages = spec.virtual_stages;

  auto schedule = ResolveSchedule(spec, limits);
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
                                  " ranks but stages is " + std::to_string(spec.stages));
    }
    if (spec.microbatches != 0 && spec.microbatches != job.microbatches) {
      return Status::InvalidInput(
          source + ": the schedule has " + std::to_string(job.microbatches) +
          " microbatches but microbatches is " + std::to_string(spec.microbatches));
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
               ? " (stages is " + std::to_string(spec.stages) + ")"
               : ""));
    }
  }
  if (split_backward) profile = planner::SplitBackward(profile, &job.notes);
  if (overlapped) {
    job.notes.push_back(
        "overlapped F+B of DualPipeV: time and energy are the sum of the forward's and the "
        "backward's at each frequency (torch runs them back to back)");
  }

  job.warnings = ProfileWarnings(profile);
  job.blocking_power_w = spec.blocking_power_w;
  job.blocking_power_source = !spec.blocking_power_source.empty() ? spec.blocking_power_source
                              : spec.blocking_power_w > 0         ? "given"
                                                                  : "none given";
  // A GPU waiting in a collective draws well under its TDP (A100: 83.64 W of
  // 400 W); a figure beyond kMostBlockingPerGpuW is likely a whole stage's.
  constexpr double kMostBlockingPerGpuW = 250;
  if (spec.blocking_power_w > kMostBlockingPerGpuW) {
    job.warnings.push_back(
        "blocking power " + BlockingPowerText(spec.blocking_power_w, spec.tp) +
        " is more than a GPU draws while waiting (A100: 83.64 W): blocking_power_w is per GPU; "
        "if " +
        NumberText(spec.blocking_power_w) + " W is a stage's, give the per-GPU figure " + "and tp");
  }
  if (spec.blocking_power_w == 0) {
    job.warnings.push_back(
        "no blocking power: planned with 0 W while GPUs wait, so waiting looks free and the "
        "savings are overstated; give blocking_power_w (--blocking-power; A100 83.64 W, A40 "
        "70.38 W per GPU) or measure it with perseus profile --out");
  }
  job.unit_time_s = spec.unit_time_s > 0 ? spec.unit_time_s : AutoUnitTime(profile);
  options.unit_time_s = job.unit_time_s;
  job.stage_blocking_power_w = spec.blocking_power_w * spec.tp;
  options.blocking_power_w = job.stage_blocking_power_w;
  options.max_units_per_computation = limits.max_units_per_computation;
  options.max_total_units = limits.max_total_units;
  auto problem =
      planner::BuildProblem(std::make_shared<planner::Dag>(std::move(dag)), profile, options);
  if (!problem.ok()) return problem.status();
  job.problem = std::make_shared<planner::Problem>(std::move(problem).value());
  return job;
}

Result<planner::Frontier> SolveJob(const PreparedJob& job, const planner::ProgressFn& progress,
                                   planner::SolverOptions options, const WorkLimits& limits) {
  if (options.max_points == 0) options.max_points = limits.max_frontier_points;
  return planner::SolveFrontier(job.problem, progress, options);
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
