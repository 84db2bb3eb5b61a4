#include "perseus/gpu/frequency_controller.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "src/gpu/testing/fake_nvml_log.h"
#include "tests/support/process.h"

namespace perseus::gpu {
namespace {

// A ClockTarget that records calls and can be made slow or failing.
class RecordingTarget : public ClockTarget {
 public:
  Status LockSmClock(int mhz) override { return Call(mhz); }
  Status ResetSmClock() override { return Call(0); }
  std::string Describe() const override { return "recording target"; }

  std::vector<int> calls() {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }
  // Makes the next call wait until Release().
  void Hold() {
    std::lock_guard<std::mutex> lock(mutex_);
    hold_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      hold_ = false;
    }
    cv_.notify_all();
  }
  void WaitUntilHeld() {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return waiting_; });
  }
  int fail_mhz = -1;

 private:
  Status Call(int mhz) {
    std::unique_lock<std::mutex> lock(mutex_);
    calls_.push_back(mhz);
    waiting_ = hold_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !hold_; });
    waiting_ = false;
    if (mhz == fail_mhz) return Status::InvalidInput("unsupported clock");
    return Status::Ok();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<int> calls_;
  bool hold_ = false;
  bool waiting_ = false;
};

ControllerOptions NoSignals() {
  ControllerOptions options;
  options.reset_on_signals = false;
  return options;
}

TEST(FrequencyControllerTest, AppliesRequestsAndResetsOnDestruction) {
  RecordingTarget target;
  {
    FrequencyController controller(target, NoSignals());
    controller.Set(1200);
    ASSERT_TRUE(controller.Flush().ok());
    controller.Set(1005);
    ASSERT_TRUE(controller.Flush().ok());
    const auto history = controller.History();
    ASSERT_EQ(history.size(), 2u);
    EXPECT_EQ(history[0].requested_mhz, 1200);
    EXPECT_EQ(history[0].applied_mhz, 1200);
    EXPECT_LE(history[0].requested_s, history[0].applied_s);
    EXPECT_EQ(history[1].applied_mhz, 1005);
  }
  EXPECT_EQ(target.calls(), (std::vector<int>{1200, 1005, 0}));
}

TEST(FrequencyControllerTest, SkipsUnchangedClocks) {
  RecordingTarget target;
  FrequencyController controller(target, NoSignals());
  controller.Set(1200);
  ASSERT_TRUE(controller.Flush().ok());
  controller.Set(1200);
  ASSERT_TRUE(controller.Flush().ok());
  EXPECT_EQ(target.calls(), std::vector<int>{1200});
  const auto history = controller.History();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_TRUE(history[1].skipped);
  EXPECT_EQ(controller.driver_calls(), 1u);
}

TEST(FrequencyControllerTest, NewerRequestsReplaceUnappliedOnes) {
  RecordingTarget target;
  FrequencyController controller(target, NoSignals());
  target.Hold();
  controller.Set(1410);
  target.WaitUntilHeld();  // the worker is inside the driver call for 1410
  for (int mhz = 1395; mhz >= 1005; mhz -= 15) controller.Set(mhz);  // none blocks
  target.Release();
  ASSERT_TRUE(controller.Flush().ok());
  // 1410, then only the newest of the requests made meanwhile.
  EXPECT_EQ(target.calls(), (std::vector<int>{1410, 1005}));
}

TEST(FrequencyControllerTest, FailuresAreReportedByFlushAndRecorded) {
  RecordingTarget target;
  target.fail_mhz = 999;
  FrequencyController controller(target, NoSignals());
  controller.Set(999);
  Status s = controller.Flush();
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_EQ(controller.History().back().applied_mhz, -1);
  EXPECT_TRUE(controller.Flush().ok());  // reported once
  controller.Set(1200);
  EXPECT_TRUE(controller.Flush().ok());
}

TEST(FrequencyControllerTest, ResetForExitStopsFurtherRequests) {
  RecordingTarget target;
  FrequencyController controller(target, NoSignals());
  controller.Set(1200);
  ASSERT_TRUE(controller.Flush().ok());
  controller.ResetForExit();
  controller.Set(1005);
  ASSERT_TRUE(controller.Flush().ok());
  EXPECT_EQ(target.calls(), (std::vector<int>{1200, 0}));
}

TEST(FrequencyControllerTest, NothingToResetWhenNothingWasLocked) {
  RecordingTarget target;
  { FrequencyController controller(target, NoSignals()); }
  EXPECT_TRUE(target.calls().empty());
}

// The exit paths, in a child process using the nvml backend on the stand-in
// library found through LD_LIBRARY_PATH.
class ControllerExitTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ControllerExitTest, ClocksAreRestored) {
  const std::string mode = GetParam();
  const std::string log = perseus::testing::TempPath("exit.log");
  perseus::testing::Child child({CONTROLLER_HELPER, "direct", "1", "1005", mode},
                                {"LD_LIBRARY_PATH=" FAKE_NVML_DIR, "FAKE_NVML_LOG=" + log});
  ASSERT_EQ(child.ReadLine(), "locked");
  if (mode == "wait") child.Kill(SIGTERM);
  const int status = child.Wait();
  if (mode == "wait") {
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGTERM);  // the signal still ends the process
  } else if (mode == "throw") {
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGABRT);
  } else {
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  EXPECT_EQ(testing::FakeNvmlCalls(log, "nvmlDeviceSetGpuLockedClocks"),
            std::vector<std::string>{"nvmlDeviceSetGpuLockedClocks 1 1005 1005 -> 0"});
  EXPECT_EQ(testing::FakeNvmlSmState(log, 1), 0) << "GPU 1 left locked after " << mode;
  EXPECT_EQ(testing::FakeNvmlCalls(log, "nvmlDeviceResetGpuLockedClocks").size(), 1u);
  unlink(log.c_str());
}

INSTANTIATE_TEST_SUITE_P(Modes, ControllerExitTest,
                         ::testing::Values("return", "exit", "throw", "wait"));

TEST(ControllerExitTest, SigintToo) {
  const std::string log = perseus::testing::TempPath("sigint.log");
  perseus::testing::Child child({CONTROLLER_HELPER, "direct", "0", "1200", "wait"},
                                {"LD_LIBRARY_PATH=" FAKE_NVML_DIR, "FAKE_NVML_LOG=" + log});
  ASSERT_EQ(child.ReadLine(), "locked");
  child.Kill(SIGINT);
  const int status = child.Wait();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGINT);
  EXPECT_EQ(testing::FakeNvmlSmState(log, 0), 0);
  unlink(log.c_str());
}

}  // namespace
}  // namespace perseus::gpu
