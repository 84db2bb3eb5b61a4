#include "perseus/planner/solver.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "perseus/planner/improve.h"
#include "src/planner/cut_network.h"
#include "src/planner/max_flow.h"
#include "src/planner/point_figures.h"
#include "src/planner/timing.h"
#include "src/planner/topological_relabel.h"

namespace perseus::planner {
namespace {

using Clock = std::chrono::steady_clock;

// Adds the time since the last call (or construction) to *into.
class Lap {
 public:
  Lap() : last_(Clock::now()) {}
  void To(double* into) {
    const Clock::time_point now = Clock::now();
    *into += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  Clock::time_point last_;
};

// Sums of capacities must stay far from int64 overflow (max_flow.h).
constexpr int64_t kMaxCapacitySum = int64_t{1} << 60;

// How many unit steps in one direction a cut can be applied for, for one
// cost table. With D(j) = C(j-1) - C(j) for j in (min, max], D(min) =
// infinity (the upper capacity at the minimum) and D(max+1) = 0 (the lower
// capacity at the maximum), a computation at d has upper capacity D(d) and
// lower capacity D(d+1); after k unit steps down it has D(d-k) and D(d-k+1),
// after k up D(d+k) and D(d+k+1).
//
// Down (it crosses the cut forwards, its flow is at its upper capacity
// D(d)): delta steps keep the network of steps 1 .. delta-1 the same iff D is
// constant on [d-delta+1, d]. Steps 1 on then have lower = upper = D(d); the
// lower capacity of step 0, D(d+1) <= D(d), may differ (d is a breakpoint):
// the max flow of step 0 is still feasible there (it is at D(d)), of the same
// value as the cut's, and its residual network differs only on arcs leaving
// the sink side, so the nodes reachable from the source, the cut the sweep
// takes, are the same.
// Up (it crosses backwards, below max, its flow is at its lower capacity
// D(d+1)): likewise iff D is constant on [d+1, d+delta] and d+delta <= max
// (step 0's upper capacity D(d) >= D(d+1) may differ).
class StepRuns {
 public:
  explicit StepRuns(const CostTable& table) : min_(table.min_units), max_(table.max_units) {
    const int64_t size = max_ - min_ + 2;
    auto slope = [&](int64_t j) {
      if (j == min_) return std::numeric_limits<int64_t>::max();
      if (j == max_ + 1) return int64_t{0};
      return table.At(j - 1) - table.At(j);
    };
    down_.assign(size, 1);
    up_.assign(size, 1);
    // down_[j - min]: length of the run of equal D ending at j going down;
    // up_[j - min]: going up.
    for (int64_t j = min_ + 1; j <= max_ + 1; ++j) {
      if (slope(j) == slope(j - 1)) down_[j - min_] = down_[j - 1 - min_] + 1;
    }
    for (int64_t j = max_; j >= min_; --j) {
      if (slope(j) == slope(j + 1)) up_[j - min_] = up_[j + 1 - min_] + 1;
    }
  }
  // The longest step down from d (d > min; never below min).
  int64_t Down(int64_t d) const { return down_[d - min_]; }
  // The longest step up from d (d < max; never above max).
  int64_t Up(int64_t d) const { return std::min(up_[d + 1 - min_], max_ - d); }

 private:
  int64_t min_, max_;
  std::vector<int64_t> down_, up_;
};

struct Sweep {
  const Problem& problem;
  // The DAG the sweep walks (the problem's, or the same renumbered in
  // topological order, topological_relabel.h) and its computations' option
  // sets.
  const Dag& dag;
  std::vector<int> set_of_node;
  // Per computation: its cost table's bounds; the computations without
  // predecessors.
  std::vector<int64_t> min_units, max_units;
  std::vector<int> sources;
  std::vector<int64_t> duration;
  // Per computation: earliest and latest start, and the earliest start of
  // the critical ones (-1 for the others); scratch for the finish times.
  std::vector<int64_t> earliest_start, latest_start, critical_start, finish_scratch;
  std::vector<int> critical_index;  // node -> index among critical nodes, or -1
  std::vector<int> critical_nodes;
  std::vector<int> queue;
  std::vector<char> seen;
  // The minimum cuts: the reference builds every network afresh in a
  // textbook max flow (nodes: 0 = source, 1 = sink, 2+2k = in(k), 3+2k =
  // out(k) for critical node k); the fast solver keeps one network over the
  // whole DAG and its flow from step to step (cut_network.h).
  bool reference = false;
  bool unit_steps = false;
  LowerBoundedMaxFlow reference_flow;
  std::optional<CutNetwork> network;
  // Capacities of the computation arcs of the step's network.
  struct Caps {
    int64_t lower, upper;
    bool infinite;
  };
  std::vector<Caps> caps;  // the reference's, per critical node
  // The fast network's arcs as last set (UpdateNetwork), per computation and
  // per dependency, and the sum of its finite capacities.
  struct NetworkState {
    char computation = 0, source = 0, sink = 0;
    int64_t duration = 0;
    Caps caps{0, 0, false};
  };
  std::vector<NetworkState> network_state;
  std::vector<char> dependency_in_network;
  int64_t network_finite_sum = 0;
  // The step found: the computations it moves and their rate (-1 crossing
  // the cut forwards, +1 backwards below its maximum; 0 for all others).
  std::vector<int> moved;
  // The fast network's cut: the computations it crosses, and each one's
  // place among them (-1: none), kept by UpdateCrossing.
  std::vector<int> crossing, crossing_index;
  std::vector<int8_t> rate;
  // Per option set: capacity runs of its cost table.
  std::vector<StepRuns> runs;
  // The plan the durations map to, and their model cost, kept up to date.
  Plan plan;
  int64_t cost = 0;
  // Scratch for the step length. When the last longest-path pass was at the
  // step's length, path_start holds the earliest starts after the step and
  // next_makespan the iteration time (next_ready).
  std::vector<int64_t> path_start, path_slope;
  bool next_ready = false;
  int64_t next_makespan = 0;
  SolverStats stats;

  Sweep(const Problem& p, const Dag& sweep_dag, std::vector<int> sweep_sets,
        const SolverOptions& options)
      : problem(p),
        dag(sweep_dag),
        set_of_node(std::move(sweep_sets)),
        reference(options.reference),
        unit_steps(options.reference || options.unit_steps || p.options.round_down) {
    if (reference) {
      reference_flow.set_algorithm(LowerBoundedMaxFlow::Algorithm::kSimple);
    } else {
      network.emplace(dag);
      crossing_index.assign(dag.num_nodes(), -1);
      network_state.assign(dag.num_nodes(), NetworkState{});
      dependency_in_network.assign(dag.num_edges(), 0);
    }
    rate.assign(dag.num_nodes(), 0);
    min_units.resize(dag.num_nodes());
    max_units.resize(dag.num_nodes());
    for (int i = 0; i < dag.num_nodes(); ++i) {
      min_units[i] = SetOf(i).cost.min_units;
      max_units[i] = SetOf(i).cost.max_units;
      if (dag.predecessors(i).empty()) sources.push_back(i);
    }
    runs.reserve(problem.option_sets.size());
    for (const OptionSet& set : problem.option_sets) runs.emplace_back(set.cost);
  }

  const OptionSet& SetOf(int i) const { return problem.option_sets[set_of_node[i]]; }

  // Starts the sweep with every computation at its maximum duration.
  void StartAtMaximum() {
    const int n = dag.num_nodes();
    duration.resize(n);
    plan.resize(n);
    cost = 0;
    for (int i = 0; i < n; ++i) {
      const OptionSet& set = SetOf(i);
      duration[i] = set.cost.max_units;
      plan[i] = set.OptionForUnits(duration[i]);
      cost += set.cost.At(duration[i]);
    }
  }

  // Moves every computation of the step `units` unit steps along its rate.
  void Advance(int64_t units) {
    for (int i : moved) {
      const OptionSet& set = SetOf(i);
      cost -= set.cost.At(duration[i]);
      duration[i] += rate[i] * units;
      cost += set.cost.At(duration[i]);
      plan[i] = set.OptionForUnits(duration[i]);
    }
  }

  // Whether every source-sink path of the critical network changes length by
  // exactly -1 per unit step under the step's rates: then it stays critical,
  // and (with no other path becoming critical, LongestStep) the network stays
  // the same for the whole step. A path crossing the cut forwards twice
  // drops out after one unit step, which changes the network.
  bool CriticalPathsFallByOne(int64_t makespan) {
    constexpr int64_t kUnset = std::numeric_limits<int64_t>::min();
    // Rate sum before the node; only critical nodes are read. critical_nodes
    // is in topological order.
    path_slope.resize(dag.num_nodes());
    for (int u : critical_nodes) path_slope[u] = kUnset;
    for (int u : critical_nodes) {
      if (earliest_start[u] == 0) {
        if (path_slope[u] != kUnset && path_slope[u] != 0) return false;
        path_slope[u] = 0;
      }
      if (path_slope[u] == kUnset) return false;  // cannot happen: critical means on a longest path
      const int64_t after = path_slope[u] + rate[u];
      const int64_t finish = earliest_start[u] + duration[u];
      if (finish == makespan && after != -1) return false;
      for (int v : dag.successors(u)) {
        if (critical_index[v] < 0 || earliest_start[v] != finish) continue;
        if (path_slope[v] == kUnset) {
          path_slope[v] = after;
        } else if (path_slope[v] != after) {
          return false;
        }
      }
    }
    return true;
  }

  // The longest path with the step applied `delta` units: returns its
  // length, and in *slope its rate sum (the least among longest paths).
  int64_t LongestPathAt(int64_t delta, int64_t* slope) {
    ++stats.length_passes;
    const int n = dag.num_nodes();
    path_start.assign(n, 0);
    path_slope.assign(n, 0);
    int64_t makespan = 0, makespan_slope = 0;
    for (int u : dag.topological_order()) {
      const int64_t finish = path_start[u] + duration[u] + rate[u] * delta;
      const int64_t finish_slope = path_slope[u] + rate[u];
      if (finish > makespan || (finish == makespan && finish_slope < makespan_slope)) {
        makespan = finish;
        makespan_slope = finish_slope;
      }
      for (int v : dag.successors(u)) {
        if (path_start[v] < finish || (path_start[v] == finish && path_slope[v] > finish_slope)) {
          path_start[v] = finish;
          path_slope[v] = finish_slope;
        }
      }
    }
    *slope = makespan_slope;
    return makespan;
  }

  // The longest step <= delta (delta >= 2) after which the iteration time is
  // makespan - delta. Every path's length is linear in the step, L0 + c k;
  // the critical ones fall by one per unit (c = -1), the others are at most
  // makespan - 1 at k = 0. g(k) = (longest path at k) - (makespan - k) is
  // convex, 0 at 0 and >= 0, so {k : g(k) = 0} is an interval [0, k*]. While
  // g(delta) > 0, the longest path at delta has c > -1 and meets makespan - k
  // at (makespan - L0) / (c + 1) >= k*: jump there (Newton from the right;
  // delta falls every time, so this ends).
  Result<int64_t> LongestStep(int64_t makespan, int64_t delta) {
    for (;;) {
      int64_t slope = 0;
      const int64_t longest = LongestPathAt(delta, &slope);
      if (longest <= makespan - delta) {  // < would be caught by the caller's check
        next_ready = true;
        next_makespan = longest;
        return delta;
      }
      const int64_t start = longest - slope * delta;  // L0 of that path
      if (slope <= -1 || start > makespan) {
        return Status::Infeasible("step length: a path of length " + std::to_string(start) +
                                  " units at iteration time " + std::to_string(makespan) +
                                  " (please report this)");
      }
      const int64_t next = (makespan - start) / (slope + 1);
      if (next >= delta) {
        return Status::Infeasible("step length did not fall at iteration time " +
                                  std::to_string(makespan) + " (please report this)");
      }
      if (next <= 1) {
        next_ready = false;
        return int64_t{1};  // the unit step (checked by the caller)
      }
      delta = next;
    }
  }

  // The capacities of computation i's arc at its duration.
  Caps CapsAt(int i) const {
    const CostTable& table = SetOf(i).cost;
    const int64_t d = duration[i];
    Caps c{0, 0, d == table.min_units};
    if (!c.infinite) c.upper = table.At(d - 1) - table.At(d);
    if (d < table.max_units) c.lower = table.At(d) - table.At(d + 1);
    return c;
  }
  static int64_t CapSum(const Caps& c) { return (c.infinite ? 0 : c.upper) + c.lower; }
  static Status TooLarge() {
    return Status::InvalidInput("energy values are too large for the solver's integer capacities");
  }

  // The reference's network: emit(from, to, lower, upper) for each arc
  // (nodes: 0 = source, 1 = sink, 2+2k = in(k), 3+2k = out(k) for critical
  // node k); upper may be CutNetwork::kInfinite.
  template <typename Emit>
  void ForEachReferenceArc(int64_t makespan, Emit&& emit) const {
    constexpr int64_t kInfinite = CutNetwork::kInfinite;
    for (size_t k = 0; k < critical_nodes.size(); ++k) {
      const int kk = static_cast<int>(k);
      const int i = critical_nodes[k];
      emit(2 + 2 * kk, 3 + 2 * kk, caps[k].lower, caps[k].infinite ? kInfinite : caps[k].upper);
      if (earliest_start[i] == 0) emit(0, 2 + 2 * kk, int64_t{0}, kInfinite);
      const int64_t finish = earliest_start[i] + duration[i];
      if (finish == makespan) emit(3 + 2 * kk, 1, int64_t{0}, kInfinite);
      for (int j : dag.successors(i)) {
        const int kj = critical_index[j];
        if (kj >= 0 && finish == earliest_start[j])
          emit(3 + 2 * kk, 2 + 2 * kj, int64_t{0}, kInfinite);
      }
    }
  }

  // Brings the fast network to this step's critical network (computation
  // arcs of the critical computations with their capacities; source arcs of
  // those starting at 0, sink arcs of those finishing at `makespan`;
  // dependency arcs between critical computations without slack), changing
  // only the arcs that differ from the last step's: their state is kept
  // here (network_state, dependency_in_network, network_finite_sum). Returns
  // whether the network changed. One pass of comparisons over the DAG; the
  // network's work is proportional to the arcs that changed.
  bool UpdateNetwork(int64_t makespan) {
    constexpr int64_t kInfinite = CutNetwork::kInfinite;
    bool changed = false;
    auto set_arc = [&](int arc, bool want, char* have) {
      if (static_cast<bool>(*have) == want || arc < 0) return;
      *have = want ? 1 : 0;
      if (want) {
        network->Update(arc, 0, kInfinite);
      } else {
        network->Remove(arc);
      }
      changed = true;
    };
    for (int i : dag.topological_order()) {
      const bool critical = critical_index[i] >= 0;
      NetworkState& state = network_state[i];
      if (critical) {
        if (!state.computation || state.duration != duration[i]) {
          const Caps c = CapsAt(i);
          if (state.computation) network_finite_sum -= CapSum(state.caps);
          network_finite_sum += CapSum(c);
          state.computation = 1;
          state.duration = duration[i];
          state.caps = c;
          changed |= network->Update(network->ComputationArc(i), c.lower,
                                     c.infinite ? kInfinite : c.upper);
        }
      } else if (state.computation) {
        network_finite_sum -= CapSum(state.caps);
        state.computation = 0;
        network->Remove(network->ComputationArc(i));
        changed = true;
      }
      const int64_t finish = earliest_start[i] + duration[i];
      set_arc(network->SourceArc(i), critical && earliest_start[i] == 0, &state.source);
      set_arc(network->SinkArc(i), critical && finish == makespan, &state.sink);
      const auto successors = dag.successors(i);
      const int edge0 = dag.successor_edge_begin(i);
      for (size_t p = 0; p < successors.size(); ++p) {
        const int j = successors[p];
        const int edge = edge0 + static_cast<int>(p);
        set_arc(network->DependencyArc(edge), critical && finish == critical_start[j],
                &dependency_in_network[edge]);
      }
    }
    return changed;
  }

  // One Phillips–Dessouky step from makespan T: finds the cut, the
  // computations it moves (moved, rate) and in *delta how many unit steps
  // it stays the cut for (>= 1); *delta = 0 if T_min has been reached.
  // Nothing moves until Advance().
  Status Step(int64_t makespan, int64_t* delta) {
    *delta = 0;
    next_ready = false;
    for (int i : moved) rate[i] = 0;
    moved.clear();
    Lap lap;
    // Latest starts, and with them the critical computations (in reverse
    // topological order as each latest start becomes final, then turned
    // into topological order, the order of the network's arc ids,
    // cut_network.h). critical_start: a critical computation's earliest
    // start, -1 for the others (one read per dependency in UpdateNetwork).
    const int n = dag.num_nodes();
    critical_index.resize(n);
    critical_start.resize(n);
    critical_nodes.clear();
    LatestStarts(dag, duration, makespan, &latest_start, [&](int v) {
      if (earliest_start[v] == latest_start[v]) {
        critical_nodes.push_back(v);
        critical_start[v] = earliest_start[v];
      } else {
        critical_index[v] = -1;
        critical_start[v] = -1;
      }
    });
    std::reverse(critical_nodes.begin(), critical_nodes.end());
    for (size_t k = 0; k < critical_nodes.size(); ++k) {
      critical_index[critical_nodes[k]] = static_cast<int>(k);
    }
    lap.To(&stats.timing_s);

    // First, is there a source-sink path made only of infinite arcs (every
    // computation on it at its minimum duration)? Then T_min is reached.
    seen.assign(critical_nodes.size(), 0);
    queue.clear();
    // (Only computations without predecessors start at 0.)
    for (int i : sources) {
      const int k = critical_index[i];
      if (k >= 0 && earliest_start[i] == 0 && duration[i] == min_units[i]) {
        seen[k] = 1;
        queue.push_back(k);
      }
    }
    for (size_t head = 0; head < queue.size(); ++head) {
      int i = critical_nodes[queue[head]];
      if (earliest_start[i] + duration[i] == makespan) return Status::Ok();  // T_min
      for (int j : dag.successors(i)) {
        int kj = critical_index[j];
        if (kj < 0 || seen[kj] || earliest_start[i] + duration[i] != earliest_start[j]) continue;
        if (duration[j] != min_units[j]) continue;
        seen[kj] = 1;
        queue.push_back(kj);
      }
    }

    // Capacities of the computation arcs; "infinity" exceeds their sum.
    int64_t finite_sum = 0;
    Status status;
    if (reference) {
      caps.resize(critical_nodes.size());
      for (size_t k = 0; k < critical_nodes.size(); ++k) {
        caps[k] = CapsAt(critical_nodes[k]);
        finite_sum += CapSum(caps[k]);
        if (finite_sum >= kMaxCapacitySum) return TooLarge();
      }
      const int64_t infinity = finite_sum + 1;
      ++stats.max_flows;
      stats.network_nodes += static_cast<int64_t>(critical_nodes.size());
      reference_flow.Reset(2 + 2 * static_cast<int>(critical_nodes.size()));
      ForEachReferenceArc(makespan, [&](int from, int to, int64_t lower, int64_t upper) {
        reference_flow.AddArc(from, to, lower, upper == CutNetwork::kInfinite ? infinity : upper);
        ++stats.network_arcs;
      });
      status = reference_flow.Solve(0, 1, infinity);
    } else {
      const bool changed = UpdateNetwork(makespan);
      finite_sum = network_finite_sum;
      if (finite_sum >= kMaxCapacitySum) return TooLarge();
      // The same network as the last one solved has the same minimum cut.
      if (!changed) {
        ++stats.reused_cuts;
      } else {
        ++stats.max_flows;
        stats.network_nodes += static_cast<int64_t>(critical_nodes.size());
        stats.network_arcs += network->num_active_arcs();
        status = network->Solve();
        if (status.ok()) UpdateCrossing();
      }
    }
    if (!status.ok()) {
      return Status::Infeasible("minimum cut at iteration time " + std::to_string(makespan) +
                                " units: " + status.message() +
                                " (the cost model is not convex; please report this)");
    }
    // Cannot be cut: T_min (found above; the flow would be at least infinity).
    const int64_t infinity = finite_sum + 1;
    if ((reference ? reference_flow.value() : network->value()) >= infinity) return Status::Ok();

    // The cut's moves: all decisions are made before anything changes. Each
    // move limits the step to the run of unit steps that keeps its
    // capacities (StepRuns). A computation moves iff exactly one of its
    // arc's ends is on the source side.
    int64_t limit = std::numeric_limits<int64_t>::max();
    auto move = [&](int i, bool in_s, bool out_s) {
      const StepRuns& run = runs[set_of_node[i]];
      if (in_s && !out_s) {
        rate[i] = -1;
        moved.push_back(i);
        limit = std::min(limit, run.Down(duration[i]));
      } else if (!in_s && out_s && duration[i] < max_units[i]) {
        rate[i] = 1;
        moved.push_back(i);
        limit = std::min(limit, run.Up(duration[i]));
      }
    };
    if (reference) {
      for (size_t k = 0; k < critical_nodes.size(); ++k) {
        const int kk = static_cast<int>(k);
        move(critical_nodes[k], reference_flow.OnSourceSide(2 + 2 * kk),
             reference_flow.OnSourceSide(3 + 2 * kk));
      }
    } else {
      for (int i : crossing) {
        move(i, network->OnSourceSide(network->In(i)), network->OnSourceSide(network->Out(i)));
      }
    }
    ++stats.steps;
    lap.To(&stats.cuts_s);
    Result<int64_t> length = StepLength(makespan, limit);
    lap.To(&stats.timing_s);
    if (!length.ok()) return length.status();
    *delta = *length;
    return Status::Ok();
  }

  // The computations with exactly one end of their arc on the cut's source
  // side (crossing, crossing_index), after a Solve: only nodes on the source
  // side can be an end of one, and when the Solve only added nodes to the
  // last source side, only computations with an end among those changed.
  void UpdateCrossing() {
    const std::vector<int>& side = network->source_side();
    const size_t begin = network->added_nodes_begin();
    if (begin == 0) {
      for (int i : crossing) crossing_index[i] = -1;
      crossing.clear();
    }
    for (size_t k = begin; k < side.size(); ++k) {
      const int v = side[k];
      if (v == CutNetwork::kSource || v == CutNetwork::kSink) continue;
      const int i = network->ComputationOf(v);
      const bool crosses =
          network->OnSourceSide(network->In(i)) != network->OnSourceSide(network->Out(i));
      if (crosses && crossing_index[i] < 0) {
        crossing_index[i] = static_cast<int>(crossing.size());
        crossing.push_back(i);
      } else if (!crosses && crossing_index[i] >= 0) {
        const int last = crossing.back();
        crossing[static_cast<size_t>(crossing_index[i])] = last;
        crossing_index[last] = crossing_index[i];
        crossing.pop_back();
        crossing_index[i] = -1;
      }
    }
  }

  // The step's length given the limit (a) of its moves: (b) and (c).
  Result<int64_t> StepLength(int64_t makespan, int64_t limit) {
    if (unit_steps || moved.empty() || limit < 2) {
      if (!unit_steps && limit < 2) ++stats.steps_at_breakpoint;
      return int64_t{1};
    }
    if (!CriticalPathsFallByOne(makespan)) {
      ++stats.steps_kept_short;
      return int64_t{1};
    }
    Result<int64_t> longest = LongestStep(makespan, limit);
    if (longest.ok() && *longest < limit) ++stats.steps_shortened;
    return longest;
  }
};

}  // namespace

Result<Frontier> SolveFrontier(std::shared_ptr<const Problem> problem_ptr,
                               const ProgressFn& progress, const SolverOptions& options) {
  auto start = std::chrono::steady_clock::now();
  const Problem& problem = *problem_ptr;
  const Dag& dag = *problem.dag;
  const int n = dag.num_nodes();
  const double tau = problem.options.unit_time_s;
  const double stage_blocking = problem.options.blocking_power_w * problem.num_gpus;
  Frontier frontier(problem_ptr);
  frontier.all_max = EvaluateAllMax(problem);
  if (n == 0) return Status::InvalidInput("the schedule has no computations");

  // The fast sweep walks the DAG renumbered in topological order (the same
  // steps, its arrays read in order); relabel->new_id maps a computation to
  // its id there.
  // It is renumbered unless its ids already are that order, so that the
  // sweep's ids are the positions PointFigures reads plans by.
  std::optional<TopologicalRelabel> relabel;
  bool ids_are_positions = true;
  for (int p = 0; p < n && ids_are_positions; ++p) {
    ids_are_positions = dag.topological_order()[p] == p;
  }
  if (!options.reference && !ids_are_positions) {
    relabel = RelabelTopologically(dag);
    ids_are_positions = true;
  }
  const Dag& sweep_dag = relabel ? relabel->dag : dag;
  std::vector<int> sweep_sets = problem.set_of_node;
  if (relabel) {
    for (int i = 0; i < n; ++i) sweep_sets[relabel->new_id[i]] = problem.set_of_node[i];
  }
  Sweep sweep(problem, sweep_dag, std::move(sweep_sets), options);
  // Lower end of the sweep, for progress: the makespan at minimum durations.
  sweep.duration = sweep.min_units;
  const int64_t lowest =
      EarliestStarts(sweep_dag, sweep.duration, &sweep.earliest_start, &sweep.finish_scratch);
  sweep.StartAtMaximum();

  PointFigures point_figures(problem);
  // The sweep's plan by computation (kept up to date from its moves), and
  // by position for PointFigures when the sweep's ids are not positions
  // (the reference's sweep on a DAG not numbered in topological order).
  auto node_of = [&](int i) { return relabel ? relabel->old_id[i] : i; };
  Plan plan_by_node(n), by_position;
  for (int i = 0; i < n; ++i) plan_by_node[node_of(i)] = sweep.plan[i];
  bool have_pending = false;
  FrontierPoint pending;
  Plan pending_plan;  // round_down: the plan; else the first point's to fill
  // Otherwise the plan to fill: the one before with these changes.
  std::vector<std::pair<int, int>> pending_changes;
  double pending_fill_deadline = 0;
  auto append_pending = [&] {
    if (problem.options.round_down) {
      frontier.Append(pending, pending_plan);
    } else if (frontier.size() == 0) {
      frontier.AppendToFill(pending, pending_plan, pending_fill_deadline);
    } else {
      frontier.AppendChangesToFill(pending, pending_changes, pending_fill_deadline);
    }
  };
  // The point of the current durations at iteration time `makespan`; the
  // sweep moved `moved` since the last one.
  auto add_point = [&](int64_t makespan) {
    if (have_pending) append_pending();
    pending_changes.clear();
    for (int i : sweep.moved) pending_changes.emplace_back(node_of(i), sweep.plan[i]);
    pending_fill_deadline = static_cast<double>(makespan) * tau;
    Figures realized;
    if (problem.options.round_down || frontier.size() == 0) pending_plan = plan_by_node;
    if (problem.options.round_down) {
      realized = EvaluatePlan(problem, pending_plan);
    } else if (ids_are_positions) {  // FillSlack and EvaluatePlan
      realized = point_figures.FillAndEvaluateByPosition(sweep.plan, pending_fill_deadline);
    } else {
      by_position.resize(n);
      for (int p = 0; p < n; ++p) by_position[p] = sweep.plan[point_figures.node_at(p)];
      realized = point_figures.FillAndEvaluateByPosition(by_position, pending_fill_deadline);
    }
    pending.time_s = realized.time_s;
    pending.energy_j = realized.energy_j;
    pending.model_time_s = static_cast<double>(makespan) * tau;
    pending.model_energy_j = static_cast<double>(sweep.cost) * kCostUnitJoules +
                             stage_blocking * static_cast<double>(makespan) * tau;
    have_pending = true;
  };
  // After the sweep's moves: the plan by computation.
  auto moved_to_plan = [&] {
    for (int i : sweep.moved) plan_by_node[node_of(i)] = sweep.plan[i];
  };

  int64_t makespan =
      EarliestStarts(sweep_dag, sweep.duration, &sweep.earliest_start, &sweep.finish_scratch);
  const int64_t first = makespan;
  int64_t reported = 0;  // progress is reported every 64 units swept
  for (;;) {
    Lap lap;
    add_point(makespan);
    lap.To(&sweep.stats.points_s);
    if (progress && first > lowest && (first - makespan) / 64 >= reported) {
      reported = (first - makespan) / 64 + 1;
      progress(static_cast<double>(first - makespan) / static_cast<double>(first - lowest));
    }
    if (options.should_stop && options.should_stop()) {
      return Status::Cancelled("planning stopped after " + std::to_string(sweep.stats.steps) +
                               " steps of the frontier sweep");
    }
    if (options.max_points > 0 && static_cast<int64_t>(frontier.size()) >= options.max_points) {
      return Status::InvalidInput(
          "the frontier has more than " + std::to_string(options.max_points) +
          " points at this unit_time; choose a larger unit_time (or 0 for the automatic one)");
    }
    int64_t delta = 0;
    Status status = sweep.Step(makespan, &delta);
    lap = Lap();
    if (!status.ok()) return status;
    if (delta == 0) break;  // T_min
    if (options.realize_every_unit) {
      // The unit-step sweep's points inside the step: the same durations
      // (the step is delta unit steps with one cut).
      for (int64_t k = 1; k < delta; ++k) {
        sweep.Advance(1);
        moved_to_plan();
        add_point(makespan - k);
      }
      sweep.Advance(1);
      moved_to_plan();
      lap.To(&sweep.stats.points_s);
    } else {
      sweep.Advance(delta);
      moved_to_plan();
    }
    sweep.stats.unit_steps += delta;
    // The step length's last longest-path pass was at the new durations, or
    // one more pass.
    int64_t next = 0;
    if (sweep.next_ready) {
      std::swap(sweep.earliest_start, sweep.path_start);
      next = sweep.next_makespan;
    } else {
      next =
          EarliestStarts(sweep_dag, sweep.duration, &sweep.earliest_start, &sweep.finish_scratch);
    }
    lap.To(&sweep.stats.timing_s);
    if (next != makespan - delta) {
      return Status::Infeasible("a cut changed the iteration time from " +
                                std::to_string(makespan) + " to " + std::to_string(next) +
                                " units instead of by " + std::to_string(delta) +
                                " (please report this)");
    }
    makespan = next;
  }

  // The T_min point: make it meet the all-max time with measured times
  // (not in reference-compatible mode, which reports the reference's plans).
  bool polished_last = false;
  if (!problem.options.round_down) {
    Lap lap;
    int64_t work = 0;
    // Start no slower than all-max anywhere: each computation at the faster
    // of its T_min option and the slowest option as fast as its highest
    // frequency (durations rounded up to units may map to a slower option
    // than the highest frequency's, which the all-max time does not
    // allow). The start then meets the all-max time, and the polish only
    // fills slack: no repair of thousands of computations one at a time.
    // (The last point's filled plan: the sweep ended at its durations.)
    Plan fast_start = FillSlack(problem, plan_by_node, pending_fill_deadline);
    for (int i = 0; i < n; ++i) {
      const OptionSet& set = problem.set(i);
      int k = 0;
      while (k + 1 < static_cast<int>(set.options.size()) &&
             set.options[k + 1].time_s <= set.highest_frequency.time_s) {
        ++k;
      }
      fast_start[i] = std::min(fast_start[i], k);
    }
    Plan polished = PolishPlan(problem, std::move(fast_start), frontier.all_max.time_s, &work);
    sweep.stats.polish_passes = work / n;
    Figures realized = EvaluatePlan(problem, polished);
    lap.To(&sweep.stats.polish_s);
    if (realized.time_s <= pending.time_s || realized.time_s <= frontier.all_max.time_s) {
      pending.time_s = realized.time_s;
      pending.energy_j = realized.energy_j;
      pending_plan = std::move(polished);
      polished_last = true;
    }
  }
  if (polished_last) {
    frontier.Append(pending, pending_plan);
  } else {
    append_pending();
  }
  // Only Pareto points of realized (time, energy): several points may
  // realize the same plan, or a plan no better than a faster one's. (Not in
  // reference-compatible mode, which reports the reference's points.)
  if (options.pareto_only && !problem.options.round_down) {
    frontier = frontier.ParetoOnly();
    if (options.improve_ends) {
      ImproveOptions ends;
      ends.max_work = options.improve_ends_work;
      Lap lap;
      frontier = WithImprovedEnds(std::move(frontier), ends);
      lap.To(&sweep.stats.ends_s);
    }
  }
  // Build the deadline index now, so that later concurrent readers of the
  // frontier never build it (IndexForDeadline is then read-only).
  (void)frontier.IndexForDeadline(0);
  if (progress) progress(1.0);
  frontier.solve_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (sweep.network) sweep.stats.extended_cuts = sweep.network->extended_solves();
  if (options.stats != nullptr) *options.stats = sweep.stats;
  return frontier;
}

}  // namespace perseus::planner
