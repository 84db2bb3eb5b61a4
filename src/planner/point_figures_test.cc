#include "src/planner/point_figures.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "perseus/planner/realized.h"
#include "src/planner/testing/random_profile.h"
#include "src/planner/testing/shipped_problem.h"

namespace perseus::planner {
namespace {

uint64_t Bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof(b));
  return b;
}

// FillAndEvaluate is FillSlack then EvaluatePlan, bit for bit, on plans
// that meet the deadline and on plans that miss it, with one PointFigures
// reused for many plans.
void ExpectSameAsFillSlackAndEvaluatePlan(const Problem& problem, std::mt19937& rng, int plans) {
  const int n = problem.dag->num_nodes();
  PointFigures figures(problem);
  Plan filled;
  for (int k = 0; k < plans; ++k) {
    Plan base(n);
    for (int i = 0; i < n; ++i) {
      const int size = static_cast<int>(problem.set(i).options.size());
      base[i] = k % 3 == 0 ? 0 : static_cast<int>(rng() % size);
    }
    const double t = EvaluatePlan(problem, base).time_s;
    std::uniform_real_distribution<double> stretch(0.9, 1.5);
    const double deadline = t * stretch(rng);
    const Plan expected_plan = FillSlack(problem, base, deadline);
    const Figures expected = EvaluatePlan(problem, expected_plan);
    const Figures got = figures.FillAndEvaluate(base, deadline, &filled);
    EXPECT_EQ(filled, expected_plan) << "plan " << k;
    Plan by_position(n);
    for (int p = 0; p < n; ++p) by_position[p] = base[figures.node_at(p)];
    const Figures same = figures.FillAndEvaluateByPosition(by_position, deadline);
    EXPECT_EQ(Bits(same.time_s), Bits(expected.time_s)) << "plan " << k;
    EXPECT_EQ(Bits(same.energy_j), Bits(expected.energy_j)) << "plan " << k;
    EXPECT_EQ(Bits(got.time_s), Bits(expected.time_s)) << "plan " << k;
    EXPECT_EQ(Bits(got.energy_j), Bits(expected.energy_j)) << "plan " << k;
  }
}

TEST(PointFiguresTest, SameAsFillSlackAndEvaluatePlanOnRandomProblems) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    const int stages = 1 + static_cast<int>(rng() % 5);
    const int microbatches = 1 + static_cast<int>(rng() % 7);
    Profile profile = testing::RandomProfile(rng, stages, 2 + static_cast<int>(rng() % 5));
    PlannerOptions opt;
    opt.blocking_power_w = 0.5 * static_cast<double>(rng() % 3);
    auto problem = testing::MakeProblem(profile, stages, microbatches, opt);
    ASSERT_NE(problem, nullptr);
    ExpectSameAsFillSlackAndEvaluatePlan(*problem, rng, 8);
  }
}

TEST(PointFiguresTest, SameAsFillSlackAndEvaluatePlanOnAShippedProblem) {
  auto problem = testing::ShippedProblem("gpt3-175b+a100_sxm_bf16.csv", 48);
  ASSERT_NE(problem, nullptr);
  std::mt19937 rng(7);
  ExpectSameAsFillSlackAndEvaluatePlan(*problem, rng, 12);
}

}  // namespace
}  // namespace perseus::planner
