// End-to-end tests of `perseus serve` on loopback: a real server process,
// killed with SIGKILL and restarted on the same database; and the client
// library against it.
#include "tests/support/server.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "perseus/client/client.h"
#include "tests/support/process.h"

namespace {

using nlohmann::json;
using perseus::testing::A100Clocks;
using perseus::testing::Api;
using perseus::testing::Child;
using perseus::testing::CreateJob;
using perseus::testing::kPerseus;
using perseus::testing::ProfileCsv;
using perseus::testing::Response;
using perseus::testing::ServerProcess;
using perseus::testing::TempPath;
using perseus::testing::WaitReady;

// The issue's must-show, end to end.
TEST(ServerTest, StragglerResponseSurvivesKill9) {
  const std::string db = TempPath("coordinator.db");
  json job_before, plan_before;
  int64_t job = 0;
  {
    ServerProcess server(db);
    ASSERT_GT(server.port(), 0);
    Api api(server.port());
    job = CreateJob(api);
    const std::string base = "/v1/jobs/" + std::to_string(job);
    Response put = api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv");
    ASSERT_EQ(put.status, 202) << put.body.dump();
    const json ready = WaitReady(api, job);
    ASSERT_EQ(ready["state"], "ready") << ready.dump();

    Response plan = api.Call("GET", base + "/plan?rank=5");  // pipeline 1, stage 1
    ASSERT_EQ(plan.status, 200);
    EXPECT_EQ(plan.body["version"], 1);
    const double t_min = plan.body["target_time"];
    EXPECT_EQ(plan.body["instructions"].size(), 16u);  // 8 forwards + 8 backwards
    // Polling an unchanged plan is a 304.
    Response same = api.Call("GET", base + "/plan?rank=5", "", "", {{"If-None-Match", plan.etag}});
    EXPECT_EQ(same.status, 304);
    EXPECT_EQ(api.Call("GET", base + "/plan?rank=5&since=1").status, 304);

    Response straggler = api.Post(base + "/stragglers", {{"pipeline", 0}, {"slowdown", 1.2}});
    ASSERT_EQ(straggler.status, 200) << straggler.body.dump();
    plan_before = api.Call("GET", base + "/plan?rank=5").body;
    EXPECT_EQ(plan_before["version"], 2);
    EXPECT_NEAR(plan_before["target_time"].get<double>(), 1.2 * t_min, 1e-9);
    EXPECT_NE(plan_before["instructions"], plan.body["instructions"]);  // a slower, cheaper plan
    // The straggler itself keeps running as fast as it can.
    const json straggler_plan = api.Call("GET", base + "/plan?rank=1").body;
    EXPECT_EQ(straggler_plan["version"], 1);
    EXPECT_NEAR(straggler_plan["target_time"].get<double>(), t_min, 1e-12);
    job_before = api.Call("GET", base).body;
    // The waiting pipeline's plan is the frontier's point for T' improved by the
    // discrete local search: never more energy than that point's.
    const json frontier = api.Call("GET", base + "/frontier").body;
    const json& waiting = job_before["pipelines"][1];
    const double point_energy =
        frontier["points"][waiting["frontier_point"].get<size_t>()][1].get<double>();
    EXPECT_LE(waiting["energy_j"].get<double>(), point_energy + 1e-9);
    EXPECT_LE(job_before["pipelines"][0]["energy_j"].get<double>(),
              frontier["points"][frontier["t_min_index"].get<size_t>()][1].get<double>() + 1e-9);
    server.Kill9();
  }
  ServerProcess restarted(db);
  Api api(restarted.port());
  const std::string base = "/v1/jobs/" + std::to_string(job);
  const json job_after = api.Call("GET", base).body;
  EXPECT_EQ(job_after["state"], "ready");
  EXPECT_EQ(job_after["pipelines"], job_before["pipelines"]);
  EXPECT_EQ(job_after["stragglers"], job_before["stragglers"]);
  EXPECT_EQ(job_after["ranks_registered"], 8);
  EXPECT_EQ(api.Call("GET", base + "/plan?rank=5").body, plan_before);

  // The straggler recovers: the other pipeline goes back to the fastest plan.
  Response recovered = api.Call("DELETE", base + "/stragglers/0");
  ASSERT_EQ(recovered.status, 200) << recovered.body.dump();
  const json plan = api.Call("GET", base + "/plan?rank=5").body;
  EXPECT_EQ(plan["version"], 3);
  EXPECT_LT(plan["target_time"].get<double>(), plan_before["target_time"].get<double>());
  EXPECT_EQ(restarted.Term(), 0);
  unlink(db.c_str());
}

// Plan mismatches the ranks report: summed per job, with the iteration reports
// that had any, in /report and /metrics; a retry replaces; all of it survives
// kill -9; bad counts are a 400 naming the field and change nothing.
TEST(ServerTest, PlanMismatchesReachReportAndMetricsAndSurviveKill9) {
  const std::string db = TempPath("mismatches.db");
  int64_t job = 0, quiet = 0;
  auto report = [](Api& api, int64_t id, int rank, int iteration, json mismatches) {
    json body = {{"rank", rank}, {"iteration", iteration}, {"time_s", 1.5}, {"energy_j", 100}};
    if (!mismatches.is_discarded()) body["mismatches"] = mismatches;
    return api.Post("/v1/jobs/" + std::to_string(id) + "/iterations", body);
  };
  const json absent = json::value_t::discarded;
  auto metrics = [](const ServerProcess& server) {
    httplib::Client raw("127.0.0.1", server.port());
    auto r = raw.Get("/metrics");
    return r ? r->body : std::string();
  };
  auto expect_counts = [&](Api& api, const ServerProcess& server, int64_t total,
                           int64_t iterations) {
    const json body = api.Call("GET", "/v1/jobs/" + std::to_string(job) + "/report").body;
    EXPECT_EQ(body["plan_mismatches"], total) << body.dump();
    EXPECT_EQ(body["iterations_with_mismatches"], iterations) << body.dump();
    const std::string text = metrics(server);
    const std::string id = std::to_string(job), other = std::to_string(quiet);
    EXPECT_NE(text.find("# TYPE perseus_plan_mismatches_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE perseus_iterations_with_mismatches_total counter\n"),
              std::string::npos);
    EXPECT_NE(text.find("\nperseus_plan_mismatches_total{job=\"" + id + "\"} " +
                        std::to_string(total) + "\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("\nperseus_iterations_with_mismatches_total{job=\"" + id + "\"} " +
                        std::to_string(iterations) + "\n"),
              std::string::npos)
        << text;
    // A job without mismatches shows zeros.
    EXPECT_NE(text.find("\nperseus_plan_mismatches_total{job=\"" + other + "\"} 0\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("\nperseus_iterations_with_mismatches_total{job=\"" + other + "\"} 0\n"),
              std::string::npos)
        << text;
  };
  {
    ServerProcess server(db);
    ASSERT_GT(server.port(), 0);
    Api api(server.port());
    job = CreateJob(api);
    quiet = CreateJob(api, 1);
    ASSERT_EQ(report(api, quiet, 0, 0, 0).status, 200);
    ASSERT_EQ(report(api, job, 0, 0, 3).status, 200);
    ASSERT_EQ(report(api, job, 1, 0, 0).status, 200);
    ASSERT_EQ(report(api, job, 2, 0, absent).status, 200);  // optional: none
    ASSERT_EQ(report(api, job, 0, 1, 1).status, 200);
    ASSERT_EQ(report(api, job, 0, 1, 2).status, 200);  // a retry replaces: 2, not 1 + 2
    ASSERT_EQ(report(api, job, 5, 1, 4).status, 200);
    ASSERT_EQ(report(api, job, 5, 1, 0).status, 200);  // replaced by none
    expect_counts(api, server, 5, 2);
    EXPECT_EQ(api.Call("GET", "/v1/jobs/" + std::to_string(job) + "/report").body["reports"], 5);

    // Anything but a non-negative integer is refused, naming the field, and changes nothing.
    for (const json& bad : {json(-1), json(1.5), json("3"), json(true), json::array({1}),
                            json(int64_t{1000000001}), json(uint64_t{18446744073709551615u})}) {
      Response r = report(api, job, 3, 0, bad);
      EXPECT_EQ(r.status, 400) << bad.dump() << " " << r.body.dump();
      EXPECT_EQ(r.body.value("field", ""), "mismatches") << bad.dump() << " " << r.body.dump();
      EXPECT_NE(r.body.value("error", "").find("'mismatches'"), std::string::npos) << r.body.dump();
    }
    expect_counts(api, server, 5, 2);
    server.Kill9();
  }
  ServerProcess restarted(db);
  ASSERT_GT(restarted.port(), 0);
  Api api(restarted.port());
  expect_counts(api, restarted, 5, 2);
  // Counting goes on from the stored figures.
  ASSERT_EQ(report(api, job, 7, 2, 1).status, 200);
  expect_counts(api, restarted, 6, 3);
  EXPECT_EQ(restarted.Term(), 0);
  unlink(db.c_str());
}

// A database written before reports carried mismatches (no such column) is
// upgraded when the server opens it: its reports count as none.
TEST(ServerTest, DatabaseWithoutMismatchesColumnIsUpgraded) {
  const std::string sqlite = "/usr/bin/sqlite3";
  if (access(sqlite.c_str(), X_OK) != 0) GTEST_SKIP() << "needs the sqlite3 command";
  const std::string db = TempPath("old_schema.db");
  {
    ServerProcess server(db);  // every table as this version makes it
    Api api(server.port());
    const int64_t job = CreateJob(api, 1);
    ASSERT_EQ(job, 1);
    ASSERT_EQ(api.Post("/v1/jobs/1/iterations",
                       {{"rank", 0}, {"iteration", 0}, {"time_s", 1}, {"energy_j", 50}})
                  .status,
              200);
    EXPECT_EQ(server.Term(), 0);
  }
  // The iterations table as the previous version made it, with one report.
  Child old_schema(
      {sqlite, db,
       "DROP TABLE iterations; CREATE TABLE iterations(job_id INTEGER NOT NULL, rank INTEGER "
       "NOT NULL, iteration INTEGER NOT NULL, time_s REAL NOT NULL, energy_j REAL NOT NULL, "
       "PRIMARY KEY(job_id, rank, iteration)); INSERT INTO iterations VALUES(1, 0, 0, 1, 50);"},
      {});
  ASSERT_EQ(old_schema.Wait(), 0);
  ServerProcess server(db);
  ASSERT_GT(server.port(), 0);
  Api api(server.port());
  json report = api.Call("GET", "/v1/jobs/1/report").body;
  EXPECT_EQ(report["reports"], 1) << report.dump();
  EXPECT_EQ(report["plan_mismatches"], 0);
  ASSERT_EQ(
      api.Post("/v1/jobs/1/iterations",
               {{"rank", 1}, {"iteration", 0}, {"time_s", 1}, {"energy_j", 50}, {"mismatches", 2}})
          .status,
      200);
  report = api.Call("GET", "/v1/jobs/1/report").body;
  EXPECT_EQ(report["reports"], 2);
  EXPECT_EQ(report["plan_mismatches"], 2);
  EXPECT_EQ(report["iterations_with_mismatches"], 1);
  EXPECT_EQ(server.Term(), 0);
  unlink(db.c_str());
}

// What looks wrong in a profile (here: stage 0's forward has no row at the
// highest frequency) is in the reply that completes it and in the job's view,
// also after a restart.
TEST(ServerTest, AProfilesWarningsAreShownAndKept) {
  const std::string db = TempPath("warnings.db");
  std::string profile;
  {
    std::istringstream in(ProfileCsv(4));
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("0,forward,1410,", 0) != 0) profile += line + "\n";
    }
  }
  auto expect_warning = [](const json& warnings) {
    ASSERT_TRUE(warnings.is_array()) << warnings.dump();
    ASSERT_EQ(warnings.size(), 1u) << warnings.dump();
    EXPECT_NE(warnings[0].get<std::string>().find(
                  "1 computation(s) have no row at the profile's highest frequency, 1410 MHz: "
                  "stage 0 forward (at most 1395 MHz)"),
              std::string::npos)
        << warnings.dump();
  };
  int64_t job = 0;
  {
    ServerProcess server(db);
    Api api(server.port());
    job = CreateJob(api, 1);
    EXPECT_EQ(api.Call("GET", "/v1/jobs/" + std::to_string(job)).body["warnings"], json::array());
    Response put =
        api.Call("PUT", "/v1/jobs/" + std::to_string(job) + "/profile", profile, "text/csv");
    ASSERT_EQ(put.status, 202) << put.body.dump();
    expect_warning(put.body["warnings"]);
    expect_warning(WaitReady(api, job)["warnings"]);
    EXPECT_EQ(server.Term(), 0);
  }
  ServerProcess restarted(db);
  Api api(restarted.port());
  expect_warning(api.Call("GET", "/v1/jobs/" + std::to_string(job)).body["warnings"]);
  EXPECT_EQ(restarted.Term(), 0);
  unlink(db.c_str());
}

TEST(ServerTest, PlanningInterruptedByACrashIsRedone) {
  const std::string db = TempPath("crash.db");
  int64_t job = 0;
  {
    ServerProcess server(db);
    Api api(server.port());
    // A job large enough that planning is still running when the server dies.
    Response r = api.Post("/v1/jobs", {{"name", "big"},
                                       {"stages", 8},
                                       {"microbatches", 48},
                                       {"blocking_power_w", 83.64},
                                       {"unit_time", 0.0005}});
    job = r.body["job_id"];
    ASSERT_EQ(
        api.Call("PUT", "/v1/jobs/" + std::to_string(job) + "/profile", ProfileCsv(8), "text/csv")
            .status,
        202);
    server.Kill9();
  }
  ServerProcess restarted(db);
  Api api(restarted.port());
  const json state = api.Call("GET", "/v1/jobs/" + std::to_string(job)).body;
  EXPECT_TRUE(state["state"] == "planning" || state["state"] == "ready") << state.dump();
  EXPECT_EQ(WaitReady(api, job)["state"], "ready");
  unlink(db.c_str());
}

TEST(ServerTest, PerRankMeasurementsBecomeTheProfile) {
  const std::string db = TempPath("measured.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJob(api, 1);
  const std::string base = "/v1/jobs/" + std::to_string(job);
  const std::vector<json> per_stage = perseus::testing::StageMeasurements();
  for (int stage = 0; stage < 4; ++stage) {
    Response r = api.Call("PUT", base + "/profile",
                          json{{"rank", stage}, {"measurements", per_stage[stage]}}.dump());
    ASSERT_EQ(r.status, 202) << r.body.dump();
    EXPECT_EQ(r.body["state"], stage < 3 ? "profiling" : "planning");
  }
  EXPECT_EQ(WaitReady(api, job)["state"], "ready");
  unlink(db.c_str());
}

std::string TorchCsv(const std::string& name) {
  std::ifstream in(PERSEUS_DATA_DIR "/schedules/torch-2.13/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A job whose schedule is torch's DualPipeV CSV: stages and microbatches come
// from it, the plan names the overlapped computations, and the client finds
// them; all of it survives a restart.
TEST(ServerTest, ScheduleCsvJobPlansDualPipeV) {
  const std::string db = TempPath("schedule_csv.db");
  const std::string csv = TorchCsv("DualPipeV.compute_comms.csv");
  ASSERT_GT(csv.size(), 1000u);
  int64_t job = 0;
  json plan_before;
  {
    ServerProcess server(db);
    Api api(server.port());
    Response created = api.Post(
        "/v1/jobs", {{"name", "dualpipev"}, {"schedule_csv", csv}, {"blocking_power_w", 83.64}});
    ASSERT_EQ(created.status, 201) << created.body.dump();
    job = created.body["job_id"];
    const std::string base = "/v1/jobs/" + std::to_string(job);
    const json state = api.Call("GET", base).body;
    EXPECT_EQ(state["config"]["schedule"], "csv");
    EXPECT_EQ(state["config"]["schedule_csv"], csv);
    EXPECT_EQ(state["config"]["stages"], 4);
    EXPECT_EQ(state["config"]["microbatches"], 8);
    EXPECT_EQ(state["config"]["virtual_stages"], 2);
    EXPECT_EQ(state["ranks_expected"], 4);
    for (int rank = 0; rank < 4; ++rank) {
      ASSERT_EQ(api.Post(base + "/ranks", {{"rank", rank},
                                           {"pp_rank", rank},
                                           {"dp_rank", 0},
                                           {"frequencies_mhz", A100Clocks()}})
                    .status,
                200);
    }
    ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(8), "text/csv").status, 202);
    ASSERT_EQ(WaitReady(api, job)["state"], "ready");

    Response plan = api.Call("GET", base + "/plan?rank=0");
    ASSERT_EQ(plan.status, 200) << plan.body.dump();
    // Rank 0 of torch's DualPipeV: ... 7F3 (0F7;7B3)OVERLAP_F_B (7F4;0B0)OVERLAP_F_B 7B4 ...
    const json& steps = plan.body["instructions"];
    size_t first = steps.size();
    int overlaps = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      EXPECT_EQ(steps[i].contains("backward"), steps[i]["kind"] == "overlap_f_b");
      if (steps[i]["kind"] == "overlap_f_b" && overlaps++ == 0) first = i;
    }
    EXPECT_EQ(overlaps, 5);
    ASSERT_LT(first + 1, steps.size());
    EXPECT_EQ(steps[first - 1]["kind"], "forward");
    EXPECT_EQ(steps[first - 1]["stage"], 7);
    EXPECT_EQ(steps[first - 1]["microbatch"], 3);
    EXPECT_EQ(steps[first]["stage"], 0);
    EXPECT_EQ(steps[first]["microbatch"], 7);
    EXPECT_EQ(steps[first]["backward"],
              (json{{"kind", "backward"}, {"stage", 7}, {"microbatch", 3}}));
    EXPECT_EQ(steps[first + 1]["kind"], "overlap_f_b");
    EXPECT_EQ(steps[first + 1]["stage"], 7);
    EXPECT_EQ(steps[first + 1]["backward"],
              (json{{"kind", "backward"}, {"stage", 0}, {"microbatch", 0}}));
    plan_before = plan.body;

    perseus::client::ClientOptions options;
    options.server = server.url();
    options.job_id = job;
    options.rank = 0;
    options.pp_rank = 0;
    options.frequencies_mhz = A100Clocks();
    options.poll_interval_s = 30;
    perseus::client::Client client(options);
    ASSERT_TRUE(client.WaitForPlan(0, 20));
    const auto planned = client.instructions();
    ASSERT_EQ(planned.size(), steps.size());
    ASSERT_TRUE(planned[first].overlapped());
    EXPECT_EQ(planned[first].kind, perseus::planner::Instruction::kForward);
    EXPECT_EQ(planned[first].stage, 0);
    EXPECT_EQ(planned[first].microbatch, 7);
    EXPECT_EQ(planned[first].backward->kind, perseus::planner::Instruction::kBackward);
    EXPECT_EQ(planned[first].backward->stage, 7);
    EXPECT_EQ(planned[first].backward->microbatch, 3);
    EXPECT_FALSE(planned[first - 1].overlapped());
    const int mhz = steps[first]["frequency_mhz"];
    EXPECT_EQ(client.FrequencyForOverlap(7, 0), mhz);
    EXPECT_EQ(client.FrequencyForOverlap(7), mhz);
    // Each half is found by itself too: the pair runs at one clock.
    EXPECT_EQ(client.FrequencyFor(perseus::planner::Instruction::kForward, 7, 0), mhz);
    EXPECT_EQ(client.FrequencyFor(perseus::planner::Instruction::kBackward, 3, 7), mhz);
    EXPECT_EQ(client.FrequencyFor(perseus::planner::Instruction::kForward, 3, 7),
              steps[first - 1]["frequency_mhz"].get<int>());
    // No such overlap: the highest clock.
    EXPECT_EQ(client.FrequencyForOverlap(3, 7), 1410);
    EXPECT_EQ(client.FrequencyForOverlap(99), 1410);
    server.Kill9();
  }
  ServerProcess restarted(db);
  Api api(restarted.port());
  const std::string base = "/v1/jobs/" + std::to_string(job);
  const json state = api.Call("GET", base).body;
  EXPECT_EQ(state["state"], "ready") << state.dump();
  EXPECT_EQ(state["config"]["schedule_csv"], csv);
  EXPECT_EQ(api.Call("GET", base + "/plan?rank=0").body, plan_before);
  EXPECT_EQ(restarted.Term(), 0);
  unlink(db.c_str());
}

TEST(ServerTest, BadScheduleCsvGetsAFourHundredNamingIt) {
  const std::string db = TempPath("bad_schedule_csv.db");
  ServerProcess server(db);
  Api api(server.port());
  const std::string good = TorchCsv("1F1B.csv");
  auto post = [&](json extra) {
    json body = {{"name", "x"}, {"blocking_power_w", 1}};
    for (auto& [k, v] : extra.items()) body[k] = v;
    return api.Post("/v1/jobs", body);
  };
  auto expect = [](const Response& r, const std::string& field, const std::string& text) {
    EXPECT_EQ(r.status, 400) << r.body.dump();
    EXPECT_EQ(r.body.value("field", ""), field) << r.body.dump();
    EXPECT_NE(r.body.value("error", "").find(text), std::string::npos) << r.body.dump();
  };
  expect(post({{"schedule_csv", 12}}), "schedule_csv", "must be a string");
  expect(post({{"schedule_csv", ""}}), "schedule_csv", "must not be empty");
  expect(post({{"schedule_csv", "0F0,(0F1)OVERLAP_F_B\n"}}), "schedule_csv",
         "field 'schedule_csv' is not a valid schedule: schedule_csv:1: column 2: "
         "'(0F1)OVERLAP_F_B' is not an overlapped action");
  expect(post({{"schedule_csv", "0F0,0B0\n1B0,1F0\n"}}), "schedule_csv",
         "is not a valid schedule: the schedule deadlocks");
  expect(post({{"schedule_csv", "(0F0;0B0)OVERLAP_F_B\n"}}), "schedule_csv",
         "its backward half 0B0 waits for its other half 0F0");
  expect(post({{"schedule_csv", std::string(4 * 1024 * 1024 + 1, ',')}}), "schedule_csv",
         "at most 4 MB");
  expect(post({{"schedule_csv", good}, {"stages", 3}}), "stages", "is 3 but schedule_csv has 4");
  expect(post({{"schedule_csv", good}, {"microbatches", 4}}), "microbatches",
         "is 4 but schedule_csv has 8");
  expect(post({{"schedule_csv", good}, {"schedule", "gpipe"}}), "schedule", "absent or \"csv\"");
  expect(post({{"schedule", "csv"}, {"stages", 4}, {"microbatches", 8}}), "schedule",
         "no schedule_csv");
  // Matching shape fields are fine, and so is schedule "csv".
  Response ok =
      post({{"schedule_csv", good}, {"stages", 4}, {"microbatches", 8}, {"schedule", "csv"}});
  EXPECT_EQ(ok.status, 201) << ok.body.dump();
}

TEST(ServerTest, BearerTokenIsRequired) {
  const std::string db = TempPath("auth.db");
  const std::string token_file = TempPath("token");
  std::ofstream(token_file) << "s3cret-token\n";
  ServerProcess server(db, token_file);
  Api anonymous(server.port());
  Response r = anonymous.Post("/v1/jobs", {{"name", "x"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(r.body.contains("error"));
  EXPECT_EQ(Api(server.port(), "wrong").Post("/v1/jobs", {{"name", "x"}}).status, 401);
  EXPECT_EQ(anonymous.Call("GET", "/healthz").status, 200);  // health stays open
  Api api(server.port(), "s3cret-token");
  EXPECT_EQ(api.Post("/v1/jobs",
                     {{"name", "x"}, {"stages", 2}, {"microbatches", 2}, {"blocking_power_w", 80}})
                .status,
            201);
  unlink(db.c_str());
  unlink(token_file.c_str());
}

TEST(ServerTest, BadInputGetsAClearFourHundred) {
  const std::string db = TempPath("bad.db");
  ServerProcess server(db);
  Api api(server.port());
  auto expect = [](const Response& r, int status, const std::string& field) {
    EXPECT_EQ(r.status, status) << r.body.dump();
    EXPECT_TRUE(r.body.is_object() && r.body.contains("error")) << r.body.dump();
    if (!field.empty()) {
      EXPECT_EQ(r.body.value("field", ""), field) << r.body.dump();
    }
  };
  expect(api.Call("POST", "/v1/jobs", "{not json"), 400, "");
  expect(api.Call("POST", "/v1/jobs", "[1,2]"), 400, "");
  expect(api.Post("/v1/jobs", {{"name", "x"}, {"microbatches", 2}, {"blocking_power_w", 1}}), 400,
         "stages");
  expect(api.Post("/v1/jobs",
                  {{"name", "x"}, {"stages", "4"}, {"microbatches", 2}, {"blocking_power_w", 1}}),
         400, "stages");
  expect(api.Post("/v1/jobs", {{"name", "x"},
                               {"stages", 4},
                               {"microbatches", 2},
                               {"blocking_power_w", 1},
                               {"schedule", "nope"}}),
         400, "schedule");
  expect(api.Call("GET", "/v1/jobs/999"), 404, "");
  expect(api.Call("GET", "/v1/nothing"), 404, "");
  const int64_t job = CreateJob(api);
  const std::string base = "/v1/jobs/" + std::to_string(job);
  expect(api.Post(base + "/ranks",
                  {{"rank", 8}, {"pp_rank", 0}, {"dp_rank", 0}, {"frequencies_mhz", {1410}}}),
         400, "rank");
  // Same rank, different data: conflict.
  expect(api.Post(base + "/ranks",
                  {{"rank", 0}, {"pp_rank", 1}, {"dp_rank", 0}, {"frequencies_mhz", A100Clocks()}}),
         409, "rank");
  expect(api.Call("GET", base + "/plan?rank=0"), 409, "");  // not planned yet
  expect(api.Call("GET", base + "/plan?rank=abc"), 400, "rank");
  expect(api.Call("GET", base + "/plan?rank=99"), 400, "rank");
  expect(api.Call("PUT", base + "/profile",
                  "stage,instruction,frequency,time,energy\n0,forward,x,1,1\n", "text/csv"),
         400, "profile");
  expect(api.Call("PUT", base + "/profile",
                  json{{"rank", 0},
                       {"measurements",
                        {{{"instruction", "forward"},
                          {"frequency_mhz", 1000},
                          {"time_s", 1},
                          {"energy_j", 1}}}}}
                      .dump()),
         400, "frequency_mhz");
  expect(api.Post(base + "/stragglers", {{"pipeline", 0}, {"slowdown", 1.2}}), 409, "");
  {
    // A profile frequency a registered rank's GPU lacks.
    Response created = api.Post(
        "/v1/jobs",
        {{"name", "few clocks"}, {"stages", 4}, {"microbatches", 4}, {"blocking_power_w", 80}});
    const std::string other = "/v1/jobs/" + std::to_string(created.body["job_id"].get<int64_t>());
    ASSERT_EQ(api.Post(other + "/ranks",
                       {{"rank", 0}, {"pp_rank", 0}, {"dp_rank", 0}, {"frequencies_mhz", {1410}}})
                  .status,
              200);
    Response r = api.Call("PUT", other + "/profile", ProfileCsv(4), "text/csv");
    expect(r, 400, "frequency");
    EXPECT_EQ(r.body["error"], "profile:4: 1395 MHz is not among rank 0's supported frequencies");
  }
  const std::string huge(40u << 20, 'x');
  Response big = api.Call("POST", "/v1/jobs", huge);
  EXPECT_EQ(big.status, 413);
  // Then plan and check the straggler and iteration fields.
  ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv").status, 202);
  ASSERT_EQ(WaitReady(api, job)["state"], "ready");
  expect(api.Post(base + "/stragglers", {{"pipeline", 2}, {"slowdown", 1.2}}), 400, "pipeline");
  expect(api.Post(base + "/stragglers", {{"pipeline", 0}, {"slowdown", 0.5}}), 400, "slowdown");
  expect(api.Post(base + "/stragglers", {{"pipeline", 0}}), 400, "slowdown");
  expect(api.Call("DELETE", base + "/stragglers/1"), 404, "pipeline");
  expect(api.Post(base + "/iterations",
                  {{"rank", 0}, {"iteration", 0}, {"time_s", -1}, {"energy_j", 1}}),
         400, "time_s");
  EXPECT_EQ(api.Post(base + "/iterations",
                     {{"rank", 0}, {"iteration", 0}, {"time_s", 1.5}, {"energy_j", 900}})
                .status,
            200);
  const json report = api.Call("GET", base + "/report").body;
  EXPECT_EQ(report["reports"], 1);
  EXPECT_DOUBLE_EQ(report["reported_energy_j"].get<double>(), 900);
  EXPECT_GT(report["planned_saving_pct"].get<double>(), 0);
  unlink(db.c_str());
}

// Random mutations of valid requests on every route: the server answers each
// with a status below 500 and keeps serving.
TEST(ServerTest, FuzzedRequestsNeverCrashTheServer) {
  const std::string db = TempPath("fuzz.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJob(api);
  const std::string base = "/v1/jobs/" + std::to_string(job);
  ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv").status, 202);
  ASSERT_EQ(WaitReady(api, job)["state"], "ready");
  struct Seed {
    std::string method, path, body, type;
  };
  const std::vector<Seed> seeds = {
      {"POST", "/v1/jobs",
       R"({"name":"f","stages":2,"microbatches":2,"dp":1,"blocking_power_w":80})",
       "application/json"},
      {"POST", base + "/ranks",
       R"({"rank":0,"pp_rank":0,"dp_rank":0,"tp_rank":0,"gpu_name":"g","frequencies_mhz":[1410]})",
       "application/json"},
      {"PUT", base + "/profile", ProfileCsv(1).substr(0, 300), "text/csv"},
      {"PUT", base + "/profile",
       R"({"rank":0,"measurements":[{"instruction":"forward","frequency_mhz":1410,"time_s":1,"energy_j":1}]})",
       "application/json"},
      {"POST", base + "/stragglers", R"({"pipeline":1,"slowdown":1.1})", "application/json"},
      {"POST", base + "/stragglers", R"({"pipeline":0,"iteration_time":3.5})", "application/json"},
      {"POST", base + "/iterations",
       R"({"rank":3,"iteration":7,"time_s":1.0,"energy_j":5.0,"mismatches":2})",
       "application/json"},
      {"GET", base + "/plan?rank=2&since=1", "", ""},
      {"DELETE", base + "/stragglers/1", "", ""},
  };
  std::mt19937 rng(42);
  int served = 0;
  for (int round = 0; round < 2000; ++round) {
    Seed s = seeds[rng() % seeds.size()];
    std::string& target = rng() % 4 == 0 ? s.path : s.body;
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < mutations && !target.empty(); ++m) {
      const size_t at = rng() % target.size();
      switch (rng() % 3) {
        case 0:
          target[at] = static_cast<char>(rng() % 256);
          break;
        case 1:
          target.erase(at, 1 + rng() % 8);
          break;
        default:
          target.insert(at, std::string(1 + rng() % 3, "{}[]\",:-09e."[rng() % 12]));
          break;
      }
    }
    if (s.path.empty() || s.path[0] != '/') s.path = "/" + s.path;
    Response r = api.Call(s.method, s.path, s.body, s.type.empty() ? "application/json" : s.type);
    if (r.status == 0) continue;  // a path httplib refuses to send
    ++served;
    EXPECT_LT(r.status, 500) << s.method << " " << s.path << " " << s.body;
  }
  EXPECT_GT(served, 1800);
  EXPECT_EQ(api.Call("GET", "/healthz").status, 200);
  EXPECT_EQ(api.Call("GET", base).body["state"], "ready");
  unlink(db.c_str());
}

// Automatic straggler detection from the iteration reports: pipeline 1 slow in
// K = 3 consecutive iterations is declared (the other pipeline's plan moves to
// its pace), survives kill -9 as a detected straggler, and K normal iterations
// clear it (back to the fastest plan); counted in /metrics; a manual straggler
// is never cleared by detection.
TEST(ServerTest, StragglersAreDetectedFromIterationReportsAndRecover) {
  const std::string db = TempPath("detection.db");
  int64_t job = 0;
  double t_min = 0;
  // Every rank of `iteration`; pipeline p's ranks take up to times[p] (stage 0 the longest).
  auto report = [](Api& api, int64_t id, int iteration, std::array<double, 2> times) {
    for (int rank = 0; rank < 8; ++rank) {
      const double t = times[static_cast<size_t>(rank / 4)] * (1 - 0.001 * (rank % 4));
      Response r =
          api.Post("/v1/jobs/" + std::to_string(id) + "/iterations",
                   {{"rank", rank}, {"iteration", iteration}, {"time_s", t}, {"energy_j", 100}});
      ASSERT_EQ(r.status, 200) << r.body.dump();
    }
  };
  auto plan = [](Api& api, int64_t id, int rank) {
    return api.Call("GET", "/v1/jobs/" + std::to_string(id) + "/plan?rank=" + std::to_string(rank))
        .body;
  };
  auto counters = [](const ServerProcess& server, int64_t id) {
    httplib::Client raw("127.0.0.1", server.port());
    auto r = raw.Get("/metrics");
    const std::string text = r ? r->body : std::string();
    EXPECT_NE(text.find("# TYPE perseus_stragglers_detected_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("# TYPE perseus_stragglers_recovered_total counter\n"), std::string::npos);
    auto value = [&](const std::string& name) {
      const std::string key = "\n" + name + "{job=\"" + std::to_string(id) + "\"} ";
      const size_t at = text.find(key);
      return at == std::string::npos ? -1 : std::atoi(text.c_str() + at + key.size());
    };
    return std::make_pair(value("perseus_stragglers_detected_total"),
                          value("perseus_stragglers_recovered_total"));
  };
  {
    ServerProcess server(db);
    ASSERT_GT(server.port(), 0);
    Api api(server.port());
    job = CreateJob(api);
    const std::string base = "/v1/jobs/" + std::to_string(job);
    ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv").status, 202);
    const json ready = WaitReady(api, job);
    ASSERT_EQ(ready["state"], "ready") << ready.dump();
    EXPECT_EQ(ready["config"]["straggler_detection"], true);
    EXPECT_EQ(ready["config"]["straggler_threshold"], 0.05);
    EXPECT_EQ(ready["config"]["straggler_iterations"], 3);
    const json fastest = plan(api, job, 0);
    ASSERT_EQ(fastest["version"], 1);
    t_min = fastest["target_time"];
    const double slow = 1.3 * t_min;

    // Noise below the threshold, then K - 1 slow iterations: nothing.
    report(api, job, 0, {t_min, 1.03 * t_min});
    report(api, job, 1, {t_min, slow});
    report(api, job, 2, {t_min, slow});
    EXPECT_EQ(plan(api, job, 0)["version"], 1);
    EXPECT_EQ(api.Call("GET", base).body["stragglers"].size(), 0u);
    EXPECT_EQ(counters(server, job), std::make_pair(0, 0));
    // An iteration not every rank reported yet is not judged.
    ASSERT_EQ(api.Post(base + "/iterations",
                       {{"rank", 4}, {"iteration", 3}, {"time_s", slow}, {"energy_j", 100}})
                  .status,
              200);
    EXPECT_EQ(plan(api, job, 0)["version"], 1);
    // The K-th: declared; the other pipeline slows to its pace.
    report(api, job, 3, {t_min, slow});
    const json moved = plan(api, job, 0);
    EXPECT_EQ(moved["version"], 2);
    EXPECT_GE(moved["target_time"].get<double>(), slow * (1 - 1e-9));
    EXPECT_NE(moved["instructions"], fastest["instructions"]);
    EXPECT_EQ(plan(api, job, 4)["version"], 1);  // the straggler keeps its fastest plan
    const json declared = api.Call("GET", base).body;
    ASSERT_EQ(declared["stragglers"].size(), 1u) << declared.dump();
    EXPECT_EQ(declared["stragglers"][0]["pipeline"], 1);
    EXPECT_EQ(declared["stragglers"][0]["source"], "detected");
    EXPECT_NEAR(declared["stragglers"][0]["t_prime_s"].get<double>(), slow, 1e-9);
    EXPECT_EQ(counters(server, job), std::make_pair(1, 0));
    server.Kill9();
  }
  ServerProcess restarted(db);
  ASSERT_GT(restarted.port(), 0);
  Api api(restarted.port());
  const std::string base = "/v1/jobs/" + std::to_string(job);
  const json after = api.Call("GET", base).body;
  ASSERT_EQ(after["stragglers"].size(), 1u) << after.dump();
  EXPECT_EQ(after["stragglers"][0]["source"], "detected");
  EXPECT_EQ(plan(api, job, 0)["version"], 2);

  // Pipeline 0 now runs at the straggler's pace; pipeline 1 is back to normal.
  report(api, job, 4, {1.3 * t_min, t_min});
  report(api, job, 5, {1.3 * t_min, t_min});
  EXPECT_EQ(plan(api, job, 0)["version"], 2);  // K - 1 normal iterations: still a straggler
  report(api, job, 6, {1.3 * t_min, t_min});
  const json back = plan(api, job, 0);
  EXPECT_EQ(back["version"], 3);
  EXPECT_NEAR(back["target_time"].get<double>(), t_min, 1e-12);
  EXPECT_EQ(api.Call("GET", base).body["stragglers"].size(), 0u);
  EXPECT_EQ(counters(restarted, job), std::make_pair(0, 1));  // counted since this start

  // A manual straggler is not cleared by detection; a DELETE still clears it.
  ASSERT_EQ(api.Post(base + "/stragglers", {{"pipeline", 1}, {"slowdown", 1.2}}).status, 200);
  for (int i = 7; i < 13; ++i) report(api, job, i, {1.2 * t_min, t_min});
  const json manual = api.Call("GET", base).body;
  ASSERT_EQ(manual["stragglers"].size(), 1u) << manual.dump();
  EXPECT_EQ(manual["stragglers"][0]["source"], "manual");
  EXPECT_EQ(api.Call("DELETE", base + "/stragglers/1").status, 200);
  EXPECT_EQ(counters(restarted, job), std::make_pair(0, 1));
  EXPECT_EQ(restarted.Term(), 0);
  unlink(db.c_str());
}

// straggler_detection: false turns detection off; a dp = 1 job never detects.
TEST(ServerTest, StragglerDetectionCanBeTurnedOff) {
  const std::string db = TempPath("detection_off.db");
  ServerProcess server(db);
  Api api(server.port());
  Response created = api.Post("/v1/jobs", {{"name", "off"},
                                           {"stages", 4},
                                           {"microbatches", 8},
                                           {"dp", 2},
                                           {"blocking_power_w", 83.64},
                                           {"straggler_detection", false},
                                           {"straggler_threshold", 0.5},
                                           {"straggler_iterations", 1}});
  ASSERT_EQ(created.status, 201) << created.body.dump();
  const int64_t job = created.body["job_id"];
  const std::string base = "/v1/jobs/" + std::to_string(job);
  for (int rank = 0; rank < 8; ++rank) {
    ASSERT_EQ(api.Post(base + "/ranks", {{"rank", rank},
                                         {"pp_rank", rank % 4},
                                         {"dp_rank", rank / 4},
                                         {"gpu_name", "NVIDIA A100-SXM4-80GB"},
                                         {"frequencies_mhz", A100Clocks()}})
                  .status,
              200);
  }
  ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv").status, 202);
  const json ready = WaitReady(api, job);
  ASSERT_EQ(ready["state"], "ready");
  EXPECT_EQ(ready["config"]["straggler_detection"], false);
  EXPECT_EQ(ready["config"]["straggler_threshold"], 0.5);
  EXPECT_EQ(ready["config"]["straggler_iterations"], 1);
  for (int i = 0; i < 5; ++i) {
    for (int rank = 0; rank < 8; ++rank) {
      ASSERT_EQ(api.Post(base + "/iterations", {{"rank", rank},
                                                {"iteration", i},
                                                {"time_s", rank < 4 ? 1.0 : 5.0},
                                                {"energy_j", 1}})
                    .status,
                200);
    }
  }
  EXPECT_EQ(api.Call("GET", base).body["stragglers"].size(), 0u);
  EXPECT_EQ(api.Call("GET", base + "/plan?rank=0").body["version"], 1);
  unlink(db.c_str());
}

// Bad detection options: a 400 naming the field.
TEST(ServerTest, BadStragglerOptionsGetAFourHundredNamingThem) {
  const std::string db = TempPath("detection_bad.db");
  ServerProcess server(db);
  Api api(server.port());
  const std::vector<std::pair<std::string, json>> bad = {
      {"straggler_threshold", 0},       {"straggler_threshold", -0.1},
      {"straggler_threshold", 10.5},    {"straggler_threshold", "0.1"},
      {"straggler_iterations", 0},      {"straggler_iterations", 1001},
      {"straggler_iterations", 2.5},    {"straggler_iterations", "3"},
      {"straggler_detection", "false"}, {"straggler_detection", 0}};
  for (const auto& [name, value] : bad) {
    json body = {{"name", "bad"},
                 {"stages", 4},
                 {"microbatches", 8},
                 {"dp", 2},
                 {"blocking_power_w", 83.64}};
    body[name] = value;
    Response r = api.Post("/v1/jobs", body);
    EXPECT_EQ(r.status, 400) << name << "=" << value.dump() << " " << r.body.dump();
    EXPECT_EQ(r.body.value("field", ""), name) << value.dump() << " " << r.body.dump();
    EXPECT_NE(r.body.value("error", "").find("'" + name + "'"), std::string::npos) << r.body.dump();
  }
  // The bounds themselves are fine.
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, json>>{{"straggler_threshold", 10},
                                                 {"straggler_threshold", 1e-6},
                                                 {"straggler_iterations", 1000},
                                                 {"straggler_iterations", 1}}) {
    json body = {
        {"name", "ok"}, {"stages", 4}, {"microbatches", 8}, {"dp", 2}, {"blocking_power_w", 83.64}};
    body[name] = value;
    EXPECT_EQ(api.Post("/v1/jobs", body).status, 201) << name << "=" << value.dump();
  }
  unlink(db.c_str());
}

TEST(ServerTest, MetricsArePrometheusText) {
  const std::string db = TempPath("metrics.db");
  ServerProcess server(db);
  Api api(server.port());
  CreateJob(api);
  httplib::Client raw("127.0.0.1", server.port());
  auto r = raw.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("perseus_jobs{state=\"registering\"} 1"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("perseus_ranks 8"), std::string::npos);
  EXPECT_NE(r->body.find("perseus_http_requests_total{route=\"register_rank\",status=\"200\"} 8"),
            std::string::npos);
  EXPECT_NE(r->body.find("perseus_http_request_seconds_count{route=\"create_job\"} 1"),
            std::string::npos);
  unlink(db.c_str());
}

// The client library: plan cached for the training thread, straggler changes
// picked up at iteration boundaries, the last plan kept while the server is away.
TEST(ClientTest, FollowsThePlanAndSurvivesAnOutage) {
  const std::string db = TempPath("client.db");
  auto server = std::make_unique<ServerProcess>(db);
  Api api(server->port());
  const int64_t job = CreateJob(api);
  const std::string base = "/v1/jobs/" + std::to_string(job);
  ASSERT_EQ(api.Call("PUT", base + "/profile", ProfileCsv(4), "text/csv").status, 202);
  ASSERT_EQ(WaitReady(api, job)["state"], "ready");

  std::vector<int> applied;
  std::vector<std::string> logs;
  std::mutex mu;
  perseus::client::ClientOptions options;
  options.server = server->url();
  options.job_id = job;
  options.rank = 6;
  options.pp_rank = 2;
  options.dp_rank = 1;
  options.gpu_name = "NVIDIA A100-SXM4-80GB";
  options.frequencies_mhz = A100Clocks();
  options.poll_interval_s = 30;  // only iteration boundaries refresh, in this test
  options.max_backoff_s = 0.2;
  options.set_frequency = [&](int mhz) { applied.push_back(mhz); };
  options.log = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    logs.push_back(line);
  };
  perseus::client::Client client(options);
  ASSERT_TRUE(client.WaitForPlan(0, 20));
  EXPECT_EQ(client.plan_version(), 1);
  const json plan = api.Call("GET", base + "/plan?rank=6").body;
  for (const json& i : plan["instructions"]) {
    perseus::planner::Instruction kind;
    ASSERT_TRUE(perseus::planner::ParseInstruction(i["kind"].get<std::string>(), &kind));
    EXPECT_EQ(client.FrequencyFor(kind, i["microbatch"]), i["frequency_mhz"].get<int>());
  }
  EXPECT_EQ(client.Apply(perseus::planner::Instruction::kForward, 0),
            plan["instructions"][0]["frequency_mhz"].get<int>());
  EXPECT_EQ(applied.size(), 1u);

  ASSERT_EQ(api.Post(base + "/stragglers", {{"pipeline", 0}, {"slowdown", 1.3}}).status, 200);
  client.EndIteration(0, 1.6, 1234.5);  // the boundary wakes the refresher
  ASSERT_TRUE(client.WaitForPlan(1, 20));
  EXPECT_EQ(client.plan_version(), 2);
  EXPECT_GT(client.target_time_s(), plan["target_time"].get<double>());
  EXPECT_EQ(api.Call("GET", base + "/report").body["reports"], 1);

  // The server goes away: the plan stays, one log line says so.
  const int before = client.FrequencyFor(perseus::planner::Instruction::kBackward, 3);
  server->Kill9();
  for (int i = 0; i < 5; ++i) {
    client.EndIteration(1 + i, 1.6, 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(client.reachable());
  EXPECT_EQ(client.FrequencyFor(perseus::planner::Instruction::kBackward, 3), before);
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(logs.size(), 1u);
    EXPECT_NE(logs[0].find("unreachable"), std::string::npos);
  }
  // Restarted on the same database and port: the client carries on.
  const int port = server->port();
  server = std::make_unique<ServerProcess>(db, "", port);
  ASSERT_EQ(server->port(), port);
  for (int i = 0; i < 200 && !client.reachable(); ++i) {
    client.EndIteration(10 + i, 1.6, 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(client.reachable());
  EXPECT_EQ(client.plan_version(), 2);
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(logs.size(), 2u);
    EXPECT_NE(logs[1].find("reachable again"), std::string::npos);
  }
  // Reports queued during the outage arrived.
  for (int i = 0; i < 100; ++i) {
    if (Api(port).Call("GET", base + "/report").body["reports"].get<int>() >= 6) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(Api(port).Call("GET", base + "/report").body["reports"].get<int>(), 6);
  unlink(db.c_str());
}

// EndIteration's mismatch count reaches the coordinator (3-argument form: none;
// a negative count is sent as none rather than losing the report).
TEST(ClientTest, ReportsPlanMismatches) {
  const std::string db = TempPath("client_mismatches.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJob(api, 1);
  const std::string base = "/v1/jobs/" + std::to_string(job);
  perseus::client::ClientOptions options;
  options.server = server.url();
  options.job_id = job;
  options.rank = 2;
  options.pp_rank = 2;
  options.gpu_name = "NVIDIA A100-SXM4-80GB";  // as CreateJob registered it
  options.frequencies_mhz = A100Clocks();
  options.poll_interval_s = 30;
  options.log = [](const std::string&) {};
  perseus::client::Client client(options);
  client.EndIteration(0, 1.5, 300, 3);
  client.EndIteration(1, 1.5, 300);
  client.EndIteration(2, 1.5, 300, -4);
  client.EndIteration(3, 1.5, 300, 1);
  json report;
  for (int i = 0; i < 1000; ++i) {
    report = api.Call("GET", base + "/report").body;
    if (report.value("reports", 0) >= 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(report["reports"], 4) << report.dump();
  EXPECT_EQ(report["plan_mismatches"], 4);
  EXPECT_EQ(report["iterations_with_mismatches"], 2);
  EXPECT_DOUBLE_EQ(report["reported_energy_j"].get<double>(), 1200);
  httplib::Client raw("127.0.0.1", server.port());
  auto metrics = raw.Get("/metrics");
  ASSERT_TRUE(metrics);
  const std::string id = std::to_string(job);
  EXPECT_NE(metrics->body.find("perseus_plan_mismatches_total{job=\"" + id + "\"} 4\n"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("perseus_iterations_with_mismatches_total{job=\"" + id + "\"} 2\n"),
            std::string::npos)
      << metrics->body;
  unlink(db.c_str());
}

TEST(ClientTest, HighestFrequencyUntilThereIsAPlan) {
  perseus::client::ClientOptions options;
  options.server = "http://127.0.0.1:1";  // nothing listens there
  options.frequencies_mhz = {1005, 1410, 1200};
  options.max_backoff_s = 0.05;
  int logged = 0;
  options.log = [&](const std::string&) { ++logged; };
  perseus::client::Client client(options);
  EXPECT_EQ(client.FrequencyFor(perseus::planner::Instruction::kForward, 0), 1410);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(client.reachable());
  EXPECT_EQ(logged, 1);
}

}  // namespace

// A token with CR/LF (or any control character) would be sent as extra HTTP
// headers: the client refuses it.
TEST(ClientToken, RefusesControlCharacters) {
  using perseus::client::CheckToken;
  EXPECT_TRUE(CheckToken("").ok());
  EXPECT_TRUE(CheckToken("s3cr3t-token_with.printable~chars").ok());
  for (const std::string& bad :
       {std::string("abc\r\nX-Injected: 1"), std::string("abc\n"), std::string("a\tb"),
        std::string("a\x7f"), std::string("a\0b", 3)}) {
    const perseus::Status s = CheckToken(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.code(), perseus::StatusCode::kInvalidInput);
    EXPECT_NE(s.message().find("control character"), std::string::npos) << s.message();
  }
  EXPECT_EQ(CheckToken("abc\r\nX-Injected: 1").message(),
            "the token holds a control character (0x0d at byte 3): a bearer token is sent in "
            "the Authorization header and must be printable");
  perseus::client::ClientOptions options;
  options.server = "http://127.0.0.1:1";
  options.frequencies_mhz = {1410};
  options.token = "abc\r\nX-Injected: 1";
  auto created = perseus::client::Client::Create(options);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), perseus::StatusCode::kInvalidInput);
}
