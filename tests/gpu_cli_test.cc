// End-to-end tests of `perseus gpu`, `perseus gpud` and `perseus profile`:
// real processes, the stand-in libnvidia-ml.so.1 found through LD_LIBRARY_PATH.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "nlohmann/json.hpp"
#include "src/gpu/testing/fake_nvml_log.h"
#include "tests/support/process.h"

namespace {

using nlohmann::json;
using perseus::gpu::testing::FakeNvmlCalls;
using perseus::gpu::testing::FakeNvmlSmState;
using perseus::testing::Child;
using perseus::testing::TempPath;

const std::string kPerseus = std::string(PERSEUS_BIN_DIR) + "/perseus";
const std::string kFakeDir = "LD_LIBRARY_PATH=" FAKE_NVML_DIR;

struct Finished {
  int status = -1;
  std::string out;
};

Finished RunToEnd(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv = {kPerseus};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child(argv, env);
  Finished f;
  f.out = child.ReadAll();
  f.status = child.Wait();
  return f;
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

TEST(GpuCliTest, InfoJsonListsTheGpusAndClocksNvmlReports) {
  const Finished f = RunToEnd({"gpu", "info", "--json"}, {kFakeDir});
  ASSERT_EQ(ExitCode(f.status), 0) << f.out;
  const json j = json::parse(f.out);
  EXPECT_EQ(j["backend"], "nvml");
  ASSERT_EQ(j["gpus"].size(), 2u);
  EXPECT_EQ(j["gpus"][1]["name"], "Fake NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(j["gpus"][1]["supported_sm_clocks_mhz"].size(), 81u);
  EXPECT_EQ(j["gpus"][1]["sm_clock_mhz"], 1410);
  EXPECT_GT(j["gpus"][1]["energy_mj"].get<double>(), 0);
}

TEST(GpuCliTest, InfoWithoutTheLibraryIsOneLineNamingIt) {
  const std::string err = TempPath("stderr");
  const std::string command =
      "PERSEUS_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 " + kPerseus + " gpu info 2>" + err;
  const int status = std::system(command.c_str());
  EXPECT_NE(ExitCode(status), 0);
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  const std::string message = text.str();
  EXPECT_NE(message.find("libnvidia-ml"), std::string::npos) << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  unlink(err.c_str());
}

TEST(GpuCliTest, ResetRestoresEveryGpu) {
  const std::string log = TempPath("reset.log");
  const Finished f = RunToEnd({"gpu", "reset"}, {kFakeDir, "FAKE_NVML_LOG=" + log});
  ASSERT_EQ(ExitCode(f.status), 0) << f.out;
  EXPECT_EQ(FakeNvmlCalls(log, "nvmlDeviceResetGpuLockedClocks").size(), 2u);
  EXPECT_EQ(FakeNvmlCalls(log, "nvmlDeviceResetMemoryLockedClocks").size(), 2u);
  unlink(log.c_str());
}

TEST(GpuCliTest, LockRestoresOnSigterm) {
  const std::string log = TempPath("lock.log");
  Child lock({kPerseus, "gpu", "lock", "--gpu", "0", "--mhz", "1200"},
             {kFakeDir, "FAKE_NVML_LOG=" + log});
  ASSERT_EQ(lock.ReadLine().rfind("locked GPU 0", 0), 0u);
  EXPECT_EQ(FakeNvmlSmState(log, 0), 1200);
  lock.Kill(SIGTERM);
  const int status = lock.Wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  EXPECT_EQ(FakeNvmlSmState(log, 0), 0);
  unlink(log.c_str());
}

// The must-show: a process that locked clocks through gpud is killed -9; gpud
// restores the clocks (measured: the time from the kill to the reset call).
TEST(GpuCliTest, GpudRestoresClocksOfAKilledProcess) {
  const std::string log = TempPath("gpud.log");
  const std::string socket = TempPath("gpud.sock");
  Child gpud({kPerseus, "gpud", "--socket", socket, "--gpus", "0,1"},
             {kFakeDir, "FAKE_NVML_LOG=" + log});
  bool up = false;
  for (int i = 0; i < 1000 && !up; ++i) {
    up = RunToEnd({"gpu", "info", "--gpud", socket}, {}).status == 0;
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(up) << "gpud did not start";
  // The training process needs no NVML library of its own: gpud holds it.
  Child training({kPerseus, "gpu", "lock", "--gpud", socket, "--gpu", "1", "--mhz", "1005"},
                 {"LD_LIBRARY_PATH=/nonexistent"});
  ASSERT_EQ(training.ReadLine().rfind("locked GPU 1 via gpud", 0), 0u);
  EXPECT_EQ(FakeNvmlSmState(log, 1), 1005);
  const Finished held = RunToEnd({"gpu", "info", "--gpud", socket, "--json"}, {});
  EXPECT_EQ(json::parse(held.out)["gpus"][1]["owner_pid"], training.pid());

  const auto killed_at = std::chrono::steady_clock::now();
  training.Kill(SIGKILL);
  double seconds = -1;
  while (std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(10)) {
    if (FakeNvmlSmState(log, 1) == 0) {
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  training.Wait();
  ASSERT_GE(seconds, 0) << "GPU 1 still locked 10 s after its process was killed";
  std::printf("[ measured ] kill -9 to clock reset: %.1f ms\n", seconds * 1e3);

  gpud.Kill(SIGTERM);
  EXPECT_EQ(ExitCode(gpud.Wait()), 0);
  struct stat st {};
  EXPECT_NE(stat(socket.c_str(), &st), 0) << "gpud left its socket behind";
  unlink(log.c_str());
}

// The must-show: the profiler on the sim backend reproduces the profile that
// drives it (every time and energy within 2%) and stops early.
// GPUs that wait at different powers, not in ascending order: the summary and
// the file beside the CSV list each stage's own, in stage order, and the plan
// takes their median.
TEST(GpuCliTest, ProfileKeepsEachStagesBlockingPowerInStageOrder) {
  const std::string csv = TempPath("blocking.csv");
  const std::vector<double> watts = {90, 70, 85, 75, 80, 72, 88, 78};
  const Finished f =
      RunToEnd({"profile", "--backend", "sim", "--sim-blocking-power", "90,70,85,75,80,72,88,78",
                "--iterations", "3", "--out", csv, "--json"},
               {});
  ASSERT_EQ(ExitCode(f.status), 0) << f.out;
  const json j = json::parse(f.out);
  ASSERT_EQ(j["stages"].size(), 8u);
  std::vector<double> by_stage;
  for (size_t s = 0; s < 8; ++s) {
    EXPECT_EQ(j["stages"][s]["stage"], s);
    by_stage.push_back(j["stages"][s]["blocking_power_w"].get<double>());
    EXPECT_NEAR(by_stage.back(), watts[s], 0.5) << j["stages"][s].dump();
  }
  std::ifstream meta_file(csv + ".meta.json");
  ASSERT_TRUE(meta_file.good());
  const json meta = json::parse(meta_file);
  EXPECT_EQ(meta["blocking_power_w_by_stage"].get<std::vector<double>>(), by_stage);
  std::vector<double> sorted = by_stage;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_DOUBLE_EQ(meta["blocking_power_w"].get<double>(), (sorted[3] + sorted[4]) / 2);
  EXPECT_NEAR(meta["blocking_power_w"].get<double>(), 79, 0.5);
  // A list of the wrong length is refused, naming it.
  const perseus::testing::CommandOutput wrong = perseus::testing::RunCaptured(
      std::string(kPerseus) + " profile --backend sim --sim-blocking-power 90,70 --json");
  EXPECT_EQ(wrong.exit_code, 2) << wrong.err;
  EXPECT_NE(wrong.err.find("2 values for the 8 simulated GPUs"), std::string::npos) << wrong.err;
  unlink(csv.c_str());
  unlink((csv + ".meta.json").c_str());
}

TEST(GpuCliTest, ProfileReproducesTheSimProfileAndStopsEarly) {
  const std::string csv = TempPath("profile.csv");
  const Finished f =
      RunToEnd({"profile", "--backend", "sim", "--sim-profile",
                PERSEUS_DATA_DIR "/profiles/gpt3-175b+a100_sxm_bf16.csv", "--noise", "1",
                "--outlier-rate", "2", "--iterations", "10", "--out", csv, "--json"},
               {});
  ASSERT_EQ(ExitCode(f.status), 0) << f.out;
  const json j = json::parse(f.out);
  ASSERT_EQ(j["stages"].size(), 8u);
  for (const json& s : j["stages"]) {
    EXPECT_LT(s["max_time_deviation"].get<double>(), 0.02) << s.dump();
    EXPECT_LT(s["max_energy_deviation"].get<double>(), 0.02) << s.dump();
    EXPECT_GT(s["stopped_early_at_mhz"].get<int>(), 855) << s.dump();
    EXPECT_LT(s["frequencies_swept"].get<int>(), 38);
    EXPECT_NEAR(s["blocking_power_w"].get<double>(), 83.64, 0.5);
  }
  // Beside the CSV: every stage's blocking power in stage order (as the
  // summary lists them), and their median as the one the plan uses. (Here
  // the simulated GPUs all block at one power; the next test gives each its
  // own.)
  const std::string meta_path = csv + ".meta.json";
  std::ifstream meta_file(meta_path);
  ASSERT_TRUE(meta_file.good());
  const json meta = json::parse(meta_file);
  std::vector<double> by_stage;
  for (const json& s : j["stages"]) by_stage.push_back(s["blocking_power_w"].get<double>());
  EXPECT_EQ(meta["blocking_power_w_by_stage"].get<std::vector<double>>(), by_stage);
  std::vector<double> sorted = by_stage;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_DOUBLE_EQ(meta["blocking_power_w"].get<double>(), (sorted[3] + sorted[4]) / 2);
  // The CSV is the planner's input: plan it.
  const Finished plan =
      RunToEnd({"plan", "--profile", csv, "--stages", "8", "--microbatches", "12", "--json"}, {});
  EXPECT_EQ(ExitCode(plan.status), 0) << plan.out;
  unlink(csv.c_str());
  unlink(meta_path.c_str());
}

TEST(GpuCliTest, ProfileRefusesRealGpusWithAnExplanation) {
  const Finished f = RunToEnd({"profile", "--backend", "nvml"}, {});
  EXPECT_EQ(ExitCode(f.status), 2);
}

}  // namespace
