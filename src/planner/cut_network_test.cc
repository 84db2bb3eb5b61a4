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
    // The same networks reached arc by arc (Update / Remove): the same cut.
    CutNetwork incremental(dag);
    std::vector<char> in_incremental;
    // Every arc of the network with its endpoints.
    struct ArcInfo {
      int id, from, to;
      bool dependency_like;  // infinite capacity in the sweep
    };
    std::vector<ArcInfo> arcs;
    for (int i = 0; i < n; ++i) {
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
        if (arcs[a].dependency_like && rng() % 4 != 0) {
          b.upper = CutNetwork::kInfinite;
        } else {
          b.lower = flow[a] > 0 ? static_cast<int64_t>(rng() % (flow[a] + 1)) : 0;
          b.upper = flow[a] + static_cast<int64_t>(rng() % 7);
          finite_sum += b.upper + b.lower;
        }
      }
      network.Begin();
      for (size_t a = 0; a < arcs.size(); ++a) {
        if (bounds[a].active) network.Set(arcs[a].id, bounds[a].lower, bounds[a].upper);
      }
      const bool changed = network.Finish();
      ASSERT_TRUE(network.Solve().ok()) << "trial " << trial << " round " << round;
      in_incremental.resize(arcs.size(), 0);
      bool incremental_changed = false;
      for (size_t a = 0; a < arcs.size(); ++a) {
        if (bounds[a].active) {
          incremental_changed |= incremental.Update(arcs[a].id, bounds[a].lower, bounds[a].upper);
        } else if (in_incremental[a]) {
          incremental.Remove(arcs[a].id);
          incremental_changed = true;
        }
        in_incremental[a] = bounds[a].active ? 1 : 0;
      }
      EXPECT_EQ(incremental_changed, changed) << "trial " << trial << " round " << round;
      ASSERT_TRUE(incremental.Solve().ok()) << "trial " << trial << " round " << round;
      EXPECT_EQ(incremental.value(), network.value());
      EXPECT_EQ(incremental.num_active_arcs(), network.num_active_arcs());
      std::vector<char> on_source_side(2 + 2 * n, 0);
      for (int v : incremental.source_side()) on_source_side[v] = 1;
      for (int v = 0; v < 2 + 2 * n; ++v) {
        EXPECT_EQ(incremental.OnSourceSide(v), network.OnSourceSide(v)) << "node " << v;
        EXPECT_EQ(on_source_side[v] != 0, network.OnSourceSide(v)) << "node " << v;
        if (v >= 2) {
          const int i = incremental.ComputationOf(v);
          EXPECT_EQ(CutNetwork::IsOut(v) ? incremental.Out(i) : incremental.In(i), v);
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

// Finish reports whether the network changed: same arcs and bounds, or not.
TEST(CutNetworkTest, FinishSaysWhetherTheNetworkChanged) {
  std::mt19937 rng(3);
  const Dag dag = RandomDag(rng, 6);
  CutNetwork network(dag);
  auto set_all = [&](int64_t upper) {
    network.Begin();
    for (int i = 0; i < dag.num_nodes(); ++i) network.Set(network.ComputationArc(i), 0, upper);
    return network.Finish();
  };
  EXPECT_TRUE(set_all(5));
  EXPECT_FALSE(set_all(5));
  EXPECT_TRUE(set_all(6));
  network.Begin();
  EXPECT_TRUE(network.Finish());  // every arc left
  network.Begin();
  EXPECT_FALSE(network.Finish());
}

}  // namespace
}  // namespace perseus::planner
