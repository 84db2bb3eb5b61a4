// Realized evaluation: what a plan really does with measured times and
// energies, as opposed to what the solver's cost model says.
//
// A plan is one option index per computation (into Problem::set(node).options).
// Its realized iteration time is the longest path with measured times; its
// realized energy is sum(e_i) + P * (S * T - sum(t_i)) for S GPUs and blocking
// power P (the paper's accounting).
#pragma once

#include <cstdint>
#include <vector>

#include "perseus/planner/problem.h"

namespace perseus::planner {

using Plan = std::vector<int>;

struct Figures {
  double time_s = 0;
  double energy_j = 0;
};

Figures EvaluatePlan(const Problem& problem, const Plan& plan);

// The figures of a plan from its realized iteration time and its
// computations' summed energy and time: the accounting above, one definition
// for every evaluator. Every evaluator sums the computations in the DAG's
// topological order (Dag::topological_order), so that their figures agree
// to the bit.
inline Figures RealizedFigures(const Problem& problem, double time_s, double sum_energy_j,
                               double sum_time_s) {
  return {time_s, sum_energy_j +
                      problem.options.blocking_power_w * (problem.num_gpus * time_s - sum_time_s)};
}

// Two real times closer than this are equal: a plan meets deadline D when
// its realized time is <= D + DeadlineTolerance(D) (1e-9 relative, at least
// 1e-9 s).
inline double DeadlineTolerance(double deadline_s) {
  return 1e-9 * (deadline_s > 1.0 ? deadline_s : 1.0);
}

// Every computation at its highest measured frequency (what users run today).
Figures EvaluateAllMax(const Problem& problem);

// Every computation at its fastest option (the realized all-fastest plan; its
// time is <= the all-max time).
Plan FastestPlan(const Problem& problem);

// One O(V + E) pass that lowers energy without missing `deadline_s`: with
// earliest starts from the current plan, visit computations in reverse
// topological order and give each the slowest option that fits between its
// earliest start and its latest finish (computed from the already visited
// successors). Every computation keeps at least its current time, and the
// latest-start schedule of the result meets the deadline.
// REQUIRES: the plan's realized time is <= deadline_s.
Plan FillSlack(const Problem& problem, Plan plan, double deadline_s);

// Makes `plan` meet `deadline_s` with measured times and then lowers its
// energy greedily without missing the deadline:
//  1. repair: while the realized time exceeds the deadline, speed up the
//     critical computation with the lowest energy cost per second saved;
//  2. refine: repeatedly slow down the computation whose slack (against the
//     deadline) buys the largest energy saving, until none fits.
// Ties go to the lowest index. Returns the polished plan. If even the
// fastest options miss the deadline the result is the repair's best effort
// (callers check the realized time). Each move recomputes only the times it
// changes (src/planner/plan_state.h). If `work` is given, adds to it the
// computations visited (ImprovePlan's budget), and the polish stops once
// *work reaches `max_work` (a repair stopped so may leave the plan slower
// than the deadline).
Plan PolishPlan(const Problem& problem, Plan plan, double deadline_s, int64_t* work = nullptr,
                int64_t max_work = INT64_MAX);

}  // namespace perseus::planner
