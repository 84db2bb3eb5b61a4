// Overlapped forward+backward actions (DualPipeV's OVERLAP_F_B): parsing,
// writing, one DAG node per overlap, and the errors that name them.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "perseus/schedules/render.h"
#include "perseus/schedules/schedule.h"
#include "perseus/schedules/schedule_csv.h"

namespace perseus::schedules {
namespace {

using planner::Instruction;

std::string ErrorOf(const std::string& csv) {
  auto orders = ParseScheduleCsv(csv, "s.csv");
  if (!orders.ok()) return orders.status().message();
  auto dag = BuildScheduleDag(orders.value());
  return dag.ok() ? "" : dag.status().message();
}

// Labels of a node's predecessors or successors.
std::set<std::string> Labels(const planner::Dag& dag, std::span<const int> ids) {
  std::set<std::string> out;
  for (int id : ids) out.insert(planner::ComputationLabel(dag.node(id)));
  return out;
}

int NodeLabelled(const planner::Dag& dag, const std::string& label) {
  for (int i = 0; i < dag.num_nodes(); ++i) {
    if (planner::ComputationLabel(dag.node(i)) == label) return i;
  }
  return -1;
}

TEST(OverlapTest, ParsesTorchsFormWithBOrI) {
  auto orders = ParseScheduleCsv("0F0,(0F7;7B3)OVERLAP_F_B, ( 1F2 ; 6I0 )OVERLAP_F_B\n", "s.csv");
  ASSERT_TRUE(orders.ok()) << orders.status().message();
  ASSERT_EQ((*orders)[0].size(), 3u);
  const Action& a = (*orders)[0][1];
  EXPECT_TRUE(a.overlapped());
  EXPECT_EQ(a, (Action{0, Instruction::kForward, 7, {7, Instruction::kBackward, 3}}));
  EXPECT_EQ((*orders)[0][2],
            (Action{1, Instruction::kForward, 2, {6, Instruction::kBackwardInput, 0}}));
  EXPECT_FALSE((*orders)[0][0].overlapped());
  EXPECT_EQ(ActionString(a), "(0F7;7B3)");
  EXPECT_EQ(WriteScheduleCsv(*orders), "0F0,(0F7;7B3)OVERLAP_F_B,(1F2;6I0)OVERLAP_F_B\n");
  auto back = ParseScheduleCsv(WriteScheduleCsv(*orders), "s.csv");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, *orders);
}

TEST(OverlapTest, MalformedOverlapsNameLineAndColumn) {
  auto message = [](const std::string& csv) {
    auto r = ParseScheduleCsv(csv, "s.csv");
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(message("0F0\n0F1,(0F1)OVERLAP_F_B\n")
                .find("s.csv:2: column 2: '(0F1)OVERLAP_F_B' is not an overlapped action: "
                      "OVERLAP_F_B needs exactly two sub-actions"),
            std::string::npos)
      << message("0F0\n0F1,(0F1)OVERLAP_F_B\n");
  EXPECT_NE(message("(0F1;0X2)OVERLAP_F_B\n")
                .find("s.csv:1: column 1: '(0F1;0X2)OVERLAP_F_B' is not an overlapped action: "
                      "its second sub-action '0X2' is not a computation"),
            std::string::npos);
  EXPECT_NE(message("(0F1;0SEND_B2)OVERLAP_F_B\n").find("'0SEND_B2' is not a computation"),
            std::string::npos);
  EXPECT_NE(message("(0B1;1F0)OVERLAP_F_B\n").find("first sub-action must be a forward"),
            std::string::npos);
  EXPECT_NE(message("(0F1;1W0)OVERLAP_F_B\n").find("second sub-action must be a backward"),
            std::string::npos);
  EXPECT_NE(message("(0F1;1B0;2B0)OVERLAP_F_B\n").find("exactly two sub-actions"),
            std::string::npos);
  EXPECT_NE(message("0F0,(0F1;1B0)OVERLAP\n").find("s.csv:1: column 2: '(0F1;1B0)OVERLAP'"),
            std::string::npos);
  EXPECT_NE(message("(0F1;1B0\n").find("is not an action"), std::string::npos);
}

// Two ranks, stages 0 and 1, two microbatches; rank 1 overlaps the forward of
// microbatch 1 with the backward of microbatch 0.
constexpr char kTwoRanks[] =
    "0F0,0F1,0B0,0B1\n"
    "1F0,(1F1;1B0)OVERLAP_F_B,1B1\n";

TEST(OverlapTest, OneNodeWithTheUnionOfBothHalvesDependencies) {
  auto orders = ParseScheduleCsv(kTwoRanks, "s.csv");
  ASSERT_TRUE(orders.ok()) << orders.status().message();
  auto dag = BuildScheduleDag(*orders);
  ASSERT_TRUE(dag.ok()) << dag.status().message();
  EXPECT_EQ(dag->num_nodes(), 7);  // 8 computations, two of them in one node
  const int overlap = NodeLabelled(*dag, "(1F1;1B0)");
  ASSERT_GE(overlap, 0);
  const planner::Computation& c = dag->node(overlap);
  EXPECT_TRUE(c.overlapped());
  EXPECT_EQ(c.gpu, 1);
  EXPECT_EQ(c.overlap, (planner::Part{1, Instruction::kBackward, 0}));
  // F(1,1) needs F(0,1); B(1,0) (last stage) needs F(1,0), also its program predecessor.
  EXPECT_EQ(Labels(*dag, dag->predecessors(overlap)), (std::set<std::string>{"F1@s0", "F0@s1"}));
  // B(0,0) needs B(1,0); B(1,1) needs F(1,1) and follows it on rank 1.
  EXPECT_EQ(Labels(*dag, dag->successors(overlap)), (std::set<std::string>{"B0@s0", "B1@s1"}));
  // Renderings show the pair as torch writes its halves.
  EXPECT_NE(RenderScheduleText(*orders).find("rank 1 | 1F0 (1F1;1B0) 1B1"), std::string::npos);
  const std::vector<double> units = UnitDurations(*dag);
  EXPECT_EQ(units[static_cast<size_t>(overlap)], 3.0);  // F 1 + B 2
  const std::string svg = RenderScheduleSvg(*dag, units, "t");
  EXPECT_NE(svg.find("<title>(1F1;1B0) rank 1"), std::string::npos);
  EXPECT_NE(svg.find(">overlapped F+B</text>"), std::string::npos);  // in the legend
}

TEST(OverlapTest, OverlapErrorsNameTheAction) {
  // A single stage: the backward of microbatch 0 needs its own forward, the other half.
  EXPECT_NE(ErrorOf("(0F0;0B0)OVERLAP_F_B\n")
                .find("rank 0, action 1 (0F0;0B0): its backward half 0B0 waits for its other "
                      "half 0F0"),
            std::string::npos)
      << ErrorOf("(0F0;0B0)OVERLAP_F_B\n");
  // A half that repeats a single action.
  EXPECT_NE(ErrorOf("0F0,0F1,0B0,0B1\n1F0,1B0,(1F1;1B0)OVERLAP_F_B,1B1\n")
                .find("rank 1, action 3 (1F1;1B0): its 1B0 is a duplicate of rank 1, action 2 "
                      "(1B0)"),
            std::string::npos)
      << ErrorOf("0F0,0F1,0B0,0B1\n1F0,1B0,(1F1;1B0)OVERLAP_F_B,1B1\n");
  // A half of a computation the schedule does not otherwise have.
  EXPECT_NE(ErrorOf("0F0,0B0\n1F0,(1F1;1B0)OVERLAP_F_B\n").find("misses computation 0F1"),
            std::string::npos);
  // A half on a stage that runs on another rank.
  EXPECT_NE(ErrorOf("0F0,0B0\n1F0,(1F1;0B1)OVERLAP_F_B\n")
                .find("rank 1, action 2 (1F1;0B1): stage 0 already runs on rank 0"),
            std::string::npos);
  // Separately the actions would run; overlapped, rank 1's 1F1 waits for the
  // forward half of an overlap that waits for rank 1's 1B0.
  EXPECT_NE(ErrorOf("0F0,(0F1;0B0)OVERLAP_F_B,0B1\n1F0,1F1,1B0,1B1\n")
                .find("the schedule deadlocks: rank 0, action 2 (0F1;0B0) waits for 1B0 (rank 1, "
                      "action 3); rank 1, action 2 (1F1) waits for 0F1 (rank 0, action 2)"),
            std::string::npos)
      << ErrorOf("0F0,(0F1;0B0)OVERLAP_F_B,0B1\n1F0,1F1,1B0,1B1\n");
  EXPECT_TRUE(ErrorOf("0F0,0B0,0F1,0B1\n1F0,1B0,1F1,1B1\n").empty());
  // Orders built in code are checked too.
  RankOrders bad = {{Action{0, Instruction::kBackward, 0, {0, Instruction::kBackward, 1}}}};
  auto dag = BuildScheduleDag(bad);
  ASSERT_FALSE(dag.ok());
  EXPECT_NE(dag.status().message().find("must be a forward (F) followed by a backward"),
            std::string::npos);
}

}  // namespace
}  // namespace perseus::schedules
