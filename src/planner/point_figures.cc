#include "src/planner/point_figures.h"

#include <algorithm>

namespace perseus::planner {

PointFigures::PointFigures(const Problem& problem) : problem_(problem) {
  const Dag& dag = *problem.dag;
  n_ = dag.num_nodes();
  node_ = dag.topological_order();
  std::vector<int> position(n_);
  for (int p = 0; p < n_; ++p) position[node_[p]] = p;
  succ_begin_.assign(n_ + 1, 0);
  pred_begin_.assign(n_ + 1, 0);
  for (int p = 0; p < n_; ++p) {
    const int i = node_[p];
    for (int j : dag.successors(i)) succ_.push_back(position[j]);
    for (int j : dag.predecessors(i)) pred_.push_back(position[j]);
    succ_begin_[p + 1] = static_cast<int>(succ_.size());
    pred_begin_[p + 1] = static_cast<int>(pred_.size());
  }
  options_.resize(n_);
  num_options_.resize(n_);
  for (int p = 0; p < n_; ++p) {
    const std::vector<Option>& options = problem.set(node_[p]).options;
    options_[p] = options.data();
    num_options_[p] = static_cast<int>(options.size());
  }
  t_.resize(n_);
  es_.resize(n_);
  f_.resize(n_);
  ls_.resize(n_);
  option_.resize(n_);
}

Figures PointFigures::FillAndEvaluate(const Plan& base, double deadline_s, Plan* filled) {
  by_position_.resize(n_);
  for (int p = 0; p < n_; ++p) by_position_[p] = base[node_[p]];
  const Figures figures = FillAndEvaluateByPosition(by_position_, deadline_s);
  filled->resize(n_);
  for (int p = 0; p < n_; ++p) (*filled)[node_[p]] = option_[p];
  return figures;
}

Figures PointFigures::FillAndEvaluateByPosition(const Plan& base, double deadline_s) {
  // Each pass reads one value per neighbour (its finish, or its latest
  // start), computed by the same operation as FillSlack's and EvaluatePlan's
  // at the neighbour itself, so the results are theirs bit for bit.
  // FillSlack: earliest starts of the base plan, ...
  for (int p = 0; p < n_; ++p) {
    const int k = base[p];
    option_[p] = k;
    t_[p] = options_[p][k].time_s;
    double start = 0;
    for (int q = pred_begin_[p]; q < pred_begin_[p + 1]; ++q) start = std::max(start, f_[pred_[q]]);
    es_[p] = start;
    f_[p] = start + t_[p];
  }
  // ... then in reverse topological order the slowest option that fits
  // between the earliest start and the latest finish.
  for (int p = n_ - 1; p >= 0; --p) {
    double lf = deadline_s;
    for (int q = succ_begin_[p]; q < succ_begin_[p + 1]; ++q) lf = std::min(lf, ls_[succ_[q]]);
    const Option* options = options_[p];
    const double room = lf - es_[p];
    int k = option_[p];
    while (k + 1 < num_options_[p] && options[k + 1].time_s <= room) ++k;
    option_[p] = k;
    t_[p] = options[k].time_s;
    ls_[p] = lf - t_[p];
  }
  // EvaluatePlan of the result: its longest path and its sums, both in
  // topological order.
  double makespan = 0, sum_t = 0, sum_e = 0;
  for (int p = 0; p < n_; ++p) {
    double start = 0;
    for (int q = pred_begin_[p]; q < pred_begin_[p + 1]; ++q) start = std::max(start, f_[pred_[q]]);
    f_[p] = start + t_[p];
    makespan = std::max(makespan, f_[p]);
    sum_t += t_[p];
    sum_e += options_[p][option_[p]].energy_j;
  }
  return RealizedFigures(problem_, makespan, sum_e, sum_t);
}

}  // namespace perseus::planner
