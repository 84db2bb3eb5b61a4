// Measured savings and in-job profiling in `perseus serve`, end to end on
// loopback: iteration reports with phases, the report's measured figures,
// profiling progress, and the blocking power measured with the profile.
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "perseus/client/client.h"
#include "tests/support/process.h"
#include "tests/support/server.h"

namespace {

using nlohmann::json;
using perseus::testing::A100Clocks;
using perseus::testing::Api;
using perseus::testing::CreateJob;
using perseus::testing::ProfileCsv;
using perseus::testing::Response;
using perseus::testing::ServerProcess;
using perseus::testing::StageMeasurements;
using perseus::testing::TempPath;
using perseus::testing::WaitReady;

json Report(int rank, int iteration, const std::string& phase, double time_s, double energy_j) {
  json r = {{"rank", rank}, {"iteration", iteration}, {"time_s", time_s}, {"energy_j", energy_j}};
  if (!phase.empty()) r["phase"] = phase;
  return r;
}

void Send(Api& api, int64_t job, const json& report) {
  Response r = api.Post("/v1/jobs/" + std::to_string(job) + "/iterations", report);
  ASSERT_EQ(r.status, 200) << r.body.dump();
}

// The metric line `name{job="J"}`'s value (NaN when absent).
double Metric(const std::string& text, const std::string& name, int64_t job) {
  const std::string prefix = name + "{job=\"" + std::to_string(job) + "\"} ";
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size()));
  }
  return std::nan("");
}

std::string MetricsText(int port) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get("/metrics");
  return r ? r->body : "";
}

// 4 stages x 2 pipelines: a warm-up, 2 baseline and 3 planned iterations, an
// iteration whose pipeline 0 ran mixed phases and one a rank did not report;
// reports without a phase (older clients) too. Only complete, single-phase
// iterations count, per pipeline; the figures survive kill -9.
TEST(ServerMeasuredTest, MeasuredSavingsCompareBaselineWithPlannedIterations) {
  const std::string db = TempPath("measured_savings.db");
  json before;
  int64_t job = 0;
  {
    ServerProcess server(db);
    Api api(server.port());
    job = CreateJob(api, 2);
    const std::string base = "/v1/jobs/" + std::to_string(job);
    ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv").status, 202);
    ASSERT_EQ(WaitReady(api, job)["state"], "ready");
    // Before any phase: no measured figures, and a note saying what they need.
    json empty = api.Call("GET", base + "/report").body["measured"];
    EXPECT_TRUE(empty["saving_pct"].is_null());
    EXPECT_NE(empty.value("note", ""), "");
    for (int rank = 0; rank < 8; ++rank) {
      const bool slow = rank == 7;  // pipeline 1's last stage: its time is the pipeline's
      Send(api, job, Report(rank, 0, "warmup", 5.0, 500));
      for (int i = 1; i <= 2; ++i)
        Send(api, job, Report(rank, i, "baseline", slow ? 1.1 : 1.0, 100));
      for (int i = 3; i <= 5; ++i)
        Send(api, job, Report(rank, i, "planned", slow ? 1.2 : 1.02, 80));
      // Iteration 6: each pipeline's first rank still ran the baseline, the others the plan.
      Send(api, job, Report(rank, 6, rank % 4 == 0 ? "baseline" : "planned", 9.0, 1));
      // Iteration 7: rank 7 never reports; iteration 8 has no phase (an older client).
      if (rank != 7) Send(api, job, Report(rank, 7, "planned", 1.02, 80));
      Send(api, job, Report(rank, 8, "", 9.0, 1));
    }
    before = api.Call("GET", base + "/report").body["measured"];
  }
  ASSERT_TRUE(before["pipelines"].is_array() && before["pipelines"].size() == 2) << before.dump();
  const json& p0 = before["pipelines"][0];
  const json& p1 = before["pipelines"][1];
  EXPECT_EQ(p0["baseline_iterations"], 2);
  EXPECT_EQ(p0["perseus_iterations"], 4);  // 3, 4, 5 and 7
  EXPECT_EQ(p1["perseus_iterations"], 3);  // 3, 4, 5 (6 is mixed; rank 7 did not report 7)
  EXPECT_DOUBLE_EQ(p0["baseline_j_per_iteration"].get<double>(), 400);
  EXPECT_DOUBLE_EQ(p0["perseus_j_per_iteration"].get<double>(), 320);
  EXPECT_NEAR(p0["saving_pct"].get<double>(), 20, 1e-9);
  EXPECT_DOUBLE_EQ(p1["baseline_time_s_per_iteration"].get<double>(), 1.1);
  EXPECT_DOUBLE_EQ(p1["perseus_time_s_per_iteration"].get<double>(), 1.2);
  EXPECT_DOUBLE_EQ(before["baseline_j_per_iteration"].get<double>(), 800);
  EXPECT_DOUBLE_EQ(before["perseus_j_per_iteration"].get<double>(), 640);
  EXPECT_NEAR(before["saving_pct"].get<double>(), 20, 1e-9);
  // The job's time is its slowest pipeline's.
  EXPECT_DOUBLE_EQ(before["baseline_time_s_per_iteration"].get<double>(), 1.1);
  EXPECT_NEAR(before["slowdown_pct"].get<double>(), 100 * (1.2 / 1.1 - 1), 1e-9);
  // The model's figure beside it: the plan's points against all at the highest clock.
  ASSERT_TRUE(before["model"].is_object());
  EXPECT_GT(before["model"]["saving_pct"].get<double>(), 0);
  EXPECT_TRUE(p0["model"].is_object());

  ServerProcess again(db);
  Api api(again.port());
  EXPECT_EQ(api.Call("GET", "/v1/jobs/" + std::to_string(job) + "/report").body["measured"],
            before);
  unlink(db.c_str());
}

TEST(ServerMeasuredTest, BadPhaseOrProgressGetsAFourHundredNamingIt) {
  ServerProcess server(TempPath("measured_bad.db"));
  Api api(server.port());
  const int64_t job = CreateJob(api, 1);
  const std::string path = "/v1/jobs/" + std::to_string(job) + "/iterations";
  json bad = Report(0, 0, "fast", 1, 1);
  Response r = api.Post(path, bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["field"], "phase");
  bad = Report(0, 0, "profiling", 1, 1);
  bad["profiling_progress"] = 1.5;
  r = api.Post(path, bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["field"], "profiling_progress");
  bad = Report(0, 0, "planned", 1, 1);
  bad["plan_version"] = -2;
  r = api.Post(path, bad);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["field"], "plan_version");
}

int64_t CreateJobWithoutBlockingPower(Api& api) {
  Response r = api.Post("/v1/jobs", {{"name", "in-job"}, {"stages", 4}, {"microbatches", 8}});
  EXPECT_EQ(r.status, 201) << r.body.dump();
  const int64_t job = r.body.value("job_id", int64_t{0});
  EXPECT_TRUE(api.Call("GET", "/v1/jobs/" + std::to_string(job))
                  .body["config"]["blocking_power_w"]
                  .is_null());
  for (int rank = 0; rank < 4; ++rank) {
    Response reg = api.Post(
        "/v1/jobs/" + std::to_string(job) + "/ranks",
        {{"rank", rank}, {"pp_rank", rank}, {"dp_rank", 0}, {"frequencies_mhz", A100Clocks()}});
    EXPECT_EQ(reg.status, 200) << reg.body.dump();
  }
  return job;
}

// A job created without a blocking power profiles in the job: its state and
// /metrics show the slowest rank's progress; the blocking power its ranks
// measured (the median) goes into planning, and says where it came from.
TEST(ServerMeasuredTest, InJobProfilingShowsProgressAndPlansWithTheMeasuredBlockingPower) {
  const std::string db = TempPath("in_job.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJobWithoutBlockingPower(api);
  const std::string base = "/v1/jobs/" + std::to_string(job);
  for (int rank = 0; rank < 4; ++rank) {
    json r = Report(rank, 0, "profiling", 1, 100);
    r["profiling_progress"] = rank == 2 ? 0.25 : 0.5;
    Send(api, job, r);
  }
  json state = api.Call("GET", base).body;
  EXPECT_EQ(state["state"], "profiling");
  EXPECT_DOUBLE_EQ(state["progress"].get<double>(), 0.25);
  EXPECT_EQ(state["profiling"]["progress_by_rank"]["2"], 0.25);
  const std::string metrics = MetricsText(server.port());
  EXPECT_DOUBLE_EQ(Metric(metrics, "perseus_profiling_progress", job), 0.25);
  EXPECT_DOUBLE_EQ(Metric(metrics, "perseus_profiling_iterations_total", job), 4);
  // A CSV profile cannot say what the GPUs draw while they wait.
  Response csv = api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv");
  EXPECT_EQ(csv.status, 400);
  EXPECT_EQ(csv.body["field"], "blocking_power_w");
  const double watts[] = {80, 90, 82, 84};
  const std::vector<json> stages = StageMeasurements();
  for (int rank = 0; rank < 4; ++rank) {
    json body = {{"rank", rank}, {"measurements", stages[rank]}, {"blocking_power_w", watts[rank]}};
    Response r = api.Call("PUT", base + "/profile", body.dump());
    ASSERT_EQ(r.status, 202) << r.body.dump();
  }
  state = WaitReady(api, job);
  ASSERT_EQ(state["state"], "ready") << state.dump();
  EXPECT_EQ(state["blocking_power"], (json{{"w", 83.0}, {"source", "measured"}}));
  EXPECT_DOUBLE_EQ(Metric(MetricsText(server.port()), "perseus_profiling_progress", job), 1);
  unlink(db.c_str());
}

TEST(ServerMeasuredTest, NoBlockingPowerAnywhereFailsTheJobWithTheReason) {
  const std::string db = TempPath("in_job_no_power.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJobWithoutBlockingPower(api);
  const std::vector<json> stages = StageMeasurements();
  for (int rank = 0; rank < 4; ++rank) {
    json body = {{"rank", rank}, {"measurements", stages[rank]}};
    ASSERT_EQ(api.Call("PUT", "/v1/jobs/" + std::to_string(job) + "/profile", body.dump()).status,
              202);
  }
  json state = WaitReady(api, job);
  EXPECT_EQ(state["state"], "failed");
  EXPECT_NE(state.value("reason", "").find("no blocking power"), std::string::npos) << state.dump();
  unlink(db.c_str());
}

// A client of `rank` (pipeline rank `rank`) whose log lines go to *logs.
struct LoggedClients {
  std::vector<std::string> logs;
  std::mutex mu;
  std::unique_ptr<perseus::client::Client> Make(const std::string& server, int64_t job, int rank) {
    perseus::client::ClientOptions options;
    options.server = server;
    options.job_id = job;
    options.rank = rank;
    options.pp_rank = rank;
    options.frequencies_mhz = A100Clocks();
    options.poll_interval_s = 0.05;
    options.log = [this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu);
      logs.push_back(line);
    };
    return std::make_unique<perseus::client::Client>(options);
  }
};

// A stage's measurements (StageMeasurements) as the client submits them,
// without those `skip` says to leave out.
std::vector<perseus::client::MeasuredRow> ClientRows(
    const json& stage, const std::function<bool(perseus::planner::Instruction, int)>& skip = {}) {
  std::vector<perseus::client::MeasuredRow> rows;
  for (const json& m : stage) {
    perseus::planner::Instruction kind;
    EXPECT_TRUE(perseus::planner::ParseInstruction(m["instruction"].get<std::string>(), &kind));
    const int mhz = m["frequency_mhz"].get<int>();
    if (skip && skip(kind, mhz)) continue;
    rows.push_back({kind, mhz, m["time_s"].get<double>(), m["energy_j"].get<double>()});
  }
  return rows;
}

// A profile that lacks a row at the highest clock: the client whose upload
// completes it says the coordinator's warning in the job's log.
TEST(ClientMeasuredTest, TheProfilesWarningsReachTheTrainingJobsLog) {
  const std::string db = TempPath("client_warnings.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJobWithoutBlockingPower(api);
  const std::vector<json> stages = StageMeasurements();
  LoggedClients logged;
  std::vector<std::unique_ptr<perseus::client::Client>> clients;
  for (int rank = 0; rank < 4; ++rank) {
    clients.push_back(logged.Make(server.url(), job, rank));
    // Stage 2's forward was not measured at 1410 MHz.
    clients.back()->SubmitMeasurements(
        ClientRows(stages[rank],
                   [&](perseus::planner::Instruction kind, int mhz) {
                     return rank == 2 && kind == perseus::planner::Instruction::kForward &&
                            mhz == 1410;
                   }),
        80);
  }
  for (auto& c : clients) ASSERT_TRUE(c->WaitForPlan(0, 60));
  std::lock_guard<std::mutex> lock(logged.mu);
  int warned = 0;
  for (const std::string& line : logged.logs) {
    if (line.find("the coordinator warns about the job's profile") == std::string::npos) continue;
    ++warned;
    EXPECT_NE(line.find("stage 2 forward (at most 1395 MHz)"), std::string::npos) << line;
  }
  EXPECT_EQ(warned, 1);  // one upload completed the profile
  unlink(db.c_str());
}

// The client library's side: phases reach the report; a profile goes up from
// the background thread, and a refusal (the job already has its profile) is
// logged once and shown in measurements_status, not retried.
TEST(ClientMeasuredTest, PhasesAndMeasurementsGoThroughTheClient) {
  const std::string db = TempPath("client_measured.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJobWithoutBlockingPower(api);
  const std::vector<json> stages = StageMeasurements();
  LoggedClients logged;
  std::vector<std::string>& logs = logged.logs;
  std::mutex& mu = logged.mu;
  std::vector<std::unique_ptr<perseus::client::Client>> clients;
  for (int rank = 0; rank < 4; ++rank) {
    clients.push_back(logged.Make(server.url(), job, rank));
    EXPECT_EQ(clients.back()->measurements_status(), "none");
    clients.back()->SubmitMeasurements(ClientRows(stages[rank]), 80 + rank);
  }
  for (auto& c : clients) ASSERT_TRUE(c->WaitForPlan(0, 60));
  for (auto& c : clients) EXPECT_EQ(c->measurements_status(), "accepted");
  {
    // A complete profile at every clock: nothing to warn about.
    std::lock_guard<std::mutex> lock(mu);
    for (const std::string& line : logs) EXPECT_EQ(line.find("warns"), std::string::npos) << line;
  }
  json state = api.Call("GET", "/v1/jobs/" + std::to_string(job)).body;
  EXPECT_EQ(state["blocking_power"]["w"], 81.5);
  // Planned now: the same profile again is refused (409), and said so.
  clients[0]->SubmitMeasurements({{perseus::planner::Instruction::kForward, 1410, 1, 1}}, 80);
  for (int i = 0; i < 2000 && clients[0]->measurements_status() == "queued"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(clients[0]->measurements_status().rfind("refused: ", 0), 0u)
      << clients[0]->measurements_status();
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_FALSE(logs.empty());
    EXPECT_NE(logs.back().find("refused this rank's profile (HTTP 409)"), std::string::npos)
        << logs.back();
  }
  // Iteration reports with phases, through EndIteration.
  for (int rank = 0; rank < 4; ++rank) {
    clients[rank]->EndIteration(0, 1.0, 100, 0, {"baseline", 0, -1});
    clients[rank]->EndIteration(1, 1.0, 90, 0, {"planned", 1, -1});
  }
  json measured;
  for (int i = 0; i < 2000; ++i) {
    measured = api.Call("GET", "/v1/jobs/" + std::to_string(job) + "/report").body["measured"];
    if (measured["saving_pct"].is_number()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_NEAR(measured["saving_pct"].get<double>(), 10, 1e-9) << measured.dump();
  clients.clear();
  unlink(db.c_str());
}

}  // namespace
