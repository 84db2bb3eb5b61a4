// The textbook PolishPlan (realized.h): after every move it recomputes
// every earliest start and tail (timing.h) from scratch and
// scans every computation for the next move, O(moves * (V + E)). The oracle
// the incremental one (polish.cc) is tested against: the same plan, move
// for move.
#pragma once

#include <algorithm>
#include <limits>
#include <vector>

#include "perseus/planner/realized.h"
#include "src/planner/timing.h"

namespace perseus::planner::testing {

inline Plan PolishPlanReference(const Problem& problem, Plan plan, double deadline_s) {
  const Dag& dag = *problem.dag;
  const int n = dag.num_nodes();
  std::vector<double> es, tail, t(n);
  const double eps = DeadlineTolerance(deadline_s);
  auto durations = [&] {
    for (int i = 0; i < n; ++i) t[i] = problem.option(i, plan[i]).time_s;
  };
  // 1. Repair.
  for (;;) {
    durations();
    const double makespan = EarliestStarts(dag, t, &es);
    if (makespan <= deadline_s + eps) break;
    LongestTails(dag, t, &tail);
    int best = -1;
    double best_rate = std::numeric_limits<double>::infinity();
    for (int i = 0; i < n; ++i) {
      if (plan[i] == 0 || es[i] + t[i] + tail[i] < makespan - eps)
        continue;  // fastest, not critical
      const Option& cur = problem.option(i, plan[i]);
      const Option& faster = problem.option(i, plan[i] - 1);
      const double rate = (faster.effective_j - cur.effective_j) / (cur.time_s - faster.time_s);
      if (rate < best_rate) {
        best_rate = rate;
        best = i;
      }
    }
    if (best < 0) return plan;
    --plan[best];
  }
  // 2. Refine.
  for (;;) {
    durations();
    EarliestStarts(dag, t, &es);
    LongestTails(dag, t, &tail);
    int best = -1, best_option = -1;
    double best_gain = 0;
    for (int i = 0; i < n; ++i) {
      const std::vector<Option>& options = problem.set(i).options;
      const double room = (deadline_s - tail[i]) - es[i] + eps;  // latest finish - start
      int k = plan[i];
      while (k + 1 < static_cast<int>(options.size()) && options[k + 1].time_s <= room) ++k;
      if (k == plan[i]) continue;
      const double gain = options[plan[i]].effective_j - options[k].effective_j;
      if (gain > best_gain) {
        best_gain = gain;
        best = i;
        best_option = k;
      }
    }
    if (best < 0) break;
    plan[best] = best_option;
  }
  return FillSlack(problem, std::move(plan), deadline_s);
}

}  // namespace perseus::planner::testing
