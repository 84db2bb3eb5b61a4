#include "perseus/planner/solver.h"

#include <chrono>
#include <string>

#include "src/planner/max_flow.h"
#include "src/planner/timing.h"

namespace perseus::planner {
namespace {

// Sums of capacities must stay far from int64 overflow (max_flow.h).
constexpr int64_t kMaxCapacitySum = int64_t{1} << 60;

struct Sweep {
  const Problem& problem;
  const Dag& dag;
  std::vector<int64_t> duration;
  std::vector<int64_t> earliest_start, latest_finish;
  std::vector<int> critical_index;  // node -> index among critical nodes, or -1
  std::vector<int> critical_nodes;
  LowerBoundedMaxFlow flow;
  std::vector<int> queue;
  std::vector<char> seen;
  // The step's network, and the previous one with its cut (fast mode).
  struct Arc {
    int from, to;
    int64_t lower, upper;
    bool operator==(const Arc&) const = default;
  };
  bool reuse_cuts = true;
  // Warm start (fast mode): every arc's flow in the last max flow, by what
  // the arc stands for: a computation (node id), a source or sink link (node
  // id) or a dependency (DAG edge id); 0 for arcs not in that network.
  enum ArcKind : uint8_t { kComputation, kSource, kSink, kDependency };
  struct ArcKey {
    ArcKind kind;
    int index;
    bool operator==(const ArcKey&) const = default;
  };
  std::vector<int64_t> last_flow[4];
  std::vector<ArcKey> keys, previous_keys;
  std::vector<Arc> arcs, previous_arcs;
  std::vector<int> previous_critical;
  std::vector<char> source_side;  // per flow node, of the cut applied
  int64_t reused_cuts = 0;

  int64_t& LastFlow(const ArcKey& key) { return last_flow[key.kind][key.index]; }

  Sweep(const Problem& p, bool reference) : problem(p), dag(*p.dag), reuse_cuts(!reference) {
    for (ArcKind kind : {kComputation, kSource, kSink}) last_flow[kind].assign(dag.num_nodes(), 0);
    last_flow[kDependency].assign(dag.num_edges(), 0);
    flow.set_algorithm(reference ? LowerBoundedMaxFlow::Algorithm::kSimple
                                 : LowerBoundedMaxFlow::Algorithm::kFast);
  }

  int64_t ModelCost() const {
    int64_t total = 0;
    for (int i = 0; i < dag.num_nodes(); ++i) total += problem.set(i).cost.At(duration[i]);
    return total;
  }

  Plan MappedPlan() const {
    Plan plan(dag.num_nodes());
    for (int i = 0; i < dag.num_nodes(); ++i) plan[i] = problem.set(i).OptionForUnits(duration[i]);
    return plan;
  }

  // One Phillips–Dessouky step from makespan T. Returns false in *advanced* if
  // T_min has been reached.
  Status Step(int64_t makespan, bool* advanced) {
    *advanced = false;
    LatestFinishes(dag, duration, makespan, &latest_finish);
    const int n = dag.num_nodes();
    critical_index.assign(n, -1);
    critical_nodes.clear();
    for (int i = 0; i < n; ++i) {
      if (earliest_start[i] + duration[i] == latest_finish[i]) {
        critical_index[i] = static_cast<int>(critical_nodes.size());
        critical_nodes.push_back(i);
      }
    }
    // Activity-on-arc nodes: 0 = source, 1 = sink, 2+2k = in(k), 3+2k = out(k).
    const int num_flow_nodes = 2 + 2 * static_cast<int>(critical_nodes.size());
    auto in = [](int k) { return 2 + 2 * k; };
    auto out = [](int k) { return 3 + 2 * k; };

    // First, is there a source-sink path made only of infinite arcs (every
    // computation on it at its minimum duration)? Then T_min is reached.
    seen.assign(critical_nodes.size(), 0);
    queue.clear();
    for (size_t k = 0; k < critical_nodes.size(); ++k) {
      int i = critical_nodes[k];
      if (earliest_start[i] == 0 && duration[i] == problem.set(i).cost.min_units) {
        seen[k] = 1;
        queue.push_back(static_cast<int>(k));
      }
    }
    for (size_t head = 0; head < queue.size(); ++head) {
      int i = critical_nodes[queue[head]];
      if (earliest_start[i] + duration[i] == makespan) return Status::Ok();  // T_min
      for (int j : dag.successors(i)) {
        int kj = critical_index[j];
        if (kj < 0 || seen[kj] || earliest_start[i] + duration[i] != earliest_start[j]) continue;
        if (duration[j] != problem.set(j).cost.min_units) continue;
        seen[kj] = 1;
        queue.push_back(kj);
      }
    }

    // Capacities of the computation arcs; "infinity" exceeds their sum.
    struct Caps {
      int64_t lower, upper;
      bool infinite;
    };
    std::vector<Caps> caps(critical_nodes.size());
    int64_t finite_sum = 0;
    for (size_t k = 0; k < critical_nodes.size(); ++k) {
      int i = critical_nodes[k];
      const CostTable& table = problem.set(i).cost;
      int64_t d = duration[i];
      Caps c{0, 0, d == table.min_units};
      if (!c.infinite) c.upper = table.At(d - 1) - table.At(d);
      if (d < table.max_units) c.lower = table.At(d) - table.At(d + 1);
      finite_sum += (c.infinite ? 0 : c.upper) + c.lower;
      if (finite_sum >= kMaxCapacitySum) {
        return Status::InvalidInput(
            "energy values are too large for the solver's integer capacities");
      }
      caps[k] = c;
    }
    const int64_t infinity = finite_sum + 1;

    arcs.clear();
    keys.clear();
    for (size_t k = 0; k < critical_nodes.size(); ++k) {
      int kk = static_cast<int>(k);
      int i = critical_nodes[k];
      arcs.push_back({in(kk), out(kk), caps[k].lower, caps[k].infinite ? infinity : caps[k].upper});
      keys.push_back({kComputation, i});
      if (earliest_start[i] == 0) {
        arcs.push_back({0, in(kk), 0, infinity});
        keys.push_back({kSource, i});
      }
      if (earliest_start[i] + duration[i] == makespan) {
        arcs.push_back({out(kk), 1, 0, infinity});
        keys.push_back({kSink, i});
      }
      const auto successors = dag.successors(i);
      for (size_t p = 0; p < successors.size(); ++p) {
        int j = successors[p];
        int kj = critical_index[j];
        if (kj >= 0 && earliest_start[i] + duration[i] == earliest_start[j]) {
          arcs.push_back({out(kk), in(kj), 0, infinity});
          keys.push_back({kDependency, dag.successor_edge_begin(i) + static_cast<int>(p)});
        }
      }
    }
    // The same network as the previous step has the same minimum cut.
    if (reuse_cuts && arcs == previous_arcs && critical_nodes == previous_critical) {
      ++reused_cuts;
    } else {
      flow.Reset(num_flow_nodes);
      for (size_t a = 0; a < arcs.size(); ++a) {
        const Arc& arc = arcs[a];
        const int64_t start = reuse_cuts ? LastFlow(keys[a]) : arc.lower;
        flow.AddArcWithFlow(arc.from, arc.to, arc.lower, arc.upper, start);
      }
      Status status = flow.Solve(0, 1, infinity);
      if (!status.ok()) {
        return Status::Infeasible("minimum cut at iteration time " + std::to_string(makespan) +
                                  " units: " + status.message() +
                                  " (the cost model is not convex; please report this)");
      }
      if (flow.value() >= infinity) return Status::Ok();  // cannot be cut: T_min
      source_side.resize(num_flow_nodes);
      for (int v = 0; v < num_flow_nodes; ++v) source_side[v] = flow.OnSourceSide(v) ? 1 : 0;
      if (reuse_cuts) {
        for (const ArcKey& key : previous_keys) LastFlow(key) = 0;
        for (size_t a = 0; a < keys.size(); ++a) LastFlow(keys[a]) = flow.Flow(static_cast<int>(a));
        std::swap(previous_keys, keys);
        std::swap(previous_arcs, arcs);
        previous_critical = critical_nodes;
      }
    }

    // Apply the cut: all decisions are made before anything changes.
    for (size_t k = 0; k < critical_nodes.size(); ++k) {
      int kk = static_cast<int>(k);
      int i = critical_nodes[k];
      bool in_s = source_side[in(kk)] != 0, out_s = source_side[out(kk)] != 0;
      if (in_s && !out_s) {
        --duration[i];
      } else if (!in_s && out_s && duration[i] < problem.set(i).cost.max_units) {
        ++duration[i];
      }
    }
    *advanced = true;
    return Status::Ok();
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

  Sweep sweep(problem, options.reference);
  // Lower end of the sweep, for progress: the makespan at minimum durations.
  sweep.duration.resize(n);
  for (int i = 0; i < n; ++i) sweep.duration[i] = problem.set(i).cost.min_units;
  const int64_t lowest = EarliestStarts(dag, sweep.duration, &sweep.earliest_start);
  for (int i = 0; i < n; ++i) sweep.duration[i] = problem.set(i).cost.max_units;

  bool have_pending = false;
  FrontierPoint pending;
  Plan pending_plan, pending_base;  // the plan, and what it was filled from
  double pending_fill_deadline = 0;
  auto append_pending = [&] {
    if (problem.options.round_down) {
      frontier.Append(pending, pending_plan);
    } else {
      frontier.AppendToFill(pending, pending_base, pending_fill_deadline);
    }
  };
  int64_t previous = -1, first = -1;
  for (;;) {
    const int64_t makespan = EarliestStarts(dag, sweep.duration, &sweep.earliest_start);
    if (previous >= 0 && makespan != previous - 1) {
      return Status::Infeasible("a cut changed the iteration time from " +
                                std::to_string(previous) + " to " + std::to_string(makespan) +
                                " units instead of by one (please report this)");
    }
    if (first < 0) first = makespan;
    previous = makespan;

    if (have_pending) append_pending();
    pending_base = sweep.MappedPlan();
    pending_fill_deadline = static_cast<double>(makespan) * tau;
    pending_plan = problem.options.round_down
                       ? pending_base
                       : FillSlack(problem, pending_base, pending_fill_deadline);
    Figures realized = EvaluatePlan(problem, pending_plan);
    pending.time_s = realized.time_s;
    pending.energy_j = realized.energy_j;
    pending.model_time_s = static_cast<double>(makespan) * tau;
    pending.model_energy_j = static_cast<double>(sweep.ModelCost()) * kCostUnitJoules +
                             stage_blocking * static_cast<double>(makespan) * tau;
    have_pending = true;

    if (progress && first > lowest && (first - makespan) % 64 == 0) {
      progress(static_cast<double>(first - makespan) / static_cast<double>(first - lowest));
    }
    bool advanced = false;
    Status status = sweep.Step(makespan, &advanced);
    if (!status.ok()) return status;
    if (!advanced) break;
  }

  // The T_min point: make it meet the all-max time with measured times
  // (not in reference-compatible mode, which reports the reference's plans).
  bool polished_last = false;
  if (!problem.options.round_down) {
    Plan polished = PolishPlan(problem, pending_plan, frontier.all_max.time_s);
    Figures realized = EvaluatePlan(problem, polished);
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
  // Only Pareto points of realized (time, energy): several unit steps may
  // realize the same plan, or a plan no better than a faster one's. (Not in
  // reference-compatible mode, which reports the reference's points.)
  if (options.pareto_only && !problem.options.round_down) frontier = frontier.ParetoOnly();
  // Build the deadline index now, so that later concurrent readers of the
  // frontier never build it (IndexForDeadline is then read-only).
  (void)frontier.IndexForDeadline(0);
  if (progress) progress(1.0);
  frontier.solve_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return frontier;
}

}  // namespace perseus::planner
