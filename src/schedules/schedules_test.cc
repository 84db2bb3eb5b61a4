// Built-in schedules: shape, published orders, critical path vs an event
// simulation, and frontier invariants.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <tuple>

#include "perseus/planner/solver.h"
#include "perseus/schedules/render.h"
#include "perseus/schedules/schedule.h"
#include "src/planner/timing.h"

namespace perseus::schedules {
namespace {

using planner::Instruction;

std::vector<std::string> Orders(const RankOrders& orders) {
  std::vector<std::string> out;
  for (const auto& order : orders) {
    std::string s;
    for (const Action& a : order) s += (s.empty() ? "" : " ") + ActionString(a);
    out.push_back(s);
  }
  return out;
}

RankOrders Generate(ScheduleKind kind, int s, int m, int v = 1) {
  auto orders = GenerateRankOrders(kind, {s, m, v});
  EXPECT_TRUE(orders.ok()) << orders.status().message();
  return orders.ok() ? orders.value() : RankOrders{};
}

// GPipe (Huang et al. 2019; torch.distributed.pipelining.ScheduleGPipe):
// all forwards, then all backwards, in microbatch order.
TEST(ScheduleOrderTest, GPipe) {
  EXPECT_EQ(Orders(Generate(ScheduleKind::kGPipe, 2, 3)),
            (std::vector<std::string>{"0F0 0F1 0F2 0B0 0B1 0B2", "1F0 1F1 1F2 1B0 1B1 1B2"}));
}

// Megatron-LM forward_backward_pipelining_with_interleaving, S=2, V=2, M=4,
// worked by hand from its formulas (see interleaved_1f1b.cc):
// rank 0: warm-up (2-0-1)*2 + (2-1)*2 = 4 forwards, 4 steady pairs, 4 backwards;
// rank 1: warm-up 0 + 2 = 2 forwards, 6 steady pairs, 2 backwards.
// Chunk c on rank r is model stage 2c + r.
TEST(ScheduleOrderTest, InterleavedMegatron) {
  EXPECT_EQ(Orders(Generate(ScheduleKind::kInterleavedOneFOneB, 2, 4, 2)),
            (std::vector<std::string>{
                "0F0 0F1 2F0 2F1 0F2 2B0 0F3 2B1 2F2 0B0 2F3 0B1 2B2 2B3 0B2 0B3",
                "1F0 1F1 3F0 3B0 3F1 3B1 1F2 1B0 1F3 1B1 3F2 3B2 3F3 3B3 1B2 1B3",
            }));
}

// M == S has no special case (Megatron-Core >= 0.10 and torch's
// ScheduleInterleaved1F1B): rank 1 warms up with (V - 1) * S = 2 forwards.
TEST(ScheduleOrderTest, InterleavedWhenMicrobatchesEqualStages) {
  EXPECT_EQ(Orders(Generate(ScheduleKind::kInterleavedOneFOneB, 2, 2, 2)),
            (std::vector<std::string>{"0F0 0F1 2F0 2F1 2B0 2B1 0B0 0B1",
                                      "1F0 1F1 3F0 3B0 3F1 3B1 1B0 1B1"}));
}

// ZB-H1 (Qi et al. 2024, section 3.1 / figure 3), S=3, M=4, by our reading
// (zero_bubble_h1.cc): 1F1B with I for B; rank r defers up to r W passes.
TEST(ScheduleOrderTest, ZeroBubbleH1) {
  EXPECT_EQ(Orders(Generate(ScheduleKind::kZeroBubbleH1, 3, 4)),
            (std::vector<std::string>{
                "0F0 0F1 0F2 0I0 0W0 0F3 0I1 0W1 0I2 0W2 0I3 0W3",
                "1F0 1F1 1I0 1F2 1I1 1W0 1F3 1I2 1W1 1I3 1W2 1W3",
                "2F0 2I0 2F1 2I1 2F2 2I2 2W0 2F3 2I3 2W1 2W2 2W3",
            }));
}

// ZB-H1 keeps 1F1B's peak memory: no rank holds more than S microbatches
// between their F and their W.
TEST(ScheduleOrderTest, ZeroBubbleH1PeakMemory) {
  for (int s = 1; s <= 6; ++s) {
    for (int m = 1; m <= 10; ++m) {
      for (const auto& order : Generate(ScheduleKind::kZeroBubbleH1, s, m)) {
        int held = 0, peak = 0;
        for (const Action& a : order) {
          if (a.instruction == Instruction::kForward) peak = std::max(peak, ++held);
          if (a.instruction == Instruction::kBackwardWeight) --held;
        }
        EXPECT_LE(peak, std::min(s, m)) << s << "x" << m;
      }
    }
  }
}

TEST(ScheduleShapeTest, ClearErrors) {
  auto bad = GenerateRankOrders(ScheduleKind::kInterleavedOneFOneB, {4, 6, 2});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("multiple of the number of stages (4)"), std::string::npos);
  EXPECT_FALSE(GenerateRankOrders(ScheduleKind::kOneFOneB, {4, 8, 2}).ok());
  EXPECT_FALSE(GenerateRankOrders(ScheduleKind::kGPipe, {0, 8, 1}).ok());
  ScheduleKind kind;
  EXPECT_TRUE(ParseScheduleName("zb-h1", &kind));
  EXPECT_EQ(kind, ScheduleKind::kZeroBubbleH1);
  EXPECT_FALSE(ParseScheduleName("1F1B", &kind));
}

struct Case {
  ScheduleKind kind;
  int stages, microbatches, virtual_stages;
};

std::vector<Case> AllCases() {
  std::vector<Case> cases;
  for (int s : {1, 2, 3, 4, 8}) {
    for (int m : {1, 2, 3, 4, 8, 12}) {
      cases.push_back({ScheduleKind::kOneFOneB, s, m, 1});
      cases.push_back({ScheduleKind::kGPipe, s, m, 1});
      cases.push_back({ScheduleKind::kZeroBubbleH1, s, m, 1});
      for (int v : {1, 2, 3}) {
        if (m % s == 0) cases.push_back({ScheduleKind::kInterleavedOneFOneB, s, m, v});
      }
    }
  }
  return cases;
}

// The makespan of running each rank's list in order, every action starting
// when its rank is free and what it needs has finished: written independently
// of BuildScheduleDag, from the rules in schedule.h.
double SimulateMakespan(const RankOrders& orders, int num_stages,
                        const std::map<std::pair<int, Instruction>, double>& duration) {
  std::map<std::tuple<int, Instruction, int>, double> finish;
  std::set<std::pair<int, int>> split;  // (stage, microbatch) with I instead of B
  for (const auto& order : orders) {
    for (const Action& a : order) {
      if (a.instruction == Instruction::kBackwardInput) split.insert({a.stage, a.microbatch});
    }
  }
  std::vector<size_t> next(orders.size(), 0);
  std::vector<double> free_at(orders.size(), 0);
  double makespan = 0;
  for (bool progressed = true; progressed;) {
    progressed = false;
    for (size_t r = 0; r < orders.size(); ++r) {
      if (next[r] == orders[r].size()) continue;
      const Action& a = orders[r][next[r]];
      std::vector<std::tuple<int, Instruction, int>> needs;
      const int k = a.stage, m = a.microbatch;
      if (a.instruction == Instruction::kForward && k > 0)
        needs.push_back({k - 1, a.instruction, m});
      if (a.instruction == Instruction::kBackward || a.instruction == Instruction::kBackwardInput) {
        if (k == num_stages - 1) {
          needs.push_back({k, Instruction::kForward, m});
        } else {
          needs.push_back(
              {k + 1,
               split.count({k + 1, m}) ? Instruction::kBackwardInput : Instruction::kBackward, m});
        }
      }
      if (a.instruction == Instruction::kBackwardWeight) {
        needs.push_back({k, Instruction::kBackwardInput, m});
      }
      double start = free_at[r];
      bool ready = true;
      for (const auto& n : needs) {
        auto it = finish.find(n);
        if (it == finish.end()) {
          ready = false;
          break;
        }
        start = std::max(start, it->second);
      }
      if (!ready) continue;
      const double end = start + duration.at({k, a.instruction});
      finish[{k, a.instruction, m}] = end;
      free_at[r] = end;
      makespan = std::max(makespan, end);
      ++next[r];
      progressed = true;
    }
  }
  for (size_t r = 0; r < orders.size(); ++r) EXPECT_EQ(next[r], orders[r].size()) << "stuck";
  return makespan;
}

TEST(ScheduleDagTest, EveryScheduleIsAcyclicCompleteAndMatchesAnEventSimulation) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.5, 2.0);
  for (const Case& c : AllCases()) {
    SCOPED_TRACE(std::string(ScheduleName(c.kind)) + " S=" + std::to_string(c.stages) +
                 " M=" + std::to_string(c.microbatches) + " V=" + std::to_string(c.virtual_stages));
    ScheduleShape shape{c.stages, c.microbatches, c.virtual_stages};
    RankOrders orders = Generate(c.kind, c.stages, c.microbatches, c.virtual_stages);
    auto dag = BuildScheduleDag(orders);
    ASSERT_TRUE(dag.ok()) << dag.status().message();
    const int stages = NumModelStages(c.kind, shape);
    // Every computation exactly once.
    const int per_microbatch = c.kind == ScheduleKind::kZeroBubbleH1 ? 3 : 2;
    EXPECT_EQ(dag->num_nodes(), stages * c.microbatches * per_microbatch);
    std::set<std::tuple<int, Instruction, int>> seen;
    for (const auto& node : dag->nodes()) {
      EXPECT_TRUE(seen.insert({node.stage, node.instruction, node.microbatch}).second);
      EXPECT_LT(node.stage, stages);
      EXPECT_LT(node.microbatch, c.microbatches);
    }
    EXPECT_EQ(dag->num_gpus(), c.stages);
    EXPECT_EQ(static_cast<int>(dag->topological_order().size()), dag->num_nodes());
    // Critical path with random durations per (stage, instruction).
    std::map<std::pair<int, Instruction>, double> duration;
    for (int k = 0; k < stages; ++k) {
      for (Instruction ins : {Instruction::kForward, Instruction::kBackward,
                              Instruction::kBackwardInput, Instruction::kBackwardWeight}) {
        duration[{k, ins}] = u(rng);
      }
    }
    std::vector<double> d(dag->num_nodes()), es;
    for (int i = 0; i < dag->num_nodes(); ++i) {
      d[i] = duration[{dag->node(i).stage, dag->node(i).instruction}];
    }
    EXPECT_NEAR(planner::EarliestStarts(dag.value(), d, &es),
                SimulateMakespan(orders, stages, duration), 1e-9);
  }
}

// Textbook bubbles with uniform durations (F = 1, B = 2 or I = W = 1):
// 1F1B and GPipe take 3 (M + S - 1); interleaved 1F1B with V chunks of a
// third of the work each (F = 1/V, B = 2/V) shrinks the bubble to 3 (S - 1) / V.
TEST(ScheduleDagTest, TextbookIterationTimes) {
  for (int s : {2, 4}) {
    for (int m : {4, 8}) {
      for (ScheduleKind kind : {ScheduleKind::kOneFOneB, ScheduleKind::kGPipe}) {
        auto dag = MakeScheduleDag(kind, {s, m, 1});
        ASSERT_TRUE(dag.ok());
        std::vector<double> d(dag->num_nodes()), es;
        for (int i = 0; i < dag->num_nodes(); ++i) {
          d[i] = dag->node(i).instruction == Instruction::kForward ? 1 : 2;
        }
        EXPECT_DOUBLE_EQ(planner::EarliestStarts(dag.value(), d, &es), 3.0 * (m + s - 1));
      }
      const int v = 2;
      auto dag = MakeScheduleDag(ScheduleKind::kInterleavedOneFOneB, {s, m, v});
      ASSERT_TRUE(dag.ok());
      std::vector<double> d(dag->num_nodes()), es;
      for (int i = 0; i < dag->num_nodes(); ++i) {
        d[i] = (dag->node(i).instruction == Instruction::kForward ? 1.0 : 2.0) / v;
      }
      EXPECT_DOUBLE_EQ(planner::EarliestStarts(dag.value(), d, &es), 3.0 * m + 3.0 * (s - 1) / v)
          << s << "x" << m;
    }
  }
}

// ZB-H1's bubble is a third of 1F1B's when F = I = W (Qi et al. 2024,
// table 1: (p - 1)(T_F + T_B - T_W) with T_B = T_I): 3M + (S - 1) in all,
// against 1F1B's 3M + 3(S - 1) (the M >= S case the paper analyses).
TEST(ScheduleDagTest, ZeroBubbleH1HasAThirdOfTheBubble) {
  for (int s = 1; s <= 6; ++s) {
    for (int m = s; m <= 12; ++m) {
      auto dag = MakeScheduleDag(ScheduleKind::kZeroBubbleH1, {s, m, 1});
      ASSERT_TRUE(dag.ok());
      std::vector<double> d(dag->num_nodes(), 1.0);
      EXPECT_DOUBLE_EQ(dag->Makespan(d), 3.0 * m + (s - 1)) << s << "x" << m;
    }
  }
}

// The solver's invariants hold on every schedule.
TEST(ScheduleDagTest, FrontierInvariantsOnEverySchedule) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> u(0, 1);
  for (ScheduleKind kind : {ScheduleKind::kOneFOneB, ScheduleKind::kGPipe,
                            ScheduleKind::kInterleavedOneFOneB, ScheduleKind::kZeroBubbleH1}) {
    SCOPED_TRACE(std::string(ScheduleName(kind)));
    ScheduleShape shape{3, 6, kind == ScheduleKind::kInterleavedOneFOneB ? 2 : 1};
    const int stages = NumModelStages(kind, shape);
    planner::Profile profile;
    profile.source = "random";
    profile.num_stages = stages;
    for (int k = 0; k < stages; ++k) {
      for (Instruction ins : {Instruction::kForward, Instruction::kBackward,
                              Instruction::kBackwardInput, Instruction::kBackwardWeight}) {
        double t = 0.05 * (0.6 + 0.8 * u(rng)) * (ins == Instruction::kBackward ? 2 : 1);
        double e = 30 * t * (0.8 + 0.4 * u(rng));
        std::vector<planner::Measurement> rows;
        for (int f = 0; f < 6; ++f) {
          rows.push_back({1410 - 90 * f, t, e, 2});
          t *= 1.06 + 0.04 * u(rng);
          e *= 0.93 + 0.04 * u(rng);
        }
        profile.measurements[{k, ins}] = rows;
      }
    }
    auto dag = MakeScheduleDag(kind, shape);
    ASSERT_TRUE(dag.ok());
    planner::PlannerOptions opt;
    opt.unit_time_s = 0.001;
    opt.blocking_power_w = 10;
    auto problem =
        planner::BuildProblem(std::make_shared<planner::Dag>(std::move(dag).value()), profile, opt);
    ASSERT_TRUE(problem.ok()) << problem.status().message();
    auto shared = std::make_shared<planner::Problem>(std::move(problem).value());
    // The sweep's own points, every one (the improved ends carry their base
    // points' model figures): model time strictly falling.
    planner::SolverOptions every_point;
    every_point.improve_ends = false;
    every_point.pareto_only = false;
    auto swept = planner::SolveFrontier(shared, {}, every_point);
    ASSERT_TRUE(swept.ok()) << swept.status().message();
    for (size_t k = 1; k < swept->points().size(); ++k) {
      EXPECT_LT(swept->points()[k].model_time_s, swept->points()[k - 1].model_time_s);
    }
    // Its Pareto points (realized figures, which need not follow the model
    // times' order): realized time strictly falling, energy strictly rising.
    planner::SolverOptions sweep_only;
    sweep_only.improve_ends = false;
    auto frontier = planner::SolveFrontier(shared, {}, sweep_only);
    ASSERT_TRUE(frontier.ok()) << frontier.status().message();
    const auto& points = frontier->points();
    ASSERT_GT(points.size(), 5u);
    for (size_t k = 1; k < points.size(); ++k) {
      EXPECT_LT(points[k].time_s, points[k - 1].time_s);
      EXPECT_GT(points[k].energy_j, points[k - 1].energy_j);
    }
    const auto& tmin = points[frontier->TMinIndex()];
    EXPECT_LE(tmin.time_s, frontier->all_max.time_s);
    EXPECT_LT(tmin.energy_j, frontier->all_max.energy_j);
    EXPECT_GE(points.back().model_time_s, frontier->all_max.time_s - 1e-9);
    // With the ends improved (the default): T_min no slower than all-max, no costlier.
    auto improved = planner::SolveFrontier(shared);
    ASSERT_TRUE(improved.ok());
    const auto& improved_tmin = improved->points()[improved->TMinIndex()];
    EXPECT_LE(improved_tmin.time_s, frontier->all_max.time_s * (1 + 1e-9));
    EXPECT_LE(improved_tmin.energy_j, tmin.energy_j);
  }
}

TEST(RenderTest, TextAndSvg) {
  RankOrders orders = Generate(ScheduleKind::kOneFOneB, 2, 2);
  EXPECT_EQ(RenderScheduleText(orders), "rank 0 | 0F0 0F1 0B0 0B1\nrank 1 | 1F0 1B0 1F1 1B1\n");
  auto dag = BuildScheduleDag(orders);
  ASSERT_TRUE(dag.ok());
  std::string svg = RenderScheduleSvg(dag.value(), UnitDurations(dag.value()), "a <b> & c");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("a &lt;b&gt; &amp; c"), std::string::npos);  // the shared HtmlEscape
  size_t boxes = 0;
  for (size_t p = svg.find("<g class=\"box\">"); p != std::string::npos;
       p = svg.find("<g class=\"box\">", p + 1))
    ++boxes;
  EXPECT_EQ(boxes, 8u);
  EXPECT_NE(svg.find("iteration time 9"), std::string::npos);  // 3 (M + S - 1)
  // A time axis with ticks over 0 .. 9 (nice steps of 1 or 2).
  size_t ticks = 0;
  for (size_t p = svg.find("class=\"tick-label\""); p != std::string::npos;
       p = svg.find("class=\"tick-label\"", p + 1))
    ++ticks;
  EXPECT_GE(ticks, 5u) << svg;
  EXPECT_NE(svg.find("text-anchor=\"middle\">0</text>"), std::string::npos);
  EXPECT_NE(svg.find("text-anchor=\"middle\">8</text>"), std::string::npos);
  // Not interleaved: labels without a chunk.
  EXPECT_NE(svg.find(">F0</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">F0c"), std::string::npos);
}

TEST(RenderTest, NiceTicks) {
  EXPECT_EQ(NiceTicks(0, 9, 6), (std::vector<double>{0, 2, 4, 6, 8}));
  EXPECT_EQ(NiceTicks(433, 601, 8), (std::vector<double>{450, 475, 500, 525, 550, 575, 600}));
  const std::vector<double> small = NiceTicks(-0.03, 0.31, 8);  // step 0.05
  ASSERT_EQ(small.size(), 7u);
  EXPECT_EQ(small.front(), 0);
  EXPECT_EQ(TickText(small[1], 0.05), "0.05");
  EXPECT_EQ(TickText(0.25, 0.25), "0.25");
  EXPECT_EQ(TickText(450, 25), "450");
  EXPECT_EQ(TickText(1.1, 0.1), "1.1");
}

TEST(RenderTest, InterleavedLabelsNameTheChunkAndFitTheirBoxes) {
  auto orders = GenerateRankOrders(ScheduleKind::kInterleavedOneFOneB, {2, 4, 2});
  ASSERT_TRUE(orders.ok());
  auto dag = BuildScheduleDag(orders.value());
  ASSERT_TRUE(dag.ok());
  EXPECT_TRUE(HasChunks(dag.value()));
  std::string svg = RenderScheduleSvg(dag.value(), UnitDurations(dag.value()), "i", "s");
  EXPECT_NE(svg.find(">F0c0</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">F0c1</text>"), std::string::npos);
  EXPECT_NE(svg.find("time (s)"), std::string::npos);
  // A label too wide for its box is shrunk, then left out.
  TimelineSpec spec;
  spec.end = 100;
  spec.width = 100;
  spec.boxes = {{0, 0, 50, "#000", false, false, "F12", ""},
                {0, 50, 70, "#000", false, false, "F12", ""},
                {0, 70, 71, "#000", false, false, "F12", ""}};
  const std::string t = RenderTimelineSvg(spec);
  EXPECT_NE(t.find("font-size=\"11.0\""), std::string::npos) << t;  // 50 px: full size
  // 20 px: 16 px for the text, 3 x 0.6 x 8.5 = 15.3.
  EXPECT_NE(t.find("font-size=\"8.5\""), std::string::npos);
  size_t labels = 0;
  for (size_t p = t.find(">F12<"); p != std::string::npos; p = t.find(">F12<", p + 1)) ++labels;
  EXPECT_EQ(labels, 2u);  // not in the 1 px box
}

}  // namespace
}  // namespace perseus::schedules
