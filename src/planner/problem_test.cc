// BuildProblem: option sets per (stage, instruction), and the derived set of
// an overlapped forward+backward (DualPipeV).
#include "perseus/planner/problem.h"

#include <gtest/gtest.h>

#include "perseus/planner/frontier_io.h"
#include "perseus/planner/realized.h"
#include "perseus/planner/solver.h"

namespace perseus::planner {
namespace {

// Stage 0 forward at 1000/900/800 MHz, stage 1 backward at 1000/800/700 MHz:
// they share 1000 and 800 MHz.
const char kProfile[] =
    "stage,instruction,frequency,time,energy\n"
    "0,forward,1000,1.0,10\n0,forward,900,1.1,9.5\n0,forward,800,1.3,9\n"
    "0,backward,1000,2.0,20\n0,backward,800,2.6,18\n"
    "1,forward,1000,1.0,10\n1,forward,800,1.3,9\n"
    "1,backward,1000,2.0,20\n1,backward,800,2.5,17\n1,backward,700,3.0,16.5\n";

// Rank 0: 0F0 0F1 0B0 0B1; rank 1: 1F0 (1F1;1B0) 1B1.
std::shared_ptr<const Dag> TwoRankDagWithAnOverlap() {
  auto dag = std::make_shared<Dag>();
  const int f00 = dag->AddComputation({0, 0, Instruction::kForward, 0});
  const int f01 = dag->AddComputation({0, 0, Instruction::kForward, 1});
  const int b00 = dag->AddComputation({0, 0, Instruction::kBackward, 0});
  const int b01 = dag->AddComputation({0, 0, Instruction::kBackward, 1});
  const int f10 = dag->AddComputation({1, 1, Instruction::kForward, 0});
  const int pair =
      dag->AddComputation({1, 1, Instruction::kForward, 1, {1, Instruction::kBackward, 0}});
  const int b11 = dag->AddComputation({1, 1, Instruction::kBackward, 1});
  dag->AddDependency(f00, f10);
  dag->AddDependency(f01, pair);
  dag->AddDependency(f10, pair);
  dag->AddDependency(pair, b00);
  dag->AddDependency(pair, b11);
  dag->AddDependency(b11, b01);
  EXPECT_TRUE(dag->Finalize().ok());
  return dag;
}

Profile Parse(const char* text) {
  auto p = ParseProfileCsv(text, "p.csv");
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? p.value() : Profile{};
}

TEST(ProblemTest, OverlappedPairCostsTheSumOfItsHalvesAtSharedFrequencies) {
  const auto dag = TwoRankDagWithAnOverlap();
  PlannerOptions options;
  options.unit_time_s = 0.1;
  options.blocking_power_w = 1;
  auto problem = BuildProblem(dag, Parse(kProfile), options);
  ASSERT_TRUE(problem.ok()) << problem.status().message();
  const int pair = 5;
  ASSERT_TRUE(dag->node(pair).overlapped());
  const OptionSet& set = problem->set(pair);
  EXPECT_TRUE(set.key.overlapped());
  EXPECT_EQ(set.key.key, (ProfileKey{1, Instruction::kForward}));
  EXPECT_EQ(set.key.overlap, (ProfileKey{1, Instruction::kBackward}));
  // Stage 1 forward (1000, 800) and backward (1000, 800, 700) share 1000 and 800 MHz.
  ASSERT_EQ(set.options.size(), 2u);
  EXPECT_EQ(set.options[0].frequency_mhz, 1000);
  EXPECT_DOUBLE_EQ(set.options[0].time_s, 3.0);
  EXPECT_DOUBLE_EQ(set.options[0].energy_j, 30);
  EXPECT_DOUBLE_EQ(set.options[0].effective_j, 30 - 3.0);
  EXPECT_EQ(set.options[0].units, 30);
  EXPECT_EQ(set.options[1].frequency_mhz, 800);
  EXPECT_DOUBLE_EQ(set.options[1].time_s, 3.8);
  EXPECT_DOUBLE_EQ(set.options[1].energy_j, 26);
  EXPECT_EQ(set.highest_frequency.frequency_mhz, 1000);
  // Its own set, apart from the plain stage 1 forward and backward.
  EXPECT_NE(problem->set_of_node[pair], problem->set_of_node[4]);
  EXPECT_NE(problem->set_of_node[pair], problem->set_of_node[6]);
  EXPECT_FALSE(problem->set(4).key.overlapped());
  EXPECT_EQ(problem->option_sets.size(), 5u);  // 0F, 0B, 1F, 1B, (1F;1B)

  // All-max: the pair takes 3 s on rank 1.
  const auto all_max = EvaluateAllMax(*problem);
  // 0F0 1 -> 1F0 1 (t=2) -> pair 3 (t=5) -> 1B1 2 (t=7) -> 0B1 2 (t=9).
  EXPECT_DOUBLE_EQ(all_max.time_s, 9.0);

  // The frontier's stored form keeps the pair.
  auto frontier = SolveFrontier(std::make_shared<Problem>(std::move(problem).value()));
  ASSERT_TRUE(frontier.ok()) << frontier.status().message();
  const FrontierFiles files = FrontierToFiles(*frontier);
  EXPECT_EQ(files.computations_csv.substr(0, files.computations_csv.find('\n')),
            "id,gpu,stage,instruction,microbatch,order,overlap_stage,overlap_instruction,"
            "overlap_microbatch");
  EXPECT_NE(files.computations_csv.find("\n5,1,1,forward,1,1,1,backward,0\n"), std::string::npos);
  EXPECT_NE(files.computations_csv.find("\n0,0,0,forward,0,0,,,\n"), std::string::npos);
  auto stored = StoredFrontier::Parse(files, "mem");
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_TRUE(stored->computations()[pair].overlapped());
  EXPECT_EQ(stored->computations()[pair].overlap, (Part{1, Instruction::kBackward, 0}));
  EXPECT_FALSE(stored->computations()[0].overlapped());
}

TEST(ProblemTest, OverlappedPairWithoutACommonFrequencyIsAnError) {
  const char profile[] =
      "stage,instruction,frequency,time,energy\n"
      "0,forward,1000,1.0,10\n0,backward,1000,2.0,20\n"
      "1,forward,1000,1.0,10\n1,backward,900,2.0,20\n";
  PlannerOptions options;
  auto problem = BuildProblem(TwoRankDagWithAnOverlap(), Parse(profile), options);
  ASSERT_FALSE(problem.ok());
  EXPECT_EQ(problem.status().message(),
            "p.csv: stage 1 forward and stage 1 backward have no frequency in common, but the "
            "overlapped (1F1;1B0) runs both at one clock");
}

TEST(ProblemTest, MissingRowsOfAnOverlapHalfAreNamed) {
  const char profile[] =
      "stage,instruction,frequency,time,energy\n"
      "0,forward,1000,1.0,10\n0,backward,1000,2.0,20\n1,forward,1000,1.0,10\n";
  auto problem = BuildProblem(TwoRankDagWithAnOverlap(), Parse(profile), PlannerOptions{});
  ASSERT_FALSE(problem.ok());
  EXPECT_NE(problem.status().message().find("no rows for stage 1 backward"), std::string::npos)
      << problem.status().message();
}

TEST(ProblemTest, OldComputationsFilesStillParse) {
  FrontierFiles files{"time,energy,model_time,model_energy\n1,2,3,4\n",
                      "id,gpu,stage,instruction,microbatch,order\n0,0,0,forward,0,0\n",
                      "point,computation,frequency\n0,0,1410\n", ""};
  auto stored = StoredFrontier::Parse(files, "job");
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  EXPECT_FALSE(stored->computations()[0].overlapped());
  files.computations_csv =
      "id,gpu,stage,instruction,microbatch,order,overlap_stage,overlap_instruction,"
      "overlap_microbatch\n0,0,0,forward,0,0,1,sideways,0\n";
  EXPECT_EQ(StoredFrontier::Parse(files, "job").status().message(),
            "job/computations.csv:2: malformed overlap columns (expected stage, instruction, "
            "microbatch, or all three empty)");
}

}  // namespace
}  // namespace perseus::planner
