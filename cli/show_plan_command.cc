// `perseus show-plan DIR --time T`: the plan to run for deadline T, as JSON.
#include <iostream>
#include <map>
#include <memory>

#include "cli/commands.h"
#include "cli/job.h"
#include "nlohmann/json.hpp"
#include "perseus/planner/frontier_io.h"

namespace perseus::cli {
namespace {

struct ShowPlanArgs {
  std::string dir;
  double time_s = 0;
};

int RunShowPlan(const ShowPlanArgs& args) {
  auto plan = planner::ReadPlanForDeadline(args.dir, args.time_s);
  if (!plan.ok()) return ReportError(plan.status());
  // Per GPU, computations in execution order.
  std::map<int, std::map<int, int>> by_gpu;  // gpu -> order -> computation id
  for (const auto& c : plan->computations) by_gpu[c.gpu][c.order] = c.id;
  nlohmann::json gpus = nlohmann::json::array();
  for (const auto& [gpu, ordered] : by_gpu) {
    nlohmann::json frequencies = nlohmann::json::array();
    nlohmann::json instructions = nlohmann::json::array();
    for (const auto& [order, id] : ordered) {
      const auto& c = plan->computations[id];
      frequencies.push_back(plan->frequency_mhz[id]);
      nlohmann::json step = {
          {"instruction", c.overlapped() ? std::string_view("overlap_f_b")
                                         : planner::InstructionName(c.instruction)},
          {"stage", c.stage},
          {"microbatch", c.microbatch},
          {"frequency_mhz", plan->frequency_mhz[id]}};
      if (c.overlapped()) {  // stage and microbatch above are the forward half's
        step["backward"] = {{"instruction", planner::InstructionName(c.overlap.instruction)},
                            {"stage", c.overlap.stage},
                            {"microbatch", c.overlap.microbatch}};
      }
      instructions.push_back(std::move(step));
    }
    gpus.push_back(
        {{"stage", gpu}, {"frequencies_mhz", frequencies}, {"instructions", instructions}});
  }
  nlohmann::json out = {{"deadline", args.time_s},
                        {"point", plan->point},
                        {"improved", plan->improved},
                        {"moves", plan->moves},
                        {"time", plan->figures.time_s},
                        {"energy", plan->figures.energy_j},
                        {"model_time", plan->figures.model_time_s},
                        {"model_energy", plan->figures.model_energy_j},
                        {"stages", gpus}};
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

void RegisterShowPlan(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<ShowPlanArgs>();
  CLI::App* cmd = app->add_subcommand(
      "show-plan",
      "Print (JSON) the per-stage frequency lists of the plan to run for deadline T: the "
      "lowest-energy frontier point whose realized time is <= T, improved for T by a discrete "
      "local search over the measured frequencies (\"improved\": true; needs the directory's "
      "problem.json). \"point\" is the frontier point it started from; \"time\" and "
      "\"energy\" are the plan's own, \"model_time\" and \"model_energy\" the point's");
  cmd->add_option("dir", args->dir, "Directory written by `perseus plan --out`")->required();
  cmd->add_option("--time", args->time_s, "Iteration time deadline T in seconds")->required();
  cmd->callback([args, exit_code] { *exit_code = RunShowPlan(*args); });
}

}  // namespace perseus::cli
