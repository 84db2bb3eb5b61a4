#include "src/planner/plan_state.h"

#include <algorithm>
#include <limits>

#include "src/planner/timing.h"

namespace perseus::planner {

PlanState::PlanState(const Problem& problem, Plan plan)
    : problem_(problem), dag_(*problem.dag), plan_(std::move(plan)) {
  const int n = dag_.num_nodes();
  t_.resize(n);
  for (int i = 0; i < n; ++i) t_[i] = problem_.option(i, plan_[i]).time_s;
  EarliestStarts(dag_, t_, &es_);
  LongestTails(dag_, t_, &tail_);
  visits_ += 2 * static_cast<int64_t>(n);
  const std::vector<int>& topo = dag_.topological_order();
  position_.resize(n);
  for (int p = 0; p < n; ++p) position_[topo[p]] = p;
  for (int i = 0; i < n; ++i) {
    if (dag_.predecessors(i).empty()) sources_.push_back(i);
    if (dag_.successors(i).empty()) sinks_.push_back(i);
  }
  queued_.assign(n, 0);
  changed_in_.assign(n, 0);
  journaled_in_.assign(3 * static_cast<size_t>(n), 0);
  version_.assign(n, 0);
  seen_.assign(n, -1);
  Commit();
}

double PlanState::makespan() const {
  double m = 0;
  for (int s : sinks_) m = std::max(m, es_[s] + t_[s]);
  return m;
}

Figures PlanState::figures() const {
  return RealizedFigures(problem_, makespan(), sum_energy_, sum_time_);
}

void PlanState::Touch(int i) {
  touched_.push_back(i);
  if (changed_in_[i] == mark_) return;
  changed_in_[i] = mark_;
  changed_.push_back(i);
}

void PlanState::Journal(Kind kind, int node, double old_value) {
  // Undo needs only the value at the mark: the first one overwritten.
  uint32_t& stamp = journaled_in_[3 * static_cast<size_t>(node) + static_cast<size_t>(kind)];
  if (stamp == mark_) return;
  stamp = mark_;
  journal_.push_back({kind, node, old_value});
}

void PlanState::SetOption(int i, int k) {
  if (journaling_) Journal(Kind::kOption, i, static_cast<double>(plan_[i]));
  const Option& old = problem_.option(i, plan_[i]);
  const Option& now = problem_.option(i, k);
  sum_energy_ += now.energy_j - old.energy_j;
  sum_time_ += now.time_s - old.time_s;
  plan_[i] = k;
  t_[i] = now.time_s;
  touched_.clear();
  Touch(i);
  Forward(i);
  Backward(i);
}

void PlanState::Forward(int b) {
  for (int v : dag_.successors(b)) Queue(v, &forward_);
  while (!forward_.empty()) {
    const int v = dag_.topological_order()[forward_.top()];
    forward_.pop();
    queued_[v] = 0;
    ++visits_;
    double start = 0;
    for (int u : dag_.predecessors(v)) start = std::max(start, es_[u] + t_[u]);
    if (start == es_[v]) continue;
    if (journaling_) Journal(Kind::kStart, v, es_[v]);
    es_[v] = start;
    Touch(v);
    for (int w : dag_.successors(v)) Queue(w, &forward_);
  }
}

void PlanState::Backward(int b) {
  for (int u : dag_.predecessors(b)) Queue(u, &backward_);
  while (!backward_.empty()) {
    const int u = dag_.topological_order()[backward_.top()];
    backward_.pop();
    queued_[u] = 0;
    ++visits_;
    double tail = 0;
    for (int v : dag_.successors(u)) tail = std::max(tail, t_[v] + tail_[v]);
    if (tail == tail_[u]) continue;
    if (journaling_) Journal(Kind::kTail, u, tail_[u]);
    tail_[u] = tail;
    Touch(u);
    for (int p : dag_.predecessors(u)) Queue(p, &backward_);
  }
}

bool PlanState::Repair(double deadline_s, int64_t max_visits) {
  const double eps = DeadlineTolerance(deadline_s);
  double m = makespan();
  visits_ += static_cast<int64_t>(sinks_.size());
  while (m > deadline_s + eps) {
    if (visits_ >= max_visits) return false;
    auto critical = [&](int i) { return es_[i] + t_[i] + tail_[i] >= m - eps; };
    ++round_;
    int best = -1;
    double best_rate = std::numeric_limits<double>::infinity();
    stack_.clear();
    for (int s : sources_) {
      if (critical(s)) seen_[s] = round_, stack_.push_back(s);
    }
    while (!stack_.empty()) {
      const int u = stack_.back();
      stack_.pop_back();
      ++visits_;
      if (plan_[u] > 0) {
        const Option& cur = problem_.option(u, plan_[u]);
        const Option& faster = problem_.option(u, plan_[u] - 1);
        const double rate = (faster.effective_j - cur.effective_j) / (cur.time_s - faster.time_s);
        if (rate < best_rate || (rate == best_rate && u < best)) {
          best_rate = rate;
          best = u;
        }
      }
      const double finish = es_[u] + t_[u];
      for (int v : dag_.successors(u)) {
        if (seen_[v] != round_ && es_[v] == finish && critical(v)) {
          seen_[v] = round_;
          stack_.push_back(v);
        }
      }
    }
    if (best < 0) return false;  // every critical computation is at its fastest
    SetOption(best, plan_[best] - 1);
    m = makespan();
    visits_ += static_cast<int64_t>(sinks_.size());
  }
  return true;
}

bool PlanState::Refine(double deadline_s, bool all, int64_t max_visits) {
  const double eps = DeadlineTolerance(deadline_s);
  auto below = [](const Move& a, const Move& b) {
    return a.gain < b.gain || (a.gain == b.gain && a.node > b.node);
  };
  // A heap of offers; an offer is stale once its computation has a newer
  // one (version), and is skipped when it comes out. Stale offers are
  // dropped whenever they could outnumber the live ones (at most one per
  // computation): the heap stays O(V), and the live offers, all distinct
  // in (gain, node), come out in the same order.
  std::vector<Move>& moves = moves_;
  moves.clear();
  const size_t compact_at = 2 * static_cast<size_t>(dag_.num_nodes()) + 1024;
  auto offer = [&](int i) {
    ++visits_;
    ++version_[i];
    const std::vector<Option>& options = problem_.set(i).options;
    // The longest time i may take (a fit within eps: the chain of latest
    // finishes and the tail round differently).
    const double room = (deadline_s - tail_[i]) - es_[i] + eps;
    int k = plan_[i];
    while (k + 1 < static_cast<int>(options.size()) && options[k + 1].time_s <= room) ++k;
    const double gain = options[plan_[i]].effective_j - options[k].effective_j;
    if (k != plan_[i] && gain > 0) {
      if (moves.size() >= compact_at) {
        std::erase_if(moves, [&](const Move& m) { return m.version != version_[m.node]; });
        std::make_heap(moves.begin(), moves.end(), below);
      }
      moves.push_back({gain, i, k, version_[i]});
      std::push_heap(moves.begin(), moves.end(), below);
    }
  };
  if (all) {
    for (int i = 0; i < dag_.num_nodes(); ++i) offer(i);
  } else {
    for (int i : changed_) offer(i);
  }
  while (!moves.empty()) {
    if (visits_ >= max_visits) return false;
    std::pop_heap(moves.begin(), moves.end(), below);
    const Move m = moves.back();
    moves.pop_back();
    if (m.version != version_[m.node]) continue;
    SetOption(m.node, m.option);
    for (int i : touched_) offer(i);  // their rooms (or option) changed
  }
  return true;
}

void PlanState::Mark() {
  journaling_ = true;
  journal_.clear();
  changed_.clear();
  ++mark_;
  marked_energy_ = sum_energy_;
  marked_time_ = sum_time_;
}

void PlanState::Undo() {
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) {
    switch (it->kind) {
      case Kind::kOption:
        plan_[it->node] = static_cast<int>(it->value);
        t_[it->node] = problem_.option(it->node, plan_[it->node]).time_s;
        break;
      case Kind::kStart:
        es_[it->node] = it->value;
        break;
      case Kind::kTail:
        tail_[it->node] = it->value;
        break;
    }
  }
  sum_energy_ = marked_energy_;
  sum_time_ = marked_time_;
  journal_.clear();
  changed_.clear();
  journaling_ = false;
  ++mark_;
}

void PlanState::Commit() {
  journal_.clear();
  changed_.clear();
  journaling_ = false;
  ++mark_;
  sum_energy_ = sum_time_ = 0;
  for (int i : problem_.dag->topological_order()) {  // EvaluatePlan's order
    const Option& o = problem_.option(i, plan_[static_cast<size_t>(i)]);
    sum_energy_ += o.energy_j;
    sum_time_ += o.time_s;
  }
  visits_ += static_cast<int64_t>(plan_.size());
}

}  // namespace perseus::planner
