#include "src/planner/cut_network.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace perseus::planner {

CutNetwork::CutNetwork(const Dag& dag)
    : num_computations_(dag.num_nodes()), num_nodes_(2 + 2 * dag.num_nodes()) {
  const int n = num_computations_;
  const std::vector<int>& topo = dag.topological_order();
  position_.assign(n, 0);
  for (int k = 0; k < n; ++k) position_[topo[k]] = k;
  computation_ = topo;
  for (int u : topo) AddArc(In(u), Out(u));  // arc id = position
  dependency_arc_.assign(dag.num_edges(), -1);
  source_arc_.assign(n, -1);
  sink_arc_.assign(n, -1);
  for (int u : topo) {
    if (dag.predecessors(u).empty()) source_arc_[u] = AddArc(kSource, In(u));
    const auto successors = dag.successors(u);
    for (size_t p = 0; p < successors.size(); ++p) {
      dependency_arc_[dag.successor_edge_begin(u) + static_cast<int>(p)] =
          AddArc(Out(u), In(successors[p]));
    }
    if (successors.empty()) sink_arc_[u] = AddArc(Out(u), kSink);
  }
  back_arc_ = AddArc(kSink, kSource);

  const int num_arcs = static_cast<int>(from_.size());
  lower_.assign(num_arcs, 0);
  upper_.assign(num_arcs, 0);
  active_.assign(num_arcs, 0);
  // The half-arcs leaving node v are slots adjacency_begin_[v] ..
  // adjacency_begin_[v+1] (in arc order): a search reads a node's slots in
  // order. Arc a's forward half leaves from_[a], its backward half to_[a].
  adjacency_begin_.assign(num_nodes_ + 1, 0);
  for (int a = 0; a < num_arcs; ++a) {
    ++adjacency_begin_[from_[a] + 1];
    ++adjacency_begin_[to_[a] + 1];
  }
  for (int v = 0; v < num_nodes_; ++v) adjacency_begin_[v + 1] += adjacency_begin_[v];
  const size_t slots = 2 * static_cast<size_t>(num_arcs);
  residual_.assign(slots, 0);
  pair_open_.assign(slots, 0);
  head_.assign(slots, 0);
  pair_.assign(slots, 0);
  forward_slot_.resize(num_arcs);
  backward_slot_.resize(num_arcs);
  std::vector<int> fill(adjacency_begin_.begin(), adjacency_begin_.end() - 1);
  for (int a = 0; a < num_arcs; ++a) {
    const int f = fill[from_[a]]++, b = fill[to_[a]]++;
    forward_slot_[a] = f;
    backward_slot_[a] = b;
    head_[f] = to_[a];
    head_[b] = from_[a];
    pair_[f] = b;
    pair_[b] = f;
  }
  excess_.assign(num_nodes_, 0);
  is_touched_.assign(num_nodes_, 0);
  level_.assign(num_nodes_, -1);
  distance_.assign(num_nodes_, -1);
  current_.assign(num_nodes_, 0);
  parent_.assign(num_nodes_, -1);
  added_in_.assign(num_nodes_, 0);
}

int CutNetwork::AddArc(int from, int to) {
  from_.push_back(from);
  to_.push_back(to);
  return static_cast<int>(from_.size()) - 1;
}

void CutNetwork::SetFlowBounds(int arc, int64_t lower, int64_t upper) {
  const int64_t old_flow = active_[arc] ? Flow(arc) : 0;
  const int64_t flow = std::clamp(old_flow, lower, upper);
  if (flow != old_flow) {
    excess_[to_[arc]] += flow - old_flow;
    excess_[from_[arc]] -= flow - old_flow;
    Touch(to_[arc]);
    Touch(from_[arc]);
  }
  lower_[arc] = lower;
  upper_[arc] = upper;
  SetResidual(forward_slot_[arc], from_[arc], upper - flow);
  SetResidual(backward_slot_[arc], to_[arc], flow - lower);
  if (!active_[arc]) ++num_active_;
  active_[arc] = 1;
}

void CutNetwork::Deactivate(int arc) {
  const int64_t flow = Flow(arc);
  if (flow != 0) {
    excess_[to_[arc]] -= flow;
    excess_[from_[arc]] += flow;
    Touch(to_[arc]);
    Touch(from_[arc]);
  }
  SetResidual(forward_slot_[arc], from_[arc], 0);
  SetResidual(backward_slot_[arc], to_[arc], 0);
  lower_[arc] = upper_[arc] = 0;
  active_[arc] = 0;
  --num_active_;
}

void CutNetwork::SetResidual(int slot, int tail, int64_t residual) {
  // Whether the last cut's source side (the nodes with a level) still holds
  // (see Solve): it does unless a half-arc of its tree runs out.
  if (reach_valid_ && level_[tail] >= 0) {
    if (level_[head_[slot]] >= 0) {
      if (parent_[head_[slot]] == slot && residual <= 0) reach_valid_ = false;
    } else if (residual > 0 && residual_[slot] <= 0) {
      // It had none (its head was not reached); it may lose it again before
      // Solve, which checks.
      seeds_.push_back(slot);
    }
  }
  residual_[slot] = residual;
  pair_open_[pair_[slot]] = residual > 0;
}

bool CutNetwork::Update(int arc, int64_t lower, int64_t upper) {
  assert(0 <= lower && lower <= upper);
  if (active_[arc] && lower_[arc] == lower && upper_[arc] == upper) return false;
  SetFlowBounds(arc, lower, upper);
  return true;
}

bool CutNetwork::Remove(int arc) {
  if (!active_[arc]) return false;
  Deactivate(arc);
  return true;
}

bool CutNetwork::BuildLevels(bool feasibility) {
  // Only the last search's nodes have levels (every node with a level was
  // queued).
  for (int v : queue_) level_[v] = -1;
  queue_.clear();
  sink_level_ = -1;
  if (feasibility) {
    for (int v : excess_nodes_) {
      if (excess_[v] > 0) {
        level_[v] = 0;
        queue_.push_back(v);
      }
    }
  } else {
    level_[kSource] = 0;
    queue_.push_back(kSource);
  }
  for (size_t q = 0; q < queue_.size(); ++q) {
    const int u = queue_[q];
    // Past the level before the sink's, nothing lies on a shortest path.
    if (sink_level_ >= 0 && level_[u] >= sink_level_ - 1) break;
    for (int h = adjacency_begin_[u]; h < adjacency_begin_[u + 1]; ++h) {
      const int v = head_[h];
      if (residual_[h] <= 0 || level_[v] >= 0) continue;
      level_[v] = level_[u] + 1;
      parent_[v] = h;  // the last search's tree (ExtendSourceSide)
      queue_.push_back(v);
      if (sink_level_ < 0) {
        // The sink: the real one, or (feasibility) the virtual super sink one
        // past any node with a deficit.
        if (!feasibility && v == kSink) sink_level_ = level_[v];
        if (feasibility && excess_[v] < 0) sink_level_ = level_[v] + 1;
      }
    }
  }
  return sink_level_ >= 0;
}

int64_t CutNetwork::Push(int u, int64_t limit, bool feasibility) {
  if (!feasibility && u == kSink) return limit;
  int64_t sent = 0;
  if (feasibility && excess_[u] < 0 && level_[u] + 1 == sink_level_) {
    // Into the super sink.
    sent = std::min(limit, -excess_[u]);
    excess_[u] += sent;
    if (sent == limit) return sent;
  }
  for (int& h = current_[u]; h < adjacency_begin_[u + 1]; ++h) {
    const int v = head_[h];
    if (residual_[h] <= 0 || level_[v] != level_[u] + 1) continue;
    const int64_t pushed = Push(v, std::min(limit - sent, residual_[h]), feasibility);
    if (pushed > 0) {
      AddFlow(h, pushed);
      sent += pushed;
      if (sent == limit) return sent;  // keep the arc: it may have room left
    }
  }
  level_[u] = -1;  // nothing more gets through u in this phase
  return sent;
}

int64_t CutNetwork::Dinic(bool feasibility) {
  int64_t total = 0;
  while (BuildLevels(feasibility)) {
    for (int v : queue_) current_[v] = adjacency_begin_[v];  // Push visits levelled nodes only
    if (feasibility) {
      for (int v : excess_nodes_) {
        if (excess_[v] <= 0 || level_[v] != 0) continue;
        const int64_t pushed = Push(v, excess_[v], true);
        excess_[v] -= pushed;
        total += pushed;
      }
    } else {
      const int64_t pushed = Push(kSource, INT64_MAX, false);
      excess_[kSource] -= pushed;
      excess_[kSink] += pushed;
      total += pushed;
    }
  }
  return total;
}

bool CutNetwork::BuildDistancesToSink() {
  for (int v : distance_queue_) distance_[v] = -1;
  distance_queue_.clear();
  distance_[kSink] = 0;
  distance_queue_.push_back(kSink);
  int source_distance = -1;
  for (size_t q = 0; q < distance_queue_.size(); ++q) {
    const int v = distance_queue_[q];
    // Past the level before the source's, nothing lies on a shortest path.
    if (source_distance >= 0 && distance_[v] >= source_distance - 1) break;
    for (int h = adjacency_begin_[v]; h < adjacency_begin_[v + 1]; ++h) {
      const int u = head_[h];  // the half-arc u -> v is pair_[h]
      if (!pair_open_[h] || distance_[u] >= 0) continue;
      distance_[u] = distance_[v] + 1;
      distance_queue_.push_back(u);
      if (u == kSource) source_distance = distance_[u];
    }
  }
  return source_distance >= 0;
}

int64_t CutNetwork::PushTowardSink(int u, int64_t limit) {
  if (u == kSink) return limit;
  int64_t sent = 0;
  for (int& h = current_[u]; h < adjacency_begin_[u + 1]; ++h) {
    const int v = head_[h];
    if (residual_[h] <= 0 || distance_[v] != distance_[u] - 1) continue;
    const int64_t pushed = PushTowardSink(v, std::min(limit - sent, residual_[h]));
    if (pushed > 0) {
      AddFlow(h, pushed);
      sent += pushed;
      if (sent == limit) return sent;
    }
  }
  distance_[u] = -1;  // nothing more gets through u in this phase
  return sent;
}

void CutNetwork::AugmentFromSinkSide() {
  // Dinic's phases with levels counted back from the sink: a search visits
  // the nodes that reach the sink, usually far fewer than those the source
  // reaches.
  while (BuildDistancesToSink()) {
    for (int v : distance_queue_) current_[v] = adjacency_begin_[v];
    const int64_t pushed = PushTowardSink(kSource, INT64_MAX);
    excess_[kSource] -= pushed;
    excess_[kSink] += pushed;
    // (A search that reaches the source always lets some flow through; were
    // it not so, the search from the source after this finishes the job.)
    if (pushed == 0) break;
  }
}

bool CutNetwork::PairRecordsHold() const {
  for (size_t h = 0; h < residual_.size(); ++h) {
    if ((pair_open_[h] != 0) != (residual_[static_cast<size_t>(pair_[h])] > 0)) return false;
  }
  return true;
}

bool CutNetwork::AugmentAlongTree(int tail, int sink_slot) {
  int64_t amount = residual_[sink_slot];
  for (int v = tail; v != kSource; v = Tail(parent_[v])) {
    amount = std::min(amount, residual_[parent_[v]]);
  }
  AddFlow(sink_slot, amount);
  bool old_side_holds = true;
  for (int v = tail; v != kSource; v = Tail(parent_[v])) {
    const int h = parent_[v];
    AddFlow(h, amount);
    if (residual_[h] <= 0 && added_in_[v] != extension_) old_side_holds = false;
  }
  excess_[kSource] -= amount;
  excess_[kSink] += amount;
  return old_side_holds;
}

bool CutNetwork::ExtendSourceSide() {
  if (!reach_valid_) return false;
  for (int v : touched_) {
    if (v != kSource && v != kSink && excess_[v] != 0) return false;
  }
  // The flow is still feasible (every node but the source and the sink
  // balanced, every arc within its bounds) and every node of the last
  // source side is still reachable from the source along its tree: the
  // residual network only gained half-arcs leaving it (seeds_). The nodes
  // reachable now are that side and what those half-arcs reach. If the sink
  // is not among them, no augmenting path exists: the flow is maximum and
  // they are the new cut's source side. If it is, augment along the tree
  // path: the half-arcs of the path lose residual capacity (their reverses,
  // inside the tree, and the sink's gain some). If none of the old side's
  // ran out, it keeps its tree and the half-arcs leaving it are still
  // seeds_: drop the extension and search again. (A bounded number of
  // times; then the full solve, from the flow so far.)
  constexpr int kMaxAugmentations = 64;
  ++extension_;
  const size_t begin = queue_.size();
  for (int augmentations = 0;; ++augmentations) {
    int sink_tail = -1, sink_slot = -1;
    auto reach = [&](int u, int h) {  // whether h reaches the sink
      const int v = head_[h];
      if (residual_[h] <= 0 || level_[v] >= 0) return false;
      if (v == kSink) {
        sink_tail = u;
        sink_slot = h;
        return true;
      }
      level_[v] = 0;
      parent_[v] = h;
      added_in_[v] = extension_;
      queue_.push_back(v);
      return false;
    };
    bool found = false;
    for (size_t s = 0; s < seeds_.size() && !found; ++s) found = reach(Tail(seeds_[s]), seeds_[s]);
    for (size_t q = begin; q < queue_.size() && !found; ++q) {
      const int u = queue_[q];
      for (int h = adjacency_begin_[u]; h < adjacency_begin_[u + 1] && !found; ++h) {
        found = reach(u, h);
      }
    }
    if (!found) {
      if (augmentations > 0) ++augmented_extensions_;
      return true;
    }
    if (!AugmentAlongTree(sink_tail, sink_slot) || augmentations + 1 == kMaxAugmentations) {
      return false;
    }
    for (size_t q = begin; q < queue_.size(); ++q) level_[queue_[q]] = -1;
    queue_.resize(begin);
  }
}

Status CutNetwork::Solve() {
  added_nodes_begin_ = reach_valid_ ? queue_.size() : 0;
  const bool extended = ExtendSourceSide();
  if (!extended) added_nodes_begin_ = 0;
  seeds_.clear();
  if (extended) {  // reach_valid_ stays: the levels are the new source side
    for (int v : touched_) is_touched_[v] = 0;
    touched_.clear();
    value_ = -excess_[kSource];
    ++extended_solves_;
    return Status::Ok();
  }
  reach_valid_ = false;  // until the full solve's last search (not if it fails)
  // 1. Feasibility: route every excess to a deficit, through the network
  // and an infinite arc sink -> source.
  // Only the source, the sink and nodes whose flow balance changed since the
  // last Solve can have an excess (a Solve leaves every other node balanced).
  Touch(kSource);
  Touch(kSink);
  std::sort(touched_.begin(), touched_.end());
  excess_nodes_.clear();
  int64_t need = 0;
  for (int v : touched_) {
    is_touched_[v] = 0;
    if (excess_[v] > 0) {
      excess_nodes_.push_back(v);
      need += excess_[v];
    }
  }
  touched_.clear();
  if (need > 0) {
    residual_[forward_slot_[back_arc_]] = kInfinite;
    residual_[backward_slot_[back_arc_]] = 0;
    pair_open_[backward_slot_[back_arc_]] = 1;
    pair_open_[forward_slot_[back_arc_]] = 0;
    const int64_t routed = Dinic(true);
    // What circulated through sink -> source stays as source -> sink flow
    // on the network's arcs.
    const int64_t back = residual_[backward_slot_[back_arc_]];
    residual_[forward_slot_[back_arc_]] = 0;
    residual_[backward_slot_[back_arc_]] = 0;
    pair_open_[backward_slot_[back_arc_]] = 0;
    pair_open_[forward_slot_[back_arc_]] = 0;
    excess_[kSink] += back;
    excess_[kSource] -= back;
    if (routed != need) {
      return Status::Infeasible("no flow meets the lower bounds (" + std::to_string(routed) +
                                " of " + std::to_string(need) + " routed)");
    }
  }
  // 2. Augment source -> sink. The last breadth-first search, which does not
  // reach the sink, leaves level_ >= 0 on exactly the nodes reachable from
  // the source in the residual network.
  AugmentFromSinkSide();
  Dinic(false);  // one search: the source side
  value_ = -excess_[kSource];
  reach_valid_ = true;
  return Status::Ok();
}

}  // namespace perseus::planner
