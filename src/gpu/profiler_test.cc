#include "perseus/gpu/profiler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "perseus/gpu/sim_gpu.h"

namespace perseus::gpu {
namespace {

using planner::Instruction;

const char* kProfile = PERSEUS_DATA_DIR "/profiles/gpt3-175b+a100_sxm_bf16.csv";

TEST(RobustMeanTest, DropsOutliersAndKeepsTheRest) {
  int dropped = 0;
  const Sample mean =
      RobustMean({{1.0, 10}, {1.02, 10.2}, {0.98, 9.8}, {3.0, 30}, {1.0, 10}}, 3.5, &dropped);
  EXPECT_EQ(dropped, 1);
  EXPECT_DOUBLE_EQ(mean.time_s, 1.0);
  EXPECT_DOUBLE_EQ(mean.energy_j, 10.0);
  // Identical samples: nothing dropped.
  EXPECT_DOUBLE_EQ(RobustMean({{2, 4}, {2, 4}, {2, 4}}, 3.5, &dropped).time_s, 2);
  EXPECT_EQ(dropped, 0);
}

// Feeds a sweep energies from a table; returns the frequencies measured.
std::vector<int> Sweep(const std::vector<double>& forward_energy,
                       const std::vector<double>& backward_energy, int patience, int* stopped) {
  std::vector<int> frequencies;
  for (size_t i = 0; i < forward_energy.size(); ++i) frequencies.push_back(1400 - 100 * int(i));
  ProfilerOptions options;
  options.warmup_iterations = 1;
  options.measure_iterations = 2;
  options.patience = patience;
  FrequencySweep sweep(frequencies, {Instruction::kForward, Instruction::kBackward}, options);
  std::vector<int> measured;
  while (!sweep.done()) {
    const size_t k = static_cast<size_t>((1400 - sweep.frequency()) / 100);
    const bool warmup = !sweep.measuring();
    // Warm-up samples are wild; they must not count.
    EXPECT_TRUE(sweep.Record(Instruction::kForward, {1, warmup ? 1e6 : forward_energy[k]}).ok());
    EXPECT_TRUE(sweep.Record(Instruction::kBackward, {2, warmup ? 1e6 : backward_energy[k]}).ok());
    EXPECT_TRUE(sweep.EndIteration().ok());
  }
  for (const SweepRow& row : sweep.rows()) {
    if (row.instruction == Instruction::kForward) {
      measured.push_back(row.frequency_mhz);
      EXPECT_DOUBLE_EQ(row.energy_j,
                       forward_energy[static_cast<size_t>((1400 - row.frequency_mhz) / 100)]);
    }
  }
  *stopped = sweep.stopped_early_at();
  return measured;
}

TEST(FrequencySweepTest, StopsOnceEveryInstructionStayedAboveItsMinimumForPatienceFrequencies) {
  // Forward bottoms out at index 2, backward at index 3.
  const std::vector<double> fwd = {10, 9, 8, 8.1, 8.2, 8.05, 8.3, 8.4, 8.5, 9, 9.5};
  const std::vector<double> bwd = {20, 19, 18, 17, 17.5, 17.2, 17.6, 17.7, 17.8, 18, 19};
  int stopped = 0;
  // Forward is above its minimum from index 3 on (the dip to 8.05 still counts as
  // above), backward from index 4; backward's 3rd..., patience 3 => stop at index 6.
  auto measured = Sweep(fwd, bwd, 3, &stopped);
  EXPECT_EQ(measured, (std::vector<int>{1400, 1300, 1200, 1100, 1000, 900, 800}));
  EXPECT_EQ(stopped, 800);
  // patience 0: no early stop.
  measured = Sweep(fwd, bwd, 0, &stopped);
  EXPECT_EQ(measured.size(), fwd.size());
  EXPECT_EQ(stopped, 0);
}

TEST(FrequencySweepTest, RejectsBadSamples) {
  FrequencySweep sweep({1400}, {Instruction::kForward}, {});
  EXPECT_FALSE(sweep.Record(Instruction::kBackward, {1, 1}).ok());
  EXPECT_FALSE(sweep.Record(Instruction::kForward, {0, 1}).ok());
  EXPECT_FALSE(sweep.Record(Instruction::kForward, {NAN, 1}).ok());
}

// Regression: an empty sweep (perseus.FrequencySweep([])) indexed an empty
// vector. Make refuses bad arguments; direct construction yields a done, empty
// sweep whose every accessor is defined and whose Record/EndIteration say why.
TEST(FrequencySweepTest, RefusesSweepsWithNothingOrBadThingsToSweep) {
  const std::vector<Instruction> fb = {Instruction::kForward, Instruction::kBackward};
  ProfilerOptions negative_warmup;
  negative_warmup.warmup_iterations = -1;
  ProfilerOptions no_iterations;
  no_iterations.measure_iterations = 0;
  ProfilerOptions negative_iterations;
  negative_iterations.measure_iterations = -3;
  ProfilerOptions negative_patience;
  negative_patience.patience = -1;
  ProfilerOptions no_threshold;
  no_threshold.outlier_threshold = NAN;
  struct Case {
    std::vector<int> frequencies;
    std::vector<Instruction> instructions;
    ProfilerOptions options;
    std::string error;
  };
  const std::vector<Case> cases = {
      {{}, fb, {}, "needs frequencies"},
      {{1410}, {}, {}, "needs instructions"},
      {{}, {}, {}, "needs frequencies"},
      {{1410, 0}, fb, {}, "must be > 0, got 0 MHz"},
      {{1410, -5}, fb, {}, "must be > 0, got -5 MHz"},
      {{1410, 1005, 1410}, fb, {}, "1410 MHz more than once"},
      {{1410}, {Instruction::kForward, Instruction::kForward}, {}, "forward more than once"},
      {{1410}, fb, negative_warmup, "warm-up iterations and patience must be >= 0"},
      {{1410}, fb, no_iterations, "measure iterations must be at least 1, got 0"},
      {{1410}, fb, negative_iterations, "measure iterations must be at least 1, got -3"},
      {{1410}, fb, negative_patience, "warm-up iterations and patience must be >= 0"},
      {{1410}, fb, no_threshold, "outlier threshold must be > 0"},
  };
  for (const Case& c : cases) {
    auto made = FrequencySweep::Make(c.frequencies, c.instructions, c.options);
    ASSERT_FALSE(made.ok()) << c.error;
    EXPECT_EQ(made.status().code(), StatusCode::kInvalidInput);
    EXPECT_NE(made.status().message().find(c.error), std::string::npos) << made.status().message();

    FrequencySweep sweep(c.frequencies, c.instructions, c.options);
    EXPECT_EQ(sweep.status().message(), made.status().message());
    EXPECT_TRUE(sweep.done());
    EXPECT_EQ(sweep.frequency(), 0);
    EXPECT_DOUBLE_EQ(sweep.progress(), 1.0);
    EXPECT_TRUE(sweep.rows().empty());
    EXPECT_EQ(sweep.frequencies_done(), 0);
    EXPECT_EQ(sweep.stopped_early_at(), 0);
    (void)sweep.measuring();
    Status recorded = sweep.Record(Instruction::kForward, {1, 1});
    EXPECT_EQ(recorded.code(), StatusCode::kInvalidInput);
    EXPECT_EQ(recorded.message(), made.status().message());
    EXPECT_EQ(sweep.EndIteration().code(), StatusCode::kInvalidInput);
  }
  // Good arguments: Make succeeds, and a finished sweep reports frequency 0.
  ProfilerOptions options;
  options.warmup_iterations = 0;
  options.measure_iterations = 1;
  auto made = FrequencySweep::Make({1410}, {Instruction::kForward}, options);
  ASSERT_TRUE(made.ok()) << made.status().message();
  EXPECT_TRUE(made->status().ok());
  EXPECT_EQ(made->frequency(), 1410);
  ASSERT_TRUE(made->Record(Instruction::kForward, {1, 2}).ok());
  ASSERT_TRUE(made->EndIteration().ok());
  EXPECT_TRUE(made->done());
  EXPECT_EQ(made->frequency(), 0);
  EXPECT_EQ(made->rows().size(), 1u);
  EXPECT_EQ(made->EndIteration().code(), StatusCode::kInvalidInput);
}

TEST(ProfileStageTest, RefusesRepeatedFrequencies) {
  auto backend = SimBackend::FromProfileCsv(kProfile, {});
  ASSERT_TRUE(backend.ok());
  SimGpu& gpu = (*backend)->sim_device(0);
  SimRunner runner(gpu);
  ProfilerOptions options;
  options.frequencies = {1410, 1410};
  auto result = ProfileStage(gpu, gpu, runner, 0, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidInput);
  EXPECT_NE(result.status().message().find("more than once"), std::string::npos);
  EXPECT_FALSE(gpu.sm_clock_locked());
}

// The must-show: the profiler on the sim backend recovers the profile that
// drives it, within the noise injected, and stops early.
TEST(ProfileStageTest, RecoversTheDrivingProfileWithinTwoPercent) {
  SimGpuOptions sim;
  sim.noise = 0.01;
  sim.outlier_rate = 0.05;
  sim.seed = 11;
  auto backend = SimBackend::FromProfileCsv(kProfile, sim);
  ASSERT_TRUE(backend.ok());
  const planner::Profile& truth = (*backend)->profile();
  ProfilerOptions options;
  options.warmup_iterations = 1;
  options.measure_iterations = 7;
  for (int stage : {0, 5}) {
    SimGpu& gpu = (*backend)->sim_device(stage);
    SimRunner runner(gpu);
    auto result = ProfileStage(gpu, gpu, runner, stage, options);
    ASSERT_TRUE(result.ok()) << result.status().message();
    EXPECT_GT(result->stopped_early_at, 855) << "the sweep should stop before the lowest clock";
    EXPECT_LT(result->frequencies_swept, 38);
    EXPECT_EQ(result->rows.size(), 2u * static_cast<size_t>(result->frequencies_swept));
    EXPECT_FALSE(gpu.sm_clock_locked());
    int dropped = 0;
    for (const SweepRow& row : result->rows) {
      dropped += row.samples_dropped;
      const auto* rows = truth.Find(stage, row.instruction);
      ASSERT_NE(rows, nullptr);
      const planner::Measurement* m = nullptr;
      for (const auto& r : *rows) {
        if (r.frequency_mhz == row.frequency_mhz) m = &r;
      }
      ASSERT_NE(m, nullptr);
      EXPECT_NEAR(row.time_s / m->time_s, 1.0, 0.02) << row.frequency_mhz;
      EXPECT_NEAR(row.energy_j / m->energy_j, 1.0, 0.02) << row.frequency_mhz;
    }
    EXPECT_GT(dropped, 0) << "5% outliers were injected";
    EXPECT_NEAR(result->blocking_power_w, 83.64, 0.84);
  }
}

TEST(ProfileStageTest, CsvIsThePlannersFormat) {
  auto backend = SimBackend::FromProfileCsv(kProfile, {});
  ASSERT_TRUE(backend.ok());
  std::vector<StageProfile> stages;
  for (int stage = 0; stage < 2; ++stage) {
    SimGpu& gpu = (*backend)->sim_device(stage);
    SimRunner runner(gpu);
    ProfilerOptions options;
    options.frequencies = {1410, 1005};
    auto result = ProfileStage(gpu, gpu, runner, stage, options);
    ASSERT_TRUE(result.ok());
    stages.push_back(*result);
  }
  const std::string csv = ProfileCsv(stages);
  auto parsed = planner::ParseProfileCsv(csv, "profiled.csv");
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed->num_stages, 2);
  EXPECT_EQ(parsed->Find(1, Instruction::kBackward)->size(), 2u);
  // Noise-free: the exact profiled figures (energy to the mJ of the counter).
  const auto& truth = *(*backend)->profile().Find(1, Instruction::kBackward);
  EXPECT_DOUBLE_EQ(parsed->Find(1, Instruction::kBackward)->front().time_s, truth.front().time_s);
  EXPECT_NEAR(parsed->Find(1, Instruction::kBackward)->front().energy_j, truth.front().energy_j,
              1e-3);
}

TEST(ProfileStageTest, RejectsClocksTheGpuLacks) {
  auto backend = SimBackend::FromProfileCsv(kProfile, {});
  ASSERT_TRUE(backend.ok());
  SimGpu& gpu = (*backend)->sim_device(0);
  SimRunner runner(gpu);
  ProfilerOptions options;
  options.frequencies = {1000};
  auto result = ProfileStage(gpu, gpu, runner, 0, options);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("1000 MHz"), std::string::npos);
}

}  // namespace
}  // namespace perseus::gpu
