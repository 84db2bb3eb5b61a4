#include "perseus/gpu/sim_gpu.h"

#include <gtest/gtest.h>

namespace perseus::gpu {
namespace {

using planner::Instruction;

const char* kProfile = PERSEUS_DATA_DIR "/profiles/gpt3-175b+a100_sxm_bf16.csv";

TEST(SimGpuTest, OneGpuPerStageWithTheProfilesClocks) {
  auto backend = SimBackend::FromProfileCsv(kProfile, {});
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  ASSERT_EQ((*backend)->device_count(), 8);
  Device& gpu = (*backend)->device(3);
  auto clocks = gpu.SupportedSmClocks();
  ASSERT_TRUE(clocks.ok());
  EXPECT_EQ(clocks->size(), 38u);
  EXPECT_EQ(clocks->front(), 1410);
  EXPECT_EQ(clocks->back(), 855);
  EXPECT_EQ(*gpu.CurrentSmClock(), 1410);
}

TEST(SimGpuTest, RunsTakeTheProfiledTimeAndEnergyAtTheLockedClock) {
  auto backend = SimBackend::FromProfileCsv(kProfile, {});
  ASSERT_TRUE(backend.ok());
  SimGpu& gpu = (*backend)->sim_device(0);
  const auto* rows = (*backend)->profile().Find(0, Instruction::kBackward);
  ASSERT_NE(rows, nullptr);
  const planner::Measurement* at_1005 = nullptr;
  for (const auto& m : *rows) {
    if (m.frequency_mhz == 1005) at_1005 = &m;
  }
  ASSERT_NE(at_1005, nullptr);
  ASSERT_TRUE(gpu.LockSmClock(1005).ok());
  const uint64_t e0 = *gpu.EnergyMj();
  const double t0 = gpu.NowSeconds();
  auto t = gpu.Run(Instruction::kBackward);
  ASSERT_TRUE(t.ok());
  EXPECT_DOUBLE_EQ(*t, at_1005->time_s);
  EXPECT_DOUBLE_EQ(gpu.NowSeconds() - t0, at_1005->time_s);
  EXPECT_NEAR(static_cast<double>(*gpu.EnergyMj() - e0) / 1000.0, at_1005->energy_j, 1e-3);
  gpu.Block(2.0);
  EXPECT_NEAR(*gpu.PowerW(), 83.64, 1e-12);
}

TEST(SimGpuTest, EachGpuMayWaitAtItsOwnBlockingPower) {
  SimGpuOptions options;
  options.blocking_power_by_gpu_w = {90, 70, 85, 75, 80, 72, 88, 78};
  auto backend = SimBackend::FromProfileCsv(kProfile, options);
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  for (int s = 0; s < 8; ++s) {
    SimGpu& gpu = (*backend)->sim_device(s);
    const uint64_t e0 = *gpu.EnergyMj();
    gpu.Block(2.0);
    EXPECT_NEAR(*gpu.PowerW(), options.blocking_power_by_gpu_w[static_cast<size_t>(s)], 1e-12);
    EXPECT_NEAR(static_cast<double>(*gpu.EnergyMj() - e0) / 1000.0,
                2 * options.blocking_power_by_gpu_w[static_cast<size_t>(s)], 1e-2);
  }
  // One value for every GPU.
  options.blocking_power_by_gpu_w = {77};
  auto one = SimBackend::FromProfileCsv(kProfile, options);
  ASSERT_TRUE(one.ok()) << one.status().message();
  for (int s = 0; s < 8; ++s) {
    (*one)->sim_device(s).Block(1.0);
    EXPECT_NEAR(*(*one)->sim_device(s).PowerW(), 77, 1e-12);
  }
  // One value per GPU, one, or none: anything else is refused, naming both counts.
  options.blocking_power_by_gpu_w = {90, 70, 85};
  auto wrong = SimBackend::FromProfileCsv(kProfile, options);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidInput);
  EXPECT_NE(wrong.status().message().find("3 values for the 8 simulated GPUs"), std::string::npos)
      << wrong.status().message();
}

TEST(SimGpuTest, RejectsClocksTheProfileLacks) {
  auto backend = SimBackend::FromProfileCsv(kProfile, {});
  ASSERT_TRUE(backend.ok());
  Status s = (*backend)->device(0).LockSmClock(1000);
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("855..1410"), std::string::npos) << s.message();
}

TEST(SimGpuTest, NoiseIsSeededAndCentred) {
  SimGpuOptions options;
  options.noise = 0.05;
  options.seed = 7;
  auto a = SimBackend::FromProfileCsv(kProfile, options);
  auto b = SimBackend::FromProfileCsv(kProfile, options);
  ASSERT_TRUE(a.ok() && b.ok());
  double sum = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    auto ta = (*a)->sim_device(1).Run(Instruction::kForward);
    auto tb = (*b)->sim_device(1).Run(Instruction::kForward);
    ASSERT_EQ(*ta, *tb);
    sum += *ta;
  }
  const double expected = (*a)->profile().Find(1, Instruction::kForward)->front().time_s;
  EXPECT_NEAR(sum / n / expected, 1.0, 0.01);
}

}  // namespace
}  // namespace perseus::gpu
