#include "perseus/planner/frontier.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>

namespace perseus::planner {

void Frontier::AppendToFill(const FrontierPoint& point, const Plan& base, double fill_deadline_s) {
  assert(problem_ != nullptr);
  Append(point, base);
  fill_deadline_.back() = fill_deadline_s;
}

void Frontier::Append(const FrontierPoint& point, const Plan& plan) {
  const size_t k = BeginPoint(point, std::numeric_limits<double>::quiet_NaN());
  if (k == 0) {
    last_plan_ = plan;
  } else {
    for (size_t i = 0; i < plan.size(); ++i) {
      if (plan[i] != last_plan_[i]) RecordChange(i, plan[i]);
    }
  }
  EndPoint(k);
}

void Frontier::AppendChangesToFill(const FrontierPoint& point,
                                   const std::vector<std::pair<int, int>>& changes,
                                   double fill_deadline_s) {
  assert(problem_ != nullptr && !points_.empty());
  const size_t k = BeginPoint(point, fill_deadline_s);
  for (const auto& [node, option] : changes) {
    if (last_plan_[static_cast<size_t>(node)] != option) {
      RecordChange(static_cast<size_t>(node), option);
    }
  }
  EndPoint(k);
}

size_t Frontier::BeginPoint(const FrontierPoint& point, double fill_deadline_s) {
  points_.push_back(point);
  fill_deadline_.push_back(fill_deadline_s);
  sorted_time_.clear();
  best_upto_.clear();
  if (change_begin_.empty()) change_begin_.push_back(0);
  return points_.size() - 1;
}

void Frontier::RecordChange(size_t node, int option) {
  last_plan_[node] = option;
  change_node_.push_back(static_cast<uint32_t>(node));
  change_option_.push_back(static_cast<uint16_t>(option));
}

void Frontier::EndPoint(size_t k) {
  change_begin_.push_back(static_cast<uint32_t>(change_node_.size()));
  if (k % kCheckpointInterval == 0) checkpoints_.emplace_back(last_plan_.begin(), last_plan_.end());
}

Plan Frontier::StoredPlanAt(size_t index) const {
  assert(index < points_.size());
  const size_t base = index / kCheckpointInterval;
  Plan plan(checkpoints_[base].begin(), checkpoints_[base].end());
  for (size_t k = base * kCheckpointInterval + 1; k <= index; ++k) {
    for (uint32_t c = change_begin_[k]; c < change_begin_[k + 1]; ++c) {
      plan[change_node_[c]] = change_option_[c];
    }
  }
  return plan;
}

Plan Frontier::PlanAt(size_t index) const {
  Plan plan = StoredPlanAt(index);
  if (!std::isnan(fill_deadline_[index]))
    return FillSlack(*problem_, std::move(plan), fill_deadline_[index]);
  return plan;
}

size_t Frontier::TMinIndex() const {
  assert(!points_.empty());
  size_t best = 0;
  for (size_t k = 1; k < points_.size(); ++k) {
    const FrontierPoint& p = points_[k];
    const FrontierPoint& b = points_[best];
    if (p.time_s < b.time_s || (p.time_s == b.time_s && p.energy_j < b.energy_j)) best = k;
  }
  return best;
}

size_t Frontier::TStarIndex() const {
  assert(!points_.empty());
  size_t best = 0;
  for (size_t k = 1; k < points_.size(); ++k) {
    if (points_[k].energy_j < points_[best].energy_j) best = k;
  }
  return best;
}

void Frontier::BuildDeadlineIndex() const {
  std::vector<uint32_t> order(points_.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return points_[a].time_s < points_[b].time_s; });
  sorted_time_.resize(order.size());
  best_upto_.resize(order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    sorted_time_[k] = points_[order[k]].time_s;
    best_upto_[k] = order[k];
    if (k > 0 && points_[best_upto_[k - 1]].energy_j <= points_[order[k]].energy_j) {
      best_upto_[k] = best_upto_[k - 1];
    }
  }
}

std::optional<size_t> Frontier::IndexForDeadline(double deadline_s) const {
  if (points_.empty()) return std::nullopt;
  if (sorted_time_.size() != points_.size()) BuildDeadlineIndex();
  auto it = std::upper_bound(sorted_time_.begin(), sorted_time_.end(), deadline_s);
  if (it == sorted_time_.begin()) return std::nullopt;
  return best_upto_[(it - sorted_time_.begin()) - 1];
}

std::vector<size_t> Frontier::ParetoIndices() const {
  std::vector<size_t> order(points_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const FrontierPoint& p = points_[a];
    const FrontierPoint& q = points_[b];
    if (p.time_s != q.time_s) return p.time_s < q.time_s;
    if (p.energy_j != q.energy_j) return p.energy_j < q.energy_j;
    return a < b;
  });
  std::vector<size_t> kept;
  double best = std::numeric_limits<double>::infinity();
  for (size_t k : order) {
    if (points_[k].energy_j < best) {
      kept.push_back(k);
      best = points_[k].energy_j;
    }
  }
  // Slowest first: realized time strictly falling, energy strictly rising.
  std::reverse(kept.begin(), kept.end());
  return kept;
}

Frontier Frontier::ParetoOnly() const {
  Frontier out(problem_);
  out.all_max = all_max;
  out.solve_seconds = solve_seconds;
  for (size_t k : ParetoIndices()) {
    out.Append(points_[k], StoredPlanAt(k));
    out.fill_deadline_.back() = fill_deadline_[k];
  }
  return out;
}

size_t Frontier::PlanStorageBytes() const {
  size_t bytes = change_begin_.size() * sizeof(uint32_t) + change_node_.size() * sizeof(uint32_t) +
                 change_option_.size() * sizeof(uint16_t);
  for (const auto& c : checkpoints_) bytes += c.size() * sizeof(uint16_t);
  bytes += fill_deadline_.size() * sizeof(double);
  return bytes;
}

}  // namespace perseus::planner
