#include <algorithm>
#include <vector>

#include "perseus/emulator/emulator.h"

namespace perseus::emulator {

EnvPipeResult RunEnvPipe(const planner::Problem& problem) {
  const planner::Dag& dag = *problem.dag;
  const int n = dag.num_nodes();
  const double target = planner::EvaluateAllMax(problem).time_s;
  // Pinned at the highest frequency: the last stage's GPU, and each GPU's
  // first forward and last backward.
  std::vector<char> pinned(n, 0);
  const auto& orders = dag.gpu_order();
  for (size_t g = 0; g < orders.size(); ++g) {
    const auto& order = orders[g];
    for (int id : order) {
      if (static_cast<int>(g) + 1 == static_cast<int>(orders.size())) pinned[id] = 1;
    }
    for (int id : order) {
      if (dag.node(id).instruction == planner::Instruction::kForward) {
        pinned[id] = 1;
        break;
      }
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const auto ins = dag.node(*it).instruction;
      if (ins != planner::Instruction::kForward) {
        pinned[*it] = 1;
        break;
      }
    }
  }
  EnvPipeResult r;
  r.plan.assign(n, 0);
  long budget = 0;
  for (int i = 0; i < n; ++i) {
    const int slowest = static_cast<int>(problem.set(i).options.size()) - 1;
    r.plan[i] = pinned[i] ? 0 : slowest;
    budget += slowest + 1;
  }
  std::vector<double> duration(n), start, finish_by;
  for (;;) {
    for (int i = 0; i < n; ++i) duration[i] = problem.option(i, r.plan[i]).time_s;
    r.figures = planner::EvaluatePlan(problem, r.plan);
    if (r.figures.time_s <= target * (1 + 1e-12)) {
      r.met_all_max_time = true;
      break;
    }
    if (++r.rounds > budget) break;
    // Critical computations: zero slack (earliest start = latest start).
    const double makespan = r.figures.time_s;  // the longest path, as EvaluatePlan found it
    start.assign(n, 0);
    for (int u : dag.topological_order()) {
      for (int v : dag.successors(u)) start[v] = std::max(start[v], start[u] + duration[u]);
    }
    finish_by.assign(n, makespan);
    const auto& topo = dag.topological_order();
    for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
      for (int v : dag.successors(*it)) {
        finish_by[*it] = std::min(finish_by[*it], finish_by[v] - duration[v]);
      }
    }
    const double eps = 1e-9 * std::max(1.0, makespan);
    // The lowest frequency among raisable critical computations.
    int lowest = 1 << 30;
    for (int i = 0; i < n; ++i) {
      if (r.plan[i] > 0 && start[i] + duration[i] >= finish_by[i] - eps) {
        lowest = std::min(lowest, problem.option(i, r.plan[i]).frequency_mhz);
      }
    }
    if (lowest == 1 << 30) break;  // nothing critical left to raise: EnvPipe is stuck
    for (int i = 0; i < n; ++i) {
      if (r.plan[i] > 0 && start[i] + duration[i] >= finish_by[i] - eps &&
          problem.option(i, r.plan[i]).frequency_mhz == lowest) {
        --r.plan[i];
      }
    }
  }
  return r;
}

}  // namespace perseus::emulator
