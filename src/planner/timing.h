// Longest-path timing of a DAG under given durations (integer units or real
// seconds): earliest start of every computation, the iteration time, and latest
// finish times. Used by the solver (integers) and the realized evaluation
// (seconds). O(V + E) per call.
#pragma once

#include <algorithm>
#include <vector>

#include "perseus/planner/dag.h"

namespace perseus::planner {

// Fills earliest_start[i] and returns the makespan (length of the longest
// path). Each computation reads one value per predecessor, its finish
// (*finish, scratch of the caller's, so a hot loop allocates nothing).
template <typename T>
T EarliestStarts(const Dag& dag, const std::vector<T>& duration, std::vector<T>* earliest_start,
                 std::vector<T>* finish) {
  earliest_start->resize(dag.num_nodes());
  finish->resize(dag.num_nodes());
  T makespan{0};
  for (int v : dag.topological_order()) {
    T start{0};
    for (int u : dag.predecessors(v)) start = std::max(start, (*finish)[u]);
    (*earliest_start)[v] = start;
    (*finish)[v] = start + duration[v];
    makespan = std::max(makespan, (*finish)[v]);
  }
  return makespan;
}

template <typename T>
T EarliestStarts(const Dag& dag, const std::vector<T>& duration, std::vector<T>* earliest_start) {
  std::vector<T> finish;
  return EarliestStarts(dag, duration, earliest_start, &finish);
}

// Fills latest_start[i]: the latest time i may start without delaying the
// iteration beyond `makespan`. Walks the DAG in reverse topological order,
// each computation reading one value per successor (its latest start), and
// calls final(v) as it reaches v, whose latest start is then final.
template <typename T, typename Final = void (*)(int)>
void LatestStarts(
    const Dag& dag, const std::vector<T>& duration, T makespan, std::vector<T>* latest_start,
    Final&& final = [](int) {}) {
  latest_start->resize(dag.num_nodes());
  const std::vector<int>& topo = dag.topological_order();
  for (auto it = topo.rbegin(); it != topo.rend(); ++it) {
    const int v = *it;
    T latest_finish = makespan;
    for (int j : dag.successors(v)) latest_finish = std::min(latest_finish, (*latest_start)[j]);
    (*latest_start)[v] = latest_finish - duration[v];
    final(v);
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
