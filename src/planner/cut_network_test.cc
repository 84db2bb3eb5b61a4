#include "src/planner/cut_network.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "src/planner/max_flow.h"

namespace perseus::planner {
namespace {

struct Bounds {
  int64_t lower = 0, upper = 0;
  bool active = false;
};

// A random DAG: computations on a few GPUs (program order) plus random
// forward dependencies.
Dag RandomDag(std::mt19937& rng, int n) {
  Dag dag;
  const int gpus = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < n; ++i) {
    dag.AddComputation(Computation(static_cast<int>(rng() % gpus), 0, Instruction::kForward, i));
  }
  for (int k = 0; k < n; ++k) {
    const int u = static_cast<int>(rng() % n), v = static_cast<int>(rng() % n);
    if (u < v) dag.AddDependency(u, v);
  }
  EXPECT_TRUE(dag.Finalize().ok());
  return dag;
}

// Every arc of the network with its endpoints; infinite: a source, sink or
// dependency arc (infinite capacity in the sweep).
struct ArcInfo {
  int id, from, to;
  bool infinite;
};
std::vector<ArcInfo> ArcsOf(const Dag& dag, const CutNetwork& network) {
  std::vector<ArcInfo> arcs;
  for (int i = 0; i < dag.num_nodes(); ++i) {
    arcs.push_back({network.ComputationArc(i), network.In(i), network.Out(i), false});
    if (network.SourceArc(i) >= 0) {
      arcs.push_back({network.SourceArc(i), CutNetwork::kSource, network.In(i), true});
    }
    if (network.SinkArc(i) >= 0) {
      arcs.push_back({network.SinkArc(i), network.Out(i), CutNetwork::kSink, true});
    }
    const auto successors = dag.successors(i);
    for (size_t p = 0; p < successors.size(); ++p) {
      const int e = dag.successor_edge_begin(i) + static_cast<int>(p);
      arcs.push_back({network.DependencyArc(e), network.Out(i), network.In(successors[p]), true});
    }
  }
  return arcs;
}

// Over many rounds on one network (so flows carry over from round to round,
// as in the sweep), the cut and the value equal those of a fresh
// LowerBoundedMaxFlow with the same arcs: random active subsets, random
// bounds around a random feasible flow, infinite dependency arcs, arcs that
// leave and come back.
TEST(CutNetworkTest, SameCutAsAFreshMaxFlowRoundAfterRound) {
  std::mt19937 rng(11);
  int rounds_with_flow = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const Dag dag = RandomDag(rng, 2 + static_cast<int>(rng() % 10));
    const int n = dag.num_nodes();
    CutNetwork network(dag);
    const std::vector<ArcInfo> arcs = ArcsOf(dag, network);
    std::vector<Bounds> previous;  // the last round's (none active at first)
    for (int round = 0; round < 12; ++round) {
      // A random feasible flow: a few source-sink paths of random amounts.
      std::vector<int64_t> flow(arcs.size(), 0);
      auto index_of = [&](int id) {
        for (size_t a = 0; a < arcs.size(); ++a) {
          if (arcs[a].id == id) return a;
        }
        return arcs.size();
      };
      const int paths = static_cast<int>(rng() % 4);
      for (int p = 0; p < paths; ++p) {
        std::vector<int> starts;
        for (int i = 0; i < n; ++i) {
          if (network.SourceArc(i) >= 0) starts.push_back(i);
        }
        int u = starts[rng() % starts.size()];
        const int64_t f = 1 + static_cast<int64_t>(rng() % 9);
        flow[index_of(network.SourceArc(u))] += f;
        for (;;) {
          flow[index_of(network.ComputationArc(u))] += f;
          const auto successors = dag.successors(u);
          if (successors.empty()) break;
          const size_t p2 = rng() % successors.size();
          flow[index_of(
              network.DependencyArc(dag.successor_edge_begin(u) + static_cast<int>(p2)))] += f;
          u = successors[p2];
        }
        flow[index_of(network.SinkArc(u))] += f;
      }
      std::vector<Bounds> bounds(arcs.size());
      int64_t finite_sum = 0;
      for (size_t a = 0; a < arcs.size(); ++a) {
        Bounds& b = bounds[a];
        b.active = flow[a] > 0 || rng() % 2 == 0;
        if (!b.active) continue;
        if (arcs[a].infinite && rng() % 4 != 0) {
          b.upper = CutNetwork::kInfinite;
        } else {
          b.lower = flow[a] > 0 ? static_cast<int64_t>(rng() % (flow[a] + 1)) : 0;
          b.upper = flow[a] + static_cast<int64_t>(rng() % 7);
          finite_sum += b.upper + b.lower;
        }
      }
      // Arc by arc, as the sweep does: Update what is in, Remove what left.
      // The network changed iff some arc came, left or got new bounds.
      bool changed = false, expected_changed = false;
      int64_t active = 0;
      previous.resize(arcs.size());
      for (size_t a = 0; a < arcs.size(); ++a) {
        const Bounds& b = bounds[a];
        const Bounds& was = previous[a];
        expected_changed |=
            b.active != was.active || (b.active && (b.lower != was.lower || b.upper != was.upper));
        if (b.active) {
          changed |= network.Update(arcs[a].id, b.lower, b.upper);
          ++active;
        } else {
          changed |= network.Remove(arcs[a].id);
        }
      }
      previous = bounds;
      EXPECT_EQ(changed, expected_changed) << "trial " << trial << " round " << round;
      EXPECT_EQ(network.num_active_arcs(), active);
      ASSERT_TRUE(network.Solve().ok()) << "trial " << trial << " round " << round;
      EXPECT_TRUE(network.PairRecordsHold()) << "trial " << trial << " round " << round;
      std::vector<char> on_source_side(2 + 2 * n, 0);
      for (int v : network.source_side()) on_source_side[v] = 1;
      for (int v = 0; v < 2 + 2 * n; ++v) {
        EXPECT_EQ(on_source_side[v] != 0, network.OnSourceSide(v)) << "node " << v;
        if (v >= 2) {
          const int i = network.ComputationOf(v);
          EXPECT_EQ(CutNetwork::IsOut(v) ? network.Out(i) : network.In(i), v);
        }
      }

      LowerBoundedMaxFlow fresh;
      fresh.Reset(2 + 2 * n);
      const int64_t infinity = finite_sum + 1;
      for (size_t a = 0; a < arcs.size(); ++a) {
        if (!bounds[a].active) continue;
        const int64_t upper = bounds[a].upper == CutNetwork::kInfinite ? infinity : bounds[a].upper;
        fresh.AddArc(arcs[a].from, arcs[a].to, bounds[a].lower, upper);
      }
      ASSERT_TRUE(fresh.Solve(CutNetwork::kSource, CutNetwork::kSink, infinity).ok());
      if (fresh.value() >= infinity) continue;  // an all-infinite path: not a case the sweep has
      EXPECT_EQ(network.value(), fresh.value()) << "trial " << trial << " round " << round;
      for (int v = 0; v < 2 + 2 * n; ++v) {
        EXPECT_EQ(network.OnSourceSide(v), fresh.OnSourceSide(v))
            << "trial " << trial << " round " << round << " node " << v;
      }
      // The flow meets its bounds and conservation.
      std::vector<int64_t> balance(2 + 2 * n, 0);
      for (size_t a = 0; a < arcs.size(); ++a) {
        if (!bounds[a].active) continue;
        const int64_t f = network.Flow(arcs[a].id);
        EXPECT_GE(f, bounds[a].lower);
        EXPECT_LE(f, bounds[a].upper);
        balance[arcs[a].to] += f;
        balance[arcs[a].from] -= f;
      }
      for (int v = 2; v < 2 + 2 * n; ++v) EXPECT_EQ(balance[v], 0) << "node " << v;
      EXPECT_EQ(-balance[CutNetwork::kSource], network.value());
      if (network.value() > 0) ++rounds_with_flow;
    }
  }
  EXPECT_GT(rounds_with_flow, 100);
}

// Small changes between solves, as the sweep's steps make them: bounds that
// keep the flow feasible (so the last cut's source side can be extended
// instead of searching again: extended_solves), arcs that come in empty,
// bounds that take away residual capacity inside the source side, and now
// and then a change that unbalances the flow (a full solve). Every cut and
// value equal a fresh LowerBoundedMaxFlow's, extended or not, with or
// without augmenting paths found by the extension.
TEST(CutNetworkTest, ExtendedCutsEqualAFreshMaxFlow) {
  std::mt19937 rng(5);
  int64_t solves = 0;
  int64_t extended_total = 0, augmented_total = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const Dag dag = RandomDag(rng, 4 + static_cast<int>(rng() % 12));
    const int n = dag.num_nodes();
    CutNetwork network(dag);
    const std::vector<ArcInfo> arcs = ArcsOf(dag, network);
    // Every arc in, computation arcs with small finite bounds.
    std::vector<Bounds> bounds(arcs.size());
    for (size_t a = 0; a < arcs.size(); ++a) {
      bounds[a].active = true;
      bounds[a].upper =
          arcs[a].infinite ? CutNetwork::kInfinite : 1 + static_cast<int64_t>(rng() % 9);
      network.Update(arcs[a].id, bounds[a].lower, bounds[a].upper);
    }
    for (int round = 0; round < 30; ++round) {
      if (round > 0) {
        const int changes = 1 + static_cast<int>(rng() % 3);
        for (int c = 0; c < changes; ++c) {
          const size_t a = rng() % arcs.size();
          Bounds& b = bounds[a];
          const int64_t flow = b.active ? network.Flow(arcs[a].id) : 0;
          const int kind = static_cast<int>(rng() % 10);
          if (arcs[a].infinite) {
            // Dependencies leave (only when empty: keeps the flow) and come back.
            if (b.active && flow == 0 && kind < 5) {
              b.active = false;
              network.Remove(arcs[a].id);
            } else if (!b.active) {
              b.active = true;
              network.Update(arcs[a].id, 0, CutNetwork::kInfinite);
            }
            continue;
          }
          if (kind < 6) {  // around the flow: stays feasible
            b.lower = static_cast<int64_t>(rng() % (flow + 1));
            b.upper = flow + static_cast<int64_t>(rng() % 4);
          } else if (kind < 8) {  // exactly the flow: no residual either way
            b.lower = b.upper = flow;
          } else {  // below the flow, every lower bound 0 (still feasible): unbalanced
            b.upper = static_cast<int64_t>(rng() % 10);
            b.lower = 0;
            for (size_t o = 0; o < arcs.size(); ++o) {
              if (o == a || !bounds[o].active || arcs[o].infinite) continue;
              bounds[o].lower = 0;
              network.Update(arcs[o].id, 0, bounds[o].upper);
            }
          }
          b.active = true;
          network.Update(arcs[a].id, b.lower, b.upper);
        }
      }
      int64_t finite_sum = 0;
      for (size_t a = 0; a < arcs.size(); ++a) {
        if (bounds[a].active && !arcs[a].infinite) finite_sum += bounds[a].upper + bounds[a].lower;
      }
      const int64_t infinity = finite_sum + 1;
      LowerBoundedMaxFlow fresh;
      fresh.Reset(2 + 2 * n);
      for (size_t a = 0; a < arcs.size(); ++a) {
        if (!bounds[a].active) continue;
        fresh.AddArc(arcs[a].from, arcs[a].to, bounds[a].lower,
                     arcs[a].infinite ? infinity : bounds[a].upper);
      }
      const bool feasible = fresh.Solve(CutNetwork::kSource, CutNetwork::kSink, infinity).ok();
      const int64_t extended = network.extended_solves();
      // (Several changes in one round can ask for more than the bounds allow.)
      ASSERT_EQ(network.Solve().ok(), feasible) << "trial " << trial << " round " << round;
      EXPECT_TRUE(network.PairRecordsHold()) << "trial " << trial << " round " << round;
      if (!feasible) break;
      const bool was_extended = network.extended_solves() > extended;
      ++solves;
      ASSERT_LT(fresh.value(), infinity);  // every source-sink path has a computation arc
      EXPECT_EQ(network.value(), fresh.value()) << "trial " << trial << " round " << round;
      for (int v = 0; v < 2 + 2 * n; ++v) {
        EXPECT_EQ(network.OnSourceSide(v), fresh.OnSourceSide(v))
            << "trial " << trial << " round " << round << " node " << v
            << (was_extended ? " (extended)" : "");
      }
      std::vector<char> listed(2 + 2 * n, 0);
      for (int v : network.source_side()) {
        EXPECT_FALSE(listed[v]) << "node " << v << " listed twice";
        listed[v] = 1;
        EXPECT_TRUE(network.OnSourceSide(v));
      }
    }
    extended_total += network.extended_solves();
    augmented_total += network.augmented_extensions();
  }
  // The extension is taken on more than a quarter of the rounds, and not on
  // all (full solves too).
  EXPECT_GT(extended_total, solves / 4);
  EXPECT_LT(extended_total, solves);
  // Some extensions augmented the flow (and kept the old side's tree).
  EXPECT_GT(augmented_total, 0);
  EXPECT_LT(augmented_total, extended_total);
}

// Update and Remove report whether the network changed: same arcs and
// bounds, or not.
TEST(CutNetworkTest, UpdateAndRemoveSayWhetherTheNetworkChanged) {
  std::mt19937 rng(3);
  const Dag dag = RandomDag(rng, 6);
  CutNetwork network(dag);
  auto update_all = [&](int64_t upper) {
    bool changed = false;
    for (int i = 0; i < dag.num_nodes(); ++i) {
      changed |= network.Update(network.ComputationArc(i), 0, upper);
    }
    return changed;
  };
  auto remove_all = [&] {
    bool changed = false;
    for (int i = 0; i < dag.num_nodes(); ++i) changed |= network.Remove(network.ComputationArc(i));
    return changed;
  };
  EXPECT_TRUE(update_all(5));
  EXPECT_FALSE(update_all(5));
  EXPECT_TRUE(update_all(6));
  EXPECT_EQ(network.num_active_arcs(), dag.num_nodes());
  EXPECT_TRUE(remove_all());  // every arc left
  EXPECT_FALSE(remove_all());
  EXPECT_EQ(network.num_active_arcs(), 0);
}

}  // namespace
}  // namespace perseus::planner
