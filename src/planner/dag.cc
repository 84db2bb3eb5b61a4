#include "perseus/planner/dag.h"

#include <algorithm>
#include <cassert>

#include "src/planner/timing.h"

namespace perseus::planner {

std::string ComputationLabel(const Computation& c) {
  if (c.overlapped()) {
    return "(" + std::to_string(c.stage) + InstructionLetter(c.instruction) +
           std::to_string(c.microbatch) + ";" + std::to_string(c.overlap.stage) +
           InstructionLetter(c.overlap.instruction) + std::to_string(c.overlap.microbatch) + ")";
  }
  return std::string(1, InstructionLetter(c.instruction)) + std::to_string(c.microbatch) + "@s" +
         std::to_string(c.stage);
}

int Dag::AddComputation(const Computation& c) {
  assert(!finalized_);
  int id = static_cast<int>(nodes_.size());
  nodes_.push_back(c);
  if (c.gpu >= static_cast<int>(gpu_order_.size())) gpu_order_.resize(c.gpu + 1);
  gpu_order_[c.gpu].push_back(id);
  return id;
}

void Dag::AddDependency(int from, int to) {
  assert(!finalized_);
  assert(from >= 0 && from < num_nodes() && to >= 0 && to < num_nodes());
  edges_.emplace_back(from, to);
}

Status Dag::Finalize() {
  assert(!finalized_);
  for (const auto& order : gpu_order_) {
    for (size_t i = 1; i < order.size(); ++i) edges_.emplace_back(order[i - 1], order[i]);
  }
  for (const auto& [from, to] : edges_) {
    if (from == to) {
      return Status::InvalidInput("computation " + ComputationLabel(nodes_[from]) +
                                  " depends on itself");
    }
  }
  std::sort(edges_.begin(), edges_.end());
  edges_.erase(std::unique(edges_.begin(), edges_.end()), edges_.end());

  const int n = num_nodes();
  succ_begin_.assign(n + 1, 0);
  pred_begin_.assign(n + 1, 0);
  for (const auto& [from, to] : edges_) {
    ++succ_begin_[from + 1];
    ++pred_begin_[to + 1];
  }
  for (int i = 0; i < n; ++i) {
    succ_begin_[i + 1] += succ_begin_[i];
    pred_begin_[i + 1] += pred_begin_[i];
  }
  succ_.resize(edges_.size());
  pred_.resize(edges_.size());
  std::vector<int> sfill(succ_begin_.begin(), succ_begin_.end() - 1);
  std::vector<int> pfill(pred_begin_.begin(), pred_begin_.end() - 1);
  for (const auto& [from, to] : edges_) {
    succ_[sfill[from]++] = to;
    pred_[pfill[to]++] = from;
  }
  edges_.clear();
  edges_.shrink_to_fit();

  // Kahn's algorithm; a leftover node lies on (or after) a cycle.
  std::vector<int> indegree(n);
  for (int i = 0; i < n; ++i) indegree[i] = pred_begin_[i + 1] - pred_begin_[i];
  topo_.clear();
  topo_.reserve(n);
  for (int i = 0; i < n; ++i) {
    if (indegree[i] == 0) topo_.push_back(i);
  }
  for (size_t head = 0; head < topo_.size(); ++head) {
    int u = topo_[head];
    for (int k = succ_begin_[u]; k < succ_begin_[u + 1]; ++k) {
      if (--indegree[succ_[k]] == 0) topo_.push_back(succ_[k]);
    }
  }
  if (static_cast<int>(topo_.size()) != n) {
    for (int i = 0; i < n; ++i) {
      if (indegree[i] > 0) {
        return Status::InvalidInput("the schedule deadlocks: computation " +
                                    ComputationLabel(nodes_[i]) + " waits on a cycle");
      }
    }
  }
  finalized_ = true;
  return Status::Ok();
}

double Dag::Makespan(const std::vector<double>& duration) const {
  std::vector<double> earliest_start;
  return EarliestStarts(*this, duration, &earliest_start);
}

}  // namespace perseus::planner
