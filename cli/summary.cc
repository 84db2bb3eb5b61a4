#include "cli/summary.h"

#include <cstdio>
#include <filesystem>

namespace perseus::cli {
namespace {

double SavingPct(double energy, double baseline) {
  return baseline > 0 ? 100.0 * (baseline - energy) / baseline : 0.0;
}

nlohmann::json PointJson(const PlannedJob& planned, size_t index) {
  const planner::Frontier& f = planned.frontier;
  const planner::FrontierPoint& p = f.points()[index];
  const double dp = planned.job.dp;
  return {{"time", p.time_s},
          {"energy", p.energy_j * dp},
          {"saving_pct", SavingPct(p.energy_j, f.all_max.energy_j)},
          {"model_time", p.model_time_s},
          {"model_energy", p.model_energy_j * dp}};
}

std::string ScheduleLine(const PlannedJob& planned) {
  const job::PreparedJob& j = planned.job;
  std::string line = j.schedule + ", " + std::to_string(j.stages) + " stages";
  if (j.model_stages != j.stages) line += " (" + std::to_string(j.model_stages) + " model chunks)";
  line += " x " + std::to_string(j.microbatches) + " microbatches";
  if (j.tp > 1 || j.dp > 1) {
    line += ", TP " + std::to_string(j.tp) + " x DP " + std::to_string(j.dp) + " = " +
            std::to_string(j.gpus) + " GPUs";
  }
  return line;
}

}  // namespace

nlohmann::json SummaryJson(const job::JobSpec& spec, const PlannedJob& planned) {
  const planner::Frontier& f = planned.frontier;
  const job::PreparedJob& j = planned.job;
  return {
      {"profile", spec.profile_path},
      {"schedule", j.schedule},
      {"stages", j.stages},
      {"model_stages", j.model_stages},
      {"virtual_stages", j.virtual_stages},
      {"microbatches", j.microbatches},
      {"tp", j.tp},
      {"dp", j.dp},
      {"gpus", j.gpus},
      {"computations", f.problem().dag->num_nodes()},
      {"blocking_power_w", j.blocking_power_w},  // per GPU
      {"blocking_power_source", j.blocking_power_source},
      {"unit_time_s", j.unit_time_s},
      {"cost_model", spec.cost_model},
      {"time_scale", spec.time_scale},
      {"energy_scale", spec.energy_scale},
      {"energy_scope", "job"},
      {"notes", j.notes},
      {"warnings", j.warnings},
      {"all_max", {{"time", f.all_max.time_s}, {"energy", f.all_max.energy_j * j.dp}}},
      {"t_min", PointJson(planned, f.TMinIndex())},
      {"t_star", PointJson(planned, f.TStarIndex())},
      {"frontier_points", f.size()},
      {"solve_seconds", f.solve_seconds},
  };
}

std::string SummaryTable(const job::JobSpec& spec, const PlannedJob& planned) {
  const planner::Frontier& f = planned.frontier;
  const double dp = planned.job.dp;
  std::string out;
  char line[512];
  std::snprintf(line, sizeof(line), "Perseus plan: %s\n",
                std::filesystem::path(spec.profile_path).filename().c_str());
  out += line;
  const job::PreparedJob& j = planned.job;
  std::snprintf(line, sizeof(line), "  %s\n  %s cost model, unit %g s\n  blocking power %s%s\n",
                ScheduleLine(planned).c_str(), spec.cost_model.c_str(), j.unit_time_s,
                job::BlockingPowerText(j.blocking_power_w, j.tp).c_str(),
                j.blocking_power_source == "given" ? "" : (", " + j.blocking_power_source).c_str());
  out += line;
  for (const std::string& note : j.notes) out += "  note: " + note + "\n";
  for (const std::string& warning : j.warnings) out += "  warning: " + warning + "\n";
  std::snprintf(line, sizeof(line), "\n  %-22s %14s %16s %9s\n", "", "time (s)",
                dp > 1 ? "job energy (J)" : "energy (J)", "saving");
  out += line;
  std::snprintf(line, sizeof(line), "  %-22s %14.4f %16.1f %9s\n", "all-max frequency",
                f.all_max.time_s, f.all_max.energy_j * dp, "-");
  out += line;
  auto row = [&](const char* name, size_t index) {
    const planner::FrontierPoint& p = f.points()[index];
    std::snprintf(line, sizeof(line), "  %-22s %14.4f %16.1f %8.2f%%\n", name, p.time_s,
                  p.energy_j * dp, SavingPct(p.energy_j, f.all_max.energy_j));
    out += line;
  };
  row("T_min (same speed)", f.TMinIndex());
  row("T* (lowest energy)", f.TStarIndex());
  std::snprintf(line, sizeof(line), "\n  %zu frontier points, solved in %.2f s\n", f.size(),
                f.solve_seconds);
  out += line;
  return out;
}

}  // namespace perseus::cli
