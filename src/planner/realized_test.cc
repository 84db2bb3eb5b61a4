#include "perseus/planner/realized.h"

#include <gtest/gtest.h>

#include <random>

#include "perseus/planner/problem.h"
#include "src/planner/testing/polish_reference.h"
#include "src/planner/testing/random_profile.h"
#include "src/planner/testing/shipped_problem.h"

namespace perseus::planner {
namespace {

// One stage: forward 2 s / 10 J @1400, 3 s / 7 J @1200, 3.5 s / 8 J @1100
// (dominated), backward 1 s / 5 J @1400.
Profile ChainProfile() {
  Profile p;
  p.source = "inline";
  p.num_stages = 1;
  p.measurements[{0, Instruction::kForward}] = {
      {1400, 2, 10, 2}, {1200, 3, 7, 3}, {1100, 3.5, 8, 4}};
  p.measurements[{0, Instruction::kBackward}] = {{1400, 1, 5, 5}};
  return p;
}

TEST(ProblemTest, ParetoOptionsAndDurationMapping) {
  PlannerOptions opt;
  opt.unit_time_s = 0.5;
  opt.blocking_power_w = 1;
  auto problem = testing::MakeProblem(ChainProfile(), 1, 1, opt);
  ASSERT_NE(problem, nullptr);
  const OptionSet& fwd = problem->set(0);
  ASSERT_EQ(fwd.options.size(), 2u);  // 3.5 s / 8 J: effective 4.5 > 4 of 3 s / 7 J
  EXPECT_EQ(fwd.options[0].frequency_mhz, 1400);
  EXPECT_DOUBLE_EQ(fwd.options[1].effective_j, 7 - 3);
  EXPECT_EQ(fwd.highest_frequency.frequency_mhz, 1400);
  EXPECT_EQ(fwd.cost.min_units, 4);
  EXPECT_EQ(fwd.cost.max_units, 6);
  EXPECT_EQ(fwd.OptionForUnits(4), 0);
  EXPECT_EQ(fwd.OptionForUnits(5), 0);  // 2.5 s planned: only the 2 s option fits
  EXPECT_EQ(fwd.OptionForUnits(6), 1);
}

TEST(ProblemTest, MissingProfileRowsAreNamed) {
  Profile p = ChainProfile();
  p.measurements.erase({0, Instruction::kBackward});
  auto dag = schedules::MakeOneFOneB(1, 2);
  ASSERT_TRUE(dag.ok());
  auto problem = BuildProblem(std::make_shared<Dag>(std::move(dag).value()), p, PlannerOptions{});
  ASSERT_FALSE(problem.ok());
  EXPECT_EQ(problem.status().code(), StatusCode::kInvalidInput);
  EXPECT_NE(problem.status().message().find("no rows for stage 0 backward"), std::string::npos)
      << problem.status().message();
}

TEST(ProblemTest, RejectsBadOptions) {
  auto dag = std::make_shared<Dag>(schedules::MakeOneFOneB(1, 1).value());
  PlannerOptions opt;
  opt.unit_time_s = 0;
  EXPECT_FALSE(BuildProblem(dag, ChainProfile(), opt).ok());
  opt.unit_time_s = 1e-12;
  EXPECT_FALSE(BuildProblem(dag, ChainProfile(), opt).ok());  // too many units
  opt.unit_time_s = 0.001;
  opt.blocking_power_w = -1;
  EXPECT_FALSE(BuildProblem(dag, ChainProfile(), opt).ok());
}

TEST(RealizedTest, AccountsComputationAndBlockingEnergy) {
  PlannerOptions opt;
  opt.blocking_power_w = 2;
  // Two stages, one microbatch: F0@s0 -> F0@s1 -> B0@s1 -> B0@s0, a chain.
  Profile p = ChainProfile();
  p.num_stages = 2;
  p.measurements[{1, Instruction::kForward}] = {{1400, 1, 4, 6}};
  p.measurements[{1, Instruction::kBackward}] = {{1400, 2, 6, 7}};
  auto problem = testing::MakeProblem(p, 2, 1, opt);
  ASSERT_NE(problem, nullptr);
  Figures all_max = EvaluateAllMax(*problem);
  // Time 2 + 1 + 2 + 1 = 6 s; energy 10 + 4 + 6 + 5 = 25 J plus blocking
  // 2 W x (2 GPUs x 6 s - 6 s computing) = 12 J.
  EXPECT_DOUBLE_EQ(all_max.time_s, 6);
  EXPECT_DOUBLE_EQ(all_max.energy_j, 37);
  Plan plan = FastestPlan(*problem);
  for (int i = 0; i < problem->dag->num_nodes(); ++i) {
    if (problem->dag->node(i).stage == 0 &&
        problem->dag->node(i).instruction == Instruction::kForward) {
      plan[i] = 1;
    }
  }
  Figures slow = EvaluatePlan(*problem, plan);
  EXPECT_DOUBLE_EQ(slow.time_s, 7);
  EXPECT_DOUBLE_EQ(slow.energy_j, 7 + 4 + 6 + 5 + 2 * (2 * 7 - 7));
}

// Properties of FillSlack and PolishPlan on random problems.
TEST(RealizedTest, FillSlackAndPolishMeetTheDeadlineAndNeverRaiseComputeCost) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 60; ++trial) {
    const int stages = 1 + static_cast<int>(rng() % 4);
    const int microbatches = 1 + static_cast<int>(rng() % 5);
    Profile profile = testing::RandomProfile(rng, stages, 2 + static_cast<int>(rng() % 5));
    PlannerOptions opt;
    opt.blocking_power_w = 0.5;
    auto problem = testing::MakeProblem(profile, stages, microbatches, opt);
    ASSERT_NE(problem, nullptr);
    const int n = problem->dag->num_nodes();
    auto effective = [&](const Plan& plan) {
      double sum = 0;
      for (int i = 0; i < n; ++i) sum += problem->option(i, plan[i]).effective_j;
      return sum;
    };
    const Plan fastest = FastestPlan(*problem);
    const double t_fast = EvaluatePlan(*problem, fastest).time_s;
    std::uniform_real_distribution<double> stretch(1.0, 1.6);
    const double deadline = t_fast * stretch(rng);

    Plan filled = FillSlack(*problem, fastest, deadline);
    EXPECT_LE(EvaluatePlan(*problem, filled).time_s, deadline * (1 + 1e-12));
    EXPECT_LE(effective(filled), effective(fastest) + 1e-9);
    for (int i = 0; i < n; ++i) EXPECT_GE(filled[i], fastest[i]);
    // Nothing more can be slowed on its own: every single extra step misses the deadline.
    for (int i = 0; i < n; ++i) {
      if (filled[i] + 1 >= static_cast<int>(problem->set(i).options.size())) continue;
      Plan more = filled;
      ++more[i];
      EXPECT_GT(EvaluatePlan(*problem, more).time_s, deadline * (1 - 1e-12))
          << "trial " << trial << " node " << i;
    }

    // Polish repairs a plan that is too slow.
    Plan slowest(n);
    for (int i = 0; i < n; ++i) slowest[i] = static_cast<int>(problem->set(i).options.size()) - 1;
    Plan polished = PolishPlan(*problem, slowest, deadline);
    EXPECT_LE(EvaluatePlan(*problem, polished).time_s, deadline * (1 + 1e-9)) << "trial " << trial;
  }
}

// The incremental refinement makes the textbook one's moves: the same plan
// from the slowest, the fastest and random plans, on random pipelines and
// on the shipped profiles (768 computations).
TEST(RealizedTest, PolishIsTheTextbookPolishMoveForMove) {
  std::mt19937 rng(23);
  int compared = 0, refined = 0;
  for (int trial = 0; trial < 80; ++trial) {
    const int stages = 1 + static_cast<int>(rng() % 5);
    const int microbatches = 1 + static_cast<int>(rng() % 8);
    Profile profile = testing::RandomProfile(rng, stages, 2 + static_cast<int>(rng() % 6));
    PlannerOptions opt;
    opt.blocking_power_w = 0.5 * static_cast<double>(rng() % 3);
    auto problem = testing::MakeProblem(profile, stages, microbatches, opt);
    ASSERT_NE(problem, nullptr);
    const int n = problem->dag->num_nodes();
    const double t_fast = EvaluatePlan(*problem, FastestPlan(*problem)).time_s;
    std::uniform_real_distribution<double> stretch(1.0, 1.5);
    const double deadline = t_fast * stretch(rng);
    Plan slowest(n), random(n);
    for (int i = 0; i < n; ++i) {
      const int options = static_cast<int>(problem->set(i).options.size());
      slowest[i] = options - 1;
      random[i] = static_cast<int>(rng() % options);
    }
    for (const Plan& start : {FastestPlan(*problem), slowest, random}) {
      const Plan fast = PolishPlan(*problem, start, deadline);
      EXPECT_EQ(fast, testing::PolishPlanReference(*problem, start, deadline)) << "trial " << trial;
      ++compared;
      if (fast != start) ++refined;
    }
  }
  EXPECT_EQ(compared, 240);
  EXPECT_GT(refined, 200);  // the cases do move plans
  for (const char* name : {"gpt3-175b+a100_sxm_bf16.csv", "bloom+a100_sxm_bf16.csv"}) {
    auto problem = testing::ShippedProblem(name, 48);
    ASSERT_NE(problem, nullptr) << name;
    const double all_max = EvaluateAllMax(*problem).time_s;
    const int n = problem->dag->num_nodes();
    Plan slowest(n);
    for (int i = 0; i < n; ++i) slowest[i] = static_cast<int>(problem->set(i).options.size()) - 1;
    for (double factor : {1.0, 1.05}) {
      for (const Plan& start : {FastestPlan(*problem), slowest}) {  // refine; repair, refine
        const Plan fast = PolishPlan(*problem, start, all_max * factor);
        EXPECT_EQ(fast, testing::PolishPlanReference(*problem, start, all_max * factor)) << name;
        EXPECT_NE(fast, start) << name;
      }
    }
  }
}

}  // namespace
}  // namespace perseus::planner
