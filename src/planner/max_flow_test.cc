#include "src/planner/max_flow.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <vector>

namespace perseus::planner {
namespace {

struct Arc {
  int from, to;
  int64_t lower, upper;
};

// Value of the s-t cut with source side `mask`: upper capacity leaving it
// minus lower bounds entering it.
int64_t CutValue(const std::vector<Arc>& arcs, unsigned mask) {
  int64_t value = 0;
  for (const Arc& a : arcs) {
    bool from_s = mask >> a.from & 1, to_s = mask >> a.to & 1;
    if (from_s && !to_s) value += a.upper;
    if (!from_s && to_s) value -= a.lower;
  }
  return value;
}

int64_t BruteForceMinCut(const std::vector<Arc>& arcs, int n, int s, int t) {
  int64_t best = std::numeric_limits<int64_t>::max();
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    if (!(mask >> s & 1) || (mask >> t & 1)) continue;
    best = std::min(best, CutValue(arcs, mask));
  }
  return best;
}

// Random DAG-ish networks (arcs go forward in node order, plus a few backward
// arcs) with lower bounds chosen below a random feasible circulation-free flow,
// so a feasible flow always exists.
TEST(MaxFlowTest, MatchesBruteForceMinCutOnRandomNetworks) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 400; ++trial) {
    const int n = 2 + static_cast<int>(rng() % 7);
    const int s = 0, t = n - 1;
    std::vector<Arc> arcs;
    // Route a few random s-t paths of random flow; each arc on a path gets a
    // lower bound at most its flow and an upper bound at least its flow.
    std::vector<std::vector<int64_t>> flow(n, std::vector<int64_t>(n, 0));
    const int paths = 1 + static_cast<int>(rng() % 4);
    for (int p = 0; p < paths; ++p) {
      int u = s;
      const int64_t f = rng() % 5;
      while (u != t) {
        int v = u + 1 + static_cast<int>(rng() % (t - u));
        flow[u][v] += f;
        u = v;
      }
    }
    for (int u = 0; u < n; ++u) {
      for (int v = 0; v < n; ++v) {
        if (u == v) continue;
        bool present = flow[u][v] > 0 || rng() % 3 == 0;
        if (!present) continue;
        int64_t lower = flow[u][v] > 0 ? static_cast<int64_t>(rng() % (flow[u][v] + 1)) : 0;
        int64_t upper = flow[u][v] + static_cast<int64_t>(rng() % 6);
        if (u > v && rng() % 2) lower = 0;  // backward arcs mostly free
        arcs.push_back({u, v, lower, upper});
      }
    }
    LowerBoundedMaxFlow mf;
    // Alternate: cold start with the simple or the fast Dinic, or a warm
    // start from random flows; all give the same value and the same cut.
    const int mode = trial % 3;
    mf.set_algorithm(mode == 0 ? LowerBoundedMaxFlow::Algorithm::kSimple
                               : LowerBoundedMaxFlow::Algorithm::kFast);
    mf.Reset(n);
    std::vector<int> ids;
    int64_t infinity = 1;
    for (const Arc& a : arcs) {
      const int64_t start = mode == 2 ? static_cast<int64_t>(rng() % (a.upper + 3)) - 1 : a.lower;
      ids.push_back(mf.AddArcWithFlow(a.from, a.to, a.lower, a.upper, start));
      infinity += a.upper;
    }
    ASSERT_TRUE(mf.Solve(s, t, infinity).ok()) << "trial " << trial;
    const int64_t expected = BruteForceMinCut(arcs, n, s, t);
    EXPECT_EQ(mf.value(), expected) << "trial " << trial;
    // The flow meets its bounds and is conserved; the reported cut is minimum.
    std::vector<int64_t> net(n, 0);
    unsigned mask = 0;
    for (int v = 0; v < n; ++v) mask |= (mf.OnSourceSide(v) ? 1u : 0u) << v;
    for (size_t k = 0; k < arcs.size(); ++k) {
      int64_t f = mf.Flow(ids[k]);
      EXPECT_GE(f, arcs[k].lower);
      EXPECT_LE(f, arcs[k].upper);
      net[arcs[k].from] -= f;
      net[arcs[k].to] += f;
    }
    for (int v = 0; v < n; ++v) {
      if (v != s && v != t) {
        EXPECT_EQ(net[v], 0) << "node " << v << " trial " << trial;
      }
    }
    EXPECT_EQ(net[t], mf.value());
    EXPECT_TRUE(mask & 1u);
    EXPECT_FALSE(mask >> t & 1u);
    EXPECT_EQ(CutValue(arcs, mask), expected) << "trial " << trial;
    // The smallest source side: reachable from s in a cold, simple solve.
    LowerBoundedMaxFlow cold;
    cold.set_algorithm(LowerBoundedMaxFlow::Algorithm::kSimple);
    cold.Reset(n);
    for (const Arc& a : arcs) cold.AddArc(a.from, a.to, a.lower, a.upper);
    ASSERT_TRUE(cold.Solve(s, t, infinity).ok());
    for (int v = 0; v < n; ++v) EXPECT_EQ(cold.OnSourceSide(v), mf.OnSourceSide(v)) << trial;
  }
}

TEST(MaxFlowTest, UnsatisfiableLowerBoundIsInfeasible) {
  // s -> a needs at least 3, but a can pass on at most 2.
  LowerBoundedMaxFlow mf;
  mf.Reset(3);
  mf.AddArc(0, 1, 3, 5);
  mf.AddArc(1, 2, 0, 2);
  Status status = mf.Solve(0, 2, 100);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInfeasible);
}

TEST(MaxFlowTest, ReusableAfterReset) {
  LowerBoundedMaxFlow mf;
  for (int round = 0; round < 3; ++round) {
    mf.Reset(4);
    mf.AddArc(0, 1, 0, 3);
    mf.AddArc(0, 2, 1, 2);
    mf.AddArc(1, 3, 0, 2);
    mf.AddArc(2, 3, 0, 4);
    mf.AddArc(1, 2, 0, 1);
    ASSERT_TRUE(mf.Solve(0, 3, 100).ok());
    EXPECT_EQ(mf.value(), 5);
  }
}

}  // namespace
}  // namespace perseus::planner
