// The iteration time–energy frontier: ordered points, each with the model's
// and the realized (measured) time and energy, and the plan that achieves it.
//
// Points are stored in solver order: slowest first, the last point being
// T_min. SolveFrontier keeps only Pareto points of realized (time, energy)
// (ParetoOnly), sorted slowest first; their model times are then not one
// unit apart, nor always in order. Plans are
// stored compactly: the first point's plan in full, then for each later point
// only the computations whose option changed (a few per point), plus a full
// checkpoint every kCheckpointInterval points so that any plan is rebuilt in
// O(n + kCheckpointInterval * changes per point). Points the solver fills
// with slack store the plan before filling (see AppendToFill).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "perseus/planner/problem.h"
#include "perseus/planner/realized.h"

namespace perseus::planner {

struct FrontierPoint {
  double time_s = 0;  // realized
  double energy_j = 0;
  double model_time_s = 0;
  double model_energy_j = 0;
};

class Frontier {
 public:
  static constexpr size_t kCheckpointInterval = 256;

  Frontier() = default;
  explicit Frontier(std::shared_ptr<const Problem> problem) : problem_(std::move(problem)) {}

  // Appends a point and its plan. REQUIRES: plan.size() == number of computations.
  void Append(const FrontierPoint& point, const Plan& plan);
  // Appends a point whose plan is FillSlack(problem, base, fill_deadline_s):
  // only `base` is stored (the solver's duration-mapped plan, which changes
  // in far fewer computations from point to point than the filled one), and
  // PlanAt() fills it again. REQUIRES: a problem.
  void AppendToFill(const FrontierPoint& point, const Plan& base, double fill_deadline_s);
  // The same, with `base` given as the last appended plan with `changes`
  // applied (computation, option; computations whose option is unchanged
  // may be listed, each computation at most once): O(changes) instead of
  // O(n), except at checkpoints. REQUIRES: a point appended before, and a
  // problem.
  void AppendChangesToFill(const FrontierPoint& point,
                           const std::vector<std::pair<int, int>>& changes, double fill_deadline_s);

  const Problem& problem() const { return *problem_; }
  std::shared_ptr<const Problem> problem_ptr() const { return problem_; }
  const std::vector<FrontierPoint>& points() const { return points_; }
  size_t size() const { return points_.size(); }
  // The plan of point `index`: O(n + E + changes since its checkpoint).
  Plan PlanAt(size_t index) const;

  // The lowest-energy point among those with the smallest realized time.
  size_t TMinIndex() const;
  // The lowest realized energy point.
  size_t TStarIndex() const;
  // The plan to run for deadline T: the lowest-energy point whose realized
  // time is <= deadline_s; nullopt if every point is slower. O(log n) after
  // the first call (an index sorted by time with running minima; built on
  // the first call after an Append, which SolveFrontier makes before it
  // returns, so a solved frontier may be read from several threads).
  std::optional<size_t> IndexForDeadline(double deadline_s) const;

  // Indices of the Pareto points of realized (time, energy), slowest first
  // (time strictly falling, energy strictly rising): a point is kept unless
  // another one is at least as fast and at most as costly (of points with
  // equal figures, the first). O(P log P).
  std::vector<size_t> ParetoIndices() const;
  // The frontier of only those points in that order, with the same plans
  // (stored the same way), all_max and solve_seconds. O(kept x (n + changes
  // between checkpoints)).
  Frontier ParetoOnly() const;

  // Bytes used by the stored plans (for benchmarks).
  size_t PlanStorageBytes() const;

  // Figures of every computation at its highest frequency.
  Figures all_max;
  double solve_seconds = 0;

 private:
  // The steps of every Append: a point and its fill deadline in (returns
  // its index), a computation whose option differs from the last plan's,
  // and the point's changes closed (and its checkpoint, if one is due).
  size_t BeginPoint(const FrontierPoint& point, double fill_deadline_s);
  void RecordChange(size_t node, int option);
  void EndPoint(size_t k);
  void BuildDeadlineIndex() const;
  Plan StoredPlanAt(size_t index) const;  // before any fill

  std::shared_ptr<const Problem> problem_;
  std::vector<FrontierPoint> points_;
  Plan last_plan_;
  std::vector<double> fill_deadline_;               // per point; NaN: the stored plan is the plan
  std::vector<std::vector<uint16_t>> checkpoints_;  // plan of point k*kCheckpointInterval
  std::vector<uint32_t>
      change_begin_;  // changes of point k: [change_begin_[k], change_begin_[k+1])
  std::vector<uint32_t> change_node_;
  std::vector<uint16_t> change_option_;
  // Deadline index: point ids sorted by realized time; best_[k] = argmin energy of the first k+1.
  mutable std::vector<double> sorted_time_;
  mutable std::vector<uint32_t> best_upto_;
};

}  // namespace perseus::planner
