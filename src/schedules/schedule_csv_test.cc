#include "perseus/schedules/schedule_csv.h"

#include <gtest/gtest.h>

namespace perseus::schedules {
namespace {

using planner::Instruction;

std::string ErrorOfDag(const std::string& csv) {
  auto orders = ParseScheduleCsv(csv, "s.csv");
  if (!orders.ok()) return orders.status().message();
  auto dag = BuildScheduleDag(orders.value());
  return dag.ok() ? "" : dag.status().message();
}

TEST(ScheduleCsvTest, RoundTripGivesTheSameDag) {
  for (ScheduleKind kind : {ScheduleKind::kOneFOneB, ScheduleKind::kGPipe,
                            ScheduleKind::kInterleavedOneFOneB, ScheduleKind::kZeroBubbleH1}) {
    ScheduleShape shape{4, 8, kind == ScheduleKind::kInterleavedOneFOneB ? 2 : 1};
    auto orders = GenerateRankOrders(kind, shape);
    ASSERT_TRUE(orders.ok());
    std::string csv = WriteScheduleCsv(orders.value());
    auto back = ParseScheduleCsv(csv, "s.csv");
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back.value(), orders.value());
    auto a = BuildScheduleDag(orders.value());
    auto b = BuildScheduleDag(back.value());
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->num_nodes(), b->num_nodes());
    ASSERT_EQ(a->num_edges(), b->num_edges());
    for (int i = 0; i < a->num_nodes(); ++i) {
      EXPECT_EQ(ActionString({a->node(i).stage, a->node(i).instruction, a->node(i).microbatch}),
                ActionString({b->node(i).stage, b->node(i).instruction, b->node(i).microbatch}));
      std::vector<int> sa(a->successors(i).begin(), a->successors(i).end());
      std::vector<int> sb(b->successors(i).begin(), b->successors(i).end());
      EXPECT_EQ(sa, sb);
    }
  }
}

TEST(ScheduleCsvTest, IdleCellsAndCommunicationActionsAreIgnored) {
  auto orders = ParseScheduleCsv(
      "0F0,0SEND_F0,,0F1,0SEND_F1,0RECV_B0,0B0,0RECV_B1,0B1\r\n"
      ",1RECV_F0,1F0,1B0,1SEND_B0,1RECV_F1,1F1,1B1,1SEND_B1\r\n",
      "s.csv");
  ASSERT_TRUE(orders.ok()) << orders.status().message();
  ASSERT_EQ(orders->size(), 2u);
  EXPECT_EQ((*orders)[0].size(), 4u);
  EXPECT_EQ((*orders)[1][0], (Action{1, Instruction::kForward, 0}));
  EXPECT_TRUE(BuildScheduleDag(orders.value()).ok());
}

TEST(ScheduleCsvTest, MalformedCellsNameLineAndColumn) {
  auto bad = ParseScheduleCsv("0F0,0B0\n1F0,1X0\n", "s.csv");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("s.csv:2: column 2: '1X0' is not an action"),
            std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(ParseScheduleCsv("F0\n", "s.csv").ok());
  EXPECT_FALSE(ParseScheduleCsv("0F\n", "s.csv").ok());
  EXPECT_FALSE(ParseScheduleCsv("0F-1\n", "s.csv").ok());
  EXPECT_FALSE(ParseScheduleCsv("\n\n", "s.csv").ok());
  EXPECT_EQ(ReadScheduleCsv("/nonexistent.csv").status().code(), StatusCode::kNotFound);
}

TEST(ScheduleCsvTest, DeadlockNamesTheFirstBlockedAction) {
  // Rank 1 runs its backward before the forward that feeds it... and rank 0
  // waits for that backward before its forward of microbatch 1.
  std::string message = ErrorOfDag("0F0,0B0,0F1,0B1\n1B0,1F0,1F1,1B1\n");
  EXPECT_NE(message.find("deadlocks: rank 1, action 1 (1B0) waits for 1F0"), std::string::npos)
      << message;
}

TEST(ScheduleCsvTest, MissingDuplicateAndMisplacedComputations) {
  EXPECT_NE(ErrorOfDag("0F0,0F1,0B0\n1F0,1B0,1F1,1B1\n").find("misses computation 0B1"),
            std::string::npos);
  EXPECT_NE(ErrorOfDag("0F0,0F0,0B0\n1F0,1B0\n").find("rank 0, action 2 (0F0): duplicate"),
            std::string::npos);
  EXPECT_NE(ErrorOfDag("0F0,0B0,1F0\n1B0\n").find("stage 1 already runs on rank 0"),
            std::string::npos);
  EXPECT_NE(ErrorOfDag("0F0,0I0\n").find("misses computation 0W0"), std::string::npos);
  EXPECT_NE(ErrorOfDag("0F0,0B0,0W0\n").find("full backward (B) as well as a split one"),
            std::string::npos);
}

}  // namespace
}  // namespace perseus::schedules
