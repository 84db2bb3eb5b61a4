#include "perseus/planner/realized.h"

#include <algorithm>

#include "src/planner/timing.h"

namespace perseus::planner {
namespace {

std::vector<double> Durations(const Problem& problem, const Plan& plan) {
  std::vector<double> t(plan.size());
  for (size_t i = 0; i < plan.size(); ++i)
    t[i] = problem.option(static_cast<int>(i), plan[i]).time_s;
  return t;
}

Figures Account(const Problem& problem, const std::vector<double>& time,
                const std::vector<double>& energy) {
  std::vector<double> es;
  const double makespan = EarliestStarts(*problem.dag, time, &es);
  // Summed in topological order, the order every evaluator sums in
  // (realized.h), so that their figures agree to the bit.
  double sum_t = 0, sum_e = 0;
  for (int i : problem.dag->topological_order()) {
    sum_t += time[i];
    sum_e += energy[i];
  }
  return RealizedFigures(problem, makespan, sum_e, sum_t);
}

}  // namespace

Figures EvaluatePlan(const Problem& problem, const Plan& plan) {
  std::vector<double> time(plan.size()), energy(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    const Option& o = problem.option(static_cast<int>(i), plan[i]);
    time[i] = o.time_s;
    energy[i] = o.energy_j;
  }
  return Account(problem, time, energy);
}

Figures EvaluateAllMax(const Problem& problem) {
  const int n = problem.dag->num_nodes();
  std::vector<double> time(n), energy(n);
  for (int i = 0; i < n; ++i) {
    time[i] = problem.set(i).highest_frequency.time_s;
    energy[i] = problem.set(i).highest_frequency.energy_j;
  }
  return Account(problem, time, energy);
}

Plan FastestPlan(const Problem& problem) { return Plan(problem.dag->num_nodes(), 0); }

Plan FillSlack(const Problem& problem, Plan plan, double deadline_s) {
  const Dag& dag = *problem.dag;
  std::vector<double> es;
  std::vector<double> t = Durations(problem, plan);
  EarliestStarts(dag, t, &es);
  std::vector<double> lf(dag.num_nodes(), deadline_s);
  const std::vector<int>& topo = dag.topological_order();
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    const int i = *it;
    for (int j : dag.successors(i)) lf[i] = std::min(lf[i], lf[j] - t[j]);
    const std::vector<Option>& options = problem.set(i).options;
    const double room = lf[i] - es[i];
    int k = plan[i];
    while (k + 1 < static_cast<int>(options.size()) && options[k + 1].time_s <= room) ++k;
    plan[i] = k;
    t[i] = options[k].time_s;
  }
  return plan;
}

}  // namespace perseus::planner
