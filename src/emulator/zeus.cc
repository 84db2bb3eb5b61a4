#include <algorithm>
#include <set>
#include <vector>

#include "perseus/emulator/emulator.h"

namespace perseus::emulator {

namespace {

// The highest Pareto option of computation i not above `cap` MHz (the
// slowest option if every one is above it).
int OptionAtOrBelow(const planner::Problem& problem, int i, int cap) {
  const auto& options = problem.set(i).options;
  int best = -1;
  for (int k = 0; k < static_cast<int>(options.size()); ++k) {
    if (options[k].frequency_mhz <= cap &&
        (best < 0 || options[k].frequency_mhz > options[best].frequency_mhz)) {
      best = k;
    }
  }
  return best >= 0 ? best : static_cast<int>(options.size()) - 1;
}

std::vector<int> AllFrequencies(const planner::Problem& problem) {
  std::set<int> f;
  for (const auto& set : problem.option_sets) {
    for (const auto& o : set.options) f.insert(o.frequency_mhz);
  }
  return {f.rbegin(), f.rend()};  // highest first
}

}  // namespace

std::vector<planner::Plan> ZeusGlobalPlans(const planner::Problem& problem) {
  const int n = problem.dag->num_nodes();
  std::vector<planner::Plan> plans;
  for (int cap : AllFrequencies(problem)) {
    planner::Plan plan(n);
    for (int i = 0; i < n; ++i) plan[i] = OptionAtOrBelow(problem, i, cap);
    if (plans.empty() || plans.back() != plan) plans.push_back(std::move(plan));
  }
  return plans;
}

planner::Plan ZeusPerStagePlan(const planner::Problem& problem) {
  const planner::Dag& dag = *problem.dag;
  const int n = dag.num_nodes();
  const auto& orders = dag.gpu_order();
  const std::vector<int> frequencies = AllFrequencies(problem);
  // Forward time of a GPU (per iteration) with every forward at `cap`.
  auto forward_time = [&](const std::vector<int>& order, int cap) {
    double t = 0;
    for (int i : order) {
      if (dag.node(i).instruction == planner::Instruction::kForward) {
        t += problem.option(i, OptionAtOrBelow(problem, i, cap)).time_s;
      }
    }
    return t;
  };
  double target = 0;
  for (const auto& order : orders) {
    double t = 0;
    for (int i : order) {
      if (dag.node(i).instruction == planner::Instruction::kForward) {
        t += problem.set(i).highest_frequency.time_s;
      }
    }
    target = std::max(target, t);
  }
  planner::Plan plan(n, 0);
  for (const auto& order : orders) {
    int chosen = frequencies.front();
    for (int cap : frequencies) {  // highest first: keep lowering while it fits
      if (forward_time(order, cap) <= target * (1 + 1e-12)) chosen = cap;
    }
    for (int i : order) plan[i] = OptionAtOrBelow(problem, i, chosen);
  }
  return plan;
}

}  // namespace perseus::emulator
