// The coordinator's JobStore in SQLite (WAL; a committed transaction survives
// kill -9): the schema, the migrations of databases written by earlier
// versions, and every statement.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "src/server/job_store.h"
#include "src/server/sqlite.h"

namespace perseus::server {

class SqliteJobStore : public JobStore {
 public:
  using Log = std::function<void(const std::string&)>;
  // Opens (creating) the database and brings its schema up to date.
  static Result<std::unique_ptr<SqliteJobStore>> Open(const std::string& path, Log log = {});

  Status Begin() override;
  Status Commit() override;
  void Rollback() override;
  Result<std::vector<StoredJob>> LoadAll() override;
  Result<int64_t> InsertJob(const std::string& config_json, const JobRowValues& row) override;
  Status SaveJobRow(int64_t job, const JobRowValues& row) override;
  Status DeleteJob(int64_t job) override;
  Status InsertRank(int64_t job, int64_t rank, const std::string& info_json) override;
  Status PutMeasurement(int64_t job, const StoredMeasurement& m) override;
  Status PutFrontier(int64_t job, const planner::FrontierFiles& files) override;
  Status PutPipeline(int64_t job, const StoredPipeline& p) override;
  Status PutStraggler(int64_t job, const StoredStraggler& s) override;
  Status DeleteStraggler(int64_t job, int64_t pipeline) override;
  Status PutIteration(int64_t job, const StoredIteration& it) override;
  Result<std::optional<StoredIteration>> GetIteration(int64_t job, int64_t rank,
                                                      int64_t iteration) override;
  Result<std::vector<PhaseTotals>> MeasuredPhases(int64_t job, int64_t ranks_per_pipeline) override;

 private:
  SqliteJobStore() = default;
  Status Migrate();
  std::unique_ptr<Database> db_;
  Log log_;
};

}  // namespace perseus::server
