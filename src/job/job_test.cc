#include "perseus/job/job.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "perseus/planner/realized.h"
#include "perseus/schedules/schedule_csv.h"

namespace perseus::job {
namespace {

using planner::Instruction;

planner::Profile Parse(const std::string& csv) {
  auto p = planner::ParseProfileCsv(csv, "p.csv");
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? p.value() : planner::Profile{};
}

const char kTwoStages[] =
    "stage,instruction,frequency,time,energy\n"
    "0,forward,1000,1.0,10\n0,forward,800,1.2,9\n"
    "0,backward,1000,2.0,20\n0,backward,800,2.4,18\n"
    "1,forward,1000,1.0,10\n1,forward,800,1.2,9\n"
    "1,backward,1000,2.0,20\n1,backward,800,2.4,18\n";

JobSpec Spec(const std::string& schedule, int s, int m) {
  JobSpec spec;
  spec.schedule = schedule;
  spec.stages = s;
  spec.microbatches = m;
  spec.blocking_power_w = 1;
  spec.unit_time_s = 0.1;
  return spec;
}

TEST(JobTest, OneFOneBUsesTheProfileAsIs) {
  auto job = PrepareJob(Spec("1f1b", 2, 3), Parse(kTwoStages));
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->model_stages, 2);
  EXPECT_EQ(job->gpus, 2);
  EXPECT_TRUE(job->notes.empty());
  EXPECT_EQ(job->problem->dag->num_nodes(), 12);
}

TEST(JobTest, ZeroBubbleSplitsTheBackwardInHalves) {
  auto job = PrepareJob(Spec("zb-h1", 2, 3), Parse(kTwoStages));
  ASSERT_TRUE(job.ok()) << job.status().message();
  ASSERT_EQ(job->notes.size(), 1u);
  EXPECT_NE(job->notes[0].find("half"), std::string::npos);
  const auto& problem = *job->problem;
  for (int i = 0; i < problem.dag->num_nodes(); ++i) {
    if (problem.dag->node(i).instruction == Instruction::kBackwardWeight) {
      EXPECT_DOUBLE_EQ(problem.set(i).highest_frequency.time_s, 1.0);
      EXPECT_DOUBLE_EQ(problem.set(i).highest_frequency.energy_j, 10);
    }
  }
}

TEST(JobTest, InterleavedCutsStagesIntoChunks) {
  auto job = PrepareJob(Spec("interleaved-1f1b", 2, 4), Parse(kTwoStages));
  ASSERT_TRUE(job.ok());  // V = 1: one chunk per GPU
  EXPECT_EQ(job->model_stages, 2);
  JobSpec spec = Spec("interleaved-1f1b", 2, 4);
  spec.virtual_stages = 2;
  job = PrepareJob(spec, Parse(kTwoStages));
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->model_stages, 4);
  ASSERT_EQ(job->notes.size(), 1u);
  const auto& problem = *job->problem;
  for (int i = 0; i < problem.dag->num_nodes(); ++i) {
    const auto& c = problem.dag->node(i);
    EXPECT_EQ(c.gpu, c.stage % 2);
    if (c.instruction == Instruction::kForward) {
      EXPECT_DOUBLE_EQ(problem.set(i).highest_frequency.time_s, 0.5);
    }
  }
  // A profile of 4 stages is used as 4 chunks directly; 3 stages is an error.
  spec.stages = 3;
  spec.microbatches = 3;
  auto bad = PrepareJob(spec, Parse(kTwoStages));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("the profile has 2 stages but the schedule needs 6"),
            std::string::npos)
      << bad.status().message();
}

TEST(JobTest, TensorParallelRowsCombine) {
  std::string csv = "stage,instruction,frequency,time,energy,tp_rank\n";
  for (int s = 0; s < 2; ++s) {
    for (const char* ins : {"forward", "backward"}) {
      for (int r = 0; r < 2; ++r) {
        csv += std::to_string(s) + "," + ins + ",1000," + (r == 0 ? "1.0" : "1.5") + ",10," +
               std::to_string(r) + "\n";
      }
    }
  }
  JobSpec spec = Spec("1f1b", 2, 2);
  spec.tp = 2;
  spec.dp = 3;
  auto job = PrepareJob(spec, Parse(csv));
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->gpus, 12);
  EXPECT_DOUBLE_EQ(job->stage_blocking_power_w, 2);
  EXPECT_DOUBLE_EQ(job->problem->set(0).highest_frequency.time_s, 1.5);   // max over ranks
  EXPECT_DOUBLE_EQ(job->problem->set(0).highest_frequency.energy_j, 20);  // sum
  // A rank missing at one frequency is named.
  spec.tp = 3;
  auto bad = PrepareJob(spec, Parse(csv));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("has rows for 2 tensor-parallel ranks, --tp is 3"),
            std::string::npos)
      << bad.status().message();
}

TEST(JobTest, TensorParallelWithoutRanksMultipliesEnergy) {
  JobSpec spec = Spec("1f1b", 2, 2);
  spec.tp = 4;
  auto job = PrepareJob(spec, Parse(kTwoStages));
  ASSERT_TRUE(job.ok());
  EXPECT_DOUBLE_EQ(job->problem->set(0).highest_frequency.energy_j, 40);
  EXPECT_DOUBLE_EQ(job->problem->set(0).highest_frequency.time_s, 1.0);
  EXPECT_DOUBLE_EQ(job->stage_blocking_power_w, 4);
  EXPECT_EQ(job->notes.size(), 1u);
}

TEST(JobTest, ScheduleFileGivesTheSameProblemAsTheBuiltIn) {
  auto orders = schedules::GenerateRankOrders(schedules::ScheduleKind::kOneFOneB, {2, 3, 1});
  ASSERT_TRUE(orders.ok());
  const auto path = std::filesystem::temp_directory_path() / "perseus_job_test_schedule.csv";
  std::ofstream(path) << schedules::WriteScheduleCsv(orders.value());
  JobSpec spec = Spec("1f1b", 0, 0);
  spec.schedule_file = path.string();
  auto from_file = PrepareJob(spec, Parse(kTwoStages));
  auto built_in = PrepareJob(Spec("1f1b", 2, 3), Parse(kTwoStages));
  std::filesystem::remove(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status().message();
  ASSERT_TRUE(built_in.ok());
  EXPECT_EQ(from_file->stages, 2);
  EXPECT_EQ(from_file->microbatches, 3);
  EXPECT_EQ(from_file->problem->dag->num_edges(), built_in->problem->dag->num_edges());
  auto a = planner::EvaluateAllMax(*from_file->problem);
  auto b = planner::EvaluateAllMax(*built_in->problem);
  EXPECT_DOUBLE_EQ(a.time_s, b.time_s);
  EXPECT_DOUBLE_EQ(a.energy_j, b.energy_j);
}

TEST(JobTest, ScheduleCsvTextIsTheScheduleFile) {
  auto orders = schedules::GenerateRankOrders(schedules::ScheduleKind::kOneFOneB, {2, 3, 1});
  ASSERT_TRUE(orders.ok());
  JobSpec spec = Spec("1f1b", 0, 0);
  spec.schedule_csv = schedules::WriteScheduleCsv(orders.value());
  auto from_text = PrepareJob(spec, Parse(kTwoStages));
  ASSERT_TRUE(from_text.ok()) << from_text.status().message();
  EXPECT_EQ(from_text->schedule, "csv");
  EXPECT_EQ(from_text->stages, 2);
  EXPECT_EQ(from_text->microbatches, 3);
  auto built_in = PrepareJob(Spec("1f1b", 2, 3), Parse(kTwoStages));
  ASSERT_TRUE(built_in.ok());
  EXPECT_EQ(from_text->problem->dag->num_edges(), built_in->problem->dag->num_edges());
  EXPECT_DOUBLE_EQ(planner::EvaluateAllMax(*from_text->problem).time_s,
                   planner::EvaluateAllMax(*built_in->problem).time_s);

  auto message = [](JobSpec s) {
    auto job = PrepareJob(s, Parse(kTwoStages));
    return job.ok() ? std::string() : job.status().message();
  };
  JobSpec wrong = spec;
  wrong.stages = 3;
  EXPECT_EQ(message(wrong), "schedule: the schedule has 2 ranks but stages is 3");
  wrong = spec;
  wrong.microbatches = 4;
  EXPECT_EQ(message(wrong), "schedule: the schedule has 3 microbatches but microbatches is 4");
  wrong = spec;
  wrong.schedule_csv = "0F0,0B0\n1F0,1X0\n";
  EXPECT_NE(message(wrong).find("schedule:2: column 2: '1X0' is not an action"), std::string::npos);
  wrong.schedule_csv = "0F0,0B0\n1B0,1F0\n";
  EXPECT_NE(message(wrong).find("schedule: the schedule deadlocks"), std::string::npos);
  wrong = spec;
  wrong.schedule_file = "/some/file.csv";
  EXPECT_NE(message(wrong).find("not both"), std::string::npos);
}

// DualPipeV-like: rank 1 overlaps 1F1 with 1B0; the pair costs the sum of its
// halves and the job says so.
TEST(JobTest, OverlappedPairIsDerivedAndAnnounced) {
  JobSpec spec = Spec("1f1b", 0, 0);
  spec.schedule_csv = "0F0,0F1,0B0,0B1\n1F0,(1F1;1B0)OVERLAP_F_B,1B1\n";
  auto job = PrepareJob(spec, Parse(kTwoStages));
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->model_stages, 2);
  EXPECT_EQ(job->microbatches, 2);
  ASSERT_EQ(job->notes.size(), 1u);
  EXPECT_EQ(job->notes[0],
            "overlapped F+B of DualPipeV: time and energy are the sum of the forward's and the "
            "backward's at each frequency (torch runs them back to back)");
  const auto& problem = *job->problem;
  int pairs = 0;
  for (int i = 0; i < problem.dag->num_nodes(); ++i) {
    if (!problem.dag->node(i).overlapped()) continue;
    ++pairs;
    ASSERT_EQ(problem.set(i).options.size(), 2u);
    EXPECT_DOUBLE_EQ(problem.set(i).options[0].time_s, 3.0);   // 1.0 + 2.0 at 1000 MHz
    EXPECT_DOUBLE_EQ(problem.set(i).options[0].energy_j, 30);  // 10 + 20
    EXPECT_DOUBLE_EQ(problem.set(i).options[1].time_s, 3.6);   // 1.2 + 2.4 at 800 MHz
    EXPECT_DOUBLE_EQ(problem.set(i).options[1].energy_j, 27);  // 9 + 18
  }
  EXPECT_EQ(pairs, 1);
  // An overlap with I as its backward half gets the split backward too.
  spec.schedule_csv = "0F0,0F1,0I0,0W0,0B1\n1F0,(1F1;1I0)OVERLAP_F_B,1W0,1B1\n";
  job = PrepareJob(spec, Parse(kTwoStages));
  ASSERT_TRUE(job.ok()) << job.status().message();
  EXPECT_EQ(job->notes.size(), 2u);
}

TEST(JobTest, BadOptionsAreNamed) {
  auto message = [](JobSpec spec) {
    auto job = PrepareJob(spec, Parse(kTwoStages));
    return job.ok() ? std::string() : job.status().message();
  };
  JobSpec spec = Spec("2f2b", 2, 2);
  EXPECT_NE(message(spec).find("schedule must be one of"), std::string::npos);
  spec = Spec("1f1b", 2, 2);
  spec.dp = 0;
  EXPECT_NE(message(spec).find("dp must be at least 1"), std::string::npos);
  spec = Spec("1f1b", 2, 0);
  EXPECT_NE(message(spec).find("microbatches is required"), std::string::npos);
  spec = Spec("gpipe", 2, 2);
  spec.virtual_stages = 2;
  EXPECT_NE(message(spec).find("virtual_stages applies only"), std::string::npos);
}

// Bounded work: a job whose tables or DAG would exhaust memory, or whose
// energies overflow the integer costs, is refused before anything large is
// built, naming the field (issue 16's findings, through the one PrepareJob
// the CLI, the coordinator and Python share).
TEST(JobTest, WorkBeyondTheLimitsIsRefusedNamingTheField) {
  auto message = [](JobSpec spec, const std::string& csv, WorkLimits limits = {}) {
    auto job = PrepareJob(spec, Parse(csv), limits);
    return job.ok() ? std::string() : job.status().message();
  };
  // One 100 s computation at a 10 us unit: 10^7 units (hundreds of MB of tables).
  const std::string slow_row = std::string(kTwoStages) + "0,forward,100,100,1\n";
  JobSpec spec = Spec("1f1b", 2, 2);
  spec.unit_time_s = 1e-5;
  std::string m = message(spec, slow_row);
  EXPECT_NE(m.find("unit_time 1e-05 s is too small: stage 0 forward takes up to 100 s, 1e+07 units "
                   "(at most 1048576 per computation); a unit_time of at least 9.537e-05 s fits"),
            std::string::npos)
      << m;
  // Within the per-computation bound but beyond the total one.
  WorkLimits small;
  small.max_total_units = 50;
  spec.unit_time_s = 0.1;  // 10 + 12 + 20 + 24 units per stage's sets
  m = message(spec, kTwoStages, small);
  EXPECT_NE(m.find("time units in all"), std::string::npos) << m;
  small.max_total_units = 1000;
  EXPECT_EQ(message(spec, kTwoStages, small), "");
  // The schedule's size, before it is generated.
  spec = Spec("interleaved-1f1b", 2, 4);
  spec.virtual_stages = 1000;
  EXPECT_EQ(message(spec, kTwoStages), "virtual_stages must be between 1 and 128, not 1000");
  spec = Spec("1f1b", 2048, 1024);
  EXPECT_EQ(message(spec, kTwoStages),
            "stages x microbatches make 4194304 computations per pipeline (2048 x 1024 x 2); at "
            "most 262144");
  EXPECT_EQ(CheckWorkLimits(Spec("zb-h1", 64, 2048)).message(),
            "stages x microbatches make 393216 computations per pipeline (64 x 2048 x 3); at most "
            "262144");
  EXPECT_TRUE(CheckWorkLimits(Spec("1f1b", 64, 2048)).ok());
  // Energies beyond the integer costs (energy_scale 1e13 made model_energy 0).
  spec = Spec("1f1b", 2, 2);
  spec.energy_scale = 1e13;
  m = message(spec, kTwoStages);
  EXPECT_NE(m.find("p.csv: stage 0 forward uses up to 1e+14 J per computation (after "
                   "energy_scale); the planner takes at most 1e+09 J"),
            std::string::npos)
      << m;
  spec.energy_scale = 1e7;  // 2e8 J: still planned
  EXPECT_EQ(message(spec, kTwoStages), "");
}

TEST(JobTest, BlockingPowerIsSaidOneWay) {
  EXPECT_EQ(BlockingPowerText(83.64, 8), "83.64 W per GPU (669.1 W per 8-GPU stage)");
  EXPECT_EQ(BlockingPowerText(669.12, 1), "669.1 W per GPU (1-GPU stages)");
}

// Each refusal names the job field at fault (Status::field), which the
// coordinator returns as its reply's "field"; a profile's own fault names none.
TEST(JobTest, RefusalsNameTheFieldAtFault) {
  auto field = [](JobSpec spec, const std::string& csv) {
    auto job = PrepareJob(spec, Parse(csv));
    return job.ok() ? std::string("(ok)") : job.status().field();
  };
  JobSpec spec = Spec("1f1b", 2, 2);
  spec.unit_time_s = 1e-5;
  EXPECT_EQ(field(spec, std::string(kTwoStages) + "0,forward,100,100,1\n"), "unit_time");
  spec = Spec("interleaved-1f1b", 2, 4);
  spec.virtual_stages = 1000;
  EXPECT_EQ(field(spec, kTwoStages), "virtual_stages");
  EXPECT_EQ(field(Spec("1f1b", 2048, 1024), kTwoStages), "microbatches");
  EXPECT_EQ(field(Spec("2f2b", 2, 2), kTwoStages), "schedule");
  spec = Spec("1f1b", 2, 2);
  spec.cost_model = "cubic";
  EXPECT_EQ(field(spec, kTwoStages), "cost_model");
  spec = Spec("1f1b", 2, 2);
  spec.time_scale = -1;
  EXPECT_EQ(field(spec, kTwoStages), "time_scale");
  spec = Spec("1f1b", 2, 2);
  spec.tp = 0;
  EXPECT_EQ(field(spec, kTwoStages), "tp");
  EXPECT_EQ(field(Spec("1f1b", 2, 2), kTwoStages), "(ok)");
  spec.tp = 1;
  spec.energy_scale = 1e13;  // the profile's energies: no job field
  EXPECT_EQ(field(spec, kTwoStages), "");
}

// The automatic quantum: the fastest computation / 500, rounded down to 1, 2 or
// 5 x 10^k, within [1e-5, 1] s; a scaled profile gets a scaled quantum.
TEST(JobTest, TheDefaultUnitComesFromTheFastestComputation) {
  auto with_fastest = [](double t) {
    return Parse("stage,instruction,frequency,time,energy\n0,forward,1000," + std::to_string(t) +
                 ",1\n0,backward,1000," + std::to_string(2 * t) + ",1\n");
  };
  EXPECT_DOUBLE_EQ(AutoUnitTime(with_fastest(0.05)), 1e-4);  // 50 ms forwards
  EXPECT_DOUBLE_EQ(AutoUnitTime(with_fastest(0.5)), 1e-3);
  EXPECT_DOUBLE_EQ(AutoUnitTime(with_fastest(0.165)), 2e-4);  // 3.3e-4 -> 2e-4
  EXPECT_DOUBLE_EQ(AutoUnitTime(with_fastest(0.35)), 5e-4);   // 7e-4 -> 5e-4
  EXPECT_DOUBLE_EQ(AutoUnitTime(with_fastest(1e-4)), 1e-5);   // clamped
  EXPECT_DOUBLE_EQ(AutoUnitTime(with_fastest(5000)), 1.0);    // clamped
  EXPECT_DOUBLE_EQ(AutoUnitTime(planner::Profile{}), 1e-3);   // nothing to go by
  // PrepareJob: 0 is automatic (of the profile as scaled), a given unit is kept.
  JobSpec spec = Spec("1f1b", 2, 2);
  spec.unit_time_s = 0;
  auto automatic = PrepareJob(spec, Parse(kTwoStages));
  ASSERT_TRUE(automatic.ok()) << automatic.status().message();
  EXPECT_DOUBLE_EQ(automatic->unit_time_s, 2e-3);  // 1.0 s / 500
  EXPECT_DOUBLE_EQ(automatic->problem->options.unit_time_s, 2e-3);
  spec.time_scale = 10;
  EXPECT_DOUBLE_EQ(PrepareJob(spec, Parse(kTwoStages))->unit_time_s, 2e-2);
  spec.unit_time_s = 0.25;
  EXPECT_DOUBLE_EQ(PrepareJob(spec, Parse(kTwoStages))->unit_time_s, 0.25);
  spec.unit_time_s = -1;
  EXPECT_FALSE(PrepareJob(spec, Parse(kTwoStages)).ok());
}

}  // namespace
}  // namespace perseus::job
