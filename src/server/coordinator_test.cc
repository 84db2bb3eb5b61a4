// The coordinator's domain over the in-memory store: no HTTP, no database.
// A job through its states; a write whose commit fails changes nothing in
// memory (the rule: memory follows the store, never leads it).
#include "src/server/coordinator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "src/server/memory_job_store.h"
#include "tests/support/profiles.h"

namespace perseus::server {
namespace {

using nlohmann::json;
using perseus::testing::A100Clocks;
using perseus::testing::ProfileCsv;

json Rank(int rank, int pp, int dp) {
  return {{"rank", rank},
          {"pp_rank", pp},
          {"dp_rank", dp},
          {"gpu_name", "A100"},
          {"frequencies_mhz", A100Clocks()}};
}

struct Fixture {
  MemoryJobStore* store = nullptr;  // owned by the coordinator
  std::unique_ptr<Coordinator> coordinator;
  explicit Fixture(const CoordinatorOptions& options = {}) {
    auto owned = std::make_unique<MemoryJobStore>();
    store = owned.get();
    auto opened = Coordinator::Open(std::move(owned), {}, options);
    EXPECT_TRUE(opened.ok()) << opened.status().message();
    coordinator = std::move(opened).value();
  }
  int64_t CreateJob(int dp, int microbatches = 8) {
    Reply r = coordinator->CreateJob(json{
        {"name", "gpt3"},
        {"stages", 4},
        {"microbatches", microbatches},
        {"dp", dp},
        {"blocking_power_w", 83.64}}.dump());
    EXPECT_EQ(r.outcome, Outcome::kCreated) << r.body.dump();
    return r.body.value("job_id", int64_t{0});
  }
};

TEST(CoordinatorTest, AJobGoesThroughItsStatesOverTheMemoryStore) {
  Fixture f;
  const int64_t job = f.CreateJob(2);
  EXPECT_EQ(f.coordinator->GetJob(job).body["state"], "registering");
  for (int r = 0; r < 8; ++r) {
    EXPECT_EQ(f.coordinator->RegisterRank(job, Rank(r, r % 4, r / 4).dump()).outcome, Outcome::kOk);
  }
  EXPECT_EQ(f.coordinator->PutProfile(job, "text/csv", ProfileCsv(4)).outcome, Outcome::kAccepted);
  f.coordinator->WaitIdle();
  const json ready = f.coordinator->GetJob(job).body;
  ASSERT_EQ(ready["state"], "ready") << ready.dump();
  Reply plan = f.coordinator->GetPlan(job, "5", "");
  EXPECT_EQ(plan.outcome, Outcome::kOk);
  EXPECT_EQ(plan.plan_pipeline, 1);
  EXPECT_EQ(f.coordinator->GetPlan(job, "5", "", {1, plan.plan_version}).outcome,
            Outcome::kNotModified);
  EXPECT_EQ(f.coordinator->GetPlan(job, "5", "", {0, plan.plan_version}).outcome, Outcome::kOk);
  EXPECT_EQ(plan.body["pipeline"], 1);
  EXPECT_EQ(f.coordinator->AddStraggler(job, R"({"pipeline": 1, "slowdown": 1.2})").outcome,
            Outcome::kOk);
  const json listed = f.coordinator->ListJobs("ready").body;
  ASSERT_EQ(listed["jobs"].size(), 1u);
  // What the store holds is what a restart would load.
  auto stored = f.store->LoadAll();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].row.state, "ready");
  EXPECT_EQ((*stored)[0].rank_infos.size(), 8u);
  EXPECT_EQ((*stored)[0].pipelines.size(), 2u);
  EXPECT_EQ((*stored)[0].stragglers.size(), 1u);
  EXPECT_EQ(f.coordinator->DeleteJob(job).outcome, Outcome::kOk);
  EXPECT_TRUE(f.store->LoadAll()->empty());
}

TEST(CoordinatorTest, AFailedCommitChangesNothingInMemory) {
  Fixture f;
  const int64_t job = f.CreateJob(1);
  f.store->FailNextCommit();
  EXPECT_EQ(f.coordinator->RegisterRank(job, Rank(0, 0, 0).dump()).outcome, Outcome::kFailed);
  EXPECT_EQ(f.coordinator->GetJob(job).body["ranks_registered"], 0);
  EXPECT_EQ(f.coordinator->RegisterRank(job, Rank(0, 0, 0).dump()).outcome, Outcome::kOk);
  EXPECT_EQ(f.coordinator->GetJob(job).body["ranks_registered"], 1);
  f.store->FailNextCommit();
  EXPECT_EQ(f.coordinator->PutProfile(job, "text/csv", ProfileCsv(4)).outcome, Outcome::kFailed);
  f.coordinator->WaitIdle();
  EXPECT_EQ(f.coordinator->GetJob(job).body["state"], "registering");
  f.store->FailNextCommit();
  EXPECT_EQ(f.coordinator->DeleteJob(job).outcome, Outcome::kFailed);
  EXPECT_EQ(f.coordinator->GetJob(job).outcome, Outcome::kOk);  // still there
  EXPECT_EQ(f.coordinator->ListJobs("").body["jobs"].size(), 1u);
}

// A job's name is 1..200 characters as the OpenAPI description's maxLength
// counts them (code points), not bytes: 200 two-byte characters are a name.
TEST(CoordinatorTest, ANamesLengthIsCountedInCharacters) {
  Fixture f;
  auto create = [&](const std::string& name) {
    return f.coordinator->CreateJob(json{
        {"name", name},
        {"stages", 4},
        {"microbatches", 8},
        {"blocking_power_w", 83.64}}.dump());
  };
  std::string accented;
  for (int i = 0; i < 200; ++i) accented += "\xc3\xa9";  // é: 400 bytes
  EXPECT_EQ(create(accented).outcome, Outcome::kCreated);
  Reply longer = create(accented + "e");
  EXPECT_EQ(longer.outcome, Outcome::kInvalid);
  EXPECT_EQ(longer.body["field"], "name");
  EXPECT_EQ(create("").outcome, Outcome::kInvalid);
  EXPECT_EQ(create(std::string(200, 'x')).outcome, Outcome::kCreated);
}

// A detected straggler's plan (the discrete local search, up to ~0.6 s) is
// computed with the lock released, as a manual straggler's: while it runs,
// another request is answered. Were the lock held, the request below would
// wait until the hook returned, and its future would not be ready in time.
TEST(CoordinatorTest, ADetectedStragglersPlanIsComputedWithoutTheLock) {
  CoordinatorOptions options;
  Coordinator* coordinator = nullptr;
  int64_t job = 0;
  int unlocked = 0, answered = 0;
  options.while_unlocked = [&] {
    ++unlocked;
    auto other = std::async(std::launch::async, [&] { return coordinator->GetJob(job).outcome; });
    if (other.wait_for(std::chrono::seconds(60)) == std::future_status::ready &&
        other.get() == Outcome::kOk) {
      ++answered;
    }
  };
  Fixture f(options);
  coordinator = f.coordinator.get();
  job = f.CreateJob(2);
  for (int r = 0; r < 8; ++r) {
    ASSERT_EQ(coordinator->RegisterRank(job, Rank(r, r % 4, r / 4).dump()).outcome, Outcome::kOk);
  }
  ASSERT_EQ(coordinator->PutProfile(job, "text/csv", ProfileCsv(4)).outcome, Outcome::kAccepted);
  coordinator->WaitIdle();
  ASSERT_EQ(coordinator->GetJob(job).body["state"], "ready");
  const double t_min = coordinator->GetPlan(job, "0", "").body["target_time"];
  // Pipeline 1 (ranks 4-7) 30% slower for K = 3 iterations: declared at the third.
  for (int iteration = 0; iteration < 3; ++iteration) {
    EXPECT_EQ(unlocked, 0);
    for (int r = 0; r < 8; ++r) {
      const double t = r < 4 ? t_min : 1.3 * t_min;
      Reply reply = coordinator->ReportIteration(
          job,
          json{{"rank", r}, {"iteration", iteration}, {"time_s", t}, {"energy_j", 100}}.dump());
      ASSERT_EQ(reply.outcome, Outcome::kOk) << reply.body.dump();
    }
  }
  EXPECT_EQ(unlocked, 1);
  EXPECT_EQ(answered, 1);
  const json declared = coordinator->GetJob(job).body;
  ASSERT_EQ(declared["stragglers"].size(), 1u) << declared.dump();
  EXPECT_EQ(declared["stragglers"][0]["source"], "detected");
  const json slowed = coordinator->GetPlan(job, "0", "").body;
  EXPECT_EQ(slowed["version"], 2);
  EXPECT_NEAR(slowed["target_time"].get<double>(), 1.3 * t_min, 1e-9);
}

// Large jobs leave a worker to the others: with two workers, two large jobs
// whose planning does not end (held in the hook) do not keep a small job from
// its plan. Were both workers given to the large ones, the small job would
// still be queued when the wait below gives up.
TEST(CoordinatorTest, LargeJobsLeaveAWorkerToSmallOnes) {
  CoordinatorOptions options;
  options.planning_threads = 2;
  options.large_job_size = 100;  // 4 x 32 is large, 4 x 8 small
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::set<int64_t> large, held;
  options.on_planning = [&](int64_t id) {
    std::unique_lock<std::mutex> lock(mu);
    if (large.count(id) == 0) return;
    held.insert(id);
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  };
  Fixture f(options);
  Coordinator& c = *f.coordinator;
  auto profiled = [&](int64_t id) {
    for (int r = 0; r < 4; ++r) {
      ASSERT_EQ(c.RegisterRank(id, Rank(r, r, 0).dump()).outcome, Outcome::kOk);
    }
    ASSERT_EQ(c.PutProfile(id, "text/csv", ProfileCsv(4)).outcome, Outcome::kAccepted);
  };
  const int64_t a = f.CreateJob(1, 32), b = f.CreateJob(1, 32), small = f.CreateJob(1, 8);
  {
    std::lock_guard<std::mutex> lock(mu);
    large = {a, b};
  }
  profiled(a);
  profiled(b);
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return !held.empty(); }));
  }
  profiled(small);
  std::string state;
  for (int i = 0; i < 600 && state != "ready"; ++i) {
    state = c.GetJob(small).body.value("state", "");
    if (state != "ready") std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(state, "ready");
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(held.size(), 1u);  // the second large job waits for the first
    release = true;
  }
  cv.notify_all();
  c.WaitIdle();
  EXPECT_EQ(c.GetJob(a).body["state"], "ready");
  EXPECT_EQ(c.GetJob(b).body["state"], "ready");
  EXPECT_EQ(held.size(), 2u);
}

}  // namespace
}  // namespace perseus::server
