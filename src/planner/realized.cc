#include "perseus/planner/realized.h"

#include <algorithm>
#include <limits>

#include "src/planner/timing.h"

namespace perseus::planner {
namespace {

// Two real times closer than this (relative to the iteration time) are equal.
constexpr double kRelativeTimeTolerance = 1e-9;

std::vector<double> Durations(const Problem& problem, const Plan& plan) {
  std::vector<double> t(plan.size());
  for (size_t i = 0; i < plan.size(); ++i)
    t[i] = problem.option(static_cast<int>(i), plan[i]).time_s;
  return t;
}

Figures Account(const Problem& problem, const std::vector<double>& time,
                const std::vector<double>& energy) {
  std::vector<double> es;
  Figures f;
  f.time_s = EarliestStarts(*problem.dag, time, &es);
  double sum_t = 0, sum_e = 0;
  for (size_t i = 0; i < time.size(); ++i) {
    sum_t += time[i];
    sum_e += energy[i];
  }
  f.energy_j = sum_e + problem.options.blocking_power_w * (problem.num_gpus * f.time_s - sum_t);
  return f;
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

Plan PolishPlan(const Problem& problem, Plan plan, double deadline_s, int64_t* work,
                int64_t max_work) {
  const Dag& dag = *problem.dag;
  const int n = dag.num_nodes();
  int64_t passes = 0;
  std::vector<double> es, lf;
  const double eps = kRelativeTimeTolerance * std::max(1.0, deadline_s);

  // 1. Repair.
  for (;;) {
    std::vector<double> t = Durations(problem, plan);
    double makespan = EarliestStarts(dag, t, &es);
    ++passes;
    if (makespan <= deadline_s + eps) break;
    LatestFinishes(dag, t, makespan, &lf);
    ++passes;
    int best = -1;
    double best_rate = std::numeric_limits<double>::infinity();
    for (int i = 0; i < n; ++i) {
      if (plan[i] == 0 || es[i] + t[i] < lf[i] - eps) continue;  // fastest, or not critical
      const Option& cur = problem.option(i, plan[i]);
      const Option& faster = problem.option(i, plan[i] - 1);
      double rate = (faster.effective_j - cur.effective_j) / (cur.time_s - faster.time_s);
      if (rate < best_rate) {
        best_rate = rate;
        best = i;
      }
    }
    if (best < 0) break;  // every critical computation is at its fastest
    --plan[best];
  }

  // 2. Refine.
  {
    std::vector<double> t = Durations(problem, plan);
    double makespan = EarliestStarts(dag, t, &es);
    ++passes;
    if (makespan > deadline_s + eps) {
      if (work != nullptr) *work += passes * n;
      return plan;
    }
  }
  const int64_t spent_before = work != nullptr ? *work : 0;
  for (;;) {
    if (work != nullptr && spent_before + passes * n >= max_work) break;
    std::vector<double> t = Durations(problem, plan);
    EarliestStarts(dag, t, &es);
    LatestFinishes(dag, t, deadline_s, &lf);
    passes += 2;
    int best = -1, best_option = -1;
    double best_gain = 0;
    for (int i = 0; i < n; ++i) {
      const std::vector<Option>& options = problem.set(i).options;
      double room = lf[i] - es[i];  // the longest time i may take
      int k = plan[i];
      while (k + 1 < static_cast<int>(options.size()) && options[k + 1].time_s <= room) ++k;
      if (k == plan[i]) continue;
      double gain = options[plan[i]].effective_j - options[k].effective_j;
      if (gain > best_gain) {
        best_gain = gain;
        best = i;
        best_option = k;
      }
    }
    if (best < 0) break;
    plan[best] = best_option;
  }
  if (work != nullptr) *work += (passes + 2) * n;  // + FillSlack's two passes
  return FillSlack(problem, std::move(plan), deadline_s);
}

}  // namespace perseus::planner
