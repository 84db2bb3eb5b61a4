#include "src/planner/max_flow.h"

#include <algorithm>
#include <cassert>

namespace perseus::planner {

void LowerBoundedMaxFlow::Reset(int num_nodes) {
  num_nodes_ = num_nodes;
  lower_.clear();
  arc_from_.clear();
  arc_to_.clear();
  residual_.clear();
  balance_.assign(num_nodes + 2, 0);
  first_.assign(num_nodes + 2, -1);
  next_.clear();
  num_user_arcs_ = 0;
  value_ = 0;
}

int LowerBoundedMaxFlow::AddInternalArc(int from, int to, int64_t cap) {
  int id = static_cast<int>(arc_to_.size());
  arc_from_.push_back(from);
  arc_to_.push_back(to);
  residual_.push_back(cap);
  next_.push_back(first_[from]);
  first_[from] = id;
  arc_from_.push_back(to);
  arc_to_.push_back(from);
  residual_.push_back(0);
  next_.push_back(first_[to]);
  first_[to] = id + 1;
  return id;
}

int LowerBoundedMaxFlow::AddArcWithFlow(int from, int to, int64_t lower, int64_t upper,
                                        int64_t flow) {
  assert(0 <= lower && lower <= upper);
  assert(num_user_arcs_ * 2 == static_cast<int>(arc_to_.size()));
  flow = std::clamp(flow, lower, upper);
  int id = AddInternalArc(from, to, upper - flow);
  residual_[id + 1] = flow - lower;  // room to send flow back down to the lower bound
  lower_.push_back(lower);
  balance_[to] += flow;
  balance_[from] -= flow;
  ++num_user_arcs_;
  return id / 2;
}

int64_t LowerBoundedMaxFlow::Flow(int arc) const {
  // Flow above the lower bound sits on the reverse arc.
  return lower_[arc] + residual_[2 * arc + 1];
}

bool LowerBoundedMaxFlow::BuildLevels(int s, int t) {
  const int n = static_cast<int>(first_.size());
  level_.assign(n, -1);
  queue_.clear();
  level_[s] = 0;
  queue_.push_back(s);
  const bool stop_at_sink = algorithm_ == Algorithm::kFast;
  for (size_t head = 0; head < queue_.size(); ++head) {
    int u = queue_[head];
    // Nodes at the sink's level or beyond lie on no shortest path.
    if (stop_at_sink && level_[t] >= 0 && level_[u] >= level_[t]) break;
    for (int a = first_[u]; a >= 0; a = next_[a]) {
      int v = arc_to_[a];
      if (residual_[a] > 0 && level_[v] < 0) {
        level_[v] = level_[u] + 1;
        queue_.push_back(v);
      }
    }
  }
  return level_[t] >= 0;
}

int64_t LowerBoundedMaxFlow::PushAll(int u, int t, int64_t limit) {
  if (u == t) return limit;
  int64_t sent = 0;
  for (int& a = current_[u]; a >= 0; a = next_[a]) {
    int v = arc_to_[a];
    if (residual_[a] > 0 && level_[v] == level_[u] + 1) {
      int64_t pushed = PushAll(v, t, std::min(limit - sent, residual_[a]));
      if (pushed > 0) {
        residual_[a] -= pushed;
        residual_[a ^ 1] += pushed;
        sent += pushed;
        if (sent == limit) return sent;  // keep the arc: it may have room left
      }
    }
  }
  level_[u] = -1;  // nothing more gets through u in this phase
  return sent;
}

int64_t LowerBoundedMaxFlow::Push(int u, int t, int64_t limit) {
  if (u == t) return limit;
  for (int& a = current_[u]; a >= 0; a = next_[a]) {
    int v = arc_to_[a];
    if (residual_[a] > 0 && level_[v] == level_[u] + 1) {
      int64_t pushed = Push(v, t, std::min(limit, residual_[a]));
      if (pushed > 0) {
        residual_[a] -= pushed;
        residual_[a ^ 1] += pushed;
        return pushed;
      }
    }
  }
  return 0;
}

int64_t LowerBoundedMaxFlow::Dinic(int s, int t) {
  int64_t total = 0;
  while (BuildLevels(s, t)) {
    current_ = first_;
    if (algorithm_ == Algorithm::kFast) {
      total += PushAll(s, t, INT64_MAX);
      continue;
    }
    for (;;) {
      int64_t pushed = Push(s, t, INT64_MAX);
      if (pushed == 0) break;
      total += pushed;
    }
  }
  return total;
}

Status LowerBoundedMaxFlow::Solve(int source, int sink, int64_t infinity) {
  const int super_source = num_nodes_, super_sink = num_nodes_ + 1;
  // Arc t->s lets the feasibility flow circulate through the network.
  const int back_arc = AddInternalArc(sink, source, infinity);
  int64_t need = 0;
  for (int v = 0; v < num_nodes_; ++v) {
    if (balance_[v] > 0) {
      AddInternalArc(super_source, v, balance_[v]);
      need += balance_[v];
    } else if (balance_[v] < 0) {
      AddInternalArc(v, super_sink, -balance_[v]);
    }
  }
  int64_t feasible = need > 0 ? Dinic(super_source, super_sink) : 0;
  if (feasible != need) {
    return Status::Infeasible("no flow meets the lower bounds (" + std::to_string(feasible) +
                              " of " + std::to_string(need) + " routed)");
  }
  // Drop the helper arcs (what circulated through t->s stays as s->t flow on
  // the user arcs), then augment s->t.
  for (int a = back_arc; a < static_cast<int>(arc_to_.size()); ++a) residual_[a] = 0;
  Dinic(source, sink);
  value_ = 0;
  for (int arc = 0; arc < num_user_arcs_; ++arc) {
    if (arc_from_[2 * arc] == source) value_ += Flow(arc);
    if (arc_to_[2 * arc] == source) value_ -= Flow(arc);
  }

  // Source side of a minimum cut: reachable from s in the residual network.
  reachable_.assign(first_.size(), 0);
  queue_.clear();
  queue_.push_back(source);
  reachable_[source] = 1;
  for (size_t head = 0; head < queue_.size(); ++head) {
    int u = queue_[head];
    for (int a = first_[u]; a >= 0; a = next_[a]) {
      int v = arc_to_[a];
      if (residual_[a] > 0 && !reachable_[v]) {
        reachable_[v] = 1;
        queue_.push_back(v);
      }
    }
  }
  return Status::Ok();
}

}  // namespace perseus::planner
