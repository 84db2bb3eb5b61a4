#include "src/planner/topological_relabel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>

#include "perseus/planner/solver.h"
#include "perseus/schedules/schedule.h"
#include "src/planner/testing/random_profile.h"

namespace perseus::planner {
namespace {

Dag Interleaved(int stages, int microbatches) {
  auto dag = schedules::MakeScheduleDag(schedules::ScheduleKind::kInterleavedOneFOneB,
                                        {stages, microbatches, 2});
  EXPECT_TRUE(dag.ok()) << dag.status().message();
  return std::move(dag).value();
}

TEST(TopologicalRelabelTest, KeepsEveryComputationDependencyAndProgramOrder) {
  for (auto kind : {schedules::ScheduleKind::kOneFOneB, schedules::ScheduleKind::kZeroBubbleH1,
                    schedules::ScheduleKind::kInterleavedOneFOneB}) {
    const int v = kind == schedules::ScheduleKind::kInterleavedOneFOneB ? 2 : 1;
    auto built = schedules::MakeScheduleDag(kind, {4, 8, v});
    ASSERT_TRUE(built.ok());
    const Dag& dag = *built;
    const TopologicalRelabel r = RelabelTopologically(dag);
    EXPECT_TRUE(IsTopologicallyNumbered(r.dag));
    ASSERT_EQ(r.dag.num_nodes(), dag.num_nodes());
    EXPECT_EQ(r.dag.num_edges(), dag.num_edges());
    ASSERT_EQ(r.old_id.size(), r.new_id.size());
    for (int u = 0; u < dag.num_nodes(); ++u) {
      // The new ids are the positions in the original's topological order.
      EXPECT_EQ(r.new_id[dag.topological_order()[u]], u);
      EXPECT_EQ(r.old_id[r.new_id[u]], u);
      const Computation& a = dag.node(u);
      const Computation& b = r.dag.node(r.new_id[u]);
      EXPECT_EQ(ComputationLabel(a), ComputationLabel(b));
      EXPECT_EQ(a.gpu, b.gpu);
      for (int w : dag.successors(u)) {
        const auto succ = r.dag.successors(r.new_id[u]);
        EXPECT_NE(std::find(succ.begin(), succ.end(), r.new_id[w]), succ.end());
      }
    }
    ASSERT_EQ(r.dag.gpu_order().size(), dag.gpu_order().size());
    for (size_t g = 0; g < dag.gpu_order().size(); ++g) {
      ASSERT_EQ(r.dag.gpu_order()[g].size(), dag.gpu_order()[g].size());
      for (size_t k = 0; k < dag.gpu_order()[g].size(); ++k) {
        EXPECT_EQ(r.dag.gpu_order()[g][k], r.new_id[dag.gpu_order()[g][k]]);
      }
    }
  }
}

// The sweep renumbers a DAG that is not in topological order; its steps do
// not depend on the numbering, so the frontier of the same problem numbered
// in topological order beforehand has the same points (model figures bit
// for bit; realized figures summed in another order) and the same plans.
TEST(TopologicalRelabelTest, TheSweepsFrontierDoesNotDependOnTheNumbering) {
  for (unsigned seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    const Profile profile = testing::RandomProfile(rng, 8, 5);
    Dag dag = Interleaved(4, 8);
    ASSERT_FALSE(IsTopologicallyNumbered(dag));  // else the test shows nothing
    TopologicalRelabel r = RelabelTopologically(dag);
    PlannerOptions opt;
    opt.unit_time_s = 0.1;
    opt.blocking_power_w = 40;
    auto original = BuildProblem(std::make_shared<Dag>(std::move(dag)), profile, opt);
    auto numbered = BuildProblem(std::make_shared<Dag>(std::move(r.dag)), profile, opt);
    ASSERT_TRUE(original.ok() && numbered.ok());
    SolverOptions every_point;
    every_point.pareto_only = false;  // the sweep's own points
    auto a = SolveFrontier(std::make_shared<Problem>(*original), {}, every_point);
    auto b = SolveFrontier(std::make_shared<Problem>(*numbered), {}, every_point);
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_EQ(a->size(), b->size());
    ASSERT_GT(a->size(), 10u);
    for (size_t k = 0; k < a->size(); ++k) {
      const FrontierPoint& p = a->points()[k];
      const FrontierPoint& q = b->points()[k];
      EXPECT_EQ(p.model_time_s, q.model_time_s) << k;
      EXPECT_EQ(p.model_energy_j, q.model_energy_j) << k;
      EXPECT_NEAR(p.time_s, q.time_s, 1e-9 * p.time_s) << k;
      EXPECT_NEAR(p.energy_j, q.energy_j, 1e-9 * p.energy_j) << k;
      // The last point is T_min's polish, whose ties go to the lower id.
      if (k + 1 == a->size()) continue;
      const Plan pa = a->PlanAt(k), pb = b->PlanAt(k);
      for (size_t i = 0; i < pa.size(); ++i) ASSERT_EQ(pa[i], pb[r.new_id[i]]) << k << " " << i;
    }
  }
}

}  // namespace
}  // namespace perseus::planner
