// The nvml backend against the stand-in libnvidia-ml.so.1 (testing/fake_nvml.cc).
#include "perseus/gpu/nvml_backend.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <thread>

#include "src/gpu/testing/fake_nvml_log.h"
#include "tests/support/process.h"

namespace perseus::gpu {
namespace {

using testing::FakeNvmlCalls;

class NvmlBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = perseus::testing::TempPath("nvml.log");
    setenv("FAKE_NVML_LOG", log_.c_str(), 1);
    unsetenv("FAKE_NVML_FAIL");
    unsetenv("FAKE_NVML_GPUS");
    unsetenv("FAKE_NVML_NO_ENERGY");
  }
  void TearDown() override { unlink(log_.c_str()); }

  static NvmlOptions Fake() {
    NvmlOptions options;
    options.library = FAKE_NVML_DIR "/libnvidia-ml.so.1";
    options.power_sample_interval_s = 0.002;
    return options;
  }

  std::string log_;
};

TEST_F(NvmlBackendTest, ListsGpusAndClocksAtTheHighestMemoryClock) {
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_TRUE(backend.ok()) << backend.status().message();
  Backend& b = **backend;
  EXPECT_EQ(b.name(), "nvml");
  EXPECT_EQ(b.version(), "NVIDIA driver 999.99-fake");
  ASSERT_EQ(b.device_count(), 2);
  Device& gpu = b.device(1);
  EXPECT_EQ(gpu.name(), "Fake NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(gpu.uuid(), "GPU-fake0000-0000-0000-0000-000000000001");
  auto clocks = gpu.SupportedSmClocks();
  ASSERT_TRUE(clocks.ok());
  ASSERT_EQ(clocks->size(), 81u);
  EXPECT_EQ(clocks->front(), 1410);
  EXPECT_EQ(clocks->back(), 210);
  // Asked at 1593 MHz, the higher of the two memory clocks (listed second).
  EXPECT_EQ(FakeNvmlCalls(log_, "nvmlDeviceGetSupportedGraphicsClocks"),
            std::vector<std::string>{"nvmlDeviceGetSupportedGraphicsClocks 1 1593 -> 0"});
  EXPECT_EQ(*gpu.CurrentSmClock(), 1410);
  EXPECT_GT(*gpu.PowerW(), 0);
}

TEST_F(NvmlBackendTest, LocksAndResetsClocksWithTheRightCalls) {
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_TRUE(backend.ok());
  Device& gpu = (*backend)->device(0);
  ASSERT_TRUE(gpu.LockSmClock(1005).ok());
  EXPECT_EQ(*gpu.CurrentSmClock(), 1005);
  ASSERT_TRUE(gpu.LockMemoryClockMax().ok());
  ASSERT_TRUE(gpu.ResetSmClock().ok());
  ASSERT_TRUE(gpu.ResetMemoryClock().ok());
  EXPECT_EQ(*gpu.CurrentSmClock(), 1410);
  EXPECT_EQ(FakeNvmlCalls(log_, "nvmlDeviceSetGpuLockedClocks"),
            std::vector<std::string>{"nvmlDeviceSetGpuLockedClocks 0 1005 1005 -> 0"});
  EXPECT_EQ(FakeNvmlCalls(log_, "nvmlDeviceSetMemoryLockedClocks"),
            std::vector<std::string>{"nvmlDeviceSetMemoryLockedClocks 0 1593 1593 -> 0"});
  EXPECT_EQ(FakeNvmlCalls(log_, "nvmlDeviceResetGpuLockedClocks").size(), 1u);
  EXPECT_EQ(FakeNvmlCalls(log_, "nvmlDeviceResetMemoryLockedClocks").size(), 1u);
  backend = Status::Internal("closed");
  EXPECT_EQ(FakeNvmlCalls(log_).back(), "nvmlShutdown -> 0");
}

TEST_F(NvmlBackendTest, MissingLibraryIsOneLineNamingLibnvidiaMl) {
  NvmlOptions options;
  options.library = "/nonexistent/libnvidia-ml.so.1";
  auto backend = OpenNvmlBackend(options);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable);
  const std::string& m = backend.status().message();
  EXPECT_NE(m.find("libnvidia-ml.so.1"), std::string::npos) << m;
  EXPECT_NE(m.find("LD_LIBRARY_PATH"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST_F(NvmlBackendTest, DriverNotLoadedSaysSo) {
  setenv("FAKE_NVML_FAIL", "nvmlInit_v2=9", 1);
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(backend.status().message(),
            "nvmlInit_v2: Driver Not Loaded (NVML error 9): the NVIDIA kernel driver is not "
            "loaded (nvidia-smi must work first)");
}

TEST_F(NvmlBackendTest, NoGpuIsNotFound) {
  setenv("FAKE_NVML_GPUS", "0", 1);
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kNotFound);
  EXPECT_NE(backend.status().message().find("no GPU"), std::string::npos);
}

TEST_F(NvmlBackendTest, NoPermissionToSetClocksSaysWhatToDo) {
  setenv("FAKE_NVML_FAIL", "nvmlDeviceSetGpuLockedClocks=4", 1);
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_TRUE(backend.ok());
  Status s = (*backend)->device(1).LockSmClock(1200);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message().rfind("nvmlDeviceSetGpuLockedClocks (GPU 1): Insufficient Permissions "
                              "(NVML error 4): changing GPU clocks needs root",
                              0),
            0u)
      << s.message();
  EXPECT_NE(s.message().find("perseus gpud"), std::string::npos);
}

TEST_F(NvmlBackendTest, OtherErrorsNameTheFunctionAndNvmlErrorString) {
  setenv("FAKE_NVML_FAIL", "nvmlDeviceGetSupportedGraphicsClocks=15", 1);
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_TRUE(backend.ok());
  auto clocks = (*backend)->device(0).SupportedSmClocks();
  ASSERT_FALSE(clocks.ok());
  EXPECT_EQ(clocks.status().message(),
            "nvmlDeviceGetSupportedGraphicsClocks (GPU 0): GPU is lost (NVML error 15): the GPU "
            "fell off the bus or stopped responding");
}

TEST_F(NvmlBackendTest, EnergyCounterIsMonotonic) {
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_TRUE(backend.ok());
  Device& gpu = (*backend)->device(0);
  const uint64_t a = *gpu.EnergyMj();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const uint64_t b = *gpu.EnergyMj();
  EXPECT_GT(b, a);
}

TEST_F(NvmlBackendTest, EnergyFallsBackToIntegratingPower) {
  setenv("FAKE_NVML_NO_ENERGY", "1", 1);
  auto backend = OpenNvmlBackend(Fake());
  ASSERT_TRUE(backend.ok());
  Device& gpu = (*backend)->device(0);
  auto first = gpu.EnergyMj();
  ASSERT_TRUE(first.ok()) << first.status().message();
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto second = gpu.EnergyMj();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(second.ok());
  // The fake draws 300 W at 1410 MHz: about 300 mJ per ms, less the part of
  // the last sampling period not yet integrated.
  const double expected_mj = 300.0 * elapsed * 1000.0;
  EXPECT_GT(static_cast<double>(*second - *first), 0.5 * expected_mj);
  EXPECT_LE(static_cast<double>(*second - *first), 1.01 * expected_mj);
}

}  // namespace
}  // namespace perseus::gpu
