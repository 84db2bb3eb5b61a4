#include "perseus/emulator/simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

namespace perseus::emulator {

namespace {

// The option of computation i measured nearest to `frequency_mhz`.
const planner::Option& NearestOption(const planner::Problem& problem, int i, int frequency_mhz) {
  const auto& options = problem.set(i).options;
  const planner::Option* best = &options.front();
  for (const auto& o : options) {
    if (std::abs(o.frequency_mhz - frequency_mhz) < std::abs(best->frequency_mhz - frequency_mhz)) {
      best = &o;
    }
  }
  return *best;
}

}  // namespace

Result<SimulationResult> Simulate(const planner::Problem& problem, const planner::Plan& plan,
                                  const SimulationOptions& options) {
  const planner::Dag& dag = *problem.dag;
  const int n = dag.num_nodes();
  if (static_cast<int>(plan.size()) != n)
    return Status::InvalidInput("the plan does not fit the DAG");
  if (!(options.p2p_latency_s >= 0) || !(options.switch_latency_s >= 0) ||
      !(options.noise_pct >= 0) || !std::isfinite(options.p2p_latency_s) ||
      !std::isfinite(options.switch_latency_s) || !std::isfinite(options.noise_pct)) {
    return Status::InvalidInput("latencies and noise must be non-negative numbers");
  }
  std::mt19937_64 rng(options.seed);
  std::normal_distribution<double> normal(0.0, options.noise_pct / 100);
  SimulationResult r;
  r.timeline.resize(n);
  // GPU state: the frequency in effect (the first computation's at the start).
  std::vector<int> frequency(dag.num_gpus(), 0);
  for (int g = 0; g < dag.num_gpus(); ++g) {
    if (!dag.gpu_order()[g].empty()) {
      int first = dag.gpu_order()[g].front();
      frequency[g] = problem.option(first, plan[first]).frequency_mhz;
    }
  }
  std::vector<double> finish(n, 0), duration(n, 0);
  double makespan = 0, sum_t = 0, sum_e = 0;
  for (int i : dag.topological_order()) {
    const int g = dag.node(i).gpu;
    double start = 0;
    for (int p : dag.predecessors(i)) {
      const double arrival = finish[p] + (dag.node(p).gpu != g ? options.p2p_latency_s : 0.0);
      start = std::max(start, arrival);
    }
    const planner::Option& want = problem.option(i, plan[i]);
    double t = want.time_s, e = want.energy_j;
    if (options.switch_latency_s > 0 && frequency[g] != want.frequency_mhz) {
      const planner::Option& old = NearestOption(problem, i, frequency[g]);
      const double share = std::min(1.0, options.switch_latency_s / old.time_s);
      t = share * old.time_s + (1 - share) * want.time_s;
      e = share * old.energy_j + (1 - share) * want.energy_j;
    }
    frequency[g] = want.frequency_mhz;
    if (options.noise_pct > 0) {
      const double factor = 1 + std::max(-0.5, normal(rng));
      t *= factor;
      e *= factor;
    }
    finish[i] = start + t;
    duration[i] = t;
    makespan = std::max(makespan, finish[i]);
    r.timeline[i] = {i, start, finish[i], want.frequency_mhz, e};
  }
  // Summed in topological order, as EvaluatePlan does, so that the figures agree to the bit.
  for (int i : dag.topological_order()) {
    sum_t += duration[i];
    sum_e += r.timeline[i].energy_j;
  }
  r.figures.time_s = makespan;
  r.figures.energy_j =
      sum_e + problem.options.blocking_power_w * (problem.num_gpus * makespan - sum_t);
  return r;
}

std::string TimelineCsv(const planner::Problem& problem, const SimulationResult& result) {
  std::string out = "gpu,computation,instruction,stage,microbatch,start,end,frequency,energy\n";
  char line[256];
  for (const auto& e : result.timeline) {
    const auto& c = problem.dag->node(e.node);
    // An overlapped forward+backward (DualPipeV) by its forward half's stage and microbatch.
    const std::string kind =
        c.overlapped() ? "overlap_f_b" : std::string(planner::InstructionName(c.instruction));
    std::snprintf(line, sizeof(line), "%d,%d,%s,%d,%d,%.9g,%.9g,%d,%.9g\n", c.gpu, e.node,
                  kind.c_str(), c.stage, c.microbatch, e.start_s, e.end_s, e.frequency_mhz,
                  e.energy_j);
    out += line;
  }
  return out;
}

}  // namespace perseus::emulator
