// The command line's conventions (cli/options.h), end to end: every bad
// option value is exit 2 with one line naming the option and its range; lists
// take commas; relative amounts are percent in every command; the blocking
// power measured by `perseus profile` reaches `perseus plan`; profiles that
// look wrong are planned with a warning naming the rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/support/process.h"
#include "tests/support/temp_dir_test.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Output = perseus::testing::CommandOutput;

class CliOptionsTest : public perseus::testing::TempDirTest {
 protected:
  Output Run(const std::string& args) {
    return perseus::testing::RunCaptured("cd " + dir_.string() +
                                         " && " PERSEUS_BIN_DIR "/perseus " + args);
  }
  fs::path Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }
  static std::string Gpt3() {
    return std::string(PERSEUS_DATA_DIR) + "/profiles/gpt3-175b+a100_sxm_bf16.csv";
  }
  // The paper's case, with a blocking power (no warning about it).
  static std::string Job() {
    return " --profile " + Gpt3() + " --stages 8 --microbatches 12 --blocking-power 83.64";
  }
};

// Exit 2 and exactly one line, "perseus: error: ...", containing `says`.
void ExpectOneLineError(const Output& out, const std::string& says) {
  EXPECT_EQ(out.exit_code, 2) << out.err;
  EXPECT_EQ(std::count(out.err.begin(), out.err.end(), '\n'), 1) << out.err;
  EXPECT_EQ(out.err.rfind("perseus: error: ", 0), 0u) << out.err;
  EXPECT_NE(out.err.find(says), std::string::npos) << out.err;
}

TEST_F(CliOptionsTest, BadValuesAreOneLineErrorsNamingTheOption) {
  ExpectOneLineError(Run("simulate" + Job() + " --time 0"), "--time: must be in (0, 1e+07], not 0");
  ExpectOneLineError(Run("simulate" + Job() + " --time nan"),
                     "--time: must be a finite number, not nan");
  ExpectOneLineError(Run("simulate" + Job() + " --repeat 1000000000"),
                     "--repeat: Value 1000000000 not in range 1 to 10000");
  ExpectOneLineError(Run("simulate" + Job() + " --noise 60"), "--noise: must be in [0, 50]");
  ExpectOneLineError(Run("plan --profile " + Gpt3() +
                         " --stages 8 --microbatches 12 "
                         "--blocking-power 1e308"),
                     "--blocking-power: must be in [0, 1e+04], not 1e308");
  ExpectOneLineError(Run("plan" + Job() + " --energy-scale inf"),
                     "--energy-scale: must be a finite number");
  ExpectOneLineError(Run("emulate" + Job() + " --pipelines 2000000000"),
                     "--pipelines: Value 2000000000 not in range 1 to 1000000");
  ExpectOneLineError(Run("plan" + Job() + " --schedule interleaved-1f1b --virtual-stages 1000000"),
                     "--virtual-stages: Value 1000000 not in range 1 to 128");
  ExpectOneLineError(Run("emulate" + Job() + " --methods perseus,zeus"),
                     "--methods: unknown method 'zeus' (all-max, perseus, envpipe, zeus-global, "
                     "zeus-per-stage)");
  ExpectOneLineError(Run("profile --backend sim --stages 0,3"),
                     "give the stages to profile as a list with --only-stages");
  ExpectOneLineError(Run("gpu lock --backend sim --gpu 0 --mhz 1201 --seconds 0"),
                     "--mhz 1201 is not a supported SM clock of GPU 0 (it has 38, 855..1410 MHz; "
                     "the nearest is 1200 MHz");
}

// Lists: comma-separated or repeated, the same result.
TEST_F(CliOptionsTest, ListsTakeCommasOrSpaces) {
  Output commas =
      Run("emulate" + Job() + " --methods all-max,perseus --straggler-slowdown 1.1,1.2 --json");
  Output spaces =
      Run("emulate" + Job() + " --methods all-max perseus --straggler-slowdown 1.1 1.2 --json");
  ASSERT_EQ(commas.exit_code, 0) << commas.err;
  ASSERT_EQ(spaces.exit_code, 0) << spaces.err;
  const json a = json::parse(commas.out), b = json::parse(spaces.out);
  EXPECT_EQ(a["rows"], b["rows"]);
  ASSERT_EQ(a["rows"].size(), 2u);
  EXPECT_TRUE(a["rows"][1].contains("perseus"));
  EXPECT_FALSE(a["rows"][1].contains("envpipe"));
  EXPECT_DOUBLE_EQ(a["rows"][1]["slowdown"].get<double>(), 1.2);
}

// Relative amounts are percent in every command (simulate and profile alike),
// written 5 or 5%; a small value gets a note saying what it means.
TEST_F(CliOptionsTest, RelativeAmountsArePercentEverywhere) {
  Output plain = Run("simulate" + Job() + " --noise 5 --repeat 2 --json");
  Output sign = Run("simulate" + Job() + " --noise 5% --repeat 2 --json");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(json::parse(plain.out), json::parse(sign.out));
  EXPECT_EQ(json::parse(plain.out)["noise_pct"], 5.0);
  // The profiler's noise: 5 is 5 % (deviations of a few percent), 0.02 is
  // 0.02 % (almost none, and said so).
  Output noisy = Run("profile --backend sim --only-stages 0 --iterations 3 --noise 5 --json");
  ASSERT_EQ(noisy.exit_code, 0) << noisy.err;
  EXPECT_GT(json::parse(noisy.out)["stages"][0]["max_time_deviation"].get<double>(), 0.01);
  Output quiet = Run("profile --backend sim --only-stages 0 --iterations 3 --noise 0.02 --json");
  ASSERT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_LT(json::parse(quiet.out)["stages"][0]["max_time_deviation"].get<double>(), 0.01);
  EXPECT_NE(quiet.err.find("--noise 0.02 is 0.02 %, not 2 % (values are percent)"),
            std::string::npos)
      << quiet.err;
}

// `perseus profile --out p.csv` records the blocking power it measured beside
// the profile (p.csv.meta.json); `perseus plan --profile p.csv` uses it and
// says where it came from. Without one, plan warns that it uses 0 W.
TEST_F(CliOptionsTest, TheMeasuredBlockingPowerReachesThePlan) {
  Output profiled = Run("profile --backend sim --iterations 3 --out p.csv --json");
  ASSERT_EQ(profiled.exit_code, 0) << profiled.err;
  const json summary = json::parse(profiled.out);
  EXPECT_EQ(summary["meta"], "p.csv.meta.json");
  EXPECT_NEAR(summary["blocking_power_w"].get<double>(), 83.64, 0.5);
  ASSERT_TRUE(fs::exists(dir_ / "p.csv.meta.json"));
  Output planned = Run("plan --profile p.csv --stages 8 --microbatches 12 --json");
  ASSERT_EQ(planned.exit_code, 0) << planned.err;
  const json plan = json::parse(planned.out);
  EXPECT_DOUBLE_EQ(plan["blocking_power_w"].get<double>(),
                   summary["blocking_power_w"].get<double>());
  EXPECT_EQ(plan["blocking_power_source"], "measured by perseus profile (p.csv.meta.json)");
  EXPECT_TRUE(plan["warnings"].empty()) << plan["warnings"].dump();
  // Given on the command line, it wins.
  const json given =
      json::parse(Run("plan --profile p.csv --stages 8 --microbatches 12 --blocking-power 70 "
                      "--json")
                      .out);
  EXPECT_EQ(given["blocking_power_w"], 70.0);
  EXPECT_EQ(given["blocking_power_source"], "given");
  // The shipped profile has no metadata beside it: 0 W, with a warning.
  Output bare = Run("plan --profile " + Gpt3() + " --stages 8 --microbatches 12");
  ASSERT_EQ(bare.exit_code, 0) << bare.err;
  EXPECT_NE(bare.out.find("blocking power 0 W per GPU (1-GPU stages), none given"),
            std::string::npos)
      << bare.out;
  EXPECT_NE(bare.out.find("warning: no blocking power"), std::string::npos) << bare.out;
  // A damaged metadata file is a clear error naming it.
  Write("bad.csv", perseus::testing::ReadFile(Gpt3()));
  Write("bad.csv.meta.json", "{\"blocking_power_w\": \"high\"}");
  ExpectOneLineError(Run("plan --profile bad.csv --stages 8 --microbatches 12"),
                     "bad.csv.meta.json: not a profile's metadata");
}

// One wording of the blocking power: per GPU, and per stage of --tp GPUs.
TEST_F(CliOptionsTest, BlockingPowerIsPerGpuAndPerStage) {
  Output demo = Run("demo");
  ASSERT_EQ(demo.exit_code, 0) << demo.err;
  EXPECT_NE(demo.out.find("blocking power 83.64 W per GPU (669.1 W per 8-GPU stage)"),
            std::string::npos)
      << demo.out;
  Output one = Run("plan" + Job());
  EXPECT_NE(one.out.find("blocking power 83.64 W per GPU (1-GPU stages)"), std::string::npos)
      << one.out;
  EXPECT_EQ(one.out.find("warning"), std::string::npos) << one.out;
  // A stage's figure given as a GPU's is planned as given, with a warning saying so.
  Output stage = Run("plan --profile " + Gpt3() +
                     " --stages 8 --microbatches 12 --blocking-power 669.12 --json");
  ASSERT_EQ(stage.exit_code, 0) << stage.err;
  const json w = json::parse(stage.out)["warnings"];
  ASSERT_EQ(w.size(), 1u) << w.dump();
  EXPECT_EQ(w[0],
            "blocking power 669.1 W per GPU (1-GPU stages) is more than a GPU draws while "
            "waiting (A100: 83.64 W): blocking_power_w is per GPU; if 669.1 W is a stage's, give "
            "the per-GPU figure and tp");
}

// A profile lacking the highest frequency for some computation, or whose
// times look like milliseconds, is planned with a warning naming the rows.
TEST_F(CliOptionsTest, SuspiciousProfilesArePlannedWithAWarning) {
  const std::string header = "stage,instruction,frequency,time,energy\n";
  Write("gap.csv", header +
                       "0,forward,1410,0.010,2.0\n0,forward,1200,0.012,1.8\n"
                       "0,backward,1200,0.024,3.6\n0,backward,1000,0.030,3.5\n");
  Output gap = Run("plan --profile gap.csv --stages 1 --microbatches 2 --blocking-power 80 --json");
  ASSERT_EQ(gap.exit_code, 0) << gap.err;
  const json w = json::parse(gap.out)["warnings"];
  ASSERT_EQ(w.size(), 1u) << w.dump();
  EXPECT_NE(w[0].get<std::string>().find(
                "gap.csv: 1 computation(s) have no row at the profile's highest frequency, 1410 "
                "MHz: stage 0 backward (at most 1200 MHz)"),
            std::string::npos)
      << w.dump();
  EXPECT_NE(gap.err.find("perseus: warning: gap.csv: 1 computation(s)"), std::string::npos);
  Write("ms.csv", header +
                      "0,forward,1410,48,2.0\n0,forward,1200,55,1.8\n"
                      "0,backward,1410,96,3.6\n0,backward,1200,110,3.5\n");
  Output ms = Run("plan --profile ms.csv --stages 1 --microbatches 2 --blocking-power 80 --json");
  ASSERT_EQ(ms.exit_code, 0) << ms.err;
  const json mw = json::parse(ms.out)["warnings"];
  ASSERT_EQ(mw.size(), 1u) << mw.dump();
  EXPECT_NE(mw[0].get<std::string>().find(
                "ms.csv:2: the fastest computation takes 48 s; times look like milliseconds"),
            std::string::npos)
      << mw.dump();
  // The same profile in seconds: no warning.
  Output s =
      Run("plan --profile ms.csv --stages 1 --microbatches 2 --blocking-power 80 "
          "--time-scale 0.001 --json");
  EXPECT_TRUE(json::parse(s.out)["warnings"].empty()) << s.out;
}

// `perseus gpu info` shows each GPU's UUID.
TEST_F(CliOptionsTest, GpuInfoHasAUuidColumn) {
  Output info = Run("gpu info --backend sim");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find(" UUID "), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("SIM-00000000-stage-0000"), std::string::npos) << info.out;
}

}  // namespace
