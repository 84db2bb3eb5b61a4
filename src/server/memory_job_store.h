// A JobStore in memory: what SqliteJobStore keeps, kept in maps; a
// transaction works on a copy that Commit makes current. For the domain's
// unit tests (no database, no HTTP) and as the second implementation of the
// seam. Commit can be made to fail (FailNextCommit) to test that a failed
// write leaves the domain's memory as it was.
#pragma once

#include <map>
#include <tuple>

#include "src/server/job_store.h"

namespace perseus::server {

class MemoryJobStore : public JobStore {
 public:
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

  void FailNextCommit() { fail_next_commit_ = true; }

 private:
  struct Job {
    std::string config_json;
    JobRowValues row;
    std::map<int64_t, std::string> ranks;
    std::map<std::pair<int64_t, int64_t>, StoredMeasurement> measurements;
    std::optional<planner::FrontierFiles> frontier;
    std::map<int64_t, StoredPipeline> pipelines;
    std::map<int64_t, StoredStraggler> stragglers;
    std::map<std::pair<int64_t, int64_t>, StoredIteration> iterations;  // (rank, iteration)
  };
  struct State {
    std::map<int64_t, Job> jobs;
    int64_t next_id = 1;
  };
  // The state writes go to: the transaction's copy, or (outside one, for a
  // single write) the committed state.
  State& Writing() { return in_transaction_ ? pending_ : committed_; }
  Result<Job*> Find(int64_t job);

  State committed_, pending_;
  bool in_transaction_ = false;
  bool fail_next_commit_ = false;
};

}  // namespace perseus::server
