#include "perseus/planner/frontier_io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "perseus/common/files.h"
#include "perseus/planner/improve.h"
#include "perseus/planner/solver.h"
#include "src/planner/testing/random_profile.h"

namespace perseus::planner {
namespace {

// A frontier written to its files and parsed back gives every point's plan and
// the same deadline lookups.
TEST(FrontierIoTest, StoredFrontierRoundTrips) {
  std::mt19937 rng(5);
  const Profile profile = testing::RandomProfile(rng, 3, 5);
  PlannerOptions options;
  options.unit_time_s = 0.25;
  auto problem = testing::MakeProblem(profile, 3, 4, options);
  ASSERT_NE(problem, nullptr);
  auto frontier = SolveFrontier(problem);
  ASSERT_TRUE(frontier.ok()) << frontier.status().message();
  auto stored = StoredFrontier::Parse(FrontierToFiles(*frontier), "mem");
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  ASSERT_EQ(stored->points().size(), frontier->size());
  ASSERT_EQ(stored->computations().size(), static_cast<size_t>(problem->dag->num_nodes()));
  for (size_t k = 0; k < frontier->size(); ++k) {
    const Plan plan = frontier->PlanAt(k);
    const std::vector<int> freq = stored->FrequenciesAt(k);
    for (size_t i = 0; i < plan.size(); ++i) {
      ASSERT_EQ(freq[i], problem->option(static_cast<int>(i), plan[i]).frequency_mhz)
          << "point " << k << " computation " << i;
    }
    EXPECT_DOUBLE_EQ(stored->points()[k].time_s, frontier->points()[k].time_s);
  }
  EXPECT_EQ(stored->TMinIndex(), frontier->TMinIndex());
  std::uniform_real_distribution<double> u(frontier->points()[frontier->TMinIndex()].time_s * 0.9,
                                           frontier->points().front().time_s * 1.1);
  for (int i = 0; i < 200; ++i) {
    const double deadline = u(rng);
    EXPECT_EQ(stored->IndexForDeadline(deadline), frontier->IndexForDeadline(deadline));
  }
}

TEST(FrontierIoTest, MalformedFilesNameFileAndLine) {
  FrontierFiles files{"time,energy,model_time,model_energy\n1,2,3,4\n",
                      "id,gpu,stage,instruction,microbatch,order\n0,0,0,forward,0,0\n",
                      "point,computation,frequency\n0,0,1410\n0,7,1410\n", ""};
  auto stored = StoredFrontier::Parse(files, "job");
  ASSERT_FALSE(stored.ok());
  EXPECT_EQ(stored.status().message(), "job/plans.csv:3: unknown computation 7");
  files.plans_csv = "point,computation,frequency\n";
  EXPECT_EQ(StoredFrontier::Parse(files, "job").status().message(),
            "job/plans.csv: point 0 gives no frequency for computation 0");
}

// With problem.json, a stored frontier improves a deadline's plan exactly as
// the solved one does (same plan, same figures); without it, the point as is.
TEST(FrontierIoTest, StoredProblemGivesTheSameDeadlinePlans) {
  const testing::SolvedCase c = testing::SolveRandomCase(11, 3, 5, 5, 4);
  ASSERT_NE(c.problem, nullptr);
  ASSERT_GT(c.frontier.size(), 0u);
  const Problem* problem = c.problem.get();
  const Frontier* frontier = &c.frontier;
  FrontierFiles files = FrontierToFiles(*frontier);
  auto stored = StoredFrontier::Parse(files, "mem");
  ASSERT_TRUE(stored.ok()) << stored.status().message();
  ASSERT_NE(stored->problem(), nullptr);
  const double fastest = frontier->points()[frontier->TMinIndex()].time_s;
  int improved = 0;
  for (double factor : {1.0, 1.03, 1.1, 1.3}) {
    const double deadline = fastest * factor;
    auto ours = PlanForDeadline(*frontier, deadline);
    auto read = stored->PlanForDeadline(deadline);
    ASSERT_TRUE(ours && read);
    EXPECT_TRUE(read->improved);
    EXPECT_EQ(read->point, ours->base_point);
    EXPECT_DOUBLE_EQ(read->figures.energy_j, ours->result.figures.energy_j);
    EXPECT_DOUBLE_EQ(read->figures.time_s, ours->result.figures.time_s);
    for (size_t i = 0; i < ours->result.plan.size(); ++i) {
      ASSERT_EQ(read->frequency_mhz[i],
                problem->option(static_cast<int>(i), ours->result.plan[i]).frequency_mhz);
    }
    const size_t k = frontier->IndexForDeadline(deadline).value();
    if (read->figures.energy_j < frontier->points()[k].energy_j * (1 - 1e-9)) ++improved;
  }
  EXPECT_GT(improved, 0);
  EXPECT_FALSE(stored->PlanForDeadline(fastest * 0.5).has_value());
  files.problem_json.clear();
  auto bare = StoredFrontier::Parse(files, "mem");
  ASSERT_TRUE(bare.ok());
  auto point = bare->PlanForDeadline(fastest * 1.1);
  ASSERT_TRUE(point.has_value());
  EXPECT_FALSE(point->improved);
  EXPECT_EQ(point->point, frontier->IndexForDeadline(fastest * 1.1).value());
}

TEST(FrontierIoTest, MalformedProblemJsonNamesTheField) {
  std::mt19937 rng(2);
  PlannerOptions options;
  options.unit_time_s = 0.1;
  auto problem = testing::MakeProblem(testing::RandomProfile(rng, 2, 3), 2, 2, options);
  ASSERT_NE(problem, nullptr);
  auto frontier = SolveFrontier(problem);
  ASSERT_TRUE(frontier.ok());
  const FrontierFiles good = FrontierToFiles(*frontier);
  auto message = [&](const std::string& json) {
    FrontierFiles files = good;
    files.problem_json = json;
    auto stored = StoredFrontier::Parse(files, "job");
    return stored.ok() ? std::string("ok") : stored.status().message();
  };
  EXPECT_EQ(message("{"), "job/problem.json: not valid JSON");
  EXPECT_EQ(message("{\"format\": \"x\"}"),
            "job/problem.json: format: expected \"perseus-problem/1\"");
  std::string j = good.problem_json;
  const std::string gpus = "\"gpus\":" + std::to_string(problem->num_gpus);
  ASSERT_NE(j.find(gpus), std::string::npos);
  EXPECT_EQ(message(std::string(j).replace(j.find(gpus), gpus.size(), "\"gpus\":0")),
            "job/problem.json: gpus: expected a positive integer");
  const std::string set0 = "\"option_set\":0";
  ASSERT_NE(j.find(set0), std::string::npos);
  EXPECT_EQ(message(std::string(j).replace(j.find(set0), set0.size(), "\"option_set\":99")),
            "job/problem.json: computations[0].option_set: expected an index into option_sets");
  // A frequency the plans use that the options do not have.
  FrontierFiles files = good;
  const size_t row = files.plans_csv.find("\n0,0,") + 1;
  const size_t end = files.plans_csv.find('\n', row);
  files.plans_csv.replace(row, end - row, "0,0,7");
  auto stored = StoredFrontier::Parse(files, "job");
  ASSERT_FALSE(stored.ok());
  EXPECT_EQ(stored.status().message(),
            "job/plans.csv:2: 7 MHz is not one of computation 0's options in job/problem.json");
}

// SHA-256 against the FIPS 180-2 / NIST test vectors.
TEST(FrontierIoTest, Sha256MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(FrontierIoTest, DeadlineTextStandsForTheTimesThatRoundToIt) {
  auto d = ParseDeadlineText("12.3456");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->seconds, 12.3456);
  EXPECT_NEAR(d->tolerance_s, 5e-5, 1e-12);
  EXPECT_GE(d->tolerance_s, 5e-5);
  EXPECT_EQ(ParseDeadlineText("10")->tolerance_s, 0);
  EXPECT_NEAR(ParseDeadlineText("1.5e1")->tolerance_s, 0.5, 1e-9);
  EXPECT_NEAR(ParseDeadlineText("2.50e-3")->tolerance_s, 5e-6, 1e-13);
  EXPECT_NEAR(ParseDeadlineText("0.1")->tolerance_s, 0.05, 1e-9);
  for (const char* bad : {"", "0", "-1", "0x10", "inf", "nan", "1e400", " 1", "1s", "1e"}) {
    auto r = ParseDeadlineText(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("is not a positive decimal number"), std::string::npos);
  }
  // A long --time is echoed cut.
  auto long_text = ParseDeadlineText(std::string(1000, '9') + "x");
  ASSERT_FALSE(long_text.ok());
  EXPECT_LT(long_text.status().message().size(), 200u);
  // Shortest round-trip text.
  EXPECT_EQ(TimeText(0.1), "0.1");
  EXPECT_EQ(std::stod(TimeText(1.6133756701151512)), 1.6133756701151512);
}

class PlanDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("perseus_plan_dir_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static Frontier Solve(int seed, int microbatches) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    PlannerOptions options;
    options.unit_time_s = 0.25;
    auto problem =
        testing::MakeProblem(testing::RandomProfile(rng, 3, 5), 3, microbatches, options);
    auto frontier = SolveFrontier(problem);
    EXPECT_TRUE(frontier.ok());
    return std::move(frontier).value();
  }
  static PlanJobRecord Job(int microbatches) {
    PlanJobRecord job;
    job.profile_path = "p.csv";
    job.profile_sha256 = Sha256Hex("p");
    job.schedule = "1f1b";
    job.stages = 3;
    job.microbatches = microbatches;
    job.model_stages = 3;
    job.gpus = 3;
    job.blocking_power_w = 70.5;
    job.blocking_power_source = "given";
    job.unit_time_s = 0.25;
    job.cost_model = "convex";
    return job;
  }
  std::filesystem::path dir_;
};

TEST_F(PlanDirTest, WrittenDirectoryReadsBackWithItsManifest) {
  const Frontier frontier = Solve(5, 4);
  auto written = WriteFrontierDir(frontier, dir_.string(), Job(4), "9.9.9");
  ASSERT_TRUE(written.ok()) << written.status().message();
  auto read = ReadPlanDir(dir_.string());
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->manifest.generation, written->generation);
  EXPECT_EQ(read->manifest.perseus_version, "9.9.9");
  EXPECT_EQ(read->manifest.job.microbatches, 4);
  EXPECT_EQ(read->manifest.job.blocking_power_w, 70.5);
  EXPECT_EQ(read->manifest.job.blocking_power_source, "given");
  EXPECT_EQ(read->manifest.files.size(), 4u);
  EXPECT_EQ(read->frontier.points().size(), frontier.size());
  const StoredPlan t_min = PlanAtPoint(read->frontier, read->frontier.TMinIndex());
  EXPECT_EQ(t_min.point, frontier.TMinIndex());
  EXPECT_EQ(read->frontier.TStarIndex(), frontier.TStarIndex());
  // Two writes, two generations.
  auto again = WriteFrontierDir(frontier, dir_.string(), Job(4), "9.9.9");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->generation, written->generation);
  // No temporary files are left behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  }
}

// A write killed after each of its steps (the test hook stops it there, as a
// kill would, leaving that step's renames done and the rest undone) over a
// directory holding another job's complete generation: what is left reads
// as the old plan, the new plan, or is refused naming plan.json's generation.
TEST_F(PlanDirTest, AWriteKilledAtAnyStepLeavesOldNewOrRefused) {
  const Frontier old_frontier = Solve(5, 4), new_frontier = Solve(9, 5);
  const std::vector<std::string> steps = {"frontier.csv", "computations.csv", "problem.json",
                                          "plans.csv", "plan.json"};
  for (size_t stop = 0; stop < steps.size(); ++stop) {
    std::filesystem::remove_all(dir_);
    auto old_written = WriteFrontierDir(old_frontier, dir_.string(), Job(4), "1");
    ASSERT_TRUE(old_written.ok());
    std::vector<std::string> seen;
    WriteDirOptions options;
    options.continue_after = [&](const std::string& step) {
      seen.push_back(step);
      return seen.size() <= stop;  // false after step `stop`
    };
    auto killed = WriteFrontierDir(new_frontier, dir_.string(), Job(5), "1", options);
    EXPECT_FALSE(killed.ok());
    ASSERT_EQ(seen.size(), stop + 1);
    EXPECT_EQ(seen.back(), steps[stop]);
    auto read = ReadPlanDir(dir_.string());
    if (steps[stop] == "plan.json") {  // the commit point passed: the new generation
      ASSERT_TRUE(read.ok()) << read.status().message();
      EXPECT_EQ(read->manifest.job.microbatches, 5);
      EXPECT_EQ(read->frontier.points().size(), new_frontier.size());
    } else {
      ASSERT_FALSE(read.ok()) << "stopped after " << steps[stop];
      // The first file renamed (frontier.csv) no longer matches the old manifest.
      EXPECT_NE(read.status().message().find("frontier.csv"), std::string::npos)
          << read.status().message();
      EXPECT_NE(
          read.status().message().find("plan.json (generation " + old_written->generation + ")"),
          std::string::npos)
          << read.status().message();
      EXPECT_EQ(read.status().message().find('\n'), std::string::npos);
    }
  }
  // Killed before any rename (the hook never reached): the old generation.
  std::filesystem::remove_all(dir_);
  ASSERT_TRUE(WriteFrontierDir(old_frontier, dir_.string(), Job(4), "1").ok());
  std::ofstream(dir_ / "frontier.csv.tmp.other") << "half a file";
  auto read = ReadPlanDir(dir_.string());
  ASSERT_TRUE(read.ok()) << read.status().message();
  EXPECT_EQ(read->manifest.job.microbatches, 4);
}

// What a killed write left (its temporary files) is removed by the next
// complete write once it is old; a fresh one (a write that may still be
// running) and files of other names stay.
TEST_F(PlanDirTest, ACompleteWriteRemovesWhatKilledWritesLeft) {
  const Frontier frontier = Solve(5, 4);
  // A write killed after computations.csv's rename, and one killed between
  // writing problem.json's temporary file and renaming it.
  WriteDirOptions stop_early;
  stop_early.continue_after = [](const std::string& step) { return step != "computations.csv"; };
  ASSERT_FALSE(WriteFrontierDir(frontier, dir_.string(), Job(4), "1", stop_early).ok());
  const auto old_time = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  auto leave = [&](const std::string& name, bool old) {
    std::ofstream(dir_ / name) << "half a file";
    if (old) std::filesystem::last_write_time(dir_ / name, old_time);
  };
  leave("problem.json.tmp.20261201T000000Z-0a1b2c3d", true);
  leave("plan.json.tmp.20261201T000000Z-0a1b2c3d", true);
  leave("plans.csv.tmp.recent", false);  // a write that may still be running
  leave("notes.tmp.old", true);          // not a plan directory's file
  auto temporaries = [&] {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      const std::string name = entry.path().filename().string();
      if (name.find(".tmp.") != std::string::npos) names.push_back(name);
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  ASSERT_EQ(temporaries().size(), 4u);

  ASSERT_TRUE(WriteFrontierDir(frontier, dir_.string(), Job(4), "1").ok());
  EXPECT_EQ(temporaries(), (std::vector<std::string>{"notes.tmp.old", "plans.csv.tmp.recent"}));
  ASSERT_TRUE(ReadPlanDir(dir_.string()).ok());
}

TEST_F(PlanDirTest, ADirectoryWithoutAManifestIsRefused) {
  const Frontier frontier = Solve(5, 4);
  ASSERT_TRUE(WriteFrontierDir(frontier, dir_.string(), Job(4), "1").ok());
  std::filesystem::remove(dir_ / "plan.json");
  auto read = ReadPlanDir(dir_.string());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kInvalidInput);
  EXPECT_NE(read.status().message().find("plan.json: missing"), std::string::npos);
  // StoredFrontier::ReadDir and ReadPlanForDeadline verify too.
  EXPECT_FALSE(StoredFrontier::ReadDir(dir_.string()).ok());
  EXPECT_FALSE(ReadPlanForDeadline(dir_.string(), 1e9).ok());
}

// The checks of files.h that every reader relies on.
TEST(FilesTest, ReadRegularFileRefusesWhatIsNotAPlainBoundedFile) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("perseus_files_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string fifo = dir + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  auto f = ReadRegularFile(fifo, 100, "profile");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("must be a regular file, not a FIFO"), std::string::npos);
  EXPECT_FALSE(ReadRegularFile("/dev/zero", 100, "profile").ok());
  EXPECT_EQ(ReadRegularFile(dir + "/none", 100, "profile").status().code(), StatusCode::kNotFound);
  std::ofstream(dir + "/ten") << "0123456789";
  EXPECT_EQ(*ReadRegularFile(dir + "/ten", 10, "x"), "0123456789");
  auto big = ReadRegularFile(dir + "/ten", 9, "x");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("is larger than 9 bytes"), std::string::npos);
  std::filesystem::remove_all(dir);

  EXPECT_EQ(FieldText("short"), "short");
  EXPECT_EQ(FieldText(std::string(100, 'x')), std::string(60, 'x') + "...");
  // Not cut inside a UTF-8 character: 59 ASCII bytes then a 2-byte character.
  EXPECT_EQ(FieldText(std::string(59, 'x') + "\xc3\xa9" + std::string(10, 'y')),
            std::string(59, 'x') + "...");
  for (const char* ok : {"1", "-1.5", "+2", ".5", "5.", "1e3", "1.2E-3"}) {
    EXPECT_TRUE(IsDecimalNumberText(ok)) << ok;
  }
  for (const char* bad : {"", ".", "0x10", "0x1p3", "inf", "nan", "1e", " 1", "1 ", "1,5", "e5"}) {
    EXPECT_FALSE(IsDecimalNumberText(bad)) << bad;
  }
}

}  // namespace
}  // namespace perseus::planner
