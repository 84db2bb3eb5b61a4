#include "perseus/planner/frontier_io.h"

#include <gtest/gtest.h>

#include <random>

#include "perseus/planner/solver.h"
#include "src/planner/testing/random_profile.h"

namespace perseus::planner {
namespace {

// A frontier written to its files and parsed back gives every point's plan and
// the same deadline lookups.
TEST(FrontierIoTest, StoredFrontierRoundTrips) {
  std::mt19937 rng(5);
  const Profile profile = testing::RandomProfile(rng, 3, 5);
  PlannerOptions options;
  options.unit_time_s = 0.25;
  auto problem = testing::MakeProblem(profile, 3, 4, options);
  ASSERT_NE(problem, nullptr);
  auto frontier = SolveFrontier(problem);
  ASSERT_TRUE(frontier.ok()) << frontier.status().message();
  auto stored = StoredFrontier::Parse(FrontierToFiles(*frontier), "mem");
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  ASSERT_EQ(stored->points().size(), frontier->size());
  ASSERT_EQ(stored->computations().size(), static_cast<size_t>(problem->dag->num_nodes()));
  for (size_t k = 0; k < frontier->size(); ++k) {
    const Plan plan = frontier->PlanAt(k);
    const std::vector<int> freq = stored->FrequenciesAt(k);
    for (size_t i = 0; i < plan.size(); ++i) {
      ASSERT_EQ(freq[i], problem->option(static_cast<int>(i), plan[i]).frequency_mhz)
          << "point " << k << " computation " << i;
    }
    EXPECT_DOUBLE_EQ(stored->points()[k].time_s, frontier->points()[k].time_s);
  }
  EXPECT_EQ(stored->TMinIndex(), frontier->TMinIndex());
  std::uniform_real_distribution<double> u(frontier->points()[frontier->TMinIndex()].time_s * 0.9,
                                           frontier->points().front().time_s * 1.1);
  for (int i = 0; i < 200; ++i) {
    const double deadline = u(rng);
    EXPECT_EQ(stored->IndexForDeadline(deadline), frontier->IndexForDeadline(deadline));
  }
}

TEST(FrontierIoTest, MalformedFilesNameFileAndLine) {
  FrontierFiles files{"time,energy,model_time,model_energy\n1,2,3,4\n",
                      "id,gpu,stage,instruction,microbatch,order\n0,0,0,forward,0,0\n",
                      "point,computation,frequency\n0,0,1410\n0,7,1410\n"};
  auto stored = StoredFrontier::Parse(files, "job");
  ASSERT_FALSE(stored.ok());
  EXPECT_EQ(stored.status().message(), "job/plans.csv:3: unknown computation 7");
  files.plans_csv = "point,computation,frequency\n";
  EXPECT_EQ(StoredFrontier::Parse(files, "job").status().message(),
            "job/plans.csv: point 0 gives no frequency for computation 0");
}

}  // namespace
}  // namespace perseus::planner
