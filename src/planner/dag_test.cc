#include "perseus/planner/dag.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "src/planner/timing.h"

namespace perseus::planner {
namespace {

TEST(DagTest, ProgramOrderEdgesAndCsrAdjacency) {
  Dag dag;
  int a = dag.AddComputation({0, 0, Instruction::kForward, 0});
  int b = dag.AddComputation({1, 1, Instruction::kForward, 0});
  int c = dag.AddComputation({0, 0, Instruction::kBackward, 0});
  dag.AddDependency(a, b);
  dag.AddDependency(b, c);
  dag.AddDependency(a, b);  // duplicate, removed
  ASSERT_TRUE(dag.Finalize().ok());
  EXPECT_EQ(dag.num_nodes(), 3);
  EXPECT_EQ(dag.num_gpus(), 2);
  EXPECT_EQ(dag.num_edges(), 3);  // a->b, b->c, and program order a->c
  std::vector<int> succ_a(dag.successors(a).begin(), dag.successors(a).end());
  std::sort(succ_a.begin(), succ_a.end());
  EXPECT_EQ(succ_a, (std::vector<int>{b, c}));
  EXPECT_EQ(dag.predecessors(c).size(), 2u);
  EXPECT_EQ(dag.topological_order(), (std::vector<int>{a, b, c}));
  EXPECT_EQ(dag.gpu_order()[0], (std::vector<int>{a, c}));
  EXPECT_EQ(ComputationLabel(dag.node(c)), "B0@s0");
}

TEST(DagTest, CycleIsAnErrorNamingAComputation) {
  Dag dag;
  int a = dag.AddComputation({0, 0, Instruction::kForward, 0});
  int b = dag.AddComputation({0, 0, Instruction::kForward, 1});
  dag.AddDependency(b, a);  // but program order says a before b
  Status status = dag.Finalize();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kInvalidInput);
  EXPECT_NE(status.message().find("deadlocks"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("F"), std::string::npos);
}

TEST(DagTest, SelfLoopIsAnError) {
  Dag dag;
  int a = dag.AddComputation({0, 0, Instruction::kForward, 0});
  dag.AddDependency(a, a);
  Status status = dag.Finalize();
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("depends on itself"), std::string::npos);
}

TEST(DagTest, LongestPathOnADiamond) {
  Dag dag;
  int s = dag.AddComputation({0, 0, Instruction::kForward, 0});
  int x = dag.AddComputation({1, 0, Instruction::kForward, 1});
  int y = dag.AddComputation({2, 0, Instruction::kForward, 2});
  int t = dag.AddComputation({3, 0, Instruction::kForward, 3});
  dag.AddDependency(s, x);
  dag.AddDependency(s, y);
  dag.AddDependency(x, t);
  dag.AddDependency(y, t);
  ASSERT_TRUE(dag.Finalize().ok());
  std::vector<int64_t> d = {1, 5, 2, 1}, es, ls;
  EXPECT_EQ(EarliestStarts(dag, d, &es), 7);
  EXPECT_EQ(es, (std::vector<int64_t>{0, 1, 1, 6}));
  LatestStarts(dag, d, int64_t{7}, &ls);
  std::vector<int64_t> lf(ls.size());
  for (size_t i = 0; i < ls.size(); ++i) lf[i] = ls[i] + d[i];
  EXPECT_EQ(lf, (std::vector<int64_t>{1, 6, 6, 7}));  // y has 3 units of slack
}

}  // namespace
}  // namespace perseus::planner
