// `perseus simulate`: one iteration of a frontier plan as discrete events,
// with latencies and noise the planner does not model.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/job.h"
#include "cli/options.h"
#include "nlohmann/json.hpp"
#include "perseus/common/files.h"
#include "perseus/emulator/simulator.h"
#include "perseus/planner/improve.h"

namespace perseus::cli {
namespace {

struct SimulateArgs {
  job::JobSpec job;
  double deadline_s = 0;  // 0: the T_min plan
  emulator::SimulationOptions sim;
  int repeat = 1;
  std::string timeline_path;
  bool json = false;
};

int RunSimulate(const SimulateArgs& args) {
  if (args.repeat < 1) return ReportError(Status::InvalidInput("--repeat must be at least 1"));
  auto planned = PlanJob(args.job, TerminalProgress("planning"));
  if (!planned.ok()) return ReportError(planned.status());
  const planner::Frontier& f = planned->frontier;
  size_t index = f.TMinIndex();
  planner::Plan plan;
  planner::FrontierPoint planned_point = f.points()[index];
  if (args.deadline_s > 0) {
    // The plan for the deadline as show-plan and the coordinator give it:
    // the frontier's point improved by the discrete local search.
    auto found = planner::PlanForDeadline(f, args.deadline_s);
    if (!found) {
      return ReportError(Status::InvalidInput(
          "--time " + std::to_string(args.deadline_s) + " s is faster than T_min (" +
          std::to_string(f.points()[f.TMinIndex()].time_s) + " s)"));
    }
    index = found->base_point;
    plan = std::move(found->result.plan);
    planned_point.time_s = found->result.figures.time_s;
    planned_point.energy_j = found->result.figures.energy_j;
  } else {
    plan = f.PlanAt(index);
  }
  double sum_t = 0, sum_e = 0, worst_t = 0;
  emulator::SimulationResult first;
  for (int r = 0; r < args.repeat; ++r) {
    emulator::SimulationOptions o = args.sim;
    o.seed = args.sim.seed + static_cast<uint64_t>(r);
    auto sim = emulator::Simulate(f.problem(), plan, o);
    if (!sim.ok()) return ReportError(sim.status());
    sum_t += sim->figures.time_s;
    sum_e += sim->figures.energy_j;
    worst_t = std::max(worst_t, sim->figures.time_s);
    if (r == 0) first = std::move(sim).value();
  }
  const double mean_t = sum_t / args.repeat, mean_e = sum_e / args.repeat;
  if (!args.timeline_path.empty()) {
    Status written =
        WriteFileAtomically(args.timeline_path, emulator::TimelineCsv(f.problem(), first));
    if (!written.ok()) return ReportError(written);
  }
  auto pct = [](double a, double b) { return 100 * (a - b) / b; };
  if (args.json) {
    nlohmann::json out = {
        {"point", index},
        {"planned", {{"time", planned_point.time_s}, {"energy", planned_point.energy_j}}},
        {"simulated", {{"time", mean_t}, {"energy", mean_e}, {"worst_time", worst_t}}},
        {"time_change_pct", pct(mean_t, planned_point.time_s)},
        {"energy_change_pct", pct(mean_e, planned_point.energy_j)},
        {"repeat", args.repeat},
        {"p2p_latency_s", args.sim.p2p_latency_s},
        {"switch_latency_s", args.sim.switch_latency_s},
        {"noise_pct", args.sim.noise_pct},
        {"seed", args.sim.seed}};
    std::cout << out.dump() << std::endl;
    return 0;
  }
  std::printf("Perseus simulation of the plan from frontier point %zu (%s)\n", index,
              args.deadline_s > 0 ? "improved for --time" : "T_min");
  std::printf("  p2p latency %g s, switch latency %g s, noise %g%%, %d run(s) from seed %llu\n\n",
              args.sim.p2p_latency_s, args.sim.switch_latency_s, args.sim.noise_pct, args.repeat,
              static_cast<unsigned long long>(args.sim.seed));
  std::printf("  %-10s %14s %16s\n", "", "time (s)", "energy (J)");
  std::printf("  %-10s %14.4f %16.1f\n", "planned", planned_point.time_s, planned_point.energy_j);
  std::printf("  %-10s %14.4f %16.1f   (%+.2f%% time, %+.2f%% energy; worst time %.4f)\n",
              "simulated", mean_t, mean_e, pct(mean_t, planned_point.time_s),
              pct(mean_e, planned_point.energy_j), worst_t);
  return 0;
}

}  // namespace

void RegisterSimulate(CLI::App* app, int* exit_code) {
  auto args = std::make_shared<SimulateArgs>();
  CLI::App* cmd = app->add_subcommand(
      "simulate",
      "Run one iteration of a frontier plan as discrete events, with p2p and frequency-switch "
      "latency and time noise, and compare with the planned figures");
  AddJobOptions(cmd, &args->job);
  cmd->add_option("--time", args->deadline_s,
                  "Simulate the plan for this iteration-time deadline, seconds (default: the "
                  "T_min plan)")
      ->check(Above(0, 1e7));
  cmd->add_option("--p2p-latency", args->sim.p2p_latency_s,
                  "Seconds added to every dependency between two GPUs")
      ->check(Within(0, 60))
      ->capture_default_str();
  cmd->add_option("--switch-latency", args->sim.switch_latency_s,
                  "Seconds after which a requested frequency takes effect")
      ->check(Within(0, 60))
      ->capture_default_str();
  AddPercentOption(cmd, "--noise", &args->sim.noise_pct, "Standard deviation of random time noise",
                   50);
  cmd->add_option("--seed", args->sim.seed, "Random seed")->capture_default_str();
  cmd->add_option("--repeat", args->repeat, "Runs to average (seeds seed, seed+1, ...), 1..10000")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--timeline", args->timeline_path, "Write the first run's timeline as CSV");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of a table");
  cmd->callback([args, exit_code] { *exit_code = RunSimulate(*args); });
}

}  // namespace perseus::cli
