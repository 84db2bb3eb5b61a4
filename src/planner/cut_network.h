// The frontier sweep's critical networks as one flow network over the whole
// DAG, kept from step to step (the fast solver's; the reference builds each
// network afresh in a LowerBoundedMaxFlow, max_flow.h).
//
// Every computation i is an arc In(i) -> Out(i), every dependency u -> v an
// arc Out(u) -> In(v), every computation without predecessors has an arc
// from the source and every one without successors an arc to the sink: the
// activity-on-arc form of the whole DAG, built once. A step's network is the
// subset of those arcs the sweep puts in (Update, arc by arc where they
// changed; Remove), with their bounds; all others carry no flow. Flows stay on the arcs from
// one Solve to the next, clamped into the new bounds (0 on arcs that left),
// so each Solve only routes what the changes unbalanced (the warm start of
// max_flow.h, without rebuilding the network).
//
// Solve is max_flow.h's reduction and Dinic's algorithm (its fast variant):
// route the imbalances from nodes with excess to nodes with a deficit (a
// virtual super source and sink, and an arc sink -> source of infinite
// capacity), then augment source -> sink, with Dinic's levels counted back
// from the sink (a search visits the nodes that still reach the sink, far
// fewer than those the source reaches on the sweep's networks); the source
// side of the minimum cut is the set of nodes that one breadth-first search
// from the source then reaches.
// That set is the same for every maximum flow (the minimum cut with the
// smallest source side), so this network and a fresh LowerBoundedMaxFlow of
// the same arcs give the same cut (tested).
//
// Most steps change little, and Solve first tries to skip the search. The
// last search left a tree of residual half-arcs from the source spanning the
// cut's source side. If the changes left the flow feasible (no node
// unbalanced) and took no residual capacity from a half-arc of that tree,
// every node of that side is still reachable from the source, and the nodes
// reachable now are that side plus what the half-arcs that gained capacity
// reach from it: a search from those extends the tree. If it reaches the
// sink, the flow is augmented along the tree path (Ford and Fulkerson); if
// every half-arc that ran out on the way lies in the extension, the old side
// keeps its tree, and the extension is searched again. A search that ends
// without the sink leaves a maximum flow, and the tree's nodes are the new
// cut's (smallest) source side (extended_solves; augmented_extensions:
// those that augmented). Otherwise Solve runs in full from the flow so far.
//
// Capacities are integers; kInfinite stands for an infinite upper bound and
// must exceed every finite cut (callers keep the sum of finite capacities
// below 2^60), and no source-sink path may be all infinite (the solver
// detects T_min before).
#pragma once

#include <cstdint>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/dag.h"

namespace perseus::planner {

class CutNetwork {
 public:
  static constexpr int64_t kInfinite = int64_t{1} << 61;
  static constexpr int kSource = 0, kSink = 1;

  explicit CutNetwork(const Dag& dag);

  // Node ids of a computation's arc (numbered in topological order, which
  // the searches mostly follow, for locality).
  int In(int computation) const { return 2 + 2 * position_[computation]; }
  int Out(int computation) const { return 3 + 2 * position_[computation]; }
  // Arc ids. SourceArc / SinkArc: -1 for computations with predecessors /
  // successors (which have none).
  int ComputationArc(int i) const { return position_[i]; }
  int DependencyArc(int edge) const { return dependency_arc_[edge]; }
  int SourceArc(int i) const { return source_arc_[i]; }
  int SinkArc(int i) const { return sink_arc_[i]; }

  // Puts `arc` into the network with these bounds, or changes them; returns
  // whether anything changed. REQUIRES: 0 <= lower <= upper (upper may be
  // kInfinite).
  bool Update(int arc, int64_t lower, int64_t upper);
  // Takes `arc` out of the network; returns whether it was in.
  bool Remove(int arc);

  // Maximum flow from the source to the sink. kInfeasible if no flow meets
  // the lower bounds.
  Status Solve();
  // After Solve: whether `node` is on the source side of the minimum cut.
  bool OnSourceSide(int node) const { return level_[node] >= 0; }
  // After Solve: the flow's value.
  int64_t value() const { return value_; }
  // Arcs in the network.
  int64_t num_active_arcs() const { return num_active_; }
  // After Solve: the nodes on the source side of the minimum cut (the last
  // search's, in no particular order), and the computation a node's arc
  // belongs to (for nodes other than the source and the sink).
  const std::vector<int>& source_side() const { return queue_; }
  // After Solve: where in source_side() the nodes the last Solve added to the
  // one before begin, if it only added nodes (it extended that side); else 0
  // (every node may have changed).
  size_t added_nodes_begin() const { return added_nodes_begin_; }
  int ComputationOf(int node) const { return computation_[(node - 2) / 2]; }
  static bool IsOut(int node) { return node % 2 == 1; }
  // Solves that found the cut by extending the last one's source side, and
  // how many of them augmented the flow on the way (Solve).
  int64_t extended_solves() const { return extended_solves_; }
  int64_t augmented_extensions() const { return augmented_extensions_; }
  // For tests: whether every half-arc's record of its pair's residual
  // capacity (pair_open_) is right.
  bool PairRecordsHold() const;
  // After Solve: flow on an active arc.
  int64_t Flow(int arc) const { return lower_[arc] + residual_[backward_slot_[arc]]; }

 private:
  int AddArc(int from, int to);
  void SetFlowBounds(int arc, int64_t lower, int64_t upper);
  void Deactivate(int arc);
  void SetResidual(int slot, int tail, int64_t residual);
  bool ExtendSourceSide();
  bool AugmentAlongTree(int tail, int sink_slot);
  int Tail(int slot) const { return head_[pair_[slot]]; }
  // Sends `amount` more along half-arc `slot` (its residual falls, its other
  // half's rises).
  void AddFlow(int slot, int64_t amount) {
    residual_[slot] -= amount;
    residual_[pair_[slot]] += amount;
    pair_open_[pair_[slot]] = residual_[slot] > 0;
    pair_open_[slot] = residual_[pair_[slot]] > 0;
  }
  bool BuildLevels(bool feasibility);
  int64_t Push(int u, int64_t limit, bool feasibility);
  int64_t Dinic(bool feasibility);
  bool BuildDistancesToSink();
  int64_t PushTowardSink(int u, int64_t limit);
  void AugmentFromSinkSide();
  void Touch(int node) {
    if (!is_touched_[node]) is_touched_[node] = 1, touched_.push_back(node);
  }

  int num_computations_ = 0;
  int num_nodes_ = 0;
  std::vector<int> position_;     // per computation: its place in the topological order
  std::vector<int> computation_;  // per place: the computation
  int64_t num_active_ = 0;        // arcs in the network
  std::vector<int> dependency_arc_, source_arc_, sink_arc_;
  int back_arc_ = -1;  // sink -> source, during the feasibility phase only
  // Per arc: endpoints, bounds, and whether it is in the network.
  std::vector<int> from_, to_;
  std::vector<int64_t> lower_, upper_;
  std::vector<char> active_;
  // Per half-arc (a slot of its tail's adjacency, adjacency_begin_[v] ..
  // adjacency_begin_[v+1] for the ones leaving v): residual capacity (0
  // when its arc is not in the network), the node it enters, and the slot
  // of the other half of its arc, each in its own array (the searches read
  // only the first two). Per arc: its forward and backward slots.
  std::vector<int64_t> residual_;
  std::vector<int> head_, pair_;
  // Per half-arc: whether the other half has residual capacity (the search
  // from the sink reads it in order).
  std::vector<char> pair_open_;
  std::vector<int> adjacency_begin_;
  std::vector<int> forward_slot_, backward_slot_;
  // Inflow minus outflow per node; the nodes with excess when Solve began.
  std::vector<int64_t> excess_;
  std::vector<int> excess_nodes_;
  // Nodes whose balance changed since the last Solve (Touch).
  std::vector<int> touched_;
  std::vector<char> is_touched_;
  // Dinic's state.
  std::vector<int> level_, current_, queue_;
  int sink_level_ = -1;
  // The augmenting phase's distances to the sink in the residual network
  // (-1: none, or past the source's), and the nodes that have one.
  std::vector<int> distance_, distance_queue_;
  int64_t value_ = 0;
  // Whether the nodes with a level are still the source side of the last
  // Solve's cut, all reachable from the source along the tree of parent_
  // (per node, the half-arc into it from its parent; no half-arc of the
  // tree lost its residual capacity since), and the half-arcs from there to
  // nodes without a level that gained some (seeds_, slots).
  bool reach_valid_ = false;
  std::vector<int> parent_;
  std::vector<int> seeds_;
  // Per node: the Solve whose extension added it (extension_).
  std::vector<int64_t> added_in_;
  int64_t extension_ = 0;
  int64_t extended_solves_ = 0, augmented_extensions_ = 0;
  size_t added_nodes_begin_ = 0;
};

}  // namespace perseus::planner
