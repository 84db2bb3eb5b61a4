// The realized figures of the sweep's points, for the cost of its passes
// only: FillSlack (realized.h) of a plan followed by EvaluatePlan of the
// result, bit for bit, with no allocation per point. The DAG is renumbered
// once in topological order (successors and predecessors by position) so
// the passes read memory in order; every value is computed by the same
// operations as FillSlack's and EvaluatePlan's (maxima and minima are exact,
// the sums run in topological order, as every evaluator's do), so the
// figures and the filled plan are the same (point_figures_test.cc). O(V + E)
// per point: three passes over the DAG, reading the plan by position (the
// sweep's numbering) and writing none.
#pragma once

#include <vector>

#include "perseus/planner/problem.h"
#include "perseus/planner/realized.h"

namespace perseus::planner {

class PointFigures {
 public:
  explicit PointFigures(const Problem& problem);

  // *filled = FillSlack(problem, base, deadline_s); returns
  // EvaluatePlan(problem, *filled). REQUIRES: base.size() == computations.
  Figures FillAndEvaluate(const Plan& base, double deadline_s, Plan* filled);
  // The same figures, of a plan given by position: base_by_position[p] is
  // the option of computation node_at(p). REQUIRES: base_by_position.size()
  // == computations.
  Figures FillAndEvaluateByPosition(const Plan& base_by_position, double deadline_s);
  // The computation at position p: the DAG's topological order.
  int node_at(int p) const { return node_[p]; }

 private:
  const Problem& problem_;
  int n_ = 0;
  std::vector<int> node_;                                   // position -> computation
  std::vector<int> succ_begin_, succ_, pred_begin_, pred_;  // by position
  std::vector<const Option*> options_;                      // by position
  std::vector<int> num_options_;
  // By position: time, earliest start, finish (earliest start + time),
  // latest start.
  std::vector<double> t_, es_, f_, ls_;
  std::vector<int> option_;  // by position: the filled plan
  Plan by_position_;         // FillAndEvaluate's base, by position
};

}  // namespace perseus::planner
