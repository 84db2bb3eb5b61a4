#include "perseus/schedules/one_f_one_b.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "src/planner/timing.h"

namespace perseus::schedules {
namespace {

using planner::Dag;
using planner::Instruction;

// "F0 F1 B0 B1" for each GPU.
std::vector<std::string> Orders(const Dag& dag) {
  std::vector<std::string> out;
  for (const auto& order : dag.gpu_order()) {
    std::string s;
    for (int id : order) {
      if (!s.empty()) s += ' ';
      s += planner::InstructionLetter(dag.node(id).instruction);
      s += std::to_string(dag.node(id).microbatch);
    }
    out.push_back(s);
  }
  return out;
}

TEST(OneFOneBTest, TwoStagesTwoMicrobatches) {
  auto dag = MakeOneFOneB(2, 2);
  ASSERT_TRUE(dag.ok());
  EXPECT_EQ(Orders(dag.value()), (std::vector<std::string>{"F0 F1 B0 B1", "F0 B0 F1 B1"}));
}

TEST(OneFOneBTest, DeepSpeedOrderThreeStagesFourMicrobatches) {
  auto dag = MakeOneFOneB(3, 4);
  ASSERT_TRUE(dag.ok());
  EXPECT_EQ(Orders(dag.value()), (std::vector<std::string>{
                                     "F0 F1 F2 B0 F3 B1 B2 B3",
                                     "F0 F1 B0 F2 B1 F3 B2 B3",
                                     "F0 B0 F1 B1 F2 B2 F3 B3",
                                 }));
}

TEST(OneFOneBTest, FewerMicrobatchesThanStages) {
  auto dag = MakeOneFOneB(4, 2);
  ASSERT_TRUE(dag.ok());
  EXPECT_EQ(Orders(dag.value()),
            (std::vector<std::string>{"F0 F1 B0 B1", "F0 F1 B0 B1", "F0 F1 B0 B1", "F0 B0 F1 B1"}));
}

TEST(OneFOneBTest, CrossStageDependencies) {
  auto result = MakeOneFOneB(3, 2);
  ASSERT_TRUE(result.ok());
  const Dag& dag = result.value();
  auto find = [&](int stage, Instruction ins, int m) {
    for (int id = 0; id < dag.num_nodes(); ++id) {
      const auto& c = dag.node(id);
      if (c.stage == stage && c.instruction == ins && c.microbatch == m) return id;
    }
    return -1;
  };
  auto has_edge = [&](int from, int to) {
    for (int v : dag.successors(from)) {
      if (v == to) return true;
    }
    return false;
  };
  for (int m = 0; m < 2; ++m) {
    EXPECT_TRUE(has_edge(find(0, Instruction::kForward, m), find(1, Instruction::kForward, m)));
    EXPECT_TRUE(has_edge(find(1, Instruction::kForward, m), find(2, Instruction::kForward, m)));
    EXPECT_TRUE(has_edge(find(2, Instruction::kBackward, m), find(1, Instruction::kBackward, m)));
    EXPECT_TRUE(has_edge(find(1, Instruction::kBackward, m), find(0, Instruction::kBackward, m)));
    EXPECT_FALSE(has_edge(find(1, Instruction::kForward, m), find(0, Instruction::kForward, m)));
  }
  // 2 x S x M computations; program order gives S x (2M - 1) edges, the
  // stage-to-stage dependencies 2 x (S - 1) x M (none coincide here).
  EXPECT_EQ(dag.num_nodes(), 12);
  EXPECT_EQ(dag.num_edges(), 3 * 3 + 2 * 2 * 2);
}

// With every computation one unit long, 1F1B takes 2 (M + S - 1) units.
TEST(OneFOneBTest, UnitDurationsGiveTheTextbookMakespan) {
  for (int s = 1; s <= 6; ++s) {
    for (int m = 1; m <= 8; ++m) {
      auto dag = MakeOneFOneB(s, m);
      ASSERT_TRUE(dag.ok());
      std::vector<int64_t> d(dag.value().num_nodes(), 1), es;
      EXPECT_EQ(planner::EarliestStarts(dag.value(), d, &es), 2 * (m + s - 1))
          << s << " stages, " << m << " microbatches";
    }
  }
}

TEST(OneFOneBTest, RejectsNonPositiveSizes) {
  EXPECT_FALSE(MakeOneFOneB(0, 4).ok());
  auto r = MakeOneFOneB(4, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("microbatches must be at least 1"), std::string::npos);
}

}  // namespace
}  // namespace perseus::schedules
