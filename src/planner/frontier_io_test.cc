#include "perseus/planner/frontier_io.h"

#include <gtest/gtest.h>

#include <random>

#include "perseus/planner/improve.h"
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
                      "point,computation,frequency\n0,0,1410\n0,7,1410\n", ""};
  auto stored = StoredFrontier::Parse(files, "job");
  ASSERT_FALSE(stored.ok());
  EXPECT_EQ(stored.status().message(), "job/plans.csv:3: unknown computation 7");
  files.plans_csv = "point,computation,frequency\n";
  EXPECT_EQ(StoredFrontier::Parse(files, "job").status().message(),
            "job/plans.csv: point 0 gives no frequency for computation 0");
}

// With problem.json, a stored frontier improves a deadline's plan exactly as
// the solved one does (same plan, same figures); without it, the point as is.
TEST(FrontierIoTest, StoredProblemGivesTheSameDeadlinePlans) {
  const testing::SolvedCase c = testing::SolveRandomCase(11, 3, 5, 5, 4);
  ASSERT_NE(c.problem, nullptr);
  ASSERT_GT(c.frontier.size(), 0u);
  const Problem* problem = c.problem.get();
  const Frontier* frontier = &c.frontier;
  FrontierFiles files = FrontierToFiles(*frontier);
  auto stored = StoredFrontier::Parse(files, "mem");
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  ASSERT_NE(stored->problem(), nullptr);
  const double fastest = frontier->points()[frontier->TMinIndex()].time_s;
  int improved = 0;
  for (double factor : {1.0, 1.03, 1.1, 1.3}) {
    const double deadline = fastest * factor;
    auto ours = PlanForDeadline(*frontier, deadline);
    auto read = stored->PlanForDeadline(deadline);
    ASSERT_TRUE(ours && read);
    EXPECT_TRUE(read->improved);
    EXPECT_EQ(read->point, ours->base_point);
    EXPECT_DOUBLE_EQ(read->figures.energy_j, ours->result.figures.energy_j);
    EXPECT_DOUBLE_EQ(read->figures.time_s, ours->result.figures.time_s);
    for (size_t i = 0; i < ours->result.plan.size(); ++i) {
      ASSERT_EQ(read->frequency_mhz[i],
                problem->option(static_cast<int>(i), ours->result.plan[i]).frequency_mhz);
    }
    const size_t k = frontier->IndexForDeadline(deadline).value();
    if (read->figures.energy_j < frontier->points()[k].energy_j * (1 - 1e-9)) ++improved;
  }
  EXPECT_GT(improved, 0);
  EXPECT_FALSE(stored->PlanForDeadline(fastest * 0.5).has_value());
  files.problem_json.clear();
  auto bare = StoredFrontier::Parse(files, "mem");
  ASSERT_TRUE(bare.ok());
  auto point = bare->PlanForDeadline(fastest * 1.1);
  ASSERT_TRUE(point.has_value());
  EXPECT_FALSE(point->improved);
  EXPECT_EQ(point->point, frontier->IndexForDeadline(fastest * 1.1).value());
}

TEST(FrontierIoTest, MalformedProblemJsonNamesTheField) {
  std::mt19937 rng(2);
  PlannerOptions options;
  options.unit_time_s = 0.1;
  auto problem = testing::MakeProblem(testing::RandomProfile(rng, 2, 3), 2, 2, options);
  ASSERT_NE(problem, nullptr);
  auto frontier = SolveFrontier(problem);
  ASSERT_TRUE(frontier.ok());
  const FrontierFiles good = FrontierToFiles(*frontier);
  auto message = [&](const std::string& json) {
    FrontierFiles files = good;
    files.problem_json = json;
    auto stored = StoredFrontier::Parse(files, "job");
    return stored.ok() ? std::string("ok") : stored.status().message();
  };
  EXPECT_EQ(message("{"), "job/problem.json: not valid JSON");
  EXPECT_EQ(message("{\"format\": \"x\"}"),
            "job/problem.json: format: expected \"perseus-problem/1\"");
  std::string j = good.problem_json;
  const std::string gpus = "\"gpus\":" + std::to_string(problem->num_gpus);
  ASSERT_NE(j.find(gpus), std::string::npos);
  EXPECT_EQ(message(std::string(j).replace(j.find(gpus), gpus.size(), "\"gpus\":0")),
            "job/problem.json: gpus: expected a positive integer");
  const std::string set0 = "\"option_set\":0";
  ASSERT_NE(j.find(set0), std::string::npos);
  EXPECT_EQ(message(std::string(j).replace(j.find(set0), set0.size(), "\"option_set\":99")),
            "job/problem.json: computations[0].option_set: expected an index into option_sets");
  // A frequency the plans use that the options do not have.
  FrontierFiles files = good;
  const size_t row = files.plans_csv.find("\n0,0,") + 1;
  const size_t end = files.plans_csv.find('\n', row);
  files.plans_csv.replace(row, end - row, "0,0,7");
  auto stored = StoredFrontier::Parse(files, "job");
  ASSERT_FALSE(stored.ok());
  EXPECT_EQ(stored.status().message(),
            "job/plans.csv:2: 7 MHz is not one of computation 0's options in job/problem.json");
}

}  // namespace
}  // namespace perseus::planner
