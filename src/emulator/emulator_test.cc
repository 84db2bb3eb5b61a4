#include "perseus/emulator/emulator.h"

#include <gtest/gtest.h>

#include <random>

#include "perseus/emulator/simulator.h"
#include "perseus/job/job.h"
#include "perseus/planner/solver.h"

namespace perseus::emulator {
namespace {

using planner::Instruction;

planner::Frontier Solve(const std::string& csv, int stages, int microbatches, double power,
                        double unit) {
  auto profile = planner::ParseProfileCsv(csv, "p.csv");
  EXPECT_TRUE(profile.ok()) << profile.status().message();
  job::JobSpec spec;
  spec.stages = stages;
  spec.microbatches = microbatches;
  spec.blocking_power_w = power;
  spec.unit_time_s = unit;
  auto job = job::PrepareJob(spec, profile.value());
  EXPECT_TRUE(job.ok()) << job.status().message();
  return planner::SolveFrontier(job->problem).value();
}

// One stage, one microbatch, P = 1 W: forward 1 s / 10 J or 2 s / 6 J,
// backward 1 s / 10 J. All-max: 2 s, 20 J. Frontier: (3 s, 16 J), (2 s, 20 J).
TEST(EmulatorTest, HandComputedStraggler) {
  planner::Frontier f = Solve(
      "stage,instruction,frequency,time,energy\n0,forward,1000,1,10\n0,forward,500,2,6\n"
      "0,backward,1000,1,10\n",
      1, 1, 1.0, 1.0);
  EmulationOptions opt;
  opt.pipelines = 3;
  opt.slowdowns = {1.0, 1.5};
  auto rows = Emulate(f, opt);
  ASSERT_TRUE(rows.ok()) << rows.status().message();
  ASSERT_EQ(rows->size(), 2u);
  // No straggler: every pipeline at T_min = all-max: 3 x 20 J.
  EXPECT_DOUBLE_EQ((*rows)[0].methods[0].energy_j, 60);
  EXPECT_DOUBLE_EQ((*rows)[0].methods[1].energy_j, 60);
  // X = 1.5, T' = 3 s. All-max: straggler 1.5 x 20 J, others 20 J + 1 s x 1 W.
  const auto& r = (*rows)[1];
  EXPECT_DOUBLE_EQ(r.methods[0].time_s, 3);
  EXPECT_DOUBLE_EQ(r.methods[0].energy_j, 30 + 2 * 21);
  // Perseus: others run the 3 s / 16 J point and do not wait.
  EXPECT_DOUBLE_EQ(r.methods[1].energy_j, 30 + 2 * 16);
  EXPECT_NEAR(r.methods[1].saving_pct, 100.0 * 10 / 72, 1e-9);
  // EnvPipe: the only stage is the last stage, pinned at the highest frequency.
  EXPECT_DOUBLE_EQ(r.methods[2].energy_j, 72);
  EXPECT_DOUBLE_EQ(r.methods[2].saving_pct, 0);
}

// Two stages, two microbatches, F 1 s / B 2 s at the highest frequency and
// 1.5 s / 3 s at the lowest. EnvPipe pins stage 1 and stage 0's F0 and B1;
// stage 0's F1 and B0 fit at the lowest frequency within the all-max 9 s
// (worked by hand: F1@s0 ends at 2.5 before F1@s1 starts at 4; B0@s0 runs
// 4-7 while B1@s1 runs 5-7), so it stops at once.
TEST(EnvPipeTest, HandComputedPlan) {
  std::string csv = "stage,instruction,frequency,time,energy\n";
  for (int s = 0; s < 2; ++s) {
    csv += std::to_string(s) + ",forward,1400,1,10\n" + std::to_string(s) + ",forward,800,1.5,8\n";
    csv += std::to_string(s) + ",backward,1400,2,20\n" + std::to_string(s) + ",backward,800,3,16\n";
  }
  planner::Frontier f = Solve(csv, 2, 2, 0.0, 0.5);
  EnvPipeResult r = RunEnvPipe(f.problem());
  EXPECT_TRUE(r.met_all_max_time);
  EXPECT_EQ(r.rounds, 0);
  EXPECT_DOUBLE_EQ(r.figures.time_s, 9);
  const planner::Dag& dag = *f.problem().dag;
  for (int i = 0; i < dag.num_nodes(); ++i) {
    const auto& c = dag.node(i);
    const bool slow =
        c.gpu == 0 && ((c.instruction == Instruction::kForward && c.microbatch == 1) ||
                       (c.instruction == Instruction::kBackward && c.microbatch == 0));
    EXPECT_EQ(r.plan[i], slow ? 1 : 0) << planner::ComputationLabel(c);
  }
  EXPECT_DOUBLE_EQ(r.figures.energy_j, 4 * 10 + 4 * 20 - 2 - 4);
}

// EnvPipe always ends, and with the all-max time met, on random and
// adversarial profiles (highest frequency slower than a lower one, flat
// energies, single options).
TEST(EnvPipeTest, TerminatesOnAdversarialProfiles) {
  std::mt19937 rng(4);
  std::uniform_real_distribution<double> u(0, 1);
  for (int trial = 0; trial < 60; ++trial) {
    const int stages = 1 + static_cast<int>(rng() % 4),
              microbatches = 1 + static_cast<int>(rng() % 6);
    std::string csv = "stage,instruction,frequency,time,energy\n";
    for (int s = 0; s < stages; ++s) {
      for (const char* ins : {"forward", "backward"}) {
        const int options = 1 + static_cast<int>(rng() % 5);
        for (int k = 0; k < options; ++k) {
          double t = 0.5 + u(rng), e = trial % 3 == 0 ? 5.0 : 1 + 10 * u(rng);
          csv += std::to_string(s) + "," + ins + "," + std::to_string(1500 - 100 * k) + "," +
                 std::to_string(t) + "," + std::to_string(e) + "\n";
        }
      }
    }
    planner::Frontier f = Solve(csv, stages, microbatches, 0.3, 0.01);
    EnvPipeResult r = RunEnvPipe(f.problem());
    EXPECT_TRUE(r.met_all_max_time) << "trial " << trial;
    EXPECT_LE(r.figures.time_s, f.all_max.time_s * (1 + 1e-12));
  }
}

// Two stages: stage 0's forward takes 1 s at 1400 MHz, 1.2 s at 1100, 2 s at
// 800; stage 1's 1.5 s at 1400. zeus-per-stage slows stage 0 to the lowest
// frequency whose forward fits in 1.5 s (1100 MHz) and keeps stage 1 at 1400.
// zeus-global offers one plan per distinct frequency cap.
TEST(ZeusTest, HandComputedPlans) {
  std::string csv =
      "stage,instruction,frequency,time,energy\n"
      "0,forward,1400,1,10\n0,forward,1100,1.2,8\n0,forward,800,2,7\n"
      "0,backward,1400,2,20\n0,backward,1100,2.4,16\n0,backward,800,4,14\n"
      "1,forward,1400,1.5,15\n1,forward,1100,1.8,12\n"
      "1,backward,1400,3,30\n1,backward,1100,3.6,24\n";
  planner::Frontier f = Solve(csv, 2, 2, 0.5, 0.1);
  const planner::Problem& problem = f.problem();
  planner::Plan per_stage = ZeusPerStagePlan(problem);
  for (int i = 0; i < problem.dag->num_nodes(); ++i) {
    const int frequency = problem.option(i, per_stage[i]).frequency_mhz;
    EXPECT_EQ(frequency, problem.dag->node(i).gpu == 0 ? 1100 : 1400);
  }
  std::vector<planner::Plan> global = ZeusGlobalPlans(problem);
  ASSERT_EQ(global.size(), 3u);  // caps 1400, 1100, 800
  EXPECT_EQ(global[0], planner::Plan(problem.dag->num_nodes(), 0));
  EmulationOptions opt;
  opt.slowdowns = {1.0, 1.5};
  opt.pipelines = 2;
  auto rows = Emulate(f, opt);
  ASSERT_TRUE(rows.ok());
  // zeus-global at X = 1 is all-max; with a straggler it can only gain.
  EXPECT_DOUBLE_EQ((*rows)[0].methods[3].saving_pct, 0);
  EXPECT_GE((*rows)[1].methods[3].saving_pct, 0);
  // Perseus is never worse than a baseline whose job is as fast; zeus-per-stage
  // balances forwards at the cost of time, so its job is slower.
  for (const auto& row : *rows) {
    for (size_t m = 0; m < row.methods.size(); ++m) {
      if (row.methods[m].time_s > row.methods[1].time_s * (1 + 1e-12)) continue;
      EXPECT_LE(row.methods[1].energy_j, row.methods[m].energy_j * (1 + 1e-9)) << m;
    }
    EXPECT_GT(row.methods[4].time_s, row.methods[1].time_s);
  }
}

TEST(EmulatorTest, ParseSlowdowns) {
  auto v = ParseSlowdowns({"1.0:1.2:0.05", "1.5"});
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size(), 6u);
  EXPECT_DOUBLE_EQ((*v)[4], 1.2);
  EXPECT_DOUBLE_EQ((*v)[5], 1.5);
  EXPECT_FALSE(ParseSlowdowns({"x"}).ok());
  EXPECT_FALSE(ParseSlowdowns({"1:2"}).ok());
  EXPECT_FALSE(ParseSlowdowns({"1:2:0"}).ok());
  planner::Frontier f =
      Solve("stage,instruction,frequency,time,energy\n0,forward,1000,1,10\n0,backward,1000,1,10\n",
            1, 1, 1.0, 1.0);
  EmulationOptions opt;
  opt.slowdowns = {0.5};
  EXPECT_FALSE(Emulate(f, opt).ok());
}

TEST(EmulatorTest, MethodNamesComeFromOneRegistry) {
  // Every method's name parses back to it, and the default list is all of them.
  const std::vector<std::string> names = AllMethodNames();
  ASSERT_EQ(names.size(), std::size(kMethods));
  auto parsed = ParseMethodNames(names);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(*parsed, EmulationOptions{}.methods);
  EXPECT_EQ(MethodNames(), "all-max, perseus, envpipe, zeus-global, zeus-per-stage");
  auto bad = ParseMethodNames({"perseus", "zeus"}, "--methods");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidInput);
  EXPECT_EQ(bad.status().message(),
            "--methods: unknown method 'zeus' (all-max, perseus, envpipe, zeus-global, "
            "zeus-per-stage)");
}

// With no latency and no noise the simulator reproduces the planner's realized
// figures exactly, for every frontier point of the shipped GPT-3 profile.
TEST(SimulatorTest, ReproducesRealizedFiguresExactly) {
  auto profile = planner::ReadProfileCsv(std::string(PERSEUS_DATA_DIR) +
                                         "/profiles/gpt3-175b+a100_sxm_bf16.csv");
  ASSERT_TRUE(profile.ok());
  job::JobSpec spec;
  spec.stages = 8;
  spec.microbatches = 4;
  spec.blocking_power_w = 83.64;
  spec.schedule = "zb-h1";
  auto job = job::PrepareJob(spec, profile.value());
  ASSERT_TRUE(job.ok());
  auto f = planner::SolveFrontier(job->problem).value();
  for (size_t k = 0; k < f.size(); k += 37) {
    auto sim = Simulate(f.problem(), f.PlanAt(k), {});
    ASSERT_TRUE(sim.ok());
    EXPECT_EQ(sim->figures.time_s, f.points()[k].time_s) << k;
    EXPECT_EQ(sim->figures.energy_j, f.points()[k].energy_j) << k;
  }
}

// Hand-computed effects on a two-stage, one-microbatch chain
// F@s0 (1 s) -> F@s1 (1 s) -> B@s1 (2 s) -> B@s0 (2 s), P = 0.
TEST(SimulatorTest, LatenciesAndNoise) {
  std::string csv =
      "stage,instruction,frequency,time,energy\n"
      "0,forward,1400,1,10\n0,forward,700,2,8\n0,backward,1400,2,20\n"
      "0,backward,700,4,16\n1,forward,1400,1,10\n1,backward,1400,2,20\n";
  planner::Frontier f = Solve(csv, 2, 1, 0.0, 0.5);
  const planner::Problem& problem = f.problem();
  planner::Plan fastest(problem.dag->num_nodes(), 0);
  // Two GPU-to-GPU hops... three: F0->F1, B1->B0 (F1->B1 is on one GPU).
  SimulationOptions p2p;
  p2p.p2p_latency_s = 0.1;
  EXPECT_DOUBLE_EQ(Simulate(problem, fastest, p2p)->figures.time_s, 6.2);
  // F@s0 at 700 MHz then B@s0 at 1400 MHz with a 1 s switch latency: B@s0
  // runs its first second at 700 MHz (4 s for the whole backward there), so
  // a quarter of its work: 1 + 0.75 x 2 = 2.5 s instead of 2; in all
  // 2 + 1 + 2 + 2.5 = 7.5 s, and 8 + 10 + 20 + (0.25 x 16 + 0.75 x 20) J.
  planner::Plan slow_forward = fastest;
  for (int i = 0; i < problem.dag->num_nodes(); ++i) {
    if (problem.dag->node(i).gpu == 0 &&
        problem.dag->node(i).instruction == Instruction::kForward) {
      slow_forward[i] = 1;
    }
  }
  SimulationOptions sw;
  sw.switch_latency_s = 1;
  auto switched = Simulate(problem, slow_forward, sw);
  ASSERT_TRUE(switched.ok());
  EXPECT_DOUBLE_EQ(switched->figures.time_s, 7.5);
  EXPECT_DOUBLE_EQ(switched->figures.energy_j, 8 + 10 + 20 + 4 + 15);
  EXPECT_DOUBLE_EQ(Simulate(problem, slow_forward, {})->figures.time_s, 7);
  // Noise moves time and energy, reproducibly for a seed.
  SimulationOptions noisy;
  noisy.noise_pct = 5;
  noisy.seed = 3;
  auto a = Simulate(problem, fastest, noisy), b = Simulate(problem, fastest, noisy);
  EXPECT_EQ(a->figures.time_s, b->figures.time_s);
  EXPECT_NE(a->figures.time_s, 6.0);
  EXPECT_NEAR(a->figures.time_s, 6.0, 6.0 * 0.5);
  SimulationOptions bad;
  bad.noise_pct = -1;
  EXPECT_FALSE(Simulate(problem, fastest, bad).ok());
}

}  // namespace
}  // namespace perseus::emulator
