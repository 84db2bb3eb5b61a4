#include "cli/summary.h"

#include <cstdio>
#include <filesystem>

namespace perseus::cli {
namespace {

double SavingPct(double energy, double baseline) {
  return baseline > 0 ? 100.0 * (baseline - energy) / baseline : 0.0;
}

nlohmann::json PointJson(const planner::Frontier& frontier, size_t index) {
  const planner::FrontierPoint& p = frontier.points()[index];
  return {{"time", p.time_s},
          {"energy", p.energy_j},
          {"saving_pct", SavingPct(p.energy_j, frontier.all_max.energy_j)},
          {"model_time", p.model_time_s},
          {"model_energy", p.model_energy_j}};
}

}  // namespace

nlohmann::json SummaryJson(const JobOptions& job, const planner::Frontier& frontier) {
  return {
      {"profile", job.profile_path},
      {"schedule", "1f1b"},
      {"stages", job.stages},
      {"microbatches", job.microbatches},
      {"blocking_power_w", job.blocking_power_w},
      {"unit_time_s", job.unit_time_s},
      {"cost_model", job.cost_model},
      {"time_scale", job.time_scale},
      {"energy_scale", job.energy_scale},
      {"all_max", {{"time", frontier.all_max.time_s}, {"energy", frontier.all_max.energy_j}}},
      {"t_min", PointJson(frontier, frontier.TMinIndex())},
      {"t_star", PointJson(frontier, frontier.TStarIndex())},
      {"frontier_points", frontier.size()},
      {"solve_seconds", frontier.solve_seconds},
  };
}

std::string SummaryTable(const JobOptions& job, const planner::Frontier& frontier) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "Perseus plan: %s\n",
                std::filesystem::path(job.profile_path).filename().c_str());
  out += line;
  std::snprintf(line, sizeof(line),
                "  1F1B, %d stages x %d microbatches, %s cost model, unit %g s, blocking power "
                "%g W per stage\n\n",
                job.stages, job.microbatches, job.cost_model.c_str(), job.unit_time_s,
                job.blocking_power_w);
  out += line;
  std::snprintf(line, sizeof(line), "  %-22s %14s %16s %9s\n", "", "time (s)", "energy (J)",
                "saving");
  out += line;
  std::snprintf(line, sizeof(line), "  %-22s %14.4f %16.1f %9s\n", "all-max frequency",
                frontier.all_max.time_s, frontier.all_max.energy_j, "-");
  out += line;
  auto row = [&](const char* name, size_t index) {
    const planner::FrontierPoint& p = frontier.points()[index];
    std::snprintf(line, sizeof(line), "  %-22s %14.4f %16.1f %8.2f%%\n", name, p.time_s, p.energy_j,
                  SavingPct(p.energy_j, frontier.all_max.energy_j));
    out += line;
  };
  row("T_min (same speed)", frontier.TMinIndex());
  row("T* (lowest energy)", frontier.TStarIndex());
  std::snprintf(line, sizeof(line), "\n  %zu frontier points, solved in %.2f s\n", frontier.size(),
                frontier.solve_seconds);
  out += line;
  return out;
}

}  // namespace perseus::cli
