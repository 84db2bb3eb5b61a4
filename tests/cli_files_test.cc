// Issue 17, the files part: files a user hands over (profiles, schedule
// files) and gets back (`plan --out` directories) are checked like a careful
// tool checks them. Every refusal is exit 2 with one line on stderr.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/support/process.h"
#include "tests/support/temp_dir_test.h"

namespace {

namespace fs = std::filesystem;

using Output = perseus::testing::CommandOutput;

int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

class CliFilesTest : public perseus::testing::TempDirTest {
 protected:
  Output Run(const std::string& args) {
    return perseus::testing::RunCaptured(std::string(PERSEUS_BIN_DIR) + "/perseus " + args);
  }
  // A refusal: exit 2, nothing on stdout, one line on stderr containing `want`.
  void ExpectRefused(const Output& o, const std::string& want, const std::string& what) {
    EXPECT_EQ(o.exit_code, 2) << what << ": " << o.out.substr(0, 200) << o.err;
    EXPECT_TRUE(o.out.empty()) << what << ": " << o.out.substr(0, 200);
    EXPECT_EQ(Lines(o.err), 1) << what << ": " << o.err;
    EXPECT_NE(o.err.find(want), std::string::npos) << what << ": " << o.err;
    EXPECT_LT(o.err.size(), 600u) << what;
  }

  fs::path Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  static std::string Read(const fs::path& p) { return perseus::testing::ReadFile(p.string()); }

  static std::string Gpt3() {
    return std::string(PERSEUS_DATA_DIR) + "/profiles/gpt3-175b+a100_sxm_bf16.csv";
  }
  static std::string Job(int microbatches) {
    return "--profile " + Gpt3() + " --stages 8 --microbatches " + std::to_string(microbatches) +
           " --blocking-power 83.64";
  }
  static std::string Profile(const std::string& rows) {
    return "stage,instruction,frequency,time,energy\n" + rows;
  }
  static std::string GoodRows() {
    return "0,forward,1000,0.5,10\n0,backward,1000,1,20\n0,forward,900,0.6,9\n"
           "0,backward,900,1.2,18\n";
  }
};

// --- 1 and 2: the plan directory's manifest ---------------------------------

TEST_F(CliFilesTest, PlanOutWritesAManifestWithTheJobAndShowPlanPrintsIt) {
  const fs::path out = dir_ / "out";
  Output o = Run("plan " + Job(4) + " --out " + out.string() + " --json");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const nlohmann::json summary = nlohmann::json::parse(o.out);
  const nlohmann::json manifest = nlohmann::json::parse(Read(out / "plan.json"));
  EXPECT_EQ(manifest["generation"], summary["generation"]);
  EXPECT_EQ(manifest["format_version"], 1);
  ASSERT_EQ(manifest["files"].size(), 4u);
  for (const auto& f : manifest["files"]) {
    const std::string name = f["name"];
    EXPECT_EQ(f["size"].get<uint64_t>(), fs::file_size(out / name)) << name;
    EXPECT_EQ(f["sha256"].get<std::string>().size(), 64u);
  }
  const nlohmann::json& job = manifest["job"];
  EXPECT_EQ(job["profile"], Gpt3());
  // sha256sum of the shipped profile, computed independently.
  Output sum = perseus::testing::RunCaptured("sha256sum " + Gpt3());
  ASSERT_EQ(sum.exit_code, 0);
  EXPECT_EQ(job["profile_sha256"], sum.out.substr(0, 64));
  EXPECT_EQ(job["schedule"], "1f1b");
  EXPECT_EQ(job["stages"], 8);
  EXPECT_EQ(job["microbatches"], 4);
  EXPECT_EQ(job["virtual_stages"], 1);
  EXPECT_EQ(job["tp"], 1);
  EXPECT_EQ(job["dp"], 1);
  EXPECT_EQ(job["blocking_power_w"], 83.64);
  EXPECT_EQ(job["blocking_power_source"], "given");
  EXPECT_EQ(job["unit_time_s"], summary["unit_time_s"]);
  EXPECT_EQ(job["cost_model"], "convex");
  EXPECT_EQ(job["time_scale"], 1.0);
  EXPECT_EQ(job["energy_scale"], 1.0);
  EXPECT_FALSE(manifest["perseus_version"].get<std::string>().empty());
  EXPECT_EQ(manifest["created_utc"].get<std::string>().size(), 20u);  // 2026-12-01T23:45:07Z

  Output show = Run("show-plan --json " + out.string() + " --point t_star");
  ASSERT_EQ(show.exit_code, 0) << show.err;
  const nlohmann::json plan = nlohmann::json::parse(show.out);
  EXPECT_EQ(plan["plan_dir"]["generation"], manifest["generation"]);
  EXPECT_EQ(plan["plan_dir"]["job"], job);
  EXPECT_EQ(plan["point"], plan["t_star_point"]);

  // No blocking power given (and none measured beside the profile): recorded as such.
  const fs::path out2 = dir_ / "out2";
  ASSERT_EQ(Run("plan --profile " + Gpt3() + " --stages 8 --microbatches 4 --out " + out2.string())
                .exit_code,
            0);
  EXPECT_EQ(nlohmann::json::parse(Read(out2 / "plan.json"))["job"]["blocking_power_source"],
            "none given");
}

// A damaged or mixed directory, every way the probe found and more: each is
// refused with exit 2 and one line naming the file; the intact one works.
TEST_F(CliFilesTest, EveryDamagedPlanDirectoryIsRefused) {
  const fs::path good = dir_ / "good", other = dir_ / "other";
  ASSERT_EQ(Run("plan " + Job(4) + " --out " + good.string()).exit_code, 0);
  ASSERT_EQ(Run("plan " + Job(6) + " --out " + other.string()).exit_code, 0);
  ASSERT_EQ(Run("show-plan " + good.string() + " --point t_min").exit_code, 0);
  const std::vector<std::string> names = {"frontier.csv", "computations.csv", "plans.csv",
                                          "problem.json", "plan.json"};
  int cases = 0;
  auto check = [&](const std::string& what, const std::string& file, const std::string& want,
                   const std::function<void(const fs::path&)>& damage) {
    const fs::path d = dir_ / ("case" + std::to_string(cases++));
    fs::copy(good, d);
    damage(d);
    for (const char* how : {" --point t_min", " --point 0", " --time 100"}) {
      Output o = Run("show-plan " + d.string() + how);
      ExpectRefused(o, want, what + how);
      EXPECT_NE(o.err.find(file), std::string::npos) << what << ": " << o.err;
    }
  };
  for (const std::string& name : names) {
    const std::string text = Read(good / name);
    // Truncations: empty, the last bytes lost, half. (plan.json without its
    // final newline is still the same manifest: two bytes are cut from it.)
    const size_t short_by = name == "plan.json" ? 2 : 1;
    for (size_t keep : {size_t{0}, text.size() - short_by, text.size() / 2}) {
      check("truncate " + name + " to " + std::to_string(keep), name,
            name == "plan.json" ? "plan.json" : "plan.json (generation",
            [&](const fs::path& d) { fs::resize_file(d / name, keep); });
    }
    // Lines shuffled (the last two swapped: same size, other bytes).
    check("swap lines of " + name, name, "", [&](const fs::path& d) {
      std::vector<std::string> lines;
      std::string line;
      std::ifstream in(d / name);
      while (std::getline(in, line)) lines.push_back(line);
      in.close();
      std::string t;
      if (lines.size() >= 3) {
        size_t a = 1, b = lines.size() - 1;
        while (b > a && lines[a] == lines[b]) --b;
        std::swap(lines[a], lines[b]);
        for (const auto& l : lines) t += l + "\n";
      } else {  // a one-line file (problem.json): two different bytes swapped
        t = Read(d / name);
        size_t a = t.size() / 3, b = a + 1;
        while (b < t.size() && t[b] == t[a]) ++b;
        ASSERT_LT(b, t.size());
        std::swap(t[a], t[b]);
      }
      std::ofstream(d / name, std::ios::binary | std::ios::trunc) << t;
    });
    // A file from the other run (a crash during `plan --out` over it).
    check("swap in " + name + " from another run", name, "", [&](const fs::path& d) {
      fs::copy_file(other / name, d / name, fs::copy_options::overwrite_existing);
    });
    // One byte flipped in the middle.
    check("flip a byte of " + name, name, "", [&](const fs::path& d) {
      std::string t = Read(d / name);
      t[t.size() / 2] = t[t.size() / 2] == '1' ? '2' : '1';
      std::ofstream(d / name, std::ios::binary | std::ios::trunc) << t;
    });
    check("delete " + name, name, name == "plan.json" ? "older perseus" : "missing",
          [&](const fs::path& d) { fs::remove(d / name); });
    check("replace " + name + " by a FIFO", name, "", [&](const fs::path& d) {
      fs::remove(d / name);
      ASSERT_EQ(::mkfifo((d / name).c_str(), 0644), 0);
    });
  }
  // plan.json damaged inside: bad JSON, wrong types, an unknown file, a newer format.
  const std::string manifest = Read(good / "plan.json");
  // plan.json's text for `j` with its manifest_sha256 recomputed (sha256sum of
  // the compact form without it), so that the checks past the seal are reached.
  auto reseal = [&](nlohmann::json j) {
    j.erase("manifest_sha256");
    const fs::path compact = dir_ / "compact.json";
    std::ofstream(compact, std::ios::binary | std::ios::trunc) << j.dump();
    Output sum = perseus::testing::RunCaptured("sha256sum " + compact.string());
    j["manifest_sha256"] = sum.out.substr(0, 64);
    return j.dump(2);
  };
  {  // The resealing is the implementation's: an unchanged manifest resealed reads.
    const fs::path d = dir_ / "resealed";
    fs::copy(good, d);
    std::ofstream(d / "plan.json", std::ios::trunc) << reseal(nlohmann::json::parse(manifest));
    EXPECT_EQ(Run("show-plan " + d.string() + " --point t_min").exit_code, 0);
  }
  auto edit = [&](const std::string& what, const std::string& want,
                  const std::function<void(nlohmann::json&)>& change, bool sealed = true) {
    check(what, "plan.json", want, [&](const fs::path& d) {
      nlohmann::json j = nlohmann::json::parse(manifest);
      change(j);
      std::ofstream(d / "plan.json", std::ios::trunc) << (sealed ? reseal(j) : j.dump(2));
    });
  };
  // The seal itself: the job record edited (another blocking power) is caught.
  edit(
      "job edited, not resealed", "manifest_sha256 does not match its contents",
      [](nlohmann::json& j) { j["job"]["blocking_power_w"] = 70.38; }, false);
  check("plan.json not JSON", "plan.json", "not a valid JSON object", [&](const fs::path& d) {
    std::ofstream(d / "plan.json", std::ios::trunc) << manifest.substr(0, 40) << "}}";
  });
  edit("files not a list", "'files'", [](nlohmann::json& j) { j["files"] = 3; });
  edit("a sha256 changed", "checksum does not match", [&](nlohmann::json& j) {
    std::string s = j["files"][2]["sha256"];
    s[0] = s[0] == 'a' ? 'b' : 'a';
    j["files"][2]["sha256"] = s;
  });
  edit("a size changed", "lists", [](nlohmann::json& j) { j["files"][0]["size"] = 5; });
  edit("a file dropped", "does not list", [](nlohmann::json& j) { j["files"].erase(3); });
  edit("an unknown file", "not a file of a plan directory",
       [](nlohmann::json& j) { j["files"][0]["name"] = "../etc/passwd"; });
  edit("newer format", "format_version 2", [](nlohmann::json& j) { j["format_version"] = 2; });
  edit("job missing", "'job'", [](nlohmann::json& j) { j.erase("job"); });
  edit("stages a string", "'job.stages'", [](nlohmann::json& j) { j["job"]["stages"] = "8"; });
  EXPECT_GE(cases, 40);

  // Not a directory at all, and a directory without any plan files.
  ExpectRefused(Run("show-plan " + (dir_ / "nothing").string() + " --point t_min"),
                "not a directory", "missing directory");
  fs::create_directories(dir_ / "empty");
  ExpectRefused(Run("show-plan " + (dir_ / "empty").string() + " --point t_min"),
                "not a perseus plan --out directory", "empty directory");

  // Leftover temporary files of a killed write do not matter.
  std::ofstream(good / "plans.csv.tmp.20261201T000000Z-1-0") << "junk";
  EXPECT_EQ(Run("show-plan " + good.string() + " --point t_min").exit_code, 0);
}

// The states a `plan --out` over an existing directory passes through
// (its files renamed one at a time, plan.json last), reproduced: each is
// the old plan, the new plan, or refused; never a mix read as a plan.
TEST_F(CliFilesTest, EveryIntermediateStateOfARewriteIsOldNewOrRefused) {
  const fs::path old_dir = dir_ / "old", new_dir = dir_ / "new";
  ASSERT_EQ(Run("plan " + Job(4) + " --out " + old_dir.string()).exit_code, 0);
  ASSERT_EQ(Run("plan " + Job(6) + " --out " + new_dir.string()).exit_code, 0);
  const std::string old_plan = Run("show-plan --json " + old_dir.string() + " --point 0").out;
  const std::string new_plan = Run("show-plan --json " + new_dir.string() + " --point 0").out;
  ASSERT_FALSE(old_plan.empty());
  ASSERT_NE(old_plan, new_plan);
  // Write order: frontier.csv, computations.csv, problem.json, plans.csv, plan.json.
  const std::vector<std::string> order = {"frontier.csv", "computations.csv", "problem.json",
                                          "plans.csv", "plan.json"};
  for (size_t renamed = 0; renamed <= order.size(); ++renamed) {
    const fs::path d = dir_ / ("state" + std::to_string(renamed));
    fs::copy(old_dir, d);
    for (size_t k = 0; k < renamed; ++k) {
      fs::copy_file(new_dir / order[k], d / order[k], fs::copy_options::overwrite_existing);
    }
    // The next file's temporary copy, written but not renamed.
    if (renamed < order.size()) {
      fs::copy_file(new_dir / order[renamed], d / (order[renamed] + ".tmp.x"));
    }
    Output o = Run("show-plan --json " + d.string() + " --point 0");
    if (renamed == 0) {
      EXPECT_EQ(o.out, old_plan);
    } else if (renamed == order.size()) {
      EXPECT_EQ(o.out, new_plan);
    } else {
      ExpectRefused(o, "plan.json (generation", "state " + std::to_string(renamed));
      EXPECT_NE(o.err.find("run perseus plan --out again"), std::string::npos) << o.err;
    }
  }
}

// --- 3: printed times round-trip; --point ------------------------------------

TEST_F(CliFilesTest, ThePrintedTMinSelectsTheTMinPlan) {
  const fs::path out = dir_ / "out";
  Output o = Run("plan " + Job(4) + " --out " + out.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  // The table's T_min row, as printed: "  T_min (same speed)  1.6134  2508.0  13.32%".
  const size_t row = o.out.find("T_min (same speed)");
  ASSERT_NE(row, std::string::npos) << o.out;
  std::istringstream fields(o.out.substr(row + std::string("T_min (same speed)").size()));
  std::string printed;
  fields >> printed;
  ASSERT_EQ(printed.size() - printed.find('.') - 1, 4u) << printed;  // 4 decimals

  Output by_point = Run("show-plan --json " + out.string() + " --point t_min");
  ASSERT_EQ(by_point.exit_code, 0) << by_point.err;
  Output by_time = Run("show-plan --json " + out.string() + " --time " + printed);
  ASSERT_EQ(by_time.exit_code, 0) << by_time.err;
  const nlohmann::json p = nlohmann::json::parse(by_point.out);
  const nlohmann::json t = nlohmann::json::parse(by_time.out);
  EXPECT_EQ(p["point"], p["t_min_point"]);
  EXPECT_FALSE(p["improved"].get<bool>());
  // The --time plan is the T_min plan or one the local search found that is
  // as fast (it meets the printed time within its last digit) and costs no
  // more; it started from T_min or from the next slower point.
  EXPECT_GE(t["point"].get<int>(), p["t_min_point"].get<int>() - 1);
  EXPECT_LE(t["time"].get<double>(), std::stod(printed) + 5e-5);
  EXPECT_LE(t["energy"].get<double>(), p["energy"].get<double>() + 1e-9);

  // The point's exact time as show-plan prints it, typed back, selects it too.
  std::ostringstream exact;
  exact.precision(17);
  exact << p["time"].get<double>();
  Output exact_time = Run("show-plan --json " + out.string() + " --time " + exact.str());
  ASSERT_EQ(exact_time.exit_code, 0) << exact_time.err;
  const nlohmann::json e = nlohmann::json::parse(exact_time.out);
  EXPECT_LE(e["time"].get<double>(), p["time"].get<double>());
  EXPECT_LE(e["energy"].get<double>(), p["energy"].get<double>() + 1e-9);

  // One digit less than T_min is still refused, with the exact T_min to use.
  const double below = std::stod(printed) - 0.001;
  Output too_fast = Run("show-plan " + out.string() + " --time " + std::to_string(below));
  ExpectRefused(too_fast, "no plan finishes by", "below T_min");
  EXPECT_NE(too_fast.err.find("--point t_min"), std::string::npos);

  // --point N as "point" prints it; t_star; bad points and times.
  Output n = Run("show-plan --json " + out.string() + " --point 3");
  ASSERT_EQ(n.exit_code, 0) << n.err;
  EXPECT_EQ(nlohmann::json::parse(n.out)["point"], 3);
  Output star = Run("show-plan --json " + out.string() + " --point t_star");
  ASSERT_EQ(star.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(star.out)["point"],
            nlohmann::json::parse(star.out)["t_star_point"]);
  ExpectRefused(Run("show-plan " + out.string() + " --point 100000"), "is not t_min, t_star",
                "point out of range");
  ExpectRefused(Run("show-plan " + out.string() + " --point fastest"), "is not t_min, t_star",
                "point name");
  ExpectRefused(Run("show-plan " + out.string() + " --time 0x10"), "not a positive decimal",
                "hex time");
  ExpectRefused(Run("show-plan " + out.string() + " --time inf"), "not a positive decimal",
                "inf time");
  EXPECT_EQ(Run("show-plan " + out.string()).exit_code, 2);  // neither --time nor --point
  EXPECT_NE(Run("show-plan " + out.string() + " --time 10 --point 0").exit_code, 0);
}

// --- 4: profile and schedule files -------------------------------------------

TEST_F(CliFilesTest, NonRegularAndHugeFilesAreRefusedWithoutReadingThem) {
  const fs::path fifo = dir_ / "fifo.csv";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const std::string plan = "plan --stages 1 --microbatches 2 --profile ";
  // A FIFO nobody writes to would block a reader forever: `timeout` turns that into 124.
  Output f = perseus::testing::RunCaptured("timeout 20 " + std::string(PERSEUS_BIN_DIR) +
                                           "/perseus " + plan + fifo.string());
  ExpectRefused(f, "must be a regular file, not a FIFO", "fifo profile");
  ExpectRefused(Run(plan + "/dev/zero"), "must be a regular file, not a character device",
                "/dev/zero");
  ExpectRefused(Run(plan + dir_.string()), "must be a regular file, not a directory", "dir");
  // A sparse 65 MiB file: refused by its size, not read.
  const fs::path huge = dir_ / "huge.csv";
  std::ofstream(huge) << Profile(GoodRows());
  fs::resize_file(huge, (uint64_t{65} << 20));
  ExpectRefused(Run(plan + huge.string()), "is larger than 64 MiB", "huge profile");

  Output sf = perseus::testing::RunCaptured("timeout 20 " + std::string(PERSEUS_BIN_DIR) +
                                            "/perseus plan --profile " + Gpt3() +
                                            " --schedule-file " + fifo.string());
  ExpectRefused(sf, "must be a regular file, not a FIFO", "fifo schedule");
  ExpectRefused(Run("plan --profile " + Gpt3() + " --schedule-file /dev/zero"),
                "must be a regular file", "/dev/zero schedule");
  const fs::path huge_schedule = dir_ / "huge_schedule.csv";
  std::ofstream(huge_schedule) << "0F0\n";
  fs::resize_file(huge_schedule, (uint64_t{65} << 20));
  ExpectRefused(Run("plan --profile " + Gpt3() + " --schedule-file " + huge_schedule.string()),
                "is larger than 64 MiB", "huge schedule");
}

TEST_F(CliFilesTest, HexInfNanAndOverflowingNumbersAreRefusedNamingFileAndLine) {
  struct Case {
    std::string rows, want;
  };
  const std::vector<Case> cases = {
      {"0,forward,1000,0x1p-1,10\n", ":2: time '0x1p-1' is not a number"},
      {"0,forward,0x3e8,0.5,10\n", ":2: frequency '0x3e8' is not a positive integer"},
      {"0x0,forward,1000,0.5,10\n", ":2: stage '0x0' is not"},
      {"0,forward,1000,0.5,0x10\n", ":2: energy '0x10' is not a number"},
      {"0,forward,1000,inf,10\n", ":2: time is not finite: 'inf'"},
      {"0,forward,1000,0.5,-Infinity\n", ":2: energy is not finite: '-Infinity'"},
      {"0,forward,1000,0.5,nan\n", ":2: energy is not finite: 'nan'"},
      {"0,forward,1000,1e400,10\n", ":2: time is not finite: '1e400'"},
      {"0,forward,1000, 0.5e,10\n", ":2: time '0.5e' is not a number"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path p = Write("p" + std::to_string(i) + ".csv", Profile(cases[i].rows + GoodRows()));
    ExpectRefused(Run("plan --stages 1 --microbatches 2 --profile " + p.string()),
                  p.string() + cases[i].want, cases[i].rows);
  }
  // Hex in a schedule file's action.
  const fs::path s = Write("s.csv", "0F0,0B0\n0F0x1\n");
  ExpectRefused(Run("plan --profile " + Gpt3() + " --schedule-file " + s.string()),
                s.string() + ":2: column 1: '0F0x1'", "hex schedule");
}

TEST_F(CliFilesTest, MegabyteFieldsAreEchoedCut) {
  const std::string big(1 << 20, '7');
  const std::string bad = big + "x";
  for (const std::string& row : {"0,forward,1000," + bad + ",10\n", bad + ",forward,1000,0.5,10\n",
                                 "0," + bad + ",1000,0.5,10\n", "0,forward," + bad + ",0.5,10\n",
                                 "0,forward,1000,0.5," + bad + "\n"}) {
    const fs::path p = Write("big.csv", Profile(row + GoodRows()));
    Output o = Run("plan --stages 1 --microbatches 2 --profile " + p.string());
    ExpectRefused(o, "77777...'", "big field");
  }
  const fs::path s = Write("s.csv", "0F0," + big + "Q\n");
  ExpectRefused(Run("plan --profile " + Gpt3() + " --schedule-file " + s.string()), "77777...'",
                "big schedule cell");
}

// --- 5: nothing non-finite is printed ----------------------------------------

TEST_F(CliFilesTest, OverflowingFiguresAreRefusedNotPrintedAsNull) {
  const fs::path huge = Write("huge.csv", Profile("0,forward,1000,0.5,1e308\n0,backward,1000,1,"
                                                  "20\n0,forward,900,0.6,9\n0,backward,900,1.2,"
                                                  "18\n"));
  for (const std::string& args :
       {"plan --stages 1 --microbatches 2 --json --profile " + huge.string(),
        "plan --stages 1 --microbatches 2 --profile " + huge.string(),
        "plan --stages 1 --microbatches 2 --json --blocking-power 1e308 --profile " +
            Write("ok.csv", Profile(GoodRows())).string()}) {
    Output o = Run(args);
    EXPECT_EQ(o.exit_code, 2) << args << ": " << o.out;
    EXPECT_EQ(o.out.find("null"), std::string::npos) << o.out;
    EXPECT_EQ(o.out.find("inf"), std::string::npos) << o.out;
    EXPECT_EQ(Lines(o.err), 1) << o.err;
  }
}

}  // namespace
