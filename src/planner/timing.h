// Longest-path timing of a DAG under given durations (integer units or real
// seconds): earliest start of every computation, the iteration time, and latest
// finish times. Used by the solver (integers) and the realized evaluation
// (seconds). O(V + E) per call.
#pragma once

#include <algorithm>
#include <vector>

#include "perseus/planner/dag.h"

namespace perseus::planner {

// Fills earliest_start[i] and returns the makespan (length of the longest path).
template <typename T>
T EarliestStarts(const Dag& dag, const std::vector<T>& duration, std::vector<T>* earliest_start) {
  earliest_start->assign(dag.num_nodes(), T{0});
  T makespan{0};
  for (int u : dag.topological_order()) {
    T finish = (*earliest_start)[u] + duration[u];
    makespan = std::max(makespan, finish);
    for (int v : dag.successors(u)) {
      if ((*earliest_start)[v] < finish) (*earliest_start)[v] = finish;
    }
  }
  return makespan;
}

// Fills latest_finish[i]: the latest time i may finish without delaying the
// iteration beyond `makespan`. Walks the DAG in reverse topological order and
// calls final(v) as it reaches v, whose latest finish is then final.
template <typename T, typename Final = void (*)(int)>
void LatestFinishes(
    const Dag& dag, const std::vector<T>& duration, T makespan, std::vector<T>* latest_finish,
    Final&& final = [](int) {}) {
  latest_finish->assign(dag.num_nodes(), makespan);
  const std::vector<int>& topo = dag.topological_order();
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    int v = *it;
    final(v);
    T latest_start = (*latest_finish)[v] - duration[v];
    for (int u : dag.predecessors(v)) {
      if ((*latest_finish)[u] > latest_start) (*latest_finish)[u] = latest_start;
    }
  }
}

// Fills tail[i]: the longest path after i finishes (0 for a computation
// nobody waits for): i lies on a longest path iff earliest_start[i] +
// duration[i] + tail[i] is the makespan.
template <typename T>
void LongestTails(const Dag& dag, const std::vector<T>& duration, std::vector<T>* tail) {
  tail->assign(dag.num_nodes(), T{0});
  const std::vector<int>& topo = dag.topological_order();
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    const int u = *it;
    for (int v : dag.successors(u)) (*tail)[u] = std::max((*tail)[u], duration[v] + (*tail)[v]);
  }
}

}  // namespace perseus::planner
