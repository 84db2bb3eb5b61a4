// Both stores through the JobStore interface, the same expectations: what is
// committed is loaded back, what is rolled back is not, deletes remove every
// row of a job, the aggregates agree.
#include "src/server/job_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>

#include "src/server/memory_job_store.h"
#include "src/server/sqlite_job_store.h"

namespace perseus::server {
namespace {

struct StoreFactory {
  std::string name;
  std::function<std::unique_ptr<JobStore>(const std::string& path)> open;
};

class JobStoreTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("perseus-store-" + std::to_string(getpid()) + "-" + GetParam().name + ".db"))
                .string();
    std::filesystem::remove(path_);
    store_ = GetParam().open(path_);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_ + suffix);
  }
  int64_t Insert(const std::string& config) {
    JobStore::Transaction tx(*store_);
    EXPECT_TRUE(tx.begun().ok());
    auto id = store_->InsertJob(config, {"registering", "", "", 0, 0, 0, 0, ""});
    EXPECT_TRUE(id.ok()) << id.status().message();
    EXPECT_TRUE(tx.Commit().ok());
    return id.ok() ? *id : 0;
  }
  std::string path_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobStoreTest, CommittedRowsAreLoadedBackAndRolledBackOnesAreNot) {
  const int64_t a = Insert("{\"name\":\"a\"}");
  const int64_t b = Insert("{\"name\":\"b\"}");
  EXPECT_LT(a, b);
  const JobRowValues ready{"ready", "", "stage,...\n", 1.5, 300, 0.25, 1, "[\"a warning\"]"};
  const planner::FrontierFiles files{"f", "c", "p", "{}"};
  {
    JobStore::Transaction tx(*store_);
    ASSERT_TRUE(tx.begun().ok());
    ASSERT_TRUE(store_->SaveJobRow(a, ready).ok());
    ASSERT_TRUE(store_->InsertRank(a, 0, "{\"rank\":0}").ok());
    ASSERT_TRUE(store_->InsertRank(a, 1, "{\"rank\":1}").ok());
    ASSERT_TRUE(store_->PutMeasurement(a, {0, 0, "rows-old", -1}).ok());
    ASSERT_TRUE(store_->PutMeasurement(a, {0, 0, "rows", 80}).ok());  // replaces
    ASSERT_TRUE(store_->PutFrontier(a, files).ok());
    ASSERT_TRUE(store_->PutPipeline(a, {0, 1, 3, 1.5}).ok());
    ASSERT_TRUE(store_->PutPipeline(a, {0, 2, 4, 1.6}).ok());  // replaces
    ASSERT_TRUE(store_->PutStraggler(a, {1, 1.2, 0, "detected", 1.4}).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  {
    JobStore::Transaction tx(*store_);  // not committed: rolled back
    ASSERT_TRUE(tx.begun().ok());
    ASSERT_TRUE(store_->SaveJobRow(b, ready).ok());
    ASSERT_TRUE(store_->InsertRank(b, 0, "{}").ok());
  }
  ASSERT_TRUE(store_->PutIteration(a, {0, 5, 1.0, 10, 2, "planned", 0, 2}).ok());
  ASSERT_TRUE(store_->PutIteration(a, {1, 5, 1.5, 20, 0, "planned", 0, 2}).ok());
  ASSERT_TRUE(store_->PutIteration(a, {0, 5, 1.1, 11, 0, "planned", 0, 2}).ok());  // replaces

  auto jobs = store_->LoadAll();
  ASSERT_TRUE(jobs.ok()) << jobs.status().message();
  ASSERT_EQ(jobs->size(), 2u);
  const StoredJob& ja = (*jobs)[0];
  EXPECT_EQ(ja.id, a);
  EXPECT_EQ(ja.config_json, "{\"name\":\"a\"}");
  EXPECT_EQ(ja.row, ready);
  EXPECT_EQ(ja.rank_infos, (std::vector<std::string>{"{\"rank\":0}", "{\"rank\":1}"}));
  EXPECT_EQ(ja.measurements, (std::vector<StoredMeasurement>{{0, 0, "rows", 80}}));
  ASSERT_TRUE(ja.frontier.has_value());
  EXPECT_EQ(ja.frontier->plans_csv, "p");
  EXPECT_EQ(ja.pipelines, (std::vector<StoredPipeline>{{0, 2, 4, 1.6}}));
  EXPECT_EQ(ja.stragglers, (std::vector<StoredStraggler>{{1, 1.2, 0, "detected", 1.4}}));
  EXPECT_EQ(ja.iterations, (IterationTotals{2, 31, 2.6, 5, 0, 0}));
  const StoredJob& jb = (*jobs)[1];
  EXPECT_EQ(jb.row.state, "registering");
  EXPECT_TRUE(jb.rank_infos.empty());

  auto it = store_->GetIteration(a, 0, 5);
  ASSERT_TRUE(it.ok());
  ASSERT_TRUE(it->has_value());
  EXPECT_EQ(**it, (StoredIteration{0, 5, 1.1, 11, 0, "planned", 0, 2}));
  EXPECT_FALSE(store_->GetIteration(a, 0, 6)->has_value());
  // Both ranks of pipeline 0 reported iteration 5: one iteration, energy summed,
  // the slowest rank's time.
  auto phases = store_->MeasuredPhases(a, 2);
  ASSERT_TRUE(phases.ok());
  EXPECT_EQ(*phases, (std::vector<PhaseTotals>{{0, "planned", 1, 31, 1.5}}));
  EXPECT_TRUE(store_->MeasuredPhases(a, 3)->empty());  // a rank missing: not counted

  {
    JobStore::Transaction tx(*store_);
    ASSERT_TRUE(store_->DeleteStraggler(a, 1).ok());
    ASSERT_TRUE(store_->DeleteJob(b).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  jobs = store_->LoadAll();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_TRUE((*jobs)[0].stragglers.empty());
  {
    JobStore::Transaction tx(*store_);
    ASSERT_TRUE(store_->DeleteJob(a).ok());
    ASSERT_TRUE(tx.Commit().ok());
  }
  EXPECT_TRUE(store_->LoadAll()->empty());
  // Ids are not reused after a delete.
  EXPECT_GT(Insert("{}"), b);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, JobStoreTest,
    ::testing::Values(StoreFactory{"memory",
                                   [](const std::string&) -> std::unique_ptr<JobStore> {
                                     return std::make_unique<MemoryJobStore>();
                                   }},
                      StoreFactory{"sqlite",
                                   [](const std::string& path) -> std::unique_ptr<JobStore> {
                                     auto store = SqliteJobStore::Open(path);
                                     if (!store.ok()) return nullptr;
                                     return std::move(store).value();
                                   }}),
    [](const auto& param_info) { return param_info.param.name; });

}  // namespace
}  // namespace perseus::server
