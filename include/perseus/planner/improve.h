// The plan for one deadline, improved past the frontier's points: a discrete
// local search over measured options.
//
// The frontier solver optimises a convex relaxation on a time grid and maps
// each duration to a measured option; what that leaves is the gap between the
// relaxation and the real, discrete frequencies (about 0.1 percentage points
// of energy on the shipped profiles, bench/RESULTS.md). ImprovePlan closes
// most of it at a given deadline D:
//
//   start: PolishPlan(plan, D) (meet D with measured times, then greedy
//          slow-downs into the slack);
//   move:  change one computation by one option, faster or slower, and
//          polish again (a faster computation frees time that others then
//          take; a slower one is paid for by speeding up the cheapest
//          critical ones);
//   accept the first move whose plan meets D with lower energy; repeat until
//          a whole round of moves gives nothing (a local optimum) or the work
//          budget is spent.
//
// The search runs in a PlanState (src/planner/plan_state.h): a candidate
// move changes the plan's times incrementally and is undone unless it is
// kept, with the same moves as polishing a fresh copy of the plan for every
// candidate (tested). The work budget counts computations visited, so the
// result is the same on every machine and every run (no wall-clock limit).
// bench/discrete_gap.py measures the result against the exact optimum (a MILP
// solved by HiGHS); the tests check it against brute force on tiny instances.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "perseus/planner/frontier.h"
#include "perseus/planner/realized.h"

namespace perseus::planner {

// What "lower energy" means at a deadline D.
enum class DeadlineObjective {
  // The iteration ends when the plan's last computation does (realized
  // energy at the plan's own time, <= D): the frontier's and show-plan's
  // accounting, and the MILP's of bench/discrete_gap.py.
  kOwnTime,
  // The iteration lasts D whatever the plan (a pipeline waiting for a
  // straggler): the plan's energy plus blocking power over D - its time.
  kAtDeadline,
};

struct ImproveOptions {
  DeadlineObjective objective = DeadlineObjective::kOwnTime;
  // Work budget in computations visited (a time recomputed, a move
  // considered; a full longest-path pass visits every computation once),
  // about 10-20 ns each on one core. The shipped 8 x 12 and 8 x 24
  // profiles' searches finish at 1-6 and 7-52 million; the default caps a
  // search at ~1-2 s, so on DAGs of thousands of computations the search
  // stops early with what it has.
  int64_t max_work = 100'000'000;
};

struct ImproveResult {
  Plan plan;
  Figures figures;            // realized; figures.time_s <= D unless nothing could meet it
  double objective_j = 0;     // the energy ImproveOptions::objective minimises
  int64_t moves = 0;          // accepted moves after the first polish
  int64_t work = 0;           // computations visited
  bool budget_spent = false;  // stopped by the budget, not at a local optimum
};

// The local search above from `plan` at deadline_s. If even polishing cannot
// make `plan` meet the deadline, returns the polished plan (callers check
// figures.time_s). REQUIRES: plan.size() == number of computations.
ImproveResult ImprovePlan(const Problem& problem, Plan plan, double deadline_s,
                          const ImproveOptions& options = {});

// The energy `figures` stands for under an objective at deadline_s:
// own time: figures.energy_j; at the deadline: plus blocking power of every
// GPU over deadline_s - figures.time_s.
double ObjectiveEnergy(const Problem& problem, const Figures& figures, double deadline_s,
                       DeadlineObjective objective);

// The plan to run for deadline D from a solved frontier: ImprovePlan from the
// frontier's best point for D (the lowest objective among points with
// realized time <= D) and, when there is one, from the fastest point slower
// than D (polishing makes it meet D); the better result. nullopt if no
// point meets D. Its figures are never worse than the frontier point's.
struct DeadlinePlan {
  ImproveResult result;
  size_t base_point = 0;  // the frontier point the returned plan started from
};
std::optional<DeadlinePlan> PlanForDeadline(const Frontier& frontier, double deadline_s,
                                            const ImproveOptions& options = {});
// The same from any list of points with their plans (plan_at(k): point k's
// plan as option indices), e.g. a frontier read back from its files.
std::optional<DeadlinePlan> PlanForDeadline(const Problem& problem,
                                            const std::vector<FrontierPoint>& points,
                                            const std::function<Plan(size_t)>& plan_at,
                                            double deadline_s, const ImproveOptions& options = {});

// The frontier with its two ends improved by PlanForDeadline (own time):
// T_min at the all-max time (the plan "as fast as all-max") and T* at its own
// time; the improved plans are added as points (model figures: their base
// point's) and the result is Pareto-filtered again (Frontier::ParetoOnly), so
// an end point that the search made better replaces the old one. Its deadline
// index is built (safe for concurrent readers). REQUIRES: a non-empty frontier.
Frontier WithImprovedEnds(Frontier frontier, const ImproveOptions& options = {});

}  // namespace perseus::planner
