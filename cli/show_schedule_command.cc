// `perseus show-schedule`: which computation each GPU runs, in order (text),
// optionally as an SVG timeline and as torch.distributed.pipelining CSV.
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/job.h"
#include "nlohmann/json.hpp"
#include "perseus/common/files.h"
#include "perseus/planner/realized.h"
#include "perseus/schedules/render.h"
#include "perseus/schedules/schedule_csv.h"

namespace perseus::cli {
namespace {

struct ShowScheduleArgs {
  job::JobSpec spec;
  std::string svg_path, csv_path;
  bool json = false;
};

int RunShowSchedule(const ShowScheduleArgs& args) {
  const job::JobSpec& spec = args.spec;
  auto schedule = job::ResolveSchedule(spec);
  if (!schedule.ok()) return ReportError(schedule.status());
  const schedules::RankOrders& orders = schedule->orders;
  const planner::Dag& dag = schedule->dag;
  const std::string name = spec.schedule_file.empty() ? spec.schedule : spec.schedule_file;

  // Durations for the timeline: the profile at all-max if one is given.
  std::vector<double> duration = schedules::UnitDurations(dag);
  std::string unit = "F = 1, B = 2, I = W = 1";
  std::string axis_unit = "F = 1, B = 2, I = W = 1";
  if (!spec.profile_path.empty()) {
    auto prepared = job::PrepareJob(spec);
    if (!prepared.ok()) return ReportError(prepared.status());
    const planner::Problem& problem = *prepared->problem;
    for (int i = 0; i < problem.dag->num_nodes(); ++i) {
      duration[i] = problem.set(i).highest_frequency.time_s;
    }
    unit = "seconds at the highest frequency";
    axis_unit = "s";
  }
  if (!args.csv_path.empty()) {
    Status s = WriteFileAtomically(args.csv_path, schedules::WriteScheduleCsv(orders));
    if (!s.ok()) return ReportError(s);
  }
  if (!args.svg_path.empty()) {
    Status s = WriteFileAtomically(
        args.svg_path, schedules::RenderScheduleSvg(
                           dag, duration,
                           name + ": " + std::to_string(dag.num_gpus()) + " ranks, " +
                               std::to_string(dag.num_nodes()) + " computations, durations " + unit,
                           axis_unit));
    if (!s.ok()) return ReportError(s);
  }
  if (args.json) {
    nlohmann::json ranks = nlohmann::json::array();
    for (const auto& order : orders) {
      nlohmann::json actions = nlohmann::json::array();
      for (const auto& a : order) actions.push_back(schedules::ActionString(a));
      ranks.push_back(actions);
    }
    std::cout << nlohmann::json{{"schedule", name}, {"ranks", ranks}}.dump() << std::endl;
    return 0;
  }
  std::printf("%s: %d ranks, %d computations; actions as <stage><F|B|I|W><microbatch>\n",
              name.c_str(), dag.num_gpus(), dag.num_nodes());
  std::cout << schedules::RenderScheduleText(orders);
  std::printf("iteration time (%s): %g\n", unit.c_str(), dag.Makespan(duration));
  return 0;
}

}  // namespace

void RegisterShowSchedule(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<ShowScheduleArgs>();
  CLI::App* cmd = app->add_subcommand(
      "show-schedule",
      "Print which computation each GPU runs, in order, for a schedule (to check it is the one "
      "you run); optionally an SVG timeline and the torch.distributed.pipelining CSV");
  AddScheduleOptions(cmd, &args->spec);
  cmd->add_option("--profile", args->spec.profile_path,
                  "Use this profile's highest-frequency times for the timeline");
  cmd->add_option("--svg", args->svg_path, "Write an SVG timeline to this file");
  cmd->add_option("--csv", args->csv_path,
                  "Write the schedule as torch.distributed.pipelining CSV to this file");
  cmd->add_flag("--json", args->json, "Print the per-rank actions as JSON");
  cmd->callback([args, exit_code] { *exit_code = RunShowSchedule(*args); });
}

}  // namespace perseus::cli
