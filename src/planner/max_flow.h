// Maximum flow with lower bounds, for the minimum cuts of the frontier solver.
//
// Problem. A directed network with arcs (u, v, lower, upper), lower <= upper,
// integer capacities, a source s and a sink t. Find a flow f with
// lower <= f <= upper on every arc, conservation at every node but s and t, and
// maximum value; then a minimum s-t cut, whose value is
//   sum of upper over arcs S->T  minus  sum of lower over arcs T->S.
//
// Algorithm (the textbook reduction). 1) Feasibility: start every arc at a
// flow between its bounds (its lower bound unless a warm start is given),
// move the resulting imbalances into arcs from a super source and to a super
// sink, add an arc t->s of capacity `infinity`, and run
// a max flow super-source -> super-sink; the lower bounds are satisfiable iff it
// saturates every super-source arc. 2) Drop the super arcs and the t->s arc and
// augment s->t on the residual network. 3) The source side of a minimum cut is
// the set reachable from s in the final residual network. Max flows are Dinic's
// (BFS levels + DFS blocking flows with current-arc pointers), O(V^2 E) worst
// case, far less on these shallow DAGs.
//
// `infinity` must exceed every finite cut value; callers pass the sum of all
// finite capacities plus one. Capacities and their sums must stay below 2^61.
// The network is stored in contiguous arrays (arc 2k forward, 2k+1 reverse)
// and its buffers are reused across Reset() calls.
#pragma once

#include <cstdint>
#include <vector>

#include "perseus/common/status.h"

namespace perseus::planner {

class LowerBoundedMaxFlow {
 public:
  // kSimple: textbook Dinic, one augmenting path per depth-first search (the
  // reference). kFast: level graph built only up to the sink's level, and
  // each depth-first search pushes along every path it finds and prunes dead
  // ends. Both return a maximum flow, and the cut OnSourceSide() reports (the
  // nodes reachable from s in the residual network) is the same for every
  // maximum flow: the minimum cut with the smallest source side.
  enum class Algorithm { kSimple, kFast };
  void set_algorithm(Algorithm algorithm) { algorithm_ = algorithm; }

  // Clears the network and sizes it for `num_nodes` nodes (0..num_nodes-1).
  void Reset(int num_nodes);
  // Adds an arc and returns its id. REQUIRES: 0 <= lower <= upper.
  int AddArc(int from, int to, int64_t lower, int64_t upper) {
    return AddArcWithFlow(from, to, lower, upper, lower);
  }
  // The same, with a starting flow (a warm start, e.g. the arc's flow in a
  // similar network solved before), clamped into [lower, upper]. Any starting
  // flows give the same maximum flow value and the same minimum cut; close
  // ones leave less to route.
  int AddArcWithFlow(int from, int to, int64_t lower, int64_t upper, int64_t flow);
  // Solves. Returns kInfeasible if no flow meets the lower bounds.
  Status Solve(int source, int sink, int64_t infinity);
  // After Solve(): whether `node` is on the source side of a minimum cut.
  bool OnSourceSide(int node) const { return reachable_[node] != 0; }
  // After Solve(): flow on arc `arc` (between lower and upper).
  int64_t Flow(int arc) const;
  // Value of the maximum flow (net flow out of the source).
  int64_t value() const { return value_; }

 private:
  int AddInternalArc(int from, int to, int64_t cap);
  int64_t Dinic(int s, int t);
  bool BuildLevels(int s, int t);
  int64_t Push(int u, int t, int64_t limit);
  int64_t PushAll(int u, int t, int64_t limit);

  Algorithm algorithm_ = Algorithm::kFast;
  int num_nodes_ = 0;           // user nodes; two more are added for the reduction
  std::vector<int64_t> lower_;  // per user arc
  std::vector<int> arc_from_;   // per internal arc
  std::vector<int> arc_to_;
  std::vector<int64_t> residual_;
  std::vector<int64_t> balance_;
  std::vector<int> first_, next_;  // adjacency as singly linked lists over arc ids
  std::vector<int> level_, current_, queue_;
  std::vector<char> reachable_;
  int num_user_arcs_ = 0;
  int64_t value_ = 0;
};

}  // namespace perseus::planner
