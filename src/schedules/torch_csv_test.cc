// The CSVs torch.distributed.pipelining 2.13 writes for its schedules
// (data/schedules/torch-2.13, see PROVENANCE.md there): every one parses and
// gives a valid DAG; the compute_only and compute_comms forms give the same
// DAG; torch's GPipe, 1F1B (as executed) and Interleaved1F1B are our
// built-ins.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "perseus/schedules/schedule.h"
#include "perseus/schedules/schedule_csv.h"

namespace perseus::schedules {
namespace {

using planner::Instruction;

const std::string kDir = PERSEUS_DATA_DIR "/schedules/torch-2.13/";

RankOrders Read(const std::string& name) {
  auto orders = ReadScheduleCsv(kDir + name);
  EXPECT_TRUE(orders.ok()) << orders.status().message();
  return orders.ok() ? orders.value() : RankOrders{};
}

planner::Dag Dag(const RankOrders& orders) {
  auto dag = BuildScheduleDag(orders);
  EXPECT_TRUE(dag.ok()) << dag.status().message();
  return dag.ok() ? std::move(dag).value() : planner::Dag{};
}

// Every node (as a label, in id order), its GPU and its successors.
std::vector<std::string> Shape(const planner::Dag& dag) {
  std::vector<std::string> out;
  for (int i = 0; i < dag.num_nodes(); ++i) {
    std::string line = std::to_string(dag.node(i).gpu) + " " + ComputationLabel(dag.node(i)) + ":";
    for (int s : dag.successors(i)) line += " " + ComputationLabel(dag.node(s));
    out.push_back(line);
  }
  return out;
}

struct Shipped {
  const char* file;
  int model_stages;
  int nodes;
  int overlaps;
};

TEST(TorchCsvTest, EveryShippedCsvGivesAValidDag) {
  const Shipped shipped[] = {
      {"GPipe.pipeline_order.csv", 4, 64, 0},
      {"1F1B.csv", 4, 64, 0},
      {"Interleaved1F1B.compute_only.csv", 8, 128, 0},
      {"Interleaved1F1B.compute_comms.csv", 8, 128, 0},
      {"LoopedBFS.compute_only.csv", 8, 128, 0},
      {"LoopedBFS.compute_comms.csv", 8, 128, 0},
      {"InterleavedZeroBubble.compute_only.csv", 8, 192, 0},
      {"InterleavedZeroBubble.compute_comms.csv", 8, 192, 0},
      {"ZBVZeroBubble.compute_only.csv", 8, 192, 0},
      {"ZBVZeroBubble.compute_comms.csv", 8, 192, 0},
      {"DualPipeV.compute_only.csv", 8, 125, 25},
      {"DualPipeV.compute_comms.csv", 8, 125, 25},
  };
  for (const Shipped& s : shipped) {
    SCOPED_TRACE(s.file);
    const planner::Dag dag = Dag(Read(s.file));
    EXPECT_EQ(dag.num_gpus(), 4);
    int model_stages = 0, microbatches = 0, overlaps = 0;
    for (const auto& c : dag.nodes()) {
      model_stages = std::max({model_stages, c.stage + 1, c.overlap.stage + 1});
      microbatches = std::max(microbatches, c.microbatch + 1);
      overlaps += c.overlapped() ? 1 : 0;
    }
    EXPECT_EQ(model_stages, s.model_stages);
    EXPECT_EQ(microbatches, 8);
    EXPECT_EQ(dag.num_nodes(), s.nodes);
    EXPECT_EQ(overlaps, s.overlaps);
  }
}

// V-shaped placement (ZBV, DualPipeV): rank r holds stages r and 2S-1-r, so
// stages 3 and 4 are both on rank 3.
TEST(TorchCsvTest, VShapedSchedulesPlaceStagesOnTheV) {
  for (const char* file : {"ZBVZeroBubble.compute_only.csv", "DualPipeV.compute_only.csv"}) {
    SCOPED_TRACE(file);
    const planner::Dag dag = Dag(Read(file));
    for (const auto& c : dag.nodes()) {
      EXPECT_TRUE(c.stage == c.gpu || c.stage == 7 - c.gpu) << ComputationLabel(c);
      if (c.overlapped()) {
        EXPECT_TRUE(c.overlap.stage == c.gpu || c.overlap.stage == 7 - c.gpu);
      }
    }
  }
}

TEST(TorchCsvTest, ComputeOnlyAndComputeCommsGiveTheSameDag) {
  for (const char* name :
       {"Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble", "ZBVZeroBubble", "DualPipeV"}) {
    SCOPED_TRACE(name);
    const RankOrders only = Read(std::string(name) + ".compute_only.csv");
    const RankOrders comms = Read(std::string(name) + ".compute_comms.csv");
    EXPECT_EQ(only, comms);
    EXPECT_EQ(Shape(Dag(only)), Shape(Dag(comms)));
  }
}

TEST(TorchCsvTest, DualPipeVOverlapsAreTorchs) {
  const RankOrders orders = Read("DualPipeV.compute_only.csv");
  ASSERT_EQ(orders.size(), 4u);
  // Rank 0 of torch's DualPipeV: ... 7F3 (0F7;7B3)OVERLAP_F_B (7F4;0B0)OVERLAP_F_B 7B4 ...
  const auto& rank0 = orders[0];
  auto it = std::find(rank0.begin(), rank0.end(),
                      Action{0, Instruction::kForward, 7, {7, Instruction::kBackward, 3}});
  ASSERT_NE(it, rank0.end());
  EXPECT_EQ(*(it - 1), (Action{7, Instruction::kForward, 3}));
  EXPECT_EQ(*(it + 1), (Action{7, Instruction::kForward, 4, {0, Instruction::kBackward, 0}}));
  EXPECT_EQ(*(it + 2), (Action{7, Instruction::kBackward, 4}));
}

TEST(TorchCsvTest, TorchsGPipe1F1BAndInterleavedAreOurBuiltIns) {
  auto generate = [](ScheduleKind kind, int v) {
    auto orders = GenerateRankOrders(kind, {4, 8, v});
    EXPECT_TRUE(orders.ok());
    return orders.ok() ? orders.value() : RankOrders{};
  };
  EXPECT_EQ(Read("GPipe.pipeline_order.csv"), generate(ScheduleKind::kGPipe, 1));
  EXPECT_EQ(Read("1F1B.csv"), generate(ScheduleKind::kOneFOneB, 1));
  // torch's ScheduleInterleaved1F1B (idle cells aside) is Megatron's order.
  EXPECT_EQ(Read("Interleaved1F1B.compute_only.csv"),
            generate(ScheduleKind::kInterleavedOneFOneB, 2));
  EXPECT_EQ(Shape(Dag(Read("Interleaved1F1B.compute_only.csv"))),
            Shape(Dag(generate(ScheduleKind::kInterleavedOneFOneB, 2))));
}

// torch 2.13's Schedule1F1B.pipeline_order labels the last rank's forwards
// F1..F8 (it executes F0..F7): taken literally it is not a schedule.
TEST(TorchCsvTest, Torchs1F1BPipelineOrderAsWrittenIsRejected) {
  const RankOrders orders = Read("1F1B.pipeline_order.csv");
  ASSERT_EQ(orders.size(), 4u);
  EXPECT_EQ(orders[3].front(), (Action{3, Instruction::kForward, 1}));
  auto dag = BuildScheduleDag(orders);
  ASSERT_FALSE(dag.ok());
  EXPECT_NE(dag.status().message().find("misses computation 0F8"), std::string::npos)
      << dag.status().message();
}

}  // namespace
}  // namespace perseus::schedules
