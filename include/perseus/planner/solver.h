// The frontier solver: the whole iteration time–energy Pareto frontier of a
// planning problem, by the Phillips–Dessouky method the Perseus paper uses.
//
// Problem. Choose an integer duration d_i in [min_i, max_i] units for every
// computation i of the DAG to minimise sum_i C_i(d_i) (the cost model's
// effective energy, convex and non-increasing) subject to the longest path
// being <= T, for every T from the all-slowest iteration time down to T_min.
//
// Algorithm. Start with every d_i = max_i (optimal for its own T). Repeat:
//  - compute earliest starts / latest finishes; the critical sub-DAG is every
//    computation and dependency with zero slack;
//  - in its activity-on-arc form (computation i = arc in(i) -> out(i),
//    dependency = arc of capacity infinity), give computation i an upper
//    capacity C_i(d_i - 1) - C_i(d_i) (cost of speeding it up one unit;
//    infinity at min_i) and a lower capacity C_i(d_i) - C_i(d_i + 1) (saving
//    from slowing it down one unit; 0 at max_i);
//  - find a minimum s-t cut of that network with lower bounds (max_flow.h);
//    if it is infinite (a critical path has nothing left to speed up) T_min has
//    been reached;
//  - shorten by one unit every computation crossing the cut forwards, lengthen
//    by one unit every one crossing it backwards (where d_i < max_i). Every
//    critical path crosses the cut forwards once more than backwards, and every
//    non-critical path had at least one unit of slack, so the iteration time
//    drops by exactly one unit at the cut's cost, the cheapest possible.
// The new iteration time is checked (T - 1) every step; a violation is
// reported as kInfeasible, never ignored. Changes are applied only after the
// cut is known to be finite, so no step is ever half-applied.
//
// Capacities are integers (micro-joules, cost_model.h) so cuts are exact; the
// "infinity" is one more than the sum of all finite capacities of the step, so
// no energy value can exceed it.
//
// Each frontier point also gets its realized figures (realized.h): each
// computation runs the slowest measured option whose quantised time fits its
// duration; durations are rounded up, so the realized time is never above the
// model's. The T_min point is then polished against the all-max time
// (PolishPlan), so realized T_min <= all-max time.
//
// Cost per step: O(V + E) for timing plus a max-flow on the critical sub-DAG.
#pragma once

#include <functional>
#include <memory>

#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/problem.h"

namespace perseus::planner {

// Called now and then with the fraction of the sweep done (0..1).
using ProgressFn = std::function<void(double fraction)>;

struct SolverOptions {
  // The reference implementation: textbook Dinic and a fresh max flow every
  // step. The default (fast) one uses a pruning Dinic and reuses the previous
  // step's cut when the step's network is identical. Both compute the same
  // minimum cut (the one with the smallest source side) at every step, so the
  // same frontier, point for point and plan for plan (tested).
  bool reference = false;
  // Keep only the Pareto points of realized (time, energy) (Frontier::
  // ParetoOnly). Off: every unit step's point, model time one unit apart
  // (the solver's own sweep, which the model-optimality tests check).
  bool pareto_only = true;
};

Result<Frontier> SolveFrontier(std::shared_ptr<const Problem> problem,
                               const ProgressFn& progress = {}, const SolverOptions& options = {});

}  // namespace perseus::planner
