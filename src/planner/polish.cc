// PolishPlan (realized.h), incrementally: after each move only the times it
// changes are recomputed, so a polish costs what its moves change, not a
// pass over the DAG per move (testing/polish_reference.h is the textbook
// version; the tests check the two make the same moves).
//
// Every earliest start, latest finish and tail is recomputed from its
// neighbours exactly as a full pass computes it (a max or min over the same
// sums), so the values are the full pass's bit for bit, and so are the
// choices made from them.
#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <vector>

#include "perseus/planner/realized.h"
#include "src/planner/timing.h"

namespace perseus::planner {
namespace {

// Two real times closer than this (relative to the iteration time) are equal.
constexpr double kRelativeTimeTolerance = 1e-9;

// Longest-path times under durations t, kept up to date one changed
// duration at a time: earliest starts (forward) and either latest finishes
// against a deadline or tails (backward). Counts the computations visited.
class Times {
 public:
  Times(const Dag& dag, std::vector<double>* t) : dag_(dag), t_(*t) {
    const std::vector<int>& topo = dag.topological_order();
    const int n = dag.num_nodes();
    position_.resize(n);
    for (int p = 0; p < n; ++p) position_[topo[p]] = p;
    queued_.assign(n, 0);
  }

  std::vector<double> es, back;  // earliest starts; latest finishes or tails
  int64_t visits = 0;

  // After t[b] changed: earliest starts of b's descendants; appends the
  // computations whose start changed to *changed.
  void Forward(int b, std::vector<int>* changed) {
    for (int v : dag_.successors(b)) Queue(v, &forward_);
    while (!forward_.empty()) {
      const int v = dag_.topological_order()[forward_.top()];
      forward_.pop();
      queued_[v] = 0;
      ++visits;
      double start = 0;
      for (int u : dag_.predecessors(v)) start = std::max(start, es[u] + t_[u]);
      if (start == es[v]) continue;
      es[v] = start;
      changed->push_back(v);
      for (int w : dag_.successors(v)) Queue(w, &forward_);
    }
  }

  // After t[b] changed: latest finishes against `deadline` (tails if
  // `tails`) of b's ancestors, as LatestFinishes (LongestTails) computes them.
  void Backward(int b, bool tails, double deadline, std::vector<int>* changed) {
    for (int u : dag_.predecessors(b)) Queue(u, &backward_);
    while (!backward_.empty()) {
      const int u = dag_.topological_order()[backward_.top()];
      backward_.pop();
      queued_[u] = 0;
      ++visits;
      double value = tails ? 0 : deadline;
      for (int v : dag_.successors(u)) {
        value = tails ? std::max(value, t_[v] + back[v]) : std::min(value, back[v] - t_[v]);
      }
      if (value == back[u]) continue;
      back[u] = value;
      changed->push_back(u);
      for (int p : dag_.predecessors(u)) Queue(p, &backward_);
    }
  }

 private:
  template <typename Heap>
  void Queue(int v, Heap* heap) {
    if (queued_[v]) return;
    queued_[v] = 1;
    heap->push(position_[v]);
  }

  const Dag& dag_;
  const std::vector<double>& t_;
  std::vector<int> position_;
  std::vector<char> queued_;
  std::priority_queue<int, std::vector<int>, std::greater<>> forward_;  // topological positions
  std::priority_queue<int> backward_;
};

}  // namespace

Plan PolishPlan(const Problem& problem, Plan plan, double deadline_s, int64_t* work,
                int64_t max_work) {
  const Dag& dag = *problem.dag;
  const int n = dag.num_nodes();
  const double eps = kRelativeTimeTolerance * std::max(1.0, deadline_s);
  std::vector<double> t(n);
  for (int i = 0; i < n; ++i) t[i] = problem.option(i, plan[i]).time_s;
  Times times(dag, &t);
  int64_t passes = 0;
  std::vector<int> changed;
  auto charge = [&] {
    if (work != nullptr) *work += passes * n + times.visits;
  };

  // 1. Repair: while the iteration time exceeds the deadline, speed up the
  // critical computation (on a longest path, within eps) with the lowest
  // energy cost per second saved (the lowest index among equal ones). The
  // critical computations are found from the sources along tight
  // dependencies (every one is reached: its earliest start is some
  // predecessor's finish, and that predecessor is critical too).
  double makespan = EarliestStarts(dag, t, &times.es);
  ++passes;
  if (makespan > deadline_s + eps) {
    LongestTails(dag, t, &times.back);
    ++passes;
    std::vector<int> sources, sinks, stack;
    for (int i = 0; i < n; ++i) {
      if (dag.predecessors(i).empty()) sources.push_back(i);
      if (dag.successors(i).empty()) sinks.push_back(i);
    }
    std::vector<int> seen(n, -1);  // the round that last reached i
    auto critical = [&](int i) { return times.es[i] + t[i] + times.back[i] >= makespan - eps; };
    for (int round = 0; makespan > deadline_s + eps; ++round) {
      int best = -1;
      double best_rate = std::numeric_limits<double>::infinity();
      stack.clear();
      for (int s : sources) {
        if (critical(s)) seen[s] = round, stack.push_back(s);
      }
      while (!stack.empty()) {
        const int u = stack.back();
        stack.pop_back();
        ++times.visits;
        if (plan[u] > 0) {
          const Option& cur = problem.option(u, plan[u]);
          const Option& faster = problem.option(u, plan[u] - 1);
          const double rate = (faster.effective_j - cur.effective_j) / (cur.time_s - faster.time_s);
          if (rate < best_rate || (rate == best_rate && u < best)) {
            best_rate = rate;
            best = u;
          }
        }
        const double finish = times.es[u] + t[u];
        for (int v : dag.successors(u)) {
          if (seen[v] != round && times.es[v] == finish && critical(v)) {
            seen[v] = round;
            stack.push_back(v);
          }
        }
      }
      if (best < 0) {  // every critical computation is at its fastest
        charge();
        return plan;
      }
      --plan[best];
      t[best] = problem.option(best, plan[best]).time_s;
      changed.clear();
      times.Forward(best, &changed);
      times.Backward(best, /*tails=*/true, 0, &changed);
      makespan = 0;
      for (int s : sinks) makespan = std::max(makespan, times.es[s] + t[s]);
      times.visits += static_cast<int64_t>(sinks.size());
    }
  }

  // 2. Refine: slow down the computation whose room (latest finish against
  // the deadline minus earliest start) buys the largest saving (the lowest
  // index among equal ones), until none fits. The best move is the top of a
  // heap; entries of computations changed since they were offered are
  // skipped.
  LatestFinishes(dag, t, deadline_s, &times.back);
  ++passes;
  struct Move {
    double gain;
    int node, option, version;
  };
  auto below = [](const Move& a, const Move& b) {
    return a.gain < b.gain || (a.gain == b.gain && a.node > b.node);
  };
  std::priority_queue<Move, std::vector<Move>, decltype(below)> moves(below);
  std::vector<int> version(n, 0);
  auto offer = [&](int i) {
    ++times.visits;
    ++version[i];
    const std::vector<Option>& options = problem.set(i).options;
    const double room = times.back[i] - times.es[i];  // the longest time i may take
    int k = plan[i];
    while (k + 1 < static_cast<int>(options.size()) && options[k + 1].time_s <= room) ++k;
    const double gain = options[plan[i]].effective_j - options[k].effective_j;
    if (k != plan[i] && gain > 0) moves.push({gain, i, k, version[i]});
  };
  for (int i = 0; i < n; ++i) offer(i);
  const int64_t spent_before = work != nullptr ? *work : 0;
  while (!moves.empty()) {
    if (work != nullptr && spent_before + passes * n + times.visits >= max_work) break;
    const Move m = moves.top();
    moves.pop();
    if (m.version != version[m.node]) continue;
    const int b = m.node;
    plan[b] = m.option;
    t[b] = problem.option(b, plan[b]).time_s;
    changed.assign(1, b);
    times.Forward(b, &changed);
    times.Backward(b, /*tails=*/false, deadline_s, &changed);
    for (int i : changed) offer(i);
  }
  passes += 2;  // FillSlack's
  charge();
  return FillSlack(problem, std::move(plan), deadline_s);
}

}  // namespace perseus::planner
