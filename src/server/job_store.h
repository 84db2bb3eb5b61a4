// The coordinator's storage seam: everything it keeps across restarts, as
// rows, behind one interface. The domain (coordinator.cc) validates and
// interprets rows; a store only keeps them. SqliteJobStore is the server's;
// MemoryJobStore keeps them in memory (unit tests, and a second
// implementation that keeps the interface honest). Another database is
// another JobStore, without touching the domain.
//
// Writes happen inside a transaction (Begin ... Commit; a transaction not
// committed is rolled back, by Rollback or by JobStore::Transaction's
// destructor). A write is acknowledged to a client only after Commit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "perseus/common/status.h"
#include "perseus/planner/frontier_io.h"

namespace perseus::server {

// The jobs table's mutable columns.
struct JobRowValues {
  std::string state, reason, profile_csv;
  double all_max_time_s = 0, all_max_energy_j = 0, solve_seconds = 0;
  int64_t planning_attempts = 0;
  // What looks wrong in the job's profile (job::PreparedJob::warnings), as
  // a JSON array of strings ("": none).
  std::string warnings;
  bool operator==(const JobRowValues&) const = default;
};

struct StoredMeasurement {
  int64_t stage = 0, tp_rank = 0;
  std::string rows;            // CSV rows of that stage and TP rank
  double blocking_power = -1;  // measured with the profile; -1: none
  bool operator==(const StoredMeasurement&) const = default;
};

struct StoredPipeline {
  int64_t pipeline = 0, version = 0, point = 0;
  double target_time_s = 0;
  bool operator==(const StoredPipeline&) const = default;
};

struct StoredStraggler {
  int64_t pipeline = 0;
  double slowdown = 0, iteration_time_s = 0;
  std::string source = "manual";  // manual | detected
  double reference_time_s = 0;
  bool operator==(const StoredStraggler&) const = default;
};

struct StoredIteration {
  int64_t rank = 0, iteration = 0;
  double time_s = 0, energy_j = 0;
  int64_t mismatches = 0;
  std::string phase;      // "" when not given
  int64_t pipeline = -1;  // the rank's dp_rank
  int64_t plan_version = -1;
  bool operator==(const StoredIteration&) const = default;
};

// Sums over a job's iteration reports.
struct IterationTotals {
  int64_t reports = 0;
  double energy_j = 0, time_s = 0;
  int64_t last_iteration = -1;
  int64_t mismatches = 0, reports_with_mismatches = 0;
  bool operator==(const IterationTotals&) const = default;
};

// Per pipeline and phase (baseline or planned): the iterations every one of
// the pipeline's `ranks_per_pipeline` ranks reported in that phase, with the
// sum over them of the ranks' energy sum and of the slowest rank's time.
struct PhaseTotals {
  int64_t pipeline = 0;
  std::string phase;
  int64_t iterations = 0;
  double energy_j = 0, time_s = 0;
  bool operator==(const PhaseTotals&) const = default;
};

// One job's rows as loaded (raw: the domain checks them).
struct StoredJob {
  int64_t id = 0;
  std::string config_json;
  JobRowValues row;
  std::vector<std::string> rank_infos;  // JSON text per rank
  std::vector<StoredMeasurement> measurements;
  std::optional<planner::FrontierFiles> frontier;
  std::vector<StoredPipeline> pipelines;
  std::vector<StoredStraggler> stragglers;
  IterationTotals iterations;
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  virtual Status Begin() = 0;
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;

  // Every job, by id.
  virtual Result<std::vector<StoredJob>> LoadAll() = 0;

  // REQUIRES for the writes: inside a transaction.
  virtual Result<int64_t> InsertJob(const std::string& config_json, const JobRowValues& row) = 0;
  virtual Status SaveJobRow(int64_t job, const JobRowValues& row) = 0;
  // The job and every row of it.
  virtual Status DeleteJob(int64_t job) = 0;
  virtual Status InsertRank(int64_t job, int64_t rank, const std::string& info_json) = 0;
  // Inserts or replaces (job, stage, tp_rank)'s measurements.
  virtual Status PutMeasurement(int64_t job, const StoredMeasurement& m) = 0;
  virtual Status PutFrontier(int64_t job, const planner::FrontierFiles& files) = 0;
  virtual Status PutPipeline(int64_t job, const StoredPipeline& p) = 0;
  virtual Status PutStraggler(int64_t job, const StoredStraggler& s) = 0;
  virtual Status DeleteStraggler(int64_t job, int64_t pipeline) = 0;
  // Inserts or replaces (job, rank, iteration)'s report (outside a
  // transaction too: one statement).
  virtual Status PutIteration(int64_t job, const StoredIteration& it) = 0;

  // Reads.
  virtual Result<std::optional<StoredIteration>> GetIteration(int64_t job, int64_t rank,
                                                              int64_t iteration) = 0;
  virtual Result<std::vector<PhaseTotals>> MeasuredPhases(int64_t job,
                                                          int64_t ranks_per_pipeline) = 0;

  // Begin in the constructor; rolled back by the destructor unless committed.
  class Transaction {
   public:
    explicit Transaction(JobStore& store) : store_(store), begun_(store.Begin()) {}
    ~Transaction() {
      if (begun_.ok() && !done_) store_.Rollback();
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    const Status& begun() const { return begun_; }
    Status Commit() {
      done_ = true;
      return store_.Commit();
    }

   private:
    JobStore& store_;
    Status begun_;
    bool done_ = false;
  };
};

}  // namespace perseus::server
