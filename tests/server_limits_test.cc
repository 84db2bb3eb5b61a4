// Issue 16's findings against a real `perseus serve`: a job that would
// exhaust memory or the planning thread is refused or fails alone while a
// normal job on the same server plans; DELETE cancels; a crash loop ends; a
// bad upload is rejected alone and can be corrected; positions, clocks,
// unknown fields and straggler times are checked on arrival; a damaged
// database row fails its own job, never the server.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
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

std::string JobPath(int64_t job) { return "/v1/jobs/" + std::to_string(job); }

// A job of `stages` x `microbatches` with no ranks (a CSV profile plans it).
int64_t CreateBareJob(Api& api, const std::string& name, int stages, int microbatches,
                      json extra = json::object()) {
  json body = {{"name", name},
               {"stages", stages},
               {"microbatches", microbatches},
               {"blocking_power_w", 83.64}};
  body.update(extra);
  Response r = api.Post("/v1/jobs", body);
  EXPECT_EQ(r.status, 201) << r.body.dump();
  return r.body.value("job_id", int64_t{0});
}

Response PutCsv(Api& api, int64_t job, const std::string& csv) {
  return api.Call("PUT", JobPath(job) + "/profile", csv, "text/csv");
}

// Planning it takes far longer than the 10 s budget below (8 x 1024 at a 10 us
// unit: about 30 s in the optimised build); the normal 4 x 8 job takes 10 ms.
int64_t StartSlowJob(Api& api) {
  const int64_t job = CreateBareJob(api, "slow", 8, 1024, {{"unit_time", 1e-5}});
  Response r = PutCsv(api, job, ProfileCsv(8));
  EXPECT_EQ(r.status, 202) << r.body.dump();
  return job;
}

TEST(ServerLimitsTest, BadJobsAreRefusedOrFailAloneWhileANormalJobPlans) {
  const std::string db = TempPath("limits.db");
  ServerProcess server(db, "", 0, {"--planning-time-limit", "10"});
  Api api(server.port());

  // The memory crash loop: a 100 s computation at a 10 us unit (10^7 units).
  const int64_t oom = CreateBareJob(api, "oom", 1, 1, {{"unit_time", 1e-5}});
  std::string csv = ProfileCsv(1) + "0,forward,100,100,1\n";
  Response r = PutCsv(api, oom, csv);
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "unit_time");
  EXPECT_NE(r.body["error"].get<std::string>().find("unit_time 1e-05 s is too small"),
            std::string::npos)
      << r.body.dump();
  EXPECT_EQ(api.Call("GET", JobPath(oom)).body["state"], "registering");  // not wedged

  // The planning-thread hog: 1,000 virtual stages.
  r = api.Post("/v1/jobs", {{"name", "chunks"},
                            {"schedule", "interleaved-1f1b"},
                            {"virtual_stages", 1000},
                            {"stages", 2},
                            {"microbatches", 4},
                            {"blocking_power_w", 83.64}});
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "virtual_stages");
  r = api.Post(
      "/v1/jobs",
      {{"name", "huge"}, {"stages", 4096}, {"microbatches", 65536}, {"blocking_power_w", 83.64}});
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "microbatches");

  // A job within the limits but over the server's time budget fails alone; a
  // normal job created after it is planned meanwhile.
  const int64_t slow = StartSlowJob(api);
  const int64_t normal = CreateBareJob(api, "normal", 4, 8);
  ASSERT_EQ(PutCsv(api, normal, ProfileCsv(4)).status, 202);
  EXPECT_EQ(WaitReady(api, normal)["state"], "ready");
  const json failed = WaitReady(api, slow);
  EXPECT_EQ(failed["state"], "failed") << failed.dump();
  EXPECT_NE(failed.value("reason", "").find("planning_time_limit"), std::string::npos)
      << failed.dump();
  EXPECT_EQ(server.Term(), 0);
  unlink(db.c_str());
}

TEST(ServerLimitsTest, DeleteCancelsPlanningAndRemovesTheJob) {
  const std::string db = TempPath("delete.db");
  int64_t normal = 0;
  {
    ServerProcess server(db);
    Api api(server.port());
    const int64_t slow = StartSlowJob(api);
    Response r = api.Call("DELETE", JobPath(slow));
    EXPECT_EQ(r.status, 200) << r.body.dump();
    EXPECT_EQ(r.body, (json{{"job_id", slow}, {"deleted", true}}));
    EXPECT_EQ(api.Call("GET", JobPath(slow)).status, 404);
    EXPECT_EQ(api.Call("DELETE", JobPath(slow)).status, 404);
    // The planning threads are free again: a normal job plans.
    normal = CreateBareJob(api, "normal", 4, 8);
    ASSERT_EQ(PutCsv(api, normal, ProfileCsv(4)).status, 202);
    EXPECT_EQ(WaitReady(api, normal)["state"], "ready");
    const json all = api.Call("GET", "/v1/jobs").body;
    ASSERT_EQ(all["jobs"].size(), 1u) << all.dump();
    EXPECT_EQ(all["jobs"][0]["job_id"], normal);
    EXPECT_EQ(all["jobs"][0]["name"], "normal");
    EXPECT_EQ(all["jobs"][0]["state"], "ready");
    EXPECT_EQ(api.Call("GET", "/v1/jobs?state=ready").body["jobs"].size(), 1u);
    EXPECT_EQ(api.Call("GET", "/v1/jobs?state=planning").body["jobs"].size(), 0u);
    r = api.Call("GET", "/v1/jobs?state=bogus");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body["field"], "state");
    EXPECT_EQ(server.Term(), 0);
  }
  ServerProcess restarted(db);  // the deletion was committed
  Api api(restarted.port());
  const json all = api.Call("GET", "/v1/jobs").body;
  ASSERT_EQ(all["jobs"].size(), 1u) << all.dump();
  EXPECT_EQ(all["jobs"][0]["job_id"], normal);
  unlink(db.c_str());
}

// A job whose planning is killed twice (what an out-of-memory kill does at
// every start) is failed at the next start instead of planned again.
TEST(ServerLimitsTest, ACrashLoopEndsAfterTwoInterruptedPlannings) {
  const std::string db = TempPath("crashloop.db");
  int64_t slow = 0;
  {
    ServerProcess server(db);
    Api api(server.port());
    slow = StartSlowJob(api);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    server.Kill9();
  }
  {
    ServerProcess server(db);  // planning it again: the second attempt
    Api api(server.port());
    EXPECT_EQ(api.Call("GET", JobPath(slow)).body["state"], "planning");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    server.Kill9();
  }
  ServerProcess server(db);
  Api api(server.port());
  const json state = api.Call("GET", JobPath(slow)).body;
  EXPECT_EQ(state["state"], "failed") << state.dump();
  EXPECT_NE(state.value("reason", "").find("planning was interrupted 2 times"), std::string::npos)
      << state.dump();
  // Uploading the profile again plans it again (and the server is fine).
  const int64_t normal = CreateBareJob(api, "normal", 4, 8);
  ASSERT_EQ(PutCsv(api, normal, ProfileCsv(4)).status, 202);
  EXPECT_EQ(WaitReady(api, normal)["state"], "ready");
  EXPECT_EQ(server.Term(), 0);
  unlink(db.c_str());
}

TEST(ServerLimitsTest, AMeasurementUploadIsValidatedAloneAndCanBeCorrected) {
  const std::string db = TempPath("uploads.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateJob(api, 1);
  const std::string profile = JobPath(job) + "/profile";
  std::vector<json> stages = StageMeasurements();
  json duplicated = stages[0];
  duplicated.push_back(stages[0][0]);
  Response r = api.Call("PUT", profile, json{{"rank", 0}, {"measurements", duplicated}}.dump());
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "measurements");
  const std::string last = std::to_string(duplicated.size() - 1);
  EXPECT_EQ(r.body["error"], "rank 0's measurements[" + last + "] repeats " +
                                 stages[0][0]["instruction"].get<std::string>() + " at " +
                                 std::to_string(stages[0][0]["frequency_mhz"].get<int>()) +
                                 " MHz (measurements[0])");
  EXPECT_EQ(api.Call("GET", JobPath(job)).body["state"], "registering");  // nothing changed
  // The corrected upload is taken, and so is a second correction.
  for (int attempt = 0; attempt < 2; ++attempt) {
    r = api.Call("PUT", profile, json{{"rank", 0}, {"measurements", stages[0]}}.dump());
    EXPECT_EQ(r.status, 202) << r.body.dump();
    EXPECT_EQ(r.body["stages_measured"], 1);
  }
  json extra = stages[1];
  extra[2]["extra"] = 1;
  r = api.Call("PUT", profile, json{{"rank", 1}, {"measurements", extra}}.dump());
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "extra");
  EXPECT_NE(r.body["error"].get<std::string>().find("in rank 1's measurements[2]"),
            std::string::npos);
  json negative = stages[2];
  negative[0]["time_s"] = -1;
  r = api.Call("PUT", profile, json{{"rank", 2}, {"measurements", negative}}.dump());
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "time_s");
  for (int rank = 1; rank < 4; ++rank) {
    r = api.Call("PUT", profile, json{{"rank", rank}, {"measurements", stages[rank]}}.dump());
    EXPECT_EQ(r.status, 202) << r.body.dump();
  }
  EXPECT_EQ(r.body["state"], "planning");
  EXPECT_EQ(WaitReady(api, job)["state"], "ready");
  EXPECT_EQ(server.Term(), 0);
  unlink(db.c_str());
}

TEST(ServerLimitsTest, PositionsClocksFieldsAndStragglerTimesAreCheckedOnArrival) {
  const std::string db = TempPath("arrival.db");
  ServerProcess server(db);
  Api api(server.port());
  Response r = api.Post("/v1/jobs", {{"name", "typo"},
                                     {"stages", 4},
                                     {"stages_typo", 4},
                                     {"microbatches", 8},
                                     {"blocking_power_w", 83.64}});
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "stages_typo");

  const int64_t job = CreateBareJob(api, "arrival", 4, 8, {{"dp", 2}});
  const std::string ranks = JobPath(job) + "/ranks";
  auto rank = [](int id, int pp, int dp, std::vector<int> clocks) {
    return json{{"rank", id},   {"pp_rank", pp},   {"dp_rank", dp},
                {"tp_rank", 0}, {"gpu_name", "A"}, {"frequencies_mhz", clocks}};
  };
  EXPECT_EQ(api.Post(ranks, rank(0, 0, 0, A100Clocks())).status, 200);
  r = api.Post(ranks, rank(1, 0, 0, A100Clocks()));  // rank 0's position
  EXPECT_EQ(r.status, 409) << r.body.dump();
  EXPECT_EQ(r.body["field"], "pp_rank");
  json typo = rank(1, 1, 0, A100Clocks());
  typo["gpu"] = "A";
  r = api.Post(ranks, typo);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["field"], "gpu");
  for (int k = 1; k < 7; ++k) {
    EXPECT_EQ(api.Post(ranks, rank(k, k % 4, k / 4, A100Clocks())).status, 200);
  }
  ASSERT_EQ(PutCsv(api, job, ProfileCsv(4)).status, 202);
  const json ready = WaitReady(api, job);
  ASSERT_EQ(ready["state"], "ready");
  // One energy scope, named: the frontier's figures are a pipeline's, the
  // job's (dp = 2) beside them; the report's are the job's.
  EXPECT_EQ(ready["frontier"]["energy_scope"], "pipeline");
  EXPECT_DOUBLE_EQ(ready["frontier"]["t_min_job_energy_j"].get<double>(),
                   2 * ready["frontier"]["t_min_energy_j"].get<double>());
  EXPECT_EQ(api.Call("GET", JobPath(job) + "/frontier").body["energy_scope"], "pipeline");
  EXPECT_EQ(api.Call("GET", JobPath(job) + "/report").body["energy_scope"], "job");
  // Rank 7 arrives after the profile with clocks it does not cover.
  r = api.Post(ranks, rank(7, 3, 1, {1410, 1005}));
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "frequencies_mhz");
  EXPECT_EQ(api.Post(ranks, rank(7, 3, 1, A100Clocks())).status, 200);

  const std::string stragglers = JobPath(job) + "/stragglers";
  r = api.Post(stragglers, {{"pipeline", 1}, {"iteration_time", 100}});  // T_min is ~1.2 s
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.body["field"], "iteration_time");
  EXPECT_NE(r.body["error"].get<std::string>().find("must be between T_min"), std::string::npos);
  r = api.Post(stragglers, {{"pipeline", 1}, {"slowdown", 11}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["field"], "slowdown");
  r = api.Post(stragglers, {{"pipeline", 1}, {"slowdown", 1.2}, {"why", "x"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["field"], "why");
  EXPECT_EQ(api.Post(stragglers, {{"pipeline", 1}, {"slowdown", 1.2}}).status, 200);
  r = api.Post(JobPath(job) + "/iterations",
               {{"rank", 0}, {"iteration", 1}, {"time_s", 1}, {"energy_j", 1}, {"tme_s", 1}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body["field"], "tme_s");
  EXPECT_EQ(server.Term(), 0);
  unlink(db.c_str());
}

void Sql(const std::string& db, const std::string& statement) {
  sqlite3* handle = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &handle), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(handle, statement.c_str(), nullptr, nullptr, &error), SQLITE_OK)
      << (error != nullptr ? error : "") << ": " << statement;
  sqlite3_free(error);
  sqlite3_close(handle);
}

// Tampered rows of job A: A is shown failed with the reason, job B and the
// server go on (before: an uncaught exception or a segfault at start).
TEST(ServerLimitsTest, ADamagedRowFailsItsJobNotTheServer) {
  const std::string pristine = TempPath("pristine.db");
  int64_t a = 0, b = 0;
  {
    ServerProcess server(pristine);
    Api api(server.port());
    a = CreateJob(api, 1);
    b = CreateJob(api, 1);
    for (int64_t job : {a, b}) {
      ASSERT_EQ(PutCsv(api, job, ProfileCsv(4)).status, 202);
      ASSERT_EQ(WaitReady(api, job)["state"], "ready");
    }
    ASSERT_EQ(server.Term(), 0);
  }
  const std::string id = std::to_string(a);
  const std::vector<std::string> damage = {
      "UPDATE ranks SET info='garbage' WHERE job_id=" + id,
      "UPDATE ranks SET info='{\"rank\":\"x\"}' WHERE job_id=" + id,
      "UPDATE ranks SET info='{\"rank\":0,\"pp_rank\":99,\"dp_rank\":0,\"frequencies_mhz\":[1]}' "
      "WHERE job_id=" +
          id + " AND rank=0",
      "UPDATE pipelines SET pipeline=-1 WHERE job_id=" + id,
      "UPDATE pipelines SET pipeline=2000000000 WHERE job_id=" + id,
      "UPDATE pipelines SET point=999999 WHERE job_id=" + id,
      "DELETE FROM frontiers WHERE job_id=" + id,
      "UPDATE frontiers SET plans_csv='x' WHERE job_id=" + id,
      "UPDATE jobs SET state='bogus' WHERE id=" + id,
      "UPDATE jobs SET config='{' WHERE id=" + id,
      "UPDATE jobs SET config='{\"name\":\"a\",\"stages\":\"four\"}' WHERE id=" + id,
  };
  for (size_t k = 0; k < damage.size(); ++k) {
    SCOPED_TRACE(damage[k]);
    const std::string db = TempPath("damaged-" + std::to_string(k) + ".db");
    std::filesystem::copy_file(pristine, db, std::filesystem::copy_options::overwrite_existing);
    Sql(db, damage[k]);
    ServerProcess server(db);
    Api api(server.port());
    const json state = api.Call("GET", JobPath(a)).body;
    EXPECT_EQ(state["state"], "failed") << state.dump();
    EXPECT_EQ(state.value("reason", "").rfind("not loaded: ", 0), 0u) << state.dump();
    const int plan = api.Call("GET", JobPath(a) + "/plan?rank=0").status;
    EXPECT_TRUE(plan == 400 || plan == 404 || plan == 409) << plan;  // a refusal, not a crash
    EXPECT_EQ(api.Call("GET", JobPath(b)).body["state"], "ready");
    EXPECT_EQ(api.Call("GET", JobPath(b) + "/plan?rank=0").status, 200);
    EXPECT_EQ(server.Term(), 0);
    unlink(db.c_str());
  }
  unlink(pristine.c_str());
}

TEST(ServerLimitsTest, EnergiesBeyondTheIntegerCostsAreRefused) {
  const std::string db = TempPath("energy.db");
  ServerProcess server(db);
  Api api(server.port());
  const int64_t job = CreateBareJob(api, "scaled", 4, 8, {{"energy_scale", 1e13}});
  Response r = PutCsv(api, job, ProfileCsv(4));
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_NE(r.body["error"].get<std::string>().find("(after energy_scale)"), std::string::npos)
      << r.body.dump();
  EXPECT_EQ(server.Term(), 0);
  unlink(db.c_str());
}

}  // namespace
