#include "perseus/planner/frontier.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <random>
#include <utility>

#include "perseus/planner/realized.h"
#include "src/planner/testing/shipped_problem.h"

namespace perseus::planner {
namespace {

// A frontier of `count` random points over plans of `n` computations, each
// plan a few random changes away from the previous one.
struct RandomFrontier {
  Frontier frontier{nullptr};
  std::vector<Plan> plans;
};

RandomFrontier MakeRandom(std::mt19937& rng, size_t count, int n) {
  RandomFrontier r;
  Plan plan(n, 0);
  std::uniform_real_distribution<double> u(0, 1);
  double model_time = 1000;
  for (size_t k = 0; k < count; ++k) {
    for (int c = 0; c < 3; ++c) plan[rng() % n] = static_cast<int>(rng() % 70);
    FrontierPoint p;
    p.model_time_s = model_time--;
    p.time_s = p.model_time_s - 3 * u(rng);  // realized times need not be monotone
    p.energy_j = 100 + 50 * u(rng);
    p.model_energy_j = p.energy_j;
    r.frontier.Append(p, plan);
    r.plans.push_back(plan);
  }
  return r;
}

TEST(FrontierTest, PlansAreRebuiltExactlyAcrossCheckpoints) {
  std::mt19937 rng(1);
  RandomFrontier r = MakeRandom(rng, 3 * Frontier::kCheckpointInterval + 17, 400);
  ASSERT_EQ(r.frontier.size(), r.plans.size());
  for (size_t k = 0; k < r.plans.size(); ++k) {
    ASSERT_EQ(r.frontier.PlanAt(k), r.plans[k]) << "point " << k;
  }
  // Compact: far below storing every plan in full.
  EXPECT_LT(r.frontier.PlanStorageBytes(), r.plans.size() * 400 * sizeof(uint16_t) / 10);
}

// A frontier appended by changes stores the same plans as one appended
// plan by plan, across checkpoints, with unchanged computations listed too.
TEST(FrontierTest, AppendingChangesStoresTheSamePlans) {
  std::mt19937 rng(3);
  auto problem = testing::ShippedProblem("gpt3-175b+a100_sxm_bf16.csv", 4);
  ASSERT_NE(problem, nullptr);
  const int n = problem->dag->num_nodes();
  Frontier by_plan(problem), by_changes(problem);
  Plan plan(n, 0);
  std::vector<Plan> plans;
  std::vector<double> deadlines;
  const double fastest = EvaluatePlan(*problem, plan).time_s;
  for (size_t k = 0; k < 2 * Frontier::kCheckpointInterval + 40; ++k) {
    std::vector<std::pair<int, int>> changes;
    if (k > 0) {
      const int first = static_cast<int>(rng() % static_cast<unsigned>(n - 4));
      for (int c = 0; c < 4; ++c) {
        const int i = first + c;  // each computation once, as the solver lists them
        if (c == 3) {
          changes.emplace_back(i, plan[i]);  // listed, unchanged
          continue;
        }
        plan[i] = static_cast<int>(rng() % problem->set(i).options.size());
        changes.emplace_back(i, plan[i]);
      }
    }
    FrontierPoint p;
    p.time_s = EvaluatePlan(*problem, plan).time_s;
    p.model_time_s = p.time_s;
    p.model_energy_j = p.energy_j = 10.0 + static_cast<double>(k);
    const double deadline = std::max(p.time_s, fastest * 1.2);
    by_plan.AppendToFill(p, plan, deadline);
    if (k == 0) {
      by_changes.AppendToFill(p, plan, deadline);
    } else {
      by_changes.AppendChangesToFill(p, changes, deadline);
    }
    plans.push_back(plan);
    deadlines.push_back(deadline);
  }
  ASSERT_EQ(by_changes.size(), plans.size());
  for (size_t k = 0; k < plans.size(); ++k) {
    ASSERT_EQ(by_changes.PlanAt(k), FillSlack(*problem, plans[k], deadlines[k])) << "point " << k;
    ASSERT_EQ(by_changes.PlanAt(k), by_plan.PlanAt(k)) << "point " << k;
  }
  EXPECT_EQ(by_changes.PlanStorageBytes(), by_plan.PlanStorageBytes());
}

TEST(FrontierTest, DeadlineLookupMatchesALinearScan) {
  std::mt19937 rng(2);
  RandomFrontier r = MakeRandom(rng, 700, 10);
  const auto& points = r.frontier.points();
  std::uniform_real_distribution<double> deadline(200, 1010);
  for (int q = 0; q < 2000; ++q) {
    const double t = q < 700 ? points[q].time_s : deadline(rng);
    std::optional<size_t> expected;
    for (size_t k = 0; k < points.size(); ++k) {
      if (points[k].time_s > t) continue;
      if (!expected || points[k].energy_j < points[*expected].energy_j) expected = k;
    }
    std::optional<size_t> got = r.frontier.IndexForDeadline(t);
    ASSERT_EQ(got.has_value(), expected.has_value()) << t;
    if (expected) {
      EXPECT_EQ(points[*got].energy_j, points[*expected].energy_j) << t;
    }
  }
  double fastest = std::numeric_limits<double>::infinity();
  for (const auto& p : points) fastest = std::min(fastest, p.time_s);
  EXPECT_FALSE(r.frontier.IndexForDeadline(fastest * 0.999).has_value());
}

TEST(FrontierTest, TMinAndTStar) {
  Frontier f(nullptr);
  Plan plan = {0};
  f.Append({10, 5, 10, 5}, plan);
  f.Append({8, 7, 9, 7}, plan);
  f.Append({8, 6.5, 8, 6.5}, plan);  // same time, less energy: this is T_min
  f.Append({9, 4, 7, 4}, plan);      // lowest energy: T*
  EXPECT_EQ(f.TMinIndex(), 2u);
  EXPECT_EQ(f.TStarIndex(), 3u);
  EXPECT_EQ(*f.IndexForDeadline(8.5), 2u);
  EXPECT_EQ(*f.IndexForDeadline(9), 3u);
}

// Pareto points against a quadratic scan: kept iff no other point is at least
// as fast and at most as costly (equal figures: the first kept); the kept
// points keep their plans, across checkpoints.
TEST(FrontierTest, ParetoOnlyKeepsExactlyTheNonDominatedPointsWithTheirPlans) {
  std::mt19937 rng(3);
  RandomFrontier r = MakeRandom(rng, 2 * Frontier::kCheckpointInterval + 40, 50);
  // Duplicates of earlier points' figures, as repeated unit steps give.
  const auto& points = r.frontier.points();
  for (int d = 0; d < 30; ++d) {
    FrontierPoint p = points[rng() % points.size()];
    Plan plan(50, d);
    r.frontier.Append(p, plan);
    r.plans.push_back(plan);
  }
  std::vector<size_t> expected;
  for (size_t k = 0; k < points.size(); ++k) {
    bool dominated = false;
    for (size_t q = 0; q < points.size() && !dominated; ++q) {
      if (q == k) continue;
      const bool no_worse =
          points[q].time_s <= points[k].time_s && points[q].energy_j <= points[k].energy_j;
      const bool equal =
          points[q].time_s == points[k].time_s && points[q].energy_j == points[k].energy_j;
      dominated = no_worse && (!equal || q < k);
    }
    if (!dominated) expected.push_back(k);
  }
  std::sort(expected.begin(), expected.end(),
            [&](size_t a, size_t b) { return points[a].time_s > points[b].time_s; });
  EXPECT_EQ(r.frontier.ParetoIndices(), expected);
  ASSERT_LT(expected.size(), points.size() / 4);  // the random points are mostly dominated
  Frontier pareto = r.frontier.ParetoOnly();
  ASSERT_EQ(pareto.size(), expected.size());
  for (size_t j = 0; j < expected.size(); ++j) {
    EXPECT_EQ(pareto.points()[j].time_s, points[expected[j]].time_s);
    EXPECT_EQ(pareto.points()[j].energy_j, points[expected[j]].energy_j);
    EXPECT_EQ(pareto.PlanAt(j), r.plans[expected[j]]) << "kept point " << j;
  }
  // Every deadline gets the same energy as from the whole frontier.
  for (const FrontierPoint& p : points) {
    auto all = r.frontier.IndexForDeadline(p.time_s);
    auto kept = pareto.IndexForDeadline(p.time_s);
    ASSERT_TRUE(all && kept);
    EXPECT_EQ(pareto.points()[*kept].energy_j, points[*all].energy_j);
  }
}

}  // namespace
}  // namespace perseus::planner
