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
//    drops by one unit at the cut's cost, the cheapest possible.
//
// Longest steps. A cut found at iteration time T is applied for as many unit
// steps delta at once as the unit-step sweep would apply it, one unit at a
// time (Fulkerson's and Kelley's parametric crashing; the convex
// relaxation's frontier exactly). That holds when the unit-step sweep would
// find the same cut (the minimum cut with the smallest source side) at every
// intermediate time T - k, 0 < k < delta:
//  (a) every computation the cut moves stays inside one linear piece of its
//      cost table (it may start at a breakpoint; a backward move also stops
//      at max_i; min_i, where the capacity becomes infinite, ends a forward
//      piece). The networks of steps 1 .. delta-1 are then identical, and
//      differ from step 0's only in the capacities of computations that
//      leave a breakpoint, on the side of their bounds the cut's flow does
//      not use: step 0's max flow stays maximum there with the same
//      residual reachability, so the same cut;
//  (b) every source-sink path of the critical network falls by exactly one
//      unit per unit step (one that crosses the cut forwards twice drops out
//      after one unit, which changes the network: then delta = 1);
//  (c) the iteration time after delta unit steps is T - delta. Every path's
//      length is then linear in k: the critical ones fall by one per unit,
//      the others were shorter than T at k = 0 and are <= T - delta at
//      delta, so they stay below T - k inside the step: the same paths are
//      critical throughout, so the same critical sub-DAG.
// delta is the largest value meeting (a)-(c): (a) gives a bound from the
// cost tables, (b) is one pass over the critical network, and (c) is found
// by Newton's method from the right on the convex piecewise-linear
// g(k) = (longest path at k) - (T - k): O(V + E) per iteration, a few
// iterations per step. Model energy is linear in time along a step, so the
// model frontier's vertices are among the step ends.
//
// The new iteration time is checked (T - delta) every step; a violation is
// reported as kInfeasible, never ignored. Changes are applied only after the
// cut is known to be finite, so no step is ever half-applied.
//
// Capacities are integers (micro-joules, cost_model.h) so cuts are exact; the
// "infinity" is one more than the sum of all finite capacities of the step, so
// no energy value can exceed it.
//
// Frontier points. By default one per step end: the model frontier's
// vertices (and the step ends between collinear pieces), each a point of the
// unit-step sweep with its plan; model energy is linear between them. A
// deadline between two points gets the faster one's plan from the frontier
// (IndexForDeadline); PlanForDeadline (improve.h) improves on it. With
// SolverOptions::realize_every_unit (or unit_steps) the frontier has one
// point per unit of time, the unit-step sweep's, plan for plan, for the cost
// of realizing every unit (at 0.1 ms units several times the solve).
// Each frontier point also gets its realized figures (realized.h): each
// computation runs the slowest measured option whose quantised time fits its
// duration; durations are rounded up, so the realized time is never above the
// model's. The T_min point is then polished against the all-max time
// (PolishPlan, from its plan with every computation no slower than at its
// highest frequency), so realized T_min <= all-max time.
//
// The fast sweep walks the DAG renumbered in topological order (its arrays
// are then read front to back; src/planner/topological_relabel.h) and maps
// each point's plan back; its steps do not depend on the numbering.
// Cost per step: O(V + E) for timing (latest finishes, the critical set)
// and a comparison pass over the critical network, whose changed arcs alone
// are updated; a max flow warm-started from the previous step's
// (cut_network.h: it routes what the changes unbalanced, then searches the
// residual network from the source, which is the cut; its searches cost
// what the network holds, not the DAG); O(V + E) per Newton iteration; per
// point three O(V + E) passes for its realized figures (point_figures.h).
// Measured on 1F1B 16 x 128 (bench/RESULTS.md): about half of all
// computations change their earliest start and tail every step and the
// critical network spans 40-85% of the DAG, so keeping those times
// incrementally would not make a step much cheaper. A step ends where the
// network changes: a moved computation reaching a breakpoint of its cost
// table (or its bound), a path becoming critical, or (b) a path leaving.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "perseus/common/status.h"
#include "perseus/planner/frontier.h"
#include "perseus/planner/problem.h"

namespace perseus::planner {

// Called now and then with the fraction of the sweep done (0..1).
using ProgressFn = std::function<void(double fraction)>;

// What a solve did (SolverOptions::stats).
struct SolverStats {
  int64_t steps = 0;                // cuts applied (steps of any length)
  int64_t unit_steps = 0;           // units of iteration time swept: T_max - T_min
  int64_t max_flows = 0;            // minimum cuts computed
  int64_t network_nodes = 0;        // computations in the networks of those cuts, summed
  int64_t network_arcs = 0;         // their arcs, summed
  int64_t reused_cuts = 0;          // steps whose network was the last max flow's (unit steps)
  int64_t extended_cuts = 0;        // max flows found by extending the last cut's source side
  int64_t steps_at_breakpoint = 0;  // one unit only because of (a) above
  int64_t steps_kept_short = 0;     // one unit only because of (b) above
  int64_t steps_shortened = 0;      // shorter than (a) allows because of (c)
  int64_t length_passes = 0;        // longest-path passes finding step lengths
  int64_t polish_passes = 0;        // the T_min point's PolishPlan: computations visited / V
  // Where the time went (seconds): timing passes and step lengths; building
  // the critical networks and their minimum cuts; the points' realized
  // figures; the T_min point's PolishPlan; improving the frontier's ends
  // (SolverOptions::improve_ends).
  double timing_s = 0, cuts_s = 0, points_s = 0, polish_s = 0, ends_s = 0;
};

struct SolverOptions {
  // The reference implementation: textbook Dinic, a fresh max flow every
  // step and unit steps (the textbook Phillips–Dessouky sweep). The default
  // (fast) one keeps one flow network over the DAG, warm-started from step
  // to step (cut_network.h), reuses the previous step's cut when the step's
  // network is identical and applies every cut for its longest step.
  // Both compute the same minimum cut (the one with the smallest source
  // side) on the same network, so the fast sweep's points are the
  // reference's at its step ends, plan for plan, and the reference's points
  // inside a step lie on the straight line between them (tested); with
  // unit_steps or realize_every_unit the two frontiers are the same point for
  // point.
  bool reference = false;
  // Unit steps only (the reference's sweep with the fast max flow). Implied
  // by reference and by PlannerOptions::round_down (reference-compatible
  // mode reports a point per unit, as the Python reference does).
  bool unit_steps = false;
  // Also evaluate the points inside every step: the unit-step sweep's
  // frontier, point for point, for the cost of realizing every unit.
  bool realize_every_unit = false;
  // Keep only the Pareto points of realized (time, energy) (Frontier::
  // ParetoOnly). Off: every point of the sweep (one per step end, or per
  // unit; the solver's own sweep, which the model-optimality tests check).
  bool pareto_only = true;
  // With pareto_only (and not round_down): improve the frontier's ends for
  // the real, discrete frequencies (WithImprovedEnds, improve.h): T_min at the
  // all-max time and T* at its own, by the deadline plans' local search. Off:
  // only the sweep's own points (the tests that compare it with the unit
  // sweep).
  bool improve_ends = true;
  // Work budget of each end's search (computations visited, ImproveOptions::
  // max_work): the demo's searches finish below it; on DAGs of thousands of
  // computations it caps the added time at a few tenths of a second.
  int64_t improve_ends_work = 15'000'000;
  // If set, receives what the solve did.
  SolverStats* stats = nullptr;
  // If set, asked once per step of the sweep: true stops the solve, which
  // then returns kCancelled (a cancelled job, or one over its time budget).
  std::function<bool()> should_stop;
  // The most points the sweep may keep (memory grows with points x
  // computations); more is kInvalidInput naming unit_time. 0: no bound.
  int64_t max_points = 0;
};

Result<Frontier> SolveFrontier(std::shared_ptr<const Problem> problem,
                               const ProgressFn& progress = {}, const SolverOptions& options = {});

}  // namespace perseus::planner
