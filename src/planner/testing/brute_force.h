// The exact discrete optimum of a tiny planning problem at a deadline, by
// enumerating every plan (one measured option per computation): the oracle
// for ImprovePlan / PlanForDeadline. Exponential: keep instances below ~10^5
// plans.
#pragma once

#include <cstdint>
#include <optional>

#include "perseus/planner/improve.h"
#include "perseus/planner/realized.h"

namespace perseus::planner::testing {

struct Optimum {
  Plan plan;
  Figures figures;
  double objective_j = 0;
};

// The plan of least objective energy whose realized time is <= deadline_s
// (within 1e-9 relative, as ImprovePlan); nullopt if none.
inline std::optional<Optimum> BruteForceOptimum(const Problem& problem, double deadline_s,
                                                DeadlineObjective objective) {
  const int n = problem.dag->num_nodes();
  Plan plan(n, 0);
  std::optional<Optimum> best;
  const double limit = deadline_s + DeadlineTolerance(deadline_s);
  for (;;) {
    const Figures f = EvaluatePlan(problem, plan);
    if (f.time_s <= limit) {
      const double e = ObjectiveEnergy(problem, f, deadline_s, objective);
      if (!best || e < best->objective_j) best = Optimum{plan, f, e};
    }
    int i = 0;  // next plan: an odometer over the option indices
    while (i < n && ++plan[i] == static_cast<int>(problem.set(i).options.size())) plan[i++] = 0;
    if (i == n) return best;
  }
}

// Number of plans BruteForceOptimum enumerates.
inline double PlanCount(const Problem& problem) {
  double count = 1;
  for (int i = 0; i < problem.dag->num_nodes(); ++i) {
    count *= static_cast<double>(problem.set(i).options.size());
  }
  return count;
}

}  // namespace perseus::planner::testing
