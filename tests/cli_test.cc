// End-to-end tests of the `perseus` binary: exit codes, messages, JSON output,
// the paper's headline case, and the --out / show-plan round trip.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/support/process.h"
#include "tests/support/temp_dir_test.h"

namespace {

namespace fs = std::filesystem;

using Output = perseus::testing::CommandOutput;

std::string ReadFile(const fs::path& path) { return perseus::testing::ReadFile(path.string()); }

class CliTest : public perseus::testing::TempDirTest {
 protected:
  Output Run(const std::string& args) {
    return perseus::testing::RunCaptured(std::string(PERSEUS_BIN_DIR) + "/perseus " + args);
  }

  fs::path Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }

  static std::string Gpt3() {
    return std::string(PERSEUS_DATA_DIR) + "/profiles/gpt3-175b+a100_sxm_bf16.csv";
  }
  static std::string TorchCsv(const std::string& name) {
    return std::string(PERSEUS_DATA_DIR) + "/schedules/torch-2.13/" + name;
  }
  // The GPT-3 profile's first `stages` stages (its stages are alike).
  fs::path Gpt3Stages(int stages) {
    std::ifstream in(Gpt3());
    std::string line, text;
    std::getline(in, line);
    text = line + "\n";
    while (std::getline(in, line)) {
      if (std::stoi(line.substr(0, line.find(','))) < stages) text += line + "\n";
    }
    return Write("gpt3-" + std::to_string(stages) + ".csv", text);
  }
};

TEST_F(CliTest, HelpListsCommands) {
  Output o = Run("--help");
  EXPECT_EQ(o.exit_code, 0);
  for (const char* c : {"plan", "show-plan", "demo"}) {
    EXPECT_NE(o.out.find(c), std::string::npos) << c;
  }
  Output plan_help = Run("plan --help");
  EXPECT_EQ(plan_help.exit_code, 0);
  EXPECT_NE(plan_help.out.find("--blocking-power"), std::string::npos);
}

TEST_F(CliTest, BadProfileExitsTwoNamingFileAndLine) {
  fs::path p = Write("bad.csv",
                     "stage,instruction,frequency,time,energy\n"
                     "0,forward,1410,0.5,100\n"
                     "0,backward,1410,nan,200\n");
  Output o = Run("plan --profile " + p.string() + " --stages 1 --microbatches 2");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find(p.string() + ":3: time is not finite"), std::string::npos) << o.err;
  EXPECT_TRUE(o.out.empty());
}

// Bounded work (issue 16): the CLI refuses what the coordinator refuses, with
// one line naming the field, instead of bad_alloc, an overflowed energy or an
// hour-long solve.
TEST_F(CliTest, WorkBeyondTheLimitsIsAClearErrorNotACrash) {
  const std::string plan = "plan --profile " + Gpt3() + " --stages 8 --microbatches 4 ";
  Output scale = Run(plan + "--energy-scale 1e13");
  EXPECT_EQ(scale.exit_code, 2);
  EXPECT_NE(scale.err.find("J per computation (after energy_scale); the planner takes at most"),
            std::string::npos)
      << scale.err;
  Output unit = Run(plan + "--unit-time 1e-7");
  EXPECT_EQ(unit.exit_code, 2);
  EXPECT_NE(unit.err.find("unit_time 1e-07 s is too small"), std::string::npos) << unit.err;
  Output chunks = Run("plan --profile " + Gpt3() +
                      " --schedule interleaved-1f1b --stages 8 --microbatches 8 "
                      "--virtual-stages 1000");
  EXPECT_EQ(chunks.exit_code, 2);
  EXPECT_EQ(chunks.err,
            "perseus: error: --virtual-stages: Value 1000 not in range 1 to 128 (see --help)\n");
  Output big = Run("plan --profile " + Gpt3() + " --stages 8 --microbatches 100000");
  EXPECT_EQ(big.exit_code, 2);
  EXPECT_NE(big.err.find("make 1600000 computations per pipeline"), std::string::npos) << big.err;
}

TEST_F(CliTest, MissingProfileAndBadArgumentsExitTwo) {
  EXPECT_EQ(Run("plan --profile /nonexistent.csv --stages 8 --microbatches 4").exit_code, 2);
  Output stages = Run("plan --profile " + Gpt3() + " --stages 4 --microbatches 4");
  EXPECT_EQ(stages.exit_code, 2);
  EXPECT_NE(stages.err.find("the profile has 8 stages but the schedule needs 4 (stages is 4)"),
            std::string::npos)
      << stages.err;
  Output model = Run("plan --profile " + Gpt3() + " --stages 8 --microbatches 4 --cost-model x");
  EXPECT_EQ(model.exit_code, 2);
  EXPECT_NE(model.err.find("cost_model must be exponential or convex"), std::string::npos);
  EXPECT_EQ(Run("plan --profile " + Gpt3() + " --stages 8 --microbatches zero").exit_code, 2);
  EXPECT_EQ(
      Run("plan --profile " + Gpt3() + " --stages 8 --microbatches 4 --unit-time -1").exit_code, 2);
  EXPECT_EQ(Run("no-such-command").exit_code, 2);
}

// The paper's emulation setting for GPT-3 175B on A100 (8 stages, 12
// microbatches): Perseus must not slow the iteration and should save >= 15.2%.
TEST_F(CliTest, PaperHeadlineCase) {
  Output o = Run("plan --profile " + Gpt3() +
                 " --stages 8 --microbatches 12 --blocking-power 669.12 --time-scale 10 "
                 "--energy-scale 80 --json");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  for (const char* key : {"all_max", "t_min", "t_star", "frontier_points", "solve_seconds"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  const double all_max_time = j["all_max"]["time"];
  const double t_min_time = j["t_min"]["time"];
  EXPECT_LE(t_min_time, all_max_time * 1.001);
  EXPECT_GE(j["t_min"]["saving_pct"].get<double>(), 15.2);
  EXPECT_GE(j["t_star"]["saving_pct"].get<double>(), j["t_min"]["saving_pct"].get<double>());
  EXPECT_LT(j["t_min"]["energy"].get<double>(), j["all_max"]["energy"].get<double>());
  EXPECT_GT(j["frontier_points"].get<int>(), 100);  // Pareto points of the sweep's steps
}

TEST_F(CliTest, DemoPrintsATable) {
  Output o = Run("demo");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("T_min"), std::string::npos);
  EXPECT_NE(o.out.find("all-max"), std::string::npos);
}

TEST_F(CliTest, OutDirectoryAndShowPlanRoundTrip) {
  const fs::path out = dir_ / "frontier";
  Output o =
      Run("plan --profile " + Gpt3() + " --stages 8 --microbatches 4 --blocking-power 83.64 " +
          "--out " + out.string() + " --json");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json summary = nlohmann::json::parse(o.out);
  ASSERT_TRUE(fs::exists(out / "frontier.csv"));
  std::string csv = ReadFile(out / "frontier.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "time,energy,model_time,model_energy");

  // A deadline halfway between T_min and T*: the plan meets it.
  const double t_min = summary["t_min"]["time"], t_star = summary["t_star"]["time"];
  const double deadline = (t_min + t_star) / 2;
  Output show = Run("show-plan --json " + out.string() + " --time " + std::to_string(deadline));
  ASSERT_EQ(show.exit_code, 0) << show.err;
  nlohmann::json plan = nlohmann::json::parse(show.out);
  EXPECT_LE(plan["time"].get<double>(), deadline);
  EXPECT_GT(plan["energy"].get<double>(), summary["t_star"]["energy"].get<double>() - 1e-6);
  ASSERT_EQ(plan["stages"].size(), 8u);
  for (const auto& stage : plan["stages"]) {
    ASSERT_EQ(stage["frequencies_mhz"].size(), 8u);  // 4 forwards + 4 backwards
    ASSERT_EQ(stage["instructions"].size(), 8u);
  }
  // Stage 7 (the last) alternates forward and backward from the start.
  EXPECT_EQ(plan["stages"][7]["instructions"][0]["instruction"], "forward");
  EXPECT_EQ(plan["stages"][7]["instructions"][1]["instruction"], "backward");

  EXPECT_TRUE(plan["improved"].get<bool>());  // the directory has problem.json

  // The same plan as a table (no --json): one row per stage whose runs
  // ("1410x3") spell out its frequency list.
  Output table = Run("show-plan " + out.string() + " --time " + std::to_string(deadline));
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("improved by " + std::to_string(plan["moves"].get<int>()) + " moves"),
            std::string::npos)
      << table.out;
  const size_t header = table.out.find("stage  computations  frequencies");
  ASSERT_NE(header, std::string::npos) << table.out;
  std::istringstream rows(table.out.substr(table.out.find('\n', header) + 1));
  for (int k = 0; k < 8; ++k) {
    std::string row;
    ASSERT_TRUE(std::getline(rows, row));
    std::istringstream fields(row);
    int stage = -1;
    size_t count = 0;
    fields >> stage >> count;
    EXPECT_EQ(stage, plan["stages"][k]["stage"].get<int>());
    EXPECT_EQ(count, 8u);
    std::vector<int> spelled;
    for (std::string run; fields >> run;) {
      const size_t x = run.find('x');
      const int mhz = std::stoi(run.substr(0, x));
      const int times = x == std::string::npos ? 1 : std::stoi(run.substr(x + 1));
      spelled.insert(spelled.end(), static_cast<size_t>(times), mhz);
    }
    EXPECT_EQ(spelled, plan["stages"][k]["frequencies_mhz"].get<std::vector<int>>()) << row;
  }

  // At T_min itself: the T_min point, or a plan the local search found from it
  // (or from the next slower point) that is as fast and costs no more.
  Output fastest =
      Run("show-plan --json " + out.string() + " --time " + std::to_string(t_min + 1e-6));
  ASSERT_EQ(fastest.exit_code, 0);
  const nlohmann::json at_t_min = nlohmann::json::parse(fastest.out);
  EXPECT_LE(at_t_min["time"].get<double>(), t_min + 1e-6);
  EXPECT_LE(at_t_min["energy"].get<double>(), summary["t_min"]["energy"].get<double>() + 1e-6);

  // Faster than T_min: no plan, a clear error.
  Output too_fast = Run("show-plan " + out.string() + " --time " + std::to_string(t_min * 0.9));
  EXPECT_EQ(too_fast.exit_code, 2);
  EXPECT_NE(too_fast.err.find("error"), std::string::npos);
  EXPECT_TRUE(too_fast.out.empty());

  // A directory that is not a plan output.
  EXPECT_EQ(Run("show-plan " + dir_.string() + "/nothing --time 10").exit_code, 2);
}

// Issue #3: the paper's GPT-3 case with 16 microbatches plans under every
// schedule, meets the all-max time and saves energy; derived profile data is
// announced.
TEST_F(CliTest, EveryScheduleOnThePaperCase) {
  for (std::string schedule : {"gpipe", "zb-h1", "interleaved-1f1b --virtual-stages 2"}) {
    SCOPED_TRACE(schedule);
    Output o = Run("plan --profile " + Gpt3() +
                   " --stages 8 --microbatches 16 --blocking-power 669.12 --time-scale 10 "
                   "--energy-scale 80 --json --schedule " +
                   schedule);
    ASSERT_EQ(o.exit_code, 0) << o.err;
    nlohmann::json j = nlohmann::json::parse(o.out);
    EXPECT_LE(j["t_min"]["time"].get<double>(), j["all_max"]["time"].get<double>() * 1.001);
    EXPECT_GT(j["t_min"]["saving_pct"].get<double>(), 0);
    if (schedule == "gpipe") {
      EXPECT_TRUE(j["notes"].empty());
      EXPECT_EQ(j["computations"], 8 * 16 * 2);
    } else if (schedule == "zb-h1") {
      ASSERT_EQ(j["notes"].size(), 1u);
      EXPECT_NE(j["notes"][0].get<std::string>().find("backward_input and backward_weight"),
                std::string::npos);
      EXPECT_NE(o.err.find("note:"), std::string::npos);
      EXPECT_EQ(j["computations"], 8 * 16 * 3);
    } else {
      EXPECT_EQ(j["model_stages"], 16);
      ASSERT_EQ(j["notes"].size(), 1u);
      EXPECT_NE(j["notes"][0].get<std::string>().find("chunks"), std::string::npos);
      EXPECT_EQ(j["computations"], 16 * 16 * 2);
    }
  }
}

// Issue #3: a 1F1B schedule exported to the torch CSV form and planned through
// --schedule-file gives the same frontier as --schedule 1f1b.
TEST_F(CliTest, ScheduleFileGivesTheSameFrontier) {
  const fs::path csv = dir_ / "1f1b.csv";
  Output exported =
      Run("show-schedule --schedule 1f1b --stages 8 --microbatches 6 --csv " + csv.string());
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_NE(exported.out.find("rank 7 | 7F0 7B0 7F1 7B1"), std::string::npos) << exported.out;
  const std::string common =
      " --profile " + Gpt3() + " --blocking-power 83.64 --unit-time 0.002 --json --out ";
  Output built_in =
      Run("plan --schedule 1f1b --stages 8 --microbatches 6" + common + (dir_ / "a").string());
  Output from_file = Run("plan --schedule-file " + csv.string() + common + (dir_ / "b").string());
  ASSERT_EQ(built_in.exit_code, 0) << built_in.err;
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  std::string a = ReadFile(dir_ / "a" / "frontier.csv"), b = ReadFile(dir_ / "b" / "frontier.csv");
  EXPECT_GT(a.size(), 1000u);
  EXPECT_EQ(a, b);
  EXPECT_EQ(ReadFile(dir_ / "a" / "plans.csv"), ReadFile(dir_ / "b" / "plans.csv"));
  nlohmann::json j = nlohmann::json::parse(from_file.out);
  EXPECT_EQ(j["stages"], 8);
  EXPECT_EQ(j["microbatches"], 6);
}

// Every CSV torch.distributed.pipelining 2.13 writes for its schedules plans:
// 4 ranks, 8 microbatches; one stage per rank on the GPT-3 profile's first 4
// stages, two per rank on its 8 stages.
TEST_F(CliTest, EveryTorchSchedulePlans) {
  const std::string four = Gpt3Stages(4).string();
  const std::pair<const char*, bool> files[] = {{"GPipe.pipeline_order.csv", false},
                                                {"1F1B.csv", false},
                                                {"Interleaved1F1B.compute_only.csv", true},
                                                {"Interleaved1F1B.compute_comms.csv", true},
                                                {"LoopedBFS.compute_only.csv", true},
                                                {"LoopedBFS.compute_comms.csv", true},
                                                {"InterleavedZeroBubble.compute_only.csv", true},
                                                {"InterleavedZeroBubble.compute_comms.csv", true},
                                                {"ZBVZeroBubble.compute_only.csv", true},
                                                {"ZBVZeroBubble.compute_comms.csv", true},
                                                {"DualPipeV.compute_only.csv", true},
                                                {"DualPipeV.compute_comms.csv", true}};
  for (const auto& [file, multi] : files) {
    SCOPED_TRACE(file);
    Output o = Run("plan --profile " + (multi ? Gpt3() : four) + " --schedule-file " +
                   TorchCsv(file) + " --blocking-power 83.64 --json");
    ASSERT_EQ(o.exit_code, 0) << o.err;
    nlohmann::json j = nlohmann::json::parse(o.out);
    EXPECT_EQ(j["stages"], 4);
    EXPECT_EQ(j["microbatches"], 8);
    EXPECT_EQ(j["model_stages"], multi ? 8 : 4);
    EXPECT_GT(j["frontier_points"].get<int>(), 100);
    EXPECT_LE(j["t_min"]["time"].get<double>(), j["all_max"]["time"].get<double>() * 1.001);
    // (GPipe over identical stages has no slack at T_min: saving 0 there.)
    EXPECT_GE(j["t_min"]["saving_pct"].get<double>(), 0);
    EXPECT_GT(j["t_star"]["saving_pct"].get<double>(), 0);
    const std::string notes = j["notes"].dump();
    EXPECT_EQ(notes.find("overlapped F+B of DualPipeV") != std::string::npos,
              std::string(file).rfind("DualPipeV", 0) == 0)
        << notes;
  }
  // The compute_only and compute_comms forms give the same frontier.
  for (const std::string name : {"DualPipeV", "InterleavedZeroBubble"}) {
    const std::string common = " --profile " + Gpt3() + " --blocking-power 83.64 --out ";
    ASSERT_EQ(Run("plan --schedule-file " + TorchCsv(name + ".compute_only.csv") + common +
                  (dir_ / (name + "-only")).string())
                  .exit_code,
              0);
    ASSERT_EQ(Run("plan --schedule-file " + TorchCsv(name + ".compute_comms.csv") + common +
                  (dir_ / (name + "-comms")).string())
                  .exit_code,
              0);
    for (const char* f : {"frontier.csv", "computations.csv", "plans.csv"}) {
      EXPECT_EQ(ReadFile(dir_ / (name + "-only") / f), ReadFile(dir_ / (name + "-comms") / f))
          << name << " " << f;
    }
  }
}

// torch's GPipe, 1F1B (as it executes it) and Interleaved1F1B give exactly
// the frontiers of the built-in gpipe, 1f1b and interleaved-1f1b (V = 2).
TEST_F(CliTest, TorchSchedulesGiveTheBuiltInFrontiers) {
  const std::string four = Gpt3Stages(4).string();
  struct Case {
    const char* file;
    std::string built_in;
    std::string profile;
  };
  const Case cases[] = {
      {"GPipe.pipeline_order.csv", "--schedule gpipe --stages 4 --microbatches 8", four},
      {"1F1B.csv", "--schedule 1f1b --stages 4 --microbatches 8", four},
      {"Interleaved1F1B.compute_only.csv",
       "--schedule interleaved-1f1b --virtual-stages 2 --stages 4 --microbatches 8", Gpt3()}};
  int k = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    const fs::path a = dir_ / ("a" + std::to_string(k)), b = dir_ / ("b" + std::to_string(k));
    ++k;
    const std::string common = " --profile " + c.profile + " --blocking-power 83.64 --out ";
    Output built_in = Run("plan " + c.built_in + common + a.string());
    Output from_file = Run("plan --schedule-file " + TorchCsv(c.file) + common + b.string());
    ASSERT_EQ(built_in.exit_code, 0) << built_in.err;
    ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
    EXPECT_GT(ReadFile(a / "frontier.csv").size(), 1000u);
    for (const char* f : {"frontier.csv", "computations.csv", "plans.csv"}) {
      EXPECT_EQ(ReadFile(a / f), ReadFile(b / f)) << f;
    }
  }
}

// DualPipeV: the plan names its overlapped computations; show-schedule
// renders them as torch writes them and writes them back in torch's form.
TEST_F(CliTest, DualPipeVPlansNameTheOverlappedComputations) {
  const fs::path out = dir_ / "dualpipev";
  Output o = Run("plan --profile " + Gpt3() + " --schedule-file " +
                 TorchCsv("DualPipeV.compute_only.csv") + " --blocking-power 83.64 --json --out " +
                 out.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const double t_min = nlohmann::json::parse(o.out)["t_min"]["time"];
  Output show = Run("show-plan --json " + out.string() + " --time " + std::to_string(t_min + 1e-6));
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const nlohmann::json plan = nlohmann::json::parse(show.out);
  ASSERT_EQ(plan["stages"].size(), 4u);
  // Rank 0: ... 7F3 (0F7;7B3)OVERLAP_F_B (7F4;0B0)OVERLAP_F_B 7B4 ...
  const auto& rank0 = plan["stages"][0]["instructions"];
  int overlaps = 0;
  for (size_t i = 0; i < rank0.size(); ++i) {
    if (rank0[i]["instruction"] != "overlap_f_b") continue;
    if (overlaps++ == 0) {
      EXPECT_EQ(rank0[i - 1]["instruction"], "forward");
      EXPECT_EQ(rank0[i]["stage"], 0);
      EXPECT_EQ(rank0[i]["microbatch"], 7);
      EXPECT_EQ(rank0[i]["backward"],
                (nlohmann::json{{"instruction", "backward"}, {"stage", 7}, {"microbatch", 3}}));
      EXPECT_GT(rank0[i]["frequency_mhz"].get<int>(), 0);
    }
  }
  EXPECT_EQ(overlaps, 5);

  const fs::path csv = dir_ / "back.csv", svg = dir_ / "dualpipev.svg";
  Output text = Run("show-schedule --schedule-file " + TorchCsv("DualPipeV.compute_comms.csv") +
                    " --csv " + csv.string() + " --svg " + svg.string() + " --profile " + Gpt3());
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("7F3 (0F7;7B3) (7F4;0B0) 7B4"), std::string::npos) << text.out;
  EXPECT_NE(ReadFile(csv).find(",7F3,(0F7;7B3)OVERLAP_F_B,(7F4;0B0)OVERLAP_F_B,7B4,"),
            std::string::npos);
  EXPECT_NE(ReadFile(svg).find("<title>(0F7;7B3) rank 0"), std::string::npos);
  // The simulator's timeline names them too.
  const fs::path timeline = dir_ / "timeline.csv";
  Output sim = Run("simulate --profile " + Gpt3() + " --schedule-file " +
                   TorchCsv("DualPipeV.compute_only.csv") + " --blocking-power 83.64 --timeline " +
                   timeline.string());
  ASSERT_EQ(sim.exit_code, 0) << sim.err;
  const std::string events = ReadFile(timeline);
  size_t overlapped = 0;
  for (size_t p = events.find(",overlap_f_b,"); p != std::string::npos;
       p = events.find(",overlap_f_b,", p + 1)) {
    ++overlapped;
  }
  EXPECT_EQ(overlapped, 25u);
  // Written back, it plans to the same frontier as torch's file.
  Output again = Run("plan --profile " + Gpt3() + " --schedule-file " + csv.string() +
                     " --blocking-power 83.64 --out " + (dir_ / "again").string());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(ReadFile(out / "frontier.csv"), ReadFile(dir_ / "again" / "frontier.csv"));
}

TEST_F(CliTest, ScheduleErrorsExitTwo) {
  Output bad =
      Run("show-schedule --schedule interleaved-1f1b --stages 4 --microbatches 6 "
          "--virtual-stages 2");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("multiple of the number of stages"), std::string::npos) << bad.err;
  fs::path deadlock = Write("deadlock.csv", "0F0,0B0\n1B0,1F0\n");
  Output d = Run("plan --profile " + Gpt3() + " --schedule-file " + deadlock.string());
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_NE(d.err.find("deadlocks"), std::string::npos) << d.err;
  EXPECT_EQ(Run("show-schedule --schedule pipedream --stages 2 --microbatches 2").exit_code, 2);
  fs::path self = Write("self.csv", "(0F0;0B0)OVERLAP_F_B\n");
  Output s = Run("show-schedule --schedule-file " + self.string());
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.err.find(self.string() +
                       ": rank 0, action 1 (0F0;0B0): its backward half 0B0 waits for its "
                       "other half 0F0"),
            std::string::npos)
      << s.err;
  fs::path malformed = Write("malformed.csv", "0F0,(0F1)OVERLAP_F_B\n");
  Output m = Run("plan --profile " + Gpt3() + " --schedule-file " + malformed.string());
  EXPECT_EQ(m.exit_code, 2);
  EXPECT_NE(m.err.find(malformed.string() + ":1: column 2: '(0F1)OVERLAP_F_B'"), std::string::npos)
      << m.err;
  Output literal = Run("show-schedule --schedule-file " + TorchCsv("1F1B.pipeline_order.csv"));
  EXPECT_EQ(literal.exit_code, 2);
  EXPECT_NE(literal.err.find("misses computation 0F8"), std::string::npos) << literal.err;
}

// Issue #3: TP and DP: job-wide energies and GPU count.
TEST_F(CliTest, TensorAndDataParallelSummary) {
  const std::string base =
      "plan --profile " + Gpt3() + " --stages 8 --microbatches 4 --blocking-power 83.64 --json";
  Output one = Run(base);
  Output many = Run(base + " --tp 8 --dp 4");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(many.exit_code, 0) << many.err;
  nlohmann::json a = nlohmann::json::parse(one.out), b = nlohmann::json::parse(many.out);
  EXPECT_EQ(b["gpus"], 8 * 8 * 4);
  EXPECT_EQ(b["energy_scope"], "job");
  // Rows for one GPU, multiplied by TP 8, blocking power for all 8, times 4
  // pipelines: exactly 32 times the single-GPU-per-stage job.
  EXPECT_NEAR(b["all_max"]["energy"].get<double>(), 32 * a["all_max"]["energy"].get<double>(),
              1e-6 * b["all_max"]["energy"].get<double>());
  EXPECT_DOUBLE_EQ(b["all_max"]["time"].get<double>(), a["all_max"]["time"].get<double>());
}

// Issue #4: the paper's emulation (GPT-3, TP 8, PP 8, M = 12, 1536 / 12 = 128
// pipelines): intrinsic savings at least the paper's 15.2%, and with a
// straggler at 1.2 Perseus saves more while EnvPipe (one operating point)
// does not gain.
TEST_F(CliTest, EmulateThePaperCase) {
  Output o = Run("emulate --profile " + Gpt3() +
                 " --stages 8 --microbatches 12 --tp 8 --blocking-power 83.64 --time-scale 10 "
                 "--energy-scale 10 --pipelines 128 --straggler-slowdown 1.0 "
                 "--straggler-slowdown 1.2 --json");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["gpus"], 8 * 8 * 128);
  ASSERT_EQ(j["rows"].size(), 2u);
  const auto& none = j["rows"][0];
  const auto& straggler = j["rows"][1];
  EXPECT_EQ(none["slowdown"], 1.0);
  EXPECT_DOUBLE_EQ(none["all-max"]["saving_pct"].get<double>(), 0);
  EXPECT_GE(none["perseus"]["saving_pct"].get<double>(), 15.2);
  EXPECT_LE(none["perseus"]["time"].get<double>(), none["all-max"]["time"].get<double>() * 1.001);
  EXPECT_GT(straggler["perseus"]["saving_pct"].get<double>(),
            none["perseus"]["saving_pct"].get<double>() + 5);
  EXPECT_LT(straggler["envpipe"]["saving_pct"].get<double>(),
            none["envpipe"]["saving_pct"].get<double>());
  EXPECT_GT(none["envpipe"]["saving_pct"].get<double>(), 0);
  EXPECT_EQ(
      Run("emulate --profile " + Gpt3() + " --stages 8 --microbatches 12 --straggler-slowdown 0.5")
          .exit_code,
      2);
}

TEST_F(CliTest, SimulateReproducesThePlanAndWritesATimeline) {
  const std::string base =
      "simulate --profile " + Gpt3() + " --stages 8 --microbatches 4 --blocking-power 83.64 --json";
  const fs::path timeline = dir_ / "timeline.csv";
  Output o = Run(base + " --timeline " + timeline.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  EXPECT_EQ(j["time_change_pct"].get<double>(), 0);
  EXPECT_EQ(j["energy_change_pct"].get<double>(), 0);
  std::string csv = ReadFile(timeline);
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "gpu,computation,instruction,stage,microbatch,start,end,frequency,energy");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 8 * 4 * 2);
  Output noisy = Run(base + " --noise 5 --repeat 3 --switch-latency 0.01");
  ASSERT_EQ(noisy.exit_code, 0) << noisy.err;
  EXPECT_NE(nlohmann::json::parse(noisy.out)["time_change_pct"].get<double>(), 0);
  EXPECT_EQ(Run(base + " --time 0.001").exit_code, 2);
  EXPECT_EQ(Run(base + " --noise -1").exit_code, 2);
}

TEST_F(CliTest, ReportForTheDemoJob) {
  const fs::path out = dir_ / "report";
  Output o = Run("report --out " + out.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  std::string html = ReadFile(out / "report.html");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  size_t svgs = 0;
  for (size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
  EXPECT_EQ(svgs, 3u);
  EXPECT_NE(html.find("gpt3-175b"), std::string::npos);
  EXPECT_EQ(Run("report").exit_code, 2);  // --out is required
}

TEST_F(CliTest, ShowScheduleSvgAndJson) {
  const fs::path svg = dir_ / "s.svg";
  Output o =
      Run("show-schedule --schedule interleaved-1f1b --stages 2 --microbatches 4 "
          "--virtual-stages 2 --json --svg " +
          svg.string() + " --profile " + Gpt3());
  // The GPT-3 profile has 8 stages: not 2 stages to cut into 4 chunks.
  EXPECT_EQ(o.exit_code, 2);
  o =
      Run("show-schedule --schedule interleaved-1f1b --stages 2 --microbatches 4 "
          "--virtual-stages 2 --json --svg " +
          svg.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  nlohmann::json j = nlohmann::json::parse(o.out);
  ASSERT_EQ(j["ranks"].size(), 2u);
  EXPECT_EQ(j["ranks"][1][2], "3F0");
  std::string text = ReadFile(svg);
  size_t boxes = 0;
  for (size_t p = text.find("<g class=\"box\">"); p != std::string::npos;
       p = text.find("<g class=\"box\">", p + 1))
    ++boxes;
  EXPECT_EQ(boxes, 2u * 2 * 4 * 2);  // ranks x chunks x microbatches x (F, B)
}

}  // namespace
