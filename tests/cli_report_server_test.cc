// `perseus report --server URL --job ID` against a real `perseus serve` on
// loopback: the table, --json and --out show the measured figures; an unknown
// job, an unreachable server and a half-given command line fail clearly.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"
#include "tests/support/process.h"
#include "tests/support/server.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using perseus::testing::Api;
using perseus::testing::CreateJob;
using perseus::testing::kPerseus;
using perseus::testing::ProfileCsv;
using perseus::testing::Response;
using perseus::testing::ServerProcess;
using perseus::testing::TempPath;
using perseus::testing::WaitReady;

using perseus::testing::ReadFile;
using Output = perseus::testing::CommandOutput;

// Runs the real binary with `args`; stdout and stderr captured.
Output Perseus(const std::string& args) {
  return perseus::testing::RunCaptured(kPerseus + " " + args);
}

int Lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// A loopback port nothing listens on: bound, then closed.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

json Report(int rank, int iteration, const std::string& phase, double time_s, double energy_j) {
  return {{"rank", rank},
          {"iteration", iteration},
          {"time_s", time_s},
          {"energy_j", energy_j},
          {"phase", phase}};
}

class ReportServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = TempPath("report_server.db");
    server_ = new ServerProcess(db_);
    Api api(server_->port());
    job_ = CreateJob(api, 2);
    const std::string base = "/v1/jobs/" + std::to_string(job_);
    ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv").status, 202);
    ASSERT_EQ(WaitReady(api, job_)["state"], "ready");
    // 2 baseline iterations at 100 J per rank, 3 planned at 80 J: a 20% saving;
    // rank 7 (pipeline 1's last stage) is the slowest, 1.0 s then 1.1 s.
    for (int rank = 0; rank < 8; ++rank) {
      const bool slow = rank == 7;
      for (int i = 0; i < 2; ++i) {
        Response r =
            api.Post(base + "/iterations", Report(rank, i, "baseline", slow ? 1.0 : 0.9, 100));
        ASSERT_EQ(r.status, 200) << r.body.dump();
      }
      for (int i = 2; i < 5; ++i) {
        Response r =
            api.Post(base + "/iterations", Report(rank, i, "planned", slow ? 1.1 : 0.95, 80));
        ASSERT_EQ(r.status, 200) << r.body.dump();
      }
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    unlink(db_.c_str());
  }
  static std::string Args() {
    return "report --server " + server_->url() + " --job " + std::to_string(job_);
  }

  static ServerProcess* server_;
  static std::string db_;
  static int64_t job_;
};

ServerProcess* ReportServerTest::server_ = nullptr;
std::string ReportServerTest::db_;
int64_t ReportServerTest::job_ = 0;

TEST_F(ReportServerTest, TableShowsTheMeasuredSavingPerPipelineAndForTheJob) {
  Output o = Perseus(Args());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("Perseus job " + std::to_string(job_) + " (gpt3-4x2): ready"),
            std::string::npos)
      << o.out;
  // job::BlockingPowerText's wording (the job has 1-GPU stages), and the source.
  EXPECT_NE(o.out.find("blocking power 83.64 W per GPU (1-GPU stages), from config"),
            std::string::npos)
      << o.out;
  // Pipeline rows: 4 ranks x 100 J against 4 x 80 J; the job's: 800 against 640.
  EXPECT_NE(o.out.find("2/3"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("400.0"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("320.0"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("800.0"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("640.0"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("20.00%"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("10.00%"), std::string::npos) << o.out;  // slowdown 1.0 s -> 1.1 s
  std::istringstream lines(o.out);
  std::string line, job_row;
  while (std::getline(lines, line)) {
    if (line.rfind("  job ", 0) == 0) job_row = line;
  }
  EXPECT_NE(job_row.find("20.00%"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("plan mismatches: 0 in 0 iterations"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("note:"), std::string::npos) << o.out;
}

TEST_F(ReportServerTest, JsonHasTheJobAndTheReport) {
  Output o = Perseus(Args() + " --json");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const json j = json::parse(o.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << o.out;
  EXPECT_EQ(j["job"]["job_id"], job_);
  EXPECT_EQ(j["job"]["state"], "ready");
  EXPECT_NEAR(j["report"]["measured"]["saving_pct"].get<double>(), 20, 1e-9);
  EXPECT_EQ(j["report"]["measured"]["pipelines"].size(), 2u);
}

TEST_F(ReportServerTest, OutWritesAnHtmlReportWithTheMeasuredFigures) {
  const fs::path dir = TempPath("report_dir");
  Output o = Perseus(Args() + " --out " + dir.string());
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("report.html"), std::string::npos) << o.out;
  const std::string html = ReadFile((dir / "report.html").string());
  EXPECT_NE(html.find("<!DOCTYPE html>"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("gpt3-4x2"), std::string::npos);
  EXPECT_NE(html.find("20.00%"), std::string::npos);
  EXPECT_NE(html.find("800.0"), std::string::npos);
  EXPECT_NE(html.find("640.0"), std::string::npos);
  fs::remove_all(dir);
}

TEST_F(ReportServerTest, UnknownJobExitsTwoSayingNoJob) {
  Output o = Perseus("report --server " + server_->url() + " --job 999");
  EXPECT_EQ(o.exit_code, 2) << o.out << o.err;
  EXPECT_NE(o.err.find("no job 999"), std::string::npos) << o.err;
  EXPECT_EQ(o.out, "");
}

TEST_F(ReportServerTest, HalfAServerCommandLineIsAUsageError) {
  Output o = Perseus("report --server " + server_->url());
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--job"), std::string::npos) << o.err;
  o = Perseus("report --job 1");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--server"), std::string::npos) << o.err;
  o = Perseus("report");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_NE(o.err.find("--out"), std::string::npos) << o.err;
}

TEST(ReportServerErrorsTest, UnreachableServerFailsWithOneLineNamingTheUrl) {
  const std::string url = "http://127.0.0.1:" + std::to_string(ClosedPort());
  Output o = Perseus("report --server " + url + " --job 1");
  EXPECT_NE(o.exit_code, 0);
  EXPECT_NE(o.exit_code, 2);  // the server is not there: not the user's input
  EXPECT_EQ(Lines(o.err), 1) << o.err;
  EXPECT_NE(o.err.find(url), std::string::npos) << o.err;
  EXPECT_EQ(o.out, "");
}

TEST(ReportServerErrorsTest, HelpDescribesTheServerMode) {
  Output o = Perseus("report --help");
  EXPECT_EQ(o.exit_code, 0);
  for (const char* option : {"--server", "--job", "--token-file", "--json", "--out"}) {
    EXPECT_NE(o.out.find(option), std::string::npos) << option << "\n" << o.out;
  }
}

// With a token, the report needs it: the file's token is sent as a bearer token.
TEST(ReportServerErrorsTest, TokenFileIsSentAsTheBearerToken) {
  const std::string token_file = TempPath("token");
  std::ofstream(token_file) << "s3cret\n";
  ServerProcess server(TempPath("report_token.db"), token_file);
  Api api(server.port(), "s3cret");
  const int64_t job = CreateJob(api, 1);
  const std::string args = "report --server " + server.url() + " --job " + std::to_string(job);
  Output o = Perseus(args);
  EXPECT_EQ(o.exit_code, 1) << o.err;
  EXPECT_NE(o.err.find("401"), std::string::npos) << o.err;
  o = Perseus(args + " --token-file " + token_file + " --json");
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const json j = json::parse(o.out, nullptr, false);
  EXPECT_TRUE(j["report"]["measured"]["saving_pct"].is_null()) << o.out;
  // No measured figures yet: the table says n/a and shows the server's note.
  o = Perseus(args + " --token-file " + token_file);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("n/a"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("note:"), std::string::npos) << o.out;
  unlink(token_file.c_str());
}

}  // namespace
