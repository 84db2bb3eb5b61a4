// `perseus plan` and `perseus demo`.
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

int RunPlan(const PlanArgs& args) {
  auto planned = PlanJob(args.job, TerminalProgress("planning"));
  if (!planned.ok()) return ReportError(planned.status());
  if (!args.out_dir.empty()) {
    Status status = planner::WriteFrontierDir(planned->frontier, args.out_dir);
    if (!status.ok()) return ReportError(status);
  }
  if (args.json) {
    // The table shows the notes; with --json they are in the object and, for
    // whoever watches the terminal, on stderr.
    PrintNotes(planned->job);
    nlohmann::json summary = SummaryJson(args.job, *planned);
    if (!args.out_dir.empty()) summary["out_dir"] = args.out_dir;
    std::cout << summary.dump() << std::endl;
  } else {
    std::cout << SummaryTable(args.job, *planned);
    if (!args.out_dir.empty()) {
      std::cout << "  frontier and plans written to " << args.out_dir << " (see `perseus show-plan "
                << args.out_dir << " --time T`)\n";
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
                  "Write frontier.csv, computations.csv and plans.csv to this directory");
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
