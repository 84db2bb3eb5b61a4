#include "src/server/memory_job_store.h"

namespace perseus::server {

Status MemoryJobStore::Begin() {
  if (in_transaction_) return Status::Internal("memory store: a transaction is already open");
  pending_ = committed_;
  in_transaction_ = true;
  return Status::Ok();
}

Status MemoryJobStore::Commit() {
  if (!in_transaction_) return Status::Internal("memory store: no transaction to commit");
  in_transaction_ = false;
  if (fail_next_commit_) {
    fail_next_commit_ = false;
    return Status::Unavailable("memory store: commit failed (FailNextCommit)");
  }
  committed_ = std::move(pending_);
  return Status::Ok();
}

void MemoryJobStore::Rollback() { in_transaction_ = false; }

Result<MemoryJobStore::Job*> MemoryJobStore::Find(int64_t job) {
  auto it = Writing().jobs.find(job);
  if (it == Writing().jobs.end())
    return Status::NotFound("memory store: no job " + std::to_string(job));
  return &it->second;
}

Result<std::vector<StoredJob>> MemoryJobStore::LoadAll() {
  std::vector<StoredJob> out;
  for (const auto& [id, job] : committed_.jobs) {
    StoredJob s;
    s.id = id;
    s.config_json = job.config_json;
    s.row = job.row;
    for (const auto& [rank, info] : job.ranks) s.rank_infos.push_back(info);
    for (const auto& [key, m] : job.measurements) s.measurements.push_back(m);
    s.frontier = job.frontier;
    for (const auto& [p, pipeline] : job.pipelines) s.pipelines.push_back(pipeline);
    for (const auto& [p, straggler] : job.stragglers) s.stragglers.push_back(straggler);
    for (const auto& [key, it] : job.iterations) {
      IterationTotals& t = s.iterations;
      ++t.reports;
      t.energy_j += it.energy_j;
      t.time_s += it.time_s;
      t.last_iteration = std::max(t.last_iteration, it.iteration);
      t.mismatches += it.mismatches;
      t.reports_with_mismatches += it.mismatches > 0 ? 1 : 0;
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<int64_t> MemoryJobStore::InsertJob(const std::string& config_json, const JobRowValues& row) {
  State& state = Writing();
  const int64_t id = state.next_id++;
  state.jobs[id] = Job{config_json, row, {}, {}, std::nullopt, {}, {}, {}};
  return id;
}

Status MemoryJobStore::SaveJobRow(int64_t job, const JobRowValues& row) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  j->row = row;
  return Status::Ok();
}

Status MemoryJobStore::DeleteJob(int64_t job) {
  Writing().jobs.erase(job);
  return Status::Ok();
}

Status MemoryJobStore::InsertRank(int64_t job, int64_t rank, const std::string& info_json) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  if (!j->ranks.emplace(rank, info_json).second) {
    return Status::Internal("memory store: rank " + std::to_string(rank) + " exists");
  }
  return Status::Ok();
}

Status MemoryJobStore::PutMeasurement(int64_t job, const StoredMeasurement& m) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  j->measurements[{m.stage, m.tp_rank}] = m;
  return Status::Ok();
}

Status MemoryJobStore::PutFrontier(int64_t job, const planner::FrontierFiles& files) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  j->frontier = files;
  return Status::Ok();
}

Status MemoryJobStore::PutPipeline(int64_t job, const StoredPipeline& p) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  j->pipelines[p.pipeline] = p;
  return Status::Ok();
}

Status MemoryJobStore::PutStraggler(int64_t job, const StoredStraggler& s) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  j->stragglers[s.pipeline] = s;
  return Status::Ok();
}

Status MemoryJobStore::DeleteStraggler(int64_t job, int64_t pipeline) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  j->stragglers.erase(pipeline);
  return Status::Ok();
}

Status MemoryJobStore::PutIteration(int64_t job, const StoredIteration& it) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  j->iterations[{it.rank, it.iteration}] = it;
  return Status::Ok();
}

Result<std::optional<StoredIteration>> MemoryJobStore::GetIteration(int64_t job, int64_t rank,
                                                                    int64_t iteration) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  auto it = j->iterations.find({rank, iteration});
  if (it == j->iterations.end()) return std::optional<StoredIteration>();
  return std::optional<StoredIteration>(it->second);
}

Result<std::vector<PhaseTotals>> MemoryJobStore::MeasuredPhases(int64_t job,
                                                                int64_t ranks_per_pipeline) {
  PERSEUS_ASSIGN_OR_RETURN(Job * j, Find(job));
  // (pipeline, phase, iteration) -> ranks, energy sum, slowest time.
  struct Iteration {
    int64_t ranks = 0;
    double energy_j = 0, time_s = 0;
  };
  std::map<std::tuple<int64_t, std::string, int64_t>, Iteration> by_iteration;
  for (const auto& [key, it] : j->iterations) {
    if (it.pipeline < 0 || (it.phase != "baseline" && it.phase != "planned")) continue;
    Iteration& i = by_iteration[{it.pipeline, it.phase, it.iteration}];
    ++i.ranks;
    i.energy_j += it.energy_j;
    i.time_s = i.ranks == 1 ? it.time_s : std::max(i.time_s, it.time_s);
  }
  std::map<std::pair<int64_t, std::string>, PhaseTotals> totals;
  for (const auto& [key, i] : by_iteration) {
    if (i.ranks != ranks_per_pipeline) continue;
    const auto& [pipeline, phase, iteration] = key;
    PhaseTotals& t = totals[{pipeline, phase}];
    t.pipeline = pipeline;
    t.phase = phase;
    ++t.iterations;
    t.energy_j += i.energy_j;
    t.time_s += i.time_s;
  }
  std::vector<PhaseTotals> out;
  for (auto& [key, t] : totals) out.push_back(std::move(t));
  return out;
}

}  // namespace perseus::server
