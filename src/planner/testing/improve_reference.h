// The textbook ImprovePlan (improve.h): every candidate move is a fresh copy
// of the plan, polished from scratch (PolishPlanReference) and evaluated
// with EvaluatePlan, O(V + E) and more per candidate. The oracle the
// incremental search (improve.cc, in a PlanState) is tested against: the
// same moves, the same plan. No work budget.
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>

#include "perseus/planner/improve.h"
#include "src/planner/testing/polish_reference.h"

namespace perseus::planner::testing {

inline ImproveResult ImprovePlanReference(const Problem& problem, Plan plan, double deadline_s,
                                          DeadlineObjective objective_kind) {
  const int n = problem.dag->num_nodes();
  auto meets = [&](const Figures& f) {
    return f.time_s <= deadline_s + DeadlineTolerance(deadline_s);
  };
  auto objective = [&](const Figures& f) {
    return ObjectiveEnergy(problem, f, deadline_s, objective_kind);
  };
  ImproveResult r;
  const Figures given = EvaluatePlan(problem, plan);
  r.plan = PolishPlanReference(problem, plan, deadline_s);
  r.figures = EvaluatePlan(problem, r.plan);
  r.objective_j = objective(r.figures);
  if (meets(given) && (!meets(r.figures) || objective(given) < r.objective_j)) {
    r.plan = std::move(plan);
    r.figures = given;
    r.objective_j = objective(given);
  }
  if (!meets(r.figures)) return r;
  for (bool improved = true; improved;) {
    improved = false;
    for (int i = 0; i < n; ++i) {
      const int options_of_i = static_cast<int>(problem.set(i).options.size());
      for (int step : {-1, +1, -2, +2}) {
        const int k = r.plan[i] + step;
        if (k < 0 || k >= options_of_i) continue;
        Plan candidate = r.plan;
        candidate[i] = k;
        candidate = PolishPlanReference(problem, std::move(candidate), deadline_s);
        const Figures f = EvaluatePlan(problem, candidate);
        if (!meets(f)) continue;
        const double e = objective(f);
        if (e < r.objective_j - 1e-10 * std::abs(r.objective_j)) {
          r.plan = std::move(candidate);
          r.figures = f;
          r.objective_j = e;
          ++r.moves;
          improved = true;
        }
      }
    }
  }
  return r;
}

}  // namespace perseus::planner::testing
